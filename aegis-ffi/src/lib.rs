//! # aegis-ffi — the C ABI of Aegis (`libaegis`)
//!
//! Conventions (after rustls-ffi):
//! * Opaque handles (`aegis_engine`, `aegis_engine_options`) created by `aegis_*_new` /
//!   constructors and released by the matching `aegis_*_free` (which accept NULL).
//! * Every function returns an `aegis_status`; results go to out-parameters. Out
//!   pointers are set to NULL (or a neutral value) first, so they are never left
//!   uninitialised.
//! * Strings returned by the library (`char *`, through `*_out` parameters) are
//!   NUL-terminated UTF-8, allocated by the library, and must be released with
//!   `aegis_string_free` — never with `free()`.
//! * `error_out` may be NULL (the caller does not want the message). Otherwise it is set
//!   to NULL on success and to a message (free with `aegis_string_free`) on failure.
//! * Input given with a length is validated as UTF-8, never trusted; NUL-terminated
//!   input is validated too.
//! * No panic crosses the boundary: a panic is reported as `AEGIS_PANIC`.
//! * Engines are configured by one JSON document (SPEC §17, docs/configuration.md),
//!   given with `aegis_engine_options_set_json` and validated by the core's one
//!   validator (`aegis_core::EngineConfig`), so C accepts and refuses exactly what every
//!   other language does; audit callbacks (which JSON cannot carry) are added with
//!   `aegis_engine_options_add_audit_callback`. The constructors open the engine with
//!   `aegis_ship::open::open`, the path every binding takes.
//! * Every failing call also leaves this thread's last error as JSON (SPEC §17):
//!   `aegis_last_error_json()` → `{"code","errors","field","message"}`
//!   (`aegis_core::ErrorInfo::to_json`), valid until the thread's next call of a
//!   function that returns an `aegis_status`.
//! * An engine may run a collector (the `collector` option): a background thread
//!   shipping the audit file to an OpenTelemetry collector, closed by
//!   `aegis_engine_collector_close` or `aegis_engine_free`. It never touches `evaluate`.
//! * An `aegis_engine` is thread-safe: share one across threads. Freeing it while another
//!   thread uses it is undefined behaviour (the caller must synchronise `aegis_engine_free`).
#![allow(non_camel_case_types, reason = "C type names follow the C convention (aegis_engine, aegis_status)")]
#![allow(clippy::missing_safety_doc, reason = "the safety contract is stated once per function in its doc comment")]

use std::cell::RefCell;
use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::fmt::Write as _;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::time::Duration;

use aegis_core::{
    AuditRecord, AuditSink, CallbackSink, ConfigError, ControlError, Engine, EngineConfig, ErrorCode, ErrorInfo,
    ErrorLocation, EvalError, KillScope, Outcome, Spelling,
};
use aegis_ship::open::{open, Bundle};
use aegis_ship::Collector;

/// Status of every call. The numbers are stable and never renumbered. Each stands for
/// one SPEC §17 code (the table is in docs/errors.md); `aegis_last_error_json()` gives
/// the code, message, field and load errors of this thread's last failing call.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum aegis_status {
    /// Success.
    AEGIS_OK = 0,
    /// A required pointer argument was NULL (code `invalid_argument`; `field` names it).
    AEGIS_NULL_PARAMETER = 1,
    /// An input string was not valid UTF-8 (code `invalid_argument`; `field` names it).
    AEGIS_INVALID_UTF8 = 2,
    /// The request breaks SPEC §1 (not JSON, wrong types, too large, …): nothing was
    /// decided or recorded. Code `request_invalid`.
    AEGIS_INVALID_REQUEST = 3,
    /// The policy bundle failed to load (constructors, reload). Code `policy_invalid`:
    /// `aegis_last_error_json()` has one entry in `errors` per load error, with its file,
    /// line and column; `error_out` lists them, one per line:
    /// `FILE:LINE:COLUMN: error: MESSAGE[ — HELP]`.
    AEGIS_POLICY_ERROR = 4,
    /// Code `audit_failed`: the audit record could not be written (or the audit file
    /// opened, or it is in use by another engine, or an audit callback failed), or a call
    /// was made into an engine from inside one of its own audit callbacks (an evaluation,
    /// kill, revive, grant, marks, clear marks or chain head). The tool call must not run.
    AEGIS_IO_ERROR = 5,
    /// A bad argument (code `invalid_argument`): an unknown kill scope, a bad id, grant
    /// arguments, no approval key for a grant, …
    AEGIS_INVALID_ARGUMENT = 6,
    /// A bug: the library panicked (code `io`). The call had no effect that can be relied
    /// on. Also any other file-system error the core reports as code `io`.
    AEGIS_PANIC = 7,
    /// `aegis_engine_collector_*` on an engine made without a collector (the options had
    /// no `collector`). Code `invalid_argument`.
    AEGIS_NO_COLLECTOR = 8,
    /// The collector could not deliver in time: `aegis_engine_collector_flush` timed out
    /// (or shipping has stopped), or the final attempt of `aegis_engine_collector_close`
    /// left records undelivered. Nothing is lost: the records stay in the audit file and
    /// the next collector started on it resumes from the cursor. The message says why
    /// (e.g. the collector's last error). Code `collector_failed`.
    AEGIS_COLLECTOR_ERROR = 9,
    /// An engine option was refused (code `config_invalid`; `field` names the option):
    /// an unknown option (with a `did you mean`), a value of the wrong type or out of
    /// range, an empty approval or signing key, a bad key id, an option that needs
    /// another (`fsync` without `audit`), a bad `collector` setting, an option of a
    /// later release. `aegis_engine_options_set_json` then keeps its previous document.
    AEGIS_CONFIG_INVALID = 10,
}

