//! The engine configuration document (SPEC §17): one JSON object, validated here once,
//! that every binding feeds — Python keyword arguments, a JS options object, Go options
//! and C's `aegis_engine_options_set_json` — so every language accepts and refuses the
//! same settings with the same message.
//!
//! Keys are snake_case (`request_max_bytes`) or, for JavaScript, camelCase
//! (`requestMaxBytes`, also inside `collector` and `notify`); messages name a key in
//! the caller's own spelling. Unknown keys get a `did you mean`. Options of later
//! releases (state, inbox, marks, metrics) have their place here and are refused as
//! "not supported yet" until they work — never accepted and ignored.

use crate::audit::{FileSink, FileSinkOptions, Fsync};
use crate::engine::EngineOptions;
use crate::key::{ConfigError, Key, KeyId};
use crate::request::RequestLimits;
use crate::value::Value;
use std::path::PathBuf;

/// How the caller spells keys.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Spelling {
    /// `request_max_bytes` (the document's own spelling: C, Go, Python).
    #[default]
    Snake,
    /// `requestMaxBytes` (JavaScript).
    Camel,
}

impl Spelling {
    /// A snake_case key in this spelling.
    pub fn spell(self, snake: &str) -> String {
        match self {
            Spelling::Snake => snake.to_owned(),
            Spelling::Camel => {
                let mut out = String::with_capacity(snake.len());
                let mut upper = false;
                for c in snake.chars() {
                    if c == '_' {
                        upper = true;
                    } else if upper {
                        out.push(c.to_ascii_uppercase());
                        upper = false;
                    } else {
                        out.push(c);
                    }
                }
                out
            }
        }
    }

    /// The snake_case form of a key given in this spelling (`None`: not a key of this
    /// spelling, such as `request_max_bytes` given to JavaScript).
    pub fn snake(self, key: &str) -> Option<String> {
        match self {
            Spelling::Snake => Some(key.to_owned()),
            Spelling::Camel => {
                if key.contains('_') {
                    return None;
                }
                let mut out = String::with_capacity(key.len() + 4);
                for c in key.chars() {
                    if c.is_ascii_uppercase() {
                        out.push('_');
                        out.push(c.to_ascii_lowercase());
                    } else {
                        out.push(c);
                    }
                }
                Some(out)
            }
        }
    }
}

/// Every option of the document, in the order SPEC §17 lists them.
pub const KEYS: [&str; 22] = [
    "audit",
    "fsync",
    "rotate_bytes",
    "signing_key",
    "signing_key_id",
    "approval_key",
    "request_max_bytes",
    "request_max_depth",
    "max_limit_counters",
    "max_sessions",
    "collector",
    "state",
    "state_prefix",
    "state_timeout_ms",
    "state_stale_ms",
    "inbox",
    "inbox_ttl",
    "inbox_keep",
    "notify",
    "marks_ttl",
    "state_max_skew_ms",
    "metrics_agent_label",
];

/// Options that have their place in the document but whose feature is not built yet,
/// with the part of the spec that defines them.
const NOT_YET: [(&str, &str); 5] = [
    ("inbox", "the approvals inbox, §12"),
    ("inbox_ttl", "the approvals inbox, §12"),
    ("inbox_keep", "the approvals inbox, §12"),
    ("notify", "the approvals inbox, §12"),
    ("metrics_agent_label", "metrics, §15"),
];

/// The largest options document (JSON text, or what a binding's native options
/// expand to): 1 MiB.
pub const DOC_MAX_BYTES: usize = 1 << 20;
/// The deepest options document (`collector.headers` is the deepest option, at 3).
pub const DOC_MAX_DEPTH: usize = 8;

/// The largest `request_max_bytes`: 64 MiB.
pub const MAX_REQUEST_BYTES: u64 = 64 << 20;
/// The deepest `request_max_depth` (the JSON reader's own recursion bound is 128).
pub const MAX_REQUEST_DEPTH: u64 = 100;
/// The most `max_limit_counters`.
pub const MAX_LIMIT_COUNTERS: u64 = 10_000_000;
/// The most `max_sessions`.
pub const MAX_SESSIONS: u64 = 10_000_000;

