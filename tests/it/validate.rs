//! Each class of operator mistake: its file, line, column and text, in English and Chinese.

use gongkai::diag::Severity;
use gongkai::i18n::Lang;

use crate::fixture::{Fixture, assert_error, hint};

const PL: &str = "playlists/main.yaml";

#[test]
fn minimal_fixture_is_valid() {
    let loaded = Fixture::new().load();
    assert_eq!(
        loaded.report.errors(),
        0,
        "{}",
        loaded.report.render(Lang::En)
    );
    let model = loaded.model.expect("model");
    assert_eq!(model.displays.len(), 2);
    assert_eq!(
        model.playlists[0].targets,
        vec![0, 1],
        "the group expands to both displays"
    );
    let item = &model.playlists[0].items[0];
    // A date-only `until` includes the whole day, in the site's zone.
    assert_eq!(
        item.valid.until.map(|t| t.to_rfc3339()).as_deref(),
        Some("2026-12-08T00:00:00+08:00")
    );
}

#[test]
fn yaml_syntax_error() {
    let site = Fixture::new();
    site.edit(
        PL,
        "    category: 政府采购",
        "    category: 政府采购\n   bad: [1, 2",
    );
    let loaded = site.load();
    let error = crate::fixture::single_error(&loaded);
    assert_eq!(error.pos.file, PL);
    assert!(
        error
            .headline(Lang::En)
            .contains(": error: YAML syntax error"),
        "{}",
        error.headline(Lang::En)
    );
    assert!(
        error.headline(Lang::Zh).contains(": 错误: YAML 语法错误"),
        "{}",
        error.headline(Lang::Zh)
    );
    assert!(hint(&error, Lang::Zh).contains("缩进"));
}

#[test]
fn yaml_tab_indentation() {
    let site = Fixture::new();
    site.edit(PL, "    category: 政府采购", "\tcategory: 政府采购");
    let loaded = site.load();
    let error = crate::fixture::single_error(&loaded);
    assert_eq!(
        (error.pos.file.as_str(), error.pos.line),
        (PL, 9),
        "{}",
        loaded.report.render(Lang::En)
    );
    assert!(
        hint(&error, Lang::En).contains("spaces"),
        "{}",
        hint(&error, Lang::En)
    );
}

#[test]
fn unknown_field_suggests_the_nearest_name() {
    let site = Fixture::new();
    site.edit(PL, "    title:", "    tittle:");
    let error = assert_error(
        &site.load(),
        "playlists/main.yaml:8:5: error: unknown field `tittle`",
        "playlists/main.yaml:8:5: 错误: 未知字段 `tittle`",
    );
    assert_eq!(hint(&error, Lang::En), "did you mean `title`?");
    assert_eq!(hint(&error, Lang::Zh), "是不是想写 `title`？");
}

#[test]
fn unknown_field_for_a_secret_points_to_env_or_file() {
    let site = Fixture::new();
    site.edit(
        "gongkai.yaml",
        "mqtt: { broker: mqtt://127.0.0.1:1883 }",
        "mqtt: { broker: mqtt://127.0.0.1:1883, password: hunter2 }",
    );
    let loaded = site.load();
    let error = crate::fixture::single_error(&loaded);
    assert_eq!((error.pos.line, error.pos.col), (3, 40));
    assert!(hint(&error, Lang::En).contains("password_env"));
    // The secret itself is never repeated back.
    assert!(
        !loaded
            .report
            .render(Lang::En)
            .lines()
            .next()
            .unwrap_or("")
            .contains("hunter2")
    );
}

#[test]
fn wrong_type() {
    let site = Fixture::new();
    site.edit("hw-profiles/board.yaml", "width: 128", "width: 宽128");
    assert_error(
        &site.load(),
        "hw-profiles/board.yaml:1:8: error: wrong value: expected a whole number (0 or more)",
        "hw-profiles/board.yaml:1:8: 错误: 取值不对：这里应为非负整数",
    );
}

