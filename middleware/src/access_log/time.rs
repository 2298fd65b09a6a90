//! Timestamps for log lines, in UTC, without a date crate: the CLF form
//! (`[10/Oct/2000:13:55:36 +0000]`) and RFC 3339 with milliseconds
//! (`2000-10-10T13:55:36.000Z`).
//!
//! Times before the Unix epoch are written as the epoch: a server clock that far off is broken,
//! and a log line is no place to fail.

use std::fmt::Write;
use std::time::{SystemTime, UNIX_EPOCH};

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// A broken-down UTC time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Civil {
    year: u64,
    month: u32, // 1..=12
    day: u32,   // 1..=31
    hour: u32,
    minute: u32,
    second: u32,
    millis: u32,
}

fn civil(t: SystemTime) -> Civil {
    let since = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days);
    Civil {
        year,
        month,
        day,
        // `rem` is below 86 400, so these fit in u32.
        hour: (rem / 3600) as u32,
        minute: (rem / 60 % 60) as u32,
        second: (rem % 60) as u32,
        millis: since.subsec_millis(),
    }
}

/// Days since 1970-01-01 to a proleptic Gregorian (year, month, day).
///
/// Howard Hinnant's `civil_from_days`, for non-negative day counts: shift the epoch to
/// 0000-03-01 so that the leap day is the last day of the (March-based) year, then split into
/// 400-year eras of 146 097 days.
fn civil_from_days(days: u64) -> (u64, u32, u32) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097; // day of era, 0..=146_096
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // 0..=399
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // day of the March-based year, 0..=365
    let mp = (5 * doy + 2) / 153; // March = 0 .. February = 11
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

/// Appends the CLF time with its brackets: `[10/Oct/2000:13:55:36 +0000]`.
pub(crate) fn push_clf(out: &mut String, t: SystemTime) {
    let c = civil(t);
    let month = MONTHS[(c.month - 1) as usize];
    let _ = write!(
        out,
        "[{:02}/{month}/{:04}:{:02}:{:02}:{:02} +0000]",
        c.day, c.year, c.hour, c.minute, c.second
    );
}

/// Appends the RFC 3339 time in UTC with milliseconds: `2000-10-10T13:55:36.000Z`.
pub(crate) fn push_rfc3339(out: &mut String, t: SystemTime) {
    let c = civil(t);
    let _ = write!(
        out,
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        c.year, c.month, c.day, c.hour, c.minute, c.second, c.millis
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(secs: u64, millis: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_millis(millis)
    }

    fn clf(t: SystemTime) -> String {
        let mut s = String::new();
        push_clf(&mut s, t);
        s
    }

    fn rfc(t: SystemTime) -> String {
        let mut s = String::new();
        push_rfc3339(&mut s, t);
        s
    }

    #[test]
    fn clf_matches_known_instants() {
        // Checked against `date -u -d @N`.
        assert_eq!(clf(at(0, 0)), "[01/Jan/1970:00:00:00 +0000]");
        assert_eq!(clf(at(971_186_136, 999)), "[10/Oct/2000:13:55:36 +0000]");
        assert_eq!(clf(at(951_782_400, 0)), "[29/Feb/2000:00:00:00 +0000]");
        assert_eq!(clf(at(1_709_164_800, 0)), "[29/Feb/2024:00:00:00 +0000]");
        assert_eq!(clf(at(4_107_542_400, 0)), "[01/Mar/2100:00:00:00 +0000]");
        assert_eq!(clf(at(1_234_567_890, 0)), "[13/Feb/2009:23:31:30 +0000]");
        assert_eq!(clf(at(253_402_300_799, 0)), "[31/Dec/9999:23:59:59 +0000]");
    }

    #[test]
    fn rfc3339_has_milliseconds_and_z() {
        assert_eq!(rfc(at(0, 0)), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc(at(971_186_136, 7)), "2000-10-10T13:55:36.007Z");
        assert_eq!(rfc(at(1_709_164_799, 999)), "2024-02-28T23:59:59.999Z");
    }

    #[test]
    fn before_the_epoch_is_the_epoch() {
        let t = UNIX_EPOCH - Duration::from_secs(10);
        assert_eq!(clf(t), "[01/Jan/1970:00:00:00 +0000]");
    }

    #[test]
    fn every_day_of_four_centuries_round_trips() {
        // Walk day by day from 1970 and check the calendar advances one day at a time.
        let mut prev = civil_from_days(0);
        assert_eq!(prev, (1970, 1, 1));
        for d in 1..(400 * 366) {
            let cur = civil_from_days(d);
            let leap = |y: u64| (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
            let len = match prev.1 {
                2 if leap(prev.0) => 29,
                2 => 28,
                4 | 6 | 9 | 11 => 30,
                _ => 31,
            };
            let expect = if prev.2 < len {
                (prev.0, prev.1, prev.2 + 1)
            } else if prev.1 < 12 {
                (prev.0, prev.1 + 1, 1)
            } else {
                (prev.0 + 1, 1, 1)
            };
            assert_eq!(cur, expect, "day {d}");
            prev = cur;
        }
    }
}
