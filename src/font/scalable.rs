//! Scalable fonts (TrueType and OpenType, `.ttf` / `.otf`): outlines turned into anti-aliased
//! coverage at any pixel size, and, for everything that draws with 1-bit rows (LED boards, the
//! validator's glyph check), a threshold of that coverage at the profile's `font_size`.
//!
//! Outlines are read and rasterised with `ab_glyph`. It was chosen over `fontdue` because it
//! reads CFF outlines (the shipped Noto Sans SC is CFF-flavoured OpenType) through
//! `ttf-parser`, hands out coverage through a callback per pixel (so a glyph can go straight
//! into a cache of our own shape without an intermediate bitmap type), and is pure Rust with no
//! system library; fontdue's speed advantage does not matter at kiosk rates (a page a dwell).
//!
//! Sizes are the font's em in pixels (`font_size: 40` makes a hanzi about 40 pixels wide), as in
//! CSS, not ab_glyph's "ascent to descent" scale.
//!
//! The shipped font (`fonts/NotoSansSC-Regular-gb2312.otf`, see `fonts/README.md`) is compiled
//! in, so kiosk rendering and tests need nothing installed; a profile may still name it, or a
//! fuller font, by path.
//!
//! This module owns loading and rasterising glyphs. It does not lay out text or touch frames:
//! `kiosk::render` and `raster` place and blend what it returns. Reading a font file is the
//! caller's I/O.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use ab_glyph::{Font, FontArc, GlyphId, PxScale, ScaleFont, point};

use super::{GlyphRef, GlyphSource, LineMetrics};

/// The shipped font, as cut by `fonts/cut-noto-sans-sc.sh`.
pub const NOTO_SANS_SC: &[u8] = include_bytes!("../../fonts/NotoSansSC-Regular-gb2312.otf");
/// Where the shipped font lives in a site (the repository's `fonts/`), as a profile names it.
pub const NOTO_SANS_SC_PATH: &str = "fonts/NotoSansSC-Regular-gb2312.otf";

/// Smallest and largest `font_size` drawn: below 4 px nothing is legible, above 512 px a single
/// glyph outgrows any screen and its coverage map would be megabytes.
pub const SIZES: std::ops::RangeInclusive<u32> = 4..=512;

/// Why a scalable font cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ScalableError {
    #[error("not a TrueType or OpenType font")]
    Invalid,
    #[error("font size {0} px is outside 4–512 px")]
    Size(u32),
}

/// A loaded TTF/OTF font. Cheap to clone (the font data is shared).
#[derive(Clone)]
pub struct ScalableFont {
    name: String,
    font: FontArc,
    /// `font.height_unscaled() / units_per_em`: converts an em size to ab_glyph's scale.
    height_per_em: f32,
}

impl std::fmt::Debug for ScalableFont {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ScalableFont({})", self.name)
    }
}

/// Vertical metrics at a size, in pixels (descent is negative: below the baseline).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScaledMetrics {
    pub ascent: f32,
    pub descent: f32,
    pub line_gap: f32,
}

/// A glyph's anti-aliased coverage at one size, positioned for a pen at a whole pixel.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Coverage {
    /// Columns from the pen to the left edge of `alpha`.
    pub left: i32,
    /// Rows from the baseline to the top edge of `alpha` (negative: above the baseline).
    pub top: i32,
    pub width: u32,
    pub height: u32,
    /// Row-major, 0 = no ink, 255 = full ink.
    pub alpha: Vec<u8>,
}

impl ScalableFont {
    /// A font from the bytes of a `.ttf` or `.otf` file; `name` is what operators read.
    pub fn from_vec(name: impl Into<String>, data: Vec<u8>) -> Result<ScalableFont, ScalableError> {
        let font = FontArc::try_from_vec(data).map_err(|_| ScalableError::Invalid)?;
        Ok(ScalableFont::wrap(name.into(), font))
    }

    /// The shipped Noto Sans SC subset.
    pub fn noto_sans_sc() -> ScalableFont {
        static FONT: OnceLock<FontArc> = OnceLock::new();
        let font = FONT.get_or_init(|| {
            // The bytes are compiled in and a unit test loads them, so this cannot fail at run
            // time unless the build itself is broken.
            FontArc::try_from_slice(NOTO_SANS_SC).expect("the compiled-in font parses")
        });
        ScalableFont::wrap(NOTO_SANS_SC_PATH.to_owned(), font.clone())
    }

