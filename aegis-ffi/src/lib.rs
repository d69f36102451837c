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
//! * Every failing call also leaves this thread's last error as JSON (SPEC §17):
//!   `aegis_last_error_json()` → `{"code","errors","field","message"}`, valid until the
//!   thread's next call of a function that returns an `aegis_status`.
//! * An engine may run a collector (`aegis_engine_options_set_collector`): a background
//!   thread shipping the audit file to an OpenTelemetry collector, closed by
//!   `aegis_engine_collector_close` or `aegis_engine_free`. It never touches `evaluate`.
//! * An `aegis_engine` is thread-safe: share one across threads. Freeing it while another
//!   thread uses it is undefined behaviour (the caller must synchronise `aegis_engine_free`).
#![allow(non_camel_case_types, reason = "C type names follow the C convention (aegis_engine, aegis_status)")]
#![allow(clippy::missing_safety_doc, reason = "the safety contract is stated once per function in its doc comment")]

use std::cell::RefCell;
use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::time::Duration;

use aegis_core::{
    AuditRecord, CallbackSink, ConfigError, Engine, EngineOptions, ErrorCode, ErrorInfo, FileSink, Fsync, Key, KeyId,
    KillScope, Outcome,
};
use aegis_ship::collector::NEEDS_AUDIT_FILE;
use aegis_ship::{Collector, CollectorConfig};

/// Status of every call. The numbers are stable and never renumbered.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum aegis_status {
    /// Success.
    AEGIS_OK = 0,
    /// A required pointer argument was NULL.
    AEGIS_NULL_PARAMETER = 1,
    /// An input string was not valid UTF-8.
    AEGIS_INVALID_UTF8 = 2,
    /// The request breaks SPEC §1 (not JSON, wrong types, too large, …): nothing was
    /// decided or recorded.
    AEGIS_INVALID_REQUEST = 3,
    /// The policy bundle failed to load (constructors, reload). The message lists every
    /// error, one per line: `FILE:LINE:COLUMN: error: MESSAGE[ — HELP]`.
    AEGIS_POLICY_ERROR = 4,
    /// The audit record could not be written (or the audit file opened, or it is in use by
    /// another engine, or an audit callback failed or called back into its engine). The
    /// tool call must not run. Code `audit_failed`.
    AEGIS_IO_ERROR = 5,
    /// A bad argument (unknown kill scope, bad id, no approval key, bad fsync mode, bad
    /// collector configuration, a collector without an audit file, …).
    AEGIS_INVALID_ARGUMENT = 6,
    /// A bug: the library panicked. The call had no effect that can be relied on.
    AEGIS_PANIC = 7,
    /// `aegis_engine_collector_*` on an engine made without a collector
    /// (`aegis_engine_options_set_collector` was not used).
    AEGIS_NO_COLLECTOR = 8,
    /// The collector could not deliver in time: `aegis_engine_collector_flush` timed out
    /// (or shipping has stopped), or the final attempt of `aegis_engine_collector_close`
    /// left records undelivered. Nothing is lost: the records stay in the audit file and
    /// the next collector started on it resumes from the cursor. The message says why
    /// (e.g. the collector's last error).
    AEGIS_COLLECTOR_ERROR = 9,
    /// An engine option was refused (code `config_invalid`): an empty approval or signing
    /// key, a key id that is empty, longer than 256 bytes or holds a control character.
    /// The builder keeps its previous setting.
    AEGIS_CONFIG_INVALID = 10,
}

