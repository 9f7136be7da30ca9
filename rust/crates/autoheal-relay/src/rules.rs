//! Rules: how they are written in the file (`[[rules]]`), their checks, and matching an alert.
//!
//! The first rule whose matchers all hold for an alert decides what happens to it.

use std::collections::BTreeMap;
use std::time::Duration;

use regex::Regex;
use serde::{Deserialize, Serialize};

use crate::label::{is_valid_weight, validate_name};
use crate::model::{Alert, DesiredState};

/// The action a rule takes when its alert fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RuleAction {
    /// Stop new traffic, let existing sessions finish.
    Drain,
    /// Put the server in maintenance.
    Disabled,
    /// Comment the server out.
    Absent,
    /// Lower its weight (with `weight`).
    Weight,
}

impl RuleAction {
    /// The server state the playbook is asked for.
    pub fn state(self) -> DesiredState {
        match self {
            Self::Drain => DesiredState::Drain,
            Self::Disabled => DesiredState::Disabled,
            Self::Absent => DesiredState::Absent,
            Self::Weight => DesiredState::Enabled,
        }
    }
}

/// One rule as written in the file.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// Name shown in the audit log.
    pub name: String,
    /// Labels that must equal these values.
    #[serde(default, rename = "match")]
    pub match_eq: BTreeMap<String, String>,
    /// Labels that must fully match these regexes.
    #[serde(default)]
    pub match_re: BTreeMap<String, String>,
    /// What to do while the alert fires.
    pub action: RuleAction,
    /// Weight for `action = "weight"`, e.g. `"50%"` or `"10"`.
    pub weight: Option<String>,
    /// Restore (`enabled`) when the alert resolves.
    #[serde(default = "default_true")]
    pub restore: bool,
    /// Wait this long after the resolve before restoring; a new firing cancels the restore.
    #[serde(default)]
    pub restore_delay_secs: u64,
    /// Fleet key: runs for one fleet never overlap.
    #[serde(default = "default_fleet")]
    pub fleet: String,
    /// This rule's own life-cycle keys, over the relay-wide `[lifecycle]` table.
    #[serde(default)]
    pub lifecycle: Option<toml::Table>,
}

fn default_true() -> bool {
    true
}

fn default_fleet() -> String {
    "default".to_owned()
}

/// A rule ready to match: regexes compiled and anchored.
#[derive(Debug, Clone)]
pub struct Rule {
    /// Name shown in the audit log.
    pub name: String,
    /// Equality matchers.
    pub match_eq: BTreeMap<String, String>,
    /// Regex matchers, anchored at both ends.
    pub match_re: Vec<(String, Regex)>,
    /// Action while firing.
    pub action: RuleAction,
    /// Weight for weight actions.
    pub weight: Option<String>,
    /// Restore on resolve.
    pub restore: bool,
    /// Delay before the restore.
    pub restore_delay: Duration,
    /// Fleet key.
    pub fleet: String,
}

impl Rule {
    /// Whether every matcher holds for `alert` (a missing label matches as the empty string).
    pub fn matches(&self, alert: &Alert) -> bool {
        let value = |label: &str| alert.labels.get(label).map_or("", String::as_str);
        self.match_eq
            .iter()
            .all(|(label, want)| value(label) == want)
            && self
                .match_re
                .iter()
                .all(|(label, re)| re.is_match(value(label)))
    }
}

/// A rule that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct RuleError {
    /// Dotted path of the offending key, such as `rules[2].match_re.severity`.
    pub key: String,
    /// What is wrong with it.
    pub message: String,
}

impl RuleError {
    fn new(key: String, message: String) -> Self {
        Self { key, message }
    }
}

/// Checks the rules of a configuration file, in order; the first problem found is returned.
pub fn validate(rules: &[RuleConfig]) -> Result<(), RuleError> {
    let mut names = std::collections::HashSet::new();
    for (i, rule) in rules.iter().enumerate() {
        let key = |field: &str| format!("rules[{i}].{field}");
        if rule.name.trim().is_empty() {
            return Err(RuleError::new(key("name"), "must not be empty".into()));
        }
        if !names.insert(rule.name.as_str()) {
            return Err(RuleError::new(
                key("name"),
                format!("duplicate rule name {:?}", rule.name),
            ));
        }
        if rule.match_eq.is_empty() && rule.match_re.is_empty() {
            return Err(RuleError::new(
                key("match"),
                "a rule needs at least one matcher (match or match_re)".into(),
            ));
        }
        for (label, re) in &rule.match_re {
            anchored(re)
                .map_err(|e| RuleError::new(key(&format!("match_re.{label}")), e.to_string()))?;
        }
        match (rule.action, &rule.weight) {
            (RuleAction::Weight, None) => {
                return Err(RuleError::new(
                    key("weight"),
                    "action \"weight\" needs a weight".into(),
                ))
            }
            (RuleAction::Weight, Some(w)) if !is_valid_weight(w) => {
                return Err(RuleError::new(
                    key("weight"),
                    format!("{w:?} is not a weight (0-256, or 0%-100%)"),
                ))
            }
            (RuleAction::Weight, Some(_)) => {}
            (_, Some(_)) => {
                return Err(RuleError::new(
                    key("weight"),
                    "only action \"weight\" takes a weight".into(),
                ))
            }
            (_, None) => {}
        }
        validate_name(&rule.fleet).map_err(|e| RuleError::new(key("fleet"), e.to_string()))?;
    }
    Ok(())
}

/// Compiles rules that passed [`validate`].
pub fn compile(rules: &[RuleConfig]) -> Vec<Rule> {
    rules
        .iter()
        .map(|r| Rule {
            name: r.name.clone(),
            match_eq: r.match_eq.clone(),
            match_re: r
                .match_re
                .iter()
                .map(|(k, v)| (k.clone(), anchored(v).expect("validated regex")))
                .collect(),
            action: r.action,
            weight: r.weight.clone(),
            restore: r.restore,
            restore_delay: Duration::from_secs(r.restore_delay_secs),
            fleet: r.fleet.clone(),
        })
        .collect()
}

fn anchored(re: &str) -> Result<Regex, regex::Error> {
    regex::RegexBuilder::new(&format!("^(?:{re})$"))
        .size_limit(1 << 20)
        .build()
}
