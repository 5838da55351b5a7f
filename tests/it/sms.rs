//! The SMS side as operators meet it: the `sms:` section's checks (file, line, column, text in
//! both languages) and the `gongkai sms` commands.

use std::process::{Command, Output};

use gongkai::config::model::SmsGatewayKind;
use gongkai::i18n::Lang;

use crate::fixture::{Fixture, assert_error, hint};

const SMS_LINE: &str = "sms: { signature: 测试县政务公开 }";

/// The fixture with its one-line `sms:` replaced by `block` (which starts on line 4).
fn with_sms(block: &str) -> Fixture {
    let site = Fixture::new();
    site.edit("gongkai.yaml", SMS_LINE, block.trim_end());
    site
}

const GATEWAYS: &str = "\
sms:
  signature: 测试县政务公开
  read_more: 县政府网站
  parts: 3
  quiet_hours: { from: \"22:30\", until: \"07:00\" }
  daily_cap: 2
  digest: true
  templates:
    default: \"{title}。详见{url}\"
    政府采购: \"采购：{title}{summary}\"
  gateways:
    - id: local
      kind: outbox
    - id: ali
      kind: aliyun
      access_key_id: LTAI000
      secret_env: ALI_SECRET
      template:
        id: SMS_123
        text: \"{title}已公布，详见{where}\"
        vars:
          - { name: title, field: title, max: 20 }
          - { name: where, field: url }
    - id: tc
      kind: tencent
      secret_id: AKID000
      sdk_app_id: \"1400000000\"
      secret_file: secrets/tencent
      template: { id: \"1234\", vars: [{ name: \"1\", field: title }] }
  route: [tc, ali, local]
";

#[test]
fn a_full_sms_section_builds_the_model_in_routing_order() {
    let loaded = with_sms(GATEWAYS).load();
    assert_eq!(
        loaded.report.errors(),
        0,
        "{}",
        loaded.report.render(Lang::En)
    );
    let model = loaded.model.expect("model");
    let sms = model.site.sms.expect("sms");
    assert_eq!(sms.parts, 3);
    assert_eq!(sms.daily_cap, 2);
    assert!(sms.digest);
    assert_eq!(sms.quiet_hours.from.to_string(), "22:30:00");
    assert_eq!(sms.quiet_hours.until.to_string(), "07:00:00");
    assert_eq!(
        sms.template(gongkai::config::model::Category::Procurement),
        "采购：{title}{summary}"
    );
    assert_eq!(
        sms.template(gongkai::config::model::Category::Hiring),
        "{title}。详见{url}"
    );
    let ids: Vec<&str> = sms.gateways.iter().map(|g| g.id.as_str()).collect();
    assert_eq!(ids, ["tc", "ali", "local"]);
    assert!(matches!(sms.gateways[0].kind, SmsGatewayKind::Tencent(_)));
    let ali = &sms.gateways[1];
    let vars = &ali.template.as_ref().expect("template").vars;
    assert_eq!((vars[0].max, vars[1].max), (20, 35));
}

#[test]
fn an_sms_section_with_only_a_signature_gets_the_defaults() {
    let model = Fixture::new().load().model.expect("model");
    let sms = model.site.sms.expect("sms");
    assert_eq!(sms.quiet_hours.from.to_string(), "21:00:00");
    assert_eq!(sms.quiet_hours.until.to_string(), "08:00:00");
    assert!(
        sms.quiet_hours
            .contains(chrono::NaiveTime::from_hms_opt(23, 0, 0).unwrap())
    );
    assert!(
        !sms.quiet_hours
            .contains(chrono::NaiveTime::from_hms_opt(8, 0, 0).unwrap())
    );
    assert_eq!((sms.parts, sms.daily_cap, sms.digest), (2, 5, false));
    assert_eq!(sms.opt_out, "回复TD退订");
    assert!(sms.gateways.is_empty(), "no gateway: the local outbox");
}

#[test]
fn unknown_template_placeholder() {
    let loaded =
        with_sms("sms:\n  signature: 县\n  templates:\n    default: \"{title}{tilte}\"\n").load();
    let e = assert_error(
        &loaded,
        "gongkai.yaml:7:14: error: unknown placeholder `{tilte}` in the template",
        "gongkai.yaml:7:14: 错误: 模板中有未知的占位符 `{tilte}`",
    );
    assert!(hint(&e, Lang::En).contains("{summary}"));
}

#[test]
fn unclosed_template_brace() {
    let loaded = with_sms("sms:\n  signature: 县\n  templates:\n    default: \"{title\"\n").load();
    assert_error(
        &loaded,
        "gongkai.yaml:7:14: error: a `{` in the template is not closed",
        "gongkai.yaml:7:14: 错误: 模板中的 `{` 没有闭合",
    );
}

#[test]
fn template_for_an_unknown_category() {
    let loaded = with_sms("sms:\n  signature: 县\n  templates:\n    天气: \"{title}\"\n").load();
    let e = assert_error(
        &loaded,
        "gongkai.yaml:7:9: error: `天气` is not a disclosure category",
        "gongkai.yaml:7:9: 错误: `天气` 不是公开类别",
    );
    assert!(hint(&e, Lang::Zh).contains("default"));
}

#[test]
fn url_placeholder_without_read_more() {
    let loaded =
        with_sms("sms:\n  signature: 县\n  templates:\n    default: \"{title}{url}\"\n").load();
    assert_error(
        &loaded,
        "gongkai.yaml:7:14: error: the template uses {url} but `read_more:` is not set",
        "gongkai.yaml:7:14: 错误: 模板使用了 {url}，但没有设置 `read_more:`",
    );
}

#[test]
fn quiet_hours_not_a_time() {
    let loaded =
        with_sms("sms:\n  signature: 县\n  quiet_hours: { from: \"21:00\", until: 8点 }\n").load();
    assert_error(
        &loaded,
        "gongkai.yaml:6:40: error: `8点` is not a time of day (HH:MM)",
        "gongkai.yaml:6:40: 错误: `8点` 不是时刻（应为 HH:MM）",
    );
}

#[test]
fn daily_cap_zero() {
    let loaded = with_sms("sms:\n  signature: 县\n  daily_cap: 0\n").load();
    assert_error(
        &loaded,
        "gongkai.yaml:6:14: error: `daily_cap` must be at least 1",
        "gongkai.yaml:6:14: 错误: `daily_cap` 至少为 1",
    );
}

const YUNMAS: &str = "sms:
  signature: 县
  gateways:
    - id: mas
      kind: yunmas
      url: http://10.0.0.1:1992
      ec_name: 县政府办
      sign_code: ABC
      secret_env: MAS
";

#[test]
fn gateway_missing_a_required_field() {
    let loaded = with_sms(YUNMAS).load();
    assert_error(
        &loaded,
        "gongkai.yaml:8:13: error: this gateway needs `ap_id:`",
        "gongkai.yaml:8:13: 错误: 此网关需要填写 `ap_id:`",
    );
}

#[test]
fn gateway_without_a_secret() {
    let loaded = with_sms(&YUNMAS.replace("      secret_env: MAS\n", "      ap_id: a\n")).load();
    let e = assert_error(
        &loaded,
        "gongkai.yaml:8:13: error: this gateway needs a secret",
        "gongkai.yaml:8:13: 错误: 此网关需要密钥",
    );
    assert!(hint(&e, Lang::En).contains("secret_file"));
}

#[test]
fn gateway_with_two_secret_sources() {
    let loaded = with_sms(&YUNMAS.replace(
        "      secret_env: MAS\n",
        "      ap_id: a\n      secret_env: MAS\n      secret_file: mas.key\n",
    ))
    .load();
    let e = crate::fixture::single_error(&loaded);
    assert_eq!((e.pos.line, e.pos.col), (14, 20));
}

#[test]
fn gateway_url_that_is_not_http() {
    let loaded = with_sms(
        &YUNMAS
            .replace("http://10.0.0.1:1992", "10.0.0.1:1992")
            .replace(
                "      secret_env: MAS\n",
                "      ap_id: a\n      secret_env: MAS\n",
            ),
    )
    .load();
    assert_error(
        &loaded,
        "gongkai.yaml:9:12: error: `10.0.0.1:1992` is not an http:// or https:// address",
        "gongkai.yaml:9:12: 错误: `10.0.0.1:1992` 不是 http:// 或 https:// 地址",
    );
}

#[test]
fn cloud_gateway_without_a_template() {
    let loaded = with_sms(
        "sms:\n  signature: 县\n  gateways:\n    - id: ali\n      kind: aliyun\n      access_key_id: x\n      secret_env: A\n",
    )
    .load();
    assert_error(
        &loaded,
        "gongkai.yaml:8:13: error: this gateway sends only approved templates: add `template:` with its id and variables",
        "gongkai.yaml:8:13: 错误: 此网关只能发送报备通过的模板：请添加 `template:`，写明模板编号和变量",
    );
}

#[test]
fn template_variable_from_an_unknown_field() {
    let loaded = with_sms(&GATEWAYS.replace("field: url", "field: link")).load();
    let e = assert_error(
        &loaded,
        "gongkai.yaml:26:35: error: `link` is not an item field",
        "gongkai.yaml:26:35: 错误: `link` 不是条目字段",
    );
    assert!(hint(&e, Lang::En).contains("summary"));
}

#[test]
fn approved_template_text_with_an_unknown_variable() {
    let loaded = with_sms(&GATEWAYS.replace("详见{where}", "详见{place}")).load();
    assert_error(
        &loaded,
        "gongkai.yaml:23:15: error: unknown placeholder `{place}` in the template",
        "gongkai.yaml:23:15: 错误: 模板中有未知的占位符 `{place}`",
    );
}

#[test]
fn duplicate_gateway_id() {
    let loaded = with_sms(
        &GATEWAYS
            .replace("- id: tc", "- id: ali")
            .replace("[tc, ali, local]", "[ali, local]"),
    )
    .load();
    assert_error(
        &loaded,
        "gongkai.yaml:27:11: error: gateway `ali` is defined twice",
        "gongkai.yaml:27:11: 错误: 短信网关 `ali` 重复定义",
    );
}

#[test]
fn route_names_an_unknown_gateway() {
    let loaded = with_sms(&GATEWAYS.replace("[tc, ali, local]", "[tc, ail, local]")).load();
    let e = assert_error(
        &loaded,
        "gongkai.yaml:33:15: error: no gateway `ail` in `gateways:`",
        "gongkai.yaml:33:15: 错误: `gateways:` 中没有网关 `ail`",
    );
    assert!(hint(&e, Lang::En).contains("ali"));
}

// -- the commands ---------------------------------------------------------------------------

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

#[test]
fn sms_segments_prints_encoding_characters_and_parts() {
    let text = "公".repeat(135);
    let out = gongkai(&["sms", "segments", &text], "en_US.UTF-8");
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "encoding UCS-2, 135 characters, 3 message(s)\n"
    );
    let out = gongkai(&["sms", "segments", "hello {world}"], "zh_CN.UTF-8");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "编码 GSM-7，15 个字符，1 条短信\n"
    );
}

