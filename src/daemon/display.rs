//! One display's task: schedule → render → link, and nothing else.
//!
//! Owns a display's link handle and what the display shows now. It asks the schedule what is
//! on, renders it when that changes, hands the board a program (if the board plays by itself)
//! or frames at the pace its link carries, keeps brightness and power as scheduled, and sleeps
//! until the next thing changes: the slot's end, the next frame of a streamed picture, the
//! next minute of a clock, new inputs, or the order to stop. A slow or dead link delays only
//! this task (ARCHITECTURE.md, invariant 4).
//!
//! The schedule is asked with the wall clock, which NTP may step. Sleeps are on tokio's
//! monotonic clock, so one watcher per process compares the two clocks every second and wakes
//! every display task when the wall clock steps ([`clock_steps`]); no sleep lasts longer than
//! [`MAX_SLEEP`] in any case.
//! A step back of up to [`MAX_HOLD`] is waited out ([`StepGuard`]): the schedule stays at the
//! latest time the task already acted on until the wall clock is there again, so no slot is
//! shown, recorded or sent twice and the audit's slots never overlap (as cron does not run a
//! job again after a step back). Meanwhile moving pictures keep moving on the monotonic clock
//! and a clock on the board shows the wall clock. A larger step back is taken as it is, with a
//! warning: a clock that was hours wrong was wrong, and boards must not wait that long.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use tokio::sync::{mpsc, watch};

use super::audit::{AuditEvent, ShownKind};
use super::links::AnyLink;
use super::picture::{self, Picture};
use crate::config::model::{DisplayIdx, Item, Model};
use crate::font::FontChain;
use crate::layout::{Canvas, Content, layout};
use crate::link::LinkError;
use crate::schedule::{Interrupt, Schedule, Slot, What, estimate};

/// Everything a display's task computes from; replaced as a whole on reload or when the
/// interrupts change.
pub struct Inputs {
    pub model: Arc<Model>,
    pub display: DisplayIdx,
    pub interrupts: Arc<Vec<Interrupt>>,
    /// The profile's fonts, shared by every display of the profile.
    pub fonts: Arc<Mutex<FontChain>>,
    /// A touchscreen's typeset glyphs (its pages are set like a document), shared likewise.
    pub touch: Option<Arc<Mutex<crate::font::scalable::CoverageCache>>>,
}

/// How the task is told to end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    Run,
    /// End, leaving the board as it is (shutdown, or the link is rebuilt).
    Leave,
    /// End after withdrawing the picture (the display was removed from the site).
    Withdraw,
}

/// What the display shows, for the status API and the live page.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct DisplayStatus {
    pub id: String,
    pub name: String,
    pub location: Option<String>,
    pub width: u32,
    pub height: u32,
    pub current: Option<Current>,
    /// Counts the changes of `current`; the live page reloads a picture when it moves on.
    pub generation: u64,
    pub brightness: Option<u32>,
    /// The last error from the link or the renderer, if the last attempt failed.
    pub last_error: Option<String>,
    #[serde(skip)]
    pub picture: Option<Arc<Picture>>,
    /// When the picture's elapsed time is zero.
    #[serde(skip)]
    pub origin: Option<DateTime<Utc>>,
    #[serde(skip)]
    pub led_color: Option<crate::config::model::LedColor>,
    /// A touchscreen: its picture is shown as it is, not in LED look.
    pub touchscreen: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Current {
    /// `item`, `interrupt`, `idle` or `off`.
    pub kind: ShownKind,
    pub playlist: Option<String>,
    pub item: Option<String>,
    pub title: String,
    pub since: DateTime<Tz>,
    pub until: DateTime<Tz>,
    /// Why it won: `window`, `default`, `interrupt`, `power-off` or `idle`.
    pub why: &'static str,
    pub moving: bool,
    /// `program` (the board plays it), `frames` (sent frame by frame) or `off`.
    pub delivery: &'static str,
}

