//! Deciding with fleet state (§11): the phases of `phases.rs` over a snapshot, then
//! one atomic [`Step`] in the store. [`Engine::evaluate_with`] checks the stale
//! mirror and the kill switches first and seals the record after, as for the memory
//! state.
//!
//! Order of the pseudo-rules: a stale kill mirror (`state:unavailable`), then the kill
//! switches, then rules and limits, then the shared-state failures (`state:unavailable`,
//! `state:reset`, `state:skew`). Each denies alone with nothing consumed. A call that
//! needs no shared state (no limit matches, no grant to use, no candidate touching
//! marks) makes no round trip.

use super::decision::Decision;
use super::grant::GrantRejection;
use super::limits::Counter;
use super::phases::{self, RecordFacts, SumValue};
use super::state::{LimitStep, SharedState, StateFailure, Step, StepOutcome};
use super::{Engine, EvalError, EvalOptions};
use crate::audit::LimitState;
use crate::eval::Ctx;
use crate::policy::{Limit, Outcome};
use crate::request::Request;
use crate::time::Millis;
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

/// A matched limit with what the call adds to it.
struct Probe<'b> {
    limit: &'b Limit,
    per: Vec<Option<String>>,
    window: i64,
    window_end: Millis,
    sum: SumValue,
}

impl Engine {
    /// [`Engine::evaluate_with`]'s rules and limits for an engine with fleet state:
    /// over the snapshot, then the step. `Ok(Err(_))` is a shared-state failure (the
    /// caller makes it the decision).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn decide_shared(
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
        let touches = phases::candidates_touch_marks(&bundle.rules, candidates, compiled.touches_marks)?;
        // The snapshot: the session's marks, when a candidate touches them.
        let mut live: Vec<Arc<str>> = Vec::new();
        if let (true, Some(s)) = (touches, session) {
            let got = st.check(time_ms).and_then(|()| st.read_marks(s));
            match got {
                Ok(marks) => live = live_labels(&marks, time_ms).into_iter().map(Arc::from).collect(),
                Err(f) => return Ok(Err(f)),
            }
        }
        let ctx = Ctx { req, time_ms, time_str, marks: phases::MarksRead::seen(touches, session, &live, None) };
        let mut matched = phases::match_rules(&bundle.rules, candidates, proven, &ctx, opts.explain)?;
        let mut base_errors = std::mem::take(&mut matched.errors);
        let mut probes = Vec::new();
        for l in phases::matching_limits(&bundle.limits, &ctx, &mut base_errors) {
            let (window, window_end) = phases::window_of(l, time_ms);
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
            let grant_use = match checked.grant {
                // The store said this grant was used (by another member): refused as
                // the memory state refuses a second use.
                Some(result) => phases::approve(
                    d,
                    result.and_then(|c| match grant_used {
                        true => Err(GrantRejection::Used),
                        false => Ok(c),
                    }),
                )?,
                None => None,
            };
            let marking = phases::marking_rules(&matched, d);
            let adds = d.outcome != Outcome::RequireApproval && !marking.is_empty();
            if session.is_none() {
                phases::no_session(d, &marking);
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
            let new_marks: Vec<(&str, Millis)> = match writes_marks {
                true => phases::new_marks(&marking, time_ms, self.marks_ttl_ms).map(|(l, exp)| (&**l, exp)).collect(),
                false => Vec::new(),
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
            let outcome = match st.step(&step) {
                Err(f) => return Ok(Err(f)),
                Ok(o) => o,
            };
            let (StepOutcome::Changed { before, .. } | StepOutcome::Done { before, .. }) = &outcome;
            if before.len() != probes.len() {
                return Err(EvalError::invariant(format!(
                    "the store returned {} counters for {} limits",
                    before.len(),
                    probes.len()
                )));
            }
            match outcome {
                StepOutcome::Changed { before, grant_used: used } => {
                    counters = before;
                    grant_used |= used;
                }
                StepOutcome::Done { before, marks } => {
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
