//! Serialising Python values straight into JSON bytes, one pass, no
//! intermediate dicts.
//!
//! Two rule sets, as in the anchor SDK:
//! * **dataclass objects** (`write_dataclass`): `None` fields are omitted, a
//!   nested dataclass that ends up empty is omitted, inside a list field `None`
//!   items and empty dataclass items are dropped and a list that ends up empty
//!   is omitted;
//! * **plain values** (`write_value`): dicts, lists and scalars are written as
//!   they are (a `None` inside a dict is `null`).
//!
//! Values `json.dumps` would reject but users commonly have at hand
//! (datetime, UUID, Decimal, Enum, set, Pydantic models, dataclasses inside
//! dicts) are written sensibly; anything else is a `ValidationError` that
//! names the path to the value.

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyString};

use super::encode::{write_f64, write_i64, write_str, write_u64};
use super::error::{too_deep, Seg, SerError, SerResult, CIRCULAR, DICT_CHANGED, LONE_SURROGATE};
use super::ffi::{
    bool_type, dict_next, float_type, int_type, list_type, none, own, seq_item, str_type, str_utf8,
    tuple_type, type_of, utf8_of, write_str_object,
};
use super::types::{std_types, type_info, type_name, Kind};
use crate::schema::MAX_DEPTH;

/// The JSON writer.
pub(crate) struct Writer<'py> {
    pub py: Python<'py>,
    pub buf: Vec<u8>,
    depth: usize,
    /// Ids of the containers being written, to report cycles.
    stack: Vec<usize>,
    /// Items walked so far (see `tick`).
    items: u32,
}

/// Past this many bytes written a body can only end over the size limit
/// (what a later omission takes back is a key or a bracket per level).
pub(crate) const WALK_LIMIT: usize = 2 * crate::schema::MAX_PAYLOAD_SIZE;
/// Pending signals (Ctrl-C) are let in every this many items.
pub(crate) const SIGNAL_EVERY: u32 = 1024;

impl<'py> Writer<'py> {
    pub(crate) fn new(py: Python<'py>, capacity: usize) -> Self {
        Self::with_buf(py, Vec::with_capacity(capacity))
    }

    /// A writer appending to `buf` (emptied first).
    pub(crate) fn with_buf(py: Python<'py>, mut buf: Vec<u8>) -> Self {
        buf.clear();
        Writer {
            py,
            buf,
            depth: 0,
            stack: Vec::new(),
            items: 0,
        }
    }

    pub(crate) fn enter(&mut self, obj: &Bound<'_, PyAny>) -> SerResult {
        let id = obj.as_ptr() as usize;
        if self.stack.contains(&id) {
            return Err(SerError::invalid(CIRCULAR));
        }
        if self.depth >= MAX_DEPTH {
            return Err(too_deep());
        }
        self.depth += 1;
        self.stack.push(id);
        Ok(())
    }

    /// Once per item of every list, iterator and dict walked: stop a walk
    /// that can only end over the size limit (an endless iterator, a list
    /// that grows as it is written), and let a pending signal in now and
    /// then, so Ctrl-C interrupts a walk that writes nothing.
    #[inline]
    pub(crate) fn tick(&mut self) -> SerResult {
        if self.buf.len() > WALK_LIMIT {
            return Err(SerError::TooLarge);
        }
        self.items = self.items.wrapping_add(1);
        if self.items % SIGNAL_EVERY == 0 {
            self.py.check_signals()?;
        }
        Ok(())
    }

    pub(crate) fn leave(&mut self) {
        self.depth -= 1;
        self.stack.pop();
    }

    /// Write a pre-encoded `"key":` (with a leading comma when `count > 0`).
    #[inline]
    pub(crate) fn raw_key(&mut self, count: usize, json_key: &[u8]) {
        if count > 0 {
            self.buf.push(b',');
        }
        super::encode::append(&mut self.buf, json_key);
    }

    // ---- plain values (json.dumps semantics) ---------------------------

    pub(crate) fn write_value(&mut self, v: &Bound<'py, PyAny>) -> SerResult {
        match self.write_leaf(v.as_ptr()) {
            Some(r) => r,
            None => self.write_container(v),
        }
    }

