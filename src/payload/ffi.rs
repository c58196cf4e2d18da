//! All raw CPython access of the serialiser: reading a str's text in
//! place, exact-type checks, borrowed walks of lists, tuples and dicts,
//! instance dicts and `object`'s own attribute lookup.
//!
//! The walk reads containers through borrowed pointers (no reference-count
//! traffic) following one rule: a borrowed pointer is used only until the
//! next call that can run Python code (a getattr, a method call, a user
//! type). Every container or object the walk descends into, and every value
//! handed to such a call, is first turned into an owned `Bound` (see `own`).
//! Every value user code returns is type-checked (a `PyString`, a `PyDict`)
//! before it reaches a function here.

use std::os::raw::{c_char, c_void};
use std::ptr::addr_of_mut;

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString, PyType};

use super::encode::write_str;
use super::error::{SerError, SerResult, LONE_SURROGATE};
use super::types::Field;

extern "C" {
    // Part of CPython's public C API since 3.3 (and of the limited API from
    // 3.10); exported by every CPython 3.9+. Zero-copy: the UTF-8 form is
    // cached inside the str object.
    pub(crate) fn PyUnicode_AsUTF8AndSize(
        unicode: *mut ffi::PyObject,
        size: *mut ffi::Py_ssize_t,
    ) -> *const c_char;
    // Public C API since 3.3 (limited API from 3.10), exported by every
    // CPython 3.9+: the instance `__dict__` (a new reference), created on
    // first use, exactly what `obj.__dict__` returns for a class that does
    // not override attribute access.
    pub(crate) fn PyObject_GenericGetDict(
        obj: *mut ffi::PyObject,
        context: *mut c_void,
    ) -> *mut ffi::PyObject;
}

/// The UTF-8 text a compact `str` already holds, read from the object
/// itself: its data when it is ASCII, else the UTF-8 copy CPython cached in
/// it (if any). `None` for anything else. What `PyUnicode_AsUTF8AndSize`
/// returns first in these cases, without the call.
///
/// # Safety
/// As [`utf8_of`]: `o` is a live object whose type is `str` or a subclass
/// (audited: every caller either holds a `Bound<PyString>`, whose cast
/// checked the type, or compared `type_of(o)` with `str_type()`; a value
/// user code returned, such as an `isoformat()` result or a field name, is
/// cast first). The struct fields are read only for an exact str, whose
/// layout CPython owns.
#[cfg(not(any(Py_LIMITED_API, Py_3_14, PyPy, GraalPy)))]
#[inline(always)]
pub(crate) unsafe fn compact_utf8<'a>(o: *mut ffi::PyObject) -> Option<&'a str> {
    // Only an exact str is read in place; a subclass goes through the API.
    if type_of(o) != str_type() || ffi::PyUnicode_IS_COMPACT(o) == 0 {
        return None;
    }
    let (data, size) = if ffi::PyUnicode_IS_ASCII(o) != 0 {
        (
            o.cast::<ffi::PyASCIIObject>().add(1).cast::<u8>().cast_const(),
            ffi::PyUnicode_GET_LENGTH(o),
        )
    } else {
        let compact = o.cast::<ffi::PyCompactUnicodeObject>();
        if (*compact).utf8.is_null() {
            return None;
        }
        ((*compact).utf8.cast::<u8>().cast_const(), (*compact).utf8_length)
    };
    // ASCII data, or CPython's own UTF-8 encoding of the text.
    Some(std::str::from_utf8_unchecked(std::slice::from_raw_parts(
        data,
        size as usize,
    )))
}

