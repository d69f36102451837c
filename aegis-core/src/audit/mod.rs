//! Audit records (§5): canonical, hash-chained, optionally signed; and the sinks that
//! receive them.

mod file;
mod verify;

pub use file::{chain_files, rotated_files, FileSink, FileSinkOptions, Fsync, TornLine};
pub use verify::{verify_files, verify_lines, VerifyError, VerifyReport};

use crate::json::{push_u64, u64_digits, write_number, write_string};
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
    /// Serialises every field but `seq`, `prev`, `hash` and `sig` into segments that
    /// sit between them in RFC 8785 key order (asserted by a test). Sealing then
    /// hashes the part before `prev` outside the engine's chain lock and only the
    /// short tail inside it.
    pub fn segments(&self) -> Segments {
        self.segments_in(String::new())
    }

    /// [`segments`](Self::segments) serialised into `buf` (cleared first), a buffer
    /// the caller reuses (see [`Segments::into_buf`]).
    pub fn segments_in(&self, mut buf: String) -> Segments {
        buf.clear();
        buf.reserve(512);
        let mut b = buf;
        b.push('{');
        // A: action … errors (the first field carries no comma).
        if let Some(a) = &self.action {
            b.push_str("\"action\":");
            write_string(&mut b, a);
            b.push(',');
        }
        b.push_str("\"agent\":");
        write_string(&mut b, &self.agent);
        if let Some(a) = &self.approval_id {
            b.push_str(",\"approval_id\":");
            write_string(&mut b, a);
        }
        if let Some(a) = &self.approved_by {
            b.push_str(",\"approved_by\":");
            write_string(&mut b, a);
        }
        if !self.chain.is_empty() {
            b.push_str(",\"chain\":");
            write_str_list(&mut b, &self.chain);
        }
        if let Some(e) = &self.environment {
            b.push_str(",\"environment\":");
            write_string(&mut b, e);
        }
        if self.errors > 0 {
            b.push_str(",\"errors\":");
            push_u64(&mut b, self.errors as u64);
        }
        let a = b.len();
        // B: kid … policy.
        if let Some(k) = &self.kid {
            b.push_str(",\"kid\":");
            write_string(&mut b, k);
        }
        if !self.limits.is_empty() {
            b.push_str(",\"limits\":[");
            for (i, l) in self.limits.iter().enumerate() {
                if i > 0 {
                    b.push(',');
                }
                b.push_str("{\"calls\":");
                push_u64(&mut b, l.calls);
                b.push_str(",\"id\":");
                write_string(&mut b, &l.id);
                if let Some(sum) = l.sum {
                    b.push_str(",\"sum\":");
                    write_number(&mut b, sum);
                }
                b.push('}');
            }
            b.push(']');
        }
        b.push_str(",\"outcome\":");
        write_string(&mut b, self.outcome.map_or("deny", Outcome::as_str));
        b.push_str(",\"params_sha256\":");
        write_string(&mut b, &self.params_sha256);
        b.push_str(",\"policy\":");
        write_string(&mut b, &self.policy);
        let ab = b.len();
        // C: reason, rules.
        b.push_str(",\"reason\":");
        write_string(&mut b, &self.reason);
        b.push_str(",\"rules\":");
        write_str_list(&mut b, &self.rules);
        let c = b.len();
        // D: session.
        if let Some(x) = &self.session {
            b.push_str(",\"session\":");
            write_string(&mut b, x);
        }
        let d = b.len();
        // E: time, tool, v.
        b.push_str(",\"time\":");
        write_string(&mut b, &self.time);
        b.push_str(",\"tool\":");
        write_string(&mut b, &self.tool);
        b.push_str(",\"v\":1}");
        Segments { buf: b, a, ab, c, d }
    }

    /// Appends the record's canonical JSON; `sealed` includes `hash` and `sig`.
    pub fn write_json(&self, out: &mut String, sealed: bool) {
        self.segments().write(out, self, sealed);
    }

    /// The sealed record as one line of canonical JSON.
    pub fn to_json(&self) -> String {
        let mut s = String::with_capacity(640);
        self.write_json(&mut s, true);
        s
    }

    /// Computes `hash` (and `sig` when a key is given) from the other fields.
    pub fn seal(&mut self, signing_key: Option<&[u8]>) {
        let seg = self.segments();
        let mut h = Sha256::new();
        h.update(seg.head().as_bytes());
        self.seal_from(&seg, h, signing_key);
    }

    /// Finishes sealing: `head` has absorbed [`Segments::head`]; adds `prev`, `seq`
    /// and the rest, and sets `hash` and `sig`.
    pub fn seal_from(&mut self, seg: &Segments, mut head: Sha256, signing_key: Option<&[u8]>) {
        let mut tail = String::with_capacity(seg.buf.len() - seg.ab + 96);
        seg.write_tail(&mut tail, self, None);
        head.update(tail.as_bytes());
        self.hash = crate::policy::hex(&head.finalize());
        self.sig = signing_key.map(|k| hmac_hex(k, self.hash.as_bytes()));
    }
}

