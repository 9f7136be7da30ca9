//! Finds the servers of `backend` and `listen` sections and works out the state the file gives them.

use std::borrow::Cow;
use std::collections::HashMap;
use std::ops::Range;

use crate::document::{Header, Line, Lines, SectionKind};
use crate::lexer::{LexedLine, Token};
use crate::marker::Marker;
use crate::{ConfigState, Desired, ServerInfo};

/// Server keywords that take one argument, so that argument is never mistaken for `disabled`, `backup` or
/// `weight` (e.g. `cookie backup`). Keywords not listed are read as flags, which is right for the others.
const ONE_ARGUMENT: &[&str] = &[
    "addr",
    "agent-addr",
    "agent-inter",
    "agent-port",
    "agent-send",
    "alpn",
    "ca-file",
    "check-alpn",
    "check-proto",
    "check-sni",
    "ciphers",
    "ciphersuites",
    "client-sigalgs",
    "cookie",
    "crl-file",
    "crt",
    "curves",
    "downinter",
    "error-limit",
    "fall",
    "fastinter",
    "guid",
    "hash-key",
    "id",
    "init-addr",
    "inter",
    "interface",
    "log-bufsize",
    "log-proto",
    "max-reuse",
    "maxconn",
    "maxqueue",
    "minconn",
    "namespace",
    "npn",
    "observe",
    "on-error",
    "on-marked-down",
    "on-marked-up",
    "pool-conn-name",
    "pool-low-conn",
    "pool-max-conn",
    "pool-purge-delay",
    "port",
    "proto",
    "proxy-v2-options",
    "redir",
    "resolve-net",
    "resolve-opts",
    "resolve-prefer",
    "resolvers",
    "rise",
    "set-proxy-v2-tlv-fmt",
    "shard",
    "sigalgs",
    "slowstart",
    "sni",
    "socks4",
    "source",
    "ssl-max-ver",
    "ssl-min-ver",
    "tcp-ut",
    "track",
    "usesrc",
    "verify",
    "verifyhost",
    "ws",
];

/// The state-related keywords found on a `server` or `default-server` line; the last occurrence wins,
/// as in HAProxy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Settings {
    /// Index of the last `weight` keyword token.
    pub weight_keyword: Option<usize>,
    /// Index of the last `disabled` token.
    pub disabled_keyword: Option<usize>,
    /// `disabled` (true) or `enabled` (false), whichever comes last.
    pub disabled: Option<bool>,
    /// `backup` (true) or `no-backup` (false), whichever comes last.
    pub backup: Option<bool>,
    /// `check` (true) or `no-check` (false), whichever comes last.
    pub check: Option<bool>,
    /// The value of the last `slowstart` keyword, in milliseconds (`Some(None)`: unreadable).
    pub slowstart_ms: Option<Option<u64>>,
}

impl Settings {
    /// Scans the options of a line, starting at token `first`.
    pub fn scan(tokens: &[Token], first: usize) -> Self {
        let mut settings = Self::default();
        let mut index = first;
        while let Some(token) = tokens.get(index) {
            let keyword = token.value.as_ref();
            match keyword {
                "weight" => settings.weight_keyword = Some(index),
                "disabled" => {
                    settings.disabled = Some(true);
                    settings.disabled_keyword = Some(index);
                }
                "enabled" => settings.disabled = Some(false),
                "backup" => settings.backup = Some(true),
                "no-backup" => settings.backup = Some(false),
                "check" => settings.check = Some(true),
                "no-check" => settings.check = Some(false),
                "slowstart" => {
                    settings.slowstart_ms = Some(
                        tokens
                            .get(index + 1)
                            .and_then(|t| time_ms(t.value.as_ref())),
                    );
                }
                _ => {}
            }
            index += if keyword == "weight" || ONE_ARGUMENT.contains(&keyword) {
                2
            } else {
                1
            };
        }
        settings
    }

    /// The token holding the weight's value, if the `weight` keyword has one.
    pub fn weight_value<'t, 'a>(&self, tokens: &'t [Token<'a>]) -> Option<&'t Token<'a>> {
        self.weight_keyword.and_then(|index| tokens.get(index + 1))
    }
}

/// What `default-server` lines hand down to the servers that follow them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Inherited {
    /// `default-server weight N`.
    pub weight: Option<u32>,
    /// `default-server disabled` (or `enabled`).
    pub disabled: Option<bool>,
    /// `default-server backup` (or `no-backup`).
    pub backup: Option<bool>,
    /// `default-server check` (or `no-check`).
    pub check: Option<bool>,
    /// `default-server slowstart T`, in milliseconds.
    pub slowstart_ms: Option<u64>,
}

