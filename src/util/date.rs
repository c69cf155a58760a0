//! Dates: Unix seconds, the IMF-fixdate of HTTP headers, the listing's UTC minutes, and the
//! `Date` header formatted once per second.
//!
//! Where this sits in the loop: the reactor updates [`DateHeader`] once per pass; the response
//! head formats `Last-Modified` with [`http_date`]; the precondition checks compare
//! [`parse_http_date`] with [`unix_seconds`]; the listing page shows [`utc_minutes`].
//!
//! # Design notes
//! `httpdate` formats and parses HTTP-dates, but only for the years 1970 to 9999 (it panics
//! outside them), so [`http_date`] returns `None` there and a header is left out. A file's
//! mtime can be any `i64` second, though, and a listing still has to show it: for that one
//! job [`utc_minutes`] keeps Howard Hinnant's
//! [`civil_from_days`](https://howardhinnant.github.io/date_algorithms.html), which is exact
//! for every day count. That is the only hand-written calendar code in epollo.

use std::fmt::Write;
use std::time::{SystemTime, UNIX_EPOCH};

/// The first Unix second `httpdate` cannot format (10000-01-01T00:00:00Z).
const HTTPDATE_END_SECONDS: i64 = 253_402_300_800;

/// The IMF-fixdate of the Unix epoch.
const EPOCH_DATE: &str = "Thu, 01 Jan 1970 00:00:00 GMT";

/// Seconds in one day.
const SECONDS_PER_DAY: i64 = 86_400;

/// Whole seconds since the Unix epoch, rounded down (0.7 s after a second is that second, as
/// `Last-Modified` shows it; 0.5 s before 1970 is -1), or `None` if they do not fit an `i64`.
pub fn unix_seconds(time: SystemTime) -> Option<i64> {
    match time.duration_since(UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_secs()).ok(),
        Err(before) => {
            let before = before.duration();
            let whole = 0_i64.checked_sub_unsigned(before.as_secs())?;
            if before.subsec_nanos() > 0 {
                whole.checked_sub(1)
            } else {
                Some(whole)
            }
        }
    }
}

/// Formats a time as an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), or `None` for a time
/// the format cannot express (before 1970 or after 9999: a file's mtime can be anything).
pub fn http_date(time: SystemTime) -> Option<String> {
    imf_fixdate(time).map(|date| date.to_string())
}

/// The IMF-fixdate of `time` as a value that formats itself (`write!` it, with no `String` in
/// between), or `None` for a time the format cannot express.
pub fn imf_fixdate(time: SystemTime) -> Option<httpdate::HttpDate> {
    let seconds = unix_seconds(time)?;
    (0..HTTPDATE_END_SECONDS)
        .contains(&seconds)
        .then(|| httpdate::HttpDate::from(time))
}

/// Parses an HTTP-date in any of the three formats of RFC 9110 §5.6.7, surrounding optional
/// whitespace allowed; `None` if it is not one.
pub fn parse_http_date(text: &str) -> Option<SystemTime> {
    httpdate::parse_http_date(text.trim_matches([' ', '\t'])).ok()
}

/// A Unix time split into its UTC calendar fields.
struct Civil {
    /// The proleptic Gregorian year (any sign, any size).
    year: i128,
    /// 1 to 12.
    month: i128,
    /// 1 to 31.
    day: i128,
    /// 0 to 23.
    hour: i64,
    /// 0 to 59.
    minute: i64,
    /// 0 to 59.
    second: i64,
}

impl Civil {
    /// The calendar fields of Unix `seconds`, for any `i64`.
    fn of(seconds: i64) -> Civil {
        let (year, month, day) = civil_from_days(seconds.div_euclid(SECONDS_PER_DAY));
        let second_of_day = seconds.rem_euclid(SECONDS_PER_DAY);
        Civil {
            year,
            month,
            day,
            hour: second_of_day / 3600,
            minute: second_of_day % 3600 / 60,
            second: second_of_day % 60,
        }
    }
}

/// `YYYY-MM-DD HH:MM` in UTC for Unix `seconds`; any `i64` works, years past 9999 get more
/// digits and years before 1 a minus sign.
pub fn utc_minutes(seconds: i64) -> String {
    let t = Civil::of(seconds);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}",
        t.year, t.month, t.day, t.hour, t.minute
    )
}

/// The common log format's time, `01/Dec/2026:06:08:11 +0000` (UTC).
pub fn clf_time(seconds: i64) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let t = Civil::of(seconds);
    let name = MONTHS[usize::try_from(t.month - 1).unwrap_or(0).min(11)];
    format!(
        "{:02}/{name}/{:04}:{:02}:{:02}:{:02} +0000",
        t.day, t.year, t.hour, t.minute, t.second
    )
}

/// An RFC 3339 UTC timestamp, `2026-12-01T06:08:11Z`, for any Unix time (years outside
/// 0000–9999 keep their digits and sign, as a listing must show any mtime).
pub fn rfc3339(seconds: i64) -> String {
    let t = Civil::of(seconds);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year, t.month, t.day, t.hour, t.minute, t.second
    )
}

