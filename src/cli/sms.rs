//! The `gongkai sms` commands: `segments` and `preview` (what a text or an item's bulletin
//! costs), `send`, `status`, `import` and `reconcile`; the operator's tools on the ledger:
//! `cancel`, `unknown`, `resend` and `consent`.
//!
//! An edge: it reads the site, opens the ledger, runs the dispatcher and prints. The text,
//! counting, selection and sending rules are `crate::sms`. Numbers are shown masked
//! (`138****8000`) unless the operator passes `--show-numbers` or asked about one number.
//! Commands that may run beside a sender (the daemon, another `sms send`) open the ledger
//! without recovery, so that they never take another process's calls in flight for a crash.
//! Cancellations and confirmed resends are recorded in the daemon's audit (`crate::store`).

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::Exit;
use crate::config;
use crate::config::model::{Sms, SmsGatewayKind};
use crate::i18n::{Lang, tr};
use crate::sms::bulletin::{self, Fields, Style, Template};
use crate::sms::dispatch::{self, Counts, DispatchError, Dispatcher, SendOptions};
use crate::sms::ledger::{self, Ledger, State, StateCounts};
use crate::sms::segments::{Segments, segment};
use crate::sms::subscribers;
use crate::store::Action;

fn counts(lang: Lang, segments: &Segments) -> String {
    let chars = segments.chars.to_string();
    let parts = segments.parts.to_string();
    tr(
        lang,
        "sms.cli.counts",
        &[
            ("encoding", segments.encoding.name()),
            ("chars", &chars),
            ("parts", &parts),
        ],
    )
}

/// `gongkai sms segments TEXT`: encoding, billed characters and parts of a text as given.
pub fn segments(text: &str, lang: Lang) -> Exit {
    let segments = segment(text);
    let _ = writeln!(std::io::stdout(), "{}", counts(lang, &segments));
    Exit::Ok
}

/// `gongkai sms preview ITEM`: the bulletin the site would send for an item, and what it costs;
/// for each template gateway, the variables it would fill.
pub fn preview(site: &Path, item: &str, lang: Lang) -> Exit {
    let loaded = config::load(site);
    let Some(model) = &loaded.model else {
        let _ = write!(std::io::stdout(), "{}", loaded.report.render(lang));
        return Exit::Problems;
    };
    let Some(sms) = &model.site.sms else {
        eprintln!("{}", tr(lang, "sms.cli.not_configured", &[]));
        return Exit::Problems;
    };
    let Some((_, item)) = model.item(item) else {
        eprintln!("{}", tr(lang, "cli.preview.unknown_item", &[("id", item)]));
        return Exit::Problems;
    };
    let fields = Fields {
        title: item.title.clone(),
        body: item.body.clone(),
        url: sms.read_more.clone(),
        department: item.department.clone().unwrap_or_default(),
        category: item.category.name().to_owned(),
    };
    let mut out = std::io::stdout().lock();
    let mut exit = Exit::Ok;
    match free_text(sms, item.category, &fields) {
        Some(b) => {
            let _ = writeln!(out, "{}", b.text);
            let _ = writeln!(out, "{}", counts(lang, &b.segments));
            if b.cut {
                let _ = writeln!(out, "{}", tr(lang, "sms.cli.cut", &[]));
            }
            if b.over_target {
                let target = sms.parts.to_string();
                let _ = writeln!(
                    out,
                    "{}",
                    tr(lang, "sms.cli.over_target", &[("parts", &target)])
                );
                exit = Exit::Problems;
            }
        }
        // Validation checked the template: this cannot happen with a loaded model.
        None => exit = Exit::Failed,
    }
    for gateway in &sms.gateways {
        let Some(template) = &gateway.template else {
            continue;
        };
        if matches!(
            gateway.kind,
            SmsGatewayKind::Outbox | SmsGatewayKind::Kannel(_)
        ) {
            continue;
        }
        let _ = writeln!(
            out,
            "\n{}",
            tr(
                lang,
                "sms.cli.template_gateway",
                &[("id", &gateway.id), ("template", &template.id)]
            )
        );
        match bulletin::template_params(&template.vars, &fields) {
            Ok(params) => {
                for (name, value) in &params {
                    let _ = writeln!(out, "  {name} = {value}");
                }
                let names: Vec<&str> = template.vars.iter().map(|v| v.name.as_str()).collect();
                if let Some(text) = &template.text
                    && let Ok(approved) = Template::parse(text, &names)
                {
                    let (text, segments) =
                        bulletin::template_text(&sms.signature, &approved, &params);
                    let _ = writeln!(out, "  {text}");
                    let _ = writeln!(out, "  {}", counts(lang, &segments));
                }
            }
            Err(e) => {
                let len = e.len.to_string();
                let max = e.max.to_string();
                let _ = writeln!(
                    out,
                    "  {}",
                    tr(
                        lang,
                        "sms.cli.cap",
                        &[("name", &e.name), ("len", &len), ("max", &max)]
                    )
                );
                exit = Exit::Problems;
            }
        }
    }
    exit
}

