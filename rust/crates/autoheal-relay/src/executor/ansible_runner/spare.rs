//! Workers started ahead of need, so that a run does not wait for Python to start and import
//! ansible_runner: the spare started with the executor and after each kill, and (with the warm
//! standby on) one per fleet that has a limit of its own. Each is primed: its warm standby (see
//! `runner_worker.py`) starts right away, so that even the first run after the relay starts is
//! handed over instead of starting `ansible-playbook` from scratch.

use std::path::Path;
use std::sync::Arc;

use super::worker::{Worker, WorkerError};
use super::AnsibleRunner;

/// A worker being started ahead of need.
pub(super) type SpareWorker = tokio::task::JoinHandle<Result<Worker, WorkerError>>;

/// Starts a worker and, given a prime request, its warm standby.
async fn start_primed(
    python: &Path,
    env: &std::collections::BTreeMap<String, String>,
    prime: Option<serde_json::Value>,
) -> Result<Worker, WorkerError> {
    let mut worker = Worker::start(python, env).await?;
    if let Some(prime) = prime {
        if !worker.prime(&prime).await? {
            tracing::warn!("the resident ansible-runner worker could not start its warm standby; the first run starts from scratch");
        }
    }
    Ok(worker)
}

impl AnsibleRunner {
    /// The request that primes a worker's standby for runs with `limit` (none without the
    /// standby). The standby works in a directory of its own under `work_dir`, created here.
    fn prime_request(&self, limit: Option<&String>) -> Option<serde_json::Value> {
        if !self.cfg.standby {
            return None;
        }
        if let Err(e) = std::fs::create_dir_all(&self.cfg.work_dir) {
            tracing::warn!(error = %e, dir = %self.cfg.work_dir.display(), "cannot create the work dir; no warm standby before the first run");
            return None;
        }
        let dir = self.cfg.work_dir.join("prime");
        let mut request = self.worker_request(&dir, limit, &self.cfg.work_dir.join("prime.log"));
        request["prime"] = true.into();
        Some(request)
    }

    /// Starts a spare worker in the background (resident mode, inside a runtime), primed for
    /// the default limit: the fleets without one of their own.
    pub(super) fn start_spare(&self) {
        let (Some(python), Ok(runtime)) = (&self.python, tokio::runtime::Handle::try_current())
        else {
            return;
        };
        let (python, env) = (python.clone(), self.cfg.env.clone());
        let prime = self.prime_request(self.cfg.limit.as_ref());
        let spare = runtime.spawn(async move { start_primed(&python, &env, prime).await });
        let previous = self
            .spare
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .replace(spare);
        if let Some(previous) = previous {
            previous.abort();
        }
    }

    /// With the warm standby on, starts the worker of each fleet that has a limit of its own,
    /// primed for that limit (the spare's standby would not match its runs).
    pub(super) fn start_fleet_workers(&self) {
        let (Some(python), Ok(runtime)) = (&self.python, tokio::runtime::Handle::try_current())
        else {
            return;
        };
        for (fleet, limit) in &self.cfg.fleet_limits {
            let Some(prime) = self.prime_request(Some(limit)) else {
                return;
            };
            let slot = {
                let mut workers = self.workers.lock().unwrap_or_else(|p| p.into_inner());
                Arc::clone(workers.entry(fleet.clone()).or_default())
            };
            let (python, env, fleet) = (python.clone(), self.cfg.env.clone(), fleet.clone());
            runtime.spawn(async move {
                let mut worker = slot.lock().await;
                if worker.is_some() {
                    return;
                }
                match start_primed(&python, &env, Some(prime)).await {
                    Ok(started) => *worker = Some(started),
                    Err(e) => tracing::warn!(fleet = %fleet, error = %e, "the resident ansible-runner worker did not start ahead of the first run; it starts with that run"),
                }
            });
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
    async fn the_first_run_after_start_is_handed_to_a_primed_standby() {
        let dir = tempfile::tempdir().unwrap();
        let r = resident_with_stand_in_module(dir.path(), true);
        // Both fleets' first runs: the default limit's (the spare's standby) and the edge
        // fleet's own (its worker started with the executor).
        for (run_id, fleet, limit) in [(7, "default", "haproxy"), (8, "edge", "edge_lbs")] {
            let mut req = request();
            req.run_id = run_id;
            req.fleet = fleet.into();
            let first = r.run(&req).await;
            assert_eq!(first.status, "successful", "{first:?}");
            assert!(first.detail.contains("warm standby"), "{fleet}: {first:?}");
            let pdd = newest_run_dir(dir.path());
            assert!(
                !pdd.join("kwargs.json").exists(),
                "{fleet}: the first run started from scratch"
            );
            let seen: serde_json::Value = serde_json::from_str(
                &std::fs::read_to_string(pdd.join("artifacts/autoheal/handed.json")).unwrap(),
            )
            .unwrap();
            assert_eq!(seen["playbook"], "autoheal.haproxy.standby");
            assert_eq!(seen["limit"], limit);
            assert_eq!(
                seen["message"]["vars"],
                read_unsafe_yaml(&pdd.join("env/extravars"))
            );
        }
    }

    #[tokio::test]
    async fn resident_worker_hands_the_next_run_to_a_warm_standby() {
        let dir = tempfile::tempdir().unwrap();
        let standby_log = dir.path().join("standby.log");
        let mut r = resident_with_stand_in_module(dir.path(), false);
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
