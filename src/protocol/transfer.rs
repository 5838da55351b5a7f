//! gongkai's own protocol, body layer: what FRAME, RECT and PROGRAM carry, how a body is cut
//! into chunks that fit a board's buffer, and how a board puts them back together.
//!
//! Owns body bytes ⇄ [`Body`] and chunking. Does not own the packet header, CRC or stuffing
//! ([`super::gongkai`]), nor the pixel packing (`raster::frame`, reused as is). Pure: the
//! reassembler is given the time, it never reads a clock.

use super::gongkai::{
    BodyKind, CHUNK_OVERHEAD, Chunk, EncodeError, MIN_BUFFER, Message, NakReason, Packet,
    PayloadError, Reader, Sequencer, format_code, format_from_code,
};
use super::pixels::{copy_rect, packed_len, paste_rect, rect_fits};
use crate::config::model::PixelFormat;
use crate::raster::frame::{Frame, Rect};

/// A partial transfer with no new chunk for this long is dropped.
pub const REASSEMBLY_TIMEOUT_MS: u64 = 10_000;

/// The size and format of a board's picture, from its INFO.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    pub width: u32,
    pub height: u32,
    pub format: PixelFormat,
}

impl Geometry {
    fn frame_len(&self) -> usize {
        packed_len(self.width, self.height, self.format)
    }
}

/// A full picture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameBody {
    /// The host's id for what is shown (1–65535; 0 means nothing). HEARTBEAT names it.
    pub content: u16,
    /// Seconds from receipt until the board blanks or shows its idle logo (at least 1).
    pub valid_for: u16,
    pub format: PixelFormat,
    /// Packed as `raster::frame` packs a whole picture of the board's size.
    pub pixels: Vec<u8>,
}

/// Changed rectangles applied to the picture the board shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RectBody {
    /// The content the rectangles apply to; a board showing anything else answers NO_BASE.
    pub base: u16,
    /// The content id after the update.
    pub content: u16,
    pub valid_for: u16,
    pub format: PixelFormat,
    pub rects: Vec<RectPixels>,
}

/// One rectangle and its pixels, packed as a picture of the rectangle's size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RectPixels {
    pub rect: Rect,
    pub pixels: Vec<u8>,
}

