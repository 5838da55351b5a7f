//! Onbon BX-5K (仰邦) text protocol, for controllers already installed: ping, status, clear,
//! and GB2312 text in a dynamic (RAM) area.
//!
//! Owns the frame format and the few commands gongkai sends. Must not touch the port (a
//! link's) or decide what text to show (the schedule's). The format is a third-party
//! reconstruction for the BX-5K generation (see `docs/protocol.md`, "Onbon BX-5K", for what
//! is verified against published bytes and what is not).
//!
//! A frame: eight `A5`, then escaped(14-byte header ‖ data ‖ CRC-16/ARC little-endian), then
//! `5A`. Multi-byte fields are little-endian. Escaping: `A5 → A6 02`, `A6 → A6 01`,
//! `5A → 5B 02`, `5B → 5B 01`, so `A5` and `5A` appear only as the frame's edges.

use super::crc::crc16_arc;

pub const PREAMBLE: [u8; 8] = [0xA5; 8];
pub const END: u8 = 0x5A;
/// Destination of the first screen; controllers are set to 1 unless renumbered.
pub const SCREEN_1: u16 = 0x0001;
/// Broadcast destinations (`FF FF` for timing, `FF FE` for settings).
pub const BROADCAST_TIMING: u16 = 0xFFFF;
pub const BROADCAST_SETTING: u16 = 0xFFFE;
/// Source address of a PC.
pub const SOURCE: u16 = 0x8000;
/// "Any controller type".
pub const DEVICE_ANY: u8 = 0xFE;
pub const PROTOCOL_VERSION: u8 = 0x02;
pub const HEADER_LEN: usize = 14;
/// The reserved bytes the published dynamic-area example sends ("ProcessMode"); their
/// meaning is not known.
pub const EXAMPLE_PROCESS_MODE: u8 = 0x2D;

/// Command group and code.
pub mod command {
    pub const PING: (u8, u8) = (0xA2, 0x00);
    pub const STATUS: (u8, u8) = (0xA1, 0x02);
    pub const CLEAR: (u8, u8) = (0xA3, 0x10);
    pub const DYNAMIC_AREA: (u8, u8) = (0xA3, 0x06);
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Bx5kError {
    #[error("{ch:?} (at character {index}) is not in GB2312")]
    NotGb2312 { ch: char, index: usize },
    #[error("{0} bytes of data; a frame carries at most 65535")]
    TooLong(usize),
    #[error("no frame: {0}")]
    Malformed(&'static str),
    #[error("CRC mismatch: computed {computed:04X}, received {received:04X}")]
    Crc { computed: u16, received: u16 },
}

/// A command and its payload: the frame's data field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    pub group: u8,
    pub code: u8,
    /// Ask the controller to answer (`01`) or not (`02`).
    pub reply: bool,
    pub reserved: [u8; 2],
    pub payload: Vec<u8>,
}

impl Command {
    fn simple((group, code): (u8, u8)) -> Command {
        Command {
            group,
            code,
            reply: true,
            reserved: [0, 0],
            payload: Vec::new(),
        }
    }
}

fn escape_into(data: &[u8], out: &mut Vec<u8>) {
    for &b in data {
        match b {
            0xA5 => out.extend_from_slice(&[0xA6, 0x02]),
            0xA6 => out.extend_from_slice(&[0xA6, 0x01]),
            0x5A => out.extend_from_slice(&[0x5B, 0x02]),
            0x5B => out.extend_from_slice(&[0x5B, 0x01]),
            _ => out.push(b),
        }
    }
}

/// The frame carrying `command` to `dst`.
pub fn frame(dst: u16, command: &Command) -> Result<Vec<u8>, Bx5kError> {
    let data_len = 5 + command.payload.len();
    let len = u16::try_from(data_len).map_err(|_| Bx5kError::TooLong(data_len))?;
    let mut plain = Vec::with_capacity(HEADER_LEN + data_len + 2);
    plain.extend_from_slice(&dst.to_le_bytes());
    plain.extend_from_slice(&SOURCE.to_le_bytes());
    plain.extend_from_slice(&[0; 6]);
    plain.extend_from_slice(&[DEVICE_ANY, PROTOCOL_VERSION]);
    plain.extend_from_slice(&len.to_le_bytes());
    plain.extend_from_slice(&[
        command.group,
        command.code,
        if command.reply { 0x01 } else { 0x02 },
        command.reserved[0],
        command.reserved[1],
    ]);
    plain.extend_from_slice(&command.payload);
    let crc = crc16_arc(&plain);
    plain.extend_from_slice(&crc.to_le_bytes());
    let mut out = Vec::with_capacity(PREAMBLE.len() + plain.len() * 2 + 1);
    out.extend_from_slice(&PREAMBLE);
    escape_into(&plain, &mut out);
    out.push(END);
    Ok(out)
}

/// Is the controller there? It answers with a status frame.
pub fn ping(dst: u16) -> Vec<u8> {
    simple(dst, command::PING)
}

/// Ask for the controller's status.
pub fn status(dst: u16) -> Vec<u8> {
    simple(dst, command::STATUS)
}

/// Blank the screen.
pub fn clear(dst: u16) -> Vec<u8> {
    simple(dst, command::CLEAR)
}

fn simple(dst: u16, cmd: (u8, u8)) -> Vec<u8> {
    // Five bytes of data always fit the 16-bit length.
    frame(dst, &Command::simple(cmd)).unwrap_or_default()
}

/// How a dynamic area behaves over time (names from the public reconstruction).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunMode {
    /// Loop the content.
    Cycle = 0x00,
    /// Play once, then keep the last screen.
    OnceThenStay = 0x01,
    /// Loop; stop showing the area when not refreshed within the timeout. gongkai's
    /// default: it is the board-side form of gongkai's valid-until.
    CycleUntilTimeout = 0x02,
    /// Loop; after the timeout without refresh, show the last/logo screen.
    CycleThenLast = 0x03,
    Once = 0x04,
    OnceUntilTimeout = 0x05,
}

