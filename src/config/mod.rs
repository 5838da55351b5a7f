//! The operator's files: reading them, reporting every problem precisely, and building the
//! validated [`Model`] the rest of the program runs on.
//!
//! Loading has two stages, kept apart like ripgrep's low-level and high-level arguments:
//! [`raw`] deserializes each file with source positions; [`validate`] resolves every reference
//! and checks every value, producing a `Model` only when there is no error. A syntax or type
//! error ends the checking of that one file; every other file is still checked, and every
//! semantic problem of the files that parsed is reported.
//!
//! This module reads files and nothing else: no clock, no network, no devices.

pub mod alerts;
pub mod capacity;
pub mod edit;
pub mod glyphs;
pub mod model;
pub mod raw;
pub mod schema;
pub mod validate;
pub mod values;
mod yaml_errors;

use std::path::{Path, PathBuf};

pub use model::Model;

use crate::diag::{Diagnostic, Msg, Pos, Report};

/// The site file's name, at the root of a site directory.
pub const SITE_FILE: &str = "gongkai.yaml";
/// Folder of hardware profiles, one per file, named by id.
pub const PROFILE_DIR: &str = "hw-profiles";
/// Folder of playlists.
pub const PLAYLIST_DIR: &str = "playlists";

/// The result of checking a site: the model when there were no errors, and every diagnostic.
pub struct Loaded {
    pub model: Option<Model>,
    pub report: Report,
}

/// One file of the site as read from disk.
#[derive(Clone)]
pub struct SourceFile {
    /// Relative to the site directory, with `/` separators: what diagnostics print.
    pub name: String,
    pub text: String,
}

/// The site's files, read but not parsed. Keeping reading apart from checking lets tests and
/// benchmarks check sites held in memory.
#[derive(Clone, Default)]
pub struct SiteSources {
    pub site: Option<SourceFile>,
    pub profiles: Vec<SourceFile>,
    pub playlists: Vec<SourceFile>,
    /// Files under `fonts/`, relative to the site, for checking font references.
    pub fonts: Vec<String>,
}

/// Reads and checks the site in `dir`.
pub fn load(dir: &Path) -> Loaded {
    let mut report = Report::default();
    let sources = read_sources(dir, &mut report);
    check_sources(dir, sources, report)
}

/// Reads and checks the site in `dir` as it would be with `text` as the playlist file `name`
/// (relative to `dir`), or without that file when `text` is `None`: how an edit is validated
/// before it is written.
pub fn load_with_playlist(dir: &Path, name: &str, text: Option<String>) -> Loaded {
    let mut report = Report::default();
    let mut sources = read_sources(dir, &mut report);
    sources.playlists.retain(|f| f.name != name);
    if let Some(text) = text {
        sources.playlists.push(SourceFile {
            name: name.to_owned(),
            text,
        });
        // Same order as on disk: "file order" decides which duplicate is reported.
        sources.playlists.sort_by(|a, b| a.name.cmp(&b.name));
    }
    check_sources(dir, sources, report)
}

/// Checks sources already read; `dir` is where fonts are looked up.
fn check_sources(dir: &Path, sources: SiteSources, report: Report) -> Loaded {
    let mut loaded = validate::check(sources, report);
    if let Some(model) = &loaded.model {
        glyphs::check(model, dir, &mut loaded.report);
        capacity::check(model, &mut loaded.report);
        loaded.report.sort();
        if loaded.report.has_errors() {
            loaded.model = None;
        }
    }
    loaded
}

/// Reads every file the site consists of. Files that cannot be read or are not UTF-8 become
/// diagnostics; the rest are returned.
pub fn read_sources(dir: &Path, report: &mut Report) -> SiteSources {
    let mut sources = SiteSources::default();
    let site_path = dir.join(SITE_FILE);
    if site_path.is_file() {
        sources.site = read_text(dir, &site_path, report);
    } else {
        report.push(
            Diagnostic::error(
                Pos::file(SITE_FILE),
                Msg::new("load.no_site_file").arg("dir", dir.display()),
            )
            .with_hint(Msg::new("load.no_site_file.hint")),
        );
    }
    for path in yaml_files(&dir.join(PROFILE_DIR), report, dir) {
        if let Some(file) = read_text(dir, &path, report) {
            sources.profiles.push(file);
        }
    }
    for path in yaml_files(&dir.join(PLAYLIST_DIR), report, dir) {
        if let Some(file) = read_text(dir, &path, report) {
            sources.playlists.push(file);
        }
    }
    sources.fonts = font_files(dir);
    sources
}

/// A hardware profile file on its own, for commands that take `--profile FILE`: the profile
/// when it is valid, and the report of its problems. Font references resolve against the
/// site's `fonts/`.
pub fn load_profile(site: &Path, path: &Path) -> std::io::Result<(Option<model::Profile>, Report)> {
    let text = std::fs::read_to_string(path)?;
    let name = path.to_string_lossy().replace('\\', "/");
    Ok(validate::check_profile(
        SourceFile { name, text },
        font_files(site),
    ))
}

/// Files in the site's `fonts/`, as `fonts/NAME`, sorted.
pub fn font_files(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir.join("fonts")) else {
        return Vec::new();
    };
    let mut fonts: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_file())
        .map(|e| format!("fonts/{}", e.file_name().to_string_lossy()))
        .collect();
    fonts.sort();
    fonts
}

/// `*.yaml` and `*.yml` files of a folder, sorted by name so "file order" is stable.
fn yaml_files(folder: &Path, report: &mut Report, dir: &Path) -> Vec<PathBuf> {
    let entries = match std::fs::read_dir(folder) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
        Err(e) => {
            report.push(Diagnostic::error(
                Pos::file(relative_name(dir, folder)),
                Msg::new("load.unreadable").arg("reason", e),
            ));
            return Vec::new();
        }
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| {
            path.is_file()
                && matches!(
                    path.extension().and_then(|e| e.to_str()),
                    Some("yaml" | "yml")
                )
        })
        .collect();
    files.sort();
    files
}

fn relative_name(dir: &Path, path: &Path) -> String {
    let relative = path.strip_prefix(dir).unwrap_or(path);
    relative.to_string_lossy().replace('\\', "/")
}

/// Reads a file as UTF-8 text. A file that is not UTF-8 is reported at the line and column of
/// its first invalid byte, and is then skipped.
fn read_text(dir: &Path, path: &Path, report: &mut Report) -> Option<SourceFile> {
    let name = relative_name(dir, path);
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) => {
            report.push(Diagnostic::error(
                Pos::file(&name),
                Msg::new("load.unreadable").arg("reason", e),
            ));
            return None;
        }
    };
    match String::from_utf8(bytes) {
        Ok(text) => Some(SourceFile { name, text }),
        Err(e) => {
            let bytes = e.as_bytes();
            let valid = e.utf8_error().valid_up_to();
            // The prefix up to the bad byte is valid UTF-8 by definition.
            let prefix = String::from_utf8_lossy(&bytes[..valid]);
            let line = prefix.matches('\n').count() as u32 + 1;
            let col = prefix.rsplit('\n').next().map_or(0, |l| l.chars().count()) as u32 + 1;
            report.add_source(&name, String::from_utf8_lossy(bytes).into_owned());
            report.push(
                Diagnostic::error(
                    Pos::new(&name, line, col, 1),
                    Msg::new("load.not_utf8").arg("byte", format!("0x{:02X}", bytes[valid])),
                )
                .with_hint(Msg::new("load.not_utf8.hint")),
            );
            None
        }
    }
}
