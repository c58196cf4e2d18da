//! Directory locks that stay with the process that took them.
//!
//! A spool directory is owned by whoever holds the exclusive lock on its
//! `lock` file: its creator while it lives, then the one process that claims
//! its backlog. On Linux the lock is an open-file-description lock
//! (`F_OFD_SETLK`: two descriptors opened separately conflict even within
//! one process, so two exporters of a process never claim each other's
//! directory), elsewhere `flock`.
//!
//! Both kinds belong to the open file description, which `fork()` shares
//! with the child: a child holding its copy would keep the parent's
//! directory locked after the parent died, and nobody could replay that
//! backlog while the child lives. So every lock descriptor is registered
//! here, and a `pthread_atfork` child handler closes them all in the child
//! (the parent's copies keep the locks). A prepare handler makes `fork()`
//! wait while a lock is being opened, so no descriptor escapes the registry.
//! The descriptors are `O_CLOEXEC` (Rust's default), so `exec` drops them too.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::Once;

/// Lock descriptors a process may hold at once (each exporter holds one,
/// plus one at a time while claiming).
const SLOTS: usize = 512;

static FDS: [AtomicI32; SLOTS] = [const { AtomicI32::new(-1) }; SLOTS];
/// Held while a lock file is opened and registered; `fork()` waits for it.
static OPENING: AtomicBool = AtomicBool::new(false);
static ATFORK: Once = Once::new();

fn take_opening() {
    while OPENING
        .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
        .is_err()
    {
        std::thread::yield_now();
    }
}

extern "C" fn before_fork() {
    take_opening();
}

extern "C" fn after_fork_in_parent() {
    OPENING.store(false, Ordering::Release);
}

extern "C" fn after_fork_in_child() {
    for slot in &FDS {
        let fd = slot.swap(-1, Ordering::AcqRel);
        if fd >= 0 {
            // SAFETY: a descriptor this registry owns; close is async-signal-safe.
            unsafe {
                libc::close(fd);
            }
        }
    }
    OPENING.store(false, Ordering::Release);
}

fn register_atfork() {
    ATFORK.call_once(|| {
        #[cfg(unix)]
        // SAFETY: plain extern "C" functions without captured state.
        unsafe {
            libc::pthread_atfork(
                Some(before_fork),
                Some(after_fork_in_parent),
                Some(after_fork_in_child),
            );
        }
    });
}

/// An exclusive lock on a file, released when dropped (in the process that
/// took it; in a forked child its descriptor was closed at the fork).
#[derive(Debug)]
pub struct DirLock {
    file: std::mem::ManuallyDrop<File>,
    slot: usize,
    pid: u32,
}

impl Drop for DirLock {
    fn drop(&mut self) {
        if self.pid != std::process::id() {
            // Inherited through fork(): the descriptor number was closed in
            // the child and may have been reused since.
            return;
        }
        FDS[self.slot].store(-1, Ordering::Release);
        // SAFETY: dropped exactly once, here.
        unsafe { std::mem::ManuallyDrop::drop(&mut self.file) };
    }
}

impl DirLock {
    /// Take the lock on `path` (created if missing) without waiting.
    /// `Ok(None)`: someone holds it, or `path` was removed meanwhile.
    pub fn try_take(path: &Path) -> io::Result<Option<DirLock>> {
        register_atfork();
        take_opening();
        let opened = open_registered(path);
        OPENING.store(false, Ordering::Release);
        let lock = opened?;
        if !exclusive(&lock.file)? {
            return Ok(None);
        }
        // The owner may have removed its directory between our open and our
        // lock: then the file we locked is no longer the lock file.
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            let ours = lock.file.metadata()?;
            match fs::metadata(path) {
                Ok(now) if now.ino() == ours.ino() && now.dev() == ours.dev() => {}
                _ => return Ok(None),
            }
        }
        Ok(Some(lock))
    }

    pub fn metadata(&self) -> io::Result<fs::Metadata> {
        self.file.metadata()
    }

    /// The raw descriptor (tests).
    #[cfg(all(test, unix))]
    pub fn fd(&self) -> i32 {
        use std::os::unix::io::AsRawFd;
        self.file.as_raw_fd()
    }
}