/// Something the board plays by itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProgramBody {
    pub content: u16,
    pub valid_for: u16,
    pub format: PixelFormat,
    pub play: Play,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Play {
    /// Whole pictures shown in turn, each for `dwell_ms`, looping until replaced or expired.
    Pages { dwell_ms: u32, pages: Vec<Vec<u8>> },
    /// A strip moved through a window over a static background.
    Strip(Strip),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Strip {
    pub direction: Direction,
    /// Where the strip shows; inside the picture.
    pub window: Rect,
    /// Strip length along the direction of travel: its width for `Left`, its height for
    /// `Up`. Across, it is as wide or tall as the window.
    pub length: u16,
    /// Millipixels per second.
    pub speed_mpx: u32,
    /// Passes to play, then the window shows the background; 0 = loop until replaced or
    /// expired. One pass travels `length` plus the window's extent.
    pub passes: u16,
    /// A whole picture (the title bar, the clock, …).
    pub background: Vec<u8>,
    /// The strip, packed as a picture of `length` × window height (`Left`) or window width ×
    /// `length` (`Up`).
    pub pixels: Vec<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Enters at the right edge and leaves at the left (scroll mode).
    Left = 0,
    /// Enters at the bottom and leaves at the top (roll mode).
    Up = 1,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    Frame(FrameBody),
    Rect(RectBody),
    Program(ProgramBody),
}

/// Why a body cannot be encoded, or why received body bytes are not a valid body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    #[error("{0}")]
    Payload(#[from] PayloadError),
    #[error("pixel format {found:?}; the board shows {expected:?}")]
    Format {
        expected: PixelFormat,
        found: PixelFormat,
    },
    #[error("{found} bytes of pixels where {expected} are needed")]
    Pixels { expected: usize, found: usize },
    #[error("rectangle {0:?} is empty or outside the picture")]
    Outside(Rect),
    #[error("valid_for is 0: content must expire")]
    NoExpiry,
    #[error("{0} rectangles or pages; at most 255")]
    TooMany(usize),
    #[error("a program without pages")]
    NoPages,
}

impl BodyError {
    /// The NAK a board answers with.
    pub fn nak_reason(&self) -> NakReason {
        match self {
            BodyError::Format { .. } | BodyError::Pixels { .. } | BodyError::Outside(_) => {
                NakReason::Format
            }
            _ => NakReason::Payload,
        }
    }
}

fn put_rect(out: &mut Vec<u8>, r: &Rect) {
    for v in [r.x, r.y, r.width, r.height] {
        // Rects come from frames of at most 16384 px a side (validated profiles).
        out.extend_from_slice(&(v.min(u32::from(u16::MAX)) as u16).to_le_bytes());
    }
}

fn check_expiry(valid_for: u16) -> Result<(), BodyError> {
    if valid_for == 0 {
        Err(BodyError::NoExpiry)
    } else {
        Ok(())
    }
}

impl FrameBody {
    pub fn from_frame(frame: &Frame, content: u16, valid_for: u16) -> FrameBody {
        FrameBody {
            content,
            valid_for,
            format: frame.format,
            pixels: frame.data.clone(),
        }
    }

    /// The picture, for a board of `width` × `height`.
    pub fn to_frame(&self, width: u32, height: u32) -> Result<Frame, BodyError> {
        let expected = packed_len(width, height, self.format);
        if self.pixels.len() != expected {
            return Err(BodyError::Pixels {
                expected,
                found: self.pixels.len(),
            });
        }
        Ok(Frame {
            width,
            height,
            format: self.format,
            data: self.pixels.clone(),
        })
    }
}

impl RectBody {
    /// The update that turns `prev` into `next`, from [`Frame::diff`]. `None` when the
    /// frames differ in size or format, or need more than 255 rectangles: send a FRAME.
    pub fn from_diff(
        prev: &Frame,
        next: &Frame,
        base: u16,
        content: u16,
        valid_for: u16,
    ) -> Option<RectBody> {
        if (prev.width, prev.height, prev.format) != (next.width, next.height, next.format) {
            return None;
        }
        let rects = prev.diff(next);
        if rects.len() > 255 {
            return None;
        }
        Some(RectBody {
            base,
            content,
            valid_for,
            format: next.format,
            rects: rects
                .iter()
                .map(|rect| RectPixels {
                    rect: *rect,
                    pixels: copy_rect(next, rect),
                })
                .collect(),
        })
    }

    /// Paints the rectangles into `frame`, after checking all of them: a bad update
    /// leaves `frame` untouched.
    pub fn apply(&self, frame: &mut Frame) -> Result<(), BodyError> {
        if self.format != frame.format {
            return Err(BodyError::Format {
                expected: frame.format,
                found: self.format,
            });
        }
        for r in &self.rects {
            check_rect(r, frame.width, frame.height, frame.format)?;
        }
        for r in &self.rects {
            paste_rect(frame, &r.rect, &r.pixels);
        }
        Ok(())
    }
}

fn check_rect(
    r: &RectPixels,
    width: u32,
    height: u32,
    format: PixelFormat,
) -> Result<(), BodyError> {
    if !rect_fits(&r.rect, width, height) {
        return Err(BodyError::Outside(r.rect));
    }
    let expected = packed_len(r.rect.width, r.rect.height, format);
    if r.pixels.len() != expected {
        return Err(BodyError::Pixels {
            expected,
            found: r.pixels.len(),
        });
    }
    Ok(())
}

impl ProgramBody {
    /// Pages played locally, each for `dwell_ms`.
    pub fn pages(
        frames: &[Frame],
        dwell_ms: u32,
        content: u16,
        valid_for: u16,
    ) -> Result<ProgramBody, BodyError> {
        let first = frames.first().ok_or(BodyError::NoPages)?;
        Ok(ProgramBody {
            content,
            valid_for,
            format: first.format,
            play: Play::Pages {
                dwell_ms,
                pages: frames.iter().map(|f| f.data.clone()).collect(),
            },
        })
    }

    /// A strip scrolled (`Left`) or rolled (`Up`) through `window` at `speed` pixels per
    /// second over `background`.
    #[allow(clippy::too_many_arguments)]
    pub fn strip(
        background: &Frame,
        window: Rect,
        strip: &Frame,
        direction: Direction,
        speed: f32,
        passes: u16,
        content: u16,
        valid_for: u16,
    ) -> ProgramBody {
        let length = match direction {
            Direction::Left => strip.width,
            Direction::Up => strip.height,
        };
        ProgramBody {
            content,
            valid_for,
            format: background.format,
            play: Play::Strip(Strip {
                direction,
                window,
                length: length.min(u32::from(u16::MAX)) as u16,
                // Saturating float-to-int: a negative or NaN speed becomes 0.
                speed_mpx: (f64::from(speed) * 1000.0).round() as u32,
                passes,
                background: background.data.clone(),
                pixels: strip.data.clone(),
            }),
        }
    }
}

impl Body {
    pub fn kind(&self) -> BodyKind {
        match self {
            Body::Frame(_) => BodyKind::Frame,
            Body::Rect(_) => BodyKind::Rect,
            Body::Program(_) => BodyKind::Program,
        }
    }

    /// The body's bytes, before chunking.
    pub fn encode(&self) -> Result<Vec<u8>, BodyError> {
        let mut out = Vec::new();
        match self {
            Body::Frame(f) => {
                check_expiry(f.valid_for)?;
                out.reserve(5 + f.pixels.len());
                out.extend_from_slice(&f.content.to_le_bytes());
                out.extend_from_slice(&f.valid_for.to_le_bytes());
                out.push(format_code(f.format));
                out.extend_from_slice(&f.pixels);
            }
            Body::Rect(r) => {
                check_expiry(r.valid_for)?;
                let count =
                    u8::try_from(r.rects.len()).map_err(|_| BodyError::TooMany(r.rects.len()))?;
                out.extend_from_slice(&r.base.to_le_bytes());
                out.extend_from_slice(&r.content.to_le_bytes());
                out.extend_from_slice(&r.valid_for.to_le_bytes());
                out.push(format_code(r.format));
                out.push(count);
                for rp in &r.rects {
                    put_rect(&mut out, &rp.rect);
                    out.extend_from_slice(&rp.pixels);
                }
            }
            Body::Program(p) => {
                check_expiry(p.valid_for)?;
                out.extend_from_slice(&p.content.to_le_bytes());
                out.extend_from_slice(&p.valid_for.to_le_bytes());
                out.push(format_code(p.format));
                match &p.play {
                    Play::Pages { dwell_ms, pages } => {
                        if pages.is_empty() {
                            return Err(BodyError::NoPages);
                        }
                        let count = u8::try_from(pages.len())
                            .map_err(|_| BodyError::TooMany(pages.len()))?;
                        out.push(0);
                        out.extend_from_slice(&dwell_ms.to_le_bytes());
                        out.push(count);
                        for page in pages {
                            out.extend_from_slice(page);
                        }
                    }
                    Play::Strip(s) => {
                        out.push(1);
                        out.push(s.direction as u8);
                        put_rect(&mut out, &s.window);
                        out.extend_from_slice(&s.length.to_le_bytes());
                        out.extend_from_slice(&s.speed_mpx.to_le_bytes());
                        out.extend_from_slice(&s.passes.to_le_bytes());
                        out.extend_from_slice(&s.background);
                        out.extend_from_slice(&s.pixels);
                    }
                }
            }
        }
        Ok(out)
    }

    /// Parses reassembled body bytes for a board of `geometry`. Every length is checked
    /// against the geometry before anything is copied, so hostile bytes cannot make it
    /// allocate more than `bytes` holds.
    pub fn decode(kind: BodyKind, bytes: &[u8], geometry: Geometry) -> Result<Body, BodyError> {
        let mut r = Reader { bytes };
        let format_of = |code: u8| -> Result<PixelFormat, BodyError> {
            let found = format_from_code(code).ok_or(PayloadError::Value("format"))?;
            if found != geometry.format {
                return Err(BodyError::Format {
                    expected: geometry.format,
                    found,
                });
            }
            Ok(found)
        };
        let body = match kind {
            BodyKind::Frame => {
                let content = r.u16()?;
                let valid_for = r.u16()?;
                let format = format_of(r.u8()?)?;
                check_expiry(valid_for)?;
                let pixels = r.pixels(geometry.frame_len())?;
                Body::Frame(FrameBody {
                    content,
                    valid_for,
                    format,
                    pixels,
                })
            }
            BodyKind::Rect => {
                let base = r.u16()?;
                let content = r.u16()?;
                let valid_for = r.u16()?;
                let format = format_of(r.u8()?)?;
                check_expiry(valid_for)?;
                let count = r.u8()?;
                let mut rects = Vec::with_capacity(usize::from(count));
                for _ in 0..count {
                    let rect = r.rect()?;
                    if !rect_fits(&rect, geometry.width, geometry.height) {
                        return Err(BodyError::Outside(rect));
                    }
                    let pixels = r
                        .take(packed_len(rect.width, rect.height, format))?
                        .to_vec();
                    rects.push(RectPixels { rect, pixels });
                }
                r.end()?;
                Body::Rect(RectBody {
                    base,
                    content,
                    valid_for,
                    format,
                    rects,
                })
            }
            BodyKind::Program => {
                let content = r.u16()?;
                let valid_for = r.u16()?;
                let format = format_of(r.u8()?)?;
                check_expiry(valid_for)?;
                let play = match r.u8()? {
                    0 => {
                        let dwell_ms = r.u32()?;
                        let count = usize::from(r.u8()?);
                        if count == 0 {
                            return Err(BodyError::NoPages);
                        }
                        let expected = count * geometry.frame_len();
                        if r.bytes.len() != expected {
                            return Err(BodyError::Pixels {
                                expected,
                                found: r.bytes.len(),
                            });
                        }
                        let pages = r
                            .bytes
                            .chunks(geometry.frame_len().max(1))
                            .take(count)
                            .map(<[u8]>::to_vec)
                            .collect();
                        Play::Pages { dwell_ms, pages }
                    }
                    1 => {
                        let direction = match r.u8()? {
                            0 => Direction::Left,
                            1 => Direction::Up,
                            _ => return Err(PayloadError::Value("direction").into()),
                        };
                        let window = r.rect()?;
                        if !rect_fits(&window, geometry.width, geometry.height) {
                            return Err(BodyError::Outside(window));
                        }
                        let length = r.u16()?;
                        let speed_mpx = r.u32()?;
                        let passes = r.u16()?;
                        let background = r.take(geometry.frame_len())?.to_vec();
                        let strip_len = match direction {
                            Direction::Left => packed_len(u32::from(length), window.height, format),
                            Direction::Up => packed_len(window.width, u32::from(length), format),
                        };
                        let pixels = r.pixels(strip_len)?;
                        Play::Strip(Strip {
                            direction,
                            window,
                            length,
                            speed_mpx,
                            passes,
                            background,
                            pixels,
                        })
                    }
                    _ => return Err(PayloadError::Value("play").into()),
                };
                Body::Program(ProgramBody {
                    content,
                    valid_for,
                    format,
                    play,
                })
            }
        };
        Ok(body)
    }
}

/// Body reading on top of the packet reader: rectangles and pixel runs.
trait BodyReader {
    fn rect(&mut self) -> Result<Rect, PayloadError>;
    fn pixels(&mut self, expected: usize) -> Result<Vec<u8>, BodyError>;
}

impl BodyReader for Reader<'_> {
    fn rect(&mut self) -> Result<Rect, PayloadError> {
        Ok(Rect {
            x: u32::from(self.u16()?),
            y: u32::from(self.u16()?),
            width: u32::from(self.u16()?),
            height: u32::from(self.u16()?),
        })
    }
    /// Exactly the `expected` remaining bytes.
    fn pixels(&mut self, expected: usize) -> Result<Vec<u8>, BodyError> {
        if self.bytes.len() != expected {
            return Err(BodyError::Pixels {
                expected,
                found: self.bytes.len(),
            });
        }
        Ok(std::mem::take(&mut self.bytes).to_vec())
    }
}

