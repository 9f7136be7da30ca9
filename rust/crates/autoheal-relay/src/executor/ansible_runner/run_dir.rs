//! Run directories: each run's private data dir (`env/extravars`, `env/settings`), reading a
//! finished run's result from its artifacts, and deleting all but the newest `keep_runs`.

use std::path::{Path, PathBuf};

use super::host_outcome::HostOutcome;
use super::{AnsibleRunner, IDENT};
use crate::executor::{extra_vars_unsafe_yaml, RunRequest};
use crate::model::{RunResult, RunStatus};

impl AnsibleRunner {
    /// Writes the private data dir: `env/extravars` and `env/settings`.
    pub(super) fn prepare(&self, request: &RunRequest) -> std::io::Result<PathBuf> {
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

    /// The result of a finished run: `status` as reported (else the artifacts' status file,
    /// else from `rc`), with a log tail when it did not succeed.
    pub(super) fn result(
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
            Some(s) => RunStatus::from(s.as_str()),
            None if rc == Some(0) => RunStatus::Successful,
            None => RunStatus::Failed,
        };
        let mut detail = format!("private data dir {}", dir.display());
        let hosts = HostOutcome::read(&artifacts.join("job_events"));
        if status != RunStatus::Successful {
            // The hosts it failed on come first, on a line of their own (the journal keeps that line
            // with the run's decisions); a run that still changed other hosts is partial.
            if let Some(hosts) = &hosts {
                if hosts.partial() {
                    status = RunStatus::Partial;
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
            // What the module said of each action's server (deferred, not found, an operator's).
            remediate: hosts.map(|h| h.remediate).unwrap_or_default(),
        }
    }
}

/// Deletes all but the newest `keep` `run-*` directories (their names sort by run id).
pub(super) fn prune_run_dirs(work_dir: &Path, keep: usize) -> std::io::Result<()> {
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
    use super::super::test_support::{cfg, fake_runner, request};
    use super::super::AnsibleRunner;
    use crate::executor::Executor;

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
}
