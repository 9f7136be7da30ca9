//! Why a request cannot be planned, in words an operator can act on.

use std::fmt;

/// Why a request cannot be planned. Nothing is changed when one is returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// No server matches.
    NotFound {
        /// What was asked for, for the message.
        wanted: String,
    },
    /// Several servers match and `all_matches` is false.
    Ambiguous {
        /// What was asked for.
        wanted: String,
        /// `backend/server` of each candidate.
        candidates: Vec<String>,
    },
    /// The name designates a `server-template` or `default-server` line.
    NotAServer {
        /// What was asked for.
        wanted: String,
        /// The keyword found.
        keyword: String,
    },
    /// The named backend does not exist.
    NoSuchBackend(String),
    /// The request itself is invalid (weight out of range, ...).
    Invalid(String),
    /// In a batch, a server is designated by this request and by an earlier one.
    Overlap {
        /// `backend/server`.
        server: String,
        /// 0-based index of the earlier request.
        earlier: usize,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotFound { wanted } => write!(f, "no server matches {wanted}"),
            Self::Ambiguous { wanted, candidates } => write!(
                f,
                "{wanted} matches {} servers: {}; name the backend, or set all_matches to act on all of them",
                candidates.len(),
                candidates.join(", ")
            ),
            Self::NotAServer { wanted, keyword } => write!(
                f,
                "{wanted} designates a '{keyword}' line, not a server; autoheal only edits 'server' lines"
            ),
            Self::NoSuchBackend(backend) => write!(f, "no backend or listen section is named '{backend}'"),
            Self::Invalid(reason) => write!(f, "invalid request: {reason}"),
            Self::Overlap { server, earlier } => write!(
                f,
                "{server} is also designated by change {}; give each server once per batch",
                earlier + 1
            ),
        }
    }
}

impl std::error::Error for Error {}
