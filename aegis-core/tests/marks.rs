//! Session marks (§10) end to end through `Engine::evaluate`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, missing_docs)]

use aegis_core::{Engine, EngineOptions, Outcome, Request, RequestLimits};
use std::sync::Arc;

const BUNDLE: &str = r#"
aegis: 1
default: deny
rules:
  - id: hr-reads
    match: {tool: files, action: read}
    when: {params.path: {within: /hr-docs}}
    outcome: allow
    marks: [pii]
  - id: web-fetch
    match: {tool: browser, action: fetch}
    outcome: allow
    marks: [{label: untrusted, ttl: 2h}]
  - id: sql-injection-attempt
    match: {tool: db}
    when: {params.query: {contains_any: [DROP, "; DELETE"]}}
    outcome: deny
    marks: [suspicious]
  - id: db-ok
    match: {tool: db}
    outcome: allow
  - id: mail-ok
    match: {tool: send_email}
    outcome: allow
  - id: lethal-trifecta
    match: {tool: send_email}
    when:
      session.marks: {contains_all: [pii, untrusted]}
      not: {params.to: {domain_in: [example.com]}}
    outcome: require_approval
    approvers: [security]
  - id: quarantine
    when: {session.marks: {contains: suspicious}}
    outcome: deny
"#;

fn engine(max_sessions: usize) -> Engine {
    let o = EngineOptions {
        max_sessions,
        approval_key: Some(aegis_core::Key::new("approval_key", b"k".to_vec()).unwrap()),
        ..EngineOptions::default()
    };
    Engine::from_yaml(BUNDLE, o).unwrap()
}

fn eval(e: &Engine, json: &str) -> aegis_core::Decision {
    let r = Request::from_json(json, &RequestLimits::default()).unwrap();
    e.evaluate(&r).unwrap()
}