impl Inherited {
    fn merge(&mut self, line: &LexedLine) {
        let settings = Settings::scan(&line.tokens, 1);
        if let Some(weight) = settings
            .weight_value(&line.tokens)
            .and_then(|t| t.value.parse().ok())
        {
            self.weight = Some(weight);
        }
        self.disabled = settings.disabled.or(self.disabled);
        self.backup = settings.backup.or(self.backup);
        self.check = settings.check.or(self.check);
        self.slowstart_ms = settings.slowstart_ms.flatten().or(self.slowstart_ms);
    }
}

/// The state a server line gives once `default-server` settings are applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Effective {
    /// The weight in effect; HAProxy's default is 1.
    pub weight: u32,
    /// The server starts in maintenance.
    pub disabled: bool,
    /// The server is a backup server.
    pub backup: bool,
    /// HAProxy health-checks the server.
    pub check: bool,
    /// The `slowstart` in effect, in milliseconds (0, HAProxy's "none", reads as `None`).
    pub slowstart_ms: Option<u64>,
}

impl Effective {
    /// Reads a `server` line (tokens: `server`, name, address, options).
    pub fn of(line: &LexedLine, inherited: Inherited) -> Self {
        let settings = Settings::scan(&line.tokens, 3);
        let own_weight = settings
            .weight_value(&line.tokens)
            .and_then(|t| t.value.parse().ok());
        Self {
            weight: own_weight.or(inherited.weight).unwrap_or(1),
            disabled: settings.disabled.or(inherited.disabled).unwrap_or(false),
            backup: settings.backup.or(inherited.backup).unwrap_or(false),
            check: settings.check.or(inherited.check).unwrap_or(false),
            slowstart_ms: settings
                .slowstart_ms
                .map_or(inherited.slowstart_ms, |own| own)
                .filter(|ms| *ms > 0),
        }
    }
}

/// A server line, live or commented out by autoheal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry<'a> {
    /// The section's name.
    pub backend: Cow<'a, str>,
    /// The server's name.
    pub name: Cow<'a, str>,
    /// The address as written, quotes resolved (empty when missing).
    pub address: Cow<'a, str>,
    /// 0-based index of the server line, or of the `absent` marker line.
    pub line: usize,
    /// 0-based index of the first line of `range`.
    pub first_line: usize,
    /// Bytes of the marker line(s) (if any) and the server line, line endings included.
    pub range: Range<usize>,
    /// The server line (or `absent` marker line) without its ending.
    pub content: &'a str,
    /// Length of that line's indentation.
    pub indent_len: usize,
    /// That line's ending.
    pub ending: &'a str,
    /// The ending of the line just above `range` (empty at the top of the file).
    pub ending_above: &'a str,
    /// What autoheal recorded, if anything.
    pub marker: Option<Marker>,
    /// The line is an `absent` marker.
    pub absent: bool,
    /// What earlier `default-server` lines hand down.
    pub inherited: Inherited,
    /// The state the server line gives (for an absent server, the line it would get back).
    pub effective: Effective,
    /// The line sits inside a `.if` block.
    pub conditional: bool,
}

impl Entry<'_> {
    /// The public view of this entry.
    pub fn info(&self) -> ServerInfo {
        let current = self.effective;
        let before = self.marker.as_ref().map_or(current, |marker| {
            Effective::of(&marker.original_lexed(), self.inherited)
        });
        ServerInfo {
            backend: self.backend.clone().into_owned(),
            name: self.name.clone().into_owned(),
            address: self.address.clone().into_owned(),
            line: self.line + 1,
            state: ConfigState {
                weight: current.weight,
                disabled: current.disabled,
                backup: current.backup,
                absent: self.absent,
                managed: self.marker.as_ref().map(|marker| marker.desired.clone()),
                set_by: self.marker.as_ref().map(|marker| marker.set_by),
                original_weight: before.weight,
                check: current.check,
                slowstart_ms: current.slowstart_ms,
            },
        }
    }
}

/// A `server-template` or `default-server` line: asking for it by name or address is a mistake to report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotServer<'a> {
    /// The section's name.
    pub backend: Cow<'a, str>,
    /// `server-template` or `default-server`.
    pub keyword: &'static str,
    /// The template's name prefix, or `default-server` itself.
    pub name: Cow<'a, str>,
    /// The template's address, if any.
    pub address: Option<Cow<'a, str>>,
}

