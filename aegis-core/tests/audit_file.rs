//! The durable file sink: concurrency, group commit, rotation, full disk.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing, missing_docs)]

use aegis_core::audit::{chain_files, rotated_files, verify_files, FileSink, FileSinkOptions, Fsync};
use aegis_core::{Engine, EngineOptions, EvalError, Request, RequestLimits};
use std::path::{Path, PathBuf};
use std::sync::Arc;

const POLICY: &str = "aegis: 1\nrules:\n  - id: r\n    match: {tool: t}\n    outcome: allow\n";

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("aegis-audit-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn engine(path: &Path, options: FileSinkOptions) -> Engine {
    let mut o = EngineOptions::default();
    o.sinks.push(Box::new(FileSink::open_with(path, options).unwrap()));
    Engine::from_yaml(POLICY, o).unwrap()
}

fn hammer(e: &Arc<Engine>, threads: usize, per_thread: usize) {
    let hs: Vec<_> = (0..threads)
        .map(|t| {
            let e = e.clone();
            std::thread::spawn(move || {
                for i in 0..per_thread {
                    let r = Request::from_json(
                        &format!(r#"{{"agent":"a{t}","tool":"t","params":{{"i":{i}}},"time":"2026-01-05T10:00:00Z"}}"#),
                        &RequestLimits::default(),
                    )
                    .unwrap();
                    assert!(e.evaluate(&r).unwrap().allowed());
                }
            })
        })
        .collect();
    for h in hs {
        h.join().unwrap();
    }
}

/// Issue 3: 8 threads × 10,000 evaluations → exactly 80,000 records, in seq order,
/// none interleaved, and the log verifies.
#[test]
fn eight_threads_ten_thousand_each() {
    let d = dir("80k");
    let path = d.join("audit.jsonl");
    let e = Arc::new(engine(&path, FileSinkOptions { fsync: Fsync::Never, rotate_bytes: None }));
    hammer(&e, 8, 10_000);
    let r = verify_files(&[path], None).unwrap();
    assert_eq!(r.records, 80_000);
    std::fs::remove_dir_all(&d).unwrap();
}

/// Group commit: every evaluate returns after its record is durable; many threads
/// share syncs, and the log is complete and ordered.
#[test]
fn batch_fsync_group_commit() {
    let d = dir("batch");
    let path = d.join("audit.jsonl");
    let e = Arc::new(engine(&path, FileSinkOptions { fsync: Fsync::Batch, rotate_bytes: None }));
    hammer(&e, 8, 100);
    assert_eq!(verify_files(&[path], None).unwrap().records, 800);
    std::fs::remove_dir_all(&d).unwrap();
}

/// Rotation keeps one chain across files, under concurrent writers.
#[test]
fn rotation_keeps_the_chain() {
    let d = dir("rotate");
    let path = d.join("audit.jsonl");
    let e = Arc::new(engine(&path, FileSinkOptions { fsync: Fsync::Batch, rotate_bytes: Some(8 * 1024) }));
    hammer(&e, 3, 200);
    drop(e);
    let rotated = rotated_files(&path);
    assert!(rotated.len() >= 5, "expected several rotations, got {}", rotated.len());
    for f in &rotated {
        assert!(std::fs::metadata(f).unwrap().len() <= 8 * 1024, "{} exceeds the rotation size", f.display());
    }
    let report = verify_files(&chain_files(&path), None).unwrap();
    assert_eq!(report.records, 600);
    // Leaving a rotated file out breaks the chain at the right place.
    let mut missing = chain_files(&path);
    missing.remove(1);
    let err = verify_files(&missing, None).unwrap_err();
    assert!(err.message.contains("where seq"), "{err}");

    // A crash right after a rotation leaves FILE empty: the chain resumes from the
    // newest rotated file.
    std::fs::rename(&path, format!("{}.{:06}", path.display(), rotated.len() + 1)).unwrap();
    std::fs::write(&path, b"").unwrap();
    let e = engine(&path, FileSinkOptions { fsync: Fsync::Always, rotate_bytes: Some(8 * 1024) });
    assert_eq!(e.chain_head().unwrap(), (600, report.head.clone()));
    e.evaluate(&Request::from_json(r#"{"agent":"a","tool":"t"}"#, &RequestLimits::default()).unwrap()).unwrap();
    assert_eq!(verify_files(&chain_files(&path), None).unwrap().records, 601);
    std::fs::remove_dir_all(&d).unwrap();
}

/// A full disk makes evaluate fail closed: the host sees an error, nothing is allowed
/// and the chain does not advance.
#[test]
fn full_disk_fails_closed() {
    let full = Path::new("/dev/full");
    if !full.exists() {
        return;
    }
    for fsync in [Fsync::Always, Fsync::Batch, Fsync::Never] {
        let e = engine(full, FileSinkOptions { fsync, rotate_bytes: None });
        let r = Request::from_json(r#"{"agent":"a","tool":"t"}"#, &RequestLimits::default()).unwrap();
        match e.evaluate(&r) {
            Err(EvalError::Audit(err)) => assert!(err.to_string().contains("/dev/full"), "{err}"),
            other => panic!("{fsync:?}: expected an audit error, got {other:?}"),
        }
        assert_eq!(e.chain_head().unwrap().0, 0);
    }
}

/// A file that cannot be opened for writing is a clear error at open.
#[test]
fn unopenable_file_is_an_error() {
    let d = dir("unopenable");
    // A directory where the file should be.
    let path = d.join("audit.jsonl");
    std::fs::create_dir_all(&path).unwrap();
    let err = FileSink::open(&path, Fsync::Always).err().expect("must fail");
    assert!(err.to_string().contains("audit.jsonl"), "{err}");
    std::fs::remove_dir_all(&d).unwrap();
}

/// The sink-less path seals under the chain lock without building the tail; it must
/// give exactly the records (seq, prev, hash, sig) the sink path writes, and every
/// hash must match an independent recomputation from the record's fields.
#[test]
fn sealing_without_a_sink_matches_the_sink_path() {
    use aegis_core::{AuditRecord, Engine, EngineOptions, MemorySink, Request, RequestLimits};
    let yaml = "aegis: 1\nrules:\n  - {id: pay, match: {tool: payments}, when: {params.amount: {lte: 10}}, outcome: allow, reason: \"small \\\"q\\\"\"}\n";
    let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    for key in [None, Some(b"k3y".to_vec())] {
        let mut with = EngineOptions::default();
        with.sinks.push(Box::new(MemorySink(lines.clone())));
        with.signing_key = key.clone().map(|k| aegis_core::Key::new("signing_key", k).unwrap());
        let a = Engine::from_yaml(yaml, with).unwrap();
        let b = Engine::from_yaml(
            yaml,
            EngineOptions {
                signing_key: key.clone().map(|k| aegis_core::Key::new("signing_key", k).unwrap()),
                ..EngineOptions::default()
            },
        )
        .unwrap();
        lines.lock().unwrap().clear();
        for i in 0..20 {
            let t = format!(
                r#"{{"agent":"a{i}","tool":"payments","session":"s","params":{{"amount":{i}}},"time":"2026-01-05T10:00:00Z"}}"#
            );
            let r = Request::from_json(&t, &RequestLimits::default()).unwrap();
            let da = a.evaluate(&r).unwrap();
            let db = b.evaluate(&r).unwrap();
            assert_eq!(da.audit.to_json(), db.audit.to_json(), "record {i}");
            assert_eq!(lines.lock().unwrap()[i], db.audit.to_json());
            let mut again: AuditRecord = db.audit.clone();
            again.seal(key.as_deref());
            assert_eq!((again.hash, again.sig), (db.audit.hash.clone(), db.audit.sig.clone()));
        }
        assert_eq!(a.chain_head().unwrap(), b.chain_head().unwrap());
    }
}

fn request(i: u32) -> Request {
    Request::from_json(
        &format!(r#"{{"agent":"a","tool":"t","params":{{"i":{i}}},"time":"2026-01-05T10:00:00Z"}}"#),
        &RequestLimits::default(),
    )
    .unwrap()
}

/// §9a: an audit file is held with an exclusive lock; a second engine on it (here in
/// the same process) fails, instead of forking the chain. Once the first engine is
/// gone, the file opens again and the chain resumes.
#[test]
fn one_audit_file_one_engine() {
    let d = dir("lock");
    let path = d.join("audit.jsonl");
    let first = engine(&path, FileSinkOptions::default());
    first.evaluate(&request(0)).unwrap();
    match FileSink::open(&path, Fsync::Always) {
        Err(e) => assert!(e.to_string().contains("in use by another engine"), "{e}"),
        Ok(_) => panic!("a second sink opened a file in use"),
    }
    drop(first);
    let again = engine(&path, FileSinkOptions::default());
    assert_eq!(again.chain_head().unwrap().0, 1);
    again.evaluate(&request(1)).unwrap();
    assert_eq!(verify_files(&[path], None).unwrap().records, 2);
}

/// §9a: a record is chained once the first sink accepts it. A later sink's failure
/// fails the call (audit_failed) but the next record continues the chain, so the file
/// verifies; a failure of the first sink leaves the chain where it was.
#[test]
fn a_later_sink_failing_never_forks_the_chain() {
    let d = dir("sinks");
    let path = d.join("audit.jsonl");
    let fail = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let f = fail.clone();
    let mut o = EngineOptions::default();
    o.sinks.push(Box::new(FileSink::open(&path, Fsync::Always).unwrap()));
    o.sinks.push(Box::new(aegis_core::CallbackSink(move |_: &aegis_core::AuditRecord, _: &str| {
        if f.load(std::sync::atomic::Ordering::SeqCst) {
            Err("collector down".to_string())
        } else {
            Ok(())
        }
    })));
    let e = Engine::from_yaml(POLICY, o).unwrap();
    e.evaluate(&request(0)).unwrap();
    fail.store(true, std::sync::atomic::Ordering::SeqCst);
    assert!(matches!(e.evaluate(&request(1)), Err(EvalError::Audit(_))));
    fail.store(false, std::sync::atomic::Ordering::SeqCst);
    let d2 = e.evaluate(&request(2)).unwrap();
    assert_eq!(d2.audit.seq, 2, "the failed call's record is in the file: the chain went on");
    assert_eq!(verify_files(std::slice::from_ref(&path), None).unwrap().records, 3);

    // The first sink refusing: nothing is chained.
    let first_fails = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let f = first_fails.clone();
    let mut o = EngineOptions::default();
    o.sinks.push(Box::new(aegis_core::CallbackSink(move |_: &aegis_core::AuditRecord, _: &str| {
        if f.load(std::sync::atomic::Ordering::SeqCst) {
            Err("full".to_string())
        } else {
            Ok(())
        }
    })));
    let e = Engine::from_yaml(POLICY, o).unwrap();
    assert!(e.evaluate(&request(0)).is_err());
    first_fails.store(false, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(e.evaluate(&request(1)).unwrap().audit.seq, 0);
}

/// §9a: a callback that calls back into its engine makes that evaluate fail with an
/// audit error, with no deadlock; the inner call is refused.
#[test]
fn a_callback_calling_its_engine_is_refused_without_deadlock() {
    let slot: Arc<std::sync::OnceLock<std::sync::Weak<Engine>>> = Arc::new(std::sync::OnceLock::new());
    let inner_errors = Arc::new(std::sync::Mutex::new(Vec::new()));
    let (s, errs) = (slot.clone(), inner_errors.clone());
    let mut o = EngineOptions::default();
    o.sinks.push(Box::new(aegis_core::CallbackSink(move |_: &aegis_core::AuditRecord, _: &str| {
        if let Some(e) = s.get().and_then(std::sync::Weak::upgrade) {
            let mut errs = errs.lock().unwrap();
            errs.push(e.evaluate(&request(9)).map(|_| ()).unwrap_err().to_string());
            errs.push(e.kill(aegis_core::KillScope::Agent, "x", "r").unwrap_err().to_string());
            errs.push(e.chain_head().unwrap_err().to_string());
        }
        Ok(())
    })));
    let e = Arc::new(Engine::from_yaml(POLICY, o).unwrap());
    slot.set(Arc::downgrade(&e)).unwrap();
    match e.evaluate(&request(0)) {
        Err(EvalError::Audit(a)) => assert!(a.to_string().contains("called back into its engine"), "{a}"),
        other => panic!("{other:?}"),
    }
    let errs = inner_errors.lock().unwrap();
    assert_eq!(errs.len(), 3);
    assert!(errs.iter().all(|m| m.contains("called back into its engine")), "{errs:?}");
    drop(errs);
    // Outside the callback the engine works as before.
    assert!(e.kill(aegis_core::KillScope::Agent, "x", "r").is_ok());
}
