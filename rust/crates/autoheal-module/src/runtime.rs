//! The HAProxy admin socket: reading `show servers state` and sending `set server` / `set weight`.
//!
//! One command per connection: HAProxy's non-interactive mode answers one command and closes,
//! so the answer ends at end of stream.

use std::collections::BTreeMap;
use std::fmt;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

/// Why talking to the admin socket failed.
#[derive(Debug)]
pub enum RuntimeError {
    /// Connecting, writing or reading failed (includes timeouts).
    Io {
        /// The socket.
        socket: PathBuf,
        /// The command being sent.
        command: String,
        /// The cause.
        source: std::io::Error,
    },
    /// HAProxy answered a `set` command with an error message.
    Rejected {
        /// The command.
        command: String,
        /// HAProxy's answer.
        answer: String,
    },
    /// `show servers state` returned something this module cannot read.
    Unreadable {
        /// The command.
        command: String,
        /// What is wrong.
        reason: String,
    },
    /// A name that cannot be sent safely (the runtime API splits commands on `;` and spaces).
    UnsafeName(String),
}

impl fmt::Display for RuntimeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io {
                socket,
                command,
                source,
            } => write!(
                f,
                "admin socket {}: `{command}` failed: {source}",
                socket.display()
            ),
            Self::Rejected { command, answer } => {
                write!(f, "HAProxy rejected `{command}`: {}", answer.trim())
            }
            Self::Unreadable { command, reason } => {
                write!(f, "cannot read the answer to `{command}`: {reason}")
            }
            Self::UnsafeName(name) => write!(
                f,
                "name {name:?} cannot be sent to the runtime API (only letters, digits, '-', '_', '.' and ':' are allowed)"
            ),
        }
    }
}

impl std::error::Error for RuntimeError {}

// srv_admin_state bits (HAProxy's SRV_ADMF_*). CMAINT (0x04) only records that the
// maintenance came from `disabled` in the config: it stays set after `state ready`, so it
// does not mean "in maintenance" on its own.
const FORCED_MAINT: u32 = 0x01;
const INHERITED_MAINT: u32 = 0x02;
const RESOLVER_MAINT: u32 = 0x20;
const FORCED_DRAIN: u32 = 0x08;
const INHERITED_DRAIN: u32 = 0x10;
// srv_check_state bits (HAProxy's CHK_ST_*).
const CHECK_CONFIGURED: u32 = 0x02;
const CHECK_ENABLED: u32 = 0x04;
const CHECK_PAUSED: u32 = 0x08;
/// srv_op_state 1: SRV_ST_STARTING (up, warming up under `slowstart`).
const STARTING: u32 = 1;
/// srv_op_state 2: SRV_ST_RUNNING.
const RUNNING: u32 = 2;
const STOPPED: u32 = 0;

/// One server as the running HAProxy reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct LiveServer {
    /// srv_op_state: 0 stopped, 1 starting, 2 running, 3 stopping.
    pub op_state: u32,
    /// srv_admin_state bit field.
    pub admin_state: u32,
    /// srv_uweight: the weight in effect.
    pub weight: u32,
    /// srv_iweight: the weight from the config at startup.
    pub initial_weight: u32,
    /// srv_check_state: the health check's CHK_ST_* bits; `None` when the answer has no such column.
    pub check_state: Option<u32>,
}

impl LiveServer {
    /// In maintenance (forced, inherited from a tracked server, or DNS resolution).
    pub fn maint(&self) -> bool {
        self.admin_state & (FORCED_MAINT | INHERITED_MAINT | RESOLVER_MAINT) != 0
    }

    /// Draining by admin state.
    pub fn drain_flag(&self) -> bool {
        self.admin_state & (FORCED_DRAIN | INHERITED_DRAIN) != 0
    }

    /// Takes no new traffic while up: the drain flag or a zero weight.
    pub fn drained(&self) -> bool {
        self.drain_flag() || self.weight == 0
    }

    /// Up, in the ready admin state, with a non-zero weight: it takes traffic.
    pub fn active(&self) -> bool {
        self.op_state == RUNNING && !self.maint() && !self.drained()
    }

