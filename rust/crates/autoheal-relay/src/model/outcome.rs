//! What became of a decision, as the journal records it.

use std::fmt;

use serde::{Serialize, Serializer};

/// A decision's outcome (the journal's `decisions.outcome`, `history`'s OUTCOME column and JSON).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Waiting for its fleet's next run.
    Pending,
    /// In a run that has not finished.
    Running,
    /// Its run failed; a retry is due.
    Retrying,
    /// Its run succeeded.
    Done,
    /// Its run failed and it has no retry left.
    Failed,
    /// Its run failed on some hosts and it has no retry left.
    Partial,
    /// The guard refused it (budget, breaker).
    Refused,
    /// A later alert for the same target replaced it.
    Superseded,
    /// The target was already in that state.
    Noop,
    /// A value it would carry failed the label checks.
    Rejected,
    /// No rule wanted the alert.
    Ignored,
    /// A restore waiting for the server's health check to pass.
    Deferred,
    /// A restore between the steps of its ramp.
    Ramping,
    /// A restore waiting out the target's hold-down.
    Held,
    /// Refused: too many of its backend's servers alert at once.
    Panic,
    /// The target was taken out too often; it stays out until released.
    Quarantined,
    /// An operator set the target's state; autoheal leaves it alone.
    OperatorState,
    /// The module found no such server.
    NotFound,
    /// A deferred restore whose deadline passed.
    GaveUp,
    /// A word the journal holds that this relay has no name for (kept as found).
    Other(String),
}

impl Outcome {
    /// A decision closed with this outcome left its target as autoheal found it (no such server,
    /// or a person's state): the target is no longer autoheal's to count or to restore.
    pub fn releases_target(&self) -> bool {
        matches!(self, Self::NotFound | Self::OperatorState)
    }

    /// The word.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Pending => "pending",
            Self::Running => "running",
            Self::Retrying => "retrying",
            Self::Done => "done",
            Self::Failed => "failed",
            Self::Partial => "partial",
            Self::Refused => "refused",
            Self::Superseded => "superseded",
            Self::Noop => "noop",
            Self::Rejected => "rejected",
            Self::Ignored => "ignored",
            Self::Deferred => "deferred",
            Self::Ramping => "ramping",
            Self::Held => "held",
            Self::Panic => "panic",
            Self::Quarantined => "quarantined",
            Self::OperatorState => "operator_state",
            Self::NotFound => "not_found",
            Self::GaveUp => "gave_up",
            Self::Other(word) => word,
        }
    }
}

impl From<&str> for Outcome {
    fn from(word: &str) -> Self {
        match word {
            "pending" => Self::Pending,
            "running" => Self::Running,
            "retrying" => Self::Retrying,
            "done" => Self::Done,
            "failed" => Self::Failed,
            "partial" => Self::Partial,
            "refused" => Self::Refused,
            "superseded" => Self::Superseded,
            "noop" => Self::Noop,
            "rejected" => Self::Rejected,
            "ignored" => Self::Ignored,
            "deferred" => Self::Deferred,
            "ramping" => Self::Ramping,
            "held" => Self::Held,
            "panic" => Self::Panic,
            "quarantined" => Self::Quarantined,
            "operator_state" => Self::OperatorState,
            "not_found" => Self::NotFound,
            "gave_up" => Self::GaveUp,
            other => Self::Other(other.to_owned()),
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

impl Serialize for Outcome {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl PartialEq<&str> for Outcome {
    fn eq(&self, word: &&str) -> bool {
        self.as_str() == *word
    }
}

impl rusqlite::types::FromSql for Outcome {
    fn column_result(value: rusqlite::types::ValueRef<'_>) -> rusqlite::types::FromSqlResult<Self> {
        value.as_str().map(Self::from)
    }
}

impl rusqlite::types::ToSql for Outcome {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        Ok(self.as_str().into())
    }
}

#[cfg(test)]
mod tests {
    use super::Outcome;

    #[test]
    fn outcomes_read_and_write_the_same_words() {
        let words = [
            "pending",
            "running",
            "retrying",
            "done",
            "failed",
            "partial",
            "refused",
            "superseded",
            "noop",
            "rejected",
            "ignored",
            "archived",
            "deferred",
            "ramping",
            "held",
            "panic",
            "quarantined",
            "operator_state",
            "not_found",
            "gave_up",
        ];
        for word in words {
            let outcome = Outcome::from(word);
            assert_eq!(
                (outcome.as_str(), outcome.to_string()),
                (word, word.to_owned())
            );
            assert_eq!(
                serde_json::to_string(&outcome).unwrap(),
                format!("\"{word}\"")
            );
        }
        assert_eq!(Outcome::from("noop"), Outcome::Noop);
        assert_eq!(Outcome::from("not_found"), Outcome::NotFound);
        assert_eq!(Outcome::from("archived"), Outcome::Other("archived".into()));
    }
}
