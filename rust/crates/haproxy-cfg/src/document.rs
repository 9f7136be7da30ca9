//! The lossless document: the original text, a table of lexed lines and the sections they form.

use std::borrow::Cow;
use std::ops::Range;

use crate::lexer::{is_space, lex, plain_run, LexedLine, WordStop};

/// One line of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line<'a> {
    /// The whole line in the document, line ending included.
    pub range: Range<usize>,
    /// The line ending in the document: `\n`, `\r\n`, or empty on a last line without one.
    pub ending: Range<usize>,
    /// The content's pieces; their spans are relative to `range.start`.
    pub lexed: LexedLine<'a>,
    /// The line sits between `.if` and `.endif`, so HAProxy may skip it.
    pub conditional: bool,
}

/// What a section header introduces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SectionKind {
    /// `global`.
    Global,
    /// `defaults`, possibly named.
    Defaults,
    /// `frontend`.
    Frontend,
    /// `backend`: its `server` lines are targets.
    Backend,
    /// `listen`: its `server` lines are targets.
    Listen,
    /// `peers`: its `server` lines are peers, not targets.
    Peers,
    /// `ring`: its `server` lines are log sinks, not targets.
    Ring,
    /// Any other known section (`resolvers`, `userlist`, `cache`, `[spoe-agent]`, ...).
    Other,
    /// A header that does not lex (e.g. an unterminated quote in its name): its body is never edited.
    Malformed,
}

/// The keywords that open a section of haproxy.cfg (besides SPOE's `[name]` headers). The one list:
/// the haproxy_runtime role, the integration lab and the end-to-end lab read sections with the same
/// words, which tests/section_keywords.rs checks.
pub const SECTION_KEYWORDS: &[&str] = &[
    "global",
    "defaults",
    "frontend",
    "backend",
    "listen",
    "peers",
    "ring",
    "resolvers",
    "userlist",
    "cache",
    "program",
    "mailers",
    "http-errors",
    "log-forward",
    "log-profile",
    "fcgi-app",
    "crt-store",
    "traces",
    "acme",
    "namespace_list",
    "healthcheck",
];

impl SectionKind {
    /// Recognises the first word of a line as a section header, as HAProxy does (indentation is ignored).
    fn from_keyword(keyword: &str) -> Option<Self> {
        let kind = match keyword {
            "global" => Self::Global,
            "defaults" => Self::Defaults,
            "frontend" => Self::Frontend,
            "backend" => Self::Backend,
            "listen" => Self::Listen,
            "peers" => Self::Peers,
            "ring" => Self::Ring,
            _ if SECTION_KEYWORDS.contains(&keyword) => Self::Other,
            // SPOE agent files use `[spoe-agent name]`-style headers.
            _ if keyword.starts_with('[') => Self::Other,
            _ => return None,
        };
        Some(kind)
    }

    /// `backend` and `listen` sections hold the servers autoheal manages.
    pub fn holds_targets(self) -> bool {
        matches!(self, Self::Backend | Self::Listen)
    }
}

/// A section: its header line and the lines up to the next header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    /// What the header introduces.
    pub kind: SectionKind,
    /// The section's name (second word), if any.
    pub name: Option<String>,
    /// The `defaults` section named after `from`, if any.
    pub from: Option<String>,
    /// Index of the header line.
    pub header: usize,
    /// Indices of the body lines.
    pub body: Range<usize>,
}

/// A parsed haproxy.cfg that renders back to exactly the bytes it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Document<'a> {
    text: &'a str,
    lines: Vec<Line<'a>>,
    sections: Vec<Section>,
}

impl<'a> Document<'a> {
    /// Parses any text. Never fails: what is not understood stays opaque.
    pub fn parse(text: &'a str) -> Self {
        let lines: Vec<Line<'a>> = Lines::new(text).collect();
        let sections = find_sections(&lines);
        Self {
            text,
            lines,
            sections,
        }
    }

