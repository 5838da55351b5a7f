//! Layout: how an item's text falls onto a display — zones, lines, pages, scroll strips.
//!
//! Layout measures; it never draws (that is `raster`'s job) and does no I/O. The schedule uses
//! [`Layout::duration`] to know how long an item plays, so layout must stay cheap: it asks a
//! [`Measure`] for advances and never touches pixels.
//!
//! The rules, for a board of `height` pixels and a font of line pitch `p` (line height plus
//! the profile's line spacing):
//! - **Zones.** A clock zone (`layout.clock: top | bottom`) takes one line. A title bar
//!   (`layout.title: auto`) takes the first remaining line when at least three lines fit, so a
//!   192×64 board with a 16 px font shows the title above three body lines while a 128×16
//!   window strip runs title and body together. The body is the rest, less the side margins.
//! - **Title.** In the title bar, centred. A title wider than the bar gives the bar to the
//!   category (【政府采购】) and moves the title to the top of the body.
//! - **Page mode.** The body text (title first when it is not in the bar) is wrapped by the
//!   Chinese line-breaking rules of [`linebreak`] and cut into pages of as many lines as fit;
//!   lines are left-aligned, and a text of one line is centred. Each page is held for the
//!   item's dwell.
//! - **Scroll mode.** The text becomes one line (newlines become spaces), vertically centred
//!   in the body; it enters at the right edge and leaves at the left, so one pass travels the
//!   text's width plus the body's width.
//! - **Roll mode.** The wrapped lines move up through the body; one pass travels all lines plus
//!   the body's height.

pub mod linebreak;
pub mod markup;

use std::ops::Range;
use std::time::Duration;

use crate::config::model::{ClockZone, Item, Profile, Show, ShowMode, TitleBar, Zones};
use markup::Styled;

/// What layout needs to know about a font.
pub trait Measure {
    /// Pen advance of `c` in pixels.
    fn advance(&mut self, c: char) -> u32;
    /// The box of one text line.
    fn line_box(&self) -> LineBox;
}

/// Vertical metrics of a text line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineBox {
    /// Pixels from the top of one line to the top of the next, before the profile's spacing.
    pub height: u32,
    /// Pixels from the top of the line to the baseline.
    pub baseline: u32,
}

/// An axis-aligned rectangle of the board.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Zone {
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
}

/// A board's drawing area, from its profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Canvas {
    pub width: u32,
    pub height: u32,
    pub zones: Zones,
}

impl Canvas {
    /// The drawing area of a board of this profile.
    pub fn of(profile: &Profile) -> Canvas {
        Canvas {
            width: profile.width,
            height: profile.height,
            zones: profile.zones,
        }
    }
}

impl<'a> Content<'a> {
    /// An item as its playlist shows it.
    pub fn of(item: &'a Item) -> Content<'a> {
        Content {
            title: &item.title,
            body: &item.body,
            category: item.category.name(),
            show: item.show,
        }
    }
}

/// What to lay out: an item's text as the operator wrote it (markup allowed).
#[derive(Debug, Clone, Copy)]
pub struct Content<'a> {
    pub title: &'a str,
    pub body: &'a str,
    /// Shown in the title bar when the title does not fit it, e.g. 政府采购.
    pub category: &'a str,
    pub show: Show,
}

/// One placed line of text: a byte range of its text, where its pen starts, and its width.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub range: Range<usize>,
    pub x: i32,
    /// Baseline, in board pixels from the top of the board.
    pub baseline: i32,
    pub width: u32,
}

/// A page of body lines.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Page {
    pub lines: Vec<Line>,
}

