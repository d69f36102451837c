//! Node.js binding for the Aegis policy-decision engine (napi-rs).
//!
//! The native layer is deliberately thin: `NativeEngine` wraps an
//! `Arc<aegis_core::Engine>` (and, with the `collector` option, the
//! `aegis_ship::Collector` shipping its audit file; `NativeCollector` exposes it, its
//! blocking `flush`/`close` run on the libuv thread pool and return Promises); the
//! JavaScript layer (`lib.js`) turns native errors into the `AegisError` class family,
//! parses audit records, maps the camelCase collector options and implements
//! `secureTool` / `withAgent`.
//!
//! Errors thrown from here carry a message of the form `"\u{1}AEGIS" + JSON`, where the
//! JSON object has `kind` (`policy`, `request`, `audit`, `control`, `usage`, `collector`),
//! `message`, and for `request` a `field`, for `policy` an `errors` list. `lib.js`
//! recognises the prefix and throws the matching subclass.
#![deny(unsafe_op_in_unsafe_fn)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use aegis_core::{
    CallbackSink, Engine, EngineOptions, EvalError, FileSink, Fsync, KillScope, LoadErrors, Request, RequestError,
    Value,
};
use aegis_ship::collector::{Collector, CollectorConfig, MAX_MS, NEEDS_AUDIT_FILE};
use napi::bindgen_prelude::*;
use napi::{Env, JsValue, Task, ValueType};
use napi_derive::napi;

/// Deepest nesting walked when converting a JS value: the request object is level 0,
/// `params` level 1; the core allows `params`/`context` depth 64, so anything that
/// reaches level 66 is already too deep (this also stops cyclic objects).
const MAX_WALK_DEPTH: usize = 66;

const PREFIX: &str = "\u{1}AEGIS";

fn s(v: &str) -> Value {
    Value::String(v.to_owned())
}

fn aegis_error(kind: &str, message: &str, extra: Vec<(&str, Value)>) -> Error {
    let mut m = aegis_core::Map::new();
    m.insert("kind".to_owned(), s(kind));
    m.insert("message".to_owned(), s(message));
    for (k, v) in extra {
        m.insert(k.to_owned(), v);
    }
    Error::new(Status::GenericFailure, format!("{PREFIX}{}", Value::Object(m).to_canonical_json()))
}

fn request_error(e: &RequestError) -> Error {
    aegis_error("request", &e.to_string(), vec![("field", s(&e.field))])
}

fn load_errors(e: &LoadErrors) -> Error {
    let list =
        e.0.iter()
            .map(|le| {
                let mut m = aegis_core::Map::new();
                m.insert("file".to_owned(), s(&le.loc.file));
                m.insert("line".to_owned(), Value::Number(le.loc.line as f64));
                m.insert("column".to_owned(), Value::Number(le.loc.column as f64));
                m.insert("message".to_owned(), s(&le.message));
                m.insert("help".to_owned(), le.help.as_deref().map(s).unwrap_or(Value::Null));
                Value::Object(m)
            })
            .collect();
    aegis_error("policy", &e.to_string(), vec![("errors", Value::Array(list))])
}

fn eval_error(e: &EvalError) -> Error {
    match e {
        EvalError::Request(r) => request_error(r),
        EvalError::Audit(a) => aegis_error("audit", &a.to_string(), vec![]),
    }
}

fn usage(message: &str) -> Error {
    aegis_error("usage", message, vec![])
}

/// Engine options as normalised by `lib.js`.
#[napi(object)]
pub struct NativeOptions {
    /// File sink path.
    pub audit_path: Option<String>,
    /// Collect records for a JS callback (drained with `drainRecords`).
    pub audit_callback: Option<bool>,
    /// `always` | `batch` | `never` (file sink only).
    pub fsync: Option<String>,
    /// HMAC key for approval grants.
    pub approval_key: Option<Buffer>,
    /// HMAC key for record signatures.
    pub signing_key: Option<Buffer>,
    /// Key id written as `kid`.
    pub signing_key_id: Option<String>,
    /// The collector configuration as snake_case JSON (mapped from camelCase by `lib.js`).
    pub collector_json: Option<String>,
}

/// The approval request of a `require_approval` decision.
#[napi(object)]
pub struct NativeApproval {
    /// `apr_` + 32 hex.
    pub id: String,
    /// Who may approve.
    pub approvers: Vec<String>,
}

