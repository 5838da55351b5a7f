//! `gongkai review`: records a stage of the 三审 for an item through the running daemon, shows
//! where one item stands, or lists every item.
//!
//! This is an edge: the rules are in [`crate::review`], the records in the daemon's database;
//! the daemon computes the hash of what is approved from the site it runs, so a review always
//! binds to the text the boards would show.

use std::path::Path;

use super::Exit;
use super::daemon::{AdminRequest, admin_call, refused};
use crate::i18n::{Lang, tr};

/// What `gongkai review` was asked.
pub struct ReviewArgs<'a> {
    pub item: Option<&'a str>,
    pub stage: Option<&'a str>,
    pub by: Option<&'a str>,
    pub url: Option<&'a str>,
}

#[derive(serde::Deserialize)]
struct Recorded {
    stage: String,
    required: String,
    published: bool,
}

#[derive(serde::Deserialize)]
struct ItemReview {
    item: String,
    title: String,
    playlist: String,
    stage: String,
    required: String,
    published: bool,
    withdrawn: bool,
    reviews: Vec<ReviewLine>,
    mass_sms_by: Option<String>,
    stale_reviews: usize,
    hash: String,
}

#[derive(serde::Deserialize)]
struct ReviewLine {
    stage: String,
    by: String,
    at: chrono::DateTime<chrono::Utc>,
}

pub fn review(site: &Path, args: &ReviewArgs<'_>, lang: Lang) -> Exit {
    match (args.item, args.stage) {
        (Some(item), Some(stage)) => record(site, item, stage, args, lang),
        (item, _) => show(site, item, args.url, lang),
    }
}

fn record(site: &Path, item: &str, stage: &str, args: &ReviewArgs<'_>, lang: Lang) -> Exit {
    let by = args.by.map(str::trim).unwrap_or_default();
    if by.is_empty() {
        eprintln!("{}", tr(lang, "review.needs_by", &[]));
        return Exit::Problems;
    }
    let request = AdminRequest {
        method: reqwest::Method::POST,
        path: "/api/review".into(),
        body: Some(serde_json::json!({ "item": item, "stage": stage, "by": by })),
    };
    let (status, text) = match admin_call(site, args.url, request, lang) {
        Ok(answer) => answer,
        Err(exit) => return exit,
    };
    if !status.is_success() {
        let reason = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v["error"].as_str().map(str::to_owned))
            .unwrap_or(text);
        return refused(status, &reason, lang);
    }
    let Ok(recorded) = serde_json::from_str::<Recorded>(&text) else {
        println!("{text}");
        return Exit::Ok;
    };
    let state = if recorded.published {
        tr(lang, "review.state.published", &[])
    } else {
        tr(lang, "review.state.held", &[])
    };
    println!(
        "{}",
        tr(
            lang,
            "review.recorded",
            &[
                ("item", item),
                ("step", stage),
                ("by", by),
                ("stage", &stage_name(&recorded.stage, lang)),
                ("required", &stage_name(&recorded.required, lang)),
                ("state", &state),
            ]
        )
    );
    Exit::Ok
}

fn show(site: &Path, item: Option<&str>, url: Option<&str>, lang: Lang) -> Exit {
    let request = AdminRequest {
        method: reqwest::Method::GET,
        path: "/api/reviews".into(),
        body: None,
    };
    let (status, text) = match admin_call(site, url, request, lang) {
        Ok(answer) => answer,
        Err(exit) => return exit,
    };
    if !status.is_success() {
        return refused(status, &text, lang);
    }
    let items: Vec<ItemReview> = match serde_json::from_str(&text) {
        Ok(items) => items,
        Err(e) => {
            let reason = e.to_string();
            return refused(status, &reason, lang);
        }
    };
    match item {
        None => {
            for review in &items {
                println!("{}", list_line(review, lang));
            }
            let held = items.iter().filter(|r| !r.published).count();
            let total = items.len().to_string();
            let held = held.to_string();
            println!(
                "{}",
                tr(
                    lang,
                    "review.summary",
                    &[("total", &total), ("held", &held)]
                )
            );
            Exit::Ok
        }
        Some(wanted) => match items.iter().find(|r| r.item == wanted) {
            Some(review) => {
                detail(review, lang);
                Exit::Ok
            }
            None => {
                eprintln!("{}", tr(lang, "review.unknown_item", &[("item", wanted)]));
                Exit::Problems
            }
        },
    }
}

