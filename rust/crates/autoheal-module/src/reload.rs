//! A graceful reload of a master-worker HAProxy, and the wait for its new worker.
//!
//! The worker's pid is read from the admin socket (`show info`) before the reload; the reload is
//! over when the admin socket answers with another pid. A reload that keeps the old worker (the
//! new file did not load) therefore times out instead of passing unnoticed.

use std::fmt;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::runtime::{AdminSocket, RuntimeError};

/// How to ask HAProxy to reload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReloadMethod {
    /// `reload` on the master CLI socket (`haproxy -S <socket>`).
    MasterCli(PathBuf),
    /// SIGUSR2 to the master, whose pid is the first word of this pid file.
    Signal(PathBuf),
    /// `systemctl reload <service>`.
    Systemd(String),
}

/// Why a reload failed. The file was already written when one is returned.
#[derive(Debug)]
pub enum ReloadError {
    /// The admin socket did not give the current worker's pid.
    Before(RuntimeError),
    /// The reload could not be asked for.
    Ask {
        /// What was done.
        how: String,
        /// Why it failed.
        reason: String,
    },
    /// No new worker answered in time.
    Timeout {
        /// How long we waited.
        waited: Duration,
        /// The old worker's pid.
        old_pid: u32,
        /// The last answer or error seen.
        last: String,
    },
}

impl fmt::Display for ReloadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Before(e) => write!(f, "cannot read the worker's pid before the reload: {e}"),
            Self::Ask { how, reason } => write!(f, "reload ({how}) failed: {reason}"),
            Self::Timeout {
                waited,
                old_pid,
                last,
            } => write!(
                f,
                "no new worker answered on the admin socket within {:.1} s of the reload (the old \
                 worker {old_pid} is still there, or none answers: {last}); did the new \
                 configuration load?",
                waited.as_secs_f64()
            ),
        }
    }
}

impl std::error::Error for ReloadError {}

/// What a completed reload did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reloaded {
    /// The worker before.
    pub old_pid: u32,
    /// The worker that answers now.
    pub new_pid: u32,
}

/// The `Pid:` line of `show info`.
fn worker_pid(socket: &AdminSocket) -> Result<u32, RuntimeError> {
    let answer = socket.show_info()?;
    answer
        .lines()
        .find_map(|line| line.strip_prefix("Pid:"))
        .and_then(|pid| pid.trim().parse().ok())
        .ok_or_else(|| RuntimeError::Unreadable {
            command: "show info".into(),
            reason: "no Pid line".into(),
        })
}

/// Asks for the reload with `method`.
fn ask(method: &ReloadMethod, timeout: Duration) -> Result<(), ReloadError> {
    match method {
        ReloadMethod::MasterCli(path) => {
            master_cli_reload(path, timeout).map_err(|e| ReloadError::Ask {
                how: format!("`reload` on the master CLI {}", path.display()),
                reason: e.to_string(),
            })
        }
        ReloadMethod::Signal(pidfile) => {
            let how = || format!("SIGUSR2 to the master pid in {}", pidfile.display());
            let pid =
                master_pid(pidfile).map_err(|reason| ReloadError::Ask { how: how(), reason })?;
            rustix::process::kill_process(pid, rustix::process::Signal::USR2).map_err(|e| {
                ReloadError::Ask {
                    how: how(),
                    reason: format!("pid {}: {e}", pid.as_raw_nonzero()),
                }
            })
        }
        ReloadMethod::Systemd(service) => {
            let how = format!("systemctl reload {service}");
            let output = Command::new("systemctl")
                .args(["reload", service])
                .output()
                .map_err(|e| ReloadError::Ask {
                    how: how.clone(),
                    reason: e.to_string(),
                })?;
            if output.status.success() {
                Ok(())
            } else {
                Err(ReloadError::Ask {
                    how,
                    reason: format!(
                        "{}: {}",
                        output.status,
                        String::from_utf8_lossy(&output.stderr).trim()
                    ),
                })
            }
        }
    }
}

fn master_cli_reload(path: &Path, timeout: Duration) -> std::io::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        let answer = master_cli_ask(path, timeout)?;
        match read_reload_answer(&answer) {
            ReloadAnswer::Refused(logs) => {
                return Err(std::io::Error::other(format!(
                    "HAProxy did not load the new configuration: {logs}"
                )))
            }
            // 3.1 and later refuse a reload while the previous one's worker is still starting.
            ReloadAnswer::Busy if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(100));
            }
            ReloadAnswer::Busy => {
                return Err(std::io::Error::other(
                    "the master kept answering that another reload is still in progress",
                ))
            }
            ReloadAnswer::Accepted => return Ok(()),
        }
    }
}

