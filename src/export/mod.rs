//! Background export: `send_task*` enqueue serialised traces and return at
//! once; workers on the process runtime deliver them.
//!
//! * `queue`: the bounded in-memory queue and the counters of `stats()`.
//! * `worker`: the dispatcher (the client's concurrency, limiter, retries,
//!   a queue-wide pause on 429 and while the server is down) and the
//!   replayer (spool backlog back into the queue, claims, checks).
//! * `spool`: append-only checksummed segment files, a locked directory per
//!   exporter, a folder per target (agent and base URL).
//! * `backlog`: what the exporter does with its spool (durable appends,
//!   overflow, retries used up, claims, replay, a deleted directory).
//!
//! The spool is on by default (a per-user cache directory) but written only
//! when a trace cannot stay in memory: the queue overflows, its retries are
//! used up, or the exporter closes (exit) before it was delivered; with
//! `durable=True` every trace is appended before the call returns.
//!
//! Fork safety: everything bound to the runtime lives in an [`Inner`] tagged
//! with the runtime generation. In a forked child the first use finds a new
//! generation and builds a fresh `Inner` (empty queue, own spool directory,
//! new tasks); the parent's is leaked untouched, so no lock a parent thread
//! held at fork time is ever taken in the child (and the child's copies of
//! the parent's spool lock descriptors are closed at the fork: see
//! `spool::lock`).
//!
//! Nothing here calls into Python from the background: warnings are kept
//! and handed to Python when it next calls in (`take_warnings`).

mod backlog;
pub mod queue;
pub mod spool;
pub mod worker;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use parking_lot::Mutex;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;

use crate::bridge;
use crate::client::CoreClient;
use crate::error::Error;
use crate::runtime;
use crate::transport::Transport;
use queue::{Counters, Item, State};
use spool::Spool;
use worker::Done;

/// Pending warnings kept for Python at most.
const MAX_WARNINGS: usize = 100;
/// At most one "trace(s) dropped" warning per this many seconds.
const DROP_WARN_EVERY: Duration = Duration::from_secs(10);

#[derive(Clone)]
struct SpoolConfig {
    root: PathBuf,
    /// The per-user default: created only when needed, and a failure to
    /// use it is a warning (an explicit `spool_dir` must be usable).
    default: bool,
    max_bytes: u64,
}

#[derive(Clone)]
struct ExportConfig {
    transport: Arc<Transport>,
    path: String,
    agent: String,
    capacity: usize,
    concurrency: usize,
    spool: Option<SpoolConfig>,
    durable: bool,
}

/// The exporter of one runtime generation.
pub struct Inner {
    transport: Arc<Transport>,
    path: String,
    capacity: usize,
    concurrency: usize,
    durable: bool,
    state: Mutex<State>,
    /// Work was queued.
    work: Notify,
    /// Something finished (for `flush`).
    progress: Notify,
    /// Something went to the spool (for the replayer).
    spooled: Notify,
    stop: watch::Sender<bool>,
    pause_until: Mutex<Option<Instant>>,
    consecutive_failures: AtomicU32,
    counters: Counters,
    /// Lock order: `spool` before `state` (never `spool` while holding
    /// `state`).
    spool: Option<Mutex<Spool>>,
    warnings: Mutex<Vec<String>>,
    has_warnings: AtomicBool,
    last_drop_warning: Mutex<Option<Instant>>,
    dropped_unreported: AtomicU64,
    /// Why the last trace was dropped (for the rate-limited warning).
    drop_reason: Mutex<String>,
    /// `dropped` when the last flush ended: a flush during which traces
    /// were dropped answers false.
    flush_dropped: AtomicU64,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    /// Held while closing: a second close waits for the first to finish.
    shutting: tokio::sync::Mutex<()>,
}

