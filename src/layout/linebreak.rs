//! Line breaking for Chinese + Latin notice text.
//!
//! This module owns two things:
//!
//! * the *break rules*: where a line may end, found with UAX #14 (the
//!   `unicode-linebreak` crate) and then tailored with the Chinese
//!   line-start/line-end prohibitions of clreq and GB/T 15834—2011 §5.1
//!   ("basic" level), plus a few fixes for what notices contain (numbers with
//!   unit suffixes, standard numbers such as "GB/T", Chinese curly quotes);
//! * *pixel wrapping*: a greedy first-fit wrapper that takes a per-char
//!   `advance` callback and returns byte ranges.
//!
//! It must not touch fonts, glyph caches, the board or any I/O: the caller
//! measures, this module only decides. That keeps it pure, cheap to test, and
//! usable for every page of every notice.
//!
//! LED boards have a fixed width, so punctuation is never "pushed in"
//! (hung past the margin). When a prohibited character would start a line the
//! previous break opportunity is used instead ("push out"); when a run has no
//! opportunity at all it is cut by pixel ("emergency break"), on a char
//! boundary, still preferring a cut that respects the prohibitions.
//!
//! # Rules
//!
//! On top of UAX #14 (tests are named after these numbers):
//!
//! 1. No line starts with a pause/stop mark (、，。．：；！？ and ASCII
//!    ,.:;!?), a closing bracket or quote, %‰％, ・ or 々 / small kana.
//! 2. No line ends with an opening bracket or quote (（【《「『〔〈“‘ and
//!    ASCII ( [ {).
//! 3. "——" and "……" never split, and never start a line.
//! 4. A digit and a following unit ("2008年", "89元", "50%") stay together;
//!    no break after "/" before a letter or digit ("GB/T"); fullwidth
//!    digits/letters stay together. Spaces stay break opportunities.
//! 5. "·" never starts a line and does not break from the Han name part
//!    after it ("马丁·路德"); "～"/"〜" are connectors (GB/T 15834 §5.1.6)
//!    and do not start a line either; "/" between Han words may break after.
//!    Curly quotes open (“‘) or close (”’) in CJK context instead of
//!    UAX #14's ambiguous QU.
//! 6. A run wider than the line is cut by pixel on a char boundary.
//! 7. Newlines (`\n`, `\r\n`, …) are mandatory breaks; empty lines are kept.
//! 8. Push-out, never push-in: a char that may not start a line takes the
//!    char before it down with it.

use std::ops::Range;
use std::str::CharIndices;

use unicode_linebreak::{BreakClass, BreakOpportunity, break_property, linebreaks};

/// A position where a line may (or must) end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Break {
    /// Byte offset into the text; the break is *before* the char at `at`.
    /// `at == text.len()` for the end-of-text break.
    pub at: usize,
    /// `true` after a newline (`\n`, `\r\n`, `\r`, U+2028, …) and at end of
    /// text: the line must end here.
    pub mandatory: bool,
}

/// Where a line may end, as byte offsets into the text (break *before* the
/// char at that offset), in increasing order.
///
/// For non-empty text the last element is always the mandatory end-of-text
/// break at `text.len()`; empty text has no breaks.
#[must_use]
pub fn break_opportunities(text: &str) -> Vec<Break> {
    breaks(text).collect()
}

