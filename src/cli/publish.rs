//! `gongkai publish`: adds one item to a playlist file without the operator editing YAML.
//!
//! The command owns the whole path from arguments to a written file: it checks the
//! arguments (dates, category, id, characters) and says what is wrong in the operator's
//! words; it refuses to touch a site that does not load already (the daemon would not load
//! it either); it inserts the item as text ([`crate::config::edit`]) so the operator's
//! comments and formatting survive; it loads the whole site in memory with the edited file
//! and writes nothing unless that site has no errors and the item reads back exactly as
//! given; and it replaces the file atomically (temporary file beside it, fsync, rename), so
//! the daemon watching the folder never sees half a file.
//!
//! Exit codes: 2 for a wrong argument (unknown playlist or category, bad date, id already
//! used, unprintable characters), 1 when the site already has errors or the new item would
//! cause some (printed as `validate` prints them), 3 when the file cannot be edited or
//! written. In every one of these cases the file is left byte for byte as it was.

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};

use chrono::{NaiveDate, NaiveDateTime};
use serde::Deserialize as _;

use super::Exit;
use crate::config::edit::{self, Value};
use crate::config::model::{Model, Playlist};
use crate::config::raw::Category;
use crate::config::{self, values};
use crate::diag::{Diagnostic, Msg, Report};
use crate::i18n::{Lang, tr};

/// The command's arguments.
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub playlist: String,
    pub title: String,
    pub body: Option<String>,
    /// A file holding the body; `-` reads standard input.
    pub body_file: Option<PathBuf>,
    pub category: String,
    pub until: String,
    pub from: Option<String>,
    pub department: Option<String>,
    pub id: Option<String>,
    pub color: Option<String>,
    pub dry_run: bool,
}

/// A refusal: the message, its hint, and the exit code.
struct Refusal {
    msg: Msg,
    hint: Option<Msg>,
    exit: Exit,
}

impl Refusal {
    /// A refusal with exit code 2 (a wrong argument) unless [`Refusal::exit`] says otherwise.
    fn new(msg: Msg) -> Self {
        Refusal {
            msg,
            hint: None,
            exit: Exit::Usage,
        }
    }

    fn hint(mut self, hint: Msg) -> Self {
        self.hint = Some(hint);
        self
    }

    fn exit(mut self, exit: Exit) -> Self {
        self.exit = exit;
        self
    }

    fn print(&self, lang: Lang) -> Exit {
        let mut err = std::io::stderr().lock();
        let _ = writeln!(
            err,
            "{}: {}",
            tr(lang, "diag.label.error", &[]),
            self.msg.render(lang)
        );
        if let Some(hint) = &self.hint {
            let _ = writeln!(
                err,
                "  = {}: {}",
                tr(lang, "diag.label.hint", &[]),
                hint.render(lang)
            );
        }
        self.exit
    }
}

/// The item's values as they will be written, after the checks that need no site.
struct Texts {
    title: String,
    body: Option<String>,
    department: Option<String>,
    category: Category,
}

pub fn run(site: &Path, options: &Options, lang: Lang) -> Exit {
    match publish(site, options, lang) {
        Ok(exit) => exit,
        Err(refusal) => refusal.print(lang),
    }
}

