//! The built-in fonts: u8g2's GB2312 fonts (`wqy12/14/15/16_t_gb2312`, `unifont_t_gb2312`),
//! each glyph unpacked into rows the first time it is used.
//!
//! u8g2-fonts keeps its glyphs run-length encoded and does not expose its decoder, so a glyph
//! is rendered once through u8g2-fonts' own `FontRenderer` into a scratch target and captured.
//! That keeps every pixel identical to u8g2-fonts by construction (a test compares every glyph
//! of every font); the speed comes from blitting the cached rows afterwards.
//!
//! Memory is bounded by the font: a 65,536-bit table of misses (8 KiB) plus the [`GlyphTable`]
//! (about 530 KiB when all 7,541 glyphs of a font have been used).

use std::convert::Infallible;

use embedded_graphics::Pixel;
use embedded_graphics::pixelcolor::BinaryColor;
use embedded_graphics::prelude::{DrawTarget, OriginDimensions, Point, Size};
use u8g2_fonts::types::{FontColor, VerticalPosition};
use u8g2_fonts::{FontRenderer, fonts};

use super::table::{GlyphTable, NewGlyph};
use super::{GlyphRef, GlyphSource, LineMetrics};
use crate::config::model::BuiltinFont;

/// A built-in font with its glyph cache.
pub struct U8g2Font {
    name: &'static str,
    renderer: FontRenderer,
    table: GlyphTable,
    /// One bit per BMP code point: looked up and not in the font.
    misses: Box<[u64]>,
    capture: Capture,
}

impl U8g2Font {
    pub fn new(font: BuiltinFont) -> U8g2Font {
        let font_kind = font;
        let (name, renderer) = renderer(font);
        let bbox = renderer.get_font_bounding_box(VerticalPosition::Baseline);
        let provisional = LineMetrics {
            height: bbox.size.height,
            baseline: u32::try_from(-bbox.top_left.y).unwrap_or(0),
        };
        let mut font = U8g2Font {
            name,
            renderer,
            table: GlyphTable::new(provisional),
            misses: vec![0; 0x1_0000 / 64].into_boxed_slice(),
            capture: Capture { pixels: Vec::new() },
        };
        let metrics = Self::board_metrics(nominal_size(font_kind), bbox.top_left.y);
        font.table.set_metrics(metrics);
        font
    }

    /// A board's line is the font's nominal size (a 16 px font on 16 rows, four lines on a
    /// 64-row board), not its bounding box, which a few outsized symbols inflate (wqy16's is 18
    /// rows). The baseline sits as low as the tallest glyph needs, so no hanzi loses its top
    /// row (wqy16: 14 rows above the baseline); Latin descenders may reach a row into the
    /// spacing below.
    fn board_metrics(size: u32, bbox_top: i32) -> LineMetrics {
        let baseline = (-bbox_top).clamp(0, size as i32 - 1);
        LineMetrics {
            height: size,
            baseline: baseline as u32,
        }
    }

    fn is_miss(&self, code: usize) -> bool {
        self.misses[code / 64] & (1 << (code % 64)) != 0
    }

    /// Renders `c` through u8g2-fonts and stores it. False when the font lacks it.
    #[cold]
    fn unpack(&mut self, c: char) -> bool {
        // u8g2-fonts treats '\n' as a line break and matches '\0' against the font's end
        // marker; no font here has a glyph below U+0020, so never ask.
        if (c as u32) < 0x20 {
            return false;
        }
        self.capture.pixels.clear();
        let Ok(dims) = self.renderer.render(
            c,
            Point::zero(),
            VerticalPosition::Baseline,
            FontColor::Transparent(BinaryColor::On),
            &mut self.capture,
        ) else {
            return false;
        };
        let advance = u32::try_from(dims.advance.x).unwrap_or(0);
        let mut rows = [0u32; 32];
        let (left, top, width, height) = match dims.bounding_box {
            Some(bbox) => (
                bbox.top_left.x,
                bbox.top_left.y,
                bbox.size.width,
                bbox.size.height,
            ),
            None => (0, 0, 0, 0),
        };
        if width > 32 || height > 32 {
            return false;
        }
        for p in &self.capture.pixels {
            let (col, row) = (p.x - left, p.y - top);
            if let (Ok(col @ 0..32), Ok(row)) = (u32::try_from(col), usize::try_from(row))
                && let Some(mask) = rows.get_mut(row)
            {
                *mask |= 0x8000_0000 >> col;
            }
        }
        self.table.insert(
            c,
            NewGlyph {
                left,
                top,
                width,
                advance,
                rows: &rows[..height as usize],
            },
        );
        true
    }
}

