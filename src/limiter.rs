//! Client-side rate limiter: GCRA (a token bucket without the refill loop).
//!
//! One instance per client, shared by every thread and task using it. Each
//! `acquire` *reserves* its start time under a short lock and then sleeps
//! outside it, so concurrent callers are spaced exactly `1/rate` apart once
//! the burst is spent: no window of one second ever sees more than
//! `rate + burst` starts, however many threads or tasks contend.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The state is one atomic (the theoretical arrival time, in nanoseconds
/// since `base`), updated with compare-and-swap: no lock, so nothing can be
/// left locked in a child process by a `fork()` that happened mid-update.
#[derive(Debug)]
pub struct RateLimiter {
    base: Instant,
    interval: u64,
    /// How far ahead of "now" the theoretical arrival time may run: the burst.
    tolerance: u64,
    tat: AtomicU64,
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl RateLimiter {
    /// `rate` requests per second (> 0), `burst` (>= 1) back-to-back.
    pub fn new(rate: f64, burst: u32) -> Self {
        let interval = nanos(Duration::from_secs_f64(1.0 / rate)).max(1);
        RateLimiter {
            base: Instant::now(),
            interval,
            tolerance: interval.saturating_mul(u64::from(burst.saturating_sub(1))),
            tat: AtomicU64::new(0),
        }
    }

    /// Reserve the next start slot; returns how long to wait before using it.
    pub fn reserve(&self, now: Instant) -> Duration {
        let now = nanos(now.saturating_duration_since(self.base));
        let mut tat = self.tat.load(Ordering::Acquire);
        loop {
            let current = tat.max(now);
            match self.tat.compare_exchange_weak(
                tat,
                current.saturating_add(self.interval),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    let allowed_at = current.saturating_sub(self.tolerance);
                    return Duration::from_nanos(allowed_at.saturating_sub(now));
                }
                Err(actual) => tat = actual,
            }
        }
    }

    /// Wait (asynchronously) for a start slot.
    pub async fn acquire(&self) {
        let wait = self.reserve(Instant::now());
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_spaced() {
        let l = RateLimiter::new(10.0, 3);
        let t0 = Instant::now();
        let waits: Vec<Duration> = (0..6).map(|_| l.reserve(t0)).collect();
        assert_eq!(&waits[..3], &[Duration::ZERO; 3]);
        assert_eq!(waits[3], Duration::from_millis(100));
        assert_eq!(waits[4], Duration::from_millis(200));
        assert_eq!(waits[5], Duration::from_millis(300));
    }

    #[test]
    fn never_more_than_rate_plus_burst_in_any_second() {
        let l = RateLimiter::new(50.0, 20);
        let t0 = Instant::now();
        // 1000 callers all arriving at once: their start times.
        let mut starts: Vec<Duration> = (0..1000).map(|_| l.reserve(t0)).collect();
        starts.sort();
        for (i, s) in starts.iter().enumerate() {
            let in_window = starts[i..]
                .iter()
                .take_while(|t| **t < *s + Duration::from_secs(1))
                .count();
            assert!(in_window <= 70, "{in_window} starts in the window at {s:?}");
        }
    }

    #[test]
    fn idle_time_refills_the_burst() {
        let l = RateLimiter::new(10.0, 2);
        let t0 = Instant::now();
        assert!(l.reserve(t0).is_zero());
        assert!(l.reserve(t0).is_zero());
        assert!(!l.reserve(t0).is_zero());
        let later = t0 + Duration::from_secs(5);
        assert!(l.reserve(later).is_zero());
        assert!(l.reserve(later).is_zero());
    }
}
