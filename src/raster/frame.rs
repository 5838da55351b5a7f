//! [`Frame`]: a board's picture in the board's own pixel format, packed the way it goes on the
//! wire, and the rectangles in which two frames differ.
//!
//! # Packing
//!
//! Rows run top to bottom; `stride` bytes per row (per plane).
//!
//! | format | planes | a pixel |
//! |---|---|---|
//! | `mono` | 1 | 1 bit; pixel `x` is bit `7 - x % 8` of byte `x / 8` (MSB = leftmost); 1 = lit |
//! | `bicolor` | 2: red plane, then green plane | 1 bit in each plane, as mono; both lit = yellow |
//! | `rgb565` | 1 | 2 bytes, big-endian `RRRRRGGG GGGBBBBB` |
//! | `rgb888` | 1 | 3 bytes: R, G, B |
//!
//! Padding bits at the end of a 1-bit row are always 0, so equal pictures have equal bytes.

use crate::config::model::{PixelFormat, Rgb};

/// A picture in a board's pixel format.
#[derive(Clone, PartialEq, Eq)]
pub struct Frame {
    pub width: u32,
    pub height: u32,
    pub format: PixelFormat,
    /// All planes, one after the other; see the module docs.
    pub data: Vec<u8>,
}

impl std::fmt::Debug for Frame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Frame({}x{} {:?}, {} bytes)",
            self.width,
            self.height,
            self.format,
            self.data.len()
        )
    }
}

/// An axis-aligned rectangle of pixels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Rect {
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
}

impl Frame {
    /// An all-dark frame.
    pub fn new(width: u32, height: u32, format: PixelFormat) -> Frame {
        let len = Self::stride_for(width, format) * height as usize * Self::planes_for(format);
        Frame {
            width,
            height,
            format,
            data: vec![0; len],
        }
    }

    fn planes_for(format: PixelFormat) -> usize {
        match format {
            PixelFormat::Bicolor => 2,
            _ => 1,
        }
    }

    fn stride_for(width: u32, format: PixelFormat) -> usize {
        let width = width as usize;
        match format {
            PixelFormat::Mono | PixelFormat::Bicolor => width.div_ceil(8),
            PixelFormat::Rgb565 => width * 2,
            PixelFormat::Rgb888 => width * 3,
        }
    }

    /// Bytes per row of one plane.
    pub fn stride(&self) -> usize {
        Self::stride_for(self.width, self.format)
    }

    /// Number of planes (2 for bicolor, 1 otherwise).
    pub fn planes(&self) -> usize {
        Self::planes_for(self.format)
    }

    /// Bytes of one plane.
    pub fn plane_len(&self) -> usize {
        self.stride() * self.height as usize
    }

    /// Sets every pixel dark.
    pub fn clear(&mut self) {
        self.data.fill(0);
    }

    /// The colour a pixel shows: lit mono pixels are white (a preview tints them with the
    /// board's LED colour), bicolor pixels red, green or yellow. Outside the frame: black.
    pub fn pixel(&self, x: u32, y: u32) -> Rgb {
        if x >= self.width || y >= self.height {
            return Rgb(0, 0, 0);
        }
        let stride = self.stride();
        let row = y as usize * stride;
        let bit = |plane: usize| {
            let byte = self.data[plane * self.plane_len() + row + x as usize / 8];
            byte & (0x80 >> (x % 8)) != 0
        };
        match self.format {
            PixelFormat::Mono => {
                if bit(0) {
                    Rgb(255, 255, 255)
                } else {
                    Rgb(0, 0, 0)
                }
            }
            PixelFormat::Bicolor => Rgb(
                if bit(0) { 255 } else { 0 },
                if bit(1) { 255 } else { 0 },
                0,
            ),
            PixelFormat::Rgb565 => {
                let i = row + x as usize * 2;
                let v = u16::from_be_bytes([self.data[i], self.data[i + 1]]);
                let expand = |value: u16, bits: u32| -> u8 {
                    let max = (1u16 << bits) - 1;
                    ((u32::from(value) * 255 + u32::from(max) / 2) / u32::from(max)) as u8
                };
                Rgb(
                    expand(v >> 11, 5),
                    expand((v >> 5) & 0x3f, 6),
                    expand(v & 0x1f, 5),
                )
            }
            PixelFormat::Rgb888 => {
                let i = row + x as usize * 3;
                Rgb(self.data[i], self.data[i + 1], self.data[i + 2])
            }
        }
    }

