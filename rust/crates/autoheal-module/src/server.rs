//! `autoheal.haproxy.server`: put servers into a state, in the file and live.
//!
//! Order: lock → read and hash → plan → guard → (check mode stops here) → replace the file →
//! apply live and read back. The lock is held to the end, so concurrent runs also serialise
//! their live changes and each one's guard sees the previous one's result.

use std::collections::{BTreeMap, BTreeSet};

use haproxy_cfg::{Desired, ServerChange};

use crate::args::ServerArgs;
use crate::file::{sha256_hex, LockedFile};
use crate::guard::{self, Verdict};
use crate::result::{
    desired_label, ConfigView, Diff, GuardResult, LiveView, ServerOutcome, ServerResult, Snapshot,
};
use crate::runtime::{AdminSocket, BackendState, LiveCommand, LiveGoal, LiveServer};
use crate::ModuleError;

/// Runs the module on the args file's text.
pub fn run(args_text: &str) -> Result<ServerResult, ModuleError> {
    let search_path = std::env::var_os("PATH");
    let args = ServerArgs::parse(args_text, search_path.as_deref())?;
    execute(&args)
}

/// One matched server: what the file does to it and what the live state needs.
struct Step<'a> {
    change: &'a ServerChange,
    goal: LiveGoal,
    /// `None` without a socket; `Some(None)` when the running HAProxy does not know the server.
    live_before: Option<Option<LiveServer>>,
    commands: Vec<LiveCommand>,
    notes: Vec<String>,
}

impl Step<'_> {
    /// The running HAProxy cannot match the file until it reloads.
    fn reload_pending(&self) -> bool {
        let after = &self.change.after.state;
        let waits_for_reload = match self.live_before {
            None => false,
            Some(Some(_)) => after.absent,
            Some(None) => !after.absent,
        };
        (self.change.changed && self.change.reload_required) || waits_for_reload
    }

    fn changed(&self) -> bool {
        self.change.changed || !self.commands.is_empty()
    }
}

/// The live state that agrees with the file after the change.
fn goal_for(change: &ServerChange, desired: &Desired) -> LiveGoal {
    let after = &change.after.state;
    if after.absent || after.disabled {
        LiveGoal::Maint
    } else if after.weight == 0 {
        LiveGoal::Drained {
            use_drain_state: matches!(desired, Desired::Drain),
        }
    } else {
        LiveGoal::Ready {
            weight: after.weight,
        }
    }
}

fn plan_step<'a>(
    change: &'a ServerChange,
    desired: &Desired,
    live: Option<&BTreeMap<String, BackendState>>,
) -> Step<'a> {
    let goal = goal_for(change, desired);
    let (backend, name) = (&change.before.backend, &change.before.name);
    let live_before = live.map(|backends| {
        backends
            .get(backend)
            .and_then(|servers| servers.get(name))
            .copied()
    });
    let mut notes = change.notes.clone();
    let commands = match live_before {
        Some(Some(current)) => goal.commands(backend, name, &current),
        Some(None) if change.after.state.absent => Vec::new(),
        Some(None) => {
            notes.push(
                "the running HAProxy does not know this server yet; the file's state takes \
                 effect at the next reload"
                    .into(),
            );
            Vec::new()
        }
        None => Vec::new(),
    };
    Step {
        change,
        goal,
        live_before,
        commands,
        notes,
    }
}

/// Reads the live state of every backend in `changes`.
fn read_live(
    socket: &AdminSocket,
    changes: &[ServerChange],
) -> Result<BTreeMap<String, BackendState>, crate::runtime::RuntimeError> {
    let backends: BTreeSet<&str> = changes.iter().map(|c| c.before.backend.as_str()).collect();
    backends
        .into_iter()
        .map(|b| Ok((b.to_owned(), socket.backend_state(b)?)))
        .collect()
}

fn outcome(
    step: &Step<'_>,
    live_after: Option<Option<LiveServer>>,
    applied: bool,
) -> ServerOutcome {
    let change = step.change;
    let (after_config, changed) = if applied {
        (&change.after, step.changed())
    } else {
        (&change.before, false)
    };
    ServerOutcome {
        backend: change.before.backend.clone(),
        server: change.before.name.clone(),
        address: change.before.address.clone(),
        changed,
        notes: step.notes.clone(),
        live_commands: if applied {
            step.commands.iter().map(ToString::to_string).collect()
        } else {
            Vec::new()
        },
        before: Snapshot {
            config: ConfigView::from(&change.before.state),
            live: step.live_before.map(|l| LiveView::of(l.as_ref())),
        },
        after: Snapshot {
            config: ConfigView::from(&after_config.state),
            live: live_after.map(|l| LiveView::of(l.as_ref())),
        },
    }
}

