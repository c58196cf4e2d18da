//! `infinium._core`: the Rust core of the infinium SDK.
//!
//! One module, one job: `schema` (the trace's fields, sections and limits),
//! `payload` (validation + JSON writer), `transport`
//! (reqwest client, retries, status mapping), `proxy` (which proxy, from the
//! environment, as httpx decides), `tls` (the verifying TLS setup, built
//! once), `limiter` (GCRA), `bridge`
//! (sync waits and asyncio futures), `client` (the pyclass the Python clients
//! drive), `runtime` (the one tokio runtime), `error` (the one error type and
//! its Python mapping), `clock` (wire timestamps), `export` (background
//! export), `server` (the local API).

use std::panic::{catch_unwind, AssertUnwindSafe};

use pyo3::prelude::*;

pub mod batch;
pub mod bridge;
pub mod client;
pub mod clock;
pub mod error;
// background export (issue 6)
pub mod export;
pub mod json;
pub mod limiter;
pub mod payload;
pub mod proxy;
pub mod runtime;
pub mod schema;
pub mod server;
pub mod tls;
pub mod transport;

/// Run `f`, turning an `Error` into the matching Python exception and a
/// panic into `InfiniumError` instead of unwinding into the interpreter.
pub fn guard<T>(f: impl FnOnce() -> Result<T, error::Error>) -> PyResult<T> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r.map_err(PyErr::from),
        Err(p) => Err(error::from_panic(p).into()),
    }
}

/// Interpreter shutdown has begun (an `atexit` hook): runtime threads stop
/// calling into Python, and those inside are let leave first.
#[pyfunction]
fn _shutdown(py: Python<'_>) {
    bridge::mark_shutdown(py);
}

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    runtime::register_atfork();
    schema::register(m)?;
    m.add_function(wrap_pyfunction!(payload::dumps, m)?)?;
    m.add_function(wrap_pyfunction!(payload::dumps_value, m)?)?;
    payload::validate::register(m)?;
    m.add_function(wrap_pyfunction!(payload::validate_payload_size, m)?)?;
    #[cfg(debug_assertions)]
    m.add_function(wrap_pyfunction!(payload::_set_field_reading, m)?)?;
    m.add_function(wrap_pyfunction!(_shutdown, m)?)?;
    m.add_function(wrap_pyfunction!(clock::iso_now, m)?)?;
    m.add_class::<client::CoreClient>()?;
    server::register(m)?;
    // background export (issue 6)
    m.add_class::<export::Exporter>()?;
    Ok(())
}
