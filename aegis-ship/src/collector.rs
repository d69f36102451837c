//! The collector option of the bindings (Python `collector=`, Node `collector:`, C
//! `aegis_engine_options_set_collector`, Go `Options.Collector`): one JSON
//! configuration object, validated here so every language accepts and rejects exactly
//! the same settings with the same messages, and the [`Metrics`] as one JSON object.
//!
//! ```json
//! {"endpoint": "http://127.0.0.1:4318", "headers": {"Authorization": "Bearer …"},
//!  "service_name": "payments-agent", "batch": 512, "batch_age_ms": 1000, "gzip": true,
//!  "cursor": "audit.jsonl.ship-cursor", "request_timeout_ms": 10000,
//!  "max_backoff_ms": 30000, "close_timeout_ms": 5000}
//! ```
//!
//! Only `endpoint` is required. The audit file comes from the engine's own `audit`
//! option (the shipper reads the durable file sink), never from this object.

use crate::{Metrics, ShipError, Shipper, ShipperConfig, ShipperHandle};
use aegis_core::Spelling;
use serde_json::{Map, Value};
use std::path::PathBuf;
use std::time::Duration;

/// Every key of the configuration object.
pub const KEYS: &[&str] = &[
    "endpoint",
    "headers",
    "service_name",
    "batch",
    "batch_age_ms",
    "gzip",
    "cursor",
    "request_timeout_ms",
    "max_backoff_ms",
    "close_timeout_ms",
];

/// The error every binding gives when `collector` is set but `audit` is not a file
/// path (the shipper reads the durable audit file; a callback sink has no file).
pub const NEEDS_AUDIT_FILE: &str =
    "invalid collector configuration: `collector` needs `audit` to be a file path (the shipper reads the durable audit file)";

/// The largest `batch` accepted.
pub const MAX_BATCH: u64 = 10_000;

/// One hour: the largest duration any `*_ms` option accepts.
pub const MAX_MS: u64 = 3_600_000;

/// A validated collector configuration (the shipper's settings plus the time limit
/// of the final attempt made when the engine is closed).
#[derive(Clone, Debug)]
pub struct CollectorConfig {
    /// The shipper's settings.
    pub shipper: ShipperConfig,
    /// Bound on the final delivery attempt at close (default 5 s).
    pub close_timeout: Duration,
}

fn err(msg: impl Into<String>) -> String {
    format!("invalid collector configuration: {}", msg.into())
}

fn ms(obj: &Map<String, Value>, key: &str, min: u64, sp: Spelling) -> Result<Option<Duration>, String> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => match v.as_u64() {
            Some(n) if (min..=MAX_MS).contains(&n) => Ok(Some(Duration::from_millis(n))),
            _ => Err(err(format!(
                "`{}` must be an integer from {min} to {MAX_MS} (milliseconds), not `{v}`",
                sp.spell(key)
            ))),
        },
    }
}

/// Checks a header name (an RFC 9110 token) and value (no control characters, so no
/// header can be injected through CR/LF).
pub fn check_header(name: &str, value: &str) -> Result<(), String> {
    let token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    if name.is_empty() || !name.chars().all(token) {
        return Err(err(format!("header name `{}` is not a valid HTTP token", name.escape_debug())));
    }
    if value.chars().any(|c| (c.is_control() && c != '\t') || c == '\u{7f}') {
        return Err(err(format!("header `{name}` has a control character (CR, LF…) in its value")));
    }
    Ok(())
}

/// Checks an endpoint: `http://` or `https://` with a host.
pub fn check_endpoint(endpoint: &str) -> Result<(), String> {
    let rest = endpoint.strip_prefix("http://").or_else(|| endpoint.strip_prefix("https://"));
    match rest {
        Some(r)
            if !r.is_empty()
                && !r.starts_with('/')
                && !endpoint.chars().any(|c| c.is_whitespace() || c.is_control()) =>
        {
            Ok(())
        }
        _ => Err(err(format!("`endpoint` must be an http:// or https:// URL with a host, not `{endpoint}`"))),
    }
}

