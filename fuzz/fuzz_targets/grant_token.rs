//! Grant tokens: an engine with an approval key decides a `require_approval` request
//! carrying an attacker-chosen `approval` string. First byte even: the rest of the
//! input is the token. Odd: a genuine token for this very request is mutated by
//! XOR-ing the rest of the input into it. The decision may be `allow` only for the
//! genuine token, and only once.
#![no_main]
use aegis_core::{Engine, EngineOptions, Outcome, Request, RequestLimits};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

const POLICY: &str = "aegis: 1\nrules:\n  - id: big\n    match: {tool: payments}\n    when: {params.amount: {gt: 100}}\n    outcome: require_approval\n    approvers: [boss]\n  - id: ok\n    match: {tool: payments}\n    outcome: allow\n";
const REQ: &str = r#"{"agent":"a","tool":"payments","params":{"amount":500},"time":"2026-01-05T10:00:00Z"}"#;
const KEY: &[u8] = b"approval-key";
const NOW: i64 = 1_767_607_200_000;

fn engine() -> Engine {
    Engine::from_yaml(
        POLICY,
        EngineOptions { approval_key: aegis_core::Key::new("approval_key", KEY).ok(), clock: Some(std::sync::Arc::new(|| NOW)), ..Default::default() },
    )
    .expect("policy loads")
}

fn genuine() -> &'static String {
    static T: OnceLock<String> = OnceLock::new();
    T.get_or_init(|| {
        let e = engine();
        let req = Request::from_json(REQ, &RequestLimits::default()).expect("request");
        let d = e.evaluate(&req).expect("decision");
        let id = d.approval.expect("needs approval").id;
        e.grant(&id, "boss", 3600).expect("grant")
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let token: String = if mode % 2 == 0 {
        match std::str::from_utf8(rest) {
            Ok(s) => s.to_owned(),
            Err(_) => return,
        }
    } else {
        let mut b = genuine().clone().into_bytes();
        let n = b.len().max(1);
        for (i, x) in rest.iter().enumerate() {
            if let Some(c) = b.get_mut(i % n) {
                *c ^= x;
            }
        }
        match String::from_utf8(b) {
            Ok(s) => s,
            Err(_) => return,
        }
    };
    let mut req = Request::from_json(REQ, &RequestLimits::default()).expect("request");
    req.approval = Some(token.clone());
    let e = engine();
    let d = e.evaluate(&req).expect("decision");
    if d.outcome == Outcome::Allow {
        assert_eq!(&token, genuine(), "a token other than the genuine one was accepted");
        // Single use.
        let d2 = e.evaluate(&req).expect("decision");
        assert_ne!(d2.outcome, Outcome::Allow, "a grant was accepted twice");
    } else {
        assert_eq!(d.outcome, Outcome::RequireApproval);
        assert_eq!(d.errors.len(), 1, "a rejected grant lists one error: {:?}", d.errors);
        assert_eq!(d.errors[0].path, "approval");
    }
});
