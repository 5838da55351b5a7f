//! The schedule against a fake clock: every instant is written in the test.

use std::time::Duration;

use chrono::{DateTime, NaiveDateTime, TimeZone};
use chrono_tz::Tz;

use super::*;
use crate::config::{SiteSources, SourceFile, validate};
use crate::diag::Report;

const PROFILE: &str = "width: 128\nheight: 32\npixel: mono\nfont: wqy16\nprotocol: gongkai\nbrightness: { min: 1, max: 15 }\n";

/// A site with displays `square` and `town`, `displays_extra` appended to `square`.
fn model_in(tz: &str, square_extra: &str, playlists: &[&str]) -> Model {
    let site = format!(
        "site: 测试县\ntimezone: {tz}\ndisplays:\n  - id: square\n    profile: board\n    link: {{ simulated: true }}\n{square_extra}  - id: town\n    profile: board\n    link: {{ simulated: true }}\n"
    );
    let sources = SiteSources {
        site: Some(SourceFile {
            name: "gongkai.yaml".into(),
            text: site,
        }),
        profiles: vec![SourceFile {
            name: "hw-profiles/board.yaml".into(),
            text: PROFILE.into(),
        }],
        playlists: playlists
            .iter()
            .enumerate()
            .map(|(i, text)| SourceFile {
                name: format!("playlists/{i:02}.yaml"),
                text: (*text).to_owned(),
            })
            .collect(),
        fonts: Vec::new(),
    };
    let loaded = validate::check(sources, Report::default());
    match loaded.model {
        Some(model) => model,
        None => panic!(
            "test site invalid:\n{}",
            loaded.report.render(Default::default())
        ),
    }
}

fn model(playlists: &[&str]) -> Model {
    model_in("Asia/Shanghai", "", playlists)
}

/// `id` with items `ids`, each a one-liner; `extra` goes before `items:`.
fn playlist(id: &str, extra: &str, items: &[&str]) -> String {
    let mut text = format!("id: {id}\ntargets: [square]\n{extra}items:\n");
    for item in items {
        text.push_str(&format!(
            "  - {{ id: {item}, title: 公示{item}, category: 其他 }}\n"
        ));
    }
    text
}

