//! The phases of an evaluation (§4), in order: [`read_marks`], [`match_rules`],
//! [`check_limits`], [`combine`], [`grant`], [`commit`], then [`build_record`] and
//! [`Engine::seal`](super::Engine::seal). Each phase takes plain data, says what it
//! guarantees and is tested on its own; `Engine::evaluate_with` only strings them
//! together (and a kill switch skips straight to sealing).

use super::decision::{Approval, Decision, DecisionError, ExplainEntry};
use super::grant::{self, Checked, GrantRejection, UsedGrants};
use super::limits::{Counter, CounterKey, CounterUnavailable, LimitTable};
use super::marks::{Known, MarkTable};
use super::state::{Kill, StateFailure, StateFault};
use super::{lock, EvalError};
use crate::audit::{AuditRecord, LimitState};
use crate::compile::Proven;
use crate::eval::{self, Ctx, MarksSeen, Sink, Tri};
use crate::policy::{Limit, Outcome, Rule};
use crate::request::Request;
use crate::time::Millis;
use crate::value::Value;
use std::sync::{Arc, Mutex, MutexGuard};

/// The session's marks as one call reads them ([`read_marks`]).
pub(crate) struct MarksRead<'t> {
    /// The mark table, locked from reading to [`commit`] when a candidate rule
    /// touches marks (tests `session.marks` or has marks), so that the marks a
    /// decision read and the marks it adds are one step: two calls racing in one
    /// session never lose a mark or decide on half of the other's.
    pub table: Option<MutexGuard<'t, MarkTable>>,
    /// The live marks at decision time, sorted (when read and known).
    pub live: Vec<Arc<str>>,
    /// Why they cannot be known (table full, request older than pruned marks).
    pub unknown: Option<&'static str>,
}

impl MarksRead<'_> {
    /// The value of `session.marks` for the request.
    pub fn seen<'a>(
        table_locked: bool,
        session: Option<&str>,
        live: &'a [Arc<str>],
        unknown: Option<&'static str>,
    ) -> MarksSeen<'a> {
        match (table_locked, session, unknown) {
            (false, _, _) => MarksSeen::NotRead,
            (true, None, _) => MarksSeen::NoSession,
            (true, Some(_), Some(why)) => MarksSeen::Unknown(why),
            (true, Some(_), None) => MarksSeen::Live(live),
        }
    }
}

/// Phase 0 — read marks: when a candidate rule tests `session.marks` or has marks
/// (`touches`: the bundle has such a rule at all), locks the mark table and reads the
/// request's session's live marks at the request time.
///
/// Guarantees: a call no candidate of which touches marks takes no lock and reads
/// nothing (its `session.marks`, never tested, is [`MarksSeen::NotRead`]); a
/// candidate index outside the bundle fails with [`EvalError::Invariant`].
#[inline(always)] // one call site, on the hot path
pub(crate) fn read_marks<'t>(
    rules: &[Rule],
    candidates: &[u32],
    touches: bool,
    table: &'t Mutex<MarkTable>,
    req: &Request,
    time_ms: Millis,
) -> Result<MarksRead<'t>, EvalError> {
    let mut out = MarksRead { table: None, live: Vec::new(), unknown: None };
    if !candidates_touch_marks(rules, candidates, touches)? {
        return Ok(out);
    }
    let t = out.table.insert(lock(table));
    if let Some(session) = req.session.as_deref() {
        match t.read(session, time_ms) {
            Known::Live(live) => out.live = live,
            Known::Unknown(why) => out.unknown = Some(why),
        }
    }
    Ok(out)
}

/// Whether a candidate rule tests `session.marks` or has marks (`touches`: the bundle
/// has such a rule at all; without one nothing is looked at). A candidate index
/// outside the bundle fails with [`EvalError::Invariant`].
#[inline(always)]
pub(crate) fn candidates_touch_marks(rules: &[Rule], candidates: &[u32], touches: bool) -> Result<bool, EvalError> {
    if !touches {
        return Ok(false);
    }
    let mut any = false;
    for &i in candidates {
        let r = rules.get(i as usize).ok_or_else(|| {
            EvalError::invariant(format!("the index names rule {i}, but the bundle has {} rules", rules.len()))
        })?;
        any |= r.reads_marks || !r.marks.is_empty();
    }
    Ok(any)
}

/// The determining rules while combining: the first kept inline, so the usual single
/// winner costs no allocation.
#[derive(Default)]
pub(crate) struct Winners<'a> {
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

/// What matching the rules found.
#[derive(Default)]
pub(crate) struct RuleMatch<'b> {
    /// The highest outcome among the rules that apply (`None`: no rule applies).
    pub best: Option<Outcome>,
    /// The rules that apply with that outcome, in bundle order.
    pub winners: Winners<'b>,
    /// The errors of the candidates that erred (and so decided by failing closed),
    /// in bundle order.
    pub errors: Vec<DecisionError>,
    /// One entry per candidate, when explaining.
    pub explain: Option<Vec<ExplainEntry>>,
    /// Whether a rule whose selectors match the request (are not false) tests
    /// `session.marks`: the record then shows the session's marks.
    pub reads_marks: bool,
}

