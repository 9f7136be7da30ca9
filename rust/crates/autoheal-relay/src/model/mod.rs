//! Types the stages share: alerts, decisions and their outcomes, intents, the playbook contract,
//! run results and accepted signatures.
//! Every stage depends on these, not on its neighbours.

mod alert;
mod decision;
mod intent;
mod outcome;
mod run;
mod signature;

pub use alert::{Alert, AlertStatus, Source};
pub use decision::Decision;
pub use intent::{Action, DesiredState, Intent, Pending, Reason, RecordedTarget, Target};
pub use outcome::Outcome;
pub use run::{RunResult, RunStatus};
pub use signature::UsedSignature;

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}
