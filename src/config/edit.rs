//! Text edits of a playlist file that leave every byte they do not concern as it was.
//!
//! The operator's YAML carries comments, blank lines, key order and quoting that a
//! parse-and-reserialize round trip would lose, so `gongkai publish` edits the file as text:
//! [`append_item`] finds the top-level `items:` block sequence, works out how its entries are
//! indented and separated, and inserts one new entry after the last. Nothing here reads files
//! or knows what an item means; the caller validates the result by loading it like any site.
//!
//! Where the new entry goes:
//! - after the last existing entry, with the same dash indentation (0, 2, 4, … spaces) and key
//!   column, and as many blank lines before it as usually separate the existing entries;
//! - comments that follow the last entry and are indented at least as far as the entries'
//!   dashes (a note on that entry, or the heading of entries to come) stay before the new
//!   entry; a comment further left (at column 0 under indented entries) and everything after
//!   it stay after the new entry, so a file's closing comments remain at the end;
//! - `items: []` becomes `items:` followed by a block sequence, indented like the file's other
//!   block sequences (2 spaces when it has none); `items:` with nothing under it likewise;
//! - the extent of the last entry is found from indentation, except that the lines of a
//!   quoted scalar or flow collection left open on a line (`body: "…` continued below) belong
//!   to it however they are indented; block scalars (`|`, `>`) are indented by definition;
//! - the new lines end like the file's lines (CRLF when its first line ends in CRLF), and a
//!   file without a final newline still has none.
//!
//! Values are written so that the loader reads back exactly the string given: every scalar is
//! double-quoted with escapes ([`double_quoted`]); a multi-line text is written as a literal
//! block (`|-`) when that is exact and unambiguous, and double-quoted with `\n` otherwise
//! ([`Value::Text`]).

use std::fmt::Write as _;

use crate::diag::Msg;

/// A value of the new entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    /// A string, written double-quoted.
    Quoted(String),
    /// A possibly long, possibly multi-line text: a literal block when that reads back
    /// exactly, double-quoted otherwise.
    Text(String),
    /// A flow mapping of strings, such as `{ from: "2026-12-01", until: "2026-12-14" }`.
    /// The keys are written as they are and must be plain YAML keys.
    Flow(Vec<(String, String)>),
}

/// Why a file cannot be edited as text.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EditError {
    #[error("the file has no top-level `items:` key")]
    NoItems,
    #[error("`items:` at line {line} is not a block sequence")]
    NotBlockSequence { line: u32 },
    #[error("the new entry has no fields")]
    NoFields,
}

impl EditError {
    /// The operator's message for this problem.
    pub fn msg(&self) -> Msg {
        match self {
            EditError::NoItems => Msg::new("publish.edit.no_items"),
            EditError::NotBlockSequence { line } => {
                Msg::new("publish.edit.not_block").arg("line", line)
            }
            EditError::NoFields => Msg::new("publish.edit.no_fields"),
        }
    }
}

/// The result of [`append_item`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Inserted {
    /// The whole new file.
    pub text: String,
    /// The entry's lines as inserted (without the separating blank lines), `\n`-terminated,
    /// for showing to the operator.
    pub block: String,
    /// 1-based line of the first inserted line (a separating blank line, if any) in `text`.
    pub first_line: u32,
    /// How many lines were inserted, separating blank lines included.
    pub lines: u32,
    /// 1-based line of the entry's dash in `text`.
    pub entry_line: u32,
}

impl Inserted {
    /// Where a line of the new file was in the old one: `None` for an inserted line.
    pub fn original_line(&self, line: u32) -> Option<u32> {
        if line < self.first_line {
            Some(line)
        } else if line < self.first_line + self.lines {
            None
        } else {
            Some(line - self.lines)
        }
    }
}

/// One line of the file: byte range without its terminator, and where the next line starts.
#[derive(Clone, Copy, Debug)]
struct Line<'a> {
    /// The line without `\n` or `\r\n`.
    text: &'a str,
    /// Byte offset of the line's first byte.
    start: usize,
    /// Byte offset just past the terminator (the file's length for a last line without one).
    next: usize,
    /// Whether a line terminator follows.
    terminated: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Blank,
    Comment,
    Content,
}

impl Line<'_> {
    fn indent(&self) -> usize {
        self.text.len() - self.text.trim_start_matches(' ').len()
    }

    fn kind(&self) -> Kind {
        let rest = self.text.trim_start_matches([' ', '\t']);
        if rest.is_empty() {
            Kind::Blank
        } else if rest.starts_with('#') {
            Kind::Comment
        } else {
            Kind::Content
        }
    }

    /// Whether the line, after its indentation, is a block sequence entry (`-` then a space
    /// or nothing).
    fn is_entry(&self) -> bool {
        let rest = &self.text[self.indent()..];
        rest == "-" || rest.starts_with("- ") || rest.starts_with("-\t")
    }
}