/// The laid-out item.
#[derive(Debug, Clone, PartialEq)]
pub struct Layout {
    pub mode: ShowMode,
    /// The title bar's text and its line, when the board has one.
    pub title_bar: Option<(Styled, Line, Zone)>,
    pub clock: Option<Zone>,
    pub body: Zone,
    /// The body's text, markup removed; lines and the strip index into it.
    pub text: Styled,
    /// Page mode: the pages. Roll mode: one page holding every line, baselines as if the
    /// body were tall enough. Scroll mode: one page with the single strip line.
    pub pages: Vec<Page>,
    /// Scroll mode: width of the text in pixels (the strip to render).
    pub strip_width: u32,
    /// Line pitch in pixels (line height + spacing).
    pub pitch: u32,
}

/// A markup mistake, in the title or the body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LayoutError {
    #[error("title: {0}")]
    Title(markup::MarkupError),
    #[error("body: {0}")]
    Body(markup::MarkupError),
}

/// Lays `content` out on `canvas` with the font `measure`.
pub fn layout(
    content: &Content<'_>,
    canvas: &Canvas,
    measure: &mut impl Measure,
) -> Result<Layout, LayoutError> {
    // Controls and bidi overrides go before the markup is read (see `markup::inert`).
    let title = markup::parse(markup::inert(content.title).trim()).map_err(LayoutError::Title)?;
    let body = markup::parse(markup::inert(content.body).trim()).map_err(LayoutError::Body)?;
    let line_box = measure.line_box();
    let pitch = (line_box.height + canvas.zones.line_spacing).max(1);
    let margin = canvas.zones.margin.min(canvas.width.saturating_sub(1) / 2);
    let inner_width = canvas.width - 2 * margin;

    // Zones, top to bottom.
    let mut top = 0;
    let mut bottom = canvas.height;
    let clock = match canvas.zones.clock {
        ClockZone::None => None,
        ClockZone::Top => {
            top += pitch.min(bottom);
            Some(Zone {
                x: margin,
                y: 0,
                width: inner_width,
                height: pitch.min(canvas.height),
            })
        }
        ClockZone::Bottom => {
            bottom = bottom.saturating_sub(pitch);
            Some(Zone {
                x: margin,
                y: bottom,
                width: inner_width,
                height: canvas.height - bottom,
            })
        }
    };
    let lines_left = (bottom.saturating_sub(top)) / pitch;
    let wants_bar = match canvas.zones.title {
        TitleBar::Always => lines_left >= 2,
        TitleBar::Auto => lines_left >= 3,
        TitleBar::Never => false,
    };
    let mut title_bar = None;
    let mut title_in_body = !title.text.is_empty();
    if wants_bar {
        let zone = Zone {
            x: margin,
            y: top,
            width: inner_width,
            height: pitch,
        };
        let title_width = text_width(&title.text, measure);
        let bar_text = if title_width <= inner_width && !title.text.is_empty() {
            title_in_body = false;
            title.clone()
        } else {
            Styled::plain(&format!("【{}】", content.category))
        };
        let width = text_width(&bar_text.text, measure);
        let line = Line {
            range: 0..bar_text.text.len(),
            x: (zone.x + inner_width.saturating_sub(width) / 2) as i32,
            baseline: (top + line_box.baseline) as i32,
            width,
        };
        title_bar = Some((bar_text, line, zone));
        top += pitch;
    }
    let body_zone = Zone {
        x: margin,
        y: top,
        width: inner_width,
        height: bottom.saturating_sub(top),
    };

    let mode = content.show.mode;
    let text = compose(&title, &body, title_in_body, mode == ShowMode::Scroll);
    let mut layout = Layout {
        mode,
        title_bar,
        clock,
        body: body_zone,
        text,
        pages: Vec::new(),
        strip_width: 0,
        pitch,
    };
    match mode {
        ShowMode::Scroll => {
            let width = text_width(&layout.text.text, measure);
            let free = body_zone.height.saturating_sub(line_box.height) / 2;
            layout.strip_width = width;
            layout.pages = vec![Page {
                lines: vec![Line {
                    range: 0..layout.text.text.len(),
                    x: body_zone.x as i32,
                    baseline: (body_zone.y + free + line_box.baseline) as i32,
                    width,
                }],
            }];
        }
        ShowMode::Page | ShowMode::Roll => {
            let ranges = linebreak::wrap(&layout.text.text, inner_width, |c| measure.advance(c));
            let per_page = if mode == ShowMode::Roll {
                usize::MAX
            } else {
                ((body_zone.height / pitch).max(1)) as usize
            };
            let single = ranges.len() == 1;
            let mut pages = Vec::new();
            for chunk in ranges.chunks(per_page.min(ranges.len().max(1))) {
                let mut lines = Vec::with_capacity(chunk.len());
                for (row, range) in chunk.iter().enumerate() {
                    let width = text_width(&layout.text.text[range.clone()], measure);
                    // A text of one line is centred; longer texts read from the left edge.
                    let x = if single {
                        body_zone.x + inner_width.saturating_sub(width) / 2
                    } else {
                        body_zone.x
                    };
                    lines.push(Line {
                        range: range.clone(),
                        x: x as i32,
                        baseline: (body_zone.y + row as u32 * pitch + line_box.baseline) as i32,
                        width,
                    });
                }
                pages.push(Page { lines });
            }
            if pages.is_empty() {
                pages.push(Page::default());
            }
            layout.pages = pages;
        }
    }
    Ok(layout)
}

