//! The settings of a target's life cycle (per rule) and of panic (per relay), with their
//! defaults and the arithmetic on them: hold-down growth, deferral backoff, ramp steps.

use serde::{Deserialize, Serialize};

/// How a target taken out by a rule is held down, restored and quarantined. Every key may be
/// set per rule (`[rules.lifecycle]`) over the relay-wide `[lifecycle]` table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LifecyclePolicy {
    /// Shortest time out after the first remediation (Envoy's base ejection time is 30 s).
    pub hold_down_base_secs: u64,
    /// The hold-down doubles with each recent remediation up to this (Envoy: 300 s).
    pub hold_down_max_secs: u64,
    /// Each period this long in service without a remediation forgets one of them.
    pub hold_down_decay_secs: u64,
    /// Remediations within `quarantine_window_secs` that quarantine a target (0: never).
    pub quarantine_after: u32,
    /// The window `quarantine_after` counts in.
    pub quarantine_window_secs: u64,
    /// First retry of a deferred restore; each further retry waits twice as long.
    pub defer_retry_secs: u64,
    /// Longest wait between two retries of a deferred restore.
    pub defer_retry_max_secs: u64,
    /// Give up on a restore deferred for this long (the target stays out; audited).
    pub defer_deadline_secs: u64,
    /// Weight steps of a restore, in percent of the weight the marker recorded; the last is
    /// always 100 (empty or `[100]`: restore in one step).
    pub ramp_percent: Vec<u8>,
    /// Time between two ramp steps.
    pub ramp_step_secs: u64,
    /// When the restored server has `slowstart`, let HAProxy ramp it instead of the steps.
    pub ramp_trust_slowstart: bool,
}

impl Default for LifecyclePolicy {
    fn default() -> Self {
        Self {
            hold_down_base_secs: 30,
            hold_down_max_secs: 300,
            hold_down_decay_secs: 600,
            quarantine_after: 3,
            quarantine_window_secs: 3600,
            defer_retry_secs: 10,
            defer_retry_max_secs: 120,
            defer_deadline_secs: 1800,
            ramp_percent: vec![10, 50, 100],
            ramp_step_secs: 30,
            ramp_trust_slowstart: true,
        }
    }
}

/// Why a policy cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// The cap is below the base.
    #[error("hold_down_max_secs ({max}) is below hold_down_base_secs ({base})")]
    HoldDownCap {
        /// Base.
        base: u64,
        /// Cap.
        max: u64,
    },
    /// A ramp step is 0, above 100, or not above the one before.
    #[error("ramp_percent must rise strictly from 1 to at most 100, got {0:?}")]
    Ramp(Vec<u8>),
    /// The retry cap is below the first retry.
    #[error("defer_retry_max_secs ({max}) is below defer_retry_secs ({first})")]
    DeferRetry {
        /// First retry.
        first: u64,
        /// Cap.
        max: u64,
    },
}

fn secs_to_ms(secs: u64) -> i64 {
    i64::try_from(secs.saturating_mul(1000)).unwrap_or(i64::MAX)
}

/// `base × 2^(n-1)` capped at `max` (`n = 0` is no wait at all).
fn doubling_ms(base_secs: u64, max_secs: u64, n: u32) -> i64 {
    if n == 0 {
        return 0;
    }
    let factor = 1u64.checked_shl(n - 1).unwrap_or(u64::MAX);
    secs_to_ms(base_secs.saturating_mul(factor).min(max_secs))
}

impl LifecyclePolicy {
    /// Checks the values that no type rules out.
    pub fn validate(&self) -> Result<(), PolicyError> {
        if self.hold_down_max_secs < self.hold_down_base_secs {
            return Err(PolicyError::HoldDownCap {
                base: self.hold_down_base_secs,
                max: self.hold_down_max_secs,
            });
        }
        if self.defer_retry_max_secs < self.defer_retry_secs {
            return Err(PolicyError::DeferRetry {
                first: self.defer_retry_secs,
                max: self.defer_retry_max_secs,
            });
        }
        let rising = self.ramp_percent.windows(2).all(|w| w[0] < w[1]);
        let in_range = self.ramp_percent.iter().all(|p| (1..=100).contains(p));
        if !rising || !in_range {
            return Err(PolicyError::Ramp(self.ramp_percent.clone()));
        }
        Ok(())
    }

    /// This policy with a rule's own keys (`[rules.lifecycle]`) set over it.
    pub fn overlay(&self, keys: &toml::Table) -> Result<Self, String> {
        let mut table = toml::Table::try_from(self).map_err(|e| e.to_string())?;
        for (key, value) in keys {
            table.insert(key.clone(), value.clone());
        }
        let policy: Self = table
            .try_into()
            .map_err(|e: toml::de::Error| e.message().to_owned())?;
        policy.validate().map_err(|e| e.to_string())?;
        Ok(policy)
    }

    /// How long a target must stay out after its `n`-th recent remediation.
    pub fn hold_down_ms(&self, n: u32) -> i64 {
        doubling_ms(self.hold_down_base_secs, self.hold_down_max_secs, n)
    }

    /// The wait before retry number `attempt` (1 = the first) of a deferred restore.
    pub fn defer_retry_ms(&self, attempt: u32) -> i64 {
        doubling_ms(self.defer_retry_secs, self.defer_retry_max_secs, attempt)
    }

    /// The deferral deadline, in milliseconds.
    pub fn defer_deadline_ms(&self) -> i64 {
        secs_to_ms(self.defer_deadline_secs)
    }

    /// The clean period that forgets one remediation, in milliseconds.
    pub fn decay_ms(&self) -> i64 {
        secs_to_ms(self.hold_down_decay_secs)
    }