/// A condition error listed in a decision.
#[napi(object)]
pub struct NativeDecisionError {
    /// The rule (or `limit:ID`).
    pub rule: String,
    /// The path.
    pub path: String,
    /// What went wrong.
    pub message: String,
}

/// A decision; `audit` is the record's canonical JSON line (parsed by `lib.js`).
#[napi(object)]
pub struct NativeDecision {
    /// `allow` | `deny` | `require_approval`.
    pub outcome: String,
    /// Whether the call may run.
    pub allowed: bool,
    /// Determining rules.
    pub rules: Vec<String>,
    /// Why.
    pub reason: String,
    /// Present only for `require_approval`.
    pub approval: Option<NativeApproval>,
    /// Condition errors.
    pub errors: Vec<NativeDecisionError>,
    /// The audit record as canonical JSON.
    pub audit: String,
}

/// The engine handle. One per JS environment (main thread or worker).
#[napi]
pub struct NativeEngine {
    engine: Arc<Engine>,
    records: Option<Arc<Mutex<Vec<String>>>>,
    collector: Option<SharedCollector>,
}

/// Records collected for the JS audit callback, handed over after each call.
type CollectedRecords = Arc<Mutex<Vec<String>>>;

/// A reference to an engine's collector. When the last one goes away (the engine and
/// every `Collector` wrapper garbage-collected) without `close`, the shipper is stopped
/// on a helper thread, so a finalizer never waits for an in-flight request on the JS
/// thread. Nothing is lost: unshipped records stay in the file for the next start.
struct SharedCollector(Option<Arc<Collector>>);

impl SharedCollector {
    fn get(&self) -> Option<&Arc<Collector>> {
        self.0.as_ref()
    }
}

impl Clone for SharedCollector {
    fn clone(&self) -> Self {
        SharedCollector(self.0.clone())
    }
}

impl Drop for SharedCollector {
    fn drop(&mut self) {
        if let Some(c) = self.0.take() {
            if Arc::strong_count(&c) == 1 && !c.is_closed() {
                // If the thread cannot be spawned, the closure (and `c`) is dropped here.
                let _ = std::thread::Builder::new().name("aegis-collector-drop".into()).spawn(move || drop(c));
            }
        }
    }
}

/// What `build_options` prepares: the core options, the callback buffer, and the
/// validated collector configuration (started once the engine is built).
struct Built {
    options: EngineOptions,
    records: Option<CollectedRecords>,
    collector: Option<CollectorConfig>,
}

fn build_options(opts: Option<NativeOptions>) -> Result<Built> {
    let mut eo = EngineOptions::default();
    let mut records = None;
    let Some(o) = opts else { return Ok(Built { options: eo, records: None, collector: None }) };
    // Validated first, so a bad configuration fails before the audit file is opened.
    let collector = match (&o.collector_json, &o.audit_path) {
        (None, _) => None,
        (Some(_), None) => return Err(usage(NEEDS_AUDIT_FILE)),
        (Some(json), Some(path)) => Some(CollectorConfig::from_json(path, json).map_err(|e| usage(&e))?),
    };
    eo.approval_key = o.approval_key.map(|b| b.to_vec());
    eo.signing_key = o.signing_key.map(|b| b.to_vec());
    eo.signing_key_id = o.signing_key_id;
    let fsync = match o.fsync.as_deref() {
        None | Some("always") => Fsync::Always,
        Some("batch") => Fsync::Batch,
        Some("never") => Fsync::Never,
        Some(other) => return Err(usage(&format!("fsync must be 'always', 'batch' or 'never', found {other:?}"))),
    };
    if let Some(path) = o.audit_path {
        let sink = FileSink::open(&path, fsync).map_err(|e| aegis_error("audit", &e.to_string(), vec![]))?;
        eo.sinks.push(Box::new(sink));
    }
    if o.audit_callback == Some(true) {
        let buf: Arc<Mutex<Vec<String>>> = Arc::new(Mutex::new(Vec::new()));
        let b = Arc::clone(&buf);
        eo.sinks.push(Box::new(CallbackSink(move |_rec: &aegis_core::AuditRecord, line: &str| {
            b.lock().unwrap_or_else(|p| p.into_inner()).push(line.to_owned());
            Ok(())
        })));
        records = Some(buf);
    }
    Ok(Built { options: eo, records, collector })
}

