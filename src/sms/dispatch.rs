//! Dispatch: from an item with the `sms` channel to rows in the ledger, to gateway calls, to
//! outcomes in the ledger.
//!
//! Owns the sending rules — recipients by group and topic, quiet hours, the per-number daily
//! cap, the daily digest, batching to each gateway's maximum, routing with failover, the
//! per-gateway rate limit and concurrency, retries only where the gateway certainly did not
//! act — and the reconciliation of `unknown` rows (status polls, delivery reports, TD
//! replies). It must not build requests or read answers itself (`gateways` do), hold state
//! outside the ledger, or read the clock: the time comes from the [`Clock`] it is given, so
//! the decisions ([`next_end_of_quiet`], [`digest_text`], [`backoff`]) are pure functions.
//!
//! # The API the daemon uses
//!
//! ```text
//! let dispatcher = Dispatcher::new(&model, site_dir, ledger_path, clock, Options::default())?;
//! dispatcher.send_item("cg-2026-118", &SendOptions::default()).await?;  // enqueue + send what is due
//! dispatcher.run_due().await?;       // call every minute or so: quiet hours ended, digests, retries
//! dispatcher.reconcile().await?;     // resolve `unknown` rows by polling the gateways
//! dispatcher.delivery_report("mas", body)?;  // mount on the public listener's callback routes
//! dispatcher.reply("mas", body)?;            // TD replies: opt-outs, kept forever
//! dispatcher.cancel_item("cg-2026-118", now)?; // withdrawn: what no gateway has is never sent
//! dispatcher.prune_texts(retention)?;        // daily: delivered texts past retention
//! ```
//!
//! A `Dispatcher` is `Send + Sync` and cheap to clone; its methods take `&self`. The ledger
//! is the queue, so a restart loses nothing: rows `sending` at a crash are `unknown` on the
//! next open and only a report or a poll moves them on. Ledger calls are short blocking SQLite
//! transactions made on the runtime's threads (a group commit waits for one fsync); run the
//! dispatcher on a multi-thread runtime so that a commit never stalls the listeners.
//!
//! # Rules
//!
//! - A bulletin goes to the subscribers whose topics include the item's category (none:
//!   every category) and, when the send names groups, who are in one of them; never to an
//!   opted-out number; never twice to one number (the ledger's `wants` row).
//! - Quiet hours (default 21:00–08:00, site time): a non-urgent bulletin due then waits for
//!   their end. With `digest: true`, non-urgent items wait for the next end of quiet hours
//!   (the morning) and each subscriber gets one message for all the items of that wait.
//! - A number that reached `daily_cap` messages today gets the rest tomorrow morning.
//! - Routing: the site's gateways in `route` order; a gateway that cannot carry a message (a
//!   template gateway and a digest) is skipped; on an outage (connection refused, throttled
//!   after the retries, a refusal that is not about the message) the next one is tried.
//! - Retries, with capped exponential back-off and full jitter, only when the gateway
//!   certainly did not act. A refusal fails the rows with its reason; an unreadable answer, a
//!   timeout, or a Tencent number missing from the per-number results makes them `unknown`.

use std::collections::HashMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, NaiveDate, NaiveTime, TimeZone as _, Utc};
use chrono_tz::Tz;
use tokio::sync::Semaphore;

use super::bulletin::{self, Fields, Style, Template};
use super::gateways::{
    Batch, Content, Gateway, NumberStatus, Outcome, ReportStatus, StatusReport, aliyun, tencent,
};
use super::http::{CallError, Client, Timeouts};
use super::ledger::{
    Due, Finish, Ledger, LedgerError, Message, OpenOptions, Row, State, StateCounts,
};
use super::secret::{self, Secret, SecretError};
use super::segments::segment;
use super::subscribers;
use crate::config::model::{
    ApprovedTemplate, Category, Channel, Model, QuietHours, Sms, SmsGatewayKind,
};

/// The time, given to the dispatcher.
pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

impl<F: Fn() -> DateTime<Utc> + Send + Sync> Clock for F {
    fn now(&self) -> DateTime<Utc> {
        self()
    }
}

/// Pace and parallelism of one gateway.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// Messages (numbers) per second; infinite for none.
    pub per_second: f64,
    /// Calls in flight at once.
    pub concurrent: usize,
}

impl Limits {
    /// Conservative defaults by kind; a site with a faster contract raises them through
    /// [`Options::limits`].
    pub fn default_for(kind: &SmsGatewayKind) -> Limits {
        match kind {
            SmsGatewayKind::Outbox => Limits {
                per_second: f64::INFINITY,
                concurrent: 1,
            },
            SmsGatewayKind::YunMas(_) => Limits {
                per_second: 1_000.0,
                concurrent: 2,
            },
            SmsGatewayKind::Aliyun(_) | SmsGatewayKind::Tencent(_) => Limits {
                per_second: 1_000.0,
                concurrent: 4,
            },
            SmsGatewayKind::Kannel(_) => Limits {
                per_second: 2_000.0,
                concurrent: 8,
            },
        }
    }
}

/// When and how often a call that certainly did not reach the gateway is tried again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retry {
    /// Calls per gateway before failing over to the next.
    pub attempts: u32,
    pub base: Duration,
    pub cap: Duration,
    /// When every gateway is down: the rows are due again this much later.
    pub outage_delay: Duration,
}

impl Default for Retry {
    fn default() -> Retry {
        Retry {
            attempts: 3,
            base: Duration::from_millis(500),
            cap: Duration::from_secs(10),
            outage_delay: Duration::from_secs(60),
        }
    }
}

/// The secret lookup (an environment), replaceable in tests.
pub type Env = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// Tuning; the defaults suit production.
#[derive(Clone)]
pub struct Options {
    pub timeouts: Timeouts,
    pub retry: Retry,
    /// By gateway id; gateways not named get [`Limits::default_for`].
    pub limits: HashMap<String, Limits>,
    /// Rows read from the ledger at a time (bounds memory).
    pub chunk: usize,
    pub env: Env,
    /// How the ledger is opened (a size limit; recovery of rows left `sending`).
    pub ledger: OpenOptions,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            timeouts: Timeouts::default(),
            retry: Retry::default(),
            limits: HashMap::new(),
            chunk: 5_000,
            env: Arc::new(|name| std::env::var(name).ok()),
            ledger: OpenOptions::default(),
        }
    }
}

impl std::fmt::Debug for Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Options")
            .field("timeouts", &self.timeouts)
            .field("retry", &self.retry)
            .field("limits", &self.limits)
            .field("chunk", &self.chunk)
            .field("ledger", &self.ledger)
            .finish_non_exhaustive()
    }
}

/// How one item is sent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SendOptions {
    /// Count the recipients; store and send nothing.
    pub dry_run: bool,
    /// Exempt from quiet hours and the digest.
    pub urgent: bool,
    /// Only subscribers in one of these groups; empty: the whole site.
    pub groups: Vec<String>,
}

/// What a call of the dispatcher did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Subscribers the item is for.
    pub recipients: u64,
    /// Of those, newly recorded (the others already had it).
    pub new: u64,
    pub sent: u64,
    pub failed: u64,
    pub unknown: u64,
    /// Due but put off: daily cap reached, or every gateway down.
    pub deferred: u64,
    /// Read as due, then cancelled (by another process, or `cancel_item`) before the call:
    /// never sent.
    pub cancelled: u64,
}

impl Counts {
    fn merge(&mut self, other: Counts) {
        self.recipients += other.recipients;
        self.new += other.new;
        self.sent += other.sent;
        self.failed += other.failed;
        self.unknown += other.unknown;
        self.deferred += other.deferred;
        self.cancelled += other.cancelled;
    }
}

/// What reconciliation resolved.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Resolved {
    /// `unknown` rows looked at.
    pub checked: u64,
    pub sent: u64,
    pub failed: u64,
    /// Still unknown (no poll for the gateway, or no answer yet).
    pub open: u64,
}

