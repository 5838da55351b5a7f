//! The reference board: what a board running gongkai's protocol (`docs/protocol.md` §1) does
//! with the bytes it receives, and a loop that serves it on a serial device.
//!
//! Owns the board's side of the protocol: duplicate detection by sequence number, chunk
//! reassembly, applying FRAME/RECT/CLEAR, expiry of content (valid-until), and the counts a
//! firmware author compares with. [`Board`] is pure — bytes and the time in, reply bytes out —
//! so tests drive it without a port; [`serve`] is the only I/O (reading paced at the board's
//! baud rate, writing replies).
//!
//! Must not touch: the host's retry and timeout logic (`crate::link`), the codecs themselves
//! (`crate::protocol`), PNG encoding (`crate::preview`), or the operator's messages
//! (`crate::cli::emulate`).
//!
//! PROGRAM is played locally, as a firmware would: INFO advertises caps bits 0 and 1 (pages
//! and strips), pages change every `dwell_ms`, a strip moves one whole pixel each time
//! `elapsed × speed / 1000` crosses the next pixel (so a 9,600-baud board scrolls as smoothly
//! as a fast one: nothing but the upload crosses the line), passes are counted, and after the
//! last pass the window stays empty over the background (state `03`); the background shows
//! outside the window only. [`Board::tick`] advances the
//! program; [`Board::next_change`] says when it next needs to, so [`serve`] sleeps exactly
//! until the next pixel step instead of polling.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::config::model::Profile;
use crate::protocol::gongkai::{
    BROADCAST, Caps, DecodeError, Decoder, HOST, Info, Message, NakReason, Packet, ShowState,
    Status, VERSION, kind,
};
use crate::protocol::pixels::{packed_len, paste_rect};
use crate::protocol::transfer::{
    Body, ChunkOutcome, Direction, Geometry, Play, ProgramBody, Reassembler,
};
use crate::raster::frame::{Frame, Rect};

/// A board's fixed properties: what its INFO reports.
#[derive(Debug, Clone)]
pub struct BoardConfig {
    pub address: u8,
    pub geometry: Geometry,
    pub buffer: u16,
    pub store: u32,
    pub brightness_max: u8,
    pub firmware: String,
}

impl BoardConfig {
    /// The board a hardware profile describes, at RS-485 address `address`.
    pub fn from_profile(profile: &Profile, address: u8) -> BoardConfig {
        let geometry = Geometry {
            width: profile.width,
            height: profile.height,
            format: profile.pixel,
        };
        let frame_len = Frame::new(profile.width, profile.height, profile.pixel)
            .data
            .len();
        // A profile without a buffer is a board with the minimum the spec guarantees.
        let buffer = profile.buffer.unwrap_or(64).clamp(64, u32::from(u16::MAX)) as u16;
        BoardConfig {
            address,
            geometry,
            buffer,
            // Room for a whole FRAME plus RECT headers: the reference board never refuses a
            // body its own picture fits in.
            store: u32::try_from(frame_len * 2 + 4096).unwrap_or(u32::MAX),
            brightness_max: (*profile.brightness.end()).min(255) as u8,
            firmware: format!("gongkai-emulate {}", env!("CARGO_PKG_VERSION")),
        }
    }
}

/// What a board has counted since it started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BoardCounts {
    /// Bytes received from the line.
    pub bytes: u64,
    /// FRAME and RECT bodies applied.
    pub frames: u64,
    /// Frames dropped for a CRC mismatch.
    pub crc_errors: u64,
    /// Frames dropped for COBS, length or CRC (STATUS `rx_errors`).
    pub rx_errors: u64,
    /// NAKs sent.
    pub naks: u64,
    /// HELLOs processed.
    pub hellos: u64,
}

#[derive(Debug, Clone)]
struct Shown {
    content: u16,
    frame: Frame,
    expires_ms: u64,
    /// Set while a PROGRAM is what is shown; `frame` is then its current local frame.
    program: Option<Local>,
}

/// A PROGRAM played by the board itself.
#[derive(Debug, Clone)]
struct Local {
    play: Play,
    started_ms: u64,
    /// The position `frame` shows: the page index, or the strip's travel in whole pixels
    /// since the start (all passes counted).
    position: u64,
    /// When the position was last worked out.
    at_ms: u64,
    /// The strip has played all its passes: the window shows the background.
    done: bool,
}