    /// Passes its health checks (or has none).
    pub fn running(&self) -> bool {
        self.op_state == RUNNING
    }

    /// HAProxy runs a health check for it (configured, not disabled on the CLI); `None`: unknown.
    pub fn checked(&self) -> Option<bool> {
        self.check_state.map(|bits| {
            bits & (CHECK_CONFIGURED | CHECK_ENABLED) == CHECK_CONFIGURED | CHECK_ENABLED
        })
    }

    /// Its health check is paused (maintenance pauses checks; drain does not).
    pub fn check_paused(&self) -> bool {
        self.maint()
            || self
                .check_state
                .is_some_and(|bits| bits & CHECK_PAUSED != 0)
    }

    /// Up as far as its health check goes: running, or starting under `slowstart`.
    pub fn up(&self) -> bool {
        matches!(self.op_state, RUNNING | STARTING)
    }

    /// A short word for the admin state, for people reading the result.
    pub fn admin_word(&self) -> &'static str {
        if self.maint() {
            "maint"
        } else if self.drain_flag() {
            "drain"
        } else {
            "ready"
        }
    }

    /// The commands that take a server back to this state after `sent` changed it: the forced
    /// admin state first (so it takes no traffic it did not take before), then the weight, each
    /// only when `sent` touched it.
    pub fn undo(&self, sent: &[LiveCommand]) -> Vec<LiveCommand> {
        let mut commands = Vec::new();
        if let Some(LiveCommand::State {
            backend, server, ..
        }) = sent.iter().find(|c| matches!(c, LiveCommand::State { .. }))
        {
            let state = if self.admin_state & FORCED_MAINT != 0 {
                AdminState::Maint
            } else if self.admin_state & FORCED_DRAIN != 0 {
                AdminState::Drain
            } else {
                AdminState::Ready
            };
            commands.push(LiveCommand::State {
                backend: backend.clone(),
                server: server.clone(),
                state,
            });
        }
        if let Some(LiveCommand::Weight {
            backend, server, ..
        }) = sent
            .iter()
            .find(|c| matches!(c, LiveCommand::Weight { .. }))
        {
            commands.push(LiveCommand::Weight {
                backend: backend.clone(),
                server: server.clone(),
                weight: self.weight,
            });
        }
        commands
    }
}

/// The servers of one backend as `show servers state` lists them, by server name.
pub type BackendState = BTreeMap<String, LiveServer>;

/// Parses the answer to `show servers state [backend]`: a format version line, a `#` header
/// naming the columns, then one line per server. Columns are found by header name.
pub fn parse_servers_state(text: &str) -> Result<BTreeMap<String, BackendState>, String> {
    let mut lines = text.lines();
    match lines.next().map(str::trim) {
        Some("1") => {}
        Some(other) => return Err(format!("expected format version 1, found {other:?}")),
        None => return Err("empty answer".into()),
    }
    let header: Vec<&str> = lines
        .next()
        .and_then(|l| l.strip_prefix('#'))
        .ok_or("missing the `#` header line")?
        .split_whitespace()
        .collect();
    let column = |name: &str| {
        header
            .iter()
            .position(|h| *h == name)
            .ok_or(format!("no `{name}` column in the header"))
    };
    let backend_col = column("be_name")?;
    let name_col = column("srv_name")?;
    let op_col = column("srv_op_state")?;
    let admin_col = column("srv_admin_state")?;
    let uweight_col = column("srv_uweight")?;
    let iweight_col = column("srv_iweight")?;
    let check_state_col = column("srv_check_state").ok();
    let mut backends: BTreeMap<String, BackendState> = BTreeMap::new();
    for line in lines.filter(|l| !l.trim().is_empty()) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let field = |col: usize| {
            fields
                .get(col)
                .copied()
                .ok_or(format!("short line {line:?}"))
        };
        let number = |col: usize| {
            field(col)?
                .parse::<u32>()
                .map_err(|_| format!("not a number in column {} of {line:?}", header[col]))
        };
        let server = LiveServer {
            op_state: number(op_col)?,
            admin_state: number(admin_col)?,
            weight: number(uweight_col)?,
            initial_weight: number(iweight_col)?,
            check_state: check_state_col.map(number).transpose()?,
        };
        backends
            .entry(field(backend_col)?.to_owned())
            .or_default()
            .insert(field(name_col)?.to_owned(), server);
    }
    Ok(backends)
}

