//! What `aegis state` does to a fleet's store (§11): kill, revive, list, marks and
//! reset. Each is one short exchange bounded by the store's timeout.

use crate::keys::{kill_field, parse_kill_field, Keys};
use crate::mirror::{new_epoch, ACCEPTED};
use crate::pool::{describe, is_auth_error, Pool};
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
}

impl Admin {
    /// Parses the URL and checks that the store answers.
    pub fn connect(cfg: &StateConfig) -> Result<Admin, AdminError> {
        let pool = Pool::open(cfg)?;
        let admin = Admin { keys: Keys::new(&cfg.prefix), pool };
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
        self.pool
            .with(|c| {
                redis::pipe()
                    .atomic()
                    .cmd("HSET")
                    .arg(self.keys.kills())
                    .arg(kill_field(scope, id))
                    .arg(reason)
                    .ignore()
                    .cmd("PUBLISH")
                    .arg(self.keys.events())
                    .arg("kill")
                    .ignore()
                    .query::<()>(c)
            })
            .map_err(|e| self.err(&e))
    }

    /// Lifts a kill for the whole fleet; returns whether the store had it.
    pub fn revive(&self, scope: KillScope, id: &str) -> Result<bool, AdminError> {
        self.pool
            .with(|c| {
                redis::pipe()
                    .atomic()
                    .cmd("HDEL")
                    .arg(self.keys.kills())
                    .arg(kill_field(scope, id))
                    .cmd("PUBLISH")
                    .arg(self.keys.events())
                    .arg("revive")
                    .ignore()
                    .query::<(i64,)>(c)
                    .map(|(n,)| n > 0)
            })
            .map_err(|e| self.err(&e))
    }

    /// The kills in force (sorted by scope and id).
    pub fn kills(&self) -> Result<Vec<Kill>, AdminError> {
        let all: Vec<(String, String)> =
            self.pool.with(|c| redis::cmd("HGETALL").arg(self.keys.kills()).query(c)).map_err(|e| self.err(&e))?;
        let mut kills: Vec<Kill> = all
            .into_iter()
            .filter_map(|(f, reason)| parse_kill_field(&f).map(|(scope, id)| Kill { scope, id: id.to_owned(), reason }))
            .collect();
        kills.sort_by(|a, b| (a.scope.as_str(), &a.id).cmp(&(b.scope.as_str(), &b.id)));
        Ok(kills)
    }

    /// The live limit counters (sorted by key).
    pub fn counters(&self) -> Result<Vec<LiveCounter>, AdminError> {
        let pattern = self.keys.limit_pattern();
        let keys: Vec<String> = self
            .pool
            .with(|c| {
                let mut out = Vec::new();
                let mut cursor: u64 = 0;
                loop {
                    let (next, batch): (u64, Vec<String>) =
                        redis::cmd("SCAN").arg(cursor).arg("MATCH").arg(&pattern).arg("COUNT").arg(500).query(c)?;
                    out.extend(batch);
                    if next == 0 || out.len() > 100_000 {
                        return Ok(out);
                    }
                    cursor = next;
                }
            })
            .map_err(|e| self.err(&e))?;
        let mut out = Vec::with_capacity(keys.len());
        for k in keys {
            let (c, s): (Option<u64>, Option<String>) = self
                .pool
                .with(|con| redis::cmd("HMGET").arg(&k).arg("c").arg("s").query(con))
                .map_err(|e| self.err(&e))?;
            let Some(suffix) = self.keys.limit_suffix(&k) else { continue };
            out.push(LiveCounter {
                key: suffix.to_owned(),
                calls: c.unwrap_or(0),
                sum: s.and_then(|s| s.parse().ok()).unwrap_or(0.0),
            });
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    /// A session's marks live at the store's clock: label and expiry, sorted.
    pub fn marks(&self, session: &str) -> Result<Vec<(String, Millis)>, AdminError> {
        let ((secs, micros), all): ((i64, i64), Vec<(String, i64)>) = self
            .pool
            .with(|c| redis::pipe().cmd("TIME").cmd("HGETALL").arg(self.keys.marks(session)).query(c))
            .map_err(|e| self.err(&e))?;
        let now = secs.saturating_mul(1000).saturating_add(micros / 1000);
        let mut live: Vec<(String, Millis)> = all.into_iter().filter(|(_, exp)| now < *exp).collect();
        live.sort();
        Ok(live)
    }

    /// Writes a new epoch marked accepted: members that denied with `state:reset`
    /// adopt it and go on with the store as it is now. Returns the epoch.
    pub fn reset_accept(&self) -> Result<String, AdminError> {
        let epoch = format!("{}{ACCEPTED}", new_epoch());
        self.pool
            .with(|c| {
                redis::pipe()
                    .atomic()
                    .cmd("SET")
                    .arg(self.keys.epoch())
                    .arg(&epoch)
                    .ignore()
                    .cmd("PUBLISH")
                    .arg(self.keys.events())
                    .arg("reset")
                    .ignore()
                    .query::<()>(c)
            })
            .map_err(|e| self.err(&e))?;
        Ok(epoch)
    }
}
