//! Alerts as the relay reads them, whichever webhook they came from.

use std::collections::BTreeMap;

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
