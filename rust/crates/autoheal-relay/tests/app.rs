//! The relay driven through `app()` without a socket (tower `oneshot`), with the real journal
//! and pipeline and an executor that records the runs it is given.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use autoheal_relay::config::Config;
use autoheal_relay::executor::{Executor, RunFuture, RunRequest};
use autoheal_relay::journal;
use autoheal_relay::model::DesiredState;
use autoheal_relay::model::RunResult;
use autoheal_relay::{app, Relay};
use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use base64::Engine;
use http_body_util::BodyExt;
use tower::ServiceExt;

const TOKEN: &str = "test-token-1234";
const ADMIN_TOKEN: &str = "admin-token-5678";

/// Writes a secret file readable by its owner only (the relay refuses any other).
fn write_secret(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// One of the project's own payloads (tests/fixtures/payloads).
fn fixture(rel: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/payloads")
        .join(rel);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Records every run; while `hold` is set, a run never finishes (a stuck playbook).
#[derive(Debug, Default)]
struct Recorder {
    runs: Mutex<Vec<RunRequest>>,
    hold: std::sync::atomic::AtomicBool,
    /// The next this many runs fail.
    fail_next: std::sync::atomic::AtomicUsize,
    /// The next run panics.
    panic_next: std::sync::atomic::AtomicBool,
}

impl Recorder {
    fn runs(&self) -> Vec<RunRequest> {
        self.runs.lock().unwrap().clone()
    }
}

impl Executor for Recorder {
    fn name(&self) -> &'static str {
        "recorder"
    }

    fn run<'a>(&'a self, request: &'a RunRequest) -> RunFuture<'a> {
        Box::pin(async move {
            self.runs.lock().unwrap().push(request.clone());
            assert!(
                !self
                    .panic_next
                    .swap(false, std::sync::atomic::Ordering::SeqCst),
                "boom in the executor"
            );
            while self.hold.load(std::sync::atomic::Ordering::SeqCst) {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            let fail = self
                .fail_next
                .fetch_update(
                    std::sync::atomic::Ordering::SeqCst,
                    std::sync::atomic::Ordering::SeqCst,
                    |n| n.checked_sub(1),
                )
                .is_ok();
            RunResult {
                status: if fail { "failed" } else { "successful" }.into(),
                rc: Some(if fail { 2 } else { 0 }),
                duration_ms: 1,
                detail: String::new(),
                ..RunResult::default()
            }
        })
    }
}

struct Harness {
    _dir: tempfile::TempDir,
    dir: PathBuf,
    config: Config,
}

impl Harness {
    fn new(extra: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_owned();
        write_secret(&path.join("token"), &format!("{TOKEN}\n"));
        write_secret(&path.join("users"), "alertmanager:pw-1\n");
        write_secret(&path.join("hmac"), "grafana-secret");
        write_secret(&path.join("admin"), ADMIN_TOKEN);
        let text = format!(
            r#"
[server]
max_body_bytes = 65536

[auth]
bearer_token_file = "token"
basic_auth_file = "users"
admin_token_file = "admin"
grafana_hmac = {{ secret_file = "hmac" }}

[journal]
path = "journal.db"

[[rules]]
name = "drain-on-cpu"
match = {{ alertname = "BackendCpuHigh" }}
action = "drain"

[[rules]]
name = "grafana-mem"
match_re = {{ alertname = "High .*" }}
action = "disabled"

[coalesce]
window_ms = 50

[guard]
max_out_per_backend = 1000
breaker_max_actions = 100000

# These tests are about intake, journal and runs: restores go at once, in one step.
[lifecycle]
hold_down_base_secs = 0
hold_down_max_secs = 0
ramp_percent = [100]

[executor]
kind = "dry-run"
{extra}
"#
        );
        let file = path.join("relay.toml");
        std::fs::write(&file, &text).unwrap();
        let config = Config::load(&file).unwrap();
        Self {
            _dir: dir,
            dir: path,
            config,
        }
    }

    /// A harness with `extra` configuration, a recorder and a relay started on them.
    fn started(extra: &str) -> (Self, Arc<Recorder>, Relay) {
        let h = Self::new(extra);
        let rec = Arc::new(Recorder::default());
        let relay = h.start(&rec);
        (h, rec, relay)
    }

    fn start(&self, recorder: &Arc<Recorder>) -> Relay {
        Relay::start(&self.config, recorder.clone()).unwrap()
    }

    fn db(&self) -> PathBuf {
        self.dir.join("journal.db")
    }
}

fn post(path: &str) -> axum::http::request::Builder {
    Request::post(path)
}

/// The webhook senders' bearer credentials.
fn bearer() -> String {
    format!("Bearer {TOKEN}")
}

/// The admin endpoints' bearer credentials.
fn admin_bearer() -> String {
    format!("Bearer {ADMIN_TOKEN}")
}

/// HTTP basic credentials for `user:password`.
fn basic(credentials: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(credentials)
    )
}

/// A JSON POST to the Alertmanager hook with the senders' token; the body is the caller's.
fn am_post() -> axum::http::request::Builder {
    post("/hooks/alertmanager")
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::AUTHORIZATION, bearer())
}

fn am_request(body: Vec<u8>) -> Request<Body> {
    am_post().body(Body::from(body)).unwrap()
}

async fn send(relay: &Relay, req: Request<Body>) -> (StatusCode, serde_json::Value) {
    let response = app(relay.state()).oneshot(req).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let value = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(&bytes).into()));
    (status, value)
}

async fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Waits until the pipeline has found the fleet's work due and held it because of the pause: after
/// that, a run can only come from a resume.
async fn held_by_the_pause(relay: &Relay) {
    wait_for("a flush held by the pause", || {
        relay.state().metrics().runs_held.get() > 0
    })
    .await;
}

/// Sends a firing alert for server `sentinel` and waits for the run that carries it. Intents reach
/// the pipeline in commit order, and a fleet's run takes every intent of the fleet that may run:
/// an action that an alert sent earlier had led to is in that run or an earlier one. So once it
/// is recorded, [`servers_run`] tells everything the earlier alerts made the relay run, with no
/// waiting and hoping.
async fn sentinel_run(relay: &Relay, rec: &Recorder) {
    let body = alert_body("firing", &[("BackendCpuHigh", "sentinel", "5e5e")]);
    assert_eq!(send(relay, am_request(body)).await.1["actions"], 1);
    wait_for("the sentinel's run", || {
        servers_run(rec).iter().any(|s| s == "sentinel")
    })
    .await;
}

/// The servers of every action run so far, in order.
fn servers_run(rec: &Recorder) -> Vec<String> {
    rec.runs()
        .iter()
        .flat_map(|r| &r.actions)
        .map(|a| a.server.clone().unwrap_or_default())
        .collect()
}

