//! GNU Unifont as the last fallback: a 16-pixel glyph for (almost) every character of the Basic
//! Multilingual Plane, so names such as 王玥、刘喆、陈堃、李镕 in a hiring notice still draw.
//!
//! The font ships inside the binary as `fonts/unifont-15.0.01.hex.gz` (Unifont's own `.hex`
//! format — one glyph per line, `XXXX:` then 32 or 64 hex digits for 8×16 or 16×16 — gzipped,
//! 0.9 MB) and is unpacked only the first time a character needs it. Licence: GNU Unifont is
//! dual-licensed under the SIL Open Font License 1.1 and the GNU GPL 2+ with the GNU font
//! embedding exception; gongkai uses it under the OFL (see `fonts/README.md`).

use std::io::Read;
use std::sync::OnceLock;

use super::LineMetrics;
use super::table::{GlyphTable, NewGlyph};

/// The compressed font, as shipped.
static UNIFONT_HEX_GZ: &[u8] = include_bytes!("../../fonts/unifont-15.0.01.hex.gz");

/// Unifont's glyphs are 16 rows with the baseline under row 14 (two rows of descent).
pub const METRICS: LineMetrics = LineMetrics {
    height: 16,
    baseline: 14,
};

/// The unpacked font, shared by every display and loaded on first use.
pub fn table() -> &'static GlyphTable {
    static TABLE: OnceLock<GlyphTable> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut text = String::new();
        // The data is ours, compiled in; a failure here is a build defect, and an empty table
        // (every fallback character then reported missing) is the safe outcome.
        if flate2::read::GzDecoder::new(UNIFONT_HEX_GZ)
            .read_to_string(&mut text)
            .is_err()
        {
            text.clear();
        }
        parse_hex(&text)
    })
}

/// Parses Unifont `.hex` text. Lines that do not parse are skipped.
pub fn parse_hex(text: &str) -> GlyphTable {
    let mut table = GlyphTable::new(METRICS);
    let mut rows = [0u32; 16];
    for line in text.lines() {
        let Some((code, bits)) = line.split_once(':') else {
            continue;
        };
        let Some(c) = u32::from_str_radix(code, 16).ok().and_then(char::from_u32) else {
            continue;
        };
        let width = match bits.len() {
            32 => 8,
            64 => 16,
            _ => continue,
        };
        let digits_per_row = bits.len() / 16;
        let mut ok = true;
        for (row, chunk) in rows.iter_mut().zip(bits.as_bytes().chunks(digits_per_row)) {
            match std::str::from_utf8(chunk)
                .ok()
                .and_then(|s| u32::from_str_radix(s, 16).ok())
            {
                // Left-align the row in the mask: bit 31 is the leftmost column.
                Some(value) => *row = value << (32 - width),
                None => ok = false,
            }
        }
        if ok {
            table.insert(
                c,
                NewGlyph {
                    left: 0,
                    top: -(METRICS.baseline as i32),
                    width,
                    advance: width,
                    rows: &rows,
                },
            );
        }
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_narrow_and_wide_glyphs() {
        let table = parse_hex(
            "0041:0000000018242442427E424242420000\n9555:204020203BFE220240507888A1242050F888210422FA20882888308820F80088\nbad line\n",
        );
        let a = table.get('A').unwrap();
        assert_eq!((a.width, a.advance, a.top), (8, 8, -14));
        assert_eq!(a.rows[4], 0x1800_0000);
        let rong = table.get('镕').unwrap();
        assert_eq!((rong.width, rong.advance), (16, 16));
        assert_eq!(rong.rows[0], 0x2040_0000);
        assert_eq!(table.len(), 2);
    }

    #[test]
    fn shipped_font_covers_rare_name_characters_and_gb2312_gaps() {
        let table = table();
        assert!(table.len() > 50_000, "{} glyphs", table.len());
        for c in ['镕', '喆', '堃', '玥', '\u{3000}', '—', '―', '·', '～'] {
            assert!(table.contains(c), "Unifont lacks {c:?}");
        }
    }
}
