//! Criterion benchmarks of the GCRA rate limiter's `reserve` (the critical
//! section every send takes before each attempt), alone and contended.
//!
//! Run: `cargo bench --bench limiter`.

use std::hint::black_box;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

use _core::limiter::RateLimiter;

fn bench_reserve(c: &mut Criterion) {
    let mut g = c.benchmark_group("limiter");
    g.throughput(Throughput::Elements(1));
    g.bench_function("reserve_uncontended", |b| {
        // A high rate keeps the bookkeeping realistic (the slot moves forward).
        let l = RateLimiter::new(1e9, 20);
        b.iter(|| black_box(l.reserve(Instant::now())))
    });
    g.finish();

    // `threads` threads each reserve `per_thread` slots at once on one limiter;
    // the figure is the wall time for all of them (throughput: reservations).
    let mut g = c.benchmark_group("limiter_contended");
    for threads in [2usize, 4, 8, 16] {
        let per_thread = 10_000usize;
        g.throughput(Throughput::Elements((threads * per_thread) as u64));
        g.bench_with_input(BenchmarkId::new("reserve", threads), &threads, |b, &threads| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let l = Arc::new(RateLimiter::new(50.0, 20));
                    let start = Arc::new(Barrier::new(threads + 1));
                    let handles: Vec<_> = (0..threads)
                        .map(|_| {
                            let l = Arc::clone(&l);
                            let start = Arc::clone(&start);
                            thread::spawn(move || {
                                start.wait();
                                let mut last = Duration::ZERO;
                                for _ in 0..per_thread {
                                    last = l.reserve(Instant::now());
                                }
                                black_box(last)
                            })
                        })
                        .collect();
                    start.wait();
                    let t0 = Instant::now();
                    for h in handles {
                        h.join().expect("bench thread");
                    }
                    total += t0.elapsed();
                }
                total
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench_reserve);
criterion_main!(benches);