/// What a walk over the `backend` and `listen` sections found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Servers<'a> {
    /// The servers the caller kept, in file order.
    pub entries: Vec<Entry<'a>>,
    /// `server-template` and `default-server` lines.
    pub not_servers: Vec<NotServer<'a>>,
    /// Every `backend` and `listen` section.
    pub backends: Vec<SectionSpan<'a>>,
}

/// Where a `backend` or `listen` section's body lies, and what it inherits, so that it can be
/// read again on its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SectionSpan<'a> {
    /// The section's name.
    pub name: Cow<'a, str>,
    kind: SectionKind,
    /// The bytes after the header line, up to the next header.
    body: Range<usize>,
    /// 0-based index of the body's first line.
    first_line: usize,
    inherited: Inherited,
}

/// Lists every server of one section found by an earlier walk of `text`, as [`find`] describes them.
pub fn list_section(text: &str, span: &SectionSpan<'_>) -> Vec<ServerInfo> {
    let mut servers = Vec::new();
    let body = &text[span.body.clone()];
    let mut finder = Finder::new(body, |entry: &Entry| {
        servers.push(entry.info());
        false
    });
    finder.section = Some(SectionState {
        kind: span.kind,
        name: span.name.clone(),
        inherited: span.inherited,
    });
    finder.index = span.first_line;
    for line in Lines::new(body) {
        finder.feed(line);
    }
    drop(finder);
    servers
}

/// Walks the text once, line by line, keeping the servers `keep` accepts; tracks what each `defaults`
/// section and each backend's `default-server` lines hand down. `name_hints`, when given, must hold
/// every name `keep` looks for: server lines that contain none of them are not even lexed. Lines that
/// cannot matter (most of a large file) are only counted, never handed to the walk.
pub fn find<'a>(
    text: &'a str,
    name_hints: Option<&'a [&'a str]>,
    keep: impl FnMut(&Entry<'a>) -> bool,
) -> Servers<'a> {
    let mut finder = Finder::new(text, keep);
    let mut lines = Lines::structure(text, name_hints);
    while let Some(line) = lines.next() {
        if let Some((count, last_ending)) = lines.take_passed_over() {
            finder.pass_over(count, last_ending);
        }
        finder.feed(line);
    }
    // Lines passed over after the last one returned are not counted: nothing reads the count after
    // the walk.
    if let Some(last) = finder.servers.backends.last_mut() {
        if last.body.end == usize::MAX {
            last.body.end = text.len();
        }
    }
    finder.servers
}

/// Reads the lines autoheal wrote for one server (its replacement text) in that server's context, as
/// the file will read them. Returns the entry found, with line numbers counted from `first_line`.
pub fn reread<'a>(
    replacement: &'a str,
    before: &Entry<'_>,
    first_line: usize,
) -> Option<Entry<'a>> {
    let mut finder = Finder::new(replacement, |_| true);
    finder.section = Some(SectionState {
        kind: SectionKind::Backend,
        name: Cow::Owned(before.backend.clone().into_owned()),
        inherited: before.inherited,
    });
    for mut line in Lines::new(replacement) {
        line.conditional = before.conditional;
        finder.feed(line);
    }
    let mut entry = finder.servers.entries.pop()?;
    entry.line += first_line;
    entry.first_line += first_line;
    Some(entry)
}

#[derive(Debug)]
struct SectionState<'a> {
    kind: SectionKind,
    name: Cow<'a, str>,
    inherited: Inherited,
}

/// A marker line waiting for the server line below it.
#[derive(Debug)]
struct Pending<'a> {
    first_line: usize,
    start: usize,
    ending_above: &'a str,
    marker: Marker,
}

struct Finder<'a, K> {
    text: &'a str,
    keep: K,
    servers: Servers<'a>,
    named_defaults: HashMap<String, Inherited>,
    last_defaults: Inherited,
    section: Option<SectionState<'a>>,
    pending: Option<Pending<'a>>,
    index: usize,
    ending_above: &'a str,
}