impl aegis_status {
    /// The SPEC §17 code of a failure made here, at the boundary (docs/errors.md holds
    /// the table). Failures from the core carry their own code ([`status_of`]).
    fn code(self) -> ErrorCode {
        match self {
            aegis_status::AEGIS_INVALID_REQUEST => ErrorCode::RequestInvalid,
            aegis_status::AEGIS_POLICY_ERROR => ErrorCode::PolicyInvalid,
            aegis_status::AEGIS_IO_ERROR => ErrorCode::AuditFailed,
            aegis_status::AEGIS_COLLECTOR_ERROR => ErrorCode::CollectorFailed,
            aegis_status::AEGIS_CONFIG_INVALID => ErrorCode::ConfigInvalid,
            // A panic is a bug with no code of its own; the call must be treated as failed.
            aegis_status::AEGIS_PANIC => ErrorCode::Io,
            aegis_status::AEGIS_OK
            | aegis_status::AEGIS_NULL_PARAMETER
            | aegis_status::AEGIS_INVALID_UTF8
            | aegis_status::AEGIS_INVALID_ARGUMENT
            | aegis_status::AEGIS_NO_COLLECTOR => ErrorCode::InvalidArgument,
        }
    }
}

/// The status a code from the core is reported with (the table in docs/errors.md:
/// `io` shares 7 with a caught panic). Codes no call of this library produces yet have
/// no status of their own; they take the nearest one (the JSON's `code` stays exact).
fn status_of(code: ErrorCode) -> aegis_status {
    match code {
        ErrorCode::PolicyInvalid => aegis_status::AEGIS_POLICY_ERROR,
        ErrorCode::RequestInvalid => aegis_status::AEGIS_INVALID_REQUEST,
        ErrorCode::ConfigInvalid => aegis_status::AEGIS_CONFIG_INVALID,
        ErrorCode::AuditFailed | ErrorCode::StateUnavailable => aegis_status::AEGIS_IO_ERROR,
        ErrorCode::Io => aegis_status::AEGIS_PANIC,
        ErrorCode::CollectorFailed => aegis_status::AEGIS_COLLECTOR_ERROR,
        ErrorCode::InvalidArgument
        | ErrorCode::ApprovalInvalid
        | ErrorCode::Denied
        | ErrorCode::ApprovalRequired
        | ErrorCode::ApprovalRejected => aegis_status::AEGIS_INVALID_ARGUMENT,
    }
}

/// A decision's outcome (`aegis_evaluate`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum aegis_outcome {
    /// The call may run.
    AEGIS_OUTCOME_ALLOW = 1,
    /// The call must not run.
    AEGIS_OUTCOME_DENY = 2,
    /// The call needs a human's grant first.
    AEGIS_OUTCOME_REQUIRE_APPROVAL = 3,
}

/// An audit callback: receives every sealed record as one line of canonical JSON
/// (`record_json`, `len` bytes, NUL-terminated; valid only during the call), before the
/// evaluation returns. Return 0 to accept; any other value fails the evaluation closed
/// (`AEGIS_IO_ERROR`, code `audit_failed`, no decision). Called synchronously on the
/// evaluating thread, under the engine's record lock: it must not call back into the
/// same engine — such a call is refused with `AEGIS_IO_ERROR` (`audit_failed`) and the
/// outer evaluation fails with `AEGIS_IO_ERROR` too (no deadlock). A record is chained
/// once the first sink accepts it (the audit file when `audit` is set, else the first
/// callback): when the first sink fails the chain does not advance; when a later one
/// fails the call fails but the record stays chained, and the next record continues
/// from it (SPEC §9a).
pub type aegis_audit_callback =
    Option<unsafe extern "C" fn(user: *mut c_void, record_json: *const c_char, len: usize) -> c_int>;

/// A policy engine (opaque). Create with `aegis_engine_from_*`, free with
/// `aegis_engine_free`.
pub struct aegis_engine {
    inner: Engine,
    collector: Option<Collector>,
}

#[derive(Clone, Copy)]
struct Callback {
    f: unsafe extern "C" fn(*mut c_void, *const c_char, usize) -> c_int,
    user: *mut c_void,
}

impl Callback {
    /// Calls the C callback with `buf` (NUL-terminated, `len` bytes before the NUL).
    fn call(&self, buf: &[u8], len: usize) -> c_int {
        // SAFETY: `f` is the caller's callback, called with the caller's `user` pointer and
        // a NUL-terminated buffer of `len` bytes that stays alive during the call.
        unsafe { (self.f)(self.user, buf.as_ptr().cast::<c_char>(), len) }
    }

    /// The sink that hands each record to this callback.
    fn sink(self) -> Box<dyn AuditSink> {
        Box::new(CallbackSink(move |_r: &AuditRecord, line: &str| {
            let mut buf = Vec::with_capacity(line.len() + 1);
            buf.extend_from_slice(line.as_bytes());
            buf.push(0);
            // A method call captures the whole `Callback` (which is `Send`), not its fields.
            match self.call(&buf, line.len()) {
                0 => Ok(()),
                rc => Err(format!("the callback returned {rc}")),
            }
        }))
    }
}

// SAFETY: the `user` pointer is opaque to us; the caller of
// `aegis_engine_options_add_audit_callback` promises (documented there) that the callback
// may be called from any thread with it.
unsafe impl Send for Callback {}

/// Engine options builder (opaque): the configuration document and the audit callbacks.
/// Create with `aegis_engine_options_new`, free with `aegis_engine_options_free`. It is
/// not consumed by the constructors: one builder may make several engines (each opens
/// its own audit file).
#[derive(Default)]
pub struct aegis_engine_options {
    /// The JSON text of the last successful `aegis_engine_options_set_json` (validated
    /// then, validated again by each constructor, which knows whether callbacks were
    /// added); `None`: every option at its default.
    document: Option<String>,
    callbacks: Vec<Callback>,
}

// ---------------------------------------------------------------------------------------
// helpers

/// A failure: the status, the message for `error_out`, and the §17 error for
/// `aegis_last_error_json`.
struct Fail(aegis_status, String, ErrorInfo);

impl Fail {
    /// A failure made at the boundary, whose code follows from its status, with no field.
    fn new(status: aegis_status, msg: impl Into<String>) -> Fail {
        let msg = msg.into();
        let info = ErrorInfo::new(status.code(), msg.clone());
        Fail(status, msg, info)
    }

    /// A failure made at the boundary about the argument `field`.
    fn field(status: aegis_status, field: &str, msg: impl Into<String>) -> Fail {
        let mut f = Fail::new(status, msg);
        f.2.field = field.to_owned();
        f
    }
}

impl From<ErrorInfo> for Fail {
    /// A failure from the core: the status follows from its code; `error_out` gets its
    /// message, or for load errors every one of them, one per line.
    fn from(info: ErrorInfo) -> Fail {
        let msg = if info.errors.is_empty() { info.message.clone() } else { listing(&info.errors) };
        Fail(status_of(info.code), msg, info)
    }
}

