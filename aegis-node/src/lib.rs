//! Node.js binding for the Aegis policy-decision engine (napi-rs).
//!
//! The native layer is deliberately thin: `NativeEngine` wraps an
//! `Arc<aegis_core::Engine>` (and, with the `collector` option, the
//! `aegis_ship::Collector` shipping its audit file; `NativeCollector` exposes it, its
//! blocking `flush`/`close` run on the libuv thread pool and return Promises); the
//! JavaScript layer (`lib.js`) turns native errors into the `AegisError` class family,
//! parses audit records and implements `secureTool` / `withAgent`.
//!
//! * **Options** (SPEC §17): the JS options object is converted here, strictly and
//!   bounded (plain objects, arrays, well-formed strings, finite numbers, booleans,
//!   `null`; a `Buffer`/`Uint8Array` becomes `{"base64": …}`; anything else is
//!   `config_invalid` naming the option), and handed as one document to the core's
//!   validator (`EngineConfig`, camelCase spelling), then to `aegis_ship::open::open`,
//!   the path every binding takes.
//! * **Errors** are thrown as JS `Error` objects carrying the core's [`ErrorInfo`] as
//!   properties: `code` (the stable codes of §17), `field`, `errors` (every load error as
//!   `{file, line, column, message, help}`) and the non-enumerable marker `aegisError`
//!   by which `lib.js` tells them from exceptions JS code threw (a getter, a Proxy trap).
//! * **The audit callback** is a core sink that calls the JS function handed to the
//!   running `evaluate`/`evaluateJson` call, synchronously, on the calling thread, while
//!   the engine records the decision: the callback has run before `evaluate` returns, and
//!   a callback that fails fails the call (`audit_failed`) before anything is chained
//!   when it is the first sink.

use std::cell::RefCell;
use std::ptr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use aegis_core::{
    AuditError, AuditRecord, AuditSink, Engine, EngineConfig, ErrorCode, ErrorInfo, KillScope, Map, Request,
    RequestError, Spelling, Value, ValuePath as Path,
};
use aegis_ship::collector::{Collector, MAX_MS};
use aegis_ship::open::{open, Bundle};

use napi::bindgen_prelude::*;
use napi::{sys, Env, JsValue, Task};
use napi_derive::napi;

// ---------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------

/// Why a native call failed, until the error reaches JS.
enum Fail {
    /// An error of the engine (code, message, field, load errors): thrown as a JS
    /// `Error` carrying them as properties.
    Info(ErrorInfo),
    /// A failed N-API call, or an exception JS code threw (a getter, a Proxy trap) that
    /// is pending: thrown as it is.
    Napi(Error),
}

impl From<Error> for Fail {
    fn from(e: Error) -> Fail {
        Fail::Napi(e)
    }
}

impl From<ErrorInfo> for Fail {
    fn from(e: ErrorInfo) -> Fail {
        Fail::Info(e)
    }
}

/// A result whose error becomes a JS error once an `Env` is at hand.
type Outcome<T> = std::result::Result<T, Fail>;

fn fail(code: ErrorCode, message: impl Into<String>) -> Fail {
    Fail::Info(ErrorInfo::new(code, message))
}

/// A bad argument to a control function (scope, id, approver, ttl, timeout, a closed
/// engine).
fn invalid_argument(message: impl Into<String>) -> Fail {
    fail(ErrorCode::InvalidArgument, message)
}

impl Fail {
    /// The error to throw (or to reject a Promise with) in `env`.
    fn into_js(self, env: sys::napi_env) -> Error {
        match self {
            Fail::Napi(e) => e,
            Fail::Info(info) => js_error(env, &info),
        }
    }
}

/// Runs `f` and turns its failure into the JS error to throw.
fn js<T>(env: &Env, f: impl FnOnce() -> Outcome<T>) -> Result<T> {
    f().map_err(|e| e.into_js(env.raw()))
}

/// A failed N-API call: the status as an error (a pending JS exception, such as one
/// thrown by a getter or a Proxy trap, is what JS then sees).
fn check(status: sys::napi_status) -> Result<()> {
    if status == sys::Status::napi_ok {
        Ok(())
    } else {
        Err(Error::new(Status::from(status), String::from("N-API call failed")))
    }
}

fn js_string(env: sys::napi_env, s: &str) -> Result<sys::napi_value> {
    let mut v = ptr::null_mut();
    // SAFETY: `s` is valid UTF-8 of the given length; `v` is an out-pointer to a local.
    check(unsafe { sys::napi_create_string_utf8(env, s.as_ptr().cast(), s.len() as isize, &mut v) })?;
    Ok(v)
}

fn set_named(env: sys::napi_env, object: sys::napi_value, name: &std::ffi::CStr, value: sys::napi_value) -> Result<()> {
    // SAFETY: live values of this env; `name` is NUL-terminated.
    check(unsafe { sys::napi_set_named_property(env, object, name.as_ptr(), value) })
}

