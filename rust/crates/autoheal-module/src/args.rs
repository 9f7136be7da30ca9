//! The modules' options, read from the JSON args file Ansible hands a binary module.
//!
//! Every option is checked by name so that an error says which option is wrong, and every unknown
//! option is reported at once. Keys starting with `_ansible_` are Ansible's own: the two that change
//! behaviour (`_ansible_check_mode`, `_ansible_diff`) are honoured, the others ignored.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use haproxy_cfg::{Desired, SetBy, Target, WeightSpec};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::reload::ReloadMethod;

/// Why the args file cannot be turned into options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArgsError {
    /// The args file is not a JSON object.
    NotAnObject(String),
    /// Options the module does not know.
    Unknown {
        /// The unknown names, sorted.
        names: Vec<String>,
        /// The names the module accepts.
        known: &'static [&'static str],
    },
    /// An option has a value of the wrong type or out of range.
    Invalid {
        /// The option's name.
        option: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// Options that contradict each other, or a required one missing.
    Conflict(String),
    /// An entry of `changes` is wrong.
    InChange {
        /// Its 0-based index.
        index: usize,
        /// What is wrong with it.
        error: Box<ArgsError>,
    },
    /// One of Ansible's own `_ansible_*` keys has a value of the wrong type.
    Internal {
        /// The key.
        key: String,
        /// Its value.
        value: String,
    },
}

impl fmt::Display for ArgsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotAnObject(why) => write!(f, "module arguments are not a JSON object: {why}"),
            Self::Unknown { names, known } => write!(
                f,
                "unsupported option(s): {}; supported options are: {}",
                names.join(", "),
                known.join(", ")
            ),
            Self::Invalid { option, reason } => write!(f, "option `{option}`: {reason}"),
            Self::Conflict(why) => f.write_str(why),
            Self::InChange { index, error } => write!(f, "changes[{index}]: {error}"),
            Self::Internal { key, value } => {
                write!(
                    f,
                    "Ansible's internal key {key} should be a boolean, found {value}"
                )
            }
        }
    }
}

impl std::error::Error for ArgsError {}

/// Ansible's internal keys that change what the module does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AnsibleFlags {
    /// `_ansible_check_mode`: report what would change, change nothing.
    pub check_mode: bool,
    /// `_ansible_diff`: return the file before and after.
    pub diff: bool,
}

/// The `state` option.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// In service, as the user configured it (undoes what autoheal changed).
    #[default]
    Enabled,
    /// `weight 0`: no new traffic, existing sessions finish.
    Drain,
    /// The `disabled` keyword: maintenance.
    Disabled,
    /// The line is commented out (needs a reload).
    Absent,
}

/// Options of `autoheal.haproxy.server`.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerArgs {
    /// The haproxy.cfg to edit.
    pub path: PathBuf,
    /// What to change: one entry, or the `changes` list in order.
    pub changes: Vec<Change>,
    /// The request came as a `changes` list (the result then reports each change).
    pub batch: bool,
    /// The admin socket for the live change, if any.
    pub socket: Option<PathBuf>,
    /// Timeout of one admin socket exchange.
    pub socket_timeout: Duration,
    /// Minimum number of active servers the backend keeps.
    pub min_active: u32,
    /// Keep a timestamped copy of the file before changing it.
    pub backup: bool,
    /// The validation command, split into argv; one element contains `%s`.
    pub validate: Option<Vec<String>>,
    /// Write only if the file's current sha256 (lowercase hex) is this.
    pub checksum: Option<String>,
    /// How long to wait for the file lock.
    pub lock_timeout: Duration,
    /// How to reload HAProxy when a change needs it; `None`: only report it.
    pub reload: Option<crate::reload::ReloadMethod>,
    /// How long to wait for the new worker after a reload.
    pub reload_timeout: Duration,
    /// Where to save `show servers state` just before a reload.
    pub server_state_file: Option<PathBuf>,
    /// Restore (`state: enabled`) only servers whose health check passes.
    pub require_healthy: bool,
    /// Who asks: recorded in the markers, and `autoheal` leaves an operator's states alone.
    pub set_by: SetBy,
    /// Check and diff mode.
    pub ansible: AnsibleFlags,
}

/// One change of `autoheal.haproxy.server`.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// What to change, as the engine takes it.
    pub request: haproxy_cfg::Request,
    /// The caller's `reason`, returned as given.
    pub reason: Option<Value>,
}

/// Options of `autoheal.haproxy.server_info`.
#[derive(Debug, Clone, PartialEq)]
pub struct InfoArgs {
    /// The haproxy.cfg to read.
    pub path: PathBuf,
    /// Only this backend.
    pub backend: Option<String>,
    /// The admin socket for the live state, if any.
    pub socket: Option<PathBuf>,
    /// Timeout of one admin socket exchange.
    pub socket_timeout: Duration,
    /// Check and diff mode (the module is read-only either way).
    pub ansible: AnsibleFlags,
}