/// The body's text: the title on its own line first when it is not in the title bar; for
/// scrolling, one line with the title set off by a full-width colon.
fn compose(title: &Styled, body: &Styled, title_in_body: bool, one_line: bool) -> Styled {
    let separator = if one_line { "：" } else { "\n" };
    let (mut text, mut runs) = if title_in_body && !title.text.is_empty() {
        let mut text = title.text.clone();
        let runs = title.runs.clone();
        if !body.text.is_empty() {
            text.push_str(separator);
        }
        (text, runs)
    } else {
        (String::new(), Vec::new())
    };
    let offset = text.len();
    text.push_str(&body.text);
    runs.extend(
        body.runs
            .iter()
            .map(|(r, rgb)| (r.start + offset..r.end + offset, *rgb)),
    );
    if one_line {
        // Same byte length, so the runs stay valid.
        text = text.replace(['\n', '\r', '\t'], " ");
    }
    Styled { text, runs }
}

fn text_width(text: &str, measure: &mut impl Measure) -> u32 {
    text.chars()
        .filter(|c| !c.is_control())
        .map(|c| measure.advance(c))
        .sum()
}

impl Layout {
    /// Number of body lines (all pages).
    pub fn line_count(&self) -> usize {
        self.pages.iter().map(|p| p.lines.len()).sum()
    }

    /// How long the item plays with `show`: pages × dwell, or passes × travel ÷ speed.
    pub fn duration(&self, show: &Show) -> Duration {
        let speed = f64::from(show.speed.max(0.001));
        match self.mode {
            ShowMode::Page => show.dwell * self.pages.len() as u32,
            ShowMode::Scroll => {
                let travel = f64::from(self.strip_width + self.body.width);
                Duration::from_secs_f64(travel / speed * f64::from(show.passes))
            }
            ShowMode::Roll => {
                let travel = f64::from(self.line_count() as u32 * self.pitch + self.body.height);
                Duration::from_secs_f64(travel / speed * f64::from(show.passes))
            }
        }
    }

