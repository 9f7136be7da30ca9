//! Finds the servers of `backend` and `listen` sections and works out the state the file gives them.

use std::collections::HashMap;

use crate::document::{Document, SectionKind};
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
}

impl Settings {
    /// Scans the options of a line, starting at token `first`.
    pub fn scan(tokens: &[Token], first: usize) -> Self {
        let mut settings = Self::default();
        let mut index = first;
        while let Some(token) = tokens.get(index) {
            let keyword = token.value.as_str();
            match keyword {
                "weight" => settings.weight_keyword = Some(index),
                "disabled" => {
                    settings.disabled = Some(true);
                    settings.disabled_keyword = Some(index);
                }
                "enabled" => settings.disabled = Some(false),
                "backup" => settings.backup = Some(true),
                "no-backup" => settings.backup = Some(false),
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
    pub fn weight_value<'t>(&self, tokens: &'t [Token]) -> Option<&'t Token> {
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
        }
    }
}

/// A server line, live or commented out by autoheal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Index of the section in [`Document::sections`].
    pub section: usize,
    /// The section's name.
    pub backend: String,
    /// The server's name.
    pub name: String,
    /// The address as written, quotes resolved (empty when missing).
    pub address: String,
    /// Index of the server line, or of the `absent` marker line.
    pub line: usize,
    /// Index of the marker line above a live server line.
    pub marker_line: Option<usize>,
    /// What autoheal recorded, if anything.
    pub marker: Option<Marker>,
    /// The line is an `absent` marker.
    pub absent: bool,
    /// What earlier `default-server` lines hand down.
    pub inherited: Inherited,
    /// The line sits inside a `.if` block.
    pub conditional: bool,
}

impl Entry {
    /// The lines this entry occupies (marker included).
    pub fn first_line(&self) -> usize {
        self.marker_line.unwrap_or(self.line)
    }

    /// The public view of this entry.
    pub fn info(&self, document: &Document) -> ServerInfo {
        let current = &document.lines()[self.line].lexed;
        let original = self.marker.as_ref().map(Marker::original_lexed);
        let now = Effective::of(
            original.as_ref().filter(|_| self.absent).unwrap_or(current),
            self.inherited,
        );
        let before = original
            .as_ref()
            .map_or(now, |line| Effective::of(line, self.inherited));
        ServerInfo {
            backend: self.backend.clone(),
            name: self.name.clone(),
            address: self.address.clone(),
            line: self.line + 1,
            state: ConfigState {
                weight: now.weight,
                disabled: now.disabled,
                backup: now.backup,
                absent: self.absent,
                managed: self.marker.as_ref().map(|marker| marker.desired.clone()),
                original_weight: before.weight,
            },
        }
    }
}

/// A `server-template` or `default-server` line: asking for it by name or address is a mistake to report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotServer {
    /// Index of the section in [`Document::sections`].
    pub section: usize,
    /// `server-template` or `default-server`.
    pub keyword: String,
    /// The template's name prefix, or `default-server` itself.
    pub name: String,
    /// The template's address, if any.
    pub address: Option<String>,
}

/// Everything found in the `backend` and `listen` sections.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Servers {
    /// Servers in file order.
    pub entries: Vec<Entry>,
    /// `server-template` and `default-server` lines.
    pub not_servers: Vec<NotServer>,
}

/// Walks the document once, tracking what each `defaults` section and each backend's `default-server`
/// lines hand down.
pub fn find(document: &Document) -> Servers {
    let mut servers = Servers::default();
    let mut named_defaults: HashMap<String, Inherited> = HashMap::new();
    let mut last_defaults = Inherited::default();
    let lines = document.lines();
    for (section_index, section) in document.sections().iter().enumerate() {
        let parent = match &section.from {
            Some(name) => named_defaults.get(name).copied().unwrap_or_default(),
            None if section.kind == SectionKind::Defaults => Inherited::default(),
            None => last_defaults,
        };
        let mut inherited = parent;
        let backend = section.name.clone().unwrap_or_default();
        let mut previous_marker: Option<(usize, Marker)> = None;
        for index in section.body.clone() {
            let lexed = &lines[index].lexed;
            let marker_here = comment_marker(document, index);
            let pending = previous_marker.take();
            if lexed.malformed.is_some() {
                continue;
            }
            match lexed.keyword() {
                Some("default-server") => {
                    inherited.merge(lexed);
                    if section.kind.holds_targets() {
                        servers.not_servers.push(NotServer {
                            section: section_index,
                            keyword: "default-server".to_owned(),
                            name: "default-server".to_owned(),
                            address: None,
                        });
                    }
                }
                Some("server-template") if section.kind.holds_targets() => {
                    servers.not_servers.push(NotServer {
                        section: section_index,
                        keyword: "server-template".to_owned(),
                        name: lexed
                            .tokens
                            .get(1)
                            .map(|t| t.value.clone())
                            .unwrap_or_default(),
                        address: lexed.tokens.get(3).map(|t| t.value.clone()),
                    });
                }
                Some("server") if section.kind.holds_targets() && lexed.tokens.len() >= 2 => {
                    let name = lexed.tokens[1].value.clone();
                    let (marker_line, marker) = match pending {
                        Some((line, marker)) if marker.name() == name => (Some(line), Some(marker)),
                        _ => (None, None),
                    };
                    servers.entries.push(Entry {
                        section: section_index,
                        backend: backend.clone(),
                        address: lexed
                            .tokens
                            .get(2)
                            .map(|t| t.value.clone())
                            .unwrap_or_default(),
                        name,
                        line: index,
                        marker_line,
                        marker,
                        absent: false,
                        inherited,
                        conditional: lines[index].conditional,
                    });
                }
                None if section.kind.holds_targets() => match marker_here {
                    Some(marker) if marker.desired == Desired::Absent => {
                        let original = marker.original_lexed();
                        servers.entries.push(Entry {
                            section: section_index,
                            backend: backend.clone(),
                            name: original.tokens[1].value.clone(),
                            address: original
                                .tokens
                                .get(2)
                                .map(|t| t.value.clone())
                                .unwrap_or_default(),
                            line: index,
                            marker_line: None,
                            marker: Some(marker),
                            absent: true,
                            inherited,
                            conditional: lines[index].conditional,
                        });
                    }
                    Some(marker) => previous_marker = Some((index, marker)),
                    None => {}
                },
                _ => {}
            }
        }
        if section.kind == SectionKind::Defaults {
            last_defaults = inherited;
            if let Some(name) = &section.name {
                named_defaults.insert(name.clone(), inherited);
            }
        }
    }
    servers
}

/// The marker on a comment-only line, if it is one.
fn comment_marker(document: &Document, index: usize) -> Option<Marker> {
    let line = &document.lines()[index];
    let comment = line.lexed.comment.as_ref()?;
    if !line.lexed.is_blank_or_comment() {
        return None;
    }
    let start = line.range.start;
    Marker::parse(&document.text()[start + comment.start..start + comment.end])
}
