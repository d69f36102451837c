//! Fleet state against a real `redis-server` (SPEC §11): started on a free loopback
//! port with a password, stopped after. Needs `redis-server` on PATH (`make redis`
//! installs Debian's package).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing, missing_docs)]

use aegis_core::state::SharedState;
use aegis_core::{Engine, EngineOptions, KillScope, Outcome, Request, RequestLimits, StateConfig};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aegis_fleet::test_server::TestRedis as Redis;

const POLICY: &str = "aegis: 1
default: deny
rules:
  - id: pay
    match: {tool: pay}
    outcome: allow
  - id: big
    match: {tool: big}
    outcome: require_approval
    approvers: [boss]
  - id: read
    match: {tool: crm}
    outcome: allow
    marks: [pii]
  - id: mail-after-pii
    match: {tool: mail}
    when: {session.marks: {contains: pii}}
    outcome: deny
  - id: mail
    match: {tool: mail}
    outcome: allow
  - id: free
    match: {tool: free}
    outcome: allow
limits:
  - id: budget
    match: {tool: pay}
    window: 1d
    max_calls: 1000
    sum: params.amount
    max_sum: 1.0
";

fn engine(cfg: &StateConfig) -> Engine {
    let st = aegis_fleet::connect(cfg).unwrap();
    let opts = EngineOptions {
        state: Some(st),
        approval_key: aegis_core::Key::new("k", b"approval-key".to_vec()).ok(),
        ..EngineOptions::default()
    };
    Engine::from_yaml(POLICY, opts).unwrap()
}