fn list_line(review: &ItemReview, lang: Lang) -> String {
    let by: Vec<String> = review
        .reviews
        .iter()
        .map(|r| format!("{}:{}", stage_name(&r.stage, lang), r.by))
        .collect();
    format!(
        "{:<14} {:<6} {:<8} {:<24} {}",
        review.item,
        stage_name(&review.stage, lang),
        state(review, lang),
        by.join(" "),
        review.title
    )
}

fn detail(review: &ItemReview, lang: Lang) {
    let stale = review.stale_reviews.to_string();
    let hash = review.hash.get(..16).unwrap_or(&review.hash);
    for (key, value) in [
        ("review.detail.item", review.item.as_str()),
        ("review.detail.title", review.title.as_str()),
        ("review.detail.playlist", review.playlist.as_str()),
        ("review.detail.hash", hash),
    ] {
        println!("{}", tr(lang, key, &[("value", value)]));
    }
    println!(
        "{}",
        tr(
            lang,
            "review.detail.stage",
            &[
                ("stage", &stage_name(&review.stage, lang)),
                ("required", &stage_name(&review.required, lang)),
                ("state", &state(review, lang)),
            ]
        )
    );
    for line in &review.reviews {
        let at = line.at.format("%Y-%m-%d %H:%M UTC").to_string();
        println!(
            "{}",
            tr(
                lang,
                "review.detail.review",
                &[
                    ("stage", &stage_name(&line.stage, lang)),
                    ("by", &line.by),
                    ("at", &at)
                ]
            )
        );
    }
    if let Some(by) = &review.mass_sms_by {
        println!("{}", tr(lang, "review.detail.mass_sms", &[("by", by)]));
    }
    if review.stale_reviews > 0 {
        println!("{}", tr(lang, "review.detail.stale", &[("count", &stale)]));
    }
}

fn state(review: &ItemReview, lang: Lang) -> String {
    let key = if review.withdrawn {
        "review.state.withdrawn"
    } else if review.published {
        "review.state.published"
    } else {
        "review.state.held"
    };
    tr(lang, key, &[])
}

/// A stage's name in the operator's language (the code itself for English).
fn stage_name(code: &str, lang: Lang) -> String {
    match (lang, crate::review::Step::parse(code)) {
        (Lang::Zh, Some(crate::review::Step::Stage(stage))) => stage.chinese().to_owned(),
        (Lang::Zh, Some(crate::review::Step::MassSms)) => "群发复核".to_owned(),
        (Lang::Zh, None) if code == "draft" => "草稿".to_owned(),
        _ => code.to_owned(),
    }
}

/// For `gongkai sms send`: refuses, saying why, an item whose current text is not reviewed as
/// far as the site requires, or a send to more than `sms.second_approval_above` subscribers
/// without a second approval. Reads the daemon's database read-only; a site whose daemon never
/// ran has no reviews.
pub(crate) fn sms_gate(
    site: &Path,
    model: &crate::config::Model,
    item: &crate::config::model::Item,
    recipients: u64,
    lang: Lang,
) -> Result<(), Exit> {
    let path = crate::store::default_path(site);
    let records = match crate::store::Store::open_read_only(&path) {
        Ok(store) => store.reviews(),
        Err(crate::store::StoreError::Missing(_)) => Ok(Vec::new()),
        Err(e) => Err(e),
    };
    let records = match records {
        Ok(records) => records,
        Err(e) => return Err(super::daemon::db_failed(&path, &e, lang)),
    };
    let mine: Vec<crate::review::Record> =
        records.into_iter().filter(|r| r.item == item.id).collect();
    let standing = crate::review::standing(&crate::review::content_hash(item), &mine);
    let limit = model
        .site
        .sms
        .as_ref()
        .map_or(u32::MAX, |s| s.second_approval_above);
    match crate::review::sms_allowed(&standing, model.site.review.required, recipients, limit) {
        Ok(()) => Ok(()),
        Err(crate::review::SmsHold::NotReviewed { stage, required }) => {
            eprintln!(
                "{}",
                tr(
                    lang,
                    "review.sms.not_reviewed",
                    &[
                        ("item", &item.id),
                        ("stage", &stage_name(stage.code(), lang)),
                        ("required", &stage_name(required.code(), lang)),
                    ]
                )
            );
            Err(Exit::Problems)
        }
        Err(crate::review::SmsHold::NeedsSecondApproval {
            recipients,
            limit,
            approver,
        }) => {
            let (recipients, limit) = (recipients.to_string(), limit.to_string());
            eprintln!(
                "{}",
                tr(
                    lang,
                    "review.sms.needs_second",
                    &[
                        ("item", &item.id),
                        ("recipients", &recipients),
                        ("limit", &limit),
                        ("approver", &approver),
                    ]
                )
            );
            Err(Exit::Problems)
        }
    }
}