/// Wrap `text` into lines no wider than `max_width` pixels, measuring each
/// char with `advance`.
///
/// Returns the byte range of each line. Trailing spaces at a break (U+0020,
/// tab, U+3000) and newline characters are not part of any line; leading
/// spaces after a newline (indentation) are kept. Lines follow the
/// convention of [`str::lines`]: a final newline does not start an extra
/// line, an empty text gives no lines, and empty lines are kept as empty
/// ranges.
///
/// A line is wider than `max_width` only if it is a single char that is
/// wider on its own. `advance` is never called for newline characters; it is
/// called once per other char, plus again for at most a few chars next to an
/// emergency break, so it should be deterministic.
#[must_use]
pub fn wrap(text: &str, max_width: u32, mut advance: impl FnMut(char) -> u32) -> Vec<Range<usize>> {
    let max = u64::from(max_width);
    let mut lines = Vec::new();
    if text.is_empty() {
        return lines;
    }
    let mut breaks = breaks(text).peekable();
    // Widths are running totals from the start of the text (u64: no
    // overflow even with absurd advances), so moving a line start back to an
    // earlier opportunity needs no re-measuring.
    let mut cum: u64 = 0;
    let mut line = Line {
        start: 0,
        base: 0,
        content_end: 0,
    };
    let mut last_opp: Option<Opportunity> = None;

    for (i, c) in text.char_indices() {
        if let Some(b) = breaks.next_if(|b| b.at == i) {
            if b.mandatory {
                lines.push(line.start..line.content_end);
                line = Line {
                    start: i,
                    base: cum,
                    content_end: i,
                };
                last_opp = None;
            } else if line.content_end > line.start {
                // An opportunity before any visible char would only produce a
                // blank line, so it is not worth remembering.
                last_opp = Some(Opportunity {
                    at: i,
                    content_end: line.content_end,
                    cum,
                });
            }
        }
        if is_newline(c) {
            continue;
        }
        let a = u64::from(advance(c));
        if is_hanging_space(c) {
            // Spaces may hang past the margin: they are trimmed if the line
            // ends after them, so they never force a break themselves.
            cum += a;
            continue;
        }
        if cum + a - line.base > max && i > line.start {
            // Push out: end the line at the last opportunity. Prohibited
            // characters have no opportunity before them, so the char they
            // attach to moves down with them.
            if let Some(o) = last_opp.take() {
                lines.push(line.start..o.content_end);
                line.start = o.at;
                line.base = o.cum;
                line.content_end = line.content_end.max(o.at);
            }
            // Still too wide: the run since the line start has no opportunity
            // at all (a long word, a URL, a run of punctuation).
            if cum + a - line.base > max && i > line.start {
                let (cut, tail) = emergency_cut(text, line.start, i, a, max, &mut advance);
                lines.push(line.start..trim_end(text, line.start, cut));
                line.start = cut;
                line.base = cum - tail;
                line.content_end = line.content_end.max(cut);
            }
        }
        cum += a;
        line.content_end = i + c.len_utf8();
    }
    // The end-of-text break ends the final line. If the text ends with a
    // newline, the line that newline ends was not pushed yet either (its
    // break is at `text.len()`), so this never adds a spurious empty line.
    lines.push(line.start..line.content_end);
    lines
}

/// The line being filled by [`wrap`].
#[derive(Clone, Copy)]
struct Line {
    /// Byte offset of the first char.
    start: usize,
    /// Running width at `start`.
    base: u64,
    /// End of the last visible (non-space, non-newline) char, or `start`.
    content_end: usize,
}

/// The last soft break opportunity seen on the current line.
#[derive(Clone, Copy)]
struct Opportunity {
    at: usize,
    /// Where the line would end (trailing spaces trimmed) if broken here.
    content_end: usize,
    /// Running width at `at`.
    cum: u64,
}

/// How many chars an emergency break may move down to avoid breaking a
/// prohibition. Bounded so that a long run of prohibited chars (or of
/// zero-width chars) cannot make wrapping quadratic.
const MAX_PUSH_OUT: usize = 8;

/// Chooses where to cut the run `text[start..i]` + the char at `i` (width
/// `a`) that does not fit. Returns the cut and the width of `text[cut..i]`.
///
/// The default is the last char that fits (cut at `i`); a few chars are
/// moved down with it if that avoids e.g. a line starting with "，".
fn emergency_cut(
    text: &str,
    start: usize,
    i: usize,
    a: u64,
    max: u64,
    advance: &mut impl FnMut(char) -> u32,
) -> (usize, u64) {
    let mut before = text.get(start..i).unwrap_or_default().chars();
    let mut cut = i;
    let mut tail = 0u64;
    for _ in 0..=MAX_PUSH_OUT {
        if is_good_cut(text, start, cut) {
            return (cut, tail);
        }
        let Some(ch) = before.next_back() else { break };
        let w = u64::from(advance(ch));
        // Moving `ch` down must not make the next line overflow in turn.
        if tail + w + a > max || cut - ch.len_utf8() <= start {
            break;
        }
        tail += w;
        cut -= ch.len_utf8();
    }
    (i, 0)
}

/// Whether an emergency cut at `cut` breaks none of the tailored
/// prohibitions and leaves something visible on the line before it.
fn is_good_cut(text: &str, start: usize, cut: usize) -> bool {
    let (Some(head), Some(rest)) = (text.get(start..cut), text.get(cut..)) else {
        return false;
    };
    let Some(next) = rest.chars().next() else {
        return false;
    };
    let mut rev = head.chars().rev();
    let Some(prev) = rev.next() else {
        return false;
    };
    let prev_visible = if is_hanging_space(prev) {
        rev.find(|&c| !is_hanging_space(c))
    } else {
        Some(prev)
    };
    prev_visible.is_some() && !is_hanging_space(next) && !forbidden(prev, prev_visible, next)
}

/// End of `text[start..end]` with hanging spaces trimmed.
fn trim_end(text: &str, start: usize, end: usize) -> usize {
    text.get(start..end).map_or(start, |s| {
        start + s.trim_end_matches(is_hanging_space).len()
    })
}

