//! The on-disk spool: append-only segment files of checksummed records.
//!
//! [`layout`] says where files live (a folder per target, a locked
//! directory per exporter), [`record`] how bytes are laid out in them,
//! [`lock`] how a directory is owned.
//!
//! An exporter writes only to its own directory, created when it first has
//! something to write (so a process that delivers everything never touches
//! the disk). A record is never rewritten: once the server acknowledged it,
//! an entry naming it is appended to the segment's `.ack` file, and a
//! segment whose every record is acknowledged is deleted.
//!
//! The directories of exporters that are gone (their lock is free) are
//! claimed: locked first, then their segments are renamed into the
//! claimer's own directory and indexed, then the empty directory is
//! removed. A directory is read only by the process holding its lock, so a
//! record is read back by one process at a time, and acknowledged records
//! are never read back at all.
//!
//! Every record the spool holds carries the sequence number its exporter
//! gave it, so the exporter can tell which of its traces a dropped record
//! was (`flush` waits for each one until it is delivered or dropped).

pub mod layout;
pub mod lock;
pub mod record;

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::Bytes;

use layout::TargetInfo;
use lock::DirLock;
use record::Span;

/// Where a record of the spool lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpoolRef {
    pub seg: u64,
    pub index: u32,
}

/// One trace read back from the spool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub seq: u64,
    pub key: String,
    pub body: Bytes,
}

#[derive(Debug)]
struct Rec {
    span: Span,
    seq: u64,
    acked: bool,
    /// Held in the exporter's memory queue (which will ack or release it).
    in_memory: bool,
}

#[derive(Debug)]
struct Segment {
    path: PathBuf,
    recs: Vec<Rec>,
    unacked: u32,
    ack_file: Option<File>,
    /// Length of the log file (where the next record goes).
    log_len: u64,
    /// Bytes of its files (log and acknowledgements).
    size: u64,
    /// Not to be read back before this (after a failed round).
    not_before: Instant,
}

#[derive(Debug)]
struct Own {
    path: PathBuf,
    lock: DirLock,
}

/// What the spool did that its exporter must account for, taken with
/// [`Spool::take_events`].
#[derive(Debug, Default)]
pub struct Events {
    pub warnings: Vec<String>,
    /// Sequence numbers of records dropped (over `max_spool_bytes`, lost
    /// with a deleted directory, unreadable when read back).
    pub dropped: Vec<u64>,
    /// Damaged regions found in segments (each held at least one record).
    pub unreadable: u64,
    /// Records taken over from exporters that are gone.
    pub claimed: u64,
}

/// The spool of one exporter.
#[derive(Debug)]
pub struct Spool {
    target: PathBuf,
    info: TargetInfo,
    own: Option<Own>,
    segments: BTreeMap<u64, Segment>,
    next_seg: u64,
    next_file: u64,
    active: Option<(u64, File)>,
    max_records: u32,
    segment_bytes: u64,
    max_bytes: u64,
    bytes: u64,
    events: Events,
}

fn gone(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::NotFound
}

impl Spool {
    /// The spool of `agent`'s traces to `base_url` under `root`. Touches
    /// nothing on disk.
    pub fn new(root: &Path, agent: &str, base_url: &str, max_records: u32, max_bytes: u64) -> Spool {
        Spool {
            target: root.join(layout::target_name(agent, base_url)),
            info: TargetInfo::new(agent, base_url),
            own: None,
            segments: BTreeMap::new(),
            next_seg: 0,
            next_file: 0,
            active: None,
            max_records: max_records.max(1),
            segment_bytes: (max_bytes / 16).clamp(4096, 8 << 20),
            max_bytes: max_bytes.max(1),
            bytes: 0,
            events: Events::default(),
        }
    }

    pub fn take_events(&mut self) -> Events {
        std::mem::take(&mut self.events)
    }

    fn warn(&mut self, message: String) {
        self.events.warnings.push(message);
    }

    pub fn target_dir(&self) -> &Path {
        &self.target
    }

    /// This exporter's directory, once it exists.
    pub fn own_dir(&self) -> Option<&Path> {
        self.own.as_ref().map(|o| o.path.as_path())
    }

    /// Records on disk not acknowledged yet.
    pub fn backlog(&self) -> u64 {
        self.segments.values().map(|s| u64::from(s.unacked)).sum()
    }