/// How late pictures reach their links after a slot boundary: the last few thousand samples of
/// every display, for the status API and `/metrics`.
#[derive(Debug, Default)]
pub struct Lateness {
    samples: Mutex<std::collections::VecDeque<Duration>>,
}

impl Lateness {
    const KEEP: usize = 4096;

    pub fn record(&self, late: Duration) {
        let mut samples = self
            .samples
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if samples.len() == Self::KEEP {
            samples.pop_front();
        }
        samples.push_back(late);
    }

    /// The samples' count and the quantiles asked for (0.5, 0.99, …), in seconds.
    pub fn quantiles(&self, qs: &[f64]) -> (usize, Vec<f64>) {
        let mut sorted: Vec<Duration> = self
            .samples
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .copied()
            .collect();
        sorted.sort_unstable();
        let at = |q: f64| {
            if sorted.is_empty() {
                return 0.0;
            }
            let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
            sorted[i.min(sorted.len() - 1)].as_secs_f64()
        };
        (sorted.len(), qs.iter().map(|&q| at(q)).collect())
    }
}

/// What the task is showing.
struct Showing {
    key: String,
    picture: Arc<Picture>,
    origin: DateTime<Utc>,
    /// The board plays a program; otherwise frames are sent at `step` pixels (or page by page).
    program: bool,
    step: u32,
    /// Rendered for this minute (pictures with a clock).
    minute: Option<i64>,
    /// The last frame handed to a frame-fed link, so a wake-up with nothing new sends nothing.
    sent: Option<crate::raster::frame::Frame>,
}

/// Longest a board is told its content stays valid (the protocol's limit is 65,535 s; a dead
/// daemon's boards go dark after this).
const MAX_VALID: Duration = Duration::from_secs(3600);
/// Added to the time until the next change, so a board never goes dark while waiting for it.
const VALID_GRACE: Duration = Duration::from_secs(60);

/// Longest sleep of the task, should a step of the wall clock go unnoticed.
pub const MAX_SLEEP: Duration = Duration::from_secs(60);
/// How often the watcher compares the wall clock with the monotonic clock, and the difference
/// between their advances that it takes for a step.
const STEP_CHECK: Duration = Duration::from_secs(1);
const STEP_TOLERANCE: Duration = Duration::from_millis(500);

/// The watcher of wall-clock steps: shared by the tasks of a process, started by the first
/// and again if its runtime went away; it ends when no task listens.
static STEPS: Mutex<Option<(watch::Sender<u64>, tokio::task::JoinHandle<()>)>> = Mutex::new(None);

/// A receiver that changes whenever the wall clock steps (forward or back).
pub fn clock_steps() -> watch::Receiver<u64> {
    let mut slot = STEPS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some((steps, watcher)) = slot.as_ref()
        && !watcher.is_finished()
    {
        return steps.subscribe();
    }
    let (steps, receiver) = watch::channel(0);
    let watcher = tokio::spawn(watch_steps(steps.clone()));
    *slot = Some((steps, watcher));
    receiver
}

async fn watch_steps(steps: watch::Sender<u64>) {
    let mut last = (Utc::now(), std::time::Instant::now());
    loop {
        tokio::time::sleep(STEP_CHECK).await;
        if steps.receiver_count() == 0 {
            return;
        }
        let now = (Utc::now(), std::time::Instant::now());
        let mono = now.1.saturating_duration_since(last.1);
        let wall = now.0 - last.0;
        let drift = (wall - chrono::Duration::from_std(mono).unwrap_or_default()).abs();
        if drift.to_std().unwrap_or_default() > STEP_TOLERANCE {
            tracing::info!(step_s = drift.as_seconds_f64(), "the wall clock stepped");
            steps.send_modify(|n| *n = n.wrapping_add(1));
        }
        last = now;
    }
}
/// Longest backward step of the wall clock that is waited out (see the module's documentation).
pub const MAX_HOLD: Duration = Duration::from_secs(3600);

