//! What the module reads about a server before changing it, beyond its state: HAProxy's health-check
//! verdict, who set its current state, and whether a request must wait (`require_healthy`) or leave
//! it alone (`set_by: autoheal` on a state an operator set).

use haproxy_cfg::{ConfigState, Desired, SetBy};
use serde::Serialize;

use crate::runtime::LiveServer;

/// HAProxy's health check of a server, as the admin socket reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckStatus {
    /// The check passes: HAProxy has the server up (drain keeps checks running).
    Passing,
    /// The check fails: HAProxy has the server down.
    Failing,
    /// The server has no health check.
    None,
    /// No admin socket, the running HAProxy does not know the server, or its checks are paused
    /// (maintenance pauses them).
    Unknown,
}

impl CheckStatus {
    /// `live` is `None` without a socket, `Some(None)` when the running HAProxy lacks the server.
    /// The running HAProxy's view wins over the file's `check` keyword.
    pub fn of(config: &ConfigState, live: Option<Option<&LiveServer>>) -> Self {
        match live.flatten() {
            Some(live) => match live.checked() {
                Some(false) => Self::None,
                None if !config.check => Self::None,
                _ if live.check_paused() => Self::Unknown,
                _ if live.up() => Self::Passing,
                _ => Self::Failing,
            },
            None if !config.check => Self::None,
            None => Self::Unknown,
        }
    }
}

/// Who set a server's current state: the marker's author, else an operator when the server is out
/// (in the file, or live beyond what the file says) without autoheal having recorded it; `None`
/// when it is in service as configured.
pub fn set_by(config: &ConfigState, live: Option<&LiveServer>) -> Option<SetBy> {
    let maint_in_file = config.disabled || config.absent;
    let out_in_file = maint_in_file || config.weight == 0;
    let out_live_beyond_file = live.is_some_and(|live| {
        (live.maint() && !maint_in_file) || (!live.maint() && live.drained() && !out_in_file)
    });
    if out_live_beyond_file {
        return Some(SetBy::Operator);
    }
    config
        .set_by
        .or_else(|| out_in_file.then_some(SetBy::Operator))
}

/// How `set_by` reads in results.
pub fn set_by_label(set_by: SetBy) -> &'static str {
    match set_by {
        SetBy::Autoheal => "autoheal",
        SetBy::Operator => "operator",
    }
}

/// What `require_healthy` decided for a restore.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HealthGate {
    /// The check passes: the restore went ahead.
    Passed,
    /// The server has no check: the restore went ahead on the caller's hold-down alone.
    NoCheck,
    /// No check runs: the server is in maintenance (which pauses checks) or not in the running
    /// HAProxy yet (`absent`, waiting for the reload). Waiting would never end, so the restore went
    /// ahead: HAProxy checks a server at once as it comes back (leaving maintenance, or starting
    /// after the reload) and takes it down again at the first failed check.
    CheckedOnReturn,
    /// The check does not pass (or cannot be read): nothing was changed.
    Deferred,
}

/// Why a server was left alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    /// `set_by: autoheal`, and an operator set the server's current state.
    OperatorState,
}

/// A server (or a `changes` entry) as the caller must read it before trusting `changed`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Standing {
    /// The server exists in the file (`false`: a `changes` entry that designates nothing).
    pub found: bool,
    /// HAProxy's health check.
    pub check_status: CheckStatus,
    /// Who set the current state: `autoheal`, `operator`, or `null` when in service as configured.
    pub set_by: Option<&'static str>,
    /// The `slowstart` of the line in milliseconds, if any.
    pub slowstart: Option<u64>,
    /// What `require_healthy` decided; `null` when it did not apply.
    pub health_gate: Option<HealthGate>,
    /// `require_healthy` held the restore back; nothing was changed.
    pub deferred: bool,
    /// Why, naming the check state.
    pub deferred_reason: Option<String>,
    /// Left alone; nothing was changed.
    pub skipped: bool,
    /// Why.
    pub skip_reason: Option<SkipReason>,
}

impl Standing {
    /// A `changes` entry that designates no server.
    pub fn not_found() -> Self {
        Self {
            found: false,
            check_status: CheckStatus::Unknown,
            set_by: None,
            slowstart: None,
            health_gate: None,
            deferred: false,
            deferred_reason: None,
            skipped: false,
            skip_reason: None,
        }
    }

    /// Nothing may be changed for this server.
    pub fn held(&self) -> bool {
        self.deferred || self.skipped
    }

    /// One standing for a `changes` entry: its first server's, held when any of them is held (an
    /// entry is applied whole or not at all), with every reason.
    pub fn combine<'s>(standings: impl IntoIterator<Item = &'s Standing>) -> Option<Self> {
        let mut standings = standings.into_iter();
        let mut combined = standings.next()?.clone();
        for other in standings {
            combined.deferred |= other.deferred;
            combined.skipped |= other.skipped;
            combined.skip_reason = combined.skip_reason.or(other.skip_reason);
            if other.health_gate == Some(HealthGate::Deferred) {
                combined.health_gate = other.health_gate;
            }
            combined.deferred_reason = match (combined.deferred_reason, &other.deferred_reason) {
                (Some(mine), Some(theirs)) => Some(format!("{mine}; {theirs}")),
                (mine, theirs) => mine.or_else(|| theirs.clone()),
            };
        }
        Some(combined)
    }
}

