//! What an exporter does with its spool: durable appends, overflow and
//! retries used up (to disk), close (what is left, to disk), claims of the
//! backlog of exporters that are gone, replay (disk back into the queue),
//! and a spool directory deleted under it.
//!
//! Everything the spool reports (warnings, records it dropped, damaged
//! regions, claimed records) is settled here after each call, so that a
//! dropped record's trace stops holding `flush` and is counted.

use bytes::Bytes;

use super::queue::{Counters, Item};
use super::spool::{layout, Events, Spool};
use super::{closed, ExportConfig, Inner, SpoolConfig};
use crate::error::Error;

/// The spool of a new exporter. Only an explicit `spool_dir` must exist (or
/// be creatable) now, and with `durable=True` this exporter's directory is
/// created now: both are configuration errors otherwise. The default
/// directory is created when something is first written to it.
pub(super) fn open_spool(cfg: &ExportConfig, sc: &SpoolConfig) -> Result<Spool, Error> {
    let per_segment = (cfg.capacity / 2).clamp(1, 1024) as u32;
    let mut spool = Spool::new(
        &sc.root,
        &cfg.agent,
        &cfg.transport.cfg.base_url,
        per_segment,
        sc.max_bytes,
    );
    let unusable = |e: std::io::Error| Error::Config {
        message: if sc.default {
            format!(
                "durable=True needs a writable spool directory, and the default one ({}) is not: {e}; \
                 pass spool_dir=",
                sc.root.display()
            )
        } else {
            format!("cannot use spool_dir {}: {e}", sc.root.display())
        },
        key: Some("spool_dir".into()),
    };
    if !sc.default {
        layout::create_private_dir(&sc.root).map_err(unusable)?;
    }
    if cfg.durable {
        spool.create_own().map_err(unusable)?;
    }
    Ok(spool)
}

impl Inner {
    /// Run `f` on the spool (None without one), then settle what it reports.
    pub(super) fn with_spool<R>(&self, f: impl FnOnce(&mut Spool) -> R) -> Option<R> {
        let mut sp = self.spool.as_ref()?.lock();
        let r = f(&mut sp);
        let events = sp.take_events();
        drop(sp);
        self.settle(events);
        Some(r)
    }

    fn settle(&self, ev: Events) {
        for w in ev.warnings {
            self.warn(w);
        }
        Counters::add(&self.counters.unreadable, ev.unreadable);
        Counters::add(&self.counters.claimed, ev.claimed);
        if !ev.dropped.is_empty() {
            let mut st = self.state.lock();
            for seq in &ev.dropped {
                st.outstanding.remove(seq);
            }
            drop(st);
            // The spool warned already, with the reason.
            Counters::add(&self.counters.dropped, ev.dropped.len() as u64);
            self.progress.notify_waiters();
        }
    }

    /// Durable mode: on disk before the call returns, then queued.
    pub(super) fn enqueue_durable(&self, key: String, body: Bytes) -> Result<String, Error> {
        let seq = {
            let mut st = self.state.lock();
            if st.closed {
                return Err(closed());
            }
            st.reserve(1)
        };
        let on_disk = match self.with_spool(|sp| sp.append(&key, &body, seq, true)) {
            Some(Ok(r)) => Some(r),
            Some(Err(e)) => {
                self.warn(format!(
                    "cannot write the spool, keeping the trace in memory only: {e}"
                ));
                None
            }
            None => None,
        };
        let mut st = self.state.lock();
        if st.closed || st.queue.len() >= self.capacity {
            // Closed meanwhile (it is on disk for a later process, or
            // dropped), or full: overflow stays on disk for the replayer.
            let was_closed = st.closed;
            drop(st);
            self.spill(Item::new(seq, key.clone(), body, on_disk));
            return if was_closed { Err(closed()) } else { Ok(key) };
        }
        st.push(Item::new(seq, key.clone(), body, on_disk));
        drop(st);
        self.work.notify_one();
        Ok(key)
    }

    /// Leave a trace to the spool (it stays outstanding until read back and
    /// delivered): one already on disk is released for the replayer, any
    /// other is appended. Counted as spooled, or, when the spool cannot
    /// take it, as dropped (with a rate-limited warning).
    pub(super) fn spill(&self, item: Item) {
        if let Err(e) = self.put_on_disk(&item) {
            self.state.lock().outstanding.remove(&item.seq);
            self.note_dropped(1, format!("the spool cannot take them: {e}"));
            self.progress.notify_waiters();
        }
    }