impl CollectorConfig {
    /// Parses and validates the JSON object for shipping the audit log `file`.
    /// Unknown keys, wrong types and out-of-range values are errors (a typo must not
    /// silently turn shipping off or change where records go).
    pub fn from_json(file: impl Into<PathBuf>, json: &str) -> Result<CollectorConfig, String> {
        CollectorConfig::from_json_spelled(file, json, Spelling::Snake)
    }

    /// [`CollectorConfig::from_json`] with keys in the caller's spelling
    /// (`batchAgeMs` from JavaScript); messages name keys that way too. Header names
    /// are never respelt.
    pub fn from_json_spelled(file: impl Into<PathBuf>, json: &str, sp: Spelling) -> Result<CollectorConfig, String> {
        let v: Value = serde_json::from_str(json).map_err(|e| err(format!("not a JSON object: {e}")))?;
        let Value::Object(given) = v else {
            return Err(err("not a JSON object"));
        };
        let mut obj = Map::new();
        for (k, v) in given {
            match sp.snake(&k).filter(|s| KEYS.contains(&s.as_str())) {
                Some(snake) => {
                    obj.insert(snake, v);
                }
                None => {
                    let known: Vec<String> = KEYS.iter().map(|k| sp.spell(k)).collect();
                    let hint = aegis_core::suggest::closest(&k, known.iter().map(String::as_str))
                        .map(|s| format!(" (did you mean `{s}`?)"))
                        .unwrap_or_default();
                    return Err(err(format!("unknown option `{k}`{hint}")));
                }
            }
        }
        let n = |k: &str| sp.spell(k);
        let endpoint = match obj.get("endpoint") {
            Some(Value::String(s)) => s.clone(),
            None | Some(Value::Null) => return Err(err("`endpoint` is required (e.g. \"http://127.0.0.1:4318\")")),
            Some(other) => return Err(err(format!("`endpoint` must be a string, not `{other}`"))),
        };
        check_endpoint(&endpoint)?;
        let mut cfg = ShipperConfig::new(file, endpoint);
        match obj.get("headers") {
            None | Some(Value::Null) => {}
            Some(Value::Object(h)) => {
                for (k, v) in h {
                    let Value::String(s) = v else {
                        return Err(err(format!("header `{k}` must be a string, not `{v}`")));
                    };
                    check_header(k, s)?;
                    cfg.headers.push((k.clone(), s.clone()));
                }
            }
            Some(other) => return Err(err(format!("`headers` must be an object of strings, not `{other}`"))),
        }
        match obj.get("service_name") {
            None | Some(Value::Null) => {}
            Some(Value::String(s)) if !s.is_empty() => cfg.service_name = s.clone(),
            Some(other) => {
                return Err(err(format!("`{}` must be a non-empty string, not `{other}`", n("service_name"))))
            }
        }
        match obj.get("batch") {
            None | Some(Value::Null) => {}
            Some(v) => match v.as_u64() {
                Some(b) if (1..=MAX_BATCH).contains(&b) => cfg.batch_max = b as usize,
                _ => return Err(err(format!("`batch` must be an integer from 1 to {MAX_BATCH}, not `{v}`"))),
            },
        }
        if let Some(d) = ms(&obj, "batch_age_ms", 1, sp)? {
            cfg.batch_age = d;
        }
        match obj.get("gzip") {
            None | Some(Value::Null) => {}
            Some(Value::Bool(b)) => cfg.gzip = *b,
            Some(other) => return Err(err(format!("`gzip` must be true or false, not `{other}`"))),
        }
        match obj.get("cursor") {
            None | Some(Value::Null) => {}
            Some(Value::String(s)) if !s.is_empty() && !s.contains('\0') => cfg.cursor_path = Some(PathBuf::from(s)),
            Some(other) => return Err(err(format!("`cursor` must be a file path, not `{other}`"))),
        }
        if let Some(d) = ms(&obj, "request_timeout_ms", 1, sp)? {
            cfg.request_timeout = d;
        }
        if let Some(d) = ms(&obj, "max_backoff_ms", 1, sp)? {
            cfg.backoff.max = d;
            cfg.backoff.initial = cfg.backoff.initial.min(d);
        }
        let close_timeout = ms(&obj, "close_timeout_ms", 0, sp)?.unwrap_or(Duration::from_secs(5));
        Ok(CollectorConfig { shipper: cfg, close_timeout })
    }
}

