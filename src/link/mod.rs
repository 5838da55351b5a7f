//! Links: how a display's newest frame reaches its board.
//!
//! Owns the I/O between gongkai and the boards — ports, retries, timeouts, reconnects and
//! the per-display counters. [`Link`] is the one thing the rest of gongkai (the daemon) sees:
//! like embedded-graphics' `DrawTarget`, one required method (`show`) and a few with defaults
//! (program, brightness, power, clear), and every kind of link (serial and MQTT now; the
//! simulated link later) implements it. [`Program`] is what a board plays by itself (pages
//! with a dwell, or a scroll/roll strip with a speed and passes over a fixed background), so
//! a slow line carries an item once instead of every frame of it.
//!
//! Must not touch: the bytes of a protocol (`crate::protocol`, pure codecs called from here),
//! what a frame shows (`crate::raster`), or the schedule. Links never queue more than the
//! newest frame per display (ARCHITECTURE.md, invariant 4).

pub mod mqtt;
pub mod serial;
pub mod simulated;
pub mod stream;

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::protocol::transfer::{BodyError, Direction, ProgramBody};
use crate::raster::frame::{Frame, Rect};
use crate::raster::{Axis, Strip};

/// What became of a frame handed to a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// The frame is now the display's newest; the link delivers it as soon as the board can
    /// take it. `generation` counts the frames handed to this display.
    Queued { generation: u64 },
    /// As `Queued`, and an older frame that had not gone out yet was dropped for it.
    Replaced { generation: u64 },
}

impl Delivery {
    pub fn generation(self) -> u64 {
        match self {
            Delivery::Queued { generation } | Delivery::Replaced { generation } => generation,
        }
    }
}

/// Why a link refused a frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    /// The task that owns the port has ended (the link was shut down).
    #[error("the link's task has ended")]
    Closed,
    /// Content must expire, and the protocol counts in whole seconds up to 65,535.
    #[error("valid for {0:?}; must be 1 s to 65535 s")]
    ValidFor(Duration),
    /// This kind of link cannot do that (brightness over a pixel stream, …).
    #[error("this link does not support the request")]
    Unsupported,
    /// The program cannot be sent as given (no pages, pictures of different sizes).
    #[error("the program is malformed: {0}")]
    Program(String),
}

/// Something a board plays by itself (`docs/protocol.md` §1.5, PROGRAM).
#[derive(Debug, Clone, PartialEq)]
pub enum Program {
    /// Whole pictures shown in turn, each for `dwell`, looping until replaced or expired.
    Pages { pages: Vec<Frame>, dwell: Duration },
    /// `strip` moved through `window` over `background`: leftwards (its width is the
    /// length, its height the window's) or upwards (its height is the length).
    Strip {
        background: Frame,
        window: Rect,
        strip: Frame,
        direction: Direction,
        /// Pixels per second.
        speed: f32,
        /// 0: loop until replaced or expired; else that many passes, then the background.
        passes: u16,
    },
}

