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
    let baseline = rss_kib("VmRSS:");
    let start = std::time::Instant::now();
    let mut engines = Vec::new();
    for _ in 0..repeats {
        engines.push(Engine::from_yaml(&text, EngineOptions::default()).unwrap());
    }
    let built = start.elapsed();
    // Resident memory (Linux) beyond what the process held before loading (the YAML
    // text included): with the engines alive, and the peak while building them (the
    // transient parse tree included).
    let (alive, peak) = (rss_kib("VmRSS:") - baseline, rss_kib("VmHWM:") - baseline);
    let t = std::time::Instant::now();
    let node = aegis_core::yaml::parse(&text).unwrap();
    let parse_ms = t.elapsed().as_secs_f64() * 1000.0;
    drop(node);
    let t = std::time::Instant::now();
    let b = aegis_core::policy::load_yaml(&text).unwrap();
    let load_ms = t.elapsed().as_secs_f64() * 1000.0;
    let t = std::time::Instant::now();
    let c = aegis_core::internals::Compiled::new(b);
    let index_ms = t.elapsed().as_secs_f64() * 1000.0;
    drop(c);
    println!("phases: yaml parse {parse_ms:.1} ms, parse+validate+hash {load_ms:.1} ms, index {index_ms:.1} ms");
    println!(
        "{n} agents: {:.1} ms per load+compile ({} bytes of YAML)",
        built.as_secs_f64() * 1000.0 / repeats as f64,
        text.len()
    );
    println!(
        "resident beyond the baseline: {:.1} MiB with {repeats} engine(s) alive; {:.1} MiB at the peak of building them",
        alive as f64 / 1024.0,
        peak as f64 / 1024.0
    );
}

/// A `/proc/self/status` figure in KiB (0 elsewhere).
fn rss_kib(name: &str) -> i64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(name))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}
