//! Evaluation of selectors and conditions with three-valued (Kleene) logic (§3).

pub mod boundary;

use crate::json;
use crate::policy::{Cond, Field, Op, Path, Pattern, Root, Rule, Selectors, Test};
use crate::request::Request;
use crate::time::Millis;
use crate::value::{Map, TypeName, Value};
use std::sync::Arc;

/// A three-valued result.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tri {
    /// The test or condition holds.
    True,
    /// It does not hold.
    False,
    /// Cannot be decided (missing value, wrong type…).
    Error,
}

/// A test error: the path and what went wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TestError {
    /// The path as written.
    pub path: String,
    /// What went wrong.
    pub message: String,
}

/// A test that did not hold, for explain traces.
#[derive(Clone, Debug, PartialEq)]
pub struct FailedTest {
    /// The path as written.
    pub path: String,
    /// The operator (`match` for a selector).
    pub op: String,
    /// The operand as written.
    pub operand: Value,
    /// The value seen (`None`: no value).
    pub value: Option<Value>,
    /// `false` or `error`.
    pub result: Tri,
}

/// What an evaluation reads: the request, its resolved time and that time as text,
/// and the session's marks.
pub struct Ctx<'a> {
    /// The request being decided.
    pub req: &'a Request,
    /// The request time, or the engine's clock when the request has none.
    pub time_ms: Millis,
    /// The resolved time in UTC form (the value of the path `time`).
    pub time_str: &'a str,
    /// The value of `session.marks`.
    pub marks: MarksSeen<'a>,
}

/// `session.marks` as a decision sees it (§10).
#[derive(Clone, Copy, Debug)]
pub enum MarksSeen<'a> {
    /// The session's live marks at decision time, sorted (`[]` when none is live).
    Live(&'a [Arc<str>]),
    /// The request has no session: `session.marks` does not resolve.
    NoSession,
    /// The session's marks cannot be known (the table is full and does not hold it):
    /// `session.marks` does not resolve, and the message says why.
    Unknown(&'static str),
    /// The engine did not read the marks, as no candidate rule tests them; a test of
    /// them is then an error (fail closed), never an empty list.
    NotRead,
}

impl MarksSeen<'_> {
    /// The message of a test of `path` (rooted at `session.marks`) that did not resolve.
    fn missing(&self, path: &str) -> String {
        match self {
            MarksSeen::Unknown(why) => (*why).to_owned(),
            MarksSeen::NotRead => format!("no value at \"{path}\": the session's marks were not read"),
            MarksSeen::Live(_) | MarksSeen::NoSession => format!("no value at \"{path}\""),
        }
    }
}

