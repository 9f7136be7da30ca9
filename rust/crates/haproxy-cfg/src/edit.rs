//! Plans a request: selects the servers, works out each server's new lines, and patches the text.

use std::ops::Range;

use crate::address::AddressQuery;
use crate::document::Document;
use crate::lexer::{lex, LexedLine};
use crate::marker::{state_text, Marker};
use crate::server::{self, Effective, Entry, Inherited, NotServer, Servers, Settings};
use crate::{Desired, Error, Plan, Request, ServerChange, Target, WeightSpec};

/// Highest weight HAProxy accepts.
const MAX_WEIGHT: u32 = 256;

/// Rejects requests that can never be satisfied, before looking at the file.
pub(crate) fn validate(desired: &Desired) -> Result<(), Error> {
    match desired {
        Desired::Weight(WeightSpec::Absolute(weight)) if *weight > MAX_WEIGHT => {
            Err(Error::Invalid(format!(
                "weight {weight} is out of range: HAProxy accepts 0 to {MAX_WEIGHT}"
            )))
        }
        Desired::Weight(WeightSpec::Percent(percent)) if *percent > 100 => Err(Error::Invalid(
            format!("weight {percent}% is out of range: use 0% to 100% of the original weight"),
        )),
        _ => Ok(()),
    }
}

/// Plans `request` against `source`; see [`crate::plan`].
pub(crate) fn plan(source: &str, request: &Request) -> Result<Plan, Error> {
    validate(&request.desired)?;
    let document = Document::parse(source);
    let servers = server::find(&document);
    let selected = select(&document, &servers, request)?;

    let mut edits = Vec::with_capacity(selected.len());
    for &index in &selected {
        edits.push(plan_entry(
            &document,
            &servers.entries[index],
            &request.desired,
        )?);
    }

    let mut output = String::with_capacity(source.len() + 256);
    let mut cursor = 0;
    for edit in &edits {
        output.push_str(&source[cursor..edit.range.start]);
        output.push_str(&edit.replacement);
        cursor = edit.range.end;
    }
    output.push_str(&source[cursor..]);

    let after_document = Document::parse(&output);
    let after_servers = server::find(&after_document);
    // Edits rewrite servers in place and absent servers stay listed, so the lists line up one to one.
    // Checked anyway: a mismatch would mean the edit damaged the file, and nothing must be half-done.
    if after_servers.entries.len() != servers.entries.len() {
        return Err(Error::Invalid(format!(
            "internal error: the edit would turn {} servers into {}; nothing was changed",
            servers.entries.len(),
            after_servers.entries.len()
        )));
    }
    let changes = selected
        .iter()
        .zip(edits)
        .map(|(&index, edit)| {
            let changed = edit.replacement != source[edit.range.clone()];
            ServerChange {
                before: servers.entries[index].info(&document),
                after: after_servers.entries[index].info(&after_document),
                changed,
                reload_required: changed && edit.touches_absent,
                notes: edit.notes,
            }
        })
        .collect();
    Ok(Plan { output, changes })
}

/// Indices (into `servers.entries`) of the servers the request designates.
fn select(document: &Document, servers: &Servers, request: &Request) -> Result<Vec<usize>, Error> {
    let sections = document.sections();
    if let Some(backend) = &request.backend {
        let exists = sections.iter().any(|section| {
            section.kind.holds_targets() && section.name.as_deref() == Some(backend.as_str())
        });
        if !exists {
            return Err(Error::NoSuchBackend(backend.clone()));
        }
    }
    let in_scope = |section: usize| {
        request
            .backend
            .as_deref()
            .is_none_or(|backend| sections[section].name.as_deref() == Some(backend))
    };
    let matcher = Matcher::new(&request.target);
    let matches: Vec<usize> = servers
        .entries
        .iter()
        .enumerate()
        .filter(|(_, entry)| in_scope(entry.section) && matcher.matches_server(entry))
        .map(|(index, _)| index)
        .collect();
    let wanted = || describe(request);
    if matches.is_empty() {
        let not_server = servers
            .not_servers
            .iter()
            .find(|line| in_scope(line.section) && matcher.matches_not_server(line));
        return Err(match not_server {
            Some(line) => Error::NotAServer {
                wanted: wanted(),
                keyword: line.keyword.clone(),
            },
            None => Error::NotFound { wanted: wanted() },
        });
    }
    if matches.len() > 1 && !request.all_matches {
        return Err(Error::Ambiguous {
            wanted: wanted(),
            candidates: candidates(&servers.entries, &matches),
        });
    }
    Ok(matches)
}