fn at(model: &Model, text: &str) -> DateTime<Tz> {
    let local = NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S")
        .or_else(|_| NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M"))
        .expect("test time");
    model
        .site
        .timezone
        .from_local_datetime(&local)
        .earliest()
        .expect("time exists")
}

/// Every item plays one minute.
fn minute(_: &Item, _: DisplayIdx) -> Duration {
    Duration::from_secs(60)
}

fn now(model: &Model, interrupts: &[Interrupt], when: &str) -> Slot {
    Schedule::new(model)
        .expect("schedule")
        .now(interrupts, 0, at(model, when), &minute)
        .expect("slot")
}

/// `playlist/item` or `idle` / `off` / `interrupt:id`.
fn name(model: &Model, interrupts: &[Interrupt], what: &What) -> String {
    match what {
        What::Item { playlist, item, .. } => {
            let p = &model.playlists[*playlist];
            format!("{}/{}", p.id, p.items[*item].id)
        }
        What::Interrupt(n) => format!("interrupt:{}", interrupts[*n].id),
        What::Idle => "idle".into(),
        What::Off => "off".into(),
    }
}

fn shows(model: &Model, interrupts: &[Interrupt], when: &str) -> String {
    name(model, interrupts, &now(model, interrupts, when).what)
}

fn plan(model: &Model, interrupts: &[Interrupt], from: &str, to: &str) -> Vec<String> {
    timeline(
        model,
        interrupts,
        0,
        at(model, from),
        at(model, to),
        &minute,
    )
    .expect("timeline")
    .iter()
    .map(|s| {
        format!(
            "{} {}",
            s.start.format("%H:%M:%S"),
            name(model, interrupts, &s.what)
        )
    })
    .collect()
}

#[test]
fn a_daemon_started_inside_a_window_knows_it_is_on_air() {
    let m = model(&[
        &playlist(
            "prime",
            "when: [{ cron: \"0 19 * * *\", for: 2h }]\npriority: 10\n",
            &["a", "b", "c"],
        ),
        &playlist("all-day", "", &["x"]),
    ]);
    let slot = now(&m, &[], "2026-12-01 19:30");
    // 30 minutes on air over three one-minute items: the 31st start is item a again.
    assert_eq!(name(&m, &[], &slot.what), "prime/a");
    assert!(matches!(slot.why, Why::Window { over: Some(1), .. }));
    if let Why::Window { opened, .. } = slot.why {
        assert_eq!(opened, at(&m, "2026-12-01 19:00"));
    }
    assert_eq!(shows(&m, &[], "2026-12-01 19:31"), "prime/b");
    assert_eq!(shows(&m, &[], "2026-12-01 21:00"), "all-day/x");
    assert_eq!(shows(&m, &[], "2026-12-01 18:59:59"), "all-day/x");
}

#[test]
fn overnight_window_crosses_midnight() {
    let m = model(&[&playlist(
        "night",
        "when: [{ cron: \"0 22 * * *\", for: 8h }]\n",
        &["n"],
    )]);
    assert_eq!(shows(&m, &[], "2026-12-01 21:59"), "idle");
    assert_eq!(shows(&m, &[], "2026-12-02 02:00"), "night/n");
    assert_eq!(shows(&m, &[], "2026-12-02 05:59:59"), "night/n");
    assert_eq!(shows(&m, &[], "2026-12-02 06:00"), "idle");
    assert!(matches!(
        now(&m, &[], "2026-12-02 06:00").why,
        Why::Idle(IdleCause::NothingOnAir)
    ));
}

#[test]
fn weekday_set_keeps_a_window_off_at_the_weekend() {
    let m = model(&[&playlist(
        "office",
        "when: [{ cron: \"0 8 * * MON-FRI\", for: 9h }]\n",
        &["o"],
    )]);
    // 2026-12-04 is a Friday, 2026-12-05 a Saturday.
    assert_eq!(shows(&m, &[], "2026-12-04 09:00"), "office/o");
    assert_eq!(shows(&m, &[], "2026-12-05 09:00"), "idle");
}

#[test]
fn higher_priority_wins_and_file_order_breaks_ties() {
    let m = model(&[
        &playlist(
            "first",
            "when: [{ cron: \"0 8 * * *\", for: 1h }]\npriority: 5\n",
            &["f"],
        ),
        &playlist(
            "second",
            "when: [{ cron: \"0 8 * * *\", for: 1h }]\npriority: 5\n",
            &["s"],
        ),
        &playlist(
            "urgent",
            "when: [{ cron: \"30 8 * * *\", for: 10m }]\npriority: 9\n",
            &["u"],
        ),
    ]);
    assert_eq!(shows(&m, &[], "2026-12-01 08:10"), "first/f");
    assert_eq!(shows(&m, &[], "2026-12-01 08:35"), "urgent/u");
    assert_eq!(shows(&m, &[], "2026-12-01 08:45"), "first/f");
}

#[test]
fn interrupt_pre_empts_and_the_rotation_resumes_where_it_was() {
    let m = model(&[&playlist("main", "", &["a", "b", "c"])]);
    let interrupts = [Interrupt {
        id: "flood".into(),
        displays: vec![],
        start: at(&m, "2026-12-01 10:01:30"),
        end: at(&m, "2026-12-01 10:05"),
        text: "防汛紧急通知".into(),
    }];
    let slots = timeline(
        &m,
        &interrupts,
        0,
        at(&m, "2026-12-01 10:00"),
        at(&m, "2026-12-01 10:07"),
        &minute,
    )
    .expect("timeline");
    let lines: Vec<String> = slots
        .iter()
        .map(|s| {
            let offset = match s.what {
                What::Item { offset, .. } => offset.as_secs(),
                _ => 0,
            };
            format!(
                "{} {} +{offset}",
                s.start.format("%H:%M:%S"),
                name(&m, &interrupts, &s.what)
            )
        })
        .collect();
    // 10:00 is 600 on-air minutes into the day: a multiple of three, so item a.
    assert_eq!(
        lines,
        [
            "10:00:00 main/a +0",
            "10:01:00 main/b +0",
            "10:01:30 interrupt:flood +0",
            "10:05:00 main/b +30",
            "10:05:30 main/c +0",
            "10:06:30 main/a +0",
        ]
    );
    assert_eq!(slots[2].why, Why::Interrupt);
}

#[test]
fn a_restarted_daemon_computes_the_same_place() {
    let m = model(&[
        &playlist("main", "", &["a", "b", "c", "d", "e"]),
        &playlist(
            "noon",
            "when: [{ cron: \"0 12 * * *\", for: 17m }]\npriority: 1\n",
            &["n"],
        ),
    ]);
    let long = plan(&m, &[], "2026-12-01 11:00", "2026-12-01 13:00");
    let restarted = plan(&m, &[], "2026-12-01 12:30", "2026-12-01 13:00");
    let tail: Vec<&String> = long.iter().filter(|l| l.as_str() >= "12:30:00").collect();
    assert_eq!(restarted.iter().collect::<Vec<_>>(), tail);
}

#[test]
fn a_window_that_opens_while_another_runs() {
    let m = model(&[
        &playlist(
            "day",
            "when: [{ cron: \"0 8 * * *\", for: 11h }]\npriority: 1\n",
            &["a", "b", "c", "d"],
        ),
        &playlist(
            "meeting",
            "when: [{ cron: \"30 9 * * *\", for: 2m }]\npriority: 5\n",
            &["m"],
        ),
        &playlist(
            "low",
            "when: [{ cron: \"0 10 * * *\", for: 1h }]\npriority: 0\n",
            &["l"],
        ),
    ]);
    let lines = plan(&m, &[], "2026-12-01 09:28", "2026-12-01 09:35");
    // 90 minutes on air at 09:30, so item c would be next; the meeting takes two minutes, and
    // `day` goes on with c, not from its first item.
    assert_eq!(
        lines,
        [
            "09:28:00 day/a",
            "09:29:00 day/b",
            "09:30:00 meeting/m",
            "09:31:00 meeting/m",
            "09:32:00 day/c",
            "09:33:00 day/d",
            "09:34:00 day/a",
        ]
    );
    // A lower-priority window opening underneath changes nothing.
    assert!(shows(&m, &[], "2026-12-01 10:30").starts_with("day/"));
}

#[test]
fn validity_includes_from_and_excludes_until() {
    let m = model(&[&format!(
        "{}  - {{ id: late, title: 结果公示, category: 其他, valid: {{ from: 2026-12-01T10:00, until: 2026-12-01T10:02 }} }}\n",
        playlist("main", "", &["base"])
    )]);
    assert_eq!(
        plan(&m, &[], "2026-12-01 09:58", "2026-12-01 10:05"),
        [
            "09:58:00 main/base",
            "09:59:00 main/base",
            // The item entered at 10:00 without a restart, in its turn ...
            "10:00:00 main/late",
            "10:01:00 main/base",
            // ... and left at 10:02, its `until` itself excluded.
            "10:02:00 main/base",
            "10:03:00 main/base",
            "10:04:00 main/base",
        ]
    );
    let m_day = model(&[&format!(
        "{}  - {{ id: only, title: 结果公示, category: 其他, valid: {{ from: 2026-12-01, until: 2026-12-07 }} }}\n",
        "id: main\ntargets: [square]\nitems:\n"
    )]);
    assert_eq!(shows(&m_day, &[], "2026-12-07 23:59:59"), "main/only");
    assert_eq!(shows(&m_day, &[], "2026-12-08 00:00"), "idle");
    assert!(matches!(
        now(&m_day, &[], "2026-12-08 00:00").why,
        Why::Idle(IdleCause::NothingValid)
    ));
    assert_eq!(shows(&m_day, &[], "2026-11-30 23:59:59"), "idle");
    assert_eq!(shows(&m_day, &[], "2026-12-01 00:00"), "main/only");
}

#[test]
fn expiring_item_leaves_mid_showing() {
    let slow = |item: &Item, _: DisplayIdx| {
        if item.id == "going" {
            Duration::from_secs(600)
        } else {
            Duration::from_secs(60)
        }
    };
    let m = model(&[
        "id: main\ntargets: [square]\nitems:\n  - { id: going, title: 公示, category: 其他, valid: { until: 2026-12-01T00:05 } }\n  - { id: next, title: 公示, category: 其他 }\n",
    ]);
    let slots = timeline(
        &m,
        &[],
        0,
        at(&m, "2026-12-01 00:00"),
        at(&m, "2026-12-01 00:07"),
        &slow,
    )
    .expect("timeline");
    let lines: Vec<String> = slots
        .iter()
        .map(|s| format!("{} {}", s.start.format("%H:%M"), name(&m, &[], &s.what)))
        .collect();
    assert_eq!(
        lines,
        ["00:00 main/going", "00:05 main/next", "00:06 main/next"]
    );
}

#[test]
fn leap_day_window() {
    let m = model(&[&playlist(
        "leap",
        "when: [{ cron: \"0 9 29 2 *\", for: 1h }]\n",
        &["l"],
    )]);
    assert_eq!(shows(&m, &[], "2028-02-29 09:30"), "leap/l");
    assert_eq!(shows(&m, &[], "2027-03-01 09:30"), "idle");
    let schedule = Schedule::new(&m).expect("schedule");
    let next = schedule
        .next_change(&[], 0, at(&m, "2028-02-28 12:00"), &minute)
        .expect("next");
    assert_eq!(next, at(&m, "2028-02-29 09:00"));
}

#[test]
fn window_dates_limit_a_window() {
    let m = model(&[&playlist(
        "festival",
        "when: [{ cron: \"0 10 * * *\", for: 2h, dates: { from: 2027-02-05, until: 2027-02-11 } }]\n",
        &["f"],
    )]);
    assert_eq!(shows(&m, &[], "2027-02-04 10:30"), "idle");
    assert_eq!(shows(&m, &[], "2027-02-05 10:30"), "festival/f");
    assert_eq!(shows(&m, &[], "2027-02-11 10:30"), "festival/f");
    assert_eq!(shows(&m, &[], "2027-02-12 10:30"), "idle");
}

#[test]
fn dst_gap_window_opens_when_the_gap_ends() {
    let m = model_in(
        "America/New_York",
        "",
        &[&playlist(
            "early",
            "when: [{ cron: \"30 2 * * *\", for: 1h }]\n",
            &["e"],
        )],
    );
    // 2026-03-08 02:30 does not exist; cronie runs it at 03:00 EDT, and it lasts an hour.
    assert_eq!(shows(&m, &[], "2026-03-08 01:59"), "idle");
    assert_eq!(shows(&m, &[], "2026-03-08 03:00"), "early/e");
    assert_eq!(shows(&m, &[], "2026-03-08 03:59"), "early/e");
    assert_eq!(shows(&m, &[], "2026-03-08 04:00"), "idle");
}

#[test]
fn dst_fold_window_fires_once_and_lasts_real_time() {
    let m = model_in(
        "America/New_York",
        "",
        &[&playlist(
            "late",
            "when: [{ cron: \"30 1 * * *\", for: 1h }]\n",
            &["l"],
        )],
    );
    let tz = m.site.timezone;
    // 2026-11-01: 01:30 EDT + 1 h is 01:30 EST; the second 01:30 does not fire again.
    let edt = tz
        .with_ymd_and_hms(2026, 11, 1, 1, 30, 0)
        .earliest()
        .expect("exists");
    let schedule = Schedule::new(&m).expect("schedule");
    let hours = |_: &Item, _: DisplayIdx| Duration::from_secs(7200);
    let slot = schedule.now(&[], 0, edt, &hours).expect("slot");
    assert_eq!(name(&m, &[], &slot.what), "late/l");
    assert_eq!(slot.end.to_rfc3339(), "2026-11-01T01:30:00-05:00");
    let after = schedule.now(&[], 0, slot.end, &hours).expect("slot");
    assert_eq!(after.what, What::Idle);
    assert_eq!(after.end.to_rfc3339(), "2026-11-02T01:30:00-05:00");
}

#[test]
fn at_least_every_inserts_a_priority_notice() {
    let mut text = playlist("main", "", &["a", "b", "c", "d", "e", "f"]);
    text.push_str("  - { id: key, title: 重点公示, category: 其他, at_least_every: 3m }\n");
    let m = model(&[&text]);
    let slots = timeline(
        &m,
        &[],
        0,
        at(&m, "2026-12-01 00:00"),
        at(&m, "2026-12-01 01:00"),
        &minute,
    )
    .expect("timeline");
    let starts: Vec<i64> = slots
        .iter()
        .filter(|s| matches!(s.what, What::Item { item: 6, .. }))
        .map(|s| s.start.timestamp())
        .collect();
    assert!(starts.len() >= 19, "{starts:?}");
    for pair in starts.windows(2) {
        assert!(pair[1] - pair[0] <= 180, "{pair:?}");
    }
    assert!(slots.iter().any(|s| matches!(
        s.what,
        What::Item {
            out_of_turn: true,
            ..
        }
    )));
    // Every other item still gets its turn.
    for item in 0..6 {
        assert!(
            slots
                .iter()
                .any(|s| matches!(s.what, What::Item { item: i, .. } if i == item))
        );
    }
}

#[test]
fn power_off_darkens_the_board_but_not_an_emergency() {
    let m = model_in(
        "Asia/Shanghai",
        "    power_off: [{ cron: \"0 23 * * *\", for: 7h }]\n    brightness:\n      - { cron: \"0 7 * * *\", level: 12 }\n      - { cron: \"0 19 * * *\", level: 4 }\n",
        &[&playlist("main", "", &["a"])],
    );
    assert_eq!(shows(&m, &[], "2026-12-01 22:59"), "main/a");
    assert_eq!(shows(&m, &[], "2026-12-02 03:00"), "off");
    assert_eq!(shows(&m, &[], "2026-12-02 06:00"), "main/a");
    let alarm = [Interrupt {
        id: "quake".into(),
        displays: vec![0],
        start: at(&m, "2026-12-02 02:00"),
        end: at(&m, "2026-12-02 02:30"),
        text: "地震预警".into(),
    }];
    assert_eq!(shows(&m, &alarm, "2026-12-02 02:10"), "interrupt:quake");
    let schedule = Schedule::new(&m).expect("schedule");
    assert_eq!(
        schedule.brightness_at(0, at(&m, "2026-12-02 03:00")),
        Some(4)
    );
    assert_eq!(
        schedule.brightness_at(0, at(&m, "2026-12-02 08:00")),
        Some(12)
    );
    // `town` has no points: the top of its profile's range.
    assert_eq!(
        schedule.brightness_at(1, at(&m, "2026-12-02 08:00")),
        Some(15)
    );
    assert_eq!(
        schedule.brightness_changes(0, at(&m, "2026-12-02 00:00"), at(&m, "2026-12-03 00:00")),
        vec![
            (at(&m, "2026-12-02 07:00"), 12),
            (at(&m, "2026-12-02 19:00"), 4)
        ]
    );
    // The daemon wakes for a brightness change even when the picture stays.
    assert_eq!(
        schedule
            .next_change(&[], 0, at(&m, "2026-12-02 18:59:30"), &minute)
            .expect("next"),
        at(&m, "2026-12-02 19:00")
    );
}

#[test]
fn the_most_recent_interrupt_wins() {
    let m = model(&[&playlist("main", "", &["a"])]);
    let interrupts = [
        Interrupt {
            id: "first".into(),
            displays: vec![],
            start: at(&m, "2026-12-01 10:00"),
            end: at(&m, "2026-12-01 11:00"),
            text: String::new(),
        },
        Interrupt {
            id: "second".into(),
            displays: vec![0],
            start: at(&m, "2026-12-01 10:10"),
            end: at(&m, "2026-12-01 10:20"),
            text: String::new(),
        },
        Interrupt {
            id: "elsewhere".into(),
            displays: vec![1],
            start: at(&m, "2026-12-01 10:15"),
            end: at(&m, "2026-12-01 10:20"),
            text: String::new(),
        },
    ];
    assert_eq!(
        shows(&m, &interrupts, "2026-12-01 10:05"),
        "interrupt:first"
    );
    assert_eq!(
        shows(&m, &interrupts, "2026-12-01 10:16"),
        "interrupt:second"
    );
    assert_eq!(
        shows(&m, &interrupts, "2026-12-01 10:25"),
        "interrupt:first"
    );
}

#[test]
fn no_playlist_means_idle_and_never_blank() {
    let m = model(&[&playlist("main", "", &["a"])]);
    let schedule = Schedule::new(&m).expect("schedule");
    let slot = schedule
        .now(&[], 1, at(&m, "2026-12-01 10:00"), &minute)
        .expect("slot");
    assert_eq!(slot.what, What::Idle);
    assert_eq!(slot.why, Why::Idle(IdleCause::NoPlaylist));
    let slots = schedule
        .timeline(
            &[],
            0,
            at(&m, "2026-12-01 00:00"),
            at(&m, "2026-12-02 00:00"),
            &minute,
        )
        .expect("timeline");
    // Back to back, from the first instant to the last: never a hole.
    assert_eq!(
        slots.first().map(|s| s.start),
        Some(at(&m, "2026-12-01 00:00"))
    );
    assert_eq!(
        slots.last().map(|s| s.end),
        Some(at(&m, "2026-12-02 00:00"))
    );
    assert!(slots.windows(2).all(|p| p[0].end == p[1].start));
}

#[test]
fn default_estimate_grows_with_the_text() {
    let m = model(&[
        "id: main\ntargets: [square]\nshow: { mode: scroll, speed: 32px/s }\nitems:\n  - { id: short, title: 公示, category: 其他 }\n  - { id: long, title: 城区道路照明节能改造项目采购结果公示, body: 中标金额人民币一百二十三万四千五百六十七元, category: 其他 }\n",
    ]);
    let items = &m.playlists[0].items;
    let short = estimate::duration(&m, &items[0], 0);
    let long = estimate::duration(&m, &items[1], 0);
    assert!(short >= Duration::from_secs(4), "{short:?}");
    assert!(long > short + Duration::from_secs(10), "{short:?} {long:?}");
}
