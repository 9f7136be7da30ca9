//! Splits one line of haproxy.cfg into words the way HAProxy does (configuration manual, section 2.2),
//! while remembering where every byte came from so that the line can be rebuilt exactly.

use std::borrow::Cow;
use std::ops::Range;

/// One word of a line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token<'a> {
    /// The bytes as written (quotes and escapes kept), relative to the start of the line.
    pub span: Range<usize>,
    /// The word as HAProxy reads it: quotes removed, escapes resolved (environment variables are not
    /// expanded). Borrowed from the line when written plainly, which is nearly always.
    pub value: Cow<'a, str>,
}

/// Why a line cannot be trusted; such a line is never interpreted nor rewritten.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Malformed {
    /// A `'` opens a string that the line never closes.
    UnterminatedSingleQuote,
    /// A `"` opens a string that the line never closes.
    UnterminatedDoubleQuote,
    /// The line ends with a lone `\`: anything appended to it would be escaped.
    TrailingBackslash,
}

/// The pieces of one line's content (everything before its line ending).
///
/// Spans are relative to the start of the line and, laid end to end with the whitespace between them,
/// cover the content exactly: indentation, tokens separated by whitespace, trailing whitespace, comment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LexedLine<'a> {
    /// Leading whitespace.
    pub indent: Range<usize>,
    /// The words, in order.
    pub tokens: Vec<Token<'a>>,
    /// From an unquoted, unescaped `#` to the end of the content.
    pub comment: Option<Range<usize>>,
    /// Length of the content in bytes.
    pub len: usize,
    /// Set when HAProxy would not read this line as we do; the line then stays opaque.
    pub malformed: Option<Malformed>,
}

/// HAProxy splits words on `isspace()` characters; `\n` never occurs inside a line's content.
pub(crate) const fn is_space(byte: u8) -> bool {
    matches!(byte, b' ' | b'\t' | b'\r' | b'\x0b' | b'\x0c')
}

/// What ends a plain run of word bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WordStop {
    /// Whitespace, a `#` or the end of the content: the word is the run itself.
    Separator,
    /// A quote or a backslash: only the full lexer can tell the word's value and end.
    Quoting,
}

/// Each byte's [`WordStop`], if it ends a plain run (one table lookup per byte: the structure
/// pass runs this over every line of a large file).
const WORD_STOPS: [Option<WordStop>; 256] = {
    let mut stops = [None; 256];
    let mut byte = 0;
    while byte < 256 {
        stops[byte] = match byte as u8 {
            b'#' => Some(WordStop::Separator),
            b'\'' | b'"' | b'\\' => Some(WordStop::Quoting),
            other if is_space(other) => Some(WordStop::Separator),
            _ => None,
        };
        byte += 1;
    }
    stops
};

/// The end of the plain run of word bytes starting at `start`, and what ends it.
pub(crate) fn plain_run(bytes: &[u8], start: usize) -> (usize, WordStop) {
    bytes[start..]
        .iter()
        .enumerate()
        .find_map(|(offset, &byte)| {
            WORD_STOPS[usize::from(byte)].map(|stop| (start + offset, stop))
        })
        .unwrap_or((bytes.len(), WordStop::Separator))
}

impl LexedLine<'_> {
    /// The whitespace between token `index - 1` and token `index` (`index >= 1`).
    pub fn gap_before(&self, index: usize) -> Range<usize> {
        self.tokens[index - 1].span.end..self.tokens[index].span.start
    }

    /// The whitespace after the last token (or after the indentation) up to the comment or the end.
    pub fn trailing(&self) -> Range<usize> {
        let start = self
            .tokens
            .last()
            .map_or(self.indent.end, |token| token.span.end);
        let end = self
            .comment
            .as_ref()
            .map_or(self.len, |comment| comment.start);
        start..end
    }

    /// The first word, as HAProxy reads it.
    pub fn keyword(&self) -> Option<&str> {
        self.tokens.first().map(|token| token.value.as_ref())
    }

    /// True when the line holds only whitespace and/or a comment.
    pub fn is_blank_or_comment(&self) -> bool {
        self.tokens.is_empty() && self.malformed.is_none()
    }
}

/// Lexes one line's content (without its line ending). Never panics.
pub fn lex(content: &str) -> LexedLine<'_> {
    let bytes = content.as_bytes();
    let len = bytes.len();
    let mut pos = skip_spaces(bytes, 0);
    let indent = 0..pos;
    let mut tokens = Vec::new();
    let mut comment = None;
    let mut malformed = None;
    while pos < len {
        if bytes[pos] == b'#' {
            comment = Some(pos..len);
            break;
        }
        let (token, problem) = lex_token(content, pos);
        pos = token.span.end;
        tokens.push(token);
        if problem.is_some() {
            malformed = problem;
            break;
        }
        pos = skip_spaces(bytes, pos);
    }
    LexedLine {
        indent,
        tokens,
        comment,
        len,
        malformed,
    }
}

