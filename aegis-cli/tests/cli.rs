//! End-to-end tests of the `aegis` binary: exit codes and outputs.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing, missing_docs)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn aegis(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_aegis")).args(args).current_dir(cwd).output().unwrap()
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("aegis-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

const POLICY: &str = "aegis: 1
default: deny
rules:
  - id: small
    match: {tool: payments}
    when: {params.amount: {lte: 5000}}
    outcome: allow
  - id: large
    match: {tool: payments}
    when: {params.amount: {gt: 5000}}
    outcome: require_approval
    approvers: [manager]
  - id: never-tested
    match: {tool: shell}
    outcome: deny
";

#[test]
fn check_reports_every_error_with_locations() {
    let d = tmp("check");
    std::fs::write(d.join("bad.yaml"), "aegis: 1\nrules:\n  - id: a\n    outcome: alow\n  - id: a\n    when: {params.x: {lte : 1, \"gte \": 2}}\n    outcome: allow\n    colour: red\n").unwrap();
    let o = aegis(&["check", "bad.yaml"], &d);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let out = text(&o);
    assert!(out.contains("bad.yaml:4:14: error: unknown outcome \"alow\" — did you mean \"allow\"?"), "{out}");
    assert!(out.contains("bad.yaml:5:9: error: duplicate rule id \"a\""), "{out}");
    assert!(out.contains("bad.yaml:6:32: error: unknown operator \"gte \" — did you mean \"gte\"?"), "{out}");
    assert!(out.contains("bad.yaml:8:5: error: unknown key \"colour\""), "{out}");
    // The same bundle never loads for eval either.
    let o = aegis(&["eval", "-p", "bad.yaml", "-"], &d);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn eval_exit_codes_and_malformed_input() {
    let d = tmp("eval");
    std::fs::write(d.join("p.yaml"), POLICY).unwrap();
    std::fs::write(d.join("ok.jsonl"), "{\"agent\":\"a\",\"tool\":\"payments\",\"params\":{\"amount\":1},\"time\":\"2026-01-05T10:00:00Z\"}\n\n{\"agent\":\"a\",\"tool\":\"shell\",\"time\":\"2026-01-05T10:00:00Z\"}\n").unwrap();
    let o = aegis(&["eval", "-p", "p.yaml", "ok.jsonl", "--audit", "a.jsonl"], &d);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let lines: Vec<&str> = std::str::from_utf8(&o.stdout).unwrap().lines().collect();
    assert_eq!(lines.len(), 2);
    assert!(lines[0].contains("\"outcome\":\"allow\"") && lines[1].contains("\"outcome\":\"deny\""));
    let o = aegis(&["audit", "verify", "a.jsonl"], &d);
    assert!(text(&o).starts_with("ok: 2 records, head "), "{}", text(&o));
    for bad in ["{\"agent\":\"a\"", "{\"agent\":\"a\",\"tool\":\"t\",\"x\":1}", "[]", "\u{0}"] {
        std::fs::write(d.join("bad.jsonl"), format!("{{\"agent\":\"a\",\"tool\":\"t\"}}\n{bad}\n")).unwrap();
        let o = aegis(&["eval", "-p", "p.yaml", "bad.jsonl"], &d);
        assert_eq!(o.status.code(), Some(2), "{bad}: {}", text(&o));
        assert_eq!(String::from_utf8_lossy(&o.stdout).lines().count(), 1, "stops at the first invalid request");
    }
    for args in [&["eval"][..], &["eval", "-p"], &["nonsense"], &["eval", "-p", "p.yaml", "--bogus"], &["audit"], &[]] {
        assert_eq!(aegis(args, &d).status.code(), Some(2), "{args:?}");
    }
}

#[test]
fn policy_tests_diff_coverage_and_junit() {
    let d = tmp("test");
    std::fs::write(d.join("p.yaml"), POLICY).unwrap();
    let suite = "policies: p.yaml\ndefaults: {agent: a, time: \"2026-01-05T10:00:00Z\"}\ncases:\n  - name: small\n    request: {tool: payments, params: {amount: 10}}\n    expect: allow\n  - name: large\n    request: {tool: payments, params: {amount: 9000}}\n    expect: {outcome: require_approval, rules: [large], approvers: [manager]}\n";
    std::fs::write(d.join("p.test.yaml"), suite).unwrap();
    let o = aegis(&["test", ".", "--coverage", "--junit", "reports/j.xml"], &d);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let out = text(&o);
    assert!(out.trim_end().ends_with("2 passed, 0 failed"), "{out}");
    // Coverage names exactly the unreached rule, with its location.
    assert!(out.contains("p.yaml:13:5: rule \"never-tested\" is never determining"), "{out}");
    assert_eq!(out.matches("is never determining").count(), 1, "{out}");
    let junit = std::fs::read_to_string(d.join("reports/j.xml")).unwrap();
    assert!(junit.contains("<testcase name=\"small\" classname=\"./p.test.yaml\"/>"), "{junit}");
    // One wrong expectation: a diff for that case, `1 failed`, exit 1.
    std::fs::write(d.join("p.test.yaml"), suite.replace("expect: allow", "expect: deny")).unwrap();
    let o = aegis(&["test"], &d);
    assert_eq!(o.status.code(), Some(1));
    let out = text(&o);
    assert!(out.contains("FAIL ./p.test.yaml: small") && out.contains("outcome:  expected deny, got allow"), "{out}");
    assert!(out.contains("explain:"), "{out}");
    assert!(out.trim_end().ends_with("1 passed, 1 failed"), "{out}");
    // No test files at all: exit 2.
    let empty = tmp("test-empty");
    assert_eq!(aegis(&["test"], &empty).status.code(), Some(2));
}

#[test]
fn replay_reports_exactly_the_changed_requests() {
    let d = tmp("replay");
    std::fs::write(d.join("old.yaml"), POLICY).unwrap();
    std::fs::write(d.join("new.yaml"), POLICY.replace("lte: 5000", "lte: 8000").replace("gt: 5000", "gt: 8000"))
        .unwrap();
    let mut reqs = String::new();
    for amount in [100, 4999, 5000, 5001, 7000, 8000, 8001, 20000] {
        reqs.push_str(&format!("{{\"agent\":\"a\",\"tool\":\"payments\",\"params\":{{\"amount\":{amount}}},\"time\":\"2026-01-05T10:00:00Z\"}}\n"));
    }
    std::fs::write(d.join("r.jsonl"), reqs).unwrap();
    let o = aegis(&["replay", "-p", "new.yaml", "--baseline", "old.yaml", "r.jsonl"], &d);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    let changed: Vec<&str> = out.lines().filter(|l| l.starts_with("line ")).collect();
    assert_eq!(
        changed,
        vec![
            "line 4: require_approval [large] -> allow [small]",
            "line 5: require_approval [large] -> allow [small]",
            "line 6: require_approval [large] -> allow [small]",
        ],
        "{out}"
    );
    assert!(
        out.contains("  require_approval -> allow: 3") && out.trim_end().ends_with("8 requests, 3 changed"),
        "{out}"
    );
    let o = aegis(&["replay", "-p", "new.yaml", "--baseline", "old.yaml", "--fail-on-change", "r.jsonl"], &d);
    assert_eq!(o.status.code(), Some(1));
}

#[test]
fn grant_round_trip_through_eval() {
    let d = tmp("grant");
    std::fs::write(d.join("p.yaml"), POLICY).unwrap();
    std::fs::write(d.join("k"), b"approval-key").unwrap();
    let req = "{\"agent\":\"a\",\"tool\":\"payments\",\"params\":{\"amount\":9000}}";
    std::fs::write(d.join("r.json"), req).unwrap();
    let o = aegis(&["eval", "-p", "p.yaml", "--approval-key-file", "k", "r.json"], &d);
    let line = String::from_utf8_lossy(&o.stdout).to_string();
    let id = line.split("\"id\":\"").nth(1).unwrap().split('"').next().unwrap().to_string();
    let o = aegis(&["grant", "--approval-key-file", "k", "--id", &id, "--by", "alice", "--ttl", "1h"], &d);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let token = String::from_utf8_lossy(&o.stdout).trim().to_string();
    std::fs::write(d.join("r2.json"), req.replace("}}", &format!("}},\"approval\":\"{token}\"}}"))).unwrap();
    let o = aegis(&["eval", "-p", "p.yaml", "--approval-key-file", "k", "r2.json"], &d);
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(out.contains("\"outcome\":\"allow\"") && out.contains("\"approved_by\":\"alice\""), "{out}");
    assert!(out.contains("approved by alice: "), "{out}");
    assert_eq!(
        aegis(&["grant", "--approval-key-file", "k", "--id", "nope", "--by", "a", "--ttl", "1h"], &d).status.code(),
        Some(2)
    );
}

const MARKS: &str = "aegis: 1
default: deny
rules:
  - {id: crm-read, match: {tool: crm}, outcome: allow, marks: [pii]}
  - {id: fetch, match: {tool: browser}, outcome: allow, marks: [{label: untrusted, ttl: 2h}]}
  - {id: mail-ok, match: {tool: mail}, outcome: allow}
  - id: trifecta
    match: {tool: mail}
    when: {session.marks: {contains_all: [pii, untrusted]}}
    outcome: require_approval
    approvers: [security]
";

/// Session marks (§10) carry from line to line in `eval` and `replay`, and from case to
/// case in `aegis test`.
#[test]
fn marks_carry_through_eval_replay_and_test() {
    let d = tmp("marks");
    std::fs::write(d.join("p.yaml"), MARKS).unwrap();
    let line = |tool: &str, t: &str| {
        format!("{{\"agent\":\"a\",\"tool\":\"{tool}\",\"session\":\"s\",\"time\":\"2026-01-05T{t}Z\"}}\n")
    };
    let stream = [line("crm", "10:00:00"), line("browser", "10:01:00"), line("mail", "10:02:00")].concat();
    std::fs::write(d.join("r.jsonl"), &stream).unwrap();
    let o = aegis(&["eval", "-p", "p.yaml", "r.jsonl"], &d);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(lines[1].contains(r#""marks":["pii","untrusted"]"#), "{out}");
    assert!(
        lines[2].contains(r#""outcome":"require_approval""#) && lines[2].contains(r#""rules":["trifecta"]"#),
        "{out}"
    );
    // The new bundle no longer marks fetched pages: only the third line changes.
    std::fs::write(d.join("new.yaml"), MARKS.replace(", marks: [{label: untrusted, ttl: 2h}]", "")).unwrap();
    let o = aegis(&["replay", "-p", "new.yaml", "--baseline", "p.yaml", "r.jsonl"], &d);
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    let changed: Vec<&str> = out.lines().filter(|l| l.starts_with("line ")).collect();
    assert_eq!(changed, vec!["line 3: require_approval [trifecta] -> allow [mail-ok]"], "{out}");
    // `aegis test`: expect.marks is the record's marks, exactly; cases share one engine.
    let suite = "policies: p.yaml
defaults: {agent: a, session: s, time: \"2026-01-05T10:00:00Z\"}
cases:
  - {name: crm, request: {tool: crm}, expect: {outcome: allow, marks: [pii]}}
  - {name: web, request: {tool: browser}, expect: {outcome: allow, marks: [pii, untrusted]}}
  - {name: mail, request: {tool: mail}, expect: {outcome: require_approval, marks: [pii, untrusted]}}
  - {name: other session, request: {tool: mail, session: t}, expect: {outcome: allow, marks: []}}
";
    std::fs::write(d.join("p.test.yaml"), suite).unwrap();
    let o = aegis(&["test", "p.test.yaml"], &d);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    std::fs::write(d.join("p.test.yaml"), suite.replace("marks: [pii]}", "marks: [pii, x]}")).unwrap();
    let o = aegis(&["test", "p.test.yaml"], &d);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).contains("marks:    expected [pii, x], got [pii]"), "{}", text(&o));
    std::fs::write(d.join("p.test.yaml"), suite.replace("marks: [pii]}", "mark: [pii]}")).unwrap();
    let o = aegis(&["test", "p.test.yaml"], &d);
    assert!(text(&o).contains("(expected outcome, rules, reason, approvers, errors, marks)"), "{}", text(&o));
}

#[test]
fn approve_cases_grant_and_re_decide() {
    let d = tmp("approve");
    std::fs::write(d.join("p.yaml"), POLICY).unwrap();
    let suite = "policies: p.yaml
defaults: {agent: a, time: \"2026-01-05T10:00:00Z\"}
cases:
  - name: granted
    request: {tool: payments, params: {amount: 9000}}
    approve: alice
    expect: {outcome: allow, rules: [large], reason: \"approved by alice: \"}
";
    std::fs::write(d.join("p.test.yaml"), suite).unwrap();
    let o = aegis(&["test", "p.test.yaml"], &d);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    // The expectation is the re-decision: expecting the first decision fails, and says so.
    std::fs::write(
        d.join("p.test.yaml"),
        suite.replace("outcome: allow, rules: [large], reason: \"approved by alice: \"", "outcome: require_approval"),
    )
    .unwrap();
    let o = aegis(&["test", "p.test.yaml"], &d);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("asked:    require_approval [large]; granted by alice"), "{}", text(&o));
    // Nothing to grant: a small payment is allowed outright.
    std::fs::write(d.join("p.test.yaml"), suite.replace("9000", "10")).unwrap();
    let o = aegis(&["test", "p.test.yaml"], &d);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("the request did not ask for approval"), "{}", text(&o));
    // The runner makes the grant; a token in the request is refused, and so is a non-string approver.
    std::fs::write(d.join("p.test.yaml"), suite.replace("amount: 9000}", "amount: 9000}, approval: x")).unwrap();
    let o = aegis(&["test", "p.test.yaml"], &d);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("leave out `approval`"), "{}", text(&o));
    std::fs::write(d.join("p.test.yaml"), suite.replace("approve: alice", "approve: [alice]")).unwrap();
    let o = aegis(&["test", "p.test.yaml"], &d);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("`approve` is the approver"), "{}", text(&o));
}
