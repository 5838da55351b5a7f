//! The kiosk page and its JSON API, for a kiosk's browser on the daemon's public listener.
//!
//! Routes (all under `/kiosk/`, so the daemon can merge this router with its other public
//! routes):
//! - `/kiosk/` — the page (`page.html`, embedded: no CDN, works on a closed network). It takes
//!   `?display=ID` (which kiosk it runs on) and `?idle=SECONDS` (back to the playlist after so
//!   long without a touch; 60 by default).
//! - `/kiosk/font.otf` — the shipped Noto Sans SC subset, so the page looks the same on a kiosk
//!   whose browser has no Chinese font.
//! - `/kiosk/api/items?display=ID&q=TEXT` — the items valid now that go to screens (`touch` or
//!   `board`), of the playlists that target the display (every playlist without `display`):
//!   the playlist to cycle (each item with its dwell), and the items grouped by the eight key
//!   areas plus 其他 (meeting notices and policy documents are 其他 here), filtered by `q`.
//! - `/kiosk/api/items/{id}?display=ID` — one such item in full; 404 for an item that is not
//!   valid now or does not go to that display, so a kiosk never shows what has expired.
//!
//! The playlist is every such item in playlist order; on-air windows and priorities are the LED
//! schedule's business and are not applied here.
//!
//! This module owns the kiosk's HTTP surface. It reads the model and the time from a
//! [`KioskSource`] and changes nothing; it does not start a listener (the daemon does).

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use chrono::DateTime;
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use super::render::dates_text;
use crate::config::model::{Category, Channel, Item, Model};
use crate::font::scalable::NOTO_SANS_SC;
use crate::i18n::{Lang, tr};
use crate::layout::markup;

/// The page, one file with its script and style.
const PAGE: &str = include_str!("page.html");

/// What the kiosk routes read: the running model and the time.
pub trait KioskSource: Send + Sync + 'static {
    /// The model now (a hot reload may replace it between requests).
    fn model(&self) -> Arc<Model>;
    /// The current time in the site's timezone.
    fn now(&self) -> DateTime<Tz>;
}

/// The kiosk's routes; merge into the public listener's router.
pub fn router(source: Arc<dyn KioskSource>) -> axum::Router {
    axum::Router::new()
        .route("/kiosk", get(page))
        .route("/kiosk/", get(page))
        .route("/kiosk/font.otf", get(font))
        .route("/kiosk/api/items", get(items))
        .route("/kiosk/api/items/{id}", get(item))
        .with_state(source)
}

async fn page() -> Response {
    (
        [
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        Html(PAGE),
    )
        .into_response()
}

async fn font() -> Response {
    (
        [
            (header::CONTENT_TYPE, "font/otf"),
            (header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        NOTO_SANS_SC,
    )
        .into_response()
}

/// The query of both API routes.
#[derive(Debug, Default, Deserialize)]
pub struct ItemsQuery {
    pub display: Option<String>,
    pub q: Option<String>,
}

/// An item as the list shows it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Summary {
    pub id: String,
    pub title: String,
    pub category: &'static str,
    pub department: Option<String>,
    /// The dates as the page shows them (有效期：… 至 …（剩余 N 天）).
    pub dates: String,
    /// RFC 3339; absent when unbounded.
    pub valid_from: Option<String>,
    pub valid_until: Option<String>,
}

/// An item in full.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Full {
    #[serde(flatten)]
    pub summary: Summary,
    /// The body's paragraphs, markup removed.
    pub paragraphs: Vec<String>,
}

/// One entry of the playlist the page cycles.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Slot {
    pub id: String,
    pub dwell_ms: u64,
}

/// The items of one category button.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Group {
    pub name: &'static str,
    /// One of the eight key areas (the last group, 其他, is not).
    pub key_area: bool,
    pub items: Vec<Summary>,
}

/// The answer of `/kiosk/api/items`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Listing {
    pub site: String,
    pub display: Option<String>,
    pub now: String,
    pub query: Option<String>,
    /// Every item valid now, in playlist order (not filtered by the query).
    pub playlist: Vec<Slot>,
    /// The eight key areas, then 其他; always all nine, in that order.
    pub groups: Vec<Group>,
    /// Items in the groups (after the query).
    pub total: usize,
}

/// A display id the site does not have.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no display `{0}`")]
pub struct UnknownDisplay(pub String);

/// The group a category is listed under: itself for the eight key areas, 其他 otherwise.
fn group_of(category: Category) -> Category {
    if category.is_key_area() {
        category
    } else {
        Category::Other
    }
}

/// The text without colour markup and invisible controls: the page is drawn by a browser,
/// which would apply a bidi override.
fn plain(text: &str) -> String {
    let text = markup::inert(text);
    markup::parse(&text).map_or_else(|_| text.into_owned(), |s| s.text)
}

