//! A small pool of synchronous connections, every use bounded by `state_timeout_ms`
//! (connecting, the handshake and the command together). A connection that failed in
//! any way is dropped, never reused.

use crate::ConnectError;
use aegis_core::config::redact_url;
use aegis_core::StateConfig;
use redis::{Client, Connection, RedisError, RedisResult};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Idle connections kept (more are opened under load, and closed after use).
const KEEP: usize = 8;

/// The pool.
pub struct Pool {
    client: Client,
    idle: Mutex<Vec<Connection>>,
    timeout: Duration,
}

impl Pool {
    /// Parses the URL (a malformed one is a [`ConnectError`]); connects nothing yet.
    pub fn open(cfg: &StateConfig) -> Result<Pool, ConnectError> {
        let client = Client::open(cfg.url.as_str()).map_err(|e| {
            ConnectError(format!("`state`: {} is not a usable Redis URL: {}", redact_url(&cfg.url), describe(&e)))
        })?;
        Ok(Pool { client, idle: Mutex::new(Vec::new()), timeout: crate::timeout(cfg) })
    }

    /// Connects once and says PING (for construction: are the credentials accepted?).
    pub fn probe(&self) -> RedisResult<()> {
        self.with(|c| redis::cmd("PING").query::<()>(c))
    }

    /// A new connection, bounded by `timeout`.
    pub fn connect(&self, timeout: Duration) -> RedisResult<Connection> {
        self.client.get_connection_with_timeout(timeout)
    }

    /// Runs `f` on a connection within the timeout.
    pub fn with<T>(&self, f: impl FnOnce(&mut Connection) -> RedisResult<T>) -> RedisResult<T> {
        let start = Instant::now();
        let idle = self.idle.lock().unwrap_or_else(std::sync::PoisonError::into_inner).pop();
        let mut con = match idle {
            Some(c) => c,
            None => self.connect(self.timeout)?,
        };
        let left = self.timeout.checked_sub(start.elapsed()).filter(|d| !d.is_zero());
        let Some(left) = left else {
            return Err(RedisError::from((
                redis::ErrorKind::Io,
                "timed out",
                "connecting took the whole state_timeout_ms".into(),
            )));
        };
        con.set_read_timeout(Some(left))?;
        con.set_write_timeout(Some(left))?;
        let out = f(&mut con);
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
