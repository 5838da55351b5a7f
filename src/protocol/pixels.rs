//! Pixel plumbing shared by the codecs: cutting a rectangle out of a packed [`Frame`] and
//! pasting it back (for RECT), and the order in which a pixel-stream board's LEDs are wired
//! (for TPM2 and Adalight).
//!
//! Owns no wire format. Works on the packing that `raster::frame` defines and must not
//! change it.

use crate::config::model::{ColorOrder, Corner, PixelFormat, Wiring, WiringLayout};
use crate::raster::frame::{Frame, Rect};

/// Bytes of one packed picture of `width` × `height` in `format` (all planes).
pub fn packed_len(width: u32, height: u32, format: PixelFormat) -> usize {
    let (stride, planes) = stride_planes(width, format);
    stride * height as usize * planes
}

fn stride_planes(width: u32, format: PixelFormat) -> (usize, usize) {
    let width = width as usize;
    match format {
        PixelFormat::Mono => (width.div_ceil(8), 1),
        PixelFormat::Bicolor => (width.div_ceil(8), 2),
        PixelFormat::Rgb565 => (width * 2, 1),
        PixelFormat::Rgb888 => (width * 3, 1),
    }
}

/// Whether `rect` lies inside a `width` × `height` picture and is not empty.
pub fn rect_fits(rect: &Rect, width: u32, height: u32) -> bool {
    rect.width > 0
        && rect.height > 0
        && rect.x.checked_add(rect.width).is_some_and(|r| r <= width)
        && rect.y.checked_add(rect.height).is_some_and(|b| b <= height)
}

/// The pixels of `rect` packed as a picture of their own (`rect.width` × `rect.height`, same
/// format, rows padded to whole bytes for 1-bit formats). The caller checks [`rect_fits`].
pub fn copy_rect(frame: &Frame, rect: &Rect) -> Vec<u8> {
    let (src_stride, planes) = stride_planes(frame.width, frame.format);
    let (dst_stride, _) = stride_planes(rect.width, frame.format);
    let src_plane = src_stride * frame.height as usize;
    let mut out = vec![0u8; dst_stride * rect.height as usize * planes];
    let dst_plane = dst_stride * rect.height as usize;
    for plane in 0..planes {
        for row in 0..rect.height as usize {
            let src_row = plane * src_plane + (rect.y as usize + row) * src_stride;
            let dst_row = plane * dst_plane + row * dst_stride;
            match bytes_per_pixel(frame.format) {
                Some(bpp) => {
                    let from = src_row + rect.x as usize * bpp;
                    let len = rect.width as usize * bpp;
                    out[dst_row..dst_row + len].copy_from_slice(&frame.data[from..from + len]);
                }
                None => {
                    for col in 0..rect.width as usize {
                        let sx = rect.x as usize + col;
                        if frame.data[src_row + sx / 8] & (0x80 >> (sx % 8)) != 0 {
                            out[dst_row + col / 8] |= 0x80 >> (col % 8);
                        }
                    }
                }
            }
        }
    }
    out
}

/// Writes `pixels` (packed as [`copy_rect`] makes them) into `frame` at `rect`. The caller
/// checks [`rect_fits`] and that `pixels` has [`packed_len`] of the rectangle.
pub fn paste_rect(frame: &mut Frame, rect: &Rect, pixels: &[u8]) {
    let (dst_stride, planes) = stride_planes(frame.width, frame.format);
    let (src_stride, _) = stride_planes(rect.width, frame.format);
    let dst_plane = dst_stride * frame.height as usize;
    let src_plane = src_stride * rect.height as usize;
    for plane in 0..planes {
        for row in 0..rect.height as usize {
            let dst_row = plane * dst_plane + (rect.y as usize + row) * dst_stride;
            let src_row = plane * src_plane + row * src_stride;
            match bytes_per_pixel(frame.format) {
                Some(bpp) => {
                    let to = dst_row + rect.x as usize * bpp;
                    let len = rect.width as usize * bpp;
                    frame.data[to..to + len].copy_from_slice(&pixels[src_row..src_row + len]);
                }
                None => {
                    for col in 0..rect.width as usize {
                        let dx = rect.x as usize + col;
                        let lit = pixels[src_row + col / 8] & (0x80 >> (col % 8)) != 0;
                        let byte = &mut frame.data[dst_row + dx / 8];
                        if lit {
                            *byte |= 0x80 >> (dx % 8);
                        } else {
                            *byte &= !(0x80 >> (dx % 8));
                        }
                    }
                }
            }
        }
    }
}

