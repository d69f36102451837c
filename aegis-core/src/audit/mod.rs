//! Audit records (§5): canonical, hash-chained, optionally signed; and the sinks that
//! receive them.

mod file;
mod verify;

pub use file::{chain_files, rotated_files, FileSink, FileSinkOptions, Fsync, TornLine};
pub use verify::{verify_files, verify_lines, VerifyError, VerifyReport};

use crate::json::{push_u64, u64_digits, write_number, write_str_list, write_string, ObjectWriter};
use crate::request::Field;
use hmac::digest::KeyInit;
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

/// One audit record (§5.2). Its canonical JSON, its hash and
/// [`for_each_field`](AuditRecord::for_each_field) all walk one table of keys,
/// [`RecordKey::ALL`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AuditRecord {
    /// Sequence number, from 0.
    pub seq: u64,
    /// Resolved request time, UTC with milliseconds.
    pub time: String,
    /// The calling agent's id.
    pub agent: String,
    /// The ancestor agents, outermost first (omitted when empty).
    pub chain: Vec<String>,
    /// The tool called.
    pub tool: String,
    /// The tool's operation, when the request named one.
    pub action: Option<String>,
    /// The request's session, when it named one.
    pub session: Option<String>,
    /// The request's environment, when it named one.
    pub environment: Option<String>,
    /// Hex SHA-256 of the canonical JSON of `params`.
    pub params_sha256: String,
    /// The decision's outcome (`None` only in a record built by hand: written `deny`).
    pub outcome: Option<crate::policy::Outcome>,
    /// The determining rules (`default`, `kill:…` and `limit:…` included).
    pub rules: Vec<String>,
    /// The decision's reason.
    pub reason: String,
    /// The approval id (approval outcomes, and grants).
    pub approval_id: Option<String>,
    /// Who approved, when a grant allowed the call.
    pub approved_by: Option<String>,
    /// Number of decision errors (omitted when 0).
    pub errors: usize,
    /// Limit states (omitted when none matched).
    pub limits: Vec<LimitState>,
    /// The session's live marks after the call, sorted (§10; omitted when empty).
    pub marks: Vec<String>,
    /// Signing key id (signed records only).
    pub kid: Option<String>,
    /// The hash of the bundle that decided.
    pub policy: String,
    /// Hash of the previous record ([`GENESIS`] for the first).
    pub prev: String,
    /// This record's hash: hex SHA-256 of its canonical JSON without `hash` and `sig`.
    pub hash: String,
    /// HMAC signature of `hash` (signed records only).
    pub sig: Option<String>,
}

/// How many keys [`RecordKey::is_chain`] holds for: the places a record's
/// serialisation leaves open until it is chained.
const CHAIN_KEYS: usize = 4;

/// What [`RecordKey::each`] calls for every key (implementations mark `key`
/// `#[inline(always)]`).
trait KeyVisitor {
    fn key(&mut self, key: RecordKey);
}

