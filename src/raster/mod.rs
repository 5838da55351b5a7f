//! Raster: laid-out text → pixels in the board's format.
//!
//! Pure: no I/O, no clock (the clock zone's text is an argument). Raster runs only for what is
//! shown; the schedule never needs it.
//!
//! Text is drawn into 1-bit masks with the glyph cache ([`mono`]), one mask per colour on the
//! page, and the masks are then composed into the board's format ([`frame`]). A mono page, the
//! common case, is drawn straight into the frame.
//!
//! Colours: an item's `color` (or `{colour}` markup) wins; otherwise body text is red on
//! red/green boards and white on full-colour boards, and the title bar is yellow. Mono boards
//! light every drawn pixel in their LED colour.

pub mod frame;
pub mod mono;

use crate::config::model::{PixelFormat, Rgb, ShowMode};
use crate::font::FontChain;
use crate::layout::markup::Styled;
use crate::layout::{Layout, Line, Zone};
use frame::Frame;
use mono::MonoFrame;

/// Title bar colour on colour boards.
pub const TITLE_COLOR: Rgb = Rgb(255, 255, 0);

/// The body colour of a board format when the item names none.
pub fn default_body_color(format: PixelFormat) -> Rgb {
    match format {
        PixelFormat::Mono | PixelFormat::Rgb565 | PixelFormat::Rgb888 => Rgb(255, 255, 255),
        PixelFormat::Bicolor => Rgb(255, 0, 0),
    }
}

/// What to draw besides the laid-out text.
#[derive(Debug, Clone, Copy)]
pub struct Paint<'a> {
    pub format: PixelFormat,
    pub width: u32,
    pub height: u32,
    /// The item's colour, if it has one.
    pub color: Option<Rgb>,
    /// Text for the clock zone (e.g. `12月01日 19:30`), when the layout has one.
    pub clock: Option<&'a str>,
}

/// Masks per colour, drawn into and then composed.
struct Ink {
    width: u32,
    height: u32,
    masks: Vec<(Rgb, MonoFrame)>,
}

impl Ink {
    fn new(width: u32, height: u32) -> Ink {
        Ink {
            width,
            height,
            masks: Vec::new(),
        }
    }

    fn mask(&mut self, color: Rgb) -> &mut MonoFrame {
        let index = match self.masks.iter().position(|(c, _)| *c == color) {
            Some(index) => index,
            None => {
                self.masks
                    .push((color, MonoFrame::new(self.width, self.height)));
                self.masks.len() - 1
            }
        };
        &mut self.masks[index].1
    }

    /// Draws a line of `styled` text; runs without a colour use `base`.
    fn line(
        &mut self,
        fonts: &mut FontChain,
        styled: &Styled,
        line: &Line,
        x_shift: i32,
        base: Rgb,
    ) {
        let mut pen = line.x + x_shift;
        let text = &styled.text[line.range.clone()];
        if styled.runs.is_empty() {
            self.mask(base).draw_text(fonts, pen, line.baseline, text);
            return;
        }
        for (offset, c) in text.char_indices() {
            let color = styled.color_at(line.range.start + offset).unwrap_or(base);
            let glyph = fonts.glyph(c);
            self.mask(color).draw_glyph(pen, line.baseline, glyph);
            pen = pen.saturating_add(glyph.advance as i32);
        }
    }

    /// Composes the masks into a frame of `format`.
    fn compose(self, format: PixelFormat) -> Frame {
        let mut frame = Frame::new(self.width, self.height, format);
        compose_into(&mut frame, &self.masks, (0, 0));
        frame
    }
}