fn publish(site: &Path, options: &Options, lang: Lang) -> Result<Exit, Refusal> {
    let texts = texts(options)?;

    let loaded = config::load(site);
    let without_target;
    // What the site says already, so that only what the new item causes is shown.
    let mut known: Vec<Diagnostic> = loaded.report.diagnostics.clone();
    let (model, target) = match &loaded.model {
        Some(model) => (model, Target::of(find_playlist(model, &options.playlist)?)),
        None => {
            // A playlist without items is an error of its own, which the first item mends;
            // any other error means the site is broken already.
            let Some(file) = only_empty(&loaded.report, &options.playlist) else {
                let _ = write!(std::io::stderr(), "{}", loaded.report.render(lang));
                return Err(Refusal::new(Msg::new("publish.site_broken"))
                    .hint(Msg::new("publish.site_broken.hint"))
                    .exit(Exit::Problems));
            };
            without_target = config::load_with_playlist(site, &file, None);
            known.extend(without_target.report.diagnostics.iter().cloned());
            let Some(model) = &without_target.model else {
                let _ = write!(std::io::stderr(), "{}", loaded.report.render(lang));
                return Err(Refusal::new(Msg::new("publish.site_broken"))
                    .hint(Msg::new("publish.site_broken.hint"))
                    .exit(Exit::Problems));
            };
            let target = Target {
                file,
                item_ids: Vec::new(),
            };
            (model, target)
        }
    };
    let (from, until) = dates(options, model)?;
    let now = chrono::Utc::now()
        .with_timezone(&model.site.timezone)
        .naive_local();
    if until.at <= now {
        eprintln!(
            "{}: {}",
            tr(lang, "diag.label.warning", &[]),
            tr(lang, "publish.already_over", &[("until", &until.text)])
        );
    }
    let id = match &options.id {
        Some(id) => {
            if let Some((owner, item)) = model.item(id) {
                return Err(Refusal::new(
                    Msg::new("publish.duplicate_id")
                        .arg("id", id)
                        .arg("place", format!("{}:{}", owner.file, item.line)),
                )
                .hint(Msg::new("publish.duplicate_id.hint")));
            }
            id.clone()
        }
        None => generate_id(model, &target.item_ids, texts.category, from.year),
    };

    let mut fields: Vec<(&str, Value)> = vec![
        ("id", Value::Quoted(id.clone())),
        ("category", Value::Quoted(texts.category.name().to_owned())),
    ];
    if let Some(department) = &texts.department {
        fields.push(("department", Value::Quoted(department.clone())));
    }
    fields.push(("title", Value::Quoted(texts.title.clone())));
    if let Some(body) = &texts.body {
        fields.push(("body", Value::Text(body.clone())));
    }
    fields.push((
        "valid",
        Value::Flow(vec![
            ("from".to_owned(), from.text.clone()),
            ("until".to_owned(), until.text.clone()),
        ]),
    ));
    if let Some(color) = &options.color {
        fields.push(("color", Value::Quoted(color.trim().to_owned())));
    }

    let path = site.join(&target.file);
    let original = std::fs::read(&path).map_err(|e| {
        Refusal::new(
            Msg::new("publish.unreadable")
                .arg("path", &target.file)
                .arg("reason", e),
        )
        .exit(Exit::Failed)
    })?;
    let text = String::from_utf8(original.clone()).map_err(|_| {
        Refusal::new(Msg::new("publish.not_utf8").arg("path", &target.file)).exit(Exit::Failed)
    })?;
    let inserted = edit::append_item(&text, &fields).map_err(|e| {
        Refusal::new(
            Msg::new("publish.cannot_edit")
                .arg("path", &target.file)
                .arg_msg("reason", e.msg()),
        )
        .exit(Exit::Failed)
    })?;

    // The whole site, with the edited file in place of the original.
    let candidate = config::load_with_playlist(site, &target.file, Some(inserted.text.clone()));
    let mut report = candidate.report;
    report
        .diagnostics
        .retain(|d| is_new(d, &target.file, &inserted, &known));
    let _ = write!(std::io::stderr(), "{}", report.render(lang));
    let Some(new_model) = &candidate.model else {
        return Err(
            Refusal::new(Msg::new("publish.candidate_problems").arg("file", &target.file))
                .exit(Exit::Problems),
        );
    };
    read_back(new_model, &id, &texts, &options.color)?;
    others_unchanged(model, new_model, &id)?;

    let mut out = std::io::stdout().lock();
    if options.dry_run {
        let _ = write!(out, "{}", inserted.block);
        let _ = writeln!(
            out,
            "{}",
            tr(
                lang,
                "publish.dry_run",
                &[
                    ("file", &target.file),
                    ("line", &inserted.entry_line.to_string())
                ]
            )
        );
        return Ok(Exit::Ok);
    }

    write_atomically(&path, &original, inserted.text.as_bytes()).map_err(|e| match e {
        WriteError::Changed => {
            Refusal::new(Msg::new("publish.changed").arg("path", &target.file)).exit(Exit::Failed)
        }
        WriteError::Io(e) => Refusal::new(
            Msg::new("publish.write_failed")
                .arg("path", &target.file)
                .arg("reason", e),
        )
        .exit(Exit::Failed),
    })?;
    let _ = writeln!(
        out,
        "{}",
        tr(
            lang,
            "publish.done",
            &[
                ("id", &id),
                ("file", &target.file),
                ("line", &inserted.entry_line.to_string())
            ]
        )
    );
    let _ = writeln!(out, "{}", tr(lang, "publish.draft_hint", &[]));
    // Who added what, for the supervision the county plan asks for. The file is written
    // already; an audit that cannot be opened is said, not undone.
    let detail = format!("{}:{}", target.file, inserted.entry_line);
    let recorded = crate::store::Store::open(&crate::store::default_path(site)).and_then(|store| {
        store.record(
            crate::store::Action::ItemAdded,
            &id,
            &super::daemon::operator(),
            &detail,
            chrono::Utc::now(),
        )
    });
    if let Err(e) = recorded {
        let reason = e.to_string();
        eprintln!(
            "{}",
            tr(lang, "publish.audit_failed", &[("reason", &reason)])
        );
    }
    Ok(Exit::Ok)
}

