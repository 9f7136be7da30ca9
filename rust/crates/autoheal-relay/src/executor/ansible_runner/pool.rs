//! The resident worker pool: one long-lived worker per fleet (runs of a fleet never overlap),
//! replaced by a fresh one when it dies, answers garbage or overstays the run's time limit.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use super::worker::{Answer, Worker};
use super::{elapsed_ms, AnsibleRunner, IDENT};
use crate::executor::RunRequest;
use crate::model::{RunResult, RunStatus};

/// A fleet's resident worker, if one is running.
pub(super) type WorkerSlot = Arc<tokio::sync::Mutex<Option<Worker>>>;

impl AnsibleRunner {
    /// Carries out the run on the fleet's resident worker (started if need be); `None` when no
    /// worker can be had, and the run is to use the CLI.
    pub(super) async fn run_resident(
        &self,
        python: &Path,
        request: &RunRequest,
        dir: &Path,
        stderr_path: &Path,
        started: Instant,
    ) -> Option<RunResult> {
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
            let call = self.worker_request(dir, self.limit(&request.fleet), stderr_path);
            let answer = tokio::time::timeout(self.run_limit(), running.call(&call)).await;
            let duration_ms = elapsed_ms(started);
            let failure = match answer {
                Ok(Ok(Answer::Finished {
                    status,
                    rc,
                    standby,
                })) => {
                    *worker = Some(running);
                    let mut result = self.result(dir, stderr_path, Some(status), rc, duration_ms);
                    if standby {
                        result.detail.push_str(" (ran on the warm standby)");
                    }
                    return Some(result);
                }
                Ok(Ok(Answer::Error { error })) => {
                    *worker = Some(running);
                    return Some(RunResult {
                        status: RunStatus::Failed,
                        rc: None,
                        duration_ms,
                        detail: format!("{error}; see {}", dir.display()),
                        ..RunResult::default()
                    });
                }
                Ok(Ok(Answer::Ready { .. } | Answer::Primed { .. })) => (
                    RunStatus::Failed,
                    "the worker answered garbage: a ready or primed line to a run".into(),
                ),
                Ok(Err(e)) => (RunStatus::Failed, e.to_string()),
                Err(_) => (
                    RunStatus::Timeout,
                    format!("no answer after {}s", self.run_limit().as_secs()),
                ),
            };
            running.kill();
            self.start_spare();
            let (status, why) = failure;
            return Some(RunResult {
                status,
                rc: None,
                duration_ms,
                detail: format!(
                    "resident ansible-runner worker: {why}; killed it (a fresh one is starting for the next run); see {}",
                    dir.display()
                ),
                ..RunResult::default()
            });
        }
        None
    }

    /// The resident worker's request for a run in `private_data_dir`: the CLI's inputs.
    pub(super) fn worker_request(
        &self,
        private_data_dir: &Path,
        limit: Option<&String>,
        log: &Path,
    ) -> serde_json::Value {
        serde_json::json!({
            "private_data_dir": private_data_dir,
            "playbook": self.cfg.playbook,
            "ident": IDENT,
            "inventory": self.cfg.inventory,
            "limit": limit,
            "log": log,
            "standby": self.cfg.standby,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use super::super::test_support::{
        kwargs_of, newest_run_dir, request, resident_with_stand_in_module,
        resident_with_stand_in_python, wait_for_starts,
    };
    use crate::executor::Executor;

    #[tokio::test]
    async fn resident_worker_gets_the_cli_inputs_and_is_reused() {
        let dir = tempfile::tempdir().unwrap();
        let r = resident_with_stand_in_module(dir.path(), false);
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
    async fn resident_failed_run_reports_status_rc_and_log_tail() {
        let dir = tempfile::tempdir().unwrap();
        let mut r = resident_with_stand_in_module(dir.path(), false);
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
}