/// ORs colour masks into `frame` with their top-left corner at `at`.
fn compose_into(frame: &mut Frame, masks: &[(Rgb, MonoFrame)], at: (u32, u32)) {
    let plane_len = frame.plane_len();
    for (color, mask) in masks {
        let whole_frame = at == (0, 0) && mask.width == frame.width && mask.height == frame.height;
        match frame.format {
            PixelFormat::Mono | PixelFormat::Bicolor if whole_frame => {
                // Same packing: OR the bytes.
                let planes: &[usize] = match (frame.format, color.0 >= 128, color.1 >= 128) {
                    (PixelFormat::Mono, ..) => &[0],
                    (_, true, true) => &[0, 1],
                    (_, true, false) => &[0],
                    (_, false, true) => &[1],
                    (_, false, false) => &[],
                };
                for &plane in planes {
                    let dst = &mut frame.data[plane * plane_len..(plane + 1) * plane_len];
                    for (d, s) in dst.iter_mut().zip(&mask.data) {
                        *d |= *s;
                    }
                }
            }
            _ => {
                for y in 0..mask.height {
                    let row = &mask.data[y as usize * mask.stride..(y as usize + 1) * mask.stride];
                    for (byte_index, byte) in row.iter().enumerate().filter(|(_, b)| **b != 0) {
                        for bit in 0..8 {
                            if byte & (0x80 >> bit) != 0 {
                                let x = byte_index as u32 * 8 + bit;
                                if x < mask.width {
                                    frame.set_pixel(at.0 + x, at.1 + y, *color);
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Renders page `page` of `layout` (title bar, body lines, clock).
pub fn render_page(
    layout: &Layout,
    page: usize,
    fonts: &mut FontChain,
    paint: &Paint<'_>,
) -> Frame {
    let body_color = paint
        .color
        .unwrap_or_else(|| default_body_color(paint.format));
    if paint.format == PixelFormat::Mono
        && layout.title_bar.is_none()
        && layout.clock.is_none()
        && layout.text.runs.is_empty()
    {
        // The common window-strip case: straight into the frame's only plane.
        let mut mask = MonoFrame::new(paint.width, paint.height);
        if let Some(page) = layout.pages.get(page) {
            for line in &page.lines {
                mask.draw_text(
                    fonts,
                    line.x,
                    line.baseline,
                    &layout.text.text[line.range.clone()],
                );
            }
        }
        return Frame {
            width: paint.width,
            height: paint.height,
            format: PixelFormat::Mono,
            data: mask.data,
        };
    }
    let mut ink = Ink::new(paint.width, paint.height);
    draw_fixed_zones(&mut ink, layout, fonts, paint);
    if let Some(page) = layout.pages.get(page) {
        for line in &page.lines {
            ink.line(fonts, &layout.text, line, 0, body_color);
        }
    }
    ink.compose(paint.format)
}

/// The title bar and the clock: what stays put while the body pages, scrolls or rolls.
fn draw_fixed_zones(ink: &mut Ink, layout: &Layout, fonts: &mut FontChain, paint: &Paint<'_>) {
    if let Some((styled, line, _)) = &layout.title_bar {
        ink.line(fonts, styled, line, 0, TITLE_COLOR);
    }
    if let (Some(zone), Some(text)) = (layout.clock, paint.clock) {
        let width: u32 = text.chars().map(|c| fonts.glyph(c).advance).sum();
        let x = zone.x + zone.width.saturating_sub(width) / 2;
        let baseline = zone.y + fonts.metrics().baseline;
        let color = default_body_color(paint.format);
        ink.mask(color)
            .draw_text(fonts, x as i32, baseline as i32, text);
    }
}

/// Which way a moving body travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Axis {
    /// Scroll: right to left.
    Horizontal,
    /// Roll: bottom to top.
    Vertical,
}

/// A scroll or roll item rendered once: its text on a strip with a body's width (or height) of
/// blank on each side, so position `o` shows the text entering from the right (or bottom) and
/// the last position shows it gone. Frames are cut from it, never re-rendered.
pub struct Strip {
    pub axis: Axis,
    pub body: Zone,
    /// Per colour, the strip's mask.
    masks: Vec<(Rgb, MonoFrame)>,
    /// Number of positions: one pass is positions − 1 pixels of travel.
    pub positions: u32,
    /// Title bar and clock, composed once.
    background: Frame,
}

/// Renders the moving body and the fixed zones of a scroll-mode (horizontal) or roll-mode
/// (vertical) layout.
pub fn render_strip(layout: &Layout, fonts: &mut FontChain, paint: &Paint<'_>) -> Strip {
    let body = layout.body;
    let body_color = paint
        .color
        .unwrap_or_else(|| default_body_color(paint.format));
    let lines: Vec<&Line> = layout.pages.iter().flat_map(|p| &p.lines).collect();
    let (axis, mut ink, travel) = if layout.mode == ShowMode::Roll {
        let text_height = lines.len() as u32 * layout.pitch;
        (
            Axis::Vertical,
            Ink::new(body.width, text_height + 2 * body.height),
            text_height + body.height,
        )
    } else {
        (
            Axis::Horizontal,
            Ink::new(layout.strip_width + 2 * body.width, body.height),
            layout.strip_width + body.width,
        )
    };
    for line in lines {
        // In strip coordinates: one body width (or height) of blank comes first.
        let placed = match axis {
            Axis::Horizontal => Line {
                x: body.width as i32,
                baseline: line.baseline - body.y as i32,
                ..line.clone()
            },
            Axis::Vertical => Line {
                x: line.x - body.x as i32,
                baseline: line.baseline - body.y as i32 + body.height as i32,
                ..line.clone()
            },
        };
        ink.line(fonts, &layout.text, &placed, 0, body_color);
    }
    let mut fixed = Ink::new(paint.width, paint.height);
    draw_fixed_zones(&mut fixed, layout, fonts, paint);
    Strip {
        axis,
        body,
        masks: ink.masks,
        positions: travel + 1,
        background: fixed.compose(paint.format),
    }
}

impl Strip {
    /// The frame at position `offset` (clamped to the last position).
    pub fn frame(&self, offset: u32) -> Frame {
        let offset = offset.min(self.positions.saturating_sub(1));
        let mut frame = self.background.clone();
        let masks: Vec<(Rgb, MonoFrame)> = self
            .masks
            .iter()
            .map(|(color, strip)| {
                let mut window = MonoFrame::new(self.body.width, self.body.height);
                match self.axis {
                    Axis::Horizontal => mono::cut_window(strip, offset, &mut window),
                    Axis::Vertical => {
                        // Whole rows: a vertical window is a slice of the strip's bytes.
                        let start = (offset as usize * strip.stride).min(strip.data.len());
                        let end = (start + window.data.len()).min(strip.data.len());
                        window.data[..end - start].copy_from_slice(&strip.data[start..end]);
                    }
                }
                (*color, window)
            })
            .collect();
        compose_into(&mut frame, &masks, (self.body.x, self.body.y));
        frame
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::model::{BuiltinFont, Show, ShowMode, Zones};
    use crate::layout::{Canvas, Content, layout};

    fn lit(frame: &Frame) -> usize {
        (0..frame.height)
            .flat_map(|y| (0..frame.width).map(move |x| (x, y)))
            .filter(|(x, y)| frame.pixel(*x, *y) != Rgb(0, 0, 0))
            .count()
    }

    #[test]
    fn mono_page_draws_text_and_nothing_outside_the_lines() {
        let mut fonts = FontChain::builtin(BuiltinFont::Wqy16);
        let canvas = Canvas {
            width: 128,
            height: 16,
            zones: Zones::default(),
        };
        let content = Content {
            title: "",
            body: "不动产登记",
            category: "其他",
            show: Show::default(),
        };
        let laid = layout(&content, &canvas, &mut fonts).unwrap();
        let paint = Paint {
            format: PixelFormat::Mono,
            width: 128,
            height: 16,
            color: None,
            clock: None,
        };
        let frame = render_page(&laid, 0, &mut fonts, &paint);
        assert_eq!(frame.data.len(), 16 * 16);
        assert!(lit(&frame) > 100, "hanzi are drawn");
        let line = &laid.pages[0].lines[0];
        for y in 0..16 {
            for x in (0..line.x as u32).chain(line.x as u32 + line.width..128) {
                assert_eq!(
                    frame.pixel(x, y),
                    Rgb(0, 0, 0),
                    "{x},{y} outside the centred line"
                );
            }
        }
    }

    #[test]
    fn colours_go_to_the_right_planes() {
        let mut fonts = FontChain::builtin(BuiltinFont::Wqy16);
        let canvas = Canvas {
            width: 192,
            height: 64,
            zones: Zones::default(),
        };
        let content = Content {
            title: "公示",
            body: "金额{green}100元{/}整",
            category: "其他",
            show: Show::default(),
        };
        let laid = layout(&content, &canvas, &mut fonts).unwrap();
        let paint = Paint {
            format: PixelFormat::Bicolor,
            width: 192,
            height: 64,
            color: None,
            clock: None,
        };
        let frame = render_page(&laid, 0, &mut fonts, &paint);
        let colours: std::collections::BTreeSet<(u8, u8, u8)> = (0..64)
            .flat_map(|y| (0..192).map(move |x| (x, y)))
            .map(|(x, y)| frame.pixel(x, y))
            .map(|Rgb(r, g, b)| (r, g, b))
            .collect();
        // Yellow title, red body, green amount.
        assert!(
            colours.contains(&(255, 255, 0))
                && colours.contains(&(255, 0, 0))
                && colours.contains(&(0, 255, 0)),
            "{colours:?}"
        );
    }

    #[test]
    fn scroll_frames_are_cut_from_one_strip() {
        let mut fonts = FontChain::builtin(BuiltinFont::Wqy16);
        let canvas = Canvas {
            width: 128,
            height: 16,
            zones: Zones::default(),
        };
        let show = Show {
            mode: ShowMode::Scroll,
            ..Show::default()
        };
        let content = Content {
            title: "",
            body: "周一至周五上午九时至十二时",
            category: "其他",
            show,
        };
        let laid = layout(&content, &canvas, &mut fonts).unwrap();
        for format in [PixelFormat::Mono, PixelFormat::Rgb888] {
            let paint = Paint {
                format,
                width: 128,
                height: 16,
                color: None,
                clock: None,
            };
            let strip = render_strip(&laid, &mut fonts, &paint);
            assert_eq!(strip.positions, laid.strip_width + 128 + 1);
            // Before the text enters and after it has left, the board is dark.
            assert_eq!(lit(&strip.frame(0)), 0);
            assert_eq!(lit(&strip.frame(strip.positions - 1)), 0);
            // When the text fills the board, the frame equals a page rendered at that offset.
            let offset = 128 + 16;
            let frame = strip.frame(offset);
            let mut reference = Frame::new(128, 16, format);
            let mut mask = MonoFrame::new(128, 16);
            let line = &laid.pages[0].lines[0];
            mask.draw_text(&mut fonts, -16, line.baseline, &laid.text.text);
            compose_into(
                &mut reference,
                &[(default_body_color(format), mask)],
                (0, 0),
            );
            assert_eq!(frame, reference, "{format:?}");
        }
    }

    #[test]
    fn roll_frames_move_up_one_row_per_position() {
        let mut fonts = FontChain::builtin(BuiltinFont::Wqy16);
        let canvas = Canvas {
            width: 64,
            height: 32,
            zones: Zones {
                title: crate::config::model::TitleBar::Never,
                ..Zones::default()
            },
        };
        let show = Show {
            mode: ShowMode::Roll,
            ..Show::default()
        };
        let content = Content {
            title: "",
            body: "一二三四五六七八九十",
            category: "其他",
            show,
        };
        let laid = layout(&content, &canvas, &mut fonts).unwrap();
        let paint = Paint {
            format: PixelFormat::Mono,
            width: 64,
            height: 32,
            color: None,
            clock: None,
        };
        let strip = render_strip(&laid, &mut fonts, &paint);
        assert_eq!(strip.axis, Axis::Vertical);
        assert_eq!(strip.positions, 3 * laid.pitch + 32 + 1);
        assert_eq!(lit(&strip.frame(0)), 0);
        assert_eq!(lit(&strip.frame(strip.positions - 1)), 0);
        // Position p+1 is position p moved up by one row.
        let (a, b) = (strip.frame(40), strip.frame(41));
        for y in 0..31 {
            for x in 0..64 {
                assert_eq!(a.pixel(x, y + 1), b.pixel(x, y), "{x},{y}");
            }
        }
    }
}
