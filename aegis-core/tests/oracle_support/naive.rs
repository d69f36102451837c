//! The differential oracle's shared half: random bundles and request sequences, and a
//! deliberately naive evaluator written from SPEC.md §2–§4, §6.2 and §10 and
//! docs/policy-language.md (every rule in bundle order, no index; its own Kleene logic,
//! glob matching, path resolution, `within` and `domain_in`; its own session → marks
//! map with expiries, never pruned). Used by `tests/oracle.rs` (proptest) and by the
//! `oracle` fuzz target (`fuzz/fuzz_targets/oracle.rs`), which includes this file.
//!
//! Session marks (§10): rules may carry `marks` (a label, or `{label, ttl}`) and test
//! `session.marks` / `session.marks.N`; each case is a sequence of requests over a few
//! sessions (and none) at non-decreasing times, on one engine, some of them re-sent
//! with a grant for the approval they were asked (§6.2: a granted call adds the marks
//! of its rules). The model agrees with the engine on outcome, rules, reason,
//! approvers, errors and the audit record (`marks` included).
//!
//! `max_sessions` (§10): the model holds every session forever and calls the table full
//! for session S at time T when at least `max_sessions` *other* sessions have a live
//! mark at T. With non-decreasing request times and a table of at most 64 sessions
//! (the engine reclaims up to 64 when a place is needed) that is exactly what a pruning
//! table does: a pruned session had no live mark, and pruning never moves past the
//! newest request time, so no request is older than pruned marks.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing, missing_docs)]
#![allow(clippy::explicit_auto_deref, dead_code)]

use aegis_core::value::Map;
use aegis_core::{Engine, EngineOptions, Key, Outcome, Request, RequestLimits, Value};
use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;

/// Requests per generated bundle (a sequence on one engine).
pub const REQS_PER_BUNDLE: usize = 12;

// ------------------------------------------------------------------ random source

/// splitmix64, optionally fed by fuzzer bytes first (8 per draw): libFuzzer's
/// mutations then steer every choice, and the seed-only form used by the tests stays
/// the same sequence as before.
pub struct Rng {
    state: u64,
    data: Vec<u8>,
    pos: usize,
}

impl Rng {
    /// Draws from splitmix64 seeded with `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng { state: seed, data: Vec::new(), pos: 0 }
    }

    /// Draws from `data` (8 bytes per draw), then from splitmix64 seeded by its length.
    pub fn from_bytes(data: &[u8]) -> Rng {
        Rng { state: data.len() as u64, data: data.to_vec(), pos: 0 }
    }

    fn next(&mut self) -> u64 {
        if let Some(b) = self.data.get(self.pos..self.pos + 8) {
            self.pos += 8;
            return u64::from_le_bytes(b.try_into().unwrap());
        }
        // splitmix64
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn chance(&mut self, pct: u64) -> bool {
        self.next() % 100 < pct
    }
    fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len())]
    }
}

// ------------------------------------------------------------------ vocabulary

const AGENTS: &[&str] = &["a", "ab", "b", "fin-1", "fin-2", "x*y"];
const TOOLS: &[&str] = &["t", "tx", "pay", "files"];
const ACTIONS: &[&str] = &["r", "w", "rw"];
const SESSIONS: &[&str] = &["s1", "s2"];
const ENVS: &[&str] = &["prod", "dev"];
const PATTERNS: &[&[&str]] = &[
    // per field: exact names and globs
    &["a", "ab", "b", "fin-1", "*", "a*", "*b", "fin-*", "a*b", "*-*", "x*y", "**", "f*n*1"],
    &["t", "tx", "pay", "files", "*", "t*", "*x", "p*y", "*s"],
    &["r", "w", "rw", "*", "r*", "*w", "r*w"],
    &["s1", "s2", "s*", "*"],
    &["prod", "dev", "p*", "*"],
];
const PATHS: &[&str] = &[
    "agent",
    "tool",
    "action",
    "session",
    "environment",
    "chain",
    "chain.0",
    "chain.1",
    "time",
    "params",
    "params.x",
    "params.y",
    "params.p",
    "params.to",
    "params.n",
    "params.x.0",
    "params.x.k",
    "params.x.00",
    "params.0",
    "params.missing",
    "context",
    "context.x",
    "context.x.k",
];
const STRINGS: &[&str] = &[
    "a",
    "ab",
    "b",
    "fin-1",
    "A",
    "",
    "/a",
    "/a/b",
    "/a/../b",
    "/ab/c",
    "a/b",
    "/a/./b/..",
    "/..",
    "//a//b",
    "/a\u{0}",
    "x@ex.com",
    "x@EX.COM.",
    "http://ex.com:80/p",
    "https://u@ev.net/",
    "https://b.ex.com",
    "ev-ex.com",
    "ex.com.ev.net",
    "a.ex.com.ev.net",
    "bad host",
    "a@b@ex.com",
    "http://ev.net\\@ex.com",
    "x@",
    "http://127.1/",
    "http://0x7f000001:80/",
    "http://[::ffff:127.0.0.1]/",
    "https://ex.com%40ev.net/",
    "ev%ev.net@ex.com",
    "DROP table",
    "Hello World",
    "é",
    "s1",
    "prod",
    "r",
];
const NUMBERS: &[f64] = &[-1.0, 0.0, 0.5, 1.0, 5.0, 100.0, 5000.0, 9007199254740991.0];
const WITHIN: &[&str] = &["/a", "/a/b", "/", "/ab", "/a/"];
const DOMAINS: &[&str] = &["ex.com", "b.ex.com", "EX.com.", "ev.net", "127.0.0.1", "[::1]"];
const REGEXES: &[&str] = &["^a", "b$", "a", "^/a", "ex", "^$"];
const OPS: &[&str] = &[
    "eq",
    "ne",
    "lt",
    "lte",
    "gt",
    "gte",
    "in",
    "not_in",
    "starts_with",
    "ends_with",
    "contains",
    "contains_any",
    "contains_none",
    "contains_all",
    "matches",
    "within",
    "domain_in",
    "count",
    "exists",
];
const KEYS: &[&str] = &["x", "y", "p", "to", "n", "k", "0", "00"];

fn gen_scalar(r: &mut Rng, allow_null: bool) -> Value {
    match r.below(if allow_null { 6 } else { 5 }) {
        0..=2 => Value::String((*r.pick(STRINGS)).to_owned()),
        3 => Value::Number(*r.pick(NUMBERS)),
        4 => Value::Bool(r.chance(50)),
        _ => Value::Null,
    }
}

fn gen_value(r: &mut Rng, depth: usize) -> Value {
    if depth == 0 || r.chance(65) {
        return gen_scalar(r, true);
    }
    if r.chance(50) {
        Value::Array((0..r.below(4)).map(|_| gen_value(r, depth - 1)).collect())
    } else {
        let mut m = Map::new();
        for _ in 0..r.below(4) {
            m.insert((*r.pick(KEYS)).to_owned(), gen_value(r, depth - 1));
        }
        Value::Object(m)
    }
}

// ------------------------------------------------------------------ marks vocabulary

