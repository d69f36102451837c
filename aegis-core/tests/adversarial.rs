//! Adversarial suite: bypass attempts an attacker-controlled agent could make.
//!
//! The attempts are data, in `tests/adversarial/*.yaml` (read with aegis-core's own
//! YAML reader). One file = one fresh engine; its cases run in order (limits, used
//! grants and kill switches carry over from case to case):
//!
//! ```yaml
//! description: what the file attacks
//! policy_file: policies/allowlist.yaml   # relative to tests/adversarial/ (or `policy: |` inline)
//! options:                               # optional
//!   approval_key: "k"                    # UTF-8 key for grants
//!   clock: "2026-01-05T10:00:00Z"        # the engine's clock (requests without `time`, grants)
//! defaults: {agent: team-a-reader, tool: files, time: "2026-01-05T10:00:00Z"}   # merged shallowly
//! cases:
//!   - name: dot-dot climbs out of /team-a
//!     category: path-traversal
//!     request: {action: read, params: {path: /team-a/../secrets}}   # merged over defaults
//!     not_allowed: true          # an ATTEMPT: outcome deny / require_approval, or a request error
//!   - name: raw text
//!     request_json: '{"agent":"a","agent":"b","tool":"t"}'          # passed as is (no defaults)
//!     request_error: true        # an ATTEMPT that must be rejected as a request error
//!   - name: a legitimate read
//!     request: {action: read, params: {path: /team-a/a.txt}}
//!     allowed: true              # a CONTROL: proves the policy is not vacuous
//!   # optional on any case:
//!   #   outcome: deny                 exact outcome expected
//!   #   errors: true|false            the decision lists (no) errors
//!   #   gen: {...}                    build big inputs (see `apply_gen`)
//!   #   grant: {for: REQ, by: WHO, ttl: SECONDS, key: K, transform: T, save: NAME}
//!   #       sets `approval` to a token for the approval id of REQ (merged over defaults,
//!   #       evaluated first as a setup call), signed with `key` (default: the engine's),
//!   #       then transformed (see `transform_token`)
//!   #   use_grant: NAME               sets `approval` to a token saved earlier
//!   #   known_bug: "..."              an open finding: reported, not failed, by the main
//!   #                                 test (none are open)
//!   - kill: {scope: agent, id: rogue, reason: compromised}       # a step, not a case
//!   - revive: {scope: agent, id: rogue}
//! ```
//!
//! `adversarial_attempts_are_never_allowed` prints the number of attempts and asserts
//! that none is allowed and every control is. Thread races (limits, grants) are plain
//! Rust tests below and are counted separately.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing, missing_docs)]

use aegis_core::value::Map;
use aegis_core::{Engine, EngineOptions, KillScope, Outcome, Request, RequestLimits, Value};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/adversarial")
}

fn obj(v: &Value) -> &Map {
    match v {
        Value::Object(m) => m,
        _ => panic!("expected a mapping, found {v:?}"),
    }
}

fn s<'a>(m: &'a Map, k: &str) -> Option<&'a str> {
    m.get(k).and_then(Value::as_str)
}

fn flag(m: &Map, k: &str) -> bool {
    matches!(m.get(k), Some(Value::Bool(true)))
}

#[derive(Default, Debug)]
struct Stats {
    attempts: usize,
    request_errors: usize,
    denied: usize,
    approval: usize,
    controls: usize,
    known_bugs: Vec<String>,
    failures: Vec<String>,
    by_category: HashMap<String, usize>,
}

