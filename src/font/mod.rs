//! Fonts: which glyph draws each character, and its pixels as rows of bit masks.
//!
//! A display draws with a [`FontChain`]: its profile's font first (a built-in u8g2 GB2312 font,
//! or a BDF file from the site's `fonts/`), then GNU Unifont for everything else in the Basic
//! Multilingual Plane. A scalable font (TTF/OTF, [`scalable`]) takes part at the profile's
//! `font_size`, thresholded to 1-bit rows; touchscreens draw it anti-aliased instead (`kiosk`). Before falling back, a small substitution table maps characters the
//! GB2312 fonts lack to look-alikes they have (U+3000 → a blank hanzi cell, — → ─, · → ・), so
//! common punctuation keeps the board's own style. A character no font has is drawn as a
//! visible box. [`FontChain::resolve`] says which of these happened, so `validate` can warn
//! about fallbacks and refuse missing characters.
//!
//! This module owns glyph data and lookup. It does not lay out text (`layout`) and does not
//! touch frames (`raster` blits the rows). Loading a BDF file is the caller's I/O; parsing is here.

pub mod bdf;
pub mod scalable;
pub mod table;
pub mod u8g2;
pub mod unifont;

use crate::config::model::BuiltinFont;
use crate::layout::{LineBox, Measure};
use table::GlyphTable;

/// Vertical metrics of a font.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineMetrics {
    /// Height of a text line in pixels.
    pub height: u32,
    /// Rows from the top of the line to the baseline.
    pub baseline: u32,
}

/// A glyph's pixels, borrowed from its font.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GlyphRef<'a> {
    /// Columns from the pen position to the bitmap's left edge.
    pub left: i32,
    /// Rows from the baseline to the bitmap's top (negative: above the baseline).
    pub top: i32,
    /// Bitmap width in columns (at most 32).
    pub width: u32,
    /// How far the pen moves.
    pub advance: u32,
    /// One mask per bitmap row; bit 31 is the leftmost column.
    pub rows: &'a [u32],
}

/// Where a font's glyphs come from. Looking up (which may unpack a glyph) and borrowing are
/// two steps, so a caller can look up in one font and fall back to another without holding a
/// borrow across both.
pub trait GlyphSource {
    /// The id of `c`'s glyph, if this font has one.
    fn find(&mut self, c: char) -> Option<u32>;
    /// The glyph with an id `find` returned.
    fn by_id(&self, id: u32) -> GlyphRef<'_>;
    fn metrics(&self) -> LineMetrics;
    /// The name reported to operators (`wqy16`, `fonts/board.bdf`, `unifont-bmp`).
    fn name(&self) -> &str;

    /// The glyph for `c`, if this font has one.
    fn glyph(&mut self, c: char) -> Option<GlyphRef<'_>> {
        let id = self.find(c)?;
        Some(self.by_id(id))
    }
}

/// A font loaded from a file, held whole.
pub struct FileFont {
    pub name: String,
    pub table: GlyphTable,
}

impl GlyphSource for FileFont {
    fn find(&mut self, c: char) -> Option<u32> {
        self.table.find(c)
    }
    fn by_id(&self, id: u32) -> GlyphRef<'_> {
        self.table.by_id(id)
    }
    fn metrics(&self) -> LineMetrics {
        self.table.metrics()
    }
    fn name(&self) -> &str {
        &self.name
    }
}

/// How a character gets drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolved {
    /// By the display's own font.
    Primary,
    /// By the display's own font, as a look-alike character.
    Substituted(char),
    /// By a fallback font (its index in the chain, 1 = first fallback).
    Fallback(usize),
    /// A blank the width of a hanzi (U+3000 and the like).
    Blank,
    /// By no font: drawn as a box.
    Missing,
}

/// Characters GB2312 fonts lack, and the look-alikes they have. Tried in order; the first the
/// primary font has wins. `None` means "a blank as wide as a hanzi".
const SUBSTITUTES: &[(char, &[Option<char>])] = &[
    ('\u{3000}', &[None]), // ideographic space
    (
        '\u{2014}',
        &[Some('\u{2015}'), Some('\u{2500}'), Some('\u{FF0D}')],
    ), // em dash
    (
        '\u{2015}',
        &[Some('\u{2014}'), Some('\u{2500}'), Some('\u{FF0D}')],
    ), // horizontal bar
    ('\u{00B7}', &[Some('\u{30FB}'), Some('\u{2022}')]), // middle dot
    ('\u{30FB}', &[Some('\u{00B7}')]), // katakana middle dot
    ('\u{2022}', &[Some('\u{00B7}'), Some('\u{30FB}')]), // bullet
    ('\u{FF5E}', &[Some('\u{301C}'), Some('~')]), // fullwidth tilde
    ('\u{301C}', &[Some('\u{FF5E}'), Some('~')]), // wave dash
    ('\u{2212}', &[Some('\u{FF0D}'), Some('-')]), // minus sign
    ('\u{00A0}', &[Some(' ')]), // no-break space
];

