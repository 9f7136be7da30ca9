//! What each `autoheal-relay` subcommand does (the binary parses the arguments).
//!
//! Each subcommand returns the text it wants printed (or, for `serve`, runs until a signal), so
//! the binary only parses, prints and picks the exit code, and the output is testable here.

use std::path::{Path, PathBuf};

use crate::auth::{AuthError, Authenticator};
use crate::config::{Config, ConfigError, ExecutorConfig, LogFormat};
use crate::decide::decide;
use crate::journal::{self, HistoryRow, JournalError};
use crate::model::{now_ms, Action, Decision, Source};
use crate::payload::{self, ParseError};
use crate::relay::{executor_from_config, StartError};
use crate::server::ServeError;

/// Why a subcommand failed.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// The configuration file is unusable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A secret file named by the configuration is unusable.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// Neither a configuration file nor a database was given to `history`.
    #[error("give --config or --db")]
    NoJournalGiven,
    /// The journal database does not exist.
    #[error("no journal at {}", .0.display())]
    NoJournal(PathBuf),
    /// The journal could not be read.
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// `release` was not given a `BACKEND/SERVER`.
    #[error("release: {0}")]
    ReleaseTarget(String),
    /// The life-cycle tables could not be written.
    #[error(transparent)]
    Lifecycle(#[from] crate::lifecycle::store::StoreError),
    /// The payload file could not be read.
    #[error("reading {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The payload file is not a webhook body the relay understands.
    #[error("{} is not a usable payload", path.display())]
    Payload {
        /// The file.
        path: PathBuf,
        /// The parser's error.
        #[source]
        source: ParseError,
    },
    /// `log.level` is not a valid `tracing` filter.
    #[error("log.level {level:?}")]
    LogLevel {
        /// The configured filter.
        level: String,
        /// The filter parser's error.
        #[source]
        source: tracing_subscriber::filter::ParseError,
    },
    /// The async runtime could not start.
    #[error("starting the async runtime")]
    Runtime(#[source] std::io::Error),
    /// The relay could not start.
    #[error(transparent)]
    Start(#[from] StartError),
    /// Serving failed.
    #[error(transparent)]
    Serve(#[from] ServeError),
    /// Output could not be encoded as JSON.
    #[error("encoding JSON: {0}")]
    Json(#[from] serde_json::Error),
}

/// What `check-config` found in a usable file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckReport {
    /// Problems `serve` would only hit at run time (see [`environment_warnings`]).
    pub warnings: Vec<String>,
    /// One line: the file, rule count, executor and whether authentication is on.
    pub summary: String,
}

/// Loads `path` and its secret files; errors when the relay could not start with them.
pub fn check_config(path: &Path) -> Result<CheckReport, CommandError> {
    let cfg = Config::load(path)?;
    Authenticator::load(&cfg.auth)?;
    let summary = format!(
        "{}: ok ({} rule(s), executor {}, auth {})",
        path.display(),
        cfg.rules.len(),
        executor_kind(&cfg),
        if cfg.auth.allow_unauthenticated {
            "DISABLED"
        } else {
            "on"
        }
    );
    Ok(CheckReport {
        warnings: environment_warnings(&cfg),
        summary,
    })
}

/// Things `serve` would trip over later (a run fails rather than the start), said up front.
pub fn environment_warnings(cfg: &Config) -> Vec<String> {
    let mut warnings = Vec::new();
    match &cfg.executor {
        ExecutorConfig::AnsibleRunner(r) if !cfg.guard.dry_run => {
            let on_path = |name: &Path| {
                std::env::var_os("PATH")
                    .is_some_and(|p| std::env::split_paths(&p).any(|dir| dir.join(name).is_file()))
            };
            if !(r.binary.is_file() || (r.binary.components().count() == 1 && on_path(&r.binary))) {
                warnings.push(format!("executor.binary {} not found", r.binary.display()));
            }
            if let Err(why) = crate::executor::ansible_runner::resident_python(r) {
                warnings.push(why.to_string());
            }
            if !r.inventory.exists() {
                warnings.push(format!(
                    "executor.inventory {} does not exist",
                    r.inventory.display()
                ));
            }
            if !r.env.contains_key("ANSIBLE_COLLECTIONS_PATH")
                && std::env::var_os("ANSIBLE_COLLECTIONS_PATH").is_none()
            {
                warnings.push("ANSIBLE_COLLECTIONS_PATH is set neither in executor.env nor in the environment".into());
            }
        }
        ExecutorConfig::Awx(a) if !a.token_file.is_file() => {
            warnings.push(format!(
                "executor.token_file {} not found",
                a.token_file.display()
            ));
        }
        _ => {}
    }
    if let Some(pause) = &cfg.guard.pause_file {
        if pause.starts_with("/tmp") || pause.starts_with("/var/tmp") {
            warnings.push(format!(
                "guard.pause_file {} is under /tmp or /var/tmp: the relay's unit has PrivateTmp=yes, so it \
                 sees its own private /tmp and a file an operator creates there does not pause it; \
                 use a directory such as /run/autoheal or /var/lib/autoheal-relay",
                pause.display()
            ));
        }
    }
    warnings
}

fn executor_kind(cfg: &Config) -> &'static str {
    if cfg.guard.dry_run {
        return "dry-run (guard.dry_run)";
    }
    match cfg.executor {
        ExecutorConfig::AnsibleRunner(_) => "ansible-runner",
        ExecutorConfig::Awx(_) => "awx",
        ExecutorConfig::DryRun => "dry-run",
    }
}

/// The journal `history` reads: `db` when given, else the one `config` names.
pub fn journal_path(db: Option<&Path>, config: Option<&Path>) -> Result<PathBuf, CommandError> {
    match (db, config) {
        (Some(db), _) => Ok(db.to_owned()),
        (None, Some(config)) => Ok(Config::load(config)?.journal.path),
        (None, None) => Err(CommandError::NoJournalGiven),
    }
}

/// How long `release` waits for a running relay to apply the request.
const RELEASE_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

/// Records an operator's release of `target` in the journal of the relay configured by
/// `config`, and says what the relay did with it (a stopped relay applies it when it starts).
pub fn release(config: &Path, target: &str) -> Result<String, CommandError> {
    use crate::lifecycle::store;
    let key = store::release_key(target).map_err(CommandError::ReleaseTarget)?;
    let db = Config::load(config)?.journal.path;
    if !db.exists() {
        return Err(CommandError::NoJournal(db));
    }
    let conn = store::open(&db)?;
    let by = std::env::var("SUDO_USER")
        .or_else(|_| std::env::var("USER"))
        .unwrap_or_else(|_| "release command".to_owned());
    let id = store::request_release(&conn, &key, &by, crate::model::now_ms())?;
    let deadline = std::time::Instant::now() + RELEASE_WAIT;
    loop {
        if let Some(result) = store::release_result(&conn, id)? {
            return Ok(match result.as_str() {
                "restore" => format!("{key}: released; the relay restores it (through the health gate)"),
                "cleared" => format!("{key}: released; no longer counted out"),
                _ => format!("{key}: nothing held it (not quarantined, given up, unknown or an operator's); nothing changed"),
            });
        }
        if std::time::Instant::now() >= deadline {
            return Ok(format!(
                "{key}: release recorded (request {id}); the relay applies it when it runs"
            ));
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// How `history` prints its rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HistoryFormat {
    /// Aligned columns, oldest row first.
    Table,
    /// The rows as a JSON array, newest first.
    Json,
}

/// The `limit` most recent decisions of the journal at `db`, rendered in `format`.
pub fn history(db: &Path, limit: usize, format: HistoryFormat) -> Result<String, CommandError> {
    // Opening a missing database read-only fails with a bare SQLite message; say it plainly.
    if !db.exists() {
        return Err(CommandError::NoJournal(db.to_owned()));
    }
    let rows = journal::history(db, limit)?;
    Ok(match format {
        HistoryFormat::Json => format!("{}\n", serde_json::to_string_pretty(&rows)?),
        HistoryFormat::Table => history_table(&rows),
    })
}

/// Renders rows (given newest first, as the journal returns them) as a table, oldest first.
pub fn history_table(rows: &[HistoryRow]) -> String {
    let mut out = format!(
        "{:>6}  {:<24} {:<28} {:<9} {:<10} {:<24} {:<10} {:<22} DETAIL\n",
        "ID", "DECIDED (UTC)", "ALERT", "STATUS", "OUTCOME", "TARGET", "STATE", "RUN"
    );
    for r in rows.iter().rev() {
        let run = match (r.run_id, &r.run_status) {
            (Some(id), Some(status)) => {
                let rc = r.run_rc.map(|c| format!(" rc={c}")).unwrap_or_default();
                let ms = r
                    .run_duration_ms
                    .map(|d| format!(" {d}ms"))
                    .unwrap_or_default();
                format!("#{id} {status}{rc}{ms}")
            }
            _ => "-".into(),
        };
        out.push_str(&format!(
            "{:>6}  {:<24} {:<28} {:<9} {:<10} {:<24} {:<10} {:<22} {}\n",
            r.id,
            format_ms(r.decided_ms),
            printable(&r.alert),
            printable(&r.alert_status),
            r.outcome,
            printable(r.target.as_deref().unwrap_or("-")),
            r.state.as_deref().unwrap_or("-"),
            run,
            printable(r.detail.as_deref().unwrap_or(""))
        ));
    }
    out
}

/// `text` with its control characters escaped (`\u{1b}`): an alert name comes from outside and
/// must not move the cursor, clear the screen or forge lines on the operator's terminal.
fn printable(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return text.into();
    }
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_unicode().to_string()
            } else {
                c.to_string()
            }
        })
        .collect::<String>()
        .into()
}

