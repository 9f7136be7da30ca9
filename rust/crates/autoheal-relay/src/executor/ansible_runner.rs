//! Runs the playbook through ansible-runner, one private data dir per run.
//!
//! Resident mode (the default): a long-lived Python worker per fleet calls
//! `ansible_runner.run()` with the same inputs the CLI gets (see [`super::resident`]), which
//! saves starting Python and importing ansible_runner on every run. CLI mode (the fallback, or
//! `resident = false`): `ansible-runner run DIR -p PLAYBOOK`, built as an argv vector (never
//! through a shell). Either way the actions reach the playbook as `env/extravars` (YAML in JSON
//! flow style, every string tagged `!unsafe` so that Ansible never templates it); ansible-runner
//! enforces `job_timeout` from `env/settings`, and the relay kills
//! ansible-runner (or the worker) itself if it overstays that by a margin.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::process::Command;

use super::host_outcome::HostOutcome;
use super::resident::{Answer, Worker, WorkerError};
use super::{extra_vars_unsafe_yaml, Executor, RunFuture, RunRequest};
use crate::config::AnsibleRunnerConfig;
use crate::model::{RunResult, PARTIAL};

/// Extra time granted beyond `job_timeout` before the relay kills ansible-runner.
const KILL_MARGIN: Duration = Duration::from_secs(30);
/// The `--ident` of every run (each run has its own private data dir).
const IDENT: &str = "autoheal";

/// A fleet's resident worker, if one is running (runs of a fleet are serialised).
type WorkerSlot = Arc<tokio::sync::Mutex<Option<Worker>>>;
/// A worker being started ahead of need.
type SpareWorker = tokio::task::JoinHandle<Result<Worker, WorkerError>>;

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

