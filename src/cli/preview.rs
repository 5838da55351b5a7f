//! `gongkai preview`: what a display will show, as pictures that look like the board.
//!
//! For each (display, item) pair asked for: one PNG per page, and an animated GIF for scroll
//! and roll modes (and for page mode with several pages) paced as the board would show it —
//! smooth when the controller plays locally or frames travel over MQTT, and in the jumps a
//! serial link can carry when frames are streamed. `--lines` prints each board line as broken.

use std::collections::HashMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use super::Exit;
use crate::config::model::{Category, Display, Item, Link, Model, Profile, Rgb, Show, ShowMode};
use crate::config::{self, glyphs, values};
use crate::font::{FontChain, Resolved};
use crate::i18n::{Lang, tr};
use crate::layout::{Canvas, Content, Layout, layout};
use crate::preview::{LedLook, write_gif, write_png};
use crate::raster::frame::Frame;
use crate::raster::{Paint, render_page, render_strip};

/// What `gongkai preview` was asked.
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub item: Option<String>,
    pub display: Option<String>,
    pub profile: Option<PathBuf>,
    pub text: Option<String>,
    pub title: Option<String>,
    pub mode: Option<ShowMode>,
    pub out: PathBuf,
    pub scale: u32,
    pub strict: bool,
    pub lines: bool,
    /// The time the clock zone shows, `YYYY-MM-DDTHH:MM` in the site's zone (default: now).
    pub at: Option<String>,
}

/// One picture set to make.
struct Job<'a> {
    stem: String,
    profile: &'a Profile,
    link: Option<&'a Link>,
    title: &'a str,
    body: &'a str,
    category: Category,
    show: Show,
    color: Option<Rgb>,
}

pub fn run(site: &Path, options: &Options, lang: Lang) -> Exit {
    let mut out = std::io::stdout().lock();
    let now = Utc::now();
    if let Some(text) = &options.text {
        let Some(profile_path) = &options.profile else {
            eprintln!("{}", tr(lang, "cli.preview.text_needs_profile", &[]));
            return Exit::Usage;
        };
        let Some(profile) = load_profile(site, profile_path, lang) else {
            return Exit::Problems;
        };
        let show = Show {
            mode: options.mode.unwrap_or(ShowMode::Page),
            ..Show::default()
        };
        let job = Job {
            stem: "text".to_owned(),
            profile: &profile,
            link: None,
            title: options.title.as_deref().unwrap_or(""),
            body: text,
            category: Category::Other,
            show,
            color: None,
        };
        let clock = clock_text(options.at.as_deref(), chrono_tz::Asia::Shanghai, now);
        return run_jobs(site, vec![job], options, clock.as_deref(), lang, &mut out);
    }
    let loaded = config::load(site);
    let Some(model) = &loaded.model else {
        let _ = write!(out, "{}", loaded.report.render(lang));
        return Exit::Problems;
    };
    let jobs = match jobs_for(model, options, lang) {
        Ok(jobs) => jobs,
        Err(exit) => return exit,
    };
    let clock = clock_text(options.at.as_deref(), model.site.timezone, now);
    run_jobs(site, jobs, options, clock.as_deref(), lang, &mut out)
}

/// The (display, item) pairs the options name.
fn jobs_for<'a>(model: &'a Model, options: &Options, lang: Lang) -> Result<Vec<Job<'a>>, Exit> {
    let display = match &options.display {
        Some(id) => match model.displays.iter().position(|d| d.id == *id) {
            Some(index) => Some(index),
            None => {
                eprintln!("{}", tr(lang, "cli.preview.unknown_display", &[("id", id)]));
                return Err(Exit::Problems);
            }
        },
        None => None,
    };
    if let Some(id) = &options.item
        && model.item(id).is_none()
    {
        eprintln!("{}", tr(lang, "cli.preview.unknown_item", &[("id", id)]));
        return Err(Exit::Problems);
    }
    let mut jobs = Vec::new();
    for playlist in &model.playlists {
        for item in &playlist.items {
            if options.item.as_ref().is_some_and(|id| *id != item.id) {
                continue;
            }
            let targets: Vec<usize> = match (display, &options.item) {
                // An item asked for by name may be previewed on any display.
                (Some(d), Some(_)) => vec![d],
                (Some(d), None) if playlist.targets.contains(&d) => vec![d],
                (Some(_), None) => Vec::new(),
                (None, _) => playlist.targets.clone(),
            };
            for d in targets {
                let display: &Display = &model.displays[d];
                jobs.push(job(model, display, item));
            }
        }
    }
    if jobs.is_empty() {
        eprintln!("{}", tr(lang, "cli.preview.nothing", &[]));
        return Err(Exit::Problems);
    }
    Ok(jobs)
}

