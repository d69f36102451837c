//! Loads and compiles the agent-tools bundle, for profilers and memory measurement.
//! `cargo run --release -p aegis-bench --example load -- N_AGENTS REPEATS`
#![allow(missing_docs, clippy::unwrap_used)]

use aegis_bench::bundle;
use aegis_core::{Engine, EngineOptions};

fn main() {
    let args: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let n = args.first().copied().unwrap_or(10_000);
    let repeats = args.get(1).copied().unwrap_or(1);
    let text = bundle(n);
    let start = std::time::Instant::now();
    let mut engines = Vec::new();
    for _ in 0..repeats {
        engines.push(Engine::from_yaml(&text, EngineOptions::default()).unwrap());
    }
    let t = std::time::Instant::now();
    let node = aegis_core::yaml::parse(&text).unwrap();
    let parse_ms = t.elapsed().as_secs_f64() * 1000.0;
    drop(node);
    let t = std::time::Instant::now();
    let b = aegis_core::policy::load_yaml(&text).unwrap();
    let load_ms = t.elapsed().as_secs_f64() * 1000.0;
    let t = std::time::Instant::now();
    let c = aegis_core::engine::Compiled::new(b);
    let index_ms = t.elapsed().as_secs_f64() * 1000.0;
    drop(c);
    println!("phases: yaml parse {parse_ms:.1} ms, parse+validate+hash {load_ms:.1} ms, index {index_ms:.1} ms");
    println!(
        "{n} agents: {:.1} ms per load+compile ({} bytes of YAML)",
        start.elapsed().as_secs_f64() * 1000.0 / repeats as f64,
        text.len()
    );
}
