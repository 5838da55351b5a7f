//! `gongkai audit` from a shell: a database seeded through the library, the real binary asked
//! what the boards showed, as a table and as CSV, in the site's timezone (Asia/Shanghai).

use std::path::Path;
use std::process::{Command, Output};

use chrono::{DateTime, TimeZone as _, Utc};
use gongkai::store::{Bulletin, ShownSlot, SlotKind, Store, StoredInterrupt};

use crate::fixture::Fixture;

fn gongkai(site: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gongkai"))
        .arg("--site")
        .arg(site)
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

/// 1 December 2026, Beijing time (UTC+8), as UTC.
fn beijing(hh: u32, mm: u32, ss: u32) -> DateTime<Utc> {
    chrono_tz::Asia::Shanghai
        .with_ymd_and_hms(2026, 12, 1, hh, mm, ss)
        .single()
        .expect("valid time")
        .with_timezone(&Utc)
}

fn item(
    display: &str,
    id: &str,
    title: &str,
    from: DateTime<Utc>,
    until: DateTime<Utc>,
) -> ShownSlot {
    ShownSlot {
        display: display.to_owned(),
        kind: SlotKind::Item,
        playlist: Some("prime-time".to_owned()),
        item: Some(id.to_owned()),
        title: title.to_owned(),
        from,
        planned_until: until,
    }
}

/// Prime time on the square and the town board, an SMS bulletin, and a storm warning that
/// took the square over and was ended early; the square's last slot is still open.
fn seed(db: &Path) {
    let store = Store::open(db).expect("create the database");
    let slots = [
        item(
            "square",
            "cg-2026-118",
            "城区道路照明改造工程中标结果公示",
            beijing(19, 30, 0),
            beijing(19, 32, 0),
        ),
        item(
            "town",
            "td-2026-007",
            "南康镇土地出让公告",
            beijing(19, 30, 0),
            beijing(19, 40, 0),
        ),
        item(
            "square",
            "ry-2026-021",
            "县人社局 2026 年公开招聘, \"第二批\" 名单",
            beijing(19, 32, 0),
            beijing(19, 33, 30),
        ),
    ];
    for slot in &slots {
        store.slot_started(slot).expect("slot");
    }
    store
        .bulletin_recorded(&Bulletin {
            item: "cg-2026-118".to_owned(),
            title: "中标结果公示".to_owned(),
            text: "【大余县政务公开】中标结果公示……".to_owned(),
            recipients: 1200,
            at: beijing(19, 31, 0),
            by: "李明".to_owned(),
        })
        .expect("bulletin");
    let storm = StoredInterrupt {
        id: "storm".to_owned(),
        targets: vec!["square".to_owned()],
        start: beijing(19, 33, 30),
        end: beijing(20, 30, 0),
        text: "暴雨红色预警".to_owned(),
        created_by: "王芳".to_owned(),
        created_at: beijing(19, 33, 0),
        also_sms: false,
    };
    store.add_interrupt(&storm).expect("interrupt");
    store
        .slot_started(&ShownSlot {
            display: "square".to_owned(),
            kind: SlotKind::Interrupt,
            playlist: None,
            item: Some("storm".to_owned()),
            title: storm.text.clone(),
            from: beijing(19, 33, 30),
            planned_until: beijing(20, 30, 0),
        })
        .expect("interrupt slot");
    assert!(
        store
            .end_interrupt("storm", beijing(20, 0, 0), "王芳")
            .expect("end")
    );
}

fn seeded_site() -> Fixture {
    let site = Fixture::new();
    seed(&site.path().join("var/gongkai.db"));
    site
}

#[test]
fn audit_says_what_the_square_showed_at_19_32() {
    let site = seeded_site();
    let out = gongkai(
        site.path(),
        &[
            "audit",
            "--from",
            "2026-12-01T19:32",
            "--to",
            "2026-12-01T19:33",
            "--display",
            "square",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "\
display  from                 to        kind  playlist    item         title
square   2026-12-01 19:32:00  19:33:30  item  prime-time  ry-2026-021  县人社局 2026 年公开招聘, \"第二批\" 名单
"
    );
}

#[test]
fn audit_lists_every_display_bulletin_and_action_with_planned_ends_marked() {
    let site = seeded_site();
    let out = gongkai(
        site.path(),
        &[
            "audit",
            "--from",
            "2026-12-01T19:00",
            "--to",
            "2026-12-01T21:00",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "\
display  from                 to         kind              playlist    item         title
square   2026-12-01 19:30:00  19:32:00   item              prime-time  cg-2026-118  城区道路照明改造工程中标结果公示
town     2026-12-01 19:30:00  19:40:00*  item              prime-time  td-2026-007  南康镇土地出让公告
-        2026-12-01 19:31:00  -          SMS bulletin      -           cg-2026-118  中标结果公示 (to 1200 subscribers, sent by 李明)
square   2026-12-01 19:32:00  19:33:30   item              prime-time  ry-2026-021  县人社局 2026 年公开招聘, \"第二批\" 名单
-        2026-12-01 19:33:00  -          interrupt added   -           storm        暴雨红色预警 (by 王芳)
square   2026-12-01 19:33:30  20:30:00*  emergency notice  -           storm        暴雨红色预警
-        2026-12-01 20:00:00  -          interrupt ended   -           storm        暴雨红色预警 (by 王芳)

* planned end: no end was recorded (still on air, or the daemon stopped and has not started since)
"
    );
}

#[test]
fn audit_csv_has_a_header_rfc3339_times_in_milliseconds_and_rfc4180_quoting() {
    let site = seeded_site();
    let out = gongkai(
        site.path(),
        &[
            "audit",
            "--from",
            "2026-12-01",
            "--to",
            "2026-12-02",
            "--csv",
            "--lang",
            "zh",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let expected = [
        "display,from,to,kind,playlist,item,title,by,recipients,to_planned",
        "square,2026-12-01T19:30:00.000+08:00,2026-12-01T19:32:00.000+08:00,item,prime-time,cg-2026-118,城区道路照明改造工程中标结果公示,,,false",
        "town,2026-12-01T19:30:00.000+08:00,2026-12-01T19:40:00.000+08:00,item,prime-time,td-2026-007,南康镇土地出让公告,,,true",
        ",2026-12-01T19:31:00.000+08:00,2026-12-01T19:31:00.000+08:00,bulletin,,cg-2026-118,中标结果公示,李明,1200,false",
        "square,2026-12-01T19:32:00.000+08:00,2026-12-01T19:33:30.000+08:00,item,prime-time,ry-2026-021,\"县人社局 2026 年公开招聘, \"\"第二批\"\" 名单\",,,false",
        ",2026-12-01T19:33:00.000+08:00,2026-12-01T19:33:00.000+08:00,interrupt-added,,storm,暴雨红色预警,王芳,,false",
        "square,2026-12-01T19:33:30.000+08:00,2026-12-01T20:30:00.000+08:00,interrupt,,storm,暴雨红色预警,,,true",
        ",2026-12-01T20:00:00.000+08:00,2026-12-01T20:00:00.000+08:00,interrupt-ended,,storm,暴雨红色预警,王芳,,false",
    ];
    let mut want = expected.join("\r\n");
    want.push_str("\r\n");
    // The CSV is for scripts: the same header and kind names whatever the language.
    assert_eq!(text(&out.stdout), want);

    // And the csv crate reads it back field for field.
    let mut reader = csv::Reader::from_reader(out.stdout.as_slice());
    let titles: Vec<String> = reader
        .records()
        .map(|r| r.expect("record")[6].to_owned())
        .collect();
    assert_eq!(titles[3], "县人社局 2026 年公开招聘, \"第二批\" 名单");
}

#[test]
fn audit_table_speaks_chinese() {
    let site = seeded_site();
    let out = gongkai(
        site.path(),
        &[
            "audit",
            "--from",
            "2026-12-01T19:31",
            "--to",
            "2026-12-01T19:32",
            "--lang",
            "zh",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines[0].starts_with("显示屏"), "{stdout}");
    assert!(
        stdout.contains("中标结果公示（发送给 1200 位订阅者，发送人：李明）"),
        "{stdout}"
    );
    assert!(stdout.contains("* 计划结束时间"), "{stdout}");
}

#[test]
fn audit_of_a_quiet_range_says_so() {
    let site = seeded_site();
    let out = gongkai(
        site.path(),
        &["audit", "--from", "2026-12-02", "--to", "2026-12-03"],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "Nothing recorded from 2026-12-02 00:00:00 to 2026-12-03 00:00:00.\n"
    );
    let csv = gongkai(
        site.path(),
        &[
            "audit",
            "--from",
            "2026-12-02",
            "--to",
            "2026-12-03",
            "--csv",
        ],
    );
    assert_eq!(
        text(&csv.stdout),
        "display,from,to,kind,playlist,item,title,by,recipients,to_planned\r\n"
    );
}

#[test]
fn audit_without_a_database_exits_1_and_says_where_it_looked() {
    let site = Fixture::new();
    let out = gongkai(
        site.path(),
        &["audit", "--from", "2026-12-01", "--to", "2026-12-02"],
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    let path = site.path().join("var/gongkai.db");
    assert!(
        stderr.starts_with(&format!(
            "error: no audit database at {}\n  = hint: ",
            path.display()
        )),
        "{stderr}"
    );
    assert!(out.stdout.is_empty());
    assert!(!path.exists(), "audit must not create the database");

    let zh = gongkai(
        site.path(),
        &[
            "audit",
            "--from",
            "2026-12-01",
            "--to",
            "2026-12-02",
            "--lang",
            "zh",
        ],
    );
    assert_eq!(zh.status.code(), Some(1));
    assert!(
        text(&zh.stderr).contains("处没有审计数据库"),
        "{}",
        text(&zh.stderr)
    );
}

#[test]
fn audit_reads_the_database_named_by_db() {
    let site = Fixture::new();
    let elsewhere = tempfile::tempdir().expect("temp dir");
    let db = elsewhere.path().join("archive-2026.db");
    seed(&db);
    let out = gongkai(
        site.path(),
        &[
            "audit",
            "--from",
            "2026-12-01T19:30",
            "--to",
            "2026-12-01T19:31",
            "--display",
            "town",
            "--db",
            db.to_str().expect("utf-8 path"),
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("td-2026-007"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn audit_rejects_bad_times_with_exit_2() {
    let site = seeded_site();
    let bad = gongkai(
        site.path(),
        &["audit", "--from", "1 December", "--to", "2026-12-02"],
    );
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        text(&bad.stderr).starts_with("error: `1 December` is not a time"),
        "{}",
        text(&bad.stderr)
    );
    let backwards = gongkai(
        site.path(),
        &["audit", "--from", "2026-12-02", "--to", "2026-12-01"],
    );
    assert_eq!(backwards.status.code(), Some(2));
    assert_eq!(
        text(&backwards.stderr),
        "error: --to must be later than --from\n"
    );
    let missing = gongkai(site.path(), &["audit", "--from", "2026-12-01"]);
    assert_eq!(missing.status.code(), Some(2), "--to is required");
}

#[test]
fn audit_of_a_database_from_a_newer_gongkai_fails_with_exit_3() {
    let site = seeded_site();
    let db = site.path().join("var/gongkai.db");
    rusqlite_bump(&db);
    let out = gongkai(
        site.path(),
        &["audit", "--from", "2026-12-01", "--to", "2026-12-02"],
    );
    assert_eq!(out.status.code(), Some(3));
    assert!(
        text(&out.stderr).contains("was written by a newer gongkai"),
        "{}",
        text(&out.stderr)
    );
}

/// Marks the file as written by a future schema version.
fn rusqlite_bump(db: &Path) {
    let conn = rusqlite::Connection::open(db).expect("sqlite");
    conn.pragma_update(None, "user_version", gongkai::store::VERSION + 1)
        .expect("bump");
}

#[test]
fn audit_help_is_in_the_catalogue() {
    let out = gongkai(Path::new("."), &["audit", "--help", "--lang", "zh"]);
    assert!(out.status.success());
    let help = text(&out.stdout);
    assert!(help.contains("实际播出的内容"), "{help}");
    assert!(help.contains("--from <TIME>"), "{help}");
    assert!(help.contains("站点目录下的 var/gongkai.db"), "{help}");
}

/// The daemon writes what it shows into the store; `gongkai audit` reads it back, and a clean
/// stop leaves no slot open.
#[test]
fn the_daemon_records_what_each_board_shows() {
    let site = Fixture::new();
    site.edit(
        "gongkai.yaml",
        "sms: {",
        "simulate: true\nreview: { required: draft }\nadmin: { listen: \"127.0.0.1:0\" }\nsms: {",
    );
    // A default playlist (no window) with no validity: on air whenever the test runs.
    site.write(
        "playlists/main.yaml",
        "id: main\ntargets: [county]\nitems:\n  - id: n1\n    title: 中标结果公示\n    category: 政府采购\n",
    );
    let db = site.path().join("var/gongkai.db");
    let mut daemon = Command::new(env!("CARGO_BIN_EXE_gongkai"))
        .arg("run")
        .arg(site.path())
        .env("LANG", "en_US.UTF-8")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start the daemon");
    let (from, to) = (
        Utc::now() - chrono::Duration::hours(1),
        Utc::now() + chrono::Duration::hours(1),
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let shown = loop {
        let rows = Store::open_read_only(&db)
            .and_then(|store| store.audit(from, to, None))
            .unwrap_or_default();
        let displays: std::collections::BTreeSet<String> =
            rows.iter().filter_map(|r| r.display.clone()).collect();
        if displays.len() == 2 || std::time::Instant::now() > deadline {
            break displays;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    let stopped = Command::new("kill")
        .args(["-TERM", &daemon.id().to_string()])
        .status()
        .expect("kill");
    assert!(stopped.success());
    let status = daemon.wait().expect("daemon exits");
    assert!(status.success(), "{status:?}");
    assert_eq!(shown, ["square".to_owned(), "town".to_owned()].into());

    let out = gongkai(
        site.path(),
        &[
            "audit",
            "--from",
            &from.to_rfc3339(),
            "--to",
            &to.to_rfc3339(),
            "--csv",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let csv = text(&out.stdout);
    let rows: Vec<&str> = csv.lines().skip(1).collect();
    assert!(!rows.is_empty(), "{csv}");
    for row in &rows {
        assert!(row.contains(",item,main,n1,中标结果公示,"), "{row}");
        assert!(
            row.ends_with(",false"),
            "a clean stop closes every slot: {row}"
        );
    }
}
