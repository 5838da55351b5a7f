//! gongkai's own board protocol: bytes on the wire for a 192×64 mono board (full frames per
//! board buffer size, page changes as RECT updates) and encode/decode throughput.
//!
//! The byte counts are printed before criterion runs, so `cargo bench --bench protocol`
//! shows the figures that docs/protocol.md quotes.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use gongkai::config::model::{PixelFormat, Rgb};
use gongkai::protocol::gongkai::{Decoder, Packet, Sequencer};
use gongkai::protocol::transfer::{Body, FrameBody, RectBody, packets};
use gongkai::raster::frame::Frame;
use std::hint::black_box;

const W: u32 = 192;
const H: u32 = 64;
const BUFFERS: [usize; 4] = [256, 512, 1024, 4096];

/// A deterministic stand-in for rendered hanzi: 16 px cells, about 40% lit inside a 14×14
/// glyph box, on `lines` text lines starting at `first_line`.
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

fn wire_len(body: &Body, buffer: usize) -> (usize, usize) {
    let mut seq = Sequencer::default();
    let sent = packets(&mut seq, 1, body, buffer).expect("bodies here fit 255 chunks");
    let bytes = sent.iter().map(|p| p.encode().map_or(0, |b| b.len())).sum();
    (sent.len(), bytes)
}

fn print_figures() {
    let raw = (W * H / 8) as usize;
    println!("\nFull 192x64 mono frame ({raw} pixel bytes) as FRAME, bytes on the wire:");
    println!(
        "| board buffer | chunks | text frame | overhead | all lit (COBS worst case) | overhead |"
    );
    println!("|---:|---:|---:|---:|---:|---:|");
    let text = page(7);
    let mut lit = Frame::new(W, H, PixelFormat::Mono);
    lit.data.fill(0xFF);
    for buffer in BUFFERS {
        let (chunks, text_bytes) =
            wire_len(&Body::Frame(FrameBody::from_frame(&text, 2, 300)), buffer);
        let (_, lit_bytes) = wire_len(&Body::Frame(FrameBody::from_frame(&lit, 2, 300)), buffer);
        let pct = |b: usize| (b as f64 - raw as f64) * 100.0 / raw as f64;
        println!(
            "| {buffer} | {chunks} | {text_bytes} | {:.2}% | {lit_bytes} | {:.2}% |",
            pct(text_bytes),
            pct(lit_bytes)
        );
    }

    println!("\nPage changes on a 192x64 mono board (buffer 1024), FRAME vs RECT:");
    println!("| change | rectangles | changed pixels' bytes | FRAME | RECT |");
    println!("|---|---:|---:|---:|---:|");
    let prev = page(7);
    let next_page = page(8);
    let mut one_line = prev.clone();
    text_frame(9, 3, 1, &mut one_line);
    let mut clock = prev.clone();
    for x in 152..190 {
        for y in 2..14 {
            let on = (x + y) % 3 == 0;
            clock.set_pixel(x, y, if on { Rgb(255, 255, 255) } else { Rgb(0, 0, 0) });
        }
    }
    for (name, next) in [
        ("next page (3 body lines)", &next_page),
        ("one line of text", &one_line),
        ("clock digits in the title bar", &clock),
    ] {
        let rect = RectBody::from_diff(&prev, next, 2, 3, 300).expect("same geometry");
        let pixel_bytes: usize = rect.rects.iter().map(|r| r.pixels.len()).sum();
        let rects = rect.rects.len();
        let (_, frame_bytes) = wire_len(&Body::Frame(FrameBody::from_frame(next, 3, 300)), 1024);
        let (_, rect_bytes) = wire_len(&Body::Rect(rect), 1024);
        println!("| {name} | {rects} | {pixel_bytes} | {frame_bytes} | {rect_bytes} |");
    }
    println!();
}

fn encode_and_decode(c: &mut Criterion) {
    print_figures();
    let frame = page(7);
    let body = Body::Frame(FrameBody::from_frame(&frame, 2, 300));
    let mut group = c.benchmark_group("gongkai_192x64_mono");
    group.throughput(Throughput::Bytes(frame.data.len() as u64));
    group.bench_function("encode_frame_buffer_1024", |b| {
        b.iter(|| {
            let mut seq = Sequencer::default();
            let mut out = Vec::with_capacity(1700);
            for p in packets(&mut seq, 1, black_box(&body), 1024).unwrap_or_default() {
                let _ = p.encode_into(&mut out);
            }
            out
        })
    });
    let mut seq = Sequencer::default();
    let wire: Vec<u8> = packets(&mut seq, 1, &body, 1024)
        .unwrap_or_default()
        .iter()
        .flat_map(|p: &Packet| p.encode().unwrap_or_default())
        .collect();
    group.bench_function("decode_frame_buffer_1024", |b| {
        b.iter(|| {
            let mut decoder = Decoder::new(1024);
            decoder.push(black_box(&wire)).len()
        })
    });
    let next = page(8);
    group.bench_function("diff_and_encode_rect_page_change", |b| {
        b.iter(|| {
            let rect = RectBody::from_diff(black_box(&frame), black_box(&next), 2, 3, 300);
            rect.map(|r| {
                let mut seq = Sequencer::default();
                packets(&mut seq, 1, &Body::Rect(r), 1024).map_or(0, |p| p.len())
            })
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30);
    targets = encode_and_decode
}
criterion_main!(benches);
