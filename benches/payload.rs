//! Criterion benchmarks of the payload writer.
//!
//! `serialize/13kb_12_steps` runs the real thing: `payload::serialize` (validation +
//! one-pass JSON writer) on the harness's 13 KB, 12-step `TaskData`, built from
//! the SDK's own dataclasses (`python/infinium/types.py`, loaded standalone, so no
//! compiled extension is needed) inside an embedded interpreter. The `encode/*`
//! benches time the pure-Rust string and float writers on the same kind of data.
//!
//! Run: `cargo bench --bench payload`. It links libpython (the crate is built
//! without pyo3's `extension-module` feature). With a pyenv or other
//! non-system Python, the loader may need the library directory:
//! `LD_LIBRARY_PATH=$(python3 -c 'import sysconfig; print(sysconfig.get_config_var("LIBDIR"))')`.

use std::ffi::CString;
use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use pyo3::prelude::*;
use pyo3::types::PyModule;

use _core::payload::{self, encode};

fn module<'py>(py: Python<'py>, src: &str, file: &str, name: &str) -> Bound<'py, PyModule> {
    let code = CString::new(src).expect("no NUL in source");
    let file = CString::new(file).expect("no NUL");
    let name = CString::new(name).expect("no NUL");
    PyModule::from_code(py, &code, &file, &name).unwrap_or_else(|e| panic!("loading {name:?}: {e}"))
}

fn bench_serialize(c: &mut Criterion) {
    Python::initialize();
    Python::attach(|py| {
        let types = module(
            py,
            include_str!("../python/infinium/types.py"),
            "infinium_types.py",
            "infinium_bench_types",
        );
        let fixture = module(
            py,
            include_str!("fixture.py"),
            "fixture.py",
            "infinium_bench_fixture",
        );
        let task = fixture
            .getattr("build_task")
            .and_then(|f| f.call1((&types, 0)))
            .expect("build the fixture TaskData");
        let body = payload::serialize(&task).expect("the fixture serialises");

        let mut g = c.benchmark_group("serialize");
        g.throughput(Throughput::Bytes(body.len() as u64));
        g.bench_function("13kb_12_steps", |b| {
            b.iter(|| payload::serialize(black_box(&task)).expect("serialises"))
        });
        g.finish();

        // What a decorated no-op produces: the fixed per-call costs.
        let tiny = module(py, TINY, "tiny.py", "infinium_bench_tiny")
            .getattr("build")
            .and_then(|f| f.call1((types,)))
            .expect("build the tiny TaskData");
        let body = payload::serialize(&tiny).expect("the tiny trace serialises");
        let mut g = c.benchmark_group("serialize");
        g.throughput(Throughput::Bytes(body.len() as u64));
        g.bench_function("tiny_noop_trace", |b| {
            b.iter(|| payload::serialize(black_box(&tiny)).expect("serialises"))
        });
        g.finish();
    });
}

/// The trace of a decorated no-op (one step, environment, summaries).
const TINY: &str = r#"
def build(t):
    return t.TaskData(
        name="noop",
        description="Traced call of noop",
        current_datetime="2026-05-09T07:35:25.123456+00:00",
        duration=0.000123,
        input_summary="args=(), kwargs={}",
        output_summary="None",
        steps=[t.ExecutionStep(step_number=1, action="call", description="noop()",
                               duration_ms=0, output_preview="None")],
        environment=t.EnvironmentContext(python_version="3.11.7", sdk_version="0.1.0"),
    )
"#;

/// Realistic strings: previews with non-ASCII text, a newline, quotes.
fn strings() -> Vec<String> {
    let lorem = "The agent reviewed the customer's ticket history, cross-checked the order \
                 database and drafted a reply — résumé attached, naïve retry avoided, \
                 “quoted” text kept as-is.\n\"step\" done\t";
    (0..60)
        .map(|i| {
            let n = [40usize, 110, 190, 300, 700][i % 5];
            lorem.chars().cycle().take(n).collect()
        })
        .collect()
}

fn bench_encode(c: &mut Criterion) {
    let texts = strings();
    let bytes: usize = texts.iter().map(String::len).sum();
    let mut g = c.benchmark_group("encode");
    g.throughput(Throughput::Bytes(bytes as u64));
    g.bench_function("write_str_60_previews", |b| {
        let mut buf = Vec::with_capacity(bytes * 2);
        b.iter(|| {
            buf.clear();
            for t in &texts {
                encode::write_str(&mut buf, black_box(t));
            }
            black_box(buf.len())
        })
    });
    g.finish();

    let floats: Vec<f64> = (0..64)
        .map(|i| match i % 4 {
            0 => 12.345 + f64::from(i),
            1 => 0.2,
            2 => 0.00123 * f64::from(i + 1),
            _ => 1e-7 * f64::from(i),
        })
        .collect();
    let mut g = c.benchmark_group("encode");
    g.throughput(Throughput::Elements(floats.len() as u64));
    g.bench_function("write_f64_64_values", |b| {
        let mut buf = Vec::with_capacity(2048);
        b.iter(|| {
            buf.clear();
            for &f in &floats {
                encode::write_f64(&mut buf, black_box(f));
            }
            black_box(buf.len())
        })
    });
    g.finish();
}

criterion_group!(benches, bench_encode, bench_serialize);
criterion_main!(benches);