/// Data bytes per chunk for a board whose packets hold `buffer` bytes.
pub fn chunk_capacity(buffer: usize) -> Result<usize, EncodeError> {
    if buffer < MIN_BUFFER {
        return Err(EncodeError::BufferTooSmall(buffer));
    }
    Ok(buffer - CHUNK_OVERHEAD)
}

/// Cuts body bytes into chunks for a board whose packets hold `buffer` bytes. Every chunk
/// but the last is full; an empty body is one empty chunk.
pub fn split(
    kind: BodyKind,
    xfer: u8,
    body: &[u8],
    buffer: usize,
) -> Result<Vec<Chunk>, EncodeError> {
    let per_chunk = chunk_capacity(buffer)?;
    let count = body.len().div_ceil(per_chunk).max(1);
    let count = u8::try_from(count).map_err(|_| EncodeError::TooManyChunks {
        len: body.len(),
        per_chunk,
    })?;
    if body.is_empty() {
        return Ok(vec![Chunk {
            kind,
            xfer,
            index: 0,
            count: 1,
            data: Vec::new(),
        }]);
    }
    Ok(body
        .chunks(per_chunk)
        .enumerate()
        .map(|(index, data)| Chunk {
            kind,
            xfer,
            index: index as u8,
            count,
            data: data.to_vec(),
        })
        .collect())
}