fn bytes_per_pixel(format: PixelFormat) -> Option<usize> {
    match format {
        PixelFormat::Mono | PixelFormat::Bicolor => None,
        PixelFormat::Rgb565 => Some(2),
        PixelFormat::Rgb888 => Some(3),
    }
}

/// The grid position of the LED at `index` along the string of a `width` × `height` matrix.
///
/// Rows are horizontal. The first LED sits in the `origin` corner; the first row runs away
/// from that corner's side; `progressive` rows all run that way, `serpentine` rows alternate.
pub fn led_position(wiring: &Wiring, width: u32, height: u32, index: u32) -> (u32, u32) {
    let row = index / width;
    let along = index % width;
    let (from_bottom, from_right) = match wiring.origin {
        Corner::TopLeft => (false, false),
        Corner::TopRight => (false, true),
        Corner::BottomLeft => (true, false),
        Corner::BottomRight => (true, true),
    };
    let reversed = match wiring.layout {
        WiringLayout::Progressive => from_right,
        WiringLayout::Serpentine => from_right ^ (row % 2 == 1),
    };
    let x = if reversed { width - 1 - along } else { along };
    let y = if from_bottom { height - 1 - row } else { row };
    (x, y)
}

/// Channel indices (0 = R, 1 = G, 2 = B) in the order the LEDs expect them on the wire.
pub fn channel_order(order: ColorOrder) -> [usize; 3] {
    match order {
        ColorOrder::Rgb => [0, 1, 2],
        ColorOrder::Rbg => [0, 2, 1],
        ColorOrder::Grb => [1, 0, 2],
        ColorOrder::Gbr => [1, 2, 0],
        ColorOrder::Brg => [2, 0, 1],
        ColorOrder::Bgr => [2, 1, 0],
    }
}

/// The LED string of an rgb888 `frame`: three bytes per LED in wiring and colour order.
/// The caller checks the format.
pub fn led_bytes(frame: &Frame, wiring: &Wiring) -> Vec<u8> {
    let count = frame.width * frame.height;
    let order = channel_order(wiring.order);
    let mut out = Vec::with_capacity(count as usize * 3);
    let stride = frame.width as usize * 3;
    for index in 0..count {
        let (x, y) = led_position(wiring, frame.width, frame.height, index);
        let at = y as usize * stride + x as usize * 3;
        let rgb = &frame.data[at..at + 3];
        out.extend(order.iter().map(|&c| rgb[c]));
    }
    out
}