/// UAX #14 opportunities, tailored; see [`decide`].
fn breaks(text: &str) -> Breaks<'_, impl Iterator<Item = (usize, BreakOpportunity)> + '_> {
    let mut uax = linebreaks(text);
    Breaks {
        chars: text.char_indices(),
        pending: uax.next(),
        uax,
        prev: None,
        prev_visible: None,
        end: (!text.is_empty()).then_some(text.len()),
    }
}

/// Walks every char boundary once, in step with the UAX #14 iterator, so the
/// tailoring can both remove breaks and add the few that UAX #14 lacks.
struct Breaks<'a, I> {
    chars: CharIndices<'a>,
    uax: I,
    /// Next UAX #14 break not yet reached.
    pending: Option<(usize, BreakOpportunity)>,
    /// Char just before the boundary under examination.
    prev: Option<char>,
    /// Last char before that boundary that is not a hanging space, so that
    /// "（ " still counts as ending with "（".
    prev_visible: Option<char>,
    /// End-of-text break, until emitted.
    end: Option<usize>,
}

impl<I: Iterator<Item = (usize, BreakOpportunity)>> Breaks<'_, I> {
    /// The UAX #14 verdict for the boundary at `at` (boundaries are visited
    /// in increasing order).
    fn uax_at(&mut self, at: usize) -> Option<BreakOpportunity> {
        while let Some((pos, kind)) = self.pending {
            if pos < at {
                self.pending = self.uax.next();
            } else {
                return (pos == at).then_some(kind);
            }
        }
        None
    }
}

impl<I: Iterator<Item = (usize, BreakOpportunity)>> Iterator for Breaks<'_, I> {
    type Item = Break;

    fn next(&mut self) -> Option<Break> {
        while let Some((i, c)) = self.chars.next() {
            let prev = self.prev.replace(c);
            let prev_visible = self.prev_visible;
            if !is_hanging_space(c) {
                self.prev_visible = Some(c);
            }
            // No break before the first char (UAX #14 LB2).
            let Some(prev) = prev else { continue };
            let uax = self.uax_at(i);
            if let Some(mandatory) = decide(uax, prev, prev_visible, c) {
                return Some(Break { at: i, mandatory });
            }
        }
        // UAX #14 LB3: always break at the end of text. Emitted here rather
        // than taken from the UAX iterator so it appears exactly once.
        self.end.take().map(|at| Break {
            at,
            mandatory: true,
        })
    }
}

/// The tailored verdict for the boundary between `prev` and `next`:
/// `None` for no break, `Some(mandatory)` otherwise.
fn decide(
    uax: Option<BreakOpportunity>,
    prev: char,
    prev_visible: Option<char>,
    next: char,
) -> Option<bool> {
    match uax {
        Some(BreakOpportunity::Mandatory) => return Some(true),
        Some(BreakOpportunity::Allowed) => {}
        None if chinese_quote_break(prev, next) => {}
        None => return None,
    }
    (!forbidden(prev, prev_visible, next)).then_some(false)
}

/// UAX #14 gives curly quotes class QU ("could open or close"), which forbids
/// breaks on both sides. In Chinese text “‘ only open and ”’ only close, so
/// they get the breaks an opening/closing bracket would have. Limited to CJK
/// context so that English "don’t" is left alone.
fn chinese_quote_break(prev: char, next: char) -> bool {
    (is_closing_quote(prev) && (is_cjk(next) || is_opening_quote(next)))
        || (is_opening_quote(next) && is_cjk(prev))
}

/// Breaks the tailoring removes, whatever UAX #14 says (mandatory breaks
/// excepted). Also used to rank emergency cuts.
fn forbidden(prev: char, prev_visible: Option<char>, next: char) -> bool {
    // Rules 1, 3 and 5: characters that must not start a line.
    no_start(next)
        // Rule 2: characters that must not end a line.
        || prev_visible.is_some_and(no_end)
        // Rule 4: "2008年", "12月", "89元", "50%" stay together…
        || (is_digit(prev) && is_unit(next))
        // …as do "GB/T" (UAX #14 breaks after a solidus)…
        || (is_solidus(prev) && is_alphanumeric(next))
        // …and fullwidth numbers such as "２０２４", which UAX #14 treats
        // as ideographs that may break anywhere.
        || (is_fullwidth_alphanumeric(prev) && is_fullwidth_alphanumeric(next))
        // Rule 5: "马丁·路德" is one name.
        || (prev == '·' && is_han(next))
        // Never separate a ZWJ sequence (UAX #14 LB8a), even in an emergency.
        || prev == '\u{200D}'
}

