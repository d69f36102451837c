//! Property tests and engine-level integration tests (session marks: `mod marks`).
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

mod marks {
    //! Property tests of session marks (SPEC §10) over random bundles and request sequences:
    //!
    //! * `marks_never_turn_a_rule_deny_into_allow` — a request that the bundle's rules that
    //!   do not read marks decide `deny` (or `require_approval`) on their own is never
    //!   allowed, whatever marks its session carries: replaying the sequence on one engine,
    //!   each decision is compared with a fresh engine on the bundle without its
    //!   marks-reading rules.
    //! * `marks_that_are_never_read_change_no_decision` — in a bundle where no rule reads
    //!   `session.marks`, every call of a sequence is decided as if it were alone.
    //! * `replay_gives_the_same_marks_and_records` — the same requests on a fresh engine
    //!   give byte-identical record lines and the same marks per session.
    //! * `racing_threads_never_lose_a_mark` — two threads marking one session at once:
    //!   every mark added is there at the end, each thread's records only ever grow, and
    //!   the last call to commit saw them all.

    use aegis_core::{Decision, Engine, EngineOptions, MemorySink, Outcome, Request, RequestLimits};
    use proptest::prelude::*;
    use std::collections::BTreeSet;
    use std::sync::Arc;

    const LABELS: [&str; 5] = ["pii", "untrusted", "sus", "B", "a.b"];
    const TTLS: [(&str, i64); 3] = [("1s", 1000), ("1m", 60_000), ("1h", 3_600_000)];
    const STEPS: [i64; 7] = [0, 1, 999, 1000, 30_000, 60_000, 3_600_000];
    const OUTCOMES: [&str; 3] = ["allow", "deny", "require_approval"];
    const SESSIONS: [Option<&str>; 3] = [Some("s1"), Some("s2"), None];
    /// 2026-01-05T10:00:00Z.
    const BASE_MS: i64 = 1_767_607_200_000;

    /// A rule's condition.
    #[derive(Clone, Debug)]
    enum When {
        Always,
        ParamX(u8),
        Contains(usize),
        NotContains(usize),
        ContainsAll(Vec<usize>),
        ContainsAny(Vec<usize>),
        CountGte(u8),
        Empty,
        FirstEq(usize),
        Absent,
        XOrMarks(u8, usize),
    }

    impl When {
        fn reads(&self) -> bool {
            !matches!(self, When::Always | When::ParamX(_))
        }

        fn yaml(&self) -> Option<String> {
            let l = |i: &usize| format!("\"{}\"", LABELS[*i]);
            let ls = |v: &[usize]| v.iter().map(l).collect::<Vec<_>>().join(", ");
            Some(match self {
                When::Always => return None,
                When::ParamX(x) => format!("{{params.x: {x}}}"),
                When::Contains(i) => format!("{{session.marks: {{contains: {}}}}}", l(i)),
                When::NotContains(i) => format!("{{not: {{session.marks: {{contains: {}}}}}}}", l(i)),
                When::ContainsAll(v) => format!("{{session.marks: {{contains_all: [{}]}}}}", ls(v)),
                When::ContainsAny(v) => format!("{{session.marks: {{contains_any: [{}]}}}}", ls(v)),
                When::CountGte(n) => format!("{{session.marks: {{count: {{gte: {n}}}}}}}"),
                When::Empty => "{session.marks: {count: {eq: 0}}}".to_owned(),
                When::FirstEq(i) => format!("{{session.marks.0: {}}}", l(i)),
                When::Absent => "{session.marks: {exists: false}}".to_owned(),
                When::XOrMarks(x, i) => {
                    format!("{{any: [{{params.x: {x}}}, {{session.marks: {{contains: {}}}}}]}}", l(i))
                }
            })
        }
    }