impl Inner {
    fn start(cfg: &ExportConfig) -> Result<Arc<Inner>, Error> {
        let rt = runtime::get()?;
        let spool = match &cfg.spool {
            None => None,
            Some(sc) => Some(Mutex::new(backlog::open_spool(cfg, sc)?)),
        };
        let (stop, stop_rx) = watch::channel(false);
        let inner = Arc::new(Inner {
            transport: cfg.transport.clone(),
            path: cfg.path.clone(),
            capacity: cfg.capacity.max(1),
            concurrency: cfg.concurrency.max(1),
            durable: cfg.durable && spool.is_some(),
            state: Mutex::new(State::default()),
            work: Notify::new(),
            progress: Notify::new(),
            spooled: Notify::new(),
            stop,
            pause_until: Mutex::new(None),
            consecutive_failures: AtomicU32::new(0),
            counters: Counters::default(),
            spool,
            warnings: Mutex::new(Vec::new()),
            has_warnings: AtomicBool::new(false),
            last_drop_warning: Mutex::new(None),
            dropped_unreported: AtomicU64::new(0),
            drop_reason: Mutex::new(String::new()),
            flush_dropped: AtomicU64::new(0),
            tasks: Mutex::new(Vec::new()),
            shutting: tokio::sync::Mutex::new(()),
        });
        // The backlog of exporters that are gone is ours from the start:
        // counted in `stats()`, waited for by `flush()`.
        inner.claim();
        let mut tasks = vec![rt.spawn(caught(
            inner.clone(),
            "dispatcher",
            worker::dispatcher(inner.clone(), stop_rx.clone()),
        ))];
        if inner.spool.is_some() {
            tasks.push(rt.spawn(caught(
                inner.clone(),
                "replayer",
                worker::replayer(inner.clone(), stop_rx),
            )));
        }
        *inner.tasks.lock() = tasks;
        Ok(inner)
    }

    fn warn(&self, message: String) {
        let mut w = self.warnings.lock();
        if w.len() < MAX_WARNINGS {
            w.push(message);
        }
        self.has_warnings.store(true, Ordering::Release);
    }

    /// Count `n` traces dropped (their seqs already finished) because of
    /// `why`; warn at most every `DROP_WARN_EVERY`.
    fn note_dropped(&self, n: u64, why: String) {
        Counters::add(&self.counters.dropped, n);
        self.dropped_unreported.fetch_add(n, Ordering::Relaxed);
        *self.drop_reason.lock() = why;
        let mut last = self.last_drop_warning.lock();
        if last.is_none_or(|t| t.elapsed() >= DROP_WARN_EVERY) {
            *last = Some(Instant::now());
            drop(last);
            self.report_dropped();
        }
    }

    /// Warn about the traces dropped since the last such warning.
    fn report_dropped(&self) {
        let n = self.dropped_unreported.swap(0, Ordering::Relaxed);
        if n > 0 {
            let why = self.drop_reason.lock().clone();
            self.warn(format!(
                "background export: dropped {n} trace(s) ({} in all): {why}",
                Counters::get(&self.counters.dropped)
            ));
        }
    }

    /// Put a serialised trace in the queue; returns its idempotency key.
    fn enqueue(&self, body: Bytes) -> Result<String, Error> {
        let key = crate::transport::new_idempotency_key();
        if self.durable {
            return self.enqueue_durable(key, body);
        }
        let mut st = self.state.lock();
        if st.closed {
            return Err(closed());
        }
        if st.queue.len() >= self.capacity {
            if self.spool.is_some() {
                // Overflow goes to disk; the replayer brings it back.
                let seq = st.reserve(1);
                drop(st);
                self.spill(Item::new(seq, key.clone(), body, None));
                return Ok(key);
            }
            let mut n = 0;
            while st.queue.len() >= self.capacity {
                match st.queue.pop_front() {
                    Some(old) => {
                        st.outstanding.remove(&old.seq);
                        n += 1;
                    }
                    None => break,
                }
            }
            let item = st.new_item(key.clone(), body, None);
            st.push(item);
            drop(st);
            self.work.notify_one();
            self.progress.notify_waiters();
            self.note_dropped(
                n,
                format!(
                    "the queue is full (max_queue_size={}) and the spool is off: the oldest are dropped",
                    self.capacity
                ),
            );
            return Ok(key);
        }
        let item = st.new_item(key.clone(), body, None);
        st.push(item);
        drop(st);
        self.work.notify_one();
        Ok(key)
    }

