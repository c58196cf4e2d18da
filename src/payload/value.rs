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

use std::os::raw::c_char;
use std::sync::Arc;

use parking_lot::Mutex;
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple, PyType};

use super::encode::{write_f64, write_i64, write_str, write_u64};

pub const MAX_DEPTH: usize = 64;

/// One step of the path to a value, for error messages.
#[derive(Debug, Clone)]
pub enum Seg {
    Key(String),
    Index(usize),
}

/// A serialisation failure and where it happened (innermost segment last
/// once reversed).
#[derive(Debug)]
pub enum SerError {
    Invalid { rev_path: Vec<Seg>, message: String },
    Python(PyErr),
}

impl SerError {
    pub fn invalid(message: impl Into<String>) -> Self {
        SerError::Invalid {
            rev_path: Vec::new(),
            message: message.into(),
        }
    }

    /// Record that the failure happened under `seg` (called while unwinding).
    pub fn at(mut self, seg: Seg) -> Self {
        if let SerError::Invalid { rev_path, .. } = &mut self {
            rev_path.push(seg);
        }
        self
    }

    pub fn at_key(self, key: &str) -> Self {
        self.at(Seg::Key(key.to_owned()))
    }

    /// `steps[3].metadata.when`
    pub fn path(rev_path: &[Seg]) -> String {
        let mut out = String::new();
        for seg in rev_path.iter().rev() {
            match seg {
                Seg::Key(k) => {
                    if !out.is_empty() {
                        out.push('.');
                    }
                    out.push_str(k);
                }
                Seg::Index(i) => {
                    out.push('[');
                    out.push_str(&i.to_string());
                    out.push(']');
                }
            }
        }
        out
    }
}

impl From<PyErr> for SerError {
    fn from(e: PyErr) -> Self {
        SerError::Python(e)
    }
}

pub type SerResult<T = ()> = Result<T, SerError>;

extern "C" {
    // Part of CPython's public C API since 3.3 (and of the limited API from
    // 3.10); exported by every CPython 3.9+. Zero-copy: the UTF-8 form is
    // cached inside the str object.
    fn PyUnicode_AsUTF8AndSize(unicode: *mut ffi::PyObject, size: *mut ffi::Py_ssize_t) -> *const c_char;
}

/// Borrow the UTF-8 text of a `str` (or subclass) without copying.
pub fn str_utf8<'a>(s: &'a Bound<'_, PyAny>) -> SerResult<&'a str> {
    let mut size: ffi::Py_ssize_t = 0;
    // SAFETY: `s` is a live str instance (checked by the caller) and we hold
    // the GIL; the returned buffer lives as long as the object.
    let data = unsafe { PyUnicode_AsUTF8AndSize(s.as_ptr(), &mut size) };
    if data.is_null() {
        let err = PyErr::fetch(s.py());
        drop(err);
        return Err(SerError::invalid(
            "string is not valid Unicode (it contains a lone surrogate)",
        ));
    }
    // SAFETY: CPython guarantees valid UTF-8 of `size` bytes.
    Ok(
        unsafe {
            std::str::from_utf8_unchecked(std::slice::from_raw_parts(data.cast::<u8>(), size as usize))
        },
    )
}

/// Types imported once from the standard library.
struct StdTypes {
    datetime: Py<PyType>,
    date: Py<PyType>,
    time: Py<PyType>,
    uuid: Py<PyType>,
    decimal: Py<PyType>,
    enum_: Py<PyType>,
    set: Py<PyType>,
    frozenset: Py<PyType>,
}

static STD_TYPES: PyOnceLock<StdTypes> = PyOnceLock::new();

fn std_types(py: Python<'_>) -> PyResult<&StdTypes> {
    STD_TYPES.get_or_try_init(py, || {
        let dt = py.import("datetime")?;
        let ty = |m: &Bound<'_, PyModule>, n: &str| -> PyResult<Py<PyType>> {
            Ok(m.getattr(n)?.cast_into::<PyType>()?.unbind())
        };
        let builtins = py.import("builtins")?;
        Ok(StdTypes {
            datetime: ty(&dt, "datetime")?,
            date: ty(&dt, "date")?,
            time: ty(&dt, "time")?,
            uuid: ty(&py.import("uuid")?, "UUID")?,
            decimal: ty(&py.import("decimal")?, "Decimal")?,
            enum_: ty(&py.import("enum")?, "Enum")?,
            set: ty(&builtins, "set")?,
            frozenset: ty(&builtins, "frozenset")?,
        })
    })
}