/// Declares the table: the enum, [`RecordKey::ALL`] and [`RecordKey::each`] from one
/// list.
macro_rules! record_keys {
    ($($(#[$doc:meta])* $key:ident),* $(,)?) => {
        /// A key of an audit record. [`RecordKey::ALL`] is the one table the record's
        /// canonical JSON (hashed and sealed forms), the engine's sealing and
        /// [`AuditRecord::for_each_field`] are derived from.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum RecordKey {
            $($(#[$doc])* $key,)*
        }

        impl RecordKey {
            /// Every key, in canonical (RFC 8785) order — asserted by a test.
            pub const ALL: [RecordKey; 23] = [$(RecordKey::$key),*];

            /// Calls `v.key` with every key of [`ALL`](Self::ALL), in order, unrolled:
            /// each (inlined) call sees its key as a constant, so a record is
            /// serialised as straight-line code (the engine's hot path).
            #[inline(always)]
            fn each<V: KeyVisitor>(v: &mut V) {
                $( v.key(RecordKey::$key); )*
            }
        }
    };
}

record_keys!(
    /// `action` (a request field).
    Action,
    /// `agent` (a request field).
    Agent,
    /// `approval_id`: the approval a require_approval decision waits for.
    ApprovalId,
    /// `approved_by`: who granted the approval that allowed the call.
    ApprovedBy,
    /// `chain` (a request field).
    Chain,
    /// `environment` (a request field).
    Environment,
    /// `errors`: how many errors the decision listed.
    Errors,
    /// `hash` (a seal key: not hashed).
    Hash,
    /// `kid`: the signing key's id (signed records).
    Kid,
    /// `limits`: the matched limits' states after the call.
    Limits,
    /// `marks`: the session's live marks after the call (§10).
    Marks,
    /// `outcome`: `allow`, `deny` or `require_approval`.
    Outcome,
    /// `params_sha256`: the hash standing in for the params (never recorded).
    ParamsSha256,
    /// `policy`: the hash of the bundle that decided.
    Policy,
    /// `prev` (a chain key).
    Prev,
    /// `reason`: the decision's reason.
    Reason,
    /// `rules`: the determining rules.
    Rules,
    /// `seq` (a chain key).
    Seq,
    /// `session` (a request field).
    Session,
    /// `sig` (a seal key: not hashed).
    Sig,
    /// `time` (the request time as resolved).
    Time,
    /// `tool` (a request field).
    Tool,
    /// `v`: the record format version, 1.
    V,
);

impl RecordKey {
    /// The key as written in the record (request fields take their name from the
    /// request-field table).
    pub const fn name(self) -> &'static str {
        match self {
            RecordKey::Action => Field::Action.name(),
            RecordKey::Agent => Field::Agent.name(),
            RecordKey::Chain => Field::Chain.name(),
            RecordKey::Environment => Field::Environment.name(),
            RecordKey::Session => Field::Session.name(),
            RecordKey::Time => Field::Time.name(),
            RecordKey::Tool => Field::Tool.name(),
            RecordKey::ApprovalId => "approval_id",
            RecordKey::ApprovedBy => "approved_by",
            RecordKey::Errors => "errors",
            RecordKey::Hash => "hash",
            RecordKey::Kid => "kid",
            RecordKey::Limits => "limits",
            RecordKey::Marks => "marks",
            RecordKey::Outcome => "outcome",
            RecordKey::ParamsSha256 => "params_sha256",
            RecordKey::Policy => "policy",
            RecordKey::Prev => "prev",
            RecordKey::Reason => "reason",
            RecordKey::Rules => "rules",
            RecordKey::Seq => "seq",
            RecordKey::Sig => "sig",
            RecordKey::V => "v",
        }
    }

    /// The request field ([`Field::in_record`]) this key records, if any.
    pub const fn request_field(self) -> Option<Field> {
        match self {
            RecordKey::Action => Some(Field::Action),
            RecordKey::Agent => Some(Field::Agent),
            RecordKey::Chain => Some(Field::Chain),
            RecordKey::Environment => Some(Field::Environment),
            RecordKey::Session => Some(Field::Session),
            RecordKey::Time => Some(Field::Time),
            RecordKey::Tool => Some(Field::Tool),
            _ => None,
        }
    }

    /// Whether the key is known only once the record is chained (`hash`, `prev`,
    /// `seq`, `sig`): the engine serialises everything else outside its chain lock.
    pub const fn is_chain(self) -> bool {
        matches!(self, RecordKey::Hash | RecordKey::Prev | RecordKey::Seq | RecordKey::Sig)
    }

    /// Whether the key is left out of the hashed form (`hash`, `sig`).
    pub const fn is_seal(self) -> bool {
        matches!(self, RecordKey::Hash | RecordKey::Sig)
    }
}

/// A record value, borrowed from the record, as [`AuditRecord::for_each_field`]
/// gives it (a binding builds its native record from these).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum RecordValue<'a> {
    /// A string.
    Str(&'a str),
    /// A non-negative integer (`seq`, `errors`, `v`).
    U64(u64),
    /// A list of strings (`chain`, `rules`).
    StrList(&'a [String]),
    /// The limit states, each the object `{calls, id, sum?}`.
    Limits(&'a [LimitState]),
}

impl RecordValue<'_> {
    /// Appends the value as canonical JSON.
    #[inline(always)]
    pub fn write_json(&self, out: &mut String) {
        match *self {
            RecordValue::Str(s) => write_string(out, s),
            RecordValue::U64(n) => push_u64(out, n),
            RecordValue::StrList(items) => write_str_list(out, items),
            RecordValue::Limits(limits) => write_limits(out, limits),
        }
    }
}

/// Appends limit states: `[{"calls","id","sum"?}…]`.
fn write_limits(out: &mut String, limits: &[LimitState]) {
    out.push('[');
    for (i, l) in limits.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let mut w = ObjectWriter::new(out);
        push_u64(w.key("calls"), l.calls);
        w.string("id", &l.id);
        if let Some(sum) = l.sum {
            write_number(w.key("sum"), sum);
        }
        w.finish();
    }
    out.push(']');
}

impl AuditRecord {
    /// The value of `key`, or `None` where the record leaves the key out (§5.2): an
    /// absent optional field, an empty `chain` or `limits`, `errors` of 0.
    #[inline(always)]
    pub fn get(&self, key: RecordKey) -> Option<RecordValue<'_>> {
        use RecordValue::{Str, StrList, U64};
        Some(match key {
            RecordKey::Action => Str(self.action.as_deref()?),
            RecordKey::Agent => Str(&self.agent),
            RecordKey::ApprovalId => Str(self.approval_id.as_deref()?),
            RecordKey::ApprovedBy => Str(self.approved_by.as_deref()?),
            RecordKey::Chain if self.chain.is_empty() => return None,
            RecordKey::Chain => StrList(&self.chain),
            RecordKey::Environment => Str(self.environment.as_deref()?),
            RecordKey::Errors if self.errors == 0 => return None,
            RecordKey::Errors => U64(self.errors as u64),
            RecordKey::Hash => Str(&self.hash),
            RecordKey::Kid => Str(self.kid.as_deref()?),
            RecordKey::Limits if self.limits.is_empty() => return None,
            RecordKey::Limits => RecordValue::Limits(&self.limits),
            RecordKey::Marks if self.marks.is_empty() => return None,
            RecordKey::Marks => StrList(&self.marks),
            // Only a record built by hand has no outcome; it reads as the outcome
            // that never lets a call run.
            RecordKey::Outcome => Str(self.outcome.map_or("deny", crate::policy::Outcome::as_str)),
            RecordKey::ParamsSha256 => Str(&self.params_sha256),
            RecordKey::Policy => Str(&self.policy),
            RecordKey::Prev => Str(&self.prev),
            RecordKey::Reason => Str(&self.reason),
            RecordKey::Rules => StrList(&self.rules),
            RecordKey::Seq => U64(self.seq),
            RecordKey::Session => Str(self.session.as_deref()?),
            RecordKey::Sig => Str(self.sig.as_deref()?),
            RecordKey::Time => Str(&self.time),
            RecordKey::Tool => Str(&self.tool),
            RecordKey::V => U64(1),
        })
    }

    /// Calls `f` with every key and value of the sealed record, in canonical order:
    /// exactly the members of [`to_json`](Self::to_json).
    pub fn for_each_field(&self, mut f: impl FnMut(&'static str, RecordValue<'_>)) {
        for key in RecordKey::ALL {
            if let Some(v) = self.get(key) {
                f(key.name(), v);
            }
        }
    }

    /// Appends the record's canonical JSON; `sealed` includes `hash` and `sig` (without
    /// them, it is the text the hash is computed over).
    pub fn write_json(&self, out: &mut String, sealed: bool) {
        /// Writes each member (the seal keys only when sealed).
        struct Members<'r, 'o> {
            rec: &'r AuditRecord,
            w: ObjectWriter<'o>,
            sealed: bool,
        }
        impl KeyVisitor for Members<'_, '_> {
            #[inline(always)]
            fn key(&mut self, key: RecordKey) {
                if self.sealed || !key.is_seal() {
                    if let Some(v) = self.rec.get(key) {
                        v.write_json(self.w.key(key.name()));
                    }
                }
            }
        }
        let mut m = Members { rec: self, w: ObjectWriter::new(out), sealed };
        RecordKey::each(&mut m);
        m.w.finish();
    }

    /// The sealed record as one line of canonical JSON.
    pub fn to_json(&self) -> String {
        let mut s = String::with_capacity(640);
        self.write_json(&mut s, true);
        s
    }

    /// Computes `hash` (and `sig` when a key is given) from the other fields.
    pub fn seal(&mut self, signing_key: Option<&[u8]>) {
        let mut unsealed = String::with_capacity(640);
        self.write_json(&mut unsealed, false);
        self.hash = sha256_hex(unsealed.as_bytes());
        self.sig = signing_key.map(|k| hmac_hex(k, self.hash.as_bytes()));
    }

    /// Serialises every key but the chain keys ([`RecordKey::is_chain`]) into `buf`
    /// (cleared first, a buffer the caller reuses: [`Segments::into_buf`]), leaving
    /// the places of the chain keys open. The engine then hashes the part before
    /// `prev` outside its chain lock and only the short tail inside it.
    pub(crate) fn segments_in(&self, mut buf: String) -> Segments {
        buf.clear();
        buf.reserve(512);
        /// Writes each member but the chain keys, noting where those go.
        struct Open<'r, 'o> {
            rec: &'r AuditRecord,
            w: ObjectWriter<'o>,
            cuts: [usize; CHAIN_KEYS],
            next: usize,
        }
        impl KeyVisitor for Open<'_, '_> {
            #[inline(always)]
            fn key(&mut self, key: RecordKey) {
                if key.is_chain() {
                    // Four chain keys, four cuts: a cut left at 0 is caught by `parts`.
                    if let Some(cut) = self.cuts.get_mut(self.next) {
                        *cut = self.w.len();
                    }
                    self.next += 1;
                } else if let Some(v) = self.rec.get(key) {
                    v.write_json(self.w.key(key.name()));
                }
            }
        }
        let mut o = Open { rec: self, w: ObjectWriter::new(&mut buf), cuts: [0; CHAIN_KEYS], next: 0 };
        RecordKey::each(&mut o);
        let Open { w, cuts, .. } = o;
        w.finish();
        Segments { buf, cuts }
    }

    /// Finishes sealing from `seg` (this record's segments): `head` has absorbed
    /// [`Segments::parts`]' head; adds `prev`, `seq` and the rest, and sets `hash` and
    /// `sig`.
    pub(crate) fn seal_from(
        &mut self,
        seg: &Segments,
        mut head: Sha256,
        signing_key: Option<&[u8]>,
    ) -> Result<(), SegmentError> {
        let mut tail = String::with_capacity(seg.buf.len() + 96);
        seg.write_tail(&mut tail, self, None)?;
        head.update(tail.as_bytes());
        let mut hash = String::with_capacity(64);
        hex_into(&mut hash, &head.finalize());
        self.hash = hash;
        self.sig = signing_key.map(|k| hmac_hex(k, self.hash.as_bytes()));
        Ok(())
    }
}

/// The segments of a record do not fit together: a bug, never a property of the
/// record (the evaluation fails rather than hash or write a wrong record).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("record segments are inconsistent: {0}")]
pub struct SegmentError(&'static str);

/// A record serialised around its chain keys (see [`AuditRecord::segments_in`]): the
/// buffer and, for each chain key in table order (`hash`, `prev`, `seq`, `sig`), the
/// offset where it goes.
pub(crate) struct Segments {
    buf: String,
    cuts: [usize; CHAIN_KEYS],
}

/// The five pieces of a record's serialisation between its chain keys.
struct Parts<'s> {
    /// `{` … up to `hash`.
    before_hash: &'s str,
    /// `hash` … up to `prev`.
    before_prev: &'s str,
    /// `prev` … up to `seq`.
    before_seq: &'s str,
    /// `seq` … up to `sig`.
    before_sig: &'s str,
    /// `sig` … `}`.
    rest: &'s str,
}

impl Segments {
    /// The buffer, for reuse.
    pub(crate) fn into_buf(self) -> String {
        self.buf
    }

    /// Bytes serialised (every key but the chain keys).
    pub(crate) fn len(&self) -> usize {
        self.buf.len()
    }

    /// The pieces between the chain keys; fails unless the cuts lie in order within
    /// the buffer, on character boundaries, after at least one key.
    fn parts(&self) -> Result<Parts<'_>, SegmentError> {
        let [h, p, s, g] = self.cuts;
        let bad = SegmentError("a cut is out of order or out of range");
        let (rest, after_sig) = self.buf.split_at_checked(g).ok_or(bad.clone())?;
        let (rest, after_seq) = rest.split_at_checked(s).ok_or(bad.clone())?;
        let (rest, after_prev) = rest.split_at_checked(p).ok_or(bad.clone())?;
        let (before_hash, after_hash) = rest.split_at_checked(h).ok_or(bad)?;
        // The chain keys are written with a leading comma: a key must come first.
        if before_hash.len() <= 1 {
            return Err(SegmentError("no key before the chain keys"));
        }
        Ok(Parts {
            before_hash,
            before_prev: after_hash,
            before_seq: after_prev,
            before_sig: after_seq,
            rest: after_sig,
        })
    }

    /// Feeds everything before `prev` in the hashed form (which has no `hash`) to `h`.
    pub(crate) fn hash_head(&self, h: &mut Sha256) -> Result<(), SegmentError> {
        let p = self.parts()?;
        h.update(p.before_hash.as_bytes());
        h.update(p.before_prev.as_bytes());
        Ok(())
    }

    /// Feeds the hashed form's tail (`prev` … end) for this `prev` and `seq` to `h`,
    /// exactly the bytes [`write_tail`](Self::write_tail) would write without `sig`,
    /// with no allocation for a hex `prev` (it runs under the engine's chain lock).
    pub(crate) fn hash_tail(&self, h: &mut Sha256, prev: &str, seq: u64) -> Result<(), SegmentError> {
        let p = self.parts()?;
        if all_hex(prev.as_bytes()) {
            h.update(b",\"prev\":\"");
            h.update(prev.as_bytes());
            h.update(b"\"");
        } else {
            // Never for a real chain (prev is hex); kept exact for any string.
            let mut prev_json = String::from(",\"prev\":");
            write_string(&mut prev_json, prev);
            h.update(prev_json.as_bytes());
        }
        h.update(p.before_seq.as_bytes());
        h.update(b",\"seq\":");
        let mut digits = [0u8; 20];
        h.update(u64_digits(seq, &mut digits));
        h.update(p.before_sig.as_bytes());
        h.update(p.rest.as_bytes());
        Ok(())
    }

    /// Appends `prev` … end; with `sig`, the sealed form's tail.
    fn write_tail(&self, out: &mut String, rec: &AuditRecord, sig: Option<&str>) -> Result<(), SegmentError> {
        let p = self.parts()?;
        chain_member(out, RecordKey::Prev, RecordValue::Str(&rec.prev));
        out.push_str(p.before_seq);
        chain_member(out, RecordKey::Seq, RecordValue::U64(rec.seq));
        out.push_str(p.before_sig);
        if let Some(s) = sig {
            chain_member(out, RecordKey::Sig, RecordValue::Str(s));
        }
        out.push_str(p.rest);
        Ok(())
    }

    /// Appends the whole record; `sealed` adds `hash` and `sig`.
    pub(crate) fn write(&self, out: &mut String, rec: &AuditRecord, sealed: bool) -> Result<(), SegmentError> {
        let p = self.parts()?;
        out.push_str(p.before_hash);
        if sealed {
            chain_member(out, RecordKey::Hash, RecordValue::Str(&rec.hash));
        }
        out.push_str(p.before_prev);
        self.write_tail(out, rec, if sealed { rec.sig.as_deref() } else { None })
    }
}

