//! What the relay wants done to a server, and the `autoheal_actions` contract the playbook reads.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::AlertStatus;

/// The state the playbook is asked to put a server in (the `autoheal_actions` contract).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DesiredState {
    /// In service (also: restore what autoheal changed).
    Enabled,
    /// No new traffic.
    Drain,
    /// Maintenance.
    Disabled,
    /// Commented out.
    Absent,
}

impl DesiredState {
    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Enabled => "enabled",
            Self::Drain => "drain",
            Self::Disabled => "disabled",
            Self::Absent => "absent",
        }
    }

    /// Parses the lower-case name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "enabled" => Some(Self::Enabled),
            "drain" => Some(Self::Drain),
            "disabled" => Some(Self::Disabled),
            "absent" => Some(Self::Absent),
            _ => None,
        }
    }

    /// Whether the server takes no new traffic in this state (counts against the budget).
    pub fn is_out(self) -> bool {
        self != Self::Enabled
    }
}

/// A validated server to act on. Every field passed the checks of [`crate::label`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Target {
    /// HAProxy server name, when known.
    pub server: Option<String>,
    /// Server address (host or IP, no port), when the name is not known.
    pub address: Option<String>,
    /// HAProxy backend, when known.
    pub backend: Option<String>,
}

impl Target {
    /// Stable key: `backend/server` or `backend/@address` (`*` for any backend).
    pub fn key(&self) -> String {
        let backend = self.backend.as_deref().unwrap_or("*");
        match (&self.server, &self.address) {
            (Some(s), _) => format!("{backend}/{s}"),
            (None, Some(a)) => format!("{backend}/@{a}"),
            (None, None) => format!("{backend}/?"),
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.key())
    }
}

/// What the relay wants done to a target, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Intent {
    /// The server.
    pub target: Target,
    /// The state asked for.
    pub state: DesiredState,
    /// Weight, for weight actions.
    pub weight: Option<String>,
    /// Fleet key (runs for one fleet are serialised).
    pub fleet: String,
    /// Rule that produced it.
    pub rule: String,
    /// Alert that triggered it.
    pub reason: Reason,
    /// Not to be acted on before this time (ms since the epoch): the restore delay.
    pub not_before_ms: i64,
}

/// The `reason` object of the playbook contract.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reason {
    /// `alertname`.
    pub alert: String,
    /// Alert fingerprint.
    pub fingerprint: String,
    /// `firing` or `resolved`.
    pub status: AlertStatus,
}

/// One entry of `autoheal_actions`, exactly what the playbook receives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Action {
    /// HAProxy server name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    /// Server address, when the name is unknown.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// Backend, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backend: Option<String>,
    /// Desired state.
    pub state: DesiredState,
    /// Weight such as `50%`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weight: Option<String>,
    /// Why.
    pub reason: Reason,
}

impl From<&Intent> for Action {
    fn from(i: &Intent) -> Self {
        Self {
            server: i.target.server.clone(),
            address: i.target.address.clone(),
            backend: i.target.backend.clone(),
            state: i.state,
            weight: i.weight.clone(),
            reason: i.reason.clone(),
        }
    }
}

/// An intent with the journal id of the decision it stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    /// Journal id of the decision that produced `intent`.
    pub id: i64,
    /// What to do.
    pub intent: Intent,
}

/// The state the relay last asked for a target, as the journal recorded it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedTarget {
    /// Backend (`*` when the alert did not say).
    pub backend: String,
    /// State asked for; `None` when the last run for it failed, so its real state is unknown.
    pub state: Option<DesiredState>,
    /// Weight asked for.
    pub weight: Option<String>,
}
