//! The trace body: validation (SPEC §3) and the one-pass JSON writer with the
//! key order and omission rules of SPEC §1. `dumps` returns exactly the bytes
//! the clients put on the wire.

pub mod encode;
pub mod validate;
pub mod value;

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyString, PyTuple};

use crate::error::Error;
use value::{dataclass_fields, type_name, SerError, Writer};

/// Sections, in wire order inside `"sections"`.
pub const SECTIONS: [&str; 11] = [
    "time_tracking",
    "customer",
    "support",
    "sales",
    "marketing",
    "content",
    "research",
    "project",
    "development",
    "executive",
    "general",
];

/// Every attribute of a TaskData the body reads.
const TASK_FIELDS: [&str; 22] = [
    "name",
    "description",
    "current_datetime",
    "duration",
    "time_tracking",
    "customer",
    "support",
    "sales",
    "marketing",
    "content",
    "research",
    "project",
    "development",
    "executive",
    "general",
    "llm_usage",
    "input_summary",
    "output_summary",
    "steps",
    "expected_outcome",
    "environment",
    "errors",
];

/// Reads trace fields from a TaskData (attributes) or a plain dict (keys).
enum Source<'a, 'py> {
    Object(&'a Bound<'py, PyAny>),
    Dict(&'a Bound<'py, PyDict>),
}

impl<'py> Source<'_, 'py> {
    fn get(&self, name: &str) -> PyResult<Option<Bound<'py, PyAny>>> {
        let v = match self {
            Source::Object(o) => match o.getattr(name) {
                Ok(v) => v,
                Err(e) if e.is_instance_of::<pyo3::exceptions::PyAttributeError>(o.py()) => return Ok(None),
                Err(e) => return Err(e),
            },
            Source::Dict(d) => match d.get_item(name)? {
                Some(v) => v,
                None => return Ok(None),
            },
        };
        Ok(if v.is_none() { None } else { Some(v) })
    }
}

fn to_error(e: SerError) -> Error {
    match e {
        SerError::Python(e) => Error::Python(e),
        SerError::Invalid { rev_path, message } => {
            let path = SerError::path(&rev_path);
            if path.is_empty() {
                Error::Validation { message, field: None }
            } else {
                Error::Validation {
                    message: format!("{path}: {message}"),
                    field: Some(path),
                }
            }
        }
    }
}

/// Validate and serialise one trace. `obj` is a `TaskData` (or any object
/// with its attributes) or a dict with the same keys.
pub fn serialize(obj: &Bound<'_, PyAny>) -> Result<Vec<u8>, Error> {
    let py = obj.py();
    let src = match obj.cast::<PyDict>() {
        Ok(d) => {
            for key in d.keys() {
                let known = key
                    .cast::<PyString>()
                    .ok()
                    .and_then(|k| {
                        value::str_utf8(k.as_any())
                            .ok()
                            .map(|k| TASK_FIELDS.contains(&k) || k == "prompt_studio")
                    })
                    .unwrap_or(false);
                if !known {
                    return Err(Error::validation(
                        format!(
                            "unknown trace field {}",
                            key.repr().map(|r| r.to_string()).unwrap_or_default()
                        ),
                        None,
                    ));
                }
            }
            Source::Dict(d)
        }
        Err(_) => {
            if !obj.hasattr(pyo3::intern!(py, "name"))? || !obj.hasattr(pyo3::intern!(py, "duration"))? {
                return Err(Error::validation(
                    format!("expected a TaskData or a dict, not {}", type_name(obj)),
                    None,
                ));
            }
            Source::Object(obj)
        }
    };

    let name = src.get("name")?;
    let description = src.get("description")?;
    let none = py.None().into_bound(py);
    validate::required_text(name.as_ref().unwrap_or(&none), "name", validate::MAX_NAME_LENGTH)?;
    validate::required_text(
        description.as_ref().unwrap_or(&none),
        "description",
        validate::MAX_DESCRIPTION_LENGTH,
    )?;
    let duration = src.get("duration")?;
    validate::duration(duration.as_ref().unwrap_or(&none))?;
    let when = src.get("current_datetime")?;
    validate::current_datetime(when.as_ref().unwrap_or(&none))?;

    let mut w = Writer::new(py, 4096);
    write_body(&mut w, &src, [name, description, when, duration]).map_err(to_error)?;
    if w.buf.len() > validate::MAX_PAYLOAD_SIZE {
        return Err(Error::validation(
            format!(
                "Payload exceeds maximum size of {} bytes",
                validate::MAX_PAYLOAD_SIZE
            ),
            None,
        ));
    }
    Ok(w.buf)
}

