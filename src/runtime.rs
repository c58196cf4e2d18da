//! The one tokio runtime of the process.
//!
//! Created lazily on first use and shared by every client, batch, background
//! exporter and local server. It is fork-safe: a `pthread_atfork` child handler
//! bumps [`generation`] and forgets the parent's runtime (whose threads do not
//! exist in the child), so the child builds a fresh one on first use. Objects
//! holding runtime-bound resources (connection pools) compare the generation
//! they were built in with the current one and rebuild themselves.

use std::sync::atomic::{AtomicPtr, AtomicU64, AtomicU8, Ordering};
use std::sync::Once;

use tokio::runtime::{Builder, Runtime};

use crate::error::Error;

static RUNTIME: AtomicPtr<Runtime> = AtomicPtr::new(std::ptr::null_mut());
/// 0 = none, 1 = being built, 2 = ready.
static STATE: AtomicU8 = AtomicU8::new(0);
static GENERATION: AtomicU64 = AtomicU64::new(0);
static ATFORK: Once = Once::new();

extern "C" fn after_fork_in_child() {
    // Single-threaded here: the parent's runtime threads are gone. Leak the
    // old runtime (dropping it would try to join threads that do not exist).
    RUNTIME.store(std::ptr::null_mut(), Ordering::SeqCst);
    STATE.store(0, Ordering::SeqCst);
    GENERATION.fetch_add(1, Ordering::SeqCst);
    // This thread's random generator is a copy of the parent's: reseed it, or
    // parent and child would draw the same idempotency keys.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    fastrand::seed(fastrand::u64(..) ^ nanos ^ (u64::from(std::process::id()) << 32));
}

/// Install the fork handler (idempotent). Called at module import and before
/// the runtime is first built.
pub fn register_atfork() {
    ATFORK.call_once(|| {
        #[cfg(unix)]
        // SAFETY: registering a plain extern "C" function with no captured state.
        unsafe {
            libc::pthread_atfork(None, None, Some(after_fork_in_child));
        }
    });
}

/// Runtime threads block the signals a program handles (SIGTERM, SIGINT...):
/// a process-directed signal then goes to a thread that runs Python. Python
/// runs its handlers in the main thread, woken by the signal; one delivered
/// to a runtime thread instead left a main thread blocked in a wait that
/// never ends (a `multiprocessing` worker on the pool's queue lock, after
/// `Pool.terminate()`) without ever running the handler.
fn block_async_signals() {
    #[cfg(unix)]
    // SAFETY: building a signal set and changing this thread's mask.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for sig in [
            libc::SIGINT,
            libc::SIGTERM,
            libc::SIGHUP,
            libc::SIGQUIT,
            libc::SIGUSR1,
            libc::SIGUSR2,
            libc::SIGALRM,
            libc::SIGCHLD,
            libc::SIGWINCH,
        ] {
            libc::sigaddset(&mut set, sig);
        }
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
}

/// Incremented in a child process after every `fork()`.
pub fn generation() -> u64 {
    GENERATION.load(Ordering::SeqCst)
}

/// The process runtime, built on first use (and again after a fork).
pub fn get() -> Result<&'static Runtime, Error> {
    loop {
        match STATE.load(Ordering::Acquire) {
            2 => {
                let ptr = RUNTIME.load(Ordering::Acquire);
                if !ptr.is_null() {
                    // SAFETY: the pointer comes from Box::leak and is never freed.
                    return Ok(unsafe { &*ptr });
                }
            }
            0 => {
                if STATE
                    .compare_exchange(0, 1, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
                {
                    register_atfork();
                    let built = Builder::new_multi_thread()
                        .worker_threads(
                            std::thread::available_parallelism()
                                .map_or(2, |n| n.get())
                                .clamp(2, 8),
                        )
                        .thread_name("infinium-rt")
                        .on_thread_start(block_async_signals)
                        .enable_all()
                        .build();
                    match built {
                        Ok(rt) => {
                            let ptr = Box::into_raw(Box::new(rt));
                            RUNTIME.store(ptr, Ordering::Release);
                            STATE.store(2, Ordering::Release);
                            // SAFETY: just leaked above; lives for the process.
                            return Ok(unsafe { &*ptr });
                        }
                        Err(e) => {
                            STATE.store(0, Ordering::Release);
                            return Err(Error::Unexpected(format!(
                                "could not start the tokio runtime: {e}"
                            )));
                        }
                    }
                }
            }
            _ => std::thread::yield_now(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn runtime_threads_leave_signals_to_python() {
        let blocked = |sig| {
            // SAFETY: reading this thread's signal mask.
            unsafe {
                let mut set: libc::sigset_t = std::mem::zeroed();
                libc::pthread_sigmask(libc::SIG_BLOCK, std::ptr::null(), &mut set);
                libc::sigismember(&set, sig) == 1
            }
        };
        let rt = get().unwrap();
        let on_worker = rt.block_on(async { rt.spawn(async move { blocked(libc::SIGTERM) }).await });
        assert!(on_worker.unwrap());
        let on_blocking =
            rt.block_on(async { tokio::task::spawn_blocking(move || blocked(libc::SIGINT)).await });
        assert!(on_blocking.unwrap());
    }

    #[test]
    fn runtime_is_shared_and_runs_tasks() {
        let a = get().unwrap() as *const Runtime;
        let b = get().unwrap() as *const Runtime;
        assert_eq!(a, b);
        let v = get().unwrap().block_on(async { 40 + 2 });
        assert_eq!(v, 42);
    }
}