fn free_text(
    sms: &Sms,
    category: config::model::Category,
    fields: &Fields,
) -> Option<bulletin::Bulletin> {
    let template = Template::for_fields(sms.template(category)).ok()?;
    let style = Style {
        signature: sms.signature.clone(),
        template,
        opt_out: sms.opt_out.clone(),
        target_parts: sms.parts as usize,
    };
    Some(bulletin::render(&style, fields))
}

// -- sending, status, import ----------------------------------------------------------------

/// Options of `gongkai sms send`.
#[derive(Debug, Clone, Default)]
pub struct SendArgs {
    pub item: String,
    pub dry_run: bool,
    pub urgent: bool,
    pub groups: Vec<String>,
    pub ledger: Option<PathBuf>,
}

/// The ledger named on the command line, or the site's default.
fn ledger_path(site: &Path, ledger: Option<&Path>) -> PathBuf {
    match ledger {
        Some(path) => path.to_owned(),
        None => site.join(ledger::DEFAULT_PATH),
    }
}

fn runtime(lang: Lang) -> Option<tokio::runtime::Runtime> {
    match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => Some(rt),
        Err(e) => {
            let reason = e.to_string();
            eprintln!("{}", tr(lang, "sms.send.internal", &[("reason", &reason)]));
            None
        }
    }
}

fn dispatch_error(lang: Lang, error: &DispatchError) -> Exit {
    let reason = match error {
        DispatchError::Secret { source, .. } => source.to_string(),
        DispatchError::Ledger(e) => e.detail(),
        other => other.to_string(),
    };
    let (id, gateway) = match error {
        DispatchError::UnknownItem(id) | DispatchError::NotSms(id) => (id.as_str(), ""),
        DispatchError::Secret { gateway, .. } => ("", gateway.as_str()),
        DispatchError::UnknownGateway(g) => ("", g.as_str()),
        _ => ("", ""),
    };
    eprintln!(
        "{}",
        tr(
            lang,
            error.key(),
            &[("id", id), ("gateway", gateway), ("reason", &reason)]
        )
    );
    match error {
        DispatchError::NotConfigured
        | DispatchError::UnknownItem(_)
        | DispatchError::NotSms(_)
        | DispatchError::UnknownGateway(_)
        | DispatchError::BadReport(_) => Exit::Problems,
        _ => Exit::Failed,
    }
}

fn load_model(site: &Path, lang: Lang) -> Result<crate::config::model::Model, Exit> {
    let loaded = config::load(site);
    match loaded.model {
        Some(model) => Ok(model),
        None => {
            let _ = write!(std::io::stdout(), "{}", loaded.report.render(lang));
            Err(Exit::Problems)
        }
    }
}

fn dispatcher(
    site: &Path,
    ledger: Option<&Path>,
    lang: Lang,
    progress: Option<dispatch::Progress>,
) -> Result<Dispatcher, Exit> {
    let model = load_model(site, lang)?;
    dispatcher_for(&model, site, ledger, lang, progress)
}

