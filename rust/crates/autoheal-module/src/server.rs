//! `autoheal.haproxy.server`: put servers into a state, in the file and live.
//!
//! Order: lock → read and hash → plan → guard → (check mode stops here) → replace the file →
//! apply live and read back; when every change takes traffic away (drain, disabled, absent), live
//! first and then the file, so that the drain does not wait for validation and the write. The lock is held to the end, so concurrent runs also serialise
//! their live changes and each one's guard sees the previous one's result.

use std::collections::{BTreeMap, BTreeSet};

use std::path::Path;

use haproxy_cfg::{Desired, Patch, Request, ServerChange, Target};

use crate::args::ServerArgs;
use crate::beside::{self, Pending};
use crate::file::{sha256_hex, write_text, FileError, LockedFile, SourceHash};
use crate::guard::{self, Verdict};
use crate::health::{self, Asked, Found, Standing};
use crate::reload::{self, ReloadMethod};
use crate::result::{
    desired_label, ChangeOutcome, ConfigView, Diff, GuardResult, LiveView, ReloadResult,
    ServerOutcome, ServerResult, Snapshot,
};
use crate::runtime::{AdminSocket, BackendState, LiveCommand, LiveGoal, LiveServer, RuntimeError};
use crate::ModuleError;

/// Runs the module on the args file's text.
pub fn run(args_text: &str) -> Result<ServerResult, ModuleError> {
    let search_path = std::env::var_os("PATH");
    let args = ServerArgs::parse(args_text, search_path.as_deref())?;
    execute(&args)
}

/// One matched server: what the file does to it and what the live state needs.
struct Step<'a> {
    /// Index of the change (in `changes`) that designated the server.
    index: usize,
    desired: &'a Desired,
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
    index: usize,
    change: &'a ServerChange,
    desired: &'a Desired,
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
        index,
        desired,
        change,
        goal,
        live_before,
        commands,
        notes,
    }
}

/// The backends of the servers a patch changes, each once.
fn backends_of(patch: &Patch) -> Vec<&str> {
    patch
        .changes
        .iter()
        .map(|(_, change)| change.before.backend.as_str())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

/// Reads the live state of every backend in `changes`.
fn read_live(
    socket: &AdminSocket,
    backends: &[&str],
) -> Result<BTreeMap<String, BackendState>, crate::runtime::RuntimeError> {
    backends
        .iter()
        .map(|b| Ok(((*b).to_owned(), socket.backend_state(b)?)))
        .collect()
}

/// Where a step's change ended up, for its outcome.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Landed {
    /// Nowhere: not made (refused, held, nothing to do) or made and undone.
    Nowhere,
    /// The file has it (or would, in check mode), with the live commands sent.
    Applied,
    /// Live but not in the file (never written, or put back): taking it back failed.
    LiveOnly,
}

/// What taking a run's live commands back left: where each step is, and what failed.
struct TakenBack {
    landed: Vec<Landed>,
    problems: Vec<String>,
}

impl TakenBack {
    /// Nothing taken back, nothing left live.
    fn nothing(steps: usize) -> Self {
        Self {
            landed: vec![Landed::Nowhere; steps],
            problems: Vec::new(),
        }
    }

