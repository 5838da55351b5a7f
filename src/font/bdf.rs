//! BDF bitmap fonts an operator drops into `fonts/`: the X11 Glyph Bitmap Distribution Format
//! (Adobe, version 2.1), parsed into a [`GlyphTable`].
//!
//! Only what a board needs is read: `FONT_ASCENT`, `FONT_DESCENT`, `FONTBOUNDINGBOX`, and per
//! glyph `ENCODING`, `DWIDTH`, `BBX` and `BITMAP`. Glyphs wider than 32 pixels keep their first
//! 32 columns; glyphs with a negative `ENCODING` (unencoded) are skipped.

use super::LineMetrics;
use super::table::{GlyphTable, NewGlyph};

/// A BDF file that cannot be used, with the line where reading stopped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BdfError {
    #[error("line {line}: {what}")]
    Syntax { line: usize, what: &'static str },
    #[error("no glyphs")]
    Empty,
}

/// Parses a BDF font.
pub fn parse(text: &str) -> Result<GlyphTable, BdfError> {
    let mut ascent: Option<i32> = None;
    let mut descent: Option<i32> = None;
    let mut bbox_height: Option<i32> = None;
    let mut lines = text.lines().enumerate();
    // Header, up to the first glyph.
    let mut first_glyph = None;
    for (number, line) in lines.by_ref() {
        let mut words = line.split_whitespace();
        match words.next() {
            Some("FONT_ASCENT") => ascent = words.next().and_then(|w| w.parse().ok()),
            Some("FONT_DESCENT") => descent = words.next().and_then(|w| w.parse().ok()),
            Some("FONTBOUNDINGBOX") => bbox_height = words.nth(1).and_then(|w| w.parse().ok()),
            Some("STARTCHAR") => {
                first_glyph = Some(number);
                break;
            }
            _ => {}
        }
    }
    if first_glyph.is_none() {
        return Err(BdfError::Empty);
    }
    let ascent = ascent.or(bbox_height).unwrap_or(0).max(0);
    let descent = descent.unwrap_or(0).max(0);
    let metrics = LineMetrics {
        height: (ascent + descent) as u32,
        baseline: ascent as u32,
    };
    let mut table = GlyphTable::new(metrics);

    let mut encoding: i64 = -1;
    let mut advance = 0i32;
    let mut bbx = (0i32, 0i32, 0i32, 0i32);
    let mut rows: Vec<u32> = Vec::new();
    let mut in_bitmap = false;
    for (number, line) in lines {
        let line_no = number + 1;
        let mut words = line.split_whitespace();
        let Some(keyword) = words.next() else {
            continue;
        };
        if in_bitmap {
            if keyword == "ENDCHAR" {
                in_bitmap = false;
                if let Some(c) = u32::try_from(encoding).ok().and_then(char::from_u32) {
                    let (width, height, x_off, y_off) = bbx;
                    table.insert(
                        c,
                        NewGlyph {
                            left: x_off,
                            // The BBX's bottom is y_off above the baseline; its top is height
                            // rows above that, and y grows downwards on the board.
                            top: -(y_off + height),
                            width: width.clamp(0, 32) as u32,
                            advance: advance.max(0) as u32,
                            rows: &rows,
                        },
                    );
                }
                continue;
            }
            let bytes = keyword.len().div_ceil(2).min(4);
            let value = u32::from_str_radix(&keyword[..(bytes * 2).min(keyword.len())], 16)
                .map_err(|_| BdfError::Syntax {
                    line: line_no,
                    what: "bitmap row is not hex",
                })?;
            // Rows are padded to whole bytes, most significant bit first.
            rows.push(value << (32 - 8 * bytes as u32));
            continue;
        }
        match keyword {
            "STARTCHAR" => {
                encoding = -1;
                advance = 0;
                bbx = (0, 0, 0, 0);
            }
            "ENCODING" => {
                encoding = words
                    .next()
                    .and_then(|w| w.parse().ok())
                    .ok_or(BdfError::Syntax {
                        line: line_no,
                        what: "ENCODING needs a number",
                    })?;
            }
            "DWIDTH" => advance = words.next().and_then(|w| w.parse().ok()).unwrap_or(0),
            "BBX" => {
                let numbers: Vec<i32> = words.filter_map(|w| w.parse().ok()).collect();
                let [w, h, x, y] = numbers[..] else {
                    return Err(BdfError::Syntax {
                        line: line_no,
                        what: "BBX needs four numbers",
                    });
                };
                bbx = (w, h, x, y);
            }
            "BITMAP" => {
                rows.clear();
                in_bitmap = true;
            }
            _ => {}
        }
    }
    if table.is_empty() {
        return Err(BdfError::Empty);
    }
    Ok(table)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FONT: &str = "STARTFONT 2.1
FONT -test-fixed-medium-r-normal--8-80-75-75-c-60-iso10646-1
SIZE 8 75 75
FONTBOUNDINGBOX 6 8 0 -1
STARTPROPERTIES 2
FONT_ASCENT 7
FONT_DESCENT 1
ENDPROPERTIES
CHARS 2
STARTCHAR A
ENCODING 65
SWIDTH 500 0
DWIDTH 6 0
BBX 5 7 0 0
BITMAP
20
50
88
88
F8
88
88
ENDCHAR
STARTCHAR g
ENCODING 103
DWIDTH 6 0
BBX 4 5 1 -1
BITMAP
70
90
70
10
E0
ENDCHAR
ENDFONT
";

    #[test]
    fn reads_metrics_and_glyphs() {
        let table = parse(FONT).unwrap();
        assert_eq!(
            table.metrics(),
            LineMetrics {
                height: 8,
                baseline: 7
            }
        );
        let a = table.get('A').unwrap();
        assert_eq!((a.left, a.top, a.width, a.advance), (0, -7, 5, 6));
        assert_eq!(a.rows[0], 0x2000_0000);
        assert_eq!(a.rows[4], 0xF800_0000);
        let g = table.get('g').unwrap();
        // A descender: its box starts 4 rows above the baseline and ends 1 below.
        assert_eq!((g.left, g.top, g.rows.len()), (1, -4, 5));
    }

    #[test]
    fn broken_files_say_where() {
        assert_eq!(parse("STARTFONT 2.1\n").err(), Some(BdfError::Empty));
        let broken = FONT.replace("BBX 5 7 0 0", "BBX 5 7");
        assert_eq!(
            parse(&broken).err(),
            Some(BdfError::Syntax {
                line: 14,
                what: "BBX needs four numbers"
            })
        );
        let broken = FONT.replace("F8\n", "ZZ\n");
        assert!(matches!(
            parse(&broken),
            Err(BdfError::Syntax {
                what: "bitmap row is not hex",
                ..
            })
        ));
    }
}
