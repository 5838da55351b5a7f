//! The serial link against the reference board over real pseudo-terminals: frames,
//! brightness, power and withdrawal arrive on a shared bus; line faults and a board reset are
//! survived; an unplugged adapter is reopened; `gongkai emulate` itself serves a link; a
//! PROGRAM is uploaded once and played by the board (a scroll strip on a 9,600-baud line,
//! pages at their dwell).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use gongkai::config::model::{PixelFormat, Rgb};
use gongkai::emulator::{Board, BoardConfig, lock, serve};
use gongkai::link::serial::{PortConfig, SerialDisplay, spawn};
use gongkai::link::{Link, Program};
use gongkai::protocol::transfer::Geometry;
use gongkai::raster::frame::Frame;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;
use tokio_serial::{SerialPort, SerialStream};

const BAUD: u32 = 115_200;
const VALID: Duration = Duration::from_secs(300);

fn board(address: u8, buffer: u16) -> Arc<Mutex<Board>> {
    let config = BoardConfig {
        address,
        geometry: Geometry {
            width: 128,
            height: 16,
            format: PixelFormat::Mono,
        },
        buffer,
        store: 65_536,
        brightness_max: 15,
        firmware: "test board".into(),
    };
    Arc::new(Mutex::new(Board::new(config, 0)))
}

/// A picture with a pattern that depends on `seed`, so consecutive frames differ in places.
fn picture(seed: u32) -> Frame {
    let mut frame = Frame::new(128, 16, PixelFormat::Mono);
    for y in 0..16 {
        for x in 0..128 {
            if (x * 7 + y * 13 + seed * 31).is_multiple_of(5 + seed % 4) {
                frame.set_pixel(x, y, Rgb(255, 255, 255));
            }
        }
    }
    frame
}

