//! `gongkai preview` as an operator runs it: the lines as broken on the board, the pictures
//! it writes, and `--strict`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn gongkai(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gongkai"))
        .args(args)
        .current_dir(dir)
        .env_remove("LANGUAGE")
        .env_remove("LC_ALL")
        .env("LANG", "C")
        .output()
        .expect("run gongkai")
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn lines_show_the_board_breaks_and_pngs_are_written() {
    let out = tempfile::tempdir().expect("temp dir");
    let out_dir = out.path().to_str().expect("utf-8");
    let output = gongkai(
        &[
            "preview",
            "--profile",
            "hw-profiles/strip-mono-128x16.yaml",
            "--text",
            "公示期自十二月一日起，为期七天。",
            "--lines",
            "--out",
            out_dir,
        ],
        &root(),
    );
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // Eight hanzi fill a 128 px strip; the comma does not start the second page.
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "公示期自十二月一\n\n日起，为期七天。\n"
    );
    for name in ["text-p1.png", "text-p2.png", "text.gif"] {
        let bytes = std::fs::read(out.path().join(name)).unwrap_or_default();
        assert!(bytes.len() > 100, "{name} missing or empty");
    }
    let png = std::fs::read(out.path().join("text-p1.png")).expect("png");
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    // 128 × 16 LEDs at the default 6 screen pixels each.
    assert_eq!(
        u32::from_be_bytes([png[16], png[17], png[18], png[19]]),
        128 * 6
    );
    assert_eq!(
        u32::from_be_bytes([png[20], png[21], png[22], png[23]]),
        16 * 6
    );
}

#[test]
fn numbers_and_standard_numbers_stay_whole_on_the_square_board() {
    let out = tempfile::tempdir().expect("temp dir");
    let output = gongkai(
        &[
            "preview",
            "--profile",
            "hw-profiles/p10-rgb-192x64.yaml",
            "--title",
            "采购结果公示",
            "--text",
            "中标金额人民币1,234,567.89元，公示期自2026年12月1日至12月7日。依据GB/T 15834。",
            "--lines",
            "--out",
            out.path().to_str().expect("utf-8"),
        ],
        &root(),
    );
    assert_eq!(output.status.code(), Some(0));
    let text = String::from_utf8_lossy(&output.stdout);
    let lines: Vec<&str> = text.lines().filter(|l| !l.is_empty()).collect();
    assert!(lines.iter().any(|l| l.contains("1,234,567.89元")), "{text}");
    assert!(lines.iter().any(|l| l.contains("GB/T")), "{text}");
    assert!(lines.iter().all(|l| !l.starts_with(['，', '。'])), "{text}");
    // The title has the title bar; three body lines per page.
    assert!(!text.contains("采购结果公示"), "{text}");
    assert!(
        text.split("\n\n").all(|page| page.lines().count() <= 3),
        "{text}"
    );
}

#[test]
fn strict_refuses_a_character_no_font_has() {
    let out = tempfile::tempdir().expect("temp dir");
    let out_dir = out.path().to_str().expect("utf-8");
    let base = [
        "preview",
        "--profile",
        "hw-profiles/strip-mono-128x16.yaml",
        "--text",
        "公示\u{F0000}",
        "--out",
        out_dir,
    ];
    let output = gongkai(&base, &root());
    assert_eq!(
        output.status.code(),
        Some(0),
        "without --strict the box is drawn and reported"
    );
    assert!(String::from_utf8_lossy(&output.stderr).contains("U+F0000"));
    let mut strict = base.to_vec();
    strict.push("--strict");
    let output = gongkai(&strict, &root());
    assert_eq!(output.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&output.stderr)
            .contains("error: text: `\u{F0000}` (U+F0000) is in no font")
    );
}

#[test]
fn an_item_of_the_example_county_on_a_window_board() {
    let out = tempfile::tempdir().expect("temp dir");
    let output = gongkai(
        &[
            "preview",
            "w01-scope",
            "--lines",
            "--out",
            out.path().to_str().expect("utf-8"),
        ],
        &root(),
    );
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let written: Vec<String> = std::fs::read_dir(out.path())
        .expect("out dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        written
            .iter()
            .any(|name| name.starts_with("window-01_w01-scope")),
        "{written:?}"
    );
}

#[test]
fn unknown_item_exits_1() {
    let out = tempfile::tempdir().expect("temp dir");
    let output = gongkai(
        &[
            "preview",
            "no-such-item",
            "--out",
            out.path().to_str().expect("utf-8"),
        ],
        &root(),
    );
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("no item `no-such-item`"));
}