/// Phase 1 — match rules: evaluates each candidate rule (selectors, then `when`,
/// three-valued) for the request.
///
/// Guarantees: every candidate is a rule of `rules`, visited once and in bundle
/// order — a candidate list that breaks this (an index that is not this bundle's)
/// fails the evaluation with [`EvalError::Invariant`] instead of skipping a rule,
/// so a deny rule is never silently dropped. A rule that errs applies unless it
/// allows (fail closed), and its errors are listed under its id. `best` and
/// `winners` are the applying rules of the highest outcome (deny > require_approval
/// > allow). The selectors in `proven` are not tested again (the index proved them).
#[inline(always)] // one call site, on the hot path
pub(crate) fn match_rules<'b>(
    rules: &'b [Rule],
    candidates: &[u32],
    proven: Proven,
    ctx: &Ctx<'_>,
    explain: bool,
) -> Result<RuleMatch<'b>, EvalError> {
    let mut m = RuleMatch { explain: explain.then(Vec::new), ..RuleMatch::default() };
    let mut trace_buf = Vec::new();
    let mut errs = Vec::new();
    let mut last: Option<u32> = None;
    for &i in candidates {
        if let Some(l) = last.filter(|&l| i <= l) {
            return Err(EvalError::invariant(format!(
                "the index lists rule {i} after rule {l}: candidates must be in bundle order, each once"
            )));
        }
        last = Some(i);
        let rule = rules.get(i as usize).ok_or_else(|| {
            EvalError::invariant(format!("the index names rule {i}, but the bundle has {} rules", rules.len()))
        })?;
        errs.clear();
        trace_buf.clear();
        let tri = {
            let trace = if m.explain.is_some() { Some(&mut trace_buf) } else { None };
            let mut sink = Sink { errors: std::mem::take(&mut errs), trace };
            let t = eval::eval_rule_proven(rule, ctx, &mut sink, proven);
            errs = sink.errors;
            t
        };
        let applies = match tri {
            Tri::True => true,
            Tri::False => false,
            Tri::Error => rule.outcome != Outcome::Allow,
        };
        if rule.reads_marks && !m.reads_marks {
            // A false rule may be false by its selectors (not about this request) or
            // by its condition (it read the marks).
            m.reads_marks = tri != Tri::False || {
                let mut s = Sink { errors: Vec::new(), trace: None };
                eval::eval_selectors_except(&rule.selectors, ctx, &mut s, true, proven) != Tri::False
            };
        }
        if tri == Tri::Error {
            for e in errs.drain(..) {
                m.errors.push(DecisionError { rule: rule.id.clone(), path: e.path, message: e.message });
            }
        }
        if let Some(ex) = m.explain.as_mut() {
            ex.push(ExplainEntry {
                rule: rule.id.clone(),
                outcome: rule.outcome,
                applied: applies,
                result: tri,
                failed: std::mem::take(&mut trace_buf),
                marks: match ctx.marks {
                    MarksSeen::Live(l) if rule.reads_marks => Some(l.iter().map(|s| s.to_string()).collect()),
                    _ => None,
                },
            });
        }
        if applies {
            match m.best {
                Some(b) if b > rule.outcome => {}
                Some(b) if b == rule.outcome => m.winners.push(rule),
                _ => {
                    m.best = Some(rule.outcome);
                    m.winners.clear();
                    m.winners.push(rule);
                }
            }
        }
    }
    Ok(m)
}

/// A limit whose selectors matched, with its counter before this call.
pub(crate) struct LimitCheck<'b> {
    limit: &'b Limit,
    key: CounterKey,
    before: Counter,
    add: f64,
    window_end: Millis,
}

impl LimitCheck<'_> {
    /// The limit's state with this counter, as the record shows it.
    fn state(&self, counter: Counter) -> LimitState {
        LimitState { id: self.limit.id.clone(), calls: counter.calls, sum: self.limit.max_sum.map(|_| counter.sum) }
    }
}

/// What checking the limits found. Holds the limit table, locked, when a limit
/// matched: [`commit`] writes the counters under the same lock they were read
/// under, so concurrent calls cannot both pass a limit with room for one.
pub(crate) struct LimitsChecked<'b, 't> {
    table: Option<MutexGuard<'t, LimitTable>>,
    checks: Vec<LimitCheck<'b>>,
    /// The limits this call would exceed, each with its reason, in bundle order.
    pub exceeded: Vec<(&'b Limit, String)>,
}

/// Phase 2 — limits check: finds the limits whose selectors match (a missing field
/// matches: fail closed) and reads each one's counter for the request's window.
///
/// Guarantees: errors go to `errors` — first every matched limit's selector errors
/// in bundle order, then each matched limit's counter errors (state unavailable, a
/// `sum` that is not a number ≥ 0) — under rule `limit:ID`. A limit is exceeded when
/// this call would pass `max_calls` or `max_sum`, when its `sum` value is missing or
/// invalid, or when its counter cannot be had (window pruned, table full): never a
/// fresh counter instead. Nothing is counted yet (that is [`commit`]'s); the table
/// is locked only when a limit matched. A `per` field that is not a limit key
/// ([`Field::is_limit_key`](crate::request::Field::is_limit_key)) fails the
/// evaluation with [`EvalError::Invariant`].
#[inline(always)] // one call site, on the hot path
pub(crate) fn check_limits<'b, 't>(
    limits: &'b [Limit],
    ctx: &Ctx<'_>,
    table: &'t Mutex<LimitTable>,
    errors: &mut Vec<DecisionError>,
) -> Result<LimitsChecked<'b, 't>, EvalError> {
    let matched = matching_limits(limits, ctx, errors);
    let mut out = LimitsChecked { table: None, checks: Vec::with_capacity(matched.len()), exceeded: Vec::new() };
    if matched.is_empty() {
        return Ok(out);
    }
    let table = out.table.insert(lock(table));
    let time_ms = ctx.time_ms;
    for l in matched {
        let (window, window_end) = window_of(l, time_ms);
        let key = (l.id.clone(), per_values(l, ctx)?, window);
        let (before, unavailable) = match table.get(&key, window_end, time_ms) {
            Ok(c) => (c, None),
            Err(CounterUnavailable::WindowClosed) => (Counter::default(), Some("its window has closed")),
            Err(CounterUnavailable::Full) => (Counter::default(), Some("the limit table is full")),
        };
        if let Some(why) = unavailable {
            errors.push(DecisionError {
                rule: format!("limit:{}", l.id),
                path: l.id.clone(),
                message: format!("limit state unavailable: {why}"),
            });
        }
        let sum = sum_value(l, ctx, errors);
        if let Some(reason) = over_reason(l, before, &sum, unavailable) {
            out.exceeded.push((l, reason));
        }
        out.checks.push(LimitCheck { limit: l, key, before, add: sum.add, window_end });
    }
    Ok(out)
}

/// The window of `l` that `time_ms` falls in: its index ⌊t / window_ms⌋ and when it
/// ends.
pub(crate) fn window_of(l: &Limit, time_ms: Millis) -> (i64, Millis) {
    let window = time_ms.div_euclid(l.window.millis);
    (window, window.saturating_add(1).saturating_mul(l.window.millis))
}

/// The limits whose selectors match the request (a missing field matches: fail
/// closed, and its error is listed under `limit:ID`), in bundle order.
pub(crate) fn matching_limits<'b>(
    limits: &'b [Limit],
    ctx: &Ctx<'_>,
    errors: &mut Vec<DecisionError>,
) -> Vec<&'b Limit> {
    let mut matched = Vec::new();
    for l in limits {
        let mut s = Sink { errors: Vec::new(), trace: None };
        let tri = eval::eval_selectors(&l.selectors, ctx, &mut s, true);
        if tri != Tri::False {
            for e in s.errors {
                errors.push(DecisionError { rule: format!("limit:{}", l.id), path: e.path, message: e.message });
            }
            matched.push(l);
        }
    }
    matched
}

