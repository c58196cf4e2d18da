//! The on-disk spool: append-only segment files of checksummed records.
//!
//! Layout under the user's `spool_dir`:
//!
//! ```text
//! spool_dir/
//!   {agent}.{pid}.{rand}/      one directory per process (per exporter),
//!     lock                     flock'ed exclusively while the owner lives
//!     seg-000000.log           records: [len u32 LE][crc32 u32 LE][payload]
//!     seg-000000.ack           acknowledged record indexes, u32 LE each
//! ```
//!
//! A record's payload is `[key length u8][idempotency key][body]`. A record
//! is never rewritten: once the server acknowledged it its index is appended
//! to the segment's `.ack` file, and when every record of a sealed segment is
//! acknowledged both files are deleted. A torn or corrupt tail (a crash in
//! the middle of an append) ends the readable part of a segment; it is
//! skipped with a warning.
//!
//! Two processes never share a directory: each writes only to its own, and
//! replays another one (an earlier process's backlog) only while holding
//! that directory's lock, which is free only once its owner is gone. So a
//! record is read back by one process at a time, and acknowledged records
//! are never read back at all.

use std::collections::{BTreeMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::Bytes;

/// Largest record payload we accept when reading (a corrupt length beyond
/// this ends the segment instead of allocating it).
const MAX_RECORD: usize = 64 * 1024 * 1024;
const HEADER: usize = 8;

/// One trace read back from a segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub key: String,
    pub body: Bytes,
}