#[test]
fn sms_preview_prints_the_bulletin_and_its_cost() {
    let site = Fixture::new();
    let dir = site.path().to_str().expect("utf-8 path");
    let out = gongkai(&["--site", dir, "sms", "preview", "n1"], "en_US.UTF-8");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "【测试县政务公开】城区道路照明改造工程中标结果公示：回复TD退订\n\
         encoding UCS-2, 32 characters, 1 message(s)\n"
    );
    let out = gongkai(&["--site", dir, "sms", "preview", "nope"], "en_US.UTF-8");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no item `nope`"));
}

#[test]
fn sms_preview_shows_template_variables_and_refuses_a_title_over_its_cap() {
    let site = with_sms(&GATEWAYS.replace("max: 20", "max: 10"));
    let dir = site.path().to_str().expect("utf-8 path");
    let out = gongkai(&["--site", dir, "sms", "preview", "n1"], "en_US.UTF-8");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("gateway `ali`, template SMS_123:"),
        "{stdout}"
    );
    assert!(
        stdout.contains("variable `title` would be 16 characters, the template allows 10"),
        "{stdout}"
    );
    assert!(
        stdout.contains("  1 = 城区道路照明改造工程中标结果公示"),
        "{stdout}"
    );
}

#[test]
fn an_sms_item_title_over_an_approved_variable_cap() {
    let site = with_sms(&GATEWAYS.replace("max: 20", "max: 10"));
    site.edit(
        "playlists/main.yaml",
        "    category: 政府采购",
        "    category: 政府采购\n    channels: [board, sms]",
    );
    let e = assert_error(
        &site.load(),
        "playlists/main.yaml:8:12: error: for gateway `ali`, variable `title` would be 16 characters; its template allows 10",
        "playlists/main.yaml:8:12: 错误: 网关 `ali` 的模板变量 `title` 将有 16 个字，模板最多允许 10 个",
    );
    assert!(hint(&e, Lang::En).contains("max:"));
}