#[test]
fn wrong_type_list_for_text() {
    let site = Fixture::new();
    site.edit(PL, "targets: [county]", "targets: county");
    let loaded = site.load();
    let error = crate::fixture::single_error(&loaded);
    assert_eq!((error.pos.line, error.pos.col), (2, 10));
    assert!(
        error.headline(Lang::En).contains("a list"),
        "{}",
        error.headline(Lang::En)
    );
    assert!(
        error.headline(Lang::Zh).contains("列表"),
        "{}",
        error.headline(Lang::Zh)
    );
}

#[test]
fn missing_field() {
    let site = Fixture::new();
    site.edit(PL, "    category: 政府采购\n", "");
    let error = assert_error(
        &site.load(),
        "playlists/main.yaml:7:5: error: missing field `category`",
        "playlists/main.yaml:7:5: 错误: 缺少字段 `category`",
    );
    assert!(hint(&error, Lang::En).contains("category:"));
}

#[test]
fn unknown_category_suggests_the_nearest() {
    let site = Fixture::new();
    site.edit(PL, "category: 政府采购", "category: 政府釆购");
    let error = assert_error(
        &site.load(),
        "playlists/main.yaml:9:15: error: unknown value `政府釆购`",
        "playlists/main.yaml:9:15: 错误: 未知取值 `政府釆购`",
    );
    assert_eq!(hint(&error, Lang::En), "did you mean `政府采购`?");
}

#[test]
fn duplicate_display_id() {
    let site = Fixture::new();
    site.edit("gongkai.yaml", "  - id: town", "  - id: square");
    let error = assert_error(
        &site.load(),
        "gongkai.yaml:11:9: error: the id `square` is used twice",
        "gongkai.yaml:11:9: 错误: 编号 `square` 重复使用",
    );
    assert_eq!(hint(&error, Lang::En), "first used at gongkai.yaml:6");
}

#[test]
fn duplicate_item_id_across_files() {
    let site = Fixture::new();
    site.write(
        "playlists/other.yaml",
        crate::fixture::PLAYLIST.replace("id: main", "id: other"),
    );
    let error = assert_error(
        &site.load(),
        "playlists/other.yaml:7:9: error: the id `n1` is used twice",
        "playlists/other.yaml:7:9: 错误: 编号 `n1` 重复使用",
    );
    assert_eq!(hint(&error, Lang::Zh), "第一次使用在 playlists/main.yaml:7");
}

#[test]
fn unknown_display_or_group() {
    let site = Fixture::new();
    site.edit(PL, "targets: [county]", "targets: [square, countty]");
    let error = assert_error(
        &site.load(),
        "playlists/main.yaml:2:19: error: `countty` is neither a display nor a group",
        "playlists/main.yaml:2:19: 错误: `countty` 既不是显示屏也不是分组",
    );
    assert_eq!(hint(&error, Lang::En), "did you mean `county`?");
}

#[test]
fn unknown_profile() {
    let site = Fixture::new();
    site.edit(
        "gongkai.yaml",
        "    profile: board\n    link: { mqtt",
        "    profile: bord\n    link: { mqtt",
    );
    let error = assert_error(
        &site.load(),
        "gongkai.yaml:12:14: error: unknown hardware profile `bord`",
        "gongkai.yaml:12:14: 错误: 未知硬件配置 `bord`",
    );
    assert_eq!(hint(&error, Lang::En), "did you mean `board`?");
}

#[test]
fn reference_to_a_broken_profile_is_not_reported_twice() {
    let site = Fixture::new();
    site.edit(
        "hw-profiles/board.yaml",
        "pixel: mono",
        "pixel: mono\npixel: mono",
    );
    let loaded = site.load();
    let error = crate::fixture::single_error(&loaded);
    assert_eq!(error.pos.file, "hw-profiles/board.yaml");
}

#[test]
fn invalid_cron_names_the_field_and_why() {
    let site = Fixture::new();
    site.edit(PL, "\"0 19 * * *\"", "\"0 25 * * *\"");
    let error = assert_error(
        &site.load(),
        "playlists/main.yaml:4:14: error: cron field 2 (hour) `25`: 25 is out of range 0-23",
        "playlists/main.yaml:4:14: 错误: cron 第 2 段（时）`25`：25 超出范围 0-23",
    );
    assert_eq!(error.pos.len, 2);
}

