//! Runs the playbook with `ansible-runner run DIR -p PLAYBOOK`, one private data dir per run.
//!
//! The command is built as an argv vector (never through a shell). The actions reach the
//! playbook as `env/extravars` (JSON, which is YAML); ansible-runner enforces `job_timeout`
//! from `env/settings`, and the relay kills ansible-runner itself if it overstays that by a
//! margin.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::process::Command;

use super::{extra_vars, Executor, RunFuture, RunRequest};
use crate::config::AnsibleRunnerConfig;
use crate::journal::RunResult;

/// Extra time granted beyond `job_timeout` before the relay kills ansible-runner.
const KILL_MARGIN: Duration = Duration::from_secs(30);
/// The `--ident` of every run (each run has its own private data dir).
const IDENT: &str = "autoheal";

/// The ansible-runner executor.
#[derive(Debug, Clone)]
pub struct AnsibleRunner {
    cfg: AnsibleRunnerConfig,
}

impl AnsibleRunner {
    /// An executor for this configuration.
    pub fn new(cfg: AnsibleRunnerConfig) -> Self {
        Self { cfg }
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
        if let Some(limit) = self.cfg.fleet_limits.get(fleet).or(self.cfg.limit.as_ref()) {
            argv.push("--limit".into());
            argv.push(limit.clone());
        }
        argv
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
            &extra_vars(&request.actions).to_string(),
        )?;
        let settings = serde_json::json!({ "job_timeout": self.cfg.timeout_secs });
        write_private(&env.join("settings"), &settings.to_string())?;
        Ok(dir)
    }

    async fn execute(&self, request: &RunRequest) -> Result<RunResult, String> {
        let started = Instant::now();
        let dir = self.prepare(request).map_err(|e| {
            format!(
                "cannot prepare the private data dir under {}: {e}",
                self.cfg.work_dir.display()
            )
        })?;
        let argv = self.argv(&dir, &request.fleet);
        let stderr_path = dir.join("relay-stderr.log");
        let stderr = std::fs::File::create(&stderr_path)
            .map_err(|e| format!("{}: {e}", stderr_path.display()))?;
        tracing::info!(run = request.run_id, fleet = %request.fleet, argv = ?argv, "starting ansible-runner");
        let mut child = Command::new(&argv[0])
            .args(&argv[1..])
            .envs(&self.cfg.env)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", argv[0]))?;
        let limit = Duration::from_secs(self.cfg.timeout_secs) + KILL_MARGIN;
        let waited = tokio::time::timeout(limit, child.wait()).await;
        let duration_ms = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
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
        let rc = exit.code();
        let artifacts = dir.join("artifacts").join(IDENT);
        let reported = std::fs::read_to_string(artifacts.join("status"))
            .ok()
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty());
        let status = match reported {
            Some(s) => s,
            None if rc == Some(0) => "successful".into(),
            None => "failed".into(),
        };
        let mut detail = format!("private data dir {}", dir.display());
        if status != "successful" {
            let tail = tail_of(&stderr_path).or_else(|| tail_of(&artifacts.join("stdout")));
            if let Some(tail) = tail {
                detail.push_str(": ");
                detail.push_str(&tail);
            }
        }
        Ok(RunResult {
            status,
            rc,
            duration_ms,
            detail,
        })
    }
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
        let vars: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(pdd.join("env/extravars")).unwrap())
                .unwrap();
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
}
