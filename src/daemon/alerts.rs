//! Alerts to the technicians: a board silent too long, a link failing too often, an SMS
//! gateway failing call after call — told once when it starts and once when it is over.
//!
//! Owns two things. [`Tracker`] is pure: samples of what the daemon already knows (each
//! display's link health, each gateway's recent calls) and the time go in, [`Event`]s come
//! out; it holds the open incidents and decides when one starts and ends. [`run`] is the I/O
//! around it: it samples every second, and hands each event to one delivery worker that
//! posts it to the webhook (JSON, `Authorization: Bearer`, retried with back-off) and sends it
//! by SMS to the technicians through the site's first gateway that carries free text, calling
//! the gateway layer directly — alerts are not bulletins, so the subscribers' ledger, quiet
//! hours and daily caps do not apply. Every event is logged, counted for `/metrics` and listed
//! in `/api/status` while open.
//!
//! Rules (docs/alerts.md says the same for operators):
//! - An incident fires once. Nothing more is sent while it stays open, however long.
//! - A condition must clear before the recovery is sent: a silent board must answer for a
//!   little while (a tenth of `board_silent_for`, between 1 s and 30 s); a link's error share
//!   must fall to half the limit; a gateway must accept a call.
//! - A reload keeps open incidents open and judges them with the new limits. An incident whose
//!   subject leaves the site, or whose kind of alert is switched off, is closed with a
//!   "no longer watched" notice, so no technician waits for a recovery that will never come.
//! - Nothing is remembered across a restart: a fault still there after a restart fires again.
//!
//! Must not touch: links, the dispatcher's sending or its ledger (it only reads the
//! dispatcher's per-gateway health), subscribers.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, watch};

use super::Shared;
use crate::config::Model;
use crate::config::alerts::{Alerts, carries_alerts};
use crate::config::model::SmsGatewayKind;
use crate::i18n::{Lang, tr};
use crate::sms::gateways::{Batch, Content, Gateway, HttpRequest, Outcome};
use crate::sms::http::{CallError, Client, Timeouts};

/// How often the daemon's state is sampled.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(1);
/// The window over which a link's error share is computed.
pub const ERROR_WINDOW: Duration = Duration::from_secs(600);
/// Fewer exchanges than this in the window say nothing about a link's error share.
pub const MIN_EXCHANGES: u64 = 10;
/// Attempts of one webhook delivery.
const WEBHOOK_ATTEMPTS: u32 = 4;
/// First pause between webhook attempts, doubled after each.
const WEBHOOK_BACKOFF: Duration = Duration::from_secs(1);

/// What is wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    BoardSilent,
    LinkErrors,
    GatewayFailing,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::BoardSilent => "board_silent",
            Kind::LinkErrors => "link_errors",
            Kind::GatewayFailing => "gateway_failing",
        }
    }
}

/// The facts of an incident when it fired.
#[derive(Clone, Debug, PartialEq)]
pub enum Detail {
    /// Offline for this long.
    Silent { silent_for: Duration },
    /// `failed` of `exchanges` in the window.
    ErrorRate { failed: u64, exchanges: u64 },
    /// Calls in a row that failed, and the last reason.
    GatewayFailures { count: u32, last: Option<String> },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    Firing,
    Resolved,
}

/// An open incident.
#[derive(Clone, Debug, PartialEq)]
pub struct Incident {
    pub kind: Kind,
    /// A display id or a gateway id.
    pub subject: String,
    /// What people call it: the display's name, or the gateway id.
    pub name: String,
    /// When the condition began (first seen).
    pub since: DateTime<Utc>,
    pub detail: Detail,
}

/// What the tracker tells the world.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    pub state: State,
    pub incident: Incident,
    /// When the event happened.
    pub at: DateTime<Utc>,
    /// Resolved because the subject is no longer watched, not because it recovered.
    pub unwatched: bool,
}

impl Event {
    /// How long the incident lasted (for a resolution) or has lasted so far.
    pub fn lasted(&self) -> Duration {
        (self.at - self.incident.since).to_std().unwrap_or_default()
    }

    /// Stable across retries, so a receiver can drop a webhook it got twice.
    pub fn id(&self) -> String {
        format!(
            "{}:{}:{}:{}",
            self.incident.kind.name(),
            self.incident.subject,
            self.incident.since.timestamp(),
            match self.state {
                State::Firing => "firing",
                State::Resolved => "resolved",
            }
        )
    }
}

/// One display as sampled.
#[derive(Clone, Debug, PartialEq)]
pub struct DisplaySample {
    pub id: String,
    pub name: String,
    /// None while the display has no link to read (starting, relinking): nothing is decided.
    pub link: Option<LinkSample>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinkSample {
    pub online: bool,
    /// Frames and programs the board took (a counter).
    pub frames: u64,
    /// Exchanges that failed (a counter).
    pub errors: u64,
    /// When the board last answered, if it has since the link was built.
    pub last_answer: Option<DateTime<Utc>>,
}

/// One gateway as sampled.
#[derive(Clone, Debug, PartialEq)]
pub struct GatewaySample {
    pub id: String,
    /// None while the dispatcher is not running: nothing is decided.
    pub health: Option<crate::sms::dispatch::GatewayHealth>,
}

/// Everything the tracker looks at, at one instant.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub at: DateTime<Utc>,
    pub displays: Vec<DisplaySample>,
    pub gateways: Vec<GatewaySample>,
}

