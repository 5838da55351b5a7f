//! The schedule from the operator's side: the checks on brightness, power and
//! `at_least_every`, and the `plan` and `cron` commands as run from a shell.

use std::process::{Command, Output};

use crate::fixture::{Fixture, assert_error, hint};
use gongkai::i18n::Lang;

const SITE: &str = "gongkai.yaml";
const PL: &str = "playlists/main.yaml";

fn gongkai(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gongkai"))
        .args(args)
        .env_remove("LANGUAGE")
        .env_remove("LC_ALL")
        .env_remove("LC_MESSAGES")
        .env("LANG", "en_US.UTF-8")
        .output()
        .expect("run gongkai")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn brightness_and_power_schedules_load() {
    let site = Fixture::new();
    site.edit(
        SITE,
        "    groups: [county]\n",
        "    groups: [county]\n    brightness: [{ cron: \"0 7 * * *\", level: 12 }]\n    power_off: [{ cron: \"0 23 * * *\", for: 7h }]\n",
    );
    let loaded = site.load();
    let model = loaded.model.expect("valid");
    assert_eq!(model.displays[0].brightness[0].level, 12);
    assert_eq!(model.displays[0].power_off[0].cron_text, "0 23 * * *");
}

#[test]
fn brightness_level_outside_the_profile_range() {
    let site = Fixture::new();
    site.edit(
        SITE,
        "    groups: [county]\n",
        "    groups: [county]\n    brightness: [{ cron: \"0 7 * * *\", level: 99 }]\n",
    );
    let error = assert_error(
        &site.load(),
        "gongkai.yaml:11:46: error: brightness level 99 is outside the range of profile `board`",
        "gongkai.yaml:11:46: 错误: 亮度 99 超出硬件配置 `board` 的亮度范围",
    );
    assert!(hint(&error, Lang::En).contains("from 0 to 15"));
}

#[test]
fn brightness_cron_names_its_field() {
    let site = Fixture::new();
    site.edit(
        SITE,
        "    groups: [county]\n",
        "    groups: [county]\n    brightness: [{ cron: \"0 25 * * *\", level: 9 }]\n",
    );
    assert_error(
        &site.load(),
        "gongkai.yaml:11:29: error: cron field 2 (hour) `25`: 25 is out of range 0-23",
        "gongkai.yaml:11:29: 错误: cron 第 2 段（时）`25`：25 超出范围 0-23",
    );
}

#[test]
fn power_off_window_of_zero_length() {
    let site = Fixture::new();
    site.edit(
        SITE,
        "    groups: [county]\n",
        "    groups: [county]\n    power_off: [{ cron: \"0 23 * * *\", for: 0m }]\n",
    );
    let loaded = site.load();
    let error = crate::fixture::single_error(&loaded);
    assert_eq!((error.pos.file.as_str(), error.pos.line), (SITE, 11));
}

#[test]
fn at_least_every_of_zero() {
    let site = Fixture::new();
    site.edit(
        PL,
        "    category: 政府采购\n",
        "    category: 政府采购\n    at_least_every: 0m\n",
    );
    assert_error(
        &site.load(),
        "playlists/main.yaml:10:21: error: `at_least_every: 0m` is zero",
        "playlists/main.yaml:10:21: 错误: `at_least_every: 0m` 为零",
    );
}

#[test]
fn at_least_every_that_is_not_a_duration() {
    let site = Fixture::new();
    site.edit(
        PL,
        "    category: 政府采购\n",
        "    category: 政府采购\n    at_least_every: often\n",
    );
    assert_error(
        &site.load(),
        "playlists/main.yaml:10:21: error: `often` is not a duration",
        "playlists/main.yaml:10:21: 错误: `often` 不是时长",
    );
}

#[test]
fn plan_json_lists_slots_with_why() {
    let site = Fixture::new();
    let path = site.path().to_str().expect("utf-8 path");
    let output = gongkai(&[
        "--site",
        path,
        "plan",
        "--display",
        "square",
        "--from",
        "2026-12-02T18:59",
        "--to",
        "2026-12-02T19:01:00+08:00",
        "--json",
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let slots: serde_json::Value = serde_json::from_slice(&output.stdout).expect("json");
    let slots = slots.as_array().expect("array");
    assert_eq!(slots[0]["start"], "2026-12-02T18:59:00+08:00");
    assert_eq!(slots[0]["item"], serde_json::Value::Null);
    assert_eq!(slots[0]["layer"], "idle");
    assert_eq!(slots[1]["start"], "2026-12-02T19:00:00+08:00");
    assert_eq!(slots[1]["item"], "n1");
    assert_eq!(slots[1]["playlist"], "main");
    assert!(
        slots[1]["why"]
            .as_str()
            .expect("why")
            .contains("0 19 * * *")
    );
    assert_eq!(
        slots.last().expect("slot")["end"],
        "2026-12-02T19:01:00+08:00"
    );
}

#[test]
fn plan_of_an_unknown_display_is_a_usage_error() {
    let site = Fixture::new();
    let path = site.path().to_str().expect("utf-8 path");
    let output = gongkai(&["--site", path, "plan", "--display", "sqare"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(text(&output.stderr).contains("square, town"));
}

#[test]
fn plan_of_a_broken_site_prints_the_report_and_exits_1() {
    let site = Fixture::new();
    site.edit(PL, "for: 2h", "for: 0h");
    let path = site.path().to_str().expect("utf-8 path");
    let output = gongkai(&["--site", path, "plan", "--display", "square"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(text(&output.stdout).contains("playlists/main.yaml:5:10: error:"));
}

#[test]
fn cron_prints_fire_times_strictly_after_from() {
    let empty = tempfile::tempdir().expect("temp dir");
    let path = empty.path().to_str().expect("utf-8 path");
    let output = gongkai(&[
        "--site",
        path,
        "cron",
        "0 19 * * *",
        "--from",
        "2026-12-01T19:00",
        "--count",
        "2",
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert_eq!(
        text(&output.stdout),
        "2026-12-02T19:00:00+08:00\n2026-12-03T19:00:00+08:00\n"
    );
    let output = gongkai(&[
        "--site",
        path,
        "cron",
        "0 9 * * 1",
        "--from",
        "2026-06-01T00:00:00Z",
        "--tz",
        "America/New_York",
        "--count",
        "1",
    ]);
    assert_eq!(text(&output.stdout), "2026-06-01T09:00:00-04:00\n");
}

#[test]
fn cron_with_a_bad_field_exits_1_naming_it() {
    let output = gongkai(&["cron", "0 8 * * FRI-MON", "--tz", "UTC"]);
    assert_eq!(output.status.code(), Some(1));
    let err = text(&output.stderr);
    assert!(
        err.contains("cron field 5 (day of week) `FRI-MON`: the range 5-1 runs backwards"),
        "{err}"
    );
}
