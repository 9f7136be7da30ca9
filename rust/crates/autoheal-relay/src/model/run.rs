//! What an executor reports about a run.

use std::fmt;

use serde::{Serialize, Serializer};

/// How a run ended, as ansible-runner or AWX words it (the journal and the metrics use the same
/// words).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum RunStatus {
    /// It did what it was asked.
    Successful,
    /// It failed on some hosts and did its work on the others.
    Partial,
    /// It failed.
    Failed,
    /// It ran out of time and was stopped.
    Timeout,
    /// It could not be carried out (nothing to start, launch refused, the executor panicked);
    /// also what a result says until its executor says otherwise.
    #[default]
    Error,
    /// It was canceled.
    Canceled,
    /// A status the runner reported that the relay has no name for (kept as reported; counts as
    /// a failure).
    Other(String),
}

impl RunStatus {
    /// The word.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Successful => "successful",
            Self::Partial => "partial",
            Self::Failed => "failed",
            Self::Timeout => "timeout",
            Self::Error => "error",
            Self::Canceled => "canceled",
            Self::Other(word) => word,
        }
    }
}

impl From<&str> for RunStatus {
    fn from(word: &str) -> Self {
        match word {
            "successful" => Self::Successful,
            "partial" => Self::Partial,
            "failed" => Self::Failed,
            "timeout" => Self::Timeout,
            "error" => Self::Error,
            "canceled" => Self::Canceled,
            other => Self::Other(other.to_owned()),
        }
    }
}

impl fmt::Display for RunStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

impl Serialize for RunStatus {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl PartialEq<&str> for RunStatus {
    fn eq(&self, word: &&str) -> bool {
        self.as_str() == *word
    }
}

/// A run's result.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RunResult {
    /// How it ended.
    pub status: RunStatus,
    /// Exit code, when there was a process.
    pub rc: Option<i32>,
    /// Wall time.
    pub duration_ms: i64,
    /// Short human detail (job id, error message, stderr tail).
    pub detail: String,
    /// What the remediate role published per load balancer and action (`autoheal_remediate`
    /// of the run's stats), or null when the executor cannot tell.
    #[serde(skip)]
    pub remediate: serde_json::Value,
}

impl RunResult {
    /// Whether the run did what it was asked.
    pub fn succeeded(&self) -> bool {
        self.status == RunStatus::Successful
    }
}

#[cfg(test)]
mod tests {
    use super::RunStatus;

    #[test]
    fn statuses_read_and_write_the_same_words() {
        for word in [
            "successful",
            "partial",
            "failed",
            "timeout",
            "error",
            "canceled",
            "unstarted",
        ] {
            let status = RunStatus::from(word);
            assert_eq!(status.as_str(), word);
            assert_eq!(status.to_string(), word);
            assert_eq!(
                serde_json::to_string(&status).unwrap(),
                format!("\"{word}\"")
            );
        }
        assert_eq!(RunStatus::from("failed"), RunStatus::Failed);
        assert_eq!(
            RunStatus::from("unstarted"),
            RunStatus::Other("unstarted".into())
        );
        assert_eq!(format!("{:<8}|", RunStatus::Error), "error   |");
    }
}
