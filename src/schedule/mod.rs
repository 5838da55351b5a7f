//! The schedule: what each display shows at any instant, why, and until when.
//!
//! This module owns the choice between layers (emergency interrupt, power-off, on-air playlist
//! windows, the default playlist, the idle screen), the rotation of a playlist's items, and the
//! brightness and power schedules. It is pure: the model, the interrupts in force, the item
//! durations and every instant are arguments. It reads no clock, no file and no font; it must
//! not draw (raster) nor talk to boards (link). `docs/scheduling.md` states the rules.
//!
//! The whole answer is a function of its arguments, so the daemon, `gongkai plan` and the tests
//! compute the same thing: a daemon started at 19:30 knows it is inside prime time, and a
//! playlist resumes after an interrupt where it was, because its place in the rotation is
//! computed from its on-air time since its period opened.

pub mod cron;
pub mod estimate;
mod rotation;
#[cfg(test)]
mod tests;

use std::time::Duration;

use chrono::DateTime;
use chrono_tz::Tz;

use crate::config::model::{DisplayIdx, Item, Model, Window};
use cron::{CronSpec, CronSpecError, Ms, local_date, start_of_day, to_local};

/// How long an item plays on a display (layout's business: pages × dwell, or strip ÷ speed).
pub type Durations<'a> = &'a dyn Fn(&Item, DisplayIdx) -> Duration;

/// Shortest time an item is given, so that a zero estimate cannot stall the rotation.
pub const MIN_ITEM: Duration = Duration::from_secs(1);
/// How far `next_change` looks ahead before it answers "nothing changes before then".
pub const HORIZON: Duration = Duration::from_secs(8 * 86_400);
/// How far back a brightness point is looked for.
const BRIGHTNESS_LOOKBACK_DAYS: u32 = 400;
const DAY_MS: Ms = 86_400_000;

/// An emergency message the daemon keeps, in force from `start` until `end`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interrupt {
    pub id: String,
    /// The displays it takes over; empty means every display.
    pub displays: Vec<DisplayIdx>,
    pub start: DateTime<Tz>,
    pub end: DateTime<Tz>,
    /// What the boards show.
    pub text: String,
}

/// What a display shows during a slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum What {
    /// `model.playlists[playlist].items[item]`, starting `offset` into it (an item resumed
    /// after a pre-emption starts where it stopped).
    Item {
        playlist: usize,
        item: usize,
        offset: Duration,
        /// Shown out of its turn because of its `at_least_every`.
        out_of_turn: bool,
    },
    /// `interrupts[index]`.
    Interrupt(usize),
    /// The idle screen: site name, date and time.
    Idle,
    /// The board is switched off.
    Off,
}

/// Why that won.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    /// An emergency interrupt is in force (the most recently started one wins).
    Interrupt,
    /// Inside the display's power-off window `window`.
    PowerOff { window: usize },
    /// The playlist's window `window` is on air; its period opened at `opened`. `over` is the
    /// playlist that would show otherwise.
    Window {
        window: usize,
        opened: DateTime<Tz>,
        over: Option<usize>,
    },
    /// The display's default playlist (one without windows). `over` is the next default.
    Default { over: Option<usize> },
    /// Nothing else: no playlist targets the display, none is on air, or none has an item
    /// inside its validity.
    Idle(IdleCause),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdleCause {
    NoPlaylist,
    NothingOnAir,
    NothingValid,
}

/// One stretch of constant content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slot {
    pub start: DateTime<Tz>,
    pub end: DateTime<Tz>,
    pub what: What,
    pub why: Why,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    #[error("no display with index {0}")]
    NoDisplay(DisplayIdx),
    #[error(transparent)]
    Cron(#[from] CronSpecError),
}

/// A window's crontab, read once.
#[derive(Debug, Clone)]
struct CompiledWindow {
    spec: CronSpec,
    duration: Ms,
    from: Option<Ms>,
    until: Option<Ms>,
}