fn dispatcher_for(
    model: &crate::config::Model,
    site: &Path,
    ledger: Option<&Path>,
    lang: Lang,
    progress: Option<dispatch::Progress>,
) -> Result<Dispatcher, Exit> {
    let path = ledger_path(site, ledger);
    let clock: Arc<dyn dispatch::Clock> = Arc::new(dispatch::SystemClock);
    let mut d = Dispatcher::new(model, site, &path, clock, dispatch::Options::default())
        .map_err(|e| dispatch_error(lang, &e))?;
    if let Some(progress) = progress {
        d = d.with_progress(progress);
    }
    let recovered = d.recovered();
    if recovered > 0 {
        let n = recovered.to_string();
        eprintln!("{}", tr(lang, "sms.send.recovered", &[("count", &n)]));
    }
    Ok(d)
}

fn counts_line(lang: Lang, c: &Counts) -> String {
    let v = [
        c.recipients.to_string(),
        c.new.to_string(),
        c.sent.to_string(),
        c.failed.to_string(),
        c.unknown.to_string(),
        c.deferred.to_string(),
        c.cancelled.to_string(),
    ];
    tr(
        lang,
        "sms.send.counts",
        &[
            ("recipients", &v[0]),
            ("new", &v[1]),
            ("sent", &v[2]),
            ("failed", &v[3]),
            ("unknown", &v[4]),
            ("deferred", &v[5]),
            ("cancelled", &v[6]),
        ],
    )
}

fn states_line(lang: Lang, c: &StateCounts, waiting: u64, cancelled_waiting: u64) -> String {
    let v = [
        c.total().to_string(),
        c.queued.to_string(),
        c.sending.to_string(),
        c.sent.to_string(),
        c.failed.to_string(),
        c.unknown.to_string(),
        waiting.to_string(),
        (c.cancelled + cancelled_waiting).to_string(),
    ];
    tr(
        lang,
        "sms.status.counts",
        &[
            ("total", &v[0]),
            ("queued", &v[1]),
            ("sending", &v[2]),
            ("sent", &v[3]),
            ("failed", &v[4]),
            ("unknown", &v[5]),
            ("waiting", &v[6]),
            ("cancelled", &v[7]),
        ],
    )
}

/// `gongkai sms send ITEM`: records the item's bulletin for its recipients and sends what is
/// due now; progress on stderr, the final counts on stdout. Exit 1 when a row failed or is
/// unknown.
pub fn send(site: &Path, args: &SendArgs, lang: Lang) -> Exit {
    let Some(rt) = runtime(lang) else {
        return Exit::Failed;
    };
    let shown = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = shown.clone();
    let progress: dispatch::Progress = Arc::new(move |c: &Counts| {
        flag.store(true, std::sync::atomic::Ordering::Relaxed);
        let done = (c.sent + c.failed + c.unknown + c.deferred + c.cancelled).to_string();
        let line = tr(lang, "sms.send.progress", &[("done", &done)]);
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r{line}");
        let _ = err.flush();
    });
    let model = match load_model(site, lang) {
        Ok(model) => model,
        Err(exit) => return exit,
    };
    let d = match dispatcher_for(&model, site, args.ledger.as_deref(), lang, Some(progress)) {
        Ok(d) => d,
        Err(exit) => return exit,
    };
    let options = SendOptions {
        dry_run: args.dry_run,
        urgent: args.urgent,
        groups: args.groups.clone(),
    };
    // The review (三审) and, for a mass send, the second approver: checked against the number
    // of recipients before anything is recorded or sent.
    if !args.dry_run
        && let Some((_, item)) = model.item(&args.item)
    {
        let planned = SendOptions {
            dry_run: true,
            ..options.clone()
        };
        let recipients = match rt.block_on(d.send_item(&args.item, &planned)) {
            Ok(counts) => counts.recipients,
            Err(e) => return dispatch_error(lang, &e),
        };
        if let Err(exit) = super::review::sms_gate(site, &model, item, recipients, lang) {
            return exit;
        }
    }
    let result = rt.block_on(d.send_item(&args.item, &options));
    if shown.load(std::sync::atomic::Ordering::Relaxed) {
        eprintln!();
    }
    let counts = match result {
        Ok(c) => c,
        Err(e) => return dispatch_error(lang, &e),
    };
    let mut out = std::io::stdout().lock();
    if args.dry_run {
        let (r, n) = (counts.recipients.to_string(), counts.new.to_string());
        let _ = writeln!(
            out,
            "{}",
            tr(lang, "sms.send.dry_run", &[("recipients", &r), ("new", &n)])
        );
        return Exit::Ok;
    }
    let _ = writeln!(out, "{}", counts_line(lang, &counts));
    if let Ok(states) = d.status(Some(&args.item)) {
        let waiting = d.ledger().waiting(Some(&args.item)).unwrap_or(0);
        if states.queued + waiting > 0 {
            let n = (states.queued + waiting).to_string();
            let _ = writeln!(out, "{}", tr(lang, "sms.send.later", &[("count", &n)]));
        }
    }
    if counts.failed + counts.unknown > 0 {
        Exit::Problems
    } else {
        Exit::Ok
    }
}

