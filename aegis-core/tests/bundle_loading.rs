//! §9a: bundle folders hide nothing, and bundles load in bounded time and memory.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing, missing_docs)]

use aegis_core::{Engine, EngineOptions, Outcome, Request, RequestLimits};
use std::path::{Path, PathBuf};

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("aegis-bundle-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

const DENY: &str = "aegis: 1\nrules:\n  - id: deny-big\n    match: {tool: payments}\n    when: {params.amount: {gt: 1000}}\n    outcome: deny\n";
const ALLOW: &str = "aegis: 1\nrules:\n  - id: pay\n    match: {tool: payments}\n    outcome: allow\n";

fn decide(dir: &Path, amount: u32) -> (Outcome, Vec<String>) {
    let e = Engine::from_path(dir, EngineOptions::default()).unwrap_or_else(|e| panic!("{e}"));
    let r = Request::from_json(
        &format!(r#"{{"agent":"a","tool":"payments","params":{{"amount":{amount}}},"time":"2026-01-05T10:00:00Z"}}"#),
        &RequestLimits::default(),
    )
    .unwrap();
    let d = e.evaluate(&r).unwrap();
    (d.outcome, d.rules)
}

/// The review's finding: `Deny.YAML` was skipped and the payment it denies allowed.
#[test]
fn extensions_match_case_insensitively() {
    let d = tmp("case");
    std::fs::write(d.join("allow.yaml"), ALLOW).unwrap();
    std::fs::write(d.join("Deny.YAML"), DENY).unwrap();
    assert_eq!(decide(&d, 5000), (Outcome::Deny, vec!["deny-big".to_string()]));
    for name in ["b.Yml", "c.JSON"] {
        let d2 = tmp("case2");
        std::fs::write(d2.join("allow.yaml"), ALLOW).unwrap();
        std::fs::write(d2.join(name), DENY).unwrap();
        assert_eq!(decide(&d2, 5000).0, Outcome::Deny, "{name}");
    }
    // A test file in any case is not a policy: it would not even load as one.
    std::fs::write(d.join("X.Test.Yaml"), "policies: .\ncases: []\n").unwrap();
    assert_eq!(decide(&d, 5000).0, Outcome::Deny);
    assert!(aegis_core::policy::is_test_file_name("X.Test.Yaml"));
    assert!(!aegis_core::policy::is_policy_file_name("X.TEST.YAML"));
    assert!(aegis_core::policy::is_policy_file_name("Deny.YAML"));
}

#[cfg(unix)]
#[test]
fn a_file_reached_twice_is_loaded_once_at_its_first_path() {
    let d = tmp("twice");
    std::fs::create_dir_all(d.join("real")).unwrap();
    std::fs::write(d.join("real/policy.yaml"), DENY).unwrap();
    std::os::unix::fs::symlink(d.join("real"), d.join("alias")).unwrap();
    std::os::unix::fs::symlink(d.join("real/policy.yaml"), d.join("also.yaml")).unwrap();
    // Without de-duplication the rule id would be a duplicate: a load error.
    let e = Engine::from_path(&d, EngineOptions::default()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(e.policy().bundle.files, vec![d.join("alias/policy.yaml").display().to_string()]);
}

#[cfg(unix)]
#[test]
fn symlink_loops_are_one_error_naming_the_link() {
    let d = tmp("loop");
    std::fs::write(d.join("policy.yaml"), ALLOW).unwrap();
    std::fs::create_dir_all(d.join("sub")).unwrap();
    std::os::unix::fs::symlink(&d, d.join("sub/up")).unwrap();
    std::os::unix::fs::symlink(d.join("self.yaml"), d.join("self.yaml")).unwrap();
    let errs = match Engine::from_path(&d, EngineOptions::default()) {
        Err(e) => e.0,
        Ok(_) => panic!("a bundle with a symlink loop loaded"),
    };
    let shown: Vec<String> = errs.iter().map(|e| format!("{}: {}", e.loc.file, e.message)).collect();
    assert_eq!(shown.len(), 2, "{shown:?}");
    assert!(shown[0].ends_with("self.yaml: symlink loop"), "{shown:?}");
    assert!(shown[1].contains("sub/up: symlink loop"), "{shown:?}");
}

#[cfg(unix)]
#[test]
fn a_name_that_is_not_utf8_is_a_load_error() {
    use std::os::unix::ffi::OsStrExt;
    let d = tmp("utf8");
    std::fs::write(d.join("policy.yaml"), ALLOW).unwrap();
    std::fs::write(d.join(std::ffi::OsStr::from_bytes(b"deny-\xff.yaml")), DENY).unwrap();
    let errs = match Engine::from_path(&d, EngineOptions::default()) {
        Err(e) => e.0,
        Ok(_) => panic!("a folder entry with a non-UTF-8 name was skipped"),
    };
    assert_eq!(errs.len(), 1);
    assert!(errs[0].message.contains("not UTF-8"), "{}", errs[0].message);
}

/// The review's finding: a 1 MiB file expanding to gigabytes aborted the process.
#[test]
fn an_alias_bomb_is_a_load_error() {
    let mut doc = String::from("aegis: 1\nx: &x \"");
    doc.push_str(&"a".repeat(1 << 19));
    doc.push_str("\"\nbomb: [");
    for _ in 0..1000 {
        doc.push_str("*x, ");
    }
    doc.push_str("]\n");
    let errs = match Engine::from_yaml(&doc, EngineOptions::default()) {
        Err(e) => e.0,
        Ok(_) => panic!("loaded"),
    };
    assert!(errs[0].message.contains("aliases expand the document beyond"), "{}", errs[0].message);
    // The classic nested form too.
    let mut nested = String::from("aegis: 1\na0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..12 {
        let p = format!("*a{}", i - 1);
        nested.push_str(&format!("a{i}: &a{i} [{p}, {p}, {p}, {p}, {p}, {p}, {p}, {p}, {p}, {p}]\n"));
    }
    assert!(Engine::from_yaml(&nested, EngineOptions::default()).is_err());
}

/// The review's finding: 400k keys took 470 s to report one duplicate.
#[test]
fn many_keys_with_a_duplicate_are_one_error() {
    let mut doc = String::from("aegis: 1\nextra:\n");
    for i in 0..400_000 {
        doc.push_str(&format!("  k{i}: 1\n"));
    }
    doc.push_str("  k7: 2\n");
    let errs = match Engine::from_yaml(&doc, EngineOptions::default()) {
        Err(e) => e.0,
        Ok(_) => panic!("loaded"),
    };
    assert!(errs.iter().any(|e| e.message == "duplicate key \"k7\""), "{:?}", errs.first().map(|e| &e.message));
}