/// The options `autoheal.haproxy.server` accepts.
pub const SERVER_OPTIONS: &[&str] = &[
    "path",
    "backend",
    "server",
    "address",
    "all_matches",
    "state",
    "weight",
    "changes",
    "socket",
    "socket_timeout",
    "min_active",
    "backup",
    "validate",
    "checksum",
    "lock_timeout",
    "reload",
    "master_socket",
    "pidfile",
    "service",
    "reload_timeout",
    "server_state_file",
    "require_healthy",
    "set_by",
];

/// The keys one entry of `changes` accepts.
pub const CHANGE_OPTIONS: &[&str] = &[
    "backend",
    "server",
    "address",
    "all_matches",
    "state",
    "weight",
    "reason",
];

/// The options that say what to change, given either at the top or in each entry of `changes`.
const REQUEST_OPTIONS: &[&str] = &["backend", "server", "address", "state", "weight"];

/// The options `autoheal.haproxy.server_info` accepts.
pub const INFO_OPTIONS: &[&str] = &["path", "backend", "socket", "socket_timeout"];

const DEFAULT_PATH: &str = "/etc/haproxy/haproxy.cfg";

/// The options of one module, taken out of the args object one by one.
struct Options {
    map: Map<String, Value>,
    ansible: AnsibleFlags,
}

impl Options {
    /// Splits off `_ansible_*` keys and rejects any key not in `known`.
    fn new(text: &str, known: &'static [&'static str]) -> Result<Self, ArgsError> {
        let value: Value =
            serde_json::from_str(text).map_err(|e| ArgsError::NotAnObject(e.to_string()))?;
        let Value::Object(map) = value else {
            return Err(ArgsError::NotAnObject(format!("found {value}")));
        };
        Self::of_map(map, known)
    }

    /// The options of an object, Ansible's internal keys split off and unknown keys rejected.
    fn of_map(
        mut map: Map<String, Value>,
        known: &'static [&'static str],
    ) -> Result<Self, ArgsError> {
        let internal: Vec<String> = map
            .keys()
            .filter(|k| k.starts_with("_ansible_"))
            .cloned()
            .collect();
        let mut ansible = AnsibleFlags::default();
        for key in internal {
            let value = map.remove(&key).unwrap_or(Value::Null);
            match key.as_str() {
                "_ansible_check_mode" => {
                    ansible.check_mode = flag(&value).ok_or_else(|| bad_internal(&key, &value))?
                }
                "_ansible_diff" => {
                    ansible.diff = flag(&value).ok_or_else(|| bad_internal(&key, &value))?
                }
                _ => {}
            }
        }
        let mut unknown: Vec<String> = map
            .keys()
            .filter(|k| !known.contains(&k.as_str()))
            .cloned()
            .collect();
        if !unknown.is_empty() {
            unknown.sort();
            return Err(ArgsError::Unknown {
                names: unknown,
                known,
            });
        }
        Ok(Self { map, ansible })
    }

    /// The option's value, `None` when missing or null.
    fn take<T: DeserializeOwned>(&mut self, option: &'static str) -> Result<Option<T>, ArgsError> {
        match self.map.remove(option) {
            None | Some(Value::Null) => Ok(None),
            Some(value) => serde_json::from_value(value)
                .map(Some)
                .map_err(|e| invalid(option, e.to_string())),
        }
    }

    fn string(&mut self, option: &'static str) -> Result<Option<String>, ArgsError> {
        match self.take::<Value>(option)? {
            None => Ok(None),
            Some(Value::String(s)) if s.is_empty() => Err(invalid(option, "must not be empty")),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(invalid(option, format!("expected a string, found {other}"))),
        }
    }

    fn flag(&mut self, option: &'static str, default: bool) -> Result<bool, ArgsError> {
        match self.take::<Value>(option)? {
            None => Ok(default),
            Some(value) => flag(&value).ok_or_else(|| {
                invalid(
                    option,
                    format!("expected a boolean (true/false), found {value}"),
                )
            }),
        }
    }

    fn count(&mut self, option: &'static str, default: u32) -> Result<u32, ArgsError> {
        match self.take::<Value>(option)? {
            None => Ok(default),
            Some(value) => number(&value)
                .filter(|n| n.fract() == 0.0 && (0.0..=f64::from(u32::MAX)).contains(n))
                .map(|n| n as u32)
                .ok_or_else(|| {
                    invalid(
                        option,
                        format!("expected a non-negative integer, found {value}"),
                    )
                }),
        }
    }

    fn seconds(&mut self, option: &'static str, default: f64) -> Result<Duration, ArgsError> {
        let secs = match self.take::<Value>(option)? {
            None => default,
            Some(value) => number(&value).ok_or_else(|| {
                invalid(
                    option,
                    format!("expected a number of seconds, found {value}"),
                )
            })?,
        };
        Duration::try_from_secs_f64(secs)
            .map_err(|_| invalid(option, format!("{secs} is not a valid number of seconds")))
    }
}

