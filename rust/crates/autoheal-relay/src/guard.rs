//! The guard: decides which coalesced intents may run (budget, breaker) and which change nothing.
//!
//! It keeps the state the relay last asked for per target, so "already out" counts servers taken
//! out by earlier runs. A failed run still counts as out: the guard errs on the side of leaving
//! capacity in place. Restores are always admitted: they only give capacity back. Pausing is not
//! here: while paused the pipeline simply does not take from the coalescer.

use std::collections::{HashMap, VecDeque};

use crate::config::GuardConfig;
use crate::model::{DesiredState, Intent, Pending, RecordedTarget, Target};

/// What the guard assumes of a target whose last run failed: out of service.
pub const UNKNOWN_COUNTS_AS: DesiredState = DesiredState::Disabled;

/// The state the relay last asked for, per target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetState {
    /// Backend (`*` when the alert did not say).
    pub backend: String,
    /// State asked for.
    pub state: DesiredState,
    /// Weight asked for.
    pub weight: Option<String>,
}

/// The guard's verdict on one batch.
#[derive(Debug, Default)]
pub struct Admission {
    /// To run.
    pub admitted: Vec<Pending>,
    /// Already in the desired state: nothing to run (e.g. a firing and its resolve in one window).
    pub noop: Vec<Pending>,
    /// Refused, with the reason.
    pub refused: Vec<(Pending, Refusal)>,
}

/// Why an intent was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The backend's budget is spent.
    #[error("budget: {out} of backend {backend} already out (limit {limit})")]
    Budget {
        /// Backend.
        backend: String,
        /// Servers already out.
        out: usize,
        /// The limit.
        limit: usize,
    },
    /// The breaker is open.
    #[error("circuit breaker open: more than {max} actions within {window_secs}s")]
    BreakerOpen {
        /// Action limit.
        max: usize,
        /// Window.
        window_secs: u64,
    },
}

impl Refusal {
    /// Short machine-readable reason for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Budget { .. } => "budget",
            Self::BreakerOpen { .. } => "breaker_open",
        }
    }
}

/// Budget and breaker state.
#[derive(Debug)]
pub struct Guard {
    cfg: GuardConfig,
    current: HashMap<String, TargetState>,
    recent_actions_ms: VecDeque<i64>,
    breaker_open_until_ms: Option<i64>,
}

impl Guard {
    /// A guard that knows the state of previously acted-on targets (target key -> state as
    /// the journal recorded it; an unknown state counts as out).
    pub fn new(cfg: GuardConfig, recorded: HashMap<String, RecordedTarget>) -> Self {
        let current = recorded
            .into_iter()
            .map(|(key, r)| {
                let state = TargetState {
                    backend: r.backend,
                    state: r.state.unwrap_or(UNKNOWN_COUNTS_AS),
                    weight: r.weight,
                };
                (key, state)
            })
            .collect();
        Self {
            cfg,
            current,
            recent_actions_ms: VecDeque::new(),
            breaker_open_until_ms: None,
        }
    }

    /// Whether the breaker is open at `now_ms`.
    pub fn breaker_open(&self, now_ms: i64) -> bool {
        self.breaker_open_until_ms
            .is_some_and(|until| now_ms < until)
    }

    /// The state the relay last asked for, per target key.
    pub fn current(&self) -> &HashMap<String, TargetState> {
        &self.current
    }

    /// Records an intent admitted before a restart (its run was interrupted): it is re-run as
    /// it is, without spending budget or breaker allowance a second time.
    pub fn record_replay(&mut self, intent: &Intent) {
        self.current.insert(
            intent.target.key(),
            TargetState {
                backend: intent
                    .target
                    .backend
                    .clone()
                    .unwrap_or_else(|| "*".to_owned()),
                state: intent.state,
                weight: intent.weight.clone(),
            },
        );
    }

    /// The target's real state is unknown (its run failed): count it as out until a run
    /// succeeds for it, so that a failed restore never frees budget.
    pub fn mark_unknown(&mut self, target: &Target) {
        self.current.insert(
            target.key(),
            TargetState {
                backend: target.backend.clone().unwrap_or_else(|| "*".to_owned()),
                state: UNKNOWN_COUNTS_AS,
                weight: None,
            },
        );
    }

    /// Forgets a target: the module found no such server, or an operator released it. It no
    /// longer counts against any budget.
    pub fn forget(&mut self, target_key: &str) {
        self.current.remove(target_key);
    }

