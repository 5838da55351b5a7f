//! Parsers for the small value languages inside the operator's files: durations (`1h30m`),
//! speeds (`32px/s`), dates (`2026-12-07T18:00`), colours and crontab expressions.
//!
//! Each returns a typed error that says precisely what is wrong, so `validate` can turn it into a
//! message that points into the value.

use std::time::Duration;

use chrono::{NaiveDate, NaiveDateTime, NaiveTime};

use super::model::Rgb;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("empty duration")]
    Empty,
    #[error("negative duration")]
    Negative,
    #[error("unknown unit {0:?}")]
    Unit(String),
    #[error("a number must come before each unit")]
    Syntax,
}

/// `2h`, `90m`, `1h30m`, `8s`, `1d`: groups of a whole number and a unit (d, h, m, s).
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(DurationError::Empty);
    }
    if text.starts_with('-') {
        return Err(DurationError::Negative);
    }
    let mut total: u64 = 0;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(DurationError::Syntax);
        }
        let number: u64 = rest[..digits].parse().map_err(|_| DurationError::Syntax)?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = rest[..unit_len].trim();
        let seconds = match unit {
            "d" => 86_400,
            "h" => 3_600,
            "m" | "min" => 60,
            "s" => 1,
            "" => return Err(DurationError::Unit(String::new())),
            other => return Err(DurationError::Unit(other.to_owned())),
        };
        total = number
            .checked_mul(seconds)
            .and_then(|s| total.checked_add(s))
            .ok_or(DurationError::Syntax)?;
        rest = &rest[unit_len..];
    }
    Ok(Duration::from_secs(total))
}

/// `32px/s` or a bare number of pixels per second.
pub fn parse_speed(text: &str) -> Option<f32> {
    let number = text.trim().strip_suffix("px/s").unwrap_or(text).trim();
    number
        .parse::<f32>()
        .ok()
        .filter(|v| v.is_finite() && *v > 0.0)
}

/// A point in time as operators write it: `2026-12-07`, `2026-12-07T18:00`, `2026-12-07 18:00`
/// (seconds optional). A bare date is returned with `date_only = true`.
pub fn parse_local_time(text: &str) -> Option<(NaiveDateTime, bool)> {
    let text = text.trim();
    if let Ok(date) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return Some((date.and_time(NaiveTime::MIN), true));
    }
    for format in [
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%d %H:%M:%S",
    ] {
        if let Ok(time) = NaiveDateTime::parse_from_str(text, format) {
            return Some((time, false));
        }
    }
    None
}

/// Colour names the boards understand, and `#rrggbb`.
pub const COLOR_NAMES: [(&str, Rgb); 8] = [
    ("red", Rgb(255, 0, 0)),
    ("green", Rgb(0, 255, 0)),
    ("yellow", Rgb(255, 255, 0)),
    ("amber", Rgb(255, 176, 0)),
    ("white", Rgb(255, 255, 255)),
    ("blue", Rgb(0, 0, 255)),
    ("cyan", Rgb(0, 255, 255)),
    ("magenta", Rgb(255, 0, 255)),
];

pub fn parse_color(text: &str) -> Option<Rgb> {
    let text = text.trim();
    if let Some(hex) = text.strip_prefix('#') {
        if hex.len() == 6 && hex.chars().all(|c| c.is_ascii_hexdigit()) {
            let byte = |i: usize| u8::from_str_radix(&hex[i..i + 2], 16).ok();
            return Some(Rgb(byte(0)?, byte(2)?, byte(4)?));
        }
        return None;
    }
    let lower = text.to_ascii_lowercase();
    COLOR_NAMES
        .iter()
        .find(|(name, _)| *name == lower)
        .map(|(_, rgb)| *rgb)
}

