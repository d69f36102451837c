//! `aegis state` against a real `redis-server` (SPEC §11) and an engine of the fleet:
//! kill, revive, list, marks and reset --accept as a member sees them; exit 2 when the
//! store cannot be reached or refuses the credentials.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing, missing_docs)]

use aegis_core::{Engine, EngineOptions, Outcome, Request, RequestLimits};
use aegis_fleet::test_server::TestRedis;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

const POLICY: &str = "aegis: 1
default: deny
rules:
  - id: pay
    match: {tool: pay}
    outcome: allow
  - id: crm
    match: {tool: crm}
    outcome: allow
    marks: [pii]
limits:
  - id: budget
    match: {tool: pay}
    window: 1d
    max_calls: 100
";

fn state(args: &[&str], url: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_aegis"))
        .arg("state")
        .args(args)
        .args(["--state", url, "--prefix", "cli:"])
        .env_remove("AEGIS_STATE")
        .output()
        .unwrap()
}

fn out(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

fn decide(e: &Engine, tool: &str) -> (Outcome, Vec<String>) {
    let now = aegis_core::time::format_utc(aegis_core::time::now_millis());
    let text = format!(r#"{{"agent":"a","tool":"{tool}","session":"s1","time":"{now}"}}"#);
    let d = e.evaluate(&Request::from_json(&text, &RequestLimits::default()).unwrap()).unwrap();
    (d.outcome, d.rules)
}

/// How long until `ok` holds (polled every millisecond), failing after `within`.
fn until(within: Duration, what: &str, mut ok: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !ok() {
        assert!(start.elapsed() < within, "{what}: not within {within:?}");
        std::thread::sleep(Duration::from_millis(1));
    }
    start.elapsed()
}

#[test]
fn operators_kill_list_revive_and_accept_a_reset_for_the_fleet() {
    let mut redis = TestRedis::start().unwrap();
    let url = redis.url();
    let member = || {
        let st = aegis_fleet::connect(&redis.config("cli:")).unwrap();
        Engine::from_yaml(POLICY, EngineOptions { state: Some(st), ..EngineOptions::default() }).unwrap()
    };
    let e = member();
    // every allowed `pay` is counted by the fleet: the list must show exactly these
    let allowed = std::cell::Cell::new(0u64);
    let pay = || {
        let d = decide(&e, "pay");
        allowed.set(allowed.get() + u64::from(d.0 == Outcome::Allow));
        d
    };
    until(Duration::from_secs(2), "the member allows", || pay().0 == Outcome::Allow);
    assert_eq!(decide(&e, "crm").0, Outcome::Allow);

    // kill: the member sees it within 1 s of the command's start
    let started = Instant::now();
    let o = state(&["kill", "tool", "pay", "--reason", "incident 42"], &url);
    assert!(o.status.success(), "{}", out(&o));
    assert_eq!(out(&o), "killed tool pay for the fleet\n");
    until(Duration::from_secs(1), "the kill reaches the member", || pay().1 == ["kill:tool:pay"]);
    let took = started.elapsed();
    assert!(took < Duration::from_secs(1), "the kill took {took:?}");
    eprintln!("aegis state kill (process start to the member's denial): {took:?}");

    // list: kills, then the limits' live counters
    let o = state(&["list"], &url);
    let listed = out(&o);
    assert!(o.status.success(), "{listed}");
    assert!(listed.starts_with("kills (1):\n  tool pay — incident 42\nlimits (1 live counters):\n"), "{listed}");
    let calls = format!("  calls {}  sum 0", allowed.get());
    assert!(listed.contains("  budget:86400000:") && listed.contains(&calls), "{listed}");

    // marks of a session
    let o = state(&["marks", "s1"], &url);
    assert!(o.status.success() && out(&o).starts_with("pii  until "), "{}", out(&o));

    // revive: lifted within 1 s; a second revive says so
    let started = Instant::now();
    let o = state(&["revive", "tool", "pay"], &url);
    assert_eq!(out(&o), "tool pay: revived\n");
    until(Duration::from_secs(1), "the revive reaches the member", || decide(&e, "pay").0 == Outcome::Allow);
    let took = started.elapsed();
    assert!(took < Duration::from_secs(1), "the revive took {took:?}");
    eprintln!("aegis state revive (process start to the member's allow): {took:?}");
    assert_eq!(out(&state(&["revive", "tool", "pay"], &url)), "tool pay: was not killed\n");

    // the engines' own argument checks, with their messages (exit 2)
    let o = state(&["kill", "planet", "x"], &url);
    assert_eq!(
        (o.status.code(), out(&o).trim_end()),
        (Some(2), "aegis: unknown kill scope `planet` (agent, tool, session, all)")
    );
    let o = state(&["kill", "all", "x"], &url);
    assert_eq!((o.status.code(), out(&o).trim_end()), (Some(2), "aegis: scope `all` takes the id `*`, not `x`"));
    let o = state(&["reset"], &url);
    assert_eq!(o.status.code(), Some(2), "{}", out(&o));

    // the store restarted empty: the member denies limited calls with state:reset
    // until an operator accepts the store as it is
    let port = redis.port();
    redis.stop();
    let _again = TestRedis::on(port).unwrap();
    until(Duration::from_secs(5), "the member sees the reset", || decide(&e, "pay").1 == ["state:reset"]);
    let o = state(&["reset", "--accept"], &url);
    assert!(o.status.success() && out(&o).starts_with("accepted the store as it is: new epoch "), "{}", out(&o));
    until(Duration::from_secs(2), "the member adopts the accepted epoch", || decide(&e, "pay").0 == Outcome::Allow);
}

#[test]
fn unreachable_or_refusing_stores_exit_2_and_the_url_comes_from_aegis_state() {
    let redis = TestRedis::start().unwrap();
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let o = state(&["list"], &format!("redis://:pw@127.0.0.1:{free}/0"));
    assert_eq!(o.status.code(), Some(2), "{}", out(&o));
    assert!(out(&o).contains("the fleet's store cannot be reached"), "{}", out(&o));

    let wrong = format!("redis://:not-the-password@127.0.0.1:{}/0", redis.port());
    let o = state(&["list"], &wrong);
    assert_eq!(o.status.code(), Some(2), "{}", out(&o));
    assert!(out(&o).contains("refused the credentials") && !out(&o).contains("not-the-password"), "{}", out(&o));

    let o = state(&["list"], "http://example.com");
    assert_eq!(o.status.code(), Some(2), "{}", out(&o));
    assert!(out(&o).starts_with("aegis: --state must be \"memory\" or a Redis URL"), "{}", out(&o));

    // AEGIS_STATE keeps the password out of the process list
    let o = Command::new(env!("CARGO_BIN_EXE_aegis"))
        .args(["state", "list", "--prefix", "cli-env:"])
        .env("AEGIS_STATE", redis.url())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", out(&o));
    assert_eq!(out(&o), "kills (0):\nlimits (0 live counters):\n");
    let o =
        Command::new(env!("CARGO_BIN_EXE_aegis")).args(["state", "list"]).env_remove("AEGIS_STATE").output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(out(&o).starts_with("aegis: usage: give --state URL (or AEGIS_STATE)"), "{}", out(&o));
}