/// `backend/server`, plus the line number when one backend holds the same name twice.
fn candidates(entries: &[Entry], matches: &[usize]) -> Vec<String> {
    let label = |entry: &Entry| format!("{}/{}", entry.backend, entry.name);
    matches
        .iter()
        .map(|&index| {
            let entry = &entries[index];
            let duplicated = matches
                .iter()
                .filter(|&&other| label(&entries[other]) == label(entry))
                .count()
                > 1;
            if duplicated {
                format!("{} (line {})", label(entry), entry.line + 1)
            } else {
                label(entry)
            }
        })
        .collect()
}

/// What was asked for, in words, for error messages.
fn describe(request: &Request) -> String {
    let target = match &request.target {
        Target::Name(name) => format!("server '{name}'"),
        Target::Address(address) => format!("address '{address}'"),
    };
    match &request.backend {
        Some(backend) => format!("{target} in backend '{backend}'"),
        None => target,
    }
}

enum Matcher<'r> {
    Name(&'r str),
    Address(AddressQuery),
}

impl<'r> Matcher<'r> {
    fn new(target: &'r Target) -> Self {
        match target {
            Target::Name(name) => Self::Name(name),
            Target::Address(address) => Self::Address(AddressQuery::new(address)),
        }
    }

    fn matches_server(&self, entry: &Entry) -> bool {
        match self {
            Self::Name(name) => entry.name == *name,
            Self::Address(query) => query.matches(&entry.address),
        }
    }

    /// `server-template web 3 ...` stands for `web1`..`web3`; `default-server` only for itself.
    fn matches_not_server(&self, line: &NotServer) -> bool {
        match self {
            Self::Name(name) => {
                *name == line.name
                    || (line.keyword == "server-template"
                        && name.strip_prefix(line.name.as_str()).is_some_and(|rest| {
                            !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit())
                        }))
            }
            Self::Address(query) => line
                .address
                .as_deref()
                .is_some_and(|address| query.matches(address)),
        }
    }
}

/// The new text for one server's lines.
struct EntryEdit {
    /// Bytes of the marker line (if any) and the server line, endings included.
    range: Range<usize>,
    replacement: String,
    notes: Vec<String>,
    /// The server goes into or out of `absent`.
    touches_absent: bool,
}

fn plan_entry(document: &Document, entry: &Entry, desired: &Desired) -> Result<EntryEdit, Error> {
    let lines = document.lines();
    let server_line = &lines[entry.line];
    let range = lines[entry.first_line()].range.start..server_line.range.end;
    let content = document.content(entry.line);
    let indent = &content[server_line.lexed.indent.clone()];
    let current = &content[indent.len()..];
    let ending = document.ending(entry.line);
    let label = format!("{}/{}", entry.backend, entry.name);
    let mut notes = Vec::new();
    if entry.conditional {
        notes.push(format!(
            "{label} is inside a .if block: HAProxy only uses it when the condition holds"
        ));
    }

    let base = match &entry.marker {
        Some(marker) if entry.absent => marker.original.clone(),
        Some(marker) => {
            let expected = transform(&marker.original, &marker.desired, entry.inherited)
                .ok()
                .flatten();
            if expected.as_deref().unwrap_or(&marker.original) == current {
                marker.original.clone()
            } else {
                let (restored, what) = undo(current, marker, entry.inherited);
                notes.push(format!(
                    "{label}: the server line was edited by hand while autoheal had it in state '{}'; \
                     {what}, and the other edits were kept",
                    state_text(&marker.desired)
                ));
                restored
            }
        }
        None => current.to_owned(),
    };

    let replacement = match desired {
        Desired::Absent => format!("{indent}{}{ending}", Marker::render(desired, &base)),
        _ => match transform(&base, desired, entry.inherited)? {
            Some(changed_line) => {
                let marker = Marker::render(desired, &base);
                let marker_ending = marker_ending(document, entry.line, &marker);
                format!("{indent}{marker}{marker_ending}{indent}{changed_line}{ending}")
            }
            None => {
                if entry.marker.is_none() {
                    notes.extend(unmanaged_notes(&label, &base, desired, entry.inherited));
                }
                format!("{indent}{base}{ending}")
            }
        },
    };
    let touches_absent = entry.absent || *desired == Desired::Absent;
    Ok(EntryEdit {
        range,
        replacement,
        notes,
        touches_absent,
    })
}