/// `gongkai sms status BULLETIN`: the deliveries of an item by state, then the failed and
/// unknown ones with their reasons (numbers masked unless `show_numbers`).
pub fn status(
    site: &Path,
    bulletin: &str,
    ledger: Option<&Path>,
    show_numbers: bool,
    limit: usize,
    lang: Lang,
) -> Exit {
    let ledger = match open_beside_sender(site, ledger) {
        Ok(l) => l,
        Err(e) => return ledger_error(lang, &e),
    };
    let (counts, waiting, cancelled_waiting, rows) = match (
        ledger.counts(Some(bulletin)),
        ledger.waiting(Some(bulletin)),
        ledger.cancelled_waiting(Some(bulletin)),
        ledger.rows_of(bulletin, limit),
    ) {
        (Ok(c), Ok(w), Ok(x), Ok(r)) => (c, w, x, r),
        (Err(e), ..) | (_, Err(e), ..) | (_, _, Err(e), _) | (.., Err(e)) => {
            return ledger_error(lang, &e);
        }
    };
    let mut out = std::io::stdout().lock();
    if counts.total() + waiting + cancelled_waiting == 0 {
        eprintln!("{}", tr(lang, "sms.status.none", &[("id", bulletin)]));
        return Exit::Problems;
    }
    let _ = writeln!(
        out,
        "{}",
        tr(lang, "sms.status.bulletin", &[("id", bulletin)])
    );
    let _ = writeln!(
        out,
        "{}",
        states_line(lang, &counts, waiting, cancelled_waiting)
    );
    for row in rows
        .iter()
        .filter(|r| matches!(r.state, State::Failed | State::Unknown))
    {
        let number = if show_numbers {
            row.number.clone()
        } else {
            subscribers::mask(&row.number)
        };
        let state = tr(lang, &format!("sms.state.{}", row.state.as_str()), &[]);
        let _ = writeln!(
            out,
            "  {state}  {number}  {}  {}",
            row.gateway.as_deref().unwrap_or("-"),
            row.reason.as_deref().unwrap_or("-")
        );
    }
    Exit::Ok
}

fn ledger_error(lang: Lang, error: &ledger::LedgerError) -> Exit {
    let reason = error.detail();
    eprintln!("{}", tr(lang, error.key(), &[("reason", &reason)]));
    Exit::Failed
}

/// The ledger for a command that may run while a sender runs: rows `sending` are left alone.
fn open_beside_sender(site: &Path, ledger: Option<&Path>) -> Result<Ledger, ledger::LedgerError> {
    Ledger::open_with(
        &ledger_path(site, ledger),
        chrono::Utc::now().timestamp(),
        ledger::OpenOptions {
            recover: false,
            ..ledger::OpenOptions::default()
        },
    )
}

/// Who acts: `--by NAME`, else the login name (letters and digits only, as the daemon's
/// admin commands send it).
fn operator(by: Option<&str>) -> String {
    match by {
        Some(name) => name.to_owned(),
        None => std::env::var("USER")
            .unwrap_or_default()
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .collect(),
    }
}

/// Records an operator's action in the daemon's audit. A failure is reported, not fatal: the
/// ledger change it describes is already committed.
fn audit(site: &Path, action: Action, subject: &str, by: &str, detail: &str, lang: Lang) -> bool {
    let recorded = crate::store::Store::open(&crate::store::default_path(site))
        .and_then(|store| store.record(action, subject, by, detail, chrono::Utc::now()));
    match recorded {
        Ok(()) => true,
        Err(e) => {
            let reason = e.to_string();
            eprintln!("{}", tr(lang, "sms.audit.failed", &[("reason", &reason)]));
            false
        }
    }
}