/// A record serialised around its chain fields (see [`AuditRecord::segments`]).
pub struct Segments {
    buf: String,
    a: usize,
    ab: usize,
    c: usize,
    d: usize,
}

impl Segments {
    /// The buffer, for reuse.
    pub fn into_buf(self) -> String {
        self.buf
    }

    /// Everything before `prev` in the unsealed (hashed) form.
    pub fn head(&self) -> &str {
        self.buf.get(..self.ab).unwrap_or("")
    }

    /// Bytes serialised so far (all fields but the chain fields).
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// Whether nothing was serialised (never, for a real record).
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Feeds the unsealed tail (`prev` … end) for this `prev` and `seq` to `h`, exactly
    /// the bytes [`write_tail`](Self::write_tail) would write without `sig`, with no
    /// allocation (it runs under the engine's chain lock).
    pub fn hash_tail(&self, h: &mut Sha256, prev: &str, seq: u64) {
        let mut prev_json = String::new();
        let prev_part: &str = if all_hex(prev.as_bytes()) {
            h.update(b",\"prev\":\"");
            h.update(prev.as_bytes());
            "\""
        } else {
            // Never for a real chain (prev is hex); kept exact for any string.
            prev_json.push_str(",\"prev\":");
            write_string(&mut prev_json, prev);
            &prev_json
        };
        h.update(prev_part.as_bytes());
        h.update(self.buf.get(self.ab..self.c).unwrap_or("").as_bytes());
        h.update(b",\"seq\":");
        let mut digits = [0u8; 20];
        h.update(u64_digits(seq, &mut digits));
        h.update(self.buf.get(self.c..self.d).unwrap_or("").as_bytes());
        h.update(self.buf.get(self.d..).unwrap_or("").as_bytes());
    }

    /// Appends `prev` … end; with `sig`, the sealed form's tail.
    fn write_tail(&self, out: &mut String, rec: &AuditRecord, sig: Option<&str>) {
        out.push_str(",\"prev\":");
        write_string(out, &rec.prev);
        out.push_str(self.buf.get(self.ab..self.c).unwrap_or(""));
        out.push_str(",\"seq\":");
        push_u64(out, rec.seq);
        out.push_str(self.buf.get(self.c..self.d).unwrap_or(""));
        if let Some(s) = sig {
            out.push_str(",\"sig\":");
            write_string(out, s);
        }
        out.push_str(self.buf.get(self.d..).unwrap_or(""));
    }

    /// Appends the whole record; `sealed` adds `hash` and `sig`.
    pub fn write(&self, out: &mut String, rec: &AuditRecord, sealed: bool) {
        out.push_str(self.buf.get(..self.a).unwrap_or(""));
        if sealed {
            out.push_str(",\"hash\":");
            write_string(out, &rec.hash);
        }
        out.push_str(self.buf.get(self.a..self.ab).unwrap_or(""));
        self.write_tail(out, rec, if sealed { rec.sig.as_deref() } else { None });
    }
}

/// Whether every byte is an ASCII hex digit, without a branch per byte (the check
/// runs under the chain lock on every record).
fn all_hex(bytes: &[u8]) -> bool {
    bytes.iter().fold(true, |ok, &b| {
        let digit = b.wrapping_sub(b'0') < 10;
        let letter = (b | 0x20).wrapping_sub(b'a') < 6;
        ok & (digit | letter)
    })
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
    fn all_hex_matches_is_ascii_hexdigit() {
        for b in 0..=255u8 {
            assert_eq!(all_hex(&[b]), b.is_ascii_hexdigit(), "{b}");
            assert_eq!(all_hex(&[b'a', b, b'0']), b.is_ascii_hexdigit(), "{b}");
        }
        assert!(all_hex(GENESIS.as_bytes()));
        assert!(all_hex(b""));
    }

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
