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
//! JSON object has `code` (the stable codes of spec §17: `policy_invalid`,
//! `request_invalid`, `config_invalid`, `invalid_argument`, `audit_failed`,
//! `collector_failed`), `message`, and for `request_invalid`/`config_invalid` a `field`,
//! for `policy_invalid` an `errors` list. `lib.js` recognises the prefix and throws the
//! matching subclass with `.code`; this wire format never reaches users.
#![deny(unsafe_op_in_unsafe_fn)]

use std::cell::RefCell;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aegis_core::{
    CallbackSink, ConfigError, Engine, EngineOptions, EvalError, FileSink, Fsync, Key, KeyId, KillScope, LoadErrors,
    Request, RequestError, Value,
};
use aegis_ship::collector::{Collector, CollectorConfig, MAX_MS, NEEDS_AUDIT_FILE};
use std::ptr;

use napi::bindgen_prelude::*;
use napi::{sys, Env, JsValue, Task};
use napi_derive::napi;

const PREFIX: &str = "\u{1}AEGIS";

fn s(v: &str) -> Value {
    Value::String(v.to_owned())
}

/// An error for `lib.js`: `code` is the stable §17 code (`policy_invalid`,
/// `request_invalid`, `config_invalid`, `invalid_argument`, `audit_failed`,
/// `collector_failed`), `extra` the fields that go with it (`field`, `errors`).
fn aegis_error(code: &str, message: &str, extra: Vec<(&str, Value)>) -> Error {
    let mut m = aegis_core::Map::new();
    m.insert("code".to_owned(), s(code));
    m.insert("message".to_owned(), s(message));
    for (k, v) in extra {
        m.insert(k.to_owned(), v);
    }
    Error::new(Status::GenericFailure, format!("{PREFIX}{}", Value::Object(m).to_canonical_json()))
}

fn request_error(e: &RequestError) -> Error {
    aegis_error("request_invalid", &e.to_string(), vec![("field", s(&e.field))])
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
    aegis_error("policy_invalid", &e.to_string(), vec![("errors", Value::Array(list))])
}

fn eval_error(e: &EvalError) -> Error {
    match e {
        EvalError::Request(r) => request_error(r),
        EvalError::Audit(a) => audit_error(a),
    }
}

fn audit_error(e: &aegis_core::AuditError) -> Error {
    aegis_error("audit_failed", &e.to_string(), vec![])
}

fn config_error(e: &ConfigError) -> Error {
    aegis_error("config_invalid", &e.message, vec![("field", s(&e.field))])
}

/// A bad option value (`field` in the caller's camelCase spelling).
fn config(field: &str, message: &str) -> Error {
    config_error(&ConfigError::new(field, message))
}

/// A bad argument to a control function (scope, id, approver, ttl, timeout).
fn invalid_argument(message: &str) -> Error {
    aegis_error("invalid_argument", message, vec![])
}

fn control_error(e: &aegis_core::ControlError) -> Error {
    invalid_argument(&e.to_string())
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
    /// `None` once closed (`close` drops the engine: its sinks, and so the audit
    /// file and its lock, are released).
    engine: RefCell<Option<Arc<Engine>>>,
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
        (Some(_), None) => return Err(config("collector", NEEDS_AUDIT_FILE)),
        (Some(json), Some(path)) => Some(CollectorConfig::from_json(path, json).map_err(|e| config("collector", &e))?),
    };
    // §9a: an empty key is refused (an empty HMAC key lets anyone forge grants), and a
    // key id is a name (no NUL or other control character, never cut off).
    eo.approval_key =
        o.approval_key.map(|b| Key::new("approvalKey", b.to_vec())).transpose().map_err(|e| config_error(&e))?;
    eo.signing_key =
        o.signing_key.map(|b| Key::new("signingKey", b.to_vec())).transpose().map_err(|e| config_error(&e))?;
    eo.signing_key_id =
        o.signing_key_id.map(|id| KeyId::new("signingKeyId", id)).transpose().map_err(|e| config_error(&e))?;
    let fsync = match o.fsync.as_deref() {
        None | Some("always") => Fsync::Always,
        Some("batch") => Fsync::Batch,
        Some("never") => Fsync::Never,
        Some(other) => {
            return Err(config("fsync", &format!("fsync must be 'always', 'batch' or 'never', found {other:?}")))
        }
    };
    if let Some(path) = o.audit_path {
        let sink = FileSink::open(&path, fsync).map_err(|e| audit_error(&e))?;
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
        NativeEngine { engine: RefCell::new(Some(Arc::new(engine))), records: built.records, collector }
    }

    /// The engine, unless closed.
    fn engine(&self) -> Result<Arc<Engine>> {
        self.engine.borrow().clone().ok_or_else(|| invalid_argument("this engine is closed"))
    }
}

