//! One target's life cycle: taken out, held down, restored behind the health gate in ramp
//! steps, quarantined when it keeps coming back, left alone when a person owns its state.
//!
//! Pure: every method takes `now` and the rule's policy; the relay persists the value (see
//! [`super::store`]) after each event, so a restart keeps the hold-down, deferral and quarantine.
//!
//! ```text
//!  in_service --drain--> out --resolved--> eligible --due--> restore step
//!      ^                  ^  \                ^                |  deferred -> deferred --deadline--> gave_up
//!      |                  |   `-Nth drain in window-> quarantined --release--> eligible
//!      |                  `----- firing during the ramp (hold-down grows) --- ramping <-'
//!      `----------------------------- last step applied ------------------'
//! ```

use serde::{Deserialize, Serialize};

use super::policy::LifecyclePolicy;
use super::report::ItemOutcome;

/// Where a target is in its life cycle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "phase", rename_all = "snake_case")]
pub enum Phase {
    /// Nothing autoheal did is in effect.
    InService,
    /// Taken out by autoheal while its alert fires.
    Out {
        /// When it was taken out.
        since_ms: i64,
    },
    /// Its alert resolved: it may be restored from `restore_at_ms` (restore delay, hold-down).
    Eligible {
        /// When it was taken out.
        since_ms: i64,
        /// Earliest restore.
        restore_at_ms: i64,
    },
    /// The module deferred its restore (health check not passing): retried with backoff.
    Deferred {
        /// When it was taken out.
        since_ms: i64,
        /// Deferrals so far.
        attempt: u32,
        /// Next try.
        retry_at_ms: i64,
        /// No try after this: the target stays out.
        give_up_at_ms: i64,
    },
    /// Restored to a share of its weight; the next step is due at `next_at_ms`.
    Ramping {
        /// The share now in place, in percent of the recorded weight.
        percent: u8,
        /// Next step.
        next_at_ms: i64,
    },
    /// Remediated too often: stays out until an operator releases it.
    Quarantined {
        /// Since when.
        since_ms: i64,
    },
    /// Its restore stayed deferred past the deadline: stays out until it fires and resolves
    /// again or an operator releases it.
    GaveUp {
        /// Since when.
        since_ms: i64,
    },
    /// A person set its state: autoheal never restores it.
    OperatorHeld {
        /// When the module said so.
        since_ms: i64,
    },
    /// A run for it failed: its real state is unknown until read back.
    Unknown {
        /// Since when.
        since_ms: i64,
    },
    /// The module found no such server: nothing is out.
    NotFound {
        /// When the module said so.
        since_ms: i64,
    },
}

/// Every phase name, for gauges that must show zeros too.
pub const PHASES: &[&str] = &[
    "in_service",
    "out",
    "eligible",
    "deferred",
    "ramping",
    "quarantined",
    "gave_up",
    "operator_state",
    "unknown",
    "not_found",
];

impl Phase {
    /// The name used in the journal, `history` and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            Self::InService => "in_service",
            Self::Out { .. } => "out",
            Self::Eligible { .. } => "eligible",
            Self::Deferred { .. } => "deferred",
            Self::Ramping { .. } => "ramping",
            Self::Quarantined { .. } => "quarantined",
            Self::GaveUp { .. } => "gave_up",
            Self::OperatorHeld { .. } => "operator_state",
            Self::Unknown { .. } => "unknown",
            Self::NotFound { .. } => "not_found",
        }
    }

    /// Whether the server counts against its backend's budget: anything not fully in service,
    /// except a server that does not exist and one whose state a person set (the relay would not
    /// learn when they put it back; the module's `min_active` counts the live state on each load
    /// balancer). A ramping server counts until its last step.
    pub fn counts_out(&self) -> bool {
        !matches!(
            self,
            Self::InService | Self::NotFound { .. } | Self::OperatorHeld { .. }
        )
    }
}

