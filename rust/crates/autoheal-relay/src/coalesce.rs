//! Coalescing: intents wait here for their fleet's next run; the latest intent per target wins.
//!
//! Pure data structure; the pipeline decides when to take from it (every window, and only when
//! the fleet's worker is idle, so that a long run lets the next batch grow instead of queueing
//! many small runs).

use std::collections::{BTreeSet, HashMap};

use crate::model::Intent;

/// An intent with the journal ids of every decision it stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    /// Journal id of the decision that produced `intent`.
    pub id: i64,
    /// What to do.
    pub intent: Intent,
}

/// Pending intents, one per (fleet, target).
#[derive(Debug, Default)]
pub struct Coalescer {
    pending: HashMap<(String, String), Pending>,
}

impl Coalescer {
    /// An empty coalescer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds an intent; returns the id it supersedes, if any. Ids grow with arrival order, so a
    /// late-delivered older decision (a journal replay) never overrides a newer one.
    pub fn add(&mut self, item: Pending) -> Option<i64> {
        let key = (item.intent.fleet.clone(), item.intent.target.key());
        match self.pending.get_mut(&key) {
            Some(existing) if existing.id > item.id => Some(item.id),
            Some(existing) => Some(std::mem::replace(existing, item).id),
            None => {
                self.pending.insert(key, item);
                None
            }
        }
    }

    /// Fleets that have at least one intent due at `now_ms`.
    pub fn due_fleets(&self, now_ms: i64) -> BTreeSet<String> {
        self.pending
            .iter()
            .filter(|(_, p)| p.intent.not_before_ms <= now_ms)
            .map(|((fleet, _), _)| fleet.clone())
            .collect()
    }

    /// Removes and returns the fleet's due intents, ordered by target.
    pub fn take_due(&mut self, fleet: &str, now_ms: i64) -> Vec<Pending> {
        let keys: Vec<_> = self
            .pending
            .iter()
            .filter(|((f, _), p)| f == fleet && p.intent.not_before_ms <= now_ms)
            .map(|(k, _)| k.clone())
            .collect();
        let mut out: Vec<Pending> = keys.iter().filter_map(|k| self.pending.remove(k)).collect();
        out.sort_by_key(|p| p.intent.target.key());
        out
    }

    /// Number of pending intents (the queue depth).
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    /// Whether nothing is pending.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::model::{AlertStatus, DesiredState, Reason, Target};

    pub(crate) fn intent(server: &str, state: DesiredState, not_before_ms: i64) -> Intent {
        Intent {
            target: Target {
                server: Some(server.into()),
                address: None,
                backend: Some("be".into()),
            },
            state,
            weight: None,
            fleet: "default".into(),
            rule: "r".into(),
            reason: Reason {
                alert: "A".into(),
                fingerprint: "00".into(),
                status: if state == DesiredState::Enabled {
                    AlertStatus::Resolved
                } else {
                    AlertStatus::Firing
                },
            },
            not_before_ms,
        }
    }

    #[test]
    fn latest_intent_per_target_wins() {
        let mut c = Coalescer::new();
        assert_eq!(
            c.add(Pending {
                id: 1,
                intent: intent("s1", DesiredState::Drain, 0)
            }),
            None
        );
        assert_eq!(
            c.add(Pending {
                id: 2,
                intent: intent("s1", DesiredState::Enabled, 0)
            }),
            Some(1)
        );
        assert_eq!(
            c.add(Pending {
                id: 3,
                intent: intent("s2", DesiredState::Disabled, 0)
            }),
            None
        );
        let due = c.take_due("default", 0);
        assert_eq!(due.len(), 2);
        assert_eq!(due[0].id, 2);
        assert_eq!(due[0].intent.state, DesiredState::Enabled);
        assert!(c.is_empty());
    }

    #[test]
    fn an_older_id_never_replaces_a_newer_one() {
        let mut c = Coalescer::new();
        c.add(Pending {
            id: 5,
            intent: intent("s1", DesiredState::Enabled, 0),
        });
        assert_eq!(
            c.add(Pending {
                id: 4,
                intent: intent("s1", DesiredState::Drain, 0)
            }),
            Some(4)
        );
        assert_eq!(c.take_due("default", 0)[0].id, 5);
    }

    #[test]
    fn delayed_restore_waits_and_a_new_firing_cancels_it() {
        let mut c = Coalescer::new();
        c.add(Pending {
            id: 1,
            intent: intent("s1", DesiredState::Enabled, 30_000),
        });
        assert!(c.due_fleets(10_000).is_empty());
        assert!(c.take_due("default", 10_000).is_empty());
        assert_eq!(
            c.add(Pending {
                id: 2,
                intent: intent("s1", DesiredState::Drain, 10_000)
            }),
            Some(1)
        );
        assert_eq!(
            c.take_due("default", 10_000)[0].intent.state,
            DesiredState::Drain
        );
    }

    #[test]
    fn a_thousand_alerts_over_a_hundred_servers_become_one_batch() {
        let mut c = Coalescer::new();
        for id in 0..1000 {
            let state = if id % 3 == 0 {
                DesiredState::Enabled
            } else {
                DesiredState::Drain
            };
            c.add(Pending {
                id,
                intent: intent(&format!("s{}", id % 100), state, 0),
            });
        }
        assert_eq!(c.len(), 100);
        assert_eq!(c.due_fleets(0).len(), 1);
        let batch = c.take_due("default", 0);
        assert_eq!(batch.len(), 100);
        // The survivor for s0 is id 900 (the last id with id % 100 == 0), an Enabled.
        let s0 = batch
            .iter()
            .find(|p| p.intent.target.server.as_deref() == Some("s0"))
            .unwrap();
        assert_eq!(s0.id, 900);
        assert_eq!(s0.intent.state, DesiredState::Enabled);
    }

    #[test]
    fn fleets_are_separate() {
        let mut c = Coalescer::new();
        let mut other = intent("s1", DesiredState::Drain, 0);
        other.fleet = "other".into();
        c.add(Pending {
            id: 1,
            intent: intent("s1", DesiredState::Drain, 0),
        });
        c.add(Pending {
            id: 2,
            intent: other,
        });
        assert_eq!(c.due_fleets(0).len(), 2);
        assert_eq!(c.take_due("other", 0).len(), 1);
        assert_eq!(c.len(), 1);
    }
}
