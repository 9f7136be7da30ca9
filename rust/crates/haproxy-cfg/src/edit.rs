//! Plans a request: selects the servers, works out each server's new lines, and patches the text.

use std::ops::Range;

use crate::address::AddressQuery;
use crate::lexer::{lex, LexedLine};
use crate::marker::{state_text, Marker};
use crate::server::{self, Effective, Entry, Inherited, NotServer, Servers, Settings};
use crate::{Desired, Error, Patch, Plan, Request, ServerChange, SetBy, Target, WeightSpec};

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
    let patch = plan_all(source, std::slice::from_ref(request), SetBy::Operator)
        .map_err(|(_, error)| error)?;
    Ok(Plan {
        output: patch.render(source),
        changes: patch
            .changes
            .into_iter()
            .map(|(_, change)| change)
            .collect(),
    })
}

/// Plans every request against `source` in one walk; see [`crate::plan_all`].
pub(crate) fn plan_all(
    source: &str,
    requests: &[Request],
    set_by: SetBy,
) -> Result<Patch, (usize, Error)> {
    for (index, request) in requests.iter().enumerate() {
        validate(&request.desired).map_err(|error| (index, error))?;
        let (Target::Name(wanted) | Target::Address(wanted)) = &request.target;
        if wanted.trim().is_empty() {
            return Err((
                index,
                Error::Invalid("the server name or address is empty".to_owned()),
            ));
        }
    }
    let matchers: Vec<Matcher> = requests.iter().map(|r| Matcher::new(&r.target)).collect();
    let designates = |request: &Request, matcher: &Matcher, entry: &Entry| {
        request
            .backend
            .as_deref()
            .is_none_or(|wanted| entry.backend == wanted)
            && matcher.matches_server(entry)
    };
    // Only the servers the requests designate are kept: a large file is walked, never stored. When every
    // request names its server, server lines that hold none of the names are not even lexed.
    let name_hints: Option<Vec<&str>> = requests
        .iter()
        .map(|request| match &request.target {
            Target::Name(name) => Some(name.as_str()),
            Target::Address(_) => None,
        })
        .collect();
    let servers = server::find(source, name_hints.as_deref(), |entry| {
        requests
            .iter()
            .zip(&matchers)
            .any(|(request, matcher)| designates(request, matcher, entry))
    });
    // Which request owns each entry found: a server may be designated by one request only.
    let mut owner: Vec<Option<usize>> = vec![None; servers.entries.len()];
    for (index, (request, matcher)) in requests.iter().zip(&matchers).enumerate() {
        let mine: Vec<usize> = (0..servers.entries.len())
            .filter(|&at| designates(request, matcher, &servers.entries[at]))
            .collect();
        let entries: Vec<&Entry> = mine.iter().map(|&at| &servers.entries[at]).collect();
        select(&entries, &servers, request, matcher).map_err(|error| (index, error))?;
        for at in mine {
            if let Some(earlier) = owner[at] {
                let entry = &servers.entries[at];
                return Err((
                    index,
                    Error::Overlap {
                        server: format!("{}/{}", entry.backend, entry.name),
                        earlier,
                    },
                ));
            }
            owner[at] = Some(index);
        }
    }

    // Lines added (or removed) above the current server by earlier edits, to number the lines after.
    let mut line_shift = 0isize;
    let mut edits = Vec::with_capacity(servers.entries.len());
    let mut changes = Vec::with_capacity(servers.entries.len());
    for (entry, owner) in servers.entries.iter().zip(owner) {
        let Some(index) = owner else { continue };
        let edit =
            plan_entry(entry, &requests[index].desired, set_by).map_err(|error| (index, error))?;
        let old_lines = source[entry.range.clone()].split_inclusive('\n').count();
        let new_lines = edit.replacement.split_inclusive('\n').count();
        let first_line = entry.first_line.saturating_add_signed(line_shift);
        // The replacement is a server line (possibly under its marker) or an absent marker, so it
        // always reads back as one server; checked so that a defect can never lose a server.
        let after = server::reread(&edit.replacement, entry, first_line).ok_or_else(|| {
            (
                index,
                Error::Invalid(format!(
                    "internal error: the new text for {}/{} does not read back as a server; \
                     nothing was changed",
                    entry.backend, entry.name
                )),
            )
        })?;
        line_shift += new_lines as isize - old_lines as isize;
        let changed = edit.replacement != source[entry.range.clone()];
        changes.push((
            index,
            ServerChange {
                before: entry.info(),
                after: after.info(),
                changed,
                reload_required: changed && edit.touches_absent,
                notes: edit.notes,
            },
        ));
        if changed {
            edits.push((entry.range.clone(), edit.replacement));
        }
    }
    let touched: Vec<&str> = changes
        .iter()
        .map(|(_, change)| change.before.backend.as_str())
        .collect();
    let section_servers = servers
        .backends
        .iter()
        .filter(|span| touched.contains(&span.name.as_ref()))
        .flat_map(|span| server::list_section(source, span))
        .collect();
    Ok(Patch {
        edits,
        changes,
        section_servers,
    })
}