    fn arb_when(reading: bool) -> BoxedStrategy<When> {
        let plain = prop_oneof![Just(When::Always), (0u8..3).prop_map(When::ParamX)];
        if !reading {
            return plain.boxed();
        }
        let label = 0..LABELS.len();
        let labels = prop::collection::vec(0..LABELS.len(), 1..3);
        prop_oneof![
            2 => plain,
            1 => label.clone().prop_map(When::Contains),
            1 => label.clone().prop_map(When::NotContains),
            1 => labels.clone().prop_map(When::ContainsAll),
            1 => labels.prop_map(When::ContainsAny),
            1 => (0u8..3).prop_map(When::CountGte),
            1 => Just(When::Empty),
            1 => label.clone().prop_map(When::FirstEq),
            1 => Just(When::Absent),
            1 => ((0u8..3), label).prop_map(|(x, i)| When::XOrMarks(x, i)),
        ]
        .boxed()
    }

    #[derive(Clone, Debug)]
    struct Rule {
        tool: Option<u8>,
        when: When,
        outcome: usize,
        /// label → ttl (index into `TTLS`; `None`: the engine's `marks_ttl`)
        marks: Vec<(usize, Option<usize>)>,
    }

    fn arb_rule(reading: bool) -> impl Strategy<Value = Rule> {
        (
            prop::option::weighted(0.6, 0u8..3),
            arb_when(reading),
            0usize..3,
            prop::collection::btree_map(0..LABELS.len(), prop::option::of(0..TTLS.len()), 0..3),
        )
            .prop_map(|(tool, when, outcome, marks)| Rule {
                tool,
                when,
                outcome,
                marks: marks.into_iter().collect(),
            })
    }

    #[derive(Clone, Debug)]
    struct Bundle {
        default_allow: bool,
        rules: Vec<Rule>,
    }

    fn arb_bundle(reading: bool) -> impl Strategy<Value = Bundle> {
        (any::<bool>(), prop::collection::vec(arb_rule(reading), 1..7))
            .prop_map(|(default_allow, rules)| Bundle { default_allow, rules })
    }

    impl Bundle {
        /// The bundle as YAML, keeping the rules `keep` accepts (ids stay `r<index>`).
        fn yaml_with(&self, keep: impl Fn(&Rule) -> bool) -> String {
            let mut y = format!("aegis: 1\ndefault: {}\nrules:\n", if self.default_allow { "allow" } else { "deny" });
            for (i, r) in self.rules.iter().enumerate().filter(|(_, r)| keep(r)) {
                y.push_str(&format!("  - id: r{i}\n"));
                if let Some(t) = r.tool {
                    y.push_str(&format!("    match: {{tool: t{t}}}\n"));
                }
                if let Some(w) = r.when.yaml() {
                    y.push_str(&format!("    when: {w}\n"));
                }
                y.push_str(&format!("    outcome: {}\n", OUTCOMES[r.outcome]));
                if !r.marks.is_empty() {
                    let m: Vec<String> = r
                        .marks
                        .iter()
                        .map(|(l, ttl)| match ttl {
                            None => format!("\"{}\"", LABELS[*l]),
                            Some(t) => format!("{{label: \"{}\", ttl: {}}}", LABELS[*l], TTLS[*t].0),
                        })
                        .collect();
                    y.push_str(&format!("    marks: [{}]\n", m.join(", ")));
                }
            }
            if y.ends_with("rules:\n") {
                y.push_str("  []\n");
            }
            y
        }

        fn yaml(&self) -> String {
            self.yaml_with(|_| true)
        }
    }

    /// A request of a sequence: tool, session (index into `SESSIONS`), `params.x`, and
    /// the step from the previous request's time (index into `STEPS`).
    #[derive(Clone, Debug)]
    struct Req {
        tool: u8,
        session: usize,
        x: u8,
        step: usize,
    }

    fn arb_reqs() -> impl Strategy<Value = Vec<Req>> {
        prop::collection::vec(
            (0u8..3, 0..SESSIONS.len(), 0u8..3, 0..STEPS.len()).prop_map(|(tool, session, x, step)| Req {
                tool,
                session,
                x,
                step,
            }),
            1..16,
        )
    }

