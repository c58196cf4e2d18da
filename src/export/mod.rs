//! Background export: `send_task*` enqueue serialised traces and return at
//! once; workers on the process runtime deliver them.
//!
//! * `queue`: the bounded in-memory queue (drop-oldest or spill to the spool
//!   when full) and the counters of `stats()`.
//! * `worker`: the dispatcher (the client's concurrency, limiter, retries,
//!   a queue-wide pause on 429 and while the server is down) and the
//!   replayer (spool backlog back into the queue).
//! * `spool`: append-only checksummed segment files, one locked directory
//!   per process.
//!
//! Fork safety: everything bound to the runtime lives in an [`Inner`] tagged
//! with the runtime generation. In a forked child the first use finds a new
//! generation and builds a fresh `Inner` (empty queue, own spool directory,
//! new tasks); the parent's is leaked untouched, so no lock a parent thread
//! held at fork time is ever taken in the child.
//!
//! Nothing here calls into Python from the background: warnings are kept
//! and handed to Python when it next calls in (`take_warnings`).

pub mod queue;
pub mod spool;
pub mod worker;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, AtomicU64, Ordering};
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
use spool::{Spool, SpoolRef};
use worker::Done;

/// Pending warnings kept for Python at most.
const MAX_WARNINGS: usize = 100;
/// At most one "queue full" warning per this many seconds.
const DROP_WARN_EVERY: Duration = Duration::from_secs(10);