/// The JS `Error` for `info` (see the module docs); if the environment cannot build
/// it (it is shutting down), a plain error with the message.
fn js_error(env: sys::napi_env, info: &ErrorInfo) -> Error {
    match build_js_error(env, info) {
        // SAFETY: `v` is a live error object of this env.
        Ok(v) => Error::from(unsafe { Unknown::from_raw_unchecked(env, v) }),
        Err(_) => Error::new(Status::GenericFailure, info.message.clone()),
    }
}

fn build_js_error(env: sys::napi_env, info: &ErrorInfo) -> Result<sys::napi_value> {
    let code = js_string(env, info.code.as_str())?;
    let message = js_string(env, &info.message)?;
    let mut err = ptr::null_mut();
    // SAFETY: `code` and `message` are strings of this env (N-API sets `err.code`).
    check(unsafe { sys::napi_create_error(env, code, message, &mut err) })?;
    set_named(env, err, c"field", js_string(env, &info.field)?)?;
    let mut list = ptr::null_mut();
    // SAFETY: out-pointer to a local.
    check(unsafe { sys::napi_create_array_with_length(env, info.errors.len(), &mut list) })?;
    for (i, e) in info.errors.iter().enumerate() {
        let mut o = ptr::null_mut();
        // SAFETY: out-pointer to a local.
        check(unsafe { sys::napi_create_object(env, &mut o) })?;
        set_named(env, o, c"file", js_string(env, &e.file)?)?;
        set_named(env, o, c"line", number(env, e.line as f64)?)?;
        set_named(env, o, c"column", number(env, e.column as f64)?)?;
        set_named(env, o, c"message", js_string(env, &e.message)?)?;
        let help = match &e.help {
            Some(h) => js_string(env, h)?,
            None => null(env)?,
        };
        set_named(env, o, c"help", help)?;
        // SAFETY: `list` is the array just made; `i` is within its length.
        check(unsafe { sys::napi_set_element(env, list, i as u32, o) })?;
    }
    set_named(env, err, c"errors", list)?;
    let mut yes = ptr::null_mut();
    // SAFETY: out-pointer to a local.
    check(unsafe { sys::napi_get_boolean(env, true, &mut yes) })?;
    let marker = sys::napi_property_descriptor {
        utf8name: c"aegisError".as_ptr(),
        name: ptr::null_mut(),
        method: None,
        getter: None,
        setter: None,
        value: yes,
        attributes: sys::PropertyAttributes::default,
        data: ptr::null_mut(),
    };
    // SAFETY: one descriptor, alive for the call.
    check(unsafe { sys::napi_define_properties(env, err, 1, &marker) })?;
    Ok(err)
}

fn number(env: sys::napi_env, n: f64) -> Result<sys::napi_value> {
    let mut v = ptr::null_mut();
    // SAFETY: out-pointer to a local.
    check(unsafe { sys::napi_create_double(env, n, &mut v) })?;
    Ok(v)
}

fn null(env: sys::napi_env) -> Result<sys::napi_value> {
    let mut v = ptr::null_mut();
    // SAFETY: out-pointer to a local.
    check(unsafe { sys::napi_get_null(env, &mut v) })?;
    Ok(v)
}

fn type_of(env: sys::napi_env, v: sys::napi_value) -> Result<sys::napi_valuetype> {
    let mut t = 0;
    // SAFETY: a live value of this env.
    check(unsafe { sys::napi_typeof(env, v, &mut t) })?;
    Ok(t)
}

