//! A resident Python worker that calls `ansible_runner.run()` in-process, so a run does not
//! pay for starting Python and importing ansible_runner (the `ansible-runner` CLI does).
//!
//! The worker (`runner_worker.py`, embedded) speaks newline-delimited JSON on stdin/stdout.
//! It runs in a process group of its own so that a stuck run can be killed with everything it
//! started; it exits by itself when its stdin closes (the relay is gone).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use serde::Deserialize;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

/// The worker's source, passed as `python -u -c SOURCE`.
pub const WORKER_SOURCE: &str = include_str!("runner_worker.py");
/// How long a fresh worker may take to import ansible_runner and say it is ready.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

/// Why the worker could not start or carry out a request.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// The interpreter could not be started.
    #[error("cannot start {python}: {source}")]
    Spawn {
        /// The interpreter.
        python: String,
        /// Why.
        source: std::io::Error,
    },
    /// Reading from or writing to the worker failed.
    #[error("talking to the worker: {0}")]
    Io(#[from] std::io::Error),
    /// The worker closed its stdout (it exited).
    #[error("the worker exited")]
    Exited,
    /// The worker answered something that is not a protocol line.
    #[error("the worker answered garbage: {0:?}")]
    Garbage(String),
    /// The worker did not say it was ready in time.
    #[error("the worker was not ready within {}s", STARTUP_TIMEOUT.as_secs())]
    StartupTimeout,
    /// The worker could not start (e.g. ansible_runner cannot be imported).
    #[error("the worker could not start: {0}")]
    NotReady(String),
}

/// One line from the worker.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Answer {
    /// The run finished (whatever its status).
    Finished {
        /// ansible-runner's status (`successful`, `failed`, `timeout`, ...).
        status: String,
        /// ansible-playbook's return code.
        rc: Option<i32>,
        /// The run was handed to the warm standby rather than started.
        #[serde(default)]
        standby: bool,
    },
    /// The run could not be carried out (ansible_runner.run raised).
    Error {
        /// What went wrong.
        error: String,
    },
    /// Sent once, on start.
    Ready {
        /// Always true.
        ready: bool,
    },
}

/// A running worker.
#[derive(Debug)]
pub struct Worker {
    child: Child,
    stdin: ChildStdin,
    stdout: Lines<BufReader<ChildStdout>>,
}

impl Worker {
    /// Starts `python -u -c WORKER_SOURCE` and waits for its ready line.
    pub async fn start(python: &Path, env: &BTreeMap<String, String>) -> Result<Self, WorkerError> {
        let mut child = Command::new(python)
            .args(["-u", "-c", WORKER_SOURCE])
            .envs(env)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| WorkerError::Spawn {
                python: python.display().to_string(),
                source,
            })?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err(WorkerError::Exited);
        };
        let mut worker = Self {
            child,
            stdin,
            stdout: BufReader::new(stdout).lines(),
        };
        match tokio::time::timeout(STARTUP_TIMEOUT, worker.read_answer()).await {
            Ok(Ok(Answer::Ready { ready: true })) => Ok(worker),
            Ok(Ok(Answer::Error { error })) => {
                worker.kill();
                Err(WorkerError::NotReady(error))
            }
            Ok(Ok(other)) => {
                worker.kill();
                Err(WorkerError::Garbage(format!("{other:?}")))
            }
            Ok(Err(e)) => {
                worker.kill();
                Err(e)
            }
            Err(_) => {
                worker.kill();
                Err(WorkerError::StartupTimeout)
            }
        }
    }

    /// Sends one request and waits for its answer (the caller bounds the wait).
    pub async fn call(&mut self, request: &serde_json::Value) -> Result<Answer, WorkerError> {
        let mut line = request.to_string();
        line.push('\n');
        self.stdin.write_all(line.as_bytes()).await?;
        self.stdin.flush().await?;
        self.read_answer().await
    }

    async fn read_answer(&mut self) -> Result<Answer, WorkerError> {
        let line = self.stdout.next_line().await?.ok_or(WorkerError::Exited)?;
        serde_json::from_str(&line).map_err(|_| WorkerError::Garbage(line))
    }

    /// Whether the worker process has ended (e.g. killed while idle).
    pub fn has_exited(&mut self) -> bool {
        !matches!(self.child.try_wait(), Ok(None))
    }

    /// Kills the worker with everything it started (as dropping it does); the child is reaped in
    /// the background.
    pub fn kill(self) {
        drop(self);
    }

    /// ansible-runner starts `ansible-playbook` on a pty, in a session of its own, and ansible
    /// starts its own workers in theirs: neither is in the worker's process group, and both would
    /// outlive the worker (reparented to init) and go on changing things unobserved. So the whole
    /// tree of descendants is stopped first (a stopped process cannot fork), then killed.
    fn kill_tree(&mut self) {
        if let Some(root) = self.child.id() {
            let mut tree = Vec::new();
            for _ in 0..2 {
                for pid in descendants(root) {
                    if !tree.contains(&pid) {
                        signal(pid, rustix::process::Signal::STOP);
                        tree.push(pid);
                    }
                }
            }
            for pid in tree {
                signal(pid, rustix::process::Signal::KILL);
            }
            if let Some(pid) = i32::try_from(root)
                .ok()
                .and_then(rustix::process::Pid::from_raw)
            {
                let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
            }
        }
        let _ = self.child.start_kill();
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.kill_tree();
    }
}

fn signal(pid: u32, sig: rustix::process::Signal) {
    if let Some(pid) = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    {
        let _ = rustix::process::kill_process(pid, sig);
    }
}

/// Every process below `root` (any depth), from the parent pids in /proc.
fn descendants(root: u32) -> Vec<u32> {
    let mut children: std::collections::HashMap<u32, Vec<u32>> = std::collections::HashMap::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue; // ended meanwhile
        };
        // "pid (comm) state ppid ...": comm may hold spaces and parentheses, so split after the last ')'.
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        if let Some(ppid) = ppid {
            children.entry(ppid).or_default().push(pid);
        }
    }
    let mut found = Vec::new();
    let mut todo = vec![root];
    while let Some(pid) = todo.pop() {
        for &child in children.get(&pid).into_iter().flatten() {
            found.push(child);
            todo.push(child);
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use std::process::Stdio;
    use std::time::Duration;

    #[tokio::test]
    async fn worker_exits_when_its_stdin_closes() {
        let stand_in = tempfile::tempdir().unwrap();
        std::fs::write(stand_in.path().join("ansible_runner.py"), "").unwrap();
        let mut child = tokio::process::Command::new("python3")
            .args(["-u", "-c", super::WORKER_SOURCE])
            .env("PYTHONPATH", stand_in.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(stdout));
        assert_eq!(
            lines.next_line().await.unwrap().unwrap(),
            r#"{"ready": true}"#
        );
        drop(child.stdin.take());
        let exit = tokio::time::timeout(Duration::from_secs(10), child.wait())
            .await
            .expect("the worker did not exit when its stdin closed")
            .unwrap();
        assert!(exit.success(), "{exit:?}");
    }
}