/// A value a path resolved to, borrowed from the request.
#[derive(Clone, Copy)]
pub enum Seen<'a> {
    /// A string field (agent, tool, time…) or a chain entry.
    Str(&'a str),
    /// The whole `chain` (a list of agent ids).
    Chain(&'a [String]),
    /// `session.marks` (a sorted list of labels).
    Labels(&'a [Arc<str>]),
    /// `params` or `context` themselves.
    Map(&'a Map),
    /// A value inside params or context.
    Val(&'a Value),
}

impl<'a> Seen<'a> {
    fn type_name(&self) -> TypeName {
        match self {
            Seen::Str(_) => TypeName::String,
            Seen::Chain(_) | Seen::Labels(_) => TypeName::List,
            Seen::Map(_) => TypeName::Object,
            Seen::Val(v) => v.type_name(),
        }
    }

    fn as_str(&self) -> Option<&'a str> {
        match *self {
            Seen::Str(s) => Some(s),
            Seen::Val(Value::String(s)) => Some(s),
            _ => None,
        }
    }

    fn as_num(&self) -> Option<f64> {
        match self {
            Seen::Val(Value::Number(n)) => Some(*n),
            _ => None,
        }
    }

    fn is_scalar(&self) -> bool {
        match self {
            Seen::Str(_) => true,
            Seen::Val(v) => v.is_scalar(),
            _ => false,
        }
    }

    /// The value as owned data (explain traces only).
    pub fn to_value(self) -> Value {
        match self {
            Seen::Str(s) => Value::String((*s).to_owned()),
            Seen::Chain(c) => Value::Array(c.iter().map(|s| Value::String(s.clone())).collect()),
            Seen::Labels(l) => Value::Array(l.iter().map(|s| Value::from(&**s)).collect()),
            Seen::Map(m) => Value::Object((*m).clone()),
            Seen::Val(v) => (*v).clone(),
        }
    }

    fn eq_value(&self, other: &Value) -> bool {
        match (self, other) {
            (Seen::Str(a), Value::String(b)) => crate::value::bytes_eq(a.as_bytes(), b.as_bytes()),
            (Seen::Chain(a), Value::Array(b)) => {
                a.len() == b.len() && a.iter().zip(b).all(|(x, y)| y.as_str() == Some(x))
            }
            (Seen::Labels(a), Value::Array(b)) => {
                a.len() == b.len() && a.iter().zip(b).all(|(x, y)| y.as_str() == Some(&**x))
            }
            (Seen::Map(a), Value::Object(b)) => *a == b,
            (Seen::Val(a), b) => *a == b,
            _ => false,
        }
    }

    /// Iterates a list value as `Seen`s.
    fn list(&self) -> Option<ListIter<'a>> {
        match *self {
            Seen::Chain(c) => Some(ListIter::Chain(c.iter())),
            Seen::Labels(l) => Some(ListIter::Labels(l.iter())),
            Seen::Val(Value::Array(a)) => Some(ListIter::Val(a.iter())),
            _ => None,
        }
    }
}

enum ListIter<'a> {
    Chain(std::slice::Iter<'a, String>),
    Labels(std::slice::Iter<'a, Arc<str>>),
    Val(std::slice::Iter<'a, Value>),
}

impl<'a> Iterator for ListIter<'a> {
    type Item = Seen<'a>;
    fn next(&mut self) -> Option<Seen<'a>> {
        match self {
            ListIter::Chain(i) => i.next().map(|s| Seen::Str(s)),
            ListIter::Labels(i) => i.next().map(|s| Seen::Str(s)),
            ListIter::Val(i) => i.next().map(Seen::Val),
        }
    }
}

/// Resolves a path against the request (`None`: no value there). A root that is not
/// a path root ([`Field::is_path_root`]; the loader never makes one) has no value,
/// which fails closed like any missing value.
pub fn resolve<'a>(path: &Path, ctx: &Ctx<'a>) -> Option<Seen<'a>> {
    let r = ctx.req;
    let field = match path.root {
        Root::Field(f) => f,
        Root::Marks => {
            let MarksSeen::Live(marks) = ctx.marks else { return None };
            return match path.segments.first() {
                None => Some(Seen::Labels(marks)),
                Some(seg) => seg.index.and_then(|i| marks.get(i)).map(|s| Seen::Str(s)),
            };
        }
    };
    let start = match field {
        Field::Agent | Field::Tool | Field::Action | Field::Session | Field::Environment => {
            return field.name_in(r).map(Seen::Str)
        }
        Field::Time => return Some(Seen::Str(ctx.time_str)),
        Field::Chain => {
            return match path.segments.first() {
                None => Some(Seen::Chain(&r.chain)),
                Some(seg) => seg.index.and_then(|i| r.chain.get(i)).map(|s| Seen::Str(s)),
            }
        }
        Field::Params => &r.params,
        Field::Context => r.context.as_ref()?,
        Field::Approval => return None,
    };
    let mut segs = path.segments.iter();
    let Some(first) = segs.next() else { return Some(Seen::Map(start)) };
    let mut cur = start.get(&first.key)?;
    for seg in segs {
        cur = match cur {
            Value::Object(m) => m.get(&seg.key)?,
            Value::Array(a) => a.get(seg.index?)?,
            _ => return None,
        };
    }
    Some(Seen::Val(cur))
}

/// Collects errors and (optionally) an explain trace while evaluating.
pub struct Sink<'t> {
    /// Errors of the tests evaluated so far (truncated when hidden).
    pub errors: Vec<TestError>,
    /// Failed tests, when explaining.
    pub trace: Option<&'t mut Vec<FailedTest>>,
}