/// What the request wants, as far as the checks here go.
#[derive(Debug)]
pub struct Asked<'a> {
    /// The state asked for.
    pub desired: &'a Desired,
    /// `require_healthy`.
    pub require_healthy: bool,
    /// `set_by`.
    pub set_by: SetBy,
}

/// A server as found before the run.
#[derive(Debug)]
pub struct Found<'a> {
    /// `backend/server`, for messages.
    pub label: &'a str,
    /// In the file.
    pub config: &'a ConfigState,
    /// `None` without a socket, `Some(None)` when the running HAProxy lacks the server.
    pub live: Option<Option<&'a LiveServer>>,
    /// The request would change the file or the live state.
    pub would_change: bool,
}

/// Reads a server's standing and decides whether the request may touch it.
pub fn assess(asked: &Asked<'_>, found: &Found<'_>) -> Standing {
    let check_status = CheckStatus::of(found.config, found.live);
    let owner = set_by(found.config, found.live.flatten());
    let mut standing = Standing {
        found: true,
        check_status,
        set_by: owner.map(set_by_label),
        slowstart: found.config.slowstart_ms,
        health_gate: None,
        deferred: false,
        deferred_reason: None,
        skipped: false,
        skip_reason: None,
    };
    if asked.set_by == SetBy::Autoheal && owner == Some(SetBy::Operator) {
        standing.skipped = true;
        standing.skip_reason = Some(SkipReason::OperatorState);
        return standing;
    }
    let restore = matches!(asked.desired, Desired::Enabled | Desired::Weight(_));
    if !(asked.require_healthy && restore && found.would_change) {
        return standing;
    }
    let no_check_runs = match found.live {
        None => false,
        Some(None) => true,
        Some(Some(live)) => live.maint(),
    };
    let label = found.label;
    let wait = |why: String| Some(format!("{why}; the restore waits until the check passes"));
    let (gate, reason) = match check_status {
        CheckStatus::Passing => (HealthGate::Passed, None),
        CheckStatus::None => (HealthGate::NoCheck, None),
        CheckStatus::Unknown if no_check_runs => (HealthGate::CheckedOnReturn, None),
        CheckStatus::Failing => (
            HealthGate::Deferred,
            wait(format!(
                "HAProxy's health check of {label} is failing (the server is down)"
            )),
        ),
        CheckStatus::Unknown => (
            HealthGate::Deferred,
            wait(if found.live.is_none() {
                format!("HAProxy's health check of {label} is unknown: no admin socket was given")
            } else {
                format!("HAProxy's health check of {label} is unknown: its checks are paused")
            }),
        ),
    };
    standing.health_gate = Some(gate);
    standing.deferred = reason.is_some();
    standing.deferred_reason = reason;
    standing
}

#[cfg(test)]
mod tests {
    use super::*;
    use haproxy_cfg::WeightSpec;

    fn config(check: bool) -> ConfigState {
        ConfigState {
            weight: 0,
            disabled: false,
            backup: false,
            absent: false,
            managed: Some(Desired::Drain),
            set_by: Some(SetBy::Autoheal),
            original_weight: 10,
            check,
            slowstart_ms: Some(2_000),
        }
    }

    /// srv_check_state values captured from HAProxy 2.6: 6 checked, 14 checked and paused, 0 none.
    fn live(op_state: u32, admin_state: u32, check_state: u32) -> LiveServer {
        LiveServer {
            op_state,
            admin_state,
            weight: 10,
            initial_weight: 10,
            check_state: Some(check_state),
        }
    }

    #[test]
    fn check_status_reads_the_running_haproxy_first() {
        let checked = config(true);
        let drained_up = live(2, 8, 6);
        let drained_down = live(0, 8, 6);
        let maint = live(0, 1, 14);
        let unchecked = live(2, 8, 0);
        let starting = live(1, 0, 6);
        let of =
            |config: &ConfigState, live: Option<Option<&LiveServer>>| CheckStatus::of(config, live);
        assert_eq!(of(&checked, Some(Some(&drained_up))), CheckStatus::Passing);
        assert_eq!(of(&checked, Some(Some(&starting))), CheckStatus::Passing);
        assert_eq!(
            of(&checked, Some(Some(&drained_down))),
            CheckStatus::Failing
        );
        assert_eq!(of(&checked, Some(Some(&maint))), CheckStatus::Unknown);
        // The running HAProxy has no check although the file says `check` (not reloaded yet).
        assert_eq!(of(&checked, Some(Some(&unchecked))), CheckStatus::None);
        assert_eq!(of(&checked, None), CheckStatus::Unknown);
        assert_eq!(of(&checked, Some(None)), CheckStatus::Unknown);
        assert_eq!(of(&config(false), None), CheckStatus::None);
    }

