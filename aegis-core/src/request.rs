//! The request (§1): what an agent asks to do, validated before anything is decided.

use crate::json;
use crate::time::{self, Millis};
use crate::value::{is_exact_magnitude, Map, Value, ValuePath};

/// Bounds on a request's size and shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RequestLimits {
    /// Most bytes of request JSON (and of canonical JSON, for native requests).
    pub max_bytes: usize,
    /// Deepest nesting of `params` and `context` (`params` itself is depth 1).
    pub max_depth: usize,
}

impl Default for RequestLimits {
    fn default() -> Self {
        RequestLimits { max_bytes: 1 << 20, max_depth: 64 }
    }
}

/// A validated request.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Request {
    /// Id of the agent making the call.
    pub agent: String,
    /// Tool (or MCP server/tool) name.
    pub tool: String,
    /// Operation of the tool.
    pub action: Option<String>,
    /// The tool's arguments.
    pub params: Map,
    /// Ancestor agents, outermost first.
    pub chain: Vec<String>,
    /// Conversation / run id.
    pub session: Option<String>,
    /// `prod`, `staging`, …
    pub environment: Option<String>,
    /// Anything else the host knows.
    pub context: Option<Map>,
    /// Request time in milliseconds since the epoch (from RFC 3339).
    pub time: Option<Millis>,
    /// An approval grant token.
    pub approval: Option<String>,
}

/// A request that breaks §1. It names the field at fault.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid request: {message}")]
pub struct RequestError {
    /// The field at fault (`agent`, `params`, …), or empty when the request as a whole
    /// is at fault (not JSON, not an object, too large).
    pub field: String,
    /// What is wrong.
    pub message: String,
}

impl RequestError {
    /// An error about `field`.
    pub fn new(field: &str, message: impl Into<String>) -> Self {
        RequestError { field: field.to_owned(), message: message.into() }
    }
}

/// How a request field is written (§1), which decides how it is checked, resolved
/// and serialised.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A string of 1–256 bytes without control characters (an id or a name).
    Name,
    /// A list of names, outermost first (`chain`).
    Names,
    /// A JSON object bounded in depth and size (`params`, `context`).
    Object,
    /// An RFC 3339 date-time, resolved to milliseconds (`time`).
    Time,
    /// A grant token of 1–4096 bytes (`approval`).
    Token,
}

/// A field of the request (§1). [`Field::ALL`] is the one table of request fields:
/// the request parser, policy selectors (`match`), condition paths, limit keys
/// (`per`), the approval-id request (§4) and the audit record (§5.2) all take their
/// field names and their choice of fields from it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Field {
    /// `agent`: the calling agent's id (required).
    Agent,
    /// `tool`: the tool (or MCP server/tool) called (required).
    Tool,
    /// `action`: the tool's operation.
    Action,
    /// `session`: the conversation or run id.
    Session,
    /// `environment`: `prod`, `staging`, ….
    Environment,
    /// `chain`: the ancestor agents, outermost first.
    Chain,
    /// `time`: when the call is made (default: the engine's clock).
    Time,
    /// `params`: the tool's arguments.
    Params,
    /// `context`: anything else the host knows.
    Context,
    /// `approval`: a grant token for this very request.
    Approval,
}

/// The table columns [`Field::select`] derives lists from.
#[derive(Clone, Copy)]
enum Flag {
    Selector,
    Path,
    ApprovalId,
}

/// One row of the request-field table.
struct Row {
    name: &'static str,
    kind: Kind,
    /// A request without it is refused.
    required: bool,
    /// A `match` selector can name it (and kill switches and `per` read it as a name).
    selector: bool,
    /// A condition path can start with it.
    path: bool,
    /// A limit's `per` can key counters on it.
    limit_key: bool,
    /// Part of the request hashed into an approval id.
    approval_id: bool,
    /// Copied into the audit record (`time` as resolved).
    record: bool,
}

