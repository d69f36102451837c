//! Arbitrary bytes as a one-file policy bundle: loading must return Ok or load
//! errors (each with a location and a message), never panic, hang or blow up memory.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    match aegis_core::policy::load_yaml(text) {
        Ok(bundle) => {
            // A loaded bundle compiles and has a 64-hex policy hash.
            assert_eq!(bundle.hash.len(), 64);
            let _ = aegis_core::internals::Compiled::new(bundle);
        }
        Err(errs) => {
            assert!(!errs.0.is_empty(), "a failed load reports at least one error");
            for e in &errs.0 {
                assert!(e.loc.line >= 1 && e.loc.column >= 1, "1-based location: {e}");
                assert!(!e.message.is_empty());
            }
        }
    }
});
