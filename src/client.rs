//! `infinium._core.CoreClient`: what the Python clients drive. One per SDK
//! client; owns the transport (reqwest pool + rate limiter).

use std::sync::Arc;

use bytes::Bytes;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyTuple};
use reqwest::Method;

use crate::error::Error;
use crate::json::json_to_py;
use crate::payload;
use crate::transport::{Auth, Config, Request, Response, Transport};
use crate::{batch, bridge};

#[pyclass(module = "infinium._core", frozen)]
pub struct CoreClient {
    pub transport: Arc<Transport>,
}

pub fn response_to_py(py: Python<'_>, r: Response) -> PyResult<Py<PyAny>> {
    let body = match &r.body {
        Some(v) => json_to_py(py, v)?.unbind(),
        None => py.None(),
    };
    Ok(
        PyTuple::new(py, [r.status.into_pyobject(py)?.into_any().unbind(), body])?
            .into_any()
            .unbind(),
    )
}

impl CoreClient {
    /// Build a request; `body` is bytes (sent as they are) or a trace object
    /// (validated and serialised here).
    fn build(
        &self,
        method: &str,
        path: String,
        body: Option<&Bound<'_, PyAny>>,
        prompt: Option<(String, String)>,
        idempotency_key: Option<String>,
    ) -> Result<Request, Error> {
        let method = Method::from_bytes(method.as_bytes())
            .map_err(|_| Error::validation(format!("invalid HTTP method {method:?}"), None))?;
        let body = match body {
            None => None,
            Some(b) if b.is_none() => None,
            Some(b) => match b.cast::<PyBytes>() {
                Ok(bytes) => Some(Bytes::copy_from_slice(bytes.as_bytes())),
                Err(_) => Some(Bytes::from(payload::serialize(b)?)),
            },
        };
        let auth = match prompt {
            Some((id, key)) => Auth::Prompt { id, key },
            None => Auth::Agent,
        };
        // Every POST carries an Idempotency-Key, fixed across its retries, so
        // the server can drop the duplicate a retry after a lost answer makes.
        let idempotency_key = match idempotency_key {
            Some(k) => Some(k),
            None if method == Method::POST => Some(crate::transport::new_idempotency_key()),
            None => None,
        };
        Ok(Request {
            method,
            path,
            auth,
            body,
            idempotency_key,
        })
    }
}

impl CoreClient {
    /// The request (built and, for a trace object, serialised now, in the
    /// caller) as a future that sends it with the client's retries.
    fn request_future(
        &self,
        method: &str,
        path: String,
        body: Option<&Bound<'_, PyAny>>,
        prompt: Option<(String, String)>,
        idempotency_key: Option<String>,
    ) -> PyResult<impl std::future::Future<Output = Result<Response, Error>> + Send + 'static> {
        let req = crate::guard(|| self.build(method, path, body, prompt, idempotency_key))?;
        let t = self.transport.clone();
        Ok(async move { t.execute(&req).await })
    }
}

#[pymethods]
impl CoreClient {
    #[new]
    #[pyo3(signature = (
        base_url, agent_id, agent_secret, *, timeout=Some(30.0), timeout_text=None, max_retries=3,
        requests_per_second=Some(10.0), burst=20, user_agent="infinium-python/1.0.0".to_owned(),
        verify_ssl=true, max_retry_after=60.0, backoff_base=1.0, pool_size=32
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        base_url: String,
        agent_id: String,
        agent_secret: String,
        timeout: Option<f64>,
        timeout_text: Option<String>,
        max_retries: u32,
        requests_per_second: Option<f64>,
        burst: u32,
        user_agent: String,
        verify_ssl: bool,
        max_retry_after: f64,
        backoff_base: f64,
        pool_size: usize,
    ) -> PyResult<Self> {
        let cfg = Config {
            base_url,
            agent_id,
            agent_secret,
            timeout,
            timeout_text: timeout_text
                .unwrap_or_else(|| timeout.map_or_else(|| "None".to_owned(), |t| t.to_string())),
            max_retries,
            requests_per_second,
            burst,
            user_agent,
            verify_ssl,
            max_retry_after,
            backoff_base,
            pool_size,
        };
        let transport = crate::guard(|| Transport::new(cfg))?;
        Ok(CoreClient { transport })
    }

    /// Send one request (with retries) and wait for it, GIL released.
    /// Returns `(status, parsed JSON body or None)`.
    #[pyo3(signature = (method, path, body=None, *, prompt=None, idempotency_key=None))]
    fn request(
        &self,
        py: Python<'_>,
        method: &str,
        path: String,
        body: Option<&Bound<'_, PyAny>>,
        prompt: Option<(String, String)>,
        idempotency_key: Option<String>,
    ) -> PyResult<Py<PyAny>> {
        let fut = self.request_future(method, path, body, prompt, idempotency_key)?;
        response_to_py(py, bridge::wait(py, fut)?)
    }

    /// The same as `request`, as an awaitable on the running asyncio loop.
    #[pyo3(signature = (method, path, body=None, *, prompt=None, idempotency_key=None))]
    fn request_async<'py>(
        &self,
        py: Python<'py>,
        method: &str,
        path: String,
        body: Option<&Bound<'py, PyAny>>,
        prompt: Option<(String, String)>,
        idempotency_key: Option<String>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let fut = self.request_future(method, path, body, prompt, idempotency_key)?;
        bridge::awaitable(py, fut, response_to_py)
    }

    /// Send every task of `tasks` (a list) to `path`, at most
    /// `max_concurrent` at once; waits with the GIL released.
    #[pyo3(signature = (path, tasks, max_concurrent=5, fail_fast=false))]
    fn send_batch(
        &self,
        py: Python<'_>,
        path: String,
        tasks: Bound<'_, PyList>,
        max_concurrent: usize,
        fail_fast: bool,
    ) -> PyResult<Py<PyAny>> {
        let fut = batch::run(self.transport.clone(), &tasks, path, max_concurrent, fail_fast);
        let out = bridge::wait(py, fut)?;
        batch::outcome_to_py(py, out)
    }

    /// `send_batch` as an awaitable on the running asyncio loop.
    #[pyo3(signature = (path, tasks, max_concurrent=5, fail_fast=false))]
    fn send_batch_async<'py>(
        &self,
        py: Python<'py>,
        path: String,
        tasks: Bound<'py, PyList>,
        max_concurrent: usize,
        fail_fast: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let fut = batch::run(self.transport.clone(), &tasks, path, max_concurrent, fail_fast);
        bridge::awaitable(py, fut, batch::outcome_to_py)
    }
}
