//! `gongkai backup --to DIR`: consistent copies of the daemon's database and the SMS ledger,
//! taken while the daemon runs.
//!
//! Each file is copied with SQLite's `VACUUM INTO` through a read-only connection: the copy is
//! one transaction's view of the file (never half of a commit), compact, and a complete
//! database on its own — no WAL file to carry along. The copy is checked with
//! `PRAGMA integrity_check` and made readable by its owner only (it holds subscribers' numbers).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags};

use super::Exit;
use crate::i18n::{Lang, tr};

/// Copies the files that exist of `sources` into `to`, named `<stem>-<UTC time>.<ext>`.
pub fn run(sources: &[PathBuf], to: &Path, lang: Lang) -> Exit {
    let existing: Vec<&PathBuf> = sources.iter().filter(|p| p.is_file()).collect();
    if existing.is_empty() {
        let names: Vec<String> = sources.iter().map(|p| p.display().to_string()).collect();
        eprintln!(
            "{}",
            tr(lang, "backup.nothing", &[("paths", &names.join(", "))])
        );
        return Exit::Problems;
    }
    if let Err(e) = create_private_dir(to) {
        let (path, reason) = (to.display().to_string(), e.to_string());
        eprintln!(
            "{}",
            tr(
                lang,
                "cli.write_failed",
                &[("path", &path), ("reason", &reason)]
            )
        );
        return Exit::Failed;
    }
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string();
    let mut exit = Exit::Ok;
    for source in existing {
        let stem = source
            .file_stem()
            .map_or("database".into(), |s| s.to_string_lossy().into_owned());
        let ext = source
            .extension()
            .map_or("db".into(), |s| s.to_string_lossy().into_owned());
        let target = to.join(format!("{stem}-{stamp}.{ext}"));
        match copy(source, &target) {
            Ok(bytes) => {
                let (from, into, size) = (
                    source.display().to_string(),
                    target.display().to_string(),
                    bytes.to_string(),
                );
                println!(
                    "{}",
                    tr(
                        lang,
                        "backup.done",
                        &[("from", &from), ("to", &into), ("bytes", &size)]
                    )
                );
            }
            Err(reason) => {
                let from = source.display().to_string();
                eprintln!(
                    "{}",
                    tr(
                        lang,
                        "backup.failed",
                        &[("from", &from), ("reason", &reason)]
                    )
                );
                let _ = std::fs::remove_file(&target);
                exit = Exit::Failed;
            }
        }
    }
    exit
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}

/// One consistent copy, checked; returns its size.
fn copy(source: &Path, target: &Path) -> Result<u64, String> {
    if target.exists() {
        return Err(format!("{} exists already", target.display()));
    }
    let conn = Connection::open_with_flags(
        source,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| e.to_string())?;
    conn.busy_timeout(std::time::Duration::from_secs(10))
        .map_err(|e| e.to_string())?;
    // The folder is the owner's only (0700), so the copy is never readable by others, even
    // before its own mode is set.
    conn.execute("VACUUM INTO ?1", [target.to_string_lossy().as_ref()])
        .map_err(|e| e.to_string())?;
    std::fs::set_permissions(target, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| e.to_string())?;
    let copy = Connection::open_with_flags(target, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(|e| e.to_string())?;
    let check: String = copy
        .query_row("PRAGMA integrity_check", [], |row| row.get(0))
        .map_err(|e| e.to_string())?;
    if check != "ok" {
        return Err(format!("the copy fails its integrity check: {check}"));
    }
    std::fs::metadata(target)
        .map(|m| m.len())
        .map_err(|e| e.to_string())
}