impl NativeEngine {
    /// Wraps a built engine and starts its collector (right after the engine and its
    /// file sink exist, on the same path).
    fn started(engine: Engine, built: Built) -> NativeEngine {
        let collector = built.collector.map(|cfg| SharedCollector(Some(Arc::new(Collector::from_config(cfg)))));
        NativeEngine { engine: Arc::new(engine), records: built.records, collector }
    }
}

/// A timeout in milliseconds from JS: finite, 0 to one hour (`MAX_MS`).
fn timeout(ms: f64) -> Result<Duration> {
    if !(0.0..=MAX_MS as f64).contains(&ms) {
        return Err(usage(&format!("timeoutMs must be a number of milliseconds from 0 to {MAX_MS}, not {ms}")));
    }
    Duration::try_from_secs_f64(ms / 1000.0).map_err(|e| usage(&format!("timeoutMs: {e}")))
}

fn collector_error(e: &aegis_ship::ShipError) -> Error {
    aegis_error("collector", &e.to_string(), vec![])
}

/// The collector of an engine (`engine.collector` in `lib.js`).
#[napi]
pub struct NativeCollector {
    inner: SharedCollector,
}

/// `flush` off the JS thread.
pub struct FlushTask {
    collector: SharedCollector,
    timeout: Duration,
}

impl Task for FlushTask {
    type Output = ();
    type JsValue = ();

    fn compute(&mut self) -> Result<()> {
        match self.collector.get() {
            Some(c) => c.flush(self.timeout).map_err(|e| collector_error(&e)),
            None => Ok(()),
        }
    }

    fn resolve(&mut self, _env: Env, _output: ()) -> Result<()> {
        Ok(())
    }
}

/// `close` off the JS thread; resolves to the final metrics as JSON.
pub struct CloseTask {
    collector: SharedCollector,
    timeout: Option<Duration>,
}

impl Task for CloseTask {
    type Output = String;
    type JsValue = String;

    fn compute(&mut self) -> Result<String> {
        let Some(c) = self.collector.get() else { return Ok(String::from("null")) };
        let (metrics, result) = c.close(self.timeout);
        result.map_err(|e| collector_error(&e))?;
        Ok(aegis_ship::collector::metrics_json(&metrics))
    }

    fn resolve(&mut self, _env: Env, output: String) -> Result<String> {
        Ok(output)
    }
}

#[napi]
impl NativeCollector {
    /// The metrics so far as JSON (snake_case keys; `lib.js` maps them to camelCase).
    #[napi]
    pub fn metrics_json(&self) -> String {
        self.inner.get().map(|c| c.metrics_json()).unwrap_or_else(|| String::from("null"))
    }

    /// Waits (off the JS thread) until every record in the files now is delivered.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn flush(&self, timeout_ms: f64) -> Result<AsyncTask<FlushTask>> {
        Ok(AsyncTask::new(FlushTask { collector: self.inner.clone(), timeout: timeout(timeout_ms)? }))
    }

    /// Stops with a final attempt (off the JS thread); resolves to the final metrics
    /// as JSON. `timeoutMs` absent: the configured `close_timeout_ms`. Idempotent.
    #[napi(ts_return_type = "Promise<string>")]
    pub fn close(&self, timeout_ms: Option<f64>) -> Result<AsyncTask<CloseTask>> {
        let timeout = timeout_ms.map(timeout).transpose()?;
        Ok(AsyncTask::new(CloseTask { collector: self.inner.clone(), timeout }))
    }

    /// Whether `close` was called.
    #[napi]
    pub fn is_closed(&self) -> bool {
        self.inner.get().is_none_or(|c| c.is_closed())
    }
}

fn js_type_name(t: ValueType) -> &'static str {
    match t {
        ValueType::Undefined => "undefined",
        ValueType::Null => "null",
        ValueType::Boolean => "boolean",
        ValueType::Number => "number",
        ValueType::String => "string",
        ValueType::Symbol => "symbol",
        ValueType::Object => "object",
        ValueType::Function => "function",
        ValueType::External => "external",
        ValueType::BigInt => "bigint",
        _ => "unknown",
    }
}

/// The request field at fault: the first segment of `path` (`params.a.b` → `params`),
/// as the core names fields; the full path goes into the message.
use aegis_core::ValuePath as Path;

