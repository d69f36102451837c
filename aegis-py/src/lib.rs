//! # aegis-py
//!
//! The native half of the Python package `aegis-policy` (`import aegis`): the private
//! module `aegis._aegis`. It holds an [`aegis_core::Engine`], converts Python objects
//! straight into [`aegis_core::Value`] trees (no JSON text round trip), releases the GIL
//! while the core evaluates and raises the exceptions defined in `aegis/_errors.py`.
//!
//! The public, typed API (`Engine`, `Decision`, `Outcome`, `secure_tool`…) lives in
//! the pure-Python package around this module.

use std::sync::{Arc, RwLock};

use aegis_core::config::{DOC_MAX_BYTES, DOC_MAX_DEPTH};
use aegis_core::{
    AuditSink, CallbackSink, ConfigError, ControlError, EngineConfig, ErrorCode, ErrorInfo, ErrorLocation, EvalError,
    KillScope, LoadErrors, Map, Request, RequestError, RequestLimits, Spelling, Value,
};
use aegis_ship::collector::Collector;
use aegis_ship::open::{open, Bundle};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBool, PyByteArray, PyBytes, PyDict, PyFloat, PyInt, PyList, PyMemoryView, PyString, PyTuple};

/// The Python exception for an error of the core's shape (§17), made in one place:
/// `aegis._errors._error(code, message, field, errors)` picks the class that matches
/// the code (`PolicyError`, `RequestError`, `ConfigError`, `ArgumentError`, else
/// `AegisError`) and gives every one `.code`, `.field` and `.errors` (the load errors
/// as `PolicyLoadError`s, `[]` for every other code).
fn raise(py: Python<'_>, info: ErrorInfo) -> PyErr {
    let ErrorInfo { code, message, field, errors } = info;
    let errors: Vec<(String, usize, usize, String, Option<String>)> =
        errors.into_iter().map(|l| (l.file, l.line, l.column, l.message, l.help)).collect();
    let made = (|| -> PyResult<PyErr> {
        let factory = py.import("aegis._errors")?.getattr("_error")?;
        let exc = factory.call1((code.as_str(), message, field, errors))?;
        Ok(PyErr::from_value(exc))
    })();
    match made {
        Ok(e) | Err(e) => e,
    }
}

fn aegis_error(py: Python<'_>, code: ErrorCode, message: impl Into<String>) -> PyErr {
    raise(py, ErrorInfo::new(code, message))
}

fn config_error(py: Python<'_>, field: &str, message: impl Into<String>) -> PyErr {
    raise(py, ErrorInfo::from(&ConfigError::new(field, message)))
}

fn arg_error(py: Python<'_>, message: impl Into<String>) -> PyErr {
    aegis_error(py, ErrorCode::InvalidArgument, message)
}

fn request_error(py: Python<'_>, e: &RequestError) -> PyErr {
    raise(py, ErrorInfo::from(e))
}

fn policy_error(py: Python<'_>, e: &LoadErrors) -> PyErr {
    raise(py, ErrorInfo::from(e))
}

fn eval_error(py: Python<'_>, e: &EvalError) -> PyErr {
    raise(py, ErrorInfo::from(e))
}

/// A refused control call. One made from inside this engine's own audit callback is
/// `audit_failed` (the outer `evaluate` fails with it too), any other `invalid_argument`.
fn control_error(py: Python<'_>, e: &ControlError) -> PyErr {
    raise(py, ErrorInfo::from(e))
}

/// A conversion failure: (top-level field, message).
type ConvError = (String, String);

use aegis_core::ValuePath as Path;

fn shown(path: &Path<'_>) -> String {
    let mut p = String::new();
    path.render(&mut p);
    if p.is_empty() {
        "the request".to_owned()
    } else {
        format!("`{p}`")
    }
}

fn conv_err(path: &Path<'_>, what: impl std::fmt::Display) -> ConvError {
    (path.field().to_owned(), format!("{} {what}", shown(path)))
}

fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type().name().map(|n| n.to_string()).unwrap_or_else(|_| "?".into())
}

/// A `str` (or subclass) as UTF-8; `None` when it holds a lone surrogate (which is
/// never replaced by U+FFFD: two different strings must never become one).
fn utf8(s: &Bound<'_, PyString>) -> Option<String> {
    // The failed encoding's UnicodeEncodeError is fetched and dropped here.
    s.to_cow().ok().map(std::borrow::Cow::into_owned)
}

const SURROGATE: &str =
    "contains a lone surrogate; strings must be well-formed Unicode (they are never replaced by U+FFFD)";
const BYTES: &str =
    "a byte string; requests carry text, never bytes (as base64 or otherwise): decode it to a str first";

