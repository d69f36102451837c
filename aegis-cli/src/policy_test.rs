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
    let engine = match Engine::from_path(&bundle_path, EngineOptions::default()) {
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
        let (name, outcome) = run_case(&file, &engine, &defaults, case, i);
        if let Ok(d) = &outcome.1 {
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

type CaseOutcome = (Option<String>, Result<Decision, ()>);

fn run_case(file: &str, engine: &Engine, defaults: &Map, case: &Node, i: usize) -> (String, CaseOutcome) {
    let mut name = format!("case {}", i + 1);
    let Kind::Map(entries) = &case.kind else {
        return (
            name,
            (Some(format!("  {}", node_err(file, case, "a case is a mapping with name, request, expect"))), Err(())),
        );
    };
    let mut request = None;
    let mut expect = None;
    for (k, _, v) in entries {
        match k.as_str() {
            "name" => {
                if let Kind::String(s) = &v.kind {
                    name = s.clone();
                }
            }
            "request" => request = Some(v),
            "expect" => expect = Some(v),
            other => {
                return (
                    name,
                    (Some(format!("  {}", node_err(file, v, &format!("unknown key \"{other}\" in a case")))), Err(())),
                )
            }
        }
    }
    let (Some(request), Some(expect)) = (request, expect) else {
        return (name, (Some(format!("  {}", node_err(file, case, "a case needs `request` and `expect`"))), Err(())));
    };
    let expectation = match Expect::parse(file, expect) {
        Ok(e) => e,
        Err(m) => return (name, (Some(format!("  {m}")), Err(()))),
    };
    let mut merged = defaults.clone();
    match request.to_value() {
        Value::Object(m) => merged.extend(m),
        _ => return (name, (Some(format!("  {}", node_err(file, request, "`request` must be a mapping"))), Err(()))),
    }
    let req_value = Value::Object(merged);
    let req = match Request::from_value(req_value.clone(), engine.request_limits()) {
        Ok(r) => r,
        Err(e) => return (name, (Some(format!("  {}", node_err(file, request, &e.to_string()))), Err(()))),
    };
    let d = match engine.evaluate_with(&req, EvalOptions { explain: true }) {
        Ok(d) => d,
        Err(e) => return (name, (Some(format!("  evaluation failed: {e}")), Err(()))),
    };
    let diffs = expectation.diff(&d);
    if diffs.is_empty() {
        return (name, (None, Ok(d)));
    }
    let mut msg = String::new();
    let _ = writeln!(msg, "  at {file}:{}:{}", case.loc.line, case.loc.column);
    let _ = writeln!(msg, "  request:  {}", req_value.to_canonical_json());
    for diff in &diffs {
        let _ = writeln!(msg, "  {diff}");
    }
    let _ = writeln!(msg, "  actual:   {} [{}] — {}", d.outcome, d.rules.join(", "), d.reason);
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
            for f in &e.failed {
                let seen = f.value.as_ref().map_or("no value".to_string(), Value::to_canonical_json);
                let _ = writeln!(msg, "      {} {} {} — saw {}", f.path, f.op, f.operand.to_canonical_json(), seen);
            }
        }
    }
    (name, (Some(msg.trim_end().to_string()), Ok(d)))
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