impl GlyphSource for U8g2Font {
    #[inline(always)]
    fn find(&mut self, c: char) -> Option<u32> {
        if let Some(id) = self.table.find(c) {
            return Some(id);
        }
        let code = c as usize;
        // u8g2 encodes glyphs as u16: nothing beyond the BMP.
        if code >= 0x1_0000 || self.is_miss(code) {
            return None;
        }
        if !self.unpack(c) {
            self.misses[code / 64] |= 1 << (code % 64);
            return None;
        }
        self.table.find(c)
    }

    #[inline(always)]
    fn by_id(&self, id: u32) -> GlyphRef<'_> {
        self.table.by_id(id)
    }

    fn metrics(&self) -> LineMetrics {
        self.table.metrics()
    }

    fn name(&self) -> &str {
        self.name
    }
}

/// The pixel size a font is designed for.
fn nominal_size(font: BuiltinFont) -> u32 {
    match font {
        BuiltinFont::Wqy12 => 12,
        BuiltinFont::Wqy14 => 14,
        BuiltinFont::Wqy15 => 15,
        BuiltinFont::Wqy16 | BuiltinFont::Unifont => 16,
    }
}

fn renderer(font: BuiltinFont) -> (&'static str, FontRenderer) {
    match font {
        BuiltinFont::Wqy12 => (
            "wqy12",
            FontRenderer::new::<fonts::u8g2_font_wqy12_t_gb2312>(),
        ),
        BuiltinFont::Wqy14 => (
            "wqy14",
            FontRenderer::new::<fonts::u8g2_font_wqy14_t_gb2312>(),
        ),
        BuiltinFont::Wqy15 => (
            "wqy15",
            FontRenderer::new::<fonts::u8g2_font_wqy15_t_gb2312>(),
        ),
        BuiltinFont::Wqy16 => (
            "wqy16",
            FontRenderer::new::<fonts::u8g2_font_wqy16_t_gb2312>(),
        ),
        BuiltinFont::Unifont => (
            "unifont",
            FontRenderer::new::<fonts::u8g2_font_unifont_t_gb2312>(),
        ),
    }
}

/// Scratch target that records the lit pixels of one glyph, unclipped.
struct Capture {
    pixels: Vec<Point>,
}

impl OriginDimensions for Capture {
    fn size(&self) -> Size {
        // u8g2-fonts does not clip against it; nothing is lost.
        Size::new(u32::MAX, u32::MAX)
    }
}

impl DrawTarget for Capture {
    type Color = BinaryColor;
    type Error = Infallible;

