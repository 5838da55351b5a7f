//! `gongkai plan` and `gongkai cron`: the schedule and crontab answers an operator asks for.
//!
//! This is an edge: it reads the site from disk and, when no `--from` is given, the clock.
//! Everything it prints comes from the catalogue; the schedule itself is `crate::schedule`.

use std::io::Write as _;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, LocalResult, TimeZone};
use chrono_tz::Tz;
use unicode_width::UnicodeWidthStr;

use super::Exit;
use crate::config::model::{Model, Window};
use crate::config::values::{self, CronProblem};
use crate::config::{self, SITE_FILE};
use crate::i18n::{Lang, tr};
use crate::schedule::cron::CronSpec;
use crate::schedule::{IdleCause, Schedule, Slot, What, Why};

/// How far ahead `cron` looks for the next fire (a 29 February can be eight years away).
const CRON_LOOKAHEAD_DAYS: u32 = 366 * 8 + 2;

/// A `--from` / `--to` the operator typed that is not a time.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimeError {
    #[error("not a time: {0}")]
    Format(String),
    #[error("skipped by the clock change: {0}")]
    Skipped(String),
}

/// RFC 3339, or `YYYY-MM-DDTHH:MM[:SS]` (also a bare date, or a space for the `T`) read in
/// `tz`. A local time that occurs twice means the earlier one, as in the site's files.
pub fn parse_time(text: &str, tz: Tz) -> Result<DateTime<Tz>, TimeError> {
    let text = text.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&tz));
    }
    let (local, _) =
        values::parse_local_time(text).ok_or_else(|| TimeError::Format(text.to_owned()))?;
    match tz.from_local_datetime(&local) {
        LocalResult::Single(t) | LocalResult::Ambiguous(t, _) => Ok(t),
        LocalResult::None => Err(TimeError::Skipped(text.to_owned())),
    }
}

fn time_error(lang: Lang, error: &TimeError, tz: Tz) -> String {
    match error {
        TimeError::Format(text) => format!(
            "{}\n  = {}: {}",
            tr(lang, "schedule.cli.bad_time", &[("value", text)]),
            tr(lang, "diag.label.hint", &[]),
            tr(lang, "schedule.cli.bad_time.hint", &[])
        ),
        TimeError::Skipped(text) => tr(
            lang,
            "schedule.cli.time_skipped",
            &[("value", text), ("zone", tz.name())],
        ),
    }
}

/// Loads the site; on errors prints the report and says so.
pub(super) fn load_model(site: &Path, lang: Lang) -> Result<Model, Exit> {
    let loaded = config::load(site);
    match loaded.model {
        Some(model) => Ok(model),
        None => {
            let report = &loaded.report;
            let mut out = std::io::stdout().lock();
            let _ = write!(out, "{}", report.render(lang));
            let errors = report.errors().to_string();
            let warnings = report.warnings().to_string();
            let _ = writeln!(
                out,
                "{}",
                tr(
                    lang,
                    "cli.validate.failed",
                    &[("errors", &errors), ("warnings", &warnings)]
                )
            );
            Err(Exit::Problems)
        }
    }
}

