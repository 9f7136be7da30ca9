//! Deleting finished history past its retention.

use std::time::Duration;

use rusqlite::{params, Connection};

use super::JournalError;

/// How often finished history past its retention is deleted.
pub(super) const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// Deletes finished decisions older than `horizon_ms`, then the events and runs nothing refers
/// to any more, and targets back in service since before it. Unfinished work (`pending`,
/// `running`, `retrying`) and targets the relay took out are never deleted. Returns the rows
/// deleted.
pub fn prune(conn: &Connection, horizon_ms: i64) -> Result<usize, JournalError> {
    conn.execute(
        "DELETE FROM retries WHERE decision_id IN
         (SELECT id FROM decisions WHERE updated_ms < ?1 AND outcome NOT IN ('pending', 'running', 'retrying', 'deferred', 'ramping', 'held'))",
        params![horizon_ms],
    )?;
    let decisions = conn.execute(
        "DELETE FROM decisions WHERE updated_ms < ?1 AND outcome NOT IN ('pending', 'running', 'retrying', 'deferred', 'ramping', 'held')",
        params![horizon_ms],
    )?;
    let events = conn.execute(
        "DELETE FROM events WHERE received_ms < ?1 AND id NOT IN (SELECT event_id FROM decisions)",
        params![horizon_ms],
    )?;
    let runs = conn.execute(
        "DELETE FROM runs WHERE started_ms < ?1 AND status <> 'running'
         AND id NOT IN (SELECT run_id FROM decisions WHERE run_id IS NOT NULL)",
        params![horizon_ms],
    )?;
    let targets = conn.execute(
        "DELETE FROM targets WHERE state = 'enabled' AND updated_ms < ?1",
        params![horizon_ms],
    )?;
    Ok(decisions + events + runs + targets)
}

#[cfg(test)]
mod tests {
    use super::super::schema::open_db;
    use super::super::test_support::{act, db_path, open, read, result, scalar, start_run};
    use super::prune;
    use crate::config::Synchronous;
    use crate::model::{now_ms, DesiredState, Source};

    fn ids(dir: &std::path::Path, sql: &str) -> Vec<i64> {
        read(dir)
            .prepare(sql)
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    #[tokio::test]
    async fn finished_history_goes_and_unfinished_work_and_servers_out_stay() {
        let dir = tempfile::tempdir().unwrap();
        let mut o = open(dir.path(), 0);
        let items = vec![
            act("a1", "s1", DesiredState::Drain),
            act("a2", "s2", DesiredState::Enabled),
            act("a3", "s3", DesiredState::Drain),
        ];
        o.journal.accept(Source::Alertmanager, items).await.unwrap();
        let waiting = o.pipeline.try_recv().unwrap();
        let restored = o.pipeline.try_recv().unwrap();
        let out = o.pipeline.try_recv().unwrap();
        let run = start_run(&o, vec![restored, out]).await;
        o.journal
            .finish(run, result("successful", "ok"))
            .await
            .unwrap();
        o.journal.close().await;

        let conn = open_db(&db_path(dir.path()), Synchronous::Full).unwrap();
        assert_eq!(prune(&conn, 0).unwrap(), 0, "nothing is older than 1970");
        let deleted = prune(&conn, now_ms() + 1_000_000).unwrap();
        // Two done decisions, their events and their run, and the target back in service.
        assert_eq!(deleted, 2 + 2 + 1 + 1);
        assert_eq!(ids(dir.path(), "SELECT id FROM decisions"), [waiting.id]);
        assert_eq!(ids(dir.path(), "SELECT count(*) FROM events"), [1]);
        let kept: String = scalar(dir.path(), "SELECT group_concat(key) FROM targets");
        assert_eq!(kept, "be/s3");
    }
}
