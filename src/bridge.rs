//! Running core futures for Python callers.
//!
//! * `wait`: a sync caller blocks with the GIL released, waking every 100 ms
//!   to run Python signal handlers, so Ctrl-C raises KeyboardInterrupt (and
//!   cancels the request) promptly.
//! * `awaitable`: an asyncio caller gets a real `asyncio.Future` of its
//!   running loop, resolved with `call_soon_threadsafe`; cancelling it aborts
//!   the Rust task. The loop is never blocked.
//!
//! Completions never touch Python once interpreter shutdown has begun.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use futures_util::FutureExt;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use tokio::task::AbortHandle;

use crate::error::{from_panic, Error};
use crate::runtime;

static SHUTTING_DOWN: AtomicBool = AtomicBool::new(false);

/// Called from an `atexit` hook: from now on background completions drop
/// their results instead of calling into Python.
pub fn mark_shutdown() {
    SHUTTING_DOWN.store(true, Ordering::SeqCst);
}

pub fn python_alive() -> bool {
    // SAFETY: Py_IsInitialized may be called at any time, without the GIL.
    !SHUTTING_DOWN.load(Ordering::SeqCst) && unsafe { pyo3::ffi::Py_IsInitialized() } != 0
}

/// Run `fut` on the runtime, catching panics.
fn spawn_caught<F, T>(fut: F) -> Result<tokio::task::JoinHandle<Result<T, Error>>, Error>
where
    F: Future<Output = Result<T, Error>> + Send + 'static,
    T: Send + 'static,
{
    let rt = runtime::get()?;
    Ok(rt.spawn(async move {
        match AssertUnwindSafe(fut).catch_unwind().await {
            Ok(r) => r,
            Err(p) => Err(from_panic(p)),
        }
    }))
}

/// Block the calling thread (GIL released) until `fut` completes; answer
/// signals every 100 ms.
///
/// The future is driven on the calling thread itself (`block_on`), so a
/// request costs one cross-thread wake-up (from the I/O driver) instead of a
/// spawn plus a result hand-off. From inside a runtime context (where
/// `block_on` is not allowed) it falls back to spawning and waiting.
pub fn wait<F, T>(py: Python<'_>, fut: F) -> Result<T, Error>
where
    F: Future<Output = Result<T, Error>> + Send + 'static,
    T: Send + 'static,
{
    if tokio::runtime::Handle::try_current().is_ok() {
        return wait_spawned(py, fut);
    }
    let rt = runtime::get()?;
    let mut fut = Box::pin(AssertUnwindSafe(fut).catch_unwind());
    loop {
        let step = py.detach(|| {
            rt.block_on(async {
                tokio::select! {
                    r = &mut fut => Some(r),
                    _ = tokio::time::sleep(Duration::from_millis(100)) => None,
                }
            })
        });
        match step {
            Some(Ok(r)) => return r,
            Some(Err(p)) => return Err(from_panic(p)),
            // Dropping `fut` on the error path cancels the request.
            None => py.check_signals().map_err(Error::Python)?,
        }
    }
}

/// `wait` by spawning onto the runtime and receiving the result: for a
/// future that mostly coordinates other tasks (a batch dispatcher), running
/// it on a worker keeps its wake-ups on that worker instead of crossing to
/// the waiting thread each time.
pub fn wait_spawned<F, T>(py: Python<'_>, fut: F) -> Result<T, Error>
where
    F: Future<Output = Result<T, Error>> + Send + 'static,
    T: Send + 'static,
{
    let (tx, rx) = mpsc::sync_channel::<Result<T, Error>>(1);
    // Receiver is Send but not Sync; the mutex lets the detached closure borrow it.
    let rx = parking_lot::Mutex::new(rx);
    let handle = spawn_caught(async move {
        let r = fut.await;
        let _ = tx.send(r);
        Ok(())
    })?;
    loop {
        let got = py.detach(|| rx.lock().recv_timeout(Duration::from_millis(100)));
        match got {
            Ok(r) => return r,
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                return Err(Error::Unexpected(
                    "the request task ended without an answer".into(),
                ))
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if let Err(e) = py.check_signals() {
                    handle.abort();
                    return Err(Error::Python(e));
                }
            }
        }
    }
}

static RESOLVE: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// Aborts the Rust task when its asyncio future is cancelled.
#[pyclass(module = "infinium._core")]
struct CancelOnDone {
    abort: AbortHandle,
}

#[pymethods]
impl CancelOnDone {
    fn __call__(&self, fut: &Bound<'_, PyAny>) -> PyResult<()> {
        if fut.call_method0("cancelled")?.is_truthy()? {
            self.abort.abort();
        }
        Ok(())
    }
}

/// An `asyncio.Future` on the running loop that completes with
/// `convert(result)`.
pub fn awaitable<'py, F, T, C>(py: Python<'py>, fut: F, convert: C) -> PyResult<Bound<'py, PyAny>>
where
    F: Future<Output = Result<T, Error>> + Send + 'static,
    T: Send + 'static,
    C: FnOnce(Python<'_>, T) -> PyResult<Py<PyAny>> + Send + 'static,
{
    let resolve = RESOLVE
        .get_or_try_init(py, || {
            py.import("infinium._aio")?.getattr("resolve").map(Bound::unbind)
        })?
        .clone_ref(py);
    let event_loop = py.import("asyncio")?.call_method0("get_running_loop")?;
    let py_fut = event_loop.call_method0("create_future")?;
    let loop_ref = event_loop.unbind();
    let fut_ref = py_fut.clone().unbind();
    let handle = spawn_caught(async move {
        let result = fut.await;
        if !python_alive() {
            return Ok(());
        }
        Python::attach(|py| {
            let (exc, value): (Py<PyAny>, Py<PyAny>) =
                match result.map_err(PyErr::from).and_then(|v| convert(py, v)) {
                    Ok(v) => (py.None(), v),
                    Err(e) => (e.into_value(py).into_any(), py.None()),
                };
            // The loop may be closed already: nothing left to tell.
            let _ = loop_ref.bind(py).call_method1(
                "call_soon_threadsafe",
                (resolve.bind(py), fut_ref.bind(py), exc, value),
            );
        });
        Ok(())
    })?;
    py_fut.call_method1(
        "add_done_callback",
        (CancelOnDone {
            abort: handle.abort_handle(),
        },),
    )?;
    Ok(py_fut)
}
