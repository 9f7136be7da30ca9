//! The `min_active` guard: a request may not leave a backend with too few active servers.

use std::collections::BTreeMap;

use haproxy_cfg::{ConfigState, ServerChange, ServerInfo};

use crate::runtime::BackendState;

/// The guard's decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The request may go ahead.
    Passed,
    /// The request would breach `min_active`; the message says where.
    Blocked(String),
}

/// Takes traffic according to the file: not a backup, not absent, not disabled, weight > 0.
pub fn config_active(state: &ConfigState) -> bool {
    !state.backup && !state.absent && !state.disabled && state.weight > 0
}

/// Checks every backend the request touches.
///
/// `servers` gives the servers of the touched backends before the change; it is only called when
/// the request takes an active server out. `live` (when a socket is used)
/// holds the running state of the touched backends. A server is active when the file says so
/// and, with a socket, HAProxy has it up, ready and weighted. A changed server's admin state and
/// weight will follow the file; its health will not, so it must still be up to count.
/// The request is blocked only when it takes an active server out and the backend is then left
/// with fewer than `min_active`.
pub fn check(
    servers: impl FnOnce() -> Vec<ServerInfo>,
    changes: &[ServerChange],
    live: Option<&BTreeMap<String, BackendState>>,
    min_active: u32,
) -> Verdict {
    let live_of = |info: &ServerInfo| {
        live.map(|backends| {
            backends
                .get(&info.backend)
                .and_then(|servers| servers.get(&info.name))
        })
    };
    let active_now = |info: &ServerInfo| {
        config_active(&info.state)
            && match live_of(info) {
                None => true,
                Some(found) => found.is_some_and(|l| l.active()),
            }
    };
    let active_after = |change: &ServerChange| {
        config_active(&change.after.state)
            && match live_of(&change.before) {
                None => true,
                Some(found) => found.is_some_and(|l| l.running()),
            }
    };
    let changed: BTreeMap<(&str, &str), &ServerChange> = changes
        .iter()
        .map(|c| ((c.before.backend.as_str(), c.before.name.as_str()), c))
        .collect();
    let mut taken_out: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for change in changes {
        if active_now(&change.before) && !active_after(change) {
            taken_out
                .entry(change.before.backend.as_str())
                .or_default()
                .push(change.before.name.as_str());
        }
    }
    if taken_out.is_empty() || min_active == 0 {
        return Verdict::Passed;
    }
    let servers = servers();
    for (backend, taken_out) in taken_out {
        let members = servers.iter().filter(|s| s.backend == backend);
        let mut active_before = Vec::new();
        let mut remaining = 0u32;
        for server in members {
            if active_now(server) {
                active_before.push(server.name.as_str());
            }
            let stays_active = match changed.get(&(backend, server.name.as_str())) {
                Some(change) => active_after(change),
                None => active_now(server),
            };
            remaining += u32::from(stays_active);
        }
        if remaining < min_active {
            return Verdict::Blocked(format!(
                "refusing to take {} out of backend {backend}: it would be left with {remaining} \
                 active server(s), fewer than min_active={min_active} (active now: {}); nothing \
                 was changed",
                taken_out.join(", "),
                if active_before.is_empty() {
                    "none".to_owned()
                } else {
                    active_before.join(", ")
                }
            ));
        }
    }
    Verdict::Passed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::LiveServer;

    fn state(weight: u32) -> ConfigState {
        ConfigState {
            weight,
            disabled: false,
            backup: false,
            absent: false,
            managed: None,
            original_weight: weight,
            set_by: None,
            check: true,
            slowstart_ms: None,
        }
    }

    fn server(name: &str, state: ConfigState) -> ServerInfo {
        ServerInfo {
            backend: "app".into(),
            name: name.into(),
            address: format!("127.0.0.1:{}", 8000 + name.len()),
            line: 1,
            state,
        }
    }

    /// `name` goes from its inventory state to `after`.
    fn change(servers: &[ServerInfo], name: &str, after: ConfigState) -> ServerChange {
        let before = servers.iter().find(|s| s.name == name).unwrap().clone();
        ServerChange {
            after: ServerInfo {
                state: after,
                ..before.clone()
            },
            before,
            changed: true,
            reload_required: false,
            notes: Vec::new(),
        }
    }

    fn live(entries: &[(&str, u32, u32, u32)]) -> BTreeMap<String, BackendState> {
        let servers = entries
            .iter()
            .map(|&(name, op_state, admin_state, weight)| {
                let live = LiveServer {
                    op_state,
                    admin_state,
                    weight,
                    initial_weight: weight,
                    check_state: None,
                };
                (name.to_owned(), live)
            })
            .collect();
        BTreeMap::from([("app".to_owned(), servers)])
    }

    fn disabled() -> ConfigState {
        ConfigState {
            disabled: true,
            ..state(1)
        }
    }

    #[test]
    fn counts_only_non_backup_enabled_weighted_servers() {
        let backup = ConfigState {
            backup: true,
            ..state(1)
        };
        let absent = ConfigState {
            absent: true,
            ..state(1)
        };
        let servers = [
            server("a", state(1)),
            server("b", state(0)),
            server("c", backup),
            server("d", disabled()),
            server("e", absent),
        ];
        let drain_a = [change(&servers, "a", state(0))];
        assert!(matches!(
            check(|| servers.to_vec(), &drain_a, None, 1),
            Verdict::Blocked(_)
        ));
        assert_eq!(
            check(|| servers.to_vec(), &drain_a, None, 0),
            Verdict::Passed
        );
    }

    #[test]
    fn blocks_only_when_an_active_server_is_taken_below_the_minimum() {
        let servers = [
            server("a", state(10)),
            server("b", state(10)),
            server("c", state(0)),
        ];
        let drain_a = [change(&servers, "a", state(0))];
        assert_eq!(
            check(|| servers.to_vec(), &drain_a, None, 1),
            Verdict::Passed
        );
        let Verdict::Blocked(msg) = check(|| servers.to_vec(), &drain_a, None, 2) else {
            panic!("expected a block")
        };
        assert!(msg.contains("a out of backend app"), "{msg}");
        assert!(msg.contains("left with 1"), "{msg}");
        assert!(msg.contains("active now: a, b"), "{msg}");
        // Draining an already drained server takes nothing out, whatever the count, and the
        // inventory (costly on a large file) is not even listed.
        let drain_c = [change(&servers, "c", state(0))];
        let unused = || -> Vec<ServerInfo> { panic!("inventory listed for nothing") };
        assert_eq!(check(unused, &drain_c, None, 5), Verdict::Passed);
        assert_eq!(check(unused, &drain_a, None, 0), Verdict::Passed);
        // A lower, non-zero weight keeps the server active.
        let lower_a = [change(&servers, "a", state(3))];
        assert_eq!(
            check(|| servers.to_vec(), &lower_a, None, 2),
            Verdict::Passed
        );
        // Disabling both at once (all_matches) counts both.
        let both = [
            change(&servers, "a", disabled()),
            change(&servers, "b", disabled()),
        ];
        assert!(matches!(
            check(|| servers.to_vec(), &both, None, 1),
            Verdict::Blocked(_)
        ));
    }

    #[test]
    fn live_state_decides_who_is_active_now() {
        let servers = [server("a", state(10)), server("b", state(10))];
        let drain_a = [change(&servers, "a", state(0))];
        // b is drained live only (admin drain bit): a is the last one taking traffic.
        let b_drained = live(&[("a", 2, 0, 10), ("b", 2, 8, 10)]);
        assert!(matches!(
            check(|| servers.to_vec(), &drain_a, Some(&b_drained), 1),
            Verdict::Blocked(_)
        ));
        // b fails its health checks.
        let b_down = live(&[("a", 2, 0, 10), ("b", 0, 0, 10)]);
        assert!(matches!(
            check(|| servers.to_vec(), &drain_a, Some(&b_down), 1),
            Verdict::Blocked(_)
        ));
        // b missing from the running HAProxy (not reloaded yet).
        let b_missing = live(&[("a", 2, 0, 10)]);
        assert!(matches!(
            check(|| servers.to_vec(), &drain_a, Some(&b_missing), 1),
            Verdict::Blocked(_)
        ));
        // Both up and ready.
        let both_up = live(&[("a", 2, 0, 10), ("b", 2, 0, 10)]);
        assert_eq!(
            check(|| servers.to_vec(), &drain_a, Some(&both_up), 1),
            Verdict::Passed
        );
        // a is already out live: draining it in the file takes nothing out.
        let a_maint = live(&[("a", 0, 1, 10), ("b", 0, 0, 10)]);
        assert_eq!(
            check(|| servers.to_vec(), &drain_a, Some(&a_maint), 1),
            Verdict::Passed
        );
    }
}
