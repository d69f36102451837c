//! Evaluates the agent-tools workload in a loop, for profilers (callgrind, perf).
//! `cargo run --release -p aegis-bench --example profile -- N_AGENTS ITERATIONS [decision|full] [REQUESTS]`
//! (`decision`: the decision phase alone, as the `decision_phase` bench measures it).
#![allow(missing_docs, clippy::unwrap_used, clippy::indexing_slicing)]

use aegis_bench::{bundle, requests};
use aegis_core::{Engine, EngineOptions, Outcome};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let num = |i: usize, d: usize| args.get(i).and_then(|a| a.parse().ok()).unwrap_or(d);
    let (n, iters) = (num(0, 1000), num(1, 200_000));
    let engine = Engine::from_yaml(&bundle(n), EngineOptions::default()).unwrap();
    let reqs = requests(n, num(3, 4096), 42);
    let mut allowed = 0usize;
    if args.get(2).map(String::as_str) == Some("decision") {
        let compiled = engine.policy();
        let time = "2026-01-05T10:00:00.000Z";
        for i in 0..iters {
            if aegis_bench::decide(&compiled, &reqs[i % reqs.len()], time).0 == Some(Outcome::Allow) {
                allowed += 1;
            }
        }
    } else {
        for i in 0..iters {
            if engine.evaluate(&reqs[i % reqs.len()]).unwrap().allowed() {
                allowed += 1;
            }
        }
    }
    println!("{allowed} of {iters} allowed");
}
