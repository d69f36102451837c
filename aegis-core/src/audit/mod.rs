//! Audit records (§5): canonical, hash-chained, optionally signed; and the sinks that
//! receive them.

mod file;
mod verify;

pub use file::{chain_files, rotated_files, FileSink, FileSinkOptions, Fsync, TornLine};
pub use verify::{verify_files, verify_lines, VerifyError, VerifyReport};

use crate::json::{write_number, write_string};
use crate::policy::Outcome;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// The `prev` of the first record of a chain.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// A limit's state after a call, as recorded.
#[derive(Clone, Debug, PartialEq)]
pub struct LimitState {
    /// The limit's id.
    pub id: String,
    /// Calls counted in the current window after this call.
    pub calls: u64,
    /// The running sum after this call (limits with `max_sum` only).
    pub sum: Option<f64>,
}

/// One audit record (§5.2).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AuditRecord {
    /// Sequence number, from 0.
    pub seq: u64,
    /// Resolved request time, UTC with milliseconds.
    pub time: String,
    /// The agent.
    pub agent: String,
    /// The chain (omitted when empty).
    pub chain: Vec<String>,
    /// The tool.
    pub tool: String,
    /// The action.
    pub action: Option<String>,
    /// The session.
    pub session: Option<String>,
    /// The environment.
    pub environment: Option<String>,
    /// Hex SHA-256 of the canonical JSON of `params`.
    pub params_sha256: String,
    /// The outcome.
    pub outcome: Option<Outcome>,
    /// The determining rules.
    pub rules: Vec<String>,
    /// The reason.
    pub reason: String,
    /// The approval id (approval outcomes, and grants).
    pub approval_id: Option<String>,
    /// Who approved, when a grant allowed the call.
    pub approved_by: Option<String>,
    /// Number of decision errors (omitted when 0).
    pub errors: usize,
    /// Limit states (omitted when none matched).
    pub limits: Vec<LimitState>,
    /// Signing key id (signed records only).
    pub kid: Option<String>,
    /// The policy hash.
    pub policy: String,
    /// Hash of the previous record.
    pub prev: String,
    /// This record's hash.
    pub hash: String,
    /// HMAC signature of `hash` (signed records only).
    pub sig: Option<String>,
}

impl AuditRecord {
    /// Appends the record's canonical JSON; `sealed` includes `hash` and `sig`.
    /// Keys are written in RFC 8785 order (asserted by a test).
    pub fn write_json(&self, out: &mut String, sealed: bool) {
        let mut first = true;
        let mut key = |out: &mut String, k: &str| {
            if !first {
                out.push(',');
            }
            first = false;
            out.push('"');
            out.push_str(k);
            out.push_str("\":");
        };
        out.push('{');
        if let Some(a) = &self.action {
            key(out, "action");
            write_string(out, a);
        }
        key(out, "agent");
        write_string(out, &self.agent);
        if let Some(a) = &self.approval_id {
            key(out, "approval_id");
            write_string(out, a);
        }
        if let Some(a) = &self.approved_by {
            key(out, "approved_by");
            write_string(out, a);
        }
        if !self.chain.is_empty() {
            key(out, "chain");
            write_str_list(out, &self.chain);
        }
        if let Some(e) = &self.environment {
            key(out, "environment");
            write_string(out, e);
        }
        if self.errors > 0 {
            key(out, "errors");
            out.push_str(&self.errors.to_string());
        }
        if sealed {
            key(out, "hash");
            write_string(out, &self.hash);
        }
        if let Some(k) = &self.kid {
            key(out, "kid");
            write_string(out, k);
        }
        if !self.limits.is_empty() {
            key(out, "limits");
            out.push('[');
            for (i, l) in self.limits.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str("{\"calls\":");
                out.push_str(&l.calls.to_string());
                out.push_str(",\"id\":");
                write_string(out, &l.id);
                if let Some(s) = l.sum {
                    out.push_str(",\"sum\":");
                    write_number(out, s);
                }
                out.push('}');
            }
            out.push(']');
        }
        key(out, "outcome");
        write_string(out, self.outcome.map_or("deny", Outcome::as_str));
        key(out, "params_sha256");
        write_string(out, &self.params_sha256);
        key(out, "policy");
        write_string(out, &self.policy);
        key(out, "prev");
        write_string(out, &self.prev);
        key(out, "reason");
        write_string(out, &self.reason);
        key(out, "rules");
        write_str_list(out, &self.rules);
        key(out, "seq");
        out.push_str(&self.seq.to_string());
        if let Some(s) = &self.session {
            key(out, "session");
            write_string(out, s);
        }
        if sealed {
            if let Some(s) = &self.sig {
                key(out, "sig");
                write_string(out, s);
            }
        }
        key(out, "time");
        write_string(out, &self.time);
        key(out, "tool");
        write_string(out, &self.tool);
        key(out, "v");
        out.push('1');
        out.push('}');
    }

    /// The sealed record as one line of canonical JSON.
    pub fn to_json(&self) -> String {
        let mut s = String::with_capacity(512);
        self.write_json(&mut s, true);
        s
    }

    /// Computes `hash` (and `sig` when a key is given) from the other fields.
    pub fn seal(&mut self, signing_key: Option<&[u8]>) {
        let mut body = String::with_capacity(512);
        self.write_json(&mut body, false);
        self.hash = sha256_hex(body.as_bytes());
        self.sig = signing_key.map(|k| hmac_hex(k, self.hash.as_bytes()));
    }
}

