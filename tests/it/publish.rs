//! `gongkai publish` on a copy of the example county: the file gains exactly one block, the
//! item reads back as given, and every refusal leaves the file byte for byte as it was.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use chrono::TimeZone as _;
use gongkai::config::raw::Category;

/// A copy of the repository's example site in a temporary directory (fonts linked, not
/// copied).
struct Site {
    dir: tempfile::TempDir,
}

impl Site {
    fn example() -> Site {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::copy(root.join("gongkai.yaml"), dir.path().join("gongkai.yaml")).expect("copy");
        for folder in ["hw-profiles", "playlists"] {
            std::fs::create_dir(dir.path().join(folder)).expect("mkdir");
            for entry in std::fs::read_dir(root.join(folder)).expect("read example") {
                let path = entry.expect("entry").path();
                let name = path.file_name().expect("file name");
                std::fs::copy(&path, dir.path().join(folder).join(name)).expect("copy");
            }
        }
        std::os::unix::fs::symlink(root.join("fonts"), dir.path().join("fonts")).expect("link");
        Site { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.path().join(name)).expect("read")
    }

    fn write(&self, name: &str, text: &str) {
        std::fs::write(self.path().join(name), text).expect("write")
    }

    fn run(&self, args: &[&str]) -> Output {
        self.run_with(args, "C", None)
    }

    fn run_with(&self, args: &[&str], lang: &str, stdin: Option<&str>) -> Output {
        let mut child = Command::new(env!("CARGO_BIN_EXE_gongkai"))
            .arg("--site")
            .arg(self.path())
            .args(args)
            .env_remove("LANGUAGE")
            .env_remove("LC_ALL")
            .env_remove("LC_MESSAGES")
            .env("LANG", lang)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run gongkai");
        let mut input = child.stdin.take().expect("stdin");
        input
            .write_all(stdin.unwrap_or("").as_bytes())
            .expect("write stdin");
        drop(input);
        child.wait_with_output().expect("wait")
    }

    fn publish(&self, playlist: &str, extra: &[&str]) -> Output {
        let mut args = vec!["publish", "--playlist", playlist];
        args.extend_from_slice(extra);
        self.run(&args)
    }

