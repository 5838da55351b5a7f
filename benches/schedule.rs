//! How long the schedule takes on a large county: the 7-day timelines of all 200 displays of
//! the generated site (50 playlists, 2,000 items), and the next change instant of one display,
//! which the daemon asks after every change instead of polling.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use chrono::TimeZone;
use criterion::{Criterion, criterion_group, criterion_main};
use gongkai::config::model::{DisplayIdx, Item};
use gongkai::diag::Report;
use gongkai::schedule::{Schedule, estimate};

mod gen_site;

fn schedule_large_site(c: &mut Criterion) {
    let loaded = gongkai::config::validate::check(gen_site::generate(), Report::default());
    let Some(model) = loaded.model else {
        panic!(
            "the generated site must be valid:\n{}",
            loaded.report.render(Default::default())
        );
    };
    let tz = model.site.timezone;
    // A week inside the generated items' validity, so every window has items to rotate.
    let from = tz
        .with_ymd_and_hms(2026, 12, 1, 0, 0, 0)
        .single()
        .expect("exists");
    let to = from + chrono::Duration::days(7);
    let schedule = Schedule::new(&model).expect("schedule");

    // Layout's durations, estimated once per item and profile, as the daemon caches them.
    let mut table: HashMap<(&str, usize), Duration> = HashMap::new();
    for (d, display) in model.displays.iter().enumerate() {
        for playlist in model.playlists.iter().filter(|p| p.targets.contains(&d)) {
            for item in &playlist.items {
                table
                    .entry((item.id.as_str(), display.profile))
                    .or_insert_with(|| estimate::duration(&model, item, d));
            }
        }
    }
    let durations = |item: &Item, d: DisplayIdx| {
        table
            .get(&(item.id.as_str(), model.displays[d].profile))
            .copied()
            .unwrap_or(item.show.dwell)
    };

    let started = Instant::now();
    let slots: usize = (0..model.displays.len())
        .map(|d| {
            schedule
                .timeline(&[], d, from, to, &durations)
                .map_or(0, |t| t.len())
        })
        .sum();
    println!(
        "7-day timelines of {} displays: {slots} slots, first run {:?}",
        model.displays.len(),
        started.elapsed()
    );

    c.bench_function("timeline_7_days_200_displays", |b| {
        b.iter(|| {
            (0..model.displays.len())
                .map(|d| {
                    schedule
                        .timeline(&[], d, from, to, &durations)
                        .map_or(0, |t| t.len())
                })
                .sum::<usize>()
        })
    });
    // Inside a window (p0 opens at 08:00 on weekdays for g0), and outside any.
    let on_air = tz
        .with_ymd_and_hms(2026, 12, 2, 8, 40, 0)
        .single()
        .expect("exists");
    let off_air = tz
        .with_ymd_and_hms(2026, 12, 2, 23, 0, 0)
        .single()
        .expect("exists");
    c.bench_function("next_change_one_display_on_air", |b| {
        b.iter(|| schedule.next_change(&[], 0, on_air, &durations))
    });
    c.bench_function("next_change_one_display_off_air", |b| {
        b.iter(|| schedule.next_change(&[], 0, off_air, &durations))
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = schedule_large_site
}
criterion_main!(benches);