/// Whole pixels a strip at `speed_mpx` millipixels per second travels in `elapsed_ms`
/// (§1.5: integer arithmetic, so the average speed is exact).
fn strip_moved(elapsed_ms: u64, speed_mpx: u32) -> u64 {
    let moved = u128::from(elapsed_ms) * u128::from(speed_mpx) / 1_000_000;
    u64::try_from(moved).unwrap_or(u64::MAX)
}

/// One pass: the strip's length plus the window's extent along the direction.
fn pass_len(strip: &crate::protocol::transfer::Strip) -> u64 {
    let extent = match strip.direction {
        Direction::Left => strip.window.width,
        Direction::Up => strip.window.height,
    };
    u64::from(strip.length) + u64::from(extent)
}

impl Local {
    /// The position at `now_ms`, and whether the passes are over.
    fn position_at(&self, now_ms: u64) -> (u64, bool) {
        let elapsed = now_ms.saturating_sub(self.started_ms);
        match &self.play {
            Play::Pages { dwell_ms, pages } => {
                let n = pages.len().max(1) as u64;
                // A dwell of 0 would be a page per tick: hold page 0 instead.
                let step = elapsed.checked_div(u64::from(*dwell_ms)).unwrap_or(0);
                (step % n, false)
            }
            Play::Strip(strip) => {
                let moved = strip_moved(elapsed, strip.speed_mpx);
                let total = pass_len(strip).saturating_mul(u64::from(strip.passes));
                if strip.passes > 0 && moved >= total {
                    (total, true)
                } else {
                    (moved, false)
                }
            }
        }
    }

    /// When the position next changes, if it ever does.
    fn next_change(&self) -> Option<u64> {
        if self.done {
            return None;
        }
        match &self.play {
            Play::Pages { dwell_ms, pages } => (*dwell_ms > 0 && pages.len() > 1).then(|| {
                let dwell = u64::from(*dwell_ms);
                let steps = self.at_ms.saturating_sub(self.started_ms) / dwell;
                self.started_ms + (steps + 1) * dwell
            }),
            Play::Strip(strip) => (strip.speed_mpx > 0).then(|| {
                // The first millisecond at which `elapsed × speed / 10⁶` reaches position + 1.
                let target = u128::from(self.position + 1) * 1_000_000;
                let ms = target.div_ceil(u128::from(strip.speed_mpx));
                self.started_ms
                    .saturating_add(u64::try_from(ms).unwrap_or(u64::MAX))
            }),
        }
    }

    /// The picture at the current position.
    fn frame(&self, g: Geometry) -> Frame {
        let picture = |bytes: &[u8], width: u32, height: u32| {
            let mut frame = Frame::new(width, height, g.format);
            if frame.data.len() == bytes.len() {
                frame.data.copy_from_slice(bytes);
            }
            frame
        };
        match &self.play {
            Play::Pages { pages, .. } => {
                let page = pages
                    .get(self.position as usize)
                    .map_or(&[][..], Vec::as_slice);
                picture(page, g.width, g.height)
            }
            Play::Strip(strip) => {
                // The background shows outside the window only; the window is empty where
                // the strip is not (before it enters, after it leaves, after the passes).
                let mut frame = picture(&strip.background, g.width, g.height);
                let w = strip.window;
                let empty = vec![0u8; packed_len(w.width, w.height, g.format)];
                paste_rect(&mut frame, &w, &empty);
                if self.done {
                    return frame;
                }
                let length = u32::from(strip.length);
                let offset = self.position % pass_len(strip).max(1);
                // Window coordinate `v` (x for Left, y for Up) shows strip coordinate
                // `v + offset − extent`: at offset 0 the strip waits just outside the window.
                let (extent, across) = match strip.direction {
                    Direction::Left => (w.width, w.height),
                    Direction::Up => (w.height, w.width),
                };
                let shift = i64::try_from(offset).unwrap_or(i64::MAX) - i64::from(extent);
                let first = (-shift).clamp(0, i64::from(extent));
                let last = (i64::from(length) - shift).clamp(0, i64::from(extent));
                if first >= last {
                    return frame;
                }
                let (v0, n, s0) = (first as u32, (last - first) as u32, (first + shift) as u32);
                let (source, strip_frame, target) = match strip.direction {
                    Direction::Left => (
                        Rect {
                            x: s0,
                            y: 0,
                            width: n,
                            height: across,
                        },
                        picture(&strip.pixels, length, across),
                        Rect {
                            x: w.x + v0,
                            y: w.y,
                            width: n,
                            height: across,
                        },
                    ),
                    Direction::Up => (
                        Rect {
                            x: 0,
                            y: s0,
                            width: across,
                            height: n,
                        },
                        picture(&strip.pixels, across, length),
                        Rect {
                            x: w.x,
                            y: w.y + v0,
                            width: across,
                            height: n,
                        },
                    ),
                };
                let pixels = crate::protocol::pixels::copy_rect(&strip_frame, &source);
                paste_rect(&mut frame, &target, &pixels);
                frame
            }
        }
    }
}

