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

    /// The project's own payloads (tests/fixtures/payloads); the shared corpus is tests/corpus.rs.
    fn fixtures_dir() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/payloads")
    }

    fn read(rel: &str) -> Vec<u8> {
        let path = fixtures_dir().join(rel);
        std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    /// Every fixture, with what a reader of the file sees in it: the number of alerts for
    /// webhook-shaped bodies, `None` for bodies that must be refused (custom templates, the legacy
    /// Grafana format, an Alertmanager version before 4).
    const FIXTURES: &[(&str, Source, Option<usize>)] = &[
        (
            "alertmanager/custom-template-list.json",
            Source::Alertmanager,
            None,
        ),
        (
            "alertmanager/custom-template-map.json",
            Source::Alertmanager,
            None,
        ),
        (
            "alertmanager/custom-template-string.json",
            Source::Alertmanager,
            None,
        ),
        ("alertmanager/firing.json", Source::Alertmanager, Some(1)),
        ("alertmanager/grouped.json", Source::Alertmanager, Some(3)),
        (
            "alertmanager/no-matching-rule.json",
            Source::Alertmanager,
            Some(1),
        ),
        (
            "alertmanager/old-without-status-and-fingerprint.json",
            Source::Alertmanager,
            Some(2),
        ),
        ("alertmanager/resolved.json", Source::Alertmanager, Some(1)),
        ("alertmanager/truncated.json", Source::Alertmanager, Some(2)),
        ("alertmanager/version-3.json", Source::Alertmanager, None),
        ("grafana/custom-template-chat.json", Source::Grafana, None),
        (
            "grafana/custom-template-records.json",
            Source::Grafana,
            None,
        ),
        ("grafana/firing-two-alerts.json", Source::Grafana, Some(2)),
        ("grafana/legacy-alerting.json", Source::Grafana, None),
        ("grafana/resolved.json", Source::Grafana, Some(1)),
        ("grafana/truncated.json", Source::Grafana, Some(2)),
    ];

    #[test]
    fn table_covers_every_fixture_file() {
        let mut on_disk = Vec::new();
        for sub in ["alertmanager", "grafana"] {
            for entry in std::fs::read_dir(fixtures_dir().join(sub)).unwrap() {
                on_disk.push(format!(
                    "{sub}/{}",
                    entry.unwrap().file_name().to_string_lossy()
                ));
            }
        }
        on_disk.sort();
        let mut listed: Vec<String> = FIXTURES.iter().map(|(p, _, _)| (*p).to_owned()).collect();
        listed.sort();
        assert_eq!(
            on_disk, listed,
            "a fixture payload was added or removed: update FIXTURES"
        );
    }

    #[test]
    fn every_fixture_parses_or_is_cleanly_refused() {
        for (rel, source, expected) in FIXTURES {
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
                (None, Ok(a)) => panic!("{rel}: refused body accepted as {} alerts", a.len()),
            }
        }
    }

    #[test]
    fn firing_and_resolved_payload_fields() {
        let alerts = parse(Source::Alertmanager, &read("alertmanager/firing.json")).unwrap();
        let a = &alerts[0];
        assert_eq!(a.status, AlertStatus::Firing);
        assert_eq!(a.fingerprint, "7c1e5a90d24b3f68");
        assert_eq!(a.starts_at, "2026-03-02T09:15:30.25Z");
        assert_eq!(a.labels["server"], "s1");
        assert_eq!(a.labels["backend"], "be");
        let resolved = parse(Source::Alertmanager, &read("alertmanager/resolved.json")).unwrap();
        assert_eq!(resolved[0].status, AlertStatus::Resolved);
        assert_eq!(resolved[0].fingerprint, "7c1e5a90d24b3f68");
    }

    #[test]
    fn a_grouped_body_keeps_each_alerts_own_status() {
        let alerts = parse(Source::Alertmanager, &read("alertmanager/grouped.json")).unwrap();
        let seen: Vec<(&str, AlertStatus)> = alerts
            .iter()
            .map(|a| (a.labels["server"].as_str(), a.status))
            .collect();
        assert_eq!(
            seen,
            [
                ("s1", AlertStatus::Firing),
                ("s2", AlertStatus::Firing),
                ("s3", AlertStatus::Resolved)
            ]
        );
    }

    #[test]
    fn an_alertmanager_body_before_version_4_is_refused_by_version() {
        let err = parse(Source::Alertmanager, &read("alertmanager/version-3.json")).unwrap_err();
        assert!(
            matches!(err, ParseError::Version { found: ref v, .. } if v == "3"),
            "{err}"
        );
    }

    #[test]
    fn old_bodies_take_the_body_status_and_a_computed_fingerprint() {
        let alerts = parse(
            Source::Alertmanager,
            &read("alertmanager/old-without-status-and-fingerprint.json"),
        )
        .unwrap();
        assert!(alerts.iter().all(|a| a.status == AlertStatus::Firing));
        assert_eq!(alerts[0].fingerprint.len(), 16);
        assert_ne!(alerts[0].fingerprint, alerts[1].fingerprint);
    }

    #[test]
    fn grafana_body_on_alertmanager_endpoint_is_refused_by_version() {
        for rel in ["grafana/firing-two-alerts.json", "grafana/resolved.json"] {
            let err = parse(Source::Alertmanager, &read(rel)).unwrap_err();
            assert!(
                matches!(err, ParseError::Version { found: ref v, .. } if v == "1"),
                "{rel}: {err}"
            );
        }
        let err = parse(Source::Grafana, &read("alertmanager/firing.json")).unwrap_err();
        assert!(
            matches!(err, ParseError::Version { found: ref v, .. } if v == "4"),
            "{err}"
        );
    }

    #[test]
    fn malformed_and_truncated_json_is_an_error() {
        let good = read("alertmanager/firing.json");
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
