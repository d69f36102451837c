//! Evaluates the agent-tools workload in a loop, for profilers (callgrind, perf).
//! `cargo run --release -p aegis-bench --example profile -- N_AGENTS ITERATIONS`
#![allow(missing_docs, clippy::unwrap_used, clippy::indexing_slicing)]

use aegis_bench::{bundle, requests};
use aegis_core::{Engine, EngineOptions};

fn main() {
    let args: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let n = args.first().copied().unwrap_or(1000);
    let iters = args.get(1).copied().unwrap_or(200_000);
    let engine = Engine::from_yaml(&bundle(n), EngineOptions::default()).unwrap();
    let reqs = requests(n, 4096, 42);
    let mut allowed = 0usize;
    for i in 0..iters {
        if engine.evaluate(&reqs[i % reqs.len()]).unwrap().allowed() {
            allowed += 1;
        }
    }
    println!("{allowed} of {iters} allowed");
}