/// The fleet-state options (§11): `state` as a Redis URL and its settings. The URL is
/// only checked for its scheme here; `aegis-fleet` parses it and connects.
#[derive(Clone, PartialEq, Eq)]
pub struct StateConfig {
    /// `redis://…` or `rediss://…` (may hold a password: never printed).
    pub url: String,
    /// `state_prefix` (default `aegis:`).
    pub prefix: String,
    /// `state_timeout_ms` (default 200): the longest any store operation may take.
    pub timeout_ms: u64,
    /// `state_stale_ms` (default 2000): how old the kill mirror may be.
    pub stale_ms: u64,
    /// `state_max_skew_ms` (default 300000): how far a request time may be from the
    /// store's clock.
    pub max_skew_ms: u64,
}

impl std::fmt::Debug for StateConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateConfig")
            .field("url", &redact_url(&self.url))
            .field("prefix", &self.prefix)
            .field("timeout_ms", &self.timeout_ms)
            .field("stale_ms", &self.stale_ms)
            .field("max_skew_ms", &self.max_skew_ms)
            .finish()
    }
}

impl StateConfig {
    /// The defaults for a URL.
    pub fn new(url: impl Into<String>) -> StateConfig {
        StateConfig { url: url.into(), prefix: "aegis:".into(), timeout_ms: 200, stale_ms: 2000, max_skew_ms: 300_000 }
    }
}

/// A Redis URL with its password replaced by `***` (for messages and logs).
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return "***".into() };
    let (auth_host, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    match auth_host.rsplit_once('@') {
        Some((auth, host)) => {
            let user = auth.split_once(':').map_or("", |(u, _)| u);
            format!("{scheme}://{user}:***@{host}{path}")
        }
        None => url.to_owned(),
    }
}

/// The longest `state_timeout_ms`: 60 s.
pub const MAX_STATE_TIMEOUT_MS: u64 = 60_000;
/// The longest `state_stale_ms` and `state_max_skew_ms`: 1 day.
pub const MAX_STATE_WINDOW_MS: u64 = 86_400_000;

/// A validated configuration document.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EngineConfig {
    /// The audit file (`audit` as a path); a binding's callback is a sink it adds itself.
    pub audit: Option<PathBuf>,
    /// How the audit file is written (`fsync`, `rotate_bytes`).
    pub file: FileSinkOptions,
    /// `signing_key`.
    pub signing_key: Option<Key>,
    /// `signing_key_id`.
    pub signing_key_id: Option<KeyId>,
    /// `approval_key`.
    pub approval_key: Option<Key>,
    /// `request_max_bytes`, `request_max_depth`.
    pub request_limits: RequestLimits,
    /// `max_limit_counters`.
    pub max_limit_counters: usize,
    /// `max_sessions`.
    pub max_sessions: usize,
    /// `marks_ttl`, in milliseconds.
    pub marks_ttl_ms: i64,
    /// `collector` as the caller gave it (keys in the caller's spelling): validated by
    /// `aegis-ship`, which ships from the audit file (so it requires `audit` as a path).
    pub collector: Option<Value>,
    /// `state` as a Redis URL, with its settings (`None`: the memory state).
    pub state: Option<StateConfig>,
    /// How the caller spelt the keys (for the collector's messages).
    pub spelling: Spelling,
    /// Whether the binding adds an audit callback sink of its own (`audit` given as a
    /// function): records then go to it, after the audit file if there is one too.
    pub audit_callback: bool,
}

impl EngineConfig {
    /// The defaults (no audit file, no keys, 1 MiB / depth 64 requests, 100,000 limit
    /// counters).
    pub fn new() -> EngineConfig {
        let d = EngineOptions::default();
        EngineConfig {
            max_limit_counters: d.max_limit_counters,
            max_sessions: d.max_sessions,
            marks_ttl_ms: d.marks_ttl_ms,
            ..EngineConfig::default()
        }
    }