    /// Sets a pixel to the nearest colour the format can show (mono: lit when any channel is at
    /// least half; bicolor: red and green planes from the red and green channels). Outside the
    /// frame: nothing happens.
    pub fn set_pixel(&mut self, x: u32, y: u32, color: Rgb) {
        if x >= self.width || y >= self.height {
            return;
        }
        let stride = self.stride();
        let row = y as usize * stride;
        let plane_len = self.plane_len();
        let mut set_bit = |plane: usize, on: bool| {
            let byte = &mut self.data[plane * plane_len + row + x as usize / 8];
            let mask = 0x80 >> (x % 8);
            if on {
                *byte |= mask;
            } else {
                *byte &= !mask;
            }
        };
        let Rgb(r, g, b) = color;
        match self.format {
            PixelFormat::Mono => set_bit(0, r.max(g).max(b) >= 128),
            PixelFormat::Bicolor => {
                set_bit(0, r >= 128);
                set_bit(1, g >= 128);
            }
            PixelFormat::Rgb565 => {
                let v = (u16::from(r) >> 3) << 11 | (u16::from(g) >> 2) << 5 | u16::from(b) >> 3;
                let i = row + x as usize * 2;
                self.data[i..i + 2].copy_from_slice(&v.to_be_bytes());
            }
            PixelFormat::Rgb888 => {
                let i = row + x as usize * 3;
                self.data[i..i + 3].copy_from_slice(&[r, g, b]);
            }
        }
    }

