//! What a display shows during one slot, rendered: the pure step between the schedule's
//! answer and the link.
//!
//! Owns turning a [`What`] (an item, an interrupt, the idle screen, off) into a [`Picture`]
//! — still, pages, or a moving strip — and answering "which frame at this moment?" for the
//! status page and for links that are fed frame by frame. No clock, no I/O: the local time
//! for the clock zone and the elapsed time are arguments.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Datelike};
use chrono_tz::Tz;

use crate::config::model::{DisplayIdx, Model, Show, ShowMode};
use crate::font::FontChain;
use crate::layout::{Canvas, Content, LayoutError, layout};
use crate::link::Program;
use crate::raster::frame::Frame;
use crate::raster::{Axis, Paint, Strip, render_page, render_strip};
use crate::schedule::{Interrupt, What};

/// Title of an emergency interrupt on the boards.
pub const INTERRUPT_TITLE: &str = "紧急通知";
/// How long each page of an interrupt stays.
const INTERRUPT_DWELL: Duration = Duration::from_secs(8);

/// A slot's content, rendered once.
#[derive(Clone)]
pub enum Picture {
    /// The board is off or shows nothing.
    Dark,
    /// Pages shown in turn (one page: a still picture).
    Pages { frames: Vec<Frame>, dwell: Duration },
    /// Text moving through the body at `speed` px/s, `passes` times (0: until the slot ends).
    Moving {
        strip: Arc<Strip>,
        speed: f32,
        passes: u32,
    },
}

impl std::fmt::Debug for Picture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Picture::Dark => write!(f, "Dark"),
            Picture::Pages { frames, dwell } => write!(f, "Pages({} × {dwell:?})", frames.len()),
            Picture::Moving { speed, passes, .. } => write!(f, "Moving({speed} px/s × {passes})"),
        }
    }
}

impl PartialEq for Picture {
    fn eq(&self, other: &Picture) -> bool {
        match (self, other) {
            (Picture::Dark, Picture::Dark) => true,
            (
                Picture::Pages { frames, dwell },
                Picture::Pages {
                    frames: f2,
                    dwell: d2,
                },
            ) => frames == f2 && dwell == d2,
            (
                Picture::Moving {
                    strip,
                    speed,
                    passes,
                },
                Picture::Moving {
                    strip: s2,
                    speed: v2,
                    passes: p2,
                },
            ) => {
                speed == v2
                    && passes == p2
                    && strip.positions == s2.positions
                    && (0..strip.positions)
                        .step_by(usize::try_from(strip.body.width.max(1)).unwrap_or(1))
                        .chain([strip.positions.saturating_sub(1)])
                        .all(|o| strip.frame(o) == s2.frame(o))
            }
            _ => false,
        }
    }
}

impl Picture {
    /// Whether the picture changes by itself (pages turning, text moving).
    pub fn moves(&self) -> bool {
        match self {
            Picture::Dark => false,
            Picture::Pages { frames, .. } => frames.len() > 1,
            Picture::Moving { .. } => true,
        }
    }

    /// The frame `elapsed` after the picture started; `None` when dark. Pages loop; moving
    /// text loops when `passes` is 0 and otherwise ends on the empty body.
    pub fn frame_at(&self, elapsed: Duration) -> Option<Frame> {
        match self {
            Picture::Dark => None,
            Picture::Pages { frames, dwell } => {
                let index = page_index(frames.len(), *dwell, elapsed);
                frames.get(index).cloned()
            }
            Picture::Moving {
                strip,
                speed,
                passes,
            } => Some(strip.frame(strip_offset(strip, *speed, *passes, elapsed))),
        }
    }

    /// When, after `elapsed`, a link fed frame by frame needs its next frame: at the next page,
    /// or after `step` more pixels of travel at the pace the link can carry. `None`: nothing
    /// changes any more.
    pub fn next_frame_after(&self, elapsed: Duration, step: u32) -> Option<Duration> {
        match self {
            Picture::Dark => None,
            Picture::Pages { frames, dwell } => {
                if frames.len() < 2 || dwell.is_zero() {
                    return None;
                }
                let turns = elapsed.as_nanos() / dwell.as_nanos() + 1;
                Some(dwell.saturating_mul(u32::try_from(turns).unwrap_or(u32::MAX)))
            }
            Picture::Moving {
                strip,
                speed,
                passes,
            } => {
                let speed = f64::from(speed.max(0.1));
                let travelled = (elapsed.as_secs_f64() * speed).floor();
                let pass = f64::from(strip.positions.saturating_sub(1).max(1));
                if *passes > 0 && travelled >= pass * f64::from(*passes) {
                    return None;
                }
                let next = (travelled / f64::from(step.max(1))).floor() + 1.0;
                Some(Duration::from_secs_f64(
                    next * f64::from(step.max(1)) / speed,
                ))
            }
        }
    }