/// `gongkai sms cancel BULLETIN`: cancels what of a bulletin no gateway has been handed yet.
/// A sender running in another process skips the cancelled rows at its next batch. Recorded
/// in the audit with the count. Exit 1 when nothing was left to cancel.
pub fn cancel(
    site: &Path,
    bulletin: &str,
    by: Option<&str>,
    ledger: Option<&Path>,
    lang: Lang,
) -> Exit {
    let ledger = match open_beside_sender(site, ledger) {
        Ok(l) => l,
        Err(e) => return ledger_error(lang, &e),
    };
    let by = operator(by);
    let reason = format!("cancelled by {by}");
    let n = match ledger.cancel_item(bulletin, &reason, chrono::Utc::now().timestamp()) {
        Ok(n) => n,
        Err(e) => return ledger_error(lang, &e),
    };
    let count = n.to_string();
    if n == 0 {
        eprintln!("{}", tr(lang, "sms.cancel.none", &[("id", bulletin)]));
        return Exit::Problems;
    }
    let _ = writeln!(
        std::io::stdout(),
        "{}",
        tr(
            lang,
            "sms.cancel.done",
            &[("id", bulletin), ("count", &count)]
        )
    );
    if audit(site, Action::SmsCancelled, bulletin, &by, &count, lang) {
        Exit::Ok
    } else {
        Exit::Failed
    }
}

/// The site's time zone; a site that does not load (or no site) is taken to be in China
/// Standard Time, where every county using this is.
fn site_tz(site: &Path) -> chrono_tz::Tz {
    config::load(site)
        .model
        .map_or(chrono_tz::Asia::Shanghai, |m| m.site.timezone)
}

/// A ledger time as operators read it: site time, to the minute.
fn when(at: i64, tz: chrono_tz::Tz) -> String {
    chrono::DateTime::from_timestamp(at, 0)
        .map(|t| t.with_timezone(&tz).format("%Y-%m-%d %H:%M").to_string())
        .unwrap_or_else(|| at.to_string())
}

/// `gongkai sms unknown [--item ITEM]`: the deliveries in doubt — item, masked number,
/// gateway, since when, and whether a reconciliation has asked about them since.
pub fn unknown(
    site: &Path,
    item: Option<&str>,
    ledger: Option<&Path>,
    show_numbers: bool,
    limit: usize,
    lang: Lang,
) -> Exit {
    let ledger = match open_beside_sender(site, ledger) {
        Ok(l) => l,
        Err(e) => return ledger_error(lang, &e),
    };
    let rows = match ledger.in_doubt(item, limit) {
        Ok(r) => r,
        Err(e) => return ledger_error(lang, &e),
    };
    let mut out = std::io::stdout().lock();
    if rows.is_empty() {
        let _ = writeln!(out, "{}", tr(lang, "sms.unknown.none", &[]));
        return Exit::Ok;
    }
    let count = rows.len().to_string();
    let tz = site_tz(site);
    let _ = writeln!(
        out,
        "{}",
        tr(lang, "sms.unknown.header", &[("count", &count)])
    );
    for (row, items) in &rows {
        let number = if show_numbers {
            row.number.clone()
        } else {
            subscribers::mask(&row.number)
        };
        let reconciled = match row.reconciled_at {
            Some(at) => tr(lang, "sms.unknown.reconciled", &[("at", &when(at, tz))]),
            None => tr(lang, "sms.unknown.not_reconciled", &[]),
        };
        let _ = writeln!(
            out,
            "  {}  {number}  {}  {}  {reconciled}",
            items.join("+"),
            row.gateway.as_deref().unwrap_or("-"),
            tr(
                lang,
                "sms.unknown.since",
                &[("at", &when(row.updated_at, tz))]
            ),
        );
    }
    Exit::Problems
}

/// Options of `gongkai sms resend`.
#[derive(Debug, Clone, Default)]
pub struct ResendArgs {
    pub item: Option<String>,
    pub confirm: bool,
    pub by: Option<String>,
    pub ledger: Option<PathBuf>,
}

