//! The SMS ledger: one SQLite file that is the queue, the record of every send, the subscriber
//! list and the opt-outs.
//!
//! Owns the schema, its migrations (`PRAGMA user_version`), and every state change of a
//! delivery. It does not decide what to send or when (the dispatcher does, and passes the time
//! in as Unix seconds), and it never talks to a gateway.
//!
//! Tables (schema version 1):
//! - `subscribers` (number, name, groups, topics; lists joined with `;`) and `opt_outs` (kept
//!   forever: an import never brings an opted-out number back).
//! - `messages`: the text that goes out. A single item's bulletin is one message shared by all
//!   its recipients; a daily digest is one message listing several items (`message_items`).
//! - `wants`: one row per item × number — the guard that an item reaches a subscriber at most
//!   once, whether alone or in a digest. `delivery` is empty while the item waits for a digest.
//! - `deliveries`: one row per message × number with a unique idempotency `key`, and its
//!   state: `queued → sending → sent | failed | unknown`.
//!
//! The rules that make restarts safe: a row is committed as `sending` **before** its gateway
//! is called; when the ledger is opened, rows still `sending` (the process died during the
//! call) become `unknown` — the gateway may have acted — and are never resent by the
//! dispatcher; only a delivery report or a status poll moves them on. A row goes back to
//! `queued` only when the gateway certainly did not act (connection refused, throttled).
//!
//! Durability: WAL with `synchronous=FULL`; the file (and with it SQLite's `-wal` and `-shm`
//! files) is created readable by its owner only, since it holds subscribers' numbers. Writes
//! are batched: one transaction per import and per enqueued bulletin; the sending path's
//! changes (`sending` before a call, the outcome after it) go through a group commit, so the
//! calls in flight at once share a transaction and its fsync, and each caller still returns
//! only once its own change is durable.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use rusqlite::{Connection, OptionalExtension as _, params};

use super::subscribers::{self, OptOuts, Subscriber};
use crate::config::raw::Category;

/// Where the ledger lives, relative to the site directory, unless told otherwise.
pub const DEFAULT_PATH: &str = "var/sms-ledger.sqlite";

/// The schema version this build writes.
pub const SCHEMA_VERSION: i64 = 1;

/// Why the ledger could not do something. Carries no subscriber number.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("cannot create the ledger file: {0}")]
    Create(std::io::Error),
    #[error("ledger database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("the ledger has schema version {found}, newer than this program's {supported}")]
    TooNew { found: i64, supported: i64 },
    #[error("the ledger is in use by a crashed thread")]
    Poisoned,
    #[error("ledger commit failed: {0}")]
    Commit(String),
}

/// A delivery's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    Queued,
    Sending,
    Sent,
    Failed,
    Unknown,
}

impl State {
    pub const ALL: [State; 5] = [
        State::Queued,
        State::Sending,
        State::Sent,
        State::Failed,
        State::Unknown,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            State::Queued => "queued",
            State::Sending => "sending",
            State::Sent => "sent",
            State::Failed => "failed",
            State::Unknown => "unknown",
        }
    }

    pub fn parse(text: &str) -> Option<State> {
        State::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

/// How many deliveries are in each state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StateCounts {
    pub queued: u64,
    pub sending: u64,
    pub sent: u64,
    pub failed: u64,
    pub unknown: u64,
}

impl StateCounts {
    fn add(&mut self, state: State, n: u64) {
        match state {
            State::Queued => self.queued += n,
            State::Sending => self.sending += n,
            State::Sent => self.sent += n,
            State::Failed => self.failed += n,
            State::Unknown => self.unknown += n,
        }
    }

    pub fn total(&self) -> u64 {
        self.queued + self.sending + self.sent + self.failed + self.unknown
    }
}

/// A message as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub id: i64,
    /// What the phone shows, 【signature】 included.
    pub text: String,
    /// The text without the 【signature】.
    pub body: String,
    /// The items it carries, in order (one, or several for a digest).
    pub items: Vec<String>,
}

/// A queued delivery that is due.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Due {
    pub id: i64,
    pub message: i64,
    pub number: String,
    pub urgent: bool,
}

/// A delivery row as `sms status` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub id: i64,
    pub message: i64,
    pub number: String,
    pub state: State,
    pub gateway: Option<String>,
    pub reference: Option<String>,
    pub serial: Option<String>,
    pub reason: Option<String>,
    pub attempts: i64,
    pub due_at: i64,
    /// The site-time date of the last call, `YYYY-MM-DD`.
    pub day: Option<String>,
    pub updated_at: i64,
}

/// How a call ended for one delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finish {
    Sent {
        reference: Option<String>,
        serial: Option<String>,
    },
    Failed {
        reason: String,
    },
    Unknown {
        reason: String,
    },
    /// The gateway certainly did not act: queued again, due at `due_at`.
    Requeue {
        due_at: i64,
        reason: String,
    },
}

/// The ledger. One connection behind a mutex: SQLite serialises writers anyway, and every
/// lock is held for one short transaction.
pub struct Ledger {
    conn: Mutex<Connection>,
    /// Changes waiting for the next group commit.
    queue: Mutex<Vec<(Op, Arc<Slot>)>>,
    recovered: u64,
}

