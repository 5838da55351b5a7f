//! Touchscreen kiosks: full-resolution page snapshots, the kiosk API served on a loopback port,
//! and the kiosk page driven in Debian's chromium.
//!
//! A snapshot is the SHA-256 of a page's pixels at full resolution
//! (`tests/snapshots/kiosk/NAME.sha256`), with a quarter-size PNG beside it for people to look
//! at. After an intended change of the pictures, run `GONGKAI_UPDATE_SNAPSHOTS=1 cargo test`
//! and look at the PNGs before committing; a failing test writes the full-size page to
//! `target/kiosk-snapshots/`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, TimeZone};
use chrono_tz::Tz;
use gongkai::config::model::{FontRef, Model, PixelFormat};
use gongkai::font::scalable::{CoverageCache, NOTO_SANS_SC_PATH, ScalableFont};
use gongkai::kiosk::render::{Sizes, encode_png, render};
use gongkai::kiosk::web::{KioskSource, router};
use gongkai::raster::frame::Frame;

use crate::process::client;
use sha2::{Digest, Sha256};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The example site at the repository's root.
fn example() -> Model {
    gongkai::config::load(root())
        .model
        .expect("the example site is valid")
}

/// A Tuesday morning while most of the kiosk's items are valid (the forest lease is not yet).
fn tuesday(model: &Model) -> DateTime<Tz> {
    model
        .site
        .timezone
        .with_ymd_and_hms(2026, 12, 22, 10, 0, 0)
        .single()
        .expect("a valid local time")
}

/// A quarter-size copy (each pixel the mean of a 4×4 block), for the PNG beside a hash.
fn quarter(frame: &Frame) -> Frame {
    let (w, h) = (frame.width / 4, frame.height / 4);
    let mut out = Frame::new(w, h, PixelFormat::Rgb888);
    for y in 0..h {
        for x in 0..w {
            let mut sum = [0u32; 3];
            for dy in 0..4 {
                for dx in 0..4 {
                    let p = frame.pixel(x * 4 + dx, y * 4 + dy);
                    sum[0] += u32::from(p.0);
                    sum[1] += u32::from(p.1);
                    sum[2] += u32::from(p.2);
                }
            }
            let at = (y * w + x) as usize * 3;
            for (channel, total) in out.data[at..at + 3].iter_mut().zip(sum) {
                *channel = (total / 16) as u8;
            }
        }
    }
    out
}

fn assert_page_snapshot(name: &str, frame: &Frame) {
    let dir = root().join("tests/snapshots/kiosk");
    let hash = format!(
        "{}x{} {:x}\n",
        frame.width,
        frame.height,
        Sha256::digest(&frame.data)
    );
    let hash_path = dir.join(format!("{name}.sha256"));
    if std::env::var_os("GONGKAI_UPDATE_SNAPSHOTS").is_some() {
        std::fs::create_dir_all(&dir).expect("snapshot dir");
        std::fs::write(&hash_path, &hash).expect("write hash");
        let png = encode_png(&quarter(frame)).expect("PNG");
        std::fs::write(dir.join(format!("{name}.png")), png).expect("write PNG");
        return;
    }
    let golden = std::fs::read_to_string(&hash_path).unwrap_or_else(|_| {
        panic!(
            "no snapshot {}: run GONGKAI_UPDATE_SNAPSHOTS=1 cargo test",
            hash_path.display()
        )
    });
    if golden != hash {
        let out: PathBuf = root().join("target/kiosk-snapshots");
        std::fs::create_dir_all(&out).expect("target dir");
        let actual = out.join(format!("{name}.png"));
        std::fs::write(&actual, encode_png(frame).expect("PNG")).expect("write actual");
        panic!(
            "{name} differs from its snapshot ({golden:?} != {hash:?}); the page is at {}",
            actual.display()
        );
    }
}

