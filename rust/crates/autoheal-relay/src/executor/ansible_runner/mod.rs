//! Runs the playbook through ansible-runner, one private data dir per run.
//!
//! Resident mode (the default): a long-lived Python worker per fleet calls
//! `ansible_runner.run()` with the same inputs the CLI gets (see [`worker`]), which
//! saves starting Python and importing ansible_runner on every run. CLI mode (the fallback, or
//! `resident = false`): `ansible-runner run DIR -p PLAYBOOK`, built as an argv vector (never
//! through a shell). Either way the actions reach the playbook as `env/extravars` (YAML in JSON
//! flow style, every string tagged `!unsafe` so that Ansible never templates it); ansible-runner
//! enforces `job_timeout` from `env/settings`, and the relay kills
//! ansible-runner (or the worker) itself if it overstays that by a margin.
//!
//! `cli` spawns the CLI; `pool` keeps the resident workers, one per fleet, and `worker` speaks
//! to one; `spare` starts workers ahead of need; `run_dir` writes each run's private data dir,
//! reads its result and deletes old ones; `host_outcome` reads which hosts a run failed on.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::{Executor, RunFuture, RunRequest};
use crate::config::AnsibleRunnerConfig;
use crate::model::{RunResult, RunStatus};

mod cli;
pub mod host_outcome;
mod pool;
mod run_dir;
mod spare;
#[cfg(test)]
mod test_support;
pub mod worker;

use pool::WorkerSlot;
use spare::SpareWorker;

/// Extra time granted beyond `job_timeout` before the relay kills ansible-runner.
const KILL_MARGIN: Duration = Duration::from_secs(30);
/// The `--ident` of every run (each run has its own private data dir).
const IDENT: &str = "autoheal";

/// The ansible-runner executor.
#[derive(Debug)]
pub struct AnsibleRunner {
    cfg: AnsibleRunnerConfig,
    /// The interpreter for resident workers; `None`: CLI mode.
    python: Option<PathBuf>,
    workers: Mutex<HashMap<String, WorkerSlot>>,
    /// Started at construction and after a worker is killed, so that the next fleet needing
    /// a worker does not wait for Python to start.
    spare: Mutex<Option<SpareWorker>>,
    kill_margin: Duration,
}