/// Why the dispatcher could not work. Never carries a subscriber's number or a secret.
#[derive(Debug, thiserror::Error)]
pub enum DispatchError {
    #[error("the site has no `sms:` section")]
    NotConfigured,
    #[error("no item `{0}`")]
    UnknownItem(String),
    #[error("item `{0}` does not have the sms channel")]
    NotSms(String),
    #[error("gateway `{gateway}`: {source}")]
    Secret {
        gateway: String,
        source: SecretError,
    },
    #[error("no gateway `{0}`")]
    UnknownGateway(String),
    #[error("cannot read this report: {0}")]
    BadReport(String),
    #[error("HTTP client: {0}")]
    Client(CallError),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error("a sending task stopped: {0}")]
    Task(String),
}

impl DispatchError {
    /// The catalogue key of the operator's message.
    pub fn key(&self) -> &'static str {
        match self {
            DispatchError::NotConfigured => "sms.cli.not_configured",
            DispatchError::UnknownItem(_) => "sms.send.unknown_item",
            DispatchError::NotSms(_) => "sms.send.not_sms",
            DispatchError::Secret { .. } => "sms.send.secret",
            DispatchError::UnknownGateway(_) => "sms.send.unknown_gateway",
            DispatchError::BadReport(_) => "sms.send.bad_report",
            DispatchError::Client(_) | DispatchError::Task(_) => "sms.send.internal",
            DispatchError::Ledger(e) => e.key(),
        }
    }
}

/// An item's fields, kept from the model.
#[derive(Debug, Clone)]
struct ItemInfo {
    title: String,
    body: String,
    category: Category,
    department: String,
    sms: bool,
}

/// How a gateway is reached.
enum Via {
    Outbox {
        path: PathBuf,
        lock: Mutex<()>,
    },
    Http {
        gateway: Box<dyn Gateway + Send + Sync>,
        secret: Secret,
    },
}

struct Route {
    id: String,
    kind: SmsGatewayKind,
    template: Option<ApprovedTemplate>,
    via: Via,
    permits: Arc<Semaphore>,
    per_second: f64,
    next_slot: tokio::sync::Mutex<tokio::time::Instant>,
    /// How its calls went lately, for the daemon's alerts; not a sending decision.
    health: Mutex<GatewayHealth>,
}

/// How a gateway's calls went since the dispatcher started: read by the daemon's alerts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GatewayHealth {
    pub id: String,
    /// Calls in a row that were not accepted (refused, throttled, unreadable, unanswered).
    pub consecutive_failures: u32,
    /// When a call was last accepted, if one was.
    pub last_success: Option<DateTime<Utc>>,
    /// Why the last failed call failed.
    pub last_failure: Option<String>,
}

impl Route {
    /// Counts a call's result in the gateway's health.
    fn record(&self, result: &Result<Outcome, CallError>, at: DateTime<Utc>) {
        let mut health = self
            .health
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let failure = match result {
            Ok(Outcome::Accepted { .. }) => None,
            Ok(Outcome::Refused { code, .. }) | Ok(Outcome::Retry { code }) => Some(code.clone()),
            Ok(Outcome::Unknown { why }) => Some(why.clone()),
            Err(e) => Some(e.to_string()),
        };
        match failure {
            None => {
                health.consecutive_failures = 0;
                health.last_success = Some(at);
            }
            Some(why) => {
                health.consecutive_failures = health.consecutive_failures.saturating_add(1);
                health.last_failure = Some(why);
            }
        }
    }

    fn max_numbers(&self) -> usize {
        match &self.via {
            Via::Outbox { .. } => 1_000,
            Via::Http { gateway, .. } => gateway.max_numbers(),
        }
    }

    /// Waits for this gateway's pace to allow `n` more messages.
    async fn pace(&self, n: usize) {
        if !self.per_second.is_finite() || self.per_second <= 0.0 {
            return;
        }
        let start = {
            let mut next = self.next_slot.lock().await;
            let now = tokio::time::Instant::now();
            let start = (*next).max(now);
            *next = start + Duration::from_secs_f64(n as f64 / self.per_second);
            start
        };
        tokio::time::sleep_until(start).await;
    }
}

struct Inner {
    sms: Sms,
    tz: Tz,
    items: HashMap<String, ItemInfo>,
    ledger: Ledger,
    routes: Vec<Route>,
    client: Client,
    clock: Arc<dyn Clock>,
    options: Options,
    style: HashMap<Category, Style>,
    progress: Option<Progress>,
}

/// Called after each gateway call with the counts so far.
pub type Progress = Arc<dyn Fn(&Counts) + Send + Sync>;

/// The dispatcher of one site. See the module documentation.
#[derive(Clone)]
pub struct Dispatcher {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Dispatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dispatcher")
            .field("ledger", &self.inner.ledger)
            .finish_non_exhaustive()
    }
}

/// The next end of quiet hours strictly after `now` (site time), as a UTC instant. When a
/// local time does not exist (a DST gap), the first instant after it.
pub fn next_end_of_quiet(quiet: &QuietHours, tz: Tz, now: DateTime<Utc>) -> DateTime<Utc> {
    let local = now.with_timezone(&tz);
    let mut date = local.date_naive();
    for _ in 0..3 {
        if let Some(at) = local_instant(tz, date, quiet.until)
            && at > now
        {
            return at;
        }
        date = date.succ_opt().unwrap_or(date);
    }
    now + chrono::Duration::days(1)
}

/// When a bulletin decided at `now` may go out: at once when urgent or outside quiet hours,
/// else at their end.
pub fn due_at(quiet: &QuietHours, tz: Tz, now: DateTime<Utc>, urgent: bool) -> DateTime<Utc> {
    if urgent || !quiet.contains(now.with_timezone(&tz).time()) {
        now
    } else {
        next_end_of_quiet(quiet, tz, now)
    }
}

fn local_instant(tz: Tz, date: NaiveDate, time: NaiveTime) -> Option<DateTime<Utc>> {
    let naive = date.and_time(time);
    match tz.from_local_datetime(&naive) {
        chrono::LocalResult::Single(t) => Some(t.with_timezone(&Utc)),
        chrono::LocalResult::Ambiguous(t, _) => Some(t.with_timezone(&Utc)),
        chrono::LocalResult::None => {
            (1..=180).find_map(|m| local_instant_exact(tz, naive + chrono::Duration::minutes(m)))
        }
    }
}

fn local_instant_exact(tz: Tz, naive: chrono::NaiveDateTime) -> Option<DateTime<Utc>> {
    tz.from_local_datetime(&naive)
        .earliest()
        .map(|t| t.with_timezone(&Utc))
}

/// The back-off before retry `attempt` (1-based): a random duration up to
/// `min(cap, base × 2^(attempt-1))` ("full jitter"); `unit` in [0, 1) is the random draw.
pub fn backoff(retry: &Retry, attempt: u32, unit: f64) -> Duration {
    let exp = retry
        .base
        .saturating_mul(1u32 << attempt.saturating_sub(1).min(16));
    exp.min(retry.cap).mul_f64(unit.clamp(0.0, 1.0))
}

/// A digest's body (without the 【signature】): the titles, numbered, and where to read them,
/// then the opt-out hint. Titles are dropped from the end (with "等N条") until the whole fits
/// `parts` messages; at least one title stays.
pub fn digest_text(
    signature: &str,
    titles: &[String],
    read_more: &str,
    opt_out: &str,
    parts: usize,
) -> String {
    let build = |shown: usize| {
        let mut body = format!("今日公开{}条：", titles.len());
        for (i, title) in titles.iter().take(shown).enumerate() {
            if i > 0 {
                body.push('；');
            }
            body.push_str(&format!("{}.{}", i + 1, bulletin::clean(title)));
        }
        if shown < titles.len() {
            body.push_str(&format!("等{}条", titles.len()));
        }
        body.push('。');
        if !read_more.is_empty() {
            body.push_str(&format!("详见{read_more}"));
        }
        body.push_str(opt_out);
        body
    };
    let mut shown = titles.len();
    while shown > 1 {
        let body = build(shown);
        let text = super::segments::with_signature(signature, &body);
        if segment(&text).parts <= parts.max(1) {
            return body;
        }
        shown -= 1;
    }
    build(shown.min(titles.len()))
}