/// Longest server or backend name, as autoheal-relay takes it from an alert label.
const MAX_NAME_LEN: usize = 128;

/// A server or backend name in autoheal-relay's label alphabet (ASCII letters, digits, `.`, `_`,
/// `-`, `:`, starting with a letter or digit, no `..`): the same check whoever calls the module
/// (the relay's playbook, AWX, a person), so no value carries a template or a command.
fn check_label_name(option: &'static str, name: &str) -> Result<(), ArgsError> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | ':');
    let ok = name.len() <= MAX_NAME_LEN
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.chars().all(allowed)
        && !name.contains("..");
    require(
        ok,
        option,
        "must be ASCII letters, digits, '.', '_', '-' or ':', start with a letter or digit, \
         have no '..' and at most 128 characters",
    )
}

/// An address: a host name or IP address with an optional port (`host:port`, `[v6]:port`).
fn check_label_address(address: &str) -> Result<(), ArgsError> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']');
    let ok = address.len() <= 261
        && address.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '[' || c == ':')
        && address.chars().all(allowed)
        && !address.contains("..");
    require(
        ok,
        "address",
        "must be a host name or IP address, optionally with a port",
    )
}

fn require(ok: bool, option: &'static str, reason: &str) -> Result<(), ArgsError> {
    if ok {
        Ok(())
    } else {
        Err(invalid(option, reason))
    }
}

fn invalid(option: &'static str, reason: impl Into<String>) -> ArgsError {
    ArgsError::Invalid {
        option,
        reason: reason.into(),
    }
}

fn bad_internal(key: &str, value: &Value) -> ArgsError {
    ArgsError::Internal {
        key: key.to_owned(),
        value: value.to_string(),
    }
}

