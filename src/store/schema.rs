//! The database's schema and the steps that bring any earlier version of it up to date.
//!
//! `PRAGMA user_version` holds the number of steps applied. Step `n` (counting from 1) takes
//! the file from version `n - 1` to `n`; each runs in its own transaction together with the
//! version bump, so a step either happened completely or not at all. A released step is never
//! edited: a change to the schema is a new step appended to [`STEPS`], and the test that opens
//! a file of every earlier version checks it.

use rusqlite::{Connection, Transaction, TransactionBehavior};

use super::StoreError;

/// Marks the file as gongkai's (`PRAGMA application_id`, "gkai"), so that `--db` pointed at
/// another program's database is refused rather than written into.
pub const APPLICATION_ID: i32 = 0x676B_6169;

/// One migration step: applied inside a transaction that also sets the new version.
pub type Step = fn(&Transaction<'_>) -> rusqlite::Result<()>;

/// Every step, in order. `STEPS.len()` is the current version.
pub const STEPS: &[Step] = &[v1, v2, v3];

/// The schema version this build reads and writes.
pub const VERSION: u32 = STEPS.len() as u32;

/// Version 1: the audit (slots shown, bulletins, operator actions) and the interrupts.
///
/// Times are integer milliseconds since the Unix epoch, UTC: they sort and compare as
/// numbers, and `datetime(started_ms / 1000, 'unixepoch')` shows them in `sqlite3`.
/// Enumerations are plain text checked by the code, not by `CHECK` constraints, so that a
/// later step can add a value without rebuilding a table.
fn v1(tx: &Transaction<'_>) -> rusqlite::Result<()> {
    tx.execute_batch(
        "
        -- One row per stretch a board actually showed. ended_ms stays NULL while it is on air
        -- (and after a crash, until close_dangling).
        CREATE TABLE shown (
            id               INTEGER PRIMARY KEY,
            display          TEXT    NOT NULL,
            kind             TEXT    NOT NULL,
            playlist         TEXT,
            item             TEXT,
            title            TEXT    NOT NULL,
            started_ms       INTEGER NOT NULL,
            planned_until_ms INTEGER NOT NULL,
            ended_ms         INTEGER,
            CHECK (planned_until_ms >= started_ms),
            CHECK (ended_ms IS NULL OR ended_ms >= started_ms)
        );
        CREATE INDEX shown_by_display ON shown (display, started_ms);
        -- Overlap queries (what was on at 19:32?) cannot use a B-tree index on either end
        -- without scanning years of rows; an R*Tree finds the slots whose span contains an
        -- instant directly. It stores 32-bit floats rounded outwards, so it yields a superset
        -- that the query then checks exactly against `shown`. The triggers keep it in step.
        CREATE VIRTUAL TABLE shown_span USING rtree (id, start_ms, end_ms);
        CREATE TRIGGER shown_span_insert AFTER INSERT ON shown BEGIN
            INSERT INTO shown_span (id, start_ms, end_ms)
            VALUES (new.id, new.started_ms, coalesce(new.ended_ms, new.planned_until_ms));
        END;
        CREATE TRIGGER shown_span_update AFTER UPDATE OF ended_ms ON shown BEGIN
            UPDATE shown_span SET end_ms = coalesce(new.ended_ms, new.planned_until_ms)
            WHERE id = new.id;
        END;
        CREATE TRIGGER shown_span_delete AFTER DELETE ON shown BEGIN
            DELETE FROM shown_span WHERE id = old.id;
        END;
        -- Finding the open slot of a display, and the dangling ones after a crash.
        CREATE INDEX shown_open ON shown (display) WHERE ended_ms IS NULL;

        -- One row per SMS bulletin sent (the ledger keeps the per-subscriber sends).
        CREATE TABLE bulletin (
            id          INTEGER PRIMARY KEY,
            item        TEXT    NOT NULL,
            title       TEXT    NOT NULL,
            text_sha256 TEXT    NOT NULL,
            recipients  INTEGER NOT NULL CHECK (recipients >= 0),
            sent_ms     INTEGER NOT NULL,
            sent_by     TEXT    NOT NULL
        );
        CREATE INDEX bulletin_by_time ON bulletin (sent_ms);

        -- What operators did (an interrupt added or ended; later: reviews, withdrawals).
        CREATE TABLE action (
            id       INTEGER PRIMARY KEY,
            at_ms    INTEGER NOT NULL,
            action   TEXT    NOT NULL,
            subject  TEXT    NOT NULL,
            by       TEXT    NOT NULL,
            detail   TEXT    NOT NULL
        );
        CREATE INDEX action_by_time ON action (at_ms);

        -- Urgent notices, kept so that a restarted daemon computes the same timeline.
        CREATE TABLE interrupt (
            id         TEXT    PRIMARY KEY,
            start_ms   INTEGER NOT NULL,
            end_ms     INTEGER NOT NULL,
            text       TEXT    NOT NULL,
            created_by TEXT    NOT NULL,
            created_ms INTEGER NOT NULL,
            also_sms   INTEGER NOT NULL,
            CHECK (end_ms >= start_ms)
        );
        CREATE INDEX interrupt_by_end ON interrupt (end_ms);
        -- What an interrupt takes over: display ids or group names, resolved against the
        -- site in force (so a reload that regroups displays is followed); none means every
        -- display.
        CREATE TABLE interrupt_target (
            interrupt TEXT NOT NULL REFERENCES interrupt (id) ON DELETE CASCADE,
            target    TEXT NOT NULL,
            PRIMARY KEY (interrupt, target)
        ) WITHOUT ROWID;
        ",
    )?;
    tx.pragma_update(None, "application_id", APPLICATION_ID)
}

/// Version 2: items withdrawn from every board (the kill switch), until restored.
fn v2(tx: &Transaction<'_>) -> rusqlite::Result<()> {
    tx.execute_batch(
        "
        CREATE TABLE withdrawal (
            item   TEXT    PRIMARY KEY,
            at_ms  INTEGER NOT NULL,
            by     TEXT    NOT NULL,
            reason TEXT    NOT NULL
        ) WITHOUT ROWID;
        ",
    )
}

/// Version 3: reviews (三审), each bound to the hash of the text it reviewed. Rows are only
/// ever added: a review is evidence, and a later edit of the item makes it stale, not wrong.
fn v3(tx: &Transaction<'_>) -> rusqlite::Result<()> {
    tx.execute_batch(
        "
        CREATE TABLE review (
            id     INTEGER PRIMARY KEY,
            item   TEXT    NOT NULL,
            stage  TEXT    NOT NULL,
            by     TEXT    NOT NULL,
            at_ms  INTEGER NOT NULL,
            hash   TEXT    NOT NULL
        );
        CREATE INDEX review_by_item ON review (item);
        ",
    )
}

/// The version written in the file.
pub fn version(conn: &Connection) -> Result<u32, StoreError> {
    let found: i64 = conn.pragma_query_value(None, "user_version", |row| row.get(0))?;
    // A negative or huge number is not one of ours: treat it as newer than anything known.
    Ok(u32::try_from(found).unwrap_or(u32::MAX))
}

/// Refuses a file that belongs to another program or to a newer gongkai.
pub fn check_compatible(conn: &Connection) -> Result<u32, StoreError> {
    let application: i32 = conn.pragma_query_value(None, "application_id", |row| row.get(0))?;
    let found = version(conn)?;
    if application != 0 && application != APPLICATION_ID {
        return Err(StoreError::Foreign);
    }
    if found == 0 {
        // An empty file (or a new one) is fine; a version-0 file with tables is someone else's.
        let tables: i64 = conn.query_row(
            "SELECT count(*) FROM sqlite_schema WHERE type = 'table'",
            [],
            |row| row.get(0),
        )?;
        if tables > 0 {
            return Err(StoreError::Foreign);
        }
    } else if application != APPLICATION_ID {
        return Err(StoreError::Foreign);
    }
    if found > VERSION {
        return Err(StoreError::NewerSchema {
            found,
            known: VERSION,
        });
    }
    Ok(found)
}

/// What `migrate` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Migrated {
    pub from: u32,
    pub to: u32,
}

/// Brings the file up to [`VERSION`].
pub fn migrate(conn: &mut Connection) -> Result<Migrated, StoreError> {
    migrate_with(conn, STEPS, VERSION)
}

/// Applies `steps` up to version `target` (tests stop early to build older files, or pass a
/// failing step).
pub fn migrate_with(
    conn: &mut Connection,
    steps: &[Step],
    target: u32,
) -> Result<Migrated, StoreError> {
    let from = check_compatible(conn)?;
    let mut at = from;
    while at < target {
        let Some(step) = steps.get(at as usize) else {
            break;
        };
        // IMMEDIATE takes the write lock first, so two processes opening the same old file
        // cannot both run a step; the version is read again under the lock.
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let now = version(&tx)?;
        if now == at {
            step(&tx).map_err(|source| StoreError::Migration {
                version: at + 1,
                source,
            })?;
            tx.pragma_update(None, "user_version", at + 1)?;
            tx.commit()?;
            at += 1;
        } else {
            drop(tx);
            at = now;
        }
    }
    Ok(Migrated { from, to: at })
}
