//! The engine: decides requests (§4), keeps the audit chain (§5), kill switches
//! (§6.1), approvals (§6.2), limits (§6.3) and reloads (§6.4).

pub mod grant;
pub mod limits;

use crate::audit::{default_kid, AuditError, AuditRecord, AuditSink, Durable, LimitState, GENESIS};
use crate::compile::Index;
use crate::eval::{self, Ctx, FailedTest, Sink, Tri};
use crate::json::{write_string, write_value};
use crate::key::{Key, KeyId};
use crate::policy::{self, Bundle, LoadErrors, Outcome, Rule};
use crate::request::{check_name, Request, RequestError, RequestLimits};
use crate::time::{self, Millis};
use crate::value::{Map, Value};
use arc_swap::ArcSwap;
use sha2::{Digest, Sha256};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

pub use grant::{Grant, GrantRejection};

/// A bundle compiled for evaluation.
pub struct Compiled {
    /// The bundle.
    pub bundle: Bundle,
    index: Index,
}

impl Compiled {
    /// Compiles a bundle.
    pub fn new(bundle: Bundle) -> Compiled {
        let index = Index::build(&bundle);
        Compiled { bundle, index }
    }

    /// The candidate rules (indices into `bundle.rules`, in bundle order) the index
    /// yields for these names.
    pub fn candidates(&self, agent: &str, tool: &str, action: Option<&str>) -> &[u32] {
        self.index.candidates(agent, tool, action)
    }

    /// The candidates as `evaluate` gets them: with the selector fields they are
    /// known to match ([`Index::lookup`]).
    pub fn lookup(&self, agent: &str, tool: &str, action: Option<&str>) -> (&[u32], crate::compile::Proven) {
        self.index.lookup(agent, tool, action)
    }
}

/// Engine configuration.
pub struct EngineOptions {
    /// HMAC key for record signatures.
    pub signing_key: Option<Key>,
    /// Key id written as `kid` (default: first 16 hex of SHA-256(key)).
    pub signing_key_id: Option<KeyId>,
    /// HMAC key for approval grants.
    pub approval_key: Option<Key>,
    /// Request bounds.
    pub request_limits: RequestLimits,
    /// Most limit counters kept (beyond it, new counters fail closed).
    pub max_limit_counters: usize,
    /// Where records go (none: records are only returned in decisions).
    pub sinks: Vec<Box<dyn AuditSink>>,
    /// The clock, for requests without `time` and for grants (default: system time).
    pub clock: Option<Arc<dyn Fn() -> Millis + Send + Sync>>,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            signing_key: None,
            signing_key_id: None,
            approval_key: None,
            request_limits: RequestLimits::default(),
            max_limit_counters: 100_000,
            sinks: Vec::new(),
            clock: None,
        }
    }
}

/// Kill switch scopes (§6.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KillScope {
    /// An agent, also matched anywhere in the chain.
    Agent,
    /// A tool.
    Tool,
    /// A session.
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

#[derive(Clone, Debug)]
struct Kill {
    scope: KillScope,
    id: String,
    reason: String,
}

/// A condition error listed in a decision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecisionError {
    /// The rule (or `limit:ID`).
    pub rule: String,
    /// The path.
    pub path: String,
    /// What went wrong.
    pub message: String,
}

/// The approval request of a `require_approval` decision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Approval {
    /// `apr_` + 32 hex.
    pub id: String,
    /// Who may approve.
    pub approvers: Vec<String>,
}

/// One candidate rule in an explain trace.
#[derive(Clone, Debug, PartialEq)]
pub struct ExplainEntry {
    /// The rule.
    pub rule: String,
    /// Its outcome.
    pub outcome: Outcome,
    /// Whether it applied.
    pub applied: bool,
    /// `true`, `false` or `error`.
    pub result: Tri,
    /// Tests that did not hold.
    pub failed: Vec<FailedTest>,
}

/// A decision (§4).
#[derive(Clone, Debug, PartialEq)]
pub struct Decision {
    /// The outcome.
    pub outcome: Outcome,
    /// Determining rules.
    pub rules: Vec<String>,
    /// Why.
    pub reason: String,
    /// Present only for `require_approval`.
    pub approval: Option<Approval>,
    /// Condition errors.
    pub errors: Vec<DecisionError>,
    /// The audit record.
    pub audit: AuditRecord,
    /// The explain trace, when asked for.
    pub explain: Option<Vec<ExplainEntry>>,
}

