//! A small pool of synchronous connections, every use bounded by `state_timeout_ms`
//! from its start: connecting, the handshake and the commands together. A connection
//! that failed in any way is dropped, never reused.
//!
//! The bound needs care with redis-rs: a socket timeout bounds one read, and a
//! pipeline of N replies keeps reading after a timed-out one (so a frozen server
//! would hold a pipeline N timeouts). Each exchange therefore says how many replies it
//! reads, and each read gets its share of what is left ([`Bounded::exchange`]); the
//! handshake is kept to the replies it needs (no `CLIENT SETINFO`) and shares the
//! timeout the same way.

use crate::ConnectError;
use aegis_core::config::redact_url;
use aegis_core::StateConfig;
use redis::{Client, Connection, IntoConnectionInfo, RedisError, RedisResult};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Idle connections kept (more are opened under load, and closed after use).
const KEEP: usize = 8;

/// The pool.
pub struct Pool {
    client: Client,
    idle: Mutex<Vec<Connection>>,
    timeout: Duration,
    /// The replies the handshake reads: `AUTH` with credentials, `SELECT` for a db
    /// other than 0 (at least 1, so a share is never more than the timeout).
    handshake: u32,
}

/// A connection with the deadline of the use it serves.
pub struct Bounded<'c> {
    con: &'c mut Connection,
    deadline: Instant,
}

fn timed_out() -> RedisError {
    RedisError::from((redis::ErrorKind::Io, "timed out", "no answer within state_timeout_ms".into()))
}

impl Bounded<'_> {
    /// The connection for an exchange that reads `replies` replies (a pipeline's
    /// commands; an atomic one adds two, for `MULTI` and `EXEC`): each read may wait
    /// its share of what is left of the deadline, so the exchange never passes it.
    pub fn exchange(&mut self, replies: u32) -> RedisResult<&mut Connection> {
        let left = self.deadline.checked_duration_since(Instant::now()).ok_or_else(timed_out)?;
        let share = (left / replies.max(1)).max(Duration::from_micros(100));
        if left < share {
            return Err(timed_out());
        }
        self.con.set_read_timeout(Some(share))?;
        self.con.set_write_timeout(Some(share))?;
        Ok(self.con)
    }
}

impl Pool {
    /// Parses the URL (a malformed one is a [`ConnectError`]); connects nothing yet.
    pub fn open(cfg: &StateConfig) -> Result<Pool, ConnectError> {
        let refused = |e: RedisError| {
            ConnectError(format!("`state`: {} is not a usable Redis URL: {}", redact_url(&cfg.url), describe(&e)))
        };
        let info = cfg.url.as_str().into_connection_info().map_err(refused)?;
        let settings = info.redis_settings().clone().set_skip_set_lib_name();
        let credentials = settings.username().is_some() || settings.password().is_some();
        let handshake = (u32::from(credentials) + u32::from(settings.db() != 0)).max(1);
        let client = Client::open(info.set_redis_settings(settings)).map_err(refused)?;
        Ok(Pool { client, idle: Mutex::new(Vec::new()), timeout: crate::timeout(cfg), handshake })
    }

    /// Connects once and says PING (for construction: are the credentials accepted?).
    pub fn probe(&self) -> RedisResult<()> {
        self.with(|c| redis::cmd("PING").query::<()>(c.exchange(1)?))
    }

    /// A new connection: connecting and the handshake within `timeout` together.
    pub fn connect(&self, timeout: Duration) -> RedisResult<Connection> {
        self.client.get_connection_with_timeout((timeout / self.handshake).max(Duration::from_millis(1)))
    }

    /// Runs `f` on a connection, all of it within the timeout.
    pub fn with<T>(&self, f: impl FnOnce(&mut Bounded<'_>) -> RedisResult<T>) -> RedisResult<T> {
        let deadline = Instant::now() + self.timeout;
        let idle = self.idle.lock().unwrap_or_else(std::sync::PoisonError::into_inner).pop();
        let mut con = match idle {
            Some(c) => c,
            None => self.connect(self.timeout)?,
        };
        let out = f(&mut Bounded { con: &mut con, deadline });
        if out.is_ok() {
            let mut idle = self.idle.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if idle.len() < KEEP {
                idle.push(con);
            }
        }
        out
    }

    /// Drops every idle connection (after a failure, they may all be dead).
    pub fn clear(&self) {
        self.idle.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clear();
    }
}

/// Whether the server refused the credentials (wrong password, unknown ACL user).
pub fn is_auth_error(e: &RedisError) -> bool {
    if e.kind() == redis::ErrorKind::AuthenticationFailed {
        return true;
    }
    let s = e.to_string();
    s.contains("WRONGPASS") || s.contains("NOAUTH") || s.contains("invalid password") || s.contains("invalid username")
}

/// An error for people, without the URL's password.
pub fn describe(e: &RedisError) -> String {
    if e.is_timeout() {
        return "no answer within state_timeout_ms".into();
    }
    if e.is_connection_refusal() {
        return format!("connection refused ({e})");
    }
    e.to_string()
}
