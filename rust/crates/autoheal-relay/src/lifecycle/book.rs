//! The life cycles of every target the relay acted on, with the policies, the fleet's
//! membership and the panic tracker: what the pipeline asks before and after each run.
//!
//! Pure: it never sleeps, reads a clock or writes the journal. Each change of a target's life
//! cycle is queued as a [`Record`] for the caller to persist ([`Book::take_records`]).

use std::collections::BTreeMap;

use super::life::{
    Drained, Firing, Phase, Released, Reported, Requested, Resolved, RestoreStep, TargetLife,
};
use super::membership::{Membership, Unplaced};
use super::panic::{PanicChange, PanicTracker};
use super::policy::{LifecyclePolicy, PanicPolicy};
use super::report::ItemOutcome;
use super::store::Stored;
use crate::model::{AlertStatus, DesiredState, Intent, Target};

/// A target's entry: where it is counted and its life cycle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The backends it is counted in.
    pub backends: Vec<String>,
    /// The rule whose policy applies.
    pub rule: String,
    /// Its life cycle.
    pub life: TargetLife,
}

/// The entries the journal kept, for [`Book::new`].
pub fn entries_from(stored: BTreeMap<String, Stored>) -> BTreeMap<String, Entry> {
    stored
        .into_iter()
        .map(|(key, s)| {
            let entry = Entry {
                backends: s.backend.split(',').map(str::to_owned).collect(),
                rule: s.rule,
                life: s.life,
            };
            (key, entry)
        })
        .collect()
}

/// A change to persist (and audit).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Target key.
    pub key: String,
    /// The entry after the change.
    pub entry: Entry,
    /// What happened (`drained`, `eligible`, `deferred`, `quarantined`, `released`, ...).
    pub event: &'static str,
    /// More, for people.
    pub detail: Option<String>,
}

/// What the pipeline does with an intent that is due.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Gate {
    /// Run it (a drain goes on to the guard's budget; a restore step carries its weight).
    Run {
        /// The intent to run (a restore step's `weight` set).
        intent: Intent,
        /// What is asked, for [`Book::reported`].
        requested: Requested,
    },
    /// Not yet: queue it again for this time (restore delay, hold-down, ramp step, retry).
    Hold {
        /// When to look again.
        until_ms: i64,
    },
    /// Nothing to run (the target is already out).
    Noop,
    /// A restore held until an operator releases the target (quarantined, or given up): it
    /// waits, and runs once released.
    Park(Refusal),
    /// Refused, with the journal outcome.
    Refuse(Refusal),
}

/// Why the life cycle refuses an intent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Too many of the backend's servers alert at once.
    #[error("panic: {alerting} of {size} servers of backend {backend} alert; no server of it is taken out")]
    Panic {
        /// Backend.
        backend: String,
        /// Servers alerting.
        alerting: usize,
        /// Servers in it.
        size: usize,
    },
    /// Quarantined: stays out until released.
    #[error("quarantined: remediated too often; release it with `autoheal-relay release`")]
    Quarantined,
    /// A person set its state.
    #[error("operator_state: a person set this server's state; autoheal leaves it alone")]
    OperatorState,
    /// Its restore was given up.
    #[error("gave_up: its restore stayed deferred past the deadline; release it with `autoheal-relay release`")]
    GaveUp,
    /// The server is in no backend of the fleet.
    #[error(transparent)]
    Unplaced(#[from] Unplaced),
}

impl Refusal {
    /// The journal outcome and metric label.
    pub fn outcome(&self) -> &'static str {
        match self {
            Self::Panic { .. } => "panic",
            Self::Quarantined => "quarantined",
            Self::OperatorState => "operator_state",
            Self::GaveUp => "gave_up",
            Self::Unplaced(_) => "not_found",
        }
    }
}

/// Every target's life cycle.
#[derive(Debug, Default)]
pub struct Book {
    policy: LifecyclePolicy,
    rule_policies: BTreeMap<String, LifecyclePolicy>,
    panic_policy: PanicPolicy,
    membership: Membership,
    panic: PanicTracker,
    entries: BTreeMap<String, Entry>,
    records: Vec<Record>,
}