/// Characters that must not start a line (GB/T 15834—2011 §5.1.1–5.1.7).
fn no_start(c: char) -> bool {
    match c {
        // Pause and stop marks, halfwidth and fullwidth.
        '、' | '，' | '。' | '．' | '：' | '；' | '！' | '？' | ',' | '.' | ':' | ';' | '!'
        | '?' => true,
        // Closing brackets and quotes.
        '）' | '］' | '｝' | '】' | '》' | '」' | '』' | '〕' | '〉' | '〗' | '”' | '’' | ')'
        | ']' | '}' => true,
        // Postfix signs.
        '%' | '‰' | '％' => true,
        // Interpunct (§5.1.7), connector wave dashes (§5.1.6), katakana
        // middle dot, fullwidth solidus (like ASCII "/", which UAX #14
        // already keeps off line starts).
        '·' | '・' | '～' | '〜' | '／' => true,
        // Rule 3: dashes and ellipses attach to what precedes them, which
        // also keeps "——" and "……" whole.
        c if is_dash(c) || is_ellipsis(c) => true,
        // Fast paths for the common case before the table lookup.
        c if c.is_ascii() || is_han(c) => false,
        // Any other closing punctuation, non-starter (々, small kana, …) or
        // combining mark, as classified by UAX #14.
        c => matches!(
            break_property(u32::from(c)),
            BreakClass::ClosePunctuation
                | BreakClass::CloseParenthesis
                | BreakClass::Exclamation
                | BreakClass::InfixSeparator
                | BreakClass::NonStarter
                | BreakClass::ConditionalJapaneseStarter
                | BreakClass::CombiningMark
                | BreakClass::ZeroWidthJoiner
        ),
    }
}

/// Characters that must not end a line (GB/T 15834—2011 §5.1.3).
fn no_end(c: char) -> bool {
    match c {
        '（' | '［' | '｛' | '【' | '《' | '「' | '『' | '〔' | '〈' | '〖' | '“' | '‘' | '('
        | '[' | '{' => true,
        c if c.is_ascii() || is_han(c) => false,
        c => break_property(u32::from(c)) == BreakClass::OpenPunctuation,
    }
}

fn is_opening_quote(c: char) -> bool {
    matches!(c, '“' | '‘')
}

fn is_closing_quote(c: char) -> bool {
    matches!(c, '”' | '’')
}

/// Em dash, horizontal bar (GBK/CP936 maps the 破折号 to it) and the two-
/// and three-em dashes.
fn is_dash(c: char) -> bool {
    matches!(c, '\u{2014}' | '\u{2015}' | '\u{2E3A}' | '\u{2E3B}')
}

fn is_ellipsis(c: char) -> bool {
    matches!(c, '\u{2026}' | '\u{22EF}')
}

fn is_digit(c: char) -> bool {
    c.is_ascii_digit() || ('０'..='９').contains(&c)
}

fn is_solidus(c: char) -> bool {
    matches!(c, '/' | '／')
}

fn is_alphanumeric(c: char) -> bool {
    c.is_ascii_alphanumeric() || is_fullwidth_alphanumeric(c)
}

fn is_fullwidth_alphanumeric(c: char) -> bool {
    matches!(c, '０'..='９' | 'Ａ'..='Ｚ' | 'ａ'..='ｚ')
}

/// Unit and date suffixes that follow a number in notices. Keeping one of
/// these with its number can never make a line worse than splitting them.
const UNITS: &str =
    "年月日时分秒号元万亿千百个次人户亩平米%％天周岁项条款件名家届期批份台辆吨倍层套间";

fn is_unit(c: char) -> bool {
    UNITS.contains(c)
}

/// Han ideographs (URO, extension A, compatibility, extensions B–H) and 〇.
fn is_han(c: char) -> bool {
    matches!(
        u32::from(c),
        0x3007 | 0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xF900..=0xFAFF | 0x2_0000..=0x3_23AF
    )
}

/// Han plus CJK punctuation, kana, bopomofo and fullwidth forms: the
/// context in which curly quotes behave as Chinese quotes.
fn is_cjk(c: char) -> bool {
    is_han(c)
        || matches!(
            u32::from(c),
            0x2E80..=0x2FDF
                | 0x3000..=0x30FF
                | 0x3100..=0x312F
                | 0x31F0..=0x31FF
                | 0xFE30..=0xFE4F
                | 0xFF00..=0xFFEF
        )
}

/// Spaces that may hang past the margin and are trimmed at a line end.
/// U+3000 is included because notices pad with it.
fn is_hanging_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\u{3000}')
}