    /// The quarantine window, in milliseconds.
    pub fn quarantine_window_ms(&self) -> i64 {
        secs_to_ms(self.quarantine_window_secs)
    }

    /// The time between ramp steps, in milliseconds.
    pub fn ramp_step_ms(&self) -> i64 {
        secs_to_ms(self.ramp_step_secs)
    }

    /// The ramp's partial steps (those below 100 %): the restore's last step is a plain
    /// `enabled`, which gives back the whole recorded weight and clears the marker.
    pub fn partial_steps(&self) -> &[u8] {
        let end = self
            .ramp_percent
            .iter()
            .position(|p| *p >= 100)
            .unwrap_or(self.ramp_percent.len());
        &self.ramp_percent[..end]
    }
}

/// When a backend is in panic: more than `share_percent` of its servers alert at once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PanicPolicy {
    /// The share of a backend's servers alerting at once above which it is in panic
    /// (100: never).
    pub share_percent: u8,
    /// Backends with fewer servers than this are never in panic (one sick server of two is
    /// half the backend, and still a sick server).
    pub min_servers: usize,
}

impl Default for PanicPolicy {
    fn default() -> Self {
        Self {
            share_percent: 50,
            min_servers: 3,
        }
    }
}

impl PanicPolicy {
    /// Whether `alerting` of `size` servers is more than the share.
    pub fn is_panic(&self, alerting: usize, size: usize) -> bool {
        size >= self.min_servers.max(1)
            && alerting.saturating_mul(100) > size.saturating_mul(usize::from(self.share_percent))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hold_down_doubles_from_the_base_up_to_the_cap() {
        let p = LifecyclePolicy::default();
        let got: Vec<i64> = (0..=6).map(|n| p.hold_down_ms(n)).collect();
        assert_eq!(got, [0, 30_000, 60_000, 120_000, 240_000, 300_000, 300_000]);
        assert_eq!(p.hold_down_ms(200), 300_000, "no overflow far past the cap");
    }

    #[test]
    fn deferral_backoff_doubles_up_to_its_cap() {
        let p = LifecyclePolicy::default();
        let got: Vec<i64> = (1..=6).map(|a| p.defer_retry_ms(a)).collect();
        assert_eq!(got, [10_000, 20_000, 40_000, 80_000, 120_000, 120_000]);
    }

    #[test]
    fn partial_steps_leave_out_the_full_weight() {
        let mut p = LifecyclePolicy::default();
        assert_eq!(p.partial_steps(), [10, 50]);
        p.ramp_percent = vec![25, 75];
        assert_eq!(p.partial_steps(), [25, 75]);
        p.ramp_percent = vec![100];
        assert!(p.partial_steps().is_empty());
        p.ramp_percent = vec![];
        assert!(p.partial_steps().is_empty());
    }

    #[test]
    fn validate_refuses_what_cannot_work() {
        let ok = LifecyclePolicy::default();
        assert_eq!(ok.validate(), Ok(()));
        let cap = LifecyclePolicy {
            hold_down_max_secs: 10,
            ..ok.clone()
        };
        assert!(matches!(
            cap.validate(),
            Err(PolicyError::HoldDownCap { .. })
        ));
        for ramp in [vec![50, 10, 100], vec![0, 100], vec![10, 10], vec![10, 101]] {
            let p = LifecyclePolicy {
                ramp_percent: ramp.clone(),
                ..ok.clone()
            };
            assert_eq!(p.validate(), Err(PolicyError::Ramp(ramp)));
        }
        let retry = LifecyclePolicy {
            defer_retry_max_secs: 1,
            ..ok
        };
        assert!(matches!(
            retry.validate(),
            Err(PolicyError::DeferRetry { .. })
        ));
    }

    #[test]
    fn policy_parses_partially_with_defaults_and_refuses_unknown_keys() {
        let p: LifecyclePolicy = toml::from_str("hold_down_base_secs = 5").unwrap();
        assert_eq!(p.hold_down_base_secs, 5);
        assert_eq!(p.quarantine_after, 3);
        assert!(toml::from_str::<LifecyclePolicy>("hold_down = 5").is_err());
    }

    #[test]
    fn a_rule_overlays_its_keys_on_the_relay_wide_policy() {
        let relay = LifecyclePolicy {
            hold_down_base_secs: 10,
            hold_down_max_secs: 100,
            ..LifecyclePolicy::default()
        };
        let rule: toml::Table = toml::from_str("quarantine_after = 5").unwrap();
        let p = relay.overlay(&rule).unwrap();
        assert_eq!(p.quarantine_after, 5);
        assert_eq!(p.hold_down_base_secs, 10, "the relay-wide key stays");
        let unknown: toml::Table = toml::from_str("quarantine = 5").unwrap();
        assert!(relay.overlay(&unknown).unwrap_err().contains("quarantine"));
        let bad: toml::Table = toml::from_str("hold_down_max_secs = 1").unwrap();
        assert!(relay
            .overlay(&bad)
            .unwrap_err()
            .contains("hold_down_max_secs"));
    }

    #[test]
    fn panic_is_more_than_the_share_of_a_big_enough_backend() {
        let p = PanicPolicy::default();
        assert!(!p.is_panic(2, 4), "exactly half is not more than half");
        assert!(p.is_panic(3, 4));
        assert!(p.is_panic(4, 4));
        assert!(
            !p.is_panic(2, 2),
            "a two-server backend is below min_servers"
        );
        let never = PanicPolicy {
            share_percent: 100,
            ..p
        };
        assert!(!never.is_panic(4, 4));
    }
}