/// `gongkai sms resend [ITEM] --confirm --by NAME`: `unknown` rows that a reconciliation has
/// asked about go back to the queue with a new idempotency key, who and when recorded on the
/// row and in the audit. Without `--confirm`, only says what it would do. The daemon (or the
/// next `gongkai sms send`) sends them.
pub fn resend(site: &Path, args: &ResendArgs, lang: Lang) -> Exit {
    let ledger = match open_beside_sender(site, args.ledger.as_deref()) {
        Ok(l) => l,
        Err(e) => return ledger_error(lang, &e),
    };
    let by = operator(args.by.as_deref());
    let now = chrono::Utc::now().timestamp();
    let result = match ledger.resend_unknown(args.item.as_deref(), &by, now, !args.confirm) {
        Ok(r) => r,
        Err(e) => return ledger_error(lang, &e),
    };
    let (requeued, never) = (
        result.requeued.to_string(),
        result.never_reconciled.to_string(),
    );
    let mut out = std::io::stdout().lock();
    if result.never_reconciled > 0 {
        eprintln!(
            "{}",
            tr(lang, "sms.resend.not_reconciled", &[("count", &never)])
        );
    }
    if !args.confirm {
        let _ = writeln!(
            out,
            "{}",
            tr(lang, "sms.resend.would", &[("count", &requeued)])
        );
        return Exit::Ok;
    }
    let _ = writeln!(
        out,
        "{}",
        tr(
            lang,
            "sms.resend.done",
            &[("count", &requeued), ("by", &by)]
        )
    );
    if result.requeued == 0 {
        return Exit::Problems;
    }
    let subject = args.item.as_deref().unwrap_or("*");
    if audit(
        site,
        Action::SmsResendConfirmed,
        subject,
        &by,
        &requeued,
        lang,
    ) {
        Exit::Ok
    } else {
        Exit::Failed
    }
}

/// `gongkai sms consent NUMBER`: one subscriber's consent history (opt-ins and opt-outs, when,
/// how, from where), and whether the number is opted out now. The number is shown whole: the
/// operator asked about it.
pub fn consent(site: &Path, number: &str, ledger: Option<&Path>, lang: Lang) -> Exit {
    let Ok(number) = subscribers::normalize(number) else {
        eprintln!(
            "{}",
            tr(lang, "sms.consent.bad_number", &[("number", number)])
        );
        return Exit::Problems;
    };
    let ledger = match open_beside_sender(site, ledger) {
        Ok(l) => l,
        Err(e) => return ledger_error(lang, &e),
    };
    let (history, opted_out) = match (ledger.consents(&number), ledger.opt_outs()) {
        (Ok(h), Ok(o)) => (h, o.contains(&number)),
        (Err(e), _) | (_, Err(e)) => return ledger_error(lang, &e),
    };
    let tz = site_tz(site);
    let mut out = std::io::stdout().lock();
    if history.is_empty() {
        let _ = writeln!(
            out,
            "{}",
            tr(lang, "sms.consent.none", &[("number", &number)])
        );
        return Exit::Problems;
    }
    let _ = writeln!(
        out,
        "{}",
        tr(lang, "sms.consent.header", &[("number", &number)])
    );
    for c in &history {
        let kind = if c.opt_in {
            tr(lang, "sms.consent.opt_in", &[])
        } else {
            tr(lang, "sms.consent.opt_out", &[])
        };
        let _ = writeln!(out, "  {}  {kind}  {}  {}", when(c.at, tz), c.how, c.source);
    }
    let now = if opted_out {
        "sms.consent.now_out"
    } else {
        "sms.consent.now_in"
    };
    let _ = writeln!(out, "{}", tr(lang, now, &[]));
    Exit::Ok
}

