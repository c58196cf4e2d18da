//! Running core futures for Python callers.
//!
//! * `wait`: a sync caller blocks with the GIL released, waking every 100 ms
//!   to run Python signal handlers, so Ctrl-C raises KeyboardInterrupt (and
//!   cancels the request) promptly.
//! * `awaitable`: an asyncio caller gets a real `asyncio.Future` of its
//!   running loop, resolved with `call_soon_threadsafe`; cancelling it aborts
//!   the Rust task. The loop is never blocked.
//!
//! Runtime threads enter Python only through [`with_python`], never once
//! interpreter shutdown has begun, and shutdown waits for those inside to
//! leave (see [`mark_shutdown`]).

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use tokio::task::AbortHandle;

use crate::error::{from_panic, Error};
use crate::runtime;

static SHUTTING_DOWN: AtomicBool = AtomicBool::new(false);
/// Runtime threads inside [`with_python`] right now.
static IN_PYTHON: AtomicUsize = AtomicUsize::new(0);
/// How long shutdown waits for runtime threads to leave Python.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// Called from an `atexit` hook (the interpreter still whole): from now on
/// runtime threads stay out of Python (completions are dropped), and the
/// ones already inside are let finish first.
///
/// A runtime thread must not be inside Python when finalisation starts. A
/// call that releases the GIL there (asyncio's `call_soon_threadsafe` does,
/// to write to the loop's self-pipe) would, on taking it back, be ended by
/// CPython with `pthread_exit`, whose unwinding through Rust frames aborts
/// the whole process. So this releases the GIL and waits (at most
/// `SHUTDOWN_GRACE`) until no thread is inside.
pub fn mark_shutdown(py: Python<'_>) {
    SHUTTING_DOWN.store(true, Ordering::SeqCst);
    py.detach(|| {
        let deadline = Instant::now() + SHUTDOWN_GRACE;
        while IN_PYTHON.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
    });
}

/// Leaves the count of [`IN_PYTHON`] however the call ends.
struct InPython;

impl InPython {
    fn enter() -> Self {
        IN_PYTHON.fetch_add(1, Ordering::SeqCst);
        InPython
    }
}

impl Drop for InPython {
    fn drop(&mut self) {
        IN_PYTHON.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Run `f` with the GIL from a runtime thread, or not at all (`None`) once
/// interpreter shutdown has begun. Counted first, checked second: either
/// this thread sees the shutdown flag, or [`mark_shutdown`] sees it inside
/// and waits for it.
pub fn with_python<R>(f: impl FnOnce(Python<'_>) -> R) -> Option<R> {
    let _inside = InPython::enter();
    if !python_alive() {
        return None;
    }
    Python::try_attach(f)
}

pub fn python_alive() -> bool {
    // SAFETY: Py_IsInitialized may be called at any time, without the GIL.
    !SHUTTING_DOWN.load(Ordering::SeqCst) && unsafe { pyo3::ffi::Py_IsInitialized() } != 0
}

/// `fut`, with a panic turned into an `Error` like any other.
async fn caught<F, T>(fut: F) -> Result<T, Error>
where
    F: Future<Output = Result<T, Error>>,
{
    match AssertUnwindSafe(fut).catch_unwind().await {
        Ok(r) => r,
        Err(p) => Err(from_panic(p)),
    }
}

/// Run `fut` on the runtime, catching panics.
fn spawn_caught<F, T>(fut: F) -> Result<tokio::task::JoinHandle<Result<T, Error>>, Error>
where
    F: Future<Output = Result<T, Error>> + Send + 'static,
    T: Send + 'static,
{
    Ok(runtime::get()?.spawn(caught(fut)))
}

/// Block the calling thread (GIL released) until `fut` completes; answer
/// signals every 100 ms.
///
/// The future runs as a task on the runtime and the caller waits on a
/// channel (no runtime timer for the 100 ms signal tick). Driving it on the
/// calling thread instead (`block_on`) saves no cross-thread wake-up, since
/// reqwest runs every connection as a task of its own on the workers anyway.
/// Measured A/B on one interpreter: a blocking `send_task_data` of fresh
/// traces ~3 % faster this way, a bare request of ready bytes ~5 % slower.
pub fn wait<F, T>(py: Python<'_>, fut: F) -> Result<T, Error>
where
    F: Future<Output = Result<T, Error>> + Send + 'static,
    T: Send + 'static,
{
    let (abort, rx) = spawn_answering(fut)?;
    // Receiver is Send but not Sync; the mutex lets the detached closure borrow it.
    let rx = parking_lot::Mutex::new(rx);
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
                    // Dropping the task's future cancels the request.
                    abort.abort();
                    return Err(Error::Python(e));
                }
            }
        }
    }
}

/// Spawn `fut` on the runtime; its result arrives on the receiver, a panic
/// as an `Error` like any other (never a silent hang-up).
fn spawn_answering<F, T>(fut: F) -> Result<(AbortHandle, mpsc::Receiver<Result<T, Error>>), Error>
where
    F: Future<Output = Result<T, Error>> + Send + 'static,
    T: Send + 'static,
{
    let (tx, rx) = mpsc::sync_channel::<Result<T, Error>>(1);
    let handle = runtime::get()?.spawn(async move {
        let _ = tx.send(caught(fut).await);
    });
    Ok((handle.abort_handle(), rx))
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
        with_python(|py| {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spawned_future_answers_with_its_result() {
        let (_abort, rx) = spawn_answering(async { Ok::<u32, Error>(42) }).unwrap();
        let got = rx.recv_timeout(Duration::from_secs(10)).unwrap();
        assert_eq!(got.unwrap(), 42);
    }

    #[test]
    fn a_panicking_future_answers_with_an_error() {
        let (_abort, rx) = spawn_answering(async {
            let parsed: Result<u32, _> = "not a number".parse::<u32>();
            Ok::<u32, Error>(parsed.expect("boom"))
        })
        .unwrap();
        let got = rx.recv_timeout(Duration::from_secs(10)).unwrap();
        assert_eq!(
            got.unwrap_err().message(),
            "Unexpected error: internal error in the Rust core: boom: ParseIntError { kind: InvalidDigit }"
        );
    }

    #[test]
    fn an_aborted_future_hangs_up() {
        let (abort, rx) = spawn_answering(async {
            tokio::time::sleep(Duration::from_secs(60)).await;
            Ok::<u32, Error>(1)
        })
        .unwrap();
        abort.abort();
        assert!(matches!(
            rx.recv_timeout(Duration::from_secs(10)),
            Err(mpsc::RecvTimeoutError::Disconnected)
        ));
    }
}