    /// A send ended.
    fn complete(&self, seq: u64, done: Done) {
        match done {
            Done::Sent | Done::Failed(_) => {
                let item = {
                    // Counted before it stops being outstanding: a flush
                    // that returns sees the counters of what it waited for.
                    let mut st = self.state.lock();
                    let c = &self.counters;
                    if matches!(done, Done::Failed(_)) {
                        Counters::add(&c.failed, 1);
                    } else {
                        Counters::add(&c.sent, 1);
                        if st.in_flight.get(&seq).is_some_and(|i| i.replayed) {
                            Counters::add(&c.replayed, 1);
                        }
                    }
                    st.finish(seq)
                };
                if let Done::Failed(msg) = &done {
                    self.warn(format!("background export: trace rejected by the server: {msg}"));
                }
                // A rejected trace is removed from the spool as well: it
                // would be rejected again.
                if let Some(r) = item.and_then(|i| i.spool) {
                    if let Some(Err(e)) = self.with_spool(|sp| sp.ack(r)) {
                        self.warn(format!("cannot record an acknowledgement in the spool: {e}"));
                    }
                }
            }
            Done::Exhausted if self.spool.is_some() => {
                // Still outstanding: on disk until it is read back.
                let item = self.state.lock().in_flight.remove(&seq);
                if let Some(item) = item {
                    self.spill(item);
                }
            }
            Done::Exhausted => {
                // No spool: keep it, at the back of the queue.
                let mut st = self.state.lock();
                if let Some(mut item) = st.in_flight.remove(&seq) {
                    item.attempts = 0;
                    st.queue.push_back(item);
                }
                drop(st);
                self.work.notify_one();
            }
        }
        self.progress.notify_waiters();
    }

    /// Wait until everything enqueued (or claimed from the spool) before
    /// the call is delivered, rejected or dropped; false if `deadline` came
    /// first, or if traces were dropped since the last flush.
    async fn flush(&self, deadline: Option<Instant>) -> bool {
        let mark = self.state.lock().next_seq;
        let done = loop {
            let notified = self.progress.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let st = self.state.lock();
                // Closed: what is not delivered is in the spool; nothing
                // more will be delivered by this exporter.
                if st.flushed(mark) || st.closed {
                    break st.flushed(mark);
                }
            }
            match deadline {
                Some(d) => {
                    if tokio::time::timeout_at(d.into(), notified).await.is_err() {
                        break self.state.lock().flushed(mark);
                    }
                }
                None => notified.await,
            }
        };
        let dropped = Counters::get(&self.counters.dropped);
        let before = self.flush_dropped.swap(dropped, Ordering::AcqRel);
        if dropped > before {
            self.report_dropped();
            self.warn(format!(
                "flush: {} trace(s) were dropped since the previous flush (stats()['dropped'])",
                dropped - before
            ));
            return false;
        }
        done
    }

    /// Stop the workers, then spool (or count as dropped) what is left in
    /// memory and release the spool. Idempotent.
    async fn shut(&self) {
        let _closing = self.shutting.lock().await;
        self.state.lock().closed = true;
        let _ = self.stop.send(true);
        let tasks = std::mem::take(&mut *self.tasks.lock());
        for t in tasks {
            let _ = tokio::time::timeout(Duration::from_secs(1), t).await;
        }
        let items: Vec<Item> = {
            let mut st = self.state.lock();
            let mut v: Vec<Item> = st.queue.drain(..).collect();
            v.extend(st.in_flight.drain().map(|(_, i)| i));
            v
        };
        self.leave(items);
        self.progress.notify_waiters();
    }
}

fn closed() -> Error {
    Error::Unexpected("the background exporter of this client is closed".into())
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(if s.is_finite() { s.clamp(0.0, 1e9) } else { 1e9 })
}

/// Run a background task; a panic ends it with a warning instead of
/// unwinding through a runtime thread.
async fn caught(inner: Arc<Inner>, what: &'static str, fut: impl std::future::Future<Output = ()>) {
    use futures_util::FutureExt;
    if let Err(p) = std::panic::AssertUnwindSafe(fut).catch_unwind().await {
        inner.warn(format!(
            "background export {what} stopped: {}",
            crate::error::from_panic(p)
        ));
    }
}

/// Closing whatever happens to the future that closes: if it is dropped
/// before the end (an asyncio cancel), the rest of the close runs as a task.
struct ShutOnDrop(Option<Arc<Inner>>);

impl Drop for ShutOnDrop {
    fn drop(&mut self) {
        if let (Some(inner), Ok(rt)) = (self.0.take(), runtime::get()) {
            rt.spawn(async move { inner.shut().await });
        }
    }
}

/// Flush until `deadline`, then stop and spool the rest; true if
/// everything was delivered.
async fn close_inner(inner: Arc<Inner>, deadline: Instant) -> bool {
    let mut guard = ShutOnDrop(Some(inner.clone()));
    let flushed = inner.flush(Some(deadline)).await;
    inner.shut().await;
    guard.0 = None;
    flushed
}

/// `infinium._core.Exporter`: the background queue of one client.
#[pyclass(module = "infinium._core", frozen)]
pub struct Exporter {
    cfg: ExportConfig,
    current: Mutex<Option<(u64, Arc<Inner>)>>,
}

