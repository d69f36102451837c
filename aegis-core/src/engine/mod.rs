//! The engine: decides requests (§4), keeps the audit chain (§5), kill switches
//! (§6.1), approvals (§6.2), limits (§6.3) and reloads (§6.4).

mod decision;
pub mod grant;
pub mod limits;
pub mod marks;
mod phases;
mod shared;
pub mod state;

use crate::audit::{default_kid, hex_into, hmac_hex, sha256_hex, AuditError, AuditRecord, AuditSink, Durable, GENESIS};
use crate::compile::{Index, Proven};
use crate::eval::Ctx;
use crate::key::{Key, KeyId};
use crate::policy::{self, Bundle, LoadErrors};
use crate::request::{check_name, Field, Request, RequestError, RequestLimits};
use crate::time::{self, Millis};
use arc_swap::ArcSwap;
use sha2::{Digest, Sha256};
use state::StateFailure;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};

pub use decision::{Approval, Decision, DecisionError, DecisionKey, ExplainEntry};
pub use grant::{issue_grant, parse_ttl, Grant, GrantRejection};

/// A bundle compiled for evaluation.
pub struct Compiled {
    /// The bundle the index was built over.
    pub bundle: Bundle,
    index: Index,
    /// Whether some rule tests `session.marks` or has marks (else no call reads the
    /// mark table).
    touches_marks: bool,
}

impl Compiled {
    /// Builds the index over a bundle.
    pub fn new(bundle: Bundle) -> Compiled {
        let index = Index::build(&bundle);
        let touches_marks = bundle.rules.iter().any(|r| r.reads_marks || !r.marks.is_empty());
        Compiled { bundle, index, touches_marks }
    }

    /// The candidate rules (indices into `bundle.rules`, in bundle order) the index
    /// yields for these names.
    pub fn candidates(&self, agent: &str, tool: &str, action: Option<&str>) -> &[u32] {
        self.index.candidates(agent, tool, action)
    }

    /// The candidates as `evaluate` gets them: with the selector fields they are
    /// known to match ([`Index::lookup`]).
    pub fn lookup(&self, agent: &str, tool: &str, action: Option<&str>) -> (&[u32], Proven) {
        self.index.lookup(agent, tool, action)
    }

    /// [`lookup`](Self::lookup) for an evaluation: refused when the index was built
    /// over a bundle with another number of rules — it is not this bundle's index,
    /// and its candidates could name the wrong rules or miss one.
    fn checked_lookup(&self, req: &Request) -> Result<(&[u32], Proven), EvalError> {
        let (built, have) = (self.index.rule_count(), self.bundle.rules.len());
        if built != have {
            return Err(EvalError::invariant(format!("the index was built over {built} rules, the bundle has {have}")));
        }
        Ok(self.index.lookup(&req.agent, &req.tool, req.action.as_deref()))
    }
}

/// How an engine is built (the bindings make one from an
/// [`EngineConfig`](crate::EngineConfig) document).
pub struct EngineOptions {
    /// HMAC key for record signatures.
    pub signing_key: Option<Key>,
    /// Key id written as `kid` (default: first 16 hex of SHA-256(key)).
    pub signing_key_id: Option<KeyId>,
    /// HMAC key for approval grants.
    pub approval_key: Option<Key>,
    /// Bounds on a request's size and depth (§1).
    pub request_limits: RequestLimits,
    /// Most limit counters kept (beyond it, new counters fail closed).
    pub max_limit_counters: usize,
    /// Most sessions with live marks kept (§10; beyond it, `state:full`).
    pub max_sessions: usize,
    /// The ttl of a mark written without one, in milliseconds (`marks_ttl`, 24h).
    pub marks_ttl_ms: i64,
    /// Where records go (none: records are only returned in decisions).
    pub sinks: Vec<Box<dyn AuditSink>>,
    /// The clock, for requests without `time` and for grants (default: system time).
    pub clock: Option<Arc<dyn Fn() -> Millis + Send + Sync>>,
    /// A fleet's store (§11; `aegis-fleet` connects one): kill switches, limit
    /// counters, used grants and session marks are then the fleet's. `None`: they are
    /// this engine's own (the memory state).
    pub state: Option<Arc<dyn state::SharedState>>,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            signing_key: None,
            signing_key_id: None,
            approval_key: None,
            request_limits: RequestLimits::default(),
            max_limit_counters: 100_000,
            max_sessions: 100_000,
            marks_ttl_ms: 86_400_000,
            sinks: Vec::new(),
            clock: None,
            state: None,
        }
    }
}

