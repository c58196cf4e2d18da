//! The checks on a trace's head fields, with the anchor's exact messages and
//! order (name, then description present and not blank; then their lengths;
//! then duration; then current_datetime). One implementation serves
//! `dumps`/`send_task_data` (which take the values as they are), `send_task`
//! (which, as the anchor, turns `duration` into a float first) and the public
//! `infinium.utils.validate_*` helpers.

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyFloat, PyInt, PyString};

use super::ffi::{str_utf8, text_facts};
use super::iso::{self, Grammar};
use crate::error::Error;
use crate::schema::{MAX_DESCRIPTION_LENGTH, MAX_DURATION, MAX_NAME_LENGTH};

fn invalid(message: impl Into<String>, field: &str) -> Error {
    Error::validation(message, Some(field))
}

fn too_long(field: &str, max: impl std::fmt::Display) -> Error {
    invalid(
        format!("{field} exceeds maximum length of {max} characters"),
        field,
    )
}

/// What the length and blank checks know of a value.
enum Text {
    /// Not a str: neither check applies.
    Other,
    /// A str: blank (only what `str.strip()` removes), code points.
    Str { blank: bool, chars: usize },
}

/// Read `value` for the text checks. `strict`: a str holding a lone
/// surrogate is an error (it cannot be sent); else it is a str like another
/// (never blank: a surrogate is not whitespace).
fn text(value: &Bound<'_, PyAny>, field: &str, strict: bool) -> Result<Text, Error> {
    let Ok(value) = value.cast::<PyString>() else {
        return Ok(Text::Other);
    };
    Ok(match text_facts(value) {
        Some((blank, chars)) => Text::Str { blank, chars },
        None if strict => return Err(invalid(format!("{field} is not valid Unicode"), field)),
        None => Text::Str {
            blank: false,
            chars: str_len(value)?,
        },
    })
}

/// `len()` of a str, as CPython stores it (no user `__len__` runs).
fn str_len(value: &Bound<'_, PyString>) -> PyResult<usize> {
    // SAFETY: `value` is a live str (its type says so: the caller cast it)
    // and the GIL is held; `PyUnicode_GetLength` reads the stored length.
    let n = unsafe { pyo3::ffi::PyUnicode_GetLength(value.as_ptr()) };
    usize::try_from(n).map_err(|_| PyErr::fetch(value.py()))
}

/// `field` is present (not None) and, when a str, not blank.
fn required(value: &Bound<'_, PyAny>, t: &Text, field: &str) -> Result<(), Error> {
    if value.is_none() {
        return Err(invalid(format!("{field} is required"), field));
    }
    if let Text::Str { blank: true, .. } = t {
        return Err(invalid(format!("{field} cannot be empty"), field));
    }
    Ok(())
}

/// When a str, `field` is at most `max` code points long.
fn max_length(t: &Text, field: &str, max: usize) -> Result<(), Error> {
    match t {
        Text::Str { chars, .. } if *chars > max => Err(too_long(field, max)),
        _ => Ok(()),
    }
}

/// How `duration` is taken.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Duration {
    /// As it is: an int (not a bool) or a float (a trace's `duration`).
    AsIs,
    /// Through `float()` first, as the anchor's `send_task` does (so `"1.5"`
    /// and `Decimal` are accepted there).
    Coerce,
}

/// The head checks in the anchor's order. `current_datetime` `None` is
/// skipped (the caller stamps it). Returns the duration as a float.
pub fn head(
    name: &Bound<'_, PyAny>,
    description: &Bound<'_, PyAny>,
    duration: &Bound<'_, PyAny>,
    current_datetime: Option<&Bound<'_, PyAny>>,
    how: Duration,
) -> Result<f64, Error> {
    let strict = how == Duration::AsIs;
    let n = text(name, "name", strict)?;
    let d = text(description, "description", strict)?;
    required(name, &n, "name")?;
    required(description, &d, "description")?;
    max_length(&n, "name", MAX_NAME_LENGTH)?;
    max_length(&d, "description", MAX_DESCRIPTION_LENGTH)?;
    let seconds = match how {
        Duration::AsIs => number(duration)?,
        Duration::Coerce => coerce(duration)?,
    };
    check_duration(seconds)?;
    if let Some(when) = current_datetime {
        if !iso_datetime(when)? {
            return Err(invalid(
                "current_datetime must be a valid ISO 8601 string",
                "current_datetime",
            ));
        }
    }
    Ok(seconds)
}

const NOT_A_NUMBER: &str = "duration must be a number";

/// An int (not a bool) or a float, as a float.
fn number(value: &Bound<'_, PyAny>) -> Result<f64, Error> {
    let is_number = (value.is_instance_of::<PyInt>() && !value.is_instance_of::<PyBool>())
        || value.is_instance_of::<PyFloat>();
    if !is_number {
        return Err(invalid(NOT_A_NUMBER, "duration"));
    }
    value
        .extract::<f64>()
        .map_err(|_| invalid(NOT_A_NUMBER, "duration"))
}

/// `float(value)`; its TypeError or ValueError becomes the anchor's
/// ValidationError (with the original as its context, as the anchor's
/// `raise` inside `except` chains it); anything else propagates.
fn coerce(value: &Bound<'_, PyAny>) -> Result<f64, Error> {
    let py = value.py();
    match py.get_type::<PyFloat>().call1((value,)) {
        Ok(f) => Ok(f.extract::<f64>().map_err(Error::Python)?),
        Err(e) if e.is_instance_of::<PyTypeError>(py) || e.is_instance_of::<PyValueError>(py) => {
            let err = PyErr::from(invalid(NOT_A_NUMBER, "duration"));
            err.value(py)
                .setattr(pyo3::intern!(py, "__context__"), e.value(py))
                .map_err(Error::Python)?;
            Err(Error::Python(err))
        }
        Err(e) => Err(Error::Python(e)),
    }
}

