//! Differential fuzzing: the fuzzer's bytes drive every choice of the oracle's
//! generator (`aegis-core/tests/oracle_support/naive.rs`: a random bundle, with
//! session marks and `session.marks` tests, and a sequence of requests over a few
//! sessions, some re-sent with grants); the compiled engine must give exactly the naive
//! model's outcome, rules, errors, reason, approvers and record (`marks` included).
//! An input whose first byte is odd runs with a table of 1 to 3 sessions
//! (`state:full`, unknown marks); otherwise the table never fills.
#![no_main]
use libfuzzer_sys::fuzz_target;

#[path = "../../aegis-core/tests/oracle_support/naive.rs"]
mod naive;

fuzz_target!(|data: &[u8]| {
    let cfg = if data.first().is_some_and(|b| b & 1 == 1) { &naive::SMALL_TABLE } else { &naive::NORMAL };
    if let Err(e) = naive::check_with(naive::Rng::from_bytes(data), "fuzz input", cfg) {
        panic!("engine and oracle disagree: {e}");
    }
});