/// The metrics as one JSON object with snake_case keys (`rejected_files` as strings,
/// `last_error` and `cursor` null when absent).
pub fn metrics_json(m: &Metrics) -> String {
    let cursor = match &m.cursor {
        Some(c) => serde_json::json!({"file": c.file, "offset": c.offset, "seq": c.seq, "hash": c.hash}),
        None => Value::Null,
    };
    serde_json::json!({
        "shipped": m.shipped,
        "pending": m.pending,
        "retries": m.retries,
        "batches": m.batches,
        "rejected_batches": m.rejected_batches,
        "rejected_records": m.rejected_records,
        "partially_rejected": m.partially_rejected,
        "rejected_files": m.rejected_files.iter().map(|p| p.to_string_lossy().into_owned()).collect::<Vec<_>>(),
        "last_error": m.last_error,
        "cursor": cursor,
    })
    .to_string()
}

/// A collector started by an engine: the background shipper plus its close bound.
/// Thread-safe; every method takes `&self`.
pub struct Collector {
    handle: ShipperHandle,
    close_timeout: Duration,
}

impl std::fmt::Debug for Collector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Collector").field("metrics", &self.metrics()).finish_non_exhaustive()
    }
}

impl Collector {
    /// Validates `json` and starts shipping `file` on a background thread.
    pub fn start(file: impl Into<PathBuf>, json: &str) -> Result<Collector, String> {
        let cfg = CollectorConfig::from_json(file, json)?;
        Ok(Collector::from_config(cfg))
    }

    /// Starts shipping with a validated configuration.
    pub fn from_config(cfg: CollectorConfig) -> Collector {
        Collector { handle: Shipper::start(cfg.shipper), close_timeout: cfg.close_timeout }
    }

    /// The metrics so far.
    pub fn metrics(&self) -> Metrics {
        self.handle.metrics()
    }

    /// [`metrics`](Self::metrics) as JSON ([`metrics_json`]).
    pub fn metrics_json(&self) -> String {
        metrics_json(&self.metrics())
    }

    /// Waits until every record in the files now is delivered, up to `timeout`.
    pub fn flush(&self, timeout: Duration) -> Result<(), ShipError> {
        self.handle.flush(timeout)
    }

    /// Stops with a final attempt bounded by `timeout` (`None`: `close_timeout_ms`).
    /// Idempotent: later calls return the same outcome at once.
    pub fn close(&self, timeout: Option<Duration>) -> (Metrics, Result<(), ShipError>) {
        self.handle.close(timeout.unwrap_or(self.close_timeout))
    }