/// The Python the resident worker would use, or why there is none (then runs use the CLI).
pub fn resident_python(cfg: &AnsibleRunnerConfig) -> Result<Option<PathBuf>, String> {
    if !cfg.resident {
        return Ok(None);
    }
    let wanted = match &cfg.python {
        Some(python) => python.clone(),
        None => {
            let binary = find_program(&cfg.binary).ok_or_else(|| {
                format!(
                    "executor.binary {} not found, so neither is the python3 beside it",
                    cfg.binary.display()
                )
            })?;
            binary.with_file_name("python3")
        }
    };
    find_program(&wanted).map(Some).ok_or_else(|| {
        format!(
            "executor.python {} not found; runs use the ansible-runner CLI (set executor.python)",
            wanted.display()
        )
    })
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
        runner
    }

    /// Starts a spare worker in the background (resident mode, inside a runtime).
    fn start_spare(&self) {
        let (Some(python), Ok(runtime)) = (&self.python, tokio::runtime::Handle::try_current())
        else {
            return;
        };
        let (python, env) = (python.clone(), self.cfg.env.clone());
        let spare = runtime.spawn(async move { Worker::start(&python, &env).await });
        let previous = self
            .spare
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .replace(spare);
        if let Some(previous) = previous {
            previous.abort();
        }
    }

    /// A ready worker: the spare if it started, else a new one.
    async fn fresh_worker(&self, python: &Path) -> Result<Worker, WorkerError> {
        let spare = self.spare.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(spare) = spare {
            match spare.await {
                Ok(Ok(worker)) => return Ok(worker),
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "the spare ansible-runner worker did not start; trying again")
                }
                Err(e) => {
                    tracing::warn!(error = %e, "the spare ansible-runner worker task failed; trying again")
                }
            }
        }
        Worker::start(python, &self.cfg.env).await
    }

    /// The limit for `fleet`: its own, else the default one.
    fn limit(&self, fleet: &str) -> Option<&String> {
        self.cfg.fleet_limits.get(fleet).or(self.cfg.limit.as_ref())
    }

    /// The argv (program first) for a run in `private_data_dir`.
    pub fn argv(&self, private_data_dir: &Path, fleet: &str) -> Vec<String> {
        let mut argv = vec![
            self.cfg.binary.to_string_lossy().into_owned(),
            "run".into(),
            private_data_dir.to_string_lossy().into_owned(),
            "-p".into(),
            self.cfg.playbook.clone(),
            "--ident".into(),
            IDENT.into(),
            "--inventory".into(),
            self.cfg.inventory.to_string_lossy().into_owned(),
        ];
        if let Some(limit) = self.limit(fleet) {
            argv.push("--limit".into());
            argv.push(limit.clone());
        }
        argv
    }

    /// The resident worker's request for a run in `private_data_dir`: the CLI's inputs.
    fn worker_request(
        &self,
        private_data_dir: &Path,
        fleet: &str,
        log: &Path,
    ) -> serde_json::Value {
        serde_json::json!({
            "private_data_dir": private_data_dir,
            "playbook": self.cfg.playbook,
            "ident": IDENT,
            "inventory": self.cfg.inventory,
            "limit": self.limit(fleet),
            "log": log,
            "standby": self.cfg.standby,
        })
    }

    /// Writes the private data dir: `env/extravars` and `env/settings`.
    fn prepare(&self, request: &RunRequest) -> std::io::Result<PathBuf> {
        let dir = self.cfg.work_dir.join(format!(
            "run-{:08}-{}",
            request.run_id,
            crate::model::now_ms()
        ));
        let env = dir.join("env");
        std::fs::create_dir_all(&env)?;
        write_private(
            &env.join("extravars"),
            &extra_vars_unsafe_yaml(&request.actions),
        )?;
        let settings = serde_json::json!({ "job_timeout": self.cfg.timeout_secs });
        write_private(&env.join("settings"), &settings.to_string())?;
        Ok(dir)
    }

    /// How long a run may take before the relay kills it.
    fn run_limit(&self) -> Duration {
        Duration::from_secs(self.cfg.timeout_secs) + self.kill_margin
    }

    async fn execute(&self, request: &RunRequest) -> Result<RunResult, String> {
        let started = Instant::now();
        let dir = self.prepare(request).map_err(|e| {
            format!(
                "cannot prepare the private data dir under {}: {e}",
                self.cfg.work_dir.display()
            )
        })?;
        let stderr_path = dir.join("relay-stderr.log");
        if let Some(python) = &self.python {
            let slot = {
                let mut workers = self.workers.lock().unwrap_or_else(|p| p.into_inner());
                Arc::clone(workers.entry(request.fleet.clone()).or_default())
            };
            let mut worker = slot.lock().await;
            if worker.as_mut().is_some_and(Worker::has_exited) {
                tracing::warn!(fleet = %request.fleet, "the idle resident ansible-runner worker had exited; starting another");
                *worker = None;
            }
            if worker.is_none() {
                match self.fresh_worker(python).await {
                    Ok(started) => *worker = Some(started),
                    Err(e) => tracing::warn!(
                        run = request.run_id, fleet = %request.fleet, error = %e,
                        "resident ansible-runner worker unavailable; this run uses the CLI"
                    ),
                }
            }
            // Out of the slot while it works: if this future is dropped mid-run, the worker is
            // dropped (killed) with it rather than left holding an answer nobody reads.
            if let Some(mut running) = worker.take() {
                tracing::info!(run = request.run_id, fleet = %request.fleet, mode = "resident", dir = %dir.display(), "starting ansible-runner");
                let call = self.worker_request(&dir, &request.fleet, &stderr_path);
                let answer = tokio::time::timeout(self.run_limit(), running.call(&call)).await;
                let duration_ms = elapsed_ms(started);
                let failure = match answer {
                    Ok(Ok(Answer::Finished {
                        status,
                        rc,
                        standby,
                    })) => {
                        *worker = Some(running);
                        let mut result =
                            self.result(&dir, &stderr_path, Some(status), rc, duration_ms);
                        if standby {
                            result.detail.push_str(" (ran on the warm standby)");
                        }
                        return Ok(result);
                    }
                    Ok(Ok(Answer::Error { error })) => {
                        *worker = Some(running);
                        return Ok(RunResult {
                            status: "failed".into(),
                            rc: None,
                            duration_ms,
                            detail: format!("{error}; see {}", dir.display()),
                        });
                    }
                    Ok(Ok(Answer::Ready { .. })) => (
                        "failed",
                        "the worker answered garbage: a second ready line".into(),
                    ),
                    Ok(Err(e)) => ("failed", e.to_string()),
                    Err(_) => (
                        "timeout",
                        format!("no answer after {}s", self.run_limit().as_secs()),
                    ),
                };
                running.kill();
                self.start_spare();
                let (status, why) = failure;
                return Ok(RunResult {
                    status: status.into(),
                    rc: None,
                    duration_ms,
                    detail: format!(
                        "resident ansible-runner worker: {why}; killed it (a fresh one is starting for the next run); see {}",
                        dir.display()
                    ),
                });
            }
        }
        self.execute_cli(request, &dir, &stderr_path, started).await
    }

    async fn execute_cli(
        &self,
        request: &RunRequest,
        dir: &Path,
        stderr_path: &Path,
        started: Instant,
    ) -> Result<RunResult, String> {
        let argv = self.argv(dir, &request.fleet);
        let stderr = std::fs::File::create(stderr_path)
            .map_err(|e| format!("{}: {e}", stderr_path.display()))?;
        tracing::info!(run = request.run_id, fleet = %request.fleet, mode = "cli", argv = ?argv, "starting ansible-runner");
        let mut child = Command::new(&argv[0])
            .args(&argv[1..])
            .envs(&self.cfg.env)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", argv[0]))?;
        let limit = self.run_limit();
        let waited = tokio::time::timeout(limit, child.wait()).await;
        let duration_ms = elapsed_ms(started);
        let exit = match waited {
            Ok(Ok(status)) => status,
            Ok(Err(e)) => return Err(format!("waiting for ansible-runner: {e}")),
            Err(_) => {
                let _ = child.kill().await;
                return Ok(RunResult {
                    status: "timeout".into(),
                    rc: None,
                    duration_ms,
                    detail: format!("killed after {}s; see {}", limit.as_secs(), dir.display()),
                });
            }
        };
        Ok(self.result(dir, stderr_path, None, exit.code(), duration_ms))
    }

    /// The result of a finished run: `status` as reported (else the artifacts' status file,
    /// else from `rc`), with a log tail when it did not succeed.
    fn result(
        &self,
        dir: &Path,
        stderr_path: &Path,
        status: Option<String>,
        rc: Option<i32>,
        duration_ms: i64,
    ) -> RunResult {
        let artifacts = dir.join("artifacts").join(IDENT);
        let reported = status.filter(|s| !s.is_empty()).or_else(|| {
            std::fs::read_to_string(artifacts.join("status"))
                .ok()
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
        });
        let mut status = match reported {
            Some(s) => s,
            None if rc == Some(0) => "successful".into(),
            None => "failed".into(),
        };
        let mut detail = format!("private data dir {}", dir.display());
        if status != "successful" {
            // The hosts it failed on come first, on a line of their own (the journal keeps that line
            // with the run's decisions); a run that still changed other hosts is partial.
            if let Some(hosts) = HostOutcome::read(&artifacts.join("job_events")) {
                if hosts.partial() {
                    status = PARTIAL.into();
                }
                detail = format!("{}\n{detail}", hosts.summary());
            }
            let tail = tail_of(stderr_path).or_else(|| tail_of(&artifacts.join("stdout")));
            if let Some(tail) = tail {
                detail.push_str(": ");
                detail.push_str(&tail);
            }
        }
        RunResult {
            status,
            rc,
            duration_ms,
            detail,
        }
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
                .unwrap_or_else(|detail| RunResult {
                    status: "error".into(),
                    rc: None,
                    duration_ms: 0,
                    detail,
                });
            if let Err(e) = prune_run_dirs(&self.cfg.work_dir, self.cfg.keep_runs) {
                tracing::warn!(error = %e, dir = %self.cfg.work_dir.display(), "cannot prune old run directories");
            }
            result
        })
    }
}

