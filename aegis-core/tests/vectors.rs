//! Runs every shared vector in `tests/vectors/generated/` through the Rust engine,
//! byte for byte. The Python, Node, C and Go suites run the same files.
//!
//! The files are read strictly, as "Schema (v2)" of `tests/vectors/README.md` (and
//! `tests/vectors/schema.json`) defines them: an unknown key at any level, a key of
//! the wrong type or an unknown step `op` fails the run — a file is never skipped.
//! Engines are built the way a binding builds them: the vector's `options` document
//! through [`EngineConfig::from_value`], then [`EngineConfig::options`].
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing, missing_docs)]

use aegis_core::{CallbackSink, Engine, EngineConfig, ErrorCode, ErrorInfo, EvalError, KillScope, Spelling};
use serde::Deserialize;
use serde_json::Value as J;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

fn vectors_dir() -> PathBuf {
    match std::env::var_os("AEGIS_VECTORS_DIR") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/vectors/generated"),
    }
}

// ----------------------------------------------------------------- the schema (v2)

/// A generated vector file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Vector {
    name: String,
    #[allow(dead_code)] // read for strictness; people read it
    description: String,
    #[allow(dead_code)] // checked for its keys; the engine is built from the document itself
    options: Options,
    policy_yaml: String,
    policy_hash: Option<String>,
    audit_callback: Option<bool>,
    load_errors: Option<Vec<LoadError>>,
    config_errors: Option<Vec<ConfigCase>>,
    steps: Vec<Step>,
}

