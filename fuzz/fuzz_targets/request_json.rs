//! Arbitrary bytes as request JSON: a request is either valid (and then its own
//! `to_value` round-trips to an equal request) or a request error naming a field.
#![no_main]
use aegis_core::{Request, RequestLimits};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let limits = RequestLimits::default();
    if let Ok(r) = Request::from_json(text, &limits) {
        assert!(!r.agent.is_empty() && r.agent.len() <= 256);
        assert!(!r.tool.is_empty() && r.tool.len() <= 256);
        // Re-parsing the request's own canonical form gives the same request.
        let again = Request::from_json(&r.to_value().to_canonical_json(), &limits)
            .unwrap_or_else(|e| panic!("a valid request's own JSON is invalid: {e}"));
        assert_eq!(again.to_value().to_canonical_json(), r.to_value().to_canonical_json());
    }
});
