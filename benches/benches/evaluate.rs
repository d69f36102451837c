//! `evaluate` (decision + sealed, chained audit record, no sink) on the agent-tools
//! workload at 10, 1,000 and 10,000 agents; and bundle compile time.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

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

criterion_group!(benches, evaluate, compile);
criterion_main!(benches);