/// Engine options a vector may set (keys only; the values are passed on as written).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // the document itself is what the engine is built from
struct Options {
    signing_key: Option<String>,
    signing_key_id: Option<String>,
    approval_key: Option<String>,
    request_max_bytes: Option<u64>,
    request_max_depth: Option<u64>,
    max_limit_counters: Option<u64>,
    max_sessions: Option<u64>,
    marks_ttl: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LoadError {
    line: usize,
    column: usize,
    message: String,
}

/// One option document the configuration must refuse.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigCase {
    options: serde_json::Map<String, J>,
    options_camel: serde_json::Map<String, J>,
    code: String,
    field: String,
    message: String,
    field_camel: String,
    message_camel: String,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase", deny_unknown_fields)]
enum Step {
    Evaluate {
        name: String,
        request_json: String,
        expect_json: Option<String>,
        expect_error: Option<String>,
        callback: Option<String>,
    },
    Kill {
        scope: String,
        id: String,
        reason: String,
    },
    Revive {
        scope: String,
        id: String,
    },
    /// `engine.marks(session)` must give `expect` exactly (§10).
    Marks {
        session: String,
        expect: Vec<String>,
    },
    /// `engine.clear_marks(session)`.
    #[serde(rename = "clear_marks")]
    ClearMarks {
        session: String,
    },
    Guarded(Box<Guarded>),
}

/// A guarded-tool step (§17): run by the Python and Node runners only; read here
/// strictly and counted as not applicable.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct Guarded {
    name: String,
    contexts: Vec<GuardedContext>,
    tool: String,
    action: Option<String>,
    args: serde_json::Map<String, J>,
    mutate: Option<serde_json::Map<String, J>>,
    expect_record: Option<ExpectRecord>,
    expect_tool_args: Option<serde_json::Map<String, J>>,
    expect_error: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct GuardedContext {
    agent: Option<String>,
    chain: Option<Vec<String>>,
    session: Option<String>,
    environment: Option<String>,
    context: Option<serde_json::Map<String, J>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct ExpectRecord {
    agent: String,
    chain: Option<Vec<String>>,
    session: Option<String>,
    environment: Option<String>,
    tool: String,
    action: Option<String>,
    outcome: String,
    rules: Vec<String>,
    params_sha256: String,
}

/// Reads a file strictly: its shape (serde, unknown keys refused) and the
/// constraints the types cannot say.
fn read_vector(path: &Path) -> Result<(Vector, J), String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let raw: J = serde_json::from_str(&text).map_err(|e| format!("not JSON: {e}"))?;
    let v: Vector = serde_json::from_value(raw.clone()).map_err(|e| format!("does not match the schema: {e}"))?;
    let hex64 = |s: &str| s.len() == 64 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    let mut problems = Vec::new();
    if v.name.is_empty() {
        problems.push("empty `name`".to_string());
    }
    if v.audit_callback == Some(false) {
        problems.push("`audit_callback` is `true` or absent".into());
    }
    if let Some(h) = &v.policy_hash {
        if !hex64(h) {
            problems.push(format!("`policy_hash` is not 64 hex digits: {h}"));
        }
    }
    if (v.load_errors.is_some() || v.config_errors.is_some()) && !v.steps.is_empty() {
        problems.push("a vector with `load_errors` or `config_errors` has no steps".into());
    }
    if v.load_errors.as_ref().is_some_and(Vec::is_empty) || v.config_errors.as_ref().is_some_and(Vec::is_empty) {
        problems.push("`load_errors` and `config_errors` are never empty".into());
    }
    for c in v.config_errors.iter().flatten() {
        if c.code != "config_invalid" || c.message.is_empty() || c.message_camel.is_empty() {
            problems.push(format!("config case {:?}: code is config_invalid, messages are not empty", c.options));
        }
    }
    for e in v.load_errors.iter().flatten() {
        if e.line == 0 || e.column == 0 || e.message.is_empty() {
            problems.push(format!("load error {e:?}: 1-based position and a message"));
        }
    }
    let guarded = v.steps.iter().filter(|s| matches!(s, Step::Guarded(_))).count();
    if guarded > 0 && (guarded != v.steps.len() || v.audit_callback != Some(true)) {
        problems.push("a vector with guarded steps has only guarded steps and `audit_callback: true`".into());
    }
    for s in &v.steps {
        match s {
            Step::Evaluate { name, expect_json, expect_error, callback, .. } => {
                let shape = (expect_json.is_some(), expect_error.as_deref(), callback.as_deref());
                let ok = matches!(shape, (true, None, None) | (false, Some("request"), None))
                    || (shape == (false, Some("audit_failed"), Some("fail")) && v.audit_callback == Some(true));
                if name.is_empty() || !ok {
                    problems.push(format!(
                        "evaluate step {name:?}: `expect_json`, `expect_error: request`, or (with \
                         `audit_callback`) `callback: fail` with `expect_error: audit_failed`"
                    ));
                }
            }
            Step::Kill { scope, .. } | Step::Revive { scope, .. } if KillScope::parse(scope).is_none() => {
                problems.push(format!("unknown kill scope `{scope}`"));
            }
            Step::Kill { .. } | Step::Revive { .. } | Step::ClearMarks { .. } => {}
            Step::Marks { session, expect } => {
                let mut sorted = expect.clone();
                sorted.sort();
                sorted.dedup();
                if session.is_empty() || sorted != *expect {
                    problems.push(format!("marks step for {session:?}: `expect` must be sorted and unique"));
                }
            }
            Step::Guarded(g) => {
                let errors = ["denied", "approval_required", "invalid_argument"];
                if g.name.is_empty() || g.expect_error.as_deref().is_some_and(|e| !errors.contains(&e)) {
                    problems.push(format!("guarded step {:?}: a name, and a known `expect_error`", g.name));
                }
                if let Some(r) = &g.expect_record {
                    if !hex64(&r.params_sha256)
                        || r.rules.is_empty()
                        || !["allow", "deny", "require_approval"].contains(&r.outcome.as_str())
                    {
                        problems.push(format!("guarded step {:?}: `expect_record` is malformed", g.name));
                    }
                }
            }
        }
    }
    if problems.is_empty() {
        Ok((v, raw))
    } else {
        Err(problems.join("; "))
    }
}

// ----------------------------------------------------------------- running

fn to_value(j: &J) -> aegis_core::Value {
    aegis_core::json::parse(&j.to_string(), 64).unwrap()
}

/// What the audit callback of an `audit_callback` vector received, and whether it
/// is to fail the next call.
#[derive(Clone, Default)]
struct Callback {
    received: Arc<Mutex<Vec<String>>>,
    fail: Arc<AtomicBool>,
}

impl Callback {
    fn sink(&self) -> CallbackSink<impl FnMut(&aegis_core::AuditRecord, &str) -> Result<(), String> + Send> {
        let (received, fail) = (self.received.clone(), self.fail.clone());
        CallbackSink(move |_record: &aegis_core::AuditRecord, line: &str| {
            received.lock().unwrap().push(line.to_owned());
            if fail.load(Ordering::SeqCst) {
                Err("the vector's callback fails this call".to_string())
            } else {
                Ok(())
            }
        })
    }

    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.received.lock().unwrap())
    }
}

/// Counts over a run.
#[derive(Default)]
struct Counts {
    files: usize,
    steps: usize,
    config_cases: usize,
    not_applicable: usize,
}