/// The code points of a compact non-ASCII `str`, in CPython's form for it.
#[cfg(not(any(Py_LIMITED_API, Py_3_14, PyPy, GraalPy)))]
pub(crate) enum Units<'a> {
    Latin1(&'a [u8]),
    Ucs2(&'a [u16]),
    Ucs4(&'a [u32]),
}

/// # Safety
/// The GIL is held, `o` points to a live compact `str` that is not ASCII,
/// and the slice is not used after `o` may have been freed.
#[cfg(not(any(Py_LIMITED_API, Py_3_14, PyPy, GraalPy)))]
#[inline(always)]
pub(crate) unsafe fn compact_units<'a>(o: *mut ffi::PyObject) -> Units<'a> {
    let len = ffi::PyUnicode_GET_LENGTH(o) as usize;
    // Compact and not ASCII: the code points follow the header.
    let data = o.cast::<ffi::PyCompactUnicodeObject>().add(1).cast::<u8>();
    match ffi::PyUnicode_KIND(o) {
        ffi::PyUnicode_1BYTE_KIND => Units::Latin1(std::slice::from_raw_parts(data, len)),
        ffi::PyUnicode_2BYTE_KIND => Units::Ucs2(std::slice::from_raw_parts(data.cast::<u16>(), len)),
        _ => Units::Ucs4(std::slice::from_raw_parts(data.cast::<u32>(), len)),
    }
}

/// Write the exact `str` at `o` as a JSON string; false (nothing written)
/// when it holds a lone surrogate.
///
/// A compact non-ASCII text with no cached UTF-8 (a fresh one, as most of a
/// new trace's are) is encoded straight from its code points, so CPython
/// never builds and keeps a UTF-8 copy of it (see [`super::wide`]).
///
/// # Safety
/// The GIL is held and `o` points to a live `str`.
#[inline]
pub(crate) unsafe fn write_str_object(buf: &mut Vec<u8>, o: *mut ffi::PyObject) -> bool {
    #[cfg(not(any(Py_LIMITED_API, Py_3_14, PyPy, GraalPy)))]
    if ffi::PyUnicode_IS_COMPACT(o) != 0 {
        if let Some(text) = compact_utf8(o) {
            write_str(buf, text);
            return true;
        }
        return match compact_units(o) {
            Units::Latin1(u) => super::wide::write_units(buf, u),
            Units::Ucs2(u) => super::wide::write_units(buf, u),
            Units::Ucs4(u) => super::wide::write_units(buf, u),
        };
    }
    match utf8_of(o) {
        Some(s) => {
            write_str(buf, s);
            true
        }
        None => false,
    }
}

/// Of a `str` (or subclass): whether it is blank (empty or whitespace only,
/// as `str.strip()` sees it) and its length in code points; `None` when it
/// holds a lone surrogate. Reads a compact non-ASCII text's code points in
/// place rather than have CPython build and cache its UTF-8.
pub(crate) fn text_facts(s: &Bound<'_, PyString>) -> Option<(bool, usize)> {
    #[cfg(not(any(Py_LIMITED_API, Py_3_14, PyPy, GraalPy)))]
    // SAFETY: `s` is a live str (its type says so) and the GIL is held; only
    // an exact str is read in place, while `s` is borrowed.
    unsafe {
        let o = s.as_ptr();
        if type_of(o) == str_type() && ffi::PyUnicode_IS_COMPACT(o) != 0 {
            let len = ffi::PyUnicode_GET_LENGTH(o) as usize;
            if let Some(text) = compact_utf8(o) {
                return Some((is_blank(text), len));
            }
            let surrogate = |c: u32| (0xd800..0xe000).contains(&c);
            let space = super::iso::py_isspace;
            let blank = match compact_units(o) {
                Units::Latin1(u) => u.iter().all(|&c| space(c.into())),
                Units::Ucs2(u) => {
                    if u.iter().any(|&c| surrogate(c.into())) {
                        return None;
                    }
                    u.iter().all(|&c| space(c.into()))
                }
                Units::Ucs4(u) => {
                    if u.iter().any(|&c| surrogate(c)) {
                        return None;
                    }
                    u.iter().all(|&c| space(c))
                }
            };
            return Some((blank, len));
        }
    }
    let text = str_utf8(s).ok()?;
    // Code points: the UTF-8 bytes that do not continue a sequence.
    let chars = text.bytes().filter(|&b| (b as i8) >= -0x40).count();
    Some((is_blank(text), chars))
}

/// Only what Python's `str.strip()` removes.
pub(crate) fn is_blank(text: &str) -> bool {
    text.chars().all(|c| super::iso::py_isspace(c.into()))
}

/// Borrow the UTF-8 text of a `str` (or subclass) without copying. Taking
/// a `PyString` makes the type check the caller's, at compile time.
pub(crate) fn str_utf8<'a>(s: &'a Bound<'_, PyString>) -> SerResult<&'a str> {
    // SAFETY: `s` is a live str instance (its type says so), the GIL is
    // held (we have a `Bound`), and the text lives as long as the borrow of `s`.
    unsafe { utf8_of(s.as_ptr()) }.ok_or_else(|| SerError::invalid(LONE_SURROGATE))
}

/// The UTF-8 text of the `str` (or subclass) at `o`; `None` (the Python error
/// cleared) when it holds a lone surrogate.
///
/// # Safety
/// The GIL is held, `o` points to a live `str` and the returned slice is not
/// used after `o` may have been freed (the UTF-8 form is cached inside the
/// object and lives exactly as long as it).
#[inline]
pub(crate) unsafe fn utf8_of<'a>(o: *mut ffi::PyObject) -> Option<&'a str> {
    #[cfg(not(any(Py_LIMITED_API, Py_3_14, PyPy, GraalPy)))]
    if let Some(text) = compact_utf8(o) {
        return Some(text);
    }
    let mut size: ffi::Py_ssize_t = 0;
    let data = PyUnicode_AsUTF8AndSize(o, &mut size);
    if data.is_null() {
        // The UnicodeEncodeError: not reported as such (a ValidationError with
        // the path is), so drop it.
        ffi::PyErr_Clear();
        return None;
    }
    // CPython guarantees valid UTF-8 of `size` bytes.
    Some(std::str::from_utf8_unchecked(std::slice::from_raw_parts(
        data.cast::<u8>(),
        size as usize,
    )))
}

#[inline(always)]
pub(crate) fn type_of(o: *mut ffi::PyObject) -> *mut ffi::PyTypeObject {
    // SAFETY: every pointer passed here is a live object (GIL held).
    unsafe { ffi::Py_TYPE(o) }
}

// Taking the address of a static type object reads nothing (no `unsafe`).
#[inline(always)]
pub(crate) fn str_type() -> *mut ffi::PyTypeObject {
    addr_of_mut!(ffi::PyUnicode_Type)
}

#[inline(always)]
pub(crate) fn int_type() -> *mut ffi::PyTypeObject {
    addr_of_mut!(ffi::PyLong_Type)
}

#[inline(always)]
pub(crate) fn float_type() -> *mut ffi::PyTypeObject {
    addr_of_mut!(ffi::PyFloat_Type)
}

#[inline(always)]
pub(crate) fn bool_type() -> *mut ffi::PyTypeObject {
    addr_of_mut!(ffi::PyBool_Type)
}

#[inline(always)]
pub(crate) fn dict_type() -> *mut ffi::PyTypeObject {
    addr_of_mut!(ffi::PyDict_Type)
}

#[inline(always)]
pub(crate) fn list_type() -> *mut ffi::PyTypeObject {
    addr_of_mut!(ffi::PyList_Type)
}

#[inline(always)]
pub(crate) fn tuple_type() -> *mut ffi::PyTypeObject {
    addr_of_mut!(ffi::PyTuple_Type)
}

#[inline(always)]
pub(crate) fn none() -> *mut ffi::PyObject {
    // SAFETY: the address of the None singleton; nothing is read.
    unsafe { ffi::Py_None() }
}

/// An owned reference to the live object at `o`.
#[inline(always)]
pub(crate) fn own<'py>(py: Python<'py>, o: *mut ffi::PyObject) -> Bound<'py, PyAny> {
    // SAFETY: callers pass a live (borrowed) object pointer with the GIL held;
    // `from_borrowed_ptr` takes a new strong reference to it.
    unsafe { Bound::from_borrowed_ptr(py, o) }
}

