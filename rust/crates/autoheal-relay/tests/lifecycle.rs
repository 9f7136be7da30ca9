//! A sick server's life through the relay (`app()`, the real journal and pipeline): hold-down,
//! ramped and health-gated restore, quarantine and release, panic, budgets that unknown servers
//! cannot use up, operator states, and a restart in the middle of each. The executor answers
//! for the module the way the remediate role publishes it (`autoheal_remediate` stats).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use autoheal_relay::config::Config;
use autoheal_relay::executor::{Executor, RunFuture, RunRequest};
use autoheal_relay::journal::{self, HistoryRow};
use autoheal_relay::model::{DesiredState, RunResult};
use autoheal_relay::{app, Relay};
use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;

const ADMIN_TOKEN: &str = "admin-token-5678";

/// Restores at once and in one step (the tests that are not about the hold-down or the ramp).
const AT_ONCE: &str = "hold_down_base_secs = 0\nhold_down_max_secs = 0\nramp_percent = [100]\n";

/// What the module says of a server in the next runs (default: done as asked).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Deferred,
    NotFound,
    Operator,
}

/// Records each run with when it started, and answers per server as told.
#[derive(Debug, Default)]
struct Module {
    runs: Mutex<Vec<(Instant, RunRequest)>>,
    verdicts: Mutex<HashMap<String, Verdict>>,
    /// The next run fails (the playbook did not get through).
    fail_next: std::sync::atomic::AtomicBool,
    /// How long each run takes, in milliseconds.
    run_ms: std::sync::atomic::AtomicU64,
}

impl Module {
    fn runs(&self) -> Vec<(Instant, RunRequest)> {
        self.runs.lock().unwrap().clone()
    }

    /// Every action run so far: (server, state, weight).
    fn actions(&self) -> Vec<(String, DesiredState, Option<String>)> {
        self.runs()
            .iter()
            .flat_map(|(_, r)| r.actions.clone())
            .map(|a| (a.server.unwrap_or_default(), a.state, a.weight))
            .collect()
    }

    fn say(&self, server: &str, verdict: Option<Verdict>) {
        let mut v = self.verdicts.lock().unwrap();
        match verdict {
            Some(verdict) => v.insert(server.to_owned(), verdict),
            None => v.remove(server),
        };
    }
}

impl Executor for Module {
    fn name(&self) -> &'static str {
        "module"
    }

    fn run<'a>(&'a self, request: &'a RunRequest) -> RunFuture<'a> {
        Box::pin(async move {
            self.runs
                .lock()
                .unwrap()
                .push((Instant::now(), request.clone()));
            let verdicts = self.verdicts.lock().unwrap().clone();
            let outcomes: Vec<Value> = request
                .actions
                .iter()
                .map(|action| {
                    let server = action.server.clone().unwrap_or_default();
                    let mut entry = json!({"action": action, "changed": true, "found": true});
                    match verdicts.get(&server) {
                        Some(Verdict::Deferred) => {
                            entry["changed"] = json!(false);
                            entry["deferred"] = json!(true);
                            entry["deferred_reason"] = json!("the check is failing");
                        }
                        Some(Verdict::NotFound) => {
                            entry["changed"] = json!(false);
                            entry["found"] = json!(false);
                        }
                        Some(Verdict::Operator) => {
                            entry["changed"] = json!(false);
                            entry["skipped"] = json!(true);
                            entry["skip_reason"] = json!("operator_state");
                        }
                        None => {}
                    }
                    entry
                })
                .collect();
            let run_ms = self.run_ms.load(std::sync::atomic::Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(run_ms)).await;
            if self
                .fail_next
                .swap(false, std::sync::atomic::Ordering::SeqCst)
            {
                return RunResult {
                    status: "failed".into(),
                    rc: Some(2),
                    ..RunResult::default()
                };
            }
            RunResult {
                status: "successful".into(),
                rc: Some(0),
                duration_ms: 1,
                detail: String::new(),
                remediate: json!({ "lb1": outcomes }),
            }
        })
    }
}

struct Lab {
    dir: tempfile::TempDir,
    config: Config,
}