fn run_vector(path: &Path, counts: &mut Counts) -> Vec<String> {
    let (v, raw) = match read_vector(path) {
        Ok(x) => x,
        Err(e) => return vec![format!("{}: {e}", path.display())],
    };
    let name = v.name.as_str();
    let mut failures = Vec::new();
    counts.files += 1;

    if let Some(cases) = &v.config_errors {
        for c in cases {
            counts.config_cases += 1;
            for (spelling, options, field, message) in [
                (Spelling::Snake, &c.options, &c.field, &c.message),
                (Spelling::Camel, &c.options_camel, &c.field_camel, &c.message_camel),
            ] {
                match EngineConfig::from_value(&to_value(&J::Object(options.clone())), spelling) {
                    Ok(_) => failures.push(format!("{name}: {options:?} ({spelling:?}) was accepted")),
                    Err(e) => {
                        let info = ErrorInfo::from(&e);
                        if info.code.as_str() != c.code || &e.field != field || &e.message != message {
                            failures.push(format!(
                                "{name}: {options:?} ({spelling:?}):\n  want {} {field:?} {message:?}\n  got  {} {:?} {:?}",
                                c.code, info.code, e.field, e.message
                            ));
                        }
                    }
                }
            }
        }
        return failures;
    }

    let config = match EngineConfig::from_value(&to_value(&raw["options"]), Spelling::Snake) {
        Ok(c) => c,
        Err(e) => return vec![format!("{name}: options refused: {e:?}")],
    };
    let mut options = match config.options() {
        Ok(o) => o,
        Err(e) => return vec![format!("{name}: options failed: {e}")],
    };
    let callback = v.audit_callback.map(|_| Callback::default());
    if let Some(cb) = &callback {
        options.sinks.push(Box::new(cb.sink()));
    }
    let loaded = Engine::from_yaml(&v.policy_yaml, options);

    if let Some(expected) = &v.load_errors {
        match loaded {
            Ok(_) => failures.push(format!("{name}: bundle loaded but {} errors were expected", expected.len())),
            Err(errs) => {
                for (i, want) in expected.iter().enumerate() {
                    let Some(got) = errs.0.get(i) else {
                        failures
                            .push(format!("{name}: expected error {i} {want:?}, got only {}: {errs}", errs.0.len()));
                        continue;
                    };
                    if got.loc.line != want.line
                        || got.loc.column != want.column
                        || !got.to_string().contains(&want.message)
                    {
                        failures.push(format!(
                            "{name}: error {i}: expected {}:{} `{}`, got {got}",
                            want.line, want.column, want.message
                        ));
                    }
                }
                if errs.0.len() != expected.len() {
                    failures.push(format!("{name}: expected {} errors, got {}:\n{errs}", expected.len(), errs.0.len()));
                }
            }
        }
        return failures;
    }
    let engine = match loaded {
        Ok(e) => e,
        Err(errs) => return vec![format!("{name}: bundle failed to load:\n{errs}")],
    };
    if let Some(h) = &v.policy_hash {
        if &engine.policy_hash().expect("policy hash") != h {
            failures
                .push(format!("{name}: policy hash {} != expected {h}", engine.policy_hash().expect("policy hash")));
        }
    }
    for (i, step) in v.steps.iter().enumerate() {
        counts.steps += 1;
        match step {
            Step::Evaluate { name: step_name, request_json, expect_json, expect_error, callback: fail } => {
                let label = format!("{name} step {i} ({step_name})");
                let head = engine.chain_head().unwrap();
                if let Some(cb) = &callback {
                    cb.fail.store(fail.is_some(), Ordering::SeqCst);
                }
                let got = engine.evaluate_json(request_json);
                let received = callback.as_ref().map(Callback::take);
                match (expect_json, expect_error.as_deref(), got) {
                    (Some(want), None, Ok(line)) => {
                        if &line != want {
                            failures.push(format!("{label}:\n  want {want}\n  got  {line}"));
                        }
                        if let Some(received) = received {
                            let audit = serde_json::from_str::<J>(want).unwrap()["audit"].clone();
                            let want_record =
                                aegis_core::json::parse(&audit.to_string(), 16).unwrap().to_canonical_json();
                            if received != [want_record.clone()] {
                                failures.push(format!(
                                    "{label}: the callback received {received:?}, not the one record {want_record}"
                                ));
                            }
                        }
                    }
                    (None, Some("request"), Err(e @ EvalError::Request(_))) => {
                        if ErrorInfo::from(&e).code != ErrorCode::RequestInvalid {
                            failures.push(format!("{label}: code {} for a request error", ErrorInfo::from(&e).code));
                        }
                        if received.is_some_and(|r| !r.is_empty()) {
                            failures.push(format!("{label}: a refused request reached the callback"));
                        }
                        if engine.chain_head().unwrap() != head {
                            failures.push(format!("{label}: a refused request advanced the chain"));
                        }
                    }
                    (None, Some("audit_failed"), Err(e @ EvalError::Audit(_))) => {
                        if ErrorInfo::from(&e).code != ErrorCode::AuditFailed {
                            failures.push(format!("{label}: code {} for a failed callback", ErrorInfo::from(&e).code));
                        }
                        if received.is_none_or(|r| r.len() != 1) {
                            failures.push(format!("{label}: the failing callback was not called once"));
                        }
                        if engine.chain_head().unwrap() != head {
                            failures.push(format!("{label}: a failed callback advanced the chain"));
                        }
                    }
                    (_, _, other) => failures.push(format!(
                        "{label}: expected {}, got {other:?}",
                        expect_error.as_deref().unwrap_or("a decision")
                    )),
                }
            }
            Step::Kill { scope, id, reason } => {
                engine.kill(KillScope::parse(scope).unwrap(), id, reason).unwrap();
            }
            Step::Revive { scope, id } => {
                engine.revive(KillScope::parse(scope).unwrap(), id).unwrap();
            }
            Step::Marks { session, expect } => {
                let got = engine.marks(session).unwrap();
                if got != *expect {
                    failures.push(format!("{}: marks({session:?}): got {got:?}, expected {expect:?}", v.name));
                }
            }
            Step::ClearMarks { session } => {
                engine.clear_marks(session).unwrap();
            }
            Step::Guarded(_) => counts.not_applicable += 1,
        }
    }
    failures
}

