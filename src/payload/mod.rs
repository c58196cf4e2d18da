//! The trace body: validation (SPEC §3) and the one-pass JSON writer with the
//! key order and omission rules of SPEC §1. `dumps` returns exactly the bytes
//! the clients put on the wire.

pub mod encode;
pub mod validate;
pub mod value;

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyString, PyTuple};

use crate::error::Error;
use std::collections::HashMap;

use pyo3::sync::PyOnceLock;
use value::{dataclass_fields, type_name, Field, SerError, Writer};

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

/// The always-present head of the body.
const HEAD: [&str; 4] = ["name", "description", "current_datetime", "duration"];

/// The other optional TaskData attributes the body reads (besides SECTIONS).
const OTHERS: [&str; 7] = [
    "llm_usage",
    "input_summary",
    "output_summary",
    "steps",
    "expected_outcome",
    "environment",
    "errors",
];

/// Every attribute of a TaskData the body reads.
fn task_fields() -> impl Iterator<Item = &'static str> {
    HEAD.into_iter().chain(SECTIONS).chain(OTHERS)
}

/// FNV-1a: the keys are a fixed set of short field names, so a cheap hash
/// beats SipHash's DoS resistance here.
#[derive(Default, Clone, Copy)]
struct Fnv(u64);

impl std::hash::Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        let mut h = if self.0 == 0 {
            0xcbf2_9ce4_8422_2325
        } else {
            self.0
        };
        for b in bytes {
            h = (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
        }
        self.0 = h;
    }
}

type FnvBuild = std::hash::BuildHasherDefault<Fnv>;

static TOP: PyOnceLock<HashMap<&'static str, Field, FnvBuild>> = PyOnceLock::new();

/// The interned name and pre-encoded key of a top-level body field.
fn top(py: Python<'_>, name: &str) -> &'static Field {
    let map = TOP.get_or_init(py, || {
        task_fields()
            .chain(["sections", "prompt_studio", "_prompt_studio"])
            .map(|n| (n, Field::new(py, n)))
            .collect()
    });
    match map.get(name) {
        Some(f) => f,
        None => unreachable!("{name} is not a top-level field"),
    }
}

/// Size of the last body written (a capacity hint for the next).
static LAST_SIZE: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Reads trace fields from a TaskData (its `__dict__`, else attributes) or a
/// plain dict (keys).
enum Source<'py> {
    Object {
        obj: Bound<'py, PyAny>,
        dict: Option<Bound<'py, PyDict>>,
    },
    Dict(Bound<'py, PyDict>),
}

impl<'py> Source<'py> {
    fn get(&self, name: &str) -> PyResult<Option<Bound<'py, PyAny>>> {
        match self {
            Source::Object { obj, dict } => {
                value::read_field(obj, dict.as_ref(), top(obj.py(), name).name.bind(obj.py()))
            }
            Source::Dict(d) => Ok(d
                .get_item(top(d.py(), name).name.bind(d.py()))?
                .filter(|v| !v.is_none())),
        }
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
                            .map(|k| task_fields().any(|f| f == k) || k == "prompt_studio")
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
            Source::Dict(d.clone())
        }
        Err(_) => {
            if !obj.hasattr(pyo3::intern!(py, "name"))? || !obj.hasattr(pyo3::intern!(py, "duration"))? {
                return Err(Error::validation(
                    format!("expected a TaskData or a dict, not {}", type_name(obj)),
                    None,
                ));
            }
            Source::Object {
                obj: obj.clone(),
                dict: value::instance_dict(obj),
            }
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

    // Start with room for a body like the last one: no regrowth copies.
    let hint = LAST_SIZE.load(std::sync::atomic::Ordering::Relaxed);
    let mut w = Writer::new(py, (hint + hint / 8).clamp(1024, validate::MAX_PAYLOAD_SIZE));
    write_body(&mut w, &src, [name, description, when, duration]).map_err(to_error)?;
    LAST_SIZE.store(w.buf.len(), std::sync::atomic::Ordering::Relaxed);
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
    src: &Source<'py>,
    head: [Option<Bound<'py, PyAny>>; 4],
) -> Result<(), SerError> {
    w.buf.push(b'{');
    let mut count = 0;
    // 1. always present, as they are.
    for (key, v) in HEAD.iter().zip(head.iter()) {
        w.raw_key(count, &top(w.py, key).json_key);
        match v {
            Some(v) => w.write_value(v).map_err(|e| e.at_key(key))?,
            None => w.buf.extend_from_slice(b"null"),
        }
        count += 1;
    }
    // 2. summaries, as they are.
    for key in ["input_summary", "output_summary"] {
        if let Some(v) = src.get(key)? {
            w.raw_key(count, &top(w.py, key).json_key);
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
    w.raw_key(count, &top(w.py, "sections").json_key);
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
        Source::Object { .. } => src.get("_prompt_studio")?,
        Source::Dict(_) => src.get("prompt_studio")?,
    };
    if let Some(v) = studio {
        w.raw_key(count, &top(w.py, "prompt_studio").json_key);
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
        Some(k) => w.raw_key(count, &top(w.py, k).json_key),
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
    w.raw_key(count, &top(w.py, key).json_key);
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
