//! The writer thread: the only owner of the database connection. It folds every command
//! waiting in its channel into one transaction (group commit) and answers each command only
//! after that transaction is committed, or with the error that refused the whole batch.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};

use super::record::{self, Staged};
use super::retention::{prune, PRUNE_EVERY};
use super::{AcceptReport, Command, JournalError, Retry};
use crate::config::RetryConfig;
use crate::dedup::DedupStore;
use crate::model::{now_ms, Pending};

/// The writer thread's state.
pub(super) struct Writer {
    pub(super) conn: Connection,
    /// The exclusive lock on the database file, released when the writer stops.
    pub(super) _lock: std::fs::File,
    /// Why the last commit failed, until one succeeds (shared with the handles).
    pub(super) failing: Arc<Mutex<Option<String>>>,
    pub(super) retry: RetryConfig,
    pub(super) rx: mpsc::Receiver<Command>,
    /// Where committed intents go.
    pub(super) pipeline: mpsc::UnboundedSender<Pending>,
    pub(super) dedup: DedupStore,
    pub(super) dedup_ttl_ms: i64,
    pub(super) retention_ms: i64,
    pub(super) max_batch: usize,
}

enum Reply {
    Accept(
        oneshot::Sender<Result<AcceptReport, JournalError>>,
        AcceptReport,
    ),
    Settle(
        oneshot::Sender<Result<Option<i64>, JournalError>>,
        Option<i64>,
    ),
    Finish(
        oneshot::Sender<Result<Vec<Retry>, JournalError>>,
        Vec<Retry>,
    ),
    Done(oneshot::Sender<Result<(), JournalError>>),
}

impl Writer {
    pub(super) fn run(mut self) {
        let mut last_prune: Option<std::time::Instant> = None;
        let mut closed = None;
        while let Some(first) = self.rx.blocking_recv() {
            if last_prune.is_none_or(|t| t.elapsed() >= PRUNE_EVERY) {
                last_prune = Some(std::time::Instant::now());
                let now = now_ms();
                let horizon = now.saturating_sub(self.retention_ms);
                match prune(&self.conn, horizon) {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(rows = n, "pruned journal history past its retention"),
                    Err(e) => tracing::warn!(error = %e, "cannot prune the journal"),
                }
                self.dedup.prune(now.saturating_sub(self.dedup_ttl_ms));
            }
            let mut batch = Vec::new();
            let mut next = Some(first);
            while let Some(cmd) = next.take() {
                if let Command::Close { reply } = cmd {
                    closed = Some(reply);
                    break;
                }
                batch.push(cmd);
                if batch.len() < self.max_batch {
                    next = self.rx.try_recv().ok();
                }
            }
            self.commit_batch(batch);
            if closed.is_some() {
                break;
            }
        }
        // Close the database and release the lock before saying so.
        drop(self);
        tracing::debug!("journal writer stopped");
        if let Some(reply) = closed {
            let _ = reply.send(());
        }
    }

