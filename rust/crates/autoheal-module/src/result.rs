//! The JSON the modules print: Ansible's result conventions plus the per-server detail.

use haproxy_cfg::{ConfigState, Desired, WeightSpec};
use serde::Serialize;

use crate::health::{CheckStatus, Standing};
use crate::runtime::LiveServer;

/// A server's state in the file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConfigView {
    /// The weight in effect.
    pub weight: u32,
    /// `disabled` is in effect.
    pub disabled: bool,
    /// `backup` is in effect.
    pub backup: bool,
    /// Commented out by autoheal.
    pub absent: bool,
    /// What autoheal's marker records (`drain`, `disabled`, `absent`, `weight 5`, `weight 50%`).
    pub managed: Option<String>,
    /// The weight before autoheal changed it.
    pub original_weight: u32,
}

impl From<&ConfigState> for ConfigView {
    fn from(state: &ConfigState) -> Self {
        Self {
            weight: state.weight,
            disabled: state.disabled,
            backup: state.backup,
            absent: state.absent,
            managed: state.managed.as_ref().map(desired_label),
            original_weight: state.original_weight,
        }
    }
}

/// How a desired state reads in results and messages.
pub fn desired_label(desired: &Desired) -> String {
    match desired {
        Desired::Enabled => "enabled".into(),
        Desired::Drain => "drain".into(),
        Desired::Disabled => "disabled".into(),
        Desired::Absent => "absent".into(),
        Desired::Weight(WeightSpec::Absolute(n)) => format!("weight {n}"),
        Desired::Weight(WeightSpec::Percent(p)) => format!("weight {p}%"),
    }
}

/// A server's state in the running HAProxy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LiveView {
    /// The running HAProxy knows the server.
    pub present: bool,
    /// Its state, when present.
    #[serde(flatten)]
    pub detail: Option<LiveDetail>,
}

/// The fields of a present live server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LiveDetail {
    /// `ready`, `drain` or `maint`.
    pub admin: &'static str,
    /// Takes new traffic (up, ready, weight > 0).
    pub active: bool,
    /// srv_op_state (0 stopped, 1 starting, 2 running, 3 stopping).
    pub op_state: u32,
    /// srv_admin_state bit field.
    pub admin_state: u32,
    /// The weight in effect.
    pub weight: u32,
    /// The weight HAProxy loaded from the config.
    pub initial_weight: u32,
}

impl LiveView {
    /// The view of a server found, or not, in the running HAProxy.
    pub fn of(server: Option<&LiveServer>) -> Self {
        Self {
            present: server.is_some(),
            detail: server.map(|s| LiveDetail {
                admin: s.admin_word(),
                active: s.active(),
                op_state: s.op_state,
                admin_state: s.admin_state,
                weight: s.weight,
                initial_weight: s.initial_weight,
            }),
        }
    }
}

/// A server's state at one moment, in the file and (with a socket) live.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Snapshot {
    /// In the file.
    pub config: ConfigView,
    /// In the running HAProxy; `null` without a socket.
    pub live: Option<LiveView>,
}

/// One matched server in the result of `autoheal.haproxy.server`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServerOutcome {
    /// Index of the `changes` entry that designated it, for grouping.
    #[serde(skip)]
    pub change: usize,
    /// Its line in the file before the run, for ordering.
    #[serde(skip)]
    pub line: usize,
    /// Its backend or listen section.
    pub backend: String,
    /// Its name.
    pub server: String,
    /// Its address as written.
    pub address: String,
    /// The file or the live state changed (or would, in check mode).
    pub changed: bool,
    /// Things the operator should know.
    pub notes: Vec<String>,
    /// Runtime API commands sent (or that would be, in check mode).
    pub live_commands: Vec<String>,
    /// Before the run.
    pub before: Snapshot,
    /// After the run (predicted in check mode).
    pub after: Snapshot,
    /// Health check, who set the state, and whether it was held back.
    #[serde(flatten)]
    pub standing: Standing,
}

/// One entry of the `changes` option in the result of `autoheal.haproxy.server`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChangeOutcome {
    /// The `backend` asked for.
    pub backend: Option<String>,
    /// The `server` asked for.
    pub server: Option<String>,
    /// The `address` asked for.
    pub address: Option<String>,
    /// The state asked for (`drain`, `weight 50%`, ...).
    pub state: String,
    /// The `reason` given, as given.
    pub reason: Option<serde_json::Value>,
    /// One of its servers changed (or would, in check mode).
    pub changed: bool,
    /// One of its servers waits for a reload.
    pub reload_required: bool,
    /// What happened to its servers, for people.
    pub msg: String,
    /// The servers it designated, as `backend/server` (their detail is in `servers`).
    pub servers: Vec<String>,
    /// Its server's health check, who set its state, and whether it was held back or not found.
    #[serde(flatten)]
    pub standing: Standing,
}

