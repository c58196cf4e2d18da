//! The background tasks of an exporter: the dispatcher (sends with bounded
//! concurrency) and the replayer (reads the spool back into the queue).
//!
//! Neither ever calls into Python, and both run under `catch_unwind`, so a
//! bug cannot take a runtime thread down with a panic.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::Method;
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::queue::{Counters, Item};
use super::Inner;
use crate::error::Error;
use crate::transport::{Auth, Request};

/// Consecutive retryable failures (across all traces) after which the
/// server counts as down: the whole queue pauses, backing off up to a cap,
/// and traces stop using up their own retries.
pub const DOWN_AFTER: u32 = 3;
/// Longest pause of the whole queue while the server is down: the backoff
/// base doubled at most this many times, and never more than `MAX_PAUSE`.
pub const MAX_PAUSE_DOUBLINGS: u32 = 5;
pub const MAX_PAUSE: f64 = 30.0;

/// How a send ended.
pub enum Done {
    Sent,
    /// Rejected for good (4xx other than 429).
    Failed(String),
    /// Retries used up while the server was not known to be down.
    Exhausted,
}

async fn stopped(stop: &mut watch::Receiver<bool>) {
    while !*stop.borrow_and_update() {
        if stop.changed().await.is_err() {
            return;
        }
    }
}

pub async fn dispatcher(inner: Arc<Inner>, mut stop: watch::Receiver<bool>) {
    let mut set: JoinSet<()> = JoinSet::new();
    loop {
        if *stop.borrow() {
            break;
        }
        if set.len() < inner.concurrency {
            if let Some(item) = inner.state.lock().pop() {
                let inner2 = inner.clone();
                set.spawn(send(inner2, item));
                continue;
            }
        }
        let work = inner.work.notified();
        tokio::select! {
            _ = stopped(&mut stop) => break,
            Some(_) = set.join_next(), if !set.is_empty() => {}
            _ = work, if set.len() < inner.concurrency => {}
        }
    }
    // Sends still running are abandoned: their traces stay in the in-flight
    // set, which `close` spools (the key makes a duplicate harmless).
    set.abort_all();
    while set.join_next().await.is_some() {}
}

/// Sleep until the queue-wide pause (429, server down) is over.
async fn wait_pause(inner: &Inner) {
    loop {
        let until = *inner.pause_until.lock();
        match until {
            Some(t) if t > Instant::now() => tokio::time::sleep_until(t.into()).await,
            _ => return,
        }
    }
}

fn pause_for(inner: &Inner, secs: f64) {
    let until = Instant::now() + Duration::from_secs_f64(secs.clamp(0.0, 3600.0));
    let mut p = inner.pause_until.lock();
    if p.is_none_or(|t| t < until) {
        *p = Some(until);
    }
}

async fn send(inner: Arc<Inner>, item: Item) {
    let t = &inner.transport;
    let req = Request {
        method: Method::POST,
        path: inner.path.clone(),
        auth: Auth::Agent,
        body: Some(item.body.clone()),
        idempotency_key: Some(item.key.clone()),
    };
    let base = t.cfg.backoff_base.max(0.0);
    let mut attempts = item.attempts;
    let done = loop {
        wait_pause(&inner).await;
        if let Some(l) = &t.limiter {
            l.acquire().await;
        }
        match t.attempt_status(&req).await {
            Ok(_) => {
                inner.consecutive_failures.store(0, Ordering::Relaxed);
                break Done::Sent;
            }
            Err(Error::RateLimited { retry_after, .. }) => {
                // A pause for everyone, never shorter than the backoff base
                // (a `Retry-After: 0` must not make a hot loop).
                Counters::add(&inner.counters.retried, 1);
                let wait = (retry_after as f64).min(t.cfg.max_retry_after).max(base);
                pause_for(&inner, wait);
            }
            // A configuration the request cannot be made with (a base URL
            // that is not http(s), no usable TLS setup) is not the trace's
            // fault either: kept and retried as in an outage, never dropped.
            Err(e) if e.is_retryable() || matches!(e, Error::Config { .. }) => {
                Counters::add(&inner.counters.retried, 1);
                attempts += 1;
                let n = inner.consecutive_failures.fetch_add(1, Ordering::Relaxed) + 1;
                if n >= DOWN_AFTER {
                    let exp = (n - DOWN_AFTER).min(MAX_PAUSE_DOUBLINGS) as i32;
                    let pause = (base * 2f64.powi(exp)).min(MAX_PAUSE);
                    let jitter = pause * 0.25 * fastrand::f64();
                    pause_for(&inner, pause + jitter);
                    continue;
                }
                if attempts > t.cfg.max_retries {
                    break Done::Exhausted;
                }
                tokio::time::sleep(t.backoff(attempts - 1)).await;
            }
            Err(e) => break Done::Failed(e.message()),
        }
    };
    inner.complete(item.seq, done);
}

/// How often the replayer looks for the backlog of exporters that are gone,
/// and checks that its spool directory still exists.
const CLAIM_EVERY: Duration = Duration::from_secs(2);
const CHECK_EVERY: Duration = Duration::from_secs(1);

/// Feed the spool's backlog into the queue whenever it has room; now and
/// then claim the directories of exporters that are gone and check that
/// the spool directory was not deleted.
pub async fn replayer(inner: Arc<Inner>, mut stop: watch::Receiver<bool>) {
    let mut last_claim = Instant::now();
    let mut last_check = Instant::now();
    loop {
        if *stop.borrow() {
            return;
        }
        let claim = last_claim.elapsed() >= CLAIM_EVERY;
        let check = last_check.elapsed() >= CHECK_EVERY;
        if claim || check {
            if claim {
                last_claim = Instant::now();
            }
            if check {
                last_check = Instant::now();
            }
            let inner2 = inner.clone();
            let _ = tokio::task::spawn_blocking(move || {
                if check {
                    inner2.check_spool_dir();
                }
                if claim {
                    inner2.claim();
                }
            })
            .await;
        }
        if inner.replay_some() {
            continue;
        }
        // With a backlog, look again soon (room in the queue, records whose
        // retry pause is over); without, when something is spooled.
        let wait = if inner.backlog() > 0 {
            Duration::from_millis(100)
        } else {
            CHECK_EVERY
        };
        tokio::select! {
            _ = stopped(&mut stop) => return,
            _ = inner.spooled.notified() => {}
            _ = tokio::time::sleep(wait) => {}
        }
    }
}