fn alert_body(status: &str, alerts: &[(&str, &str, &str)]) -> Vec<u8> {
    // (alertname, server, fingerprint)
    let alerts: Vec<_> = alerts
        .iter()
        .map(|(name, server, fp)| {
            serde_json::json!({
                "status": status,
                "labels": {"alertname": name, "server": server, "backend": "be"},
                "annotations": {},
                "startsAt": "2026-11-25T12:00:00Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "fingerprint": fp,
            })
        })
        .collect();
    serde_json::to_vec(&serde_json::json!({"version": "4", "status": status, "alerts": alerts}))
        .unwrap()
}

fn history(db: &Path) -> Vec<journal::HistoryRow> {
    journal::history(db, 10_000).unwrap()
}

#[tokio::test]
async fn firing_then_resolved_become_drain_then_enabled_runs() {
    let (h, rec, relay) = Harness::started("");
    let (status, body) = send(&relay, am_request(fixture("alertmanager/firing.json"))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["actions"], 1);
    wait_for("the drain run", || rec.runs().len() == 1).await;
    let run = &rec.runs()[0];
    assert_eq!(run.actions.len(), 1);
    let a = &run.actions[0];
    assert_eq!(
        (a.server.as_deref(), a.backend.as_deref(), a.state),
        (Some("s1"), Some("be"), DesiredState::Drain)
    );
    assert_eq!(a.reason.alert, "BackendCpuHigh");
    assert_eq!(a.reason.fingerprint, "7c1e5a90d24b3f68");

    let (status, _) = send(&relay, am_request(fixture("alertmanager/resolved.json"))).await;
    assert_eq!(status, StatusCode::OK);
    wait_for("the restore run", || rec.runs().len() == 2).await;
    assert_eq!(rec.runs()[1].actions[0].state, DesiredState::Enabled);
    wait_for("both decisions done", || {
        history(&h.db())
            .iter()
            .filter(|r| r.outcome == "done")
            .count()
            == 2
    })
    .await;
    relay.shutdown().await;
}