impl Exporter {
    /// The exporter of this process if it has been started (a forked child
    /// that never used the client has none: nothing to flush or close).
    fn started(&self) -> Option<Arc<Inner>> {
        let cur = self.current.lock();
        match cur.as_ref() {
            Some((g, inner)) if *g == runtime::generation() => Some(inner.clone()),
            _ => None,
        }
    }

    /// The exporter of this process, built fresh after a fork.
    fn inner(&self) -> Result<Arc<Inner>, Error> {
        let gen = runtime::generation();
        let mut cur = self.current.lock();
        if let Some((g, inner)) = cur.as_ref() {
            if *g == gen {
                return Ok(inner.clone());
            }
        }
        if let Some((_, old)) = cur.take() {
            // A forked child: the parent's state may be mid-update under a
            // lock no thread here will release. Never touch it again.
            std::mem::forget(old);
        }
        let inner = Inner::start(&self.cfg)?;
        *cur = Some((gen, inner.clone()));
        Ok(inner)
    }
}

fn take_warnings(inner: &Inner) -> Option<Vec<String>> {
    if !inner.has_warnings.swap(false, Ordering::AcqRel) {
        return None;
    }
    Some(std::mem::take(&mut *inner.warnings.lock()))
}

fn stats_dict<'py>(py: Python<'py>, inner: &Inner) -> PyResult<Bound<'py, PyDict>> {
    let (queued, in_flight) = {
        let st = inner.state.lock();
        (st.queue.len(), st.in_flight.len())
    };
    let c = &inner.counters;
    let d = PyDict::new(py);
    d.set_item("queued", queued)?;
    d.set_item("in_flight", in_flight)?;
    d.set_item("sent", Counters::get(&c.sent))?;
    d.set_item("failed", Counters::get(&c.failed))?;
    d.set_item("retried", Counters::get(&c.retried))?;
    d.set_item("spooled", Counters::get(&c.spooled))?;
    d.set_item("replayed", Counters::get(&c.replayed))?;
    d.set_item("dropped", Counters::get(&c.dropped))?;
    d.set_item("claimed", Counters::get(&c.claimed))?;
    d.set_item("unreadable", Counters::get(&c.unreadable))?;
    let backlog = inner.spool.as_ref().map_or(0, |s| s.lock().backlog());
    d.set_item("spool_backlog", backlog)?;
    Ok(d)
}

fn py_bool(py: Python<'_>, v: bool) -> PyResult<Py<PyAny>> {
    Ok(pyo3::types::PyBool::new(py, v).to_owned().into_any().unbind())
}

