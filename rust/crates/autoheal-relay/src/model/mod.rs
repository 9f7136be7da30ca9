//! Types the stages share: alerts, decisions, intents, the playbook contract and run results.
//! Every stage depends on these, not on its neighbours.

mod alert;
mod decision;
mod intent;
mod run;

pub use alert::{Alert, AlertStatus, Source};
pub use decision::Decision;
pub use intent::{Action, DesiredState, Intent, Pending, Reason, RecordedTarget, Target};
pub use run::{RunResult, PARTIAL};

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}