fn is_restore(intent: &Intent) -> bool {
    intent.state == DesiredState::Enabled && intent.weight.is_none()
}

impl Book {
    /// A book with the relay-wide policy, per-rule policies, the panic policy, what is known of
    /// the fleet, and the entries the journal kept.
    pub fn new(
        policy: LifecyclePolicy,
        rule_policies: BTreeMap<String, LifecyclePolicy>,
        panic_policy: PanicPolicy,
        membership: Membership,
        entries: BTreeMap<String, Entry>,
    ) -> Self {
        Self {
            policy,
            rule_policies,
            panic_policy,
            membership,
            panic: PanicTracker::default(),
            entries,
            records: Vec::new(),
        }
    }

    fn policy_for(&self, rule: &str) -> &LifecyclePolicy {
        self.rule_policies.get(rule).unwrap_or(&self.policy)
    }

    /// Replaces what is known of the fleet (a refresh from `server_info`).
    pub fn set_membership(&mut self, membership: Membership) {
        self.membership = membership;
    }

    /// The entry of a target key.
    pub fn entry(&self, key: &str) -> Option<&Entry> {
        self.entries.get(key)
    }

    /// Every entry, by target key.
    pub fn entries(&self) -> &BTreeMap<String, Entry> {
        &self.entries
    }

    /// The backends in panic.
    pub fn panicking(&self) -> impl Iterator<Item = &str> {
        self.panic.panicking()
    }

    /// Changes to persist since the last call, oldest first.
    pub fn take_records(&mut self) -> Vec<Record> {
        std::mem::take(&mut self.records)
    }

    fn record(&mut self, key: &str, event: &'static str, detail: Option<String>) {
        if let Some(entry) = self.entries.get(key) {
            self.records.push(Record {
                key: key.to_owned(),
                entry: entry.clone(),
                event,
                detail,
            });
        }
    }

    /// An intent arrives: places its target in its real backends (the alert's label, or every
    /// backend that has a server of that name) and counts its alert for panic. Returns whether
    /// the intent may be queued (placed in its one backend, if the lookup found just one; left
    /// as it was if refused), and the backends entering or leaving panic.
    pub fn arrive(&mut self, intent: &mut Intent) -> (Result<(), Refusal>, Vec<PanicChange>) {
        // Called for every alert: a target that needs no lookup is not copied.
        let looked_up = if self.membership.needs_placing(&intent.target) {
            match self.membership.place(&intent.target) {
                Ok(placed) => placed,
                Err(e) => return (Err(e.into()), Vec::new()),
            }
        } else {
            Vec::new()
        };
        if let [one] = looked_up.as_slice() {
            intent.target = one.clone();
        }
        let placed = if looked_up.is_empty() {
            std::slice::from_ref(&intent.target)
        } else {
            looked_up.as_slice()
        };
        let Some(server) = intent
            .target
            .server
            .as_deref()
            .or(intent.target.address.as_deref())
        else {
            return (Ok(()), Vec::new());
        };
        let mut changes = Vec::new();
        for target in placed {
            let backend = target.backend.as_deref().unwrap_or("*");
            // A server the backend does not have (a typo) is not one of its servers alerting.
            if self.membership.has(backend, server) == Some(false) {
                continue;
            }
            let size = self.membership.size_of(backend);
            let change = match intent.reason.status {
                AlertStatus::Firing => self.panic.firing(backend, server, size, &self.panic_policy),
                AlertStatus::Resolved => {
                    self.panic
                        .resolved(backend, server, size, &self.panic_policy)
                }
            };
            changes.extend(change);
        }
        (Ok(()), changes)
    }

    fn backends_of(&self, target: &Target) -> Vec<String> {
        match self.membership.place(target) {
            Ok(placed) => placed
                .iter()
                .map(|t| t.backend.clone().unwrap_or_else(|| "*".to_owned()))
                .collect(),
            Err(_) => vec![target.backend.clone().unwrap_or_else(|| "*".to_owned())],
        }
    }

