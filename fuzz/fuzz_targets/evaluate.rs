//! (bundle, request sequence) pairs: the input is `BUNDLE \0 REQUEST [\0 REQUEST …]`
//! (at most 64 requests; a single request is the old form; `fuzz/seed.py` writes each
//! vector's requests as one such sequence). Whenever the bundle loads, each valid
//! request is decided in order on one engine — so session marks (§10) carry from
//! request to request, over a table of two sessions that fills — and:
//!
//! * evaluation produces a decision (no panic), the decision line is canonical JSON;
//! * an allow comes from allow rules (or an allow default), without an approval;
//! * every listed rule has the decision's outcome; `state:full` denies alone, with one
//!   error and no marks in the record;
//! * the record's `marks` are sorted by bytes, each once; a request without a session
//!   has none; an allow or deny with a session holds the marks its rules just added;
//! * a request without a session lists `no session: marks not recorded` once for each
//!   listed rule with marks;
//! * the same requests on a fresh engine give byte-identical decisions (§5.2).
//!
//! A request without `time` gets 2026-01-05T10:00:00Z plus one second per place in
//! the input, so sequences move forward by default (a `time` written in the request is
//! kept, so back-dated requests reach the pruned-marks horizon too).
#![no_main]
use aegis_core::{Engine, EngineOptions, Key, Outcome, Request, RequestLimits};
use libfuzzer_sys::fuzz_target;

/// Requests decided per input, at most.
const MAX_REQUESTS: usize = 64;
/// 2026-01-05T10:00:00Z.
const BASE_MS: i64 = 1_767_607_200_000;

fn new_engine(policy: &str) -> Option<Engine> {
    let options = EngineOptions {
        max_sessions: 2,
        marks_ttl_ms: 60_000,
        approval_key: Some(Key::new("approval_key", b"fuzz-approval-key".to_vec()).ok()?),
        clock: Some(std::sync::Arc::new(|| BASE_MS)),
        ..EngineOptions::default()
    };
    Engine::from_yaml(policy, options).ok()
}

fuzz_target!(|data: &[u8]| {
    let Some(split) = data.iter().position(|&b| b == 0) else { return };
    let (Ok(policy), Ok(requests)) = (std::str::from_utf8(&data[..split]), std::str::from_utf8(&data[split + 1..]))
    else {
        return;
    };
    let Some(engine) = new_engine(policy) else { return };
    let mut reqs = Vec::new();
    for (i, line) in requests.split('\0').take(MAX_REQUESTS).enumerate() {
        let Ok(mut req) = Request::from_json(line, &RequestLimits::default()) else { continue };
        if req.time.is_none() {
            req.time = Some(BASE_MS + 1000 * i as i64); // reproducible
        }
        reqs.push(req);
    }
    if reqs.is_empty() {
        return;
    }
    let bundle = &engine.policy().bundle;
    let mut lines = Vec::with_capacity(reqs.len());
    for req in &reqs {
        let d = engine.evaluate(req).expect("no sinks: evaluation cannot fail");
        for id in &d.rules {
            if let Some(r) = bundle.rules.iter().find(|r| &r.id == id) {
                assert_eq!(r.outcome, d.outcome, "rule {id} listed under another outcome");
            }
        }
        if d.outcome == Outcome::Allow {
            assert!(d.approval.is_none());
            if d.rules == ["default"] {
                assert_eq!(bundle.default, Outcome::Allow);
            }
        }
        let marks = &d.audit.marks;
        assert!(
            marks.windows(2).all(|w| w[0].as_bytes() < w[1].as_bytes()),
            "record marks sorted, once each: {marks:?}"
        );
        if d.rules.iter().any(|r| r == "state:full") {
            assert_eq!((d.outcome, d.rules.len(), d.errors.len()), (Outcome::Deny, 1, 1), "state:full denies alone");
            assert_eq!(d.errors[0].rule, "state:full");
            assert!(marks.is_empty(), "state:full adds and records no marks");
        }
        let marking: Vec<_> = d
            .rules
            .iter()
            .filter_map(|id| bundle.rules.iter().find(|r| &r.id == id))
            .filter(|r| !r.marks.is_empty())
            .collect();
        let not_recorded =
            d.errors.iter().filter(|e| e.path == "session" && e.message == "no session: marks not recorded");
        match &req.session {
            None => {
                assert!(marks.is_empty(), "no session, no marks in the record");
                assert_eq!(not_recorded.count(), marking.len(), "one `not recorded` error per listed rule with marks");
            }
            Some(_) => {
                assert_eq!(not_recorded.count(), 0);
                if d.outcome != Outcome::RequireApproval {
                    for m in marking.iter().flat_map(|r| &r.marks) {
                        assert!(
                            marks.iter().any(|l| **l == *m.label),
                            "mark {} just added is in the record {marks:?}",
                            m.label
                        );
                    }
                }
            }
        }
        let line = d.to_json();
        let v = aegis_core::json::parse(&line, 64).expect("decision line is JSON");
        assert_eq!(v.to_canonical_json(), line, "decision line is canonical");
        lines.push(line);
    }
    // Replay on a fresh engine: the same decisions, byte for byte (marks included).
    let again = new_engine(policy).expect("the bundle loaded once");
    for (req, line) in reqs.iter().zip(&lines) {
        assert_eq!(&again.evaluate(req).expect("no sinks").to_json(), line, "replay differs");
    }
});