impl Program {
    /// The program a board needs to play `strip` (from `raster::render_strip`) at `speed`
    /// pixels per second, so that after `t` seconds it shows `strip.frame(⌊t × speed⌋)`.
    ///
    /// The raster strip carries a window's extent of blank before and after the text; the
    /// protocol's strip starts just outside the window by definition, so only the text
    /// between those blanks is sent. Built from `Strip::frame` alone (a window's worth at a
    /// time), so the raster keeps its masks to itself.
    pub fn from_strip(strip: &Strip, speed: f32, passes: u16) -> Program {
        let body = strip.body;
        let window = Rect {
            x: body.x,
            y: body.y,
            width: body.width,
            height: body.height,
        };
        let background = strip.frame(0);
        let (extent, direction) = match strip.axis {
            Axis::Horizontal => (body.width, Direction::Left),
            Axis::Vertical => (body.height, Direction::Up),
        };
        // One pass is positions − 1 pixels = text length + the window's extent.
        let length = strip.positions.saturating_sub(1).saturating_sub(extent);
        let (width, height) = match direction {
            Direction::Left => (length, body.height),
            Direction::Up => (body.width, length),
        };
        let mut out = Frame::new(width, height, background.format);
        let mut at = 0;
        while at < length && extent > 0 {
            // At position `extent + at` the window shows text [at, at + extent).
            let frame = strip.frame(extent + at);
            let n = extent.min(length - at);
            let (from, to) = match direction {
                Direction::Left => (
                    Rect {
                        x: body.x,
                        y: body.y,
                        width: n,
                        height: body.height,
                    },
                    Rect {
                        x: at,
                        y: 0,
                        width: n,
                        height: body.height,
                    },
                ),
                Direction::Up => (
                    Rect {
                        x: body.x,
                        y: body.y,
                        width: body.width,
                        height: n,
                    },
                    Rect {
                        x: 0,
                        y: at,
                        width: body.width,
                        height: n,
                    },
                ),
            };
            let pixels = crate::protocol::pixels::copy_rect(&frame, &from);
            crate::protocol::pixels::paste_rect(&mut out, &to, &pixels);
            at += n;
        }
        Program::Strip {
            background,
            window,
            strip: out,
            direction,
            speed,
            passes,
        }
    }

    /// Whether a board with these capabilities plays it (INFO caps bits 0 and 1).
    pub fn playable_with(&self, caps: crate::protocol::gongkai::Caps) -> bool {
        match self {
            Program::Pages { .. } => caps.local_pages,
            Program::Strip { .. } => caps.local_scroll,
        }
    }

    /// Size and format of the board's picture this program is for.
    pub fn geometry(&self) -> (u32, u32, crate::config::model::PixelFormat) {
        let f = match self {
            Program::Pages { pages, .. } => pages.first(),
            Program::Strip { background, .. } => Some(background),
        };
        f.map_or((0, 0, crate::config::model::PixelFormat::Mono), |f| {
            (f.width, f.height, f.format)
        })
    }

    /// Checks what the protocol cannot carry, before anything is queued.
    pub(crate) fn check(&self) -> Result<(), LinkError> {
        let bad = |what: &str| Err(LinkError::Program(what.to_string()));
        match self {
            Program::Pages { pages, dwell } => {
                let Some(first) = pages.first() else {
                    return bad("no pages");
                };
                if pages.len() > 255 {
                    return bad("more than 255 pages");
                }
                if pages.iter().any(|p| {
                    (p.width, p.height, p.format) != (first.width, first.height, first.format)
                }) {
                    return bad("pages of different sizes");
                }
                if u32::try_from(dwell.as_millis()).is_err() {
                    return bad("dwell too long");
                }
            }
            Program::Strip {
                background,
                window,
                strip,
                direction,
                ..
            } => {
                if !crate::protocol::pixels::rect_fits(window, background.width, background.height)
                {
                    return bad("window outside the picture");
                }
                let (across, length) = match direction {
                    Direction::Left => ((strip.height, window.height), strip.width),
                    Direction::Up => ((strip.width, window.width), strip.height),
                };
                if across.0 != across.1 || strip.format != background.format {
                    return bad("strip does not fit the window");
                }
                if length > u32::from(u16::MAX) {
                    return bad("strip longer than 65535 pixels");
                }
            }
        }
        Ok(())
    }

    /// The PROGRAM body (§1.5) for content id `content`.
    pub(crate) fn body(&self, content: u16, valid_for: u16) -> Result<ProgramBody, BodyError> {
        match self {
            Program::Pages { pages, dwell } => ProgramBody::pages(
                pages,
                u32::try_from(dwell.as_millis()).unwrap_or(u32::MAX),
                content,
                valid_for,
            ),
            Program::Strip {
                background,
                window,
                strip,
                direction,
                speed,
                passes,
            } => Ok(ProgramBody::strip(
                background, *window, strip, *direction, *speed, *passes, content, valid_for,
            )),
        }
    }
}

