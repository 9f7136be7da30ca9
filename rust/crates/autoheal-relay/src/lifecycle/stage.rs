//! The life cycle as a pipeline stage: what the pipeline does with each intent on arrival,
//! when it is due, and after its run. It wraps the [`Book`] with what the pipeline needs to
//! remember between a run's start and its end (what each decision asked for), and leaves the
//! journal, the guard and the coalescer to the pipeline.

use std::collections::{BTreeMap, HashMap};

use super::book::{Book, Gate, Refusal};
use super::life::{Released, Reported, Requested};
use super::panic::PanicChange;
use super::report::ItemOutcome;
use crate::metrics::{BackendLabel, Metrics, PhaseLabel};
use crate::model::Pending;

/// What to do with a batch of due intents.
#[derive(Debug, Default)]
pub struct Sorted {
    /// Drains and weight changes, for the guard.
    pub guarded: Vec<Pending>,
    /// Restore steps (they only give capacity back): run without the guard's budget.
    pub restores: Vec<Pending>,
    /// Not due yet: back to the coalescer (their `not_before_ms` is set).
    pub held: Vec<Pending>,
    /// Nothing to run.
    pub noop: Vec<Pending>,
    /// Restores held until an operator releases their target (`not_before_ms` is the end of
    /// time; [`crate::coalesce::Coalescer::wake`] wakes them).
    pub parked: Vec<(Pending, Refusal)>,
    /// Refused by the life cycle.
    pub refused: Vec<(Pending, Refusal)>,
}

/// What becomes of an arriving intent.
#[derive(Debug)]
pub enum Arrival {
    /// Queue it (its target placed in its real backend).
    Queue(Pending),
    /// Refused at once.
    Refused(Pending, Refusal),
}

/// What happens to a decision after its run succeeded.
#[derive(Debug, PartialEq, Eq)]
pub enum After {
    /// Done.
    Done,
    /// Comes back at `not_before_ms` (its original intent, for the next ramp step or the
    /// retry of a deferred restore); `outcome` is what the journal shows meanwhile.
    Again {
        /// The decision, as it was before its step was applied.
        pending: Box<Pending>,
        /// `deferred` or `ramping`.
        outcome: &'static str,
        /// Why, for people.
        detail: String,
    },
    /// Closed with a life-cycle outcome (`gave_up`, `operator_state`, `not_found`).
    Closed {
        /// The journal outcome.
        outcome: &'static str,
        /// Why, for people.
        detail: String,
    },
}

/// The life-cycle stage.
#[derive(Debug)]
pub struct Stage {
    book: Book,
    /// What each decision in a run asked for, and the intent as it was before its restore
    /// step's weight was set.
    in_flight: HashMap<i64, (Requested, Pending)>,
}

impl Stage {
    /// A stage around `book`.
    pub fn new(book: Book) -> Self {
        Self {
            book,
            in_flight: HashMap::new(),
        }
    }

    /// The book.
    pub fn book(&self) -> &Book {
        &self.book
    }

    /// An intent arrives: placed in its real backends and counted for panic.
    pub fn arrive(&mut self, mut p: Pending) -> Arrival {
        let (placed, changes) = self.book.arrive(&mut p.intent);
        for change in changes {
            match change {
                PanicChange::Entered {
                    backend,
                    alerting,
                    size,
                } => {
                    tracing::error!(backend = %backend, alerting, size, "PANIC: too many servers of this backend alert at once; a shared dependency is sick, so none of them is taken out until the share falls back")
                }
                PanicChange::Left {
                    backend,
                    alerting,
                    size,
                } => {
                    tracing::warn!(backend = %backend, alerting, size, "panic over: servers of this backend may be taken out again")
                }
            }
        }
        match placed {
            Ok(()) => Arrival::Queue(p),
            Err(refusal) => Arrival::Refused(p, refusal),
        }
    }

    /// Sorts due intents at `now_ms`.
    pub fn sort(&mut self, due: Vec<Pending>, now_ms: i64) -> Sorted {
        let mut sorted = Sorted::default();
        for mut p in due {
            match self.book.gate(&p.intent, now_ms) {
                Gate::Run { intent, requested } => {
                    let original = Pending {
                        id: p.id,
                        intent: p.intent.clone(),
                    };
                    p.intent = intent;
                    self.in_flight.insert(p.id, (requested, original));
                    // A restore of a target the life cycle does not follow goes to the guard,
                    // which knows whether there is anything to restore.
                    let followed = self.book.entry(&p.intent.target.key()).is_some();
                    match requested {
                        Requested::Restore(_) if followed => sorted.restores.push(p),
                        _ => sorted.guarded.push(p),
                    }
                }
                Gate::Hold { until_ms } => {
                    p.intent.not_before_ms = until_ms;
                    sorted.held.push(p);
                }
                Gate::Noop => sorted.noop.push(p),
                Gate::Park(r) => {
                    p.intent.not_before_ms = i64::MAX;
                    sorted.parked.push((p, r));
                }
                Gate::Refuse(r) => sorted.refused.push((p, r)),
            }
        }
        sorted
    }