/// `gongkai plan`: what `display` shows from `from` (default now) to `to` (default a day
/// later), as a table or as JSON.
pub fn plan(
    site: &Path,
    display: &str,
    from: Option<&str>,
    to: Option<&str>,
    json: bool,
    lang: Lang,
) -> Exit {
    let model = match load_model(site, lang) {
        Ok(model) => model,
        Err(exit) => return exit,
    };
    let tz = model.site.timezone;
    let Some(index) = model.displays.iter().position(|d| d.id == display) else {
        let ids: Vec<&str> = model.displays.iter().map(|d| d.id.as_str()).collect();
        eprintln!(
            "{}: {}\n  = {}: {}",
            tr(lang, "diag.label.error", &[]),
            tr(lang, "schedule.cli.unknown_display", &[("id", display)]),
            tr(lang, "diag.label.hint", &[]),
            tr(
                lang,
                "schedule.cli.unknown_display.hint",
                &[("list", &ids.join(", "))]
            )
        );
        return Exit::Usage;
    };
    let Ok(from) = time_argument(from, tz, lang, || chrono::Utc::now().with_timezone(&tz)) else {
        return Exit::Usage;
    };
    let Ok(to) = time_argument(to, tz, lang, || from + chrono::Duration::days(1)) else {
        return Exit::Usage;
    };
    if to <= from {
        eprintln!(
            "{}: {}",
            tr(lang, "diag.label.error", &[]),
            tr(lang, "schedule.cli.to_before_from", &[])
        );
        return Exit::Usage;
    }
    let slots = Schedule::new(&model).and_then(|schedule| {
        let real = crate::durations::Durations::new(&model, site);
        let durations = |item: &_, d| real.of(item, d);
        schedule.timeline(&[], index, from, to, &durations)
    });
    let slots = match slots {
        Ok(slots) => slots,
        Err(error) => {
            let reason = error.to_string();
            eprintln!(
                "{}: {}",
                tr(lang, "diag.label.error", &[]),
                tr(lang, "schedule.cli.failed", &[("reason", &reason)])
            );
            return Exit::Failed;
        }
    };
    let rows: Vec<Row> = slots
        .iter()
        .enumerate()
        // The first slot's offset comes from cutting at --from, not from a resumption.
        .map(|(n, s)| Row::new(&model, s, n > 0, lang))
        .collect();
    let mut out = std::io::stdout().lock();
    let written = if json {
        let array: Vec<serde_json::Value> = rows.iter().map(Row::json).collect();
        serde_json::to_string_pretty(&array)
            .map_err(std::io::Error::other)
            .and_then(|text| writeln!(out, "{text}"))
    } else {
        write_table(&mut out, &rows, lang)
    };
    match written {
        Ok(()) => Exit::Ok,
        // A closed pipe (`| head`) is not the operator's problem.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Exit::Ok,
        Err(_) => Exit::Failed,
    }
}

/// One slot in the operator's words.
struct Row {
    start: DateTime<Tz>,
    end: DateTime<Tz>,
    item: Option<String>,
    title: String,
    playlist: Option<String>,
    layer: &'static str,
    priority: Option<i32>,
    offset: Duration,
    out_of_turn: bool,
    why: String,
}

impl Row {
    fn new(model: &Model, slot: &Slot, resumed: bool, lang: Lang) -> Row {
        let (item, title, playlist, priority, offset, out_of_turn) = match slot.what {
            What::Item {
                playlist,
                item,
                offset,
                out_of_turn,
            } => {
                let p = &model.playlists[playlist];
                let i = &p.items[item];
                (
                    Some(i.id.clone()),
                    i.title.clone(),
                    Some(p.id.clone()),
                    Some(p.priority),
                    offset,
                    out_of_turn,
                )
            }
            What::Interrupt(_) => (
                None,
                tr(lang, "schedule.what.interrupt", &[]),
                None,
                None,
                Duration::ZERO,
                false,
            ),
            What::Idle => (
                None,
                tr(lang, "schedule.what.idle", &[("site", &model.site.name)]),
                None,
                None,
                Duration::ZERO,
                false,
            ),
            What::Off => (
                None,
                tr(lang, "schedule.what.off", &[]),
                None,
                None,
                Duration::ZERO,
                false,
            ),
        };
        let layer = match slot.why {
            Why::Interrupt => "interrupt",
            Why::PowerOff { .. } => "off",
            Why::Window { .. } => "window",
            Why::Default { .. } => "default",
            Why::Idle(_) => "idle",
        };
        let mut why = why_text(model, slot, lang);
        if out_of_turn
            && let What::Item { playlist, item, .. } = slot.what
            && let Some(every) = model.playlists[playlist].items[item].at_least_every
        {
            why.push_str(&tr(
                lang,
                "schedule.why.out_of_turn",
                &[("every", &duration_text(every))],
            ));
        }
        if resumed && !offset.is_zero() {
            why.push_str(&tr(
                lang,
                "schedule.why.resumed",
                &[("offset", &duration_text(offset))],
            ));
        }
        Row {
            start: slot.start,
            end: slot.end,
            item,
            title,
            playlist,
            layer,
            priority,
            offset,
            out_of_turn,
            why,
        }
    }

    fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "start": self.start.to_rfc3339(),
            "end": self.end.to_rfc3339(),
            "item": self.item,
            "title": self.title,
            "playlist": self.playlist,
            "why": self.why,
            "layer": self.layer,
            "priority": self.priority,
            "offset_seconds": self.offset.as_secs_f64(),
            "out_of_turn": self.out_of_turn,
        })
    }
}

fn window_text(window: &Window) -> (String, String) {
    (window.cron_text.clone(), duration_text(window.duration))
}

