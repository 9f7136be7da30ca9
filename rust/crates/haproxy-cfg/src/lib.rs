//! Lossless parsing and surgical editing of haproxy.cfg.
//!
//! CONTRACT (agreed between the engine and the module; the engine owns the implementation):
//! the module only calls [`inventory`], [`plan`], [`plan_all`] and [`plan_all_by`], and only reads the
//! types below.
//! Everything else in this crate is free to change.
//!
//! How it works: [`Document`] keeps the original text and, for every line, the byte spans of its
//! indentation, words, separators, comment and line ending, so rendering gives back the input byte for
//! byte. A plan replaces only the lines of the servers it changes. What autoheal changes is recorded in a
//! `#autoheal <state>[ by autoheal] was: <original line>` comment right above the server line (or, for `absent`, in
//! place of it), which makes `enabled` an exact restore and every request idempotent.
//!
//! Choices worth knowing:
//! - `server` lines count in `backend` and `listen` sections only; lines under a header that does not
//!   lex (an unterminated quote) are never edited.
//! - Servers inside `.if` blocks are servers; a plan touching one says so in its notes.
//! - Lines that do not lex (unterminated quote, trailing lone backslash) are opaque: never read as
//!   servers, never rewritten.
//! - An `absent` server reports the weight, `disabled` and `backup` of the line it would get back.
//! - A marker counts only directly above a server line of the same name. Several such markers stacked
//!   (hand-made or stale) form one group: the lowest counts, and rewriting the server replaces them all.
//!   A comment that starts with `#autoheal` but does not parse as a marker is left alone.
//! - If the server line was edited by hand while autoheal had changed it, `enabled` restores only the
//!   tokens autoheal changed (a weight it set, a `disabled` it added) and says so in the notes.
//! - The engine works on `&str`: haproxy.cfg is text, and every file of the shared corpus is UTF-8.
//!   Callers holding bytes that are not UTF-8 must refuse them rather than convert them lossily.
//! - Server options are read with the arity of HAProxy's server keywords (`cookie backup` is a cookie
//!   value, not the `backup` flag); unknown keywords are read as flags.

mod address;
mod document;
mod edit;
mod error;
mod lexer;
mod marker;
mod server;

pub use document::{Document, Line, Section, SectionKind, SECTION_KEYWORDS};
pub(crate) use edit::validate;
pub use error::Error;
pub use lexer::{lex, LexedLine, Malformed, Token};

/// How an edit selects servers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// Restrict the search to this `backend`/`listen` section.
    pub backend: Option<String>,
    /// Which server(s).
    pub target: Target,
    /// Act on every match instead of failing on ambiguity.
    pub all_matches: bool,
    /// What the server(s) should become.
    pub desired: Desired,
}

/// A server named by its `server <name>` or by its address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// The server's name, exactly as HAProxy sees it (quotes and escapes resolved).
    Name(String),
    /// `host`, `host:port`, IPv4, IPv6 as HAProxy writes it, `unix@/path`, a hostname.
    Address(String),
}

/// The state the module is asked to reach.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Desired {
    /// Undo what autoheal changed; leave what the user wrote alone.
    Enabled,
    /// `weight 0` in the file.
    Drain,
    /// The `disabled` keyword.
    Disabled,
    /// The line becomes a marked comment (needs a reload).
    Absent,
    /// A lower weight, absolute or relative to the original weight.
    Weight(WeightSpec),
}

/// A weight as the user asks for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeightSpec {
    /// 0..=256.
    Absolute(u32),
    /// 0..=100 percent of the original weight.
    Percent(u32),
}

/// Who put a server in the state its marker records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetBy {
    /// The remediation loop (autoheal-relay through the remediate role).
    Autoheal,
    /// A person (a playbook or a hand-run module call).
    Operator,
}

/// One server's state as the file states it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigState {
    /// The weight that takes effect (`weight` keyword, else `default-server`, else 1).
    pub weight: u32,
    /// The `disabled` keyword is in effect.
    pub disabled: bool,
    /// The `backup` keyword is in effect.
    pub backup: bool,
    /// The line is commented out by autoheal.
    pub absent: bool,
    /// What autoheal's marker says it did to this server, if anything.
    pub managed: Option<Desired>,
    /// Who the marker says set that state; `None` without a marker.
    pub set_by: Option<SetBy>,
    /// The weight before autoheal changed it (equals `weight` when unmanaged).
    pub original_weight: u32,
    /// The line (or a `default-server` above it) enables health checks.
    pub check: bool,
    /// The `slowstart` in effect, in milliseconds.
    pub slowstart_ms: Option<u64>,
}