/// Ansible's boolean spellings: playbooks may pass quoted or templated values.
fn flag(value: &Value) -> Option<bool> {
    match value {
        Value::Bool(b) => Some(*b),
        Value::Number(n) => match n.as_u64() {
            Some(0) => Some(false),
            Some(1) => Some(true),
            _ => None,
        },
        Value::String(s) => match s.to_ascii_lowercase().as_str() {
            "yes" | "true" | "on" | "y" | "1" => Some(true),
            "no" | "false" | "off" | "n" | "0" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

/// A number, or a string holding one (templated values arrive as strings).
fn number(value: &Value) -> Option<f64> {
    match value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok().filter(|n| n.is_finite()),
        _ => None,
    }
}

/// `weight`: an absolute weight 0..=256, or `NN%` of the original weight.
fn weight(value: &Value) -> Result<WeightSpec, String> {
    let text = match value {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.trim().to_owned(),
        other => return Err(format!("expected an integer or \"NN%\", found {other}")),
    };
    let (digits, percent) = match text.strip_suffix('%') {
        Some(digits) => (digits.trim_end(), true),
        None => (text.as_str(), false),
    };
    // Digits only: `u32::from_str` would also take a sign (`+5`), which the filter refuses.
    let n: u32 = Some(digits)
        .filter(|d| d.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|d| d.parse().ok())
        .ok_or_else(|| format!("expected an integer or \"NN%\", found {value}"))?;
    match (percent, n) {
        (false, 0..=256) => Ok(WeightSpec::Absolute(n)),
        (true, 0..=100) => Ok(WeightSpec::Percent(n)),
        (false, _) => Err(format!("{n} is out of range (0 to 256)")),
        (true, _) => Err(format!("{n}% is out of range (0% to 100%)")),
    }
}

/// Splits `validate` like a POSIX shell would, without running one; `%s` is required.
pub fn split_validate(command: &str) -> Result<Vec<String>, ArgsError> {
    let argv = shlex::split(command)
        .ok_or_else(|| invalid("validate", "unbalanced quotes or a trailing backslash"))?;
    if argv.is_empty() {
        return Err(invalid("validate", "empty command"));
    }
    if !argv.iter().any(|arg| arg.contains("%s")) {
        return Err(invalid(
            "validate",
            format!("must contain %s (the file to check), found {command:?}"),
        ));
    }
    Ok(argv)
}

/// `haproxy -c -f %s` when an haproxy executable is on `search_path` or at /usr/sbin/haproxy.
/// Not `-q`: quiet mode also hides the alerts that say why a file is rejected.
pub fn default_validate(search_path: Option<&std::ffi::OsStr>) -> Option<Vec<String>> {
    let mut dirs: Vec<PathBuf> = search_path
        .map(|p| std::env::split_paths(p).collect())
        .unwrap_or_default();
    dirs.push(PathBuf::from("/usr/sbin"));
    let haproxy = dirs
        .into_iter()
        .map(|dir| dir.join("haproxy"))
        .find(|candidate| is_executable(candidate))?;
    Some(vec![
        haproxy.to_string_lossy().into_owned(),
        "-c".into(),
        "-f".into(),
        "%s".into(),
    ])
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

impl ServerArgs {
    /// Parses the args file's text. `search_path` is `$PATH`, used for the default `validate`.
    pub fn parse(text: &str, search_path: Option<&std::ffi::OsStr>) -> Result<Self, ArgsError> {
        let mut options = Options::new(text, SERVER_OPTIONS)?;
        let path = options
            .string("path")?
            .map_or_else(|| PathBuf::from(DEFAULT_PATH), PathBuf::from);
        let all_matches = options.flag("all_matches", false)?;
        let (changes, batch) = match options.take::<Value>("changes")? {
            None => (vec![request(&mut options, all_matches)?], false),
            Some(list) => {
                if let Some(given) = REQUEST_OPTIONS
                    .iter()
                    .find(|name| options.map.contains_key(**name))
                {
                    return Err(ArgsError::Conflict(format!(
                        "option `{given}` goes inside each entry of `changes`, not beside it"
                    )));
                }
                (changes(list, all_matches)?, true)
            }
        };
        let socket = options.string("socket")?.map(PathBuf::from);
        let socket_timeout = positive(options.seconds("socket_timeout", 5.0)?, "socket_timeout")?;
        let min_active = options.count("min_active", 1)?;
        let backup = options.flag("backup", true)?;
        let validate = match options.take::<Value>("validate")? {
            None => default_validate(search_path),
            Some(Value::String(s)) if s.trim().is_empty() => None,
            Some(Value::String(s)) => Some(split_validate(&s)?),
            Some(other) => {
                return Err(invalid(
                    "validate",
                    format!("expected a command string, found {other}"),
                ))
            }
        };
        let checksum = match options.string("checksum")? {
            None => None,
            Some(hex) if hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()) => {
                Some(hex.to_ascii_lowercase())
            }
            Some(other) => {
                return Err(invalid(
                    "checksum",
                    format!("expected 64 hexadecimal digits (sha256), found {other:?}"),
                ))
            }
        };
        let lock_timeout = options.seconds("lock_timeout", 30.0)?;
        let master_socket = options.string("master_socket")?;
        let pidfile = options.string("pidfile")?;
        let service = options.string("service")?;
        let reload = match options.string("reload")?.as_deref() {
            None | Some("none") => None,
            Some("master_cli") => Some(ReloadMethod::MasterCli(PathBuf::from(
                master_socket
                    .as_deref()
                    .unwrap_or("/run/haproxy-master.sock"),
            ))),
            Some("signal") => Some(ReloadMethod::Signal(PathBuf::from(
                pidfile.as_deref().unwrap_or("/run/haproxy.pid"),
            ))),
            Some("systemd") => Some(ReloadMethod::Systemd(
                service.unwrap_or_else(|| "haproxy".to_owned()),
            )),
            Some(other) => {
                return Err(invalid(
                    "reload",
                    format!("expected one of none, master_cli, signal, systemd; found {other:?}"),
                ))
            }
        };
        if reload.is_some() && socket.is_none() {
            return Err(ArgsError::Conflict(
                "option `reload` needs `socket`: the new worker is awaited on the admin socket"
                    .into(),
            ));
        }
        let reload_timeout = positive(options.seconds("reload_timeout", 15.0)?, "reload_timeout")?;
        let server_state_file = options.string("server_state_file")?.map(PathBuf::from);
        let require_healthy = options.flag("require_healthy", false)?;
        if let (false, true, [change]) = (batch, require_healthy, changes.as_slice()) {
            if !matches!(
                change.request.desired,
                Desired::Enabled | Desired::Weight(_)
            ) {
                return Err(ArgsError::Conflict(
                    "option `require_healthy` only goes with state=enabled (it gates a restore)"
                        .into(),
                ));
            }
        }
        let set_by = match options.string("set_by")?.as_deref() {
            None | Some("operator") => SetBy::Operator,
            Some("autoheal") => SetBy::Autoheal,
            Some(other) => {
                return Err(invalid(
                    "set_by",
                    format!("expected one of autoheal, operator; found {other:?}"),
                ))
            }
        };
        Ok(Self {
            path,
            changes,
            batch,
            socket,
            socket_timeout,
            min_active,
            backup,
            validate,
            checksum,
            lock_timeout,
            reload,
            reload_timeout,
            server_state_file,
            require_healthy,
            set_by,
            ansible: options.ansible,
        })
    }
}

impl InfoArgs {
    /// Parses the args file's text.
    pub fn parse(text: &str) -> Result<Self, ArgsError> {
        let mut options = Options::new(text, INFO_OPTIONS)?;
        Ok(Self {
            path: options
                .string("path")?
                .map_or_else(|| PathBuf::from(DEFAULT_PATH), PathBuf::from),
            backend: options.string("backend")?,
            socket: options.string("socket")?.map(PathBuf::from),
            socket_timeout: positive(options.seconds("socket_timeout", 5.0)?, "socket_timeout")?,
            ansible: options.ansible,
        })
    }
}

/// The request described by `backend`, `server`/`address`, `all_matches`, `state` and `weight`.
fn request(options: &mut Options, all_matches: bool) -> Result<Change, ArgsError> {
    let backend = options.string("backend")?;
    if let Some(name) = &backend {
        check_label_name("backend", name)?;
    }
    let target = match (options.string("server")?, options.string("address")?) {
        (Some(name), None) => Target::Name(check_label_name("server", &name).map(|()| name)?),
        (None, Some(address)) => Target::Address(check_label_address(&address).map(|()| address)?),
        (Some(_), Some(_)) => {
            return Err(ArgsError::Conflict(
                "options `server` and `address` are mutually exclusive".into(),
            ))
        }
        (None, None) => {
            return Err(ArgsError::Conflict(
                "one of the options `server` or `address` is required".into(),
            ))
        }
    };
    let all_matches = options.flag("all_matches", all_matches)?;
    let state: Option<State> = options.take("state")?;
    let weight = match options.take::<Value>("weight")? {
        None => None,
        Some(value) => Some(weight(&value).map_err(|reason| invalid("weight", reason))?),
    };
    let desired = match (state.unwrap_or_default(), weight) {
        (State::Enabled, Some(spec)) => Desired::Weight(spec),
        (State::Enabled, None) => Desired::Enabled,
        (State::Drain, None) => Desired::Drain,
        (State::Disabled, None) => Desired::Disabled,
        (State::Absent, None) => Desired::Absent,
        (other, Some(_)) => {
            return Err(ArgsError::Conflict(format!(
                "option `weight` only goes with state=enabled (the server stays in service with \
                 a lower weight), not with state={}",
                state_name(other)
            )))
        }
    };
    Ok(Change {
        request: haproxy_cfg::Request {
            backend,
            target,
            all_matches,
            desired,
        },
        reason: None,
    })
}

/// The `changes` list; `all_matches` is the default of each entry's own.
fn changes(list: Value, all_matches: bool) -> Result<Vec<Change>, ArgsError> {
    let Value::Array(entries) = list else {
        return Err(invalid(
            "changes",
            format!("expected a list of changes, found {list}"),
        ));
    };
    entries
        .into_iter()
        .enumerate()
        .map(|(index, entry)| {
            let in_change = |error| ArgsError::InChange {
                index,
                error: Box::new(error),
            };
            let Value::Object(map) = entry else {
                return Err(in_change(ArgsError::Conflict(format!(
                    "expected an object, found {entry}"
                ))));
            };
            let mut options = Options::of_map(map, CHANGE_OPTIONS).map_err(in_change)?;
            let reason = options.take::<Value>("reason").map_err(in_change)?;
            let change = request(&mut options, all_matches).map_err(in_change)?;
            Ok(Change { reason, ..change })
        })
        .collect()
}

fn positive(duration: Duration, option: &'static str) -> Result<Duration, ArgsError> {
    if duration.is_zero() {
        Err(invalid(option, "must be greater than 0"))
    } else {
        Ok(duration)
    }
}

/// The option value that names `state`.
pub fn state_name(state: State) -> &'static str {
    match state {
        State::Enabled => "enabled",
        State::Drain => "drain",
        State::Disabled => "disabled",
        State::Absent => "absent",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(json: &str) -> Result<ServerArgs, ArgsError> {
        ServerArgs::parse(json, None)
    }

    #[test]
    fn defaults_apply_when_only_the_server_is_given() {
        let args = server(r#"{"server": "web1"}"#).unwrap();
        assert_eq!(args.path, PathBuf::from("/etc/haproxy/haproxy.cfg"));
        assert_eq!(args.changes[0].request.target, Target::Name("web1".into()));
        assert_eq!(args.changes[0].request.desired, Desired::Enabled);
        assert_eq!(args.changes[0].request.backend, None);
        assert!(!args.changes[0].request.all_matches);
        assert_eq!(args.socket, None);
        assert_eq!(args.socket_timeout, Duration::from_secs(5));
        assert_eq!(args.min_active, 1);
        assert!(args.backup);
        assert_eq!(args.checksum, None);
        assert_eq!(args.lock_timeout, Duration::from_secs(30));
        assert_eq!(args.ansible, AnsibleFlags::default());
        assert!(!args.require_healthy);
        assert_eq!(args.set_by, SetBy::Operator);
    }

    #[test]
    fn require_healthy_gates_restores_and_set_by_names_who_asks() {
        let args = server(
            r#"{"server": "web1", "weight": "10%", "require_healthy": "yes", "set_by": "autoheal"}"#,
        )
        .unwrap();
        assert!(args.require_healthy);
        assert_eq!(args.set_by, SetBy::Autoheal);
        let drain = server(r#"{"server": "web1", "state": "drain", "require_healthy": true}"#);
        assert!(drain.unwrap_err().to_string().contains("require_healthy"));
        // A list mixes drains and restores: the gate applies to the restores.
        let mixed = server(
            r#"{"require_healthy": true, "changes": [{"server": "a", "state": "drain"},
                {"server": "b"}]}"#,
        );
        assert!(mixed.unwrap().require_healthy);
        let who = server(r#"{"server": "web1", "set_by": "robot"}"#).unwrap_err();
        assert!(who.to_string().contains("set_by"), "{who}");
    }

    #[test]
    fn every_listed_option_is_accepted() {
        let json = r#"{"path": "/x/h.cfg", "backend": "app", "server": "web1", "all_matches": true,
            "state": "drain", "socket": "/run/admin.sock", "socket_timeout": 2.5, "min_active": 0,
            "backup": false, "validate": "true %s", "checksum": "AB00000000000000000000000000000000000000000000000000000000000000",
            "lock_timeout": 0}"#;
        let args = server(json).unwrap();
        assert_eq!(args.changes[0].request.desired, Desired::Drain);
        assert_eq!(args.changes[0].request.backend.as_deref(), Some("app"));
        assert!(args.changes[0].request.all_matches);
        assert_eq!(args.socket_timeout, Duration::from_millis(2500));
        assert_eq!(args.min_active, 0);
        assert!(!args.backup);
        assert_eq!(
            args.validate,
            Some(vec!["true".to_owned(), "%s".to_owned()])
        );
        assert_eq!(args.checksum.as_deref().map(|c| &c[..2]), Some("ab"));
        assert_eq!(args.lock_timeout, Duration::ZERO);
        // address is the other half of the server/address pair
        let by_address = server(r#"{"address": "10.0.0.1:80"}"#).unwrap();
        assert_eq!(
            by_address.changes[0].request.target,
            Target::Address("10.0.0.1:80".into())
        );
    }

    #[test]
    fn unknown_options_are_all_named() {
        let err = server(r#"{"server": "a", "sate": "drain", "wieght": 3}"#).unwrap_err();
        let ArgsError::Unknown { names, .. } = &err else {
            panic!("{err:?}")
        };
        assert_eq!(names, &["sate", "wieght"]);
        let msg = err.to_string();
        assert!(msg.contains("sate, wieght"), "{msg}");
        assert!(msg.contains("min_active"), "{msg}");
    }

    #[test]
    fn ansible_internal_keys_are_honoured_or_ignored() {
        let args = server(
            r#"{"server": "a", "_ansible_check_mode": true, "_ansible_diff": "yes",
                "_ansible_no_log": false, "_ansible_module_name": "autoheal.haproxy.server",
                "_ansible_tmpdir": "/tmp/x", "_ansible_remote_tmp": "~/.ansible/tmp"}"#,
        )
        .unwrap();
        assert!(args.ansible.check_mode);
        assert!(args.ansible.diff);
        let bad = server(r#"{"server": "a", "_ansible_check_mode": "perhaps"}"#).unwrap_err();
        assert!(matches!(bad, ArgsError::Internal { .. }), "{bad}");
    }

    #[test]
    fn server_and_address_are_exclusive_and_one_is_required() {
        let both = server(r#"{"server": "a", "address": "1.2.3.4"}"#).unwrap_err();
        assert!(both.to_string().contains("mutually exclusive"), "{both}");
        let neither = server(r#"{"state": "drain"}"#).unwrap_err();
        assert!(neither.to_string().contains("required"), "{neither}");
    }

    #[test]
    fn weight_accepts_absolute_and_percent_and_needs_state_enabled() {
        let w = |json: &str| server(json).map(|a| a.changes[0].request.desired.clone());
        assert_eq!(
            w(r#"{"server": "a", "weight": 5}"#),
            Ok(Desired::Weight(WeightSpec::Absolute(5)))
        );
        assert_eq!(
            w(r#"{"server": "a", "weight": "25%"}"#),
            Ok(Desired::Weight(WeightSpec::Percent(25)))
        );
        assert_eq!(
            w(r#"{"server": "a", "weight": "7", "state": "enabled"}"#),
            Ok(Desired::Weight(WeightSpec::Absolute(7)))
        );
        for bad in [
            r#"257"#,
            r#""101%""#,
            r#""x%""#,
            r#"-1"#,
            r#"1.5"#,
            r#"[1]"#,
        ] {
            let err = server(&format!(r#"{{"server": "a", "weight": {bad}}}"#)).unwrap_err();
            assert!(
                err.to_string().starts_with("option `weight`"),
                "{bad}: {err}"
            );
        }
        let err = server(r#"{"server": "a", "weight": 5, "state": "drain"}"#).unwrap_err();
        assert!(err.to_string().contains("state=drain"), "{err}");
    }

    #[test]
    fn names_keep_to_the_relays_label_alphabet() {
        // The cases autoheal-relay's and the action_problems filter's tests read too.
        let cases: Value = serde_json::from_str(include_str!(
            "../../../../tests/unit/plugins/filter/label_alphabet.json"
        ))
        .unwrap();
        let as_strs = |v: &Value| -> Vec<String> {
            v.as_array()
                .unwrap()
                .iter()
                .map(|s| s.as_str().unwrap().to_owned())
                .collect()
        };
        for name in as_strs(&cases["name"]["accept"]) {
            let json = serde_json::json!({"server": name, "backend": name}).to_string();
            assert!(server(&json).is_ok(), "{name:?}");
        }
        for name in as_strs(&cases["name"]["refuse"]) {
            for option in ["server", "backend"] {
                let mut args = serde_json::json!({"server": "web1"});
                args[option] = Value::String(name.clone());
                let err = server(&args.to_string()).unwrap_err().to_string();
                assert!(
                    err.contains(&format!("option `{option}`")),
                    "{name:?}: {err}"
                );
            }
        }
        for address in [
            "10.0.0.1",
            "10.0.0.1:80",
            "[::1]:9100",
            "fe80::1",
            "web-1.example.com",
        ] {
            let json = serde_json::json!({ "address": address }).to_string();
            assert!(server(&json).is_ok(), "{address}");
        }
        for address in ["10.0.0.1:80;id", "{{x}}", "a b", "../x", "-x", "$(id)"] {
            let json = serde_json::json!({ "address": address }).to_string();
            let err = server(&json).unwrap_err().to_string();
            assert!(err.contains("option `address`"), "{address}: {err}");
        }
    }

    #[test]
    fn bad_values_name_their_option() {
        let cases = [
            (r#"{"server": "a", "state": "gone"}"#, "option `state`"),
            (r#"{"server": "a", "backup": "maybe"}"#, "option `backup`"),
            (
                r#"{"server": "a", "min_active": -1}"#,
                "option `min_active`",
            ),
            (
                r#"{"server": "a", "socket_timeout": 0}"#,
                "option `socket_timeout`",
            ),
            (
                r#"{"server": "a", "lock_timeout": "soon"}"#,
                "option `lock_timeout`",
            ),
            (r#"{"server": "a", "checksum": "abc"}"#, "option `checksum`"),
            (r#"{"server": ""}"#, "option `server`"),
            (r#"{"server": 3}"#, "option `server`"),
            (
                r#"{"server": "a", "validate": "haproxy -c"}"#,
                "must contain %s",
            ),
        ];
        for (json, expected) in cases {
            let err = server(json).unwrap_err().to_string();
            assert!(err.contains(expected), "{json}: {err}");
        }
        assert!(matches!(server("[1]"), Err(ArgsError::NotAnObject(_))));
        assert!(matches!(server("{"), Err(ArgsError::NotAnObject(_))));
    }

    #[test]
    fn booleans_and_numbers_accept_ansible_spellings() {
        let args =
            server(r#"{"server": "a", "backup": "no", "all_matches": "True", "min_active": "2"}"#)
                .unwrap();
        assert!(!args.backup);
        assert!(args.changes[0].request.all_matches);
        assert_eq!(args.min_active, 2);
    }

    #[test]
    fn validate_is_split_without_a_shell() {
        assert_eq!(
            split_validate(r#"/usr/sbin/haproxy -c -f "%s" -L 'my node'"#).unwrap(),
            ["/usr/sbin/haproxy", "-c", "-f", "%s", "-L", "my node"]
        );
        assert_eq!(
            split_validate("check --file=%s; rm -rf /").unwrap(),
            ["check", "--file=%s;", "rm", "-rf", "/"],
            "a semicolon is an ordinary character without a shell"
        );
        assert!(split_validate(r#"check "%s"#).is_err());
        // An empty string switches validation off.
        let args = server(r#"{"server": "a", "validate": ""}"#).unwrap();
        assert_eq!(args.validate, None);
    }

    #[test]
    fn default_validate_finds_haproxy_on_the_search_path() {
        let dir = tempfile::tempdir().unwrap();
        let fake = dir.path().join("haproxy");
        std::fs::write(&fake, "#!/bin/sh\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
        let argv = default_validate(Some(dir.path().as_os_str())).unwrap();
        assert_eq!(argv[0], fake.to_string_lossy());
        assert_eq!(&argv[1..], ["-c", "-f", "%s"]);
        // Not executable: skipped, so the result falls back to /usr/sbin (or nothing).
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o644)).unwrap();
        let fallback = default_validate(Some(dir.path().as_os_str()));
        assert_ne!(
            fallback.map(|a| a[0].clone()),
            Some(fake.to_string_lossy().into_owned())
        );
    }

    #[test]
    fn info_options_are_checked_too() {
        let args = InfoArgs::parse(r#"{"backend": "app", "_ansible_check_mode": true}"#).unwrap();
        assert_eq!(args.backend.as_deref(), Some("app"));
        assert!(args.ansible.check_mode);
        let err = InfoArgs::parse(r#"{"state": "drain"}"#).unwrap_err();
        assert!(matches!(err, ArgsError::Unknown { ref names, .. } if names == &["state"]));
    }

    #[test]
    fn changes_are_read_in_order_with_the_top_level_all_matches_as_default() {
        let args = server(
            r#"{"all_matches": true, "changes": [
                {"backend": "app", "server": "web1", "state": "drain", "reason": {"alert": "A"}},
                {"address": "10.0.0.2", "weight": "50%", "all_matches": false}]}"#,
        )
        .unwrap();
        assert!(args.batch);
        let [first, second] = &args.changes[..] else {
            panic!("two changes expected: {:?}", args.changes)
        };
        assert_eq!(first.request.target, Target::Name("web1".into()));
        assert_eq!(first.request.desired, Desired::Drain);
        assert!(first.request.all_matches);
        assert_eq!(first.reason, Some(serde_json::json!({"alert": "A"})));
        assert_eq!(second.request.target, Target::Address("10.0.0.2".into()));
        assert_eq!(
            second.request.desired,
            Desired::Weight(WeightSpec::Percent(50))
        );
        assert!(!second.request.all_matches);
        let empty = server(r#"{"changes": []}"#).unwrap();
        assert!(empty.batch && empty.changes.is_empty());
        assert!(!server(r#"{"server": "web1"}"#).unwrap().batch);
    }

    #[test]
    fn bad_changes_name_the_entry_and_the_problem() {
        let err = |json: &str| server(json).unwrap_err().to_string();
        assert_eq!(
            err(
                r#"{"changes": [{"server": "a"}, {"server": "b", "state": "drain", "weight": 3}]}"#
            ),
            "changes[1]: option `weight` only goes with state=enabled (the server stays in \
             service with a lower weight), not with state=drain"
        );
        assert!(err(r#"{"changes": [{"server": "a", "socket": "/x"}]}"#)
            .starts_with("changes[0]: unsupported option(s): socket"));
        assert_eq!(
            err(r#"{"changes": [7]}"#),
            "changes[0]: expected an object, found 7"
        );
        assert!(err(r#"{"changes": {"server": "a"}}"#).contains("expected a list of changes"));
        assert_eq!(
            err(r#"{"server": "a", "changes": [{"server": "b"}]}"#),
            "option `server` goes inside each entry of `changes`, not beside it"
        );
        assert_eq!(
            err(r#"{"changes": [{"state": "drain"}]}"#),
            "changes[0]: one of the options `server` or `address` is required"
        );
    }

    #[test]
    fn reload_needs_the_admin_socket_and_a_known_method() {
        let err = |json: &str| server(json).unwrap_err().to_string();
        assert!(err(r#"{"server": "a", "reload": "signal"}"#).contains("needs `socket`"));
        assert!(err(r#"{"server": "a", "socket": "/s", "reload": "kick"}"#)
            .contains("expected one of none, master_cli, signal, systemd"));
        let args = server(r#"{"server": "a", "socket": "/s", "reload": "signal"}"#).unwrap();
        assert_eq!(
            args.reload,
            Some(ReloadMethod::Signal(PathBuf::from("/run/haproxy.pid")))
        );
        let args = server(
            r#"{"server": "a", "socket": "/s", "reload": "master_cli", "master_socket": "/m"}"#,
        )
        .unwrap();
        assert_eq!(
            args.reload,
            Some(ReloadMethod::MasterCli(PathBuf::from("/m")))
        );
        assert_eq!(args.reload_timeout, Duration::from_secs(15));
        assert_eq!(
            server(r#"{"server": "a", "reload": "none"}"#)
                .unwrap()
                .reload,
            None
        );
    }
}
