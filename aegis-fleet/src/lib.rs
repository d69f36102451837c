//! # aegis-fleet
//!
//! Fleet state for Aegis engines (SPEC §11): engines given the same Redis (or Valkey)
//! and prefix share kill switches, limit counters, used grants and session marks.
//! [`connect`] gives the [`SharedState`] an engine is built with
//! ([`EngineOptions::state`](aegis_core::EngineOptions)); [`Admin`] is what
//! `aegis state` uses.
//!
//! * Kill switches are read from a local mirror, fed by a subscription and a full read
//!   every `state_stale_ms`/4 on a background thread: no round trip per call. A mirror
//!   not confirmed within `state_stale_ms` denies every call (`state:unavailable`).
//! * A call that needs shared state makes one atomic step (a Lua script) — two round
//!   trips when its rules read the session's marks first. Every operation is bounded
//!   by `state_timeout_ms` and fails closed.
//! * The client is redis-rs's synchronous one: no async runtime is forced on the host.

mod commands;
mod keys;
mod mirror;
mod pool;
mod scripts;

pub mod admin;
pub mod test_server;

pub use admin::Admin;
pub use keys::Keys;

use aegis_core::config::redact_url;
use aegis_core::state::{Counter, Kill, KillSet, SharedState, StateFailure, Step, StepOutcome};
use aegis_core::time::Millis;
use aegis_core::{KillScope, StateConfig};
use mirror::Mirror;
use pool::Pool;
use std::sync::Arc;
use std::time::Duration;

/// How long after it can no longer be reached (window end, mark or grant expiry) a key
/// is kept, on top of `state_max_skew_ms`.
pub const SLACK_MS: i64 = 60_000;

/// Why [`connect`] refused the settings: a malformed URL, or a server that refused
/// the credentials (both `config_invalid`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConnectError(pub String);

/// A fleet member's view of the store.
pub struct FleetState {
    cfg: StateConfig,
    keys: Keys,
    pool: Arc<Pool>,
    mirror: Arc<Mirror>,
    step_script: commands::Script,
    read_marks_script: commands::Script,
    clear_marks_script: commands::Script,
}

impl std::fmt::Debug for FleetState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FleetState").field("url", &redact_url(&self.cfg.url)).field("prefix", &self.cfg.prefix).finish()
    }
}

/// Opens the fleet state: parses the URL, connects once (a refused authentication or
/// a malformed URL is an error; an unreachable server is not — the engine then denies
/// until it is reachable), makes the first full read and starts the mirror thread.
pub fn connect(cfg: &StateConfig) -> Result<Arc<FleetState>, ConnectError> {
    let pool = Arc::new(Pool::open(cfg)?);
    match pool.probe() {
        Ok(()) => {}
        Err(e) if pool::is_auth_error(&e) => {
            return Err(ConnectError(format!(
                "`state`: {} refused the credentials: {}",
                redact_url(&cfg.url),
                pool::describe(&e)
            )))
        }
        Err(_) => {}
    }
    let keys = Keys::new(&cfg.prefix);
    let mirror = Mirror::start(cfg, keys.clone(), pool.clone());
    Ok(Arc::new(FleetState {
        cfg: cfg.clone(),
        keys,
        pool,
        mirror,
        step_script: commands::Script::new(scripts::STEP),
        read_marks_script: commands::Script::new(scripts::READ_MARKS),
        clear_marks_script: commands::Script::new(scripts::CLEAR_MARKS),
    }))
}

impl Drop for FleetState {
    fn drop(&mut self) {
        self.mirror.stop();
    }
}

/// A reply that does not have the shape the script returns: the store is not
/// behaving as Redis, so the call fails closed.
fn bad_reply(what: &str) -> StateFailure {
    StateFailure::unavailable(format!("unexpected reply from the store ({what})"))
}

fn text(v: &redis::Value) -> Option<String> {
    match v {
        redis::Value::BulkString(b) => String::from_utf8(b.clone()).ok(),
        redis::Value::SimpleString(s) => Some(s.clone()),
        redis::Value::Int(i) => Some(i.to_string()),
        _ => None,
    }
}

fn array(v: &redis::Value) -> Option<&[redis::Value]> {
    match v {
        redis::Value::Array(a) | redis::Value::Set(a) => Some(a),
        _ => None,
    }
}

/// `{label, expiry, …}` as pairs.
fn marks_of(v: &redis::Value) -> Option<Vec<(String, Millis)>> {
    let a = array(v)?;
    let mut out = Vec::with_capacity(a.len() / 2);
    for pair in a.chunks(2) {
        let [l, e] = pair else { return None };
        out.push((text(l)?, text(e)?.parse().ok()?));
    }
    Some(out)
}

/// `{calls, sum, …}` as counters.
fn counters_of(v: &redis::Value, n: usize) -> Option<Vec<Counter>> {
    let a = array(v)?;
    if a.len() != 2 * n {
        return None;
    }
    a.chunks(2)
        .map(|p| match p {
            [c, s] => Some(Counter { calls: text(c)?.parse().ok()?, sum: text(s)?.parse().ok()? }),
            _ => None,
        })
        .collect()
}

/// A number as a script argument: Rust's shortest text that reads back as the same
/// double (Lua's `tonumber` is `strtod`).
fn num(x: f64) -> String {
    format!("{x:?}")
}

impl FleetState {
    /// The epoch calls are checked against, or why there is none to use.
    fn epoch(&self) -> Result<String, StateFailure> {
        self.mirror.epoch()
    }