/// A condition as read from one sample.
enum Reading {
    /// The condition holds; it began no later than the time given, when one is known.
    Bad(Detail, Option<DateTime<Utc>>),
    Good,
    /// Not enough to say either way: the state is kept.
    Unknown,
}

/// A link's counters between two samples where the board was online at both.
#[derive(Clone, Copy, Debug)]
struct Delta {
    at: DateTime<Utc>,
    frames: u64,
    errors: u64,
}

#[derive(Debug, Default)]
struct Watch {
    bad_since: Option<DateTime<Utc>>,
    good_since: Option<DateTime<Utc>>,
    open: Option<Incident>,
    /// Link error share only.
    window: VecDeque<Delta>,
    last: Option<LinkSample>,
    /// Seen in the current sample.
    seen: bool,
}

/// The incidents and what is needed to decide them. Pure: see the module documentation.
#[derive(Debug, Default)]
pub struct Tracker {
    watches: BTreeMap<(Kind, String), Watch>,
}

/// How long a silent board must answer again before it counts as recovered.
pub fn silence_clears_after(limit: Duration) -> Duration {
    (limit / 10).clamp(Duration::from_secs(1), Duration::from_secs(30))
}

fn since(earlier: DateTime<Utc>, now: DateTime<Utc>) -> Duration {
    (now - earlier).to_std().unwrap_or_default()
}

impl Tracker {
    pub fn new() -> Tracker {
        Tracker::default()
    }

    /// The incidents open now, by kind and subject.
    pub fn open(&self) -> Vec<Incident> {
        self.watches
            .values()
            .filter_map(|w| w.open.clone())
            .collect()
    }

    /// Takes one sample under the limits of `config` (None: alerts off) and returns what
    /// started and what ended.
    pub fn observe(&mut self, config: Option<&Alerts>, sample: &Sample) -> Vec<Event> {
        let now = sample.at;
        let mut events = Vec::new();
        for watch in self.watches.values_mut() {
            watch.seen = false;
        }
        if let Some(config) = config {
            for d in &sample.displays {
                if let Some(limit) = config.board_silent_for {
                    let reading = match d.link {
                        None => Reading::Unknown,
                        Some(link) if link.online => Reading::Good,
                        // Silent since its last answer, which for a board showing a still
                        // picture can be a minute before the link noticed.
                        Some(link) => Reading::Bad(
                            Detail::Silent {
                                silent_for: Duration::ZERO,
                            },
                            link.last_answer,
                        ),
                    };
                    self.step(
                        (Kind::BoardSilent, &d.id, &d.name),
                        reading,
                        (limit, silence_clears_after(limit)),
                        now,
                        &mut events,
                    );
                }
                if let Some(limit) = config.link_errors_above {
                    let watch = self
                        .watches
                        .entry((Kind::LinkErrors, d.id.clone()))
                        .or_default();
                    let reading = error_share(watch, d.link, limit, now);
                    self.step(
                        (Kind::LinkErrors, &d.id, &d.name),
                        reading,
                        (Duration::ZERO, Duration::ZERO),
                        now,
                        &mut events,
                    );
                }
            }
            if let Some(limit) = config.gateway_failures {
                for g in &sample.gateways {
                    let reading = match &g.health {
                        None => Reading::Unknown,
                        Some(h) if h.consecutive_failures >= limit => Reading::Bad(
                            Detail::GatewayFailures {
                                count: h.consecutive_failures,
                                last: h.last_failure.clone(),
                            },
                            None,
                        ),
                        Some(h) if h.consecutive_failures == 0 && h.last_success.is_some() => {
                            Reading::Good
                        }
                        Some(_) => Reading::Unknown,
                    };
                    self.step(
                        (Kind::GatewayFailing, &g.id, &g.id),
                        reading,
                        (Duration::ZERO, Duration::ZERO),
                        now,
                        &mut events,
                    );
                }
            }
        }
        // Whatever was not looked at has left the site or is no longer watched.
        let gone: Vec<(Kind, String)> = self
            .watches
            .iter()
            .filter(|(_, w)| !w.seen)
            .map(|(k, _)| k.clone())
            .collect();
        for key in gone {
            if let Some(incident) = self.watches.remove(&key).and_then(|w| w.open) {
                events.push(Event {
                    state: State::Resolved,
                    incident,
                    at: now,
                    unwatched: true,
                });
            }
        }
        events
    }

