//! The comment autoheal leaves in the file to remember what it changed.
//!
//! `#autoheal <state>[ by autoheal] was: <original server line>`, where `<state>` is `drain`, `disabled`,
//! `absent`, `weight N` or `weight N%`; ` by autoheal` marks a state the remediation loop set (a marker
//! without it is an operator's, including every marker written before authors were recorded: autoheal
//! never undoes what it cannot show it did). The original line is written without indentation or line ending. For
//! `drain`, `disabled` and `weight` the marker sits on the line directly above the server line, which
//! carries the change. For `absent` the marker replaces the server line. The text holds no timestamp,
//! so planning the same request twice yields the same bytes.

use crate::lexer::{lex, LexedLine};
use crate::{Desired, SetBy, WeightSpec};

const PREFIX: &str = "#autoheal ";
const SEPARATOR: &str = " was: ";
const BY_AUTOHEAL: &str = " by autoheal";

/// A marker read back from a comment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Marker {
    /// The state autoheal put the server in.
    pub desired: Desired,
    /// Who asked for it.
    pub set_by: SetBy,
    /// The server line before autoheal touched it, without indentation or line ending.
    pub original: String,
}

impl Marker {
    /// Reads a comment (from its `#` to the end of the line). `None` for anything that is not exactly a
    /// marker written by autoheal, including hand-written `#autoheal` notes: those stay opaque.
    pub fn parse(comment: &str) -> Option<Self> {
        let (state, original) = comment.strip_prefix(PREFIX)?.split_once(SEPARATOR)?;
        let (state, set_by) = match state.strip_suffix(BY_AUTOHEAL) {
            Some(state) => (state, SetBy::Autoheal),
            None => (state, SetBy::Operator),
        };
        let desired = parse_state(state)?;
        let lexed = lex(original);
        let is_server_line = lexed.malformed.is_none()
            && lexed.indent.is_empty()
            && lexed.keyword() == Some("server")
            && lexed.tokens.len() >= 2;
        is_server_line.then(|| Self {
            desired,
            set_by,
            original: original.to_owned(),
        })
    }

    /// The comment text, from `#` to the end of the line.
    pub fn render(desired: &Desired, set_by: SetBy, original: &str) -> String {
        let by = match set_by {
            SetBy::Autoheal => BY_AUTOHEAL,
            SetBy::Operator => "",
        };
        format!("{PREFIX}{}{by}{SEPARATOR}{original}", state_text(desired))
    }

    /// The original line, lexed.
    pub fn original_lexed(&self) -> LexedLine<'_> {
        lex(&self.original)
    }

    /// The server name on the original line.
    pub fn name(&self) -> String {
        self.original_lexed()
            .tokens
            .swap_remove(1)
            .value
            .into_owned()
    }
}

/// How a state is written in markers and messages.
pub fn state_text(desired: &Desired) -> String {
    match desired {
        Desired::Enabled => "enabled".to_owned(),
        Desired::Drain => "drain".to_owned(),
        Desired::Disabled => "disabled".to_owned(),
        Desired::Absent => "absent".to_owned(),
        Desired::Weight(WeightSpec::Absolute(weight)) => format!("weight {weight}"),
        Desired::Weight(WeightSpec::Percent(percent)) => format!("weight {percent}%"),
    }
}

fn parse_state(state: &str) -> Option<Desired> {
    let desired = match state {
        "drain" => Desired::Drain,
        "disabled" => Desired::Disabled,
        "absent" => Desired::Absent,
        _ => {
            let amount = state.strip_prefix("weight ")?;
            let spec = match amount.strip_suffix('%') {
                Some(percent) => WeightSpec::Percent(parse_number(percent)?),
                None => WeightSpec::Absolute(parse_number(amount)?),
            };
            let desired = Desired::Weight(spec);
            crate::validate(&desired).ok()?;
            desired
        }
    };
    Some(desired)
}

/// Digits only: `+5` or ` 5` would not be written by autoheal.
fn parse_number(digits: &str) -> Option<u32> {
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_state() {
        let original = "server web1 10.0.0.1:80 check weight 10 # note";
        for desired in [
            Desired::Drain,
            Desired::Disabled,
            Desired::Absent,
            Desired::Weight(WeightSpec::Absolute(0)),
            Desired::Weight(WeightSpec::Absolute(256)),
            Desired::Weight(WeightSpec::Percent(50)),
        ] {
            for set_by in [SetBy::Autoheal, SetBy::Operator] {
                let text = Marker::render(&desired, set_by, original);
                assert_eq!(
                    Marker::parse(&text),
                    Some(Marker {
                        desired: desired.clone(),
                        set_by,
                        original: original.to_owned()
                    }),
                    "{text}"
                );
            }
        }
    }

    #[test]
    fn markers_without_an_author_are_an_operators() {
        let marker = Marker::parse("#autoheal weight 50% was: server a b").unwrap();
        assert_eq!(marker.desired, Desired::Weight(WeightSpec::Percent(50)));
        assert_eq!(marker.set_by, SetBy::Operator);
    }

    #[test]
    fn exact_text() {
        assert_eq!(
            Marker::render(
                &Desired::Weight(WeightSpec::Percent(50)),
                SetBy::Operator,
                "server a b"
            ),
            "#autoheal weight 50% was: server a b"
        );
        assert_eq!(
            Marker::render(&Desired::Drain, SetBy::Autoheal, "server a b"),
            "#autoheal drain by autoheal was: server a b"
        );
    }

    #[test]
    fn hand_written_comments_are_not_markers() {
        for comment in [
            "#autoheal",
            "#autoheal drained this by hand",
            "#autoheal drain was: not a server line",
            "#autoheal drain was:  server a b",
            "#autoheal drain was: server",
            "#autoheal drain was: server \"a",
            "#autoheal sleep was: server a b",
            "#autoheal weight 300 was: server a b",
            "#autoheal weight 101% was: server a b",
            "#autoheal weight +5 was: server a b",
            "#autoheal weight  was: server a b",
            "#autoheal enabled was: server a b",
            "#autoheal drain by someone was: server a b",
            "#autoheal drain by autoheal  was: server a b",
            "# autoheal drain was: server a b",
        ] {
            assert_eq!(Marker::parse(comment), None, "{comment}");
        }
    }
}