    fn servers(&self, steps: &[Step<'_>], args: &ServerArgs) -> Vec<ServerOutcome> {
        steps
            .iter()
            .zip(&self.landed)
            .map(|(step, landed)| outcome(step, None, *landed, args))
            .collect()
    }
}

fn outcome(
    step: &Step<'_>,
    live_after: Option<Option<LiveServer>>,
    landed: Landed,
    args: &ServerArgs,
) -> ServerOutcome {
    let change = step.change;
    let (after_config, changed) = match landed {
        Landed::Applied => (&change.after, step.changed()),
        Landed::LiveOnly => (&change.before, true),
        Landed::Nowhere => (&change.before, false),
    };
    ServerOutcome {
        change: step.index,
        line: change.before.line,
        backend: change.before.backend.clone(),
        server: change.before.name.clone(),
        address: change.before.address.clone(),
        changed,
        notes: step.notes.clone(),
        live_commands: if landed == Landed::Nowhere {
            Vec::new()
        } else {
            step.commands.iter().map(ToString::to_string).collect()
        },
        before: Snapshot {
            config: ConfigView::from(&change.before.state),
            live: step.live_before.map(|l| LiveView::of(l.as_ref())),
        },
        after: Snapshot {
            config: ConfigView::from(&after_config.state),
            live: live_after.map(|l| LiveView::of(l.as_ref())),
        },
        standing: standing(step, args),
    }
}

/// The server's health check and owner, and whether `args` may touch it.
fn standing(step: &Step<'_>, args: &ServerArgs) -> Standing {
    let before = &step.change.before;
    health::assess(
        &Asked {
            desired: step.desired,
            require_healthy: args.require_healthy,
            set_by: args.set_by,
        },
        &Found {
            label: &format!("{}/{}", before.backend, before.name),
            config: &before.state,
            live: step.live_before.as_ref().map(Option::as_ref),
            would_change: step.changed(),
        },
    )
}

/// Plans the changes not held back; in a `changes` list, an entry that designates no server (a typo
/// or a renamed server) is held back as not found instead of refusing the whole list. On success,
/// the patch's change indices are those of `args.changes`.
fn plan_unheld(
    args: &ServerArgs,
    path: &Path,
    source: &str,
    held: &mut BTreeMap<usize, Held>,
) -> Result<Patch, ModuleError> {
    loop {
        let active: Vec<usize> = (0..args.changes.len())
            .filter(|index| !held.contains_key(index))
            .collect();
        let requests: Vec<Request> = active
            .iter()
            .map(|&index| args.changes[index].request.clone())
            .collect();
        match haproxy_cfg::plan_all_by(source, &requests, args.set_by) {
            Ok(mut patch) => {
                patch
                    .changes
                    .iter_mut()
                    .for_each(|(index, _)| *index = active[*index]);
                return Ok(patch);
            }
            Err((at, error)) => {
                let error = ModuleError::Engine {
                    path: path.to_owned(),
                    error,
                    change: args.batch.then_some(active[at]),
                };
                if !(args.batch && error.is_not_found()) {
                    return Err(error);
                }
                held.insert(active[at], Held::NotFound(error.to_string()));
            }
        }
    }
}

/// A `changes` entry that is not applied.
enum Held {
    /// It designates no server; the message says so.
    NotFound(String),
    /// One of its servers' standing holds it back (deferred or skipped).
    Standing(String),
}

/// A line per server saying what happened.
fn summary<'s>(steps: impl IntoIterator<Item = &'s Step<'s>>, check_mode: bool) -> String {
    if check_mode {
        format!("check mode: {}", describe(steps, "would be"))
    } else {
        describe(steps, "was")
    }
}

/// Each step's file and live change, the file's with `verb` ("was", "would be").
fn describe<'s>(steps: impl IntoIterator<Item = &'s Step<'s>>, verb: &str) -> String {
    let lines: Vec<String> = steps
        .into_iter()
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
            format!(
                "{who} {}: {}",
                desired_label(step.desired),
                parts.join("; ")
            )
        })
        .collect();
    lines.join(" | ")
}

/// What sending a run's live commands did.
struct LiveSent {
    problems: Vec<String>,
    /// Per step: at least one of its commands went through.
    applied: Vec<bool>,
    /// The socket itself failed (rather than HAProxy refusing a command).
    unreachable: bool,
}

/// Runs the module with parsed options.
pub fn execute(args: &ServerArgs) -> Result<ServerResult, ModuleError> {
    let file = LockedFile::lock(&args.path, args.lock_timeout)?;
    let bytes = file.read()?;
    let source = bytes.text(file.path())?;
    // Hashing reads the whole file, and so does planning: the hash is worked out on the other core
    // and waited for only where it is needed (the checksum option, the result), so that planning
    // and writing do not wait for it.
    std::thread::scope(|scope| {
        let hashed = Pending::start(scope, || SourceHash::of(source));
        apply(args, &file, source, &hashed)
    })
}