/// A runtime API command this module sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(into = "String")]
pub enum LiveCommand {
    /// `set server B/S state ready|drain|maint`.
    State {
        /// Backend.
        backend: String,
        /// Server.
        server: String,
        /// The admin state.
        state: AdminState,
    },
    /// `set weight B/S N`.
    Weight {
        /// Backend.
        backend: String,
        /// Server.
        server: String,
        /// The absolute weight.
        weight: u32,
    },
}

/// The admin states `set server ... state` accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminState {
    /// In service.
    Ready,
    /// No new traffic.
    Drain,
    /// Maintenance.
    Maint,
}

impl fmt::Display for LiveCommand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::State {
                backend,
                server,
                state,
            } => {
                let word = match state {
                    AdminState::Ready => "ready",
                    AdminState::Drain => "drain",
                    AdminState::Maint => "maint",
                };
                write!(f, "set server {backend}/{server} state {word}")
            }
            Self::Weight {
                backend,
                server,
                weight,
            } => write!(f, "set weight {backend}/{server} {weight}"),
        }
    }
}

impl From<LiveCommand> for String {
    fn from(command: LiveCommand) -> Self {
        command.to_string()
    }
}

impl LiveCommand {
    /// What the command does to `live`, as HAProxy does it: `drain` and `maint` replace each
    /// other, `ready` clears both; leaving maintenance assumes the health checks pass.
    pub fn apply_to(&self, live: &mut LiveServer) {
        match self {
            Self::Weight { weight, .. } => live.weight = *weight,
            Self::State { state, .. } => {
                let was_maint = live.maint();
                live.admin_state &= !(FORCED_MAINT | FORCED_DRAIN);
                match state {
                    AdminState::Ready => {}
                    AdminState::Drain => live.admin_state |= FORCED_DRAIN,
                    AdminState::Maint => live.admin_state |= FORCED_MAINT,
                }
                if live.maint() {
                    live.op_state = STOPPED;
                } else if was_maint {
                    live.op_state = RUNNING;
                }
            }
        }
    }
}

/// What the live server should look like so that it agrees with the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LiveGoal {
    /// Maintenance (`disabled`, or `absent` until the reload drops it).
    Maint,
    /// Up but taking no new traffic (`weight 0` in the file). `use_drain_state` picks
    /// `state drain` (the `drain` request) over `set weight 0` (a requested weight of 0).
    Drained {
        /// Prefer the drain admin state.
        use_drain_state: bool,
    },
    /// Ready with this weight.
    Ready {
        /// The weight from the file.
        weight: u32,
    },
}

impl LiveGoal {
    /// The goal takes new traffic away from the server (the safe direction to apply first).
    pub fn takes_no_new_traffic(&self) -> bool {
        matches!(self, Self::Maint | Self::Drained { .. })
    }

    /// Whether `live` already agrees with the goal.
    pub fn reached_by(&self, live: &LiveServer) -> bool {
        match *self {
            Self::Maint => live.admin_state & FORCED_MAINT != 0,
            Self::Drained { .. } => !live.maint() && live.drained(),
            Self::Ready { weight } => !live.maint() && !live.drain_flag() && live.weight == weight,
        }
    }

