//! Wiring: starts the journal, the pipeline (coalesce -> guard -> execute) and builds the state
//! the HTTP handlers share.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::auth::Authenticator;
use crate::coalesce::Coalescer;
use crate::config::Config;
use crate::executor::{Executor, RunRequest};
use crate::guard::Guard;
use crate::journal::{Journal, JournalError, JournalOptions, NewRun, Retry, Settlement, Waiting};
use crate::lifecycle::book::{entries_from, Book, Refusal as LifeRefusal};
use crate::lifecycle::life::Released;
use crate::lifecycle::report::outcomes_from_stats;
use crate::lifecycle::stage::{After, Arrival, Stage};
use crate::lifecycle::store::{LifeStore, StoreError};
use crate::metrics::{Metrics, ReasonLabel, ResultLabel, StateLabel};
use crate::model::{now_ms, Outcome, Pending, RunResult, RunStatus};
use crate::rules::Rule;
use crate::target::TargetsConfig;

/// The pause switch: a flag (config or admin endpoint) or the presence of a file.
#[derive(Debug, Clone)]
pub struct PauseSwitch {
    flag: Arc<AtomicBool>,
    file: Option<PathBuf>,
    /// The file could not be looked at last time (logged once per change).
    file_unreadable: Arc<AtomicBool>,
}

impl PauseSwitch {
    /// A switch starting in `paused`, also paused while `file` exists.
    pub fn new(paused: bool, file: Option<PathBuf>) -> Self {
        Self {
            flag: Arc::new(AtomicBool::new(paused)),
            file,
            file_unreadable: Arc::default(),
        }
    }

    /// Sets the flag (the file, if any, still pauses while it exists).
    pub fn set(&self, paused: bool) {
        self.flag.store(paused, Ordering::SeqCst);
    }

    /// Whether actions are held: the flag is set, or the file exists, or whether it exists
    /// cannot be told (an operator may have paused; failing closed is the safe side).
    pub fn is_paused(&self) -> bool {
        self.flag.load(Ordering::SeqCst) || self.file.as_ref().is_some_and(|f| self.file_pauses(f))
    }

    fn file_pauses(&self, file: &Path) -> bool {
        let looked = std::fs::metadata(file);
        let unreadable = matches!(&looked, Err(e) if e.kind() != std::io::ErrorKind::NotFound);
        if self.file_unreadable.swap(unreadable, Ordering::SeqCst) != unreadable {
            match &looked {
                Err(e) if unreadable => {
                    tracing::error!(file = %file.display(), error = %e, "cannot tell whether the pause file exists; paused until it can")
                }
                _ => {
                    tracing::warn!(file = %file.display(), "the pause file can be looked at again")
                }
            }
        }
        looked.is_ok() || unreadable
    }
}

/// What the HTTP handlers share.
#[derive(Debug, Clone)]
pub struct AppState {
    pub(crate) inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) auth: Authenticator,
    pub(crate) rules: Vec<Rule>,
    pub(crate) targets: TargetsConfig,
    pub(crate) journal: Journal,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) pause: PauseSwitch,
    pub(crate) max_body_bytes: usize,
    pub(crate) request_timeout: Duration,
    pub(crate) max_concurrent_requests: usize,
    pub(crate) life_store: LifeStore,
}

impl AppState {
    /// The metrics registry.
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// The pause switch.
    pub fn pause(&self) -> &PauseSwitch {
        &self.inner.pause
    }
}