/// What one call did to its rows.
enum CallResult {
    /// The rows' final outcomes are in the ledger.
    Done(Counts),
    /// The gateway certainly did not act (refused connection, throttled, a refusal that is not
    /// about the message): the rows are queued again; try the next gateway. The counts are of
    /// rows settled on the way (cancelled before the call).
    Failover(String, Counts),
}

impl Dispatcher {
    /// A dispatcher for the site `model` (its `sms:` section and items), with the ledger at
    /// `ledger_path` (created if missing; relative paths are taken as given), reading each
    /// gateway's secret now.
    pub fn new(
        model: &Model,
        site_dir: &Path,
        ledger_path: &Path,
        clock: Arc<dyn Clock>,
        options: Options,
    ) -> Result<Dispatcher, DispatchError> {
        let sms = model.site.sms.clone().ok_or(DispatchError::NotConfigured)?;
        let now = clock.now().timestamp();
        let ledger = Ledger::open_with(ledger_path, now, options.ledger)?;
        if ledger.is_read_only() {
            return Err(LedgerError::ReadOnly(ledger_path.display().to_string()).into());
        }
        let client = Client::new(options.timeouts).map_err(DispatchError::Client)?;
        let mut gateways = sms.gateways.clone();
        if gateways.is_empty() {
            gateways.push(crate::config::model::SmsGateway {
                id: "outbox".into(),
                kind: SmsGatewayKind::Outbox,
                secret: None,
                template: None,
            });
        }
        let mut routes = Vec::new();
        for g in gateways {
            let limits = options
                .limits
                .get(&g.id)
                .copied()
                .unwrap_or_else(|| Limits::default_for(&g.kind));
            let secret = match &g.secret {
                Some(source) => Some(
                    secret::load(source, site_dir, |name| (options.env)(name)).map_err(
                        |source| DispatchError::Secret {
                            gateway: g.id.clone(),
                            source,
                        },
                    )?,
                ),
                None => None,
            };
            let boxed: Option<Box<dyn Gateway + Send + Sync>> = match &g.kind {
                SmsGatewayKind::Outbox => None,
                SmsGatewayKind::YunMas(x) => Some(Box::new(x.clone())),
                SmsGatewayKind::Aliyun(x) => Some(Box::new(x.clone())),
                SmsGatewayKind::Tencent(x) => Some(Box::new(x.clone())),
                SmsGatewayKind::Kannel(x) => Some(Box::new(x.clone())),
            };
            let via = match (boxed, secret) {
                (Some(gateway), Some(secret)) => Via::Http { gateway, secret },
                (Some(_), None) => {
                    return Err(DispatchError::Secret {
                        gateway: g.id.clone(),
                        source: SecretError::EnvMissing(String::new()),
                    });
                }
                (None, _) => Via::Outbox {
                    path: site_dir.join(&sms.outbox),
                    lock: Mutex::new(()),
                },
            };
            routes.push(Route {
                id: g.id.clone(),
                kind: g.kind.clone(),
                template: g.template.clone(),
                via,
                permits: Arc::new(Semaphore::new(limits.concurrent.max(1))),
                per_second: limits.per_second,
                next_slot: tokio::sync::Mutex::new(tokio::time::Instant::now()),
                health: Mutex::new(GatewayHealth {
                    id: g.id.clone(),
                    ..GatewayHealth::default()
                }),
            });
        }
        let items = model
            .items()
            .map(|(_, item)| {
                (
                    item.id.clone(),
                    ItemInfo {
                        title: item.title.clone(),
                        body: item.body.clone(),
                        category: item.category,
                        department: item.department.clone().unwrap_or_default(),
                        sms: item.channels.contains(&Channel::Sms),
                    },
                )
            })
            .collect();
        let mut style = HashMap::new();
        for category in Category::ALL {
            // Validation checked every template; a failure here would be a bug, and the
            // default template is the fallback.
            let template = Template::for_fields(sms.template(category))
                .or_else(|_| Template::for_fields(bulletin::DEFAULT_TEMPLATE));
            if let Ok(template) = template {
                style.insert(
                    category,
                    Style {
                        signature: sms.signature.clone(),
                        template,
                        opt_out: sms.opt_out.clone(),
                        target_parts: sms.parts as usize,
                    },
                );
            }
        }
        Ok(Dispatcher {
            inner: Arc::new(Inner {
                tz: model.site.timezone,
                sms,
                items,
                ledger,
                routes,
                client,
                clock,
                options,
                style,
                progress: None,
            }),
        })
    }