    /// The text of every body line, pages separated by an empty entry: what `preview --lines`
    /// prints.
    pub fn line_texts(&self) -> Vec<Vec<&str>> {
        self.pages
            .iter()
            .map(|page| {
                page.lines
                    .iter()
                    .map(|line| &self.text.text[line.range.clone()])
                    .collect()
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A monospaced stand-in for a 16 px CJK font: hanzi 16 px, ASCII 8 px.
    struct Mono16;
    impl Measure for Mono16 {
        fn advance(&mut self, c: char) -> u32 {
            if c.is_ascii() { 8 } else { 16 }
        }
        fn line_box(&self) -> LineBox {
            LineBox {
                height: 16,
                baseline: 14,
            }
        }
    }

    fn canvas(width: u32, height: u32) -> Canvas {
        Canvas {
            width,
            height,
            zones: Zones::default(),
        }
    }

    fn content<'a>(title: &'a str, body: &'a str, mode: ShowMode) -> Content<'a> {
        Content {
            title,
            body,
            category: "政府采购",
            show: Show {
                mode,
                ..Show::default()
            },
        }
    }

    #[test]
    fn controls_and_bidi_overrides_are_laid_out_as_if_absent_and_escaped_markup_is_text() {
        for mode in [ShowMode::Page, ShowMode::Scroll, ShowMode::Roll] {
            let hostile = layout(
                &content(
                    "城区\u{202E}道路\u{7}照明",
                    "{{red}正文\u{2066}隔离\u{85}{{/}\u{200F}完",
                    mode,
                ),
                &canvas(192, 64),
                &mut Mono16,
            )
            .unwrap();
            let plain = layout(
                &content("城区道路照明", "{{red}正文隔离{{/}完", mode),
                &canvas(192, 64),
                &mut Mono16,
            )
            .unwrap();
            assert_eq!(hostile, plain, "{mode:?}");
            // The escaped tag is drawn as the text it is, in the item's own colour.
            assert!(hostile.text.text.contains("{red}正文隔离{/}完"), "{mode:?}");
            assert!(hostile.text.runs.is_empty());
        }
    }

    #[test]
    fn square_board_has_a_title_bar_and_three_body_lines() {
        let body = "中标单位为赣州明辉照明工程有限公司，中标金额人民币1,234,567.89元。公示期自2026年12月1日至12月7日。";
        let layout = layout(
            &content("城区道路照明改造中标公示", body, ShowMode::Page),
            &canvas(192, 64),
            &mut Mono16,
        )
        .unwrap();
        let (bar, line, zone) = layout.title_bar.as_ref().expect("title bar");
        assert_eq!(bar.text, "城区道路照明改造中标公示");
        assert_eq!((line.x, line.baseline, line.width), (0, 14, 192));
        assert_eq!(zone.height, 16);
        assert_eq!(
            layout.body,
            Zone {
                x: 0,
                y: 16,
                width: 192,
                height: 48
            }
        );
        for page in &layout.pages {
            assert!(page.lines.len() <= 3);
            for (row, line) in page.lines.iter().enumerate() {
                assert_eq!(line.baseline, 16 + row as i32 * 16 + 14);
                assert!(line.width <= 192);
            }
        }
        let lines: Vec<&str> = layout.line_texts().concat();
        assert!(
            lines.iter().all(|l| !l.starts_with(['，', '。'])),
            "{lines:?}"
        );
        assert_eq!(lines.concat(), body);
        assert_eq!(
            layout.duration(&Show::default()),
            Duration::from_secs(8) * layout.pages.len() as u32
        );
    }

    #[test]
    fn long_title_gives_the_bar_to_the_category() {
        let title = "大余县城区道路照明节能改造项目采购结果公示";
        let layout = layout(
            &content(title, "正文", ShowMode::Page),
            &canvas(192, 64),
            &mut Mono16,
        )
        .unwrap();
        assert_eq!(
            layout.title_bar.as_ref().map(|(s, _, _)| s.text.as_str()),
            Some("【政府采购】")
        );
        assert!(layout.text.text.starts_with(title));
        assert!(layout.text.text.ends_with("\n正文"));
    }

    #[test]
    fn window_strip_runs_title_and_body_together() {
        let layout = layout(
            &content("不动产登记", "周一至周五 9:00-12:00", ShowMode::Page),
            &canvas(128, 16),
            &mut Mono16,
        )
        .unwrap();
        assert!(layout.title_bar.is_none());
        assert_eq!(
            layout.body,
            Zone {
                x: 0,
                y: 0,
                width: 128,
                height: 16
            }
        );
        assert!(layout.pages.iter().all(|p| p.lines.len() == 1));
        assert_eq!(layout.line_texts()[0], vec!["不动产登记"]);
    }

    #[test]
    fn one_line_is_centred() {
        let layout = layout(
            &content("", "办事指南", ShowMode::Page),
            &canvas(128, 16),
            &mut Mono16,
        )
        .unwrap();
        let line = &layout.pages[0].lines[0];
        assert_eq!((line.x, line.width), (32, 64));
    }

    #[test]
    fn scroll_strip_and_its_duration() {
        let mut show = Show {
            mode: ShowMode::Scroll,
            speed: 32.0,
            passes: 2,
            ..Show::default()
        };
        let mut item = content("公示", "第一行\n第二行", ShowMode::Scroll);
        item.show = show;
        let layout = layout(&item, &canvas(128, 16), &mut Mono16).unwrap();
        assert_eq!(layout.text.text, "公示：第一行 第二行");
        assert_eq!(layout.strip_width, 10 * 16 - 16 + 8);
        // Two passes of (strip + board width) at 32 px/s.
        let expected = f64::from(2 * (layout.strip_width + 128)) / 32.0;
        assert_eq!(layout.duration(&show), Duration::from_secs_f64(expected));
        show.passes = 1;
        assert_eq!(
            layout.duration(&show),
            Duration::from_secs_f64(expected / 2.0)
        );
    }

    #[test]
    fn clock_zone_and_margins() {
        let zones = Zones {
            clock: ClockZone::Bottom,
            margin: 4,
            ..Zones::default()
        };
        let layout = layout(
            &content("标题", "正文", ShowMode::Page),
            &Canvas {
                width: 192,
                height: 64,
                zones,
            },
            &mut Mono16,
        )
        .unwrap();
        assert_eq!(
            layout.clock,
            Some(Zone {
                x: 4,
                y: 48,
                width: 184,
                height: 16
            })
        );
        // 3 lines above the clock: title bar + 2 body lines.
        assert!(layout.title_bar.is_some());
        assert_eq!(
            layout.body,
            Zone {
                x: 4,
                y: 16,
                width: 184,
                height: 32
            }
        );
    }

    #[test]
    fn roll_keeps_every_line_on_one_page() {
        let body =
            "一二三四五六七八九十一二三四五六七八九十一二三四五六七八九十一二三四五六七八九十";
        let layout = layout(
            &content("", body, ShowMode::Roll),
            &canvas(128, 16),
            &mut Mono16,
        )
        .unwrap();
        assert_eq!(layout.pages.len(), 1);
        assert_eq!(layout.line_count(), 5);
        let show = Show {
            mode: ShowMode::Roll,
            speed: 16.0,
            passes: 1,
            ..Show::default()
        };
        assert_eq!(
            layout.duration(&show),
            Duration::from_secs_f64(f64::from(5 * 16 + 16) / 16.0)
        );
    }

    #[test]
    fn markup_colours_survive_composition() {
        let layout = layout(
            &content(
                "标题很长很长很长很长很长很长",
                "金额{red}100元{/}整",
                ShowMode::Page,
            ),
            &canvas(128, 64),
            &mut Mono16,
        )
        .unwrap();
        let (range, rgb) = &layout.text.runs[0];
        assert_eq!(&layout.text.text[range.clone()], "100元");
        assert_eq!(*rgb, crate::config::model::Rgb(255, 0, 0));
    }

    #[test]
    fn markup_mistakes_are_errors() {
        let err = layout(
            &content("标题", "金额{rde}100元", ShowMode::Page),
            &canvas(128, 64),
            &mut Mono16,
        );
        assert!(matches!(err, Err(LayoutError::Body(_))));
    }
}
