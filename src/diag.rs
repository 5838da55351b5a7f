//! Diagnostics: what is wrong in an operator's file, where, and how to fix it.
//!
//! A [`Diagnostic`] holds a position (file relative to the site, 1-based line, 1-based column
//! counted in characters) and catalogue keys with arguments, not finished sentences, so one set
//! of problems can be shown in any language. [`Report`] renders them the way compilers do:
//!
//! ```text
//! playlists/prime-time.yaml:12:7: error: unknown field `tittle`
//!    12 |     tittle: 城区道路照明改造
//!       |     ^^^^^^
//!   = hint: did you mean `title`?
//! ```
//!
//! The caret is placed by display width (a hanzi is two terminal columns), so it lines up under
//! the offending text in a terminal. The `path:line:col:` prefix never changes with the language.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use unicode_width::UnicodeWidthChar;

use crate::i18n::{Lang, tr};

/// How bad a problem is: errors stop the site from running, warnings do not.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Error,
    Warning,
}

/// A catalogue key with its arguments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Msg {
    pub key: &'static str,
    pub args: Vec<(&'static str, Arg)>,
}

/// An argument of a message: literal text (a name, a value from the file) or another message,
/// rendered in the same language (the name of a kind of value, say).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Arg {
    Text(String),
    Msg(Msg),
}

impl Msg {
    pub fn new(key: &'static str) -> Self {
        Msg {
            key,
            args: Vec::new(),
        }
    }

    pub fn arg(mut self, name: &'static str, value: impl ToString) -> Self {
        self.args.push((name, Arg::Text(value.to_string())));
        self
    }

    pub fn arg_msg(mut self, name: &'static str, value: Msg) -> Self {
        self.args.push((name, Arg::Msg(value)));
        self
    }

    pub fn render(&self, lang: Lang) -> String {
        let values: Vec<String> = self
            .args
            .iter()
            .map(|(_, arg)| match arg {
                Arg::Text(text) => text.clone(),
                Arg::Msg(msg) => msg.render(lang),
            })
            .collect();
        let args: Vec<(&str, &str)> = self
            .args
            .iter()
            .zip(&values)
            .map(|((name, _), value)| (*name, value.as_str()))
            .collect();
        tr(lang, self.key, &args)
    }
}

/// A position in a file of the site: 1-based line, 1-based column in characters, and the
/// number of characters to underline.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Pos {
    pub file: String,
    pub line: u32,
    pub col: u32,
    pub len: u32,
}

impl Pos {
    pub fn new(file: impl Into<String>, line: u32, col: u32, len: u32) -> Self {
        Pos {
            file: file.into(),
            line,
            col,
            len,
        }
    }

    /// The start of a file, for problems that concern the file as a whole.
    pub fn file(file: impl Into<String>) -> Self {
        Pos::new(file, 1, 1, 0)
    }
}

/// One problem found in the site's files.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    pub pos: Pos,
    pub message: Msg,
    pub hint: Option<Msg>,
}

impl Diagnostic {
    pub fn error(pos: Pos, message: Msg) -> Self {
        Diagnostic {
            severity: Severity::Error,
            pos,
            message,
            hint: None,
        }
    }

    pub fn warning(pos: Pos, message: Msg) -> Self {
        Diagnostic {
            severity: Severity::Warning,
            pos,
            message,
            hint: None,
        }
    }

    pub fn with_hint(mut self, hint: Msg) -> Self {
        self.hint = Some(hint);
        self
    }

    /// `path:line:col: error: message`, the first line of the rendering.
    pub fn headline(&self, lang: Lang) -> String {
        let label = match self.severity {
            Severity::Error => tr(lang, "diag.label.error", &[]),
            Severity::Warning => tr(lang, "diag.label.warning", &[]),
        };
        format!(
            "{}:{}:{}: {}: {}",
            self.pos.file,
            self.pos.line,
            self.pos.col,
            label,
            self.message.render(lang)
        )
    }
}

/// All problems of one check, with the text of the files they point into.
#[derive(Debug, Default)]
pub struct Report {
    pub diagnostics: Vec<Diagnostic>,
    sources: BTreeMap<String, String>,
}