    /// Moves one subject's state on with `reading`: fires once the condition has held for
    /// `holds.0`, resolves once it has been clear for `holds.1`.
    fn step(
        &mut self,
        (kind, subject, name): (Kind, &str, &str),
        reading: Reading,
        (fire_after, clear_after): (Duration, Duration),
        now: DateTime<Utc>,
        events: &mut Vec<Event>,
    ) {
        let watch = self.watches.entry((kind, subject.to_owned())).or_default();
        watch.seen = true;
        match reading {
            Reading::Bad(detail, began) => {
                watch.good_since = None;
                let bad_since = *watch
                    .bad_since
                    .get_or_insert(began.map_or(now, |b| b.min(now)));
                if watch.open.is_none() && since(bad_since, now) >= fire_after {
                    let detail = match detail {
                        Detail::Silent { .. } => Detail::Silent {
                            silent_for: since(bad_since, now),
                        },
                        other => other,
                    };
                    let incident = Incident {
                        kind,
                        subject: subject.to_owned(),
                        name: name.to_owned(),
                        since: bad_since,
                        detail,
                    };
                    watch.open = Some(incident.clone());
                    events.push(Event {
                        state: State::Firing,
                        incident,
                        at: now,
                        unwatched: false,
                    });
                }
            }
            Reading::Good => {
                watch.bad_since = None;
                let good_since = *watch.good_since.get_or_insert(now);
                if since(good_since, now) >= clear_after
                    && let Some(incident) = watch.open.take()
                {
                    events.push(Event {
                        state: State::Resolved,
                        incident,
                        at: now,
                        unwatched: false,
                    });
                }
            }
            Reading::Unknown => {}
        }
    }
}

/// A link's share of failed exchanges over [`ERROR_WINDOW`], counting only the time the board
/// was online at both ends of a sample interval: a silent board's failed probes are the
/// silence alert's business, and must not make a link alert when the board comes back.
fn error_share(
    watch: &mut Watch,
    link: Option<LinkSample>,
    limit: f64,
    now: DateTime<Utc>,
) -> Reading {
    let Some(link) = link else {
        return Reading::Unknown;
    };
    if let Some(last) = watch.last
        && last.online
        && link.online
    {
        // A rebuilt link starts its counters again.
        let delta = |now: u64, before: u64| if now >= before { now - before } else { now };
        watch.window.push_back(Delta {
            at: now,
            frames: delta(link.frames, last.frames),
            errors: delta(link.errors, last.errors),
        });
    }
    watch.last = Some(link);
    let horizon = now - chrono::Duration::from_std(ERROR_WINDOW).unwrap_or_default();
    while watch.window.front().is_some_and(|d| d.at <= horizon) {
        watch.window.pop_front();
    }
    let failed: u64 = watch.window.iter().map(|d| d.errors).sum();
    let exchanges: u64 = failed + watch.window.iter().map(|d| d.frames).sum::<u64>();
    if exchanges < MIN_EXCHANGES {
        return Reading::Unknown;
    }
    let share = failed as f64 / exchanges as f64;
    if share > limit {
        Reading::Bad(Detail::ErrorRate { failed, exchanges }, None)
    } else if share <= limit / 2.0 {
        Reading::Good
    } else {
        Reading::Unknown
    }
}

// -- words ------------------------------------------------------------------------------------

/// A duration as people say it: seconds under a minute, minutes under an hour.
pub fn spoken(lang: Lang, d: Duration) -> String {
    let secs = d.as_secs();
    if secs < 60 {
        tr(lang, "alerts.duration.seconds", &[("n", &secs.to_string())])
    } else if secs < 3600 {
        tr(
            lang,
            "alerts.duration.minutes",
            &[("n", &(secs / 60).to_string())],
        )
    } else {
        tr(
            lang,
            "alerts.duration.hours",
            &[
                ("h", &(secs / 3600).to_string()),
                ("m", &(secs % 3600 / 60).to_string()),
            ],
        )
    }
}

/// What happened, in one sentence of `lang`; `tz` is the site's, for clock times.
pub fn describe(lang: Lang, event: &Event, tz: chrono_tz::Tz) -> String {
    let i = &event.incident;
    let local_since = i.since.with_timezone(&tz);
    let since = if local_since.date_naive() == event.at.with_timezone(&tz).date_naive() {
        local_since.format("%H:%M").to_string()
    } else {
        local_since.format("%m-%d %H:%M").to_string()
    };
    let lasted = spoken(lang, event.lasted());
    if event.state == State::Resolved {
        let key = if event.unwatched {
            "alerts.resolved.unwatched"
        } else {
            match i.kind {
                Kind::BoardSilent => "alerts.resolved.board_silent",
                Kind::LinkErrors => "alerts.resolved.link_errors",
                Kind::GatewayFailing => "alerts.resolved.gateway_failing",
            }
        };
        return tr(lang, key, &[("name", &i.name), ("lasted", &lasted)]);
    }
    match &i.detail {
        Detail::Silent { silent_for } => tr(
            lang,
            "alerts.firing.board_silent",
            &[
                ("name", &i.name),
                ("for", &spoken(lang, *silent_for)),
                ("since", &since),
            ],
        ),
        Detail::ErrorRate { failed, exchanges } => tr(
            lang,
            "alerts.firing.link_errors",
            &[
                ("name", &i.name),
                ("failed", &failed.to_string()),
                ("exchanges", &exchanges.to_string()),
                (
                    "rate",
                    &format!(
                        "{:.0}%",
                        *failed as f64 * 100.0 / (*exchanges).max(1) as f64
                    ),
                ),
            ],
        ),
        Detail::GatewayFailures { count, last } => tr(
            lang,
            "alerts.firing.gateway_failing",
            &[
                ("name", &i.name),
                ("count", &count.to_string()),
                ("reason", last.as_deref().unwrap_or("-")),
            ],
        ),
    }
}