impl CompiledWindow {
    fn new(window: &Window) -> Result<CompiledWindow, CronSpecError> {
        Ok(CompiledWindow {
            spec: CronSpec::parse(&window.cron_text)?,
            duration: duration_ms(window.duration),
            from: window.dates.from.map(|t| t.timestamp_millis()),
            until: window.dates.until.map(|t| t.timestamp_millis()),
        })
    }
}

/// The model's crontabs read once, for many questions about it.
#[derive(Debug, Clone)]
pub struct Schedule<'m> {
    model: &'m Model,
    tz: Tz,
    /// Per playlist, its windows.
    windows: Vec<Vec<CompiledWindow>>,
    /// Per display, its power-off windows and brightness points.
    power_off: Vec<Vec<CompiledWindow>>,
    brightness: Vec<Vec<(CronSpec, u32)>>,
}

impl<'m> Schedule<'m> {
    pub fn new(model: &'m Model) -> Result<Schedule<'m>, ScheduleError> {
        let windows = model
            .playlists
            .iter()
            .map(|p| p.windows.iter().map(CompiledWindow::new).collect())
            .collect::<Result<_, _>>()?;
        let power_off = model
            .displays
            .iter()
            .map(|d| d.power_off.iter().map(CompiledWindow::new).collect())
            .collect::<Result<_, _>>()?;
        let brightness = model
            .displays
            .iter()
            .map(|d| {
                d.brightness
                    .iter()
                    .map(|b| Ok((CronSpec::parse(&b.cron_text)?, b.level)))
                    .collect()
            })
            .collect::<Result<_, CronSpecError>>()?;
        Ok(Schedule {
            model,
            tz: model.site.timezone,
            windows,
            power_off,
            brightness,
        })
    }

    pub fn model(&self) -> &'m Model {
        self.model
    }

    /// What `display` shows from `from` until `to`, slot by slot. The first slot starts at
    /// `from` and the last ends at `to` (cut there; `offset` says how far into its item).
    pub fn timeline(
        &self,
        interrupts: &[Interrupt],
        display: DisplayIdx,
        from: DateTime<Tz>,
        to: DateTime<Tz>,
        durations: Durations<'_>,
    ) -> Result<Vec<Slot>, ScheduleError> {
        let raw = self.compute(
            interrupts,
            display,
            from.timestamp_millis(),
            to.timestamp_millis(),
            durations,
            usize::MAX,
        )?;
        Ok(raw.into_iter().map(|s| s.into_slot(self.tz)).collect())
    }

    /// What `display` shows at `at`, and why.
    pub fn now(
        &self,
        interrupts: &[Interrupt],
        display: DisplayIdx,
        at: DateTime<Tz>,
        durations: Durations<'_>,
    ) -> Result<Slot, ScheduleError> {
        let start = at.timestamp_millis();
        let raw = self.compute(
            interrupts,
            display,
            start,
            start + duration_ms(HORIZON),
            durations,
            1,
        )?;
        raw.into_iter()
            .next()
            .map(|s| s.into_slot(self.tz))
            .ok_or(ScheduleError::NoDisplay(display))
    }

    /// The first instant after `at` when the display's picture or brightness changes: the
    /// daemon sleeps until then. At most [`HORIZON`] ahead.
    pub fn next_change(
        &self,
        interrupts: &[Interrupt],
        display: DisplayIdx,
        at: DateTime<Tz>,
        durations: Durations<'_>,
    ) -> Result<DateTime<Tz>, ScheduleError> {
        let slot = self.now(interrupts, display, at, durations)?;
        let start = at.timestamp_millis();
        let brightness = self.brightness[display]
            .iter()
            .filter_map(|(spec, _)| spec.next_after(self.tz, start, 366))
            .min();
        let end = slot.end.timestamp_millis();
        Ok(to_local(self.tz, brightness.map_or(end, |b| b.min(end))))
    }