/// Why the relay could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Journal could not be opened or recovered.
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// A secret file is unusable.
    #[error(transparent)]
    Auth(#[from] crate::auth::AuthError),
    /// The AWX executor could not be set up.
    #[error("executor: {0}")]
    Awx(#[from] crate::executor::awx::AwxError),
    /// The life-cycle tables could not be read.
    #[error(transparent)]
    Lifecycle(#[from] StoreError),
}

/// A running relay (journal + pipeline); serve [`Relay::state`] with [`crate::http::app`].
#[derive(Debug)]
pub struct Relay {
    state: AppState,
    shutdown: watch::Sender<bool>,
    pipeline: JoinHandle<()>,
}

/// Builds the executor the configuration asks for (dry-run when `guard.dry_run` is set).
pub fn executor_from_config(cfg: &Config) -> Result<Arc<dyn Executor>, StartError> {
    use crate::config::ExecutorConfig;
    if cfg.guard.dry_run {
        return Ok(Arc::new(crate::executor::DryRun));
    }
    Ok(match &cfg.executor {
        ExecutorConfig::AnsibleRunner(r) => Arc::new(
            crate::executor::ansible_runner::AnsibleRunner::new(r.clone()),
        ),
        ExecutorConfig::Awx(a) => Arc::new(crate::executor::awx::Awx::new(a.clone())?),
        ExecutorConfig::DryRun => Arc::new(crate::executor::DryRun),
    })
}

impl Relay {
    /// Opens the journal, recovers unfinished work and starts the pipeline.
    pub fn start(cfg: &Config, executor: Arc<dyn Executor>) -> Result<Self, StartError> {
        let auth = Authenticator::load(&cfg.auth)?;
        let metrics = Arc::new(Metrics::new());
        let (pipe_tx, pipe_rx) = mpsc::unbounded_channel();
        let (journal, mut recovered) = Journal::start(
            &JournalOptions {
                path: cfg.journal.path.clone(),
                dedup_ttl: Duration::from_secs(cfg.journal.dedup_ttl_secs),
                dedup_cache: crate::dedup::CACHE_ENTRIES,
                max_batch: cfg.journal.max_batch,
                synchronous: cfg.journal.synchronous,
                retention: Duration::from_secs(cfg.journal.retention_days.saturating_mul(86_400)),
                retry: cfg.retry.clone(),
            },
            pipe_tx,
        )?;
        auth.remember_all(std::mem::take(&mut recovered.signatures));
        if recovered.paused {
            tracing::warn!("still paused through the admin endpoint before the restart; POST /admin/resume to resume");
        }
        let pause = PauseSwitch::new(
            cfg.guard.paused || recovered.paused,
            cfg.guard.pause_file.clone(),
        );
        let (life_store, stored) = LifeStore::open(&cfg.journal.path)?;
        let mut stage = Stage::new(Book::new(
            cfg.lifecycle.clone(),
            cfg.rule_policies(),
            cfg.panic.clone(),
            cfg.membership(),
            entries_from(stored),
        ));
        let mut coalescer = Coalescer::new(cfg.coalesce.window_ms);
        let started_ms = now_ms();
        let mut replays = HashSet::new();
        let mut superseded = Vec::new();
        let mut closed = Vec::new();
        if !recovered.pending.is_empty() {
            tracing::info!(
                decisions = recovered.pending.len(),
                "resuming unfinished decisions from the journal"
            );
        }
        for r in recovered.pending {
            if r.replay {
                replays.insert(r.pending.id);
                superseded.extend(coalescer.add(r.pending, started_ms));
                continue;
            }
            match stage.arrive(r.pending) {
                Arrival::Queue(p) => superseded.extend(coalescer.add(p, started_ms)),
                Arrival::Refused(p, refusal) => {
                    closed.push((p.id, refusal.outcome(), refusal.to_string()));
                }
            }
        }
        // A target the life cycle knows to be back in service (released by an operator, say)
        // no longer counts out, whatever state the guard last recorded for it.
        let mut targets = recovered.targets;
        targets.retain(|key, _| {
            stage
                .book()
                .entry(key)
                .is_none_or(|e| e.life.phase.counts_out())
        });
        let (shutdown, shutdown_rx) = watch::channel(false);
        let pipeline = Pipeline {
            rx: pipe_rx,
            coalescer,
            guard: Guard::new(cfg.guard.clone(), targets),
            replays,
            superseded,
            stage,
            life_store: life_store.clone(),
            closed,
            waiting: Vec::new(),
            journal: journal.clone(),
            executor,
            metrics: metrics.clone(),
            pause: pause.clone(),
            shutdown: shutdown_rx,
            grace: Duration::from_secs(cfg.server.shutdown_grace_secs),
        };
        let pipeline = tokio::spawn(pipeline.run());
        let state = AppState {
            inner: Arc::new(Inner {
                auth,
                rules: cfg.compiled_rules(),
                targets: cfg.targets.clone(),
                journal,
                metrics,
                pause,
                max_body_bytes: cfg.server.max_body_bytes,
                request_timeout: Duration::from_millis(cfg.server.request_timeout_ms),
                max_concurrent_requests: cfg.server.max_concurrent_requests,
                life_store,
            }),
        };
        Ok(Self {
            state,
            shutdown,
            pipeline,
        })
    }

    /// State for [`crate::http::app`].
    pub fn state(&self) -> AppState {
        self.state.clone()
    }

    /// Stops the pipeline (waiting up to the grace period for a run in progress; whatever is
    /// not finished stays in the journal and resumes on the next start), then closes the
    /// journal and releases its lock.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        if let Err(e) = self.pipeline.await {
            tracing::error!(error = %e, "pipeline task failed");
        }
        self.state.inner.journal.close().await;
    }
}