/// One target's life cycle, as persisted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetLife {
    /// Where it is.
    pub phase: Phase,
    /// When it was taken out, within the quarantine window (oldest first).
    pub remediations_ms: Vec<i64>,
    /// Recent remediations for the hold-down (`n` of `base × 2^(n-1)`), as of `clean_since_ms`.
    pub strikes: u32,
    /// Back in service since then (no decay while it is out).
    pub clean_since_ms: Option<i64>,
}

impl Default for TargetLife {
    fn default() -> Self {
        Self {
            phase: Phase::InService,
            remediations_ms: Vec::new(),
            strikes: 0,
            clean_since_ms: None,
        }
    }
}

/// What a firing alert may do to the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Firing {
    /// Take it out (subject to panic and budget); call [`TargetLife::drained`] once admitted.
    Drain,
    /// It is still out and nothing was pending: nothing to run, nothing to record.
    AlreadyOut,
    /// It is still out and the restore that was pending is cancelled: nothing to run.
    RestoreCancelled,
    /// It is quarantined: it stays out, nothing to run.
    Quarantined,
}

/// The result of taking the target out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Drained {
    /// The hold-down this remediation earned, in milliseconds.
    pub hold_down_ms: i64,
    /// The `n` it was computed from.
    pub strikes: u32,
    /// This remediation quarantined it.
    pub quarantined: bool,
}

/// What a resolved alert does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolved {
    /// Eligible for restore from this time.
    RestoreAt(i64),
    /// Quarantined: not restored automatically.
    Quarantined,
    /// A person set its state: not restored.
    OperatorHeld,
    /// Nothing of autoheal's to undo.
    Nothing,
}

/// A restore step to run now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestoreStep {
    /// Share of the recorded weight, or `None` for the full restore (clears the marker).
    pub percent: Option<u8>,
}

/// What was asked of the module for this target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requested {
    /// Take it out.
    Drain,
    /// A restore step.
    Restore(RestoreStep),
}

/// What the module's answer did to the life cycle (audited; the outcome names are the
/// journal's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reported {
    /// Out as asked.
    Out,
    /// Restored to a share of its weight; next step at.
    Ramping {
        /// Share in place.
        percent: u8,
        /// Next step.
        next_at_ms: i64,
    },
    /// Fully back in service.
    InService,
    /// Restore deferred; retried at.
    Deferred {
        /// Next try.
        retry_at_ms: i64,
    },
    /// Restore deferred past the deadline: given up, the target stays out.
    GaveUp,
    /// A person set its state: recorded, not touched.
    OperatorHeld,
    /// No such server: not counted out.
    NotFound,
}

impl Reported {
    /// The journal outcome of the decision that asked for it.
    pub fn outcome(self) -> &'static str {
        match self {
            Self::Out | Self::Ramping { .. } | Self::InService => "done",
            Self::Deferred { .. } => "deferred",
            Self::GaveUp => "gave_up",
            Self::OperatorHeld => "operator_state",
            Self::NotFound => "not_found",
        }
    }
}

/// What an operator's `release` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Released {
    /// Eligible for restore now (its record of remediations is cleared); the restore still
    /// goes through the health gate.
    Restore,
    /// Forgotten: no longer counted out (unknown, not found, operator-held).
    Cleared,
    /// Nothing held it: refused.
    NotHeld,
}

impl TargetLife {
    /// The strikes left at `now`: one is forgotten per full clean period in service.
    pub fn strikes_at(&self, now_ms: i64, policy: &LifecyclePolicy) -> u32 {
        let decay = policy.decay_ms();
        match self.clean_since_ms {
            Some(since) if decay > 0 && self.phase == Phase::InService => {
                let periods = now_ms.saturating_sub(since).max(0) / decay;
                self.strikes
                    .saturating_sub(u32::try_from(periods).unwrap_or(u32::MAX))
            }
            _ => self.strikes,
        }
    }