/// Converts Python values into a [`Value`] tree, refusing what JSON (and so the CLI)
/// cannot carry and bounded as it goes (§9a):
///
/// * **size**: every value inside a container is charged as the core measures it
///   (strings by their length before they are copied, containers per element and
///   key) against the request size limit, so shared sub-objects
///   (`o = {"a": o, "b": o}` repeated) are refused by their expanded size as soon as
///   it passes the limit, long before memory runs out. Only scalar top-level fields
///   (`agent`, `time`…, bounded by the core) are not charged, so whatever the walk
///   refuses the core would refuse too;
/// * **depth**: containers deeper than the core's limit + 1 (the core then names the
///   depth) are refused, which also stops cyclic structures; the walk is in Rust, so
///   no Python recursion limit or stack is involved;
/// * **no Python code runs**: lists, tuples and dicts (subclasses included) are read
///   by their stored items through the C API (an overridden `__len__`, `__iter__` or
///   `items` never runs), so nothing can change a container while it is walked;
/// * **types**: byte strings, strings with lone surrogates (values and keys), non-`str`
///   keys, NaN/±inf, integers beyond ±(2^53 − 1) (refused by the core, or here when they
///   do not fit 64 bits) and every other type are request errors.
///
/// The same walk reads engine options ([`Walker::for_options`]), bounded as the core
/// bounds an options document given as JSON text ([`DOC_MAX_BYTES`], every value
/// charged; [`DOC_MAX_DEPTH`], counting the document as depth 1): byte strings
/// (`bytes`, `bytearray`) become `{"base64": "…"}`, a key's JSON form (§17), which the
/// core's validator then accepts or refuses.
struct Walker {
    used: usize,
    max_bytes: usize,
    /// The deepest container walked (a top-level request field or option is depth 1).
    max_depth: usize,
    /// The depth limit as the caller knows it, for the message.
    shown_depth: usize,
    /// Reading engine options rather than a request.
    options: bool,
}

impl Walker {
    fn new(limits: &RequestLimits) -> Walker {
        // `params` is depth 1: one level beyond the core's limit is walked, so that the
        // core refuses it, naming the depth.
        Walker {
            used: 0,
            max_bytes: limits.max_bytes,
            max_depth: limits.max_depth + 1,
            shown_depth: limits.max_depth,
            options: false,
        }
    }

    fn for_options() -> Walker {
        // An option's value is depth 2 of the document, as the JSON reader counts.
        Walker {
            used: 0,
            max_bytes: DOC_MAX_BYTES,
            max_depth: DOC_MAX_DEPTH - 1,
            shown_depth: DOC_MAX_DEPTH,
            options: true,
        }
    }

    fn too_large(&self) -> ConvError {
        let what = if self.options { "the options are" } else { "request is" };
        (String::new(), format!("{what} larger than {} bytes", self.max_bytes))
    }

    /// Charges `n` bytes; beyond the limit, the core's "larger than" error.
    fn charge(&mut self, n: usize) -> Result<(), ConvError> {
        self.used = self.used.saturating_add(n);
        if self.used > self.max_bytes {
            return Err(self.too_large());
        }
        Ok(())
    }

    /// A string, charged (when `charged`) by its UTF-8 length + 2 (at least its
    /// length in code points before anything is copied).
    fn string(&mut self, s: &Bound<'_, PyString>, path: &Path<'_>, charged: bool) -> Result<Value, ConvError> {
        if charged {
            // SAFETY: `s` is a live str object; PyUnicode_GetLength runs no Python code.
            let chars = unsafe { pyo3::ffi::PyUnicode_GetLength(s.as_ptr()) };
            let remaining = self.max_bytes.saturating_sub(self.used);
            if chars > 0 && (chars as usize).saturating_add(2) > remaining {
                return Err(self.too_large());
            }
        }
        let Some(text) = utf8(s) else { return Err(conv_err(path, SURROGATE)) };
        if charged {
            self.charge(text.len() + 2)?;
        }
        Ok(Value::String(text))
    }