/// Mark labels: byte order differs from case-insensitive and from "natural" order
/// (`0` < `B` < `a-b` < `a.b` < `a:b` < `a_b` < `pii` < `pii2` < `sus` < `untrusted`).
const LABELS: &[&str] = &["pii", "untrusted", "sus", "B", "a.b", "a:b", "a-b", "a_b", "0", "pii2"];
/// Mark ttls as written, with their length.
const TTLS: &[(&str, i64)] = &[("1s", 1000), ("30s", 30_000), ("1m", 60_000), ("2m", 120_000), ("1h", 3_600_000)];
/// `EngineOptions::marks_ttl_ms` (the ttl of a label written without one).
const DEFAULT_TTLS: &[i64] = &[1000, 60_000, 90_000, 3_600_000, 86_400_000];
/// Steps between request times: on, just before and just after the ttls.
const STEPS: &[i64] = &[0, 0, 1, 999, 1000, 1001, 29_999, 30_000, 59_999, 60_000, 61_000, 90_000, 120_000, 3_600_000];
/// 2026-01-05T10:00:00Z.
pub const BASE_MS: i64 = 1_767_607_200_000;
/// The approval key of every oracle engine.
const APPROVAL_KEY: &[u8] = b"oracle-approval-key";
/// The engine's text for a call denied by `state:full`.
const FULL_REASON: &str = "session table full: the call's marks cannot be stored";
/// The message of a `session.marks` test while the table is full.
const FULL_MESSAGE: &str = "session marks unknown: the session table is full";

/// How a case is generated.
#[derive(Clone, Copy, Debug)]
pub struct Config {
    /// `max_sessions`; `None`: 1 to 3, drawn per bundle (the table fills).
    pub max_sessions: Option<usize>,
    /// The sessions requests name (one in four requests names none).
    pub sessions: &'static [&'static str],
    /// Requests per bundle.
    pub reqs: usize,
    /// Chance (%) that a rule carries marks.
    pub marks_pct: u64,
    /// Chance (%) that a condition's test reads `session.marks`.
    pub reads_pct: u64,
}

/// The ordinary oracle: a table that never fills.
pub const NORMAL: Config = Config {
    max_sessions: Some(100_000),
    sessions: &["s1", "s2", "s3"],
    reqs: REQS_PER_BUNDLE,
    marks_pct: 35,
    reads_pct: 20,
};
/// A table of 1 to 3 sessions over five sessions: `state:full` and unknown marks.
pub const SMALL_TABLE: Config =
    Config { max_sessions: None, sessions: &["s1", "s2", "s3", "s4", "s5"], reqs: 16, marks_pct: 60, reads_pct: 25 };

// ------------------------------------------------------------------ the model

#[derive(Clone, Debug)]
enum C {
    All(Vec<C>),
    Any(Vec<C>),
    Not(Box<C>),
    /// A mapping `{PATH: {OP: operand, …}, …}`: every test, in written order.
    Map(Vec<(String, Vec<(String, Value)>)>),
}

impl C {
    /// Whether some test, anywhere below, reads `session.marks`.
    fn reads_marks(&self) -> bool {
        match self {
            C::All(ps) | C::Any(ps) => ps.iter().any(C::reads_marks),
            C::Not(p) => p.reads_marks(),
            C::Map(entries) => entries.iter().any(|(p, _)| is_marks_path(p)),
        }
    }
}

fn is_marks_path(p: &str) -> bool {
    p == "session.marks" || p.starts_with("session.marks.")
}

/// A mark a rule adds: its label and, when written, its ttl (text, ms).
#[derive(Clone, Debug)]
struct MarkSpec {
    label: String,
    ttl: Option<(String, i64)>,
}

#[derive(Clone, Debug)]
struct R {
    id: String,
    sel: [Option<Vec<String>>; 5],
    when: Option<C>,
    outcome: Outcome,
    reason: Option<String>,
    description: Option<String>,
    approvers: Vec<String>,
    marks: Vec<MarkSpec>,
}

impl R {
    fn reads_marks(&self) -> bool {
        self.when.as_ref().is_some_and(C::reads_marks)
    }
}

struct B {
    rules: Vec<R>,
    default: Outcome,
}

fn outcome_of(r: &mut Rng) -> Outcome {
    *r.pick(&[Outcome::Allow, Outcome::Deny, Outcome::RequireApproval])
}

fn gen_operand(r: &mut Rng, op: &str) -> Value {
    let strs = |r: &mut Rng, from: &[&str]| {
        Value::Array((0..1 + r.below(3)).map(|_| Value::String((*r.pick(from)).to_owned())).collect())
    };
    match op {
        "eq" | "ne" => gen_value(r, 2),
        "lt" | "lte" | "gt" | "gte" => Value::Number(*r.pick(NUMBERS)),
        "in" | "not_in" => Value::Array((0..1 + r.below(3)).map(|_| gen_scalar(r, false)).collect()),
        "starts_with" | "ends_with" => Value::String((*r.pick(&["a", "/a", "", "b", "x@", ".com"])).to_owned()),
        "contains" => gen_scalar(r, false),
        "contains_any" | "contains_none" => strs(r, &["a", "drop", "EX", "b", "fin-1", "/a"]),
        "contains_all" => Value::Array((0..1 + r.below(2)).map(|_| gen_scalar(r, false)).collect()),
        "matches" => Value::String((*r.pick(REGEXES)).to_owned()),
        "within" => {
            if r.chance(50) {
                Value::String((*r.pick(WITHIN)).to_owned())
            } else {
                strs(r, WITHIN)
            }
        }
        "domain_in" => strs(r, DOMAINS),
        "count" => {
            let mut m = Map::new();
            for _ in 0..1 + r.below(2) {
                let o = *r.pick(&["eq", "lt", "gte", "in"]);
                let v = if o == "in" {
                    Value::Array(vec![Value::Number(r.below(4) as f64), Value::Number(1.0)])
                } else {
                    Value::Number(r.below(5) as f64)
                };
                m.insert(o.to_owned(), v);
            }
            Value::Object(m)
        }
        "exists" => Value::Bool(r.chance(50)),
        _ => unreachable!(),
    }
}

fn label(r: &mut Rng) -> Value {
    Value::String((*r.pick(LABELS)).to_owned())
}

fn labels(r: &mut Rng, n: usize) -> Value {
    Value::Array((0..n).map(|_| label(r)).collect())
}

