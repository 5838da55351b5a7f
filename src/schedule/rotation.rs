//! A playlist's rotation: which item plays when, given the stretches in which the playlist
//! holds the display.
//!
//! The place in the rotation is a function of the playlist's on-air time since its period
//! opened, and nothing else: pre-empted time does not count, so a playlist resumes where it
//! was, and a restarted daemon computes the same place. The walk starts at the period's
//! opening (up to a few days before the first instant asked about) and skips whole cycles
//! while nothing is asked about them, so catching up costs little.

use super::cron::Ms;
use super::{Durations, MIN_ITEM, RawSlot, RawWhy, Schedule, What, Winner, duration_ms, valid_at};
use crate::config::model::{DisplayIdx, Item};

/// What a playlist's items need for the walk: their durations on this display and their
/// `at_least_every`, read once per question.
struct Items<'m> {
    items: &'m [Item],
    durations: Vec<Ms>,
    every: Vec<Option<Ms>>,
    has_every: bool,
}

/// Where a playlist is in its rotation.
struct Rotation {
    period: Ms,
    /// The last item shown in its turn.
    cursor: Option<usize>,
    current: Option<usize>,
    out_of_turn: bool,
    /// How far into `current`.
    into: Ms,
    /// On-air time since the period opened.
    clock: Ms,
    /// On-air clock when each item last started.
    last_start: Vec<Ms>,
}

impl Rotation {
    fn new(period: Ms, items: usize) -> Rotation {
        Rotation {
            period,
            cursor: None,
            current: None,
            out_of_turn: false,
            into: 0,
            clock: 0,
            last_start: vec![0; items],
        }
    }

    /// Moves on to the next item at `at`: the next valid one in order, unless an item with
    /// `at_least_every` would otherwise wait longer than that.
    fn advance(&mut self, items: &Items<'_>, at: Ms) {
        let n = items.items.len();
        let first = self.cursor.map_or(0, |c| c + 1);
        let Some(regular) = (0..n)
            .map(|k| (first + k) % n)
            .find(|&i| valid_at(&items.items[i], at))
        else {
            self.current = None;
            return;
        };
        if items.has_every {
            let after_next = self.clock + items.durations[regular];
            let due = (0..n)
                .filter(|&x| x != regular && valid_at(&items.items[x], at))
                .filter_map(|x| items.every[x].map(|every| (x, every)))
                .filter(|&(x, every)| after_next - self.last_start[x] > every)
                .max_by_key(|&(x, every)| {
                    (
                        self.clock - self.last_start[x] - every,
                        std::cmp::Reverse(x),
                    )
                });
            if let Some((x, _)) = due {
                self.start(x, true);
                return;
            }
        }
        self.cursor = Some(regular);
        self.start(regular, false);
    }

    fn start(&mut self, item: usize, out_of_turn: bool) {
        self.current = Some(item);
        self.out_of_turn = out_of_turn;
        self.into = 0;
        self.last_start[item] = self.clock;
    }
}