    /// Converts `obj` at `path`; `depth` is its nesting (a top-level request field is
    /// depth 1, `params`' values depth 2).
    fn value(&mut self, obj: &Bound<'_, PyAny>, path: &Path<'_>, depth: usize) -> Result<Value, ConvError> {
        // Options are charged whole; a request's scalar top-level fields are bounded by
        // the core.
        let charged = depth >= 2 || self.options;
        if obj.is_none() {
            if charged {
                self.charge(4)?;
            }
            return Ok(Value::Null);
        }
        // str first (the commonest leaf), then bool before int: Python's bool is an int
        // subclass, but not a number here.
        if let Ok(s) = obj.cast::<PyString>() {
            return self.string(s, path, charged);
        }
        if obj.is_instance_of::<PyBool>() {
            if charged {
                self.charge(5)?;
            }
            // `bool` cannot be subclassed: this is True or False (no `__bool__` runs).
            return Ok(Value::Bool(obj.cast::<PyBool>().is_ok_and(|b| b.is_true())));
        }
        if obj.is_instance_of::<PyInt>() {
            if charged {
                self.charge(24)?;
            }
            // An int subclass is read by its stored value (no `__index__`). Beyond 64 bits
            // it cannot be exact; within, the core refuses magnitudes beyond 2^53 − 1 in a
            // request with its own message (the same as for JSON text). An option's value
            // is refused here (as the JSON reader refuses such a number in C's options).
            return match obj.extract::<i64>() {
                Ok(i) if !self.options || i.unsigned_abs() <= aegis_core::value::MAX_EXACT_INT => {
                    Ok(Value::Number(i as f64))
                }
                _ if self.options => Err(conv_err(
                    path,
                    "is a number beyond ±9007199254740991 (2^53 − 1), where numbers stop being exact",
                )),
                _ => Err(conv_err(
                    path,
                    "is a number beyond ±9007199254740991 (2^53 − 1), where numbers stop being exact; \
                     send large ids as strings",
                )),
            };
        }
        if let Ok(f) = obj.cast::<PyFloat>() {
            if charged {
                self.charge(24)?;
            }
            let v = f.value();
            if !v.is_finite() {
                return Err(conv_err(path, aegis_core::value::non_finite_message(v)));
            }
            return Ok(Value::Number(v));
        }
        if self.options {
            let bytes = if let Ok(b) = obj.cast::<PyBytes>() {
                Some(b.as_bytes().to_vec())
            } else {
                obj.cast::<PyByteArray>().ok().map(|b| b.to_vec())
            };
            if let Some(bytes) = bytes {
                use base64::Engine as _;
                let text = base64::engine::general_purpose::STANDARD.encode(bytes);
                self.charge(text.len() + 14)?;
                return Ok(Value::Object(Map::from([("base64".to_owned(), Value::String(text))])));
            }
        } else if obj.is_instance_of::<PyBytes>()
            || obj.is_instance_of::<PyByteArray>()
            || obj.is_instance_of::<PyMemoryView>()
        {
            return Err(conv_err(path, format!("is {BYTES} ({})", type_name(obj))));
        }
        let is_dict = obj.is_instance_of::<PyDict>();
        let is_list = obj.is_instance_of::<PyList>();
        let is_tuple = obj.is_instance_of::<PyTuple>();
        if !(is_dict || is_list || is_tuple) {
            let allowed = if self.options {
                "dict, list, tuple, str, bytes, int, float, bool or None"
            } else {
                "dict, list, tuple, str, int, float, bool or None"
            };
            return Err(conv_err(path, format!("is of type {}, which is not allowed (use {allowed})", type_name(obj))));
        }
        if depth > self.max_depth {
            return Err(conv_err(
                path,
                format!("is nested deeper than {} levels (or is a cyclic structure)", self.shown_depth),
            ));
        }
        if depth == 1 && is_dict {
            // The core charges `params` / `context` their key and quotes.
            if let Path::Key(_, k) = path {
                self.charge(k.len() + 4)?;
            }
        }
        self.charge(2)?;
        if let Ok(d) = obj.cast::<PyDict>() {
            let mut map = Map::new();
            // PyDict_Next over the stored items: nothing in the walk runs Python code,
            // so the dict cannot change while it is iterated.
            for (k, v) in d.iter() {
                let Ok(ks) = k.cast::<PyString>() else {
                    let what = if !self.options && (k.is_instance_of::<PyBytes>() || k.is_instance_of::<PyByteArray>())
                    {
                        format!("{BYTES} ({})", type_name(&k))
                    } else {
                        type_name(&k)
                    };
                    return Err(conv_err(path, format!("has a key that is not a str: {what}")));
                };
                let Some(key) = utf8(ks) else {
                    return Err(conv_err(path, format!("has a key that {SURROGATE}")));
                };
                self.charge(key.len() + 4)?;
                let val = self.value(&v, &Path::Key(path, &key), depth + 1)?;
                map.insert(key, val);
            }
            return Ok(Value::Object(map));
        }
        let mut out = Vec::new();
        if let Ok(l) = obj.cast::<PyList>() {
            // By index with the stored length (PyList_Size, never `__len__`).
            let mut i = 0;
            while i < l.len() {
                let item = l.get_item(i).map_err(|e| conv_err(path, e))?;
                self.charge(1)?;
                out.push(self.value(&item, &Path::Index(path, i), depth + 1)?);
                i += 1;
            }
        } else if let Ok(t) = obj.cast::<PyTuple>() {
            for i in 0..t.len() {
                let item = t.get_item(i).map_err(|e| conv_err(path, e))?;
                self.charge(1)?;
                out.push(self.value(&item, &Path::Index(path, i), depth + 1)?);
            }
        }
        Ok(Value::Array(out))
    }
}

/// Builds a validated [`Request`] from a Python dict.
fn request_from_py(py: Python<'_>, obj: &Bound<'_, PyAny>, engine: &aegis_core::Engine) -> PyResult<Request> {
    if !obj.is_instance_of::<PyDict>() {
        return Err(request_error(
            py,
            &RequestError::new("", format!("a request is a dict, found {}", type_name(obj))),
        ));
    }
    let v = Walker::new(engine.request_limits())
        .value(obj, &Path::Root, 0)
        .map_err(|(f, m)| request_error(py, &RequestError::new(&f, m)))?;
    Request::from_value(v, engine.request_limits()).map_err(|e| request_error(py, &e))
}

