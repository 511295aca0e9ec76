//! Ganga's naive `datetime.datetime(...)` values as [`Timestamp`]s.
//!
//! Ganga stamps statuses with `datetime.datetime.utcnow()`, so the values are UTC without
//! saying so; they are read as UTC. Microseconds are truncated to milliseconds.
//! (`backend_*` stamps come from the worker's clock and `time.strptime`; they are kept as
//! text, never converted.)

use ganga_core::Timestamp;

use crate::pyliteral::PyValue;

/// A `datetime.datetime(Y, M, D[, h, m, s, µs])` call, as its parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DateTime {
    pub(crate) year: i64,
    pub(crate) month: u32,
    pub(crate) day: u32,
    pub(crate) hour: u32,
    pub(crate) minute: u32,
    pub(crate) second: u32,
    pub(crate) micro: u32,
}

impl DateTime {
    pub(crate) fn from_py(v: &PyValue) -> Option<DateTime> {
        let PyValue::Call { name, .. } = v else {
            return None;
        };
        if name != "datetime.datetime" && name != "datetime" {
            return None;
        }
        let part = |key: &str, pos: usize, default: Option<i64>| -> Option<i64> {
            match v.call_arg(key, pos) {
                Some(p) => p.as_int(),
                None => default,
            }
        };
        let dt = DateTime {
            year: part("year", 0, None)?,
            month: u32::try_from(part("month", 1, None)?).ok()?,
            day: u32::try_from(part("day", 2, None)?).ok()?,
            hour: u32::try_from(part("hour", 3, Some(0))?).ok()?,
            minute: u32::try_from(part("minute", 4, Some(0))?).ok()?,
            second: u32::try_from(part("second", 5, Some(0))?).ok()?,
            micro: u32::try_from(part("microsecond", 6, Some(0))?).ok()?,
        };
        let valid = (1..=9999).contains(&dt.year)
            && (1..=12).contains(&dt.month)
            && dt.day >= 1
            && dt.day <= days_in_month(dt.year, dt.month)
            && dt.hour < 24
            && dt.minute < 60
            && dt.second < 60
            && dt.micro < 1_000_000;
        valid.then_some(dt)
    }

    /// Milliseconds since the epoch, reading the value as UTC.
    pub(crate) fn timestamp(&self) -> Timestamp {
        let days = days_from_civil(self.year, self.month, self.day);
        let secs = days * 86_400
            + i64::from(self.hour) * 3600
            + i64::from(self.minute) * 60
            + i64::from(self.second);
        Timestamp::from_millis(secs * 1000 + i64::from(self.micro / 1000))
    }

    /// Python's `isoformat()`: `2026-11-22T18:58:33.911865`, without fraction when zero.
    pub(crate) fn iso(&self) -> String {
        let mut s = format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        );
        if self.micro != 0 {
            s.push_str(&format!(".{:06}", self.micro));
        }
        s
    }
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if is_leap(y) => 29,
        _ => 28,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::pyliteral::parse;

    fn dt(s: &str) -> DateTime {
        DateTime::from_py(&parse(s).unwrap()).unwrap()
    }

    #[test]
    fn converts_like_calendar_timegm() {
        // Values checked with Python: calendar.timegm(dt.timetuple())*1000 + µs//1000.
        assert_eq!(
            dt("datetime.datetime(1970, 1, 1, 0, 0)")
                .timestamp()
                .as_millis(),
            0
        );
        assert_eq!(
            dt("datetime.datetime(2026, 11, 22, 18, 58, 37, 17558)")
                .timestamp()
                .as_millis(),
            1_795_373_917_017
        );
        assert_eq!(
            dt("datetime.datetime(2000, 2, 29, 23, 59, 59, 999999)")
                .timestamp()
                .as_millis(),
            951_868_799_999
        );
        assert_eq!(
            dt("datetime.datetime(1969, 12, 31, 23, 59, 59)")
                .timestamp()
                .as_millis(),
            -1000
        );
    }

    #[test]
    fn iso_like_python() {
        assert_eq!(
            dt("datetime.datetime(2026, 11, 22, 18, 58, 32)").iso(),
            "2026-11-22T18:58:32"
        );
        assert_eq!(
            dt("datetime.datetime(2026, 1, 2, 3, 4, 5, 60)").iso(),
            "2026-01-02T03:04:05.000060"
        );
    }

    #[test]
    fn refuses_what_is_not_a_date() {
        for bad in [
            "datetime.datetime(2026, 2, 30)",
            "datetime.datetime(2026, 13, 1)",
            "datetime.date(2026, 1, 1)",
            "'2026-01-01'",
            "datetime.datetime(2026)",
        ] {
            assert!(DateTime::from_py(&parse(bad).unwrap()).is_none(), "{bad}");
        }
        assert_eq!(dt("datetime.datetime(year=2026, month=1, day=2)").day, 2);
    }
}