/// A test of `session.marks` (a sorted list of labels) or `session.marks.N` (a label):
/// mostly the operators a policy would use on them, sometimes any operator at all.
fn gen_marks_test(r: &mut Rng, path: &str) -> (String, Value) {
    let o = |s: &str| s.to_owned();
    if path == "session.marks" {
        match r.below(12) {
            0..=2 => (o("contains"), if r.chance(85) { label(r) } else { gen_scalar(r, false) }),
            3 => {
                let n = 1 + r.below(3);
                (o("contains_all"), labels(r, n))
            }
            4 | 5 => {
                let from = &["PII", "a", "un", "B", "0", "sus", "x", ":"];
                (o(*r.pick(&["contains_any", "contains_none"])), {
                    Value::Array((0..1 + r.below(3)).map(|_| Value::String((*r.pick(from)).to_owned())).collect())
                })
            }
            6 => (o("count"), gen_operand(r, "count")),
            7 => (o("exists"), Value::Bool(r.chance(50))),
            8 => {
                // The whole list: sorted labels, or not (never equal then).
                let n = r.below(3);
                let mut v: Vec<&str> = (0..n).map(|_| *r.pick(LABELS)).collect();
                if r.chance(70) {
                    v.sort_unstable();
                    v.dedup();
                }
                (o(*r.pick(&["eq", "ne"])), Value::Array(v.into_iter().map(|x| Value::String(x.into())).collect()))
            }
            _ => {
                let op = *r.pick(OPS);
                (o(op), gen_operand(r, op))
            }
        }
    } else {
        match r.below(6) {
            0 => (o("eq"), label(r)),
            1 => {
                let n = 1 + r.below(3);
                (o(*r.pick(&["in", "not_in"])), labels(r, n))
            }
            2 => (o("starts_with"), Value::String((*r.pick(&["a", "p", "u", "", "B", "0"])).to_owned())),
            3 => (o("exists"), Value::Bool(r.chance(50))),
            _ => {
                let op = *r.pick(OPS);
                (o(op), gen_operand(r, op))
            }
        }
    }
}

fn gen_cond(r: &mut Rng, depth: usize, cfg: &Config) -> C {
    let k = if depth == 0 { 3 } else { r.below(6) };
    match k {
        0 => C::All((0..1 + r.below(3)).map(|_| gen_cond(r, depth - 1, cfg)).collect()),
        1 => C::Any((0..1 + r.below(3)).map(|_| gen_cond(r, depth - 1, cfg)).collect()),
        2 => C::Not(Box::new(gen_cond(r, depth - 1, cfg))),
        _ => {
            let mut entries: Vec<(String, Vec<(String, Value)>)> = Vec::new();
            for _ in 0..1 + usize::from(r.chance(25)) {
                let path = if r.chance(cfg.reads_pct) {
                    (*r.pick(&[
                        "session.marks",
                        "session.marks",
                        "session.marks",
                        "session.marks.0",
                        "session.marks.1",
                    ]))
                    .to_owned()
                } else if r.chance(50) {
                    (*r.pick(&["params.p", "params.to", "params.n"])).to_owned()
                } else {
                    (*r.pick(PATHS)).to_owned()
                };
                if entries.iter().any(|(p, _)| *p == path) {
                    continue;
                }
                let mut ops: Vec<(String, Value)> = Vec::new();
                for _ in 0..1 + usize::from(r.chance(25)) {
                    let (op, v) = if is_marks_path(&path) {
                        gen_marks_test(r, &path)
                    } else {
                        let natural: &[&str] = match path.as_str() {
                            "params.p" => &["within", "starts_with", "exists"],
                            "params.to" => &["domain_in", "contains_any", "ends_with"],
                            "params.n" => &["lt", "gte", "in", "eq", "ne"],
                            _ => OPS,
                        };
                        let op = if r.chance(60) { (*r.pick(natural)).to_owned() } else { (*r.pick(OPS)).to_owned() };
                        let v = gen_operand(r, &op);
                        (op, v)
                    };
                    if !ops.iter().any(|(o, _)| *o == op) {
                        ops.push((op, v));
                    }
                }
                entries.push((path, ops));
            }
            C::Map(entries)
        }
    }
}

fn gen_marks(r: &mut Rng) -> Vec<MarkSpec> {
    let mut out: Vec<MarkSpec> = Vec::new();
    for _ in 0..1 + r.below(3) {
        let label = (*r.pick(LABELS)).to_owned();
        if out.iter().any(|m| m.label == label) {
            continue; // each label once in a rule (a load error otherwise)
        }
        let ttl = r.chance(50).then(|| {
            let (t, ms) = *r.pick(TTLS);
            (t.to_owned(), ms)
        });
        out.push(MarkSpec { label, ttl });
    }
    out
}

fn gen_bundle(r: &mut Rng, cfg: &Config) -> B {
    let n = 1 + r.below(7);
    let rules = (0..n)
        .map(|i| {
            let mut sel: [Option<Vec<String>>; 5] = Default::default();
            for (f, s) in sel.iter_mut().enumerate() {
                let p = if f < 3 { 35 } else { 8 };
                if r.chance(p) {
                    *s = Some((0..1 + r.below(2)).map(|_| (*r.pick(PATTERNS[f])).to_owned()).collect());
                }
            }
            let outcome = outcome_of(r);
            R {
                id: format!("r{i}"),
                sel,
                when: r.chance(80).then(|| gen_cond(r, 2, cfg)),
                outcome,
                reason: r.chance(30).then(|| format!("because {i}")),
                description: r.chance(30).then(|| format!("rule number {i}")),
                approvers: if outcome == Outcome::RequireApproval {
                    (0..r.below(3)).map(|_| (*r.pick(&["alice", "bob", "carol"])).to_owned()).collect()
                } else {
                    Vec::new()
                },
                marks: if r.chance(cfg.marks_pct) { gen_marks(r) } else { Vec::new() },
            }
        })
        .collect();
    B { rules, default: outcome_of(r) }
}