/// The five crontab fields, in order.
pub const CRON_FIELDS: [CronField; 5] = [
    CronField {
        key: "minute",
        min: 0,
        max: 59,
        names: &[],
    },
    CronField {
        key: "hour",
        min: 0,
        max: 23,
        names: &[],
    },
    CronField {
        key: "day_of_month",
        min: 1,
        max: 31,
        names: &[],
    },
    CronField {
        key: "month",
        min: 1,
        max: 12,
        names: &[
            "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
        ],
    },
    // 7 is Sunday too, as in cronie.
    CronField {
        key: "day_of_week",
        min: 0,
        max: 7,
        names: &["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"],
    },
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CronField {
    /// Catalogue key suffix naming the field.
    pub key: &'static str,
    pub min: u32,
    pub max: u32,
    /// Names for min, min+1, ... (JAN = 1, SUN = 0).
    pub names: &'static [&'static str],
}

/// What is wrong with a crontab expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CronProblem {
    /// Not five fields. `found` counts them.
    FieldCount { found: usize },
    /// `@reboot` or an unknown `@macro`.
    Macro { name: String },
    /// A field is wrong: which one (0..5), where it starts in the expression (chars), its text,
    /// and why.
    Field {
        index: usize,
        offset: usize,
        text: String,
        reason: FieldReason,
    },
}

impl CronProblem {
    /// What is wrong, for the operator; `expr` is the expression as written.
    pub fn message(&self, expr: &str) -> crate::diag::Msg {
        use crate::diag::Msg;
        match self {
            CronProblem::FieldCount { found } => Msg::new("cron.field_count")
                .arg("expr", expr.trim())
                .arg("found", found),
            CronProblem::Macro { name } => Msg::new("cron.macro").arg("name", name),
            CronProblem::Field {
                index,
                text,
                reason,
                ..
            } => {
                let field = CRON_FIELDS[*index];
                let field_name = Msg::new(match field.key {
                    "minute" => "cron.field.minute",
                    "hour" => "cron.field.hour",
                    "day_of_month" => "cron.field.day_of_month",
                    "month" => "cron.field.month",
                    _ => "cron.field.day_of_week",
                });
                let reason = match reason {
                    FieldReason::OutOfRange { value } => Msg::new("cron.reason.range")
                        .arg("value", value)
                        .arg("min", field.min)
                        .arg("max", field.max),
                    FieldReason::NotAValue { token } => {
                        Msg::new("cron.reason.not_value").arg("token", token)
                    }
                    FieldReason::Backwards { start, end } => Msg::new("cron.reason.backwards")
                        .arg("start", start)
                        .arg("end", end),
                    FieldReason::Step { step } => Msg::new("cron.reason.step").arg("step", step),
                    FieldReason::NotCrontab { token } => {
                        Msg::new("cron.reason.not_crontab").arg("token", token)
                    }
                };
                Msg::new("cron.bad_field")
                    .arg_msg("field", field_name)
                    .arg("number", index + 1)
                    .arg("text", text)
                    .arg_msg("reason", reason)
            }
        }
    }

    /// How to write it instead.
    pub fn hint(&self) -> crate::diag::Msg {
        match self {
            CronProblem::Macro { .. } => crate::diag::Msg::new("cron.macro.hint"),
            _ => crate::diag::Msg::new("cron.field_count.hint"),
        }
    }