#[test]
fn cron_with_six_fields_is_refused() {
    let site = Fixture::new();
    site.edit(PL, "\"0 19 * * *\"", "\"0 0 19 * * *\"");
    assert_error(
        &site.load(),
        "playlists/main.yaml:4:11: error: `0 0 19 * * *` has 6 fields; a crontab expression has 5",
        "playlists/main.yaml:4:11: 错误: `0 0 19 * * *` 有 6 段；crontab 表达式应有 5 段",
    );
}

#[test]
fn cron_backwards_weekday_range() {
    let site = Fixture::new();
    site.edit(PL, "\"0 19 * * *\"", "\"0 19 * * FRI-MON\"");
    assert_error(
        &site.load(),
        "playlists/main.yaml:4:21: error: cron field 5 (day of week) `FRI-MON`: the range 5-1 runs backwards",
        "playlists/main.yaml:4:21: 错误: cron 第 5 段（星期）`FRI-MON`：范围 5-1 是倒过来的",
    );
}

#[test]
fn window_of_zero_length() {
    let site = Fixture::new();
    site.edit(PL, "for: 2h", "for: 0m");
    assert_error(
        &site.load(),
        "playlists/main.yaml:5:10: error: the window length `0m` is zero",
        "playlists/main.yaml:5:10: 错误: 时段长度 `0m` 为零",
    );
}

#[test]
fn window_of_negative_length() {
    let site = Fixture::new();
    site.edit(PL, "for: 2h", "for: -1h");
    assert_error(
        &site.load(),
        "playlists/main.yaml:5:10: error: the window length `-1h` is negative",
        "playlists/main.yaml:5:10: 错误: 时段长度 `-1h` 为负数",
    );
}

#[test]
fn validity_until_before_from() {
    let site = Fixture::new();
    site.edit(PL, "until: 2026-12-07", "until: 2026-11-30");
    let error = assert_error(
        &site.load(),
        "playlists/main.yaml:10:39: error: `until` 2026-11-30 is not after `from`",
        "playlists/main.yaml:10:39: 错误: 结束时间 `until` 2026-11-30 不晚于开始时间 `from`",
    );
    assert!(hint(&error, Lang::En).contains("2026-12-01"));
}

#[test]
fn unknown_timezone() {
    let site = Fixture::new();
    site.edit(
        "gongkai.yaml",
        "timezone: Asia/Shanghai",
        "timezone: Asia/Shanghia",
    );
    let error = assert_error(
        &site.load(),
        "gongkai.yaml:2:11: error: unknown timezone `Asia/Shanghia`",
        "gongkai.yaml:2:11: 错误: 未知时区 `Asia/Shanghia`",
    );
    assert_eq!(hint(&error, Lang::En), "did you mean `Asia/Shanghai`?");
}

#[test]
fn baud_the_profile_does_not_support() {
    let site = Fixture::new();
    site.edit("gongkai.yaml", "baud: 9600", "baud: 19200");
    let error = assert_error(
        &site.load(),
        "gongkai.yaml:9:41: error: 19200 baud is not supported by profile board",
        "gongkai.yaml:9:41: 错误: 硬件配置 board 不支持 19200 波特率",
    );
    assert_eq!(hint(&error, Lang::En), "supported: 9600, 115200");
}

#[test]
fn file_that_is_not_utf8() {
    let site = Fixture::new();
    // "公告" in GBK, as an old Windows editor would save it.
    let mut bytes = b"id: main\ntargets: [county]\nname: ".to_vec();
    bytes.extend([0xB9, 0xAB, 0xB8, 0xE6]);
    bytes.extend(b"\nitems: []\n");
    site.write(PL, bytes);
    let error = assert_error(
        &site.load(),
        "playlists/main.yaml:3:7: error: this file is not UTF-8 text (byte 0xB9)",
        "playlists/main.yaml:3:7: 错误: 此文件不是 UTF-8 文本（字节 0xB9）",
    );
    assert!(hint(&error, Lang::En).contains("iconv"));
}