#[pymethods]
impl Exporter {
    #[new]
    #[pyo3(signature = (
        core, path, agent, *, max_queue_size=10_000, concurrency=8, spool_dir=None,
        spool_default=false, durable=false, max_spool_bytes=1 << 30
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        core: &CoreClient,
        path: String,
        agent: String,
        max_queue_size: usize,
        concurrency: usize,
        spool_dir: Option<PathBuf>,
        spool_default: bool,
        durable: bool,
        max_spool_bytes: u64,
    ) -> PyResult<Self> {
        if max_queue_size == 0 {
            return Err(Error::Config {
                message: "max_queue_size must be at least 1".into(),
                key: Some("max_queue_size".into()),
            }
            .into());
        }
        let cfg = ExportConfig {
            transport: core.transport.clone(),
            path,
            agent,
            capacity: max_queue_size,
            concurrency,
            spool: spool_dir.map(|root| SpoolConfig {
                root,
                default: spool_default,
                max_bytes: max_spool_bytes,
            }),
            durable,
        };
        let ex = Exporter {
            cfg,
            current: Mutex::new(None),
        };
        // Start now (the GIL released: it may read a spool backlog): a
        // backlog is claimed at once and starts replaying.
        py.detach(|| crate::guard(|| ex.inner()))?;
        Ok(ex)
    }

    /// Validate and serialise `task` (raising as `dumps` does), queue the
    /// bytes; returns `(idempotency_key, warnings or None)`. The one call a
    /// background `send_task_data` makes.
    fn submit(&self, task: &Bound<'_, PyAny>) -> PyResult<(String, Option<Vec<String>>)> {
        crate::guard(|| {
            let body = Bytes::from(crate::payload::serialize(task)?);
            let inner = self.inner()?;
            let key = inner.enqueue(body)?;
            Ok((key, take_warnings(&inner)))
        })
    }

    /// Warnings gathered in the background since the last call (None if
    /// there are none), for the Python side to log.
    fn take_warnings(&self) -> PyResult<Option<Vec<String>>> {
        let inner = crate::guard(|| self.inner())?;
        Ok(take_warnings(&inner))
    }

    /// Block (GIL released) until everything queued so far (and any backlog
    /// claimed from the spool) is delivered or rejected; False when
    /// `timeout` seconds passed first or traces were dropped since the last
    /// flush.
    #[pyo3(signature = (timeout=None))]
    fn flush(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<bool> {
        let inner = crate::guard(|| self.inner())?;
        let deadline = timeout.map(|t| Instant::now() + secs(t));
        Ok(bridge::wait(py, async move { Ok(inner.flush(deadline).await) })?)
    }

    #[pyo3(signature = (timeout=None))]
    fn flush_async<'py>(&self, py: Python<'py>, timeout: Option<f64>) -> PyResult<Bound<'py, PyAny>> {
        let inner = crate::guard(|| self.inner())?;
        let deadline = timeout.map(|t| Instant::now() + secs(t));
        bridge::awaitable(py, async move { Ok(inner.flush(deadline).await) }, py_bool)
    }

    /// Flush for at most `timeout` seconds, then stop the workers and spool
    /// what is left (or count it as dropped). True if everything was
    /// delivered. Interrupted (Ctrl-C), it stops waiting but still spools
    /// before the exception propagates.
    fn close(&self, py: Python<'_>, timeout: f64) -> PyResult<bool> {
        let Some(inner) = self.started() else {
            return Ok(true);
        };
        let deadline = Instant::now() + secs(timeout);
        let waiting = inner.clone();
        let flushed = bridge::wait(py, async move { Ok(waiting.flush(Some(deadline)).await) });
        py.detach(|| {
            if let Ok(rt) = runtime::get() {
                rt.block_on(inner.shut());
            }
        });
        Ok(flushed?)
    }

    fn close_async<'py>(&self, py: Python<'py>, timeout: f64) -> PyResult<Bound<'py, PyAny>> {
        let Some(inner) = self.started() else {
            return bridge::awaitable(py, async { Ok(true) }, py_bool);
        };
        let deadline = Instant::now() + secs(timeout);
        bridge::awaitable(py, async move { Ok(close_inner(inner, deadline).await) }, py_bool)
    }

    /// Counters: queued, in_flight, sent, failed, retried, spooled, replayed,
    /// dropped, claimed, unreadable, spool_backlog (records on disk not yet
    /// acknowledged).
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let inner = crate::guard(|| self.inner())?;
        stats_dict(py, &inner)
    }

    /// This exporter's own spool directory, once it exists.
    #[getter]
    fn spool_path(&self) -> PyResult<Option<PathBuf>> {
        let inner = crate::guard(|| self.inner())?;
        Ok(inner
            .spool
            .as_ref()
            .and_then(|s| s.lock().own_dir().map(|p| p.to_owned())))
    }

    /// The spool folder of this exporter's target (agent and base URL).
    #[getter]
    fn spool_target(&self) -> PyResult<Option<PathBuf>> {
        let inner = crate::guard(|| self.inner())?;
        Ok(inner.spool.as_ref().map(|s| s.lock().target_dir().to_owned()))
    }

    /// The target folders under a spool root (or the root itself if it is
    /// one): `(folder, agent_id, base_url without credentials, whether it
    /// had credentials, directories with a backlog)`.
    #[staticmethod]
    fn spool_targets(root: PathBuf) -> Vec<(PathBuf, String, String, bool, usize)> {
        spool::layout::targets(&root)
            .into_iter()
            .map(|(p, t, n)| (p, t.agent_id, t.base_url, t.had_credentials, n))
            .collect()
    }

    /// The spool folder of `agent`'s traces to `base_url` under `root`.
    #[staticmethod]
    fn spool_target_dir(root: PathBuf, agent: &str, base_url: &str) -> PathBuf {
        root.join(spool::layout::target_name(agent, base_url))
    }

    /// Move the backlog of the target folder `src` to `agent`'s target at
    /// `base_url` under `root`; how many exporter directories moved.
    #[staticmethod]
    fn retarget(src: PathBuf, root: PathBuf, agent: &str, base_url: &str) -> PyResult<u64> {
        crate::guard(|| {
            spool::retarget(&src, &root, agent, base_url).map_err(|e| Error::Config {
                message: format!("cannot move the spool backlog of {}: {e}", src.display()),
                key: Some("spool_dir".into()),
            })
        })
    }
}