/// How text enters the area.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    Static = 0x01,
    QuickType = 0x02,
    MoveLeft = 0x03,
    MoveRight = 0x04,
    MoveUp = 0x05,
    MoveDown = 0x06,
}

/// Text in a dynamic area. Geometry in pixels; `x` and `width` go on the wire in units of 8
/// pixels when they are multiples of 8 (as in the published example), else as pixels with
/// the high bit set (reconstructed, unverified).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DynamicArea<'a> {
    /// 0 for the first dynamic area.
    pub id: u8,
    pub x: u16,
    pub y: u16,
    pub width: u16,
    pub height: u16,
    pub line_spacing: u8,
    pub run_mode: RunMode,
    /// Seconds, for the timeout run modes.
    pub timeout: u16,
    /// Bits: `01` right, `02` centred horizontally, `04` bottom, `08` centred vertically.
    pub align: u8,
    pub single_line: bool,
    pub auto_wrap: bool,
    pub effect: Effect,
    pub exit: u8,
    /// 0 fastest to 24 slowest.
    pub speed: u8,
    /// Hold time in half seconds.
    pub stay: u8,
    pub process_mode: u8,
    /// Encoded as GB2312.
    pub text: &'a str,
}

impl DynamicArea<'_> {
    /// A left-moving text area over the whole of a `width` × `height` screen that blanks
    /// itself when not refreshed for `timeout` seconds.
    pub fn full_screen(width: u16, height: u16, text: &str, timeout: u16) -> DynamicArea<'_> {
        DynamicArea {
            id: 0,
            x: 0,
            y: 0,
            width,
            height,
            line_spacing: 0,
            run_mode: RunMode::CycleUntilTimeout,
            timeout,
            align: 0,
            single_line: false,
            auto_wrap: true,
            effect: Effect::MoveLeft,
            exit: 0,
            speed: 4,
            stay: 5,
            process_mode: EXAMPLE_PROCESS_MODE,
            text,
        }
    }
}

fn horizontal(v: u16) -> u16 {
    if v.is_multiple_of(8) {
        v / 8
    } else {
        0x8000 | v
    }
}

