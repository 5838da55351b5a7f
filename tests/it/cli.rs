//! The `gongkai` binary as an operator runs it: exit codes, language, output.

use std::process::{Command, Output};

use crate::fixture::Fixture;

fn gongkai(args: &[&str], lang: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gongkai"))
        .args(args)
        .env_remove("LANGUAGE")
        .env_remove("LC_ALL")
        .env_remove("LC_MESSAGES")
        .env("LANG", lang)
        .output()
        .expect("run gongkai")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn validate_exits_0_on_a_valid_site() {
    let site = Fixture::new();
    let output = gongkai(
        &[
            "--site",
            site.path().to_str().expect("utf-8 path"),
            "validate",
        ],
        "C",
    );
    assert_eq!(output.status.code(), Some(0), "{}", stdout(&output));
    assert!(stdout(&output).contains("No errors"), "{}", stdout(&output));
}

#[test]
fn validate_exits_1_and_reports_in_the_locale_language() {
    let site = Fixture::new();
    site.edit("playlists/main.yaml", "for: 2h", "for: 0m");
    let dir = site.path().to_str().expect("utf-8 path");

    let output = gongkai(&["validate", "--site", dir], "zh_CN.UTF-8");
    assert_eq!(output.status.code(), Some(1));
    let text = stdout(&output);
    assert!(
        text.starts_with("playlists/main.yaml:5:10: 错误: 时段长度 `0m` 为零\n"),
        "{text}"
    );
    assert!(
        text.contains(" 5 |     for: 0m\n   |          ^^\n"),
        "{text}"
    );
    assert!(text.contains("1 个错误"), "{text}");

    // --lang wins over the locale.
    let output = gongkai(&["--lang", "en", "validate", "--site", dir], "zh_CN.UTF-8");
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stdout(&output)
            .starts_with("playlists/main.yaml:5:10: error: the window length `0m` is zero\n")
    );
}

#[test]
fn help_is_in_chinese_under_a_chinese_locale() {
    let output = gongkai(&["--help"], "zh_CN.UTF-8");
    assert_eq!(output.status.code(), Some(0));
    let text = stdout(&output);
    assert!(text.contains("用法："), "{text}");
    assert!(text.contains("检查站点的每个文件"), "{text}");
    assert!(text.contains("退出码"), "{text}");
    let output = gongkai(&["validate", "--help", "--lang=en"], "zh_CN.UTF-8");
    assert!(
        stdout(&output).contains("Check every file of the site"),
        "{}",
        stdout(&output)
    );
}

#[test]
fn unknown_command_exits_2() {
    let output = gongkai(&["frobnicate"], "C");
    assert_eq!(output.status.code(), Some(2));
}

#[test]
fn schema_write_reports_a_failure_with_exit_3() {
    let site = Fixture::new();
    // A file where the folder should be.
    let blocker = site.path().join("blocker");
    std::fs::write(&blocker, "").expect("write");
    let output = gongkai(
        &[
            "schema",
            "--write",
            blocker.join("sub").to_str().expect("utf-8"),
        ],
        "C",
    );
    assert_eq!(output.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&output.stderr).contains("cannot write"));
}

#[test]
fn unknown_language_exits_2_with_a_message() {
    let output = gongkai(&["--lang", "fr", "validate"], "C");
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("unknown language `fr`"));
}
