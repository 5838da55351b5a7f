//! Fuzz target `yaml_loader`: hostile bytes as one of the operator's files, through the path
//! `gongkai validate` and the daemon's reload take, then rendered as the operator sees it.
//!
//! Asserts: no panic, whatever the file holds (syntax errors, wrong types, huge numbers,
//! deep nesting, aliases, tabs, wide and control characters, bytes that are not UTF-8).
//!
//! Input layout: byte 0 picks the role of the rest, the other files being a small valid site
//! (`BASE_*` below) so that a fuzzed file meets real references:
//! - `0`: the site file `gongkai.yaml`;
//! - `1`: a hardware profile `hw-profiles/fuzz.yaml` (the site's displays use profile `fuzz`);
//! - `2`: a playlist `playlists/fuzz.yaml`;
//! - `3`: a profile on its own, as `--profile FILE` reads it (`validate::check_profile`).
//!
//! Text that is UTF-8 goes through `config::validate::check` in memory (what the benchmarks
//! measure) and then the two checks `config::load` adds, glyphs and serial capacity. Bytes
//! that are not UTF-8 are written to a site directory and read back by `config::load` itself,
//! which reports the first bad byte with its line and column. Every report is rendered in
//! both languages (quoted source line, caret, hint).
#![no_main]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use gongkai::config::{self, SiteSources, SourceFile};
use gongkai::diag::Report;
use gongkai::i18n::Lang;
use libfuzzer_sys::fuzz_target;

const BASE_SITE: &str = "\
site: 模糊测试县政务公开
timezone: Asia/Shanghai
mqtt: { broker: mqtt://127.0.0.1:1883 }
sms: { signature: 模糊测试县 }
displays:
  - id: hall
    name: 大厅屏
    profile: fuzz
    link: { serial: /dev/ttyUSB0, baud: 9600, address: 1 }
    groups: [county]
  - id: town
    name: 乡镇屏
    profile: fuzz
    link: { mqtt: boards/town }
    groups: [county, town]
";

const BASE_PROFILE: &str = "\
width: 128
height: 16
pixel: mono
font: wqy16
protocol: gongkai
serial: { bauds: [9600, 19200], buffer: 512 }
local_playback: { pages: true, scroll: true }
";

const BASE_PLAYLIST: &str = "\
id: fuzz
name: 模糊测试
targets: [hall, town]
show: { mode: scroll, speed: 24px/s, passes: 1 }
items:
  - id: notice
    category: 其他
    department: 县政府办公室
    title: 办公时间
    body: 周一至周五上午8:30至12:00。
";

/// A private site directory for inputs that must go through the files: one per process, in
/// the temporary folder (`.ci/run` points `TMPDIR` at its scratch space).
fn scratch() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("gongkai-fuzz-yaml-{}", std::process::id()));
        for sub in [config::PROFILE_DIR, config::PLAYLIST_DIR] {
            std::fs::create_dir_all(dir.join(sub)).expect("scratch site directory");
        }
        dir
    })
}

fn base() -> SiteSources {
    SiteSources {
        site: Some(SourceFile {
            name: config::SITE_FILE.into(),
            text: BASE_SITE.into(),
        }),
        profiles: vec![SourceFile {
            name: "hw-profiles/fuzz.yaml".into(),
            text: BASE_PROFILE.into(),
        }],
        playlists: vec![SourceFile {
            name: "playlists/fuzz.yaml".into(),
            text: BASE_PLAYLIST.into(),
        }],
        fonts: Vec::new(),
    }
}

fn render(report: &Report) {
    for lang in [Lang::En, Lang::Zh] {
        let _ = report.render(lang);
    }
}

fuzz_target!(|data: &[u8]| {
    let [role, rest @ ..] = data else {
        return;
    };
    let role = role % 4;
    let Ok(text) = std::str::from_utf8(rest) else {
        // Through the files: `load` reads them and reports the first byte that is not UTF-8.
        let dir = scratch();
        let files = [
            (dir.join(config::SITE_FILE), BASE_SITE.as_bytes()),
            (dir.join("hw-profiles/fuzz.yaml"), BASE_PROFILE.as_bytes()),
            (dir.join("playlists/fuzz.yaml"), BASE_PLAYLIST.as_bytes()),
        ];
        // Role 3 is a profile too.
        let fuzzed = if role == 3 { 1 } else { usize::from(role) };
        for (index, (path, bytes)) in files.iter().enumerate() {
            let bytes = if index == fuzzed { rest } else { bytes };
            std::fs::write(path, bytes).expect("scratch site file");
        }
        if role == 3 {
            let path = dir.join("hw-profiles/fuzz.yaml");
            if let Ok((_, report)) = config::load_profile(dir, &path) {
                render(&report);
            }
        }
        let loaded = config::load(dir);
        assert!(
            loaded.model.is_none(),
            "a file that is not UTF-8 was accepted"
        );
        render(&loaded.report);
        return;
    };

    if role == 3 {
        let file = SourceFile {
            name: "hw-profiles/fuzz.yaml".into(),
            text: text.to_owned(),
        };
        let (_, report) = config::validate::check_profile(file, Vec::new());
        render(&report);
        return;
    }
    let mut sources = base();
    let target = match role {
        0 => sources.site.as_mut(),
        1 => sources.profiles.first_mut(),
        _ => sources.playlists.first_mut(),
    };
    if let Some(file) = target {
        file.text = text.to_owned();
    }
    // What `config::load` does once the files are read.
    let mut loaded = config::validate::check(sources, Report::default());
    if let Some(model) = &loaded.model {
        config::glyphs::check(model, scratch(), &mut loaded.report);
        config::capacity::check(model, &mut loaded.report);
        loaded.report.sort();
    }
    render(&loaded.report);
});