/// Encode one record (header + payload).
pub fn encode(key: &str, body: &[u8]) -> Vec<u8> {
    let key = &key.as_bytes()[..key.len().min(255)];
    let payload_len = 1 + key.len() + body.len();
    let mut out = Vec::with_capacity(HEADER + payload_len);
    out.extend_from_slice(&(payload_len as u32).to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.push(key.len() as u8);
    out.extend_from_slice(key);
    out.extend_from_slice(body);
    let crc = crc32fast::hash(&out[HEADER..]);
    out[4..8].copy_from_slice(&crc.to_le_bytes());
    out
}

/// Decode every whole, intact record of a segment. The second value
/// describes a torn or corrupt tail, if any (what follows it is skipped).
pub fn decode_all(data: &[u8]) -> (Vec<Record>, Option<String>) {
    let mut out = Vec::new();
    let mut pos = 0usize;
    while pos < data.len() {
        let rest = &data[pos..];
        if rest.len() < HEADER {
            return (out, Some(format!("torn record header at byte {pos}")));
        }
        let len = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        let crc = u32::from_le_bytes([rest[4], rest[5], rest[6], rest[7]]);
        if len == 0 || len > MAX_RECORD {
            return (out, Some(format!("bad record length {len} at byte {pos}")));
        }
        let Some(payload) = rest.get(HEADER..HEADER + len) else {
            return (out, Some(format!("torn record at byte {pos}")));
        };
        if crc32fast::hash(payload) != crc {
            return (out, Some(format!("checksum mismatch at byte {pos}")));
        }
        let key_len = payload[0] as usize;
        let Some(key) = payload.get(1..1 + key_len) else {
            return (out, Some(format!("bad key length at byte {pos}")));
        };
        let Ok(key) = std::str::from_utf8(key) else {
            return (out, Some(format!("bad key at byte {pos}")));
        };
        out.push(Record {
            key: key.to_owned(),
            body: Bytes::copy_from_slice(&payload[1 + key_len..]),
        });
        pos += HEADER + len;
    }
    (out, None)
}

fn decode_acks(data: &[u8]) -> HashSet<u32> {
    data.chunks_exact(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// Try to take an exclusive lock on `path` (created if missing) without
/// waiting. `Ok(None)`: someone else holds it.
fn try_lock(path: &Path) -> io::Result<Option<File>> {
    let f = OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(path)?;
    #[cfg(unix)]
    {
        use std::os::unix::io::AsRawFd;
        // SAFETY: flock on a descriptor we own.
        let rc = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc != 0 {
            let e = io::Error::last_os_error();
            return if e.kind() == io::ErrorKind::WouldBlock {
                Ok(None)
            } else {
                Err(e)
            };
        }
        // The owner may have removed the directory between our open and our
        // lock: then the file we locked is no longer the lock file.
        use std::os::unix::fs::MetadataExt;
        let ours = f.metadata()?;
        match fs::metadata(path) {
            Ok(now) if now.ino() == ours.ino() && now.dev() == ours.dev() => {}
            _ => return Ok(None),
        }
    }
    Ok(Some(f))
}

/// Where a record of the spool lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpoolRef {
    pub seg: u64,
    pub index: u32,
}

#[derive(Debug)]
struct Segment {
    path: PathBuf,
    ack_path: PathBuf,
    /// Which directory (index into `Spool::dirs`) holds it.
    dir: usize,
    total: u32,
    acked: HashSet<u32>,
    ack_file: Option<File>,
    /// Records of this segment currently held in the memory queue.
    in_memory: u32,
    sealed: bool,
    /// Do not read it back before this (after a failed round).
    not_before: Instant,
}

impl Segment {
    fn unacked(&self) -> u32 {
        self.total.saturating_sub(self.acked.len() as u32)
    }
}

#[derive(Debug)]
struct Dir {
    path: PathBuf,
    lock: Option<File>,
    own: bool,
}

/// The spool of one exporter.
#[derive(Debug)]
pub struct Spool {
    root: PathBuf,
    prefix: String,
    dirs: Vec<Dir>,
    segments: BTreeMap<u64, Segment>,
    next_seg: u64,
    next_file: u64,
    active: Option<(u64, File)>,
    max_records: u32,
    pub warnings: Vec<String>,
}

impl Spool {
    /// Open `root` for `agent`: create this process's own locked directory.
    pub fn open(root: &Path, agent: &str, max_records: u32) -> io::Result<Spool> {
        fs::create_dir_all(root)?;
        let prefix = format!("{agent}.");
        let name = format!("{prefix}{}.{:08x}", std::process::id(), fastrand::u32(..));
        let path = root.join(name);
        fs::create_dir_all(&path)?;
        let lock = try_lock(&path.join("lock"))?
            .ok_or_else(|| io::Error::new(io::ErrorKind::WouldBlock, "spool directory is locked"))?;
        Ok(Spool {
            root: root.to_owned(),
            prefix,
            dirs: vec![Dir {
                path,
                lock: Some(lock),
                own: true,
            }],
            segments: BTreeMap::new(),
            next_seg: 0,
            next_file: 0,
            active: None,
            max_records: max_records.max(1),
            warnings: Vec::new(),
        })
    }

    /// The raw descriptor of this process's lock file (closed in a forked
    /// child, which must not keep the parent's directory locked).
    #[cfg(unix)]
    pub fn lock_fd(&self) -> Option<i32> {
        use std::os::unix::io::AsRawFd;
        self.dirs
            .first()
            .and_then(|d| d.lock.as_ref())
            .map(|f| f.as_raw_fd())
    }

    pub fn own_dir(&self) -> &Path {
        &self.dirs[0].path
    }

    /// Records on disk that are not acknowledged yet.
    pub fn backlog(&self) -> u64 {
        self.segments.values().map(|s| u64::from(s.unacked())).sum()
    }

    /// Append a record to this process's active segment. `in_memory`: the
    /// caller also keeps it in the memory queue (and will ack or release it).
    pub fn append(&mut self, key: &str, body: &[u8], in_memory: bool) -> io::Result<SpoolRef> {
        let (seg_id, file) = match &mut self.active {
            Some((id, f)) => (*id, f),
            None => {
                let id = self.next_seg;
                let path = self.dirs[0].path.join(format!("seg-{:06}.log", self.next_file));
                let f = OpenOptions::new().create_new(true).append(true).open(&path)?;
                self.next_seg += 1;
                self.next_file += 1;
                self.segments.insert(
                    id,
                    Segment {
                        ack_path: path.with_extension("ack"),
                        path,
                        dir: 0,
                        total: 0,
                        acked: HashSet::new(),
                        ack_file: None,
                        in_memory: 0,
                        sealed: false,
                        not_before: Instant::now(),
                    },
                );
                let (id, f) = self.active.insert((id, f));
                (*id, f)
            }
        };
        // One write per record: after it returns, the record is in the OS
        // and survives the death of this process.
        file.write_all(&encode(key, body))?;
        let Some(seg) = self.segments.get_mut(&seg_id) else {
            return Err(io::Error::other("active segment vanished"));
        };
        let index = seg.total;
        seg.total += 1;
        if in_memory {
            seg.in_memory += 1;
        }
        if seg.total >= self.max_records {
            seg.sealed = true;
            self.active = None;
        }
        Ok(SpoolRef { seg: seg_id, index })
    }

    /// Flush the active segment to stable storage.
    pub fn sync(&mut self) -> io::Result<()> {
        match &self.active {
            Some((_, f)) => f.sync_data(),
            None => Ok(()),
        }
    }

    /// The server acknowledged this record: never send it again.
    pub fn ack(&mut self, r: SpoolRef) -> io::Result<()> {
        let Some(seg) = self.segments.get_mut(&r.seg) else {
            return Ok(());
        };
        seg.in_memory = seg.in_memory.saturating_sub(1);
        if !seg.acked.insert(r.index) {
            return Ok(());
        }
        let result = (|| {
            if seg.ack_file.is_none() {
                seg.ack_file = Some(OpenOptions::new().create(true).append(true).open(&seg.ack_path)?);
            }
            match seg.ack_file.as_mut() {
                Some(f) => f.write_all(&r.index.to_le_bytes()),
                None => Ok(()),
            }
        })();
        self.collect(r.seg);
        result
    }

    /// The memory queue gave this record up (retries exhausted, close): it
    /// stays on disk, to be read back later.
    pub fn release(&mut self, r: SpoolRef) {
        if let Some(seg) = self.segments.get_mut(&r.seg) {
            seg.in_memory = seg.in_memory.saturating_sub(1);
            seg.not_before = Instant::now() + Duration::from_secs(1);
        }
    }

    /// Delete a segment whose every record is acknowledged.
    fn collect(&mut self, id: u64) {
        let Some(seg) = self.segments.get(&id) else {
            return;
        };
        if !seg.sealed || seg.unacked() > 0 || seg.in_memory > 0 {
            return;
        }
        let _ = fs::remove_file(&seg.path);
        let _ = fs::remove_file(&seg.ack_path);
        let dir = seg.dir;
        self.segments.remove(&id);
        if !self.dirs[dir].own && !self.segments.values().any(|s| s.dir == dir) {
            self.remove_dir(dir);
        }
    }

    fn remove_dir(&mut self, dir: usize) {
        let d = &mut self.dirs[dir];
        if let Some(lock) = d.lock.take() {
            // Remove the lock file while still holding the lock, then the
            // directory; a process that opened the old lock file meanwhile
            // sees that it no longer is the lock file.
            let _ = fs::remove_file(d.path.join("lock"));
            let _ = fs::remove_dir(&d.path);
            drop(lock);
        }
    }

    /// Take over the backlog of other processes (same agent) that are gone.
    pub fn claim_foreign(&mut self) {
        let Ok(entries) = fs::read_dir(&self.root) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if !name.starts_with(&self.prefix) {
                continue;
            }
            let path = entry.path();
            if self.dirs.iter().any(|d| d.path == path) || !path.is_dir() {
                continue;
            }
            let lock = match try_lock(&path.join("lock")) {
                Ok(Some(l)) => l,
                Ok(None) => continue,
                Err(e) => {
                    self.warnings
                        .push(format!("cannot lock spool directory {}: {e}", path.display()));
                    continue;
                }
            };
            let dir = self.dirs.len();
            self.dirs.push(Dir {
                path: path.clone(),
                lock: Some(lock),
                own: false,
            });
            self.load_dir(dir);
            if !self.segments.values().any(|s| s.dir == dir) {
                self.remove_dir(dir);
            }
        }
    }

    fn load_dir(&mut self, dir: usize) {
        let Ok(entries) = fs::read_dir(&self.dirs[dir].path) else {
            return;
        };
        let mut logs: Vec<PathBuf> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "log"))
            .collect();
        logs.sort();
        for path in logs {
            let ack_path = path.with_extension("ack");
            let data = match fs::read(&path) {
                Ok(d) => d,
                Err(e) => {
                    self.warnings
                        .push(format!("cannot read spool segment {}: {e}", path.display()));
                    continue;
                }
            };
            let (records, problem) = decode_all(&data);
            if let Some(p) = problem {
                self.warnings.push(format!(
                    "spool segment {}: {p}; the rest of it is skipped",
                    path.display()
                ));
            }
            let acked = fs::read(&ack_path).map(|d| decode_acks(&d)).unwrap_or_default();
            let id = self.next_seg;
            self.next_seg += 1;
            self.segments.insert(
                id,
                Segment {
                    path,
                    ack_path,
                    dir,
                    total: records.len() as u32,
                    acked: acked
                        .into_iter()
                        .filter(|i| (*i as usize) < records.len())
                        .collect(),
                    ack_file: None,
                    in_memory: 0,
                    sealed: true,
                    not_before: Instant::now(),
                },
            );
            self.collect(id);
        }
    }

    /// Read back up to `room` unacknowledged records of a segment none of
    /// whose records is in memory. Each returned record counts as in memory.
    pub fn next_replay(&mut self, room: usize) -> Option<Vec<(SpoolRef, Record)>> {
        if room == 0 {
            return None;
        }
        let now = Instant::now();
        let id = self
            .segments
            .iter()
            .find(|(_, s)| s.in_memory == 0 && s.unacked() > 0 && s.not_before <= now)
            .map(|(id, _)| *id)?;
        if self.active.as_ref().is_some_and(|(a, _)| *a == id) {
            self.active = None;
        }
        let seg = self.segments.get_mut(&id)?;
        seg.sealed = true;
        let data = match fs::read(&seg.path) {
            Ok(d) => d,
            Err(e) => {
                self.warnings
                    .push(format!("cannot read spool segment {}: {e}", seg.path.display()));
                seg.not_before = now + Duration::from_secs(30);
                return None;
            }
        };
        let (records, _) = decode_all(&data);
        let mut out = Vec::new();
        for (index, rec) in records.into_iter().enumerate() {
            let index = index as u32;
            if index >= seg.total || seg.acked.contains(&index) {
                continue;
            }
            out.push((SpoolRef { seg: id, index }, rec));
            if out.len() >= room {
                break;
            }
        }
        seg.in_memory += out.len() as u32;
        seg.not_before = now + Duration::from_secs(1);
        if out.is_empty() {
            // Nothing readable is left: the rest was a corrupt tail.
            seg.total = seg.acked.len() as u32;
            self.collect(id);
            return None;
        }
        Some(out)
    }

    /// Stop writing; remove this process's directory if it holds nothing,
    /// release every lock (the backlog stays for a later process).
    pub fn close(&mut self) {
        self.active = None;
        for seg in self.segments.values_mut() {
            seg.sealed = true;
            seg.in_memory = 0;
        }
        let ids: Vec<u64> = self.segments.keys().copied().collect();
        for id in ids {
            self.collect(id);
        }
        for dir in 0..self.dirs.len() {
            if !self.segments.values().any(|s| s.dir == dir) {
                self.remove_dir(dir);
            } else {
                self.dirs[dir].lock = None;
            }
        }
    }
}

