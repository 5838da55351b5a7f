//! Fuzz target `protocol_decoder`: hostile bytes off the line through everything a board does
//! with them — the incremental `Decoder`, then every decoded chunk into a `Reassembler` and
//! every completed (or single) body into the body parsers.
//!
//! Asserts: no panic, and bounded memory. The decoder's frame buffer is private, so the bound
//! is checked from outside with a counting allocator: while one input is processed, the bytes
//! live at once may not exceed what the decoder, the reassembler's `store` and the parsed
//! bodies (each no larger than its input) can legitimately hold.
//!
//! Input layout (the seeds in `fuzz/corpus/protocol_decoder/` are the worked examples of
//! docs/protocol.md §1.9 behind the two bytes `70 40`: a 512-byte buffer, 64-byte pieces):
//! byte 0 picks the decoder's `max_packet` (64 … 64 + 255 × 4) and byte 1 the
//! split points of the rest (so packets arrive across `push` calls, as they do from a port).
#![no_main]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use gongkai::config::model::PixelFormat;
use gongkai::protocol::gongkai::{Decoder, Message};
use gongkai::protocol::transfer::{Body, ChunkOutcome, Geometry, Reassembler};
use libfuzzer_sys::fuzz_target;

/// Counts live bytes and their peak, so the target can assert an upper bound.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let live = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(live, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
            let live = LIVE.fetch_add(new_size, Ordering::Relaxed) + new_size;
            PEAK.fetch_max(live, Ordering::Relaxed);
        }
        p
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// The reassembler's limit: small, so the fuzzer can reach TOO_LARGE.
const STORE: usize = 4096;

/// Boards of every pixel format, small enough that random bodies can be complete pictures.
const GEOMETRIES: [Geometry; 4] = [
    Geometry {
        width: 16,
        height: 2,
        format: PixelFormat::Mono,
    },
    Geometry {
        width: 32,
        height: 16,
        format: PixelFormat::Mono,
    },
    Geometry {
        width: 8,
        height: 4,
        format: PixelFormat::Bicolor,
    },
    Geometry {
        width: 4,
        height: 2,
        format: PixelFormat::Rgb888,
    },
];

fuzz_target!(|data: &[u8]| {
    let [size, split, rest @ ..] = data else {
        return;
    };
    let max_packet = 64 + usize::from(*size) * 4;
    let base = LIVE.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);

    let mut decoder = Decoder::new(max_packet);
    let mut reassembler = Reassembler::new(STORE);
    let step = usize::from(*split).max(1);
    let mut now_ms = 0u64;
    for piece in rest.chunks(step) {
        now_ms += 997; // crosses the reassembly timeout now and then
        for packet in decoder.push(piece).into_iter().flatten() {
            let Message::Chunk(chunk) = packet.message else {
                continue;
            };
            // A single chunk's data as a body, as if it were a whole transfer.
            for g in GEOMETRIES {
                let _ = Body::decode(chunk.kind, &chunk.data, g);
            }
            if let Ok(ChunkOutcome::Complete { kind, body }) = reassembler.push(chunk, now_ms) {
                assert!(
                    body.len() <= STORE,
                    "reassembled {} > store {STORE}",
                    body.len()
                );
                for g in GEOMETRIES {
                    if let Ok(decoded) = Body::decode(kind, &body, g) {
                        // Whatever decodes must encode again (the emulator and tests rely on it).
                        let _ = decoded.encode();
                    }
                }
            }
        }
        // Bounded memory: the decoder holds one frame (at most max_frame bytes, twice: stuffed
        // and unstuffed), the reassembler at most STORE bytes, and a body copy or a parsed
        // body is at most a small multiple of its bytes. Nothing may grow with the input.
        let bound = 4 * decoder.max_frame() + 4 * STORE + 64 * 1024;
        let used = PEAK.load(Ordering::Relaxed).saturating_sub(base);
        assert!(used <= bound, "{used} bytes live at once; bound {bound}");
    }
});
