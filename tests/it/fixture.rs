//! A minimal site on disk, with one method to change a file before checking it.

use std::path::Path;

use gongkai::config::{self, Loaded};
use gongkai::diag::{Diagnostic, Severity};
use gongkai::i18n::Lang;

pub const SITE: &str = "\
site: 测试县政务公开
timezone: Asia/Shanghai
mqtt: { broker: mqtt://127.0.0.1:1883 }
sms: { signature: 测试县政务公开 }
displays:
  - id: square
    name: 广场屏
    profile: board
    link: { serial: /dev/ttyUSB0, baud: 9600, address: 1 }
    groups: [county]
  - id: town
    profile: board
    link: { mqtt: boards/town }
    groups: [county]
";

pub const PROFILE: &str = "\
width: 128
height: 32
pixel: mono
font: wqy16
protocol: gongkai
serial: { bauds: [9600, 115200], buffer: 1024 }
";

pub const PLAYLIST: &str = "\
id: main
targets: [county]
when:
  - cron: \"0 19 * * *\"
    for: 2h
items:
  - id: n1
    title: 城区道路照明改造工程中标结果公示
    category: 政府采购
    valid: { from: 2026-12-01, until: 2026-12-07 }
";

/// A site in a temporary directory.
pub struct Fixture {
    pub dir: tempfile::TempDir,
}

impl Fixture {
    /// The valid minimal site.
    pub fn new() -> Fixture {
        let dir = tempfile::tempdir().expect("temp dir");
        let fixture = Fixture { dir };
        fixture.write("gongkai.yaml", SITE);
        fixture.write("hw-profiles/board.yaml", PROFILE);
        fixture.write("playlists/main.yaml", PLAYLIST);
        fixture
    }

    /// An empty site directory, for tests that write every file themselves.
    pub fn empty() -> Fixture {
        Fixture {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn write(&self, name: &str, text: impl AsRef<[u8]>) -> &Fixture {
        let path = self.dir.path().join(name);
        std::fs::create_dir_all(path.parent().expect("has parent")).expect("mkdir");
        std::fs::write(path, text).expect("write fixture");
        self
    }

    /// Replaces `from` by `to` in one file; the text must be there, so a fixture change cannot
    /// silently stop exercising what a test is about.
    pub fn edit(&self, name: &str, from: &str, to: &str) -> &Fixture {
        let path = self.dir.path().join(name);
        let text = std::fs::read_to_string(&path).expect("read fixture");
        assert!(text.contains(from), "{name} does not contain {from:?}");
        std::fs::write(path, text.replacen(from, to, 1)).expect("write fixture");
        self
    }

    pub fn load(&self) -> Loaded {
        config::load(self.path())
    }
}

/// The single error of a check that must have failed with exactly one error.
pub fn single_error(loaded: &Loaded) -> Diagnostic {
    let errors: Vec<&Diagnostic> = loaded
        .report
        .diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .collect();
    assert_eq!(
        errors.len(),
        1,
        "expected one error, got:\n{}",
        loaded.report.render(Lang::En)
    );
    assert!(
        loaded.model.is_none(),
        "a site with an error must not produce a model"
    );
    errors[0].clone()
}

/// Asserts the headline (`path:line:col: error: message`) in both languages, and that the hint
/// says something in both.
pub fn assert_error(loaded: &Loaded, en: &str, zh: &str) -> Diagnostic {
    let error = single_error(loaded);
    assert_eq!(error.headline(Lang::En), en);
    assert_eq!(error.headline(Lang::Zh), zh);
    error
}

pub fn hint(diagnostic: &Diagnostic, lang: Lang) -> String {
    diagnostic
        .hint
        .as_ref()
        .map(|h| h.render(lang))
        .unwrap_or_default()
}