/// A matched limit's key values: its `per` fields' values in the request, in order
/// (`None`: the request lacks the field). A `per` field that is not a limit key fails
/// with [`EvalError::Invariant`].
pub(crate) fn per_values(l: &Limit, ctx: &Ctx<'_>) -> Result<Vec<Option<String>>, EvalError> {
    l.per
        .iter()
        .map(|f| match f.is_limit_key() {
            true => Ok(f.name_in(ctx.req).map(str::to_owned)),
            false => Err(EvalError::invariant(format!("limit \"{}\" is kept per `{f}`, not a limit key", l.id))),
        })
        .collect()
}

/// What a call adds to a limit's sum.
pub(crate) struct SumValue {
    /// The value (0 when the limit has no sum or the value is invalid).
    pub add: f64,
    /// The `sum` path did not resolve to a number ≥ 0 (the limit is then exceeded).
    pub bad: bool,
}

/// The call's value for a limit with `sum` and `max_sum`; an invalid one lists its
/// error under `limit:ID`.
pub(crate) fn sum_value(l: &Limit, ctx: &Ctx<'_>, errors: &mut Vec<DecisionError>) -> SumValue {
    let (Some((path, text)), Some(_)) = (&l.sum, l.max_sum) else { return SumValue { add: 0.0, bad: false } };
    let bad = match eval::resolve(path, ctx) {
        None => Some(format!("no value at \"{text}\"")),
        Some(eval::Seen::Val(Value::Number(n))) if *n >= 0.0 => return SumValue { add: *n, bad: false },
        Some(eval::Seen::Val(Value::Number(n))) => Some(format!("sum expects a number >= 0, found {}", eval::num(*n))),
        Some(s) => Some(format!("sum expects a number, found {}", s.to_value().type_name())),
    };
    if let Some(m) = bad {
        errors.push(DecisionError { rule: format!("limit:{}", l.id), path: text.clone(), message: m });
    }
    SumValue { add: 0.0, bad: true }
}

/// Why this call exceeds the limit with the counter `before` (`None`: it does not):
/// its counter is unavailable, counting it would pass `max_calls`, or its value is
/// invalid or would take the sum past `max_sum` (binary64 addition).
pub(crate) fn over_reason(l: &Limit, before: Counter, sum: &SumValue, unavailable: Option<&str>) -> Option<String> {
    if let Some(why) = unavailable {
        return Some(format!("limit \"{}\" exceeded: {why}", l.id));
    }
    if let Some(max) = l.max_calls {
        if before.calls.saturating_add(1) > max {
            return Some(format!("limit \"{}\" exceeded: max_calls {} per {}", l.id, max, l.window.text));
        }
    }
    if let Some(max) = l.max_sum {
        if l.sum.is_some() && (sum.bad || before.sum + sum.add > max) {
            return Some(format!("limit \"{}\" exceeded: max_sum {} per {}", l.id, eval::num(max), l.window.text));
        }
    }
    None
}