#[test]
fn kiosk_pages_at_full_resolution_match_their_snapshots() {
    let model = example();
    let now = tuesday(&model);
    let mut glyphs = CoverageCache::new(ScalableFont::noto_sans_sc());
    let sizes = Sizes::new(1080, Some(40));
    for id in ["kiosk-zp-teachers", "kiosk-cg-2027q1", "kiosk-hall-map"] {
        let (_, item) = model.item(id).expect("example item");
        let pages = render(item, 1080, 1920, sizes, &now, &mut glyphs);
        assert_eq!(pages.len(), 1, "{id}");
        assert_page_snapshot(id, &pages[0]);
    }
    // A notice long enough for three pages: page numbers and a repeated head.
    let (_, item) = model.item("kiosk-zj-dibao").expect("example item");
    let mut long = item.clone();
    long.body = std::iter::repeat_n(item.body.as_str(), 11)
        .collect::<Vec<_>>()
        .join("\n");
    let pages = render(&long, 1080, 1920, sizes, &now, &mut glyphs);
    assert_eq!(pages.len(), 3);
    for (i, page) in pages.iter().enumerate() {
        assert_page_snapshot(&format!("long-page-{}", i + 1), page);
    }
    // Any size: a landscape 1920×1080 screen.
    let (_, item) = model.item("kiosk-gh-hospital").expect("example item");
    let pages = render(
        item,
        1920,
        1080,
        Sizes::new(1920, Some(40)),
        &now,
        &mut glyphs,
    );
    assert_page_snapshot("landscape-gh-hospital", &pages[0]);
}

#[test]
fn the_example_kiosk_is_drawn_with_the_shipped_font_and_every_character_is_in_it() {
    let model = example();
    let kiosk = model.display("hall-kiosk").expect("hall-kiosk");
    let profile = model.profile_of(kiosk);
    assert_eq!(
        profile.font,
        FontRef::File {
            path: NOTO_SANS_SC_PATH.to_owned(),
            size: Some(40)
        }
    );
    let mut chain = gongkai::config::glyphs::load_chain(&profile.font, root()).expect("loads");
    assert_eq!(chain.metrics().baseline, 46);
    let font = ScalableFont::noto_sans_sc();
    for (playlist, item) in model.items() {
        if !playlist.targets.contains(
            &model
                .displays
                .iter()
                .position(|d| d.id == "hall-kiosk")
                .unwrap(),
        ) {
            continue;
        }
        for c in item.title.chars().chain(item.body.chars()) {
            assert!(font.has(c), "{} lacks {c}", item.id);
            assert_eq!(chain.resolve(c), gongkai::font::Resolved::Primary, "{c}");
        }
    }
}

/// The running model and a fixed time, as the daemon would share them.
struct Fixed {
    model: Arc<Model>,
    now: DateTime<Tz>,
}

impl KioskSource for Fixed {
    fn model(&self) -> Arc<Model> {
        self.model.clone()
    }
    fn now(&self) -> DateTime<Tz> {
        self.now
    }
}

