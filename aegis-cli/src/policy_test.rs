//! `aegis test`: run `*.test.yaml` policy suites (§7).

use crate::args::Args;
use crate::Fail;
use aegis_core::yaml::{self, Kind, Node};
use aegis_core::Tri;
use aegis_core::{Decision, Engine, EngineOptions, EvalOptions, Map, Outcome, Request, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Per bundle: its rules (id, location) and the ids made determining by some case.
type Coverage = BTreeMap<String, (Vec<(String, String)>, BTreeSet<String>)>;

/// One case's result.
struct CaseResult {
    name: String,
    failure: Option<String>,
}

/// One file's results.
struct FileResult {
    file: String,
    cases: Vec<CaseResult>,
}

/// Runs the command.
pub fn run(rest: &[String]) -> Result<u8, Fail> {
    let a = Args::parse(rest, &["--junit"], &["--coverage"])?;
    let roots: Vec<String> = if a.positional.is_empty() { vec![".".into()] } else { a.positional.clone() };
    let mut files = Vec::new();
    for r in &roots {
        let p = PathBuf::from(r);
        if p.is_dir() {
            collect(&p, &mut files).map_err(|e| Fail::input(format!("cannot list `{r}`: {e}")))?;
        } else if p.is_file() {
            files.push(p);
        } else {
            return Err(Fail::input(format!("`{r}` does not exist")));
        }
    }
    files.sort_by(|a, b| a.as_os_str().as_encoded_bytes().cmp(b.as_os_str().as_encoded_bytes()));
    files.dedup();
    if files.is_empty() {
        return Err(Fail::input(format!("no test files (`*.test.yaml`) under {}", roots.join(", "))));
    }
    let mut results = Vec::new();
    // bundle path -> (rules with locations, covered ids)
    let mut coverage: Coverage = BTreeMap::new();
    for f in &files {
        results.push(run_file(f, &mut coverage));
    }
    let passed = results.iter().flat_map(|r| &r.cases).filter(|c| c.failure.is_none()).count();
    let failed = results.iter().flat_map(|r| &r.cases).filter(|c| c.failure.is_some()).count();
    if a.flag("--coverage") {
        let mut uncovered = 0;
        for (bundle, (rules, covered)) in &coverage {
            let missing: Vec<&(String, String)> = rules.iter().filter(|(id, _)| !covered.contains(id)).collect();
            println!(
                "coverage: {bundle}: {}/{} rules determining in some case",
                rules.len() - missing.len(),
                rules.len()
            );
            for (id, loc) in missing {
                uncovered += 1;
                println!("  {loc}: rule \"{id}\" is never determining");
            }
        }
        if uncovered == 0 {
            println!("coverage: every rule is covered");
        }
    }
    if let Some(path) = a.value("--junit") {
        let p = Path::new(path);
        if let Some(parent) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .map_err(|e| Fail::input(format!("cannot create `{}`: {e}", parent.display())))?;
        }
        std::fs::write(p, junit(&results)).map_err(|e| Fail::input(format!("cannot write `{path}`: {e}")))?;
    }
    println!("{passed} passed, {failed} failed");
    Ok(u8::from(failed > 0))
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let p = entry?.path();
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if p.is_dir() {
            if name != "target" && name != "node_modules" && !name.starts_with('.') {
                collect(&p, out)?;
            }
        } else if aegis_core::policy::is_test_file_name(name) {
            out.push(p);
        }
    }
    Ok(())
}

fn node_err(file: &str, n: &Node, msg: &str) -> String {
    format!("{file}:{}:{}: error: {msg}", n.loc.line, n.loc.column)
}

