//! The SMS ledger: one SQLite file that is the queue, the record of every send, the subscriber
//! list, the opt-outs and the consent history.
//!
//! Owns the schema, its migrations (`PRAGMA user_version`), and every state change of a
//! delivery. It does not decide what to send or when (the dispatcher does, and passes the time
//! in as Unix seconds), and it never talks to a gateway.
//!
//! Tables (schema version 2):
//! - `subscribers` (number, name, groups, topics; lists joined with `;`) and `opt_outs` (kept
//!   forever: an import never brings an opted-out number back).
//! - `consents` (step 2): every opt-in and opt-out with when, how (窗口登记, 短信回复, 导入, …)
//!   and from where (a file, a gateway) — the record the personal-information law asks for.
//! - `messages`: the text that goes out. A single item's bulletin is one message shared by all
//!   its recipients; a daily digest is one message listing several items (`message_items`).
//!   Once every delivery of a message is final and it is older than the retention period, its
//!   text is pruned ([`Ledger::prune_texts`]): the SHA-256 of the text stays, as do the rows.
//! - `wants`: one row per item × number — the guard that an item reaches a subscriber at most
//!   once, whether alone or in a digest. `delivery` is empty while the item waits for a digest;
//!   `cancelled_at` is set when it was cancelled while waiting.
//! - `deliveries`: one row per message × number with a unique idempotency `key`, and its
//!   state: `queued → sending → sent | failed | unknown`, and `queued → cancelled`. When the
//!   dispatcher last asked a gateway about an `unknown` row is `reconciled_at`; an operator's
//!   confirmed resend of such a row is `resent_by`/`resent_at`, with a new key.
//!
//! The rules that make restarts safe: a row is committed as `sending` **before** its gateway
//! is called, and only rows still `queued` at that commit are called (so a cancellation
//! committed by another process stops them); when the ledger is opened and no other sender
//! has it open (a lock file beside it tells), rows still `sending` (the process died during
//! the call) become `unknown` — the gateway may have acted — and are never resent by the
//! dispatcher; only a delivery report, a status poll, or an operator's
//! confirmed resend after a reconciliation moves them on. A row goes back to `queued` only
//! when the gateway certainly did not act (connection refused, throttled).
//!
//! Durability: WAL with `synchronous=FULL`; the file (and with it SQLite's `-wal` and `-shm`
//! files) is created readable by its owner only, since it holds subscribers' numbers. Writes
//! are batched: one transaction per import and per enqueued bulletin; the sending path's
//! changes (`sending` before a call, the outcome after it) go through a group commit, so the
//! calls in flight at once share a transaction and its fsync, and each caller still returns
//! only once its own change is durable.
//!
//! Faults: a full disk (or the size limit of [`OpenOptions::max_pages`]) and a read-only file
//! are [`LedgerError::Full`] and [`LedgerError::ReadOnly`]. An outcome that could not be
//! committed leaves its rows `sending` in the file — in doubt, `unknown` at the next open —
//! and is kept in memory and written by the next commit that succeeds: a row is never `sent`
//! without an accepted answer, and never queued again blindly.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use rusqlite::{Connection, OptionalExtension as _, params};

use super::subscribers::{self, OptOuts, Subscriber};
use crate::config::raw::Category;

/// Where the ledger lives, relative to the site directory, unless told otherwise.
pub const DEFAULT_PATH: &str = "var/sms-ledger.sqlite";

/// The schema version this build writes.
pub const SCHEMA_VERSION: i64 = 2;

/// Why the ledger could not do something. Carries no subscriber number.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("cannot create the ledger file: {0}")]
    Create(std::io::Error),
    #[error("ledger database error: {0}")]
    Sqlite(rusqlite::Error),
    /// The disk is full, or the file reached [`OpenOptions::max_pages`].
    #[error("the ledger's disk is full: {0}")]
    Full(String),
    /// The file, its directory or its filesystem can only be read, or the ledger was opened
    /// with [`OpenOptions::read_only`].
    #[error("the ledger can only be read (read-only file, directory or filesystem): {0}")]
    ReadOnly(String),
    #[error("the ledger has schema version {found}, newer than this program's {supported}")]
    TooNew { found: i64, supported: i64 },
    #[error("the file's schema version {0} is not one of a gongkai ledger")]
    NotALedger(i64),
    #[error("the ledger is in use by a crashed thread")]
    Poisoned,
    #[error("ledger commit failed: {0}")]
    Commit(String),
}

impl From<rusqlite::Error> for LedgerError {
    /// Full disks and read-only files get their own variants: the operator's remedy differs.
    fn from(e: rusqlite::Error) -> LedgerError {
        match e.sqlite_error_code() {
            Some(rusqlite::ErrorCode::DiskFull) => LedgerError::Full(e.to_string()),
            Some(rusqlite::ErrorCode::ReadOnly) => LedgerError::ReadOnly(e.to_string()),
            _ => LedgerError::Sqlite(e),
        }
    }
}

impl LedgerError {
    /// The catalogue key of the operator's message (with `%{reason}`).
    pub fn key(&self) -> &'static str {
        match self {
            LedgerError::Full(_) => "sms.ledger.full",
            LedgerError::ReadOnly(_) => "sms.ledger.read_only",
            _ => "sms.send.ledger",
        }
    }

    /// What goes into the `%{reason}` of [`LedgerError::key`]'s message: without the words
    /// the message already says.
    pub fn detail(&self) -> String {
        match self {
            LedgerError::Full(why) | LedgerError::ReadOnly(why) => why.clone(),
            other => other.to_string(),
        }
    }
}

/// A failed group commit, as every caller of the batch gets it.
#[derive(Debug, Clone)]
struct Failure {
    code: Option<rusqlite::ErrorCode>,
    text: String,
}

impl Failure {
    fn of(e: &rusqlite::Error) -> Failure {
        Failure {
            code: e.sqlite_error_code(),
            text: e.to_string(),
        }
    }
}

impl From<Failure> for LedgerError {
    fn from(f: Failure) -> LedgerError {
        match f.code {
            Some(rusqlite::ErrorCode::DiskFull) => LedgerError::Full(f.text),
            Some(rusqlite::ErrorCode::ReadOnly) => LedgerError::ReadOnly(f.text),
            _ => LedgerError::Commit(f.text),
        }
    }
}