    /// The display's brightness at `at`: the level of the brightness point that fired last,
    /// or the top of the profile's range when none has.
    pub fn brightness_at(&self, display: DisplayIdx, at: DateTime<Tz>) -> Option<u32> {
        let d = self.model.displays.get(display)?;
        let at = at.timestamp_millis();
        let latest = self.brightness[display]
            .iter()
            .filter_map(|(spec, level)| {
                spec.last_at_or_before(self.tz, at, BRIGHTNESS_LOOKBACK_DAYS)
                    .map(|t| (t, *level))
            })
            // The later point wins; at the same instant, the later line of the file.
            .max_by_key(|(t, _)| *t);
        Some(latest.map_or(*self.model.profile_of(d).brightness.end(), |(_, l)| l))
    }

    /// Every change of brightness in `[from, to)`, with the level from then on.
    pub fn brightness_changes(
        &self,
        display: DisplayIdx,
        from: DateTime<Tz>,
        to: DateTime<Tz>,
    ) -> Vec<(DateTime<Tz>, u32)> {
        let Some(points) = self.brightness.get(display) else {
            return Vec::new();
        };
        let mut changes: Vec<(Ms, usize, u32)> = points
            .iter()
            .enumerate()
            .flat_map(|(i, (spec, level))| {
                spec.fires_between(self.tz, from.timestamp_millis(), to.timestamp_millis())
                    .into_iter()
                    .map(move |t| (t, i, *level))
            })
            .collect();
        changes.sort_unstable();
        let mut out: Vec<(DateTime<Tz>, u32)> = Vec::new();
        let mut level = self.brightness_at(display, from);
        for (t, _, l) in changes {
            if level != Some(l) {
                out.push((to_local(self.tz, t), l));
                level = Some(l);
            }
        }
        out
    }

    fn compute(
        &self,
        interrupts: &[Interrupt],
        display: DisplayIdx,
        from: Ms,
        to: Ms,
        durations: Durations<'_>,
        max_slots: usize,
    ) -> Result<Vec<RawSlot>, ScheduleError> {
        if display >= self.model.displays.len() {
            return Err(ScheduleError::NoDisplay(display));
        }
        if from >= to {
            return Ok(Vec::new());
        }
        let layers = self.layers(interrupts, display, from, to);
        let mut out = Vec::new();
        rotation::run(
            self, &layers, display, from, to, durations, max_slots, &mut out,
        );
        Ok(out)
    }

    /// Splits `[origin, to)` into segments with one winner each.
    fn layers(&self, interrupts: &[Interrupt], display: DisplayIdx, from: Ms, to: Ms) -> Layers {
        let tz = self.tz;
        let model = self.model;
        let candidates: Vec<usize> = model
            .playlists
            .iter()
            .enumerate()
            .filter(|(_, p)| p.targets.contains(&display))
            .map(|(i, _)| i)
            .collect();
        let longest = candidates
            .iter()
            .flat_map(|&p| &self.windows[p])
            .chain(&self.power_off[display])
            .map(|w| w.duration)
            .max()
            .unwrap_or(0);
        // Far enough back that a period opened before it would restart at a midnight anyway
        // (see `period_start`), so the answer does not depend on `from`.
        let origin = from - longest - 3 * DAY_MS;

        let mut points: Vec<Ms> = vec![origin, to];
        let mut midnights = Vec::new();
        let mut date = local_date(tz, origin);
        while date <= local_date(tz, to) {
            midnights.push(start_of_day(tz, date));
            date += chrono::Duration::days(1);
        }
        points.extend(midnights.iter().copied());

        let windowed: Vec<(usize, Vec<Interval>)> = candidates
            .iter()
            .filter(|&&p| !self.windows[p].is_empty())
            .map(|&p| (p, on_air(tz, &self.windows[p], origin, to)))
            .collect();
        for (_, intervals) in &windowed {
            points.extend(intervals.iter().flat_map(|i| [i.start, i.end]));
        }
        let power = on_air(tz, &self.power_off[display], origin, to);
        points.extend(power.iter().flat_map(|i| [i.start, i.end]));
        let interrupts: Vec<(usize, Ms, Ms)> = interrupts
            .iter()
            .enumerate()
            .filter(|(_, i)| i.displays.is_empty() || i.displays.contains(&display))
            .map(|(n, i)| (n, i.start.timestamp_millis(), i.end.timestamp_millis()))
            .filter(|(_, s, e)| s < e && *e > origin && *s < to)
            .collect();
        points.extend(interrupts.iter().flat_map(|(_, s, e)| [*s, *e]));
        for &p in &candidates {
            for item in &model.playlists[p].items {
                points.extend(item.valid.from.iter().map(|t| t.timestamp_millis()));
                points.extend(item.valid.until.iter().map(|t| t.timestamp_millis()));
            }
        }
        points.retain(|t| (origin..=to).contains(t));
        points.sort_unstable();
        points.dedup();

        let defaults: Vec<usize> = candidates
            .iter()
            .copied()
            .filter(|&p| self.windows[p].is_empty())
            .collect();
        let mut segments = Vec::with_capacity(points.len());
        for pair in points.windows(2) {
            let (start, end) = (pair[0], pair[1]);
            let winner = self.winner(
                start,
                &candidates,
                &windowed,
                &defaults,
                &power,
                &interrupts,
                &midnights,
            );
            segments.push(Segment { start, end, winner });
        }
        Layers { segments }
    }