/// Phase 3 — combine: decides the outcome from the applying rules and the exceeded
/// limits, deny > require_approval > allow, and sets `d.outcome`, `d.rules`,
/// `d.reason` and the approvers of `d.approval`.
///
/// Guarantees: with no applying rule and no exceeded limit, the bundle default
/// decides (rule `default`). Otherwise the determining rules are the winning rules
/// (when they have the outcome) in bundle order, then the exceeded limits with that
/// outcome (`limit:ID`), in bundle order; the reason is the first winning rule's
/// (its `reason`, else its `description`, else `rule "ID" decided OUTCOME`), else
/// the first such limit's; a `require_approval` decision lists the winners'
/// approvers in order, without repeats. Inputs that do not fit together (an outcome
/// no rule or limit has) fail with [`EvalError::Invariant`] rather than give an
/// empty reason.
#[inline(always)] // one call site, on the hot path
pub(crate) fn combine(
    default: Outcome,
    rules: &RuleMatch<'_>,
    exceeded: &[(&Limit, String)],
    d: &mut Decision,
) -> Result<(), EvalError> {
    let best = rules.best;
    let limit_best = exceeded.iter().map(|(l, _)| l.outcome).max();
    let Some(o) = best.max(limit_best) else {
        d.outcome = default;
        d.rules.push("default".into());
        d.reason = String::with_capacity(48);
        d.reason.push_str("no rule applies; the bundle default is ");
        d.reason.push_str(default.as_str());
        return Ok(());
    };
    d.outcome = o;
    let winners = (best == Some(o)).then_some(&rules.winners);
    if let Some(winners) = winners {
        d.rules.reserve_exact(winners.len());
        d.rules.extend(winners.iter().map(|r| r.id.clone()));
        if o == Outcome::RequireApproval {
            for a in winners.iter().flat_map(|r| &r.approvers) {
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
    for (l, _) in exceeded.iter().filter(|(l, _)| l.outcome == o) {
        d.rules.push(format!("limit:{}", l.id));
    }
    d.reason = match winners.and_then(Winners::first) {
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
        None => match exceeded.iter().find(|(l, _)| l.outcome == o) {
            Some((_, why)) => why.clone(),
            None => {
                return Err(EvalError::invariant(format!(
                    "the outcome {o} has neither a winning rule nor an exceeded limit"
                )))
            }
        },
    };
    Ok(())
}

/// The approval id of a `require_approval` decision and the request's grant, checked.
#[derive(Default)]
pub(crate) struct GrantCheck {
    /// The approval id (`require_approval` decisions only).
    pub approval_id: Option<String>,
    /// The request's grant token, checked against that id (when it has one).
    pub grant: Option<Result<Checked, GrantRejection>>,
}

/// Phase 4 — grant: for a `require_approval` decision, computes the approval id
/// (into `d.approval`) and checks the request's grant token against it: form, MAC,
/// expiry and id, in the order of the message catalogue.
///
/// Guarantees: other outcomes get no approval id and their grant is never looked
/// at (a grant only ever turns `require_approval` into `allow`); nothing is
/// changed in the engine — whether the grant was used before is [`commit`]'s.
#[inline(always)] // one call site, on the hot path
pub(crate) fn grant(
    approval_key: Option<&[u8]>,
    policy_hash: &str,
    req: &Request,
    params_json: &str,
    time_ms: Millis,
    d: &mut Decision,
) -> GrantCheck {
    if d.outcome != Outcome::RequireApproval {
        return GrantCheck::default();
    }
    let id = grant::approval_id(policy_hash, req, params_json, &d.rules);
    let checked = req.approval.as_deref().map(|token| grant::check(approval_key, token, &id, time_ms));
    d.approval.get_or_insert_with(|| Approval { id: String::new(), approvers: Vec::new() }).id.clone_from(&id);
    GrantCheck { approval_id: Some(id), grant: checked }
}

/// What the record takes from the phases beyond the decision itself.
#[derive(Default)]
pub(crate) struct RecordFacts {
    /// The approval id (approval outcomes, and granted calls).
    pub approval_id: Option<String>,
    /// Who approved, when a grant allowed the call.
    pub approved_by: Option<String>,
    /// Every matched limit's state after the call.
    pub limits: Vec<LimitState>,
    /// The session's live marks after the call, when the call touched marks.
    pub marks: Vec<String>,
}

/// What [`commit`] needs to add the decision's marks (§10).
pub(crate) struct MarksCommit<'b, 't> {
    /// The mark table, when [`read_marks`] locked it.
    pub table: Option<MutexGuard<'t, MarkTable>>,
    /// The request's session.
    pub session: Option<&'b str>,
    /// The determining rules (those in `rules`) that have marks, in bundle order.
    pub marking: Vec<&'b Rule>,
    /// Whether a matching rule tested `session.marks` ([`RuleMatch::reads_marks`]).
    pub reads: bool,
    /// The ttl of a mark written without one (`marks_ttl`).
    pub default_ttl_ms: i64,
}

/// The decision's rules in `rules` that have marks: the winning rules, when they
/// determine the outcome (a decision by limits or the default has none).
pub(crate) fn marking_rules<'b>(matched: &RuleMatch<'b>, d: &Decision) -> Vec<&'b Rule> {
    if matched.best != Some(d.outcome) {
        return Vec::new();
    }
    matched.winners.iter().filter(|r| !r.marks.is_empty()).collect()
}

/// Decides a call stopped by a kill switch (§6.1): rule `kill:SCOPE:ID`, the kill's
/// reason (or one made up when it has none).
pub(crate) fn killed(d: &mut Decision, k: Kill) {
    d.rules.push(format!("kill:{}:{}", k.scope.as_str(), k.id));
    d.reason = if k.reason.is_empty() { format!("killed: {} \"{}\"", k.scope.as_str(), k.id) } else { k.reason };
}

/// Makes `d` a denial by a pseudo-rule alone (§10, §11): `rules` is `[it]`, the fixed
/// reason, one error `{rule: it, path: "state", message}`, no approval.
pub(crate) fn deny_alone(d: &mut Decision, failure: StateFailure) {
    let rule = failure.fault.rule();
    d.outcome = Outcome::Deny;
    d.rules.clear();
    d.rules.push(rule.into());
    d.reason = failure.fault.reason().into();
    d.approval = None;
    d.errors.clear();
    d.errors.push(DecisionError { rule: rule.into(), path: "state".into(), message: failure.message });
}

/// Applies a checked grant (already checked unused by the caller's store): a valid
/// one allows the call (`approved by WHO: …`) and is returned to be used; a rejected
/// one lists its error under the first determining rule. A decision with no
/// determining rule to name fails with [`EvalError::Invariant`].
pub(crate) fn approve(d: &mut Decision, result: Result<Checked, GrantRejection>) -> Result<Option<Checked>, EvalError> {
    let first = d.rules.first().cloned().ok_or_else(|| {
        EvalError::invariant("a grant was checked for a decision without a determining rule".to_string())
    })?;
    match result {
        Ok(c) => {
            d.outcome = Outcome::Allow;
            d.approval = None;
            d.reason = format!("approved by {}: {}", c.grant.by, d.reason);
            Ok(Some(c))
        }
        Err(why) => {
            d.errors.push(DecisionError { rule: first, path: "approval".into(), message: why.message().into() });
            Ok(None)
        }
    }
}

/// Lists `no session: marks not recorded` under each marking rule of a call without
/// a session.
pub(crate) fn no_session(d: &mut Decision, marking: &[&Rule]) {
    for r in marking {
        d.errors.push(DecisionError {
            rule: r.id.clone(),
            path: "session".into(),
            message: "no session: marks not recorded".into(),
        });
    }
}

/// The marks the marking rules add at `time_ms`: label and expiry (a mark without a
/// ttl gets `default_ttl_ms`).
pub(crate) fn new_marks<'b, 'm>(
    marking: &'m [&'b Rule],
    time_ms: Millis,
    default_ttl_ms: i64,
) -> impl Iterator<Item = (&'b Arc<str>, Millis)> + use<'b, 'm> {
    marking
        .iter()
        .flat_map(|r| &r.marks)
        .map(move |m| (&m.label, time_ms.saturating_add(m.ttl_ms.unwrap_or(default_ttl_ms))))
}