    fn wrap(name: String, font: FontArc) -> ScalableFont {
        let per_em = font.units_per_em().filter(|u| *u > 0.0).unwrap_or(1000.0);
        let height_per_em = (font.height_unscaled() / per_em).max(0.1);
        ScalableFont {
            name,
            font,
            height_per_em,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    fn scale(&self, px: f32) -> PxScale {
        PxScale::from(px * self.height_per_em)
    }

    /// The font's glyph for `c`, if it has one (glyph 0 is `.notdef`, "no glyph").
    fn id(&self, c: char) -> Option<GlyphId> {
        let id = self.font.glyph_id(c);
        (id.0 != 0).then_some(id)
    }

    /// Whether the font has a glyph for `c`.
    pub fn has(&self, c: char) -> bool {
        self.id(c).is_some()
    }

    /// Vertical metrics at an em size of `px` pixels.
    pub fn metrics(&self, px: f32) -> ScaledMetrics {
        let scaled = self.font.as_scaled(self.scale(px));
        ScaledMetrics {
            ascent: scaled.ascent(),
            descent: scaled.descent(),
            line_gap: scaled.line_gap(),
        }
    }

    /// Pen advance of `c` at `px`; `None` when the font lacks `c`.
    pub fn advance(&self, c: char, px: f32) -> Option<f32> {
        let id = self.id(c)?;
        Some(self.font.as_scaled(self.scale(px)).h_advance(id))
    }

    /// `c`'s coverage at `px` for a pen on a whole pixel; `None` when the font lacks `c`. A glyph
    /// without ink (a space) has an empty map.
    pub fn coverage(&self, c: char, px: f32) -> Option<Coverage> {
        let id = self.id(c)?;
        let glyph = id.with_scale_and_position(self.scale(px), point(0.0, 0.0));
        let Some(outlined) = self.font.outline_glyph(glyph) else {
            return Some(Coverage::default());
        };
        let bounds = outlined.px_bounds();
        let width = bounds.width().max(0.0) as u32;
        let height = bounds.height().max(0.0) as u32;
        let mut alpha = vec![0u8; width as usize * height as usize];
        outlined.draw(|x, y, c| {
            if x < width && y < height {
                alpha[(y * width + x) as usize] = (c.clamp(0.0, 1.0) * 255.0 + 0.5) as u8;
            }
        });
        Some(Coverage {
            left: bounds.min.x as i32,
            top: bounds.min.y as i32,
            width,
            height,
            alpha,
        })
    }
}

/// One glyph thresholded to 1-bit rows.
struct BitGlyph {
    left: i32,
    top: i32,
    width: u32,
    advance: u32,
    rows: Vec<u32>,
}

/// A scalable font at a fixed size, thresholded to 1-bit rows, so it serves wherever a bitmap
/// font does: the glyph check of `validate`, and LED boards. Glyphs are rasterised the first
/// time they are asked for and kept. Like BDF glyphs, a glyph keeps at most its first 32
/// columns (the width of a row mask); at LED sizes that is every glyph.
pub struct BitmapAt {
    font: ScalableFont,
    px: u32,
    metrics: LineMetrics,
    ids: HashMap<char, u32>,
    glyphs: Vec<BitGlyph>,
}

impl BitmapAt {
    pub fn new(font: ScalableFont, px: u32) -> Result<BitmapAt, ScalableError> {
        if !SIZES.contains(&px) {
            return Err(ScalableError::Size(px));
        }
        let m = font.metrics(px as f32);
        let baseline = m.ascent.round().max(1.0) as u32;
        let height = (m.ascent - m.descent).round().max(baseline as f32) as u32;
        Ok(BitmapAt {
            font,
            px,
            metrics: LineMetrics { height, baseline },
            ids: HashMap::new(),
            glyphs: Vec::new(),
        })
    }

    /// The scalable font underneath.
    pub fn font(&self) -> &ScalableFont {
        &self.font
    }

    pub fn size(&self) -> u32 {
        self.px
    }

    fn rasterise(&self, c: char) -> Option<BitGlyph> {
        let px = self.px as f32;
        let advance = self.font.advance(c, px)?.round().max(0.0) as u32;
        let cov = self.font.coverage(c, px)?;
        let width = cov.width.min(32);
        let rows = (0..cov.height as usize)
            .map(|y| {
                let row = &cov.alpha[y * cov.width as usize..][..width as usize];
                row.iter().enumerate().fold(0u32, |mask, (x, a)| {
                    // Half coverage or more is ink: strokes keep their weight on average.
                    if *a >= 128 {
                        mask | (0x8000_0000 >> x)
                    } else {
                        mask
                    }
                })
            })
            .collect();
        Some(BitGlyph {
            left: cov.left,
            top: cov.top,
            width,
            advance,
            rows,
        })
    }
}

impl GlyphSource for BitmapAt {
    fn find(&mut self, c: char) -> Option<u32> {
        if let Some(id) = self.ids.get(&c) {
            return Some(*id);
        }
        let glyph = self.rasterise(c)?;
        let id = self.glyphs.len() as u32;
        self.glyphs.push(glyph);
        self.ids.insert(c, id);
        Some(id)
    }

    fn by_id(&self, id: u32) -> GlyphRef<'_> {
        match self.glyphs.get(id as usize) {
            Some(g) => GlyphRef {
                left: g.left,
                top: g.top,
                width: g.width,
                advance: g.advance,
                rows: &g.rows,
            },
            None => GlyphRef {
                left: 0,
                top: 0,
                width: 0,
                advance: 0,
                rows: &[],
            },
        }
    }

    fn metrics(&self) -> LineMetrics {
        self.metrics
    }

    fn name(&self) -> &str {
        self.font.name()
    }
}

/// A glyph ready to blend: its coverage and how far the pen moves, in whole pixels (layout
/// measures with the same whole-pixel advances, so what is measured is what is drawn).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlacedGlyph {
    pub coverage: Coverage,
    pub advance: u32,
    /// Which font drew it.
    pub source: GlyphOrigin,
}