/// The range checks on a duration in seconds.
pub fn check_duration(d: f64) -> Result<(), Error> {
    if d.is_nan() {
        return Err(invalid("duration cannot be NaN", "duration"));
    }
    if d == f64::INFINITY {
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

/// The running interpreter's `fromisoformat` grammar.
fn grammar(py: Python<'_>) -> Grammar {
    static MINOR: std::sync::OnceLock<u8> = std::sync::OnceLock::new();
    Grammar::for_python(*MINOR.get_or_init(|| py.version_info().minor))
}

/// The anchor's `validate_iso_datetime`: a str that Python's
/// `datetime.fromisoformat` reads (after `strip()` and `Z` -> `+00:00`) to a
/// year from 1900 to 2100. Decided natively, no Python code runs.
pub fn iso_datetime(value: &Bound<'_, PyAny>) -> PyResult<bool> {
    iso_datetime_as(value, grammar(value.py()))
}

pub fn iso_datetime_as(value: &Bound<'_, PyAny>, grammar: Grammar) -> PyResult<bool> {
    let Ok(value) = value.cast::<PyString>() else {
        return Ok(false);
    };
    if let Ok(text) = str_utf8(value) {
        return Ok(iso::anchor_accepts_str(text, grammar));
    }
    // Holds a lone surrogate: read its code points one by one.
    let n = str_len(value)?;
    let mut cps = Vec::with_capacity(n);
    for i in 0..n {
        // SAFETY: `value` is a live str (cast above) of `n` code points,
        // GIL held; the index is in range, so this cannot fail.
        let c = unsafe { pyo3::ffi::PyUnicode_ReadChar(value.as_ptr(), i as pyo3::ffi::Py_ssize_t) };
        cps.push(c);
    }
    Ok(iso::anchor_accepts(&cps, grammar))
}

// ---- the public helpers' rules (`infinium.utils.validate_*` wrap these) ----

/// `send_task`'s checks; returns the duration as a float.
#[pyfunction]
pub fn validate_task_fields(
    name: &Bound<'_, PyAny>,
    description: &Bound<'_, PyAny>,
    duration: &Bound<'_, PyAny>,
    current_datetime: Option<&Bound<'_, PyAny>>,
) -> PyResult<f64> {
    crate::guard(|| head(name, description, duration, current_datetime, Duration::Coerce))
}

/// `float(duration)` in [0, 86400], or the anchor's ValidationError.
#[pyfunction]
pub fn validate_duration(duration: &Bound<'_, PyAny>) -> PyResult<f64> {
    crate::guard(|| {
        let d = coerce(duration)?;
        check_duration(d)?;
        Ok(d)
    })
}

#[pyfunction]
pub fn validate_iso_datetime(datetime_str: &Bound<'_, PyAny>) -> PyResult<bool> {
    iso_datetime(datetime_str)
}

/// Test hook: the check under another Python version's grammar.
#[cfg(debug_assertions)]
#[pyfunction]
pub fn _validate_iso_datetime_as(datetime_str: &Bound<'_, PyAny>, minor: u8) -> PyResult<bool> {
    iso_datetime_as(datetime_str, Grammar::for_python(minor))
}

fn field_text(field_name: &Bound<'_, PyAny>) -> PyResult<String> {
    Ok(field_name.str()?.to_string_lossy().into_owned())
}

#[pyfunction]
pub fn validate_required_field(value: &Bound<'_, PyAny>, field_name: &Bound<'_, PyAny>) -> PyResult<()> {
    let field = field_text(field_name)?;
    crate::guard(|| {
        let t = text(value, &field, false)?;
        required(value, &t, &field)
    })
}

#[pyfunction]
pub fn validate_string_length<'py>(
    value: &Bound<'py, PyAny>,
    field_name: &Bound<'py, PyAny>,
    max_length: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    // `len(value) > max_length`, compared by Python (any number type).
    let Ok(text) = value.cast::<PyString>() else {
        return Ok(value.clone());
    };
    if str_len(text)?.into_pyobject(value.py())?.gt(max_length)? {
        let (field, max) = (field_text(field_name)?, max_length.str()?);
        return Err(too_long(&field, max).into());
    }
    Ok(value.clone())
}

/// Register the helpers on `_core`.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(validate_task_fields, m)?)?;
    m.add_function(wrap_pyfunction!(validate_duration, m)?)?;
    m.add_function(wrap_pyfunction!(validate_iso_datetime, m)?)?;
    m.add_function(wrap_pyfunction!(validate_required_field, m)?)?;
    m.add_function(wrap_pyfunction!(validate_string_length, m)?)?;
    #[cfg(debug_assertions)]
    m.add_function(wrap_pyfunction!(_validate_iso_datetime_as, m)?)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

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
            check_duration(f64::NEG_INFINITY).unwrap_err().message(),
            "duration must be non-negative"
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

    #[test]
    fn the_length_message() {
        assert_eq!(
            too_long("name", MAX_NAME_LENGTH).message(),
            "name exceeds maximum length of 500 characters"
        );
    }
}
