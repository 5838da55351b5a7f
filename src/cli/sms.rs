//! The `gongkai sms` commands: `segments` and `preview` (what a text or an item's bulletin
//! costs), `send`, `status`, `import` and `reconcile`.
//!
//! An edge: it reads the site, opens the ledger, runs the dispatcher and prints. The text,
//! counting, selection and sending rules are `crate::sms`. Numbers are shown masked
//! (`138****8000`) unless the operator passes `--show-numbers`.

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
    let path = ledger_path(site, ledger);
    let clock: Arc<dyn dispatch::Clock> = Arc::new(dispatch::SystemClock);
    let mut d = Dispatcher::new(&model, site, &path, clock, dispatch::Options::default())
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
        ],
    )
}

fn states_line(lang: Lang, c: &StateCounts, waiting: u64) -> String {
    let v = [
        c.total().to_string(),
        c.queued.to_string(),
        c.sending.to_string(),
        c.sent.to_string(),
        c.failed.to_string(),
        c.unknown.to_string(),
        waiting.to_string(),
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
        let done = (c.sent + c.failed + c.unknown + c.deferred).to_string();
        let line = tr(lang, "sms.send.progress", &[("done", &done)]);
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r{line}");
        let _ = err.flush();
    });
    let d = match dispatcher(site, args.ledger.as_deref(), lang, Some(progress)) {
        Ok(d) => d,
        Err(exit) => return exit,
    };
    let options = SendOptions {
        dry_run: args.dry_run,
        urgent: args.urgent,
        groups: args.groups.clone(),
    };
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
    let path = ledger_path(site, ledger);
    let now = chrono::Utc::now().timestamp();
    let ledger = match Ledger::open(&path, now) {
        Ok(l) => l,
        Err(e) => return ledger_error(lang, &e),
    };
    let (counts, waiting, rows) = match (
        ledger.counts(Some(bulletin)),
        ledger.waiting(Some(bulletin)),
        ledger.rows_of(bulletin, limit),
    ) {
        (Ok(c), Ok(w), Ok(r)) => (c, w, r),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => return ledger_error(lang, &e),
    };
    let mut out = std::io::stdout().lock();
    if counts.total() + waiting == 0 {
        eprintln!("{}", tr(lang, "sms.status.none", &[("id", bulletin)]));
        return Exit::Problems;
    }
    let _ = writeln!(
        out,
        "{}",
        tr(lang, "sms.status.bulletin", &[("id", bulletin)])
    );
    let _ = writeln!(out, "{}", states_line(lang, &counts, waiting));
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
    let reason = error.to_string();
    eprintln!("{}", tr(lang, "sms.send.ledger", &[("reason", &reason)]));
    Exit::Failed
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
            subscribers::RowReason::UnknownTopic(t) => t.clone(),
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
    let stored = match ledger.import_subscribers(import.subscribers.values(), now) {
        Ok(n) => n,
        Err(e) => return ledger_error(lang, &e),
    };
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
