//! (bundle, request) pairs: the input is `BUNDLE \0 REQUEST`. Whenever both are valid,
//! evaluation must produce a decision (no panic), an allow must come from allow rules
//! (or an allow default) with no deny/approval among the applying rules, and the
//! decision line must be canonical JSON.
#![no_main]
use aegis_core::{Engine, EngineOptions, Outcome, Request, RequestLimits};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some(split) = data.iter().position(|&b| b == 0) else { return };
    let (Ok(policy), Ok(request)) = (std::str::from_utf8(&data[..split]), std::str::from_utf8(&data[split + 1..]))
    else {
        return;
    };
    let Ok(engine) = Engine::from_yaml(policy, EngineOptions::default()) else { return };
    let Ok(mut req) = Request::from_json(request, &RequestLimits::default()) else { return };
    if req.time.is_none() {
        req.time = Some(1_767_607_200_000); // reproducible
    }
    let d = engine.evaluate(&req).expect("no sinks: evaluation cannot fail");
    let bundle = &engine.policy().bundle;
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
    let line = d.to_json();
    let v = aegis_core::json::parse(&line, 64).expect("decision line is JSON");
    assert_eq!(v.to_canonical_json(), line, "decision line is canonical");
});