/// Title, body and department as they will be written, and the category: the loader trims a
/// title and the end of a body, so they are trimmed here and read back equal; a body's CRLF
/// (a file saved on Windows) becomes LF.
fn texts(options: &Options) -> Result<Texts, Refusal> {
    let category = Category::deserialize(serde::de::value::StrDeserializer::<
        serde::de::value::Error,
    >::new(options.category.trim()))
    .map_err(|_| {
        let names: Vec<&str> = Category::ALL.iter().map(|c| c.name()).collect();
        Refusal::new(Msg::new("publish.unknown_category").arg("value", &options.category))
            .hint(Msg::new("publish.unknown_category.hint").arg("list", names.join("、")))
    })?;

    let title = options.title.trim().to_owned();
    if title.is_empty() {
        return Err(Refusal::new(Msg::new("publish.empty_title")));
    }
    check_chars("--title", &title, false)?;

    let body = match (&options.body, &options.body_file) {
        (Some(body), _) => Some(body.clone()),
        (None, Some(file)) => Some(read_body(file)?),
        (None, None) => None,
    };
    let body = body
        .map(|b| b.replace("\r\n", "\n").trim_end().to_owned())
        .filter(|b| !b.is_empty());
    if let Some(body) = &body {
        check_chars("--body", body, true)?;
    }

    let department = options
        .department
        .as_ref()
        .map(|d| d.trim().to_owned())
        .filter(|d| !d.is_empty());
    if let Some(department) = &department {
        check_chars("--department", department, false)?;
    }
    Ok(Texts {
        title,
        body,
        department,
        category,
    })
}

fn read_body(file: &Path) -> Result<String, Refusal> {
    let name = file.display().to_string();
    let bytes = if file == Path::new("-") {
        let mut bytes = Vec::new();
        std::io::stdin().read_to_end(&mut bytes).map(|_| bytes)
    } else {
        std::fs::read(file)
    }
    .map_err(|e| {
        Refusal::new(
            Msg::new("publish.unreadable")
                .arg("path", &name)
                .arg("reason", e),
        )
    })?;
    let text = String::from_utf8(bytes).map_err(|_| {
        Refusal::new(Msg::new("publish.not_utf8").arg("path", &name))
            .hint(Msg::new("publish.not_utf8.hint"))
    })?;
    Ok(text
        .strip_prefix('\u{FEFF}')
        .map(str::to_owned)
        .unwrap_or(text))
}

