//! `_core.LocalServer`: the local Infinium API as a Python object.
//!
//! The server runs on the shared tokio runtime; every blocking call (start,
//! stop, reading the store) releases the GIL.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyMapping, PyString, PyTuple};
use serde_json::{Map, Number, Value};

use super::config::{self, Source};
use super::listen::{start, Running};
use super::store::{now_rfc3339, Record};
use super::State;
use crate::error::Error;

/// How deep a configuration value may nest (far more than any setting needs;
/// a cycle or a runaway structure stops here instead of exhausting the stack).
const MAX_CONFIG_DEPTH: usize = 32;

/// A Python configuration value (dicts, lists, str, int, float, bool, None)
/// as JSON; anything else is a configuration error naming `path`.
fn to_json(obj: &Bound<'_, PyAny>, path: &str, src: &Source<'_>) -> Result<Value, Error> {
    to_json_at(obj, path, src, 0)
}

fn to_json_at(obj: &Bound<'_, PyAny>, path: &str, src: &Source<'_>, depth: usize) -> Result<Value, Error> {
    let join = |k: &str| {
        if path.is_empty() {
            k.to_owned()
        } else {
            format!("{path}.{k}")
        }
    };
    if obj.is_none() {
        return Ok(Value::Null);
    }
    if let Ok(b) = obj.cast::<PyBool>() {
        return Ok(Value::Bool(b.is_true()));
    }
    if obj.is_instance_of::<PyInt>() {
        if let Ok(i) = obj.extract::<i64>() {
            return Ok(Value::from(i));
        }
        if let Ok(u) = obj.extract::<u64>() {
            return Ok(Value::from(u));
        }
        return Err(src.err(path, "is out of range"));
    }
    if let Ok(f) = obj.cast::<PyFloat>() {
        return Number::from_f64(f.value())
            .map(Value::Number)
            .ok_or_else(|| src.err(path, "must be a finite number"));
    }
    if let Ok(s) = obj.cast::<PyString>() {
        return Ok(Value::String(s.to_str()?.to_owned()));
    }
    let dict = obj.cast::<PyDict>().ok();
    let mapping = if dict.is_some() {
        None
    } else {
        obj.cast::<PyMapping>().ok()
    };
    let items: Option<Vec<Bound<'_, PyAny>>> = if let Ok(l) = obj.cast::<PyList>() {
        Some(l.iter().collect())
    } else if let Ok(t) = obj.cast::<PyTuple>() {
        Some(t.iter().collect())
    } else {
        None
    };
    let here = if path.is_empty() { "configuration" } else { path };
    if (dict.is_some() || mapping.is_some() || items.is_some()) && depth >= MAX_CONFIG_DEPTH {
        return Err(src.err(
            here,
            format!("is nested more than {MAX_CONFIG_DEPTH} levels deep"),
        ));
    }
    // Dicts are read as stored; another mapping through its items(), whose
    // answer is checked.
    let pairs: Option<Vec<(Bound<'_, PyAny>, Bound<'_, PyAny>)>> = match (dict, mapping) {
        (Some(d), _) => Some(d.iter().collect()),
        (None, Some(m)) => {
            let bad = || src.err(here, "is a mapping whose items() are not (key, value) pairs");
            let listed = m.items().map_err(|_| bad())?;
            let mut out = Vec::new();
            for item in listed.iter() {
                out.push(item.extract().map_err(|_| bad())?);
            }
            Some(out)
        }
        (None, None) => None,
    };
    if let Some(pairs) = pairs {
        let mut m = Map::new();
        for (k, v) in pairs {
            let Ok(k) = k.cast::<PyString>() else {
                return Err(src.err(here, "must have string keys"));
            };
            let k = k.to_str()?.to_owned();
            let v = to_json_at(&v, &join(&k), src, depth + 1)?;
            m.insert(k, v);
        }
        return Ok(Value::Object(m));
    }
    if let Some(items) = items {
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            out.push(to_json_at(item, &format!("{path}[{i}]"), src, depth + 1)?);
        }
        return Ok(Value::Array(out));
    }
    let type_name = obj.get_type().name().map(|n| n.to_string()).unwrap_or_default();
    Err(src.err(
        here,
        format!("has a value of type {type_name}, not JSON-like data"),
    ))
}