/// Plans, checks and applies the change to the text read from the locked `file`.
fn apply(
    args: &ServerArgs,
    file: &LockedFile,
    source: &str,
    hashed: &Pending<'_, SourceHash>,
) -> Result<ServerResult, ModuleError> {
    let path_text = file.path().display().to_string();
    let requests: Vec<Request> = args.changes.iter().map(|c| c.request.clone()).collect();
    let mut held = BTreeMap::new();
    let first = plan_unheld(args, file.path(), source, &mut held)?;
    let socket = args
        .socket
        .as_deref()
        .map(|p| AdminSocket::new(p, args.socket_timeout));
    let live_before = match &socket {
        Some(socket) => Some(read_live(socket, &backends_of(&first))?),
        None => None,
    };
    // Servers whose health check or owner holds their change back are planned out, whole entries
    // at a time, and reported unchanged.
    let first_steps: Vec<Step<'_>> = first
        .changes
        .iter()
        .map(|(index, change)| {
            plan_step(
                *index,
                change,
                &requests[*index].desired,
                live_before.as_ref(),
            )
        })
        .collect();
    for step in &first_steps {
        let standing = standing(step, args);
        if standing.held() && !held.contains_key(&step.index) {
            let who = format!("{}/{}", step.change.before.backend, step.change.before.name);
            let why = match (&standing.deferred_reason, standing.skip_reason) {
                (Some(reason), _) => format!("{who} deferred: {reason}"),
                _ => format!(
                    "{who} skipped: an operator set its current state, and set_by=autoheal \
                     leaves it alone"
                ),
            };
            held.insert(step.index, Held::Standing(why));
        }
    }
    let held_steps: Vec<&Step<'_>> = first_steps
        .iter()
        .filter(|step| held.contains_key(&step.index))
        .collect();
    let replanned = if held_steps.is_empty() {
        None
    } else {
        Some(plan_unheld(args, file.path(), source, &mut held)?)
    };
    let patch = replanned.as_ref().unwrap_or(&first);
    let file_changed = !patch.edits.is_empty();
    if let (true, Some(expected)) = (file_changed, &args.checksum) {
        let found = &hashed.get().hex;
        if expected != found {
            return Err(ModuleError::ChecksumMismatch {
                path: file.path().to_owned(),
                expected: expected.clone(),
                found: found.clone(),
            });
        }
    }
    let backends = backends_of(patch);
    let steps: Vec<Step<'_>> = patch
        .changes
        .iter()
        .map(|(index, change)| {
            let desired = &requests[*index].desired;
            plan_step(*index, change, desired, live_before.as_ref())
        })
        .collect();
    // The texts are only built with --diff: the new one is otherwise never held in memory.
    let diff = |after: &dyn Fn() -> String| {
        args.ansible.diff.then(|| Diff {
            before: source.to_owned(),
            after: after(),
            before_header: format!("{path_text} (content)"),
            after_header: format!("{path_text} (content)"),
        })
    };
    let mut result = ServerResult {
        failed: false,
        changed: false,
        msg: String::new(),
        path: path_text.clone(),
        // Both filled in by `finish`, once the hash is in; `checksum_after` is set where the file
        // changes, and left empty where it is as it was read.
        checksum_before: String::new(),
        checksum_after: String::new(),
        backup_file: None,
        diff: None,
        servers: Vec::new(),
        changes: None,
        reload_required: false,
        reloaded: None,
        live_in_sync: live_before.as_ref().map(|_| true),
        guard: GuardResult::Passed,
        standing: None,
        warnings: Vec::new(),
    };
    let finish = |mut result: ServerResult, mut servers: Vec<ServerOutcome>| {
        result.checksum_before.clone_from(&hashed.get().hex);
        if result.checksum_after.is_empty() {
            result.checksum_after.clone_from(&result.checksum_before);
        }
        let held_outcomes: Vec<ServerOutcome> = held_steps
            .iter()
            .map(|step| outcome(step, step.live_before, Landed::Nowhere, args))
            .collect();
        let held_msgs = held.values().map(|held| match held {
            Held::NotFound(msg) | Held::Standing(msg) => msg.as_str(),
        });
        result.msg = std::iter::once(result.msg.as_str())
            .filter(|msg| !msg.is_empty())
            .chain(held_msgs)
            .collect::<Vec<_>>()
            .join(" | ");
        if args.batch {
            let blocked = (result.guard == GuardResult::Blocked).then_some(result.msg.as_str());
            let mut changes = per_change(args, &steps, &servers, &held, &held_outcomes, blocked);
            if result.reloaded.is_some() {
                changes.iter_mut().for_each(|c| c.reload_required = false);
            }
            result.changes = Some(changes);
        }
        result.standing = if args.batch {
            None
        } else {
            Standing::combine(servers.iter().chain(&held_outcomes).map(|s| &s.standing))
        };
        result.warnings = held
            .values()
            .filter_map(|held| match held {
                Held::NotFound(msg) => Some(format!("{msg}; the other changes were applied")),
                Held::Standing(_) => None,
            })
            .collect();
        servers.extend(held_outcomes);
        servers.sort_by_key(|server| server.line);
        result.servers = servers;
        Ok(result)
    };

    let changes: Vec<ServerChange> = patch.changes.iter().map(|(_, c)| c.clone()).collect();
    if let Verdict::Blocked(msg) = guard::check(
        || patch.section_servers.clone(),
        &changes,
        live_before.as_ref(),
        args.min_active,
    ) {
        result.failed = true;
        result.guard = GuardResult::Blocked;
        result.msg = msg;
        result.diff = diff(&|| source.to_owned());
        result.live_in_sync = None;
        let servers = steps
            .iter()
            .map(|s| outcome(s, s.live_before, Landed::Nowhere, args))
            .collect();
        return finish(result, servers);
    }

    result.changed = file_changed || steps.iter().any(|s| !s.commands.is_empty());
    result.diff = diff(&|| patch.render(source));
    result.reload_required = steps.iter().any(Step::reload_pending);
    result.msg = summary(&steps, args.ansible.check_mode);

    if args.ansible.check_mode {
        result.checksum_after = hashed.get().after(source, patch);
        result.live_in_sync = live_before.as_ref().map(|_| {
            steps.iter().all(|s| match s.live_before {
                Some(Some(_)) | None => true,
                Some(None) => s.change.after.state.absent,
            })
        });
        let servers = steps
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
                outcome(step, predicted, Landed::Applied, args)
            })
            .collect();
        return finish(result, servers);
    }

    // Taking traffic away is the safe direction: it goes live first, before the file is validated
    // and written, which is what makes a drain take effect in milliseconds. A write that fails
    // after it takes the live change back, so nothing is left half-done (a live state the file
    // does not record would read as an operator's), and fails the task: the caller retries.
    // The problems, which steps had a command go through, and whether the socket itself failed
    // (then the steps left are not tried: each would wait out the timeout in turn).
    let send_live = |socket: &AdminSocket| {
        let mut sent = LiveSent {
            problems: Vec::new(),
            applied: vec![false; steps.len()],
            unreachable: false,
        };
        'steps: for (at, step) in steps.iter().enumerate() {
            for command in &step.commands {
                if let Err(e) = socket.send(command) {
                    sent.problems.push(e.to_string());
                    if matches!(e, RuntimeError::Io { .. }) {
                        sent.unreachable = true;
                        break 'steps;
                    }
                    break;
                }
                sent.applied[at] = true;
            }
        }
        sent
    };
    // Undoes, last first, the steps `applied` says went live; says where each one is left.
    let take_back = |socket: &AdminSocket, applied: &[bool]| {
        let mut taken_back = TakenBack::nothing(steps.len());
        for (at, step) in steps
            .iter()
            .enumerate()
            .rev()
            .filter(|(at, _)| applied[*at])
        {
            let Some(Some(before)) = step.live_before else {
                continue;
            };
            for command in before.undo(&step.commands) {
                if let Err(e) = socket.send(&command) {
                    taken_back.problems.push(e.to_string());
                    taken_back.landed[at] = Landed::LiveOnly;
                    break;
                }
            }
        }
        taken_back
    };
    // Every step as the file now has it, when the live state is not read back.
    let as_written = || {
        steps
            .iter()
            .map(|s| outcome(s, None, Landed::Applied, args))
            .collect()
    };
    let live_first = socket.is_some()
        && steps.iter().any(|s| !s.commands.is_empty())
        && steps.iter().all(|s| s.goal.takes_no_new_traffic());
    let sent_first = match (&socket, live_first) {
        (Some(socket), true) => Some(send_live(socket)),
        _ => None,
    };
    let (applied_first, mut problems) = match sent_first {
        Some(sent) => (Some(sent.applied), sent.problems),
        None => (None, Vec::new()),
    };

    if file_changed {
        // The new text is hashed on another core while it is written.
        let (checksum_after, replaced) = std::thread::scope(|scope| {
            let hashing = beside::spawn(scope, || hashed.get().after(source, patch));
            let replaced = file.replace(
                source,
                patch.pieces(source),
                args.validate.as_deref(),
                args.backup,
            );
            let checksum_after = hashing
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            (checksum_after, replaced)
        });
        match replaced {
            Ok(backup_file) => {
                result.backup_file = backup_file.map(|p| p.display().to_string());
                result.checksum_after = checksum_after;
            }
            Err(e) if live_first => {
                let taken_back = match (&socket, applied_first.as_deref()) {
                    (Some(socket), Some(applied)) => take_back(socket, applied),
                    // Not taken: live first always has a socket and what was sent on it.
                    _ => TakenBack::nothing(steps.len()),
                };
                result.failed = true;
                result.changed = !taken_back.problems.is_empty();
                result.live_in_sync = Some(taken_back.problems.is_empty());
                result.msg = if taken_back.problems.is_empty() {
                    format!(
                        "nothing was changed: persisting the change failed: {e}. The change \
                         ({}) had gone live first, as taking traffic away is safe, and was taken \
                         back: the file and the running HAProxy keep their old state. Run again \
                         once the file can be written",
                        describe(&steps, "would be")
                    )
                } else {
                    format!(
                        "persisting the change failed: {e}. The change ({}) had gone live first \
                         and taking it back failed ({}): the running HAProxy is out of line with \
                         the file",
                        describe(&steps, "would be"),
                        taken_back.problems.join("; ")
                    )
                };
                result.checksum_after.clear();
                result.reload_required = false;
                return finish(result, taken_back.servers(&steps, args));
            }
            Err(e) => return Err(e.into()),
        }
    }

    let Some(socket) = socket else {
        return finish(result, as_written());
    };
    if !live_first {
        let sent = send_live(&socket);
        if !sent.problems.is_empty() && file_changed {
            // A server the file now puts back but that is still out live would read as an
            // operator's, and autoheal's retry would leave it alone: the file goes back, and what
            // went live is taken back, so that a retry finds things as this run did.
            let failed = format!(
                "applying the change ({}) on the admin socket failed after the file was written: {}",
                describe(&steps, "would be"),
                sent.problems.join("; ")
            );
            let next = if sent.unreachable {
                "Run again once the socket answers"
            } else {
                "HAProxy refused it: running again fails the same way until that is fixed"
            };
            result.failed = true;
            // Only the text this run wrote goes back: anything else there now is someone else's.
            let now = file
                .read()
                .and_then(|bytes| bytes.text(file.path()).map(|text| sha256_hex([text])));
            let put_back = match now {
                Ok(now) if now == result.checksum_after => {
                    file.replace(source, [source], None, false).map(|_| ())
                }
                Ok(_) => Err(FileError::ChangedMeanwhile(file.path().to_owned())),
                Err(e) => Err(e),
            };
            if let Err(e) = put_back {
                // The file keeps the change, and so does whatever went live.
                result.changed = true;
                result.live_in_sync = Some(false);
                result.msg = format!(
                    "{failed}. Putting the file back failed ({e}): the file holds the change, the \
                     running HAProxy only what went through"
                );
                return finish(result, as_written());
            }
            if let Some(backup) = result.backup_file.take() {
                // Best effort: it holds what the file holds again.
                let _ = std::fs::remove_file(backup);
            }
            result.checksum_after.clear();
            result.reload_required = false;
            let taken_back = take_back(&socket, &sent.applied);
            result.changed = !taken_back.problems.is_empty();
            result.live_in_sync = Some(taken_back.problems.is_empty());
            result.msg = if taken_back.problems.is_empty() {
                format!(
                    "nothing was changed: {failed}. The file was put back and what had gone live \
                     was taken back: the file and the running HAProxy keep their old state. {next}"
                )
            } else {
                format!(
                    "{failed}. The file was put back, but taking back what had gone live failed \
                     ({}): the running HAProxy is out of line with the file",
                    taken_back.problems.join("; ")
                )
            };
            return finish(result, taken_back.servers(&steps, args));
        }
        problems = sent.problems;
    }
    if let (true, Some(method)) = (result.reload_required, &args.reload) {
        match reload_now(args, method, &socket) {
            Ok(reloaded) => {
                result.reload_required = false;
                result.reloaded = Some(reloaded);
            }
            Err(e) => problems.push(e),
        }
    }
    let live_after = match read_live(&socket, &backends) {
        Ok(live) => Some(live),
        Err(e) => {
            problems.push(format!("reading the live state back failed: {e}"));
            None
        }
    };
    let mut in_sync = live_after.is_some();
    let servers = steps
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
            outcome(step, found, Landed::Applied, args)
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
    finish(result, servers)
}