/// A way to a display. One required method; everything else has a default.
pub trait Link {
    /// Makes `frame` the display's picture, valid for `valid_for` after the board applies it.
    /// Returns at once: the newest frame replaces any frame not yet sent.
    fn show(
        &mut self,
        frame: &Frame,
        valid_for: Duration,
    ) -> impl Future<Output = Result<Delivery, LinkError>> + Send;

    /// Hands the board `program` to play by itself, valid for `valid_for` after it starts.
    /// Returns at once, like `show`, and replaces any frame or program not yet sent. Links
    /// whose boards cannot play locally say `Unsupported`; a serial board whose INFO lacks
    /// the capability refuses it later (see the link's counters).
    fn program(
        &mut self,
        program: &Program,
        valid_for: Duration,
    ) -> impl Future<Output = Result<Delivery, LinkError>> + Send {
        let _ = (program, valid_for);
        std::future::ready(Err(LinkError::Unsupported))
    }

    /// Sets the LEDs' brightness (0 to the board's maximum). Links that cannot say `Unsupported`.
    fn brightness(&mut self, level: u8) -> impl Future<Output = Result<(), LinkError>> + Send {
        let _ = level;
        std::future::ready(Err(LinkError::Unsupported))
    }

    /// Turns the LEDs off or on; off keeps the content and its timer running.
    fn power(&mut self, on: bool) -> impl Future<Output = Result<(), LinkError>> + Send {
        let _ = on;
        std::future::ready(Err(LinkError::Unsupported))
    }

    /// Withdraws the picture: the board shows nothing.
    fn clear(&mut self) -> impl Future<Output = Result<(), LinkError>> + Send {
        std::future::ready(Err(LinkError::Unsupported))
    }
}

/// Brightness and power as the operator wants them; `None`: never set, the board decides.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Settings {
    pub brightness: Option<u8>,
    pub power: Option<bool>,
}

/// A display handle's side of what its board should show: the newest content (`D`, each link
/// its own) and the settings, each a `watch` value that the link's task reads, and the wake-up
/// of that task. Newer content replaces older, so nothing queues (invariant 4). Dropping it
/// closes both channels and then wakes the task, which so learns the display is gone.
#[derive(Debug)]
pub(crate) struct DesiredState<D: Default> {
    content: tokio::sync::watch::Sender<D>,
    settings: tokio::sync::watch::Sender<Settings>,
    wake: Arc<tokio::sync::Notify>,
    generation: u64,
}

impl<D: Default> DesiredState<D> {
    /// The handle's side, and the receivers for the link's task.
    pub(crate) fn new(
        wake: Arc<tokio::sync::Notify>,
    ) -> (
        DesiredState<D>,
        tokio::sync::watch::Receiver<D>,
        tokio::sync::watch::Receiver<Settings>,
    ) {
        let (content, content_rx) = tokio::sync::watch::channel(D::default());
        let (settings, settings_rx) = tokio::sync::watch::channel(Settings::default());
        let state = DesiredState {
            content,
            settings,
            wake,
            generation: 0,
        };
        (state, content_rx, settings_rx)
    }

    /// Makes `make(generation)` the content, for the next generation; returns that generation
    /// and the content it replaced. The caller wakes the task ([`DesiredState::wake`]) once it
    /// has looked at what was replaced.
    pub(crate) fn replace(&mut self, make: impl FnOnce(u64) -> D) -> Result<(u64, D), LinkError> {
        if self.content.is_closed() {
            return Err(LinkError::Closed);
        }
        self.generation += 1;
        let previous = self.content.send_replace(make(self.generation));
        Ok((self.generation, previous))
    }

    pub(crate) fn wake(&self) {
        self.wake.notify_one();
    }

    /// Changes the settings and wakes the task.
    pub(crate) fn setting(&self, change: impl FnOnce(&mut Settings)) -> Result<(), LinkError> {
        if self.settings.is_closed() {
            return Err(LinkError::Closed);
        }
        self.settings.send_modify(change);
        self.wake.notify_one();
        Ok(())
    }