fn job<'a>(model: &'a Model, display: &'a Display, item: &'a Item) -> Job<'a> {
    Job {
        stem: format!("{}_{}", display.id, item.id),
        profile: model.profile_of(display),
        link: Some(&display.link),
        title: &item.title,
        body: &item.body,
        category: item.category,
        show: item.show,
        color: item.color,
    }
}

fn run_jobs(
    site: &Path,
    jobs: Vec<Job<'_>>,
    options: &Options,
    clock: Option<&str>,
    lang: Lang,
    out: &mut impl std::io::Write,
) -> Exit {
    let mut chains: HashMap<String, FontChain> = HashMap::new();
    let mut exit = Exit::Ok;
    let mut written = 0usize;
    let many = jobs.len() > 1;
    if let Err(error) = std::fs::create_dir_all(&options.out) {
        let (path, reason) = (options.out.display().to_string(), error.to_string());
        eprintln!(
            "{}",
            tr(
                lang,
                "cli.write_failed",
                &[("path", &path), ("reason", &reason)]
            )
        );
        return Exit::Failed;
    }
    for job in jobs {
        let mut show = job.show;
        if let Some(mode) = options.mode {
            show.mode = mode;
        }
        let chain = match chains.get_mut(&job.profile.id) {
            Some(chain) => chain,
            None => match glyphs::load_chain(&job.profile.font, site) {
                Ok(chain) => chains.entry(job.profile.id.clone()).or_insert(chain),
                Err(reason) => {
                    eprintln!(
                        "{}",
                        tr(lang, "glyph.font_unusable", &[("reason", &reason)])
                    );
                    return Exit::Problems;
                }
            },
        };
        if !coverage_ok(&job, chain, options.strict, lang) {
            exit = Exit::Problems;
        }
        let canvas = Canvas::of(job.profile);
        let content = Content {
            title: job.title,
            body: job.body,
            category: job.category.name(),
            show,
        };
        let laid = match layout(&content, &canvas, chain) {
            Ok(laid) => laid,
            Err(error) => {
                let error = error.to_string();
                eprintln!(
                    "{}",
                    tr(
                        lang,
                        "cli.preview.markup",
                        &[("stem", &job.stem), ("error", &error)]
                    )
                );
                exit = Exit::Problems;
                continue;
            }
        };
        if options.lines {
            if many {
                let _ = writeln!(out, "== {} ==", job.stem);
            }
            print_lines(&laid, out);
        }
        let paint = Paint {
            format: job.profile.pixel,
            width: job.profile.width,
            height: job.profile.height,
            color: job.color,
            clock,
        };
        let look = LedLook {
            scale: options.scale.max(1),
            led_color: job.profile.led_color,
        };
        match write_pictures(&job, &laid, &show, chain, &paint, &look, &options.out) {
            Ok(count) => written += count,
            Err(reason) => {
                eprintln!(
                    "{}",
                    tr(
                        lang,
                        "cli.write_failed",
                        &[("path", &job.stem), ("reason", &reason)]
                    )
                );
                return Exit::Failed;
            }
        }
    }
    let (count, dir) = (written.to_string(), options.out.display().to_string());
    eprintln!(
        "{}",
        tr(
            lang,
            "cli.preview.wrote",
            &[("count", &count), ("dir", &dir)]
        )
    );
    exit
}

