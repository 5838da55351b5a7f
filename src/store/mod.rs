//! The daemon's database: the audit of what was published, and the interrupts in force.
//!
//! This module owns one SQLite file (by default `var/gongkai.db` under the site directory,
//! see [`default_path`]): its schema and migrations (`schema.rs`), its pragmas (WAL,
//! `synchronous=FULL`, mode 0600) and every query. It records what it is told — a slot a
//! board showed, a bulletin sent, an interrupt added or ended — and answers questions about it.
//! It must not decide anything: it reads no clock (every instant is an argument), loads no
//! site, computes no schedule and talks to no board or gateway.
//!
//! The API is synchronous; the daemon calls it from `tokio::task::spawn_blocking` or a thread
//! of its own. A [`Store`] is `Send + Sync` (one connection behind a mutex), so it can be
//! shared in an `Arc`.
//!
//! Crash behaviour: a slot is written when it starts, with the time it is planned to end, and
//! closed when the next slot of its display starts or [`Store::slot_ended`] is called. After a
//! crash the last slot of each display has no recorded end; until the daemon's next start the
//! audit reports its planned end for it (flagged as planned), and on start the daemon calls
//! [`Store::close_dangling`], which closes it at the earlier of its planned end and the
//! restart.

mod schema;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior, params};
use sha2::{Digest, Sha256};

use crate::config::model::Model;
use crate::schedule::Interrupt;

pub use schema::{APPLICATION_ID, Migrated, VERSION, migrate};

/// Where the database lives, relative to the site directory.
pub const DEFAULT_PATH: &str = "var/gongkai.db";

/// How long a writer or reader waits for the other's lock before giving up.
const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// The database of the site in `site`.
pub fn default_path(site: &Path) -> PathBuf {
    site.join(DEFAULT_PATH)
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("no database at {0}")]
    Missing(PathBuf),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Open {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("the database cannot use WAL (its journal mode stays `{0}`)")]
    NoWal(String),
    #[error("the file is not a gongkai database")]
    Foreign,
    #[error("the database has schema version {found}; this gongkai knows up to {known}")]
    NewerSchema { found: u32, known: u32 },
    #[error("the database has schema version {found} and must be migrated to {want} first")]
    NeedsMigration { found: u32, want: u32 },
    #[error("migration to schema version {version} failed: {source}")]
    Migration {
        version: u32,
        source: rusqlite::Error,
    },
    #[error("an interrupt with id `{0}` already exists")]
    DuplicateInterrupt(String),
    #[error("{what} ends before it starts")]
    BadInterval { what: &'static str },
    #[error("the database holds a value this gongkai cannot read: {0}")]
    Corrupt(String),
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
}

/// What a display showed during a slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SlotKind {
    Item,
    Interrupt,
    Idle,
    Off,
}

impl SlotKind {
    /// The name stored in the file and printed in CSV.
    pub fn code(self) -> &'static str {
        match self {
            SlotKind::Item => "item",
            SlotKind::Interrupt => "interrupt",
            SlotKind::Idle => "idle",
            SlotKind::Off => "off",
        }
    }

    fn from_code(code: &str) -> Option<SlotKind> {
        [
            SlotKind::Item,
            SlotKind::Interrupt,
            SlotKind::Idle,
            SlotKind::Off,
        ]
        .into_iter()
        .find(|k| k.code() == code)
    }
}

/// A slot a board has started to show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShownSlot {
    pub display: String,
    pub kind: SlotKind,
    /// The playlist's id, for an item.
    pub playlist: Option<String>,
    /// The item's id, or the interrupt's.
    pub item: Option<String>,
    /// The item's title or the interrupt's text, as shown.
    pub title: String,
    pub from: DateTime<Utc>,
    /// When the schedule said it would end.
    pub planned_until: DateTime<Utc>,
}

/// A row of `shown`, returned by [`Store::slot_started`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SlotId(pub i64);

/// An SMS bulletin that went out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bulletin {
    pub item: String,
    pub title: String,
    /// The bulletin's text; the store keeps its SHA-256 ([`text_hash`]), not the text.
    pub text: String,
    pub recipients: u32,
    pub at: DateTime<Utc>,
    /// The operator who sent it.
    pub by: String,
}

/// An urgent notice as kept in the store: targets by name, so it outlives reloads that
/// renumber or regroup displays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredInterrupt {
    pub id: String,
    /// Display ids or group names; empty means every display.
    pub targets: Vec<String>,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub text: String,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    /// Also sent as an SMS bulletin.
    pub also_sms: bool,
}