fn summary(item: &Item, now: &DateTime<Tz>) -> Summary {
    Summary {
        id: item.id.clone(),
        title: plain(&item.title),
        category: item.category.name(),
        department: item.department.clone(),
        dates: dates_text(&item.valid, now),
        valid_from: item.valid.from.map(|t| t.to_rfc3339()),
        valid_until: item.valid.until.map(|t| t.to_rfc3339()),
    }
}

/// The items a kiosk may show now, each once, in playlist order.
pub fn visible<'m>(
    model: &'m Model,
    display: Option<&str>,
    now: &DateTime<Tz>,
) -> Result<Vec<&'m Item>, UnknownDisplay> {
    let target = match display {
        Some(id) => Some(
            model
                .displays
                .iter()
                .position(|d| d.id == id)
                .ok_or_else(|| UnknownDisplay(id.to_owned()))?,
        ),
        None => None,
    };
    let mut seen = BTreeSet::new();
    Ok(model
        .playlists
        .iter()
        .filter(|p| target.is_none_or(|t| p.targets.contains(&t)))
        .flat_map(|p| p.items.iter())
        .filter(|item| {
            item.channels
                .iter()
                .any(|c| matches!(c, Channel::Touch | Channel::Board))
                && item.valid.contains(now)
                && seen.insert(item.id.as_str())
        })
        .collect())
}

/// Whether `item` matches the search `q` (title, body, department or category; letters in any
/// case). An empty query matches everything.
fn matches(item: &Item, q: &str) -> bool {
    let q = q.trim().to_lowercase();
    if q.is_empty() {
        return true;
    }
    [
        plain(&item.title),
        plain(&item.body),
        item.department.clone().unwrap_or_default(),
        item.category.name().to_owned(),
    ]
    .iter()
    .any(|field| field.to_lowercase().contains(&q))
}

/// The answer of `/kiosk/api/items`.
pub fn listing(
    model: &Model,
    display: Option<&str>,
    now: &DateTime<Tz>,
    q: Option<&str>,
) -> Result<Listing, UnknownDisplay> {
    let items = visible(model, display, now)?;
    let playlist = items
        .iter()
        .map(|item| Slot {
            id: item.id.clone(),
            dwell_ms: item.show.dwell.as_millis().min(u128::from(u64::MAX)) as u64,
        })
        .collect();
    let query = q.map(str::trim).filter(|q| !q.is_empty());
    let groups: Vec<Group> = Category::ALL
        .iter()
        .filter(|c| c.is_key_area() || **c == Category::Other)
        .map(|&category| Group {
            name: category.name(),
            key_area: category.is_key_area(),
            items: items
                .iter()
                .filter(|item| group_of(item.category) == category)
                .filter(|item| query.is_none_or(|q| matches(item, q)))
                .map(|item| summary(item, now))
                .collect(),
        })
        .collect();
    Ok(Listing {
        site: model.site.name.clone(),
        display: display.map(str::to_owned),
        now: now.to_rfc3339(),
        query: query.map(str::to_owned),
        playlist,
        total: groups.iter().map(|g| g.items.len()).sum(),
        groups,
    })
}

/// One visible item in full; `Ok(None)` when it is not visible now on that display.
pub fn full(
    model: &Model,
    display: Option<&str>,
    now: &DateTime<Tz>,
    id: &str,
) -> Result<Option<Full>, UnknownDisplay> {
    let items = visible(model, display, now)?;
    Ok(items
        .into_iter()
        .find(|item| item.id == id)
        .map(|item| Full {
            summary: summary(item, now),
            paragraphs: plain(&item.body)
                .lines()
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(str::to_owned)
                .collect(),
        }))
}

fn not_found(key: &str, args: &[(&str, &str)]) -> Response {
    // The kiosk's public is Chinese-reading, as is its page.
    (
        StatusCode::NOT_FOUND,
        Json(serde_json::json!({ "error": tr(Lang::Zh, key, args) })),
    )
        .into_response()
}

async fn items(
    State(source): State<Arc<dyn KioskSource>>,
    Query(query): Query<ItemsQuery>,
) -> Response {
    let model = source.model();
    match listing(
        &model,
        query.display.as_deref(),
        &source.now(),
        query.q.as_deref(),
    ) {
        Ok(listing) => Json(listing).into_response(),
        Err(UnknownDisplay(id)) => not_found("kiosk.unknown_display", &[("display", &id)]),
    }
}

async fn item(
    State(source): State<Arc<dyn KioskSource>>,
    Path(id): Path<String>,
    Query(query): Query<ItemsQuery>,
) -> Response {
    let model = source.model();
    match full(&model, query.display.as_deref(), &source.now(), &id) {
        Ok(Some(item)) => Json(item).into_response(),
        Ok(None) => not_found("kiosk.no_item", &[("item", &id)]),
        Err(UnknownDisplay(display)) => {
            not_found("kiosk.unknown_display", &[("display", &display)])
        }
    }
}