    /// Reports progress after each gateway call. Call before sharing the dispatcher.
    pub fn with_progress(mut self, progress: Progress) -> Dispatcher {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.progress = Some(progress);
        }
        self
    }

    /// The ledger, for status queries.
    pub fn ledger(&self) -> &Ledger {
        &self.inner.ledger
    }

    /// Each gateway's recent calls, in routing order.
    pub fn gateway_health(&self) -> Vec<GatewayHealth> {
        self.inner
            .routes
            .iter()
            .map(|r| {
                r.health
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .clone()
            })
            .collect()
    }

    /// Rows found `sending` when the ledger was opened (now `unknown`).
    pub fn recovered(&self) -> u64 {
        self.inner.ledger.recovered()
    }

    fn fields(&self, info: &ItemInfo) -> Fields {
        Fields {
            title: info.title.clone(),
            body: info.body.clone(),
            url: self.inner.sms.read_more.clone(),
            department: info.department.clone(),
            category: info.category.name().to_owned(),
        }
    }

    /// The bulletin of `item` as the phone shows it.
    fn item_bulletin(&self, info: &ItemInfo) -> Option<bulletin::Bulletin> {
        let style = self.inner.style.get(&info.category)?;
        Some(bulletin::render(style, &self.fields(info)))
    }

    /// Records `item` for its recipients and sends what is due now (see the module
    /// documentation for the rules). With `dry_run`, only counts the recipients.
    pub async fn send_item(
        &self,
        item: &str,
        options: &SendOptions,
    ) -> Result<Counts, DispatchError> {
        let info = self
            .inner
            .items
            .get(item)
            .ok_or_else(|| DispatchError::UnknownItem(item.to_owned()))?;
        if !info.sms {
            return Err(DispatchError::NotSms(item.to_owned()));
        }
        self.send_info(item, info, options).await
    }

    /// Sends an urgent notice that is not an item (an interrupt the operator asked to send as
    /// SMS too) as a bulletin of category 其他, keyed by `id` exactly as an item is: never
    /// twice to one number.
    pub async fn send_notice(
        &self,
        id: &str,
        title: &str,
        text: &str,
        options: &SendOptions,
    ) -> Result<Counts, DispatchError> {
        let info = ItemInfo {
            title: title.to_owned(),
            body: text.to_owned(),
            category: Category::Other,
            department: String::new(),
            sms: true,
        };
        self.send_info(id, &info, options).await
    }

    async fn send_info(
        &self,
        item: &str,
        info: &ItemInfo,
        options: &SendOptions,
    ) -> Result<Counts, DispatchError> {
        let inner = &self.inner;
        let now = inner.clock.now();
        let digest = inner.sms.digest && !options.urgent;
        let due = if digest {
            next_end_of_quiet(&inner.sms.quiet_hours, inner.tz, now)
        } else {
            due_at(&inner.sms.quiet_hours, inner.tz, now, options.urgent)
        };
        let category = info.category;
        let groups = options.groups.clone();
        let wants = move |s: &subscribers::Subscriber| s.wants(category, &groups);
        if options.dry_run {
            let (recipients, new) = inner.ledger.count_recipients(item, wants)?;
            return Ok(Counts {
                recipients,
                new,
                ..Counts::default()
            });
        }
        let message = if digest {
            None
        } else {
            Some(self.item_message(item, info, now.timestamp())?)
        };
        let (recipients, new) = inner.ledger.enqueue_item(
            item,
            wants,
            message,
            options.urgent,
            due.timestamp(),
            now.timestamp(),
        )?;
        let mut counts = Counts {
            recipients,
            new,
            ..Counts::default()
        };
        counts.merge(self.run_due().await?);
        Ok(counts)
    }

    /// The stored single-item message of `item`, or a new one.
    fn item_message(&self, item: &str, info: &ItemInfo, now: i64) -> Result<i64, DispatchError> {
        if let Some(id) = self.inner.ledger.item_message(item)? {
            return Ok(id);
        }
        let (text, body) = match self.item_bulletin(info) {
            Some(b) => (b.text, b.body),
            None => {
                let body = format!("{}{}", bulletin::clean(&info.title), self.inner.sms.opt_out);
                (
                    super::segments::with_signature(&self.inner.sms.signature, &body),
                    body,
                )
            }
        };
        Ok(self.inner.ledger.add_message(&text, &body, &[item], now)?)
    }

    /// Builds the digests that are due, then sends every queued row that is due now: quiet
    /// hours hold non-urgent rows, the daily cap puts rows off to the next morning.
    pub async fn run_due(&self) -> Result<Counts, DispatchError> {
        let inner = &self.inner;
        let now = inner.clock.now();
        let ts = now.timestamp();
        let local = now.with_timezone(&inner.tz);
        let quiet = inner.sms.quiet_hours.contains(local.time());
        if !quiet {
            self.build_digests(ts)?;
        }
        let day = local.date_naive().to_string();
        let mut today = inner.ledger.day_counts(&day)?;
        let tomorrow = next_end_of_quiet(
            &inner.sms.quiet_hours,
            inner.tz,
            local_instant(
                inner.tz,
                local.date_naive().succ_opt().unwrap_or(local.date_naive()),
                NaiveTime::MIN,
            )
            .unwrap_or(now + chrono::Duration::days(1))
                - chrono::Duration::seconds(1),
        );
        let mut counts = Counts::default();
        let mut messages: HashMap<i64, Arc<Message>> = HashMap::new();
        loop {
            let due = inner.ledger.due(ts, quiet, inner.options.chunk)?;
            if due.is_empty() {
                break;
            }
            let mut deferred = Vec::new();
            let mut go: Vec<Due> = Vec::with_capacity(due.len());
            for row in due {
                let n = today.entry(row.number.clone()).or_insert(0);
                if *n >= inner.sms.daily_cap {
                    deferred.push((
                        row.id,
                        Finish::Requeue {
                            due_at: tomorrow.timestamp(),
                            reason: "daily cap reached".into(),
                        },
                    ));
                } else {
                    *n += 1;
                    go.push(row);
                }
            }
            counts.deferred += deferred.len() as u64;
            inner.ledger.finish(&deferred, ts)?;
            let mut tasks = tokio::task::JoinSet::new();
            let mut start = 0;
            while start < go.len() {
                let message_id = go[start].message;
                let end = go[start..]
                    .iter()
                    .position(|r| r.message != message_id)
                    .map_or(go.len(), |p| start + p);
                let message = match messages.get(&message_id) {
                    Some(m) => m.clone(),
                    None => {
                        let Some(m) = inner.ledger.message(message_id)? else {
                            let gone: Vec<(i64, Finish)> = go[start..end]
                                .iter()
                                .map(|r| {
                                    (
                                        r.id,
                                        Finish::Failed {
                                            reason: "message missing from the ledger".into(),
                                        },
                                    )
                                })
                                .collect();
                            counts.failed += gone.len() as u64;
                            inner.ledger.finish(&gone, ts)?;
                            start = end;
                            continue;
                        };
                        let m = Arc::new(m);
                        messages.insert(message_id, m.clone());
                        m
                    }
                };
                // Batches sized for the first gateway that can carry the message; a failover
                // to a gateway with a smaller maximum splits again.
                let size = inner
                    .routes
                    .iter()
                    .find(|r| self.content_for(r, &message).is_some())
                    .map_or(100, Route::max_numbers)
                    .max(1);
                for batch in go[start..end].chunks(size) {
                    let this = self.clone();
                    let message = message.clone();
                    let rows = batch.to_vec();
                    let day = day.clone();
                    tasks.spawn(async move { this.send_rows(&message, rows, &day, ts).await });
                }
                start = end;
            }
            // Every call in flight is waited for even after one failed (a full ledger), so that
            // each records its outcome if it can: returning early would abort them mid-call.
            let mut first_error = None;
            while let Some(result) = tasks.join_next().await {
                match result.map_err(|e| DispatchError::Task(e.to_string())) {
                    Ok(Ok(c)) => {
                        counts.merge(c);
                        if let Some(progress) = &inner.progress {
                            progress(&counts);
                        }
                    }
                    Ok(Err(e)) | Err(e) => {
                        first_error.get_or_insert(e);
                    }
                }
            }
            if let Some(e) = first_error {
                return Err(e);
            }
        }
        Ok(counts)
    }

    /// Turns items waiting for a digest into messages and queued deliveries.
    fn build_digests(&self, now: i64) -> Result<(), DispatchError> {
        let inner = &self.inner;
        let pending = inner.ledger.pending_digests(now)?;
        if pending.is_empty() {
            return Ok(());
        }
        let mut by_set: HashMap<Vec<String>, i64> = HashMap::new();
        let mut digests: Vec<(String, Vec<String>, i64)> = Vec::new();
        for (number, items) in pending {
            let message = match by_set.get(&items) {
                Some(id) => *id,
                None => {
                    let id = if let [only] = items.as_slice() {
                        match inner.items.get(only) {
                            Some(info) => self.item_message(only, info, now)?,
                            None => self.digest_message(&items, now)?,
                        }
                    } else {
                        self.digest_message(&items, now)?
                    };
                    by_set.insert(items.clone(), id);
                    id
                }
            };
            digests.push((number, items, message));
        }
        let refs: Vec<(&str, &[String], i64)> = digests
            .iter()
            .map(|(n, i, m)| (n.as_str(), i.as_slice(), *m))
            .collect();
        inner.ledger.enqueue_digests(&refs, now, now)?;
        Ok(())
    }

    fn digest_message(&self, items: &[String], now: i64) -> Result<i64, DispatchError> {
        let sms = &self.inner.sms;
        let titles: Vec<String> = items
            .iter()
            .map(|i| {
                self.inner
                    .items
                    .get(i)
                    .map_or_else(|| i.clone(), |info| info.title.clone())
            })
            .collect();
        let body = digest_text(
            &sms.signature,
            &titles,
            &sms.read_more,
            &sms.opt_out,
            sms.parts as usize,
        );
        let text = super::segments::with_signature(&sms.signature, &body);
        Ok(self.inner.ledger.digest_message(&text, &body, items, now)?)
    }

    /// What `message` becomes on `route`, or None when the route cannot carry it.
    fn content_for(&self, route: &Route, message: &Message) -> Option<Content> {
        let template_params = || {
            let [item] = message.items.as_slice() else {
                return None;
            };
            let info = self.inner.items.get(item)?;
            let template = route.template.as_ref()?;
            let params = bulletin::template_params(&template.vars, &self.fields(info)).ok()?;
            Some(Content::Template {
                id: template.id.clone(),
                params,
            })
        };
        match &route.kind {
            SmsGatewayKind::Outbox | SmsGatewayKind::Kannel(_) => {
                Some(Content::Text(message.body.clone()))
            }
            SmsGatewayKind::YunMas(_) if route.template.is_none() => {
                Some(Content::Text(message.body.clone()))
            }
            SmsGatewayKind::YunMas(_) | SmsGatewayKind::Aliyun(_) | SmsGatewayKind::Tencent(_) => {
                template_params()
            }
        }
    }

    /// Sends `rows` of `message` along the route, failing over; every row ends sent, failed,
    /// unknown, or queued again for later.
    async fn send_rows(
        &self,
        message: &Message,
        rows: Vec<Due>,
        day: &str,
        now: i64,
    ) -> Result<Counts, DispatchError> {
        let mut rows = rows;
        let mut total = Counts::default();
        let mut why = String::from("no gateway can carry this message");
        for route in &self.inner.routes {
            let Some(content) = self.content_for(route, message) else {
                continue;
            };
            let mut failed_over = false;
            for batch in rows.chunks(route.max_numbers().max(1)) {
                match self
                    .call_route(route, message, &content, batch, day, now)
                    .await?
                {
                    CallResult::Done(c) => total.merge(c),
                    CallResult::Failover(reason, c) => {
                        total.merge(c);
                        why = format!("{}: {reason}", route.id);
                        failed_over = true;
                    }
                }
            }
            if !failed_over {
                return Ok(total);
            }
            // Rows already settled stay settled; the rest try the next gateway.
            let (queued, cancelled) = self.still_queued(&rows)?;
            total.cancelled += cancelled;
            rows = queued;
            if rows.is_empty() {
                return Ok(total);
            }
        }
        total.merge(self.defer_all(&rows, now, why)?);
        Ok(total)
    }

    /// The rows of `rows` that are queued again after a failover, and how many of the others
    /// were cancelled meanwhile.
    fn still_queued(&self, rows: &[Due]) -> Result<(Vec<Due>, u64), DispatchError> {
        let states = self.inner.ledger.states_of(rows.iter().map(|r| r.id))?;
        let cancelled = rows
            .iter()
            .filter(|r| states.get(&r.id) == Some(&State::Cancelled))
            .count() as u64;
        let queued = rows
            .iter()
            .filter(|r| states.get(&r.id) == Some(&State::Queued))
            .cloned()
            .collect();
        Ok((queued, cancelled))
    }

    /// Every gateway is down: the rows are due again after the outage delay.
    fn defer_all(&self, rows: &[Due], now: i64, why: String) -> Result<Counts, DispatchError> {
        let delay = self.inner.options.retry.outage_delay.as_secs().max(1) as i64;
        let finish: Vec<(i64, Finish)> = rows
            .iter()
            .map(|r| {
                (
                    r.id,
                    Finish::Requeue {
                        due_at: now + delay,
                        reason: why.clone(),
                    },
                )
            })
            .collect();
        self.inner.ledger.finish(&finish, now)?;
        Ok(Counts {
            deferred: rows.len() as u64,
            ..Counts::default()
        })
    }

    /// One batch on one gateway, with retries while the gateway certainly did not act.
    async fn call_route(
        &self,
        route: &Route,
        message: &Message,
        content: &Content,
        rows: &[Due],
        day: &str,
        now: i64,
    ) -> Result<CallResult, DispatchError> {
        let inner = &self.inner;
        let mut rows: Vec<Due> = rows.to_vec();
        let mut ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
        let mut cancelled = 0;
        let retry = inner.options.retry;
        let mut attempt = 0;
        loop {
            attempt += 1;
            // The permit is held until the outcome is committed, so the rows `sending` in the
            // ledger are exactly the calls in flight.
            let permit = route
                .permits
                .acquire()
                .await
                .map_err(|e| DispatchError::Task(e.to_string()))?;
            route.pace(rows.len()).await;
            let stamp = inner.clock.now();
            let moved = inner
                .ledger
                .mark_sending(&ids, &route.id, day, stamp.timestamp())?;
            if moved.len() < ids.len() {
                // Cancelled since they were read as due: they are not called.
                cancelled += (ids.len() - moved.len()) as u64;
                let still: std::collections::HashSet<i64> = moved.iter().copied().collect();
                rows.retain(|r| still.contains(&r.id));
                ids = moved;
            }
            if ids.is_empty() {
                return Ok(CallResult::Done(Counts {
                    cancelled,
                    ..Counts::default()
                }));
            }
            let rows = rows.as_slice();
            let result = self.call(route, message, content, rows, stamp).await;
            route.record(&result, inner.clock.now());
            let finished = inner.clock.now().timestamp();
            let settle = |finish: Finish| -> Vec<(i64, Finish)> {
                ids.iter().map(|id| (*id, finish.clone())).collect()
            };
            let not_acted = match result {
                Ok(Outcome::Accepted { reference, numbers }) if numbers.is_empty() => {
                    inner.ledger.finish(
                        &settle(Finish::Sent {
                            reference,
                            serial: None,
                        }),
                        finished,
                    )?;
                    return Ok(CallResult::Done(Counts {
                        sent: ids.len() as u64,
                        cancelled,
                        ..Counts::default()
                    }));
                }
                Ok(Outcome::Accepted { reference, numbers }) => {
                    let mut counts = self.per_number(rows, reference, numbers, now, finished)?;
                    counts.cancelled += cancelled;
                    return Ok(CallResult::Done(counts));
                }
                Ok(Outcome::Refused {
                    code,
                    permanent: true,
                }) => {
                    inner
                        .ledger
                        .finish(&settle(Finish::Failed { reason: code }), finished)?;
                    return Ok(CallResult::Done(Counts {
                        failed: ids.len() as u64,
                        cancelled,
                        ..Counts::default()
                    }));
                }
                Ok(Outcome::Refused {
                    code,
                    permanent: false,
                }) => {
                    inner.ledger.finish(
                        &settle(Finish::Requeue {
                            due_at: now,
                            reason: code.clone(),
                        }),
                        finished,
                    )?;
                    return Ok(CallResult::Failover(
                        code,
                        Counts {
                            cancelled,
                            ..Counts::default()
                        },
                    ));
                }
                Ok(Outcome::Unknown { why }) | Err(CallError::InDoubt(why)) => {
                    inner
                        .ledger
                        .finish(&settle(Finish::Unknown { reason: why }), finished)?;
                    return Ok(CallResult::Done(Counts {
                        unknown: ids.len() as u64,
                        cancelled,
                        ..Counts::default()
                    }));
                }
                Err(CallError::Invalid(why)) => {
                    // The request could not be built or sent: nothing left the machine.
                    inner.ledger.finish(
                        &settle(Finish::Requeue {
                            due_at: now,
                            reason: why.clone(),
                        }),
                        finished,
                    )?;
                    return Ok(CallResult::Failover(
                        why,
                        Counts {
                            cancelled,
                            ..Counts::default()
                        },
                    ));
                }
                Ok(Outcome::Retry { code }) => code,
                Err(CallError::NotSent(why)) => why,
            };
            inner.ledger.finish(
                &settle(Finish::Requeue {
                    due_at: now,
                    reason: not_acted.clone(),
                }),
                finished,
            )?;
            drop(permit);
            if attempt >= retry.attempts.max(1) {
                return Ok(CallResult::Failover(
                    not_acted,
                    Counts {
                        cancelled,
                        ..Counts::default()
                    },
                ));
            }
            tokio::time::sleep(backoff(&retry, attempt, fastrand::f64())).await;
        }
    }

    /// Settles a call answered number by number (Tencent): a number of the batch missing from
    /// the answer is in doubt.
    fn per_number(
        &self,
        rows: &[Due],
        reference: Option<String>,
        numbers: Vec<super::gateways::NumberResult>,
        now: i64,
        finished: i64,
    ) -> Result<Counts, DispatchError> {
        let inner = &self.inner;
        let mut by_number: HashMap<String, NumberStatus> =
            numbers.into_iter().map(|n| (n.number, n.status)).collect();
        let later = next_end_of_quiet(
            &inner.sms.quiet_hours,
            inner.tz,
            DateTime::from_timestamp(now, 0).unwrap_or_default() + chrono::Duration::hours(12),
        )
        .timestamp();
        let mut counts = Counts::default();
        let mut finish = Vec::with_capacity(rows.len());
        for row in rows {
            let f = match by_number.remove(&row.number) {
                Some(NumberStatus::Accepted { serial }) => {
                    counts.sent += 1;
                    Finish::Sent {
                        reference: reference.clone(),
                        serial,
                    }
                }
                Some(NumberStatus::Refused {
                    code,
                    permanent: true,
                }) => {
                    counts.failed += 1;
                    Finish::Failed { reason: code }
                }
                Some(NumberStatus::Refused {
                    code,
                    permanent: false,
                }) => {
                    // A per-number daily limit: tomorrow.
                    counts.deferred += 1;
                    Finish::Requeue {
                        due_at: later,
                        reason: code,
                    }
                }
                Some(NumberStatus::Retry { code }) => {
                    counts.deferred += 1;
                    Finish::Requeue {
                        due_at: now + inner.options.retry.outage_delay.as_secs().max(1) as i64,
                        reason: code,
                    }
                }
                Some(NumberStatus::Unknown { code }) => {
                    counts.unknown += 1;
                    Finish::Unknown { reason: code }
                }
                None => {
                    counts.unknown += 1;
                    Finish::Unknown {
                        reason: "missing from the gateway's per-number answer".into(),
                    }
                }
            };
            finish.push((row.id, f));
        }
        inner.ledger.finish(&finish, finished)?;
        Ok(counts)
    }

    /// The call itself: the outbox file, or HTTP.
    async fn call(
        &self,
        route: &Route,
        message: &Message,
        content: &Content,
        rows: &[Due],
        now: DateTime<Utc>,
    ) -> Result<Outcome, CallError> {
        match &route.via {
            Via::Outbox { path, lock } => {
                let _guard = lock.lock().map_err(|_| CallError::Invalid("lock".into()))?;
                write_outbox(
                    path,
                    &route.id,
                    message,
                    rows,
                    now.with_timezone(&self.inner.tz),
                )
            }
            Via::Http { gateway, secret } => {
                let batch = Batch {
                    numbers: rows.iter().map(|r| r.number.clone()).collect(),
                    signature: self.inner.sms.signature.clone(),
                    content: content.clone(),
                };
                let nonce = format!(
                    "{}-{}-{:016x}",
                    message.id,
                    rows.first().map_or(0, |r| r.id),
                    fastrand::u64(..)
                );
                let request = gateway
                    .build(&batch, secret, now, &nonce)
                    .map_err(|e| CallError::Invalid(e.to_string()))?;
                let answer = self.inner.client.call(&request).await?;
                Ok(gateway.parse(answer.status, &answer.body))
            }
        }
    }

    /// Resolves `unknown` rows where the gateway can be asked: Alibaba `QuerySendDetails`,
    /// Tencent `PullSmsSendStatus`, and the local outbox (its file says what was written).
    /// 云MAS and Kannel push delivery reports instead ([`Dispatcher::delivery_report`]).
    pub async fn reconcile(&self) -> Result<Resolved, DispatchError> {
        let inner = &self.inner;
        let rows = inner.ledger.in_state(State::Unknown, 100_000)?;
        let mut resolved = Resolved {
            checked: rows.len() as u64,
            ..Resolved::default()
        };
        // Every row looked at counts as reconciled, whether its gateway can be polled or only
        // pushes reports: an operator may confirm a resend only after this.
        let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
        inner
            .ledger
            .mark_reconciled(&ids, inner.clock.now().timestamp())?;
        let mut by_gateway: HashMap<String, Vec<Row>> = HashMap::new();
        for row in rows {
            by_gateway
                .entry(row.gateway.clone().unwrap_or_default())
                .or_default()
                .push(row);
        }
        for (gateway, rows) in by_gateway {
            let Some(route) = inner.routes.iter().find(|r| r.id == gateway) else {
                resolved.open += rows.len() as u64;
                continue;
            };
            let finish = match (&route.via, &route.kind) {
                (Via::Outbox { path, .. }, _) => reconcile_outbox(path, &rows),
                (Via::Http { secret, .. }, SmsGatewayKind::Aliyun(ali)) => {
                    self.reconcile_aliyun(route, ali, secret, &rows).await
                }
                (Via::Http { secret, .. }, SmsGatewayKind::Tencent(tc)) => {
                    self.reconcile_tencent(tc, secret, &rows).await
                }
                _ => Vec::new(),
            };
            for (_, f) in &finish {
                match f {
                    Finish::Sent { .. } => resolved.sent += 1,
                    Finish::Failed { .. } => resolved.failed += 1,
                    _ => {}
                }
            }
            resolved.open += (rows.len() - finish.len()) as u64;
            inner
                .ledger
                .finish(&finish, inner.clock.now().timestamp())?;
        }
        Ok(resolved)
    }

    async fn reconcile_aliyun(
        &self,
        route: &Route,
        ali: &aliyun::Aliyun,
        secret: &Secret,
        rows: &[Row],
    ) -> Vec<(i64, Finish)> {
        let template = route.template.as_ref().map(|t| t.id.as_str());
        let mut out = Vec::new();
        for row in rows {
            let Ok(_permit) = route.permits.acquire().await else {
                break;
            };
            let now = self.inner.clock.now();
            let date = row
                .day
                .as_deref()
                .and_then(|d| d.parse::<NaiveDate>().ok())
                .unwrap_or_else(|| now.with_timezone(&self.inner.tz).date_naive());
            let request = ali.query_send_details(
                &row.number,
                date,
                row.reference.as_deref(),
                secret,
                now,
                &format!("q-{}-{:016x}", row.id, fastrand::u64(..)),
            );
            let Ok(answer) = self.inner.client.call(&request).await else {
                continue;
            };
            match aliyun::parse_send_details(&row.number, template, answer.status, &answer.body) {
                Ok(Some(report)) => {
                    if let Some(f) = finish_of(&report) {
                        out.push((row.id, f));
                    }
                }
                Ok(None) => out.push((
                    row.id,
                    Finish::Failed {
                        reason: "the gateway has no record of it".into(),
                    },
                )),
                Err(_) => {}
            }
        }
        out
    }

    async fn reconcile_tencent(
        &self,
        tc: &tencent::Tencent,
        secret: &Secret,
        rows: &[Row],
    ) -> Vec<(i64, Finish)> {
        let mut open: HashMap<&str, Vec<&Row>> = HashMap::new();
        for row in rows {
            open.entry(row.number.as_str()).or_default().push(row);
        }
        let mut out = Vec::new();
        for _ in 0..50 {
            let request = tc.pull_send_status(100, secret, self.inner.clock.now());
            let Ok(answer) = self.inner.client.call(&request).await else {
                break;
            };
            let Ok(reports) = tencent::parse_pull_send_status(answer.status, &answer.body) else {
                break;
            };
            if reports.is_empty() {
                break;
            }
            for report in reports {
                // An unknown row has no serial: a report for a number with exactly one
                // unknown row at this gateway settles it.
                if let Some(list) = open.get_mut(report.number.as_str())
                    && list.len() == 1
                    && let Some(f) = finish_of(&report)
                    && let Some(row) = list.pop()
                {
                    out.push((row.id, f));
                }
            }
        }
        out
    }

    /// A delivery report pushed by gateway `gateway` (its id in the site): 云MAS JSON (plain
    /// or Base64), Alibaba's and Tencent's JSON arrays, or Kannel's dlr-url query
    /// (`type=%d&to=%p`; `s`/`p` also accepted). Returns how many rows changed.
    pub fn delivery_report(&self, gateway: &str, input: &[u8]) -> Result<u64, DispatchError> {
        let route = self.route(gateway)?;
        let now = self.inner.clock.now().timestamp();
        delivery_report(&self.inner.ledger, gateway, &route.kind, input, now)
    }

    /// A reply from a phone (an "upstream" message) pushed by gateway `gateway`: a TD (退订)
    /// reply opts the number out, forever. Returns the numbers that opted out (normalised;
    /// mask them before showing).
    pub fn reply(&self, gateway: &str, input: &[u8]) -> Result<Vec<String>, DispatchError> {
        let route = self.route(gateway)?;
        let now = self.inner.clock.now().timestamp();
        reply(&self.inner.ledger, gateway, &route.kind, input, now)
    }

    fn route(&self, gateway: &str) -> Result<&Route, DispatchError> {
        self.inner
            .routes
            .iter()
            .find(|r| r.id == gateway)
            .ok_or_else(|| DispatchError::UnknownGateway(gateway.to_owned()))
    }

    /// Cancels everything of `item` (an item's id, or a notice's) that no gateway has been
    /// handed yet: its queued deliveries become `cancelled`, recipients waiting for a digest
    /// are marked cancelled, and a queued digest carrying it is cancelled while its other items
    /// wait for the next digest. Rows `sending` are in flight and stay; a sender in this or
    /// another process skips the cancelled rows at its next batch (only rows still `queued`
    /// when it commits `sending` are called). Returns how many were cancelled. The daemon's
    /// `gongkai withdraw ITEM` calls this; recording the action in the audit is the caller's.
    pub fn cancel_item(&self, item: &str, now: DateTime<Utc>) -> Result<u64, DispatchError> {
        Ok(self
            .inner
            .ledger
            .cancel_item(item, "cancelled", now.timestamp())?)
    }

    /// Clears the texts of messages whose deliveries are all final and that are older than
    /// `keep` (the site's `retention.sms_texts`), keeping their SHA-256 and every row. Returns
    /// how many were pruned. See [`Ledger::prune_texts`].
    pub fn prune_texts(&self, keep: Duration) -> Result<u64, DispatchError> {
        let now = self.inner.clock.now().timestamp();
        let cutoff = now.saturating_sub(i64::try_from(keep.as_secs()).unwrap_or(i64::MAX));
        Ok(self.inner.ledger.prune_texts(cutoff, now)?)
    }

    /// Counts by state, for all deliveries or an item's.
    pub fn status(&self, item: Option<&str>) -> Result<StateCounts, DispatchError> {
        Ok(self.inner.ledger.counts(item)?)
    }
}