/// A text argument of a control function: a `str` without lone surrogates (NULs and
/// other control characters are refused by the core itself, never cut off).
fn text_arg(py: Python<'_>, obj: &Bound<'_, PyAny>, what: &str) -> PyResult<String> {
    let Ok(s) = obj.cast::<PyString>() else {
        return Err(arg_error(py, format!("{what} must be a str, not {}", type_name(obj))));
    };
    utf8(s).ok_or_else(|| arg_error(py, format!("{what} {SURROGATE}")))
}

/// The native engine (`aegis._aegis.NativeEngine`); wrapped by `aegis.Engine`.
#[pyclass(frozen, module = "aegis._aegis")]
struct NativeEngine {
    /// `None` once closed (the engine, its audit file and its lock are released).
    inner: RwLock<Option<Arc<aegis_core::Engine>>>,
    /// The shipper started by the `collector` option (on the audit file).
    collector: Option<Arc<Collector>>,
}

impl Drop for NativeEngine {
    /// An engine dropped without `close()` stops its shipper without a final attempt,
    /// which still joins the shipping thread (bounded by one in-flight request, up to
    /// `request_timeout_ms`): do that with the GIL released, so garbage-collecting an
    /// engine never stalls the other Python threads.
    fn drop(&mut self) {
        if let Some(c) = self.collector.take().filter(|c| !c.is_closed()) {
            // If the interpreter cannot be attached (it is finalizing), the closure is
            // dropped unrun, and the collector with it, right here.
            let _ = Python::try_attach(move |py| py.detach(move || drop(c)));
        }
    }
}

fn collector_error(py: Python<'_>, e: &aegis_ship::ShipError) -> PyErr {
    aegis_error(py, ErrorCode::CollectorFailed, e.to_string())
}

fn timeout(py: Python<'_>, t: f64) -> PyResult<std::time::Duration> {
    if !(0.0..=3600.0).contains(&t) {
        return Err(arg_error(py, format!("timeout must be from 0 to 3600 seconds, not {t}")));
    }
    std::time::Duration::try_from_secs_f64(t).map_err(|e| arg_error(py, format!("timeout: {e}")))
}

/// Whether an audit callback's result is awaitable (an `async def` callback, a
/// coroutine, a Future); coroutines are closed, so no "never awaited" warning leaks.
fn refuse_awaitable(py: Python<'_>, result: &Bound<'_, PyAny>) -> Result<(), String> {
    static IS_AWAITABLE: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    static IS_COROUTINE: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    if result.is_none() {
        return Ok(());
    }
    let check = |cell: &'static PyOnceLock<Py<PyAny>>, name: &str| -> PyResult<bool> {
        cell.import(py, "inspect", name)?.call1((result,))?.is_truthy()
    };
    if check(&IS_AWAITABLE, "isawaitable").map_err(|e| e.to_string())? {
        if check(&IS_COROUTINE, "iscoroutine").unwrap_or(false) {
            let _ = result.call_method0("close");
        }
        return Err(format!(
            "the callback returned an awaitable ({}); audit callbacks must be synchronous functions \
             (the record must be handled before `evaluate` returns)",
            type_name(result)
        ));
    }
    Ok(())
}

/// The §17 configuration document of `Engine.from_path/from_yaml`'s keyword arguments,
/// for the core's one validator ([`EngineConfig`]): every option goes in as given, so
/// an unknown or misspelt keyword gets the core's `did you mean` and a wrong value the
/// core's message. Only what Python has and JSON has not is translated:
///
/// * `None` is null, which the core reads as "not given";
/// * `bytes`/`bytearray` are `{"base64": "…"}` (a key's JSON form);
/// * `audit` given as an `os.PathLike` is its `os.fspath` text; `audit` given as a
///   callable (not a str or path) is left out of the document and returned: it becomes
///   the callback sink (`audit_callback`);
/// * everything else goes through the bounded walk of requests ([`Walker`]): a type
///   JSON cannot carry is `config_invalid` naming the option.
fn config_document(py: Python<'_>, options: &Bound<'_, PyAny>) -> PyResult<(Value, Option<Py<PyAny>>)> {
    let Ok(options) = options.cast::<PyDict>() else {
        return Err(arg_error(py, format!("the options are a dict, not {}", type_name(options))));
    };
    // The names first, by the core (a null is "not given", so only the names are
    // judged): a misspelt option gets its `did you mean` whatever its value is
    // (`adit=callback` is "unknown option `adit` (did you mean `audit`?)", never a
    // complaint about a function value).
    let mut given = Vec::with_capacity(options.len());
    let mut names = Map::new();
    for (k, v) in options.iter() {
        let Ok(name) = k.cast::<PyString>() else {
            return Err(config_error(py, "", format!("option names are str, not {}", type_name(&k))));
        };
        let Some(name) = utf8(name) else { return Err(config_error(py, "", format!("an option name {SURROGATE}"))) };
        names.insert(name.clone(), Value::Null);
        given.push((name, v));
    }
    EngineConfig::from_value(&Value::Object(names), Spelling::Snake).map_err(|e| raise(py, ErrorInfo::from(&e)))?;
    let mut walker = Walker::for_options();
    let mut doc = Map::new();
    let mut callback = None;
    for (key, v) in given {
        let value = if key == "audit" && !v.is_none() && !v.is_instance_of::<PyString>() {
            if is_path_like(py, &v)? {
                let text = py.import("os")?.call_method1("fspath", (&v,))?;
                let Some(text) = text.cast::<PyString>().ok().and_then(utf8) else {
                    return Err(config_error(
                        py,
                        "audit",
                        format!(
                            "`audit` must be a str path (a well-formed str or os.PathLike of str), not {}",
                            type_name(&v)
                        ),
                    ));
                };
                Ok(Value::String(text))
            } else if v.is_callable() {
                callback = Some(v.clone().unbind());
                continue;
            } else {
                walker.value(&v, &Path::Key(&Path::Root, &key), 1)
            }
        } else {
            walker.value(&v, &Path::Key(&Path::Root, &key), 1)
        };
        let value = value.map_err(|(field, message)| config_error(py, &field, message))?;
        doc.insert(key, value);
    }
    Ok((Value::Object(doc), callback))
}

