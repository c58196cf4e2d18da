//! Seeded, reproducible fault injection and the capacity fault.
//!
//! One random draw per faulted request, in arrival order, from one seeded
//! generator: the same seed and the same request sequence give the same
//! faults. The capacity fault lets at most `capacity` requests be served at
//! once; beyond it a request is answered 429 or waits, as configured.

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::config::{FaultConfig, OverCapacity};

/// What to do with one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Pass,
    /// Close the connection without answering (nothing handled).
    Drop,
    /// Answer `status_5xx`.
    ServerError,
    /// Answer 429 with `Retry-After`.
    RateLimit,
    /// Handle the request, then close the connection without the answer.
    DropAnswer,
}

/// The capacity gate's verdict.
pub enum Admission {
    /// Served now (holding a slot while one is configured).
    Now(Option<OwnedSemaphorePermit>),
    /// Served after waiting for a slot.
    AfterQueueing(OwnedSemaphorePermit),
    /// Over capacity: answer 429.
    Rejected,
}

pub struct Faults {
    pub cfg: FaultConfig,
    rng: Mutex<fastrand::Rng>,
    slots: Option<Arc<Semaphore>>,
}

impl Faults {
    pub fn new(cfg: FaultConfig) -> Self {
        let rng = match cfg.seed {
            Some(s) => fastrand::Rng::with_seed(s),
            None => fastrand::Rng::new(),
        };
        let slots = (cfg.capacity > 0).then(|| {
            let n = usize::try_from(cfg.capacity)
                .unwrap_or(usize::MAX)
                .min(Semaphore::MAX_PERMITS);
            Arc::new(Semaphore::new(n))
        });
        Faults {
            cfg,
            rng: Mutex::new(rng),
            slots,
        }
    }

    /// The decision for the next request and the latency to add before it.
    pub fn decide(&self) -> (Decision, Duration) {
        let (u, jitter) = {
            let mut rng = self.rng.lock();
            let u = rng.f64();
            let jitter = if self.cfg.latency_jitter_ms > 0 {
                rng.u64(0..=self.cfg.latency_jitter_ms)
            } else {
                0
            };
            (u, jitter)
        };
        let c = &self.cfg;
        // Cumulative shares, in an order that keeps the sequences of seeds
        // configured before `drop_answer` existed.
        let d = if u < c.drop {
            Decision::Drop
        } else if u < c.drop + c.error_5xx {
            Decision::ServerError
        } else if u < c.drop + c.error_5xx + c.rate_429 {
            Decision::RateLimit
        } else if u < c.drop + c.error_5xx + c.rate_429 + c.drop_answer {
            Decision::DropAnswer
        } else {
            Decision::Pass
        };
        (d, Duration::from_millis(c.latency_ms.saturating_add(jitter)))
    }

    /// Pass the capacity gate (at once when no capacity is configured).
    pub async fn admit(&self) -> Admission {
        let Some(slots) = &self.slots else {
            return Admission::Now(None);
        };
        match slots.clone().try_acquire_owned() {
            Ok(p) => Admission::Now(Some(p)),
            Err(_) if self.cfg.over_capacity == OverCapacity::Reject => Admission::Rejected,
            // The semaphore is never closed, so waiting always ends in a slot.
            Err(_) => match slots.clone().acquire_owned().await {
                Ok(p) => Admission::AfterQueueing(p),
                Err(_) => Admission::Rejected,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(seed: u64) -> FaultConfig {
        FaultConfig {
            error_5xx: 0.1,
            rate_429: 0.05,
            drop: 0.05,
            drop_answer: 0.05,
            latency_jitter_ms: 3,
            seed: Some(seed),
            ..FaultConfig::default()
        }
    }

    #[test]
    fn seeded_is_reproducible_and_rates_hold() {
        let a = Faults::new(cfg(42));
        let b = Faults::new(cfg(42));
        let seq_a: Vec<_> = (0..10_000).map(|_| a.decide()).collect();
        let seq_b: Vec<_> = (0..10_000).map(|_| b.decide()).collect();
        assert_eq!(seq_a, seq_b);
        let count = |d: Decision| seq_a.iter().filter(|(x, _)| *x == d).count() as f64 / 10_000.0;
        assert!((count(Decision::ServerError) - 0.1).abs() < 0.02);
        assert!((count(Decision::RateLimit) - 0.05).abs() < 0.015);
        assert!((count(Decision::Drop) - 0.05).abs() < 0.015);
        assert!((count(Decision::DropAnswer) - 0.05).abs() < 0.015);
        assert!(seq_a.iter().all(|(_, l)| l.as_millis() <= 3));
        let c = Faults::new(cfg(43));
        let seq_c: Vec<_> = (0..100).map(|_| c.decide()).collect();
        assert_ne!(seq_a[..100], seq_c[..]);
    }

    #[test]
    fn capacity_rejects_or_queues() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        rt.block_on(async {
            let reject = Faults::new(FaultConfig {
                capacity: 1,
                ..FaultConfig::default()
            });
            let held = reject.admit().await;
            assert!(matches!(held, Admission::Now(Some(_))));
            assert!(matches!(reject.admit().await, Admission::Rejected));
            drop(held);
            assert!(matches!(reject.admit().await, Admission::Now(Some(_))));

            let queue = Arc::new(Faults::new(FaultConfig {
                capacity: 1,
                over_capacity: OverCapacity::Queue,
                ..FaultConfig::default()
            }));
            let held = queue.admit().await;
            let q = queue.clone();
            let waiter = tokio::spawn(async move { matches!(q.admit().await, Admission::AfterQueueing(_)) });
            tokio::task::yield_now().await;
            assert!(!waiter.is_finished());
            drop(held);
            assert!(waiter.await.unwrap());
            let free = Faults::new(FaultConfig::default());
            assert!(matches!(free.admit().await, Admission::Now(None)));
        });
    }
}
