//! A sick server's whole life, not one alert: growing hold-down, health-gated and ramped
//! restore, quarantine, panic, and a budget no alert can poison.
//!
//! [`policy`] holds the settings and their arithmetic, [`life`] one target's state machine,
//! [`report`] reads the module's per-server result, [`panic`] watches backends, [`membership`]
//! places servers in their real backends, [`store`] keeps it all in the journal's database.
//! Everything but [`store`] is pure: the caller passes the time.

pub mod book;
pub mod life;
pub mod membership;
pub mod panic;
pub mod policy;
pub mod report;
pub mod stage;
pub mod store;

#[cfg(test)]
use crate::model::{AlertStatus, DesiredState, Intent, Reason, Target};

/// An intent for `server` as an alert of `status` leads to, for the life cycle's tests.
#[cfg(test)]
pub(crate) fn test_intent(server: &str, backend: Option<&str>, status: AlertStatus) -> Intent {
    Intent {
        target: Target {
            server: Some(server.into()),
            address: None,
            backend: backend.map(Into::into),
        },
        state: match status {
            AlertStatus::Firing => DesiredState::Drain,
            AlertStatus::Resolved => DesiredState::Enabled,
        },
        weight: None,
        fleet: "edge".into(),
        rule: "errors".into(),
        reason: Reason {
            alert: "HighErrorRate".into(),
            fingerprint: "0123456789abcdef".into(),
            status,
        },
        not_before_ms: 0,
    }
}