fn skip_spaces(bytes: &[u8], mut pos: usize) -> usize {
    while pos < bytes.len() && is_space(bytes[pos]) {
        pos += 1;
    }
    pos
}

/// What a backslash followed by `next` means outside single quotes, if HAProxy knows it.
fn simple_escape(next: u8) -> Option<u8> {
    match next {
        b'\\' | b' ' | b'\'' | b'"' | b'#' | b'$' => Some(next),
        b'r' => Some(b'\r'),
        b'n' => Some(b'\n'),
        b't' => Some(b'\t'),
        _ => None,
    }
}

fn hex_digit(byte: u8) -> Option<u8> {
    (byte as char)
        .to_digit(16)
        .and_then(|digit| u8::try_from(digit).ok())
}

/// Lexes the word starting at `start`; stops before the whitespace or `#` that ends it.
fn lex_token(content: &str, start: usize) -> (Token<'_>, Option<Malformed>) {
    let bytes = content.as_bytes();
    // Fast path: a word without quotes or backslashes is its own value.
    let (plain_end, stop) = plain_run(bytes, start);
    if stop == WordStop::Separator {
        let token = Token {
            span: start..plain_end,
            value: Cow::Borrowed(&content[start..plain_end]),
        };
        return (token, None);
    }
    #[derive(PartialEq)]
    enum Quote {
        None,
        Single,
        Double,
    }
    let len = bytes.len();
    let mut value = Vec::new();
    let mut quote = Quote::None;
    let mut pos = start;
    let mut problem = None;
    while pos < len {
        let byte = bytes[pos];
        if quote == Quote::Single {
            if byte == b'\'' {
                quote = Quote::None;
            } else {
                value.push(byte);
            }
            pos += 1;
            continue;
        }
        match byte {
            b'\\' => {
                let Some(&next) = bytes.get(pos + 1) else {
                    value.push(byte);
                    pos += 1;
                    problem = Some(Malformed::TrailingBackslash);
                    break;
                };
                if let Some(unescaped) = simple_escape(next) {
                    value.push(unescaped);
                    pos += 2;
                } else if let (b'x', Some(high), Some(low)) = (
                    next,
                    bytes.get(pos + 2).copied().and_then(hex_digit),
                    bytes.get(pos + 3).copied().and_then(hex_digit),
                ) {
                    value.push(high * 16 + low);
                    pos += 4;
                } else {
                    // HAProxy keeps an unknown escape's backslash and reads the next byte normally.
                    value.push(byte);
                    pos += 1;
                }
            }
            b'\'' if quote == Quote::None => {
                quote = Quote::Single;
                pos += 1;
            }
            b'"' => {
                quote = if quote == Quote::Double {
                    Quote::None
                } else {
                    Quote::Double
                };
                pos += 1;
            }
            b'#' if quote == Quote::None => break,
            _ if quote == Quote::None && is_space(byte) => break,
            _ => {
                value.push(byte);
                pos += 1;
            }
        }
    }
    match quote {
        Quote::Single => problem = Some(Malformed::UnterminatedSingleQuote),
        Quote::Double => problem = Some(Malformed::UnterminatedDoubleQuote),
        Quote::None => {}
    }
    let token = Token {
        span: start..pos,
        value: Cow::Owned(String::from_utf8_lossy(&value).into_owned()),
    };
    (token, problem)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(content: &str) -> Vec<String> {
        lex(content)
            .tokens
            .into_iter()
            .map(|t| t.value.into_owned())
            .collect()
    }

    fn raw(content: &str) -> Vec<&str> {
        lex(content)
            .tokens
            .iter()
            .map(|t| &content[t.span.clone()])
            .collect()
    }

    #[test]
    fn splits_on_spaces_and_tabs_and_keeps_indent() {
        let line = lex("\t  server\tweb1  10.0.0.1:80 ");
        assert_eq!(line.indent, 0..3);
        assert_eq!(
            values("\t  server\tweb1  10.0.0.1:80 "),
            ["server", "web1", "10.0.0.1:80"]
        );
        assert_eq!(line.gap_before(1), 9..10);
        assert_eq!(line.gap_before(2), 14..16);
        assert_eq!(line.trailing(), 27..28);
        assert_eq!(line.comment, None);
        assert_eq!(line.malformed, None);
    }

    #[test]
    fn hash_inside_quotes_is_not_a_comment() {
        let line = lex(r#"option httpchk GET "/app/kibana#?_g=()" # real"#);
        assert_eq!(
            values(r#"option httpchk GET "/app/kibana#?_g=()" # real"#),
            ["option", "httpchk", "GET", "/app/kibana#?_g=()"]
        );
        assert_eq!(line.comment, Some(40..46));
        assert_eq!(values(r#"x "a # b""#), ["x", "a # b"]);
        assert_eq!(values("x 'a # b'"), ["x", "a # b"]);
    }

    #[test]
    fn escaped_hash_and_space_stay_in_the_word() {
        assert_eq!(
            values(r"stats realm HAProxy-04\ Statistics"),
            ["stats", "realm", "HAProxy-04 Statistics"]
        );
        assert_eq!(values(r"a b\#c #d"), ["a", "b#c"]);
        assert_eq!(lex(r"a b\#c #d").comment, Some(7..9));
        // A line ending in an escaped space keeps that space in the word.
        assert_eq!(raw(r"rspidel ^Server:\ "), ["rspidel", r"^Server:\ "]);
        assert_eq!(values(r"rspidel ^Server:\ "), ["rspidel", "^Server: "]);
    }

    #[test]
    fn hash_glued_to_a_word_starts_a_comment() {
        let line = lex("timeout client 5s#TCP: note");
        assert_eq!(
            values("timeout client 5s#TCP: note"),
            ["timeout", "client", "5s"]
        );
        assert_eq!(line.comment, Some(17..27));
        assert_eq!(line.trailing(), 17..17);
    }

    #[test]
    fn quotes_join_and_strong_quotes_keep_backslashes() {
        assert_eq!(values(r#"a"b c"d"#), ["ab cd"]);
        assert_eq!(values(r"'a\ b'"), [r"a\ b"]);
        assert_eq!(values(r#""a\"b""#), [r#"a"b"#]);
        assert_eq!(
            values(r#"unix@"/tmp/http.socket""#),
            ["unix@/tmp/http.socket"]
        );
        assert_eq!(values(r#""" x"#), ["", "x"]);
    }

    #[test]
    fn escapes_translate_like_haproxy() {
        assert_eq!(values(r"a\tb \x41 \q \\"), ["a\tb", "A", r"\q", r"\"]);
        // An unknown escape does not protect the next byte: `\<tab>` still splits.
        assert_eq!(values("s\\\t1"), ["s\\", "1"]);
        assert_eq!(values(r"\x4"), [r"\x4"]);
    }

    #[test]
    fn unterminated_quotes_and_trailing_backslash_are_malformed() {
        let line = lex(r#"server a "127.0.0.1 # not a comment"#);
        assert_eq!(line.malformed, Some(Malformed::UnterminatedDoubleQuote));
        assert_eq!(line.comment, None);
        assert_eq!(line.tokens.last().map(|t| t.span.end), Some(line.len));
        assert_eq!(
            lex("a 'b").malformed,
            Some(Malformed::UnterminatedSingleQuote)
        );
        assert_eq!(
            lex(r"server s1 1.2.3.4:80 \").malformed,
            Some(Malformed::TrailingBackslash)
        );
        assert!(!lex(r"a 'b").is_blank_or_comment());
    }

    #[test]
    fn carriage_return_inside_a_line_is_whitespace() {
        assert_eq!(values("a\rb"), ["a", "b"]);
    }

    #[test]
    fn a_plain_run_ends_at_a_separator_or_where_quoting_starts() {
        let run = |text: &str, start| plain_run(text.as_bytes(), start);
        assert_eq!(run("server web1 a", 0), (6, WordStop::Separator));
        assert_eq!(run("server web1 a", 7), (11, WordStop::Separator));
        assert_eq!(run("web1\tx", 0), (4, WordStop::Separator));
        assert_eq!(run("web1#note", 0), (4, WordStop::Separator));
        assert_eq!(run("web1", 0), (4, WordStop::Separator));
        assert_eq!(run("", 0), (0, WordStop::Separator));
        assert_eq!(run("we'b1'", 0), (2, WordStop::Quoting));
        assert_eq!(run("\"web1\"", 0), (0, WordStop::Quoting));
        assert_eq!(run("web\\ 1", 0), (3, WordStop::Quoting));
        for byte in 0..=u8::MAX {
            let text = [b'a', byte, b'b'];
            let expected = match byte {
                b'\'' | b'"' | b'\\' => (1, WordStop::Quoting),
                b'#' => (1, WordStop::Separator),
                _ if is_space(byte) => (1, WordStop::Separator),
                _ => (3, WordStop::Separator),
            };
            assert_eq!(plain_run(&text, 0), expected, "byte {byte:#04x}");
        }
    }

    #[test]
    fn blank_and_comment_lines() {
        for content in ["", "   ", "\t# note", "#autoheal drain was: server a b"] {
            let line = lex(content);
            assert!(line.is_blank_or_comment(), "{content:?}");
            assert_eq!(line.keyword(), None);
        }
        assert_eq!(lex("  # c").comment, Some(2..5));
    }

    #[test]
    fn non_ascii_is_kept_whole() {
        assert_eq!(
            values("description café ünïcode"),
            ["description", "café", "ünïcode"]
        );
    }
}