#[test]
fn empty_playlist() {
    let site = Fixture::new();
    site.write(PL, "id: main\ntargets: [county]\nitems: []\n");
    assert_error(
        &site.load(),
        "playlists/main.yaml:1:5: error: playlist `main` has no items",
        "playlists/main.yaml:1:5: 错误: 播放列表 `main` 没有任何条目",
    );
}

#[test]
fn playlist_that_targets_nothing() {
    let site = Fixture::new();
    site.edit(PL, "targets: [county]\n", "");
    let error = assert_error(
        &site.load(),
        "playlists/main.yaml:1:5: error: playlist `main` targets nothing",
        "playlists/main.yaml:1:5: 错误: 播放列表 `main` 没有投放到任何显示屏",
    );
    assert!(hint(&error, Lang::En).contains("targets:"));
}

#[test]
fn shared_bus_needs_one_baud_and_distinct_addresses() {
    let site = Fixture::new();
    site.edit(
        "gongkai.yaml",
        "    link: { mqtt: boards/town }",
        "    link: { serial: /dev/ttyUSB0, baud: 115200, address: 1 }",
    );
    let loaded = site.load();
    let errors: Vec<String> = loaded
        .report
        .diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .map(|d| d.headline(Lang::En))
        .collect();
    assert_eq!(
        errors,
        vec![
            "gongkai.yaml:13:41: error: every display on /dev/ttyUSB0 must use the same baud, and the first one uses 9600",
            "gongkai.yaml:13:58: error: RS-485 address 1 is already used by `square` on this bus",
        ]
    );
}

#[test]
fn exposed_admin_listener_needs_a_token() {
    let site = Fixture::new();
    site.edit(
        "gongkai.yaml",
        "timezone: Asia/Shanghai\n",
        "timezone: Asia/Shanghai\nadmin: { listen: 0.0.0.0:8640 }\n",
    );
    let loaded = site.load();
    let error = crate::fixture::single_error(&loaded);
    assert_eq!(
        error.headline(Lang::En),
        "gongkai.yaml:3:18: error: 0.0.0.0:8640 is reachable from other machines, but no access token is set"
    );
}

#[test]
fn a_ca_file_for_a_broker_without_tls_is_refused() {
    let site = Fixture::new();
    site.edit(
        "gongkai.yaml",
        "mqtt: { broker: mqtt://127.0.0.1:1883 }",
        "mqtt: { broker: mqtt://127.0.0.1:1883, ca_file: county-ca.pem }",
    );
    let loaded = site.load();
    let error = crate::fixture::single_error(&loaded);
    assert_eq!(
        error.headline(Lang::En),
        "gongkai.yaml:3:49: error: `ca_file` is for a TLS broker, and this broker's address is mqtt://"
    );
    site.edit(
        "gongkai.yaml",
        "mqtt://127.0.0.1:1883",
        "mqtts://127.0.0.1:8883",
    );
    assert!(site.load().model.is_some());
}

#[test]
fn every_problem_is_reported_not_just_the_first() {
    let site = Fixture::new();
    // A syntax error in one playlist ...
    site.write("playlists/broken.yaml", "id: broken\ntargets: [county\n");
    // ... a semantic error in another file and two in the main playlist.
    site.edit(
        "gongkai.yaml",
        "timezone: Asia/Shanghai",
        "timezone: Mars/Olympus",
    );
    site.edit(PL, "for: 2h", "for: 0m")
        .edit(PL, "until: 2026-12-07", "until: 2026-11-01");
    let loaded = site.load();
    let files_and_lines: Vec<(String, u32)> = loaded
        .report
        .diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .map(|d| (d.pos.file.clone(), d.pos.line))
        .collect();
    assert_eq!(
        files_and_lines,
        vec![
            ("gongkai.yaml".to_owned(), 2),
            ("playlists/broken.yaml".to_owned(), 2),
            ("playlists/main.yaml".to_owned(), 5),
            ("playlists/main.yaml".to_owned(), 10),
        ],
        "{}",
        loaded.report.render(Lang::En)
    );
}

