//! Aegis vs Cedar vs Regorus on the agent-tools workload at N = 10, 100, 1,000 and
//! 10,000 agents (issue 10).
//!
//! 1. Builds every engine for every N and pre-generates 4,096 requests per N.
//! 2. Checks that every engine returns Aegis's three-way decision on every request;
//!    on any disagreement it prints them and exits 1 *before timing anything*.
//! 3. `decide/<engine>/<N>`: time per decision, cycling through the requests.
//! 4. `load/<engine>/<N>`: load + compile time at N = 1,000 and 10,000.
//! 5. Prints a table of medians with ratios vs Aegis from this run (markdown).
//!
//! `cargo bench --manifest-path benches/compare/Cargo.toml` (from the repository root).
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use aegis_compare::*;
use criterion::{black_box, BenchmarkId, Criterion};
use std::str::FromStr;
use std::time::Duration;

const NS: [usize; 4] = [10, 100, 1_000, 10_000];
const LOAD_NS: [usize; 2] = [1_000, 10_000];
const REQUESTS: usize = 4096;
const SEED: u64 = 42;

static STARTED: std::sync::OnceLock<std::time::SystemTime> = std::sync::OnceLock::new();

const DECIDE: [&str; 6] =
    ["aegis_evaluate", "cedar", "cedar_sliced", "regorus_interp", "regorus_compiled", "regorus_rvm"];

fn decide(c: &mut Criterion, fixtures: &mut [Fixture]) {
    let mut g = c.benchmark_group("decide");
    g.warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(2)).sample_size(20);
    for f in fixtures.iter_mut() {
        let n = f.n;
        let len = f.reqs.len();
        let mut i = 0usize;
        let (reqs, aegis) = (&f.reqs, &f.aegis);
        g.bench_function(BenchmarkId::new("aegis_evaluate", n), |b| {
            b.iter(|| {
                i = (i + 1) % len;
                aegis_decide(aegis, &reqs[i])
            })
        });
        let (cq, cedar) = (&f.cedar_reqs, &f.cedar);
        g.bench_function(BenchmarkId::new("cedar", n), |b| {
            b.iter(|| {
                i = (i + 1) % len;
                cedar_decide(cedar, &cq[i])
            })
        });
        let sliced = &f.cedar_sliced;
        g.bench_function(BenchmarkId::new("cedar_sliced", n), |b| {
            b.iter(|| {
                i = (i + 1) % len;
                cedar_sliced_decide(sliced, &reqs[i].agent, &cq[i])
            })
        });
        let inputs = &f.rego_inputs;
        let interp = &mut f.rego_interp;
        g.bench_function(BenchmarkId::new("regorus_interp", n), |b| {
            b.iter(|| {
                i = (i + 1) % len;
                rego_interp_decide(interp, &inputs[i])
            })
        });
        let compiled = &f.rego_compiled;
        g.bench_function(BenchmarkId::new("regorus_compiled", n), |b| {
            b.iter(|| {
                i = (i + 1) % len;
                rego_compiled_decide(compiled, &inputs[i])
            })
        });
        let rvm = &mut f.rego_rvm;
        g.bench_function(BenchmarkId::new("regorus_rvm", n), |b| {
            b.iter(|| {
                i = (i + 1) % len;
                rego_rvm_decide(rvm, &inputs[i])
            })
        });
    }
    g.finish();
}

/// Load + compile from text already in memory (generating the text is not timed).
fn load(c: &mut Criterion) {
    let mut g = c.benchmark_group("load");
    g.warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(2)).sample_size(10);
    for n in LOAD_NS {
        let yaml = bundle(n);
        g.bench_function(BenchmarkId::new("aegis", n), |b| {
            b.iter(|| aegis_core::Engine::from_yaml(black_box(&yaml), aegis_core::EngineOptions::default()).unwrap())
        });
        let cedar_text = cedar_text(n);
        g.bench_function(BenchmarkId::new("cedar", n), |b| {
            b.iter(|| cedar_policy::PolicySet::from_str(black_box(&cedar_text)).unwrap())
        });
        let slices: Vec<(String, String)> =
            (0..n).map(|i| (format!("agent-{i}"), format!("{}{}", cedar_agent_policies(i), CEDAR_SHARED))).collect();
        g.bench_function(BenchmarkId::new("cedar_sliced", n), |b| {
            b.iter(|| {
                slices
                    .iter()
                    .map(|(a, t)| (a.clone(), cedar_policy::PolicySet::from_str(t).unwrap()))
                    .collect::<std::collections::HashMap<_, _>>()
            })
        });
        let data = rego_data(n);
        let interp = || {
            let mut e = regorus::Engine::new();
            e.add_policy("aegis.rego".into(), REGO.into()).unwrap();
            e.add_data_json(black_box(&data)).unwrap();
            e
        };
        g.bench_function(BenchmarkId::new("regorus_interp", n), |b| b.iter(&interp));
        g.bench_function(BenchmarkId::new("regorus_compiled", n), |b| {
            b.iter(|| interp().compile_with_entrypoint(&REGO_ENTRY.into()).unwrap())
        });
        g.bench_function(BenchmarkId::new("regorus_rvm", n), |b| {
            b.iter(|| {
                let mut e = interp();
                let p = e.compile_with_entrypoint(&REGO_ENTRY.into()).unwrap();
                let program =
                    regorus::languages::rego::compiler::Compiler::compile_from_policy(&p, &[REGO_ENTRY]).unwrap();
                let mut vm = regorus::rvm::RegoVM::new();
                vm.load_program(program);
                vm.set_data(regorus::Value::from_json_str(&data).unwrap()).unwrap();
                vm
            })
        });
    }
    g.finish();
}