/// The board's state machine. Pure: every method takes the time (any monotonic clock, in
/// milliseconds) as an argument.
#[derive(Debug)]
pub struct Board {
    config: BoardConfig,
    decoder: Decoder,
    reassembler: Reassembler,
    shown: Option<Shown>,
    brightness: u8,
    power: bool,
    /// Seq, type and wire bytes of the reply to the last unicast request.
    last_unicast: Option<(u8, u8, Vec<u8>)>,
    last_broadcast: Option<u8>,
    counts: BoardCounts,
    started_ms: u64,
    /// Counts every change of what the LEDs show, so the I/O loop knows when to draw.
    picture_version: u64,
    /// The last change was a strip moving by a pixel (the I/O loop draws those sparingly).
    last_change_was_step: bool,
}

fn message_kind(message: &Message) -> u8 {
    match message {
        Message::Hello => kind::HELLO,
        Message::Info(_) => kind::INFO,
        Message::Chunk(c) => match c.kind {
            crate::protocol::gongkai::BodyKind::Frame => kind::FRAME,
            crate::protocol::gongkai::BodyKind::Rect => kind::RECT,
            crate::protocol::gongkai::BodyKind::Program => kind::PROGRAM,
        },
        Message::Brightness(_) => kind::BRIGHTNESS,
        Message::Power(_) => kind::POWER,
        Message::Heartbeat { .. } => kind::HEARTBEAT,
        Message::Clear(_) => kind::CLEAR,
        Message::Status(_) => kind::STATUS,
        Message::Ack => kind::ACK,
        Message::Nak { .. } => kind::NAK,
    }
}

fn nak(reason: NakReason, detail: u8) -> Message {
    Message::Nak { reason, detail }
}

impl Board {
    /// A board at power-up: idle, content 0, no transfer, last seq unknown.
    pub fn new(config: BoardConfig, now_ms: u64) -> Board {
        Board {
            decoder: Decoder::new(usize::from(config.buffer)),
            reassembler: Reassembler::new(config.store as usize),
            brightness: config.brightness_max,
            config,
            shown: None,
            power: true,
            last_unicast: None,
            last_broadcast: None,
            counts: BoardCounts::default(),
            started_ms: now_ms,
            picture_version: 0,
            last_change_was_step: false,
        }
    }

    pub fn config(&self) -> &BoardConfig {
        &self.config
    }

    pub fn counts(&self) -> BoardCounts {
        self.counts
    }

    /// Changes whenever what the LEDs show changes.
    pub fn picture_version(&self) -> u64 {
        self.picture_version
    }

    /// When the PROGRAM shown started playing (the clock of `now_ms`); `None` without one.
    pub fn program_started_ms(&self) -> Option<u64> {
        self.shown.as_ref()?.program.as_ref().map(|l| l.started_ms)
    }

    /// Whether the last change of the picture was a strip moving by one step, rather than
    /// new content, a page change, the end of the passes, expiry or power.
    pub fn last_change_was_step(&self) -> bool {
        self.last_change_was_step
    }

    /// When [`tick`](Board::tick) next has something to do (a page change, a strip step,
    /// expiry), on the same clock as `now_ms`; `None` while idle.
    pub fn next_change(&self) -> Option<u64> {
        let shown = self.shown.as_ref()?;
        let local = shown.program.as_ref().and_then(Local::next_change);
        Some(local.map_or(shown.expires_ms, |at| at.min(shown.expires_ms)))
    }