/// A timeout in milliseconds from JS: finite, 0 to one hour (`MAX_MS`).
fn timeout(ms: f64) -> Result<Duration> {
    if !(0.0..=MAX_MS as f64).contains(&ms) {
        return Err(invalid_argument(&format!(
            "timeoutMs must be a number of milliseconds from 0 to {MAX_MS}, not {ms}"
        )));
    }
    Duration::try_from_secs_f64(ms / 1000.0).map_err(|e| invalid_argument(&format!("timeoutMs: {e}")))
}

fn collector_error(e: &aegis_ship::ShipError) -> Error {
    aegis_error("collector_failed", &e.to_string(), vec![])
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

fn js_type_name(t: sys::napi_valuetype) -> &'static str {
    use sys::ValueType as T;
    match t {
        T::napi_undefined => "undefined",
        T::napi_null => "null",
        T::napi_boolean => "boolean",
        T::napi_number => "number",
        T::napi_string => "string",
        T::napi_symbol => "symbol",
        T::napi_object => "object",
        T::napi_function => "function",
        T::napi_external => "external",
        T::napi_bigint => "bigint",
        _ => "unknown",
    }
}

/// A request path, rendered in policy path syntax (`params.items.1`).
use aegis_core::ValuePath as Path;

/// A failed N-API call: the status as an error (a pending JS exception, such as one
/// thrown by a getter or a Proxy trap, is what JS then sees).
fn check(status: sys::napi_status) -> Result<()> {
    if status == sys::Status::napi_ok {
        Ok(())
    } else {
        Err(Error::new(Status::from(status), String::from("N-API call failed")))
    }
}

/// Converts a JS request object into an `aegis_core::Value`, refusing what JSON (and
/// so the CLI) cannot carry, and bounded as it goes (§9a):
///
/// * **size**: every value is charged as the core measures it (strings by their UTF-8
///   length before they are copied, containers per element and key) against the
///   request size limit, so an array is walked by its real elements, never allocated
///   by its declared length, and shared sub-objects (`o = {a: o, b: o}`) are charged
///   by their expanded size: the walk stops once the limit is passed. Only the scalar
///   top-level fields (`agent`, `time`, … whose bounds the core checks) are not
///   charged, so whatever the walk refuses the core would refuse too;
/// * **depth**: the core's limit plus the two levels above `params`' values (this also
///   stops cycles);
/// * **types**: plain objects (prototype `Object.prototype` or `null`) and arrays
///   (`Array.prototype`, no holes) only; byte strings (Buffer, typed arrays,
///   ArrayBuffer, DataView), Dates, Promises, Errors, Maps, Sets, class instances,
///   functions, symbols, BigInts, NaN/±Infinity and strings with lone surrogates
///   (values and keys) are request errors, never converted lossily (a typed array
///   whose prototype was set to `Object.prototype` is still bytes). Numbers beyond
///   ±(2^53 − 1) are refused by the core (`Request::from_value`), naming the path.
struct Walker {
    env: sys::napi_env,
    /// `Object.prototype` and `Array.prototype` of this realm, read once per request
    /// from fresh objects (never through the global `Object`, which code may replace).
    protos: Option<(sys::napi_value, sys::napi_value)>,
    used: usize,
    max_bytes: usize,
    max_depth: usize,
}