    fn item(&self, id: &str) -> gongkai::config::model::Item {
        let loaded = gongkai::config::load(self.path());
        let model = loaded
            .model
            .unwrap_or_else(|| panic!("{}", loaded.report.render(gongkai::i18n::Lang::En)));
        model.item(id).expect("item loaded").1.clone()
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn show(output: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status.code(),
        text(&output.stdout),
        text(&output.stderr)
    )
}

/// The text inserted into `before` to make `after`, when `after` is `before` with one
/// contiguous insertion.
fn inserted(before: &str, after: &str) -> String {
    let (b, a) = (before.as_bytes(), after.as_bytes());
    let prefix = b.iter().zip(a).take_while(|(x, y)| x == y).count();
    let suffix = b[prefix..]
        .iter()
        .rev()
        .zip(a[prefix..].iter().rev())
        .take_while(|(x, y)| x == y)
        .count();
    assert_eq!(
        a.len() - prefix - suffix,
        a.len() - b.len(),
        "more than one insertion:\n{after}"
    );
    text(&a[prefix..a.len() - suffix])
}

fn shanghai(y: i32, m: u32, d: u32, h: u32, min: u32) -> chrono::DateTime<chrono_tz::Tz> {
    chrono_tz::Asia::Shanghai
        .with_ymd_and_hms(y, m, d, h, min, 0)
        .single()
        .expect("valid local time")
}

#[test]
fn publish_inserts_one_block_into_each_style_of_example_playlist() {
    let site = Site::example();
    // Blank-line separated items; items without blank lines; items with heading comments.
    for (playlist, file, id) in [
        ("daytime", "playlists/daytime.yaml", "xk-2026-49"),
        ("window-01", "playlists/window-01.yaml", "w01-xk-2026-1"),
        (
            "executive-meeting",
            "playlists/executive-meeting.yaml",
            "xk-2026-50",
        ),
    ] {
        let before = site.read(file);
        let output = site.publish(
            playlist,
            &[
                "--title",
                "行政许可决定公示（2026年第49期）",
                "--body",
                "县行政审批局共作出行政许可决定12件。",
                "--category",
                "行政许可",
                "--department",
                "县行政审批局",
                "--from",
                "2026-12-01",
                "--until",
                "2026-12-14T18:00",
            ],
        );
        assert_eq!(output.status.code(), Some(0), "{}", show(&output));
        let stdout = text(&output.stdout);
        assert!(
            stdout.contains(&format!("added item {id} to {file}")),
            "{stdout}"
        );
        assert!(stdout.contains("New items are drafts"), "{stdout}");

        let after = site.read(file);
        let block = inserted(&before, &after);
        assert!(
            block.contains(&format!("  - id: \"{id}\"\n")),
            "{playlist}: {block}"
        );
        let blank_before = block.starts_with('\n');
        assert_eq!(
            blank_before,
            playlist != "window-01",
            "{playlist}: {block:?}"
        );
        assert_eq!(
            block.matches("\n  - ").count() + block.starts_with("  - ") as usize,
            1
        );

        let item = site.item(id);
        assert_eq!(item.title, "行政许可决定公示（2026年第49期）");
        assert_eq!(item.body, "县行政审批局共作出行政许可决定12件。");
        assert_eq!(item.category, Category::Licensing);
        assert_eq!(item.department.as_deref(), Some("县行政审批局"));
        assert_eq!(item.valid.from, Some(shanghai(2026, 12, 1, 0, 0)));
        assert_eq!(item.valid.until, Some(shanghai(2026, 12, 14, 18, 0)));
    }
    let validate = site.run(&["validate"]);
    assert_eq!(validate.status.code(), Some(0), "{}", show(&validate));
    // Who added which item is in the audit.
    let store = gongkai::store::Store::open_read_only(&gongkai::store::default_path(site.path()))
        .expect("the database");
    let added: Vec<String> = store
        .audit(
            chrono::Utc::now() - chrono::Duration::hours(1),
            chrono::Utc::now(),
            None,
        )
        .expect("audit")
        .into_iter()
        .filter(|r| r.kind.code() == "item-added")
        .filter_map(|r| r.item)
        .collect();
    assert_eq!(added, ["xk-2026-49", "w01-xk-2026-1", "xk-2026-50"]);
}

#[test]
fn hostile_text_round_trips_exactly() {
    let site = Site::example();
    let title = "- \"引号\" 'single' a: b #1 {{title}} [x] *a &b !c |d >e %f @g `h` \\ ，。：；？！（）【】";
    let body =
        "- 开头是短横\n# 不是注释\nkey: value\n\n  缩进的行 \n{{summary}} ---\n... 全角：“”‘’";
    let output = site.publish(
        "daytime",
        &[
            "--title",
            title,
            "--body",
            body,
            "--category",
            "其他",
            "--department",
            "#县政府办: 「测试」",
            "--until",
            "2099-12-31",
            "--id",
            "qt-hostile",
        ],
    );
    assert_eq!(output.status.code(), Some(0), "{}", show(&output));
    let item = site.item("qt-hostile");
    assert_eq!(item.title, title);
    assert_eq!(item.body, body);
    assert_eq!(item.department.as_deref(), Some("#县政府办: 「测试」"));

    // A multi-line body that a literal block holds exactly is written as one.
    let output = site.publish(
        "daytime",
        &[
            "--title",
            "两段",
            "--body",
            "第一段：a: b\n\n- 第二段 # 不是注释",
            "--category",
            "other",
            "--until",
            "2099-12-31",
            "--id",
            "qt-literal",
        ],
    );
    assert_eq!(output.status.code(), Some(0), "{}", show(&output));
    assert!(
        site.read("playlists/daytime.yaml")
            .contains("    body: |-\n      第一段：a: b\n\n      - 第二段 # 不是注释\n")
    );
    assert_eq!(
        site.item("qt-literal").body,
        "第一段：a: b\n\n- 第二段 # 不是注释"
    );
    assert_eq!(site.item("qt-literal").category, Category::Other);
}

#[test]
fn invisible_characters_are_refused_and_the_file_is_untouched() {
    let site = Site::example();
    let before = site.read("playlists/daytime.yaml");
    for (title, body, code) in [
        ("abc\u{202E}def", "正文", "U+202E"),
        ("标题", "第一行\n第二\u{7}行", "U+0007"),
        ("标题", "制表\t符", "U+0009"),
        ("标题\n第二行", "正文", "U+000A"),
    ] {
        let output = site.publish(
            "daytime",
            &[
                "--title",
                title,
                "--body",
                body,
                "--category",
                "其他",
                "--until",
                "2099-12-31",
            ],
        );
        assert_eq!(output.status.code(), Some(2), "{}", show(&output));
        let stderr = text(&output.stderr);
        assert!(stderr.contains(code), "{stderr}");
        assert!(stderr.contains("invisible character"), "{stderr}");
    }
    let output = site.publish(
        "daytime",
        &[
            "--title",
            "标题",
            "--body",
            "第一行\n第二\u{7}行",
            "--category",
            "其他",
            "--until",
            "2099-12-31",
        ],
    );
    assert!(
        text(&output.stderr).contains("line 2, character 3"),
        "{}",
        show(&output)
    );
    assert_eq!(site.read("playlists/daytime.yaml"), before);
}

#[test]
fn bad_dates_are_refused_and_the_file_is_untouched() {
    let site = Site::example();
    let before = site.read("playlists/daytime.yaml");
    let cases: [(&[&str], &str); 4] = [
        (
            &["--from", "2026-12-10", "--until", "2026-12-01"],
            "is not after --from",
        ),
        (
            &["--from", "2026-12-10T09:00", "--until", "2026-12-10T09:00"],
            "is not after --from",
        ),
        (
            &["--until", "12/14/2026"],
            "`12/14/2026` is not a date or time",
        ),
        (
            &["--from", "明天", "--until", "2026-12-14"],
            "--from `明天` is not a date",
        ),
    ];
    for (dates, message) in cases {
        let mut args = vec!["--title", "标题", "--category", "其他"];
        args.extend_from_slice(dates);
        let output = site.publish("daytime", &args);
        assert_eq!(output.status.code(), Some(2), "{}", show(&output));
        assert!(text(&output.stderr).contains(message), "{}", show(&output));
    }
    // A date alone as --until is the whole day, so from and until on one day is fine.
    let output = site.publish(
        "daytime",
        &[
            "--title",
            "当天",
            "--category",
            "其他",
            "--from",
            "2026-12-10",
            "--until",
            "2026-12-10",
            "--dry-run",
        ],
    );
    assert_eq!(output.status.code(), Some(0), "{}", show(&output));
    assert_eq!(site.read("playlists/daytime.yaml"), before);
}

#[test]
fn unknown_playlist_category_and_duplicate_id_are_refused() {
    let site = Site::example();
    let before = site.read("playlists/daytime.yaml");
    let base = ["--title", "标题", "--until", "2099-12-31"];

    let mut args = base.to_vec();
    args.extend(["--category", "其他"]);
    let output = site.publish("playlists/daytime.yaml", &args);
    assert_eq!(output.status.code(), Some(2), "{}", show(&output));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("no playlist has the id `playlists/daytime.yaml`"),
        "{stderr}"
    );
    assert!(
        stderr.contains("daytime, "),
        "the hint lists the ids: {stderr}"
    );

