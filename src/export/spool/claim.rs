//! Taking over the backlog of exporters that are gone, and reading
//! segments back in.

use std::collections::BTreeMap;
use std::fs::{self, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use super::layout::{self, TargetInfo};
use super::lock::DirLock;
use super::record;
use super::{gone, Rec, Segment, Spool};

/// A half set-up directory (its creator died between `mkdir` and `rename`)
/// is taken for abandoned after this long.
const STALE_NEW_DIR: Duration = Duration::from_secs(600);

type SegmentFiles = BTreeMap<u64, (Option<PathBuf>, Option<PathBuf>)>;

/// The segment files of a directory: number -> (log, ack).
fn segment_files(dir: &Path) -> SegmentFiles {
    let mut out = SegmentFiles::new();
    for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
        let name = entry.file_name();
        if let Some((n, ack)) = name.to_str().and_then(layout::segment_number) {
            let slot = out.entry(n).or_default();
            if ack {
                slot.1 = Some(entry.path());
            } else {
                slot.0 = Some(entry.path());
            }
        }
    }
    out
}

fn is_stale(dir: &Path) -> bool {
    fs::metadata(dir)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| SystemTime::now().duration_since(t).ok())
        .is_some_and(|age| age >= STALE_NEW_DIR)
}

impl Spool {
    /// Claim the directories of this target's exporters that are gone (the
    /// lock is taken before anything is read: two claimers never share a
    /// directory). Their segments move into this exporter's directory.
    /// `alloc(n)` reserves `n` sequence numbers for the claimed records and
    /// returns the first.
    pub fn claim(&mut self, alloc: &mut dyn FnMut(u64) -> u64) {
        let entries = match fs::read_dir(&self.target) {
            Ok(e) => e,
            Err(e) if gone(&e) => return,
            Err(e) => {
                let t = self.target.display().to_string();
                self.warn(format!("cannot read the spool folder {t}: {e}"));
                return;
            }
        };
        let own = self.own.as_ref().map(|o| o.path.clone());
        let mut dirs: Vec<PathBuf> = entries
            .flatten()
            .filter(|e| {
                let name = e.file_name();
                let Some(text) = name.to_str() else {
                    return false;
                };
                layout::is_exporter_dir(text) || (layout::is_new_dir(text) && is_stale(&e.path()))
            })
            .map(|e| e.path())
            .filter(|p| Some(p) != own.as_ref())
            .collect();
        dirs.sort();
        for dir in dirs {
            if !self.claim_dir(&dir, alloc) {
                break;
            }
        }
    }

    /// Claim one directory if its owner is gone; false: stop claiming (no
    /// directory of our own to move its backlog into).
    fn claim_dir(&mut self, dir: &Path, alloc: &mut dyn FnMut(u64) -> u64) -> bool {
        let lock = match DirLock::try_take(&dir.join(layout::LOCK_FILE)) {
            Ok(Some(l)) => l,
            Ok(None) => return true,
            Err(e) if gone(&e) => return true,
            Err(e) => {
                self.warn(format!("cannot lock spool directory {}: {e}", dir.display()));
                return true;
            }
        };
        let files = segment_files(dir);
        if files.values().any(|(log, _)| log.is_some()) {
            if let Err(e) = self.create_own() {
                self.warn(format!(
                    "cannot take over the spool backlog in {}: {e}",
                    dir.display()
                ));
                return false;
            }
        }
        let mut complete = true;
        for (log, ack) in files.into_values() {
            let Some(log) = log else {
                // An acknowledgement file without its segment.
                if let Some(ack) = ack {
                    let _ = fs::remove_file(ack);
                }
                continue;
            };
            match self.move_in(&log, ack.as_deref()) {
                Ok(path) => self.load_segment(path, alloc),
                Err(e) => {
                    self.warn(format!("cannot take over spool segment {}: {e}", log.display()));
                    complete = false;
                    break;
                }
            }
        }
        if complete {
            // The lock file goes first, while still locked (see `close`).
            let _ = fs::remove_file(dir.join(layout::LOCK_FILE));
            let _ = fs::remove_dir(dir);
        }
        drop(lock);
        true
    }

    /// Rename a segment (acknowledgements first) into our directory.
    fn move_in(&mut self, log: &Path, ack: Option<&Path>) -> io::Result<PathBuf> {
        let own = self.create_own()?.to_owned();
        let new_log = loop {
            let p = layout::segment_path(&own, self.next_file);
            self.next_file += 1;
            if !p.exists() && !layout::ack_path(&p).exists() {
                break p;
            }
        };
        let new_ack = layout::ack_path(&new_log);
        if let Some(a) = ack {
            fs::rename(a, &new_ack)?;
        }
        if let Err(e) = fs::rename(log, &new_log) {
            if let Some(a) = ack {
                let _ = fs::rename(&new_ack, a);
            }
            return Err(e);
        }
        Ok(new_log)
    }

