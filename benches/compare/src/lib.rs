//! The agent-tools workload (issue 10) expressed for three engines — Aegis, Cedar and
//! Regorus (Rego) — with the same three-way semantics, so that the `compare` bench can
//! check they agree on every request before timing them.
//!
//! Workload, per agent `i`: allow `payments/create` when `amount ≤ 5000` and `currency ∈
//! {USD, EUR}`; require approval when `5000 < amount ≤ 50000` with those currencies;
//! allow `files/read` when `path` is within `/team-i/` (component boundary). All agents:
//! deny tool `delete_customer`; deny `db/query` when the query contains (case-
//! insensitive) DROP, DELETE, UPDATE, INSERT or ALTER; allow other `db/query`. Default
//! deny; deny > approval > allow.
//!
//! Every engine's *input* (Aegis `Request`, Cedar `Request`, Regorus `Value`) is built
//! ahead of time from the same generated requests, so the timed part is the decision
//! alone (plus, for Aegis, its sealed audit record).
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Arc;

pub use aegis_bench::{bundle, requests};
use aegis_core::{Engine, EngineOptions, Outcome, Request, Value};

/// The three-way decision every engine is mapped onto.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Three {
    Allow,
    RequireApproval,
    Deny,
}

impl From<Outcome> for Three {
    fn from(o: Outcome) -> Self {
        match o {
            Outcome::Allow => Three::Allow,
            Outcome::RequireApproval => Three::RequireApproval,
            Outcome::Deny => Three::Deny,
        }
    }
}

// ---------------------------------------------------------------------------------
// Aegis

/// Aegis: the `aegis-bench` bundle, compiled.
pub fn aegis_load(n: usize) -> Engine {
    Engine::from_yaml(&bundle(n), EngineOptions::default()).unwrap()
}

/// Aegis `evaluate` (decision + sealed, hash-chained audit record, no sink).
#[inline]
pub fn aegis_decide(e: &Engine, r: &Request) -> Three {
    e.evaluate(r).unwrap().outcome.into()
}

// ---------------------------------------------------------------------------------
// Cedar

/// Cedar policies for agent `i`: two permits (the approval one annotated `@approval`)
/// and the file-read permit.
pub fn cedar_agent_policies(i: usize) -> String {
    format!(
        r#"@id("pay-{i}")
permit (principal == Agent::"agent-{i}", action == Action::"create", resource == Tool::"payments")
when {{ context has amount && context has currency && context.amount <= 5000 && ["USD", "EUR"].contains(context.currency) }};

@id("pay-approval-{i}")
@approval("finance-manager")
permit (principal == Agent::"agent-{i}", action == Action::"create", resource == Tool::"payments")
when {{ context has amount && context has currency && context.amount > 5000 && context.amount <= 50000 && ["USD", "EUR"].contains(context.currency) }};

@id("files-{i}")
permit (principal == Agent::"agent-{i}", action == Action::"read", resource == Tool::"files")
when {{ context has path && (context.path == "/team-{i}" || context.path like "/team-{i}/*") }};

"#
    )
}

/// The shared Cedar policies. Cedar has no lower-case function, so the host supplies
/// `context.query_lower` (the query, lower-cased) — see [`cedar_request`].
pub const CEDAR_SHARED: &str = r#"@id("no-delete-customer")
forbid (principal, action, resource == Tool::"delete_customer");

@id("no-sql-writes")
forbid (principal, action == Action::"query", resource == Tool::"db")
when { context has query_lower && (context.query_lower like "*drop*" || context.query_lower like "*delete*" || context.query_lower like "*update*" || context.query_lower like "*insert*" || context.query_lower like "*alter*") };

@id("sql-reads")
permit (principal, action == Action::"query", resource == Tool::"db");
"#;

/// The whole Cedar policy text for `n` agents.
pub fn cedar_text(n: usize) -> String {
    let mut s = String::with_capacity(n * 900 + 600);
    for i in 0..n {
        s.push_str(&cedar_agent_policies(i));
    }
    s.push_str(CEDAR_SHARED);
    s
}