#[derive(Clone)]
struct ExportConfig {
    transport: Arc<Transport>,
    path: String,
    agent: String,
    capacity: usize,
    concurrency: usize,
    spool_dir: Option<PathBuf>,
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
    stop: watch::Sender<bool>,
    pause_until: Mutex<Option<Instant>>,
    consecutive_failures: AtomicU32,
    counters: Counters,
    spool: Option<Mutex<Spool>>,
    warnings: Mutex<Vec<String>>,
    has_warnings: AtomicBool,
    last_drop_warning: Mutex<Option<Instant>>,
    dropped_unreported: AtomicU64,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl Inner {
    fn start(cfg: &ExportConfig) -> Result<Arc<Inner>, Error> {
        let rt = runtime::get()?;
        let spool = match &cfg.spool_dir {
            None => None,
            Some(dir) => {
                let per_segment = (cfg.capacity / 2).clamp(1, 1024) as u32;
                let s = Spool::open(dir, &cfg.agent, per_segment).map_err(|e| Error::Config {
                    message: format!("cannot use spool_dir {}: {e}", dir.display()),
                    key: Some("spool_dir".into()),
                })?;
                Some(Mutex::new(s))
            }
        };
        let (stop, stop_rx) = watch::channel(false);
        let inner = Arc::new(Inner {
            transport: cfg.transport.clone(),
            path: cfg.path.clone(),
            capacity: cfg.capacity.max(1),
            concurrency: cfg.concurrency.max(1),
            durable: cfg.durable && cfg.spool_dir.is_some(),
            state: Mutex::new(State::default()),
            work: Notify::new(),
            progress: Notify::new(),
            stop,
            pause_until: Mutex::new(None),
            consecutive_failures: AtomicU32::new(0),
            counters: Counters::default(),
            spool,
            warnings: Mutex::new(Vec::new()),
            has_warnings: AtomicBool::new(false),
            last_drop_warning: Mutex::new(None),
            dropped_unreported: AtomicU64::new(0),
            tasks: Mutex::new(Vec::new()),
        });
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

    /// Move the spool's warnings (torn tails, unreadable files) to ours.
    fn drain_spool_warnings(&self) {
        if let Some(spool) = &self.spool {
            let taken = std::mem::take(&mut spool.lock().warnings);
            for w in taken {
                self.warn(w);
            }
        }
    }

    fn note_dropped(&self, n: u64) {
        Counters::add(&self.counters.dropped, n);
        self.dropped_unreported.fetch_add(n, Ordering::Relaxed);
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
            self.warn(format!(
                "background export queue is full (max_queue_size={}) and no spool_dir is set: \
                 dropped {n} oldest trace(s) ({} in all)",
                self.capacity,
                Counters::get(&self.counters.dropped)
            ));
        }
    }

    /// Put a serialised trace in the queue; returns its idempotency key.
    fn enqueue(&self, body: Bytes) -> Result<String, Error> {
        let key = crate::transport::new_idempotency_key();
        let mut on_disk = None;
        if self.durable {
            if let Some(spool) = &self.spool {
                match spool.lock().append(&key, &body, true) {
                    Ok(r) => on_disk = Some(r),
                    Err(e) => self.warn(format!(
                        "cannot write the spool, keeping the trace in memory only: {e}"
                    )),
                }
            }
        }
        let mut st = self.state.lock();
        if st.closed {
            drop(st);
            if let (Some(r), Some(spool)) = (on_disk, &self.spool) {
                spool.lock().release(r);
            }
            return Err(Error::Unexpected(
                "the background exporter of this client is closed".into(),
            ));
        }
        if st.queue.len() >= self.capacity {
            if let Some(spool) = &self.spool {
                // Overflow goes to disk; the replayer brings it back.
                drop(st);
                self.spill(spool, &key, &body, on_disk);
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
            let item = st.new_item(key.clone(), body, on_disk);
            st.push(item);
            drop(st);
            self.work.notify_one();
            self.progress.notify_waiters();
            self.note_dropped(n);
            return Ok(key);
        }
        let item = st.new_item(key.clone(), body, on_disk);
        st.push(item);
        drop(st);
        self.work.notify_one();
        Ok(key)
    }

    /// A send ended.
    fn complete(&self, seq: u64, done: Done) {
        match done {
            Done::Sent | Done::Failed(_) => {
                let item = self.state.lock().finish(seq);
                if let Done::Failed(msg) = &done {
                    Counters::add(&self.counters.failed, 1);
                    self.warn(format!("background export: trace rejected by the server: {msg}"));
                } else {
                    Counters::add(&self.counters.sent, 1);
                    if item.as_ref().is_some_and(|i| i.replayed) {
                        Counters::add(&self.counters.replayed, 1);
                    }
                }
                // A rejected trace is removed from the spool as well: it
                // would be rejected again.
                if let (Some(r), Some(spool)) = (item.and_then(|i| i.spool), &self.spool) {
                    if let Err(e) = spool.lock().ack(r) {
                        self.warn(format!("cannot record an acknowledgement in the spool: {e}"));
                    }
                }
            }
            Done::Exhausted => match &self.spool {
                Some(spool) => {
                    let item = self.state.lock().finish(seq);
                    if let Some(item) = item {
                        self.hand_to_spool(spool, item);
                    }
                }
                None => {
                    // No spool: keep it, at the back of the queue.
                    let mut st = self.state.lock();
                    if let Some(mut item) = st.in_flight.remove(&seq) {
                        item.attempts = 0;
                        st.queue.push_back(item);
                    }
                    drop(st);
                    self.work.notify_one();
                }
            },
        }
        self.progress.notify_waiters();
    }

    fn hand_to_spool(&self, spool: &Mutex<Spool>, item: Item) {
        self.spill(spool, &item.key, &item.body, item.spool);
    }

    /// Leave a trace to the spool: one already on disk (`on_disk`) is
    /// released for the replayer, any other is appended; counted as spooled,
    /// or as dropped (with a warning) when the spool cannot be written.
    fn spill(&self, spool: &Mutex<Spool>, key: &str, body: &[u8], on_disk: Option<SpoolRef>) {
        let mut sp = spool.lock();
        let r = match on_disk {
            Some(r) => {
                sp.release(r);
                Ok(())
            }
            None => sp.append(key, body, false).map(|_| ()),
        };
        drop(sp);
        match r {
            Ok(()) => Counters::add(&self.counters.spooled, 1),
            Err(e) => {
                self.warn(format!("cannot write the spool, trace dropped: {e}"));
                Counters::add(&self.counters.dropped, 1);
            }
        }
    }

    /// Move some spool backlog into the queue; false when there was none
    /// (or no room).
    fn replay_some(&self) -> bool {
        let Some(spool) = &self.spool else {
            return false;
        };
        let room = {
            let st = self.state.lock();
            if st.closed {
                return false;
            }
            self.capacity.saturating_sub(st.queue.len())
        };
        let batch = spool.lock().next_replay(room.min(1024));
        self.drain_spool_warnings();
        let Some(batch) = batch else {
            return false;
        };
        let mut st = self.state.lock();
        if st.closed {
            drop(st);
            let mut sp = spool.lock();
            for (r, _) in batch {
                sp.release(r);
            }
            return false;
        }
        for (r, rec) in batch {
            let mut item = st.new_item(rec.key, rec.body, Some(r));
            item.replayed = true;
            st.push(item);
        }
        drop(st);
        self.work.notify_one();
        true
    }

    /// Wait until everything enqueued before the call is delivered, failed
    /// or on disk; false if `deadline` came first.
    async fn flush(&self, deadline: Option<Instant>) -> bool {
        let mark = self.state.lock().next_seq;
        loop {
            let notified = self.progress.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.state.lock().flushed(mark) {
                return true;
            }
            match deadline {
                Some(d) => {
                    if tokio::time::timeout_at(d.into(), notified).await.is_err() {
                        return self.state.lock().flushed(mark);
                    }
                }
                None => notified.await,
            }
        }
    }

    /// Flush until `timeout`, stop the workers, spool (or count as dropped)
    /// what is left, release the spool.
    async fn close(self: Arc<Self>, timeout: f64) -> bool {
        let deadline = Instant::now() + secs(timeout);
        let flushed = self.flush(Some(deadline)).await;
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
            st.outstanding.clear();
            v
        };
        match &self.spool {
            Some(spool) => {
                for item in items {
                    self.hand_to_spool(spool, item);
                }
                let mut sp = spool.lock();
                if let Err(e) = sp.sync() {
                    self.warn(format!("cannot sync the spool: {e}"));
                }
                sp.close();
                drop(sp);
                self.drain_spool_warnings();
            }
            None => {
                self.report_dropped();
                if !items.is_empty() {
                    Counters::add(&self.counters.dropped, items.len() as u64);
                    self.warn(format!(
                        "background export closed with {} trace(s) undelivered and no spool_dir: \
                         they are lost",
                        items.len()
                    ));
                }
            }
        }
        self.progress.notify_waiters();
        flushed
    }
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

/// `infinium._core.Exporter`: the background queue of one client.
#[pyclass(module = "infinium._core", frozen)]
pub struct Exporter {
    cfg: ExportConfig,
    current: Mutex<Option<(u64, Arc<Inner>)>>,
    /// This process's spool lock descriptor (closed in a forked child).
    lock_fd: AtomicI32,
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
            let fd = self.lock_fd.swap(-1, Ordering::SeqCst);
            #[cfg(unix)]
            if fd >= 0 {
                // SAFETY: our copy of the parent's lock descriptor; the leaked
                // File owning the number is never dropped in this process.
                unsafe {
                    libc::close(fd);
                }
            }
        }
        let inner = Inner::start(&self.cfg)?;
        #[cfg(unix)]
        if let Some(fd) = inner.spool.as_ref().and_then(|s| s.lock().lock_fd()) {
            self.lock_fd.store(fd, Ordering::SeqCst);
        }
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
    let backlog = inner.spool.as_ref().map_or(0, |s| s.lock().backlog());
    d.set_item("spool_backlog", backlog)?;
    Ok(d)
}

#[pymethods]
impl Exporter {
    #[new]
    #[pyo3(signature = (
        core, path, agent, *, max_queue_size=10_000, concurrency=8, spool_dir=None, durable=false
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        core: &CoreClient,
        path: String,
        agent: String,
        max_queue_size: usize,
        concurrency: usize,
        spool_dir: Option<PathBuf>,
        durable: bool,
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
            spool_dir,
            durable,
        };
        let ex = Exporter {
            cfg,
            current: Mutex::new(None),
            lock_fd: AtomicI32::new(-1),
        };
        // Start now: a spool backlog starts replaying at once.
        crate::guard(|| ex.inner())?;
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

