//! Evaluation with fleet state (§11): the phases of `phases.rs` over a snapshot, then
//! one atomic [`Step`] in the store.
//!
//! Order of the pseudo-rules: a stale kill mirror (`state:unavailable`), then the kill
//! switches, then rules and limits, then the shared-state failures (`state:unavailable`,
//! `state:reset`, `state:skew`). Each denies alone with nothing consumed. A call that
//! needs no shared state (no limit matches, no grant to use, no candidate touching
//! marks) makes no round trip.

use super::decision::{Decision, DecisionError};
use super::grant::GrantRejection;
use super::limits::Counter;
use super::phases::{self, RecordFacts, SumValue};
use super::state::{LimitStep, SharedState, StateFailure, StateFault, Step, StepOutcome};
use super::{scratch, Engine, EvalError, EvalOptions};
use crate::audit::{sha256_hex, LimitState};
use crate::eval::{Ctx, MarksSeen};
use crate::policy::{Limit, Outcome};
use crate::request::Request;
use crate::time::{self, Millis};
use std::sync::Arc;

/// How many times a call decides again when the store's counters or grants are not
/// what its decision assumed (another member got in first) before it gives up with
/// `state:unavailable`. Counters only grow within a window, so two rounds settle
/// every race but a pathological one.
const ROUNDS: usize = 4;

/// The labels of the marks live at `time_ms` (expiry after it), sorted, each once.
pub(crate) fn live_labels(marks: &[(String, Millis)], time_ms: Millis) -> Vec<String> {
    let mut v: Vec<String> = marks.iter().filter(|(_, exp)| time_ms < *exp).map(|(l, _)| l.clone()).collect();
    v.sort_unstable();
    v.dedup();
    v
}

/// Makes `d` a denial by a pseudo-rule alone (§11): rules `[rule]`, the fixed reason,
/// one error at `state`, no approval.
pub(crate) fn deny_by(d: &mut Decision, fault: StateFault, message: String) {
    d.outcome = Outcome::Deny;
    d.rules.clear();
    d.rules.push(fault.rule().into());
    d.reason = fault.reason().into();
    d.approval = None;
    d.errors.clear();
    d.errors.push(DecisionError { rule: fault.rule().into(), path: "state".into(), message });
}

/// A matched limit with what the call adds to it.
struct Probe<'b> {
    limit: &'b Limit,
    per: Vec<Option<String>>,
    window: i64,
    window_end: Millis,
    sum: SumValue,
}

impl Engine {
    /// [`Engine::evaluate_with`] for an engine with fleet state.
    pub(super) fn evaluate_shared(
        &self,
        st: &dyn SharedState,
        req: &Request,
        opts: EvalOptions,
    ) -> Result<Decision, EvalError> {
        let time_ms = req.time_or(|| self.now());
        let time_str = time::format_utc(time_ms);
        let compiled = self.policy.load();
        let bundle = &compiled.bundle;
        let mut params_json = scratch::take(&scratch::PARAMS);
        crate::json::write_object(&mut params_json, &req.params);
        let params_sha256 = sha256_hex(params_json.as_bytes());

        let mut d = Decision::undecided();
        let facts = if let Some(why) = st.stale() {
            deny_by(&mut d, StateFault::Unavailable, why);
            RecordFacts::default()
        } else if let Some(k) = self.kills.find(req) {
            d.rules.push(format!("kill:{}:{}", k.scope.as_str(), k.id));
            d.reason =
                if k.reason.is_empty() { format!("killed: {} \"{}\"", k.scope.as_str(), k.id) } else { k.reason };
            RecordFacts::default()
        } else {
            match self.decide_shared(st, &compiled, req, &params_json, time_ms, &time_str, opts, &mut d)? {
                Ok(facts) => facts,
                Err(f) => {
                    deny_by(&mut d, f.fault, f.message);
                    d.explain = None;
                    RecordFacts::default()
                }
            }
        };
        scratch::put(&scratch::PARAMS, params_json);
        d.audit = phases::build_record(req, time_str, params_sha256, &d, facts, self.kid.clone(), bundle.hash.clone());
        self.seal(&mut d.audit)?;
        Ok(d)
    }