fn write_str_list(out: &mut String, items: &[String]) {
    out.push('[');
    for (i, s) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_string(out, s);
    }
    out.push(']');
}

/// Lower-case hex SHA-256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    crate::policy::hex(&Sha256::digest(bytes))
}

/// Lower-case hex HMAC-SHA256.
pub fn hmac_hex(key: &[u8], msg: &[u8]) -> String {
    crate::policy::hex(&hmac_bytes(key, msg))
}

/// Raw HMAC-SHA256.
pub fn hmac_bytes(key: &[u8], msg: &[u8]) -> [u8; 32] {
    // HMAC accepts keys of any length; `new_from_slice` cannot fail for it.
    match <Hmac<Sha256> as Mac>::new_from_slice(key) {
        Ok(mut m) => {
            m.update(msg);
            m.finalize().into_bytes().into()
        }
        Err(_) => [0u8; 32],
    }
}

/// The default key id: the first 16 hex digits of SHA-256(key).
pub fn default_kid(key: &[u8]) -> String {
    let mut h = sha256_hex(key);
    h.truncate(16);
    h
}

/// A failure to record. `evaluate` returns it and the call is not allowed.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// Writing or syncing the audit file failed.
    #[error("cannot write audit record to `{path}`: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The audit file cannot be opened or resumed.
    #[error("cannot open audit file `{path}`: {message}")]
    Open {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// A callback sink refused the record.
    #[error("audit callback failed: {0}")]
    Callback(String),
}

/// Receives every finished record, in `seq` order, under the engine's chain lock.
pub trait AuditSink: Send {
    /// Records one sealed record; `line` is its canonical JSON. An error makes the
    /// evaluation fail (closed) and the chain does not advance.
    fn write(&mut self, record: &AuditRecord, line: &str) -> Result<(), AuditError>;

    /// Where the chain resumes: the last record's `seq` and `hash`, if any.
    fn resume(&self) -> Option<(u64, String)> {
        None
    }

    /// Makes every record written so far durable (called outside the chain lock for
    /// group commit). The default does nothing.
    fn durable(&self) -> Option<std::sync::Arc<dyn Durable>> {
        None
    }
}

/// Group-commit handle of a sink whose records need a sync after writing.
pub trait Durable: Send + Sync {
    /// Returns once the record `seq` (and every earlier one) is durable.
    fn sync_through(&self, seq: u64) -> Result<(), AuditError>;
}

/// A sink that calls a function with each record.
pub struct CallbackSink<F>(pub F);

impl<F> AuditSink for CallbackSink<F>
where
    F: FnMut(&AuditRecord, &str) -> Result<(), String> + Send,
{
    fn write(&mut self, record: &AuditRecord, line: &str) -> Result<(), AuditError> {
        (self.0)(record, line).map_err(AuditError::Callback)
    }
}

/// A sink that keeps the lines in memory (tests, tools).
#[derive(Default, Clone)]
pub struct MemorySink(pub std::sync::Arc<std::sync::Mutex<Vec<String>>>);

impl AuditSink for MemorySink {
    fn write(&mut self, _record: &AuditRecord, line: &str) -> Result<(), AuditError> {
        match self.0.lock() {
            Ok(mut v) => v.push(line.to_owned()),
            Err(p) => p.into_inner().push(line.to_owned()),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_in_canonical_order() {
        let rec = AuditRecord {
            seq: 3,
            time: "2026-01-05T10:00:00.000Z".into(),
            agent: "a".into(),
            chain: vec!["s".into()],
            tool: "t".into(),
            action: Some("x".into()),
            session: Some("s1".into()),
            environment: Some("prod".into()),
            params_sha256: "p".into(),
            outcome: Some(Outcome::Allow),
            rules: vec!["r".into()],
            reason: "why".into(),
            approval_id: Some("apr_x".into()),
            approved_by: Some("bob".into()),
            errors: 2,
            limits: vec![LimitState { id: "l".into(), calls: 1, sum: Some(2.5) }],
            kid: Some("k".into()),
            policy: "h".into(),
            prev: GENESIS.into(),
            hash: "hh".into(),
            sig: Some("ss".into()),
        };
        let line = rec.to_json();
        let v = crate::json::parse(&line, 8).unwrap();
        assert_eq!(v.to_canonical_json(), line);
        let mut unsealed = String::new();
        rec.write_json(&mut unsealed, false);
        assert!(!unsealed.contains("\"hash\"") && !unsealed.contains("\"sig\""));
        assert_eq!(crate::json::parse(&unsealed, 8).unwrap().to_canonical_json(), unsealed);
    }

    #[test]
    fn hmac_known_answer() {
        // RFC 4231 test case 2.
        assert_eq!(
            hmac_hex(b"Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert_eq!(sha256_hex(b"abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }
}