/// `gongkai sms import FILE.csv`: imports the good rows into the ledger, reports each bad row
/// by line and reason, and exits 1 when any row was bad.
pub fn import(site: &Path, file: &Path, ledger: Option<&Path>, lang: Lang) -> Exit {
    let text = match std::fs::read(file) {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(e) => {
            let (path, reason) = (file.display().to_string(), e.to_string());
            eprintln!(
                "{}",
                tr(
                    lang,
                    "sms.import.unreadable",
                    &[("path", &path), ("reason", &reason)]
                )
            );
            return Exit::Failed;
        }
    };
    let path = ledger_path(site, ledger);
    let now = chrono::Utc::now().timestamp();
    let ledger = match Ledger::open(&path, now) {
        Ok(l) => l,
        Err(e) => return ledger_error(lang, &e),
    };
    let opt_outs = match ledger.opt_outs() {
        Ok(o) => o,
        Err(e) => return ledger_error(lang, &e),
    };
    let import = match subscribers::import(&text, &opt_outs) {
        Ok(i) => i,
        Err(e) => {
            let key = match e {
                subscribers::ImportError::NoNumberColumn => "sms.import.no_number_column",
                subscribers::ImportError::Header(_) => "sms.import.header",
            };
            eprintln!("{}", tr(lang, key, &[]));
            return Exit::Problems;
        }
    };
    let mut err = std::io::stderr().lock();
    for row in &import.errors {
        let line = row.line.to_string();
        let topic = match &row.reason {
            subscribers::RowReason::UnknownTopic(t) | subscribers::RowReason::ConsentTime(t) => {
                t.clone()
            }
            _ => String::new(),
        };
        let _ = writeln!(
            err,
            "{}",
            tr(
                lang,
                row.reason.key(),
                &[("line", &line), ("topic", &topic)]
            )
        );
    }
    // Consent times in the file are site time.
    let tz = site_tz(site);
    let source = format!("import of {}", file.display());
    let consent = |number: &str| {
        let cell = import.consents.get(number);
        let at = cell
            .and_then(|c| c.at)
            .and_then(|at| at.and_local_timezone(tz).earliest())
            .map_or(now, |at| at.timestamp());
        Some(ledger::Consent {
            number: number.to_owned(),
            at,
            opt_in: true,
            how: cell
                .and_then(|c| c.how.clone())
                .unwrap_or_else(|| ledger::HOW_IMPORT.to_owned()),
            source: source.clone(),
        })
    };
    let stored = match ledger.import_with_consents(import.subscribers.values(), consent, now) {
        Ok(n) => n,
        Err(e) => return ledger_error(lang, &e),
    };
    for number in &import.withdrawn {
        if let Err(e) = ledger.opt_out(number, ledger::HOW_IMPORT, &source, now) {
            return ledger_error(lang, &e);
        }
    }
    if !import.withdrawn.is_empty() {
        let n = import.withdrawn.len().to_string();
        let _ = writeln!(
            std::io::stdout(),
            "{}",
            tr(lang, "sms.import.withdrawn", &[("count", &n)])
        );
    }
    let total = ledger.subscriber_count().unwrap_or(0);
    let v = [
        stored.to_string(),
        import.errors.len().to_string(),
        import.merged.to_string(),
        import.opted_out.to_string(),
        total.to_string(),
    ];
    let _ = writeln!(
        std::io::stdout(),
        "{}",
        tr(
            lang,
            "sms.import.done",
            &[
                ("imported", &v[0]),
                ("bad", &v[1]),
                ("merged", &v[2]),
                ("opted_out", &v[3]),
                ("total", &v[4]),
            ]
        )
    );
    if import.errors.is_empty() {
        Exit::Ok
    } else {
        Exit::Problems
    }
}

/// `gongkai sms reconcile`: asks the gateways about `unknown` rows (and sends what is due).
pub fn reconcile(site: &Path, ledger: Option<&Path>, lang: Lang) -> Exit {
    let Some(rt) = runtime(lang) else {
        return Exit::Failed;
    };
    let d = match dispatcher(site, ledger, lang, None) {
        Ok(d) => d,
        Err(exit) => return exit,
    };
    let resolved = match rt.block_on(d.reconcile()) {
        Ok(r) => r,
        Err(e) => return dispatch_error(lang, &e),
    };
    let v = [
        resolved.checked.to_string(),
        resolved.sent.to_string(),
        resolved.failed.to_string(),
        resolved.open.to_string(),
    ];
    let _ = writeln!(
        std::io::stdout(),
        "{}",
        tr(
            lang,
            "sms.reconcile.done",
            &[
                ("checked", &v[0]),
                ("sent", &v[1]),
                ("failed", &v[2]),
                ("open", &v[3]),
            ]
        )
    );
    if resolved.open > 0 {
        Exit::Problems
    } else {
        Exit::Ok
    }
}