/// The marker line takes the server line's ending. A last line without one borrows the ending used just
/// above it, so the marker does not glue onto the server line.
fn marker_ending(document: &Document, line: usize, marker: &str) -> &'static str {
    let own = document.ending(line);
    let borrowed = (0..line)
        .rev()
        .map(|index| document.ending(index))
        .find(|ending| !ending.is_empty());
    let ending = if own.is_empty() {
        borrowed.unwrap_or("\n")
    } else {
        own
    };
    // A marker ending in `\r` followed by `\n` would read back as a `\r\n` line without that `\r`.
    if ending == "\r\n" || marker.ends_with('\r') {
        "\r\n"
    } else {
        "\n"
    }
}

/// Why nothing changes on a server autoheal does not manage, when the configuration itself already has it
/// out of rotation.
fn unmanaged_notes(
    label: &str,
    line: &str,
    desired: &Desired,
    inherited: Inherited,
) -> Vec<String> {
    let effective = Effective::of(&lex(line), inherited);
    let mut notes = Vec::new();
    match desired {
        Desired::Enabled => {
            if effective.disabled {
                notes.push(format!(
                    "{label} is disabled by the configuration itself, not by autoheal: left as written"
                ));
            }
            if effective.weight == 0 {
                notes.push(format!(
                    "{label} has weight 0 in the configuration itself, not set by autoheal: left as written"
                ));
            }
        }
        Desired::Drain | Desired::Weight(_) => notes.push(format!(
            "{label} already has weight {} in the configuration: nothing to change",
            effective.weight
        )),
        Desired::Disabled => notes.push(format!(
            "{label} is already disabled in the configuration: nothing to change"
        )),
        Desired::Absent => {}
    }
    notes
}

/// The server line in state `desired`, or `None` when the line already is in that state. `Enabled` and
/// `Absent` leave the server line itself as it is (`Absent` comments it out, which the caller does).
fn transform(line: &str, desired: &Desired, inherited: Inherited) -> Result<Option<String>, Error> {
    let lexed = lex(line);
    let settings = Settings::scan(&lexed.tokens, 3);
    let effective = Effective::of(&lexed, inherited);
    match desired {
        Desired::Enabled | Desired::Absent => Ok(None),
        Desired::Disabled => Ok((!effective.disabled).then(|| append(line, &lexed, &["disabled"]))),
        Desired::Drain | Desired::Weight(_) => {
            let own = match settings.weight_keyword {
                None => None,
                Some(_) => Some(settings.weight_value(&lexed.tokens).ok_or_else(|| {
                    Error::Invalid(format!(
                        "the server line has 'weight' without a value: {line}"
                    ))
                })?),
            };
            let own_number = own.and_then(|token| token.value.parse::<u32>().ok());
            let target = match desired {
                Desired::Weight(WeightSpec::Absolute(weight)) => *weight,
                Desired::Weight(WeightSpec::Percent(percent)) => {
                    if own.is_some() && own_number.is_none() {
                        return Err(Error::Invalid(format!(
                            "cannot take {percent}% of a weight that is not a number: {line}"
                        )));
                    }
                    percent_of(effective.weight, *percent)
                }
                _ => 0,
            };
            let already = own.map_or(effective.weight == target, |_| own_number == Some(target));
            if already {
                return Ok(None);
            }
            let value = target.to_string();
            Ok(Some(match own {
                Some(token) => splice(line, token.span.clone(), &value),
                None => append(line, &lexed, &["weight", &value]),
            }))
        }
    }
}