fn write_body<'py>(
    w: &mut Writer<'py>,
    src: &Source<'_, 'py>,
    head: [Option<Bound<'py, PyAny>>; 4],
) -> Result<(), SerError> {
    w.buf.push(b'{');
    let mut count = 0;
    // 1. always present, as they are.
    for (key, v) in ["name", "description", "current_datetime", "duration"]
        .iter()
        .zip(head.iter())
    {
        w.key(count, key);
        match v {
            Some(v) => w.write_value(v).map_err(|e| e.at_key(key))?,
            None => w.buf.extend_from_slice(b"null"),
        }
        count += 1;
    }
    // 2. summaries, as they are.
    for key in ["input_summary", "output_summary"] {
        if let Some(v) = src.get(key)? {
            w.key(count, key);
            w.write_value(&v).map_err(|e| e.at_key(key))?;
            count += 1;
        }
    }
    // 3.-6.
    if top_object(w, count, "expected_outcome", src.get("expected_outcome")?)? {
        count += 1;
    }
    for key in ["steps", "errors"] {
        if top_list(w, count, key, src.get(key)?)? {
            count += 1;
        }
    }
    if top_object(w, count, "llm_usage", src.get("llm_usage")?)? {
        count += 1;
    }
    // 7. sections.
    let start = w.buf.len();
    w.key(count, "sections");
    w.buf.push(b'{');
    let mut n = 0;
    for key in SECTIONS {
        if top_object(w, n, key, src.get(key)?).map_err(|e| e.at_key("sections"))? {
            n += 1;
        }
    }
    if n == 0 {
        w.buf.truncate(start);
    } else {
        w.buf.push(b'}');
        count += 1;
    }
    // 8. environment.
    if top_object(w, count, "environment", src.get("environment")?)? {
        count += 1;
    }
    // 9. prompt_studio (set by traced functions that fetched prompts).
    let studio = match src {
        Source::Object(o) => o
            .getattr(pyo3::intern!(w.py, "_prompt_studio"))
            .ok()
            .filter(|v| !v.is_none()),
        Source::Dict(_) => src.get("prompt_studio")?,
    };
    if let Some(v) = studio {
        w.key(count, "prompt_studio");
        w.write_value(&v).map_err(|e| e.at_key("prompt_studio"))?;
    }
    w.buf.push(b'}');
    Ok(())
}

/// A top-level object field (section, llm_usage, ...): a dataclass under the
/// omission rules, or a dict as it is; omitted when empty.
fn top_object<'py>(
    w: &mut Writer<'py>,
    count: usize,
    key: &str,
    v: Option<Bound<'py, PyAny>>,
) -> Result<bool, SerError> {
    let Some(v) = v else { return Ok(false) };
    item_object(w, count, Some(key), &v).map_err(|e| e.at_key(key))
}

/// Write `v` (dataclass or non-empty dict) behind `key` (or as a list item).
fn item_object<'py>(
    w: &mut Writer<'py>,
    count: usize,
    key: Option<&str>,
    v: &Bound<'py, PyAny>,
) -> Result<bool, SerError> {
    let start = w.buf.len();
    match key {
        Some(k) => w.key(count, k),
        None if count > 0 => w.buf.push(b','),
        None => {}
    }
    let kept = if let Ok(d) = v.cast::<PyDict>() {
        if d.is_empty() {
            false
        } else {
            w.write_value(v)?;
            true
        }
    } else if let Some(fields) = dataclass_fields(v)? {
        w.write_dataclass(v, &fields)?
    } else {
        return Err(SerError::invalid(format!(
            "expected a dataclass or a dict, not {}",
            type_name(v)
        )));
    };
    if !kept {
        w.buf.truncate(start);
    }
    Ok(kept)
}

/// `steps`/`errors`: a list of dataclasses or dicts; `None`, empty items and
/// an empty result are dropped.
fn top_list<'py>(
    w: &mut Writer<'py>,
    count: usize,
    key: &str,
    v: Option<Bound<'py, PyAny>>,
) -> Result<bool, SerError> {
    let Some(v) = v else { return Ok(false) };
    if !(v.is_instance_of::<PyList>() || v.is_instance_of::<PyTuple>()) {
        return Err(SerError::invalid(format!("expected a list, not {}", type_name(&v))).at_key(key));
    }
    let start = w.buf.len();
    w.key(count, key);
    w.buf.push(b'[');
    let mut n = 0;
    for (i, item) in v.try_iter()?.enumerate() {
        let item = item?;
        if item.is_none() {
            continue;
        }
        if item_object(w, n, None, &item).map_err(|e| e.at(value::Seg::Index(i)).at_key(key))? {
            n += 1;
        }
    }
    if n == 0 {
        w.buf.truncate(start);
        return Ok(false);
    }
    w.buf.push(b']');
    Ok(true)
}

/// Serialise any Python value under the plain-value rules (used for
/// `dumps_value` and tests).
pub fn serialize_value(v: &Bound<'_, PyAny>) -> Result<Vec<u8>, Error> {
    let mut w = Writer::new(v.py(), 256);
    w.write_value(v).map_err(to_error)?;
    Ok(w.buf)
}

/// `infinium.dumps(task_data) -> bytes`: exactly the body that would be sent.
#[pyfunction]
pub fn dumps<'py>(py: Python<'py>, task_data: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyBytes>> {
    let body = crate::guard(|| serialize(task_data))?;
    Ok(PyBytes::new(py, &body))
}

/// Serialise a plain value (dict/list/scalars, with the same extended types).
#[pyfunction]
pub fn dumps_value<'py>(py: Python<'py>, value: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyBytes>> {
    let body = crate::guard(|| serialize_value(value))?;
    Ok(PyBytes::new(py, &body))
}
