//! `gongkai run` end to end, as a separate process, with real parts: a reference board on a
//! pseudo-terminal, a board on a real MQTT broker (rumqttd in this process), the admin API
//! over HTTP. Edits on disk reach the boards; a broken edit leaves them alone and shows in the
//! status API; an interrupt reaches every target board and the playlist resumes after it.

use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gongkai::config::model::PixelFormat;
use gongkai::emulator::{Board, BoardConfig, lock, serve};
use gongkai::font::FontChain;
use gongkai::link::mqtt::decode_frame;
use gongkai::protocol::transfer::Geometry;
use gongkai::raster::frame::Frame;
use gongkai::schedule::{Interrupt, What};
use tokio::time::Instant;
use tokio_serial::{SerialPort, SerialStream};

use crate::fixture::Fixture;
use crate::mqtt::{PASSWORD, TestBroker, USER, free_port, retained};
use crate::process::{Daemon, client, get_json};

const TOKEN: &str = "admin-token-for-tests";
const PREFIX: &str = "county/daemon";

const PROFILE: &str = "\
width: 128
height: 16
pixel: mono
font: wqy16
protocol: gongkai
serial: { bauds: [115200], buffer: 1024 }
";

fn site(admin: u16, broker: u16, port: &str) -> String {
    format!(
        "\
site: 测试县政务公开
timezone: Asia/Shanghai
review: {{ required: draft }}
admin: {{ listen: 127.0.0.1:{admin}, token_env: GONGKAI_TEST_ADMIN_TOKEN }}
mqtt:
  broker: mqtt://127.0.0.1:{broker}
  topic_prefix: {PREFIX}
  username: {USER}
  password_env: GONGKAI_TEST_MQTT_PASSWORD
displays:
  - id: hall
    profile: strip
    link: {{ serial: {port}, baud: 115200, address: 1 }}
    groups: [county]
  - id: town
    profile: strip
    link: {{ mqtt: boards/town }}
    groups: [county]
"
    )
}

fn playlist(title: &str) -> String {
    format!(
        "\
id: main
targets: [county]
items:
  - id: n1
    title: {title}
    category: 政府采购
"
    )
}

/// `gongkai sms import subscribers.csv` in the site `dir`, as a clerk runs it.
fn import_subscribers(dir: &Path) {
    let import = Command::new(env!("CARGO_BIN_EXE_gongkai"))
        .args(["sms", "import", "subscribers.csv", "--site"])
        .arg(dir)
        .current_dir(dir)
        .output()
        .expect("gongkai sms import runs");
    assert!(import.status.success(), "{import:?}");
}

/// The daemon on the site in `dir`, with the tests' admin token and MQTT password.
fn start_daemon(dir: &Path) -> Daemon {
    Daemon::start(
        dir,
        &[
            ("GONGKAI_TEST_ADMIN_TOKEN", TOKEN),
            ("GONGKAI_TEST_MQTT_PASSWORD", PASSWORD),
        ],
    )
}

/// What the library draws for the first page of `what` on display `index` of the site in `dir`
/// (the page a board shows first, for up to a dwell).
fn expected(dir: &Path, index: usize, what: What, interrupts: &[Interrupt]) -> Frame {
    let model = gongkai::config::load(dir).model.expect("the site is valid");
    let mut fonts = FontChain::builtin(gongkai::config::model::BuiltinFont::Wqy16);
    let now = chrono::Utc::now().with_timezone(&model.site.timezone);
    match gongkai::daemon::picture::render(&model, index, &what, interrupts, now, &mut fonts)
        .expect("renders")
    {
        gongkai::daemon::picture::Picture::Pages { frames, .. } => frames[0].clone(),
        other => panic!("a still picture, not {other:?}"),
    }
}

fn item() -> What {
    What::Item {
        playlist: 0,
        item: 0,
        offset: Duration::ZERO,
        out_of_turn: false,
    }
}

fn reference_board() -> Arc<Mutex<Board>> {
    Arc::new(Mutex::new(Board::new(
        BoardConfig {
            address: 1,
            geometry: Geometry {
                width: 128,
                height: 16,
                format: PixelFormat::Mono,
            },
            buffer: 1024,
            store: 65_536,
            brightness_max: 15,
            firmware: "daemon test board".into(),
        },
        0,
    )))
}