    /// Judges one batch, restores first (they free budget), then the rest in target order.
    pub fn admit(&mut self, batch: Vec<Pending>, now_ms: i64) -> Admission {
        let mut result = Admission::default();
        let (restores, others): (Vec<_>, Vec<_>) = batch
            .into_iter()
            .partition(|p| p.intent.state == DesiredState::Enabled && p.intent.weight.is_none());
        for p in restores.into_iter().chain(others) {
            let key = p.intent.target.key();
            let backend = p
                .intent
                .target
                .backend
                .clone()
                .unwrap_or_else(|| "*".to_owned());
            let (cur_state, cur_weight) = self
                .current
                .get(&key)
                .map_or((DesiredState::Enabled, None), |c| {
                    (c.state, c.weight.clone())
                });
            if cur_state == p.intent.state && cur_weight == p.intent.weight {
                result.noop.push(p);
                continue;
            }
            let is_restore = p.intent.state == DesiredState::Enabled && p.intent.weight.is_none();
            if !is_restore {
                if let Err(refusal) =
                    self.check_out_action(&key, &backend, p.intent.state, cur_state, now_ms)
                {
                    result.refused.push((p, refusal));
                    continue;
                }
                self.recent_actions_ms.push_back(now_ms);
            }
            self.current.insert(
                key,
                TargetState {
                    backend,
                    state: p.intent.state,
                    weight: p.intent.weight.clone(),
                },
            );
            result.admitted.push(p);
        }
        result
    }

    fn check_out_action(
        &mut self,
        key: &str,
        backend: &str,
        state: DesiredState,
        cur_state: DesiredState,
        now_ms: i64,
    ) -> Result<(), Refusal> {
        let breaker = Refusal::BreakerOpen {
            max: self.cfg.breaker_max_actions,
            window_secs: self.cfg.breaker_window_secs,
        };
        if self.breaker_open(now_ms) {
            return Err(breaker);
        }
        let window_ms =
            i64::try_from(self.cfg.breaker_window_secs.saturating_mul(1000)).unwrap_or(i64::MAX);
        while self
            .recent_actions_ms
            .front()
            .is_some_and(|t| *t <= now_ms.saturating_sub(window_ms))
        {
            self.recent_actions_ms.pop_front();
        }
        if self.recent_actions_ms.len() >= self.cfg.breaker_max_actions {
            let cooldown = i64::try_from(self.cfg.breaker_cooldown_secs.saturating_mul(1000))
                .unwrap_or(i64::MAX);
            self.breaker_open_until_ms = Some(now_ms.saturating_add(cooldown));
            tracing::warn!(
                max = self.cfg.breaker_max_actions,
                window_secs = self.cfg.breaker_window_secs,
                cooldown_secs = self.cfg.breaker_cooldown_secs,
                "circuit breaker opened: no server is taken out until it closes"
            );
            return Err(breaker);
        }
        // Moving a server that is already out (drain -> disabled) spends no extra budget.
        if state.is_out() && !cur_state.is_out() {
            let out = self
                .current
                .iter()
                .filter(|(k, s)| k.as_str() != key && s.backend == backend && s.state.is_out())
                .count();
            let limit = self.limit_for(backend);
            if out + 1 > limit {
                return Err(Refusal::Budget {
                    backend: backend.to_owned(),
                    out,
                    limit,
                });
            }
        }
        Ok(())
    }