    /// Where the wrong field is in the expression: (character offset, length), when one field
    /// is to blame.
    pub fn span(&self) -> Option<(usize, usize)> {
        match self {
            CronProblem::Field { offset, text, .. } => Some((*offset, text.chars().count().max(1))),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldReason {
    /// A value outside the field's range.
    OutOfRange { value: String },
    /// Neither a number nor a name this field accepts.
    NotAValue { token: String },
    /// `a-b` with a > b.
    Backwards { start: u32, end: u32 },
    /// A step of zero or not a number.
    Step { step: String },
    /// Quartz extensions (`?`, `L`, `W`, `#`) that crontab does not have.
    NotCrontab { token: String },
}

/// Expands the `@` macros cronie knows into the five fields.
fn expand_macro(name: &str) -> Option<&'static str> {
    Some(match name.to_ascii_lowercase().as_str() {
        "@yearly" | "@annually" => "0 0 1 1 *",
        "@monthly" => "0 0 1 * *",
        "@weekly" => "0 0 * * 0",
        "@daily" | "@midnight" => "0 0 * * *",
        "@hourly" => "0 * * * *",
        _ => return None,
    })
}

/// Checks a 5-field crontab expression the way cronie reads it, field by field, and returns it
/// parsed by croner (seconds and years disallowed). The checks here come first so that an error
/// names the field and the reason.
pub fn parse_cron(text: &str) -> Result<croner::Cron, CronProblem> {
    let trimmed = text.trim();
    let expanded = if trimmed.starts_with('@') {
        expand_macro(trimmed).ok_or_else(|| CronProblem::Macro {
            name: trimmed.to_owned(),
        })?
    } else {
        check_fields(text)?;
        trimmed
    };
    croner::parser::CronParser::builder()
        .seconds(croner::parser::Seconds::Disallowed)
        .year(croner::parser::Year::Disallowed)
        .build()
        .parse(expanded)
        .map_err(|e| CronProblem::Field {
            index: 0,
            offset: 0,
            text: trimmed.to_owned(),
            reason: FieldReason::NotAValue {
                token: e.to_string(),
            },
        })
}

fn check_fields(text: &str) -> Result<(), CronProblem> {
    let fields = split_with_offsets(text);
    if fields.len() != 5 {
        return Err(CronProblem::FieldCount {
            found: fields.len(),
        });
    }
    for (index, (offset, field_text)) in fields.into_iter().enumerate() {
        let spec = CRON_FIELDS[index];
        if let Err(reason) = check_field(field_text, spec) {
            return Err(CronProblem::Field {
                index,
                offset,
                text: field_text.to_owned(),
                reason,
            });
        }
    }
    Ok(())
}

/// Whitespace-separated words with their start offsets in characters.
fn split_with_offsets(text: &str) -> Vec<(usize, &str)> {
    let mut words = Vec::new();
    let mut start: Option<(usize, usize)> = None; // (char offset, byte offset)
    for (chars, (byte, ch)) in text.char_indices().enumerate() {
        if ch.is_whitespace() {
            if let Some((char_start, byte_start)) = start.take() {
                words.push((char_start, &text[byte_start..byte]));
            }
        } else if start.is_none() {
            start = Some((chars, byte));
        }
    }
    if let Some((char_start, byte_start)) = start {
        words.push((char_start, &text[byte_start..]));
    }
    words
}

fn check_field(field: &str, spec: CronField) -> Result<(), FieldReason> {
    for part in field.split(',') {
        if let Some(token) = part
            .chars()
            .find(|c| matches!(c, '?' | 'L' | 'W' | '#' | 'l' | 'w'))
        {
            // Names like "WED" contain W; only flag it when the part is not a name list.
            let is_named = spec
                .names
                .iter()
                .any(|n| part.to_ascii_uppercase().contains(n));
            if !is_named {
                return Err(FieldReason::NotCrontab {
                    token: token.to_string(),
                });
            }
        }
        let (range, step) = match part.split_once('/') {
            Some((range, step)) => (range, Some(step)),
            None => (part, None),
        };
        if let Some(step) = step {
            match step.parse::<u32>() {
                Ok(s) if s > 0 => {}
                _ => {
                    return Err(FieldReason::Step {
                        step: step.to_owned(),
                    });
                }
            }
            // cronie only steps over `*` or a range: `5/10` is not crontab.
            if range != "*" && !range.contains('-') {
                return Err(FieldReason::Step {
                    step: format!("{range}/{step}"),
                });
            }
        }
        if range == "*" {
            continue;
        }
        match range.split_once('-') {
            Some((a, b)) => {
                let start = field_value(a, spec)?;
                let end = field_value(b, spec)?;
                if start > end {
                    return Err(FieldReason::Backwards { start, end });
                }
            }
            None => {
                field_value(range, spec)?;
            }
        }
    }
    Ok(())
}

fn field_value(token: &str, spec: CronField) -> Result<u32, FieldReason> {
    if token.is_empty() {
        return Err(FieldReason::NotAValue {
            token: String::new(),
        });
    }
    // Digits only: Rust's parser would also take "+1", which crontab does not.
    if let Some(value) = token
        .bytes()
        .all(|b| b.is_ascii_digit())
        .then(|| token.parse::<u32>().ok())
        .flatten()
    {
        if value < spec.min || value > spec.max {
            return Err(FieldReason::OutOfRange {
                value: token.to_owned(),
            });
        }
        return Ok(value);
    }
    let upper = token.to_ascii_uppercase();
    spec.names
        .iter()
        .position(|name| *name == upper)
        .map(|i| spec.min + i as u32)
        .ok_or_else(|| FieldReason::NotAValue {
            token: token.to_owned(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("0m"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("-1h"), Err(DurationError::Negative));
        assert_eq!(
            parse_duration("2 hours"),
            Err(DurationError::Unit("hours".into()))
        );
        assert_eq!(parse_duration("h"), Err(DurationError::Syntax));
        assert_eq!(
            parse_duration("15"),
            Err(DurationError::Unit(String::new()))
        );
    }

    #[test]
    fn speeds_and_colours() {
        assert_eq!(parse_speed("32px/s"), Some(32.0));
        assert_eq!(parse_speed("0px/s"), None);
        assert_eq!(parse_color("#FF8000"), Some(Rgb(255, 128, 0)));
        assert_eq!(parse_color("Yellow"), Some(Rgb(255, 255, 0)));
        assert_eq!(parse_color("#ff80"), None);
    }

    #[test]
    fn local_times() {
        let (t, date_only) = parse_local_time("2026-12-07").unwrap();
        assert!(date_only);
        assert_eq!(t.to_string(), "2026-12-07 00:00:00");
        let (t, date_only) = parse_local_time("2026-12-07T18:00").unwrap();
        assert!(!date_only);
        assert_eq!(t.to_string(), "2026-12-07 18:00:00");
        assert!(parse_local_time("2026-13-01").is_none());
    }

    #[test]
    fn cron_accepts_what_cronie_accepts() {
        for ok in [
            "0 19 * * *",
            "*/15 8-18 * * MON-FRI",
            "0 8 1,15 * 1-5/2",
            "30 7 * JAN-MAR 7",
            "@daily",
            "@weekly",
        ] {
            assert!(parse_cron(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn cron_names_the_field_and_reason() {
        assert_eq!(
            parse_cron("0 19 * *"),
            Err(CronProblem::FieldCount { found: 4 })
        );
        assert_eq!(
            parse_cron("0 0 19 * * *").unwrap_err(),
            CronProblem::FieldCount { found: 6 }
        );
        assert_eq!(
            parse_cron("0 25 * * *"),
            Err(CronProblem::Field {
                index: 1,
                offset: 2,
                text: "25".into(),
                reason: FieldReason::OutOfRange { value: "25".into() }
            })
        );
        assert!(matches!(
            parse_cron("0 8 * * FRI-MON"),
            Err(CronProblem::Field {
                index: 4,
                reason: FieldReason::Backwards { start: 5, end: 1 },
                ..
            })
        ));
        assert!(matches!(
            parse_cron("0 8 L * *"),
            Err(CronProblem::Field {
                index: 2,
                reason: FieldReason::NotCrontab { .. },
                ..
            })
        ));
        assert!(matches!(
            parse_cron("*/0 8 * * *"),
            Err(CronProblem::Field {
                index: 0,
                reason: FieldReason::Step { .. },
                ..
            })
        ));
        assert!(matches!(
            parse_cron("@reboot"),
            Err(CronProblem::Macro { .. })
        ));
        // croner would read `+1` as "AND the day fields"; cronie has no such syntax.
        assert!(matches!(
            parse_cron("0 8 1 * +1"),
            Err(CronProblem::Field {
                index: 4,
                reason: FieldReason::NotAValue { .. },
                ..
            })
        ));
    }
}