fn split_lines(text: &str) -> Vec<Line<'_>> {
    let mut lines = Vec::new();
    let mut start = 0;
    while start < text.len() {
        let (end, next, terminated) = match text[start..].find('\n') {
            Some(at) => (start + at, start + at + 1, true),
            None => (text.len(), text.len(), false),
        };
        let body = &text[start..end];
        let body = body.strip_suffix('\r').unwrap_or(body);
        lines.push(Line {
            text: body,
            start,
            next,
            terminated,
        });
        start = next;
    }
    lines
}

/// What follows `items:` on its own line.
enum ItemsValue {
    /// Nothing, or a comment: a block sequence (or nothing at all) follows.
    Block,
    /// `[]`: the byte range to delete so the line reads `items:` (keeping a comment).
    EmptyFlow(std::ops::Range<usize>),
}

/// The index of the top-level `items:` line and what follows the colon.
fn find_items(lines: &[Line<'_>]) -> Result<(usize, ItemsValue), EditError> {
    for (index, line) in lines.iter().enumerate() {
        if line.indent() != 0 || line.kind() != Kind::Content {
            continue;
        }
        let text = line.text;
        let key_end = ["items", "\"items\"", "'items'"]
            .iter()
            .find(|key| text.starts_with(*key))
            .map(|key| key.len());
        let Some(key_end) = key_end else { continue };
        let after_key = text[key_end..].trim_start_matches([' ', '\t']);
        let Some(value) = after_key.strip_prefix(':') else {
            continue;
        };
        if !(value.is_empty() || value.starts_with([' ', '\t'])) {
            // `items:x` is a different plain scalar, not the key.
            continue;
        }
        let line_no = index as u32 + 1;
        let colon = text.len() - value.len();
        let trimmed = value.trim_start_matches([' ', '\t']);
        if trimmed.is_empty() || trimmed.starts_with('#') {
            return Ok((index, ItemsValue::Block));
        }
        if let Some(after) = trimmed.strip_prefix('[') {
            let inner = after.trim_start_matches([' ', '\t']);
            if let Some(rest) = inner.strip_prefix(']') {
                let tail = rest.trim_start_matches([' ', '\t']);
                if tail.is_empty() || tail.starts_with('#') {
                    // Delete from just after the colon to the `]`; with nothing after it, the trailing
                    // spaces too.
                    let close = text.len() - rest.len();
                    let end = if tail.is_empty() { text.len() } else { close };
                    return Ok((
                        index,
                        ItemsValue::EmptyFlow(line.start + colon..line.start + end),
                    ));
                }
            }
        }
        return Err(EditError::NotBlockSequence { line: line_no });
    }
    Err(EditError::NoItems)
}

/// The indentation of the file's other block sequences under top-level keys, for a sequence
/// that does not exist yet.
fn usual_sequence_indent(lines: &[Line<'_>]) -> usize {
    for (index, line) in lines.iter().enumerate() {
        if line.indent() != 0 || line.kind() != Kind::Content {
            continue;
        }
        let value = line.text.split_once(':').map(|(_, v)| v.trim());
        if !value.is_some_and(|v| v.is_empty() || v.starts_with('#')) {
            continue;
        }
        let next = lines[index + 1..]
            .iter()
            .find(|l| l.kind() == Kind::Content);
        if let Some(next) = next
            && next.is_entry()
        {
            return next.indent();
        }
    }
    2
}

/// The existing block sequence under `items:`.
struct Sequence {
    /// Column of the entries' dashes.
    indent: usize,
    /// Column of the keys of an entry's mapping.
    key_column: usize,
    /// Index of the last line that belongs to the last entry's content.
    last_content: usize,
    /// Index of the last trailing comment kept with the entries, if any.
    last_kept_comment: Option<usize>,
    /// Blank lines usually separating two entries.
    separation: usize,
}

fn scan_sequence(lines: &[Line<'_>], items: usize) -> Result<Option<Sequence>, EditError> {
    let first = lines[items + 1..]
        .iter()
        .position(|l| l.kind() == Kind::Content)
        .map(|p| p + items + 1);
    let Some(first) = first else { return Ok(None) };
    let head = &lines[first];
    if !head.is_entry() {
        if head.indent() == 0 {
            // `items:` with nothing under it, and the next top-level key.
            return Ok(None);
        }
        return Err(EditError::NotBlockSequence {
            line: items as u32 + 1,
        });
    }
    let indent = head.indent();
    let mut last_content = first;
    let mut last_entry = first;
    let mut gaps: Vec<usize> = Vec::new();
    let mut end = lines.len();
    let mut open = opened_by(head.text);
    for (index, line) in lines.iter().enumerate().skip(first + 1) {
        if open != Open::Closed {
            // Inside a multi-line quoted scalar or flow collection, whatever the line's
            // indentation and whatever it looks like.
            open = scan(line.text, open);
            last_content = index;
            continue;
        }
        if line.kind() != Kind::Content {
            continue;
        }
        if line.indent() > indent {
            last_content = index;
            open = opened_by(line.text);
        } else if line.indent() == indent && line.is_entry() {
            open = opened_by(line.text);
            let blanks = lines[last_content + 1..index]
                .iter()
                .filter(|l| l.kind() == Kind::Blank)
                .count();
            gaps.push(blanks);
            last_content = index;
            last_entry = index;
        } else {
            end = index;
            break;
        }
    }
    let dash = &lines[last_entry];
    let after_dash = &dash.text[dash.indent() + 1..];
    let key_column = if after_dash.trim().is_empty() {
        indent + 2
    } else {
        dash.indent() + 1 + (after_dash.len() - after_dash.trim_start_matches(' ').len())
    };
    let mut last_kept_comment = None;
    for (index, line) in lines.iter().enumerate().take(end).skip(last_content + 1) {
        match line.kind() {
            Kind::Blank => {}
            Kind::Comment if line.indent() >= indent => last_kept_comment = Some(index),
            _ => break,
        }
    }
    Ok(Some(Sequence {
        indent,
        key_column,
        last_content,
        last_kept_comment,
        separation: usual(&gaps),
    }))
}

/// A quoted scalar or flow collection left open at the end of a line: the next lines
/// continue it, however they are indented.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Open {
    Closed,
    Double,
    Single,
    /// Inside `[`/`{`, `depth` deep, possibly inside a quoted scalar.
    Flow {
        depth: u32,
        quote: Option<char>,
    },
}

/// What a line of a block mapping or sequence leaves open: looks at its value (after any
/// `- ` and `key:`, anchors and tags) and scans it when it starts a quoted scalar or a flow
/// collection.
fn opened_by(text: &str) -> Open {
    let mut rest = text.trim_start_matches(' ');
    while let Some(after) = rest.strip_prefix('-') {
        if after.is_empty() || after.starts_with([' ', '\t']) {
            rest = after.trim_start_matches([' ', '\t']);
        } else {
            break;
        }
    }
    // A quoted key (`"a b": …`) is closed on its line; what follows its colon is the value.
    if let Some(quote @ ('"' | '\'')) = rest.chars().next() {
        let state = if quote == '"' {
            Open::Double
        } else {
            Open::Single
        };
        // `end` is the closing quote's offset in `rest[1..]`.
        match close_of(&rest[1..], state) {
            Some(end) => {
                let after = rest[end + 2..].trim_start_matches([' ', '\t']);
                match after.strip_prefix(':') {
                    Some(value) => rest = value,
                    None => return Open::Closed,
                }
            }
            None => return state,
        }
    } else if !rest.starts_with(['[', '{']) {
        let key_end = rest
            .char_indices()
            .find(|&(i, c)| {
                c == ':'
                    && rest[i + 1..]
                        .chars()
                        .next()
                        .is_none_or(|n| n == ' ' || n == '\t')
            })
            .map(|(i, _)| i);
        match key_end {
            Some(i) => rest = &rest[i + 1..],
            None => return Open::Closed,
        }
    }
    let mut value = rest.trim_start_matches([' ', '\t']);
    // Anchors and tags before the value.
    while value.starts_with(['&', '!']) {
        let token = value.find([' ', '\t']).unwrap_or(value.len());
        value = value[token..].trim_start_matches([' ', '\t']);
    }
    match value.chars().next() {
        Some('"') => scan(&value[1..], Open::Double),
        Some('\'') => scan(&value[1..], Open::Single),
        Some('[' | '{') => scan(
            &value[1..],
            Open::Flow {
                depth: 1,
                quote: None,
            },
        ),
        _ => Open::Closed,
    }
}

/// Byte offset of the quote closing a scalar that is open in `state`, if on this line.
fn close_of(text: &str, state: Open) -> Option<usize> {
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        match (state, c) {
            (Open::Double, '\\') => {
                chars.next();
            }
            (Open::Double, '"') => return Some(i),
            (Open::Single, '\'') if chars.peek().is_some_and(|&(_, n)| n == '\'') => {
                chars.next();
            }
            (Open::Single, '\'') => return Some(i),
            _ => {}
        }
    }
    None
}

/// The state at the end of `text`, a line that starts in `state`.
fn scan(text: &str, state: Open) -> Open {
    match state {
        Open::Closed => Open::Closed,
        Open::Double | Open::Single => match close_of(text, state) {
            Some(_) => Open::Closed,
            None => state,
        },
        Open::Flow {
            mut depth,
            mut quote,
        } => {
            let mut chars = text.chars().peekable();
            let mut prev = ' ';
            while let Some(c) = chars.next() {
                match (quote, c) {
                    (Some('"'), '\\') => {
                        chars.next();
                    }
                    (Some('"'), '"') => quote = None,
                    (Some('\''), '\'') if chars.peek() == Some(&'\'') => {
                        chars.next();
                    }
                    (Some('\''), '\'') => quote = None,
                    (Some(_), _) => {}
                    (None, '"' | '\'') if prev.is_whitespace() || "[{,:".contains(prev) => {
                        quote = Some(c);
                    }
                    (None, '[' | '{') => depth += 1,
                    (None, ']' | '}') => {
                        depth -= 1;
                        if depth == 0 {
                            return Open::Closed;
                        }
                    }
                    (None, '#') if prev.is_whitespace() => break,
                    (None, _) => {}
                }
                prev = c;
            }
            Open::Flow { depth, quote }
        }
    }
}

/// The most common gap; of equally common ones, the latest; 0 when there are none.
fn usual(gaps: &[usize]) -> usize {
    let mut best = (0, 0);
    for &gap in gaps {
        let count = gaps.iter().filter(|&&g| g == gap).count();
        if count >= best.1 {
            best = (gap, count);
        }
    }
    best.0
}

/// Appends an entry with `fields` (written in this order) to the top-level `items:` block
/// sequence of a playlist file's `text`.
pub fn append_item(text: &str, fields: &[(&str, Value)]) -> Result<Inserted, EditError> {
    if fields.is_empty() {
        return Err(EditError::NoFields);
    }
    let lines = split_lines(text);
    let eol = match lines.first() {
        Some(line) if line.terminated && text[..line.next].ends_with("\r\n") => "\r\n",
        _ => "\n",
    };
    let (items, value) = find_items(&lines)?;
    let (after_line, indent, key_column, separation, deleted) = match value {
        ItemsValue::EmptyFlow(range) => {
            let indent = usual_sequence_indent(&lines);
            (items, indent, indent + 2, 0, Some(range))
        }
        ItemsValue::Block => match scan_sequence(&lines, items)? {
            None => {
                let indent = usual_sequence_indent(&lines);
                (items, indent, indent + 2, 0, None)
            }
            Some(seq) => match seq.last_kept_comment {
                // A comment at the dashes' column heads what follows it: no gap after it.
                Some(c) if lines[c].indent() == seq.indent => {
                    (c, seq.indent, seq.key_column, 0, None)
                }
                Some(c) => (c, seq.indent, seq.key_column, seq.separation, None),
                None => (
                    seq.last_content,
                    seq.indent,
                    seq.key_column,
                    seq.separation,
                    None,
                ),
            },
        },
    };

    let block = render_entry(fields, indent, key_column);
    let block_lines: Vec<&str> = block.lines().collect();
    let anchor = &lines[after_line];
    let mut inserted = String::new();
    if !anchor.terminated {
        inserted.push_str(eol);
    }
    for _ in 0..separation {
        inserted.push_str(eol);
    }
    for (n, line) in block_lines.iter().enumerate() {
        inserted.push_str(line);
        if anchor.terminated || n + 1 < block_lines.len() {
            inserted.push_str(eol);
        }
    }

    let at = anchor.next;
    let mut out = String::with_capacity(text.len() + inserted.len());
    match &deleted {
        Some(range) => {
            out.push_str(&text[..range.start]);
            out.push_str(&text[range.end..at]);
        }
        None => out.push_str(&text[..at]),
    }
    out.push_str(&inserted);
    out.push_str(&text[at..]);

    let first_line = after_line as u32 + 2;
    let lines = (separation + block_lines.len()) as u32;
    Ok(Inserted {
        text: out,
        block,
        first_line,
        lines,
        entry_line: first_line + separation as u32,
    })
}

/// The entry's lines, `\n`-terminated.
fn render_entry(fields: &[(&str, Value)], indent: usize, key_column: usize) -> String {
    let mut out = String::new();
    for (n, (key, value)) in fields.iter().enumerate() {
        if n == 0 {
            let gap = key_column.saturating_sub(indent + 1).max(1);
            let _ = write!(out, "{}-{}", " ".repeat(indent), " ".repeat(gap));
        } else {
            out.push_str(&" ".repeat(key_column));
        }
        let _ = write!(out, "{key}:");
        match value {
            Value::Quoted(s) => {
                let _ = writeln!(out, " {}", double_quoted(s));
            }
            Value::Text(s) if literal_safe(s) => {
                out.push_str(" |-\n");
                for line in s.split('\n') {
                    if !line.is_empty() {
                        out.push_str(&" ".repeat(key_column + 2));
                        out.push_str(line);
                    }
                    out.push('\n');
                }
            }
            Value::Text(s) => {
                let _ = writeln!(out, " {}", double_quoted(s));
            }
            Value::Flow(pairs) => {
                let inner: Vec<String> = pairs
                    .iter()
                    .map(|(k, v)| format!("{k}: {}", double_quoted(v)))
                    .collect();
                let _ = writeln!(out, " {{ {} }}", inner.join(", "));
            }
        }
    }
    out
}

/// Whether `text` reads back exactly from a `|-` literal block: more than one line, and
/// nothing a literal block would change or that depends on the reader: no leading
/// whitespace (it would set the indentation), no trailing whitespace or line break (stripped
/// by `-`, and by editors), no tab, carriage return or other character that is escaped in
/// [`double_quoted`].
pub fn literal_safe(text: &str) -> bool {
    text.contains('\n')
        && !text.starts_with([' ', '\n'])
        && !text.ends_with('\n')
        && text.split('\n').all(|line| !line.ends_with(' '))
        && text.chars().all(|c| c == '\n' || !needs_escape(c))
}

/// Characters a double-quoted scalar must not hold literally: those outside YAML's printable
/// set, the line breaks of YAML 1.1 (NEL, LS, PS), the byte order mark, and tab (legal, but
/// invisible and easily changed by editors).
fn needs_escape(c: char) -> bool {
    let printable = matches!(c,
        '\u{20}'..='\u{7E}'
        | '\u{A0}'..='\u{D7FF}'
        | '\u{E000}'..='\u{FFFD}'
        | '\u{10000}'..='\u{10FFFF}');
    !printable || matches!(c, '\u{2028}' | '\u{2029}' | '\u{FEFF}')
}

/// `text` as a YAML double-quoted scalar that reads back as exactly `text`: `"` and `\`
/// escaped, line breaks and tabs as `\n`, `\r`, `\t`, and every other character outside
/// YAML's printable set (and NEL, LS, PS, BOM) as `\xXX`, `\uXXXX` or `\UXXXXXXXX`. Printable
/// characters, hanzi and full-width punctuation included, are written as they are.
pub fn double_quoted(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if needs_escape(c) => {
                let code = u32::from(c);
                let _ = if code <= 0xFF {
                    write!(out, "\\x{code:02X}")
                } else if code <= 0xFFFF {
                    write!(out, "\\u{code:04X}")
                } else {
                    write!(out, "\\U{code:08X}")
                };
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(id: &str) -> Vec<(&'static str, Value)> {
        vec![
            ("id", Value::Quoted(id.to_owned())),
            ("title", Value::Quoted("标题".to_owned())),
        ]
    }

    /// `after` is `before` with `block` inserted at one place, nothing else changed.
    fn assert_only_inserted(before: &str, after: &str, block: &str) {
        let (b, a, k) = (before.as_bytes(), after.as_bytes(), block.as_bytes());
        let pure = a.len() == b.len() + k.len()
            && (0..=b.len())
                .any(|i| a[..i] == b[..i] && &a[i..i + k.len()] == k && a[i + k.len()..] == b[i..]);
        assert!(pure, "not a pure insertion of {block:?}:\n{after}");
    }

    #[test]
    fn appends_after_the_last_item_with_the_same_indent_and_separation() {
        let before = "\
# 注释
id: p
items:
  - id: a
    title: A

  - id: b
    title: B
";
        let out = append_item(before, &item("c")).unwrap();
        let block = "\n  - id: \"c\"\n    title: \"标题\"\n";
        assert_eq!(out.text, format!("{before}{block}"));
        assert_only_inserted(before, &out.text, block);
        assert_eq!((out.first_line, out.lines, out.entry_line), (9, 3, 10));
        assert_eq!(out.block, "  - id: \"c\"\n    title: \"标题\"\n");
    }

    #[test]
    fn items_without_blank_lines_get_none() {
        let before = "id: p\nitems:\n  - id: a\n    title: A\n  - id: b\n    title: B\n";
        let out = append_item(before, &item("c")).unwrap();
        assert_eq!(
            out.text,
            format!("{before}  - id: \"c\"\n    title: \"标题\"\n")
        );
    }

    #[test]
    fn keys_after_items_stay_after_the_new_item() {
        let before = "\
id: p
items:
  - id: a
    title: A

  - id: b
    title: B   # 注

# 下面是播出时段
when:
  - cron: \"0 8 * * *\"
    for: 1h
";
        let out = append_item(before, &item("c")).unwrap();
        let expected = before.replace(
            "    title: B   # 注\n",
            "    title: B   # 注\n\n  - id: \"c\"\n    title: \"标题\"\n",
        );
        assert_eq!(out.text, expected);
        assert_eq!(out.original_line(7), Some(7));
        assert_eq!(out.original_line(8), None);
        assert_eq!(out.original_line(10), None);
        assert_eq!(out.original_line(11), Some(8));
    }

    #[test]
    fn four_space_indentation_is_kept() {
        let before = "id: p\nitems:\n    -   id: a\n        title: A\n";
        let out = append_item(before, &item("b")).unwrap();
        assert_eq!(
            out.text,
            format!("{before}    -   id: \"b\"\n        title: \"标题\"\n")
        );
    }

    #[test]
    fn unindented_items_are_kept_unindented() {
        let before = "id: p\nitems:\n- id: a\n  title: A\nname: 名称\n";
        let out = append_item(before, &item("b")).unwrap();
        assert_eq!(
            out.text,
            "id: p\nitems:\n- id: a\n  title: A\n- id: \"b\"\n  title: \"标题\"\nname: 名称\n"
        );
    }

    #[test]
    fn empty_flow_sequence_becomes_a_block_sequence() {
        let before = "id: p\nwhen:\n    - cron: \"0 8 * * *\"\n      for: 1h\nitems: []\nname: x\n";
        let out = append_item(before, &item("a")).unwrap();
        assert_eq!(
            out.text,
            "id: p\nwhen:\n    - cron: \"0 8 * * *\"\n      for: 1h\nitems:\n    - id: \"a\"\n      title: \"标题\"\nname: x\n"
        );
        let before = "id: p\nitems: [ ]   # 待补充\n";
        let out = append_item(before, &item("a")).unwrap();
        assert_eq!(
            out.text,
            "id: p\nitems:   # 待补充\n  - id: \"a\"\n    title: \"标题\"\n"
        );
    }

    #[test]
    fn items_with_nothing_under_them() {
        let before = "id: p\nitems:\ntargets: [a]\n";
        let out = append_item(before, &item("a")).unwrap();
        assert_eq!(
            out.text,
            "id: p\nitems:\n  - id: \"a\"\n    title: \"标题\"\ntargets: [a]\n"
        );
    }

    #[test]
    fn crlf_files_get_crlf_lines() {
        let before = "id: p\r\nitems:\r\n  - id: a\r\n    title: A\r\n";
        let out = append_item(before, &item("b")).unwrap();
        assert_eq!(
            out.text,
            format!("{before}  - id: \"b\"\r\n    title: \"标题\"\r\n")
        );
        let before = "id: p\r\nitems: []\r\n";
        let out = append_item(before, &item("b")).unwrap();
        assert_eq!(
            out.text,
            "id: p\r\nitems:\r\n  - id: \"b\"\r\n    title: \"标题\"\r\n"
        );
    }

    #[test]
    fn a_missing_final_newline_stays_missing() {
        let before = "id: p\nitems:\n  - id: a\n    title: A";
        let out = append_item(before, &item("b")).unwrap();
        assert_eq!(
            out.text,
            format!("{before}\n  - id: \"b\"\n    title: \"标题\"")
        );
        assert_eq!((out.first_line, out.lines), (5, 2));
        let before = "id: p\r\nitems: []";
        let out = append_item(before, &item("b")).unwrap();
        assert_eq!(
            out.text,
            "id: p\r\nitems:\r\n  - id: \"b\"\r\n    title: \"标题\""
        );
    }

    #[test]
    fn closing_comments_at_column_0_stay_at_the_end() {
        let before = "id: p\nitems:\n  - id: a\n    title: A\n\n# 文件结束\n";
        let out = append_item(before, &item("b")).unwrap();
        assert_eq!(
            out.text,
            "id: p\nitems:\n  - id: a\n    title: A\n  - id: \"b\"\n    title: \"标题\"\n\n# 文件结束\n"
        );
    }

    #[test]
    fn a_heading_comment_at_the_end_heads_the_new_item() {
        let before = "\
items:
  - id: a
    title: A

  - id: b
    title: B

  # ---- 第41次
";
        let out = append_item(before, &item("c")).unwrap();
        assert_eq!(
            out.text,
            format!("{before}  - id: \"c\"\n    title: \"标题\"\n")
        );
    }

    #[test]
    fn a_note_under_the_last_item_stays_with_it() {
        let before = "items:\n  - id: a\n    title: A\n\n  - id: b\n    title: B\n    # 备注\n";
        let out = append_item(before, &item("c")).unwrap();
        assert_eq!(
            out.text,
            format!("{before}\n  - id: \"c\"\n    title: \"标题\"\n")
        );
    }

    #[test]
    fn anything_but_a_block_sequence_is_refused() {
        assert_eq!(
            append_item("id: p\nitems: [{id: a}]\n", &item("b")),
            Err(EditError::NotBlockSequence { line: 2 })
        );
        assert_eq!(
            append_item("id: p\nitems:\n  id: a\n", &item("b")),
            Err(EditError::NotBlockSequence { line: 2 })
        );
        assert_eq!(
            append_item("id: p\nitems: *x\n", &item("b")),
            Err(EditError::NotBlockSequence { line: 2 })
        );
        assert_eq!(
            append_item("id: p\n  items: []\nitems_x: 1\n", &item("b")),
            Err(EditError::NoItems)
        );
        assert_eq!(append_item("id: p\n", &[]), Err(EditError::NoFields));
    }

    #[test]
    fn a_comment_mentioning_items_is_not_the_key() {
        let before = "# items: 不是这里\nid: p\nitems:\n  - id: a\n";
        let out = append_item(before, &item("b")).unwrap();
        assert_eq!(
            out.text,
            format!("{before}  - id: \"b\"\n    title: \"标题\"\n")
        );
    }

    #[test]
    fn block_scalars_in_the_last_item_are_part_of_it() {
        let before = "items:\n  - id: a\n    body: |\n      第一行\n\n      - 不是条目\n      # 不是注释\nname: x\n";
        let out = append_item(before, &item("b")).unwrap();
        assert_eq!(
            out.text,
            before.replace(
                "      # 不是注释\n",
                "      # 不是注释\n  - id: \"b\"\n    title: \"标题\"\n"
            )
        );
    }

    #[test]
    fn multi_line_quoted_and_flow_values_of_the_last_item_are_part_of_it() {
        for tail in [
            "    body: \"酒类零售\n  续行 \\\" 仍在引号内\n- 不是条目\"\n",
            "    body: '一行\n  it''s\n# 不是注释'\n",
            "    channels: [board,\n  sms]\n",
            "    valid: { from: \"2026-12-01\",\n  until: 2026-12-07 }   # 注\n",
            "    \"quoted key\": &a !!str \"多\n  行\"\n",
        ] {
            let before = format!("id: p\nitems:\n  - id: a\n{tail}name: x\n");
            let out = append_item(&before, &item("b")).unwrap();
            assert_eq!(
                out.text,
                format!(
                    "id: p\nitems:\n  - id: a\n{tail}  - id: \"b\"\n    title: \"标题\"\nname: x\n"
                ),
                "{tail}"
            );
            // And the parser agrees: two entries, the old one's value intact.
            let doc: serde_json::Value =
                serde_saphyr::from_str(&out.text).unwrap_or_else(|e| panic!("{e}\n{}", out.text));
            assert_eq!(doc["items"].as_array().map(Vec::len), Some(2), "{doc}");
            assert_eq!(doc["items"][1]["id"], "b", "{doc}");
            assert_eq!(doc["name"], "x", "{doc}");
        }
    }

    #[test]
    fn what_a_line_leaves_open() {
        assert_eq!(opened_by("  - id: \"a\"  # 注"), Open::Closed);
        assert_eq!(opened_by("    body: \"a \\\" b"), Open::Double);
        assert_eq!(opened_by("    body: 'it''s"), Open::Single);
        assert_eq!(opened_by("    body: it's \"plain\""), Open::Closed);
        assert_eq!(
            opened_by("  - [a, \"b]"),
            Open::Flow {
                depth: 1,
                quote: Some('"')
            }
        );
        assert_eq!(opened_by("    x: {a: [1, 2], b: {c: 3}}"), Open::Closed);
        assert_eq!(
            opened_by("    x: {a: [1, 2"),
            Open::Flow {
                depth: 2,
                quote: None
            }
        );
        assert_eq!(opened_by("    url: http://a.b/c"), Open::Closed);
        assert_eq!(opened_by("    \"k\": &a !!str \"多"), Open::Double);
        assert_eq!(
            scan(
                "  c] }",
                Open::Flow {
                    depth: 2,
                    quote: None
                }
            ),
            Open::Closed
        );
        assert_eq!(
            scan(
                "  # ] 注释",
                Open::Flow {
                    depth: 1,
                    quote: None
                }
            ),
            Open::Flow {
                depth: 1,
                quote: None
            }
        );
    }

    #[test]
    fn multi_line_text_becomes_a_literal_block_when_exact() {
        let fields = vec![
            ("id", Value::Quoted("a".to_owned())),
            (
                "body",
                Value::Text("第一段：\n\n# 第二段 {title}".to_owned()),
            ),
            (
                "valid",
                Value::Flow(vec![
                    ("from".to_owned(), "2026-12-01".to_owned()),
                    ("until".to_owned(), "2026-12-14T18:00".to_owned()),
                ]),
            ),
        ];
        let out = append_item("items: []\n", &fields).unwrap();
        assert_eq!(
            out.text,
            "items:\n  - id: \"a\"\n    body: |-\n      第一段：\n\n      # 第二段 {title}\n    valid: { from: \"2026-12-01\", until: \"2026-12-14T18:00\" }\n"
        );
        // Leading spaces, trailing spaces, tabs: double-quoted.
        for text in [
            "  缩进\n第二行",
            "行尾空格 \n第二行",
            "制表\t\n第二行",
            "一行",
        ] {
            let fields = vec![("body", Value::Text(text.to_owned()))];
            let out = append_item("items: []\n", &fields).unwrap();
            assert!(out.text.contains(&double_quoted(text)), "{}", out.text);
        }
    }

    /// Random texts of awkward characters, appended to every example playlist as written,
    /// with CRLF and without a final newline: a pure insertion, read back exactly.
    #[test]
    fn random_texts_round_trip_through_every_example_playlist() {
        const ALPHABET: &[char] = &[
            'a', 'Z', '0', ' ', ' ', '中', '：', '，', '“', '"', '\'', '\\', '#', ':', '-', '{',
            '}', '[', ']', ',', '*', '&', '!', '|', '>', '%', '@', '`', '?', '~', '.', '\n', '\n',
            '\t', '\r', '\u{0}', '\u{7f}', '\u{85}', '\u{a0}', '\u{2028}', '\u{feff}', '\u{202e}',
            '\u{fffe}', '😀',
        ];
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("playlists");
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
            .collect();
        files.sort();
        let mut rng = fastrand::Rng::with_seed(20261201);
        for original in &files {
            let crlf = original.replace('\n', "\r\n");
            let unterminated = original.trim_end_matches('\n').to_owned();
            for before in [original, &crlf, &unterminated] {
                for _ in 0..40 {
                    let mut text = || -> String {
                        let len = rng.usize(0..24);
                        (0..len)
                            .map(|_| ALPHABET[rng.usize(..ALPHABET.len())])
                            .collect()
                    };
                    let (title, body) = (text(), text());
                    let fields = vec![
                        ("id", Value::Quoted("new-item".to_owned())),
                        ("category", Value::Quoted("其他".to_owned())),
                        ("title", Value::Quoted(title.clone())),
                        ("body", Value::Text(body.clone())),
                    ];
                    let out = append_item(before, &fields).unwrap();
                    // Every example playlist ends with its last item: the entry is appended.
                    assert!(out.text.starts_with(before.as_str()));
                    assert!(out.text.len() > before.len());
                    let playlist: crate::config::raw::RawPlaylist =
                        serde_saphyr::from_str(&out.text)
                            .unwrap_or_else(|e| panic!("{title:?} {body:?}: {e}\n{}", out.text));
                    let item = playlist.items.last().unwrap();
                    assert_eq!(*item.id, "new-item");
                    assert_eq!(*item.title, title, "{}", out.block);
                    assert_eq!(
                        item.body.as_deref().map(String::as_str),
                        Some(body.as_str()),
                        "{}",
                        out.block
                    );
                }
            }
        }
    }

    #[test]
    fn double_quoting_escapes_what_yaml_would_change() {
        assert_eq!(double_quoted(r#"a"b\c"#), r#""a\"b\\c""#);
        assert_eq!(double_quoted("一\n二\r\t"), r#""一\n二\r\t""#);
        assert_eq!(
            double_quoted("\u{0}\u{7}\u{1b}\u{7f}"),
            r#""\x00\x07\x1B\x7F""#
        );
        assert_eq!(
            double_quoted("\u{85}\u{2028}\u{2029}\u{feff}"),
            r#""\x85\u2028\u2029\uFEFF""#
        );
        assert_eq!(double_quoted("\u{fffe}"), r#""\uFFFE""#);
        // Printable text, YAML indicators, full-width punctuation and bidi marks stay.
        let plain = "#: - {x} [y] *a &b !c |d >e 'f' %g @h `i` ，。：；「」（）\u{202e}\u{200f}";
        assert_eq!(double_quoted(plain), format!("\"{plain}\""));
    }

    #[test]
    fn quoted_values_read_back_exactly() {
        #[derive(serde::Deserialize)]
        struct Doc {
            items: Vec<std::collections::BTreeMap<String, String>>,
        }
        let hostile = [
            "- 开头是短横",
            "a: b # c",
            "{title}：{summary}",
            "\"引号\" 'single' \\ 反斜杠",
            "*alias &anchor !tag |pipe >fold %pct @at `tick`",
            "  前后空格  ",
            "全角，。：；？！（）【】",
            "\u{0}\u{1}\u{8}\u{b}\u{c}\u{1b}\u{7f}\u{85}\u{a0}\u{2028}\u{2029}\u{feff}",
            "\u{202a}\u{202b}\u{202c}\u{202d}\u{202e}\u{2066}\u{2067}\u{2068}\u{2069}",
            "emoji 😀 \u{10ffff}",
            "多行\n第二行\n\n第四行",
            "多行\r\n带回车",
            "---\n...\n- a\n# b",
            "",
            "null",
            "~",
            "true",
            "1e3",
        ];
        for text in hostile {
            let fields = vec![
                ("quoted", Value::Quoted(text.to_owned())),
                ("text", Value::Text(text.to_owned())),
            ];
            let out = append_item("items: []\n", &fields).unwrap();
            let doc: Doc = serde_saphyr::from_str(&out.text)
                .unwrap_or_else(|e| panic!("{text:?}: {e}\n{}", out.text));
            assert_eq!(doc.items[0]["quoted"], text, "{}", out.text);
            assert_eq!(doc.items[0]["text"], text, "{}", out.text);
        }
    }
}