/// One Cedar policy set with every agent's policies.
pub struct CedarFull {
    pub set: cedar_policy::PolicySet,
    pub authorizer: cedar_policy::Authorizer,
    pub entities: cedar_policy::Entities,
}

/// Per-agent slices: for each agent, a policy set with only its policies and the shared
/// ones, prepared ahead; the host picks the slice by the request's principal.
pub struct CedarSliced {
    pub slices: HashMap<String, cedar_policy::PolicySet>,
    pub shared: cedar_policy::PolicySet,
    pub authorizer: cedar_policy::Authorizer,
    pub entities: cedar_policy::Entities,
}

pub fn cedar_load(n: usize) -> CedarFull {
    CedarFull {
        set: cedar_policy::PolicySet::from_str(&cedar_text(n)).unwrap(),
        authorizer: cedar_policy::Authorizer::new(),
        entities: cedar_policy::Entities::empty(),
    }
}

pub fn cedar_sliced_load(n: usize) -> CedarSliced {
    let slices = (0..n)
        .map(|i| {
            let text = format!("{}{}", cedar_agent_policies(i), CEDAR_SHARED);
            (format!("agent-{i}"), cedar_policy::PolicySet::from_str(&text).unwrap())
        })
        .collect();
    CedarSliced {
        slices,
        shared: cedar_policy::PolicySet::from_str(CEDAR_SHARED).unwrap(),
        authorizer: cedar_policy::Authorizer::new(),
        entities: cedar_policy::Entities::empty(),
    }
}

/// A Cedar request for an Aegis request: principal `Agent::"<agent>"`, action
/// `Action::"<action>"` (`Action::"call"` when the request has none), resource
/// `Tool::"<tool>"`, context = the params (integral numbers as Long, strings) plus
/// `query_lower`. Built ahead of time, outside the timed loop.
pub fn cedar_request(r: &Request) -> cedar_policy::Request {
    use cedar_policy::{Context, EntityId, EntityTypeName, EntityUid, RestrictedExpression};
    let uid =
        |t: &str, id: &str| EntityUid::from_type_name_and_id(EntityTypeName::from_str(t).unwrap(), EntityId::new(id));
    let mut pairs = Vec::new();
    for (k, v) in r.params.iter() {
        let e = match v {
            Value::Number(x) if x.fract() == 0.0 => RestrictedExpression::new_long(*x as i64),
            Value::String(s) => RestrictedExpression::new_string(s.clone()),
            other => panic!("unexpected param {k}: {other:?}"),
        };
        pairs.push((k.to_string(), e));
        if k == "query" {
            if let Value::String(s) = v {
                pairs.push(("query_lower".to_string(), RestrictedExpression::new_string(s.to_lowercase())));
            }
        }
    }
    cedar_policy::Request::new(
        uid("Agent", &r.agent),
        uid("Action", r.action.as_deref().unwrap_or("call")),
        uid("Tool", &r.tool),
        Context::from_pairs(pairs).unwrap(),
        None,
    )
    .unwrap()
}

/// Maps a Cedar response onto the three-way decision: Deny (a forbid, or no permit)
/// → deny; Allow with an `@approval` permit among the determining policies →
/// require_approval; other Allow → allow.
#[inline]
fn cedar_three(set: &cedar_policy::PolicySet, resp: &cedar_policy::Response) -> Three {
    match resp.decision() {
        cedar_policy::Decision::Deny => Three::Deny,
        cedar_policy::Decision::Allow => {
            if resp.diagnostics().reason().any(|id| set.annotation(id, "approval").is_some()) {
                Three::RequireApproval
            } else {
                Three::Allow
            }
        }
    }
}

#[inline]
pub fn cedar_decide(c: &CedarFull, q: &cedar_policy::Request) -> Three {
    let resp = c.authorizer.is_authorized(q, &c.set, &c.entities);
    cedar_three(&c.set, &resp)
}

#[inline]
pub fn cedar_sliced_decide(c: &CedarSliced, agent: &str, q: &cedar_policy::Request) -> Three {
    let set = c.slices.get(agent).unwrap_or(&c.shared);
    let resp = c.authorizer.is_authorized(q, set, &c.entities);
    cedar_three(set, &resp)
}

