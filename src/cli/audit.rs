//! `gongkai audit`: what the boards showed, which bulletins went out and what operators did,
//! over a time range, as a table or as CSV.
//!
//! This is an edge: it reads the site (for its timezone) and the daemon's database, read-only,
//! possibly while the daemon writes it. What is recorded, and how, is `crate::store`'s
//! business; times are read with `gongkai plan`'s parser. Every sentence comes from the
//! catalogue (`locales/audit.yml`); the CSV's header and kind names are stable identifiers for
//! scripts, the same in every language.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use super::Exit;
use crate::i18n::{Lang, tr};
use crate::store::{Action, AuditKind, AuditRow, SlotKind, Store, StoreError};

/// The command line of `gongkai audit`.
#[derive(Debug, Clone)]
pub struct Options {
    pub from: String,
    pub to: String,
    pub display: Option<String>,
    pub csv: bool,
    /// The database; default `var/gongkai.db` under the site.
    pub db: Option<PathBuf>,
}

/// The CSV's columns, in order.
pub const CSV_HEADER: [&str; 10] = [
    "display",
    "from",
    "to",
    "kind",
    "playlist",
    "item",
    "title",
    "by",
    "recipients",
    "to_planned",
];

pub fn run(site: &Path, options: &Options, lang: Lang) -> Exit {
    let path = options
        .db
        .clone()
        .unwrap_or_else(|| crate::store::default_path(site));
    let store = match Store::open_read_only(&path) {
        Ok(store) => store,
        Err(error) => return open_failed(&path, &error, lang),
    };
    // The site's timezone: `--from`/`--to` are read in it and the output is written in it.
    let tz = match super::schedule::load_model(site, lang) {
        Ok(model) => model.site.timezone,
        Err(exit) => return exit,
    };
    // Both given (clap requires them); read as `gongkai plan` reads them.
    let read = |text: &str| {
        super::schedule::time_argument(Some(text), tz, lang, || {
            chrono::Utc::now().with_timezone(&tz)
        })
        .map(|t| t.with_timezone(&Utc))
    };
    let (Ok(from), Ok(to)) = (read(&options.from), read(&options.to)) else {
        return Exit::Usage;
    };
    if to <= from {
        error_line(lang, &tr(lang, "schedule.cli.to_before_from", &[]));
        return Exit::Usage;
    }
    let rows = match store.audit(from, to, options.display.as_deref()) {
        Ok(rows) => rows,
        Err(error) => {
            let (name, reason) = (path.display().to_string(), error.to_string());
            error_line(
                lang,
                &tr(
                    lang,
                    "audit.failed",
                    &[("path", &name), ("reason", &reason)],
                ),
            );
            return Exit::Failed;
        }
    };
    let mut out = std::io::stdout().lock();
    let written = if options.csv {
        write_csv(&mut out, &rows, tz)
    } else if rows.is_empty() {
        let (from, to) = (local(from, tz), local(to, tz));
        writeln!(
            out,
            "{}",
            tr(lang, "audit.none", &[("from", &from), ("to", &to)])
        )
    } else {
        write_table(&mut out, &rows, tz, lang)
    };
    match written {
        Ok(()) => Exit::Ok,
        // A closed pipe (`| head`) is not the operator's problem.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Exit::Ok,
        Err(_) => Exit::Failed,
    }
}

fn error_line(lang: Lang, message: &str) {
    eprintln!("{}: {message}", tr(lang, "diag.label.error", &[]));
}

/// The database could not be opened: missing is the operator's problem (exit 1), anything
/// else means the command could not do its work (exit 3).
fn open_failed(path: &Path, error: &StoreError, lang: Lang) -> Exit {
    let name = path.display().to_string();
    let (message, exit) = match error {
        StoreError::Missing(_) => (
            format!(
                "{}\n  = {}: {}",
                tr(lang, "audit.no_db", &[("path", &name)]),
                tr(lang, "diag.label.hint", &[]),
                tr(lang, "audit.no_db.hint", &[])
            ),
            Exit::Problems,
        ),
        StoreError::Foreign => (tr(lang, "audit.foreign", &[("path", &name)]), Exit::Failed),
        StoreError::NewerSchema { found, known } => (
            tr(
                lang,
                "audit.newer_schema",
                &[
                    ("path", &name),
                    ("found", &found.to_string()),
                    ("known", &known.to_string()),
                ],
            ),
            Exit::Failed,
        ),
        StoreError::NeedsMigration { found, want } => (
            tr(
                lang,
                "audit.needs_migration",
                &[
                    ("path", &name),
                    ("found", &found.to_string()),
                    ("want", &want.to_string()),
                ],
            ),
            Exit::Failed,
        ),
        other => (
            tr(
                lang,
                "audit.failed",
                &[("path", &name), ("reason", &other.to_string())],
            ),
            Exit::Failed,
        ),
    };
    error_line(lang, &message);
    exit
}

fn local(t: DateTime<Utc>, tz: Tz) -> String {
    t.with_timezone(&tz).format("%Y-%m-%d %H:%M:%S").to_string()
}

