//! Types shared by the stages: alerts, targets, intents and the playbook contract.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// Which webhook an alert came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// Alertmanager webhook, version 4.
    Alertmanager,
    /// Grafana alerting webhook, version 1.
    Grafana,
}

impl Source {
    /// Lower-case name used in metrics, logs and the journal.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Alertmanager => "alertmanager",
            Self::Grafana => "grafana",
        }
    }
}

/// Alert status as sent by Alertmanager and Grafana.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertStatus {
    /// The condition holds.
    Firing,
    /// The condition no longer holds.
    Resolved,
}

impl AlertStatus {
    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Firing => "firing",
            Self::Resolved => "resolved",
        }
    }
}

/// One alert out of a webhook body, normalised across sources.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alert {
    /// Where it came from.
    pub source: Source,
    /// Firing or resolved.
    pub status: AlertStatus,
    /// All labels.
    pub labels: BTreeMap<String, String>,
    /// `startsAt` as sent (part of the dedup key).
    pub starts_at: String,
    /// The sender's fingerprint, or one computed from the labels when absent.
    pub fingerprint: String,
}

impl Alert {
    /// The `alertname` label, or an empty string.
    pub fn name(&self) -> &str {
        self.labels.get("alertname").map_or("", String::as_str)
    }
}

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

/// A validated server to act on. Every field passed `target::validate_*`.
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

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}
