//! The CLI runner: `ansible-runner run DIR -p PLAYBOOK`, built as an argv vector (never through
//! a shell), killed if it overstays the run's time limit.

use std::path::Path;
use std::process::Stdio;
use std::time::Instant;

use tokio::process::Command;

use super::{elapsed_ms, AnsibleRunner, RunnerError, IDENT};
use crate::executor::RunRequest;
use crate::model::{RunResult, RunStatus};

impl AnsibleRunner {
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

    pub(super) async fn execute_cli(
        &self,
        request: &RunRequest,
        dir: &Path,
        stderr_path: &Path,
        started: Instant,
    ) -> Result<RunResult, RunnerError> {
        let argv = self.argv(dir, &request.fleet);
        let stderr = std::fs::File::create(stderr_path).map_err(|source| RunnerError::Log {
            path: stderr_path.to_owned(),
            source,
        })?;
        tracing::info!(run = request.run_id, fleet = %request.fleet, mode = "cli", argv = ?argv, "starting ansible-runner");
        let mut child = Command::new(&argv[0])
            .args(&argv[1..])
            .envs(&self.cfg.env)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| RunnerError::Spawn {
                program: argv[0].clone(),
                source,
            })?;
        let limit = self.run_limit();
        let waited = tokio::time::timeout(limit, child.wait()).await;
        let duration_ms = elapsed_ms(started);
        let exit = match waited {
            Ok(Ok(status)) => status,
            Ok(Err(e)) => return Err(RunnerError::Wait(e)),
            Err(_) => {
                let _ = child.kill().await;
                return Ok(RunResult {
                    status: RunStatus::Timeout,
                    rc: None,
                    duration_ms,
                    detail: format!("killed after {}s; see {}", limit.as_secs(), dir.display()),
                    ..RunResult::default()
                });
            }
        };
        Ok(self.result(dir, stderr_path, None, exit.code(), duration_ms))
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::super::test_support::{cfg, fake_runner, read_unsafe_yaml, request};
    use super::super::AnsibleRunner;
    use crate::executor::Executor;

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
}