/// A JS string read whole as UTF-8 (lone surrogates become U+FFFD: for texts of our
/// own making only, such as the audit trampoline's messages).
fn read_string(env: sys::napi_env, v: sys::napi_value) -> Result<String> {
    let mut len = 0usize;
    // SAFETY: a NULL buffer asks for the length.
    check(unsafe { sys::napi_get_value_string_utf8(env, v, ptr::null_mut(), 0, &mut len) })?;
    let mut buf = vec![0u8; len + 1];
    let mut written = 0usize;
    // SAFETY: `buf` has room for `len` bytes and the NUL N-API writes.
    check(unsafe { sys::napi_get_value_string_utf8(env, v, buf.as_mut_ptr().cast(), len + 1, &mut written) })?;
    buf.truncate(written);
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

// ---------------------------------------------------------------------------------------
// The audit callback sink
// ---------------------------------------------------------------------------------------

/// Ids of callback sinks, one per engine built with `audit` as a function.
static NEXT_SINK: AtomicU64 = AtomicU64::new(1);

thread_local! {
    /// The JS functions handed to the native calls running on this thread, innermost
    /// last, with the id of the sink each is for (a callback may use another engine,
    /// so calls nest). An entry lives exactly as long as its call, so its `napi_value`s
    /// are valid whenever a sink reads them.
    static DELIVERING: RefCell<Vec<(u64, sys::napi_env, sys::napi_value)>> = const { RefCell::new(Vec::new()) };
}

/// Pops this call's entry from [`DELIVERING`] however the call ends.
struct Delivering;

impl Drop for Delivering {
    fn drop(&mut self) {
        DELIVERING.with(|d| d.borrow_mut().pop());
    }
}

/// Runs `f` (a decision) with `audit` as the function the engine's callback sink `sink`
/// delivers to.
fn delivering<T>(sink: Option<u64>, env: sys::napi_env, audit: Option<sys::napi_value>, f: impl FnOnce() -> T) -> T {
    match (sink, audit) {
        (Some(id), Some(func)) => {
            DELIVERING.with(|d| d.borrow_mut().push((id, env, func)));
            let _entry = Delivering;
            f()
        }
        _ => f(),
    }
}

/// The core sink behind `audit: fn`: hands each record's canonical line to the JS
/// function of the running call (`lib.js`'s trampoline, which parses it and calls the
/// user's function). The trampoline returns `undefined` when the callback accepted the
/// record, or a message saying why it failed (it threw, returned a Promise or called
/// back into its engine): the record is then refused and the call fails with
/// `audit_failed`.
struct JsCallbackSink {
    id: u64,
}

impl AuditSink for JsCallbackSink {
    fn write(&mut self, _record: &AuditRecord, line: &str) -> std::result::Result<(), AuditError> {
        let target = DELIVERING
            .with(|d| d.borrow().iter().rev().find(|(id, _, _)| *id == self.id).map(|&(_, env, func)| (env, func)));
        // Only a call made on the engine's own JS thread through `lib.js` has one.
        let Some((env, func)) = target else {
            return Err(AuditError::Callback("no audit callback is running for this call".into()));
        };
        deliver(env, func, line).map_err(AuditError::Callback)
    }
}

fn deliver(env: sys::napi_env, func: sys::napi_value, line: &str) -> std::result::Result<(), String> {
    let cannot = |_| String::from("the record could not be handed to the audit callback");
    let arg = js_string(env, line).map_err(cannot)?;
    let mut this = ptr::null_mut();
    let mut out = ptr::null_mut();
    // SAFETY: `func` is the function handed to the running call (checked to be a
    // function), `arg` a string of this env.
    let status = unsafe {
        let s = sys::napi_get_undefined(env, &mut this);
        if s == sys::Status::napi_ok {
            sys::napi_call_function(env, this, func, 1, &arg, &mut out)
        } else {
            s
        }
    };
    if status != sys::Status::napi_ok {
        // The trampoline catches what the callback throws, so this is an exception it
        // could not catch (a stack overflow…): cleared here, reported as the failure.
        let mut pending = false;
        let mut exception = ptr::null_mut();
        // SAFETY: out-pointers to locals.
        unsafe {
            if sys::napi_is_exception_pending(env, &mut pending) == sys::Status::napi_ok && pending {
                sys::napi_get_and_clear_last_exception(env, &mut exception);
            }
        }
        return Err("the audit callback could not be run".into());
    }
    match type_of(env, out) {
        Ok(sys::ValueType::napi_undefined) => Ok(()),
        Ok(sys::ValueType::napi_string) => Err(read_string(env, out).map_err(cannot)?),
        _ => Err("the audit callback trampoline returned something unexpected".into()),
    }
}

/// Checks that `audit`, when given, is a function; returns its raw value.
fn audit_function(audit: Option<Unknown<'_>>) -> Outcome<Option<sys::napi_value>> {
    let Some(a) = audit else { return Ok(None) };
    let raw = a.value();
    if type_of(raw.env, raw.value)? != sys::ValueType::napi_function {
        return Err(invalid_argument("the audit trampoline must be a function"));
    }
    Ok(Some(raw.value))
}

// ---------------------------------------------------------------------------------------
// The collector
// ---------------------------------------------------------------------------------------

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

/// A timeout in milliseconds from JS: finite, 0 to one hour (`MAX_MS`).
fn timeout(ms: f64) -> Outcome<Duration> {
    if !(0.0..=MAX_MS as f64).contains(&ms) {
        return Err(invalid_argument(format!(
            "timeoutMs must be a number of milliseconds from 0 to {MAX_MS}, not {ms}"
        )));
    }
    Duration::try_from_secs_f64(ms / 1000.0).map_err(|e| invalid_argument(format!("timeoutMs: {e}")))
}

fn collector_failed(e: &aegis_ship::ShipError) -> ErrorInfo {
    ErrorInfo::new(ErrorCode::CollectorFailed, e.to_string())
}

/// The collector of an engine (`engine.collector` in `lib.js`).
#[napi]
pub struct NativeCollector {
    inner: SharedCollector,
}

/// `flush` off the JS thread. Its error is kept until the Promise is rejected on the JS
/// thread, where it becomes a JS error with its code.
pub struct FlushTask {
    collector: SharedCollector,
    timeout: Duration,
    failure: Option<ErrorInfo>,
}

impl Task for FlushTask {
    type Output = ();
    type JsValue = ();

    fn compute(&mut self) -> Result<()> {
        match self.collector.get().map(|c| c.flush(self.timeout)) {
            Some(Err(e)) => {
                let info = collector_failed(&e);
                let err = Error::new(Status::GenericFailure, info.message.clone());
                self.failure = Some(info);
                Err(err)
            }
            _ => Ok(()),
        }
    }

    fn resolve(&mut self, _env: Env, _output: ()) -> Result<()> {
        Ok(())
    }

    fn reject(&mut self, env: Env, err: Error) -> Result<()> {
        Err(self.failure.take().map_or(err, |info| js_error(env.raw(), &info)))
    }
}

/// `close` off the JS thread; resolves to the final metrics as JSON.
pub struct CloseTask {
    collector: SharedCollector,
    timeout: Option<Duration>,
    failure: Option<ErrorInfo>,
}

impl Task for CloseTask {
    type Output = String;
    type JsValue = String;

    fn compute(&mut self) -> Result<String> {
        let Some(c) = self.collector.get() else { return Ok(String::from("null")) };
        let (metrics, result) = c.close(self.timeout);
        if let Err(e) = result {
            let info = collector_failed(&e);
            let err = Error::new(Status::GenericFailure, info.message.clone());
            self.failure = Some(info);
            return Err(err);
        }
        Ok(aegis_ship::collector::metrics_json(&metrics))
    }

    fn resolve(&mut self, _env: Env, output: String) -> Result<String> {
        Ok(output)
    }

    fn reject(&mut self, env: Env, err: Error) -> Result<String> {
        Err(self.failure.take().map_or(err, |info| js_error(env.raw(), &info)))
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
    pub fn flush(&self, env: Env, timeout_ms: f64) -> Result<AsyncTask<FlushTask>> {
        let timeout = js(&env, || timeout(timeout_ms))?;
        Ok(AsyncTask::new(FlushTask { collector: self.inner.clone(), timeout, failure: None }))
    }

    /// Stops with a final attempt (off the JS thread); resolves to the final metrics
    /// as JSON. `timeoutMs` absent: the configured `close_timeout_ms`. Idempotent.
    #[napi(ts_return_type = "Promise<string>")]
    pub fn close(&self, env: Env, timeout_ms: Option<f64>) -> Result<AsyncTask<CloseTask>> {
        let timeout = js(&env, || timeout_ms.map(timeout).transpose())?;
        Ok(AsyncTask::new(CloseTask { collector: self.inner.clone(), timeout, failure: None }))
    }

    /// Whether `close` was called.
    #[napi]
    pub fn is_closed(&self) -> bool {
        self.inner.get().is_none_or(|c| c.is_closed())
    }
}

// ---------------------------------------------------------------------------------------
// JS values → engine values
// ---------------------------------------------------------------------------------------

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

/// What a [`Walker`] converts, which decides its bounds, what it does with bytes and
/// `undefined`, and the error it reports.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// A request (§1, §9a): bytes are refused; errors are `request_invalid` naming the
    /// top-level request field.
    Request,
    /// The options document (§17): a `Buffer`/`Uint8Array` becomes `{"base64": …}`,
    /// `undefined` inside it is `null` (not given, or reported where a value is
    /// required, such as a header); errors are `config_invalid` naming the top-level
    /// option as the caller spelt it.
    Options {
        /// Leave out the top-level `audit` key, which `lib.js` read as the callback.
        skip_audit: bool,
    },
}

/// The options document's bounds are the core's (the JSON reader of C's
/// `aegis_engine_options_set_json` applies the same).
const MAX_OPTIONS_BYTES: usize = aegis_core::config::DOC_MAX_BYTES;
const MAX_OPTIONS_DEPTH: usize = aegis_core::config::DOC_MAX_DEPTH;

/// Converts a JS value into an `aegis_core::Value`, refusing what JSON (and so the CLI)
/// cannot carry, and bounded as it goes (§9a):
///
/// * **size**: every value is charged as the core measures it (strings by their UTF-8
///   length before they are copied, containers per element and key) against the size
///   limit, so an array is walked by its real elements, never allocated by its declared
///   length, and shared sub-objects (`o = {a: o, b: o}`) are charged by their expanded
///   size: the walk stops once the limit is passed. In a request only the scalar
///   top-level fields (`agent`, `time`, … whose bounds the core checks) are not
///   charged, so whatever the walk refuses the core would refuse too;
/// * **depth**: for a request the core's limit plus the two levels above `params`'
///   values; for options 8 (this also stops cycles);
/// * **types**: plain objects (prototype `Object.prototype` or `null`) and arrays
///   (`Array.prototype`, no holes) only; byte strings (Buffer, typed arrays,
///   ArrayBuffer, DataView; in options a `Uint8Array` is a key's bytes), Dates,
///   Promises, Errors, Maps, Sets, class instances, functions, symbols, BigInts,
///   NaN/±Infinity and strings with lone surrogates (values and keys) are errors, never
///   converted lossily (a typed array whose prototype was set to `Object.prototype` is
///   still bytes). In a request, numbers beyond ±(2^53 − 1) are refused by the core
///   (`Request::from_value`), naming the path; in options, by the option's range.
struct Walker {
    env: sys::napi_env,
    mode: Mode,
    /// `Object.prototype` and `Array.prototype` of this realm, read once per walk from
    /// fresh objects (never through the global `Object`, which code may replace).
    protos: Option<(sys::napi_value, sys::napi_value)>,
    used: usize,
    max_bytes: usize,
    max_depth: usize,
    /// The depth limit as the caller knows it (in a request, that of `params`).
    shown_depth: usize,
}

impl Walker {
    fn request(env: sys::napi_env, limits: &aegis_core::RequestLimits) -> Walker {
        Walker {
            env,
            mode: Mode::Request,
            protos: None,
            used: 0,
            max_bytes: limits.max_bytes,
            max_depth: limits.max_depth + 2,
            shown_depth: limits.max_depth,
        }
    }

    fn options(env: sys::napi_env, skip_audit: bool) -> Walker {
        Walker {
            env,
            mode: Mode::Options { skip_audit },
            protos: None,
            used: 0,
            max_bytes: MAX_OPTIONS_BYTES,
            max_depth: MAX_OPTIONS_DEPTH,
            shown_depth: MAX_OPTIONS_DEPTH,
        }
    }

    /// `the request` / `the options object`, or the path in backquotes.
    fn shown(&self, at: &Path<'_>) -> String {
        let path = at.text();
        match (path.is_empty(), self.mode) {
            (true, Mode::Request) => "the request".to_owned(),
            (true, Mode::Options { .. }) => "the options object".to_owned(),
            (false, _) => format!("`{path}`"),
        }
    }

    /// The error for a value at `at`.
    fn bad(&self, at: &Path<'_>, message: String) -> Fail {
        match self.mode {
            Mode::Request => ErrorInfo::from(&RequestError::new(at.field(), message)).into(),
            Mode::Options { .. } => {
                ErrorInfo { field: at.field().to_owned(), ..ErrorInfo::new(ErrorCode::ConfigInvalid, message) }.into()
            }
        }
    }

    /// Charges `n` bytes; beyond the limit, the core's "larger than" error.
    fn charge(&mut self, n: usize) -> Outcome<()> {
        self.used = self.used.saturating_add(n);
        if self.used > self.max_bytes {
            let what = if self.mode == Mode::Request { "request is" } else { "the options are" };
            return Err(self.bad(&Path::Root, format!("{what} larger than {} bytes", self.max_bytes)));
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

    /// A JS string as UTF-8, charged (when `charge`) by its length plus quotes before
    /// it is copied; a lone surrogate is an error at `at` (`what` names the string in
    /// the message), never replaced by U+FFFD.
    fn string(
        &mut self,
        v: sys::napi_value,
        charge: bool,
        at: &Path<'_>,
        what: impl FnOnce(&Walker) -> String,
    ) -> Outcome<String> {
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
            small.get(..written).unwrap_or_default().to_vec()
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
                let what = what(self);
                return Err(self.bad(
                    at,
                    format!(
                        "{what} contains a lone surrogate (U+{unit:04X} at UTF-16 index {i}); strings must be well-formed Unicode (they are never replaced by U+FFFD)"
                    ),
                ));
            }
        }
        Ok(s)
    }

    /// Walks a JS value; `None` means "undefined: absent".
    fn value(&mut self, v: sys::napi_value, at: &Path<'_>, depth: usize) -> Outcome<Option<Value>> {
        if depth > self.max_depth {
            let top = at.field();
            return Err(self.bad(
                at,
                format!("`{top}` is nested deeper than the limit of {} (or the value is cyclic)", self.shown_depth),
            ));
        }
        // Scalars directly in a request (`agent`, `time`…) are bounded by the core.
        let charged = depth >= 2 || self.mode != Mode::Request;
        let t = type_of(self.env, v)?;
        use sys::ValueType as T;
        let out = match t {
            T::napi_undefined if depth >= 2 && self.mode != Mode::Request => {
                self.charge(4)?;
                Value::Null
            }
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
                    let why = aegis_core::value::non_finite_message(n);
                    return Err(self.bad(at, format!("{} {why}", self.shown(at))));
                }
                Value::Number(if n == 0.0 { 0.0 } else { n })
            }
            T::napi_string => Value::String(self.string(v, charged, at, |w| w.shown(at))?),
            T::napi_object => self.object(v, at, depth)?,
            other => {
                return Err(
                    self.bad(at, format!("{} is a {}, which has no JSON form", self.shown(at), js_type_name(other)))
                );
            }
        };
        Ok(Some(out))
    }

    fn object(&mut self, v: sys::napi_value, at: &Path<'_>, depth: usize) -> Outcome<Value> {
        let refuse =
            |w: &Walker, what: &str| -> Outcome<Value> { Err(w.bad(at, format!("{} is {what}", w.shown(at)))) };
        if self.is(sys::napi_is_array, v)? {
            let (_, array_proto) = self.protos()?;
            if !self.strict_equals(self.prototype(v)?, array_proto)? {
                return refuse(self, "an instance of an Array subclass; pass a plain array");
            }
            return self.array(v, at, depth);
        }
        if self.mode != Mode::Request && self.is(sys::napi_is_typedarray, v)? {
            if let Some(b64) = self.key_bytes(v)? {
                let mut m = Map::new();
                m.insert("base64".to_owned(), Value::String(b64));
                return Ok(Value::Object(m));
            }
            return refuse(self, "a typed array other than a Buffer or Uint8Array; give a key as a string or a Buffer");
        }
        const BYTES: &str = "a byte string (Buffer, typed array, ArrayBuffer or DataView); requests carry text, never bytes as base64 or JSON: decode it to a string first";
        let (object_proto, _) = self.protos()?;
        let proto = self.prototype(v)?;
        let plain = self.strict_equals(proto, object_proto)? || type_of(self.env, proto)? == sys::ValueType::napi_null;
        if !plain {
            // Named for the message; each of these has its own prototype.
            if self.is(sys::napi_is_typedarray, v)?
                || self.is(sys::napi_is_arraybuffer, v)?
                || self.is(sys::napi_is_dataview, v)?
            {
                if self.mode == Mode::Request {
                    return refuse(self, BYTES);
                }
                return refuse(self, "an ArrayBuffer or DataView; give a key as a string or a Buffer");
            }
            if self.is(sys::napi_is_date, v)? {
                return refuse(self, "a Date; pass an RFC 3339 string (date.toISOString())");
            }
            if self.is(sys::napi_is_promise, v)? {
                return refuse(self, "a Promise; await it before building the request");
            }
            if self.is(sys::napi_is_error, v)? {
                return refuse(self, "an Error, not a plain object");
            }
            return refuse(
                self,
                "not a plain object (a Map, Set, class instance, boxed primitive or other object whose prototype is not Object.prototype); pass a plain object",
            );
        }
        // Bytes whose prototype was set to Object.prototype would otherwise be walked
        // as an object of their indices (JSON of the bytes).
        if self.is(sys::napi_is_typedarray, v)? {
            return refuse(self, BYTES);
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
        let mut map = Map::new();
        for i in 0..len {
            let mut key = ptr::null_mut();
            // SAFETY: index within the key array.
            check(unsafe { sys::napi_get_element(self.env, keys, i, &mut key) })?;
            if type_of(self.env, key)? != sys::ValueType::napi_string {
                continue; // symbols are skipped (filtered out above already)
            }
            let name = self.string(key, false, at, |w| format!("a key in {}", w.shown(at)))?;
            if depth == 0 && name == "audit" && matches!(self.mode, Mode::Options { skip_audit: true }) {
                continue; // the callback, which `lib.js` read and keeps
            }
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

    /// The bytes of a `Buffer`/`Uint8Array` as base64 (`None`: another typed array).
    fn key_bytes(&mut self, v: sys::napi_value) -> Outcome<Option<String>> {
        let (mut kind, mut len, mut data, mut buffer, mut offset) =
            (0, 0usize, ptr::null_mut(), ptr::null_mut(), 0usize);
        // SAFETY: `v` is a typed array of this env; out-pointers to locals.
        check(unsafe {
            sys::napi_get_typedarray_info(self.env, v, &mut kind, &mut len, &mut data, &mut buffer, &mut offset)
        })?;
        if kind != sys::TypedarrayType::uint8_array {
            return Ok(None);
        }
        self.charge(len.saturating_mul(4) / 3 + 16)?;
        let bytes: &[u8] = if len == 0 || data.is_null() {
            &[]
        } else {
            // SAFETY: N-API reports `len` bytes at `data`, alive while `v` is (this call).
            unsafe { std::slice::from_raw_parts(data.cast::<u8>(), len) }
        };
        use base64::Engine as _;
        Ok(Some(base64::engine::general_purpose::STANDARD.encode(bytes)))
    }

    fn array(&mut self, v: sys::napi_value, at: &Path<'_>, depth: usize) -> Outcome<Value> {
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
            let mut has = true;
            if type_of(self.env, item)? == sys::ValueType::napi_undefined {
                // SAFETY: as above.
                check(unsafe { sys::napi_has_element(self.env, v, i, &mut has) })?;
            }
            if !has {
                let msg = format!(
                    "`{}` is a hole (the list is sparse: length {len}); lists must hold a value at every index",
                    p.text()
                );
                return Err(self.bad(&p, msg));
            }
            match self.value(item, &p, depth + 1)? {
                Some(x) => items.push(x),
                None => {
                    let msg = format!("`{}` is undefined; lists cannot hold undefined", p.text());
                    return Err(self.bad(&p, msg));
                }
            }
        }
        Ok(Value::Array(items))
    }
}

// ---------------------------------------------------------------------------------------
// Engine values → JS values (the params a guarded tool receives)
// ---------------------------------------------------------------------------------------

/// A JS value for `v`: plain objects (own data properties, defined rather than set, so
/// a `__proto__` key is a key), arrays, strings, numbers, booleans and `null`.
fn to_js(env: sys::napi_env, v: &Value) -> Result<sys::napi_value> {
    let mut out = ptr::null_mut();
    match v {
        Value::Null => return null(env),
        Value::Bool(b) => {
            // SAFETY: out-pointer to a local.
            check(unsafe { sys::napi_get_boolean(env, *b, &mut out) })?;
        }
        Value::Number(n) => return number(env, *n),
        Value::String(s) => return js_string(env, s),
        Value::Array(items) => {
            // SAFETY: out-pointer to a local.
            check(unsafe { sys::napi_create_array_with_length(env, items.len(), &mut out) })?;
            for (i, x) in items.iter().enumerate() {
                let item = to_js(env, x)?;
                // SAFETY: `out` is the array just made.
                check(unsafe { sys::napi_set_element(env, out, i as u32, item) })?;
            }
        }
        Value::Object(m) => return map_to_js(env, m),
    }
    Ok(out)
}

fn map_to_js(env: sys::napi_env, m: &Map) -> Result<sys::napi_value> {
    let mut out = ptr::null_mut();
    // SAFETY: out-pointer to a local.
    check(unsafe { sys::napi_create_object(env, &mut out) })?;
    let mut props = Vec::with_capacity(m.len());
    for (k, x) in m.iter() {
        props.push(sys::napi_property_descriptor {
            utf8name: ptr::null(),
            name: js_string(env, k)?,
            method: None,
            getter: None,
            setter: None,
            value: to_js(env, x)?,
            attributes: sys::PropertyAttributes::writable
                | sys::PropertyAttributes::enumerable
                | sys::PropertyAttributes::configurable,
            data: ptr::null_mut(),
        });
    }
    if !props.is_empty() {
        // SAFETY: `props` holds live values of this env for the call.
        check(unsafe { sys::napi_define_properties(env, out, props.len(), props.as_ptr()) })?;
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------
// The engine
// ---------------------------------------------------------------------------------------

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
    /// The rule (or `limit:ID`) whose test failed.
    pub rule: String,
    /// The path of the value tested (`params.amount`).
    pub path: String,
    /// What went wrong (the message catalogue of the vectors README).
    pub message: String,
}

/// A decision; `audit` is the record's canonical JSON line (parsed by `lib.js`).
#[napi(object)]
pub struct NativeDecision {
    /// `allow` | `deny` | `require_approval`.
    pub outcome: String,
    /// Whether the call may run (`outcome` is `allow`).
    pub allowed: bool,
    /// The determining rules, then exceeded limits (`limit:ID`).
    pub rules: Vec<String>,
    /// Why, for people.
    pub reason: String,
    /// Present only for `require_approval`.
    pub approval: Option<NativeApproval>,
    /// Condition errors (the decision failed closed where they occurred).
    pub errors: Vec<NativeDecisionError>,
    /// The audit record as canonical JSON.
    pub audit: String,
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

fn scope(s: &str) -> Outcome<KillScope> {
    KillScope::from_arg(s).map_err(|e| invalid_argument(e.0))
}

/// The engine handle. One per JS environment (main thread or worker).
#[napi]
pub struct NativeEngine {
    /// `None` once closed (`close` drops the engine: its sinks, and so the audit
    /// file and its lock, are released).
    engine: RefCell<Option<Arc<Engine>>>,
    /// The id of the engine's callback sink, when `audit` was a function.
    callback: Option<u64>,
    collector: Option<SharedCollector>,
}

impl NativeEngine {
    /// Reads the options document (§17), then opens the engine the way every binding
    /// does (`aegis_ship::open::open`).
    fn open(
        env: &Env,
        bundle: Bundle<'_>,
        options: Option<Unknown<'_>>,
        audit_callback: bool,
    ) -> Outcome<NativeEngine> {
        let doc = match options {
            Some(o) => {
                let raw = o.value();
                Walker::options(env.raw(), audit_callback).value(raw.value, &Path::Root, 0)?
            }
            None => None,
        };
        let doc = match doc {
            None | Some(Value::Null) => Value::Object(Map::new()),
            Some(d) => d,
        };
        let config =
            EngineConfig::from_value_with(&doc, Spelling::Camel, audit_callback).map_err(|e| ErrorInfo::from(&e))?;
        let callback = audit_callback.then(|| NEXT_SINK.fetch_add(1, Ordering::Relaxed));
        let sinks: Vec<Box<dyn AuditSink>> = match callback {
            Some(id) => vec![Box::new(JsCallbackSink { id })],
            None => Vec::new(),
        };
        let opened = open(bundle, &config, sinks)?;
        Ok(NativeEngine {
            engine: RefCell::new(Some(Arc::new(opened.engine))),
            callback,
            collector: opened.collector.map(|c| SharedCollector(Some(Arc::new(c)))),
        })
    }

    /// The engine, unless closed.
    fn engine(&self) -> Outcome<Arc<Engine>> {
        self.engine.borrow().clone().ok_or_else(|| invalid_argument("this engine is closed"))
    }
}

#[napi]
impl NativeEngine {
    /// Loads a bundle (file or directory) with the options document (camelCase keys;
    /// `auditCallback`: `lib.js` took `audit` as the callback and it is left out).
    #[napi(factory, ts_args_type = "path: string, options: unknown, auditCallback: boolean")]
    pub fn from_path(
        env: Env,
        path: String,
        options: Option<Unknown<'_>>,
        audit_callback: bool,
    ) -> Result<NativeEngine> {
        js(&env, || NativeEngine::open(&env, Bundle::Path(std::path::Path::new(&path)), options, audit_callback))
    }

    /// Loads a one-file bundle from YAML text (file name `<yaml>`), as `fromPath`.
    #[napi(factory, ts_args_type = "text: string, options: unknown, auditCallback: boolean")]
    pub fn from_yaml(
        env: Env,
        text: String,
        options: Option<Unknown<'_>>,
        audit_callback: bool,
    ) -> Result<NativeEngine> {
        js(&env, || NativeEngine::open(&env, Bundle::Yaml(&text), options, audit_callback))
    }

    /// Decides a request given as a JS object (converted directly, no JSON text).
    /// `audit` is the trampoline the callback sink calls (engines with a callback);
    /// with `snapshot`, the params and context as decided are set on it (`params`,
    /// `context`): what a guarded tool receives.
    #[napi(
        ts_args_type = "request: unknown, audit?: ((line: string) => string | undefined) | undefined | null, snapshot?: object | undefined | null"
    )]
    pub fn evaluate(
        &self,
        env: Env,
        request: Unknown<'_>,
        audit: Option<Unknown<'_>>,
        snapshot: Option<Unknown<'_>>,
    ) -> Result<NativeDecision> {
        js(&env, || {
            let engine = self.engine()?;
            let audit = audit_function(audit)?;
            let limits = engine.request_limits();
            let raw = request.value();
            let value = Walker::request(raw.env, limits).value(raw.value, &Path::Root, 0)?.unwrap_or(Value::Null);
            let req = Request::from_value(value, limits).map_err(|e| ErrorInfo::from(&e))?;
            let d = delivering(self.callback, env.raw(), audit, || engine.evaluate(&req))
                .map_err(|e| ErrorInfo::from(&e))?;
            if let Some(holder) = snapshot {
                let holder = holder.value().value;
                set_named(env.raw(), holder, c"params", map_to_js(env.raw(), &req.params)?)?;
                if let Some(c) = &req.context {
                    set_named(env.raw(), holder, c"context", map_to_js(env.raw(), c)?)?;
                }
            }
            Ok(decision_to_native(d))
        })
    }

    /// Decides a request given as JSON text; returns the decision line (canonical
    /// JSON). `audit` as for `evaluate`.
    #[napi(ts_args_type = "requestJson: string, audit?: ((line: string) => string | undefined) | undefined | null")]
    pub fn evaluate_json(&self, env: Env, request_json: String, audit: Option<Unknown<'_>>) -> Result<String> {
        js(&env, || {
            let engine = self.engine()?;
            let audit = audit_function(audit)?;
            delivering(self.callback, env.raw(), audit, || engine.evaluate_json(&request_json))
                .map_err(|e| ErrorInfo::from(&e).into())
        })
    }

    /// Engages a kill switch.
    #[napi]
    pub fn kill(&self, env: Env, scope_name: String, id: String, reason: Option<String>) -> Result<()> {
        js(&env, || {
            let scope = scope(&scope_name)?;
            self.engine()?.kill(scope, &id, reason.as_deref().unwrap_or("")).map_err(|e| ErrorInfo::from(&e).into())
        })
    }

    /// Lifts a kill switch; `true` if one was engaged.
    #[napi]
    pub fn revive(&self, env: Env, scope_name: String, id: String) -> Result<bool> {
        js(&env, || {
            let scope = scope(&scope_name)?;
            self.engine()?.revive(scope, &id).map_err(|e| ErrorInfo::from(&e).into())
        })
    }

    /// Issues an approval grant token.
    #[napi]
    pub fn grant(&self, env: Env, approval_id: String, approver: String, ttl_seconds: i64) -> Result<String> {
        js(&env, || {
            let ttl = u64::try_from(ttl_seconds)
                .map_err(|_| invalid_argument("ttlSeconds must be a non-negative integer"))?;
            self.engine()?.grant(&approval_id, &approver, ttl).map_err(|e| ErrorInfo::from(&e).into())
        })
    }

    /// The session's live marks at the engine's clock, sorted (§10).
    #[napi]
    pub fn marks(&self, env: Env, session: String) -> Result<Vec<String>> {
        js(&env, || self.engine()?.marks(&session).map_err(|e| ErrorInfo::from(&e).into()))
    }

    /// Forgets the session's marks; `true` if it had live ones.
    #[napi]
    pub fn clear_marks(&self, env: Env, session: String) -> Result<bool> {
        js(&env, || self.engine()?.clear_marks(&session).map_err(|e| ErrorInfo::from(&e).into()))
    }

    /// Reloads the bundle from its path (engines made with `fromPath`).
    #[napi]
    pub fn reload(&self, env: Env) -> Result<()> {
        js(&env, || self.engine()?.reload().map_err(|e| ErrorInfo::from(&e).into()))
    }

    /// Replaces the bundle with one-file YAML text.
    #[napi]
    pub fn reload_yaml(&self, env: Env, text: String) -> Result<()> {
        js(&env, || self.engine()?.reload_yaml(&text).map_err(|e| ErrorInfo::from(&e).into()))
    }

    /// The hex SHA-256 policy hash of the loaded bundle.
    #[napi]
    pub fn policy_hash(&self, env: Env) -> Result<String> {
        js(&env, || Ok(self.engine()?.policy_hash().map_err(|e| ErrorInfo::from(&e))?))
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