    /// An intent is due at `now_ms`: what to do with it.
    pub fn gate(&mut self, intent: &Intent, now_ms: i64) -> Gate {
        let key = intent.target.key();
        if is_restore(intent) {
            return self.gate_restore(&key, intent, now_ms);
        }
        if !intent.state.is_out() {
            // A weight change: not a remediation the life cycle follows.
            return Gate::Run {
                intent: intent.clone(),
                requested: Requested::Drain,
            };
        }
        let backends = self.backends_of(&intent.target);
        let entry = self.entries.entry(key.clone()).or_insert_with(|| Entry {
            backends: backends.clone(),
            rule: intent.rule.clone(),
            life: TargetLife::default(),
        });
        entry.backends = backends;
        entry.rule = intent.rule.clone();
        let firing = entry.life.on_firing();
        match firing {
            Firing::Drain => {
                for backend in &entry.backends {
                    if self.panic.in_panic(backend) {
                        return Gate::Refuse(Refusal::Panic {
                            backend: backend.clone(),
                            alerting: self.panic.alerting(backend),
                            size: self.membership.size_of(backend).unwrap_or(0),
                        });
                    }
                }
                Gate::Run {
                    intent: intent.clone(),
                    requested: Requested::Drain,
                }
            }
            Firing::AlreadyOut => Gate::Noop,
            Firing::RestoreCancelled => {
                self.record(&key, "restore_cancelled", None);
                Gate::Noop
            }
            Firing::Quarantined => Gate::Refuse(Refusal::Quarantined),
        }
    }

    fn gate_restore(&mut self, key: &str, intent: &Intent, now_ms: i64) -> Gate {
        let Some(entry) = self.entries.get_mut(key) else {
            // Nothing the life cycle took out (e.g. before an upgrade): restore as asked.
            return Gate::Run {
                intent: intent.clone(),
                requested: Requested::Restore(RestoreStep { percent: None }),
            };
        };
        let policy = self.rule_policies.get(&entry.rule).unwrap_or(&self.policy);
        let mut event = None;
        match entry.life.phase {
            Phase::Out { .. } | Phase::Unknown { .. } => {
                // The restore delay is already behind (the intent was due); the hold-down may not be.
                match entry.life.on_resolved(now_ms, 0, policy) {
                    Resolved::RestoreAt(at) => {
                        event = Some(("eligible", Some(format!("restore from {at} ms"))));
                    }
                    Resolved::Quarantined => return Gate::Park(Refusal::Quarantined),
                    Resolved::OperatorHeld => return Gate::Refuse(Refusal::OperatorState),
                    Resolved::Nothing => {}
                }
            }
            Phase::Quarantined { .. } => return Gate::Park(Refusal::Quarantined),
            Phase::OperatorHeld { .. } => return Gate::Refuse(Refusal::OperatorState),
            Phase::GaveUp { .. } => return Gate::Park(Refusal::GaveUp),
            Phase::InService | Phase::NotFound { .. } => return Gate::Noop,
            Phase::Eligible { .. } | Phase::Deferred { .. } | Phase::Ramping { .. } => {}
        }
        let gate = match entry.life.due(now_ms, policy) {
            Some(step) => {
                let mut run = intent.clone();
                run.weight = step.percent.map(|p| format!("{p}%"));
                Gate::Run {
                    intent: run,
                    requested: Requested::Restore(step),
                }
            }
            None => match entry.life.next_due_ms() {
                Some(until_ms) => Gate::Hold { until_ms },
                None => Gate::Noop,
            },
        };
        if let Some((name, detail)) = event {
            self.record(key, name, detail);
        }
        gate
    }

    /// A drain passed the guard and goes to the executor: counted, hold-down grown, perhaps
    /// quarantined.
    pub fn drained(&mut self, key: &str, now_ms: i64) -> Option<Drained> {
        let entry = self.entries.get_mut(key)?;
        let policy = self.rule_policies.get(&entry.rule).unwrap_or(&self.policy);
        let drained = entry.life.drained(now_ms, policy);
        let (event, detail) = if drained.quarantined {
            (
                "quarantined",
                format!(
                    "remediated {} times within the window",
                    entry.life.remediations_ms.len()
                ),
            )
        } else {
            (
                "drained",
                format!(
                    "hold-down {} s (remediation {})",
                    drained.hold_down_ms / 1000,
                    drained.strikes
                ),
            )
        };
        self.record(key, event, Some(detail));
        Some(drained)
    }