fn req(tool: &str, action: &str, session: Option<&str>, time: &str, params: &str) -> String {
    let s = session.map(|s| format!(r#","session":"{s}""#)).unwrap_or_default();
    format!(r#"{{"agent":"a","tool":"{tool}","action":"{action}"{s},"time":"{time}","params":{params}}}"#)
}

#[test]
fn the_lethal_trifecta_needs_all_three_steps() {
    let e = engine(100);
    let out = req("send_email", "send", Some("s1"), "2026-01-05T10:00:00Z", r#"{"to":"x@evil.net"}"#);
    let d = eval(&e, &out);
    assert_eq!((d.outcome, d.rules.clone()), (Outcome::Allow, vec!["mail-ok".to_string()]));
    assert!(d.audit.marks.is_empty(), "no live marks: omitted");
    assert!(!d.audit.to_json().contains("\"marks\""));
    let d = eval(&e, &req("files", "read", Some("s1"), "2026-01-05T10:01:00Z", r#"{"path":"/hr-docs/a"}"#));
    assert_eq!(d.audit.marks, ["pii"]);
    let d = eval(&e, &req("browser", "fetch", Some("s1"), "2026-01-05T10:02:00Z", "{}"));
    assert_eq!(d.audit.marks, ["pii", "untrusted"]);
    assert!(d.audit.to_json().contains(r#""marks":["pii","untrusted"],"outcome":"allow""#), "{}", d.audit.to_json());
    let d = eval(&e, &out.replace("10:00:00", "10:03:00"));
    assert_eq!(d.outcome, Outcome::RequireApproval);
    assert_eq!(d.rules, ["lethal-trifecta"]);
    // Inside the company: allowed.
    let d = eval(&e, &out.replace("10:00:00", "10:04:00").replace("evil.net", "example.com"));
    assert_eq!(d.outcome, Outcome::Allow);
    // The untrusted mark lives 2h: at 12:02:00.000 it is gone.
    let d = eval(&e, &out.replace("10:00:00", "12:01:59.999"));
    assert_eq!(d.outcome, Outcome::RequireApproval);
    let d = eval(&e, &out.replace("10:00:00", "12:02:00"));
    assert_eq!(d.outcome, Outcome::Allow);
    assert_eq!(d.audit.marks, ["pii"]);
    // Another session is not affected.
    let d = eval(&e, &out.replace("s1", "s2"));
    assert_eq!(d.outcome, Outcome::Allow);
}

#[test]
fn a_denied_attempt_marks_the_session_and_quarantine_follows() {
    let e = engine(100);
    let d = eval(&e, &req("db", "query", Some("q"), "2026-01-05T10:00:00Z", r#"{"query":"drop table x"}"#));
    assert_eq!(
        (d.outcome, d.rules.clone(), d.audit.marks.clone()),
        (Outcome::Deny, vec!["sql-injection-attempt".to_string()], vec!["suspicious".to_string()])
    );
    let d = eval(&e, &req("db", "query", Some("q"), "2026-01-05T10:00:01Z", r#"{"query":"select 1"}"#));
    assert_eq!((d.outcome, d.rules.clone()), (Outcome::Deny, vec!["quarantine".to_string()]));
    assert_eq!(e.marks("q").unwrap(), Vec::<String>::new(), "expired at the engine's clock (2026-01 + 24h)");
}

#[test]
fn without_a_session_marks_fail_closed_and_are_listed_as_not_recorded() {
    let e = engine(100);
    let d = eval(&e, &req("db", "query", None, "2026-01-05T10:00:00Z", r#"{"query":"select 1"}"#));
    // quarantine tests session.marks: an error, so the deny applies.
    assert_eq!((d.outcome, d.rules.clone()), (Outcome::Deny, vec!["quarantine".to_string()]));
    assert_eq!(d.errors.len(), 1);
    assert_eq!(
        (d.errors[0].path.as_str(), d.errors[0].message.as_str()),
        ("session.marks", "no value at \"session.marks\"")
    );
    let d = eval(&e, &req("browser", "fetch", None, "2026-01-05T10:00:00Z", "{}"));
    assert_eq!(d.outcome, Outcome::Deny, "quarantine errs and denies");
    let d = eval(&e, &req("files", "read", None, "2026-01-05T10:00:00Z", r#"{"path":"/hr-docs/a"}"#));
    assert_eq!(d.rules, ["quarantine"]);
}

#[test]
fn a_full_table_denies_with_state_full_and_a_held_session_goes_on() {
    let e = engine(1);
    let d = eval(&e, &req("browser", "fetch", Some("a"), "2026-01-05T10:00:00Z", "{}"));
    assert_eq!(d.outcome, Outcome::Allow);
    // While full, an unheld session's marks are unknown: quarantine errs and denies.
    let d = eval(&e, &req("browser", "fetch", Some("b"), "2026-01-05T10:00:01Z", "{}"));
    assert_eq!((d.outcome, d.rules.clone()), (Outcome::Deny, vec!["quarantine".to_string()]));
    // A deny that would mark the unheld session: state:full, alone.
    let d = eval(&e, &req("db", "q", Some("b"), "2026-01-05T10:00:01Z", r#"{"query":"DROP x"}"#));
    assert_eq!((d.outcome, d.rules.clone()), (Outcome::Deny, vec!["state:full".to_string()]));
    assert_eq!(d.reason, "session table full: the call's marks cannot be stored");
    assert_eq!(d.errors.len(), 1);
    assert_eq!(d.errors[0].message, "max_sessions (1) sessions hold live marks");
    assert!(d.audit.marks.is_empty());
    // Reading an unheld session's marks while full: unknown, and quarantine denies.
    let d = eval(&e, &req("db", "query", Some("b"), "2026-01-05T10:00:02Z", r#"{"query":"select 1"}"#));
    assert_eq!(d.rules, ["quarantine"]);
    assert_eq!(d.errors[0].message, "session marks unknown: the session table is full");
    let d = eval(&e, &req("files", "read", Some("a"), "2026-01-05T10:00:03Z", r#"{"path":"/hr-docs/x"}"#));
    assert_eq!(d.audit.marks, ["pii", "untrusted"]);
    // Once `a`'s marks expire (untrusted 2h, pii 24h), its place is free again.
    let d = eval(&e, &req("browser", "fetch", Some("b"), "2026-01-06T10:00:03Z", "{}"));
    assert_eq!((d.outcome, d.audit.marks.clone()), (Outcome::Allow, vec!["untrusted".to_string()]));
}

#[test]
fn require_approval_adds_marks_only_once_granted() {
    let yaml = "aegis: 1\nrules:\n  - {id: big, match: {tool: pay}, outcome: require_approval, approvers: [boss], marks: [paid]}\n  - {id: r, match: {tool: read}, when: {session.marks: {contains: paid}}, outcome: deny}\n";
    let o = EngineOptions {
        approval_key: Some(aegis_core::Key::new("approval_key", b"k".to_vec()).unwrap()),
        ..EngineOptions::default()
    };
    let e = Engine::from_yaml(yaml, o).unwrap();
    let ask = r#"{"agent":"a","tool":"pay","session":"s","time":"2099-01-05T10:00:00Z"}"#;
    let d = eval(&e, ask);
    assert_eq!(d.outcome, Outcome::RequireApproval);
    assert!(d.audit.marks.is_empty() && e.marks("s").unwrap().is_empty());
    let id = d.approval.unwrap().id;
    let token = aegis_core::issue_grant(
        b"k",
        &id,
        "boss",
        3600,
        aegis_core::time::parse_rfc3339("2099-01-05T10:00:00Z").unwrap(),
    )
    .unwrap();
    let granted = ask.replace("}", &format!(r#","approval":"{token}"}}"#));
    let d = eval(&e, &granted);
    assert_eq!(d.outcome, Outcome::Allow);
    assert_eq!(d.audit.marks, ["paid"]);
    assert_eq!(e.marks("s").unwrap(), ["paid"]);
    assert!(e.clear_marks("s").unwrap());
    assert!(e.marks("s").unwrap().is_empty());
    assert!(e.marks("").is_err());
}

#[test]
fn racing_threads_in_one_session_never_lose_a_mark() {
    let mut yaml = String::from("aegis: 1\nrules:\n");
    for i in 0..8 {
        yaml.push_str(&format!("  - {{id: r{i}, match: {{tool: t{i}}}, outcome: allow, marks: [m{i}]}}\n"));
    }
    for round in 0..20 {
        let e = Arc::new(Engine::from_yaml(&yaml, EngineOptions::default()).unwrap());
        let hs: Vec<_> = (0..8)
            .map(|i| {
                let e = e.clone();
                std::thread::spawn(move || {
                    eval(
                        &e,
                        &format!(r#"{{"agent":"a","tool":"t{i}","session":"s{round}","time":"2099-01-01T00:00:00Z"}}"#),
                    )
                })
            })
            .collect();
        let records: Vec<_> = hs.into_iter().map(|h| h.join().unwrap()).collect();
        assert_eq!(e.marks(&format!("s{round}")).unwrap().len(), 8);
        // The record of the last call to commit saw all eight.
        assert_eq!(records.iter().map(|d| d.audit.marks.len()).max(), Some(8));
    }
}

#[test]
fn marks_survive_reload_and_explain_shows_the_marks_seen() {
    let e = engine(100);
    eval(&e, &req("files", "read", Some("s"), "2099-01-05T10:00:00Z", r#"{"path":"/hr-docs/a"}"#));
    e.reload_yaml(&BUNDLE.replace("mail-ok", "mail-fine")).unwrap();
    assert_eq!(e.marks("s").unwrap(), ["pii"]);
    let r = Request::from_json(
        &req("send_email", "send", Some("s"), "2099-01-05T10:01:00Z", r#"{"to":"a@evil.net"}"#),
        &RequestLimits::default(),
    )
    .unwrap();
    let d = e.evaluate_with(&r, aegis_core::EvalOptions { explain: true }).unwrap();
    assert_eq!(d.rules, ["mail-fine"], "pii alone is not the trifecta");
    let ex = d.explain.clone().unwrap();
    let trifecta = ex.iter().find(|x| x.rule == "lethal-trifecta").unwrap();
    assert_eq!(trifecta.marks.as_deref(), Some(&["pii".to_string()][..]));
    assert!(ex.iter().find(|x| x.rule == "mail-fine").unwrap().marks.is_none());
    assert!(d.to_json().contains(r#""marks":["pii"]"#));
}

#[test]
fn the_record_shows_marks_only_when_the_call_touches_them() {
    let yaml = "aegis: 1\nrules:\n  - {id: m, match: {tool: mark}, outcome: allow, marks: [x]}\n  - {id: plain, match: {tool: plain}, outcome: allow}\n  - {id: other-session, match: {tool: plain, session: zzz}, when: {session.marks: {contains: y}}, outcome: deny}\n";
    let e = Engine::from_yaml(yaml, EngineOptions::default()).unwrap();
    let mark = r#"{"agent":"a","tool":"mark","session":"s","time":"2099-01-01T00:00:00Z"}"#;
    assert_eq!(eval(&e, mark).audit.marks, ["x"]);
    // `other-session` is an index candidate for `plain`, but its selectors do not match
    // session `s`: the call does not read marks, and its record has none.
    let d = eval(&e, &mark.replace("\"mark\"", "\"plain\""));
    assert_eq!(d.rules, ["plain"]);
    assert!(d.audit.marks.is_empty());
    let d = eval(&e, &mark.replace("\"mark\"", "\"plain\"").replace("\"s\"", "\"zzz\""));
    assert_eq!(d.rules, ["plain"], "zzz has no mark y");
    assert!(d.audit.marks.is_empty(), "zzz has no live marks: omitted");
}

#[test]
fn a_request_older_than_pruned_marks_fails_closed() {
    let e = engine(1);
    // `a` marked untrusted (2h) and pii... only untrusted here: fetch.
    eval(&e, &req("browser", "fetch", Some("a"), "2026-01-05T10:00:00Z", "{}"));
    // A day later `b` needs the only place: `a` (expired) is pruned, up to 12:00.
    let d = eval(&e, &req("browser", "fetch", Some("b"), "2026-01-06T10:00:00Z", "{}"));
    assert_eq!(d.outcome, Outcome::Allow);
    // A request back-dated before 12:00 of the first day cannot know its marks.
    let d = eval(&e, &req("db", "q", Some("b"), "2026-01-05T11:00:00Z", r#"{"query":"select 1"}"#));
    assert_eq!(d.rules, ["quarantine"]);
    assert_eq!(d.errors[0].message, "session marks unknown: the request time is before marks were pruned");
}
