//! The serial link end to end: frames per second from `SerialDisplay::show` to the reference
//! board's acknowledgement, through a real pseudo-terminal pair, for a 192×64 mono board with
//! a 1 KiB buffer — at full pty speed (no pacing) and with the board reading at 115,200 and
//! 9,600 baud — and the bytes the link writes for typical page changes (RECT).
//!
//! The byte counts are printed before criterion runs; criterion's `thrpt` line is frames/s.
//! `docs/links.md` quotes both.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use gongkai::config::model::{PixelFormat, Rgb};
use gongkai::emulator::{Board, BoardConfig, serve};
use gongkai::link::Link;
use gongkai::link::serial::{PortConfig, SerialDisplay, spawn};
use gongkai::protocol::transfer::Geometry;
use gongkai::raster::frame::Frame;
use tokio_serial::{SerialPort, SerialStream};

const W: u32 = 192;
const H: u32 = 64;
const VALID: Duration = Duration::from_secs(600);
/// A pty has no baud rate: the board reads at this rate when "unpaced" (the host's port is
/// opened at 115,200, which on a pty only sets its reply timeouts).
const UNPACED: u32 = 1_000_000_000;

/// A deterministic stand-in for rendered hanzi (as `benches/protocol.rs`): 16 px cells, about
/// 40% lit inside a 14×14 glyph box, on `lines` text lines from `first_line`.
fn text_frame(seed: u64, first_line: u32, lines: u32, into: &mut Frame) {
    let mut state = seed | 1;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for line in first_line..first_line + lines {
        for x in 0..W {
            for y in 0..16 {
                let (cx, cy) = (x % 16, y);
                let lit = (1..15).contains(&cx) && (1..15).contains(&cy) && next() % 10 < 4;
                let colour = if lit {
                    Rgb(255, 255, 255)
                } else {
                    Rgb(0, 0, 0)
                };
                into.set_pixel(x, line * 16 + y, colour);
            }
        }
    }
}

fn page(seed: u64) -> Frame {
    let mut frame = Frame::new(W, H, PixelFormat::Mono);
    text_frame(1, 0, 1, &mut frame); // the title bar stays
    text_frame(seed, 1, 3, &mut frame);
    frame
}

/// A whole different picture each time, so the link sends a FRAME, never a RECT. (The
/// generator ORs 1 into its seed: odd seeds only, or two calls in a row draw the same.)
fn full_frame(seed: u64) -> Frame {
    let mut frame = Frame::new(W, H, PixelFormat::Mono);
    text_frame(seed * 2 + 1, 0, 4, &mut frame);
    frame
}

/// A link and a reference board on the two ends of a pty pair.
struct Rig {
    display: SerialDisplay,
    generation: u64,
    _task: gongkai::link::serial::PortTask,
}

impl Rig {
    async fn new(baud: u32) -> Rig {
        let (master, slave) = SerialStream::pair().expect("a pseudo-terminal pair");
        let path = slave.name().expect("the slave's device path");
        let config = BoardConfig {
            address: 1,
            geometry: Geometry {
                width: W,
                height: H,
                format: PixelFormat::Mono,
            },
            buffer: 1024,
            store: 65_536,
            brightness_max: 15,
            firmware: "bench".into(),
        };
        let board = Arc::new(Mutex::new(Board::new(config, 0)));
        tokio::spawn(serve(
            master,
            board,
            baud,
            tokio::time::Instant::now(),
            |_| {},
        ));
        // Keep the slave open: closing the last descriptor would hang up the pty.
        std::mem::forget(slave);
        let (task, mut displays) = spawn(
            PortConfig {
                path: path.into(),
                baud: baud.min(115_200),
            },
            &[1],
        );
        let display = displays.pop().expect("one display");
        Rig {
            display,
            generation: 0,
            _task: task,
        }
    }

    /// Shows `frame` and waits for the board's acknowledgement.
    async fn show(&mut self, frame: &Frame) {
        let generation = self
            .display
            .show(frame, VALID)
            .await
            .expect("the link takes the frame")
            .generation();
        self.generation = generation;
        let mut view = self.display.view();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while view.borrow_and_update().shown != Some(generation) {
            if tokio::time::timeout_at(deadline, view.changed())
                .await
                .is_err()
            {
                panic!("the board did not acknowledge frame {generation} within 30 s");
            }
        }
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

fn print_page_change_bytes(rt: &tokio::runtime::Runtime) {
    rt.block_on(async {
        let mut rig = Rig::new(UNPACED).await;
        let first = page(7);
        rig.show(&first).await;
        let mut clock = page(8);
        let mut line = page(8);
        text_frame(99, 3, 1, &mut line);
        // The clock: a few digits' cells in the title bar's right end.
        for x in 160..192 {
            for y in 2..14 {
                clock.set_pixel(x, y, Rgb(255 * u8::from((x + y) % 3 == 0), 0, 0));
            }
        }
        let mut before = rig.display.counters().bytes;
        println!("\nSerial link, 192x64 mono board (buffer 1,024): bytes the host writes");
        let full = before;
        println!("  first picture (FRAME): {full} bytes incl. HELLO");
        for (what, frame) in [
            ("next page (3 body lines; the title stays)", page(8)),
            ("one line of text", line),
            ("a 32x12 clock area in the title bar", clock),
        ] {
            rig.show(&frame).await;
            let now = rig.display.counters().bytes;
            println!("  {what}: {} bytes", now - before);
            before = now;
        }
    });
}

fn frames_per_second(c: &mut Criterion) {
    let rt = runtime();
    print_page_change_bytes(&rt);
    let mut group = c.benchmark_group("serial_link_192x64_mono_frame");
    group.throughput(Throughput::Elements(1));
    for (name, baud, samples, time) in [
        ("pty_unpaced", UNPACED, 30, 5),
        ("paced_115200", 115_200, 10, 5),
        ("paced_9600", 9_600, 10, 20),
    ] {
        let mut rig = rt.block_on(Rig::new(baud));
        let mut seed = 0;
        group.sampling_mode(SamplingMode::Flat);
        group.sample_size(samples);
        group.measurement_time(Duration::from_secs(time));
        group.warm_up_time(Duration::from_secs(1));
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let start = Instant::now();
                    for _ in 0..iters {
                        seed += 1;
                        rig.show(&full_frame(seed)).await;
                    }
                    start.elapsed()
                })
            })
        });
        let counters = rig.display.counters();
        println!(
            "  {name}: {} frames acknowledged, {:.0} bytes written per frame, {} retries",
            counters.frames,
            counters.bytes as f64 / counters.frames.max(1) as f64,
            counters.retries
        );
    }
    group.finish();
}

criterion_group!(benches, frames_per_second);
criterion_main!(benches);