    /// A firing alert for the target.
    pub fn on_firing(&mut self) -> Firing {
        match self.phase {
            // A person's state may have been given back since the module last saw it: the module
            // looks again (`set_by: autoheal` leaves it alone if it is still theirs).
            Phase::InService
            | Phase::NotFound { .. }
            | Phase::Unknown { .. }
            | Phase::OperatorHeld { .. } => Firing::Drain,
            Phase::Ramping { .. } => Firing::Drain,
            Phase::Out { .. } => Firing::AlreadyOut,
            Phase::Eligible { since_ms, .. }
            | Phase::Deferred { since_ms, .. }
            | Phase::GaveUp { since_ms } => {
                self.phase = Phase::Out { since_ms };
                Firing::RestoreCancelled
            }
            Phase::Quarantined { .. } => Firing::Quarantined,
        }
    }

    /// The drain was admitted: count the remediation, grow the hold-down, quarantine at the
    /// policy's count within its window.
    pub fn drained(&mut self, now_ms: i64, policy: &LifecyclePolicy) -> Drained {
        let strikes = self.strikes_at(now_ms, policy).saturating_add(1);
        self.strikes = strikes;
        self.clean_since_ms = None;
        let window_start = now_ms.saturating_sub(policy.quarantine_window_ms());
        self.remediations_ms.retain(|t| *t > window_start);
        self.remediations_ms.push(now_ms);
        let quarantined = policy.quarantine_after > 0
            && self.remediations_ms.len()
                >= usize::try_from(policy.quarantine_after).unwrap_or(usize::MAX);
        self.phase = if quarantined {
            Phase::Quarantined { since_ms: now_ms }
        } else {
            Phase::Out { since_ms: now_ms }
        };
        Drained {
            hold_down_ms: policy.hold_down_ms(strikes),
            strikes,
            quarantined,
        }
    }

    /// The alert resolved: eligible after the restore delay and the hold-down, whichever ends
    /// later (the hold-down counts from when the target was taken out).
    pub fn on_resolved(
        &mut self,
        now_ms: i64,
        restore_delay_ms: i64,
        policy: &LifecyclePolicy,
    ) -> Resolved {
        let since_ms = match self.phase {
            Phase::Out { since_ms } => since_ms,
            Phase::Unknown { .. } => now_ms,
            Phase::Quarantined { .. } => return Resolved::Quarantined,
            Phase::OperatorHeld { .. } => return Resolved::OperatorHeld,
            _ => return Resolved::Nothing,
        };
        let restore_at_ms = now_ms
            .saturating_add(restore_delay_ms)
            .max(since_ms.saturating_add(policy.hold_down_ms(self.strikes)));
        self.phase = Phase::Eligible {
            since_ms,
            restore_at_ms,
        };
        Resolved::RestoreAt(restore_at_ms)
    }

    /// When the next restore step is due, if one is planned.
    pub fn next_due_ms(&self) -> Option<i64> {
        match self.phase {
            Phase::Eligible { restore_at_ms, .. } => Some(restore_at_ms),
            Phase::Deferred { retry_at_ms, .. } => Some(retry_at_ms),
            Phase::Ramping { next_at_ms, .. } => Some(next_at_ms),
            _ => None,
        }
    }

    /// The restore step to run at `now`, if one is due.
    pub fn due(&self, now_ms: i64, policy: &LifecyclePolicy) -> Option<RestoreStep> {
        if self.next_due_ms()? > now_ms {
            return None;
        }
        let steps = policy.partial_steps();
        let percent = match self.phase {
            Phase::Ramping { percent, .. } => steps.iter().copied().find(|p| *p > percent),
            _ => steps.first().copied(),
        };
        Some(RestoreStep { percent })
    }