impl From<&ConfigError> for Fail {
    fn from(e: &ConfigError) -> Fail {
        Fail::from(ErrorInfo::from(e))
    }
}

impl From<ControlError> for Fail {
    /// A refused control call: `invalid_argument`, or `audit_failed` when it was made
    /// from inside one of the engine's own audit callbacks (as every binding reports it).
    fn from(e: ControlError) -> Fail {
        Fail::from(ErrorInfo::from(&e))
    }
}

impl From<EvalError> for Fail {
    fn from(e: EvalError) -> Fail {
        Fail::from(ErrorInfo::from(&e))
    }
}

impl From<aegis_core::LoadErrors> for Fail {
    fn from(e: aegis_core::LoadErrors) -> Fail {
        Fail::from(ErrorInfo::from(&e))
    }
}

/// Load errors one per line, as `aegis check` prints them:
/// `FILE:LINE:COLUMN: error: MESSAGE[ — HELP]`.
fn listing(errors: &[ErrorLocation]) -> String {
    let mut out = String::new();
    for (i, e) in errors.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        let _ = write!(out, "{}:{}:{}: error: {}", e.file, e.line, e.column, e.message);
        if let Some(h) = &e.help {
            let _ = write!(out, " — {h}");
        }
    }
    out
}

type R<T> = Result<T, Fail>;

fn fail<T>(status: aegis_status, msg: impl Into<String>) -> R<T> {
    Err(Fail::new(status, msg))
}

thread_local! {
    /// This thread's last error as JSON (§17), for `aegis_last_error_json`.
    static LAST_ERROR: RefCell<Option<CString>> = const { RefCell::new(None) };
}

fn set_last_error(json: Option<String>) {
    let c = json.map(|j| CString::new(j.into_bytes()).unwrap_or_default());
    let _ = LAST_ERROR.try_with(|l| {
        if let Ok(mut l) = l.try_borrow_mut() {
            *l = c;
        }
    });
}

fn to_c_string(s: String) -> *mut c_char {
    let bytes: Vec<u8> = s.into_bytes().into_iter().filter(|&b| b != 0).collect();
    match CString::new(bytes) {
        Ok(c) => c.into_raw(),
        Err(_) => std::ptr::null_mut(),
    }
}

/// Runs `f` catching panics; writes the error message to `error_out` (if not NULL) and
/// the error to this thread's last error.
fn run(error_out: *mut *mut c_char, f: impl FnOnce() -> R<()>) -> aegis_status {
    if !error_out.is_null() {
        // SAFETY: the caller passes either NULL or a valid, writable `char **`.
        unsafe { *error_out = std::ptr::null_mut() };
    }
    set_last_error(None);
    let (status, msg) = match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(())) => {
            set_last_error(None);
            return aegis_status::AEGIS_OK;
        }
        Ok(Err(Fail(status, msg, info))) => {
            let _ = catch_unwind(AssertUnwindSafe(|| set_last_error(Some(info.to_json()))));
            (status, msg)
        }
        Err(_) => {
            let msg = "aegis: internal error (panic)".to_owned();
            let info = ErrorInfo::new(aegis_status::AEGIS_PANIC.code(), msg.clone());
            let _ = catch_unwind(AssertUnwindSafe(|| set_last_error(Some(info.to_json()))));
            (aegis_status::AEGIS_PANIC, msg)
        }
    };
    if !error_out.is_null() {
        // A panic here (allocation failure aborts anyway) must not escape either.
        let p = catch_unwind(|| to_c_string(msg)).unwrap_or(std::ptr::null_mut());
        // SAFETY: as above, `error_out` is a valid `char **`.
        unsafe { *error_out = p };
    }
    status
}

fn null_check<T>(p: *const T, name: &str) -> R<()> {
    if p.is_null() {
        return Err(Fail::field(aegis_status::AEGIS_NULL_PARAMETER, name, format!("`{name}` is NULL")));
    }
    Ok(())
}

/// Borrows `len` bytes at `p` as UTF-8.
///
/// # Safety
/// `p` must be NULL or point to `len` readable bytes that outlive `'a`.
unsafe fn str_from_len<'a>(p: *const c_char, len: usize, name: &str) -> R<&'a str> {
    null_check(p, name)?;
    if len > isize::MAX as usize {
        return Err(Fail::field(aegis_status::AEGIS_INVALID_ARGUMENT, name, format!("`{name}` length is too large")));
    }
    // SAFETY: `p` is non-NULL and the caller promises `len` readable bytes; `len` fits isize.
    let bytes = unsafe { std::slice::from_raw_parts(p.cast::<u8>(), len) };
    std::str::from_utf8(bytes)
        .map_err(|e| Fail::field(aegis_status::AEGIS_INVALID_UTF8, name, format!("`{name}` is not valid UTF-8: {e}")))
}

/// Borrows the NUL-terminated string at `p` as UTF-8.
///
/// # Safety
/// `p` must be NULL or a valid NUL-terminated string that outlives `'a`.
unsafe fn str_from_c<'a>(p: *const c_char, name: &str) -> R<&'a str> {
    null_check(p, name)?;
    // SAFETY: `p` is non-NULL and the caller promises a NUL-terminated string.
    let c = unsafe { CStr::from_ptr(p) };
    c.to_str()
        .map_err(|e| Fail::field(aegis_status::AEGIS_INVALID_UTF8, name, format!("`{name}` is not valid UTF-8: {e}")))
}

/// Borrows the engine behind `e`.
///
/// # Safety
/// `e` must be NULL or a live engine from an `aegis_engine_from_*` constructor.
unsafe fn engine<'a>(e: *const aegis_engine) -> R<&'a Engine> {
    null_check(e, "engine")?;
    // SAFETY: non-NULL and, per the caller's contract, a live `aegis_engine`.
    Ok(unsafe { &(*e).inner })
}

/// Writes `v` to the out-parameter `out`.
///
/// # Safety
/// `out` must be a valid, writable pointer (checked non-NULL by the caller).
unsafe fn put<T>(out: *mut T, v: T) {
    // SAFETY: the caller checked `out` is non-NULL; the C caller promises it is writable.
    unsafe { out.write(v) };
}

