//! Coalescing: intents wait here for their fleet's next run; the latest intent per target wins.
//!
//! Pure data structure; the pipeline decides when to take from it. A fleet is due once one of its
//! intents has waited the gather window since it may run (its arrival, or its `not_before_ms` for
//! a delayed restore or a retry); it then takes every intent that may run, so a burst of
//! notifications shares one run. While a fleet's run is in progress the pipeline does not take
//! from it at all, so a long run lets the next batch grow instead of queueing many small runs.

use std::collections::{BTreeSet, HashMap, HashSet};

use crate::model::Pending;

/// A pending intent and when it entered the coalescer.
#[derive(Debug)]
struct Queued {
    item: Pending,
    queued_ms: i64,
}

impl Queued {
    /// When this intent makes its fleet due: one gather window after it may run (so that delayed
    /// restores whose alerts resolved together also run together).
    fn due_ms(&self, window_ms: i64) -> i64 {
        self.queued_ms
            .max(self.item.intent.not_before_ms)
            .saturating_add(window_ms)
    }
}

/// Pending intents, one per (fleet, target).
#[derive(Debug)]
pub struct Coalescer {
    window_ms: i64,
    pending: HashMap<(String, String), Queued>,
}

impl Coalescer {
    /// An empty coalescer whose intents wait `window_ms` for others before their fleet is due.
    pub fn new(window_ms: u64) -> Self {
        Self {
            window_ms: i64::try_from(window_ms).unwrap_or(i64::MAX),
            pending: HashMap::new(),
        }
    }

    /// Adds an intent that arrived at `now_ms`; returns the id it supersedes, if any. Ids grow
    /// with arrival order, so a late-delivered older decision (a journal replay) never overrides
    /// a newer one.
    pub fn add(&mut self, item: Pending, now_ms: i64) -> Option<i64> {
        let key = (item.intent.fleet.clone(), item.intent.target.key());
        let queued = Queued {
            item,
            queued_ms: now_ms,
        };
        match self.pending.get_mut(&key) {
            Some(existing) if existing.item.id > queued.item.id => Some(queued.item.id),
            Some(existing) => Some(std::mem::replace(existing, queued).item.id),
            None => {
                self.pending.insert(key, queued);
                None
            }
        }
    }

    /// Fleets that are due at `now_ms`.
    pub fn due_fleets(&self, now_ms: i64) -> BTreeSet<String> {
        self.pending
            .iter()
            .filter(|(_, q)| q.due_ms(self.window_ms) <= now_ms)
            .map(|((fleet, _), _)| fleet.clone())
            .collect()
    }

    /// The earliest time at which a fleet not in `skip` becomes due.
    pub fn next_due_ms(&self, skip: &HashSet<String>) -> Option<i64> {
        self.pending
            .iter()
            .filter(|((fleet, _), _)| !skip.contains(fleet))
            .map(|(_, q)| q.due_ms(self.window_ms))
            .min()
    }

    /// Removes and returns every intent of the fleet that may run at `now_ms` (its
    /// `not_before_ms` has passed, whether or not its own gather window is over), ordered by
    /// target.
    pub fn take_due(&mut self, fleet: &str, now_ms: i64) -> Vec<Pending> {
        let keys: Vec<_> = self
            .pending
            .iter()
            .filter(|((f, _), q)| f == fleet && q.item.intent.not_before_ms <= now_ms)
            .map(|(k, _)| k.clone())
            .collect();
        let mut out: Vec<Pending> = keys
            .iter()
            .filter_map(|k| self.pending.remove(k))
            .map(|q| q.item)
            .collect();
        out.sort_by_key(|p| p.intent.target.key());
        out
    }

    /// Number of pending intents (the queue depth).
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    /// Makes every intent for `target_key` that waits past `now_ms` due now (an operator
    /// released a restore held for a quarantine); returns how many.
    pub fn wake(&mut self, target_key: &str, now_ms: i64) -> usize {
        let mut woken = 0;
        for ((_, key), q) in &mut self.pending {
            if key == target_key && q.item.intent.not_before_ms > now_ms {
                q.item.intent.not_before_ms = now_ms;
                woken += 1;
            }
        }
        woken
    }

    /// Whether nothing is pending.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::model::{AlertStatus, DesiredState, Intent, Reason, Target};

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
        let mut c = Coalescer::new(0);
        assert_eq!(
            c.add(
                Pending {
                    id: 1,
                    intent: intent("s1", DesiredState::Drain, 0)
                },
                0
            ),
            None
        );
        assert_eq!(
            c.add(
                Pending {
                    id: 2,
                    intent: intent("s1", DesiredState::Enabled, 0)
                },
                0
            ),
            Some(1)
        );
        assert_eq!(
            c.add(
                Pending {
                    id: 3,
                    intent: intent("s2", DesiredState::Disabled, 0)
                },
                0
            ),
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
        let mut c = Coalescer::new(0);
        c.add(
            Pending {
                id: 5,
                intent: intent("s1", DesiredState::Enabled, 0),
            },
            0,
        );
        assert_eq!(
            c.add(
                Pending {
                    id: 4,
                    intent: intent("s1", DesiredState::Drain, 0)
                },
                0
            ),
            Some(4)
        );
        assert_eq!(c.take_due("default", 0)[0].id, 5);
    }