impl Decision {
    /// Whether the call may run.
    pub fn allowed(&self) -> bool {
        self.outcome == Outcome::Allow
    }

    /// The decision as one line of canonical JSON.
    pub fn to_json(&self) -> String {
        let mut o = String::with_capacity(1024);
        o.push('{');
        if let Some(a) = &self.approval {
            o.push_str("\"approval\":{\"approvers\":");
            str_list(&mut o, &a.approvers);
            o.push_str(",\"id\":");
            write_string(&mut o, &a.id);
            o.push_str("},");
        }
        o.push_str("\"audit\":");
        self.audit.write_json(&mut o, true);
        o.push_str(",\"errors\":[");
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                o.push(',');
            }
            o.push_str("{\"message\":");
            write_string(&mut o, &e.message);
            o.push_str(",\"path\":");
            write_string(&mut o, &e.path);
            o.push_str(",\"rule\":");
            write_string(&mut o, &e.rule);
            o.push('}');
        }
        o.push(']');
        if let Some(ex) = &self.explain {
            o.push_str(",\"explain\":");
            write_value(&mut o, &explain_value(ex));
        }
        o.push_str(",\"outcome\":");
        write_string(&mut o, self.outcome.as_str());
        o.push_str(",\"reason\":");
        write_string(&mut o, &self.reason);
        o.push_str(",\"rules\":");
        str_list(&mut o, &self.rules);
        o.push('}');
        o
    }
}

fn str_list(o: &mut String, items: &[String]) {
    o.push('[');
    for (i, s) in items.iter().enumerate() {
        if i > 0 {
            o.push(',');
        }
        write_string(o, s);
    }
    o.push(']');
}

fn tri_str(t: Tri) -> &'static str {
    match t {
        Tri::True => "true",
        Tri::False => "false",
        Tri::Error => "error",
    }
}

fn explain_value(ex: &[ExplainEntry]) -> Value {
    Value::Array(
        ex.iter()
            .map(|e| {
                let mut m = Map::new();
                m.insert("rule".into(), Value::from(e.rule.as_str()));
                m.insert("outcome".into(), Value::from(e.outcome.as_str()));
                m.insert("applied".into(), Value::Bool(e.applied));
                m.insert("result".into(), Value::from(tri_str(e.result)));
                let failed = e
                    .failed
                    .iter()
                    .map(|f| {
                        let mut t = Map::new();
                        t.insert("path".into(), Value::from(f.path.as_str()));
                        t.insert("op".into(), Value::from(f.op.as_str()));
                        t.insert("operand".into(), f.operand.clone());
                        if let Some(v) = &f.value {
                            t.insert("value".into(), v.clone());
                        }
                        t.insert("result".into(), Value::from(tri_str(f.result)));
                        Value::Object(t)
                    })
                    .collect();
                m.insert("failed".into(), Value::Array(failed));
                Value::Object(m)
            })
            .collect(),
    )
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
}

/// A bad argument to `kill`, `revive` or `grant`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ControlError(pub String);

impl ControlError {
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
    kills: RwLock<Vec<Kill>>,
    any_kill: AtomicBool,
    chain: Mutex<Chain>,
    limits: Mutex<limits::LimitTable>,
    grants: Mutex<grant::UsedGrants>,
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

/// The determining rules while combining: the first kept inline, so the usual single
/// winner costs no allocation.
#[derive(Default)]
struct Winners<'a> {
    first: Option<&'a Rule>,
    rest: Vec<&'a Rule>,
}

impl<'a> Winners<'a> {
    fn clear(&mut self) {
        self.first = None;
        self.rest.clear();
    }

    fn push(&mut self, r: &'a Rule) {
        if self.first.is_none() {
            self.first = Some(r);
        } else {
            self.rest.push(r);
        }
    }

    fn len(&self) -> usize {
        usize::from(self.first.is_some()) + self.rest.len()
    }

    fn first(&self) -> Option<&'a Rule> {
        self.first
    }

    fn iter(&self) -> impl Iterator<Item = &'a Rule> + '_ {
        self.first.into_iter().chain(self.rest.iter().copied())
    }
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