fn run_file(path: &Path, coverage: &mut Coverage) -> FileResult {
    let file = path.display().to_string();
    let mut res = FileResult { file: file.clone(), cases: Vec::new() };
    let fail_file = |res: &mut FileResult, msg: String, cases: usize| {
        println!("FAIL {file}\n  {msg}");
        if cases == 0 {
            res.cases.push(CaseResult { name: "(file)".into(), failure: Some(msg) });
        } else {
            for i in 0..cases {
                res.cases.push(CaseResult { name: format!("case {}", i + 1), failure: Some(msg.clone()) });
            }
        }
    };
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            fail_file(&mut res, format!("{file}: cannot read: {e}"), 0);
            return res;
        }
    };
    let root = match yaml::parse(&text) {
        Ok(Some(n)) => n,
        Ok(None) => {
            fail_file(&mut res, format!("{file}: empty test file"), 0);
            return res;
        }
        Err(es) => {
            let msg = es
                .iter()
                .map(|e| format!("{file}:{}:{}: error: {}", e.loc.line, e.loc.column, e.message))
                .collect::<Vec<_>>()
                .join("\n  ");
            fail_file(&mut res, msg, 0);
            return res;
        }
    };
    let Kind::Map(entries) = &root.kind else {
        fail_file(&mut res, node_err(&file, &root, "a test file is a mapping with `policies` and `cases`"), 0);
        return res;
    };
    let mut policies = None;
    let mut defaults = Map::new();
    let mut cases: &[Node] = &[];
    for (k, _, v) in entries {
        match (k.as_str(), &v.kind) {
            ("policies", Kind::String(s)) => policies = Some(s.clone()),
            ("defaults", Kind::Map(_)) => {
                if let Value::Object(m) = v.to_value() {
                    defaults = m;
                }
            }
            ("cases", Kind::Seq(items)) => cases = items,
            ("policies" | "defaults" | "cases", _) => {
                fail_file(&mut res, node_err(&file, v, &format!("`{k}` has the wrong type ({})", v.type_name())), 0);
                return res;
            }
            (other, _) => {
                fail_file(
                    &mut res,
                    node_err(
                        &file,
                        v,
                        &format!("unknown key \"{other}\" in a test file (expected policies, defaults, cases)"),
                    ),
                    0,
                );
                return res;
            }
        }
    }
    let Some(policies) = policies else {
        fail_file(&mut res, node_err(&file, &root, "missing `policies` (the bundle, relative to this file)"), 0);
        return res;
    };
    let bundle_path = path.parent().unwrap_or(Path::new(".")).join(&policies);
    // A file with `approve` cases gets an approval key of its own, known only to this
    // run: the runner grants those cases' approvals (a file without them keeps the
    // engine without a key, as before).
    let mut options = EngineOptions::default();
    let mut approval_key = None;
    if cases.iter().any(|c| matches!(&c.kind, Kind::Map(es) if es.iter().any(|(k, _, _)| k == "approve"))) {
        let key = run_key();
        options.approval_key = aegis_core::Key::new("approval_key", key.clone()).ok();
        approval_key = Some(key);
    }
    let engine = match Engine::from_path(&bundle_path, options) {
        Ok(e) => e,
        Err(errs) => {
            let msg = errs.0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n  ");
            fail_file(&mut res, format!("bundle `{}` did not load:\n  {msg}", bundle_path.display()), cases.len());
            return res;
        }
    };
    let key = std::fs::canonicalize(&bundle_path).unwrap_or(bundle_path.clone()).display().to_string();
    let compiled = engine.policy();
    let entry = coverage.entry(key).or_insert_with(|| {
        (compiled.bundle.rules.iter().map(|r| (r.id.clone(), r.loc.to_string())).collect(), BTreeSet::new())
    });
    for (i, case) in cases.iter().enumerate() {
        let (name, outcome) = run_case(&file, &engine, approval_key.as_deref(), &defaults, case, i);
        for d in &outcome.1 {
            for r in &d.rules {
                entry.1.insert(r.clone());
            }
        }
        if let Some(f) = &outcome.0 {
            println!("FAIL {file}: {name}\n{f}");
        }
        res.cases.push(CaseResult { name, failure: outcome.0 });
    }
    res
}