/// One field of a dataclass (or of the trace body): its interned name for
/// lookups and its pre-encoded JSON key (`"name":`).
pub struct Field {
    pub name: Py<PyString>,
    pub text: Box<str>,
    pub json_key: Box<[u8]>,
}

impl Field {
    pub fn new(py: Python<'_>, text: &str) -> Self {
        let mut json_key = Vec::with_capacity(text.len() + 3);
        write_str(&mut json_key, text);
        json_key.push(b':');
        Field {
            name: PyString::intern(py, text).unbind(),
            text: text.into(),
            json_key: json_key.into_boxed_slice(),
        }
    }
}

pub type Fields = Arc<Vec<Field>>;

/// Fields of a dataclass type, in declaration order (as `dataclasses.fields`
/// gives them), cached per type; `None` for other types.
type FieldCache = Vec<(usize, Py<PyType>, Option<Fields>)>;
static FIELD_CACHE: Mutex<Option<FieldCache>> = Mutex::new(None);
const MAX_CACHED_TYPES: usize = 256;
static FIELDS_FN: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// `Some(fields)` when `obj`'s type is a dataclass.
pub fn dataclass_fields(obj: &Bound<'_, PyAny>) -> SerResult<Option<Fields>> {
    let py = obj.py();
    let ty = obj.get_type();
    let key = ty.as_ptr() as usize;
    if let Some(cache) = FIELD_CACHE.lock().as_ref() {
        // A handful of types in practice: a linear scan beats hashing.
        if let Some((_, _, fields)) = cache.iter().find(|(k, _, _)| *k == key) {
            return Ok(fields.clone());
        }
    }
    let fields = if ty.hasattr(pyo3::intern!(py, "__dataclass_fields__"))? {
        let fields_fn = FIELDS_FN.get_or_try_init(py, || {
            py.import("dataclasses")?.getattr("fields").map(Bound::unbind)
        })?;
        let mut out = Vec::new();
        for f in fields_fn.bind(py).call1((&ty,))?.try_iter()? {
            let name = f?.getattr(pyo3::intern!(py, "name"))?;
            out.push(Field::new(py, str_utf8(&name)?));
        }
        Some(Arc::new(out))
    } else {
        None
    };
    let mut cache = FIELD_CACHE.lock();
    let cache = cache.get_or_insert_with(Vec::new);
    if cache.len() >= MAX_CACHED_TYPES {
        // Types made on the fly: start over rather than grow without bound.
        cache.clear();
    }
    cache.push((key, ty.unbind(), fields.clone()));
    Ok(fields)
}

/// Read `field` from `obj`: through its instance `__dict__` when it has one
/// (a dict lookup with an interned key is far cheaper than getattr), else
/// getattr. A missing attribute reads as `None`.
pub fn read_field<'py>(
    obj: &Bound<'py, PyAny>,
    inst_dict: Option<&Bound<'py, PyDict>>,
    name: &Bound<'py, PyString>,
) -> PyResult<Option<Bound<'py, PyAny>>> {
    if let Some(d) = inst_dict {
        if let Some(v) = d.get_item(name)? {
            return Ok(if v.is_none() { None } else { Some(v) });
        }
    }
    match obj.getattr(name) {
        Ok(v) if v.is_none() => Ok(None),
        Ok(v) => Ok(Some(v)),
        Err(e) if e.is_instance_of::<pyo3::exceptions::PyAttributeError>(obj.py()) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The instance `__dict__` of `obj`, when it has one.
pub fn instance_dict<'py>(obj: &Bound<'py, PyAny>) -> Option<Bound<'py, PyDict>> {
    obj.getattr(pyo3::intern!(obj.py(), "__dict__"))
        .ok()
        .and_then(|d| d.cast_into::<PyDict>().ok())
}