/// Kill switch scopes (§6.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KillScope {
    /// An agent, also matched anywhere in the chain.
    Agent,
    /// A tool, whoever calls it.
    Tool,
    /// A session (conversation or run), whatever it calls.
    Session,
    /// Everything (id `*`).
    All,
}

impl KillScope {
    /// Parses `agent`, `tool`, `session` or `all`.
    pub fn parse(s: &str) -> Option<KillScope> {
        match s {
            "agent" => Some(KillScope::Agent),
            "tool" => Some(KillScope::Tool),
            "session" => Some(KillScope::Session),
            "all" => Some(KillScope::All),
            _ => None,
        }
    }

    /// Parses a scope given as an argument (`kill`, `revive`, `aegis state`): an
    /// unknown one is refused with the one message every binding and the CLI give.
    pub fn from_arg(s: &str) -> Result<KillScope, ControlError> {
        KillScope::parse(s)
            .ok_or_else(|| ControlError::new(format!("unknown kill scope `{s}` (agent, tool, session, all)")))
    }

    /// Checks the id a kill of this scope names: `all` takes `*`; any other id is a
    /// name (no control characters, not empty).
    pub fn check_id(self, id: &str) -> Result<(), ControlError> {
        if self == KillScope::All && id != "*" {
            return Err(ControlError::new(format!("scope `all` takes the id `*`, not `{id}`")));
        }
        check_name("id", id).map_err(|e| ControlError::new(e.message))
    }

    /// The request field a kill of this scope names (`None` for `all`).
    pub fn field(self) -> Option<Field> {
        match self {
            KillScope::Agent => Some(Field::Agent),
            KillScope::Tool => Some(Field::Tool),
            KillScope::Session => Some(Field::Session),
            KillScope::All => None,
        }
    }

    /// The scope's name.
    pub fn as_str(self) -> &'static str {
        match self {
            KillScope::Agent => "agent",
            KillScope::Tool => "tool",
            KillScope::Session => "session",
            KillScope::All => "all",
        }
    }
}

/// Why `evaluate` returned no decision.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// The request breaks §1: nothing was decided or recorded.
    #[error(transparent)]
    Request(#[from] RequestError),
    /// The record could not be written: the call must not run.
    #[error(transparent)]
    Audit(#[from] AuditError),
    /// An internal invariant does not hold (a compiled index that is not its
    /// bundle's, segments of a record that do not fit): a bug, never a property of
    /// the request. Nothing was decided or recorded and the call must not run —
    /// rather than decide without a rule or record a wrong hash.
    #[error("internal invariant broken, nothing was decided: {0}")]
    Invariant(String),
}

impl EvalError {
    fn invariant(message: String) -> EvalError {
        EvalError::Invariant(message)
    }
}

impl From<crate::audit::SegmentError> for EvalError {
    fn from(e: crate::audit::SegmentError) -> EvalError {
        EvalError::Invariant(e.to_string())
    }
}

/// A refused control call (`kill`, `revive`, `grant`, `marks`, `clear_marks`): a bad
/// argument, one made from inside the engine's own audit callback, or (with fleet
/// state, §11) a store that could not be reached.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ControlError(pub String, pub ControlFault);

/// What kind of refusal a [`ControlError`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ControlFault {
    /// A bad argument (or a call from inside an audit callback: see
    /// [`ControlError::is_reentry`]).
    #[default]
    Argument,
    /// The fleet's store could not be reached in time (`state_unavailable`).
    StateUnavailable,
}

impl ControlError {
    /// A bad argument.
    pub fn new(message: impl Into<String>) -> ControlError {
        ControlError(message.into(), ControlFault::Argument)
    }

    /// The fleet's store could not be reached.
    pub fn unavailable(message: impl Into<String>) -> ControlError {
        ControlError(message.into(), ControlFault::StateUnavailable)
    }

    /// Whether the call was refused because it came from inside one of the engine's own
    /// audit callbacks (reported as `audit_failed`, like the `evaluate` it fails).
    pub fn is_reentry(&self) -> bool {
        self.0 == reentry::MESSAGE
    }
}

