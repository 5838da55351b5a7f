//! One item as the full-screen pages of a touchscreen: a pure function of the item, the screen's
//! size, the text size and the current time, drawn anti-aliased with a scalable font.
//!
//! # The page
//!
//! From the top: a band with 政务公开; the item's category as a coloured tag; the title (large,
//! wrapped); the department and the dates it is valid (with the days left when it has an end);
//! a rule; the body, wrapped by the same Chinese line-breaking rules as LED boards
//! (`layout::linebreak`), each paragraph indented by two ideographic spaces; and at the bottom
//! 第 i/n 页. The head (band to rule) is repeated on every page, so a passer-by who sees page
//! 2 still knows what it is about. Dark text on a light page: kiosks stand in lit halls.
//!
//! Colour markup in the title or body is removed (its colours were chosen for a black LED
//! board and would vanish on a light page); the item's own `color` is ignored for the same
//! reason. All sizes follow the body size (the profile's `font_size`); the margins follow the
//! screen's width.
//!
//! This module owns the kiosk page's look and its pixels. It does no I/O and reads no clock:
//! the caller passes the time, and the glyph cache is the only state.

use chrono::{DateTime, Datelike, Duration, Timelike};
use chrono_tz::Tz;

use crate::config::model::{Category, Item, PixelFormat, Rgb, Validity};
use crate::font::scalable::CoverageCache;
use crate::layout::{linebreak, markup};
use crate::raster::frame::Frame;

/// Text sizes and margins of a kiosk page, in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sizes {
    pub body: u32,
    pub title: u32,
    /// Department, dates, the band's text and the category tag.
    pub meta: u32,
    /// Page numbers.
    pub footer: u32,
    /// Left and right (and top of the head) margin.
    pub margin: u32,
}

impl Sizes {
    /// Sizes for a screen `width` pixels wide with body text of `body` pixels (the profile's
    /// `font_size`); without one, a size that sets about 24 hanzi to a line.
    pub fn new(width: u32, body: Option<u32>) -> Sizes {
        let body = body.unwrap_or(width / 27).clamp(8, 400);
        Sizes {
            body,
            title: body * 3 / 2,
            meta: (body * 4 / 5).max(8),
            footer: (body * 4 / 5).max(8),
            margin: (width / 18).max(4),
        }
    }
}

const PAGE: Rgb = Rgb(250, 248, 242);
const INK: Rgb = Rgb(28, 28, 28);
const META: Rgb = Rgb(84, 84, 84);
const BAND: Rgb = Rgb(163, 22, 33);
const WHITE: Rgb = Rgb(255, 255, 255);
const RULE: Rgb = Rgb(214, 208, 196);
const FOOTER: Rgb = Rgb(110, 110, 110);

/// The tag colour of each category: distinct hues, all dark enough for white text.
fn tag_color(category: Category) -> Rgb {
    match category {
        Category::Licensing => Rgb(0, 94, 160),
        Category::Procurement => Rgb(0, 120, 86),
        Category::Tendering => Rgb(186, 88, 0),
        Category::LandTransfer => Rgb(122, 78, 34),
        Category::SpecialFunds => Rgb(140, 32, 116),
        Category::PropertyRights => Rgb(0, 112, 132),
        Category::Hiring => Rgb(176, 38, 38),
        Category::Planning => Rgb(72, 96, 24),
        Category::Meeting | Category::Policy | Category::Other => Rgb(84, 88, 100),
    }
}

/// The text of an item as the kiosk shows it: markup removed.
/// The text without colour markup and without invisible controls (an interrupt's text comes
/// from the control API, and the browser page would apply a bidi override).
fn plain(text: &str) -> String {
    let text = markup::inert(text);
    match markup::parse(&text) {
        Ok(styled) => styled.text,
        // A validated model has well-formed markup; anything else is shown as written.
        Err(_) => text.into_owned(),
    }
}

/// `2026年12月15日`, with the time when it is not midnight.
fn date_text(t: &DateTime<Tz>) -> String {
    let day = format!("{}年{}月{}日", t.year(), t.month(), t.day());
    if t.hour() == 0 && t.minute() == 0 {
        day
    } else {
        format!("{day} {:02}:{:02}", t.hour(), t.minute())
    }
}