    let mut args = base.to_vec();
    args.extend(["--category", "公告"]);
    let output = site.publish("daytime", &args);
    assert_eq!(output.status.code(), Some(2), "{}", show(&output));
    let stderr = text(&output.stderr);
    assert!(stderr.contains("unknown category `公告`"), "{stderr}");
    assert!(
        stderr.contains("政府采购"),
        "the hint lists the categories: {stderr}"
    );

    let mut args = base.to_vec();
    args.extend(["--category", "其他", "--id", "cg-2026-118"]);
    let output = site.publish("daytime", &args);
    assert_eq!(output.status.code(), Some(2), "{}", show(&output));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("`cg-2026-118` is already used at playlists/prime-time.yaml:18"),
        "{stderr}"
    );

    assert_eq!(site.read("playlists/daytime.yaml"), before);
}

#[test]
fn problems_caused_by_the_new_item_are_reported_and_nothing_is_written() {
    let site = Site::example();
    let before = site.read("playlists/daytime.yaml");
    let output = site.publish(
        "daytime",
        &[
            "--title",
            "标题",
            "--category",
            "其他",
            "--until",
            "2099-12-31",
            "--color",
            "purple",
        ],
    );
    assert_eq!(output.status.code(), Some(1), "{}", show(&output));
    let stderr = text(&output.stderr);
    // The diagnostic quotes the candidate text, at the line the item would have.
    let lines = before.lines().count();
    assert!(
        stderr.contains(&format!("playlists/daytime.yaml:{}:", lines + 6)),
        "{stderr}"
    );
    assert!(stderr.contains("color: \"purple\""), "{stderr}");
    assert!(stderr.contains("nothing was written"), "{stderr}");
    // Existing warnings of the site are not repeated as if the item caused them.
    assert_eq!(stderr.matches("warning").count(), 0, "{stderr}");
    // Braces are colour markup in titles and bodies; a literal brace is written `{{`.
    let output = site.publish(
        "daytime",
        &[
            "--title",
            "{title}",
            "--category",
            "其他",
            "--until",
            "2099-12-31",
        ],
    );
    assert_eq!(output.status.code(), Some(1), "{}", show(&output));
    assert!(text(&output.stderr).contains("{{"), "{}", show(&output));
    assert_eq!(site.read("playlists/daytime.yaml"), before);
}

