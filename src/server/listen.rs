//! Accepting connections within limits: at most `max_connections` open (and
//! never more than three quarters of the process's descriptor limit), each
//! given `header_timeout` to send a request's headers (also the keep-alive
//! idle time). At the limit, the oldest connection that is not in the middle
//! of a request (idle, or still sending its headers) is closed to make room;
//! when every connection is mid-request, new ones wait in the listen backlog
//! until one ends (each body read is bounded by `body_timeout`).

use std::collections::HashMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::sync::{watch, Notify};
use tokio::task::{Id, JoinError, JoinHandle, JoinSet};

use super::{routes, State};
use crate::error::Error;

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

/// `wanted`, bounded by three quarters of the soft descriptor limit (the
/// rest is left for the process's own files and outgoing connections).
fn connection_limit(wanted: usize) -> usize {
    let mut rl = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct it is given.
    let ok = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) } == 0;
    if !ok || rl.rlim_cur == libc::RLIM_INFINITY {
        return wanted;
    }
    let budget = usize::try_from(rl.rlim_cur / 4 * 3).unwrap_or(usize::MAX);
    wanted.min(budget.max(4))
}

/// One open connection, as the accept loop sees it.
struct Conn {
    /// Accept order (the oldest is closed first).
    seq: u64,
    /// A request is being handled.
    busy: Arc<AtomicBool>,
    close: Arc<Notify>,
    /// Asked to close; no longer counted.
    closing: bool,
}

/// Marks its connection busy while alive.
struct Busy(Arc<AtomicBool>);

impl Busy {
    fn new(flag: &Arc<AtomicBool>) -> Self {
        flag.store(true, Relaxed);
        Busy(flag.clone())
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.store(false, Relaxed);
    }
}

/// Ask the oldest connection that is not mid-request to close; whether one was.
fn evict_one(conns: &mut HashMap<Id, Conn>) -> bool {
    let victim = conns
        .values_mut()
        .filter(|c| !c.closing && !c.busy.load(Relaxed))
        .min_by_key(|c| c.seq);
    match victim {
        Some(c) => {
            c.closing = true;
            c.close.notify_one();
            true
        }
        None => false,
    }
}

/// Take an ended connection off the books.
fn forget(done: Option<Result<(Id, ()), JoinError>>, conns: &mut HashMap<Id, Conn>, open: &mut usize) {
    let id = match done {
        Some(Ok((id, ()))) => id,
        Some(Err(e)) => e.id(),
        None => return,
    };
    if let Some(c) = conns.remove(&id) {
        if !c.closing {
            *open -= 1;
        }
    }
}

async fn accept_loop(listener: tokio::net::TcpListener, state: Arc<State>, mut rx: watch::Receiver<bool>) {
    let limit = connection_limit(state.limits.max_connections);
    let mut tasks: JoinSet<()> = JoinSet::new();
    let mut conns: HashMap<Id, Conn> = HashMap::new();
    let mut open = 0usize; // connections not asked to close
    let mut seq = 0u64;
    loop {
        if open >= limit {
            if evict_one(&mut conns) {
                open -= 1;
                state.stats.connections_evicted.fetch_add(1, Relaxed);
            } else {
                // Every connection is mid-request: wait for one to end.
                tokio::select! {
                    done = tasks.join_next_with_id() => forget(done, &mut conns, &mut open),
                    _ = rx.changed() => break,
                }
                continue;
            }
        }
        tokio::select! {
            res = listener.accept() => match res {
                Ok((stream, _)) => {
                    let _ = stream.set_nodelay(true);
                    let busy = Arc::new(AtomicBool::new(false));
                    let close = Arc::new(Notify::new());
                    let handle = tasks.spawn(serve_conn(
                        stream,
                        state.clone(),
                        rx.clone(),
                        busy.clone(),
                        close.clone(),
                    ));
                    seq += 1;
                    conns.insert(handle.id(), Conn { seq, busy, close, closing: false });
                    open += 1;
                }
                // E.g. out of file descriptors: back off instead of spinning.
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            },
            done = tasks.join_next_with_id(), if !tasks.is_empty() => forget(done, &mut conns, &mut open),
            _ = rx.changed() => break,
        }
    }
    drop(listener);
    // Graceful: connections finish their in-flight request, idle ones close.
    let drained = tokio::time::timeout(Duration::from_secs(5), async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tasks.abort_all();
    }
}

async fn serve_conn(
    stream: tokio::net::TcpStream,
    state: Arc<State>,
    mut rx: watch::Receiver<bool>,
    busy: Arc<AtomicBool>,
    close: Arc<Notify>,
) {
    let header_timeout = state.limits.header_timeout;
    let svc = service_fn(move |req| {
        let state = state.clone();
        let guard = Busy::new(&busy);
        async move {
            let resp = routes::handle(state, req).await;
            drop(guard);
            resp
        }
    });
    let conn = http1::Builder::new()
        .keep_alive(true)
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .serve_connection(TokioIo::new(stream), svc);
    tokio::pin!(conn);
    if *rx.borrow() {
        conn.as_mut().graceful_shutdown();
    }
    tokio::select! {
        _ = conn.as_mut() => return,
        // Closed to make room: drop the connection now.
        _ = close.notified() => return,
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
    use super::super::config::ServerConfig;
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

    #[test]
    fn the_oldest_idle_connection_makes_room() {
        let mut conns = HashMap::new();
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let mut set = JoinSet::new();
        let mut flags = Vec::new();
        for seq in 1..=3u64 {
            let id = rt.block_on(async { set.spawn(async {}).id() });
            let busy = Arc::new(AtomicBool::new(seq == 1));
            flags.push(busy.clone());
            conns.insert(
                id,
                Conn {
                    seq,
                    busy,
                    close: Arc::new(Notify::new()),
                    closing: false,
                },
            );
        }
        assert!(evict_one(&mut conns));
        let closing: Vec<u64> = conns.values().filter(|c| c.closing).map(|c| c.seq).collect();
        assert_eq!(closing, [2]); // 1 is busy
        assert!(evict_one(&mut conns));
        assert!(!evict_one(&mut conns)); // only the busy one is left
        flags[0].store(false, Relaxed);
        assert!(evict_one(&mut conns));
        assert!(connection_limit(10) <= 10);
    }
}