/// The packets that carry `body` to board `dst`, each a request with its own sequence
/// number, to be sent in order, each after the previous one was acknowledged.
pub fn packets(
    seq: &mut Sequencer,
    dst: u8,
    body: &Body,
    buffer: usize,
) -> Result<Vec<Packet>, EncodeError> {
    let bytes = body.encode()?;
    let xfer = seq.next_xfer();
    Ok(split(body.kind(), xfer, &bytes, buffer)?
        .into_iter()
        .map(|chunk| seq.request(dst, Message::Chunk(chunk)))
        .collect())
}

/// What a chunk did to the transfer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChunkOutcome {
    /// Stored; more are needed. Answer ACK.
    Stored,
    /// Already held (a retry after a lost ACK). Answer ACK again.
    Duplicate,
    /// The last chunk came but these are missing, first one named. Answer
    /// NAK(MISSING, first); the host resends from there.
    Missing { first: u8 },
    /// The body is whole. Decode and apply it, then answer ACK (or the decode error's NAK).
    Complete { kind: BodyKind, body: Vec<u8> },
}

/// Why a chunk ended its transfer. The transfer is dropped; the host starts a new one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReassemblyError {
    #[error("the body would exceed the store of {limit} bytes")]
    TooLarge { limit: usize },
    #[error("chunks before the last differ in length")]
    Uneven,
    #[error("chunk index {index} is not below the count {count}")]
    BadIndex { index: u8, count: u8 },
}

impl ReassemblyError {
    pub fn nak_reason(&self) -> NakReason {
        match self {
            ReassemblyError::TooLarge { .. } => NakReason::TooLarge,
            ReassemblyError::Uneven | ReassemblyError::BadIndex { .. } => NakReason::Payload,
        }
    }
}

#[derive(Debug)]
struct Partial {
    kind: BodyKind,
    xfer: u8,
    chunks: Vec<Option<Vec<u8>>>,
    held: usize,
    last_ms: u64,
}

/// A board's reassembly of one transfer at a time. Holds at most `store` bytes of chunk
/// data; chunks may come in any order and more than once.
#[derive(Debug)]
pub struct Reassembler {
    store: usize,
    partial: Option<Partial>,
    /// The last completed transfer, so that a late duplicate of its chunks is acknowledged
    /// instead of starting a transfer that could never complete.
    completed: Option<(BodyKind, u8, u8)>,
}

