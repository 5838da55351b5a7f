//! A font-free estimate of how long an item plays, for `gongkai plan` and tests.
//!
//! It lays the item out with [`crate::layout::layout`] and a measure in which a wide
//! character (a hanzi) is one em and any other half an em, the em being the profile font's
//! pixel size. The daemon passes durations from the real fonts instead; this module must not
//! load any.

use std::time::Duration;

use unicode_width::UnicodeWidthChar;

use crate::config::model::{BuiltinFont, DisplayIdx, FontRef, Item, Model};
use crate::layout::{Canvas, Content, LineBox, Measure, layout};

/// Advances of a monospaced CJK font of `em` pixels.
struct Cells {
    em: u32,
}

impl Measure for Cells {
    fn advance(&mut self, c: char) -> u32 {
        match c.width() {
            Some(2) => self.em,
            Some(0) | None => 0,
            _ => self.em.div_ceil(2),
        }
    }

    fn line_box(&self) -> LineBox {
        LineBox {
            height: self.em,
            baseline: self.em * 7 / 8,
        }
    }
}

/// The font's pixel size as the profile names it.
fn em(font: &FontRef) -> u32 {
    match font {
        FontRef::Builtin(BuiltinFont::Wqy12) => 12,
        FontRef::Builtin(BuiltinFont::Wqy14) => 14,
        FontRef::Builtin(BuiltinFont::Wqy15) => 15,
        FontRef::Builtin(BuiltinFont::Wqy16 | BuiltinFont::Unifont) => 16,
        FontRef::File { size, .. } => size.unwrap_or(16).max(1),
    }
}

/// How long `item` plays on `display`, estimated without fonts.
pub fn duration(model: &Model, item: &Item, display: DisplayIdx) -> Duration {
    let Some(d) = model.displays.get(display) else {
        return item.show.dwell;
    };
    let profile = model.profile_of(d);
    let canvas = Canvas::of(profile);
    let content = Content::of(item);
    let mut cells = Cells {
        em: em(&profile.font),
    };
    match layout(&content, &canvas, &mut cells) {
        Ok(laid_out) => laid_out.duration(&item.show),
        // Markup the validator let through but layout refuses: one page is a fair guess.
        Err(_) => item.show.dwell,
    }
}