    /// Write `o` when it is a scalar that needs no Python code: None, an
    /// exact str, bool, float, or an exact int that fits 64 bits. `None`
    /// (nothing written) for anything else.
    ///
    /// `o` is a live object; it may be borrowed: nothing here runs Python code.
    #[inline]
    pub(crate) fn write_leaf(&mut self, o: *mut ffi::PyObject) -> Option<SerResult> {
        let t = type_of(o);
        if t == str_type() {
            // SAFETY: `o` is a live exact str; the text is copied out at once.
            return Some(if unsafe { write_str_object(&mut self.buf, o) } {
                Ok(())
            } else {
                Err(SerError::invalid(LONE_SURROGATE))
            });
        }
        if o == none() {
            self.buf.extend_from_slice(b"null");
            return Some(Ok(()));
        }
        if t == int_type() {
            // SAFETY: `o` is a live exact int; GIL held.
            let i = unsafe { ffi::PyLong_AsLongLong(o) };
            // SAFETY: GIL held.
            if i == -1 && !unsafe { ffi::PyErr_Occurred() }.is_null() {
                // Beyond i64 (OverflowError): left to `write_int`.
                // SAFETY: GIL held.
                unsafe { ffi::PyErr_Clear() };
                return None;
            }
            write_i64(&mut self.buf, i);
            return Some(Ok(()));
        }
        if t == float_type() {
            // SAFETY: `o` is a live exact float: this cannot fail.
            let f = unsafe { ffi::PyFloat_AsDouble(o) };
            return Some(self.write_f64_checked(f));
        }
        if t == bool_type() {
            // SAFETY: the address of the True singleton.
            let t = o == unsafe { ffi::Py_True() };
            self.buf.extend_from_slice(if t { b"true" } else { b"false" });
            return Some(Ok(()));
        }
        None
    }

    /// Everything `write_leaf` does not take (held by the caller).
    pub(crate) fn write_container(&mut self, v: &Bound<'py, PyAny>) -> SerResult {
        let t = type_of(v.as_ptr());
        if t == list_type() || t == tuple_type() {
            return self.write_seq_exact(v);
        }
        if let Ok(d) = v.cast::<PyDict>() {
            return self.write_dict(d);
        }
        if t == int_type() {
            return self.write_int(v);
        }
        self.write_other(v)
    }

    pub(crate) fn write_int(&mut self, v: &Bound<'py, PyAny>) -> SerResult {
        if let Ok(i) = v.extract::<i64>() {
            write_i64(&mut self.buf, i);
        } else if let Ok(u) = v.extract::<u64>() {
            write_u64(&mut self.buf, u);
        } else {
            // Arbitrary precision: int.__repr__ gives the exact digits.
            let text = self
                .py
                .get_type::<PyInt>()
                .call_method1(pyo3::intern!(self.py, "__repr__"), (v,))?;
            let s = text.cast_into::<PyString>().map_err(PyErr::from)?;
            self.buf.extend_from_slice(str_utf8(&s)?.as_bytes());
        }
        Ok(())
    }

    pub(crate) fn write_float(&mut self, v: &Bound<'py, PyAny>) -> SerResult {
        let f: f64 = v.extract()?;
        self.write_f64_checked(f)
    }

    #[inline]
    pub(crate) fn write_f64_checked(&mut self, f: f64) -> SerResult {
        if !f.is_finite() {
            return Err(SerError::invalid(format!(
                "{} is not allowed in JSON",
                if f.is_nan() {
                    "NaN"
                } else if f > 0.0 {
                    "Infinity"
                } else {
                    "-Infinity"
                }
            )));
        }
        write_f64(&mut self.buf, f);
        Ok(())
    }