fn shown(at: &Path<'_>) -> String {
    let path = at.text();
    if path.is_empty() {
        "the request".to_owned()
    } else {
        format!("`{path}`")
    }
}

fn bad(at: &Path<'_>, msg: String) -> Error {
    request_error(&RequestError::new(at.field(), msg))
}

impl Walker {
    fn new(env: sys::napi_env, limits: &aegis_core::RequestLimits) -> Walker {
        Walker { env, protos: None, used: 0, max_bytes: limits.max_bytes, max_depth: limits.max_depth + 2 }
    }

    /// Charges `n` bytes; beyond the limit, the core's "larger than" error.
    fn charge(&mut self, n: usize) -> Result<()> {
        self.used = self.used.saturating_add(n);
        if self.used > self.max_bytes {
            return Err(request_error(&RequestError::new(
                "",
                format!("request is larger than {} bytes", self.max_bytes),
            )));
        }
        Ok(())
    }

    fn protos(&mut self) -> Result<(sys::napi_value, sys::napi_value)> {
        if let Some(p) = self.protos {
            return Ok(p);
        }
        let (mut o, mut a, mut op, mut ap) = (ptr::null_mut(), ptr::null_mut(), ptr::null_mut(), ptr::null_mut());
        // SAFETY: plain N-API calls on this env with out-pointers to locals.
        unsafe {
            check(sys::napi_create_object(self.env, &mut o))?;
            check(sys::napi_create_array(self.env, &mut a))?;
            check(sys::napi_get_prototype(self.env, o, &mut op))?;
            check(sys::napi_get_prototype(self.env, a, &mut ap))?;
        }
        self.protos = Some((op, ap));
        Ok((op, ap))
    }

    fn is(
        &self,
        f: unsafe extern "C" fn(sys::napi_env, sys::napi_value, *mut bool) -> sys::napi_status,
        v: sys::napi_value,
    ) -> Result<bool> {
        let mut r = false;
        // SAFETY: `f` is an N-API predicate; `v` is a live value of this env.
        check(unsafe { f(self.env, v, &mut r) })?;
        Ok(r)
    }

    fn strict_equals(&self, a: sys::napi_value, b: sys::napi_value) -> Result<bool> {
        let mut r = false;
        // SAFETY: live values of this env.
        check(unsafe { sys::napi_strict_equals(self.env, a, b, &mut r) })?;
        Ok(r)
    }

    fn prototype(&self, v: sys::napi_value) -> Result<sys::napi_value> {
        let mut p = ptr::null_mut();
        // SAFETY: `v` is an object of this env (a Proxy's trap may throw: an error).
        check(unsafe { sys::napi_get_prototype(self.env, v, &mut p) })?;
        Ok(p)
    }

    fn type_of(&self, v: sys::napi_value) -> Result<sys::napi_valuetype> {
        let mut t = 0;
        // SAFETY: a live value of this env.
        check(unsafe { sys::napi_typeof(self.env, v, &mut t) })?;
        Ok(t)
    }

