//! Loading hostile bundles is bounded (SPEC §9a): a 16 MiB file of distinct keys, the
//! same with one duplicate key at the end (the review's quadratic case), and an alias
//! bomb. Each load fails (or succeeds) as a whole; the figure is how long it takes.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use aegis_core::{Engine, EngineOptions};
use criterion::{criterion_group, criterion_main, Criterion};
use std::time::Duration;

/// A policy file of about `bytes` bytes: `aegis: 1` and one mapping of distinct keys.
fn distinct_keys(bytes: usize, duplicate: bool) -> String {
    let mut s = String::with_capacity(bytes + 64);
    s.push_str("aegis: 1\nextra:\n");
    let mut i = 0u64;
    while s.len() < bytes {
        s.push_str("  key-");
        s.push_str(&i.to_string());
        s.push_str(": 1\n");
        i += 1;
    }
    if duplicate {
        s.push_str("  key-7: 2\n");
    }
    s
}

/// A 1.2 KB file that would expand to about 10 MB (and far more with another level).
fn alias_bomb() -> String {
    let x = "x".repeat(1000);
    let a1 = vec!["*s0"; 100].join(", ");
    let a2 = vec!["*a1"; 100].join(", ");
    let a3 = vec!["*a2"; 100].join(", ");
    format!("aegis: 1\ns: &s0 \"{x}\"\na1: &a1 [{a1}]\na2: &a2 [{a2}]\na3: [{a3}]\n")
}

fn load(c: &mut Criterion) {
    let mut g = c.benchmark_group("load");
    g.sample_size(10).measurement_time(Duration::from_secs(20)).warm_up_time(Duration::from_secs(1));
    for (name, text) in [
        ("16MiB_distinct_keys", distinct_keys(16 << 20, false)),
        ("400k_keys_one_duplicate", distinct_keys(400_000 * 12, true)),
        ("alias_bomb", alias_bomb()),
    ] {
        g.bench_function(name, |b| {
            b.iter(|| {
                let r = Engine::from_yaml(&text, EngineOptions::default());
                assert!(r.is_err(), "{name} must be a load error");
            })
        });
    }
    g.finish();
}

criterion_group!(benches, load);
criterion_main!(benches);
