//! The local Infinium API: a small HTTP/1.1 server (hyper) on the SDK's one
//! tokio runtime, speaking the platform protocol for offline development,
//! users' tests, the demo and the benchmark sink.
//!
//! `config` parses every setting (one parser for `LocalServer` and
//! `infinium serve`), `prompts` holds Prompt Studio prompts, `store` keeps
//! traces (memory or SQLite), `faults` decides injected failures and the
//! capacity gate, `listen` accepts connections within the limits, `auth`
//! checks credentials, `body` reads request bodies, `routes` answers
//! requests, `answer` writes the answers and `py` is the `_core.LocalServer`
//! pyclass.

mod answer;
mod auth;
mod body;
mod config;
mod faults;
mod listen;
mod prompts;
mod py;
mod routes;
mod store;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use parking_lot::RwLock;
use pyo3::prelude::*;

use crate::error::Error;
use config::{FaultConfig, Limits, ServerConfig};
use faults::Faults;
use prompts::Prompt;
use store::Store;

/// Add the server's pyclass(es) to `_core`.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<py::LocalServer>()
}

/// Counters, readable at any time.
#[derive(Default)]
pub struct Stats {
    /// Every HTTP request that reached the router.
    pub requests: AtomicU64,
    /// Trace posts stored (idempotent replays not included).
    pub traces_stored: AtomicU64,
    /// Trace posts answered with an earlier trace id (same `Idempotency-Key`).
    pub idempotent_replays: AtomicU64,
    /// Trace posts accepted in sink mode.
    pub sink_accepted: AtomicU64,
    /// Body bytes of accepted trace posts.
    pub bytes_received: AtomicU64,
    pub injected_5xx: AtomicU64,
    pub injected_429: AtomicU64,
    pub injected_drop: AtomicU64,
    /// Requests handled whose answer was then dropped.
    pub injected_drop_answer: AtomicU64,
    /// Requests answered 429 because `capacity` requests were being served.
    pub capacity_429: AtomicU64,
    /// Requests that waited for a capacity slot.
    pub capacity_queued: AtomicU64,
    /// Platform requests being served now (past the capacity gate).
    pub in_flight: AtomicU64,
    /// The most platform requests ever served at once.
    pub max_in_flight: AtomicU64,
    /// 4xx answers other than unknown routes (auth, validation, 413, 405...).
    pub client_errors: AtomicU64,
    /// 404 for an unknown route.
    pub not_found: AtomicU64,
    /// Non-injected 5xx (storage failures).
    pub server_errors: AtomicU64,
    /// Connections closed to make room for new ones at `max_connections`.
    pub connections_evicted: AtomicU64,
}

/// Counts one request as being served while alive.
pub struct Serving<'a>(&'a Stats);

impl Drop for Serving<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Relaxed);
    }
}

impl Stats {
    /// Count a request as being served until the guard is dropped.
    pub fn serving(&self) -> Serving<'_> {
        let now = self.in_flight.fetch_add(1, Relaxed) + 1;
        self.max_in_flight.fetch_max(now, Relaxed);
        Serving(self)
    }

    pub fn snapshot(&self) -> Vec<(&'static str, u64)> {
        vec![
            ("requests", self.requests.load(Relaxed)),
            ("traces_stored", self.traces_stored.load(Relaxed)),
            ("idempotent_replays", self.idempotent_replays.load(Relaxed)),
            ("sink_accepted", self.sink_accepted.load(Relaxed)),
            ("bytes_received", self.bytes_received.load(Relaxed)),
            ("injected_5xx", self.injected_5xx.load(Relaxed)),
            ("injected_429", self.injected_429.load(Relaxed)),
            ("injected_drop", self.injected_drop.load(Relaxed)),
            ("injected_drop_answer", self.injected_drop_answer.load(Relaxed)),
            ("capacity_429", self.capacity_429.load(Relaxed)),
            ("capacity_queued", self.capacity_queued.load(Relaxed)),
            ("in_flight", self.in_flight.load(Relaxed)),
            ("max_in_flight", self.max_in_flight.load(Relaxed)),
            ("client_errors", self.client_errors.load(Relaxed)),
            ("not_found", self.not_found.load(Relaxed)),
            ("server_errors", self.server_errors.load(Relaxed)),
            ("connections_evicted", self.connections_evicted.load(Relaxed)),
        ]
    }
}

/// Agents and prompts; may change while the server runs.
#[derive(Default)]
pub struct Registry {
    /// (lower-cased id, key) in the order added.
    agents: Vec<(String, String)>,
    /// lower-cased id -> index in `agents`.
    agent_index: HashMap<String, usize>,
    /// lower-cased id -> prompt.
    pub prompts: HashMap<String, Prompt>,
}

impl Registry {
    pub fn agent_key(&self, id: &str) -> Option<&str> {
        self.agent_index.get(id).map(|&i| self.agents[i].1.as_str())
    }

    /// Add an agent, or replace the key of a known one.
    pub fn set_agent(&mut self, id: String, key: String) {
        match self.agent_index.get(&id) {
            Some(&i) => self.agents[i].1 = key,
            None => {
                self.agent_index.insert(id.clone(), self.agents.len());
                self.agents.push((id, key));
            }
        }
    }

    pub fn agents(&self) -> &[(String, String)] {
        &self.agents
    }

    /// Add a prompt, merging the versions of a known id.
    pub fn add_prompt(&mut self, p: Prompt) {
        match self.prompts.get_mut(&p.id) {
            Some(existing) => existing.merge(p),
            None => {
                self.prompts.insert(p.id.clone(), p);
            }
        }
    }
}

/// Shared by every connection.
pub struct State {
    pub registry: RwLock<Registry>,
    /// `None` in sink mode.
    pub store: Option<Arc<Store>>,
    /// Replaceable while running (`LocalServer.set_faults`).
    pub faults: RwLock<Option<Arc<Faults>>>,
    pub limits: Limits,
    pub sink: bool,
    pub stats: Stats,
}

impl State {
    pub fn new(cfg: &ServerConfig) -> Result<Self, Error> {
        let store = if cfg.sink {
            None
        } else {
            Some(Arc::new(match &cfg.db {
                Some(path) => Store::sqlite(path)?,
                None => Store::memory(),
            }))
        };
        let mut registry = Registry::default();
        for (id, key) in &cfg.agents {
            registry.set_agent(id.clone(), key.clone());
        }
        for p in &cfg.prompts {
            registry.add_prompt(p.clone());
        }
        let state = State {
            registry: RwLock::new(registry),
            store,
            faults: RwLock::new(None),
            limits: cfg.limits.clone(),
            sink: cfg.sink,
            stats: Stats::default(),
        };
        state.set_faults(cfg.faults.clone());
        Ok(state)
    }

    /// Replace the fault configuration (requests already past the capacity
    /// gate keep their slots).
    pub fn set_faults(&self, cfg: FaultConfig) {
        *self.faults.write() = cfg.is_active().then(|| Arc::new(Faults::new(cfg)));
    }
}