/// Phase 5 — commit: the only phase that changes the engine's state. Decides
/// whether the checked grant may be used (the call is then allowed, `approved by
/// WHO: …`), then makes room for the marks the decision adds, then — all or nothing
/// — uses the grant, counts the call in every matched limit if it is allowed and
/// adds the marks.
///
/// Guarantees: a grant allows at most one call per engine (a second use lists
/// `grant already used` and the decision stays `require_approval`); a rejected
/// grant lists its error under the first determining rule; counters change only for
/// an allowed call, under the lock they were checked under, and the recorded limit
/// states are the counters after the call. An allow or deny adds the marks of its
/// rules in `rules` to the session (a `require_approval` adds none); without a
/// session each such rule lists `no session: marks not recorded`; a session that
/// cannot be given a place (the table is full) turns the decision into a deny by
/// `state:full` with nothing used, counted or added. A decision with no
/// determining rule to name, or with marks to add while the table is not locked,
/// fails with [`EvalError::Invariant`].
#[inline(always)] // one call site, on the hot path
pub(crate) fn commit(
    d: &mut Decision,
    checked: GrantCheck,
    used: &Mutex<UsedGrants>,
    time_ms: Millis,
    limits: LimitsChecked<'_, '_>,
    marks: MarksCommit<'_, '_>,
) -> Result<RecordFacts, EvalError> {
    let mut facts = RecordFacts { approval_id: checked.approval_id, ..RecordFacts::default() };
    let mut grant_use = None;
    if let Some(result) = checked.grant {
        let guard = lock(used);
        if let Some(c) = approve(d, result.and_then(|c| guard.check_unused(&c).map(|()| c)))? {
            grant_use = Some((guard, c));
        }
    }
    let MarksCommit { mut table, session, marking, reads, default_ttl_ms } = marks;
    if (reads || !marking.is_empty()) && table.is_none() {
        return Err(EvalError::invariant("a rule touching marks decided, but the marks were not read".to_string()));
    }
    let adds = d.outcome != Outcome::RequireApproval && !marking.is_empty();
    let full = match (session, table.as_deref_mut()) {
        (None, _) => {
            no_session(d, &marking);
            None
        }
        (Some(s), Some(t)) if adds => t.reserve(s, time_ms).err().map(|_| t.capacity()),
        _ => None,
    };
    if let Some(cap) = full {
        // §10/§11: the pseudo-rule denies alone; nothing is used, counted or added.
        deny_alone(
            d,
            StateFailure { fault: StateFault::Full, message: format!("max_sessions ({cap}) sessions hold live marks") },
        );
        facts.approval_id = None;
        facts.limits = limits.checks.iter().map(|c| c.state(c.before)).collect();
        return Ok(facts);
    }
    if let Some((mut guard, c)) = grant_use {
        guard.consume(&c, time_ms).map_err(|why| {
            EvalError::invariant(format!("a grant checked unused could not be used: {}", why.message()))
        })?;
        facts.approved_by = Some(c.grant.by);
    }
    let LimitsChecked { table: limit_table, checks, .. } = limits;
    if let Some(mut limit_table) = limit_table {
        facts.limits.reserve_exact(checks.len());
        for check in checks {
            let mut counter = check.before;
            if d.outcome == Outcome::Allow {
                counter.calls = counter.calls.saturating_add(1);
                counter.sum += check.add;
                limit_table.put(check.key.clone(), counter, check.window_end);
            }
            facts.limits.push(check.state(counter));
        }
    }
    if let (Some(s), Some(t)) = (session, table.as_deref_mut()) {
        if adds {
            t.sweep(time_ms);
            let new = new_marks(&marking, time_ms, default_ttl_ms).map(|(l, exp)| (l.clone(), exp));
            t.add(s, new).map_err(|_| EvalError::invariant("a reserved session had no place".to_string()))?;
        }
        if reads || !marking.is_empty() {
            facts.marks = t.live(s, time_ms);
        }
    }
    Ok(facts)
}

