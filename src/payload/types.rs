//! What the writer knows about a type, worked out once per type and cached
//! per thread: its dataclass fields, how its attributes are read, and its
//! kind (which writer takes its instances).

use std::cell::{OnceCell, RefCell};
use std::rc::Rc;

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyString, PyType};

use super::encode::write_str;
use super::error::{SerError, SerResult};
use super::ffi::{generic_getattr, str_utf8, type_of};

/// Types imported once from the standard library.
pub(crate) struct StdTypes {
    pub(crate) datetime: Py<PyType>,
    pub(crate) date: Py<PyType>,
    pub(crate) time: Py<PyType>,
    pub(crate) uuid: Py<PyType>,
    pub(crate) decimal: Py<PyType>,
    pub(crate) enum_: Py<PyType>,
    pub(crate) set: Py<PyType>,
    pub(crate) frozenset: Py<PyType>,
}

pub(crate) static STD_TYPES: PyOnceLock<StdTypes> = PyOnceLock::new();

pub(crate) fn std_types(py: Python<'_>) -> PyResult<&StdTypes> {
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

/// Which rule writes a type's instances as a plain value: worked out once
/// per type, in the order the rules apply (a str/int/float subclass first,
/// so `StrEnum`/`IntEnum` members are written as their text or number).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Str,
    Int,
    Float,
    /// A list or tuple (subclass).
    Seq,
    Dataclass,
    /// `datetime`, `date`, `time`: `isoformat()`.
    DateLike,
    Uuid,
    Decimal,
    Enum,
    /// `set`, `frozenset`: sorted when the items are orderable.
    Set,
    /// Anything else: `model_dump()` when it has one, else an error.
    Other,
}

fn classify(ty: &Bound<'_, PyType>, dataclass: bool) -> PyResult<Kind> {
    use pyo3::types::{PyFloat, PyInt, PyList, PyTuple};
    let py = ty.py();
    let is = |t: &Py<PyType>| ty.is_subclass(t.bind(py));
    Ok(if ty.is_subclass_of::<PyString>()? {
        Kind::Str
    } else if ty.is_subclass_of::<PyInt>()? {
        Kind::Int
    } else if ty.is_subclass_of::<PyFloat>()? {
        Kind::Float
    } else if ty.is_subclass_of::<PyList>()? || ty.is_subclass_of::<PyTuple>()? {
        Kind::Seq
    } else if dataclass {
        Kind::Dataclass
    } else {
        let types = std_types(py)?;
        if is(&types.datetime)? || is(&types.date)? || is(&types.time)? {
            Kind::DateLike
        } else if is(&types.uuid)? {
            Kind::Uuid
        } else if is(&types.decimal)? {
            Kind::Decimal
        } else if is(&types.enum_)? {
            Kind::Enum
        } else if is(&types.set)? || is(&types.frozenset)? {
            Kind::Set
        } else {
            Kind::Other
        }
    })
}

/// One field of a dataclass (or of the trace body): its interned name for
/// lookups and its pre-encoded JSON key (`"name":`).
pub(crate) struct Field {
    pub name: Py<PyString>,
    pub text: Box<str>,
    pub json_key: Box<[u8]>,
}

impl Field {
    pub(crate) fn new(py: Python<'_>, text: &str) -> Self {
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
pub(crate) struct TypeInfo {
    /// How instances are written as a plain value.
    pub(crate) kind: Kind,
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
    pub(crate) generic_getattr: bool,
    /// Per dataclass field: the class defines an attribute of that name (a
    /// default, a property, a slot), so a field missing from the instance
    /// dict is read with `getattr`.
    pub(crate) class_attr: Box<[bool]>,
    /// The same for the trace body's top-level names (computed on first use).
    pub(crate) top_class_attr: OnceCell<Box<[bool]>>,
    pub(crate) ty: Py<PyType>,
}

impl TypeInfo {
    pub(crate) fn new(ty: &Bound<'_, PyType>) -> SerResult<Self> {
        let py = ty.py();
        let fields = if ty.hasattr(pyo3::intern!(py, "__dataclass_fields__"))? {
            let fields_fn = FIELDS_FN.get_or_try_init(py, || {
                py.import("dataclasses")?.getattr("fields").map(Bound::unbind)
            })?;
            let mut out = Vec::new();
            for f in fields_fn.bind(py).call1((ty,))?.try_iter()? {
                let name = f?.getattr(pyo3::intern!(py, "name"))?;
                let Ok(name) = name.cast::<PyString>() else {
                    return Err(SerError::invalid(format!(
                        "a dataclass field name of {} is a {}, not a str",
                        type_name_of(ty),
                        type_name(&name)
                    )));
                };
                let text = str_utf8(name).map_err(|_| {
                    SerError::invalid(format!(
                        "a dataclass field name of {} is not valid Unicode",
                        type_name_of(ty)
                    ))
                })?;
                out.push(Field::new(py, text));
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
            kind: classify(ty, fields.is_some())?,
            fields,
            plain,
            generic_getattr: generic_getattr(ty),
            class_attr,
            top_class_attr: OnceCell::new(),
            ty: ty.clone().unbind(),
        })
    }

    /// Per name in `names`: the class defines an attribute of that name.
    pub(crate) fn top_class_attr(&self, py: Python<'_>, names: &[Field]) -> PyResult<&[bool]> {
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
pub(crate) fn shadows_a_field(ty: &Bound<'_, PyType>, fields: &[Field]) -> PyResult<bool> {
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
pub(crate) type TypeCache = Vec<(usize, Rc<TypeInfo>)>;
thread_local! {
    static TYPE_CACHE: RefCell<TypeCache> = const { RefCell::new(Vec::new()) };
}
pub(crate) const MAX_CACHED_TYPES: usize = 256;
pub(crate) static FIELDS_FN: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// The (cached) `TypeInfo` of `obj`'s type.
pub(crate) fn type_info(obj: &Bound<'_, PyAny>) -> SerResult<Rc<TypeInfo>> {
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
pub(crate) fn dataclass_info(obj: &Bound<'_, PyAny>) -> SerResult<Option<Rc<TypeInfo>>> {
    let info = type_info(obj)?;
    Ok(if info.fields.is_some() { Some(info) } else { None })
}

pub(crate) fn type_name(v: &Bound<'_, PyAny>) -> String {
    type_name_of(&v.get_type())
}

pub(crate) fn type_name_of(ty: &Bound<'_, PyType>) -> String {
    ty.name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "object".into())
}