    fn draw_iter<I>(&mut self, pixels: I) -> Result<(), Self::Error>
    where
        I: IntoIterator<Item = Pixel<Self::Color>>,
    {
        self.pixels.extend(
            pixels
                .into_iter()
                .filter(|Pixel(_, color)| color.is_on())
                .map(|Pixel(p, _)| p),
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    //! The glyph cache must draw exactly what u8g2-fonts draws: every glyph of every built-in
    //! font is compared against u8g2-fonts rendering through `MonoFrame`'s DrawTarget.

    use super::*;
    use crate::raster::mono::MonoFrame;
    use u8g2_fonts::Font;

    const FONTS: [BuiltinFont; 5] = [
        BuiltinFont::Wqy12,
        BuiltinFont::Wqy14,
        BuiltinFont::Wqy15,
        BuiltinFont::Wqy16,
        BuiltinFont::Unifont,
    ];

    fn font_data(font: BuiltinFont) -> &'static [u8] {
        match font {
            BuiltinFont::Wqy12 => fonts::u8g2_font_wqy12_t_gb2312::DATA,
            BuiltinFont::Wqy14 => fonts::u8g2_font_wqy14_t_gb2312::DATA,
            BuiltinFont::Wqy15 => fonts::u8g2_font_wqy15_t_gb2312::DATA,
            BuiltinFont::Wqy16 => fonts::u8g2_font_wqy16_t_gb2312::DATA,
            BuiltinFont::Unifont => fonts::u8g2_font_unifont_t_gb2312::DATA,
        }
    }

    /// Every character the font has, by walking u8g2's glyph lists (the format is described in
    /// u8g2's wiki, "u8g2fontformat"): asking about all 65,536 code points would walk the whole
    /// font for every miss.
    fn font_chars(font: BuiltinFont) -> Vec<char> {
        const HEADER: usize = 23;
        let data = font_data(font);
        let mut chars = Vec::new();
        // 8-bit glyphs: [encoding, size to next, …], ended by size 0.
        let mut at = HEADER;
        while data[at + 1] != 0 {
            chars.push(char::from(data[at]));
            at += usize::from(data[at + 1]);
        }
        // Unicode glyphs: a jump table ended by bound 0xFFFF, then [encoding u16 BE, size, …]
        // ended by encoding 0.
        at = HEADER + usize::from(u16::from_be_bytes([data[21], data[22]]));
        while u16::from_be_bytes([data[at + 2], data[at + 3]]) != 0xFFFF {
            at += 4;
        }
        at += 4;
        loop {
            let encoding = u16::from_be_bytes([data[at], data[at + 1]]);
            if encoding == 0 {
                break;
            }
            chars.extend(char::from_u32(encoding.into()));
            if data[at + 2] == 0 {
                break;
            }
            at += usize::from(data[at + 2]);
        }
        chars
    }

    fn reference(font: BuiltinFont, frame: &mut MonoFrame, x: i32, baseline: i32, text: &str) {
        let (_, renderer) = renderer(font);
        renderer
            .with_ignore_unknown_chars(true)
            .render(
                text,
                Point::new(x, baseline),
                VerticalPosition::Baseline,
                FontColor::Transparent(BinaryColor::On),
                frame,
            )
            .expect("u8g2-fonts renders");
    }

    fn draw(font: &mut U8g2Font, frame: &mut MonoFrame, x: i32, baseline: i32, text: &str) -> i32 {
        let mut pen = x;
        for c in text.chars() {
            let glyph = font.glyph(c).unwrap_or_else(|| panic!("{c:?} missing"));
            frame.draw_glyph(pen, baseline, glyph);
            pen += glyph.advance as i32;
        }
        pen
    }

    #[test]
    fn every_glyph_of_every_builtin_font_is_bit_identical_to_u8g2_fonts() {
        let expected_counts = [7539, 7538, 7539, 7539, 7541];
        for (font, count) in FONTS.into_iter().zip(expected_counts) {
            let chars = font_chars(font);
            assert_eq!(chars.len(), count, "{font:?}");
            let mut ours_font = U8g2Font::new(font);
            // Room for the widest glyph at x = 13 with padding bits; 4 rows above and below.
            let (width, height, baseline) = (37, 26, 20);
            let mut ours = MonoFrame::new(width, height);
            let mut theirs = MonoFrame::new(width, height);
            let mut buffer = [0u8; 4];
            for &c in &chars {
                let text: &str = c.encode_utf8(&mut buffer);
                for x in [0, 3, 7, 13] {
                    ours.clear();
                    theirs.clear();
                    draw(&mut ours_font, &mut ours, x, baseline, text);
                    reference(font, &mut theirs, x, baseline, text);
                    assert!(
                        ours == theirs,
                        "{font:?} {c:?} (U+{:04X}) at x={x}",
                        c as u32
                    );
                }
            }
            assert_eq!(
                ours_font.table.len(),
                chars.len(),
                "{font:?}: one entry per glyph"
            );
        }
    }

    #[test]
    fn full_page_and_clipped_text_are_bit_identical() {
        let page = [
            "关于开展城区道路照明改造",
            "工程施工期间临时交通管制",
            "的公告请广大市民合理安排",
            "出行路线特此公告敬请谅解",
        ];
        for font in FONTS {
            let mut ours_font = U8g2Font::new(font);
            let mut ours = MonoFrame::new(192, 64);
            let mut theirs = MonoFrame::new(192, 64);
            for (line, y) in page.into_iter().zip([14, 30, 46, 62]) {
                draw(&mut ours_font, &mut ours, 0, y, line);
                reference(font, &mut theirs, 0, y, line);
            }
            assert!(ours == theirs, "{font:?} page");
            // Text hanging over every edge of an odd-sized frame.
            for (x, y) in [(-9, 5), (-3, 70), (50, 12), (55, 3), (0, 16)] {
                let mut ours = MonoFrame::new(61, 21);
                let mut theirs = MonoFrame::new(61, 21);
                draw(&mut ours_font, &mut ours, x, y, "照明改造Wg,|");
                reference(font, &mut theirs, x, y, "照明改造Wg,|");
                assert!(ours == theirs, "{font:?} clipped at ({x}, {y})");
            }
        }
    }
}