/// Evaluates a rule's selectors and condition together, `all(selectors…, when)`, for a
/// candidate whose selectors on the fields in `proven` (bit
/// `1 << i` for [`Field::SELECTORS`]`[i]`) are known to match the request (see
/// [`Index::lookup`](crate::compile::Index::lookup)): those are not tested again.
pub fn eval_rule_proven(rule: &Rule, ctx: &Ctx<'_>, sink: &mut Sink<'_>, proven: u8) -> Tri {
    let mark = sink.errors.len();
    let mut result = eval_selectors_except(&rule.selectors, ctx, sink, true, proven);
    if result == Tri::False {
        sink.errors.truncate(mark);
        return Tri::False;
    }
    if let Some(c) = &rule.when {
        match eval_cond(c, ctx, sink) {
            Tri::False => {
                sink.errors.truncate(mark);
                return Tri::False;
            }
            Tri::Error => result = Tri::Error,
            Tri::True => {}
        }
    }
    result
}

/// Evaluates selectors in field order. With `short`, stops at the first false.
pub fn eval_selectors(sel: &Selectors, ctx: &Ctx<'_>, sink: &mut Sink<'_>, short: bool) -> Tri {
    eval_selectors_except(sel, ctx, sink, short, 0)
}

/// [`eval_selectors`] without the fields in `skip` (bit `1 << i` for
/// [`Field::SELECTORS`]`[i]`). A field without a selector matches anything.
pub fn eval_selectors_except(sel: &Selectors, ctx: &Ctx<'_>, sink: &mut Sink<'_>, short: bool, skip: u8) -> Tri {
    let mut result = Tri::True;
    for (i, (f, pats)) in sel.iter().enumerate() {
        // No selector on the field: it matches anything. A proven one matches already.
        let Some(pats) = pats.filter(|_| skip & (1u8 << i) == 0) else { continue };
        match f.name_in(ctx.req) {
            None => {
                sink.errors.push(TestError { path: f.name().into(), message: format!("no value at \"{}\"", f.name()) });
                trace_selector(sink, f, pats, None, Tri::Error);
                result = Tri::Error;
            }
            Some(v) => {
                if !pats.iter().any(|p| p.matches(v)) {
                    trace_selector(sink, f, pats, Some(v), Tri::False);
                    if short {
                        return Tri::False;
                    }
                    result = Tri::False;
                }
            }
        }
    }
    result
}

fn trace_selector(sink: &mut Sink<'_>, f: Field, pats: &[Pattern], v: Option<&str>, result: Tri) {
    if let Some(t) = sink.trace.as_deref_mut() {
        let operand = Value::Array(
            pats.iter()
                .map(|p| match p {
                    Pattern::Exact(s) => Value::String(s.clone()),
                    Pattern::Glob(parts) => Value::String(parts.join("*")),
                })
                .collect(),
        );
        t.push(FailedTest { path: f.name().into(), op: "match".into(), operand, value: v.map(Value::from), result });
    }
}

/// Evaluates a condition.
pub fn eval_cond(c: &Cond, ctx: &Ctx<'_>, sink: &mut Sink<'_>) -> Tri {
    match c {
        Cond::All(parts) => {
            let mark = sink.errors.len();
            let mut result = Tri::True;
            for p in parts {
                match eval_cond(p, ctx, sink) {
                    Tri::False => {
                        sink.errors.truncate(mark);
                        return Tri::False;
                    }
                    Tri::Error => result = Tri::Error,
                    Tri::True => {}
                }
            }
            result
        }
        Cond::Any(parts) => {
            let mark = sink.errors.len();
            let mut result = Tri::False;
            for p in parts {
                match eval_cond(p, ctx, sink) {
                    Tri::True => {
                        sink.errors.truncate(mark);
                        return Tri::True;
                    }
                    Tri::Error => result = Tri::Error,
                    Tri::False => {}
                }
            }
            result
        }
        Cond::Not(inner) => match eval_cond(inner, ctx, sink) {
            Tri::True => Tri::False,
            Tri::False => Tri::True,
            Tri::Error => Tri::Error,
        },
        Cond::Test(t) => eval_test(t, ctx, sink),
    }
}