/// The line of dates: when the item is valid, and how many days are left.
pub fn dates_text(valid: &Validity, now: &DateTime<Tz>) -> String {
    // A bare date as `until` is stored as the next midnight (the end of that day): show the
    // day itself, as the operator wrote it.
    let until_shown = valid.until.map(|u| {
        if u.hour() == 0 && u.minute() == 0 {
            date_text(&(u - Duration::days(1)))
        } else {
            date_text(&u)
        }
    });
    let span = match (&valid.from, &until_shown) {
        (Some(from), Some(until)) => format!("有效期：{} 至 {}", date_text(from), until),
        (Some(from), None) => format!("有效期：{} 起长期有效", date_text(from)),
        (None, Some(until)) => format!("有效期：至 {until}"),
        (None, None) => "长期有效".to_owned(),
    };
    match valid.until {
        Some(until) if *now < until => {
            let seconds = (until - *now).num_seconds();
            let days = (seconds + 86_399) / 86_400;
            format!("{span}（剩余 {days} 天）")
        }
        _ => span,
    }
}

/// One item as pages of a `width`×`height` rgb888 screen, at `now` (the days left depend on
/// it). Always at least one page.
pub fn render(
    item: &Item,
    width: u32,
    height: u32,
    sizes: Sizes,
    now: &DateTime<Tz>,
    glyphs: &mut CoverageCache,
) -> Vec<Frame> {
    let head = Head::new(item, width, sizes, now, glyphs);
    let lines = body_lines(item, width, sizes, glyphs);
    let pitch = (sizes.body * 17 / 10).max(1);
    let footer_height = sizes.footer * 3;
    let body_top = head.height + sizes.body / 2;
    let room = height.saturating_sub(body_top + footer_height);
    let per_page = (room / pitch).max(1) as usize;
    let pages: Vec<&[String]> = if lines.is_empty() {
        vec![&[]]
    } else {
        lines.chunks(per_page).collect()
    };
    let count = pages.len();
    let ascent = hanzi_ascent(sizes.body);
    pages
        .iter()
        .enumerate()
        .map(|(index, page_lines)| {
            let mut frame = Frame::new(width, height, PixelFormat::Rgb888);
            fill(&mut frame, 0, 0, width, height, PAGE);
            head.draw(&mut frame, glyphs);
            // Centre the line box in its pitch: the extra leading goes half above, half below.
            let lead = (pitch as i32 - sizes.body as i32 * 5 / 4) / 2;
            for (row, line) in page_lines.iter().enumerate() {
                let top = body_top as i32 + row as i32 * pitch as i32 + lead.max(0);
                draw_text(
                    &mut frame,
                    glyphs,
                    line,
                    sizes.body,
                    sizes.margin as i32,
                    top + ascent,
                    INK,
                );
            }
            let number = format!("第 {}/{} 页", index + 1, count);
            let number_width = text_width_of(glyphs, &number, sizes.footer);
            let baseline = height as i32 - footer_height as i32 + sizes.footer as i32 * 2;
            draw_text(
                &mut frame,
                glyphs,
                &number,
                sizes.footer,
                (width as i32 - number_width as i32) / 2,
                baseline,
                FOOTER,
            );
            frame
        })
        .collect()
}

/// The body of `item` as the lines of a screen `width` wide, in order over all pages.
pub fn body_lines(
    item: &Item,
    width: u32,
    sizes: Sizes,
    glyphs: &mut CoverageCache,
) -> Vec<String> {
    let body = body_text(&plain(&item.body));
    let text_width = width.saturating_sub(2 * sizes.margin).max(1);
    linebreak::wrap(&body, text_width, |c| glyphs.advance(c, sizes.body))
        .into_iter()
        .map(|r| body[r].to_owned())
        .collect()
}

