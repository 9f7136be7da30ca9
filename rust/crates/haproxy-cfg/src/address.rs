//! Server addresses as HAProxy reads them, and how a user's address query matches them.

use std::net::IpAddr;

/// Where a server address points, with the spelling differences HAProxy ignores removed.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Host {
    /// An IPv4 or IPv6 literal, compared by value (`::1` equals `0:0::1`).
    Ip(IpAddr),
    /// A hostname (case-insensitive), an environment variable, or anything else inet-like.
    Name(String),
    /// A UNIX socket path (`unix@/path` or a bare `/path`).
    Unix(String),
    /// An abstract namespace socket (`abns@name`).
    Abns(String),
    /// Other families (`fd@`, `sockpair@`, `abnsz@`, `rhttp@`), compared as written.
    Other(String),
}

/// A host and an optional port (or port range/offset, as written).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Endpoint {
    host: Host,
    port: Option<String>,
}

/// Prefixes that only select the inet protocol and do not change which host is meant.
const INET_PREFIXES: &[&str] = &[
    "ipv4", "ipv6", "tcp", "tcp4", "tcp6", "udp", "udp4", "udp6", "quic4", "quic6", "mptcp",
    "mptcp4", "mptcp6",
];

/// Reads a server address the way HAProxy does: an optional `family@` prefix, then, for inet addresses,
/// a port after the last colon unless a `]` comes after it (so `::1:80` is host `::1`, port 80).
fn parse(address: &str) -> Endpoint {
    let (prefix, rest) = match address.split_once('@') {
        Some((prefix, rest)) if !prefix.contains([':', '/', '[']) => (Some(prefix), rest),
        _ => (None, address),
    };
    let special = |host| Endpoint { host, port: None };
    match prefix {
        Some("unix" | "uxst" | "uxdg") => return special(Host::Unix(rest.to_owned())),
        Some("abns") => return special(Host::Abns(rest.to_owned())),
        Some(prefix) if !INET_PREFIXES.contains(&prefix) => {
            return special(Host::Other(address.to_owned()))
        }
        None if rest.starts_with('/') => return special(Host::Unix(rest.to_owned())),
        _ => {}
    }
    let (host, port) = match rest.rfind([':', ']']) {
        Some(at) if rest.as_bytes()[at] == b':' && at > 0 => (&rest[..at], Some(&rest[at + 1..])),
        _ => (rest, None),
    };
    Endpoint {
        host: inet_host(host),
        port: port.filter(|port| !port.is_empty()).map(normalize_port),
    }
}

fn inet_host(host: &str) -> Host {
    let bare = host
        .strip_prefix('[')
        .and_then(|inner| inner.strip_suffix(']'))
        .unwrap_or(host);
    bare.parse::<IpAddr>()
        .map_or_else(|_| Host::Name(bare.to_ascii_lowercase()), Host::Ip)
}

/// `080` and `80` are the same port; ranges and offsets stay as written.
fn normalize_port(port: &str) -> String {
    port.parse::<u16>()
        .map_or_else(|_| port.to_owned(), |number| number.to_string())
}

/// A user's address query, with every reading HAProxy's syntax allows for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressQuery {
    readings: Vec<Endpoint>,
}

impl AddressQuery {
    /// `host` matches any port; `host:port` needs the same port. A bare IPv6 literal such as `::1` is also
    /// read as a host without port, since that is what an operator means by it.
    pub fn new(query: &str) -> Self {
        let query = query.trim();
        let mut readings = vec![parse(query)];
        let without_prefix = query.split_once('@').map_or(query, |(_, rest)| rest);
        if let Ok(ip @ IpAddr::V6(_)) = without_prefix.parse::<IpAddr>() {
            readings.push(Endpoint {
                host: Host::Ip(ip),
                port: None,
            });
        }
        Self { readings }
    }

    /// Does the address written on a server line match?
    pub fn matches(&self, server_address: &str) -> bool {
        let server = parse(server_address);
        self.readings.iter().any(|reading| {
            reading.host == server.host && (reading.port.is_none() || reading.port == server.port)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matches(query: &str, address: &str) -> bool {
        AddressQuery::new(query).matches(address)
    }

    #[test]
    fn ipv4_with_and_without_port() {
        assert!(matches("10.0.0.1", "10.0.0.1:80"));
        assert!(matches("10.0.0.1:80", "10.0.0.1:80"));
        assert!(matches("10.0.0.1:080", "10.0.0.1:80"));
        assert!(!matches("10.0.0.1:81", "10.0.0.1:80"));
        assert!(!matches("10.0.0.11", "10.0.0.1:80"));
        assert!(matches("10.0.0.1", "10.0.0.1"));
        assert!(!matches("10.0.0.1:80", "10.0.0.1"));
    }

    #[test]
    fn prefixes_select_protocol_only() {
        assert!(matches("10.0.0.1:80", "ipv4@10.0.0.1:80"));
        assert!(matches("tcp@10.0.0.1", "10.0.0.1:80"));
        assert!(matches("1::1", "ipv6@1::1:80"));
        assert!(matches("::1", "mptcp@[::1]:4331"));
    }

    #[test]
    fn ipv6_as_haproxy_writes_it() {
        // The last colon is the port separator.
        assert!(matches("1::1:80", "1::1:80"));
        assert!(matches("1::1", "1::1:80"));
        assert!(matches("0:0::1", "::1:80"));
        assert!(matches("[::1]:80", "::1:80"));
        assert!(matches("[::1]", "[::1]:8080"));
        assert!(matches("::", ":::80"));
        assert!(!matches("::1:81", "::1:80"));
        // A bracketed address without a port has no port.
        assert!(matches("::1", "[::1]"));
    }

    #[test]
    fn sockets_and_hostnames() {
        assert!(matches("unix@/run/app.sock", "/run/app.sock"));
        assert!(matches("/run/app.sock", "unix@/run/app.sock"));
        assert!(!matches("/run/app.sock", "abns@/run/app.sock"));
        assert!(matches("abns@agent", "abns@agent"));
        assert!(matches("App.Example.com", "app.example.com:443"));
        assert!(!matches("app.example", "app.example.com:443"));
        assert!(matches("fd@${X}", "fd@${X}"));
        assert!(matches("${s1_addr}:${s1_port}", "${s1_addr}:${s1_port}"));
        assert!(matches("${s1_addr}", "${s1_addr}:${s1_port}"));
    }

    #[test]
    fn names_that_look_like_ips_are_compared_as_written() {
        // `127.0.0.001` is not an IPv4 literal for HAProxy either: it is a hostname.
        assert!(!matches("127.0.0.1", "127.0.0.001:80"));
        assert!(matches("127.0.0.001", "127.0.0.001:80"));
    }
}
