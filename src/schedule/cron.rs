//! Crontab times the way cronie reads them, turned into instants in a timezone.
//!
//! `config::values::parse_cron` has already checked the text field by field (and croner parsed
//! it); this module only expands the five fields into sets and answers "when does it fire?".
//! It does not use croner's matching, because croner and cronie disagree on the day rule: in
//! cronie a day field that *begins with `*`* — `*` itself but also `*/2` — counts as
//! unrestricted, and the two day fields are then ANDed; only when both are restricted is a
//! day matched by *either*. croner treats `*/2` as restricted and ORs.
//!
//! Daylight saving, as cronie does it: a fixed-time expression (neither minute nor hour begins
//! with `*`) whose time falls into a gap fires once, when the gap ends; in a repeated hour it
//! fires only the first time. A wildcard expression skips the times of a gap and fires in both
//! passes of a repeated hour.

use chrono::{
    DateTime, Datelike, Duration as Span, LocalResult, NaiveDate, NaiveDateTime, NaiveTime,
    TimeZone, Timelike,
};
use chrono_tz::Tz;

/// Milliseconds since the Unix epoch: the schedule's internal time.
pub type Ms = i64;

/// A crontab expression the text of which `parse_cron` accepted, but which this module cannot
/// read: a sign that the two parsers drifted apart.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cron expression `{expr}`: cannot read `{token}`")]
pub struct CronSpecError {
    pub expr: String,
    pub token: String,
}

/// The five fields as sets, plus cronie's star flags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CronSpec {
    minutes: u64,
    hours: u32,
    /// Bits 1..=31.
    days: u32,
    /// Bits 1..=12.
    months: u16,
    /// Bits 0..=6, Sunday = 0 (7 is folded into 0).
    weekdays: u8,
    dom_star: bool,
    dow_star: bool,
    /// Neither minute nor hour begins with `*`: a job "at a time", not "every so often".
    fixed_time: bool,
}

const MONTHS: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const WEEKDAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

impl CronSpec {
    /// Reads an expression `config::values::parse_cron` accepts (five fields or a macro).
    pub fn parse(text: &str) -> Result<CronSpec, CronSpecError> {
        let trimmed = text.trim();
        let expanded = match trimmed.to_ascii_lowercase().as_str() {
            "@yearly" | "@annually" => "0 0 1 1 *",
            "@monthly" => "0 0 1 * *",
            "@weekly" => "0 0 * * 0",
            "@daily" | "@midnight" => "0 0 * * *",
            "@hourly" => "0 * * * *",
            _ => trimmed,
        };
        let error = |token: &str| CronSpecError {
            expr: trimmed.to_owned(),
            token: token.to_owned(),
        };
        let fields: Vec<&str> = expanded.split_whitespace().collect();
        let [minute, hour, dom, month, dow] = fields[..] else {
            return Err(error(expanded));
        };
        let minutes = expand(minute, 0, 59, &[]).ok_or_else(|| error(minute))?;
        let hours = expand(hour, 0, 23, &[]).ok_or_else(|| error(hour))?;
        let days = expand(dom, 1, 31, &[]).ok_or_else(|| error(dom))?;
        let months = expand(month, 1, 12, &MONTHS).ok_or_else(|| error(month))?;
        let dows = expand(dow, 0, 7, &WEEKDAYS).ok_or_else(|| error(dow))?;
        // 7 is Sunday as well as 0.
        let weekdays = ((dows & 0x7f) | ((dows >> 7) & 1)) as u8;
        Ok(CronSpec {
            minutes,
            hours: hours as u32,
            days: days as u32,
            months: months as u16,
            weekdays,
            // cronie looks only at the first character of the field.
            dom_star: dom.starts_with('*'),
            dow_star: dow.starts_with('*'),
            fixed_time: !minute.starts_with('*') && !hour.starts_with('*'),
        })
    }

    /// Whether the expression fires on `date` at some time (cronie's day rule).
    pub fn matches_day(&self, date: NaiveDate) -> bool {
        if self.months & (1 << date.month()) == 0 {
            return false;
        }
        let dom = self.days & (1 << date.day()) != 0;
        let dow = self.weekdays & (1 << date.weekday().num_days_from_sunday()) != 0;
        if self.dom_star || self.dow_star {
            dom && dow
        } else {
            dom || dow
        }
    }

