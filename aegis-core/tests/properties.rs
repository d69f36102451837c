//! Property tests and engine-level integration tests.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing, missing_docs)]

use aegis_core::audit::{verify_files, FileSink, Fsync};
use aegis_core::{Engine, EngineOptions, MemorySink, Outcome, Request, RequestLimits, Value};
use proptest::prelude::*;
use std::sync::Arc;

fn req(json: &str) -> Request {
    Request::from_json(json, &RequestLimits::default()).unwrap()
}

/// A value tree of bounded depth.
fn arb_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        (-1.0e12f64..1.0e12).prop_map(Value::Number),
        any::<i32>().prop_map(|n| Value::Number(f64::from(n))),
        "[a-zA-Z0-9 _\\-€😀\"\\\\\n]{0,8}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::btree_map("[a-z€😀]{0,4}", inner, 0..5)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

const OUTCOMES: [&str; 3] = ["allow", "deny", "require_approval"];

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Canonical JSON is a fixed point: parsing and re-serialising gives the same bytes,
    /// whatever order keys were written in.
    #[test]
    fn canonical_json_is_stable(v in arb_value()) {
        let c = v.to_canonical_json();
        let back = aegis_core::json::parse(&c, 64).unwrap();
        prop_assert_eq!(back.to_canonical_json(), c.clone());
        // serde_json agrees that it is JSON and on the value.
        let sj: serde_json::Value = serde_json::from_str(&c).unwrap();
        let again = aegis_core::json::parse(&serde_json::to_string(&sj).unwrap(), 64).unwrap();
        prop_assert_eq!(again.to_canonical_json(), c);
    }

    /// deny > require_approval > allow whatever the order of the rules; `rules` lists
    /// every applying rule of the winning outcome in bundle order.
    #[test]
    fn precedence_holds_in_any_order(outcomes in prop::collection::vec(0usize..3, 1..8), applies in prop::collection::vec(any::<bool>(), 8)) {
        let mut yaml = String::from("aegis: 1\ndefault: deny\nrules:\n");
        for (i, o) in outcomes.iter().enumerate() {
            let when = if applies[i] { "params.x: {eq: 1}" } else { "params.x: {eq: 2}" };
            yaml.push_str(&format!("  - id: r{i}\n    when: {{{when}}}\n    outcome: {}\n", OUTCOMES[*o]));
        }
        let engine = Engine::from_yaml(&yaml, EngineOptions::default()).unwrap();
        let d = engine.evaluate(&req(r#"{"agent":"a","tool":"t","params":{"x":1},"time":"2026-01-05T10:00:00Z"}"#)).unwrap();
        let rank = |o: usize| match o { 0 => 0, 2 => 1, _ => 2 };
        let applying: Vec<usize> = (0..outcomes.len()).filter(|&i| applies[i]).collect();
        match applying.iter().map(|&i| rank(outcomes[i])).max() {
            None => prop_assert_eq!(d.rules, vec!["default".to_string()]),
            Some(best) => {
                let want: Vec<String> = applying.iter().filter(|&&i| rank(outcomes[i]) == best).map(|i| format!("r{i}")).collect();
                prop_assert_eq!(d.rules, want);
                let o = [Outcome::Allow, Outcome::RequireApproval, Outcome::Deny][best];
                prop_assert_eq!(d.outcome, o);
            }
        }
    }

    /// A rule whose condition is an error never allows; evaluation is deterministic.
    #[test]
    fn errors_never_allow(v in arb_value(), op in 0usize..8) {
        let ops = ["{gt: 5}", "{starts_with: a}", "{contains: x}", "{within: /a}", "{domain_in: [a.com]}", "{count: {gt: 0}}", "{in: [1, a]}", "{matches: a}"];
        let yaml = format!("aegis: 1\ndefault: deny\nrules:\n  - id: r\n    when: {{params.v: {}}}\n    outcome: allow\n", ops[op]);
        let engine = Engine::from_yaml(&yaml, EngineOptions::default()).unwrap();
        let mut m = aegis_core::Map::new();
        m.insert("v".into(), v);
        let mut r = req(r#"{"agent":"a","tool":"t","time":"2026-01-05T10:00:00Z"}"#);
        r.params = m;
        let d1 = engine.evaluate(&r).unwrap();
        if !d1.errors.is_empty() {
            prop_assert_eq!(d1.outcome, Outcome::Deny);
        }
        let fresh = Engine::from_yaml(&yaml, EngineOptions::default()).unwrap();
        let d2 = fresh.evaluate(&r).unwrap();
        prop_assert_eq!(d1.to_json(), d2.to_json());
    }
}

#[test]
fn many_threads_one_chain_nothing_lost() {
    let dir = std::env::temp_dir().join(format!("aegis-threads-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("audit.jsonl");
    let _ = std::fs::remove_file(&path);
    let mut o = EngineOptions::default();
    o.sinks.push(Box::new(FileSink::open(&path, Fsync::Never).unwrap()));
    let engine = Arc::new(
        Engine::from_yaml("aegis: 1\nrules:\n  - id: r\n    match: {tool: t}\n    outcome: allow\n", o).unwrap(),
    );
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let e = engine.clone();
            std::thread::spawn(move || {
                for i in 0..2_000 {
                    let r = req(&format!(
                        r#"{{"agent":"a{t}","tool":"t","params":{{"i":{i}}},"time":"2026-01-05T10:00:00Z"}}"#
                    ));
                    assert!(e.evaluate(&r).unwrap().allowed());
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let report = verify_files(std::slice::from_ref(&path), None).unwrap();
    assert_eq!(report.records, 16_000);
    // Reopening resumes the chain (once the first engine has let go of the file).
    assert!(Arc::strong_count(&engine) == 1);
    drop(engine);
    let sink = FileSink::open(&path, Fsync::Always).unwrap();
    let mut o = EngineOptions::default();
    o.sinks.push(Box::new(sink));
    let e2 = Engine::from_yaml("aegis: 1\n", o).unwrap();
    assert_eq!(e2.chain_head().unwrap(), (16_000, report.head.clone()));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn torn_line_is_moved_aside_and_chain_resumes() {
    let dir = std::env::temp_dir().join(format!("aegis-torn-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("audit.jsonl");
    let _ = std::fs::remove_file(&path);
    let policy = "aegis: 1\nrules:\n  - id: r\n    outcome: allow\n";
    let run = |n: usize| {
        let mut o = EngineOptions::default();
        o.sinks.push(Box::new(FileSink::open(&path, Fsync::Always).unwrap()));
        let e = Engine::from_yaml(policy, o).unwrap();
        for _ in 0..n {
            e.evaluate(&req(r#"{"agent":"a","tool":"t","time":"2026-01-05T10:00:00Z"}"#)).unwrap();
        }
    };
    run(3);
    std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .and_then(|mut f| std::io::Write::write_all(&mut f, b"{\"v\":1,\"se"))
        .unwrap();
    let sink = FileSink::open(&path, Fsync::Always).unwrap();
    let torn = sink.torn().cloned().unwrap();
    assert_eq!(torn.bytes, b"{\"v\":1,\"se".len());
    assert_eq!(std::fs::read(&torn.moved_to).unwrap(), b"{\"v\":1,\"se");
    drop(sink);
    run(2);
    assert_eq!(verify_files(std::slice::from_ref(&path), None).unwrap().records, 5);
    // A damaged last complete line refuses to open and leaves the file untouched.
    let before = std::fs::read(&path).unwrap();
    let mut damaged = before.clone();
    let n = damaged.len();
    damaged[n - 5] = b'X';
    std::fs::write(&path, &damaged).unwrap();
    assert!(FileSink::open(&path, Fsync::Always).is_err());
    assert_eq!(std::fs::read(&path).unwrap(), damaged);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn unwritable_audit_fails_closed() {
    let mut o = EngineOptions::default();
    o.sinks
        .push(Box::new(aegis_core::CallbackSink(|_: &aegis_core::AuditRecord, _: &str| Err("disk full".to_string()))));
    let e = Engine::from_yaml("aegis: 1\ndefault: allow\n", o).unwrap();
    let r = e.evaluate(&req(r#"{"agent":"a","tool":"t"}"#));
    assert!(matches!(r, Err(aegis_core::EvalError::Audit(_))));
    assert_eq!(e.chain_head().unwrap().0, 0, "the chain does not advance past an unwritten record");
}

#[test]
fn reload_is_atomic_and_keeps_old_bundle_on_error() {
    let mem = MemorySink::default();
    let mut o = EngineOptions::default();
    o.sinks.push(Box::new(mem.clone()));
    let v1 = "aegis: 1\ndefault: deny\nrules:\n  - id: v1\n    outcome: allow\n";
    let v2 = "aegis: 1\ndefault: deny\nrules:\n  - id: v2\n    outcome: deny\n";
    let e = Arc::new(Engine::from_yaml(v1, o).unwrap());
    let h1 = e.policy_hash().unwrap();
    let h2 = Engine::from_yaml(v2, EngineOptions::default()).unwrap().policy_hash().unwrap();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let (e, stop, h1, h2) = (e.clone(), stop.clone(), h1.clone(), h2.clone());
            std::thread::spawn(move || {
                let mut n = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let d = e.evaluate(&req(r#"{"agent":"a","tool":"t","time":"2026-01-05T10:00:00Z"}"#)).unwrap();
                    // Every decision comes from one coherent bundle.
                    // …and its record names that bundle's policy hash.
                    match d.rules[0].as_str() {
                        "v1" => assert_eq!((d.outcome, d.audit.policy.as_str()), (Outcome::Allow, h1.as_str())),
                        "v2" => assert_eq!((d.outcome, d.audit.policy.as_str()), (Outcome::Deny, h2.as_str())),
                        other => panic!("{other}"),
                    }
                    n += 1;
                }
                n
            })
        })
        .collect();
    for i in 0..200 {
        let text = if i % 2 == 0 { v2 } else { v1 };
        e.reload_yaml(text).unwrap();
        assert!(e.reload_yaml("aegis: 1\nrules: [{id: x, outcome: maybe}]\n").is_err());
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let total: usize = workers.into_iter().map(|w| w.join().unwrap()).sum();
    // No record lost: one per decision, and the chain is whole.
    let lines = mem.0.lock().unwrap().clone();
    assert_eq!(lines.len(), total);
    let dir = std::env::temp_dir().join(format!("aegis-reload-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("log.jsonl");
    std::fs::write(&f, lines.iter().map(|l| format!("{l}\n")).collect::<String>()).unwrap();
    assert_eq!(verify_files(std::slice::from_ref(&f), None).unwrap().records as usize, total);
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(e.policy_hash().unwrap(), h1);
}

#[test]
fn kill_switch_covers_chain_and_revive() {
    let e = Engine::from_yaml("aegis: 1\ndefault: allow\n", EngineOptions::default()).unwrap();
    let r = req(r#"{"agent":"worker","tool":"t","chain":["boss","rogue"],"time":"2026-01-05T10:00:00Z"}"#);
    assert!(e.evaluate(&r).unwrap().allowed());
    e.kill(aegis_core::KillScope::Agent, "rogue", "compromised").unwrap();
    let d = e.evaluate(&r).unwrap();
    assert_eq!(
        (d.outcome, d.rules.clone(), d.reason.as_str()),
        (Outcome::Deny, vec!["kill:agent:rogue".to_string()], "compromised")
    );
    assert!(e.kill(aegis_core::KillScope::All, "x", "").is_err());
    assert!(e.revive(aegis_core::KillScope::Agent, "rogue").unwrap());
    assert!(e.evaluate(&r).unwrap().allowed());
}

#[test]
fn limit_race_never_allows_more_than_max() {
    let yaml = "aegis: 1\ndefault: allow\nlimits:\n  - id: l\n    window: 1h\n    max_calls: 50\n";
    let e = Arc::new(Engine::from_yaml(yaml, EngineOptions::default()).unwrap());
    let allowed = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let ts: Vec<_> = (0..4)
        .map(|_| {
            let (e, allowed) = (e.clone(), allowed.clone());
            std::thread::spawn(move || {
                for _ in 0..100 {
                    if e.evaluate(&req(r#"{"agent":"a","tool":"t","time":"2026-01-05T10:00:00Z"}"#)).unwrap().allowed()
                    {
                        allowed.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    }
                }
            })
        })
        .collect();
    for t in ts {
        t.join().unwrap();
    }
    assert_eq!(allowed.load(std::sync::atomic::Ordering::SeqCst), 50);
}

#[test]
fn deep_and_huge_requests_are_clear_errors() {
    let deep = format!(r#"{{"agent":"a","tool":"t","params":{{"x":{}1{}}}}}"#, "[".repeat(10_000), "]".repeat(10_000));
    assert!(Request::from_json(&deep, &RequestLimits::default()).is_err());
    let huge = format!(r#"{{"agent":"a","tool":"t","params":{{"x":"{}"}}}}"#, "a".repeat(2 << 20));
    assert!(Request::from_json(&huge, &RequestLimits::default()).is_err());
}