    /// Create this exporter's directory (and the target folder) if missing.
    /// It is set up under a hidden name and renamed into place once locked,
    /// so no claimer ever sees it unlocked.
    pub fn create_own(&mut self) -> io::Result<&Path> {
        if self.own.is_none() {
            layout::ensure_target(&self.target, &self.info)?;
            let mut last = io::Error::other("no directory name was free");
            for _ in 0..4 {
                let name = layout::own_name();
                let tmp = layout::new_dir_path(&self.target, &name);
                let path = self.target.join(&name);
                if let Err(e) = layout::create_private_dir(&tmp) {
                    last = e;
                    continue;
                }
                let locked = DirLock::try_take(&tmp.join(layout::LOCK_FILE));
                let lock = match locked {
                    Ok(Some(l)) => l,
                    Ok(None) => continue,
                    Err(e) => {
                        let _ = fs::remove_dir_all(&tmp);
                        last = e;
                        continue;
                    }
                };
                if path.exists() {
                    let _ = fs::remove_dir_all(&tmp);
                    continue;
                }
                if let Err(e) = fs::rename(&tmp, &path) {
                    let _ = fs::remove_dir_all(&tmp);
                    last = e;
                    continue;
                }
                self.own = Some(Own { path, lock });
                break;
            }
            if self.own.is_none() {
                return Err(last);
            }
        }
        match &self.own {
            Some(o) => Ok(&o.path),
            None => Err(io::Error::other("spool directory missing")),
        }
    }

    /// Append a record. `in_memory`: the caller also keeps it in its queue
    /// (and will ack or release it). Over `max_spool_bytes` the oldest
    /// segments are dropped first; a failed write leaves nothing behind.
    pub fn append(&mut self, key: &str, body: &[u8], seq: u64, in_memory: bool) -> io::Result<SpoolRef> {
        let data = record::encode(key, body);
        let need = data.len() as u64;
        if need > self.max_bytes {
            return Err(io::Error::other(format!(
                "a trace of {need} bytes does not fit in max_spool_bytes={}",
                self.max_bytes
            )));
        }
        self.make_room(need);
        let id = match self.active_segment() {
            Ok(id) => id,
            Err(e) if gone(&e) && self.check_dir() => self.active_segment()?,
            Err(e) => return Err(e),
        };
        let Some((_, file)) = self.active.as_mut() else {
            return Err(io::Error::other("no active segment"));
        };
        let Some(seg) = self.segments.get_mut(&id) else {
            return Err(io::Error::other("active segment vanished"));
        };
        let before = seg.log_len;
        // One write per record: once it returns, the record is in the OS
        // and survives the death of this process.
        if let Err(e) = file.write_all(&data) {
            // Never leave part of a record behind (a full disk, a quota):
            // cut the file back; if even that fails, write no more to it.
            if file.set_len(before).is_err() {
                self.active = None;
            }
            return Err(e);
        }
        let crc = u32::from_le_bytes([data[4], data[5], data[6], data[7]]);
        let index = seg.recs.len() as u32;
        seg.recs.push(Rec {
            span: Span {
                offset: before,
                len: (data.len() - record::HEADER) as u32,
                crc,
            },
            seq,
            acked: false,
            in_memory,
        });
        seg.unacked += 1;
        seg.log_len += need;
        seg.size += need;
        self.bytes += need;
        if seg.recs.len() as u32 >= self.max_records || seg.log_len >= self.segment_bytes {
            self.active = None;
        }
        Ok(SpoolRef { seg: id, index })
    }