/// The SMS the technicians get: short, in Chinese (the signature is added by the gateway).
pub fn sms_text(event: &Event, tz: chrono_tz::Tz) -> String {
    let what = describe(Lang::Zh, event, tz);
    let key = match event.state {
        State::Firing => "alerts.sms.firing",
        State::Resolved => "alerts.sms.resolved",
    };
    tr(Lang::Zh, key, &[("what", &what)])
}

/// The webhook's JSON body.
pub fn webhook_body(site: &str, event: &Event, lang: Lang, tz: chrono_tz::Tz) -> serde_json::Value {
    let i = &event.incident;
    let mut body = serde_json::json!({
        "id": event.id(),
        "site": site,
        "kind": i.kind,
        "state": event.state,
        "subject": i.subject,
        "name": i.name,
        "since": i.since.to_rfc3339(),
        "at": event.at.to_rfc3339(),
        "detail": describe(lang, event, tz),
    });
    if event.state == State::Resolved {
        body["lasted_seconds"] = serde_json::json!(event.lasted().as_secs());
        body["unwatched"] = serde_json::json!(event.unwatched);
    }
    body
}

// -- the task ---------------------------------------------------------------------------------

/// What the status API and `/metrics` say of alerts.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct AlertsStatus {
    /// The site has an `alerts:` section.
    pub enabled: bool,
    pub open: Vec<OpenJson>,
    /// Deliveries that went out (a webhook accepted, an SMS accepted by a gateway).
    pub sent: u64,
    /// Deliveries that did not.
    pub failed: u64,
    pub fired: u64,
    pub resolved: u64,
    #[serde(skip)]
    pub by_channel: BTreeMap<(&'static str, &'static str), u64>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct OpenJson {
    pub kind: Kind,
    pub subject: String,
    pub name: String,
    pub since: DateTime<Utc>,
}

impl AlertsStatus {
    fn delivered(&mut self, channel: &'static str, ok: bool) {
        if ok {
            self.sent += 1;
        } else {
            self.failed += 1;
        }
        *self
            .by_channel
            .entry((channel, if ok { "sent" } else { "failed" }))
            .or_default() += 1;
    }
}

/// Prometheus lines for `/metrics`.
pub fn write_metrics(status: &AlertsStatus, out: &mut String) {
    use std::fmt::Write as _;
    let _ = writeln!(
        out,
        "# HELP gongkai_alerts_open Incidents open now.\n# TYPE gongkai_alerts_open gauge\ngongkai_alerts_open {}",
        status.open.len()
    );
    let _ = writeln!(
        out,
        "# HELP gongkai_alerts_fired_total Incidents that fired.\n# TYPE gongkai_alerts_fired_total counter\ngongkai_alerts_fired_total {}",
        status.fired
    );
    let _ = writeln!(
        out,
        "# HELP gongkai_alerts_resolved_total Incidents that ended.\n# TYPE gongkai_alerts_resolved_total counter\ngongkai_alerts_resolved_total {}",
        status.resolved
    );
    let _ = writeln!(
        out,
        "# HELP gongkai_alert_deliveries_total Alert messages by channel and result.\n# TYPE gongkai_alert_deliveries_total counter"
    );
    for channel in ["webhook", "sms"] {
        for result in ["sent", "failed"] {
            let n = status
                .by_channel
                .get(&(channel, result))
                .copied()
                .unwrap_or(0);
            let _ = writeln!(
                out,
                "gongkai_alert_deliveries_total{{channel=\"{channel}\",result=\"{result}\"}} {n}"
            );
        }
    }
}

fn lock(status: &Mutex<AlertsStatus>) -> std::sync::MutexGuard<'_, AlertsStatus> {
    status
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// What the daemon knows now, as the tracker reads it.
fn sample(shared: &Shared, model: &Model, at: DateTime<Utc>) -> Sample {
    let displays = {
        let views = shared
            .displays
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        model
            .displays
            .iter()
            .map(|d| DisplaySample {
                id: d.id.clone(),
                name: d.name.clone(),
                link: views.get(&d.id).map(|v| {
                    let h = v.probe.health();
                    // An MQTT board's own will says it has gone even while the broker is up.
                    let board_gone = h.kind == "mqtt" && h.detail.as_deref() == Some("offline");
                    LinkSample {
                        online: h.online && !board_gone,
                        frames: h.frames,
                        errors: h.errors,
                        last_answer: h.last_ack_seconds_ago.and_then(|ago| {
                            Duration::try_from_secs_f64(ago)
                                .ok()
                                .and_then(|ago| chrono::Duration::from_std(ago).ok())
                                .map(|ago| at - ago)
                        }),
                    }
                }),
            })
            .collect()
    };
    let health = shared
        .sms
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .as_ref()
        .map(|d| d.gateway_health());
    let gateways = model
        .site
        .sms
        .iter()
        .flat_map(|s| &s.gateways)
        .filter(|g| !matches!(g.kind, SmsGatewayKind::Outbox))
        .map(|g| GatewaySample {
            id: g.id.clone(),
            health: health
                .as_ref()
                .and_then(|all| all.iter().find(|h| h.id == g.id).cloned()),
        })
        .collect();
    Sample {
        at,
        displays,
        gateways,
    }
}