    fn limit_for(&self, backend: &str) -> usize {
        let by_percent = match (
            self.cfg.max_out_percent,
            self.cfg.backend_sizes.get(backend),
        ) {
            (Some(p), Some(size)) => size * usize::from(p) / 100,
            _ => usize::MAX,
        };
        self.cfg.max_out_per_backend.min(by_percent)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::coalesce::tests::intent;

    fn cfg() -> GuardConfig {
        GuardConfig {
            max_out_per_backend: 2,
            breaker_max_actions: 5,
            breaker_window_secs: 60,
            breaker_cooldown_secs: 300,
            ..GuardConfig::default()
        }
    }

    fn batch(items: &[(&str, DesiredState)]) -> Vec<Pending> {
        items
            .iter()
            .enumerate()
            .map(|(i, (s, st))| Pending {
                id: i64::try_from(i).unwrap(),
                intent: intent(s, *st, 0),
            })
            .collect()
    }

    #[test]
    fn budget_counts_what_is_already_out() {
        let mut g = Guard::new(cfg(), HashMap::new());
        let a = g.admit(batch(&[("s1", DesiredState::Drain)]), 0);
        assert_eq!(a.admitted.len(), 1);
        let a = g.admit(
            batch(&[("s2", DesiredState::Disabled), ("s3", DesiredState::Drain)]),
            1,
        );
        assert_eq!(a.admitted.len(), 1);
        assert_eq!(a.refused.len(), 1);
        assert_eq!(
            a.refused[0].1,
            Refusal::Budget {
                backend: "be".into(),
                out: 2,
                limit: 2
            }
        );
        // A restore frees budget within the same batch (restores go first).
        let a = g.admit(
            batch(&[("s3", DesiredState::Drain), ("s1", DesiredState::Enabled)]),
            2,
        );
        assert_eq!(a.admitted.len(), 2, "{a:?}");
    }

    #[test]
    fn percentage_budget_uses_backend_size() {
        let mut c = cfg();
        c.max_out_per_backend = 100;
        c.max_out_percent = Some(25);
        c.backend_sizes.insert("be".into(), 8);
        let mut g = Guard::new(c, HashMap::new());
        let items: Vec<_> = (0..5)
            .map(|i| (format!("s{i}"), DesiredState::Drain))
            .collect();
        let items: Vec<_> = items.iter().map(|(s, st)| (s.as_str(), *st)).collect();
        let a = g.admit(batch(&items), 0);
        assert_eq!(a.admitted.len(), 2);
        assert_eq!(a.refused.len(), 3);
    }

    #[test]
    fn seeded_state_counts_and_moving_an_out_server_is_free() {
        let mut current = HashMap::new();
        for s in ["s1", "s2"] {
            current.insert(
                format!("be/{s}"),
                RecordedTarget {
                    backend: "be".into(),
                    state: Some(DesiredState::Drain),
                    weight: None,
                },
            );
        }
        let mut g = Guard::new(cfg(), current);
        let a = g.admit(
            batch(&[("s3", DesiredState::Drain), ("s1", DesiredState::Disabled)]),
            0,
        );
        assert_eq!(a.admitted.len(), 1);
        assert_eq!(a.admitted[0].intent.target.server.as_deref(), Some("s1"));
        assert_eq!(a.refused[0].1.kind(), "budget");
    }

    #[test]
    fn a_forgotten_target_frees_its_budget() {
        let mut g = Guard::new(cfg(), HashMap::new());
        g.admit(
            batch(&[("s1", DesiredState::Drain), ("s2", DesiredState::Drain)]),
            0,
        );
        assert_eq!(
            g.admit(batch(&[("s3", DesiredState::Drain)]), 1)
                .refused
                .len(),
            1
        );
        g.forget("be/s1");
        assert_eq!(
            g.admit(batch(&[("s3", DesiredState::Drain)]), 2)
                .admitted
                .len(),
            1
        );
    }

    #[test]
    fn unchanged_state_is_noop() {
        let mut g = Guard::new(cfg(), HashMap::new());
        let a = g.admit(batch(&[("s1", DesiredState::Enabled)]), 0);
        assert_eq!(a.noop.len(), 1);
        assert!(a.admitted.is_empty());
    }

    #[test]
    fn breaker_opens_and_closes_after_cooldown() {
        let mut c = cfg();
        c.max_out_per_backend = 1000;
        let mut g = Guard::new(c, HashMap::new());
        let names: Vec<String> = (0..8).map(|i| format!("s{i}")).collect();
        let items: Vec<_> = names
            .iter()
            .map(|s| (s.as_str(), DesiredState::Drain))
            .collect();
        let a = g.admit(batch(&items), 0);
        assert_eq!(a.admitted.len(), 5);
        assert_eq!(a.refused.len(), 3);
        assert!(a.refused.iter().all(|(_, r)| r.kind() == "breaker_open"));
        assert!(g.breaker_open(1000));
        // Restores still go through while it is open.
        let a = g.admit(batch(&[("s0", DesiredState::Enabled)]), 1000);
        assert_eq!(a.admitted.len(), 1);
        let a = g.admit(batch(&[("s7", DesiredState::Drain)]), 299_000);
        assert_eq!(a.refused.len(), 1);
        assert!(!g.breaker_open(300_001));
        let a = g.admit(batch(&[("s7", DesiredState::Drain)]), 300_001);
        assert_eq!(a.admitted.len(), 1, "{a:?}");
    }
}
