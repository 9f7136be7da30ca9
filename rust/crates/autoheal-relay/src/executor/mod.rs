//! Executors carry out a run: hand `autoheal_actions` to a playbook and report the result.

use std::future::Future;
use std::pin::Pin;

use crate::model::RunResult;
use crate::model::{Action, RunStatus};

pub mod ansible_runner;
pub mod awx;

/// The extra variable the playbook reads its actions from.
pub const ACTIONS_VAR: &str = "autoheal_actions";

/// One run: the actions for one fleet.
#[derive(Debug, Clone)]
pub struct RunRequest {
    /// Journal id of the run.
    pub run_id: i64,
    /// Fleet key.
    pub fleet: String,
    /// What the playbook is asked to do.
    pub actions: Vec<Action>,
}

/// A boxed future returned by executors (keeps the trait object-safe).
pub type RunFuture<'a> = Pin<Box<dyn Future<Output = RunResult> + Send + 'a>>;

/// Runs remediation. Implementations never panic on a failed run: every failure is a
/// [`RunResult`] with a non-`successful` status and a detail.
pub trait Executor: Send + Sync + std::fmt::Debug {
    /// Short name recorded in the journal.
    fn name(&self) -> &'static str;
    /// Carries out one run.
    fn run<'a>(&'a self, request: &'a RunRequest) -> RunFuture<'a>;
}

/// Records what would run and reports success; runs nothing.
#[derive(Debug, Default)]
pub struct DryRun;

impl Executor for DryRun {
    fn name(&self) -> &'static str {
        "dry-run"
    }

    fn run<'a>(&'a self, request: &'a RunRequest) -> RunFuture<'a> {
        Box::pin(async move {
            for a in &request.actions {
                tracing::info!(
                    run = request.run_id,
                    fleet = %request.fleet,
                    server = a.server.as_deref().unwrap_or(""),
                    address = a.address.as_deref().unwrap_or(""),
                    backend = a.backend.as_deref().unwrap_or(""),
                    state = a.state.as_str(),
                    weight = a.weight.as_deref().unwrap_or(""),
                    "dry run: would apply"
                );
            }
            RunResult {
                status: RunStatus::Successful,
                rc: None,
                duration_ms: 0,
                detail: format!("dry run: {} action(s) not applied", request.actions.len()),
                ..RunResult::default()
            }
        })
    }
}

/// The extra vars document for a run: `{"autoheal_actions": [...]}`.
pub fn extra_vars(actions: &[Action]) -> serde_json::Value {
    serde_json::json!({ ACTIONS_VAR: actions })
}

/// [`extra_vars`] as YAML for an `-e @file` (ansible-runner's `env/extravars`), every string
/// tagged `!unsafe`: Ansible then never templates what came from an alert label, even if a value
/// slipped past the relay's alphabet. JSON flow style with tags, which YAML parsers read.
pub fn extra_vars_unsafe_yaml(actions: &[Action]) -> String {
    let mut out = String::new();
    write_unsafe_yaml(&extra_vars(actions), &mut out);
    out.push('\n');
    out
}

fn write_unsafe_yaml(value: &serde_json::Value, out: &mut String) {
    use serde_json::Value;
    match value {
        Value::String(s) => {
            out.push_str("!unsafe ");
            out.push_str(&Value::String(s.clone()).to_string());
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_unsafe_yaml(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            out.push('{');
            for (i, (key, item)) in map.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push_str(": ");
                write_unsafe_yaml(item, out);
            }
            out.push('}');
        }
        other => out.push_str(&other.to_string()),
    }
}
