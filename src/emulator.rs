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
//! (`crate::cli::emulate`). PROGRAM is not played: the reference board reports no local
//! playback and refuses PROGRAM with NAK UNKNOWN_TYPE, as the spec lets a board do.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::config::model::Profile;
use crate::protocol::gongkai::{
    BROADCAST, Caps, DecodeError, Decoder, HOST, Info, Message, NakReason, Packet, ShowState,
    Status, VERSION, kind,
};
use crate::protocol::transfer::{Body, ChunkOutcome, Geometry, Reassembler};
use crate::raster::frame::Frame;

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

    /// Expires content whose valid-until has passed. Returns whether the picture changed.
    pub fn tick(&mut self, now_ms: u64) -> bool {
        if self.shown.as_ref().is_some_and(|s| now_ms >= s.expires_ms) {
            self.shown = None;
            self.picture_version += 1;
            return true;
        }
        false
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
        });
        self.counts.frames += 1;
        self.picture_version += 1;
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
                    caps: Caps::default(),
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
            Body::Program(_) => nak(NakReason::UnknownType, 0),
        }
    }

    fn status(&self, now_ms: u64) -> Status {
        let (state, content, remaining) = match &self.shown {
            Some(s) => (
                ShowState::Frame,
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

/// How often expiry is checked while the line is quiet.
const TICK: Duration = Duration::from_millis(100);

/// Serves `board` on `port` until the port closes or fails. Reads are paced at `baud / 10`
/// bytes per second (a pseudo-terminal has no baud rate of its own); `on_change` gets every
/// new picture. The board is shared so that tests (and a SIGINT handler) can look at it.
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
    let mut tick = tokio::time::interval(TICK);
    loop {
        let reply = tokio::select! {
            read = reader.read(&mut buf) => {
                let n = read?;
                if n == 0 {
                    return Err(ServeError::Closed);
                }
                // The bytes could not have arrived faster than the line carries them.
                let now = tokio::time::Instant::now();
                line_free = line_free.max(now)
                    + Duration::from_micros(n as u64 * 1_000_000 / bytes_per_s);
                tokio::time::sleep_until(line_free).await;
                let at = now_ms(tokio::time::Instant::now());
                lock(&board).receive(&buf[..n], at)
            }
            _ = tick.tick() => {
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
            (board.picture_version() != seen).then(|| {
                seen = board.picture_version();
                board.picture()
            })
        };
        if let Some(picture) = changed {
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
}