    /// Index a segment of our directory: its intact records, which of them
    /// are acknowledged; damaged bytes and acknowledgement entries that
    /// name no record are counted and reported.
    pub(super) fn load_segment(&mut self, path: PathBuf, alloc: &mut dyn FnMut(u64) -> u64) {
        let data = match fs::read(&path) {
            Ok(d) => d,
            Err(e) => {
                self.warn(format!(
                    "cannot read spool segment {}: {e}; it stays on disk",
                    path.display()
                ));
                return;
            }
        };
        let scan = record::scan(&data);
        if !scan.unreadable.is_empty() {
            self.events.unreadable += scan.unreadable.len() as u64;
            self.warn(format!(
                "spool segment {}: {} damaged region(s) ({} byte(s)) cannot be read and are \
                 skipped (at least one trace each); its {} intact record(s) are kept",
                path.display(),
                scan.unreadable.len(),
                scan.unreadable_bytes(),
                scan.records.len()
            ));
        }
        let ack_path = layout::ack_path(&path);
        let ack_data = match fs::read(&ack_path) {
            Ok(d) => d,
            Err(e) if gone(&e) => Vec::new(),
            Err(e) => {
                self.warn(format!(
                    "cannot read {}: {e}; its records are sent again",
                    ack_path.display()
                ));
                Vec::new()
            }
        };
        let acks = record::decode_acks(&ack_data, &scan.records);
        if acks.garbage > 0 {
            self.warn(format!(
                "{}: {} entr(ies) name no record of the segment and are ignored (the records \
                 they may have meant are sent again; the idempotency key makes that harmless)",
                ack_path.display(),
                acks.garbage
            ));
        }
        let mut ack_len = ack_data.len() as u64;
        if acks.torn > 0 {
            // A torn append: cut it so that new entries line up.
            ack_len -= acks.torn as u64;
            let cut = OpenOptions::new()
                .write(true)
                .open(&ack_path)
                .and_then(|f| f.set_len(ack_len));
            if cut.is_err() {
                ack_len += acks.torn as u64;
            }
        }
        let mut acked = vec![false; scan.records.len()];
        for i in acks.acked {
            acked[i as usize] = true;
        }
        let unacked = acked.iter().filter(|a| !**a).count() as u64;
        let mut next = if unacked > 0 { alloc(unacked) } else { 0 };
        let recs = scan
            .records
            .into_iter()
            .zip(acked)
            .map(|(span, acked)| {
                let seq = if acked {
                    u64::MAX
                } else {
                    next += 1;
                    next - 1
                };
                Rec {
                    span,
                    seq,
                    acked,
                    in_memory: false,
                }
            })
            .collect();
        let size = data.len() as u64 + ack_len;
        self.bytes += size;
        self.events.claimed += unacked;
        let id = self.next_seg;
        self.next_seg += 1;
        self.segments.insert(
            id,
            Segment {
                path,
                recs,
                unacked: unacked as u32,
                ack_file: None,
                log_len: data.len() as u64,
                size,
                not_before: Instant::now(),
            },
        );
        self.collect(id);
    }
}

/// Move the backlog of the target folder `src` (the directories of
/// exporters that are gone) to the target of `agent` at `base_url` under
/// `root`, for `infinium replay --to`. Returns how many directories moved.
pub fn retarget(src: &Path, root: &Path, agent: &str, base_url: &str) -> io::Result<u64> {
    let dst = root.join(layout::target_name(agent, base_url));
    if dst == src {
        return Ok(0);
    }
    layout::ensure_target(&dst, &TargetInfo::new(agent, base_url))?;
    let mut moved = 0;
    for entry in fs::read_dir(src)?.flatten() {
        let name = entry.file_name();
        if !name.to_str().is_some_and(layout::is_exporter_dir) || dst.join(&name).exists() {
            continue;
        }
        let path = entry.path();
        // Locked while it moves: its lock file moves with it, so a claimer
        // that opened it at the old place sees that it no longer is there.
        if let Ok(Some(lock)) = DirLock::try_take(&path.join(layout::LOCK_FILE)) {
            if fs::rename(&path, dst.join(&name)).is_ok() {
                moved += 1;
            }
            drop(lock);
        }
    }
    Ok(moved)
}