    /// The commands that take `live` to the goal; none when it is already there.
    pub fn commands(&self, backend: &str, server: &str, live: &LiveServer) -> Vec<LiveCommand> {
        if self.reached_by(live) {
            return Vec::new();
        }
        let state = |state| LiveCommand::State {
            backend: backend.to_owned(),
            server: server.to_owned(),
            state,
        };
        let weight = |weight| LiveCommand::Weight {
            backend: backend.to_owned(),
            server: server.to_owned(),
            weight,
        };
        match *self {
            Self::Maint => vec![state(AdminState::Maint)],
            Self::Drained {
                use_drain_state: true,
            } => vec![state(AdminState::Drain)],
            Self::Drained {
                use_drain_state: false,
            } => {
                let mut commands = vec![weight(0)];
                if live.maint() || live.drain_flag() {
                    commands.push(state(AdminState::Ready));
                }
                commands
            }
            // The weight goes first so the server comes back at the intended weight.
            Self::Ready { weight: w } => {
                let mut commands = Vec::new();
                if live.weight != w {
                    commands.push(weight(w));
                }
                if live.maint() || live.drain_flag() {
                    commands.push(state(AdminState::Ready));
                }
                commands
            }
        }
    }
}

/// A client for one admin socket.
#[derive(Debug, Clone)]
pub struct AdminSocket {
    path: PathBuf,
    timeout: Duration,
}

impl AdminSocket {
    /// A client for the socket at `path`; each exchange gives up after `timeout`.
    pub fn new(path: &Path, timeout: Duration) -> Self {
        Self {
            path: path.to_owned(),
            timeout,
        }
    }

    /// Sends one command and returns the whole answer.
    fn exchange(&self, command: &str) -> Result<String, RuntimeError> {
        let io = |source| RuntimeError::Io {
            socket: self.path.clone(),
            command: command.to_owned(),
            source,
        };
        let mut stream = UnixStream::connect(&self.path).map_err(io)?;
        stream.set_read_timeout(Some(self.timeout)).map_err(io)?;
        stream.set_write_timeout(Some(self.timeout)).map_err(io)?;
        stream
            .write_all(format!("{command}\n").as_bytes())
            .map_err(io)?;
        let mut answer = String::new();
        stream.read_to_string(&mut answer).map_err(io)?;
        Ok(answer)
    }

    /// The live servers of `backend`; empty when the running HAProxy has no such backend
    /// (a backend added to the file but not yet reloaded).
    pub fn backend_state(&self, backend: &str) -> Result<BackendState, RuntimeError> {
        check_name(backend)?;
        let command = format!("show servers state {backend}");
        let answer = self.exchange(&command)?;
        if answer.trim() == "Can't find backend." {
            return Ok(BackendState::new());
        }
        let mut all = parse_servers_state(&answer)
            .map_err(|reason| RuntimeError::Unreadable { command, reason })?;
        Ok(all.remove(backend).unwrap_or_default())
    }

    /// The answer to `show info` (process information, the worker's `Pid:` among it).
    pub fn show_info(&self) -> Result<String, RuntimeError> {
        self.exchange("show info")
    }

    /// The answer to `show servers state`, as HAProxy's `server-state-file` takes it.
    pub fn servers_state_text(&self) -> Result<String, RuntimeError> {
        let command = "show servers state";
        let answer = self.exchange(command)?;
        parse_servers_state(&answer).map_err(|reason| RuntimeError::Unreadable {
            command: command.into(),
            reason,
        })?;
        Ok(answer)
    }

    /// Every live backend's servers.
    pub fn all_state(&self) -> Result<BTreeMap<String, BackendState>, RuntimeError> {
        let command = "show servers state";
        let answer = self.exchange(command)?;
        parse_servers_state(&answer).map_err(|reason| RuntimeError::Unreadable {
            command: command.into(),
            reason,
        })
    }

    /// Sends a `set` command; HAProxy answers those with nothing on success.
    pub fn send(&self, command: &LiveCommand) -> Result<(), RuntimeError> {
        let (LiveCommand::State {
            backend, server, ..
        }
        | LiveCommand::Weight {
            backend, server, ..
        }) = command;
        check_name(backend)?;
        check_name(server)?;
        let text = command.to_string();
        let answer = self.exchange(&text)?;
        check_set_answer(text, answer)
    }
}