/// `percent`% of `weight`, rounded to the nearest integer, but never 0 unless asked for 0%.
fn percent_of(weight: u32, percent: u32) -> u32 {
    let scaled = (u64::from(weight) * u64::from(percent) + 50) / 100;
    let scaled = u32::try_from(scaled).unwrap_or(u32::MAX);
    if percent > 0 {
        scaled.max(1)
    } else {
        0
    }
}

/// Restores, on a line edited by hand, only what autoheal changed. Returns the line and a description.
fn undo(current: &str, marker: &Marker, inherited: Inherited) -> (String, String) {
    let original = marker.original_lexed();
    let original_settings = Settings::scan(&original.tokens, 3);
    let lexed = lex(current);
    let settings = Settings::scan(&lexed.tokens, 3);
    match &marker.desired {
        Desired::Drain | Desired::Weight(_) => {
            let written = match &marker.desired {
                Desired::Weight(WeightSpec::Absolute(weight)) => *weight,
                Desired::Weight(WeightSpec::Percent(percent)) => {
                    percent_of(Effective::of(&original, inherited).weight, *percent)
                }
                _ => 0,
            };
            let keyword = settings.weight_keyword;
            match (keyword, settings.weight_value(&lexed.tokens)) {
                (Some(keyword), Some(value)) if value.value.parse() == Ok(written) => {
                    match original_settings.weight_value(&original.tokens) {
                        Some(original_value) => (
                            splice(current, value.span.clone(), &marker.original[original_value.span.clone()]),
                            format!("restored the original weight {}", original_value.value),
                        ),
                        None => (
                            splice(current, lexed.gap_before(keyword).start..value.span.end, ""),
                            "removed the weight autoheal had added".to_owned(),
                        ),
                    }
                }
                _ => (
                    current.to_owned(),
                    format!("the weight autoheal had set ({written}) was changed by hand, so it was left as is"),
                ),
            }
        }
        Desired::Disabled => match settings.disabled_keyword {
            Some(keyword) if original_settings.disabled_keyword.is_none() => (
                splice(
                    current,
                    lexed.gap_before(keyword).start..lexed.tokens[keyword].span.end,
                    "",
                ),
                "removed the 'disabled' autoheal had added".to_owned(),
            ),
            _ => (
                current.to_owned(),
                "the 'disabled' autoheal had added was already removed by hand".to_owned(),
            ),
        },
        // Absent markers stand alone, and `enabled` is never recorded.
        Desired::Absent | Desired::Enabled => (current.to_owned(), "nothing to restore".to_owned()),
    }
}

fn splice(line: &str, range: Range<usize>, replacement: &str) -> String {
    let mut out = String::with_capacity(line.len() + replacement.len());
    out.push_str(&line[..range.start]);
    out.push_str(replacement);
    out.push_str(&line[range.end..]);
    out
}

/// Appends words after the last token (before trailing whitespace and comment), separated the way the
/// line separates its own words: a tab if its last separator starts with one, else a space.
fn append(line: &str, lexed: &LexedLine, words: &[&str]) -> String {
    let last = lexed.tokens.len() - 1;
    let gap = lexed.gap_before(last);
    let separator = if line.as_bytes()[gap.start] == b'\t' {
        "\t"
    } else {
        " "
    };
    let end = lexed.tokens[last].span.end;
    let mut insertion = String::new();
    for word in words {
        insertion.push_str(separator);
        insertion.push_str(word);
    }
    splice(line, end..end, &insertion)
}
