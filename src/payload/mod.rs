//! The trace body: validation (SPEC §3) and the one-pass JSON writer with the
//! key order and omission rules of SPEC §1. `dumps` returns exactly the bytes
//! the clients put on the wire.

mod attrs;
mod dataclass;
pub mod encode;
mod error;
mod ffi;
pub mod iso;
mod types;
pub mod validate;
mod wide;
mod writer;

use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyBytes, PyDict, PyList, PyMapping, PyString, PyTuple};

use crate::error::Error;

use error::{Seg, SerError};
use pyo3::sync::PyOnceLock;
use types::{dataclass_info, type_info, type_name, Field};
use writer::Writer;

use crate::schema::{self, field_index, SECTIONS, TASK_FIELDS};

// Indices into `Top::fields`: `TaskData`'s declaration order, then the
// Prompt Studio record.
const NAME: usize = field_index("name");
const DESCRIPTION: usize = field_index("description");
const CURRENT_DATETIME: usize = field_index("current_datetime");
const DURATION: usize = field_index("duration");
const FIRST_SECTION: usize = field_index(SECTIONS[0]);
const LLM_USAGE: usize = field_index("llm_usage");
const INPUT_SUMMARY: usize = field_index("input_summary");
const OUTPUT_SUMMARY: usize = field_index("output_summary");
const STEPS: usize = field_index("steps");
const EXPECTED_OUTCOME: usize = field_index("expected_outcome");
const ENVIRONMENT: usize = field_index("environment");
const ERRORS: usize = field_index("errors");
/// `_prompt_studio` on an object, `prompt_studio` in a dict.
const STUDIO: usize = TASK_FIELDS.len();
const N_TOP: usize = STUDIO + 1;

/// The interned names and pre-encoded keys of the body's top-level fields.
struct Top {
    /// The attributes read from a TaskData (the last: `_prompt_studio`).
    fields: Vec<Field>,
    /// The keys accepted in a dict trace (the last: `prompt_studio`).
    dict_keys: Vec<Field>,
    sections: Field,
}

static TOP: PyOnceLock<Top> = PyOnceLock::new();

fn top(py: Python<'_>) -> &'static Top {
    TOP.get_or_init(py, || Top {
        fields: TASK_FIELDS
            .into_iter()
            .chain([schema::PROMPT_STUDIO_ATTR])
            .map(|n| Field::new(py, n))
            .collect(),
        dict_keys: TASK_FIELDS
            .into_iter()
            .chain([schema::PROMPT_STUDIO_KEY])
            .map(|n| Field::new(py, n))
            .collect(),
        sections: Field::new(py, schema::SECTIONS_KEY),
    })
}

/// Size of the last body written (a capacity hint for the next).
static LAST_SIZE: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// The anchor's message for a body over the limit.
fn too_large() -> Error {
    Error::validation(
        format!(
            "Payload exceeds maximum size of {} bytes",
            schema::MAX_PAYLOAD_SIZE
        ),
        None,
    )
}

fn to_error(e: SerError) -> Error {
    match e {
        SerError::Python(e) => Error::Python(e),
        SerError::TooLarge => too_large(),
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

/// The top-level values of a trace (`None` for missing or None), indexed as
/// `Top::fields`.
type Values<'py> = Vec<Option<Bound<'py, PyAny>>>;

/// Read the trace fields of a dict trace, rejecting unknown keys.
fn read_dict<'py>(d: &Bound<'py, PyDict>, top: &Top) -> Result<Values<'py>, Error> {
    let mut out: Values<'py> = Vec::with_capacity(N_TOP);
    out.resize_with(N_TOP, || None);
    for (key, v) in d.iter() {
        match top.dict_keys.iter().position(|f| ffi::key_matches(&key, f)) {
            Some(j) => out[j] = if v.is_none() { None } else { Some(v) },
            None => {
                return Err(Error::validation(
                    format!(
                        "unknown trace field {}",
                        key.repr().map(|r| r.to_string()).unwrap_or_default()
                    ),
                    None,
                ))
            }
        }
    }
    Ok(out)
}

/// Read the trace fields of a TaskData (or any object with its attributes).
fn read_object<'py>(obj: &Bound<'py, PyAny>, top: &Top) -> Result<Values<'py>, Error> {
    let py = obj.py();
    let info = type_info(obj).map_err(to_error)?;
    let missing = || {
        Error::validation(
            format!("expected a TaskData or a dict, not {}", type_name(obj)),
            None,
        )
    };
    if !info.plain
        && (!obj.hasattr(top.fields[NAME].name.bind(py))?
            || !obj.hasattr(top.fields[DURATION].name.bind(py))?)
    {
        return Err(missing());
    }
    let class_attr = info.top_class_attr(py, &top.fields)?;
    let values = attrs::read_names(obj, &info, &top.fields, class_attr)?;
    if values[NAME].is_none() || values[DURATION].is_none() {
        return Err(missing());
    }
    Ok(values.into_iter().map(Option::flatten).collect())
}