/// Where a [`PlacedGlyph`] comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GlyphOrigin {
    /// The scalable font itself.
    Font,
    /// GNU Unifont, scaled up (a character outside the font, such as a rare name character).
    Unifont,
    /// No font has it: a box one em wide.
    Missing,
    /// A control character: nothing drawn, no advance.
    Control,
}

/// Anti-aliased glyphs of one font at several sizes, each rasterised once. Kiosk pages ask for
/// the same few hundred hanzi at three or four sizes over and over. A character the font lacks
/// is drawn by Unifont scaled to the size (blocky, but the character is there), as LED boards
/// fall back to Unifont; one no font has is a box.
#[derive(Debug, Clone)]
pub struct CoverageCache {
    font: ScalableFont,
    glyphs: HashMap<(char, u32), Arc<PlacedGlyph>>,
}

impl CoverageCache {
    pub fn new(font: ScalableFont) -> CoverageCache {
        CoverageCache {
            font,
            glyphs: HashMap::new(),
        }
    }

    pub fn font(&self) -> &ScalableFont {
        &self.font
    }

    /// `c` at an em size of `px`.
    pub fn get(&mut self, c: char, px: u32) -> Arc<PlacedGlyph> {
        if let Some(glyph) = self.glyphs.get(&(c, px)) {
            return glyph.clone();
        }
        let glyph = Arc::new(self.place(c, px));
        self.glyphs.insert((c, px), glyph.clone());
        glyph
    }

    /// The pen advance of `c` at `px`.
    pub fn advance(&mut self, c: char, px: u32) -> u32 {
        self.get(c, px).advance
    }

    fn place(&self, c: char, px: u32) -> PlacedGlyph {
        let size = px as f32;
        if c.is_control() {
            return PlacedGlyph {
                coverage: Coverage::default(),
                advance: 0,
                source: GlyphOrigin::Control,
            };
        }
        if let (Some(coverage), Some(advance)) =
            (self.font.coverage(c, size), self.font.advance(c, size))
        {
            return PlacedGlyph {
                coverage,
                advance: advance.round().max(0.0) as u32,
                source: GlyphOrigin::Font,
            };
        }
        let unifont = super::unifont::table();
        if let Some(glyph) = unifont.get(c) {
            return scaled_bitmap(glyph, unifont.metrics(), px);
        }
        missing_box(px, self.font.metrics(size))
    }
}

/// A 16-pixel Unifont glyph scaled to an em of `px`: each output pixel takes the source pixel
/// under its centre, so strokes stay solid.
fn scaled_bitmap(glyph: GlyphRef<'_>, metrics: LineMetrics, px: u32) -> PlacedGlyph {
    let from = metrics.height.max(1);
    let scale = |v: i64| (v * i64::from(px) / i64::from(from)) as i32;
    let width = scale(i64::from(glyph.width)).max(0) as u32;
    let height = scale(glyph.rows.len() as i64).max(0) as u32;
    let mut alpha = vec![0u8; width as usize * height as usize];
    for y in 0..height {
        let sy = ((u64::from(y) * 2 + 1) * u64::from(from) / (2 * u64::from(px))) as usize;
        let Some(row) = glyph.rows.get(sy) else {
            continue;
        };
        for x in 0..width {
            let sx = (u64::from(x) * 2 + 1) * u64::from(from) / (2 * u64::from(px));
            if sx < 32 && row & (0x8000_0000 >> sx) != 0 {
                alpha[(y * width + x) as usize] = 255;
            }
        }
    }
    PlacedGlyph {
        coverage: Coverage {
            left: scale(i64::from(glyph.left)),
            top: scale(i64::from(glyph.top)),
            width,
            height,
            alpha,
        },
        advance: scale(i64::from(glyph.advance)).max(0) as u32,
        source: GlyphOrigin::Unifont,
    }
}