    /// Rules and limits over the snapshot, then the step; `Ok(Err(_))` is a
    /// shared-state failure (the caller makes it the decision).
    #[allow(clippy::too_many_arguments)]
    fn decide_shared(
        &self,
        st: &dyn SharedState,
        compiled: &super::Compiled,
        req: &Request,
        params_json: &str,
        time_ms: Millis,
        time_str: &str,
        opts: EvalOptions,
        d: &mut Decision,
    ) -> Result<Result<RecordFacts, StateFailure>, EvalError> {
        let bundle = &compiled.bundle;
        let (candidates, proven) = compiled.checked_lookup(req)?;
        let session = req.session.as_deref();
        let mut touches = false;
        if compiled.touches_marks {
            for &i in candidates {
                let r = bundle.rules.get(i as usize).ok_or_else(|| {
                    EvalError::invariant(format!(
                        "the index names rule {i}, but the bundle has {} rules",
                        bundle.rules.len()
                    ))
                })?;
                touches |= r.reads_marks || !r.marks.is_empty();
            }
        }
        // The snapshot: the session's marks, when a candidate touches them.
        let mut live: Vec<Arc<str>> = Vec::new();
        if let (true, Some(s)) = (touches, session) {
            let got = st.check(time_ms).and_then(|()| st.read_marks(s));
            match got {
                Ok(marks) => live = live_labels(&marks, time_ms).into_iter().map(Arc::from).collect(),
                Err(f) => return Ok(Err(f)),
            }
        }
        let seen = match (touches, session) {
            (false, _) => MarksSeen::NotRead,
            (true, None) => MarksSeen::NoSession,
            (true, Some(_)) => MarksSeen::Live(&live),
        };
        let ctx = Ctx { req, time_ms, time_str, marks: seen };
        let mut matched = phases::match_rules(&bundle.rules, candidates, proven, &ctx, opts.explain)?;
        let mut base_errors = std::mem::take(&mut matched.errors);
        let mut probes = Vec::new();
        for l in phases::matching_limits(&bundle.limits, &ctx, &mut base_errors) {
            let window = time_ms.div_euclid(l.window.millis);
            let window_end = window.saturating_add(1).saturating_mul(l.window.millis);
            let per = phases::per_values(l, &ctx)?;
            let sum = phases::sum_value(l, &ctx, &mut base_errors);
            probes.push(Probe { limit: l, per, window, window_end, sum });
        }
        let explain = matched.explain.take();
        let mut counters = vec![Counter::default(); probes.len()];
        let mut grant_used = false;
        for _ in 0..ROUNDS {
            // Decide with the counters assumed.
            *d = Decision::undecided();
            d.errors.clone_from(&base_errors);
            let exceeded: Vec<(&Limit, String)> = probes
                .iter()
                .zip(&counters)
                .filter_map(|(p, c)| phases::over_reason(p.limit, *c, &p.sum, None).map(|r| (p.limit, r)))
                .collect();
            phases::combine(bundle.default, &matched, &exceeded, d)?;
            d.explain.clone_from(&explain);
            let checked = phases::grant(self.approval_key.as_deref(), &bundle.hash, req, params_json, time_ms, d);
            let mut facts = RecordFacts { approval_id: checked.approval_id, ..RecordFacts::default() };
            let mut grant_use = None;
            if let Some(result) = checked.grant {
                let first = d.rules.first().cloned().ok_or_else(|| {
                    EvalError::invariant("a grant was checked for a decision without a determining rule".to_string())
                })?;
                match result.and_then(|c| if grant_used { Err(GrantRejection::Used) } else { Ok(c) }) {
                    Ok(c) => {
                        d.outcome = Outcome::Allow;
                        d.approval = None;
                        d.reason = format!("approved by {}: {}", c.grant.by, d.reason);
                        grant_use = Some(c);
                    }
                    Err(why) => d.errors.push(DecisionError {
                        rule: first,
                        path: "approval".into(),
                        message: why.message().into(),
                    }),
                }
            }
            let marking = phases::marking_rules(&matched, d);
            let adds = d.outcome != Outcome::RequireApproval && !marking.is_empty();
            if session.is_none() {
                for r in &marking {
                    d.errors.push(DecisionError {
                        rule: r.id.clone(),
                        path: "session".into(),
                        message: "no session: marks not recorded".into(),
                    });
                }
            }
            let shows_marks = session.is_some() && (matched.reads_marks || !marking.is_empty());
            let writes_marks = adds && session.is_some();
            if probes.is_empty() && grant_use.is_none() && !writes_marks {
                // Nothing to write: the snapshot is the state after the call.
                if shows_marks {
                    facts.marks = live.iter().map(|l| l.to_string()).collect();
                }
                return Ok(Ok(facts));
            }
            if let Err(f) = st.check(time_ms) {
                return Ok(Err(f));
            }
            let new_marks: Vec<(&str, Millis)> = if writes_marks {
                marking
                    .iter()
                    .flat_map(|r| &r.marks)
                    .map(|m| (&*m.label, time_ms.saturating_add(m.ttl_ms.unwrap_or(self.marks_ttl_ms))))
                    .collect()
            } else {
                Vec::new()
            };
            let allowed = d.outcome == Outcome::Allow;
            let step = Step {
                time_ms,
                grant: grant_use.as_ref().map(|c| (c.mac, c.grant.exp.saturating_mul(1000))),
                limits: probes
                    .iter()
                    .zip(&counters)
                    .map(|(p, c)| LimitStep {
                        id: &p.limit.id,
                        per: &p.per,
                        window_ms: p.limit.window.millis,
                        window: p.window,
                        window_end_ms: p.window_end,
                        max_calls: p.limit.max_calls,
                        max_sum: p.limit.max_sum.filter(|_| p.limit.sum.is_some()),
                        add: p.sum.add,
                        forced: p.sum.bad,
                        assumed_exceeded: phases::over_reason(p.limit, *c, &p.sum, None).is_some(),
                    })
                    .collect(),
                count: allowed,
                session: if shows_marks || writes_marks { session } else { None },
                marks: new_marks,
            };
            match st.step(&step) {
                Err(f) => return Ok(Err(f)),
                Ok(StepOutcome::Changed { before, grant_used: used }) => {
                    if before.len() != probes.len() {
                        return Err(EvalError::invariant(format!(
                            "the store returned {} counters for {} limits",
                            before.len(),
                            probes.len()
                        )));
                    }
                    counters = before;
                    grant_used |= used;
                }
                Ok(StepOutcome::Done { before, marks }) => {
                    if before.len() != probes.len() {
                        return Err(EvalError::invariant(format!(
                            "the store returned {} counters for {} limits",
                            before.len(),
                            probes.len()
                        )));
                    }
                    facts.limits = probes
                        .iter()
                        .zip(before)
                        .map(|(p, mut c)| {
                            if allowed {
                                c.calls = c.calls.saturating_add(1);
                                c.sum += p.sum.add;
                            }
                            LimitState { id: p.limit.id.clone(), calls: c.calls, sum: p.limit.max_sum.map(|_| c.sum) }
                        })
                        .collect();
                    if let Some(c) = grant_use {
                        facts.approved_by = Some(c.grant.by);
                    }
                    if shows_marks {
                        facts.marks = live_labels(&marks, time_ms);
                    }
                    return Ok(Ok(facts));
                }
            }
        }
        Ok(Err(StateFailure::unavailable(format!(
            "the fleet's counters changed {ROUNDS} times while the call was decided"
        ))))
    }
}
