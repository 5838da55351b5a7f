//! Adalight over serial (WLED, Hyperion, Arduino sketches): `'A' 'd' 'a'`, the LED count
//! minus one as 16 bits high byte first, checksum = high ^ low ^ 0x55, then R, G, B per LED.
//!
//! Owns the header. The LED order comes from [`super::pixels`]; the port is a link's. Public
//! code contains wrong headers, so the tests check the formula's vectors, not copied bytes.
//! Receivers blank after about 15 s without data: a link resends the frame to keep it up.

use super::PixelStreamError;
use super::pixels::led_bytes;
use crate::config::model::{PixelFormat, Wiring};
use crate::raster::frame::Frame;

pub const MAGIC: [u8; 3] = *b"Ada";
/// The largest LED count the 16-bit count field can carry.
pub const MAX_LEDS: usize = 1 << 16;

/// The six header bytes for `leds` LEDs (1 to 65,536).
pub fn header(leds: usize) -> Result<[u8; 6], PixelStreamError> {
    if leds == 0 {
        return Err(PixelStreamError::NoLeds);
    }
    let field = u16::try_from(leds - 1).map_err(|_| PixelStreamError::TooManyLeds {
        leds,
        max: MAX_LEDS,
    })?;
    let [hi, lo] = field.to_be_bytes();
    Ok([MAGIC[0], MAGIC[1], MAGIC[2], hi, lo, hi ^ lo ^ 0x55])
}

/// Header and every LED of an rgb888 `frame`, in the board's wiring.
pub fn encode(frame: &Frame, wiring: &Wiring) -> Result<Vec<u8>, PixelStreamError> {
    if frame.format != PixelFormat::Rgb888 {
        return Err(PixelStreamError::Format(frame.format));
    }
    let leds = led_bytes(frame, wiring);
    let mut out = Vec::with_capacity(leds.len() + 6);
    out.extend_from_slice(&header(leds.len() / 3)?);
    out.extend_from_slice(&leds);
    Ok(out)
}

/// Finds the frames in a byte stream: a magic with a correct checksum followed by the
/// declared LEDs. Bytes before a magic, and a magic whose checksum is wrong, are skipped; a
/// frame cut off at the end of `stream` is ignored. Returns each frame's LED bytes. For
/// tests and emulators.
pub fn decode(stream: &[u8]) -> Vec<Vec<u8>> {
    let mut frames = Vec::new();
    let mut i = 0;
    while i + 6 <= stream.len() {
        let [a, d, m, hi, lo, check] = [
            stream[i],
            stream[i + 1],
            stream[i + 2],
            stream[i + 3],
            stream[i + 4],
            stream[i + 5],
        ];
        if [a, d, m] != MAGIC || check != hi ^ lo ^ 0x55 {
            i += 1;
            continue;
        }
        let bytes = 3 * (usize::from(u16::from_be_bytes([hi, lo])) + 1);
        let end = i + 6 + bytes;
        if end > stream.len() {
            break;
        }
        frames.push(stream[i + 6..end].to_vec());
        i = end;
    }
    frames
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
    fn published_vectors() {
        assert_eq!(header(1).unwrap(), [0x41, 0x64, 0x61, 0x00, 0x00, 0x55]);
        assert_eq!(header(30).unwrap(), [0x41, 0x64, 0x61, 0x00, 0x1D, 0x48]);
        let black = encode(&Frame::new(2, 1, PixelFormat::Rgb888), &ROW).unwrap();
        assert_eq!(
            black,
            [0x41, 0x64, 0x61, 0x00, 0x01, 0x54, 0, 0, 0, 0, 0, 0]
        );
        let mut frame = Frame::new(3, 1, PixelFormat::Rgb888);
        frame.set_pixel(0, 0, Rgb(255, 0, 0));
        frame.set_pixel(1, 0, Rgb(0, 255, 0));
        frame.set_pixel(2, 0, Rgb(0, 0, 255));
        assert_eq!(
            encode(&frame, &ROW).unwrap(),
            [
                0x41, 0x64, 0x61, 0x00, 0x02, 0x57, 0xFF, 0x00, 0x00, 0x00, 0xFF, 0x00, 0x00, 0x00,
                0xFF
            ]
        );
    }

    #[test]
    fn round_trip_through_wiring_with_garbage_and_a_bad_checksum() {
        let wiring = Wiring {
            layout: WiringLayout::Serpentine,
            origin: Corner::TopRight,
            order: ColorOrder::Bgr,
        };
        let mut frame = Frame::new(3, 3, PixelFormat::Rgb888);
        for i in 0..9 {
            frame.set_pixel(i % 3, i / 3, Rgb(i as u8, 100 + i as u8, 200 + i as u8));
        }
        let bytes = encode(&frame, &wiring).unwrap();
        let mut stream = b"Ada\x00\x00\x00junk".to_vec(); // wrong checksum
        stream.extend(&bytes);
        stream.extend(&bytes);
        let frames = decode(&stream);
        assert_eq!(frames.len(), 2);
        assert_eq!(frame_from_leds(&frames[1], 3, 3, &wiring), frame);
    }

    #[test]
    fn limits() {
        assert_eq!(header(0), Err(PixelStreamError::NoLeds));
        assert!(header(MAX_LEDS).is_ok());
        assert!(matches!(
            header(MAX_LEDS + 1),
            Err(PixelStreamError::TooManyLeds { .. })
        ));
        assert_eq!(
            encode(&Frame::new(1, 1, PixelFormat::Rgb565), &ROW),
            Err(PixelStreamError::Format(PixelFormat::Rgb565))
        );
    }
}
