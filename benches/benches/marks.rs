//! Session marks (§10): `evaluate` on a request whose rules read `session.marks`, with
//! 100,000 sessions holding live marks, against the same request under the same
//! rules testing a request list of the same size instead (`context.seen`). The
//! acceptance ratio is with / without ≤ 1.2.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use aegis_bench::marks::{bundle, fill, request, SESSIONS};
use aegis_core::{Engine, EngineOptions};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::time::Duration;

fn marks(c: &mut Criterion) {
    let mut g = c.benchmark_group("marks");
    g.measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    g.throughput(Throughput::Elements(1));
    for reads_marks in [false, true] {
        let o = EngineOptions { max_sessions: 2 * SESSIONS, ..EngineOptions::default() };
        let engine = Engine::from_yaml(&bundle(reads_marks), o).unwrap();
        fill(&engine, SESSIONS);
        let reqs: Vec<_> = (0..4096).map(|i| request(i * 24 % SESSIONS, reads_marks)).collect();
        let name = if reads_marks { "reads_session_marks" } else { "reads_a_request_list" };
        let mut i = 0usize;
        g.bench_with_input(BenchmarkId::new(name, SESSIONS), &SESSIONS, |b, _| {
            b.iter(|| {
                i = (i + 1) % reqs.len();
                engine.evaluate(&reqs[i]).unwrap()
            })
        });
    }
    g.finish();
}

criterion_group!(benches, marks);
criterion_main!(benches);