/// Whether `o` is an exact builtin that is never a dataclass (no type lookup).
#[inline(always)]
pub(crate) fn is_plain_builtin(o: *mut ffi::PyObject) -> bool {
    let t = type_of(o);
    t == str_type() || t == int_type() || t == float_type() || t == bool_type() || t == dict_type()
}

/// The instance `__dict__` of an object whose type is `plain`.
pub(crate) fn plain_dict<'py>(obj: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyDict>> {
    // SAFETY: `obj` is alive (we hold a reference) and the GIL is held; the
    // result is a new reference or NULL with an exception set.
    let d = unsafe { PyObject_GenericGetDict(obj.as_ptr(), std::ptr::null_mut()) };
    if d.is_null() {
        return Err(PyErr::fetch(obj.py()));
    }
    // SAFETY: a new (owned) reference.
    let d = unsafe { Bound::from_owned_ptr(obj.py(), d) };
    d.cast_into::<PyDict>().map_err(PyErr::from)
}

/// Whether `ty`'s attribute access is `object`'s own.
pub(crate) fn generic_getattr(ty: &Bound<'_, PyType>) -> bool {
    let t = ty.as_ptr().cast::<ffi::PyTypeObject>();
    // SAFETY: `ty` is a live type object and the GIL is held. `PyType_GetSlot`
    // accepts only heap types before Python 3.10: static types (never
    // dataclasses) keep the general path.
    unsafe {
        if ffi::PyType_GetFlags(t) & ffi::Py_TPFLAGS_HEAPTYPE == 0 {
            return false;
        }
        let slot = ffi::PyType_GetSlot(t, ffi::Py_tp_getattro);
        slot == ffi::PyObject_GenericGetAttr as *mut c_void
    }
}