    fn put_on_disk(&self, item: &Item) -> Result<(), String> {
        let r = self.with_spool(|sp| {
            if let Some(r) = item.spool {
                if sp.release(r) {
                    return Ok(());
                }
            }
            sp.append(&item.key, &item.body, item.seq, false).map(|_| ())
        });
        match r {
            Some(Ok(())) => {
                Counters::add(&self.counters.spooled, 1);
                self.spooled.notify_one();
                Ok(())
            }
            Some(Err(e)) => Err(e.to_string()),
            None => Err("no spool".into()),
        }
    }

    /// At close: what is still in memory goes to the spool (or is lost,
    /// with one warning saying how many and why).
    pub(super) fn leave(&self, items: Vec<Item>) {
        let total = items.len();
        if self.spool.is_none() {
            self.report_dropped();
            if total > 0 {
                Counters::add(&self.counters.dropped, total as u64);
                self.warn(format!(
                    "background export closed with {total} trace(s) undelivered and the spool \
                     off (spool_dir=False): they are lost"
                ));
            }
            return;
        }
        let mut lost = 0;
        let mut why = String::new();
        for item in &items {
            if let Err(e) = self.put_on_disk(item) {
                lost += 1;
                why = e;
            }
        }
        let (own, target) = self
            .with_spool(|sp| {
                if let Err(e) = sp.sync() {
                    self.warn(format!("cannot sync the spool: {e}"));
                }
                let own = sp.own_dir().map(|p| p.display().to_string());
                sp.close();
                (own, sp.target_dir().display().to_string())
            })
            .unwrap_or_default();
        self.report_dropped();
        if lost > 0 {
            Counters::add(&self.counters.dropped, lost as u64);
            self.warn(format!(
                "background export closed with {total} trace(s) undelivered; {lost} of them are \
                 lost: the spool at {target} cannot take them: {why}"
            ));
        } else if total > 0 {
            self.warn(format!(
                "background export closed with {total} trace(s) undelivered: saved in the spool \
                 ({}); the next client for this agent and base URL, or `infinium replay`, \
                 delivers them",
                own.unwrap_or(target)
            ));
        }
    }

    /// Take over the backlog of this target's exporters that are gone.
    pub(super) fn claim(&self) {
        self.with_spool(|sp| sp.claim(&mut |n| self.state.lock().reserve(n)));
    }

    /// Was the spool directory deleted? Then what is held in memory with a
    /// place on disk (durable mode) is appended again to a new one.
    pub(super) fn check_spool_dir(&self) {
        let Some(spool) = &self.spool else {
            return;
        };
        let mut sp = spool.lock();
        if sp.check_dir() {
            let mut st = self.state.lock();
            for item in st.items_mut() {
                if item.spool.is_some() {
                    item.spool = sp.append(&item.key, &item.body, item.seq, true).ok();
                }
            }
        }
        let events = sp.take_events();
        drop(sp);
        self.settle(events);
    }

    /// Move some spool backlog into the queue; false when there was none
    /// (or no room).
    pub(super) fn replay_some(&self) -> bool {
        let room = {
            let st = self.state.lock();
            if st.closed {
                return false;
            }
            self.capacity.saturating_sub(st.queue.len())
        };
        let Some(Some(batch)) = self.with_spool(|sp| sp.next_replay(room.min(1024))) else {
            return false;
        };
        let mut st = self.state.lock();
        // The queue may have filled meanwhile: what does not fit (all of it
        // once closed) goes back.
        let room = if st.closed {
            0
        } else {
            self.capacity.saturating_sub(st.queue.len())
        };
        let mut batch = batch.into_iter();
        for (r, rec) in batch.by_ref().take(room) {
            let mut item = Item::new(rec.seq, rec.key, rec.body, Some(r));
            item.replayed = true;
            st.push(item);
        }
        drop(st);
        let back: Vec<_> = batch.map(|(r, _)| r).collect();
        if !back.is_empty() {
            self.with_spool(|sp| {
                for r in back {
                    sp.release(r);
                }
            });
        }
        self.work.notify_one();
        room > 0
    }

    /// Records on disk not acknowledged yet.
    pub(super) fn backlog(&self) -> u64 {
        self.spool.as_ref().map_or(0, |s| s.lock().backlog())
    }
}