impl Lab {
    /// A relay configuration with the `[lifecycle]` keys given.
    fn new(lifecycle: &str, extra: &str) -> Self {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let admin = dir.path().join("admin");
        std::fs::write(&admin, ADMIN_TOKEN).unwrap();
        std::fs::set_permissions(&admin, std::fs::Permissions::from_mode(0o600)).unwrap();
        let token = dir.path().join("token");
        std::fs::write(&token, "sender-token").unwrap();
        std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).unwrap();
        let text = format!(
            r#"
[auth]
bearer_token_file = "token"
admin_token_file = "admin"

[journal]
path = "journal.db"

[[rules]]
name = "errors"
match = {{ alertname = "HighErrorRate" }}
action = "drain"

[coalesce]
window_ms = 20

[executor]
kind = "dry-run"

[lifecycle]
{lifecycle}

{extra}
"#
        );
        let file = dir.path().join("relay.toml");
        std::fs::write(&file, text).unwrap();
        let config = Config::load(&file).unwrap();
        Self { dir, config }
    }

    fn start(&self, module: &Arc<Module>) -> Relay {
        Relay::start(&self.config, module.clone()).unwrap()
    }

    fn db(&self) -> PathBuf {
        self.dir.path().join("journal.db")
    }

    fn history(&self) -> Vec<HistoryRow> {
        let mut rows = journal::history(&self.db(), 1000).unwrap();
        rows.reverse();
        rows
    }

    /// Outcomes of the decisions for `target` (`be/s1`), oldest first.
    fn outcomes(&self, target: &str) -> Vec<String> {
        self.history()
            .into_iter()
            .filter(|r| r.target.as_deref() == Some(target))
            .map(|r| r.outcome.to_string())
            .collect()
    }

    /// The life-cycle audit rows of `target`, oldest first.
    fn events(&self, target: &str) -> Vec<String> {
        let conn = rusqlite::Connection::open(self.db()).unwrap();
        let mut stmt = conn
            .prepare("SELECT event FROM lifecycle_events WHERE key = ?1 ORDER BY id")
            .unwrap();
        stmt.query_map([target], |r| r.get::<_, String>(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }
}

/// Posts alerts; each is `(status, server, backend label, cycle)` (the cycle makes a new event).
async fn alert(relay: &Relay, alerts: &[(&str, &str, Option<&str>, u32)]) {
    let alerts: Vec<Value> = alerts
        .iter()
        .map(|(status, server, backend, cycle)| {
            let mut labels = json!({"alertname": "HighErrorRate", "server": server});
            if let Some(b) = backend {
                labels["backend"] = json!(b);
            }
            json!({
                "status": status,
                "labels": labels,
                "annotations": {},
                "startsAt": format!("2026-11-30T12:{cycle:02}:00Z"),
                "endsAt": "0001-01-01T00:00:00Z",
                "fingerprint": format!("{:016x}", u64::from(*cycle) * 1000 + u64::from(server.as_bytes()[server.len() - 1])),
            })
        })
        .collect();
    let body = json!({"version": "4", "status": "firing", "receiver": "relay", "groupLabels": {},
        "commonLabels": {}, "commonAnnotations": {}, "externalURL": "http://am", "groupKey": "{}:{}",
        "truncatedAlerts": 0, "alerts": alerts});
    let req = Request::post("/hooks/alertmanager")
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::AUTHORIZATION, "Bearer sender-token")
        .body(Body::from(body.to_string()))
        .unwrap();
    let response = app(relay.state()).oneshot(req).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

async fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn release(relay: &Relay, auth: Option<&str>, content_type: &str, body: &str) -> StatusCode {
    let mut req = Request::post("/admin/release").header(header::CONTENT_TYPE, content_type);
    if let Some(auth) = auth {
        req = req.header(header::AUTHORIZATION, auth);
    }
    let response = app(relay.state())
        .oneshot(req.body(Body::from(body.to_owned())).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let _ = response.into_body().collect().await.unwrap();
    status
}

fn metrics(relay: &Relay) -> String {
    relay.state().metrics().render()
}

#[tokio::test]
async fn a_restore_waits_out_the_hold_down_and_ramps_in_steps() {
    let lab = Lab::new(
        "hold_down_base_secs = 2\nhold_down_max_secs = 4\nramp_percent = [50, 100]\nramp_step_secs = 1",
        "",
    );
    let module = Arc::new(Module::default());
    let relay = lab.start(&module);
    let posted = Instant::now();
    alert(&relay, &[("firing", "s1", Some("be"), 1)]).await;
    wait_for("the drain", || module.runs().len() == 1).await;
    alert(&relay, &[("resolved", "s1", Some("be"), 1)]).await;
    wait_for("two restore steps", || module.runs().len() == 3).await;
    let runs = module.runs();
    assert_eq!(
        module.actions(),
        [
            ("s1".to_owned(), DesiredState::Drain, None),
            (
                "s1".to_owned(),
                DesiredState::Enabled,
                Some("50%".to_owned())
            ),
            ("s1".to_owned(), DesiredState::Enabled, None),
        ]
    );
    // The hold-down counts from when the relay admitted the drain, after the alert was posted but
    // before the drain's run started (so not from the run); the ramp step from when the previous
    // step's run reported back.
    assert!(
        runs[1].0 - posted >= Duration::from_secs(2),
        "the hold-down"
    );
    assert!(
        runs[2].0 - runs[1].0 >= Duration::from_secs(1),
        "the ramp step"
    );
    wait_for("the restore's outcome", || {
        lab.outcomes("be/s1") == ["done", "done"]
    })
    .await;
    wait_for("the restore's audit", || {
        lab.events("be/s1").last().map(String::as_str) == Some("restored")
    })
    .await;
    assert_eq!(
        lab.events("be/s1"),
        ["drained", "out", "eligible", "ramping", "restored"]
    );
    relay.shutdown().await;
}

#[tokio::test]
async fn a_deferred_restore_is_retried_and_survives_a_restart() {
    let lab = Lab::new(
        &format!("{AT_ONCE}defer_retry_secs = 1\ndefer_retry_max_secs = 1"),
        "",
    );
    let module = Arc::new(Module::default());
    let relay = lab.start(&module);
    alert(&relay, &[("firing", "s1", Some("be"), 1)]).await;
    wait_for("the drain", || module.runs().len() == 1).await;
    module.say("s1", Some(Verdict::Deferred));
    alert(&relay, &[("resolved", "s1", Some("be"), 1)]).await;
    wait_for("the deferral", || {
        lab.outcomes("be/s1").last().map(String::as_str) == Some("deferred")
    })
    .await;
    assert!(metrics(&relay).contains("autoheal_relay_restores_deferred_total 1"));
    relay.shutdown().await;

    // The check passes now; the restarted relay retries the restore when due.
    module.say("s1", None);
    let relay = lab.start(&module);
    wait_for("the retried restore", || {
        lab.outcomes("be/s1").last().map(String::as_str) == Some("done")
    })
    .await;
    let restores = module
        .actions()
        .iter()
        .filter(|(_, state, _)| *state == DesiredState::Enabled)
        .count();
    assert!(restores >= 2, "{:?}", module.actions());
    wait_for("the restore's audit", || {
        lab.events("be/s1").last().map(String::as_str) == Some("restored")
    })
    .await;
    relay.shutdown().await;
}

#[tokio::test]
async fn a_deferral_reported_by_a_run_ending_during_the_stop_resumes_after_the_restart() {
    let lab = Lab::new(
        &format!("{AT_ONCE}defer_retry_secs = 1\ndefer_retry_max_secs = 1"),
        "",
    );
    let module = Arc::new(Module::default());
    let relay = lab.start(&module);
    alert(&relay, &[("firing", "s1", Some("be"), 1)]).await;
    wait_for("the drain", || module.runs().len() == 1).await;
    module.say("s1", Some(Verdict::Deferred));
    module
        .run_ms
        .store(500, std::sync::atomic::Ordering::SeqCst);
    alert(&relay, &[("resolved", "s1", Some("be"), 1)]).await;
    wait_for("the restore's run", || module.runs().len() == 2).await;
    // The stop comes while the module is still at work: the grace lets the run end, and its
    // deferral is work owed, not a restore done.
    relay.shutdown().await;
    assert_eq!(lab.outcomes("be/s1"), ["done", "deferred"]);
    assert_eq!(
        lab.events("be/s1").last().map(String::as_str),
        Some("deferred")
    );

    module.say("s1", None);
    module.run_ms.store(0, std::sync::atomic::Ordering::SeqCst);
    let relay = lab.start(&module);
    wait_for("the retried restore", || {
        lab.events("be/s1").last().map(String::as_str) == Some("restored")
    })
    .await;
    assert_eq!(lab.outcomes("be/s1"), ["done", "done"]);
    relay.shutdown().await;
}

#[tokio::test]
async fn the_third_remediation_quarantines_a_restart_keeps_it_and_release_restores() {
    let lab = Lab::new(AT_ONCE, "");
    let module = Arc::new(Module::default());
    let mut relay = lab.start(&module);
    for cycle in 1..=3 {
        alert(&relay, &[("firing", "s1", Some("be"), cycle)]).await;
        wait_for("the drain", || {
            module
                .actions()
                .iter()
                .filter(|a| a.1 == DesiredState::Drain)
                .count()
                == usize::try_from(cycle).unwrap()
        })
        .await;
        alert(&relay, &[("resolved", "s1", Some("be"), cycle)]).await;
        if cycle < 3 {
            wait_for("the restore", || {
                module
                    .actions()
                    .iter()
                    .filter(|a| a.1 == DesiredState::Enabled)
                    .count()
                    == usize::try_from(cycle).unwrap()
            })
            .await;
        }
    }
    wait_for("the held restore", || {
        lab.outcomes("be/s1").last().map(String::as_str) == Some("held")
    })
    .await;
    assert!(lab.events("be/s1").contains(&"quarantined".to_owned()));
    relay.shutdown().await;
    relay = lab.start(&module);
    wait_for("the quarantine gauge", || {
        metrics(&relay).contains("autoheal_relay_targets{phase=\"quarantined\"} 1")
    })
    .await;
    let restores = module
        .actions()
        .iter()
        .filter(|a| a.1 == DesiredState::Enabled)
        .count();
    assert_eq!(restores, 2, "not restored automatically");

    // The admin endpoint: the admin token only, JSON only, a valid target only.
    let good = r#"{"target": "be/s1"}"#;
    assert_eq!(
        release(&relay, None, "application/json", good).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        release(
            &relay,
            Some("Bearer sender-token"),
            "application/json",
            good
        )
        .await,
        StatusCode::UNAUTHORIZED
    );
    let admin = format!("Bearer {ADMIN_TOKEN}");
    assert_eq!(
        release(&relay, Some(&admin), "text/plain", good).await,
        StatusCode::UNSUPPORTED_MEDIA_TYPE
    );
    for bad in [
        r#"{"target": "be/s1;reboot"}"#,
        r#"{"target": "s1"}"#,
        "{}",
        "not json",
    ] {
        assert_eq!(
            release(&relay, Some(&admin), "application/json", bad).await,
            StatusCode::BAD_REQUEST,
            "{bad}"
        );
    }
    assert_eq!(
        module
            .actions()
            .iter()
            .filter(|a| a.1 == DesiredState::Enabled)
            .count(),
        2,
        "a refused release changes nothing"
    );
    assert_eq!(
        release(&relay, Some(&admin), "application/json", good).await,
        StatusCode::ACCEPTED
    );
    wait_for("the released restore", || {
        module
            .actions()
            .iter()
            .filter(|a| a.1 == DesiredState::Enabled)
            .count()
            == 3
    })
    .await;
    wait_for("its audit", || {
        lab.events("be/s1").contains(&"released".to_owned())
    })
    .await;
    relay.shutdown().await;
}

#[tokio::test]
async fn panic_refuses_every_drain_of_the_backend_until_the_share_falls_back() {
    let lab = Lab::new(
        "",
        "[guard]\nmax_out_per_backend = 1\n[guard.servers]\nbe = [\"s1\", \"s2\", \"s3\", \"s4\"]",
    );
    let module = Arc::new(Module::default());
    let relay = lab.start(&module);
    let all: Vec<_> = ["s1", "s2", "s3", "s4"]
        .iter()
        .map(|s| ("firing", *s, None, 1))
        .collect();
    alert(&relay, &all).await;
    wait_for("the refusals", || {
        lab.history()
            .iter()
            .filter(|r| r.outcome == "panic")
            .count()
            >= 3
    })
    .await;
    wait_for("the panic gauge", || {
        metrics(&relay).contains("autoheal_relay_backend_panic{backend=\"be\"} 1")
    })
    .await;
    let drained = module.actions().len();
    assert!(
        drained <= 1,
        "at most the budget out: {:?}",
        module.actions()
    );
    let resolved: Vec<_> = ["s2", "s3", "s4"]
        .iter()
        .map(|s| ("resolved", *s, None, 1))
        .collect();
    alert(&relay, &resolved).await;
    wait_for("the end of the panic", || {
        !metrics(&relay).contains("backend_panic{backend=\"be\"} 1")
    })
    .await;
    alert(&relay, &[("firing", "s2", None, 2)]).await;
    wait_for("a drain once the panic is over", || {
        module
            .actions()
            .iter()
            .any(|a| a.0 == "s2" && a.1 == DesiredState::Drain)
    })
    .await;
    relay.shutdown().await;
}

#[tokio::test]
async fn unknown_servers_take_no_budget_and_an_unlabelled_alert_counts_in_its_backend() {
    let lab = Lab::new(AT_ONCE, "[guard]\nmax_out_per_backend = 1\n[guard.servers]\nbe = [\"s1\", \"s2\"]\nother = [\"s9\"]");
    let module = Arc::new(Module::default());
    let relay = lab.start(&module);
    // A server no backend has: refused at once, nothing runs, no budget used.
    alert(&relay, &[("firing", "typo", None, 1)]).await;
    wait_for("the refusal", || lab.outcomes("*/typo") == ["not_found"]).await;
    // No backend label: counted in its real backend.
    alert(&relay, &[("firing", "s1", None, 1)]).await;
    wait_for("the drain", || module.actions().len() == 1).await;
    assert_eq!(module.runs()[0].1.actions[0].backend.as_deref(), Some("be"));
    // The same backend with a label: its budget (1) is spent.
    alert(&relay, &[("firing", "s2", Some("be"), 1)]).await;
    wait_for("the budget refusal", || {
        lab.outcomes("be/s2") == ["refused"]
    })
    .await;
    relay.shutdown().await;

    // What the module does not find takes no budget either.
    let lab = Lab::new(AT_ONCE, "[guard]\nmax_out_per_backend = 1");
    let module = Arc::new(Module::default());
    let relay = lab.start(&module);
    module.say("ghost", Some(Verdict::NotFound));
    alert(&relay, &[("firing", "ghost", Some("be"), 1)]).await;
    wait_for("not found", || lab.outcomes("be/ghost") == ["not_found"]).await;
    alert(&relay, &[("firing", "s1", Some("be"), 1)]).await;
    wait_for("a real server drained", || {
        module.actions().iter().any(|a| a.0 == "s1")
    })
    .await;
    relay.shutdown().await;
}

#[tokio::test]
async fn a_server_an_operator_took_out_is_left_alone_until_they_put_it_back() {
    let lab = Lab::new(AT_ONCE, "");
    let module = Arc::new(Module::default());
    let relay = lab.start(&module);
    module.say("s1", Some(Verdict::Operator));
    alert(&relay, &[("firing", "s1", Some("be"), 1)]).await;
    wait_for("the skip", || lab.outcomes("be/s1") == ["operator_state"]).await;
    alert(&relay, &[("resolved", "s1", Some("be"), 1)]).await;
    wait_for("the refused restore", || {
        lab.outcomes("be/s1") == ["operator_state", "operator_state"]
    })
    .await;
    assert_eq!(module.actions().len(), 1, "the restore was never asked");
    // The operator puts it back; when it is sick again, the module is asked again and drains it.
    module.say("s1", None);
    alert(&relay, &[("firing", "s1", Some("be"), 2)]).await;
    wait_for("the new drain", || {
        lab.outcomes("be/s1") == ["operator_state", "operator_state", "done"]
    })
    .await;
    relay.shutdown().await;
}

#[tokio::test]
async fn a_target_left_unknown_by_a_failed_run_is_cleared_by_release_for_good() {
    let lab = Lab::new(
        AT_ONCE,
        "[guard]\nmax_out_per_backend = 1\n[retry]\nattempts = 0",
    );
    let module = Arc::new(Module::default());
    let relay = lab.start(&module);
    module
        .fail_next
        .store(true, std::sync::atomic::Ordering::SeqCst);
    alert(&relay, &[("firing", "s1", Some("be"), 1)]).await;
    wait_for("the failed run", || lab.outcomes("be/s1") == ["failed"]).await;
    // Its state is unknown: it counts out, so the budget (1) is spent.
    alert(&relay, &[("firing", "s2", Some("be"), 1)]).await;
    wait_for("the budget refusal", || {
        lab.outcomes("be/s2") == ["refused"]
    })
    .await;
    let admin = format!("Bearer {ADMIN_TOKEN}");
    assert_eq!(
        release(
            &relay,
            Some(&admin),
            "application/json",
            r#"{"target": "be/s1"}"#
        )
        .await,
        StatusCode::ACCEPTED
    );
    wait_for("its audit", || {
        lab.events("be/s1").last().map(String::as_str) == Some("released")
    })
    .await;
    relay.shutdown().await;
    // Also after a restart: the guard's record of the failed run no longer counts.
    let relay = lab.start(&module);
    alert(&relay, &[("firing", "s3", Some("be"), 1)]).await;
    wait_for("a drain within the budget", || {
        module.actions().iter().any(|a| a.0 == "s3")
    })
    .await;
    relay.shutdown().await;
}