    /// The module's answer for the target after a successful run.
    pub fn reported(
        &mut self,
        now_ms: i64,
        requested: Requested,
        outcome: &ItemOutcome,
        policy: &LifecyclePolicy,
    ) -> Reported {
        match outcome {
            ItemOutcome::NotFound => {
                // A server that does not exist was not remediated: forget what its drain counted.
                if requested == Requested::Drain && self.remediations_ms.last().is_some() {
                    self.remediations_ms.pop();
                    self.strikes = self.strikes.saturating_sub(1);
                }
                self.phase = Phase::NotFound { since_ms: now_ms };
                Reported::NotFound
            }
            ItemOutcome::OperatorState => {
                if requested == Requested::Drain && self.remediations_ms.last().is_some() {
                    self.remediations_ms.pop();
                    self.strikes = self.strikes.saturating_sub(1);
                }
                self.phase = Phase::OperatorHeld { since_ms: now_ms };
                Reported::OperatorHeld
            }
            ItemOutcome::Deferred { .. } => self.deferred(now_ms, policy),
            ItemOutcome::Applied { slowstart } => match requested {
                Requested::Drain => {
                    if let Phase::Unknown { .. } | Phase::InService | Phase::NotFound { .. } =
                        self.phase
                    {
                        self.phase = Phase::Out { since_ms: now_ms };
                    }
                    Reported::Out
                }
                Requested::Restore(RestoreStep {
                    percent: Some(percent),
                    ..
                }) => {
                    // With `slowstart` HAProxy ramps the server itself: the full restore next.
                    let next_at_ms = if *slowstart && policy.ramp_trust_slowstart {
                        now_ms
                    } else {
                        now_ms.saturating_add(policy.ramp_step_ms())
                    };
                    let percent = if *slowstart && policy.ramp_trust_slowstart {
                        policy.partial_steps().last().copied().unwrap_or(percent)
                    } else {
                        percent
                    };
                    self.phase = Phase::Ramping {
                        percent,
                        next_at_ms,
                    };
                    Reported::Ramping {
                        percent,
                        next_at_ms,
                    }
                }
                Requested::Restore(RestoreStep { percent: None, .. }) => {
                    self.phase = Phase::InService;
                    self.clean_since_ms = Some(now_ms);
                    Reported::InService
                }
            },
        }
    }

    fn deferred(&mut self, now_ms: i64, policy: &LifecyclePolicy) -> Reported {
        let (since_ms, attempt, give_up_at_ms) = match self.phase {
            Phase::Deferred {
                since_ms,
                attempt,
                give_up_at_ms,
                ..
            } => (since_ms, attempt.saturating_add(1), give_up_at_ms),
            Phase::Eligible { since_ms, .. } => (
                since_ms,
                1,
                now_ms.saturating_add(policy.defer_deadline_ms()),
            ),
            _ => (now_ms, 1, now_ms.saturating_add(policy.defer_deadline_ms())),
        };
        if now_ms >= give_up_at_ms {
            self.phase = Phase::GaveUp { since_ms: now_ms };
            return Reported::GaveUp;
        }
        let retry_at_ms = now_ms
            .saturating_add(policy.defer_retry_ms(attempt))
            .min(give_up_at_ms);
        self.phase = Phase::Deferred {
            since_ms,
            attempt,
            retry_at_ms,
            give_up_at_ms,
        };
        Reported::Deferred { retry_at_ms }
    }

    /// A run for the target failed: its state is unknown until read back.
    pub fn run_failed(&mut self, now_ms: i64) {
        if !matches!(
            self.phase,
            Phase::OperatorHeld { .. } | Phase::Unknown { .. }
        ) {
            self.phase = Phase::Unknown { since_ms: now_ms };
        }
    }

