//! Workers started ahead of need, so that a run does not wait for Python to start and import
//! ansible_runner: the spare started with the executor and after each kill. (The warm standby
//! ahead of the next run is the worker's: see `runner_worker.py`.)

use std::path::Path;

use super::worker::{Worker, WorkerError};
use super::AnsibleRunner;

/// A worker being started ahead of need.
pub(super) type SpareWorker = tokio::task::JoinHandle<Result<Worker, WorkerError>>;

impl AnsibleRunner {
    /// Starts a spare worker in the background (resident mode, inside a runtime).
    pub(super) fn start_spare(&self) {
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
    pub(super) async fn fresh_worker(&self, python: &Path) -> Result<Worker, WorkerError> {
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
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::test_support::{
        kwargs_of, newest_run_dir, read_unsafe_yaml, request, resident_with_stand_in_module,
        resident_with_stand_in_python, wait_for_starts,
    };
    use crate::executor::Executor;

    #[tokio::test]
    async fn resident_worker_starts_before_the_first_run() {
        let dir = tempfile::tempdir().unwrap();
        let _runner = resident_with_stand_in_python(dir.path(), "sleep 600");
        assert_eq!(wait_for_starts(dir.path(), 1).await, 1);
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
}