/// How to evaluate.
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
        Engine {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            policy: ArcSwap::from_pointee(Compiled::new(bundle)),
            source,
            signing_key: options.signing_key.map(|k| k.as_bytes().to_vec()),
            kid,
            approval_key: options.approval_key.map(|k| k.as_bytes().to_vec()),
            request_limits: options.request_limits,
            clock: options.clock,
            kills: RwLock::new(Vec::new()),
            any_kill: AtomicBool::new(false),
            chain: Mutex::new(Chain { seq, prev, sinks: options.sinks, durables }),
            limits: Mutex::new(limits::LimitTable::new(options.max_limit_counters)),
            grants: Mutex::new(grant::UsedGrants::default()),
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

    /// The current policy hash.
    pub fn policy_hash(&self) -> String {
        self.policy.load().bundle.hash.clone()
    }

    /// The current compiled bundle.
    pub fn policy(&self) -> Arc<Compiled> {
        self.policy.load_full()
    }

    /// The next record's `seq` and `prev`. Refused from inside this engine's own
    /// audit callback (the chain lock is held there; the record it was handed says
    /// where the chain stands).
    pub fn chain_head(&self) -> Result<(u64, String), ControlError> {
        reentry::refuse(self.id).map_err(|m| ControlError(m.into()))?;
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

    /// Decides a request with options (explain).
    pub fn evaluate_with(&self, req: &Request, opts: EvalOptions) -> Result<Decision, EvalError> {
        reentry::refuse(self.id).map_err(|m| EvalError::Audit(AuditError::Callback(m.into())))?;
        let time_ms = req.time.unwrap_or_else(|| self.now());
        let time_str = time::format_utc(time_ms);
        let compiled = self.policy.load();
        let bundle = &compiled.bundle;
        let ctx = Ctx { req, time_ms, time_str: &time_str };
        let mut params_json = scratch::take(&scratch::PARAMS);
        crate::json::write_object(&mut params_json, &req.params);
        let params_sha256 = crate::policy::hex(&Sha256::digest(params_json.as_bytes()));

        let mut d = Decision {
            outcome: Outcome::Deny,
            rules: Vec::new(),
            reason: String::new(),
            approval: None,
            errors: Vec::new(),
            audit: AuditRecord::default(),
            explain: None,
        };
        let mut approved_by = None;
        let mut approval_id = None;
        let mut limit_states = Vec::new();

        if let Some(k) = self.killed(req) {
            d.rules.push(format!("kill:{}:{}", k.scope.as_str(), k.id));
            d.reason =
                if k.reason.is_empty() { format!("killed: {} \"{}\"", k.scope.as_str(), k.id) } else { k.reason };
        } else {
            let mut trace_buf = Vec::new();
            let mut explain = opts.explain.then(Vec::new);
            let mut best: Option<Outcome> = None;
            let mut winners = Winners::default();
            let mut errs = Vec::new();
            let (candidates, proven) = compiled.index.lookup(&req.agent, &req.tool, req.action.as_deref());
            for &i in candidates {
                let Some(rule) = bundle.rules.get(i as usize) else { continue };
                errs.clear();
                trace_buf.clear();
                let tri = {
                    let trace = if explain.is_some() { Some(&mut trace_buf) } else { None };
                    let mut sink = Sink { errors: std::mem::take(&mut errs), trace };
                    let t = eval::eval_rule_proven(rule, &ctx, &mut sink, proven);
                    errs = sink.errors;
                    t
                };
                let applies = match tri {
                    Tri::True => true,
                    Tri::False => false,
                    Tri::Error => rule.outcome != Outcome::Allow,
                };
                if tri == Tri::Error {
                    for e in errs.drain(..) {
                        d.errors.push(DecisionError { rule: rule.id.clone(), path: e.path, message: e.message });
                    }
                }
                if let Some(ex) = explain.as_mut() {
                    ex.push(ExplainEntry {
                        rule: rule.id.clone(),
                        outcome: rule.outcome,
                        applied: applies,
                        result: tri,
                        failed: std::mem::take(&mut trace_buf),
                    });
                }
                if applies {
                    match best {
                        Some(b) if b > rule.outcome => {}
                        Some(b) if b == rule.outcome => winners.push(rule),
                        _ => {
                            best = Some(rule.outcome);
                            winners.clear();
                            winners.push(rule);
                        }
                    }
                }
            }
            d.explain = explain;

            // Limits whose selectors match (a missing field matches, fail closed).
            let mut matched = Vec::new();
            for l in &bundle.limits {
                let mut s = Sink { errors: Vec::new(), trace: None };
                let tri = eval::eval_selectors(&l.selectors, &ctx, &mut s, true);
                if tri != Tri::False {
                    for e in s.errors {
                        d.errors.push(DecisionError {
                            rule: format!("limit:{}", l.id),
                            path: e.path,
                            message: e.message,
                        });
                    }
                    matched.push(l);
                }
            }

            let mut limit_guard = (!matched.is_empty()).then(|| lock(&self.limits));
            // (limit, key, counter before, value to add, window end, exceeded reason)
            let mut checks = Vec::with_capacity(matched.len());
            let mut exceeded: Vec<(&policy::Limit, String)> = Vec::new();
            if let Some(table) = limit_guard.as_mut() {
                for l in &matched {
                    let window = time_ms.div_euclid(l.window.millis);
                    let window_end = window.saturating_add(1).saturating_mul(l.window.millis);
                    let key: Vec<Option<String>> = l
                        .per
                        .iter()
                        .map(|f| match f {
                            policy::Field::Agent => Some(req.agent.clone()),
                            policy::Field::Tool => Some(req.tool.clone()),
                            policy::Field::Action => req.action.clone(),
                            policy::Field::Session => req.session.clone(),
                            policy::Field::Environment => req.environment.clone(),
                        })
                        .collect();
                    let key = (l.id.clone(), key, window);
                    let lid = format!("limit:{}", l.id);
                    let (counter, unavailable) = match table.get(&key, window_end, time_ms) {
                        Ok(c) => (c, None),
                        Err(limits::CounterUnavailable::WindowClosed) => {
                            (limits::Counter::default(), Some("its window has closed"))
                        }
                        Err(limits::CounterUnavailable::Full) => {
                            (limits::Counter::default(), Some("the limit table is full"))
                        }
                    };
                    let mut add = 0.0;
                    let mut over: Option<String> = None;
                    if let Some(why) = unavailable {
                        d.errors.push(DecisionError {
                            rule: lid.clone(),
                            path: l.id.clone(),
                            message: format!("limit state unavailable: {why}"),
                        });
                        over = Some(format!("limit \"{}\" exceeded: {why}", l.id));
                    }
                    if let Some(max) = l.max_calls {
                        if counter.calls.saturating_add(1) > max && over.is_none() {
                            over =
                                Some(format!("limit \"{}\" exceeded: max_calls {} per {}", l.id, max, l.window.text));
                        }
                    }
                    if let (Some((path, text)), Some(max)) = (&l.sum, l.max_sum) {
                        let v = eval::resolve(path, &ctx);
                        let bad = match v {
                            None => Some(format!("no value at \"{text}\"")),
                            Some(eval::Seen::Val(Value::Number(n))) if *n >= 0.0 => {
                                add = *n;
                                None
                            }
                            Some(eval::Seen::Val(Value::Number(n))) => {
                                Some(format!("sum expects a number >= 0, found {}", eval::num(*n)))
                            }
                            Some(s) => Some(format!("sum expects a number, found {}", s.to_value().type_name())),
                        };
                        let sum_over = bad.is_some() || counter.sum + add > max;
                        if let Some(m) = bad {
                            d.errors.push(DecisionError { rule: lid.clone(), path: text.clone(), message: m });
                        }
                        if sum_over && over.is_none() {
                            over = Some(format!(
                                "limit \"{}\" exceeded: max_sum {} per {}",
                                l.id,
                                eval::num(max),
                                l.window.text
                            ));
                        }
                    }
                    if let Some(reason) = over {
                        exceeded.push((l, reason));
                    }
                    checks.push((*l, key, counter, add, window_end));
                }
            }

            // Combine rules and exceeded limits: deny > require_approval > allow.
            let limit_best = exceeded.iter().map(|(l, _)| l.outcome).max();
            let outcome = match (best, limit_best) {
                (None, None) => None,
                (a, b) => a.max(b),
            };
            match outcome {
                None => {
                    d.outcome = bundle.default;
                    d.rules.push("default".into());
                    d.reason = String::with_capacity(48);
                    d.reason.push_str("no rule applies; the bundle default is ");
                    d.reason.push_str(bundle.default.as_str());
                }
                Some(o) => {
                    d.outcome = o;
                    if best == Some(o) {
                        d.rules.reserve_exact(winners.len());
                        d.rules.extend(winners.iter().map(|r| r.id.clone()));
                        for r in winners.iter() {
                            for a in &r.approvers {
                                if o == Outcome::RequireApproval {
                                    let list = &mut d
                                        .approval
                                        .get_or_insert_with(|| Approval { id: String::new(), approvers: Vec::new() })
                                        .approvers;
                                    if !list.contains(a) {
                                        list.push(a.clone());
                                    }
                                }
                            }
                        }
                    }
                    for (l, _) in exceeded.iter().filter(|(l, _)| l.outcome == o) {
                        d.rules.push(format!("limit:{}", l.id));
                    }
                    d.reason = match winners.first().filter(|_| best == Some(o)) {
                        Some(r) => r.reason.clone().or_else(|| r.description.clone()).unwrap_or_else(|| {
                            // `rule "<id>" decided <outcome>`, without the formatter.
                            let o = o.as_str();
                            let mut t = String::with_capacity(r.id.len() + o.len() + 15);
                            t.push_str("rule \"");
                            t.push_str(&r.id);
                            t.push_str("\" decided ");
                            t.push_str(o);
                            t
                        }),
                        None => exceeded
                            .iter()
                            .find(|(l, _)| l.outcome == o)
                            .map(|(_, why)| why.clone())
                            .unwrap_or_default(),
                    };
                }
            }

            if d.outcome == Outcome::RequireApproval {
                let id = approval_id_with(&bundle.hash, req, &params_json, &d.rules);
                let approval = d.approval.get_or_insert_with(|| Approval { id: String::new(), approvers: Vec::new() });
                approval.id = id.clone();
                approval_id = Some(id.clone());
                if let Some(token) = &req.approval {
                    let first = d.rules.first().cloned().unwrap_or_default();
                    let checked = grant::check(self.approval_key.as_deref(), token, &id, time_ms)
                        .and_then(|c| lock(&self.grants).consume(&c, time_ms).map(|()| c));
                    match checked {
                        Ok(c) => {
                            d.outcome = Outcome::Allow;
                            d.approval = None;
                            d.reason = format!("approved by {}: {}", c.grant.by, d.reason);
                            approved_by = Some(c.grant.by);
                        }
                        Err(why) => d.errors.push(DecisionError {
                            rule: first,
                            path: "approval".into(),
                            message: why.message().into(),
                        }),
                    }
                }
            }

            if let Some(table) = limit_guard.as_mut() {
                for (l, key, mut counter, add, window_end) in checks {
                    if d.outcome == Outcome::Allow {
                        counter.calls = counter.calls.saturating_add(1);
                        counter.sum += add;
                        table.put(key, counter, window_end);
                    }
                    limit_states.push(LimitState {
                        id: l.id.clone(),
                        calls: counter.calls,
                        sum: l.max_sum.map(|_| counter.sum),
                    });
                }
            }
            drop(limit_guard);
        }

        scratch::put(&scratch::PARAMS, params_json);
        d.audit = AuditRecord {
            seq: 0,
            time: time_str,
            agent: req.agent.clone(),
            chain: req.chain.clone(),
            tool: req.tool.clone(),
            action: req.action.clone(),
            session: req.session.clone(),
            environment: req.environment.clone(),
            params_sha256,
            outcome: Some(d.outcome),
            rules: d.rules.clone(),
            reason: d.reason.clone(),
            approval_id,
            approved_by,
            errors: d.errors.len(),
            limits: limit_states,
            kid: self.kid.clone(),
            policy: bundle.hash.clone(),
            prev: String::new(),
            hash: String::new(),
            sig: None,
        };
        self.record(&mut d.audit)?;
        Ok(d)
    }

    /// Seals the record into the chain and hands it to every sink, in order. Only the
    /// tail of the hash (from `prev` on) is computed under the chain lock, and without
    /// a sink nothing is allocated there: the lock is held for a few SHA-256 blocks.
    fn record(&self, rec: &mut AuditRecord) -> Result<(), AuditError> {
        let seg = rec.segments_in(scratch::take(&scratch::RECORD));
        let mut head = Sha256::new();
        head.update(seg.head().as_bytes());
        let mut new_prev = String::with_capacity(64);
        let mut digest = None;
        let (seq, durables) = {
            let mut chain = lock_spinning(&self.chain);
            if chain.sinks.is_empty() {
                let seq = chain.seq;
                seg.hash_tail(&mut head, &chain.prev, seq);
                let d = head.finalize();
                crate::policy::hex_into(&mut new_prev, &d);
                digest = Some(d);
                rec.seq = seq;
                rec.prev = std::mem::replace(&mut chain.prev, new_prev);
                chain.seq += 1;
                (seq, Vec::new())
            } else {
                rec.seq = chain.seq;
                rec.prev.clone_from(&chain.prev);
                rec.seal_from(&seg, head, self.signing_key.as_deref());
                let mut line = String::with_capacity(seg.len() + 320);
                seg.write(&mut line, rec, true);
                // §9a: the record is chained once the first sink accepts it, so a
                // later sink's failure fails the call but never forks the chain (the
                // next record must not reuse a `seq` already in the first sink).
                let mut failed = None;
                for (i, s) in chain.sinks.iter_mut().enumerate() {
                    let written = reentry::within(self.id, || s.write(rec, &line));
                    if let Err(e) = written {
                        if i == 0 {
                            scratch::put(&scratch::RECORD, seg.into_buf());
                            return Err(e);
                        }
                        failed.get_or_insert(e);
                    }
                }
                chain.seq += 1;
                chain.prev.clone_from(&rec.hash);
                if let Some(e) = failed {
                    scratch::put(&scratch::RECORD, seg.into_buf());
                    return Err(e);
                }
                (rec.seq, chain.durables.clone())
            }
        };
        scratch::put(&scratch::RECORD, seg.into_buf());
        if let Some(d) = digest {
            rec.hash = crate::policy::hex(&d);
        }
        if rec.sig.is_none() {
            if let Some(k) = self.signing_key.as_deref() {
                rec.sig = Some(crate::audit::hmac_hex(k, rec.hash.as_bytes()));
            }
        }
        for d in durables {
            d.sync_through(seq)?;
        }
        Ok(())
    }

    /// The approval id of a request under a policy with these determining rules:
    /// `apr_` + the first 32 hex of SHA-256 of the canonical JSON of
    /// `{"policy", "request", "rules"}` (§4).
    pub fn approval_id(&self, policy_hash: &str, req: &Request, rules: &[String]) -> String {
        let mut params = String::with_capacity(128);
        crate::json::write_object(&mut params, &req.params);
        approval_id_with(policy_hash, req, &params, rules)
    }

    fn killed(&self, req: &Request) -> Option<Kill> {
        if !self.any_kill.load(Ordering::Acquire) {
            return None;
        }
        let kills = self.kills.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        let find = |scope: KillScope, id: &str| kills.iter().find(|k| k.scope == scope && k.id == id).cloned();
        find(KillScope::All, "*")
            .or_else(|| find(KillScope::Agent, &req.agent))
            .or_else(|| req.chain.iter().find_map(|a| find(KillScope::Agent, a)))
            .or_else(|| find(KillScope::Tool, &req.tool))
            .or_else(|| req.session.as_deref().and_then(|s| find(KillScope::Session, s)))
    }

    /// Kills `scope`/`id` (`all` takes id `*`): the next evaluation in every thread is
    /// denied with rule `kill:SCOPE:ID`. Killing again replaces the reason.
    pub fn kill(&self, scope: KillScope, id: &str, reason: &str) -> Result<(), ControlError> {
        reentry::refuse(self.id).map_err(|m| ControlError(m.into()))?;
        Self::check_kill_id(scope, id)?;
        let mut kills = self.kills.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        kills.retain(|k| !(k.scope == scope && k.id == id));
        kills.push(Kill { scope, id: id.to_owned(), reason: reason.to_owned() });
        self.any_kill.store(true, Ordering::Release);
        Ok(())
    }

    /// Lifts a kill; returns whether one was in force.
    pub fn revive(&self, scope: KillScope, id: &str) -> Result<bool, ControlError> {
        reentry::refuse(self.id).map_err(|m| ControlError(m.into()))?;
        Self::check_kill_id(scope, id)?;
        let mut kills = self.kills.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        let before = kills.len();
        kills.retain(|k| !(k.scope == scope && k.id == id));
        self.any_kill.store(!kills.is_empty(), Ordering::Release);
        Ok(kills.len() != before)
    }

    fn check_kill_id(scope: KillScope, id: &str) -> Result<(), ControlError> {
        if scope == KillScope::All && id != "*" {
            return Err(ControlError(format!("scope `all` takes the id `*`, not `{id}`")));
        }
        check_name("id", id).map_err(|e| ControlError(e.message))
    }

    /// Issues a grant token for `approval_id`, valid for `ttl_seconds` from now.
    pub fn grant(&self, approval_id: &str, approver: &str, ttl_seconds: u64) -> Result<String, ControlError> {
        reentry::refuse(self.id).map_err(|m| ControlError(m.into()))?;
        let key = self.approval_key.as_deref().ok_or_else(|| ControlError("this engine has no approval key".into()))?;
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
        let compiled = Arc::new(Compiled::new(bundle));
        self.policy.store(compiled);
        let keep: Vec<&str> = ids.iter().map(String::as_str).collect();
        lock(&self.limits).retain_ids(&keep);
    }
}

/// The approval id, streaming the canonical JSON (keys in RFC 8785 order) with the
/// request's params already in canonical form.
fn approval_id_with(policy_hash: &str, req: &Request, params_json: &str, rules: &[String]) -> String {
    let mut o = String::with_capacity(256 + params_json.len());
    o.push_str("{\"policy\":");
    write_string(&mut o, policy_hash);
    o.push_str(",\"request\":{");
    if let Some(a) = &req.action {
        o.push_str("\"action\":");
        write_string(&mut o, a);
        o.push(',');
    }
    o.push_str("\"agent\":");
    write_string(&mut o, &req.agent);
    o.push_str(",\"chain\":");
    str_list(&mut o, &req.chain);
    o.push_str(",\"context\":");
    match &req.context {
        Some(c) => crate::json::write_object(&mut o, c),
        None => o.push_str("{}"),
    }
    if let Some(e) = &req.environment {
        o.push_str(",\"environment\":");
        write_string(&mut o, e);
    }
    o.push_str(",\"params\":");
    o.push_str(params_json);
    if let Some(x) = &req.session {
        o.push_str(",\"session\":");
        write_string(&mut o, x);
    }
    o.push_str(",\"tool\":");
    write_string(&mut o, &req.tool);
    o.push_str("},\"rules\":");
    str_list(&mut o, rules);
    o.push('}');
    let h = crate::audit::sha256_hex(o.as_bytes());
    format!("apr_{}", h.get(..32).unwrap_or(&h))
}

/// Builds a grant token (the CLI's `aegis grant`): `exp = floor(now) + ttl`.
pub fn issue_grant(
    key: &[u8],
    approval_id: &str,
    approver: &str,
    ttl_seconds: u64,
    now_ms: Millis,
) -> Result<String, ControlError> {
    let valid_id = approval_id.len() == 36
        && approval_id.starts_with("apr_")
        && approval_id.bytes().skip(4).all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if !valid_id {
        return Err(ControlError(format!("`{approval_id}` is not an approval id (apr_ and 32 hex digits)")));
    }
    check_name("approver", approver).map_err(|e| ControlError(e.message))?;
    if ttl_seconds == 0 || ttl_seconds > 366 * 86_400 {
        return Err(ControlError("the ttl must be between 1 second and 366 days".into()));
    }
    let exp = now_ms.div_euclid(1000) + ttl_seconds as i64;
    Ok(grant::make_token(key, &Grant { by: approver.to_owned(), exp, id: approval_id.to_owned() }))
}

/// Parses a ttl: `N` seconds or `N` followed by `s`, `m`, `h` or `d`.
pub fn parse_ttl(s: &str) -> Option<u64> {
    if let Ok(n) = s.parse::<u64>() {
        return Some(n);
    }
    crate::policy::parse_duration(s).map(|ms| (ms / 1000) as u64)
}

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