    #[test]
    fn delayed_restore_waits_and_a_new_firing_cancels_it() {
        let mut c = Coalescer::new(0);
        c.add(
            Pending {
                id: 1,
                intent: intent("s1", DesiredState::Enabled, 30_000),
            },
            0,
        );
        assert!(c.due_fleets(10_000).is_empty());
        assert!(c.take_due("default", 10_000).is_empty());
        assert_eq!(
            c.add(
                Pending {
                    id: 2,
                    intent: intent("s1", DesiredState::Drain, 10_000)
                },
                0
            ),
            Some(1)
        );
        assert_eq!(
            c.take_due("default", 10_000)[0].intent.state,
            DesiredState::Drain
        );
    }

    #[test]
    fn a_thousand_alerts_over_a_hundred_servers_become_one_batch() {
        let mut c = Coalescer::new(0);
        for id in 0..1000 {
            let state = if id % 3 == 0 {
                DesiredState::Enabled
            } else {
                DesiredState::Drain
            };
            c.add(
                Pending {
                    id,
                    intent: intent(&format!("s{}", id % 100), state, 0),
                },
                0,
            );
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
        let mut c = Coalescer::new(0);
        let mut other = intent("s1", DesiredState::Drain, 0);
        other.fleet = "other".into();
        c.add(
            Pending {
                id: 1,
                intent: intent("s1", DesiredState::Drain, 0),
            },
            0,
        );
        c.add(
            Pending {
                id: 2,
                intent: other,
            },
            0,
        );
        assert_eq!(c.due_fleets(0).len(), 2);
        assert_eq!(c.take_due("other", 0).len(), 1);
        assert_eq!(c.len(), 1);
    }

    #[test]
    fn a_fleet_is_due_after_the_gather_window_and_takes_everything_that_may_run() {
        let mut c = Coalescer::new(50);
        c.add(
            Pending {
                id: 1,
                intent: intent("s1", DesiredState::Drain, 0),
            },
            1_000,
        );
        c.add(
            Pending {
                id: 2,
                intent: intent("s2", DesiredState::Drain, 0),
            },
            1_030,
        );
        // A delayed restore queued earlier does not make the fleet due before its time.
        c.add(
            Pending {
                id: 3,
                intent: intent("s3", DesiredState::Enabled, 5_000),
            },
            900,
        );
        let none = HashSet::new();
        assert_eq!(c.next_due_ms(&none), Some(1_050));
        assert!(c.due_fleets(1_049).is_empty());
        assert_eq!(c.due_fleets(1_050).len(), 1);
        // s2 joined within s1's window: both go; the delayed restore stays.
        let batch = c.take_due("default", 1_050);
        assert_eq!(batch.iter().map(|p| p.id).collect::<Vec<_>>(), vec![1, 2]);
        assert_eq!(c.next_due_ms(&none), Some(5_050));
        let busy = HashSet::from(["default".to_owned()]);
        assert_eq!(c.next_due_ms(&busy), None);
    }

    #[test]
    fn delayed_restores_that_resolved_together_run_together() {
        let mut c = Coalescer::new(25);
        // Two resolves 8 ms apart, each restored 30 s after its own arrival.
        for (id, server, at) in [(1, "s1", 0), (2, "s2", 8)] {
            c.add(
                Pending {
                    id,
                    intent: intent(server, DesiredState::Enabled, at + 30_000),
                },
                at,
            );
        }
        let due = c.next_due_ms(&HashSet::new()).unwrap();
        assert_eq!(due, 30_025);
        assert_eq!(c.take_due("default", due).len(), 2);
    }

    #[test]
    fn a_parked_intent_is_woken_for_its_target_only() {
        let mut c = Coalescer::new(0);
        c.add(
            Pending {
                id: 1,
                intent: intent("s1", DesiredState::Enabled, i64::MAX),
            },
            0,
        );
        c.add(
            Pending {
                id: 2,
                intent: intent("s2", DesiredState::Enabled, i64::MAX),
            },
            0,
        );
        assert!(c.take_due("default", 10).is_empty());
        assert_eq!(c.wake("be/s1", 10), 1);
        let due = c.take_due("default", 10);
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].id, 1);
        assert_eq!(c.wake("be/s1", 10), 0);
    }
}
