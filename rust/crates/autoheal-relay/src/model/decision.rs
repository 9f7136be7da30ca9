//! What the decider makes of one alert; the journal records it.

use super::Intent;
use crate::label::TargetError;

/// What the relay makes of one alert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Act on a target.
    Act(Intent),
    /// A rule matched but a value the action would carry is unsafe or missing: refused, audited.
    Rejected {
        /// Rule that matched.
        rule: String,
        /// Label (or field) whose value was refused.
        field: String,
        /// Why.
        error: TargetError,
    },
    /// No rule matched, or the matching rule does nothing for this status.
    Ignored {
        /// Why nothing happens.
        why: &'static str,
    },
}
