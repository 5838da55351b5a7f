//! The admin listener: status API, live page, metrics and control.
//!
//! Owns the HTTP surface operators and monitoring use: `/api/displays` (what each board shows,
//! its link's health and counters), `/api/displays/{id}/frame.png` (the picture now, in LED
//! look), `/api/events` (server-sent events: a display id each time its picture changes),
//! `/api/status` (the running model and the last refused change), `/api/plan`, `/metrics`
//! (Prometheus text), `/healthz`, the live page at `/`, and the control endpoints
//! (`POST /api/interrupt`, `DELETE /api/interrupt/{id}`), which need the admin token when the
//! site sets one and are rate-limited. Reads only what the supervisor shares; changes go to
//! the supervisor as [`Control`] messages.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{delete, get, post};
use chrono::{DateTime, Utc};
use tokio::sync::oneshot;

use super::links::LinkHealth;
use super::{Control, Notice, ReviewError, Shared};
use crate::preview::{LedLook, write_png};

/// The live page: one file, no outside resources (it runs on a closed network).
const LIVE_PAGE: &str = include_str!("live.html");
/// Control requests allowed per minute, all clients together.
const CONTROL_PER_MINUTE: u64 = 30;

pub fn admin_router(shared: Arc<Shared>) -> axum::Router {
    axum::Router::new()
        .route("/", get(live_page))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/api/status", get(status))
        .route("/api/displays", get(displays))
        .route("/api/displays/{id}", get(display))
        .route("/api/displays/{id}/frame.png", get(frame_png))
        .route("/api/events", get(events))
        .route("/api/plan", get(plan))
        .route("/api/interrupts", get(interrupts))
        .route("/api/interrupt", post(add_interrupt))
        .route("/api/interrupt/{id}", delete(end_interrupt))
        .route("/api/sms", get(sms_status))
        .route("/api/withdrawn", get(withdrawn))
        .route("/api/withdraw", post(withdraw))
        .route("/api/withdraw/{item}", delete(restore))
        .route("/api/reviews", get(reviews))
        .route("/api/review", post(review))
        .with_state(shared)
}

/// The public listener's routes: the kiosk page and its API (read-only).
pub fn public_router(shared: Arc<Shared>) -> axum::Router {
    let callbacks = axum::Router::new()
        .route(
            "/sms/{gateway}/{kind}",
            post(sms_callback).get(sms_callback),
        )
        .with_state(shared.clone());
    crate::kiosk::web::router(Arc::new(KioskView(shared)))
        .route("/healthz", get(healthz))
        .merge(callbacks)
}

#[derive(serde::Deserialize)]
struct CallbackQuery {
    token: Option<String>,
}

/// A gateway's callback: its URL carries the public listener's token (`?token=`), which is
/// how every provider lets a receiver tell its own callbacks from anyone's; the body (or the
/// query, for gateways that call with GET, as Kannel does) is the provider's report.
async fn callback(
    shared: &Shared,
    gateway: &str,
    token: Option<&str>,
    raw_query: Option<&str>,
    body: &[u8],
    reply: bool,
) -> Response {
    if let Some(expected) = &shared.public_token
        && !constant_time_eq(token.unwrap_or("").as_bytes(), expected.expose().as_bytes())
    {
        return (StatusCode::UNAUTHORIZED, "a valid token is required\n").into_response();
    }
    let dispatcher = shared
        .sms
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    let Some(dispatcher) = dispatcher else {
        return (StatusCode::SERVICE_UNAVAILABLE, "the site sends no SMS\n").into_response();
    };
    let input: Vec<u8> = if body.is_empty() {
        raw_query.unwrap_or("").as_bytes().to_vec()
    } else {
        body.to_vec()
    };
    let gateway = gateway.to_owned();
    let result = tokio::task::spawn_blocking(move || {
        if reply {
            dispatcher
                .reply(&gateway, &input)
                .map(|opted| opted.len() as u64)
        } else {
            dispatcher.delivery_report(&gateway, &input)
        }
    })
    .await;
    match result {
        // Providers only look at the status; the count is for people reading logs.
        Ok(Ok(count)) => (StatusCode::OK, format!("ok {count}\n")).into_response(),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "SMS callback refused");
            (StatusCode::BAD_REQUEST, format!("{e}\n")).into_response()
        }
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