/// Whether `obj` is an `os.PathLike` (has `__fspath__`).
fn is_path_like(py: Python<'_>, obj: &Bound<'_, PyAny>) -> PyResult<bool> {
    static PATH_LIKE: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    obj.is_instance(PATH_LIKE.import(py, "os", "PathLike")?)
}

/// The audit callback as a sink. It runs in the evaluating thread, under the engine's
/// chain lock, which that thread took with the GIL released: re-attaching here cannot
/// deadlock. A call back into this engine from here is refused by the core (and fails
/// the outer `evaluate`); so is a callback that raises or returns an awaitable.
fn callback_sink(cb: Py<PyAny>) -> Box<dyn AuditSink> {
    Box::new(CallbackSink(move |rec: &aegis_core::AuditRecord, _line: &str| -> Result<(), String> {
        Python::attach(|py| {
            let d = audit_dict(py, rec).map_err(|e| e.to_string())?;
            let result = cb.bind(py).call1((d,)).map_err(|e| format!("the callback raised {e}"))?;
            refuse_awaitable(py, &result)
        })
    }))
}

/// Opens an engine the one way every binding does (`aegis_ship::open`): the options
/// validated by the core, the audit file opened and locked, the callback added, the
/// bundle loaded (GIL released), the collector started.
fn open_engine(py: Python<'_>, bundle: Bundle<'_>, options: &Bound<'_, PyAny>) -> PyResult<NativeEngine> {
    let (doc, callback) = config_document(py, options)?;
    let config = EngineConfig::from_value_with(&doc, Spelling::Snake, callback.is_some())
        .map_err(|e| raise(py, ErrorInfo::from(&e)))?;
    let sinks: Vec<Box<dyn AuditSink>> = callback.map(callback_sink).into_iter().collect();
    let opened = py.detach(move || open(bundle, &config, sinks)).map_err(|e| raise(py, e))?;
    Ok(NativeEngine { inner: RwLock::new(Some(Arc::new(opened.engine))), collector: opened.collector.map(Arc::new) })
}

fn scope(py: Python<'_>, s: &Bound<'_, PyAny>) -> PyResult<KillScope> {
    let text = text_arg(py, s, "scope")?;
    KillScope::from_arg(&text).map_err(|e| arg_error(py, e.0))
}

/// Outcome, rules, reason, approval (id, approvers), errors, audit record (a dict).
type RawDecision<'py> = (
    &'static str,
    Vec<String>,
    String,
    Option<(String, Vec<String>)>,
    Vec<(String, String, String)>,
    Bound<'py, PyDict>,
);

/// The raw decision tuple of a [`Decision`](aegis_core::Decision).
fn raw_decision(py: Python<'_>, d: aegis_core::Decision) -> PyResult<RawDecision<'_>> {
    let audit = audit_dict(py, &d.audit)?;
    Ok((
        d.outcome.as_str(),
        d.rules,
        d.reason,
        d.approval.map(|a| (a.id, a.approvers)),
        d.errors.into_iter().map(|e| (e.rule, e.path, e.message)).collect(),
        audit,
    ))
}

/// A guarded call's decision: the raw decision, the params as decided (when it is
/// `allow`) and the request to re-decide with a grant (when it is `require_approval`).
type Guarded<'py> = (RawDecision<'py>, Option<Bound<'py, PyDict>>, Option<PendingApproval>);

/// A guarded call decided `require_approval`: its converted request and the time the
/// decision resolved, for [`NativeEngine::evaluate_granted`]. Opaque to Python.
#[pyclass(frozen, module = "aegis._aegis")]
struct PendingApproval {
    request: Request,
    time: String,
}

fn guarded<'py>(py: Python<'py>, request: Request, d: aegis_core::Decision) -> PyResult<Guarded<'py>> {
    let params = match d.outcome {
        aegis_core::Outcome::Allow => Some(plain_map(py, &request.params)?),
        _ => None,
    };
    let pending = match d.outcome {
        aegis_core::Outcome::RequireApproval => Some(PendingApproval { time: d.audit.time.clone(), request }),
        _ => None,
    };
    Ok((raw_decision(py, d)?, params, pending))
}