/// Validate and serialise one trace. `obj` is a `TaskData` (or any object
/// with its attributes) or a dict with the same keys.
pub fn serialize(obj: &Bound<'_, PyAny>) -> Result<Vec<u8>, Error> {
    serialize_into(obj, Vec::new())
}

/// `serialize`, writing into `buf` (emptied first; its capacity is reused).
pub fn serialize_into(obj: &Bound<'_, PyAny>, buf: Vec<u8>) -> Result<Vec<u8>, Error> {
    let py = obj.py();
    let top = top(py);
    let values = match obj.cast::<PyDict>() {
        Ok(d) => read_dict(d, top)?,
        Err(_) => read_object(obj, top)?,
    };

    let none = py.None().into_bound(py);
    let get = |i: usize| values[i].as_ref().unwrap_or(&none);
    validate::head(
        get(NAME),
        get(DESCRIPTION),
        get(DURATION),
        Some(get(CURRENT_DATETIME)),
        validate::Duration::AsIs,
    )?;

    // Start with room for a body like the last one: no regrowth copies.
    let hint = LAST_SIZE.load(std::sync::atomic::Ordering::Relaxed);
    let mut w = Writer::with_buf(py, buf);
    w.buf
        .reserve((hint + hint / 8).clamp(512, schema::MAX_PAYLOAD_SIZE));
    write_body(&mut w, top, &values).map_err(to_error)?;
    LAST_SIZE.store(w.buf.len(), std::sync::atomic::Ordering::Relaxed);
    if w.buf.len() > schema::MAX_PAYLOAD_SIZE {
        return Err(too_large());
    }
    Ok(w.buf)
}

fn write_body<'py>(w: &mut Writer<'py>, top: &Top, values: &Values<'py>) -> Result<(), SerError> {
    let f = &top.fields;
    w.buf.push(b'{');
    let mut count = 0;
    // 1. always present, as they are.
    for i in [NAME, DESCRIPTION, CURRENT_DATETIME, DURATION] {
        w.raw_key(count, &f[i].json_key);
        match &values[i] {
            Some(v) => w.write_value(v).map_err(|e| e.at_key(&f[i].text))?,
            None => w.buf.extend_from_slice(b"null"),
        }
        count += 1;
    }
    // 2. summaries, as they are.
    for i in [INPUT_SUMMARY, OUTPUT_SUMMARY] {
        if let Some(v) = &values[i] {
            w.raw_key(count, &f[i].json_key);
            w.write_value(v).map_err(|e| e.at_key(&f[i].text))?;
            count += 1;
        }
    }
    // 3.-6.
    if top_object(w, count, &f[EXPECTED_OUTCOME], &values[EXPECTED_OUTCOME])? {
        count += 1;
    }
    for i in [STEPS, ERRORS] {
        if top_list(w, count, &f[i], &values[i])? {
            count += 1;
        }
    }
    if top_object(w, count, &f[LLM_USAGE], &values[LLM_USAGE])? {
        count += 1;
    }
    // 7. sections.
    let start = w.buf.len();
    w.raw_key(count, &top.sections.json_key);
    w.buf.push(b'{');
    let mut n = 0;
    for i in FIRST_SECTION..FIRST_SECTION + SECTIONS.len() {
        if top_object(w, n, &f[i], &values[i]).map_err(|e| e.at_key("sections"))? {
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
    if top_object(w, count, &f[ENVIRONMENT], &values[ENVIRONMENT])? {
        count += 1;
    }
    // 9. prompt_studio (set by traced functions that fetched prompts).
    if let Some(v) = &values[STUDIO] {
        let key = &top.dict_keys[STUDIO];
        w.raw_key(count, &key.json_key);
        w.write_value(v).map_err(|e| e.at_key(&key.text))?;
    }
    w.buf.push(b'}');
    Ok(())
}

/// A top-level object field (section, llm_usage, ...): a dataclass under the
/// omission rules, or a dict as it is; omitted when empty.
fn top_object<'py>(
    w: &mut Writer<'py>,
    count: usize,
    key: &Field,
    v: &Option<Bound<'py, PyAny>>,
) -> Result<bool, SerError> {
    let Some(v) = v else { return Ok(false) };
    item_object(w, count, Some(&key.json_key), v).map_err(|e| e.at_key(&key.text))
}

