//! `evaluate` (decision + sealed, chained audit record, no sink) on the agent-tools
//! workload at 10, 1,000 and 10,000 agents; and bundle compile time.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use aegis_bench::{bundle, requests};
use aegis_core::{Engine, EngineOptions};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::time::Duration;

fn evaluate(c: &mut Criterion) {
    let mut g = c.benchmark_group("evaluate");
    g.measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    g.throughput(Throughput::Elements(1));
    for n in [10usize, 1_000, 10_000] {
        let engine = Engine::from_yaml(&bundle(n), EngineOptions::default()).unwrap();
        let reqs = requests(n, 4096, 42);
        let mut i = 0usize;
        g.bench_with_input(BenchmarkId::new("with_audit_record", n), &n, |b, _| {
            b.iter(|| {
                i = (i + 1) % reqs.len();
                engine.evaluate(&reqs[i]).unwrap()
            })
        });
    }
    g.finish();
}

/// The decision phase alone: index lookup, every candidate's selectors and condition
/// (three-valued), and combining — no kill switch check, limits, record or hashing.
fn decision_phase(c: &mut Criterion) {
    let mut g = c.benchmark_group("decision_phase");
    g.measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    for n in [10usize, 1_000, 10_000] {
        let engine = Engine::from_yaml(&bundle(n), EngineOptions::default()).unwrap();
        let compiled = engine.policy();
        let reqs = requests(n, 4096, 42);
        let time = "2026-01-05T10:00:00.000Z";
        let mut i = 0usize;
        g.bench_with_input(BenchmarkId::new("rules_only", n), &n, |b, _| {
            b.iter(|| {
                i = (i + 1) % reqs.len();
                aegis_bench::decide(&compiled, &reqs[i], time)
            })
        });
    }
    g.finish();
}

/// Throughput of 1 and 2 threads sharing one engine (audit chain on, no sink).
fn shared_engine(c: &mut Criterion) {
    use std::sync::Arc;
    let mut g = c.benchmark_group("shared_engine");
    g.measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1)).sample_size(20);
    let engine = Arc::new(Engine::from_yaml(&bundle(1_000), EngineOptions::default()).unwrap());
    let reqs = Arc::new(requests(1_000, 4096, 9));
    for threads in [1usize, 2] {
        g.throughput(Throughput::Elements(threads as u64));
        g.bench_function(BenchmarkId::new("evaluate", format!("{threads}-thread")), |b| {
            b.iter_custom(|iters| threaded(&engine, &reqs, threads, iters))
        });
    }
    g.finish();
}

fn compile(c: &mut Criterion) {
    let mut g = c.benchmark_group("compile");
    g.sample_size(10).measurement_time(Duration::from_secs(5));
    for n in [1_000usize, 10_000] {
        let text = bundle(n);
        g.bench_with_input(BenchmarkId::new("load_and_compile", n), &n, |b, _| {
            b.iter(|| Engine::from_yaml(&text, EngineOptions::default()).unwrap())
        });
    }
    g.finish();
}

/// `evaluate` + durable append to an audit file, for each fsync policy, from 1 and
/// from 2 threads (time per evaluation; with 2 threads, the wall time of 2 × iters).
fn audit_file(c: &mut Criterion) {
    use aegis_core::audit::{FileSink, Fsync};
    use std::sync::Arc;
    let mut g = c.benchmark_group("audit_file");
    g.measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1)).sample_size(20);
    let text = bundle(100);
    let reqs = Arc::new(requests(100, 4096, 7));
    let dir = std::env::temp_dir().join(format!("aegis-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (name, fsync) in [("always", Fsync::Always), ("batch", Fsync::Batch), ("never", Fsync::Never)] {
        for threads in [1usize, 2] {
            let path = dir.join(format!("{name}-{threads}.jsonl"));
            let _ = std::fs::remove_file(&path);
            let mut o = EngineOptions::default();
            o.sinks.push(Box::new(FileSink::open(&path, fsync).unwrap()));
            let engine = Arc::new(Engine::from_yaml(&text, o).unwrap());
            g.throughput(Throughput::Elements(threads as u64));
            g.bench_function(BenchmarkId::new(name, format!("{threads}-thread")), |b| {
                b.iter_custom(|iters| threaded(&engine, &reqs, threads, iters))
            });
        }
    }
    g.finish();
    let _ = std::fs::remove_dir_all(&dir);
}

/// Wall time for `threads` threads each evaluating `iters` requests on one engine.
fn threaded(
    engine: &std::sync::Arc<Engine>,
    reqs: &std::sync::Arc<Vec<aegis_core::Request>>,
    threads: usize,
    iters: u64,
) -> Duration {
    let start = std::time::Instant::now();
    let hs: Vec<_> = (0..threads)
        .map(|t| {
            let (e, r) = (engine.clone(), reqs.clone());
            std::thread::spawn(move || {
                for i in 0..iters as usize {
                    e.evaluate(&r[(i * 2 + t) % r.len()]).unwrap();
                }
            })
        })
        .collect();
    for h in hs {
        h.join().unwrap();
    }
    start.elapsed()
}

criterion_group!(benches, evaluate, decision_phase, shared_engine, compile, audit_file);
criterion_main!(benches);