/// The frame that puts `area` on the controller at `dst`.
pub fn dynamic_area(dst: u16, area: &DynamicArea) -> Result<Vec<u8>, Bx5kError> {
    let text = gb2312(area.text)?;
    let mut a = Vec::with_capacity(27 + text.len());
    a.push(0x00); // area type: dynamic
    a.extend_from_slice(&horizontal(area.x).to_le_bytes());
    a.extend_from_slice(&area.y.to_le_bytes());
    a.extend_from_slice(&horizontal(area.width).to_le_bytes());
    a.extend_from_slice(&area.height.to_le_bytes());
    a.extend_from_slice(&[area.id, area.line_spacing, area.run_mode as u8]);
    a.extend_from_slice(&area.timeout.to_le_bytes());
    a.push(0x00); // no voice
    a.push(0x00); // no extension bytes
    a.push(area.align);
    a.push(if area.single_line { 0x01 } else { 0x02 });
    a.push(if area.auto_wrap { 0x02 } else { 0x01 });
    a.extend_from_slice(&[area.effect as u8, area.exit, area.speed, area.stay]);
    a.extend_from_slice(&(text.len() as u32).to_le_bytes());
    a.extend_from_slice(&text);
    let area_len = u16::try_from(a.len()).map_err(|_| Bx5kError::TooLong(a.len()))?;
    let mut payload = Vec::with_capacity(4 + a.len());
    payload.extend_from_slice(&[0x00, 0x01]); // delete no area, update one
    payload.extend_from_slice(&area_len.to_le_bytes());
    payload.extend_from_slice(&a);
    let (group, code) = command::DYNAMIC_AREA;
    frame(
        dst,
        &Command {
            group,
            code,
            reply: true,
            reserved: [area.process_mode, 0x00],
            payload,
        },
    )
}

/// `text` in GB2312 (ASCII as is, hanzi and symbols as two bytes). Characters outside
/// GB2312 — including the GBK extensions the encoder knows — are an error, because the
/// controller's font has no glyph for them.
pub fn gb2312(text: &str) -> Result<Vec<u8>, Bx5kError> {
    let mut out = Vec::with_capacity(text.len());
    let mut buf = [0u8; 4];
    for (index, ch) in text.chars().enumerate() {
        if ch.is_ascii() {
            out.push(ch as u8);
            continue;
        }
        let (bytes, _, unmappable) = encoding_rs::GBK.encode(ch.encode_utf8(&mut buf));
        match *bytes {
            [lead, trail] if !unmappable && in_gb2312(lead, trail) => {
                out.extend_from_slice(&[lead, trail]);
            }
            _ => return Err(Bx5kError::NotGb2312 { ch, index }),
        }
    }
    Ok(out)
}

/// Whether a two-byte code is assigned in GB2312 (GB 2312-80's 7,445 characters), as
/// opposed to the GBK extensions around it.
fn in_gb2312(lead: u8, trail: u8) -> bool {
    let t = |lo: u8, hi: u8| (lo..=hi).contains(&trail);
    match lead {
        0xA1 | 0xA3 => t(0xA1, 0xFE),
        0xA2 => t(0xB1, 0xE2) || t(0xE5, 0xEE) || t(0xF1, 0xFC),
        0xA4 => t(0xA1, 0xF3),
        0xA5 => t(0xA1, 0xF6),
        0xA6 => t(0xA1, 0xB8) || t(0xC1, 0xD8),
        0xA7 => t(0xA1, 0xC1) || t(0xD1, 0xF1),
        0xA8 => t(0xA1, 0xBA) || t(0xC5, 0xE9),
        0xA9 => t(0xA4, 0xEF),
        0xD7 => t(0xA1, 0xF9),
        0xB0..=0xF7 => t(0xA1, 0xFE),
        _ => false,
    }
}

/// A frame read back: header fields and data, CRC checked. For tests and emulators.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    pub dst: u16,
    pub src: u16,
    pub device: u8,
    pub version: u8,
    /// Command group, code, reply flag, two reserved bytes, payload.
    pub data: Vec<u8>,
}