/// How the ledger is opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenOptions {
    /// Turn rows left `sending` by a sender that died into `unknown` (default), when no other
    /// sender has the ledger open (a lock file beside it, `…-senders`, tells). Without, the
    /// ledger takes no part in that: the commands that only look or cancel
    /// (`gongkai sms cancel`, `status`, `unknown`, `consent`) open it so.
    pub recover: bool,
    /// Open for reading only (SQLite's `SQLITE_OPEN_READ_ONLY`): every write is
    /// [`LedgerError::ReadOnly`], and a file that needs migrating is refused. It is also what
    /// SQLite falls back to when the file or its filesystem cannot be written, which
    /// [`Ledger::open`] reports as `ReadOnly` at once rather than at the first send.
    pub read_only: bool,
    /// SQLite's `max_page_count`: the file never grows beyond this many pages, and a write
    /// that would is [`LedgerError::Full`] — exactly what a full disk gives. It bounds the
    /// ledger on a small card, and it is how the tests fill the "disk" in a way no user, not
    /// even root, can bypass. `None`: SQLite's default (no practical limit).
    pub max_pages: Option<u64>,
}

impl Default for OpenOptions {
    fn default() -> OpenOptions {
        OpenOptions {
            recover: true,
            read_only: false,
            max_pages: None,
        }
    }
}

/// A delivery's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    Queued,
    Sending,
    Sent,
    Failed,
    Unknown,
    /// Never sent: cancelled (an item withdrawn, `gongkai sms cancel`) before a gateway got it.
    Cancelled,
}

impl State {
    pub const ALL: [State; 6] = [
        State::Queued,
        State::Sending,
        State::Sent,
        State::Failed,
        State::Unknown,
        State::Cancelled,
    ];

    /// Whether nothing moves the row on any more (`unknown` is not: a report may).
    pub fn is_final(self) -> bool {
        matches!(self, State::Sent | State::Failed | State::Cancelled)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            State::Queued => "queued",
            State::Sending => "sending",
            State::Sent => "sent",
            State::Failed => "failed",
            State::Unknown => "unknown",
            State::Cancelled => "cancelled",
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
    pub cancelled: u64,
}

impl StateCounts {
    fn add(&mut self, state: State, n: u64) {
        match state {
            State::Queued => self.queued += n,
            State::Sending => self.sending += n,
            State::Sent => self.sent += n,
            State::Failed => self.failed += n,
            State::Unknown => self.unknown += n,
            State::Cancelled => self.cancelled += n,
        }
    }

    pub fn total(&self) -> u64 {
        self.queued + self.sending + self.sent + self.failed + self.unknown + self.cancelled
    }
}

/// What a confirmed resend did (or, in a dry run, would do).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Resend {
    /// Rows moved back to `queued`.
    pub requeued: u64,
    /// `unknown` rows left alone because no reconciliation has asked about them yet.
    pub never_reconciled: u64,
}

/// One entry of a number's consent history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Consent {
    /// Normalised.
    pub number: String,
    /// When the subscriber gave (or withdrew) consent, Unix seconds.
    pub at: i64,
    /// An opt-in; `false`: an opt-out.
    pub opt_in: bool,
    /// How: 窗口登记, 短信回复, 网上申请, 导入, … as recorded.
    pub how: String,
    /// Where it came from: a file, a gateway.
    pub source: String,
}

/// How a TD reply is recorded in the consent history.
pub const HOW_REPLY: &str = "短信回复";
/// How an import without a consent column is recorded.
pub const HOW_IMPORT: &str = "导入";