/// Characters that are invisible on a board and can make a text read differently from what
/// is stored: control characters (a line break is allowed in a body), the bidirectional
/// embeddings, overrides, isolates and marks, line and paragraph separators, and the byte
/// order mark. They are refused rather than written: the loader would accept them, but a
/// notice that says one thing on screen and another in the file has no place on a board.
fn check_chars(option: &str, text: &str, multiline: bool) -> Result<(), Refusal> {
    let bad = |c: char| {
        (c.is_control() && !(multiline && c == '\n'))
            || matches!(
                c,
                '\u{061C}'
                    | '\u{200E}'
                    | '\u{200F}'
                    | '\u{202A}'..='\u{202E}'
                    | '\u{2066}'..='\u{2069}'
                    | '\u{2028}'
                    | '\u{2029}'
                    | '\u{FEFF}'
            )
    };
    let Some((at, c)) = text.chars().enumerate().find(|&(_, c)| bad(c)) else {
        return Ok(());
    };
    let before: String = text.chars().take(at).collect();
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    Err(Refusal::new(
        Msg::new("publish.bad_char")
            .arg("option", option)
            .arg("code", format!("U+{:04X}", u32::from(c)))
            .arg("line", line)
            .arg("col", col),
    )
    .hint(Msg::new("publish.bad_char.hint")))
}

/// The playlist the item goes into.
struct Target {
    /// Its file, relative to the site.
    file: String,
    item_ids: Vec<String>,
}

impl Target {
    fn of(playlist: &Playlist) -> Target {
        Target {
            file: playlist.file.clone(),
            item_ids: playlist.items.iter().map(|i| i.id.clone()).collect(),
        }
    }
}

/// The file of playlist `id` when the report's only errors say that it has no items.
fn only_empty(report: &Report, id: &str) -> Option<String> {
    let mut errors = report
        .diagnostics
        .iter()
        .filter(|d| d.severity == crate::diag::Severity::Error);
    let first = errors.next()?;
    let names_it =
        first.message.key == "check.empty_playlist"
            && first.message.args.iter().any(|(name, value)| {
                *name == "id" && *value == crate::diag::Arg::Text(id.to_owned())
            });
    (names_it && errors.next().is_none()).then(|| first.pos.file.clone())
}

fn find_playlist<'a>(model: &'a Model, id: &str) -> Result<&'a Playlist, Refusal> {
    model.playlists.iter().find(|p| p.id == id).ok_or_else(|| {
        let ids: Vec<&str> = model.playlists.iter().map(|p| p.id.as_str()).collect();
        Refusal::new(Msg::new("publish.unknown_playlist").arg("id", id))
            .hint(Msg::new("publish.unknown_playlist.hint").arg("list", ids.join(", ")))
    })
}

/// A date or time argument: as written (trimmed), and when it is.
struct When {
    text: String,
    /// For `--until`, a date alone means the end of that day, as the loader reads it.
    at: NaiveDateTime,
    year: i32,
}

fn when(option: &str, text: &str, is_until: bool) -> Result<When, Refusal> {
    let text = text.trim();
    let Some((local, date_only)) = values::parse_local_time(text) else {
        return Err(Refusal::new(
            Msg::new("publish.bad_time")
                .arg("option", option)
                .arg("value", text),
        )
        .hint(Msg::new("publish.bad_time.hint")));
    };
    let at = if is_until && date_only {
        local + chrono::Duration::days(1)
    } else {
        local
    };
    Ok(When {
        text: text.to_owned(),
        at,
        year: chrono::Datelike::year(&local),
    })
}