    /// The guard admitted these drains: count them in their targets' life cycles. Drains it
    /// refused are forgotten.
    pub fn admitted(&mut self, admitted: &[Pending], refused: &[Pending], now_ms: i64) {
        for p in admitted {
            if matches!(self.in_flight.get(&p.id), Some((Requested::Drain, _))) {
                self.book.drained(&p.intent.target.key(), now_ms);
            }
        }
        for p in refused {
            self.in_flight.remove(&p.id);
        }
    }

    /// A run succeeded; `outcomes` is what the module said per target key (an executor that
    /// reports nothing per target counts as done as asked).
    pub fn succeeded(
        &mut self,
        items: &[Pending],
        outcomes: &BTreeMap<String, ItemOutcome>,
        now_ms: i64,
    ) -> Vec<(i64, After)> {
        let applied = ItemOutcome::Applied { slowstart: false };
        items
            .iter()
            .map(|p| {
                let Some((requested, original)) = self.in_flight.remove(&p.id) else {
                    return (p.id, After::Done);
                };
                let key = p.intent.target.key();
                let outcome = outcomes.get(&key).unwrap_or(&applied);
                let after = match self.book.reported(&key, requested, outcome, now_ms) {
                    Some(Reported::Ramping {
                        percent,
                        next_at_ms,
                    }) => After::Again {
                        pending: again(original, next_at_ms),
                        outcome: "ramping",
                        detail: format!("at {percent}% of its weight; next step due"),
                    },
                    Some(Reported::Deferred { retry_at_ms }) => After::Again {
                        pending: again(original, retry_at_ms),
                        outcome: "deferred",
                        detail: match outcome {
                            ItemOutcome::Deferred { reason } => reason.clone(),
                            _ => "health check not passing".to_owned(),
                        },
                    },
                    Some(r @ Reported::GaveUp) => After::Closed {
                        outcome: r.outcome(),
                        detail: "its health check never passed before the deadline; it stays out until released".to_owned(),
                    },
                    Some(r @ Reported::OperatorHeld) => After::Closed {
                        outcome: r.outcome(),
                        detail: "a person set this server's state; autoheal leaves it alone".to_owned(),
                    },
                    Some(r @ Reported::NotFound) => After::Closed {
                        outcome: r.outcome(),
                        detail: "no such server: it takes no budget".to_owned(),
                    },
                    Some(Reported::Out | Reported::InService) | None => After::Done,
                };
                (p.id, after)
            })
            .collect()
    }

    /// A run failed: its targets' state is unknown. What each asked for is kept for its retry.
    pub fn failed(&mut self, items: &[Pending], now_ms: i64) {
        for p in items {
            self.book.run_failed(&p.intent.target.key(), now_ms);
        }
    }

    /// A decision will not run again (its retries are spent, or it was superseded).
    pub fn forget(&mut self, id: i64) {
        self.in_flight.remove(&id);
    }

    /// An operator's release of `key`.
    pub fn release(&mut self, key: &str, now_ms: i64) -> Released {
        self.book.release(key, now_ms)
    }

    /// Changes to persist.
    pub fn take_records(&mut self) -> Vec<super::book::Record> {
        self.book.take_records()
    }

    /// Sets the life-cycle gauges.
    pub fn publish(&self, metrics: &Metrics) {
        let mut counts: BTreeMap<&str, i64> = BTreeMap::new();
        for entry in self.book.entries().values() {
            *counts.entry(entry.life.phase.name()).or_default() += 1;
        }
        for phase in super::life::PHASES {
            metrics
                .targets
                .get_or_create(&PhaseLabel {
                    phase: (*phase).to_owned(),
                })
                .set(counts.get(phase).copied().unwrap_or(0));
        }
        metrics.backend_panic.clear();
        for backend in self.book.panicking() {
            metrics
                .backend_panic
                .get_or_create(&BackendLabel {
                    backend: backend.to_owned(),
                })
                .set(1);
        }
    }
}

