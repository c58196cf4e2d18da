//! The crate's one error type and its one mapping onto the Python exception
//! classes of `infinium.exceptions` (so `except`/`isinstance` behave exactly as
//! with the pure-Python SDK).

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyType};

use crate::json::json_to_py;

/// Every failure the core can report.
#[derive(Debug)]
pub enum Error {
    /// Bad input, caught before anything was sent.
    Validation { message: String, field: Option<String> },
    /// 401.
    Auth {
        message: String,
        status: u16,
        body: Option<serde_json::Value>,
    },
    /// 429; `retry_after` in seconds.
    RateLimited {
        retry_after: u64,
        body: Option<serde_json::Value>,
    },
    /// 404.
    NotFound {
        message: String,
        body: Option<serde_json::Value>,
    },
    /// 5xx.
    Server {
        status: u16,
        body: Option<serde_json::Value>,
    },
    /// Any other non-2xx status.
    Http {
        status: u16,
        message: String,
        body: Option<serde_json::Value>,
    },
    /// Connection refused/reset, DNS, TLS, a redirect refused...
    Network { message: String },
    /// The request did not complete within `seconds`.
    Timeout { message: String, seconds: f64 },
    /// A stopped batch (`fail_fast`), with the true counts at that moment.
    Batch {
        message: String,
        successful: usize,
        failed: usize,
        errors: Vec<String>,
    },
    /// Invalid SDK configuration.
    Config { message: String, key: Option<String> },
    /// Anything else (including a caught Rust panic).
    Unexpected(String),
    /// An exception raised by Python code we called (e.g. a user `model_dump`),
    /// or KeyboardInterrupt while waiting; re-raised unchanged.
    Python(PyErr),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn validation(message: impl Into<String>, field: Option<&str>) -> Self {
        Error::Validation {
            message: message.into(),
            field: field.map(str::to_owned),
        }
    }

    /// Whether the anchor's retry loop would try again after this error.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Error::Server { .. } | Error::Network { .. } | Error::Timeout { .. }
        )
    }

    /// The text `str(exc)` will show.
    pub fn message(&self) -> String {
        match self {
            Error::Validation { message, .. }
            | Error::Auth { message, .. }
            | Error::NotFound { message, .. }
            | Error::Http { message, .. }
            | Error::Network { message }
            | Error::Timeout { message, .. }
            | Error::Batch { message, .. }
            | Error::Config { message, .. } => message.clone(),
            Error::RateLimited { retry_after, .. } => {
                format!("Rate limit exceeded. Retry after {retry_after} seconds.")
            }
            Error::Server { status, .. } => format!("Server error: {status}"),
            Error::Unexpected(m) => format!("Unexpected error: {m}"),
            Error::Python(e) => Python::attach(|py| e.value(py).to_string()),
        }
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message())
    }
}

impl From<PyErr> for Error {
    fn from(e: PyErr) -> Self {
        Error::Python(e)
    }
}

static EXC_MODULE: PyOnceLock<Py<PyModule>> = PyOnceLock::new();

fn exc_class<'py>(py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyType>> {
    let module = EXC_MODULE
        .get_or_try_init(py, || py.import("infinium.exceptions").map(Bound::unbind))?
        .bind(py);
    Ok(module.getattr(name)?.cast_into::<PyType>()?)
}

fn details<'py>(py: Python<'py>, body: &Option<serde_json::Value>) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    let data = match body {
        Some(v) => json_to_py(py, v)?,
        None => py.None().into_bound(py),
    };
    d.set_item("response_data", data)?;
    Ok(d)
}

fn build(py: Python<'_>, err: Error) -> PyResult<PyErr> {
    let kw = PyDict::new(py);
    let (class, message) = match &err {
        Error::Python(_) => unreachable!("handled by the caller"),
        Error::Validation { message, field } => {
            kw.set_item("field", field.as_deref())?;
            ("ValidationError", message.clone())
        }
        Error::Auth {
            message,
            status,
            body,
        } => {
            kw.set_item("status_code", status)?;
            kw.set_item("details", details(py, body)?)?;
            ("AuthenticationError", message.clone())
        }
        Error::RateLimited { retry_after, body } => {
            kw.set_item("retry_after", retry_after)?;
            kw.set_item("details", details(py, body)?)?;
            ("RateLimitError", err.message())
        }
        Error::NotFound { message, body } => {
            kw.set_item("details", details(py, body)?)?;
            ("NotFoundError", message.clone())
        }
        Error::Server { status, body } => {
            kw.set_item("status_code", status)?;
            kw.set_item("details", details(py, body)?)?;
            ("ServerError", err.message())
        }
        Error::Http {
            status,
            message,
            body,
        } => {
            kw.set_item("status_code", status)?;
            kw.set_item("details", details(py, body)?)?;
            ("InfiniumError", message.clone())
        }
        Error::Network { message } => {
            let original = pyo3::exceptions::PyConnectionError::new_err(message.clone());
            kw.set_item("original_error", original.value(py))?;
            ("NetworkError", message.clone())
        }
        Error::Timeout { message, seconds } => {
            kw.set_item("timeout_duration", seconds)?;
            ("InfiniumTimeoutError", message.clone())
        }
        Error::Batch {
            message,
            successful,
            failed,
            errors,
        } => {
            kw.set_item("successful_count", successful)?;
            kw.set_item("failed_count", failed)?;
            kw.set_item("errors", errors)?;
            ("BatchError", message.clone())
        }
        Error::Config { message, key } => {
            kw.set_item("config_key", key.as_deref())?;
            ("ConfigurationError", message.clone())
        }
        Error::Unexpected(_) => ("InfiniumError", err.message()),
    };
    let cls = exc_class(py, class)?;
    let instance = cls.call((message,), Some(&kw))?;
    Ok(PyErr::from_value(instance))
}

impl From<Error> for PyErr {
    fn from(err: Error) -> PyErr {
        if let Error::Python(e) = err {
            return e;
        }
        Python::attach(|py| match build(py, err) {
            Ok(e) => e,
            // The exceptions module itself failed to import: say so plainly.
            Err(e) => PyRuntimeError::new_err(format!("infinium: cannot raise SDK error: {e}")),
        })
    }
}

/// Turn a caught panic payload into an error instead of unwinding into Python.
pub fn from_panic(payload: Box<dyn std::any::Any + Send>) -> Error {
    let text = payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_owned());
    Error::Unexpected(format!("internal error in the Rust core: {text}"))
}