/// Milliseconds since the epoch as UTC `YYYY-MM-DD hh:mm:ss.mmm` (the raw number if out of range).
fn format_ms(ms: i64) -> String {
    let format = time::macros::format_description!(
        "[year]-[month]-[day] [hour]:[minute]:[second].[subsecond digits:3]"
    );
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_else(|| ms.to_string())
}

/// Feeds the payload in `file` through the rules of the configuration at `config`.
pub fn replay(config: &Path, source: Source, file: &Path) -> Result<String, CommandError> {
    let cfg = Config::load(config)?;
    let body = std::fs::read(file).map_err(|source| CommandError::Read {
        path: file.to_owned(),
        source,
    })?;
    replay_payload(&cfg, source, &body, file, now_ms())
}

/// What the rules of `cfg` decide for each alert of `body` at `now_ms`, then the
/// `autoheal_actions` the playbook would get (before coalescing and the guard). `file` only
/// names the payload in the output and in errors.
pub fn replay_payload(
    cfg: &Config,
    source: Source,
    body: &[u8],
    file: &Path,
    now_ms: i64,
) -> Result<String, CommandError> {
    let alerts = payload::parse(source, body).map_err(|source| CommandError::Payload {
        path: file.to_owned(),
        source,
    })?;
    let decisions = decide(&alerts, &cfg.compiled_rules(), &cfg.targets, now_ms);
    let mut out = format!("{} alert(s) in {}\n", alerts.len(), file.display());
    for (alert, decision) in alerts.iter().zip(&decisions) {
        let head = format!(
            "{} {} [{}]",
            alert.status.as_str(),
            alert.name(),
            alert.fingerprint
        );
        let line = match decision {
            Decision::Act(i) => {
                let delay = (i.not_before_ms - now_ms).max(0);
                let weight = i
                    .weight
                    .as_deref()
                    .map(|w| format!(" weight {w}"))
                    .unwrap_or_default();
                let when = if delay > 0 {
                    format!(" after {}s", delay / 1000)
                } else {
                    String::new()
                };
                format!(
                    "  {head}: rule {} -> {} {}{weight}{when} (fleet {})",
                    i.rule,
                    i.state.as_str(),
                    i.target,
                    i.fleet
                )
            }
            Decision::Rejected { rule, field, error } => {
                format!("  {head}: rule {rule} -> REJECTED, label {field}: {error}")
            }
            Decision::Ignored { why } => format!("  {head}: nothing ({why})"),
        };
        out.push_str(&line);
        out.push('\n');
    }
    let actions: Vec<Action> = decisions
        .iter()
        .filter_map(|d| match d {
            Decision::Act(i) => Some(i.into()),
            _ => None,
        })
        .collect();
    out.push_str(&format!(
        "autoheal_actions (before coalescing and the guard):\n{}\n",
        serde_json::to_string_pretty(&crate::executor::extra_vars(&actions)["autoheal_actions"])?
    ));
    Ok(out)
}

