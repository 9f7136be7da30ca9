//! What the journal holds at startup: unfinished decisions, the targets' recorded states, the
//! pause switch and the webhook signatures not stale yet. Runs that were in progress when the relay stopped are marked
//! `interrupted` and their decisions replayed.

use std::collections::HashMap;

use rusqlite::{params, Connection, OptionalExtension};

use super::{JournalError, Recovered, Recovery};
use crate::model::{now_ms, DesiredState, Intent, Outcome, Pending, RecordedTarget, UsedSignature};

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
             WHERE d.outcome IN ('pending', 'running', 'retrying', 'deferred', 'ramping', 'held') ORDER BY d.id",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, Outcome>(2)?,
                r.get::<_, Option<i64>>(3)?,
            ))
        })?;
        for row in rows {
            let (id, json, outcome, retry_at) = row?;
            let mut intent: Intent = serde_json::from_str(&json)
                .map_err(|source| JournalError::Corrupt { id, source })?;
            if matches!(
                outcome.as_str(),
                "retrying" | "deferred" | "ramping" | "held"
            ) {
                intent.not_before_ms = intent.not_before_ms.max(retry_at.unwrap_or(0));
            }
            pending.push(Recovery {
                pending: Pending { id, intent },
                // A deferred or ramping restore goes through the life cycle again for its next step.
                replay: matches!(outcome.as_str(), "running" | "retrying"),
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
    let signatures = {
        let mut stmt =
            tx.prepare("SELECT mac, stale_after FROM signatures WHERE stale_after >= ?1")?;
        let rows = stmt.query_map(params![now / 1000], |r| {
            Ok(UsedSignature {
                mac: r.get(0)?,
                stale_after: u64::try_from(r.get::<_, i64>(1)?).unwrap_or(0),
            })
        })?;
        rows.collect::<Result<Vec<_>, _>>()?
    };
    tx.commit()?;
    Ok(Recovered {
        pending,
        targets,
        paused,
        signatures,
    })
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{accept_one, open, result, scalar, start_run};
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
        let status: String = scalar(
            dir.path(),
            &format!("SELECT status FROM runs WHERE id = {run}"),
        );
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

    #[tokio::test]
    async fn a_deferred_restore_resumes_after_a_restart_and_a_missing_server_is_forgotten() {
        use super::super::{Settlement, Waiting};
        let dir = tempfile::tempdir().unwrap();
        let mut o = open(dir.path(), 0);
        let deferred = accept_one(&mut o, "d1", "s1").await;
        let ghost = accept_one(&mut o, "d2", "s2").await;
        let run = start_run(&o, vec![deferred.clone(), ghost.clone()]).await;
        o.journal
            .finish(run, result("successful", ""))
            .await
            .unwrap();
        o.journal
            .settle(Settlement {
                closed: vec![(ghost.id, "not_found", "no such server".into())],
                waiting: vec![Waiting {
                    id: deferred.id,
                    outcome: "deferred",
                    at_ms: 1_234_567,
                    detail: "check failing".into(),
                }],
                ..Settlement::default()
            })
            .await
            .unwrap();
        o.journal.close().await;

        let again = open(dir.path(), 0);
        let [recovery] = again.recovered.pending.as_slice() else {
            panic!("{:?}", again.recovered.pending)
        };
        assert_eq!(recovery.pending.id, deferred.id);
        assert!(!recovery.replay, "it goes through the life cycle again");
        assert_eq!(recovery.pending.intent.not_before_ms, 1_234_567);
        assert!(!again.recovered.targets.contains_key("be/s2"));
        assert!(again.recovered.targets.contains_key("be/s1"));
        assert_eq!(
            super::super::test_support::outcome(dir.path(), ghost.id),
            ("not_found".into(), Some("no such server".into()))
        );
    }
}