fn eval_test(t: &Test, ctx: &Ctx<'_>, sink: &mut Sink<'_>) -> Tri {
    let seen = resolve(&t.path, ctx);
    let result = match (&t.op, seen) {
        (Op::Exists(want), s) => Ok(s.is_some() == *want),
        (_, None) if t.path.root == Root::Marks => Err(ctx.marks.missing(&t.path.text)),
        (_, None) => Err(format!("no value at \"{}\"", t.path.text)),
        (op, Some(s)) => apply(op, s, ctx),
    };
    let tri = match &result {
        Ok(true) => Tri::True,
        Ok(false) => Tri::False,
        Err(_) => Tri::Error,
    };
    if let Err(message) = result {
        sink.errors.push(TestError { path: t.path.text.clone(), message });
    }
    if tri != Tri::True {
        if let Some(trace) = sink.trace.as_deref_mut() {
            trace.push(FailedTest {
                path: t.path.text.clone(),
                op: t.op.name().into(),
                operand: t.operand.clone(),
                value: seen.map(|s| s.to_value()),
                result: tri,
            });
        }
    }
    tri
}

/// Whether `x.to_lowercase()` contains one of the (already lower-cased) needles
/// `pairs[i].1`. ASCII text up to 512 bytes is lower-cased into a stack buffer (for
/// ASCII, `to_lowercase` is `to_ascii_lowercase`), with no allocation; anything else
/// takes the general path.
fn contains_any_lowercase(x: &str, pairs: &[(String, String)]) -> bool {
    let mut buf = [0u8; 512];
    if x.is_ascii() {
        if let Some(dst) = buf.get_mut(..x.len()) {
            for (d, b) in dst.iter_mut().zip(x.bytes()) {
                *d = b.to_ascii_lowercase();
            }
            if let Ok(lower) = std::str::from_utf8(dst) {
                return pairs.iter().any(|(_, l)| lower.contains(l.as_str()));
            }
        }
    }
    let lower = x.to_lowercase();
    pairs.iter().any(|(_, l)| lower.contains(l.as_str()))
}

fn wrong(op: &str, kind: &str, s: &Seen<'_>) -> String {
    format!("{op} expects a {kind}, found {}", s.type_name())
}

