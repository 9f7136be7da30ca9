//! What an executor reports about a run.

use serde::Serialize;

/// A run's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunResult {
    /// `successful`, `partial`, `failed`, `timeout`, `error`, `canceled`.
    pub status: String,
    /// Exit code, when there was a process.
    pub rc: Option<i32>,
    /// Wall time.
    pub duration_ms: i64,
    /// Short human detail (job id, error message, stderr tail).
    pub detail: String,
}

/// Status of a run that failed on some hosts and did its work on the others.
pub const PARTIAL: &str = "partial";

impl RunResult {
    /// Whether the run did what it was asked.
    pub fn succeeded(&self) -> bool {
        self.status == "successful"
    }
}