#[tokio::test]
async fn malformed_truncated_and_custom_bodies_get_400_with_a_json_error() {
    let (h, rec, relay) = Harness::started("");
    let good = fixture("alertmanager/firing.json");
    let mut bodies: Vec<Vec<u8>> = vec![
        b"{".to_vec(),
        b"not json".to_vec(),
        b"".to_vec(),
        b"[]".to_vec(),
        good[..good.len() / 2].to_vec(),
        vec![0xff, 0xfe, 0x00],
        fixture("alertmanager/custom-template-list.json"),
        fixture("alertmanager/custom-template-map.json"),
    ];
    bodies.push(br#"{"alerts":[{"status":"firing","labels":{"alertname":["nested"]}}]}"#.to_vec());
    for body in bodies {
        let shown = String::from_utf8_lossy(&body)
            .chars()
            .take(40)
            .collect::<String>();
        let (status, json) = send(&relay, am_request(body)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{shown}: {json}");
        assert!(
            json["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{shown}: {json}"
        );
    }
    assert!(
        history(&h.db()).is_empty(),
        "nothing of a refused body is journaled"
    );
    sentinel_run(&relay, &rec).await;
    assert_eq!(servers_run(&rec), ["sentinel"]);
    let metrics = relay.state().metrics().render();
    assert!(
        metrics.contains("autoheal_relay_requests_refused_total{reason=\"payload\"} 9"),
        "{metrics}"
    );
    relay.shutdown().await;
}

#[tokio::test]
async fn oversized_body_is_413() {
    let (_h, _rec, relay) = Harness::started("");
    // Over the configured 64 KiB, both with and without a Content-Length.
    let mut big = br#"{"alerts":[],"pad":""#.to_vec();
    big.extend(std::iter::repeat_n(b'x', 70_000));
    big.extend(br#""}"#);
    let (status, json) = send(&relay, am_request(big.clone())).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{json}");
    let chunks: Vec<Result<axum::body::Bytes, std::io::Error>> = big
        .chunks(8192)
        .map(|c| Ok(axum::body::Bytes::copy_from_slice(c)))
        .collect();
    let req = am_post()
        .body(Body::from_stream(futures_util::stream::iter(chunks)))
        .unwrap();
    let (status, _) = send(&relay, req).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    relay.shutdown().await;
}

#[tokio::test]
async fn wrong_content_type_is_415() {
    let (_h, _rec, relay) = Harness::started("");
    let body = fixture("alertmanager/firing.json");
    for ct in [
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        Some("application/jsonx"),
        None,
    ] {
        let mut req = post("/hooks/alertmanager").header(header::AUTHORIZATION, bearer());
        if let Some(ct) = ct {
            req = req.header(header::CONTENT_TYPE, ct);
        }
        let (status, json) = send(&relay, req.body(Body::from(body.clone())).unwrap()).await;
        assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{ct:?}: {json}");
    }
    let ok = post("/hooks/alertmanager")
        .header(header::AUTHORIZATION, bearer())
        .header(header::CONTENT_TYPE, "application/json; charset=utf-8")
        .body(Body::from(body))
        .unwrap();
    assert_eq!(send(&relay, ok).await.0, StatusCode::OK);
    relay.shutdown().await;
}

#[tokio::test]
async fn missing_or_wrong_credentials_are_401_and_nothing_is_journaled() {
    let (h, _rec, relay) = Harness::started("");
    let body = fixture("alertmanager/firing.json");
    for auth in [
        None,
        Some("Bearer wrong".to_owned()),
        Some(format!("Bearer {TOKEN}x")),
        Some(TOKEN.to_owned()),
        Some(basic("alertmanager:wrong")),
        Some(basic("nobody:pw-1")),
        Some("Basic %%%".to_owned()),
    ] {
        let mut req = post("/hooks/alertmanager").header(header::CONTENT_TYPE, "application/json");
        if let Some(a) = &auth {
            req = req.header(header::AUTHORIZATION, a);
        }
        let (status, json) = send(&relay, req.body(Body::from(body.clone())).unwrap()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{auth:?}: {json}");
        assert!(json["error"].is_string());
    }
    assert!(history(&h.db()).is_empty());
    let ok = post("/hooks/alertmanager")
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::AUTHORIZATION, basic("alertmanager:pw-1"))
        .body(Body::from(body))
        .unwrap();
    assert_eq!(send(&relay, ok).await.0, StatusCode::OK);
    relay.shutdown().await;
}

/// A hex signature with its first digit changed: always wrong, whatever the digits are.
fn corrupt_first_digit(hex: String) -> String {
    let flipped = if hex.starts_with('0') { '1' } else { '0' };
    format!("{flipped}{}", &hex[1..])
}

#[tokio::test]
async fn grafana_needs_a_valid_hmac() {
    let (h, rec, relay) = Harness::started("");
    let body = fixture("grafana/firing-two-alerts.json");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .to_string();
    let signed = |ts: &str, body: &[u8]| {
        let mut msg = format!("{ts}:").into_bytes();
        msg.extend_from_slice(body);
        autoheal_relay::auth::sign(b"grafana-secret", &msg)
    };
    let req = |sig: Option<String>, ts: &str, body: Vec<u8>| {
        let mut r = post("/hooks/grafana")
            .header(header::CONTENT_TYPE, "application/json")
            .header("X-Grafana-Alerting-Signature-Timestamp", ts);
        if let Some(sig) = sig {
            r = r.header("X-Grafana-Alerting-Signature", sig);
        }
        r.body(Body::from(body)).unwrap()
    };
    let mut tampered = body.clone();
    tampered[10] ^= 1;
    let cases = [
        (None, now.clone(), body.clone()),
        (Some("00".repeat(32)), now.clone(), body.clone()),
        (Some(signed(&now, &body)), now.clone(), tampered),
        (Some(signed("1000", &body)), "1000".to_owned(), body.clone()),
        (
            Some(corrupt_first_digit(signed(&now, &body))),
            now.clone(),
            body.clone(),
        ),
    ];
    for (sig, ts, b) in cases {
        let (status, json) = send(&relay, req(sig.clone(), &ts, b)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{sig:?} {ts}: {json}");
    }
    assert!(history(&h.db()).is_empty());
    let (status, json) = send(&relay, req(Some(signed(&now, &body)), &now, body.clone())).await;
    assert_eq!(status, StatusCode::OK, "{json}");
    assert_eq!(json["alerts"], 2);
    // Neither alert has a server label: both match the rule and are rejected as naming no
    // target, which the audit log records.
    assert_eq!(json["rejected"], 2);
    // A Grafana alert that names its server is acted on.
    let named = serde_json::to_vec(&serde_json::json!({
        "receiver": "relay", "status": "firing", "orgId": 1, "version": "1", "state": "alerting",
        "alerts": [{"status": "firing", "labels": {"alertname": "High memory usage", "server": "web2"},
                    "startsAt": "2026-01-01T00:00:00Z", "fingerprint": "c6eadffa33fcdf37", "values": {"B": 1.5}}]
    }))
    .unwrap();
    let (status, json) = send(&relay, req(Some(signed(&now, &named)), &now, named.clone())).await;
    assert_eq!(status, StatusCode::OK, "{json}");
    assert_eq!(json["actions"], 1, "{json}");
    wait_for("the Grafana-triggered run", || rec.runs().len() == 1).await;
    let a = &rec.runs()[0].actions[0];
    assert_eq!(
        (a.server.as_deref(), a.state),
        (Some("web2"), DesiredState::Disabled)
    );
    relay.shutdown().await;
}

#[tokio::test]
async fn hostile_label_values_are_rejected_audited_and_never_run() {
    let (h, rec, relay) = Harness::started("");
    let long = "a".repeat(4000);
    let hostile = [
        "s1; rm -rf /",
        "$(reboot)",
        "`id`",
        "s1 && curl evil",
        "s1|nc",
        "{{ lookup('pipe', 'id') }}",
        "{% for x in range(10) %}",
        "s1\nnewline",
        "s1\r\nx",
        "../../etc/passwd",
        "..",
        long.as_str(),
        "s1\u{0}",
        "ſ1",
    ];
    for (i, value) in hostile.iter().enumerate() {
        let fp = format!("{i:016x}");
        let (status, json) = send(
            &relay,
            am_request(alert_body("firing", &[("BackendCpuHigh", value, &fp)])),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{value:?}: {json}");
        assert_eq!(json["rejected"], 1, "{value:?}: {json}");
        assert_eq!(json["actions"], 0, "{value:?}");
    }
    // A hostile backend next to a good server name is refused too.
    let body = serde_json::json!({"version": "4", "status": "firing", "alerts": [{
        "status": "firing", "labels": {"alertname": "BackendCpuHigh", "server": "s1", "backend": "be {{x}}"},
        "startsAt": "2026-01-01T00:00:00Z", "fingerprint": "ffff"}]});
    let (_, json) = send(&relay, am_request(serde_json::to_vec(&body).unwrap())).await;
    assert_eq!(json["rejected"], 1);
    let rows = history(&h.db());
    assert_eq!(rows.len(), hostile.len() + 1);
    sentinel_run(&relay, &rec).await;
    assert_eq!(
        servers_run(&rec),
        ["sentinel"],
        "no hostile value may reach an executor"
    );
    assert!(
        rows.iter()
            .all(|r| r.outcome == "rejected" && r.target.is_none()),
        "{rows:?}"
    );
    assert!(rows.iter().any(|r| r
        .detail
        .as_deref()
        .is_some_and(|d| d.contains("label backend"))));
    let metrics = relay.state().metrics().render();
    assert!(
        metrics.contains("autoheal_relay_alerts_rejected_total{reason=\"bad_char\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("autoheal_relay_alerts_rejected_total{reason=\"too_long\"} 1"),
        "{metrics}"
    );
    relay.shutdown().await;
}

#[tokio::test]
async fn duplicate_deliveries_are_one_event() {
    let (h, rec, relay) = Harness::started("");
    let body = fixture("alertmanager/firing.json");
    let (_, first) = send(&relay, am_request(body.clone())).await;
    let (_, second) = send(&relay, am_request(body.clone())).await;
    assert_eq!(
        (first["actions"].as_u64(), first["duplicates"].as_u64()),
        (Some(1), Some(0))
    );
    assert_eq!(
        (second["actions"].as_u64(), second["duplicates"].as_u64()),
        (Some(0), Some(1))
    );
    // The same alert, resolved, is a new event.
    let (_, resolved) = send(&relay, am_request(fixture("alertmanager/resolved.json"))).await;
    assert_eq!(resolved["duplicates"], 0);
    relay.shutdown().await;
    // Dedup survives a restart (seeded from the journal).
    let relay = h.start(&rec);
    let (_, again) = send(&relay, am_request(body)).await;
    assert_eq!(again["duplicates"], 1, "{again}");
    relay.shutdown().await;
}

#[tokio::test]
async fn a_storm_of_1000_alerts_over_100_servers_becomes_a_handful_of_runs() {
    let (h, rec, relay) = Harness::started("");
    // 100 requests of 10 alerts: every server fires, then a third of them resolve again.
    for req in 0..100_u32 {
        let alerts: Vec<(String, String)> = (0..10)
            .map(|k| {
                let n = req * 10 + k;
                (format!("s{}", n % 100), format!("{n:016x}"))
            })
            .collect();
        let status = if req >= 70 && req.is_multiple_of(3) {
            "resolved"
        } else {
            "firing"
        };
        let refs: Vec<(&str, &str, &str)> = alerts
            .iter()
            .map(|(s, f)| ("BackendCpuHigh", s.as_str(), f.as_str()))
            .collect();
        let (code, json) = send(&relay, am_request(alert_body(status, &refs))).await;
        assert_eq!(code, StatusCode::OK, "{json}");
    }
    wait_for("the pipeline to drain", || {
        let rows = history(&h.db());
        rows.len() == 1000
            && rows
                .iter()
                .all(|r| r.outcome != "pending" && r.outcome != "running")
    })
    .await;
    let runs = rec.runs();
    assert!(runs.len() <= 10, "{} runs for 1000 alerts", runs.len());
    // Each server changes at most three times (drain, restore, drain again), whatever the batching.
    let actions: usize = runs.iter().map(|r| r.actions.len()).sum();
    assert!(actions <= 300, "{actions} actions");
    // Request r alerts servers 10 * (r % 10) .. 10 * (r % 10) + 9, so server s was last alerted
    // by request 90 + s / 10, which was a resolve when (90 + g) % 3 == 0. Each server must end
    // in that state: the last action run for it, or still enabled if none ran (a firing and its
    // resolve that met in the coalescer cancel out).
    let mut last = std::collections::HashMap::new();
    for a in runs.iter().flat_map(|r| r.actions.iter()) {
        last.insert(a.server.clone().unwrap(), a.state);
    }
    for s in 0..100_usize {
        let server = format!("s{s}");
        let expected = if (90 + s / 10).is_multiple_of(3) {
            DesiredState::Enabled
        } else {
            DesiredState::Drain
        };
        let end_state = last.get(&server).copied().unwrap_or(DesiredState::Enabled);
        assert_eq!(end_state, expected, "{server}");
    }
    for r in &runs {
        let mut names: Vec<_> = r.actions.iter().map(|a| a.server.clone()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), r.actions.len());
    }
    relay.shutdown().await;
}

#[tokio::test]
async fn budget_refusals_are_audited() {
    let h = Harness::new("");
    let mut cfg = h.config.clone();
    cfg.guard.max_out_per_backend = 1;
    let rec = Arc::new(Recorder::default());
    let relay = Relay::start(&cfg, rec.clone()).unwrap();
    let body = alert_body(
        "firing",
        &[
            ("BackendCpuHigh", "s1", "01"),
            ("BackendCpuHigh", "s2", "02"),
            ("BackendCpuHigh", "s3", "03"),
        ],
    );
    assert_eq!(send(&relay, am_request(body)).await.0, StatusCode::OK);
    wait_for("settled", || {
        history(&h.db())
            .iter()
            .all(|r| r.outcome != "pending" && r.outcome != "running")
    })
    .await;
    assert_eq!(rec.runs().len(), 1);
    assert_eq!(rec.runs()[0].actions.len(), 1);
    let refused: Vec<_> = history(&h.db())
        .into_iter()
        .filter(|r| r.outcome == "refused")
        .collect();
    assert_eq!(refused.len(), 2);
    assert!(
        refused[0].detail.as_deref().unwrap().contains("budget"),
        "{refused:?}"
    );
    relay.shutdown().await;
}

#[tokio::test]
async fn pause_holds_actions_until_resumed_and_needs_auth() {
    let (h, rec, relay) = Harness::started("");
    let unauth = post("/admin/pause").body(Body::empty()).unwrap();
    assert_eq!(send(&relay, unauth).await.0, StatusCode::UNAUTHORIZED);
    let (status, json) = send(&relay, admin("/admin/pause")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(json["paused"], true);
    let body = alert_body("firing", &[("BackendCpuHigh", "s1", "01")]);
    assert_eq!(send(&relay, am_request(body)).await.1["actions"], 1);
    held_by_the_pause(&relay).await;
    assert!(rec.runs().is_empty(), "paused: nothing runs");
    assert_eq!(history(&h.db())[0].outcome, "pending");
    assert_eq!(
        send(&relay, admin("/admin/resume")).await.1["paused"],
        false
    );
    wait_for("the held run", || rec.runs().len() == 1).await;
    relay.shutdown().await;
}

fn admin(path: &str) -> Request<Body> {
    post(path)
        .header(header::AUTHORIZATION, admin_bearer())
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::empty())
        .unwrap()
}

#[tokio::test]
async fn the_admin_endpoints_refuse_sender_credentials_and_cross_site_forms() {
    let (h, rec, relay) = Harness::started("");
    for sender in [bearer(), basic("alertmanager:pw-1")] {
        let req = post("/admin/resume")
            .header(header::AUTHORIZATION, sender.as_str())
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::empty())
            .unwrap();
        assert_eq!(
            send(&relay, req).await.0,
            StatusCode::UNAUTHORIZED,
            "{sender}"
        );
        let req = Request::get("/admin/status")
            .header(header::AUTHORIZATION, sender.as_str())
            .body(Body::empty())
            .unwrap();
        assert_eq!(
            send(&relay, req).await.0,
            StatusCode::UNAUTHORIZED,
            "{sender}"
        );
    }
    // What an HTML form can send: no JSON content type.
    let form = post("/admin/pause")
        .header(header::AUTHORIZATION, admin_bearer())
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from("a=b"))
        .unwrap();
    assert_eq!(
        send(&relay, form).await.0,
        StatusCode::UNSUPPORTED_MEDIA_TYPE
    );
    assert!(!relay.state().pause().is_paused());
    relay.shutdown().await;

    // Without an admin token, the admin endpoints are off.
    let mut cfg = h.config.clone();
    cfg.auth.admin_token_file = None;
    let relay = Relay::start(&cfg, rec.clone()).unwrap();
    let req = post("/admin/pause")
        .header(header::AUTHORIZATION, bearer())
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::empty())
        .unwrap();
    let (status, json) = send(&relay, req).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{json}");
    assert!(
        json["error"].as_str().unwrap().contains("admin_token_file"),
        "{json}"
    );
    relay.shutdown().await;
}

#[tokio::test]
async fn the_admin_pause_survives_a_restart_and_so_does_the_resume() {
    let (h, rec, relay) = Harness::started("");
    assert_eq!(send(&relay, admin("/admin/pause")).await.1["paused"], true);
    relay.shutdown().await;

    // Restarted with the same journal: still paused, and alerts wait.
    let relay = h.start(&rec);
    let status = Request::get("/admin/status")
        .header(header::AUTHORIZATION, admin_bearer())
        .body(Body::empty())
        .unwrap();
    assert_eq!(send(&relay, status).await.1["paused"], true);
    let body = alert_body("firing", &[("BackendCpuHigh", "s1", "01")]);
    assert_eq!(send(&relay, am_request(body)).await.1["actions"], 1);
    held_by_the_pause(&relay).await;
    assert!(
        rec.runs().is_empty(),
        "paused after the restart: nothing runs"
    );
    assert_eq!(
        send(&relay, admin("/admin/resume")).await.1["paused"],
        false
    );
    wait_for("the held run", || rec.runs().len() == 1).await;
    relay.shutdown().await;

    // The resume was recorded too: the next start is not paused.
    let relay = h.start(&rec);
    let body = alert_body("firing", &[("BackendCpuHigh", "s2", "02")]);
    assert_eq!(send(&relay, am_request(body)).await.1["actions"], 1);
    wait_for("a run without any resume", || rec.runs().len() == 2).await;

    // A switch the journal cannot record is refused and left as it was.
    let conn = rusqlite::Connection::open(h.db()).unwrap();
    conn.execute_batch("DROP TABLE switches").unwrap();
    let (code, json) = send(&relay, admin("/admin/pause")).await;
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE, "{json}");
    assert!(
        json["error"].as_str().unwrap().contains("nothing changed"),
        "{json}"
    );
    assert!(!relay.state().pause().is_paused());
    relay.shutdown().await;
}

#[tokio::test]
async fn pause_file_holds_actions() {
    let h = Harness::new("");
    let mut cfg = h.config.clone();
    let flag = h.dir.join("PAUSE");
    cfg.guard.pause_file = Some(flag.clone());
    std::fs::write(&flag, "").unwrap();
    let rec = Arc::new(Recorder::default());
    let relay = Relay::start(&cfg, rec.clone()).unwrap();
    send(
        &relay,
        am_request(alert_body("firing", &[("BackendCpuHigh", "s1", "01")])),
    )
    .await;
    held_by_the_pause(&relay).await;
    assert!(rec.runs().is_empty());
    std::fs::remove_file(&flag).unwrap();
    wait_for("the held run", || rec.runs().len() == 1).await;
    relay.shutdown().await;
}

#[tokio::test]
async fn accepted_work_survives_a_stop_before_it_ran() {
    let h = Harness::new("");
    let mut cfg = h.config.clone();
    cfg.guard.paused = true;
    let rec = Arc::new(Recorder::default());
    let relay = Relay::start(&cfg, rec.clone()).unwrap();
    let body = alert_body(
        "firing",
        &[
            ("BackendCpuHigh", "s1", "01"),
            ("BackendCpuHigh", "s2", "02"),
        ],
    );
    assert_eq!(send(&relay, am_request(body)).await.1["actions"], 2);
    relay.shutdown().await;
    assert!(rec.runs().is_empty());
    // Reopen the same database, unpaused: the pending actions run.
    let rec2 = Arc::new(Recorder::default());
    let relay = h.start(&rec2);
    wait_for("the resumed run", || rec2.runs().len() == 1).await;
    let servers: Vec<_> = rec2.runs()[0]
        .actions
        .iter()
        .map(|a| a.server.clone().unwrap())
        .collect();
    assert_eq!(servers, ["s1", "s2"]);
    relay.shutdown().await;
}

#[tokio::test]
async fn a_run_interrupted_by_a_stop_is_rerun_on_restart() {
    let h = Harness::new("");
    let mut cfg = h.config.clone();
    cfg.server.shutdown_grace_secs = 0;
    let stuck = Arc::new(Recorder::default());
    stuck.hold.store(true, std::sync::atomic::Ordering::SeqCst);
    let relay = Relay::start(&cfg, stuck.clone()).unwrap();
    send(
        &relay,
        am_request(alert_body("firing", &[("BackendCpuHigh", "s1", "01")])),
    )
    .await;
    wait_for("the run to start", || stuck.runs().len() == 1).await;
    relay.shutdown().await;
    assert_eq!(history(&h.db())[0].outcome, "running");
    let rec = Arc::new(Recorder::default());
    let relay = h.start(&rec);
    wait_for("the re-run", || rec.runs().len() == 1).await;
    assert_eq!(rec.runs()[0].actions[0].state, DesiredState::Drain);
    wait_for("done", || history(&h.db())[0].outcome == "done").await;
    let runs = journal::runs(&h.db()).unwrap();
    assert_eq!(runs.len(), 2);
    assert_eq!(runs[1].2, "interrupted", "{runs:?}");
    assert_eq!(runs[0].2, "successful");
    relay.shutdown().await;
}

#[tokio::test]
async fn health_ready_and_metrics() {
    let (_h, rec, relay) = Harness::started("");
    for path in ["/healthz", "/readyz"] {
        let (status, _) = send(&relay, Request::get(path).body(Body::empty()).unwrap()).await;
        assert_eq!(status, StatusCode::OK, "{path}");
    }
    send(&relay, am_request(fixture("alertmanager/firing.json"))).await;
    wait_for("the run", || rec.runs().len() == 1).await;
    wait_for("its metrics", || {
        relay
            .state()
            .metrics()
            .render()
            .contains("runs_finished_total{result=\"successful\"} 1")
    })
    .await;
    let response = app(relay.state())
        .oneshot(Request::get("/metrics").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let text = String::from_utf8(
        response
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec(),
    )
    .unwrap();
    for series in [
        "autoheal_relay_alerts_received_total{source=\"alertmanager\"} 1",
        "autoheal_relay_actions_decided_total{state=\"drain\"} 1",
        "autoheal_relay_runs_started_total 1",
        "autoheal_relay_run_duration_seconds_count 1",
        "autoheal_relay_breaker_open 0",
        "autoheal_relay_queue_depth 0",
    ] {
        assert!(text.contains(series), "missing {series} in\n{text}");
    }
    relay.shutdown().await;
}

#[test]
fn running_without_auth_must_be_explicit() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("relay.toml");
    std::fs::write(&file, "[auth]\n[executor]\nkind = \"dry-run\"\n").unwrap();
    let err = Config::load(&file).unwrap_err().to_string();
    assert!(err.contains("allow_unauthenticated"), "{err}");
}

#[tokio::test]
async fn a_journal_that_cannot_commit_answers_503_and_keeps_nothing_half_written() {
    let (h, rec, relay) = Harness::started("");
    // Break the schema under the running relay: the event insert succeeds, the decision insert
    // fails, so the whole transaction must roll back.
    let conn = rusqlite::Connection::open(h.db()).unwrap();
    conn.execute_batch("DROP TABLE decisions").unwrap();
    let (status, json) = send(&relay, am_request(fixture("alertmanager/firing.json"))).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{json}");
    assert!(
        json["error"].as_str().unwrap().contains("journal"),
        "{json}"
    );
    let events: i64 = conn
        .query_row("SELECT count(*) FROM events", [], |r| r.get(0))
        .unwrap();
    assert_eq!(events, 0, "a refused batch leaves no event behind");
    // The dedup memory was not updated either: once the journal works again, the retry that
    // Alertmanager sends after the 503 is accepted, not dropped as a duplicate.
    conn.execute_batch(
        "CREATE TABLE decisions (id INTEGER PRIMARY KEY, event_id INTEGER NOT NULL REFERENCES events(id),
         decided_ms INTEGER NOT NULL, updated_ms INTEGER NOT NULL, outcome TEXT NOT NULL, rule TEXT, target TEXT,
         fleet TEXT, state TEXT, intent TEXT, detail TEXT, run_id INTEGER REFERENCES runs(id))",
    )
    .unwrap();
    sentinel_run(&relay, &rec).await;
    assert_eq!(servers_run(&rec), ["sentinel"], "the refused batch ran");
    let (status, json) = send(&relay, am_request(fixture("alertmanager/firing.json"))).await;
    assert_eq!(status, StatusCode::OK, "{json}");
    assert_eq!(json["actions"], 1, "{json}");
    wait_for("the run", || rec.runs().len() == 2).await;
    relay.shutdown().await;
}

#[tokio::test]
async fn a_failed_run_is_retried_after_the_delay() {
    let h = Harness::new("");
    let mut cfg = h.config.clone();
    cfg.retry.attempts = 2;
    cfg.retry.delay_ms = 100;
    let rec = Arc::new(Recorder::default());
    rec.fail_next.store(1, std::sync::atomic::Ordering::SeqCst);
    let relay = Relay::start(&cfg, rec.clone()).unwrap();
    send(
        &relay,
        am_request(alert_body("firing", &[("BackendCpuHigh", "s1", "01")])),
    )
    .await;
    wait_for("the retry", || rec.runs().len() == 2).await;
    assert_eq!(rec.runs()[0].actions, rec.runs()[1].actions);
    wait_for("done", || history(&h.db())[0].outcome == "done").await;
    let runs = journal::runs(&h.db()).unwrap();
    let statuses: Vec<_> = runs.iter().rev().map(|r| r.2.as_str()).collect();
    assert_eq!(statuses, ["failed", "successful"]);
    relay.shutdown().await;
}

#[tokio::test]
async fn retries_stop_after_the_configured_attempts() {
    let h = Harness::new("");
    let mut cfg = h.config.clone();
    cfg.retry.attempts = 1;
    cfg.retry.delay_ms = 50;
    let rec = Arc::new(Recorder::default());
    rec.fail_next
        .store(100, std::sync::atomic::Ordering::SeqCst);
    let relay = Relay::start(&cfg, rec.clone()).unwrap();
    send(
        &relay,
        am_request(alert_body("firing", &[("BackendCpuHigh", "s1", "01")])),
    )
    .await;
    // The journal gives up on the decision (no retry left) when it records the retry's failure.
    wait_for("the decision to fail", || {
        history(&h.db())[0].outcome == "failed"
    })
    .await;
    rec.fail_next.store(0, std::sync::atomic::Ordering::SeqCst);
    sentinel_run(&relay, &rec).await;
    assert_eq!(
        servers_run(&rec),
        ["s1", "s1", "sentinel"],
        "one try and one retry, no more"
    );
    relay.shutdown().await;
}

/// Sends one firing BackendCpuHigh for `server` (backend `be`) and returns its decision once it
/// is no longer pending.
async fn fire_and_settle(
    relay: &Relay,
    db: &Path,
    server: &str,
    fingerprint: &str,
) -> journal::HistoryRow {
    let body = alert_body("firing", &[("BackendCpuHigh", server, fingerprint)]);
    send(relay, am_request(body)).await;
    let target = format!("be/{server}");
    let decision = || {
        history(db)
            .into_iter()
            .find(|r| r.target.as_deref() == Some(target.as_str()))
    };
    wait_for(&format!("{server} settled"), || {
        decision().is_some_and(|r| r.outcome != "pending")
    })
    .await;
    decision().unwrap()
}

#[tokio::test]
async fn a_failed_restore_still_counts_against_the_budget() {
    let h = Harness::new("");
    let mut cfg = h.config.clone();
    cfg.guard.max_out_per_backend = 1;
    cfg.retry.attempts = 0;
    let rec = Arc::new(Recorder::default());
    let relay = Relay::start(&cfg, rec.clone()).unwrap();
    send(
        &relay,
        am_request(alert_body("firing", &[("BackendCpuHigh", "s1", "01")])),
    )
    .await;
    wait_for("the drain", || rec.runs().len() == 1).await;
    rec.fail_next.store(1, std::sync::atomic::Ordering::SeqCst);
    send(
        &relay,
        am_request(alert_body("resolved", &[("BackendCpuHigh", "s1", "01")])),
    )
    .await;
    wait_for("the failed restore", || {
        history(&h.db())
            .iter()
            .any(|r| r.state.as_deref() == Some("enabled") && r.outcome == "failed")
    })
    .await;
    let s2 = fire_and_settle(&relay, &h.db(), "s2", "02").await;
    assert_eq!(s2.outcome, "refused", "{s2:?}");
    assert!(s2.detail.unwrap().contains("budget"));
    relay.shutdown().await;
    // The same holds after a restart: the journal remembers the target's state as unknown.
    let relay = Relay::start(&cfg, rec.clone()).unwrap();
    let s3 = fire_and_settle(&relay, &h.db(), "s3", "03").await;
    assert_eq!(s3.outcome, "refused", "{s3:?}");
    relay.shutdown().await;
}

#[tokio::test]
async fn pruning_removes_finished_history_and_keeps_unfinished_work() {
    let (h, _rec, relay) = Harness::started("");
    send(
        &relay,
        am_request(alert_body("firing", &[("BackendCpuHigh", "s1", "01")])),
    )
    .await;
    wait_for("s1 done", || {
        history(&h.db())
            .first()
            .is_some_and(|r| r.outcome == "done")
    })
    .await;
    relay.state().pause().set(true);
    send(
        &relay,
        am_request(alert_body("firing", &[("BackendCpuHigh", "s2", "02")])),
    )
    .await;
    relay.shutdown().await;
    let conn = rusqlite::Connection::open(h.db()).unwrap();
    let far_future = autoheal_relay::model::now_ms() + 1_000_000;
    let deleted = journal::prune(&conn, far_future).unwrap();
    assert_eq!(deleted, 3, "s1's decision, its event and its run");
    let rows = history(&h.db());
    assert_eq!(rows.len(), 1);
    assert_eq!(
        (rows[0].target.as_deref(), rows[0].outcome.as_str()),
        (Some("be/s2"), "pending")
    );
    // The pending decision still runs after a restart.
    let rec = Arc::new(Recorder::default());
    let relay = h.start(&rec);
    wait_for("s2 run", || rec.runs().len() == 1).await;
    relay.shutdown().await;
}

#[tokio::test]
async fn requests_over_the_concurrency_limit_get_503_at_once() {
    let h = Harness::new("");
    let mut cfg = h.config.clone();
    cfg.server.max_concurrent_requests = 1;
    let rec = Arc::new(Recorder::default());
    let relay = Relay::start(&cfg, rec.clone()).unwrap();
    let router = app(relay.state());
    // A sender that never finishes its body holds the only slot.
    let stuck = am_post()
        .body(Body::from_stream(futures_util::stream::pending::<
            Result<axum::body::Bytes, std::io::Error>,
        >()))
        .unwrap();
    let holder = tokio::spawn(router.clone().oneshot(stuck));
    tokio::time::sleep(Duration::from_millis(100)).await;
    let body = fixture("alertmanager/firing.json");
    let response = router
        .clone()
        .oneshot(am_request(body.clone()))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    holder.abort();
    let _ = holder.await;
    let response = router.clone().oneshot(am_request(body)).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    relay.shutdown().await;
}

#[tokio::test]
async fn a_commit_stalled_past_the_request_timeout_is_503_and_the_retry_is_acted_on() {
    let h = Harness::new("");
    let mut cfg = h.config.clone();
    cfg.server.request_timeout_ms = 300;
    let rec = Arc::new(Recorder::default());
    let relay = Relay::start(&cfg, rec.clone()).unwrap();
    // Another writer holds the database's write lock: the journal's commit waits on it (SQLite's
    // busy timeout), past the request timeout.
    let blocker = rusqlite::Connection::open(h.db()).unwrap();
    blocker.execute_batch("BEGIN IMMEDIATE").unwrap();
    let body = alert_body("firing", &[("BackendCpuHigh", "s1", "01")]);
    let (status, json) = send(&relay, am_request(body.clone())).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{json}");
    assert!(json["error"].as_str().unwrap().contains("retry"), "{json}");
    blocker.execute_batch("ROLLBACK").unwrap();
    // Alertmanager retries a 5xx: the retry is accepted and the action is carried out once.
    let (status, json) = send(&relay, am_request(body)).await;
    assert_eq!(status, StatusCode::OK, "{json}");
    sentinel_run(&relay, &rec).await;
    assert_eq!(
        servers_run(&rec),
        ["s1", "sentinel"],
        "s1 acted on once, not twice"
    );
    relay.shutdown().await;
}

#[tokio::test]
async fn the_concurrency_limit_is_one_for_all_routes() {
    let h = Harness::new("");
    let mut cfg = h.config.clone();
    cfg.server.max_concurrent_requests = 1;
    let rec = Arc::new(Recorder::default());
    let relay = Relay::start(&cfg, rec.clone()).unwrap();
    let router = app(relay.state());
    let stuck = am_post()
        .body(Body::from_stream(futures_util::stream::pending::<
            Result<axum::body::Bytes, std::io::Error>,
        >()))
        .unwrap();
    let holder = tokio::spawn(router.clone().oneshot(stuck));
    tokio::time::sleep(Duration::from_millis(100)).await;
    // The slot held on one route is the slot of every route.
    let response = router
        .clone()
        .oneshot(post("/hooks/grafana").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    holder.abort();
    let _ = holder.await;
    relay.shutdown().await;
}

#[tokio::test]
async fn a_second_relay_on_the_same_journal_is_refused_and_the_journal_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let (h, rec, relay) = Harness::started("");
    let mode = std::fs::metadata(h.db()).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "journal mode {mode:o}");
    let err = Relay::start(&h.config, rec.clone())
        .unwrap_err()
        .to_string();
    assert!(err.contains("in use by another autoheal-relay"), "{err}");
    assert!(err.contains("journal.db"), "{err}");
    // Stopping releases the lock.
    relay.shutdown().await;
    let relay = h.start(&rec);
    relay.shutdown().await;
}