    fn failed(&self, e: &redis::RedisError) -> StateFailure {
        self.mirror.poke();
        StateFailure::unavailable(format!("the fleet's store {}: {}", redact_url(&self.cfg.url), pool::describe(e)))
    }

    fn reset(&self) -> StateFailure {
        self.mirror.poke();
        StateFailure::reset()
    }

    fn slack(&self) -> i64 {
        (self.cfg.max_skew_ms as i64).saturating_add(SLACK_MS)
    }
}

impl SharedState for FleetState {
    fn kills(&self) -> Arc<KillSet> {
        self.mirror.kills()
    }

    fn stale(&self) -> Option<String> {
        self.mirror.stale()
    }

    fn check(&self, time_ms: Millis) -> Result<(), StateFailure> {
        self.mirror.check(time_ms)
    }

    fn read_marks(&self, session: &str) -> Result<Vec<(String, Millis)>, StateFailure> {
        let epoch = self.epoch()?;
        let keys = [self.keys.epoch(), self.keys.marks(session)];
        let reply = self
            .pool
            .with(|c| self.read_marks_script.run(c, &keys, &[epoch.into_bytes()]))
            .map_err(|e| self.failed(&e))?;
        let a = array(&reply).ok_or_else(|| bad_reply("marks"))?;
        match a {
            [tag] if text(tag).as_deref() == Some("reset") => Err(self.reset()),
            [tag, marks] if text(tag).as_deref() == Some("ok") => marks_of(marks).ok_or_else(|| bad_reply("marks")),
            _ => Err(bad_reply("marks")),
        }
    }

    fn step(&self, step: &Step<'_>) -> Result<StepOutcome, StateFailure> {
        let epoch = self.epoch()?;
        let slack = self.slack();
        let mut keys = Vec::with_capacity(step.limits.len() + 3);
        keys.push(self.keys.epoch());
        if let Some((mac, _)) = &step.grant {
            keys.push(self.keys.grant(mac));
        }
        keys.extend(step.limits.iter().map(|l| self.keys.limit(l)));
        if let Some(s) = step.session {
            keys.push(self.keys.marks(s));
        }
        // ARGV as scripts::STEP lists it.
        let flag = |b: bool| if b { "1" } else { "0" }.to_string();
        let mut args: Vec<String> = vec![
            epoch,
            flag(step.grant.is_some()),
            step.grant.map_or(0, |(_, exp)| exp.saturating_add(slack)).to_string(),
            flag(step.count),
            step.limits.len().to_string(),
            flag(step.session.is_some()),
            slack.to_string(),
            (if step.session.is_some() { step.marks.len() } else { 0 }).to_string(),
        ];
        for l in &step.limits {
            args.push(l.max_calls.map_or(-1, |m| m.min(i64::MAX as u64) as i64).to_string());
            args.push(l.max_sum.map_or(String::new(), num));
            args.push(num(l.add));
            args.push(flag(l.forced));
            args.push(flag(l.assumed_exceeded));
            args.push(l.window_end_ms.saturating_add(slack).to_string());
        }
        if step.session.is_some() {
            for (label, exp) in &step.marks {
                args.push((*label).to_owned());
                args.push(exp.to_string());
            }
        }
        let args: Vec<Vec<u8>> = args.into_iter().map(String::into_bytes).collect();
        let reply = self.pool.with(|c| self.step_script.run(c, &keys, &args)).map_err(|e| self.failed(&e))?;
        let a = array(&reply).ok_or_else(|| bad_reply("step"))?;
        let n = step.limits.len();
        match a {
            [tag] if text(tag).as_deref() == Some("reset") => Err(self.reset()),
            [tag, used, counters] if text(tag).as_deref() == Some("changed") => Ok(StepOutcome::Changed {
                before: counters_of(counters, n).ok_or_else(|| bad_reply("counters"))?,
                grant_used: text(used).as_deref() == Some("1"),
            }),
            [tag, counters, marks] if text(tag).as_deref() == Some("ok") => Ok(StepOutcome::Done {
                before: counters_of(counters, n).ok_or_else(|| bad_reply("counters"))?,
                marks: marks_of(marks).ok_or_else(|| bad_reply("marks"))?,
            }),
            _ => Err(bad_reply("step")),
        }
    }

    fn kill(&self, kill: Kill) -> Result<(), StateFailure> {
        self.mirror.kill(kill).map_err(|e| self.failed(&e))
    }

    fn revive(&self, scope: KillScope, id: &str) -> Result<bool, StateFailure> {
        self.mirror.revive(scope, id).map_err(|e| self.failed(&e))
    }

    fn clear_marks(&self, session: &str, now_ms: Millis) -> Result<bool, StateFailure> {
        let keys = [self.keys.marks(session)];
        let reply = self.pool.with(|c| self.clear_marks_script.run(c, &keys, &[])).map_err(|e| self.failed(&e))?;
        let marks = marks_of(&reply).ok_or_else(|| bad_reply("marks"))?;
        Ok(marks.iter().any(|(_, exp)| now_ms < *exp))
    }

    fn policy_loaded(&self, hash: &str) {
        self.mirror.policy_loaded(hash);
    }
}

/// The store's timeout as a duration.
pub(crate) fn timeout(cfg: &StateConfig) -> Duration {
    Duration::from_millis(cfg.timeout_ms)
}