    fn active_segment(&mut self) -> io::Result<u64> {
        if let Some((id, _)) = &self.active {
            return Ok(*id);
        }
        let dir = self.create_own()?.to_owned();
        let file = loop {
            let path = layout::segment_path(&dir, self.next_file);
            self.next_file += 1;
            match layout::private_file().create_new(true).append(true).open(&path) {
                Ok(f) => break (path, f),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        };
        let id = self.next_seg;
        self.next_seg += 1;
        self.segments.insert(
            id,
            Segment {
                path: file.0,
                recs: Vec::new(),
                unacked: 0,
                ack_file: None,
                log_len: 0,
                size: 0,
                not_before: Instant::now(),
            },
        );
        self.active = Some((id, file.1));
        Ok(id)
    }

    /// Drop the oldest segments until `need` more bytes fit.
    fn make_room(&mut self, need: u64) {
        let mut dropped = 0u64;
        while self.bytes + need > self.max_bytes {
            let Some((&id, _)) = self.segments.iter().next() else {
                break;
            };
            if self.active.as_ref().is_some_and(|(a, _)| *a == id) {
                self.active = None;
            }
            if let Some(seg) = self.segments.remove(&id) {
                dropped += self.discard(seg);
            }
        }
        if dropped > 0 {
            self.warn(format!(
                "the spool reached max_spool_bytes={}: dropped the {dropped} oldest trace(s) on disk",
                self.max_bytes
            ));
        }
    }

    /// Delete a segment's files; its unacknowledged records that are not in
    /// memory are dropped (returns how many).
    fn discard(&mut self, seg: Segment) -> u64 {
        let _ = fs::remove_file(&seg.path);
        let _ = fs::remove_file(layout::ack_path(&seg.path));
        self.bytes = self.bytes.saturating_sub(seg.size);
        let mut n = 0;
        for r in seg.recs.iter().filter(|r| !r.acked && !r.in_memory) {
            self.events.dropped.push(r.seq);
            n += 1;
        }
        n
    }

    /// Flush the active segment to stable storage.
    pub fn sync(&mut self) -> io::Result<()> {
        match &self.active {
            Some((_, f)) => f.sync_data(),
            None => Ok(()),
        }
    }

    /// The server acknowledged (or rejected for good) this record: never
    /// send it again.
    pub fn ack(&mut self, r: SpoolRef) -> io::Result<()> {
        let active = self.active.as_ref().is_some_and(|(a, _)| *a == r.seg);
        let Some(seg) = self.segments.get_mut(&r.seg) else {
            return Ok(());
        };
        let Some(rec) = seg.recs.get_mut(r.index as usize) else {
            return Ok(());
        };
        rec.in_memory = false;
        if rec.acked {
            return Ok(());
        }
        rec.acked = true;
        seg.unacked -= 1;
        let entry = record::ack_entry(r.index, rec.span.crc);
        let written = if seg.unacked == 0 && !active {
            // The segment goes away now: no need to record it.
            Ok(())
        } else {
            let path = layout::ack_path(&seg.path);
            (|| {
                if seg.ack_file.is_none() {
                    seg.ack_file = Some(layout::private_file().create(true).append(true).open(&path)?);
                }
                match seg.ack_file.as_mut() {
                    Some(f) => f.write_all(&entry),
                    None => Ok(()),
                }
            })()
        };
        if written.is_ok() {
            seg.size += record::ACK_ENTRY as u64;
            self.bytes += record::ACK_ENTRY as u64;
        }
        self.collect(r.seg);
        written
    }

    /// The memory queue gave this record up (retries exhausted, close): it
    /// stays on disk, to be read back later. False when it is no longer on
    /// disk (its segment was dropped or lost): the caller must append it
    /// again.
    pub fn release(&mut self, r: SpoolRef) -> bool {
        let Some(seg) = self.segments.get_mut(&r.seg) else {
            return false;
        };
        match seg.recs.get_mut(r.index as usize) {
            Some(rec) if !rec.acked => {
                rec.in_memory = false;
                seg.not_before = Instant::now() + Duration::from_secs(1);
                true
            }
            _ => false,
        }
    }

    /// Delete a segment that is no longer written to and whose every
    /// record is acknowledged.
    fn collect(&mut self, id: u64) {
        let active = self.active.as_ref().is_some_and(|(a, _)| *a == id);
        let done = !active && self.segments.get(&id).is_some_and(|s| s.unacked == 0);
        if done {
            if let Some(seg) = self.segments.remove(&id) {
                self.discard(seg);
            }
        }
    }

    /// Read back up to `room` unacknowledged records that are not in
    /// memory. Each returned record counts as in memory.
    pub fn next_replay(&mut self, room: usize) -> Option<Vec<(SpoolRef, Record)>> {
        if room == 0 {
            return None;
        }
        let now = Instant::now();
        let id = self
            .segments
            .iter()
            .find(|(_, s)| s.not_before <= now && s.recs.iter().any(|r| !r.acked && !r.in_memory))
            .map(|(id, _)| *id)?;
        let seg = self.segments.get_mut(&id)?;
        let chosen: Vec<u32> = (0..seg.recs.len() as u32)
            .filter(|i| {
                let r = &seg.recs[*i as usize];
                !r.acked && !r.in_memory
            })
            .take(room)
            .collect();
        let (first, last) = (chosen[0] as usize, chosen[chosen.len() - 1] as usize);
        let base = seg.recs[first].span.offset;
        let end = seg.recs[last].span.range().end as u64;
        let data = match read_range(&seg.path, base, end - base) {
            Ok(d) => d,
            Err(e) => {
                let path = seg.path.display().to_string();
                seg.not_before = now + Duration::from_secs(30);
                self.warn(format!("cannot read spool segment {path}: {e}"));
                return None;
            }
        };
        let mut out = Vec::with_capacity(chosen.len());
        let mut damaged = Vec::new();
        for index in chosen {
            let rec = &mut seg.recs[index as usize];
            let mut span = rec.span;
            span.offset -= base;
            match record::read(&data, &span) {
                Some((key, body)) => {
                    rec.in_memory = true;
                    out.push((
                        SpoolRef { seg: id, index },
                        Record {
                            seq: rec.seq,
                            key: key.to_owned(),
                            body: Bytes::copy_from_slice(body),
                        },
                    ));
                }
                None => damaged.push(index),
            }
        }
        if !damaged.is_empty() {
            let path = seg.path.display().to_string();
            for index in &damaged {
                let rec = &mut seg.recs[*index as usize];
                rec.acked = true;
                self.events.dropped.push(rec.seq);
            }
            seg.unacked -= damaged.len() as u32;
            self.events.unreadable += damaged.len() as u64;
            self.warn(format!(
                "spool segment {path} changed on disk: {} record(s) no longer readable, dropped",
                damaged.len()
            ));
            self.collect(id);
        }
        if out.is_empty() {
            None
        } else {
            Some(out)
        }
    }

    /// Was this exporter's directory deleted (by a user, a cache cleaner)?
    /// Then forget it and everything in it (records only on disk are
    /// dropped, with a warning); the next write creates it again. True when
    /// it was gone.
    pub fn check_dir(&mut self) -> bool {
        let Some(own) = &self.own else {
            return false;
        };
        if !lock_file_is(&own.path, &own.lock) {
            let path = own.path.display().to_string();
            self.active = None;
            self.own = None;
            let lost: Vec<Segment> = std::mem::take(&mut self.segments).into_values().collect();
            let mut n = 0;
            for seg in lost {
                n += self.discard(seg);
            }
            self.bytes = 0;
            self.warn(format!(
                "the spool directory {path} was deleted: {n} trace(s) that were only on disk are \
                 lost; it is created again for what is still in memory"
            ));
            return true;
        }
        false
    }

    /// Stop writing; delete what is fully acknowledged; remove this
    /// exporter's directory if nothing is left in it; release the lock
    /// (the backlog stays for a later process).
    pub fn close(&mut self) {
        self.active = None;
        let ids: Vec<u64> = self.segments.keys().copied().collect();
        for id in ids {
            if let Some(seg) = self.segments.get_mut(&id) {
                seg.ack_file = None;
                for r in &mut seg.recs {
                    r.in_memory = false;
                }
            }
            self.collect(id);
        }
        if let Some(own) = self.own.take() {
            if self.segments.is_empty() {
                // The lock file goes first, while still locked: a claimer
                // that opened it meanwhile sees it is no longer the lock file.
                let _ = fs::remove_file(own.path.join(layout::LOCK_FILE));
                let _ = fs::remove_dir(&own.path);
            }
            drop(own.lock);
        }
        self.segments.clear();
    }
}

#[cfg(unix)]
fn lock_file_is(dir: &Path, lock: &DirLock) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (fs::metadata(dir.join(layout::LOCK_FILE)), lock.metadata()) {
        (Ok(now), Ok(ours)) => now.ino() == ours.ino() && now.dev() == ours.dev(),
        (Err(e), _) => !gone(&e),
        _ => true,
    }
}

#[cfg(not(unix))]
fn lock_file_is(dir: &Path, _lock: &DirLock) -> bool {
    dir.join(layout::LOCK_FILE).exists()
}

fn read_range(path: &Path, offset: u64, len: u64) -> io::Result<Vec<u8>> {
    let mut f = File::open(path)?;
    f.seek(SeekFrom::Start(offset))?;
    let mut data = Vec::with_capacity(len as usize);
    f.take(len).read_to_end(&mut data)?;
    Ok(data)
}

mod claim;
pub use claim::retarget;

#[cfg(test)]
mod tests;