    #[allow(clippy::too_many_arguments)]
    fn winner(
        &self,
        at: Ms,
        candidates: &[usize],
        on_air: &[(usize, Vec<Interval>)],
        defaults: &[usize],
        power: &[Interval],
        interrupts: &[(usize, Ms, Ms)],
        midnights: &[Ms],
    ) -> Winner {
        // The most recently started interrupt wins; at the same start, the first given.
        if let Some((n, _, _)) = interrupts
            .iter()
            .filter(|(_, s, e)| (*s..*e).contains(&at))
            .min_by_key(|(n, s, _)| (std::cmp::Reverse(*s), *n))
        {
            return Winner::Interrupt(*n);
        }
        if let Some(interval) = covering(power, at) {
            return Winner::Off(interval.window);
        }
        let has_valid = |p: usize| {
            self.model.playlists[p]
                .items
                .iter()
                .any(|i| valid_at(i, at))
        };
        let rank = |p: &usize| (std::cmp::Reverse(self.model.playlists[*p].priority), *p);
        let mut live: Vec<(usize, Interval)> = on_air
            .iter()
            .filter_map(|(p, intervals)| covering(intervals, at).map(|i| (*p, *i)))
            .filter(|(p, _)| has_valid(*p))
            .collect();
        live.sort_by_key(|(p, _)| rank(p));
        let mut fallback: Vec<usize> = defaults.iter().copied().filter(|p| has_valid(*p)).collect();
        fallback.sort_by_key(rank);
        let last_midnight = midnights.iter().copied().rfind(|m| *m <= at).unwrap_or(at);
        if let Some((p, interval)) = live.first() {
            let over = live.get(1).map(|(p, _)| *p).or(fallback.first().copied());
            return Winner::Playlist {
                playlist: *p,
                period: period_start(self.tz, interval.start, at, last_midnight),
                window: Some((interval.window, interval.start)),
                over,
            };
        }
        if let Some(p) = fallback.first() {
            return Winner::Playlist {
                playlist: *p,
                period: last_midnight,
                window: None,
                over: fallback.get(1).copied(),
            };
        }
        let cause = if candidates.is_empty() {
            IdleCause::NoPlaylist
        } else if on_air.iter().any(|(_, i)| covering(i, at).is_some()) || !defaults.is_empty() {
            IdleCause::NothingValid
        } else {
            IdleCause::NothingOnAir
        };
        Winner::Idle(cause)
    }
}

/// The free-function form of [`Schedule::timeline`], for a single question.
pub fn timeline(
    model: &Model,
    interrupts: &[Interrupt],
    display: DisplayIdx,
    from: DateTime<Tz>,
    to: DateTime<Tz>,
    durations: Durations<'_>,
) -> Result<Vec<Slot>, ScheduleError> {
    Schedule::new(model)?.timeline(interrupts, display, from, to, durations)
}

