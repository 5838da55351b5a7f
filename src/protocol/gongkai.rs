//! gongkai's own board protocol, packet layer: the header, the messages, the encoder and an
//! incremental decoder. `docs/protocol.md` is the specification; this is its reference
//! implementation, and the worked examples there are tests here.
//!
//! Owns: packet bytes ⇄ [`Packet`]. Does not own: what a FRAME, RECT or PROGRAM body holds
//! and how bodies are cut into chunks ([`super::transfer`]), retries and timeouts (a link
//! keeps the clock), or the serial port. Pure: no I/O, no clock.
//!
//! On the wire a packet is `00`, COBS(header ‖ payload ‖ CRC-32C little-endian), `00`.

use super::cobs::{self, CobsError};
use super::crc::crc32c;

/// The protocol version this code speaks, byte 0 of every packet.
pub const VERSION: u8 = 1;
/// The host's address: the source of every request and the destination of every reply.
pub const HOST: u8 = 0;
/// The broadcast address. Broadcast packets are never acknowledged.
pub const BROADCAST: u8 = 255;
/// Version, destination, source, sequence, type.
pub const HEADER_LEN: usize = 5;
pub const CRC_LEN: usize = 4;
/// Transfer id, chunk index, chunk count.
pub const CHUNK_HEADER_LEN: usize = 3;
/// Packet bytes around the data of a chunk.
pub const CHUNK_OVERHEAD: usize = HEADER_LEN + CHUNK_HEADER_LEN + CRC_LEN;
/// Every board accepts packets of at least this size (header, payload and CRC).
pub const MIN_BUFFER: usize = 64;
/// The longest firmware string an INFO carries, in bytes of UTF-8.
pub const MAX_FIRMWARE: usize = 64;

/// Message type codes (byte 4). Requests have the high bit clear, replies set.
pub mod kind {
    pub const HELLO: u8 = 0x01;
    pub const FRAME: u8 = 0x02;
    pub const RECT: u8 = 0x03;
    pub const PROGRAM: u8 = 0x04;
    pub const BRIGHTNESS: u8 = 0x05;
    pub const POWER: u8 = 0x06;
    pub const HEARTBEAT: u8 = 0x07;
    pub const CLEAR: u8 = 0x08;
    pub const ACK: u8 = 0x80;
    pub const NAK: u8 = 0x81;
    pub const INFO: u8 = 0x82;
    pub const STATUS: u8 = 0x83;
}

/// One packet: addresses, sequence number and message. The version is always [`VERSION`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    pub dst: u8,
    pub src: u8,
    pub seq: u8,
    pub message: Message,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// Host → board: who are you? Answered with INFO.
    Hello,
    /// Board → host, the answer to HELLO.
    Info(Info),
    /// Host → board: one piece of a FRAME, RECT or PROGRAM body.
    Chunk(Chunk),
    /// Host → board: brightness level, 0 to the board's `brightness_max`.
    Brightness(u8),
    /// Host → board: LEDs on or off. Off keeps the content and its timer running.
    Power(bool),
    /// Host → board: I am alive. If `content` is what the board shows and `extend` > 0, the
    /// content stays valid for `extend` seconds from now. Answered with STATUS.
    Heartbeat { content: u16, extend: u16 },
    /// Host → board: forget the content and show nothing, or the idle logo.
    Clear(ClearMode),
    /// Board → host, the answer to HEARTBEAT.
    Status(Status),
    /// Board → host: the request with this sequence number was carried out.
    Ack,
    /// Board → host: the request with this sequence number was not carried out.
    Nak { reason: NakReason, detail: u8 },
}

/// What a board reports about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Info {
    /// The highest protocol version the board speaks.
    pub version: u8,
    pub width: u16,
    pub height: u16,
    pub format: crate::config::model::PixelFormat,
    /// The largest packet the board accepts (header, payload and CRC, before COBS).
    pub buffer: u16,
    /// The largest reassembled body (FRAME, RECT or PROGRAM) the board can hold.
    pub store: u32,
    pub caps: Caps,
    pub brightness_max: u8,
    /// At most [`MAX_FIRMWARE`] bytes.
    pub firmware: String,
}

/// Capability bits of INFO.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Caps {
    pub local_pages: bool,
    pub local_scroll: bool,
    pub idle_logo: bool,
}

impl Caps {
    fn to_byte(self) -> u8 {
        u8::from(self.local_pages)
            | u8::from(self.local_scroll) << 1
            | u8::from(self.idle_logo) << 2
    }
    fn from_byte(byte: u8) -> Caps {
        // Unknown bits are ignored: a later version may add capabilities.
        Caps {
            local_pages: byte & 1 != 0,
            local_scroll: byte & 2 != 0,
            idle_logo: byte & 4 != 0,
        }
    }
}

/// Which body a chunk belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BodyKind {
    Frame,
    Rect,
    Program,
}