/// Runs the relay of the configuration at `config` until SIGINT or SIGTERM.
pub fn serve(config: &Path) -> Result<(), CommandError> {
    let cfg = Config::load(config)?;
    init_logging(&cfg)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(CommandError::Runtime)?;
    runtime.block_on(serve_async(cfg))
}

fn init_logging(cfg: &Config) -> Result<(), CommandError> {
    let filter = tracing_subscriber::EnvFilter::try_new(&cfg.log.level).map_err(|source| {
        CommandError::LogLevel {
            level: cfg.log.level.clone(),
            source,
        }
    })?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match cfg.log.format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
    Ok(())
}

async fn serve_async(cfg: Config) -> Result<(), CommandError> {
    let executor = executor_from_config(&cfg)?;
    if cfg.auth.allow_unauthenticated {
        tracing::warn!("authentication is disabled (auth.allow_unauthenticated = true)");
    }
    crate::server::serve(&cfg, executor, shutdown_signal()).await?;
    tracing::info!("stopped");
    Ok(())
}

/// Completes on SIGINT (Ctrl-C) or SIGTERM (systemd's stop).
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(rel: &str) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/payloads")
            .join(rel)
    }

    /// A configuration whose relative paths resolve into `dir`.
    fn config(dir: &Path, text: &str) -> Config {
        Config::parse(text, &dir.join("relay.toml")).unwrap()
    }

    const RULES: &str = r#"
        [auth]
        allow_unauthenticated = true

        [[rules]]
        name = "drain-on-cpu"
        match = { alertname = "BackendCpuHigh" }
        action = "drain"
        restore_delay_secs = 60

        [[rules]]
        name = "drain-on-memory"
        match_re = { alertname = "high_memory_load" }
        action = "drain"

        [executor]
        kind = "dry-run"
    "#;

    /// Replays a fixture payload; returns the per-alert text and the `autoheal_actions` array.
    fn replay_fixture(rel: &str) -> (String, serde_json::Value) {
        let dir = tempfile::tempdir().unwrap();
        let cfg = config(dir.path(), RULES);
        let file = fixture(rel);
        let body = std::fs::read(&file).unwrap();
        let out = replay_payload(&cfg, Source::Alertmanager, &body, &file, 1_000_000).unwrap();
        let (decisions, actions) = out
            .split_once("autoheal_actions (before coalescing and the guard):\n")
            .unwrap_or_else(|| panic!("no actions section in:\n{out}"));
        (decisions.to_owned(), serde_json::from_str(actions).unwrap())
    }

    #[test]
    fn replay_of_a_firing_alert_drains_the_server_its_labels_name() {
        let (decisions, actions) = replay_fixture("alertmanager/firing.json");
        let mut lines = decisions.lines();
        let first = lines.next().unwrap();
        assert!(first.starts_with("1 alert(s) in "), "{decisions}");
        assert!(first.ends_with("alertmanager/firing.json"));
        let decision = lines.next().unwrap();
        assert!(
            decision.starts_with("  firing BackendCpuHigh ["),
            "{decision}"
        );
        assert!(
            decision.contains("rule drain-on-cpu -> drain be/s1"),
            "{decision}"
        );
        assert!(
            !decision.contains(" after "),
            "firing acts at once: {decision}"
        );
        let actions = actions.as_array().unwrap();
        assert_eq!(actions.len(), 1, "{actions:?}");
        assert_eq!(actions[0]["backend"], "be");
        assert_eq!(actions[0]["server"], "s1");
        assert_eq!(actions[0]["state"], "drain");
        assert_eq!(actions[0]["reason"]["alert"], "BackendCpuHigh");
    }

    #[test]
    fn replay_of_a_resolved_alert_restores_after_the_rule_delay() {
        let (decisions, actions) = replay_fixture("alertmanager/resolved.json");
        assert!(
            decisions.contains("resolved BackendCpuHigh")
                && decisions.contains("-> enabled be/s1 after 60s"),
            "{decisions}"
        );
        assert_eq!(actions[0]["state"], "enabled");
    }

    #[test]
    fn replay_names_the_rejected_label_and_produces_no_action() {
        // The alert's only target label is `instance="web-7_internal"`.
        let (decisions, actions) =
            replay_fixture("alertmanager/old-without-status-and-fingerprint.json");
        let line = decisions.lines().nth(1).unwrap();
        assert!(
            line.contains("rule drain-on-memory -> REJECTED, label instance:"),
            "{line}"
        );
        assert_eq!(actions, serde_json::json!([]));
    }

    #[test]
    fn replay_says_when_no_rule_matches() {
        let (decisions, actions) = replay_fixture("alertmanager/no-matching-rule.json");
        assert!(
            decisions.contains("Watchdog") && decisions.contains("nothing (no rule matches)"),
            "{decisions}"
        );
        assert_eq!(actions, serde_json::json!([]));
    }

    #[test]
    fn replay_refuses_a_body_that_is_not_a_webhook_and_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = config(dir.path(), RULES);
        let err = replay_payload(
            &cfg,
            Source::Alertmanager,
            b"[1, 2]",
            Path::new("odd.json"),
            0,
        )
        .unwrap_err();
        assert!(
            matches!(&err, CommandError::Payload { path, .. } if path == Path::new("odd.json")),
            "{err:?}"
        );
    }

    fn row(id: i64, decided_ms: i64, outcome: &str) -> HistoryRow {
        HistoryRow {
            id,
            decided_ms,
            alert: "BackendCpuHigh".into(),
            alert_status: "firing".into(),
            outcome: outcome.into(),
            rule: Some("drain-on-cpu".into()),
            target: Some("be/s1".into()),
            state: Some("drain".into()),
            detail: None,
            run_id: None,
            run_status: None,
            run_rc: None,
            run_duration_ms: None,
        }
    }

    #[test]
    fn history_table_has_a_header_then_rows_oldest_first() {
        // 1_700_000_000 s is 2023-11-14 22:13:20 UTC.
        let run = HistoryRow {
            run_id: Some(3),
            run_status: Some("failed".into()),
            run_rc: Some(2),
            run_duration_ms: Some(1500),
            ..row(8, 1_700_000_000_123, "failed")
        };
        let rejected = HistoryRow {
            target: None,
            state: None,
            detail: Some("label server: no target".into()),
            ..row(7, 0, "rejected")
        };
        let table = history_table(&[run, rejected]);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 3, "{table}");
        let header = lines[0];
        let columns: Vec<&str> = header.split("  ").map(str::trim).collect();
        for column in [
            "ID",
            "DECIDED (UTC)",
            "ALERT",
            "STATUS",
            "OUTCOME",
            "TARGET",
            "STATE",
            "RUN",
            "DETAIL",
        ] {
            assert!(header.contains(column), "{column} missing from {columns:?}");
        }

        let older = lines[1];
        assert!(older.trim_start().starts_with("7 "), "{table}");
        assert!(older.contains("1970-01-01 00:00:00.000"), "{older}");
        assert!(older.contains("rejected"), "{older}");
        // No target, state or run: each shown as "-", not left blank.
        assert_eq!(older.matches(" - ").count(), 3, "{older}");
        assert_eq!(
            older.find("label server: no target"),
            header.find("DETAIL"),
            "detail not under its header:\n{table}"
        );

        let newer = lines[2];
        assert!(newer.trim_start().starts_with("8 "), "{table}");
        assert!(newer.contains("2023-11-14 22:13:20.123"), "{newer}");
        assert!(
            newer.contains("be/s1") && newer.contains("drain"),
            "{newer}"
        );
        assert!(newer.contains("#3 failed rc=2 1500ms"), "{newer}");
        assert_eq!(
            newer.find("#3"),
            header.find("RUN"),
            "run not under its header:\n{table}"
        );
    }

    #[test]
    fn history_table_shows_a_run_without_exit_code_or_duration_yet() {
        let running = HistoryRow {
            run_id: Some(4),
            run_status: Some("running".into()),
            ..row(9, 0, "running")
        };
        let table = history_table(&[running]);
        let line = table.lines().nth(1).unwrap();
        assert!(line.contains("#4 running "), "{line}");
        assert!(!line.contains("rc=") && !line.contains("ms "), "{line}");
    }

    #[test]
    fn history_table_escapes_control_characters_from_alerts() {
        let hostile = HistoryRow {
            alert: "Evil\x1b[2J\rForged\nrow".into(),
            detail: Some("label server: \x07bell".into()),
            ..row(5, 0, "rejected")
        };
        let table = history_table(&[hostile]);
        assert_eq!(table.lines().count(), 2, "{table}");
        assert!(
            !table.chars().any(|c| c.is_control() && c != '\n'),
            "{table:?}"
        );
        assert!(
            table.contains("Evil\\u{1b}[2J\\u{d}Forged\\u{a}row"),
            "{table}"
        );
        assert!(table.contains("\\u{7}bell"), "{table}");
    }

    #[test]
    fn a_pause_file_under_a_private_tmp_is_warned_about() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("relay.toml");
        for (pause, warned) in [
            ("/tmp/autoheal.pause", true),
            ("/var/tmp/p", true),
            ("/run/autoheal/pause", false),
        ] {
            std::fs::write(
                &file,
                format!("[auth]\nallow_unauthenticated = true\n[guard]\npause_file = \"{pause}\"\n[executor]\nkind = \"dry-run\"\n"),
            )
            .unwrap();
            let cfg = Config::load(&file).unwrap();
            let warnings = environment_warnings(&cfg);
            assert_eq!(
                warnings.iter().any(|w| w.contains("PrivateTmp")),
                warned,
                "{pause}: {warnings:?}"
            );
        }
    }

    #[test]
    fn timestamps_out_of_range_are_shown_as_the_raw_number() {
        assert_eq!(format_ms(i64::MAX), i64::MAX.to_string());
    }

    #[test]
    fn history_says_plainly_that_a_journal_is_missing() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("journal.db");
        let err = history(&missing, 10, HistoryFormat::Table).unwrap_err();
        assert!(
            matches!(&err, CommandError::NoJournal(p) if *p == missing),
            "{err:?}"
        );
        assert!(!missing.exists(), "history must not create the journal");
    }

    #[test]
    fn journal_path_prefers_db_and_otherwise_reads_the_config() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("relay.toml");
        std::fs::write(
            &file,
            "[auth]\nallow_unauthenticated = true\n[journal]\npath = \"j.db\"\n[executor]\nkind = \"dry-run\"\n",
        )
        .unwrap();
        let db = Path::new("/elsewhere/other.db");
        assert_eq!(journal_path(Some(db), Some(&file)).unwrap(), db);
        assert_eq!(
            journal_path(None, Some(&file)).unwrap(),
            dir.path().join("j.db")
        );
        assert!(matches!(
            journal_path(None, None),
            Err(CommandError::NoJournalGiven)
        ));
    }

    /// An ansible-runner configuration whose binary (the config file itself) and the python3
    /// beside it exist and whose ANSIBLE_COLLECTIONS_PATH is set, so only the inventory can be
    /// missing.
    fn runner_config(dir: &Path, extra: &str) -> Config {
        let file = dir.join("relay.toml");
        std::fs::write(&file, "").unwrap();
        std::fs::write(dir.join("python3"), "").unwrap();
        config(
            dir,
            &format!(
                r#"
                [auth]
                allow_unauthenticated = true
                {extra}
                [executor]
                kind = "ansible-runner"
                binary = "{binary}"
                inventory = "inventory.ini"
                work_dir = "runs"
                env = {{ ANSIBLE_COLLECTIONS_PATH = "/opt/collections" }}
                "#,
                binary = file.display()
            ),
        )
    }

    #[test]
    fn a_missing_inventory_is_warned_about_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = runner_config(dir.path(), "");
        let inventory = dir.path().join("inventory.ini");
        assert_eq!(
            environment_warnings(&cfg),
            [format!(
                "executor.inventory {} does not exist",
                inventory.display()
            )]
        );

        std::fs::write(&inventory, "[haproxy]\nlocalhost\n").unwrap();
        assert_eq!(environment_warnings(&cfg), Vec::<String>::new());
    }

    #[test]
    fn a_missing_resident_python_is_warned_about_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = runner_config(dir.path(), "");
        std::fs::write(dir.path().join("inventory.ini"), "").unwrap();
        std::fs::remove_file(dir.path().join("python3")).unwrap();
        let warnings = environment_warnings(&cfg);
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(
            warnings[0].starts_with(&format!(
                "executor.python {} not found; runs use the ansible-runner CLI",
                dir.path().join("python3").display()
            )),
            "{warnings:?}"
        );
    }

    #[test]
    fn guard_dry_run_needs_no_runner_environment() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = runner_config(dir.path(), "[guard]\ndry_run = true\n");
        assert_eq!(environment_warnings(&cfg), Vec::<String>::new());
    }

    #[test]
    fn check_config_summarises_rules_executor_and_auth() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("relay.toml");
        std::fs::write(
            &file,
            RULES.replace("[executor]", "[guard]\ndry_run = true\n[executor]"),
        )
        .unwrap();
        let report = check_config(&file).unwrap();
        assert_eq!(report.warnings, Vec::<String>::new());
        assert!(report
            .summary
            .starts_with(&format!("{}: ok", file.display())));
        assert!(report.summary.contains("2 rule(s)"), "{}", report.summary);
        assert!(
            report.summary.contains("executor dry-run (guard.dry_run)"),
            "{}",
            report.summary
        );
        assert!(
            report.summary.contains("auth DISABLED"),
            "{}",
            report.summary
        );
    }
}
