//! The bounded in-memory queue of serialised traces and its bookkeeping.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;

use super::spool::SpoolRef;

/// One trace waiting to be (or being) sent.
#[derive(Debug, Clone)]
pub struct Item {
    /// Enqueue order; `flush` waits for every seq below its mark.
    pub seq: u64,
    /// The `Idempotency-Key`, fixed at enqueue and kept across retries and
    /// replays.
    pub key: String,
    pub body: Bytes,
    /// Where it is on disk, when it is (durable mode, replays).
    pub spool: Option<SpoolRef>,
    /// Failed attempts so far (reset when it goes round the queue again).
    pub attempts: u32,
    /// Read back from the spool (counted in `replayed` once delivered).
    pub replayed: bool,
}

/// What the queue holds.
///
/// Every trace gets a seq when it is queued (or, for a backlog claimed
/// from the spool, when it is claimed) and stays in `outstanding` until it
/// is delivered, rejected or dropped, wherever it is meanwhile: in the
/// queue, in flight, or in the spool waiting to be read back.
#[derive(Debug, Default)]
pub struct State {
    pub queue: VecDeque<Item>,
    pub in_flight: HashMap<u64, Item>,
    /// Seqs not delivered, rejected or dropped yet (for `flush`).
    pub outstanding: BTreeSet<u64>,
    pub next_seq: u64,
    pub closed: bool,
}

impl Item {
    pub fn new(seq: u64, key: String, body: Bytes, spool: Option<SpoolRef>) -> Item {
        Item {
            seq,
            key,
            body,
            spool,
            attempts: 0,
            replayed: false,
        }
    }
}

impl State {
    /// `n` new seqs, outstanding from now on; the first of them.
    pub fn reserve(&mut self, n: u64) -> u64 {
        let first = self.next_seq;
        self.next_seq += n;
        self.outstanding.extend(first..first + n);
        first
    }

    /// A new outstanding item.
    pub fn new_item(&mut self, key: String, body: Bytes, spool: Option<SpoolRef>) -> Item {
        Item::new(self.reserve(1), key, body, spool)
    }

    /// Queue an item whose seq is outstanding.
    pub fn push(&mut self, item: Item) {
        self.queue.push_back(item);
    }

    /// Oldest waiting item, moved to the in-flight set.
    pub fn pop(&mut self) -> Option<Item> {
        let item = self.queue.pop_front()?;
        self.in_flight.insert(item.seq, item.clone());
        Some(item)
    }

    /// Forget an item entirely (delivered, failed, dropped).
    pub fn finish(&mut self, seq: u64) -> Option<Item> {
        self.outstanding.remove(&seq);
        self.in_flight.remove(&seq)
    }

    /// Every item held in memory (queued or in flight).
    pub fn items_mut(&mut self) -> impl Iterator<Item = &mut Item> {
        self.queue.iter_mut().chain(self.in_flight.values_mut())
    }

    /// Everything enqueued before `mark` is done.
    pub fn flushed(&self, mark: u64) -> bool {
        self.outstanding.first().is_none_or(|s| *s >= mark)
    }
}

/// Monotonic counters reported by `stats()`.
#[derive(Debug, Default)]
pub struct Counters {
    pub sent: AtomicU64,
    pub failed: AtomicU64,
    pub retried: AtomicU64,
    pub spooled: AtomicU64,
    pub replayed: AtomicU64,
    pub dropped: AtomicU64,
    /// Records taken over from the spool directories of exporters that
    /// are gone.
    pub claimed: AtomicU64,
    /// Damaged regions found in spool segments.
    pub unreadable: AtomicU64,
}

impl Counters {
    pub fn add(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flush_mark_tracks_oldest_outstanding() {
        let mut s = State::default();
        for i in 0..3 {
            let it = s.new_item(format!("k{i}"), Bytes::from_static(b"{}"), None);
            s.push(it);
        }
        let mark = s.next_seq;
        assert!(!s.flushed(mark));
        let a = s.pop().unwrap();
        let b = s.pop().unwrap();
        assert!(s.flushed(a.seq));
        s.finish(b.seq);
        assert!(!s.flushed(mark));
        s.finish(a.seq);
        let c = s.pop().unwrap();
        let late = s.new_item("k9".into(), Bytes::new(), None);
        s.push(late);
        s.finish(c.seq);
        // The item enqueued after the mark does not hold the flush.
        assert!(s.flushed(mark));
        assert!(!s.flushed(s.next_seq));
    }
}