/// Median (ns) of one benchmark of this run, from criterion's estimates (`None` when
/// the benchmark did not run in this process, e.g. filtered out: no stale figures).
fn median_ns(group: &str, engine: &str, n: usize) -> Option<f64> {
    let root = std::env::var_os("CRITERION_HOME")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("CARGO_TARGET_DIR").map(|d| std::path::PathBuf::from(d).join("criterion")))
        .unwrap_or_else(|| std::path::PathBuf::from("target/criterion"));
    let path = root.join(group).join(engine).join(n.to_string()).join("new/estimates.json");
    if std::fs::metadata(&path).ok()?.modified().ok()? < *STARTED.get()? {
        return None;
    }
    let text = std::fs::read_to_string(&path).ok()?;
    // {"mean":{...},"median":{"confidence_interval":{...},"point_estimate":123.4,...},...}
    let after = &text[text.find("\"median\"")?..];
    let p = &after[after.find("\"point_estimate\":")? + "\"point_estimate\":".len()..];
    p[..p.find([',', '}'])?].trim().parse().ok()
}

fn fmt(ns: f64) -> String {
    if ns >= 1e9 {
        format!("{:.2} s", ns / 1e9)
    } else if ns >= 1e6 {
        format!("{:.2} ms", ns / 1e6)
    } else if ns >= 1e3 {
        format!("{:.2} µs", ns / 1e3)
    } else {
        format!("{ns:.0} ns")
    }
}

fn table(group: &str, ns: &[usize], aegis: &str) {
    println!("\n{group}: median (ratio vs {aegis}, same run)\n");
    println!("| engine | {} |", ns.iter().map(|n| format!("N = {n}")).collect::<Vec<_>>().join(" | "));
    println!("|---|{}", "---|".repeat(ns.len()));
    for e in std::iter::once(aegis).chain(DECIDE[1..].iter().copied()) {
        let cells: Vec<String> = ns
            .iter()
            .map(|&n| match (median_ns(group, e, n), median_ns(group, aegis, n)) {
                (Some(t), Some(a)) if e != aegis => format!("{} ({:.2}×)", fmt(t), t / a),
                (Some(t), _) => fmt(t),
                _ => "—".into(),
            })
            .collect();
        println!("| {e} | {} |", cells.join(" | "));
    }
}

fn main() {
    let _ = STARTED.set(std::time::SystemTime::now());
    // Equivalence first: refuse to time engines that do not decide alike.
    let mut fixtures = Vec::new();
    let mut failed = false;
    for n in NS {
        let t = std::time::Instant::now();
        let mut f = Fixture::new(n, REQUESTS, SEED);
        match f.check() {
            Ok(([allow, approval, deny], spent)) => {
                eprintln!(
                    "equivalence n={n}: all 6 engines agree on {REQUESTS} requests \
                     (allow {allow}, require_approval {approval}, deny {deny}; setup+check {:.1?})",
                    t.elapsed()
                );
                let per: Vec<String> = spent.iter().map(|(e, d)| format!("{e} {:.1?}", *d / REQUESTS as u32)).collect();
                eprintln!("  mean per decision during the check: {}", per.join(", "));
            }
            Err(bad) => {
                failed = true;
                for b in bad {
                    eprintln!("MISMATCH {b}");
                }
            }
        }
        fixtures.push(f);
    }
    if failed {
        eprintln!("engines disagree: refusing to report timings");
        std::process::exit(1);
    }

    let mut c = Criterion::default().configure_from_args();
    decide(&mut c, &mut fixtures);
    drop(fixtures);
    load(&mut c);
    c.final_summary();

    table("decide", &NS, "aegis_evaluate");
    table("load", &LOAD_NS, "aegis");
}