    /// Reads and validates a JSON document.
    pub fn from_json(text: &str, spelling: Spelling) -> Result<EngineConfig, ConfigError> {
        EngineConfig::from_json_with(text, spelling, false)
    }

    /// [`EngineConfig::from_json`] for a caller that adds audit callbacks of its own
    /// (see [`EngineConfig::from_value_with`]).
    pub fn from_json_with(text: &str, spelling: Spelling, audit_callback: bool) -> Result<EngineConfig, ConfigError> {
        if text.len() > DOC_MAX_BYTES {
            return Err(ConfigError::new("", format!("the options are larger than {DOC_MAX_BYTES} bytes")));
        }
        let v = crate::json::parse(text, DOC_MAX_DEPTH)
            .map_err(|e| ConfigError::new("", format!("the options are not valid JSON: {}", e.message)))?;
        EngineConfig::from_value_with(&v, spelling, audit_callback)
    }

    /// Validates a document given as a value (what a binding builds from its native
    /// options). The first mistake, in key order, is the error.
    pub fn from_value(v: &Value, spelling: Spelling) -> Result<EngineConfig, ConfigError> {
        EngineConfig::from_value_with(v, spelling, false)
    }

    /// [`EngineConfig::from_value`] for a binding whose caller gave `audit` as a
    /// function (`audit_callback`): the binding leaves that `audit` out of the document
    /// and adds the callback sink itself; the file options (`fsync`, `rotate_bytes`)
    /// and `collector` are then refused, as they would change nothing.
    ///
    /// A `null` value is an option not given (Python `None`, JS `null`/`undefined`).
    pub fn from_value_with(v: &Value, spelling: Spelling, audit_callback: bool) -> Result<EngineConfig, ConfigError> {
        let Value::Object(doc) = v else {
            return Err(ConfigError::new("", format!("the options are a JSON object, not a {}", v.type_name())));
        };
        let mut c = EngineConfig { spelling, audit_callback, ..EngineConfig::new() };
        let mut keys = Vec::with_capacity(doc.len());
        for (given, value) in doc.iter() {
            let snake = spelling.snake(given).filter(|k| KEYS.contains(&k.as_str()));
            let Some(key) = snake else {
                let known: Vec<String> = KEYS.iter().map(|k| spelling.spell(k)).collect();
                // The other spelling of a known key (`request_max_bytes` given to
                // JavaScript) is the likeliest fix; else the closest name.
                let fold = |k: &str| k.replace('_', "").to_ascii_lowercase();
                let hint = known
                    .iter()
                    .find(|k| fold(k) == fold(given))
                    .map(String::as_str)
                    .or_else(|| crate::suggest::closest(given, known.iter().map(String::as_str)))
                    .map(|s| format!(" (did you mean `{s}`?)"))
                    .unwrap_or_else(|| format!("; the options are {}", known.join(", ")));
                return Err(ConfigError::new(given, format!("unknown option `{given}`{hint}")));
            };
            if let Some((_, part)) = NOT_YET.iter().find(|(k, _)| *k == key) {
                return Err(ConfigError::new(given, format!("`{given}` is not supported yet ({part}); leave it out")));
            }
            if !matches!(value, Value::Null) {
                keys.push((key, given.as_str(), value));
            }
        }
        for (key, given, value) in &keys {
            let f = Field { given, value };
            match key.as_str() {
                "audit" => c.audit = Some(f.path()?),
                "fsync" => c.file.fsync = f.fsync()?,
                "rotate_bytes" => c.file.rotate_bytes = Some(f.integer(1, crate::value::MAX_EXACT_INT, "bytes")?),
                "signing_key" => c.signing_key = Some(f.key()?),
                "signing_key_id" => {
                    let s = f.string()?;
                    c.signing_key_id = Some(KeyId::new(given, s).map_err(|e| ConfigError::new(given, e.message))?);
                }
                "approval_key" => c.approval_key = Some(f.key()?),
                "request_max_bytes" => {
                    c.request_limits.max_bytes = f.integer(1, MAX_REQUEST_BYTES, "bytes")? as usize;
                }
                "request_max_depth" => {
                    c.request_limits.max_depth = f.integer(1, MAX_REQUEST_DEPTH, "levels")? as usize;
                }
                "max_limit_counters" => c.max_limit_counters = f.integer(1, MAX_LIMIT_COUNTERS, "counters")? as usize,
                "max_sessions" => c.max_sessions = f.integer(1, MAX_SESSIONS, "sessions")? as usize,
                "marks_ttl" => c.marks_ttl_ms = f.duration()?,
                "collector" => c.collector = Some(f.object()?.clone()),
                "state" => c.state = f.state()?.map(StateConfig::new),
                "state_prefix" | "state_timeout_ms" | "state_stale_ms" | "state_max_skew_ms" => {}
                _ => return Err(ConfigError::new(given, format!("`{given}` is not supported yet; leave it out"))),
            }
        }
        // An option that changes nothing is refused, never accepted and ignored.
        if c.audit.is_none() {
            let audit = spelling.spell("audit");
            let file_option = ["fsync", "rotate_bytes", "collector"]
                .into_iter()
                .find_map(|name| doc_has(&keys, name).map(|g| (g, name)));
            if let Some((given, name)) = file_option {
                let what =
                    if name == "collector" { "ships the audit file" } else { "sets how the audit file is written" };
                let fix = if audit_callback {
                    format!("`{audit}` is a callback here; give `{audit}` as a file path")
                } else {
                    format!("give `{audit}` too (a file path)")
                };
                return Err(ConfigError::new(given, format!("`{given}` {what}; {fix}")));
            }
        }
        let state_options = ["state_prefix", "state_timeout_ms", "state_stale_ms", "state_max_skew_ms"];
        match &mut c.state {
            Some(st) => {
                for (key, given, value) in &keys {
                    let f = Field { given, value };
                    match key.as_str() {
                        "state_prefix" => st.prefix = f.prefix()?,
                        "state_timeout_ms" => st.timeout_ms = f.integer(1, MAX_STATE_TIMEOUT_MS, "milliseconds")?,
                        "state_stale_ms" => st.stale_ms = f.integer(4, MAX_STATE_WINDOW_MS, "milliseconds")?,
                        "state_max_skew_ms" => st.max_skew_ms = f.integer(0, MAX_STATE_WINDOW_MS, "milliseconds")?,
                        _ => {}
                    }
                }
            }
            None => {
                if let Some(given) = state_options.iter().find_map(|k| doc_has(&keys, k)) {
                    let state = spelling.spell("state");
                    return Err(ConfigError::new(
                        given,
                        format!("`{given}` sets how the fleet's store is used; give `{state}` too (a Redis URL)"),
                    ));
                }
            }
        }
        if c.signing_key_id.is_some() && c.signing_key.is_none() {
            let given = doc_has(&keys, "signing_key_id").unwrap_or("signing_key_id");
            return Err(ConfigError::new(
                given,
                format!("`{given}` names the signing key; give `{}` too", spelling.spell("signing_key")),
            ));
        }
        Ok(c)
    }