/// The outline of a box one em wide, standing on the baseline.
fn missing_box(px: u32, metrics: ScaledMetrics) -> PlacedGlyph {
    let width = px.saturating_sub(px / 5).max(2);
    let height = (metrics.ascent * 0.9).round().max(2.0) as u32;
    let stroke = (px / 16).max(1);
    let mut alpha = vec![0u8; width as usize * height as usize];
    for y in 0..height {
        for x in 0..width {
            if x < stroke || y < stroke || x + stroke >= width || y + stroke >= height {
                alpha[(y * width + x) as usize] = 255;
            }
        }
    }
    PlacedGlyph {
        coverage: Coverage {
            left: (px / 10) as i32,
            top: -(height as i32),
            width,
            height,
            alpha,
        },
        advance: px,
        source: GlyphOrigin::Missing,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_font_loads_and_has_gb2312_and_notice_punctuation() {
        let font = ScalableFont::noto_sans_sc();
        for c in "国政务公开镕玥，。、；：？！“”《》（）【】—…·0123456789ABCxyz%".chars()
        {
            assert!(font.has(c), "{c} U+{:04X}", c as u32);
        }
        // Outside GB2312 and the examples: the subset really is a subset.
        assert!(!font.has('𠀀'));
    }

    #[test]
    fn an_em_size_makes_a_hanzi_that_wide() {
        let font = ScalableFont::noto_sans_sc();
        let advance = font.advance('国', 40.0).unwrap();
        assert!((advance - 40.0).abs() < 0.5, "{advance}");
        let cov = font.coverage('国', 40.0).unwrap();
        assert!(cov.width > 30 && cov.width <= 40, "{cov:?}");
        assert!(cov.top < 0, "ink above the baseline");
        // Anti-aliased: some pixels are partly covered.
        assert!(cov.alpha.iter().any(|a| *a > 0 && *a < 255));
        assert!(cov.alpha.contains(&255));
    }

    #[test]
    fn bytes_that_are_no_font_are_refused() {
        assert_eq!(
            ScalableFont::from_vec("x.ttf", b"not a font".to_vec()).err(),
            Some(ScalableError::Invalid)
        );
        let font = ScalableFont::noto_sans_sc();
        assert!(matches!(
            BitmapAt::new(font, 2000),
            Err(ScalableError::Size(2000))
        ));
    }

    #[test]
    fn thresholded_glyphs_serve_a_font_chain() {
        let bitmap = BitmapAt::new(ScalableFont::noto_sans_sc(), 16).unwrap();
        let mut chain = super::super::FontChain::new(super::super::Primary::Scalable(bitmap));
        assert_eq!(chain.resolve('国'), super::super::Resolved::Primary);
        // Outside the subset: Unifont draws it.
        assert_eq!(chain.resolve('䶮'), super::super::Resolved::Fallback(1));
        let glyph = chain.glyph('国');
        assert_eq!(glyph.advance, 16);
        assert!(glyph.rows.iter().any(|r| *r != 0));
        assert_eq!(chain.names()[0], NOTO_SANS_SC_PATH);
    }

    #[test]
    fn characters_outside_the_font_fall_back_to_scaled_unifont_then_a_box() {
        let mut cache = CoverageCache::new(ScalableFont::noto_sans_sc());
        assert_eq!(cache.get('国', 40).source, GlyphOrigin::Font);
        let rare = cache.get('䶮', 40);
        assert_eq!(rare.source, GlyphOrigin::Unifont);
        assert_eq!(rare.advance, 40);
        assert!(rare.coverage.alpha.contains(&255));
        let none = cache.get('\u{F0000}', 40);
        assert_eq!(none.source, GlyphOrigin::Missing);
        assert_eq!(none.advance, 40);
        assert_eq!(cache.get('\n', 40).advance, 0);
    }
}