    /// The requests with their times (non-decreasing), as parsed requests.
    fn requests(reqs: &[Req]) -> Vec<(Request, i64)> {
        let mut t = BASE_MS;
        reqs.iter()
            .map(|q| {
                t += STEPS[q.step];
                let session = SESSIONS[q.session].map(|s| format!(r#","session":"{s}""#)).unwrap_or_default();
                let json = format!(
                    r#"{{"agent":"a","tool":"t{}"{session},"params":{{"x":{}}},"time":"{}"}}"#,
                    q.tool,
                    q.x,
                    aegis_core::time::format_utc(t)
                );
                (Request::from_json(&json, &RequestLimits::default()).unwrap(), t)
            })
            .collect()
    }

    fn engine(yaml: &str, max_sessions: usize) -> Engine {
        let o = EngineOptions { max_sessions, marks_ttl_ms: 90_000, ..EngineOptions::default() };
        Engine::from_yaml(yaml, o).unwrap_or_else(|e| panic!("{yaml}\n{e}"))
    }

    fn rank(o: Outcome) -> u8 {
        match o {
            Outcome::Allow => 0,
            Outcome::RequireApproval => 1,
            Outcome::Deny => 2,
        }
    }

    fn subset(a: &[String], b: &[String]) -> bool {
        a.iter().all(|x| b.contains(x))
    }

    fn brief(d: &Decision) -> String {
        format!("{} {:?} errors {:?} marks {:?}", d.outcome.as_str(), d.rules, d.errors, d.audit.marks)
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        /// Rules that do not read marks decide the same way whatever the session's marks,
        /// and deny > require_approval > allow: so when they alone decide `deny` (or
        /// `require_approval`) by a rule, the full bundle — reading marks, after any
        /// sequence of calls, with any table size — decides at least as strictly, and
        /// with those rules among its own (or `state:full`, which only denies).
        #[test]
        fn marks_never_turn_a_rule_deny_into_allow(
            b in arb_bundle(true),
            reqs in arb_reqs(),
            max_sessions in prop_oneof![Just(1usize), Just(2), Just(100_000)],
        ) {
            let full = engine(&b.yaml(), max_sessions);
            let plain_yaml = b.yaml_with(|r| !r.when.reads());
            let plain = engine(&plain_yaml, 100_000);
            for (i, (r, _)) in requests(&reqs).iter().enumerate() {
                let d = full.evaluate(r).unwrap();
                let p = plain.evaluate(r).unwrap();
                if p.rules == ["default"] || p.outcome == Outcome::Allow {
                    continue;
                }
                let why = || format!("request {i} of {reqs:?}\n{}\nwithout marks-reading rules: {}\nwith: {}", b.yaml(), brief(&p), brief(&d));
                prop_assert!(rank(d.outcome) >= rank(p.outcome), "{}", why());
                if d.rules != ["state:full"] && d.outcome == p.outcome {
                    prop_assert!(subset(&p.rules, &d.rules), "{}", why());
                }
                if d.rules == ["state:full"] {
                    prop_assert_eq!(d.outcome, Outcome::Deny);
                }
            }
        }

        /// Marks that no rule reads never change a decision: each call of a sequence is
        /// decided (outcome, rules, reason, errors) exactly as on a fresh engine.
        #[test]
        fn marks_that_are_never_read_change_no_decision(b in arb_bundle(false), reqs in arb_reqs()) {
            let yaml = b.yaml();
            let e = engine(&yaml, 100_000);
            for (r, _) in requests(&reqs) {
                let d = e.evaluate(&r).unwrap();
                let alone = engine(&yaml, 100_000).evaluate(&r).unwrap();
                prop_assert_eq!(
                    (d.outcome, &d.rules, &d.reason, &d.errors),
                    (alone.outcome, &alone.rules, &alone.reason, &alone.errors),
                    "{}", yaml
                );
            }
        }

        /// Same bundle, same requests, fresh engine: byte-identical records (marks
        /// included) and the same live marks per session afterwards.
        #[test]
        fn replay_gives_the_same_marks_and_records(
            b in arb_bundle(true),
            reqs in arb_reqs(),
            max_sessions in prop_oneof![Just(1usize), Just(100_000)],
        ) {
            let yaml = b.yaml();
            let reqs = requests(&reqs);
            let end = reqs.last().unwrap().1;
            let run = || {
                let sink = MemorySink::default();
                let mut o = EngineOptions { max_sessions, marks_ttl_ms: 90_000, ..EngineOptions::default() };
                o.sinks.push(Box::new(sink.clone()));
                o.clock = Some(Arc::new(move || end));
                let e = Engine::from_yaml(&yaml, o).unwrap();
                let lines: Vec<String> = reqs.iter().map(|(r, _)| e.evaluate(r).unwrap().audit.to_json()).collect();
                let marks: Vec<Vec<String>> = ["s1", "s2"].iter().map(|s| e.marks(s).unwrap()).collect();
                let sunk = sink.0.lock().unwrap().clone();
                (lines, sunk, marks)
            };
            let (lines1, sunk1, marks1) = run();
            let (lines2, sunk2, marks2) = run();
            prop_assert_eq!(&lines1, &sunk1, "the sink gets the decision's record");
            prop_assert_eq!(&sunk1, &sunk2);
            prop_assert_eq!(&lines1, &lines2);
            prop_assert_eq!(&marks1, &marks2);
            for line in &lines1 {
                let v = aegis_core::json::parse(line, 8).unwrap();
                let aegis_core::Value::Object(o) = v else { panic!("{line}") };
                if let Some(aegis_core::Value::Array(m)) = o.get("marks") {
                    let m: Vec<&str> = m.iter().map(|x| x.as_str().unwrap()).collect();
                    prop_assert!(!m.is_empty() && m.windows(2).all(|w| w[0].as_bytes() < w[1].as_bytes()), "sorted, once each: {}", line);
                }
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

        /// Two threads marking one session at the same time never lose a mark.
        #[test]
        fn racing_threads_never_lose_a_mark(
            a in prop::collection::vec(0usize..6, 1..24),
            b in prop::collection::vec(0usize..6, 1..24),
            reads in any::<bool>(),
        ) {
            // Rule mK marks `mK` on tool tK; with `reads`, each also tests the marks.
            let mut yaml = String::from("aegis: 1\nrules:\n");
            for k in 0..6 {
                let when = if reads { format!("\n    when: {{session.marks: {{contains_none: [zz{k}]}}}}") } else { String::new() };
                yaml.push_str(&format!("  - id: m{k}\n    match: {{tool: t{k}}}{when}\n    outcome: allow\n    marks: [m{k}]\n"));
            }
            let e = Arc::new(Engine::from_yaml(&yaml, EngineOptions { clock: Some(Arc::new(|| BASE_MS)), ..EngineOptions::default() }).unwrap());
            let barrier = Arc::new(std::sync::Barrier::new(2));
            let run = |tools: Vec<usize>| {
                let (e, barrier) = (e.clone(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    tools
                        .into_iter()
                        .map(|k| {
                            let json = format!(r#"{{"agent":"a","tool":"t{k}","session":"s","time":"2026-01-05T10:00:00Z"}}"#);
                            let d = e.evaluate(&Request::from_json(&json, &RequestLimits::default()).unwrap()).unwrap();
                            (k, d.audit.marks)
                        })
                        .collect::<Vec<_>>()
                })
            };
            let (ta, tb) = (run(a.clone()), run(b.clone()));
            let (ra, rb) = (ta.join().unwrap(), tb.join().unwrap());
            let union: BTreeSet<String> = a.iter().chain(&b).map(|k| format!("m{k}")).collect();
            let union: Vec<String> = union.into_iter().collect();
            prop_assert_eq!(e.marks("s").unwrap(), union.clone());
            for records in [&ra, &rb] {
                let mut seen: BTreeSet<String> = BTreeSet::new();
                for (k, marks) in records {
                    prop_assert!(marks.contains(&format!("m{k}")), "a call's record has its own mark");
                    let now: BTreeSet<String> = marks.iter().cloned().collect();
                    prop_assert!(seen.is_subset(&now), "marks only grow: {:?} then {:?}", seen, now);
                    seen = now;
                }
            }
            prop_assert!(ra.iter().chain(&rb).any(|(_, m)| *m == union), "the last call to commit saw every mark");
        }
    }
}