    pub fn brightness(&self) -> u8 {
        self.brightness
    }

    pub fn power(&self) -> bool {
        self.power
    }

    /// The content id shown; 0 when idle.
    pub fn content(&self) -> u16 {
        self.shown.as_ref().map_or(0, |s| s.content)
    }

    /// What the LEDs show: the content, or a dark picture when idle or powered off.
    pub fn picture(&self) -> Frame {
        match &self.shown {
            Some(shown) if self.power => shown.frame.clone(),
            _ => {
                let g = self.config.geometry;
                Frame::new(g.width, g.height, g.format)
            }
        }
    }

    /// A power cycle: the content, the transfer and the sequence memory are gone. The
    /// counters survive, so a test can still read them.
    pub fn reset(&mut self, now_ms: u64) {
        let counts = self.counts;
        let version = self.picture_version + 1;
        *self = Board::new(self.config.clone(), now_ms);
        self.counts = counts;
        self.picture_version = version;
    }

    /// Expires content whose valid-until has passed and moves a PROGRAM on to where it is at
    /// `now_ms`. Returns whether the picture changed.
    pub fn tick(&mut self, now_ms: u64) -> bool {
        if self.shown.as_ref().is_some_and(|s| now_ms >= s.expires_ms) {
            self.shown = None;
            self.picture_version += 1;
            self.last_change_was_step = false;
            return true;
        }
        let geometry = self.config.geometry;
        let Some(shown) = self.shown.as_mut() else {
            return false;
        };
        let Some(local) = shown.program.as_mut() else {
            return false;
        };
        local.at_ms = now_ms;
        let (position, done) = local.position_at(now_ms);
        if position == local.position && done == local.done {
            return false;
        }
        self.last_change_was_step = matches!(local.play, Play::Strip(_)) && !done;
        local.position = position;
        local.done = done;
        shown.frame = local.frame(geometry);
        self.picture_version += 1;
        true
    }

    /// Takes bytes from the line; returns the bytes to send back (possibly none).
    pub fn receive(&mut self, bytes: &[u8], now_ms: u64) -> Vec<u8> {
        self.counts.bytes += bytes.len() as u64;
        self.tick(now_ms);
        let mut out = Vec::new();
        for result in self.decoder.push(bytes) {
            match result {
                Ok(packet) => self.packet(packet, now_ms, &mut out),
                Err(error) => self.bad_frame(&error, &mut out),
            }
        }
        out
    }

    fn bad_frame(&mut self, error: &DecodeError, out: &mut Vec<u8>) {
        match error {
            DecodeError::Crc { .. } => {
                self.counts.crc_errors += 1;
                self.counts.rx_errors += 1;
            }
            DecodeError::Oversize { .. } | DecodeError::Cobs(_) | DecodeError::Short { .. } => {
                self.counts.rx_errors += 1;
            }
            _ => {}
        }
        // A packet with a good CRC but a bad version, type or payload, sent to us alone,
        // is answered with a NAK.
        if let (Some(header), Some(message)) = (error.header(), error.nak())
            && header.src == HOST
            && header.dst == self.config.address
        {
            let reply = Packet {
                dst: HOST,
                src: self.config.address,
                seq: header.seq,
                message,
            };
            self.counts.naks += 1;
            if let Ok(wire) = reply.encode() {
                self.last_unicast = Some((header.seq, header.kind, wire.clone()));
                out.extend_from_slice(&wire);
            }
        }
    }