    /// Whether [`close`](Self::close) was called.
    pub fn is_closed(&self) -> bool {
        self.handle.is_closed()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_every_option() {
        let c = CollectorConfig::from_json("a.jsonl", r#"{"endpoint":"http://127.0.0.1:4318"}"#).unwrap();
        assert_eq!(c.shipper.logs_url(), "http://127.0.0.1:4318/v1/logs");
        assert_eq!((c.shipper.batch_max, c.shipper.gzip, c.close_timeout), (512, true, Duration::from_secs(5)));
        let c = CollectorConfig::from_json(
            "a.jsonl",
            r#"{"endpoint":"https://otel.example:4318/","headers":{"Authorization":"Bearer x"},"service_name":"svc",
                "batch":7,"batch_age_ms":20,"gzip":false,"cursor":"c.json","request_timeout_ms":900,
                "max_backoff_ms":100,"close_timeout_ms":0}"#,
        )
        .unwrap();
        let s = &c.shipper;
        assert_eq!(s.headers, vec![("Authorization".to_string(), "Bearer x".to_string())]);
        assert_eq!((s.service_name.as_str(), s.batch_max, s.gzip), ("svc", 7, false));
        assert_eq!((s.batch_age, s.request_timeout), (Duration::from_millis(20), Duration::from_millis(900)));
        assert_eq!((s.backoff.initial, s.backoff.max), (Duration::from_millis(100), Duration::from_millis(100)));
        assert_eq!(s.cursor_file(), PathBuf::from("c.json"));
        assert_eq!(c.close_timeout, Duration::ZERO);
    }

    #[test]
    fn every_bad_setting_is_named() {
        let bad = [
            ("[]", "not a JSON object"),
            ("{", "not a JSON object"),
            ("{}", "`endpoint` is required"),
            (r#"{"endpoint":4318}"#, "`endpoint` must be a string"),
            (r#"{"endpoint":"127.0.0.1:4318"}"#, "http:// or https://"),
            (r#"{"endpoint":"http://"}"#, "with a host"),
            (r#"{"endpoint":"http://a b"}"#, "with a host"),
            (r#"{"endpoint":"http://h","endpiont":1}"#, "unknown option `endpiont` (did you mean `endpoint`?)"),
            (r#"{"endpoint":"http://h","batch":0}"#, "`batch` must be an integer from 1 to 10000"),
            (r#"{"endpoint":"http://h","batch":1.5}"#, "`batch` must be"),
            (r#"{"endpoint":"http://h","batch":true}"#, "`batch` must be"),
            (r#"{"endpoint":"http://h","batch_age_ms":-1}"#, "`batch_age_ms` must be an integer from 1"),
            (r#"{"endpoint":"http://h","batch_age_ms":3600001}"#, "`batch_age_ms` must be"),
            (r#"{"endpoint":"http://h","gzip":"yes"}"#, "`gzip` must be true or false"),
            (r#"{"endpoint":"http://h","headers":[]}"#, "`headers` must be an object"),
            (r#"{"endpoint":"http://h","headers":{"A":1}}"#, "header `A` must be a string"),
            (r#"{"endpoint":"http://h","headers":{"A B":"x"}}"#, "not a valid HTTP token"),
            (r#"{"endpoint":"http://h","headers":{"X":"a\r\nEvil: 1"}}"#, "control character"),
            (r#"{"endpoint":"http://h","service_name":""}"#, "`service_name` must be a non-empty string"),
            (r#"{"endpoint":"http://h","cursor":""}"#, "`cursor` must be a file path"),
        ];
        for (json, want) in bad {
            let e = CollectorConfig::from_json("a.jsonl", json).unwrap_err();
            assert!(e.starts_with("invalid collector configuration: "), "{json}: {e}");
            assert!(e.contains(want), "{json}: {e}");
        }
    }

    #[test]
    fn metrics_as_json() {
        let m = Metrics {
            shipped: 3,
            rejected_files: vec![PathBuf::from("a.jsonl.ship-rejected.1.jsonl")],
            cursor: Some(crate::Cursor { file: "a.jsonl".into(), offset: 10, seq: 2, hash: "ab".into() }),
            ..Metrics::default()
        };
        let v: Value = serde_json::from_str(&metrics_json(&m)).unwrap();
        assert_eq!(v["shipped"], 3);
        assert_eq!(v["last_error"], Value::Null);
        assert_eq!(v["rejected_files"][0], "a.jsonl.ship-rejected.1.jsonl");
        assert_eq!(v["cursor"]["seq"], 2);
        assert_eq!(v.as_object().unwrap().len(), 10);
    }
}