impl<'a, K: FnMut(&Entry<'a>) -> bool> Finder<'a, K> {
    fn new(text: &'a str, keep: K) -> Self {
        Self {
            text,
            keep,
            servers: Servers::default(),
            named_defaults: HashMap::new(),
            last_defaults: Inherited::default(),
            section: None,
            pending: None,
            index: 0,
            ending_above: "",
        }
    }

    /// Lines that hold no header, directive, server or marker: they end a group of markers above a
    /// server and count, as [`Finder::feed`] would read them.
    fn pass_over(&mut self, count: usize, last_ending: Range<usize>) {
        self.pending = None;
        self.ending_above = &self.text[last_ending];
        self.index += count;
    }

    fn feed(&mut self, line: Line<'a>) {
        let pending = self.pending.take();
        if let Some(header) = Header::read(&line.lexed) {
            self.close_section();
            if let Some(open) = self.servers.backends.last_mut() {
                open.body.end = open.body.end.min(line.range.start);
            }
            let parent = match &header.from {
                Some(name) => self
                    .named_defaults
                    .get(name.as_ref())
                    .copied()
                    .unwrap_or_default(),
                None if header.kind == SectionKind::Defaults => Inherited::default(),
                None => self.last_defaults,
            };
            if header.kind.holds_targets() {
                self.servers.backends.push(SectionSpan {
                    name: header.name.clone().unwrap_or_default(),
                    kind: header.kind,
                    body: line.range.end..usize::MAX,
                    first_line: self.index + 1,
                    inherited: parent,
                });
            }
            self.section = Some(SectionState {
                kind: header.kind,
                name: header.name.unwrap_or_default(),
                inherited: parent,
            });
        } else if line.lexed.malformed.is_none() {
            self.body_line(&line, pending);
        }
        self.ending_above = &self.text[line.ending.clone()];
        self.index += 1;
    }

    fn body_line(&mut self, line: &Line<'a>, pending: Option<Pending<'a>>) {
        let Some(section) = &mut self.section else {
            return;
        };
        let lexed = &line.lexed;
        let targets = section.kind.holds_targets();
        let content = &self.text[line.range.start..line.ending.start];
        let word = |index: usize| lexed.tokens.get(index).map(|token| token.value.clone());
        match lexed.keyword() {
            Some("default-server") => {
                section.inherited.merge(lexed);
                if targets {
                    self.servers.not_servers.push(NotServer {
                        backend: section.name.clone(),
                        keyword: "default-server",
                        name: Cow::Borrowed("default-server"),
                        address: None,
                    });
                }
            }
            Some("server-template") if targets => self.servers.not_servers.push(NotServer {
                backend: section.name.clone(),
                keyword: "server-template",
                name: word(1).unwrap_or_default(),
                address: word(3),
            }),
            Some("server") if targets && lexed.tokens.len() >= 2 => {
                let name = lexed.tokens[1].value.clone();
                let (first_line, start, ending_above, marker) = match pending {
                    Some(pending) if pending.marker.name() == name => (
                        pending.first_line,
                        pending.start,
                        pending.ending_above,
                        Some(pending.marker),
                    ),
                    _ => (self.index, line.range.start, self.ending_above, None),
                };
                let entry = Entry {
                    backend: section.name.clone(),
                    name,
                    address: word(2).unwrap_or_default(),
                    line: self.index,
                    first_line,
                    range: start..line.range.end,
                    content,
                    indent_len: lexed.indent.len(),
                    ending: &self.text[line.ending.clone()],
                    ending_above,
                    marker,
                    absent: false,
                    inherited: section.inherited,
                    effective: Effective::of(lexed, section.inherited),
                    conditional: line.conditional,
                };
                if (self.keep)(&entry) {
                    self.servers.entries.push(entry);
                }
            }
            None if targets => match comment_marker(content, lexed) {
                Some(marker) if marker.desired == Desired::Absent => {
                    let original = marker.original_lexed();
                    let name = original.tokens[1].value.to_string();
                    // Stale markers for this server right above go with it, as for a live server:
                    // once it comes back they would otherwise slide onto its line.
                    let (first_line, start, ending_above) = match pending {
                        Some(group) if group.marker.name() == name => {
                            (group.first_line, group.start, group.ending_above)
                        }
                        _ => (self.index, line.range.start, self.ending_above),
                    };
                    let address = original.tokens.get(2).map(|t| t.value.to_string());
                    let effective = Effective::of(&original, section.inherited);
                    let entry = Entry {
                        backend: section.name.clone(),
                        name: Cow::Owned(name),
                        address: Cow::Owned(address.unwrap_or_default()),
                        line: self.index,
                        first_line,
                        range: start..line.range.end,
                        content,
                        indent_len: lexed.indent.len(),
                        ending: &self.text[line.ending.clone()],
                        ending_above,
                        marker: Some(marker),
                        absent: true,
                        inherited: section.inherited,
                        effective,
                        conditional: line.conditional,
                    };
                    if (self.keep)(&entry) {
                        self.servers.entries.push(entry);
                    }
                }
                // Markers for the same server stacked right above each other (left by hand, or by an
                // older run) form one group: the lowest one counts, and rewriting the server replaces
                // the whole group, so no stale marker can slide onto the server line later.
                Some(marker) => {
                    self.pending = Some(match pending {
                        Some(group) if group.marker.name() == marker.name() => {
                            Pending { marker, ..group }
                        }
                        _ => Pending {
                            first_line: self.index,
                            start: line.range.start,
                            ending_above: self.ending_above,
                            marker,
                        },
                    })
                }
                None => {}
            },
            _ => {}
        }
    }

    /// A `defaults` section hands its `default-server` settings to the proxies that follow it.
    fn close_section(&mut self) {
        if let Some(section) = self.section.take() {
            if section.kind == SectionKind::Defaults {
                self.last_defaults = section.inherited;
                if !section.name.is_empty() {
                    self.named_defaults
                        .insert(section.name.into_owned(), section.inherited);
                }
            }
        }
    }
}

