//! The daemon's SMS side: when bulletins go out.
//!
//! Owns the timing around the dispatcher (`crate::sms::dispatch`, which owns the sending
//! rules and the ledger): an item with the `sms` channel is handed to the dispatcher once its
//! validity has begun and before it ends, unless it is withdrawn (the site the daemon runs has
//! withdrawn items taken out); what is due is sent every minute (quiet hours, the daily cap and
//! the digest are the dispatcher's); `unknown` rows are reconciled every five minutes; once a
//! day (and at each start or reload) the texts of messages whose deliveries are all final and
//! older than `retention.sms_texts` are pruned, their hashes and rows kept; each bulletin
//! handed over is recorded in the audit. A ledger error (a full disk) is logged and shown as
//! `last_error` in `/api/sms` until a round goes through. The dispatcher is shared with the public
//! listener, whose callback routes feed it delivery reports and TD replies.
//!
//! Must not touch: subscribers, gateways, the ledger's rows — only the dispatcher does.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use chrono::Utc;
use tokio::sync::watch;

use crate::config::Model;
use crate::config::model::Channel;
use crate::sms::dispatch::{DispatchError, Dispatcher, Options, SendOptions, SystemClock};
use crate::store::{Bulletin, Store};

/// How `last_error` starts when the ledger failed (a full disk, a read-only file).
const LEDGER_FAULT: &str = "ledger: ";

/// How often due messages are looked for.
const TICK: Duration = Duration::from_secs(60);
/// Every how many ticks `unknown` rows are reconciled.
const RECONCILE_EVERY: u32 = 5;
/// Every how many ticks (a day) delivered message texts past retention are pruned.
const PRUNE_EVERY: u32 = 24 * 60;

/// What the status API says of the SMS side.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct SmsStatus {
    /// The site has an `sms:` section and the dispatcher runs.
    pub running: bool,
    pub ledger: String,
    /// Items handed to the dispatcher since the daemon started.
    pub items: Vec<String>,
    /// Items whose bulletin would go to more subscribers than `sms.second_approval_above` and
    /// waits for a second approval (`gongkai review ITEM --stage mass-sms`).
    pub awaiting_second_approval: Vec<String>,
    pub last_error: Option<String>,
}

/// Items whose current text has a second approval for a mass SMS (kept by the supervisor).
pub type MassApproved = Arc<std::sync::Mutex<std::collections::BTreeSet<String>>>;

/// The dispatcher in use (replaced on reload), for the callback routes and `/api/sms`.
pub type SharedDispatcher = Arc<RwLock<Option<Arc<Dispatcher>>>>;

/// What the SMS side shares with the rest of the daemon.
pub struct Handles {
    /// Where it publishes the dispatcher in use.
    pub dispatcher: SharedDispatcher,
    /// Where it reports how it is doing.
    pub status: Arc<std::sync::Mutex<SmsStatus>>,
    /// What the supervisor says has a second approval for a mass send.
    pub mass_approved: MassApproved,
}

/// Runs the SMS side until `stop` turns true, following the site in `site`.
pub async fn run(
    mut site: watch::Receiver<Arc<Model>>,
    site_dir: PathBuf,
    ledger: PathBuf,
    store: Arc<Store>,
    handles: Handles,
    mut stop: watch::Receiver<bool>,
) {
    let Handles {
        dispatcher: dispatcher_slot,
        status,
        mass_approved,
    } = handles;
    let mut handed: HashSet<String> = HashSet::new();
    loop {
        let model = site.borrow_and_update().clone();
        let dispatcher = if model.site.sms.is_some() {
            match open(&model, &site_dir, &ledger).await {
                Ok(d) => Some(Arc::new(d)),
                Err(why) => {
                    tracing::error!(error = %why, "SMS: the dispatcher cannot start");
                    set(&status, |s| {
                        s.running = false;
                        s.last_error = Some(why);
                    });
                    None
                }
            }
        } else {
            None
        };
        *dispatcher_slot
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = dispatcher.clone();
        if let Some(d) = &dispatcher {
            set(&status, |s| {
                s.running = true;
                s.ledger = ledger.display().to_string();
                s.last_error = None;
            });
            if d.recovered() > 0 {
                tracing::warn!(
                    rows = d.recovered(),
                    "SMS: messages were being sent when the daemon stopped; they are `unknown` until reconciled"
                );
            }
        }
        let mut ticks = 0u32;
        loop {
            if let Some(d) = &dispatcher {
                let approved = mass_approved
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .clone();
                tick(d, &model, &store, &mut handed, &status, &approved, ticks).await;
            }
            ticks = ticks.wrapping_add(1);
            tokio::select! {
                _ = tokio::time::sleep(TICK) => {}
                changed = site.changed() => {
                    if changed.is_err() { return; }
                    break;
                }
                _ = stop.changed() => return,
            }
            if *stop.borrow() {
                return;
            }
        }
    }
}

async fn open(model: &Model, site_dir: &Path, ledger: &Path) -> Result<Dispatcher, String> {
    Dispatcher::new(
        model,
        site_dir,
        ledger,
        Arc::new(SystemClock),
        Options::default(),
    )
    .map_err(|e| e.to_string())
}

