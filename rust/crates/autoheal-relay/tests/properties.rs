//! Property tests: no body crashes the parser, and no label value that is not in the safe
//! alphabet ever reaches an action.

use std::collections::BTreeMap;
use std::time::Duration;

use autoheal_relay::decide::decide;
use autoheal_relay::model::Decision;
use autoheal_relay::model::{Action, Alert, AlertStatus, Source};
use autoheal_relay::payload;
use autoheal_relay::rules::{Rule, RuleAction};
use autoheal_relay::target::TargetsConfig;
use proptest::prelude::*;

fn catch_all_rule() -> Rule {
    Rule {
        name: "all".into(),
        match_eq: BTreeMap::new(),
        match_re: vec![("alertname".into(), regex::Regex::new("^(?:.*)$").unwrap())],
        action: RuleAction::Drain,
        weight: None,
        restore: true,
        restore_delay: Duration::ZERO,
        fleet: "default".into(),
    }
}

/// Whether a value uses only characters that are inert in YAML, Jinja and a shell word.
fn inert(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= 253
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | ':' | ' '))
        && !value.contains("..")
}

fn label_value() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z0-9.:_-]{1,20}",
        any::<String>(),
        "(\\{\\{|\\{%|\\$\\(|`|;|\\||&|\\n|\\.\\./|'|\"| ){1,4}[a-z0-9]{0,5}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn arbitrary_bytes_never_panic_the_parser(body in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = payload::parse(Source::Alertmanager, &body);
        let _ = payload::parse(Source::Grafana, &body);
    }

    #[test]
    fn arbitrary_json_shaped_bodies_never_panic(
        status in prop_oneof![Just("firing"), Just("resolved"), Just("bogus")],
        labels in proptest::collection::btree_map("[a-z]{1,8}", label_value(), 0..6),
        fingerprint in any::<String>(),
    ) {
        let body = serde_json::json!({"version": "4", "status": status, "alerts": [
            {"status": status, "labels": labels, "startsAt": "2026-01-01T00:00:00Z", "fingerprint": fingerprint}
        ]});
        let _ = payload::parse(Source::Alertmanager, body.to_string().as_bytes());
    }

    #[test]
    fn only_inert_values_reach_an_action(
        server in proptest::option::of(label_value()),
        backend in proptest::option::of(label_value()),
        instance in proptest::option::of(label_value()),
        alertname in label_value(),
        fingerprint in prop_oneof!["[0-9a-f]{16}", any::<String>()],
        firing in any::<bool>(),
    ) {
        let mut labels = BTreeMap::new();
        labels.insert("alertname".to_owned(), alertname);
        for (k, v) in [("server", server), ("backend", backend), ("instance", instance)] {
            if let Some(v) = v {
                labels.insert(k.to_owned(), v);
            }
        }
        let alert = Alert {
            source: Source::Alertmanager,
            status: if firing { AlertStatus::Firing } else { AlertStatus::Resolved },
            labels,
            starts_at: String::new(),
            fingerprint,
        };
        let decisions = decide(&[alert], &[catch_all_rule()], &TargetsConfig::default(), 0);
        if let Decision::Act(intent) = &decisions[0] {
            let action = Action::from(intent);
            for value in [&action.server, &action.address, &action.backend].into_iter().flatten() {
                prop_assert!(inert(value), "unsafe value reached an action: {value:?}");
            }
            prop_assert!(action.server.is_some() || action.address.is_some());
            prop_assert!(inert(&action.reason.alert), "{:?}", action.reason.alert);
            prop_assert!(action.reason.fingerprint.chars().all(|c| c.is_ascii_hexdigit()));
        }
    }
}
