//! JSON text → parse → canonical JSON → parse: equal values, and the canonical form
//! is a fixed point (RFC 8785).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(v) = aegis_core::json::parse(text, 64) else { return };
    let c = v.to_canonical_json();
    let back = aegis_core::json::parse(&c, 64).unwrap_or_else(|e| panic!("canonical JSON does not parse: {e}: {c}"));
    assert!(back == v, "round trip changed the value: {c}");
    assert_eq!(back.to_canonical_json(), c, "canonical JSON is not a fixed point");
});
