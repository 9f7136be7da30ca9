//! Which server an alert is about: the label names (`[targets]`), and reading a validated
//! [`Target`] out of an alert's labels.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::label::{split_instance, validate_name, TargetError};
use crate::model::{Alert, Target};

/// How alert labels name the server to act on.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TargetsConfig {
    /// Label holding the HAProxy server name.
    pub server_label: String,
    /// Label holding the HAProxy backend name (optional on alerts).
    pub backend_label: String,
    /// Label holding `host:port`, used when there is no server label.
    pub instance_label: String,
    /// `instance` value (with or without port) to HAProxy server name.
    pub instance_map: BTreeMap<String, String>,
}

impl Default for TargetsConfig {
    fn default() -> Self {
        Self {
            server_label: "server".to_owned(),
            backend_label: "backend".to_owned(),
            instance_label: "instance".to_owned(),
            instance_map: BTreeMap::new(),
        }
    }
}

impl TargetsConfig {
    /// Checks the server names of `instance_map`; on error, the offending key (relative to
    /// `[targets]`) and why.
    pub fn validate(&self) -> Result<(), (String, TargetError)> {
        for (instance, server) in &self.instance_map {
            validate_name(server).map_err(|e| (format!("instance_map.\"{instance}\""), e))?;
        }
        Ok(())
    }
}

/// Reads the target from alert labels: the server label (+ optional backend label), else the
/// instance label mapped through `instance_map` (with or without its port), else the instance's
/// host as an address.
pub fn target_from_labels(
    labels: &BTreeMap<String, String>,
    cfg: &TargetsConfig,
) -> Result<Target, TargetError> {
    let backend = match labels.get(&cfg.backend_label) {
        Some(b) => {
            validate_name(b)?;
            Some(b.clone())
        }
        None => None,
    };
    if let Some(server) = labels.get(&cfg.server_label) {
        validate_name(server)?;
        return Ok(Target {
            server: Some(server.clone()),
            address: None,
            backend,
        });
    }
    let Some(instance) = labels.get(&cfg.instance_label) else {
        return Err(TargetError::NoTarget {
            server_label: cfg.server_label.clone(),
            instance_label: cfg.instance_label.clone(),
        });
    };
    let host = split_instance(instance)?;
    let mapped = cfg
        .instance_map
        .get(instance.as_str())
        .or_else(|| cfg.instance_map.get(&host));
    Ok(match mapped {
        // Names in the map were validated when the config was loaded.
        Some(server) => Target {
            server: Some(server.clone()),
            address: None,
            backend,
        },
        None => Target {
            server: None,
            address: Some(host),
            backend,
        },
    })
}

/// Names the label that failed, for the audit log (the value itself is not repeated there).
pub fn offending_label(alert: &Alert, cfg: &TargetsConfig, err: &TargetError) -> String {
    if matches!(err, TargetError::NoTarget { .. }) {
        return cfg.server_label.clone();
    }
    for label in [&cfg.backend_label, &cfg.server_label, &cfg.instance_label] {
        if alert.labels.contains_key(label) {
            let value = &alert.labels[label];
            let bad = if label == &cfg.instance_label {
                split_instance(value).is_err()
            } else {
                validate_name(value).is_err()
            };
            if bad {
                return label.clone();
            }
        }
    }
    cfg.server_label.clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn target_prefers_server_label() {
        let cfg = TargetsConfig::default();
        let t = target_from_labels(
            &labels(&[("server", "s1"), ("backend", "be"), ("instance", "h:1")]),
            &cfg,
        )
        .unwrap();
        assert_eq!(t.key(), "be/s1");
    }

    #[test]
    fn target_from_instance_mapped_or_stripped() {
        let mut cfg = TargetsConfig::default();
        cfg.instance_map.insert("10.0.0.7".into(), "web7".into());
        let mapped = target_from_labels(&labels(&[("instance", "10.0.0.7:9100")]), &cfg).unwrap();
        assert_eq!(mapped.server.as_deref(), Some("web7"));
        let stripped = target_from_labels(&labels(&[("instance", "10.0.0.8:9100")]), &cfg).unwrap();
        assert_eq!(stripped.address.as_deref(), Some("10.0.0.8"));
        assert_eq!(stripped.key(), "*/@10.0.0.8");
    }

    #[test]
    fn hostile_backend_label_is_refused_even_with_good_server() {
        let cfg = TargetsConfig::default();
        let err = target_from_labels(&labels(&[("server", "s1"), ("backend", "be{{x}}")]), &cfg);
        assert_eq!(err, Err(TargetError::BadChar { found: '{' }));
    }

    #[test]
    fn no_target_labels() {
        let cfg = TargetsConfig::default();
        let err = target_from_labels(&labels(&[("alertname", "x")]), &cfg).unwrap_err();
        assert_eq!(err.kind(), "no_target");
    }
}