/// Walks a JS value into an `aegis_core::Value`. `None` means "undefined: absent".
fn to_value(v: &Unknown<'_>, at: &Path<'_>, depth: usize) -> Result<Option<Value>> {
    let bad = |msg: String| -> Error { request_error(&RequestError::new(at.field(), msg)) };
    let shown = || {
        let path = at.text();
        if path.is_empty() {
            "the request".to_owned()
        } else {
            format!("`{path}`")
        }
    };
    if depth > MAX_WALK_DEPTH {
        let top = at.field();
        return Err(bad(format!("`{top}` is nested deeper than the limit of 64 (or the value is cyclic)")));
    }
    let t = v.get_type()?;
    let out = match t {
        ValueType::Undefined => return Ok(None),
        ValueType::Null => Value::Null,
        // SAFETY: the casts below match the type just read with `get_type`.
        ValueType::Boolean => Value::Bool(unsafe { v.cast::<bool>() }?),
        ValueType::Number => {
            let n = unsafe { v.cast::<f64>() }?;
            if !n.is_finite() {
                return Err(bad(format!("{} is {n}; numbers must be finite", shown())));
            }
            Value::Number(if n == 0.0 { 0.0 } else { n })
        }
        ValueType::String => Value::String(unsafe { v.cast::<String>() }?),
        ValueType::Object => {
            if v.is_array()? {
                let arr = unsafe { v.cast::<Object<'_>>() }?;
                let len = arr.get_array_length()?;
                let mut items = Vec::with_capacity(len as usize);
                for i in 0..len {
                    let item: Unknown<'_> = arr.get_element(i)?;
                    let p = Path::Index(at, i as usize);
                    match to_value(&item, &p, depth + 1)? {
                        Some(x) => items.push(x),
                        None => return Err(bad(format!("`{}` is undefined; lists cannot hold undefined", p.text()))),
                    }
                }
                Value::Array(items)
            } else if v.is_date()? {
                return Err(bad(format!("{} is a Date; pass an RFC 3339 string (date.toISOString())", shown())));
            } else if v.is_buffer()? || v.is_typedarray()? || v.is_arraybuffer()? || v.is_promise()? {
                return Err(bad(format!("{} is not a plain object, list or scalar", shown())));
            } else {
                let obj = unsafe { v.cast::<Object<'_>>() }?;
                let keys = obj.get_all_property_names(
                    KeyCollectionMode::OwnOnly,
                    KeyFilter::Enumerable,
                    KeyConversion::NumbersToStrings,
                )?;
                let len = keys.get_array_length()?;
                let mut map = aegis_core::Map::new();
                for i in 0..len {
                    let key: Unknown<'_> = keys.get_element(i)?;
                    if key.get_type()? != ValueType::String {
                        continue; // symbol keys are skipped, as JSON.stringify does
                    }
                    let name = unsafe { key.cast::<String>() }?;
                    let item: Unknown<'_> = obj.get_property(key)?;
                    if let Some(x) = to_value(&item, &Path::Key(at, &name), depth + 1)? {
                        map.insert(name, x);
                    }
                }
                Value::Object(map)
            }
        }
        other => {
            return Err(bad(format!("{} is a {}, which has no JSON form", shown(), js_type_name(other))));
        }
    };
    Ok(Some(out))
}

fn decision_to_native(d: aegis_core::Decision) -> NativeDecision {
    NativeDecision {
        outcome: d.outcome.as_str().to_owned(),
        allowed: d.allowed(),
        audit: d.audit.to_json(),
        rules: d.rules,
        reason: d.reason,
        approval: d.approval.map(|a| NativeApproval { id: a.id, approvers: a.approvers }),
        errors: d
            .errors
            .into_iter()
            .map(|e| NativeDecisionError { rule: e.rule, path: e.path, message: e.message })
            .collect(),
    }
}

fn scope(s: &str) -> Result<KillScope> {
    KillScope::parse(s).ok_or_else(|| usage(&format!("scope must be 'agent', 'tool', 'session' or 'all', found {s:?}")))
}

#[napi]
impl NativeEngine {
    /// Loads a bundle (file or directory).
    #[napi(factory)]
    pub fn from_path(path: String, options: Option<NativeOptions>) -> Result<NativeEngine> {
        let mut built = build_options(options)?;
        let eo = std::mem::take(&mut built.options);
        let engine = Engine::from_path(path, eo).map_err(|e| load_errors(&e))?;
        Ok(NativeEngine::started(engine, built))
    }

    /// Loads a one-file bundle from YAML text (file name `<yaml>`).
    #[napi(factory)]
    pub fn from_yaml(text: String, options: Option<NativeOptions>) -> Result<NativeEngine> {
        let mut built = build_options(options)?;
        let eo = std::mem::take(&mut built.options);
        let engine = Engine::from_yaml(&text, eo).map_err(|e| load_errors(&e))?;
        Ok(NativeEngine::started(engine, built))
    }

    /// Decides a request given as a JS object (converted directly, no JSON text).
    #[napi]
    pub fn evaluate(&self, request: Unknown<'_>) -> Result<NativeDecision> {
        let limits = self.engine.request_limits();
        let value = to_value(&request, &Path::Root, 0)?.unwrap_or(Value::Null);
        let req = Request::from_value(value, limits).map_err(|e| request_error(&e))?;
        let d = self.engine.evaluate(&req).map_err(|e| eval_error(&e))?;
        Ok(decision_to_native(d))
    }

    /// Decides a request given as JSON text; returns the decision line (canonical JSON).
    #[napi]
    pub fn evaluate_json(&self, request_json: String) -> Result<String> {
        self.engine.evaluate_json(&request_json).map_err(|e| eval_error(&e))
    }

    /// Records collected for the JS audit callback since the last call, in order.
    #[napi]
    pub fn drain_records(&self) -> Vec<String> {
        match &self.records {
            Some(b) => std::mem::take(&mut *b.lock().unwrap_or_else(|p| p.into_inner())),
            None => Vec::new(),
        }
    }

    /// Engages a kill switch.
    #[napi]
    pub fn kill(&self, scope_name: String, id: String, reason: Option<String>) -> Result<()> {
        self.engine
            .kill(scope(&scope_name)?, &id, reason.as_deref().unwrap_or(""))
            .map_err(|e| aegis_error("control", &e.to_string(), vec![]))
    }

    /// Lifts a kill switch; `true` if one was engaged.
    #[napi]
    pub fn revive(&self, scope_name: String, id: String) -> Result<bool> {
        self.engine.revive(scope(&scope_name)?, &id).map_err(|e| aegis_error("control", &e.to_string(), vec![]))
    }

    /// Issues an approval grant token.
    #[napi]
    pub fn grant(&self, approval_id: String, approver: String, ttl_seconds: i64) -> Result<String> {
        let ttl = u64::try_from(ttl_seconds).map_err(|_| usage("ttlSeconds must be a non-negative integer"))?;
        self.engine.grant(&approval_id, &approver, ttl).map_err(|e| aegis_error("control", &e.to_string(), vec![]))
    }

    /// Reloads the bundle from its path (engines made with `fromPath`).
    #[napi]
    pub fn reload(&self) -> Result<()> {
        self.engine.reload().map_err(|e| load_errors(&e))
    }

    /// Replaces the bundle with one-file YAML text.
    #[napi]
    pub fn reload_yaml(&self, text: String) -> Result<()> {
        self.engine.reload_yaml(&text).map_err(|e| load_errors(&e))
    }

    /// The hex SHA-256 policy hash of the loaded bundle.
    #[napi]
    pub fn policy_hash(&self) -> String {
        self.engine.policy_hash()
    }

    /// The collector started by the `collector` option, if any.
    #[napi]
    pub fn collector(&self) -> Option<NativeCollector> {
        self.collector.as_ref().map(|c| NativeCollector { inner: c.clone() })
    }
}

/// The option of `candidates` closest to `key` ("did you mean …?" for an unknown
/// camelCase collector option), comparing case-insensitively and ignoring `_`/`-`, so
/// `service_name` suggests `serviceName`.
#[napi]
pub fn suggest_option(key: String, candidates: Vec<String>) -> Option<String> {
    let norm: String = key.chars().filter(|c| *c != '_' && *c != '-').collect();
    let lower: Vec<String> = candidates.iter().map(|c| c.to_lowercase()).collect();
    let best = aegis_core::suggest::closest(&norm, lower.iter().map(String::as_str))?;
    let i = lower.iter().position(|c| c == best)?;
    candidates.into_iter().nth(i)
}