/// Records reviews of `item`'s current text in the site's database, as the daemon does when
/// `gongkai review` asks it.
fn record_reviews(site: &Fixture, item: &str, steps: &[(&str, &str)]) {
    let model = gongkai::config::load(site.path())
        .model
        .expect("valid site");
    let (_, found) = model.item(item).expect("the item");
    let hash = gongkai::review::content_hash(found);
    let store = gongkai::store::Store::open(&gongkai::store::default_path(site.path()))
        .expect("the database");
    for (step, by) in steps {
        store
            .add_review(&gongkai::review::Record {
                item: item.to_owned(),
                step: gongkai::review::Step::parse(step).expect("a step"),
                by: (*by).to_owned(),
                at: chrono::Utc::now(),
                hash: hash.clone(),
            })
            .expect("recorded");
    }
}

fn in_site(site: &Fixture, args: &[&str]) -> Output {
    let dir = site.path().to_str().expect("utf-8 path");
    let mut all = vec!["--site", dir];
    all.extend_from_slice(args);
    gongkai(&all, "en_US.UTF-8")
}

const SUBSCRIBERS_CSV: &str = "号码,姓名,分组,订阅
138 0013 8000,张三,南安镇,政府采购
12345,李四,南安镇,
13900139000,王五,黄龙镇,天气预报
+86 186-1234-5678,赵六,,
";