/// The task's view of time across steps of the wall clock.
#[derive(Debug, Default)]
pub struct StepGuard {
    /// The latest schedule time the task acted on.
    high_water: Option<DateTime<Utc>>,
    /// While a backward step is waited out: the held schedule time, and when (on the monotonic
    /// clock) the hold began.
    held: Option<(DateTime<Utc>, std::time::Instant)>,
}

/// Times the task uses in one round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Times {
    /// What the schedule is asked at, and the audit records.
    pub schedule: DateTime<Utc>,
    /// What moving pictures run on: the schedule time, or during a hold the held time plus the
    /// monotonic time since.
    pub picture: DateTime<Utc>,
    /// During a hold: the wall clock's distance behind the schedule time.
    pub behind: Option<Duration>,
}

impl StepGuard {
    /// Reads the times for a round, given the wall clock `wall` (and the monotonic `mono`).
    pub fn read(&mut self, wall: DateTime<Utc>, mono: std::time::Instant) -> Times {
        if let Some(high) = self.high_water
            && wall < high
        {
            let behind = (high - wall).to_std().unwrap_or_default();
            if behind <= MAX_HOLD {
                let (held, since) = *self.held.get_or_insert_with(|| {
                    tracing::warn!(
                        back_s = behind.as_secs_f64(),
                        "the wall clock stepped back: the schedule waits for it"
                    );
                    (high, mono)
                });
                let run = chrono::Duration::from_std(mono.saturating_duration_since(since))
                    .unwrap_or_default();
                return Times {
                    schedule: held,
                    picture: held + run,
                    behind: Some(behind),
                };
            }
            tracing::warn!(
                back_s = behind.as_secs_f64(),
                "the wall clock stepped back by more than the schedule waits for: taken as it is"
            );
        }
        if self.held.take().is_some() {
            tracing::info!("the wall clock caught up with the schedule");
        }
        self.high_water = Some(wall);
        Times {
            schedule: wall,
            picture: wall,
            behind: None,
        }
    }
}