fn finish_of(report: &StatusReport) -> Option<Finish> {
    match &report.status {
        ReportStatus::Delivered | ReportStatus::Pending => Some(Finish::Sent {
            reference: report.reference.clone(),
            serial: report.serial.clone(),
        }),
        ReportStatus::Failed(reason) => Some(Finish::Failed {
            reason: reason.clone(),
        }),
    }
}

/// One line of the outbox file.
#[derive(serde::Serialize, serde::Deserialize)]
struct OutboxLine {
    at: String,
    gateway: String,
    delivery: i64,
    message: i64,
    number: String,
    text: String,
}

fn open_private_append(path: &Path) -> std::io::Result<std::fs::File> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.append(true).create(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    options.open(path)
}

/// Appends one JSON line per number, written and synced in one go. A failure to open is
/// certainly not a send; a failure while writing may have left some lines: in doubt.
fn write_outbox(
    path: &Path,
    gateway: &str,
    message: &Message,
    rows: &[Due],
    now: DateTime<Tz>,
) -> Result<Outcome, CallError> {
    let mut file = open_private_append(path).map_err(|e| CallError::NotSent(e.to_string()))?;
    let at = now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let mut buf = Vec::with_capacity(rows.len() * (message.text.len() + 120));
    for row in rows {
        let line = OutboxLine {
            at: at.clone(),
            gateway: gateway.to_owned(),
            delivery: row.id,
            message: message.id,
            number: row.number.clone(),
            text: message.text.clone(),
        };
        if serde_json::to_writer(&mut buf, &line).is_err() {
            return Err(CallError::Invalid("outbox line".into()));
        }
        buf.push(b'\n');
    }
    file.write_all(&buf)
        .and_then(|()| file.sync_data())
        .map_err(|e| CallError::InDoubt(e.to_string()))?;
    Ok(Outcome::Accepted {
        reference: None,
        numbers: Vec::new(),
    })
}

