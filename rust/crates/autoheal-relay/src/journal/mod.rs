//! The journal: one thread owns the SQLite database (WAL; `synchronous` FULL by default,
//! NORMAL when `journal.synchronous` says so).
//!
//! Requests hand their alerts and decisions over a bounded channel and wait for the commit that
//! contains them; the thread folds every command waiting in the channel into one transaction
//! (group commit), so a burst of requests shares a few fsyncs and none is answered before its
//! data is committed. The same database is the audit log: events, decisions (including refusals
//! and rejections), runs and their results.
//!
//! [`Journal`] is the handle the stages use; `writer` is the thread, `record` what each command
//! writes, `recovery` what is read back at startup, `retention` the pruning of old history,
//! `schema` the file, its lock and tables, and `history` the read-only queries.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::{mpsc, oneshot};

use crate::config::{RetryConfig, Synchronous};
use crate::dedup::DedupStore;
use crate::model::{
    now_ms, Alert, Decision, Pending, RecordedTarget, RunResult, Source, UsedSignature,
};

mod history;
mod record;
mod recovery;
mod retention;
mod schema;
mod writer;

pub use history::{decision_outcome, history, runs, HistoryRow};
pub use retention::prune;
pub(crate) use schema::wait_for_lock;
pub use schema::{lock_db, open_db};

use recovery::recover;
use writer::Writer;

/// Why the journal failed.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// SQLite said no (disk full, permissions, corruption...).
    #[error("journal database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The journal thread is gone (shutting down, or it crashed).
    #[error("journal is not running")]
    Closed,
    /// The group commit this command was part of failed; nothing of it was stored.
    #[error("journal commit failed: {0}")]
    Commit(String),
    /// A stored intent could not be decoded.
    #[error("journal holds an unreadable intent (decision {id}): {source}")]
    Corrupt {
        /// Decision id.
        id: i64,
        /// The JSON error.
        source: serde_json::Error,
    },
    /// Another relay holds the journal's lock.
    #[error("{path} is in use by another autoheal-relay (it holds the journal's lock); stop that one, or give this one its own journal.path")]
    Locked {
        /// The database file.
        path: PathBuf,
    },
    /// The database directory could not be created.
    #[error("cannot create {path}: {source}")]
    Dir {
        /// The directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// What became of one webhook's alerts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct AcceptReport {
    /// Alerts in the body.
    pub alerts: usize,
    /// Already seen within the dedup TTL.
    pub duplicates: usize,
    /// Intents queued.
    pub actions: usize,
    /// Refused because of an unsafe label value.
    pub rejected: usize,
    /// Matched no rule.
    pub ignored: usize,
}

/// A run to record, with the decisions it carries out.
#[derive(Debug, Clone)]
pub struct NewRun {
    /// Executor name.
    pub executor: &'static str,
    /// The decisions.
    pub items: Vec<Pending>,
}

/// The fate of a batch the pipeline took from the coalescer.
#[derive(Debug, Default)]
pub struct Settlement {
    /// Fleet.
    pub fleet: String,
    /// Replaced by a later intent for the same target.
    pub superseded: Vec<i64>,
    /// Nothing to do.
    pub noop: Vec<i64>,
    /// Refused by the guard, with the reason.
    pub refused: Vec<(i64, String)>,
    /// Closed by the life cycle with its own outcome (`panic`, `quarantined`, `operator_state`,
    /// `gave_up`, `not_found`) and the reason. A `not_found` target is forgotten: it is not out.
    pub closed: Vec<(i64, &'static str, String)>,
    /// Waiting for their next step (`deferred`, `ramping`) at a time: work owed, resumed after a
    /// restart like a retry.
    pub waiting: Vec<Waiting>,
    /// The run, if anything was admitted.
    pub run: Option<NewRun>,
}

/// A decision waiting for its next life-cycle step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Waiting {
    /// The decision.
    pub id: i64,
    /// `deferred` or `ramping`.
    pub outcome: &'static str,
    /// When it is due.
    pub at_ms: i64,
    /// Why, for people.
    pub detail: String,
}

/// What the handles ask of the writer; each carries the channel its answer goes back on.
pub(super) enum Command {
    Accept {
        source: Source,
        items: Vec<(Alert, Decision)>,
        signature: Option<UsedSignature>,
        reply: oneshot::Sender<Result<AcceptReport, JournalError>>,
    },
    Settle {
        settlement: Settlement,
        reply: oneshot::Sender<Result<Option<i64>, JournalError>>,
    },
    Finish {
        run_id: i64,
        result: RunResult,
        reply: oneshot::Sender<Result<Vec<Retry>, JournalError>>,
    },
    SetPaused {
        paused: bool,
        reply: oneshot::Sender<Result<(), JournalError>>,
    },
    /// Commits nothing more, closes the database and releases its lock, then answers.
    Close { reply: oneshot::Sender<()> },
}

/// A decision of a failed run that is to be tried again, journaled as `retrying`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retry {
    /// Decision id.
    pub id: i64,
    /// Failed attempts so far.
    pub attempt: u32,
    /// Not before this time (ms since the epoch).
    pub at_ms: i64,
}

/// State found in the database at startup.
#[derive(Debug, Default)]
pub struct Recovered {
    /// Decisions not yet carried out, oldest first; `replay` is set on those whose run was
    /// interrupted or is to be retried (they were admitted once and are re-run as they are).
    pub pending: Vec<Recovery>,
    /// The state last asked for, per target key.
    pub targets: HashMap<String, RecordedTarget>,
    /// Paused through the admin endpoint when the relay stopped.
    pub paused: bool,
    /// Webhook signatures accepted and not stale yet.
    pub signatures: Vec<UsedSignature>,
}