/// Checks `out` and sets it to NULL, so that it is never left uninitialised.
///
/// # Safety
/// `out` must be NULL or a valid, writable `T **`.
unsafe fn clear_out<T>(out: *mut *mut T, name: &str) -> R<()> {
    null_check(out, name)?;
    // SAFETY: non-NULL and, per the caller's contract, writable.
    unsafe { put(out, std::ptr::null_mut()) };
    Ok(())
}

/// [`run`] for a call whose result is a string for `*out`: `*out` is set to NULL first
/// (`AEGIS_NULL_PARAMETER` when `out` is NULL), then to the string `f` gives.
///
/// # Safety
/// `out` must be NULL or a valid, writable `char **`; `error_out` as for [`run`].
unsafe fn run_string(
    error_out: *mut *mut c_char,
    out: *mut *mut c_char,
    name: &str,
    f: impl FnOnce() -> R<String>,
) -> aegis_status {
    run(error_out, || {
        // SAFETY: forwarded caller contract.
        unsafe { clear_out(out, name) }?;
        let s = f()?;
        // SAFETY: checked non-NULL by `clear_out`.
        unsafe { put(out, to_c_string(s)) };
        Ok(())
    })
}

/// Borrows the collector of the engine behind `e` (`AEGIS_NO_COLLECTOR` without one).
///
/// # Safety
/// `e` must be NULL or a live engine from an `aegis_engine_from_*` constructor.
unsafe fn collector<'a>(e: *const aegis_engine) -> R<&'a Collector> {
    null_check(e, "engine")?;
    // SAFETY: non-NULL and, per the caller's contract, a live `aegis_engine`.
    match unsafe { &(*e).collector } {
        Some(c) => Ok(c),
        None => fail(
            aegis_status::AEGIS_NO_COLLECTOR,
            "the engine has no collector (give the `collector` option with aegis_engine_options_set_json)",
        ),
    }
}

fn parse_scope(s: &str) -> R<KillScope> {
    KillScope::from_arg(s).or_else(|e| fail(aegis_status::AEGIS_INVALID_ARGUMENT, e.0))
}

// ---------------------------------------------------------------------------------------
// the configuration document

/// Validates a document (`None`: every option at its default) for a builder with or
/// without audit callbacks — with them, `audit` given as a callback, the file options
/// need `audit` as a path as well — with the same reader and bounds as every binding.
fn read_config(document: Option<&str>, callbacks: bool) -> R<EngineConfig> {
    EngineConfig::from_json_with(document.unwrap_or("{}"), Spelling::Snake, callbacks).map_err(|e| Fail::from(&e))
}

/// Opens an engine on `bundle` with the builder's document and callbacks (`options`
/// NULL: defaults) and writes it to `out`.
///
/// # Safety
/// `options` must be NULL or a live builder; `out` a valid `aegis_engine **` (checked
/// non-NULL by the caller).
unsafe fn construct(bundle: Bundle<'_>, options: *const aegis_engine_options, out: *mut *mut aegis_engine) -> R<()> {
    // SAFETY: `options` is NULL or a live builder.
    let (document, callbacks) = match unsafe { options.as_ref() } {
        Some(o) => (o.document.as_deref(), o.callbacks.as_slice()),
        None => (None, &[][..]),
    };
    let config = read_config(document, !callbacks.is_empty())?;
    let sinks = callbacks.iter().map(|cb| cb.sink()).collect();
    let opened = open(bundle, &config, sinks).map_err(Fail::from)?;
    let p = Box::into_raw(Box::new(aegis_engine { inner: opened.engine, collector: opened.collector }));
    // SAFETY: `out` was checked non-NULL by the caller.
    unsafe { put(out, p) };
    Ok(())
}

// ---------------------------------------------------------------------------------------
// strings

/// Frees a string returned by this library (decision JSON, error messages, tokens,
/// hashes). NULL is fine. Never pass a string from anywhere else.
///
/// Safety: `s` is NULL or a string returned by this library, not freed before.
#[no_mangle]
pub unsafe extern "C" fn aegis_string_free(s: *mut c_char) {
    if s.is_null() {
        return;
    }
    let _ = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: `s` came from `CString::into_raw` in this library and is freed once.
        drop(unsafe { CString::from_raw(s) });
    }));
}

// ---------------------------------------------------------------------------------------
// options

/// Creates an empty options builder (every option at its default, no audit callback);
/// free it with `aegis_engine_options_free`. Returns NULL only if allocation failed
/// (which aborts in practice).
#[no_mangle]
pub extern "C" fn aegis_engine_options_new() -> *mut aegis_engine_options {
    catch_unwind(|| Box::into_raw(Box::default())).unwrap_or(std::ptr::null_mut())
}

/// Frees an options builder. NULL is fine. Engines made from it are not affected.
///
/// Safety: `o` is NULL or from `aegis_engine_options_new`, not freed before.
#[no_mangle]
pub unsafe extern "C" fn aegis_engine_options_free(o: *mut aegis_engine_options) {
    if o.is_null() {
        return;
    }
    let _ = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: `o` came from `Box::into_raw` in `aegis_engine_options_new`, freed once.
        drop(unsafe { Box::from_raw(o) });
    }));
}

/// Borrows the builder mutably.
///
/// # Safety
/// `o` must be NULL or a live builder not used concurrently.
unsafe fn options_mut<'a>(o: *mut aegis_engine_options) -> R<&'a mut aegis_engine_options> {
    null_check(o, "options")?;
    // SAFETY: non-NULL, and per the contract a live builder used from one thread at a time.
    Ok(unsafe { &mut *o })
}