/// Applies an operator to a resolved value: `Ok(holds)` or `Err(message)`.
fn apply(op: &Op, s: Seen<'_>, ctx: &Ctx<'_>) -> Result<bool, String> {
    match op {
        Op::Eq(v) => Ok(s.eq_value(v)),
        Op::Ne(v) => Ok(!s.eq_value(v)),
        Op::Lt(n) | Op::Lte(n) | Op::Gt(n) | Op::Gte(n) => {
            let x = s.as_num().ok_or_else(|| wrong(op.name(), "number", &s))?;
            Ok(match op {
                Op::Lt(_) => x < *n,
                Op::Lte(_) => x <= *n,
                Op::Gt(_) => x > *n,
                _ => x >= *n,
            })
        }
        Op::In(list) | Op::NotIn(list) => {
            if !s.is_scalar() {
                return Err(wrong(op.name(), "scalar", &s));
            }
            let found = list.iter().any(|v| s.eq_value(v));
            Ok(found == matches!(op, Op::In(_)))
        }
        Op::StartsWith(p) => {
            s.as_str().map(|x| x.starts_with(p.as_str())).ok_or_else(|| wrong("starts_with", "string", &s))
        }
        Op::EndsWith(p) => s.as_str().map(|x| x.ends_with(p.as_str())).ok_or_else(|| wrong("ends_with", "string", &s)),
        Op::Matches(re) => s.as_str().map(|x| re.is_match(x)).ok_or_else(|| wrong("matches", "string", &s)),
        Op::Contains(v) => {
            if let Some(x) = s.as_str() {
                return match v {
                    Value::String(sub) => Ok(x.contains(sub.as_str())),
                    _ => Err("contains on a string expects a string operand".into()),
                };
            }
            match s.list() {
                Some(mut items) => Ok(items.any(|i| i.eq_value(v))),
                None => Err(wrong("contains", "string or list", &s)),
            }
        }
        Op::ContainsAny(pairs) | Op::ContainsNone(pairs) => {
            let any = if let Some(x) = s.as_str() {
                contains_any_lowercase(x, pairs)
            } else if let Some(items) = s.list() {
                // §9a: on a list, every element is a string tested like a string value
                // (case-insensitive substring), so a list is never weaker than a string:
                // ["sh", "-c", "sudo rm -rf /"] contains `sudo`.
                let mut any = false;
                for i in items {
                    let Some(x) = i.as_str() else {
                        return Err(format!("{} expects strings, found {}", op.name(), i.type_name()));
                    };
                    any = any || contains_any_lowercase(x, pairs);
                }
                any
            } else {
                return Err(wrong(op.name(), "string or list", &s));
            };
            Ok(any == matches!(op, Op::ContainsAny(_)))
        }
        Op::ContainsAll(list) => match s.list() {
            Some(items) => {
                let items: Vec<Seen<'_>> = items.collect();
                Ok(list.iter().all(|want| items.iter().any(|i| i.eq_value(want))))
            }
            None => Err(wrong("contains_all", "list", &s)),
        },
        Op::Within(prefixes) => each_string("within", s, |p| {
            let n = boundary::normalized(p).map_err(|e| match e {
                boundary::PathError::Relative => format!("\"{p}\" is not an absolute path"),
                boundary::PathError::Nul => "path contains a NUL byte".to_string(),
                boundary::PathError::AboveRoot => format!("\"{p}\" goes above the root"),
            })?;
            Ok(prefixes.iter().any(|pre| boundary::path_within(&n, pre)))
        }),
        Op::DomainIn(domains) => each_string("domain_in", s, |v| {
            let host = boundary::host_of(v).map_err(|_| format!("no host in \"{v}\""))?;
            Ok(domains.iter().any(|d| host.is_in(d)))
        }),
        Op::Count(ops) => {
            let n = match s {
                Seen::Str(x) => x.chars().count(),
                Seen::Val(Value::String(x)) => x.chars().count(),
                Seen::Chain(c) => c.len(),
                Seen::Labels(l) => l.len(),
                Seen::Map(m) | Seen::Val(Value::Object(m)) => m.len(),
                Seen::Val(Value::Array(a)) => a.len(),
                _ => return Err(wrong("count", "string, list or object", &s)),
            };
            let n = Value::Number(n as f64);
            let ns = Seen::Val(&n);
            for o in ops {
                if !apply(o, ns, ctx)? {
                    return Ok(false);
                }
            }
            Ok(true)
        }
        Op::Exists(want) => Ok(*want),
        Op::During(d) => {
            let ts = jiff::Timestamp::from_millisecond(ctx.time_ms).map_err(|_| "time out of range".to_string())?;
            let local = ts.to_zoned(d.zone.clone());
            if let Some(mask) = d.days {
                let wd = local.weekday().to_monday_zero_offset();
                if mask & (1u8 << wd) == 0 {
                    return Ok(false);
                }
            }
            if let Some((start, end)) = d.hours {
                let minute = i32::from(local.hour()) * 60 + i32::from(local.minute());
                let (start, end) = (i32::from(start), i32::from(end));
                let inside =
                    if start < end { minute >= start && minute < end } else { minute >= start || minute < end };
                if !inside {
                    return Ok(false);
                }
            }
            Ok(true)
        }
    }
}

/// Applies `f` to a string, or to every element of a list of strings; an invalid
/// element makes the whole test an error, else all must hold.
fn each_string(op: &str, s: Seen<'_>, mut f: impl FnMut(&str) -> Result<bool, String>) -> Result<bool, String> {
    if let Some(x) = s.as_str() {
        return f(x);
    }
    let Some(items) = s.list() else {
        return Err(wrong(op, "string or list", &s));
    };
    let mut all = true;
    for item in items {
        let Some(x) = item.as_str() else {
            return Err(format!("{op} expects strings, found {}", item.type_name()));
        };
        all &= f(x)?;
    }
    Ok(all)
}

/// A number in canonical JSON form (for messages).
pub fn num(n: f64) -> String {
    json::number_to_string(n)
}