/// Waits for `condition`, failing the test after `limit`.
async fn wait_until(limit: Duration, what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn pty() -> (SerialStream, SerialStream, String) {
    let (master, slave) = SerialStream::pair().expect("a pseudo-terminal pair");
    let name = slave.name().expect("the slave's device path");
    (master, slave, name)
}

fn start_board(
    port: SerialStream,
    board: &Arc<Mutex<Board>>,
) -> tokio::task::JoinHandle<Result<(), gongkai::emulator::ServeError>> {
    tokio::spawn(serve(port, board.clone(), BAUD, Instant::now(), |_| {}))
}

async fn shown(display: &mut SerialDisplay, frame: &Frame) -> u64 {
    display
        .show(frame, VALID)
        .await
        .expect("the link takes the frame")
        .generation()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frame_arrives_exactly_on_two_boards_of_one_bus_beside_a_silent_one() {
    let (master, _slave, path) = pty();
    // Two boards on one bus: the emulator cores share the line through one pty end.
    let first = board(3, 64);
    let second = board(4, 512);
    let (mut reader, mut writer) = tokio::io::split(master);
    // The bus: everything the host sends reaches both boards, and both answer on it.
    let (host_a, board_a) = tokio::io::duplex(4096);
    let (host_b, board_b) = tokio::io::duplex(4096);
    tokio::spawn(serve(board_a, first.clone(), BAUD, Instant::now(), |_| {}));
    tokio::spawn(serve(board_b, second.clone(), BAUD, Instant::now(), |_| {}));
    let (mut a_r, mut a_w) = tokio::io::split(host_a);
    let (mut b_r, mut b_w) = tokio::io::split(host_b);
    tokio::spawn(async move {
        let mut buf = [0u8; 256];
        while let Ok(n @ 1..) = reader.read(&mut buf).await {
            if a_w.write_all(&buf[..n]).await.is_err() || b_w.write_all(&buf[..n]).await.is_err() {
                return;
            }
        }
    });
    let (replies, mut on_bus) = tokio::sync::mpsc::channel::<Vec<u8>>(64);
    let replies_b = replies.clone();
    tokio::spawn(async move {
        let mut buf = [0u8; 256];
        while let Ok(n @ 1..) = a_r.read(&mut buf).await {
            if replies.send(buf[..n].to_vec()).await.is_err() {
                return;
            }
        }
    });
    tokio::spawn(async move {
        let mut buf = [0u8; 256];
        while let Ok(n @ 1..) = b_r.read(&mut buf).await {
            if replies_b.send(buf[..n].to_vec()).await.is_err() {
                return;
            }
        }
    });
    tokio::spawn(async move {
        while let Some(bytes) = on_bus.recv().await {
            if writer.write_all(&bytes).await.is_err() {
                return;
            }
        }
    });
    let (_task, mut displays) = spawn(
        PortConfig {
            path: path.into(),
            baud: BAUD,
        },
        // Board 9 is not there: it must not hold up the others.
        &[3, 4, 9],
    );
    let (a, b) = (picture(1), picture(2));
    let [da, db, silent] = &mut displays[..] else {
        panic!("three displays");
    };
    shown(silent, &a).await;
    shown(da, &a).await;
    shown(db, &b).await;
    wait_until(
        Duration::from_secs(3),
        "both boards to show their frames",
        || lock(&first).picture() == a && lock(&second).picture() == b,
    )
    .await;
    let (va, vb) = (da.view(), db.view());
    wait_until(Duration::from_secs(1), "the acknowledgements", || {
        va.borrow().shown.is_some() && vb.borrow().shown.is_some()
    })
    .await;
    assert!(da.counters().frames >= 1 && db.counters().frames >= 1);
    assert!(da.counters().last_ack.is_some());
    assert_eq!(lock(&first).counts().crc_errors, 0);
    // Brightness, power and withdrawal reach the right board.
    da.brightness(7).await.expect("brightness");
    db.power(false).await.expect("power");
    wait_until(Duration::from_secs(2), "brightness and power", || {
        lock(&first).brightness() == 7 && !lock(&second).power()
    })
    .await;
    assert_eq!(
        lock(&second).picture(),
        Frame::new(128, 16, PixelFormat::Mono)
    );
    assert_ne!(lock(&second).content(), 0, "power off keeps the content");
    da.clear().await.expect("clear");
    wait_until(Duration::from_secs(2), "the withdrawal", || {
        lock(&first).content() == 0
    })
    .await;
    assert_eq!(
        lock(&first).picture(),
        Frame::new(128, 16, PixelFormat::Mono)
    );
    // The silent board got its HELLO and retries, then single probes at a backed-off rate.
    let hello_wire = 12;
    let silent_bytes = silent.counters().bytes;
    assert!(!silent.view().borrow().online);
    assert!(
        (4 * hello_wire..=6 * hello_wire).contains(&silent_bytes),
        "{silent_bytes} bytes to the silent board"
    );
}

/// A deterministic pseudo-random source for the fault injector.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Bit flips, dropped bytes and garbage, each in about one read of `one_in`.
fn damage(rng: &mut XorShift, bytes: &mut Vec<u8>, one_in: u64, faults: &Mutex<u64>) {
    if bytes.is_empty() {
        return;
    }
    let mut hit = false;
    if rng.below(one_in) == 0 {
        let i = rng.below(bytes.len() as u64) as usize;
        bytes[i] ^= 1 << rng.below(8);
        hit = true;
    }
    if rng.below(one_in) == 0 {
        let i = rng.below(bytes.len() as u64) as usize;
        bytes.remove(i);
        hit = true;
    }
    if rng.below(one_in) == 0 {
        let i = rng.below(bytes.len() as u64 + 1) as usize;
        let garbage: Vec<u8> = (0..1 + rng.below(6)).map(|_| rng.next() as u8).collect();
        bytes.splice(i..i, garbage);
        hit = true;
    }
    if hit {
        *faults
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) += 1;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_on_the_line_and_a_board_reset_are_survived() {
    // host ⇄ pty A ⇄ relay (faults) ⇄ pty B ⇄ board
    let (host_master, _host_slave, host_path) = pty();
    let (board_master, board_slave, _) = pty();
    let board = board(3, 64);
    start_board(board_slave, &board);
    let faults = Arc::new(Mutex::new(0u64));
    let (mut host_r, mut host_w) = tokio::io::split(host_master);
    let (mut board_r, mut board_w) = tokio::io::split(board_master);
    let down_faults = faults.clone();
    tokio::spawn(async move {
        let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
        let mut buf = [0u8; 64];
        while let Ok(n @ 1..) = host_r.read(&mut buf).await {
            let mut bytes = buf[..n].to_vec();
            damage(&mut rng, &mut bytes, 16, &down_faults);
            if board_w.write_all(&bytes).await.is_err() {
                return;
            }
        }
    });
    let up_faults = faults.clone();
    tokio::spawn(async move {
        let mut rng = XorShift(0x2545_F491_4F6C_DD1D);
        let mut buf = [0u8; 64];
        while let Ok(n @ 1..) = board_r.read(&mut buf).await {
            let mut bytes = buf[..n].to_vec();
            damage(&mut rng, &mut bytes, 24, &up_faults);
            if host_w.write_all(&bytes).await.is_err() {
                return;
            }
        }
    });
    let (_task, mut displays) = spawn(
        PortConfig {
            path: host_path.into(),
            baud: BAUD,
        },
        &[3],
    );
    let display = &mut displays[0];
    let view = display.view();
    for seed in 1..=4 {
        let frame = picture(seed);
        let generation = shown(display, &frame).await;
        if seed == 3 {
            // A power cut while the third frame is on its way.
            let before = lock(&board).counts().bytes;
            wait_until(Duration::from_secs(3), "the transfer to begin", || {
                lock(&board).counts().bytes > before + 100
            })
            .await;
            lock(&board).reset(0);
            continue;
        }
        wait_until(
            Duration::from_secs(8),
            "the board to show the frame",
            || view.borrow().shown == Some(generation) && lock(&board).picture() == frame,
        )
        .await;
    }
    let counts = lock(&board).counts();
    let host = display.counters();
    assert!(
        *faults
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            > 5
    );
    assert!(
        counts.rx_errors > 0,
        "the board saw damaged frames: {counts:?}"
    );
    assert!(host.retries > 0, "the host retried: {host:?}");
    assert_eq!(lock(&board).picture(), picture(4));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_board_that_stops_answering_is_offline_then_current_again_when_it_answers() {
    // host ⇄ pty A ⇄ relay (a switch that cuts both directions) ⇄ pty B ⇄ board: the line
    // goes silent as a board does when its controller hangs or its cable is cut, then returns.
    let (host_master, _host_slave, host_path) = pty();
    let (board_master, board_slave, _) = pty();
    let board = board(4, 512);
    start_board(board_slave, &board);
    let cut = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (mut host_r, mut host_w) = tokio::io::split(host_master);
    let (mut board_r, mut board_w) = tokio::io::split(board_master);
    let down_cut = cut.clone();
    tokio::spawn(async move {
        let mut buf = [0u8; 256];
        while let Ok(n @ 1..) = host_r.read(&mut buf).await {
            if !down_cut.load(std::sync::atomic::Ordering::SeqCst)
                && board_w.write_all(&buf[..n]).await.is_err()
            {
                return;
            }
        }
    });
    let up_cut = cut.clone();
    tokio::spawn(async move {
        let mut buf = [0u8; 256];
        while let Ok(n @ 1..) = board_r.read(&mut buf).await {
            if !up_cut.load(std::sync::atomic::Ordering::SeqCst)
                && host_w.write_all(&buf[..n]).await.is_err()
            {
                return;
            }
        }
    });
    let (_task, mut displays) = spawn(
        PortConfig {
            path: host_path.into(),
            baud: BAUD,
        },
        &[4],
    );
    let display = &mut displays[0];
    let view = display.view();
    let first = picture(1);
    let generation = shown(display, &first).await;
    wait_until(Duration::from_secs(5), "the first frame", || {
        view.borrow().shown == Some(generation) && lock(&board).picture() == first
    })
    .await;

    // Silence: the host gives up on the board after its retries and says so.
    cut.store(true, std::sync::atomic::Ordering::SeqCst);
    let second = picture(2);
    let generation = shown(display, &second).await;
    wait_until(
        Duration::from_secs(5),
        "the board to be marked offline",
        || !view.borrow().online,
    )
    .await;
    let errors = display.counters().errors;
    assert!(errors > 0, "the failed exchanges are counted");
    assert_eq!(lock(&board).picture(), first, "nothing got through the cut");

    // It answers again: found by the next probe (1 s, then 2 s …), and given the newest frame.
    tokio::time::sleep(Duration::from_secs(2)).await;
    cut.store(false, std::sync::atomic::Ordering::SeqCst);
    let back = Instant::now();
    wait_until(
        Duration::from_secs(6),
        "the board to be current again",
        || {
            view.borrow().online
                && view.borrow().shown == Some(generation)
                && lock(&board).picture() == second
        },
    )
    .await;
    eprintln!("current again {:?} after the line returned", back.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unplugged_adapter_is_reopened_and_the_board_is_current_within_2_s() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let link_path = dir.path().join("usb-gongkai-test-if00");
    let (master, slave, name) = pty();
    std::os::unix::fs::symlink(&name, &link_path).expect("symlink");
    let board = board(3, 512);
    let serving = start_board(master, &board);
    let (_task, mut displays) = spawn(
        PortConfig {
            path: link_path.clone(),
            baud: BAUD,
        },
        &[3],
    );
    let display = &mut displays[0];
    let view = display.view();
    let first = picture(1);
    shown(display, &first).await;
    wait_until(Duration::from_secs(2), "the first frame", || {
        lock(&board).picture() == first
    })
    .await;

    // Unplug: the adapter's device disappears.
    serving.abort();
    let _ = serving.await;
    drop(slave);
    wait_until(Duration::from_secs(2), "the link to notice", || {
        !view.borrow().online
    })
    .await;
    let second = picture(2);
    shown(display, &second).await;

    // Replug: a new device, the same stable path.
    let (master, _slave, name) = pty();
    let fresh = dir.path().join("new-link");
    std::os::unix::fs::symlink(&name, &fresh).expect("symlink");
    std::fs::rename(&fresh, &link_path).expect("replace the symlink");
    let hellos = lock(&board).counts().hellos;
    let back = Instant::now();
    start_board(master, &board);
    wait_until(
        Duration::from_secs(2),
        "the board to be current again",
        || lock(&board).picture() == second,
    )
    .await;
    assert!(back.elapsed() < Duration::from_secs(2));
    assert!(lock(&board).counts().hellos > hellos, "HELLO comes first");
    assert_eq!(view.borrow().opens, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gongkai_emulate_shows_acknowledges_draws_and_counts() {
    // link ⇄ pty B ⇄ relay ⇄ pty A ⇄ `gongkai emulate`
    let (mut board_master, _board_slave, board_path) = pty();
    let (mut host_master, _host_slave, host_path) = pty();
    tokio::spawn(async move {
        let _ = tokio::io::copy_bidirectional(&mut board_master, &mut host_master).await;
    });
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = tempfile::tempdir().expect("a temporary directory");
    let shown_png = out.path().join(gongkai::cli::emulate::SHOWN_PNG);
    let baud = BAUD.to_string();
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_gongkai"))
        .args(["--site", root.to_str().expect("utf-8 path"), "emulate"])
        .args(["--port", &board_path, "--address", "5", "--baud", &baud])
        .arg("--profile")
        .arg(root.join("hw-profiles/strip-mono-128x16.yaml"))
        .arg("--out")
        .arg(out.path())
        .env_remove("LANGUAGE")
        .env_remove("LC_ALL")
        .env_remove("LC_MESSAGES")
        .env("LANG", "C")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run gongkai emulate");
    // The board draws its dark picture as soon as it listens.
    wait_until(Duration::from_secs(5), "the emulator to start", || {
        shown_png.exists()
    })
    .await;

    let (_task, mut displays) = spawn(
        PortConfig {
            path: host_path.into(),
            baud: BAUD,
        },
        &[5],
    );
    let frame = picture(3);
    let generation = shown(&mut displays[0], &frame).await;
    let view = displays[0].view();
    wait_until(
        Duration::from_secs(3),
        "the board's acknowledgement",
        || view.borrow().shown == Some(generation),
    )
    .await;
    let mut expected = Vec::new();
    let look = gongkai::preview::LedLook::default();
    gongkai::preview::write_png(&frame, &look, &mut expected).expect("png");
    wait_until(Duration::from_secs(3), "the picture", || {
        std::fs::read(&shown_png).is_ok_and(|png| png == expected)
    })
    .await;

    let pid = child.id().to_string();
    let killed = std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .expect("kill");
    assert!(killed.success());
    let output = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .expect("join")
        .expect("the emulator's output");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("Board 5 listening on"), "{stdout}");
    assert!(stdout.contains("1 frame(s) shown"), "{stdout}");
    assert!(stdout.contains(", 0 CRC error(s)"), "{stdout}");
}

/// Milliseconds on the clock the board was served with.
fn board_ms(epoch: Instant) -> u64 {
    epoch.elapsed().as_millis() as u64
}

/// The board's picture at this instant: ticks it first, so that what is compared is where the
/// board's own clock says the program is (not where its I/O loop last woke).
fn picture_now(board: &Arc<Mutex<Board>>, epoch: Instant) -> (u64, Frame) {
    let mut b = lock(board);
    let now = board_ms(epoch);
    b.tick(now);
    (now, b.picture())
}

fn scroll_strip() -> gongkai::raster::Strip {
    use gongkai::config::model::{BuiltinFont, Show, ShowMode, Zones};
    use gongkai::font::FontChain;
    use gongkai::layout::{Canvas, Content, layout};
    let mut fonts = FontChain::builtin(BuiltinFont::Wqy16);
    let canvas = Canvas {
        width: 128,
        height: 16,
        zones: Zones::default(),
    };
    let content = Content {
        title: "",
        body: "周一至周五上午九时至十二时",
        category: "其他",
        show: Show {
            mode: ShowMode::Scroll,
            ..Show::default()
        },
    };
    let laid = layout(&content, &canvas, &mut fonts).expect("the item lays out");
    let paint = gongkai::raster::Paint {
        format: PixelFormat::Mono,
        width: 128,
        height: 16,
        color: None,
        clock: None,
    };
    gongkai::raster::render_strip(&laid, &mut fonts, &paint)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_9600_baud_board_gets_a_scroll_program_once_and_plays_it_smoothly() {
    const SLOW: u32 = 9_600;
    const SPEED: f32 = 20.0; // px/s: a step every 50 ms
    let strip = scroll_strip();
    let program = Program::from_strip(&strip, SPEED, 0);
    let (master, _slave, path) = pty();
    let board = board(3, 512);
    let epoch = Instant::now();
    tokio::spawn(serve(master, board.clone(), SLOW, epoch, |_| {}));
    let (_task, mut displays) = spawn(
        PortConfig {
            path: path.into(),
            baud: SLOW,
        },
        &[3],
    );
    let display = &mut displays[0];
    let generation = display
        .program(&program, VALID)
        .await
        .expect("the link takes the program")
        .generation();
    let view = display.view();
    wait_until(
        Duration::from_secs(15),
        "the program's acknowledgement",
        || view.borrow().shown == Some(generation),
    )
    .await;
    assert!(
        view.borrow().caps.local_scroll,
        "INFO advertises local scrolling"
    );
    let (uploaded, started) = {
        let b = lock(&board);
        (
            b.counts().bytes,
            b.program_started_ms().expect("a program plays"),
        )
    };
    let pass = u64::from(strip.positions - 1);
    let mut last = None;
    for at in [120, 400, 730, 1_060, 1_500] {
        // Sampling instants on the board's clock, not waits for a condition: the assertion
        // below holds at any instant.
        tokio::time::sleep_until(epoch + Duration::from_millis(started + at)).await;
        let (now, picture) = picture_now(&board, epoch);
        let expected = (now - started) * 20 / 1_000 % pass;
        let matched = [expected.saturating_sub(1), expected, expected + 1]
            .into_iter()
            .find(|&o| strip.frame(o as u32) == picture);
        assert!(
            matched.is_some(),
            "at {} ms the board's frame is not Strip::frame({expected}) ± 1",
            now - started
        );
        assert_ne!(matched, last, "the strip moves");
        last = matched;
    }
    // Smooth: one picture per pixel step, at the board's own pace.
    let (v0, t0) = (lock(&board).picture_version(), board_ms(epoch));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (v1, t1) = (lock(&board).picture_version(), board_ms(epoch));
    let steps = v1 - v0;
    let expected = (t1 - t0) * 20 / 1_000;
    // A starved test machine may coalesce a few steps into one wake-up, never add any: the
    // board must step often (not jump once) and never faster than its speed.
    assert!(
        steps * 10 >= expected * 6 && steps <= expected + 2,
        "{steps} steps in {} ms; expected about {expected}",
        t1 - t0
    );
    // Sent once: while it plays, nothing but the odd heartbeat crosses the line.
    // A starved machine may delay an ACK past the host's timeout: the host then resends that
    // chunk (a retry, counted), which the board acknowledges as a duplicate. That is not a
    // second upload; anything beyond retried chunks and a heartbeat would be.
    let received = lock(&board).counts().bytes - uploaded;
    let retried_chunks = display.counters().retries * 1_100;
    assert!(
        received < 64 + retried_chunks,
        "{received} bytes after the upload; host {:?}, board {:?}",
        display.counters(),
        lock(&board).counts()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_program_switches_pages_at_their_dwell() {
    const DWELL: u64 = 300;
    let pages = vec![picture(1), picture(2), picture(3)];
    let program = Program::Pages {
        pages: pages.clone(),
        dwell: Duration::from_millis(DWELL),
    };
    let (master, _slave, path) = pty();
    let board = board(3, 512);
    let epoch = Instant::now();
    tokio::spawn(serve(master, board.clone(), BAUD, epoch, |_| {}));
    let (_task, mut displays) = spawn(
        PortConfig {
            path: path.into(),
            baud: BAUD,
        },
        &[3],
    );
    let generation = displays[0]
        .program(&program, VALID)
        .await
        .expect("the link takes the program")
        .generation();
    let view = displays[0].view();
    wait_until(
        Duration::from_secs(5),
        "the program's acknowledgement",
        || view.borrow().shown == Some(generation),
    )
    .await;
    let started = lock(&board).program_started_ms().expect("a program plays");
    // Mid-dwell of pages 0, 1, 2 and, looping, 0 again.
    for k in 0..4 {
        tokio::time::sleep_until(epoch + Duration::from_millis(started + k * DWELL + DWELL / 2))
            .await;
        let (now, picture) = picture_now(&board, epoch);
        let page = ((now - started) / DWELL % 3) as usize;
        assert_eq!(picture, pages[page], "page {page} at {} ms", now - started);
    }
    // And the I/O loop switches by itself, without the test's ticks.
    let next = {
        let (now, _) = picture_now(&board, epoch);
        ((now - started) / DWELL + 1) % 3
    };
    wait_until(Duration::from_millis(2 * DWELL), "the next page", || {
        lock(&board).picture() == pages[next as usize]
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tpm2_board_gets_every_picture_whole_again_each_second_and_black_when_dropped() {
    use gongkai::config::model::{ColorOrder, Corner, Wiring, WiringLayout};
    use gongkai::link::stream::{StreamConfig, StreamProtocol, spawn as spawn_stream};
    use gongkai::protocol::{pixels::frame_from_leds, tpm2};
    let (mut master, _slave, path) = pty();
    let wiring = Wiring {
        layout: WiringLayout::Serpentine,
        origin: Corner::TopLeft,
        order: ColorOrder::Grb,
    };
    let (task, mut display) = spawn_stream(StreamConfig {
        path: path.into(),
        baud: BAUD,
        protocol: StreamProtocol::Tpm2,
        wiring,
        width: 32,
        height: 8,
        brightness_max: 255,
    });
    let mut frame = Frame::new(32, 8, PixelFormat::Rgb888);
    for x in 0..32 {
        frame.set_pixel(x, x % 8, Rgb(255, (x * 8) as u8, 40));
    }
    display.show(&frame, VALID).await.expect("taken");
    // Read the stream for a little over two refresh periods.
    let mut bytes = Vec::new();
    let deadline = Instant::now() + Duration::from_millis(2_300);
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        if let Ok(Ok(n)) =
            tokio::time::timeout(Duration::from_millis(100), master.read(&mut buf)).await
        {
            bytes.extend_from_slice(&buf[..n]);
        }
    }
    let pictures: Vec<Frame> = tpm2::decode(&bytes)
        .into_iter()
        .filter(|b| b.kind == tpm2::TYPE_DATA)
        .map(|b| frame_from_leds(&b.data, 32, 8, &wiring))
        .collect();
    let ours = pictures.iter().filter(|p| **p == frame).count();
    // The picture itself, then again at each refresh (the board would fall back otherwise).
    assert!(ours >= 3, "{ours} of {} blocks", pictures.len());
    assert_eq!(pictures.last(), Some(&frame));
    assert!(display.counters().frames >= 3);

    // Dropped (the display left the site): a last black picture, and the task ends.
    drop(display);
    let mut tail = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline && !task.handle.is_finished() {
        if let Ok(Ok(n)) =
            tokio::time::timeout(Duration::from_millis(100), master.read(&mut buf)).await
        {
            tail.extend_from_slice(&buf[..n]);
        }
    }
    if let Ok(Ok(n)) = tokio::time::timeout(Duration::from_millis(200), master.read(&mut buf)).await
    {
        tail.extend_from_slice(&buf[..n]);
    }
    assert!(task.handle.is_finished(), "the port's task ends");
    let last = tpm2::decode(&tail)
        .into_iter()
        .rfind(|b| b.kind == tpm2::TYPE_DATA)
        .map(|b| frame_from_leds(&b.data, 32, 8, &wiring));
    assert_eq!(last, Some(Frame::new(32, 8, PixelFormat::Rgb888)));
}
