//! Turns the YAML library's errors into diagnostics in the operator's words: which field, what
//! kind of value was expected, and the nearest valid spelling when a name is mistyped.

use serde_saphyr::Error;

use crate::diag::{Diagnostic, Msg, Pos};

/// The diagnostic for a file that failed to deserialize; `text` is the file's content.
pub fn diagnostic(file: &str, text: &str, error: &Error) -> Diagnostic {
    let inner = error.without_snippet();
    let (line, col, len) = match inner.location() {
        Some(loc) => (
            u32::try_from(loc.line()).unwrap_or(1).max(1),
            u32::try_from(loc.column()).unwrap_or(1).max(1),
            u32::try_from(loc.span().len()).unwrap_or(1),
        ),
        None => (1, 1, 0),
    };
    let pos = Pos::new(file, line, col, len);
    match inner {
        Error::SerdeUnknownField {
            field, expected, ..
        } => unknown_field(pos, field, expected),
        Error::SerdeMissingField { field, .. } => {
            // The parser notices a missing field at the end of the block; the operator looks
            // for the block's first line.
            let (line, col) = block_start(text, pos.line, pos.col);
            Diagnostic::error(
                Pos::new(file, line, col, 0),
                Msg::new("yaml.missing_field").arg("field", field),
            )
            .with_hint(Msg::new("yaml.missing_field.hint").arg("field", field))
        }
        Error::SerdeUnknownVariant {
            variant, expected, ..
        } => {
            let diagnostic =
                Diagnostic::error(pos, Msg::new("yaml.unknown_value").arg("value", variant));
            match closest(variant, expected.iter().copied()) {
                Some(best) => {
                    diagnostic.with_hint(Msg::new("diag.hint.did_you_mean").arg("name", best))
                }
                None => diagnostic
                    .with_hint(Msg::new("diag.hint.one_of").arg("list", expected.join(", "))),
            }
        }
        Error::SerdeInvalidType {
            unexpected,
            expected,
            ..
        } => Diagnostic::error(
            pos,
            Msg::new("yaml.wrong_type")
                .arg_msg("expected", kind_name(expected))
                .arg_msg("found", found_name(unexpected)),
        ),
        Error::InvalidScalar { ty, .. } => Diagnostic::error(
            pos,
            Msg::new("yaml.wrong_scalar").arg_msg("expected", kind_name(ty)),
        ),
        Error::Unexpected { expected, .. } => Diagnostic::error(
            pos,
            Msg::new("yaml.wrong_scalar").arg_msg("expected", kind_name(expected)),
        ),
        Error::SerdeInvalidValue {
            unexpected,
            expected,
            ..
        } => Diagnostic::error(
            pos,
            Msg::new("yaml.invalid_value")
                .arg("found", unexpected)
                .arg("expected", expected),
        ),
        Error::DuplicateMappingKey { key, .. } => Diagnostic::error(
            pos,
            Msg::new("yaml.duplicate_key").arg("key", key.as_deref().unwrap_or("?")),
        )
        .with_hint(Msg::new("yaml.duplicate_key.hint")),
        Error::NullIntoString { .. } => {
            Diagnostic::error(pos, Msg::new("yaml.null")).with_hint(Msg::new("yaml.null.hint"))
        }
        Error::Eof { .. } => {
            Diagnostic::error(pos, Msg::new("yaml.eof")).with_hint(Msg::new("yaml.syntax.hint"))
        }
        Error::MultipleDocuments { .. } => {
            Diagnostic::error(pos, Msg::new("yaml.multiple_documents"))
                .with_hint(Msg::new("yaml.multiple_documents.hint"))
        }
        other => {
            let detail = detail_of(other);
            if detail.contains("tab") {
                // The parser may complain on the line before (a plain scalar could continue
                // onto the tab's line); point at the tab itself.
                let pos = first_tab(text, pos.line)
                    .map_or(pos, |(line, col)| Pos::new(file, line, col, 1));
                Diagnostic::error(pos, Msg::new("yaml.tab")).with_hint(Msg::new("yaml.tab.hint"))
            } else {
                Diagnostic::error(pos, Msg::new("yaml.syntax").arg("detail", detail))
                    .with_hint(Msg::new("yaml.syntax.hint"))
            }
        }
    }
}