/// `/sms/{gateway}/report` (delivery reports) or `/sms/{gateway}/reply` (replies).
async fn sms_callback(
    State(shared): State<Arc<Shared>>,
    Path((gateway, kind)): Path<(String, String)>,
    Query(query): Query<CallbackQuery>,
    uri: axum::http::Uri,
    body: axum::body::Bytes,
) -> Response {
    let reply = match kind.as_str() {
        "report" => false,
        "reply" => true,
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    callback(
        &shared,
        &gateway,
        query.token.as_deref(),
        uri.query(),
        &body,
        reply,
    )
    .await
}

/// `GET /api/sms`: the ledger's rows by state, and the SMS side's own state.
async fn sms_status(State(shared): State<Arc<Shared>>) -> Response {
    let status = shared
        .sms_status
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    let dispatcher = shared
        .sms
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    let counts = match dispatcher {
        Some(d) => match tokio::task::spawn_blocking(move || d.status(None)).await {
            Ok(Ok(c)) => Some(serde_json::json!({
                "queued": c.queued,
                "sending": c.sending,
                "sent": c.sent,
                "failed": c.failed,
                "unknown": c.unknown,
                "cancelled": c.cancelled,
            })),
            _ => None,
        },
        None => None,
    };
    Json(serde_json::json!({ "side": status, "deliveries": counts })).into_response()
}

/// What the kiosk routes read: the running site (without withdrawn items) and the time.
struct KioskView(Arc<Shared>);

impl crate::kiosk::web::KioskSource for KioskView {
    fn model(&self) -> Arc<crate::config::Model> {
        self.0.model()
    }

    fn now(&self) -> chrono::DateTime<chrono_tz::Tz> {
        Utc::now().with_timezone(&self.0.model().site.timezone)
    }
}

async fn live_page() -> Html<&'static str> {
    Html(LIVE_PAGE)
}

async fn healthz() -> &'static str {
    "ok\n"
}

#[derive(serde::Serialize)]
struct DisplayJson {
    #[serde(flatten)]
    status: super::display::DisplayStatus,
    link: super::links::LinkHealth,
}

fn display_json(view: &super::DisplayView) -> DisplayJson {
    DisplayJson {
        status: view.status.borrow().clone(),
        link: view.probe.health(),
    }
}

async fn displays(State(shared): State<Arc<Shared>>) -> Json<Vec<DisplayJson>> {
    let model = shared.model();
    let views = shared
        .displays
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    // In the site file's order, as operators think of them.
    Json(
        model
            .displays
            .iter()
            .filter_map(|d| views.get(&d.id))
            .map(display_json)
            .collect(),
    )
}

async fn display(State(shared): State<Arc<Shared>>, Path(id): Path<String>) -> Response {
    let views = shared
        .displays
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    match views.get(&id) {
        Some(view) => Json(display_json(view)).into_response(),
        None => not_found(&id),
    }
}

fn not_found(id: &str) -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(serde_json::json!({ "error": format!("no display `{id}`") })),
    )
        .into_response()
}

#[derive(serde::Deserialize)]
struct FrameQuery {
    scale: Option<u32>,
}