#[test]
fn rendering_places_the_caret_under_hanzi_by_display_width() {
    let site = Fixture::new();
    site.edit(
        PL,
        "category: 政府采购\n",
        "category: 政府采购\n    department: 县财政局\n    colour: red\n",
    );
    let loaded = site.load();
    let text = loaded.report.render(Lang::Zh);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        "playlists/main.yaml:11:5: 错误: 未知字段 `colour`"
    );
    assert_eq!(lines[1], " 11 |     colour: red");
    assert_eq!(lines[2], "    |     ^^^^^^");
    assert_eq!(lines[3], "  = 提示: 是不是想写 `color`？");
}

#[test]
fn missing_site_file_is_an_error_with_a_hint() {
    let dir = tempfile::tempdir().expect("temp dir");
    let loaded = gongkai::config::load(dir.path());
    let error = crate::fixture::single_error(&loaded);
    assert!(
        error
            .headline(Lang::En)
            .starts_with("gongkai.yaml:1:1: error: no site file gongkai.yaml in ")
    );
    assert!(hint(&error, Lang::Zh).contains("--site"));
}

#[test]
fn empty_required_text_says_a_value_is_needed() {
    let site = Fixture::new();
    site.edit(
        PL,
        "    title: 城区道路照明改造工程中标结果公示",
        "    title:",
    );
    let error = assert_error(
        &site.load(),
        "playlists/main.yaml:8:10: error: this field needs a value",
        "playlists/main.yaml:8:10: 错误: 此字段需要一个值",
    );
    assert!(hint(&error, Lang::En).contains("after the colon"));
}

#[test]
fn invalid_profile_is_not_reported_again_as_unknown() {
    let site = Fixture::new();
    site.edit("hw-profiles/board.yaml", "width: 128", "width: 0");
    assert_error(
        &site.load(),
        "hw-profiles/board.yaml:1:8: error: width 0 is out of range (1 to 16384 pixels)",
        "hw-profiles/board.yaml:1:8: 错误: width 为 0，超出范围（1 至 16384 像素）",
    );
}

#[test]
fn broken_mqtt_section_is_reported_once() {
    let site = Fixture::new();
    site.edit(
        "gongkai.yaml",
        "broker: mqtt://127.0.0.1:1883",
        "broker: 127.0.0.1:1883",
    );
    let error = assert_error(
        &site.load(),
        "gongkai.yaml:3:17: error: `127.0.0.1:1883` is not an MQTT broker address",
        "gongkai.yaml:3:17: 错误: `127.0.0.1:1883` 不是 MQTT 服务器地址",
    );
    assert!(hint(&error, Lang::En).contains("mqtt://"));
}

#[test]
fn serial_fields_on_an_mqtt_link_are_an_error() {
    let site = Fixture::new();
    site.edit(
        "gongkai.yaml",
        "{ mqtt: boards/town }",
        "{ mqtt: boards/town, baud: 9600 }",
    );
    assert_error(
        &site.load(),
        "gongkai.yaml:13:38: error: `baud` belongs to a serial link only",
        "gongkai.yaml:13:38: 错误: `baud` 只用于串口连接",
    );
}

#[test]
fn profile_defined_twice_as_yaml_and_yml() {
    let site = Fixture::new();
    site.write("hw-profiles/board.yml", crate::fixture::PROFILE);
    assert_error(
        &site.load(),
        "hw-profiles/board.yml:1:1: error: profile `board` is defined twice",
        "hw-profiles/board.yml:1:1: 错误: 硬件配置 `board` 定义了两次",
    );
}

#[test]
fn site_name_without_ascii_gets_a_distinct_mqtt_client_id() {
    let a = Fixture::new().load().model.expect("model");
    let b = Fixture::new();
    b.edit(
        "gongkai.yaml",
        "site: 测试县政务公开",
        "site: 大余县政务公开",
    );
    let b = b.load().model.expect("model");
    let (a, b) = (a.site.mqtt.expect("mqtt"), b.site.mqtt.expect("mqtt"));
    assert!(a.client_id.starts_with("gongkai-") && b.client_id.starts_with("gongkai-"));
    assert_ne!(a.client_id, b.client_id);
}

