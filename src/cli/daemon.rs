//! `gongkai run` (the daemon, in the foreground, with its logs) and `gongkai interrupt`
//! (the daemon's control API from the command line).

use std::path::{Path, PathBuf};

use super::Exit;
use crate::config;
use crate::daemon;
use crate::i18n::{Lang, tr};

/// Log lines as text for people or JSON for collectors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

pub fn run(
    site: &Path,
    db: Option<PathBuf>,
    ledger: Option<PathBuf>,
    format: LogFormat,
    lang: Lang,
) -> Exit {
    init_logs(format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .thread_name("gongkai")
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            let reason = e.to_string();
            eprintln!(
                "{}",
                tr(lang, "daemon.runtime_failed", &[("reason", &reason)])
            );
            return Exit::Failed;
        }
    };
    let db_path = db.unwrap_or_else(|| site.join("var").join("gongkai.db"));
    let store = match crate::store::Store::open(&db_path) {
        Ok(store) => std::sync::Arc::new(store),
        Err(e) => return db_failed(&db_path, &e, lang),
    };
    let options = daemon::Options {
        site: site.to_path_buf(),
        ledger: ledger.unwrap_or_else(|| site.join(crate::sms::ledger::DEFAULT_PATH)),
        lang,
    };
    match runtime.block_on(daemon::run(options, store)) {
        Ok(()) => Exit::Ok,
        Err(daemon::StartError::Invalid(report)) => {
            print!("{report}");
            eprintln!("{}", tr(lang, "daemon.invalid", &[]));
            Exit::Problems
        }
        Err(e) => {
            let reason = e.to_string();
            eprintln!("{}", tr(lang, "daemon.failed", &[("reason", &reason)]));
            Exit::Failed
        }
    }
}

/// Says that the daemon's database at `path` could not be opened, and why.
pub(crate) fn db_failed(path: &Path, e: &dyn std::fmt::Display, lang: Lang) -> Exit {
    let (path, reason) = (path.display().to_string(), e.to_string());
    eprintln!(
        "{}",
        tr(
            lang,
            "daemon.db_failed",
            &[("path", &path), ("reason", &reason)]
        )
    );
    Exit::Failed
}