/// A record number as `json.loads` would give it from the canonical line: an `int` when
/// it is written without fraction or exponent (integral and below 1e21), else a `float`.
fn number<'py>(py: Python<'py>, n: f64) -> PyResult<Bound<'py, PyAny>> {
    if n.is_finite() && n.fract() == 0.0 && n.abs() < 9.0e18 {
        return Ok((n as i64).into_pyobject(py)?.into_any());
    }
    if n.is_finite() && n.fract() == 0.0 && n.abs() < 1e21 {
        return Ok((n as i128).into_pyobject(py)?.into_any());
    }
    Ok(PyFloat::new(py, n).into_any())
}

/// The audit record as the dict `json.loads(record.to_json())` would give (same keys,
/// same key order, same value types), built from the core's one table of record
/// fields ([`AuditRecord::for_each_field`](aegis_core::AuditRecord::for_each_field),
/// the table the JSON line is written from), without JSON text.
fn audit_dict<'py>(py: Python<'py>, r: &aegis_core::AuditRecord) -> PyResult<Bound<'py, PyDict>> {
    use aegis_core::audit::RecordKey;
    /// The record's keys as interned `str`s, in table order (made once).
    static KEYS: PyOnceLock<Vec<(&'static str, Py<PyString>)>> = PyOnceLock::new();
    let keys = KEYS.get_or_init(py, || {
        RecordKey::ALL.iter().map(|k| (k.name(), PyString::intern(py, k.name()).unbind())).collect()
    });
    let d = PyDict::new(py);
    let mut cached = keys.iter();
    let mut result = Ok(());
    r.for_each_field(|name, value| {
        if result.is_err() {
            return;
        }
        // The fields come in table order: each key is a later cached one.
        let key = cached.find(|(n, _)| *n == name).map_or_else(|| PyString::new(py, name), |(_, k)| k.bind(py).clone());
        result = record_value(py, value).and_then(|v| d.set_item(key, v));
    });
    result.map(|()| d)
}

/// A record value as `json.loads` gives it (a limit's `sum` as [`number`] does).
fn record_value<'py>(py: Python<'py>, value: aegis_core::audit::RecordValue<'_>) -> PyResult<Bound<'py, PyAny>> {
    use aegis_core::audit::RecordValue;
    use pyo3::intern;
    Ok(match value {
        RecordValue::Str(s) => PyString::new(py, s).into_any(),
        RecordValue::U64(n) => n.into_pyobject(py)?.into_any(),
        RecordValue::StrList(items) => PyList::new(py, items)?.into_any(),
        RecordValue::Limits(limits) => {
            let list = PyList::empty(py);
            for l in limits {
                let ld = PyDict::new(py);
                ld.set_item(intern!(py, "calls"), l.calls)?;
                ld.set_item(intern!(py, "id"), &l.id)?;
                if let Some(sum) = l.sum {
                    ld.set_item(intern!(py, "sum"), number(py, sum)?)?;
                }
                list.append(ld)?;
            }
            list.into_any()
        }
    })
}

/// A value as plain Python (dict, list, str, int, float, bool, None); a number as
/// [`number`] gives it (an integral one is an `int`). Recursion is bounded by the walk
/// that made the value (the request depth limit, at most 100).
fn plain<'py>(py: Python<'py>, v: &Value) -> PyResult<Bound<'py, PyAny>> {
    Ok(match v {
        Value::Null => py.None().into_bound(py),
        Value::Bool(b) => PyBool::new(py, *b).to_owned().into_any(),
        Value::Number(n) => number(py, *n)?,
        Value::String(s) => PyString::new(py, s).into_any(),
        Value::Array(items) => {
            let list = PyList::empty(py);
            for item in items {
                list.append(plain(py, item)?)?;
            }
            list.into_any()
        }
        Value::Object(map) => plain_map(py, map)?.into_any(),
    })
}

fn plain_map<'py>(py: Python<'py>, map: &Map) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    for (k, item) in map.iter() {
        d.set_item(k, plain(py, item)?)?;
    }
    Ok(d)
}

impl NativeEngine {
    /// The engine, or `invalid_argument` once it is closed.
    fn engine(&self, py: Python<'_>) -> PyResult<Arc<aegis_core::Engine>> {
        let g = self.inner.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        g.as_ref().map(Arc::clone).ok_or_else(|| arg_error(py, "this engine is closed"))
    }
}

/// Bundle text (YAML) as UTF-8: a lone surrogate is a load error, never U+FFFD.
fn yaml_text(py: Python<'_>, text: &Bound<'_, PyAny>) -> PyResult<String> {
    let Ok(s) = text.cast::<PyString>() else {
        return Err(arg_error(py, format!("the bundle text must be a str, not {}", type_name(text))));
    };
    utf8(s).ok_or_else(|| {
        let message = format!("the bundle text {SURROGATE}");
        let at = ErrorLocation { file: "<yaml>".into(), line: 1, column: 1, message: message.clone(), help: None };
        raise(
            py,
            ErrorInfo {
                errors: vec![at],
                ..ErrorInfo::new(ErrorCode::PolicyInvalid, format!("<yaml>:1:1: error: {message}"))
            },
        )
    })
}

