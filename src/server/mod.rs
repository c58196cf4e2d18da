//! The local Infinium API: a small HTTP/1.1 server (hyper) on the SDK's one
//! tokio runtime, speaking the platform protocol of SPEC §1 for offline
//! development, users' tests, the demo and the benchmark sink.
//!
//! `config` parses agents/prompts/faults, `store` keeps traces (memory or
//! SQLite), `faults` decides injected failures, `routes` answers requests and
//! `py` is the `_core.LocalServer` pyclass.

pub mod config;
pub mod faults;
pub mod py;
pub mod routes;
pub mod store;

use std::collections::HashMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use parking_lot::RwLock;
use pyo3::prelude::*;
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

use crate::error::Error;
use config::{Prompt, ServerConfig};
use faults::Faults;
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
    /// 4xx answers other than unknown routes (auth, validation, 413, 405...).
    pub client_errors: AtomicU64,
    /// 404 for an unknown route.
    pub not_found: AtomicU64,
    /// Non-injected 5xx (storage failures).
    pub server_errors: AtomicU64,
}

impl Stats {
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
            ("client_errors", self.client_errors.load(Relaxed)),
            ("not_found", self.not_found.load(Relaxed)),
            ("server_errors", self.server_errors.load(Relaxed)),
        ]
    }
}

/// Agents and prompts; may change while the server runs.
#[derive(Default)]
pub struct Registry {
    /// lower-cased id -> key.
    pub agents: HashMap<String, String>,
    /// lower-cased id -> prompt.
    pub prompts: HashMap<String, Prompt>,
}

/// Shared by every connection.
pub struct State {
    pub registry: RwLock<Registry>,
    /// `None` in sink mode.
    pub store: Option<Arc<Store>>,
    pub faults: Option<Faults>,
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
        let registry = Registry {
            agents: cfg.agents.iter().cloned().collect(),
            prompts: cfg.prompts.iter().map(|p| (p.id.clone(), p.clone())).collect(),
        };
        Ok(State {
            registry: RwLock::new(registry),
            store,
            faults: cfg.faults.is_active().then(|| Faults::new(cfg.faults.clone())),
            sink: cfg.sink,
            stats: Stats::default(),
        })
    }
}

/// A started server.
pub struct Running {
    pub addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

/// Bind `host:port` now (so errors and the chosen port are known at once) and
/// serve on the shared runtime.
pub fn start(host: &str, port: u16, state: Arc<State>) -> Result<Running, Error> {
    let rt = crate::runtime::get()?;
    let addrs: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .map_err(|e| Error::Config {
            message: format!("cannot resolve host {host:?}: {e}"),
            key: Some("host".to_owned()),
        })?
        .collect();
    let mut last_err = None;
    let mut bound = None;
    for a in &addrs {
        match std::net::TcpListener::bind(a) {
            Ok(l) => {
                bound = Some(l);
                break;
            }
            Err(e) => last_err = Some((a, e)),
        }
    }
    let std_listener = match (bound, last_err) {
        (Some(l), _) => l,
        (None, Some((a, e))) => {
            return Err(Error::Network {
                message: format!("cannot listen on {a}: {e}"),
            })
        }
        (None, None) => {
            return Err(Error::Config {
                message: format!("host {host:?} resolves to no address"),
                key: Some("host".to_owned()),
            })
        }
    };
    let io_err = |e: std::io::Error| Error::Network {
        message: format!("cannot listen: {e}"),
    };
    std_listener.set_nonblocking(true).map_err(io_err)?;
    let addr = std_listener.local_addr().map_err(io_err)?;
    let listener = {
        let _guard = rt.enter();
        tokio::net::TcpListener::from_std(std_listener).map_err(io_err)?
    };
    let (tx, rx) = watch::channel(false);
    let task = rt.spawn(accept_loop(listener, state, rx));
    Ok(Running {
        addr,
        shutdown: tx,
        task: Some(task),
    })
}

async fn accept_loop(listener: tokio::net::TcpListener, state: Arc<State>, mut rx: watch::Receiver<bool>) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            res = listener.accept() => match res {
                Ok((stream, _)) => {
                    let _ = stream.set_nodelay(true);
                    conns.spawn(serve_conn(stream, state.clone(), rx.clone()));
                }
                // E.g. out of file descriptors: back off instead of spinning.
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            _ = rx.changed() => break,
        }
    }
    drop(listener);
    // Graceful: connections finish their in-flight request, idle ones close.
    let drained = tokio::time::timeout(Duration::from_secs(5), async {
        while conns.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        conns.abort_all();
    }
}