/// Samples and tracks until `stop` turns true; deliveries still under way then get a few
/// seconds to finish.
pub async fn run(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let (tx, rx) = mpsc::channel::<(Arc<Model>, Event)>(256);
    let worker = tokio::spawn(deliver_all(shared.clone(), rx));
    let mut tracker = Tracker::new();
    let mut interval = tokio::time::interval(SAMPLE_EVERY);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = interval.tick() => {}
            _ = stop.changed() => break,
        }
        if *stop.borrow() {
            break;
        }
        let model = shared.model();
        let config = model.site.alerts.as_ref();
        if config.is_none() && tracker.open().is_empty() {
            // Switched off: when it comes back, it starts from what it sees then.
            tracker = Tracker::new();
            lock(&shared.alerts).enabled = false;
            continue;
        }
        let events = tracker.observe(config, &sample(&shared, &model, Utc::now()));
        {
            let mut status = lock(&shared.alerts);
            status.enabled = config.is_some();
            status.open = tracker
                .open()
                .into_iter()
                .map(|i| OpenJson {
                    kind: i.kind,
                    subject: i.subject,
                    name: i.name,
                    since: i.since,
                })
                .collect();
            for event in &events {
                match event.state {
                    State::Firing => status.fired += 1,
                    State::Resolved => status.resolved += 1,
                }
            }
        }
        for event in events {
            let text = describe(shared.lang, &event, model.site.timezone);
            match event.state {
                State::Firing => tracing::warn!(
                    kind = event.incident.kind.name(),
                    subject = %event.incident.subject,
                    "alert: {text}"
                ),
                State::Resolved => tracing::info!(
                    kind = event.incident.kind.name(),
                    subject = %event.incident.subject,
                    "alert resolved: {text}"
                ),
            }
            if tx.try_send((model.clone(), event)).is_err() {
                tracing::error!("alerts: too many undelivered alerts; this one is only logged");
                lock(&shared.alerts).delivered("webhook", false);
            }
        }
    }
    drop(tx);
    if tokio::time::timeout(Duration::from_secs(3), worker)
        .await
        .is_err()
    {
        tracing::warn!("alerts: deliveries under way were cut short by the stop");
    }
}

/// Delivers events one after the other, so a recovery never overtakes its alert.
async fn deliver_all(shared: Arc<Shared>, mut rx: mpsc::Receiver<(Arc<Model>, Event)>) {
    let client = match Client::new(Timeouts {
        connect: Duration::from_secs(5),
        total: Duration::from_secs(10),
    }) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "alerts: no HTTP client; alerts are only logged");
            while rx.recv().await.is_some() {}
            return;
        }
    };
    while let Some((model, event)) = rx.recv().await {
        let Some(config) = model.site.alerts.as_ref() else {
            continue;
        };
        let webhook = async {
            if let Some(hook) = &config.webhook {
                let ok = post_webhook(&shared, &client, &model, hook, &event).await;
                lock(&shared.alerts).delivered("webhook", ok);
            }
        };
        let sms = async {
            if !config.sms_to.is_empty() {
                let ok = send_sms(&shared, &client, &model, &config.sms_to, &event).await;
                lock(&shared.alerts).delivered("sms", ok);
            }
        };
        tokio::join!(webhook, sms);
    }
}

fn read_secret(
    shared: &Shared,
    source: &crate::config::model::SecretSource,
) -> Result<crate::sms::secret::Secret, crate::sms::secret::SecretError> {
    crate::sms::secret::load(source, &shared.site_dir, |k| std::env::var(k).ok())
}