/// Unknown outbox rows: a line with the delivery's id means it was written (sent); none
/// means it was not (failed, so the operator sees it).
fn reconcile_outbox(path: &Path, rows: &[Row]) -> Vec<(i64, Finish)> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Vec::new();
    };
    let written: std::collections::HashSet<i64> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<OutboxLine>(l).ok())
        .map(|l| l.delivery)
        .collect();
    rows.iter()
        .map(|row| {
            let finish = if written.contains(&row.id) {
                Finish::Sent {
                    reference: None,
                    serial: None,
                }
            } else {
                Finish::Failed {
                    reason: "not written to the outbox".into(),
                }
            };
            (row.id, finish)
        })
        .collect()
}

/// Reads a callback body that may be Base64-wrapped JSON (some 云MAS deployments).
fn json_of(input: &[u8]) -> Option<serde_json::Value> {
    use base64::Engine as _;
    if let Ok(v) = serde_json::from_slice(input) {
        return Some(v);
    }
    let trimmed: Vec<u8> = input
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(trimmed)
        .ok()?;
    serde_json::from_slice(&decoded).ok()
}

fn as_list(v: serde_json::Value) -> Vec<serde_json::Value> {
    match v {
        serde_json::Value::Array(a) => a,
        other => vec![other],
    }
}