#[pymethods]
impl NativeEngine {
    /// Loads a bundle from a file or folder with `options`, the caller's keyword
    /// arguments as one dict ([`config_document`]).
    #[staticmethod]
    fn from_path(py: Python<'_>, path: &Bound<'_, PyAny>, options: &Bound<'_, PyAny>) -> PyResult<Self> {
        let path: std::path::PathBuf = path
            .extract()
            .map_err(|_| arg_error(py, format!("the bundle path must be a str path, not {}", type_name(path))))?;
        if path.as_os_str().as_encoded_bytes().contains(&0) {
            return Err(arg_error(py, "the bundle path contains a NUL character"));
        }
        open_engine(py, Bundle::Path(&path), options)
    }

    /// Loads a one-file bundle from YAML text (named `<yaml>`) with `options`.
    #[staticmethod]
    fn from_yaml(py: Python<'_>, text: &Bound<'_, PyAny>, options: &Bound<'_, PyAny>) -> PyResult<Self> {
        let text = yaml_text(py, text)?;
        open_engine(py, Bundle::Yaml(&text), options)
    }

    /// Releases the engine: its audit file (and the file's lock) is closed once calls
    /// in flight finish; later calls raise `ArgumentError` ("this engine is closed").
    /// The collector is closed separately (`collector_close`). Idempotent.
    fn close(&self, py: Python<'_>) {
        let taken = self.inner.write().unwrap_or_else(std::sync::PoisonError::into_inner).take();
        // Dropping the last reference flushes and closes the file: without the GIL.
        py.detach(move || drop(taken));
    }

    /// Whether `close()` was called.
    fn is_closed(&self) -> bool {
        self.inner.read().unwrap_or_else(std::sync::PoisonError::into_inner).is_none()
    }

    /// Whether a collector was configured.
    fn has_collector(&self) -> bool {
        self.collector.is_some()
    }

    /// The collector's metrics as JSON (snake_case keys), or `None` without one.
    fn collector_metrics(&self) -> Option<String> {
        self.collector.as_ref().map(|c| c.metrics_json())
    }

    /// Waits (without the GIL) until every record in the files now is delivered.
    fn collector_flush(&self, py: Python<'_>, timeout_seconds: f64) -> PyResult<()> {
        let Some(c) = self.collector.clone() else { return Ok(()) };
        let t = timeout(py, timeout_seconds)?;
        py.detach(move || c.flush(t)).map_err(|e| collector_error(py, &e))
    }

    /// Stops the collector with a final attempt (without the GIL); returns the final
    /// metrics as JSON, or raises `AegisError` if the attempt left records undelivered.
    #[pyo3(signature = (timeout_seconds=None))]
    fn collector_close(&self, py: Python<'_>, timeout_seconds: Option<f64>) -> PyResult<Option<String>> {
        let Some(c) = self.collector.clone() else { return Ok(None) };
        let t = timeout_seconds.map(|t| timeout(py, t)).transpose()?;
        let (m, r) = py.detach(move || c.close(t));
        r.map_err(|e| collector_error(py, &e))?;
        Ok(Some(aegis_ship::collector::metrics_json(&m)))
    }

    /// Evaluates a request dict; returns the raw decision tuple. The GIL is released
    /// while the core decides and records (an audit callback re-attaches it).
    fn evaluate<'py>(&self, py: Python<'py>, request: &Bound<'py, PyAny>) -> PyResult<RawDecision<'py>> {
        let engine = self.engine(py)?;
        let req = request_from_py(py, request, &engine)?;
        let d = py.detach(|| engine.evaluate(&req)).map_err(|e| eval_error(py, &e))?;
        raw_decision(py, d)
    }

    /// A guarded tool's call (`secure_tool`): the request dict converted once, by the
    /// walk of `evaluate`, and decided. Returns the raw decision, the params as
    /// decided rendered as plain Python (dicts, lists, str, int, float, bool, None: a
    /// deep copy, which the tool is called with) when it is `allow`, and, when it is
    /// `require_approval`, the request as decided to re-decide with a grant
    /// ([`NativeEngine::evaluate_granted`]). Nothing that changes the caller's objects
    /// meanwhile changes what is decided or what runs.
    fn evaluate_guarded<'py>(&self, py: Python<'py>, request: &Bound<'py, PyAny>) -> PyResult<Guarded<'py>> {
        let engine = self.engine(py)?;
        let req = request_from_py(py, request, &engine)?;
        let d = py.detach(|| engine.evaluate(&req)).map_err(|e| eval_error(py, &e))?;
        guarded(py, req, d)
    }