/// Sets the engine configuration: `json` is `len` bytes of UTF-8 (no NUL needed, copied),
/// one JSON object with the options of SPEC §17 in snake_case (docs/configuration.md):
/// `audit` (a file path), `fsync` (`"always"`, `"batch"`, `"never"`), `rotate_bytes`,
/// `signing_key`, `signing_key_id`, `approval_key` (a key: a string, meaning its UTF-8
/// bytes, or `{"base64": "…"}` for any bytes), `request_max_bytes`, `request_max_depth`,
/// `max_limit_counters`, `max_sessions`, `marks_ttl` (a duration string like `"24h"`),
/// `collector` (an object, docs/collector.md). `null` is an option not given. For example
/// `{"audit": "audit.jsonl", "fsync": "batch", "approval_key": {"base64": "c2VjcmV0"}}`.
///
/// The document is validated at once by the core's one validator, the same as every
/// language's: an unknown option ("unknown option `fsnyc` (did you mean `fsync`?)"), a
/// wrong value, an empty key, an option that needs another (`fsync`, `rotate_bytes` or
/// `collector` without `audit`, `signing_key_id` without `signing_key`), a bad
/// `collector` setting or an option of a later release ("not supported yet") gives
/// `AEGIS_CONFIG_INVALID` with the message in `error_out` and the option in the `field`
/// of `aegis_last_error_json()`; text that is not a JSON object gives
/// `AEGIS_CONFIG_INVALID` too; invalid UTF-8 gives `AEGIS_INVALID_UTF8`, NULL
/// `AEGIS_NULL_PARAMETER`. On any failure the builder keeps its previous document.
///
/// A later call replaces the whole document (options are not merged): `{}` returns every
/// option to its default. Audit callbacks are not part of the document
/// (`aegis_engine_options_add_audit_callback`); with a callback, records go to the audit
/// file first (when `audit` is set), then to the callbacks in the order added. Each
/// constructor validates the document again, knowing whether callbacks were added.
///
/// Safety: `o` is a live builder; `json` points to `len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn aegis_engine_options_set_json(
    o: *mut aegis_engine_options,
    json: *const c_char,
    len: usize,
    error_out: *mut *mut c_char,
) -> aegis_status {
    run(error_out, || {
        // SAFETY: forwarded caller contract.
        let o = unsafe { options_mut(o) }?;
        // SAFETY: forwarded caller contract.
        let text = unsafe { str_from_len(json, len, "json") }?;
        // The collector settings are checked now too, with the message `open` gives.
        let config = read_config(Some(text), !o.callbacks.is_empty())?;
        aegis_ship::open::collector_config(&config).map_err(Fail::from)?;
        o.document = Some(text.to_owned());
        Ok(())
    })
}

/// Adds an audit callback (see `aegis_audit_callback`): `audit` given as a function,
/// which the JSON document cannot carry. Records go to the audit file first (when the
/// document sets `audit`), then to the callbacks in the order added. `user` is passed
/// back as is; the callback may be called from any thread that evaluates, and `user`
/// must stay valid until every engine made with these options is freed.
///
/// Safety: `o` is a live builder; `cb` is a valid function (or NULL → error).
#[no_mangle]
pub unsafe extern "C" fn aegis_engine_options_add_audit_callback(
    o: *mut aegis_engine_options,
    cb: aegis_audit_callback,
    user: *mut c_void,
    error_out: *mut *mut c_char,
) -> aegis_status {
    run(error_out, || {
        // SAFETY: forwarded caller contract.
        let o = unsafe { options_mut(o) }?;
        let Some(f) = cb else { return Err(Fail::field(aegis_status::AEGIS_NULL_PARAMETER, "cb", "`cb` is NULL")) };
        o.callbacks.push(Callback { f, user });
        Ok(())
    })
}

// ---------------------------------------------------------------------------------------
// constructors

/// Loads a bundle from a file or directory (`path`, NUL-terminated UTF-8) with default
/// options. On success `*out` is a new engine (free with `aegis_engine_free`); on failure
/// `*out` is NULL and `AEGIS_POLICY_ERROR` lists every load error.
///
/// Safety: `path` is a NUL-terminated string; `out` a writable `aegis_engine **`;
/// `error_out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn aegis_engine_from_path(
    path: *const c_char,
    out: *mut *mut aegis_engine,
    error_out: *mut *mut c_char,
) -> aegis_status {
    // SAFETY: forwarded caller contract.
    unsafe { aegis_engine_from_path_with(path, std::ptr::null(), out, error_out) }
}

/// Like `aegis_engine_from_path`, with options (`options` may be NULL = defaults; it is
/// not consumed). The engine is opened as in every binding: the document validated
/// again (`AEGIS_CONFIG_INVALID`), the audit file opened and locked (`AEGIS_IO_ERROR`
/// if it cannot be, or is in use by another engine), the callbacks added after it, the
/// bundle loaded (`AEGIS_POLICY_ERROR`), then the collector started.
///
/// Safety: as `aegis_engine_from_path`; `options` NULL or a live builder.
#[no_mangle]
pub unsafe extern "C" fn aegis_engine_from_path_with(
    path: *const c_char,
    options: *const aegis_engine_options,
    out: *mut *mut aegis_engine,
    error_out: *mut *mut c_char,
) -> aegis_status {
    run(error_out, || {
        // SAFETY: forwarded caller contract.
        unsafe { clear_out(out, "out") }?;
        // SAFETY: forwarded caller contract.
        let path = unsafe { str_from_c(path, "path") }?;
        // SAFETY: forwarded caller contract; `out` checked above.
        unsafe { construct(Bundle::Path(Path::new(path)), options, out) }
    })
}

/// Loads a bundle from YAML text (`yaml`, `len` bytes, UTF-8; no NUL needed) with
/// default options. Errors name the file `<yaml>`. See `aegis_engine_from_path`.
///
/// Safety: `yaml` points to `len` readable bytes; `out` a writable `aegis_engine **`.
#[no_mangle]
pub unsafe extern "C" fn aegis_engine_from_yaml(
    yaml: *const c_char,
    len: usize,
    out: *mut *mut aegis_engine,
    error_out: *mut *mut c_char,
) -> aegis_status {
    // SAFETY: forwarded caller contract.
    unsafe { aegis_engine_from_yaml_with(yaml, len, std::ptr::null(), out, error_out) }
}

/// Like `aegis_engine_from_yaml`, with options (`options` may be NULL; not consumed).
/// See `aegis_engine_from_path_with`.
///
/// Safety: as `aegis_engine_from_yaml`; `options` NULL or a live builder.
#[no_mangle]
pub unsafe extern "C" fn aegis_engine_from_yaml_with(
    yaml: *const c_char,
    len: usize,
    options: *const aegis_engine_options,
    out: *mut *mut aegis_engine,
    error_out: *mut *mut c_char,
) -> aegis_status {
    run(error_out, || {
        // SAFETY: forwarded caller contract.
        unsafe { clear_out(out, "out") }?;
        // SAFETY: forwarded caller contract.
        let yaml = unsafe { str_from_len(yaml, len, "yaml") }?;
        // SAFETY: forwarded caller contract; `out` checked above.
        unsafe { construct(Bundle::Yaml(yaml), options, out) }
    })
}