fn open_registered(path: &Path) -> io::Result<DirLock> {
    let mut opts = OpenOptions::new();
    opts.create(true).truncate(false).read(true).write(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let file = opts.open(path)?;
    #[cfg(unix)]
    {
        use std::os::unix::io::AsRawFd;
        let fd = file.as_raw_fd();
        for (slot, s) in FDS.iter().enumerate() {
            if s.compare_exchange(-1, fd, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
            {
                return Ok(DirLock {
                    file: std::mem::ManuallyDrop::new(file),
                    slot,
                    pid: std::process::id(),
                });
            }
        }
        Err(io::Error::other("too many spool directory locks held"))
    }
    #[cfg(not(unix))]
    Ok(DirLock {
        file: std::mem::ManuallyDrop::new(file),
        slot: 0,
        pid: std::process::id(),
    })
}

/// Take an exclusive lock on `f` without waiting; false when held elsewhere.
fn exclusive(f: &File) -> io::Result<bool> {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::io::AsRawFd;
        // SAFETY: a zeroed flock is a valid value; the fields set below.
        let mut fl: libc::flock = unsafe { std::mem::zeroed() };
        fl.l_type = libc::F_WRLCK as libc::c_short;
        fl.l_whence = libc::SEEK_SET as libc::c_short;
        // SAFETY: fcntl on a descriptor we own with a valid flock.
        let rc = unsafe { libc::fcntl(f.as_raw_fd(), libc::F_OFD_SETLK, &fl) };
        if rc == 0 {
            return Ok(true);
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EAGAIN) | Some(libc::EACCES) => Ok(false),
            _ => Err(e),
        }
    }
    #[cfg(all(unix, not(target_os = "linux")))]
    {
        use std::os::unix::io::AsRawFd;
        // SAFETY: flock on a descriptor we own.
        let rc = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc == 0 {
            return Ok(true);
        }
        let e = io::Error::last_os_error();
        if e.kind() == io::ErrorKind::WouldBlock {
            Ok(false)
        } else {
            Err(e)
        }
    }
    #[cfg(not(unix))]
    {
        let _ = f;
        Ok(true)
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    fn tmp(name: &str) -> std::path::PathBuf {
        let p = std::env::temp_dir().join(format!(
            "infinium-lock-test-{name}-{}-{}",
            std::process::id(),
            fastrand::u32(..)
        ));
        fs::create_dir_all(&p).unwrap();
        p
    }

    #[test]
    fn exclusive_within_one_process_and_released_on_drop() {
        let dir = tmp("excl");
        let path = dir.join("lock");
        let a = DirLock::try_take(&path).unwrap().expect("free");
        assert!(DirLock::try_take(&path).unwrap().is_none());
        drop(a);
        let b = DirLock::try_take(&path).unwrap().expect("released");
        drop(b);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_removed_lock_file_is_not_taken() {
        let dir = tmp("removed");
        let path = dir.join("lock");
        let a = DirLock::try_take(&path).unwrap().unwrap();
        // Open as a claimer would, then the owner removes the file.
        let f = OpenOptions::new().read(true).write(true).open(&path).unwrap();
        fs::remove_file(&path).unwrap();
        drop(a);
        assert!(exclusive(&f).unwrap());
        // The path names a new file now: the lock on the old one is no lock.
        assert!(DirLock::try_take(&path).unwrap().is_some());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_forked_child_does_not_keep_the_lock() {
        let dir = tmp("fork");
        let path = dir.join("lock");
        let lock = DirLock::try_take(&path).unwrap().unwrap();
        let fd = lock.fd();
        let (r, w) = {
            let mut p = [0i32; 2];
            // SAFETY: a pipe for the child to answer through.
            assert_eq!(unsafe { libc::pipe(p.as_mut_ptr()) }, 0);
            (p[0], p[1])
        };
        // SAFETY: the child only makes async-signal-safe calls, then _exit.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            // Is the inherited descriptor still open in the child?
            // SAFETY: fcntl on a descriptor number; write and _exit.
            let open = unsafe { libc::fcntl(fd, libc::F_GETFD) } != -1;
            let b = [u8::from(open)];
            unsafe {
                libc::write(w, b.as_ptr().cast(), 1);
                libc::sleep(2);
                libc::_exit(0);
            }
        }
        let mut b = [9u8];
        // SAFETY: reading the child's answer.
        unsafe {
            libc::read(r, b.as_mut_ptr().cast(), 1);
            libc::close(r);
            libc::close(w);
        }
        assert_eq!(b[0], 0, "the child kept the lock descriptor");
        // The parent still holds it while the child lives.
        assert!(DirLock::try_take(&path).unwrap().is_none());
        drop(lock);
        // The child is still alive: the lock is free all the same.
        assert!(DirLock::try_take(&path).unwrap().is_some());
        let mut status = 0;
        // SAFETY: reaping our child.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        fs::remove_dir_all(&dir).unwrap();
    }
}