/// Serves the kiosk routes on a loopback port; returns the base URL.
async fn serve() -> String {
    let model = example();
    let now = tuesday(&model);
    let source = Arc::new(Fixed {
        model: Arc::new(model),
        now,
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a loopback port");
    let addr = listener.local_addr().expect("address");
    tokio::spawn(async move {
        axum::serve(listener, router(source)).await.expect("serves");
    });
    format!("http://{addr}")
}

async fn get(base: &str, path: &str) -> reqwest::Response {
    client()
        .get(format!("{base}{path}"))
        .send()
        .await
        .expect("the kiosk API answers")
}

async fn json(base: &str, path: &str) -> serde_json::Value {
    let response = get(base, path).await;
    assert!(
        response.status().is_success(),
        "{path}: {}",
        response.status()
    );
    response.json().await.expect("JSON")
}

fn ids(group: &serde_json::Value) -> Vec<&str> {
    group["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| i["id"].as_str().expect("id"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kiosk_api_lists_valid_items_by_key_area_searches_and_opens_one() {
    let base = serve().await;
    let listing = json(&base, "/kiosk/api/items?display=hall-kiosk").await;
    let groups = listing["groups"].as_array().expect("groups");
    let names: Vec<&str> = groups.iter().map(|g| g["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "行政许可",
            "政府采购",
            "建设工程招投标",
            "经营性土地使用权出让",
            "专项资金管理",
            "产权交易",
            "人员录用",
            "城市规划和建设",
            "其他"
        ]
    );
    assert_eq!(ids(&groups[1]), ["kiosk-cg-2027q1"]);
    assert_eq!(groups[1]["key_area"], true);
    // Not valid until 4 January: listed nowhere, played never.
    assert!(ids(&groups[5]).is_empty());
    // Policy documents and "other" share the last button.
    let other = ids(&groups[8]);
    assert!(other.contains(&"kiosk-zc-minsheng") && other.contains(&"kiosk-hall-map"));
    assert_eq!(groups[8]["key_area"], false);
    let playlist = listing["playlist"].as_array().expect("playlist");
    assert_eq!(playlist[0]["id"], "kiosk-hall-map");
    assert_eq!(playlist[0]["dwell_ms"], 15_000);
    assert!(playlist.iter().all(|s| s["id"] != "kiosk-cq-forest"));
    assert_eq!(listing["total"].as_u64(), Some(playlist.len() as u64));
    let teachers = &groups[6]["items"][0];
    assert_eq!(teachers["department"], "县教育体育局");
    assert_eq!(
        teachers["dates"],
        "有效期：2026年12月21日 至 2026年12月25日（剩余 4 天）"
    );

    // Search: the body counts, and the playlist stays whole.
    let found = json(
        &base,
        "/kiosk/api/items?display=hall-kiosk&q=%E4%BD%8E%E4%BF%9D",
    )
    .await;
    assert_eq!(found["total"], 1);
    assert_eq!(found["query"], "低保");
    assert_eq!(ids(&found["groups"][4]), ["kiosk-zj-dibao"]);
    assert_eq!(
        found["playlist"].as_array().map(Vec::len),
        Some(playlist.len())
    );

    let item = json(
        &base,
        "/kiosk/api/items/kiosk-zp-teachers?display=hall-kiosk",
    )
    .await;
    assert_eq!(item["title"], "2026年城区学校公开选调教师拟选调人员公示");
    assert_eq!(item["category"], "人员录用");
    assert!(item["paragraphs"][0].as_str().unwrap().contains("李镕"));

    let expired = get(&base, "/kiosk/api/items/kiosk-cq-forest?display=hall-kiosk").await;
    assert_eq!(expired.status(), reqwest::StatusCode::NOT_FOUND);
    let unknown = get(&base, "/kiosk/api/items?display=nowhere").await;
    assert_eq!(unknown.status(), reqwest::StatusCode::NOT_FOUND);
    let error: serde_json::Value = unknown.json().await.expect("JSON");
    assert_eq!(error["error"], "本站点没有编号为“nowhere”的显示屏");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kiosk_page_and_its_font_are_served_from_the_daemon_alone() {
    let base = serve().await;
    let page = get(&base, "/kiosk/").await;
    assert!(page.status().is_success());
    let html = page.text().await.expect("text");
    assert!(html.contains("<html lang=\"zh-CN\">"));
    // A closed network: nothing from elsewhere.
    assert!(!html.contains("http://") && !html.contains("https://") && !html.contains("//cdn"));
    // Item text is set as text, never parsed as HTML.
    assert!(!html.contains("innerHTML") && !html.contains("insertAdjacentHTML"));
    let font = get(&base, "/kiosk/font.otf").await;
    assert_eq!(font.headers()["content-type"], "font/otf");
    let bytes = font.bytes().await.expect("bytes");
    assert!(ScalableFont::from_vec("served", bytes.to_vec()).is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs chromium and node with tests/browser installed (.ci/run)"]
async fn the_kiosk_page_in_chromium_opens_a_category_and_an_item() {
    let base = serve().await;
    let screenshot = root().join("target").join("kiosk-page.png");
    let _ = std::fs::remove_file(&screenshot);
    let mut command = std::process::Command::new("node");
    command
        .arg(root().join("tests/browser/kiosk_page.mjs"))
        .args([base.as_str(), "hall-kiosk", "人员录用", "kiosk-zp-teachers"])
        .arg(&screenshot);
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .expect("joins")
        .expect("node runs (tests/browser needs `npm ci`, chromium needs Debian's package)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let seen: serde_json::Value = serde_json::from_str(stdout.trim()).expect("one JSON line");
    assert_eq!(seen["title"], "2026年城区学校公开选调教师拟选调人员公示");
    assert!(
        seen["body"].as_str().is_some_and(|b| b.contains("李镕")),
        "{seen}"
    );
    assert_eq!(seen["category_count"], 9);
    assert_eq!(seen["back_to_playlist"], true);
    assert!(std::fs::metadata(&screenshot).is_ok_and(|m| m.len() > 10_000));
    eprintln!("screenshot: {}", screenshot.display());
}
