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

/// Merges what each load balancer said about one target: it is not found only where no load
/// balancer has it; a person's state anywhere, or a deferral anywhere, holds it for all; it
/// ramps by itself only if every load balancer has `slowstart`.
pub fn merge(outcomes: impl IntoIterator<Item = ItemOutcome>) -> Option<ItemOutcome> {
    let mut merged: Option<ItemOutcome> = None;
    for next in outcomes {
        merged = Some(match (merged, next) {
            (None, next) => next,
            (Some(ItemOutcome::NotFound), next) | (Some(next), ItemOutcome::NotFound) => next,
            (Some(ItemOutcome::OperatorState), _) | (_, ItemOutcome::OperatorState) => {
                ItemOutcome::OperatorState
            }
            (Some(d @ ItemOutcome::Deferred { .. }), _) | (_, d @ ItemOutcome::Deferred { .. }) => {
                d
            }
            (
                Some(ItemOutcome::Applied { slowstart: a }),
                ItemOutcome::Applied { slowstart: b },
            ) => ItemOutcome::Applied { slowstart: a && b },
        });
    }
    merged
}

/// Each target's merged outcome from a run's `autoheal_remediate` stats (the remediate role's
/// `set_stats`: load balancer -> one entry per action, the action under `action` and the
/// module's item keys beside it), by target key.
pub fn outcomes_from_stats(
    stats: &serde_json::Value,
) -> std::collections::BTreeMap<String, ItemOutcome> {
    let mut per_target: std::collections::BTreeMap<String, Vec<ItemOutcome>> =
        std::collections::BTreeMap::new();
    for entries in stats
        .as_object()
        .into_iter()
        .flat_map(|hosts| hosts.values())
    {
        for entry in entries.as_array().into_iter().flatten() {
            let action = &entry["action"];
            let text = |k: &str| action[k].as_str().map(str::to_owned);
            let key = crate::model::Target {
                server: text("server"),
                address: text("address"),
                backend: text("backend"),
            }
            .key();
            // An entry that does not parse says nothing the life cycle can use.
            if let Ok(report) = ItemReport::from_json(entry) {
                per_target.entry(key).or_default().push(report.outcome());
            }
        }
    }
    per_target
        .into_iter()
        .filter_map(|(key, outcomes)| merge(outcomes).map(|o| (key, o)))
        .collect()
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
    fn load_balancers_merge_to_the_most_careful_outcome() {
        let applied = |slowstart| ItemOutcome::Applied { slowstart };
        let deferred = ItemOutcome::Deferred { reason: "r".into() };
        assert_eq!(merge([]), None);
        assert_eq!(
            merge([ItemOutcome::NotFound, ItemOutcome::NotFound]),
            Some(ItemOutcome::NotFound)
        );
        assert_eq!(
            merge([ItemOutcome::NotFound, applied(true)]),
            Some(applied(true)),
            "found on one load balancer is found"
        );
        assert_eq!(
            merge([applied(true), deferred.clone()]),
            Some(deferred.clone())
        );
        assert_eq!(
            merge([deferred, ItemOutcome::OperatorState, applied(false)]),
            Some(ItemOutcome::OperatorState)
        );
        assert_eq!(merge([applied(true), applied(false)]), Some(applied(false)));
    }

    #[test]
    fn stats_of_two_load_balancers_give_one_outcome_per_target() {
        let stats = json!({
            "lb1": [
                {"action": {"server": "s1", "backend": "app", "state": "enabled"}, "changed": false,
                 "deferred": true, "deferred_reason": "check failing"},
                {"action": {"server": "ghost", "state": "drain"}, "changed": false, "found": false}
            ],
            "lb2": [
                {"action": {"server": "s1", "backend": "app", "state": "enabled"}, "changed": true},
                {"action": {"server": "ghost", "state": "drain"}, "changed": false, "found": false}
            ]
        });
        let got = outcomes_from_stats(&stats);
        assert_eq!(got.len(), 2);
        assert!(matches!(got["app/s1"], ItemOutcome::Deferred { .. }));
        assert_eq!(got["*/ghost"], ItemOutcome::NotFound);
        assert!(outcomes_from_stats(&json!(null)).is_empty());
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
