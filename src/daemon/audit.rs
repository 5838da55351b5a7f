//! The daemon's record of what each board actually showed, written off the display tasks.
//!
//! Owns the events display tasks send (a showing started, a display stopped) and the one
//! thread that writes them to the store, so that a slow disk never delays a board. The
//! store's format and queries belong to `crate::store`.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use tokio::sync::mpsc;

use crate::config::model::{DisplayIdx, Model};
use crate::schedule::{Interrupt, Slot, What};

/// What a display showed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ShownKind {
    Item,
    Interrupt,
    Idle,
    Off,
}

impl ShownKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ShownKind::Item => "item",
            ShownKind::Interrupt => "interrupt",
            ShownKind::Idle => "idle",
            ShownKind::Off => "off",
        }
    }
}

/// What a slot shows, in words: for the audit, the status API and the plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shown {
    pub kind: ShownKind,
    pub playlist: Option<String>,
    /// The item's id, or the interrupt's.
    pub item: Option<String>,
    /// The item's title, the interrupt's text, or the site's name on the idle screen.
    pub title: String,
}

impl Shown {
    pub fn of(model: &Model, what: &What, interrupts: &[Interrupt]) -> Shown {
        let (kind, playlist, item, title) = match *what {
            What::Item { playlist, item, .. } => {
                let found = model
                    .playlists
                    .get(playlist)
                    .and_then(|p| p.items.get(item).map(|i| (p, i)));
                match found {
                    Some((p, i)) => (
                        ShownKind::Item,
                        Some(p.id.clone()),
                        Some(i.id.clone()),
                        i.title.clone(),
                    ),
                    None => (ShownKind::Item, None, None, String::new()),
                }
            }
            What::Interrupt(i) => (
                ShownKind::Interrupt,
                None,
                interrupts.get(i).map(|x| x.id.clone()),
                interrupts
                    .get(i)
                    .map(|x| x.text.clone())
                    .unwrap_or_default(),
            ),
            What::Idle => (ShownKind::Idle, None, None, model.site.name.clone()),
            What::Off => (ShownKind::Off, None, None, String::new()),
        };
        Shown {
            kind,
            playlist,
            item,
            title,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum AuditEvent {
    /// `display` started showing this; whatever it showed before ended at `from`.
    Started {
        display: String,
        kind: ShownKind,
        playlist: Option<String>,
        item: Option<String>,
        title: String,
        from: DateTime<Utc>,
        planned_until: DateTime<Utc>,
    },
    /// The display's task stopped (shutdown, removal): its showing ends here.
    Ended { display: String, at: DateTime<Utc> },
}

impl AuditEvent {
    pub fn started(
        model: &Model,
        display: DisplayIdx,
        slot: &Slot,
        interrupts: &[Interrupt],
        now: DateTime<Utc>,
    ) -> AuditEvent {
        let id = model
            .displays
            .get(display)
            .map(|d| d.id.clone())
            .unwrap_or_default();
        let Shown {
            kind,
            playlist,
            item,
            title,
        } = Shown::of(model, &slot.what, interrupts);
        AuditEvent::Started {
            display: id,
            kind,
            playlist,
            item,
            title,
            from: now,
            planned_until: slot.end.with_timezone(&Utc),
        }
    }
}

/// Where audit events end up.
pub trait AuditLog: Send {
    /// Records a showing; returns its row.
    fn started(&mut self, event: &AuditEvent) -> Result<i64, String>;
    fn ended(&mut self, row: i64, at: DateTime<Utc>) -> Result<(), String>;
}

/// Writes events until every sender is gone. Runs on its own thread: the store is
/// synchronous and may wait for the disk.
pub fn write_events(mut log: Box<dyn AuditLog>, mut events: mpsc::UnboundedReceiver<AuditEvent>) {
    let mut open: HashMap<String, i64> = HashMap::new();
    while let Some(event) = events.blocking_recv() {
        match &event {
            AuditEvent::Started { display, from, .. } => {
                if let Some(row) = open.remove(display)
                    && let Err(e) = log.ended(row, *from)
                {
                    tracing::error!(error = %e, "audit log");
                }
                match log.started(&event) {
                    Ok(row) => {
                        open.insert(display.clone(), row);
                    }
                    Err(e) => tracing::error!(error = %e, "audit log"),
                }
            }
            AuditEvent::Ended { display, at } => {
                if let Some(row) = open.remove(display)
                    && let Err(e) = log.ended(row, *at)
                {
                    tracing::error!(error = %e, "audit log");
                }
            }
        }
    }
}

/// The audit log in the site's database. Slots a crash left open are closed first, at the
/// earlier of their planned end and now.
pub fn store_log(store: std::sync::Arc<crate::store::Store>) -> Result<Box<dyn AuditLog>, String> {
    let closed = store
        .close_dangling(Utc::now())
        .map_err(|e| e.to_string())?;
    if closed > 0 {
        tracing::warn!(
            slots = closed,
            "audit: closed the slots the last run left open at their planned end"
        );
    }
    Ok(Box::new(StoreLog(store)))
}

struct StoreLog(std::sync::Arc<crate::store::Store>);

impl AuditLog for StoreLog {
    fn started(&mut self, event: &AuditEvent) -> Result<i64, String> {
        let AuditEvent::Started {
            display,
            kind,
            playlist,
            item,
            title,
            from,
            planned_until,
        } = event
        else {
            return Err("not a start".to_owned());
        };
        let kind = match kind {
            ShownKind::Item => crate::store::SlotKind::Item,
            ShownKind::Interrupt => crate::store::SlotKind::Interrupt,
            ShownKind::Idle => crate::store::SlotKind::Idle,
            ShownKind::Off => crate::store::SlotKind::Off,
        };
        self.0
            .slot_started(&crate::store::ShownSlot {
                display: display.clone(),
                kind,
                playlist: playlist.clone(),
                item: item.clone(),
                title: title.clone(),
                from: *from,
                // A slot cut at the horizon may be planned to end before the daemon noticed it
                // started; the store refuses an end before the start.
                planned_until: (*planned_until).max(*from),
            })
            .map(|id| id.0)
            .map_err(|e| e.to_string())
    }

    fn ended(&mut self, row: i64, at: DateTime<Utc>) -> Result<(), String> {
        self.0
            .slot_ended(crate::store::SlotId(row), at)
            .map(drop)
            .map_err(|e| e.to_string())
    }
}