    /// The newest generation asked for.
    pub(crate) fn generation(&self) -> u64 {
        self.generation
    }
}

impl<D: Default> Drop for DesiredState<D> {
    fn drop(&mut self) {
        // The task ends when every display's channels are closed. Close them before waking it:
        // fields are dropped only after `drop` returns, so a wake-up sent first could find them
        // still open, and no second wake-up would come (regression test:
        // dropping_every_display_says_offline_and_ends_the_link).
        drop(std::mem::replace(
            &mut self.content,
            tokio::sync::watch::channel(D::default()).0,
        ));
        drop(std::mem::replace(
            &mut self.settings,
            tokio::sync::watch::channel(Settings::default()).0,
        ));
        self.wake.notify_one();
    }
}

/// What a link has done for one display, shared between its task and its handle.
#[derive(Debug, Default)]
pub struct Counters {
    frames: AtomicU64,
    bytes: AtomicU64,
    retries: AtomicU64,
    errors: AtomicU64,
    last_ack: Mutex<Option<Instant>>,
}

/// A copy of [`Counters`] at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CountersSnapshot {
    /// Bodies (FRAME, RECT) the board acknowledged.
    pub frames: u64,
    /// Bytes written to the line for this display.
    pub bytes: u64,
    /// Requests sent again after a timeout, a NAK or a lost reply.
    pub retries: u64,
    /// Exchanges that failed: no reply after every attempt, or a NAK that ends a transfer.
    pub errors: u64,
    /// When the board last answered.
    pub last_ack: Option<Instant>,
}

impl Counters {
    pub(crate) fn add_frame(&self) {
        self.frames.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn add_bytes(&self, n: usize) {
        self.bytes.fetch_add(n as u64, Ordering::Relaxed);
    }
    pub(crate) fn add_retry(&self) {
        self.retries.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn add_error(&self) {
        self.errors.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn acked(&self, at: Instant) {
        *self
            .last_ack
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(at);
    }

    pub fn snapshot(&self) -> CountersSnapshot {
        CountersSnapshot {
            frames: self.frames.load(Ordering::Relaxed),
            bytes: self.bytes.load(Ordering::Relaxed),
            retries: self.retries.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            last_ack: *self
                .last_ack
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        }
    }
}

/// `valid_for` as the protocol's whole seconds (rounded up, so content never expires early).
pub(crate) fn valid_for_secs(valid_for: Duration) -> Result<u16, LinkError> {
    let secs = valid_for.as_secs() + u64::from(valid_for.subsec_nanos() > 0);
    match u16::try_from(secs) {
        Ok(0) | Err(_) => Err(LinkError::ValidFor(valid_for)),
        Ok(s) => Ok(s),
    }
}

/// Pixels per frame and time per frame of moving text as the board shows it. A controller that
/// plays locally (or a board fed over MQTT) moves a pixel at a time; a board whose frames are
/// streamed over a serial line moves as far as the text travels while one frame is sent.
pub fn pacing(
    profile: &crate::config::model::Profile,
    link: Option<&crate::config::model::Link>,
    speed: f32,
) -> (u32, Duration) {
    let speed = f64::from(speed.max(0.1));
    if let Some(crate::config::model::Link::Serial { baud, .. }) = link
        && !profile.local_scroll
    {
        let bytes = Frame::new(profile.width, profile.height, profile.pixel)
            .data
            .len() as f64;
        // 8N1: ten bits a byte; a few per cent of framing on top (docs/protocol.md).
        let frame_time = bytes * 1.03 * 10.0 / f64::from(*baud);
        let step = (speed * frame_time).round().max(1.0);
        return (step as u32, Duration::from_secs_f64(step / speed));
    }
    // GIF viewers show at most 50 frames a second.
    let delay = (1.0 / speed).max(0.02);
    let step = (speed * delay).round().max(1.0);
    (step as u32, Duration::from_secs_f64(step / speed))
}