/// Refused actions of one batch logged one by one; a storm's others are one line with their count
/// (each is journaled with its reason and counted in `actions_refused_total`).
const REFUSALS_LOGGED: usize = 10;

/// How often the pipeline looks at the pause file, the breaker gauge and anything it may have
/// missed, whatever the coalescing window.
const HOUSEKEEPING: Duration = Duration::from_millis(200);

/// Sleeps until `deadline`, or forever without one (a `select!` branch that never fires).
async fn sleep_until_if(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

struct RunJob {
    request: RunRequest,
    items: Vec<Pending>,
}

/// A finished run, reported by a fleet worker to the pipeline.
struct RunDone {
    fleet: String,
    items: Vec<Pending>,
    succeeded: bool,
    /// The decisions journaled as `retrying` (the others of a failed run gave up).
    retries: Vec<Retry>,
    /// What the module said per load balancer and action.
    remediate: serde_json::Value,
}

/// One fleet's worker: runs its jobs one after the other.
struct Worker {
    jobs: mpsc::Sender<RunJob>,
    task: JoinHandle<()>,
}

struct Pipeline {
    rx: mpsc::UnboundedReceiver<Pending>,
    coalescer: Coalescer,
    guard: Guard,
    /// Decisions whose run was interrupted by a stop: re-run without a second guard check.
    replays: HashSet<i64>,
    /// Ids replaced in the coalescer, to record at the next settlement.
    superseded: Vec<i64>,
    /// The life cycle of each target.
    stage: Stage,
    life_store: LifeStore,
    /// Decisions closed by the life cycle, to record at the next settlement.
    closed: Vec<(i64, &'static str, String)>,
    /// Decisions waiting for their next life-cycle step, to record at the next settlement.
    waiting: Vec<Waiting>,
    journal: Journal,
    executor: Arc<dyn Executor>,
    metrics: Arc<Metrics>,
    pause: PauseSwitch,
    shutdown: watch::Receiver<bool>,
    grace: Duration,
}

impl Pipeline {
    async fn run(mut self) {
        let (done_tx, mut done_rx) = mpsc::unbounded_channel::<RunDone>();
        let mut workers: HashMap<String, Worker> = HashMap::new();
        let mut busy: HashSet<String> = HashSet::new();
        let mut housekeeping = tokio::time::interval(HOUSEKEEPING);
        housekeeping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            // Sleep until the next idle fleet is due; while paused only the housekeeping tick
            // looks again (the pause file has no other way to announce its removal).
            let next_due = if self.pause.is_paused() {
                None
            } else {
                self.coalescer.next_due_ms(&busy)
            };
            let wake_at = next_due.map(|due| {
                let wait = u64::try_from(due.saturating_sub(now_ms())).unwrap_or(0);
                tokio::time::Instant::now() + Duration::from_millis(wait)
            });
            tokio::select! {
                item = self.rx.recv() => match item {
                    Some(p) => self.arrive(p),
                    None => break,
                },
                Some(done) = done_rx.recv() => {
                    busy.remove(&done.fleet);
                    self.finished(done).await;
                }
                () = sleep_until_if(wake_at) => self.flush(&mut workers, &mut busy, &done_tx).await,
                _ = housekeeping.tick() => {
                    // Off the path of a due run: a release waits for the next tick at most.
                    self.apply_releases(now_ms()).await;
                    self.flush(&mut workers, &mut busy, &done_tx).await;
                }
                _ = self.shutdown.changed() => break,
            }
            self.metrics
                .queue_depth
                .set(i64::try_from(self.coalescer.len()).unwrap_or(i64::MAX));
        }
        // Let a run in progress finish, its result carried into the life cycle and the journal
        // as at any other time (a deferred restore or a ramp step is work owed the next start);
        // anything else is already journaled as pending and resumes on the next start.
        let deadline = tokio::time::Instant::now() + self.grace;
        while !busy.is_empty() {
            match tokio::time::timeout_at(deadline, done_rx.recv()).await {
                Ok(Some(done)) => {
                    busy.remove(&done.fleet);
                    self.finished(done).await;
                    self.record_leftovers().await;
                }
                _ => {
                    tracing::warn!(fleets = ?busy, "stopping with runs in progress; they resume on the next start");
                    break;
                }
            }
        }
        // Dropping a run in progress kills its process (kill_on_drop); it stays `running` in
        // the journal and is re-run on the next start.
        for worker in workers.values() {
            worker.task.abort();
        }
    }

    /// A run failed: its targets' real state is unknown, so the guard counts them as out
    /// (a failed restore must not free budget); each action the journal scheduled a retry for
    /// is retried at that time, as it was admitted, unless a newer intent for its target
    /// arrived meanwhile.
    fn after_failure(&mut self, items: Vec<Pending>, retries: &[Retry]) {
        self.stage.failed(&items, now_ms());
        for mut p in items {
            self.guard.mark_unknown(&p.intent.target);
            let Some(retry) = retries.iter().find(|r| r.id == p.id) else {
                tracing::error!(decision = p.id, target = %p.intent.target, "giving up on a failed action");
                self.stage.forget(p.id);
                continue;
            };
            tracing::warn!(decision = p.id, target = %p.intent.target, attempt = retry.attempt, "retrying a failed action");
            p.intent.not_before_ms = retry.at_ms;
            self.replays.insert(p.id);
            self.superseded.extend(self.coalescer.add(p, now_ms()));
        }
    }

    async fn flush(
        &mut self,
        workers: &mut HashMap<String, Worker>,
        busy: &mut HashSet<String>,
        done_tx: &mpsc::UnboundedSender<RunDone>,
    ) {
        let now = now_ms();
        let paused = self.pause.is_paused();
        self.metrics.paused.set(i64::from(paused));
        self.metrics
            .breaker_open
            .set(i64::from(self.guard.breaker_open(now)));
        if paused {
            // Counted only with work due: the proof that the pause, not the window, held it.
            if !self.coalescer.due_fleets(now).is_empty() {
                self.metrics.runs_held.inc();
            }
            self.persist_lifecycle().await;
            return;
        }
        for fleet in self.coalescer.due_fleets(now) {
            if busy.contains(&fleet) {
                continue;
            }
            let due = self.coalescer.take_due(&fleet, now);
            let (replays, fresh): (Vec<_>, Vec<_>) =
                due.into_iter().partition(|p| self.replays.contains(&p.id));
            let sorted = self.stage.sort(fresh, now);
            for p in sorted.held {
                self.superseded.extend(self.coalescer.add(p, now));
            }
            for (p, refusal) in sorted.parked {
                tracing::warn!(target = %p.intent.target, reason = %refusal, "restore held until an operator releases the target");
                self.waiting.push(Waiting {
                    id: p.id,
                    outcome: "held",
                    at_ms: i64::MAX,
                    detail: refusal.to_string(),
                });
                self.superseded.extend(self.coalescer.add(p, now));
            }
            for (p, refusal) in sorted.refused {
                self.refuse(&p, &refusal);
            }
            // Before the run starts: whoever sees its result sees the queue without it.
            self.metrics
                .queue_depth
                .set(i64::try_from(self.coalescer.len()).unwrap_or(i64::MAX));
            let mut admission = self.guard.admit(sorted.guarded, now);
            let not_run: Vec<Pending> = admission
                .refused
                .iter()
                .map(|(p, _)| p.clone())
                .chain(admission.noop.iter().cloned())
                .collect();
            self.stage.admitted(&admission.admitted, &not_run, now);
            admission.noop.extend(sorted.noop);
            for r in sorted.restores {
                // A restore step only gives capacity back: recorded, never refused.
                self.guard.record_replay(&r.intent);
                admission.admitted.push(r);
            }
            for r in replays {
                self.replays.remove(&r.id);
                self.guard.record_replay(&r.intent);
                admission.admitted.push(r);
            }
            for (n, (p, refusal)) in admission.refused.iter().enumerate() {
                if n < REFUSALS_LOGGED {
                    tracing::warn!(target = %p.intent.target, state = p.intent.state.as_str(), reason = %refusal, "action refused");
                }
                self.metrics
                    .actions_refused
                    .get_or_create(&ReasonLabel {
                        reason: refusal.kind().to_owned(),
                    })
                    .inc();
            }
            let more = admission.refused.len().saturating_sub(REFUSALS_LOGGED);
            if more > 0 {
                tracing::warn!(fleet = %fleet, more, "more actions refused in this batch (`autoheal-relay history` lists each)");
            }
            for p in &admission.admitted {
                self.metrics
                    .actions_decided
                    .get_or_create(&StateLabel {
                        state: p.intent.state.as_str().to_owned(),
                    })
                    .inc();
            }
            let admitted = admission.admitted.clone();
            let closed = std::mem::take(&mut self.closed);
            let waiting = std::mem::take(&mut self.waiting);
            let settlement = Settlement {
                fleet: fleet.clone(),
                closed: closed.clone(),
                waiting: waiting.clone(),
                superseded: std::mem::take(&mut self.superseded),
                noop: admission.noop.iter().map(|p| p.id).collect(),
                refused: admission
                    .refused
                    .iter()
                    .map(|(p, r)| (p.id, r.to_string()))
                    .collect(),
                run: (!admitted.is_empty()).then(|| NewRun {
                    executor: self.executor.name(),
                    items: admitted.clone(),
                }),
            };
            match self.journal.settle(settlement).await {
                Ok(Some(run_id)) => {
                    busy.insert(fleet.clone());
                    let worker = workers.entry(fleet.clone()).or_insert_with(|| {
                        spawn_worker(
                            fleet.clone(),
                            self.executor.clone(),
                            self.journal.clone(),
                            self.metrics.clone(),
                            done_tx.clone(),
                        )
                    });
                    let request = RunRequest {
                        run_id,
                        fleet: fleet.clone(),
                        actions: admitted.iter().map(|p| (&p.intent).into()).collect(),
                    };
                    tracing::info!(run = run_id, fleet = %fleet, actions = request.actions.len(), "run queued");
                    let job = RunJob {
                        request,
                        items: admitted,
                    };
                    if worker.jobs.send(job).await.is_err() {
                        tracing::error!(fleet = %fleet, "fleet worker is gone");
                        busy.remove(&fleet);
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    // Nothing of this batch was recorded: keep it for a later try. The guard
                    // already counted the admitted ones, so they come back as replays.
                    tracing::error!(error = %e, "cannot record a batch; retrying shortly");
                    self.closed.extend(closed);
                    self.waiting.extend(waiting);
                    let retry_at = now.saturating_add(
                        i64::try_from(HOUSEKEEPING.as_millis()).unwrap_or(i64::MAX),
                    );
                    for mut p in admission.admitted {
                        self.replays.insert(p.id);
                        p.intent.not_before_ms = p.intent.not_before_ms.max(retry_at);
                        self.coalescer.add(p, now);
                    }
                }
            }
        }
        self.record_leftovers().await;
    }

    /// A fleet's run ended: what the module said moves the targets' life cycles on.
    async fn finished(&mut self, done: RunDone) {
        if done.succeeded {
            self.after_success(&done.items, &done.remediate);
        } else {
            self.after_failure(done.items, &done.retries);
        }
        self.persist_lifecycle().await;
    }

    /// Journals the decisions settled outside a run (superseded, closed, waiting for a life-cycle
    /// step) and the life cycle's changes.
    async fn record_leftovers(&mut self) {
        if !self.superseded.is_empty() || !self.closed.is_empty() || !self.waiting.is_empty() {
            let superseded = std::mem::take(&mut self.superseded);
            let closed = std::mem::take(&mut self.closed);
            let waiting = std::mem::take(&mut self.waiting);
            if let Err(e) = self
                .journal
                .settle(Settlement {
                    superseded: superseded.clone(),
                    closed: closed.clone(),
                    waiting: waiting.clone(),
                    ..Settlement::default()
                })
                .await
            {
                tracing::error!(error = %e, "cannot record superseded and life-cycle decisions");
                self.superseded = superseded;
                self.closed = closed;
                self.waiting = waiting;
            }
        }
        self.persist_lifecycle().await;
    }

    /// An intent arrives: placed in its real backends and counted for panic, then queued.
    fn arrive(&mut self, p: Pending) {
        match self.stage.arrive(p) {
            Arrival::Queue(p) => self.superseded.extend(self.coalescer.add(p, now_ms())),
            Arrival::Refused(p, refusal) => self.refuse(&p, &refusal),
        }
    }

    /// The life cycle refused a decision: logged, counted, journaled at the next settlement.
    fn refuse(&mut self, p: &Pending, refusal: &LifeRefusal) {
        tracing::warn!(target = %p.intent.target, state = p.intent.state.as_str(), reason = %refusal, "action refused");
        self.metrics
            .actions_refused
            .get_or_create(&ReasonLabel {
                reason: refusal.outcome().to_owned(),
            })
            .inc();
        self.closed
            .push((p.id, refusal.outcome(), refusal.to_string()));
    }

    /// A run succeeded: what the module said of each target moves its life cycle on; a ramp
    /// step or a deferred restore comes back when due.
    fn after_success(&mut self, items: &[Pending], remediate: &serde_json::Value) {
        let now = now_ms();
        let outcomes = outcomes_from_stats(remediate);
        for (id, after) in self.stage.succeeded(items, &outcomes, now) {
            match after {
                After::Done => {}
                After::Again {
                    pending,
                    outcome,
                    detail,
                } => {
                    if outcome == "deferred" {
                        self.metrics.restores_deferred.inc();
                    }
                    tracing::info!(decision = id, target = %pending.intent.target, outcome, detail = %detail, "restore continues later");
                    self.waiting.push(Waiting {
                        id,
                        outcome,
                        at_ms: pending.intent.not_before_ms,
                        detail,
                    });
                    self.superseded.extend(self.coalescer.add(*pending, now));
                }
                After::Closed { outcome, detail } => {
                    if outcome == "gave_up" {
                        self.metrics.restores_given_up.inc();
                        tracing::error!(decision = id, detail = %detail, "restore given up");
                    } else {
                        tracing::warn!(decision = id, outcome, detail = %detail, "the module left the target alone");
                    }
                    if Outcome::from(outcome).releases_target() {
                        if let Some(p) = items.iter().find(|p| p.id == id) {
                            self.guard.forget(&p.intent.target.key());
                        }
                    }
                    self.closed.push((id, outcome, detail));
                }
            }
        }
    }

    /// Applies the operators' release requests (the `release` command, the admin endpoint).
    async fn apply_releases(&mut self, now: i64) {
        let requests = match self.life_store.pending_releases().await {
            Ok(requests) => requests,
            Err(e) => {
                tracing::error!(error = %e, "cannot read release requests");
                return;
            }
        };
        for request in requests {
            let released = self.stage.release(&request.key, now);
            let result = match released {
                Released::Restore => {
                    self.coalescer.wake(&request.key, now);
                    "restore"
                }
                Released::Cleared => {
                    self.guard.forget(&request.key);
                    "cleared"
                }
                Released::NotHeld => "not_held",
            };
            tracing::warn!(target = %request.key, by = %request.requested_by, result, "release requested by an operator");
            if let Err(e) = self
                .life_store
                .finish_release(request.id, result, now)
                .await
            {
                tracing::error!(error = %e, "cannot record a release");
            }
        }
    }

    /// Writes the life cycle's changes and sets its gauges.
    async fn persist_lifecycle(&mut self) {
        let records = self.stage.take_records();
        if !records.is_empty() {
            if let Err(e) = self.life_store.save(records, now_ms()).await {
                tracing::error!(error = %e, "cannot record the targets' life cycles");
            }
        }
        self.stage.publish(&self.metrics);
    }
}

fn spawn_worker(
    fleet: String,
    executor: Arc<dyn Executor>,
    journal: Journal,
    metrics: Arc<Metrics>,
    done: mpsc::UnboundedSender<RunDone>,
) -> Worker {
    // Capacity 1: the pipeline only sends when the fleet is idle.
    let (jobs, mut rx) = mpsc::channel::<RunJob>(1);
    let task = tokio::spawn(async move {
        while let Some(job) = rx.recv().await {
            metrics.runs_started.inc();
            let result = run_catching_panics(&executor, &job.request, &metrics).await;
            metrics
                .runs_finished
                .get_or_create(&ResultLabel {
                    result: result.status.to_string(),
                })
                .inc();
            #[allow(clippy::cast_precision_loss)]
            metrics
                .run_duration
                .observe(result.duration_ms as f64 / 1000.0);
            if result.succeeded() {
                tracing::info!(run = job.request.run_id, fleet = %fleet, ms = result.duration_ms, "run succeeded");
            } else {
                tracing::error!(run = job.request.run_id, fleet = %fleet, status = %result.status, rc = ?result.rc, detail = %result.detail, "run failed");
            }
            let succeeded = result.succeeded();
            let remediate = result.remediate.clone();
            let retries = match journal.finish(job.request.run_id, result).await {
                Ok(retries) => retries,
                Err(e) => {
                    // The run stays `running` in the journal, so a restart re-runs it; until
                    // then, give it one more try.
                    tracing::error!(run = job.request.run_id, error = %e, "cannot record the run result");
                    job.items
                        .iter()
                        .map(|p| Retry {
                            id: p.id,
                            attempt: 0,
                            at_ms: now_ms(),
                        })
                        .collect()
                }
            };
            let _ = done.send(RunDone {
                fleet: fleet.clone(),
                items: job.items,
                succeeded,
                retries,
                remediate,
            });
        }
    });
    Worker { jobs, task }
}

/// A run's task, aborted when the worker that waits for it is (at a stop), as the run itself
/// would be if it ran in the worker's task: its process is killed and it resumes on the next
/// start.
struct AbortOnDrop(JoinHandle<RunResult>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Runs one job in its own task, so that a panic in the executor fails that run (recorded with
/// the panic message) instead of taking the fleet's worker, and the fleet, down with it.
async fn run_catching_panics(
    executor: &Arc<dyn Executor>,
    request: &RunRequest,
    metrics: &Metrics,
) -> RunResult {
    let started = std::time::Instant::now();
    let mut run = AbortOnDrop({
        let executor = executor.clone();
        let request = request.clone();
        tokio::spawn(async move { executor.run(&request).await })
    });
    match (&mut run.0).await {
        Ok(result) => result,
        Err(e) => {
            let why = if e.is_panic() {
                metrics.runs_panicked.inc();
                let payload = e.into_panic();
                let message = payload
                    .downcast_ref::<&str>()
                    .map(ToString::to_string)
                    .or_else(|| payload.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "no message".into());
                format!("the executor panicked: {message}")
            } else {
                "the executor's task was cancelled".to_owned()
            };
            tracing::error!(run = request.run_id, fleet = %request.fleet, error = %why, "run failed");
            RunResult {
                status: RunStatus::Error,
                rc: None,
                duration_ms: i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX),
                detail: why,
                ..RunResult::default()
            }
        }
    }
}