#[test]
fn a_site_that_already_has_errors_is_refused() {
    let site = Site::example();
    let broken = site
        .read("playlists/kiosk.yaml")
        .replace("dwell: 15s", "dwell: 15 seconds");
    site.write("playlists/kiosk.yaml", &broken);
    let before = site.read("playlists/daytime.yaml");
    let output = site.publish(
        "daytime",
        &[
            "--title",
            "标题",
            "--category",
            "其他",
            "--until",
            "2099-12-31",
        ],
    );
    assert_eq!(output.status.code(), Some(1), "{}", show(&output));
    let stderr = text(&output.stderr);
    assert!(stderr.contains("playlists/kiosk.yaml:"), "{stderr}");
    assert!(stderr.contains("the site already has errors"), "{stderr}");
    assert_eq!(site.read("playlists/daytime.yaml"), before);
}

#[test]
fn dry_run_prints_the_block_and_writes_nothing() {
    let site = Site::example();
    let before = site.read("playlists/daytime.yaml");
    let output = site.publish(
        "daytime",
        &[
            "--title",
            "标题",
            "--category",
            "政府采购",
            "--from",
            "2026-12-01",
            "--until",
            "2026-12-31",
            "--color",
            "yellow",
            "--dry-run",
        ],
    );
    assert_eq!(output.status.code(), Some(0), "{}", show(&output));
    let stdout = text(&output.stdout);
    assert!(
        stdout.starts_with(
            "  - id: \"cg-2026-132\"\n    category: \"政府采购\"\n    title: \"标题\"\n    valid: { from: \"2026-12-01\", until: \"2026-12-31\" }\n    color: \"yellow\"\n"
        ),
        "{stdout}"
    );
    assert!(stdout.contains("nothing was written"), "{stdout}");
    assert_eq!(site.read("playlists/daytime.yaml"), before);
    let names: Vec<_> = std::fs::read_dir(site.path().join("playlists"))
        .expect("list")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(names.len(), 12, "{names:?}");
}

#[test]
fn body_is_read_from_a_file_or_standard_input() {
    let site = Site::example();
    // A Windows editor's file: byte order mark, CRLF, a trailing newline.
    site.write(
        "body.txt",
        "\u{FEFF}第一段\r\n\r\n第二段：详见县政府网站。\r\n",
    );
    let body_file = site.path().join("body.txt");
    let output = site.publish(
        "daytime",
        &[
            "--title",
            "文件正文",
            "--body-file",
            body_file.to_str().expect("utf-8"),
            "--category",
            "其他",
            "--until",
            "2099-12-31",
            "--id",
            "qt-file",
        ],
    );
    assert_eq!(output.status.code(), Some(0), "{}", show(&output));
    assert_eq!(
        site.item("qt-file").body,
        "第一段\n\n第二段：详见县政府网站。"
    );

    let output = site.run_with(
        &[
            "publish",
            "--playlist",
            "daytime",
            "--title",
            "标准输入",
            "--body-file",
            "-",
            "--category",
            "其他",
            "--until",
            "2099-12-31",
            "--id",
            "qt-stdin",
        ],
        "C",
        Some("来自标准输入的正文\n"),
    );
    assert_eq!(output.status.code(), Some(0), "{}", show(&output));
    assert_eq!(site.item("qt-stdin").body, "来自标准输入的正文");

    std::fs::write(site.path().join("gbk.txt"), [0xD5, 0xFD, 0xCE, 0xC4]).expect("write");
    let gbk = site.path().join("gbk.txt");
    let output = site.publish(
        "daytime",
        &[
            "--title",
            "标题",
            "--body-file",
            gbk.to_str().expect("utf-8"),
            "--category",
            "其他",
            "--until",
            "2099-12-31",
        ],
    );
    assert_eq!(output.status.code(), Some(2), "{}", show(&output));
    assert!(
        text(&output.stderr).contains("is not UTF-8 text"),
        "{}",
        show(&output)
    );
}