fn why_text(model: &Model, slot: &Slot, lang: Lang) -> String {
    let over = |over: Option<usize>| {
        over.map(|p| {
            let p = &model.playlists[p];
            tr(
                lang,
                "schedule.why.over",
                &[("playlist", &p.id), ("priority", &p.priority.to_string())],
            )
        })
        .unwrap_or_default()
    };
    match slot.why {
        Why::Interrupt => tr(
            lang,
            "schedule.why.interrupt",
            &[("until", &slot.end.format("%Y-%m-%d %H:%M").to_string())],
        ),
        Why::PowerOff { window } => {
            let display = model
                .displays
                .iter()
                .find(|d| d.power_off.get(window).is_some());
            let (cron, length) = display
                .and_then(|d| d.power_off.get(window))
                .map(window_text)
                .unwrap_or_default();
            tr(
                lang,
                "schedule.why.power_off",
                &[("cron", &cron), ("for", &length)],
            )
        }
        Why::Window {
            window,
            opened,
            over: runner_up,
        } => {
            let (cron, length, priority) = match slot.what {
                What::Item { playlist, .. } => {
                    let p = &model.playlists[playlist];
                    let (cron, length) = p.windows.get(window).map(window_text).unwrap_or_default();
                    (cron, length, p.priority)
                }
                _ => Default::default(),
            };
            tr(
                lang,
                "schedule.why.window",
                &[
                    ("cron", &cron),
                    ("for", &length),
                    ("since", &opened.format("%Y-%m-%d %H:%M").to_string()),
                    ("priority", &priority.to_string()),
                ],
            ) + &over(runner_up)
        }
        Why::Default { over: runner_up } => {
            tr(lang, "schedule.why.default", &[]) + &over(runner_up)
        }
        Why::Idle(IdleCause::NoPlaylist) => tr(lang, "schedule.why.idle_no_playlist", &[]),
        Why::Idle(IdleCause::NothingOnAir) => tr(lang, "schedule.why.idle_nothing_on_air", &[]),
        Why::Idle(IdleCause::NothingValid) => tr(lang, "schedule.why.idle_nothing_valid", &[]),
    }
}

/// `2h`, `1h30m`, `90s`: the way durations are written in the site's files.
fn duration_text(d: Duration) -> String {
    let total = d.as_secs();
    if total == 0 {
        return format!("{}ms", d.as_millis());
    }
    let (h, m, s) = (total / 3600, total / 60 % 60, total % 60);
    let mut text = String::new();
    for (value, unit) in [(h, "h"), (m, "m"), (s, "s")] {
        if value > 0 {
            text.push_str(&format!("{value}{unit}"));
        }
    }
    text
}

fn write_table(out: &mut impl std::io::Write, rows: &[Row], lang: Lang) -> std::io::Result<()> {
    let header = [
        tr(lang, "schedule.plan.time", &[]),
        tr(lang, "schedule.plan.what", &[]),
        tr(lang, "schedule.plan.playlist", &[]),
        tr(lang, "schedule.plan.why", &[]),
    ];
    let cells: Vec<[String; 4]> = rows
        .iter()
        .map(|r| {
            let end = if r.end.date_naive() == r.start.date_naive() {
                r.end.format("%H:%M:%S").to_string()
            } else {
                r.end.format("%Y-%m-%d %H:%M:%S").to_string()
            };
            let what = match &r.item {
                Some(id) => format!("{id} {}", shorten(&r.title, 24)),
                None => r.title.clone(),
            };
            [
                format!("{} – {end}", r.start.format("%Y-%m-%d %H:%M:%S")),
                what,
                r.playlist.clone().unwrap_or_else(|| "-".to_owned()),
                r.why.clone(),
            ]
        })
        .collect();
    super::write_columns(out, &header, &cells)?;
    Ok(())
}

