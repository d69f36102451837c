//! The session-marks workload (§10): three tools that mark a session (`pii`,
//! `untrusted`, `customer`) and an e-mail tool whose rules read the marks — the
//! lethal trifecta and a quarantine. The same rules can test a request list of the
//! same labels instead (`context.seen`), which is the baseline the cost of reading
//! marks is measured against.

// A workload that cannot be built must stop the benchmark, not measure something else.
#![allow(clippy::expect_used)]

use aegis_core::{Engine, Request, RequestLimits};

/// Sessions holding live marks in the benchmark and the memory figure.
pub const SESSIONS: usize = 100_000;

/// The bundle; `reads_marks` picks `session.marks` or `context.seen` as the list
/// the e-mail rules test.
pub fn bundle(reads_marks: bool) -> String {
    let seen = if reads_marks { "session.marks" } else { "context.seen" };
    format!(
        r#"aegis: 1
default: deny
rules:
  - {{id: hr-reads, match: {{tool: files, action: read}}, outcome: allow, marks: [pii]}}
  - {{id: web-fetch, match: {{tool: browser, action: fetch}}, outcome: allow, marks: [untrusted]}}
  - {{id: crm-read, match: {{tool: crm, action: read}}, outcome: allow, marks: [customer]}}
  - {{id: mail-ok, match: {{tool: send_email}}, outcome: allow}}
  - id: lethal-trifecta
    match: {{tool: send_email}}
    when:
      {seen}: {{contains_all: [pii, untrusted]}}
      not: {{params.to: {{domain_in: [example.com]}}}}
    outcome: require_approval
    approvers: [security]
  - {{id: quarantine, match: {{tool: send_email}}, when: {{{seen}: {{contains: suspicious}}}}, outcome: deny}}
"#
    )
}

const TIME: &str = "2099-01-01T00:00:00Z";

fn parse(json: &str) -> Request {
    Request::from_json(json, &RequestLimits::default()).expect("a valid request")
}

/// Gives sessions `s-0` … `s-(n-1)` the three marks (three calls each).
pub fn fill(engine: &Engine, n: usize) {
    for i in 0..n {
        for (tool, action) in [("files", "read"), ("browser", "fetch"), ("crm", "read")] {
            let r = parse(&format!(
                r#"{{"agent":"a","tool":"{tool}","action":"{action}","session":"s-{i}","time":"{TIME}"}}"#
            ));
            engine.evaluate(&r).expect("recorded");
        }
    }
}

/// An e-mail out of the company in session `s-i` (decided `require_approval` by the
/// trifecta either way); without marks, the labels travel in `context.seen`.
pub fn request(i: usize, reads_marks: bool) -> Request {
    let context =
        if reads_marks { String::new() } else { r#","context":{"seen":["customer","pii","untrusted"]}"#.into() };
    parse(&format!(
        r#"{{"agent":"a","tool":"send_email","action":"send","session":"s-{i}","time":"2099-01-01T01:00:00Z","params":{{"to":"x@evil.net"}}{context}}}"#
    ))
}