#[test]
fn sms_import_reports_bad_rows_by_line_and_imports_the_good_ones() {
    let site = Fixture::new();
    site.write("subscribers.csv", SUBSCRIBERS_CSV);
    let out = in_site(&site, &["sms", "import", "subscribers.csv"]);
    // The file is read from the working directory, not the site: give the full path.
    assert_eq!(out.status.code(), Some(3));
    let file = site.path().join("subscribers.csv");
    let out = in_site(&site, &["sms", "import", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "a bad row makes exit 1");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr,
        "line 3: the number is not 11 digits\nline 4: `天气预报` is not a disclosure category\n"
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "imported 2 subscriber(s) (0 duplicate row(s) merged, 0 opted out skipped, 2 bad row(s)); 2 in the ledger\n"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(site.path().join("var/sms-ledger.sqlite"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "the ledger is readable by its owner only");
    }
}

#[test]
fn sms_send_to_the_outbox_then_status_with_masked_numbers() {
    let site = Fixture::new();
    site.edit(
        "playlists/main.yaml",
        "    category: 政府采购\n",
        "    category: 政府采购\n    channels: [board, sms]\n",
    );
    site.write("subscribers.csv", SUBSCRIBERS_CSV);
    let file = site.path().join("subscribers.csv");
    in_site(&site, &["sms", "import", file.to_str().unwrap()]);

    let out = in_site(&site, &["sms", "send", "n1", "--dry-run"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "dry run: 2 recipient(s), 2 of them new; nothing stored or sent\n"
    );
    assert!(!site.path().join("var/sms-outbox.jsonl").exists());

    // Not reviewed: refused, and nothing is recorded or sent.
    let out = in_site(&site, &["sms", "send", "n1", "--urgent"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "not sent: n1 is draft, and SMS needs approved (gongkai review n1)\n"
    );
    assert!(!site.path().join("var/sms-outbox.jsonl").exists());

    // Approved by three people, but 2 recipients is a mass send on a site whose limit is 1.
    site.edit(
        "gongkai.yaml",
        SMS_LINE,
        "sms: { signature: 测试县政务公开, second_approval_above: 1 }",
    );
    record_reviews(
        &site,
        "n1",
        &[
            ("reviewed", "张三"),
            ("legal", "李四"),
            ("approved", "王五"),
        ],
    );
    let out = in_site(&site, &["sms", "send", "n1", "--urgent"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "not sent: n1 would go to 2 subscribers, more than 1; a mass SMS needs a second approval by someone other than its approver (王五): gongkai review n1 --stage mass-sms --by NAME\n"
    );
    assert!(!site.path().join("var/sms-outbox.jsonl").exists());
    record_reviews(&site, "n1", &[("mass-sms", "赵六")]);

    // Urgent, so that the test does not depend on the hour it runs at.
    let out = in_site(&site, &["sms", "send", "n1", "--urgent"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "2 recipient(s), 2 new; sent 2, failed 0, unknown 0, put off 0, cancelled 0\n"
    );
    let outbox = std::fs::read_to_string(site.path().join("var/sms-outbox.jsonl")).unwrap();
    let numbers: Vec<String> = outbox
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["number"].to_string())
        .collect();
    assert_eq!(numbers, ["\"13800138000\"", "\"18612345678\""]);
    let again = in_site(&site, &["sms", "send", "n1", "--urgent"]);
    assert!(
        String::from_utf8_lossy(&again.stdout).starts_with("2 recipient(s), 0 new; sent 0"),
        "sending again sends nothing twice"
    );

    let out = in_site(&site, &["sms", "status", "n1"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "bulletin n1:\n2 deliveries: sent 2, failed 0, unknown 0, queued 0, sending 0; waiting for the digest 0; cancelled 0\n"
    );
    let out = in_site(&site, &["sms", "status", "nope"]);
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn sms_status_masks_numbers_unless_asked() {
    let site = Fixture::new();
    let ledger =
        gongkai::sms::ledger::Ledger::open(&site.path().join("var/sms-ledger.sqlite"), 0).unwrap();
    let sub = gongkai::sms::subscribers::Subscriber {
        number: "13800138000".into(),
        name: String::new(),
        groups: Default::default(),
        topics: Default::default(),
    };
    ledger.import_subscribers([&sub], 0).unwrap();
    let m = ledger.add_message("t", "b", &["n1"], 0).unwrap();
    ledger
        .enqueue_item("n1", |_| true, Some(m), false, 0, 0)
        .unwrap();
    let row = ledger.due(1, false, 1).unwrap()[0].id;
    ledger.mark_sending(&[row], "mas", "2026-12-01", 1).unwrap();
    ledger
        .finish(
            &[(
                row,
                gongkai::sms::ledger::Finish::Failed {
                    reason: "InvalidMobile".into(),
                },
            )],
            2,
        )
        .unwrap();
    drop(ledger);
    let out = in_site(&site, &["sms", "status", "n1"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("  failed  138****8000  mas  InvalidMobile"),
        "{stdout}"
    );
    assert!(!stdout.contains("13800138000"));
    let out = in_site(&site, &["sms", "status", "n1", "--show-numbers"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("13800138000"));
}