/// A line per server saying what happened.
fn summary(steps: &[Step<'_>], desired: &Desired, check_mode: bool) -> String {
    let verb = if check_mode { "would be" } else { "was" };
    let lines: Vec<String> = steps
        .iter()
        .map(|step| {
            let who = format!("{}/{}", step.change.before.backend, step.change.before.name);
            let mut parts = vec![if step.change.changed {
                format!("file {verb} updated")
            } else {
                "file already up to date".to_owned()
            }];
            match step.live_before {
                None => {}
                Some(None) if step.change.after.state.absent => {
                    parts.push("not in the running HAProxy".into())
                }
                Some(None) => parts.push("not in the running HAProxy until a reload".into()),
                Some(Some(_)) if step.commands.is_empty() => {
                    parts.push("live state already in line".into())
                }
                Some(Some(_)) => parts.push(format!(
                    "live: {}",
                    step.commands
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
            }
            format!("{who} {}: {}", desired_label(desired), parts.join("; "))
        })
        .collect();
    let mut msg = lines.join(" | ");
    if check_mode {
        msg.insert_str(0, "check mode: ");
    }
    msg
}

/// Runs the module with parsed options.
pub fn execute(args: &ServerArgs) -> Result<ServerResult, ModuleError> {
    let file = LockedFile::lock(&args.path, args.lock_timeout)?;
    let path_text = file.path().display().to_string();
    let source = file.read()?;
    let checksum_before = sha256_hex(source.as_bytes());
    let plan = haproxy_cfg::plan(&source, &args.request).map_err(|error| ModuleError::Engine {
        path: file.path().to_owned(),
        error,
    })?;
    let file_changed = plan.output != source;
    if let (true, Some(expected)) = (file_changed, &args.checksum) {
        if *expected != checksum_before {
            return Err(ModuleError::ChecksumMismatch {
                path: file.path().to_owned(),
                expected: expected.clone(),
                found: checksum_before,
            });
        }
    }
    let socket = args
        .socket
        .as_deref()
        .map(|p| AdminSocket::new(p, args.socket_timeout));
    let live_before = match &socket {
        Some(socket) => Some(read_live(socket, &plan.changes)?),
        None => None,
    };
    let desired = &args.request.desired;
    let steps: Vec<Step<'_>> = plan
        .changes
        .iter()
        .map(|change| plan_step(change, desired, live_before.as_ref()))
        .collect();
    let diff = |after: &str| {
        args.ansible.diff.then(|| Diff {
            before: source.clone(),
            after: after.to_owned(),
            before_header: format!("{path_text} (content)"),
            after_header: format!("{path_text} (content)"),
        })
    };
    let mut result = ServerResult {
        failed: false,
        changed: false,
        msg: String::new(),
        path: path_text.clone(),
        checksum_before: checksum_before.clone(),
        checksum_after: checksum_before.clone(),
        backup_file: None,
        diff: None,
        servers: Vec::new(),
        reload_required: false,
        live_in_sync: live_before.as_ref().map(|_| true),
        guard: GuardResult::Passed,
    };

    if let Verdict::Blocked(msg) = guard::check(
        || haproxy_cfg::inventory(&source),
        &plan.changes,
        live_before.as_ref(),
        args.min_active,
    ) {
        result.failed = true;
        result.guard = GuardResult::Blocked;
        result.msg = msg;
        result.diff = diff(&source);
        result.live_in_sync = None;
        result.servers = steps
            .iter()
            .map(|s| outcome(s, s.live_before, false))
            .collect();
        return Ok(result);
    }

    result.changed = file_changed || steps.iter().any(|s| !s.commands.is_empty());
    result.checksum_after = sha256_hex(plan.output.as_bytes());
    result.diff = diff(&plan.output);
    result.reload_required = steps.iter().any(Step::reload_pending);
    result.msg = summary(&steps, desired, args.ansible.check_mode);

    if args.ansible.check_mode {
        result.live_in_sync = live_before.as_ref().map(|_| {
            steps.iter().all(|s| match s.live_before {
                Some(Some(_)) | None => true,
                Some(None) => s.change.after.state.absent,
            })
        });
        result.servers = steps
            .iter()
            .map(|step| {
                let predicted = step.live_before.map(|live| {
                    live.map(|mut live| {
                        for command in &step.commands {
                            command.apply_to(&mut live);
                        }
                        live
                    })
                });
                outcome(step, predicted, true)
            })
            .collect();
        return Ok(result);
    }

    if file_changed {
        result.backup_file = file
            .replace(&source, &plan.output, args.validate.as_deref(), args.backup)?
            .map(|p| p.display().to_string());
    }

    let Some(socket) = socket else {
        result.servers = steps.iter().map(|s| outcome(s, None, true)).collect();
        return Ok(result);
    };
    let mut problems = Vec::new();
    for step in &steps {
        for command in &step.commands {
            if let Err(e) = socket.send(command) {
                problems.push(e.to_string());
                break;
            }
        }
    }
    let live_after = match read_live(&socket, &plan.changes) {
        Ok(live) => Some(live),
        Err(e) => {
            problems.push(format!("reading the live state back failed: {e}"));
            None
        }
    };
    let mut in_sync = live_after.is_some();
    result.servers = steps
        .iter()
        .map(|step| {
            let found = live_after.as_ref().map(|backends| {
                backends
                    .get(&step.change.before.backend)
                    .and_then(|servers| servers.get(&step.change.before.name))
                    .copied()
            });
            match found {
                Some(Some(live)) if !step.goal.reached_by(&live) => {
                    in_sync = false;
                    problems.push(format!(
                        "{}/{}: live state after the change is admin {} weight {}, which does \
                         not match the file",
                        step.change.before.backend,
                        step.change.before.name,
                        live.admin_word(),
                        live.weight
                    ));
                }
                Some(None) if !step.change.after.state.absent => in_sync = false,
                _ => {}
            }
            outcome(step, found, true)
        })
        .collect();
    result.live_in_sync = Some(in_sync && problems.is_empty());
    if !problems.is_empty() {
        result.failed = true;
        result.msg = format!(
            "{}. The file {} the source of truth, but the running HAProxy is out of line: {}",
            result.msg,
            if file_changed {
                "was updated and stays"
            } else {
                "is"
            },
            problems.join("; ")
        );
    }
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;
    use haproxy_cfg::{ConfigState, ServerInfo, WeightSpec};

    fn change(after: ConfigState) -> ServerChange {
        let info = |state| ServerInfo {
            backend: "app".into(),
            name: "web1".into(),
            address: "127.0.0.1:80".into(),
            line: 3,
            state,
        };
        let before = ConfigState {
            weight: 10,
            disabled: false,
            backup: false,
            absent: false,
            managed: None,
            original_weight: 10,
        };
        ServerChange {
            before: info(before),
            after: info(after),
            changed: true,
            reload_required: false,
            notes: Vec::new(),
        }
    }

    fn after(weight: u32, disabled: bool, absent: bool) -> ConfigState {
        ConfigState {
            weight,
            disabled,
            backup: false,
            absent,
            managed: None,
            original_weight: 10,
        }
    }

    #[test]
    fn the_live_goal_follows_the_file_after_the_change() {
        let drain = Desired::Drain;
        assert_eq!(
            goal_for(&change(after(0, false, true)), &Desired::Absent),
            LiveGoal::Maint
        );
        assert_eq!(
            goal_for(&change(after(10, true, false)), &Desired::Disabled),
            LiveGoal::Maint
        );
        assert_eq!(
            goal_for(&change(after(0, false, false)), &drain),
            LiveGoal::Drained {
                use_drain_state: true
            }
        );
        // A requested weight of 0 sets the weight rather than the drain state.
        let zero = Desired::Weight(WeightSpec::Absolute(0));
        assert_eq!(
            goal_for(&change(after(0, false, false)), &zero),
            LiveGoal::Drained {
                use_drain_state: false
            }
        );
        // `enabled` keeps what the user wrote: a hand-written `disabled` stays maintenance.
        assert_eq!(
            goal_for(&change(after(10, true, false)), &Desired::Enabled),
            LiveGoal::Maint
        );
        assert_eq!(
            goal_for(&change(after(7, false, false)), &Desired::Enabled),
            LiveGoal::Ready { weight: 7 }
        );
    }

    #[test]
    fn servers_unknown_to_haproxy_wait_for_a_reload_unless_absent() {
        let live = BTreeMap::from([("app".to_owned(), BackendState::new())]);
        let enabled = change(after(10, false, false));
        let step = plan_step(&enabled, &Desired::Enabled, Some(&live));
        assert!(step.commands.is_empty() && step.reload_pending());
        assert!(step.notes.iter().any(|n| n.contains("next reload")));
        let absent = ServerChange {
            changed: false,
            ..change(after(10, false, true))
        };
        let step = plan_step(&absent, &Desired::Absent, Some(&live));
        assert!(step.commands.is_empty() && !step.reload_pending() && step.notes.is_empty());
        // Without a socket only the engine's own flag counts.
        let step = plan_step(&enabled, &Desired::Enabled, None);
        assert!(!step.reload_pending());
    }
}