    pub(crate) fn write_dict(&mut self, d: &Bound<'py, PyDict>) -> SerResult {
        self.enter(d.as_any())?;
        self.buf.push(b'{');
        let mut pos = 0;
        let mut count = 0;
        let size = d.len();
        while let Some((k, v)) = dict_next(d, &mut pos) {
            // User code run for an earlier value (an `isoformat`, a
            // `model_dump`) may have changed the dict: refuse, as Python's
            // own iteration does, rather than walk it without end.
            if d.len() != size {
                return Err(SerError::invalid(DICT_CHANGED));
            }
            self.tick()?;
            if count > 0 {
                self.buf.push(b',');
            }
            count += 1;
            if type_of(k) == str_type() {
                // SAFETY: `k` is a live exact str borrowed from `d` (held);
                // `key` is used only while `k` is alive: right away for a
                // scalar value (no Python code runs), else under `_k`.
                let Some(key) = (unsafe { utf8_of(k) }) else {
                    return Err(SerError::invalid(LONE_SURROGATE));
                };
                write_str(&mut self.buf, key);
                self.buf.push(b':');
                if let Some(r) = self.write_leaf(v) {
                    r.map_err(|e| e.at(Seg::Key(key.to_owned())))?;
                } else {
                    let _k = own(self.py, k);
                    let v = own(self.py, v);
                    self.write_container(&v)
                        .map_err(|e| e.at(Seg::Key(key.to_owned())))?;
                }
            } else {
                let (k, v) = (own(self.py, k), own(self.py, v));
                let key = self.dict_key(&k)?;
                write_str(&mut self.buf, &key);
                self.buf.push(b':');
                self.write_value(&v).map_err(|e| e.at(Seg::Key(key.clone())))?;
            }
        }
        if d.len() != size {
            return Err(SerError::invalid(DICT_CHANGED));
        }
        self.buf.push(b'}');
        self.leave();
        Ok(())
    }

    /// Dict keys as `json.dumps` converts them (str, int, float, bool, None),
    /// plus Enum members by value (followed as values are: a cycle or a
    /// chain deeper than `MAX_DEPTH` is an error) and UUIDs as text.
    pub(crate) fn dict_key(&self, k: &Bound<'py, PyAny>) -> SerResult<String> {
        let mut k = k.clone();
        // The members followed so far (held, so their ids stay theirs).
        let mut members: Vec<Bound<'py, PyAny>> = Vec::new();
        loop {
            if let Ok(s) = k.cast::<PyString>() {
                return Ok(str_utf8(s)?.to_owned());
            }
            if k.is_none() {
                return Ok("null".into());
            }
            if let Ok(b) = k.cast::<PyBool>() {
                return Ok(if b.is_true() { "true" } else { "false" }.into());
            }
            if k.is_instance_of::<PyInt>() || k.is_instance_of::<PyFloat>() {
                let mut w = Writer::new(self.py, 24);
                if k.is_instance_of::<PyInt>() {
                    w.write_int(&k)?;
                } else {
                    w.write_float(&k)?;
                }
                return Ok(String::from_utf8_lossy(&w.buf).into_owned());
            }
            let kind = type_info(&k)?.kind;
            if kind == Kind::Uuid {
                return Ok(str_utf8(&k.str()?)?.to_owned());
            }
            if kind != Kind::Enum {
                return Err(SerError::invalid(format!(
                    "dict keys must be str, int, float, bool or None, not {}",
                    type_name(&k)
                )));
            }
            if members.iter().any(|m| m.is(&k)) {
                return Err(SerError::invalid(CIRCULAR));
            }
            if members.len() >= MAX_DEPTH {
                return Err(too_deep());
            }
            let value = k.getattr(pyo3::intern!(self.py, "value"))?;
            members.push(std::mem::replace(&mut k, value));
        }
    }

    /// An exact list or tuple, item by item (borrowed items; the length is
    /// read again after each, as a list may change under user code).
    pub(crate) fn write_seq_exact(&mut self, v: &Bound<'py, PyAny>) -> SerResult {
        self.enter(v)?;
        self.buf.push(b'[');
        let mut i = 0;
        while let Some(item) = seq_item(v, i) {
            self.tick().map_err(|e| e.at(Seg::Index(i)))?;
            if i > 0 {
                self.buf.push(b',');
            }
            match self.write_leaf(item) {
                Some(r) => r,
                None => self.write_container(&own(self.py, item)),
            }
            .map_err(|e| e.at(Seg::Index(i)))?;
            i += 1;
        }
        self.buf.push(b']');
        self.leave();
        Ok(())
    }

