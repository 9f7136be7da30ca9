//! Which hosts a finished ansible-runner run failed on, read from the events it left in its artifacts:
//! a run that changed some load balancers and not others is partial, and says which.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

/// How each host of a run ended.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct HostOutcome {
    /// Hosts with a failed task or unreachable, each with the last failure message seen for it.
    pub failed: BTreeMap<String, String>,
    /// Hosts that ran every task without failing.
    pub done: Vec<String>,
    /// What the remediate role published with `set_stats` (`autoheal_remediate`: load balancer
    /// -> one outcome per action), or null.
    pub remediate: Value,
}

impl HostOutcome {
    /// Reads the `job_events` directory of a run's artifacts; `None` without a `playbook_on_stats`
    /// event (the playbook did not run to its end).
    pub fn read(job_events: &Path) -> Option<Self> {
        let mut events: Vec<(u64, Value)> = std::fs::read_dir(job_events)
            .ok()?
            .filter_map(Result::ok)
            .filter_map(|entry| {
                let text = std::fs::read_to_string(entry.path()).ok()?;
                let event: Value = serde_json::from_str(&text).ok()?;
                Some((event.get("counter")?.as_u64()?, event))
            })
            .collect();
        events.sort_by_key(|(counter, _)| *counter);
        Self::from_events(events.iter().map(|(_, event)| event))
    }

    /// The outcome from ansible-runner events in the order they happened.
    pub fn from_events<'a>(events: impl Iterator<Item = &'a Value>) -> Option<Self> {
        let mut messages = BTreeMap::new();
        let mut stats = None;
        for event in events {
            let data = &event["event_data"];
            match event["event"].as_str() {
                Some("runner_on_failed" | "runner_on_unreachable")
                    if data["ignore_errors"].as_bool() != Some(true) =>
                {
                    if let Some(host) = data["host"].as_str() {
                        let msg = data["res"]["msg"].as_str().unwrap_or("failed").trim();
                        messages.insert(host.to_owned(), msg.to_owned());
                    }
                }
                Some("playbook_on_stats") => stats = Some(data.clone()),
                _ => {}
            }
        }
        let stats = stats?;
        let hosts_with = |key: &str| -> Vec<String> {
            stats[key]
                .as_object()
                .map(|hosts| {
                    hosts
                        .iter()
                        .filter(|(_, count)| count.as_u64().unwrap_or(0) > 0)
                        .map(|(host, _)| host.clone())
                        .collect()
                })
                .unwrap_or_default()
        };
        let failed: BTreeMap<String, String> = hosts_with("failures")
            .into_iter()
            .chain(hosts_with("dark"))
            .map(|host| {
                let msg = messages
                    .get(&host)
                    .cloned()
                    .unwrap_or_else(|| "failed".into());
                (host, msg)
            })
            .collect();
        let mut done: Vec<String> = stats["processed"]
            .as_object()
            .map(|hosts| {
                hosts
                    .keys()
                    .filter(|h| !failed.contains_key(*h))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        done.sort();
        let remediate = stats["artifact_data"]["autoheal_remediate"].clone();
        Some(Self {
            failed,
            done,
            remediate,
        })
    }

    /// Some hosts failed and others did not.
    pub fn partial(&self) -> bool {
        !self.failed.is_empty() && !self.done.is_empty()
    }

    /// One line: `failed on lb2 (why); done on lb1`.
    pub fn summary(&self) -> String {
        let failed: Vec<String> = self
            .failed
            .iter()
            .map(|(host, msg)| format!("{host} ({msg})"))
            .collect();
        let mut line = format!("failed on {}", failed.join(", "));
        if !self.done.is_empty() {
            line.push_str(&format!("; done on {}", self.done.join(", ")));
        }
        line.replace('\n', " ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn stats(failures: Value, dark: Value, processed: Value) -> Value {
        json!({"event": "playbook_on_stats", "event_data": {
            "failures": failures, "dark": dark, "processed": processed, "ok": {}}})
    }

    fn failed(host: &str, msg: &str, ignored: bool) -> Value {
        json!({"event": "runner_on_failed", "event_data": {
            "host": host, "ignore_errors": ignored, "res": {"msg": msg}}})
    }

    #[test]
    fn a_run_failed_on_one_host_of_two_is_partial_and_names_it_with_its_last_real_failure() {
        let events = [
            failed("lb2", "ignored by the loop", true),
            failed("lb2", "HAProxy does not answer on /run/admin.sock", false),
            stats(json!({"lb2": 1}), json!({}), json!({"lb1": 1, "lb2": 1})),
        ];
        let outcome = HostOutcome::from_events(events.iter()).unwrap();
        assert!(outcome.partial());
        assert_eq!(
            outcome.summary(),
            "failed on lb2 (HAProxy does not answer on /run/admin.sock); done on lb1"
        );
    }

    #[test]
    fn unreachable_hosts_count_as_failed_and_a_run_failed_everywhere_is_not_partial() {
        let events = [stats(
            json!({"lb1": 1}),
            json!({"lb2": 1, "lb3": 0}),
            json!({"lb1": 1, "lb2": 1}),
        )];
        let outcome = HostOutcome::from_events(events.iter()).unwrap();
        assert!(!outcome.partial());
        assert_eq!(outcome.summary(), "failed on lb1 (failed), lb2 (failed)");
    }

    #[test]
    fn the_remediate_roles_stats_are_kept() {
        let mut event = stats(json!({}), json!({}), json!({"lb1": 1}));
        event["event_data"]["artifact_data"] = json!({"autoheal_remediate": {"lb1": [{"action": {"server": "s1"}, "deferred": true}]}});
        let outcome = HostOutcome::from_events([event].iter()).unwrap();
        assert_eq!(outcome.remediate["lb1"][0]["deferred"], json!(true));
        let bare = stats(json!({}), json!({}), json!({"lb1": 1}));
        assert!(HostOutcome::from_events([bare].iter())
            .unwrap()
            .remediate
            .is_null());
    }

    #[test]
    fn no_stats_event_means_no_outcome() {
        assert_eq!(
            HostOutcome::from_events([failed("lb1", "x", false)].iter()),
            None
        );
    }

    #[test]
    fn events_are_read_from_files_in_counter_order() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, counter: u64, mut event: Value| {
            event["counter"] = json!(counter);
            std::fs::write(dir.path().join(name), event.to_string()).unwrap();
        };
        // File names do not sort by counter; the later failure message wins.
        write("9-b.json", 9, failed("lb2", "second", false));
        write(
            "10-c.json",
            10,
            stats(json!({"lb2": 1}), json!({}), json!({"lb1": 1, "lb2": 1})),
        );
        write("2-a.json", 2, failed("lb2", "first", false));
        std::fs::write(dir.path().join("partial.json"), "{not json").unwrap();
        let outcome = HostOutcome::read(dir.path()).unwrap();
        assert_eq!(outcome.failed["lb2"], "second");
        assert_eq!(outcome.done, ["lb1"]);
    }
}