/// Runs one display until told to stop.
pub async fn run(
    mut inputs: watch::Receiver<Arc<Inputs>>,
    mut link: AnyLink,
    status: watch::Sender<DisplayStatus>,
    audit: mpsc::UnboundedSender<AuditEvent>,
    mut stop: watch::Receiver<Stop>,
    events: tokio::sync::broadcast::Sender<String>,
    lateness: Arc<Lateness>,
) -> AnyLink {
    let mut showing: Option<Showing> = None;
    let mut brightness: Option<u32> = None;
    let mut powered_off = false;
    let mut memo: HashMap<(usize, usize), Duration> = HashMap::new();
    // The model the memo was computed for (an address, compared, never dereferenced).
    let mut memo_model: usize = 0;
    let mut reread = true;
    let mut clock = StepGuard::default();
    let mut steps = clock_steps();
    loop {
        let current = inputs.borrow_and_update().clone();
        if memo_model != Arc::as_ptr(&current.model) as usize {
            memo.clear();
            memo_model = Arc::as_ptr(&current.model) as usize;
        }
        let model = &*current.model;
        let idx = current.display;
        let tz = model.site.timezone;
        let wall = Utc::now();
        let times = clock.read(wall, std::time::Instant::now());
        let now_utc = times.schedule;
        let now = now_utc.with_timezone(&tz);
        // A clock drawn on the board shows the wall clock, also while a step back is waited out.
        let wall_local = wall.with_timezone(&tz);
        let (slot, next_change, level) = match plan(&current, now, &mut memo) {
            Ok(planned) => planned,
            Err(why) => {
                note_error(&status, &events, why);
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(60)) => {}
                    _ = inputs.changed() => {}
                    _ = stop.changed() => break,
                }
                continue;
            }
        };
        let key = slot_key(model, &current.interrupts, &slot);
        // A slot that began while this task was running: how late its picture reaches the
        // link is measured (start-up and reloads are not slot boundaries).
        let boundary = (showing.as_ref().is_some_and(|s| s.key != key)
            && now_utc - slot.start.with_timezone(&Utc) < chrono::Duration::seconds(2))
        .then(|| slot.start.with_timezone(&Utc));
        let minute = wall.timestamp() / 60;
        let with_time = picture::shows_time(model, idx, &slot.what);
        let fresh = match &showing {
            None => true,
            Some(s) => {
                s.key != key || reread || (with_time && !s.program && s.minute != Some(minute))
            }
        };
        if fresh {
            let offset = match slot.what {
                What::Item { offset, .. } => offset,
                _ => Duration::ZERO,
            };
            let origin = slot.start.with_timezone(&Utc)
                - chrono::Duration::from_std(offset).unwrap_or_default();
            let rendered = match &current.touch {
                Some(glyphs) => {
                    let mut glyphs = glyphs
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                    Ok(picture::render_touchscreen(
                        model,
                        idx,
                        &slot.what,
                        &current.interrupts,
                        wall_local,
                        &mut glyphs,
                    ))
                }
                None => {
                    let mut fonts = current
                        .fonts
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                    picture::render(
                        model,
                        idx,
                        &slot.what,
                        &current.interrupts,
                        wall_local,
                        &mut fonts,
                    )
                }
            };
            match rendered {
                Ok(pic) => {
                    // The same picture goes on: the same slot drawn again, or a playlist of one
                    // item starting it over — pages loop on the board by themselves, so
                    // nothing is sent (moving text is sent again: its passes start over).
                    let same = showing.as_ref().is_some_and(|s| {
                        *s.picture == pic
                            && (s.key == key
                                || (same_item(&s.key, &key)
                                    && matches!(pic, Picture::Pages { .. })))
                    });
                    if !same {
                        let delivered = deliver(
                            &mut link,
                            &pic,
                            model,
                            idx,
                            origin,
                            times.picture,
                            next_change,
                            &mut powered_off,
                        )
                        .await;
                        let (program, mut error) = match delivered {
                            Ok(program) => (program, None),
                            Err(e) => (false, Some(e.to_string())),
                        };
                        // A frame-fed board gets its first frame before the status says what
                        // it shows, so the two never disagree.
                        let mut sent = None;
                        if !program && !powered_off {
                            let elapsed = (times.picture - origin).to_std().unwrap_or_default();
                            if let Some(frame) = pic.frame_at(elapsed) {
                                let valid = valid_for(now_utc, next_change, pic.moves());
                                match link.show(&frame, valid).await {
                                    Ok(_) => sent = Some(frame),
                                    Err(LinkError::Unsupported) => {}
                                    Err(e) => error = Some(e.to_string()),
                                }
                            }
                        }
                        let step = step_for(model, idx, &pic);
                        let pic = Arc::new(pic);
                        let changed_key = showing.as_ref().is_none_or(|s| s.key != key);
                        if changed_key {
                            let _ = audit.send(AuditEvent::started(
                                model,
                                idx,
                                &slot,
                                &current.interrupts,
                                now_utc,
                            ));
                        }
                        status.send_modify(|st| {
                            st.current =
                                Some(describe(model, &slot, &current.interrupts, &pic, program));
                            st.generation += 1;
                            st.picture = Some(pic.clone());
                            st.origin = Some(origin);
                            st.last_error = error;
                        });
                        let _ = events.send(status.borrow().id.clone());
                        showing = Some(Showing {
                            key: key.clone(),
                            picture: pic,
                            origin,
                            program,
                            step,
                            minute: with_time.then_some(minute),
                            sent,
                        });
                    } else if let Some(s) = showing.as_mut() {
                        s.minute = with_time.then_some(minute);
                        s.key = key.clone();
                        // Same picture, maybe a new end: keep the status's until current.
                        status.send_if_modified(|st| match st.current.as_mut() {
                            Some(c) if c.until != slot.end => {
                                c.until = slot.end;
                                true
                            }
                            _ => false,
                        });
                    }
                }
                Err(error) => note_error(&status, &events, error.to_string()),
            }
            reread = false;
        }
        // Frame-fed links: send the frame due now, if it is not on the board yet.
        let mut next_frame = None;
        if let Some(s) = showing.as_mut()
            && !s.program
            && !powered_off
        {
            let elapsed = (times.picture - s.origin).to_std().unwrap_or_default();
            if let Some(frame) = s.picture.frame_at(elapsed)
                && s.sent.as_ref() != Some(&frame)
            {
                let valid = valid_for(now_utc, next_change, s.picture.moves());
                match link.show(&frame, valid).await {
                    Ok(_) => s.sent = Some(frame),
                    Err(LinkError::Unsupported) => {}
                    Err(e) => note_error(&status, &events, e.to_string()),
                }
            }
            next_frame = s
                .picture
                .next_frame_after(elapsed, s.step)
                .and_then(|d| chrono::Duration::from_std(d).ok())
                .map(|d| s.origin + d);
        }
        if let Some(start) = boundary {
            lateness.record((Utc::now() - start).to_std().unwrap_or_default());
        }
        if level != brightness {
            if let Some(l) = level {
                let _ = link.brightness(u8::try_from(l).unwrap_or(u8::MAX)).await;
            }
            brightness = level;
            status.send_modify(|st| st.brightness = level);
        }
        // Sleep until the next thing that changes: the slot's end (or, while a step back is
        // waited out, the wall clock's return), the next frame, the next minute of a clock;
        // never longer than MAX_SLEEP.
        let wall_now = Utc::now();
        let picture_now = times.picture + (wall_now - wall);
        let until =
            |at: DateTime<Utc>, from: DateTime<Utc>| (at - from).to_std().unwrap_or_default();
        let mut sleep = match times.behind {
            None => until(next_change.with_timezone(&Utc), wall_now),
            Some(_) => until(now_utc, wall_now),
        };
        if let Some(at) = next_frame {
            sleep = sleep.min(until(at, picture_now));
        }
        if with_time && let Some(next_minute) = DateTime::from_timestamp((minute + 1) * 60, 0) {
            sleep = sleep.min(until(next_minute, wall_now));
        }
        let sleep = sleep.min(MAX_SLEEP);
        tokio::select! {
            _ = tokio::time::sleep(sleep) => {}
            changed = inputs.changed() => {
                if changed.is_err() { break; }
                reread = true;
            }
            _ = stop.changed() => {}
            stepped = steps.changed() => {
                if stepped.is_err() {
                    steps = clock_steps();
                }
            }
        }
        let order = *stop.borrow();
        match order {
            Stop::Run => {}
            Stop::Leave => break,
            Stop::Withdraw => {
                let _ = link.clear().await;
                link.settle(Duration::from_secs(2)).await;
                break;
            }
        }
    }
    let _ = audit.send(AuditEvent::Ended {
        display: status.borrow().id.clone(),
        at: Utc::now(),
    });
    link
}