struct Chain {
    seq: u64,
    prev: String,
    sinks: Vec<Box<dyn AuditSink>>,
    durables: Vec<Arc<dyn Durable>>,
}

/// The policy engine. `Send + Sync`: share one across threads.
pub struct Engine {
    /// Tells this engine's audit callbacks apart from other engines' (re-entry guard).
    id: u64,
    policy: ArcSwap<Compiled>,
    source: Option<PathBuf>,
    signing_key: Option<Vec<u8>>,
    kid: Option<String>,
    approval_key: Option<Vec<u8>>,
    request_limits: RequestLimits,
    clock: Option<Arc<dyn Fn() -> Millis + Send + Sync>>,
    kills: Arc<state::KillSet>,
    state: Option<Arc<dyn state::SharedState>>,
    chain: Mutex<Chain>,
    limits: Mutex<limits::LimitTable>,
    grants: Mutex<grant::UsedGrants>,
    marks: Mutex<marks::MarkTable>,
    marks_ttl_ms: i64,
    reload_lock: Mutex<()>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// [`lock`] for the chain, which is held for a few hundred nanoseconds: spin on
/// `try_lock` a while before parking, since parking and waking a thread costs
/// microseconds — more than the hashing the lock protects.
fn lock_spinning<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    for _ in 0..200 {
        match m.try_lock() {
            Ok(g) => return g,
            Err(std::sync::TryLockError::Poisoned(p)) => return p.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => std::hint::spin_loop(),
        }
    }
    lock(m)
}

/// Per-thread scratch buffers reused across evaluations (the canonical `params` and
/// the record being sealed), so the hot path does not allocate them each time.
/// `take` leaves an empty string behind, so a re-entrant call simply allocates.
mod scratch {
    use std::cell::Cell;
    use std::thread::LocalKey;

    thread_local! {
        /// Canonical JSON of `params`.
        pub static PARAMS: Cell<String> = const { Cell::new(String::new()) };
        /// A record's serialised segments.
        pub static RECORD: Cell<String> = const { Cell::new(String::new()) };
    }

    /// Buffers larger than this are dropped rather than kept for the next call.
    const KEEP: usize = 8 << 10;

    /// The thread's buffer, emptied (a new one when it is in use or the thread is
    /// exiting).
    pub fn take(key: &'static LocalKey<Cell<String>>) -> String {
        let mut s = key.try_with(Cell::take).unwrap_or_default();
        s.clear();
        s
    }

    /// Gives a buffer back for the next call on this thread.
    pub fn put(key: &'static LocalKey<Cell<String>>, s: String) {
        if s.capacity() <= KEEP {
            let _ = key.try_with(|c| c.set(s));
        }
    }
}

/// Per-call evaluation options.
#[derive(Clone, Copy, Debug, Default)]
pub struct EvalOptions {
    /// Record an explain trace in the decision.
    pub explain: bool,
}

impl Engine {
    /// Loads a bundle from a file or directory.
    pub fn from_path(path: impl Into<PathBuf>, options: EngineOptions) -> Result<Engine, LoadErrors> {
        let path = path.into();
        let bundle = policy::load_path(&path)?;
        Ok(Engine::new(bundle, Some(path), options))
    }

    /// Loads a one-file bundle from YAML text.
    pub fn from_yaml(text: &str, options: EngineOptions) -> Result<Engine, LoadErrors> {
        let bundle = policy::load_yaml(text)?;
        Ok(Engine::new(bundle, None, options))
    }