/// A playlist's period opens when its on-air stretch opens; a stretch that has lasted a day
/// restarts its rotation at each local midnight from the first one at least 24 h after it
/// opened (so it never depends on how far back one looks). Default playlists use the day.
fn period_start(tz: Tz, opened: Ms, at: Ms, last_midnight: Ms) -> Ms {
    let first_restart = start_of_day(tz, local_date(tz, opened + DAY_MS));
    let first_restart = if first_restart < opened + DAY_MS {
        start_of_day(
            tz,
            local_date(tz, opened + DAY_MS) + chrono::Duration::days(1),
        )
    } else {
        first_restart
    };
    if at < first_restart {
        opened
    } else {
        last_midnight
    }
}

fn valid_at(item: &Item, at: Ms) -> bool {
    item.valid.from.is_none_or(|f| f.timestamp_millis() <= at)
        && item.valid.until.is_none_or(|u| at < u.timestamp_millis())
}

fn duration_ms(d: Duration) -> Ms {
    Ms::try_from(d.as_millis()).unwrap_or(Ms::MAX / 4)
}

/// A stretch of on-air time, and the window whose fire opened it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Interval {
    start: Ms,
    end: Ms,
    window: usize,
}

fn covering(intervals: &[Interval], at: Ms) -> Option<&Interval> {
    let index = intervals.partition_point(|i| i.end <= at);
    intervals.get(index).filter(|i| i.start <= at)
}

/// The union of a set of windows' occurrences, clipped to their dates and to `[origin, to)`,
/// as sorted disjoint intervals (touching occurrences merge: the rotation goes on).
fn on_air(tz: Tz, windows: &[CompiledWindow], origin: Ms, to: Ms) -> Vec<Interval> {
    let mut all = Vec::new();
    for (index, w) in windows.iter().enumerate() {
        for fire in w.spec.fires_between(tz, origin - w.duration, to) {
            let start = fire.max(w.from.unwrap_or(Ms::MIN)).max(origin);
            let end = (fire + w.duration).min(w.until.unwrap_or(Ms::MAX)).min(to);
            if start < end {
                all.push(Interval {
                    start,
                    end,
                    window: index,
                });
            }
        }
    }
    all.sort_by_key(|i| (i.start, i.window));
    let mut merged: Vec<Interval> = Vec::with_capacity(all.len());
    for interval in all {
        match merged.last_mut() {
            Some(last) if interval.start <= last.end => last.end = last.end.max(interval.end),
            _ => merged.push(interval),
        }
    }
    merged
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Winner {
    Interrupt(usize),
    Off(usize),
    Playlist {
        playlist: usize,
        /// When its rotation's period opened.
        period: Ms,
        /// The window and when its on-air stretch opened; `None` for a default playlist.
        window: Option<(usize, Ms)>,
        over: Option<usize>,
    },
    Idle(IdleCause),
}

#[derive(Debug, Clone, Copy)]
struct Segment {
    start: Ms,
    end: Ms,
    winner: Winner,
}

struct Layers {
    segments: Vec<Segment>,
}

/// A slot before its instants are put in the site's zone.
#[derive(Debug, Clone, Copy, PartialEq)]
struct RawSlot {
    start: Ms,
    end: Ms,
    what: What,
    why: RawWhy,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum RawWhy {
    Interrupt,
    PowerOff(usize),
    Window {
        window: usize,
        opened: Ms,
        over: Option<usize>,
    },
    Default {
        over: Option<usize>,
    },
    Idle(IdleCause),
}

impl RawSlot {
    fn into_slot(self, tz: Tz) -> Slot {
        Slot {
            start: to_local(tz, self.start),
            end: to_local(tz, self.end),
            what: self.what,
            why: match self.why {
                RawWhy::Interrupt => Why::Interrupt,
                RawWhy::PowerOff(window) => Why::PowerOff { window },
                RawWhy::Window {
                    window,
                    opened,
                    over,
                } => Why::Window {
                    window,
                    opened: to_local(tz, opened),
                    over,
                },
                RawWhy::Default { over } => Why::Default { over },
                RawWhy::Idle(cause) => Why::Idle(cause),
            },
        }
    }
}