/// A display's own font. An enum rather than a trait object: it is asked for every glyph of
/// every frame, and a direct call lets the lookup inline.
pub enum Primary {
    Builtin(u8g2::U8g2Font),
    File(FileFont),
    /// A TTF/OTF font at the profile's `font_size`, thresholded to 1-bit rows.
    Scalable(scalable::BitmapAt),
}

impl GlyphSource for Primary {
    #[inline(always)]
    fn find(&mut self, c: char) -> Option<u32> {
        match self {
            Primary::Builtin(font) => font.find(c),
            Primary::File(font) => font.find(c),
            Primary::Scalable(font) => font.find(c),
        }
    }
    #[inline(always)]
    fn by_id(&self, id: u32) -> GlyphRef<'_> {
        match self {
            Primary::Builtin(font) => font.by_id(id),
            Primary::File(font) => font.by_id(id),
            Primary::Scalable(font) => font.by_id(id),
        }
    }
    fn metrics(&self) -> LineMetrics {
        match self {
            Primary::Builtin(font) => font.metrics(),
            Primary::File(font) => font.metrics(),
            Primary::Scalable(font) => font.metrics(),
        }
    }
    fn name(&self) -> &str {
        match self {
            Primary::Builtin(font) => font.name(),
            Primary::File(font) => font.name(),
            Primary::Scalable(font) => font.name(),
        }
    }
}

/// The fonts of one display, in the order they are tried.
pub struct FontChain {
    primary: Primary,
    /// Tried in order after the primary; `Resolved::Fallback(i)` is `fallbacks[i - 1]`.
    fallbacks: Vec<Box<dyn GlyphSource + Send>>,
    /// Rows to move each font's glyphs down so that its hanzi stand where the primary font's
    /// do (0 for the primary).
    shifts: Vec<i32>,
    /// Advance of a blank cell (U+3000) and of the missing-glyph box: a hanzi's width.
    cell: u32,
    /// The missing-glyph box, rows as masks.
    missing: Vec<u32>,
    metrics: LineMetrics,
}

impl FontChain {
    /// A chain with `primary` first and Unifont as the last fallback.
    pub fn new(mut primary: Primary) -> FontChain {
        let metrics = primary.metrics();
        let cell = primary
            .glyph('国')
            .map_or(metrics.height.max(8), |g| g.advance);
        let missing = box_rows(cell, metrics);
        let mut fallback: Box<dyn GlyphSource + Send> = Box::new(StaticTable {
            name: "unifont-bmp",
            table: unifont::table(),
        });
        // Align the tops of the ink of a reference hanzi, so a fallback name sits in line.
        let shift = match (ink_top(primary.glyph('国')), ink_top(fallback.glyph('国'))) {
            (Some(primary_top), Some(fallback_top)) => primary_top - fallback_top,
            _ => 0,
        };
        FontChain {
            primary,
            fallbacks: vec![fallback],
            shifts: vec![0, shift],
            cell,
            missing,
            metrics,
        }
    }

    /// The chain for a built-in font.
    pub fn builtin(font: BuiltinFont) -> FontChain {
        FontChain::new(Primary::Builtin(u8g2::U8g2Font::new(font)))
    }

    /// Names of the fonts in the chain, in order.
    pub fn names(&self) -> Vec<&str> {
        std::iter::once(self.primary.name())
            .chain(self.fallbacks.iter().map(|f| f.name()))
            .collect()
    }

    pub fn metrics(&self) -> LineMetrics {
        self.metrics
    }

    /// How `c` is drawn.
    pub fn resolve(&mut self, c: char) -> Resolved {
        if self.primary.find(c).is_some() {
            return Resolved::Primary;
        }
        if let Some((_, options)) = SUBSTITUTES.iter().find(|(from, _)| *from == c) {
            for option in *options {
                match option {
                    None => return Resolved::Blank,
                    Some(to) if self.primary.find(*to).is_some() => {
                        return Resolved::Substituted(*to);
                    }
                    Some(_) => {}
                }
            }
        }
        for (index, font) in self.fallbacks.iter_mut().enumerate() {
            if font.find(c).is_some() {
                return Resolved::Fallback(index + 1);
            }
        }
        Resolved::Missing
    }

