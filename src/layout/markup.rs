//! Inline colour markup for titles and highlights on colour boards.
//!
//! Syntax: `{red}文字{/}` draws 文字 in red; the colour is any name `gongkai validate` accepts
//! (red, green, yellow, amber, white, blue, cyan, magenta) or `#rrggbb`. Spans do not nest: a
//! new `{colour}` ends the previous span. `{{` is a literal `{`. Text outside spans has the
//! item's own colour. On a mono board the colours are ignored; on a red/green board they are
//! mapped to red, green or yellow.
//!
//! Braces are rare in Chinese notices, so the markup cannot be confused with text; anything
//! else in braces is an error, reported with its position, rather than shown to the public.
//!
//! Text that reaches a board is made inert first ([`inert`]): control characters other than
//! line breaks and the bidirectional controls are removed, so they are neither drawn as boxes
//! nor able to reorder anything (boards draw left to right and never apply the bidi
//! algorithm). `gongkai validate` refuses them in items (`check.text_control`); an interrupt
//! typed into the control API gets this treatment only.

use std::ops::Range;

use crate::config::model::Rgb;
use crate::config::values::parse_color;

/// Text with the markup removed, and the colour of each part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Styled {
    pub text: String,
    /// Byte ranges of `text` with an explicit colour, in order, not overlapping.
    pub runs: Vec<(Range<usize>, Rgb)>,
}

impl Styled {
    /// Plain text with no colour runs.
    pub fn plain(text: &str) -> Styled {
        Styled {
            text: text.to_owned(),
            runs: Vec::new(),
        }
    }

    /// The explicit colour at byte offset `at`, if any.
    pub fn color_at(&self, at: usize) -> Option<Rgb> {
        self.runs
            .iter()
            .find(|(range, _)| range.contains(&at))
            .map(|(_, rgb)| *rgb)
    }
}

/// A markup mistake, at a character offset (from 0) of the source text; messages count from 1.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MarkupError {
    #[error("`{{{name}}}` at character {} is not a colour", offset + 1)]
    UnknownColor { offset: usize, name: String },
    #[error("`{{` at character {} is not closed", offset + 1)]
    Unclosed { offset: usize },
}

/// The bidirectional controls: embeddings and overrides U+202A–U+202E, isolates U+2066–U+2069,
/// and the marks U+200E, U+200F, U+061C.
pub fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}' | '\u{061C}')
}

/// Whether `c` is removed from text on its way to a board: a C0 or C1 control or DEL other
/// than a line break or a tab (layout turns those into breaks and spaces), or a bidi control.
pub fn is_hidden_control(c: char) -> bool {
    (c.is_control() && !matches!(c, '\n' | '\r' | '\t')) || is_bidi_control(c)
}

/// `text` without the characters [`is_hidden_control`] names; borrowed when there are none.
pub fn inert(text: &str) -> std::borrow::Cow<'_, str> {
    if text.chars().any(is_hidden_control) {
        std::borrow::Cow::Owned(text.chars().filter(|&c| !is_hidden_control(c)).collect())
    } else {
        std::borrow::Cow::Borrowed(text)
    }
}

/// Parses colour markup. Text without `{` comes back unchanged.
pub fn parse(source: &str) -> Result<Styled, MarkupError> {
    if !source.contains('{') {
        return Ok(Styled::plain(source));
    }
    let mut text = String::with_capacity(source.len());
    let mut runs = Vec::new();
    let mut open: Option<(usize, Rgb)> = None;
    let mut chars = source.char_indices().enumerate().peekable();
    while let Some((offset, (byte, c))) = chars.next() {
        if c != '{' {
            text.push(c);
            continue;
        }
        if chars.peek().is_some_and(|(_, (_, next))| *next == '{') {
            chars.next();
            text.push('{');
            continue;
        }
        let rest = &source[byte + 1..];
        let Some(end) = rest.find('}') else {
            return Err(MarkupError::Unclosed { offset });
        };
        let name = &rest[..end];
        // Skip the tag's characters.
        for _ in 0..name.chars().count() + 1 {
            chars.next();
        }
        if let Some((start, rgb)) = open.take()
            && start < text.len()
        {
            runs.push((start..text.len(), rgb));
        }
        if name == "/" {
            continue;
        }
        match parse_color(name) {
            Some(rgb) => open = Some((text.len(), rgb)),
            None => {
                return Err(MarkupError::UnknownColor {
                    offset,
                    name: name.to_owned(),
                });
            }
        }
    }
    if let Some((start, rgb)) = open
        && start < text.len()
    {
        runs.push((start..text.len(), rgb));
    }
    Ok(Styled { text, runs })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_and_escapes() {
        let styled = parse("中标金额{red}1,234元{/}，公示{{7}}日").unwrap();
        assert_eq!(styled.text, "中标金额1,234元，公示{7}}日");
        let (range, rgb) = &styled.runs[0];
        assert_eq!(&styled.text[range.clone()], "1,234元");
        assert_eq!(*rgb, Rgb(255, 0, 0));
        assert_eq!(styled.runs.len(), 1);
    }

    #[test]
    fn a_new_colour_ends_the_previous_span_and_an_open_span_runs_to_the_end() {
        let styled = parse("{green}甲{#0000ff}乙").unwrap();
        assert_eq!(styled.text, "甲乙");
        assert_eq!(
            styled.runs,
            vec![(0..3, Rgb(0, 255, 0)), (3..6, Rgb(0, 0, 255))]
        );
    }

    #[test]
    fn mistakes_are_reported_with_their_position() {
        assert_eq!(
            parse("公示{rde}期"),
            Err(MarkupError::UnknownColor {
                offset: 2,
                name: "rde".into()
            })
        );
        assert_eq!(
            parse("公示{red期"),
            Err(MarkupError::Unclosed { offset: 2 })
        );
    }

    #[test]
    fn controls_and_bidi_overrides_are_removed_and_nothing_else() {
        assert_eq!(
            inert("城区\u{202E}道路\u{2066}照明\u{7}改造\u{85}工程\u{200F}\n第二行\t完"),
            "城区道路照明改造工程\n第二行\t完"
        );
        assert!(matches!(inert("城区道路"), std::borrow::Cow::Borrowed(_)));
        // Markup-looking text made of controls stays what it is: markup or an error.
        assert_eq!(
            parse(&inert("{\u{202E}red}甲")),
            parse("{red}甲"),
            "a control inside a tag does not make a new kind of tag"
        );
    }

    #[test]
    fn text_without_braces_is_unchanged() {
        assert_eq!(
            parse("城区道路照明").unwrap(),
            Styled::plain("城区道路照明")
        );
    }
}
