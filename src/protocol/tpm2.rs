//! TPM2 over serial (WLED and hobby matrices): `C9`, type, size high, size low, data, `36`.
//!
//! Owns the block format. The LED order comes from [`super::pixels`]; the port is a link's.
//! TPM2 has no checksum and no escaping: a lost byte misaligns the stream until the next
//! block start, which the decoder here finds by checking the end byte.

use super::PixelStreamError;
use super::pixels::led_bytes;
use crate::config::model::{PixelFormat, Wiring};
use crate::raster::frame::Frame;

pub const START: u8 = 0xC9;
pub const END: u8 = 0x36;
/// Block types.
pub const TYPE_DATA: u8 = 0xDA;
pub const TYPE_COMMAND: u8 = 0xC0;
pub const TYPE_REQUEST: u8 = 0xAA;
/// The largest data size a block can declare.
pub const MAX_DATA: usize = u16::MAX as usize;

/// One block around `data`.
pub fn block(kind: u8, data: &[u8]) -> Result<Vec<u8>, PixelStreamError> {
    let size = u16::try_from(data.len()).map_err(|_| PixelStreamError::TooManyLeds {
        leds: data.len() / 3,
        max: MAX_DATA / 3,
    })?;
    let mut out = Vec::with_capacity(data.len() + 5);
    out.extend_from_slice(&[START, kind]);
    out.extend_from_slice(&size.to_be_bytes());
    out.extend_from_slice(data);
    out.push(END);
    Ok(out)
}

/// A data block with every LED of an rgb888 `frame`, in the board's wiring.
pub fn encode(frame: &Frame, wiring: &Wiring) -> Result<Vec<u8>, PixelStreamError> {
    if frame.format != PixelFormat::Rgb888 {
        return Err(PixelStreamError::Format(frame.format));
    }
    block(TYPE_DATA, &led_bytes(frame, wiring))
}

/// A block read back from a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    pub kind: u8,
    pub data: Vec<u8>,
}

/// Splits a byte stream into blocks, skipping bytes that do not start a well-formed block
/// (a start byte whose declared size does not land on an end byte is skipped as garbage).
/// A block cut off at the end of `stream` is ignored. For tests and emulators.
pub fn decode(stream: &[u8]) -> Vec<Block> {
    let mut blocks = Vec::new();
    let mut i = 0;
    while i + 5 <= stream.len() {
        if stream[i] != START {
            i += 1;
            continue;
        }
        let size = usize::from(u16::from_be_bytes([stream[i + 2], stream[i + 3]]));
        let end = i + 4 + size;
        if end < stream.len() && stream[end] == END {
            blocks.push(Block {
                kind: stream[i + 1],
                data: stream[i + 4..end].to_vec(),
            });
            i = end + 1;
        } else {
            i += 1;
        }
    }
    blocks
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::model::{ColorOrder, Corner, Rgb, WiringLayout};
    use crate::protocol::pixels::frame_from_leds;

    const ROW: Wiring = Wiring {
        layout: WiringLayout::Progressive,
        origin: Corner::TopLeft,
        order: ColorOrder::Rgb,
    };

    #[test]
    fn published_vector_red_and_green() {
        let mut frame = Frame::new(2, 1, PixelFormat::Rgb888);
        frame.set_pixel(0, 0, Rgb(255, 0, 0));
        frame.set_pixel(1, 0, Rgb(0, 255, 0));
        assert_eq!(
            encode(&frame, &ROW).unwrap(),
            [
                0xC9, 0xDA, 0x00, 0x06, 0xFF, 0x00, 0x00, 0x00, 0xFF, 0x00, 0x36
            ]
        );
    }

    #[test]
    fn round_trip_through_serpentine_grb_wiring_with_garbage() {
        let wiring = Wiring {
            layout: WiringLayout::Serpentine,
            origin: Corner::BottomRight,
            order: ColorOrder::Grb,
        };
        let mut frame = Frame::new(4, 3, PixelFormat::Rgb888);
        for i in 0..12 {
            frame.set_pixel(i % 4, i / 4, Rgb(i as u8 * 20, 255 - i as u8, i as u8));
        }
        let bytes = encode(&frame, &wiring).unwrap();
        let mut stream = vec![0x36, 0xC9, 0x01, 0xC9];
        stream.extend(&bytes);
        stream.extend(&bytes[..7]); // a block cut short
        let blocks = decode(&stream);
        assert_eq!(blocks.len(), 1);
        assert_eq!(blocks[0].kind, TYPE_DATA);
        assert_eq!(frame_from_leds(&blocks[0].data, 4, 3, &wiring), frame);
    }

    #[test]
    fn only_rgb888_and_at_most_21845_leds() {
        let mono = Frame::new(2, 2, PixelFormat::Mono);
        assert_eq!(
            encode(&mono, &ROW),
            Err(PixelStreamError::Format(PixelFormat::Mono))
        );
        let big = Frame::new(21846, 1, PixelFormat::Rgb888);
        assert!(matches!(
            encode(&big, &ROW),
            Err(PixelStreamError::TooManyLeds { leds: 21846, .. })
        ));
        assert!(encode(&Frame::new(21845, 1, PixelFormat::Rgb888), &ROW).is_ok());
    }
}