    /// A JS string as UTF-8, charged (when `charge`) by its length plus quotes before
    /// it is copied; a lone surrogate is an error (`what` names it in the message),
    /// never replaced by U+FFFD.
    fn string(&mut self, v: sys::napi_value, charge: bool, what: impl FnOnce() -> String) -> Result<String> {
        // Short strings (most names and values) are read in one call into a stack
        // buffer: a UTF-8 character is at most 4 bytes, so a result with more than 4
        // bytes to spare was not cut short. Longer ones are measured (and charged)
        // before they are copied.
        const SHORT: usize = 256;
        let mut small = [0u8; SHORT];
        let mut written = 0usize;
        // SAFETY: a string value of this env; `small` has room for SHORT bytes (NUL included).
        check(unsafe { sys::napi_get_value_string_utf8(self.env, v, small.as_mut_ptr().cast(), SHORT, &mut written) })?;
        let bytes = if written + 5 < SHORT {
            if charge {
                self.charge(written + 2)?;
            }
            small[..written].to_vec()
        } else {
            let mut len = 0usize;
            // SAFETY: a NULL buffer asks for the length.
            check(unsafe { sys::napi_get_value_string_utf8(self.env, v, ptr::null_mut(), 0, &mut len) })?;
            if charge {
                self.charge(len + 2)?;
            }
            let mut buf = vec![0u8; len + 1];
            // SAFETY: `buf` has room for `len` bytes and the NUL N-API writes.
            check(unsafe {
                sys::napi_get_value_string_utf8(self.env, v, buf.as_mut_ptr().cast(), len + 1, &mut written)
            })?;
            buf.truncate(written);
            buf
        };
        let s =
            String::from_utf8(bytes).map_err(|_| Error::new(Status::StringExpected, "N-API returned invalid UTF-8"))?;
        // V8 writes a lone surrogate as U+FFFD: only then is the UTF-16 form checked,
        // to tell a real U+FFFD from a replaced surrogate.
        if s.contains('\u{FFFD}') {
            let mut n = 0usize;
            // SAFETY: as above, for UTF-16 code units.
            check(unsafe { sys::napi_get_value_string_utf16(self.env, v, ptr::null_mut(), 0, &mut n) })?;
            let mut units = vec![0u16; n + 1];
            let mut got = 0usize;
            // SAFETY: `units` has room for `n` code units and a NUL.
            check(unsafe { sys::napi_get_value_string_utf16(self.env, v, units.as_mut_ptr(), n + 1, &mut got) })?;
            units.truncate(got);
            if let Some((i, e)) = char::decode_utf16(units.iter().copied())
                .scan(0usize, |at, c| {
                    let here = *at;
                    *at += c.as_ref().map_or(1, |ch| ch.len_utf16());
                    Some((here, c))
                })
                .find(|(_, c)| c.is_err())
            {
                let unit = e.err().map_or(0, |e| e.unpaired_surrogate());
                return Err(Error::new(
                    Status::InvalidArg,
                    format!(
                        "{} contains a lone surrogate (U+{unit:04X} at UTF-16 index {i}); strings must be well-formed Unicode (they are never replaced by U+FFFD)",
                        what()
                    ),
                ));
            }
        }
        Ok(s)
    }

    /// Walks a JS value; `None` means "undefined: absent".
    fn value(&mut self, v: sys::napi_value, at: &Path<'_>, depth: usize) -> Result<Option<Value>> {
        if depth > self.max_depth {
            let top = at.field();
            return Err(bad(
                at,
                format!("`{top}` is nested deeper than the limit of {} (or the value is cyclic)", self.max_depth - 2),
            ));
        }
        // Scalars directly in the request (`agent`, `time`…) are bounded by the core.
        let charged = depth >= 2;
        let t = self.type_of(v)?;
        use sys::ValueType as T;
        let out = match t {
            T::napi_undefined => return Ok(None),
            T::napi_null => {
                if charged {
                    self.charge(4)?;
                }
                Value::Null
            }
            T::napi_boolean => {
                if charged {
                    self.charge(5)?;
                }
                let mut b = false;
                // SAFETY: a boolean value of this env.
                check(unsafe { sys::napi_get_value_bool(self.env, v, &mut b) })?;
                Value::Bool(b)
            }
            T::napi_number => {
                if charged {
                    self.charge(24)?;
                }
                let mut n = 0f64;
                // SAFETY: a number value of this env.
                check(unsafe { sys::napi_get_value_double(self.env, v, &mut n) })?;
                if !n.is_finite() {
                    return Err(bad(at, format!("{} is {n}; numbers must be finite", shown(at))));
                }
                Value::Number(if n == 0.0 { 0.0 } else { n })
            }
            T::napi_string => {
                let s = self.string(v, charged, || shown(at)).map_err(|e| self.relabel(e, at))?;
                Value::String(s)
            }
            T::napi_object => self.object(v, at, depth)?,
            other => {
                return Err(bad(at, format!("{} is a {}, which has no JSON form", shown(at), js_type_name(other))));
            }
        };
        Ok(Some(out))
    }