    /// What a board that plays by itself is given: pages from the one showing `elapsed` after
    /// the start (a resumed item continues where it was), or the strip from its start.
    pub fn program(&self, elapsed: Duration) -> Option<Program> {
        match self {
            Picture::Dark => None,
            Picture::Pages { frames, dwell } => {
                let first = page_index(frames.len(), *dwell, elapsed);
                let mut pages = frames.clone();
                pages.rotate_left(first);
                Some(Program::Pages {
                    pages,
                    dwell: *dwell,
                })
            }
            Picture::Moving {
                strip,
                speed,
                passes,
            } => Some(Program::from_strip(
                strip,
                *speed,
                u16::try_from(*passes).unwrap_or(u16::MAX),
            )),
        }
    }
}

fn page_index(pages: usize, dwell: Duration, elapsed: Duration) -> usize {
    if pages == 0 || dwell.is_zero() {
        return 0;
    }
    let turns = elapsed.as_nanos() / dwell.as_nanos();
    usize::try_from(turns % pages as u128).unwrap_or(0)
}

fn strip_offset(strip: &Strip, speed: f32, passes: u32, elapsed: Duration) -> u32 {
    let pass = u64::from(strip.positions.saturating_sub(1).max(1));
    let travelled = (elapsed.as_secs_f64() * f64::from(speed.max(0.0))) as u64;
    let offset = if passes == 0 {
        travelled % pass
    } else if travelled >= pass * u64::from(passes) {
        // After the last pass the body is empty, as at the start.
        0
    } else {
        travelled % pass
    };
    u32::try_from(offset).unwrap_or(0)
}

/// The clock zone's text, as the boards show it.
pub fn clock_text(at: DateTime<Tz>) -> String {
    at.format("%m月%d日 %H:%M").to_string()
}

/// The idle screen's body: the date, the weekday and the time.
pub fn idle_text(at: DateTime<Tz>) -> String {
    const WEEKDAYS: [&str; 7] = ["一", "二", "三", "四", "五", "六", "日"];
    let weekday = WEEKDAYS[at.weekday().num_days_from_monday() as usize];
    format!(
        "{} 星期{weekday} {}",
        at.format("%Y年%m月%d日"),
        at.format("%H:%M")
    )
}

/// Renders what `display` shows for `what` at `at` (the clock zone and the idle screen show
/// that minute).
pub fn render(
    model: &Model,
    display: DisplayIdx,
    what: &What,
    interrupts: &[Interrupt],
    at: DateTime<Tz>,
    fonts: &mut FontChain,
) -> Result<Picture, LayoutError> {
    let Some(d) = model.displays.get(display) else {
        return Ok(Picture::Dark);
    };
    let profile = model.profile_of(d);
    let clock = clock_text(at);
    let idle;
    let (content, color) = match *what {
        What::Off => return Ok(Picture::Dark),
        What::Item { playlist, item, .. } => {
            let Some(item) = model
                .playlists
                .get(playlist)
                .and_then(|p| p.items.get(item))
            else {
                return Ok(Picture::Dark);
            };
            (Content::of(item), item.color)
        }
        What::Interrupt(index) => {
            let Some(interrupt) = interrupts.get(index) else {
                return Ok(Picture::Dark);
            };
            let content = Content {
                title: INTERRUPT_TITLE,
                body: &interrupt.text,
                category: INTERRUPT_TITLE,
                show: Show {
                    mode: ShowMode::Page,
                    dwell: INTERRUPT_DWELL,
                    ..Show::default()
                },
            };
            (content, None)
        }
        What::Idle => {
            idle = idle_text(at);
            let content = Content {
                title: &model.site.name,
                body: &idle,
                category: "",
                show: Show::default(),
            };
            (content, None)
        }
    };
    let laid = layout(&content, &Canvas::of(profile), fonts)?;
    let paint = Paint {
        format: profile.pixel,
        width: profile.width,
        height: profile.height,
        color,
        clock: Some(&clock),
    };
    Ok(match content.show.mode {
        ShowMode::Page => Picture::Pages {
            frames: (0..laid.pages.len().max(1))
                .map(|p| render_page(&laid, p, fonts, &paint))
                .collect(),
            dwell: content.show.dwell,
        },
        ShowMode::Scroll | ShowMode::Roll => Picture::Moving {
            strip: Arc::new(render_strip(&laid, fonts, &paint)),
            speed: content.show.speed,
            passes: content.show.passes,
        },
    })
}

/// Whether `profile` is a touchscreen: full colour, fed pictures (PNG) rather than LED frames.
/// Its pages are typeset like a document ([`crate::kiosk::render`]), not like an LED board.
pub fn is_touchscreen(profile: &crate::config::model::Profile) -> bool {
    profile.pixel == crate::config::model::PixelFormat::Rgb888
        && profile.protocol == crate::config::model::Protocol::Png
}

/// The font a touchscreen's pages are set in: its profile's scalable font, else the shipped
/// Noto Sans SC.
pub fn touchscreen_glyphs(
    profile: &crate::config::model::Profile,
    site_dir: &std::path::Path,
) -> crate::font::scalable::CoverageCache {
    use crate::font::scalable::ScalableFont;
    let font = match &profile.font {
        crate::config::model::FontRef::File {
            path,
            size: Some(_),
        } if path != crate::font::scalable::NOTO_SANS_SC_PATH => std::fs::read(site_dir.join(path))
            .ok()
            .and_then(|bytes| ScalableFont::from_vec(path.clone(), bytes).ok())
            .unwrap_or_else(ScalableFont::noto_sans_sc),
        _ => ScalableFont::noto_sans_sc(),
    };
    crate::font::scalable::CoverageCache::new(font)
}