// ---------------------------------------------------------------------------------
// Regorus (Rego)

/// Generic Rego rules; the per-agent limits and folders live in the data document.
pub const REGO: &str = r#"package aegis

import rego.v1

agent := data.agents[input.agent]

payment if {
	input.tool == "payments"
	input.action == "create"
	input.params.currency in agent.currencies
}

deny contains "no-delete-customer" if input.tool == "delete_customer"

deny contains "no-sql-writes" if {
	input.tool == "db"
	input.action == "query"
	q := upper(input.params.query)
	some word in data.sql_writes
	contains(q, word)
}

approval contains "pay-approval" if {
	payment
	input.params.amount > agent.auto_limit
	input.params.amount <= agent.approval_limit
}

allow contains "pay" if {
	payment
	input.params.amount <= agent.auto_limit
}

allow contains "files" if {
	input.tool == "files"
	input.action == "read"
	within(input.params.path, agent.folder)
}

allow contains "sql-reads" if {
	input.tool == "db"
	input.action == "query"
}

within(path, dir) if path == dir

within(path, dir) if startswith(path, concat("", [dir, "/"]))

decision := "deny" if {
	count(deny) > 0
} else := "require_approval" if {
	count(approval) > 0
} else := "allow" if {
	count(allow) > 0
} else := "deny"
"#;

pub const REGO_ENTRY: &str = "data.aegis.decision";