/// The inverse of [`led_bytes`]: an rgb888 frame from a LED string (for tests and
/// emulators). LEDs beyond the string stay dark.
pub fn frame_from_leds(leds: &[u8], width: u32, height: u32, wiring: &Wiring) -> Frame {
    let mut frame = Frame::new(width, height, PixelFormat::Rgb888);
    let order = channel_order(wiring.order);
    let stride = width as usize * 3;
    for (index, led) in leds
        .chunks_exact(3)
        .enumerate()
        .take((width * height) as usize)
    {
        let (x, y) = led_position(wiring, width, height, index as u32);
        let at = y as usize * stride + x as usize * 3;
        for (wire, &channel) in order.iter().enumerate() {
            frame.data[at + channel] = led[wire];
        }
    }
    frame
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::model::Rgb;

    fn wiring(layout: WiringLayout, origin: Corner) -> Wiring {
        Wiring {
            layout,
            origin,
            order: ColorOrder::Rgb,
        }
    }

    /// The LED indices laid out on a 3×2 grid, row by row from the top left.
    fn grid(w: &Wiring) -> Vec<u32> {
        let mut cells = vec![u32::MAX; 6];
        for i in 0..6 {
            let (x, y) = led_position(w, 3, 2, i);
            cells[(y * 3 + x) as usize] = i;
        }
        cells
    }

    #[test]
    fn every_wiring_on_a_small_matrix() {
        use Corner::*;
        use WiringLayout::*;
        let cases = [
            (Progressive, TopLeft, [0, 1, 2, 3, 4, 5]),
            (Progressive, TopRight, [2, 1, 0, 5, 4, 3]),
            (Progressive, BottomLeft, [3, 4, 5, 0, 1, 2]),
            (Progressive, BottomRight, [5, 4, 3, 2, 1, 0]),
            (Serpentine, TopLeft, [0, 1, 2, 5, 4, 3]),
            (Serpentine, TopRight, [2, 1, 0, 3, 4, 5]),
            (Serpentine, BottomLeft, [5, 4, 3, 0, 1, 2]),
            (Serpentine, BottomRight, [3, 4, 5, 2, 1, 0]),
        ];
        for (layout, origin, expected) in cases {
            assert_eq!(
                grid(&wiring(layout, origin)),
                expected,
                "{layout:?} {origin:?}"
            );
        }
    }

    #[test]
    fn every_colour_order() {
        let mut frame = Frame::new(1, 1, PixelFormat::Rgb888);
        frame.set_pixel(0, 0, Rgb(1, 2, 3));
        let cases = [
            (ColorOrder::Rgb, [1, 2, 3]),
            (ColorOrder::Rbg, [1, 3, 2]),
            (ColorOrder::Grb, [2, 1, 3]),
            (ColorOrder::Gbr, [2, 3, 1]),
            (ColorOrder::Brg, [3, 1, 2]),
            (ColorOrder::Bgr, [3, 2, 1]),
        ];
        for (order, expected) in cases {
            let w = Wiring {
                layout: WiringLayout::Progressive,
                origin: Corner::TopLeft,
                order,
            };
            let bytes = led_bytes(&frame, &w);
            assert_eq!(bytes, expected, "{order:?}");
            assert_eq!(frame_from_leds(&bytes, 1, 1, &w), frame);
        }
    }

    #[test]
    fn rect_copy_and_paste_in_every_format() {
        for format in [
            PixelFormat::Mono,
            PixelFormat::Bicolor,
            PixelFormat::Rgb565,
            PixelFormat::Rgb888,
        ] {
            let mut a = Frame::new(21, 11, format);
            for i in 0..60u32 {
                let c = Rgb((i * 37) as u8 | 0x80, (i * 91) as u8, (i * 53) as u8 | 0x80);
                a.set_pixel((i * 7) % 21, (i * 3) % 11, c);
            }
            let rect = Rect {
                x: 3,
                y: 2,
                width: 13,
                height: 7,
            };
            let pixels = copy_rect(&a, &rect);
            assert_eq!(pixels.len(), packed_len(13, 7, format));
            let mut b = Frame::new(21, 11, format);
            paste_rect(&mut b, &rect, &pixels);
            for y in 0..11 {
                for x in 0..21 {
                    let inside = (3..16).contains(&x) && (2..9).contains(&y);
                    let expected = if inside { a.pixel(x, y) } else { Rgb(0, 0, 0) };
                    assert_eq!(b.pixel(x, y), expected, "{format:?} {x},{y}");
                }
            }
        }
    }

    #[test]
    fn rect_fits_rejects_empty_and_overflowing_rects() {
        let r = |x, y, width, height| Rect {
            x,
            y,
            width,
            height,
        };
        assert!(rect_fits(&r(0, 0, 4, 4), 4, 4));
        assert!(!rect_fits(&r(1, 0, 4, 4), 4, 4));
        assert!(!rect_fits(&r(0, 0, 0, 4), 4, 4));
        assert!(!rect_fits(&r(u32::MAX, 0, 2, 1), 4, 4));
    }
}