#[test]
fn generated_ids_continue_the_site_numbering_and_never_repeat() {
    let site = Site::example();
    let mut ids = Vec::new();
    for _ in 0..2 {
        let output = site.publish(
            "prime-time",
            &[
                "--title",
                "招标公告",
                "--category",
                "建设工程招投标",
                "--from",
                "2026-12-20",
                "--until",
                "2027-01-20",
            ],
        );
        assert_eq!(output.status.code(), Some(0), "{}", show(&output));
        ids.push(text(&output.stdout));
    }
    // zb-2026-044 exists in daytime.yaml: the numbering is site-wide, zero-padded alike.
    assert!(ids[0].contains("added item zb-2026-045 "), "{}", ids[0]);
    assert!(ids[1].contains("added item zb-2026-046 "), "{}", ids[1]);
    // A new year starts again at 1, padded like the category's other numbers (zj-2026-07).
    let output = site.publish(
        "daytime",
        &[
            "--title",
            "新年",
            "--category",
            "专项资金管理",
            "--from",
            "2027-01-02",
            "--until",
            "2027-01-20",
            "--dry-run",
        ],
    );
    assert!(
        text(&output.stdout).contains("id: \"zj-2027-01\""),
        "{}",
        show(&output)
    );
}

#[test]
fn permissions_crlf_and_a_missing_final_newline_are_kept() {
    use std::os::unix::fs::PermissionsExt as _;
    let site = Site::example();
    let file = "playlists/window-02.yaml";
    let crlf = site.read(file).replace('\n', "\r\n");
    let crlf = crlf.strip_suffix("\r\n").expect("final newline").to_owned();
    site.write(file, &crlf);
    let path = site.path().join(file);
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).expect("chmod");

    let output = site.publish(
        "window-02",
        &[
            "--title",
            "通知",
            "--body",
            "第一行\n第二行",
            "--category",
            "其他",
            "--from",
            "2026-12-01",
            "--until",
            "2099-12-31",
        ],
    );
    assert_eq!(output.status.code(), Some(0), "{}", show(&output));
    let after = site.read(file);
    let block = inserted(&crlf, &after);
    assert!(
        block.starts_with("\r\n  - id: \"w02-qt-2026-1\"\r\n"),
        "{block:?}"
    );
    assert!(
        block.contains("\r\n    body: |-\r\n      第一行\r\n      第二行\r\n    valid: { from: \""),
        "{block:?}"
    );
    assert!(block.ends_with("until: \"2099-12-31\" }"), "{block:?}");
    assert!(!after.ends_with('\n'), "no final newline was added");
    assert!(
        !after.replace("\r\n", "").contains('\n'),
        "every line ends in CRLF"
    );
    let mode = std::fs::metadata(&path).expect("stat").permissions().mode();
    assert_eq!(mode & 0o777, 0o640);
    assert_eq!(site.item("w02-qt-2026-1").body, "第一行\n第二行");
}