/// Waits until the serial board and the MQTT board both show `want`; returns how long it took.
async fn both_show(
    board: &Arc<Mutex<Board>>,
    epoch: Instant,
    broker: u16,
    want: &Frame,
    limit: Duration,
    daemon: &Daemon,
    what: &str,
) -> Duration {
    let started = Instant::now();
    let topic = gongkai::link::mqtt::DisplayTopics::new(PREFIX, "boards/town").frame;
    let mut serial_at = None;
    let mut mqtt_at = None;
    while serial_at.is_none() || mqtt_at.is_none() {
        if serial_at.is_none() {
            let mut b = lock(board);
            b.tick(epoch.elapsed().as_millis() as u64);
            if b.picture() == *want {
                serial_at = Some(started.elapsed());
            }
        }
        if mqtt_at.is_none()
            && let Some(payload) = retained(broker, &topic, Duration::from_millis(200)).await
            && decode_frame(&payload).is_ok_and(|(_, frame)| frame == *want)
        {
            mqtt_at = Some(started.elapsed());
        }
        assert!(
            started.elapsed() < limit,
            "{what}: serial board {serial_at:?}, MQTT board {mqtt_at:?} after {limit:?}\n{}",
            daemon.log()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    serial_at.max(mqtt_at).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edits_reach_the_boards_a_broken_edit_does_not_and_an_interrupt_comes_and_goes() {
    let broker = TestBroker::start().await;
    let (master, slave) = SerialStream::pair().expect("a pseudo-terminal pair");
    let port = slave.name().expect("the slave's path");
    // The daemon opens the slave by its path; this process keeps it open too, so that the
    // pseudo-terminal lives while the daemon reopens it.
    let board = reference_board();
    let epoch = Instant::now();
    tokio::spawn(serve(master, board.clone(), 115_200, epoch, |_| {}));

    let admin = free_port();
    let fixture = Fixture::empty();
    fixture
        .write("gongkai.yaml", site(admin, broker.port, &port))
        .write("hw-profiles/strip.yaml", PROFILE)
        .write("playlists/main.yaml", playlist("一号公告"));
    let dir = fixture.path();
    let base = format!("http://127.0.0.1:{admin}");
    let daemon = start_daemon(dir);

    // 1. The first item reaches both boards.
    let first = expected(dir, 0, item(), &[]);
    both_show(
        &board,
        epoch,
        broker.port,
        &first,
        Duration::from_secs(20),
        &daemon,
        "start",
    )
    .await;

    // 2. An edit on disk reaches both boards.
    fixture.write("playlists/main.yaml", playlist("二号公告"));
    let second = expected(dir, 0, item(), &[]);
    assert_ne!(first, second);
    let took = both_show(
        &board,
        epoch,
        broker.port,
        &second,
        Duration::from_secs(10),
        &daemon,
        "edit",
    )
    .await;
    eprintln!("reload to both boards: {took:?}");

    // What the interrupt will look like (drawn now, while the site on disk is valid).
    let interrupt = Interrupt {
        id: "any".into(),
        displays: vec![],
        start: chrono::Utc::now().with_timezone(&chrono_tz::Asia::Shanghai),
        end: chrono::Utc::now().with_timezone(&chrono_tz::Asia::Shanghai),
        text: "暴雨预警停课".into(),
    };
    let urgent = expected(dir, 0, What::Interrupt(0), &[interrupt]);

    // 3. A broken edit: refused, reported with its position, the boards keep the last good.
    fixture.write(
        "playlists/main.yaml",
        playlist("三号公告").replace(
            "items:",
            "when: [{ cron: \"0 25 * * *\", for: 1h }]\nitems:",
        ),
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    let rejected = loop {
        let status = get_json(&base, "/api/status").await;
        if let Some(r) = status["reload"]["rejected"].as_object() {
            break r.clone();
        }
        assert!(
            Instant::now() < deadline,
            "no rejection reported:\n{}",
            daemon.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let diagnostics = rejected["diagnostics"].as_str().expect("diagnostics");
    assert!(
        diagnostics.contains("playlists/main.yaml:3:19: error") && diagnostics.contains("`25`"),
        "{diagnostics}"
    );
    assert!(daemon.log().contains("the change was refused"));
    tokio::time::sleep(Duration::from_millis(500)).await;
    both_show(
        &board,
        epoch,
        broker.port,
        &second,
        Duration::from_secs(2),
        &daemon,
        "after the broken edit",
    )
    .await;
    let metrics = client()
        .get(format!("{base}/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains("gongkai_reload_rejections_total 1"),
        "{metrics}"
    );

    // 4. Control needs the token.
    let request =
        serde_json::json!({ "text": "暴雨预警停课", "displays": ["county"], "duration": "10m" });
    let refused = client()
        .post(format!("{base}/api/interrupt"))
        .json(&request)
        .send()
        .await
        .expect("answers");
    assert_eq!(refused.status(), reqwest::StatusCode::UNAUTHORIZED);
    let created = client()
        .post(format!("{base}/api/interrupt"))
        .bearer_auth(TOKEN)
        .json(&request)
        .send()
        .await
        .expect("answers");
    assert_eq!(created.status(), reqwest::StatusCode::CREATED);
    let notice: serde_json::Value = created.json().await.expect("the notice");
    let id = notice["id"].as_str().expect("an id").to_owned();
    both_show(
        &board,
        epoch,
        broker.port,
        &urgent,
        Duration::from_secs(5),
        &daemon,
        "interrupt",
    )
    .await;
    // It is in the daemon's database, so a restart shows it again.
    let store =
        gongkai::store::Store::open_read_only(&dir.join("var/gongkai.db")).expect("the database");
    let active = store.interrupts_active(chrono::Utc::now()).expect("read");
    assert_eq!(
        active.iter().map(|i| i.id.as_str()).collect::<Vec<_>>(),
        [id.as_str()]
    );
    assert_eq!(active[0].targets, ["county"]);

    // 5. Ending it: the playlist resumes with the last good content.
    let ended = client()
        .delete(format!("{base}/api/interrupt/{id}"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("answers");
    assert_eq!(ended.status(), reqwest::StatusCode::NO_CONTENT);
    both_show(
        &board,
        epoch,
        broker.port,
        &second,
        Duration::from_secs(5),
        &daemon,
        "resume",
    )
    .await;

    // 6. The status API says what each board shows.
    let displays = get_json(&base, "/api/displays").await;
    assert_eq!(displays[0]["id"], "hall");
    assert_eq!(displays[0]["current"]["item"], "n1");
    assert_eq!(displays[0]["link"]["kind"], "serial");
    assert_eq!(displays[0]["link"]["online"], true);
    assert_eq!(displays[1]["link"]["kind"], "mqtt");

    // 7. A display removed from the site is withdrawn from its board (the retained frame is
    // cleared); the other display is not touched. The broken playlist is mended in the same
    // edit, back to what the boards show.
    let hall_generation = displays[0]["generation"].as_u64();
    fixture.write("playlists/main.yaml", playlist("二号公告"));
    fixture.write(
        "gongkai.yaml",
        site(admin, broker.port, &port).replace(
            "  - id: town\n    profile: strip\n    link: { mqtt: boards/town }\n    groups: [county]\n",
            "",
        ),
    );
    let topic = gongkai::link::mqtt::DisplayTopics::new(PREFIX, "boards/town").frame;
    let deadline = Instant::now() + Duration::from_secs(10);
    while retained(broker.port, &topic, Duration::from_millis(300))
        .await
        .is_some()
    {
        assert!(
            Instant::now() < deadline,
            "the removed display's frame is still retained:\n{}",
            daemon.log()
        );
    }
    let displays = get_json(&base, "/api/displays").await;
    assert_eq!(displays.as_array().map(Vec::len), Some(1));
    assert_eq!(displays[0]["generation"].as_u64(), hall_generation);

    // 8. No secret in anything the daemon says: its log, its API, its metrics.
    let mut said = daemon.log();
    for path in [
        "/api/status",
        "/api/displays",
        "/api/interrupts",
        "/metrics",
        "/",
    ] {
        said.push_str(
            &client()
                .get(format!("{base}{path}"))
                .send()
                .await
                .expect("answers")
                .text()
                .await
                .expect("text"),
        );
    }
    assert!(!said.contains(TOKEN) && !said.contains(PASSWORD));

    // 9. SIGTERM stops it cleanly within 5 s.
    let status = daemon.terminate(Duration::from_secs(5)).await;
    assert!(status.success(), "{status:?}");
    assert!(!daemon_log_contains_secret(dir));
    drop(slave);
}

fn daemon_log_contains_secret(dir: &Path) -> bool {
    let log = std::fs::read_to_string(dir.join("daemon.log")).unwrap_or_default();
    log.contains(TOKEN) || log.contains(PASSWORD)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_requests_are_rate_limited_even_with_a_wrong_token() {
    let admin = free_port();
    let fixture = Fixture::empty();
    fixture
        .write(
            "gongkai.yaml",
            format!(
                "site: 测试县政务公开\ntimezone: Asia/Shanghai\nreview: {{ required: draft }}\nsimulate: true\nadmin: {{ listen: 127.0.0.1:{admin}, token_env: GONGKAI_TEST_ADMIN_TOKEN }}\ndisplays:\n  - id: hall\n    profile: strip\n    link: {{ simulated: true }}\n"
            ),
        )
        .write("hw-profiles/strip.yaml", PROFILE);
    let base = format!("http://127.0.0.1:{admin}");
    let daemon = start_daemon(fixture.path());
    wait_for_every_display(&base, 1, &daemon).await;
    let mut statuses = Vec::new();
    for _ in 0..32 {
        let answer = client()
            .delete(format!("{base}/api/interrupt/none"))
            .bearer_auth("a-guess")
            .send()
            .await
            .expect("answers");
        statuses.push(answer.status().as_u16());
    }
    // A guesser gets 30 refusals a minute, then is told to wait; the right token does not
    // get through during that minute either.
    assert!(statuses[..30].iter().all(|s| *s == 401), "{statuses:?}");
    assert_eq!(statuses[30..], [429, 429]);
    let right = client()
        .delete(format!("{base}/api/interrupt/none"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("answers");
    assert_eq!(right.status(), reqwest::StatusCode::TOO_MANY_REQUESTS);
    // Reading is not limited.
    let read = client()
        .get(format!("{base}/api/displays"))
        .send()
        .await
        .expect("answers");
    assert!(read.status().is_success());
    assert!(daemon.terminate(Duration::from_secs(5)).await.success());
}

/// A copy of the example county with its admin listener on `port`, and its public listener on
/// the port returned.
fn county_copy(port: u16) -> (Fixture, u16) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let fixture = Fixture::empty();
    let site = std::fs::read_to_string(root.join("gongkai.yaml")).expect("the example site");
    assert!(site.contains("listen: 127.0.0.1:8640") && site.contains("listen: 127.0.0.1:8641"));
    let public = free_port();
    fixture.write(
        "gongkai.yaml",
        site.replace(
            "listen: 127.0.0.1:8640",
            &format!("listen: 127.0.0.1:{port}"),
        )
        .replace(
            "listen: 127.0.0.1:8641",
            &format!("listen: 127.0.0.1:{public}"),
        ),
    );
    for dir in ["hw-profiles", "playlists", "fonts"] {
        let Ok(entries) = std::fs::read_dir(root.join(dir)) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = format!("{dir}/{}", entry.file_name().to_string_lossy());
            if entry.path().is_file() {
                fixture.write(&name, std::fs::read(entry.path()).expect("read"));
            }
        }
    }
    (fixture, public)
}

async fn wait_for_every_display(base: &str, count: usize, daemon: &Daemon) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(response) = client().get(format!("{base}/api/displays")).send().await
            && let Ok(displays) = response.json::<serde_json::Value>().await
            && displays
                .as_array()
                .is_some_and(|a| a.len() == count && a.iter().all(|d| !d["current"].is_null()))
        {
            return displays;
        }
        assert!(
            Instant::now() < deadline,
            "not every display shows something:\n{}",
            daemon.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_county_runs_simulated_and_serves_every_boards_picture() {
    let admin = free_port();
    let (fixture, public) = county_copy(admin);
    let base = format!("http://127.0.0.1:{admin}");
    let daemon = start_daemon(fixture.path());
    let model = gongkai::config::load(fixture.path()).model.expect("valid");
    let displays = wait_for_every_display(&base, model.displays.len(), &daemon).await;
    // The hall's kiosk page and its API, on the public listener.
    let listing = get_json(
        &format!("http://127.0.0.1:{public}"),
        "/kiosk/api/items?display=hall-kiosk",
    )
    .await;
    assert!(listing.to_string().contains("大厅窗口分布"), "{listing}");
    for d in displays.as_array().expect("a list") {
        assert_eq!(d["link"]["kind"], "simulated", "{d}");
        assert!(d["link"]["frames"].as_u64() >= Some(1), "{d}");
    }
    // The square's picture: a PNG of the board in LED look, 4 screen pixels per LED.
    let png = client()
        .get(format!("{base}/api/displays/square/frame.png"))
        .send()
        .await
        .expect("frame.png");
    assert_eq!(png.headers()["content-type"], "image/png");
    let bytes = png.bytes().await.expect("bytes");
    let decoder = png::Decoder::new(std::io::Cursor::new(bytes.to_vec()));
    let info = decoder.read_info().expect("a PNG").info().clone();
    assert_eq!((info.width, info.height), (192 * 4, 64 * 4));
    // Unknown displays are a 404, the live page and the health check answer.
    let missing = client()
        .get(format!("{base}/api/displays/nowhere/frame.png"))
        .send()
        .await
        .expect("answers");
    assert_eq!(missing.status(), reqwest::StatusCode::NOT_FOUND);
    let page = client()
        .get(&base)
        .send()
        .await
        .expect("page")
        .text()
        .await
        .expect("text");
    assert!(page.contains("EventSource(\"/api/events\")"));
    let health = client()
        .get(format!("{base}/healthz"))
        .send()
        .await
        .expect("healthz");
    assert!(health.status().is_success());
    let status = daemon.terminate(Duration::from_secs(5)).await;
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs chromium and node with tests/browser installed (.ci/run)"]
async fn the_live_page_in_chromium_shows_the_squares_current_frame() {
    let admin = free_port();
    let (fixture, _) = county_copy(admin);
    let base = format!("http://127.0.0.1:{admin}");
    let daemon = start_daemon(fixture.path());
    let model = gongkai::config::load(fixture.path()).model.expect("valid");
    wait_for_every_display(&base, model.displays.len(), &daemon).await;
    // Driven by a browser-automation client (playwright-core, tests/browser), which waits for
    // the picture itself rather than for a fixed time.
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let screenshot = root.join("target").join("live-page.png");
    let mut command = std::process::Command::new("node");
    command
        .arg(root.join("tests/browser/live_page.mjs"))
        .args([base.as_str(), "square", "768x256"])
        .arg(&screenshot);
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .expect("joins")
        .expect("node runs (tests/browser needs `npm ci`, chromium needs Debian's package)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}\n{}",
        String::from_utf8_lossy(&output.stderr),
        daemon.log()
    );
    let seen: serde_json::Value = serde_json::from_str(stdout.trim()).expect("one JSON line");
    assert_eq!(seen["title"], "钨都广场电子显示幕");
    assert_eq!(seen["site"], "大余县政务公开");
    assert_eq!(seen["loaded"], "768x256");
    assert!(
        seen["now"]
            .as_str()
            .is_some_and(|t| t.starts_with("节目：")),
        "{seen}"
    );
    assert!(std::fs::metadata(&screenshot).is_ok_and(|m| m.len() > 10_000));
    eprintln!("screenshot: {}", screenshot.display());
    let status = daemon.terminate(Duration::from_secs(5)).await;
    assert!(status.success());
}

/// The live page lists what is held for review: one item approved through the admin API by
/// three people is on the board, the other is listed in the page's "待审核" box with its stage.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs chromium and node with tests/browser installed (.ci/run)"]
async fn the_live_page_in_chromium_lists_the_items_held_for_review() {
    let admin = free_port();
    let fixture = Fixture::empty();
    fixture
        .write(
            "gongkai.yaml",
            format!(
                "site: 测试县政务公开\ntimezone: Asia/Shanghai\nsimulate: true\nadmin: {{ listen: 127.0.0.1:{admin}, token_env: GONGKAI_TEST_ADMIN_TOKEN }}\ndisplays:\n  - id: hall\n    profile: strip\n    link: {{ simulated: true }}\n"
            ),
        )
        .write("hw-profiles/strip.yaml", PROFILE)
        .write(
            "playlists/main.yaml",
            "id: main\ntargets: [hall]\nitems:\n  - { id: ok-1, title: 已审定公告, category: 其他 }\n  - { id: wait-1, title: 待审核公告, category: 其他 }\n",
        );
    let base = format!("http://127.0.0.1:{admin}");
    let daemon = start_daemon(fixture.path());
    wait_for_every_display(&base, 1, &daemon).await;
    for (stage, by) in [
        ("reviewed", "张三"),
        ("legal", "李四"),
        ("approved", "王五"),
    ] {
        let recorded = client()
            .post(format!("{base}/api/review"))
            .bearer_auth(TOKEN)
            .json(&serde_json::json!({ "item": "ok-1", "stage": stage, "by": by }))
            .send()
            .await
            .expect("answers");
        assert!(recorded.status().is_success(), "{recorded:?}");
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut command = std::process::Command::new("node");
    command
        .arg(root.join("tests/browser/held_items.mjs"))
        .arg(&base);
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .expect("joins")
        .expect("node runs (tests/browser needs `npm ci`, chromium needs Debian's package)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}\n{}",
        String::from_utf8_lossy(&output.stderr),
        daemon.log()
    );
    let seen: serde_json::Value = serde_json::from_str(stdout.trim()).expect("one JSON line");
    assert_eq!(seen["summary"], "1 条待审核，未上屏、未发短信", "{seen}");
    assert_eq!(seen["items"][0]["item"], "wait-1", "{seen}");
    assert_eq!(
        seen["items"][0]["text"], "wait-1 待审核公告（草稿，需审定）",
        "{seen}"
    );
    assert_eq!(seen["visible"], true, "{seen}");
    let shown = get_json(&base, "/api/displays/hall").await;
    assert_eq!(shown["current"]["item"], "ok-1", "{shown}");
    assert!(daemon.terminate(Duration::from_secs(5)).await.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupt_survives_a_restart_of_the_daemon() {
    let admin = free_port();
    let fixture = Fixture::empty();
    fixture
        .write(
            "gongkai.yaml",
            format!(
                "site: 测试县政务公开\ntimezone: Asia/Shanghai\nreview: {{ required: draft }}\nsimulate: true\nadmin: {{ listen: 127.0.0.1:{admin}, token_env: GONGKAI_TEST_ADMIN_TOKEN }}\ndisplays:\n  - id: hall\n    profile: strip\n    link: {{ simulated: true }}\n  - id: town\n    profile: strip\n    link: {{ simulated: true }}\n"
            ),
        )
        .write("hw-profiles/strip.yaml", PROFILE)
        .write(
            "playlists/main.yaml",
            "id: main\ntargets: [hall, town]\nitems:\n  - { id: n1, title: 一号公告, category: 其他 }\n",
        );
    let base = format!("http://127.0.0.1:{admin}");
    let daemon = start_daemon(fixture.path());
    wait_for_every_display(&base, 2, &daemon).await;
    let created = client()
        .post(format!("{base}/api/interrupt"))
        .bearer_auth(TOKEN)
        .json(&serde_json::json!({ "text": "停水通知", "displays": ["town"], "duration": "1h" }))
        .send()
        .await
        .expect("answers");
    assert_eq!(created.status(), reqwest::StatusCode::CREATED);
    let kinds = |displays: &serde_json::Value| -> Vec<String> {
        displays
            .as_array()
            .into_iter()
            .flatten()
            .map(|d| d["current"]["kind"].as_str().unwrap_or("").to_owned())
            .collect()
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    while kinds(&get_json(&base, "/api/displays").await) != ["item", "interrupt"] {
        assert!(
            Instant::now() < deadline,
            "the interrupt did not show:\n{}",
            daemon.log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(daemon.terminate(Duration::from_secs(5)).await.success());

    // The same timeline after a restart: the interrupt is still on the town's board.
    let daemon = start_daemon(fixture.path());
    let displays = wait_for_every_display(&base, 2, &daemon).await;
    assert_eq!(kinds(&displays), ["item", "interrupt"], "{displays}");
    assert!(daemon.terminate(Duration::from_secs(5)).await.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_writes_and_reloads_leaves_a_sound_database() {
    // 20 displays changing every second, so the database is written to all the time; each
    // round edits the playlist and kills the daemon with SIGKILL while it reloads.
    let admin = free_port();
    let fixture = Fixture::empty();
    let mut site = format!(
        "site: 测试县政务公开\ntimezone: Asia/Shanghai\nreview: {{ required: draft }}\nsimulate: true\nadmin: {{ listen: 127.0.0.1:{admin} }}\ndisplays:\n"
    );
    for d in 0..20 {
        site.push_str(&format!(
            "  - id: d{d}\n    profile: strip\n    link: {{ simulated: true }}\n    groups: [all]\n"
        ));
    }
    let playlist = |round: usize| {
        let mut text =
            "id: all\ntargets: [all]\nshow: { mode: page, dwell: 1s }\nitems:\n".to_owned();
        for i in 0..3 {
            text.push_str(&format!(
                "  - {{ id: i{i}, title: 第{round}轮{i}号, category: 其他 }}\n"
            ));
        }
        text
    };
    fixture
        .write("gongkai.yaml", site)
        .write("hw-profiles/strip.yaml", PROFILE)
        .write("playlists/all.yaml", playlist(0));
    let base = format!("http://127.0.0.1:{admin}");
    let db = fixture.path().join("var/gongkai.db");
    let started = chrono::Utc::now();
    for round in 1..=4 {
        let daemon = start_daemon(fixture.path());
        wait_for_every_display(&base, 20, &daemon).await;
        tokio::time::sleep(Duration::from_millis(300 * round as u64)).await;
        fixture.write("playlists/all.yaml", playlist(round));
        // Somewhere inside the debounce, the reload or the writes that follow it.
        tokio::time::sleep(Duration::from_millis(60 * round as u64)).await;
        daemon.kill_9();
    }
    // A last, clean run closes what the kills left open.
    let daemon = start_daemon(fixture.path());
    let displays = wait_for_every_display(&base, 20, &daemon).await;
    // The last edit is what every board shows.
    assert!(
        displays
            .as_array()
            .into_iter()
            .flatten()
            .all(|d| d["current"]["title"]
                .as_str()
                .is_some_and(|t| t.starts_with("第4轮"))),
        "{displays}"
    );
    assert!(daemon.terminate(Duration::from_secs(5)).await.success());

    let store = gongkai::store::Store::open_read_only(&db).expect("the database opens");
    let rows = store
        .audit(started, chrono::Utc::now(), None)
        .expect("the audit reads");
    assert!(rows.len() >= 20 * 5, "{} rows", rows.len());
    // Per display, what was shown never overlaps: a killed run's last slot ends at or before
    // the next run's first one.
    for d in 0..20 {
        let id = format!("d{d}");
        let mut mine: Vec<_> = rows
            .iter()
            .filter(|r| r.display.as_deref() == Some(id.as_str()))
            .collect();
        mine.sort_by_key(|r| r.from);
        for pair in mine.windows(2) {
            assert!(
                pair[0].to <= pair[1].from,
                "{id}: {:?} overlaps {:?}",
                (pair[0].from, pair[0].to),
                (pair[1].from, pair[1].to)
            );
        }
        assert!(mine.iter().all(|r| !r.to_planned || r.to >= r.from));
    }
    drop(store);
    // SQLite's own check of the file, and the command operators use to read it.
    let conn = rusqlite::Connection::open(&db).expect("opens");
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |row| row.get(0))
        .expect("checks");
    assert_eq!(check, "ok");
    drop(conn);
    let output = Command::new(env!("CARGO_BIN_EXE_gongkai"))
        .args(["audit", "--site"])
        .arg(fixture.path())
        .args(["--from", "2026-01-01", "--to", "2099-01-01", "--csv"])
        .output()
        .expect("gongkai audit runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_withdrawn_item_leaves_every_board_at_once_and_stays_off_across_a_restart() {
    let admin = free_port();
    let fixture = Fixture::empty();
    fixture
        .write(
            "gongkai.yaml",
            format!(
                "site: 测试县政务公开\ntimezone: Asia/Shanghai\nreview: {{ required: draft }}\nsimulate: true\nadmin: {{ listen: 127.0.0.1:{admin}, token_env: GONGKAI_TEST_ADMIN_TOKEN }}\ndisplays:\n  - id: hall\n    profile: strip\n    link: {{ simulated: true }}\n  - id: town\n    profile: strip\n    link: {{ simulated: true }}\n"
            ),
        )
        .write("hw-profiles/strip.yaml", PROFILE)
        // One item only: withdrawn, the boards have nothing left but the idle screen.
        .write(
            "playlists/main.yaml",
            "id: main\ntargets: [hall, town]\nitems:\n  - { id: wrong-notice, title: 错误公告, category: 其他 }\n",
        );
    let base = format!("http://127.0.0.1:{admin}");
    let daemon = start_daemon(fixture.path());
    let kinds = |displays: &serde_json::Value| -> Vec<String> {
        displays
            .as_array()
            .into_iter()
            .flatten()
            .map(|d| d["current"]["kind"].as_str().unwrap_or("").to_owned())
            .collect()
    };
    assert_eq!(
        kinds(&wait_for_every_display(&base, 2, &daemon).await),
        ["item", "item"]
    );

    // The operator's command, as a clerk would type it.
    let started = Instant::now();
    let output = Command::new(env!("CARGO_BIN_EXE_gongkai"))
        .args(["withdraw", "wrong-notice", "--reason", "内容有误", "--site"])
        .arg(fixture.path())
        .env("GONGKAI_TEST_ADMIN_TOKEN", TOKEN)
        .output()
        .expect("gongkai withdraw runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while kinds(&get_json(&base, "/api/displays").await) != ["idle", "idle"] {
        assert!(Instant::now() < deadline, "still shown:\n{}", daemon.log());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    eprintln!(
        "off every board {:?} after the command started",
        started.elapsed()
    );
    // Not in the plan either, and an unknown item is refused.
    let plan = get_json(&base, "/api/plan?display=hall").await;
    assert!(!plan.to_string().contains("wrong-notice"), "{plan}");
    let unknown = client()
        .post(format!("{base}/api/withdraw"))
        .bearer_auth(TOKEN)
        .json(&serde_json::json!({ "item": "no-such-item" }))
        .send()
        .await
        .expect("answers");
    assert_eq!(unknown.status(), reqwest::StatusCode::BAD_REQUEST);
    assert!(daemon.terminate(Duration::from_secs(5)).await.success());

    // A restart (and a reload) keeps it off.
    let daemon = start_daemon(fixture.path());
    assert_eq!(
        kinds(&wait_for_every_display(&base, 2, &daemon).await),
        ["idle", "idle"]
    );
    assert_eq!(
        get_json(&base, "/api/withdrawn").await,
        serde_json::json!(["wrong-notice"])
    );

    // Restored: back on the boards; both actions are in the audit.
    let restored = client()
        .delete(format!("{base}/api/withdraw/wrong-notice?by=tester"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("answers");
    assert!(restored.status().is_success());
    let deadline = Instant::now() + Duration::from_secs(5);
    while kinds(&get_json(&base, "/api/displays").await) != ["item", "item"] {
        assert!(Instant::now() < deadline, "not back:\n{}", daemon.log());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(daemon.terminate(Duration::from_secs(5)).await.success());
    let store = gongkai::store::Store::open_read_only(&fixture.path().join("var/gongkai.db"))
        .expect("the database");
    let actions: Vec<&'static str> = store
        .audit(
            chrono::Utc::now() - chrono::Duration::hours(1),
            chrono::Utc::now(),
            None,
        )
        .expect("audit")
        .iter()
        .filter_map(|r| match r.kind {
            gongkai::store::AuditKind::Action(a) => Some(a.code()),
            _ => None,
        })
        .collect();
    assert_eq!(actions, ["item-withdrawn", "item-restored"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_sends_a_bulletin_once_to_each_subscriber_even_across_a_restart() {
    use chrono::Timelike;
    let admin = free_port();
    let fixture = Fixture::empty();
    // Quiet hours well away from now, so the bulletin is due at once whenever the test runs.
    let now = chrono::Utc::now().with_timezone(&chrono_tz::Asia::Shanghai);
    let quiet_from = (now.hour() + 2) % 24;
    let quiet_until = (now.hour() + 3) % 24;
    let public = free_port();
    fixture
        .write(
            "gongkai.yaml",
            format!(
                "site: 测试县政务公开\ntimezone: Asia/Shanghai\nreview: {{ required: draft }}\nsimulate: true\nadmin: {{ listen: 127.0.0.1:{admin} }}\npublic: {{ listen: 127.0.0.1:{public}, token_env: GONGKAI_TEST_ADMIN_TOKEN }}\nsms:\n  signature: 测试县政务公开\n  outbox: var/outbox.jsonl\n  quiet_hours: {{ from: \"{quiet_from:02}:00\", until: \"{quiet_until:02}:00\" }}\n  digest: false\n  gateways:\n    - id: local\n      kind: outbox\n  route: [local]\ndisplays:\n  - id: hall\n    profile: strip\n    link: {{ simulated: true }}\n"
            ),
        )
        .write("hw-profiles/strip.yaml", PROFILE)
        .write(
            "playlists/main.yaml",
            "id: main\ntargets: [hall]\nitems:\n  - { id: cg-1, title: 城区道路照明改造工程中标结果公示, category: 政府采购, channels: [board, sms] }\n  - { id: board-only, title: 办事指南, category: 其他 }\n",
        )
        .write(
            "subscribers.csv",
            "号码,姓名,分组,订阅\n13800138000,张三,南安镇,政府采购\n13900139000,王五,黄龙镇,\n18612345678,赵六,南安镇,人员录用\n",
        );
    import_subscribers(fixture.path());
    let base = format!("http://127.0.0.1:{admin}");
    let outbox = fixture.path().join("var/outbox.jsonl");
    let lines = || {
        std::fs::read_to_string(&outbox)
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    for round in 0..2 {
        let daemon = start_daemon(fixture.path());
        wait_for_every_display(&base, 1, &daemon).await;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let sms = get_json(&base, "/api/sms").await;
            if sms["deliveries"]["sent"] == 2 && sms["side"]["items"] == serde_json::json!(["cg-1"])
            {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "round {round}: {sms}\n{}",
                daemon.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if round == 0 {
            // A TD reply through the public listener's callback: only with its token.
            let callback = |token: &str| {
                format!(
                    "http://127.0.0.1:{public}/sms/local/reply?token={token}&from=13800138000&text=TD"
                )
            };
            let refused = client()
                .get(callback("wrong"))
                .send()
                .await
                .expect("answers");
            assert_eq!(refused.status(), reqwest::StatusCode::UNAUTHORIZED);
            let taken = client().get(callback(TOKEN)).send().await.expect("answers");
            assert!(taken.status().is_success());
            assert_eq!(taken.text().await.expect("text"), "ok 1\n");
        }
        assert!(daemon.terminate(Duration::from_secs(5)).await.success());
        // Two subscribers want 政府采购 (one names it, one names nothing); the third wants
        // only 人员录用. After the restart, nobody got a second copy.
        let sent = lines();
        assert_eq!(sent.len(), 2, "round {round}: {sent:?}");
        assert!(
            sent.iter()
                .all(|l| l.contains("城区道路照明改造工程中标结果公示"))
        );
        assert!(!sent.iter().any(|l| l.contains("18612345678")));
    }
    // An interrupt sent as SMS too: urgent, to whoever wants 其他 (the subscriber with no
    // topics; 13800138000 opted out by its TD reply above).
    let daemon = start_daemon(fixture.path());
    wait_for_every_display(&base, 1, &daemon).await;
    let created = client()
        .post(format!("{base}/api/interrupt"))
        .json(&serde_json::json!({ "text": "今晚停水，请提前储水", "duration": "1h", "sms": true }))
        .send()
        .await
        .expect("answers");
    assert_eq!(created.status(), reqwest::StatusCode::CREATED);
    let deadline = Instant::now() + Duration::from_secs(10);
    while lines().len() < 3 {
        assert!(Instant::now() < deadline, "{:?}\n{}", lines(), daemon.log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(daemon.terminate(Duration::from_secs(5)).await.success());
    let sent = lines();
    assert_eq!(sent.len(), 3, "{sent:?}");
    assert!(sent[2].contains("今晚停水"), "{sent:?}");
    // The bulletins are in the audit, each once.
    let store = gongkai::store::Store::open_read_only(&fixture.path().join("var/gongkai.db"))
        .expect("the database");
    let bulletins: Vec<_> = store
        .audit(
            chrono::Utc::now() - chrono::Duration::hours(1),
            chrono::Utc::now(),
            None,
        )
        .expect("audit")
        .into_iter()
        .filter(|r| matches!(r.kind, gongkai::store::AuditKind::Bulletin { .. }))
        .collect();
    assert_eq!(
        bulletins.len(),
        2,
        "{bulletins:?}\n{}",
        std::fs::read_to_string(fixture.path().join("daemon.log")).unwrap_or_default()
    );
    assert_eq!(bulletins[0].item.as_deref(), Some("cg-1"));
    assert!(
        bulletins[1]
            .item
            .as_deref()
            .is_some_and(|i| i.starts_with("int-"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_touchscreen_gets_its_typeset_page_over_mqtt_as_png() {
    use gongkai::font::scalable::{CoverageCache, ScalableFont};
    use gongkai::kiosk::render::{Sizes, render};
    let broker = TestBroker::start().await;
    let admin = free_port();
    let fixture = Fixture::empty();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    fixture
        .write(
            "gongkai.yaml",
            format!(
                "site: 测试县政务公开\ntimezone: Asia/Shanghai\nreview: {{ required: draft }}\nadmin: {{ listen: 127.0.0.1:{admin} }}\nmqtt:\n  broker: mqtt://127.0.0.1:{}\n  topic_prefix: {PREFIX}\n  username: {USER}\n  password_env: GONGKAI_TEST_MQTT_PASSWORD\ndisplays:\n  - id: kiosk\n    profile: touch\n    link: {{ mqtt: kiosk/hall }}\n",
                broker.port
            ),
        )
        .write(
            "hw-profiles/touch.yaml",
            "width: 540\nheight: 960\npixel: rgb888\nfont: fonts/NotoSansSC-Regular-gb2312.otf\nfont_size: 24\nprotocol: png\n",
        )
        .write(
            "fonts/NotoSansSC-Regular-gb2312.otf",
            std::fs::read(root.join("fonts/NotoSansSC-Regular-gb2312.otf")).expect("the font"),
        )
        .write(
            "playlists/kiosk.yaml",
            "id: kiosk\ntargets: [kiosk]\nitems:\n  - id: hall-map\n    title: 大厅窗口分布\n    category: 其他\n    department: 县行政服务中心\n    body: 一楼：1号窗口不动产登记，2号窗口企业开办，3号窗口公安户政。\n    channels: [touch]\n",
        );
    let daemon = start_daemon(fixture.path());
    let model = gongkai::config::load(fixture.path()).model.expect("valid");
    let (_, item) = model.item("hall-map").expect("the item");
    let now = chrono::Utc::now().with_timezone(&model.site.timezone);
    let mut glyphs = CoverageCache::new(ScalableFont::noto_sans_sc());
    let want = render(item, 540, 960, Sizes::new(540, Some(24)), &now, &mut glyphs)
        .into_iter()
        .next()
        .expect("a page");
    let topic = gongkai::link::mqtt::DisplayTopics::new(PREFIX, "kiosk/hall").frame;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(payload) = retained(broker.port, &topic, Duration::from_millis(300)).await {
            // The header says PNG; the picture is the typeset page, pixel for pixel.
            assert_eq!(payload[10], 1, "encoding byte");
            assert_eq!(&payload[24..28], b"\x89PNG");
            let (header, frame) = decode_frame(&payload).expect("decodes");
            assert_eq!((header.width, header.height), (540, 960));
            if frame == want {
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "no typeset page:\n{}",
            daemon.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(daemon.terminate(Duration::from_secs(5)).await.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_while_the_daemon_writes_is_whole_and_private() {
    use std::os::unix::fs::PermissionsExt;
    let admin = free_port();
    let fixture = Fixture::empty();
    let backup = |to: &Path| {
        Command::new(env!("CARGO_BIN_EXE_gongkai"))
            .args(["backup", "--to"])
            .arg(to)
            .arg("--site")
            .arg(fixture.path())
            .output()
            .expect("gongkai backup runs")
    };
    // Nothing to copy yet: said, exit 1.
    let none = backup(&fixture.path().join("backups"));
    assert_eq!(none.status.code(), Some(1));
    let mut site = format!(
        "site: 测试县政务公开\ntimezone: Asia/Shanghai\nreview: {{ required: draft }}\nsimulate: true\nadmin: {{ listen: 127.0.0.1:{admin} }}\ndisplays:\n"
    );
    for d in 0..10 {
        site.push_str(&format!(
            "  - id: d{d}\n    profile: strip\n    link: {{ simulated: true }}\n    groups: [all]\n"
        ));
    }
    fixture
        .write("gongkai.yaml", site)
        .write("hw-profiles/strip.yaml", PROFILE)
        .write(
            "playlists/all.yaml",
            "id: all\ntargets: [all]\nshow: { mode: page, dwell: 1s }\nitems:\n  - { id: a, title: 一号, category: 其他 }\n  - { id: b, title: 二号, category: 其他 }\n",
        );
    let base = format!("http://127.0.0.1:{admin}");
    let daemon = start_daemon(fixture.path());
    wait_for_every_display(&base, 10, &daemon).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let to = fixture.path().join("backups");
    let output = backup(&to);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(daemon.terminate(Duration::from_secs(5)).await.success());
    let copies: Vec<_> = std::fs::read_dir(&to)
        .expect("the backup folder")
        .flatten()
        .map(|e| e.path())
        .collect();
    assert_eq!(copies.len(), 1, "{copies:?}");
    let mode = |p: &Path| std::fs::metadata(p).expect("stat").permissions().mode() & 0o777;
    assert_eq!(mode(&to), 0o700);
    assert_eq!(mode(&copies[0]), 0o600);
    // A whole database on its own: the slots shown so far are in it.
    let store = gongkai::store::Store::open_read_only(&copies[0]).expect("the copy opens");
    let rows = store
        .audit(
            chrono::Utc::now() - chrono::Duration::hours(1),
            chrono::Utc::now(),
            None,
        )
        .expect("the copy reads");
    assert!(rows.len() >= 10, "{} rows", rows.len());
}

/// `gongkai review` as a clerk types it; its exit code and what it printed.
fn review(dir: &Path, args: &[&str]) -> (i32, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_gongkai"))
        .arg("review")
        .args(args)
        .args(["--lang", "en", "--site"])
        .arg(dir)
        .env("GONGKAI_TEST_ADMIN_TOKEN", TOKEN)
        .output()
        .expect("gongkai review runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.code().unwrap_or(-1), text)
}

/// 三审 end to end: a board on a pseudo-terminal, a board over MQTT and the SMS outbox get an
/// item only after its first review, legal review and approval by three different people;
/// `gongkai withdraw` replaces the picture on both boards (the serial board's and the MQTT
/// board's retained frame) and restoring brings it back; an edit of the approved text takes it
/// off the boards again until it is reviewed anew.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_item_reaches_boards_and_sms_only_once_approved_and_an_edit_pulls_it_back() {
    let broker = TestBroker::start().await;
    let (master, slave) = SerialStream::pair().expect("a pseudo-terminal pair");
    let port = slave.name().expect("the slave's path");
    let board = reference_board();
    let epoch = Instant::now();
    tokio::spawn(serve(master, board.clone(), 115_200, epoch, |_| {}));
    let admin = free_port();
    let fixture = Fixture::empty();
    // No `review:` section: the default requires approval. Quiet hours never.
    let site = site(admin, broker.port, &port)
        .replace("review: { required: draft }\n", "")
        .replace(
            "displays:",
            "sms:\n  signature: 测试县政务公开\n  outbox: var/outbox.jsonl\n  quiet_hours: { from: \"00:00\", until: \"00:00\" }\n  digest: false\n  gateways: [{ id: local, kind: outbox }]\ndisplays:",
        );
    let playlist = |title: &str| {
        playlist(title).replace(
            "category: 政府采购",
            "category: 政府采购\n    channels: [board, sms]",
        )
    };
    fixture
        .write("gongkai.yaml", site)
        .write("hw-profiles/strip.yaml", PROFILE)
        .write("playlists/main.yaml", playlist("一号公告"))
        .write("subscribers.csv", "号码,姓名\n13800138000,张三\n");
    let dir = fixture.path();
    import_subscribers(dir);
    let base = format!("http://127.0.0.1:{admin}");
    let outbox = dir.join("var/outbox.jsonl");
    let daemon = start_daemon(dir);
    let item_frame = expected(dir, 0, item(), &[]);
    let kinds = |displays: &serde_json::Value| -> Vec<String> {
        displays
            .as_array()
            .into_iter()
            .flatten()
            .map(|d| d["current"]["kind"].as_str().unwrap_or("").to_owned())
            .collect()
    };
    assert_eq!(
        kinds(&wait_for_every_display(&base, 2, &daemon).await),
        ["idle", "idle"]
    );
    let status = get_json(&base, "/api/status").await;
    assert_eq!(status["held_for_review"][0]["item"], "n1", "{status}");

    // Out of order, then the same person twice: refused, and nothing changes.
    let (code, text) = review(dir, &["n1", "--stage", "approved", "--by", "王五"]);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("needs legal first"), "{text}");
    let (code, text) = review(dir, &["n1", "--stage", "reviewed", "--by", "张三"]);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("held"), "{text}");
    let (code, text) = review(dir, &["n1", "--stage", "legal", "--by", "张三"]);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("张三 already recorded reviewed"), "{text}");
    let (code, text) = review(dir, &["n1", "--stage", "legal", "--by", "李四"]);
    assert_eq!(code, 0, "{text}");

    // All the while, neither board got the item, nor did the SMS outbox.
    {
        let mut b = lock(&board);
        b.tick(epoch.elapsed().as_millis() as u64);
        assert_ne!(
            b.picture(),
            item_frame,
            "the serial board shows an unapproved item"
        );
    }
    let topic = gongkai::link::mqtt::DisplayTopics::new(PREFIX, "boards/town").frame;
    let retained_frame = retained(broker.port, &topic, Duration::from_millis(500)).await;
    assert!(
        !retained_frame
            .as_deref()
            .and_then(|p| decode_frame(p).ok())
            .is_some_and(|(_, f)| f == item_frame),
        "the MQTT board shows an unapproved item"
    );
    assert!(
        !outbox.exists()
            || std::fs::read_to_string(&outbox)
                .unwrap_or_default()
                .is_empty()
    );

    // Approved by a third person: on both boards, and the bulletin goes out.
    let (code, text) = review(dir, &["n1", "--stage", "approved", "--by", "王五"]);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("published"), "{text}");
    both_show(
        &board,
        epoch,
        broker.port,
        &item_frame,
        Duration::from_secs(10),
        &daemon,
        "approved",
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::fs::read_to_string(&outbox)
        .unwrap_or_default()
        .lines()
        .count()
        != 1
    {
        assert!(Instant::now() < deadline, "no bulletin:\n{}", daemon.log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The kill switch: off both boards at once (the serial board's picture replaced, the
    // MQTT board's retained frame replaced), then back when restored.
    let withdraw = Command::new(env!("CARGO_BIN_EXE_gongkai"))
        .args(["withdraw", "n1", "--reason", "内容有误", "--site"])
        .arg(dir)
        .env("GONGKAI_TEST_ADMIN_TOKEN", TOKEN)
        .output()
        .expect("gongkai withdraw runs");
    assert!(withdraw.status.success(), "{withdraw:?}");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let serial_clear = {
            let mut b = lock(&board);
            b.tick(epoch.elapsed().as_millis() as u64);
            b.picture() != item_frame
        };
        let mqtt_clear = !retained(broker.port, &topic, Duration::from_millis(200))
            .await
            .as_deref()
            .and_then(|p| decode_frame(p).ok())
            .is_some_and(|(_, f)| f == item_frame);
        if serial_clear && mqtt_clear {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "serial cleared {serial_clear}, MQTT cleared {mqtt_clear}:\n{}",
            daemon.log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let restore = Command::new(env!("CARGO_BIN_EXE_gongkai"))
        .args(["withdraw", "n1", "--restore", "--site"])
        .arg(dir)
        .env("GONGKAI_TEST_ADMIN_TOKEN", TOKEN)
        .output()
        .expect("gongkai withdraw runs");
    assert!(restore.status.success(), "{restore:?}");
    both_show(
        &board,
        epoch,
        broker.port,
        &item_frame,
        Duration::from_secs(10),
        &daemon,
        "restored",
    )
    .await;

    // The approved text edited: pulled back to draft, off both boards.
    fixture.write("playlists/main.yaml", playlist("一号公告（更正）"));
    let deadline = Instant::now() + Duration::from_secs(10);
    while kinds(&get_json(&base, "/api/displays").await) != ["idle", "idle"] {
        assert!(Instant::now() < deadline, "still shown:\n{}", daemon.log());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let reviews = get_json(&base, "/api/reviews").await;
    assert_eq!(reviews[0]["stage"], "draft", "{reviews}");
    assert_eq!(reviews[0]["stale_reviews"], 3, "{reviews}");
    assert!(daemon.log().contains("changed after its review"));
    let (code, text) = review(dir, &["--list"]);
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains("n1") && text.contains("1 not on boards"),
        "{text}"
    );
    assert!(daemon.terminate(Duration::from_secs(5)).await.success());

    // Every review is in the audit with who recorded it.
    let store =
        gongkai::store::Store::open_read_only(&dir.join("var/gongkai.db")).expect("the database");
    let reviewers: Vec<String> = store
        .audit(
            chrono::Utc::now() - chrono::Duration::hours(1),
            chrono::Utc::now(),
            None,
        )
        .expect("audit")
        .into_iter()
        .filter(|r| r.kind.code() == "item-reviewed")
        .filter_map(|r| r.by)
        .collect();
    assert_eq!(reviewers, ["张三", "李四", "王五"]);
}

/// The SMS side of the daemon under the operator's controls: a bulletin to more subscribers than
/// `second_approval_above` waits until a second person approves it, then goes to each once;
/// withdrawing an item whose bulletin is held by quiet hours cancels its queued messages, which
/// are never sent, and says so in the audit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mass_send_waits_for_a_second_approver_and_withdraw_cancels_queued_sms() {
    use chrono::Timelike;
    let admin = free_port();
    let fixture = Fixture::empty();
    let now = chrono::Utc::now().with_timezone(&chrono_tz::Asia::Shanghai);
    // `night` is in quiet hours now: its rows queue until morning.
    let (quiet_from, quiet_until) = (now.hour(), (now.hour() + 2) % 24);
    fixture
        .write(
            "gongkai.yaml",
            format!(
                "site: 测试县政务公开\ntimezone: Asia/Shanghai\nreview: {{ required: draft }}\nsimulate: true\nadmin: {{ listen: 127.0.0.1:{admin}, token_env: GONGKAI_TEST_ADMIN_TOKEN }}\nsms:\n  signature: 测试县政务公开\n  outbox: var/outbox.jsonl\n  quiet_hours: {{ from: \"{quiet_from:02}:00\", until: \"{quiet_until:02}:00\" }}\n  digest: false\n  second_approval_above: 1\n  gateways: [{{ id: local, kind: outbox }}]\ndisplays:\n  - id: hall\n    profile: strip\n    link: {{ simulated: true }}\n"
            ),
        )
        .write("hw-profiles/strip.yaml", PROFILE)
        .write(
            "playlists/main.yaml",
            "id: main\ntargets: [hall]\nitems:\n  - { id: night, title: 夜间施工公告, category: 其他, channels: [board, sms] }\n",
        )
        .write(
            "subscribers.csv",
            "号码,姓名\n13800138000,张三\n13900139000,王五\n",
        );
    import_subscribers(fixture.path());
    let base = format!("http://127.0.0.1:{admin}");
    let daemon = start_daemon(fixture.path());
    wait_for_every_display(&base, 1, &daemon).await;
    let sms_until = |want: &'static str| {
        let base = base.clone();
        async move {
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                let sms = get_json(&base, "/api/sms").await;
                let ok = match want {
                    "awaiting" => {
                        sms["side"]["awaiting_second_approval"] == serde_json::json!(["night"])
                    }
                    "queued" => sms["deliveries"]["queued"] == 2,
                    "cancelled" => {
                        sms["deliveries"]["cancelled"] == 2 && sms["deliveries"]["queued"] == 0
                    }
                    _ => unreachable!(),
                };
                if ok {
                    return sms;
                }
                assert!(Instant::now() < deadline, "{want}: {sms}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    // Two recipients, a limit of one: nothing is recorded until a second person approves.
    let sms = sms_until("awaiting").await;
    assert_eq!(sms["deliveries"]["queued"], 0, "{sms}");
    let approve = client()
        .post(format!("{base}/api/review"))
        .bearer_auth(TOKEN)
        .json(&serde_json::json!({ "item": "night", "stage": "mass-sms", "by": "赵六" }))
        .send()
        .await
        .expect("answers");
    assert!(approve.status().is_success(), "{approve:?}");
    sms_until("queued").await;

    // Withdrawn during quiet hours: the queued messages are cancelled, never sent.
    let withdrawn = client()
        .post(format!("{base}/api/withdraw"))
        .bearer_auth(TOKEN)
        .json(&serde_json::json!({ "item": "night", "by": "tester", "reason": "施工取消" }))
        .send()
        .await
        .expect("answers");
    assert!(withdrawn.status().is_success());
    sms_until("cancelled").await;
    assert!(daemon.terminate(Duration::from_secs(5)).await.success());
    assert!(!fixture.path().join("var/outbox.jsonl").exists());
    let store = gongkai::store::Store::open_read_only(&fixture.path().join("var/gongkai.db"))
        .expect("the database");
    let actions: Vec<(String, String)> = store
        .audit(
            chrono::Utc::now() - chrono::Duration::hours(1),
            chrono::Utc::now(),
            None,
        )
        .expect("audit")
        .into_iter()
        .filter_map(|r| match r.kind {
            gongkai::store::AuditKind::Action(a) => {
                Some((a.code().to_owned(), r.by.unwrap_or_default()))
            }
            _ => None,
        })
        .collect();
    let codes: Vec<&str> = actions.iter().map(|(c, _)| c.as_str()).collect();
    assert_eq!(
        codes,
        ["sms-second-approval", "item-withdrawn", "sms-cancelled"],
        "{actions:?}"
    );
}