    /// An engine over a loaded bundle. The chain resumes from the first sink that
    /// has records.
    pub fn new(bundle: Bundle, source: Option<PathBuf>, options: EngineOptions) -> Engine {
        let (seq, prev) =
            options.sinks.iter().find_map(|s| s.resume()).map_or((0, GENESIS.to_string()), |(s, h)| (s + 1, h));
        let durables = options.sinks.iter().filter_map(|s| s.durable()).collect();
        let kid = options.signing_key.as_ref().map(|k| {
            options.signing_key_id.as_ref().map_or_else(|| default_kid(k.as_bytes()), |id| id.as_str().to_owned())
        });
        static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        if let Some(st) = &options.state {
            st.policy_loaded(&bundle.hash);
        }
        Engine {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            policy: ArcSwap::from_pointee(Compiled::new(bundle)),
            source,
            signing_key: options.signing_key.map(|k| k.as_bytes().to_vec()),
            kid,
            approval_key: options.approval_key.map(|k| k.as_bytes().to_vec()),
            request_limits: options.request_limits,
            clock: options.clock,
            kills: options.state.as_ref().map_or_else(Default::default, |s| s.kills()),
            state: options.state,
            chain: Mutex::new(Chain { seq, prev, sinks: options.sinks, durables }),
            limits: Mutex::new(limits::LimitTable::new(options.max_limit_counters)),
            grants: Mutex::new(grant::UsedGrants::default()),
            marks: Mutex::new(marks::MarkTable::new(options.max_sessions)),
            marks_ttl_ms: options.marks_ttl_ms,
            reload_lock: Mutex::new(()),
        }
    }

    fn now(&self) -> Millis {
        match &self.clock {
            Some(c) => c(),
            None => time::now_millis(),
        }
    }

    /// The request bounds in force.
    pub fn request_limits(&self) -> &RequestLimits {
        &self.request_limits
    }

    /// The current policy hash. Refused from inside one of this engine's own audit
    /// callbacks, like every other call into it (§9a: the outer `evaluate` then fails
    /// with `audit_failed`).
    pub fn policy_hash(&self) -> Result<String, ControlError> {
        reentry::refuse(self.id).map_err(ControlError::new)?;
        Ok(self.policy.load().bundle.hash.clone())
    }

    /// The current compiled bundle.
    pub fn policy(&self) -> Arc<Compiled> {
        self.policy.load_full()
    }

    /// The next record's `seq` and `prev`. Refused from inside this engine's own
    /// audit callback (the chain lock is held there; the record it was handed says
    /// where the chain stands).
    pub fn chain_head(&self) -> Result<(u64, String), ControlError> {
        reentry::refuse(self.id).map_err(ControlError::new)?;
        let c = lock(&self.chain);
        Ok((c.seq, c.prev.clone()))
    }

    /// Parses request JSON and evaluates it; returns the decision line.
    pub fn evaluate_json(&self, text: &str) -> Result<String, EvalError> {
        reentry::refuse(self.id).map_err(|m| EvalError::Audit(AuditError::Callback(m.into())))?;
        let req = Request::from_json(text, &self.request_limits)?;
        Ok(self.evaluate(&req)?.to_json())
    }

    /// Decides a request and records it.
    pub fn evaluate(&self, req: &Request) -> Result<Decision, EvalError> {
        self.evaluate_with(req, EvalOptions::default())
    }