fn master_cli_ask(path: &Path, timeout: Duration) -> std::io::Result<String> {
    let mut stream = UnixStream::connect(path)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    stream.write_all(b"reload\n")?;
    // The master answers (2.7 and later) or just closes the connection (2.6) as it re-executes.
    let mut answer = Vec::new();
    match stream.read_to_end(&mut answer) {
        Ok(_) => Ok(String::from_utf8_lossy(&answer).into_owned()),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => Ok(String::new()),
        Err(e) => Err(e),
    }
}

/// What the master CLI said to `reload`.
#[derive(Debug, PartialEq, Eq)]
enum ReloadAnswer {
    /// `Success=1` (2.7+), or no answer at all (2.6 closes the connection as it re-executes).
    Accepted,
    /// `Success=0`: the new configuration did not load; the old worker goes on. Carries the
    /// startup logs the master printed after it.
    Refused(String),
    /// 3.1+: another reload is still in progress.
    Busy,
}

fn read_reload_answer(answer: &str) -> ReloadAnswer {
    if answer.contains("Another reload is still in progress") {
        ReloadAnswer::Busy
    } else if answer.lines().any(|line| line.trim() == "Success=0") {
        let logs: Vec<&str> = answer
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty() && *line != "Success=0" && *line != "--")
            .collect();
        ReloadAnswer::Refused(logs.join(" | "))
    } else {
        ReloadAnswer::Accepted
    }
}

fn master_pid(pidfile: &Path) -> Result<rustix::process::Pid, String> {
    let text = std::fs::read_to_string(pidfile).map_err(|e| e.to_string())?;
    let first = text.split_whitespace().next().unwrap_or_default();
    first
        .parse::<i32>()
        .ok()
        // A zero or negative "pid" would signal a process group (or every process) instead.
        .filter(|pid| *pid > 0)
        .and_then(rustix::process::Pid::from_raw)
        .ok_or_else(|| format!("no pid in it (found {first:?})"))
}

/// Reloads with `method` and waits up to `timeout` for a new worker to answer on `socket`.
pub fn reload(
    method: &ReloadMethod,
    socket: &AdminSocket,
    timeout: Duration,
) -> Result<Reloaded, ReloadError> {
    let old_pid = worker_pid(socket).map_err(ReloadError::Before)?;
    ask(method, timeout)?;
    let start = Instant::now();
    loop {
        let last = match worker_pid(socket) {
            Ok(pid) if pid != old_pid => {
                return Ok(Reloaded {
                    old_pid,
                    new_pid: pid,
                })
            }
            Ok(pid) => format!("pid {pid}"),
            Err(e) => e.to_string(),
        };
        if start.elapsed() >= timeout {
            return Err(ReloadError::Timeout {
                waited: start.elapsed(),
                old_pid,
                last,
            });
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_master_pid_is_the_first_word_of_the_pid_file() {
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("haproxy.pid");
        std::fs::write(&pidfile, "4242\n4243\n").unwrap();
        assert_eq!(master_pid(&pidfile).unwrap().as_raw_nonzero().get(), 4242);
        std::fs::write(&pidfile, "\n").unwrap();
        assert!(master_pid(&pidfile).unwrap_err().contains("no pid"));
        assert!(master_pid(&dir.path().join("missing")).is_err());
        for not_a_pid in ["0\n", "-1\n", "-4242\n", "12ab\n"] {
            std::fs::write(&pidfile, not_a_pid).unwrap();
            assert!(
                master_pid(&pidfile).is_err(),
                "{not_a_pid:?} was taken as a pid"
            );
        }
    }

    #[test]
    fn the_master_cli_answer_says_whether_the_reload_was_taken() {
        // 2.6 closes the connection without a word; 2.7+ prints Success=1 and the startup logs.
        assert_eq!(read_reload_answer(""), ReloadAnswer::Accepted);
        assert_eq!(
            read_reload_answer("Success=1\n--\n[NOTICE] (1) : New worker (2) forked\n"),
            ReloadAnswer::Accepted
        );
        assert_eq!(
            read_reload_answer("Success=0\n--\n[ALERT] (1) : config : parsing [h.cfg:9] : unknown keyword 'bogus'\n"),
            ReloadAnswer::Refused(
                "[ALERT] (1) : config : parsing [h.cfg:9] : unknown keyword 'bogus'".into()
            )
        );
        assert_eq!(
            read_reload_answer("Another reload is still in progress.\n"),
            ReloadAnswer::Busy
        );
    }

    #[test]
    fn an_unreachable_admin_socket_fails_before_anything_is_asked() {
        let socket = AdminSocket::new(Path::new("/nonexistent/admin.sock"), Duration::from_secs(1));
        // The pid file does not exist either: the error must be about the socket, read first.
        let method = ReloadMethod::Signal(PathBuf::from("/nonexistent/haproxy.pid"));
        let err = reload(&method, &socket, Duration::from_secs(1)).unwrap_err();
        assert!(matches!(err, ReloadError::Before(_)), "{err}");
    }
}