/// The proleptic Gregorian (year, month, day) of `days` since 1970-01-01 (Howard Hinnant's
/// `civil_from_days`). Years are counted from March 1st, so February and its leap day come
/// last in each year, and eras are the 400-year cycles (146097 days) of the calendar. `i128`
/// keeps every `i64` day count in range.
fn civil_from_days(days: i64) -> (i128, i128, i128) {
    let shifted = i128::from(days) + 719_468; // days since 0000-03-01
    let era = shifted.div_euclid(146_097);
    let day_of_era = shifted.rem_euclid(146_097); // [0, 146096]
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153; // March is 0
    let day = day_of_year - (153 * month_index + 2) / 5 + 1; // [1, 31]
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    }; // [1, 12]
    let year = year_of_era + era * 400 + i128::from(month <= 2);
    (year, month, day)
}

/// The `Date` header value, formatted at most once per second.
///
/// The reactor calls [`DateHeader::update`] once per loop pass; formatting a date for every
/// response would cost more than the rest of the head.
pub struct DateHeader {
    /// The whole second `text` was made for.
    second: i64,
    /// The formatted date.
    text: String,
}

impl DateHeader {
    /// A date header holding `now`.
    pub fn new(now: SystemTime) -> DateHeader {
        let mut date = DateHeader {
            second: i64::MIN,
            text: String::new(),
        };
        date.update(now);
        date
    }

    /// Re-formats the date if `now` is in a different second than last time.
    pub fn update(&mut self, now: SystemTime) {
        let second = unix_seconds(now).unwrap_or(0);
        if second != self.second {
            self.second = second;
            // Formatted into the same String every second: no allocation after the first.
            self.text.clear();
            match imf_fixdate(now) {
                Some(date) => {
                    let _ = write!(self.text, "{date}");
                }
                // A clock outside 1970..=9999 is broken; the epoch is as good a date as any.
                None => self.text.push_str(EPOCH_DATE),
            }
        }
    }

    /// The formatted date.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const DATE: &str = "Sun, 06 Nov 1994 08:49:37 GMT";

    fn at(seconds: i64) -> Option<SystemTime> {
        if seconds >= 0 {
            UNIX_EPOCH.checked_add(Duration::from_secs(seconds as u64))
        } else {
            UNIX_EPOCH.checked_sub(Duration::from_secs(seconds.unsigned_abs()))
        }
    }

    #[test]
    fn utc_minutes_table() {
        let cases = [
            (0, "1970-01-01 00:00"),
            (59, "1970-01-01 00:00"),
            (951_782_400, "2000-02-29 00:00"),
            (951_868_799, "2000-02-29 23:59"),
            (1_700_000_000, "2023-11-14 22:13"),
            (-1, "1969-12-31 23:59"),
            (-86_400, "1969-12-31 00:00"),
            (-2_208_988_800, "1900-01-01 00:00"),
            (253_402_300_799, "9999-12-31 23:59"),
            (568_971_820_800, "20000-01-01 00:00"),
            (-62_167_219_200, "0000-01-01 00:00"),
        ];
        for (seconds, expected) in cases {
            assert_eq!(utc_minutes(seconds), expected, "{seconds}");
        }
        // The extremes only have to render without panicking.
        for seconds in [i64::MIN, i64::MIN + 1, i64::MAX] {
            assert!(!utc_minutes(seconds).is_empty());
        }
    }

    #[test]
    fn unix_seconds_round_down() {
        // (time, seconds)
        let cases = [
            (at(0), Some(0)),
            (at(1_700_000_000), Some(1_700_000_000)),
            (UNIX_EPOCH.checked_sub(Duration::from_nanos(1)), Some(-1)),
            (
                UNIX_EPOCH.checked_sub(Duration::from_millis(1500)),
                Some(-2),
            ),
            (at(i64::MAX), Some(i64::MAX)),
            (at(i64::MIN), Some(i64::MIN)),
        ];
        for (time, seconds) in cases {
            let time = time.expect("representable on Linux");
            assert_eq!(unix_seconds(time), seconds, "{time:?}");
        }
        let below_min = at(i64::MIN).and_then(|t| t.checked_sub(Duration::from_nanos(1)));
        if let Some(time) = below_min {
            assert_eq!(unix_seconds(time), None);
        }
    }

    #[test]
    fn times_outside_the_date_format_are_left_out_not_panicked_on() {
        assert_eq!(http_date(UNIX_EPOCH - Duration::from_secs(1)), None);
        assert_eq!(
            http_date(UNIX_EPOCH + Duration::from_secs(300_000_000_000)),
            None
        );
        assert_eq!(
            http_date(UNIX_EPOCH + Duration::from_secs(253_402_300_799)).as_deref(),
            Some("Fri, 31 Dec 9999 23:59:59 GMT")
        );
    }

    #[test]
    fn http_dates_parse_in_all_three_formats() {
        let expected = UNIX_EPOCH + Duration::from_secs(784_111_777);
        for text in [
            DATE,
            " Sun, 06 Nov 1994 08:49:37 GMT\t",
            "Sunday, 06-Nov-94 08:49:37 GMT",
            "Sun Nov  6 08:49:37 1994",
        ] {
            assert_eq!(parse_http_date(text), Some(expected), "{text}");
        }
        assert_eq!(parse_http_date("yesterday"), None);
    }

    #[test]
    fn the_date_header_changes_once_per_second() {
        let t = UNIX_EPOCH + Duration::from_secs(784_111_777);
        let mut date = DateHeader::new(t);
        assert_eq!(date.as_str(), DATE);
        date.update(t + Duration::from_millis(999));
        assert_eq!(date.as_str(), DATE);
        date.update(t + Duration::from_secs(1));
        assert_eq!(date.as_str(), "Sun, 06 Nov 1994 08:49:38 GMT");
    }
}
