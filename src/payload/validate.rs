//! The checks of SPEC §3 on a trace, with the anchor's exact messages.

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBool, PyFloat, PyInt, PyString};

use super::value::{str_utf8, text_facts};
use crate::error::Error;

use crate::schema::MAX_DURATION;

fn invalid(message: impl Into<String>, field: &str) -> Error {
    Error::validation(message, Some(field))
}

/// `name`/`description`: present, not blank, not longer than `max` characters.
pub fn required_text(value: &Bound<'_, PyAny>, field: &str, max: usize) -> Result<(), Error> {
    if value.is_none() {
        return Err(invalid(format!("{field} is required"), field));
    }
    if value.is_instance_of::<PyString>() {
        let (blank, chars) =
            text_facts(value).ok_or_else(|| invalid(format!("{field} is not valid Unicode"), field))?;
        if blank {
            return Err(invalid(format!("{field} cannot be empty"), field));
        }
        // Python counts code points.
        if chars > max {
            return Err(invalid(
                format!("{field} exceeds maximum length of {max} characters"),
                field,
            ));
        }
    }
    Ok(())
}

/// `duration`: a number, finite, 0 <= d <= 86400.
pub fn duration(value: &Bound<'_, PyAny>) -> Result<(), Error> {
    let is_number = (value.is_instance_of::<PyInt>() && !value.is_instance_of::<PyBool>())
        || value.is_instance_of::<PyFloat>();
    if !is_number {
        return Err(invalid("duration must be a number", "duration"));
    }
    let d: f64 = value
        .extract()
        .map_err(|_| invalid("duration must be a number", "duration"))?;
    check_duration(d)
}

pub fn check_duration(d: f64) -> Result<(), Error> {
    if d.is_nan() {
        return Err(invalid("duration cannot be NaN", "duration"));
    }
    if d.is_infinite() && d > 0.0 {
        return Err(invalid("duration cannot be infinite", "duration"));
    }
    if d < 0.0 {
        return Err(invalid("duration must be non-negative", "duration"));
    }
    if d > f64::from(MAX_DURATION) {
        return Err(invalid(
            format!("duration cannot exceed {MAX_DURATION} seconds (24 hours)"),
            "duration",
        ));
    }
    Ok(())
}

static PY_VALIDATE_ISO: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// `current_datetime`: ISO 8601, year 1900..=2100. The common shapes are
/// checked here; anything else is decided by `infinium.utils.validate_iso_datetime`
/// (Python's `datetime.fromisoformat`, as the anchor does).
pub fn current_datetime(value: &Bound<'_, PyAny>) -> Result<(), Error> {
    let err = || {
        invalid(
            "current_datetime must be a valid ISO 8601 string",
            "current_datetime",
        )
    };
    if !value.is_instance_of::<PyString>() {
        return Err(err());
    }
    let text = str_utf8(value).map_err(|_| err())?;
    match fast_iso(text.trim()) {
        Some(true) => Ok(()),
        Some(false) => Err(err()),
        None => {
            let py = value.py();
            let f = PY_VALIDATE_ISO.get_or_try_init(py, || {
                py.import("infinium.utils")?
                    .getattr("validate_iso_datetime")
                    .map(Bound::unbind)
            })?;
            if f.bind(py).call1((value,))?.is_truthy()? {
                Ok(())
            } else {
                Err(err())
            }
        }
    }
}

fn digits(s: &[u8]) -> Option<u32> {
    if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(s.iter().fold(0u32, |acc, d| acc * 10 + u32::from(d - b'0')))
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        _ => 28,
    }
}

/// `Some(valid)` for `YYYY-MM-DD[(T| )HH:MM[:SS[.fff|.ffffff]]][Z|±HH:MM]`,
/// `None` for any other shape (left to Python).
pub fn fast_iso(s: &str) -> Option<bool> {
    let b = s.as_bytes();
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let (y, m, d) = (digits(&b[0..4])?, digits(&b[5..7])?, digits(&b[8..10])?);
    if !(1..=12).contains(&m) || d == 0 || d > days_in_month(y, m) {
        return Some(false);
    }
    let year_ok = (1900..=2100).contains(&y);
    let mut rest = &b[10..];
    if rest.is_empty() {
        return Some(year_ok);
    }
    if rest[0] != b'T' && rest[0] != b' ' {
        return None;
    }
    rest = &rest[1..];
    if rest.len() < 5 || rest[2] != b':' {
        return None;
    }
    let (hh, mm) = (digits(&rest[0..2])?, digits(&rest[3..5])?);
    rest = &rest[5..];
    let mut ss = 0;
    if rest.first() == Some(&b':') {
        if rest.len() < 3 {
            return None;
        }
        ss = digits(&rest[1..3])?;
        rest = &rest[3..];
        if rest.first() == Some(&b'.') {
            let n = rest[1..].iter().take_while(|c| c.is_ascii_digit()).count();
            if n != 3 && n != 6 {
                return None;
            }
            rest = &rest[1 + n..];
        }
    }
    if hh > 23 || mm > 59 || ss > 59 {
        return Some(false);
    }
    match rest {
        [] | [b'Z'] => Some(year_ok),
        [sign, h1, h2, b':', m1, m2] if *sign == b'+' || *sign == b'-' => {
            let (oh, om) = (digits(&[*h1, *h2])?, digits(&[*m1, *m2])?);
            if oh > 23 || om > 59 {
                return Some(false);
            }
            Some(year_ok)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_fast_path() {
        assert_eq!(fast_iso("2026-11-22T04:06:00.123456Z"), Some(true));
        assert_eq!(fast_iso("2026-11-22T04:06:00+02:00"), Some(true));
        assert_eq!(fast_iso("2026-11-22"), Some(true));
        assert_eq!(fast_iso("2026-11-22 04:06"), Some(true));
        assert_eq!(fast_iso("1899-12-31T00:00:00"), Some(false));
        assert_eq!(fast_iso("2101-01-01T00:00:00Z"), Some(false));
        assert_eq!(fast_iso("2026-02-30T00:00:00Z"), Some(false));
        assert_eq!(fast_iso("2024-02-29T00:00:00Z"), Some(true));
        assert_eq!(fast_iso("2026-11-22T25:00:00Z"), Some(false));
        assert_eq!(fast_iso("not a date"), None);
        assert_eq!(fast_iso("2026-11-22T04:06:00.1Z"), None);
        assert_eq!(fast_iso("20261122"), None);
    }

    #[test]
    fn durations() {
        assert!(check_duration(0.0).is_ok());
        assert!(check_duration(86_400.0).is_ok());
        assert_eq!(
            check_duration(f64::NAN).unwrap_err().message(),
            "duration cannot be NaN"
        );
        assert_eq!(
            check_duration(f64::INFINITY).unwrap_err().message(),
            "duration cannot be infinite"
        );
        assert_eq!(
            check_duration(-1.0).unwrap_err().message(),
            "duration must be non-negative"
        );
        assert_eq!(
            check_duration(86_400.5).unwrap_err().message(),
            "duration cannot exceed 86400 seconds (24 hours)"
        );
    }
}