    #[test]
    fn an_out_server_without_an_autoheal_marker_is_an_operators() {
        let mut state = config(true);
        let ready = live(2, 0, 6);
        assert_eq!(set_by(&state, Some(&live(2, 8, 6))), Some(SetBy::Autoheal));
        // Maintenance set on the socket over autoheal's drain is an operator's.
        assert_eq!(set_by(&state, Some(&live(0, 1, 14))), Some(SetBy::Operator));
        state.managed = None;
        state.set_by = None;
        assert_eq!(set_by(&state, None), Some(SetBy::Operator));
        state.weight = 10;
        assert_eq!(set_by(&state, Some(&ready)), None);
        assert_eq!(set_by(&state, Some(&live(2, 8, 6))), Some(SetBy::Operator));
        state.disabled = true;
        assert_eq!(set_by(&state, None), Some(SetBy::Operator));
    }

    fn assess_with(
        desired: &Desired,
        set_by: SetBy,
        config: &ConfigState,
        live: Option<Option<&LiveServer>>,
    ) -> Standing {
        assess(
            &Asked {
                desired,
                require_healthy: true,
                set_by,
            },
            &Found {
                label: "app/web1",
                config,
                live,
                would_change: true,
            },
        )
    }

    #[test]
    fn require_healthy_defers_failing_and_unknown_checks_only() {
        let enabled = Desired::Enabled;
        let state = config(true);
        let down = live(0, 8, 6);
        let deferred = assess_with(&enabled, SetBy::Autoheal, &state, Some(Some(&down)));
        assert!(deferred.deferred && deferred.held());
        assert_eq!(deferred.health_gate, Some(HealthGate::Deferred));
        assert!(deferred.deferred_reason.unwrap().contains("failing"));
        let blind = assess_with(&enabled, SetBy::Autoheal, &state, None);
        assert!(blind.deferred_reason.unwrap().contains("no admin socket"));
        let up = live(2, 8, 6);
        let ramp = Desired::Weight(WeightSpec::Percent(10));
        let passed = assess_with(&ramp, SetBy::Autoheal, &state, Some(Some(&up)));
        assert_eq!(
            (passed.deferred, passed.health_gate),
            (false, Some(HealthGate::Passed))
        );
        assert_eq!(
            (passed.set_by, passed.slowstart),
            (Some("autoheal"), Some(2_000))
        );
        let no_check = assess_with(&enabled, SetBy::Autoheal, &config(false), None);
        assert_eq!(no_check.health_gate, Some(HealthGate::NoCheck));
        let mut disabled = config(true);
        (disabled.disabled, disabled.managed) = (true, Some(Desired::Disabled));
        let maint = live(0, 1, 14);
        let from_maint = assess_with(&enabled, SetBy::Autoheal, &disabled, Some(Some(&maint)));
        assert_eq!(
            (from_maint.deferred, from_maint.health_gate),
            (false, Some(HealthGate::CheckedOnReturn))
        );
        let absent = assess_with(&enabled, SetBy::Autoheal, &disabled, Some(None));
        assert_eq!(absent.health_gate, Some(HealthGate::CheckedOnReturn));
        // Drains are never gated.
        let drain = assess_with(&Desired::Drain, SetBy::Autoheal, &state, Some(Some(&down)));
        assert_eq!((drain.deferred, drain.health_gate), (false, None));
    }

    #[test]
    fn autoheal_leaves_an_operators_state_alone_and_operators_are_never_skipped() {
        let mut state = config(true);
        state.set_by = Some(SetBy::Operator);
        let up = live(2, 8, 6);
        let skipped = assess_with(&Desired::Enabled, SetBy::Autoheal, &state, Some(Some(&up)));
        assert_eq!(
            (skipped.skipped, skipped.skip_reason, skipped.health_gate),
            (true, Some(SkipReason::OperatorState), None)
        );
        let operator = assess_with(&Desired::Enabled, SetBy::Operator, &state, Some(Some(&up)));
        assert!(!operator.held());
        // An operator drained the server on the socket only: autoheal's drain does not adopt it
        // (adopting it would let autoheal's restore end the operator's maintenance).
        let mut in_service = config(true);
        (in_service.weight, in_service.managed, in_service.set_by) = (10, None, None);
        let adopted = assess_with(
            &Desired::Drain,
            SetBy::Autoheal,
            &in_service,
            Some(Some(&up)),
        );
        assert_eq!(adopted.skip_reason, Some(SkipReason::OperatorState));
    }

    #[test]
    fn an_entry_is_held_when_any_of_its_servers_is() {
        let state = config(true);
        let up = live(2, 8, 6);
        let down = live(0, 8, 6);
        let ok = assess_with(&Desired::Enabled, SetBy::Autoheal, &state, Some(Some(&up)));
        let bad = assess_with(
            &Desired::Enabled,
            SetBy::Autoheal,
            &state,
            Some(Some(&down)),
        );
        let combined = Standing::combine([&ok, &bad]).unwrap();
        assert!(combined.deferred);
        assert_eq!(combined.health_gate, Some(HealthGate::Deferred));
        assert_eq!(combined.check_status, CheckStatus::Passing);
        assert_eq!(Standing::combine([]), None);
    }
}