/// Frees an engine. NULL is fine. No other thread may be using it. If the engine has a
/// collector that is not closed yet, it is closed first, as by
/// `aegis_engine_collector_close(e, -1, NULL, NULL)`: a final delivery attempt bounded by
/// the configured `close_timeout_ms` (default 5 s), so this call may block that long.
/// Call `aegis_engine_collector_close` yourself to learn its outcome.
///
/// Safety: `e` is NULL or from an `aegis_engine_from_*` constructor, not freed before.
#[no_mangle]
pub unsafe extern "C" fn aegis_engine_free(e: *mut aegis_engine) {
    if e.is_null() {
        return;
    }
    let _ = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: `e` came from `Box::into_raw` in a constructor and is freed once.
        let engine = unsafe { Box::from_raw(e) };
        if let Some(c) = &engine.collector {
            // Idempotent: returns at once if the caller closed it already.
            let _ = c.close(None);
        }
        drop(engine);
    }));
}

// ---------------------------------------------------------------------------------------
// evaluation

/// Decides a request (`request_json`, `len` bytes of UTF-8 JSON, SPEC §1) and records
/// it. On success `*decision_json_out` is the decision as one line of canonical JSON
/// (SPEC §4, with `audit`), byte-identical to `aegis eval`; free it with
/// `aegis_string_free`. On failure it is NULL: `AEGIS_INVALID_REQUEST` (nothing decided
/// or recorded) or `AEGIS_IO_ERROR` (the record could not be written: do not run the
/// call). Thread-safe.
///
/// Safety: `e` a live engine; `request_json` points to `len` readable bytes;
/// `decision_json_out` writable.
#[no_mangle]
pub unsafe extern "C" fn aegis_evaluate_json(
    e: *const aegis_engine,
    request_json: *const c_char,
    len: usize,
    decision_json_out: *mut *mut c_char,
    error_out: *mut *mut c_char,
) -> aegis_status {
    let decide = || {
        // SAFETY: forwarded caller contract.
        let engine = unsafe { engine(e) }?;
        // SAFETY: forwarded caller contract.
        let text = unsafe { str_from_len(request_json, len, "request_json") }?;
        engine.evaluate_json(text).map_err(Fail::from)
    };
    // SAFETY: forwarded caller contract.
    unsafe { run_string(error_out, decision_json_out, "decision_json_out", decide) }
}

/// Decides a request like `aegis_evaluate_json` but returns only the outcome in
/// `*outcome_out` (left unchanged on failure). The record is still written.
///
/// Safety: `e` a live engine; `request_json` points to `len` readable bytes;
/// `outcome_out` writable.
#[no_mangle]
pub unsafe extern "C" fn aegis_evaluate(
    e: *const aegis_engine,
    request_json: *const c_char,
    len: usize,
    outcome_out: *mut aegis_outcome,
    error_out: *mut *mut c_char,
) -> aegis_status {
    run(error_out, || {
        null_check(outcome_out, "outcome_out")?;
        // SAFETY: forwarded caller contract.
        let engine = unsafe { engine(e) }?;
        // SAFETY: forwarded caller contract.
        let text = unsafe { str_from_len(request_json, len, "request_json") }?;
        let req = aegis_core::Request::from_json(text, engine.request_limits())
            .map_err(|r| Fail::from(ErrorInfo::from(&r)))?;
        let d = engine.evaluate(&req).map_err(Fail::from)?;
        let o = match d.outcome {
            Outcome::Allow => aegis_outcome::AEGIS_OUTCOME_ALLOW,
            Outcome::Deny => aegis_outcome::AEGIS_OUTCOME_DENY,
            Outcome::RequireApproval => aegis_outcome::AEGIS_OUTCOME_REQUIRE_APPROVAL,
        };
        // SAFETY: checked above.
        unsafe { put(outcome_out, o) };
        Ok(())
    })
}

// ---------------------------------------------------------------------------------------
// runtime controls

/// Kills `scope` (`"agent"`, `"tool"`, `"session"`, `"all"`) / `id` (`"*"` for all):
/// later evaluations in every thread are denied. `reason` may be NULL or empty (the
/// default reason is used). Bad scope or id → `AEGIS_INVALID_ARGUMENT`; from inside one
/// of the engine's own audit callbacks → `AEGIS_IO_ERROR` (`audit_failed`), no effect.
///
/// Safety: `e` a live engine; strings NUL-terminated (reason may be NULL).
#[no_mangle]
pub unsafe extern "C" fn aegis_engine_kill(
    e: *const aegis_engine,
    scope: *const c_char,
    id: *const c_char,
    reason: *const c_char,
    error_out: *mut *mut c_char,
) -> aegis_status {
    run(error_out, || {
        // SAFETY: forwarded caller contract.
        let engine = unsafe { engine(e) }?;
        // SAFETY: forwarded caller contract.
        let scope = parse_scope(unsafe { str_from_c(scope, "scope") }?)?;
        // SAFETY: forwarded caller contract.
        let id = unsafe { str_from_c(id, "id") }?;
        // SAFETY: forwarded caller contract.
        let reason = if reason.is_null() { "" } else { unsafe { str_from_c(reason, "reason") }? };
        engine.kill(scope, id, reason).map_err(Fail::from)
    })
}

/// Lifts a kill. `*revived_out` (may be NULL) is set to whether one was in force. Errors
/// as `aegis_engine_kill`.
///
/// Safety: `e` a live engine; strings NUL-terminated; `revived_out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn aegis_engine_revive(
    e: *const aegis_engine,
    scope: *const c_char,
    id: *const c_char,
    revived_out: *mut bool,
    error_out: *mut *mut c_char,
) -> aegis_status {
    run(error_out, || {
        // SAFETY: forwarded caller contract.
        let engine = unsafe { engine(e) }?;
        // SAFETY: forwarded caller contract.
        let scope = parse_scope(unsafe { str_from_c(scope, "scope") }?)?;
        // SAFETY: forwarded caller contract.
        let id = unsafe { str_from_c(id, "id") }?;
        let was = engine.revive(scope, id).map_err(Fail::from)?;
        if !revived_out.is_null() {
            // SAFETY: non-NULL and writable per the contract.
            unsafe { put(revived_out, was) };
        }
        Ok(())
    })
}