/// Appends `,"key":value` for a chain key (never the first key of a record).
fn chain_member(out: &mut String, key: RecordKey, v: RecordValue<'_>) {
    out.push(',');
    write_string(out, key.name());
    out.push(':');
    v.write_json(out);
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

/// Appends `bytes` as lower-case hex: the one hex encoder (digests, the policy hash,
/// approval ids). No allocation when `out` has the capacity.
pub fn hex_into(out: &mut String, bytes: &[u8]) {
    /// `0`–`9`, `a`–`f` without a branch: 39 more from 10 on (`'a' - '0' - 10`).
    fn digit(nibble: u8) -> u8 {
        let letter = ((9i8 - nibble as i8) >> 7) as u8 & 39;
        b'0' + nibble + letter
    }
    out.reserve(bytes.len() * 2);
    // 32 input bytes (one SHA-256 digest) per chunk, pushed as one string.
    for chunk in bytes.chunks(32) {
        let mut buf = [0u8; 64];
        for (pair, &b) in buf.chunks_exact_mut(2).zip(chunk) {
            pair.copy_from_slice(&[digit(b >> 4), digit(b & 15)]);
        }
        let (used, _) = buf.split_at(chunk.len() * 2);
        push_ascii(out, used);
    }
}

/// Appends bytes that are ASCII by construction (hex digits, a formatted time): as
/// one string when they validate — always — else byte by byte, the same text.
pub(crate) fn push_ascii(out: &mut String, bytes: &[u8]) {
    match std::str::from_utf8(bytes) {
        Ok(s) => out.push_str(s),
        Err(_) => out.extend(bytes.iter().map(|&b| char::from(b))),
    }
}

/// Lower-case hex SHA-256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(64);
    hex_into(&mut out, &Sha256::digest(bytes));
    out
}