    /// The instants it fires on local `date`, sorted.
    pub fn fires_on(&self, tz: Tz, date: NaiveDate, out: &mut Vec<Ms>) {
        if !self.matches_day(date) {
            return;
        }
        let start = out.len();
        // Most days have one offset from start to end: then a fire is the local time less it.
        let constant = day_offset(tz, date);
        for hour in bits(u64::from(self.hours)) {
            for minute in bits(self.minutes) {
                let Some(time) = NaiveTime::from_hms_opt(hour, minute, 0) else {
                    continue;
                };
                let local = date.and_time(time);
                if let Some(offset) = constant {
                    out.push(local.and_utc().timestamp_millis() - offset);
                    continue;
                }
                match tz.from_local_datetime(&local) {
                    LocalResult::Single(t) => out.push(t.timestamp_millis()),
                    LocalResult::Ambiguous(first, second) => {
                        out.push(first.timestamp_millis());
                        if !self.fixed_time {
                            out.push(second.timestamp_millis());
                        }
                    }
                    LocalResult::None => {
                        if self.fixed_time {
                            out.push(gap_end(tz, local));
                        }
                    }
                }
            }
        }
        out[start..].sort_unstable();
        dedup_from(out, start);
    }

    /// Every fire `f` with `from <= f < to`, sorted.
    pub fn fires_between(&self, tz: Tz, from: Ms, to: Ms) -> Vec<Ms> {
        let mut out = Vec::new();
        if from >= to {
            return out;
        }
        // A day's fires lie within a day of its local date, whatever the offset.
        let first = local_date(tz, from) - Span::days(1);
        let last = local_date(tz, to) + Span::days(1);
        let mut date = first;
        while date <= last {
            self.fires_on(tz, date, &mut out);
            date += Span::days(1);
        }
        out.retain(|f| (from..to).contains(f));
        out
    }

    /// The first fire strictly after `after`, looking at most `max_days` ahead.
    pub fn next_after(&self, tz: Tz, after: Ms, max_days: u32) -> Option<Ms> {
        let mut date = local_date(tz, after) - Span::days(1);
        let mut fires = Vec::new();
        for _ in 0..=max_days + 2 {
            fires.clear();
            self.fires_on(tz, date, &mut fires);
            if let Some(f) = fires.iter().find(|f| **f > after) {
                return Some(*f);
            }
            date += Span::days(1);
        }
        None
    }

    /// The last fire at or before `at`, looking at most `max_days` back.
    pub fn last_at_or_before(&self, tz: Tz, at: Ms, max_days: u32) -> Option<Ms> {
        let mut date = local_date(tz, at) + Span::days(1);
        let mut fires = Vec::new();
        for _ in 0..=max_days + 2 {
            fires.clear();
            self.fires_on(tz, date, &mut fires);
            if let Some(f) = fires.iter().rev().find(|f| **f <= at) {
                return Some(*f);
            }
            date -= Span::days(1);
        }
        None
    }
}

/// Removes repeats from the sorted tail `out[start..]`.
fn dedup_from(out: &mut Vec<Ms>, start: usize) {
    let mut tail = out.split_off(start);
    tail.dedup();
    out.extend(tail);
}

/// The offset in milliseconds of a day that has a single one, or `None` on a transition day.
fn day_offset(tz: Tz, date: NaiveDate) -> Option<Ms> {
    let offset_at = |time: NaiveTime| match tz.from_local_datetime(&date.and_time(time)) {
        LocalResult::Single(t) => {
            Some(t.naive_local().and_utc().timestamp_millis() - t.timestamp_millis())
        }
        _ => None,
    };
    let start = offset_at(NaiveTime::MIN)?;
    let end = offset_at(NaiveTime::from_hms_opt(23, 59, 59)?)?;
    (start == end).then_some(start)
}

/// The instant a gap in local time ends: the first local minute after `local` that exists.
fn gap_end(tz: Tz, local: NaiveDateTime) -> Ms {
    let mut probe = local.with_second(0).unwrap_or(local);
    // The longest gap on record is a day (Samoa, 2011).
    for _ in 0..=(26 * 60) {
        probe += Span::minutes(1);
        match tz.from_local_datetime(&probe) {
            LocalResult::Single(t) => return t.timestamp_millis(),
            LocalResult::Ambiguous(t, _) => return t.timestamp_millis(),
            LocalResult::None => {}
        }
    }
    probe.and_utc().timestamp_millis()
}