fn note_error(
    status: &watch::Sender<DisplayStatus>,
    events: &tokio::sync::broadcast::Sender<String>,
    why: String,
) {
    let id = status.borrow().id.clone();
    tracing::warn!(display = %id, error = %why, "display");
    status.send_modify(|st| st.last_error = Some(why));
    let _ = events.send(id);
}

/// The schedule's answer now: the slot, when anything next changes, the brightness.
fn plan(
    inputs: &Inputs,
    now: DateTime<Tz>,
    memo: &mut HashMap<(usize, usize), Duration>,
) -> Result<(Slot, DateTime<Tz>, Option<u32>), String> {
    let model = &*inputs.model;
    let schedule = Schedule::new(model).map_err(|e| e.to_string())?;
    let cell = RefCell::new(std::mem::take(memo));
    let durations = |item: &Item, display: DisplayIdx| -> Duration {
        let key = item_key(model, item);
        if let Some(d) = cell.borrow().get(&key) {
            return *d;
        }
        let measured = {
            let mut fonts = inputs
                .fonts
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let profile = model.profile_of(&model.displays[display]);
            layout(&Content::of(item), &Canvas::of(profile), &mut *fonts)
                .ok()
                .map(|laid| laid.duration(&item.show))
        };
        let d = measured.unwrap_or_else(|| estimate::duration(model, item, display));
        cell.borrow_mut().insert(key, d);
        d
    };
    let result = (|| {
        let slot = schedule
            .now(&inputs.interrupts, inputs.display, now, &durations)
            .map_err(|e| e.to_string())?;
        let next = schedule
            .next_change(&inputs.interrupts, inputs.display, now, &durations)
            .map_err(|e| e.to_string())?;
        Ok((slot, next, schedule.brightness_at(inputs.display, now)))
    })();
    *memo = cell.into_inner();
    result
}