    fn packet(&mut self, packet: Packet, now_ms: u64, out: &mut Vec<u8>) {
        if packet.src != HOST {
            return; // another board's reply
        }
        if packet.dst == BROADCAST {
            if self.last_broadcast == Some(packet.seq) {
                return;
            }
            self.last_broadcast = Some(packet.seq);
            let _ = self.handle(packet.message, now_ms);
            return;
        }
        if packet.dst != self.config.address {
            return;
        }
        let kind = message_kind(&packet.message);
        if packet.message == Message::Hello {
            self.last_unicast = None;
        } else if let Some((seq, k, wire)) = &self.last_unicast
            && *seq == packet.seq
            && *k == kind
        {
            // A retry: the reply was lost. Answer again without acting again.
            out.extend_from_slice(wire);
            return;
        }
        let seq = packet.seq;
        let Some(message) = self.handle(packet.message, now_ms) else {
            return;
        };
        if matches!(message, Message::Nak { .. }) {
            self.counts.naks += 1;
        }
        let reply = Packet {
            dst: HOST,
            src: self.config.address,
            seq,
            message,
        };
        if let Ok(wire) = reply.encode() {
            self.last_unicast = Some((seq, kind, wire.clone()));
            out.extend_from_slice(&wire);
        }
    }

    fn show(&mut self, content: u16, frame: Frame, valid_for: u16, now_ms: u64) {
        self.shown = Some(Shown {
            content,
            frame,
            expires_ms: now_ms + u64::from(valid_for) * 1000,
            program: None,
        });
        self.counts.frames += 1;
        self.picture_version += 1;
        self.last_change_was_step = false;
    }

    /// Starts playing `program` from its first page or position.
    fn play(&mut self, program: ProgramBody, now_ms: u64) {
        let local = Local {
            play: program.play,
            started_ms: now_ms,
            position: 0,
            at_ms: now_ms,
            done: false,
        };
        let frame = local.frame(self.config.geometry);
        self.show(program.content, frame, program.valid_for, now_ms);
        if let Some(shown) = self.shown.as_mut() {
            shown.program = Some(local);
        }
    }

    /// Carries out one request; the reply, if the request has one.
    fn handle(&mut self, message: Message, now_ms: u64) -> Option<Message> {
        Some(match message {
            Message::Hello => {
                self.counts.hellos += 1;
                self.reassembler.reset();
                let g = self.config.geometry;
                Message::Info(Info {
                    version: VERSION,
                    width: g.width.min(u32::from(u16::MAX)) as u16,
                    height: g.height.min(u32::from(u16::MAX)) as u16,
                    format: g.format,
                    buffer: self.config.buffer,
                    store: self.config.store,
                    caps: Caps {
                        local_pages: true,
                        local_scroll: true,
                        idle_logo: false,
                    },
                    brightness_max: self.config.brightness_max,
                    firmware: self.config.firmware.clone(),
                })
            }
            Message::Chunk(chunk) => match self.reassembler.push(chunk, now_ms) {
                Err(error) => nak(error.nak_reason(), 0),
                Ok(ChunkOutcome::Stored | ChunkOutcome::Duplicate) => Message::Ack,
                Ok(ChunkOutcome::Missing { first }) => nak(NakReason::Missing, first),
                Ok(ChunkOutcome::Complete { kind, body }) => {
                    match Body::decode(kind, &body, self.config.geometry) {
                        Err(error) => nak(error.nak_reason(), 0),
                        Ok(body) => self.apply(body, now_ms),
                    }
                }
            },
            Message::Brightness(level) => {
                if level > self.config.brightness_max {
                    nak(NakReason::Payload, 0)
                } else {
                    self.brightness = level;
                    Message::Ack
                }
            }
            Message::Power(on) => {
                if on != self.power {
                    self.power = on;
                    self.picture_version += 1;
                    self.last_change_was_step = false;
                }
                Message::Ack
            }
            Message::Heartbeat { content, extend } => {
                if let Some(shown) = &mut self.shown
                    && shown.content == content
                    && extend > 0
                {
                    shown.expires_ms = now_ms + u64::from(extend) * 1000;
                }
                Message::Status(self.status(now_ms))
            }
            Message::Clear(_) => {
                if self.shown.take().is_some() {
                    self.picture_version += 1;
                    self.last_change_was_step = false;
                }
                Message::Ack
            }
            // Replies are not requests: a board ignores them.
            Message::Info(_) | Message::Status(_) | Message::Ack | Message::Nak { .. } => {
                return None;
            }
        })
    }