/// `getattr(obj, name)`; `None` when the attribute is missing
/// (`AttributeError`). `generic`: `obj`'s type has `object`'s attribute
/// access (`TypeInfo::generic_getattr`).
pub(crate) fn getattr_opt<'py>(
    obj: &Bound<'py, PyAny>,
    name: &Py<PyString>,
    generic: bool,
) -> PyResult<Option<Bound<'py, PyAny>>> {
    let py = obj.py();
    // SAFETY: `obj` and `name` are alive and the GIL is held; both calls
    // return a new reference, or NULL with an exception set. With `generic`,
    // the type's `tp_getattro` is `PyObject_GenericGetAttr`, which is what
    // `PyObject_GetAttr` would call.
    let v = unsafe {
        if generic {
            ffi::PyObject_GenericGetAttr(obj.as_ptr(), name.as_ptr())
        } else {
            ffi::PyObject_GetAttr(obj.as_ptr(), name.as_ptr())
        }
    };
    if v.is_null() {
        let e = PyErr::fetch(py);
        return if e.is_instance_of::<pyo3::exceptions::PyAttributeError>(py) {
            Ok(None)
        } else {
            Err(e)
        };
    }
    // SAFETY: a new (owned) reference.
    Ok(Some(unsafe { Bound::from_owned_ptr(py, v) }))
}

/// The next `(key, value)` of `d` from `pos`, both borrowed.
///
/// `PyDict_Next` never runs Python code and stays within the dict's current
/// entries even if the dict was changed since the previous call.
#[inline(always)]
pub(crate) fn dict_next(
    d: &Bound<'_, PyDict>,
    pos: &mut ffi::Py_ssize_t,
) -> Option<(*mut ffi::PyObject, *mut ffi::PyObject)> {
    let mut k = std::ptr::null_mut();
    let mut v = std::ptr::null_mut();
    // SAFETY: `d` is a live dict (we hold a reference), the GIL is held.
    if unsafe { ffi::PyDict_Next(d.as_ptr(), pos, &mut k, &mut v) } == 0 {
        None
    } else {
        Some((k, v))
    }
}

/// The value stored under `name` (an interned str) in the dict `d`, borrowed.
pub(crate) fn dict_lookup(
    d: &Bound<'_, PyDict>,
    name: &Py<PyString>,
) -> PyResult<Option<*mut ffi::PyObject>> {
    // SAFETY: `d` and `name` are alive, the GIL is held; the result is a
    // borrowed reference (or NULL, with an exception set on failure).
    let v = unsafe { ffi::PyDict_GetItemWithError(d.as_ptr(), name.as_ptr()) };
    if v.is_null() {
        // SAFETY: GIL held.
        if unsafe { ffi::PyErr_Occurred() }.is_null() {
            Ok(None)
        } else {
            Err(PyErr::fetch(d.py()))
        }
    } else {
        Ok(Some(v))
    }
}

/// Whether `k` is the str `name`: pointer identity (the interned names of
/// attributes), else equal text.
///
/// # Safety
/// The GIL is held and `k` is a live object (e.g. borrowed from a dict we
/// hold, with no Python code run since).
pub(crate) unsafe fn key_is(k: *mut ffi::PyObject, name: &Field) -> bool {
    if k == name.name.as_ptr() {
        return true;
    }
    // Only str keys are read as text.
    ffi::PyUnicode_Check(k) != 0 && utf8_of(k).is_some_and(|t| t == &*name.text)
}