    /// An operator's `release`.
    pub fn release(&mut self, now_ms: i64) -> Released {
        match self.phase {
            Phase::Quarantined { since_ms } | Phase::GaveUp { since_ms } => {
                self.remediations_ms.clear();
                self.strikes = 0;
                self.phase = Phase::Eligible {
                    since_ms,
                    restore_at_ms: now_ms,
                };
                Released::Restore
            }
            Phase::Unknown { .. } | Phase::NotFound { .. } | Phase::OperatorHeld { .. } => {
                self.phase = Phase::InService;
                self.clean_since_ms = Some(now_ms);
                Released::Cleared
            }
            _ => Released::NotHeld,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;

    fn policy() -> LifecyclePolicy {
        LifecyclePolicy::default()
    }

    fn applied() -> ItemOutcome {
        ItemOutcome::Applied { slowstart: false }
    }

    fn deferred() -> ItemOutcome {
        ItemOutcome::Deferred {
            reason: "check failing".into(),
        }
    }

    /// Runs every step due at `now` with the module answering `outcome`; returns the reports.
    fn run_due(life: &mut TargetLife, now: i64, outcome: &ItemOutcome) -> Option<Reported> {
        let step = life.due(now, &policy())?;
        Some(life.reported(now, Requested::Restore(step), outcome, &policy()))
    }

    /// Drains at `at`, resolves right away (no restore delay) and returns when it may be restored.
    fn drain_and_resolve(life: &mut TargetLife, at: i64) -> i64 {
        assert_eq!(life.on_firing(), Firing::Drain);
        life.drained(at, &policy());
        life.reported(at, Requested::Drain, &applied(), &policy());
        match life.on_resolved(at, 0, &policy()) {
            Resolved::RestoreAt(t) => t,
            other => panic!("{other:?}"),
        }
    }

    /// Restores fully (three ramp steps, check passing) from `at`; returns when it is back.
    fn restore_fully(life: &mut TargetLife, mut at: i64) -> i64 {
        while life.phase != Phase::InService {
            at = life.next_due_ms().expect("a step is planned").max(at);
            run_due(life, at, &applied()).expect("due");
        }
        at
    }

    #[test]
    fn hold_down_grows_with_each_remediation_up_to_the_cap() {
        let mut life = TargetLife::default();
        let mut now = 0;
        let mut holds = Vec::new();
        for _ in 0..6 {
            let restore_at = drain_and_resolve(&mut life, now);
            holds.push(restore_at - now);
            now = restore_fully(&mut life, restore_at) + MIN;
            // Keep under the quarantine count: only the hold-down is looked at here.
            life.remediations_ms.clear();
        }
        assert_eq!(holds, [30_000, 60_000, 120_000, 240_000, 300_000, 300_000]);
    }

    #[test]
    fn restore_delay_longer_than_the_hold_down_wins() {
        let mut life = TargetLife::default();
        life.drained(0, &policy());
        assert_eq!(
            life.on_resolved(1_000, 90_000, &policy()),
            Resolved::RestoreAt(91_000)
        );
        let mut life = TargetLife::default();
        life.drained(0, &policy());
        assert_eq!(
            life.on_resolved(1_000, 5_000, &policy()),
            Resolved::RestoreAt(30_000),
            "the hold-down counts from the drain"
        );
    }

    #[test]
    fn hold_down_decays_one_step_per_clean_period() {
        let p = policy();
        let mut life = TargetLife::default();
        let mut now = 0;
        for _ in 0..3 {
            let at = drain_and_resolve(&mut life, now);
            now = restore_fully(&mut life, at);
            life.remediations_ms.clear();
        }
        assert_eq!(life.strikes_at(now, &p), 3);
        assert_eq!(life.strikes_at(now + 599_999, &p), 3);
        assert_eq!(life.strikes_at(now + 600_000, &p), 2);
        assert_eq!(life.strikes_at(now + 1_800_000, &p), 0);
        // Two clean periods later the next drain is the second recent one, not the fourth.
        let drained = life.drained(now + 1_200_000, &p);
        assert_eq!(drained.strikes, 2);
        assert_eq!(drained.hold_down_ms, 60_000);
        // No decay while out.
        assert_eq!(life.strikes_at(now + 99_000_000, &p), 2);
    }

    #[test]
    fn a_resolved_alert_makes_eligible_and_restores_in_ramp_steps() {
        let mut life = TargetLife::default();
        let restore_at = drain_and_resolve(&mut life, 0);
        assert_eq!(life.phase.name(), "eligible");
        assert_eq!(
            life.due(restore_at - 1, &policy()),
            None,
            "not before the hold-down"
        );
        let first = life.due(restore_at, &policy()).unwrap();
        assert_eq!(first, RestoreStep { percent: Some(10) });
        assert_eq!(
            life.reported(restore_at, Requested::Restore(first), &applied(), &policy()),
            Reported::Ramping {
                percent: 10,
                next_at_ms: restore_at + 30_000
            }
        );
        assert!(life.phase.counts_out(), "a ramping server still counts out");
        assert_eq!(life.due(restore_at + 29_999, &policy()), None);
        let second = life.due(restore_at + 30_000, &policy()).unwrap();
        assert_eq!(second.percent, Some(50));
        life.reported(
            restore_at + 30_000,
            Requested::Restore(second),
            &applied(),
            &policy(),
        );
        let last = life.due(restore_at + 60_000, &policy()).unwrap();
        assert_eq!(last.percent, None, "the last step is the full restore");
        assert_eq!(
            life.reported(
                restore_at + 60_000,
                Requested::Restore(last),
                &applied(),
                &policy()
            ),
            Reported::InService
        );
        assert!(!life.phase.counts_out());
        assert_eq!(life.due(restore_at + 999_999, &policy()), None);
    }

    #[test]
    fn slowstart_replaces_the_remaining_steps() {
        let mut life = TargetLife::default();
        let at = drain_and_resolve(&mut life, 0);
        let step = life.due(at, &policy()).unwrap();
        let r = life.reported(
            at,
            Requested::Restore(step),
            &ItemOutcome::Applied { slowstart: true },
            &policy(),
        );
        assert_eq!(
            r,
            Reported::Ramping {
                percent: 50,
                next_at_ms: at
            }
        );
        assert_eq!(life.due(at, &policy()).unwrap().percent, None);
        let no_trust = LifecyclePolicy {
            ramp_trust_slowstart: false,
            ..policy()
        };
        let mut life = TargetLife::default();
        let at = drain_and_resolve(&mut life, 0);
        let step = life.due(at, &no_trust).unwrap();
        life.reported(
            at,
            Requested::Restore(step),
            &ItemOutcome::Applied { slowstart: true },
            &no_trust,
        );
        assert_eq!(life.due(at + 30_000, &no_trust).unwrap().percent, Some(50));
    }

    #[test]
    fn a_one_step_policy_restores_at_once() {
        let p = LifecyclePolicy {
            ramp_percent: vec![100],
            ..policy()
        };
        let mut life = TargetLife::default();
        life.drained(0, &p);
        life.on_resolved(0, 0, &p);
        assert_eq!(life.due(30_000, &p), Some(RestoreStep { percent: None }));
    }

    #[test]
    fn firing_during_the_ramp_drains_again_with_a_longer_hold_down() {
        let mut life = TargetLife::default();
        let at = drain_and_resolve(&mut life, 0);
        run_due(&mut life, at, &applied());
        assert_eq!(life.phase.name(), "ramping");
        assert_eq!(life.on_firing(), Firing::Drain);
        let d = life.drained(at + 5_000, &policy());
        assert_eq!(d.strikes, 2);
        assert_eq!(d.hold_down_ms, 60_000);
        assert_eq!(
            life.on_resolved(at + 6_000, 0, &policy()),
            Resolved::RestoreAt(at + 65_000)
        );
    }

    #[test]
    fn firing_again_before_the_restore_cancels_it_without_counting() {
        let mut life = TargetLife::default();
        let at = drain_and_resolve(&mut life, 0);
        assert_eq!(life.on_firing(), Firing::RestoreCancelled);
        assert_eq!(life.phase, Phase::Out { since_ms: 0 });
        assert_eq!(life.due(at, &policy()), None);
        assert_eq!(life.remediations_ms.len(), 1);
        // Firing on while it is out changes nothing.
        assert_eq!(life.on_firing(), Firing::AlreadyOut);
        // Same for a deferred restore: still out since the drain.
        life.on_resolved(at, 0, &policy());
        run_due(&mut life, at, &deferred());
        assert_eq!(life.on_firing(), Firing::RestoreCancelled);
        assert_eq!(life.phase, Phase::Out { since_ms: 0 });
    }

    #[test]
    fn deferral_retries_with_backoff_and_gives_up_at_the_deadline() {
        let mut life = TargetLife::default();
        let mut now = drain_and_resolve(&mut life, 0);
        let mut waits = Vec::new();
        let report = loop {
            let r = run_due(&mut life, now, &deferred()).expect("a retry is due");
            match r {
                Reported::Deferred { retry_at_ms } => {
                    assert_eq!(r.outcome(), "deferred");
                    assert!(life.phase.counts_out());
                    waits.push(retry_at_ms - now);
                    now = retry_at_ms;
                }
                other => break other,
            }
        };
        assert_eq!(report, Reported::GaveUp);
        assert_eq!(report.outcome(), "gave_up");
        assert_eq!(
            &waits[..6],
            [10_000, 20_000, 40_000, 80_000, 120_000, 120_000]
        );
        // The deadline is 30 min after the first deferral (at 30 s), the last wait is cut to it.
        assert_eq!(now, 30_000 + 1_800_000);
        assert_eq!(life.phase.name(), "gave_up");
        assert!(life.phase.counts_out());
        assert_eq!(life.due(now + 10 * MIN, &policy()), None, "no more tries");
    }

    #[test]
    fn a_passing_check_after_deferrals_resumes_the_ramp() {
        let mut life = TargetLife::default();
        let at = drain_and_resolve(&mut life, 0);
        let Some(Reported::Deferred { retry_at_ms }) = run_due(&mut life, at, &deferred()) else {
            panic!()
        };
        let step = life.due(retry_at_ms, &policy()).unwrap();
        assert_eq!(step.percent, Some(10), "the ramp starts at its first step");
        assert!(matches!(
            life.reported(retry_at_ms, Requested::Restore(step), &applied(), &policy()),
            Reported::Ramping { percent: 10, .. }
        ));
    }

    #[test]
    fn the_third_remediation_within_the_window_quarantines() {
        let mut life = TargetLife::default();
        let mut now = 0;
        for round in 1..=2 {
            let at = drain_and_resolve(&mut life, now);
            now = restore_fully(&mut life, at) + MIN;
            assert_eq!(life.phase, Phase::InService, "round {round}");
        }
        assert_eq!(life.on_firing(), Firing::Drain);
        let d = life.drained(now, &policy());
        assert!(d.quarantined);
        assert_eq!(life.phase.name(), "quarantined");
        assert_eq!(
            life.on_resolved(now + 1, 0, &policy()),
            Resolved::Quarantined
        );
        assert_eq!(
            life.due(now + 99 * MIN, &policy()),
            None,
            "never restored by itself"
        );
        assert_eq!(life.on_firing(), Firing::Quarantined);
        assert!(life.phase.counts_out());
        // Released: eligible at once, record cleared, restored through the health gate.
        assert_eq!(life.release(now + 2 * MIN), Released::Restore);
        assert_eq!(life.remediations_ms.len(), 0);
        assert_eq!(life.strikes, 0);
        assert!(life.due(now + 2 * MIN, &policy()).is_some());
        assert_eq!(life.release(now + 2 * MIN), Released::NotHeld);
    }

    #[test]
    fn remediations_spread_beyond_the_window_do_not_quarantine() {
        let mut life = TargetLife::default();
        let mut now = 0;
        for _ in 0..5 {
            let at = drain_and_resolve(&mut life, now);
            restore_fully(&mut life, at);
            now += 31 * MIN;
        }
        assert_eq!(life.phase, Phase::InService);
        assert!(life.remediations_ms.len() <= 2);
        let never = LifecyclePolicy {
            quarantine_after: 0,
            ..policy()
        };
        let mut life = TargetLife::default();
        for t in 0..10 {
            assert!(!life.drained(t, &never).quarantined);
        }
    }

    #[test]
    fn a_server_that_does_not_exist_is_not_out_and_not_counted() {
        let mut life = TargetLife::default();
        assert_eq!(life.on_firing(), Firing::Drain);
        life.drained(0, &policy());
        assert!(life.phase.counts_out(), "counted while the run is on");
        let r = life.reported(1, Requested::Drain, &ItemOutcome::NotFound, &policy());
        assert_eq!(r, Reported::NotFound);
        assert_eq!(r.outcome(), "not_found");
        assert!(!life.phase.counts_out());
        assert!(life.remediations_ms.is_empty());
        assert_eq!(life.strikes, 0);
        assert_eq!(life.on_resolved(2, 0, &policy()), Resolved::Nothing);
        // Created later under that name, it is an ordinary first remediation.
        assert_eq!(life.on_firing(), Firing::Drain);
        assert_eq!(life.drained(3, &policy()).strikes, 1);
    }

    #[test]
    fn an_operator_state_is_never_touched() {
        let mut life = TargetLife::default();
        life.drained(0, &policy());
        let r = life.reported(0, Requested::Drain, &ItemOutcome::OperatorState, &policy());
        assert_eq!(r, Reported::OperatorHeld);
        assert_eq!(r.outcome(), "operator_state");
        assert!(
            life.remediations_ms.is_empty(),
            "not autoheal's remediation"
        );
        assert_eq!(life.on_resolved(1, 0, &policy()), Resolved::OperatorHeld);
        assert_eq!(life.due(99 * MIN, &policy()), None);
        assert!(
            !life.phase.counts_out(),
            "an operator's server would count out after they put it back"
        );
        life.run_failed(5);
        assert_eq!(
            life.phase.name(),
            "operator_state",
            "a failed run does not forget it"
        );
        // The restore refused by the module for an operator state.
        let mut life = TargetLife::default();
        let at = drain_and_resolve(&mut life, 0);
        let step = life.due(at, &policy()).unwrap();
        life.reported(
            at,
            Requested::Restore(step),
            &ItemOutcome::OperatorState,
            &policy(),
        );
        assert_eq!(life.phase.name(), "operator_state");
        assert_eq!(life.release(at + 1), Released::Cleared);
        assert_eq!(life.phase, Phase::InService);
    }

    #[test]
    fn an_unknown_target_is_settled_by_its_next_run_or_a_release() {
        let p = policy();
        let unknown = || {
            let mut life = TargetLife::default();
            life.drained(0, &p);
            life.run_failed(1);
            assert_eq!(life.phase.name(), "unknown");
            assert!(
                life.phase.counts_out(),
                "counted out until a run reports it"
            );
            life
        };
        // A later drain of the same target runs and settles it.
        let mut life = unknown();
        assert_eq!(life.on_firing(), Firing::Drain);
        life.reported(3, Requested::Drain, &applied(), &p);
        assert_eq!(life.phase, Phase::Out { since_ms: 3 });
        // Its alert resolving makes it eligible: the restore's result settles it.
        let mut life = unknown();
        assert!(matches!(life.on_resolved(2, 0, &p), Resolved::RestoreAt(_)));
        // And the operator can clear it.
        let mut life = unknown();
        assert_eq!(life.release(4), Released::Cleared);
        assert!(!life.phase.counts_out());
    }

    #[test]
    fn every_phase_is_listed_for_the_gauges() {
        let phases = [
            Phase::InService,
            Phase::Out { since_ms: 0 },
            Phase::Eligible {
                since_ms: 0,
                restore_at_ms: 0,
            },
            Phase::Deferred {
                since_ms: 0,
                attempt: 1,
                retry_at_ms: 0,
                give_up_at_ms: 0,
            },
            Phase::Ramping {
                percent: 10,
                next_at_ms: 0,
            },
            Phase::Quarantined { since_ms: 0 },
            Phase::GaveUp { since_ms: 0 },
            Phase::OperatorHeld { since_ms: 0 },
            Phase::Unknown { since_ms: 0 },
            Phase::NotFound { since_ms: 0 },
        ];
        let names: Vec<&str> = phases.iter().map(Phase::name).collect();
        assert_eq!(names, PHASES);
    }

    #[test]
    fn the_phase_round_trips_through_json_with_its_name_as_tag() {
        let mut life = TargetLife::default();
        let at = drain_and_resolve(&mut life, 0);
        run_due(&mut life, at, &deferred());
        let text = serde_json::to_string(&life).unwrap();
        assert!(text.contains("\"phase\":\"deferred\""), "{text}");
        assert_eq!(serde_json::from_str::<TargetLife>(&text).unwrap(), life);
    }
}