impl Field {
    /// Every field, in table order: selectors first, in the order they are evaluated
    /// (and their errors listed), then the other path roots, then `approval`.
    pub const ALL: [Field; 10] = [
        Field::Agent,
        Field::Tool,
        Field::Action,
        Field::Session,
        Field::Environment,
        Field::Chain,
        Field::Time,
        Field::Params,
        Field::Context,
        Field::Approval,
    ];

    const fn row(self) -> Row {
        const fn row(name: &'static str, kind: Kind, flags: [bool; 6]) -> Row {
            let [required, selector, path, limit_key, approval_id, record] = flags;
            Row { name, kind, required, selector, path, limit_key, approval_id, record }
        }
        //                                               required selector path   per    apr_id record
        match self {
            Field::Agent => row("agent", Kind::Name, [true, true, true, true, true, true]),
            Field::Tool => row("tool", Kind::Name, [true, true, true, true, true, true]),
            Field::Action => row("action", Kind::Name, [false, true, true, true, true, true]),
            Field::Session => row("session", Kind::Name, [false, true, true, true, true, true]),
            Field::Environment => row("environment", Kind::Name, [false, true, true, false, true, true]),
            Field::Chain => row("chain", Kind::Names, [false, false, true, false, true, true]),
            Field::Time => row("time", Kind::Time, [false, false, true, false, false, true]),
            Field::Params => row("params", Kind::Object, [false, false, true, false, true, false]),
            Field::Context => row("context", Kind::Object, [false, false, true, false, true, false]),
            Field::Approval => row("approval", Kind::Token, [false, false, false, false, false, false]),
        }
    }