/// A change of the sending path, applied in a group commit.
#[derive(Debug)]
enum Op {
    Sending {
        ids: Vec<i64>,
        gateway: String,
        day: String,
        now: i64,
    },
    Finish {
        outcomes: Vec<(i64, Finish)>,
        now: i64,
    },
}

/// Where a group commit leaves the result of one caller's change.
#[derive(Debug, Default)]
struct Slot(Mutex<Option<Result<(), String>>>);

impl Slot {
    fn take(&self) -> Result<Option<Result<(), String>>, LedgerError> {
        Ok(self.0.lock().map_err(|_| LedgerError::Poisoned)?.take())
    }

    fn put(&self, result: Result<(), String>) -> Result<(), LedgerError> {
        *self.0.lock().map_err(|_| LedgerError::Poisoned)? = Some(result);
        Ok(())
    }
}

/// Writes `batch` in one transaction.
fn apply(conn: &mut Connection, batch: &[(Op, Arc<Slot>)]) -> rusqlite::Result<()> {
    let tx = conn.transaction()?;
    {
        let mut sending = tx.prepare_cached(
            "UPDATE deliveries SET state = 'sending', gateway = ?2, day = ?3, \
             attempts = attempts + 1, reason = NULL, updated_at = ?4 \
             WHERE id = ?1 AND state = 'queued'",
        )?;
        let mut sent = tx.prepare_cached(
            "UPDATE deliveries SET state = 'sent', reference = COALESCE(?2, reference), \
             serial = COALESCE(?3, serial), reason = NULL, updated_at = ?4 \
             WHERE id = ?1 AND state IN ('sending', 'unknown', 'sent')",
        )?;
        let mut failed = tx.prepare_cached(
            "UPDATE deliveries SET state = 'failed', reason = ?2, updated_at = ?3 \
             WHERE id = ?1 AND state IN ('sending', 'unknown', 'sent', 'queued')",
        )?;
        let mut unknown = tx.prepare_cached(
            "UPDATE deliveries SET state = 'unknown', reason = ?2, updated_at = ?3 \
             WHERE id = ?1 AND state = 'sending'",
        )?;
        let mut requeue = tx.prepare_cached(
            "UPDATE deliveries SET state = 'queued', due_at = ?2, reason = ?3, updated_at = ?4 \
             WHERE id = ?1 AND state IN ('sending', 'queued')",
        )?;
        for (op, _) in batch {
            match op {
                Op::Sending {
                    ids,
                    gateway,
                    day,
                    now,
                } => {
                    for id in ids {
                        sending.execute(params![id, gateway, day, now])?;
                    }
                }
                Op::Finish { outcomes, now } => {
                    for (id, finish) in outcomes {
                        match finish {
                            Finish::Sent { reference, serial } => {
                                sent.execute(params![id, reference, serial, now])?
                            }
                            Finish::Failed { reason } => {
                                failed.execute(params![id, reason, now])?
                            }
                            Finish::Unknown { reason } => {
                                unknown.execute(params![id, reason, now])?
                            }
                            Finish::Requeue { due_at, reason } => {
                                requeue.execute(params![id, due_at, reason, now])?
                            }
                        };
                    }
                }
            }
        }
    }
    tx.commit()
}

impl std::fmt::Debug for Ledger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ledger")
            .field("recovered", &self.recovered)
            .finish_non_exhaustive()
    }
}

/// Creates the file readable and writable by its owner only, if it does not exist yet.
fn create_private(path: &Path) -> Result<(), LedgerError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(LedgerError::Create)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(false);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    options.open(path).map_err(LedgerError::Create)?;
    Ok(())
}

/// Brings a database from `from` to [`SCHEMA_VERSION`], one step at a time, each in its own
/// transaction with the version bump. A later version adds `2 => …` here and never edits a
/// step that has shipped.
fn migrate(conn: &mut Connection) -> Result<(), LedgerError> {
    let mut version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if version > SCHEMA_VERSION {
        return Err(LedgerError::TooNew {
            found: version,
            supported: SCHEMA_VERSION,
        });
    }
    while version < SCHEMA_VERSION {
        let tx = conn.transaction()?;
        match version {
            0 => tx.execute_batch(SCHEMA_V1)?,
            _ => unreachable!("every version below SCHEMA_VERSION has a step"),
        }
        version += 1;
        tx.pragma_update(None, "user_version", version)?;
        tx.commit()?;
    }
    Ok(())
}