/// Read a whole file, for tests and tools.
pub fn read_file(path: &Path) -> io::Result<Vec<u8>> {
    let mut v = Vec::new();
    File::open(path)?.read_to_end(&mut v)?;
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str) -> PathBuf {
        let p = std::env::temp_dir().join(format!(
            "infinium-spool-test-{name}-{}-{}",
            std::process::id(),
            fastrand::u32(..)
        ));
        let _ = fs::remove_dir_all(&p);
        p
    }

    #[test]
    fn encode_decode_roundtrip() {
        let mut data = encode("k1", b"{\"a\":1}");
        data.extend(encode("k2", b""));
        let (recs, problem) = decode_all(&data);
        assert!(problem.is_none());
        assert_eq!(recs.len(), 2);
        assert_eq!(recs[0].key, "k1");
        assert_eq!(&recs[0].body[..], b"{\"a\":1}");
        assert_eq!(recs[1].key, "k2");
    }

    #[test]
    fn torn_and_corrupt_tails_are_skipped() {
        let mut data = encode("k1", b"one");
        let second = encode("k2", b"two");
        data.extend_from_slice(&second[..second.len() - 1]);
        let (recs, problem) = decode_all(&data);
        assert_eq!(recs.len(), 1);
        assert!(problem.unwrap().contains("torn"));

        let mut data = encode("k1", b"one");
        let mut bad = encode("k2", b"two");
        let last = bad.len() - 1;
        bad[last] ^= 0xff;
        data.extend(bad);
        let (recs, problem) = decode_all(&data);
        assert_eq!(recs.len(), 1);
        assert!(problem.unwrap().contains("checksum"));

        let (recs, problem) = decode_all(&[1, 2, 3]);
        assert!(recs.is_empty());
        assert!(problem.is_some());
        let (recs, problem) = decode_all(&[0xff; 16]);
        assert!(recs.is_empty());
        assert!(problem.is_some());
    }

    #[test]
    fn append_ack_collect_and_claim() {
        let root = tmp("claim");
        let mut a = Spool::open(&root, "agent", 2).unwrap();
        let r0 = a.append("k0", b"b0", false).unwrap();
        let r1 = a.append("k1", b"b1", true).unwrap();
        let _r2 = a.append("k2", b"b2", false).unwrap();
        assert_eq!(r0.seg, r1.seg);
        assert_eq!(a.backlog(), 3);
        a.ack(r1).unwrap();
        assert_eq!(a.backlog(), 2);
        // A second process cannot claim while `a` lives.
        let mut b = Spool::open(&root, "agent", 2).unwrap();
        b.claim_foreign();
        assert_eq!(b.backlog(), 0);
        a.close();
        drop(a);
        // Now it can; the acked record is not read back.
        b.claim_foreign();
        assert_eq!(b.backlog(), 2);
        let mut keys = Vec::new();
        while let Some(batch) = b.next_replay(10) {
            for (r, rec) in batch {
                keys.push(rec.key);
                b.ack(r).unwrap();
            }
        }
        keys.sort();
        assert_eq!(keys, vec!["k0", "k2"]);
        assert_eq!(b.backlog(), 0);
        // A third process finds nothing left to claim.
        let mut c = Spool::open(&root, "agent", 2).unwrap();
        c.claim_foreign();
        assert_eq!(c.backlog(), 0);
        b.close();
        c.close();
        // Every directory was emptied and removed.
        assert_eq!(fs::read_dir(&root).unwrap().count(), 0);
        let _ = fs::remove_dir_all(&root);
    }

    #[test]
    fn other_agents_are_left_alone() {
        let root = tmp("agents");
        let mut a = Spool::open(&root, "one", 8).unwrap();
        a.append("k", b"b", false).unwrap();
        a.close();
        let mut b = Spool::open(&root, "two", 8).unwrap();
        b.claim_foreign();
        assert_eq!(b.backlog(), 0);
        b.close();
        let _ = fs::remove_dir_all(&root);
    }

    #[test]
    fn corrupt_tail_on_disk_is_skipped() {
        let root = tmp("corrupt");
        let mut a = Spool::open(&root, "agent", 100).unwrap();
        a.append("k0", b"b0", false).unwrap();
        a.append("k1", b"b1", false).unwrap();
        let dir = a.own_dir().to_owned();
        a.close();
        let seg = dir.join("seg-000000.log");
        let mut data = read_file(&seg).unwrap();
        data.truncate(data.len() - 3);
        fs::write(&seg, data).unwrap();
        let mut b = Spool::open(&root, "agent", 100).unwrap();
        b.claim_foreign();
        assert_eq!(b.backlog(), 1);
        assert!(b.warnings.iter().any(|w| w.contains("torn")));
        let batch = b.next_replay(10).unwrap();
        assert_eq!(batch.len(), 1);
        assert_eq!(batch[0].1.key, "k0");
        b.ack(batch[0].0).unwrap();
        assert_eq!(b.backlog(), 0);
        b.close();
        let _ = fs::remove_dir_all(&root);
    }
}