    /// Block (GIL released) until everything queued so far is delivered or
    /// spooled; False when `timeout` seconds passed first.
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
        bridge::awaitable(
            py,
            async move { Ok(inner.flush(deadline).await) },
            |py, v: bool| Ok(pyo3::types::PyBool::new(py, v).to_owned().into_any().unbind()),
        )
    }

    /// Flush for at most `timeout` seconds, then stop the workers and spool
    /// what is left (or count it as dropped). True if everything was
    /// delivered.
    fn close(&self, py: Python<'_>, timeout: f64) -> PyResult<bool> {
        let Some(inner) = self.started() else {
            return Ok(true);
        };
        Ok(bridge::wait(py, async move { Ok(inner.close(timeout).await) })?)
    }

    fn close_async<'py>(&self, py: Python<'py>, timeout: f64) -> PyResult<Bound<'py, PyAny>> {
        let Some(inner) = self.started() else {
            return bridge::awaitable(py, async { Ok(true) }, |py, v: bool| {
                Ok(pyo3::types::PyBool::new(py, v).to_owned().into_any().unbind())
            });
        };
        bridge::awaitable(
            py,
            async move { Ok(inner.close(timeout).await) },
            |py, v: bool| Ok(pyo3::types::PyBool::new(py, v).to_owned().into_any().unbind()),
        )
    }

    /// Counters: queued, in_flight, sent, failed, retried, spooled, replayed,
    /// dropped (and spool_backlog: records on disk not yet acknowledged).
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let inner = crate::guard(|| self.inner())?;
        stats_dict(py, &inner)
    }

    /// This process's spool directory, if any.
    #[getter]
    fn spool_path(&self) -> PyResult<Option<PathBuf>> {
        let inner = crate::guard(|| self.inner())?;
        Ok(inner.spool.as_ref().map(|s| s.lock().own_dir().to_owned()))
    }
}
