//! What the module said about one server: an item of `autoheal.haproxy.server`'s result (the
//! single result, or one of a batch's `changes:`), reduced to what the life cycle acts on.

use serde::{Deserialize, Serialize};

/// HAProxy's health check of the server, as the module read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckStatus {
    /// The check passes.
    Passing,
    /// The check fails.
    Failing,
    /// The server has no `check`.
    None,
    /// The runtime did not say.
    Unknown,
}

/// Who set the state the marker records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SetBy {
    /// The relay, through the remediate role.
    Autoheal,
    /// A person (the module's default).
    Operator,
}

/// One server's item of a module result, as the module returns it (keys it does not send are
/// at their neutral value; unknown keys are ignored: the module's result has many more).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct ItemReport {
    /// `false`: no such server on that load balancer.
    pub found: Option<bool>,
    /// The module changed something.
    pub changed: bool,
    /// A restore left the server out because its check is not passing.
    pub deferred: bool,
    /// Why it was deferred.
    pub deferred_reason: Option<String>,
    /// The module did not touch the server.
    pub skipped: bool,
    /// Why (`operator_state`: a person set the state).
    pub skip_reason: Option<String>,
    /// The server's health check.
    pub check_status: Option<CheckStatus>,
    /// Who set the state now recorded.
    pub set_by: Option<SetBy>,
    /// The server's `slowstart` in milliseconds, when the line has one.
    pub slowstart: Option<u64>,
}

/// What an item means for the life cycle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ItemOutcome {
    /// The change asked for is in place.
    Applied {
        /// The server ramps up by itself (`slowstart`).
        slowstart: bool,
    },
    /// The restore was not done: the check is not passing.
    Deferred {
        /// The module's reason.
        reason: String,
    },
    /// A person set the server's state: it is theirs.
    OperatorState,
    /// No such server: nothing is out.
    NotFound,
}

/// The `skip_reason` the module gives for a server a person took out.
pub const OPERATOR_STATE: &str = "operator_state";

impl ItemReport {
    /// Parses one item out of a module result.
    pub fn from_json(item: &serde_json::Value) -> Result<Self, serde_json::Error> {
        Self::deserialize(item)
    }

    /// What the item means for the life cycle.
    pub fn outcome(&self) -> ItemOutcome {
        if self.found == Some(false) {
            return ItemOutcome::NotFound;
        }
        if self.skipped && self.skip_reason.as_deref() == Some(OPERATOR_STATE) {
            return ItemOutcome::OperatorState;
        }
        if self.deferred {
            return ItemOutcome::Deferred {
                reason: self
                    .deferred_reason
                    .clone()
                    .unwrap_or_else(|| "health check not passing".to_owned()),
            };
        }
        ItemOutcome::Applied {
            slowstart: self.slowstart.is_some_and(|ms| ms > 0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn outcome(v: serde_json::Value) -> ItemOutcome {
        ItemReport::from_json(&v).unwrap().outcome()
    }

    #[test]
    fn each_kind_of_item_maps_to_its_outcome() {
        assert_eq!(
            outcome(json!({"server": "s1", "found": false, "changed": false})),
            ItemOutcome::NotFound
        );
        assert_eq!(
            outcome(
                json!({"changed": false, "skipped": true, "skip_reason": "operator_state", "set_by": "operator"})
            ),
            ItemOutcome::OperatorState
        );
        assert_eq!(
            outcome(
                json!({"changed": false, "deferred": true, "deferred_reason": "check failing", "check_status": "failing"})
            ),
            ItemOutcome::Deferred {
                reason: "check failing".into()
            }
        );
        assert_eq!(
            outcome(json!({"changed": true, "check_status": "passing", "slowstart": 10000})),
            ItemOutcome::Applied { slowstart: true }
        );
        assert_eq!(
            outcome(
                json!({"changed": true, "check_status": "none", "health_gate": "no_check", "slowstart": null})
            ),
            ItemOutcome::Applied { slowstart: false }
        );
    }

    #[test]
    fn a_skip_for_another_reason_is_not_an_operator_state() {
        assert_eq!(
            outcome(json!({"skipped": true, "skip_reason": "something_else"})),
            ItemOutcome::Applied { slowstart: false }
        );
    }

    #[test]
    fn check_status_and_set_by_parse_and_refuse_unknown_values() {
        let r = ItemReport::from_json(&json!({"check_status": "unknown", "set_by": "autoheal"}))
            .unwrap();
        assert_eq!(r.check_status, Some(CheckStatus::Unknown));
        assert_eq!(r.set_by, Some(SetBy::Autoheal));
        assert!(ItemReport::from_json(&json!({"check_status": "green"})).is_err());
    }
}