impl BodyKind {
    fn code(self) -> u8 {
        match self {
            BodyKind::Frame => kind::FRAME,
            BodyKind::Rect => kind::RECT,
            BodyKind::Program => kind::PROGRAM,
        }
    }
}

/// One piece of a body. A body that fits one packet is a chunk with `count` 1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    pub kind: BodyKind,
    /// Identifies the transfer; the host counts it up per body.
    pub xfer: u8,
    /// 0 to `count - 1`.
    pub index: u8,
    /// 1 to 255.
    pub count: u8,
    pub data: Vec<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClearMode {
    Blank = 0,
    IdleLogo = 1,
}

/// What a board is showing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShowState {
    /// Nothing valid: blank or the idle logo.
    Idle = 0,
    Frame = 1,
    ProgramPlaying = 2,
    /// A program with a finite number of passes has played them; its background stays.
    ProgramDone = 3,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Status {
    pub state: ShowState,
    /// The content id shown; 0 when idle.
    pub content: u16,
    /// Seconds until the content expires; 0 when idle.
    pub remaining: u16,
    pub brightness: u8,
    pub power: bool,
    /// Frames dropped for a bad CRC or bad COBS since the board started (wraps).
    pub rx_errors: u16,
    /// Seconds since the board started (wraps).
    pub uptime: u32,
}

/// Why a board refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NakReason {
    /// Unknown version; detail = the highest version the board speaks.
    Version,
    /// Unknown message type.
    UnknownType,
    /// The payload or the reassembled body is malformed.
    Payload,
    /// Pixel format or geometry differ from the board's.
    Format,
    /// The body is larger than the board's store.
    TooLarge,
    /// The last chunk arrived but some are missing; detail = the first missing index.
    Missing,
    /// RECT's base is not the content the board shows: send a FRAME.
    NoBase,
    /// The board cannot take it now; try again after the retry delay.
    Busy,
    /// A code this version does not know.
    Other(u8),
}

impl NakReason {
    fn code(self) -> u8 {
        match self {
            NakReason::Version => 1,
            NakReason::UnknownType => 2,
            NakReason::Payload => 3,
            NakReason::Format => 4,
            NakReason::TooLarge => 5,
            NakReason::Missing => 6,
            NakReason::NoBase => 7,
            NakReason::Busy => 8,
            NakReason::Other(code) => code,
        }
    }
    fn from_code(code: u8) -> NakReason {
        match code {
            1 => NakReason::Version,
            2 => NakReason::UnknownType,
            3 => NakReason::Payload,
            4 => NakReason::Format,
            5 => NakReason::TooLarge,
            6 => NakReason::Missing,
            7 => NakReason::NoBase,
            8 => NakReason::Busy,
            other => NakReason::Other(other),
        }
    }
}

pub(crate) fn format_code(format: crate::config::model::PixelFormat) -> u8 {
    use crate::config::model::PixelFormat::*;
    match format {
        Mono => 0,
        Bicolor => 1,
        Rgb565 => 2,
        Rgb888 => 3,
    }
}

pub(crate) fn format_from_code(code: u8) -> Option<crate::config::model::PixelFormat> {
    use crate::config::model::PixelFormat::*;
    Some(match code {
        0 => Mono,
        1 => Bicolor,
        2 => Rgb565,
        3 => Rgb888,
        _ => return None,
    })
}

/// Why a packet cannot be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    #[error("firmware string of {0} bytes; at most {MAX_FIRMWARE}")]
    FirmwareTooLong(usize),
    #[error("chunk {index} of {count}: the index must be below a count of 1 to 255")]
    ChunkIndex { index: u8, count: u8 },
    #[error("a board buffer of {0} bytes; at least {MIN_BUFFER}")]
    BufferTooSmall(usize),
    #[error("a body of {len} bytes needs more than 255 chunks of {per_chunk} bytes")]
    TooManyChunks { len: usize, per_chunk: usize },
    #[error("{0}")]
    Body(#[from] super::transfer::BodyError),
}