impl StoredInterrupt {
    /// The schedule's form of this interrupt for `model`: each target is a display id or a
    /// group name of the site in force; names the site no longer has are left out. `None`
    /// when it named targets and none is left, because an empty list would mean "every
    /// display".
    pub fn for_model(&self, model: &Model) -> Option<Interrupt> {
        let mut displays: Vec<usize> = Vec::new();
        for target in &self.targets {
            if let Some(index) = model.displays.iter().position(|d| d.id == *target) {
                displays.push(index);
            } else if let Some(group) = model.groups.get(target) {
                displays.extend(group);
            }
        }
        displays.sort_unstable();
        displays.dedup();
        if displays.is_empty() && !self.targets.is_empty() {
            return None;
        }
        let tz = model.site.timezone;
        Some(Interrupt {
            id: self.id.clone(),
            displays,
            start: self.start.with_timezone(&tz),
            end: self.end.with_timezone(&tz),
            text: self.text.clone(),
        })
    }
}

/// An operator's action recorded in the audit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    InterruptAdded,
    InterruptEnded,
    ItemWithdrawn,
    ItemRestored,
    /// An item added to a playlist by `gongkai publish` (as a draft).
    ItemAdded,
    /// A review stage recorded for an item (its subject is the item, its detail the stage and
    /// the hash of the text reviewed).
    ItemReviewed,
    /// Queued SMS rows cancelled (an item's, or a bulletin's by `gongkai sms cancel`).
    SmsCancelled,
    /// An operator confirmed that deliveries still in doubt are sent again.
    SmsResendConfirmed,
    /// A mass SMS approved by a second person.
    SmsSecondApproval,
}

impl Action {
    /// The name stored in the file and printed in CSV.
    pub fn code(self) -> &'static str {
        match self {
            Action::InterruptAdded => "interrupt-added",
            Action::InterruptEnded => "interrupt-ended",
            Action::ItemWithdrawn => "item-withdrawn",
            Action::ItemRestored => "item-restored",
            Action::ItemAdded => "item-added",
            Action::ItemReviewed => "item-reviewed",
            Action::SmsCancelled => "sms-cancelled",
            Action::SmsResendConfirmed => "sms-resend-confirmed",
            Action::SmsSecondApproval => "sms-second-approval",
        }
    }

    fn from_code(code: &str) -> Option<Action> {
        [
            Action::InterruptAdded,
            Action::InterruptEnded,
            Action::ItemWithdrawn,
            Action::ItemRestored,
            Action::ItemAdded,
            Action::ItemReviewed,
            Action::SmsCancelled,
            Action::SmsResendConfirmed,
            Action::SmsSecondApproval,
        ]
        .into_iter()
        .find(|a| a.code() == code)
    }
}

/// What an audit row is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuditKind {
    Slot(SlotKind),
    Bulletin {
        recipients: u32,
        text_sha256: String,
    },
    Action(Action),
}

impl AuditKind {
    /// The name printed in CSV.
    pub fn code(&self) -> &'static str {
        match self {
            AuditKind::Slot(kind) => kind.code(),
            AuditKind::Bulletin { .. } => "bulletin",
            AuditKind::Action(action) => action.code(),
        }
    }
}

/// One line of the audit: a slot a board showed, a bulletin or an operator's action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRow {
    /// The display; `None` for bulletins and actions.
    pub display: Option<String>,
    pub from: DateTime<Utc>,
    /// A slot's recorded end, else its planned end; `from` for bulletins and actions.
    pub to: DateTime<Utc>,
    /// `to` is the plan, not a recorded end: the slot is on air, or the daemon stopped
    /// without closing it and has not started since.
    pub to_planned: bool,
    pub kind: AuditKind,
    pub playlist: Option<String>,
    /// The item's id, or the interrupt's.
    pub item: Option<String>,
    /// The title or text shown or sent.
    pub title: String,
    /// Who sent the bulletin or took the action.
    pub by: Option<String>,
}