/// Posts `event`; true when the receiver took it (2xx). Retries what may succeed later.
async fn post_webhook(
    shared: &Shared,
    client: &Client,
    model: &Model,
    hook: &crate::config::alerts::Webhook,
    event: &Event,
) -> bool {
    let mut headers = vec![("Content-Type".to_owned(), "application/json".to_owned())];
    if let Some(source) = &hook.token {
        match read_secret(shared, source) {
            Ok(token) => headers.push((
                "Authorization".to_owned(),
                format!("Bearer {}", token.expose()),
            )),
            Err(e) => {
                tracing::error!(error = %e, "alerts: the webhook's token cannot be read; not posted");
                return false;
            }
        }
    }
    let body = webhook_body(&model.site.name, event, shared.lang, model.site.timezone);
    let request = HttpRequest {
        method: "POST",
        url: hook.url.clone(),
        headers,
        body: body.to_string().into_bytes(),
    };
    let mut pause = WEBHOOK_BACKOFF;
    for attempt in 1..=WEBHOOK_ATTEMPTS {
        let again = match client.call(&request).await {
            Ok(answer) if (200..300).contains(&answer.status) => return true,
            // A receiver that refuses the request will refuse it again.
            Ok(answer) if (400..500).contains(&answer.status) && answer.status != 429 => {
                tracing::error!(
                    status = answer.status,
                    "alerts: the webhook refused the alert"
                );
                return false;
            }
            Ok(answer) => format!("HTTP {}", answer.status),
            Err(CallError::Invalid(why)) => {
                tracing::error!(error = %why, "alerts: the webhook request cannot be made");
                return false;
            }
            Err(e) => e.to_string(),
        };
        tracing::warn!(attempt, error = %again, "alerts: the webhook did not take the alert");
        if attempt < WEBHOOK_ATTEMPTS {
            tokio::time::sleep(pause).await;
            pause *= 2;
        }
    }
    false
}