fn gen_request(r: &mut Rng, cfg: &Config, time_ms: i64) -> Map {
    let mut m = Map::new();
    let s = |x: &str| Value::String(x.to_owned());
    m.insert("agent".into(), s(*r.pick(AGENTS)));
    m.insert("tool".into(), s(*r.pick(TOOLS)));
    if r.chance(70) {
        m.insert("action".into(), s(*r.pick(ACTIONS)));
    }
    if r.chance(75) {
        m.insert("session".into(), s(*r.pick(cfg.sessions)));
    }
    if r.chance(50) {
        m.insert("environment".into(), s(*r.pick(ENVS)));
    }
    if r.chance(50) {
        m.insert("chain".into(), Value::Array((0..r.below(3)).map(|_| s(*r.pick(AGENTS))).collect()));
    }
    if r.chance(85) {
        let mut p = Map::new();
        for _ in 0..r.below(5) {
            p.insert((*r.pick(KEYS)).to_owned(), gen_value(r, 2));
        }
        if r.chance(30) {
            p.insert("x".into(), Value::Array((0..r.below(3)).map(|_| gen_value(r, 1)).collect()));
        }
        // Typed keys, so the boundary operators see values of their own kind.
        const PATHV: &[&str] = &[
            "/a",
            "/a/b",
            "/a/../b",
            "/ab/c",
            "a/b",
            "/a/./b/..",
            "/..",
            "//a//b",
            "/a\u{0}",
            "/",
            "/a/b/../../a",
            "/b",
        ];
        const HOSTV: &[&str] = &[
            "x@ex.com",
            "x@EX.COM.",
            "http://ex.com:80/p",
            "https://u@ev.net/",
            "https://b.ex.com",
            "ev-ex.com",
            "ex.com.ev.net",
            "a.ex.com.ev.net",
            "bad host",
            "a@b@ex.com",
            "http://ev.net\\@ex.com",
            "x@",
            "http://127.1/",
            "http://0x7f000001:80/",
            "http://[::ffff:127.0.0.1]/",
            "https://ex.com%40ev.net/",
            "ev%ev.net@ex.com",
            "b.ex.com",
            "ftp://ex.com:x/",
        ];
        if r.chance(60) {
            let v = if r.chance(70) {
                s(*r.pick(PATHV))
            } else {
                Value::Array((0..r.below(3)).map(|_| s(*r.pick(PATHV))).collect())
            };
            p.insert("p".into(), v);
        }
        if r.chance(60) {
            let v = if r.chance(70) {
                s(*r.pick(HOSTV))
            } else {
                Value::Array((0..r.below(3)).map(|_| s(*r.pick(HOSTV))).collect())
            };
            p.insert("to".into(), v);
        }
        if r.chance(60) {
            p.insert("n".into(), Value::Number(*r.pick(NUMBERS)));
        }
        m.insert("params".into(), Value::Object(p));
    }
    if r.chance(30) {
        let mut c = Map::new();
        if r.chance(70) {
            c.insert("x".into(), gen_value(r, 2));
        }
        m.insert("context".into(), Value::Object(c));
    }
    m.insert("time".into(), s(&fmt_time(time_ms)));
    m
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ` (the engine's form of a resolved time), from days since
/// the epoch by the civil-from-days algorithm.
pub fn fmt_time(ms: i64) -> String {
    let days = ms.div_euclid(86_400_000);
    let rem = ms.rem_euclid(86_400_000);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3_600_000,
        rem / 60_000 % 60,
        rem / 1000 % 60,
        rem % 1000
    )
}

// ------------------------------------------------------------------ rendering (JSON is YAML)

fn j(v: &Value) -> String {
    v.to_canonical_json()
}
fn js(s: &str) -> String {
    j(&Value::String(s.to_owned()))
}

fn render_cond(c: &C) -> String {
    match c {
        C::All(ps) => format!("{{\"all\": [{}]}}", ps.iter().map(render_cond).collect::<Vec<_>>().join(", ")),
        C::Any(ps) => format!("{{\"any\": [{}]}}", ps.iter().map(render_cond).collect::<Vec<_>>().join(", ")),
        C::Not(p) => format!("{{\"not\": {}}}", render_cond(p)),
        C::Map(entries) => {
            let e: Vec<String> = entries
                .iter()
                .map(|(p, ops)| {
                    let o: Vec<String> = ops.iter().map(|(op, v)| format!("{}: {}", js(op), j(v))).collect();
                    format!("{}: {{{}}}", js(p), o.join(", "))
                })
                .collect();
            format!("{{{}}}", e.join(", "))
        }
    }
}

const FIELDS: [&str; 5] = ["agent", "tool", "action", "session", "environment"];

fn render(b: &B) -> String {
    let mut y = format!("aegis: 1\ndefault: {}\nrules:\n", b.default.as_str());
    for r in &b.rules {
        y.push_str(&format!("  - id: {}\n", r.id));
        let sel: Vec<String> = r
            .sel
            .iter()
            .zip(FIELDS)
            .filter_map(|(s, f)| {
                s.as_ref().map(|ps| format!("{f}: [{}]", ps.iter().map(|p| js(p)).collect::<Vec<_>>().join(", ")))
            })
            .collect();
        if !sel.is_empty() {
            y.push_str(&format!("    match: {{{}}}\n", sel.join(", ")));
        }
        if let Some(c) = &r.when {
            y.push_str(&format!("    when: {}\n", render_cond(c)));
        }
        y.push_str(&format!("    outcome: {}\n", r.outcome.as_str()));
        if let Some(x) = &r.reason {
            y.push_str(&format!("    reason: {}\n", js(x)));
        }
        if let Some(x) = &r.description {
            y.push_str(&format!("    description: {}\n", js(x)));
        }
        if !r.approvers.is_empty() {
            y.push_str(&format!("    approvers: [{}]\n", r.approvers.join(", ")));
        }
        if !r.marks.is_empty() {
            let m: Vec<String> = r
                .marks
                .iter()
                .map(|m| match &m.ttl {
                    None => js(&m.label),
                    Some((t, _)) => format!("{{label: {}, ttl: {}}}", js(&m.label), js(t)),
                })
                .collect();
            y.push_str(&format!("    marks: [{}]\n", m.join(", ")));
        }
    }
    y
}

// ------------------------------------------------------------------ the naive evaluator

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum T {
    True,
    False,
    Err,
}

type Errs = Vec<(String, String)>; // (path, message)

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "list",
        Value::Object(_) => "object",
    }
}

fn deq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Null, Value::Null) => true,
        (Value::Bool(x), Value::Bool(y)) => x == y,
        (Value::Number(x), Value::Number(y)) => x == y,
        (Value::String(x), Value::String(y)) => x == y,
        (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(p, q)| deq(p, q)),
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| deq(v, w)))
        }
        _ => false,
    }
}

/// `*` matches any run of characters, by backtracking over bytes of the name.
fn glob(p: &[u8], s: &[u8]) -> bool {
    match p.split_first() {
        None => s.is_empty(),
        Some((b'*', rest)) => (0..=s.len()).any(|i| glob(rest, &s[i..])),
        Some((c, rest)) => s.first() == Some(c) && glob(rest, &s[1..]),
    }
}

/// What the naive evaluator reads: the request as plain JSON data, its time as text
/// and the session's marks as the model holds them.
struct Env<'a> {
    req: &'a Map,
    time: &'a str,
    marks: &'a MarksV,
}

/// `session.marks` for one request.
#[derive(Clone, Debug, PartialEq)]
enum MarksV {
    /// The request has no session: the path does not resolve.
    NoSession,
    /// The table is full and does not hold the session: the path does not resolve.
    Unknown(&'static str),
    /// The session's live marks, sorted by bytes.
    Live(Vec<String>),
}

/// A path of the spec, resolved on the request (and the session's marks).
fn resolve(env: &Env<'_>, path: &str) -> Option<Value> {
    if is_marks_path(path) {
        let MarksV::Live(l) = env.marks else { return None };
        return match path.strip_prefix("session.marks.") {
            None => Some(Value::Array(l.iter().map(|x| Value::String(x.clone())).collect())),
            Some(i) => l.get(i.parse::<usize>().ok()?).map(|x| Value::String(x.clone())),
        };
    }
    let req = env.req;
    let mut segs = path.split('.');
    let root = segs.next().unwrap();
    let mut cur: Value = match root {
        "time" => Value::String(env.time.to_owned()),
        "params" => req.get("params").cloned().unwrap_or(Value::Object(Map::new())),
        "chain" => req.get("chain").cloned().unwrap_or(Value::Array(vec![])),
        other => req.get(other)?.clone(),
    };
    for seg in segs {
        let digits = seg.bytes().all(|b| b.is_ascii_digit());
        cur = match cur {
            Value::Object(m) => m.get(seg)?.clone(),
            Value::Array(a) if digits => a.get(seg.parse::<usize>().ok()?)?.clone(),
            _ => return None,
        };
    }
    Some(cur)
}

fn norm_path(p: &str) -> Result<Vec<String>, String> {
    if p.contains('\0') {
        return Err("path contains a NUL byte".into());
    }
    if !p.starts_with('/') {
        return Err(format!("\"{p}\" is not an absolute path"));
    }
    let mut out: Vec<String> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                if out.pop().is_none() {
                    return Err(format!("\"{p}\" goes above the root"));
                }
            }
            c => out.push(c.to_owned()),
        }
    }
    Ok(out)
}

fn host(v: &str) -> Option<String> {
    let h: String = if let Some(i) = v.find("://") {
        let scheme = &v[..i];
        let ok = scheme.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
            && scheme.chars().all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c));
        if !ok {
            return None;
        }
        let rest = &v[i + 3..];
        let auth: String = rest.chars().take_while(|c| !"/?#".contains(*c)).collect();
        if auth.chars().any(|c| c == '\\' || c == '%' || c.is_whitespace() || c.is_control()) {
            return None;
        }
        if auth.matches('@').count() > 1 {
            return None;
        }
        let hp = match auth.find('@') {
            Some(k) => auth[k + 1..].to_owned(),
            None => auth,
        };
        if let Some(inner) = hp.strip_prefix('[') {
            let close = inner.find(']')?;
            let port = &inner[close + 1..];
            if !(port.is_empty()
                || (port.len() > 1 && port.starts_with(':') && port[1..].bytes().all(|b| b.is_ascii_digit())))
            {
                return None;
            }
            hp[..close + 2].to_owned()
        } else {
            match hp.rfind(':') {
                Some(k) if hp[k + 1..].bytes().all(|b| b.is_ascii_digit()) => hp[..k].to_owned(),
                Some(_) => return None,
                None => hp,
            }
        }
    } else if v.contains('@') {
        if v.matches('@').count() > 1 {
            return None;
        }
        let (local, domain) = v.split_once('@')?;
        if local.is_empty()
            || local.chars().any(|c| c.is_whitespace() || c.is_control() || ",;<>()[]\\/?#:\"%!".contains(c))
        {
            return None;
        }
        domain.to_owned()
    } else {
        v.to_owned()
    };
    canon(&h)
}

/// A host or `domain_in` entry in comparable form: `ip:` + the address for IPs.
fn canon(h: &str) -> Option<String> {
    let mut h = h.to_ascii_lowercase();
    if let Some(inner) = h.strip_prefix('[').and_then(|x| x.strip_suffix(']')) {
        let ip: std::net::Ipv6Addr = inner.parse().ok()?;
        let o = ip.octets();
        if o[..10].iter().all(|&b| b == 0) && o[10] == 0xff && o[11] == 0xff {
            return Some(format!("ip:{}.{}.{}.{}", o[12], o[13], o[14], o[15]));
        }
        return Some(format!("ip:[{ip}]"));
    }
    if h.ends_with('.') {
        h.pop();
    }
    let labels: Vec<&str> = h.split('.').collect();
    let last = *labels.last()?;
    let num = |p: &str| -> Option<u128> {
        if p.is_empty() {
            return None;
        }
        if let Some(x) = p.strip_prefix("0x") {
            return if x.is_empty() {
                Some(0)
            } else {
                u128::from_str_radix(x, 16).ok().or(if x.bytes().all(|b| b.is_ascii_hexdigit()) {
                    Some(u128::MAX)
                } else {
                    None
                })
            };
        }
        if p.len() > 1 && p.starts_with('0') {
            return u128::from_str_radix(&p[1..], 8).ok().or(if p.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
                Some(u128::MAX)
            } else {
                None
            });
        }
        if !p.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        Some(p.parse::<u128>().unwrap_or(u128::MAX))
    };
    if last.bytes().all(|b| b.is_ascii_digit()) && !last.is_empty() || num(last).is_some() {
        if labels.len() > 4 {
            return None;
        }
        let nums: Vec<u128> = labels.iter().map(|p| num(p)).collect::<Option<_>>()?;
        let n = nums.len();
        if nums[..n - 1].iter().any(|&x| x > 255) || nums[n - 1] >= 1u128 << (8 * (5 - n)) {
            return None;
        }
        let mut ip = nums[n - 1];
        for (i, x) in nums[..n - 1].iter().enumerate() {
            ip += x << (8 * (3 - i));
        }
        return Some(format!("ip:{}.{}.{}.{}", ip >> 24, (ip >> 16) & 255, (ip >> 8) & 255, ip & 255));
    }
    let ok = !h.is_empty()
        && h.len() <= 253
        && h.split('.').all(|l| {
            !l.is_empty() && l.len() <= 63 && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    ok.then_some(h)
}

fn each_str(op: &str, v: &Value, f: &dyn Fn(&str) -> Result<bool, String>) -> Result<bool, String> {
    match v {
        Value::String(s) => f(s),
        Value::Array(items) => {
            let mut all = true;
            for it in items {
                let Value::String(s) = it else { return Err(format!("{op} expects strings, found {}", type_name(it))) };
                all &= f(s)?;
            }
            Ok(all)
        }
        other => Err(format!("{op} expects a string or list, found {}", type_name(other))),
    }
}

fn apply(op: &str, operand: &Value, v: &Value) -> Result<bool, String> {
    let wrong = |kind: &str| format!("{op} expects a {kind}, found {}", type_name(v));
    match op {
        "eq" => Ok(deq(v, operand)),
        "ne" => Ok(!deq(v, operand)),
        "lt" | "lte" | "gt" | "gte" => {
            let Value::Number(x) = v else { return Err(wrong("number")) };
            let n = operand.as_f64().unwrap();
            Ok(match op {
                "lt" => *x < n,
                "lte" => *x <= n,
                "gt" => *x > n,
                _ => *x >= n,
            })
        }
        "in" | "not_in" => {
            if matches!(v, Value::Array(_) | Value::Object(_)) {
                return Err(wrong("scalar"));
            }
            let Value::Array(list) = operand else { unreachable!() };
            Ok(list.iter().any(|x| deq(v, x)) == (op == "in"))
        }
        "starts_with" | "ends_with" | "matches" => {
            let Value::String(s) = v else { return Err(wrong("string")) };
            let p = operand.as_str().unwrap();
            Ok(match op {
                "starts_with" => s.starts_with(p),
                "ends_with" => s.ends_with(p),
                _ => match (p.strip_prefix('^'), p.strip_suffix('$')) {
                    (Some("$"), _) => s.is_empty(),
                    (Some(pre), _) => s.starts_with(pre),
                    (None, Some(suf)) => s.ends_with(suf),
                    (None, None) => s.contains(p),
                },
            })
        }
        "contains" => match v {
            Value::String(s) => match operand {
                Value::String(sub) => Ok(s.contains(sub.as_str())),
                _ => Err("contains on a string expects a string operand".into()),
            },
            Value::Array(items) => Ok(items.iter().any(|x| deq(x, operand))),
            _ => Err(wrong("string or list")),
        },
        "contains_any" | "contains_none" => {
            let Value::Array(list) = operand else { unreachable!() };
            let words: Vec<&str> = list.iter().map(|x| x.as_str().unwrap()).collect();
            let any = match v {
                Value::String(s) => {
                    let low = s.to_lowercase();
                    words.iter().any(|w| low.contains(&w.to_lowercase()))
                }
                Value::Array(items) => {
                    if let Some(x) = items.iter().find(|x| x.as_str().is_none()) {
                        return Err(format!("{op} expects strings, found {}", type_name(x)));
                    }
                    items.iter().any(|x| {
                        let low = x.as_str().unwrap().to_lowercase();
                        words.iter().any(|w| low.contains(&w.to_lowercase()))
                    })
                }
                _ => return Err(wrong("string or list")),
            };
            Ok(any == (op == "contains_any"))
        }
        "contains_all" => {
            let Value::Array(items) = v else { return Err(wrong("list")) };
            let Value::Array(list) = operand else { unreachable!() };
            Ok(list.iter().all(|w| items.iter().any(|x| deq(x, w))))
        }
        "within" => {
            let prefixes: Vec<Vec<String>> = match operand {
                Value::String(s) => vec![norm_path(s).unwrap()],
                Value::Array(a) => a.iter().map(|x| norm_path(x.as_str().unwrap()).unwrap()).collect(),
                _ => unreachable!(),
            };
            each_str("within", v, &|p| {
                let n = norm_path(p)?;
                Ok(prefixes.iter().any(|pre| n.len() >= pre.len() && n[..pre.len()] == pre[..]))
            })
        }
        "domain_in" => {
            let Value::Array(list) = operand else { unreachable!() };
            let doms: Vec<String> = list.iter().map(|d| canon(d.as_str().unwrap()).unwrap()).collect();
            each_str("domain_in", v, &|x| {
                let h = host(x).ok_or_else(|| format!("no host in \"{x}\""))?;
                Ok(doms.iter().any(|d| {
                    h == *d || (!h.starts_with("ip:") && !d.starts_with("ip:") && h.ends_with(&format!(".{d}")))
                }))
            })
        }
        "count" => {
            let n = match v {
                Value::String(s) => s.chars().count(),
                Value::Array(a) => a.len(),
                Value::Object(m) => m.len(),
                _ => return Err(wrong("string, list or object")),
            };
            let Value::Object(ops) = operand else { unreachable!() };
            // Operators of a mapping are applied in written order; `ops` is a sorted
            // map, so the generator's order is recovered by the caller (see `C::Map`).
            for (o, x) in ops {
                if !apply(o, x, &Value::Number(n as f64))? {
                    return Ok(false);
                }
            }
            Ok(true)
        }
        _ => unreachable!("{op}"),
    }
}

fn test(env: &Env<'_>, path: &str, op: &str, operand: &Value, errs: &mut Errs) -> T {
    let v = resolve(env, path);
    if op == "exists" {
        return if v.is_some() == (operand == &Value::Bool(true)) { T::True } else { T::False };
    }
    let Some(v) = v else {
        let message = match env.marks {
            MarksV::Unknown(why) if is_marks_path(path) => (*why).to_owned(),
            _ => format!("no value at \"{path}\""),
        };
        errs.push((path.to_owned(), message));
        return T::Err;
    };
    match apply(op, operand, &v) {
        Ok(true) => T::True,
        Ok(false) => T::False,
        Err(m) => {
            errs.push((path.to_owned(), m));
            T::Err
        }
    }
}

/// Kleene `all` over lazily evaluated parts: errors are kept only if the result is an error.
fn all(parts: &mut dyn Iterator<Item = (T, Errs)>, errs: &mut Errs) -> T {
    let mut res = T::True;
    let mut mine = Vec::new();
    for (t, e) in parts {
        match t {
            T::False => return T::False,
            T::Err => {
                res = T::Err;
                mine.extend(e);
            }
            T::True => {}
        }
    }
    errs.extend(mine);
    res
}

fn cond(env: &Env<'_>, c: &C, errs: &mut Errs) -> T {
    let sub = |c: &C| {
        let mut e = Vec::new();
        let t = cond(env, c, &mut e);
        (t, e)
    };
    match c {
        C::All(ps) => all(&mut ps.iter().map(sub), errs),
        C::Any(ps) => {
            let mut res = T::False;
            let mut mine = Vec::new();
            for p in ps {
                let (t, e) = sub(p);
                match t {
                    T::True => return T::True,
                    T::Err => {
                        res = T::Err;
                        mine.extend(e);
                    }
                    T::False => {}
                }
            }
            errs.extend(mine);
            res
        }
        C::Not(p) => match cond(env, p, errs) {
            T::True => T::False,
            T::False => T::True,
            T::Err => T::Err,
        },
        C::Map(entries) => {
            let mut tests =
                entries.iter().flat_map(|(p, ops)| ops.iter().map(move |(o, v)| (p, o, v))).map(|(p, o, v)| {
                    let mut e = Vec::new();
                    let t = test(env, p, o, v, &mut e);
                    (t, e)
                });
            all(&mut tests, errs)
        }
    }
}

/// One selector (a field the request lacks is an error, §2).
fn selector(req: &Map, f: usize, pats: &[String]) -> (T, Errs) {
    match req.get(FIELDS[f]) {
        None => (T::Err, vec![(FIELDS[f].to_owned(), format!("no value at \"{}\"", FIELDS[f]))]),
        Some(Value::String(v)) => {
            (if pats.iter().any(|p| glob(p.as_bytes(), v.as_bytes())) { T::True } else { T::False }, vec![])
        }
        _ => unreachable!(),
    }
}

/// The rule's selectors alone, in field order.
fn selectors(r: &R, req: &Map) -> T {
    let mut e = Vec::new();
    all(&mut r.sel.iter().enumerate().filter_map(|(f, s)| s.as_ref().map(|p| selector(req, f, p))), &mut e)
}

/// The decision before grants, marks storage and `state:full` (§3, §4).
struct Want {
    outcome: Outcome,
    rules: Vec<String>,
    reason: String,
    approvers: Option<Vec<String>>,
    errors: Vec<(String, String, String)>,
    /// The rules in `rules` that carry marks (indices into the bundle).
    marking: Vec<usize>,
    /// Whether a rule whose selectors are not false tests `session.marks`.
    reads: bool,
}

fn oracle(b: &B, env: &Env<'_>) -> Want {
    let req = env.req;
    let mut errors = Vec::new();
    let mut applying: Vec<usize> = Vec::new();
    let mut reads = false;
    for (k, r) in b.rules.iter().enumerate() {
        // all(selectors in field order…, when)
        let mut parts: Vec<Box<dyn Fn() -> (T, Errs) + '_>> = Vec::new();
        for (f, s) in r.sel.iter().enumerate() {
            if let Some(pats) = s {
                parts.push(Box::new(move || selector(req, f, pats)));
            }
        }
        if let Some(c) = &r.when {
            parts.push(Box::new(move || {
                let mut e = Vec::new();
                let t = cond(env, c, &mut e);
                (t, e)
            }));
        }
        let mut e = Vec::new();
        let t = all(&mut parts.iter().map(|p| p()), &mut e);
        if t == T::Err {
            errors.extend(e.into_iter().map(|(p, m)| (r.id.clone(), p, m)));
        }
        if t == T::True || (t == T::Err && r.outcome != Outcome::Allow) {
            applying.push(k);
        }
        reads |= r.reads_marks() && selectors(r, req) != T::False;
    }
    let rank = |o: Outcome| match o {
        Outcome::Allow => 0,
        Outcome::RequireApproval => 1,
        Outcome::Deny => 2,
    };
    let Some(best) = applying.iter().map(|&k| b.rules[k].outcome).max_by_key(|o| rank(*o)) else {
        return Want {
            outcome: b.default,
            rules: vec!["default".into()],
            reason: format!("no rule applies; the bundle default is {}", b.default.as_str()),
            approvers: (b.default == Outcome::RequireApproval).then(Vec::new),
            errors,
            marking: Vec::new(),
            reads,
        };
    };
    let winners: Vec<usize> = applying.into_iter().filter(|&k| b.rules[k].outcome == best).collect();
    let first = &b.rules[winners[0]];
    let reason = first
        .reason
        .clone()
        .or_else(|| first.description.clone())
        .unwrap_or_else(|| format!("rule \"{}\" decided {}", first.id, best.as_str()));
    let approvers = (best == Outcome::RequireApproval).then(|| {
        let mut a: Vec<String> = Vec::new();
        for &w in &winners {
            for x in &b.rules[w].approvers {
                if !a.contains(x) {
                    a.push(x.clone());
                }
            }
        }
        a
    });
    Want {
        outcome: best,
        rules: winners.iter().map(|&k| b.rules[k].id.clone()).collect(),
        reason,
        approvers,
        errors,
        marking: winners.iter().copied().filter(|&k| !b.rules[k].marks.is_empty()).collect(),
        reads,
    }
}

// ------------------------------------------------------------------ the marks model

/// session → label → expiry (ms): every mark ever added, never pruned.
#[derive(Default, Debug)]
struct MarkState(BTreeMap<String, BTreeMap<String, i64>>);

impl MarkState {
    /// The session's live marks at `t` (live while `t < expiry`), in byte order.
    fn live(&self, s: &str, t: i64) -> Vec<String> {
        self.0.get(s).map(|m| m.iter().filter(|(_, &e)| t < e).map(|(l, _)| l.clone()).collect()).unwrap_or_default()
    }

    /// How many sessions other than `s` have a live mark at `t`.
    fn live_others(&self, s: &str, t: i64) -> usize {
        self.0.iter().filter(|(k, m)| k.as_str() != s && m.values().any(|&e| t < e)).count()
    }

    /// Adds a mark; one already there keeps the later expiry.
    fn add(&mut self, s: &str, label: &str, expiry: i64) {
        let e = self.0.entry(s.to_owned()).or_default().entry(label.to_owned()).or_insert(expiry);
        *e = (*e).max(expiry);
    }
}

// ------------------------------------------------------------------ one case

/// A count of this thread's cases (the test harness runs tests on parallel threads:
/// a process-wide count would mix a sweep's coverage with other tests'). `load` and
/// `fetch_add` as on an atomic; the ordering is ignored.
pub struct Counter(usize);

thread_local! {
    static COUNTS: [Cell<usize>; 8] = Default::default();
}

impl Counter {
    pub fn load(&self, _: Ordering) -> usize {
        COUNTS.with(|c| c[self.0].get())
    }
    pub fn fetch_add(&self, n: usize, _: Ordering) -> usize {
        COUNTS.with(|c| c[self.0].replace(c[self.0].get() + n))
    }
}

/// Cases ((bundle, request) pairs) compared so far in this thread.
pub static CASES: Counter = Counter(0);
/// …of which the record showed marks.
pub static MARKED_RECORDS: Counter = Counter(1);
/// …of which a rule testing `session.marks` saw a non-empty list.
pub static READ_NONEMPTY: Counter = Counter(2);
/// …of which were denied by `state:full`.
pub static FULL_DENIALS: Counter = Counter(3);
/// …of which read marks the full table could not know.
pub static UNKNOWN_READS: Counter = Counter(4);
/// …of which a grant allowed.
pub static GRANTED: Counter = Counter(5);
/// …of which carried a grant that was refused.
pub static GRANT_REFUSED: Counter = Counter(6);
/// …of which had no session and listed `no session: marks not recorded`.
pub static NOT_RECORDED: Counter = Counter(7);

/// A `require_approval` decision the next request may re-send with a grant.
struct Asked {
    req: Map,
    id: String,
    rules: Vec<String>,
    time: i64,
}

/// A grant a request carries.
#[derive(Clone)]
struct Sent {
    token: String,
    by: String,
    exp: i64,
    id: String,
    rules: Vec<String>,
}

/// [`check_with`] under [`NORMAL`].
pub fn check(r: Rng, label: &str) -> Result<(), String> {
    check_with(r, label, &NORMAL)
}

/// Builds one bundle and a sequence of `cfg.reqs` requests from `r` and decides them
/// in order on one engine, comparing each decision with the model: outcome, rules,
/// errors, reason, approvers, approval id, and the record (its fields, its place in
/// the chain and its `marks`).
pub fn check_with(mut r: Rng, label: &str, cfg: &Config) -> Result<(), String> {
    let b = gen_bundle(&mut r, cfg);
    let yaml = render(&b);
    let cap = cfg.max_sessions.unwrap_or_else(|| 1 + r.below(3));
    let default_ttl = *r.pick(DEFAULT_TTLS);
    let options = EngineOptions {
        max_sessions: cap,
        marks_ttl_ms: default_ttl,
        approval_key: Some(Key::new("approval_key", APPROVAL_KEY.to_vec()).unwrap()),
        ..EngineOptions::default()
    };
    let engine = match Engine::from_yaml(&yaml, options) {
        Ok(e) => e,
        Err(e) => return Err(format!("bundle did not load:\n{yaml}\n{e}")),
    };
    let mut state = MarkState::default();
    let mut used: BTreeSet<String> = BTreeSet::new();
    let mut t = BASE_MS + r.below(1000) as i64;
    let mut asked: Option<Asked> = None;
    let mut last_sent: Option<(Map, Sent)> = None;
    let mut prev_hash = "0".repeat(64);
    let mut history: Vec<String> = Vec::new();
    for i in 0..cfg.reqs {
        t += *r.pick(STEPS);
        let mut sent: Option<Sent> = None;
        let mut req = if let Some(a) = asked.take().filter(|_| r.chance(60)) {
            // Re-sent with a grant for the approval it was asked.
            let by = format!("approver-{i}");
            let ttl = *r.pick(&[1u64, 3600]);
            let token = aegis_core::issue_grant(APPROVAL_KEY, &a.id, &by, ttl, a.time).unwrap();
            sent = Some(Sent { token, by, exp: a.time.div_euclid(1000) + ttl as i64, id: a.id, rules: a.rules });
            a.req
        } else if let Some((req, s)) = last_sent.take().filter(|_| r.chance(40)) {
            // The same grant again.
            sent = Some(s);
            req
        } else {
            gen_request(&mut r, cfg, t)
        };
        let time_s = fmt_time(t);
        req.insert("time".into(), Value::String(time_s.clone()));
        req.remove("approval");
        if let Some(s) = &sent {
            req.insert("approval".into(), Value::String(s.token.clone()));
        }
        let text = Value::Object(req.clone()).to_canonical_json();
        history.push(text.clone());
        let parsed = Request::from_json(&text, &RequestLimits::default())
            .map_err(|e| format!("generated an invalid request {text}: {e}"))?;
        let d = engine.evaluate(&parsed).map_err(|e| format!("evaluate failed: {e}"))?;

        // ---- the model
        let session = req.get("session").and_then(Value::as_str).map(str::to_owned);
        let seen = match &session {
            None => MarksV::NoSession,
            Some(s) if state.live_others(s, t) >= cap => MarksV::Unknown(FULL_MESSAGE),
            Some(s) => MarksV::Live(state.live(s, t)),
        };
        let env = Env { req: &req, time: &time_s, marks: &seen };
        let mut w = oracle(&b, &env);
        let mut approved_by: Option<String> = None;
        let mut granted = false;
        if let (Outcome::RequireApproval, Some(s)) = (w.outcome, &sent) {
            let why = if s.exp.saturating_mul(1000) <= t {
                Some("grant expired")
            } else if w.rules != s.rules {
                Some("grant is for another request")
            } else if used.contains(&s.token) {
                Some("grant already used")
            } else {
                None
            };
            match why {
                Some(m) => {
                    w.errors.push((w.rules[0].clone(), "approval".into(), m.into()));
                    GRANT_REFUSED.fetch_add(1, Ordering::Relaxed);
                }
                None => {
                    w.outcome = Outcome::Allow;
                    w.approvers = None;
                    w.reason = format!("approved by {}: {}", s.by, w.reason);
                    approved_by = Some(s.by.clone());
                    granted = true;
                }
            }
        }
        if session.is_none() {
            for &k in &w.marking {
                w.errors.push((b.rules[k].id.clone(), "session".into(), "no session: marks not recorded".into()));
                NOT_RECORDED.fetch_add(1, Ordering::Relaxed);
            }
        }
        let adds = w.outcome != Outcome::RequireApproval && !w.marking.is_empty();
        let full = adds && session.as_deref().is_some_and(|s| state.live_others(s, t) >= cap);
        let mut record_marks = Vec::new();
        if full {
            w.outcome = Outcome::Deny;
            w.rules = vec!["state:full".into()];
            w.reason = FULL_REASON.into();
            w.approvers = None;
            w.errors =
                vec![("state:full".into(), "state".into(), format!("max_sessions ({cap}) sessions hold live marks"))];
            approved_by = None;
            granted = false;
            FULL_DENIALS.fetch_add(1, Ordering::Relaxed);
        } else if let Some(s) = &session {
            if adds {
                for &k in &w.marking {
                    for m in &b.rules[k].marks {
                        state.add(s, &m.label, t + m.ttl.as_ref().map_or(default_ttl, |x| x.1));
                    }
                }
            }
            if w.reads || !w.marking.is_empty() {
                record_marks = state.live(s, t);
            }
        }
        if granted {
            used.insert(sent.as_ref().unwrap().token.clone());
            GRANTED.fetch_add(1, Ordering::Relaxed);
        }
        let want_approval_id = if full {
            None
        } else if w.outcome == Outcome::RequireApproval {
            d.approval.as_ref().map(|a| a.id.clone())
        } else if granted {
            sent.as_ref().map(|s| s.id.clone())
        } else {
            None
        };

        // ---- compare
        let got_errors: Vec<(String, String, String)> =
            d.errors.iter().map(|e| (e.rule.clone(), e.path.clone(), e.message.clone())).collect();
        let got_approvers = d.approval.as_ref().map(|a| a.approvers.clone());
        let ctx = || {
            format!(
                "\n--- bundle ({label}; max_sessions {cap}, marks_ttl {default_ttl} ms):\n{yaml}--- requests (the last one disagrees):\n{}\n--- model's marks: {:?}\n",
                history.join("\n"),
                state
            )
        };
        if d.outcome != w.outcome {
            return Err(format!("outcome: engine {:?}, oracle {:?}{}", d.outcome, w.outcome, ctx()));
        }
        if d.rules != w.rules {
            return Err(format!("rules: engine {:?}, oracle {:?}{}", d.rules, w.rules, ctx()));
        }
        if got_errors != w.errors {
            return Err(format!("errors: engine {got_errors:?}, oracle {:?}{}", w.errors, ctx()));
        }
        if d.reason != w.reason {
            return Err(format!("reason: engine {:?}, oracle {:?}{}", d.reason, w.reason, ctx()));
        }
        if got_approvers != w.approvers {
            return Err(format!("approvers: engine {got_approvers:?}, oracle {:?}{}", w.approvers, ctx()));
        }
        if let Some(a) = &d.approval {
            if !(a.id.len() == 36 && a.id.starts_with("apr_")) {
                return Err(format!("approval id {:?}{}", a.id, ctx()));
            }
        }
        let rec = &d.audit;
        let s = |k: &str| req.get(k).and_then(Value::as_str).map(str::to_owned);
        let chain: Vec<String> = match req.get("chain") {
            Some(Value::Array(a)) => a.iter().map(|x| x.as_str().unwrap().to_owned()).collect(),
            _ => Vec::new(),
        };
        let checks: [(&str, bool); 14] = [
            ("seq", rec.seq == i as u64),
            ("prev", rec.prev == prev_hash),
            ("time", rec.time == time_s),
            ("agent", Some(rec.agent.clone()) == s("agent")),
            ("tool", Some(rec.tool.clone()) == s("tool")),
            ("action", rec.action == s("action")),
            ("session", rec.session == s("session")),
            ("environment", rec.environment == s("environment")),
            ("chain", rec.chain == chain),
            ("outcome/rules/reason", rec.outcome == Some(w.outcome) && rec.rules == w.rules && rec.reason == w.reason),
            ("errors", rec.errors == w.errors.len()),
            ("approval_id/approved_by", rec.approval_id == want_approval_id && rec.approved_by == approved_by),
            ("limits", rec.limits.is_empty()),
            ("marks", rec.marks == record_marks),
        ];
        if let Some((what, _)) = checks.iter().find(|(_, ok)| !ok) {
            return Err(format!(
                "record {what}: engine {}, oracle marks {record_marks:?}, approval_id {want_approval_id:?}, approved_by {approved_by:?}{}",
                rec.to_json(),
                ctx()
            ));
        }
        let json = rec.to_json();
        if json.contains("\"marks\":") == record_marks.is_empty() {
            return Err(format!("record JSON `marks` present iff non-empty: {json}{}", ctx()));
        }
        prev_hash = rec.hash.clone();

        if d.outcome == Outcome::RequireApproval {
            let mut again = req.clone();
            again.remove("approval");
            asked = Some(Asked { req: again, id: d.approval.clone().unwrap().id, rules: d.rules.clone(), time: t });
        }
        if let Some(s) = sent {
            last_sent = Some((req.clone(), s));
        }
        CASES.fetch_add(1, Ordering::Relaxed);
        if !record_marks.is_empty() {
            MARKED_RECORDS.fetch_add(1, Ordering::Relaxed);
        }
        if w.reads {
            match &seen {
                MarksV::Live(l) if !l.is_empty() => {
                    READ_NONEMPTY.fetch_add(1, Ordering::Relaxed);
                }
                MarksV::Unknown(_) => {
                    UNKNOWN_READS.fetch_add(1, Ordering::Relaxed);
                }
                _ => {}
            }
        }
    }
    Ok(())
}