    /// Engine options for this document: the audit file opened (and locked) when one is
    /// given. A binding adds its callback sink and the collector to the result.
    pub fn options(&self) -> Result<EngineOptions, crate::audit::AuditError> {
        let mut o = EngineOptions {
            signing_key: self.signing_key.clone(),
            signing_key_id: self.signing_key_id.clone(),
            approval_key: self.approval_key.clone(),
            request_limits: self.request_limits,
            max_limit_counters: self.max_limit_counters,
            max_sessions: self.max_sessions,
            marks_ttl_ms: self.marks_ttl_ms,
            ..EngineOptions::default()
        };
        if let Some(path) = &self.audit {
            o.sinks.push(Box::new(FileSink::open_with(path, self.file)?));
        }
        Ok(o)
    }
}

/// The caller's spelling of `key` if the document has it.
fn doc_has<'a>(keys: &[(String, &'a str, &Value)], key: &str) -> Option<&'a str> {
    keys.iter().find(|(k, _, _)| k == key).map(|(_, g, _)| *g)
}

/// What a key may be, in every language's message.
const KEY_FORMS: &str = "a key (a string, bytes or {\"base64\": \"…\"})";

/// One option's value, with the key as the caller spelt it (for messages).
struct Field<'a> {
    given: &'a str,
    value: &'a Value,
}