    /// A string error of ours (not a pending JS exception) as a request error at `at`.
    fn relabel(&self, e: Error, at: &Path<'_>) -> Error {
        if e.status == Status::InvalidArg {
            bad(at, e.reason.clone())
        } else {
            e
        }
    }

    fn object(&mut self, v: sys::napi_value, at: &Path<'_>, depth: usize) -> Result<Value> {
        let refuse = |what: &str| -> Result<Value> { Err(bad(at, format!("{} is {what}", shown(at)))) };
        if self.is(sys::napi_is_array, v)? {
            let (_, array_proto) = self.protos()?;
            if !self.strict_equals(self.prototype(v)?, array_proto)? {
                return refuse("an instance of an Array subclass; pass a plain array");
            }
            return self.array(v, at, depth);
        }
        const BYTES: &str = "a byte string (Buffer, typed array, ArrayBuffer or DataView); requests carry text, never bytes as base64 or JSON: decode it to a string first";
        let (object_proto, _) = self.protos()?;
        let proto = self.prototype(v)?;
        let plain = self.strict_equals(proto, object_proto)? || self.type_of(proto)? == sys::ValueType::napi_null;
        if !plain {
            // Named for the message; each of these has its own prototype.
            if self.is(sys::napi_is_typedarray, v)?
                || self.is(sys::napi_is_arraybuffer, v)?
                || self.is(sys::napi_is_dataview, v)?
            {
                return refuse(BYTES);
            }
            if self.is(sys::napi_is_date, v)? {
                return refuse("a Date; pass an RFC 3339 string (date.toISOString())");
            }
            if self.is(sys::napi_is_promise, v)? {
                return refuse("a Promise; await it before building the request");
            }
            if self.is(sys::napi_is_error, v)? {
                return refuse("an Error, not a plain object");
            }
            return refuse(
                "not a plain object (a Map, Set, class instance, boxed primitive or other object whose prototype is not Object.prototype); pass a plain object",
            );
        }
        // Bytes whose prototype was set to Object.prototype would otherwise be walked
        // as an object of their indices (JSON of the bytes).
        if self.is(sys::napi_is_typedarray, v)? {
            return refuse(BYTES);
        }
        if depth == 1 {
            if let Path::Key(_, k) = at {
                self.charge(k.len() + 4)?;
            }
        }
        self.charge(2)?;
        let mut keys = ptr::null_mut();
        // SAFETY: `v` is an object of this env.
        check(unsafe {
            sys::napi_get_all_property_names(
                self.env,
                v,
                sys::KeyCollectionMode::own_only,
                sys::KeyFilter::enumerable | sys::KeyFilter::skip_symbols,
                sys::KeyConversion::numbers_to_strings,
                &mut keys,
            )
        })?;
        let mut len = 0u32;
        // SAFETY: `keys` is the array just made.
        check(unsafe { sys::napi_get_array_length(self.env, keys, &mut len) })?;
        let mut map = aegis_core::Map::new();
        for i in 0..len {
            let mut key = ptr::null_mut();
            // SAFETY: index within the key array.
            check(unsafe { sys::napi_get_element(self.env, keys, i, &mut key) })?;
            if self.type_of(key)? != sys::ValueType::napi_string {
                continue; // symbols are skipped (filtered out above already)
            }
            let name =
                self.string(key, false, || format!("a key in {}", shown(at))).map_err(|e| self.relabel(e, at))?;
            let mut item = ptr::null_mut();
            // SAFETY: `key` is one of `v`'s own keys; a getter may throw: an error.
            check(unsafe { sys::napi_get_property(self.env, v, key, &mut item) })?;
            // An undefined value is absent: its key costs nothing, as in the core.
            if let Some(x) = self.value(item, &Path::Key(at, &name), depth + 1)? {
                self.charge(name.len() + 4)?;
                map.insert(name, x);
            }
        }
        Ok(Value::Object(map))
    }