/// A case's failure (if any) and the decisions it made (for coverage): one, or two
/// for an `approve` case (the request, then its re-decision with the grant).
type CaseOutcome = (Option<String>, Vec<Decision>);

/// 32 bytes that no test file can know: the approval key of a file with `approve` cases.
fn run_key() -> Vec<u8> {
    use std::hash::{BuildHasher, Hasher};
    let mut key = Vec::with_capacity(32);
    for i in 0..4u64 {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(i);
        h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos()));
        key.extend_from_slice(&h.finish().to_le_bytes());
    }
    key
}

/// How long a grant issued for an `approve` case is valid, from the request time.
const APPROVE_TTL_SECONDS: u64 = 3600;

fn run_case(
    file: &str,
    engine: &Engine,
    approval_key: Option<&[u8]>,
    defaults: &Map,
    case: &Node,
    i: usize,
) -> (String, CaseOutcome) {
    let mut name = format!("case {}", i + 1);
    let fail = |msg: String| (Some(format!("  {msg}")), Vec::new());
    let Kind::Map(entries) = &case.kind else {
        return (name, fail(node_err(file, case, "a case is a mapping with name, request, expect")));
    };
    let mut request = None;
    let mut expect = None;
    let mut approve = None;
    for (k, _, v) in entries {
        match k.as_str() {
            "name" => {
                if let Kind::String(s) = &v.kind {
                    name = s.clone();
                }
            }
            "request" => request = Some(v),
            "expect" => expect = Some(v),
            "approve" => match &v.kind {
                Kind::String(s) => approve = Some((s.clone(), v)),
                _ => {
                    return (name, fail(node_err(file, v, "`approve` is the approver who grants the case's approval")))
                }
            },
            other => {
                return (
                    name,
                    fail(node_err(
                        file,
                        v,
                        &format!("unknown key \"{other}\" in a case (expected name, request, approve, expect)"),
                    )),
                )
            }
        }
    }
    let (Some(request), Some(expect)) = (request, expect) else {
        return (name, fail(node_err(file, case, "a case needs `request` and `expect`")));
    };
    let expectation = match Expect::parse(file, expect) {
        Ok(e) => e,
        Err(m) => return (name, fail(m)),
    };
    let mut merged = defaults.clone();
    match request.to_value() {
        Value::Object(m) => merged.extend(m),
        _ => return (name, fail(node_err(file, request, "`request` must be a mapping"))),
    }
    let req_value = Value::Object(merged);
    let mut req = match Request::from_value(req_value.clone(), engine.request_limits()) {
        Ok(r) => r,
        Err(e) => return (name, fail(node_err(file, request, &e.to_string()))),
    };
    if let Some((_, node)) = &approve {
        if req.approval.is_some() {
            return (
                name,
                fail(node_err(
                    file,
                    node,
                    "a case with `approve` gets its grant from the runner; leave out `approval`",
                )),
            );
        }
        // The request and its re-decision with the grant are decided at one time.
        if req.time.is_none() {
            req.time = Some(aegis_core::time::now_millis());
        }
    }
    let explain = EvalOptions { explain: true };
    let first = match engine.evaluate_with(&req, explain) {
        Ok(d) => d,
        Err(e) => return (name, fail(format!("evaluation failed: {e}"))),
    };
    let mut decisions = Vec::with_capacity(2);
    if let (Some((who, node)), Some(key)) = (&approve, approval_key) {
        let asked = &first;
        let Some(approval) = asked.approval.as_ref().filter(|_| asked.outcome == Outcome::RequireApproval) else {
            let msg = format!(
                "{}\n  actual:   {} [{}] — {}",
                node_err(file, node, "`approve`: the request did not ask for approval, so there is nothing to grant"),
                asked.outcome,
                asked.rules.join(", "),
                asked.reason
            );
            return (name, (Some(format!("  {msg}")), vec![first]));
        };
        let time = req.time.unwrap_or_default();
        let token = match aegis_core::issue_grant(key, &approval.id, who, APPROVE_TTL_SECONDS, time) {
            Ok(t) => t,
            Err(e) => {
                return (
                    name,
                    (Some(format!("  {}", node_err(file, node, &format!("`approve`: {}", e.0)))), vec![first]),
                )
            }
        };
        req.approval = Some(token);
        decisions.push(first);
        match engine.evaluate_with(&req, explain) {
            Ok(d) => decisions.push(d),
            Err(e) => return (name, (Some(format!("  evaluation failed: {e}")), decisions)),
        }
    } else {
        decisions.push(first);
    }
    let Some(d) = decisions.last() else {
        return (name, fail("evaluation made no decision".into()));
    };
    let diffs = expectation.diff(d);
    if diffs.is_empty() {
        return (name, (None, decisions));
    }
    let mut msg = String::new();
    let _ = writeln!(msg, "  at {file}:{}:{}", case.loc.line, case.loc.column);
    let _ = writeln!(msg, "  request:  {}", req_value.to_canonical_json());
    if let (Some((who, _)), Some(asked)) = (&approve, decisions.first()) {
        let _ = writeln!(
            msg,
            "  asked:    {} [{}]; granted by {who}, then re-decided (expect is the re-decision)",
            asked.outcome,
            asked.rules.join(", ")
        );
    }
    for diff in &diffs {
        let _ = writeln!(msg, "  {diff}");
    }
    let _ = writeln!(msg, "  actual:   {} [{}] — {}", d.outcome, d.rules.join(", "), d.reason);
    if !d.audit.marks.is_empty() {
        let _ = writeln!(msg, "  marks:    [{}] after the call", d.audit.marks.join(", "));
    }
    for e in &d.errors {
        let _ = writeln!(msg, "  error:    rule {} at {}: {}", e.rule, e.path, e.message);
    }
    if let Some(ex) = &d.explain {
        let _ = writeln!(msg, "  explain:");
        for e in ex {
            let res = match e.result {
                Tri::True => "true",
                Tri::False => "false",
                Tri::Error => "error",
            };
            let _ = writeln!(
                msg,
                "    {} ({}): condition {res}, {}",
                e.rule,
                e.outcome,
                if e.applied { "applied" } else { "did not apply" }
            );
            if let Some(m) = &e.marks {
                let _ = writeln!(msg, "      session.marks was [{}]", m.join(", "));
            }
            for f in &e.failed {
                let seen = f.value.as_ref().map_or("no value".to_string(), Value::to_canonical_json);
                let _ = writeln!(msg, "      {} {} {} — saw {}", f.path, f.op, f.operand.to_canonical_json(), seen);
            }
        }
    }
    let msg = msg.trim_end().to_string();
    (name, (Some(msg), decisions))
}

