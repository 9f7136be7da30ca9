//! What each command writes, inside the writer's transaction: accepted alerts and their
//! decisions, settlements (superseded, noop, refused, a new run), run results with their
//! retries, and switches.

use std::collections::HashSet;

use rusqlite::{params, Transaction};

use super::{AcceptReport, JournalError, Retry, Settlement};
use crate::config::RetryConfig;
use crate::dedup::{self, DedupKey, DedupStore};
use crate::model::{
    Action, Alert, Decision, Outcome, Pending, RunResult, RunStatus, Source, UsedSignature,
};

/// Side effects held back until the transaction commits.
#[derive(Default)]
pub(super) struct Staged {
    /// Dedup keys to remember, with when they were seen.
    pub(super) dedup: Vec<(DedupKey, i64)>,
    /// Accepted intents to hand to the pipeline.
    pub(super) forward: Vec<Pending>,
}

#[allow(clippy::too_many_arguments)]
pub(super) fn accept(
    tx: &Transaction<'_>,
    now: i64,
    source: Source,
    items: Vec<(Alert, Decision)>,
    signature: Option<&UsedSignature>,
    dedup: &DedupStore,
    ttl_ms: i64,
    batch_keys: &mut HashSet<DedupKey>,
    staged: &mut Staged,
) -> Result<AcceptReport, JournalError> {
    let mut report = AcceptReport {
        alerts: items.len(),
        ..AcceptReport::default()
    };
    if let Some(signature) = signature {
        // Signed requests come at the sender's pace: the stale ones go as new ones come.
        let now_secs = now / 1000;
        tx.prepare_cached("DELETE FROM signatures WHERE stale_after < ?1")?
            .execute(params![now_secs])?;
        tx.prepare_cached(
            "INSERT INTO signatures (mac, stale_after) VALUES (?1, ?2)
             ON CONFLICT(mac) DO UPDATE SET stale_after = max(stale_after, excluded.stale_after)",
        )?
        .execute(params![
            signature.mac,
            i64::try_from(signature.stale_after).unwrap_or(i64::MAX)
        ])?;
    }
    let mut ins_event = tx.prepare_cached(
        "INSERT INTO events (received_ms, source, status, fingerprint, starts_at, alertname, labels)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?;
    let mut ins_decision = tx.prepare_cached(
        "INSERT INTO decisions (event_id, decided_ms, updated_ms, outcome, rule, target, fleet, state, intent, detail)
         VALUES (?1, ?2, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?;
    for (alert, decision) in items {
        let key = dedup::key(&alert.fingerprint, alert.status, &alert.starts_at);
        let seen_recently = dedup.last_seen(key)?.is_some_and(|t| now - t < ttl_ms);
        if seen_recently || !batch_keys.insert(key) {
            report.duplicates += 1;
            continue;
        }
        // An alert no rule wants keeps its name in the audit, not its labels (they are the bulk
        // of what the relay is sent, and nothing needs them).
        let labels = if matches!(decision, Decision::Ignored { .. }) {
            "{}".to_owned()
        } else {
            serde_json::to_string(&alert.labels).unwrap_or_default()
        };
        ins_event.execute(params![
            now,
            source.as_str(),
            alert.status.as_str(),
            alert.fingerprint,
            alert.starts_at,
            alert.name(),
            labels
        ])?;
        let event_id = tx.last_insert_rowid();
        staged.dedup.push((key, now));
        match decision {
            Decision::Act(intent) => {
                let json = serde_json::to_string(&intent).unwrap_or_default();
                ins_decision.execute(params![
                    event_id,
                    now,
                    Outcome::Pending,
                    intent.rule,
                    intent.target.key(),
                    intent.fleet,
                    intent.state.as_str(),
                    json,
                    intent.weight.as_ref().map(|w| format!("weight {w}")),
                ])?;
                staged.forward.push(Pending {
                    id: tx.last_insert_rowid(),
                    intent,
                });
                report.actions += 1;
            }
            Decision::Rejected { rule, field, error } => {
                ins_decision.execute(params![
                    event_id,
                    now,
                    Outcome::Rejected,
                    rule,
                    Option::<String>::None,
                    Option::<String>::None,
                    Option::<String>::None,
                    Option::<String>::None,
                    format!("label {field}: {error}"),
                ])?;
                report.rejected += 1;
            }
            Decision::Ignored { why } => {
                ins_decision.execute(params![
                    event_id,
                    now,
                    Outcome::Ignored,
                    Option::<String>::None,
                    Option::<String>::None,
                    Option::<String>::None,
                    Option::<String>::None,
                    Option::<String>::None,
                    why,
                ])?;
                report.ignored += 1;
            }
        }
    }
    Ok(report)
}

pub(super) fn settle(
    tx: &Transaction<'_>,
    now: i64,
    s: Settlement,
) -> Result<Option<i64>, JournalError> {
    let mut set_outcome =
        tx.prepare_cached("UPDATE decisions SET outcome = ?2, detail = COALESCE(?3, detail), updated_ms = ?4 WHERE id = ?1")?;
    // Retries are rare: most settlements need not look for theirs one decision at a time.
    let any_retries: bool = tx
        .prepare_cached("SELECT EXISTS (SELECT 1 FROM retries)")?
        .query_row([], |r| r.get(0))?;
    if any_retries {
        let mut forget_retry = tx.prepare_cached("DELETE FROM retries WHERE decision_id = ?1")?;
        let settled = s
            .superseded
            .iter()
            .chain(&s.noop)
            .chain(s.refused.iter().map(|(id, _)| id))
            .chain(s.closed.iter().map(|(id, _, _)| id));
        for id in settled {
            forget_retry.execute(params![id])?;
        }
    }
    for id in &s.superseded {
        set_outcome.execute(params![
            id,
            Outcome::Superseded,
            "a later alert for the same target won",
            now
        ])?;
    }
    for id in &s.noop {
        set_outcome.execute(params![
            id,
            Outcome::Noop,
            "target already in this state",
            now
        ])?;
    }
    for (id, why) in &s.refused {
        set_outcome.execute(params![id, Outcome::Refused, why, now])?;
    }
    for (id, outcome, why) in &s.closed {
        set_outcome.execute(params![id, outcome, why, now])?;
        if Outcome::from(*outcome).releases_target() {
            tx.execute(
                "DELETE FROM targets WHERE key = (SELECT target FROM decisions WHERE id = ?1)",
                params![id],
            )?;
        }
    }
    for w in &s.waiting {
        set_outcome.execute(params![w.id, w.outcome, w.detail, now])?;
        tx.execute(
            "INSERT INTO retries (decision_id, attempts, not_before_ms) VALUES (?1, 0, ?2)
             ON CONFLICT(decision_id) DO UPDATE SET not_before_ms = ?2",
            params![w.id, w.at_ms],
        )?;
    }
    let Some(run) = s.run else { return Ok(None) };
    let actions: Vec<Action> = run.items.iter().map(|p| (&p.intent).into()).collect();
    tx.execute(
        "INSERT INTO runs (fleet, executor, started_ms, status, actions) VALUES (?1, ?2, ?3, 'running', ?4)",
        params![s.fleet, run.executor, now, serde_json::to_string(&actions).unwrap_or_default()],
    )?;
    let run_id = tx.last_insert_rowid();
    let mut mark = tx.prepare_cached(
        "UPDATE decisions SET outcome = 'running', run_id = ?2, updated_ms = ?3 WHERE id = ?1",
    )?;
    let mut target = tx.prepare_cached(
        "INSERT INTO targets (key, backend, state, weight, updated_ms) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT(key) DO UPDATE SET backend = ?2, state = ?3, weight = ?4, updated_ms = ?5",
    )?;
    for p in &run.items {
        mark.execute(params![p.id, run_id, now])?;
        let i = &p.intent;
        target.execute(params![
            i.target.key(),
            i.target.backend.as_deref().unwrap_or("*"),
            i.state.as_str(),
            i.weight,
            now
        ])?;
    }
    Ok(Some(run_id))
}

// What a run's result reads and writes: its decisions are the `running` ones with its id (the
// `decisions_running` index), never a scan of the whole history.
const FORGET_RUN_RETRIES: &str = "DELETE FROM retries WHERE decision_id IN
     (SELECT id FROM decisions WHERE run_id = ?1 AND outcome = 'running')";
const MARK_RUN_DONE: &str =
    "UPDATE decisions SET outcome = 'done', updated_ms = ?2 WHERE run_id = ?1 AND outcome = 'running'";
const MARK_RUN_TARGETS_UNKNOWN: &str =
    "UPDATE targets SET state = 'unknown', weight = NULL, updated_ms = ?2
     WHERE key IN (SELECT target FROM decisions WHERE run_id = ?1 AND outcome = 'running')";
const NOTE_RUN_PARTIAL: &str =
    "UPDATE decisions SET detail = ?2 WHERE run_id = ?1 AND outcome = 'running'";
const RUN_DECISIONS_WITH_ATTEMPTS: &str = "SELECT d.id, COALESCE(r.attempts, 0)
     FROM decisions d LEFT JOIN retries r ON r.decision_id = d.id
     WHERE d.run_id = ?1 AND d.outcome = 'running'";

/// Records a run's result. The decisions of a failed run that have retries left become
/// `retrying` (a retry is work owed: it resumes after a restart, with the attempts it has used);
/// the others become `failed`, or `partial` when the run did its work on some load balancers.
pub(super) fn finish(
    tx: &Transaction<'_>,
    now: i64,
    run_id: i64,
    r: &RunResult,
    policy: &RetryConfig,
) -> Result<Vec<Retry>, JournalError> {
    tx.execute(
        "UPDATE runs SET finished_ms = ?2, status = ?3, rc = ?4, duration_ms = ?5, detail = ?6 WHERE id = ?1",
        params![run_id, now, r.status.as_str(), r.rc, r.duration_ms, r.detail],
    )?;
    if r.succeeded() {
        tx.execute(FORGET_RUN_RETRIES, params![run_id])?;
        tx.execute(MARK_RUN_DONE, params![run_id, now])?;
        return Ok(Vec::new());
    }
    // What the run did to its targets is unknown: the guard counts them as out.
    tx.execute(MARK_RUN_TARGETS_UNKNOWN, params![run_id, now])?;
    // A partial run names the hosts it failed on in its detail's first line: kept with its
    // decisions, so the history still tells it once a retry has completed them.
    let partial = r.status == RunStatus::Partial;
    if partial {
        let note = format!(
            "run #{run_id} partial: {}",
            r.detail.lines().next().unwrap_or("")
        );
        tx.execute(NOTE_RUN_PARTIAL, params![run_id, note])?;
    }
    let exhausted = if partial {
        Outcome::Partial
    } else {
        Outcome::Failed
    };
    let failed: Vec<(i64, u32)> = tx
        .prepare_cached(RUN_DECISIONS_WITH_ATTEMPTS)?
        .query_map(params![run_id], |row| Ok((row.get(0)?, row.get(1)?)))?
        .collect::<Result<_, _>>()?;
    let at_ms = now.saturating_add(i64::try_from(policy.delay_ms).unwrap_or(i64::MAX));
    let mut retries = Vec::new();
    for (id, used) in failed {
        let attempt = used.saturating_add(1);
        if attempt <= policy.attempts {
            tx.execute(
                "INSERT INTO retries (decision_id, attempts, not_before_ms) VALUES (?1, ?2, ?3)
                 ON CONFLICT(decision_id) DO UPDATE SET attempts = ?2, not_before_ms = ?3",
                params![id, attempt, at_ms],
            )?;
            tx.execute(
                "UPDATE decisions SET outcome = 'retrying', updated_ms = ?2 WHERE id = ?1",
                params![id, now],
            )?;
            retries.push(Retry { id, attempt, at_ms });
        } else {
            tx.execute("DELETE FROM retries WHERE decision_id = ?1", params![id])?;
            tx.execute(
                "UPDATE decisions SET outcome = ?2, updated_ms = ?3 WHERE id = ?1",
                params![id, exhausted, now],
            )?;
        }
    }
    Ok(retries)
}

pub(super) fn set_switch(
    tx: &Transaction<'_>,
    now: i64,
    name: &str,
    on: bool,
) -> Result<(), JournalError> {
    tx.execute(
        "INSERT INTO switches (name, is_on, updated_ms) VALUES (?1, ?2, ?3)
         ON CONFLICT(name) DO UPDATE SET is_on = excluded.is_on, updated_ms = excluded.updated_ms",
        params![name, on, now],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{
        accept_one, act, alert, open, outcome, read, result, scalar, start_run,
    };
    use super::super::Settlement;
    use crate::label::TargetError;
    use crate::model::{AlertStatus, Decision, DesiredState, Source};

    #[tokio::test]
    async fn a_run_result_reads_its_own_decisions_not_the_whole_history() {
        let dir = tempfile::tempdir().unwrap();
        let _o = open(dir.path(), 0);
        let db = read(dir.path());
        for sql in [
            super::FORGET_RUN_RETRIES,
            super::MARK_RUN_DONE,
            super::MARK_RUN_TARGETS_UNKNOWN,
            super::NOTE_RUN_PARTIAL,
            super::RUN_DECISIONS_WITH_ATTEMPTS,
        ] {
            let mut explain = db.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
            let mut rows = explain.raw_query();
            let mut plan: Vec<String> = Vec::new();
            while let Some(row) = rows.next().unwrap() {
                plan.push(row.get(3).unwrap());
            }
            assert!(
                plan.iter().all(|step| !step.starts_with("SCAN d")),
                "{sql}: {plan:?}"
            );
        }
    }

    #[tokio::test]
    async fn an_alert_seen_again_within_the_ttl_is_a_duplicate_even_in_one_batch() {
        let dir = tempfile::tempdir().unwrap();
        let o = open(dir.path(), 0);
        let twice = vec![
            act("aa", "s1", DesiredState::Drain),
            act("aa", "s1", DesiredState::Drain),
        ];
        let first = o.journal.accept(Source::Alertmanager, twice).await.unwrap();
        assert_eq!((first.alerts, first.duplicates, first.actions), (2, 1, 1));
        let again = o
            .journal
            .accept(
                Source::Alertmanager,
                vec![act("aa", "s1", DesiredState::Drain)],
            )
            .await
            .unwrap();
        assert_eq!((again.duplicates, again.actions), (1, 0));
        assert_eq!(scalar::<i64>(dir.path(), "SELECT count(*) FROM events"), 1);
        assert_eq!(
            scalar::<i64>(dir.path(), "SELECT count(*) FROM decisions"),
            1
        );
    }

    #[tokio::test]
    async fn refusals_of_labels_and_ignored_alerts_are_audited_ignored_ones_without_labels() {
        let dir = tempfile::tempdir().unwrap();
        let o = open(dir.path(), 0);
        let rejected = Decision::Rejected {
            rule: "r".into(),
            field: "server".into(),
            error: TargetError::BadChar { found: ';' },
        };
        let ignored = Decision::Ignored {
            why: "no rule matches",
        };
        let items = vec![
            (alert("b1", "s;1", AlertStatus::Firing), rejected),
            (alert("b2", "s2", AlertStatus::Firing), ignored),
        ];
        let report = o.journal.accept(Source::Grafana, items).await.unwrap();
        assert_eq!((report.rejected, report.ignored, report.actions), (1, 1, 0));
        assert_eq!(
            outcome(dir.path(), 1),
            (
                "rejected".into(),
                Some("label server: character ';' not allowed".into())
            )
        );
        assert_eq!(
            outcome(dir.path(), 2),
            ("ignored".into(), Some("no rule matches".into()))
        );
        let labels: Vec<(String, String)> = read(dir.path())
            .prepare("SELECT source, labels FROM events ORDER BY id")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert!(labels[0].1.contains("s;1"), "{labels:?}");
        assert_eq!(labels[1], ("grafana".into(), "{}".into()));
    }

    #[tokio::test]
    async fn a_settled_run_marks_its_decisions_running_and_records_the_targets_state() {
        let dir = tempfile::tempdir().unwrap();
        let mut o = open(dir.path(), 0);
        let runs = accept_one(&mut o, "c1", "s1").await;
        let loses = accept_one(&mut o, "c2", "s1").await;
        let settlement = Settlement {
            fleet: "default".into(),
            superseded: vec![loses.id],
            noop: Vec::new(),
            refused: Vec::new(),
            closed: Vec::new(),
            waiting: Vec::new(),
            run: Some(super::super::NewRun {
                executor: "test",
                items: vec![runs.clone()],
            }),
        };
        let run = o.journal.settle(settlement).await.unwrap().unwrap();
        assert_eq!(outcome(dir.path(), runs.id), ("running".into(), None));
        assert_eq!(
            outcome(dir.path(), loses.id),
            (
                "superseded".into(),
                Some("a later alert for the same target won".into())
            )
        );
        let (status, actions): (String, String) = read(dir.path())
            .query_row(
                "SELECT status, actions FROM runs WHERE id = ?1",
                [run],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!(status, "running");
        assert!(actions.contains(r#""server":"s1""#), "{actions}");
        let state: String = scalar(dir.path(), "SELECT state FROM targets WHERE key = 'be/s1'");
        assert_eq!(state, "drain");
    }

    #[tokio::test]
    async fn a_failed_run_is_retried_until_its_attempts_are_spent() {
        let dir = tempfile::tempdir().unwrap();
        let mut o = open(dir.path(), 1);
        let p = accept_one(&mut o, "d1", "s1").await;
        let first = start_run(&o, vec![p.clone()]).await;
        let before = crate::model::now_ms();
        let retries = o
            .journal
            .finish(first, result("failed", "boom"))
            .await
            .unwrap();
        assert_eq!(retries.len(), 1);
        assert_eq!((retries[0].id, retries[0].attempt), (p.id, 1));
        assert!(retries[0].at_ms >= before + 60_000, "{retries:?}");
        assert_eq!(outcome(dir.path(), p.id).0, "retrying");
        let state: String = scalar(dir.path(), "SELECT state FROM targets WHERE key = 'be/s1'");
        assert_eq!(state, "unknown");
        let second = start_run(&o, vec![p.clone()]).await;
        let retries = o
            .journal
            .finish(second, result("failed", "boom"))
            .await
            .unwrap();
        assert!(retries.is_empty());
        assert_eq!(outcome(dir.path(), p.id).0, "failed");
        assert_eq!(scalar::<i64>(dir.path(), "SELECT count(*) FROM retries"), 0);
    }

    #[tokio::test]
    async fn a_partial_run_keeps_its_failed_hosts_line_with_its_decisions() {
        let dir = tempfile::tempdir().unwrap();
        let mut o = open(dir.path(), 0);
        let p = accept_one(&mut o, "e1", "s1").await;
        let run = start_run(&o, vec![p.clone()]).await;
        let detail = "failed on lb2: unreachable\nprivate data dir /x";
        o.journal
            .finish(run, result("partial", detail))
            .await
            .unwrap();
        assert_eq!(
            outcome(dir.path(), p.id),
            (
                "partial".into(),
                Some(format!("run #{run} partial: failed on lb2: unreachable"))
            )
        );
    }

    #[tokio::test]
    async fn a_successful_run_completes_its_decisions() {
        let dir = tempfile::tempdir().unwrap();
        let mut o = open(dir.path(), 2);
        let p = accept_one(&mut o, "f1", "s1").await;
        let run = start_run(&o, vec![p.clone()]).await;
        let retries = o
            .journal
            .finish(run, result("successful", "ok"))
            .await
            .unwrap();
        assert!(retries.is_empty());
        assert_eq!(outcome(dir.path(), p.id).0, "done");
    }
}