/// `names` as a map (path -> flag).
fn names_map(names: Option<&Bound<'_, PyAny>>) -> PyResult<HashMap<String, String>> {
    match names {
        None => Ok(HashMap::new()),
        Some(n) if n.is_none() => Ok(HashMap::new()),
        Some(n) => Ok(n.extract()?),
    }
}

/// Parse `{key: value}` alone through the configuration parser.
fn parse_setting(
    py: Python<'_>,
    key: &str,
    value: Bound<'_, PyAny>,
    names: &HashMap<String, String>,
) -> PyResult<config::ServerConfig> {
    let doc = PyDict::new(py);
    doc.set_item(key, value)?;
    let doc = to_json(doc.as_any(), "", &Source::plain(&Value::Null, names))?;
    Ok(config::parse(&[Source::plain(&doc, names)], &now_rfc3339())?)
}

/// Parse `json.loads` of a stored body: integers of any size come back as
/// `int`, floats as `float`, key order kept.
fn parse_body<'py>(loads: &Bound<'py, PyAny>, body: &str) -> PyResult<Bound<'py, PyAny>> {
    loads.call1((body,))
}

/// A local Infinium API server (see `infinium.testing.LocalServer` for the
/// friendly wrapper).
#[pyclass(name = "LocalServer", module = "infinium._core", frozen)]
pub struct LocalServer {
    host: String,
    /// The configured port until the first start, then the bound one (a
    /// restart serves on the same address).
    port: Mutex<u16>,
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

#[pymethods]
impl LocalServer {
    /// `config`: settings named by their paths in errors (after `origin`, a
    /// file name, when given); `overrides`: settings that win over them,
    /// named in errors by `names` (path -> command-line flag).
    #[new]
    #[pyo3(signature = (config=None, overrides=None, names=None, origin=None))]
    fn new(
        py: Python<'_>,
        config: Option<&Bound<'_, PyAny>>,
        overrides: Option<&Bound<'_, PyAny>>,
        names: Option<&Bound<'_, PyAny>>,
        origin: Option<&str>,
    ) -> PyResult<Self> {
        let none = HashMap::new();
        let names = names_map(names)?;
        let naming = [
            Source {
                doc: &Value::Null,
                origin,
                names: &none,
            },
            Source::plain(&Value::Null, &names),
        ];
        let docs = [config, overrides]
            .iter()
            .zip(&naming)
            .map(|(obj, src)| obj.map_or(Ok(Value::Null), |o| to_json(o, "", src)))
            .collect::<Result<Vec<Value>, Error>>()?;
        let sources: Vec<Source<'_>> = docs
            .iter()
            .zip(&naming)
            .map(|(doc, n)| Source {
                doc,
                origin: n.origin,
                names: n.names,
            })
            .collect();
        let cfg = config::parse(&sources, &now_rfc3339())?;
        let state = py.detach(|| State::new(&cfg))?;
        Ok(LocalServer {
            host: cfg.host,
            port: Mutex::new(cfg.port),
            sink: cfg.sink,
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
        let port = *self.port.lock();
        let running = py.detach(|| start(&self.host, port, state))?;
        *self.port.lock() = running.addr.port();
        *guard = Some(running);
        Ok(())
    }

    /// Stop serving; waits up to `timeout` seconds for in-flight requests.
    /// Stored traces stay readable; `start()` serves them again, on the same port.
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

    /// The bound port once started (the chosen one when configured with 0),
    /// else the configured one.
    #[getter]
    fn port(&self) -> u16 {
        *self.port.lock()
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

    /// The accepted agents, `[(agent_id, secret), ...]` in the order added
    /// (ids lower-cased).
    fn agents(&self) -> Vec<(String, String)> {
        self.state.registry.read().agents().to_vec()
    }

    /// The effective settings: `faults` (a dict, or None when no fault is
    /// injected), `max_connections`, `header_timeout`, `body_timeout`.
    fn settings<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let limits = &self.state.limits;
        let faults = self.state.faults.read().as_ref().map(|f| f.cfg.to_json());
        let doc = serde_json::json!({
            "faults": faults,
            "max_connections": limits.max_connections,
            "header_timeout": limits.header_timeout.as_secs_f64(),
            "body_timeout": limits.body_timeout.as_secs_f64(),
        });
        py.import("json")?.call_method1("loads", (doc.to_string(),))
    }

    /// Counters (see `infinium.testing.LocalServer.stats`).
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        for (k, v) in self.state.stats.snapshot() {
            d.set_item(k, v)?;
        }
        Ok(d)
    }

    /// The posted trace bodies (as sent: integers of any size, floats as
    /// floats, key order), oldest first; of one agent when `agent_id` is given.
    #[pyo3(signature = (agent_id=None))]
    fn traces<'py>(&self, py: Python<'py>, agent_id: Option<&str>) -> PyResult<Bound<'py, PyList>> {
        let loads = py.import("json")?.getattr("loads")?;
        let list = PyList::empty(py);
        for r in self.load(py, agent_id)? {
            list.append(parse_body(&loads, &r.body)?)?;
        }
        Ok(list)
    }

