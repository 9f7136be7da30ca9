//! The alphabets of every label value that can reach a playbook, and the weight grammar.
//!
//! Values end up in Ansible extra vars, where `{{ }}` would be templated, and in file names and
//! command lines on the HAProxy hosts. So the allowed alphabets are small and explicit; anything
//! else is refused here and never travels further.

use std::net::{IpAddr, Ipv6Addr};

/// Longest accepted server or backend name.
pub const MAX_NAME_LEN: usize = 128;
/// Longest accepted host name.
pub const MAX_HOST_LEN: usize = 253;

/// Why a label value cannot be used as (part of) a target.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    /// The value is empty.
    #[error("empty value")]
    Empty,
    /// The value is longer than allowed.
    #[error("value longer than {max} bytes")]
    TooLong {
        /// The limit.
        max: usize,
    },
    /// A character outside the allowed alphabet (shell metacharacters, braces, `/`, newlines, ...).
    #[error("character {found:?} not allowed")]
    BadChar {
        /// The first offending character.
        found: char,
    },
    /// Not a host name or IP address.
    #[error("not a host name or IP address")]
    BadHost,
    /// Not a port number.
    #[error("bad port")]
    BadPort,
    /// The alert names no server: no server label and no usable instance label.
    #[error("no `{server_label}` or `{instance_label}` label")]
    NoTarget {
        /// Server label name.
        server_label: String,
        /// Instance label name.
        instance_label: String,
    },
}

impl TargetError {
    /// Short machine-readable reason for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Empty => "empty",
            Self::TooLong { .. } => "too_long",
            Self::BadChar { .. } => "bad_char",
            Self::BadHost => "bad_host",
            Self::BadPort => "bad_port",
            Self::NoTarget { .. } => "no_target",
        }
    }
}

/// A server, backend or fleet name: ASCII letters, digits, `.`, `_`, `-`, `:`, starting with a
/// letter or digit; no `..` (so no path traversal even where a name becomes a file name).
pub fn validate_name(value: &str) -> Result<(), TargetError> {
    check_len(value, MAX_NAME_LEN)?;
    if let Some(c) = value
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | ':')))
    {
        return Err(TargetError::BadChar { found: c });
    }
    if !value.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return Err(TargetError::BadChar {
            found: value.chars().next().unwrap_or('?'),
        });
    }
    if value.contains("..") {
        return Err(TargetError::BadChar { found: '.' });
    }
    Ok(())
}

/// A host name (RFC 1123 labels) or an IPv4/IPv6 address.
pub fn validate_host(value: &str) -> Result<(), TargetError> {
    check_len(value, MAX_HOST_LEN)?;
    if value.parse::<IpAddr>().is_ok() {
        return Ok(());
    }
    if let Some(c) = value
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-')))
    {
        return Err(TargetError::BadChar { found: c });
    }
    let labels_ok = value.split('.').all(|label| {
        !label.is_empty() && label.len() <= 63 && !label.starts_with('-') && !label.ends_with('-')
    });
    if labels_ok {
        Ok(())
    } else {
        Err(TargetError::BadHost)
    }
}

/// An `alertname`: it travels in `reason.alert`, so it gets an alphabet too (Grafana allows
/// spaces in rule names, so a space is accepted; braces, quotes, control characters, a leading
/// `-` or `.` and `..` are not).
pub fn validate_alert_name(value: &str) -> Result<(), TargetError> {
    check_len(value, MAX_NAME_LEN)?;
    if let Some(c) = value
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, ' ' | '.' | '_' | '-' | ':')))
    {
        return Err(TargetError::BadChar { found: c });
    }
    if !value.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_') || value.contains("..") {
        return Err(TargetError::BadChar {
            found: value.chars().next().unwrap_or('.'),
        });
    }
    Ok(())
}

/// A fingerprint: hexadecimal, at most 64 digits.
pub fn validate_fingerprint(value: &str) -> Result<(), TargetError> {
    check_len(value, 64)?;
    match value.chars().find(|c| !c.is_ascii_hexdigit()) {
        Some(c) => Err(TargetError::BadChar { found: c }),
        None => Ok(()),
    }
}

/// A weight as HAProxy takes it: 0-256, or 0%-100%.
pub fn is_valid_weight(value: &str) -> bool {
    let (digits, percent) = match value.strip_suffix('%') {
        Some(d) => (d, true),
        None => (value, false),
    };
    if digits.is_empty() || digits.len() > 3 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    let n: u32 = digits.parse().unwrap_or(u32::MAX);
    if percent {
        n <= 100
    } else {
        n <= 256
    }
}

fn check_len(value: &str, max: usize) -> Result<(), TargetError> {
    if value.is_empty() {
        Err(TargetError::Empty)
    } else if value.len() > max {
        Err(TargetError::TooLong { max })
    } else {
        Ok(())
    }
}