#[tokio::test]
async fn a_panicking_executor_fails_its_run_and_frees_the_fleet() {
    let h = Harness::new("");
    let mut cfg = h.config.clone();
    cfg.retry.attempts = 0;
    let rec = Arc::new(Recorder::default());
    rec.panic_next
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let relay = Relay::start(&cfg, rec.clone()).unwrap();
    send(
        &relay,
        am_request(alert_body("firing", &[("BackendCpuHigh", "s1", "01")])),
    )
    .await;
    wait_for("the failed run", || {
        history(&h.db())
            .first()
            .is_some_and(|r| r.outcome == "failed")
    })
    .await;
    let conn = rusqlite::Connection::open(h.db()).unwrap();
    let (status, detail): (String, String) = conn
        .query_row("SELECT status, detail FROM runs", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert_eq!(status, "error");
    assert!(detail.contains("boom in the executor"), "{detail}");
    let (_, metrics) = send(
        &relay,
        Request::get("/metrics").body(Body::empty()).unwrap(),
    )
    .await;
    assert!(
        metrics
            .as_str()
            .unwrap()
            .contains("autoheal_relay_runs_panicked_total 1"),
        "{metrics}"
    );
    // The fleet is free for the next run.
    send(
        &relay,
        am_request(alert_body("firing", &[("BackendCpuHigh", "s2", "02")])),
    )
    .await;
    wait_for("the next run", || rec.runs().len() == 2).await;
    wait_for("s2 done", || history(&h.db())[0].outcome == "done").await;
    relay.shutdown().await;
}

#[tokio::test]
async fn a_retry_waiting_at_a_restart_is_resumed_with_the_attempts_it_has_used() {
    for fails_again in [false, true] {
        let h = Harness::new("");
        let mut cfg = h.config.clone();
        cfg.retry.attempts = 1;
        cfg.retry.delay_ms = 500;
        let rec = Arc::new(Recorder::default());
        rec.fail_next.store(1, std::sync::atomic::Ordering::SeqCst);
        let relay = Relay::start(&cfg, rec.clone()).unwrap();
        send(
            &relay,
            am_request(alert_body("firing", &[("BackendCpuHigh", "s1", "01")])),
        )
        .await;
        wait_for("the retry to be scheduled", || {
            history(&h.db())
                .first()
                .is_some_and(|r| r.outcome == "retrying")
        })
        .await;
        relay.shutdown().await;
        assert_eq!(rec.runs().len(), 1, "stopped before the retry was due");

        let after = Arc::new(Recorder::default());
        after.fail_next.store(
            usize::from(fails_again),
            std::sync::atomic::Ordering::SeqCst,
        );
        let relay = Relay::start(&cfg, after.clone()).unwrap();
        wait_for("the resumed retry", || after.runs().len() == 1).await;
        assert_eq!(after.runs()[0].actions, rec.runs()[0].actions);
        let expected = if fails_again { "failed" } else { "done" };
        wait_for(expected, || history(&h.db())[0].outcome == expected).await;
        // The retry used the last attempt: there is no other.
        tokio::time::sleep(Duration::from_millis(700)).await;
        assert_eq!(after.runs().len(), 1);
        relay.shutdown().await;
    }
}

/// A tmpfs of `size` mounted on `dir` for the life of the value (the test runs as root, as CI
/// does; it fails rather than skips when it cannot mount).
struct SmallFilesystem {
    dir: PathBuf,
}

impl SmallFilesystem {
    fn mount(dir: PathBuf, size: &str) -> Self {
        std::fs::create_dir_all(&dir).unwrap();
        let out = std::process::Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(&dir)
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "this test mounts a small tmpfs and needs root: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Self { dir }
    }
}

impl Drop for SmallFilesystem {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.dir)
            .status();
    }
}