    /// The glyph that draws `c`, whatever font it comes from; a box for a missing character.
    /// Control characters draw nothing and do not move the pen.
    #[inline(always)]
    pub fn glyph(&mut self, c: char) -> GlyphRef<'_> {
        // The hot path: the display's own font has it.
        if let Some(id) = self.primary.find(c) {
            return self.primary.by_id(id);
        }
        self.glyph_slow(c)
    }

    #[cold]
    fn glyph_slow(&mut self, c: char) -> GlyphRef<'_> {
        if c.is_control() {
            return GlyphRef {
                left: 0,
                top: 0,
                width: 0,
                advance: 0,
                rows: &[],
            };
        }
        match self.resolve(c) {
            Resolved::Primary => self.primary.glyph(c).unwrap_or(EMPTY),
            Resolved::Substituted(to) => self.primary.glyph(to).unwrap_or(EMPTY),
            Resolved::Fallback(index) => {
                let shift = self.shifts.get(index).copied().unwrap_or(0);
                let Some(font) = self.fallbacks.get_mut(index.wrapping_sub(1)) else {
                    return EMPTY;
                };
                font.glyph(c).map_or(EMPTY, |g| GlyphRef {
                    top: g.top + shift,
                    ..g
                })
            }
            Resolved::Blank => GlyphRef {
                left: 0,
                top: 0,
                width: 0,
                advance: self.cell,
                rows: &[],
            },
            Resolved::Missing => GlyphRef {
                left: 1,
                top: 1 - self.metrics.baseline as i32,
                width: self.cell.saturating_sub(2).min(32),
                advance: self.cell,
                rows: &self.missing,
            },
        }
    }
}

/// Rows from the baseline to the first row with ink (negative: above the baseline).
fn ink_top(glyph: Option<GlyphRef<'_>>) -> Option<i32> {
    let glyph = glyph?;
    let first = glyph.rows.iter().position(|row| *row != 0)?;
    Some(glyph.top + first as i32)
}

const EMPTY: GlyphRef<'static> = GlyphRef {
    left: 0,
    top: 0,
    width: 0,
    advance: 0,
    rows: &[],
};

/// The outline of a box one hanzi cell wide, a pixel inside the cell on each side.
fn box_rows(cell: u32, metrics: LineMetrics) -> Vec<u32> {
    let width = cell.saturating_sub(2).clamp(2, 32);
    let height = metrics.height.saturating_sub(2).max(2) as usize;
    let full = u32::MAX << (32 - width);
    let sides = 0x8000_0000 | (0x8000_0000 >> (width - 1));
    let mut rows = vec![sides; height];
    rows[0] = full;
    rows[height - 1] = full;
    rows
}

/// Unifont, shared by all chains.
struct StaticTable {
    name: &'static str,
    table: &'static GlyphTable,
}

impl GlyphSource for StaticTable {
    fn find(&mut self, c: char) -> Option<u32> {
        self.table.find(c)
    }
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

impl Measure for FontChain {
    fn advance(&mut self, c: char) -> u32 {
        self.glyph(c).advance
    }

    fn line_box(&self) -> LineBox {
        LineBox {
            height: self.metrics.height,
            baseline: self.metrics.baseline,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gb2312_font_falls_back_to_unifont_for_rare_name_characters() {
        let mut chain = FontChain::builtin(BuiltinFont::Wqy16);
        assert_eq!(chain.resolve('国'), Resolved::Primary);
        for c in ['镕', '喆', '堃', '玥'] {
            assert_eq!(chain.resolve(c), Resolved::Fallback(1), "{c}");
            assert_eq!(chain.glyph(c).advance, 16);
        }
        assert_eq!(chain.names(), vec!["wqy16", "unifont-bmp"]);
    }

    #[test]
    fn gb2312_gaps_are_substituted_not_fallen_back() {
        let mut chain = FontChain::builtin(BuiltinFont::Wqy16);
        assert_eq!(chain.resolve('\u{3000}'), Resolved::Blank);
        assert_eq!(chain.glyph('\u{3000}').advance, chain.glyph('国').advance);
        assert!(
            matches!(
                chain.resolve('—'),
                Resolved::Substituted(_) | Resolved::Primary
            ),
            "{:?}",
            chain.resolve('—')
        );
        assert!(
            matches!(
                chain.resolve('·'),
                Resolved::Substituted(_) | Resolved::Primary
            ),
            "{:?}",
            chain.resolve('·')
        );
    }

    #[test]
    fn a_character_no_font_has_is_a_visible_box() {
        let mut chain = FontChain::builtin(BuiltinFont::Wqy16);
        // Plane 15 private use: no font has it.
        let c = '\u{F0000}';
        assert_eq!(chain.resolve(c), Resolved::Missing);
        let glyph = chain.glyph(c);
        assert_eq!(glyph.advance, 16);
        assert!(
            glyph.rows.len() >= 2 && glyph.rows[0] != 0,
            "the box has a top edge"
        );
    }
}