    /// The module's answer for a target after a successful run.
    pub fn reported(
        &mut self,
        key: &str,
        requested: Requested,
        outcome: &ItemOutcome,
        now_ms: i64,
    ) -> Option<Reported> {
        let entry = self.entries.get_mut(key)?;
        let policy = self.rule_policies.get(&entry.rule).unwrap_or(&self.policy);
        let reported = entry.life.reported(now_ms, requested, outcome, policy);
        let detail = match (reported, outcome) {
            (Reported::Deferred { retry_at_ms }, ItemOutcome::Deferred { reason }) => {
                Some(format!("{reason}; retry at {retry_at_ms} ms"))
            }
            (Reported::Ramping { percent, .. }, _) => Some(format!("{percent}% of its weight")),
            _ => None,
        };
        let event = match reported {
            Reported::Out => "out",
            Reported::Ramping { .. } => "ramping",
            Reported::InService => "restored",
            Reported::Deferred { .. } => "deferred",
            Reported::GaveUp => "gave_up",
            Reported::OperatorHeld => "operator_state",
            Reported::NotFound => "not_found",
        };
        self.record(key, event, detail);
        Some(reported)
    }

    /// A run for the target failed.
    pub fn run_failed(&mut self, key: &str, now_ms: i64) {
        if let Some(entry) = self.entries.get_mut(key) {
            entry.life.run_failed(now_ms);
            self.record(key, "unknown", Some("its run failed".to_owned()));
        }
    }

    /// An operator's release of `key`.
    pub fn release(&mut self, key: &str, now_ms: i64) -> Released {
        let Some(entry) = self.entries.get_mut(key) else {
            return Released::NotHeld;
        };
        let released = entry.life.release(now_ms);
        if released != Released::NotHeld {
            self.record(
                key,
                "released",
                Some(format!("{released:?}").to_lowercase()),
            );
        }
        released
    }

    /// Whether `key` counts against its backends' budget.
    pub fn counts_out(&self, key: &str) -> bool {
        self.entries
            .get(key)
            .is_some_and(|e| e.life.phase.counts_out())
    }