    fn apply(&mut self, body: Body, now_ms: u64) -> Message {
        let g = self.config.geometry;
        match body {
            Body::Frame(frame) => match frame.to_frame(g.width, g.height) {
                Ok(picture) => {
                    self.show(frame.content, picture, frame.valid_for, now_ms);
                    Message::Ack
                }
                Err(error) => nak(error.nak_reason(), 0),
            },
            Body::Rect(rect) => {
                let Some(shown) = self.shown.as_ref().filter(|s| s.content == rect.base) else {
                    return nak(NakReason::NoBase, 0);
                };
                let mut picture = shown.frame.clone();
                match rect.apply(&mut picture) {
                    Ok(()) => {
                        self.show(rect.content, picture, rect.valid_for, now_ms);
                        Message::Ack
                    }
                    Err(error) => nak(error.nak_reason(), 0),
                }
            }
            Body::Program(program) => {
                self.play(program, now_ms);
                Message::Ack
            }
        }
    }

    fn status(&self, now_ms: u64) -> Status {
        let (state, content, remaining) = match &self.shown {
            Some(s) => (
                match &s.program {
                    None => ShowState::Frame,
                    Some(local) if local.done => ShowState::ProgramDone,
                    Some(_) => ShowState::ProgramPlaying,
                },
                s.content,
                (s.expires_ms.saturating_sub(now_ms) / 1000).min(u64::from(u16::MAX)) as u16,
            ),
            None => (ShowState::Idle, 0, 0),
        };
        Status {
            state,
            content,
            remaining,
            brightness: self.brightness,
            power: self.power,
            rx_errors: self.counts.rx_errors as u16,
            uptime: (now_ms.saturating_sub(self.started_ms) / 1000) as u32,
        }
    }
}

/// Why [`serve`] stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("the serial device is gone (end of file)")]
    Closed,
    #[error("the serial device failed: {0}")]
    Io(#[from] std::io::Error),
}

/// The longest sleep while the line is quiet; the board's own next change (page, strip
/// step, expiry) usually wakes it sooner.
const TICK: Duration = Duration::from_millis(100);

/// Reads this soon after the line was last free continue its timing (see [`serve`]).
const BACK_TO_BACK: Duration = Duration::from_millis(5);

/// A scrolling strip changes the picture at its speed (tens of times a second); `on_change`
/// hears of those steps at most this often, so that writing `shown.png` costs little I/O.
/// Every other change (new content, a page, the end of the passes, expiry) is passed on at
/// once.
pub const STEP_DRAW_EVERY: Duration = Duration::from_millis(200);

/// Serves `board` on `port` until the port closes or fails. Reads are paced at `baud / 10`
/// bytes per second (a pseudo-terminal has no baud rate of its own). The board plays a
/// PROGRAM at its own pace: the loop wakes at the board's [`Board::next_change`].
/// `on_change` gets every new picture, strip steps at most every [`STEP_DRAW_EVERY`]. The
/// board is shared so that tests (and a SIGINT handler) can look at it.
pub async fn serve<P>(
    port: P,
    board: Arc<Mutex<Board>>,
    baud: u32,
    epoch: tokio::time::Instant,
    mut on_change: impl FnMut(&Frame),
) -> Result<(), ServeError>
where
    P: AsyncRead + AsyncWrite + Unpin,
{
    let (mut reader, mut writer) = tokio::io::split(port);
    let bytes_per_s = u64::from(baud.max(10) / 10);
    // Small reads, so that pacing is smooth: about 10 ms of line time each.
    let mut buf = vec![0u8; (bytes_per_s / 100).clamp(1, 1024) as usize];
    let now_ms = |at: tokio::time::Instant| at.duration_since(epoch).as_millis() as u64;
    let mut line_free = tokio::time::Instant::now();
    let mut seen = lock(&board).picture_version();
    let mut drawn_at = tokio::time::Instant::now();
    loop {
        let wake = {
            let next = lock(&board).next_change();
            let soon = tokio::time::Instant::now() + TICK;
            next.map_or(soon, |ms| (epoch + Duration::from_millis(ms)).min(soon))
        };
        let reply = tokio::select! {
            read = reader.read(&mut buf) => {
                let n = read?;
                if n == 0 {
                    return Err(ServeError::Closed);
                }
                // The bytes could not have arrived faster than the line carries them. Bytes
                // read just after the previous ones were waiting back to back: continue from
                // where the line was, so that timer lateness (a millisecond per wake-up) does
                // not add up over a long chunk and make a 9,600-baud board slower than 9,600.
                let now = tokio::time::Instant::now();
                let start = if now.saturating_duration_since(line_free) < BACK_TO_BACK {
                    line_free
                } else {
                    now
                };
                line_free = start + Duration::from_micros(n as u64 * 1_000_000 / bytes_per_s);
                tokio::time::sleep_until(line_free).await;
                let at = now_ms(tokio::time::Instant::now());
                lock(&board).receive(&buf[..n], at)
            }
            _ = tokio::time::sleep_until(wake) => {
                lock(&board).tick(now_ms(tokio::time::Instant::now()));
                Vec::new()
            }
        };
        if !reply.is_empty() {
            writer.write_all(&reply).await?;
            writer.flush().await?;
        }
        let changed = {
            let board = lock(&board);
            let due = !board.last_change_was_step() || drawn_at.elapsed() >= STEP_DRAW_EVERY;
            (board.picture_version() != seen && due).then(|| {
                seen = board.picture_version();
                board.picture()
            })
        };
        if let Some(picture) = changed {
            drawn_at = tokio::time::Instant::now();
            on_change(&picture);
        }
    }
}