impl Packet {
    /// Header and payload, without CRC or stuffing.
    fn raw(&self) -> Result<Vec<u8>, EncodeError> {
        let mut out = Vec::with_capacity(HEADER_LEN + 16);
        let code = match &self.message {
            Message::Hello => kind::HELLO,
            Message::Info(_) => kind::INFO,
            Message::Chunk(c) => c.kind.code(),
            Message::Brightness(_) => kind::BRIGHTNESS,
            Message::Power(_) => kind::POWER,
            Message::Heartbeat { .. } => kind::HEARTBEAT,
            Message::Clear(_) => kind::CLEAR,
            Message::Status(_) => kind::STATUS,
            Message::Ack => kind::ACK,
            Message::Nak { .. } => kind::NAK,
        };
        out.extend_from_slice(&[VERSION, self.dst, self.src, self.seq, code]);
        match &self.message {
            Message::Hello | Message::Ack => {}
            Message::Info(info) => {
                if info.firmware.len() > MAX_FIRMWARE {
                    return Err(EncodeError::FirmwareTooLong(info.firmware.len()));
                }
                out.push(info.version);
                out.extend_from_slice(&info.width.to_le_bytes());
                out.extend_from_slice(&info.height.to_le_bytes());
                out.push(format_code(info.format));
                out.extend_from_slice(&info.buffer.to_le_bytes());
                out.extend_from_slice(&info.store.to_le_bytes());
                out.push(info.caps.to_byte());
                out.push(info.brightness_max);
                out.push(info.firmware.len() as u8);
                out.extend_from_slice(info.firmware.as_bytes());
            }
            Message::Chunk(chunk) => {
                if chunk.count == 0 || chunk.index >= chunk.count {
                    return Err(EncodeError::ChunkIndex {
                        index: chunk.index,
                        count: chunk.count,
                    });
                }
                out.reserve(chunk.data.len() + CRC_LEN + CHUNK_HEADER_LEN);
                out.extend_from_slice(&[chunk.xfer, chunk.index, chunk.count]);
                out.extend_from_slice(&chunk.data);
            }
            Message::Brightness(level) => out.push(*level),
            Message::Power(on) => out.push(u8::from(*on)),
            Message::Heartbeat { content, extend } => {
                out.extend_from_slice(&content.to_le_bytes());
                out.extend_from_slice(&extend.to_le_bytes());
            }
            Message::Clear(mode) => out.push(*mode as u8),
            Message::Status(s) => {
                out.push(s.state as u8);
                out.extend_from_slice(&s.content.to_le_bytes());
                out.extend_from_slice(&s.remaining.to_le_bytes());
                out.push(s.brightness);
                out.push(u8::from(s.power));
                out.extend_from_slice(&s.rx_errors.to_le_bytes());
                out.extend_from_slice(&s.uptime.to_le_bytes());
            }
            Message::Nak { reason, detail } => out.extend_from_slice(&[reason.code(), *detail]),
        }
        Ok(out)
    }

    /// The packet's size before stuffing: header, payload and CRC. A board's `buffer` must
    /// hold this.
    pub fn size(&self) -> Result<usize, EncodeError> {
        Ok(self.raw()?.len() + CRC_LEN)
    }

    /// The bytes on the wire: `00`, COBS(header ‖ payload ‖ CRC-32C LE), `00`.
    pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        let mut out = Vec::new();
        self.encode_into(&mut out)?;
        Ok(out)
    }

    /// Appends the bytes on the wire to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let mut raw = self.raw()?;
        let crc = crc32c(&raw);
        raw.extend_from_slice(&crc.to_le_bytes());
        out.reserve(cobs::max_encoded_len(raw.len()) + 2);
        out.push(0);
        cobs::encode_into(&raw, out);
        out.push(0);
        Ok(())
    }
}

/// The header fields of a packet that passed its CRC, for errors a board answers with NAK.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub version: u8,
    pub dst: u8,
    pub src: u8,
    pub seq: u8,
    pub kind: u8,
}

/// What is wrong with a payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    #[error("the payload ends early")]
    Short,
    #[error("{0} bytes after the last field")]
    Trailing(usize),
    #[error("field `{0}` has a value this version does not define")]
    Value(&'static str),
}

/// Why bytes from the line did not make a packet. The decoder has already resynchronised
/// when it reports one: the next delimiter starts afresh.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("a frame longer than {limit} bytes was dropped")]
    Oversize { limit: usize },
    #[error("bad COBS: {0}")]
    Cobs(#[from] CobsError),
    #[error("a frame of {len} bytes is too short for a packet")]
    Short { len: usize },
    #[error("CRC mismatch: computed {computed:08X}, received {received:08X}")]
    Crc { computed: u32, received: u32 },
    #[error("protocol version {} is not {VERSION}", .0.version)]
    Version(Header),
    #[error("unknown message type {:02X}", .0.kind)]
    UnknownType(Header),
    #[error("message type {:02X}: {error}", .header.kind)]
    Payload { header: Header, error: PayloadError },
}

impl DecodeError {
    /// The header, when the packet passed its CRC: a board answers such errors with a NAK
    /// if the packet was addressed to it alone.
    pub fn header(&self) -> Option<&Header> {
        match self {
            DecodeError::Version(h) | DecodeError::UnknownType(h) => Some(h),
            DecodeError::Payload { header, .. } => Some(header),
            _ => None,
        }
    }

