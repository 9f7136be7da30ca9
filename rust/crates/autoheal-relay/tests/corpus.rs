//! Every Alertmanager and Grafana payload of the shared corpus parses, or is refused with a message,
//! as the table says. An extension of the suite: the project's own payloads are tested beside the parser.

use std::path::PathBuf;

use autoheal_relay::model::{AlertStatus, Source};
use autoheal_relay::payload::parse;

/// `$AUTOHEAL_SHARED_DIR/corpus/payloads` (default in the checkout's .cargo/config.toml). This target
/// runs only when asked for (`cargo test --test corpus`, as scripts/test.sh does when the corpus exists),
/// so a missing corpus is a failure here, never a silent pass.
fn corpus_dir() -> PathBuf {
    let shared = std::env::var_os("AUTOHEAL_SHARED_DIR")
        .expect("AUTOHEAL_SHARED_DIR is not set (cargo sets it from .cargo/config.toml)");
    let dir = PathBuf::from(shared).join("corpus/payloads");
    assert!(
        dir.is_dir(),
        "the shared payload corpus is missing: expected it at {}",
        dir.display()
    );
    dir
}

fn read(rel: &str) -> Vec<u8> {
    let path = corpus_dir().join(rel);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every payload in the corpus, with what a reader of the file sees in it: the number of
/// alerts for webhook-shaped bodies, `None` for custom-template bodies that must be refused.
const CORPUS: &[(&str, Source, Option<usize>)] = &[
    ("alertmanager/alertmanager__notify-webhook-test__TestWebhookCustomPayloadList__expected-body.json", Source::Alertmanager, None),
    ("alertmanager/alertmanager__notify-webhook-test__TestWebhookCustomPayloadMap__expected-body-reconstructed.json", Source::Alertmanager, None),
    ("alertmanager/alertmanager__notify-webhook-test__TestWebhookCustomPayloadPreservesYAMLLikeStrings__expected-body.json", Source::Alertmanager, None),
    ("alertmanager/alertmanager__notify-webhook-test__TestWebhookCustomPayloadStringList__expected-body.json", Source::Alertmanager, None),
    ("alertmanager/alertmanager__notify-webhook-test__TestWebhookCustomPayloadString__expected-body.json", Source::Alertmanager, None),
    ("alertmanager/alertmanager__notify-webhook-test__TestWebhookDefaultPayload__body-reconstructed.json", Source::Alertmanager, Some(1)),
    ("alertmanager/debian-alertmanager-0.25__captured__firing.json", Source::Alertmanager, Some(1)),
    ("alertmanager/debian-alertmanager-0.25__captured__resolved.json", Source::Alertmanager, Some(1)),
    ("alertmanager/prometheus-msteams__alert_testdata_large_prom_post_request.json", Source::Alertmanager, Some(19)),
    ("alertmanager/prometheus-msteams__alert_testdata_prom_post_request.json", Source::Alertmanager, Some(1)),
    ("alertmanager/prometheus-msteams__alert_testdata_prom_post_request_12_alerts.json", Source::Alertmanager, Some(12)),
    ("alertmanager/prometheus-msteams__alert_testdata_prom_post_request_2_alerts.json", Source::Alertmanager, Some(2)),
    ("alertmanager/prometheus-msteams__alert_testdata_prom_post_request_without_common_summary.json", Source::Alertmanager, Some(1)),
    ("alertmanager/prometheus-msteams__pkg_card_testdata_prom_post_request.json", Source::Alertmanager, Some(1)),
    ("grafana/grafana-alerting__webhook-v1-test__TestNotify_CustomPayload__alertmanager-like-payload.json", Source::Grafana, None),
    ("grafana/grafana-alerting__webhook-v1-test__TestNotify_CustomPayload__custom-payload-with-one-alert.json", Source::Grafana, Some(1)),
    ("grafana/grafana-alerting__webhook-v1-test__TestNotify_CustomPayload__dingding-like-payload.json", Source::Grafana, None),
    ("grafana/grafana-alerting__webhook-v1-test__TestNotify_CustomPayload__kafka-esque-payload.json", Source::Grafana, None),
    ("grafana/grafana-alerting__webhook-v1-test__TestNotify_CustomPayload__variables-and-extra-fields.json", Source::Grafana, None),
    ("grafana/grafana-alerting__webhook-v1-test__TestNotify__custom-config-multiple-alerts-truncated-reconstructed.json", Source::Grafana, Some(2)),
    ("grafana/grafana-alerting__webhook-v1-test__TestNotify__default-config-one-alert-custom-message-reconstructed.json", Source::Grafana, Some(1)),
    ("grafana/grafana__docs__webhook-notifier-md__example-payload.json", Source::Grafana, Some(2)),
];

#[test]
fn table_covers_every_corpus_file() {
    let mut on_disk = Vec::new();
    for sub in ["alertmanager", "grafana"] {
        for entry in std::fs::read_dir(corpus_dir().join(sub)).unwrap() {
            on_disk.push(format!(
                "{sub}/{}",
                entry.unwrap().file_name().to_string_lossy()
            ));
        }
    }
    on_disk.sort();
    let mut listed: Vec<String> = CORPUS.iter().map(|(p, _, _)| (*p).to_owned()).collect();
    listed.sort();
    assert_eq!(
        on_disk, listed,
        "a corpus payload was added or removed: update CORPUS"
    );
}

#[test]
fn every_corpus_payload_parses_or_is_cleanly_refused() {
    for (rel, source, expected) in CORPUS {
        let result = parse(*source, &read(rel));
        match (expected, result) {
            (Some(n), Ok(alerts)) => {
                assert_eq!(alerts.len(), *n, "{rel}");
                for a in &alerts {
                    assert!(!a.fingerprint.is_empty(), "{rel}");
                    assert!(a.labels.contains_key("alertname"), "{rel}");
                }
            }
            (None, Err(e)) => assert!(!e.to_string().is_empty(), "{rel}"),
            (Some(_), Err(e)) => panic!("{rel}: should parse: {e}"),
            (None, Ok(a)) => panic!("{rel}: custom payload accepted as {} alerts", a.len()),
        }
    }
}

#[test]
fn captured_firing_payload_fields() {
    let alerts = parse(
        Source::Alertmanager,
        &read("alertmanager/debian-alertmanager-0.25__captured__firing.json"),
    )
    .unwrap();
    let a = &alerts[0];
    assert_eq!(a.status, AlertStatus::Firing);
    assert_eq!(a.fingerprint, "a15aa1a925eb270b");
    assert_eq!(a.starts_at, "2026-11-25T12:46:18.829Z");
    assert_eq!(a.labels["server"], "s1");
    assert_eq!(a.labels["backend"], "be");
    let resolved = parse(
        Source::Alertmanager,
        &read("alertmanager/debian-alertmanager-0.25__captured__resolved.json"),
    )
    .unwrap();
    assert_eq!(resolved[0].status, AlertStatus::Resolved);
    assert_eq!(resolved[0].fingerprint, "a15aa1a925eb270b");
}