/// The SHA-256 of a bulletin's text, lowercase hex: what the audit keeps of it.
pub fn text_hash(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The database. One connection, used by one thread at a time.
#[derive(Debug)]
pub struct Store {
    conn: Mutex<Connection>,
    path: PathBuf,
}

impl Store {
    /// Opens the database for writing, creating it (and its folder) when missing, with mode
    /// 0600, and brings its schema up to date.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let io = |source| StoreError::Io {
            path: path.to_owned(),
            source,
        };
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            create_private_dir(parent).map_err(io)?;
        }
        // Created here rather than by SQLite, so that the mode is 0600 from the first byte
        // (the ledger will hold phone numbers); SQLite gives its -wal and -shm files the
        // database file's mode.
        create_private_file(path).map_err(io)?;
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let mut conn = open_connection(path, flags)?;
        configure(&conn)?;
        migrate(&mut conn)?;
        Ok(Store {
            conn: Mutex::new(conn),
            path: path.to_owned(),
        })
    }

    /// Opens an existing database for reading only (`gongkai audit`), possibly while the
    /// daemon writes it. It is never created nor migrated.
    pub fn open_read_only(path: &Path) -> Result<Store, StoreError> {
        if !path.is_file() {
            return Err(StoreError::Missing(path.to_owned()));
        }
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = open_connection(path, flags)?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        let found = schema::check_compatible(&conn)?;
        if found < VERSION {
            return Err(StoreError::NeedsMigration {
                found,
                want: VERSION,
            });
        }
        Ok(Store {
            conn: Mutex::new(conn),
            path: path.to_owned(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The schema version of the file.
    pub fn version(&self) -> Result<u32, StoreError> {
        schema::version(&self.lock())
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        // A panic while the lock was held cannot leave the connection half-way: an open
        // transaction is rolled back when it is dropped during unwinding.
        self.conn
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Records that `slot.display` started showing `slot`. The display's previous slot, if
    /// still open, ends at `slot.from` (a board shows one thing at a time), but not after its
    /// planned end: a slot left open by a crash must not claim the hours until the restart.
    /// A slot that really ran late is recorded with [`Store::slot_ended`] first.
    pub fn slot_started(&self, slot: &ShownSlot) -> Result<SlotId, StoreError> {
        if slot.planned_until < slot.from {
            return Err(StoreError::BadInterval { what: "the slot" });
        }
        let from = slot.from.timestamp_millis();
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute(
            "UPDATE shown SET ended_ms = max(started_ms, min(planned_until_ms, ?2))
             WHERE display = ?1 AND ended_ms IS NULL",
            params![slot.display, from],
        )?;
        tx.execute(
            "INSERT INTO shown (display, kind, playlist, item, title, started_ms,
                                planned_until_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                slot.display,
                slot.kind.code(),
                slot.playlist,
                slot.item,
                slot.title,
                from,
                slot.planned_until.timestamp_millis(),
            ],
        )?;
        let id = tx.last_insert_rowid();
        tx.commit()?;
        Ok(SlotId(id))
    }

    /// Records that a slot ended at `at` (early or on time) with no slot after it (the
    /// display was stopped, removed, or the daemon is shutting down). `false` when the slot
    /// was already closed or does not exist.
    pub fn slot_ended(&self, id: SlotId, at: DateTime<Utc>) -> Result<bool, StoreError> {
        let changed = self.lock().execute(
            "UPDATE shown SET ended_ms = max(started_ms, ?2)
             WHERE id = ?1 AND ended_ms IS NULL",
            params![id.0, at.timestamp_millis()],
        )?;
        Ok(changed > 0)
    }

    /// Closes the slots a crash left open, at the earlier of their planned end and `at` (the
    /// restart). The daemon calls it once after `open`, before it starts any slot. Returns how
    /// many it closed.
    pub fn close_dangling(&self, at: DateTime<Utc>) -> Result<usize, StoreError> {
        let changed = self.lock().execute(
            "UPDATE shown SET ended_ms = max(started_ms, min(planned_until_ms, ?1))
             WHERE ended_ms IS NULL",
            params![at.timestamp_millis()],
        )?;
        Ok(changed)
    }

    /// Records a bulletin sent; it appears in the audit at `bulletin.at`.
    pub fn bulletin_recorded(&self, bulletin: &Bulletin) -> Result<i64, StoreError> {
        let conn = self.lock();
        conn.execute(
            "INSERT INTO bulletin (item, title, text_sha256, recipients, sent_ms, sent_by)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                bulletin.item,
                bulletin.title,
                text_hash(&bulletin.text),
                bulletin.recipients,
                bulletin.at.timestamp_millis(),
                bulletin.by,
            ],
        )?;
        Ok(conn.last_insert_rowid())
    }

    /// Everything recorded in `[from, to)`: the slots that overlap it (a slot's end is its
    /// recorded end, else its planned end), and the bulletins and actions inside it. With
    /// `display`, only that display's slots. In time order.
    pub fn audit(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        display: Option<&str>,
    ) -> Result<Vec<AuditRow>, StoreError> {
        let (from, to) = (from.timestamp_millis(), to.timestamp_millis());
        let conn = self.lock();
        let mut rows = Vec::new();
        let mut slots = conn.prepare(
            "SELECT s.display, s.kind, s.playlist, s.item, s.title, s.started_ms,
                    coalesce(s.ended_ms, s.planned_until_ms), s.ended_ms IS NULL, s.id
             FROM shown_span AS r JOIN shown AS s ON s.id = r.id
             WHERE r.start_ms < ?2 AND r.end_ms > ?1
               AND s.started_ms < ?2 AND coalesce(s.ended_ms, s.planned_until_ms) > ?1
               AND (?3 IS NULL OR s.display = ?3)",
        )?;
        let mut found = slots.query(params![from, to, display])?;
        let mut order = Vec::new();
        while let Some(row) = found.next()? {
            let kind: String = row.get(1)?;
            let kind = SlotKind::from_code(&kind)
                .ok_or_else(|| StoreError::Corrupt(format!("slot kind `{kind}`")))?;
            rows.push(AuditRow {
                display: Some(row.get(0)?),
                kind: AuditKind::Slot(kind),
                playlist: row.get(2)?,
                item: row.get(3)?,
                title: row.get(4)?,
                from: instant(row.get(5)?)?,
                to: instant(row.get(6)?)?,
                to_planned: row.get(7)?,
                by: None,
            });
            order.push((0u8, row.get::<_, i64>(8)?));
        }
        if display.is_none() {
            let mut bulletins = conn.prepare(
                "SELECT item, title, text_sha256, recipients, sent_ms, sent_by, id
                 FROM bulletin WHERE sent_ms >= ?1 AND sent_ms < ?2",
            )?;
            let mut found = bulletins.query(params![from, to])?;
            while let Some(row) = found.next()? {
                let at = instant(row.get(4)?)?;
                rows.push(AuditRow {
                    display: None,
                    kind: AuditKind::Bulletin {
                        recipients: row.get(3)?,
                        text_sha256: row.get(2)?,
                    },
                    playlist: None,
                    item: Some(row.get(0)?),
                    title: row.get(1)?,
                    from: at,
                    to: at,
                    to_planned: false,
                    by: Some(row.get(5)?),
                });
                order.push((1, row.get::<_, i64>(6)?));
            }
            let mut actions = conn.prepare(
                "SELECT action, subject, by, detail, at_ms, id
                 FROM action WHERE at_ms >= ?1 AND at_ms < ?2",
            )?;
            let mut found = actions.query(params![from, to])?;
            while let Some(row) = found.next()? {
                let action: String = row.get(0)?;
                let action = Action::from_code(&action)
                    .ok_or_else(|| StoreError::Corrupt(format!("action `{action}`")))?;
                let at = instant(row.get(4)?)?;
                rows.push(AuditRow {
                    display: None,
                    kind: AuditKind::Action(action),
                    playlist: None,
                    item: Some(row.get(1)?),
                    title: row.get(3)?,
                    from: at,
                    to: at,
                    to_planned: false,
                    by: Some(row.get(2)?),
                });
                order.push((2, row.get::<_, i64>(5)?));
            }
        }
        // Time first, then displays together, then the order things were written.
        let mut keyed: Vec<_> = rows.into_iter().zip(order).collect();
        keyed.sort_by(|(a, ka), (b, kb)| (a.from, &a.display, ka).cmp(&(b.from, &b.display, kb)));
        Ok(keyed.into_iter().map(|(row, _)| row).collect())
    }

    /// Keeps a new interrupt, and records that `created_by` added it.
    pub fn add_interrupt(&self, interrupt: &StoredInterrupt) -> Result<(), StoreError> {
        if interrupt.end < interrupt.start {
            return Err(StoreError::BadInterval {
                what: "the interrupt",
            });
        }
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let exists = tx
            .query_row(
                "SELECT 1 FROM interrupt WHERE id = ?1",
                [&interrupt.id],
                |_| Ok(()),
            )
            .optional()?
            .is_some();
        if exists {
            return Err(StoreError::DuplicateInterrupt(interrupt.id.clone()));
        }
        tx.execute(
            "INSERT INTO interrupt (id, start_ms, end_ms, text, created_by, created_ms,
                                    also_sms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                interrupt.id,
                interrupt.start.timestamp_millis(),
                interrupt.end.timestamp_millis(),
                interrupt.text,
                interrupt.created_by,
                interrupt.created_at.timestamp_millis(),
                interrupt.also_sms,
            ],
        )?;
        for target in &interrupt.targets {
            tx.execute(
                "INSERT OR IGNORE INTO interrupt_target (interrupt, target) VALUES (?1, ?2)",
                params![interrupt.id, target],
            )?;
        }
        record_action(
            &tx,
            interrupt.created_at,
            Action::InterruptAdded,
            &interrupt.id,
            &interrupt.created_by,
            &interrupt.text,
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Ends interrupt `id` at `at` (it is not cut before its start), and records that `by`
    /// ended it. `false` when there is no such interrupt or it had already ended by `at`.
    pub fn end_interrupt(&self, id: &str, at: DateTime<Utc>, by: &str) -> Result<bool, StoreError> {
        let at_ms = at.timestamp_millis();
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let text: Option<String> = tx
            .query_row(
                "SELECT text FROM interrupt WHERE id = ?1 AND end_ms > ?2",
                params![id, at_ms],
                |row| row.get(0),
            )
            .optional()?;
        let Some(text) = text else {
            return Ok(false);
        };
        tx.execute(
            "UPDATE interrupt SET end_ms = max(start_ms, ?2) WHERE id = ?1",
            params![id, at_ms],
        )?;
        record_action(&tx, at, Action::InterruptEnded, id, by, &text)?;
        tx.commit()?;
        Ok(true)
    }

    /// The interrupts that have not ended at `at`, including those that start later, in order
    /// of start: what the schedule needs after a restart. One cancelled before its start
    /// (ended at its start) is never listed.
    pub fn interrupts_active(&self, at: DateTime<Utc>) -> Result<Vec<StoredInterrupt>, StoreError> {
        let conn = self.lock();
        let mut query = conn.prepare(
            "SELECT id, start_ms, end_ms, text, created_by, created_ms, also_sms
             FROM interrupt WHERE end_ms > ?1 AND end_ms > start_ms
             ORDER BY start_ms, id",
        )?;
        let mut targets_of = conn
            .prepare("SELECT target FROM interrupt_target WHERE interrupt = ?1 ORDER BY target")?;
        let mut found = query.query([at.timestamp_millis()])?;
        let mut out = Vec::new();
        while let Some(row) = found.next()? {
            let id: String = row.get(0)?;
            let targets = targets_of
                .query_map([&id], |r| r.get(0))?
                .collect::<Result<Vec<String>, _>>()?;
            out.push(StoredInterrupt {
                targets,
                start: instant(row.get(1)?)?,
                end: instant(row.get(2)?)?,
                text: row.get(3)?,
                created_by: row.get(4)?,
                created_at: instant(row.get(5)?)?,
                also_sms: row.get(6)?,
                id,
            });
        }
        Ok(out)
    }
}

impl Store {
    /// Takes `item` off every board: recorded until [`Store::restore`], and in the audit.
    /// `false` when it was withdrawn already.
    pub fn withdraw(
        &self,
        item: &str,
        at: DateTime<Utc>,
        by: &str,
        reason: &str,
    ) -> Result<bool, StoreError> {
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let added = tx.execute(
            "INSERT OR IGNORE INTO withdrawal (item, at_ms, by, reason) VALUES (?1, ?2, ?3, ?4)",
            params![item, at.timestamp_millis(), by, reason],
        )?;
        if added == 0 {
            return Ok(false);
        }
        record_action(&tx, at, Action::ItemWithdrawn, item, by, reason)?;
        tx.commit()?;
        Ok(true)
    }

    /// Lets `item` be shown again. `false` when it was not withdrawn.
    pub fn restore(&self, item: &str, at: DateTime<Utc>, by: &str) -> Result<bool, StoreError> {
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let removed = tx.execute("DELETE FROM withdrawal WHERE item = ?1", params![item])?;
        if removed == 0 {
            return Ok(false);
        }
        record_action(&tx, at, Action::ItemRestored, item, by, "")?;
        tx.commit()?;
        Ok(true)
    }

    /// Records an operator's action in the audit: `subject` is what it concerns (an item, a
    /// bulletin), `detail` anything a later reader needs (a reason, a count).
    pub fn record(
        &self,
        action: Action,
        subject: &str,
        by: &str,
        detail: &str,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let conn = self.lock();
        record_action(&conn, at, action, subject, by, detail)?;
        Ok(())
    }

    /// Records a review (and its line in the audit) in one transaction.
    pub fn add_review(&self, review: &crate::review::Record) -> Result<(), StoreError> {
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute(
            "INSERT INTO review (item, stage, by, at_ms, hash) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                review.item,
                review.step.code(),
                review.by,
                review.at.timestamp_millis(),
                review.hash
            ],
        )?;
        let detail = format!("{} {}", review.step.code(), review.hash);
        let action = match review.step {
            crate::review::Step::MassSms => Action::SmsSecondApproval,
            crate::review::Step::Stage(_) => Action::ItemReviewed,
        };
        record_action(&tx, review.at, action, &review.item, &review.by, &detail)?;
        tx.commit()?;
        Ok(())
    }

    /// Every review recorded, oldest first. A row whose stage this build does not know is
    /// skipped (a newer gongkai may have written it), not an error.
    pub fn reviews(&self) -> Result<Vec<crate::review::Record>, StoreError> {
        let conn = self.lock();
        let mut query =
            conn.prepare("SELECT item, stage, by, at_ms, hash FROM review ORDER BY at_ms, id")?;
        let rows = query.query_map([], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, String>(2)?,
                row.get::<_, i64>(3)?,
                row.get::<_, String>(4)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (item, stage, by, at_ms, hash) = row?;
            let (Some(step), Some(at)) = (
                crate::review::Step::parse(&stage),
                DateTime::from_timestamp_millis(at_ms),
            ) else {
                continue;
            };
            out.push(crate::review::Record {
                item,
                step,
                by,
                at,
                hash,
            });
        }
        Ok(out)
    }

    /// Deletes audit rows (slots shown and ended, bulletins, operator actions) older than
    /// `before`, in one transaction; returns how many. Interrupts and withdrawals in force are
    /// state, not history, and stay; so do the reviews, which an item still on the boards
    /// needs however old its approval is (their lines in `action` go).
    pub fn prune_audit(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        let cutoff = before.timestamp_millis();
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut removed = 0;
        for sql in [
            "DELETE FROM shown WHERE ended_ms IS NOT NULL AND ended_ms < ?1",
            "DELETE FROM bulletin WHERE sent_ms < ?1",
            "DELETE FROM action WHERE at_ms < ?1",
        ] {
            removed += tx.execute(sql, params![cutoff])? as u64;
        }
        tx.commit()?;
        Ok(removed)
    }

    /// The items withdrawn now, sorted.
    pub fn withdrawn(&self) -> Result<Vec<String>, StoreError> {
        let conn = self.lock();
        let mut query = conn.prepare("SELECT item FROM withdrawal ORDER BY item")?;
        let items = query
            .query_map([], |row| row.get(0))?
            .collect::<Result<Vec<String>, _>>()?;
        Ok(items)
    }
}

/// The writer's settings: WAL so that `gongkai audit` reads while the daemon writes, and FULL
/// sync so that a committed audit row or interrupt survives a power cut, not only a crash.
fn configure(conn: &Connection) -> Result<(), StoreError> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    // journal_mode answers with a row, and stays set in the file.
    let mode: String =
        conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::NoWal(mode));
    }
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", true)?;
    Ok(())
}