impl Field<'_> {
    fn err(&self, what: &str) -> ConfigError {
        ConfigError::new(self.given, format!("`{}` must be {what}, not {}", self.given, shown(self.value)))
    }

    fn string(&self) -> Result<&str, ConfigError> {
        self.value.as_str().ok_or_else(|| self.err("a string"))
    }

    fn path(&self) -> Result<PathBuf, ConfigError> {
        match self.value.as_str() {
            Some(s) if !s.is_empty() && !s.contains('\0') => Ok(PathBuf::from(s)),
            _ => Err(self.err("a file path (a non-empty string without NUL)")),
        }
    }

    fn fsync(&self) -> Result<Fsync, ConfigError> {
        self.value.as_str().and_then(Fsync::parse).ok_or_else(|| self.err("\"always\", \"batch\" or \"never\""))
    }

    fn integer(&self, min: u64, max: u64, unit: &str) -> Result<u64, ConfigError> {
        match self.value {
            Value::Number(n) if n.fract() == 0.0 && *n >= min as f64 && *n <= max as f64 => Ok(*n as u64),
            _ => Err(self.err(&format!("an integer number of {unit} from {min} to {max}"))),
        }
    }

    /// A duration `N` + `s|m|h|d`, in milliseconds.
    fn duration(&self) -> Result<i64, ConfigError> {
        self.value
            .as_str()
            .and_then(crate::policy::parse_duration)
            .ok_or_else(|| self.err("a duration like \"24h\" (a whole number above 0 and s, m, h or d)"))
    }

    /// A key: a string (its UTF-8 bytes) or `{"base64": "…"}`; never empty.
    fn key(&self) -> Result<Key, ConfigError> {
        let bytes = match self.value {
            Value::String(s) => s.as_bytes().to_vec(),
            Value::Object(m) if m.len() == 1 => match m.get("base64") {
                Some(Value::String(b)) => {
                    use base64::Engine as _;
                    base64::engine::general_purpose::STANDARD
                        .decode(b)
                        .map_err(|e| ConfigError::new(self.given, format!("`{}`: not valid base64: {e}", self.given)))?
                }
                _ => return Err(self.err(KEY_FORMS)),
            },
            _ => return Err(self.err(KEY_FORMS)),
        };
        Key::new(self.given, bytes)
    }

    /// `state`: `"memory"` (`None`) or a Redis URL. The value is never echoed (it may
    /// hold a password).
    fn state(&self) -> Result<Option<String>, ConfigError> {
        let what = "\"memory\" or a Redis URL (redis://[user:password@]host:port[/db], rediss:// for TLS)";
        match self.value.as_str() {
            Some("memory") => Ok(None),
            Some(u)
                if (u.starts_with("redis://") || u.starts_with("rediss://")) && !u.contains(char::is_whitespace) =>
            {
                Ok(Some(u.to_owned()))
            }
            Some(_) => Err(ConfigError::new(self.given, format!("`{}` must be {what}", self.given))),
            None => Err(self.err(what)),
        }
    }

    /// `state_prefix`: 1 to 128 printable ASCII characters, without braces (the keys
    /// put it in a Redis Cluster hash tag).
    fn prefix(&self) -> Result<String, ConfigError> {
        match self.value.as_str() {
            Some(p)
                if !p.is_empty()
                    && p.len() <= 128
                    && p.bytes().all(|b| b.is_ascii_graphic() && b != b'{' && b != b'}') =>
            {
                Ok(p.to_owned())
            }
            _ => Err(self.err("1 to 128 printable ASCII characters without spaces, `{` or `}`")),
        }
    }

    /// A nested object (`collector`), validated by its own reader.
    fn object(&self) -> Result<&Value, ConfigError> {
        match self.value {
            Value::Object(_) => Ok(self.value),
            _ => Err(self.err("an object")),
        }
    }
}