/// A time as HAProxy reads it (`500`, `500ms`, `2s`, `1m`, `1h`, `1d`, `100us`), in milliseconds.
fn time_ms(text: &str) -> Option<u64> {
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    let value: u64 = text[..digits].parse().ok()?;
    let factor = match &text[digits..] {
        "" | "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        "us" => return Some(value / 1_000),
        _ => return None,
    };
    value.checked_mul(factor)
}

/// The marker on a comment-only line, if it is one.
fn comment_marker(content: &str, lexed: &LexedLine) -> Option<Marker> {
    let comment = lexed.comment.as_ref()?;
    if !lexed.is_blank_or_comment() {
        return None;
    }
    Marker::parse(&content[comment.clone()])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The walk `find` makes, but with every line lexed and fed: what passing lines over must not change.
    fn find_feeding_every_line<'a>(
        text: &'a str,
        keep: impl FnMut(&Entry<'a>) -> bool,
    ) -> Servers<'a> {
        let mut finder = Finder::new(text, keep);
        for line in Lines::new(text) {
            finder.feed(line);
        }
        if let Some(last) = finder.servers.backends.last_mut() {
            if last.body.end == usize::MAX {
                last.body.end = text.len();
            }
        }
        finder.servers
    }

    #[test]
    fn passing_lines_over_finds_what_feeding_every_line_finds() {
        let marked = "defaults\n    default-server inter 3s\n\nbackend app\n    balance roundrobin\n\n    \
            #autoheal drain was: server web1 10.0.0.1:80 check weight 10\n    server web1 10.0.0.1:80 check weight 0\n    \
            #autoheal drain was: server web2 10.0.0.2:80 check\n    # a note between a marker and its server\n    \
            server web2 10.0.0.2:80 check\n    #autoheal absent was: server web3 10.0.0.3:80 check\n\n    \
            #autoheal disabled was: server web4 10.0.0.4:80\r\n\r\n    server web4 10.0.0.4:80 disabled\r\n\
            .if defined(X)\n    server web5 10.0.0.5:80\n.endif\nlisten l\n    bind :80\n    server web1 10.0.0.9:80\n\
            back\"end\" quoted_keywords\n    \"server\" web6 10.0.0.6:80\n    'server' web7 10.0.0.7:80\n";
        let fixtures = [
            include_str!("../tests/fixtures/comments-and-blank-lines.cfg"),
            include_str!("../tests/fixtures/conditional-blocks.cfg"),
            include_str!("../tests/fixtures/crlf.cfg"),
            include_str!("../tests/fixtures/quoting-and-odd-names.cfg"),
            include_str!("../tests/fixtures/templates-and-duplicates.cfg"),
        ];
        for text in std::iter::once(marked).chain(fixtures) {
            let every_line = find_feeding_every_line(text, |_| true);
            assert!(!every_line.entries.is_empty(), "no servers in {text:?}");
            assert_eq!(find(text, None, |_| true), every_line, "{text:?}");
            let names: Vec<String> = every_line
                .entries
                .iter()
                .map(|e| e.name.to_string())
                .collect();
            for name in &names {
                let hints = [name.as_str()];
                let wanted = |entry: &Entry| entry.name == *name;
                assert_eq!(
                    find(text, Some(&hints), wanted).entries,
                    find_feeding_every_line(text, wanted).entries,
                    "{name} in {text:?}"
                );
            }
        }
    }
}
