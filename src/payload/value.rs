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

use std::cell::{OnceCell, RefCell};
use std::os::raw::{c_char, c_void};
use std::ptr::addr_of_mut;
use std::rc::Rc;

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple, PyType};

use super::encode::{write_f64, write_i64, write_str, write_u64};

use crate::schema::MAX_DEPTH;

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
    // Public C API since 3.3 (limited API from 3.10), exported by every
    // CPython 3.9+: the instance `__dict__` (a new reference), created on
    // first use, exactly what `obj.__dict__` returns for a class that does
    // not override attribute access.
    fn PyObject_GenericGetDict(obj: *mut ffi::PyObject, context: *mut c_void) -> *mut ffi::PyObject;
}

const LONE_SURROGATE: &str = "string is not valid Unicode (it contains a lone surrogate)";

/// The UTF-8 text a compact `str` already holds, read from the object
/// itself: its data when it is ASCII, else the UTF-8 copy CPython cached in
/// it (if any). `None` for anything else. What `PyUnicode_AsUTF8AndSize`
/// returns first in these cases, without the call.
///
/// # Safety
/// As [`utf8_of`].
#[cfg(not(any(Py_LIMITED_API, Py_3_14, PyPy, GraalPy)))]
#[inline(always)]
unsafe fn compact_utf8<'a>(o: *mut ffi::PyObject) -> Option<&'a str> {
    if ffi::PyUnicode_IS_COMPACT(o) == 0 {
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
enum Units<'a> {
    Latin1(&'a [u8]),
    Ucs2(&'a [u16]),
    Ucs4(&'a [u32]),
}

/// # Safety
/// The GIL is held, `o` points to a live compact `str` that is not ASCII,
/// and the slice is not used after `o` may have been freed.
#[cfg(not(any(Py_LIMITED_API, Py_3_14, PyPy, GraalPy)))]
#[inline(always)]
unsafe fn compact_units<'a>(o: *mut ffi::PyObject) -> Units<'a> {
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
unsafe fn write_str_object(buf: &mut Vec<u8>, o: *mut ffi::PyObject) -> bool {
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
/// as `str::trim` sees it) and its length in code points; `None` when it
/// holds a lone surrogate. Reads a compact non-ASCII text's code points in
/// place rather than have CPython build and cache its UTF-8.
pub fn text_facts(s: &Bound<'_, PyAny>) -> Option<(bool, usize)> {
    #[cfg(not(any(Py_LIMITED_API, Py_3_14, PyPy, GraalPy)))]
    // SAFETY: `s` is a live str (checked by the caller) and the GIL is held;
    // the code points are read while `s` is borrowed.
    unsafe {
        let o = s.as_ptr();
        if ffi::PyUnicode_IS_COMPACT(o) != 0 {
            let len = ffi::PyUnicode_GET_LENGTH(o) as usize;
            if let Some(text) = compact_utf8(o) {
                return Some((text.trim().is_empty(), len));
            }
            let surrogate = |c: u32| (0xd800..0xe000).contains(&c);
            let space = |c: u32| char::from_u32(c).is_some_and(char::is_whitespace);
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
    Some((text.trim().is_empty(), chars))
}

/// Borrow the UTF-8 text of a `str` (or subclass) without copying.
pub fn str_utf8<'a>(s: &'a Bound<'_, PyAny>) -> SerResult<&'a str> {
    // SAFETY: `s` is a live str instance (checked by the caller), the GIL is
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
unsafe fn utf8_of<'a>(o: *mut ffi::PyObject) -> Option<&'a str> {
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

// ---- raw type checks ---------------------------------------------------------
//
// The walk reads containers through borrowed pointers (no reference-count
// traffic) following one rule: a borrowed pointer is used only until the next
// call that can run Python code (a getattr, a method call, a user type). Every
// container or object the walk descends into, and every value handed to such
// a call, is first turned into an owned `Bound` (see `own`).

#[inline(always)]
fn type_of(o: *mut ffi::PyObject) -> *mut ffi::PyTypeObject {
    // SAFETY: every pointer passed here is a live object (GIL held).
    unsafe { ffi::Py_TYPE(o) }
}

// Taking the address of a static type object reads nothing (no `unsafe`).
#[inline(always)]
fn str_type() -> *mut ffi::PyTypeObject {
    addr_of_mut!(ffi::PyUnicode_Type)
}

#[inline(always)]
fn int_type() -> *mut ffi::PyTypeObject {
    addr_of_mut!(ffi::PyLong_Type)
}

#[inline(always)]
fn float_type() -> *mut ffi::PyTypeObject {
    addr_of_mut!(ffi::PyFloat_Type)
}

#[inline(always)]
fn bool_type() -> *mut ffi::PyTypeObject {
    addr_of_mut!(ffi::PyBool_Type)
}

#[inline(always)]
fn dict_type() -> *mut ffi::PyTypeObject {
    addr_of_mut!(ffi::PyDict_Type)
}

#[inline(always)]
fn list_type() -> *mut ffi::PyTypeObject {
    addr_of_mut!(ffi::PyList_Type)
}

#[inline(always)]
fn tuple_type() -> *mut ffi::PyTypeObject {
    addr_of_mut!(ffi::PyTuple_Type)
}

#[inline(always)]
fn none() -> *mut ffi::PyObject {
    // SAFETY: the address of the None singleton; nothing is read.
    unsafe { ffi::Py_None() }
}

/// An owned reference to the live object at `o`.
#[inline(always)]
fn own<'py>(py: Python<'py>, o: *mut ffi::PyObject) -> Bound<'py, PyAny> {
    // SAFETY: callers pass a live (borrowed) object pointer with the GIL held;
    // `from_borrowed_ptr` takes a new strong reference to it.
    unsafe { Bound::from_borrowed_ptr(py, o) }
}

/// Whether `o` is an exact builtin that is never a dataclass (no type lookup).
#[inline(always)]
fn is_plain_builtin(o: *mut ffi::PyObject) -> bool {
    let t = type_of(o);
    t == str_type() || t == int_type() || t == float_type() || t == bool_type() || t == dict_type()
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

/// What the writer needs to know about a type, worked out once per type.
pub struct TypeInfo {
    /// Dataclass fields in declaration order; `None` for other types.
    pub fields: Option<Box<[Field]>>,
    /// Instances keep their attributes in an instance `__dict__`, the type
    /// does not customise attribute access (`__getattribute__`,
    /// `__getattr__`) and no field is shadowed by a data descriptor of the
    /// class: a value is then read from that dict, and an attribute missing
    /// from it can only come from the class. (Worked out on first use: a
    /// class changed afterwards keeps the answer it had.)
    pub plain: bool,
    /// Attribute access is `object`'s own (`tp_getattro` is
    /// `PyObject_GenericGetAttr`): attributes are read by calling it
    /// directly, skipping `PyObject_GetAttr`'s dispatch (~4 % of a trace's
    /// serialisation on Python 3.11, by callgrind).
    generic_getattr: bool,
    /// Per dataclass field: the class defines an attribute of that name (a
    /// default, a property, a slot), so a field missing from the instance
    /// dict is read with `getattr`.
    class_attr: Box<[bool]>,
    /// The same for the trace body's top-level names (computed on first use).
    top_class_attr: OnceCell<Box<[bool]>>,
    ty: Py<PyType>,
}

impl TypeInfo {
    fn new(ty: &Bound<'_, PyType>) -> PyResult<Self> {
        let py = ty.py();
        let fields = if ty.hasattr(pyo3::intern!(py, "__dataclass_fields__"))? {
            let fields_fn = FIELDS_FN.get_or_try_init(py, || {
                py.import("dataclasses")?.getattr("fields").map(Bound::unbind)
            })?;
            let mut out = Vec::new();
            for f in fields_fn.bind(py).call1((ty,))?.try_iter()? {
                let name = f?.getattr(pyo3::intern!(py, "name"))?;
                out.push(Field::new(
                    py,
                    str_utf8(&name).map_err(|_| {
                        pyo3::exceptions::PyValueError::new_err("dataclass field name is not valid Unicode")
                    })?,
                ));
            }
            Some(out.into_boxed_slice())
        } else {
            None
        };
        let object = py.get_type::<pyo3::types::PyAny>();
        let getattribute = pyo3::intern!(py, "__getattribute__");
        let plain = ty.getattr(getattribute)?.is(&object.getattr(getattribute)?)
            && !ty.hasattr(pyo3::intern!(py, "__getattr__"))?
            && ty
                .getattr(pyo3::intern!(py, "__dictoffset__"))
                .and_then(|o| o.extract::<isize>())
                .unwrap_or(0)
                != 0
            && !shadows_a_field(ty, fields.as_deref().unwrap_or_default())?;
        let class_attr = match &fields {
            Some(fields) => fields
                .iter()
                .map(|f| ty.hasattr(f.name.bind(py)))
                .collect::<PyResult<Vec<bool>>>()?
                .into_boxed_slice(),
            None => Box::new([]),
        };
        Ok(TypeInfo {
            fields,
            plain,
            generic_getattr: generic_getattr(ty),
            class_attr,
            top_class_attr: OnceCell::new(),
            ty: ty.clone().unbind(),
        })
    }

    /// Per name in `names`: the class defines an attribute of that name.
    pub fn top_class_attr(&self, py: Python<'_>, names: &[Field]) -> PyResult<&[bool]> {
        if let Some(v) = self.top_class_attr.get() {
            return Ok(v);
        }
        let ty = self.ty.bind(py);
        let v = names
            .iter()
            .map(|f| ty.hasattr(f.name.bind(py)))
            .collect::<PyResult<Vec<bool>>>()?
            .into_boxed_slice();
        Ok(self.top_class_attr.get_or_init(|| v))
    }
}

/// Whether the class defines a data descriptor (a property with a setter,
/// say) named as one of `fields`: getattr reads such a field through the
/// descriptor even when the instance dict holds a value of that name, so
/// the dict cannot stand in for getattr.
fn shadows_a_field(ty: &Bound<'_, PyType>, fields: &[Field]) -> PyResult<bool> {
    let py = ty.py();
    let mro = ty.getattr(pyo3::intern!(py, "__mro__"))?;
    for f in fields {
        let name = f.name.bind(py);
        for klass in mro.try_iter()? {
            let ns = klass?.getattr(pyo3::intern!(py, "__dict__"))?;
            if !ns.contains(name)? {
                continue;
            }
            let kind = ns.get_item(name)?.get_type();
            if kind.hasattr(pyo3::intern!(py, "__set__"))? || kind.hasattr(pyo3::intern!(py, "__delete__"))? {
                return Ok(true);
            }
            // The first class in the MRO that defines the name decides.
            break;
        }
    }
    Ok(false)
}

/// Types seen by this thread. Thread-local, so a lookup takes no lock and
/// no atomic: a handful of types in practice, a linear scan beats hashing.
/// Each entry keeps its type alive, so its address cannot be reused.
type TypeCache = Vec<(usize, Rc<TypeInfo>)>;
thread_local! {
    static TYPE_CACHE: RefCell<TypeCache> = const { RefCell::new(Vec::new()) };
}
const MAX_CACHED_TYPES: usize = 256;
static FIELDS_FN: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// The (cached) `TypeInfo` of `obj`'s type.
pub fn type_info(obj: &Bound<'_, PyAny>) -> PyResult<Rc<TypeInfo>> {
    let key = type_of(obj.as_ptr()) as usize;
    let hit = TYPE_CACHE.with(|c| {
        c.try_borrow()
            .ok()
            .and_then(|c| c.iter().find(|(k, _)| *k == key).map(|(_, i)| i.clone()))
    });
    if let Some(info) = hit {
        return Ok(info);
    }
    // Computed outside any borrow of the cache: it runs Python code, which
    // may serialise (and so use the cache) itself.
    let info = Rc::new(TypeInfo::new(&obj.get_type())?);
    TYPE_CACHE.with(|c| {
        if let Ok(mut c) = c.try_borrow_mut() {
            if c.len() >= MAX_CACHED_TYPES {
                // Types made on the fly: start over rather than grow without bound.
                c.clear();
            }
            c.push((key, info.clone()));
        }
    });
    Ok(info)
}

/// The dataclass fields of `obj`'s type, when it is a dataclass.
pub fn dataclass_info(obj: &Bound<'_, PyAny>) -> SerResult<Option<Rc<TypeInfo>>> {
    let info = type_info(obj)?;
    Ok(if info.fields.is_some() { Some(info) } else { None })
}

/// Whether a dataclass is best read through its instance `__dict__`.
///
/// Before Python 3.11 every instance has a real dict, and one walk of it
/// beats a getattr per field. From 3.11 on, instances keep their attributes
/// inline and the first access to `__dict__` builds a dict (1-2 µs per
/// object, kept for the object's life: ~50 µs and ~20 KB for a fresh 12-step
/// trace); getattr reads the inline values without building anything.
fn walk_instance_dicts(py: Python<'_>) -> bool {
    static WALK: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    match READ_MODE.load(std::sync::atomic::Ordering::Relaxed) {
        READ_DICT => true,
        READ_GETATTR => false,
        _ => *WALK.get_or_init(|| py.version_info() < (3, 11)),
    }
}

/// How dataclass fields are read: by Python version (the default), or forced
/// (the tests run the serialiser both ways on whatever Python they have).
static READ_MODE: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(READ_BY_VERSION);
pub const READ_BY_VERSION: u8 = 0;
pub const READ_DICT: u8 = 1;
pub const READ_GETATTR: u8 = 2;

pub fn set_read_mode(mode: u8) {
    READ_MODE.store(mode, std::sync::atomic::Ordering::Relaxed);
}

/// The instance `__dict__` of an object whose type is `plain`.
pub fn plain_dict<'py>(obj: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyDict>> {
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
fn generic_getattr(ty: &Bound<'_, PyType>) -> bool {
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
fn getattr_opt<'py>(
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

/// `getattr(obj, name)`, `None` for None or a missing attribute.
fn getattr_or_none<'py>(
    obj: &Bound<'py, PyAny>,
    name: &Py<PyString>,
    generic: bool,
) -> PyResult<Option<Bound<'py, PyAny>>> {
    Ok(getattr_opt(obj, name, generic)?.filter(|v| !v.is_none()))
}

/// The next `(key, value)` of `d` from `pos`, both borrowed.
///
/// `PyDict_Next` never runs Python code and stays within the dict's current
/// entries even if the dict was changed since the previous call.
#[inline(always)]
fn dict_next(
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
fn dict_lookup(d: &Bound<'_, PyDict>, name: &Py<PyString>) -> PyResult<Option<*mut ffi::PyObject>> {
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
unsafe fn key_is(k: *mut ffi::PyObject, name: &Field) -> bool {
    if k == name.name.as_ptr() {
        return true;
    }
    // Only str keys are read as text.
    ffi::PyUnicode_Check(k) != 0 && utf8_of(k).is_some_and(|t| t == &*name.text)
}

/// Whether the (held) `key` is the str `name`.
pub fn key_matches(key: &Bound<'_, PyAny>, name: &Field) -> bool {
    // SAFETY: `key` is alive (we hold a reference) and so is the GIL.
    unsafe { key_is(key.as_ptr(), name) }
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
pub fn read_names<'py>(
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
fn getattr_present<'py>(
    obj: &Bound<'py, PyAny>,
    name: &Py<PyString>,
    generic: bool,
) -> PyResult<Option<Option<Bound<'py, PyAny>>>> {
    Ok(getattr_opt(obj, name, generic)?.map(|v| if v.is_none() { None } else { Some(v) }))
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
        Self::with_buf(py, Vec::with_capacity(capacity))
    }

    /// A writer appending to `buf` (emptied first).
    pub fn with_buf(py: Python<'py>, mut buf: Vec<u8>) -> Self {
        buf.clear();
        Writer {
            py,
            buf,
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
    #[inline]
    pub fn raw_key(&mut self, count: usize, json_key: &[u8]) {
        if count > 0 {
            self.buf.push(b',');
        }
        super::encode::append(&mut self.buf, json_key);
    }

    // ---- plain values (json.dumps semantics) ---------------------------

    pub fn write_value(&mut self, v: &Bound<'py, PyAny>) -> SerResult {
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
    fn write_leaf(&mut self, o: *mut ffi::PyObject) -> Option<SerResult> {
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
    fn write_container(&mut self, v: &Bound<'py, PyAny>) -> SerResult {
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
        self.write_f64_checked(f)
    }

    #[inline]
    fn write_f64_checked(&mut self, f: f64) -> SerResult {
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
        let mut pos = 0;
        let mut count = 0;
        while let Some((k, v)) = dict_next(d, &mut pos) {
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

    /// An exact list or tuple, item by item (borrowed items; the length is
    /// read again after each, as a list may change under user code).
    fn write_seq_exact(&mut self, v: &Bound<'py, PyAny>) -> SerResult {
        self.enter(v)?;
        self.buf.push(b'[');
        let mut i = 0;
        while let Some(item) = seq_item(v, i) {
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
        if let Some(info) = dataclass_info(v)? {
            // A dataclass inside a plain value: the dataclass rules apply.
            let start = self.buf.len();
            if !self.write_dataclass(v, &info)? {
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

    /// Write `obj` (a dataclass, `info` its type's) as an object under the
    /// omission rules. Returns false, having written nothing, when no field
    /// survives.
    pub fn write_dataclass(&mut self, obj: &Bound<'py, PyAny>, info: &TypeInfo) -> SerResult<bool> {
        let Some(fields) = info.fields.as_deref() else {
            return Ok(false);
        };
        self.enter(obj)?;
        let start = self.buf.len();
        self.buf.push(b'{');
        let mut count = 0;
        let walk = walk_instance_dicts(self.py);
        if info.plain && walk {
            let d = plain_dict(obj)?;
            // A dataclass `__init__` fills the instance dict in field order
            // with the interned names: walk the dict alongside the fields,
            // comparing key pointers; each value is written as it is read.
            let mut pos = 0;
            let mut j = 0;
            while j < fields.len() {
                let Some((k, v)) = dict_next(&d, &mut pos) else {
                    break;
                };
                if k != fields[j].name.as_ptr() {
                    break;
                }
                // `v` is borrowed from `d` (held) and used right away.
                if self.dataclass_field(count, &fields[j], v)? {
                    count += 1;
                }
                j += 1;
            }
            // Anything unusual (reordered, deleted): a lookup per field.
            for (f, &class_attr) in fields[j..].iter().zip(&info.class_attr[j..]) {
                if let Some(v) = dict_lookup(&d, &f.name)? {
                    if self.dataclass_field(count, f, v)? {
                        count += 1;
                    }
                } else if class_attr {
                    if let Some(v) = getattr_or_none(obj, &f.name, info.generic_getattr)? {
                        if self.dataclass_field(count, f, v.as_ptr())? {
                            count += 1;
                        }
                    }
                }
            }
        } else {
            // getattr, also where an instance dict exists but the class
            // customises attribute access (reading the dict would bypass it).
            for f in fields {
                if let Some(v) = getattr_or_none(obj, &f.name, info.generic_getattr)? {
                    if self.dataclass_field(count, f, v.as_ptr())? {
                        count += 1;
                    }
                }
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

    /// One field value (live, possibly borrowed: used before any Python code
    /// runs, or owned first): nothing for None, else as `write_field`.
    #[inline]
    fn dataclass_field(&mut self, count: usize, f: &Field, v: *mut ffi::PyObject) -> SerResult<bool> {
        if v == none() {
            return Ok(false);
        }
        let start = self.buf.len();
        self.raw_key(count, &f.json_key);
        if let Some(r) = self.write_leaf(v) {
            r.map_err(|e| e.at_key(&f.text))?;
            return Ok(true);
        }
        let v = own(self.py, v);
        let kept = self.field_body(&v).map_err(|e| e.at_key(&f.text))?;
        if !kept {
            self.buf.truncate(start);
        }
        Ok(kept)
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
        let kept = self.field_body(value)?;
        if !kept {
            self.buf.truncate(start);
        }
        Ok(kept)
    }

    /// The value of a dataclass field (not None) under the dataclass rules.
    fn field_body(&mut self, value: &Bound<'py, PyAny>) -> SerResult<bool> {
        let t = type_of(value.as_ptr());
        if t == list_type() || t == tuple_type() {
            self.write_filtered_list(value)
        } else if let Some(info) = self.nested_dataclass(value)? {
            self.write_dataclass(value, &info)
        } else {
            self.write_value(value)?;
            Ok(true)
        }
    }

    fn nested_dataclass(&self, value: &Bound<'py, PyAny>) -> SerResult<Option<Rc<TypeInfo>>> {
        // Exact builtins are never dataclasses: skip the type lookup.
        if is_plain_builtin(value.as_ptr()) {
            return Ok(None);
        }
        dataclass_info(value)
    }

    /// A list field: `None` items and empty dataclass items dropped; other
    /// items as they are. Returns false (nothing written) when empty.
    pub fn write_filtered_list(&mut self, list: &Bound<'py, PyAny>) -> SerResult<bool> {
        self.enter(list)?;
        let start = self.buf.len();
        self.buf.push(b'[');
        let mut count = 0;
        let mut i = 0;
        while let Some(item) = seq_item(list, i) {
            let index = i;
            i += 1;
            if item == none() {
                continue;
            }
            let before = self.buf.len();
            if count > 0 {
                self.buf.push(b',');
            }
            let kept = if let Some(r) = self.write_leaf(item) {
                r.map_err(|e| e.at(Seg::Index(index)))?;
                true
            } else {
                let item = own(self.py, item);
                match self
                    .nested_dataclass(&item)
                    .map_err(|e| e.at(Seg::Index(index)))?
                {
                    Some(info) => self
                        .write_dataclass(&item, &info)
                        .map_err(|e| e.at(Seg::Index(index)))?,
                    None => {
                        self.write_value(&item).map_err(|e| e.at(Seg::Index(index)))?;
                        true
                    }
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

/// Item `i` of the exact list or tuple `seq` (borrowed), `None` past the end.
#[inline]
pub fn seq_item(seq: &Bound<'_, PyAny>, i: usize) -> Option<*mut ffi::PyObject> {
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

pub fn type_name(v: &Bound<'_, PyAny>) -> String {
    v.get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "object".into())
}