/// A poisoned lock only means a test thread panicked while holding it; the board's state is
/// still consistent (every method leaves it so), so keep going.
pub fn lock(board: &Mutex<Board>) -> std::sync::MutexGuard<'_, Board> {
    board.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::model::PixelFormat;
    use crate::protocol::gongkai::Sequencer;
    use crate::protocol::transfer::{FrameBody, packets};

    fn board() -> Board {
        Board::new(
            BoardConfig {
                address: 3,
                geometry: Geometry {
                    width: 32,
                    height: 16,
                    format: PixelFormat::Mono,
                },
                buffer: 64,
                store: 4096,
                brightness_max: 15,
                firmware: "test".into(),
            },
            0,
        )
    }

    fn replies(bytes: &[u8]) -> Vec<Packet> {
        Decoder::new(128)
            .push(bytes)
            .into_iter()
            .filter_map(Result::ok)
            .collect()
    }

    fn diagonal() -> Frame {
        let mut frame = Frame::new(32, 16, PixelFormat::Mono);
        for i in 0..16 {
            frame.set_pixel(i * 2, i, crate::config::model::Rgb(255, 255, 255));
        }
        frame
    }

    #[test]
    fn hello_then_chunked_frame_then_expiry() {
        let mut b = board();
        let mut seq = Sequencer::default();
        let hello = seq.request(3, Message::Hello).encode().unwrap();
        let r = replies(&b.receive(&hello, 0));
        assert!(matches!(r[0].message, Message::Info(_)));
        let body = Body::Frame(FrameBody::from_frame(&diagonal(), 8, 2));
        let chunks = packets(&mut seq, 3, &body, 64).unwrap();
        assert_eq!(chunks.len(), 2);
        for p in &chunks {
            let r = replies(&b.receive(&p.encode().unwrap(), 10));
            assert_eq!(r[0].message, Message::Ack);
            assert_eq!(r[0].seq, p.seq);
        }
        assert_eq!(b.picture(), diagonal());
        assert_eq!(b.content(), 8);
        // A retry of the completing chunk is answered again and applies nothing twice.
        let again = replies(&b.receive(&chunks[1].encode().unwrap(), 20));
        assert_eq!(again[0].message, Message::Ack);
        assert_eq!(b.counts().frames, 1);
        assert!(!b.tick(1_999));
        assert!(b.tick(2_010));
        assert_eq!(b.content(), 0);
        assert_eq!(b.picture(), Frame::new(32, 16, PixelFormat::Mono));
    }

    #[test]
    fn bad_crc_is_counted_and_unanswered_and_rect_needs_its_base() {
        let mut b = board();
        let mut seq = Sequencer::default();
        let mut hello = seq.request(3, Message::Hello).encode().unwrap();
        hello[5] ^= 0x40;
        assert!(b.receive(&hello, 0).is_empty());
        assert_eq!(b.counts().crc_errors, 1);
        let rect = crate::protocol::transfer::RectBody::from_diff(
            &Frame::new(32, 16, PixelFormat::Mono),
            &diagonal(),
            5,
            6,
            60,
        )
        .unwrap();
        let p = packets(&mut seq, 3, &Body::Rect(rect), 64).unwrap();
        let mut last = Vec::new();
        for packet in &p {
            last = replies(&b.receive(&packet.encode().unwrap(), 0));
        }
        assert_eq!(
            last[0].message,
            Message::Nak {
                reason: NakReason::NoBase,
                detail: 0
            }
        );
        // Someone else's packet is ignored.
        let other = seq.request(4, Message::Hello).encode().unwrap();
        assert!(b.receive(&other, 0).is_empty());
    }

    #[test]
    fn a_strip_program_moves_a_pixel_per_step_counts_passes_then_shows_the_background() {
        use crate::protocol::transfer::ProgramBody;
        let mut b = board();
        let mut seq = Sequencer::default();
        let hello = seq.request(3, Message::Hello).encode().unwrap();
        let r = replies(&b.receive(&hello, 0));
        let Message::Info(info) = &r[0].message else {
            panic!("INFO expected");
        };
        assert!(info.caps.local_pages && info.caps.local_scroll);
        // An 8-pixel strip, its first column lit, through a 16×8 window at (8, 4), 1 px per
        // 100 ms, two passes of 8 + 16 pixels each.
        let mut strip = Frame::new(8, 8, PixelFormat::Mono);
        for y in 0..8 {
            strip.set_pixel(0, y, crate::config::model::Rgb(255, 255, 255));
        }
        let window = Rect {
            x: 8,
            y: 4,
            width: 16,
            height: 8,
        };
        let background = diagonal();
        let body = Body::Program(ProgramBody::strip(
            &background,
            window,
            &strip,
            Direction::Left,
            10.0,
            2,
            9,
            60,
        ));
        for p in packets(&mut seq, 3, &body, 64).unwrap() {
            let r = replies(&b.receive(&p.encode().unwrap(), 1000));
            assert_eq!(r[0].message, Message::Ack);
        }
        assert_eq!(b.program_started_ms(), Some(1000));
        let lit_x = |b: &Board| {
            let p = b.picture();
            (8..24).find(|&x| p.pixel(x, 5) != crate::config::model::Rgb(0, 0, 0))
        };
        // Offset 0: the strip waits just outside the window's right edge.
        assert_eq!(lit_x(&b), None);
        assert_eq!(b.next_change(), Some(1100));
        b.tick(1100);
        assert_eq!(lit_x(&b), Some(23), "one pixel in");
        b.tick(1_000 + 1_000);
        assert_eq!(lit_x(&b), Some(14), "ten pixels in");
        // After two passes (48 px = 4.8 s) the window is empty and stays so; the background
        // shows around it.
        b.tick(1_000 + 4_799);
        assert_eq!(b.status(5_799).state, ShowState::ProgramPlaying);
        assert!(b.tick(1_000 + 4_800));
        let mut outside = background.clone();
        crate::protocol::pixels::paste_rect(&mut outside, &window, &[0; 16]);
        assert_eq!(b.picture(), outside);
        assert_eq!(
            b.picture().pixel(0, 0),
            crate::config::model::Rgb(255, 255, 255)
        );
        assert_eq!(b.status(5_800).state, ShowState::ProgramDone);
        assert_eq!(b.next_change(), Some(61_000), "only expiry is left");
    }

    #[test]
    fn pages_change_every_dwell_and_loop() {
        use crate::protocol::transfer::ProgramBody;
        let mut b = board();
        let mut seq = Sequencer::default();
        b.receive(&seq.request(3, Message::Hello).encode().unwrap(), 0);
        let blank = Frame::new(32, 16, PixelFormat::Mono);
        let pages = [diagonal(), blank.clone()];
        let body = Body::Program(ProgramBody::pages(&pages, 500, 4, 60).unwrap());
        for p in packets(&mut seq, 3, &body, 64).unwrap() {
            b.receive(&p.encode().unwrap(), 0);
        }
        assert_eq!(b.picture(), diagonal());
        assert!(!b.tick(499));
        assert!(b.tick(500));
        assert_eq!(b.picture(), blank);
        assert!(b.tick(1_000));
        assert_eq!(b.picture(), diagonal());
        assert_eq!(b.next_change(), Some(1_500));
    }
}
