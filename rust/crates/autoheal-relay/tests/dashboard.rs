//! The Grafana dashboard shipped with the `alerting` role (roles/alerting/files/autoheal-relay-dashboard.json)
//! is valid JSON that Grafana imports, and its queries name only series the relay really exports: the
//! names are read from the relay's own /metrics output, served by `app()`.

use std::collections::BTreeSet;
use std::path::PathBuf;

use autoheal_relay::config::Config;
use autoheal_relay::executor::DryRun;
use autoheal_relay::{app, Relay};
use axum::body::Body;
use axum::http::Request;
use http_body_util::BodyExt;
use tower::ServiceExt;

fn dashboard() -> serde_json::Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../roles/alerting/files/autoheal-relay-dashboard.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: not JSON: {e}", path.display()))
}

/// Every series name a Prometheus scrape of the relay stores, from the `# TYPE` lines of its
/// exposition: counters as `<name>_total`, histograms as `<name>_bucket`, `_sum` and `_count`.
async fn exported_series() -> BTreeSet<String> {
    let dir = tempfile::tempdir().unwrap();
    let config = Config::parse(
        "[auth]\nallow_unauthenticated = true\n[executor]\nkind = \"dry-run\"\n",
        &dir.path().join("relay.toml"),
    )
    .unwrap();
    let relay = Relay::start(&config, std::sync::Arc::new(DryRun)).unwrap();
    let response = app(relay.state())
        .oneshot(Request::get("/metrics").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert!(response.status().is_success());
    let body = response.into_body().collect().await.unwrap().to_bytes();
    relay.shutdown().await;
    let text = String::from_utf8(body.to_vec()).unwrap();
    let mut series = BTreeSet::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("# TYPE ") else {
            continue;
        };
        let (name, kind) = rest.split_once(' ').unwrap();
        match kind {
            "counter" => series.insert(format!("{name}_total")),
            "gauge" => series.insert(name.to_owned()),
            "histogram" => {
                for suffix in ["_bucket", "_sum", "_count"] {
                    series.insert(format!("{name}{suffix}"));
                }
                true
            }
            other => panic!("unexpected metric type {other} for {name}"),
        };
    }
    assert!(series.len() > 10, "too few series in:\n{text}");
    series
}

/// Every PromQL expression of the dashboard: panel targets and templating queries.
fn queries(dashboard: &serde_json::Value) -> Vec<String> {
    let mut found = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().into_iter().flatten() {
            found.push(target["expr"].as_str().unwrap().to_owned());
        }
    }
    for variable in dashboard["templating"]["list"].as_array().unwrap() {
        if let Some(query) = variable["query"]["query"].as_str() {
            found.push(query.to_owned());
        }
    }
    found
}

/// The names a query reads: every identifier followed by a `{` selector or a `,`/`)` inside
/// `label_values(...)`, and every word that starts with `autoheal_relay_`.
fn metric_names(query: &str) -> BTreeSet<String> {
    let bytes = query.as_bytes();
    let mut names = BTreeSet::new();
    let mut start = None;
    for (i, &b) in bytes.iter().chain(std::iter::once(&b' ')).enumerate() {
        let word_byte = b.is_ascii_alphanumeric() || b == b'_' || b == b':';
        match (start, word_byte) {
            (None, true) => start = Some(i),
            (Some(s), false) => {
                let word = &query[s..i];
                let before_selector = b == b'{';
                let in_label_values = query[..s].ends_with("label_values(");
                let quoted = s > 0 && matches!(bytes[s - 1], b'"' | b'$');
                if !quoted
                    && (before_selector || in_label_values || word.starts_with("autoheal_relay_"))
                {
                    names.insert(word.to_owned());
                }
                start = None;
            }
            _ => {}
        }
    }
    names
}

#[test]
fn metric_names_are_read_from_selectors() {
    let names = metric_names(
        r#"sum by (le) (rate(autoheal_relay_x_bucket{instance=~"$instance"}[5m])) / up{job="a"}"#,
    );
    assert_eq!(
        names,
        BTreeSet::from(["autoheal_relay_x_bucket".to_owned(), "up".to_owned()])
    );
    assert_eq!(
        metric_names("label_values(autoheal_relay_y_total, instance)"),
        BTreeSet::from(["autoheal_relay_y_total".to_owned()])
    );
}

#[test]
fn the_dashboard_is_a_grafana_dashboard() {
    let d = dashboard();
    assert_eq!(d["uid"], "autoheal-relay");
    assert!(d["title"].as_str().is_some_and(|t| !t.is_empty()));
    assert!(d["schemaVersion"].as_u64().is_some());
    let panels = d["panels"].as_array().unwrap();
    let mut ids = BTreeSet::new();
    for panel in panels {
        assert!(
            ids.insert(panel["id"].as_u64().unwrap()),
            "duplicate panel id"
        );
        assert!(panel["type"].as_str().is_some(), "{panel}");
        for key in ["h", "w", "x", "y"] {
            assert!(panel["gridPos"][key].as_u64().is_some(), "{panel}");
        }
        assert!(
            panel["gridPos"]["x"].as_u64().unwrap() + panel["gridPos"]["w"].as_u64().unwrap() <= 24
        );
        if panel["type"] != "row" {
            assert!(!panel["targets"].as_array().unwrap().is_empty(), "{panel}");
            assert_eq!(panel["datasource"]["uid"], "${datasource}", "{panel}");
        }
    }
}

#[tokio::test]
async fn every_query_names_only_series_the_relay_exports_and_every_series_is_shown() {
    let exported = exported_series().await;
    let d = dashboard();
    let mut used = BTreeSet::new();
    for query in queries(&d) {
        let names = metric_names(&query);
        assert!(!names.is_empty(), "no metric in {query}");
        for name in names {
            assert!(
                exported.contains(&name),
                "{query}: {name} is not exported by the relay (it exports {exported:?})"
            );
            used.insert(name);
        }
    }
    // Histograms are shown through _bucket and _sum/_count; every other series has a panel.
    let unused: Vec<&String> = exported.difference(&used).collect();
    assert!(unused.is_empty(), "series without a panel: {unused:?}");
}