fn req(tool: &str, extra: &str) -> Request {
    let now = aegis_core::time::format_utc(aegis_core::time::now_millis());
    let text = format!(r#"{{"agent":"a","tool":"{tool}","time":"{now}"{extra}}}"#);
    Request::from_json(&text, &RequestLimits::default()).unwrap()
}

fn pay(e: &Engine, amount: &str) -> (Outcome, Vec<String>) {
    let d = e.evaluate(&req("pay", &format!(r#","params":{{"amount":{amount}}}"#))).unwrap();
    (d.outcome, d.rules)
}

#[test]
fn two_members_share_one_budget_with_binary64_sums() {
    let r = Redis::start().unwrap();
    let cfg = r.config("t1:");
    let (a, b) = (engine(&cfg), engine(&cfg));
    // 0.1 ten times is 0.9999999999999999 in binary64: ten calls fit in max_sum 1.0,
    // the eleventh (0.1 more) does not — whichever member makes it.
    for i in 0..10 {
        let e = if i % 2 == 0 { &a } else { &b };
        assert_eq!(pay(e, "0.1").0, Outcome::Allow, "call {i}");
    }
    assert_eq!(pay(&a, "0.1"), (Outcome::Deny, vec!["limit:budget".to_string()]));
    assert_eq!(pay(&b, "0.1"), (Outcome::Deny, vec!["limit:budget".to_string()]));
    let d = b.evaluate(&req("pay", r#","params":{"amount":0}"#)).unwrap();
    assert_eq!(d.outcome, Outcome::Allow);
    let lim = &d.audit.limits[0];
    assert_eq!((lim.calls, lim.sum), (11, Some(0.1f64 * 0.0 + (0..10).fold(0.0, |s, _| s + 0.1))));
}

#[test]
fn racing_threads_never_pass_the_budget() {
    let r = Redis::start().unwrap();
    let cfg = r.config("t2:");
    let engines: Vec<Arc<Engine>> = (0..2).map(|_| Arc::new(engine(&cfg))).collect();
    let handles: Vec<_> = (0..4)
        .map(|i| {
            let e = engines[i % 2].clone();
            std::thread::spawn(move || (0..40).filter(|_| pay(&e, "0.05").0 == Outcome::Allow).count())
        })
        .collect();
    let allowed: usize = handles.into_iter().map(|h| h.join().unwrap()).sum();
    // 0.05 × 20 = 1.0000000000000002 in binary64 order of addition: 19 fit, the 20th not.
    let mut s = 0.0f64;
    let mut fit = 0;
    while s + 0.05 <= 1.0 {
        s += 0.05;
        fit += 1;
    }
    assert_eq!(allowed, fit);
}

#[test]
fn kills_reach_every_member_within_a_second_and_grants_are_single_use() {
    let r = Redis::start().unwrap();
    let cfg = r.config("t3:");
    let (a, b) = (engine(&cfg), engine(&cfg));
    assert_eq!(b.evaluate(&req("free", "")).unwrap().outcome, Outcome::Allow);
    let t0 = Instant::now();
    a.kill(KillScope::Tool, "free", "incident 7").unwrap();
    assert_eq!(a.evaluate(&req("free", "")).unwrap().rules, vec!["kill:tool:free"], "at once in its own engine");
    while b.evaluate(&req("free", "")).unwrap().outcome == Outcome::Allow {
        assert!(t0.elapsed() < Duration::from_secs(1), "the kill did not reach the other member within 1 s");
        std::thread::sleep(Duration::from_millis(5));
    }
    let d = b.evaluate(&req("free", "")).unwrap();
    assert_eq!((d.rules[0].as_str(), d.reason.as_str()), ("kill:tool:free", "incident 7"));
    let admin = aegis_fleet::Admin::connect(&cfg).unwrap();
    assert_eq!(admin.kills().unwrap().len(), 1);
    let t0 = Instant::now();
    assert!(admin.revive(KillScope::Tool, "free").unwrap());
    while a.evaluate(&req("free", "")).unwrap().outcome != Outcome::Allow {
        assert!(t0.elapsed() < Duration::from_secs(1), "the revive did not reach the member within 1 s");
        std::thread::sleep(Duration::from_millis(5));
    }
    // A grant used by one member is refused by the other.
    let first = a.evaluate(&req("big", "")).unwrap();
    let id = first.approval.unwrap().id;
    let token = a.grant(&id, "boss", 600).unwrap();
    let time = first.audit.time.clone();
    let granted = |e: &Engine| {
        let text = format!(r#"{{"agent":"a","tool":"big","time":"{time}","approval":"{token}"}}"#);
        e.evaluate(&Request::from_json(&text, &RequestLimits::default()).unwrap()).unwrap()
    };
    let d = a
        .evaluate(&{
            let text = format!(r#"{{"agent":"a","tool":"big","time":"{time}","approval":"{token}"}}"#);
            Request::from_json(&text, &RequestLimits::default()).unwrap()
        })
        .unwrap();
    assert_eq!(d.outcome, Outcome::Allow);
    assert_eq!(d.audit.approved_by.as_deref(), Some("boss"));
    let d = granted(&b);
    assert_eq!(d.outcome, Outcome::RequireApproval);
    assert_eq!(d.errors[0].message, "grant already used");
}

#[test]
fn marks_are_the_fleets() {
    let r = Redis::start().unwrap();
    let cfg = r.config("t4:");
    let (a, b) = (engine(&cfg), engine(&cfg));
    assert_eq!(b.evaluate(&req("mail", r#","session":"s1""#)).unwrap().outcome, Outcome::Allow);
    let d = a.evaluate(&req("crm", r#","session":"s1""#)).unwrap();
    assert_eq!(d.audit.marks, vec!["pii"]);
    let d = b.evaluate(&req("mail", r#","session":"s1""#)).unwrap();
    assert_eq!(
        (d.outcome, d.rules.clone(), d.audit.marks.clone()),
        (Outcome::Deny, vec!["mail-after-pii".to_string()], vec!["pii".to_string()])
    );
    assert_eq!(b.marks("s1").unwrap(), vec!["pii"]);
    assert!(a.clear_marks("s1").unwrap());
    assert_eq!(b.evaluate(&req("mail", r#","session":"s1""#)).unwrap().outcome, Outcome::Allow);
}

#[test]
fn wrong_password_fails_construction_and_an_unreachable_store_does_not() {
    let r = Redis::start().unwrap();
    let bad = StateConfig::new(format!("redis://:nope@127.0.0.1:{}/0", r.port()));
    let e = aegis_fleet::connect(&bad).unwrap_err();
    assert!(e.0.contains("refused the credentials") && !e.0.contains("nope"), "{e}");
    let user = StateConfig::new(format!("redis://ghost:pw@127.0.0.1:{}/0", r.port()));
    assert!(aegis_fleet::connect(&user).unwrap_err().0.contains("refused the credentials"));
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let away = StateConfig { timeout_ms: 50, ..StateConfig::new(format!("redis://:pw@127.0.0.1:{port}/0")) };
    let st = aegis_fleet::connect(&away).unwrap();
    assert!(st.stale().unwrap().contains("no full read"), "{:?}", st.stale());
    let e = Engine::from_yaml(POLICY, EngineOptions { state: Some(st), ..EngineOptions::default() }).unwrap();
    let d = e.evaluate(&req("free", "")).unwrap();
    assert_eq!((d.outcome, d.rules.clone()), (Outcome::Deny, vec!["state:unavailable".to_string()]));
    assert_eq!(d.errors[0].path, "state");
}

#[test]
fn faults_stopped_frozen_and_restarted_empty() {
    let mut r = Redis::start().unwrap();
    let cfg = StateConfig { timeout_ms: 100, stale_ms: 800, ..r.config("t5:") };
    let a = engine(&cfg);
    assert_eq!(pay(&a, "0.5").0, Outcome::Allow);
    // Frozen: no call waits past the timeout.
    r.signal("-STOP").unwrap();
    let t0 = Instant::now();
    assert_eq!(pay(&a, "0.1"), (Outcome::Deny, vec!["state:unavailable".to_string()]));
    assert!(t0.elapsed() < Duration::from_millis(400), "waited {:?}", t0.elapsed());
    // Also once no idle connection is left (a new one's handshake is bounded too, not
    // one timeout per reply), and for the control calls.
    for _ in 0..3 {
        let t0 = Instant::now();
        assert_eq!(pay(&a, "0.1").1, vec!["state:unavailable".to_string()]);
        assert!(t0.elapsed() < Duration::from_millis(180), "a call waited {:?} (timeout 100 ms)", t0.elapsed());
    }
    let t0 = Instant::now();
    assert!(a.marks("s").is_err());
    assert!(t0.elapsed() < Duration::from_millis(180), "marks waited {:?} (timeout 100 ms)", t0.elapsed());
    // A call that needs no shared state goes on while the mirror is fresh, then not.
    let t0 = Instant::now();
    while a.evaluate(&req("free", "")).unwrap().outcome == Outcome::Allow {
        assert!(t0.elapsed() < Duration::from_secs(3), "the mirror never went stale");
        std::thread::sleep(Duration::from_millis(20));
    }
    let d = a.evaluate(&req("free", "")).unwrap();
    assert_eq!(d.rules, vec!["state:unavailable"]);
    assert!(d.errors[0].message.contains("last confirmed"), "{}", d.errors[0].message);
    r.signal("-CONT").unwrap();
    // Kill while the store is away: in force here, written when it is back.
    let port = r.port();
    r.stop();
    assert!(a.kill(KillScope::Agent, "rogue", "loose").is_err());
    assert_eq!(a.kills().len(), 1);
    // Restarted empty: the member reconnects by itself, writes back its kill and
    // denies limited calls with state:reset until an operator accepts.
    let _r2 = Redis::on(port).unwrap();
    let t0 = Instant::now();
    loop {
        let d = a.evaluate(&req("free", "")).unwrap();
        if d.outcome == Outcome::Allow {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(5), "no recovery: {:?}", d.errors);
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(pay(&a, "0.1").1, vec!["state:reset"]);
    let admin = aegis_fleet::Admin::connect(&cfg).unwrap();
    assert_eq!(admin.kills().unwrap().iter().map(|k| k.id.as_str()).collect::<Vec<_>>(), vec!["rogue"]);
    admin.reset_accept().unwrap();
    let t0 = Instant::now();
    while pay(&a, "0.1").0 != Outcome::Allow {
        assert!(t0.elapsed() < Duration::from_secs(2), "the accepted epoch was not adopted");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn skewed_requests_are_denied() {
    let r = Redis::start().unwrap();
    let cfg = StateConfig { max_skew_ms: 1000, ..r.config("t6:") };
    let a = engine(&cfg);
    let d = a
        .evaluate(
            &Request::from_json(
                r#"{"agent":"a","tool":"pay","params":{"amount":0.1},"time":"2020-01-01T00:00:00Z"}"#,
                &RequestLimits::default(),
            )
            .unwrap(),
        )
        .unwrap();
    assert_eq!(d.rules, vec!["state:skew"]);
    assert!(d.errors[0].message.contains("state_max_skew_ms is 1000"), "{}", d.errors[0].message);
    // A call that needs no shared state is not checked.
    let d = a
        .evaluate(
            &Request::from_json(
                r#"{"agent":"a","tool":"free","time":"2020-01-01T00:00:00Z"}"#,
                &RequestLimits::default(),
            )
            .unwrap(),
        )
        .unwrap();
    assert_eq!(d.outcome, Outcome::Allow);
}