fn text_of<'a>(v: &'a serde_json::Value, names: &[&str]) -> Option<&'a str> {
    names
        .iter()
        .find_map(|n| v.get(*n).and_then(|x| x.as_str()))
}

fn query_pairs(input: &[u8]) -> HashMap<String, String> {
    let text = String::from_utf8_lossy(input);
    text.trim_start_matches('?')
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (percent_decode(k), percent_decode(v)))
        .collect()
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(hi), Some(lo)) => {
                    out.push(hi << 4 | lo);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The reports in a callback body, by gateway kind.
pub fn parse_reports(kind: &SmsGatewayKind, input: &[u8]) -> Result<Vec<StatusReport>, String> {
    let bad = || {
        String::from_utf8_lossy(input)
            .chars()
            .take(60)
            .collect::<String>()
    };
    let number = |raw: &str| subscribers::normalize(raw).map_err(|_| bad());
    match kind {
        SmsGatewayKind::Kannel(_) | SmsGatewayKind::Outbox => {
            let q = query_pairs(input);
            let to = q
                .get("to")
                .or_else(|| q.get("p"))
                .or_else(|| q.get("receiver"))
                .ok_or_else(bad)?;
            let kind: u32 = q
                .get("type")
                .or_else(|| q.get("s"))
                .and_then(|s| s.parse().ok())
                .ok_or_else(bad)?;
            let status = match kind {
                1 => ReportStatus::Delivered,
                2 | 16 => ReportStatus::Failed(format!("kannel dlr {kind}")),
                _ => ReportStatus::Pending,
            };
            Ok(vec![StatusReport {
                number: number(to)?,
                reference: None,
                serial: None,
                status,
            }])
        }
        SmsGatewayKind::YunMas(_) => as_list(json_of(input).ok_or_else(bad)?)
            .iter()
            .map(|v| {
                let mobile = text_of(v, &["mobile"]).ok_or_else(bad)?;
                let status = text_of(v, &["reportStatus"]).ok_or_else(bad)?;
                Ok(StatusReport {
                    number: number(mobile)?,
                    reference: text_of(v, &["msgGroup"]).map(str::to_owned),
                    serial: None,
                    status: if status == "DELIVRD" || status == "CM:0000" {
                        ReportStatus::Delivered
                    } else {
                        ReportStatus::Failed(
                            text_of(v, &["errorCode"]).unwrap_or(status).to_owned(),
                        )
                    },
                })
            })
            .collect(),
        SmsGatewayKind::Aliyun(_) => as_list(json_of(input).ok_or_else(bad)?)
            .iter()
            .map(|v| {
                let phone = text_of(v, &["phone_number"]).ok_or_else(bad)?;
                let success = v.get("success").and_then(|s| s.as_bool()).ok_or_else(bad)?;
                Ok(StatusReport {
                    number: number(phone)?,
                    reference: text_of(v, &["biz_id"]).map(str::to_owned),
                    serial: None,
                    status: if success {
                        ReportStatus::Delivered
                    } else {
                        ReportStatus::Failed(
                            text_of(v, &["err_code"]).unwrap_or("failed").to_owned(),
                        )
                    },
                })
            })
            .collect(),
        SmsGatewayKind::Tencent(_) => as_list(json_of(input).ok_or_else(bad)?)
            .iter()
            .map(|v| {
                let phone = text_of(v, &["mobile"]).ok_or_else(bad)?;
                let status = text_of(v, &["report_status"]).ok_or_else(bad)?;
                Ok(StatusReport {
                    number: number(phone)?,
                    reference: None,
                    serial: text_of(v, &["sid"]).map(str::to_owned),
                    status: if status == "SUCCESS" {
                        ReportStatus::Delivered
                    } else {
                        ReportStatus::Failed(
                            text_of(v, &["errmsg", "description"])
                                .unwrap_or(status)
                                .to_owned(),
                        )
                    },
                })
            })
            .collect(),
    }
}

/// Applies a delivery report to the ledger: a delivered report makes the row `sent` (an
/// `unknown` row resolved), a failed one `failed` with the provider's reason. Returns how many
/// rows changed. A plain function, so the daemon's callback route can call it.
pub fn delivery_report(
    ledger: &Ledger,
    gateway: &str,
    kind: &SmsGatewayKind,
    input: &[u8],
    now: i64,
) -> Result<u64, DispatchError> {
    let reports = parse_reports(kind, input).map_err(DispatchError::BadReport)?;
    let mut finish = Vec::new();
    for report in &reports {
        if matches!(report.status, ReportStatus::Pending) {
            continue;
        }
        if let Some(row) = ledger.find_for_report(
            gateway,
            &report.number,
            report.reference.as_deref(),
            report.serial.as_deref(),
        )? && let Some(f) = finish_of(report)
        {
            finish.push((row.id, f));
        }
    }
    ledger.finish(&finish, now)?;
    Ok(finish.len() as u64)
}

/// Whether a reply asks to stop: TD, T, N, 退订 (any case, surrounding blanks ignored).
pub fn is_opt_out(text: &str) -> bool {
    let t = text.trim().to_uppercase();
    matches!(t.as_str(), "TD" | "T" | "N" | "退订" | "取消" | "退订TD")
}

/// Applies phone replies: numbers that replied TD are opted out for good, recorded in the
/// consent history as 短信回复 through `gateway`. Returns them.
pub fn reply(
    ledger: &Ledger,
    gateway: &str,
    kind: &SmsGatewayKind,
    input: &[u8],
    now: i64,
) -> Result<Vec<String>, DispatchError> {
    let bad =
        || DispatchError::BadReport(String::from_utf8_lossy(input).chars().take(60).collect());
    let replies: Vec<(String, String)> = match kind {
        SmsGatewayKind::Kannel(_) | SmsGatewayKind::Outbox => {
            let q = query_pairs(input);
            let from = q
                .get("from")
                .or_else(|| q.get("p"))
                .ok_or_else(bad)?
                .clone();
            let text = q
                .get("text")
                .or_else(|| q.get("a"))
                .ok_or_else(bad)?
                .clone();
            vec![(from, text)]
        }
        _ => {
            let (phone, content): (&[&str], &[&str]) = match kind {
                SmsGatewayKind::YunMas(_) => (&["mobile"], &["smsContent"]),
                SmsGatewayKind::Aliyun(_) => (&["phone_number"], &["content"]),
                _ => (&["mobile"], &["text"]),
            };
            as_list(json_of(input).ok_or_else(bad)?)
                .iter()
                .map(|v| {
                    Some((
                        text_of(v, phone)?.to_owned(),
                        text_of(v, content)?.to_owned(),
                    ))
                })
                .collect::<Option<Vec<_>>>()
                .ok_or_else(bad)?
        }
    };
    let mut out = Vec::new();
    for (from, text) in replies {
        if !is_opt_out(&text) {
            continue;
        }
        let Ok(number) = subscribers::normalize(&from) else {
            continue;
        };
        ledger.opt_out(&number, super::ledger::HOW_REPLY, gateway, now)?;
        out.push(number);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quiet() -> QuietHours {
        QuietHours {
            from: NaiveTime::from_hms_opt(21, 0, 0).unwrap(),
            until: NaiveTime::from_hms_opt(8, 0, 0).unwrap(),
        }
    }

    fn at(text: &str) -> DateTime<Utc> {
        let naive = chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M").unwrap();
        chrono_tz::Asia::Shanghai
            .from_local_datetime(&naive)
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn a_bulletin_due_at_night_waits_for_the_morning_and_an_urgent_one_does_not() {
        let tz = chrono_tz::Asia::Shanghai;
        assert_eq!(
            due_at(&quiet(), tz, at("2026-12-01 22:30"), false),
            at("2026-12-02 08:00")
        );
        assert_eq!(
            due_at(&quiet(), tz, at("2026-12-02 06:00"), false),
            at("2026-12-02 08:00")
        );
        assert_eq!(
            due_at(&quiet(), tz, at("2026-12-01 22:30"), true),
            at("2026-12-01 22:30")
        );
        assert_eq!(
            due_at(&quiet(), tz, at("2026-12-01 10:00"), false),
            at("2026-12-01 10:00")
        );
        assert_eq!(
            next_end_of_quiet(&quiet(), tz, at("2026-12-01 10:00")),
            at("2026-12-02 08:00")
        );
    }

    #[test]
    fn backoff_is_capped_exponential_with_full_jitter() {
        let r = Retry {
            attempts: 5,
            base: Duration::from_millis(100),
            cap: Duration::from_millis(350),
            outage_delay: Duration::from_secs(1),
        };
        assert_eq!(backoff(&r, 1, 0.999_999).as_millis(), 99);
        assert_eq!(backoff(&r, 2, 0.5), Duration::from_millis(100));
        assert_eq!(backoff(&r, 3, 1.0), Duration::from_millis(350));
        assert_eq!(backoff(&r, 30, 1.0), Duration::from_millis(350));
        assert_eq!(backoff(&r, 3, 0.0), Duration::ZERO);
    }

    #[test]
    fn a_digest_lists_titles_and_where_to_read_them_within_its_parts() {
        let titles: Vec<String> = (1..=3).map(|i| format!("公告{i}")).collect();
        let body = digest_text("县政务公开", &titles, "县政府网站", "回复TD退订", 2);
        assert_eq!(
            body,
            "今日公开3条：1.公告1；2.公告2；3.公告3。详见县政府网站回复TD退订"
        );
        let long: Vec<String> = (1..=20)
            .map(|i| format!("{i}号关于某某事项的公示"))
            .collect();
        let body = digest_text("县政务公开", &long, "县政府网站", "回复TD退订", 1);
        let text = super::super::segments::with_signature("县政务公开", &body);
        assert_eq!(segment(&text).parts, 1, "{text}");
        assert!(body.contains("等20条"), "{body}");
    }

    #[test]
    fn td_replies_are_recognised() {
        for yes in ["TD", " td ", "退订", "T"] {
            assert!(is_opt_out(yes), "{yes}");
        }
        for no in ["谢谢", "TDX", ""] {
            assert!(!is_opt_out(no), "{no}");
        }
    }

    #[test]
    fn kannel_reports_and_replies_are_read_from_their_query() {
        let kannel = SmsGatewayKind::Kannel(crate::sms::gateways::kannel::Kannel {
            base_url: "http://k".into(),
            username: "u".into(),
            from: String::new(),
            dlr_url: String::new(),
            dlr_mask: 31,
        });
        let r = parse_reports(&kannel, b"type=1&to=%2B8613800138000").unwrap();
        assert_eq!(r[0].number, "13800138000");
        assert_eq!(r[0].status, ReportStatus::Delivered);
        let r = parse_reports(&kannel, b"s=16&p=13800138000").unwrap();
        assert!(matches!(r[0].status, ReportStatus::Failed(_)));
        assert!(parse_reports(&kannel, b"garbage").is_err());
    }

    #[test]
    fn percent_decoding_handles_utf8_and_a_trailing_percent() {
        assert_eq!(percent_decode("%E9%80%80%E8%AE%A2"), "退订");
        assert_eq!(percent_decode("a+b%"), "a b%");
    }
}