/// The local date of an instant.
pub fn local_date(tz: Tz, at: Ms) -> NaiveDate {
    to_local(tz, at).date_naive()
}

/// An internal instant as a time in `tz`.
pub fn to_local(tz: Tz, at: Ms) -> DateTime<Tz> {
    DateTime::from_timestamp_millis(at)
        .unwrap_or_default()
        .with_timezone(&tz)
}

/// The first instant of local `date` (midnight, or the end of a gap that swallows it).
pub fn start_of_day(tz: Tz, date: NaiveDate) -> Ms {
    let midnight = date.and_time(NaiveTime::MIN);
    match tz.from_local_datetime(&midnight) {
        LocalResult::Single(t) | LocalResult::Ambiguous(t, _) => t.timestamp_millis(),
        LocalResult::None => gap_end(tz, midnight),
    }
}

/// Set bits of `set`, lowest first.
fn bits(mut set: u64) -> impl Iterator<Item = u32> {
    std::iter::from_fn(move || {
        (set != 0).then(|| {
            let bit = set.trailing_zeros();
            set &= set - 1;
            bit
        })
    })
}

/// Expands one field (`*`, `a`, `a-b`, `*/n`, `a-b/n`, lists of them) into a bit set.
fn expand(field: &str, min: u32, max: u32, names: &[&str]) -> Option<u64> {
    let value = |token: &str| -> Option<u32> {
        if token.bytes().all(|b| b.is_ascii_digit()) {
            token.parse().ok().filter(|v| (min..=max).contains(v))
        } else {
            let upper = token.to_ascii_uppercase();
            let index = names.iter().position(|n| *n == upper)?;
            Some(min + index as u32)
        }
    };
    let mut set = 0u64;
    for part in field.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((range, step)) => (range, step.parse::<u32>().ok().filter(|s| *s > 0)?),
            None => (part, 1),
        };
        let (low, high) = if range == "*" {
            (min, max)
        } else if let Some((a, b)) = range.split_once('-') {
            (value(a)?, value(b)?)
        } else {
            let single = value(range)?;
            (single, single)
        };
        if low > high {
            return None;
        }
        let mut v = low;
        while v <= high {
            set |= 1 << v;
            v += step;
        }
    }
    Some(set)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(tz: Tz, text: &str) -> Ms {
        let local = NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M").expect("test time");
        tz.from_local_datetime(&local)
            .earliest()
            .expect("exists")
            .timestamp_millis()
    }

    fn show(tz: Tz, fires: &[Ms]) -> Vec<String> {
        fires
            .iter()
            .map(|f| to_local(tz, *f).to_rfc3339())
            .collect()
    }

    #[test]
    fn or_rule_when_both_day_fields_are_restricted() {
        let spec = CronSpec::parse("0 8 13 * 5").expect("valid");
        // 2026-02-13 is a Friday the 13th, 2026-02-20 a Friday, 2026-03-13 a Friday too.
        let day = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("date");
        assert!(spec.matches_day(day("2026-02-06")), "a Friday");
        assert!(spec.matches_day(day("2026-01-13")), "a 13th (a Tuesday)");
        assert!(!spec.matches_day(day("2026-01-14")));
    }

    #[test]
    fn step_over_star_in_a_day_field_counts_as_star_as_in_cronie() {
        // cronie: `*/2` begins with `*`, so the day fields are ANDed: odd days that are Mondays.
        let spec = CronSpec::parse("0 0 */2 * 1").expect("valid");
        let day = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("date");
        assert!(spec.matches_day(day("2026-06-01")), "Monday the 1st");
        assert!(!spec.matches_day(day("2026-06-08")), "Monday the 8th: even");
        assert!(
            !spec.matches_day(day("2026-06-03")),
            "Wednesday the 3rd: not Monday"
        );
        // croner reads the same text with the OR rule: this pins the difference we correct.
        let croner = crate::config::values::parse_cron("0 0 */2 * 1").expect("valid");
        let wednesday = chrono_tz::Asia::Shanghai
            .with_ymd_and_hms(2026, 6, 3, 0, 0, 0)
            .single()
            .expect("exists");
        assert_eq!(croner.is_time_matching(&wednesday).ok(), Some(true));
    }

    #[test]
    fn weekday_numbers_are_posix_and_seven_is_sunday() {
        let day = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("date");
        let sunday = day("2026-06-07");
        for text in ["0 9 * * 0", "0 9 * * 7", "0 9 * * SUN", "0 9 * * sun"] {
            let spec = CronSpec::parse(text).expect("valid");
            assert!(spec.matches_day(sunday), "{text}");
            assert!(!spec.matches_day(day("2026-06-08")), "{text} on a Monday");
        }
        let weekdays = CronSpec::parse("0 9 * * MON-FRI").expect("valid");
        assert!(weekdays.matches_day(day("2026-06-08")));
        assert!(!weekdays.matches_day(sunday));
        let spring = CronSpec::parse("0 9 * JAN-MAR *").expect("valid");
        assert!(spring.matches_day(day("2026-03-31")));
        assert!(!spring.matches_day(day("2026-04-01")));
    }

    #[test]
    fn macros_mean_what_cronie_says() {
        let tz = chrono_tz::Asia::Shanghai;
        let weekly = CronSpec::parse("@weekly").expect("valid");
        let fires =
            weekly.fires_between(tz, at(tz, "2026-06-01 00:00"), at(tz, "2026-06-15 00:00"));
        assert_eq!(
            show(tz, &fires),
            ["2026-06-07T00:00:00+08:00", "2026-06-14T00:00:00+08:00"]
        );
        let monthly = CronSpec::parse("@monthly").expect("valid");
        assert_eq!(
            monthly
                .next_after(tz, at(tz, "2026-06-01 00:00"), 40)
                .map(|f| to_local(tz, f).to_rfc3339()),
            Some("2026-07-01T00:00:00+08:00".to_owned())
        );
    }

    #[test]
    fn leap_day_fires_only_in_leap_years() {
        let tz = chrono_tz::Asia::Shanghai;
        let spec = CronSpec::parse("0 9 29 2 *").expect("valid");
        let next = spec.next_after(tz, at(tz, "2026-01-01 00:00"), 366 * 4);
        assert_eq!(
            next.map(|f| to_local(tz, f).to_rfc3339()),
            Some("2028-02-29T09:00:00+08:00".to_owned())
        );
    }

    #[test]
    fn dst_gap_fires_fixed_time_once_at_the_end_of_the_gap() {
        let tz = chrono_tz::America::New_York;
        // 2026-03-08: clocks go from 02:00 EST to 03:00 EDT.
        let fixed = CronSpec::parse("30 2 * * *").expect("valid");
        let fires = fixed.fires_between(tz, at(tz, "2026-03-07 00:00"), at(tz, "2026-03-10 00:00"));
        assert_eq!(
            show(tz, &fires),
            [
                "2026-03-07T02:30:00-05:00",
                "2026-03-08T03:00:00-04:00",
                "2026-03-09T02:30:00-04:00"
            ]
        );
        let wildcard = CronSpec::parse("*/30 * * * *").expect("valid");
        let fires =
            wildcard.fires_between(tz, at(tz, "2026-03-08 01:00"), at(tz, "2026-03-08 03:31"));
        assert_eq!(
            show(tz, &fires),
            [
                "2026-03-08T01:00:00-05:00",
                "2026-03-08T01:30:00-05:00",
                "2026-03-08T03:00:00-04:00",
                "2026-03-08T03:30:00-04:00"
            ]
        );
    }

    #[test]
    fn dst_fold_fires_fixed_time_once_and_wildcards_twice() {
        let tz = chrono_tz::America::New_York;
        // 2026-11-01: clocks go back from 02:00 EDT to 01:00 EST.
        let fixed = CronSpec::parse("30 1 * * *").expect("valid");
        let fires = fixed.fires_between(tz, at(tz, "2026-11-01 00:00"), at(tz, "2026-11-02 00:00"));
        assert_eq!(show(tz, &fires), ["2026-11-01T01:30:00-04:00"]);
        let wildcard = CronSpec::parse("30 * * * *").expect("valid");
        let fires =
            wildcard.fires_between(tz, at(tz, "2026-11-01 00:45"), at(tz, "2026-11-01 02:45"));
        assert_eq!(
            show(tz, &fires),
            [
                "2026-11-01T01:30:00-04:00",
                "2026-11-01T01:30:00-05:00",
                "2026-11-01T02:30:00-05:00"
            ]
        );
    }
}