#[tokio::test]
async fn a_full_disk_gets_503s_readyz_says_why_and_nothing_acknowledged_is_lost() {
    use std::io::Write;
    let h = Harness::new("");
    let fs = SmallFilesystem::mount(h.dir.join("small"), "1m");
    let mut cfg = h.config.clone();
    cfg.journal.path = fs.dir.join("journal.db");
    let rec = Arc::new(Recorder::default());
    let relay = Relay::start(&cfg, rec.clone()).unwrap();
    let post = |n: usize| {
        let fingerprint = format!("{n:04}");
        am_request(alert_body(
            "firing",
            &[("BackendCpuHigh", &format!("s{n}"), &fingerprint)],
        ))
    };
    let mut acknowledged = Vec::new();
    for n in 0..5 {
        let (status, json) = send(&relay, post(n)).await;
        assert_eq!(status, StatusCode::OK, "{json}");
        acknowledged.push(n);
    }
    // Fill the filesystem.
    let mut filler = std::fs::File::create(fs.dir.join("filler")).unwrap();
    while filler.write_all(&[0u8; 4096]).is_ok() {}
    let _ = filler.sync_all();
    // Alerts go on arriving: each is either committed (200) or refused with a 503, never a 4xx;
    // the journal's free pages run out within a few hundred.
    let mut refused = Vec::new();
    for n in 5..1000 {
        let (status, json) = send(&relay, post(n)).await;
        match status {
            StatusCode::OK => acknowledged.push(n),
            StatusCode::SERVICE_UNAVAILABLE => refused.push(n),
            other => panic!("{other}: {json}"),
        }
        if refused.len() == 20 {
            break;
        }
    }
    assert_eq!(refused.len(), 20, "the full disk never refused a commit");
    let (status, why) = send(&relay, Request::get("/readyz").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(why.as_str().unwrap().contains("full"), "{why}");

    // Space is back: the senders' retries are accepted and the relay is ready again.
    drop(filler);
    std::fs::remove_file(fs.dir.join("filler")).unwrap();
    for n in refused {
        let (status, json) = send(&relay, post(n)).await;
        assert_eq!(status, StatusCode::OK, "{json}");
        acknowledged.push(n);
    }
    let (status, _) = send(&relay, Request::get("/readyz").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    relay.shutdown().await;

    let conn = rusqlite::Connection::open(&cfg.journal.path).unwrap();
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    for n in acknowledged {
        let stored: i64 = conn
            .query_row(
                "SELECT count(*) FROM events e JOIN decisions d ON d.event_id = e.id WHERE e.fingerprint = ?1",
                [format!("{n:04}")],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(
            stored, 1,
            "acknowledged alert {n} is missing from the journal"
        );
    }
}

#[tokio::test]
async fn a_grafana_request_without_signature_is_refused_before_its_body_and_a_replay_is_refused_after_a_restart_too(
) {
    let h = Harness::new("");
    let rec = Arc::new(Recorder::default());
    let relay = h.start(&rec);
    // A body that never ends: refused at once, not after the request timeout.
    let unsigned = post("/hooks/grafana")
        .header(header::CONTENT_TYPE, "application/json")
        .header("X-Grafana-Alerting-Signature-Timestamp", "1")
        .body(Body::from_stream(futures_util::stream::pending::<
            Result<axum::body::Bytes, std::io::Error>,
        >()))
        .unwrap();
    let started = Instant::now();
    assert_eq!(send(&relay, unsigned).await.0, StatusCode::UNAUTHORIZED);
    assert!(started.elapsed() < Duration::from_secs(1));

    let body = serde_json::to_vec(&serde_json::json!({
        "receiver": "relay", "status": "firing", "orgId": 1, "version": "1", "state": "alerting",
        "alerts": [{"status": "firing", "labels": {"alertname": "High memory usage", "server": "web2"},
                    "startsAt": "2026-01-01T00:00:00Z", "fingerprint": "c6eadffa33fcdf37"}]
    }))
    .unwrap();
    let now = (autoheal_relay::model::now_ms() / 1000).to_string();
    let mut message = format!("{now}:").into_bytes();
    message.extend_from_slice(&body);
    let signature = autoheal_relay::auth::sign(b"grafana-secret", &message);
    let signed = || {
        post("/hooks/grafana")
            .header(header::CONTENT_TYPE, "application/json")
            .header("X-Grafana-Alerting-Signature-Timestamp", now.as_str())
            .header("X-Grafana-Alerting-Signature", signature.as_str())
            .body(Body::from(body.clone()))
            .unwrap()
    };
    // The timestamp is required by default: the same signature without it is refused.
    let untimed = post("/hooks/grafana")
        .header(header::CONTENT_TYPE, "application/json")
        .header("X-Grafana-Alerting-Signature", signature.as_str())
        .body(Body::from(body.clone()))
        .unwrap();
    assert_eq!(send(&relay, untimed).await.0, StatusCode::UNAUTHORIZED);
    let (status, json) = send(&relay, signed()).await;
    assert_eq!(status, StatusCode::OK, "{json}");
    let (status, json) = send(&relay, signed()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "a replay: {json}");
    assert!(
        json["error"].as_str().unwrap().contains("already used"),
        "{json}"
    );
    relay.shutdown().await;

    // Restarted on the same journal, within the skew window: still a replay.
    let relay = h.start(&rec);
    let (status, json) = send(&relay, signed()).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "a replay after a restart: {json}"
    );
    assert!(
        json["error"].as_str().unwrap().contains("already used"),
        "{json}"
    );
    relay.shutdown().await;
}

#[tokio::test]
async fn a_pause_file_that_cannot_be_looked_at_holds_actions() {
    let h = Harness::new("");
    let mut cfg = h.config.clone();
    // A symbolic link to itself: stat fails with "too many levels of symbolic links".
    let flag = h.dir.join("PAUSE");
    std::os::unix::fs::symlink(&flag, &flag).unwrap();
    cfg.guard.pause_file = Some(flag.clone());
    let rec = Arc::new(Recorder::default());
    let relay = Relay::start(&cfg, rec.clone()).unwrap();
    assert!(relay.state().pause().is_paused());
    send(
        &relay,
        am_request(alert_body("firing", &[("BackendCpuHigh", "s1", "01")])),
    )
    .await;
    held_by_the_pause(&relay).await;
    assert!(rec.runs().is_empty(), "cannot tell: held");
    std::fs::remove_file(&flag).unwrap();
    wait_for("the held run", || rec.runs().len() == 1).await;
    relay.shutdown().await;
}

#[tokio::test]
async fn pruning_forgets_targets_back_in_service_and_ignored_alerts_keep_no_labels() {
    let (h, _rec, relay) = Harness::started("");
    for (status, server, fingerprint) in [
        ("firing", "s1", "01"),
        ("resolved", "s1", "01"),
        ("firing", "s2", "02"),
    ] {
        send(
            &relay,
            am_request(alert_body(
                status,
                &[("BackendCpuHigh", server, fingerprint)],
            )),
        )
        .await;
        wait_for("settled", || {
            history(&h.db())
                .first()
                .is_some_and(|r| r.outcome == "done")
        })
        .await;
    }
    let (_, json) = send(
        &relay,
        am_request(alert_body("firing", &[("NobodyCares", "s3", "03")])),
    )
    .await;
    assert_eq!(json["ignored"], 1, "{json}");
    relay.shutdown().await;

    let conn = rusqlite::Connection::open(h.db()).unwrap();
    let labels: Vec<(String, String)> = conn
        .prepare("SELECT alertname, labels FROM events ORDER BY id")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(labels[0].1.contains("\"server\":\"s1\""), "{labels:?}");
    assert_eq!(labels[3], ("NobodyCares".to_owned(), "{}".to_owned()));

    let count = |table: &str| -> i64 {
        conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
            .unwrap()
    };
    assert_eq!(count("targets"), 2);
    let far_future = autoheal_relay::model::now_ms() + 1_000_000;
    journal::prune(&conn, far_future).unwrap();
    let targets: Vec<(String, String)> = conn
        .prepare("SELECT key, state FROM targets")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        targets,
        [("be/s2".to_owned(), "drain".to_owned())],
        "s1 is back in service; s2 is still out and must stay counted"
    );
}