/// Characters that cause a mandatory break (UAX #14 classes BK, CR, LF, NL).
fn is_newline(c: char) -> bool {
    matches!(
        c,
        '\n' | '\r' | '\u{0B}' | '\u{0C}' | '\u{85}' | '\u{2028}' | '\u{2029}'
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Test metric: 16 px for CJK, 8 px for ASCII.
    fn adv(c: char) -> u32 {
        if c.is_ascii() { 8 } else { 16 }
    }

    fn width(s: &str) -> u32 {
        s.chars().map(adv).sum()
    }

    fn lines(text: &str, max_width: u32) -> Vec<&str> {
        let ranges = wrap(text, max_width, adv);
        check_wrap(text, max_width, &ranges, adv);
        ranges.into_iter().map(|r| &text[r]).collect()
    }

    fn starts(text: &str) -> Vec<usize> {
        break_opportunities(text).iter().map(|b| b.at).collect()
    }

    /// Whether a break is allowed before the first occurrence of `needle`.
    fn breakable_before(text: &str, needle: &str) -> bool {
        let at = text.find(needle).expect("needle in text");
        starts(text).contains(&at)
    }

    fn breakable_after(text: &str, needle: &str) -> bool {
        let at = text.find(needle).expect("needle in text") + needle.len();
        starts(text).contains(&at)
    }

    /// Checks the wrapping invariants on one result.
    fn check_wrap(
        text: &str,
        max: u32,
        ranges: &[Range<usize>],
        mut advance: impl FnMut(char) -> u32,
    ) {
        let mut measure = |s: &str| -> u64 { s.chars().map(|c| u64::from(advance(c))).sum() };
        let ctx = || format!("text {text:?} max {max} ranges {ranges:?}");
        let opps: Vec<usize> = break_opportunities(text).iter().map(|b| b.at).collect();
        // One line per paragraph at least (each ends at a mandatory break).
        let paragraphs = break_opportunities(text)
            .iter()
            .filter(|b| b.mandatory)
            .count();
        assert!(ranges.len() >= paragraphs, "{}", ctx());

        let mut prev_end = 0;
        for (k, r) in ranges.iter().enumerate() {
            // Ordered, non-overlapping, on char boundaries.
            assert!(prev_end <= r.start && r.start <= r.end, "{}", ctx());
            assert!(text.is_char_boundary(r.start) && text.is_char_boundary(r.end));
            // Only removed spaces and newlines between lines.
            let gap = &text[prev_end..r.start];
            assert!(
                gap.chars().all(|c| is_hanging_space(c) || is_newline(c)),
                "gap {gap:?}: {}",
                ctx()
            );
            let line = &text[r.clone()];
            assert!(!line.chars().any(is_newline), "{}", ctx());
            // Never wider than max, except a single char wider on its own.
            let w = measure(line);
            assert!(
                w <= u64::from(max) || line.chars().count() == 1,
                "line {line:?} is {w} px: {}",
                ctx()
            );
            // A soft line start (not after a newline) is an opportunity, or
            // an emergency break that was really needed: no opportunity on
            // the previous line, and its unbreakable run did not fit.
            let soft = k > 0 && !gap.chars().any(is_newline) && !line.is_empty();
            if soft && !opps.contains(&r.start) {
                let p = &ranges[k - 1];
                // (Opportunities before any visible char do not count: they
                // would only produce a blank line.)
                assert!(
                    !opps.iter().any(|&o| o > p.start
                        && o <= r.start
                        && trim_end(text, p.start, o) > p.start),
                    "emergency break at {} with an earlier opportunity: {}",
                    r.start,
                    ctx()
                );
                let next_opp = opps
                    .iter()
                    .copied()
                    .find(|&o| o > r.start)
                    .unwrap_or(text.len());
                let run_end = trim_end(text, p.start, next_opp);
                let run = text[p.start..run_end].trim_end_matches(is_newline);
                assert!(
                    measure(run) > u64::from(max),
                    "needless emergency break at {}: {}",
                    r.start,
                    ctx()
                );
            }
            // Prohibited starts/ends only come from emergency breaks.
            if soft && line.chars().next().is_some_and(no_start) {
                assert!(!opps.contains(&r.start), "{}", ctx());
            }
            prev_end = r.end;
        }
        for pair in ranges.windows(2) {
            let (a, b) = (&pair[0], &pair[1]);
            let gap = &text[a.end..b.start];
            let line = &text[a.clone()];
            if !gap.chars().any(is_newline) && line.chars().next_back().is_some_and(no_end) {
                assert!(!opps.contains(&b.start), "{}", ctx());
            }
        }
        let tail = &text[prev_end..];
        assert!(
            tail.chars().all(|c| is_hanging_space(c) || is_newline(c)),
            "{}",
            ctx()
        );
    }

    #[test]
    fn rule1_no_line_starts_with_closing_punctuation() {
        for p in [
            "、", "，", "。", "．", "：", "；", "！", "？", "）", "】", "》", "」", "』", "〕",
            "〉", "”", "’", "%", "‰", "％", "］", ",", ".", ":", ";", "!", "?", ")", "]", "・",
            "々",
        ] {
            let text = format!("公告{p}内容");
            assert!(!breakable_before(&text, p), "break before {p}");
            assert!(no_start(p.chars().next().unwrap_or(' ')), "{p}");
        }
        // The comma moves down together with the char before it.
        assert_eq!(
            lines("一二三四五六七八，九", 128),
            ["一二三四五六七", "八，九"]
        );
    }

    #[test]
    fn rule2_no_line_ends_with_opening_bracket() {
        for p in ["（", "【", "《", "「", "『", "〔", "〈", "“", "‘", "("] {
            let text = format!("公告{p}内容");
            assert!(!breakable_after(&text, p), "break after {p}");
            assert!(breakable_before(&text, p), "no break before {p}");
        }
        // Even with a space after the bracket.
        assert!(!breakable_after("公告（ 内容", "（ "));
        assert_eq!(
            lines("一二三四五六七《条例》", 128),
            ["一二三四五六七", "《条例》"]
        );
    }

    #[test]
    fn rule3_dash_and_ellipsis_never_split() {
        let text = "他说——这是第一次……真的";
        assert!(!breakable_before(text, "——"));
        assert!(!breakable_after(text, "—"), "inside ——");
        assert!(!breakable_before(text, "……"));
        assert!(!breakable_after(text, "…"), "inside ……");
        assert!(breakable_after(text, "——"));
        // From 48 px on, "说——" fits on a line (below that only emergency
        // cuts are possible).
        for max in (48..=256).step_by(8) {
            for line in lines(text, max) {
                assert!(!line.starts_with(['—', '…']), "{line:?} at {max}");
                assert_eq!(line.matches('—').count() % 2, 0, "{line:?} at {max}");
                assert_eq!(line.matches('…').count() % 2, 0, "{line:?} at {max}");
            }
        }
        assert_eq!(lines("一二三四五六七——八", 128), ["一二三四五六", "七——八"]);
    }

    #[test]
    fn rule4_numbers_dates_and_latin_words_stay_whole() {
        for (text, inside) in [
            ("于2008年发布", "2008年"),
            ("自12月15日起", "12月15日"),
            ("计1,234,567.89元整", "1,234,567.89元"),
            ("依据GB/T 15834执行", "GB/T"),
            ("于19:00开始", "19:00"),
            ("占50%以上", "50%"),
            ("于２００８年发布", "２００８年"),
        ] {
            let start = text.find(inside).expect("in text");
            let end = start + inside.len();
            for at in starts(text) {
                // "12月15日" may break after 月: only digit+unit is glued.
                if inside == "12月15日" && text[..at].ends_with('月') {
                    continue;
                }
                assert!(
                    at <= start || at >= end,
                    "break at {at} inside {inside} in {text}"
                );
            }
        }
        // The space in "GB/T 15834" stays a break.
        assert!(breakable_before("依据GB/T 15834执行", "15834"));
        // "GB/T 15834" moves down whole only when it does not fit.
        assert_eq!(lines("依据GB/T 15834", 192), ["依据GB/T 15834"]);
        assert_eq!(lines("依据GB/T 15834", 96), ["依据GB/T", "15834"]);
    }

    #[test]
    fn rule5_middle_dot_slash_and_wave_dash() {
        let name = "马丁·路德·金";
        assert!(!breakable_before(name, "·"));
        assert!(!breakable_after(name, "·"));
        // "丁·路" is unbreakable: 48 px.
        for max in (48..=128).step_by(8) {
            for line in lines(name, max) {
                assert!(!line.starts_with('·'), "{line:?} at {max}");
            }
        }
        // A solidus between CJK words is a break (after it, never before).
        let offices = "县财政局/县审计局";
        assert!(breakable_after(offices, "/"));
        assert!(!breakable_before(offices, "/"));
        assert!(breakable_after("县财政局／县审计局", "／"));
        assert_eq!(lines(offices, 80), ["县财政局/", "县审计局"]);
        // Wave dashes are connectors (GB/T 15834 §5.1.6): not at a line start.
        for (text, dash) in [("12月1日～12月7日", "～"), ("12月1日〜12月7日", "〜")] {
            assert!(!breakable_before(text, dash), "{text}");
            assert!(breakable_after(text, dash), "{text}");
        }
    }

    #[test]
    fn rule6_emergency_break_by_pixel() {
        // 20 ASCII chars, 64 px: 8 chars per line, cut by pixel.
        assert_eq!(
            lines("abcdefghijklmnopqrst", 64),
            ["abcdefgh", "ijklmnop", "qrst"]
        );
        // A long word starts on its own line before it is cut.
        assert_eq!(lines("ab cdefghijkl", 64), ["ab", "cdefghij", "kl"]);
        // A char never splits, even when it alone is wider than the line.
        assert_eq!(lines("中文", 8), ["中", "文"]);
        assert_eq!(lines("a中b", 0), ["a", "中", "b"]);
        // Emergency cuts still avoid a prohibited start when they can.
        assert_eq!(lines("abcdefg，hij", 64), ["abcdef", "g，hij"]);
    }

    #[test]
    fn rule7_mandatory_breaks_and_empty_lines() {
        let text = "第一行\n\n第三行\r\n第四行\n";
        assert_eq!(lines(text, 192), ["第一行", "", "第三行", "第四行"]);
        let b = break_opportunities("甲\r\n乙");
        assert_eq!(
            b,
            [
                Break {
                    at: 5,
                    mandatory: true
                },
                Break {
                    at: 8,
                    mandatory: true
                }
            ]
        );
        assert_eq!(lines("\n", 64), [""]);
        assert_eq!(lines("", 64), Vec::<&str>::new());
        assert!(break_opportunities("").is_empty());
        // Trailing spaces before a newline are dropped; indentation is kept.
        assert_eq!(
            lines("甲  \n\u{3000}\u{3000}乙", 192),
            ["甲", "\u{3000}\u{3000}乙"]
        );
    }

    #[test]
    fn rule8_push_out_moves_the_previous_char_down() {
        // 。 would start line 2: 九 goes down with it.
        assert_eq!(
            lines("一二三四五六七八九。", 144),
            ["一二三四五六七八", "九。"]
        );
        // ” and 。 both attach, and so does the char before them.
        assert_eq!(
            lines("一二三四五六七“八”。", 144),
            ["一二三四五六七", "“八”。"]
        );
        // No earlier opportunity on the line: emergency break by pixel.
        assert_eq!(lines("，，，，，", 32), ["，，", "，，", "，"]);
    }

    #[test]
    fn chinese_curly_quotes_open_and_close() {
        let text = "他说：“你好”他走了。“再见”";
        assert!(breakable_before(text, "“你"));
        assert!(breakable_after(text, "好”"));
        assert!(!breakable_after(text, "“"));
        assert!(!breakable_before(text, "”"));
        // English apostrophes are left to UAX #14.
        assert!(!breakable_after("don’t", "’"));
    }

    #[test]
    fn wrap_fixed_advance_192_and_128() {
        let text = "关于2024年度财政预算执行情况的公告（第3号）：现将有关事项公告如下。";
        assert_eq!(
            lines(text, 192),
            [
                "关于2024年度财政预算执行",
                "情况的公告（第3号）：现",
                "将有关事项公告如下。"
            ]
        );
        assert_eq!(
            lines(text, 128),
            [
                "关于2024年度财政",
                "预算执行情况的公",
                "告（第3号）：现",
                "将有关事项公告如",
                "下。"
            ]
        );
        for line in lines(text, 192) {
            assert!(width(line) <= 192);
        }
    }

    #[test]
    fn notice_amount_and_dates_at_many_widths() {
        let text = "中标金额人民币1,234,567.89元，公示期自12月1日至12月7日。";
        let amount = "1,234,567.89元";
        // From 40 px on, "9元，" (which must stay together) fits, so the rule
        // can be honoured.
        for max in (40..=480).step_by(4) {
            let got = lines(text, max);
            for line in &got {
                assert!(
                    !line.starts_with(['，', '。']),
                    "{line:?} at {max}: {got:?}"
                );
            }
            // The amount drags its "，" along (no push-in on LED boards), so
            // it can stay whole whenever amount + "，" fits.
            if max >= width(amount) + 16 {
                assert!(
                    got.iter().any(|l| l.contains(amount)),
                    "split at {max}: {got:?}"
                );
            }
            if max >= 64 {
                assert!(
                    got.iter().all(|l| !l.ends_with("12") && !l.ends_with('1')),
                    "{got:?}"
                );
            }
        }
    }

    #[test]
    fn gbt_reference_keeps_gb_t() {
        let text = "依据GB/T 15834—2011标点符号用法";
        for max in (32..=320).step_by(8) {
            let got = lines(text, max);
            for line in &got {
                if line.contains(['G', 'B', '/', 'T']) {
                    assert!(line.contains("GB/T"), "{line:?} at {max}: {got:?}");
                }
                assert!(!line.starts_with('—'), "{got:?}");
            }
        }
        assert_eq!(lines(text, 128), ["依据GB/T 15834—", "2011标点符号用法"]);
        assert_eq!(lines(text, 96), ["依据GB/T", "15834—2011", "标点符号用法"]);
    }

    #[test]
    fn long_url_breaks_by_pixel() {
        let url = "https://www.example.gov.cn/zwgk/tzgg/202401/t20240115_1234567.html";
        let got = lines(url, 128);
        assert!(got.len() > 1);
        for line in &got {
            assert!(width(line) <= 128, "{got:?}");
        }
        // Every line but the last is nearly full: a cut is moved back only
        // to keep "." or "/" off a line start.
        for line in &got[..got.len() - 1] {
            assert!(width(line) >= 128 - 8 * 2, "{got:?}");
            assert!(!line.is_empty());
        }
        assert_eq!(got.concat(), url);
    }

    #[test]
    fn lines_and_removed_whitespace_reproduce_the_text() {
        let text = "一、项目名称：某县 2024 年道路改造工程\n二、中标人：某某建设有限公司 \n\n三、公示期：自12月1日至12月7日。";
        for max in [48, 64, 100, 128, 192, 1000] {
            let ranges = wrap(text, max, adv);
            let mut rebuilt = String::new();
            let mut at = 0;
            for r in &ranges {
                let removed = &text[at..r.start];
                assert!(
                    removed
                        .chars()
                        .all(|c| is_hanging_space(c) || is_newline(c))
                );
                rebuilt.push_str(removed);
                rebuilt.push_str(&text[r.clone()]);
                at = r.end;
            }
            rebuilt.push_str(&text[at..]);
            assert_eq!(rebuilt, text);
        }
    }

    /// xorshift64*: deterministic, no `rand` needed.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }

        fn below(&mut self, n: usize) -> usize {
            usize::try_from(self.next() % n as u64).unwrap_or(0)
        }
    }

    #[test]
    fn property_invariants_hold_for_many_strings() {
        let fixed = [
            "",
            " ",
            "\n",
            "   缩进",
            "中标金额人民币1,234,567.89元，公示期自12月1日至12月7日。",
            "依据GB/T 15834—2011标点符号用法",
            "县财政局/县审计局",
            "马丁·路德·金",
            "他说——这是第一次……真的",
            "https://www.example.gov.cn/zwgk/tzgg/202401/t20240115_1234567.html",
            "（一）（二）（三）“”“”",
            "，。、；：！？）】》」』〕〉”’",
            "a\r\nb\rc\u{2028}d",
            "emoji 👨\u{200D}👩\u{200D}👧 家庭",
            "e\u{301}\u{301}\u{301}\u{301}\u{301}\u{301}\u{301}\u{301}\u{301}\u{301}",
        ];
        let pieces = [
            "中", "国", "政", "府", "信", "息", "公", "开", "年", "月", "日", "元", "、", "，",
            "。", "．", "：", "；", "！", "？", "）", "】", "》", "」", "』", "〕", "〉", "”", "’",
            "（", "【", "《", "「", "『", "〔", "〈", "“", "‘", "——", "……", "—", "…", "·", "～",
            "〜", "/", "／", "%", "‰", "0", "1", "2", "9", ",", ".", ":", "G", "B", "T", "a", "z",
            " ", " ", "  ", "\u{3000}", "\n", "\r\n", "\t", "々", "ぁ", "２", "Ｔ", "e\u{301}",
            "\u{200D}", "(", ")", "-", "_",
        ];
        let widths = [0, 7, 8, 15, 16, 24, 32, 40, 48, 64, 100, 128, 192, 320];
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let mut texts: Vec<String> = fixed.iter().map(ToString::to_string).collect();
        for _ in 0..1500 {
            let len = rng.below(40);
            let mut s = String::new();
            for _ in 0..len {
                s.push_str(pieces[rng.below(pieces.len())]);
            }
            texts.push(s);
        }
        // A proportional-ish metric with zero-width chars, to catch any
        // assumption that every char has the same width.
        let odd = |c: char| u32::from(c) % 7 * 3;
        for text in &texts {
            for &max in &widths {
                check_wrap(text, max, &wrap(text, max, adv), adv);
                check_wrap(text, max, &wrap(text, max, odd), odd);
            }
            // Tailored breaks are sorted, unique, on char boundaries, and
            // never before a prohibited char.
            let b = break_opportunities(text);
            assert!(b.windows(2).all(|w| w[0].at < w[1].at), "{text:?}");
            for br in &b {
                assert!(text.is_char_boundary(br.at) && br.at > 0, "{text:?}");
                let after_newline = text[..br.at].ends_with(is_newline);
                if !br.mandatory {
                    assert!(!after_newline);
                    let next = text[br.at..].chars().next().unwrap_or(' ');
                    assert!(!no_start(next), "break before {next:?} in {text:?}");
                }
            }
            if !text.is_empty() {
                assert_eq!(
                    b.last(),
                    Some(&Break {
                        at: text.len(),
                        mandatory: true
                    })
                );
            }
        }
    }
}