/// An item's place in the model (items have ids, but the key must be cheap).
fn item_key(model: &Model, item: &Item) -> (usize, usize) {
    for (p, playlist) in model.playlists.iter().enumerate() {
        if let Some(i) = playlist.items.iter().position(|x| std::ptr::eq(x, item)) {
            return (p, i);
        }
    }
    (usize::MAX, usize::MAX)
}

/// Whether two slot keys are the same item (at different on-air times).
fn same_item(a: &str, b: &str) -> bool {
    a.starts_with("item|")
        && a.rsplit_once('|').map(|(item, _)| item) == b.rsplit_once('|').map(|(item, _)| item)
}

/// What makes two slots "the same showing": the same item started at the same on-air time,
/// the same interrupt, idle, or off.
fn slot_key(model: &Model, interrupts: &[Interrupt], slot: &Slot) -> String {
    match slot.what {
        What::Item {
            playlist,
            item,
            offset,
            ..
        } => {
            let p = &model.playlists[playlist];
            let origin = slot.start.timestamp_millis()
                - i64::try_from(offset.as_millis()).unwrap_or(i64::MAX);
            format!("item|{}|{}|{origin}", p.id, p.items[item].id)
        }
        What::Interrupt(i) => format!(
            "interrupt|{}",
            interrupts.get(i).map_or("", |x| x.id.as_str())
        ),
        What::Idle => "idle".to_owned(),
        What::Off => "off".to_owned(),
    }
}

fn describe(
    model: &Model,
    slot: &Slot,
    interrupts: &[Interrupt],
    picture: &Picture,
    program: bool,
) -> Current {
    let super::audit::Shown {
        kind,
        playlist,
        item,
        title,
    } = super::audit::Shown::of(model, &slot.what, interrupts);
    let why = match slot.why {
        crate::schedule::Why::Interrupt => "interrupt",
        crate::schedule::Why::PowerOff { .. } => "power-off",
        crate::schedule::Why::Window { .. } => "window",
        crate::schedule::Why::Default { .. } => "default",
        crate::schedule::Why::Idle(_) => "idle",
    };
    Current {
        kind,
        playlist,
        item,
        title,
        since: slot.start,
        until: slot.end,
        why,
        moving: picture.moves(),
        delivery: match (picture, program) {
            (Picture::Dark, _) => "off",
            (_, true) => "program",
            (_, false) => "frames",
        },
    }
}

/// How long content handed over now stays valid on the board.
fn valid_for(now: DateTime<Utc>, next_change: DateTime<Tz>, moves: bool) -> Duration {
    let until = (next_change.with_timezone(&Utc) - now)
        .to_std()
        .unwrap_or_default();
    // A frame of moving text is replaced within a second or two; a still one waits for the
    // slot's end. Either way the grace covers a late wake-up.
    let base = if moves { Duration::ZERO } else { until };
    (base + VALID_GRACE).min(MAX_VALID)
}