/// Ansible's diff mode payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diff {
    /// The file before.
    pub before: String,
    /// The file after.
    pub after: String,
    /// Label of `before`.
    pub before_header: String,
    /// Label of `after`.
    pub after_header: String,
}

/// A reload the module did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReloadResult {
    /// The worker before the reload.
    pub old_pid: u32,
    /// The new worker, which answered on the admin socket.
    pub new_pid: u32,
}

/// `passed` or `blocked`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum GuardResult {
    /// `min_active` holds.
    Passed,
    /// The request was refused.
    Blocked,
}

/// The result of `autoheal.haproxy.server`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServerResult {
    /// The task failed (guard blocked, or the live state could not be brought in line).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub failed: bool,
    /// The file or the live state changed.
    pub changed: bool,
    /// What happened, for people.
    pub msg: String,
    /// The file edited (symlinks resolved).
    pub path: String,
    /// sha256 of the file before.
    pub checksum_before: String,
    /// sha256 of the file after (predicted in check mode).
    pub checksum_after: String,
    /// The backup, when one was written.
    pub backup_file: Option<String>,
    /// File contents before and after, with `--diff`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diff: Option<Diff>,
    /// The matched servers, in file order.
    pub servers: Vec<ServerOutcome>,
    /// With the `changes` option: each change, in order, with its servers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub changes: Option<Vec<ChangeOutcome>>,
    /// HAProxy needs a reload before the running state matches the file.
    pub reload_required: bool,
    /// The reload the module did (option `reload`), if any.
    pub reloaded: Option<ReloadResult>,
    /// The running HAProxy agrees with the file; `null` without a socket.
    pub live_in_sync: Option<bool>,
    /// The `min_active` guard's decision.
    pub guard: GuardResult,
    /// Without `changes`: the server's health check, who set its state, whether it was held back.
    #[serde(flatten)]
    pub standing: Option<Standing>,
    /// Things Ansible shows as warnings (`changes` entries that designate no server).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// One server in the result of `autoheal.haproxy.server_info`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InfoServer {
    /// Its name.
    pub name: String,
    /// Its address as written.
    pub address: String,
    /// 1-based line of the server line (of its marker when absent).
    pub line: usize,
    /// In the file.
    pub config: ConfigView,
    /// In the running HAProxy; `null` without a socket.
    pub live: Option<LiveView>,
    /// HAProxy's health check.
    pub check_status: CheckStatus,
    /// Who set the current state: `autoheal`, `operator`, or `null` when in service as configured.
    pub set_by: Option<&'static str>,
    /// The `slowstart` in effect, in milliseconds.
    pub slowstart: Option<u64>,
}

/// One backend in the result of `autoheal.haproxy.server_info`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InfoBackend {
    /// The section's name.
    pub name: String,
    /// Its servers in file order.
    pub servers: Vec<InfoServer>,
}

/// The result of `autoheal.haproxy.server_info`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InfoResult {
    /// Always false: the module only reads.
    pub changed: bool,
    /// The file read.
    pub path: String,
    /// sha256 of the file, for a later `checksum` option.
    pub checksum: String,
    /// Backends in file order.
    pub backends: Vec<InfoBackend>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_view_flattens_detail_and_marks_missing_servers() {
        let missing = serde_json::to_value(LiveView::of(None)).unwrap();
        assert_eq!(missing, serde_json::json!({"present": false}));
        let drained = LiveServer {
            op_state: 2,
            admin_state: 8,
            weight: 10,
            initial_weight: 10,
            check_state: Some(6),
        };
        let view = serde_json::to_value(LiveView::of(Some(&drained))).unwrap();
        assert_eq!(view["present"], true);
        assert_eq!(view["admin"], "drain");
        assert_eq!(view["active"], false);
        assert_eq!(view["weight"], 10);
    }

    #[test]
    fn managed_states_have_readable_labels() {
        assert_eq!(desired_label(&Desired::Drain), "drain");
        assert_eq!(
            desired_label(&Desired::Weight(WeightSpec::Percent(50))),
            "weight 50%"
        );
        assert_eq!(
            desired_label(&Desired::Weight(WeightSpec::Absolute(3))),
            "weight 3"
        );
    }
}
