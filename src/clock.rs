//! Wall-clock timestamps in the wire format of `current_datetime`:
//! `YYYY-MM-DDTHH:MM:SS.ffffffZ` (UTC, microseconds), what
//! `datetime.now(timezone.utc).isoformat(timespec="microseconds")` gives with
//! the `+00:00` offset written as `Z`. Every decorated call stamps one, so it
//! is made here rather than through `datetime` (a tenth of the cost).

use std::time::{SystemTime, UNIX_EPOCH};

use pyo3::prelude::*;

/// Civil date of a day count since 1970-01-01 (proleptic Gregorian; Howard
/// Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11]
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32; // [1, 31]
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32; // [1, 12]
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// `micros` since the Unix epoch (negative before it) as the wire timestamp.
pub fn iso_utc_micros(micros: i64) -> String {
    let secs = micros.div_euclid(1_000_000);
    let frac = micros.rem_euclid(1_000_000);
    let (year, month, day) = civil_from_days(secs.div_euclid(86_400));
    let sod = secs.rem_euclid(86_400);
    if !(0..=9999).contains(&year) {
        // Outside what four digits hold (a clock gone very wrong): let
        // the formatter say so rather than write a wrong date.
        return format!(
            "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{frac:06}Z",
            sod / 3600,
            sod % 3600 / 60,
            sod % 60
        );
    }
    // Written digit by digit: `format!` cost more than the rest of a stamp.
    let mut out = [0u8; 27];
    let mut put = |at: usize, width: usize, mut v: u64| {
        for i in (at..at + width).rev() {
            out[i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    put(0, 4, year as u64);
    put(5, 2, u64::from(month));
    put(8, 2, u64::from(day));
    put(11, 2, (sod / 3600) as u64);
    put(14, 2, (sod % 3600 / 60) as u64);
    put(17, 2, (sod % 60) as u64);
    put(20, 6, frac as u64);
    for (at, b) in [
        (4, b'-'),
        (7, b'-'),
        (10, b'T'),
        (13, b':'),
        (16, b':'),
        (19, b'.'),
        (26, b'Z'),
    ] {
        out[at] = b;
    }
    // ASCII by construction: the lossy conversion never replaces anything.
    String::from_utf8_lossy(&out).into_owned()
}

/// Now, as the wire timestamp. A clock set before 1970 counts backwards.
pub fn now_iso() -> String {
    let micros = match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_micros()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_micros()).unwrap_or(i64::MAX),
    };
    iso_utc_micros(micros)
}

/// `iso_now() -> str`: the current UTC time as `YYYY-MM-DDTHH:MM:SS.ffffffZ`.
#[pyfunction]
pub fn iso_now() -> String {
    now_iso()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_instants() {
        assert_eq!(iso_utc_micros(0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(iso_utc_micros(1), "1970-01-01T00:00:00.000001Z");
        assert_eq!(iso_utc_micros(-1), "1969-12-31T23:59:59.999999Z");
        // 2000-02-29 (leap day of a century leap year) 12:34:56.789012
        assert_eq!(iso_utc_micros(951_827_696_789_012), "2000-02-29T12:34:56.789012Z");
        // 2100-03-01: 2100 is not a leap year
        assert_eq!(
            iso_utc_micros(4_107_542_400_000_000),
            "2100-03-01T00:00:00.000000Z"
        );
        assert_eq!(
            iso_utc_micros(1_795_305_600_123_456),
            "2026-11-22T00:00:00.123456Z"
        );
    }

    #[test]
    fn every_day_of_four_centuries_round_trips() {
        // Days since the epoch -> civil -> days, against a straightforward count.
        let mut days = -719_468i64; // 0000-03-01
        let (mut y, mut m, mut d) = (0i64, 3u32, 1u32);
        let leap = |y: i64| (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
        let len = |y: i64, m: u32| match m {
            2 if leap(y) => 29,
            2 => 28,
            4 | 6 | 9 | 11 => 30,
            _ => 31,
        };
        while days < 146_097 * 4 {
            assert_eq!(civil_from_days(days), (y, m, d), "day {days}");
            days += 1;
            d += 1;
            if d > len(y, m) {
                d = 1;
                m += 1;
                if m > 12 {
                    m = 1;
                    y += 1;
                }
            }
        }
    }
}
