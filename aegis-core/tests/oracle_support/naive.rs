//! The differential oracle's shared half: random bundles and requests, and a
//! deliberately naive evaluator written from SPEC.md §2–§4 and docs/policy-language.md
//! (every rule in bundle order, no index; its own Kleene logic, glob matching, path
//! resolution, `within` and `domain_in`). Used by `tests/oracle.rs` (proptest) and by
//! the `oracle` fuzz target (`fuzz/fuzz_targets/oracle.rs`), which includes this file.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing, missing_docs)]
#![allow(clippy::explicit_auto_deref, dead_code)]

use aegis_core::value::Map;
use aegis_core::{Engine, EngineOptions, Outcome, Request, RequestLimits, Value};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Requests per generated bundle.
pub const REQS_PER_BUNDLE: usize = 8;

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

// ------------------------------------------------------------------ the model

#[derive(Clone, Debug)]
enum C {
    All(Vec<C>),
    Any(Vec<C>),
    Not(Box<C>),
    /// A mapping `{PATH: {OP: operand, …}, …}`: every test, in written order.
    Map(Vec<(String, Vec<(String, Value)>)>),
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

fn gen_cond(r: &mut Rng, depth: usize) -> C {
    let k = if depth == 0 { 3 } else { r.below(6) };
    match k {
        0 => C::All((0..1 + r.below(3)).map(|_| gen_cond(r, depth - 1)).collect()),
        1 => C::Any((0..1 + r.below(3)).map(|_| gen_cond(r, depth - 1)).collect()),
        2 => C::Not(Box::new(gen_cond(r, depth - 1))),
        _ => {
            let mut entries: Vec<(String, Vec<(String, Value)>)> = Vec::new();
            for _ in 0..1 + usize::from(r.chance(25)) {
                let path = if r.chance(50) {
                    (*r.pick(&["params.p", "params.to", "params.n"])).to_owned()
                } else {
                    (*r.pick(PATHS)).to_owned()
                };
                if entries.iter().any(|(p, _)| *p == path) {
                    continue;
                }
                let mut ops: Vec<(String, Value)> = Vec::new();
                for _ in 0..1 + usize::from(r.chance(25)) {
                    let natural: &[&str] = match path.as_str() {
                        "params.p" => &["within", "starts_with", "exists"],
                        "params.to" => &["domain_in", "contains_any", "ends_with"],
                        "params.n" => &["lt", "gte", "in", "eq", "ne"],
                        _ => OPS,
                    };
                    let op = if r.chance(60) { (*r.pick(natural)).to_owned() } else { (*r.pick(OPS)).to_owned() };
                    if !ops.iter().any(|(o, _)| *o == op) {
                        let v = gen_operand(r, &op);
                        ops.push((op, v));
                    }
                }
                entries.push((path, ops));
            }
            C::Map(entries)
        }
    }
}

fn gen_bundle(r: &mut Rng) -> B {
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
                when: r.chance(80).then(|| gen_cond(r, 2)),
                outcome,
                reason: r.chance(30).then(|| format!("because {i}")),
                description: r.chance(30).then(|| format!("rule number {i}")),
                approvers: if outcome == Outcome::RequireApproval {
                    (0..r.below(3)).map(|_| (*r.pick(&["alice", "bob", "carol"])).to_owned()).collect()
                } else {
                    Vec::new()
                },
            }
        })
        .collect();
    B { rules, default: outcome_of(r) }
}