fn vector_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("tests/vectors/generated exists")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    files
}

#[test]
fn shared_vectors() {
    let files = vector_files(&vectors_dir());
    assert!(!files.is_empty(), "no vectors found");
    let mut counts = Counts::default();
    let mut failures = Vec::new();
    for f in &files {
        failures.extend(run_vector(f, &mut counts));
    }
    assert!(
        failures.is_empty(),
        "{} vector failures over {} files:\n{}",
        failures.len(),
        files.len(),
        failures.join("\n")
    );
    println!(
        "{} vector files passed: {} steps, {} configuration cases; {} guarded steps not applicable in Rust",
        counts.files, counts.steps, counts.config_cases, counts.not_applicable
    );
}

/// The strict reader refuses what the schema refuses, at every level.
#[test]
fn the_reader_is_strict() {
    let dir = std::env::temp_dir().join(format!("aegis-vectors-strict-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let base =
        r#"{"name":"x","description":"d","options":{},"policy_yaml":"aegis: 1\nrules: []\n","steps":[STEPS]EXTRA}"#;
    let eval = r#"{"op":"evaluate","name":"s","request_json":"{}","expect_error":"request"}"#;
    let cases = [
        (base.replace("STEPS", eval).replace("EXTRA", ""), true),
        (base.replace("STEPS", eval).replace("EXTRA", r#","colour":"red""#), false),
        (
            base.replace("STEPS", eval).replace("EXTRA", "").replace(r#""options":{}"#, r#""options":{"fsnyc":1}"#),
            false,
        ),
        (base.replace("STEPS", &eval.replace(r#""name":"s""#, r#""name":"s","extra":1"#)).replace("EXTRA", ""), false),
        (base.replace("STEPS", &eval.replace("evaluate", "teleport")).replace("EXTRA", ""), false),
        (base.replace("STEPS", &eval.replace(r#""request""#, r#""audit_failed""#)).replace("EXTRA", ""), false),
        (base.replace("STEPS", r#"{"op":"kill","scope":"planet","id":"x","reason":""}"#).replace("EXTRA", ""), false),
        (
            base.replace("STEPS", r#"{"op":"guarded","name":"g","contexts":[{"agnet":"a"}],"tool":"t","args":{}}"#)
                .replace("EXTRA", r#","audit_callback":true"#),
            false,
        ),
        (
            base.replace("STEPS", r#"{"op":"guarded","name":"g","contexts":[{"agent":"a"}],"tool":"t","args":{}}"#)
                .replace("EXTRA", r#","audit_callback":true"#),
            true,
        ),
        (
            base.replace("STEPS", "")
                .replace("EXTRA", r#","load_errors":[{"line":1,"column":1,"message":"m","help":"h"}]"#),
            false,
        ),
        (base.replace("STEPS", "").replace("EXTRA", r#","options_camel":{}"#), false),
        (
            base.replace("STEPS", eval)
                .replace("EXTRA", "")
                .replace(r#""options":{}"#, r#""options":{"request_max_bytes":"big"}"#),
            false,
        ),
    ];
    for (i, (text, ok)) in cases.iter().enumerate() {
        let p = dir.join(format!("{i}.json"));
        std::fs::write(&p, text).unwrap();
        assert_eq!(read_vector(&p).is_ok(), *ok, "case {i}: {text}: {:?}", read_vector(&p).err());
    }
    let _ = std::fs::remove_dir_all(&dir);
}
