//! The `autoheal-relay` binary: check-config, replay, history and release.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

use autoheal_relay::config::Config;
use autoheal_relay::executor::DryRun;
use autoheal_relay::{app, Relay};
use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use tower::ServiceExt;

fn relay(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_autoheal-relay"))
        .args(args)
        .output()
        .unwrap()
}

fn text(out: &[u8]) -> String {
    String::from_utf8_lossy(out).into_owned()
}

/// One of the project's own payloads (tests/fixtures/payloads).
fn fixture(rel: &str) -> PathBuf {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/payloads")
        .join(rel);
    assert!(path.is_file(), "fixture {} is missing", path.display());
    path
}

const CONFIG: &str = r#"
[auth]
bearer_token_file = "token"

[journal]
path = "journal.db"

[[rules]]
name = "drain-on-cpu"
match = { alertname = "BackendCpuHigh" }
action = "drain"
restore_delay_secs = 60

[executor]
kind = "dry-run"
"#;

fn setup(config: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "t0ken\n").unwrap();
    std::fs::set_permissions(
        &token,
        <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o600),
    )
    .unwrap();
    let file = dir.path().join("relay.toml");
    std::fs::write(&file, config).unwrap();
    (dir, file)
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn check_config_accepts_a_good_file_and_names_what_is_wrong_otherwise() {
    let (dir, file) = setup(CONFIG);
    let out = relay(&["check-config", s(&file)]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("ok (1 rule(s), executor dry-run, auth on)"),
        "{}",
        text(&out.stdout)
    );

    let broken = dir.path().join("broken.toml");
    std::fs::write(
        &broken,
        CONFIG.replace("action = \"drain\"", "action = \"reboot\""),
    )
    .unwrap();
    let out = relay(&["check-config", s(&broken)]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("line 11") && err.contains("reboot"), "{err}");

    std::fs::remove_file(dir.path().join("token")).unwrap();
    let out = relay(&["check-config", s(&file)]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("token"), "{}", text(&out.stderr));
}

#[test]
fn replay_prints_the_decisions_and_the_actions() {
    let (_dir, file) = setup(CONFIG);
    let payload = fixture("alertmanager/firing.json");
    let out = relay(&["replay", "--config", s(&file), s(&payload)]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout
            .contains("firing BackendCpuHigh [7c1e5a90d24b3f68]: rule drain-on-cpu -> drain be/s1"),
        "{stdout}"
    );
    assert!(stdout.contains("\"state\": \"drain\""), "{stdout}");

    let resolved = fixture("alertmanager/resolved.json");
    let stdout = text(&relay(&["replay", "--config", s(&file), s(&resolved)]).stdout);
    assert!(stdout.contains("-> enabled be/s1 after 60s"), "{stdout}");

    let custom = fixture("grafana/custom-template-records.json");
    let out = relay(&[
        "replay",
        "--config",
        s(&file),
        "--source",
        "grafana",
        s(&custom),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("not a usable payload"),
        "{}",
        text(&out.stderr)
    );
}

#[tokio::test]
async fn history_shows_what_the_relay_journaled() {
    let (dir, file) = setup(CONFIG);
    let config = Config::load(&file).unwrap();
    let relay_handle = Relay::start(&config, Arc::new(DryRun)).unwrap();
    let body = std::fs::read(fixture("alertmanager/firing.json")).unwrap();
    let request = Request::post("/hooks/alertmanager")
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::AUTHORIZATION, "Bearer t0ken")
        .body(Body::from(body))
        .unwrap();
    let response = app(relay_handle.state()).oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let db = dir.path().join("journal.db");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let rows = autoheal_relay::journal::history(&db, 10).unwrap();
        if rows.first().is_some_and(|r| r.outcome == "done") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the dry run never finished: {rows:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    relay_handle.shutdown().await;

    let out = relay(&["history", "--config", s(&file), "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rows[0]["target"], "be/s1");
    assert_eq!(rows[0]["state"], "drain");
    assert_eq!(rows[0]["outcome"], "done");
    assert_eq!(rows[0]["run_status"], "successful");
    assert_eq!(rows[0]["alert"], "BackendCpuHigh");

    let out = relay(&["history", "--db", s(&db)]);
    let table = text(&out.stdout);
    assert!(
        table.lines().next().unwrap().starts_with("    ID"),
        "{table}"
    );
    assert!(
        table.contains("be/s1") && table.contains("done") && table.contains("successful"),
        "{table}"
    );

    let out = relay(&["history", "--db", s(&dir.path().join("nope.db"))]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("no journal"),
        "{}",
        text(&out.stderr)
    );
}

#[tokio::test]
async fn serve_refuses_a_journal_another_relay_holds() {
    let config = format!("[server]\nlisten = \"127.0.0.1:0\"\n{CONFIG}");
    let (_dir, file) = setup(&config);
    let cfg = Config::load(&file).unwrap();
    let first = Relay::start(&cfg, Arc::new(DryRun)).unwrap();
    let out = relay(&["serve", "--config", file.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("journal.db is in use by another autoheal-relay"),
        "{err}"
    );
    first.shutdown().await;
}

/// The result the relay recorded for release request `id`, once applied.
fn release_result(db: &Path, id: i64) -> Option<String> {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.query_row(
        "SELECT result FROM lifecycle_releases WHERE id = ?1",
        [id],
        |r| r.get::<_, Option<String>>(0),
    )
    .unwrap()
}

#[tokio::test]
async fn release_is_recorded_while_the_relay_is_stopped_and_applied_when_it_starts() {
    // The first remediation quarantines: the firing fixture's server is held out.
    let config = format!("{CONFIG}\n[lifecycle]\nquarantine_after = 1\n");
    let (dir, file) = setup(&config);
    let db = dir.path().join("journal.db");
    let cfg = Config::load(&file).unwrap();
    let relay_handle = Relay::start(&cfg, Arc::new(DryRun)).unwrap();
    let request = Request::post("/hooks/alertmanager")
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::AUTHORIZATION, "Bearer t0ken")
        .body(Body::from(
            std::fs::read(fixture("alertmanager/firing.json")).unwrap(),
        ))
        .unwrap();
    let response = app(relay_handle.state()).oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while autoheal_relay::journal::history(&db, 10)
        .unwrap()
        .first()
        .is_none_or(|r| r.outcome != "done")
    {
        assert!(std::time::Instant::now() < deadline, "the drain never ran");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    relay_handle.shutdown().await;

    let bad = relay(&["release", "--config", s(&file), "be/s1;reboot"]);
    assert!(!bad.status.success());
    assert!(
        text(&bad.stderr).contains("server \"s1;reboot\": character ';' not allowed"),
        "{}",
        text(&bad.stderr)
    );
    let out = relay(&["release", "--config", s(&file), "be/s1"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("be/s1: release recorded (request 1)"),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(
        release_result(&db, 1),
        None,
        "nothing applies it while stopped"
    );

    let relay_handle = Relay::start(&cfg, Arc::new(DryRun)).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while release_result(&db, 1).is_none() {
        assert!(
            std::time::Instant::now() < deadline,
            "the release was never applied"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(release_result(&db, 1).as_deref(), Some("restore"));
    relay_handle.shutdown().await;
}