struct Expect {
    outcome: Option<Outcome>,
    rules: Option<Vec<String>>,
    reason: Option<String>,
    approvers: Option<Vec<String>>,
    errors: Option<bool>,
    /// The record's `marks` (§10), exactly; absent from the record is `[]`.
    marks: Option<Vec<String>>,
}

impl Expect {
    fn parse(file: &str, n: &Node) -> Result<Expect, String> {
        let outcome_of = |n: &Node| match &n.kind {
            Kind::String(s) => Outcome::parse(s).ok_or_else(|| node_err(file, n, &format!("unknown outcome \"{s}\""))),
            _ => Err(node_err(file, n, "an outcome is allow, deny or require_approval")),
        };
        let strings = |n: &Node| match n.to_value() {
            Value::Array(items) => items
                .into_iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s),
                    _ => Err(node_err(file, n, "expected a list of strings")),
                })
                .collect::<Result<Vec<_>, _>>(),
            _ => Err(node_err(file, n, "expected a list of strings")),
        };
        let mut e = Expect { outcome: None, rules: None, reason: None, approvers: None, errors: None, marks: None };
        match &n.kind {
            Kind::String(_) => e.outcome = Some(outcome_of(n)?),
            Kind::Map(entries) => {
                for (k, _, v) in entries {
                    match k.as_str() {
                        "outcome" => e.outcome = Some(outcome_of(v)?),
                        "rules" => e.rules = Some(strings(v)?),
                        "approvers" => e.approvers = Some(strings(v)?),
                        "marks" => e.marks = Some(strings(v)?),
                        "reason" => match &v.kind {
                            Kind::String(s) => e.reason = Some(s.clone()),
                            _ => return Err(node_err(file, v, "`reason` is a substring to find")),
                        },
                        "errors" => match v.kind {
                            Kind::Bool(b) => e.errors = Some(b),
                            _ => return Err(node_err(file, v, "`errors` is true or false")),
                        },
                        other => {
                            return Err(node_err(
                                file,
                                v,
                                &format!("unknown key \"{other}\" in `expect` (expected outcome, rules, reason, approvers, errors, marks)"),
                            ))
                        }
                    }
                }
            }
            _ => return Err(node_err(file, n, "`expect` is an outcome or a mapping")),
        }
        Ok(e)
    }

    fn diff(&self, d: &Decision) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(o) = self.outcome {
            if o != d.outcome {
                out.push(format!("outcome:  expected {o}, got {}", d.outcome));
            }
        }
        if let Some(r) = &self.rules {
            if *r != d.rules {
                out.push(format!("rules:    expected [{}], got [{}]", r.join(", "), d.rules.join(", ")));
            }
        }
        if let Some(r) = &self.reason {
            if !d.reason.contains(r.as_str()) {
                out.push(format!("reason:   expected to contain \"{r}\", got \"{}\"", d.reason));
            }
        }
        if let Some(a) = &self.approvers {
            let got = d.approval.as_ref().map(|x| x.approvers.clone()).unwrap_or_default();
            if *a != got {
                out.push(format!("approvers: expected [{}], got [{}]", a.join(", "), got.join(", ")));
            }
        }
        if let Some(m) = &self.marks {
            if *m != d.audit.marks {
                out.push(format!("marks:    expected [{}], got [{}]", m.join(", "), d.audit.marks.join(", ")));
            }
        }
        if let Some(want) = self.errors {
            if want == d.errors.is_empty() {
                out.push(format!("errors:   expected {}, got {}", if want { "some" } else { "none" }, d.errors.len()));
            }
        }
        out
    }
}