    /// The policy that applies to a rule.
    pub fn policy(&self, rule: &str) -> &LifecyclePolicy {
        self.policy_for(rule)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lifecycle::test_intent as intent;

    fn four_servers() -> Membership {
        Membership::from_pairs([("app", "s1"), ("app", "s2"), ("app", "s3"), ("app", "s4")])
    }

    fn book() -> Book {
        Book::new(
            LifecyclePolicy::default(),
            BTreeMap::new(),
            PanicPolicy::default(),
            four_servers(),
            BTreeMap::new(),
        )
    }

    fn arrive(book: &mut Book, server: &str, status: AlertStatus) -> Intent {
        let mut placed = intent(server, None, status);
        book.arrive(&mut placed).0.unwrap();
        placed
    }

    fn applied() -> ItemOutcome {
        ItemOutcome::Applied { slowstart: false }
    }

    #[test]
    fn an_alert_without_backend_label_is_placed_in_the_real_backend() {
        let mut b = book();
        let placed = arrive(&mut b, "s1", AlertStatus::Firing);
        assert_eq!(placed.target.key(), "app/s1");
        let mut typo = intent("typo", None, AlertStatus::Firing);
        let (refused, _) = b.arrive(&mut typo);
        let refused = refused.unwrap_err();
        assert_eq!(refused.outcome(), "not_found");
        assert_eq!(
            typo,
            intent("typo", None, AlertStatus::Firing),
            "a refused intent is left as it was"
        );
        assert!(b.entries().is_empty(), "an unknown server takes nothing");
    }

    #[test]
    fn a_whole_life_drain_hold_ramp_restore_is_recorded() {
        let mut b = book();
        let firing = arrive(&mut b, "s1", AlertStatus::Firing);
        let Gate::Run { requested, .. } = b.gate(&firing, 0) else {
            panic!()
        };
        assert_eq!(requested, Requested::Drain);
        b.drained("app/s1", 0).unwrap();
        b.reported("app/s1", Requested::Drain, &applied(), 1);
        let resolved = arrive(&mut b, "s1", AlertStatus::Resolved);
        assert_eq!(b.gate(&resolved, 5_000), Gate::Hold { until_ms: 30_000 });
        let Gate::Run { intent, requested } = b.gate(&resolved, 30_000) else {
            panic!()
        };
        assert_eq!(intent.weight.as_deref(), Some("10%"));
        assert_eq!(intent.state, DesiredState::Enabled);
        b.reported("app/s1", requested, &applied(), 30_000);
        assert_eq!(b.gate(&resolved, 30_001), Gate::Hold { until_ms: 60_000 });
        let Gate::Run { intent, requested } = b.gate(&resolved, 60_000) else {
            panic!()
        };
        assert_eq!(intent.weight.as_deref(), Some("50%"));
        b.reported("app/s1", requested, &applied(), 60_000);
        let Gate::Run { intent, requested } = b.gate(&resolved, 90_000) else {
            panic!()
        };
        assert_eq!(intent.weight, None);
        assert_eq!(
            b.reported("app/s1", requested, &applied(), 90_000),
            Some(Reported::InService)
        );
        assert!(!b.counts_out("app/s1"));
        let events: Vec<&str> = b.take_records().iter().map(|r| r.event).collect();
        assert_eq!(
            events,
            ["drained", "out", "eligible", "ramping", "ramping", "restored"]
        );
        assert!(b.take_records().is_empty());
    }

    #[test]
    fn firing_on_while_out_records_nothing_and_cancelling_a_restore_is_recorded() {
        let mut b = book();
        let firing = arrive(&mut b, "s1", AlertStatus::Firing);
        assert!(matches!(b.gate(&firing, 0), Gate::Run { .. }));
        b.drained("app/s1", 0).unwrap();
        b.reported("app/s1", Requested::Drain, &applied(), 1);
        b.take_records();
        // An alert that goes on firing is gated again at every flush: no journal write each time.
        for at in 1..=3 {
            assert_eq!(b.gate(&firing, at), Gate::Noop);
        }
        assert!(b.take_records().is_empty());
        let resolved = arrive(&mut b, "s1", AlertStatus::Resolved);
        assert_eq!(b.gate(&resolved, 5_000), Gate::Hold { until_ms: 30_000 });
        assert_eq!(b.gate(&firing, 6_000), Gate::Noop);
        let events: Vec<&str> = b.take_records().iter().map(|r| r.event).collect();
        assert_eq!(events, ["eligible", "restore_cancelled"]);
        assert_eq!(
            b.entry("app/s1").unwrap().life.phase,
            Phase::Out { since_ms: 0 }
        );
    }

    #[test]
    fn more_than_half_of_a_backend_alerting_refuses_new_drains_until_it_falls_back() {
        let mut b = book();
        let mut gates = Vec::new();
        let mut entered = Vec::new();
        for s in ["s1", "s2", "s3", "s4"] {
            let mut i = intent(s, None, AlertStatus::Firing);
            let (placed, changes) = b.arrive(&mut i);
            placed.unwrap();
            entered.extend(changes);
            gates.push(i);
        }
        assert_eq!(entered.len(), 1, "{entered:?}");
        assert_eq!(b.panicking().collect::<Vec<_>>(), ["app"]);
        for i in &gates {
            let Gate::Refuse(r) = b.gate(i, 0) else {
                panic!("{i:?}")
            };
            assert_eq!(r.outcome(), "panic");
        }
        for s in ["s4", "s3"] {
            let (_, changes) = b.arrive(&mut intent(s, None, AlertStatus::Resolved));
            assert_eq!(changes.is_empty(), s == "s4");
        }
        assert_eq!(b.panicking().count(), 0);
        assert!(matches!(b.gate(&gates[0], 1), Gate::Run { .. }));
    }

    #[test]
    fn an_alert_for_a_server_the_backend_does_not_have_is_no_part_of_a_panic() {
        let mut b = book();
        for s in ["typo1", "typo2", "typo3"] {
            let (placed, changes) = b.arrive(&mut intent(s, Some("app"), AlertStatus::Firing));
            assert!(placed.is_ok(), "labelled: the module decides");
            assert!(changes.is_empty());
        }
        arrive(&mut b, "s1", AlertStatus::Firing);
        assert_eq!(b.panicking().count(), 0);
    }

    #[test]
    fn the_module_not_finding_a_server_frees_it() {
        let mut b = Book::new(
            LifecyclePolicy::default(),
            BTreeMap::new(),
            PanicPolicy::default(),
            Membership::default(),
            BTreeMap::new(),
        );
        let i = arrive(&mut b, "typo", AlertStatus::Firing);
        assert!(matches!(b.gate(&i, 0), Gate::Run { .. }));
        b.drained("*/typo", 0);
        assert!(b.counts_out("*/typo"));
        b.reported("*/typo", Requested::Drain, &ItemOutcome::NotFound, 1);
        assert!(!b.counts_out("*/typo"));
    }

    #[test]
    fn quarantined_and_operator_targets_are_refused_and_release_is_audited() {
        let mut b = book();
        for t in 0..3 {
            let i = arrive(&mut b, "s1", AlertStatus::Firing);
            assert!(matches!(b.gate(&i, t), Gate::Run { .. }));
            b.drained("app/s1", t);
            // Restored in between, as far as the book is concerned.
            b.entries.get_mut("app/s1").unwrap().life.phase = Phase::InService;
        }
        b.entries.get_mut("app/s1").unwrap().life.phase = Phase::Quarantined { since_ms: 2 };
        let resolved = arrive(&mut b, "s1", AlertStatus::Resolved);
        assert_eq!(b.gate(&resolved, 10), Gate::Park(Refusal::Quarantined));
        assert_eq!(b.release("app/s1", 20), Released::Restore);
        assert!(matches!(b.gate(&resolved, 20), Gate::Run { .. }));
        assert_eq!(b.release("app/none", 20), Released::NotHeld);
        let last = b.take_records().pop().unwrap();
        assert_eq!(last.event, "released");
        assert_eq!(last.detail.as_deref(), Some("restore"));
        let i = arrive(&mut b, "s2", AlertStatus::Firing);
        assert!(matches!(b.gate(&i, 0), Gate::Run { .. }));
        b.drained("app/s2", 0);
        b.reported("app/s2", Requested::Drain, &ItemOutcome::OperatorState, 1);
        let r = arrive(&mut b, "s2", AlertStatus::Resolved);
        assert_eq!(b.gate(&r, 3), Gate::Refuse(Refusal::OperatorState));
        // Firing again: the module looks again, as the operator may have put the server back.
        let again = arrive(&mut b, "s2", AlertStatus::Firing);
        assert!(matches!(b.gate(&again, 4), Gate::Run { .. }));
        b.drained("app/s2", 4);
        b.reported(
            "app/s2",
            Requested::Drain,
            &ItemOutcome::Applied { slowstart: false },
            5,
        );
        assert_eq!(b.entries["app/s2"].life.phase, Phase::Out { since_ms: 4 });
    }

    #[test]
    fn per_rule_policy_applies() {
        let mut rules = BTreeMap::new();
        rules.insert(
            "errors".to_owned(),
            LifecyclePolicy {
                hold_down_base_secs: 5,
                ..LifecyclePolicy::default()
            },
        );
        let mut b = Book::new(
            LifecyclePolicy::default(),
            rules,
            PanicPolicy::default(),
            four_servers(),
            BTreeMap::new(),
        );
        let i = arrive(&mut b, "s1", AlertStatus::Firing);
        b.gate(&i, 0);
        assert_eq!(b.drained("app/s1", 0).unwrap().hold_down_ms, 5_000);
    }
}