/// Why a run could not be carried out at all (it is recorded as an `error` with this as detail).
#[derive(Debug, thiserror::Error)]
pub enum RunnerError {
    /// The run's private data dir could not be written.
    #[error("cannot prepare the private data dir under {}: {source}", work_dir.display())]
    Prepare {
        /// `executor.work_dir`.
        work_dir: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file for ansible-runner's stderr could not be created.
    #[error("{}: {source}", path.display())]
    Log {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// ansible-runner could not be started.
    #[error("cannot start {program}: {source}")]
    Spawn {
        /// The program.
        program: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Waiting for ansible-runner failed.
    #[error("waiting for ansible-runner: {0}")]
    Wait(#[source] std::io::Error),
}

/// Why the resident worker has no Python (runs then use the CLI).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PythonError {
    /// `executor.binary` is not there, so the default Python beside it is not either.
    #[error("executor.binary {} not found, so neither is the python3 beside it", binary.display())]
    NoBinary {
        /// `executor.binary`.
        binary: PathBuf,
    },
    /// The Python is not there.
    #[error("executor.python {} not found; runs use the ansible-runner CLI (set executor.python)", python.display())]
    NoPython {
        /// The Python looked for.
        python: PathBuf,
    },
}

/// The Python the resident worker would use, or why there is none (then runs use the CLI).
pub fn resident_python(cfg: &AnsibleRunnerConfig) -> Result<Option<PathBuf>, PythonError> {
    if !cfg.resident {
        return Ok(None);
    }
    let wanted = match &cfg.python {
        Some(python) => python.clone(),
        None => {
            let binary = find_program(&cfg.binary).ok_or_else(|| PythonError::NoBinary {
                binary: cfg.binary.clone(),
            })?;
            binary.with_file_name("python3")
        }
    };
    find_program(&wanted)
        .map(Some)
        .ok_or(PythonError::NoPython { python: wanted })
}

/// `program` itself if it is a file, or where a bare name is found on PATH.
fn find_program(program: &Path) -> Option<PathBuf> {
    if program.components().count() > 1 {
        return program.is_file().then(|| program.to_owned());
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

impl AnsibleRunner {
    /// An executor for this configuration (CLI mode, with a warning, when the resident
    /// worker's Python cannot be found). Inside a tokio runtime, the first resident worker
    /// starts right away.
    pub fn new(cfg: AnsibleRunnerConfig) -> Self {
        let python = resident_python(&cfg).unwrap_or_else(|why| {
            tracing::warn!("{why}");
            None
        });
        let runner = Self {
            cfg,
            python,
            workers: Mutex::new(HashMap::new()),
            spare: Mutex::new(None),
            kill_margin: KILL_MARGIN,
        };
        runner.start_spare();
        runner.start_fleet_workers();
        runner
    }

    /// The limit for `fleet`: its own, else the default one.
    fn limit(&self, fleet: &str) -> Option<&String> {
        self.cfg.fleet_limits.get(fleet).or(self.cfg.limit.as_ref())
    }

    /// How long a run may take before the relay kills it.
    fn run_limit(&self) -> Duration {
        Duration::from_secs(self.cfg.timeout_secs) + self.kill_margin
    }

    async fn execute(&self, request: &RunRequest) -> Result<RunResult, RunnerError> {
        let started = Instant::now();
        let dir = self
            .prepare(request)
            .map_err(|source| RunnerError::Prepare {
                work_dir: self.cfg.work_dir.clone(),
                source,
            })?;
        let stderr_path = dir.join("relay-stderr.log");
        if let Some(python) = &self.python {
            if let Some(result) = self
                .run_resident(python, request, &dir, &stderr_path, started)
                .await
            {
                return Ok(result);
            }
        }
        self.execute_cli(request, &dir, &stderr_path, started).await
    }
}

fn elapsed_ms(started: Instant) -> i64 {
    i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX)
}

impl Executor for AnsibleRunner {
    fn name(&self) -> &'static str {
        "ansible-runner"
    }

    fn run<'a>(&'a self, request: &'a RunRequest) -> RunFuture<'a> {
        Box::pin(async move {
            let result = self
                .execute(request)
                .await
                .unwrap_or_else(|error| RunResult {
                    status: RunStatus::Error,
                    rc: None,
                    duration_ms: 0,
                    detail: error.to_string(),
                    ..RunResult::default()
                });
            if let Err(e) = run_dir::prune_run_dirs(&self.cfg.work_dir, self.cfg.keep_runs) {
                tracing::warn!(error = %e, dir = %self.cfg.work_dir.display(), "cannot prune old run directories");
            }
            result
        })
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::{cfg, fake_runner, newest_run_dir, request};
    use super::{resident_python, AnsibleRunner, PythonError};
    use crate::executor::Executor;

    #[tokio::test]
    async fn missing_binary_is_an_error_result() {
        let dir = tempfile::tempdir().unwrap();
        let result = AnsibleRunner::new(cfg(dir.path(), dir.path().join("nope")))
            .run(&request())
            .await;
        assert_eq!(result.status, "error");
        assert!(result.detail.contains("cannot start"), "{}", result.detail);
    }

    #[tokio::test]
    async fn resident_mode_falls_back_to_the_cli_when_the_worker_cannot_start() {
        let dir = tempfile::tempdir().unwrap();
        let runner = fake_runner(dir.path(), 0, "successful");
        let mut c = cfg(dir.path(), runner);
        c.resident = true;
        // An interpreter whose ansible_runner import fails, whatever python3 is first on PATH.
        let python = dir.path().join("python-without-ansible-runner");
        std::fs::write(
            &python,
            "#!/bin/sh\necho '{\"error\": \"No module named ansible_runner\"}'\nexit 1\n",
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&python, std::fs::Permissions::from_mode(0o755)).unwrap();
        c.python = Some(python);
        let result = AnsibleRunner::new(c).run(&request()).await;
        assert_eq!(result.status, "successful", "{result:?}");
        assert!(
            newest_run_dir(dir.path()).join("argv").is_file(),
            "the CLI did not run"
        );
    }

    #[test]
    fn resident_python_defaults_to_the_one_beside_the_binary() {
        let dir = tempfile::tempdir().unwrap();
        let runner = fake_runner(dir.path(), 0, "successful");
        let mut c = cfg(dir.path(), runner);
        c.resident = true;
        assert_eq!(
            resident_python(&c),
            Err(PythonError::NoPython {
                python: dir.path().join("python3")
            })
        );
        std::fs::write(dir.path().join("python3"), "").unwrap();
        assert_eq!(
            resident_python(&c).unwrap(),
            Some(dir.path().join("python3"))
        );
        c.resident = false;
        assert_eq!(resident_python(&c).unwrap(), None);
    }
}