fn gen_request(r: &mut Rng) -> Map {
    let mut m = Map::new();
    let s = |x: &str| Value::String(x.to_owned());
    m.insert("agent".into(), s(*r.pick(AGENTS)));
    m.insert("tool".into(), s(*r.pick(TOOLS)));
    if r.chance(70) {
        m.insert("action".into(), s(*r.pick(ACTIONS)));
    }
    if r.chance(40) {
        m.insert("session".into(), s(*r.pick(SESSIONS)));
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
    m.insert("time".into(), s("2026-01-05T10:00:00Z"));
    m
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

/// The request as plain JSON data, resolved from the spec's paths.
fn resolve(req: &Map, path: &str) -> Option<Value> {
    let mut segs = path.split('.');
    let root = segs.next().unwrap();
    let mut cur: Value = match root {
        "time" => Value::String("2026-01-05T10:00:00.000Z".into()),
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

fn test(req: &Map, path: &str, op: &str, operand: &Value, errs: &mut Errs) -> T {
    let v = resolve(req, path);
    if op == "exists" {
        return if v.is_some() == (operand == &Value::Bool(true)) { T::True } else { T::False };
    }
    let Some(v) = v else {
        errs.push((path.to_owned(), format!("no value at \"{path}\"")));
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

fn cond(req: &Map, c: &C, errs: &mut Errs) -> T {
    let sub = |c: &C| {
        let mut e = Vec::new();
        let t = cond(req, c, &mut e);
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
        C::Not(p) => match cond(req, p, errs) {
            T::True => T::False,
            T::False => T::True,
            T::Err => T::Err,
        },
        C::Map(entries) => {
            let mut tests =
                entries.iter().flat_map(|(p, ops)| ops.iter().map(move |(o, v)| (p, o, v))).map(|(p, o, v)| {
                    let mut e = Vec::new();
                    let t = test(req, p, o, v, &mut e);
                    (t, e)
                });
            all(&mut tests, errs)
        }
    }
}

struct Want {
    outcome: Outcome,
    rules: Vec<String>,
    reason: String,
    approvers: Option<Vec<String>>,
    errors: Vec<(String, String, String)>,
}

fn oracle(b: &B, req: &Map) -> Want {
    let mut errors = Vec::new();
    let mut applying: Vec<&R> = Vec::new();
    for r in &b.rules {
        // all(selectors in field order…, when)
        let mut parts: Vec<Box<dyn Fn() -> (T, Errs) + '_>> = Vec::new();
        for (f, s) in r.sel.iter().enumerate() {
            if let Some(pats) = s {
                parts.push(Box::new(move || match req.get(FIELDS[f]) {
                    None => (T::Err, vec![(FIELDS[f].to_owned(), format!("no value at \"{}\"", FIELDS[f]))]),
                    Some(Value::String(v)) => {
                        (if pats.iter().any(|p| glob(p.as_bytes(), v.as_bytes())) { T::True } else { T::False }, vec![])
                    }
                    _ => unreachable!(),
                }));
            }
        }
        if let Some(c) = &r.when {
            parts.push(Box::new(move || {
                let mut e = Vec::new();
                let t = cond(req, c, &mut e);
                (t, e)
            }));
        }
        let mut e = Vec::new();
        let t = all(&mut parts.iter().map(|p| p()), &mut e);
        if t == T::Err {
            errors.extend(e.into_iter().map(|(p, m)| (r.id.clone(), p, m)));
        }
        if t == T::True || (t == T::Err && r.outcome != Outcome::Allow) {
            applying.push(r);
        }
    }
    let rank = |o: Outcome| match o {
        Outcome::Allow => 0,
        Outcome::RequireApproval => 1,
        Outcome::Deny => 2,
    };
    let Some(best) = applying.iter().map(|r| r.outcome).max_by_key(|o| rank(*o)) else {
        return Want {
            outcome: b.default,
            rules: vec!["default".into()],
            reason: format!("no rule applies; the bundle default is {}", b.default.as_str()),
            approvers: (b.default == Outcome::RequireApproval).then(Vec::new),
            errors,
        };
    };
    let winners: Vec<&R> = applying.into_iter().filter(|r| r.outcome == best).collect();
    let first = winners[0];
    let reason = first
        .reason
        .clone()
        .or_else(|| first.description.clone())
        .unwrap_or_else(|| format!("rule \"{}\" decided {}", first.id, best.as_str()));
    let approvers = (best == Outcome::RequireApproval).then(|| {
        let mut a: Vec<String> = Vec::new();
        for w in &winners {
            for x in &w.approvers {
                if !a.contains(x) {
                    a.push(x.clone());
                }
            }
        }
        a
    });
    Want { outcome: best, rules: winners.iter().map(|r| r.id.clone()).collect(), reason, approvers, errors }
}

// ------------------------------------------------------------------ one case

/// Cases compared so far in this process.
pub static CASES: AtomicUsize = AtomicUsize::new(0);

/// Builds one bundle and `REQS_PER_BUNDLE` requests from `r` and compares the engine
/// with the oracle on each: outcome, rules, errors, reason, approvers.
pub fn check(mut r: Rng, label: &str) -> Result<(), String> {
    let b = gen_bundle(&mut r);
    // `count` operands are sorted maps in our model but written in generation order;
    // keep them canonical (sorted) in the YAML too, so both sides agree on the order.
    let yaml = render(&b);
    let engine = match Engine::from_yaml(&yaml, EngineOptions::default()) {
        Ok(e) => e,
        Err(e) => return Err(format!("bundle did not load:\n{yaml}\n{e}")),
    };
    for _ in 0..REQS_PER_BUNDLE {
        let req = gen_request(&mut r);
        let text = Value::Object(req.clone()).to_canonical_json();
        let parsed = Request::from_json(&text, &RequestLimits::default())
            .map_err(|e| format!("generated an invalid request {text}: {e}"))?;
        let d = engine.evaluate(&parsed).map_err(|e| format!("evaluate failed: {e}"))?;
        let want = oracle(&b, &req);
        let got_errors: Vec<(String, String, String)> =
            d.errors.iter().map(|e| (e.rule.clone(), e.path.clone(), e.message.clone())).collect();
        let got_approvers = d.approval.as_ref().map(|a| a.approvers.clone());
        let ctx = || format!("\n--- bundle ({label}):\n{yaml}--- request:\n{text}\n");
        if d.outcome != want.outcome {
            return Err(format!("outcome: engine {:?}, oracle {:?}{}", d.outcome, want.outcome, ctx()));
        }
        if d.rules != want.rules {
            return Err(format!("rules: engine {:?}, oracle {:?}{}", d.rules, want.rules, ctx()));
        }
        if got_errors != want.errors {
            return Err(format!("errors: engine {got_errors:?}, oracle {:?}{}", want.errors, ctx()));
        }
        if d.reason != want.reason {
            return Err(format!("reason: engine {:?}, oracle {:?}{}", d.reason, want.reason, ctx()));
        }
        if got_approvers != want.approvers {
            return Err(format!("approvers: engine {got_approvers:?}, oracle {:?}{}", want.approvers, ctx()));
        }
        CASES.fetch_add(1, Ordering::Relaxed);
    }
    Ok(())
}