const SCHEMA_V1: &str = "
CREATE TABLE subscribers (
    number TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    groups TEXT NOT NULL,
    topics TEXT NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE TABLE opt_outs (
    number TEXT PRIMARY KEY,
    at INTEGER NOT NULL,
    source TEXT NOT NULL
);
CREATE TABLE messages (
    id INTEGER PRIMARY KEY,
    text TEXT NOT NULL,
    body TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE TABLE message_items (
    message INTEGER NOT NULL REFERENCES messages(id),
    item TEXT NOT NULL,
    position INTEGER NOT NULL,
    PRIMARY KEY (message, item)
);
CREATE INDEX message_items_item ON message_items(item);
CREATE TABLE deliveries (
    id INTEGER PRIMARY KEY,
    message INTEGER NOT NULL REFERENCES messages(id),
    number TEXT NOT NULL,
    key TEXT NOT NULL UNIQUE,
    state TEXT NOT NULL,
    urgent INTEGER NOT NULL,
    due_at INTEGER NOT NULL,
    day TEXT,
    gateway TEXT,
    reference TEXT,
    serial TEXT,
    reason TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    updated_at INTEGER NOT NULL
);
CREATE INDEX deliveries_due ON deliveries(state, due_at);
CREATE INDEX deliveries_number ON deliveries(number, day);
CREATE INDEX deliveries_message ON deliveries(message);
CREATE TABLE wants (
    item TEXT NOT NULL,
    number TEXT NOT NULL,
    urgent INTEGER NOT NULL,
    due_at INTEGER NOT NULL,
    delivery INTEGER REFERENCES deliveries(id),
    PRIMARY KEY (item, number)
);
CREATE INDEX wants_pending ON wants(delivery, due_at);
";

fn join(set: impl IntoIterator<Item = impl AsRef<str>>) -> String {
    set.into_iter()
        .map(|s| s.as_ref().to_owned())
        .collect::<Vec<_>>()
        .join(";")
}

fn split(text: &str) -> impl Iterator<Item = &str> {
    text.split(';').filter(|s| !s.is_empty())
}

fn row_to_subscriber(number: String, name: String, groups: &str, topics: &str) -> Subscriber {
    Subscriber {
        number,
        name,
        groups: split(groups).map(str::to_owned).collect(),
        topics: split(topics).filter_map(subscribers::category).collect(),
    }
}

impl Ledger {
    /// Opens (creating it if needed) the ledger at `path`, migrates it, and turns rows left
    /// `sending` by a crash into `unknown` at `now`.
    pub fn open(path: &Path, now: i64) -> Result<Ledger, LedgerError> {
        create_private(path)?;
        let mut conn = Connection::open(path)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        let _mode: String =
            conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", true)?;
        migrate(&mut conn)?;
        let recovered = conn.execute(
            "UPDATE deliveries SET state = 'unknown', reason = 'in flight when the sender stopped', \
             updated_at = ?1 WHERE state = 'sending'",
            params![now],
        )? as u64;
        Ok(Ledger {
            conn: Mutex::new(conn),
            queue: Mutex::new(Vec::new()),
            recovered,
        })
    }

    /// Rows that were `sending` when the ledger was opened and are now `unknown`.
    pub fn recovered(&self) -> u64 {
        self.recovered
    }

    fn conn(&self) -> Result<MutexGuard<'_, Connection>, LedgerError> {
        self.conn.lock().map_err(|_| LedgerError::Poisoned)
    }

    /// The schema version of the open file.
    pub fn schema_version(&self) -> Result<i64, LedgerError> {
        Ok(self
            .conn()?
            .pragma_query_value(None, "user_version", |r| r.get(0))?)
    }

    // -- subscribers ----------------------------------------------------------------------

    /// Stores imported subscribers (merging groups and topics with a stored row); numbers that
    /// opted out are skipped. Returns how many were stored.
    pub fn import_subscribers<'a>(
        &self,
        subscribers: impl IntoIterator<Item = &'a Subscriber>,
        now: i64,
    ) -> Result<u64, LedgerError> {
        let mut conn = self.conn()?;
        let tx = conn.transaction()?;
        let mut stored = 0;
        {
            let mut opted = tx.prepare_cached("SELECT 1 FROM opt_outs WHERE number = ?1")?;
            let mut get = tx
                .prepare_cached("SELECT name, groups, topics FROM subscribers WHERE number = ?1")?;
            let mut put = tx.prepare_cached(
                "INSERT OR REPLACE INTO subscribers (number, name, groups, topics, updated_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            for s in subscribers {
                if opted.exists(params![s.number])? {
                    continue;
                }
                let old = get
                    .query_row(params![s.number], |r| {
                        Ok((
                            r.get::<_, String>(0)?,
                            r.get::<_, String>(1)?,
                            r.get::<_, String>(2)?,
                        ))
                    })
                    .optional()?;
                let merged = match old {
                    None => s.clone(),
                    Some((name, groups, topics)) => {
                        let old = row_to_subscriber(s.number.clone(), name, &groups, &topics);
                        let mut m = s.clone();
                        if m.name.is_empty() {
                            m.name = old.name;
                        }
                        m.groups.extend(old.groups);
                        if old.topics.is_empty() || m.topics.is_empty() {
                            m.topics.clear();
                        } else {
                            m.topics.extend(old.topics);
                        }
                        m
                    }
                };
                put.execute(params![
                    merged.number,
                    merged.name,
                    join(&merged.groups),
                    join(merged.topics.iter().map(|c| c.name())),
                    now
                ])?;
                stored += 1;
            }
        }
        tx.commit()?;
        Ok(stored)
    }

    /// How many subscribers are stored.
    pub fn subscriber_count(&self) -> Result<u64, LedgerError> {
        Ok(self
            .conn()?
            .query_row("SELECT COUNT(*) FROM subscribers", [], |r| {
                r.get::<_, i64>(0)
            })?
            .max(0) as u64)
    }

    /// Records an opt-out (kept forever) and removes the subscriber. `number` must be
    /// normalised. Returns whether it was new.
    pub fn opt_out(&self, number: &str, source: &str, now: i64) -> Result<bool, LedgerError> {
        let mut conn = self.conn()?;
        let tx = conn.transaction()?;
        let new = tx.execute(
            "INSERT OR IGNORE INTO opt_outs (number, at, source) VALUES (?1, ?2, ?3)",
            params![number, now, source],
        )? > 0;
        tx.execute("DELETE FROM subscribers WHERE number = ?1", params![number])?;
        // Anything still waiting for this number is not sent.
        tx.execute(
            "UPDATE deliveries SET state = 'failed', reason = 'opted out', updated_at = ?2 \
             WHERE number = ?1 AND state = 'queued'",
            params![number, now],
        )?;
        tx.commit()?;
        Ok(new)
    }

    /// Every opt-out.
    pub fn opt_outs(&self) -> Result<OptOuts, LedgerError> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare("SELECT number FROM opt_outs")?;
        let mut out = OptOuts::new();
        for number in stmt.query_map([], |r| r.get::<_, String>(0))? {
            // Stored numbers were normalised when stored.
            let _ = out.add(&number?);
        }
        Ok(out)
    }

    // -- enqueueing -----------------------------------------------------------------------

    /// Stores a message and the items it carries.
    pub fn add_message(
        &self,
        text: &str,
        body: &str,
        items: &[&str],
        now: i64,
    ) -> Result<i64, LedgerError> {
        let mut conn = self.conn()?;
        let tx = conn.transaction()?;
        let id = insert_message(&tx, text, body, items, now)?;
        tx.commit()?;
        Ok(id)
    }

    /// The message `id`.
    pub fn message(&self, id: i64) -> Result<Option<Message>, LedgerError> {
        let conn = self.conn()?;
        load_message(&conn, id)
    }

    /// The single-item message of `item`, if one was stored.
    pub fn item_message(&self, item: &str) -> Result<Option<i64>, LedgerError> {
        let conn = self.conn()?;
        Ok(conn
            .query_row(
                "SELECT mi.message FROM message_items mi WHERE mi.item = ?1 AND \
                 (SELECT COUNT(*) FROM message_items o WHERE o.message = mi.message) = 1 \
                 ORDER BY mi.message LIMIT 1",
                params![item],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// Selects the recipients of `item` (subscribers for whom `wants` holds, never an
    /// opted-out number) and records, in one transaction, that each should get it. With
    /// `message` the deliveries are created at once (due at `due_at`); without, the item waits
    /// for a digest built at `due_at`. A number that already has this item is left alone, so
    /// calling this twice sends nothing twice. Returns (recipients, newly recorded).
    pub fn enqueue_item(
        &self,
        item: &str,
        wants: impl Fn(&Subscriber) -> bool,
        message: Option<i64>,
        urgent: bool,
        due_at: i64,
        now: i64,
    ) -> Result<(u64, u64), LedgerError> {
        let mut conn = self.conn()?;
        let tx = conn.transaction()?;
        let (mut selected, mut added) = (0, 0);
        {
            let mut subs = tx.prepare(
                "SELECT s.number, s.name, s.groups, s.topics FROM subscribers s \
                 WHERE NOT EXISTS (SELECT 1 FROM opt_outs o WHERE o.number = s.number) \
                 ORDER BY s.number",
            )?;
            let mut want = tx.prepare_cached(
                "INSERT OR IGNORE INTO wants (item, number, urgent, due_at, delivery) \
                 VALUES (?1, ?2, ?3, ?4, NULL)",
            )?;
            let mut delivery = tx.prepare_cached(
                "INSERT OR IGNORE INTO deliveries (message, number, key, state, urgent, due_at, updated_at) \
                 VALUES (?1, ?2, ?3, 'queued', ?4, ?5, ?6)",
            )?;
            let mut link = tx.prepare_cached(
                "UPDATE wants SET delivery = (SELECT id FROM deliveries WHERE key = ?3) \
                 WHERE item = ?1 AND number = ?2 AND delivery IS NULL",
            )?;
            let mut pending = tx.prepare_cached(
                "SELECT 1 FROM wants WHERE item = ?1 AND number = ?2 AND delivery IS NULL",
            )?;
            let mut rows = subs.query([])?;
            while let Some(r) = rows.next()? {
                let s = row_to_subscriber(
                    r.get(0)?,
                    r.get(1)?,
                    &r.get::<_, String>(2)?,
                    &r.get::<_, String>(3)?,
                );
                if !wants(&s) {
                    continue;
                }
                selected += 1;
                if want.execute(params![item, s.number, urgent, due_at])? > 0 {
                    added += 1;
                } else if message.is_none() || !pending.exists(params![item, s.number])? {
                    // Already delivered (or queued) to this number: never twice.
                    continue;
                }
                // New, or waiting for a digest and now sent on its own (urgent).
                if let Some(message) = message {
                    let key = format!("i/{item}/{}", s.number);
                    delivery.execute(params![message, s.number, key, urgent, due_at, now])?;
                    link.execute(params![item, s.number, key])?;
                }
            }
        }
        tx.commit()?;
        Ok((selected, added))
    }

    /// What [`Ledger::enqueue_item`] would do, without doing it: (recipients, new).
    pub fn count_recipients(
        &self,
        item: &str,
        wants: impl Fn(&Subscriber) -> bool,
    ) -> Result<(u64, u64), LedgerError> {
        let conn = self.conn()?;
        let mut subs = conn.prepare(
            "SELECT s.number, s.name, s.groups, s.topics, \
             EXISTS (SELECT 1 FROM wants w WHERE w.item = ?1 AND w.number = s.number) \
             FROM subscribers s \
             WHERE NOT EXISTS (SELECT 1 FROM opt_outs o WHERE o.number = s.number)",
        )?;
        let mut rows = subs.query(params![item])?;
        let (mut selected, mut new) = (0, 0);
        while let Some(r) = rows.next()? {
            let s = row_to_subscriber(
                r.get(0)?,
                r.get(1)?,
                &r.get::<_, String>(2)?,
                &r.get::<_, String>(3)?,
            );
            if wants(&s) {
                selected += 1;
                if !r.get::<_, bool>(4)? {
                    new += 1;
                }
            }
        }
        Ok((selected, new))
    }

    /// The states of deliveries `ids`.
    pub fn states_of(
        &self,
        ids: impl IntoIterator<Item = i64>,
    ) -> Result<HashMap<i64, State>, LedgerError> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare_cached("SELECT state FROM deliveries WHERE id = ?1")?;
        let mut out = HashMap::new();
        for id in ids {
            if let Some(state) = stmt
                .query_row(params![id], |r| r.get::<_, String>(0))
                .optional()?
                .as_deref()
                .and_then(State::parse)
            {
                out.insert(id, state);
            }
        }
        Ok(out)
    }

    /// Items waiting for a digest that is due, grouped by number: (number, urgent, items).
    pub fn pending_digests(&self, now: i64) -> Result<Vec<(String, Vec<String>)>, LedgerError> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare(
            "SELECT number, item FROM wants WHERE delivery IS NULL AND due_at <= ?1 \
             ORDER BY number, item",
        )?;
        let mut out: Vec<(String, Vec<String>)> = Vec::new();
        let mut rows = stmt.query(params![now])?;
        while let Some(r) = rows.next()? {
            let number: String = r.get(0)?;
            let item: String = r.get(1)?;
            match out.last_mut() {
                Some((n, items)) if *n == number => items.push(item),
                _ => out.push((number, vec![item])),
            }
        }
        Ok(out)
    }

    /// Creates the deliveries of digests: each `(number, items, message)` becomes one queued
    /// delivery of `message`, and the items' `wants` rows point at it. One transaction.
    pub fn enqueue_digests(
        &self,
        digests: &[(&str, &[String], i64)],
        due_at: i64,
        now: i64,
    ) -> Result<u64, LedgerError> {
        let mut conn = self.conn()?;
        let tx = conn.transaction()?;
        let mut added = 0;
        {
            let mut delivery = tx.prepare_cached(
                "INSERT OR IGNORE INTO deliveries (message, number, key, state, urgent, due_at, updated_at) \
                 VALUES (?1, ?2, ?3, 'queued', 0, ?4, ?5)",
            )?;
            let mut link = tx.prepare_cached(
                "UPDATE wants SET delivery = (SELECT id FROM deliveries WHERE key = ?3) \
                 WHERE item = ?1 AND number = ?2 AND delivery IS NULL",
            )?;
            for (number, items, message) in digests {
                let key = format!("d/{number}/{}", items.join("+"));
                added += delivery.execute(params![message, number, key, due_at, now])? as u64;
                for item in items.iter() {
                    link.execute(params![item, number, key])?;
                }
            }
        }
        tx.commit()?;
        Ok(added)
    }

    /// Stores a message for a digest in the same transaction style as [`Ledger::add_message`].
    pub fn digest_message(
        &self,
        text: &str,
        body: &str,
        items: &[String],
        now: i64,
    ) -> Result<i64, LedgerError> {
        let items: Vec<&str> = items.iter().map(String::as_str).collect();
        self.add_message(text, body, &items, now)
    }

    // -- sending --------------------------------------------------------------------------

    /// Up to `limit` queued deliveries due at `now`, by message then id. With `quiet`, only
    /// urgent ones.
    pub fn due(&self, now: i64, quiet: bool, limit: usize) -> Result<Vec<Due>, LedgerError> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare_cached(
            "SELECT id, message, number, urgent FROM deliveries \
             WHERE state = 'queued' AND due_at <= ?1 AND (urgent = 1 OR ?2 = 0) \
             ORDER BY message, id LIMIT ?3",
        )?;
        let rows = stmt.query_map(params![now, quiet, limit as i64], |r| {
            Ok(Due {
                id: r.get(0)?,
                message: r.get(1)?,
                number: r.get(2)?,
                urgent: r.get(3)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The earliest time a queued delivery is due, if any.
    pub fn next_due(&self) -> Result<Option<i64>, LedgerError> {
        let conn = self.conn()?;
        Ok(conn.query_row(
            "SELECT MIN(due_at) FROM deliveries WHERE state = 'queued'",
            [],
            |r| r.get(0),
        )?)
    }

    /// How many messages each number has been given (or may have been given) on `day`.
    pub fn day_counts(&self, day: &str) -> Result<HashMap<String, u32>, LedgerError> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare_cached(
            "SELECT number, COUNT(*) FROM deliveries WHERE day = ?1 \
             AND state IN ('sending', 'sent', 'unknown') GROUP BY number",
        )?;
        let rows = stmt.query_map(params![day], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, u32>(1)?))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Moves deliveries to `sending` on `gateway` and commits, before the call.
    pub fn mark_sending(
        &self,
        ids: &[i64],
        gateway: &str,
        day: &str,
        now: i64,
    ) -> Result<(), LedgerError> {
        self.commit(Op::Sending {
            ids: ids.to_vec(),
            gateway: gateway.to_owned(),
            day: day.to_owned(),
            now,
        })
    }

    /// Records how calls ended and commits. Only rows in `sending` (or, for reports and
    /// polls, `unknown`/`sent`) change.
    pub fn finish(&self, outcomes: &[(i64, Finish)], now: i64) -> Result<(), LedgerError> {
        if outcomes.is_empty() {
            return Ok(());
        }
        self.commit(Op::Finish {
            outcomes: outcomes.to_vec(),
            now,
        })
    }

    /// Group commit: the change is queued, then whoever holds the connection next writes
    /// every queued change in one transaction and one fsync, and each caller returns once its
    /// own change is durable. Calls in flight at once thus share commits instead of waiting
    /// for one fsync each.
    fn commit(&self, op: Op) -> Result<(), LedgerError> {
        let slot: Arc<Slot> = Arc::default();
        self.queue
            .lock()
            .map_err(|_| LedgerError::Poisoned)?
            .push((op, slot.clone()));
        let mut conn = self.conn()?;
        if let Some(result) = slot.take()? {
            return result.map_err(LedgerError::Commit);
        }
        let batch = std::mem::take(&mut *self.queue.lock().map_err(|_| LedgerError::Poisoned)?);
        let result = apply(&mut conn, &batch).map_err(|e| e.to_string());
        drop(conn);
        for (_, other) in &batch {
            other.put(result.clone())?;
        }
        slot.take()?.unwrap_or(Ok(())).map_err(LedgerError::Commit)
    }

    /// Deliveries in `state`, oldest first, at most `limit`.
    pub fn in_state(&self, state: State, limit: usize) -> Result<Vec<Row>, LedgerError> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {ROW_COLUMNS} FROM deliveries WHERE state = ?1 ORDER BY id LIMIT ?2"
        ))?;
        let rows = stmt.query_map(params![state.as_str(), limit as i64], read_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The delivery a report is about: `number` at `gateway`, by the gateway's reference or
    /// serial when given, else the latest one not yet final.
    pub fn find_for_report(
        &self,
        gateway: &str,
        number: &str,
        reference: Option<&str>,
        serial: Option<&str>,
    ) -> Result<Option<Row>, LedgerError> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {ROW_COLUMNS} FROM deliveries WHERE number = ?1 AND gateway = ?2 \
             AND state IN ('sending', 'sent', 'unknown') \
             AND (?3 IS NULL OR reference = ?3 OR reference IS NULL) \
             AND (?4 IS NULL OR serial = ?4 OR serial IS NULL) \
             ORDER BY (serial = ?4) DESC, (reference = ?3) DESC, id DESC LIMIT 1"
        ))?;
        Ok(stmt
            .query_row(params![number, gateway, reference, serial], read_row)
            .optional()?)
    }

    /// Counts by state over every delivery, or over the deliveries of messages carrying
    /// `item`.
    pub fn counts(&self, item: Option<&str>) -> Result<StateCounts, LedgerError> {
        let conn = self.conn()?;
        let mut out = StateCounts::default();
        let mut add = |rows: &mut rusqlite::Rows<'_>| -> Result<(), LedgerError> {
            while let Some(r) = rows.next()? {
                let state: String = r.get(0)?;
                let n = r.get::<_, i64>(1)?.max(0) as u64;
                if let Some(state) = State::parse(&state) {
                    out.add(state, n);
                }
            }
            Ok(())
        };
        match item {
            None => {
                let mut stmt =
                    conn.prepare("SELECT state, COUNT(*) FROM deliveries GROUP BY state")?;
                add(&mut stmt.query([])?)?;
            }
            Some(item) => {
                let mut stmt = conn.prepare(
                    "SELECT d.state, COUNT(*) FROM deliveries d WHERE d.message IN \
                     (SELECT message FROM message_items WHERE item = ?1) GROUP BY d.state",
                )?;
                add(&mut stmt.query(params![item])?)?;
            }
        }
        Ok(out)
    }

    /// Items waiting for a digest (recipients recorded, no delivery yet), for `item` or all.
    pub fn waiting(&self, item: Option<&str>) -> Result<u64, LedgerError> {
        let conn = self.conn()?;
        let n: i64 = conn.query_row(
            "SELECT COUNT(*) FROM wants WHERE delivery IS NULL AND (?1 IS NULL OR item = ?1)",
            params![item],
            |r| r.get(0),
        )?;
        Ok(n.max(0) as u64)
    }

    /// The deliveries of messages carrying `item` (or of message `id` when `item` is a
    /// number), failed and unknown first, at most `limit`.
    pub fn rows_of(&self, item: &str, limit: usize) -> Result<Vec<Row>, LedgerError> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare(&format!(
            "SELECT {ROW_COLUMNS} FROM deliveries WHERE message IN \
             (SELECT message FROM message_items WHERE item = ?1) \
             ORDER BY CASE state WHEN 'failed' THEN 0 WHEN 'unknown' THEN 1 ELSE 2 END, id \
             LIMIT ?2"
        ))?;
        let rows = stmt.query_map(params![item, limit as i64], read_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Every number in `numbers` that already has a delivery of `message` — for tests and
    /// checks of the idempotency rule.
    pub fn numbers_of(&self, message: i64) -> Result<BTreeSet<String>, LedgerError> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare("SELECT number FROM deliveries WHERE message = ?1")?;
        let rows = stmt.query_map(params![message], |r| r.get::<_, String>(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Numbers of every stored subscriber; a helper for selection checks.
    pub fn subscriber_numbers(&self) -> Result<HashSet<String>, LedgerError> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare("SELECT number FROM subscribers")?;
        let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

const ROW_COLUMNS: &str = "id, message, number, state, gateway, reference, serial, reason, attempts, \
     due_at, day, updated_at";

fn read_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Row> {
    let state: String = r.get(3)?;
    Ok(Row {
        id: r.get(0)?,
        message: r.get(1)?,
        number: r.get(2)?,
        state: State::parse(&state).unwrap_or(State::Unknown),
        gateway: r.get(4)?,
        reference: r.get(5)?,
        serial: r.get(6)?,
        reason: r.get(7)?,
        attempts: r.get(8)?,
        due_at: r.get(9)?,
        day: r.get(10)?,
        updated_at: r.get(11)?,
    })
}

fn insert_message(
    tx: &rusqlite::Transaction<'_>,
    text: &str,
    body: &str,
    items: &[&str],
    now: i64,
) -> Result<i64, LedgerError> {
    tx.execute(
        "INSERT INTO messages (text, body, created_at) VALUES (?1, ?2, ?3)",
        params![text, body, now],
    )?;
    let id = tx.last_insert_rowid();
    let mut stmt = tx.prepare_cached(
        "INSERT OR IGNORE INTO message_items (message, item, position) VALUES (?1, ?2, ?3)",
    )?;
    for (i, item) in items.iter().enumerate() {
        stmt.execute(params![id, item, i as i64])?;
    }
    Ok(id)
}

fn load_message(conn: &Connection, id: i64) -> Result<Option<Message>, LedgerError> {
    let Some((text, body)) = conn
        .query_row(
            "SELECT text, body FROM messages WHERE id = ?1",
            params![id],
            |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)),
        )
        .optional()?
    else {
        return Ok(None);
    };
    let mut stmt =
        conn.prepare_cached("SELECT item FROM message_items WHERE message = ?1 ORDER BY position")?;
    let items = stmt
        .query_map(params![id], |r| r.get::<_, String>(0))?
        .collect::<Result<_, _>>()?;
    Ok(Some(Message {
        id,
        text,
        body,
        items,
    }))
}

/// Whether `subscriber` gets an item of `category` addressed to `groups`.
pub fn wants(subscriber: &Subscriber, category: Category, groups: &[String]) -> bool {
    subscriber.wants(category, groups)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sub(number: &str, groups: &[&str]) -> Subscriber {
        Subscriber {
            number: number.into(),
            name: String::new(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
            topics: BTreeSet::new(),
        }
    }

    fn open(dir: &Path) -> Ledger {
        Ledger::open(&dir.join("var/ledger.sqlite"), 1_000).unwrap()
    }

    #[test]
    fn a_new_ledger_is_private_wal_and_at_the_current_version() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = open(dir.path());
        assert_eq!(ledger.schema_version().unwrap(), SCHEMA_VERSION);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(dir.path().join("var/ledger.sqlite"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let conn = ledger.conn().unwrap();
        let mode: String = conn
            .pragma_query_value(None, "journal_mode", |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        let sync: i64 = conn
            .pragma_query_value(None, "synchronous", |r| r.get(0))
            .unwrap();
        assert_eq!(sync, 2, "FULL");
    }

    #[test]
    fn a_ledger_from_a_newer_program_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("l.sqlite");
        drop(Ledger::open(&path, 0).unwrap());
        Connection::open(&path)
            .unwrap()
            .pragma_update(None, "user_version", 99)
            .unwrap();
        assert!(matches!(
            Ledger::open(&path, 0),
            Err(LedgerError::TooNew { found: 99, .. })
        ));
    }

    #[test]
    fn rows_left_sending_by_a_crash_become_unknown_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = open(dir.path());
        ledger
            .import_subscribers(&[sub("13800138000", &[]), sub("13900139000", &[])], 1)
            .unwrap();
        let m = ledger.add_message("t", "b", &["n1"], 1).unwrap();
        ledger
            .enqueue_item("n1", |_| true, Some(m), false, 1, 1)
            .unwrap();
        let due = ledger.due(10, false, 10).unwrap();
        assert_eq!(due.len(), 2);
        ledger
            .mark_sending(&[due[0].id], "gw", "2026-12-01", 5)
            .unwrap();
        drop(ledger);
        let again = open(dir.path());
        assert_eq!(again.recovered(), 1);
        let counts = again.counts(Some("n1")).unwrap();
        assert_eq!((counts.unknown, counts.queued, counts.sending), (1, 1, 0));
        // An unknown row is never due again.
        assert_eq!(again.due(100, false, 10).unwrap().len(), 1);
    }

    #[test]
    fn enqueueing_an_item_twice_records_each_number_once() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = open(dir.path());
        ledger
            .import_subscribers(
                &[sub("13800138000", &["南安镇"]), sub("13900139000", &[])],
                1,
            )
            .unwrap();
        let m = ledger.add_message("t", "b", &["n1"], 1).unwrap();
        let nanan = vec!["南安镇".to_owned()];
        let pick = |s: &Subscriber| wants(s, Category::Procurement, &nanan);
        assert_eq!(
            ledger
                .enqueue_item("n1", pick, Some(m), false, 1, 1)
                .unwrap(),
            (1, 1)
        );
        assert_eq!(
            ledger
                .enqueue_item("n1", pick, Some(m), false, 1, 1)
                .unwrap(),
            (1, 0)
        );
        assert_eq!(ledger.counts(None).unwrap().queued, 1);
    }

    #[test]
    fn an_opt_out_wins_over_a_later_import() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = open(dir.path());
        ledger
            .import_subscribers(&[sub("13800138000", &[])], 1)
            .unwrap();
        assert!(ledger.opt_out("13800138000", "TD", 2).unwrap());
        assert_eq!(
            ledger
                .import_subscribers(&[sub("13800138000", &[])], 3)
                .unwrap(),
            0
        );
        assert_eq!(ledger.subscriber_count().unwrap(), 0);
        assert!(ledger.opt_outs().unwrap().contains("13800138000"));
    }

    #[test]
    fn only_a_sending_row_can_become_unknown_and_a_final_state_is_not_undone_by_requeue() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = open(dir.path());
        ledger
            .import_subscribers(&[sub("13800138000", &[])], 1)
            .unwrap();
        let m = ledger.add_message("t", "b", &["n1"], 1).unwrap();
        ledger
            .enqueue_item("n1", |_| true, Some(m), false, 1, 1)
            .unwrap();
        let id = ledger.due(5, false, 1).unwrap()[0].id;
        ledger.mark_sending(&[id], "gw", "d", 2).unwrap();
        ledger
            .finish(
                &[(
                    id,
                    Finish::Sent {
                        reference: Some("r".into()),
                        serial: None,
                    },
                )],
                3,
            )
            .unwrap();
        ledger
            .finish(
                &[(
                    id,
                    Finish::Requeue {
                        due_at: 9,
                        reason: "x".into(),
                    },
                )],
                4,
            )
            .unwrap();
        ledger
            .finish(&[(id, Finish::Unknown { reason: "x".into() })], 4)
            .unwrap();
        let c = ledger.counts(None).unwrap();
        assert_eq!(c.sent, 1);
    }

    #[test]
    fn changes_from_many_threads_are_all_committed_by_the_group_commit() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = Arc::new(open(dir.path()));
        let subs: Vec<Subscriber> = (0..400).map(|i| sub(&format!("138{i:08}"), &[])).collect();
        ledger.import_subscribers(&subs, 1).unwrap();
        let m = ledger.add_message("t", "b", &["n1"], 1).unwrap();
        ledger
            .enqueue_item("n1", |_| true, Some(m), false, 1, 1)
            .unwrap();
        let due = ledger.due(5, false, 1_000).unwrap();
        let threads: Vec<_> = due
            .chunks(50)
            .map(|chunk| {
                let ids: Vec<i64> = chunk.iter().map(|d| d.id).collect();
                let ledger = ledger.clone();
                std::thread::spawn(move || {
                    ledger.mark_sending(&ids, "gw", "d", 2).unwrap();
                    let done: Vec<(i64, Finish)> = ids
                        .iter()
                        .map(|id| {
                            (
                                *id,
                                Finish::Sent {
                                    reference: None,
                                    serial: None,
                                },
                            )
                        })
                        .collect();
                    ledger.finish(&done, 3).unwrap();
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let c = ledger.counts(None).unwrap();
        assert_eq!((c.sent, c.total()), (400, 400));
    }
}
