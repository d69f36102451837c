//! Differential fuzzing: the fuzzer's bytes drive every choice of the oracle's
//! generator (`aegis-core/tests/oracle_support/naive.rs`: a random bundle and 8
//! requests); the compiled engine must give exactly the naive evaluator's outcome,
//! rules, errors, reason and approvers.
#![no_main]
use libfuzzer_sys::fuzz_target;

#[path = "../../aegis-core/tests/oracle_support/naive.rs"]
mod naive;

fuzz_target!(|data: &[u8]| {
    if let Err(e) = naive::check(naive::Rng::from_bytes(data), "fuzz input") {
        panic!("engine and oracle disagree: {e}");
    }
});
