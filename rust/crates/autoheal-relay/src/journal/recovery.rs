//! What the journal holds at startup: unfinished decisions, the targets' recorded states and
//! the pause switch. Runs that were in progress when the relay stopped are marked
//! `interrupted` and their decisions replayed.

use std::collections::HashMap;

use rusqlite::{params, Connection, OptionalExtension};

use super::{JournalError, Recovered, Recovery};
use crate::model::{now_ms, DesiredState, Intent, Pending, RecordedTarget};

/// Reads the state to resume from, marking interrupted runs.
pub(super) fn recover(conn: &mut Connection) -> Result<Recovered, JournalError> {
    let tx = conn.transaction()?;
    let now = now_ms();
    let interrupted = tx.execute(
        "UPDATE runs SET status = 'interrupted', finished_ms = ?1, detail = 'relay stopped before the run finished; its actions are re-run'
         WHERE status = 'running'",
        params![now],
    )?;
    if interrupted > 0 {
        tracing::warn!(runs = interrupted, "resuming runs interrupted by a stop");
    }
    let mut pending = Vec::new();
    {
        let mut stmt = tx.prepare(
            "SELECT d.id, d.intent, d.outcome, r.not_before_ms FROM decisions d LEFT JOIN retries r ON r.decision_id = d.id
             WHERE d.outcome IN ('pending', 'running', 'retrying') ORDER BY d.id",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, Option<i64>>(3)?,
            ))
        })?;
        for row in rows {
            let (id, json, outcome, retry_at) = row?;
            let mut intent: Intent = serde_json::from_str(&json)
                .map_err(|source| JournalError::Corrupt { id, source })?;
            if outcome == "retrying" {
                intent.not_before_ms = intent.not_before_ms.max(retry_at.unwrap_or(0));
            }
            pending.push(Recovery {
                pending: Pending { id, intent },
                replay: outcome != "pending",
            });
        }
    }
    let mut targets = HashMap::new();
    {
        let mut stmt = tx.prepare("SELECT key, backend, state, weight FROM targets")?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, Option<String>>(3)?,
            ))
        })?;
        for row in rows {
            let (key, backend, state, weight) = row?;
            // `unknown`: the last run failed.
            let state = DesiredState::parse(&state);
            targets.insert(
                key,
                RecordedTarget {
                    backend,
                    state,
                    weight,
                },
            );
        }
    }
    let paused = tx
        .query_row(
            "SELECT is_on FROM switches WHERE name = 'paused'",
            [],
            |r| r.get::<_, bool>(0),
        )
        .optional()?
        .unwrap_or(false);
    tx.commit()?;
    Ok(Recovered {
        pending,
        targets,
        paused,
    })
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{accept_one, open, read, result, start_run};
    use crate::model::{DesiredState, RecordedTarget};

    #[tokio::test]
    async fn unfinished_decisions_come_back_and_an_interrupted_run_is_replayed() {
        let dir = tempfile::tempdir().unwrap();
        let mut o = open(dir.path(), 0);
        assert!(o.recovered.pending.is_empty() && !o.recovered.paused);
        let waiting = accept_one(&mut o, "a1", "s1").await;
        let running = accept_one(&mut o, "a2", "s2").await;
        let run = start_run(&o, vec![running.clone()]).await;
        o.journal.set_paused(true).await.unwrap();
        o.journal.close().await;

        let again = open(dir.path(), 0);
        let found: Vec<(i64, bool)> = again
            .recovered
            .pending
            .iter()
            .map(|r| (r.pending.id, r.replay))
            .collect();
        assert_eq!(found, [(waiting.id, false), (running.id, true)]);
        assert_eq!(again.recovered.pending[1].pending.intent, running.intent);
        assert_eq!(
            again.recovered.targets["be/s2"],
            RecordedTarget {
                backend: "be".into(),
                state: Some(DesiredState::Drain),
                weight: None,
            }
        );
        assert!(again.recovered.paused);
        let status: String = read(dir.path())
            .query_row("SELECT status FROM runs WHERE id = ?1", [run], |r| r.get(0))
            .unwrap();
        assert_eq!(status, "interrupted");
    }

    #[tokio::test]
    async fn a_retry_keeps_its_delay_and_the_target_of_a_failed_run_is_unknown() {
        let dir = tempfile::tempdir().unwrap();
        let mut o = open(dir.path(), 1);
        let p = accept_one(&mut o, "b1", "s1").await;
        let run = start_run(&o, vec![p.clone()]).await;
        let retries = o
            .journal
            .finish(run, result("failed", "boom"))
            .await
            .unwrap();
        o.journal.close().await;

        let again = open(dir.path(), 1);
        let [recovery] = again.recovered.pending.as_slice() else {
            panic!("{:?}", again.recovered.pending)
        };
        assert!(recovery.replay);
        assert_eq!(recovery.pending.intent.not_before_ms, retries[0].at_ms);
        assert_eq!(again.recovered.targets["be/s1"].state, None);
    }
}