/// Reads one frame: preamble, escaped body, end byte.
pub fn decode(bytes: &[u8]) -> Result<Decoded, Bx5kError> {
    let start = bytes
        .iter()
        .position(|&b| b != 0xA5)
        .ok_or(Bx5kError::Malformed("only preamble"))?;
    if start == 0 {
        return Err(Bx5kError::Malformed("no preamble"));
    }
    let end = bytes[start..]
        .iter()
        .position(|&b| b == END)
        .ok_or(Bx5kError::Malformed("no end byte"))?;
    let escaped = &bytes[start..start + end];
    let mut plain = Vec::with_capacity(escaped.len());
    let mut i = 0;
    while i < escaped.len() {
        let b = escaped[i];
        if b == 0xA6 || b == 0x5B {
            let next = escaped.get(i + 1).copied();
            plain.push(match (b, next) {
                (0xA6, Some(0x02)) => 0xA5,
                (0xA6, Some(0x01)) => 0xA6,
                (0x5B, Some(0x02)) => 0x5A,
                (0x5B, Some(0x01)) => 0x5B,
                _ => return Err(Bx5kError::Malformed("bad escape")),
            });
            i += 2;
        } else {
            plain.push(b);
            i += 1;
        }
    }
    if plain.len() < HEADER_LEN + 2 {
        return Err(Bx5kError::Malformed("too short"));
    }
    let (body, crc) = plain.split_at(plain.len() - 2);
    let received = u16::from_le_bytes([crc[0], crc[1]]);
    let computed = crc16_arc(body);
    if computed != received {
        return Err(Bx5kError::Crc { computed, received });
    }
    let data_len = usize::from(u16::from_le_bytes([body[12], body[13]]));
    if body.len() != HEADER_LEN + data_len {
        return Err(Bx5kError::Malformed("length field"));
    }
    Ok(Decoded {
        dst: u16::from_le_bytes([body[0], body[1]]),
        src: u16::from_le_bytes([body[2], body[3]]),
        device: body[10],
        version: body[11],
        data: body[HEADER_LEN..].to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn preamble_then(rest: &[u8]) -> Vec<u8> {
        let mut v = PREAMBLE.to_vec();
        v.extend_from_slice(rest);
        v
    }

    #[test]
    fn published_ping_status_and_clear() {
        let head = [
            0x01, 0x00, 0x00, 0x80, 0, 0, 0, 0, 0, 0, 0xFE, 0x02, 0x05, 0x00,
        ];
        let with = |cmd: [u8; 2], crc: [u8; 2]| {
            let mut v = head.to_vec();
            v.extend_from_slice(&[cmd[0], cmd[1], 0x01, 0x00, 0x00, crc[0], crc[1], 0x5A]);
            preamble_then(&v)
        };
        assert_eq!(ping(SCREEN_1), with([0xA2, 0x00], [0x68, 0xF8]));
        assert_eq!(status(SCREEN_1), with([0xA1, 0x02], [0x2D, 0x40]));
        assert_eq!(clear(SCREEN_1), with([0xA3, 0x10], [0x51, 0xF8]));
        // The ping exactly as DESIGN.md prints it.
        assert_eq!(
            ping(SCREEN_1),
            [
                0xA5, 0xA5, 0xA5, 0xA5, 0xA5, 0xA5, 0xA5, 0xA5, 0x01, 0x00, 0x00, 0x80, 0x00, 0x00,
                0x00, 0x00, 0x00, 0x00, 0xFE, 0x02, 0x05, 0x00, 0xA2, 0x00, 0x01, 0x00, 0x00, 0x68,
                0xF8, 0x5A
            ]
        );
    }

    #[test]
    fn published_dynamic_area_example() {
        // The annotated example above display() in BX5KProtocol/BX4K.c: a 192×32 area,
        // moving left, speed 4, text "012345QRSTTV'B", CRC A8 7D.
        let area = DynamicArea {
            id: 0,
            x: 0,
            y: 0,
            width: 192,
            height: 32,
            line_spacing: 0,
            run_mode: RunMode::Cycle,
            timeout: 2,
            align: 0,
            single_line: false,
            auto_wrap: true,
            effect: Effect::MoveLeft,
            exit: 0,
            speed: 4,
            stay: 5,
            process_mode: EXAMPLE_PROCESS_MODE,
            text: "012345QRSTTV'B",
        };
        let expected = preamble_then(&[
            0x01, 0x00, 0x00, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xFE, 0x02, // header
            0x32, 0x00, // data length
            0xA3, 0x06, 0x01, 0x2D, 0x00, // command, reply, process mode, reserved
            0x00, 0x01, 0x29, 0x00, // no deletes, one area of 41 bytes
            0x00, 0x00, 0x00, 0x00, 0x00, 0x18, 0x00, 0x20, 0x00, // type, x, y, w/8, h
            0x00, 0x00, 0x00, 0x02, 0x00, // id, spacing, run mode, timeout 2 s
            0x00, 0x00, 0x00, 0x02, 0x02, // voice, extensions, align, multi-line, wrap
            0x03, 0x00, 0x04, 0x05, // move left, exit, speed, stay
            0x0E, 0x00, 0x00, 0x00, // text length
            0x30, 0x31, 0x32, 0x33, 0x34, 0x35, 0x51, 0x52, 0x53, 0x54, 0x54, 0x56, 0x27, 0x42,
            0xA8, 0x7D, 0x5A,
        ]);
        assert_eq!(dynamic_area(SCREEN_1, &area).unwrap(), expected);
    }

    #[test]
    fn escaping_round_trips() {
        let command = Command {
            group: 0xA5,
            code: 0x5A,
            reply: false,
            reserved: [0xA6, 0x5B],
            payload: vec![0xA5, 0xA6, 0x5A, 0x5B, 0x00, 0xFF],
        };
        let bytes = frame(BROADCAST_SETTING, &command).unwrap();
        // The edges are the only A5 run and the only 5A.
        assert_eq!(bytes.iter().filter(|&&b| b == 0x5A).count(), 1);
        assert!(!bytes[8..].contains(&0xA5));
        let decoded = decode(&bytes).unwrap();
        assert_eq!(decoded.dst, BROADCAST_SETTING);
        assert_eq!(decoded.src, SOURCE);
        assert_eq!(
            decoded.data,
            [
                0xA5, 0x5A, 0x02, 0xA6, 0x5B, 0xA5, 0xA6, 0x5A, 0x5B, 0x00, 0xFF
            ]
        );
        let mut corrupt = bytes.clone();
        corrupt[20] ^= 0x01;
        assert!(matches!(decode(&corrupt), Err(Bx5kError::Crc { .. })));
        assert!(decode(&bytes[..bytes.len() - 1]).is_err());
    }

    #[test]
    fn gb2312_text_and_its_limits() {
        assert_eq!(gb2312("公开A").unwrap(), [0xB9, 0xAB, 0xBF, 0xAA, b'A']);
        assert_eq!(
            gb2312("，。【】").unwrap(),
            [0xA3, 0xAC, 0xA1, 0xA3, 0xA1, 0xBE, 0xA1, 0xBF]
        );
        // 镕 is GBK only (outside GB2312); € and emoji are not in either.
        for (text, ch, index) in [("朱镕基", '镕', 1), ("5€", '€', 1), ("好😀", '😀', 1)]
        {
            assert_eq!(
                gb2312(text),
                Err(Bx5kError::NotGb2312 { ch, index }),
                "{text}"
            );
        }
        // The last GB2312 hanzi, 齄 (F7FE), and the gap at the end of row 55 (D7FA–D7FE).
        assert_eq!(gb2312("齄").unwrap(), [0xF7, 0xFE]);
        assert!(!in_gb2312(0xD7, 0xFA));
        assert!(in_gb2312(0xD7, 0xF9));
        let area = DynamicArea::full_screen(128, 16, "镕", 30);
        assert!(matches!(
            dynamic_area(SCREEN_1, &area),
            Err(Bx5kError::NotGb2312 { .. })
        ));
    }

    #[test]
    fn dynamic_area_with_chinese_text_decodes() {
        let area = DynamicArea::full_screen(128, 16, "关于2024年预算公开的公告", 60);
        let bytes = dynamic_area(SCREEN_1, &area).unwrap();
        let decoded = decode(&bytes).unwrap();
        let text = gb2312(area.text).unwrap();
        assert!(decoded.data.ends_with(&text));
        // run mode 2 (blank when not refreshed) with a 60 s timeout
        assert_eq!(&decoded.data[9 + 11..9 + 14], &[0x02, 60, 0]);
    }
}