/// The values of `fields` on `obj` (`None` for None or missing).
///
/// Fast path: a dataclass `__init__` fills the instance `__dict__` in field
/// order with interned names, so walking the dict alongside the fields and
/// comparing key pointers reads every value without a single hash lookup.
/// Anything unusual (reordered, deleted, slots) falls back to lookups.
fn field_values<'py>(obj: &Bound<'py, PyAny>, fields: &[Field]) -> PyResult<Vec<Option<Bound<'py, PyAny>>>> {
    let inst_dict = instance_dict(obj);
    if let Some(d) = &inst_dict {
        if d.len() >= fields.len() {
            let mut values = Vec::with_capacity(fields.len());
            for ((k, v), f) in d.iter().zip(fields) {
                if k.as_ptr() != f.name.as_ptr() {
                    break;
                }
                values.push(if v.is_none() { None } else { Some(v) });
            }
            if values.len() == fields.len() {
                return Ok(values);
            }
        }
    }
    fields
        .iter()
        .map(|f| read_field(obj, inst_dict.as_ref(), f.name.bind(obj.py())))
        .collect()
}

/// The JSON writer.
pub struct Writer<'py> {
    pub py: Python<'py>,
    pub buf: Vec<u8>,
    depth: usize,
    /// Ids of the containers being written, to report cycles.
    stack: Vec<usize>,
}

impl<'py> Writer<'py> {
    pub fn new(py: Python<'py>, capacity: usize) -> Self {
        Writer {
            py,
            buf: Vec::with_capacity(capacity),
            depth: 0,
            stack: Vec::new(),
        }
    }

    fn enter(&mut self, obj: &Bound<'_, PyAny>) -> SerResult {
        let id = obj.as_ptr() as usize;
        if self.stack.contains(&id) {
            return Err(SerError::invalid("circular reference detected"));
        }
        if self.depth >= MAX_DEPTH {
            return Err(SerError::invalid(format!(
                "nesting deeper than {MAX_DEPTH} levels"
            )));
        }
        self.depth += 1;
        self.stack.push(id);
        Ok(())
    }

    fn leave(&mut self) {
        self.depth -= 1;
        self.stack.pop();
    }

    /// Write `"key":` (with a leading comma when `count > 0`).
    pub fn key(&mut self, count: usize, key: &str) {
        if count > 0 {
            self.buf.push(b',');
        }
        write_str(&mut self.buf, key);
        self.buf.push(b':');
    }

    /// Write a pre-encoded `"key":` (with a leading comma when `count > 0`).
    pub fn raw_key(&mut self, count: usize, json_key: &[u8]) {
        if count > 0 {
            self.buf.push(b',');
        }
        self.buf.extend_from_slice(json_key);
    }

    // ---- plain values (json.dumps semantics) ---------------------------

    pub fn write_value(&mut self, v: &Bound<'py, PyAny>) -> SerResult {
        if v.is_none() {
            self.buf.extend_from_slice(b"null");
            return Ok(());
        }
        if v.is_exact_instance_of::<PyString>() {
            write_str(&mut self.buf, str_utf8(v)?);
            return Ok(());
        }
        if v.is_exact_instance_of::<PyBool>() {
            let t = v.is_truthy()?;
            self.buf.extend_from_slice(if t { b"true" } else { b"false" });
            return Ok(());
        }
        if v.is_exact_instance_of::<PyInt>() {
            return self.write_int(v);
        }
        if v.is_exact_instance_of::<PyFloat>() {
            return self.write_float(v);
        }
        if let Ok(d) = v.cast::<PyDict>() {
            return self.write_dict(d);
        }
        if v.is_exact_instance_of::<PyList>() || v.is_exact_instance_of::<PyTuple>() {
            return self.write_seq_plain(v);
        }
        self.write_other(v)
    }