    /// The text the document was parsed from.
    pub fn text(&self) -> &'a str {
        self.text
    }

    /// Every line, in order.
    pub fn lines(&self) -> &[Line<'a>] {
        &self.lines
    }

    /// Every section, in order. Lines before the first header belong to none.
    pub fn sections(&self) -> &[Section] {
        &self.sections
    }

    /// A line's content: everything but its line ending.
    pub fn content(&self, index: usize) -> &'a str {
        let line = &self.lines[index];
        &self.text[line.range.start..line.ending.start]
    }

    /// A line's ending: `\n`, `\r\n` or empty.
    pub fn ending(&self, index: usize) -> &'a str {
        &self.text[self.lines[index].ending.clone()]
    }

    /// Rebuilds the text from the pieces recorded for each line (indentation, tokens, whitespace between
    /// them, trailing whitespace, comment, line ending). Equal to [`Document::text`] when the pieces cover
    /// every byte, which is what the round-trip tests check.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(self.text.len());
        for line in &self.lines {
            let piece = |range: Range<usize>| {
                &self.text[line.range.start + range.start..line.range.start + range.end]
            };
            let lexed = &line.lexed;
            out.push_str(piece(lexed.indent.clone()));
            for (index, token) in lexed.tokens.iter().enumerate() {
                if index > 0 {
                    out.push_str(piece(lexed.gap_before(index)));
                }
                out.push_str(piece(token.span.clone()));
            }
            out.push_str(piece(lexed.trailing()));
            if let Some(comment) = &lexed.comment {
                out.push_str(piece(comment.clone()));
            }
            out.push_str(&self.text[line.ending.clone()]);
        }
        out
    }
}

/// Walks the lines of a text one at a time, lexing each, without keeping them: the planner uses this
/// directly so that a large file is never held as a table of tokens.
#[derive(Debug, Clone)]
pub(crate) struct Lines<'a> {
    text: &'a str,
    start: usize,
    depth: usize,
    /// Lex only the lines that may be headers, directives, server lines or markers.
    only_structure: bool,
    /// When set, a plainly written `server` line is lexed only if it may name one of these servers.
    server_hints: Option<&'a [&'a str]>,
    /// In structure mode, the lines passed over since the last line returned, and the line ending of the last
    /// of them (see [`Lines::take_passed_over`]).
    passed_over: usize,
    passed_over_ending: Range<usize>,
}

impl<'a> Lines<'a> {
    /// Every line, fully lexed.
    pub(crate) fn new(text: &'a str) -> Self {
        Self {
            text,
            start: 0,
            depth: 0,
            only_structure: false,
            server_hints: None,
            passed_over: 0,
            passed_over_ending: 0..0,
        }
    }

    /// Only the lines that may matter to the server finder: the others (most of a large file) are
    /// passed over without being lexed, and counted ([`Lines::take_passed_over`]). With `server_hints`
    /// (server names), `server` lines that cannot hold any of those names are passed over too.
    pub(crate) fn structure(text: &'a str, server_hints: Option<&'a [&'a str]>) -> Self {
        Self {
            only_structure: true,
            server_hints,
            ..Self::new(text)
        }
    }

    /// How many lines were passed over just before the line returned last, with the line ending of
    /// the last of them; `None` if there were none. Such a line holds no section header, directive,
    /// server or marker: all it does is end a group of markers and count.
    pub(crate) fn take_passed_over(&mut self) -> Option<(usize, Range<usize>)> {
        let count = std::mem::take(&mut self.passed_over);
        (count > 0).then(|| (count, self.passed_over_ending.clone()))
    }

    /// Could this line be a section header, a `.if` directive, a `server`-like line or an autoheal
    /// marker? Decided from the first word's bytes (and a `server` line's name); a first word or a
    /// name with quotes or escapes is always lexed.
    fn may_be_structure(&self, content: &str) -> bool {
        let bytes = content.as_bytes();
        let Some(start) = bytes.iter().position(|&byte| !is_space(byte)) else {
            return false;
        };
        let rest = &bytes[start..];
        if rest[0] == b'#' {
            return rest.starts_with(b"#autoheal ");
        }
        let (end, stop) = plain_run(rest, 0);
        if stop == WordStop::Quoting {
            return true;
        }
        let word = &rest[..end];
        if word == b"server" {
            return self
                .server_hints
                .is_none_or(|hints| may_name_one_of(&rest[end..], hints));
        }
        matches!(word.first(), Some(b'.' | b'['))
            || matches!(word, b"default-server" | b"server-template")
            || std::str::from_utf8(word).is_ok_and(|word| SectionKind::from_keyword(word).is_some())
    }
}

/// Could the `server` line whose text after the keyword is `after` name one of `hints`? Its name
/// is the next word, up to a space or a `#`, unless that word holds a quote or an escape (then
/// the line is lexed to find out). What follows the name cannot change it: a quote there starts
/// a later token, so the rest of the line (most of a large file) is not even read.
fn may_name_one_of(after: &[u8], hints: &[&str]) -> bool {
    let Some(start) = after.iter().position(|&byte| !is_space(byte)) else {
        return false;
    };
    let (end, stop) = plain_run(after, start);
    stop == WordStop::Quoting
        || hints
            .iter()
            .any(|hint| hint.as_bytes() == &after[start..end])
}

impl<'a> Iterator for Lines<'a> {
    type Item = Line<'a>;