/// The live marks of `session` (SPEC §10) at the engine's clock, sorted, as one line
/// of canonical JSON in `*marks_json_out` — a JSON array of labels, e.g.
/// `["pii","untrusted"]` (`[]` when none is live); free it with `aegis_string_free`.
/// NULL on failure. A bad session (empty, over 256 bytes, a control character) →
/// `AEGIS_INVALID_ARGUMENT`; from inside one of the engine's own audit callbacks →
/// `AEGIS_IO_ERROR` (`audit_failed`). Thread-safe.
///
/// Safety: `e` a live engine; `session` NUL-terminated; `marks_json_out` writable.
#[no_mangle]
pub unsafe extern "C" fn aegis_engine_marks(
    e: *const aegis_engine,
    session: *const c_char,
    marks_json_out: *mut *mut c_char,
    error_out: *mut *mut c_char,
) -> aegis_status {
    let marks = || {
        // SAFETY: forwarded caller contract.
        let engine = unsafe { engine(e) }?;
        // SAFETY: forwarded caller contract.
        let session = unsafe { str_from_c(session, "session") }?;
        let labels = engine.marks(session).map_err(Fail::from)?;
        let mut json = String::new();
        aegis_core::json::write_str_list(&mut json, &labels);
        Ok(json)
    };
    // SAFETY: forwarded caller contract.
    unsafe { run_string(error_out, marks_json_out, "marks_json_out", marks) }
}

/// Forgets the marks of `session` (SPEC §10, an operator's act): later calls in that
/// session see no marks until rules add new ones. `*cleared_out` (may be NULL) is set to
/// whether it had live ones at the engine's clock (`false` first, so also on failure).
/// Errors as `aegis_engine_marks`.
///
/// Safety: `e` a live engine; `session` NUL-terminated; `cleared_out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn aegis_engine_clear_marks(
    e: *const aegis_engine,
    session: *const c_char,
    cleared_out: *mut bool,
    error_out: *mut *mut c_char,
) -> aegis_status {
    run(error_out, || {
        if !cleared_out.is_null() {
            // SAFETY: non-NULL and writable per the contract.
            unsafe { put(cleared_out, false) };
        }
        // SAFETY: forwarded caller contract.
        let engine = unsafe { engine(e) }?;
        // SAFETY: forwarded caller contract.
        let session = unsafe { str_from_c(session, "session") }?;
        let had = engine.clear_marks(session).map_err(Fail::from)?;
        if !cleared_out.is_null() {
            // SAFETY: non-NULL and writable per the contract.
            unsafe { put(cleared_out, had) };
        }
        Ok(())
    })
}

/// Issues a grant token for `approval_id` by `approver`, valid for `ttl_seconds` from
/// now. `*token_out` (free with `aegis_string_free`) is NULL on failure; no approval key
/// (the `approval_key` option) → `AEGIS_INVALID_ARGUMENT`; from inside one of the
/// engine's own audit callbacks → `AEGIS_IO_ERROR` (`audit_failed`).
///
/// Safety: `e` a live engine; strings NUL-terminated; `token_out` writable.
#[no_mangle]
pub unsafe extern "C" fn aegis_engine_grant(
    e: *const aegis_engine,
    approval_id: *const c_char,
    approver: *const c_char,
    ttl_seconds: u64,
    token_out: *mut *mut c_char,
    error_out: *mut *mut c_char,
) -> aegis_status {
    let grant = || {
        // SAFETY: forwarded caller contract.
        let engine = unsafe { engine(e) }?;
        // SAFETY: forwarded caller contract.
        let id = unsafe { str_from_c(approval_id, "approval_id") }?;
        // SAFETY: forwarded caller contract.
        let who = unsafe { str_from_c(approver, "approver") }?;
        engine.grant(id, who, ttl_seconds).map_err(Fail::from)
    };
    // SAFETY: forwarded caller contract.
    unsafe { run_string(error_out, token_out, "token_out", grant) }
}

/// Reloads the bundle from its path (engines from `aegis_engine_from_path*`); on failure
/// (`AEGIS_POLICY_ERROR`) the old bundle stays in force.
///
/// Safety: `e` a live engine.
#[no_mangle]
pub unsafe extern "C" fn aegis_engine_reload(e: *const aegis_engine, error_out: *mut *mut c_char) -> aegis_status {
    run(error_out, || {
        // SAFETY: forwarded caller contract.
        let engine = unsafe { engine(e) }?;
        engine.reload().map_err(Fail::from)
    })
}

/// Replaces the bundle with one from YAML text (`yaml`, `len` bytes); on failure
/// (`AEGIS_POLICY_ERROR`) the old bundle stays in force.
///
/// Safety: `e` a live engine; `yaml` points to `len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn aegis_engine_reload_yaml(
    e: *const aegis_engine,
    yaml: *const c_char,
    len: usize,
    error_out: *mut *mut c_char,
) -> aegis_status {
    run(error_out, || {
        // SAFETY: forwarded caller contract.
        let engine = unsafe { engine(e) }?;
        // SAFETY: forwarded caller contract.
        let yaml = unsafe { str_from_len(yaml, len, "yaml") }?;
        engine.reload_yaml(yaml).map_err(Fail::from)
    })
}

/// The policy hash of the bundle in force (64 hex digits) in `*hash_out` (free with
/// `aegis_string_free`).
///
/// Safety: `e` a live engine; `hash_out` writable.
#[no_mangle]
pub unsafe extern "C" fn aegis_engine_policy_hash(
    e: *const aegis_engine,
    hash_out: *mut *mut c_char,
    error_out: *mut *mut c_char,
) -> aegis_status {
    // SAFETY: forwarded caller contract.
    let hash = || Ok(unsafe { engine(e) }?.policy_hash()?);
    // SAFETY: forwarded caller contract.
    unsafe { run_string(error_out, hash_out, "hash_out", hash) }
}

// ---------------------------------------------------------------------------------------
// collector