async fn frame_png(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    Query(query): Query<FrameQuery>,
) -> Response {
    let status = {
        let views = shared
            .displays
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match views.get(&id) {
            Some(view) => view.status.borrow().clone(),
            None => return not_found(&id),
        }
    };
    let frame = match (&status.picture, status.origin) {
        (Some(picture), Some(origin)) => {
            let elapsed = (Utc::now() - origin).to_std().unwrap_or_default();
            picture.frame_at(elapsed)
        }
        _ => None,
    };
    let frame = frame.unwrap_or_else(|| {
        crate::raster::frame::Frame::new(
            status.width.max(1),
            status.height.max(1),
            crate::config::model::PixelFormat::Mono,
        )
    });
    if status.touchscreen {
        // A touchscreen's page is a picture already: as it is.
        return match tokio::task::block_in_place(|| crate::kiosk::render::encode_png(&frame)) {
            Ok(png) => (
                [
                    (header::CONTENT_TYPE, HeaderValue::from_static("image/png")),
                    (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
                ],
                png,
            )
                .into_response(),
            Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
        };
    }
    // Big boards are drawn smaller, so a picture stays a reasonable download.
    let default_scale = if frame.width > 400 { 1 } else { 4 };
    let look = LedLook {
        scale: query.scale.unwrap_or(default_scale).clamp(1, 8),
        led_color: status
            .led_color
            .unwrap_or(crate::config::model::LedColor::Red),
    };
    let mut png = Vec::new();
    match tokio::task::block_in_place(|| write_png(&frame, &look, &mut png)) {
        Ok(()) => (
            [
                (header::CONTENT_TYPE, HeaderValue::from_static("image/png")),
                (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
            ],
            png,
        )
            .into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

async fn events(
    State(shared): State<Arc<Shared>>,
) -> Sse<impl futures_core::Stream<Item = Result<Event, Infallible>>> {
    let mut rx = shared.events.subscribe();
    let stream = async_stream(move |tx| async move {
        loop {
            match rx.recv().await {
                Ok(id) => {
                    if tx
                        .send(Event::default().event("display").data(id))
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
                // Too slow a reader: tell it to reload everything.
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                    if tx
                        .send(Event::default().event("all").data(""))
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            }
        }
    });
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}

/// A stream fed by a task through a small channel (no extra crate for one stream).
fn async_stream<F, Fut>(produce: F) -> impl futures_core::Stream<Item = Result<Event, Infallible>>
where
    F: FnOnce(tokio::sync::mpsc::Sender<Event>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    tokio::spawn(produce(tx));
    ReceiverStream(rx)
}

struct ReceiverStream(tokio::sync::mpsc::Receiver<Event>);

impl futures_core::Stream for ReceiverStream {
    type Item = Result<Event, Infallible>;
    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        self.0.poll_recv(cx).map(|e| e.map(Ok))
    }
}

#[derive(serde::Serialize)]
struct StatusJson {
    site: String,
    timezone: String,
    displays: usize,
    uptime_seconds: u64,
    reload: super::ReloadState,
    /// Open incidents and delivery counts of the alerts to the technicians.
    alerts: super::alerts::AlertsStatus,
    /// From a slot boundary to the picture handed to the link, over the last samples.
    slot_lateness: Lateness,
    /// Items kept off boards and SMS until reviewed far enough.
    held_for_review: Vec<super::gate::Held>,
}

#[derive(serde::Serialize)]
struct Lateness {
    samples: usize,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
}

async fn status(State(shared): State<Arc<Shared>>) -> Json<StatusJson> {
    let model = shared.model();
    let reload = shared
        .reload
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    Json(StatusJson {
        site: model.site.name.clone(),
        timezone: model.site.timezone.name().to_owned(),
        displays: model.displays.len(),
        uptime_seconds: shared.started.elapsed().as_secs(),
        reload,
        alerts: shared
            .alerts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone(),
        slot_lateness: {
            let (samples, q) = shared.lateness.quantiles(&[0.5, 0.99, 1.0]);
            Lateness {
                samples,
                p50_ms: q[0] * 1000.0,
                p99_ms: q[1] * 1000.0,
                max_ms: q[2] * 1000.0,
            }
        },
        held_for_review: shared
            .held
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone(),
    })
}

#[derive(serde::Deserialize)]
struct PlanQuery {
    display: String,
    hours: Option<u32>,
}

#[derive(serde::Serialize)]
struct PlanRow {
    start: String,
    end: String,
    kind: &'static str,
    playlist: Option<String>,
    item: Option<String>,
    title: String,
}

/// The rest of today (or `hours` ahead) for one display, as `gongkai plan` computes it.
async fn plan(State(shared): State<Arc<Shared>>, Query(q): Query<PlanQuery>) -> Response {
    let model = shared.model();
    let Some(idx) = model.displays.iter().position(|d| d.id == q.display) else {
        return not_found(&q.display);
    };
    let notices = shared
        .notices
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    let site_dir = shared.site_dir.clone();
    let hours = q.hours.unwrap_or(24).clamp(1, 24 * 7);
    let rows = tokio::task::spawn_blocking(move || -> Result<Vec<PlanRow>, String> {
        let interrupts: Vec<_> = notices.iter().map(|n| n.resolve(&model)).collect();
        let schedule = crate::schedule::Schedule::new(&model).map_err(|e| e.to_string())?;
        let durations = crate::durations::Durations::new(&model, &site_dir);
        let now = Utc::now().with_timezone(&model.site.timezone);
        let to = now + chrono::Duration::hours(i64::from(hours));
        let slots = schedule
            .timeline(&interrupts, idx, now, to, &|i, d| durations.of(i, d))
            .map_err(|e| e.to_string())?;
        Ok(slots
            .iter()
            .map(|s| {
                let shown = super::audit::Shown::of(&model, &s.what, &interrupts);
                PlanRow {
                    start: s.start.to_rfc3339(),
                    end: s.end.to_rfc3339(),
                    kind: shown.kind.as_str(),
                    playlist: shown.playlist,
                    item: shown.item,
                    title: shown.title,
                }
            })
            .collect())
    })
    .await;
    match rows {
        Ok(Ok(rows)) => Json(rows).into_response(),
        Ok(Err(e)) => (StatusCode::INTERNAL_SERVER_ERROR, e).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

async fn interrupts(State(shared): State<Arc<Shared>>) -> Json<Vec<Notice>> {
    let now = Utc::now();
    Json(
        shared
            .notices
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .filter(|n| n.end > now)
            .cloned()
            .collect(),
    )
}

/// Checks the rate limit and the token of a control request.
fn authorize(shared: &Shared, headers: &HeaderMap) -> Result<(), Box<Response>> {
    // A fixed window per minute since start, counted before the token is checked: enough to
    // stop a runaway script, and a guesser of tokens.
    let minute = shared.started.elapsed().as_secs() / 60;
    let packed = shared.control_requests.fetch_add(1, Ordering::Relaxed);
    let (seen_minute, count) = (packed >> 32, packed & 0xFFFF_FFFF);
    if seen_minute != minute {
        shared
            .control_requests
            .store((minute << 32) | 1, Ordering::Relaxed);
    } else if count >= CONTROL_PER_MINUTE {
        return Err(Box::new(
            (
                StatusCode::TOO_MANY_REQUESTS,
                [(header::RETRY_AFTER, "60")],
                Json(serde_json::json!({ "error": "too many control requests; wait a minute" })),
            )
                .into_response(),
        ));
    }
    if let Some(token) = &shared.token {
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        if !constant_time_eq(given.as_bytes(), token.expose().as_bytes()) {
            tracing::warn!("control request without a valid token");
            return Err(Box::new(
                (
                    StatusCode::UNAUTHORIZED,
                    [(header::WWW_AUTHENTICATE, "Bearer")],
                    Json(serde_json::json!({ "error": "a valid token is required" })),
                )
                    .into_response(),
            ));
        }
    }
    Ok(())
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `POST /api/interrupt`.
#[derive(Debug, serde::Deserialize)]
pub struct InterruptRequest {
    pub text: String,
    /// Display ids or group names; none: every display.
    #[serde(default)]
    pub displays: Vec<String>,
    /// How long, e.g. `30m`, `2h` (default 30 minutes) …
    #[serde(default)]
    pub duration: Option<String>,
    /// … or until when (RFC 3339).
    #[serde(default)]
    pub until: Option<DateTime<Utc>>,
    #[serde(default)]
    pub sms: bool,
    #[serde(default)]
    pub by: Option<String>,
}

fn bad_request(why: String) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(serde_json::json!({ "error": why })),
    )
        .into_response()
}

async fn add_interrupt(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Json(request): Json<InterruptRequest>,
) -> Response {
    if let Err(refused) = authorize(&shared, &headers) {
        return *refused;
    }
    let text = request.text.trim();
    if text.is_empty() {
        return bad_request("the text is empty".into());
    }
    if text
        .chars()
        .any(|c| c != '\n' && crate::layout::markup::is_hidden_control(c))
    {
        return bad_request(
            "the text contains control or bidirectional-override characters".into(),
        );
    }
    let start = Utc::now();
    let end = match (&request.until, &request.duration) {
        (Some(until), _) => *until,
        (None, Some(d)) => match crate::config::values::parse_duration(d) {
            Ok(d) => start + chrono::Duration::from_std(d).unwrap_or_default(),
            Err(_) => return bad_request(format!("`{d}` is not a duration such as 30m or 2h")),
        },
        (None, None) => start + chrono::Duration::minutes(30),
    };
    if end <= start {
        return bad_request("the interrupt would end before it starts".into());
    }
    let notice = Notice {
        id: format!("int-{}", start.format("%Y%m%d-%H%M%S%3f")),
        targets: request.displays.clone(),
        start,
        end,
        text: text.to_owned(),
        sms: request.sms,
        by: request.by.clone(),
    };
    let unknown = notice.unknown_targets(&shared.model());
    if !unknown.is_empty() {
        return bad_request(format!("no display or group named {}", unknown.join(", ")));
    }
    let (tx, rx) = oneshot::channel();
    if shared
        .control
        .send(Control::AddNotice(notice.clone(), tx))
        .await
        .is_err()
    {
        return (StatusCode::SERVICE_UNAVAILABLE, "stopping").into_response();
    }
    match rx.await {
        Ok(Ok(())) => (StatusCode::CREATED, Json(notice)).into_response(),
        // Shown, but not saved: say so, the operator must know it will not survive a restart.
        Ok(Err(why)) => (
            StatusCode::CREATED,
            Json(serde_json::json!({ "notice": notice, "warning": format!("not saved: {why}") })),
        )
            .into_response(),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "stopping").into_response(),
    }
}

#[derive(serde::Deserialize)]
struct EndQuery {
    /// Who ends it, for the audit.
    by: Option<String>,
}

async fn end_interrupt(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(query): Query<EndQuery>,
) -> Response {
    if let Err(refused) = authorize(&shared, &headers) {
        return *refused;
    }
    let (tx, rx) = oneshot::channel();
    if shared
        .control
        .send(Control::EndNotice(
            id.clone(),
            query.by.clone().unwrap_or_default(),
            tx,
        ))
        .await
        .is_err()
    {
        return (StatusCode::SERVICE_UNAVAILABLE, "stopping").into_response();
    }
    match rx.await {
        Ok(true) => StatusCode::NO_CONTENT.into_response(),
        Ok(false) => (
            StatusCode::NOT_FOUND,
            Json(serde_json::json!({ "error": format!("no interrupt `{id}` in force") })),
        )
            .into_response(),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "stopping").into_response(),
    }
}

async fn withdrawn(State(shared): State<Arc<Shared>>) -> Json<Vec<String>> {
    Json(
        shared
            .withdrawn
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .cloned()
            .collect(),
    )
}

/// `POST /api/withdraw`.
#[derive(Debug, serde::Deserialize)]
pub struct WithdrawRequest {
    pub item: String,
    #[serde(default)]
    pub by: Option<String>,
    #[serde(default)]
    pub reason: Option<String>,
}

/// The kill switch: the item leaves every board now, and stays off (across restarts and
/// reloads) until restored.
async fn withdraw(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Json(request): Json<WithdrawRequest>,
) -> Response {
    if let Err(refused) = authorize(&shared, &headers) {
        return *refused;
    }
    // Known if the site as loaded has it (shown, held for review or withdrawn already), or it
    // is withdrawn already and has since left the site.
    let loaded = shared
        .loaded
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    let known = loaded.item(&request.item).is_some()
        || shared
            .withdrawn
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .contains(&request.item);
    if !known {
        return bad_request(format!("no item `{}` in the site", request.item));
    }
    let (tx, rx) = oneshot::channel();
    let control = Control::Withdraw {
        item: request.item.clone(),
        by: request.by.clone().unwrap_or_default(),
        reason: request.reason.clone().unwrap_or_default(),
        reply: tx,
    };
    changed_answer(&shared, control, rx, &request.item).await
}

async fn restore(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(item): Path<String>,
    Query(query): Query<EndQuery>,
) -> Response {
    if let Err(refused) = authorize(&shared, &headers) {
        return *refused;
    }
    let (tx, rx) = oneshot::channel();
    let control = Control::Restore {
        item: item.clone(),
        by: query.by.clone().unwrap_or_default(),
        reply: tx,
    };
    changed_answer(&shared, control, rx, &item).await
}

/// One review in `/api/reviews`.
#[derive(Debug, serde::Serialize)]
struct ReviewView {
    stage: &'static str,
    by: String,
    at: DateTime<Utc>,
}

/// One item in `/api/reviews`.
#[derive(Debug, serde::Serialize)]
struct ItemReview {
    item: String,
    title: String,
    playlist: String,
    stage: crate::review::Stage,
    required: crate::review::Stage,
    /// On boards and SMS now: reviewed far enough and not withdrawn.
    published: bool,
    withdrawn: bool,
    /// The reviews that count for the current text, in stage order.
    reviews: Vec<ReviewView>,
    /// Who gave the second approval for a mass SMS of this text.
    mass_sms_by: Option<String>,
    /// Reviews of an earlier text: the item was edited after them.
    stale_reviews: usize,
    /// What a reviewer approves: the SHA-256 of the item's text and settings.
    hash: String,
}

/// Every item of the site as loaded, with how far its current text has got.
async fn reviews(State(shared): State<Arc<Shared>>) -> Json<Vec<ItemReview>> {
    let loaded = shared
        .loaded
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    let records = shared
        .reviews
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    let withdrawn = shared
        .withdrawn
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    let required = loaded.site.review.required;
    let mut out = Vec::new();
    for playlist in &loaded.playlists {
        for item in &playlist.items {
            let hash = crate::review::content_hash(item);
            let mine: Vec<crate::review::Record> = records
                .iter()
                .filter(|r| r.item == item.id)
                .cloned()
                .collect();
            let standing = crate::review::standing(&hash, &mine);
            let is_withdrawn = withdrawn.contains(&item.id);
            out.push(ItemReview {
                item: item.id.clone(),
                title: item.title.clone(),
                playlist: playlist.id.clone(),
                stage: standing.stage,
                required,
                published: standing.stage >= required && !is_withdrawn,
                withdrawn: is_withdrawn,
                reviews: standing
                    .chain
                    .iter()
                    .map(|r| ReviewView {
                        stage: r.step.code(),
                        by: r.by.clone(),
                        at: r.at,
                    })
                    .collect(),
                mass_sms_by: standing.mass_sms.map(|r| r.by),
                stale_reviews: standing.stale,
                hash,
            });
        }
    }
    Json(out)
}

/// `POST /api/review`.
#[derive(Debug, serde::Deserialize)]
pub struct ReviewRequest {
    pub item: String,
    /// `reviewed`, `legal`, `approved` or `mass-sms` (or their Chinese names).
    pub stage: String,
    pub by: String,
}

/// Records a review of the item's current text: 200 with where it stands now, 404 for an
/// unknown item, 409 when the review does not fit (out of order, twice, the same person).
async fn review(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Json(request): Json<ReviewRequest>,
) -> Response {
    if let Err(refused) = authorize(&shared, &headers) {
        return *refused;
    }
    let Some(step) = crate::review::Step::parse(&request.stage) else {
        return bad_request(format!(
            "`{}` is not a review stage: reviewed, legal, approved or mass-sms",
            request.stage
        ));
    };
    let (tx, rx) = oneshot::channel();
    let control = Control::Review {
        item: request.item.clone(),
        step,
        by: request.by.clone(),
        reply: tx,
    };
    if shared.control.send(control).await.is_err() {
        return (StatusCode::SERVICE_UNAVAILABLE, "stopping").into_response();
    }
    let required = shared.model().site.review.required;
    match rx.await {
        Ok(Ok(standing)) => Json(serde_json::json!({
            "item": request.item,
            "stage": standing.stage,
            "required": required,
            "published": standing.stage >= required,
            "mass_sms_by": standing.mass_sms.map(|r| r.by),
        }))
        .into_response(),
        Ok(Err(e @ ReviewError::UnknownItem(_))) => (
            StatusCode::NOT_FOUND,
            Json(serde_json::json!({ "error": e.to_string() })),
        )
            .into_response(),
        Ok(Err(e @ ReviewError::Refused(_))) => (
            StatusCode::CONFLICT,
            Json(serde_json::json!({ "error": e.to_string() })),
        )
            .into_response(),
        Ok(Err(e)) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(serde_json::json!({ "error": e.to_string() })),
        )
            .into_response(),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "stopping").into_response(),
    }
}

/// Sends `control` and answers: 200 with whether anything changed, 500 when the database
/// refused (nothing changed then).
async fn changed_answer(
    shared: &Shared,
    control: Control,
    rx: oneshot::Receiver<Result<bool, String>>,
    item: &str,
) -> Response {
    if shared.control.send(control).await.is_err() {
        return (StatusCode::SERVICE_UNAVAILABLE, "stopping").into_response();
    }
    match rx.await {
        Ok(Ok(changed)) => {
            Json(serde_json::json!({ "item": item, "changed": changed })).into_response()
        }
        Ok(Err(why)) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(serde_json::json!({ "error": why })),
        )
            .into_response(),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "stopping").into_response(),
    }
}