    /// The NAK a board sends for this error, if it sends one.
    pub fn nak(&self) -> Option<Message> {
        let reason = match self {
            DecodeError::Version(_) => NakReason::Version,
            DecodeError::UnknownType(_) => NakReason::UnknownType,
            DecodeError::Payload { .. } => NakReason::Payload,
            _ => return None,
        };
        let detail = if reason == NakReason::Version {
            VERSION
        } else {
            0
        };
        Some(Message::Nak { reason, detail })
    }
}

/// A cursor over a payload that never reads past its end (little-endian integers). Bodies in
/// `transfer.rs` read with it too.
pub(super) struct Reader<'a> {
    pub(super) bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(super) fn take(&mut self, n: usize) -> Result<&'a [u8], PayloadError> {
        if self.bytes.len() < n {
            return Err(PayloadError::Short);
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(head)
    }
    pub(super) fn u8(&mut self) -> Result<u8, PayloadError> {
        Ok(self.take(1)?[0])
    }
    pub(super) fn u16(&mut self) -> Result<u16, PayloadError> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }
    pub(super) fn u32(&mut self) -> Result<u32, PayloadError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    pub(super) fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.bytes)
    }
    pub(super) fn end(&self) -> Result<(), PayloadError> {
        match self.bytes.len() {
            0 => Ok(()),
            n => Err(PayloadError::Trailing(n)),
        }
    }
}

/// Parses one unstuffed packet (header, payload, CRC).
pub fn parse(raw: &[u8]) -> Result<Packet, DecodeError> {
    if raw.len() < HEADER_LEN + CRC_LEN {
        return Err(DecodeError::Short { len: raw.len() });
    }
    let (body, crc) = raw.split_at(raw.len() - CRC_LEN);
    let received = u32::from_le_bytes([crc[0], crc[1], crc[2], crc[3]]);
    let computed = crc32c(body);
    if computed != received {
        return Err(DecodeError::Crc { computed, received });
    }
    let header = Header {
        version: body[0],
        dst: body[1],
        src: body[2],
        seq: body[3],
        kind: body[4],
    };
    if header.version != VERSION {
        return Err(DecodeError::Version(header));
    }
    if !matches!(
        header.kind,
        kind::HELLO
            | kind::FRAME
            | kind::RECT
            | kind::PROGRAM
            | kind::BRIGHTNESS
            | kind::POWER
            | kind::HEARTBEAT
            | kind::CLEAR
            | kind::ACK
            | kind::NAK
            | kind::INFO
            | kind::STATUS
    ) {
        return Err(DecodeError::UnknownType(header));
    }
    let mut r = Reader {
        bytes: &body[HEADER_LEN..],
    };
    let chunk = |kind, r: &mut Reader| -> Result<Message, PayloadError> {
        let (xfer, index, count) = (r.u8()?, r.u8()?, r.u8()?);
        if count == 0 || index >= count {
            return Err(PayloadError::Value("chunk index"));
        }
        Ok(Message::Chunk(Chunk {
            kind,
            xfer,
            index,
            count,
            data: r.rest().to_vec(),
        }))
    };
    let message = (|| -> Result<Message, PayloadError> {
        let m = match header.kind {
            kind::HELLO => Message::Hello,
            kind::ACK => Message::Ack,
            kind::FRAME => chunk(BodyKind::Frame, &mut r)?,
            kind::RECT => chunk(BodyKind::Rect, &mut r)?,
            kind::PROGRAM => chunk(BodyKind::Program, &mut r)?,
            kind::BRIGHTNESS => Message::Brightness(r.u8()?),
            kind::POWER => Message::Power(match r.u8()? {
                0 => false,
                1 => true,
                _ => return Err(PayloadError::Value("power")),
            }),
            kind::HEARTBEAT => Message::Heartbeat {
                content: r.u16()?,
                extend: r.u16()?,
            },
            kind::CLEAR => Message::Clear(match r.u8()? {
                0 => ClearMode::Blank,
                1 => ClearMode::IdleLogo,
                _ => return Err(PayloadError::Value("clear mode")),
            }),
            kind::NAK => Message::Nak {
                reason: NakReason::from_code(r.u8()?),
                detail: r.u8()?,
            },
            kind::INFO => {
                let version = r.u8()?;
                let width = r.u16()?;
                let height = r.u16()?;
                let format = format_from_code(r.u8()?).ok_or(PayloadError::Value("format"))?;
                let buffer = r.u16()?;
                let store = r.u32()?;
                let caps = Caps::from_byte(r.u8()?);
                let brightness_max = r.u8()?;
                let len = usize::from(r.u8()?);
                if len > MAX_FIRMWARE {
                    return Err(PayloadError::Value("firmware length"));
                }
                let firmware = std::str::from_utf8(r.take(len)?)
                    .map_err(|_| PayloadError::Value("firmware"))?
                    .to_owned();
                Message::Info(Info {
                    version,
                    width,
                    height,
                    format,
                    buffer,
                    store,
                    caps,
                    brightness_max,
                    firmware,
                })
            }
            kind::STATUS => Message::Status(Status {
                state: match r.u8()? {
                    0 => ShowState::Idle,
                    1 => ShowState::Frame,
                    2 => ShowState::ProgramPlaying,
                    3 => ShowState::ProgramDone,
                    _ => return Err(PayloadError::Value("state")),
                },
                content: r.u16()?,
                remaining: r.u16()?,
                brightness: r.u8()?,
                power: r.u8()? != 0,
                rx_errors: r.u16()?,
                uptime: r.u32()?,
            }),
            // Checked above; kept as an error rather than a panic on line input.
            _ => return Err(PayloadError::Value("type")),
        };
        r.end()?;
        Ok(m)
    })();
    match message {
        Ok(message) => Ok(Packet {
            dst: header.dst,
            src: header.src,
            seq: header.seq,
            message,
        }),
        Err(error) => Err(DecodeError::Payload { header, error }),
    }
}

