//! Seeded, reproducible fault injection.
//!
//! One random draw per faultable request, in arrival order, from one seeded
//! generator: the same seed and the same request sequence give the same faults.

use std::time::Duration;

use parking_lot::Mutex;

use super::config::FaultConfig;

/// What to do with one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Pass,
    /// Close the connection without answering.
    Drop,
    /// Answer `status_5xx`.
    ServerError,
    /// Answer 429 with `Retry-After`.
    RateLimit,
}

pub struct Faults {
    pub cfg: FaultConfig,
    rng: Mutex<fastrand::Rng>,
}

impl Faults {
    pub fn new(cfg: FaultConfig) -> Self {
        let rng = match cfg.seed {
            Some(s) => fastrand::Rng::with_seed(s),
            None => fastrand::Rng::new(),
        };
        Faults {
            cfg,
            rng: Mutex::new(rng),
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
        let d = if u < c.drop {
            Decision::Drop
        } else if u < c.drop + c.error_5xx {
            Decision::ServerError
        } else if u < c.drop + c.error_5xx + c.rate_429 {
            Decision::RateLimit
        } else {
            Decision::Pass
        };
        (d, Duration::from_millis(c.latency_ms.saturating_add(jitter)))
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
        assert!(seq_a.iter().all(|(_, l)| l.as_millis() <= 3));
        let c = Faults::new(cfg(43));
        let seq_c: Vec<_> = (0..100).map(|_| c.decide()).collect();
        assert_ne!(seq_a[..100], seq_c[..]);
    }
}
