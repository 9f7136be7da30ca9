//! Read-only queries of the audit log, for `autoheal-relay history` and tools.

use std::path::Path;
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

use super::JournalError;

/// One line of `autoheal-relay history`.
#[derive(Debug, Clone, Serialize)]
pub struct HistoryRow {
    /// Decision id.
    pub id: i64,
    /// When it was decided (ms since the epoch).
    pub decided_ms: i64,
    /// Alert name.
    pub alert: String,
    /// Alert status.
    pub alert_status: String,
    /// pending, running, retrying, done, failed, refused, superseded, noop, rejected, ignored.
    pub outcome: String,
    /// Rule.
    pub rule: Option<String>,
    /// Target key.
    pub target: Option<String>,
    /// Desired state.
    pub state: Option<String>,
    /// Why (refusal reason, rejection reason...).
    pub detail: Option<String>,
    /// Run id.
    pub run_id: Option<i64>,
    /// Run status.
    pub run_status: Option<String>,
    /// Run exit code.
    pub run_rc: Option<i32>,
    /// Run duration.
    pub run_duration_ms: Option<i64>,
}

/// The most recent decisions with their runs, newest first.
pub fn history(path: &Path, limit: usize) -> Result<Vec<HistoryRow>, JournalError> {
    let conn = Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    conn.busy_timeout(Duration::from_secs(5))?;
    let mut stmt = conn.prepare(
        "SELECT d.id, d.decided_ms, e.alertname, e.status, d.outcome, d.rule, d.target, d.state, d.detail,
                d.run_id, r.status, r.rc, r.duration_ms
         FROM decisions d JOIN events e ON e.id = d.event_id LEFT JOIN runs r ON r.id = d.run_id
         ORDER BY d.id DESC LIMIT ?1",
    )?;
    let rows = stmt.query_map(params![i64::try_from(limit).unwrap_or(i64::MAX)], |r| {
        Ok(HistoryRow {
            id: r.get(0)?,
            decided_ms: r.get(1)?,
            alert: r.get(2)?,
            alert_status: r.get(3)?,
            outcome: r.get(4)?,
            rule: r.get(5)?,
            target: r.get(6)?,
            state: r.get(7)?,
            detail: r.get(8)?,
            run_id: r.get(9)?,
            run_status: r.get(10)?,
            run_rc: r.get(11)?,
            run_duration_ms: r.get(12)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Runs recorded in the database, newest first: (id, fleet, status, actions JSON).
pub fn runs(path: &Path) -> Result<Vec<(i64, String, String, String)>, JournalError> {
    let conn = Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let mut stmt = conn.prepare("SELECT id, fleet, status, actions FROM runs ORDER BY id DESC")?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The outcome of one decision (for tests and tools).
pub fn decision_outcome(path: &Path, id: i64) -> Result<Option<String>, JournalError> {
    let conn = Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    Ok(conn
        .query_row(
            "SELECT outcome FROM decisions WHERE id = ?1",
            params![id],
            |r| r.get(0),
        )
        .optional()?)
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{accept_one, alert, db_path, open, result, start_run};
    use super::{decision_outcome, history, runs};
    use crate::model::{AlertStatus, Decision, Source};

    #[tokio::test]
    async fn history_is_newest_first_with_each_decisions_run() {
        let dir = tempfile::tempdir().unwrap();
        let mut o = open(dir.path(), 0);
        let p = accept_one(&mut o, "a1", "s1").await;
        let run = start_run(&o, vec![p.clone()]).await;
        o.journal
            .finish(run, result("successful", "ok"))
            .await
            .unwrap();
        let ignored = Decision::Ignored {
            why: "no rule matches",
        };
        let item = (alert("a2", "s2", AlertStatus::Resolved), ignored);
        o.journal
            .accept(Source::Alertmanager, vec![item])
            .await
            .unwrap();
        o.journal.close().await;

        let db = db_path(dir.path());
        let rows = history(&db, 10).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(
            (rows[0].outcome.as_str(), rows[0].alert_status.as_str()),
            ("ignored", "resolved")
        );
        assert_eq!((rows[0].run_id, rows[0].target.as_deref()), (None, None));
        let done = &rows[1];
        assert_eq!((done.id, done.alert.as_str()), (p.id, "A"));
        assert_eq!(done.outcome, "done");
        assert_eq!(done.target.as_deref(), Some("be/s1"));
        assert_eq!(done.state.as_deref(), Some("drain"));
        assert_eq!(done.run_id, Some(run));
        assert_eq!(done.run_status.as_deref(), Some("successful"));
        assert_eq!((done.run_rc, done.run_duration_ms), (Some(2), Some(5)));
        assert_eq!(history(&db, 1).unwrap().len(), 1);

        let [(id, fleet, status, actions)] = runs(&db).unwrap().try_into().unwrap();
        assert_eq!(
            (id, fleet.as_str(), status.as_str()),
            (run, "default", "successful")
        );
        assert!(actions.contains(r#""state":"drain""#), "{actions}");
        assert_eq!(
            decision_outcome(&db, p.id).unwrap().as_deref(),
            Some("done")
        );
        assert_eq!(decision_outcome(&db, 999).unwrap(), None);
    }
}