/// Checks that the request designates the servers found: the backend exists, something matched, and
/// several matches were asked for.
fn select(
    entries: &[&Entry],
    servers: &Servers,
    request: &Request,
    matcher: &Matcher,
) -> Result<(), Error> {
    if let Some(backend) = &request.backend {
        if !servers
            .backends
            .iter()
            .any(|span| span.name == backend.as_str())
        {
            return Err(Error::NoSuchBackend(backend.clone()));
        }
    }
    let wanted = || describe(request);
    if entries.is_empty() {
        let not_server = servers.not_servers.iter().find(|line| {
            request
                .backend
                .as_deref()
                .is_none_or(|backend| line.backend == backend)
                && matcher.matches_not_server(line)
        });
        return Err(match not_server {
            Some(line) => Error::NotAServer {
                wanted: wanted(),
                keyword: line.keyword.to_owned(),
            },
            None => Error::NotFound { wanted: wanted() },
        });
    }
    if entries.len() > 1 && !request.all_matches {
        return Err(Error::Ambiguous {
            wanted: wanted(),
            candidates: candidates(entries),
        });
    }
    Ok(())
}

/// `backend/server`, plus the line number when one backend holds the same name twice.
fn candidates(entries: &[&Entry]) -> Vec<String> {
    let label = |entry: &Entry| format!("{}/{}", entry.backend, entry.name);
    entries
        .iter()
        .map(|entry| {
            let duplicated = entries
                .iter()
                .filter(|other| label(other) == label(entry))
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
                        && name.strip_prefix(line.name.as_ref()).is_some_and(|rest| {
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
    /// Replaces the entry's range (marker line if any, and server line, endings included).
    replacement: String,
    notes: Vec<String>,
    /// The server goes into or out of `absent`.
    touches_absent: bool,
}

fn plan_entry(entry: &Entry, desired: &Desired, set_by: SetBy) -> Result<EntryEdit, Error> {
    let indent = &entry.content[..entry.indent_len];
    let current = &entry.content[entry.indent_len..];
    let ending = entry.ending;
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
        Desired::Absent => format!("{indent}{}{ending}", Marker::render(desired, set_by, &base)),
        _ => match transform(&base, desired, entry.inherited)? {
            Some(changed_line) => {
                let marker = Marker::render(desired, set_by, &base);
                let marker_ending = marker_ending(entry, &marker);
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
        replacement,
        notes,
        touches_absent,
    })
}

/// The marker line takes the server line's ending. A last line without one borrows the ending of the
/// line above (only the last line of a file lacks one), so the marker does not glue onto the server line.
fn marker_ending(entry: &Entry, marker: &str) -> &'static str {
    let ending = if entry.ending.is_empty() {
        entry.ending_above
    } else {
        entry.ending
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

/// `percent`% of `weight`, rounded to the nearest integer, but never 0 unless asked for 0% (or of 0).
fn percent_of(weight: u32, percent: u32) -> u32 {
    let scaled = (u64::from(weight) * u64::from(percent) + 50) / 100;
    let scaled = u32::try_from(scaled).unwrap_or(u32::MAX);
    // A server the configuration already drains (weight 0) stays at 0.
    if percent > 0 && weight > 0 {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory;

    const CONFIG: &str = "\
global
    log stdout local0

defaults
    mode http

backend app
    balance roundrobin
    server web1 10.0.0.1:80 check weight 10
    server web2 10.0.0.2:80 check # second
    server\tweb3\t10.0.0.3:80\tcheck

backend api
    server web1 10.0.0.1:8080 check
";

    fn request(backend: Option<&str>, target: Target, desired: Desired) -> Request {
        Request {
            backend: backend.map(str::to_owned),
            target,
            all_matches: false,
            desired,
        }
    }

    fn named(backend: &str, name: &str, desired: Desired) -> Request {
        request(Some(backend), Target::Name(name.to_owned()), desired)
    }

    fn apply(source: &str, request: &Request) -> Plan {
        plan(source, request).unwrap_or_else(|error| panic!("{request:?}: {error}"))
    }

    /// Applies the request, checks that a second application changes nothing, and returns the output.
    fn apply_twice(source: &str, request: &Request) -> String {
        let first = apply(source, request);
        let second = apply(&first.output, request);
        assert_eq!(
            second.output, first.output,
            "second {request:?} changed the file"
        );
        assert!(second.changes.iter().all(|change| !change.changed));
        first.output
    }

    /// The lines that differ, for precise expectations.
    fn changed_lines(before: &str, after: &str) -> (Vec<String>, Vec<String>) {
        let old: Vec<&str> = before.split_inclusive('\n').collect();
        let new: Vec<&str> = after.split_inclusive('\n').collect();
        let prefix = old.iter().zip(&new).take_while(|(a, b)| a == b).count();
        let suffix = old[prefix..]
            .iter()
            .rev()
            .zip(new[prefix..].iter().rev())
            .take_while(|(a, b)| a == b)
            .count();
        let slice = |lines: &[&str], len: usize| {
            lines[prefix..len - suffix]
                .iter()
                .map(|s| (*s).to_owned())
                .collect()
        };
        (slice(&old, old.len()), slice(&new, new.len()))
    }

    #[test]
    fn drain_replaces_an_existing_weight_and_records_the_original() {
        let output = apply_twice(CONFIG, &named("app", "web1", Desired::Drain));
        let (old, new) = changed_lines(CONFIG, &output);
        assert_eq!(old, ["    server web1 10.0.0.1:80 check weight 10\n"]);
        assert_eq!(
            new,
            [
                "    #autoheal drain was: server web1 10.0.0.1:80 check weight 10\n",
                "    server web1 10.0.0.1:80 check weight 0\n",
            ]
        );
    }

    #[test]
    fn drain_appends_weight_before_the_comment_using_the_line_separator() {
        let output = apply_twice(CONFIG, &named("app", "web2", Desired::Drain));
        let (_, new) = changed_lines(CONFIG, &output);
        assert_eq!(
            new[1],
            "    server web2 10.0.0.2:80 check weight 0 # second\n"
        );
        let output = apply_twice(CONFIG, &named("app", "web3", Desired::Drain));
        let (_, new) = changed_lines(CONFIG, &output);
        assert_eq!(
            new,
            [
                "    #autoheal drain was: server\tweb3\t10.0.0.3:80\tcheck\n",
                "    server\tweb3\t10.0.0.3:80\tcheck\tweight\t0\n"
            ]
        );
    }

    #[test]
    fn disabled_appends_the_keyword() {
        let output = apply_twice(CONFIG, &named("app", "web2", Desired::Disabled));
        let (_, new) = changed_lines(CONFIG, &output);
        assert_eq!(
            new,
            [
                "    #autoheal disabled was: server web2 10.0.0.2:80 check # second\n",
                "    server web2 10.0.0.2:80 check disabled # second\n"
            ]
        );
    }

    #[test]
    fn absent_turns_the_line_into_a_marked_comment_and_enabled_brings_it_back() {
        let absent = apply(CONFIG, &named("app", "web1", Desired::Absent));
        let (old, new) = changed_lines(CONFIG, &absent.output);
        assert_eq!(old, ["    server web1 10.0.0.1:80 check weight 10\n"]);
        assert_eq!(
            new,
            ["    #autoheal absent was: server web1 10.0.0.1:80 check weight 10\n"]
        );
        assert!(absent.changes[0].reload_required);
        assert!(absent.changes[0].after.state.absent);
        assert_eq!(absent.changes[0].after.state.managed, Some(Desired::Absent));
        assert_eq!(
            apply_twice(CONFIG, &named("app", "web1", Desired::Absent)),
            absent.output
        );

        let back = apply(&absent.output, &named("app", "web1", Desired::Enabled));
        assert_eq!(back.output, CONFIG);
        assert!(back.changes[0].reload_required);
        assert!(!back.changes[0].after.state.absent);
    }

    #[test]
    fn weights_absolute_and_percent_of_the_original() {
        let output = apply_twice(
            CONFIG,
            &named("app", "web1", Desired::Weight(WeightSpec::Percent(50))),
        );
        let (_, new) = changed_lines(CONFIG, &output);
        assert_eq!(
            new,
            [
                "    #autoheal weight 50% was: server web1 10.0.0.1:80 check weight 10\n",
                "    server web1 10.0.0.1:80 check weight 5\n"
            ]
        );
        // 25% of 10 is 2.5: rounds to 3. Relative to the original, not to the current 5.
        let output = apply_twice(
            &output,
            &named("app", "web1", Desired::Weight(WeightSpec::Percent(25))),
        );
        assert!(output
            .contains("    #autoheal weight 25% was: server web1 10.0.0.1:80 check weight 10\n"));
        assert!(output.contains("    server web1 10.0.0.1:80 check weight 3\n"));
        let output = apply_twice(
            &output,
            &named("app", "web1", Desired::Weight(WeightSpec::Absolute(7))),
        );
        assert!(output
            .contains("    #autoheal weight 7 was: server web1 10.0.0.1:80 check weight 10\n"));
        assert!(output.contains("    server web1 10.0.0.1:80 check weight 7\n"));
        assert_eq!(
            apply(&output, &named("app", "web1", Desired::Enabled)).output,
            CONFIG
        );
    }

    #[test]
    fn small_percentages_never_round_to_zero() {
        assert_eq!(percent_of(1, 1), 1);
        assert_eq!(percent_of(1, 49), 1);
        assert_eq!(percent_of(3, 50), 2);
        assert_eq!(percent_of(256, 100), 256);
        assert_eq!(percent_of(10, 0), 0);
        assert_eq!(percent_of(0, 50), 0);
        // web2 has the default weight 1: 10% of it stays 1, so nothing changes.
        let planned = apply(
            CONFIG,
            &named("app", "web2", Desired::Weight(WeightSpec::Percent(10))),
        );
        assert_eq!(planned.output, CONFIG);
        assert!(!planned.changes[0].changed);
    }

    #[test]
    fn transitions_between_states_keep_the_true_original() {
        let original = "    server web1 10.0.0.1:80 check weight 10\n";
        let mut text = CONFIG.to_owned();
        for desired in [
            Desired::Drain,
            Desired::Disabled,
            Desired::Absent,
            Desired::Weight(WeightSpec::Percent(50)),
            Desired::Absent,
            Desired::Drain,
            Desired::Weight(WeightSpec::Absolute(3)),
            Desired::Disabled,
        ] {
            text = apply_twice(&text, &named("app", "web1", desired.clone()));
            let marker = Marker::render(&desired, SetBy::Operator, original.trim());
            assert!(text.contains(&marker), "{desired:?}: {text}");
            assert_eq!(text.matches("#autoheal").count(), 1, "{desired:?}: {text}");
            let info = inventory(&text)
                .into_iter()
                .find(|s| s.backend == "app" && s.name == "web1");
            let state = info.expect("web1 still listed").state;
            assert_eq!(state.managed, Some(desired.clone()));
            assert_eq!(state.original_weight, 10);
        }
        assert_eq!(
            apply_twice(&text, &named("app", "web1", Desired::Enabled)),
            CONFIG
        );
    }

    #[test]
    fn disabled_over_drain_shows_only_disabled() {
        let drained = apply(CONFIG, &named("app", "web1", Desired::Drain)).output;
        let disabled = apply(&drained, &named("app", "web1", Desired::Disabled)).output;
        assert!(disabled.contains("    server web1 10.0.0.1:80 check weight 10 disabled\n"));
        let info = &apply(&disabled, &named("app", "web1", Desired::Disabled)).changes[0].after;
        assert_eq!((info.state.weight, info.state.disabled), (10, true));
    }

    #[test]
    fn percent_100_and_enabled_on_unmanaged_change_nothing() {
        for desired in [
            Desired::Weight(WeightSpec::Percent(100)),
            Desired::Enabled,
            Desired::Weight(WeightSpec::Absolute(10)),
        ] {
            let planned = apply(CONFIG, &named("app", "web1", desired));
            assert_eq!(planned.output, CONFIG);
            assert!(!planned.changes[0].changed);
        }
    }

    #[test]
    fn enabled_restores_only_autoheal_changes_when_the_line_was_edited() {
        let drained = apply(CONFIG, &named("app", "web1", Desired::Drain)).output;
        let edited = drained.replace(
            "    server web1 10.0.0.1:80 check weight 0\n",
            "    server web1 10.0.0.1:80 check weight 0 maxconn 50\n",
        );
        let planned = apply(&edited, &named("app", "web1", Desired::Enabled));
        assert_eq!(
            planned.output,
            CONFIG.replace(
                "    server web1 10.0.0.1:80 check weight 10\n",
                "    server web1 10.0.0.1:80 check weight 10 maxconn 50\n"
            )
        );
        let note = planned.changes[0].notes.join(" ");
        assert!(
            note.contains("edited by hand") && note.contains("restored the original weight 10"),
            "{note}"
        );

        // An appended weight is removed, an appended `disabled` too.
        let drained = apply(CONFIG, &named("app", "web2", Desired::Drain)).output;
        let edited = drained.replace(
            "check weight 0 # second",
            "check weight 0 inter 2s # second",
        );
        let restored = apply(&edited, &named("app", "web2", Desired::Enabled)).output;
        assert!(
            restored.contains("    server web2 10.0.0.2:80 check inter 2s # second\n"),
            "{restored}"
        );
        assert!(!restored.contains("#autoheal"));
        let disabled = apply(CONFIG, &named("app", "web2", Desired::Disabled)).output;
        let edited = disabled.replace("check disabled # second", "check disabled rise 3 # second");
        let restored = apply(&edited, &named("app", "web2", Desired::Enabled)).output;
        assert!(
            restored.contains("    server web2 10.0.0.2:80 check rise 3 # second\n"),
            "{restored}"
        );
    }

    #[test]
    fn a_weight_changed_by_hand_is_kept() {
        let drained = apply(CONFIG, &named("app", "web1", Desired::Drain)).output;
        let edited = drained.replace("check weight 0\n", "check weight 4\n");
        let planned = apply(&edited, &named("app", "web1", Desired::Enabled));
        assert!(planned
            .output
            .contains("    server web1 10.0.0.1:80 check weight 4\n"));
        assert!(!planned.output.contains("#autoheal"));
        assert!(planned.changes[0]
            .notes
            .join(" ")
            .contains("changed by hand"));
    }

    #[test]
    fn what_the_user_wrote_is_left_alone() {
        let config = "backend b\n  server s1 a:1 weight 0\n  server s2 a:2 disabled\n";
        let drain = apply(config, &named("b", "s1", Desired::Drain));
        assert_eq!(drain.output, config);
        assert!(drain.changes[0].notes[0].contains("already has weight 0"));
        let disable = apply(config, &named("b", "s2", Desired::Disabled));
        assert_eq!(disable.output, config);
        assert!(disable.changes[0].notes[0].contains("already disabled"));
        for name in ["s1", "s2"] {
            let enable = apply(config, &named("b", name, Desired::Enabled));
            assert_eq!(enable.output, config);
            assert!(!enable.changes[0].changed);
            assert!(
                enable.changes[0].notes[0].contains("configuration itself"),
                "{:?}",
                enable.changes[0].notes
            );
        }
    }

    #[test]
    fn default_server_settings_count() {
        let config = "\
defaults base
  default-server weight 20
defaults other
  default-server disabled
backend b from base
  server s1 a:1
  default-server weight 40 backup
  server s2 a:2
backend c
  server s3 a:3
  server s4 a:4 enabled
";
        let servers = inventory(config);
        let states: Vec<(u32, bool, bool)> = servers
            .iter()
            .map(|s| (s.state.weight, s.state.disabled, s.state.backup))
            .collect();
        assert_eq!(
            states,
            [
                (20, false, false),
                (40, false, true),
                (1, true, false),
                (1, false, false)
            ]
        );
        // 50% of the inherited 20 is 10, written on the line.
        let output = apply_twice(
            config,
            &named("b", "s1", Desired::Weight(WeightSpec::Percent(50))),
        );
        assert!(output
            .contains("  #autoheal weight 50% was: server s1 a:1\n  server s1 a:1 weight 10\n"));
        // Already disabled by `default-server disabled` of the defaults in effect.
        assert_eq!(
            apply(config, &named("c", "s3", Desired::Disabled)).output,
            config
        );
        // `enabled` on the line overrides it, so `disabled` is appended after it.
        assert!(apply(config, &named("c", "s4", Desired::Disabled))
            .output
            .contains("  server s4 a:4 enabled disabled\n"));
    }

    #[test]
    fn crlf_and_missing_final_newline_are_kept() {
        let config = "backend b\r\n  server s1 a:1\r\n  server s2 a:2";
        let drained = apply_twice(config, &named("b", "s2", Desired::Drain));
        assert_eq!(
            drained,
            "backend b\r\n  server s1 a:1\r\n  #autoheal drain was: server s2 a:2\r\n  server s2 a:2 weight 0"
        );
        assert_eq!(
            apply(&drained, &named("b", "s2", Desired::Enabled)).output,
            config
        );
        let drained = apply_twice(config, &named("b", "s1", Desired::Drain));
        assert!(drained
            .contains("  #autoheal drain was: server s1 a:1\r\n  server s1 a:1 weight 0\r\n"));
        let absent = apply_twice(config, &named("b", "s2", Desired::Absent));
        assert!(absent.ends_with("\r\n  #autoheal absent was: server s2 a:2"));
        assert_eq!(
            apply(&absent, &named("b", "s2", Desired::Enabled)).output,
            config
        );
        // A single line without any newline at all gets `\n` for its marker.
        let lone = "backend b\n  server s a:1";
        let lone_bare = &lone[10..];
        assert!(apply(lone, &named("b", "s", Desired::Drain))
            .output
            .ends_with(&format!(
                "#autoheal drain was: {}\n  server s a:1 weight 0",
                lone_bare.trim()
            )));
    }

    #[test]
    fn trailing_carriage_return_at_end_of_file_survives_a_marker() {
        let config = "backend b\n server s a:1\r";
        let drained = apply_twice(config, &named("b", "s", Desired::Drain));
        assert_eq!(
            apply(&drained, &named("b", "s", Desired::Enabled)).output,
            config
        );
    }

    #[test]
    fn several_matches_need_all_matches() {
        let wanted = request(None, Target::Name("web1".into()), Desired::Drain);
        let error = plan(CONFIG, &wanted).expect_err("web1 is in two backends");
        assert_eq!(
            error,
            Error::Ambiguous {
                wanted: "server 'web1'".into(),
                candidates: vec!["app/web1".into(), "api/web1".into()]
            }
        );
        assert_eq!(
            error.to_string(),
            "server 'web1' matches 2 servers: app/web1, api/web1; name the backend, or set all_matches to act on all of them"
        );
        let all = Request {
            all_matches: true,
            ..wanted
        };
        let planned = apply(CONFIG, &all);
        assert_eq!(planned.changes.len(), 2);
        assert_eq!(
            planned
                .output
                .matches("#autoheal drain was: server web1")
                .count(),
            2
        );
        let enable = Request {
            desired: Desired::Enabled,
            ..all
        };
        assert_eq!(apply(&planned.output, &enable).output, CONFIG);
    }

    #[test]
    fn duplicate_names_in_one_backend_are_ambiguous_with_line_numbers() {
        let config = "backend b\n  server s a:1\n  server s a:2\n";
        let error = plan(config, &named("b", "s", Desired::Drain)).expect_err("duplicate");
        assert_eq!(
            error,
            Error::Ambiguous {
                wanted: "server 's' in backend 'b'".into(),
                candidates: vec!["b/s (line 2)".into(), "b/s (line 3)".into()]
            }
        );
    }

    #[test]
    fn by_address_across_backends() {
        let by_address =
            |address: &str| request(None, Target::Address(address.into()), Desired::Drain);
        let planned = apply(CONFIG, &by_address("10.0.0.2"));
        assert_eq!(
            (
                planned.changes[0].before.backend.as_str(),
                planned.changes[0].before.name.as_str()
            ),
            ("app", "web2")
        );
        let planned = apply(CONFIG, &by_address("10.0.0.1:8080"));
        assert_eq!(planned.changes[0].before.backend, "api");
        assert!(matches!(
            plan(CONFIG, &by_address("10.0.0.1")),
            Err(Error::Ambiguous { .. })
        ));
        let scoped = request(
            Some("app"),
            Target::Address("10.0.0.1".into()),
            Desired::Drain,
        );
        assert_eq!(apply(CONFIG, &scoped).changes[0].before.name, "web1");
        assert_eq!(
            plan(CONFIG, &by_address("10.9.9.9"))
                .expect_err("nothing there")
                .to_string(),
            "no server matches address '10.9.9.9'"
        );
    }

    #[test]
    fn names_with_colons_and_names_that_look_like_addresses() {
        let config = "backend be_http:ns:route\n  server pod:ns:name:192.168.1.123:8082 192.168.1.123:8080 weight 256\n\
                      listen stats\n  server 127.0.0.001 127.0.0.1:8080\n";
        let by_name = named(
            "be_http:ns:route",
            "pod:ns:name:192.168.1.123:8082",
            Desired::Drain,
        );
        assert!(apply(config, &by_name)
            .output
            .contains("  server pod:ns:name:192.168.1.123:8082 192.168.1.123:8080 weight 0\n"));
        let planned = apply(
            config,
            &request(None, Target::Name("127.0.0.001".into()), Desired::Drain),
        );
        assert_eq!(planned.changes[0].before.address, "127.0.0.1:8080");
        // The address `127.0.0.001` is not on any server line: names are not addresses.
        assert!(matches!(
            plan(
                config,
                &request(None, Target::Address("127.0.0.001".into()), Desired::Drain)
            ),
            Err(Error::NotFound { .. })
        ));
        let planned = apply(
            config,
            &request(
                None,
                Target::Address("192.168.1.123".into()),
                Desired::Drain,
            ),
        );
        assert_eq!(planned.changes[0].before.backend, "be_http:ns:route");
    }

    #[test]
    fn quoted_names_and_addresses_are_matched_unquoted() {
        let config = "backend 'b'\n  server \"s 1\" unix@\"/tmp/http.socket\" send-proxy\n";
        let planned = apply(config, &named("b", "s 1", Desired::Drain));
        assert_eq!(planned.changes[0].before.address, "unix@/tmp/http.socket");
        assert!(planned
            .output
            .contains("  server \"s 1\" unix@\"/tmp/http.socket\" send-proxy weight 0\n"));
        // Escapes too: the raw line does not contain the name as the request spells it.
        let escaped = "backend b\n  server s\\ 1 a:1\n  server s\\x41 a:2\n";
        let drained = apply(escaped, &named("b", "s 1", Desired::Drain)).output;
        assert!(
            drained.contains("  server s\\ 1 a:1 weight 0\n"),
            "{drained}"
        );
        let drained = apply(escaped, &named("b", "sA", Desired::Drain)).output;
        assert!(
            drained.contains("  server s\\x41 a:2 weight 0\n"),
            "{drained}"
        );
        let by_socket = request(
            None,
            Target::Address("/tmp/http.socket".into()),
            Desired::Disabled,
        );
        assert_eq!(apply(config, &by_socket).changes.len(), 1);
    }

    #[test]
    fn templates_and_default_server_are_not_servers() {
        let config = "backend b\n  default-server check\n  server-template web 3 app.local:80\n  server real a:1\n";
        for (target, keyword) in [
            (Target::Name("web".into()), "server-template"),
            (Target::Name("web2".into()), "server-template"),
            (Target::Address("app.local".into()), "server-template"),
            (Target::Name("default-server".into()), "default-server"),
        ] {
            let error = plan(config, &request(None, target.clone(), Desired::Drain))
                .expect_err("not a server");
            assert!(
                matches!(&error, Error::NotAServer { keyword: k, .. } if k == keyword),
                "{target:?}: {error}"
            );
        }
        assert_eq!(
            plan(config, &named("b", "web1", Desired::Drain)).expect_err("template").to_string(),
            "server 'web1' in backend 'b' designates a 'server-template' line, not a server; autoheal only edits 'server' lines"
        );
        assert!(matches!(
            plan(config, &named("b", "webx", Desired::Drain)),
            Err(Error::NotFound { .. })
        ));
    }

    #[test]
    fn empty_targets_are_invalid() {
        let config = "backend b\n  server s\n";
        for target in [Target::Name(String::new()), Target::Address(" ".into())] {
            let error = plan(config, &request(None, target, Desired::Drain)).expect_err("empty");
            assert_eq!(
                error.to_string(),
                "invalid request: the server name or address is empty"
            );
        }
    }

    #[test]
    fn missing_backend_and_invalid_weights() {
        assert_eq!(
            plan(CONFIG, &named("nope", "web1", Desired::Drain)),
            Err(Error::NoSuchBackend("nope".into()))
        );
        assert_eq!(
            Error::NoSuchBackend("nope".into()).to_string(),
            "no backend or listen section is named 'nope'"
        );
        let error = plan(
            CONFIG,
            &named("app", "web1", Desired::Weight(WeightSpec::Absolute(257))),
        )
        .expect_err("range");
        assert_eq!(
            error.to_string(),
            "invalid request: weight 257 is out of range: HAProxy accepts 0 to 256"
        );
        let error = plan(
            CONFIG,
            &named("app", "web1", Desired::Weight(WeightSpec::Percent(101))),
        )
        .expect_err("range");
        assert!(matches!(error, Error::Invalid(_)));
        // A frontend is not a backend.
        let config = "frontend f\n  bind :80\nbackend b\n  server s a:1\n";
        assert_eq!(
            plan(config, &named("f", "s", Desired::Drain)),
            Err(Error::NoSuchBackend("f".into()))
        );
        assert_eq!(
            plan(config, &named("b", "t", Desired::Drain))
                .expect_err("no t")
                .to_string(),
            "no server matches server 't' in backend 'b'"
        );
    }

    #[test]
    fn weights_that_cannot_be_read() {
        let config = "backend b\n  server s a:1 weight ${W}\n  server t a:2 weight\n";
        let drained = apply_twice(config, &named("b", "s", Desired::Drain));
        assert!(drained.contains("  server s a:1 weight 0\n"));
        assert_eq!(
            apply(&drained, &named("b", "s", Desired::Enabled)).output,
            config
        );
        assert!(matches!(
            plan(
                config,
                &named("b", "s", Desired::Weight(WeightSpec::Percent(50)))
            ),
            Err(Error::Invalid(_))
        ));
        assert!(matches!(
            plan(config, &named("b", "t", Desired::Drain)),
            Err(Error::Invalid(_))
        ));
    }

    #[test]
    fn servers_in_peers_ring_and_frontends_are_not_targets() {
        let config = "peers p\n  server s 127.0.0.1:1000\nring r\n  server s 127.0.0.1:514\nfrontend f\n  server s a:1\n";
        assert!(inventory(config).is_empty());
        assert!(matches!(
            plan(
                config,
                &request(None, Target::Name("s".into()), Desired::Drain)
            ),
            Err(Error::NotFound { .. })
        ));
    }

    #[test]
    fn opaque_lines_are_never_touched() {
        let config = "backend b\n  server bad \"a:1\n  server s a:1 \\\n#autoheal drain was: nonsense\n  server ok a:2\n";
        let servers = inventory(config);
        assert_eq!(servers.len(), 1, "{servers:?}");
        assert_eq!(servers[0].state.managed, None);
        let drained = apply(config, &named("b", "ok", Desired::Drain)).output;
        assert!(drained.starts_with(
            "backend b\n  server bad \"a:1\n  server s a:1 \\\n#autoheal drain was: nonsense\n"
        ));
        assert_eq!(
            apply(&drained, &named("b", "ok", Desired::Enabled)).output,
            config
        );
    }

    #[test]
    fn conditional_servers_are_servers_with_a_note() {
        let config = "backend b\n.if defined(X)\n  server s a:1\n.endif\n";
        let planned = apply(config, &named("b", "s", Desired::Drain));
        assert!(planned.output.contains(".if defined(X)\n  #autoheal drain was: server s a:1\n  server s a:1 weight 0\n.endif\n"));
        assert!(planned.changes[0].notes[0].contains(".if block"));
    }

    #[test]
    fn a_marker_for_another_name_is_not_ours() {
        let config =
            "backend b\n  #autoheal drain was: server other a:1\n  server s a:1 weight 0\n";
        let servers = inventory(config);
        assert_eq!(servers[0].state.managed, None);
        assert_eq!(
            apply(config, &named("b", "s", Desired::Enabled)).output,
            config
        );
    }

    #[test]
    fn inventory_reports_marked_state() {
        let drained = apply(CONFIG, &named("app", "web1", Desired::Drain)).output;
        let absent = apply(&drained, &named("api", "web1", Desired::Absent)).output;
        let servers = inventory(&absent);
        assert_eq!(servers.len(), 4);
        let web1 = &servers[0];
        assert_eq!(
            (web1.line, web1.state.weight, web1.state.original_weight),
            (10, 0, 10)
        );
        assert_eq!(web1.state.managed, Some(Desired::Drain));
        let api = &servers[3];
        assert_eq!(
            (api.backend.as_str(), api.line, api.state.absent),
            ("api", 15, true)
        );
        assert_eq!(api.address, "10.0.0.1:8080");
        // Absent servers can still be found by address.
        let back = apply(
            &absent,
            &request(
                None,
                Target::Address("10.0.0.1:8080".into()),
                Desired::Enabled,
            ),
        );
        assert_eq!(back.changes[0].before.name, "web1");
        assert!(back.changes[0].reload_required);
    }

    /// Found by the fuzzer: a stale marker for the same server stacked above the real one slid onto the
    /// server line once the real marker was removed, so a second `enabled` changed the file again.
    #[test]
    fn stacked_markers_for_one_server_are_replaced_together() {
        let config = "backend b\n  #autoheal drain was: server s a:1 weight 5\n  #autoheal drain was: server s a:1\n  server s a:1 weight 0\n";
        let info = &inventory(config)[0];
        assert_eq!(
            (info.line, info.state.managed.clone()),
            (4, Some(Desired::Drain))
        );
        let planned = apply(config, &named("b", "s", Desired::Enabled));
        assert_eq!(planned.output, "backend b\n  server s a:1\n");
        assert_eq!(planned.changes[0].after.line, 2);
        assert_eq!(
            apply(&planned.output, &named("b", "s", Desired::Enabled)).output,
            planned.output
        );
        // Markers for another server are not part of the group.
        let other = "backend b\n  #autoheal drain was: server t a:1\n  #autoheal drain was: server s a:1\n  server s a:1 weight 0\n";
        let restored = apply(other, &named("b", "s", Desired::Enabled)).output;
        assert_eq!(
            restored,
            "backend b\n  #autoheal drain was: server t a:1\n  server s a:1\n"
        );
    }

    /// Found by the fuzzer: a stale marker above an absent server slid onto the server line once
    /// `enabled` brought it back.
    #[test]
    fn stale_markers_above_an_absent_server_go_with_it() {
        let config = "backend b\n  #autoheal drain was: server s a:1 weight 5\n  #autoheal absent was: server s a:1\n";
        let info = &inventory(config)[0];
        assert_eq!((info.line, info.state.absent), (3, true));
        let planned = apply(config, &named("b", "s", Desired::Enabled));
        assert_eq!(planned.output, "backend b\n  server s a:1\n");
        assert_eq!(planned.changes[0].after.state.managed, None);
        assert_eq!(
            apply(&planned.output, &named("b", "s", Desired::Enabled)).output,
            planned.output
        );
    }

    #[test]
    fn a_batch_plans_like_its_requests_one_after_another() {
        let requests = [
            request(Some("api"), Target::Name("web1".into()), Desired::Drain),
            request(None, Target::Name("web3".into()), Desired::Absent),
            request(
                Some("app"),
                Target::Address("10.0.0.1".into()),
                Desired::Weight(WeightSpec::Percent(50)),
            ),
        ];
        let patch = crate::plan_all(CONFIG, &requests).unwrap();
        let mut sequential = CONFIG.to_owned();
        for request in &requests {
            sequential = plan(&sequential, request).unwrap().output;
        }
        assert_eq!(patch.render(CONFIG), sequential);
        assert_eq!(patch.pieces(CONFIG).collect::<String>(), sequential);
        // Changes come in file order, each with the request that designated it.
        let owners: Vec<(usize, &str, &str)> = patch
            .changes
            .iter()
            .map(|(index, c)| (*index, c.before.backend.as_str(), c.before.name.as_str()))
            .collect();
        assert_eq!(
            owners,
            [(2, "app", "web1"), (1, "app", "web3"), (0, "api", "web1")]
        );
    }

    #[test]
    fn a_batch_fails_as_a_whole_and_names_the_request_at_fault() {
        let twice = [
            request(Some("app"), Target::Name("web2".into()), Desired::Drain),
            request(
                None,
                Target::Address("10.0.0.2:80".into()),
                Desired::Disabled,
            ),
        ];
        assert_eq!(
            crate::plan_all(CONFIG, &twice),
            Err((
                1,
                Error::Overlap {
                    server: "app/web2".into(),
                    earlier: 0
                }
            ))
        );
        let unknown = [
            request(None, Target::Name("web2".into()), Desired::Drain),
            request(None, Target::Name("nope".into()), Desired::Drain),
        ];
        assert!(matches!(
            crate::plan_all(CONFIG, &unknown),
            Err((1, Error::NotFound { .. }))
        ));
        // Nothing to do is a patch without edits.
        let none = crate::plan_all(CONFIG, &[]).unwrap();
        assert!(none.edits.is_empty() && none.changes.is_empty());
        assert_eq!(none.render(CONFIG), CONFIG);
    }

    #[test]
    fn markers_say_when_autoheal_set_the_state_and_a_new_author_is_a_change() {
        let config = "backend b\n  server s a:1 weight 10\n";
        let drain = named("b", "s", Desired::Drain);
        let by_autoheal = crate::plan_all_by(config, std::slice::from_ref(&drain), SetBy::Autoheal)
            .unwrap()
            .render(config);
        assert_eq!(
            by_autoheal,
            "backend b\n  #autoheal drain by autoheal was: server s a:1 weight 10\n  server s a:1 weight 0\n"
        );
        let servers = crate::inventory(&by_autoheal);
        assert_eq!(servers[0].state.set_by, Some(SetBy::Autoheal));
        // The same state asked by an operator becomes the operator's.
        let taken_over = apply(&by_autoheal, &drain);
        assert!(taken_over.changes[0].changed);
        assert_eq!(
            crate::inventory(&taken_over.output)[0].state.set_by,
            Some(SetBy::Operator)
        );
        // Restoring removes the marker, whoever asks.
        let restored = crate::plan_all_by(
            &by_autoheal,
            &[named("b", "s", Desired::Enabled)],
            SetBy::Autoheal,
        )
        .unwrap()
        .render(&by_autoheal);
        assert_eq!(restored, config);
        assert_eq!(crate::inventory(config)[0].state.set_by, None);
    }

    #[test]
    fn health_checks_and_slowstart_are_read_with_default_server() {
        let config = "defaults\n  default-server check slowstart 2s\nbackend b\n  server inherits a:1\n  server own a:2 no-check slowstart 500\n  server none a:3 slowstart 0\n  server minutes a:4 slowstart 1m\n  server bad a:5 slowstart soon\nbackend c\n  server plain a:6\n";
        let servers = crate::inventory(config);
        let seen: Vec<(&str, bool, Option<u64>)> = servers
            .iter()
            .map(|s| (s.name.as_str(), s.state.check, s.state.slowstart_ms))
            .collect();
        assert_eq!(
            seen,
            [
                ("inherits", true, Some(2_000)),
                ("own", false, Some(500)),
                ("none", true, None),
                ("minutes", true, Some(60_000)),
                ("bad", true, None),
                ("plain", true, Some(2_000)),
            ]
        );
        let plain = "backend c\n  server plain a:6\n";
        let plain = &crate::inventory(plain)[0].state;
        assert_eq!((plain.check, plain.slowstart_ms), (false, None));
    }
}