/// An incremental decoder: feed it bytes as they come off the line, get packets and errors.
///
/// It keeps at most one frame in memory, and never more than the COBS size of `max_packet`
/// bytes: a longer frame is reported as [`DecodeError::Oversize`] and skipped up to the next
/// delimiter. Garbage between frames is isolated by the delimiters around every frame.
#[derive(Debug)]
pub struct Decoder {
    max_packet: usize,
    frame: Vec<u8>,
    unstuffed: Vec<u8>,
    /// Inside an oversize frame: drop bytes until the next delimiter.
    skipping: bool,
}

impl Decoder {
    /// A decoder for packets of at most `max_packet` bytes (header, payload and CRC), which
    /// is at least [`MIN_BUFFER`]. A board passes its `buffer`; a host passes the largest
    /// reply it expects (INFO is at most 88 bytes).
    pub fn new(max_packet: usize) -> Decoder {
        let max_packet = max_packet.max(MIN_BUFFER);
        Decoder {
            max_packet,
            frame: Vec::new(),
            unstuffed: Vec::new(),
            skipping: false,
        }
    }

    /// The most bytes this decoder will hold for one frame.
    pub fn max_frame(&self) -> usize {
        cobs::max_encoded_len(self.max_packet)
    }

    /// Feeds bytes; returns every packet and error completed by them, in order.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<Result<Packet, DecodeError>> {
        let mut out = Vec::new();
        let limit = self.max_frame();
        for &byte in bytes {
            if byte != 0 {
                if self.skipping {
                    continue;
                }
                if self.frame.len() == limit {
                    self.frame.clear();
                    self.skipping = true;
                    out.push(Err(DecodeError::Oversize {
                        limit: self.max_packet,
                    }));
                    continue;
                }
                if self.frame.capacity() == 0 {
                    self.frame.reserve_exact(limit);
                }
                self.frame.push(byte);
                continue;
            }
            // A delimiter ends the frame. Empty frames (the `00 00` between packets) are
            // not errors.
            self.skipping = false;
            if self.frame.is_empty() {
                continue;
            }
            let result = cobs::decode_into(&self.frame, &mut self.unstuffed)
                .map_err(DecodeError::from)
                .and_then(|()| parse(&self.unstuffed));
            self.frame.clear();
            out.push(result);
        }
        out
    }

    /// Forgets a partly received frame, as after a long silence on the line.
    pub fn reset(&mut self) {
        self.frame.clear();
        self.skipping = false;
    }
}

/// Sequence numbers and transfer ids of a host, one per board (or per bus: numbers only
/// need to differ between consecutive requests to the same board).
#[derive(Debug, Clone, Default)]
pub struct Sequencer {
    seq: u8,
    xfer: u8,
}

impl Sequencer {
    /// A request to `dst` with the next sequence number. A retry resends the same packet.
    pub fn request(&mut self, dst: u8, message: Message) -> Packet {
        self.seq = self.seq.wrapping_add(1);
        Packet {
            dst,
            src: HOST,
            seq: self.seq,
            message,
        }
    }

    /// The next transfer id.
    pub fn next_xfer(&mut self) -> u8 {
        self.xfer = self.xfer.wrapping_add(1);
        self.xfer
    }
}