/// Builds big or deep inputs that YAML cannot hold literally.
/// * `deep: N` — `params.nest` nested so that `params` is N levels deep
/// * `pad: N` — `params.pad` is a string of N `x`
/// * `concat: {key: K, parts: [[TEXT, TIMES], …]}` — `params.K` = the parts repeated
/// * `raw_brackets: N` — raw JSON with `params.x` = N nested lists (not built as a value)
fn apply_gen(gen: &Map, req: &mut Map) -> Option<String> {
    if let Some(n) = gen.get("raw_brackets").and_then(Value::as_f64) {
        let n = n as usize;
        let mut body = req.clone();
        body.remove("params");
        let mut text = Value::Object(body).to_canonical_json();
        text.pop();
        text.push_str(&format!(",\"params\":{{\"x\":{}1{}}}}}", "[".repeat(n), "]".repeat(n)));
        return Some(text);
    }
    if !req.contains_key("params") {
        req.insert("params".to_string(), Value::Object(Map::new()));
    }
    let params = match req.get_mut("params") {
        Some(Value::Object(m)) => m,
        _ => panic!("gen needs params to be a mapping"),
    };
    if let Some(n) = gen.get("deep").and_then(Value::as_f64) {
        let mut v = Value::Number(1.0);
        for _ in 0..(n as usize).saturating_sub(1) {
            let mut m = Map::new();
            m.insert("a".into(), v);
            v = Value::Object(m);
        }
        params.insert("nest".into(), v);
    }
    if let Some(n) = gen.get("pad").and_then(Value::as_f64) {
        params.insert("pad".into(), Value::String("x".repeat(n as usize)));
    }
    if let Some(Value::Object(c)) = gen.get("concat") {
        let key = s(c, "key").expect("concat.key");
        let mut out = String::new();
        if let Some(Value::Array(parts)) = c.get("parts") {
            for p in parts {
                let Value::Array(p) = p else { panic!("concat part is [TEXT, TIMES]") };
                let text = p[0].as_str().expect("text");
                let times = p[1].as_f64().expect("times") as usize;
                out.push_str(&text.repeat(times));
            }
        }
        params.insert(key.into(), Value::String(out));
    }
    None
}

/// Token transforms an attacker could try on a genuine token.
fn transform_token(t: &str, how: &str) -> String {
    let parts: Vec<&str> = t.split('.').collect();
    match how {
        "append_padding" => format!("{t}="),
        "trailing_dot" => format!("{t}."),
        "upper_version" => t.replacen("v1.", "V1.", 1),
        "v2" => t.replacen("v1.", "v2.", 1),
        "drop_mac" => format!("{}.{}.", parts[0], parts[1]),
        "mac_only" => format!("v1..{}", parts[2]),
        "std_base64" => t.replace('-', "+").replace('_', "/") + "+",
        "flip_mac_bit" => {
            let mut mac = parts[2].as_bytes().to_vec();
            mac[3] = if mac[3] == b'A' { b'B' } else { b'A' };
            format!("{}.{}.{}", parts[0], parts[1], String::from_utf8(mac).unwrap())
        }
        "truncate_mac" => format!("{}.{}.{}", parts[0], parts[1], &parts[2][..parts[2].len() - 2]),
        "swap_payload_id" | "extend_exp" => {
            // Re-encode the payload with another id (or a later exp), keep the old MAC.
            use base64::Engine as _;
            let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
            let payload = String::from_utf8(b64.decode(parts[1]).unwrap()).unwrap();
            let mut v = aegis_core::json::parse(&payload, 4).unwrap();
            let Value::Object(m) = &mut v else { panic!() };
            if how == "swap_payload_id" {
                m.insert("id".into(), Value::String(format!("apr_{}", "0".repeat(32))));
            } else {
                m.insert("exp".into(), Value::Number(4_102_444_800.0));
            }
            format!("v1.{}.{}", b64.encode(v.to_canonical_json()), parts[2])
        }
        "extra_space" => format!(" {t}"),
        "lowercase" => t.to_ascii_lowercase(),
        other => panic!("unknown transform {other}"),
    }
}

struct Run {
    stats: Stats,
    saved: HashMap<String, String>,
}

fn engine_for(file: &Path, m: &Map) -> (Engine, Option<Vec<u8>>, i64) {
    let policy = match (s(m, "policy"), s(m, "policy_file")) {
        (Some(p), _) => p.to_owned(),
        (None, Some(f)) => std::fs::read_to_string(dir().join(f)).unwrap_or_else(|e| panic!("{f}: {e}")),
        _ => panic!("{}: needs policy or policy_file", file.display()),
    };
    let opts = m.get("options").map(obj).cloned().unwrap_or_default();
    let key = s(&opts, "approval_key").map(|k| aegis_core::Key::new("approval_key", k.as_bytes()).unwrap());
    let clock = aegis_core::time::parse_rfc3339(s(&opts, "clock").unwrap_or("2026-01-05T10:00:00Z")).unwrap();
    let engine = Engine::from_yaml(
        &policy,
        EngineOptions { approval_key: key.clone(), clock: Some(Arc::new(move || clock)), ..Default::default() },
    )
    .unwrap_or_else(|e| panic!("{}: policy does not load:\n{e}", file.display()));
    (engine, key.map(|k| k.as_bytes().to_vec()), clock)
}