/// Pixels per frame when a moving picture is fed frame by frame over this display's link.
fn step_for(model: &Model, idx: DisplayIdx, picture: &Picture) -> u32 {
    let Picture::Moving { speed, .. } = picture else {
        return 1;
    };
    let Some(d) = model.displays.get(idx) else {
        return 1;
    };
    let link = model.effective_link(d);
    crate::link::pacing(model.profile_of(d), Some(&link), *speed).0
}

/// Hands a new picture to the link. Returns whether the board plays it by itself.
#[allow(clippy::too_many_arguments)]
async fn deliver(
    link: &mut AnyLink,
    picture: &Picture,
    model: &Model,
    idx: DisplayIdx,
    origin: DateTime<Utc>,
    now: DateTime<Utc>,
    next_change: DateTime<Tz>,
    powered_off: &mut bool,
) -> Result<bool, LinkError> {
    if matches!(picture, Picture::Dark) {
        *powered_off = true;
        // Off keeps nothing on the board: power off where the board can, else blank it.
        return match link.power(false).await {
            Ok(()) => Ok(false),
            Err(LinkError::Unsupported) => link.clear().await.map(|()| false),
            Err(e) => Err(e),
        };
    }
    if *powered_off {
        *powered_off = false;
        match link.power(true).await {
            Ok(()) | Err(LinkError::Unsupported) => {}
            Err(e) => return Err(e),
        }
    }
    let elapsed = (now - origin).to_std().unwrap_or_default();
    let local = model
        .displays
        .get(idx)
        .map(|d| model.profile_of(d))
        .is_some_and(|p| match picture {
            Picture::Pages { .. } => p.local_pages,
            Picture::Moving { .. } => p.local_scroll,
            Picture::Dark => false,
        });
    let simulated = matches!(link, AnyLink::Simulated(_));
    if picture.moves()
        && (local || simulated)
        && let Some(program) = picture.program(elapsed)
    {
        let valid = valid_for(now, next_change, false);
        match link.program(&program, valid).await {
            Ok(_) => return Ok(true),
            // The board cannot play it: fall back to frames.
            Err(LinkError::Unsupported | LinkError::Program(_)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_step_back_is_waited_out_within_an_hour_and_taken_beyond() {
        let t = DateTime::parse_from_rfc3339("2026-12-01T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let s = |n: i64| chrono::Duration::seconds(n);
        let mono = std::time::Instant::now();
        let at = |n: u64| mono + Duration::from_secs(n);
        let mut guard = StepGuard::default();
        let first = guard.read(t, at(0));
        assert_eq!((first.schedule, first.behind), (t, None));
        // Ten minutes back: the schedule stays at t; pictures run on.
        let held = guard.read(t - s(600) + s(1), at(1));
        assert_eq!(held.schedule, t);
        assert_eq!(held.picture, t);
        assert_eq!(held.behind, Some(Duration::from_secs(599)));
        let later = guard.read(t - s(600) + s(5), at(5));
        assert_eq!((later.schedule, later.picture), (t, t + s(4)));
        // The wall clock is back at t: on with it.
        let caught = guard.read(t + s(1), at(606));
        assert_eq!((caught.schedule, caught.behind), (t + s(1), None));
        // An hour forward is simply the new time.
        let forward = guard.read(t + s(3601), at(607));
        assert_eq!(forward.schedule, t + s(3601));
        // More than an hour back is taken as it is, and becomes the new mark.
        let far = guard.read(t - s(7200), at(608));
        assert_eq!((far.schedule, far.behind), (t - s(7200), None));
        assert_eq!(guard.read(t - s(7199), at(609)).schedule, t - s(7199));
    }
}