impl aegis_status {
    /// The SPEC §17 code this status stands for (docs/c.md holds the table).
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

/// `aegis_engine_options_set_audit_file`: sync after every record.
pub const AEGIS_FSYNC_ALWAYS: c_int = 0;
/// `aegis_engine_options_set_audit_file`: group commit (sync batches of records).
pub const AEGIS_FSYNC_BATCH: c_int = 1;
/// `aegis_engine_options_set_audit_file`: never sync (the OS flushes).
pub const AEGIS_FSYNC_NEVER: c_int = 2;

/// An audit callback: receives every sealed record as one line of canonical JSON
/// (`record_json`, `len` bytes, NUL-terminated; valid only during the call). Return 0 to
/// accept; any other value fails the evaluation closed (`AEGIS_IO_ERROR`, no decision).
/// Called synchronously on the evaluating thread, under the engine's record lock: it
/// must not call back into the same engine — such a call is refused and the outer
/// evaluation fails with `AEGIS_IO_ERROR` (no deadlock). A record is chained once the
/// first sink (the audit file, when one is set) accepts it: a failing callback fails the
/// call but the next record continues the chain.
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
}

// SAFETY: the `user` pointer is opaque to us; the caller of
// `aegis_engine_options_add_audit_callback` promises (documented there) that the callback
// may be called from any thread with it.
unsafe impl Send for Callback {}

/// Engine options builder (opaque). Create with `aegis_engine_options_new`, free with
/// `aegis_engine_options_free`. It is not consumed by the constructors: one builder may
/// make several engines (each opens its own audit file sink).
#[derive(Default)]
pub struct aegis_engine_options {
    signing_key: Option<Key>,
    signing_key_id: Option<KeyId>,
    approval_key: Option<Key>,
    audit_file: Option<(PathBuf, Fsync)>,
    callbacks: Vec<Callback>,
    /// The collector configuration (JSON, validated when set).
    collector: Option<String>,
}

// ---------------------------------------------------------------------------------------
// helpers

/// A failure: the status, the message for `error_out`, and the §17 error for
/// `aegis_last_error_json`.
struct Fail(aegis_status, String, ErrorInfo);

impl Fail {
    /// A failure whose code follows from its status, with no field.
    fn new(status: aegis_status, msg: impl Into<String>) -> Fail {
        let msg = msg.into();
        let info = ErrorInfo::new(status.code(), msg.clone());
        Fail(status, msg, info)
    }

    /// A failure about `field` (empty: none).
    fn field(status: aegis_status, field: &str, msg: impl Into<String>) -> Fail {
        let mut f = Fail::new(status, msg);
        f.2.field = field.to_owned();
        f
    }

    /// A refused option.
    fn config(e: &ConfigError) -> Fail {
        Fail(aegis_status::AEGIS_CONFIG_INVALID, e.message.clone(), ErrorInfo::from(e))
    }

    /// A bundle that did not load: every error, one per line, in the message; structured
    /// in the JSON.
    fn load(e: &aegis_core::LoadErrors) -> Fail {
        Fail(aegis_status::AEGIS_POLICY_ERROR, e.to_string(), ErrorInfo::from(e))
    }
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

/// Runs `f` catching panics; writes the error message to `error_out` (if not NULL).
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
        return fail(aegis_status::AEGIS_INVALID_ARGUMENT, format!("`{name}` length is too large"));
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

/// Borrows `len` bytes at `p` (any bytes: keys).
///
/// # Safety
/// `p` must be NULL or point to `len` readable bytes.
unsafe fn bytes_from_len<'a>(p: *const u8, len: usize, name: &str) -> R<&'a [u8]> {
    null_check(p, name)?;
    if len > isize::MAX as usize {
        return fail(aegis_status::AEGIS_INVALID_ARGUMENT, format!("`{name}` length is too large"));
    }
    // SAFETY: `p` is non-NULL and the caller promises `len` readable bytes.
    Ok(unsafe { std::slice::from_raw_parts(p, len) })
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
            "the engine has no collector (set one with aegis_engine_options_set_collector)",
        ),
    }
}

