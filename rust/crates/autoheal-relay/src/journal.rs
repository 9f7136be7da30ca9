//! The journal: one thread owns the SQLite database (WAL, `synchronous=FULL`).
//!
//! Requests hand their alerts and decisions over a bounded channel and wait for the commit that
//! contains them; the thread folds every command waiting in the channel into one transaction
//! (group commit), so a burst of requests shares a few fsyncs and none is answered before its
//! data is on disk. The same database is the audit log: events, decisions (including refusals
//! and rejections), runs and their results.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension, Transaction};
use serde::Serialize;
use tokio::sync::{mpsc, oneshot};

use crate::config::{RetryConfig, Synchronous};
use crate::dedup::{self, DedupKey, DedupStore};
use crate::model::{
    now_ms, Action, Alert, Decision, DesiredState, Intent, Pending, RecordedTarget, RunResult,
    Source, PARTIAL,
};

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
    /// The run, if anything was admitted.
    pub run: Option<NewRun>,
}

enum Command {
    Accept {
        source: Source,
        items: Vec<(Alert, Decision)>,
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

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS events (
    id          INTEGER PRIMARY KEY,
    received_ms INTEGER NOT NULL,
    source      TEXT NOT NULL,
    status      TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    starts_at   TEXT NOT NULL,
    alertname   TEXT NOT NULL,
    labels      TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_received ON events(received_ms);
CREATE TABLE IF NOT EXISTS decisions (
    id          INTEGER PRIMARY KEY,
    event_id    INTEGER NOT NULL REFERENCES events(id),
    decided_ms  INTEGER NOT NULL,
    updated_ms  INTEGER NOT NULL,
    outcome     TEXT NOT NULL,
    rule        TEXT,
    target      TEXT,
    fleet       TEXT,
    state       TEXT,
    intent      TEXT,
    detail      TEXT,
    run_id      INTEGER REFERENCES runs(id)
);
CREATE INDEX IF NOT EXISTS decisions_open ON decisions(outcome) WHERE outcome IN ('pending', 'running');
CREATE INDEX IF NOT EXISTS decisions_retrying ON decisions(outcome) WHERE outcome = 'retrying';
CREATE TABLE IF NOT EXISTS runs (
    id          INTEGER PRIMARY KEY,
    fleet       TEXT NOT NULL,
    executor    TEXT NOT NULL,
    started_ms  INTEGER NOT NULL,
    finished_ms INTEGER,
    status      TEXT NOT NULL,
    rc          INTEGER,
    duration_ms INTEGER,
    actions     TEXT NOT NULL,
    detail      TEXT
);
CREATE TABLE IF NOT EXISTS targets (
    key         TEXT PRIMARY KEY,
    backend     TEXT NOT NULL,
    state       TEXT NOT NULL,
    weight      TEXT,
    updated_ms  INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS retries (
    decision_id   INTEGER PRIMARY KEY REFERENCES decisions(id),
    attempts      INTEGER NOT NULL,
    not_before_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS switches (
    name        TEXT PRIMARY KEY,
    is_on       INTEGER NOT NULL,
    updated_ms  INTEGER NOT NULL
);
";

/// Creates the database file readable by its owner only (SQLite gives its WAL and shared-memory
/// files the same mode) and takes an exclusive lock on it, held as long as the returned file is
/// open: a second relay on the same journal would re-run the first one's work.
pub fn lock_db(path: &Path) -> Result<std::fs::File, JournalError> {
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| JournalError::Dir {
            path: dir.to_owned(),
            source,
        })?;
    }
    let io_err = |source| JournalError::Dir {
        path: path.to_owned(),
        source,
    };
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .map_err(io_err)?;
    match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(file),
        Err(rustix::io::Errno::WOULDBLOCK) => Err(JournalError::Locked {
            path: path.to_owned(),
        }),
        Err(e) => Err(io_err(e.into())),
    }
}

/// Opens (or creates) the database with the relay's pragmas and schema.
pub fn open_db(path: &Path, synchronous: Synchronous) -> Result<Connection, JournalError> {
    let conn = Connection::open(path)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    // FULL (the default): a commit is on disk before the request that waited for it is answered.
    conn.pragma_update(None, "synchronous", synchronous.as_str())?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.busy_timeout(Duration::from_secs(5))?;
    conn.execute_batch(SCHEMA)?;
    Ok(conn)
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

/// How often finished history past its retention is deleted.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// Deletes finished decisions older than `horizon_ms`, then the events and runs nothing refers
/// to any more, and targets back in service since before it. Unfinished work (`pending`,
/// `running`, `retrying`) and targets the relay took out are never deleted. Returns the rows
/// deleted.
pub fn prune(conn: &Connection, horizon_ms: i64) -> Result<usize, JournalError> {
    conn.execute(
        "DELETE FROM retries WHERE decision_id IN
         (SELECT id FROM decisions WHERE updated_ms < ?1 AND outcome NOT IN ('pending', 'running', 'retrying'))",
        params![horizon_ms],
    )?;
    let decisions = conn.execute(
        "DELETE FROM decisions WHERE updated_ms < ?1 AND outcome NOT IN ('pending', 'running', 'retrying')",
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

struct Writer {
    conn: Connection,
    /// The exclusive lock on the database file, released when the writer stops.
    _lock: std::fs::File,
    failing: Arc<Mutex<Option<String>>>,
    retry: RetryConfig,
    rx: mpsc::Receiver<Command>,
    pipeline: mpsc::UnboundedSender<Pending>,
    dedup: DedupStore,
    dedup_ttl_ms: i64,
    retention_ms: i64,
    max_batch: usize,
}

/// Side effects held back until the transaction commits.
#[derive(Default)]
struct Staged {
    dedup: Vec<(DedupKey, i64)>,
    forward: Vec<Pending>,
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
    fn run(mut self) {
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
                        } => accept(
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
                            settle(&tx, now, settlement).map(|r| Reply::Settle(reply, r))
                        }
                        Command::Finish {
                            run_id,
                            result,
                            reply,
                        } => finish(&tx, now, run_id, &result, &self.retry)
                            .map(|r| Reply::Finish(reply, r)),
                        Command::SetPaused { paused, reply } => {
                            set_switch(&tx, now, "paused", paused).map(|()| Reply::Done(reply))
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

#[allow(clippy::too_many_arguments)]
fn accept(
    tx: &Transaction<'_>,
    now: i64,
    source: Source,
    items: Vec<(Alert, Decision)>,
    dedup: &DedupStore,
    ttl_ms: i64,
    batch_keys: &mut HashSet<DedupKey>,
    staged: &mut Staged,
) -> Result<AcceptReport, JournalError> {
    let mut report = AcceptReport {
        alerts: items.len(),
        ..AcceptReport::default()
    };
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
                    "pending",
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
                    "rejected",
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
                    "ignored",
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

fn settle(tx: &Transaction<'_>, now: i64, s: Settlement) -> Result<Option<i64>, JournalError> {
    let mut set_outcome =
        tx.prepare_cached("UPDATE decisions SET outcome = ?2, detail = COALESCE(?3, detail), updated_ms = ?4 WHERE id = ?1")?;
    let mut forget_retry = tx.prepare_cached("DELETE FROM retries WHERE decision_id = ?1")?;
    let settled = s
        .superseded
        .iter()
        .chain(&s.noop)
        .chain(s.refused.iter().map(|(id, _)| id));
    for id in settled {
        forget_retry.execute(params![id])?;
    }
    for id in &s.superseded {
        set_outcome.execute(params![
            id,
            "superseded",
            "a later alert for the same target won",
            now
        ])?;
    }
    for id in &s.noop {
        set_outcome.execute(params![id, "noop", "target already in this state", now])?;
    }
    for (id, why) in &s.refused {
        set_outcome.execute(params![id, "refused", why, now])?;
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

/// Records a run's result. The decisions of a failed run that have retries left become
/// `retrying` (a retry is work owed: it resumes after a restart, with the attempts it has used);
/// the others become `failed`, or `partial` when the run did its work on some load balancers.
fn finish(
    tx: &Transaction<'_>,
    now: i64,
    run_id: i64,
    r: &RunResult,
    policy: &RetryConfig,
) -> Result<Vec<Retry>, JournalError> {
    tx.execute(
        "UPDATE runs SET finished_ms = ?2, status = ?3, rc = ?4, duration_ms = ?5, detail = ?6 WHERE id = ?1",
        params![run_id, now, r.status, r.rc, r.duration_ms, r.detail],
    )?;
    if r.succeeded() {
        tx.execute(
            "DELETE FROM retries WHERE decision_id IN (SELECT id FROM decisions WHERE run_id = ?1)",
            params![run_id],
        )?;
        tx.execute(
            "UPDATE decisions SET outcome = 'done', updated_ms = ?2 WHERE run_id = ?1 AND outcome = 'running'",
            params![run_id, now],
        )?;
        return Ok(Vec::new());
    }
    // What the run did to its targets is unknown: the guard counts them as out.
    tx.execute(
        "UPDATE targets SET state = 'unknown', weight = NULL, updated_ms = ?2
         WHERE key IN (SELECT target FROM decisions WHERE run_id = ?1)",
        params![run_id, now],
    )?;
    // A partial run names the hosts it failed on in its detail's first line: kept with its
    // decisions, so the history still tells it once a retry has completed them.
    let partial = r.status == PARTIAL;
    if partial {
        let note = format!(
            "run #{run_id} partial: {}",
            r.detail.lines().next().unwrap_or("")
        );
        tx.execute(
            "UPDATE decisions SET detail = ?2 WHERE run_id = ?1 AND outcome = 'running'",
            params![run_id, note],
        )?;
    }
    let exhausted = if partial { PARTIAL } else { "failed" };
    let failed: Vec<(i64, u32)> = tx
        .prepare_cached(
            "SELECT d.id, COALESCE(r.attempts, 0) FROM decisions d LEFT JOIN retries r ON r.decision_id = d.id
             WHERE d.run_id = ?1 AND d.outcome = 'running'",
        )?
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

fn recover(conn: &mut Connection) -> Result<Recovered, JournalError> {
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

fn set_switch(tx: &Transaction<'_>, now: i64, name: &str, on: bool) -> Result<(), JournalError> {
    tx.execute(
        "INSERT INTO switches (name, is_on, updated_ms) VALUES (?1, ?2, ?3)
         ON CONFLICT(name) DO UPDATE SET is_on = excluded.is_on, updated_ms = excluded.updated_ms",
        params![name, on, now],
    )?;
    Ok(())
}

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
