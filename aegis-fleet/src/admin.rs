//! What `aegis state` does to a fleet's store (§11): kill, revive, list, marks and
//! reset. Each is one short exchange bounded by the store's timeout.

use crate::commands;
use crate::keys::Keys;
use crate::mirror::{new_epoch, ACCEPTED};
use crate::pool::{describe, is_auth_error, Pool};
use crate::scripts;
use crate::ConnectError;
use aegis_core::state::Kill;
use aegis_core::time::Millis;
use aegis_core::{KillScope, StateConfig};

/// A limit counter as `aegis state list` shows it.
#[derive(Clone, Debug, PartialEq)]
pub struct LiveCounter {
    /// The key after `{PREFIX}limit:`: `ID:WINDOW_MS:WINDOW:PER`.
    pub key: String,
    /// Calls counted.
    pub calls: u64,
    /// The running sum.
    pub sum: f64,
}

/// Why an admin call failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AdminError {
    /// The settings are wrong (URL, credentials).
    #[error("{0}")]
    Config(String),
    /// The store could not be reached in time.
    #[error("{0}")]
    Unavailable(String),
    /// The store holds a value Aegis did not write (a counter that is not a number).
    #[error("{0}")]
    Corrupt(String),
}

impl From<ConnectError> for AdminError {
    fn from(e: ConnectError) -> AdminError {
        AdminError::Config(e.0)
    }
}

/// A connection to a fleet's store for operators.
pub struct Admin {
    keys: Keys,
    pool: Pool,
    counters_script: commands::Script,
}

impl Admin {
    /// Parses the URL and checks that the store answers.
    pub fn connect(cfg: &StateConfig) -> Result<Admin, AdminError> {
        let pool = Pool::open(cfg)?;
        let admin =
            Admin { keys: Keys::new(&cfg.prefix), pool, counters_script: commands::Script::new(scripts::COUNTERS) };
        admin.pool.probe().map_err(|e| admin.err(&e))?;
        Ok(admin)
    }

    fn err(&self, e: &redis::RedisError) -> AdminError {
        if is_auth_error(e) {
            AdminError::Config(format!("the store refused the credentials: {}", describe(e)))
        } else {
            AdminError::Unavailable(format!("the fleet's store cannot be reached: {}", describe(e)))
        }
    }

    /// Kills for the whole fleet.
    pub fn kill(&self, scope: KillScope, id: &str, reason: &str) -> Result<(), AdminError> {
        let kill = Kill { scope, id: id.to_owned(), reason: reason.to_owned() };
        self.pool.with(|c| commands::write_kills(c, &self.keys, std::slice::from_ref(&kill))).map_err(|e| self.err(&e))
    }

    /// Lifts a kill for the whole fleet; returns whether the store had it.
    pub fn revive(&self, scope: KillScope, id: &str) -> Result<bool, AdminError> {
        self.pool.with(|c| commands::delete_kill(c, &self.keys, scope, id)).map_err(|e| self.err(&e))
    }

    /// The kills in force (sorted by scope and id).
    pub fn kills(&self) -> Result<Vec<Kill>, AdminError> {
        let all: Vec<(String, String)> = self
            .pool
            .with(|c| redis::cmd("HGETALL").arg(self.keys.kills()).query(c.exchange(1)?))
            .map_err(|e| self.err(&e))?;
        let mut kills = commands::parse_kills(all);
        kills.sort_by(|a, b| (a.scope.as_str(), &a.id).cmp(&(b.scope.as_str(), &b.id)));
        Ok(kills)
    }

    /// The live limit counters (sorted by key): every one, read in batches. A counter
    /// whose fields do not read as numbers is an error naming it, never a zero.
    pub fn counters(&self) -> Result<Vec<LiveCounter>, AdminError> {
        let pattern = self.keys.limit_pattern();
        let mut keys: Vec<String> = Vec::new();
        let mut cursor: u64 = 0;
        loop {
            let (next, batch): (u64, Vec<String>) = self
                .pool
                .with(|c| {
                    redis::cmd("SCAN")
                        .arg(cursor)
                        .arg("MATCH")
                        .arg(&pattern)
                        .arg("COUNT")
                        .arg(500)
                        .query(c.exchange(1)?)
                })
                .map_err(|e| self.err(&e))?;
            keys.extend(batch);
            if next == 0 {
                break;
            }
            cursor = next;
        }
        keys.sort_unstable();
        keys.dedup(); // SCAN may return a key twice
        let mut out = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(500) {
            let reply = self.pool.with(|c| self.counters_script.run(c, chunk, &[])).map_err(|e| self.err(&e))?;
            let fields: Vec<(Option<String>, Option<String>)> = redis::FromRedisValue::from_redis_value(reply)
                .map_err(|e| AdminError::Corrupt(format!("the store's counters: {e}")))?;
            if fields.len() != chunk.len() {
                return Err(AdminError::Corrupt(format!("{} counters read for {} keys", fields.len(), chunk.len())));
            }
            for (k, (calls, sum)) in chunk.iter().zip(fields) {
                let Some(suffix) = self.keys.limit_suffix(k) else { continue };
                // A key that expired between SCAN and HMGET has neither field.
                if calls.is_none() && sum.is_none() {
                    continue;
                }
                let bad = || AdminError::Corrupt(format!("the counter `{k}` holds calls {calls:?} and sum {sum:?}"));
                let calls = calls.as_deref().map_or(Ok(0), str::parse).map_err(|_| bad())?;
                let sum = sum.as_deref().map_or(Ok(0.0), str::parse::<f64>).map_err(|_| bad())?;
                out.push(LiveCounter { key: suffix.to_owned(), calls, sum });
            }
        }
        Ok(out)
    }

    /// A session's marks live at the store's clock: label and expiry, sorted.
    pub fn marks(&self, session: &str) -> Result<Vec<(String, Millis)>, AdminError> {
        let ((secs, micros), all): ((i64, i64), Vec<(String, i64)>) = self
            .pool
            .with(|c| redis::pipe().cmd("TIME").cmd("HGETALL").arg(self.keys.marks(session)).query(c.exchange(2)?))
            .map_err(|e| self.err(&e))?;
        let now = commands::store_ms((secs, micros));
        let mut live: Vec<(String, Millis)> = all.into_iter().filter(|(_, exp)| now < *exp).collect();
        live.sort();
        Ok(live)
    }

    /// Writes a new epoch marked accepted: members that denied with `state:reset`
    /// adopt it and go on with the store as it is now. Returns the epoch.
    pub fn reset_accept(&self) -> Result<String, AdminError> {
        let epoch = format!("{}{ACCEPTED}", new_epoch());
        let (key, events) = (self.keys.epoch(), self.keys.events());
        self.pool
            .with(|c| {
                redis::pipe()
                    .atomic()
                    .set(&key, &epoch)
                    .ignore()
                    .publish(&events, "reset")
                    .ignore()
                    .query::<()>(c.exchange(4)?)
            })
            .map_err(|e| self.err(&e))?;
        Ok(epoch)
    }
}