/// One unfinished decision.
#[derive(Debug, Clone)]
pub struct Recovery {
    /// The decision.
    pub pending: Pending,
    /// Its run was interrupted.
    pub replay: bool,
}

/// Handle to the journal thread. Cloning is cheap; the thread stops when every handle is dropped.
#[derive(Debug, Clone)]
pub struct Journal {
    tx: mpsc::Sender<Command>,
    /// Why the last commit failed, until one succeeds (for `/readyz`).
    failing: Arc<Mutex<Option<String>>>,
}

/// Settings for the journal thread.
#[derive(Debug, Clone)]
pub struct JournalOptions {
    /// Database file.
    pub path: PathBuf,
    /// Dedup window.
    pub dedup_ttl: Duration,
    /// Most recent dedup keys kept in memory (the whole window is on disk).
    pub dedup_cache: usize,
    /// Most commands per transaction (also the channel capacity).
    pub max_batch: usize,
    /// SQLite `synchronous`.
    pub synchronous: Synchronous,
    /// Finished history older than this is deleted (hourly).
    pub retention: Duration,
    /// Retries of the actions of a failed run.
    pub retry: RetryConfig,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Accept { .. } => "Accept",
            Self::Settle { .. } => "Settle",
            Self::Finish { .. } => "Finish",
            Self::SetPaused { .. } => "SetPaused",
            Self::Close { .. } => "Close",
        })
    }
}

impl Journal {
    /// Opens the database, recovers unfinished work and starts the writer thread. Intents
    /// accepted from now on are sent to `pipeline` after their commit.
    pub fn start(
        opts: &JournalOptions,
        pipeline: mpsc::UnboundedSender<Pending>,
    ) -> Result<(Self, Recovered), JournalError> {
        let lock = lock_db(&opts.path)?;
        let mut conn = open_db(&opts.path, opts.synchronous)?;
        let recovered = recover(&mut conn)?;
        let dedup_ttl_ms = i64::try_from(opts.dedup_ttl.as_millis()).unwrap_or(i64::MAX);
        let dedup = DedupStore::open(&opts.path, &conn, now_ms(), dedup_ttl_ms, opts.dedup_cache)?;
        let (tx, rx) = mpsc::channel(opts.max_batch);
        let failing = Arc::new(Mutex::new(None));
        let writer = Writer {
            failing: failing.clone(),
            conn,
            _lock: lock,
            retry: opts.retry.clone(),
            rx,
            pipeline,
            dedup,
            dedup_ttl_ms,
            retention_ms: i64::try_from(opts.retention.as_millis()).unwrap_or(i64::MAX),
            max_batch: opts.max_batch,
        };
        std::thread::Builder::new()
            .name("journal".into())
            .spawn(move || writer.run())
            .map_err(|source| JournalError::Dir {
                path: opts.path.clone(),
                source,
            })?;
        Ok((Self { tx, failing }, recovered))
    }

    /// Journals a webhook's alerts and decisions; returns after the commit.
    pub async fn accept(
        &self,
        source: Source,
        items: Vec<(Alert, Decision)>,
    ) -> Result<AcceptReport, JournalError> {
        self.call(|reply| Command::Accept {
            source,
            items,
            signature: None,
            reply,
        })
        .await
    }

    /// Journals a signed webhook's alerts and decisions with its signature, in one commit:
    /// once they are answered for, the same request is a replay, after a restart too.
    pub async fn accept_signed(
        &self,
        source: Source,
        items: Vec<(Alert, Decision)>,
        signature: UsedSignature,
    ) -> Result<AcceptReport, JournalError> {
        self.call(|reply| Command::Accept {
            source,
            items,
            signature: Some(signature),
            reply,
        })
        .await
    }

    /// Records what became of a batch; returns the new run's id, if it has one.
    pub async fn settle(&self, settlement: Settlement) -> Result<Option<i64>, JournalError> {
        self.call(|reply| Command::Settle { settlement, reply })
            .await
    }

    /// Records a run's result; if it failed, schedules the retries its decisions have left
    /// and returns them.
    pub async fn finish(&self, run_id: i64, result: RunResult) -> Result<Vec<Retry>, JournalError> {
        self.call(|reply| Command::Finish {
            run_id,
            result,
            reply,
        })
        .await
    }

    /// Records the admin endpoint's pause switch, so that it survives a restart.
    pub async fn set_paused(&self, paused: bool) -> Result<(), JournalError> {
        self.call(|reply| Command::SetPaused { paused, reply })
            .await
    }

    /// Stops the writer once the commands before this one are committed, and waits until the
    /// database is closed and its lock released. Later commands fail with [`JournalError::Closed`].
    pub async fn close(&self) {
        let (reply, closed) = oneshot::channel();
        if self.send(Command::Close { reply }).await.is_ok() {
            let _ = closed.await;
        }
    }

    /// Whether the writer thread is alive.
    pub fn is_running(&self) -> bool {
        !self.tx.is_closed()
    }

    /// Why the last commit failed, if no commit has succeeded since (a full disk, say).
    pub fn failing(&self) -> Option<String> {
        self.failing
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Commands waiting for the writer.
    pub fn backlog(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity()
    }

    async fn send(&self, cmd: Command) -> Result<(), JournalError> {
        self.tx.send(cmd).await.map_err(|_| JournalError::Closed)
    }

    /// Sends a command to the writer and waits for its answer (after the commit that holds it).
    async fn call<T>(
        &self,
        command: impl FnOnce(oneshot::Sender<Result<T, JournalError>>) -> Command,
    ) -> Result<T, JournalError> {
        let (reply, answer) = oneshot::channel();
        self.send(command(reply)).await?;
        answer.await.map_err(|_| JournalError::Closed)?
    }
}

#[cfg(test)]
mod test_support;