fn build_options(o: Option<&aegis_engine_options>) -> R<EngineOptions> {
    let mut opts = EngineOptions::default();
    let Some(o) = o else { return Ok(opts) };
    // Checked before the file sink is opened: a misconfigured engine creates no file.
    if o.collector.is_some() && o.audit_file.is_none() {
        return fail(aegis_status::AEGIS_INVALID_ARGUMENT, NEEDS_AUDIT_FILE);
    }
    opts.signing_key = o.signing_key.clone();
    opts.signing_key_id = o.signing_key_id.clone();
    opts.approval_key = o.approval_key.clone();
    if let Some((path, fsync)) = &o.audit_file {
        let sink = FileSink::open(path, *fsync).or_else(|e| fail(aegis_status::AEGIS_IO_ERROR, e.to_string()))?;
        opts.sinks.push(Box::new(sink));
    }
    for cb in &o.callbacks {
        let cb = *cb;
        opts.sinks.push(Box::new(CallbackSink(move |_r: &AuditRecord, line: &str| {
            let mut buf = Vec::with_capacity(line.len() + 1);
            buf.extend_from_slice(line.as_bytes());
            buf.push(0);
            // A method call captures the whole `Callback` (which is `Send`), not its fields.
            let rc = cb.call(&buf, line.len());
            if rc == 0 {
                Ok(())
            } else {
                Err(format!("the callback returned {rc}"))
            }
        })));
    }
    Ok(opts)
}

/// Wraps a built engine and starts its collector (if `o` configures one) on the audit
/// file, right after the engine and its file sink exist.
///
/// # Safety
/// `out` must be a valid `aegis_engine **`.
unsafe fn finish_engine(
    r: Result<Engine, aegis_core::LoadErrors>,
    o: Option<&aegis_engine_options>,
    out: *mut *mut aegis_engine,
) -> R<()> {
    let engine = r.map_err(|e| Fail::load(&e))?;
    let collector = match o.and_then(|o| o.collector.as_deref().map(|json| (json, &o.audit_file))) {
        None => None,
        Some((_, None)) => return fail(aegis_status::AEGIS_INVALID_ARGUMENT, NEEDS_AUDIT_FILE),
        Some((json, Some((path, _)))) => {
            Some(Collector::start(path.clone(), json).or_else(|e| fail(aegis_status::AEGIS_INVALID_ARGUMENT, e))?)
        }
    };
    let p = Box::into_raw(Box::new(aegis_engine { inner: engine, collector }));
    // SAFETY: `out` was checked non-NULL by the caller.
    unsafe { put(out, p) };
    Ok(())
}

fn parse_scope(s: &str) -> R<KillScope> {
    KillScope::parse(s).map_or_else(
        || fail(aegis_status::AEGIS_INVALID_ARGUMENT, format!("unknown kill scope `{s}` (agent, tool, session, all)")),
        Ok,
    )
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

/// Creates an empty options builder; free it with `aegis_engine_options_free`.
/// Returns NULL only if allocation failed (which aborts in practice).
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

/// Sets the HMAC key for record signatures (`key`, `len` bytes, copied; any bytes). An
/// empty key (`len` 0) is refused with `AEGIS_CONFIG_INVALID` (an empty HMAC key makes
/// signatures worthless); the builder keeps its previous setting.
///
/// Safety: `o` is a live builder; `key` points to `len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn aegis_engine_options_set_signing_key(
    o: *mut aegis_engine_options,
    key: *const u8,
    len: usize,
    error_out: *mut *mut c_char,
) -> aegis_status {
    run(error_out, || {
        // SAFETY: forwarded caller contract.
        let o = unsafe { options_mut(o) }?;
        // SAFETY: forwarded caller contract.
        let bytes = unsafe { bytes_from_len(key, len, "key") }?;
        o.signing_key = Some(Key::new("signing_key", bytes).map_err(|e| Fail::config(&e))?);
        Ok(())
    })
}

/// Sets the key id written as `kid` (NUL-terminated UTF-8, copied). Default: the first
/// 16 hex digits of SHA-256(signing key). An id that is empty, longer than 256 bytes or
/// holds a control character is refused with `AEGIS_CONFIG_INVALID`.
///
/// Safety: `o` is a live builder; `kid` is a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn aegis_engine_options_set_signing_key_id(
    o: *mut aegis_engine_options,
    kid: *const c_char,
    error_out: *mut *mut c_char,
) -> aegis_status {
    run(error_out, || {
        // SAFETY: forwarded caller contract.
        let o = unsafe { options_mut(o) }?;
        // SAFETY: forwarded caller contract.
        let kid = unsafe { str_from_c(kid, "kid") }?;
        o.signing_key_id = Some(KeyId::new("signing_key_id", kid).map_err(|e| Fail::config(&e))?);
        Ok(())
    })
}