    /// Stored records, oldest first: dicts with `traceId, agentId, receivedAt,
    /// idempotencyKey, trace` (the shape of `GET /agents/{id}/traces/{trace_id}`).
    #[pyo3(signature = (agent_id=None))]
    fn records<'py>(&self, py: Python<'py>, agent_id: Option<&str>) -> PyResult<Bound<'py, PyList>> {
        let loads = py.import("json")?.getattr("loads")?;
        let list = PyList::empty(py);
        for r in self.load(py, agent_id)? {
            let d = PyDict::new(py);
            d.set_item("traceId", &r.trace_id)?;
            d.set_item("agentId", &r.agent_id)?;
            d.set_item("receivedAt", &r.received_at)?;
            d.set_item("idempotencyKey", r.idempotency_key.as_deref())?;
            d.set_item("trace", parse_body(&loads, &r.body)?)?;
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
    fn add_agent(&self, py: Python<'_>, agent_id: &Bound<'_, PyAny>, key: &Bound<'_, PyAny>) -> PyResult<()> {
        let entry = PyDict::new(py);
        entry.set_item("id", agent_id)?;
        entry.set_item("key", key)?;
        let names: HashMap<String, String> = [
            ("agents[0].id".to_owned(), "agent_id".to_owned()),
            ("agents[0].key".to_owned(), "agent_secret".to_owned()),
        ]
        .into();
        let cfg = parse_setting(py, "agents", PyList::new(py, [entry])?.into_any(), &names)?;
        let mut reg = self.state.registry.write();
        for (id, key) in cfg.agents {
            reg.set_agent(id, key);
        }
        Ok(())
    }

    /// Add a prompt (same shape as one entry of `prompts`); versions of an
    /// existing prompt id are merged (a repeated version number is replaced).
    fn add_prompt(&self, py: Python<'_>, prompt: &Bound<'_, PyAny>) -> PyResult<()> {
        let list = PyList::new(py, [prompt])?.into_any();
        let cfg = parse_setting(py, "prompts", list, &HashMap::new())?;
        let mut reg = self.state.registry.write();
        for p in cfg.prompts {
            reg.add_prompt(p);
        }
        Ok(())
    }

    /// Replace the fault configuration while running (`None`: no faults).
    #[pyo3(signature = (faults=None))]
    fn set_faults(&self, py: Python<'_>, faults: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
        let value = faults.map_or_else(|| py.None().into_bound(py), |f| f.clone());
        let cfg = parse_setting(py, "faults", value, &HashMap::new())?;
        self.state.set_faults(cfg.faults);
        Ok(())
    }

    fn __repr__(&self) -> String {
        match self.running.lock().as_ref() {
            Some(r) => format!("<LocalServer http://{}/api/v1 running>", r.addr),
            None => format!("<LocalServer {}:{} stopped>", self.host, self.port()),
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