/// Write `v` (dataclass or non-empty dict) behind `key` (or as a list item).
fn item_object<'py>(
    w: &mut Writer<'py>,
    count: usize,
    json_key: Option<&[u8]>,
    v: &Bound<'py, PyAny>,
) -> Result<bool, SerError> {
    let start = w.buf.len();
    match json_key {
        Some(k) => w.raw_key(count, k),
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
    } else if let Some(info) = dataclass_info(v)? {
        w.write_dataclass(v, &info)?
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
/// an empty result are dropped. As in the anchor, which iterates the value,
/// any other iterable (a generator, `map(...)`) serves as the list; a str,
/// bytes or a mapping, which the anchor iterates into nothing, is an error.
fn top_list<'py>(
    w: &mut Writer<'py>,
    count: usize,
    key: &Field,
    v: &Option<Bound<'py, PyAny>>,
) -> Result<bool, SerError> {
    let Some(v) = v else { return Ok(false) };
    let not_a_list = || SerError::invalid(format!("expected a list, not {}", type_name(v))).at_key(&key.text);
    let exact = v.is_exact_instance_of::<PyList>() || v.is_exact_instance_of::<PyTuple>();
    let items = if exact {
        None
    } else if v.is_instance_of::<PyString>()
        || v.is_instance_of::<PyBytes>()
        || v.is_instance_of::<PyByteArray>()
        || v.cast::<PyMapping>().is_ok()
    {
        return Err(not_a_list());
    } else {
        // Not iterable (TypeError): not a list. Anything else an `__iter__`
        // raises is the user's own error and propagates as it is.
        Some(v.try_iter().map_err(|e| {
            if e.is_instance_of::<pyo3::exceptions::PyTypeError>(v.py()) {
                not_a_list()
            } else {
                SerError::Python(e)
            }
        })?)
    };
    let start = w.buf.len();
    w.raw_key(count, &key.json_key);
    w.buf.push(b'[');
    let mut n = 0;
    let mut one = |w: &mut Writer<'py>, i: usize, item: Bound<'py, PyAny>| -> Result<(), SerError> {
        w.tick().map_err(|e| e.at(Seg::Index(i)).at_key(&key.text))?;
        if !item.is_none()
            && item_object(w, n, None, &item).map_err(|e| e.at(Seg::Index(i)).at_key(&key.text))?
        {
            n += 1;
        }
        Ok(())
    };
    match items {
        None => {
            let mut i = 0;
            while let Some(item) = ffi::seq_item(v, i) {
                // SAFETY: `item` is a live object borrowed from `v` (held), with
                // the GIL held; `from_borrowed_ptr` takes a strong reference.
                one(w, i, unsafe { Bound::from_borrowed_ptr(w.py, item) })?;
                i += 1;
            }
        }
        Some(items) => {
            for (i, item) in items.enumerate() {
                one(w, i, item?)?;
            }
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

/// Testing aid, in debug builds only (the test-suite's; not in a release
/// wheel): read dataclass fields through `__dict__` ("dict"), with getattr
/// ("getattr"), or as the running Python makes cheapest (None).
#[cfg(debug_assertions)]
#[pyfunction]
#[pyo3(signature = (mode=None))]
pub fn _set_field_reading(mode: Option<&str>) -> PyResult<()> {
    attrs::set_read_mode(match mode {
        None => attrs::READ_BY_VERSION,
        Some("dict") => attrs::READ_DICT,
        Some("getattr") => attrs::READ_GETATTR,
        Some(other) => {
            return Err(pyo3::exceptions::PyValueError::new_err(format!(
                "mode must be 'dict', 'getattr' or None, not {other:?}"
            )))
        }
    });
    Ok(())
}

/// The exact body a client would send for `task_data` (a `TaskData`, or a
/// dict of its fields): compact UTF-8 JSON bytes, validated first. A bad value
/// raises `ValidationError` naming its path (`steps[3].metadata.when`).
#[pyfunction]
pub fn dumps<'py>(py: Python<'py>, task_data: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyBytes>> {
    let body = crate::guard(|| serialize(task_data))?;
    Ok(PyBytes::new(py, &body))
}

/// `infinium.utils.validate_payload_size`: bytes are measured as they are,
/// anything else as its serialised JSON.
#[pyfunction]
pub fn validate_payload_size(payload: &Bound<'_, PyAny>) -> PyResult<()> {
    let size = if payload.is_instance_of::<PyBytes>()
        || payload.is_instance_of::<PyByteArray>()
        || payload.is_instance_of::<pyo3::types::PyMemoryView>()
    {
        payload.len()?
    } else {
        crate::guard(|| serialize_value(payload))?.len()
    };
    if size > schema::MAX_PAYLOAD_SIZE {
        return Err(too_large().into());
    }
    Ok(())
}

/// Serialise a plain value (dict/list/scalars, with the same extended types).
#[pyfunction]
pub fn dumps_value<'py>(py: Python<'py>, value: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyBytes>> {
    let body = crate::guard(|| serialize_value(value))?;
    Ok(PyBytes::new(py, &body))
}