#[test]
fn messages_are_in_the_operators_language() {
    let site = Site::example();
    let output = site.run_with(
        &[
            "publish",
            "--playlist",
            "无此列表",
            "--title",
            "标题",
            "--category",
            "其他",
            "--until",
            "2099-12-31",
        ],
        "zh_CN.UTF-8",
        None,
    );
    assert_eq!(output.status.code(), Some(2), "{}", show(&output));
    assert!(
        text(&output.stderr).contains("没有编号为“无此列表”的播放列表"),
        "{}",
        show(&output)
    );

    let output = site.run_with(
        &[
            "publish",
            "--playlist",
            "daytime",
            "--title",
            "标题",
            "--category",
            "其他",
            "--until",
            "2099-12-31",
        ],
        "zh_CN.UTF-8",
        None,
    );
    assert_eq!(output.status.code(), Some(0), "{}", show(&output));
    assert!(
        text(&output.stdout).contains(
            "新条目为草稿，经审核后才会上屏和发送短信（gongkai review 条目 --stage …）。"
        ),
        "{}",
        show(&output)
    );
}

#[test]
fn a_new_playlist_with_empty_items_gets_its_first_item() {
    let site = Site::example();
    let file = "playlists/fresh.yaml";
    let before = "# 新列表：先建文件，再用 publish 添加条目。\nid: fresh\nname: 新列表\ntargets: [county]\nitems: []   # 待补充\n";
    site.write(file, before);
    // Another playlist without items is an error the new item does not mend.
    let output = site.publish(
        "daytime",
        &[
            "--title",
            "标题",
            "--category",
            "其他",
            "--until",
            "2099-12-31",
        ],
    );
    assert_eq!(output.status.code(), Some(1), "{}", show(&output));
    assert!(
        text(&output.stderr).contains("the site already has errors"),
        "{}",
        show(&output)
    );

    let output = site.publish(
        "fresh",
        &[
            "--title",
            "第一条",
            "--category",
            "其他",
            "--from",
            "2026-12-01",
            "--until",
            "2099-12-31",
        ],
    );
    assert_eq!(output.status.code(), Some(0), "{}", show(&output));
    assert!(
        text(&output.stderr).is_empty(),
        "known warnings are not repeated: {}",
        show(&output)
    );
    assert_eq!(
        site.read(file),
        before.replace(
            "items: []   # 待补充\n",
            "items:   # 待补充\n  - id: \"qt-2026-1\"\n    category: \"其他\"\n    title: \"第一条\"\n    valid: { from: \"2026-12-01\", until: \"2099-12-31\" }\n"
        )
    );
    let validate = site.run(&["validate"]);
    assert_eq!(validate.status.code(), Some(0), "{}", show(&validate));
}

#[test]
fn a_symlinked_playlist_is_edited_through_the_link_and_no_temporary_file_remains() {
    let site = Site::example();
    let real = site.path().join("window-03.real.yaml.txt");
    std::fs::rename(site.path().join("playlists/window-03.yaml"), &real).expect("move");
    std::os::unix::fs::symlink(&real, site.path().join("playlists/window-03.yaml")).expect("link");
    let before = std::fs::read_to_string(&real).expect("read");
    let output = site.publish(
        "window-03",
        &[
            "--title",
            "通知",
            "--category",
            "其他",
            "--from",
            "2026-12-01",
            "--until",
            "2099-12-31",
        ],
    );
    assert_eq!(output.status.code(), Some(0), "{}", show(&output));
    let link =
        std::fs::symlink_metadata(site.path().join("playlists/window-03.yaml")).expect("stat link");
    assert!(link.file_type().is_symlink(), "the link is still a link");
    let after = std::fs::read_to_string(&real).expect("read");
    assert!(inserted(&before, &after).contains("id: \"w03-qt-2026-1\""));
    for dir in [site.path().to_owned(), site.path().join("playlists")] {
        let strays: Vec<_> = std::fs::read_dir(&dir)
            .expect("list")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .filter(|name| name.contains("publish"))
            .collect();
        assert!(strays.is_empty(), "{strays:?}");
    }
}

#[test]
fn an_item_whose_validity_has_passed_is_added_with_a_warning() {
    let site = Site::example();
    let output = site.publish(
        "daytime",
        &[
            "--title",
            "旧通知",
            "--category",
            "其他",
            "--from",
            "2020-01-01",
            "--until",
            "2020-01-31",
            "--dry-run",
        ],
    );
    assert_eq!(output.status.code(), Some(0), "{}", show(&output));
    assert!(
        text(&output.stderr).contains("warning: --until 2020-01-31 has already passed"),
        "{}",
        show(&output)
    );
}
