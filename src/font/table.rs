//! [`GlyphTable`]: glyphs unpacked into rows of bit masks, looked up by code point in O(1).
//!
//! Every font source ends up here (Unifont and BDF files when they load; the built-in u8g2
//! fonts glyph by glyph as they are first used), so raster blits one representation.
//!
//! Memory: a slot table of 65,536 × 4 bytes for the Basic Multilingual Plane (characters
//! beyond it are kept in a small sorted side list) and 76 bytes per glyph of up to 16 rows,
//! kept inline so drawing a glyph touches one entry (taller glyphs keep their rows apart).
//! Unifont's 57,000 glyphs take about 4.3 MB, loaded once and shared by every display; a
//! GB2312 font at most 7,541 × 76 bytes ≈ 560 KiB when every one of its glyphs has been used.

use super::{GlyphRef, LineMetrics};

/// Slot value for "no glyph".
const NONE: u32 = u32::MAX;

/// Rows kept inside an entry: every built-in and Unifont glyph fits, so drawing one touches
/// one entry and nothing else.
const INLINE_ROWS: usize = 16;

#[derive(Debug, Clone, Copy)]
struct Entry {
    rows: [u32; INLINE_ROWS],
    /// Taller glyphs (large BDF fonts): where their rows start in `GlyphTable::rows`.
    first_row: u32,
    left: i8,
    top: i8,
    width: u8,
    height: u8,
    advance: u16,
}

/// Unpacked glyphs of one font.
pub struct GlyphTable {
    metrics: LineMetrics,
    slots: Box<[u32]>,
    /// Glyphs beyond the BMP, sorted by code point.
    astral: Vec<(u32, u32)>,
    entries: Vec<Entry>,
    rows: Vec<u32>,
}

/// A glyph as a font source hands it over for storing.
#[derive(Debug, Clone, Copy)]
pub struct NewGlyph<'a> {
    pub left: i32,
    pub top: i32,
    pub width: u32,
    pub advance: u32,
    /// One mask per row, bit 31 = leftmost column.
    pub rows: &'a [u32],
}

impl GlyphTable {
    pub fn new(metrics: LineMetrics) -> GlyphTable {
        GlyphTable {
            metrics,
            slots: vec![NONE; 0x1_0000].into_boxed_slice(),
            astral: Vec::new(),
            entries: Vec::new(),
            rows: Vec::new(),
        }
    }

    pub fn metrics(&self) -> LineMetrics {
        self.metrics
    }

    pub fn set_metrics(&mut self, metrics: LineMetrics) {
        self.metrics = metrics;
    }

    /// Number of glyphs stored.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Stores a glyph for `c`, replacing any earlier one. Values out of range are clamped: a
    /// glyph wider than 32 columns keeps its first 32.
    pub fn insert(&mut self, c: char, glyph: NewGlyph<'_>) {
        let height = glyph.rows.len().min(255);
        let mut inline = [0u32; INLINE_ROWS];
        if height <= INLINE_ROWS {
            inline[..height].copy_from_slice(&glyph.rows[..height]);
        }
        let entry = Entry {
            rows: inline,
            first_row: self.rows.len() as u32,
            left: glyph.left.clamp(i8::MIN.into(), i8::MAX.into()) as i8,
            top: glyph.top.clamp(i8::MIN.into(), i8::MAX.into()) as i8,
            width: glyph.width.min(32) as u8,
            height: glyph.rows.len().min(255) as u8,
            advance: glyph.advance.min(u16::MAX.into()) as u16,
        };
        if height > INLINE_ROWS {
            self.rows.extend_from_slice(&glyph.rows[..height]);
        }
        let index = self.entries.len() as u32;
        self.entries.push(entry);
        let code = u32::from(c);
        if code < 0x1_0000 {
            self.slots[code as usize] = index;
        } else {
            match self.astral.binary_search_by_key(&code, |(c, _)| *c) {
                Ok(at) => self.astral[at].1 = index,
                Err(at) => self.astral.insert(at, (code, index)),
            }
        }
    }

    pub fn contains(&self, c: char) -> bool {
        self.index(c).is_some()
    }

    /// The glyph's id in this table, to fetch it with [`GlyphTable::by_id`].
    #[inline(always)]
    pub fn find(&self, c: char) -> Option<u32> {
        self.index(c).map(|i| i as u32)
    }

    /// The glyph with an id [`GlyphTable::find`] returned.
    #[inline(always)]
    pub fn by_id(&self, id: u32) -> GlyphRef<'_> {
        let entry = &self.entries[id as usize];
        let height = usize::from(entry.height);
        let rows = if height <= INLINE_ROWS {
            &entry.rows[..height]
        } else {
            let first = entry.first_row as usize;
            &self.rows[first..first + height]
        };
        GlyphRef {
            left: entry.left.into(),
            top: entry.top.into(),
            width: entry.width.into(),
            advance: entry.advance.into(),
            rows,
        }
    }

    #[inline(always)]
    fn index(&self, c: char) -> Option<usize> {
        let code = u32::from(c);
        let index = if code < 0x1_0000 {
            self.slots[code as usize]
        } else {
            self.astral
                .binary_search_by_key(&code, |(c, _)| *c)
                .map(|at| self.astral[at].1)
                .unwrap_or(NONE)
        };
        (index != NONE).then_some(index as usize)
    }

    pub fn get(&self, c: char) -> Option<GlyphRef<'_>> {
        Some(self.by_id(self.find(c)?))
    }

    /// Every character with a glyph, in code point order.
    pub fn chars(&self) -> impl Iterator<Item = char> + '_ {
        let bmp = self
            .slots
            .iter()
            .enumerate()
            .filter(|(_, slot)| **slot != NONE)
            .filter_map(|(code, _)| char::from_u32(code as u32));
        bmp.chain(
            self.astral
                .iter()
                .filter_map(|(code, _)| char::from_u32(*code)),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_and_get_in_and_beyond_the_bmp() {
        let mut table = GlyphTable::new(LineMetrics {
            height: 16,
            baseline: 14,
        });
        table.insert(
            '甲',
            NewGlyph {
                left: 1,
                top: -14,
                width: 16,
                advance: 16,
                rows: &[0x8000_0000, 0x4000_0000],
            },
        );
        table.insert(
            '😀',
            NewGlyph {
                left: 0,
                top: -14,
                width: 16,
                advance: 16,
                rows: &[0xFFFF_0000],
            },
        );
        let glyph = table.get('甲').unwrap();
        assert_eq!(
            (glyph.left, glyph.top, glyph.width, glyph.advance),
            (1, -14, 16, 16)
        );
        assert_eq!(glyph.rows, &[0x8000_0000, 0x4000_0000]);
        assert_eq!(table.get('😀').unwrap().rows, &[0xFFFF_0000]);
        assert!(table.get('乙').is_none());
        assert_eq!(table.chars().collect::<String>(), "甲😀");
    }
}