/// Whether the (held) `key` is the str `name`.
pub(crate) fn key_matches(key: &Bound<'_, PyAny>, name: &Field) -> bool {
    // SAFETY: `key` is alive (we hold a reference) and so is the GIL.
    unsafe { key_is(key.as_ptr(), name) }
}

/// Item `i` of the exact list or tuple `seq` (borrowed), `None` past the end.
#[inline]
pub(crate) fn seq_item(seq: &Bound<'_, PyAny>, i: usize) -> Option<*mut ffi::PyObject> {
    let p = seq.as_ptr();
    let i = i as ffi::Py_ssize_t;
    // SAFETY: `seq` is a live exact list or tuple (checked by the callers),
    // the GIL is held; the index is bounds-checked against the current
    // length first, so the getters cannot fail. The item is borrowed from
    // `seq`, which the caller holds.
    unsafe {
        if type_of(p) == list_type() {
            (i < ffi::PyList_Size(p)).then(|| ffi::PyList_GetItem(p, i))
        } else {
            (i < ffi::PyTuple_Size(p)).then(|| ffi::PyTuple_GetItem(p, i))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pyo3::types::{PyList, PyTuple};

    fn py_str<'py>(py: Python<'py>, code: &str) -> Bound<'py, PyString> {
        let code = std::ffi::CString::new(code).unwrap();
        py.eval(&code, None, None)
            .unwrap()
            .cast_into::<PyString>()
            .unwrap()
    }

    #[test]
    fn text_of_every_str_form() {
        Python::initialize();
        Python::attach(|py| {
            for (code, text) in [
                ("'plain'", "plain"),
                ("'caf\\xe9'", "café"),
                ("'\\u2014 dash'", "— dash"),
                ("'\\U0001f600'", "😀"),
                ("type('S', (str,), {})('sub \\xe9')", "sub é"),
            ] {
                let s = py_str(py, code);
                assert_eq!(str_utf8(&s).unwrap(), text, "{code}");
                let mut buf = Vec::new();
                // SAFETY: a live str, GIL held.
                assert!(unsafe { write_str_object(&mut buf, s.as_ptr()) });
                let mut want = Vec::new();
                write_str(&mut want, text);
                assert_eq!(buf, want, "{code}");
                let (blank, chars) = text_facts(&s).unwrap();
                assert!(!blank);
                assert_eq!(chars, text.chars().count());
            }
            let lone = py_str(py, "'a\\ud800'");
            assert!(str_utf8(&lone).is_err());
            assert!(text_facts(&lone).is_none());
            assert!(!PyErr::occurred(py));
            for blank in ["''", "' \\x1c\\u3000'", "type('S', (str,), {})('\\x1f')"] {
                assert_eq!(text_facts(&py_str(py, blank)).map(|f| f.0), Some(true), "{blank}");
            }
        });
    }

    #[test]
    fn borrowed_walks() {
        Python::initialize();
        Python::attach(|py| {
            let list = PyList::new(py, [1, 2]).unwrap();
            assert!(seq_item(list.as_any(), 1).is_some());
            assert!(seq_item(list.as_any(), 2).is_none());
            let tuple = PyTuple::new(py, ["a"]).unwrap();
            let item = seq_item(tuple.as_any(), 0).unwrap();
            assert_eq!(type_of(item), str_type());
            let d = PyDict::new(py);
            d.set_item("k", 1).unwrap();
            d.set_item(2, "v").unwrap();
            let mut pos = 0;
            let mut n = 0;
            while dict_next(&d, &mut pos).is_some() {
                n += 1;
            }
            assert_eq!(n, 2);
            let name = Field::new(py, "k");
            assert!(dict_lookup(&d, &name.name).unwrap().is_some());
            assert!(key_matches(&py_str(py, "'k'").into_any(), &name));
            assert!(!key_matches(&py_str(py, "'x'").into_any(), &name));
            let two = 2i64.into_pyobject(py).unwrap().into_any();
            assert!(!key_matches(&two, &name));
        });
    }
}