/// Sends `event` to `numbers` through the first gateway (in routing order) that carries free
/// text and accepts it; true when one did.
async fn send_sms(
    shared: &Shared,
    client: &Client,
    model: &Model,
    numbers: &[String],
    event: &Event,
) -> bool {
    let Some(sms) = &model.site.sms else {
        return false;
    };
    let text = sms_text(event, model.site.timezone);
    for g in &sms.gateways {
        if !carries_alerts(&g.kind, g.template.is_some()) {
            continue;
        }
        let gateway: Box<dyn Gateway + Send + Sync> = match &g.kind {
            SmsGatewayKind::Kannel(k) => Box::new(k.clone()),
            SmsGatewayKind::YunMas(y) => Box::new(y.clone()),
            _ => continue,
        };
        let Some(source) = &g.secret else { continue };
        let secret = match read_secret(shared, source) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(gateway = %g.id, error = %e, "alerts: the gateway's secret cannot be read");
                continue;
            }
        };
        let mut all_taken = true;
        for chunk in numbers.chunks(gateway.max_numbers().max(1)) {
            let batch = Batch {
                numbers: chunk.to_vec(),
                signature: sms.signature.clone(),
                content: Content::Text(text.clone()),
            };
            let now = Utc::now();
            let nonce = format!("alert-{}-{:016x}", now.timestamp(), fastrand::u64(..));
            let request = match gateway.build(&batch, &secret, now, &nonce) {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!(gateway = %g.id, error = %e, "alerts: the SMS cannot be built");
                    all_taken = false;
                    break;
                }
            };
            match client.call(&request).await {
                Ok(answer) => match gateway.parse(answer.status, &answer.body) {
                    Outcome::Accepted { .. } => {}
                    Outcome::Unknown { why } => {
                        // It may have gone out: another gateway would send a second copy.
                        tracing::warn!(gateway = %g.id, why = %why, "alerts: the SMS may or may not have been sent");
                        return false;
                    }
                    Outcome::Refused { code, .. } | Outcome::Retry { code } => {
                        tracing::warn!(gateway = %g.id, code = %code, "alerts: the gateway did not take the SMS");
                        all_taken = false;
                        break;
                    }
                },
                Err(CallError::InDoubt(why)) => {
                    tracing::warn!(gateway = %g.id, why = %why, "alerts: the SMS may or may not have been sent");
                    return false;
                }
                Err(e) => {
                    tracing::warn!(gateway = %g.id, error = %e, "alerts: the gateway did not take the SMS");
                    all_taken = false;
                    break;
                }
            }
        }
        if all_taken {
            tracing::info!(gateway = %g.id, recipients = numbers.len(), "alerts: SMS sent");
            return true;
        }
    }
    tracing::error!("alerts: no gateway took the alert SMS");
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sms::dispatch::GatewayHealth;

    fn t(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + secs, 0).unwrap()
    }

    fn config() -> Alerts {
        Alerts {
            board_silent_for: Some(Duration::from_secs(300)),
            link_errors_above: Some(0.2),
            gateway_failures: Some(5),
            sms_to: vec![],
            webhook: None,
        }
    }

    fn board(online: bool, frames: u64, errors: u64) -> Sample {
        board_at(0, online, frames, errors)
    }

    fn board_at(secs: i64, online: bool, frames: u64, errors: u64) -> Sample {
        Sample {
            at: t(secs),
            displays: vec![DisplaySample {
                id: "square".into(),
                name: "钨都广场屏".into(),
                link: Some(LinkSample {
                    online,
                    frames,
                    errors,
                    last_answer: None,
                }),
            }],
            gateways: vec![],
        }
    }

    /// Observes the same board state every `step` seconds from `from` to `to` (inclusive).
    fn run(
        tracker: &mut Tracker,
        c: &Alerts,
        from: i64,
        to: i64,
        step: i64,
        state: impl Fn(i64) -> (bool, u64, u64),
    ) -> Vec<Event> {
        let mut events = Vec::new();
        let mut s = from;
        while s <= to {
            let (online, frames, errors) = state(s);
            events.extend(tracker.observe(Some(c), &board_at(s, online, frames, errors)));
            s += step;
        }
        events
    }

    #[test]
    fn a_silent_board_fires_once_and_recovers_once() {
        let c = Alerts {
            link_errors_above: None,
            ..config()
        };
        let mut tracker = Tracker::new();
        // Online for a minute, then silent for an hour.
        let events = run(&mut tracker, &c, 0, 3660, 5, |s| (s < 60, 0, 0));
        assert_eq!(events.len(), 1, "{events:?}");
        let e = &events[0];
        assert_eq!(e.state, State::Firing);
        assert_eq!(e.incident.kind, Kind::BoardSilent);
        assert_eq!(e.incident.since, t(60));
        assert_eq!(e.at, t(360));
        assert_eq!(
            e.incident.detail,
            Detail::Silent {
                silent_for: Duration::from_secs(300)
            }
        );
        assert_eq!(tracker.open().len(), 1);
        // Back: resolved after it answered for 30 s (a tenth of 5 min), once.
        let events = run(&mut tracker, &c, 3665, 7200, 5, |_| (true, 0, 0));
        assert_eq!(events.len(), 1, "{events:?}");
        assert_eq!(events[0].state, State::Resolved);
        assert_eq!(events[0].at, t(3665 + 30));
        assert_eq!(events[0].lasted(), Duration::from_secs(3695 - 60));
        assert!(tracker.open().is_empty());
    }

    #[test]
    fn silence_is_counted_from_the_boards_last_answer() {
        let c = Alerts {
            link_errors_above: None,
            ..config()
        };
        let mut tracker = Tracker::new();
        // A still picture: last answered at 10 s, noticed offline at the heartbeat at 70 s.
        let mut events = Vec::new();
        for s in (70..=400).step_by(5) {
            let mut sample = board_at(s, false, 0, 0);
            if let Some(link) = sample.displays[0].link.as_mut() {
                link.last_answer = Some(t(10));
            }
            events.extend(tracker.observe(Some(&c), &sample));
        }
        assert_eq!(events.len(), 1, "{events:?}");
        assert_eq!(events[0].incident.since, t(10));
        assert_eq!(events[0].at, t(310));
    }

    #[test]
    fn a_board_answering_briefly_does_not_end_the_incident() {
        let c = Alerts {
            link_errors_above: None,
            ..config()
        };
        let mut tracker = Tracker::new();
        let fired = run(&mut tracker, &c, 0, 400, 5, |_| (false, 0, 0));
        assert_eq!(fired.len(), 1);
        // Ten seconds of answers, then silent again: no recovery and no second alert.
        let flap = run(&mut tracker, &c, 405, 2000, 5, |s| (s < 415, 0, 0));
        assert!(flap.is_empty(), "{flap:?}");
        assert_eq!(tracker.open().len(), 1);
    }

    #[test]
    fn a_short_silence_does_not_fire() {
        let c = config();
        let mut tracker = Tracker::new();
        let events = run(&mut tracker, &c, 0, 1000, 5, |s| {
            (!(100..350).contains(&s), 0, 0)
        });
        assert!(events.is_empty(), "{events:?}");
    }

    #[test]
    fn link_errors_with_a_small_sample_do_not_fire() {
        let c = Alerts {
            board_silent_for: None,
            ..config()
        };
        let mut tracker = Tracker::new();
        // One failure in two exchanges: 50 %, but too few to say anything.
        let events = run(&mut tracker, &c, 0, 300, 5, |s| {
            if s >= 100 { (true, 1, 1) } else { (true, 0, 0) }
        });
        assert!(events.is_empty(), "{events:?}");
    }

    #[test]
    fn link_errors_above_the_limit_fire_once_and_clear_below_half_of_it() {
        let c = Alerts {
            board_silent_for: None,
            ..config()
        };
        let mut tracker = Tracker::new();
        // A frame every 10 s, and from 100 s on one failure per frame: 50 %.
        let events = run(&mut tracker, &c, 0, 600, 10, |s| {
            (true, (s / 10) as u64, (s.max(100) as u64 - 100) / 10)
        });
        assert_eq!(events.len(), 1, "{events:?}");
        assert_eq!(events[0].incident.kind, Kind::LinkErrors);
        assert!(matches!(
            events[0].incident.detail,
            Detail::ErrorRate { failed, exchanges } if failed * 100 / exchanges > 20
        ));
        // Errors stop at 600 s; the share falls under 10 % only once the window has moved on.
        let errors_then = 50;
        let events = run(&mut tracker, &c, 610, 2000, 10, |s| {
            (true, (s / 10) as u64, errors_then)
        });
        assert_eq!(events.len(), 1, "{events:?}");
        assert_eq!(events[0].state, State::Resolved);
        assert!(events[0].at > t(1000), "{:?}", events[0].at);
    }

    #[test]
    fn probes_failing_while_silent_are_not_a_link_error_incident() {
        let c = config();
        let mut tracker = Tracker::new();
        let mut events = run(&mut tracker, &c, 0, 100, 5, |s| (true, (s / 5) as u64, 0));
        // Silent for 20 min with 30 failed probes, then back and clean.
        events.extend(run(&mut tracker, &c, 105, 1300, 5, |_| (false, 20, 30)));
        events.extend(run(&mut tracker, &c, 1305, 2000, 5, |s| {
            (true, 20 + (s / 5) as u64, 30)
        }));
        let kinds: Vec<(Kind, State)> = events.iter().map(|e| (e.incident.kind, e.state)).collect();
        assert_eq!(
            kinds,
            [
                (Kind::BoardSilent, State::Firing),
                (Kind::BoardSilent, State::Resolved)
            ]
        );
    }

    fn gateway(at: i64, failures: u32, success: Option<i64>) -> Sample {
        Sample {
            at: t(at),
            displays: vec![],
            gateways: vec![GatewaySample {
                id: "kannel".into(),
                health: Some(GatewayHealth {
                    id: "kannel".into(),
                    consecutive_failures: failures,
                    last_success: success.map(t),
                    last_failure: (failures > 0).then(|| "403 refused".into()),
                }),
            }],
        }
    }

    #[test]
    fn a_gateway_failing_repeatedly_fires_once_and_recovers_on_a_success() {
        let c = config();
        let mut tracker = Tracker::new();
        let mut events = Vec::new();
        for (at, failures) in [(0, 1), (1, 4), (2, 5), (3, 6), (4, 9)] {
            events.extend(tracker.observe(Some(&c), &gateway(at, failures, None)));
        }
        assert_eq!(events.len(), 1, "{events:?}");
        assert_eq!(
            events[0].incident.detail,
            Detail::GatewayFailures {
                count: 5,
                last: Some("403 refused".into())
            }
        );
        // The dispatcher was rebuilt (a reload): counters at zero but no success yet.
        assert!(tracker.observe(Some(&c), &gateway(5, 0, None)).is_empty());
        let back = tracker.observe(Some(&c), &gateway(6, 0, Some(6)));
        assert_eq!(back.len(), 1);
        assert_eq!(back[0].state, State::Resolved);
    }

    #[test]
    fn a_subject_removed_from_the_site_is_closed_as_no_longer_watched() {
        let c = config();
        let mut tracker = Tracker::new();
        run(&mut tracker, &c, 0, 400, 5, |_| (false, 0, 0));
        assert_eq!(tracker.open().len(), 1);
        let empty = Sample {
            at: t(405),
            displays: vec![],
            gateways: vec![],
        };
        let events = tracker.observe(Some(&c), &empty);
        assert_eq!(events.len(), 1);
        assert!(events[0].unwatched);
        assert_eq!(events[0].state, State::Resolved);
        assert!(tracker.observe(Some(&c), &empty).is_empty());
        // Alerts switched off altogether: the same.
        let mut tracker = Tracker::new();
        run(&mut tracker, &c, 0, 400, 5, |_| (false, 0, 0));
        let events = tracker.observe(None, &board(false, 0, 0));
        assert_eq!(events.len(), 1);
        assert!(events[0].unwatched);
    }

    #[test]
    fn a_display_without_a_link_to_read_keeps_its_incident() {
        let c = config();
        let mut tracker = Tracker::new();
        run(&mut tracker, &c, 0, 400, 5, |_| (false, 0, 0));
        let mut relinking = board_at(405, false, 0, 0);
        relinking.displays[0].link = None;
        assert!(tracker.observe(Some(&c), &relinking).is_empty());
        assert_eq!(tracker.open().len(), 1);
    }

    #[test]
    fn the_sms_is_short_chinese_with_the_name_and_the_local_time() {
        let event = Event {
            state: State::Firing,
            incident: Incident {
                kind: Kind::BoardSilent,
                subject: "square".into(),
                name: "钨都广场屏".into(),
                // 21:03 in Shanghai.
                since: DateTime::parse_from_rfc3339("2026-11-29T21:03:00+08:00")
                    .unwrap()
                    .with_timezone(&Utc),
                detail: Detail::Silent {
                    silent_for: Duration::from_secs(300),
                },
            },
            at: DateTime::parse_from_rfc3339("2026-11-29T21:08:00+08:00")
                .unwrap()
                .with_timezone(&Utc),
            unwatched: false,
        };
        let tz = chrono_tz::Asia::Shanghai;
        assert_eq!(
            sms_text(&event, tz),
            "告警：钨都广场屏 5 分钟无应答（自 21:03 起）"
        );
        let resolved = Event {
            state: State::Resolved,
            ..event.clone()
        };
        assert_eq!(
            sms_text(&resolved, tz),
            "恢复：钨都广场屏 重新应答（中断 5 分钟）"
        );
        let body = webhook_body("大余县政务公开", &event, Lang::En, tz);
        assert_eq!(body["state"], "firing");
        assert_eq!(body["kind"], "board_silent");
        assert_eq!(body["subject"], "square");
        assert_eq!(body["since"], "2026-11-29T13:03:00+00:00");
    }
}