/// HAProxy answers a successful `set` command with an empty line, and a failed one with a message.
fn check_set_answer(command: String, answer: String) -> Result<(), RuntimeError> {
    if answer.trim().is_empty() {
        Ok(())
    } else {
        Err(RuntimeError::Rejected { command, answer })
    }
}

/// HAProxy names are made of these characters; anything else could split or inject a command.
fn check_name(name: &str) -> Result<(), RuntimeError> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':');
    if !name.is_empty() && name.chars().all(allowed) {
        Ok(())
    } else {
        Err(RuntimeError::UnsafeName(name.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Captured from HAProxy 2.6.12 with `s1` set to drain at runtime, `s2` written `disabled`,
    /// `s3` written `weight 0`, and `s4` (backup) given `set weight 0`.
    const CAPTURED: &str = include_str!("testdata/show_servers_state.txt");

    fn captured() -> BackendState {
        parse_servers_state(CAPTURED).unwrap().remove("be").unwrap()
    }

    #[test]
    fn parses_the_captured_answer_by_column_name() {
        let be = captured();
        assert_eq!(be.keys().collect::<Vec<_>>(), ["s1", "s2", "s3", "s4"]);
        let s1 = be["s1"];
        assert_eq!(
            (s1.op_state, s1.admin_state, s1.weight, s1.initial_weight),
            (0, 8, 10, 10)
        );
        assert!(s1.drain_flag() && s1.drained() && !s1.maint() && !s1.active());
        let s2 = be["s2"];
        assert_eq!(s2.admin_state, 5);
        assert!(s2.maint() && !s2.active());
        assert_eq!(s2.admin_word(), "maint");
        let s3 = be["s3"];
        assert!(s3.running() && s3.drained() && !s3.drain_flag() && !s3.active());
        assert_eq!(s3.admin_word(), "ready");
        let s4 = be["s4"];
        assert_eq!((s4.weight, s4.initial_weight), (0, 1));
        // s1 has a check that fails while it drains; s2 and s3 have none.
        assert_eq!(
            (s1.checked(), s1.check_paused(), s1.up()),
            (Some(true), false, false)
        );
        assert_eq!(s2.checked(), Some(false));
        assert!(s2.check_paused());
        assert_eq!((s3.checked(), s3.up()), (Some(false), true));
    }

    #[test]
    fn columns_are_found_by_name_not_position() {
        let text =
            "1\n# srv_name be_name srv_uweight srv_iweight srv_admin_state srv_op_state extra\n\
                    web1 app 7 10 0 2 x\n";
        let all = parse_servers_state(text).unwrap();
        let web1 = all["app"]["web1"];
        assert_eq!(
            (web1.weight, web1.initial_weight, web1.op_state),
            (7, 10, 2)
        );
        assert!(web1.active());
        assert_eq!(web1.checked(), None);
    }

    #[test]
    fn unreadable_answers_are_errors() {
        let no_backend = include_str!("testdata/no_such_backend.txt");
        assert!(parse_servers_state(no_backend).is_err());
        assert!(parse_servers_state("").is_err());
        assert!(parse_servers_state("1\n2 be 1 s1\n").is_err());
        assert!(parse_servers_state("1\n# be_name srv_name\nbe s1\n").is_err());
        let bad_number = "1\n# be_name srv_name srv_op_state srv_admin_state srv_uweight srv_iweight\nbe s1 2 x 1 1\n";
        assert!(parse_servers_state(bad_number)
            .unwrap_err()
            .contains("srv_admin_state"));
    }

    #[test]
    fn config_maint_bit_alone_is_not_maintenance() {
        // Captured: a `disabled` server after `set server be/s2 state ready` reports 4.
        let ready_again = LiveServer {
            op_state: 2,
            admin_state: 4,
            weight: 1,
            initial_weight: 1,
            check_state: None,
        };
        assert!(!ready_again.maint());
        assert!(ready_again.active());
    }

    /// Every kind of goal, `Ready` at `weight`.
    fn every_goal(weight: u32) -> [LiveGoal; 4] {
        [
            LiveGoal::Maint,
            LiveGoal::Drained {
                use_drain_state: true,
            },
            LiveGoal::Drained {
                use_drain_state: false,
            },
            LiveGoal::Ready { weight },
        ]
    }

    #[test]
    fn undo_takes_every_captured_server_back_from_every_goal() {
        let goals = every_goal(3);
        for (name, before) in captured() {
            for goal in goals {
                let sent = goal.commands("be", &name, &before);
                let mut live = before;
                for command in &sent {
                    command.apply_to(&mut live);
                }
                let undo = before.undo(&sent);
                for command in &undo {
                    command.apply_to(&mut live);
                }
                let forced =
                    |l: &LiveServer| (l.admin_state & (FORCED_MAINT | FORCED_DRAIN), l.weight);
                assert_eq!(
                    forced(&live),
                    forced(&before),
                    "{name} {goal:?}: {sent:?} then {undo:?}"
                );
                assert_eq!(sent.is_empty(), undo.is_empty(), "{name} {goal:?}");
            }
        }
    }

    #[test]
    fn goals_produce_only_the_needed_commands() {
        let be = captured();
        let cmds = |goal: LiveGoal, server: &str| {
            goal.commands("be", server, &be[server])
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
        };
        // s1 is already draining.
        assert!(cmds(
            LiveGoal::Drained {
                use_drain_state: true
            },
            "s1"
        )
        .is_empty());
        // s3 has weight 0 from the file: already drained, whichever way drain was asked for.
        assert!(cmds(
            LiveGoal::Drained {
                use_drain_state: true
            },
            "s3"
        )
        .is_empty());
        assert_eq!(
            cmds(
                LiveGoal::Drained {
                    use_drain_state: true
                },
                "s2"
            ),
            ["set server be/s2 state drain"]
        );
        assert_eq!(
            cmds(LiveGoal::Ready { weight: 10 }, "s1"),
            ["set server be/s1 state ready"]
        );
        assert_eq!(
            cmds(LiveGoal::Ready { weight: 4 }, "s1"),
            ["set weight be/s1 4", "set server be/s1 state ready"]
        );
        assert_eq!(
            cmds(LiveGoal::Ready { weight: 3 }, "s3"),
            ["set weight be/s3 3"]
        );
        assert!(cmds(LiveGoal::Maint, "s2").is_empty());
        assert_eq!(
            cmds(LiveGoal::Maint, "s1"),
            ["set server be/s1 state maint"]
        );
        assert_eq!(
            cmds(
                LiveGoal::Drained {
                    use_drain_state: false
                },
                "s2"
            ),
            ["set weight be/s2 0", "set server be/s2 state ready"]
        );
    }

    #[test]
    fn applying_the_commands_reaches_the_goal() {
        let goals = [every_goal(10).as_slice(), &[LiveGoal::Ready { weight: 0 }]].concat();
        for (name, start) in captured() {
            for &goal in &goals {
                let mut live = start;
                for command in goal.commands("be", &name, &start) {
                    command.apply_to(&mut live);
                }
                assert!(goal.reached_by(&live), "{name} {goal:?} {live:?}");
                assert!(goal.commands("be", &name, &live).is_empty());
            }
        }
    }

    #[test]
    fn set_answers_with_a_message_are_rejections() {
        assert!(check_set_answer("set weight be/s1 5".into(), "\n".into()).is_ok());
        let captured = include_str!("testdata/no_such_server.txt");
        let err = check_set_answer("set server be/zz state drain".into(), captured.into())
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "HAProxy rejected `set server be/zz state drain`: No such server."
        );
    }

    #[test]
    fn unsafe_names_are_refused_before_sending() {
        let socket = AdminSocket::new(Path::new("/nonexistent/admin.sock"), Duration::from_secs(1));
        let command = LiveCommand::State {
            backend: "be".into(),
            server: "s1; shutdown frontend fe".into(),
            state: AdminState::Ready,
        };
        assert!(matches!(
            socket.send(&command),
            Err(RuntimeError::UnsafeName(_))
        ));
        assert!(matches!(
            socket.backend_state("be"),
            Err(RuntimeError::Io { .. })
        ));
    }
}