    /// The rectangles that cover every pixel where `self` and `other` differ, for partial
    /// updates. Works in tiles of 8×8 pixels: changed tiles are merged into horizontal runs,
    /// and runs of the same columns on consecutive tile rows into one rectangle. Frames of
    /// different size or format differ everywhere.
    pub fn diff(&self, other: &Frame) -> Vec<Rect> {
        if self.width != other.width || self.height != other.height || self.format != other.format {
            return vec![Rect {
                x: 0,
                y: 0,
                width: other.width,
                height: other.height,
            }];
        }
        const TILE: u32 = 8;
        let tiles_x = self.width.div_ceil(TILE) as usize;
        let tiles_y = self.height.div_ceil(TILE) as usize;
        let mut changed = vec![false; tiles_x * tiles_y];
        let stride = self.stride();
        // Bytes that hold the 8 pixels of one tile in a row.
        let bytes_per_tile = match self.format {
            PixelFormat::Mono | PixelFormat::Bicolor => 1,
            PixelFormat::Rgb565 => 16,
            PixelFormat::Rgb888 => 24,
        };
        for plane in 0..self.planes() {
            let base = plane * self.plane_len();
            for y in 0..self.height as usize {
                let row_a = &self.data[base + y * stride..base + (y + 1) * stride];
                let row_b = &other.data[base + y * stride..base + (y + 1) * stride];
                if row_a == row_b {
                    continue;
                }
                for (tile, (a, b)) in row_a
                    .chunks(bytes_per_tile)
                    .zip(row_b.chunks(bytes_per_tile))
                    .enumerate()
                {
                    if a != b {
                        changed[(y / TILE as usize) * tiles_x + tile] = true;
                    }
                }
            }
        }
        // Horizontal runs per tile row, then merge identical runs on consecutive rows.
        let mut rects: Vec<Rect> = Vec::new();
        let mut open: Vec<(usize, usize, usize)> = Vec::new(); // (first tile, last tile, index in rects)
        for ty in 0..tiles_y {
            let mut runs = Vec::new();
            let mut tx = 0;
            while tx < tiles_x {
                if changed[ty * tiles_x + tx] {
                    let start = tx;
                    while tx < tiles_x && changed[ty * tiles_x + tx] {
                        tx += 1;
                    }
                    runs.push((start, tx - 1));
                } else {
                    tx += 1;
                }
            }
            let mut next_open = Vec::new();
            for (start, end) in runs {
                let y = ty as u32 * TILE;
                let height = TILE.min(self.height - y);
                if let Some(&(_, _, index)) = open.iter().find(|(s, e, _)| *s == start && *e == end)
                {
                    rects[index].height += height;
                    next_open.push((start, end, index));
                } else {
                    let x = start as u32 * TILE;
                    let width = ((end as u32 + 1) * TILE).min(self.width) - x;
                    rects.push(Rect {
                        x,
                        y,
                        width,
                        height,
                    });
                    next_open.push((start, end, rects.len() - 1));
                }
            }
            open = next_open;
        }
        rects
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packing_of_each_format() {
        let mut mono = Frame::new(10, 2, PixelFormat::Mono);
        assert_eq!(mono.stride(), 2);
        mono.set_pixel(0, 0, Rgb(255, 0, 0));
        mono.set_pixel(9, 1, Rgb(0, 200, 0));
        assert_eq!(mono.data, vec![0x80, 0, 0, 0x40]);

        let mut bicolor = Frame::new(8, 1, PixelFormat::Bicolor);
        bicolor.set_pixel(1, 0, Rgb(255, 255, 0));
        bicolor.set_pixel(2, 0, Rgb(0, 255, 0));
        assert_eq!(bicolor.data, vec![0x40, 0x60]);
        assert_eq!(bicolor.pixel(1, 0), Rgb(255, 255, 0));
        assert_eq!(bicolor.pixel(2, 0), Rgb(0, 255, 0));

        let mut rgb565 = Frame::new(2, 1, PixelFormat::Rgb565);
        rgb565.set_pixel(1, 0, Rgb(255, 0, 255));
        assert_eq!(rgb565.data, vec![0, 0, 0xF8, 0x1F]);
        assert_eq!(rgb565.pixel(1, 0), Rgb(255, 0, 255));

        let mut rgb888 = Frame::new(2, 1, PixelFormat::Rgb888);
        rgb888.set_pixel(0, 0, Rgb(1, 2, 3));
        assert_eq!(rgb888.data, vec![1, 2, 3, 0, 0, 0]);
    }

    #[test]
    fn out_of_frame_is_ignored() {
        let mut frame = Frame::new(4, 4, PixelFormat::Mono);
        frame.set_pixel(4, 0, Rgb(255, 255, 255));
        frame.set_pixel(0, 4, Rgb(255, 255, 255));
        assert!(frame.data.iter().all(|b| *b == 0));
        assert_eq!(frame.pixel(100, 100), Rgb(0, 0, 0));
    }

    /// Every changed pixel is inside a rectangle, and every rectangle lies in the frame.
    fn assert_covers(a: &Frame, b: &Frame, rects: &[Rect]) {
        for y in 0..a.height {
            for x in 0..a.width {
                if a.pixel(x, y) != b.pixel(x, y) {
                    assert!(
                        rects.iter().any(|r| x >= r.x
                            && x < r.x + r.width
                            && y >= r.y
                            && y < r.y + r.height),
                        "pixel {x},{y} changed but is not covered by {rects:?}"
                    );
                }
            }
        }
        for r in rects {
            assert!(
                r.x + r.width <= a.width && r.y + r.height <= a.height,
                "{r:?}"
            );
        }
    }

    #[test]
    fn diff_covers_changes_with_few_rectangles() {
        for format in [
            PixelFormat::Mono,
            PixelFormat::Bicolor,
            PixelFormat::Rgb565,
            PixelFormat::Rgb888,
        ] {
            let a = Frame::new(192, 64, format);
            assert!(a.diff(&a.clone()).is_empty());
            let mut b = a.clone();
            // A clock in the top-right corner changes: one small rectangle.
            for x in 160..190 {
                for y in 2..14 {
                    b.set_pixel(x, y, Rgb(255, 255, 0));
                }
            }
            let rects = a.diff(&b);
            assert_covers(&a, &b, &rects);
            assert_eq!(rects.len(), 1, "{format:?}: {rects:?}");
            let r = rects[0];
            assert!(r.width <= 40 && r.height <= 16, "{format:?}: {r:?}");
            // Two separate changes give two rectangles.
            b.set_pixel(3, 60, Rgb(255, 0, 0));
            let rects = a.diff(&b);
            assert_covers(&a, &b, &rects);
            assert_eq!(rects.len(), 2, "{format:?}: {rects:?}");
        }
    }

    #[test]
    fn diff_of_odd_sizes_stays_inside_the_frame() {
        let a = Frame::new(13, 9, PixelFormat::Mono);
        let mut b = a.clone();
        b.set_pixel(12, 8, Rgb(255, 255, 255));
        let rects = a.diff(&b);
        assert_covers(&a, &b, &rects);
        assert_eq!(
            rects,
            vec![Rect {
                x: 8,
                y: 8,
                width: 5,
                height: 1
            }]
        );
    }
}