/// The body with each paragraph indented by two ideographic spaces (Chinese convention).
fn body_text(body: &str) -> String {
    body.lines()
        .map(|p| {
            let p = p.trim();
            if p.is_empty() {
                String::new()
            } else {
                format!("\u{3000}\u{3000}{p}")
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The head of every page, laid out once.
struct Head {
    sizes: Sizes,
    width: u32,
    band_height: u32,
    category: &'static str,
    tag: Rgb,
    tag_y: u32,
    tag_height: u32,
    title: Vec<String>,
    title_y: u32,
    title_pitch: u32,
    meta: Vec<String>,
    meta_y: u32,
    meta_pitch: u32,
    rule_y: u32,
    /// Rows from the top of the page to just below the rule.
    height: u32,
}

impl Head {
    fn new(
        item: &Item,
        width: u32,
        sizes: Sizes,
        now: &DateTime<Tz>,
        glyphs: &mut CoverageCache,
    ) -> Head {
        let text_width = width.saturating_sub(2 * sizes.margin).max(1);
        let band_height = sizes.meta * 5 / 2;
        let tag_y = band_height + sizes.margin / 2;
        let tag_height = sizes.meta * 8 / 5;
        let title_y = tag_y + tag_height + sizes.meta / 2;
        let title_pitch = sizes.title * 4 / 3;
        let title_text = plain(&item.title);
        let title: Vec<String> =
            linebreak::wrap(&title_text, text_width, |c| glyphs.advance(c, sizes.title))
                .into_iter()
                .map(|r| title_text[r].to_owned())
                .collect();
        let meta_y = title_y + title.len() as u32 * title_pitch + sizes.meta / 3;
        let meta_pitch = sizes.meta * 3 / 2;
        let mut meta = Vec::new();
        if let Some(department) = &item.department {
            meta.push(format!("发布单位：{department}"));
        }
        meta.push(dates_text(&item.valid, now));
        // A long department or date line wraps like any other text.
        let meta: Vec<String> = meta
            .iter()
            .flat_map(|line| {
                linebreak::wrap(line, text_width, |c| glyphs.advance(c, sizes.meta))
                    .into_iter()
                    .map(|r| line[r].to_owned())
                    .collect::<Vec<_>>()
            })
            .collect();
        let rule_y = meta_y + meta.len() as u32 * meta_pitch + sizes.meta / 2;
        Head {
            sizes,
            width,
            band_height,
            category: item.category.name(),
            tag: tag_color(item.category),
            tag_y,
            tag_height,
            title,
            title_y,
            title_pitch,
            meta,
            meta_y,
            meta_pitch,
            rule_y,
            height: rule_y + 3,
        }
    }

    fn draw(&self, frame: &mut Frame, glyphs: &mut CoverageCache) {
        let s = self.sizes;
        let margin = s.margin as i32;
        let (meta_ascent, title_ascent) = (hanzi_ascent(s.meta), hanzi_ascent(s.title));
        fill(frame, 0, 0, self.width, self.band_height, BAND);
        let band_baseline = (self.band_height as i32 + meta_ascent * 4 / 5) / 2;
        draw_text(
            frame,
            glyphs,
            "政务公开",
            s.meta,
            margin,
            band_baseline,
            WHITE,
        );
        let tag_width = text_width_of(glyphs, self.category, s.meta) + s.meta;
        fill(
            frame,
            s.margin,
            self.tag_y,
            tag_width,
            self.tag_height,
            self.tag,
        );
        let tag_baseline = self.tag_y as i32 + (self.tag_height as i32 + meta_ascent * 4 / 5) / 2;
        draw_text(
            frame,
            glyphs,
            self.category,
            s.meta,
            margin + s.meta as i32 / 2,
            tag_baseline,
            WHITE,
        );
        for (i, line) in self.title.iter().enumerate() {
            let top = (self.title_y + i as u32 * self.title_pitch) as i32;
            draw_text(
                frame,
                glyphs,
                line,
                s.title,
                margin,
                top + title_ascent,
                INK,
            );
        }
        for (i, line) in self.meta.iter().enumerate() {
            let top = (self.meta_y + i as u32 * self.meta_pitch) as i32;
            draw_text(frame, glyphs, line, s.meta, margin, top + meta_ascent, META);
        }
        fill(
            frame,
            s.margin,
            self.rule_y,
            self.width.saturating_sub(2 * s.margin),
            3,
            RULE,
        );
    }
}

/// Rows from the top of a line to its baseline: the hanzi ascent of the font (about 0.88 em
/// for Noto), not the font's full ascent, which leaves room for accents Chinese never uses.
fn hanzi_ascent(px: u32) -> i32 {
    (px as f32 * 0.88).round() as i32
}

fn text_width_of(glyphs: &mut CoverageCache, text: &str, px: u32) -> u32 {
    text.chars().map(|c| glyphs.advance(c, px)).sum()
}

/// Draws `text` with its pen starting at `x` on `baseline`; returns the width drawn.
fn draw_text(
    frame: &mut Frame,
    glyphs: &mut CoverageCache,
    text: &str,
    px: u32,
    x: i32,
    baseline: i32,
    color: Rgb,
) -> u32 {
    let mut pen = x;
    for c in text.chars() {
        let glyph = glyphs.get(c, px);
        let cov = &glyph.coverage;
        blend(
            frame,
            pen + cov.left,
            baseline + cov.top,
            cov.width,
            &cov.alpha,
            color,
        );
        pen += glyph.advance as i32;
    }
    (pen - x).max(0) as u32
}

/// Blends `color` into the frame through a coverage map whose top-left is at (`x`, `y`); the
/// parts outside the frame are cut off.
fn blend(frame: &mut Frame, x: i32, y: i32, width: u32, alpha: &[u8], color: Rgb) {
    if width == 0 {
        return;
    }
    let stride = frame.stride();
    let (fw, fh) = (frame.width as i32, frame.height as i32);
    for (row, coverage) in alpha.chunks_exact(width as usize).enumerate() {
        let py = y + row as i32;
        if py < 0 || py >= fh {
            continue;
        }
        for (col, a) in coverage.iter().enumerate() {
            let px = x + col as i32;
            if *a == 0 || px < 0 || px >= fw {
                continue;
            }
            let at = py as usize * stride + px as usize * 3;
            let a = u32::from(*a);
            for (channel, target) in frame.data[at..at + 3]
                .iter_mut()
                .zip([color.0, color.1, color.2])
            {
                let under = u32::from(*channel);
                *channel = ((under * (255 - a) + u32::from(target) * a + 127) / 255) as u8;
            }
        }
    }
}

/// Fills a rectangle (cut to the frame) with `color`.
fn fill(frame: &mut Frame, x: u32, y: u32, width: u32, height: u32, color: Rgb) {
    let stride = frame.stride();
    let x_end = x.saturating_add(width).min(frame.width);
    let y_end = y.saturating_add(height).min(frame.height);
    for py in y.min(y_end)..y_end {
        let row = &mut frame.data[py as usize * stride..][..stride];
        for px in x.min(x_end)..x_end {
            let at = px as usize * 3;
            row[at..at + 3].copy_from_slice(&[color.0, color.1, color.2]);
        }
    }
}

/// Why a page could not be encoded.
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    #[error("a kiosk page is rgb888, not {0:?}")]
    Format(PixelFormat),
    #[error("PNG encoding failed: {0}")]
    Png(#[from] png::EncodingError),
}

/// A page as PNG (8-bit RGB). Fast compression: a page goes out once a dwell, and the flat
/// background compresses well even so.
pub fn encode_png(frame: &Frame) -> Result<Vec<u8>, EncodeError> {
    if frame.format != PixelFormat::Rgb888 {
        return Err(EncodeError::Format(frame.format));
    }
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, frame.width, frame.height);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    encoder.set_compression(png::Compression::Fast);
    let mut writer = encoder.write_header()?;
    writer.write_image_data(&frame.data)?;
    writer.finish()?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::model::{Show, Validity};
    use crate::font::scalable::ScalableFont;
    use chrono::TimeZone;

    #[test]
    fn an_interrupts_bidi_override_does_not_reach_the_kiosk() {
        // From the control API, not the validated site: the page must not reorder it.
        assert_eq!(plain("停水\u{202E}通知\u{2066}"), "停水通知");
        assert_eq!(plain("普通文字"), "普通文字");
    }

    fn item(category: Category, title: &str, body: &str) -> Item {
        let tz: Tz = "Asia/Shanghai".parse().unwrap();
        Item {
            id: "t".into(),
            title: title.into(),
            body: body.into(),
            category,
            department: Some("县财政局".into()),
            valid: Validity {
                from: Some(tz.with_ymd_and_hms(2026, 12, 15, 0, 0, 0).unwrap()),
                until: Some(tz.with_ymd_and_hms(2027, 1, 1, 0, 0, 0).unwrap()),
            },
            show: Show::default(),
            color: None,
            channels: vec![],
            at_least_every: None,
            line: 1,
            id_at: (1, 1),
            title_at: (1, 1, 1),
            body_at: None,
        }
    }

    fn now() -> DateTime<Tz> {
        let tz: Tz = "Asia/Shanghai".parse().unwrap();
        tz.with_ymd_and_hms(2026, 12, 22, 10, 0, 0).unwrap()
    }

    /// A body full of places where a naive wrapper would start a line with punctuation.
    const DENSE: &str = "经报名、资格审查、业绩评定和面试，拟选调李镕（池江镇中学）、张思玥（樟斗镇中心小学）等18名乡村学校教师到城区学校任教。公示期为2026年12月21日至12月25日，如有异议请向县教育体育局人事股反映，电话0797-8722518。";

    #[test]
    fn no_body_line_starts_with_a_pause_or_closing_mark_at_any_width() {
        let mut glyphs = CoverageCache::new(ScalableFont::noto_sans_sc());
        let body = DENSE.repeat(3);
        let it = item(Category::Hiring, "标题", &body);
        for width in (400..=1080).step_by(37) {
            let sizes = Sizes::new(width, Some(40));
            let lines = body_lines(&it, width, sizes, &mut glyphs);
            assert!(lines.len() > 3);
            for line in &lines {
                let first = line.chars().next().unwrap();
                assert!(
                    !"、，。：；！？）》”".contains(first),
                    "width {width}: {line}"
                );
                let last = line.chars().last().unwrap();
                assert!(!"（《“".contains(last), "width {width}: {line}");
                let drawn: u32 = line.chars().map(|c| glyphs.advance(c, 40)).sum();
                assert!(drawn <= width - 2 * sizes.margin, "{line} {drawn}");
            }
            // Nothing lost: the lines are the text, indented once.
            let joined: String = lines.concat();
            assert_eq!(joined.trim_start_matches('\u{3000}'), body);
        }
    }

    #[test]
    fn a_long_item_gives_numbered_full_size_pages_and_a_short_one_a_single_page() {
        let mut glyphs = CoverageCache::new(ScalableFont::noto_sans_sc());
        let long = item(
            Category::Hiring,
            "2026年城区学校公开选调教师拟选调人员公示",
            &DENSE.repeat(12),
        );
        let pages = render(
            &long,
            1080,
            1920,
            Sizes::new(1080, Some(40)),
            &now(),
            &mut glyphs,
        );
        assert!(pages.len() >= 2, "{}", pages.len());
        for page in &pages {
            assert_eq!(
                (page.width, page.height, page.format),
                (1080, 1920, PixelFormat::Rgb888)
            );
            // The page number is drawn near the bottom, in the middle.
            let ink = (1800..1920).any(|y| (440..640).any(|x| page.pixel(x, y) != PAGE));
            assert!(ink, "page number");
        }
        let short = item(Category::Procurement, "意向公开", "短文。");
        assert_eq!(
            render(
                &short,
                1080,
                1920,
                Sizes::new(1080, Some(40)),
                &now(),
                &mut glyphs
            )
            .len(),
            1
        );
    }

    #[test]
    fn text_is_anti_aliased_and_the_tag_has_the_category_colour() {
        let mut glyphs = CoverageCache::new(ScalableFont::noto_sans_sc());
        let it = item(Category::Licensing, "行政许可事项清单", "正文。");
        let sizes = Sizes::new(1080, Some(40));
        let page = &render(&it, 1080, 1920, sizes, &now(), &mut glyphs)[0];
        let mut grey = 0;
        for y in 0..1920 {
            for x in 0..1080 {
                let Rgb(r, g, b) = page.pixel(x, y);
                if r == g && g == b && r > 40 && r < 240 {
                    grey += 1;
                }
            }
        }
        assert!(
            grey > 100,
            "partly covered pixels between ink and page: {grey}"
        );
        // Just inside the tag's top-left corner.
        let tag_y = sizes.meta * 5 / 2 + sizes.margin / 2;
        assert_eq!(
            page.pixel(sizes.margin + 2, tag_y + 2),
            tag_color(Category::Licensing)
        );
    }

    #[test]
    fn rendering_is_a_function_of_its_arguments() {
        let it = item(Category::Planning, "规划许可批后公示", DENSE);
        let sizes = Sizes::new(720, Some(32));
        let mut a = CoverageCache::new(ScalableFont::noto_sans_sc());
        let mut b = CoverageCache::new(ScalableFont::noto_sans_sc());
        let first = render(&it, 720, 1280, sizes, &now(), &mut a);
        let _warm = render(&it, 720, 1280, sizes, &now(), &mut b);
        assert_eq!(first, render(&it, 720, 1280, sizes, &now(), &mut b));
    }

    #[test]
    fn dates_show_the_day_written_and_the_days_left() {
        let it = item(Category::Other, "t", "b");
        assert_eq!(
            dates_text(&it.valid, &now()),
            "有效期：2026年12月15日 至 2026年12月31日（剩余 10 天）"
        );
        assert_eq!(dates_text(&Validity::default(), &now()), "长期有效");
    }

    #[test]
    fn pages_encode_as_png_and_other_formats_are_refused() {
        let mut glyphs = CoverageCache::new(ScalableFont::noto_sans_sc());
        let it = item(Category::Other, "大厅窗口分布", DENSE);
        let page = &render(&it, 540, 960, Sizes::new(540, None), &now(), &mut glyphs)[0];
        let png = encode_png(page).unwrap();
        assert_eq!(&png[1..4], b"PNG");
        let mono = Frame::new(8, 8, PixelFormat::Mono);
        assert!(matches!(
            encode_png(&mono),
            Err(EncodeError::Format(PixelFormat::Mono))
        ));
    }
}