#[test]
fn character_drawn_by_a_fallback_font_is_a_warning_at_its_position() {
    let site = Fixture::new();
    site.edit(
        PL,
        "category: 政府采购",
        "category: 人员录用\n    body: 拟录用李镕同志",
    );
    let loaded = site.load();
    assert!(loaded.model.is_some(), "a fallback is not an error");
    let warning = loaded
        .report
        .diagnostics
        .iter()
        .find(|d| d.severity == Severity::Warning)
        .expect("a warning");
    assert_eq!(
        warning.headline(Lang::En),
        "playlists/main.yaml:10:15: warning: `镕` (U+9555, character 5 of the body of n1) is not in wqy16; on board boards it is drawn with unifont-bmp"
    );
    assert!(warning.headline(Lang::Zh).contains("改用 unifont-bmp 显示"));
}

#[test]
fn character_no_font_has_is_an_error() {
    let site = Fixture::new();
    site.edit(
        PL,
        "category: 政府采购",
        "category: 政府采购\n    body: \"公示\u{F0000}\"",
    );
    let error = crate::fixture::single_error(&site.load());
    assert_eq!(
        error.headline(Lang::En),
        "playlists/main.yaml:10:14: error: `\u{F0000}` (U+F0000, character 3 of the body of n1) is in no font of board boards"
    );
}

#[test]
fn broken_colour_markup_is_an_error() {
    let site = Fixture::new();
    site.edit(
        PL,
        "category: 政府采购",
        "category: 政府采购\n    body: 中标金额{rde}100元{/}",
    );
    let error = crate::fixture::single_error(&site.load());
    assert!(
        error
            .headline(Lang::En)
            .starts_with("playlists/main.yaml:10:11: error: colour markup in the body: "),
        "{}",
        error.headline(Lang::En)
    );
    assert!(error.headline(Lang::En).contains("rde"));
}

#[test]
fn glyph_check_continues_after_an_sms_only_item() {
    let site = Fixture::new();
    site.edit(
        PL,
        "  - id: n1\n",
        "  - id: sms-only\n    title: 短信通知\n    category: 其他\n    channels: [sms]\n  - id: n1\n",
    );
    site.edit(
        PL,
        "category: 政府采购",
        "category: 人员录用\n    body: 拟录用刘喆同志",
    );
    let loaded = site.load();
    assert!(
        loaded
            .report
            .diagnostics
            .iter()
            .any(|d| d.headline(Lang::En).contains("`喆`")),
        "the item after an SMS-only item is still checked:\n{}",
        loaded.report.render(Lang::En)
    );
}

#[test]
fn receive_buffer_out_of_range() {
    let site = Fixture::new();
    site.edit("hw-profiles/board.yaml", "buffer: 1024", "buffer: 16");
    assert_error(
        &site.load(),
        "hw-profiles/board.yaml:6:42: error: a receive buffer of 16 bytes is out of range (64 to 65535)",
        "hw-profiles/board.yaml:6:42: 错误: 接收缓冲区 16 字节超出范围（64 至 65535）",
    );
}

#[test]
fn scrolling_faster_than_the_serial_link_carries() {
    let site = Fixture::new();
    site.edit(
        PL,
        "category: 政府采购",
        "category: 政府采购\n    show: { mode: scroll, speed: 32px/s }",
    );
    let error = assert_error(
        &site.load(),
        "playlists/main.yaml:7:9: error: n1 on square needs 16876 bytes/s, but its serial link carries 960 (9600 baud shared by 1 display(s))",
        "playlists/main.yaml:7:9: 错误: n1 在 square 上每秒需传 16876 字节，但其串口只能传 960 字节（9600 波特率，1 块屏共用）",
    );
    assert!(
        hint(&error, Lang::En).contains("at most 1px/s"),
        "{}",
        hint(&error, Lang::En)
    );
    // A controller that scrolls by itself gets a program once, not a frame per pixel.
    site.edit(
        "hw-profiles/board.yaml",
        "protocol: gongkai",
        "protocol: gongkai\nlocal_playback: { scroll: true }",
    );
    assert!(site.load().model.is_some());
}
