//! Runs every shared vector in `tests/vectors/generated/` through the Rust engine,
//! byte for byte. The Python, Node, C and Go suites run the same files.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing, missing_docs)]

use aegis_core::{Engine, EngineOptions, EvalError, KillScope};
use serde_json::Value as J;
use std::path::PathBuf;

fn vectors_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/vectors/generated")
}

fn options(v: &J) -> EngineOptions {
    let mut o = EngineOptions::default();
    let opts = &v["options"];
    if let Some(k) = opts["signing_key"].as_str() {
        o.signing_key = Some(aegis_core::Key::new("signing_key", k.as_bytes()).unwrap());
    }
    if let Some(k) = opts["signing_key_id"].as_str() {
        o.signing_key_id = Some(aegis_core::KeyId::new("signing_key_id", k).unwrap());
    }
    if let Some(k) = opts["approval_key"].as_str() {
        o.approval_key = Some(aegis_core::Key::new("approval_key", k.as_bytes()).unwrap());
    }
    o
}

fn run_vector(path: &PathBuf) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap();
    let v: J = serde_json::from_str(&text).unwrap();
    let name = v["name"].as_str().unwrap_or("?").to_string();
    let mut failures = Vec::new();
    let loaded = Engine::from_yaml(v["policy_yaml"].as_str().unwrap(), options(&v));
    if let Some(expected) = v.get("load_errors").and_then(J::as_array) {
        match loaded {
            Ok(_) => failures.push(format!("{name}: bundle loaded but {} errors were expected", expected.len())),
            Err(errs) => {
                for (i, want) in expected.iter().enumerate() {
                    let Some(got) = errs.0.get(i) else {
                        failures.push(format!(
                            "{name}: expected error {i} {want}, got only {} errors: {errs}",
                            errs.0.len()
                        ));
                        continue;
                    };
                    let line = want["line"].as_u64().unwrap() as usize;
                    let col = want["column"].as_u64().unwrap() as usize;
                    let msg = want["message"].as_str().unwrap();
                    if got.loc.line != line || got.loc.column != col || !got.to_string().contains(msg) {
                        failures.push(format!("{name}: error {i}: expected {line}:{col} `{msg}`, got {got}"));
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
    if let Some(h) = v["policy_hash"].as_str() {
        if engine.policy_hash() != h {
            failures.push(format!("{name}: policy hash {} != expected {h}", engine.policy_hash()));
        }
    }
    for (i, step) in v["steps"].as_array().unwrap().iter().enumerate() {
        let label = format!("{name} step {i} ({})", step["name"].as_str().unwrap_or(""));
        match step["op"].as_str().unwrap() {
            "evaluate" => {
                let req = step["request_json"].as_str().unwrap();
                let got = engine.evaluate_json(req);
                match (step.get("expect_error"), got) {
                    (Some(_), Err(EvalError::Request(_))) => {}
                    (Some(_), other) => failures.push(format!("{label}: expected a request error, got {other:?}")),
                    (None, Ok(line)) => {
                        let want = step["expect_json"].as_str().unwrap();
                        if line != want {
                            failures.push(format!("{label}:\n  want {want}\n  got  {line}"));
                        }
                    }
                    (None, Err(e)) => failures.push(format!("{label}: error {e}")),
                }
            }
            "kill" => {
                let scope = KillScope::parse(step["scope"].as_str().unwrap()).unwrap();
                engine.kill(scope, step["id"].as_str().unwrap(), step["reason"].as_str().unwrap_or("")).unwrap();
            }
            "revive" => {
                let scope = KillScope::parse(step["scope"].as_str().unwrap()).unwrap();
                engine.revive(scope, step["id"].as_str().unwrap()).unwrap();
            }
            other => failures.push(format!("{label}: unknown op {other}")),
        }
    }
    failures
}

#[test]
fn shared_vectors() {
    let mut files: Vec<PathBuf> = std::fs::read_dir(vectors_dir())
        .expect("tests/vectors/generated exists")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no vectors found");
    let mut failures = Vec::new();
    for f in &files {
        failures.extend(run_vector(f));
    }
    assert!(
        failures.is_empty(),
        "{} vector failures over {} files:\n{}",
        failures.len(),
        files.len(),
        failures.join("\n")
    );
    println!("{} vector files passed", files.len());
}