/// Phase 6a — build the record (§5.2) of a finished decision: the request's record
/// fields ([`Field::in_record`](crate::request::Field::in_record)), the resolved
/// time, the params hash, the decision's outcome, rules and reason, the number of
/// its errors and the facts of [`commit`]. `seq`, `prev`, `hash` and `sig` are left
/// for [`Engine::seal`](super::Engine::seal).
#[inline(always)] // one call site, on the hot path
pub(crate) fn build_record(
    req: &Request,
    time: String,
    params_sha256: String,
    d: &Decision,
    facts: RecordFacts,
    kid: Option<String>,
    policy: String,
) -> AuditRecord {
    AuditRecord {
        seq: 0,
        time,
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
        approval_id: facts.approval_id,
        approved_by: facts.approved_by,
        errors: d.errors.len(),
        limits: facts.limits,
        marks: facts.marks,
        kid,
        policy,
        prev: String::new(),
        hash: String::new(),
        sig: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{Compiled, Engine, EngineOptions};
    use crate::policy::{load_yaml, Bundle};
    use crate::request::RequestLimits;
    use crate::MemorySink;
    use std::sync::Arc;

    const BUNDLE: &str = r#"
aegis: 1
default: allow
rules:
  - {id: small, match: {tool: pay}, when: {params.amount: {lte: 100}}, outcome: allow}
  - {id: big, match: {tool: pay}, when: {params.amount: {gt: 100}}, outcome: require_approval, approvers: [boss, cfo]}
  - {id: big-too, match: {tool: pay}, when: {params.amount: {gt: 100}}, outcome: require_approval, approvers: [cfo, x]}
  - {id: no-evil, match: {tool: pay}, when: {params.to: {eq: evil}}, outcome: deny, reason: no evil}
  - {id: shaky-allow, match: {tool: pay}, when: {params.missing: {eq: 1}}, outcome: allow}
limits:
  - {id: calls, match: {tool: pay}, per: [agent, session], window: 1m, max_calls: 2}
  - {id: sum, match: {tool: pay, environment: prod}, window: 1h, sum: params.amount, max_sum: 150, outcome: require_approval}
"#;

    fn bundle() -> Bundle {
        load_yaml(BUNDLE).unwrap()
    }

    fn req(json: &str) -> Request {
        Request::from_json(json, &RequestLimits::default()).unwrap()
    }

    fn ctx<'a>(r: &'a Request, time: &'a str) -> Ctx<'a> {
        Ctx { req: r, time_ms: crate::time::parse_rfc3339(time).unwrap(), time_str: time, marks: MarksSeen::NotRead }
    }

    const T: &str = "2026-01-05T10:00:00.000Z";

    fn no_marks() -> MarksCommit<'static, 'static> {
        MarksCommit { table: None, session: None, marking: Vec::new(), reads: false, default_ttl_ms: 1000 }
    }

    fn matched<'b>(b: &'b Bundle, r: &Request, explain: bool) -> RuleMatch<'b> {
        let all: Vec<u32> = (0..b.rules.len() as u32).collect();
        match_rules(&b.rules, &all, 0, &ctx(r, T), explain).unwrap()
    }

    fn ids(w: &Winners<'_>) -> Vec<String> {
        w.iter().map(|r| r.id.clone()).collect()
    }

    #[test]
    fn match_rules_keeps_the_best_outcome_and_fails_closed_on_errors() {
        let b = bundle();
        // amount 500 to evil: small false, big and big-too apply, no-evil applies (deny
        // beats them); shaky-allow errs and, allowing, does not apply.
        let r = req(r#"{"agent":"a","tool":"pay","params":{"amount":500,"to":"evil"}}"#);
        let m = matched(&b, &r, true);
        assert_eq!(m.best, Some(Outcome::Deny));
        assert_eq!(ids(&m.winners), ["no-evil"]);
        assert_eq!(m.errors.len(), 1);
        assert_eq!((m.errors[0].rule.as_str(), m.errors[0].path.as_str()), ("shaky-allow", "params.missing"));
        let ex = m.explain.unwrap();
        assert_eq!(ex.len(), 5, "one entry per candidate");
        assert_eq!(ex.iter().map(|e| e.applied).collect::<Vec<_>>(), [false, true, true, true, false]);
        // Equal outcomes are all winners, in bundle order.
        let r = req(r#"{"agent":"a","tool":"pay","params":{"amount":500,"to":"x","missing":1}}"#);
        let m = matched(&b, &r, false);
        assert_eq!(m.best, Some(Outcome::RequireApproval));
        assert_eq!(ids(&m.winners), ["big", "big-too"]);
        assert!(m.explain.is_none() && m.errors.is_empty());
        // A candidate that errs and denies applies (fail closed).
        let b2 = load_yaml("aegis: 1\nrules:\n  - {id: d, when: {params.x: {gt: 1}}, outcome: deny}\n").unwrap();
        let m = matched(&b2, &req(r#"{"agent":"a","tool":"t"}"#), false);
        assert_eq!((m.best, ids(&m.winners)), (Some(Outcome::Deny), vec!["d".to_string()]));
        // No candidate: nothing applies.
        let m = match_rules(&b.rules, &[], 0, &ctx(&r, T), false).unwrap();
        assert!(m.best.is_none() && m.winners.len() == 0);
    }

    #[test]
    fn match_rules_refuses_candidates_that_are_not_the_bundles() {
        let b = bundle();
        let r = req(r#"{"agent":"a","tool":"pay","params":{"amount":5,"to":"evil"}}"#);
        for bad in [&[0u32, 9][..], &[3, 2], &[1, 1], &[u32::MAX]] {
            let e = match_rules(&b.rules, bad, 0, &ctx(&r, T), false).err();
            assert!(matches!(e, Some(EvalError::Invariant(_))), "{bad:?}: {e:?}");
        }
    }

    #[test]
    fn check_limits_reads_but_does_not_count() {
        let b = bundle();
        let table = Mutex::new(LimitTable::new(100));
        // No session: `per: [agent, session]` keys on an absent session; no
        // environment: the `sum` limit's selector errs, so it matches (fail closed).
        let r = req(r#"{"agent":"a","tool":"pay","params":{"amount":"lots"}}"#);
        let mut errors = Vec::new();
        let c = check_limits(&b.limits, &ctx(&r, T), &table, &mut errors).unwrap();
        assert_eq!(c.checks.len(), 2);
        assert!(c.table.is_some(), "the table stays locked for commit");
        let got: Vec<(&str, &str, &str)> =
            errors.iter().map(|e| (e.rule.as_str(), e.path.as_str(), e.message.as_str())).collect();
        assert_eq!(
            got,
            [
                ("limit:sum", "environment", "no value at \"environment\""),
                ("limit:sum", "params.amount", "sum expects a number, found string"),
            ]
        );
        assert_eq!(c.exceeded.len(), 1);
        assert_eq!(c.exceeded[0].1, "limit \"sum\" exceeded: max_sum 150 per 1h");
        drop(c);
        assert_eq!(lock(&table).len(), 0, "checking counts nothing");
        // A limit that does not match locks nothing.
        let other = req(r#"{"agent":"a","tool":"files"}"#);
        let c = check_limits(&b.limits, &ctx(&other, T), &table, &mut errors).unwrap();
        assert!(c.table.is_none() && c.checks.is_empty());
        // A full table: the call counts as exceeding (never a fresh counter).
        let full = Mutex::new(LimitTable::new(1));
        lock(&full).put(("x".into(), vec![], 0), Counter::default(), i64::MAX);
        let mut errors = Vec::new();
        let r = req(r#"{"agent":"a","tool":"pay","session":"s","params":{"amount":1}}"#);
        let c = check_limits(&b.limits[..1], &ctx(&r, T), &full, &mut errors).unwrap();
        assert_eq!(c.exceeded[0].1, "limit \"calls\" exceeded: the limit table is full");
        assert_eq!(errors[0].message, "limit state unavailable: the limit table is full");
    }

    #[test]
    fn check_limits_refuses_a_per_field_that_is_not_a_key() {
        let mut b = bundle();
        b.limits[0].per.push(crate::request::Field::Params);
        let table = Mutex::new(LimitTable::new(10));
        let r = req(r#"{"agent":"a","tool":"pay"}"#);
        let e = check_limits(&b.limits, &ctx(&r, T), &table, &mut Vec::new()).err();
        assert!(matches!(e, Some(EvalError::Invariant(_))), "{e:?}");
    }

    fn limit(b: &Bundle, id: &str) -> Limit {
        b.limits.iter().find(|l| l.id == id).unwrap().clone()
    }

    #[test]
    fn combine_orders_rules_then_limits_and_names_the_reason() {
        let b = bundle();
        // Nothing applies: the default.
        let mut d = Decision::undecided();
        combine(Outcome::Allow, &RuleMatch::default(), &[], &mut d).unwrap();
        assert_eq!((d.outcome, d.rules.clone()), (Outcome::Allow, vec!["default".to_string()]));
        assert_eq!(d.reason, "no rule applies; the bundle default is allow");
        // Two approval rules and an approval limit: rules, then the limit; approvers
        // merged in order.
        let r = req(r#"{"agent":"a","tool":"pay","params":{"amount":500,"to":"x","missing":0}}"#);
        let m = matched(&b, &r, false);
        let sum = limit(&b, "sum");
        let mut d = Decision::undecided();
        combine(b.default, &m, &[(&sum, "over".into())], &mut d).unwrap();
        assert_eq!(d.outcome, Outcome::RequireApproval);
        assert_eq!(d.rules, ["big", "big-too", "limit:sum"]);
        assert_eq!(d.reason, "rule \"big\" decided require_approval");
        assert_eq!(d.approval.as_ref().unwrap().approvers, ["boss", "cfo", "x"]);
        // A deny limit beats allowing rules: only the limit determines.
        let calls = limit(&b, "calls");
        let m = matched(&b, &req(r#"{"agent":"a","tool":"pay","params":{"amount":5,"to":"x","missing":0}}"#), false);
        let mut d = Decision::undecided();
        combine(b.default, &m, &[(&calls, "limit \"calls\" exceeded".into())], &mut d).unwrap();
        assert_eq!((d.outcome, d.rules.clone()), (Outcome::Deny, vec!["limit:calls".to_string()]));
        assert_eq!(d.reason, "limit \"calls\" exceeded");
        assert!(d.approval.is_none());
    }

    #[test]
    fn combine_refuses_an_outcome_nothing_decided() {
        let inconsistent = RuleMatch { best: Some(Outcome::Deny), ..RuleMatch::default() };
        let e = combine(Outcome::Allow, &inconsistent, &[], &mut Decision::undecided()).err();
        assert!(matches!(e, Some(EvalError::Invariant(_))), "{e:?}");
    }

    fn approval_decision(rules: &[&str]) -> Decision {
        let mut d = Decision::undecided();
        d.outcome = Outcome::RequireApproval;
        d.rules = rules.iter().map(|s| s.to_string()).collect();
        d
    }

    #[test]
    fn grant_computes_the_id_and_checks_without_using() {
        let r = req(r#"{"agent":"a","tool":"pay","params":{"amount":500}}"#);
        let mut params = String::new();
        crate::json::write_object(&mut params, &r.params);
        let id = grant::approval_id("h", &r, &params, &["big".into()]);
        // Not require_approval: no id, the token is not looked at.
        let mut d = Decision::undecided();
        let g = grant(Some(b"k"), "h", &r, &params, 0, &mut d);
        assert!(g.approval_id.is_none() && g.grant.is_none() && d.approval.is_none());
        // require_approval without a token: the id only.
        let mut d = approval_decision(&["big"]);
        let g = grant(Some(b"k"), "h", &r, &params, 0, &mut d);
        assert_eq!(g.approval_id.as_deref(), Some(id.as_str()));
        assert_eq!(d.approval.as_ref().map(|a| a.id.as_str()), Some(id.as_str()));
        assert!(g.grant.is_none());
        // With a token: checked (twice, the same: nothing is used up here).
        let mut with = r.clone();
        with.approval =
            Some(grant::make_token(b"k", &Grant { by: "alice".into(), exp: 4_102_444_800, id: id.clone() }));
        for _ in 0..2 {
            let g = grant(Some(b"k"), "h", &with, &params, 0, &mut approval_decision(&["big"]));
            assert!(matches!(g.grant, Some(Ok(_))));
        }
        let g = grant(None, "h", &with, &params, 0, &mut approval_decision(&["big"]));
        assert!(matches!(g.grant, Some(Err(GrantRejection::NoKey))));
        let g = grant(Some(b"k"), "h", &with, &params, 0, &mut approval_decision(&["other"]));
        assert!(matches!(g.grant, Some(Err(GrantRejection::OtherRequest))));
    }

    use super::grant::Grant;

    #[test]
    fn commit_uses_a_grant_once_and_counts_only_allowed_calls() {
        let b = bundle();
        let table = Mutex::new(LimitTable::new(10));
        let used = Mutex::new(UsedGrants::default());
        let r = req(r#"{"agent":"a","tool":"pay","params":{"amount":500}}"#);
        let mut params = String::new();
        crate::json::write_object(&mut params, &r.params);
        let id = grant::approval_id("h", &r, &params, &["big".into()]);
        let mut with = r.clone();
        with.approval = Some(grant::make_token(b"k", &Grant { by: "alice".into(), exp: 4_102_444_800, id }));
        let run = |d: &mut Decision| {
            let g = grant(Some(b"k"), "h", &with, &params, 0, d);
            let limits = check_limits(&b.limits[..1], &ctx(&with, T), &table, &mut Vec::new()).unwrap();
            commit(d, g, &used, 0, limits, no_marks()).unwrap()
        };
        let mut first = approval_decision(&["big"]);
        first.reason = "needs a boss".into();
        let facts = run(&mut first);
        assert_eq!(first.outcome, Outcome::Allow);
        assert_eq!(first.reason, "approved by alice: needs a boss");
        assert!(first.approval.is_none());
        assert_eq!(facts.approved_by.as_deref(), Some("alice"));
        assert!(facts.approval_id.is_some());
        assert_eq!(facts.limits, [LimitState { id: "calls".into(), calls: 1, sum: None }]);
        // The same grant again: used, the call still waits, nothing counted.
        let mut again = approval_decision(&["big"]);
        let facts = run(&mut again);
        assert_eq!(again.outcome, Outcome::RequireApproval);
        assert_eq!(again.errors.len(), 1);
        assert_eq!((again.errors[0].rule.as_str(), again.errors[0].message.as_str()), ("big", "grant already used"));
        assert_eq!(facts.limits, [LimitState { id: "calls".into(), calls: 1, sum: None }]);
        assert_eq!(lock(&table).len(), 1);
    }

    #[test]
    fn commit_refuses_a_grant_error_with_no_rule_to_name() {
        let used = Mutex::new(UsedGrants::default());
        let table = Mutex::new(LimitTable::new(10));
        let b = bundle();
        let r = req(r#"{"agent":"a","tool":"files"}"#);
        let limits = check_limits(&b.limits, &ctx(&r, T), &table, &mut Vec::new()).unwrap();
        let checked = GrantCheck { approval_id: None, grant: Some(Err(GrantRejection::Malformed)) };
        let e = commit(&mut Decision::undecided(), checked, &used, 0, limits, no_marks()).err();
        assert!(matches!(e, Some(EvalError::Invariant(_))), "{e:?}");
    }

    #[test]
    fn build_record_takes_the_request_decision_and_facts() {
        let r = req(
            r#"{"agent":"a","tool":"pay","action":"x","chain":["o"],"session":"s","environment":"e","params":{"amount":5}}"#,
        );
        let mut d = approval_decision(&["big"]);
        d.reason = "why".into();
        d.errors.push(DecisionError { rule: "big".into(), path: "p".into(), message: "m".into() });
        let facts = RecordFacts {
            approval_id: Some("apr_1".into()),
            approved_by: None,
            limits: vec![LimitState { id: "l".into(), calls: 2, sum: None }],
            marks: vec!["pii".into()],
        };
        let rec = build_record(&r, T.into(), "ph".into(), &d, facts, Some("kid".into()), "pol".into());
        assert_eq!((rec.agent.as_str(), rec.tool.as_str(), rec.action.as_deref()), ("a", "pay", Some("x")));
        assert_eq!((rec.session.as_deref(), rec.environment.as_deref()), (Some("s"), Some("e")));
        assert_eq!(rec.chain, ["o"]);
        assert_eq!((rec.time.as_str(), rec.params_sha256.as_str(), rec.policy.as_str()), (T, "ph", "pol"));
        assert_eq!((rec.outcome, rec.rules.clone(), rec.reason.as_str()), (Some(d.outcome), d.rules.clone(), "why"));
        assert_eq!((rec.errors, rec.approval_id.as_deref(), rec.kid.as_deref()), (1, Some("apr_1"), Some("kid")));
        assert_eq!((rec.limits.len(), rec.marks.clone()), (1, vec!["pii".to_string()]));
        assert!(rec.hash.is_empty() && rec.prev.is_empty() && rec.sig.is_none(), "left for seal");
    }

    fn engine_with(sinks: Vec<Box<dyn crate::AuditSink>>, signed: bool) -> Engine {
        let mut o = EngineOptions { sinks, ..EngineOptions::default() };
        if signed {
            o.signing_key = crate::Key::new("signing_key", b"sign").ok();
        }
        Engine::from_yaml(BUNDLE, o).unwrap()
    }

    #[test]
    fn seal_chains_hashes_signs_and_writes() {
        let sink = MemorySink::default();
        let e = engine_with(vec![Box::new(sink.clone())], true);
        let r = req(r#"{"agent":"a","tool":"pay","time":"2026-01-05T10:00:00Z","params":{"amount":5}}"#);
        let d1 = e.evaluate(&r).unwrap();
        let d2 = e.evaluate(&r).unwrap();
        assert_eq!((d1.audit.seq, d2.audit.seq), (0, 1));
        assert_eq!(d1.audit.prev, crate::audit::GENESIS);
        assert_eq!(d2.audit.prev, d1.audit.hash);
        for d in [&d1, &d2] {
            let mut again = d.audit.clone();
            again.seal(Some(b"sign"));
            assert_eq!((&again.hash, &again.sig), (&d.audit.hash, &d.audit.sig));
        }
        assert_eq!(*sink.0.lock().unwrap(), [d1.audit.to_json(), d2.audit.to_json()]);
        // Without a sink: the same hashes (the lock-light path).
        let bare = engine_with(Vec::new(), true);
        let b1 = bare.evaluate(&r).unwrap();
        assert_eq!(
            (b1.audit.hash.as_str(), b1.audit.sig.as_deref()),
            (d1.audit.hash.as_str(), d1.audit.sig.as_deref())
        );
    }

    /// A sink that fails every write.
    struct Failing;
    impl crate::AuditSink for Failing {
        fn write(&mut self, _: &AuditRecord, _: &str) -> Result<(), crate::AuditError> {
            Err(crate::AuditError::Callback("no".into()))
        }
    }

    #[test]
    fn seal_does_not_advance_the_chain_when_the_first_sink_fails() {
        let e = engine_with(vec![Box::new(Failing)], false);
        let r = req(r#"{"agent":"a","tool":"pay","time":"2026-01-05T10:00:00Z"}"#);
        assert!(matches!(e.evaluate(&r), Err(EvalError::Audit(_))));
        assert_eq!(e.chain_head().unwrap(), (0, crate::audit::GENESIS.to_string()));
        // A later sink's failure fails the call, but the chain has advanced (§9a).
        let sink = MemorySink::default();
        let e = engine_with(vec![Box::new(sink.clone()), Box::new(Failing)], false);
        assert!(matches!(e.evaluate(&r), Err(EvalError::Audit(_))));
        assert_eq!(e.chain_head().unwrap().0, 1);
        assert_eq!(sink.0.lock().unwrap().len(), 1);
    }

    /// The acceptance test of issue 17: a compiled index that is not its bundle's —
    /// one naming a rule that does not exist, or a bundle that lost a rule after
    /// indexing — cannot silently drop a deny rule: the evaluation fails and
    /// nothing is recorded.
    #[test]
    fn a_corrupted_index_cannot_drop_a_deny_rule() {
        let yaml = "aegis: 1\ndefault: allow\nrules:\n  - {id: ok, match: {tool: t}, outcome: allow}\n  - {id: stop, match: {tool: t}, outcome: deny}\n";
        let sink = MemorySink::default();
        let e = Engine::from_yaml(yaml, EngineOptions { sinks: vec![Box::new(sink.clone())], ..Default::default() })
            .unwrap();
        let r = req(r#"{"agent":"a","tool":"t","time":"2026-01-05T10:00:00Z"}"#);
        assert_eq!(e.evaluate(&r).unwrap().outcome, Outcome::Deny);
        // 1. The deny rule is dropped from the bundle after indexing: the index names
        //    a rule that does not exist.
        let mut dropped = Compiled::new(load_yaml(yaml).unwrap());
        dropped.bundle.rules.pop();
        e.policy.store(Arc::new(dropped));
        let got = e.evaluate(&r);
        assert!(matches!(got, Err(EvalError::Invariant(_))), "{got:?}");
        // 2. The index is another bundle's (same rules, the deny rule gone).
        let other =
            load_yaml("aegis: 1\ndefault: allow\nrules:\n  - {id: ok, match: {tool: t}, outcome: allow}\n").unwrap();
        let swapped =
            Compiled { index: crate::compile::Index::build(&other), ..Compiled::new(load_yaml(yaml).unwrap()) };
        e.policy.store(Arc::new(swapped));
        let got = e.evaluate(&r);
        assert!(matches!(got, Err(EvalError::Invariant(_))), "{got:?}");
        // 3. The index names a rule out of range (an index of a longer bundle, paired
        //    with a bundle whose count was forged to match).
        let longer = load_yaml(&format!("{yaml}  - {{id: more, match: {{tool: t}}, outcome: allow}}\n")).unwrap();
        let mut forged = Compiled::new(longer);
        forged.bundle.rules.truncate(2);
        forged.index = crate::compile::Index::build(
            &load_yaml(&format!("{yaml}  - {{id: more, match: {{tool: t}}, outcome: allow}}\n")).unwrap(),
        );
        forged.index.forge_rule_count(2);
        e.policy.store(Arc::new(forged));
        let got = e.evaluate(&r);
        assert!(matches!(got, Err(EvalError::Invariant(_))), "{got:?}");
        // Nothing was recorded for the refused evaluations, and the chain is intact.
        assert_eq!(sink.0.lock().unwrap().len(), 1);
        assert_eq!(e.chain_head().unwrap().0, 1);
        let info = crate::ErrorInfo::from(&EvalError::Invariant("x".into()));
        assert!(info.message.contains("internal invariant broken"));
    }
}
