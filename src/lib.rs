//! `infinium._core`: the Rust core of the infinium SDK.
//!
//! One module, one job: `payload` (validation + JSON writer), `transport`
//! (reqwest client, retries, status mapping), `limiter` (GCRA), `batch`
//! (concurrent sender), `server` (the local Infinium API), `runtime` (the one
//! tokio runtime), `error` (the one error type and its Python mapping).

use pyo3::prelude::*;

pub mod error;
pub mod json;
pub mod runtime;
pub mod server;

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    server::register(m)?;
    Ok(())
}