fn set(status: &std::sync::Mutex<SmsStatus>, change: impl FnOnce(&mut SmsStatus)) {
    change(
        &mut status
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner),
    );
}

/// One round: new bulletins handed over, what is due sent, now and then a reconciliation.
async fn tick(
    dispatcher: &Dispatcher,
    model: &Model,
    store: &Arc<Store>,
    handed: &mut HashSet<String>,
    status: &std::sync::Mutex<SmsStatus>,
    mass_approved: &std::collections::BTreeSet<String>,
    ticks: u32,
) {
    let now = Utc::now().with_timezone(&model.site.timezone);
    let due: Vec<(String, String)> = model
        .items()
        .filter(|(_, item)| item.channels.contains(&Channel::Sms) && item.valid.contains(&now))
        .filter(|(_, item)| !handed.contains(&item.id))
        .map(|(_, item)| (item.id.clone(), item.title.clone()))
        .collect();
    let limit = model
        .site
        .sms
        .as_ref()
        .map_or(u32::MAX, |s| s.second_approval_above);
    let mut awaiting = Vec::new();
    for (id, title) in due {
        // A mass send waits for its second approver: counted first, recorded only once allowed.
        if !mass_approved.contains(&id) {
            let count = SendOptions {
                dry_run: true,
                ..SendOptions::default()
            };
            match dispatcher.send_item(&id, &count).await {
                Ok(counts) if counts.recipients > u64::from(limit) => {
                    if !status
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .awaiting_second_approval
                        .contains(&id)
                    {
                        tracing::warn!(
                            item = %id,
                            recipients = counts.recipients,
                            limit,
                            "SMS: a mass send waits for a second approval (gongkai review ITEM --stage mass-sms)"
                        );
                    }
                    awaiting.push(id);
                    continue;
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::error!(item = %id, error = %e, "SMS: counting the recipients");
                    set(status, |s| s.last_error = Some(e.to_string()));
                    continue;
                }
            }
        }
        match dispatcher.send_item(&id, &SendOptions::default()).await {
            Ok(counts) => {
                handed.insert(id.clone());
                set(status, |s| s.items.push(id.clone()));
                if counts.new > 0 {
                    tracing::info!(
                        item = %id,
                        recipients = counts.new,
                        sent = counts.sent,
                        "SMS bulletin"
                    );
                    let bulletin = Bulletin {
                        item: id.clone(),
                        title: title.clone(),
                        text: bulletin_text(dispatcher, &id).unwrap_or(title),
                        recipients: u32::try_from(counts.new).unwrap_or(u32::MAX),
                        at: Utc::now(),
                        by: "gongkai run".into(),
                    };
                    let store = store.clone();
                    let recorded =
                        tokio::task::spawn_blocking(move || store.bulletin_recorded(&bulletin))
                            .await;
                    if !matches!(recorded, Ok(Ok(_))) {
                        tracing::error!(item = %id, result = ?recorded, "audit: the bulletin was not recorded");
                    }
                }
            }
            Err(e) => {
                tracing::error!(item = %id, error = %e, "SMS: the bulletin was not handed over");
                set(status, |s| s.last_error = Some(e.to_string()));
            }
        }
    }
    set(status, |s| s.awaiting_second_approval = awaiting);
    match dispatcher.run_due().await {
        Ok(_) => set(status, |s| {
            // A round that went through clears a ledger fault (room again on the disk).
            if s.last_error
                .as_deref()
                .is_some_and(|e| e.starts_with(LEDGER_FAULT))
            {
                s.last_error = None;
            }
        }),
        Err(e) => {
            tracing::error!(error = %e, "SMS: sending what is due");
            let shown = match &e {
                DispatchError::Ledger(l) => format!("{LEDGER_FAULT}{l}"),
                other => other.to_string(),
            };
            set(status, |s| s.last_error = Some(shown));
        }
    }
    if ticks.is_multiple_of(PRUNE_EVERY) {
        match dispatcher.prune_texts(model.site.retention.sms_texts) {
            Ok(0) => {}
            Ok(n) => tracing::info!(messages = n, "SMS: texts past retention pruned"),
            Err(e) => tracing::error!(error = %e, "SMS: pruning texts past retention"),
        }
    }
    if ticks.is_multiple_of(RECONCILE_EVERY) {
        match dispatcher.reconcile().await {
            Ok(resolved) if resolved.checked > 0 => tracing::info!(
                checked = resolved.checked,
                sent = resolved.sent,
                failed = resolved.failed,
                open = resolved.open,
                "SMS: reconciled"
            ),
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "SMS: reconciling"),
        }
    }
}

/// The text that goes out for `item` (the audit keeps its hash); none yet while it waits for
/// a digest.
fn bulletin_text(dispatcher: &Dispatcher, item: &str) -> Option<String> {
    let ledger = dispatcher.ledger();
    let id = ledger.item_message(item).ok()??;
    ledger.message(id).ok()?.map(|m| m.text)
}