    fn next(&mut self) -> Option<Line<'a>> {
        let text = self.text;
        let (start, content_end, end) = loop {
            let start = self.start;
            if start >= text.len() {
                return None;
            }
            let newline =
                memchr::memchr(b'\n', &text.as_bytes()[start..]).map(|offset| start + offset);
            let (content_end, end) = match newline {
                Some(nl) if nl > start && text.as_bytes()[nl - 1] == b'\r' => (nl - 1, nl + 1),
                Some(nl) => (nl, nl + 1),
                None => (text.len(), text.len()),
            };
            if self.only_structure && !self.may_be_structure(&text[start..content_end]) {
                self.passed_over += 1;
                self.passed_over_ending = content_end..end;
                self.start = end;
                continue;
            }
            break (start, content_end, end);
        };
        let lexed = lex(&text[start..content_end]);
        // `.if` nesting: the directive lines themselves stay opaque; only the lines inside are flagged.
        let directive = lexed.keyword().filter(|_| lexed.malformed.is_none());
        if matches!(directive, Some(".endif")) {
            self.depth = self.depth.saturating_sub(1);
        }
        let conditional = self.depth > 0 || matches!(directive, Some(".elif" | ".else"));
        if matches!(directive, Some(".if")) {
            self.depth += 1;
        }
        self.start = end;
        Some(Line {
            range: start..end,
            ending: content_end..end,
            lexed,
            conditional,
        })
    }
}

/// What a section header line says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Header<'a> {
    pub(crate) kind: SectionKind,
    pub(crate) name: Option<Cow<'a, str>>,
    pub(crate) from: Option<Cow<'a, str>>,
}

impl<'a> Header<'a> {
    /// Reads a line as a section header, if its first word is a section keyword.
    pub(crate) fn read(lexed: &LexedLine<'a>) -> Option<Self> {
        let mut kind = lexed.keyword().and_then(SectionKind::from_keyword)?;
        if lexed.malformed.is_some() {
            kind = SectionKind::Malformed;
        }
        let word = |index: usize| lexed.tokens.get(index).map(|token| token.value.clone());
        let from_at = (1..lexed.tokens.len()).find(|&index| lexed.tokens[index].value == "from");
        // `defaults from A` has no name of its own; `backend be from A` does.
        let name = word(1).filter(|_| from_at != Some(1));
        let from = from_at.and_then(|at| word(at + 1));
        Some(Self { kind, name, from })
    }
}