    /// Decides a request with options (explain), in phases (`engine/phases.rs`): a kill
    /// switch in force decides at once (with fleet state, a stale kill mirror before
    /// it); otherwise match rules, check limits, combine, grant, commit (with fleet
    /// state: `engine/shared.rs`, one step in the store). The decision is then sealed into the audit chain; it
    /// is returned only once its record is written.
    pub fn evaluate_with(&self, req: &Request, opts: EvalOptions) -> Result<Decision, EvalError> {
        reentry::refuse(self.id).map_err(|m| EvalError::Audit(AuditError::Callback(m.into())))?;
        let time_ms = req.time_or(|| self.now());
        let time_str = time::format_utc(time_ms);
        let compiled = self.policy.load();
        let bundle = &compiled.bundle;
        let mut params_json = scratch::take(&scratch::PARAMS);
        crate::json::write_object(&mut params_json, &req.params);
        let params_sha256 = sha256_hex(params_json.as_bytes());

        let mut d = Decision::undecided();
        // §11's order: a stale mirror, the kill switches, then rules and limits (with
        // fleet state: then the store's step and its failures).
        let stale = self.state.as_deref().and_then(|st| st.stale().map(StateFailure::unavailable));
        let facts = match (stale, self.kills.find(req), self.state.as_deref()) {
            (Some(failure), _, _) => {
                phases::deny_alone(&mut d, failure);
                phases::RecordFacts::default()
            }
            (None, Some(k), _) => {
                phases::killed(&mut d, k);
                phases::RecordFacts::default()
            }
            (None, None, Some(st)) => {
                match self.decide_shared(st, &compiled, req, &params_json, time_ms, &time_str, opts, &mut d)? {
                    Ok(facts) => facts,
                    Err(failure) => {
                        phases::deny_alone(&mut d, failure);
                        phases::RecordFacts::default()
                    }
                }
            }
            (None, None, None) => {
                let (candidates, proven) = compiled.checked_lookup(req)?;
                let phases::MarksRead { table: marks, live, unknown } =
                    phases::read_marks(&bundle.rules, candidates, compiled.touches_marks, &self.marks, req, time_ms)?;
                let session = req.session.as_deref();
                let seen = phases::MarksRead::seen(marks.is_some(), session, &live, unknown);
                let ctx = Ctx { req, time_ms, time_str: &time_str, marks: seen };
                let mut matched = phases::match_rules(&bundle.rules, candidates, proven, &ctx, opts.explain)?;
                d.errors = std::mem::take(&mut matched.errors);
                let limits = phases::check_limits(&bundle.limits, &ctx, &self.limits, &mut d.errors)?;
                phases::combine(bundle.default, &matched, &limits.exceeded, &mut d)?;
                d.explain = matched.explain.take();
                let marks = phases::MarksCommit {
                    table: marks,
                    session,
                    marking: phases::marking_rules(&matched, &d),
                    reads: matched.reads_marks,
                    default_ttl_ms: self.marks_ttl_ms,
                };
                let grant =
                    phases::grant(self.approval_key.as_deref(), &bundle.hash, req, &params_json, time_ms, &mut d);
                phases::commit(&mut d, grant, &self.grants, time_ms, limits, marks)?
            }
        };
        scratch::put(&scratch::PARAMS, params_json);
        d.audit = phases::build_record(req, time_str, params_sha256, &d, facts, self.kid.clone(), bundle.hash.clone());
        self.seal(&mut d.audit)?;
        Ok(d)
    }

    /// Phase 6b — seal: chains the record (`seq`, `prev`), computes its `hash` (and
    /// `sig` with a signing key) and hands it to every sink, in order.
    ///
    /// Guarantees: the hash covers every key but `hash` and `sig` in canonical form;
    /// the record is chained once the first sink accepts it, so a later sink's
    /// failure fails the call but never forks the chain (§9a), and a first sink's
    /// failure leaves the chain as it was; with a group-commit sink, the record is
    /// durable before this returns. Only the tail of the hash (from `prev` on) is
    /// computed under the chain lock, and without a sink nothing is allocated there:
    /// the lock is held for a few SHA-256 blocks.
    fn seal(&self, rec: &mut AuditRecord) -> Result<(), EvalError> {
        let seg = rec.segments_in(scratch::take(&scratch::RECORD));
        let mut head = Sha256::new();
        seg.hash_head(&mut head)?;
        let mut new_prev = String::with_capacity(64);
        let mut digest = None;
        let (seq, durables) = {
            let mut chain = lock_spinning(&self.chain);
            if chain.sinks.is_empty() {
                let seq = chain.seq;
                seg.hash_tail(&mut head, &chain.prev, seq)?;
                let d = head.finalize();
                hex_into(&mut new_prev, &d);
                digest = Some(d);
                rec.seq = seq;
                rec.prev = std::mem::replace(&mut chain.prev, new_prev);
                chain.seq += 1;
                (seq, Vec::new())
            } else {
                rec.seq = chain.seq;
                rec.prev.clone_from(&chain.prev);
                rec.seal_from(&seg, head, self.signing_key.as_deref())?;
                let mut line = String::with_capacity(seg.len() + 320);
                seg.write(&mut line, rec, true)?;
                // §9a: the record is chained once the first sink accepts it, so a
                // later sink's failure fails the call but never forks the chain (the
                // next record must not reuse a `seq` already in the first sink).
                let mut failed = None;
                for (i, s) in chain.sinks.iter_mut().enumerate() {
                    let written = reentry::within(self.id, || s.write(rec, &line));
                    if let Err(e) = written {
                        if i == 0 {
                            scratch::put(&scratch::RECORD, seg.into_buf());
                            return Err(e.into());
                        }
                        failed.get_or_insert(e);
                    }
                }
                chain.seq += 1;
                chain.prev.clone_from(&rec.hash);
                if let Some(e) = failed {
                    scratch::put(&scratch::RECORD, seg.into_buf());
                    return Err(e.into());
                }
                (rec.seq, chain.durables.clone())
            }
        };
        scratch::put(&scratch::RECORD, seg.into_buf());
        if let Some(d) = digest {
            let mut hash = String::with_capacity(64);
            hex_into(&mut hash, &d);
            rec.hash = hash;
        }
        if rec.sig.is_none() {
            if let Some(k) = self.signing_key.as_deref() {
                rec.sig = Some(hmac_hex(k, rec.hash.as_bytes()));
            }
        }
        for d in durables {
            d.sync_through(seq)?;
        }
        Ok(())
    }