    pub(crate) fn write_seq_plain(&mut self, v: &Bound<'py, PyAny>) -> SerResult {
        self.enter(v)?;
        self.buf.push(b'[');
        for (i, item) in v.try_iter()?.enumerate() {
            self.tick().map_err(|e| e.at(Seg::Index(i)))?;
            if i > 0 {
                self.buf.push(b',');
            }
            self.write_value(&item?).map_err(|e| e.at(Seg::Index(i)))?;
        }
        self.buf.push(b']');
        self.leave();
        Ok(())
    }
    /// Everything that is not an exact builtin JSON type, by its type's kind.
    pub(crate) fn write_other(&mut self, v: &Bound<'py, PyAny>) -> SerResult {
        let info = type_info(v)?;
        match info.kind {
            // Subclasses of the builtins (json.dumps accepts them; this also
            // covers str/int Enum mixins such as StrEnum and IntEnum).
            Kind::Str => {
                let s = v.cast::<PyString>().map_err(PyErr::from)?;
                write_str(&mut self.buf, str_utf8(s)?);
                Ok(())
            }
            Kind::Int => self.write_int(v),
            Kind::Float => self.write_float(v),
            Kind::Seq => self.write_seq_plain(v),
            Kind::Dataclass => {
                // A dataclass inside a plain value: the dataclass rules apply.
                let start = self.buf.len();
                if !self.write_dataclass(v, &info)? {
                    self.buf.truncate(start);
                    self.buf.extend_from_slice(b"{}");
                }
                Ok(())
            }
            Kind::DateLike => self.write_isoformat(v),
            Kind::Uuid => self.write_uuid(v),
            Kind::Decimal => self.write_decimal(v),
            Kind::Enum => self.write_enum(v),
            Kind::Set => self.write_set(v),
            Kind::Other => self.write_model(v),
        }
    }

    #[cold]
    fn write_isoformat(&mut self, v: &Bound<'py, PyAny>) -> SerResult {
        let iso = v.call_method0(pyo3::intern!(self.py, "isoformat"))?;
        let Ok(iso) = iso.cast::<PyString>() else {
            return Err(SerError::invalid(format!(
                "{}.isoformat() returned a {}, not a str",
                type_name(v),
                type_name(&iso)
            )));
        };
        write_str(&mut self.buf, str_utf8(iso)?);
        Ok(())
    }

    #[cold]
    fn write_uuid(&mut self, v: &Bound<'py, PyAny>) -> SerResult {
        let s = v.str()?;
        write_str(&mut self.buf, str_utf8(&s)?);
        Ok(())
    }

    #[cold]
    fn write_decimal(&mut self, v: &Bound<'py, PyAny>) -> SerResult {
        let py = self.py;
        let finite = v.call_method0(pyo3::intern!(py, "is_finite"))?.is_truthy()?;
        if !finite {
            return Err(SerError::invalid("a non-finite Decimal is not allowed in JSON"));
        }
        // Exact decimal text as a JSON number (no float rounding), from
        // Decimal's own `__str__` (a subclass's could say anything).
        let s = std_types(py)?
            .decimal
            .bind(py)
            .call_method1(pyo3::intern!(py, "__str__"), (v,))?;
        let s = s.cast_into::<PyString>().map_err(PyErr::from)?;
        let text = str_utf8(&s)?;
        if !super::encode::is_json_number(text) {
            return Err(SerError::invalid(format!(
                "Decimal text {text:?} is not a JSON number"
            )));
        }
        self.buf.extend_from_slice(text.as_bytes());
        Ok(())
    }

    #[cold]
    fn write_enum(&mut self, v: &Bound<'py, PyAny>) -> SerResult {
        let inner = v.getattr(pyo3::intern!(self.py, "value"))?;
        self.enter(v)?;
        let r = self.write_value(&inner);
        self.leave();
        r
    }

    #[cold]
    fn write_set(&mut self, v: &Bound<'py, PyAny>) -> SerResult {
        // Sorted when the items are orderable, so the output is stable.
        let list = PyList::empty(self.py);
        for item in v.try_iter()? {
            self.tick()?;
            list.append(item?)?;
        }
        let _ = list.sort();
        self.write_seq_plain(list.as_any())
    }

    #[cold]
    fn write_model(&mut self, v: &Bound<'py, PyAny>) -> SerResult {
        let py = self.py;
        if let Ok(dump) = v.getattr(pyo3::intern!(py, "model_dump")) {
            if dump.is_callable() {
                let kw = PyDict::new(py);
                kw.set_item("mode", "json")?;
                let dumped = dump.call((), Some(&kw)).or_else(|_| dump.call0())?;
                self.enter(v)?;
                let r = self.write_value(&dumped);
                self.leave();
                return r;
            }
        }
        Err(SerError::invalid(format!(
            "Object of type {} is not JSON serializable",
            type_name(v)
        )))
    }
}