impl Reassembler {
    pub fn new(store: usize) -> Reassembler {
        Reassembler {
            store,
            partial: None,
            completed: None,
        }
    }

    /// Takes one chunk received at `now_ms` (any monotonic clock in milliseconds).
    pub fn push(&mut self, chunk: Chunk, now_ms: u64) -> Result<ChunkOutcome, ReassemblyError> {
        if chunk.count == 0 || chunk.index >= chunk.count {
            return Err(ReassemblyError::BadIndex {
                index: chunk.index,
                count: chunk.count,
            });
        }
        if self
            .partial
            .as_ref()
            .is_some_and(|p| now_ms.saturating_sub(p.last_ms) > REASSEMBLY_TIMEOUT_MS)
        {
            self.partial = None;
        }
        let key = (chunk.kind, chunk.xfer, chunk.count);
        if self.completed == Some(key) {
            return Ok(ChunkOutcome::Duplicate);
        }
        let same = self
            .partial
            .as_ref()
            .is_some_and(|p| (p.kind, p.xfer, p.chunks.len() as u8) == key);
        if !same {
            // A new transfer replaces an unfinished one: the host has given up on it.
            self.completed = None;
            self.partial = Some(Partial {
                kind: chunk.kind,
                xfer: chunk.xfer,
                chunks: vec![None; usize::from(chunk.count)],
                held: 0,
                last_ms: now_ms,
            });
        }
        let Some(partial) = self.partial.as_mut() else {
            return Ok(ChunkOutcome::Stored);
        };
        partial.last_ms = now_ms;
        let index = usize::from(chunk.index);
        let last = partial.chunks.len() - 1;
        if let Some(Some(_)) = partial.chunks.get(index) {
            return Ok(ChunkOutcome::Duplicate);
        }
        if partial.held + chunk.data.len() > self.store {
            self.partial = None;
            return Err(ReassemblyError::TooLarge { limit: self.store });
        }
        // Every chunk but the last has the same length, so a board can place a chunk at
        // index × length as soon as it knows the length.
        let full_len = partial.chunks[..last].iter().flatten().map(Vec::len).next();
        let uneven = match (index == last, full_len) {
            (false, Some(len)) => chunk.data.len() != len,
            (true, Some(len)) => chunk.data.len() > len,
            (false, None) => partial.chunks[last]
                .as_ref()
                .is_some_and(|l| l.len() > chunk.data.len()),
            (true, None) => false,
        };
        if uneven {
            self.partial = None;
            return Err(ReassemblyError::Uneven);
        }
        partial.held += chunk.data.len();
        partial.chunks[index] = Some(chunk.data);
        if let Some(first) = partial.chunks.iter().position(Option::is_none) {
            return Ok(if index == last {
                ChunkOutcome::Missing { first: first as u8 }
            } else {
                ChunkOutcome::Stored
            });
        }
        let kind = partial.kind;
        let mut body = Vec::with_capacity(partial.held);
        for data in partial.chunks.iter().flatten() {
            body.extend_from_slice(data);
        }
        self.partial = None;
        self.completed = Some(key);
        Ok(ChunkOutcome::Complete { kind, body })
    }