impl Report {
    /// Remembers a file's text so that its lines can be quoted.
    pub fn add_source(&mut self, file: &str, text: String) {
        self.sources.insert(file.to_owned(), text);
    }

    pub fn push(&mut self, diagnostic: Diagnostic) {
        self.diagnostics.push(diagnostic);
    }

    pub fn errors(&self) -> usize {
        self.count(Severity::Error)
    }

    pub fn warnings(&self) -> usize {
        self.count(Severity::Warning)
    }

    fn count(&self, severity: Severity) -> usize {
        self.diagnostics
            .iter()
            .filter(|d| d.severity == severity)
            .count()
    }

    pub fn has_errors(&self) -> bool {
        self.errors() > 0
    }

    /// Orders problems by file, then position, so the output reads top to bottom.
    pub fn sort(&mut self) {
        self.diagnostics
            .sort_by(|a, b| a.pos.cmp(&b.pos).then(a.severity.cmp(&b.severity)));
    }

    /// Every diagnostic with its quoted source line, caret and hint.
    pub fn render(&self, lang: Lang) -> String {
        let mut out = String::new();
        for diagnostic in &self.diagnostics {
            self.render_one(diagnostic, lang, &mut out);
        }
        out
    }

    fn render_one(&self, d: &Diagnostic, lang: Lang, out: &mut String) {
        let _ = writeln!(out, "{}", d.headline(lang));
        if let Some(line_text) = self
            .sources
            .get(&d.pos.file)
            .and_then(|text| text.lines().nth(d.pos.line.saturating_sub(1) as usize))
        {
            let number = d.pos.line.to_string();
            let gutter = " ".repeat(number.len());
            let (shown, caret_col, caret_len) = caret_line(line_text, d.pos.col, d.pos.len);
            let _ = writeln!(out, " {number} | {shown}");
            let _ = writeln!(
                out,
                " {gutter} | {}{}",
                " ".repeat(caret_col),
                "^".repeat(caret_len.max(1))
            );
        }
        if let Some(hint) = &d.hint {
            let _ = writeln!(
                out,
                "  = {}: {}",
                tr(lang, "diag.label.hint", &[]),
                hint.render(lang)
            );
        }
    }
}

/// The source line as shown (tabs widened to one space each so columns stay countable), the
/// display column where the caret starts and how many display columns it covers.
fn caret_line(line: &str, col: u32, len: u32) -> (String, usize, usize) {
    let start = col.saturating_sub(1) as usize;
    let mut shown = String::with_capacity(line.len());
    let mut caret_col = 0;
    let mut caret_len = 0;
    for (index, ch) in line.chars().enumerate() {
        let ch = if ch == '\t' { ' ' } else { ch };
        let width = if ch.is_control() {
            0
        } else {
            ch.width().unwrap_or(0)
        };
        if index < start {
            caret_col += width;
        } else if index < start + len as usize {
            caret_len += width;
        }
        if !ch.is_control() {
            shown.push(ch);
        }
    }
    (shown, caret_col, caret_len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caret_under_hanzi_counts_two_columns_each() {
        let (shown, col, len) = caret_line("    title: 城区道路, x: 1", 12, 4);
        assert_eq!(shown, "    title: 城区道路, x: 1");
        assert_eq!((col, len), (11, 8));
        let (_, col, len) = caret_line("  名称: 钨都广场  bad", 13, 3);
        assert_eq!((col, len), (2 + 4 + 2 + 8 + 2, 3));
    }

    #[test]
    fn rendering_quotes_the_line_and_places_the_caret() {
        let mut report = Report::default();
        report.add_source("a.yaml", "id: x\n名称: tittle\n".to_owned());
        report.push(
            Diagnostic::error(
                Pos::new("a.yaml", 2, 5, 6),
                Msg::new("diag.unknown_field").arg("field", "tittle"),
            )
            .with_hint(Msg::new("diag.hint.did_you_mean").arg("name", "title")),
        );
        let text = report.render(Lang::En);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("a.yaml:2:5: error: "), "{text}");
        assert_eq!(lines[1], " 2 | 名称: tittle");
        assert_eq!(lines[2], "   |       ^^^^^^");
        assert!(lines[3].contains("title"), "{text}");
    }
}