    fn write_int(&mut self, v: &Bound<'py, PyAny>) -> SerResult {
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
            self.buf.extend_from_slice(str_utf8(s.as_any())?.as_bytes());
        }
        Ok(())
    }

    fn write_float(&mut self, v: &Bound<'py, PyAny>) -> SerResult {
        let f: f64 = v.extract()?;
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

    fn write_dict(&mut self, d: &Bound<'py, PyDict>) -> SerResult {
        self.enter(d.as_any())?;
        self.buf.push(b'{');
        for (count, (k, val)) in d.iter().enumerate() {
            let key = self.dict_key(&k)?;
            self.key(count, &key);
            self.write_value(&val).map_err(|e| e.at(Seg::Key(key.clone())))?;
        }
        self.buf.push(b'}');
        self.leave();
        Ok(())
    }

    /// Dict keys as `json.dumps` converts them (str, int, float, bool, None),
    /// plus Enum members by value and UUIDs as text.
    fn dict_key(&self, k: &Bound<'py, PyAny>) -> SerResult<String> {
        if let Ok(s) = k.cast::<PyString>() {
            return Ok(str_utf8(s.as_any())?.to_owned());
        }
        if k.is_none() {
            return Ok("null".into());
        }
        if let Ok(b) = k.cast::<PyBool>() {
            return Ok(if b.is_true() { "true" } else { "false" }.into());
        }
        if k.is_instance_of::<PyInt>() || k.is_instance_of::<PyFloat>() {
            let mut w = Writer::new(self.py, 24);
            w.write_value(k).or_else(|_| {
                // int/float subclasses: use the plain numeric value.
                if k.is_instance_of::<PyInt>() {
                    w.write_int(k)
                } else {
                    w.write_float(k)
                }
            })?;
            return Ok(String::from_utf8_lossy(&w.buf).into_owned());
        }
        let types = std_types(self.py)?;
        if k.is_instance(types.uuid.bind(self.py))? {
            return Ok(k.str()?.to_string());
        }
        if k.is_instance(types.enum_.bind(self.py))? {
            return self.dict_key(&k.getattr(pyo3::intern!(self.py, "value"))?);
        }
        Err(SerError::invalid(format!(
            "dict keys must be str, int, float, bool or None, not {}",
            type_name(k)
        )))
    }

    fn write_seq_plain(&mut self, v: &Bound<'py, PyAny>) -> SerResult {
        self.enter(v)?;
        self.buf.push(b'[');
        for (i, item) in v.try_iter()?.enumerate() {
            if i > 0 {
                self.buf.push(b',');
            }
            self.write_value(&item?).map_err(|e| e.at(Seg::Index(i)))?;
        }
        self.buf.push(b']');
        self.leave();
        Ok(())
    }

    /// Everything that is not an exact builtin JSON type.
    fn write_other(&mut self, v: &Bound<'py, PyAny>) -> SerResult {
        let py = self.py;
        // Subclasses of the builtins first (json.dumps accepts them; this also
        // covers str/int Enum mixins such as StrEnum and IntEnum).
        if v.is_instance_of::<PyString>() {
            write_str(&mut self.buf, str_utf8(v)?);
            return Ok(());
        }
        if v.is_instance_of::<PyInt>() {
            return self.write_int(v);
        }
        if v.is_instance_of::<PyFloat>() {
            return self.write_float(v);
        }
        if v.is_instance_of::<PyList>() || v.is_instance_of::<PyTuple>() {
            return self.write_seq_plain(v);
        }
        if let Some(fields) = dataclass_fields(v)? {
            // A dataclass inside a plain value: the dataclass rules apply.
            let start = self.buf.len();
            if !self.write_dataclass(v, &fields)? {
                self.buf.truncate(start);
                self.buf.extend_from_slice(b"{}");
            }
            return Ok(());
        }
        let types = std_types(py)?;
        if v.is_instance(types.datetime.bind(py))?
            || v.is_instance(types.date.bind(py))?
            || v.is_instance(types.time.bind(py))?
        {
            let iso = v.call_method0(pyo3::intern!(py, "isoformat"))?;
            write_str(&mut self.buf, str_utf8(&iso)?);
            return Ok(());
        }
        if v.is_instance(types.uuid.bind(py))? {
            let s = v.str()?;
            write_str(&mut self.buf, str_utf8(s.as_any())?);
            return Ok(());
        }
        if v.is_instance(types.decimal.bind(py))? {
            let finite = v.call_method0(pyo3::intern!(py, "is_finite"))?.is_truthy()?;
            if !finite {
                return Err(SerError::invalid("a non-finite Decimal is not allowed in JSON"));
            }
            // Exact decimal text as a JSON number (no float rounding).
            let s = v.str()?;
            self.buf.extend_from_slice(str_utf8(s.as_any())?.as_bytes());
            return Ok(());
        }
        if v.is_instance(types.enum_.bind(py))? {
            let inner = v.getattr(pyo3::intern!(py, "value"))?;
            self.enter(v)?;
            let r = self.write_value(&inner);
            self.leave();
            return r;
        }
        if v.is_instance(types.set.bind(py))? || v.is_instance(types.frozenset.bind(py))? {
            // Sorted when the items are orderable, so the output is stable.
            let list = PyList::new(py, v.try_iter()?.collect::<PyResult<Vec<_>>>()?)?;
            let _ = list.sort();
            return self.write_seq_plain(list.as_any());
        }
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

    // ---- dataclass rules -------------------------------------------------

    /// Write `obj` (a dataclass) as an object under the omission rules.
    /// Returns false, having written nothing, when no field survives.
    pub fn write_dataclass(&mut self, obj: &Bound<'py, PyAny>, fields: &[Field]) -> SerResult<bool> {
        self.enter(obj)?;
        let start = self.buf.len();
        self.buf.push(b'{');
        let values = field_values(obj, fields)?;
        let mut count = 0;
        for (field, value) in fields.iter().zip(values) {
            let Some(value) = value else { continue };
            if self
                .write_field(count, &field.json_key, &value)
                .map_err(|e| e.at_key(&field.text))?
            {
                count += 1;
            }
        }
        if count == 0 {
            self.buf.truncate(start);
            self.leave();
            return Ok(false);
        }
        self.buf.push(b'}');
        self.leave();
        Ok(true)
    }

    /// One non-None dataclass field: `"key":value`, or nothing when the
    /// value is an empty dataclass or a list that ends up empty.
    pub fn write_field(
        &mut self,
        count: usize,
        json_key: &[u8],
        value: &Bound<'py, PyAny>,
    ) -> SerResult<bool> {
        let start = self.buf.len();
        self.raw_key(count, json_key);
        let kept = if value.is_exact_instance_of::<PyList>() || value.is_exact_instance_of::<PyTuple>() {
            self.write_filtered_list(value)?
        } else if let Some(fields) = self.nested_dataclass(value)? {
            self.write_dataclass(value, &fields)?
        } else {
            self.write_value(value)?;
            true
        };
        if !kept {
            self.buf.truncate(start);
        }
        Ok(kept)
    }

    fn nested_dataclass(&self, value: &Bound<'py, PyAny>) -> SerResult<Option<Fields>> {
        // Exact builtins are never dataclasses: skip the type lookup.
        if value.is_exact_instance_of::<PyString>()
            || value.is_exact_instance_of::<PyInt>()
            || value.is_exact_instance_of::<PyFloat>()
            || value.is_exact_instance_of::<PyBool>()
            || value.is_exact_instance_of::<PyDict>()
        {
            return Ok(None);
        }
        dataclass_fields(value)
    }

    /// A list field: `None` items and empty dataclass items dropped; other
    /// items as they are. Returns false (nothing written) when empty.
    pub fn write_filtered_list(&mut self, list: &Bound<'py, PyAny>) -> SerResult<bool> {
        self.enter(list)?;
        let start = self.buf.len();
        self.buf.push(b'[');
        let mut count = 0;
        for (i, item) in list.try_iter()?.enumerate() {
            let item = item?;
            if item.is_none() {
                continue;
            }
            let before = self.buf.len();
            if count > 0 {
                self.buf.push(b',');
            }
            let kept = match self.nested_dataclass(&item).map_err(|e| e.at(Seg::Index(i)))? {
                Some(fields) => self
                    .write_dataclass(&item, &fields)
                    .map_err(|e| e.at(Seg::Index(i)))?,
                None => {
                    self.write_value(&item).map_err(|e| e.at(Seg::Index(i)))?;
                    true
                }
            };
            if kept {
                count += 1;
            } else {
                self.buf.truncate(before);
            }
        }
        self.leave();
        if count == 0 {
            self.buf.truncate(start);
            return Ok(false);
        }
        self.buf.push(b']');
        Ok(true)
    }
}

pub fn type_name(v: &Bound<'_, PyAny>) -> String {
    v.get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "object".into())
}