/// The reply a board sends to a request: same sequence number, addressed to the host.
pub fn reply(request: &Packet, board: u8, message: Message) -> Packet {
    Packet {
        dst: HOST,
        src: board,
        seq: request.seq,
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::model::PixelFormat;

    fn hex(s: &str) -> Vec<u8> {
        s.split_whitespace()
            .map(|b| u8::from_str_radix(b, 16).unwrap())
            .collect()
    }

    fn packet(dst: u8, src: u8, seq: u8, message: Message) -> Packet {
        Packet {
            dst,
            src,
            seq,
            message,
        }
    }

    fn info() -> Info {
        Info {
            version: 1,
            width: 128,
            height: 16,
            format: PixelFormat::Mono,
            buffer: 512,
            store: 65536,
            caps: Caps {
                local_pages: true,
                local_scroll: true,
                idle_logo: false,
            },
            brightness_max: 15,
            firmware: "gk-ref 1.0".into(),
        }
    }

    fn status() -> Status {
        Status {
            state: ShowState::Frame,
            content: 7,
            remaining: 300,
            brightness: 8,
            power: true,
            rx_errors: 2,
            uptime: 3600,
        }
    }

    /// The worked examples of docs/protocol.md, byte for byte.
    #[test]
    fn worked_examples_of_the_spec() {
        let cases = [
            (
                packet(3, HOST, 0x01, Message::Hello),
                "00 03 01 03 07 01 01 D4 8B 88 FE 00",
            ),
            (
                packet(HOST, 3, 0x01, Message::Info(info())),
                "00 02 01 06 03 01 82 01 80 02 10 01 01 02 02 01 02 01 12 03 0F 0A 67 6B 2D 72 \
                 65 66 20 31 2E 30 FF 3F D3 22 00",
            ),
            (
                packet(BROADCAST, HOST, 0x02, Message::Brightness(8)),
                "00 03 01 FF 08 02 05 08 59 8A EC 80 00",
            ),
            (
                packet(HOST, 3, 0x03, Message::Ack),
                "00 02 01 08 03 03 80 0B 4A 5C 21 00",
            ),
            (
                packet(
                    HOST,
                    3,
                    0x05,
                    Message::Nak {
                        reason: NakReason::Missing,
                        detail: 0,
                    },
                ),
                "00 02 01 05 03 05 81 06 05 15 D9 C0 7A 00",
            ),
            (
                packet(
                    3,
                    HOST,
                    0x06,
                    Message::Heartbeat {
                        content: 7,
                        extend: 300,
                    },
                ),
                "00 03 01 03 04 06 07 07 07 2C 01 DD DA EE 12 00",
            ),
            (
                packet(HOST, 3, 0x06, Message::Status(status())),
                "00 02 01 06 03 06 83 01 07 06 2C 01 08 01 02 03 10 0E 01 05 48 78 51 3F 00",
            ),
            (
                packet(3, HOST, 0x07, Message::Clear(ClearMode::IdleLogo)),
                "00 03 01 03 08 07 08 01 B5 83 A6 EB 00",
            ),
            (
                packet(3, HOST, 0x08, Message::Power(false)),
                "00 03 01 03 03 08 06 05 90 C8 B7 A1 00",
            ),
        ];
        for (packet, wire) in cases {
            let bytes = packet.encode().unwrap();
            assert_eq!(bytes, hex(wire), "{packet:?}");
            let mut decoder = Decoder::new(MIN_BUFFER);
            assert_eq!(decoder.push(&bytes), vec![Ok(packet)]);
        }
    }

    #[test]
    fn the_hello_example_unstuffed() {
        // Header 01 03 00 01 01, no payload, CRC-32C 8B88FED4 little-endian.
        let raw = hex("01 03 00 01 01 D4 8B 88 FE");
        assert_eq!(crc32c(&raw[..5]), 0xFE88_8BD4);
        assert_eq!(parse(&raw).unwrap(), packet(3, HOST, 1, Message::Hello));
    }

    fn every_message() -> Vec<Packet> {
        vec![
            packet(1, HOST, 0, Message::Hello),
            packet(HOST, 1, 0, Message::Info(info())),
            packet(
                254,
                HOST,
                9,
                Message::Chunk(Chunk {
                    kind: BodyKind::Frame,
                    xfer: 4,
                    index: 0,
                    count: 1,
                    data: vec![0, 1, 2, 0, 0, 0xFF],
                }),
            ),
            packet(
                2,
                HOST,
                10,
                Message::Chunk(Chunk {
                    kind: BodyKind::Rect,
                    xfer: 5,
                    index: 1,
                    count: 2,
                    data: vec![],
                }),
            ),
            packet(
                2,
                HOST,
                11,
                Message::Chunk(Chunk {
                    kind: BodyKind::Program,
                    xfer: 6,
                    index: 254,
                    count: 255,
                    data: (0..=255).collect(),
                }),
            ),
            packet(BROADCAST, HOST, 12, Message::Brightness(255)),
            packet(2, HOST, 13, Message::Power(true)),
            packet(
                2,
                HOST,
                14,
                Message::Heartbeat {
                    content: 0xFFFF,
                    extend: 0,
                },
            ),
            packet(2, HOST, 15, Message::Clear(ClearMode::Blank)),
            packet(HOST, 2, 15, Message::Status(status())),
            packet(HOST, 2, 255, Message::Ack),
            packet(
                HOST,
                2,
                16,
                Message::Nak {
                    reason: NakReason::Other(0xEE),
                    detail: 9,
                },
            ),
        ]
    }

    #[test]
    fn every_message_round_trips_in_one_push_and_byte_by_byte() {
        let packets = every_message();
        let mut stream = Vec::new();
        for p in &packets {
            p.encode_into(&mut stream).unwrap();
        }
        let expected: Vec<_> = packets.iter().cloned().map(Ok).collect();
        let mut decoder = Decoder::new(512);
        assert_eq!(decoder.push(&stream), expected);
        let mut decoder = Decoder::new(512);
        let one_by_one: Vec<_> = stream.iter().flat_map(|b| decoder.push(&[*b])).collect();
        assert_eq!(one_by_one, expected);
    }

    #[test]
    fn every_nak_reason_round_trips() {
        for code in 0..=255u8 {
            let reason = NakReason::from_code(code);
            assert_eq!(reason.code(), code);
        }
    }

    #[test]
    fn encoding_refuses_bad_packets() {
        let mut long = info();
        long.firmware = "x".repeat(65);
        assert_eq!(
            packet(HOST, 1, 0, Message::Info(long)).encode(),
            Err(EncodeError::FirmwareTooLong(65))
        );
        let chunk = |index, count| {
            packet(
                1,
                HOST,
                0,
                Message::Chunk(Chunk {
                    kind: BodyKind::Frame,
                    xfer: 0,
                    index,
                    count,
                    data: vec![],
                }),
            )
        };
        assert!(chunk(0, 0).encode().is_err());
        assert!(chunk(3, 3).encode().is_err());
    }

    /// A stream of good packets with a fault injected into the middle one.
    fn faulty_stream(
        fault: impl Fn(&mut Vec<u8>),
    ) -> (Vec<Packet>, Vec<Result<Packet, DecodeError>>) {
        let packets = every_message();
        let mut stream = Vec::new();
        for (i, p) in packets.iter().enumerate() {
            let mut bytes = p.encode().unwrap();
            if i == 2 {
                fault(&mut bytes);
            }
            stream.extend(bytes);
        }
        let mut decoder = Decoder::new(512);
        (packets, decoder.push(&stream))
    }

    /// Every packet but the damaged third arrives; the damage is reported once.
    fn assert_recovers(results: &[Result<Packet, DecodeError>], packets: &[Packet]) {
        let good: Vec<_> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
        let expected: Vec<_> = packets
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != 2)
            .map(|(_, p)| p)
            .collect();
        assert_eq!(good, expected);
        assert_eq!(
            results.iter().filter(|r| r.is_err()).count(),
            1,
            "{results:?}"
        );
    }

    #[test]
    fn a_flipped_bit_is_reported_and_the_next_packet_decodes() {
        for bit in 0..8 {
            for at in [1usize, 2, 5, 9] {
                let (packets, results) = faulty_stream(|b| {
                    b[at] ^= 1 << bit;
                });
                // A flip that makes a zero inside the frame splits it in two.
                let errors = results.iter().filter(|r| r.is_err()).count();
                assert!((1..=2).contains(&errors), "bit {bit} at {at}: {results:?}");
                let good = results.iter().filter(|r| r.is_ok()).count();
                assert_eq!(good, packets.len() - 1, "bit {bit} at {at}");
            }
        }
        let (packets, results) = faulty_stream(|b| b[6] ^= 0x10);
        assert_recovers(&results, &packets);
        assert!(
            results
                .iter()
                .any(|r| matches!(r, Err(DecodeError::Crc { .. }) | Err(DecodeError::Cobs(_))))
        );
    }

    #[test]
    fn a_dropped_byte_is_reported_and_the_next_packet_decodes() {
        for at in 1..8 {
            let (packets, results) = faulty_stream(|b| {
                b.remove(at);
            });
            assert_recovers(&results, &packets);
        }
    }

    #[test]
    fn a_truncated_packet_is_reported_and_the_next_packet_decodes() {
        let len = every_message()[2].encode().unwrap().len();
        // Cutting only the final delimiter loses nothing: the next packet's leading one
        // ends the frame. Any deeper cut loses the packet.
        for keep in [2usize, 5, len - 5, len - 2] {
            let (packets, results) = faulty_stream(|b| b.truncate(keep));
            assert_recovers(&results, &packets);
        }
    }

    #[test]
    fn garbage_between_packets_is_isolated() {
        let packets = every_message();
        let garbage: [&[u8]; 4] = [
            &[0xFF; 40],
            &[0x00, 0x00, 0x00],
            &[0x12, 0x34, 0x00, 0x56, 0x02, 0x01],
            b"Ada\x00\x01\x54 random line noise",
        ];
        let mut stream = Vec::new();
        for (i, p) in packets.iter().enumerate() {
            stream.extend_from_slice(garbage[i % garbage.len()]);
            p.encode_into(&mut stream).unwrap();
        }
        let mut decoder = Decoder::new(512);
        let results = decoder.push(&stream);
        let good: Vec<_> = results.iter().filter_map(|r| r.clone().ok()).collect();
        assert_eq!(good, packets);
        assert!(results.iter().any(|r| r.is_err()));
    }

    #[test]
    fn an_oversize_frame_is_dropped_without_growing_the_buffer() {
        let mut decoder = Decoder::new(100);
        let limit = decoder.max_frame();
        let results = decoder.push(&[0x55; 10_000]);
        assert_eq!(results, vec![Err(DecodeError::Oversize { limit: 100 })]);
        assert!(decoder.frame.capacity() <= limit);
        // Still skipping: more noise adds no error until a delimiter.
        assert!(decoder.push(&[0x55; 1000]).is_empty());
        let hello = packet(1, HOST, 1, Message::Hello);
        assert_eq!(decoder.push(&hello.encode().unwrap()), vec![Ok(hello)]);
    }

    #[test]
    fn random_bytes_never_panic_nor_allocate_beyond_the_limit() {
        let mut state = 0x2545_F491_4F6C_DD1Du64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut decoder = Decoder::new(MIN_BUFFER);
        let good = packet(1, HOST, 1, Message::Hello).encode().unwrap();
        let mut decoded_good = 0;
        for round in 0..2_000 {
            let len = (next() % 300) as usize;
            // Mostly small values, so COBS codes often fit and CRCs are what catch errors.
            let noise: Vec<u8> = (0..len)
                .map(|_| match next() % 4 {
                    0 => 0,
                    _ => (next() >> 32) as u8 % 16,
                })
                .collect();
            decoder.push(&noise);
            assert!(decoder.frame.capacity() <= decoder.max_frame());
            assert!(decoder.unstuffed.capacity() <= decoder.max_frame().max(64));
            if round % 10 == 0 {
                let results = decoder.push(&good);
                decoded_good += results.iter().filter(|r| r.is_ok()).count();
            }
        }
        // The leading delimiter of every good packet cuts the noise before it.
        assert_eq!(decoded_good, 200);
    }

    #[test]
    fn errors_that_passed_the_crc_carry_the_header_for_a_nak() {
        let raw_packet = |bytes: &[u8]| {
            let mut raw = bytes.to_vec();
            raw.extend_from_slice(&crc32c(bytes).to_le_bytes());
            let mut wire = vec![0];
            cobs::encode_into(&raw, &mut wire);
            wire.push(0);
            wire
        };
        let mut decoder = Decoder::new(MIN_BUFFER);
        let results = decoder.push(&raw_packet(&[2, 5, 0, 9, kind::HELLO]));
        let Err(error) = &results[0] else {
            panic!("{results:?}")
        };
        assert!(matches!(error, DecodeError::Version(h) if h.version == 2 && h.seq == 9));
        assert_eq!(
            error.nak(),
            Some(Message::Nak {
                reason: NakReason::Version,
                detail: VERSION
            })
        );
        let results = decoder.push(&raw_packet(&[1, 5, 0, 9, 0x42]));
        assert!(matches!(&results[0], Err(DecodeError::UnknownType(h)) if h.kind == 0x42));
        for bad in [
            &[1, 5, 0, 9, kind::POWER, 2][..],
            &[1, 5, 0, 9, kind::POWER][..],
            &[1, 5, 0, 9, kind::HELLO, 0][..],
            &[1, 5, 0, 9, kind::FRAME, 1, 3, 3][..],
            &[1, 5, 0, 9, kind::CLEAR, 7][..],
        ] {
            let results = decoder.push(&raw_packet(bad));
            let Err(error) = &results[0] else {
                panic!("{bad:?}: {results:?}")
            };
            assert!(
                matches!(error, DecodeError::Payload { .. }),
                "{bad:?}: {error:?}"
            );
            assert_eq!(error.header().map(|h| h.dst), Some(5));
            assert!(matches!(
                error.nak(),
                Some(Message::Nak {
                    reason: NakReason::Payload,
                    ..
                })
            ));
        }
        let results = decoder.push(&[0x00, 0x02, 0x01, 0x01, 0x00]);
        assert_eq!(results, vec![Err(DecodeError::Short { len: 2 })]);
        assert_eq!(results[0].as_ref().err().and_then(DecodeError::nak), None);
    }

    #[test]
    fn sequence_numbers_count_up_and_wrap_and_replies_echo_them() {
        let mut seq = Sequencer::default();
        let first = seq.request(4, Message::Hello);
        assert_eq!((first.seq, first.src, first.dst), (1, HOST, 4));
        for _ in 0..254 {
            seq.request(4, Message::Hello);
        }
        assert_eq!(seq.request(4, Message::Hello).seq, 0);
        let answer = reply(&first, 4, Message::Ack);
        assert_eq!((answer.seq, answer.src, answer.dst), (1, 4, HOST));
    }
}