fn find_sections(lines: &[Line]) -> Vec<Section> {
    let mut sections: Vec<Section> = Vec::new();
    for (index, line) in lines.iter().enumerate() {
        let Some(header) = Header::read(&line.lexed) else {
            continue;
        };
        if let Some(previous) = sections.last_mut() {
            previous.body.end = index;
        }
        sections.push(Section {
            kind: header.kind,
            name: header.name.map(Cow::into_owned),
            from: header.from.map(Cow::into_owned),
            header: index,
            body: index + 1..lines.len(),
        });
    }
    sections
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_hints_lex_server_lines_by_their_name_alone() {
        let text = "backend app\n    server web1 127.0.0.1:1 cookie \"a b\"\n    server web2 127.0.0.1:2 cookie \"a b\"\n    server \"web 3\" 127.0.0.1:3\n    server web\\ 4 127.0.0.1:4\n";
        let mut lines = Lines::structure(text, Some(&["web1"]));
        let mut seen = Vec::new();
        while let Some(line) = lines.next() {
            let passed_over = lines.take_passed_over().map(|(count, _)| count);
            seen.push((line.range.start, line.lexed.tokens.len(), passed_over));
        }
        // The header; web1 (a hint); web2 passed over although a quote follows its name; the quoted
        // and the escaped names lexed, since their word alone cannot say which server they name.
        let web3 = text.find("    server \"web 3\"").unwrap();
        let web4 = text.find("    server web\\ 4").unwrap();
        assert_eq!(
            seen,
            [
                (0, 2, None),
                (12, 5, None),
                (web3, 3, Some(1)),
                (web4, 3, None)
            ]
        );
    }

    #[test]
    fn lines_passed_over_are_counted_with_the_ending_of_the_last() {
        let text = "backend app\r\n\n  # note\r\n    server web1 127.0.0.1:1\n\n";
        let mut lines = Lines::structure(text, Some(&["web1"]));
        let header = lines.next().unwrap();
        assert_eq!((header.range.start, lines.take_passed_over()), (0, None));
        let web1 = lines.next().unwrap();
        let note_ending = text.find("\r\n    server").unwrap();
        assert_eq!(&text[web1.range.clone()], "    server web1 127.0.0.1:1\n");
        assert_eq!(
            lines.take_passed_over(),
            Some((2, note_ending..note_ending + 2))
        );
        // A trailing blank line is passed over, and nothing is left to return.
        assert!(lines.next().is_none());
    }

    fn kinds(text: &str) -> Vec<(SectionKind, Option<String>, Option<String>, usize)> {
        Document::parse(text)
            .sections()
            .iter()
            .map(|s| (s.kind, s.name.clone(), s.from.clone(), s.header))
            .collect()
    }

    #[test]
    fn renders_every_byte_back() {
        for text in [
            "",
            "\n",
            "\r\n",
            "global\n\tlog /dev/log local0\n",
            "backend b\r\n  server s 1.2.3.4:80   \r\n",
            "frontend f\n  bind :80 # c\n  no final newline",
            "a \"unterminated # quote\nb\\\n\\",
            "   \t  \n\n# only comment",
            "x\ry\r",
            "x\r",
        ] {
            let doc = Document::parse(text);
            assert_eq!(doc.render(), text, "{text:?}");
        }
    }

    #[test]
    fn line_endings_are_recorded() {
        let doc = Document::parse("a\r\nb\nc");
        assert_eq!(doc.lines().len(), 3);
        assert_eq!(
            (doc.ending(0), doc.ending(1), doc.ending(2)),
            ("\r\n", "\n", "")
        );
        assert_eq!(
            (doc.content(0), doc.content(1), doc.content(2)),
            ("a", "b", "c")
        );
        let lone_cr = Document::parse("a\r");
        assert_eq!((lone_cr.content(0), lone_cr.ending(0)), ("a\r", ""));
    }

    #[test]
    fn sections_by_first_word_with_indentation_and_addresses() {
        let text =
            "global\n    defaults A\n  frontend  main *:5000\n    backend be1 from A\nlisten l\n";
        assert_eq!(
            kinds(text),
            [
                (SectionKind::Global, None, None, 0),
                (SectionKind::Defaults, Some("A".into()), None, 1),
                (SectionKind::Frontend, Some("main".into()), None, 2),
                (
                    SectionKind::Backend,
                    Some("be1".into()),
                    Some("A".into()),
                    3
                ),
                (SectionKind::Listen, Some("l".into()), None, 4),
            ]
        );
        let doc = Document::parse(text);
        assert_eq!(doc.sections()[3].body, 4..4);
        assert_eq!(doc.sections()[4].body, 5..5);
    }

    #[test]
    fn nameless_defaults_from_and_quoted_names() {
        assert_eq!(
            kinds("defaults from A\nfrontend 'http'\n[spoe-agent x]\npeers p\nring r\n"),
            [
                (SectionKind::Defaults, None, Some("A".into()), 0),
                (SectionKind::Frontend, Some("http".into()), None, 1),
                (SectionKind::Other, Some("x]".into()), None, 2),
                (SectionKind::Peers, Some("p".into()), None, 3),
                (SectionKind::Ring, Some("r".into()), None, 4),
            ]
        );
    }

    #[test]
    fn commented_and_unknown_keywords_are_not_headers() {
        assert_eq!(kinds("# backend x\nserver s a\nbackendx y\n"), []);
        assert_eq!(kinds("backend \"broken\n")[0].0, SectionKind::Malformed);
    }

    #[test]
    fn lines_inside_if_blocks_are_flagged() {
        let doc = Document::parse(
            "a\n.if defined(X)\nb\n.elif 1\n.if 1\nc\n.endif\n.else\nd\n.endif\ne\n",
        );
        let flags: Vec<bool> = doc.lines().iter().map(|l| l.conditional).collect();
        assert_eq!(
            flags,
            [false, false, true, true, true, true, true, true, true, false, false]
        );
    }
}