fn init_logs(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("GONGKAI_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

/// What `gongkai interrupt` was asked.
#[derive(Debug, Clone, Default)]
pub struct InterruptOptions {
    pub text: Option<String>,
    pub displays: Vec<String>,
    pub duration: Option<String>,
    pub sms: bool,
    pub end: Option<String>,
    pub list: bool,
    /// The daemon's admin address (default: the site's `admin.listen`).
    pub url: Option<String>,
}

/// The admin API's base address and token, from the site (or `--url` and the environment).
fn admin(site: &Path, url: Option<&str>, lang: Lang) -> Result<(String, Option<String>), Exit> {
    let token_env = std::env::var("GONGKAI_ADMIN_TOKEN").ok();
    if let Some(url) = url {
        return Ok((url.trim_end_matches('/').to_owned(), token_env));
    }
    let loaded = config::load(site);
    let Some(model) = loaded.model else {
        print!("{}", loaded.report.render(lang));
        return Err(Exit::Problems);
    };
    let listener = &model.site.admin;
    let token = match (&listener.token, token_env) {
        (_, Some(t)) => Some(t),
        (Some(source), None) => {
            match crate::sms::secret::load(source, site, |k| std::env::var(k).ok()) {
                Ok(secret) => Some(secret.expose().to_owned()),
                Err(e) => {
                    let reason = e.to_string();
                    eprintln!(
                        "{}",
                        tr(lang, "daemon.token_failed", &[("reason", &reason)])
                    );
                    return Err(Exit::Failed);
                }
            }
        }
        (None, None) => None,
    };
    let addr = listener.addr;
    // A daemon listening on every address is reached on loopback from here.
    let host = if addr.ip().is_unspecified() {
        if addr.is_ipv4() {
            "127.0.0.1".to_owned()
        } else {
            "[::1]".to_owned()
        }
    } else if addr.is_ipv6() {
        format!("[{}]", addr.ip())
    } else {
        addr.ip().to_string()
    };
    Ok((format!("http://{host}:{}", addr.port()), token))
}

/// A request to the admin API: method, path below the base, JSON body.
pub(crate) struct AdminRequest {
    pub method: reqwest::Method,
    pub path: String,
    pub body: Option<serde_json::Value>,
}

/// The operator's name for the audit: `$USER`, plain ASCII (it travels in a URL).
pub(crate) fn operator() -> String {
    std::env::var("USER")
        .unwrap_or_default()
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect()
}

pub fn interrupt(site: &Path, options: &InterruptOptions, lang: Lang) -> Exit {
    let request = if options.list {
        AdminRequest {
            method: reqwest::Method::GET,
            path: "/api/interrupts".into(),
            body: None,
        }
    } else if let Some(id) = &options.end {
        AdminRequest {
            method: reqwest::Method::DELETE,
            path: format!("/api/interrupt/{id}?by={}", operator()),
            body: None,
        }
    } else {
        let Some(text) = &options.text else {
            eprintln!("{}", tr(lang, "daemon.interrupt_needs_text", &[]));
            return Exit::Usage;
        };
        AdminRequest {
            method: reqwest::Method::POST,
            path: "/api/interrupt".into(),
            body: Some(serde_json::json!({
                "text": text,
                "displays": options.displays,
                "duration": options.duration,
                "sms": options.sms,
                "by": operator(),
            })),
        }
    };
    let done = options
        .end
        .as_ref()
        .map(|id| tr(lang, "daemon.interrupt_ended", &[("id", id)]));
    call_admin(site, options.url.as_deref(), request, done, lang)
}

/// `gongkai withdraw ITEM` / `--restore`.
pub fn withdraw(
    site: &Path,
    item: &str,
    restore: bool,
    reason: Option<&str>,
    url: Option<&str>,
    lang: Lang,
) -> Exit {
    let request = if restore {
        AdminRequest {
            method: reqwest::Method::DELETE,
            path: format!("/api/withdraw/{item}?by={}", operator()),
            body: None,
        }
    } else {
        AdminRequest {
            method: reqwest::Method::POST,
            path: "/api/withdraw".into(),
            body: Some(serde_json::json!({
                "item": item,
                "by": operator(),
                "reason": reason.unwrap_or_default(),
            })),
        }
    };
    call_admin(site, url, request, None, lang)
}

/// Sends `request` to the running daemon and prints its answer (or `done` when it has none).
fn call_admin(
    site: &Path,
    url: Option<&str>,
    request: AdminRequest,
    done: Option<String>,
    lang: Lang,
) -> Exit {
    let (status, text) = match admin_call(site, url, request, lang) {
        Ok(answer) => answer,
        Err(exit) => return exit,
    };
    if status.is_success() {
        match (text.is_empty(), done) {
            (false, _) => println!("{text}"),
            (true, Some(done)) => println!("{done}"),
            (true, None) => {}
        }
        return Exit::Ok;
    }
    refused(status, &text, lang)
}

/// Says that the daemon refused a request, and picks the exit code: the operator's mistake
/// (unknown, malformed, not fitting) is `Problems`, anything else `Failed`.
pub(crate) fn refused(status: reqwest::StatusCode, text: &str, lang: Lang) -> Exit {
    let code = status.as_u16().to_string();
    eprintln!(
        "{}",
        tr(
            lang,
            "daemon.refused",
            &[("status", &code), ("reason", text)]
        )
    );
    if status == reqwest::StatusCode::NOT_FOUND
        || status == reqwest::StatusCode::BAD_REQUEST
        || status == reqwest::StatusCode::CONFLICT
    {
        Exit::Problems
    } else {
        Exit::Failed
    }
}

/// Sends `request` to the running daemon's admin listener; its status and body, or the exit
/// code after saying why it could not be reached.
pub(crate) fn admin_call(
    site: &Path,
    url: Option<&str>,
    request: AdminRequest,
    lang: Lang,
) -> Result<(reqwest::StatusCode, String), Exit> {
    let (base, token) = admin(site, url, lang)?;
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            let reason = e.to_string();
            eprintln!(
                "{}",
                tr(lang, "daemon.runtime_failed", &[("reason", &reason)])
            );
            return Err(Exit::Failed);
        }
    };
    runtime.block_on(async {
        let unreachable = |reason: String| {
            eprintln!(
                "{}",
                tr(
                    lang,
                    "daemon.unreachable",
                    &[("url", &base), ("reason", &reason)]
                )
            );
            Exit::Failed
        };
        crate::install_crypto_provider();
        let client = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(10))
            .build()
            .map_err(|e| unreachable(e.to_string()))?;
        let mut builder = client.request(request.method, format!("{base}{}", request.path));
        if let Some(token) = &token {
            builder = builder.bearer_auth(token);
        }
        if let Some(body) = &request.body {
            builder = builder.json(body);
        }
        let response = builder
            .send()
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        Ok((status, text))
    })
}