fn merged(defaults: &Map, req: &Map) -> Map {
    let mut r = defaults.clone();
    for (k, v) in req {
        r.insert(k.clone(), v.clone());
    }
    r
}

#[allow(clippy::large_enum_variant)] // a test helper; one per case
enum Got {
    RequestError(String),
    Decision(aegis_core::Decision),
}

fn decide(engine: &Engine, text: &str) -> Got {
    match Request::from_json(text, &RequestLimits::default()) {
        Err(e) => Got::RequestError(e.to_string()),
        Ok(r) => match engine.evaluate(&r) {
            Ok(d) => Got::Decision(d),
            Err(aegis_core::EvalError::Request(e)) => Got::RequestError(e.to_string()),
            Err(e) => panic!("audit error with no sinks: {e}"),
        },
    }
}

fn run_file(file: &Path, run: &mut Run, only_bugs: bool) {
    let text = std::fs::read_to_string(file).unwrap();
    let doc = aegis_core::yaml::parse(&text)
        .unwrap_or_else(|e| panic!("{}: {e:?}", file.display()))
        .expect("non-empty")
        .to_value();
    let m = obj(&doc);
    let (engine, key, clock) = engine_for(file, m);
    let defaults = m.get("defaults").map(obj).cloned().unwrap_or_default();
    let fname = file.file_name().unwrap().to_string_lossy().to_string();
    let Some(Value::Array(cases)) = m.get("cases") else { panic!("{fname}: no cases") };
    for c in cases {
        let c = obj(c);
        if let Some(k) = c.get("kill").map(obj) {
            let scope = KillScope::parse(s(k, "scope").unwrap()).unwrap();
            engine.kill(scope, s(k, "id").unwrap(), s(k, "reason").unwrap_or("")).unwrap();
            continue;
        }
        if let Some(k) = c.get("revive").map(obj) {
            engine.revive(KillScope::parse(s(k, "scope").unwrap()).unwrap(), s(k, "id").unwrap()).unwrap();
            continue;
        }
        let name = format!("{fname}: {}", s(c, "name").expect("every case has a name"));
        let known_bug = s(c, "known_bug");
        if only_bugs && known_bug.is_none() {
            // Still run it: earlier cases can set up state (limits, grants).
        }
        let text = if let Some(raw) = s(c, "request_json") {
            raw.to_owned()
        } else {
            let mut req = merged(&defaults, &c.get("request").map(obj).cloned().unwrap_or_default());
            let mut raw = None;
            if let Some(g) = c.get("gen").map(obj) {
                raw = apply_gen(g, &mut req);
            }
            if let Some(g) = c.get("grant").map(obj) {
                let for_req = merged(&defaults, &g.get("for").map(obj).cloned().unwrap_or_default());
                let for_text = Value::Object(for_req).to_canonical_json();
                let id = match s(g, "id") {
                    Some(id) => id.to_owned(),
                    None => match decide(&engine, &for_text) {
                        Got::Decision(d) => d.approval.map(|a| a.id).unwrap_or_else(|| {
                            panic!(
                                "{name}: the `for` request does not require approval ({:?} {:?} {} {:?})",
                                d.outcome, d.rules, d.reason, d.errors
                            )
                        }),
                        Got::RequestError(e) => panic!("{name}: `for` request invalid: {e}"),
                    },
                };
                let k = s(g, "key").map(|k| k.as_bytes().to_vec()).or_else(|| key.clone()).expect("a key");
                let ttl = g.get("ttl").and_then(Value::as_f64).unwrap_or(3600.0) as u64;
                let mut token =
                    aegis_core::issue_grant(&k, &id, s(g, "by").unwrap_or("finance-manager"), ttl, clock).unwrap();
                if let Some(t) = s(g, "transform") {
                    token = transform_token(&token, t);
                }
                if let Some(n) = s(g, "save") {
                    run.saved.insert(n.to_owned(), token.clone());
                }
                req.insert("approval".into(), Value::String(token));
            }
            if let Some(n) = s(c, "use_grant") {
                let t = run.saved.get(n).unwrap_or_else(|| panic!("{name}: no saved grant {n}")).clone();
                req.insert("approval".into(), Value::String(t));
            }
            raw.unwrap_or_else(|| Value::Object(req).to_canonical_json())
        };
        let got = decide(&engine, &text);
        let short = |t: &str| -> String {
            if t.len() > 300 {
                format!("{}… ({} bytes)", &t[..t.char_indices().nth(200).map_or(t.len(), |x| x.0)], t.len())
            } else {
                t.to_owned()
            }
        };
        let describe = |g: &Got| match g {
            Got::RequestError(e) => format!("request error: {}", short(e)),
            Got::Decision(d) => format!("{} {:?} errors={:?}", d.outcome, d.rules, d.errors),
        };
        let attempt = flag(c, "not_allowed") || flag(c, "request_error");
        let control = flag(c, "allowed");
        assert!(attempt ^ control, "{name}: exactly one of not_allowed / request_error / allowed");
        if only_bugs {
            if let Some(bug) = known_bug {
                if matches!(&got, Got::Decision(d) if d.allowed()) {
                    run.stats.failures.push(format!("{name}: STILL ALLOWED ({bug}) request {}", short(&text)));
                }
            }
            continue;
        }
        if control {
            run.stats.controls += 1;
            if !matches!(&got, Got::Decision(d) if d.allowed()) {
                run.stats.failures.push(format!("{name}: CONTROL not allowed: {}", describe(&got)));
            }
            continue;
        }
        run.stats.attempts += 1;
        *run.stats.by_category.entry(s(c, "category").unwrap_or("other").to_owned()).or_default() += 1;
        if let Some(bug) = known_bug {
            run.stats.known_bugs.push(format!("{name}: {bug} -> {}", describe(&got)));
            continue;
        }
        match &got {
            Got::RequestError(_) => run.stats.request_errors += 1,
            Got::Decision(d) if d.outcome == Outcome::Deny => run.stats.denied += 1,
            Got::Decision(d) if d.outcome == Outcome::RequireApproval => run.stats.approval += 1,
            Got::Decision(_) => {}
        }
        let fail = match &got {
            Got::Decision(d) if d.allowed() => Some("BYPASS: ALLOWED".to_string()),
            Got::Decision(_) if flag(c, "request_error") => Some("expected a request error".to_string()),
            Got::Decision(d) => {
                let mut why = None;
                if let Some(o) = s(c, "outcome") {
                    if d.outcome.as_str() != o {
                        why = Some(format!("expected outcome {o}"));
                    }
                }
                match c.get("errors") {
                    Some(Value::Bool(true)) if d.errors.is_empty() => why = Some("expected listed errors".into()),
                    Some(Value::Bool(false)) if !d.errors.is_empty() => why = Some("expected no errors".into()),
                    _ => {}
                }
                why
            }
            Got::RequestError(_) if s(c, "outcome").is_some() => Some("expected a decision".to_string()),
            Got::RequestError(_) => None,
        };
        if let Some(f) = fail {
            run.stats.failures.push(format!("{name}: {f}: got {}; request {}", describe(&got), short(&text)));
        }
    }
}