/// Splits `host:port`, `[v6]:port`, a bare v6 address or a bare host, validating both parts.
pub fn split_instance(instance: &str) -> Result<String, TargetError> {
    check_len(instance, MAX_HOST_LEN + 8)?;
    if let Some(rest) = instance.strip_prefix('[') {
        let (host, tail) = rest.split_once(']').ok_or(TargetError::BadHost)?;
        host.parse::<Ipv6Addr>().map_err(|_| TargetError::BadHost)?;
        match tail.strip_prefix(':') {
            Some(port) => validate_port(port)?,
            None if tail.is_empty() => {}
            None => return Err(TargetError::BadHost),
        }
        return Ok(host.to_owned());
    }
    if instance.parse::<Ipv6Addr>().is_ok() {
        return Ok(instance.to_owned());
    }
    let host = match instance.rsplit_once(':') {
        Some((host, port)) => {
            validate_port(port)?;
            host
        }
        None => instance,
    };
    validate_host(host)?;
    Ok(host.to_owned())
}

fn validate_port(port: &str) -> Result<(), TargetError> {
    match port.parse::<u16>() {
        Ok(p) if p > 0 && port.len() <= 5 && port.bytes().all(|b| b.is_ascii_digit()) => Ok(()),
        _ => Err(TargetError::BadPort),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_accept_haproxy_style_names() {
        for ok in [
            "s1",
            "web-01.example",
            "pod:grpc-interop:192.168.1.123:8082",
            "127.0.0.001",
            "A_b",
        ] {
            assert_eq!(validate_name(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn names_refuse_hostile_values() {
        let long = "a".repeat(MAX_NAME_LEN + 1);
        for bad in [
            "s1; rm -rf /",
            "$(id)",
            "`id`",
            "{{ lookup('pipe','id') }}",
            "{% raw %}",
            "s1\nmalicious",
            "../etc/passwd",
            "a..b",
            "-rf",
            "s 1",
            "s|1",
            "s&1",
            "s>1",
            "s'1",
            "s\"1",
            "",
            long.as_str(),
        ] {
            assert!(validate_name(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn hosts() {
        for ok in ["127.0.0.1", "::1", "web1", "web-1.example.com"] {
            assert_eq!(validate_host(ok), Ok(()), "{ok}");
        }
        for bad in ["-web", "web..x", "a_b", "x;y", "a/b", ""] {
            assert!(validate_host(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn instance_forms() {
        assert_eq!(split_instance("10.0.0.5:9100").unwrap(), "10.0.0.5");
        assert_eq!(split_instance("[::1]:9100").unwrap(), "::1");
        assert_eq!(split_instance("fe80::1").unwrap(), "fe80::1");
        assert_eq!(split_instance("web1").unwrap(), "web1");
        assert_eq!(split_instance("web1:0"), Err(TargetError::BadPort));
        assert_eq!(split_instance("web1:99999"), Err(TargetError::BadPort));
        assert_eq!(split_instance("web1:+80"), Err(TargetError::BadPort));
        assert!(split_instance("web1;id:80").is_err());
    }

    #[test]
    fn alert_names() {
        for ok in ["BackendCpuHigh", "High memory usage", "_private", "a.b:c-d"] {
            assert_eq!(validate_alert_name(ok), Ok(()), "{ok}");
        }
        for bad in ["..", "a..b", "-x", ".x", "{{x}}", "a\nb", "a'b", ""] {
            assert!(validate_alert_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_alphabets_are_the_ones_the_filter_and_the_module_enforce() {
        // Shared with plugins/filter/action_problems.py's and the module's tests.
        let cases: serde_json::Value = serde_json::from_str(include_str!(
            "../../../../tests/unit/plugins/filter/label_alphabet.json"
        ))
        .unwrap();
        type Check = fn(&str) -> Result<(), TargetError>;
        let checks: [(&str, Check); 4] = [
            ("name", validate_name),
            ("host", validate_host),
            ("alert", validate_alert_name),
            ("fingerprint", validate_fingerprint),
        ];
        for (kind, check) in checks {
            for (verdict, accepted) in [("accept", true), ("refuse", false)] {
                for value in cases[kind][verdict].as_array().unwrap() {
                    let value = value.as_str().unwrap();
                    assert_eq!(check(value).is_ok(), accepted, "{kind} {value:?}");
                }
            }
        }
    }

    #[test]
    fn weights() {
        for ok in ["0", "256", "50%", "100%", "0%"] {
            assert!(is_valid_weight(ok), "{ok}");
        }
        for bad in ["257", "101%", "%", "", "5 0", "-1", "1000"] {
            assert!(!is_valid_weight(bad), "{bad}");
        }
    }
}