/// The collector's metrics as one JSON object in `*metrics_json_out` (free with
/// `aegis_string_free`; NULL on failure): `shipped`, `pending` (records in the files not
/// yet delivered), `retries`, `batches`, `rejected_batches`, `rejected_records`,
/// `partially_rejected`, `rejected_files` (array of paths), `last_error` (null or a
/// string), `cursor` (null or `{"file","offset","seq","hash"}`). Works after
/// `aegis_engine_collector_close` too (the final metrics). No collector →
/// `AEGIS_NO_COLLECTOR`. Thread-safe.
///
/// Safety: `e` a live engine; `metrics_json_out` writable.
#[no_mangle]
pub unsafe extern "C" fn aegis_engine_collector_metrics(
    e: *const aegis_engine,
    metrics_json_out: *mut *mut c_char,
    error_out: *mut *mut c_char,
) -> aegis_status {
    // SAFETY: forwarded caller contract.
    let metrics = || Ok(unsafe { collector(e) }?.metrics_json());
    // SAFETY: forwarded caller contract.
    unsafe { run_string(error_out, metrics_json_out, "metrics_json_out", metrics) }
}

/// Blocks until every record in the audit files at the time of the call is delivered
/// (partial batches are sent at once), up to `timeout_ms` milliseconds. Not delivered in
/// time → `AEGIS_COLLECTOR_ERROR` (the message gives the collector's last error; shipping
/// goes on). After `aegis_engine_collector_close`: `AEGIS_OK` if nothing is pending,
/// else `AEGIS_COLLECTOR_ERROR` ("shipping has stopped"). No collector →
/// `AEGIS_NO_COLLECTOR`. Thread-safe; evaluations on other threads go on meanwhile.
///
/// Safety: `e` a live engine.
#[no_mangle]
pub unsafe extern "C" fn aegis_engine_collector_flush(
    e: *const aegis_engine,
    timeout_ms: u64,
    error_out: *mut *mut c_char,
) -> aegis_status {
    run(error_out, || {
        // SAFETY: forwarded caller contract.
        let c = unsafe { collector(e) }?;
        c.flush(Duration::from_millis(timeout_ms)).map_err(|s| Fail::new(aegis_status::AEGIS_COLLECTOR_ERROR, s.0))
    })
}

/// Stops the collector: one final attempt to deliver what is in the files, bounded by
/// `timeout_ms` milliseconds (negative: the configured `close_timeout_ms`, default
/// 5000), then its thread ends. `*metrics_json_out` (may be NULL if not wanted) receives
/// the final metrics (as `aegis_engine_collector_metrics`) both on `AEGIS_OK` and on
/// `AEGIS_COLLECTOR_ERROR` (the final attempt left records undelivered; the collector is
/// stopped all the same) — free it with `aegis_string_free` in both cases. Idempotent:
/// later calls return the first call's outcome at once. The engine keeps evaluating and
/// writing records to the audit file (the next collector started on it ships them). No
/// collector → `AEGIS_NO_COLLECTOR`. Thread-safe.
///
/// Safety: `e` a live engine; `metrics_json_out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn aegis_engine_collector_close(
    e: *const aegis_engine,
    timeout_ms: i64,
    metrics_json_out: *mut *mut c_char,
    error_out: *mut *mut c_char,
) -> aegis_status {
    run(error_out, || {
        if !metrics_json_out.is_null() {
            // SAFETY: non-NULL and writable per the contract.
            unsafe { put(metrics_json_out, std::ptr::null_mut()) };
        }
        // SAFETY: forwarded caller contract.
        let c = unsafe { collector(e) }?;
        let timeout = u64::try_from(timeout_ms).ok().map(Duration::from_millis);
        let (m, result) = c.close(timeout);
        if !metrics_json_out.is_null() {
            // SAFETY: checked above.
            unsafe { put(metrics_json_out, to_c_string(aegis_ship::collector::metrics_json(&m))) };
        }
        result.map_err(|s| Fail::new(aegis_status::AEGIS_COLLECTOR_ERROR, s.0))
    })
}

// ---------------------------------------------------------------------------------------
// errors, chain

/// This thread's last error as one JSON object (SPEC §17), set by every failing call:
/// `{"code","errors":[{"column","file","help","line","message"}],"field","message"}`
/// (canonical JSON: keys in this order, `help` left out when there is none) — `code` the
/// stable code (the table of codes and statuses is in docs/errors.md), `message` what
/// went wrong (for `policy_invalid`: the first load error and how many more), `field`
/// the option, request field or argument at fault (`""` when none), `errors` one entry
/// per load error of `policy_invalid` (`[]` otherwise). NULL when this thread's last
/// call succeeded (or it made none).
///
/// Lifetime: the string belongs to the library — do not free it. It stays valid until
/// this thread's next call of a function that returns an `aegis_status` (that call
/// replaces or clears it); the `_free` functions, `aegis_engine_options_new`,
/// `aegis_version` and this function leave it alone. Copy it to keep it. Each thread
/// has its own: an error never leaks to another thread.
#[no_mangle]
pub extern "C" fn aegis_last_error_json() -> *const c_char {
    LAST_ERROR
        .try_with(|l| match l.try_borrow() {
            Ok(l) => l.as_ref().map_or(std::ptr::null(), |c| c.as_ptr()),
            Err(_) => std::ptr::null(),
        })
        .unwrap_or(std::ptr::null())
}

/// The head of the engine's audit chain: `*seq_out` is the `seq` the next record will
/// get, `*hash_out` the hash of the last record (64 zeros before the first; free it with
/// `aegis_string_free`). Refused (`AEGIS_IO_ERROR`, code `audit_failed`) from inside one
/// of the engine's own audit callbacks.
///
/// Safety: `e` a live engine; `seq_out` and `hash_out` writable.
#[no_mangle]
pub unsafe extern "C" fn aegis_engine_chain_head(
    e: *const aegis_engine,
    seq_out: *mut u64,
    hash_out: *mut *mut c_char,
    error_out: *mut *mut c_char,
) -> aegis_status {
    let head = || {
        null_check(seq_out, "seq_out")?;
        // SAFETY: forwarded caller contract.
        let (seq, hash) = unsafe { engine(e) }?.chain_head().map_err(Fail::from)?;
        // SAFETY: checked non-NULL above.
        unsafe { put(seq_out, seq) };
        Ok(hash)
    };
    // SAFETY: forwarded caller contract.
    unsafe { run_string(error_out, hash_out, "hash_out", head) }
}

/// The library version (static string; do not free).
#[no_mangle]
pub extern "C" fn aegis_version() -> *const c_char {
    c"0.1.0".as_ptr()
}