/// Sets the HMAC key for approval grants (`key`, `len` bytes, copied; any bytes). An
/// empty key (`len` 0) is refused with `AEGIS_CONFIG_INVALID` (with an empty key anyone
/// could forge grants); the builder keeps its previous setting.
///
/// Safety: `o` is a live builder; `key` points to `len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn aegis_engine_options_set_approval_key(
    o: *mut aegis_engine_options,
    key: *const u8,
    len: usize,
    error_out: *mut *mut c_char,
) -> aegis_status {
    run(error_out, || {
        // SAFETY: forwarded caller contract.
        let o = unsafe { options_mut(o) }?;
        // SAFETY: forwarded caller contract.
        let bytes = unsafe { bytes_from_len(key, len, "key") }?;
        o.approval_key = Some(Key::new("approval_key", bytes).map_err(|e| Fail::config(&e))?);
        Ok(())
    })
}

/// Appends every record to the JSONL file at `path` (NUL-terminated UTF-8, copied),
/// resuming its chain. `fsync` is `AEGIS_FSYNC_ALWAYS`, `AEGIS_FSYNC_BATCH` or
/// `AEGIS_FSYNC_NEVER` (else `AEGIS_INVALID_ARGUMENT`). The file is opened by the
/// constructor (`AEGIS_IO_ERROR` if it cannot be).
///
/// Safety: `o` is a live builder; `path` is a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn aegis_engine_options_set_audit_file(
    o: *mut aegis_engine_options,
    path: *const c_char,
    fsync: c_int,
    error_out: *mut *mut c_char,
) -> aegis_status {
    run(error_out, || {
        // SAFETY: forwarded caller contract.
        let o = unsafe { options_mut(o) }?;
        // SAFETY: forwarded caller contract.
        let path = unsafe { str_from_c(path, "path") }?;
        let fsync = match fsync {
            AEGIS_FSYNC_ALWAYS => Fsync::Always,
            AEGIS_FSYNC_BATCH => Fsync::Batch,
            AEGIS_FSYNC_NEVER => Fsync::Never,
            other => return fail(aegis_status::AEGIS_INVALID_ARGUMENT, format!("unknown fsync mode {other}")),
        };
        o.audit_file = Some((PathBuf::from(path), fsync));
        Ok(())
    })
}

/// Adds an audit callback (see `aegis_audit_callback`). `user` is passed back as is; the
/// callback may be called from any thread that evaluates, and `user` must stay valid
/// until every engine made with these options is freed.
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
        let Some(f) = cb else { return fail(aegis_status::AEGIS_NULL_PARAMETER, "`cb` is NULL") };
        o.callbacks.push(Callback { f, user });
        Ok(())
    })
}