    fn array(&mut self, v: sys::napi_value, at: &Path<'_>, depth: usize) -> Result<Value> {
        if depth == 1 {
            if let Path::Key(_, k) = at {
                self.charge(k.len() + 4)?;
            }
        }
        self.charge(2)?;
        let mut len = 0u32;
        // SAFETY: `v` is an array of this env.
        check(unsafe { sys::napi_get_array_length(self.env, v, &mut len) })?;
        // Never allocated by the declared length: each element is charged as it is
        // read, so a sparse `length = 2**32 - 1` stops at its first hole.
        let mut items = Vec::with_capacity((len as usize).min(64));
        for i in 0..len {
            self.charge(1)?;
            let p = Path::Index(at, i as usize);
            let mut item = ptr::null_mut();
            // SAFETY: index below the length; an element getter may throw: an error.
            check(unsafe { sys::napi_get_element(self.env, v, i, &mut item) })?;
            match self.value(item, &p, depth + 1)? {
                Some(x) => items.push(x),
                None => {
                    let mut has = false;
                    // SAFETY: as above.
                    check(unsafe { sys::napi_has_element(self.env, v, i, &mut has) })?;
                    let msg = if has {
                        format!("`{}` is undefined; lists cannot hold undefined", p.text())
                    } else {
                        format!(
                            "`{}` is a hole (the list is sparse: length {len}); lists must hold a value at every index",
                            p.text()
                        )
                    };
                    return Err(bad(&p, msg));
                }
            }
        }
        Ok(Value::Array(items))
    }
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
    KillScope::parse(s)
        .ok_or_else(|| invalid_argument(&format!("scope must be 'agent', 'tool', 'session' or 'all', found {s:?}")))
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
        let engine = self.engine()?;
        let limits = engine.request_limits();
        let raw = request.value();
        let value = Walker::new(raw.env, limits).value(raw.value, &Path::Root, 0)?.unwrap_or(Value::Null);
        let req = Request::from_value(value, limits).map_err(|e| request_error(&e))?;
        let d = engine.evaluate(&req).map_err(|e| eval_error(&e))?;
        Ok(decision_to_native(d))
    }

    /// Decides a request given as JSON text; returns the decision line (canonical JSON).
    #[napi]
    pub fn evaluate_json(&self, request_json: String) -> Result<String> {
        self.engine()?.evaluate_json(&request_json).map_err(|e| eval_error(&e))
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
        self.engine()?.kill(scope(&scope_name)?, &id, reason.as_deref().unwrap_or("")).map_err(|e| control_error(&e))
    }

    /// Lifts a kill switch; `true` if one was engaged.
    #[napi]
    pub fn revive(&self, scope_name: String, id: String) -> Result<bool> {
        self.engine()?.revive(scope(&scope_name)?, &id).map_err(|e| control_error(&e))
    }

    /// Issues an approval grant token.
    #[napi]
    pub fn grant(&self, approval_id: String, approver: String, ttl_seconds: i64) -> Result<String> {
        let ttl =
            u64::try_from(ttl_seconds).map_err(|_| invalid_argument("ttlSeconds must be a non-negative integer"))?;
        self.engine()?.grant(&approval_id, &approver, ttl).map_err(|e| control_error(&e))
    }

    /// Reloads the bundle from its path (engines made with `fromPath`).
    #[napi]
    pub fn reload(&self) -> Result<()> {
        self.engine()?.reload().map_err(|e| load_errors(&e))
    }

    /// Replaces the bundle with one-file YAML text.
    #[napi]
    pub fn reload_yaml(&self, text: String) -> Result<()> {
        self.engine()?.reload_yaml(&text).map_err(|e| load_errors(&e))
    }

    /// The hex SHA-256 policy hash of the loaded bundle.
    #[napi]
    pub fn policy_hash(&self) -> Result<String> {
        Ok(self.engine()?.policy_hash())
    }

    /// Drops the engine: its sinks are dropped, which closes the audit file and
    /// releases its lock (so another engine may open it). Later calls fail. Idempotent.
    #[napi]
    pub fn close(&self) {
        let engine = self.engine.borrow_mut().take();
        drop(engine);
    }

    /// Whether `close` was called.
    #[napi]
    pub fn is_closed(&self) -> bool {
        self.engine.borrow().is_none()
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