/// `--from` (default: today in the site's zone) and `--until`, the latter after the former.
fn dates(options: &Options, model: &Model) -> Result<(When, When), Refusal> {
    let today: NaiveDate = chrono::Utc::now()
        .with_timezone(&model.site.timezone)
        .date_naive();
    let from_text = options
        .from
        .clone()
        .unwrap_or_else(|| today.format("%Y-%m-%d").to_string());
    let from = when("--from", &from_text, false)?;
    let until = when("--until", &options.until, true)?;
    if until.at <= from.at {
        return Err(Refusal::new(
            Msg::new("publish.until_before_from")
                .arg("until", &until.text)
                .arg("from", &from.text),
        )
        .hint(Msg::new("publish.until_before_from.hint")));
    }
    Ok((from, until))
}

/// The short prefix of a category's ids in the example playlists (pinyin initials).
pub fn category_prefix(category: Category) -> &'static str {
    match category {
        Category::Licensing => "xk",
        Category::Procurement => "cg",
        Category::Tendering => "zb",
        Category::LandTransfer => "td",
        Category::SpecialFunds => "zj",
        Category::PropertyRights => "cq",
        Category::Hiring => "zp",
        Category::Planning => "gh",
        Category::Meeting => "hy",
        Category::Policy => "zc",
        Category::Other => "qt",
    }
}

/// An id in the style of the site: `<category prefix>-<year>-<number>` (`xk-2026-49`), the
/// number one more than the highest such id of that prefix and year anywhere in the site,
/// zero-padded like the existing ones. A playlist whose items all share a first part that is
/// not a category prefix (`w01-scope`, `w01-materials`) puts it first: `w01-qt-2026-1`.
pub fn generate_id(model: &Model, item_ids: &[String], category: Category, year: i32) -> String {
    let prefixes: Vec<&str> = Category::ALL.iter().map(|&c| category_prefix(c)).collect();
    let heads: Vec<&str> = item_ids
        .iter()
        .map(|id| id.split('-').next().unwrap_or(""))
        .collect();
    let head = match heads.first() {
        Some(first)
            if heads.len() >= 2
                && heads.iter().all(|h| h == first)
                && !first.is_empty()
                && heads.iter().zip(item_ids).all(|(h, id)| h.len() < id.len())
                && !prefixes.contains(first) =>
        {
            format!("{first}-")
        }
        _ => String::new(),
    };
    let stem = format!("{head}{}-", category_prefix(category));
    // (year, number, width when zero-padded) of every id `<stem><year>-<digits>`.
    let numbered: Vec<(i32, u64, usize)> = model
        .items()
        .filter_map(|(_, item)| {
            let rest = item.id.strip_prefix(&stem)?;
            let (y, n) = rest.split_once('-')?;
            if y.len() != 4 || n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let width = if n.starts_with('0') { n.len() } else { 1 };
            Some((y.parse().ok()?, n.parse().ok()?, width))
        })
        .collect();
    let this_year: Vec<&(i32, u64, usize)> = numbered.iter().filter(|n| n.0 == year).collect();
    let next = this_year
        .iter()
        .map(|n| n.1)
        .max()
        .map_or(1, |n| n.saturating_add(1));
    // Padded like this year's ids, or, in a new year, like the earlier years'.
    let width = if this_year.is_empty() {
        numbered.iter().map(|n| n.2).max()
    } else {
        this_year.iter().map(|n| n.2).max()
    }
    .unwrap_or(1);
    (next..=next.saturating_add(10_000))
        .map(|n| format!("{stem}{year}-{n:0width$}"))
        .find(|id| model.item(id).is_none())
        .unwrap_or_else(|| format!("{stem}{year}-x"))
}

/// Whether a diagnostic of the edited site is not one the site had already: inside the
/// inserted lines, or not found at the same place (lines after the insertion moved back) in
/// what the site said before.
fn is_new(d: &Diagnostic, file: &str, inserted: &edit::Inserted, before: &[Diagnostic]) -> bool {
    let mut pos = d.pos.clone();
    if pos.file == file {
        match inserted.original_line(pos.line) {
            Some(line) => pos.line = line,
            None => return true,
        }
    }
    !before
        .iter()
        .any(|b| b.severity == d.severity && b.pos == pos && b.message == d.message)
}