    /// The approval id of a request under a policy with these determining rules
    /// (§4: `apr_` + the first 32 hex of SHA-256 of the canonical JSON of the policy hash, the rules and the request).
    pub fn approval_id(&self, policy_hash: &str, req: &Request, rules: &[String]) -> String {
        let mut params = String::with_capacity(128);
        crate::json::write_object(&mut params, &req.params);
        grant::approval_id(policy_hash, req, &params, rules)
    }

    /// Kills `scope`/`id` (`all` takes id `*`): the next evaluation in every thread is
    /// denied with rule `kill:SCOPE:ID`. Killing again replaces the reason. With fleet
    /// state the kill is for the whole fleet: in force here at once, and written to the
    /// store — when it cannot be, it stays in force here, is written once the store is
    /// back, and this fails with `state_unavailable`.
    pub fn kill(&self, scope: KillScope, id: &str, reason: &str) -> Result<(), ControlError> {
        reentry::refuse(self.id).map_err(ControlError::new)?;
        scope.check_id(id)?;
        let kill = state::Kill { scope, id: id.to_owned(), reason: reason.to_owned() };
        match &self.state {
            Some(st) => st.kill(kill).map_err(|f| ControlError::unavailable(f.message)),
            None => {
                self.kills.insert(kill);
                Ok(())
            }
        }
    }

    /// Lifts a kill; returns whether one was in force. With fleet state it is lifted
    /// for the whole fleet once written to the store (until then it stays in force and
    /// this fails with `state_unavailable`).
    pub fn revive(&self, scope: KillScope, id: &str) -> Result<bool, ControlError> {
        reentry::refuse(self.id).map_err(ControlError::new)?;
        scope.check_id(id)?;
        match &self.state {
            Some(st) => st.revive(scope, id).map_err(|f| ControlError::unavailable(f.message)),
            None => Ok(self.kills.remove(scope, id)),
        }
    }

    /// The kills in force (with fleet state: this member's mirror of the fleet's).
    pub fn kills(&self) -> Vec<state::Kill> {
        self.kills.list()
    }

    /// The session's live marks at the engine's clock, sorted (§10; with fleet state,
    /// the fleet's marks of the session).
    pub fn marks(&self, session: &str) -> Result<Vec<String>, ControlError> {
        reentry::refuse(self.id).map_err(ControlError::new)?;
        check_name("session", session).map_err(|e| ControlError::new(e.message))?;
        let now = self.now();
        match &self.state {
            Some(st) => {
                let marks = st.read_marks(session).map_err(|f| ControlError::unavailable(f.message))?;
                Ok(shared::live_labels(&marks, now))
            }
            None => Ok(lock(&self.marks).live(session, now)),
        }
    }

    /// Forgets the session's marks (an operator's act, §10; with fleet state, for the
    /// whole fleet); returns whether it had live ones at the engine's clock.
    pub fn clear_marks(&self, session: &str) -> Result<bool, ControlError> {
        reentry::refuse(self.id).map_err(ControlError::new)?;
        check_name("session", session).map_err(|e| ControlError::new(e.message))?;
        let now = self.now();
        match &self.state {
            Some(st) => st.clear_marks(session, now).map_err(|f| ControlError::unavailable(f.message)),
            None => Ok(lock(&self.marks).clear(session, now)),
        }
    }

    /// Issues a grant token for `approval_id`, valid for `ttl_seconds` from now.
    pub fn grant(&self, approval_id: &str, approver: &str, ttl_seconds: u64) -> Result<String, ControlError> {
        reentry::refuse(self.id).map_err(ControlError::new)?;
        let key = self.approval_key.as_deref().ok_or_else(|| ControlError::new("this engine has no approval key"))?;
        issue_grant(key, approval_id, approver, ttl_seconds, self.now())
    }

