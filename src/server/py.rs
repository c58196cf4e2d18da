//! `_core.LocalServer`: the local Infinium API as a Python object.
//!
//! The server runs on the shared tokio runtime; every blocking call (start,
//! stop, reading the store) releases the GIL.

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use serde_json::Value;

use super::config::{self, ServerConfig};
use super::store::{now_rfc3339, Record};
use super::{Running, State};
use crate::error::Error;
use crate::json::json_to_py;

/// Python object -> JSON value, through `json.dumps` (dicts, lists, str, numbers...).
fn to_json(py: Python<'_>, obj: Option<&Bound<'_, PyAny>>) -> PyResult<Value> {
    let Some(obj) = obj else {
        return Ok(Value::Null);
    };
    if obj.is_none() {
        return Ok(Value::Null);
    }
    let text: String = py.import("json")?.call_method1("dumps", (obj,))?.extract()?;
    serde_json::from_str(&text)
        .map_err(|e| Error::Unexpected(format!("cannot read configuration: {e}")).into())
}

/// A local Infinium API server (see `infinium.testing.LocalServer` for the
/// friendly wrapper).
#[pyclass(name = "LocalServer", module = "infinium._core", frozen)]
pub struct LocalServer {
    host: String,
    port: u16,
    sink: bool,
    state: Arc<State>,
    running: Mutex<Option<Running>>,
}

impl LocalServer {
    fn load(&self, py: Python<'_>, agent_id: Option<&str>) -> PyResult<Vec<Record>> {
        let Some(store) = self.state.store.clone() else {
            return Ok(Vec::new());
        };
        let agent = agent_id.map(|a| a.trim().to_ascii_lowercase());
        Ok(py.detach(move || store.all(agent.as_deref()))?)
    }
}

fn parse_body<'py>(py: Python<'py>, body: &str) -> PyResult<Bound<'py, PyAny>> {
    let v: Value = serde_json::from_str(body)
        .map_err(|e| Error::Unexpected(format!("stored trace is not JSON: {e}")))?;
    json_to_py(py, &v)
}