/// What a touchscreen shows for `what`: an item typeset as pages, an interrupt or the idle
/// screen as a page of their own.
pub fn render_touchscreen(
    model: &Model,
    display: DisplayIdx,
    what: &What,
    interrupts: &[Interrupt],
    at: DateTime<Tz>,
    glyphs: &mut crate::font::scalable::CoverageCache,
) -> Picture {
    let Some(d) = model.displays.get(display) else {
        return Picture::Dark;
    };
    let profile = model.profile_of(d);
    let size = match &profile.font {
        crate::config::model::FontRef::File { size, .. } => *size,
        crate::config::model::FontRef::Builtin(_) => None,
    };
    let sizes = crate::kiosk::render::Sizes::new(profile.width, size);
    let page = |item: &crate::config::model::Item, glyphs: &mut _| Picture::Pages {
        frames: crate::kiosk::render::render(
            item,
            profile.width,
            profile.height,
            sizes,
            &at,
            glyphs,
        ),
        dwell: item.show.dwell,
    };
    match *what {
        What::Off => Picture::Dark,
        What::Item { playlist, item, .. } => model
            .playlists
            .get(playlist)
            .and_then(|p| p.items.get(item))
            .map_or(Picture::Dark, |item| page(item, glyphs)),
        What::Interrupt(index) => match interrupts.get(index) {
            Some(interrupt) => page(
                &standalone_item(
                    &interrupt.id,
                    INTERRUPT_TITLE,
                    &interrupt.text,
                    INTERRUPT_DWELL,
                ),
                glyphs,
            ),
            None => Picture::Dark,
        },
        What::Idle => page(
            &standalone_item(
                "idle",
                &model.site.name,
                &idle_text(at),
                Show::default().dwell,
            ),
            glyphs,
        ),
    }
}

/// An item that is not in a playlist (an interrupt, the idle screen), for the typesetter.
fn standalone_item(
    id: &str,
    title: &str,
    body: &str,
    dwell: Duration,
) -> crate::config::model::Item {
    crate::config::model::Item {
        id: id.to_owned(),
        title: title.to_owned(),
        body: body.to_owned(),
        category: crate::config::model::Category::Other,
        department: None,
        valid: crate::config::model::Validity::default(),
        show: Show {
            dwell,
            ..Show::default()
        },
        color: None,
        channels: Vec::new(),
        at_least_every: None,
        line: 0,
        id_at: (0, 0),
        title_at: (0, 0, 0),
        body_at: None,
    }
}

/// Whether a picture shows the clock or the time of day, so it must be drawn again each minute.
pub fn shows_time(model: &Model, display: DisplayIdx, what: &What) -> bool {
    match what {
        What::Idle => true,
        What::Off => false,
        _ => model.displays.get(display).is_some_and(|d| {
            model.profile_of(d).zones.clock != crate::config::model::ClockZone::None
        }),
    }
}

/// The axis a moving picture travels on, for pacing.
pub fn axis_of(picture: &Picture) -> Option<Axis> {
    match picture {
        Picture::Moving { strip, .. } => Some(strip.axis),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::model::PixelFormat;

    fn pages(n: usize) -> Picture {
        Picture::Pages {
            frames: (0..n)
                .map(|i| {
                    let mut f = Frame::new(8, 1, PixelFormat::Mono);
                    f.data[0] = i as u8;
                    f
                })
                .collect(),
            dwell: Duration::from_secs(8),
        }
    }

    #[test]
    fn pages_turn_at_each_dwell_and_loop() {
        let p = pages(3);
        let at = |s| p.frame_at(Duration::from_secs(s)).expect("frame").data[0];
        assert_eq!([at(0), at(7), at(8), at(16), at(24)], [0, 0, 1, 2, 0]);
        assert_eq!(
            p.next_frame_after(Duration::from_secs(9), 1),
            Some(Duration::from_secs(16))
        );
        assert_eq!(pages(1).next_frame_after(Duration::ZERO, 1), None);
    }

    #[test]
    fn a_resumed_item_is_programmed_from_the_page_it_was_on() {
        let Some(Program::Pages { pages: p, .. }) = pages(3).program(Duration::from_secs(17))
        else {
            panic!("pages");
        };
        assert_eq!(p.iter().map(|f| f.data[0]).collect::<Vec<_>>(), [2, 0, 1]);
    }

    #[test]
    fn the_idle_screen_says_the_date_weekday_and_time() {
        let at = chrono_tz::Asia::Shanghai
            .with_ymd_and_hms(2026, 12, 1, 19, 32, 0)
            .single()
            .expect("time");
        assert_eq!(idle_text(at), "2026年12月01日 星期二 19:32");
        assert_eq!(clock_text(at), "12月01日 19:32");
    }

    use chrono::TimeZone;
}
