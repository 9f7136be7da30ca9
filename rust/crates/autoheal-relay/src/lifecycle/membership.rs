//! Which backends a server belongs to, so that its budget is counted where the server really
//! is, whatever label the alert carried: learned from `server_info` on the fleet (refreshed) or
//! configured.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::model::Target;

/// Servers per backend, and backends per server name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Membership {
    servers: BTreeMap<String, BTreeSet<String>>,
    /// Sizes configured for backends whose servers are not listed (`guard.backend_sizes`).
    sizes: BTreeMap<String, usize>,
}

/// Why an intent cannot be placed in a backend.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unplaced {
    /// The relay knows the fleet's servers and this one is not among them.
    #[error("no server {0} in any backend of the fleet")]
    UnknownServer(String),
}

impl Membership {
    /// From `(backend, server)` pairs (the `[guard.backends]` table, or a test).
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        let mut m = Self::default();
        for (backend, server) in pairs {
            m.add(backend, server);
        }
        m
    }

    fn add(&mut self, backend: &str, server: &str) {
        self.servers
            .entry(backend.to_owned())
            .or_default()
            .insert(server.to_owned());
    }

    /// Adds what one load balancer's `autoheal.haproxy.server_info` result lists (servers
    /// commented out by the module count: they are out, not gone).
    pub fn add_server_info(&mut self, result: &Value) {
        for backend in result["backends"].as_array().into_iter().flatten() {
            let Some(name) = backend["name"].as_str() else {
                continue;
            };
            for server in backend["servers"].as_array().into_iter().flatten() {
                if let Some(server) = server["name"].as_str() {
                    self.add(name, server);
                }
            }
        }
    }

    /// Whether nothing is known (placement then trusts the alert's labels).
    pub fn is_empty(&self) -> bool {
        self.servers.is_empty()
    }

    /// Adds configured backend sizes (listed servers, when there are, win).
    pub fn with_sizes<'a>(
        mut self,
        sizes: impl IntoIterator<Item = (&'a String, &'a usize)>,
    ) -> Self {
        self.sizes
            .extend(sizes.into_iter().map(|(b, n)| (b.clone(), *n)));
        self
    }

    /// Whether `backend` has `server`, when its servers are known.
    pub fn has(&self, backend: &str, server: &str) -> Option<bool> {
        self.servers
            .get(backend)
            .map(|servers| servers.contains(server))
    }

    /// The number of servers in `backend`, when known.
    pub fn size_of(&self, backend: &str) -> Option<usize> {
        self.servers
            .get(backend)
            .map(BTreeSet::len)
            .or_else(|| self.sizes.get(backend).copied())
    }

    /// Whether `target` must be looked up to be placed: a server named without a backend,
    /// while the membership is known.
    pub fn needs_placing(&self, target: &Target) -> bool {
        target.server.is_some() && target.backend.is_none() && !self.is_empty()
    }

    /// The targets an intent's target stands for, one per backend it is really in: the
    /// alert's backend when it names one (the module checks the server is there), else every
    /// backend with a server of that name. Unknown membership keeps the target as it is;
    /// a server named without a backend that no backend has is refused (it would be found
    /// nowhere, and must not take any budget).
    pub fn place(&self, target: &Target) -> Result<Vec<Target>, Unplaced> {
        let server = match &target.server {
            Some(server) if self.needs_placing(target) => server,
            _ => return Ok(vec![target.clone()]),
        };
        let placed: Vec<Target> = self
            .servers
            .iter()
            .filter(|(_, servers)| servers.contains(server))
            .map(|(backend, _)| Target {
                backend: Some(backend.clone()),
                ..target.clone()
            })
            .collect();
        if placed.is_empty() {
            return Err(Unplaced::UnknownServer(server.clone()));
        }
        Ok(placed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn target(server: &str, backend: Option<&str>) -> Target {
        Target {
            server: Some(server.into()),
            address: None,
            backend: backend.map(Into::into),
        }
    }

    #[test]
    fn server_info_results_of_several_hosts_merge() {
        let mut m = Membership::default();
        m.add_server_info(&json!({"backends": [
            {"name": "app", "servers": [{"name": "web1"}, {"name": "web2"}]},
            {"name": "api", "servers": [{"name": "web1"}]}
        ]}));
        m.add_server_info(&json!({"backends": [
            {"name": "app", "servers": [{"name": "web2"}, {"name": "web3"}]}
        ]}));
        assert_eq!(m.size_of("app"), Some(3));
        assert_eq!(m.size_of("api"), Some(1));
        assert_eq!(m.size_of("nope"), None);
        let sizes = BTreeMap::from([("nope".to_owned(), 8), ("app".to_owned(), 99)]);
        let m = m.with_sizes(&sizes);
        assert_eq!(m.size_of("nope"), Some(8));
        assert_eq!(m.size_of("app"), Some(3), "listed servers win");
    }

    #[test]
    fn a_server_without_backend_label_is_counted_in_its_real_backends() {
        let m = Membership::from_pairs([("app", "web1"), ("api", "web1"), ("app", "web2")]);
        let placed = m.place(&target("web1", None)).unwrap();
        let keys: Vec<String> = placed.iter().map(Target::key).collect();
        assert_eq!(keys, ["api/web1", "app/web1"]);
        assert_eq!(m.place(&target("web2", None)).unwrap()[0].key(), "app/web2");
    }

    #[test]
    fn a_labelled_backend_is_kept_and_an_unknown_server_is_refused() {
        let m = Membership::from_pairs([("app", "web1")]);
        assert_eq!(
            m.place(&target("web1", Some("app"))).unwrap()[0].key(),
            "app/web1"
        );
        assert_eq!(
            m.place(&target("typo", None)),
            Err(Unplaced::UnknownServer("typo".into()))
        );
    }

    #[test]
    fn without_membership_the_alert_labels_are_trusted() {
        let m = Membership::default();
        assert_eq!(m.place(&target("web1", None)).unwrap()[0].key(), "*/web1");
    }
}
