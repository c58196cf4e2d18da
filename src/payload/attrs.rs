//! Reading a dataclass's (or a trace object's) attributes: through the
//! instance `__dict__` or with getattr, whichever the running Python makes
//! cheaper, as `TypeInfo` allows.

use pyo3::prelude::*;
use pyo3::types::PyString;

use super::ffi::{dict_next, getattr_opt, key_is, none, own, plain_dict};
use super::types::{Field, TypeInfo};

/// Whether a dataclass is best read through its instance `__dict__`.
///
/// Before Python 3.11 every instance has a real dict, and one walk of it
/// beats a getattr per field. From 3.11 on, instances keep their attributes
/// inline and the first access to `__dict__` builds a dict (1-2 µs per
/// object, kept for the object's life: ~50 µs and ~20 KB for a fresh 12-step
/// trace); getattr reads the inline values without building anything.
pub(crate) fn walk_instance_dicts(py: Python<'_>) -> bool {
    static WALK: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    match READ_MODE.load(std::sync::atomic::Ordering::Relaxed) {
        READ_DICT => true,
        READ_GETATTR => false,
        _ => *WALK.get_or_init(|| py.version_info() < (3, 11)),
    }
}

/// How dataclass fields are read: by Python version (the default), or forced
/// (the tests run the serialiser both ways on whatever Python they have).
pub(crate) static READ_MODE: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(READ_BY_VERSION);
pub(crate) const READ_BY_VERSION: u8 = 0;
pub(crate) const READ_DICT: u8 = 1;
pub(crate) const READ_GETATTR: u8 = 2;

#[cfg(debug_assertions)]
pub(crate) fn set_read_mode(mode: u8) {
    READ_MODE.store(mode, std::sync::atomic::Ordering::Relaxed);
}

/// `getattr(obj, name)`, `None` for None or a missing attribute.
pub(crate) fn getattr_or_none<'py>(
    obj: &Bound<'py, PyAny>,
    name: &Py<PyString>,
    generic: bool,
) -> PyResult<Option<Bound<'py, PyAny>>> {
    Ok(getattr_opt(obj, name, generic)?.filter(|v| !v.is_none()))
}

/// Read `names` from `obj`, as attributes.
///
/// Fast path (a `plain` type): one walk of the instance dict. A value found
/// there is taken as it is (as `obj.__dict__[name]`); a name missing from it
/// is read with getattr only when the class defines it (else it is missing,
/// with no AttributeError raised and caught). Other types: getattr.
///
/// Returns, per name, `None` when missing, `Some(None)` for a None value.
#[allow(clippy::type_complexity)]
pub(crate) fn read_names<'py>(
    obj: &Bound<'py, PyAny>,
    info: &TypeInfo,
    names: &[Field],
    class_attr: &[bool],
) -> PyResult<Vec<Option<Option<Bound<'py, PyAny>>>>> {
    let py = obj.py();
    let mut out: Vec<Option<Option<Bound<'py, PyAny>>>> = Vec::with_capacity(names.len());
    out.resize_with(names.len(), || None);
    let walk = walk_instance_dicts(py);
    if info.plain && walk {
        let d = plain_dict(obj)?;
        let mut pos = 0;
        let mut cursor = 0;
        while let Some((k, v)) = dict_next(&d, &mut pos) {
            // Attributes set in declaration order (a dataclass `__init__`):
            // the next expected name, by pointer.
            let j = if cursor < names.len() && k == names[cursor].name.as_ptr() {
                cursor
            } else {
                // SAFETY: `k` is borrowed from `d` (held), no Python code ran.
                match names.iter().position(|n| unsafe { key_is(k, n) }) {
                    Some(j) => j,
                    None => continue,
                }
            };
            cursor = j + 1;
            // `v` is borrowed from `d`, which we hold; no Python code ran.
            out[j] = Some(if v == none() { None } else { Some(own(py, v)) });
        }
        for (j, slot) in out.iter_mut().enumerate() {
            if slot.is_none() && class_attr.get(j).copied().unwrap_or(true) {
                *slot = getattr_present(obj, &names[j].name, info.generic_getattr)?;
            }
        }
    } else {
        // getattr, also where an instance dict exists but the class
        // customises attribute access (reading the dict would bypass it).
        for (slot, name) in out.iter_mut().zip(names) {
            *slot = getattr_present(obj, &name.name, info.generic_getattr)?;
        }
    }
    Ok(out)
}

/// `getattr(obj, name)`: `None` when missing, `Some(None)` for None.
#[allow(clippy::type_complexity)]
pub(crate) fn getattr_present<'py>(
    obj: &Bound<'py, PyAny>,
    name: &Py<PyString>,
    generic: bool,
) -> PyResult<Option<Option<Bound<'py, PyAny>>>> {
    Ok(getattr_opt(obj, name, generic)?.map(|v| if v.is_none() { None } else { Some(v) }))
}