    /// Forgets everything, as a board does at reset.
    pub fn reset(&mut self) {
        self.partial = None;
        self.completed = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::model::Rgb;
    use crate::protocol::gongkai::{Decoder, HOST};

    fn hex(s: &str) -> Vec<u8> {
        s.split_whitespace()
            .map(|b| u8::from_str_radix(b, 16).unwrap())
            .collect()
    }

    const MONO_32X16: Geometry = Geometry {
        width: 32,
        height: 16,
        format: PixelFormat::Mono,
    };

    fn diagonal() -> Frame {
        let mut g = Frame::new(32, 16, PixelFormat::Mono);
        for i in 0..16 {
            g.set_pixel(i * 2, i, Rgb(255, 255, 255));
        }
        g
    }

    /// The FRAME, chunked FRAME and RECT examples of docs/protocol.md.
    #[test]
    fn worked_body_examples_of_the_spec() {
        let mut seq = Sequencer::default();
        seq.request(3, Message::Hello);
        seq.request(3, Message::Hello);
        // A 16×2 mono board: top row lit, one pixel below; one chunk.
        let mut small = Frame::new(16, 2, PixelFormat::Mono);
        for x in 0..16 {
            small.set_pixel(x, 0, Rgb(255, 255, 255));
        }
        small.set_pixel(0, 1, Rgb(255, 255, 255));
        let body = Body::Frame(FrameBody::from_frame(&small, 7, 300));
        assert_eq!(body.encode().unwrap(), hex("07 00 2C 01 00 FF FF 80 00"));
        let wire: Vec<Vec<u8>> = packets(&mut seq, 3, &body, 64)
            .unwrap()
            .iter()
            .map(|p| p.encode().unwrap())
            .collect();
        assert_eq!(
            wire,
            [hex(
                "00 03 01 03 04 03 02 01 03 01 07 03 2C 01 04 FF FF 80 05 FF 18 78 4D 00"
            )]
        );

        // A 32×16 board with a 64-byte buffer: 69 body bytes in chunks of 52 and 17.
        let body = Body::Frame(FrameBody::from_frame(&diagonal(), 8, 300));
        let sent = packets(&mut seq, 3, &body, 64).unwrap();
        assert_eq!(sent.len(), 2);
        assert_eq!(sent[0].size().unwrap(), 64);
        assert_eq!(
            sent[1].encode().unwrap(),
            hex(
                "00 03 01 03 06 05 02 02 01 02 01 01 01 02 80 01 01 02 20 01 01 02 08 01 01 06 02 \
                 3A 8D 9E D4 00"
            )
        );

        // One pixel changes: a RECT of one 8×8 tile.
        let mut next = diagonal();
        next.set_pixel(9, 3, Rgb(255, 255, 255));
        let rect = RectBody::from_diff(&diagonal(), &next, 8, 9, 300).unwrap();
        let body = Body::Rect(rect);
        assert_eq!(
            body.encode().unwrap(),
            hex("08 00 09 00 2C 01 00 01 08 00 00 00 08 00 08 00 00 00 00 40 80 20 08 02")
        );
        let sent = packets(&mut seq, 3, &body, 64).unwrap();
        assert_eq!(
            sent[0].encode().unwrap(),
            hex(
                "00 03 01 03 04 06 03 03 03 01 08 02 09 03 2C 01 03 01 08 01 01 02 08 02 08 01 \
                 01 01 0A 40 80 20 08 02 E8 F4 C9 94 00"
            )
        );
    }

    /// Encode, chunk, send through the decoder and the reassembler, decode.
    fn through_the_wire(body: &Body, geometry: Geometry, buffer: usize) -> Body {
        let mut seq = Sequencer::default();
        let mut decoder = Decoder::new(buffer);
        let mut reassembler = Reassembler::new(1 << 20);
        let mut done = None;
        for packet in packets(&mut seq, 9, body, buffer).unwrap() {
            assert!(packet.size().unwrap() <= buffer);
            let bytes = packet.encode().unwrap();
            for result in decoder.push(&bytes) {
                let Message::Chunk(chunk) = result.unwrap().message else {
                    panic!("not a chunk")
                };
                if let ChunkOutcome::Complete { kind, body } = reassembler.push(chunk, 0).unwrap() {
                    done = Some(Body::decode(kind, &body, geometry).unwrap());
                }
            }
        }
        done.unwrap()
    }

    #[test]
    fn every_body_round_trips_through_chunks() {
        let geometry = Geometry {
            width: 40,
            height: 24,
            format: PixelFormat::Rgb565,
        };
        let mut a = Frame::new(40, 24, PixelFormat::Rgb565);
        let mut b = a.clone();
        for i in 0..40 {
            a.set_pixel(i, i % 24, Rgb(200, 6 * (i as u8), 7));
            b.set_pixel(39 - i, i % 24, Rgb(1, 2, 255));
        }
        let frame = Body::Frame(FrameBody::from_frame(&a, 1, 60));
        let rect = Body::Rect(RectBody::from_diff(&a, &b, 1, 2, 60).unwrap());
        let pages =
            Body::Program(ProgramBody::pages(&[a.clone(), b.clone()], 8000, 3, 600).unwrap());
        let strip_frame = Frame::new(300, 16, PixelFormat::Rgb565);
        let window = Rect {
            x: 0,
            y: 8,
            width: 40,
            height: 16,
        };
        let left = Body::Program(ProgramBody::strip(
            &a,
            window,
            &strip_frame,
            Direction::Left,
            32.5,
            3,
            4,
            600,
        ));
        let roll_frame = Frame::new(40, 90, PixelFormat::Rgb565);
        let up = Body::Program(ProgramBody::strip(
            &b,
            window,
            &roll_frame,
            Direction::Up,
            12.0,
            0,
            5,
            600,
        ));
        for body in [frame, rect, pages, left, up] {
            for buffer in [64, 256, 1024, 65535] {
                assert_eq!(
                    through_the_wire(&body, geometry, buffer),
                    body,
                    "buffer {buffer}"
                );
            }
        }
    }

    #[test]
    fn rect_updates_turn_the_old_frame_into_the_new() {
        let prev = diagonal();
        let mut next = diagonal();
        next.set_pixel(31, 15, Rgb(255, 255, 255));
        next.set_pixel(0, 0, Rgb(0, 0, 0));
        let update = RectBody::from_diff(&prev, &next, 1, 2, 30).unwrap();
        assert_eq!(update.rects.len(), 2);
        let Body::Rect(update) = through_the_wire(&Body::Rect(update), MONO_32X16, 64) else {
            panic!("not a rect")
        };
        let mut shown = prev.clone();
        update.apply(&mut shown).unwrap();
        assert_eq!(shown, next);
        // Frames of different size cannot be diffed into rectangles.
        assert!(
            RectBody::from_diff(&prev, &Frame::new(8, 8, PixelFormat::Mono), 1, 2, 30).is_none()
        );
        // A wrong-format update leaves the picture alone.
        let mut colour = Frame::new(32, 16, PixelFormat::Rgb888);
        assert!(matches!(
            update.apply(&mut colour),
            Err(BodyError::Format { .. })
        ));
        assert_eq!(colour, Frame::new(32, 16, PixelFormat::Rgb888));
    }

    #[test]
    fn bodies_that_do_not_fit_the_board_are_refused() {
        let frame = |content, valid_for, format| {
            Body::Frame(FrameBody::from_frame(
                &Frame::new(32, 16, format),
                content,
                valid_for,
            ))
        };
        assert_eq!(
            frame(1, 0, PixelFormat::Mono).encode(),
            Err(BodyError::NoExpiry)
        );
        let bytes = |body: Body| body.encode().unwrap();
        let mono = bytes(frame(1, 10, PixelFormat::Mono));
        assert!(Body::decode(BodyKind::Frame, &mono, MONO_32X16).is_ok());
        let colour = bytes(frame(1, 10, PixelFormat::Rgb888));
        let err = Body::decode(BodyKind::Frame, &colour, MONO_32X16).unwrap_err();
        assert!(matches!(err, BodyError::Format { .. }));
        assert_eq!(err.nak_reason(), NakReason::Format);
        let err = Body::decode(BodyKind::Frame, &mono[..mono.len() - 1], MONO_32X16).unwrap_err();
        assert_eq!(
            err,
            BodyError::Pixels {
                expected: 64,
                found: 63
            }
        );
        let mut zero = mono.clone();
        zero[2] = 0;
        zero[3] = 0;
        assert_eq!(
            Body::decode(BodyKind::Frame, &zero, MONO_32X16),
            Err(BodyError::NoExpiry)
        );
        // A rectangle outside the board.
        let rect = RectBody {
            base: 1,
            content: 2,
            valid_for: 5,
            format: PixelFormat::Mono,
            rects: vec![RectPixels {
                rect: Rect {
                    x: 30,
                    y: 0,
                    width: 8,
                    height: 1,
                },
                pixels: vec![0xFF],
            }],
        };
        let encoded = Body::Rect(rect).encode().unwrap();
        assert!(matches!(
            Body::decode(BodyKind::Rect, &encoded, MONO_32X16),
            Err(BodyError::Outside(_))
        ));
        assert_eq!(ProgramBody::pages(&[], 1000, 1, 1), Err(BodyError::NoPages));
    }

    #[test]
    fn random_body_bytes_never_panic() {
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        for len in 0..600 {
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    (state >> 40) as u8 % 4
                })
                .collect();
            for kind in [BodyKind::Frame, BodyKind::Rect, BodyKind::Program] {
                let _ = Body::decode(kind, &bytes, MONO_32X16);
            }
        }
    }

    fn chunks_of(len: usize, buffer: usize, xfer: u8) -> Vec<Chunk> {
        let body: Vec<u8> = (0..len).map(|i| i as u8).collect();
        split(BodyKind::Frame, xfer, &body, buffer).unwrap()
    }

    fn complete(outcome: ChunkOutcome) -> Vec<u8> {
        match outcome {
            ChunkOutcome::Complete { body, .. } => body,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn split_sizes() {
        let c = chunks_of(200, 64, 1);
        assert_eq!(c.len(), 4);
        assert!(c.iter().all(|c| c.count == 4));
        assert_eq!(
            c.iter().map(|c| c.data.len()).collect::<Vec<_>>(),
            [52, 52, 52, 44]
        );
        assert_eq!(chunks_of(0, 64, 1).len(), 1);
        assert_eq!(
            split(BodyKind::Frame, 1, &[], 63),
            Err(EncodeError::BufferTooSmall(63))
        );
        assert!(matches!(
            split(BodyKind::Frame, 1, &vec![0; 52 * 255 + 1], 64),
            Err(EncodeError::TooManyChunks { .. })
        ));
        assert_eq!(chunks_of(52 * 255, 64, 1).len(), 255);
    }

    #[test]
    fn reassembly_in_order_out_of_order_and_with_duplicates() {
        let expected: Vec<u8> = (0..200).map(|i| i as u8).collect();
        let chunks = chunks_of(200, 64, 1);

        let mut r = Reassembler::new(4096);
        for c in &chunks[..3] {
            assert_eq!(r.push(c.clone(), 0), Ok(ChunkOutcome::Stored));
        }
        assert_eq!(complete(r.push(chunks[3].clone(), 0).unwrap()), expected);
        // A late copy of a chunk of the finished transfer is acknowledged, not a new start.
        assert_eq!(r.push(chunks[3].clone(), 0), Ok(ChunkOutcome::Duplicate));
        assert_eq!(r.push(chunks[0].clone(), 0), Ok(ChunkOutcome::Duplicate));

        // Reverse order: the last chunk first reports what is missing.
        let chunks = chunks_of(200, 64, 2);
        let mut r = Reassembler::new(4096);
        assert_eq!(
            r.push(chunks[3].clone(), 0),
            Ok(ChunkOutcome::Missing { first: 0 })
        );
        assert_eq!(r.push(chunks[2].clone(), 0), Ok(ChunkOutcome::Stored));
        assert_eq!(r.push(chunks[2].clone(), 0), Ok(ChunkOutcome::Duplicate));
        assert_eq!(r.push(chunks[1].clone(), 0), Ok(ChunkOutcome::Stored));
        assert_eq!(complete(r.push(chunks[0].clone(), 0).unwrap()), expected);

        // A lost chunk: the last one names it, the host resends from there.
        let chunks = chunks_of(200, 64, 3);
        let mut r = Reassembler::new(4096);
        r.push(chunks[0].clone(), 0).unwrap();
        r.push(chunks[2].clone(), 0).unwrap();
        assert_eq!(
            r.push(chunks[3].clone(), 0),
            Ok(ChunkOutcome::Missing { first: 1 })
        );
        assert_eq!(complete(r.push(chunks[1].clone(), 0).unwrap()), expected);
    }

    #[test]
    fn reassembly_after_a_board_reset_mid_transfer() {
        let expected: Vec<u8> = (0..200).map(|i| i as u8).collect();
        let chunks = chunks_of(200, 64, 4);
        let mut r = Reassembler::new(4096);
        r.push(chunks[0].clone(), 0).unwrap();
        r.push(chunks[1].clone(), 0).unwrap();
        r.reset();
        r.push(chunks[2].clone(), 0).unwrap();
        assert_eq!(
            r.push(chunks[3].clone(), 0),
            Ok(ChunkOutcome::Missing { first: 0 })
        );
        r.push(chunks[0].clone(), 0).unwrap();
        assert_eq!(complete(r.push(chunks[1].clone(), 0).unwrap()), expected);
    }

    #[test]
    fn a_new_transfer_or_a_long_pause_drops_the_partial_one() {
        let old = chunks_of(200, 64, 5);
        let new = chunks_of(100, 64, 6);
        let mut r = Reassembler::new(4096);
        r.push(old[0].clone(), 0).unwrap();
        r.push(new[0].clone(), 10).unwrap();
        // The old transfer's chunks now start it afresh and cannot complete the new one.
        assert_eq!(r.push(old[1].clone(), 20), Ok(ChunkOutcome::Stored));
        assert_eq!(
            r.push(old[3].clone(), 30),
            Ok(ChunkOutcome::Missing { first: 0 })
        );

        let mut r = Reassembler::new(4096);
        r.push(old[0].clone(), 0).unwrap();
        r.push(old[1].clone(), 1_000).unwrap();
        r.push(old[2].clone(), 1_000 + REASSEMBLY_TIMEOUT_MS + 1)
            .unwrap();
        assert_eq!(
            r.push(old[3].clone(), 1_000 + REASSEMBLY_TIMEOUT_MS + 2),
            Ok(ChunkOutcome::Missing { first: 0 })
        );
    }

    #[test]
    fn reassembly_limits() {
        let chunks = chunks_of(200, 64, 7);
        let mut r = Reassembler::new(120);
        r.push(chunks[0].clone(), 0).unwrap();
        r.push(chunks[1].clone(), 0).unwrap();
        assert_eq!(
            r.push(chunks[2].clone(), 0),
            Err(ReassemblyError::TooLarge { limit: 120 })
        );
        assert_eq!(
            ReassemblyError::TooLarge { limit: 120 }.nak_reason(),
            NakReason::TooLarge
        );

        let mut r = Reassembler::new(4096);
        let mut uneven = chunks.clone();
        uneven[1].data.pop();
        r.push(uneven[0].clone(), 0).unwrap();
        assert_eq!(r.push(uneven[1].clone(), 0), Err(ReassemblyError::Uneven));
        let mut bad = chunks[0].clone();
        bad.index = 9;
        assert!(matches!(
            r.push(bad, 0),
            Err(ReassemblyError::BadIndex { .. })
        ));
    }

    /// The benchmark's promise, checked on every test run: a full 192×64 mono frame costs at
    /// most 3% over its 1,536 pixel bytes on boards with at least 1 KiB of buffer, even when
    /// no byte is zero (COBS's worst case).
    #[test]
    fn overhead_of_a_full_192x64_mono_frame() {
        for fill in [0x00u8, 0xFF, 0x5A] {
            let mut frame = Frame::new(192, 64, PixelFormat::Mono);
            frame.data.fill(fill);
            let body = Body::Frame(FrameBody::from_frame(&frame, 0x0101, 0x0101));
            for buffer in [1024usize, 2048, 4096] {
                let mut seq = Sequencer::default();
                let wire: usize = packets(&mut seq, 1, &body, buffer)
                    .unwrap()
                    .iter()
                    .map(|p| p.encode().unwrap().len())
                    .sum();
                assert!(
                    wire * 100 <= 1536 * 103,
                    "fill {fill:02X}, buffer {buffer}: {wire} bytes"
                );
            }
        }
        let _ = HOST;
    }
}