#[pymethods]
impl LocalServer {
    #[new]
    #[pyo3(signature = (host="127.0.0.1", port=0, agents=None, prompts=None, db=None, sink=false, faults=None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        host: &str,
        port: u16,
        agents: Option<&Bound<'_, PyAny>>,
        prompts: Option<&Bound<'_, PyAny>>,
        db: Option<std::path::PathBuf>,
        sink: bool,
        faults: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let db = match db {
            None => None,
            Some(p) => Some(
                p.to_str()
                    .ok_or_else(|| Error::Config {
                        message: "db path must be valid UTF-8".to_owned(),
                        key: Some("db".to_owned()),
                    })?
                    .to_owned(),
            ),
        };
        let cfg = ServerConfig {
            host: host.to_owned(),
            port,
            agents: config::parse_agents(&to_json(py, agents)?)?,
            prompts: config::parse_prompts(&to_json(py, prompts)?, &now_rfc3339())?,
            db,
            sink,
            faults: config::parse_faults(&to_json(py, faults)?)?,
        };
        let state = py.detach(|| State::new(&cfg))?;
        Ok(LocalServer {
            host: cfg.host,
            port,
            sink,
            state: Arc::new(state),
            running: Mutex::new(None),
        })
    }

    /// Bind and start serving (returns once the port is open).
    fn start(&self, py: Python<'_>) -> PyResult<()> {
        let mut guard = self.running.lock();
        if guard.is_some() {
            return Ok(());
        }
        let state = self.state.clone();
        let running = py.detach(|| super::start(&self.host, self.port, state))?;
        *guard = Some(running);
        Ok(())
    }

    /// Stop serving; waits up to `timeout` seconds for in-flight requests.
    /// Stored traces stay readable; `start()` serves them again.
    #[pyo3(signature = (timeout=5.0))]
    fn stop(&self, py: Python<'_>, timeout: f64) -> PyResult<()> {
        let taken = self.running.lock().take();
        if let Some(mut r) = taken {
            let t = Duration::try_from_secs_f64(timeout.max(0.0)).unwrap_or(Duration::from_secs(5));
            py.detach(move || r.stop(t))?;
        }
        Ok(())
    }

    #[getter]
    fn running(&self) -> bool {
        self.running.lock().is_some()
    }

    #[getter]
    fn host(&self) -> String {
        self.host.clone()
    }

    /// The bound port while running (the chosen one when started with 0),
    /// else the configured one.
    #[getter]
    fn port(&self) -> u16 {
        self.running.lock().as_ref().map_or(self.port, |r| r.addr.port())
    }

    /// `http://HOST:PORT/api/v1` (requires a running server).
    #[getter]
    fn base_url(&self) -> PyResult<String> {
        match self.running.lock().as_ref() {
            Some(r) => Ok(format!("http://{}/api/v1", r.addr)),
            None => Err(Error::Config {
                message: "the local server is not running".to_owned(),
                key: None,
            }
            .into()),
        }
    }

    #[getter]
    fn sink(&self) -> bool {
        self.sink
    }

    /// Counters: requests, traces_stored, idempotent_replays, sink_accepted,
    /// bytes_received, injected_5xx, injected_429, injected_drop,
    /// client_errors, not_found, server_errors.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        for (k, v) in self.state.stats.snapshot() {
            d.set_item(k, v)?;
        }
        Ok(d)
    }

    /// The posted trace bodies (dicts, exactly as sent), oldest first; of one
    /// agent when `agent_id` is given.
    #[pyo3(signature = (agent_id=None))]
    fn traces<'py>(&self, py: Python<'py>, agent_id: Option<&str>) -> PyResult<Bound<'py, PyList>> {
        let list = PyList::empty(py);
        for r in self.load(py, agent_id)? {
            list.append(parse_body(py, &r.body)?)?;
        }
        Ok(list)
    }

    /// Stored records, oldest first: dicts with `traceId, agentId, receivedAt,
    /// idempotencyKey, trace` (the shape of `GET /agents/{id}/traces/{trace_id}`).
    #[pyo3(signature = (agent_id=None))]
    fn records<'py>(&self, py: Python<'py>, agent_id: Option<&str>) -> PyResult<Bound<'py, PyList>> {
        let list = PyList::empty(py);
        for r in self.load(py, agent_id)? {
            let d = PyDict::new(py);
            d.set_item("traceId", &r.trace_id)?;
            d.set_item("agentId", &r.agent_id)?;
            d.set_item("receivedAt", &r.received_at)?;
            d.set_item("idempotencyKey", r.idempotency_key.as_deref())?;
            d.set_item("trace", parse_body(py, &r.body)?)?;
            list.append(d)?;
        }
        Ok(list)
    }

    /// Forget every stored trace (and idempotency key).
    fn clear(&self, py: Python<'_>) -> PyResult<()> {
        if let Some(store) = self.state.store.clone() {
            py.detach(move || store.clear())?;
        }
        Ok(())
    }

    /// Add (or replace) an agent's credentials; takes effect immediately.
    fn add_agent(&self, agent_id: &str, key: &str) -> PyResult<()> {
        let parsed = config::parse_agents(&Value::Array(vec![serde_json::json!({
            "id": agent_id, "key": key
        })]))?;
        let mut reg = self.state.registry.write();
        for (id, key) in parsed {
            reg.agents.insert(id, key);
        }
        Ok(())
    }

    /// Add a prompt (same shape as one entry of `prompts`); versions of an
    /// existing prompt id are merged (a repeated version number is replaced).
    fn add_prompt(&self, py: Python<'_>, prompt: &Bound<'_, PyAny>) -> PyResult<()> {
        let p = config::parse_prompt(&to_json(py, Some(prompt))?, &now_rfc3339())?;
        let mut reg = self.state.registry.write();
        match reg.prompts.get_mut(&p.id) {
            Some(existing) => {
                existing.key = p.key;
                if !p.name.is_empty() {
                    existing.name = p.name;
                }
                for v in p.versions {
                    existing.upsert(v);
                }
            }
            None => {
                reg.prompts.insert(p.id.clone(), p);
            }
        }
        Ok(())
    }

    fn __repr__(&self) -> String {
        match self.running.lock().as_ref() {
            Some(r) => format!("<LocalServer http://{}/api/v1 running>", r.addr),
            None => format!("<LocalServer {}:{} stopped>", self.host, self.port),
        }
    }
}

impl Drop for LocalServer {
    fn drop(&mut self) {
        if let Some(r) = self.running.get_mut().as_ref() {
            r.signal();
        }
    }
}