    fn commit_batch(&mut self, batch: Vec<Command>) {
        if batch.is_empty() {
            return;
        }
        let now = now_ms();
        let mut staged = Staged::default();
        let mut replies = Vec::with_capacity(batch.len());
        let mut failed: Option<JournalError> = None;
        let mut unprocessed = Vec::new();
        match self.conn.transaction() {
            Err(e) => {
                failed = Some(e.into());
                unprocessed = batch;
            }
            Ok(tx) => {
                let mut batch_keys = HashSet::new();
                for cmd in batch {
                    if failed.is_some() {
                        unprocessed.push(cmd);
                        continue;
                    }
                    let result = match cmd {
                        Command::Accept {
                            source,
                            items,
                            reply,
                        } => record::accept(
                            &tx,
                            now,
                            source,
                            items,
                            &self.dedup,
                            self.dedup_ttl_ms,
                            &mut batch_keys,
                            &mut staged,
                        )
                        .map(|r| Reply::Accept(reply, r)),
                        Command::Settle { settlement, reply } => {
                            record::settle(&tx, now, settlement).map(|r| Reply::Settle(reply, r))
                        }
                        Command::Finish {
                            run_id,
                            result,
                            reply,
                        } => record::finish(&tx, now, run_id, &result, &self.retry)
                            .map(|r| Reply::Finish(reply, r)),
                        Command::SetPaused { paused, reply } => {
                            record::set_switch(&tx, now, "paused", paused)
                                .map(|()| Reply::Done(reply))
                        }
                        Command::Close { .. } => unreachable!("Close never enters a batch"),
                    };
                    match result {
                        Ok(r) => replies.push(r),
                        Err(e) => failed = Some(e),
                    }
                }
                if failed.is_none() {
                    if let Err(e) = tx.commit() {
                        failed = Some(e.into());
                    }
                }
            }
        }
        let mut failing = self
            .failing
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *failing = failed.as_ref().map(ToString::to_string);
        drop(failing);
        if let Some(err) = failed {
            tracing::error!(error = %err, "journal commit failed; the batch is refused");
            let err = || JournalError::Commit(err.to_string());
            for r in replies {
                match r {
                    Reply::Accept(s, _) => drop(s.send(Err(err()))),
                    Reply::Settle(s, _) => drop(s.send(Err(err()))),
                    Reply::Finish(s, _) => drop(s.send(Err(err()))),
                    Reply::Done(s) => drop(s.send(Err(err()))),
                }
            }
            for cmd in unprocessed {
                match cmd {
                    Command::Accept { reply, .. } => drop(reply.send(Err(err()))),
                    Command::Settle { reply, .. } => drop(reply.send(Err(err()))),
                    Command::Finish { reply, .. } => drop(reply.send(Err(err()))),
                    Command::SetPaused { reply, .. } => drop(reply.send(Err(err()))),
                    Command::Close { .. } => {}
                }
            }
            return;
        }
        self.dedup.record(&staged.dedup);
        for p in staged.forward {
            // The pipeline is gone only at shutdown; the decision stays pending in the journal.
            let _ = self.pipeline.send(p);
        }
        for r in replies {
            match r {
                Reply::Accept(s, rep) => drop(s.send(Ok(rep))),
                Reply::Settle(s, id) => drop(s.send(Ok(id))),
                Reply::Finish(s, retries) => drop(s.send(Ok(retries))),
                Reply::Done(s) => drop(s.send(Ok(()))),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::schema::lock_db;
    use super::super::test_support::{accept_one, act, db_path, open, read};
    use crate::journal::JournalError;
    use crate::model::{DesiredState, Source};

    #[tokio::test]
    async fn an_accepted_intent_is_committed_before_it_is_answered_and_forwarded() {
        let dir = tempfile::tempdir().unwrap();
        let mut o = open(dir.path(), 0);
        let p = accept_one(&mut o, "a1", "s1").await;
        // Another connection sees it: it was committed, not only staged.
        let outcome: String = read(dir.path())
            .query_row("SELECT outcome FROM decisions WHERE id = ?1", [p.id], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(outcome, "pending");
        assert!(o.journal.is_running());
        assert_eq!(o.journal.failing(), None);
        assert_eq!(o.journal.backlog(), 0);
    }

    #[tokio::test]
    async fn close_releases_the_lock_and_later_commands_fail() {
        let dir = tempfile::tempdir().unwrap();
        let o = open(dir.path(), 0);
        o.journal.close().await;
        lock_db(&db_path(dir.path())).unwrap();
        let err = o
            .journal
            .accept(
                Source::Alertmanager,
                vec![act("a1", "s1", DesiredState::Drain)],
            )
            .await
            .unwrap_err();
        assert!(matches!(err, JournalError::Closed), "{err}");
        assert!(!o.journal.is_running());
    }
}