    /// The field's name in requests, policies and records.
    pub const fn name(self) -> &'static str {
        self.row().name
    }

    /// How the field is written.
    pub const fn kind(self) -> Kind {
        self.row().kind
    }

    /// Whether a request must have it (`agent`, `tool`).
    pub const fn is_required(self) -> bool {
        self.row().required
    }

    /// Whether a `match` selector can name it.
    pub const fn is_selector(self) -> bool {
        self.row().selector
    }

    /// Whether a condition path can start with it.
    pub const fn is_path_root(self) -> bool {
        self.row().path
    }

    /// Whether a limit's `per` can key counters on it.
    pub const fn is_limit_key(self) -> bool {
        self.row().limit_key
    }

    /// Whether it is part of the request an approval id is computed from (§4).
    pub const fn in_approval_id(self) -> bool {
        self.row().approval_id
    }

    /// Whether the audit record carries it (§5.2).
    pub const fn in_record(self) -> bool {
        self.row().record
    }

    /// The selector fields, in evaluation order (position `i` is slot `i` of
    /// [`Selectors::fields`](crate::policy::Selectors) and bit `1 << i` of
    /// [`Proven`](crate::compile::Proven)).
    pub const SELECTORS: [Field; 5] = Field::select(Flag::Selector);

    /// The fields a condition path can start with, in table order.
    pub const PATH_ROOTS: [Field; 9] = Field::select(Flag::Path);

    /// The fields of the approval-id request, in canonical (sorted) key order.
    pub const APPROVAL_ID: [Field; 8] = Field::sorted(Field::select(Flag::ApprovalId));

    /// Every field name, in table order (for "did you mean" hints).
    pub const NAMES: [&'static str; 10] = Field::names(Field::ALL);

    /// The selector names, in evaluation order.
    pub const SELECTOR_NAMES: [&'static str; 5] = Field::names(Field::SELECTORS);

    /// The path root names, in table order.
    pub const PATH_ROOT_NAMES: [&'static str; 9] = Field::names(Field::PATH_ROOTS);

    /// The field named `name`.
    pub fn parse(name: &str) -> Option<Field> {
        Field::ALL.into_iter().find(|f| f.name() == name)
    }

    /// The selector field named `name`.
    pub fn parse_selector(name: &str) -> Option<Field> {
        Field::parse(name).filter(|f| f.is_selector())
    }

    /// The path root named `name`.
    pub fn parse_path_root(name: &str) -> Option<Field> {
        Field::parse(name).filter(|f| f.is_path_root())
    }

    /// The field's slot among the selectors, if it is one.
    #[allow(clippy::indexing_slicing)] // `i` stays below the length
    pub const fn selector_slot(self) -> Option<usize> {
        let mut i = 0;
        while i < Field::SELECTORS.len() {
            if Field::SELECTORS[i] as u8 == self as u8 {
                return Some(i);
            }
            i += 1;
        }
        None
    }

    /// The field's bit in a set of selector fields (`1 << slot`; 0 for a field that is
    /// not a selector).
    pub const fn selector_bit(self) -> u8 {
        match self.selector_slot() {
            Some(i) => 1 << i,
            None => 0,
        }
    }

    /// The field's value in `req` when it is a [`Kind::Name`] field that is present
    /// (`None` for an absent optional name, and for fields of other kinds).
    pub fn name_in(self, req: &Request) -> Option<&str> {
        match self {
            Field::Agent => Some(&req.agent),
            Field::Tool => Some(&req.tool),
            Field::Action => req.action.as_deref(),
            Field::Session => req.session.as_deref(),
            Field::Environment => req.environment.as_deref(),
            Field::Chain | Field::Time | Field::Params | Field::Context | Field::Approval => None,
        }
    }

    /// The fields of `ALL` with `flag`, in table order; `N` must be their number
    /// (checked at compile time).
    #[allow(clippy::indexing_slicing)] // const evaluation: an index out of range fails the build
    const fn select<const N: usize>(flag: Flag) -> [Field; N] {
        let mut out = [Field::Agent; N];
        let (mut i, mut n) = (0, 0);
        while i < Field::ALL.len() {
            let f = Field::ALL[i];
            let keep = match flag {
                Flag::Selector => f.is_selector(),
                Flag::Path => f.is_path_root(),
                Flag::ApprovalId => f.in_approval_id(),
            };
            if keep {
                out[n] = Field::ALL[i];
                n += 1;
            }
            i += 1;
        }
        assert!(n == N, "the table has another number of such fields");
        out
    }

    /// `fields` sorted by name (bytes: canonical JSON order for these ASCII names).
    #[allow(clippy::indexing_slicing)] // const evaluation: an index out of range fails the build
    const fn sorted<const N: usize>(mut fields: [Field; N]) -> [Field; N] {
        const fn less(a: &str, b: &str) -> bool {
            let (a, b) = (a.as_bytes(), b.as_bytes());
            let mut i = 0;
            while i < a.len() && i < b.len() {
                if a[i] != b[i] {
                    return a[i] < b[i];
                }
                i += 1;
            }
            a.len() < b.len()
        }
        let mut i = 1;
        while i < N {
            let mut j = i;
            while j > 0 && less(fields[j].name(), fields[j - 1].name()) {
                let t = fields[j];
                fields[j] = fields[j - 1];
                fields[j - 1] = t;
                j -= 1;
            }
            i += 1;
        }
        fields
    }

    #[allow(clippy::indexing_slicing)] // const evaluation: an index out of range fails the build
    const fn names<const N: usize>(fields: [Field; N]) -> [&'static str; N] {
        let mut out = [""; N];
        let mut i = 0;
        while i < N {
            out[i] = fields[i].name();
            i += 1;
        }
        out
    }
}

impl std::fmt::Display for Field {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl Request {
    /// Parses and validates request JSON text.
    pub fn from_json(text: &str, limits: &RequestLimits) -> Result<Request, RequestError> {
        if text.len() > limits.max_bytes {
            return Err(RequestError::new(
                "",
                format!("request is {} bytes; the limit is {}", text.len(), limits.max_bytes),
            ));
        }
        // The request object is depth 1, so params may reach max_depth + 1.
        let v = json::parse_numbers_unchecked(text, limits.max_depth + 1)
            .map_err(|e| RequestError::new("", format!("not valid JSON: {}", e.message)))?;
        Request::from_value(v, limits)
    }

    /// Validates a request given as a value (what the bindings build from native
    /// objects).
    pub fn from_value(v: Value, limits: &RequestLimits) -> Result<Request, RequestError> {
        let Value::Object(map) = v else {
            return Err(RequestError::new("", format!("a request is a JSON object, found a {}", v.type_name())));
        };
        let mut r = Request::default();
        let mut size = 64usize;
        let mut seen = 0u16;
        for (key, value) in map {
            if let Value::Null = value {
                return Err(RequestError::new(&key, format!("`{key}` is null; leave the field out instead")));
            }
            let Some(field) = Field::parse(&key) else {
                let hint = crate::suggest::closest(&key, Field::NAMES)
                    .map(|s| format!(" (did you mean `{s}`?)"))
                    .unwrap_or_default();
                return Err(RequestError::new(&key, format!("unknown field `{key}`{hint}")));
            };
            seen |= 1 << field as u16;
            match field {
                Field::Agent => r.agent = name(&key, value)?,
                Field::Tool => r.tool = name(&key, value)?,
                Field::Action => r.action = Some(name(&key, value)?),
                Field::Session => r.session = Some(name(&key, value)?),
                Field::Environment => r.environment = Some(name(&key, value)?),
                Field::Chain => r.chain = names(&key, value)?,
                Field::Time => r.time = Some(time_field(&key, value)?),
                Field::Params => r.params = object(&key, value, limits, &mut size)?,
                Field::Context => r.context = Some(object(&key, value, limits, &mut size)?),
                Field::Approval => r.approval = Some(token(&key, value)?),
            }
        }
        if let Some(missing) = Field::ALL.into_iter().find(|f| f.is_required() && seen & (1 << *f as u16) == 0) {
            return Err(RequestError::new(missing.name(), format!("`{missing}` is required")));
        }
        size += r.agent.len() + r.tool.len() + r.chain.iter().map(|c| c.len() + 3).sum::<usize>();
        if size > limits.max_bytes {
            return Err(RequestError::new("", format!("request is larger than {} bytes", limits.max_bytes)));
        }
        Ok(r)
    }

    /// The request time, or `now` when the request has none.
    pub fn time_or(&self, now: impl FnOnce() -> Millis) -> Millis {
        self.time.unwrap_or_else(now)
    }

    /// The request as data, for approval ids (§4): the fields of
    /// [`Field::APPROVAL_ID`] (so without `time` and `approval`), absent optional
    /// names omitted, `params`, `context` and `chain` always present. The approval id
    /// hashes the canonical JSON of exactly these parts ([`Request::approval_parts`]).
    pub fn approval_value(&self) -> Value {
        let mut m = Map::new();
        for (f, part) in self.approval_parts() {
            let v = match part {
                ApprovalPart::Name(s) => Value::String(s.to_owned()),
                ApprovalPart::Names(l) => Value::Array(l.iter().map(|s| Value::String(s.clone())).collect()),
                ApprovalPart::Object(o) => Value::Object(o.cloned().unwrap_or_default()),
            };
            m.insert(f.name().into(), v);
        }
        Value::Object(m)
    }

    /// The parts of the approval-id request, in canonical key order: every field of
    /// [`Field::APPROVAL_ID`] but an absent optional name.
    pub fn approval_parts(&self) -> impl Iterator<Item = (Field, ApprovalPart<'_>)> + '_ {
        Field::APPROVAL_ID.into_iter().filter_map(move |f| {
            let part = match f.kind() {
                Kind::Name => ApprovalPart::Name(f.name_in(self)?),
                Kind::Names => ApprovalPart::Names(&self.chain),
                Kind::Object => ApprovalPart::Object(match f {
                    Field::Params => Some(&self.params),
                    _ => self.context.as_ref(),
                }),
                // Not part of the approval id (the table says so; a test checks it).
                Kind::Time | Kind::Token => return None,
            };
            Some((f, part))
        })
    }

    /// The request as JSON data (for `aegis eval` inputs, tests and replay): every
    /// field present, but empty `params` and `chain` left out.
    pub fn to_value(&self) -> Value {
        let mut m = Map::new();
        for f in Field::ALL {
            let v = match f {
                Field::Agent | Field::Tool | Field::Action | Field::Session | Field::Environment => {
                    f.name_in(self).map(|s| Value::String(s.to_owned()))
                }
                Field::Chain => (!self.chain.is_empty())
                    .then(|| Value::Array(self.chain.iter().map(|s| Value::String(s.clone())).collect())),
                Field::Time => self.time.map(|t| Value::String(time::format_utc(t))),
                Field::Params => (!self.params.is_empty()).then(|| Value::Object(self.params.clone())),
                Field::Context => self.context.clone().map(Value::Object),
                Field::Approval => self.approval.clone().map(Value::String),
            };
            if let Some(v) = v {
                m.insert(f.name().into(), v);
            }
        }
        Value::Object(m)
    }

    /// Checks the size bound, and that every number is within ±(2^53 − 1) (§9a), on a
    /// request built field by field in Rust (requests from [`Request::from_json`] and
    /// [`Request::from_value`] are checked already).
    pub fn check_size(&self, limits: &RequestLimits) -> Result<(), RequestError> {
        let mut size = 64 + self.agent.len() + self.tool.len() + self.chain.iter().map(|c| c.len() + 3).sum::<usize>();
        let mut big = false;
        for m in [Some(&self.params), self.context.as_ref()].into_iter().flatten() {
            size += m.iter().map(|(k, v)| k.len() + 4 + measure(v, &mut big).1).sum::<usize>() + 2;
        }
        if size > limits.max_bytes {
            return Err(RequestError::new("", format!("request is larger than {} bytes", limits.max_bytes)));
        }
        if big {
            for (field, m) in [("params", Some(&self.params)), ("context", self.context.as_ref())] {
                let root = ValuePath::Key(&ValuePath::Root, field);
                for (k, x) in m.into_iter().flatten() {
                    if let Some(msg) = inexact_number(x, &ValuePath::Key(&root, k)) {
                        return Err(RequestError::new(field, msg));
                    }
                }
            }
        }
        Ok(())
    }
}

/// A part of the approval-id request (§4), borrowed from the request.
#[derive(Clone, Copy, Debug)]
pub enum ApprovalPart<'a> {
    /// A name field.
    Name(&'a str),
    /// `chain` (present even when empty).
    Names(&'a [String]),
    /// `params` or `context` (`None`: no context, written `{}`).
    Object(Option<&'a Map>),
}

/// Validates `chain`: a list of names.
fn names(field: &str, v: Value) -> Result<Vec<String>, RequestError> {
    let Value::Array(items) = v else {
        return Err(RequestError::new(
            field,
            format!("`{field}` must be a list of agent ids, found a {}", v.type_name()),
        ));
    };
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        out.push(name(&format!("{field}[{i}]"), item).map_err(|mut e| {
            e.field = field.into();
            e
        })?);
    }
    Ok(out)
}

/// Validates `time`: an RFC 3339 string.
fn time_field(field: &str, v: Value) -> Result<Millis, RequestError> {
    let Value::String(s) = v else {
        return Err(RequestError::new(
            field,
            format!("`{field}` must be an RFC 3339 string, found a {}", v.type_name()),
        ));
    };
    time::parse_rfc3339(&s).map_err(|m| RequestError::new(field, format!("`{field}`: {m}")))
}

/// Validates `approval`: a grant token string of 1–4096 bytes.
fn token(field: &str, v: Value) -> Result<String, RequestError> {
    let Value::String(s) = v else {
        return Err(RequestError::new(
            field,
            format!("`{field}` must be a grant token string, found a {}", v.type_name()),
        ));
    };
    if s.is_empty() || s.len() > 4096 {
        return Err(RequestError::new(field, format!("`{field}` must be 1–4096 bytes")));
    }
    Ok(s)
}

/// Validates a name field: a string of 1–256 bytes without control characters.
fn name(field: &str, v: Value) -> Result<String, RequestError> {
    let Value::String(s) = v else {
        return Err(RequestError::new(field, format!("`{field}` must be a string, found a {}", v.type_name())));
    };
    check_name(field, &s)?;
    Ok(s)
}

/// Checks a name: 1–256 bytes, no control characters.
pub fn check_name(field: &str, s: &str) -> Result<(), RequestError> {
    if s.is_empty() {
        return Err(RequestError::new(field, format!("`{field}` must not be empty")));
    }
    if s.len() > 256 {
        return Err(RequestError::new(field, format!("`{field}` is {} bytes; the limit is 256", s.len())));
    }
    if s.chars().any(char::is_control) {
        return Err(RequestError::new(field, format!("`{field}` contains a control character")));
    }
    Ok(())
}

fn object(field: &str, v: Value, limits: &RequestLimits, size: &mut usize) -> Result<Map, RequestError> {
    let Value::Object(m) = v else {
        return Err(RequestError::new(field, format!("`{field}` must be an object, found a {}", v.type_name())));
    };
    let mut depth = 1;
    let mut bytes = 2;
    let mut big = false;
    for (k, x) in &m {
        let (d, b) = measure(x, &mut big);
        depth = depth.max(1 + d);
        bytes += k.len() + 4 + b;
    }
    if depth > limits.max_depth {
        return Err(RequestError::new(
            field,
            format!("`{field}` is nested {depth} levels deep; the limit is {}", limits.max_depth),
        ));
    }
    if big {
        let root = ValuePath::Key(&ValuePath::Root, field);
        for (k, x) in &m {
            if let Some(msg) = inexact_number(x, &ValuePath::Key(&root, k)) {
                return Err(RequestError::new(field, msg));
            }
        }
    }
    *size += bytes + field.len() + 4;
    Ok(m)
}

/// The first number beyond ±(2^53 − 1) in `v` (§9a: numbers are exact or refused), as
/// an error naming its path. Beyond that magnitude binary64 — and so canonical JSON,
/// every binding's numbers and every comparison — rounds: `1234567890123456700` and
/// `…789` would compare equal, hash alike and share an approval id. The value itself is
/// not shown: it is already rounded.
fn inexact_number(v: &Value, path: &ValuePath<'_>) -> Option<String> {
    match v {
        Value::Number(n) if !is_exact_magnitude(*n) => {
            let mut p = String::new();
            path.render(&mut p);
            Some(format!(
                "`{p}` is a number beyond ±9007199254740991 (2^53 − 1), where numbers stop being exact; \
                 send large ids as strings"
            ))
        }
        Value::Array(a) => a.iter().enumerate().find_map(|(i, x)| inexact_number(x, &ValuePath::Index(path, i))),
        Value::Object(m) => m.iter().find_map(|(k, x)| inexact_number(x, &ValuePath::Key(path, k))),
        _ => None,
    }
}

/// Depth (a scalar is 0) and an upper estimate of the canonical JSON size; sets `big`
/// when a number is beyond ±(2^53 − 1) (see [`inexact_number`]).
fn measure(v: &Value, big: &mut bool) -> (usize, usize) {
    match v {
        Value::Null => (0, 4),
        Value::Bool(_) => (0, 5),
        Value::Number(n) => {
            *big |= !is_exact_magnitude(*n);
            (0, 24)
        }
        Value::String(s) => (0, s.len() + 2),
        Value::Array(a) => a.iter().fold((1, 2), |(d, b), x| {
            let (xd, xb) = measure(x, big);
            (d.max(1 + xd), b + xb + 1)
        }),
        Value::Object(m) => m.iter().fold((1, 2), |(d, b), (k, x)| {
            let (xd, xb) = measure(x, big);
            (d.max(1 + xd), b + k.len() + 4 + xb)
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Request, RequestError> {
        Request::from_json(s, &RequestLimits::default())
    }

    #[test]
    fn valid_request() {
        let r = parse(r#"{"agent":"a","tool":"t","action":"x","params":{"n":5},"chain":["s"],"time":"2026-01-05T10:00:00.1234Z"}"#).unwrap();
        assert_eq!(r.agent, "a");
        assert_eq!(r.chain, vec!["s".to_string()]);
        assert_eq!(r.time.map(time::format_utc).as_deref(), Some("2026-01-05T10:00:00.123Z"));
    }

    #[test]
    fn errors_name_the_field() {
        let cases = [
            (r#"{"tool":"t"}"#, "agent"),
            (r#"{"agent":"a"}"#, "tool"),
            (r#"{"agent":null,"tool":"t"}"#, "agent"),
            (r#"{"agent":"a","tool":"t","action":null}"#, "action"),
            (r#"{"agent":"a","tool":"t","agnet":"x"}"#, "agnet"),
            (r#"{"agent":"","tool":"t"}"#, "agent"),
            (r#"{"agent":"a\u0007","tool":"t"}"#, "agent"),
            (r#"{"agent":"a","tool":5}"#, "tool"),
            (r#"{"agent":"a","tool":"t","params":[]}"#, "params"),
            (r#"{"agent":"a","tool":"t","chain":["ok",""]}"#, "chain"),
            (r#"{"agent":"a","tool":"t","time":"yesterday"}"#, "time"),
            (r#"[1]"#, ""),
        ];
        for (text, field) in cases {
            let e = parse(text).unwrap_err();
            assert_eq!(e.field, field, "{text}: {e}");
        }
        let long = format!(r#"{{"agent":"{}","tool":"t"}}"#, "a".repeat(257));
        // Native requests are bounded by their canonical size, like JSON text.
        let mut big = Map::new();
        big.insert("x".into(), Value::String("a".repeat(2 << 20)));
        let mut m = Map::new();
        m.insert("agent".into(), Value::from("a"));
        m.insert("tool".into(), Value::from("t"));
        m.insert("params".into(), Value::Object(big));
        assert_eq!(Request::from_value(Value::Object(m), &RequestLimits::default()).unwrap_err().field, "");
        assert_eq!(parse(&long).unwrap_err().field, "agent");
    }

    /// §9a: every number in params/context is within ±(2^53 − 1) or the request is
    /// refused with the path — however it is written or built. (This replaces the
    /// v1 rule, which refused only integers beyond 64 bits; its fuzz finding,
    /// `111111111111111115000.5`, is refused by the new rule too.)
    #[test]
    fn numbers_beyond_2_pow_53_are_refused_with_their_path() {
        let l = RequestLimits::default();
        for bad in [
            "9007199254740992",
            "-9007199254740992",
            "9007199254740993",
            "1234567890123456789",
            "18446744073709551616",
            "111111111111111115000.5",
            "1e16",
            "9.007199254740992e15",
            "1e21",
            "-1e300",
            "9007199254740991.9",
        ] {
            let t = format!(r#"{{"agent":"a","tool":"t","context":{{"x":[1,{{"y":{bad}}}]}}}}"#);
            let e = Request::from_json(&t, &l).unwrap_err();
            assert_eq!(e.field, "context", "{bad}");
            assert!(e.message.starts_with("`context.x.1.y` is a number beyond ±9007199254740991"), "{bad}: {e}");
        }
        for ok in ["9007199254740991", "-9007199254740991", "9007199254740991.0", "1.5", "0.1", "-0", "1e15", "5e-324"]
        {
            let t = format!(r#"{{"agent":"a","tool":"t","params":{{"x":{ok}}}}}"#);
            let r = Request::from_json(&t, &l).unwrap();
            let again = Request::from_json(&r.to_value().to_canonical_json(), &l).unwrap();
            assert_eq!(again.to_value(), r.to_value(), "{ok}");
        }
        // Built natively (as a binding does) or field by field: the same rule.
        let mut params = Map::new();
        params.insert("n".into(), Value::Number(9007199254740992.0));
        let v = Value::Object(Map::from_iter([
            ("agent".to_string(), Value::String("a".into())),
            ("tool".to_string(), Value::String("t".into())),
            ("params".to_string(), Value::Object(params.clone())),
        ]));
        let e = Request::from_value(v, &l).unwrap_err();
        assert_eq!(e.field, "params");
        assert!(e.message.starts_with("`params.n` is a number beyond"), "{e}");
        let r = Request { agent: "a".into(), tool: "t".into(), params, ..Request::default() };
        assert!(r.check_size(&l).is_err());
    }

    #[test]
    fn the_field_table_derives_every_list() {
        let names = |fs: &[Field]| fs.iter().map(|f| f.name()).collect::<Vec<_>>();
        assert_eq!(Field::SELECTOR_NAMES, ["agent", "tool", "action", "session", "environment"]);
        assert_eq!(names(&Field::SELECTORS), Field::SELECTOR_NAMES);
        assert_eq!(
            Field::PATH_ROOT_NAMES,
            ["agent", "tool", "action", "session", "environment", "chain", "time", "params", "context"]
        );
        assert_eq!(
            names(&Field::APPROVAL_ID),
            ["action", "agent", "chain", "context", "environment", "params", "session", "tool"]
        );
        let keys: Vec<Field> = Field::ALL.into_iter().filter(|f| f.is_limit_key()).collect();
        assert_eq!(keys, [Field::Agent, Field::Tool, Field::Action, Field::Session]);
        let required: Vec<Field> = Field::ALL.into_iter().filter(|f| f.is_required()).collect();
        assert_eq!(required, [Field::Agent, Field::Tool]);
        for (i, f) in Field::SELECTORS.into_iter().enumerate() {
            assert_eq!(f.selector_slot(), Some(i));
            assert_eq!(f.selector_bit(), 1 << i);
            assert_eq!(f.kind(), Kind::Name, "selectors, kill switches and `per` read names");
        }
        for f in Field::ALL {
            assert_eq!(Field::parse(f.name()), Some(f));
            assert_eq!(f.is_selector(), f.selector_slot().is_some());
            if f.is_limit_key() {
                assert!(f.is_selector());
            }
        }
        assert_eq!(Field::Approval.selector_bit(), 0);
        assert!(!Field::Approval.is_path_root() && Field::parse_path_root("approval").is_none());
    }

    /// The request's unknown-field hints now walk the table's order; for every word
    /// within two edits of a field name they name the field the old list
    /// (agent, tool, action, params, chain, session, environment, context, time,
    /// approval) named (checked exhaustively when the table was introduced; here
    /// on a sample).
    #[test]
    fn hints_are_those_of_the_old_order() {
        let old =
            ["agent", "tool", "action", "params", "chain", "session", "environment", "context", "time", "approval"];
        for w in [
            "agnet",
            "tol",
            "acton",
            "parms",
            "chian",
            "sesion",
            "enviroment",
            "contxt",
            "tim",
            "aproval",
            "x",
            "tiem",
            "ation",
        ] {
            assert_eq!(crate::suggest::closest(w, Field::NAMES), crate::suggest::closest(w, old), "{w}");
        }
    }

    #[test]
    fn to_value_round_trips_every_field() {
        let text = r#"{"action":"x","agent":"a","approval":"v1.a.b","chain":["o"],"context":{"k":1},"environment":"e","params":{"n":2},"session":"s","time":"2026-01-05T10:00:00.000Z","tool":"t"}"#;
        let r = parse(text).unwrap();
        assert_eq!(r.to_value().to_canonical_json(), text);
        let bare = parse(r#"{"agent":"a","tool":"t","params":{},"chain":[]}"#).unwrap();
        assert_eq!(bare.to_value().to_canonical_json(), r#"{"agent":"a","tool":"t"}"#);
        assert_eq!(
            bare.approval_value().to_canonical_json(),
            r#"{"agent":"a","chain":[],"context":{},"params":{},"tool":"t"}"#
        );
    }

    #[test]
    fn depth_bound() {
        let mut p = String::from("1");
        for _ in 0..63 {
            p = format!("{{\"a\":{p}}}");
        }
        // params = {"x": <63 levels>} is 64 deep: fine.
        assert!(parse(&format!(r#"{{"agent":"a","tool":"t","params":{{"x":{p}}}}}"#)).is_ok());
        assert!(parse(&format!(r#"{{"agent":"a","tool":"t","params":{{"x":{{"y":{p}}}}}}}"#)).is_err());
        let deep = format!(r#"{{"agent":"a","tool":"t","params":{}1{}}}"#, "[".repeat(10_000), "]".repeat(10_000));
        assert!(parse(&deep).is_err());
    }
}