/// Reports characters drawn by a fallback font (warning) or by none (error with `--strict`).
fn coverage_ok(job: &Job<'_>, chain: &mut FontChain, strict: bool, lang: Lang) -> bool {
    let mut ok = true;
    let mut seen = std::collections::BTreeSet::new();
    for c in job
        .title
        .chars()
        .chain(job.body.chars())
        .filter(|c| !c.is_control())
    {
        if !seen.insert(c) {
            continue;
        }
        let code = format!("U+{:04X}", u32::from(c));
        let ch = c.to_string();
        match chain.resolve(c) {
            Resolved::Fallback(index) => {
                let font = chain.names().get(index).copied().unwrap_or("?").to_owned();
                eprintln!(
                    "{}",
                    tr(
                        lang,
                        "cli.preview.fallback",
                        &[
                            ("stem", &job.stem),
                            ("char", &ch),
                            ("code", &code),
                            ("font", &font)
                        ]
                    )
                );
            }
            Resolved::Missing => {
                let key = if strict {
                    "cli.preview.missing_strict"
                } else {
                    "cli.preview.missing"
                };
                eprintln!(
                    "{}",
                    tr(
                        lang,
                        key,
                        &[("stem", &job.stem), ("char", &ch), ("code", &code)]
                    )
                );
                ok &= !strict;
            }
            _ => {}
        }
    }
    ok
}

/// Each page's lines as broken on the board, one per output line, a blank line between pages.
fn print_lines(laid: &Layout, out: &mut impl std::io::Write) {
    for (index, page) in laid.line_texts().iter().enumerate() {
        if index > 0 {
            let _ = writeln!(out);
        }
        for line in page {
            let _ = writeln!(out, "{line}");
        }
    }
}

/// Writes the job's pictures; returns how many files were written.
fn write_pictures(
    job: &Job<'_>,
    laid: &Layout,
    show: &Show,
    chain: &mut FontChain,
    paint: &Paint<'_>,
    look: &LedLook,
    dir: &Path,
) -> Result<usize, String> {
    let create = |name: String| -> Result<std::io::BufWriter<std::fs::File>, String> {
        let path = dir.join(name);
        std::fs::File::create(&path)
            .map(std::io::BufWriter::new)
            .map_err(|e| format!("{}: {e}", path.display()))
    };
    // Animations hold hundreds of frames: at half the still's scale they stay a few MB and
    // still show the dots.
    let gif_look = LedLook {
        scale: (look.scale / 2).max(2),
        ..*look
    };
    let mut count = 0;
    match show.mode {
        ShowMode::Page => {
            let frames: Vec<Frame> = (0..laid.pages.len())
                .map(|p| render_page(laid, p, chain, paint))
                .collect();
            for (index, frame) in frames.iter().enumerate() {
                write_png(
                    frame,
                    look,
                    create(format!("{}-p{}.png", job.stem, index + 1))?,
                )
                .map_err(|e| e.to_string())?;
                count += 1;
            }
            if frames.len() > 1 {
                let timed = frames.iter().map(|f| (f, show.dwell));
                write_gif(timed, &gif_look, create(format!("{}.gif", job.stem))?)
                    .map_err(|e| e.to_string())?;
                count += 1;
            }
        }
        ShowMode::Scroll | ShowMode::Roll => {
            let strip = render_strip(laid, chain, paint);
            // A still with the text's start at the body's left (or top) edge.
            let still = strip.frame(match strip.axis {
                crate::raster::Axis::Horizontal => laid.body.width,
                crate::raster::Axis::Vertical => laid.body.height,
            });
            write_png(&still, look, create(format!("{}.png", job.stem))?)
                .map_err(|e| e.to_string())?;
            let (step, delay) = crate::link::pacing(job.profile, job.link, show.speed);
            let frames: Vec<Frame> = (0..strip.positions)
                .step_by(step as usize)
                .map(|o| strip.frame(o))
                .collect();
            write_gif(
                frames.iter().map(|f| (f, delay)),
                &gif_look,
                create(format!("{}.gif", job.stem))?,
            )
            .map_err(|e| e.to_string())?;
            count += 2;
        }
    }
    Ok(count)
}

fn clock_text(at: Option<&str>, tz: Tz, now: DateTime<Utc>) -> Option<String> {
    let local = match at.and_then(values::parse_local_time) {
        Some((naive, _)) => naive,
        None => now.with_timezone(&tz).naive_local(),
    };
    Some(local.format("%m月%d日 %H:%M").to_string())
}

/// A profile file on its own, for `--profile FILE --text …`.
fn load_profile(site: &Path, path: &Path, lang: Lang) -> Option<Profile> {
    super::load_profile_file(site, path, lang, "cli.preview.profile_unreadable")
}