/// Walks the layers and writes the slots that meet `[from, to)` into `out`, stopping once
/// more than `max_slots` are final.
#[allow(clippy::too_many_arguments)]
pub(super) fn run(
    schedule: &Schedule<'_>,
    layers: &super::Layers,
    display: DisplayIdx,
    from: Ms,
    to: Ms,
    durations: Durations<'_>,
    max_slots: usize,
    out: &mut Vec<RawSlot>,
) {
    let playlists = &schedule.model.playlists;
    let mut items: Vec<Option<Items<'_>>> = (0..playlists.len()).map(|_| None).collect();
    let mut rotations: Vec<Option<Rotation>> = (0..playlists.len()).map(|_| None).collect();
    let min_item = duration_ms(MIN_ITEM);

    for segment in &layers.segments {
        if out.len() > max_slots {
            break;
        }
        let (a, b) = (segment.start, segment.end);
        let (playlist, period, why) = match segment.winner {
            Winner::Interrupt(n) => {
                push(out, from, to, a, b, What::Interrupt(n), RawWhy::Interrupt);
                continue;
            }
            Winner::Off(w) => {
                push(out, from, to, a, b, What::Off, RawWhy::PowerOff(w));
                continue;
            }
            Winner::Idle(cause) => {
                push(out, from, to, a, b, What::Idle, RawWhy::Idle(cause));
                continue;
            }
            Winner::Playlist {
                playlist,
                period,
                window,
                over,
            } => {
                let why = match window {
                    Some((window, opened)) => RawWhy::Window {
                        window,
                        opened,
                        over,
                    },
                    None => RawWhy::Default { over },
                };
                (playlist, period, why)
            }
        };
        let list = items[playlist].get_or_insert_with(|| {
            let list = &playlists[playlist].items;
            let every: Vec<Option<Ms>> = list
                .iter()
                .map(|i| i.at_least_every.map(duration_ms))
                .collect();
            Items {
                items: list,
                durations: list
                    .iter()
                    .map(|i| duration_ms(durations(i, display)).max(min_item))
                    .collect(),
                has_every: every.iter().any(Option::is_some),
                every,
            }
        });
        let rotation =
            rotations[playlist].get_or_insert_with(|| Rotation::new(period, list.items.len()));
        if rotation.period != period {
            *rotation = Rotation::new(period, list.items.len());
        }

        let mut t = a;
        let needs_next = match rotation.current {
            None => true,
            Some(c) => !valid_at(&list.items[c], t) || rotation.into >= list.durations[c],
        };
        if needs_next {
            rotation.advance(list, t);
        }
        // Whole cycles before the first instant asked about change nothing: skip them.
        if !list.has_every && t < from {
            let cycle: Ms = (0..list.items.len())
                .filter(|&i| valid_at(&list.items[i], t))
                .map(|i| list.durations[i])
                .sum();
            if cycle > 0 {
                let skip = (b.min(from) - t) / cycle * cycle;
                t += skip;
                rotation.clock += skip;
            }
        }
        while t < b {
            let Some(current) = rotation.current else {
                break;
            };
            let end = t + list.durations[current] - rotation.into;
            let what = What::Item {
                playlist,
                item: current,
                offset: std::time::Duration::from_millis(u64::try_from(rotation.into).unwrap_or(0)),
                out_of_turn: rotation.out_of_turn,
            };
            if end >= b {
                push(out, from, to, t, b, what, why);
                rotation.into += b - t;
                rotation.clock += b - t;
                break;
            }
            push(out, from, to, t, end, what, why);
            rotation.clock += end - t;
            t = end;
            rotation.advance(list, t);
            if out.len() > max_slots {
                break;
            }
        }
    }
}

/// Adds a piece of a slot, cut to `[from, to)`, extending the previous slot when it simply
/// goes on.
fn push(out: &mut Vec<RawSlot>, from: Ms, to: Ms, start: Ms, end: Ms, what: What, why: RawWhy) {
    if end <= from || start >= to {
        return;
    }
    let mut what = what;
    let start = if start < from {
        if let What::Item { offset, .. } = &mut what {
            *offset += std::time::Duration::from_millis(u64::try_from(from - start).unwrap_or(0));
        }
        from
    } else {
        start
    };
    let end = end.min(to);
    if let Some(last) = out.last_mut()
        && last.end == start
        && continues(last, &what, &why)
    {
        last.end = end;
        return;
    }
    out.push(RawSlot {
        start,
        end,
        what,
        why,
    });
}

/// Whether `what` is the same showing as `last`, carried on (the runner-up may change
/// underneath without the picture changing).
fn continues(last: &RawSlot, what: &What, why: &RawWhy) -> bool {
    let same_reason = match (&last.why, why) {
        (
            RawWhy::Window {
                window: w1,
                opened: o1,
                ..
            },
            RawWhy::Window {
                window: w2,
                opened: o2,
                ..
            },
        ) => w1 == w2 && o1 == o2,
        (RawWhy::Default { .. }, RawWhy::Default { .. }) => true,
        (a, b) => a == b,
    };
    if !same_reason {
        return false;
    }
    match (&last.what, what) {
        (
            What::Item {
                playlist: p1,
                item: i1,
                offset: o1,
                out_of_turn: d1,
            },
            What::Item {
                playlist: p2,
                item: i2,
                offset: o2,
                out_of_turn: d2,
            },
        ) => {
            let shown =
                std::time::Duration::from_millis(u64::try_from(last.end - last.start).unwrap_or(0));
            p1 == p2 && i1 == i2 && d1 == d2 && *o1 + shown == *o2
        }
        (a, b) => a == b,
    }
}