fn again(mut p: Pending, at_ms: i64) -> Box<Pending> {
    p.intent.not_before_ms = at_ms;
    Box::new(p)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lifecycle::membership::Membership;
    use crate::lifecycle::policy::{LifecyclePolicy, PanicPolicy};
    use crate::model::AlertStatus;

    fn pending(id: i64, server: &str, status: AlertStatus) -> Pending {
        Pending {
            id,
            intent: crate::lifecycle::test_intent(server, None, status),
        }
    }

    fn arrive(st: &mut Stage, p: Pending) -> Pending {
        match st.arrive(p) {
            Arrival::Queue(p) => p,
            Arrival::Refused(p, r) => panic!("{p:?}: {r}"),
        }
    }

    fn stage() -> Stage {
        Stage::new(Book::new(
            LifecyclePolicy::default(),
            BTreeMap::new(),
            PanicPolicy::default(),
            Membership::from_pairs([("app", "s1"), ("app", "s2"), ("app", "s3"), ("app", "s4")]),
            BTreeMap::new(),
        ))
    }

    #[test]
    fn a_deferred_restore_comes_back_as_it_was_and_a_passing_one_ramps() {
        let mut st = stage();
        let drain = arrive(&mut st, pending(1, "s1", AlertStatus::Firing));
        assert_eq!(drain.intent.target.key(), "app/s1");
        let sorted = st.sort(vec![drain], 0);
        assert_eq!(sorted.guarded.len(), 1);
        st.admitted(&sorted.guarded, &[], 0);
        assert_eq!(
            st.succeeded(&sorted.guarded, &BTreeMap::new(), 1),
            [(1, After::Done)]
        );

        let restore = arrive(&mut st, pending(2, "s1", AlertStatus::Resolved));
        let sorted = st.sort(vec![restore.clone()], 1);
        assert_eq!(sorted.held.len(), 1, "held down");
        assert_eq!(sorted.held[0].intent.not_before_ms, 30_000);
        let sorted = st.sort(sorted.held, 30_000);
        assert_eq!(sorted.restores.len(), 1);
        assert_eq!(sorted.restores[0].intent.weight.as_deref(), Some("10%"));
        let deferred = BTreeMap::from([(
            "app/s1".to_owned(),
            ItemOutcome::Deferred {
                reason: "app/s1 is failing its check".into(),
            },
        )]);
        let after = st.succeeded(&sorted.restores, &deferred, 30_000);
        let [(
            2,
            After::Again {
                pending,
                outcome,
                detail,
            },
        )] = after.as_slice()
        else {
            panic!("{after:?}")
        };
        assert_eq!(*outcome, "deferred");
        assert_eq!(detail, "app/s1 is failing its check");
        assert_eq!(
            pending.intent.weight, None,
            "the original restore comes back"
        );
        assert_eq!(pending.intent.not_before_ms, 40_000);
        let sorted = st.sort(vec![(**pending).clone()], 40_000);
        let after = st.succeeded(&sorted.restores, &BTreeMap::new(), 40_000);
        assert!(
            matches!(&after[0].1, After::Again { outcome: "ramping", pending, .. } if pending.intent.not_before_ms == 70_000),
            "{after:?}"
        );
        let records = st.take_records();
        assert!(records.iter().any(|r| r.event == "deferred"));
        let metrics = Metrics::new();
        st.publish(&metrics);
        let text = metrics.render();
        assert!(
            text.contains("autoheal_relay_targets{phase=\"ramping\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("autoheal_relay_targets{phase=\"quarantined\"} 0"),
            "{text}"
        );
    }

    #[test]
    fn panic_and_unknown_servers_are_refused_and_the_module_verdicts_close_decisions() {
        let mut st = stage();
        let Arrival::Refused(_, unknown) = st.arrive(pending(9, "typo", AlertStatus::Firing))
        else {
            panic!("an unknown server is queued")
        };
        assert_eq!(unknown.outcome(), "not_found");
        let due: Vec<Pending> = (1..=3)
            .map(|i| arrive(&mut st, pending(i, &format!("s{i}"), AlertStatus::Firing)))
            .collect();
        let metrics = Metrics::new();
        st.publish(&metrics);
        assert!(metrics
            .render()
            .contains("autoheal_relay_backend_panic{backend=\"app\"} 1"));
        let sorted = st.sort(due, 0);
        assert_eq!(sorted.refused.len(), 3);
        assert!(sorted.refused.iter().all(|(_, r)| r.outcome() == "panic"));
        arrive(&mut st, pending(4, "s3", AlertStatus::Resolved));
        st.publish(&metrics);
        assert!(!metrics.render().contains("backend=\"app\"} 1"));

        let p = arrive(&mut st, pending(5, "s1", AlertStatus::Firing));
        let sorted = st.sort(vec![p], 1);
        st.admitted(&sorted.guarded, &[], 1);
        let operator = BTreeMap::from([("app/s1".to_owned(), ItemOutcome::OperatorState)]);
        let after = st.succeeded(&sorted.guarded, &operator, 2);
        assert!(matches!(
            after[0].1,
            After::Closed {
                outcome: "operator_state",
                ..
            }
        ));
        st.failed(&sorted.guarded, 3);
        assert_eq!(
            st.book().entry("app/s1").unwrap().life.phase.name(),
            "operator_state"
        );
    }

    #[test]
    fn a_drain_the_guard_refused_is_not_counted() {
        let mut st = stage();
        let p = arrive(&mut st, pending(1, "s1", AlertStatus::Firing));
        let sorted = st.sort(vec![p], 0);
        st.admitted(&[], &sorted.guarded, 0);
        assert!(st
            .book()
            .entry("app/s1")
            .unwrap()
            .life
            .remediations_ms
            .is_empty());
        assert!(!st.book().counts_out("app/s1"));
    }
}
