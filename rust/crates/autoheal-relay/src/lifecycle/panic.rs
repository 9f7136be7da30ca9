//! Panic: when more than a share of a backend's servers alert at once, the trouble is a shared
//! dependency, not the servers, and taking them out only makes it worse. New drains for that
//! backend are refused until the share falls back.

use std::collections::{BTreeMap, BTreeSet};

use super::policy::PanicPolicy;

/// A backend entering or leaving panic (for the log line and the metric).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PanicChange {
    /// More than the share alerts.
    Entered {
        /// Backend.
        backend: String,
        /// Servers alerting.
        alerting: usize,
        /// Servers in the backend.
        size: usize,
    },
    /// The share fell back.
    Left {
        /// Backend.
        backend: String,
        /// Servers alerting.
        alerting: usize,
        /// Servers in the backend.
        size: usize,
    },
}

/// The servers alerting per backend, and which backends are in panic.
#[derive(Debug, Clone, Default)]
pub struct PanicTracker {
    alerting: BTreeMap<String, BTreeSet<String>>,
    panicking: BTreeSet<String>,
}

impl PanicTracker {
    /// `server` of `backend` alerts (its size is `size` servers, when known).
    pub fn firing(
        &mut self,
        backend: &str,
        server: &str,
        size: Option<usize>,
        policy: &PanicPolicy,
    ) -> Option<PanicChange> {
        // Called for every firing alert: the names are copied only the first time.
        match self.alerting.get_mut(backend) {
            Some(servers) => {
                if !servers.contains(server) {
                    servers.insert(server.to_owned());
                }
            }
            None => {
                self.alerting
                    .insert(backend.to_owned(), BTreeSet::from([server.to_owned()]));
            }
        }
        self.evaluate(backend, size, policy)
    }

    /// `server` of `backend` no longer alerts.
    pub fn resolved(
        &mut self,
        backend: &str,
        server: &str,
        size: Option<usize>,
        policy: &PanicPolicy,
    ) -> Option<PanicChange> {
        if let Some(set) = self.alerting.get_mut(backend) {
            set.remove(server);
            if set.is_empty() {
                self.alerting.remove(backend);
            }
        }
        self.evaluate(backend, size, policy)
    }

    /// Whether new drains for `backend` are refused.
    pub fn in_panic(&self, backend: &str) -> bool {
        self.panicking.contains(backend)
    }

    /// The backends in panic.
    pub fn panicking(&self) -> impl Iterator<Item = &str> {
        self.panicking.iter().map(String::as_str)
    }

    /// Servers of `backend` alerting now.
    pub fn alerting(&self, backend: &str) -> usize {
        self.alerting.get(backend).map_or(0, BTreeSet::len)
    }

    fn evaluate(
        &mut self,
        backend: &str,
        size: Option<usize>,
        policy: &PanicPolicy,
    ) -> Option<PanicChange> {
        let alerting = self.alerting(backend);
        // Without a known size there is no share: never in panic.
        let size = size.unwrap_or(0);
        let now = policy.is_panic(alerting, size);
        let was = self.panicking.contains(backend);
        match (was, now) {
            (false, true) => {
                self.panicking.insert(backend.to_owned());
                Some(PanicChange::Entered {
                    backend: backend.to_owned(),
                    alerting,
                    size,
                })
            }
            (true, false) => {
                self.panicking.remove(backend);
                Some(PanicChange::Left {
                    backend: backend.to_owned(),
                    alerting,
                    size,
                })
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panic_starts_above_the_share_and_ends_when_it_falls_back() {
        let p = PanicPolicy::default();
        let mut t = PanicTracker::default();
        assert_eq!(t.firing("be", "s1", Some(4), &p), None);
        assert_eq!(
            t.firing("be", "s2", Some(4), &p),
            None,
            "2 of 4 is not more than half"
        );
        assert!(!t.in_panic("be"));
        assert_eq!(
            t.firing("be", "s3", Some(4), &p),
            Some(PanicChange::Entered {
                backend: "be".into(),
                alerting: 3,
                size: 4
            })
        );
        assert!(t.in_panic("be"));
        assert!(!t.in_panic("other"), "panic is per backend");
        assert_eq!(t.firing("be", "s4", Some(4), &p), None, "already in panic");
        assert_eq!(
            t.resolved("be", "s4", Some(4), &p),
            None,
            "3 of 4 still alert"
        );
        assert_eq!(
            t.resolved("be", "s3", Some(4), &p),
            Some(PanicChange::Left {
                backend: "be".into(),
                alerting: 2,
                size: 4
            })
        );
        assert!(!t.in_panic("be"));
        assert_eq!(t.panicking().count(), 0);
    }

    #[test]
    fn the_same_server_alerting_twice_counts_once() {
        let p = PanicPolicy::default();
        let mut t = PanicTracker::default();
        for _ in 0..5 {
            t.firing("be", "s1", Some(4), &p);
        }
        assert_eq!(t.alerting("be"), 1);
        assert!(!t.in_panic("be"));
    }

    #[test]
    fn a_backend_of_unknown_size_is_never_in_panic() {
        let p = PanicPolicy::default();
        let mut t = PanicTracker::default();
        for s in ["s1", "s2", "s3", "s4"] {
            assert_eq!(t.firing("be", s, None, &p), None);
        }
        assert!(!t.in_panic("be"));
    }
}