/// The first line (from `from_line` on) of a block mapping whose keys start at `col`: walks up
/// over sibling keys and deeper lines until the line that opens the block (`- key:` or a line
/// indented less).
fn block_start(text: &str, from_line: u32, col: u32) -> (u32, u32) {
    let lines: Vec<&str> = text.lines().collect();
    let mut start = from_line;
    for line_no in (1..=from_line.min(lines.len() as u32)).rev() {
        let line = lines[line_no as usize - 1];
        let trimmed = line.trim_start_matches([' ', '-']);
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let key_col = (line.chars().count() - trimmed.chars().count()) as u32 + 1;
        if key_col > col {
            continue;
        }
        if key_col < col {
            break;
        }
        start = line_no;
        if line.trim_start().starts_with('-') {
            break;
        }
    }
    (start, col)
}

/// Line and column of the first tab at or after `from_line`.
fn first_tab(text: &str, from_line: u32) -> Option<(u32, u32)> {
    text.lines()
        .enumerate()
        .skip(from_line.saturating_sub(1) as usize)
        .find_map(|(index, line)| {
            line.chars()
                .position(|c| c == '\t')
                .map(|col| (index as u32 + 1, col as u32 + 1))
        })
}

/// The library's own sentence without its trailing " at line N, column M".
fn detail_of(error: &Error) -> String {
    let text = error.to_string();
    match text.rfind(" at line ") {
        Some(cut) => text[..cut].to_owned(),
        None => text,
    }
}

fn unknown_field(pos: Pos, field: &str, expected: &[&'static str]) -> Diagnostic {
    let diagnostic = Diagnostic::error(pos, Msg::new("diag.unknown_field").arg("field", field));
    let lower = field.to_ascii_lowercase();
    // Someone trying to put a secret into the file gets told where secrets go instead.
    if ["password", "secret", "token", "key"]
        .iter()
        .any(|s| lower.contains(s))
        && expected.iter().any(|e| e.ends_with("_env"))
    {
        return diagnostic.with_hint(Msg::new("yaml.secret_in_file.hint"));
    }
    match closest(field, expected.iter().copied()) {
        Some(best) => diagnostic.with_hint(Msg::new("diag.hint.did_you_mean").arg("name", best)),
        None => diagnostic.with_hint(Msg::new("diag.hint.one_of").arg("list", expected.join(", "))),
    }
}

/// The candidate nearest to `typed`, if it is near enough to be a likely typo.
pub fn closest<'a>(typed: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let typed_lower = typed.to_lowercase();
    let limit = (typed.chars().count() / 3).max(1);
    candidates
        .into_iter()
        .map(|c| {
            (
                strsim::damerau_levenshtein(&typed_lower, &c.to_lowercase()),
                c,
            )
        })
        .filter(|(distance, _)| *distance <= limit)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, c)| c)
}

/// A serde "expected …" phrase as a catalogue key for the kind of value.
fn kind_name(expected: &str) -> Msg {
    let e = expected.to_ascii_lowercase();
    let key = if e.contains("sequence") || e.contains("vec") || e.contains("list") {
        "kind.list"
    } else if e.contains("struct") || e.contains("map") {
        "kind.mapping"
    } else if e.contains("bool") {
        "kind.bool"
    } else if e.contains("u8") || e.contains("u16") || e.contains("u32") || e.contains("u64") {
        "kind.unsigned"
    } else if e.contains("i32") || e.contains("i64") || e.contains("integer") {
        "kind.integer"
    } else if e.contains("f32") || e.contains("f64") || e.contains("float") {
        "kind.number"
    } else if e.contains("string") || e.contains("str") || e.contains("char") {
        "kind.text"
    } else if e.contains("enum") || e.contains("variant") {
        "kind.name"
    } else {
        "kind.value"
    };
    Msg::new(key)
}

/// A serde "unexpected …" phrase (`sequence`, `string "x"`, `integer 3`) as a kind.
fn found_name(unexpected: &str) -> Msg {
    let e = unexpected.to_ascii_lowercase();
    let key = if e.starts_with("sequence") {
        "kind.list"
    } else if e.starts_with("map") {
        "kind.mapping"
    } else if e.starts_with("boolean") {
        "kind.bool"
    } else if e.starts_with("integer") || e.starts_with("float") {
        "kind.number"
    } else if e.starts_with("string") || e.starts_with("char") {
        "kind.text"
    } else if e.starts_with("unit") || e.contains("null") {
        "kind.empty"
    } else {
        "kind.value"
    };
    Msg::new(key)
}