/// At most `max` characters, with an ellipsis when cut.
fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// `gongkai cron`: the next `count` times `expr` fires strictly after `from` (default now),
/// in RFC 3339, one per line.
pub fn cron(
    expr: &str,
    from: Option<&str>,
    count: usize,
    tz: Option<&str>,
    site: &Path,
    lang: Lang,
) -> Exit {
    let tz = match tz {
        Some(name) => match Tz::from_str(name.trim()) {
            Ok(tz) => tz,
            Err(_) => {
                eprintln!(
                    "{}: {}",
                    tr(lang, "diag.label.error", &[]),
                    tr(lang, "schedule.cli.unknown_tz", &[("name", name)])
                );
                return Exit::Usage;
            }
        },
        None if site.join(SITE_FILE).is_file() => match load_model(site, lang) {
            Ok(model) => model.site.timezone,
            Err(exit) => return exit,
        },
        None => config::validate::DEFAULT_TIMEZONE,
    };
    if let Err(problem) = values::parse_cron(expr) {
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "{}", cron_problem(expr, &problem, lang));
        return Exit::Problems;
    }
    let spec = match CronSpec::parse(expr) {
        Ok(spec) => spec,
        Err(error) => {
            let reason = error.to_string();
            eprintln!(
                "{}: {}",
                tr(lang, "diag.label.error", &[]),
                tr(lang, "schedule.cli.failed", &[("reason", &reason)])
            );
            return Exit::Failed;
        }
    };
    let Ok(from) = time_argument(from, tz, lang, || chrono::Utc::now().with_timezone(&tz)) else {
        return Exit::Usage;
    };
    let mut out = std::io::stdout().lock();
    let mut after = from.timestamp_millis();
    for _ in 0..count {
        let Some(next) = spec.next_after(tz, after, CRON_LOOKAHEAD_DAYS) else {
            eprintln!(
                "{}",
                tr(lang, "schedule.cli.cron_never", &[("expr", expr.trim())])
            );
            break;
        };
        let local = crate::schedule::cron::to_local(tz, next);
        if writeln!(out, "{}", local.to_rfc3339()).is_err() {
            break;
        }
        after = next;
    }
    Exit::Ok
}

/// A time argument (`--from`, `--to`) read in `tz`, or `default` when absent. A time that does
/// not parse is reported on stderr.
pub(super) fn time_argument(
    text: Option<&str>,
    tz: Tz,
    lang: Lang,
    default: impl FnOnce() -> DateTime<Tz>,
) -> Result<DateTime<Tz>, ()> {
    match text.map(|t| parse_time(t, tz)) {
        None => Ok(default()),
        Some(Ok(t)) => Ok(t),
        Some(Err(e)) => {
            eprintln!(
                "{}: {}",
                tr(lang, "diag.label.error", &[]),
                time_error(lang, &e, tz)
            );
            Err(())
        }
    }
}

/// The expression, a caret under the field that is wrong, the reason and a hint.
fn cron_problem(expr: &str, problem: &CronProblem, lang: Lang) -> String {
    let (message, caret, hint) = (problem.message(expr), problem.span(), problem.hint());
    let mut text = format!(
        "{}: {}\n",
        tr(lang, "diag.label.error", &[]),
        message.render(lang)
    );
    text.push_str(&format!("  {expr}\n"));
    if let Some((offset, len)) = caret {
        let before: String = expr.chars().take(offset).collect();
        text.push_str(&format!(
            "  {}{}\n",
            " ".repeat(before.width()),
            "^".repeat(len)
        ));
    }
    text.push_str(&format!(
        "  = {}: {}\n",
        tr(lang, "diag.label.hint", &[]),
        hint.render(lang)
    ));
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339_or_local_in_the_zone() {
        let tz = chrono_tz::Asia::Shanghai;
        let local = parse_time("2026-12-01T19:30", tz).expect("local");
        assert_eq!(local.to_rfc3339(), "2026-12-01T19:30:00+08:00");
        let utc = parse_time("2026-12-01T11:30:00Z", tz).expect("rfc3339");
        assert_eq!(utc, local);
        assert!(matches!(parse_time("19:30", tz), Err(TimeError::Format(_))));
        let ny = chrono_tz::America::New_York;
        assert!(matches!(
            parse_time("2026-03-08T02:30", ny),
            Err(TimeError::Skipped(_))
        ));
    }

    #[test]
    fn cron_problem_points_at_the_field() {
        let problem = values::parse_cron("0 25 * * *").expect_err("bad hour");
        let text = cron_problem("0 25 * * *", &problem, Lang::En);
        assert!(
            text.contains("cron field 2 (hour) `25`: 25 is out of range 0-23"),
            "{text}"
        );
        assert!(text.contains("\n    ^^\n"), "{text}");
        let zh = cron_problem("0 25 * * *", &problem, Lang::Zh);
        assert!(zh.starts_with("错误: "), "{zh}");
    }

    #[test]
    fn durations_read_like_the_files() {
        assert_eq!(duration_text(Duration::from_secs(5400)), "1h30m");
        assert_eq!(duration_text(Duration::from_secs(98)), "1m38s");
    }
}