/// A value as it appears in a message: JSON, shortened.
fn shown(v: &Value) -> String {
    let mut s = v.to_canonical_json();
    if s.len() > 60 {
        let mut end = 57;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        s.push('…');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(json: &str, spelling: Spelling) -> (String, String) {
        let e = EngineConfig::from_json(json, spelling).unwrap_err();
        (e.field, e.message)
    }

    #[test]
    fn the_acceptance_examples() {
        assert_eq!(
            err(r#"{"fsnyc": "always"}"#, Spelling::Snake),
            ("fsnyc".into(), "unknown option `fsnyc` (did you mean `fsync`?)".into())
        );
        assert_eq!(
            err(r#"{"request_max_bytes": "big"}"#, Spelling::Snake),
            (
                "request_max_bytes".into(),
                "`request_max_bytes` must be an integer number of bytes from 1 to 67108864, not \"big\"".into()
            )
        );
        assert_eq!(
            err(r#"{"requestMaxBytes": "big"}"#, Spelling::Camel),
            (
                "requestMaxBytes".into(),
                "`requestMaxBytes` must be an integer number of bytes from 1 to 67108864, not \"big\"".into()
            )
        );
        assert!(err(r#"{"colour": 1}"#, Spelling::Snake)
            .1
            .starts_with("unknown option `colour`; the options are audit, fsync,"));
        assert_eq!(
            err(r#"{"request_max_bytes": 5}"#, Spelling::Camel).1,
            "unknown option `request_max_bytes` (did you mean `requestMaxBytes`?)"
        );
    }

    #[test]
    fn keys_and_values() {
        let c = EngineConfig::from_json(
            r#"{"approval_key":{"base64":"a2V5"},"signing_key":"s","signing_key_id":"ops","request_max_bytes":2048,"request_max_depth":8,"max_limit_counters":10}"#,
            Spelling::Snake,
        )
        .unwrap();
        assert_eq!(c.approval_key.unwrap().as_bytes(), b"key");
        assert_eq!(c.signing_key.unwrap().as_bytes(), b"s");
        assert_eq!(c.request_limits, RequestLimits { max_bytes: 2048, max_depth: 8 });
        assert_eq!(c.max_limit_counters, 10);
        assert_eq!(err(r#"{"approval_key": ""}"#, Spelling::Snake).0, "approval_key");
        assert_eq!(err(r#"{"approvalKey": {"base64": ""}}"#, Spelling::Camel).0, "approvalKey");
        assert!(err(r#"{"signing_key": "k", "signing_key_id": "a\u0000b"}"#, Spelling::Snake).1.contains("control"));
        assert!(err(r#"{"signing_key_id": "ops"}"#, Spelling::Snake).1.contains("give `signing_key` too"));
        assert!(err(r#"{"fsync": "batch"}"#, Spelling::Snake).1.contains("give `audit` too"));
        assert!(err(r#"{"rotateBytes": 10}"#, Spelling::Camel).1.contains("give `audit` too"));
        assert!(err(r#"{"request_max_depth": 1000}"#, Spelling::Snake).1.contains("from 1 to 100"));
        assert!(err(r#"{"request_max_bytes": 1.5}"#, Spelling::Snake).1.contains("integer"));
        assert!(err(r#"[1]"#, Spelling::Snake).1.contains("a JSON object"));
        assert!(err(r#"{"audit": ""}"#, Spelling::Snake).1.contains("file path"));
    }

    #[test]
    fn later_options_are_refused_not_ignored() {
        for k in ["inbox", "metrics_agent_label", "notify"] {
            let (field, msg) = err(&format!(r#"{{"{k}": 1}}"#), Spelling::Snake);
            assert_eq!(field, k);
            assert!(msg.contains("is not supported yet"), "{msg}");
        }
    }

    #[test]
    fn state_options() {
        let c = EngineConfig::from_json(r#"{"state": "memory"}"#, Spelling::Snake).unwrap();
        assert!(c.state.is_none());
        let c = EngineConfig::from_json(
            r#"{"state": "redis://u:pw@127.0.0.1:6379/2", "state_prefix": "t1:", "state_timeout_ms": 50, "state_stale_ms": 400, "state_max_skew_ms": 0}"#,
            Spelling::Snake,
        )
        .unwrap();
        let st = c.state.unwrap();
        assert_eq!((st.prefix.as_str(), st.timeout_ms, st.stale_ms, st.max_skew_ms), ("t1:", 50, 400, 0));
        assert!(!format!("{st:?}").contains("pw"), "the password is never printed");
        assert_eq!(redact_url("redis://u:pw@h:1/2"), "redis://u:***@h:1/2");
        assert_eq!(redact_url("rediss://h:1"), "rediss://h:1");
        let (field, msg) = err(r#"{"state": "http://u:secret@h"}"#, Spelling::Snake);
        assert_eq!(field, "state");
        assert!(msg.contains("a Redis URL") && !msg.contains("secret"), "{msg}");
        let (field, msg) = err(r#"{"stateTimeoutMs": 5}"#, Spelling::Camel);
        assert_eq!(field, "stateTimeoutMs");
        assert_eq!(msg, "`stateTimeoutMs` sets how the fleet's store is used; give `state` too (a Redis URL)");
        let (_, msg) = err(r#"{"state": "memory", "state_prefix": "x"}"#, Spelling::Snake);
        assert!(msg.contains("give `state` too"), "{msg}");
        let (field, msg) = err(r#"{"state": "redis://h", "state_prefix": "{x}"}"#, Spelling::Snake);
        assert_eq!(field, "state_prefix");
        assert!(msg.contains("without spaces, `{` or `}`"), "{msg}");
        let (_, msg) = err(r#"{"state": "redis://h", "state_timeout_ms": 0}"#, Spelling::Snake);
        assert!(msg.contains("from 1 to 60000"), "{msg}");
    }

    #[test]
    fn null_is_not_given_and_callbacks_take_no_file_options() {
        let c = EngineConfig::from_json(r#"{"approval_key": null, "audit": null, "fsync": null}"#, Spelling::Snake)
            .unwrap();
        assert_eq!(c, EngineConfig::new());
        let doc = crate::json::parse(r#"{"fsync": "batch"}"#, 8).unwrap();
        let e = EngineConfig::from_value_with(&doc, Spelling::Snake, true).unwrap_err();
        assert_eq!(
            e.message,
            "`fsync` sets how the audit file is written; `audit` is a callback here; give `audit` as a file path"
        );
        let doc = crate::json::parse(r#"{"collector": {"endpoint": "http://x"}}"#, 8).unwrap();
        let e = EngineConfig::from_value_with(&doc, Spelling::Camel, true).unwrap_err();
        assert_eq!(
            (e.field.as_str(), e.message.as_str()),
            ("collector", "`collector` ships the audit file; `audit` is a callback here; give `audit` as a file path")
        );
        let c = EngineConfig::from_value_with(&crate::json::parse("{}", 8).unwrap(), Spelling::Camel, true).unwrap();
        assert!(c.audit_callback && c.spelling == Spelling::Camel);
        let c = EngineConfig::from_json(r#"{"audit": "a.jsonl", "collector": {"batchAgeMs": 5}}"#, Spelling::Camel)
            .unwrap();
        assert_eq!(c.collector.unwrap().to_canonical_json(), r#"{"batchAgeMs":5}"#, "kept as given");
    }

    #[test]
    fn spellings_round_trip() {
        for k in KEYS {
            assert_eq!(Spelling::Camel.snake(&Spelling::Camel.spell(k)).as_deref(), Some(k));
        }
        assert_eq!(Spelling::Camel.spell("state_max_skew_ms"), "stateMaxSkewMs");
    }
}