/// HMAC-SHA256 keyed with `key`. Built from the key block HMAC itself derives (RFC
/// 2104: the key zero-padded to the hash's 64-byte block, or its SHA-256 when
/// longer), so that keying cannot fail whatever the key's length.
pub(crate) fn hmac_sha256(key: &[u8]) -> Hmac<Sha256> {
    let mut block = hmac::digest::Key::<Hmac<Sha256>>::default();
    if key.len() > block.len() {
        block.iter_mut().zip(Sha256::digest(key)).for_each(|(d, s)| *d = s);
    } else {
        block.iter_mut().zip(key).for_each(|(d, s)| *d = *s);
    }
    <Hmac<Sha256> as KeyInit>::new(&block)
}

/// Lower-case hex HMAC-SHA256.
pub fn hmac_hex(key: &[u8], msg: &[u8]) -> String {
    let mut out = String::with_capacity(64);
    hex_into(&mut out, &hmac_bytes(key, msg));
    out
}

/// Raw HMAC-SHA256.
pub fn hmac_bytes(key: &[u8], msg: &[u8]) -> [u8; 32] {
    let mut m = hmac_sha256(key);
    m.update(msg);
    m.finalize().into_bytes().into()
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
        /// The audit file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The audit file cannot be opened or resumed.
    #[error("cannot open audit file `{path}`: {message}")]
    Open {
        /// The audit file.
        path: String,
        /// Why it cannot be used (in use, last record invalid, …).
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

    fn full_record() -> AuditRecord {
        AuditRecord {
            seq: 3,
            time: "2026-01-05T10:00:00.000Z".into(),
            agent: "a".into(),
            chain: vec!["s".into()],
            tool: "t".into(),
            action: Some("x".into()),
            session: Some("s1".into()),
            environment: Some("prod".into()),
            params_sha256: "p".into(),
            outcome: Some(crate::policy::Outcome::Allow),
            rules: vec!["r".into()],
            reason: "why \"quoted\"\n".into(),
            approval_id: Some("apr_x".into()),
            approved_by: Some("bob".into()),
            errors: 2,
            limits: vec![
                LimitState { id: "l".into(), calls: 1, sum: Some(2.5) },
                LimitState { id: "m".into(), calls: 7, sum: None },
            ],
            marks: vec!["pii".into(), "untrusted".into()],
            kid: Some("k".into()),
            policy: "h".into(),
            prev: GENESIS.into(),
            hash: "hh".into(),
            sig: Some("ss".into()),
        }
    }

    /// Records with every optional key present or absent, in every combination of
    /// a few.
    fn records() -> Vec<AuditRecord> {
        let mut out = Vec::new();
        for mask in 0u32..512 {
            let mut r = full_record();
            let on = |b: u32| mask & (1 << b) != 0;
            if on(0) {
                r.action = None;
            }
            if on(1) {
                r.chain.clear();
            }
            if on(2) {
                r.approval_id = None;
                r.approved_by = None;
            }
            if on(3) {
                r.environment = None;
                r.session = None;
            }
            if on(4) {
                r.errors = 0;
            }
            if on(5) {
                r.kid = None;
                r.sig = None;
            }
            if on(6) {
                r.limits.clear();
            }
            if on(7) {
                r.prev = "not hex \u{1}".into();
            }
            if on(8) {
                r.outcome = None;
                r.seq = u64::MAX;
            }
            out.push(r);
        }
        out
    }

    #[test]
    fn record_keys_are_one_sorted_table() {
        let names: Vec<&str> = RecordKey::ALL.iter().map(|k| k.name()).collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(names, sorted, "RecordKey::ALL is in canonical order, without repeats");
        assert_eq!(RecordKey::ALL.iter().filter(|k| k.is_chain()).count(), CHAIN_KEYS);
        // The request fields a record carries are exactly the table's record fields.
        let mut from_keys: Vec<Field> = RecordKey::ALL.iter().filter_map(|k| k.request_field()).collect();
        from_keys.sort();
        let from_fields: Vec<Field> = Field::ALL.into_iter().filter(|f| f.in_record()).collect();
        assert_eq!(from_keys, from_fields);
        for k in RecordKey::ALL {
            if let Some(f) = k.request_field() {
                assert_eq!(k.name(), f.name());
            }
        }
    }

    #[test]
    fn keys_are_in_canonical_order() {
        let rec = full_record();
        let line = rec.to_json();
        let v = crate::json::parse(&line, 8).unwrap();
        assert_eq!(v.to_canonical_json(), line);
        let mut unsealed = String::new();
        rec.write_json(&mut unsealed, false);
        assert!(!unsealed.contains("\"hash\"") && !unsealed.contains("\"sig\""));
        assert_eq!(crate::json::parse(&unsealed, 8).unwrap().to_canonical_json(), unsealed);
    }

    /// The engine's segmented path (hash the head, then the tail under the chain
    /// lock) writes and hashes exactly what walking the table writes.
    #[test]
    fn segments_agree_with_the_table_walk() {
        for rec in records() {
            let seg = rec.segments_in(String::from("left over"));
            let mut sealed = String::new();
            seg.write(&mut sealed, &rec, true).unwrap();
            assert_eq!(sealed, rec.to_json());
            let mut unsealed = String::new();
            seg.write(&mut unsealed, &rec, false).unwrap();
            let mut walked = String::new();
            rec.write_json(&mut walked, false);
            assert_eq!(unsealed, walked);
            let mut h = Sha256::new();
            seg.hash_head(&mut h).unwrap();
            seg.hash_tail(&mut h, &rec.prev, rec.seq).unwrap();
            let mut hash = String::new();
            hex_into(&mut hash, &h.finalize());
            assert_eq!(hash, sha256_hex(walked.as_bytes()));
            let mut a = rec.clone();
            a.seal(Some(b"key"));
            let mut b = rec.clone();
            let mut head = Sha256::new();
            seg.hash_head(&mut head).unwrap();
            b.seal_from(&seg, head, Some(b"key")).unwrap();
            assert_eq!((a.hash.as_str(), a.sig.as_deref()), (b.hash.as_str(), b.sig.as_deref()));
            assert_eq!(a.hash, hash);
            // for_each_field gives the members of to_json, in order.
            let mut members = String::from("{");
            rec.for_each_field(|k, v| {
                if members.len() > 1 {
                    members.push(',');
                }
                write_string(&mut members, k);
                members.push(':');
                v.write_json(&mut members);
            });
            members.push('}');
            assert_eq!(members, rec.to_json());
        }
    }

    #[test]
    fn broken_segments_fail_instead_of_writing() {
        let rec = full_record();
        for cuts in [[0, 0, 0, 0], [10, 5, 20, 30], [1, 2, 3, 100_000], [1, 2, 3, 4]] {
            let seg = Segments { buf: rec.segments_in(String::new()).into_buf(), cuts };
            let mut out = String::new();
            assert!(seg.write(&mut out, &rec, true).is_err(), "{cuts:?}");
            assert!(seg.hash_tail(&mut Sha256::new(), GENESIS, 0).is_err(), "{cuts:?}");
            assert!(rec.clone().seal_from(&seg, Sha256::new(), None).is_err(), "{cuts:?}");
        }
    }

    #[test]
    fn hex_encodes_every_byte() {
        let bytes: Vec<u8> = (0..=255u8).chain(0..=255u8).collect();
        let mut s = String::new();
        hex_into(&mut s, &bytes);
        let want: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(s, want);
    }

    #[test]
    fn hmac_known_answer() {
        // RFC 4231 test case 2.
        assert_eq!(
            hmac_hex(b"Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        // Test case 1 (a 20-byte key) and 6 (a 131-byte key, hashed first).
        assert_eq!(
            hmac_hex(&[0x0b; 20], b"Hi There"),
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"
        );
        assert_eq!(
            hmac_hex(&[0xaa; 131], b"Test Using Larger Than Block-Size Key - Hash Key First"),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
        // Exactly one block, and an empty key.
        for key in [&[7u8; 64][..], &[][..]] {
            let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap();
            m.update(b"msg");
            assert_eq!(hmac_bytes(key, b"msg"), <[u8; 32]>::from(m.finalize().into_bytes()));
        }
        assert_eq!(sha256_hex(b"abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }
}