/// The item as the loader reads it back must be the item given: a last guard against a
/// value written so that it reads differently.
fn read_back(
    model: &Model,
    id: &str,
    texts: &Texts,
    color: &Option<String>,
) -> Result<(), Refusal> {
    let mismatch = |field: &str| {
        Refusal::new(Msg::new("publish.mismatch").arg("field", field)).exit(Exit::Failed)
    };
    let Some((_, item)) = model.item(id) else {
        return Err(mismatch("id"));
    };
    if item.title != texts.title {
        return Err(mismatch("title"));
    }
    if item.body != texts.body.clone().unwrap_or_default() {
        return Err(mismatch("body"));
    }
    if item.category != texts.category {
        return Err(mismatch("category"));
    }
    if item.department != texts.department {
        return Err(mismatch("department"));
    }
    if item.color.is_some() != color.is_some() {
        return Err(mismatch("color"));
    }
    Ok(())
}

/// What an item means, without where it is written.
fn meaning(item: &crate::config::model::Item) -> impl PartialEq + '_ {
    (
        &item.id,
        &item.title,
        &item.body,
        item.category,
        &item.department,
        &item.valid,
        item.show,
        item.color,
        &item.channels,
        item.at_least_every,
    )
}

/// Every item the site had before reads back unchanged, and only the new one was added: an
/// insertion must never change what the text around it means.
fn others_unchanged(before: &Model, after: &Model, new_id: &str) -> Result<(), Refusal> {
    let same = after.items().count() == before.items().count() + 1
        && before.items().all(|(playlist, old)| {
            after
                .item(&old.id)
                .is_some_and(|(p, new)| p.id == playlist.id && meaning(new) == meaning(old))
        })
        && after
            .items()
            .all(|(_, i)| i.id == new_id || before.item(&i.id).is_some());
    if same {
        Ok(())
    } else {
        Err(Refusal::new(Msg::new("publish.others_changed")).exit(Exit::Failed))
    }
}

#[derive(Debug, thiserror::Error)]
enum WriteError {
    #[error("the file changed while the item was being added")]
    Changed,
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Replaces the file at `path` (following a symbolic link to the real file) by `new`: a
/// temporary file in the same folder with the original's permissions (and owner, when
/// allowed), flushed to disk, then renamed over the original. Refused when the file no
/// longer holds `expected`, so an edit made meanwhile is never overwritten.
fn write_atomically(path: &Path, expected: &[u8], new: &[u8]) -> Result<(), WriteError> {
    let target = std::fs::canonicalize(path)?;
    let dir = target
        .parent()
        .ok_or_else(|| std::io::Error::other("no parent folder"))?;
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let metadata = std::fs::metadata(&target)?;
    // The name does not end in .yaml, so the daemon does not take it for a playlist.
    let (tmp_path, mut file) = (0..100)
        .find_map(|n| {
            let tmp = dir.join(format!(".{name}.{}-{n}.publish-tmp", std::process::id()));
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&tmp)
            {
                Ok(file) => Some(Ok((tmp, file))),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => None,
                Err(e) => Some(Err(e)),
            }
        })
        .unwrap_or_else(|| Err(std::io::Error::other("no free temporary file name")))?;
    let result = (|| -> Result<(), WriteError> {
        file.write_all(new)?;
        file.set_permissions(metadata.permissions())?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt as _;
            // Only root may give a file away; anyone else keeps their own ownership, which
            // is the original's in the usual case of editing one's own file.
            let _ = std::os::unix::fs::fchown(&file, Some(metadata.uid()), Some(metadata.gid()));
        }
        file.sync_all()?;
        drop(file);
        if std::fs::read(&target)? != expected {
            return Err(WriteError::Changed);
        }
        std::fs::rename(&tmp_path, &target)?;
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp_path);
        return result;
    }
    // The rename is durable once the folder is flushed; the file is already complete, so a
    // failure here is not reported as a failed write.
    if let Ok(dir) = std::fs::File::open(dir) {
        let _ = dir.sync_all();
    }
    Ok(())
}