fn xml(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '&' => "&amp;".to_string(),
            '<' => "&lt;".to_string(),
            '>' => "&gt;".to_string(),
            '"' => "&quot;".to_string(),
            '\'' => "&apos;".to_string(),
            c if (c as u32) < 0x20 && c != '\n' && c != '\t' => " ".to_string(),
            c => c.to_string(),
        })
        .collect()
}

fn junit(results: &[FileResult]) -> String {
    let mut s = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites>\n");
    for r in results {
        let failures = r.cases.iter().filter(|c| c.failure.is_some()).count();
        let _ =
            writeln!(s, "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failures}\">", xml(&r.file), r.cases.len());
        for c in &r.cases {
            let _ = write!(s, "    <testcase name=\"{}\" classname=\"{}\"", xml(&c.name), xml(&r.file));
            match &c.failure {
                None => s.push_str("/>\n"),
                Some(f) => {
                    let first = f.lines().find(|l| !l.trim().is_empty()).unwrap_or("failed").trim();
                    let _ = writeln!(
                        s,
                        ">\n      <failure message=\"{}\">{}</failure>\n    </testcase>",
                        xml(first),
                        xml(f)
                    );
                }
            }
        }
        s.push_str("  </testsuite>\n");
    }
    s.push_str("</testsuites>\n");
    s
}