fn insert_consents(
    tx: &rusqlite::Transaction<'_>,
    consents: &[Consent],
    now: i64,
) -> Result<(), LedgerError> {
    let mut stmt = tx.prepare_cached(
        "INSERT INTO consents (number, at, opt_in, how, source, recorded_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?;
    for c in consents {
        stmt.execute(params![c.number, c.at, c.opt_in, c.how, c.source, now])?;
    }
    Ok(())
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
    /// When a reconciliation last asked about this row while it was `unknown`.
    pub reconciled_at: Option<i64>,
    /// Who confirmed the last resend of this row, and when.
    pub resent_by: Option<String>,
    pub resent_at: Option<i64>,
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
    /// Outcomes whose commit failed (a full disk): their rows are `sending` in the file. Each
    /// later group commit writes them first, so a known outcome is recorded once there is room
    /// again; if the process stops before that, the rows are `unknown` at the next open.
    unwritten: Mutex<Vec<Op>>,
    recovered: u64,
    read_only: bool,
    /// A shared lock on the senders' lock file, held while the ledger is open (see
    /// [`sender_lock`]).
    _senders: Option<std::fs::File>,
}

/// A change of the sending path, applied in a group commit.
#[derive(Debug, Clone)]
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

type SlotResult = Result<Vec<i64>, Failure>;

/// Where a group commit leaves the result of one caller's change: for a `Sending` change, the
/// ids that were still `queued` and are now `sending`.
#[derive(Debug, Default)]
struct Slot(Mutex<Option<SlotResult>>);

impl Slot {
    fn take(&self) -> Result<Option<SlotResult>, LedgerError> {
        Ok(self.0.lock().map_err(|_| LedgerError::Poisoned)?.take())
    }

    fn put(&self, result: SlotResult) -> Result<(), LedgerError> {
        *self.0.lock().map_err(|_| LedgerError::Poisoned)? = Some(result);
        Ok(())
    }
}

/// Writes `ops` in one transaction; for each, the ids it moved to `sending` (empty for
/// outcomes).
fn apply<'a>(
    conn: &mut Connection,
    ops: impl IntoIterator<Item = &'a Op>,
) -> rusqlite::Result<Vec<Vec<i64>>> {
    let tx = conn.transaction()?;
    let mut moved = Vec::new();
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
        for op in ops {
            let mut ids_moved = Vec::new();
            match op {
                Op::Sending {
                    ids,
                    gateway,
                    day,
                    now,
                } => {
                    for id in ids {
                        // A row cancelled (or settled) since it was read as due stays as it is
                        // and is not called.
                        if sending.execute(params![id, gateway, day, now])? > 0 {
                            ids_moved.push(*id);
                        }
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
            moved.push(ids_moved);
        }
    }
    tx.commit()?;
    Ok(moved)
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

/// The lock file beside the ledger that tells a crash from a sender still running: every
/// ledger opened with recovery holds a shared lock on it for as long as it is open; rows
/// `sending` are turned `unknown` only by an opener that first gets the lock exclusively —
/// that is, when no other sender is alive (the kernel drops a dead process's lock). Returns
/// the file, now locked shared, and whether recovery may run.
fn sender_lock(path: &Path) -> Result<(std::fs::File, bool), LedgerError> {
    let mut name = path.as_os_str().to_owned();
    name.push("-senders");
    let mut options = std::fs::OpenOptions::new();
    options.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let file = options
        .open(Path::new(&name))
        .map_err(LedgerError::Create)?;
    let alone = match file.try_lock() {
        Ok(()) => {
            file.unlock().map_err(LedgerError::Create)?;
            true
        }
        Err(std::fs::TryLockError::WouldBlock) => false,
        Err(std::fs::TryLockError::Error(e)) => return Err(LedgerError::Create(e)),
    };
    file.lock_shared().map_err(LedgerError::Create)?;
    Ok((file, alone))
}

/// Brings a database from `from` to [`SCHEMA_VERSION`], one step at a time, each in its own
/// transaction with the version bump. A later version adds `3 => …` here and never edits a
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
            1 => tx.execute_batch(SCHEMA_V2)?,
            // A negative version is no ledger of ours; refuse it rather than write into it.
            found => return Err(LedgerError::NotALedger(found)),
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

/// Step 2: cancellation, reconciliation and confirmed resends, consent records, pruned texts.
const SCHEMA_V2: &str = "
ALTER TABLE wants ADD COLUMN cancelled_at INTEGER;
ALTER TABLE deliveries ADD COLUMN reconciled_at INTEGER;
ALTER TABLE deliveries ADD COLUMN resent_by TEXT;
ALTER TABLE deliveries ADD COLUMN resent_at INTEGER;
ALTER TABLE deliveries ADD COLUMN resends INTEGER NOT NULL DEFAULT 0;
ALTER TABLE messages ADD COLUMN text_sha256 TEXT;
ALTER TABLE messages ADD COLUMN pruned_at INTEGER;
CREATE TABLE consents (
    id INTEGER PRIMARY KEY,
    number TEXT NOT NULL,
    at INTEGER NOT NULL,
    opt_in INTEGER NOT NULL,
    how TEXT NOT NULL,
    source TEXT NOT NULL,
    recorded_at INTEGER NOT NULL
);
CREATE INDEX consents_number ON consents(number, at);
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
        Ledger::open_with(path, now, OpenOptions::default())
    }

    /// [`Ledger::open`] with options: see [`OpenOptions`]. A file that can only be read is
    /// [`LedgerError::ReadOnly`] here unless `read_only` was asked for.
    pub fn open_with(path: &Path, now: i64, options: OpenOptions) -> Result<Ledger, LedgerError> {
        use rusqlite::OpenFlags;
        let mut conn = if options.read_only {
            Connection::open_with_flags(
                path,
                OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )?
        } else {
            if !path.exists() {
                create_private(path)?;
            }
            Connection::open(path)?
        };
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        if options.read_only {
            let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
            if version != SCHEMA_VERSION {
                return Err(LedgerError::ReadOnly(format!(
                    "schema version {version}; this program reads {SCHEMA_VERSION}: open it once \
                     with a command that writes"
                )));
            }
        } else {
            // SQLite opens a file it cannot write read-only without a word; say so now, not at
            // the first send.
            if conn.is_readonly(rusqlite::MAIN_DB)? {
                return Err(LedgerError::ReadOnly(path.display().to_string()));
            }
            let _mode: String =
                conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))?;
            conn.pragma_update(None, "synchronous", "FULL")?;
        }
        conn.pragma_update(None, "foreign_keys", true)?;
        if let Some(pages) = options.max_pages {
            let _set: i64 = conn.pragma_update_and_check(
                None,
                "max_page_count",
                i64::try_from(pages).unwrap_or(i64::MAX),
                |r| r.get(0),
            )?;
        }
        let senders = if options.read_only || !options.recover {
            None
        } else {
            Some(sender_lock(path)?)
        };
        let recovered = if options.read_only {
            0
        } else {
            migrate(&mut conn)?;
            if senders.as_ref().is_some_and(|(_, alone)| *alone) {
                conn.execute(
                    "UPDATE deliveries SET state = 'unknown', \
                     reason = 'in flight when the sender stopped', updated_at = ?1 \
                     WHERE state = 'sending'",
                    params![now],
                )? as u64
            } else {
                0
            }
        };
        Ok(Ledger {
            conn: Mutex::new(conn),
            queue: Mutex::new(Vec::new()),
            unwritten: Mutex::new(Vec::new()),
            recovered,
            read_only: options.read_only,
            _senders: senders.map(|(file, _)| file),
        })
    }

    /// Whether the ledger was opened for reading only.
    pub fn is_read_only(&self) -> bool {
        self.read_only
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
    /// opted out are skipped. Returns how many were stored. Records no consent: see
    /// [`Ledger::import_with_consents`].
    pub fn import_subscribers<'a>(
        &self,
        subscribers: impl IntoIterator<Item = &'a Subscriber>,
        now: i64,
    ) -> Result<u64, LedgerError> {
        self.import_with_consents(subscribers, |_| None, now)
    }

    /// [`Ledger::import_subscribers`], recording for each subscriber stored the opt-in
    /// `consent` gives for its number, in the same transaction.
    pub fn import_with_consents<'a>(
        &self,
        subscribers: impl IntoIterator<Item = &'a Subscriber>,
        consent: impl Fn(&str) -> Option<Consent>,
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
                if let Some(c) = consent(&s.number) {
                    insert_consents(&tx, &[c], now)?;
                }
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

    /// Records an opt-out (kept forever, and in the consent history with `how` and `source`)
    /// and removes the subscriber. `number` must be normalised. Returns whether it was new.
    pub fn opt_out(
        &self,
        number: &str,
        how: &str,
        source: &str,
        now: i64,
    ) -> Result<bool, LedgerError> {
        let mut conn = self.conn()?;
        let tx = conn.transaction()?;
        let new = tx.execute(
            "INSERT OR IGNORE INTO opt_outs (number, at, source) VALUES (?1, ?2, ?3)",
            params![number, now, source],
        )? > 0;
        insert_consents(
            &tx,
            &[Consent {
                number: number.to_owned(),
                at: now,
                opt_in: false,
                how: how.to_owned(),
                source: source.to_owned(),
            }],
            now,
        )?;
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

    /// The single-item message of `item`, if one was stored and its text is still there (a
    /// pruned one is never sent again: new recipients get a new message).
    pub fn item_message(&self, item: &str) -> Result<Option<i64>, LedgerError> {
        let conn = self.conn()?;
        Ok(conn
            .query_row(
                "SELECT mi.message FROM message_items mi JOIN messages m ON m.id = mi.message \
                 WHERE mi.item = ?1 AND m.pruned_at IS NULL AND \
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
                "SELECT 1 FROM wants WHERE item = ?1 AND number = ?2 AND delivery IS NULL \
                 AND cancelled_at IS NULL",
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
            "SELECT number, item FROM wants WHERE delivery IS NULL AND cancelled_at IS NULL \
             AND due_at <= ?1 ORDER BY number, item",
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

    /// Moves deliveries to `sending` on `gateway` and commits, before the call. Returns the ids
    /// that moved: those still `queued` at the commit. The others were cancelled, or settled,
    /// since they were read as due, and must not be called.
    pub fn mark_sending(
        &self,
        ids: &[i64],
        gateway: &str,
        day: &str,
        now: i64,
    ) -> Result<Vec<i64>, LedgerError> {
        self.commit(Op::Sending {
            ids: ids.to_vec(),
            gateway: gateway.to_owned(),
            day: day.to_owned(),
            now,
        })
    }

    /// Records how calls ended and commits. Only rows in `sending` (or, for reports and
    /// polls, `unknown`/`sent`) change. When the commit fails (a full disk), the outcome is
    /// kept and written by the next commit that succeeds; the rows stay `sending` until then.
    pub fn finish(&self, outcomes: &[(i64, Finish)], now: i64) -> Result<(), LedgerError> {
        if outcomes.is_empty() {
            return Ok(());
        }
        self.commit(Op::Finish {
            outcomes: outcomes.to_vec(),
            now,
        })
        .map(drop)
    }

    /// Outcomes not yet written because their commit failed.
    pub fn unwritten(&self) -> Result<usize, LedgerError> {
        Ok(self
            .unwritten
            .lock()
            .map_err(|_| LedgerError::Poisoned)?
            .iter()
            .map(|op| match op {
                Op::Finish { outcomes, .. } => outcomes.len(),
                Op::Sending { .. } => 0,
            })
            .sum())
    }

    /// Group commit: the change is queued, then whoever holds the connection next writes
    /// every queued change in one transaction and one fsync, and each caller returns once its
    /// own change is durable. Calls in flight at once thus share commits instead of waiting
    /// for one fsync each. Outcomes left unwritten by an earlier failure go first.
    fn commit(&self, op: Op) -> Result<Vec<i64>, LedgerError> {
        if self.read_only {
            return Err(LedgerError::ReadOnly("opened for reading only".into()));
        }
        let slot: Arc<Slot> = Arc::default();
        self.queue
            .lock()
            .map_err(|_| LedgerError::Poisoned)?
            .push((op, slot.clone()));
        let mut conn = self.conn()?;
        if let Some(result) = slot.take()? {
            return result.map_err(LedgerError::from);
        }
        let batch = std::mem::take(&mut *self.queue.lock().map_err(|_| LedgerError::Poisoned)?);
        let mut unwritten = self.unwritten.lock().map_err(|_| LedgerError::Poisoned)?;
        let earlier = unwritten.len();
        let result = apply(
            &mut conn,
            unwritten.iter().chain(batch.iter().map(|(op, _)| op)),
        );
        drop(conn);
        match result {
            Ok(moved) => {
                unwritten.clear();
                drop(unwritten);
                for ((_, other), ids) in batch.iter().zip(moved.into_iter().skip(earlier)) {
                    other.put(Ok(ids))?;
                }
            }
            Err(e) => {
                let failure = Failure::of(&e);
                // Outcomes are facts about calls already made: keep them for the next commit.
                // A `sending` mark that failed needs nothing: its call is not made.
                unwritten.extend(
                    batch
                        .iter()
                        .filter(|(op, _)| matches!(op, Op::Finish { .. }))
                        .map(|(op, _)| op.clone()),
                );
                drop(unwritten);
                for (_, other) in &batch {
                    other.put(Err(failure.clone()))?;
                }
            }
        }
        slot.take()?
            .unwrap_or(Ok(Vec::new()))
            .map_err(LedgerError::from)
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
            "SELECT COUNT(*) FROM wants WHERE delivery IS NULL AND cancelled_at IS NULL \
             AND (?1 IS NULL OR item = ?1)",
            params![item],
            |r| r.get(0),
        )?;
        Ok(n.max(0) as u64)
    }

    /// Items cancelled while they waited for a digest (so never a delivery), for `item` or
    /// all.
    pub fn cancelled_waiting(&self, item: Option<&str>) -> Result<u64, LedgerError> {
        let conn = self.conn()?;
        let n: i64 = conn.query_row(
            "SELECT COUNT(*) FROM wants WHERE delivery IS NULL AND cancelled_at IS NOT NULL \
             AND (?1 IS NULL OR item = ?1)",
            params![item],
            |r| r.get(0),
        )?;
        Ok(n.max(0) as u64)
    }

    /// Cancels what of `item` no gateway has been handed yet, in one transaction: its queued
    /// deliveries become `cancelled` (with `reason`), and its recipients still waiting for a
    /// digest are marked cancelled. A queued digest that carries `item` among others is
    /// cancelled too, and its other items wait again for the next digest, so they still go
    /// out. Rows `sending` are in flight and stay as they are. Returns how many deliveries
    /// and waiting recipients were cancelled; 0 when nothing was left to cancel.
    pub fn cancel_item(&self, item: &str, reason: &str, now: i64) -> Result<u64, LedgerError> {
        let mut conn = self.conn()?;
        let tx = conn.transaction()?;
        let digests: Vec<i64> = {
            let mut stmt = tx.prepare(
                "SELECT d.id FROM deliveries d WHERE d.state = 'queued' AND d.message IN \
                 (SELECT message FROM message_items WHERE item = ?1) \
                 AND (SELECT COUNT(*) FROM message_items o WHERE o.message = d.message) > 1",
            )?;
            stmt.query_map(params![item], |r| r.get(0))?
                .collect::<Result<_, _>>()?
        };
        {
            let mut release = tx.prepare_cached(
                "UPDATE wants SET delivery = NULL, due_at = ?3 WHERE delivery = ?1 AND item != ?2",
            )?;
            for id in &digests {
                release.execute(params![id, item, now])?;
            }
        }
        let deliveries = tx.execute(
            "UPDATE deliveries SET state = 'cancelled', reason = ?2, updated_at = ?3 \
             WHERE state = 'queued' AND message IN \
             (SELECT message FROM message_items WHERE item = ?1)",
            params![item, reason, now],
        )? as u64;
        let waiting = tx.execute(
            "UPDATE wants SET cancelled_at = ?2 WHERE item = ?1 AND delivery IS NULL \
             AND cancelled_at IS NULL",
            params![item, now],
        )? as u64;
        tx.commit()?;
        Ok(deliveries + waiting)
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

    // -- in doubt -------------------------------------------------------------------------

    /// Records that a reconciliation asked about these `unknown` rows at `now`.
    pub fn mark_reconciled(&self, ids: &[i64], now: i64) -> Result<(), LedgerError> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut conn = self.conn()?;
        let tx = conn.transaction()?;
        {
            let mut stmt = tx.prepare_cached(
                "UPDATE deliveries SET reconciled_at = ?2 WHERE id = ?1 AND state = 'unknown'",
            )?;
            for id in ids {
                stmt.execute(params![id, now])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// The `unknown` rows, of the messages carrying `item` or all, oldest first, at most
    /// `limit`, each with the items its message carries.
    pub fn in_doubt(
        &self,
        item: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(Row, Vec<String>)>, LedgerError> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare(&format!(
            "SELECT {ROW_COLUMNS} FROM deliveries WHERE state = 'unknown' AND (?1 IS NULL OR \
             message IN (SELECT message FROM message_items WHERE item = ?1)) \
             ORDER BY updated_at, id LIMIT ?2"
        ))?;
        let rows: Vec<Row> = stmt
            .query_map(params![item, limit as i64], read_row)?
            .collect::<Result<_, _>>()?;
        let mut items = conn.prepare_cached(
            "SELECT item FROM message_items WHERE message = ?1 ORDER BY position",
        )?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let list = items
                .query_map(params![row.message], |r| r.get::<_, String>(0))?
                .collect::<Result<_, _>>()?;
            out.push((row, list));
        }
        Ok(out)
    }

    /// An operator's confirmed resend: the `unknown` rows (of `item`, or all) that at least one
    /// reconciliation asked about go back to `queued`, due at `now`, with a new idempotency key
    /// and `by`/`now` recorded on the row. Rows never reconciled are left alone and counted.
    /// With `dry_run` nothing changes. One transaction.
    pub fn resend_unknown(
        &self,
        item: Option<&str>,
        by: &str,
        now: i64,
        dry_run: bool,
    ) -> Result<Resend, LedgerError> {
        let mut conn = self.conn()?;
        let tx = conn.transaction()?;
        let of_item =
            "(?1 IS NULL OR message IN (SELECT message FROM message_items WHERE item = ?1))";
        let count = |reconciled: &str| -> Result<u64, LedgerError> {
            let n: i64 = tx.query_row(
                &format!(
                    "SELECT COUNT(*) FROM deliveries WHERE state = 'unknown' \
                     AND reconciled_at IS {reconciled} AND {of_item}"
                ),
                params![item],
                |r| r.get(0),
            )?;
            Ok(n.max(0) as u64)
        };
        let never_reconciled = count("NULL")?;
        let eligible = count("NOT NULL")?;
        let requeued = if dry_run {
            eligible
        } else {
            // The new key keeps the original (before any `#r`) and counts the resends, so the
            // key stays unique and says that this is a confirmed second attempt.
            tx.execute(
                &format!(
                    "UPDATE deliveries SET state = 'queued', \
                     key = (CASE WHEN instr(key, '#') > 0 THEN substr(key, 1, instr(key, '#') - 1) \
                            ELSE key END) || '#r' || (resends + 1), \
                     resends = resends + 1, resent_by = ?2, resent_at = ?3, due_at = ?3, \
                     reconciled_at = NULL, reason = NULL, updated_at = ?3 \
                     WHERE state = 'unknown' AND reconciled_at IS NOT NULL AND {of_item}"
                ),
                params![item, by, now],
            )? as u64
        };
        tx.commit()?;
        Ok(Resend {
            requeued,
            never_reconciled,
        })
    }

    // -- consent ----------------------------------------------------------------------------

    /// Records consents (opt-ins and opt-outs) as given, in one transaction.
    pub fn record_consents(&self, consents: &[Consent], now: i64) -> Result<(), LedgerError> {
        let mut conn = self.conn()?;
        let tx = conn.transaction()?;
        insert_consents(&tx, consents, now)?;
        tx.commit()?;
        Ok(())
    }

    /// One number's consent history, oldest first.
    pub fn consents(&self, number: &str) -> Result<Vec<Consent>, LedgerError> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare(
            "SELECT number, at, opt_in, how, source FROM consents WHERE number = ?1 \
             ORDER BY at, id",
        )?;
        let rows = stmt.query_map(params![number], |r| {
            Ok(Consent {
                number: r.get(0)?,
                at: r.get(1)?,
                opt_in: r.get(2)?,
                how: r.get(3)?,
                source: r.get(4)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    // -- retention --------------------------------------------------------------------------

    /// Clears the text of every message created before `older_than` whose deliveries are all
    /// final (sent, failed, cancelled) and none of whose items still waits for a digest. The
    /// SHA-256 of the text stays, and so does every row (numbers, states, times). Returns how
    /// many messages were pruned. One transaction.
    pub fn prune_texts(&self, older_than: i64, now: i64) -> Result<u64, LedgerError> {
        let mut conn = self.conn()?;
        let tx = conn.transaction()?;
        let candidates: Vec<(i64, String)> = {
            let mut stmt = tx.prepare(
                "SELECT m.id, m.text FROM messages m WHERE m.pruned_at IS NULL \
                 AND m.created_at < ?1 \
                 AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.message = m.id \
                     AND d.state NOT IN ('sent', 'failed', 'cancelled')) \
                 AND NOT EXISTS (SELECT 1 FROM message_items mi JOIN wants w ON w.item = mi.item \
                     WHERE mi.message = m.id AND w.delivery IS NULL AND w.cancelled_at IS NULL)",
            )?;
            stmt.query_map(params![older_than], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<_, _>>()?
        };
        {
            let mut prune = tx.prepare_cached(
                "UPDATE messages SET text = '', body = '', \
                 text_sha256 = COALESCE(text_sha256, ?2), pruned_at = ?3 WHERE id = ?1",
            )?;
            for (id, text) in &candidates {
                prune.execute(params![id, sha256_hex(text), now])?;
            }
        }
        tx.commit()?;
        Ok(candidates.len() as u64)
    }

    /// The SHA-256 of message `id`'s text and when its text was pruned, if it was.
    pub fn message_hash(&self, id: i64) -> Result<Option<(String, Option<i64>)>, LedgerError> {
        let conn = self.conn()?;
        Ok(conn
            .query_row(
                "SELECT text_sha256, pruned_at FROM messages WHERE id = ?1",
                params![id],
                |r| Ok((r.get::<_, Option<String>>(0)?, r.get(1)?)),
            )
            .optional()?
            .and_then(|(hash, at)| hash.map(|h| (h, at))))
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
     due_at, day, updated_at, reconciled_at, resent_by, resent_at";

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
        reconciled_at: r.get(12)?,
        resent_by: r.get(13)?,
        resent_at: r.get(14)?,
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
        "INSERT INTO messages (text, body, created_at, text_sha256) VALUES (?1, ?2, ?3, ?4)",
        params![text, body, now, sha256_hex(text)],
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

/// The SHA-256 of a text, lowercase hex: what stays of a pruned message (the audit keeps the
/// same hash of a bulletin's text, so the two can be matched).
pub fn sha256_hex(text: &str) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
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
    fn a_file_with_a_negative_schema_version_is_refused_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("l.sqlite");
        Connection::open(&path)
            .unwrap()
            .pragma_update(None, "user_version", -1)
            .unwrap();
        assert!(matches!(
            Ledger::open(&path, 0),
            Err(LedgerError::NotALedger(-1))
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
        assert!(ledger.opt_out("13800138000", HOW_REPLY, "mas", 2).unwrap());
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

    fn sent(id: i64) -> (i64, Finish) {
        (
            id,
            Finish::Sent {
                reference: None,
                serial: None,
            },
        )
    }

    /// A ledger with `n` subscribers and item `n1`'s message queued for each.
    fn queued(dir: &Path, n: usize) -> (Ledger, i64) {
        let ledger = open(dir);
        let subs: Vec<Subscriber> = (0..n).map(|i| sub(&format!("138{i:08}"), &[])).collect();
        ledger.import_subscribers(&subs, 1).unwrap();
        let m = ledger.add_message("【县】t", "t", &["n1"], 1).unwrap();
        ledger
            .enqueue_item("n1", |_| true, Some(m), false, 1, 1)
            .unwrap();
        (ledger, m)
    }

    #[test]
    fn a_v1_ledger_with_data_migrates_to_v2_and_keeps_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v1.sqlite");
        {
            // The file exactly as the shipped step 1 left it, with data.
            let mut conn = Connection::open(&path).unwrap();
            let tx = conn.transaction().unwrap();
            tx.execute_batch(SCHEMA_V1).unwrap();
            tx.pragma_update(None, "user_version", 1).unwrap();
            tx.execute_batch(
                "INSERT INTO subscribers VALUES ('13800138000', '张三', '南安镇', '', 1);
                 INSERT INTO opt_outs VALUES ('13900139000', 2, 'reply');
                 INSERT INTO messages (id, text, body, created_at) VALUES (1, '【县】t', 't', 3);
                 INSERT INTO message_items VALUES (1, 'n1', 0);
                 INSERT INTO deliveries (id, message, number, key, state, urgent, due_at, updated_at)
                     VALUES (1, 1, '13800138000', 'i/n1/13800138000', 'unknown', 0, 3, 4);
                 INSERT INTO wants VALUES ('n1', '13800138000', 0, 3, 1);
                 INSERT INTO wants VALUES ('n2', '13800138000', 0, 3, NULL);",
            )
            .unwrap();
            tx.commit().unwrap();
        }
        let ledger = Ledger::open(&path, 10).unwrap();
        assert_eq!(ledger.schema_version().unwrap(), 2);
        assert_eq!(ledger.subscriber_count().unwrap(), 1);
        assert!(ledger.opt_outs().unwrap().contains("13900139000"));
        let rows = ledger.rows_of("n1", 10).unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(
            (
                rows[0].state,
                rows[0].reconciled_at,
                rows[0].resent_by.as_deref()
            ),
            (State::Unknown, None, None)
        );
        assert_eq!(ledger.message(1).unwrap().unwrap().text, "【县】t");
        assert_eq!(ledger.waiting(Some("n2")).unwrap(), 1);
        assert!(ledger.consents("13800138000").unwrap().is_empty());
        // The new columns work on the old rows.
        assert_eq!(ledger.cancel_item("n2", "withdrawn", 11).unwrap(), 1);
        assert_eq!(ledger.prune_texts(100, 12).unwrap(), 0, "row 1 is unknown");
    }

    #[test]
    fn cancelling_an_item_cancels_queued_rows_and_waiting_wants_but_not_rows_in_flight() {
        let dir = tempfile::tempdir().unwrap();
        let (ledger, _) = queued(dir.path(), 4);
        ledger
            .enqueue_item("n2", |_| true, None, false, 50, 1)
            .unwrap();
        let due = ledger.due(5, false, 10).unwrap();
        let moved = ledger.mark_sending(&[due[0].id], "gw", "d", 2).unwrap();
        assert_eq!(moved, vec![due[0].id]);
        assert_eq!(ledger.cancel_item("n1", "cancelled by 张三", 3).unwrap(), 3);
        assert_eq!(ledger.cancel_item("n2", "withdrawn", 3).unwrap(), 4);
        let c = ledger.counts(Some("n1")).unwrap();
        assert_eq!((c.sending, c.cancelled, c.queued, c.total()), (1, 3, 0, 4));
        assert_eq!(ledger.waiting(Some("n2")).unwrap(), 0);
        assert_eq!(ledger.cancelled_waiting(Some("n2")).unwrap(), 4);
        assert!(ledger.pending_digests(100).unwrap().is_empty());
        // A cancelled row is final: no outcome, no requeue and no resend moves it.
        let cancelled = due[1].id;
        ledger
            .finish(
                &[
                    sent(cancelled),
                    (
                        cancelled,
                        Finish::Requeue {
                            due_at: 1,
                            reason: "x".into(),
                        },
                    ),
                ],
                4,
            )
            .unwrap();
        assert_eq!(
            ledger.states_of([cancelled]).unwrap()[&cancelled],
            State::Cancelled
        );
        // Sending the item again brings nobody back, and a second cancel finds nothing.
        let m = ledger.item_message("n1").unwrap();
        ledger.enqueue_item("n1", |_| true, m, true, 1, 5).unwrap();
        assert_eq!(ledger.counts(Some("n1")).unwrap().queued, 0);
        assert_eq!(ledger.cancel_item("n1", "again", 6).unwrap(), 0);
    }

    #[test]
    fn a_row_cancelled_after_it_was_read_as_due_is_not_marked_sending() {
        let dir = tempfile::tempdir().unwrap();
        let (ledger, _) = queued(dir.path(), 3);
        let ids: Vec<i64> = ledger
            .due(5, false, 10)
            .unwrap()
            .iter()
            .map(|d| d.id)
            .collect();
        // Another process's cancel, between the read and the `sending` mark.
        let other = Ledger::open_with(
            &dir.path().join("var/ledger.sqlite"),
            2,
            OpenOptions {
                recover: false,
                ..OpenOptions::default()
            },
        )
        .unwrap();
        assert_eq!(other.cancel_item("n1", "cancelled", 2).unwrap(), 3);
        assert!(ledger.mark_sending(&ids, "gw", "d", 3).unwrap().is_empty());
        assert_eq!(ledger.counts(None).unwrap().cancelled, 3);
    }

    #[test]
    fn cancelling_an_item_of_a_queued_digest_releases_the_other_items() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = open(dir.path());
        ledger
            .import_subscribers(&[sub("13800138000", &[])], 1)
            .unwrap();
        for item in ["n1", "n2"] {
            ledger
                .enqueue_item(item, |_| true, None, false, 10, 1)
                .unwrap();
        }
        let items = vec!["n1".to_owned(), "n2".to_owned()];
        let m = ledger.digest_message("【县】d", "d", &items, 10).unwrap();
        ledger
            .enqueue_digests(&[("13800138000", &items, m)], 10, 10)
            .unwrap();
        assert_eq!(ledger.cancel_item("n1", "withdrawn", 11).unwrap(), 1);
        assert_eq!(ledger.counts(Some("n1")).unwrap().cancelled, 1);
        // n2 waits again, for the next digest, without n1.
        assert_eq!(
            ledger.pending_digests(20).unwrap(),
            vec![("13800138000".to_owned(), vec!["n2".to_owned()])]
        );
    }

    #[test]
    fn a_resend_needs_a_reconciliation_and_gets_a_new_key() {
        let dir = tempfile::tempdir().unwrap();
        let (ledger, _) = queued(dir.path(), 2);
        let ids: Vec<i64> = ledger
            .due(5, false, 10)
            .unwrap()
            .iter()
            .map(|d| d.id)
            .collect();
        ledger.mark_sending(&ids, "gw", "d", 2).unwrap();
        let unknown = |id| {
            (
                id,
                Finish::Unknown {
                    reason: "timeout".into(),
                },
            )
        };
        ledger
            .finish(&[unknown(ids[0]), unknown(ids[1])], 3)
            .unwrap();
        assert_eq!(
            ledger.resend_unknown(None, "李四", 4, false).unwrap(),
            Resend {
                requeued: 0,
                never_reconciled: 2
            }
        );
        ledger.mark_reconciled(&ids[..1], 5).unwrap();
        assert_eq!(
            ledger.resend_unknown(Some("n1"), "李四", 6, true).unwrap(),
            Resend {
                requeued: 1,
                never_reconciled: 1
            },
            "a dry run counts"
        );
        assert_eq!(
            ledger.counts(None).unwrap().unknown,
            2,
            "and changes nothing"
        );
        let done = ledger.resend_unknown(Some("n1"), "李四", 7, false).unwrap();
        assert_eq!(done.requeued, 1);
        let rows = ledger.rows_of("n1", 10).unwrap();
        let row = rows.iter().find(|r| r.id == ids[0]).unwrap();
        assert_eq!(
            (
                row.state,
                row.resent_by.as_deref(),
                row.resent_at,
                row.reconciled_at
            ),
            (State::Queued, Some("李四"), Some(7), None)
        );
        let key = |id: i64| -> String {
            ledger
                .conn()
                .unwrap()
                .query_row("SELECT key FROM deliveries WHERE id = ?1", [id], |r| {
                    r.get(0)
                })
                .unwrap()
        };
        assert_eq!(key(ids[0]), "i/n1/13800000000#r1");
        // A second confirmed resend of the same row counts on, from the original key.
        ledger.mark_sending(&ids[..1], "gw", "d", 8).unwrap();
        ledger.finish(&[unknown(ids[0])], 8).unwrap();
        ledger.mark_reconciled(&ids[..1], 9).unwrap();
        ledger.resend_unknown(None, "王五", 10, false).unwrap();
        assert_eq!(key(ids[0]), "i/n1/13800000000#r2");
    }

    #[test]
    fn pruning_clears_final_texts_keeps_their_hash_and_every_row() {
        let dir = tempfile::tempdir().unwrap();
        let (ledger, m) = queued(dir.path(), 2);
        let later = ledger
            .add_message("【县】new", "new", &["n2"], 500)
            .unwrap();
        let ids: Vec<i64> = ledger
            .due(5, false, 10)
            .unwrap()
            .iter()
            .filter(|d| d.message == m)
            .map(|d| d.id)
            .collect();
        ledger.mark_sending(&ids, "gw", "d", 2).unwrap();
        ledger.finish(&[sent(ids[0])], 3).unwrap();
        assert_eq!(
            ledger.prune_texts(100, 600).unwrap(),
            0,
            "one row in flight"
        );
        ledger
            .finish(
                &[(
                    ids[1],
                    Finish::Failed {
                        reason: "refused".into(),
                    },
                )],
                3,
            )
            .unwrap();
        assert_eq!(ledger.prune_texts(100, 600).unwrap(), 1, "only the old one");
        let pruned = ledger.message(m).unwrap().unwrap();
        assert_eq!((pruned.text.as_str(), pruned.body.as_str()), ("", ""));
        assert_eq!(
            ledger.message_hash(m).unwrap(),
            Some((sha256_hex("【县】t"), Some(600)))
        );
        assert_eq!(ledger.message(later).unwrap().unwrap().text, "【县】new");
        let c = ledger.counts(Some("n1")).unwrap();
        assert_eq!((c.sent, c.failed, c.total()), (1, 1, 2));
        assert_eq!(ledger.rows_of("n1", 10).unwrap()[0].number.len(), 11);
        // A pruned message is never sent again: new recipients get a new one.
        assert_eq!(ledger.item_message("n1").unwrap(), None);
        assert_eq!(
            ledger.prune_texts(1_000, 700).unwrap(),
            1,
            "the newer one, old enough now; the first is not pruned twice"
        );
        assert_eq!(ledger.message_hash(m).unwrap().unwrap().1, Some(600));
    }

    #[test]
    fn opt_ins_and_opt_outs_are_kept_in_the_consent_history() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = open(dir.path());
        let number = "13800138000";
        ledger
            .import_with_consents(
                &[sub(number, &[])],
                |n| {
                    Some(Consent {
                        number: n.to_owned(),
                        at: 5,
                        opt_in: true,
                        how: "窗口登记".into(),
                        source: "import of a.csv".into(),
                    })
                },
                10,
            )
            .unwrap();
        ledger.opt_out(number, HOW_REPLY, "mas", 20).unwrap();
        // An import after the opt-out stores nothing, and records no opt-in.
        ledger
            .import_with_consents(
                &[sub(number, &[])],
                |n| {
                    Some(Consent {
                        number: n.to_owned(),
                        at: 30,
                        opt_in: true,
                        how: HOW_IMPORT.into(),
                        source: "import of b.csv".into(),
                    })
                },
                30,
            )
            .unwrap();
        let history = ledger.consents(number).unwrap();
        let seen: Vec<(i64, bool, &str, &str)> = history
            .iter()
            .map(|c| (c.at, c.opt_in, c.how.as_str(), c.source.as_str()))
            .collect();
        assert_eq!(
            seen,
            vec![
                (5, true, "窗口登记", "import of a.csv"),
                (20, false, HOW_REPLY, "mas")
            ]
        );
    }

    #[test]
    fn a_full_ledger_is_full_and_an_unwritten_outcome_is_written_by_the_next_commit() {
        let dir = tempfile::tempdir().unwrap();
        let (ledger, _) = queued(dir.path(), 300);
        let ids: Vec<i64> = ledger
            .due(5, false, 1_000)
            .unwrap()
            .iter()
            .map(|d| d.id)
            .collect();
        ledger
            .mark_sending(&ids, "gateway-with-a-long-name", "2026-12-01", 2)
            .unwrap();
        // No more room: SQLite refuses to grow the file, as a full disk would.
        let pages: i64 = ledger
            .conn()
            .unwrap()
            .query_row("PRAGMA page_count", [], |r| r.get(0))
            .unwrap();
        ledger
            .conn()
            .unwrap()
            .pragma_update(None, "max_page_count", pages)
            .unwrap();
        let outcomes: Vec<(i64, Finish)> = ids
            .iter()
            .map(|id| {
                (
                    *id,
                    Finish::Sent {
                        reference: Some("a-reference-long-enough-to-need-room".repeat(4)),
                        serial: Some("serial".repeat(8)),
                    },
                )
            })
            .collect();
        let err = ledger.finish(&outcomes, 3).unwrap_err();
        assert!(matches!(err, LedgerError::Full(_)), "{err:?}");
        assert_eq!(err.key(), "sms.ledger.full");
        assert_eq!(ledger.unwritten().unwrap(), 300);
        assert_eq!(
            ledger.counts(None).unwrap().sending,
            300,
            "in doubt, not sent"
        );
        // Room again: the next commit writes the outcome first.
        ledger
            .conn()
            .unwrap()
            .pragma_update(None, "max_page_count", pages * 4)
            .unwrap();
        ledger.finish(&[], 4).unwrap();
        assert_eq!(
            ledger.unwritten().unwrap(),
            300,
            "nothing to commit, nothing written"
        );
        ledger.mark_sending(&[], "gw", "d", 4).unwrap();
        assert_eq!(ledger.unwritten().unwrap(), 0);
        assert_eq!(ledger.counts(None).unwrap().sent, 300);
    }

    #[test]
    fn a_ledger_opened_read_only_refuses_every_write() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("var/ledger.sqlite");
        drop(queued(dir.path(), 2));
        let ro = Ledger::open_with(
            &path,
            5,
            OpenOptions {
                read_only: true,
                ..OpenOptions::default()
            },
        )
        .unwrap();
        assert!(ro.is_read_only());
        assert_eq!(ro.counts(None).unwrap().queued, 2, "reads work");
        let err = ro.cancel_item("n1", "x", 6).unwrap_err();
        assert!(matches!(err, LedgerError::ReadOnly(_)), "{err:?}");
        assert_eq!(err.key(), "sms.ledger.read_only");
        assert!(matches!(
            ro.mark_sending(&[1], "gw", "d", 6),
            Err(LedgerError::ReadOnly(_))
        ));
    }

    #[test]
    fn rows_in_flight_of_a_live_sender_are_not_taken_for_a_crash() {
        let dir = tempfile::tempdir().unwrap();
        let (sender, _) = queued(dir.path(), 2);
        let id = sender.due(5, false, 10).unwrap()[0].id;
        sender.mark_sending(&[id], "gw", "d", 2).unwrap();
        // A second sender (a reconcile, a send) opens the ledger while the first one runs.
        let other = open(dir.path());
        assert_eq!(other.recovered(), 0);
        assert_eq!(other.counts(None).unwrap().sending, 1);
        drop(other);
        sender.finish(&[sent(id)], 3).unwrap();
        assert_eq!(
            sender.counts(None).unwrap().sent,
            1,
            "its outcome is recorded"
        );
        sender.mark_sending(&[id + 1], "gw", "d", 4).unwrap();
        // The sender dies: the next opener finds no one and takes the row for a crash.
        drop(sender);
        let next = open(dir.path());
        assert_eq!(next.recovered(), 1);
    }
}
