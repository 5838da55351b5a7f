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
        let metrics = font.board_metrics(nominal_size(font_kind), provisional);
        font.table.set_metrics(metrics);
        font
    }

    /// A board's line is the font's nominal size (a 16 px font on 16 rows, four lines on a
    /// 64-row board), not its bounding box, which a few outsized symbols inflate (wqy16's is 18
    /// rows). The baseline puts a hanzi's top row on the line's first row, or lower if a
    /// descender (g) would otherwise leave the line.
    fn board_metrics(&mut self, size: u32, fallback: LineMetrics) -> LineMetrics {
        let hanzi_top = self.glyph('国').map(|g| -g.top);
        let descender = self.glyph('g').map(|g| g.top + g.rows.len() as i32 - 1);
        match (hanzi_top, descender) {
            (Some(top), Some(bottom)) => {
                let baseline = top.max(size as i32 - 1 - bottom).clamp(0, size as i32 - 1);
                LineMetrics {
                    height: size,
                    baseline: baseline as u32,
                }
            }
            _ => fallback,
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
    #[inline]
    fn glyph(&mut self, c: char) -> Option<GlyphRef<'_>> {
        let code = c as usize;
        // u8g2 encodes glyphs as u16: nothing beyond the BMP.
        if code >= 0x1_0000 || self.is_miss(code) {
            return None;
        }
        if !self.table.contains(c) && !self.unpack(c) {
            self.misses[code / 64] |= 1 << (code % 64);
            return None;
        }
        self.table.get(c)
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