/// Ships the audit file to an OpenTelemetry collector (OTLP/HTTP JSON logs) from a
/// background thread of each engine made with these options (docs/collector.md).
/// `config_json` is `len` bytes of UTF-8 (no NUL needed, copied): one JSON object with
/// `endpoint` (required, `http://` or `https://`), and optionally `headers` (object of
/// strings), `service_name`, `batch`, `batch_age_ms`, `gzip`, `cursor`,
/// `request_timeout_ms`, `max_backoff_ms`, `close_timeout_ms` (default 5000).
///
/// It is validated at once: unknown keys, wrong types and out-of-range values give
/// `AEGIS_INVALID_ARGUMENT` with a message starting `invalid collector configuration: `
/// (an unknown key names the closest one: "did you mean `endpoint`?"), and the builder
/// keeps its previous setting; invalid UTF-8 gives `AEGIS_INVALID_UTF8`. `config_json`
/// NULL clears the setting (`len` is then ignored).
///
/// The collector reads the durable audit file, so the engine constructors fail with
/// `AEGIS_INVALID_ARGUMENT` ("… `collector` needs `audit` to be a file path …") unless
/// `aegis_engine_options_set_audit_file` is set too; they start the collector right after
/// the engine, on that same path. It never runs on the evaluating thread.
///
/// Safety: `o` is a live builder; `config_json` NULL or pointing to `len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn aegis_engine_options_set_collector(
    o: *mut aegis_engine_options,
    config_json: *const c_char,
    len: usize,
    error_out: *mut *mut c_char,
) -> aegis_status {
    run(error_out, || {
        // SAFETY: forwarded caller contract.
        let o = unsafe { options_mut(o) }?;
        if config_json.is_null() {
            o.collector = None;
            return Ok(());
        }
        // SAFETY: forwarded caller contract.
        let json = unsafe { str_from_len(config_json, len, "config_json") }?;
        // The file is only known at construction; validation does not depend on it.
        CollectorConfig::from_json("audit.jsonl", json).or_else(|e| fail(aegis_status::AEGIS_INVALID_ARGUMENT, e))?;
        o.collector = Some(json.to_owned());
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
/// not consumed).
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
        null_check(out, "out")?;
        // SAFETY: `out` is non-NULL and writable per the contract.
        unsafe { put(out, std::ptr::null_mut()) };
        // SAFETY: forwarded caller contract.
        let path = unsafe { str_from_c(path, "path") }?;
        // SAFETY: `options` is NULL or a live builder.
        let o = unsafe { options.as_ref() };
        let opts = build_options(o)?;
        // SAFETY: `out` checked above.
        unsafe { finish_engine(Engine::from_path(path, opts), o, out) }
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
        null_check(out, "out")?;
        // SAFETY: `out` is non-NULL and writable per the contract.
        unsafe { put(out, std::ptr::null_mut()) };
        // SAFETY: forwarded caller contract.
        let yaml = unsafe { str_from_len(yaml, len, "yaml") }?;
        // SAFETY: `options` is NULL or a live builder.
        let o = unsafe { options.as_ref() };
        let opts = build_options(o)?;
        // SAFETY: `out` checked above.
        unsafe { finish_engine(Engine::from_yaml(yaml, opts), o, out) }
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

fn eval_err(e: aegis_core::EvalError) -> Fail {
    let info = ErrorInfo::from(&e);
    let status = match e {
        aegis_core::EvalError::Request(_) => aegis_status::AEGIS_INVALID_REQUEST,
        aegis_core::EvalError::Audit(_) => aegis_status::AEGIS_IO_ERROR,
    };
    Fail(status, e.to_string(), info)
}

fn request_err(r: &aegis_core::RequestError) -> Fail {
    Fail(aegis_status::AEGIS_INVALID_REQUEST, r.to_string(), ErrorInfo::from(r))
}

fn control_err(c: aegis_core::ControlError) -> Fail {
    Fail::new(aegis_status::AEGIS_INVALID_ARGUMENT, c.0)
}

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
    run(error_out, || {
        null_check(decision_json_out, "decision_json_out")?;
        // SAFETY: non-NULL and writable per the contract.
        unsafe { put(decision_json_out, std::ptr::null_mut()) };
        // SAFETY: forwarded caller contract.
        let engine = unsafe { engine(e) }?;
        // SAFETY: forwarded caller contract.
        let text = unsafe { str_from_len(request_json, len, "request_json") }?;
        let line = engine.evaluate_json(text).map_err(eval_err)?;
        // SAFETY: checked above.
        unsafe { put(decision_json_out, to_c_string(line)) };
        Ok(())
    })
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
        let req = aegis_core::Request::from_json(text, engine.request_limits()).map_err(|r| request_err(&r))?;
        let d = engine.evaluate(&req).map_err(eval_err)?;
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
/// default reason is used). Bad scope or id → `AEGIS_INVALID_ARGUMENT`.
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
        engine.kill(scope, id, reason).map_err(control_err)
    })
}

