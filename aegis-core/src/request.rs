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

const FIELDS: [&str; 10] =
    ["agent", "tool", "action", "params", "chain", "session", "environment", "context", "time", "approval"];

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
        let mut have_agent = false;
        let mut have_tool = false;
        for (key, value) in map {
            if let Value::Null = value {
                return Err(RequestError::new(&key, format!("`{key}` is null; leave the field out instead")));
            }
            match key.as_str() {
                "agent" => {
                    r.agent = name(&key, value)?;
                    have_agent = true;
                }
                "tool" => {
                    r.tool = name(&key, value)?;
                    have_tool = true;
                }
                "action" => r.action = Some(name(&key, value)?),
                "session" => r.session = Some(name(&key, value)?),
                "environment" => r.environment = Some(name(&key, value)?),
                "params" => r.params = object(&key, value, limits, &mut size)?,
                "context" => r.context = Some(object(&key, value, limits, &mut size)?),
                "chain" => {
                    let Value::Array(items) = value else {
                        return Err(RequestError::new(
                            &key,
                            format!("`chain` must be a list of agent ids, found a {}", value.type_name()),
                        ));
                    };
                    let mut chain = Vec::with_capacity(items.len());
                    for (i, item) in items.into_iter().enumerate() {
                        chain.push(name(&format!("chain[{i}]"), item).map_err(|mut e| {
                            e.field = "chain".into();
                            e
                        })?);
                    }
                    r.chain = chain;
                }
                "time" => {
                    let Value::String(s) = value else {
                        return Err(RequestError::new(
                            &key,
                            format!("`time` must be an RFC 3339 string, found a {}", value.type_name()),
                        ));
                    };
                    r.time =
                        Some(time::parse_rfc3339(&s).map_err(|m| RequestError::new("time", format!("`time`: {m}")))?);
                }
                "approval" => {
                    let Value::String(s) = value else {
                        return Err(RequestError::new(
                            &key,
                            format!("`approval` must be a grant token string, found a {}", value.type_name()),
                        ));
                    };
                    if s.is_empty() || s.len() > 4096 {
                        return Err(RequestError::new(&key, "`approval` must be 1–4096 bytes"));
                    }
                    r.approval = Some(s);
                }
                other => {
                    let hint = crate::suggest::closest(other, FIELDS.iter().copied())
                        .map(|s| format!(" (did you mean `{s}`?)"))
                        .unwrap_or_default();
                    return Err(RequestError::new(other, format!("unknown field `{other}`{hint}")));
                }
            }
        }
        if !have_agent {
            return Err(RequestError::new("agent", "`agent` is required"));
        }
        if !have_tool {
            return Err(RequestError::new("tool", "`tool` is required"));
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

    /// The request as data, for approval ids (§4): without `time` and `approval`,
    /// absent optional strings omitted, `params`, `context` and `chain` always present.
    pub fn approval_value(&self) -> Value {
        let mut m = Map::new();
        m.insert("agent".into(), Value::String(self.agent.clone()));
        m.insert("tool".into(), Value::String(self.tool.clone()));
        for (k, v) in [("action", &self.action), ("session", &self.session), ("environment", &self.environment)] {
            if let Some(v) = v {
                m.insert(k.into(), Value::String(v.clone()));
            }
        }
        m.insert("params".into(), Value::Object(self.params.clone()));
        m.insert("context".into(), Value::Object(self.context.clone().unwrap_or_default()));
        m.insert("chain".into(), Value::Array(self.chain.iter().map(|s| Value::String(s.clone())).collect()));
        Value::Object(m)
    }

    /// The request as JSON data (for `aegis eval` inputs, tests and replay).
    pub fn to_value(&self) -> Value {
        let mut m = Map::new();
        m.insert("agent".into(), Value::String(self.agent.clone()));
        m.insert("tool".into(), Value::String(self.tool.clone()));
        for (k, v) in [
            ("action", &self.action),
            ("session", &self.session),
            ("environment", &self.environment),
            ("approval", &self.approval),
        ] {
            if let Some(v) = v {
                m.insert(k.into(), Value::String(v.clone()));
            }
        }
        if !self.params.is_empty() {
            m.insert("params".into(), Value::Object(self.params.clone()));
        }
        if let Some(c) = &self.context {
            m.insert("context".into(), Value::Object(c.clone()));
        }
        if !self.chain.is_empty() {
            m.insert("chain".into(), Value::Array(self.chain.iter().map(|s| Value::String(s.clone())).collect()));
        }
        if let Some(t) = self.time {
            m.insert("time".into(), Value::String(time::format_utc(t)));
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
