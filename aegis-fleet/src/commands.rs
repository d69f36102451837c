//! The exchanges with the store that a member's mirror, its calls and `aegis state`
//! make: writing and deleting kills (each with its event, so every mirror reads at
//! once), set-if-absent, running a script, and the replies they read back. Each says
//! how many replies it reads ([`Bounded::exchange`]).

use crate::keys::{kill_field, parse_kill_field, Keys};
use crate::pool::Bounded;
use aegis_core::state::Kill;
use aegis_core::time::Millis;
use aegis_core::KillScope;
use redis::{RedisResult, Value};

/// The replies of an atomic pipeline of `n` commands (`MULTI`, n × `QUEUED`, `EXEC`).
fn atomic(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX).saturating_add(2)
}

/// Writes kills (a new reason replaces the old) and announces them, atomically.
pub fn write_kills(c: &mut Bounded<'_>, keys: &Keys, kills: &[Kill]) -> RedisResult<()> {
    let mut p = redis::pipe();
    p.atomic();
    for k in kills {
        p.cmd("HSET").arg(keys.kills()).arg(kill_field(k.scope, &k.id)).arg(&k.reason).ignore();
    }
    p.cmd("PUBLISH").arg(keys.events()).arg("kill").ignore();
    p.query(c.exchange(atomic(kills.len() + 1))?)
}

/// Deletes a kill and announces it, atomically; returns whether the store had it.
pub fn delete_kill(c: &mut Bounded<'_>, keys: &Keys, scope: KillScope, id: &str) -> RedisResult<bool> {
    let (removed,): (i64,) = redis::pipe()
        .atomic()
        .cmd("HDEL")
        .arg(keys.kills())
        .arg(kill_field(scope, id))
        .cmd("PUBLISH")
        .arg(keys.events())
        .arg("revive")
        .ignore()
        .query(c.exchange(atomic(2))?)?;
    Ok(removed > 0)
}

/// Sets `key` to `value` unless it is set, and returns what it holds then.
pub fn set_nx_get(c: &mut Bounded<'_>, key: &str, value: &str) -> RedisResult<Option<String>> {
    let (now,): (Option<String>,) =
        redis::pipe().cmd("SET").arg(key).arg(value).arg("NX").ignore().cmd("GET").arg(key).query(c.exchange(2)?)?;
    Ok(now)
}

/// A server-side script, run by its SHA-1 (`EVALSHA`) and sent whole (`EVAL`, which
/// also caches it) only when the store does not have it (after a restart) — each
/// exchange bounded by what is left of the deadline.
pub struct Script {
    text: &'static str,
    sha1: String,
}

impl Script {
    /// The script of `text`.
    pub fn new(text: &'static str) -> Script {
        Script { text, sha1: redis::Script::new(text).get_hash().to_owned() }
    }

    /// Runs it with `keys` and `args` (each one argument, as bytes).
    pub fn run(&self, c: &mut Bounded<'_>, keys: &[String], args: &[Vec<u8>]) -> RedisResult<Value> {
        let call = |verb: &str, body: &str| {
            let mut cmd = redis::cmd(verb);
            cmd.arg(body).arg(keys.len());
            for k in keys {
                cmd.arg(k.as_str());
            }
            for a in args {
                cmd.arg(a.as_slice());
            }
            cmd
        };
        match call("EVALSHA", &self.sha1).query(c.exchange(1)?) {
            Err(e) if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) => {
                call("EVAL", self.text).query(c.exchange(1)?)
            }
            other => other,
        }
    }
}

/// The kills hash (`HGETALL`) as kills. A field that names no scope was not written
/// by Aegis and stops nothing: it is left out.
pub fn parse_kills(all: Vec<(String, String)>) -> Vec<Kill> {
    all.into_iter()
        .filter_map(|(f, reason)| parse_kill_field(&f).map(|(scope, id)| Kill { scope, id: id.to_owned(), reason }))
        .collect()
}

/// Redis `TIME` (seconds, microseconds) in Unix milliseconds.
pub fn store_ms((secs, micros): (i64, i64)) -> Millis {
    secs.saturating_mul(1000).saturating_add(micros / 1000)
}