    /// Re-decides a guarded call's `require_approval` request with a grant token: the
    /// same converted request, with `approval` and the first decision's resolved
    /// `time` (§6.2), validated by the core as any request. Returns as
    /// `evaluate_guarded` does.
    fn evaluate_granted<'py>(
        &self,
        py: Python<'py>,
        pending: &Bound<'py, PendingApproval>,
        token: &Bound<'py, PyAny>,
    ) -> PyResult<Guarded<'py>> {
        let engine = self.engine(py)?;
        let limits = engine.request_limits();
        let pending = pending.get();
        let token = Walker::new(limits)
            .value(token, &Path::Key(&Path::Root, "approval"), 1)
            .map_err(|(f, m)| request_error(py, &RequestError::new(&f, m)))?;
        let mut v = pending.request.to_value();
        if let Value::Object(m) = &mut v {
            m.insert("approval".to_owned(), token);
            m.insert("time".to_owned(), Value::String(pending.time.clone()));
        }
        let req = Request::from_value(v, limits).map_err(|e| request_error(py, &e))?;
        let d = py.detach(|| engine.evaluate(&req)).map_err(|e| eval_error(py, &e))?;
        guarded(py, req, d)
    }

    /// Evaluates request JSON text; returns the decision line (canonical JSON).
    fn evaluate_json(&self, py: Python<'_>, request_json: &Bound<'_, PyAny>) -> PyResult<String> {
        let engine = self.engine(py)?;
        let Ok(s) = request_json.cast::<PyString>() else {
            let msg = format!("evaluate_json takes JSON text (a str), not {}", type_name(request_json));
            return Err(request_error(py, &RequestError::new("", msg)));
        };
        let Some(text) = utf8(s) else {
            return Err(request_error(py, &RequestError::new("", format!("the request text {SURROGATE}"))));
        };
        py.detach(move || engine.evaluate_json(&text)).map_err(|e| eval_error(py, &e))
    }

    #[pyo3(signature = (scope_name, id, reason=None))]
    fn kill(
        &self,
        py: Python<'_>,
        scope_name: &Bound<'_, PyAny>,
        id: &Bound<'_, PyAny>,
        reason: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let engine = self.engine(py)?;
        let s = scope(py, scope_name)?;
        let id = text_arg(py, id, "id")?;
        let reason = match reason {
            Some(r) => text_arg(py, r, "reason")?,
            None => String::new(),
        };
        py.detach(move || engine.kill(s, &id, &reason)).map_err(|e| control_error(py, &e))
    }

    fn revive(&self, py: Python<'_>, scope_name: &Bound<'_, PyAny>, id: &Bound<'_, PyAny>) -> PyResult<bool> {
        let engine = self.engine(py)?;
        let s = scope(py, scope_name)?;
        let id = text_arg(py, id, "id")?;
        py.detach(move || engine.revive(s, &id)).map_err(|e| control_error(py, &e))
    }

    fn grant(
        &self,
        py: Python<'_>,
        approval_id: &Bound<'_, PyAny>,
        approver: &Bound<'_, PyAny>,
        ttl_seconds: &Bound<'_, PyAny>,
    ) -> PyResult<String> {
        let engine = self.engine(py)?;
        let approval_id = text_arg(py, approval_id, "approval_id")?;
        let approver = text_arg(py, approver, "approver")?;
        let ttl = match ttl_seconds.extract::<u64>() {
            Ok(t) if !ttl_seconds.is_instance_of::<PyBool>() && ttl_seconds.is_instance_of::<PyInt>() => t,
            _ => {
                let shown = ttl_seconds.repr().map(|r| r.to_string()).unwrap_or_else(|_| "?".into());
                return Err(arg_error(py, format!("ttl_seconds must be a whole number of seconds, not {shown}")));
            }
        };
        py.detach(move || engine.grant(&approval_id, &approver, ttl)).map_err(|e| control_error(py, &e))
    }

    /// The session's live marks at the engine's clock, sorted (§10).
    fn marks(&self, py: Python<'_>, session: &Bound<'_, PyAny>) -> PyResult<Vec<String>> {
        let engine = self.engine(py)?;
        let session = text_arg(py, session, "session")?;
        py.detach(move || engine.marks(&session)).map_err(|e| control_error(py, &e))
    }

    /// Forgets the session's marks; returns whether it had live ones.
    fn clear_marks(&self, py: Python<'_>, session: &Bound<'_, PyAny>) -> PyResult<bool> {
        let engine = self.engine(py)?;
        let session = text_arg(py, session, "session")?;
        py.detach(move || engine.clear_marks(&session)).map_err(|e| control_error(py, &e))
    }

    fn reload(&self, py: Python<'_>) -> PyResult<()> {
        let engine = self.engine(py)?;
        py.detach(move || engine.reload()).map_err(|e| policy_error(py, &e))
    }

    fn reload_yaml(&self, py: Python<'_>, text: &Bound<'_, PyAny>) -> PyResult<()> {
        let engine = self.engine(py)?;
        let text = yaml_text(py, text)?;
        py.detach(move || engine.reload_yaml(&text)).map_err(|e| policy_error(py, &e))
    }

    fn policy_hash(&self, py: Python<'_>) -> PyResult<String> {
        self.engine(py)?.policy_hash().map_err(|e| control_error(py, &e))
    }
}

/// The native module `aegis._aegis`.
#[pymodule]
fn _aegis(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<NativeEngine>()?;
    m.add_class::<PendingApproval>()?;
    m.add("CORE_VERSION", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