/// Prometheus text exposition.
async fn metrics(State(shared): State<Arc<Shared>>) -> Response {
    use std::fmt::Write;
    let mut out = String::new();
    let reload = shared
        .reload
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    let _ = writeln!(
        out,
        "# HELP gongkai_up The daemon is running.\n# TYPE gongkai_up gauge\ngongkai_up 1"
    );
    let _ = writeln!(
        out,
        "# HELP gongkai_reloads_total Site changes applied.\n# TYPE gongkai_reloads_total counter\ngongkai_reloads_total {}",
        reload.reloads
    );
    let _ = writeln!(
        out,
        "# HELP gongkai_reload_rejections_total Site changes refused (the running site stayed).\n# TYPE gongkai_reload_rejections_total counter\ngongkai_reload_rejections_total {}",
        reload.rejections
    );
    let _ = writeln!(
        out,
        "# HELP gongkai_reload_rejected The last change was refused and not yet fixed.\n# TYPE gongkai_reload_rejected gauge\ngongkai_reload_rejected {}",
        u8::from(reload.rejected.is_some())
    );
    let held = shared
        .held
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .len();
    let _ = writeln!(
        out,
        "# HELP gongkai_items_held_for_review Items kept off boards and SMS until reviewed far enough.\n# TYPE gongkai_items_held_for_review gauge\ngongkai_items_held_for_review {held}"
    );
    let (samples, q) = shared.lateness.quantiles(&[0.5, 0.9, 0.99]);
    let _ = writeln!(
        out,
        "# HELP gongkai_slot_lateness_seconds From a slot boundary to its picture handed to the link (last samples).\n# TYPE gongkai_slot_lateness_seconds summary"
    );
    for (quantile, value) in ["0.5", "0.9", "0.99"].iter().zip(&q) {
        let _ = writeln!(
            out,
            "gongkai_slot_lateness_seconds{{quantile=\"{quantile}\"}} {value}"
        );
    }
    let _ = writeln!(out, "gongkai_slot_lateness_seconds_count {samples}");
    super::alerts::write_metrics(
        &shared
            .alerts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner),
        &mut out,
    );
    let views = shared
        .displays
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    type Metric = (
        &'static str,
        &'static str,
        &'static str,
        fn(&LinkHealth) -> f64,
    );
    let metrics: [Metric; 5] = [
        (
            "gongkai_link_online",
            "gauge",
            "The board or broker answered lately.",
            |h| f64::from(u8::from(h.online)),
        ),
        (
            "gongkai_link_frames_total",
            "counter",
            "Frames and programs the board took.",
            |h| h.frames as f64,
        ),
        (
            "gongkai_link_bytes_total",
            "counter",
            "Bytes sent for the display.",
            |h| h.bytes as f64,
        ),
        (
            "gongkai_link_retries_total",
            "counter",
            "Requests sent again.",
            |h| h.retries as f64,
        ),
        (
            "gongkai_link_errors_total",
            "counter",
            "Exchanges that failed.",
            |h| h.errors as f64,
        ),
    ];
    let healths: Vec<(String, super::links::LinkHealth, u64)> = views
        .iter()
        .map(|(id, v)| (id.clone(), v.probe.health(), v.status.borrow().generation))
        .collect();
    for (name, kind, help, value) in metrics {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (id, health, _) in &healths {
            let _ = writeln!(
                out,
                "{name}{{display=\"{}\",link=\"{}\"}} {}",
                escape_label(id),
                health.kind,
                value(health)
            );
        }
    }
    let _ = writeln!(
        out,
        "# HELP gongkai_display_changes_total Pictures the display moved on to.\n# TYPE gongkai_display_changes_total counter"
    );
    for (id, _, generation) in &healths {
        let _ = writeln!(
            out,
            "gongkai_display_changes_total{{display=\"{}\"}} {generation}",
            escape_label(id)
        );
    }
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4"),
        )],
        out,
    )
        .into_response()
}

fn escape_label(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