fn files() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir())
        .expect("tests/adversarial exists")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    v.sort();
    v
}

#[test]
fn adversarial_attempts_are_never_allowed() {
    let mut run = Run { stats: Stats::default(), saved: HashMap::new() };
    for f in files() {
        run.saved.clear();
        run_file(&f, &mut run, false);
    }
    let st = &run.stats;
    let mut cats: Vec<_> = st.by_category.iter().collect();
    cats.sort();
    println!(
        "adversarial: {} attempts ({} request errors, {} denied, {} require_approval, {} known bugs), {} controls",
        st.attempts,
        st.request_errors,
        st.denied,
        st.approval,
        st.known_bugs.len(),
        st.controls
    );
    for (c, n) in cats {
        println!("  {c}: {n}");
    }
    for b in &st.known_bugs {
        println!("  KNOWN BUG (skipped here): {b}");
    }
    assert!(st.attempts >= 100, "at least 100 attempts, found {}", st.attempts);
    assert!(st.failures.is_empty(), "{} failures:\n{}", st.failures.len(), st.failures.join("\n"));
}

// ---------------------------------------------------------------------------------
// Races: limits and grants under concurrent evaluation (never more than max).

const RACE_POLICY: &str = r#"
aegis: 1
rules:
  - id: refunds
    match: {agent: "support-*", tool: refunds}
    when: {params.amount: {gte: 0}}
    outcome: allow
  - id: big
    match: {tool: payments}
    outcome: require_approval
    approvers: [boss]