/// Saves the runtime state when asked, reloads HAProxy and waits for the new worker.
fn reload_now(
    args: &ServerArgs,
    method: &ReloadMethod,
    socket: &AdminSocket,
) -> Result<ReloadResult, String> {
    if let Some(state_file) = &args.server_state_file {
        let state = socket
            .servers_state_text()
            .map_err(|e| format!("saving the server state before the reload failed: {e}"))?;
        write_text(state_file, &state).map_err(|e| {
            format!(
                "saving the server state before the reload failed: {e}; HAProxy was not reloaded"
            )
        })?;
    }
    let reloaded =
        reload::reload(method, socket, args.reload_timeout).map_err(|e| e.to_string())?;
    Ok(ReloadResult {
        old_pid: reloaded.old_pid,
        new_pid: reloaded.new_pid,
    })
}

/// The result's `changes`: each entry of the `changes` option with the servers it designated.
/// `blocked` is the guard's message when it refused the batch.
fn per_change(
    args: &ServerArgs,
    steps: &[Step<'_>],
    servers: &[ServerOutcome],
    held: &BTreeMap<usize, Held>,
    held_outcomes: &[ServerOutcome],
    blocked: Option<&str>,
) -> Vec<ChangeOutcome> {
    args.changes
        .iter()
        .enumerate()
        .map(|(index, change)| {
            let request = &change.request;
            let (server, address) = match &request.target {
                Target::Name(name) => (Some(name.clone()), None),
                Target::Address(address) => (None, Some(address.clone())),
            };
            if let Some(held) = held.get(&index) {
                let (msg, standing, servers) = match held {
                    Held::NotFound(msg) => (msg.clone(), Standing::not_found(), Vec::new()),
                    Held::Standing(msg) => {
                        let mine: Vec<&ServerOutcome> = held_outcomes
                            .iter()
                            .filter(|outcome| outcome.change == index)
                            .collect();
                        let standing = Standing::combine(mine.iter().map(|o| &o.standing))
                            .unwrap_or_else(Standing::not_found);
                        let names = mine
                            .iter()
                            .map(|o| format!("{}/{}", o.backend, o.server))
                            .collect();
                        (msg.clone(), standing, names)
                    }
                };
                return ChangeOutcome {
                    backend: request.backend.clone(),
                    server,
                    address,
                    state: desired_label(&request.desired),
                    reason: change.reason.clone(),
                    changed: false,
                    reload_required: false,
                    msg,
                    servers,
                    standing,
                };
            }
            let mine: Vec<usize> = (0..steps.len())
                .filter(|&at| steps[at].index == index)
                .collect();
            ChangeOutcome {
                backend: request.backend.clone(),
                server,
                address,
                state: desired_label(&request.desired),
                reason: change.reason.clone(),
                changed: mine.iter().any(|&at| servers[at].changed),
                reload_required: mine.iter().any(|&at| steps[at].reload_pending()),
                msg: blocked.map_or_else(
                    || summary(mine.iter().map(|&at| &steps[at]), args.ansible.check_mode),
                    str::to_owned,
                ),
                servers: mine
                    .iter()
                    .map(|&at| format!("{}/{}", servers[at].backend, servers[at].server))
                    .collect(),
                standing: Standing::combine(mine.iter().map(|&at| &servers[at].standing))
                    .unwrap_or_else(Standing::not_found),
            }
        })
        .collect()
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
            set_by: None,
            check: true,
            slowstart_ms: None,
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
            set_by: None,
            check: true,
            slowstart_ms: None,
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
        let step = plan_step(0, &enabled, &Desired::Enabled, Some(&live));
        assert!(step.commands.is_empty() && step.reload_pending());
        assert!(step.notes.iter().any(|n| n.contains("next reload")));
        let absent = ServerChange {
            changed: false,
            ..change(after(10, false, true))
        };
        let step = plan_step(0, &absent, &Desired::Absent, Some(&live));
        assert!(step.commands.is_empty() && !step.reload_pending() && step.notes.is_empty());
        // Without a socket only the engine's own flag counts.
        let step = plan_step(0, &enabled, &Desired::Enabled, None);
        assert!(!step.reload_pending());
    }
}
