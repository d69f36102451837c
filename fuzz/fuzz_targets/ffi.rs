//! The C ABI under ASan with arbitrary bytes: a bundle (maybe invalid UTF-8) through
//! `aegis_engine_from_yaml`, then requests (maybe invalid UTF-8, truncated, huge)
//! through `aegis_evaluate_json` and `aegis_evaluate`, with every returned string
//! freed. Any status is fine; a crash, a leak (LeakSanitizer) or a status/out
//! mismatch is a finding.
#![no_main]
use aegis::*;
use libfuzzer_sys::fuzz_target;
use std::ffi::c_char;

const POLICY: &[u8] = b"aegis: 1\ndefault: deny\nrules:\n  - id: r\n    match: {tool: t}\n    when: {params.n: {lte: 5}}\n    outcome: allow\n";

fuzz_target!(|data: &[u8]| {
    // First byte picks the mode; the rest is split into a bundle and requests.
    let Some((&mode, rest)) = data.split_first() else { return };
    let (bundle, requests): (&[u8], &[u8]) = if mode & 1 == 0 {
        (POLICY, rest)
    } else {
        let cut = rest.iter().position(|&b| b == 0xff).unwrap_or(rest.len());
        (&rest[..cut], rest.get(cut + 1..).unwrap_or(&[]))
    };
    let mut engine: *mut aegis_engine = std::ptr::null_mut();
    let mut err: *mut c_char = std::ptr::null_mut();
    // SAFETY: pointers to live buffers and out-parameters; strings freed below.
    let status = unsafe { aegis_engine_from_yaml(bundle.as_ptr().cast(), bundle.len(), &mut engine, &mut err) };
    // SAFETY: `err` came from the library (or is NULL).
    unsafe { aegis_string_free(err) };
    if status != aegis_status::AEGIS_OK {
        assert!(engine.is_null(), "no engine on failure");
        return;
    }
    for req in requests.split(|&b| b == b'\n').take(16) {
        let mut out: *mut c_char = std::ptr::null_mut();
        let mut err: *mut c_char = std::ptr::null_mut();
        // SAFETY: as above.
        let s = unsafe { aegis_evaluate_json(engine, req.as_ptr().cast(), req.len(), &mut out, &mut err) };
        assert_eq!(s == aegis_status::AEGIS_OK, !out.is_null(), "a decision exactly on success");
        // SAFETY: strings from the library.
        unsafe {
            aegis_string_free(out);
            aegis_string_free(err);
        }
        let mut outcome = aegis_outcome::AEGIS_OUTCOME_DENY;
        let mut err: *mut c_char = std::ptr::null_mut();
        // SAFETY: as above.
        let s2 = unsafe { aegis_evaluate(engine, req.as_ptr().cast(), req.len(), &mut outcome, &mut err) };
        assert_eq!(s, s2, "both entry points agree on validity");
        // SAFETY: from the library.
        unsafe { aegis_string_free(err) };
    }
    // SAFETY: the engine came from aegis_engine_from_yaml and is freed once.
    unsafe { aegis_engine_free(engine) };
});