fn record_action(
    conn: &Connection,
    at: DateTime<Utc>,
    action: Action,
    subject: &str,
    by: &str,
    detail: &str,
) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO action (at_ms, action, subject, by, detail) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![at.timestamp_millis(), action.code(), subject, by, detail],
    )?;
    Ok(())
}

/// A time read from the file.
fn instant(ms: i64) -> Result<DateTime<Utc>, StoreError> {
    DateTime::from_timestamp_millis(ms)
        .ok_or_else(|| StoreError::Corrupt(format!("time {ms} ms is out of range")))
}

fn open_connection(path: &Path, flags: OpenFlags) -> Result<Connection, StoreError> {
    Connection::open_with_flags(path, flags).map_err(|source| StoreError::Open {
        path: path.to_owned(),
        source,
    })
}

#[cfg(unix)]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt as _;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

#[cfg(not(unix))]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)
}

/// Creates the file with mode 0600 if it is missing, and takes group and other access away
/// from an existing one.
#[cfg(unix)]
fn create_private_file(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)?;
    let mode = file.metadata()?.permissions().mode();
    if mode & 0o077 != 0 {
        file.set_permissions(std::fs::Permissions::from_mode(mode & 0o700))?;
    }
    Ok(())
}

#[cfg(not(unix))]
fn create_private_file(path: &Path) -> std::io::Result<()> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map(drop)
}