/// A server found in a `backend` or `listen` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerInfo {
    /// The section's name.
    pub backend: String,
    /// The server's name.
    pub name: String,
    /// The address as written (quotes resolved).
    pub address: String,
    /// 1-based line number of the server line (or of its marker comment when absent).
    pub line: usize,
    /// The state the file gives it.
    pub state: ConfigState,
}

/// What one request does to one server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerChange {
    /// The server before and after.
    pub before: ServerInfo,
    /// The server after the edit.
    pub after: ServerInfo,
    /// The file changes for this server.
    pub changed: bool,
    /// HAProxy must reload for the change to take full effect (`absent` and back).
    pub reload_required: bool,
    /// Things the operator should know (e.g. "user edited the line; only weight restored").
    pub notes: Vec<String>,
}

/// The outcome of planning a request against a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The new file contents; identical to the input when nothing changes.
    pub output: String,
    /// One entry per matched server, in file order.
    pub changes: Vec<ServerChange>,
}

/// The outcome of planning several requests at once: the edits to make, without a copy of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Patch {
    /// Byte ranges of the input and their new text, in file order, not overlapping.
    pub edits: Vec<(std::ops::Range<usize>, String)>,
    /// One entry per matched server, in file order, with the index of the request that matched it.
    pub changes: Vec<(usize, ServerChange)>,
    /// Every server of the sections that hold a matched server, before the change, as [`inventory`]
    /// lists them (for checks such as "how many stay active"), without a second walk of the file.
    pub section_servers: Vec<ServerInfo>,
}

impl Patch {
    /// The new text as consecutive pieces of `source` (the text planned against) and new lines.
    pub fn pieces<'p>(&'p self, source: &'p str) -> impl Iterator<Item = &'p str> + 'p {
        let mut cursor = 0;
        let mut edits = self.edits.iter();
        let mut replacement: Option<&str> = None;
        std::iter::from_fn(move || loop {
            if let Some(text) = replacement.take() {
                return Some(text);
            }
            match edits.next() {
                Some((range, text)) => {
                    let kept = &source[cursor..range.start];
                    cursor = range.end;
                    replacement = Some(text);
                    if !kept.is_empty() {
                        return Some(kept);
                    }
                }
                None if cursor < source.len() => {
                    let rest = &source[cursor..];
                    cursor = source.len();
                    return Some(rest);
                }
                None => return None,
            }
        })
    }

    /// The new text in one string.
    pub fn render(&self, source: &str) -> String {
        let growth: usize = self.edits.iter().map(|(_, text)| text.len()).sum();
        let mut output = String::with_capacity(source.len() + growth);
        self.pieces(source).for_each(|piece| output.push_str(piece));
        output
    }
}

/// Lists every server of every `backend` and `listen` section, absent ones included.
pub fn inventory(source: &str) -> Vec<ServerInfo> {
    let mut servers = Vec::new();
    // Each server is described as it is found and not kept, so a large file is never held twice.
    server::find(source, None, |entry| {
        servers.push(entry.info());
        false
    });
    servers
}

/// Plans `request` against `source`. Pure: no I/O, never panics.
pub fn plan(source: &str, request: &Request) -> Result<Plan, Error> {
    edit::plan(source, request)
}

/// Plans several requests against `source` in one walk, as one change: each request selects its
/// servers as [`plan`] would, and no server may be designated by two requests. On failure, the index
/// of the request at fault and why. Pure: no I/O, never panics.
pub fn plan_all(source: &str, requests: &[Request]) -> Result<Patch, (usize, Error)> {
    plan_all_by(source, requests, SetBy::Operator)
}

/// [`plan_all`], with the markers it writes saying who asked.
pub fn plan_all_by(
    source: &str,
    requests: &[Request],
    set_by: SetBy,
) -> Result<Patch, (usize, Error)> {
    edit::plan_all(source, requests, set_by)
}
