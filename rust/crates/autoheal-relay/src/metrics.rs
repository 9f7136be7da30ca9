//! The relay's Prometheus metrics, owned by the app state and rendered at `/metrics`.

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// Label: webhook source.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SourceLabel {
    /// `alertmanager` or `grafana`.
    pub source: String,
}

/// Label: a reason.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    /// Short machine-readable reason.
    pub reason: String,
}

/// Label: an action kind.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabel {
    /// Desired state.
    pub state: String,
}

/// Label: a run result.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    /// Run status.
    pub result: String,
}

/// `phase` label: a life-cycle phase (`quarantined`, `deferred`, ...).
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PhaseLabel {
    /// Phase name.
    pub phase: String,
}

/// `backend` label.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BackendLabel {
    /// HAProxy backend.
    pub backend: String,
}

/// Every metric the relay exports.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Alerts received, per source.
    pub alerts_received: Family<SourceLabel, Counter>,
    /// Alerts dropped as duplicates.
    pub alerts_deduplicated: Counter,
    /// Alerts rejected (unsafe label values), per reason.
    pub alerts_rejected: Family<ReasonLabel, Counter>,
    /// Connections closed at once because `server.max_connections` were open.
    pub connections_refused: Counter,
    /// Webhook and admin requests answered with an error (credentials, content type, body size or
    /// read, payload, journal commit), per reason.
    pub requests_refused: Family<ReasonLabel, Counter>,
    /// Actions decided, per desired state.
    pub actions_decided: Family<StateLabel, Counter>,
    /// Actions refused by the guard, per reason.
    pub actions_refused: Family<ReasonLabel, Counter>,
    /// Runs started.
    pub runs_started: Counter,
    /// Runs finished, per result.
    pub runs_finished: Family<ResultLabel, Counter>,
    /// Runs whose executor panicked (each also counted as finished with `error`).
    pub runs_panicked: Counter,
    /// Run wall time.
    pub run_duration: Histogram,
    /// Intents waiting in the coalescer.
    pub queue_depth: Gauge,
    /// 1 while the circuit breaker is open.
    pub breaker_open: Gauge,
    /// 1 while paused.
    pub paused: Gauge,
    /// Times the pipeline found fleets due to run and held them because remediation is paused.
    pub runs_held: Counter,
    /// Targets per life-cycle phase.
    pub targets: Family<PhaseLabel, Gauge>,
    /// 1 while a backend is in panic (more than the set share of its servers alert).
    pub backend_panic: Family<BackendLabel, Gauge>,
    /// Restores deferred because the server's health check was not passing.
    pub restores_deferred: Counter,
    /// Restores given up after the deferral deadline.
    pub restores_given_up: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers every metric under the `autoheal_relay` prefix.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("autoheal_relay");
        let m = Self {
            alerts_received: Family::default(),
            alerts_deduplicated: Counter::default(),
            alerts_rejected: Family::default(),
            connections_refused: Counter::default(),
            requests_refused: Family::default(),
            actions_decided: Family::default(),
            actions_refused: Family::default(),
            runs_started: Counter::default(),
            runs_finished: Family::default(),
            runs_panicked: Counter::default(),
            run_duration: Histogram::new(exponential_buckets(0.25, 2.0, 12)),
            queue_depth: Gauge::default(),
            breaker_open: Gauge::default(),
            paused: Gauge::default(),
            runs_held: Counter::default(),
            targets: Family::default(),
            backend_panic: Family::default(),
            restores_deferred: Counter::default(),
            restores_given_up: Counter::default(),
            registry: Registry::default(),
        };
        registry.register(
            "alerts_received",
            "Alerts received",
            m.alerts_received.clone(),
        );
        registry.register(
            "alerts_deduplicated",
            "Alerts dropped as duplicates",
            m.alerts_deduplicated.clone(),
        );
        registry.register(
            "alerts_rejected",
            "Alerts refused for unsafe label values",
            m.alerts_rejected.clone(),
        );
        registry.register(
            "connections_refused",
            "Connections closed at once because the connection limit was reached",
            m.connections_refused.clone(),
        );
        registry.register(
            "requests_refused",
            "Webhook and admin requests refused (credentials, content type, body, payload, journal)",
            m.requests_refused.clone(),
        );
        registry.register(
            "actions_decided",
            "Actions decided, by desired state",
            m.actions_decided.clone(),
        );
        registry.register(
            "actions_refused",
            "Actions refused by the guard",
            m.actions_refused.clone(),
        );
        registry.register(
            "runs_started",
            "Remediation runs started",
            m.runs_started.clone(),
        );
        registry.register(
            "runs_finished",
            "Remediation runs finished, by result",
            m.runs_finished.clone(),
        );
        registry.register(
            "runs_panicked",
            "Remediation runs whose executor panicked",
            m.runs_panicked.clone(),
        );
        registry.register(
            "run_duration_seconds",
            "Remediation run wall time",
            m.run_duration.clone(),
        );
        registry.register(
            "queue_depth",
            "Intents waiting to run",
            m.queue_depth.clone(),
        );
        registry.register(
            "breaker_open",
            "1 while the circuit breaker is open",
            m.breaker_open.clone(),
        );
        registry.register("paused", "1 while remediation is paused", m.paused.clone());
        registry.register(
            "runs_held",
            "Times fleets due to run were held because remediation is paused",
            m.runs_held.clone(),
        );
        registry.register(
            "targets",
            "Targets the relay follows, by life-cycle phase",
            m.targets.clone(),
        );
        registry.register(
            "backend_panic",
            "1 while a backend is in panic: no server of it is taken out",
            m.backend_panic.clone(),
        );
        registry.register(
            "restores_deferred",
            "Restores deferred because the health check was not passing",
            m.restores_deferred.clone(),
        );
        registry.register(
            "restores_given_up",
            "Restores given up after the deferral deadline",
            m.restores_given_up.clone(),
        );
        Self { registry, ..m }
    }

    /// Counts a refused request.
    pub fn refuse_request(&self, reason: &str) {
        self.requests_refused
            .get_or_create(&ReasonLabel {
                reason: reason.to_owned(),
            })
            .inc();
    }

    /// Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}
