//! The `autoheal.haproxy.server` and `autoheal.haproxy.server_info` Ansible modules.
//!
//! Ansible runs a binary module with the path of a JSON args file as its only argument and reads
//! exactly one JSON object from stdout. [`server::run`] and [`info::run`] do the work;
//! [`respond`] turns their outcome into that object and the exit code.

pub mod args;
pub mod beside;
pub mod file;
pub mod guard;
pub mod health;
pub mod info;
pub mod reload;
pub mod result;
pub mod runtime;
pub mod server;

use std::fmt;
use std::path::PathBuf;
use std::process::ExitCode;

use serde::Serialize;

/// Why a module run failed before it could produce a result. Nothing was changed.
#[derive(Debug)]
pub enum ModuleError {
    /// The args file could not be read.
    ArgsFile {
        /// Its path, if one was given.
        path: Option<PathBuf>,
        /// The cause.
        source: Option<std::io::Error>,
    },
    /// Bad options.
    Args(args::ArgsError),
    /// Locking, reading, validating or replacing the file failed.
    File(file::FileError),
    /// The engine cannot plan the request against the file.
    Engine {
        /// The file.
        path: PathBuf,
        /// The engine's reason.
        error: haproxy_cfg::Error,
        /// The entry of `changes` at fault, when a list was given.
        change: Option<usize>,
    },
    /// The admin socket failed before anything was changed.
    Runtime(runtime::RuntimeError),
    /// `checksum` does not match the file.
    ChecksumMismatch {
        /// The file.
        path: PathBuf,
        /// The `checksum` option.
        expected: String,
        /// The file's sha256.
        found: String,
    },
}

impl fmt::Display for ModuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ArgsFile { path: None, .. } => {
                f.write_str("usage: pass the path of the JSON args file as the only argument")
            }
            Self::ArgsFile {
                path: Some(p),
                source,
            } => {
                write!(f, "cannot read the args file {}", p.display())?;
                match source {
                    Some(e) => write!(f, ": {e}"),
                    None => Ok(()),
                }
            }
            Self::Args(e) => e.fmt(f),
            Self::File(e) => e.fmt(f),
            Self::Runtime(e) => e.fmt(f),
            Self::Engine {
                path,
                error,
                change,
            } => {
                let path = path.display();
                if let Some(index) = change {
                    write!(f, "changes[{index}]: ")?;
                }
                match error {
                    haproxy_cfg::Error::NotFound { wanted } => {
                        write!(f, "no server matches {wanted} in {path}")
                    }
                    haproxy_cfg::Error::Ambiguous { wanted, candidates } => write!(
                        f,
                        "{wanted} matches several servers in {path}: {}; give `backend`, or set \
                         all_matches=true to change them all",
                        candidates.join(", ")
                    ),
                    haproxy_cfg::Error::NotAServer { wanted, keyword } => write!(
                        f,
                        "{wanted} designates a `{keyword}` line in {path}, not a server line"
                    ),
                    haproxy_cfg::Error::NoSuchBackend(name) => {
                        write!(f, "no backend or listen section named {name} in {path}")
                    }
                    haproxy_cfg::Error::Invalid(why) => write!(f, "invalid request: {why}"),
                    haproxy_cfg::Error::Overlap { server, earlier } => write!(
                        f,
                        "{server} is also designated by changes[{earlier}] in {path}; give each \
                         server once per call, nothing was changed"
                    ),
                }
            }
            Self::ChecksumMismatch {
                path,
                expected,
                found,
            } => write!(
                f,
                "{} changed since it was read: its sha256 is {found}, the checksum option says \
                 {expected}; nothing was written",
                path.display()
            ),
        }
    }
}

impl std::error::Error for ModuleError {}

impl ModuleError {
    /// The server (or the backend) asked for does not exist in the file.
    pub fn is_not_found(&self) -> bool {
        matches!(
            self,
            Self::Engine {
                error: haproxy_cfg::Error::NotFound { .. } | haproxy_cfg::Error::NoSuchBackend(_),
                ..
            }
        )
    }
}

impl From<args::ArgsError> for ModuleError {
    fn from(e: args::ArgsError) -> Self {
        Self::Args(e)
    }
}

impl From<file::FileError> for ModuleError {
    fn from(e: file::FileError) -> Self {
        Self::File(e)
    }
}

impl From<runtime::RuntimeError> for ModuleError {
    fn from(e: runtime::RuntimeError) -> Self {
        Self::Runtime(e)
    }
}

/// Reads the args file named by the process's first argument.
pub fn read_args_file() -> Result<String, ModuleError> {
    let path = std::env::args_os().nth(1).map(PathBuf::from);
    let Some(path) = path else {
        return Err(ModuleError::ArgsFile {
            path: None,
            source: None,
        });
    };
    std::fs::read_to_string(&path).map_err(|e| ModuleError::ArgsFile {
        path: Some(path),
        source: Some(e),
    })
}

/// A module result that may itself report a failure.
pub trait Outcome: Serialize {
    /// The task failed even though the module ran to the end.
    fn failed(&self) -> bool;
}

impl Outcome for result::ServerResult {
    fn failed(&self) -> bool {
        self.failed
    }
}

impl Outcome for result::InfoResult {
    fn failed(&self) -> bool {
        false
    }
}

#[derive(Serialize)]
struct Failure {
    failed: bool,
    changed: bool,
    msg: String,
    /// HAProxy did not answer on the admin socket, so nothing was changed: callers rolling out
    /// to several load balancers leave this one for later instead of stopping everywhere.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    haproxy_unreachable: bool,
    /// `false` when the server asked for does not exist, so callers can tell a typo from a failure.
    #[serde(skip_serializing_if = "Option::is_none")]
    found: Option<bool>,
}

/// Prints exactly one JSON object for Ansible and returns the exit code (1 on failure).
pub fn respond<T: Outcome>(outcome: Result<T, ModuleError>) -> ExitCode {
    let (json, failed) = match outcome {
        Ok(result) => (serde_json::to_string(&result), result.failed()),
        Err(error) => {
            let failure = Failure {
                failed: true,
                changed: false,
                haproxy_unreachable: matches!(
                    error,
                    ModuleError::Runtime(runtime::RuntimeError::Io { .. })
                ),
                found: error.is_not_found().then_some(false),
                msg: error.to_string(),
            };
            (serde_json::to_string(&failure), true)
        }
    };
    match json {
        Ok(json) => println!("{json}"),
        Err(e) => {
            println!(r#"{{"failed": true, "msg": "cannot serialise the result"}}"#);
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