limits:
  - id: refund-calls
    match: {tool: refunds, action: create}
    window: 1h
    max_calls: 10
  - id: refund-sum
    match: {tool: refunds, action: sum}
    window: 1h
    sum: params.amount
    max_sum: 100
"#;

const T0: i64 = 1_767_607_200_000; // 2026-01-05T10:00:00Z

fn race_engine(key: Option<&[u8]>) -> Arc<Engine> {
    Arc::new(
        Engine::from_yaml(
            RACE_POLICY,
            EngineOptions {
                approval_key: key.map(|k| aegis_core::Key::new("approval_key", k).unwrap()),
                clock: Some(Arc::new(|| T0)),
                ..Default::default()
            },
        )
        .unwrap(),
    )
}

fn hammer(engine: &Arc<Engine>, threads: usize, per: usize, json: impl Fn(usize, usize) -> String + Sync) -> usize {
    let json = &json;
    std::thread::scope(|sc| {
        let hs: Vec<_> = (0..threads)
            .map(|t| {
                let e = Arc::clone(engine);
                sc.spawn(move || {
                    let mut allowed = 0;
                    for i in 0..per {
                        let r = Request::from_json(&json(t, i), &RequestLimits::default()).unwrap();
                        if e.evaluate(&r).unwrap().allowed() {
                            allowed += 1;
                        }
                    }
                    allowed
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).sum()
    })
}

#[test]
fn raced_max_calls_never_exceeded() {
    for round in 0..5 {
        let e = race_engine(None);
        let allowed = hammer(&e, 8, 40, |t, i| {
            format!(
                r#"{{"agent":"support-{t}","tool":"refunds","action":"create","session":"s{i}","params":{{"amount":1}},"time":"2026-01-05T10:0{round}:00Z"}}"#
            )
        });
        assert_eq!(allowed, 10, "round {round}: exactly max_calls allows");
    }
}

#[test]
fn raced_max_sum_never_exceeded() {
    for round in 0..5 {
        let e = race_engine(None);
        // 7 per call: 14 calls reach 98, the 15th would pass 100.
        let allowed = hammer(&e, 8, 40, |t, _| {
            format!(
                r#"{{"agent":"support-{t}","tool":"refunds","action":"sum","params":{{"amount":7}},"time":"2026-01-05T10:0{round}:00Z"}}"#
            )
        });
        assert_eq!(allowed, 14, "round {round}");
    }
}

#[test]
fn raced_negative_amounts_never_refill_a_budget() {
    let e = race_engine(None);
    // Half the threads try to refill with negative amounts; the budget still caps at 100.
    let n = hammer(&e, 8, 40, |t, i| {
        let amount = if t % 2 == 0 { 10.0 } else { -10.0 - i as f64 };
        format!(
            r#"{{"agent":"support-x","tool":"refunds","action":"sum","params":{{"amount":{amount}}},"time":"2026-01-05T10:00:00Z"}}"#
        )
    });
    // The negative calls are denied by the limit; only 10 positive calls of 10 fit.
    assert_eq!(n, 10);
}

#[test]
fn raced_grant_is_used_once() {
    let key = b"race-key";
    for _ in 0..5 {
        let e = race_engine(Some(key));
        let base = r#"{"agent":"a","tool":"payments","params":{"amount":1},"time":"2026-01-05T10:00:00Z"}"#;
        let d = e.evaluate(&Request::from_json(base, &RequestLimits::default()).unwrap()).unwrap();
        let token = e.grant(&d.approval.unwrap().id, "boss", 3600).unwrap();
        let with = format!(
            r#"{{"agent":"a","tool":"payments","params":{{"amount":1}},"time":"2026-01-05T10:00:00Z","approval":"{token}"}}"#
        );
        let allowed = hammer(&e, 8, 10, |_, _| with.clone());
        assert_eq!(allowed, 1, "one grant, one action");
    }
}

#[test]
fn raced_kill_switch_takes_effect_for_every_later_call() {
    let e = race_engine(None);
    e.kill(KillScope::Agent, "support-3", "compromised").unwrap();
    let allowed = hammer(&e, 4, 20, |_, i| {
        format!(
            r#"{{"agent":"support-{}","tool":"refunds","params":{{"amount":1}},"chain":["support-3"],"time":"2026-01-05T10:00:00Z"}}"#,
            i % 5
        )
    });
    assert_eq!(allowed, 0, "a killed agent in the chain denies every call");
}
