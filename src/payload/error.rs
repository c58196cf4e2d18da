//! The serialiser's error: what went wrong and the path to the value
//! (`steps[3].metadata.when`), built up while unwinding.

use pyo3::prelude::*;

use crate::schema::MAX_DEPTH;

/// One step of the path to a value, for error messages.
#[derive(Debug, Clone)]
pub(crate) enum Seg {
    Key(String),
    Index(usize),
}

/// A serialisation failure and where it happened (innermost segment last
/// once reversed).
#[derive(Debug)]
pub(crate) enum SerError {
    Invalid {
        rev_path: Vec<Seg>,
        message: String,
    },
    Python(PyErr),
    /// The body is already certainly over the size limit: the walk stopped.
    TooLarge,
}

impl SerError {
    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        SerError::Invalid {
            rev_path: Vec::new(),
            message: message.into(),
        }
    }

    /// Record that the failure happened under `seg` (called while unwinding).
    pub(crate) fn at(mut self, seg: Seg) -> Self {
        if let SerError::Invalid { rev_path, .. } = &mut self {
            rev_path.push(seg);
        }
        self
    }

    pub(crate) fn at_key(self, key: &str) -> Self {
        self.at(Seg::Key(key.to_owned()))
    }

    /// `steps[3].metadata.when`
    pub(crate) fn path(rev_path: &[Seg]) -> String {
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

pub(crate) type SerResult<T = ()> = Result<T, SerError>;

pub(crate) const CIRCULAR: &str = "circular reference detected";
pub(crate) const DICT_CHANGED: &str = "dictionary changed size during iteration";

pub(crate) fn too_deep() -> SerError {
    SerError::invalid(format!("nesting deeper than {MAX_DEPTH} levels"))
}

pub(crate) const LONE_SURROGATE: &str = "string is not valid Unicode (it contains a lone surrogate)";