/// The data document: per-agent limits, currencies and folder; the SQL write words.
pub fn rego_data(n: usize) -> String {
    let mut s = String::with_capacity(n * 110 + 100);
    s.push_str(r#"{"sql_writes":["DROP","DELETE","UPDATE","INSERT","ALTER"],"agents":{"#);
    for i in 0..n {
        if i > 0 {
            s.push(',');
        }
        s.push_str(&format!(
            r#""agent-{i}":{{"auto_limit":5000,"approval_limit":50000,"currencies":["USD","EUR"],"folder":"/team-{i}"}}"#
        ));
    }
    s.push_str("}}");
    s
}

/// The request as Rego `input` (its JSON form, parsed once, ahead of time).
pub fn rego_input(r: &Request) -> regorus::Value {
    let mut json = String::new();
    aegis_core::json::write_value(&mut json, &r.to_value());
    regorus::Value::from_json_str(&json).unwrap()
}

/// The interpreter: an `Engine` with the policy and the data document.
pub fn rego_interp_load(n: usize) -> regorus::Engine {
    let mut e = regorus::Engine::new();
    e.add_policy("aegis.rego".into(), REGO.into()).unwrap();
    e.add_data_json(&rego_data(n)).unwrap();
    e
}

/// Interpreter, one decision.
#[inline]
pub fn rego_interp_decide(e: &mut regorus::Engine, input: &regorus::Value) -> Three {
    e.set_input(input.clone());
    rego_three(&e.eval_rule(REGO_ENTRY.into()).unwrap())
}

/// The interpreter's compiled form (`Engine::compile_with_entrypoint`).
pub fn rego_compiled_load(n: usize) -> regorus::CompiledPolicy {
    let mut e = rego_interp_load(n);
    e.compile_with_entrypoint(&REGO_ENTRY.into()).unwrap()
}

#[inline]
pub fn rego_compiled_decide(p: &regorus::CompiledPolicy, input: &regorus::Value) -> Three {
    rego_three(&p.eval_with_input(input.clone()).unwrap())
}

/// The RVM: the compiled policy lowered to a bytecode `Program`, run by a `RegoVM`
/// that holds the data document.
pub struct RegoRvm {
    pub vm: regorus::rvm::RegoVM,
}

pub fn rego_rvm_load(n: usize) -> RegoRvm {
    let data = regorus::Value::from_json_str(&rego_data(n)).unwrap();
    let mut e = regorus::Engine::new();
    e.add_policy("aegis.rego".into(), REGO.into()).unwrap();
    e.add_data(data.clone()).unwrap();
    let compiled = e.compile_with_entrypoint(&REGO_ENTRY.into()).unwrap();
    let program: Arc<regorus::rvm::Program> =
        regorus::languages::rego::compiler::Compiler::compile_from_policy(&compiled, &[REGO_ENTRY]).unwrap();
    let mut vm = regorus::rvm::RegoVM::new();
    vm.load_program(program);
    vm.set_data(data).unwrap();
    RegoRvm { vm }
}

#[inline]
pub fn rego_rvm_decide(r: &mut RegoRvm, input: &regorus::Value) -> Three {
    r.vm.set_input(input.clone());
    rego_three(&r.vm.execute().unwrap())
}

#[inline]
fn rego_three(v: &regorus::Value) -> Three {
    match v.as_string().map(|s| s.as_ref()) {
        Ok("allow") => Three::Allow,
        Ok("require_approval") => Three::RequireApproval,
        Ok("deny") => Three::Deny,
        _ => panic!("unexpected Rego decision {v:?}"),
    }
}

// ---------------------------------------------------------------------------------
// The whole set, for one N

/// Every engine for `n` agents, with the pre-built inputs for `count` requests.
pub struct Fixture {
    pub n: usize,
    pub aegis: Engine,
    pub cedar: CedarFull,
    pub cedar_sliced: CedarSliced,
    pub rego_interp: regorus::Engine,
    pub rego_compiled: regorus::CompiledPolicy,
    pub rego_rvm: RegoRvm,
    pub reqs: Vec<Request>,
    pub cedar_reqs: Vec<cedar_policy::Request>,
    pub rego_inputs: Vec<regorus::Value>,
}

impl Fixture {
    pub fn new(n: usize, count: usize, seed: u64) -> Self {
        let reqs = requests(n, count, seed);
        Fixture {
            n,
            aegis: aegis_load(n),
            cedar: cedar_load(n),
            cedar_sliced: cedar_sliced_load(n),
            rego_interp: rego_interp_load(n),
            rego_compiled: rego_compiled_load(n),
            rego_rvm: rego_rvm_load(n),
            cedar_reqs: reqs.iter().map(cedar_request).collect(),
            rego_inputs: reqs.iter().map(rego_input).collect(),
            reqs,
        }
    }

    /// Checks that every engine returns Aegis's three-way decision on every request.
    /// Returns the count of each decision and each engine's total time over the
    /// requests (engine names as in the bench), or every disagreement (first 20).
    pub fn check(&mut self) -> Result<([usize; 3], Vec<(&'static str, std::time::Duration)>), Vec<String>> {
        use std::time::{Duration, Instant};
        let mut counts = [0usize; 3];
        let mut bad = Vec::new();
        let names = ["aegis_evaluate", "cedar", "cedar_sliced", "regorus_interp", "regorus_compiled", "regorus_rvm"];
        let mut spent = [Duration::ZERO; 6];
        for k in 0..self.reqs.len() {
            let r = &self.reqs[k];
            let mut got = [Three::Deny; 6];
            for (e, slot) in got.iter_mut().enumerate() {
                let t = Instant::now();
                *slot = match e {
                    0 => aegis_decide(&self.aegis, r),
                    1 => cedar_decide(&self.cedar, &self.cedar_reqs[k]),
                    2 => cedar_sliced_decide(&self.cedar_sliced, &r.agent, &self.cedar_reqs[k]),
                    3 => rego_interp_decide(&mut self.rego_interp, &self.rego_inputs[k]),
                    4 => rego_compiled_decide(&self.rego_compiled, &self.rego_inputs[k]),
                    _ => rego_rvm_decide(&mut self.rego_rvm, &self.rego_inputs[k]),
                };
                spent[e] += t.elapsed();
            }
            let want = got[0];
            counts[want as usize] += 1;
            for (e, d) in got.iter().enumerate().skip(1) {
                if *d != want && bad.len() < 20 {
                    bad.push(format!("n={} request {k} {r:?}: aegis {want:?}, {} {d:?}", self.n, names[e]));
                }
            }
        }
        if bad.is_empty() {
            Ok((counts, names.into_iter().zip(spent).collect()))
        } else {
            Err(bad)
        }
    }
}
