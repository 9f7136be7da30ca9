//! A journal in a temporary directory, and the alerts and decisions the module tests feed it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::Connection;
use tokio::sync::mpsc;

use super::{Journal, JournalOptions, NewRun, Recovered, Settlement};
use crate::coalesce::tests::intent;
use crate::config::{RetryConfig, Synchronous};
use crate::model::{
    Alert, AlertStatus, Decision, DesiredState, Pending, RunResult, RunStatus, Source,
};

/// A running journal and what it forwards to the pipeline.
pub(super) struct Open {
    pub(super) journal: Journal,
    pub(super) recovered: Recovered,
    pub(super) pipeline: mpsc::UnboundedReceiver<Pending>,
}

pub(super) fn options(dir: &Path, retry_attempts: u32) -> JournalOptions {
    JournalOptions {
        path: dir.join("journal.db"),
        dedup_ttl: Duration::from_secs(3600),
        dedup_cache: 64,
        max_batch: 16,
        synchronous: Synchronous::Full,
        retention: Duration::from_secs(86_400),
        retry: RetryConfig {
            attempts: retry_attempts,
            delay_ms: 60_000,
        },
    }
}

/// Starts a journal in `dir` whose failed runs get `retry_attempts` retries.
pub(super) fn open(dir: &Path, retry_attempts: u32) -> Open {
    let (tx, pipeline) = mpsc::unbounded_channel();
    let (journal, recovered) = Journal::start(&options(dir, retry_attempts), tx).unwrap();
    Open {
        journal,
        recovered,
        pipeline,
    }
}

pub(super) fn db_path(dir: &Path) -> PathBuf {
    dir.join("journal.db")
}

/// A read-only look at the journal's tables.
pub(super) fn read(dir: &Path) -> Connection {
    Connection::open_with_flags(db_path(dir), rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap()
}

/// An alert with a fingerprint of its own, for server `server`.
pub(super) fn alert(fingerprint: &str, server: &str, status: AlertStatus) -> Alert {
    let labels = BTreeMap::from([
        ("alertname".to_owned(), "A".to_owned()),
        ("server".to_owned(), server.to_owned()),
    ]);
    Alert {
        source: Source::Alertmanager,
        status,
        labels,
        starts_at: "2026-01-01T00:00:00Z".into(),
        fingerprint: fingerprint.into(),
    }
}

/// An alert for `server` with the decision to put it in `state`.
pub(super) fn act(fingerprint: &str, server: &str, state: DesiredState) -> (Alert, Decision) {
    let status = if state == DesiredState::Enabled {
        AlertStatus::Resolved
    } else {
        AlertStatus::Firing
    };
    (
        alert(fingerprint, server, status),
        Decision::Act(intent(server, state, 0)),
    )
}

/// Accepts one acting alert and returns its pending decision as forwarded to the pipeline.
pub(super) async fn accept_one(open: &mut Open, fingerprint: &str, server: &str) -> Pending {
    let item = act(fingerprint, server, DesiredState::Drain);
    let report = open
        .journal
        .accept(Source::Alertmanager, vec![item])
        .await
        .unwrap();
    assert_eq!(report.actions, 1);
    open.pipeline.try_recv().unwrap()
}

/// Puts `items` into one run; returns its id.
pub(super) async fn start_run(open: &Open, items: Vec<Pending>) -> i64 {
    let settlement = Settlement {
        fleet: "default".into(),
        run: Some(NewRun {
            executor: "test",
            items,
        }),
        ..Settlement::default()
    };
    open.journal.settle(settlement).await.unwrap().unwrap()
}

pub(super) fn result(status: &str, detail: &str) -> RunResult {
    RunResult {
        status: RunStatus::from(status),
        rc: Some(2),
        duration_ms: 5,
        detail: detail.into(),
        ..RunResult::default()
    }
}

/// The one value `sql` selects.
pub(super) fn scalar<T: rusqlite::types::FromSql>(dir: &Path, sql: &str) -> T {
    read(dir)
        .query_row(sql, [], |r| r.get(0))
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// The outcome and detail of decision `id`.
pub(super) fn outcome(dir: &Path, id: i64) -> (String, Option<String>) {
    read(dir)
        .query_row(
            "SELECT outcome, detail FROM decisions WHERE id = ?1",
            [id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap()
}
