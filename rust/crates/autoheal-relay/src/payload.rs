//! Parsing of Alertmanager (v4) and Grafana (v1) webhook bodies into [`Alert`]s.
//!
//! Both senders share the shape that matters here: `alerts[]` with `status`, `labels`,
//! `startsAt` and `fingerprint`. Older Alertmanager bodies omit the per-alert status and
//! fingerprint; the body's status and a fingerprint computed from the labels stand in.
//! Custom-template bodies (anything without `alerts`) are refused with a clear message.

use std::collections::BTreeMap;

use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::model::{Alert, AlertStatus, Source};

/// Why a body is not a usable webhook payload.
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    /// Not JSON, truncated, or not the webhook shape.
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    /// The body's `version` is not the one this endpoint speaks.
    #[error("unsupported {endpoint} webhook version {found:?} (expected {expected:?})")]
    Version {
        /// The endpoint.
        endpoint: &'static str,
        /// What the body says.
        found: String,
        /// What is supported.
        expected: &'static str,
    },
    /// An alert has no status and neither has the body.
    #[error("alert {index} has no status")]
    NoStatus {
        /// Position in `alerts`.
        index: usize,
    },
}

#[derive(Deserialize)]
#[serde(expecting = "a webhook body: a JSON object with an `alerts` array")]
struct Body {
    version: Option<String>,
    status: Option<AlertStatus>,
    alerts: Vec<RawAlert>,
}

#[derive(Deserialize)]
#[serde(expecting = "an alert object with `labels`")]
struct RawAlert {
    status: Option<AlertStatus>,
    labels: BTreeMap<String, String>,
    #[serde(rename = "startsAt", default)]
    starts_at: String,
    fingerprint: Option<String>,
}

/// Parses one webhook body.
pub fn parse(source: Source, body: &[u8]) -> Result<Vec<Alert>, ParseError> {
    let parsed: Body = serde_json::from_slice(body)?;
    let expected = match source {
        Source::Alertmanager => "4",
        Source::Grafana => "1",
    };
    if let Some(v) = &parsed.version {
        if v != expected {
            return Err(ParseError::Version {
                endpoint: source.as_str(),
                found: v.chars().take(16).collect(),
                expected,
            });
        }
    }
    parsed
        .alerts
        .into_iter()
        .enumerate()
        .map(|(index, raw)| {
            let status = raw
                .status
                .or(parsed.status)
                .ok_or(ParseError::NoStatus { index })?;
            let fingerprint = match raw.fingerprint {
                Some(f) if !f.is_empty() => f,
                _ => fingerprint_of(&raw.labels),
            };
            Ok(Alert {
                source,
                status,
                labels: raw.labels,
                starts_at: raw.starts_at,
                fingerprint,
            })
        })
        .collect()
}

/// A stable 16-hex-digit fingerprint of a label set, for senders that do not send one.
pub fn fingerprint_of(labels: &BTreeMap<String, String>) -> String {
    let mut hasher = Sha256::new();
    for (k, v) in labels {
        hasher.update(k.as_bytes());
        hasher.update([0xff]);
        hasher.update(v.as_bytes());
        hasher.update([0xfe]);
    }
    hex::encode(&hasher.finalize()[..8])
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn corpus_dir() -> PathBuf {
        let dir =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../../shared/corpus/payloads");
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

    #[test]
    fn old_bodies_take_the_body_status_and_a_computed_fingerprint() {
        let alerts = parse(
            Source::Alertmanager,
            &read(
                "alertmanager/prometheus-msteams__alert_testdata_prom_post_request_2_alerts.json",
            ),
        )
        .unwrap();
        assert!(alerts.iter().all(|a| a.status == AlertStatus::Firing));
        assert_eq!(alerts[0].fingerprint.len(), 16);
        assert_ne!(alerts[0].fingerprint, alerts[1].fingerprint);
    }

    #[test]
    fn grafana_body_on_alertmanager_endpoint_is_refused_by_version() {
        for rel in [
            "grafana/grafana__docs__webhook-notifier-md__example-payload.json",
            "grafana/grafana-alerting__webhook-v1-test__TestNotify__default-config-one-alert-custom-message-reconstructed.json",
        ] {
            let err = parse(Source::Alertmanager, &read(rel)).unwrap_err();
            assert!(matches!(err, ParseError::Version { found: ref v, .. } if v == "1"), "{rel}: {err}");
        }
        let err = parse(
            Source::Grafana,
            &read("alertmanager/debian-alertmanager-0.25__captured__firing.json"),
        )
        .unwrap_err();
        assert!(
            matches!(err, ParseError::Version { found: ref v, .. } if v == "4"),
            "{err}"
        );
    }

    #[test]
    fn malformed_and_truncated_json_is_an_error() {
        let good = read("alertmanager/debian-alertmanager-0.25__captured__firing.json");
        for cut in [1, good.len() / 3, good.len() / 2, good.len() - 2] {
            assert!(
                parse(Source::Alertmanager, &good[..cut]).is_err(),
                "cut at {cut}"
            );
        }
        for bad in [
            &b""[..],
            b"{",
            b"null",
            b"42",
            b"{\"alerts\": 5}",
            b"{\"alerts\": [{\"labels\": {\"a\": 1}}]}",
        ] {
            assert!(
                parse(Source::Alertmanager, bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn unknown_status_is_an_error() {
        let body = br#"{"alerts":[{"status":"exploded","labels":{"alertname":"x"}}]}"#;
        assert!(parse(Source::Alertmanager, body).is_err());
    }
}