/// The kind of a row in the operator's words.
fn kind_text(kind: &AuditKind, lang: Lang) -> String {
    let key = match kind {
        AuditKind::Slot(SlotKind::Item) => "audit.kind.item",
        AuditKind::Slot(SlotKind::Interrupt) => "audit.kind.interrupt",
        AuditKind::Slot(SlotKind::Idle) => "audit.kind.idle",
        AuditKind::Slot(SlotKind::Off) => "audit.kind.off",
        AuditKind::Bulletin { .. } => "audit.kind.bulletin",
        AuditKind::Action(Action::InterruptAdded) => "audit.kind.interrupt_added",
        AuditKind::Action(Action::InterruptEnded) => "audit.kind.interrupt_ended",
        AuditKind::Action(Action::ItemWithdrawn) => "audit.kind.item_withdrawn",
        AuditKind::Action(Action::ItemRestored) => "audit.kind.item_restored",
        AuditKind::Action(Action::ItemAdded) => "audit.kind.item_added",
        AuditKind::Action(Action::ItemReviewed) => "audit.kind.item_reviewed",
        AuditKind::Action(Action::SmsCancelled) => "audit.kind.sms_cancelled",
        AuditKind::Action(Action::SmsResendConfirmed) => "audit.kind.sms_resend_confirmed",
        AuditKind::Action(Action::SmsSecondApproval) => "audit.kind.sms_second_approval",
    };
    tr(lang, key, &[])
}

/// The title cell: what was shown, or what was sent or done and by whom.
fn title_text(row: &AuditRow, lang: Lang) -> String {
    let by = row.by.as_deref().unwrap_or("-");
    match &row.kind {
        AuditKind::Slot(_) => row.title.clone(),
        AuditKind::Bulletin { recipients, .. } => tr(
            lang,
            "audit.title.bulletin",
            &[
                ("title", &row.title),
                ("count", &recipients.to_string()),
                ("by", by),
            ],
        ),
        AuditKind::Action(_) => tr(
            lang,
            "audit.title.action",
            &[("text", &row.title), ("by", by)],
        ),
    }
}

fn write_table(
    out: &mut impl std::io::Write,
    rows: &[AuditRow],
    tz: Tz,
    lang: Lang,
) -> std::io::Result<()> {
    let header = [
        "audit.head.display",
        "audit.head.from",
        "audit.head.to",
        "audit.head.kind",
        "audit.head.playlist",
        "audit.head.item",
        "audit.head.title",
    ]
    .map(|key| tr(lang, key, &[]));
    let dash = || "-".to_owned();
    let cells: Vec<[String; 7]> = rows
        .iter()
        .map(|row| {
            let is_slot = matches!(row.kind, AuditKind::Slot(_));
            let to = if !is_slot {
                dash()
            } else {
                let (start, end) = (row.from.with_timezone(&tz), row.to.with_timezone(&tz));
                // The date once per row unless the slot runs past midnight.
                let mut text = if end.date_naive() == start.date_naive() {
                    end.format("%H:%M:%S").to_string()
                } else {
                    end.format("%Y-%m-%d %H:%M:%S").to_string()
                };
                if row.to_planned {
                    text.push('*');
                }
                text
            };
            [
                row.display.clone().unwrap_or_else(dash),
                local(row.from, tz),
                to,
                kind_text(&row.kind, lang),
                row.playlist.clone().unwrap_or_else(dash),
                row.item.clone().unwrap_or_else(dash),
                title_text(row, lang),
            ]
        })
        .collect();
    // The title is last and never cut: an audit shows all of it.
    super::write_columns(out, &header, &cells)?;
    if rows.iter().any(|r| r.to_planned) {
        writeln!(out, "\n{}", tr(lang, "audit.planned_note", &[]))?;
    }
    Ok(())
}

/// Always with milliseconds, so that every time in a column has the same form for scripts.
fn rfc3339(t: DateTime<Utc>, tz: Tz) -> String {
    t.with_timezone(&tz)
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, false)
}

/// RFC 4180: a header, CRLF line ends, fields quoted when they hold a comma, a quote or a line
/// break. Times are RFC 3339 in the site's timezone.
fn write_csv(out: &mut impl std::io::Write, rows: &[AuditRow], tz: Tz) -> std::io::Result<()> {
    let mut writer = csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .from_writer(out);
    let into_io = |e: csv::Error| match e.into_kind() {
        csv::ErrorKind::Io(e) => e,
        other => std::io::Error::other(format!("{other:?}")),
    };
    writer.write_record(CSV_HEADER).map_err(into_io)?;
    for row in rows {
        let recipients = match &row.kind {
            AuditKind::Bulletin { recipients, .. } => recipients.to_string(),
            _ => String::new(),
        };
        let record = [
            row.display.clone().unwrap_or_default(),
            rfc3339(row.from, tz),
            rfc3339(row.to, tz),
            row.kind.code().to_owned(),
            row.playlist.clone().unwrap_or_default(),
            row.item.clone().unwrap_or_default(),
            row.title.clone(),
            row.by.clone().unwrap_or_default(),
            recipients,
            row.to_planned.to_string(),
        ];
        writer.write_record(&record).map_err(into_io)?;
    }
    writer.flush()
}