/// Deletes all but the newest `keep` `run-*` directories (their names sort by run id).
fn prune_run_dirs(work_dir: &Path, keep: usize) -> std::io::Result<()> {
    let mut runs: Vec<PathBuf> = std::fs::read_dir(work_dir)?
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with("run-") && e.path().is_dir())
        .map(|e| e.path())
        .collect();
    if runs.len() <= keep {
        return Ok(());
    }
    runs.sort();
    for old in &runs[..runs.len() - keep] {
        std::fs::remove_dir_all(old)?;
    }
    Ok(())
}

fn write_private(path: &Path, content: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(content.as_bytes())?;
    f.sync_all()
}

/// The last few hundred bytes of a log file, on one line.
fn tail_of(path: &Path) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    let start = text.len().saturating_sub(400);
    let start = (start..text.len())
        .find(|i| text.is_char_boundary(*i))
        .unwrap_or(0);
    Some(text[start..].replace('\n', " | "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Action, AlertStatus, DesiredState, Reason};
    use std::collections::BTreeMap;

    /// The extravars file as data, after checking that every string in it is tagged `!unsafe`.
    fn read_unsafe_yaml(path: &Path) -> serde_json::Value {
        let text = std::fs::read_to_string(path).unwrap();
        let json: serde_json::Value =
            serde_json::from_str(&text.replace("!unsafe \"", "\"")).unwrap();
        let strings = |v: &serde_json::Value| -> usize {
            fn count(v: &serde_json::Value) -> usize {
                match v {
                    serde_json::Value::String(_) => 1,
                    serde_json::Value::Array(a) => a.iter().map(count).sum(),
                    serde_json::Value::Object(o) => o.values().map(count).sum(),
                    _ => 0,
                }
            }
            count(v)
        };
        assert_eq!(text.matches("!unsafe \"").count(), strings(&json), "{text}");
        json
    }

    fn cfg(dir: &Path, binary: PathBuf) -> AnsibleRunnerConfig {
        AnsibleRunnerConfig {
            binary,
            playbook: "autoheal.haproxy.remediate".into(),
            inventory: dir.join("inventory.ini"),
            limit: Some("haproxy".into()),
            fleet_limits: BTreeMap::from([("edge".to_owned(), "edge_lbs".to_owned())]),
            work_dir: dir.join("runs"),
            timeout_secs: 60,
            env: BTreeMap::from([("AUTOHEAL_TEST_ENV".to_owned(), "passed".to_owned())]),
            keep_runs: 2,
            resident: false,
            standby: false,
            python: None,
        }
    }

    fn request() -> RunRequest {
        RunRequest {
            run_id: 7,
            fleet: "edge".into(),
            actions: vec![Action {
                server: Some("s1".into()),
                address: None,
                backend: Some("be".into()),
                state: DesiredState::Drain,
                weight: None,
                reason: Reason {
                    alert: "Cpu".into(),
                    fingerprint: "ab".into(),
                    status: AlertStatus::Firing,
                },
            }],
        }
    }

    #[test]
    fn argv_is_runner_form_with_fleet_limit() {
        let dir = tempfile::tempdir().unwrap();
        let r = AnsibleRunner::new(cfg(dir.path(), "ansible-runner".into()));
        let argv = r.argv(Path::new("/pdd"), "edge");
        assert_eq!(
            &argv[..5],
            [
                "ansible-runner",
                "run",
                "/pdd",
                "-p",
                "autoheal.haproxy.remediate"
            ]
        );
        assert_eq!(argv[argv.len() - 2..], ["--limit", "edge_lbs"]);
        let argv = r.argv(Path::new("/pdd"), "default");
        assert_eq!(argv[argv.len() - 1], "haproxy");
    }

    /// A stand-in ansible-runner (a shell script written by the test) that records its argv,
    /// its environment and the extravars it finds, and writes the status file ansible-runner
    /// writes. The real one runs in tests/relay/.
    fn fake_runner(dir: &Path, exit: i32, status: &str) -> PathBuf {
        let path = dir.join("fake-runner.sh");
        let script = format!(
            "#!/bin/sh\nprintf '%s\\n' \"$@\" > \"$2/argv\"\necho \"$AUTOHEAL_TEST_ENV\" > \"$2/envseen\"\n\
             mkdir -p \"$2/artifacts/autoheal\"\nprintf '{status}' > \"$2/artifacts/autoheal/status\"\n\
             echo 'boom on stderr' >&2\nexit {exit}\n"
        );
        std::fs::write(&path, script).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    #[tokio::test]
    async fn run_writes_extravars_and_reads_status() {
        let dir = tempfile::tempdir().unwrap();
        let runner = fake_runner(dir.path(), 0, "successful");
        let r = AnsibleRunner::new(cfg(dir.path(), runner));
        let result = r.run(&request()).await;
        assert_eq!(result.status, "successful", "{result:?}");
        assert_eq!(result.rc, Some(0));
        let pdd = std::fs::read_dir(dir.path().join("runs"))
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        let vars = read_unsafe_yaml(&pdd.join("env/extravars"));
        assert_eq!(vars["autoheal_actions"][0]["server"], "s1");
        assert_eq!(vars["autoheal_actions"][0]["state"], "drain");
        assert_eq!(vars["autoheal_actions"][0]["reason"]["status"], "firing");
        assert!(vars["autoheal_actions"][0].get("address").is_none());
        let argv = std::fs::read_to_string(pdd.join("argv")).unwrap();
        assert!(argv.contains("--limit\nedge_lbs"), "{argv}");
        assert_eq!(
            std::fs::read_to_string(pdd.join("envseen")).unwrap().trim(),
            "passed"
        );
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(pdd.join("env/extravars"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "extravars must not be world-readable");
    }

    #[tokio::test]
    async fn failed_run_reports_status_rc_and_stderr() {
        let dir = tempfile::tempdir().unwrap();
        let runner = fake_runner(dir.path(), 2, "failed");
        let result = AnsibleRunner::new(cfg(dir.path(), runner))
            .run(&request())
            .await;
        assert_eq!(result.status, "failed");
        assert_eq!(result.rc, Some(2));
        assert!(
            result.detail.contains("boom on stderr"),
            "{}",
            result.detail
        );
    }

    #[tokio::test]
    async fn only_the_newest_run_dirs_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let runner = fake_runner(dir.path(), 0, "successful");
        let r = AnsibleRunner::new(cfg(dir.path(), runner));
        let mut req = request();
        for id in [3, 10, 4] {
            req.run_id = id;
            assert_eq!(r.run(&req).await.status, "successful");
        }
        let mut left: Vec<String> = std::fs::read_dir(dir.path().join("runs"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy()[..12].to_owned())
            .collect();
        left.sort();
        assert_eq!(left, ["run-00000004", "run-00000010"]);
    }

    #[tokio::test]
    async fn missing_binary_is_an_error_result() {
        let dir = tempfile::tempdir().unwrap();
        let result = AnsibleRunner::new(cfg(dir.path(), dir.path().join("nope")))
            .run(&request())
            .await;
        assert_eq!(result.status, "error");
        assert!(result.detail.contains("cannot start"), "{}", result.detail);
    }

    /// A resident-mode executor on the real worker source and the system python3, with a
    /// stand-in `ansible_runner` module (on PYTHONPATH) that records what `run()` was given.
    /// The real ansible_runner runs in tests/relay/.
    fn resident_with_stand_in_module(dir: &Path) -> AnsibleRunner {
        let module_dir = dir.join("stand-in");
        std::fs::create_dir_all(&module_dir).unwrap();
        std::fs::write(
            module_dir.join("ansible_runner.py"),
            "import json, os, sys\n\
             class Result:\n    def __init__(self, status, rc):\n        self.status, self.rc = status, rc\n\
             def run(**kwargs):\n\
             \x20   kwargs['pid'] = os.getpid()\n\
             \x20   with open(os.path.join(kwargs['private_data_dir'], 'kwargs.json'), 'w') as f:\n\
             \x20       json.dump(kwargs, f)\n\
             \x20   print('chatter on stdout')\n\
             \x20   os.system('echo chatter from a child')\n\
             \x20   print('boom on stderr', file=sys.stderr)\n\
             \x20   if kwargs['playbook'] == 'raise':\n        raise RuntimeError('no such playbook')\n\
             \x20   return Result('failed', 2) if kwargs['playbook'] == 'fail' else Result('successful', 0)\n\
             # The warm standby: reads the worker's hand-off from the FIFO like relay_handoff does,\n\
             # records it in STANDBY_LOG and in its artifacts.\n\
             import select, threading\n\
             def run_async(**kwargs):\n\
             \x20   result = Result('running', None)\n\
             \x20   def standby():\n\
             \x20       with open(os.path.join(kwargs['private_data_dir'], 'env', 'extravars')) as f:\n\
             \x20           channel = json.load(f)['autoheal_standby_channel']\n\
             \x20       fd = os.open(channel, os.O_RDONLY | os.O_NONBLOCK)\n\
             \x20       poller = select.poll()\n\
             \x20       poller.register(fd, select.POLLIN)\n\
             \x20       data = b''\n\
             \x20       while poller.poll(30000):\n\
             \x20           chunk = os.read(fd, 65536)\n\
             \x20           if not chunk:\n\
             \x20               break\n\
             \x20           data += chunk\n\
             \x20       message = json.loads(data)\n\
             \x20       seen = {'message': message, 'playbook': kwargs['playbook'], 'limit': kwargs['limit']}\n\
             \x20       with open(os.environ['STANDBY_LOG'], 'a') as log:\n\
             \x20           log.write(json.dumps(seen) + '\\n')\n\
             \x20       artifacts = os.path.join(kwargs['private_data_dir'], 'artifacts', kwargs['ident'])\n\
             \x20       os.makedirs(artifacts)\n\
             \x20       with open(os.path.join(artifacts, 'handed.json'), 'w') as f:\n\
             \x20           json.dump(seen, f)\n\
             \x20       result.status, result.rc = ('canceled', 1) if 'cancel' in message else ('successful', 0)\n\
             \x20   thread = threading.Thread(target=standby)\n\
             \x20   thread.start()\n\
             \x20   return thread, result\n",
        )
        .unwrap();
        let mut c = cfg(dir, "ansible-runner".into());
        c.resident = true;
        c.python = Some("python3".into());
        c.env.insert(
            "PYTHONPATH".into(),
            module_dir.to_string_lossy().into_owned(),
        );
        c.env.insert(
            "STANDBY_LOG".into(),
            dir.join("standby.log").to_string_lossy().into_owned(),
        );
        AnsibleRunner::new(c)
    }

    fn newest_run_dir(dir: &Path) -> PathBuf {
        let mut runs: Vec<PathBuf> = std::fs::read_dir(dir.join("runs"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("run-"))
            .collect();
        runs.sort();
        runs.pop().unwrap()
    }

    fn kwargs_of(run_dir: &Path) -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(run_dir.join("kwargs.json")).unwrap())
            .unwrap()
    }

    #[tokio::test]
    async fn resident_worker_gets_the_cli_inputs_and_is_reused() {
        let dir = tempfile::tempdir().unwrap();
        let r = resident_with_stand_in_module(dir.path());
        let mut req = request();
        let first = r.run(&req).await;
        assert_eq!(first.status, "successful", "{first:?}");
        assert_eq!(first.rc, Some(0));
        let pdd = newest_run_dir(dir.path());
        let kwargs = kwargs_of(&pdd);
        assert_eq!(kwargs["private_data_dir"], pdd.to_str().unwrap());
        assert_eq!(kwargs["playbook"], "autoheal.haproxy.remediate");
        assert_eq!(kwargs["ident"], "autoheal");
        assert_eq!(
            kwargs["inventory"],
            dir.path().join("inventory.ini").to_str().unwrap()
        );
        assert_eq!(kwargs["limit"], "edge_lbs");
        assert_eq!(kwargs["quiet"], true);
        let log = std::fs::read_to_string(pdd.join("relay-stderr.log")).unwrap();
        assert!(
            log.contains("chatter on stdout") && log.contains("chatter from a child"),
            "{log}"
        );
        req.run_id = 8;
        req.fleet = "default".into();
        let other_fleet = r.run(&req).await;
        assert_eq!(other_fleet.status, "successful", "{other_fleet:?}");
        assert_eq!(kwargs_of(&newest_run_dir(dir.path()))["limit"], "haproxy");
        req.run_id = 9;
        req.fleet = "edge".into();
        assert_eq!(r.run(&req).await.status, "successful");
        let again = kwargs_of(&newest_run_dir(dir.path()));
        assert_eq!(
            again["pid"], kwargs["pid"],
            "the edge fleet's worker was not reused"
        );
    }

    #[tokio::test]
    async fn resident_worker_hands_the_next_run_to_a_warm_standby() {
        let dir = tempfile::tempdir().unwrap();
        let standby_log = dir.path().join("standby.log");
        let mut r = resident_with_stand_in_module(dir.path());
        r.cfg.standby = true;
        let mut req = request();
        let first = r.run(&req).await;
        assert_eq!(first.status, "successful", "{first:?}");
        assert!(!first.detail.contains("warm standby"), "{first:?}");

        // Same inputs: the standby the first run left behind takes the second, with its extra vars.
        req.run_id = 8;
        req.actions[0].server = Some("s9".into());
        let second = r.run(&req).await;
        assert_eq!(second.status, "successful", "{second:?}");
        assert!(second.detail.contains("warm standby"), "{second:?}");
        let pdd = newest_run_dir(dir.path());
        let extra_vars = read_unsafe_yaml(&pdd.join("env/extravars"));
        let seen: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(pdd.join("artifacts/autoheal/handed.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(seen["message"]["vars"], extra_vars);
        assert_eq!(
            seen["message"]["vars"]["autoheal_actions"][0]["server"],
            "s9"
        );
        assert_eq!(seen["playbook"], "autoheal.haproxy.standby");
        assert_eq!(seen["limit"], "edge_lbs");
        assert!(
            !pdd.join("kwargs.json").exists(),
            "the run was also started from scratch"
        );

        // Other inputs: the waiting standby is retired and the run starts from scratch.
        req.run_id = 9;
        r.cfg.playbook = "other".into();
        let third = r.run(&req).await;
        assert_eq!(third.status, "successful", "{third:?}");
        assert!(!third.detail.contains("warm standby"), "{third:?}");
        assert_eq!(kwargs_of(&newest_run_dir(dir.path()))["playbook"], "other");
        let retired = || {
            std::fs::read_to_string(&standby_log)
                .unwrap()
                .lines()
                .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
                .collect::<Vec<_>>()
        };
        // The retired standby reads its cancel in the background (up to 30 s: a loaded machine
        // took over 2 s here).
        for _ in 0..3000 {
            if retired().len() == 2 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let lines = retired();
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(
            lines[1]["message"]["cancel"]
                .as_str()
                .unwrap()
                .contains("changed"),
            "{lines:?}"
        );
    }

    #[tokio::test]
    async fn resident_failed_run_reports_status_rc_and_log_tail() {
        let dir = tempfile::tempdir().unwrap();
        let mut r = resident_with_stand_in_module(dir.path());
        r.cfg.playbook = "fail".into();
        let result = r.run(&request()).await;
        assert_eq!(result.status, "failed");
        assert_eq!(result.rc, Some(2));
        assert!(
            result.detail.contains("boom on stderr"),
            "{}",
            result.detail
        );
        r.cfg.playbook = "raise".into();
        let result = r.run(&request()).await;
        assert_eq!(result.status, "failed");
        assert!(
            result.detail.contains("RuntimeError: no such playbook"),
            "{}",
            result.detail
        );
    }

    /// A stand-in interpreter (a shell script; it ignores `-u -c SOURCE`) that counts its
    /// starts, says it is ready, reads one request and then does `after_request`.
    fn resident_with_stand_in_python(dir: &Path, after_request: &str) -> AnsibleRunner {
        let path = dir.join("stand-in-python");
        let starts = dir.join("starts");
        std::fs::write(
            &path,
            format!(
                "#!/bin/sh\necho started >> '{}'\necho '{{\"ready\": true}}'\nread request\n{after_request}\n",
                starts.display()
            ),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        let mut c = cfg(dir, "ansible-runner".into());
        c.resident = true;
        c.python = Some(path);
        AnsibleRunner::new(c)
    }

    /// Waits (up to 10 s) until the stand-in interpreter has been started `n` times.
    async fn wait_for_starts(dir: &Path, n: usize) -> usize {
        let count = || {
            std::fs::read_to_string(dir.join("starts"))
                .map(|s| s.lines().count())
                .unwrap_or(0)
        };
        for _ in 0..100 {
            if count() >= n {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        count()
    }

    #[tokio::test]
    async fn resident_worker_starts_before_the_first_run() {
        let dir = tempfile::tempdir().unwrap();
        let _runner = resident_with_stand_in_python(dir.path(), "sleep 600");
        assert_eq!(wait_for_starts(dir.path(), 1).await, 1);
    }

    #[tokio::test]
    async fn resident_worker_answering_garbage_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let r = resident_with_stand_in_python(
            dir.path(),
            "echo 'Traceback (most recent call last):'\nsleep 600",
        );
        let result = r.run(&request()).await;
        assert_eq!(result.status, "failed");
        assert_eq!(result.rc, None);
        assert!(
            result.detail.contains("garbage") && result.detail.contains("Traceback"),
            "{}",
            result.detail
        );
        assert_eq!(
            wait_for_starts(dir.path(), 2).await,
            2,
            "a fresh worker must be started after garbage, before the next run"
        );
        assert_eq!(r.run(&request()).await.status, "failed");
    }

    #[tokio::test]
    async fn resident_worker_that_dies_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let r = resident_with_stand_in_python(dir.path(), "exit 3");
        let result = r.run(&request()).await;
        assert_eq!(result.status, "failed");
        assert!(
            result.detail.contains("the worker exited"),
            "{}",
            result.detail
        );
        assert_eq!(
            wait_for_starts(dir.path(), 2).await,
            2,
            "a fresh worker must be started after a death, before the next run"
        );
        assert_eq!(r.run(&request()).await.status, "failed");
    }

    #[tokio::test]
    async fn resident_worker_past_the_timeout_is_killed_with_its_children() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("grandchild.pid");
        let mut r = resident_with_stand_in_python(
            dir.path(),
            // In a session of its own, as ansible-runner starts ansible-playbook (on a pty).
            &format!(
                "setsid sleep 600 &\necho $! > '{}'\nwait",
                pid_file.display()
            ),
        );
        r.cfg.timeout_secs = 1;
        r.kill_margin = Duration::ZERO;
        let result = r.run(&request()).await;
        assert_eq!(result.status, "timeout", "{result:?}");
        assert!(result.detail.contains("killed it"), "{}", result.detail);
        let grandchild = std::fs::read_to_string(&pid_file).unwrap();
        let stat = Path::new("/proc").join(grandchild.trim()).join("stat");
        for _ in 0..50 {
            let alive = std::fs::read_to_string(&stat)
                .is_ok_and(|s| !s.rsplit(") ").next().unwrap_or("").starts_with('Z'));
            if !alive {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let state = std::fs::read_to_string(&stat).unwrap_or_default();
        assert!(
            state.is_empty() || state.rsplit(") ").next().unwrap_or("").starts_with('Z'),
            "the worker's child survived the kill: {state}"
        );
        assert_eq!(
            wait_for_starts(dir.path(), 2).await,
            2,
            "a fresh worker must be started after a timeout, before the next run"
        );
        assert_eq!(r.run(&request()).await.status, "timeout");
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
        let missing = resident_python(&c).unwrap_err();
        assert!(
            missing.contains(&dir.path().join("python3").display().to_string()),
            "{missing}"
        );
        std::fs::write(dir.path().join("python3"), "").unwrap();
        assert_eq!(
            resident_python(&c).unwrap(),
            Some(dir.path().join("python3"))
        );
        c.resident = false;
        assert_eq!(resident_python(&c).unwrap(), None);
    }

    #[tokio::test]
    async fn worker_exits_when_its_stdin_closes() {
        let stand_in = tempfile::tempdir().unwrap();
        std::fs::write(stand_in.path().join("ansible_runner.py"), "").unwrap();
        let mut child = tokio::process::Command::new("python3")
            .args(["-u", "-c", super::super::resident::WORKER_SOURCE])
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