    /// Reloads the bundle from its path; on failure the old bundle stays.
    pub fn reload(&self) -> Result<(), LoadErrors> {
        Self::refuse_reentry_load(self.id)?;
        let Some(path) = &self.source else {
            return Err(LoadErrors(vec![policy::LoadError {
                loc: policy::SourceLoc { file: Arc::from("<yaml>"), line: 1, column: 1 },
                message: "this engine was loaded from text; reload it with new text".into(),
                help: None,
            }]));
        };
        let _g = lock(&self.reload_lock);
        let bundle = policy::load_path(path)?;
        self.swap(bundle);
        Ok(())
    }

    /// Replaces the bundle with one loaded from YAML text; on failure the old stays.
    pub fn reload_yaml(&self, text: &str) -> Result<(), LoadErrors> {
        Self::refuse_reentry_load(self.id)?;
        let _g = lock(&self.reload_lock);
        let bundle = policy::load_yaml(text)?;
        self.swap(bundle);
        Ok(())
    }

    fn refuse_reentry_load(id: u64) -> Result<(), LoadErrors> {
        reentry::refuse(id).map_err(|m| {
            LoadErrors(vec![policy::LoadError {
                loc: policy::SourceLoc { file: Arc::from("<reload>"), line: 1, column: 1 },
                message: m.into(),
                help: None,
            }])
        })
    }

    fn swap(&self, bundle: Bundle) {
        let ids: Vec<String> = bundle.limits.iter().map(|l| l.id.clone()).collect();
        if let Some(st) = &self.state {
            st.policy_loaded(&bundle.hash);
        }
        let compiled = Arc::new(Compiled::new(bundle));
        self.policy.store(compiled);
        let keep: Vec<&str> = ids.iter().map(String::as_str).collect();
        lock(&self.limits).retain_ids(&keep);
    }
}

/// What a call into an engine from inside one of its own audit callbacks is told.
pub const REENTRY_MESSAGE: &str = reentry::MESSAGE;

/// Calls into an engine from inside one of its own audit callbacks (§9a): the callback
/// runs under the chain lock, so such a call would deadlock or act on a half-written
/// record. It is refused, and the outer `evaluate` fails with `audit_failed`.
mod reentry {
    use std::cell::RefCell;

    /// What a refused call says.
    pub const MESSAGE: &str = "an audit callback called back into its engine; callbacks must not use the engine";

    thread_local! {
        /// The engines whose sinks are running on this thread, innermost last, and
        /// whether a callback called back into that engine.
        static ACTIVE: RefCell<Vec<(u64, bool)>> = const { RefCell::new(Vec::new()) };
    }

    /// Runs a sink write for engine `id`; fails when the sink called back into it.
    pub fn within<T>(
        id: u64,
        write: impl FnOnce() -> Result<T, crate::audit::AuditError>,
    ) -> Result<T, crate::audit::AuditError> {
        /// Pops the entry however the write ends (an unwinding sink included), so a
        /// thread is never left marked as inside a callback.
        struct Entry;
        impl Drop for Entry {
            fn drop(&mut self) {
                ACTIVE.with(|a| a.borrow_mut().pop());
            }
        }
        ACTIVE.with(|a| a.borrow_mut().push((id, false)));
        let entry = Entry;
        let out = write();
        let reentered = ACTIVE.with(|a| a.borrow().last().is_some_and(|(_, r)| *r));
        drop(entry);
        if reentered {
            return Err(crate::audit::AuditError::Callback(MESSAGE.into()));
        }
        out
    }

    /// Refuses a call into engine `id` made from inside its own sink.
    pub fn refuse(id: u64) -> Result<(), &'static str> {
        ACTIVE.with(|a| {
            let mut a = a.borrow_mut();
            match a.iter_mut().find(|(e, _)| *e == id) {
                Some(entry) => {
                    entry.1 = true;
                    Err(MESSAGE)
                }
                None => Ok(()),
            }
        })
    }
}

#[allow(dead_code)]
fn _assert_send_sync() {
    fn is<T: Send + Sync>() {}
    is::<Engine>();
}
