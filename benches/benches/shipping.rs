//! Issue 9: `evaluate` latency with shipping on vs off. An engine with a durable file
//! sink (`fsync: never`, so the disk does not hide the difference; 1,000 agents) is
//! timed alone and then while a `Collector` ships that same file to a real OTLP
//! collector (rotel, `AEGIS_ROTEL` or `.venv/bin/rotel-agent`) in the background.
//! Without rotel only the `off` figures are measured (and the bench says why).
//!
//! * `shipping/evaluate/{off,on}`: back-to-back evaluations (~250k records/s, the
//!   worst case: on 2 cores the shipper and the collector then compete with the
//!   evaluating thread for CPU).
//! * `shipping/paced_20k/{off,on}`: one evaluation every 50 µs (20,000 decisions/s, a
//!   busy host), timing only the `evaluate` calls: what a caller sees when the
//!   machine is not saturated.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use aegis_bench::{bundle, requests};
use aegis_core::audit::{FileSink, Fsync};
use aegis_core::{Engine, EngineOptions};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn rotel() -> Option<PathBuf> {
    let p = std::env::var_os("AEGIS_ROTEL")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/rotel-agent"));
    p.exists().then_some(p)
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

struct Rotel(Child);

impl Drop for Rotel {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_rotel(bin: &Path, dir: &Path) -> (Rotel, String) {
    let (http, grpc) = (free_port(), free_port());
    let child = Command::new(bin)
        .args(["start", "--otlp-http-endpoint", &format!("127.0.0.1:{http}")])
        .args(["--otlp-grpc-endpoint", &format!("127.0.0.1:{grpc}"), "--exporter", "blackhole"])
        .arg("--log-file")
        .arg(dir.join("rotel.log"))
        .arg("--pid-file")
        .arg(dir.join("rotel.pid"))
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start rotel");
    let end = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", http)).is_err() {
        assert!(Instant::now() < end, "rotel did not listen");
        std::thread::sleep(Duration::from_millis(50));
    }
    (Rotel(child), format!("http://127.0.0.1:{http}"))
}

fn shipping(c: &mut Criterion) {
    let mut g = c.benchmark_group("shipping");
    g.measurement_time(Duration::from_secs(4)).warm_up_time(Duration::from_secs(1)).sample_size(30);
    g.throughput(Throughput::Elements(1));
    let dir = std::env::temp_dir().join(format!("aegis-bench-ship-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let text = bundle(1_000);
    let reqs = requests(1_000, 4096, 5);
    let engine_on = |file: &Path| {
        let _ = std::fs::remove_file(file);
        let mut o = EngineOptions::default();
        o.sinks.push(Box::new(FileSink::open(file, Fsync::Never).unwrap()));
        Engine::from_yaml(&text, o).unwrap()
    };
    let off = engine_on(&dir.join("off.jsonl"));
    let mut i = 0usize;
    g.bench_function(BenchmarkId::new("evaluate", "off"), |b| {
        b.iter(|| {
            i = (i + 1) % reqs.len();
            off.evaluate(&reqs[i]).unwrap()
        })
    });
    paced(&mut g, "off", &off, &reqs);
    match rotel() {
        None => eprintln!("shipping/evaluate/on skipped: no rotel (run `make ship-rotel` or set AEGIS_ROTEL)"),
        Some(bin) => {
            let (_rotel, url) = start_rotel(&bin, &dir);
            let file = dir.join("on.jsonl");
            let on = engine_on(&file);
            let cfg = format!(r#"{{"endpoint":"{url}","batch":512,"batch_age_ms":200}}"#);
            let collector = aegis_ship::Collector::start(&file, &cfg).unwrap();
            g.bench_function(BenchmarkId::new("evaluate", "on"), |b| {
                b.iter(|| {
                    i = (i + 1) % reqs.len();
                    on.evaluate(&reqs[i]).unwrap()
                })
            });
            // Let the shipper catch up with the back-to-back run's backlog first, so
            // the paced figure is the steady state at 20k/s, not a catch-up burst.
            collector.flush(Duration::from_secs(300)).unwrap();
            paced(&mut g, "on", &on, &reqs);
            // Everything written while timing must still arrive.
            let r = collector.flush(Duration::from_secs(300));
            let m = collector.metrics();
            eprintln!(
                "shipping: {} records shipped, {} pending, {} retries, flush {:?}",
                m.shipped, m.pending, m.retries, r
            );
            assert!(r.is_ok() && m.pending == 0, "{m:?}");
            let _ = collector.close(Some(Duration::from_secs(10)));
        }
    }
    g.finish();
    let _ = std::fs::remove_dir_all(&dir);
}

/// One `evaluate` every 50 µs; only the calls are timed.
fn paced(
    g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
    engine: &Engine,
    reqs: &[aegis_core::Request],
) {
    const PERIOD: Duration = Duration::from_micros(50);
    g.sampling_mode(criterion::SamplingMode::Flat);
    g.measurement_time(Duration::from_millis(500)).sample_size(10);
    let mut i = 0usize;
    g.bench_function(BenchmarkId::new("paced_20k", name), |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut next = Instant::now();
            for _ in 0..iters {
                while Instant::now() < next {
                    std::hint::spin_loop();
                }
                i = (i + 1) % reqs.len();
                let t = Instant::now();
                std::hint::black_box(engine.evaluate(&reqs[i]).unwrap());
                total += t.elapsed();
                next = t + PERIOD;
            }
            total
        })
    });
    g.sampling_mode(criterion::SamplingMode::Auto);
    g.measurement_time(Duration::from_secs(4)).sample_size(30);
}

criterion_group!(benches, shipping);
criterion_main!(benches);