/// Lifts a kill. `*revived_out` (may be NULL) is set to whether one was in force.
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
        let was = engine.revive(scope, id).map_err(control_err)?;
        if !revived_out.is_null() {
            // SAFETY: non-NULL and writable per the contract.
            unsafe { put(revived_out, was) };
        }
        Ok(())
    })
}

/// Issues a grant token for `approval_id` by `approver`, valid for `ttl_seconds` from
/// now. `*token_out` (free with `aegis_string_free`) is NULL on failure; no approval key
/// → `AEGIS_INVALID_ARGUMENT`.
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
    run(error_out, || {
        null_check(token_out, "token_out")?;
        // SAFETY: non-NULL and writable per the contract.
        unsafe { put(token_out, std::ptr::null_mut()) };
        // SAFETY: forwarded caller contract.
        let engine = unsafe { engine(e) }?;
        // SAFETY: forwarded caller contract.
        let id = unsafe { str_from_c(approval_id, "approval_id") }?;
        // SAFETY: forwarded caller contract.
        let who = unsafe { str_from_c(approver, "approver") }?;
        let token = engine.grant(id, who, ttl_seconds).map_err(control_err)?;
        // SAFETY: checked above.
        unsafe { put(token_out, to_c_string(token)) };
        Ok(())
    })
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
        engine.reload().map_err(|l| Fail::load(&l))
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
        engine.reload_yaml(yaml).map_err(|l| Fail::load(&l))
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
    run(error_out, || {
        null_check(hash_out, "hash_out")?;
        // SAFETY: non-NULL and writable per the contract.
        unsafe { put(hash_out, std::ptr::null_mut()) };
        // SAFETY: forwarded caller contract.
        let engine = unsafe { engine(e) }?;
        // SAFETY: checked above.
        unsafe { put(hash_out, to_c_string(engine.policy_hash())) };
        Ok(())
    })
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
    run(error_out, || {
        null_check(metrics_json_out, "metrics_json_out")?;
        // SAFETY: non-NULL and writable per the contract.
        unsafe { put(metrics_json_out, std::ptr::null_mut()) };
        // SAFETY: forwarded caller contract.
        let c = unsafe { collector(e) }?;
        // SAFETY: checked above.
        unsafe { put(metrics_json_out, to_c_string(c.metrics_json())) };
        Ok(())
    })
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

/// This thread's last error as one JSON object (SPEC §17):
/// `{"code","errors":[{"column","file","help","line","message"}],"field","message"}` —
/// `code` is the stable code of the status (the table is in docs/c.md), `field` the
/// option or request field at fault (`""` when none), `errors` every load error of
/// `policy_invalid`. NULL when this thread's last call succeeded (or made none). The
/// string belongs to the library: do not free it; it stays valid until this thread's next
/// call of a function that returns an `aegis_status`.
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
/// `aegis_string_free`). Refused (`AEGIS_INVALID_ARGUMENT`) from inside one of the
/// engine's own audit callbacks.
///
/// Safety: `e` a live engine; `seq_out` and `hash_out` writable.
#[no_mangle]
pub unsafe extern "C" fn aegis_engine_chain_head(
    e: *const aegis_engine,
    seq_out: *mut u64,
    hash_out: *mut *mut c_char,
    error_out: *mut *mut c_char,
) -> aegis_status {
    run(error_out, || {
        null_check(hash_out, "hash_out")?;
        // SAFETY: non-NULL and writable per the contract.
        unsafe { put(hash_out, std::ptr::null_mut()) };
        null_check(seq_out, "seq_out")?;
        // SAFETY: forwarded caller contract.
        let engine = unsafe { engine(e) }?;
        let (seq, hash) = engine.chain_head().map_err(control_err)?;
        // SAFETY: both checked non-NULL above.
        unsafe {
            put(seq_out, seq);
            put(hash_out, to_c_string(hash));
        }
        Ok(())
    })
}

/// The library version (static string; do not free).
#[no_mangle]
pub extern "C" fn aegis_version() -> *const c_char {
    c"0.1.0".as_ptr()
}