async fn serve_conn(stream: tokio::net::TcpStream, state: Arc<State>, mut rx: watch::Receiver<bool>) {
    let svc = service_fn(move |req| routes::handle(state.clone(), req));
    let conn = http1::Builder::new()
        .keep_alive(true)
        .serve_connection(TokioIo::new(stream), svc);
    tokio::pin!(conn);
    if *rx.borrow() {
        conn.as_mut().graceful_shutdown();
    }
    tokio::select! {
        _ = conn.as_mut() => return,
        _ = rx.changed() => {}
    }
    conn.as_mut().graceful_shutdown();
    let _ = conn.await;
}

impl Running {
    /// Ask the server to stop (non-blocking).
    pub fn signal(&self) {
        let _ = self.shutdown.send(true);
    }

    /// Stop and wait (up to `timeout`) for open connections to finish.
    pub fn stop(&mut self, timeout: Duration) -> Result<(), Error> {
        self.signal();
        if let Some(task) = self.task.take() {
            // Wait through a channel rather than `block_on`, so that stop() is
            // safe from any thread, including one of the runtime's own.
            let rt = crate::runtime::get()?;
            let abort = task.abort_handle();
            let (tx, rx) = std::sync::mpsc::channel();
            rt.spawn(async move {
                let _ = task.await;
                let _ = tx.send(());
            });
            if rx.recv_timeout(timeout).is_err() {
                abort.abort();
            }
        }
        Ok(())
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.signal();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    fn raw(addr: SocketAddr, req: &str) -> String {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(req.as_bytes()).unwrap();
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out
    }

    #[test]
    fn serves_and_stops() {
        let cfg = ServerConfig {
            agents: vec![("a1".to_owned(), "secret-key".to_owned())],
            ..ServerConfig::default()
        };
        let state = Arc::new(State::new(&cfg).unwrap());
        let mut r = start("127.0.0.1", 0, state.clone()).unwrap();
        let body = r#"{"name":"n","description":"d","current_datetime":"t","duration":1}"#;
        let resp = raw(
            r.addr,
            &format!(
                "POST /api/v1/agents/a1/trace HTTP/1.1\r\nHost: x\r\nx-agent-id: a1\r\n\
                 x-agent-key: secret-key\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            ),
        );
        assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
        assert!(resp.contains("traceId"));
        let resp = raw(
            r.addr,
            "GET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        );
        assert!(resp.starts_with("HTTP/1.1 404"), "{resp}");
        let resp = raw(r.addr, "garbage\r\n\r\n");
        assert!(resp.is_empty() || resp.starts_with("HTTP/1.1 400"), "{resp}");
        assert_eq!(state.store.as_ref().unwrap().count().unwrap(), 1);
        r.stop(Duration::from_secs(2)).unwrap();
        assert!(std::net::TcpStream::connect(r.addr).is_err());
    }

    #[test]
    fn port_in_use_is_an_error() {
        let state = Arc::new(State::new(&ServerConfig::default()).unwrap());
        let r = start("127.0.0.1", 0, state.clone()).unwrap();
        let e = start("127.0.0.1", r.addr.port(), state).err().unwrap();
        assert!(matches!(e, Error::Network { .. }), "{e:?}");
    }
}
