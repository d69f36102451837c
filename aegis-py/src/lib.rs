//! # aegis-py
//!
//! The native half of the Python package `aegis-policy` (`import aegis`): the private
//! module `aegis._aegis`. It holds an [`aegis_core::Engine`], converts Python objects
//! straight into [`aegis_core::Value`] trees (no JSON text round trip), releases the GIL
//! while the core evaluates and raises the exceptions defined in `aegis/_errors.py`.
//!
//! The public, typed API (`Engine`, `Decision`, `Outcome`, `secure_tool`…) lives in
//! the pure-Python package around this module.

use std::cell::Cell;
use std::sync::Arc;

use aegis_core::{
    CallbackSink, EngineOptions, EvalError, FileSink, Fsync, KillScope, LoadErrors, Map, Request, RequestError, Value,
};
use aegis_ship::collector::{Collector, CollectorConfig, NEEDS_AUDIT_FILE};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};

thread_local! {
    /// Set while this thread runs a Python audit callback (under the engine's chain
    /// lock): evaluating on the same engine from there would deadlock.
    static IN_CALLBACK: Cell<bool> = const { Cell::new(false) };
}

/// Nesting allowed inside `params` / `context` (`params` itself is depth 1).
const MAX_DEPTH: usize = 64;

/// Instantiates `aegis._errors.NAME(*args)` as a `PyErr`.
fn py_error<'py, A>(py: Python<'py>, name: &str, args: A) -> PyErr
where
    A: pyo3::call::PyCallArgs<'py>,
{
    let made = (|| -> PyResult<PyErr> {
        let cls = py.import("aegis._errors")?.getattr(name)?;
        let exc = cls.call1(args)?;
        Ok(PyErr::from_value(exc))
    })();
    match made {
        Ok(e) | Err(e) => e,
    }
}

fn aegis_error(py: Python<'_>, message: String) -> PyErr {
    py_error(py, "AegisError", (message,))
}

fn request_error(py: Python<'_>, e: &RequestError) -> PyErr {
    py_error(py, "RequestError", (e.to_string(), e.field.clone()))
}

fn policy_error(py: Python<'_>, e: &LoadErrors) -> PyErr {
    let items: Vec<(String, usize, usize, String, Option<String>)> =
        e.0.iter()
            .map(|x| (x.loc.file.to_string(), x.loc.line, x.loc.column, x.message.clone(), x.help.clone()))
            .collect();
    py_error(py, "PolicyError", (e.to_string(), items))
}

fn eval_error(py: Python<'_>, e: &EvalError) -> PyErr {
    match e {
        EvalError::Request(r) => request_error(py, r),
        EvalError::Audit(a) => aegis_error(py, a.to_string()),
    }
}

/// A conversion failure: (top-level field, message).
type ConvError = (String, String);

use aegis_core::ValuePath as Path;

fn conv_err(path: &Path<'_>, what: impl std::fmt::Display) -> ConvError {
    let mut p = String::new();
    path.render(&mut p);
    (path.field().to_owned(), format!("invalid request: `{p}`: {what}"))
}

/// Converts a Python object into a [`Value`]. `depth` is the nesting of `obj` (a
/// top-level request field is depth 1); containers deeper than `MAX_DEPTH + 1` are
/// rejected, which also catches cyclic structures.
fn to_value(obj: &Bound<'_, PyAny>, path: &Path<'_>, depth: usize) -> Result<Value, ConvError> {
    if obj.is_none() {
        return Ok(Value::Null);
    }
    // Exact str first (the commonest leaf), then bool before int: Python's bool is an int
    // subclass, but not a number here.
    if let Ok(s) = obj.cast_exact::<PyString>() {
        let s = s.to_cow().map_err(|_| conv_err(path, "string is not valid UTF-8 (lone surrogate)"))?;
        return Ok(Value::String(s.into_owned()));
    }
    if obj.is_instance_of::<PyBool>() {
        return Ok(Value::Bool(obj.is_truthy().map_err(|e| conv_err(path, e))?));
    }
    if obj.is_instance_of::<PyInt>() {
        if let Ok(i) = obj.extract::<i64>() {
            return Ok(Value::Number(i as f64));
        }
        if let Ok(u) = obj.extract::<u64>() {
            return Ok(Value::Number(u as f64));
        }
        return Err(conv_err(path, "integer out of the 64-bit range"));
    }
    if let Ok(f) = obj.cast::<PyFloat>() {
        let v = f.value();
        if !v.is_finite() {
            return Err(conv_err(path, format!("number {v} is not finite")));
        }
        return Ok(Value::Number(v));
    }
    if let Ok(s) = obj.cast::<PyString>() {
        let s = s.to_cow().map_err(|_| conv_err(path, "string is not valid UTF-8 (lone surrogate)"))?;
        return Ok(Value::String(s.into_owned()));
    }
    let container = obj.is_instance_of::<PyDict>() || obj.is_instance_of::<PyList>() || obj.is_instance_of::<PyTuple>();
    if container && depth > MAX_DEPTH + 1 {
        return Err(conv_err(path, format!("nesting deeper than {MAX_DEPTH} levels (or a cyclic structure)")));
    }
    if let Ok(d) = obj.cast::<PyDict>() {
        let mut map = Map::new();
        for (k, v) in d.iter() {
            let Ok(ks) = k.cast::<PyString>() else {
                let tn = k.get_type().name().map(|n| n.to_string()).unwrap_or_else(|_| "?".into());
                return Err(conv_err(path, format!("object keys must be str, found {tn}")));
            };
            let key = ks.to_cow().map_err(|_| conv_err(path, "key is not valid UTF-8 (lone surrogate)"))?;
            let val = to_value(&v, &Path::Key(path, &key), depth + 1)?;
            map.insert(key.into_owned(), val);
        }
        return Ok(Value::Object(map));
    }
    if obj.is_instance_of::<PyList>() || obj.is_instance_of::<PyTuple>() {
        let mut out = Vec::new();
        let len = obj.len().map_err(|e| conv_err(path, e))?;
        out.reserve(len.min(1 << 16));
        for (i, item) in obj.try_iter().map_err(|e| conv_err(path, e))?.enumerate() {
            let item = item.map_err(|e| conv_err(path, e))?;
            out.push(to_value(&item, &Path::Index(path, i), depth + 1)?);
        }
        return Ok(Value::Array(out));
    }
    let tn = obj.get_type().name().map(|n| n.to_string()).unwrap_or_else(|_| "?".into());
    Err(conv_err(
        path,
        format!("values of type {tn} are not allowed (use dict, list, tuple, str, int, float, bool or None)"),
    ))
}

/// Builds a validated [`Request`] from a Python dict.
fn request_from_py(py: Python<'_>, obj: &Bound<'_, PyAny>, engine: &aegis_core::Engine) -> PyResult<Request> {
    if !obj.is_instance_of::<PyDict>() {
        let tn = obj.get_type().name().map(|n| n.to_string()).unwrap_or_else(|_| "?".into());
        return Err(request_error(py, &RequestError::new("", format!("a request is a dict, found {tn}"))));
    }
    let v = to_value(obj, &Path::Root, 0).map_err(|(f, m)| py_error(py, "RequestError", (m, f)))?;
    Request::from_value(v, engine.request_limits()).map_err(|e| request_error(py, &e))
}

fn key_bytes(obj: Option<&Bound<'_, PyAny>>, name: &str) -> PyResult<Option<Vec<u8>>> {
    let Some(obj) = obj else { return Ok(None) };
    if obj.is_none() {
        return Ok(None);
    }
    if let Ok(s) = obj.cast::<PyString>() {
        return Ok(Some(s.to_cow()?.as_bytes().to_vec()));
    }
    match obj.extract::<Vec<u8>>() {
        Ok(b) if !obj.is_instance_of::<PyList>() => Ok(Some(b)),
        _ => Err(PyValueError::new_err(format!("`{name}` must be bytes or str"))),
    }
}

/// The native engine (`aegis._aegis.NativeEngine`); wrapped by `aegis.Engine`.
#[pyclass(frozen, module = "aegis._aegis")]
struct NativeEngine {
    inner: Arc<aegis_core::Engine>,
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

/// The validated collector configuration for `collector` (JSON text) and the engine's
/// audit file, checked before anything is opened.
fn collector_config(
    collector: Option<&str>,
    audit_file: Option<&std::path::Path>,
) -> PyResult<Option<CollectorConfig>> {
    let Some(json) = collector else { return Ok(None) };
    let Some(file) = audit_file else { return Err(PyValueError::new_err(NEEDS_AUDIT_FILE)) };
    CollectorConfig::from_json(file, json).map(Some).map_err(PyValueError::new_err)
}

/// The audit file path of the `audit` option, if it is a path (not a callable).
fn audit_path(py: Python<'_>, audit: Option<&Bound<'_, PyAny>>) -> PyResult<Option<std::path::PathBuf>> {
    match audit {
        Some(a) if !a.is_none() && (!a.is_callable() || a.is_instance_of::<PyString>()) => {
            Ok(Some(py.import("os")?.call_method1("fspath", (a,))?.extract()?))
        }
        _ => Ok(None),
    }
}

fn collector_error(py: Python<'_>, e: &aegis_ship::ShipError) -> PyErr {
    aegis_error(py, e.to_string())
}

fn timeout(t: f64) -> PyResult<std::time::Duration> {
    if !(0.0..=3600.0).contains(&t) {
        return Err(PyValueError::new_err(format!("timeout must be from 0 to 3600 seconds, not {t}")));
    }
    std::time::Duration::try_from_secs_f64(t).map_err(|e| PyValueError::new_err(format!("timeout: {e}")))
}

fn build_options(
    py: Python<'_>,
    audit: Option<&Bound<'_, PyAny>>,
    fsync: &str,
    approval_key: Option<&Bound<'_, PyAny>>,
    signing_key: Option<&Bound<'_, PyAny>>,
    signing_key_id: Option<String>,
) -> PyResult<EngineOptions> {
    let mut opts = EngineOptions {
        approval_key: key_bytes(approval_key, "approval_key")?,
        signing_key: key_bytes(signing_key, "signing_key")?,
        signing_key_id,
        ..EngineOptions::default()
    };
    let fs = Fsync::parse(fsync).ok_or_else(|| {
        PyValueError::new_err(format!("fsync must be \"always\", \"batch\" or \"never\", not {fsync:?}"))
    })?;
    if let Some(a) = audit {
        if a.is_none() {
        } else if a.is_callable() && !a.is_instance_of::<PyString>() {
            let cb: Py<PyAny> = a.clone().unbind();
            let sink = CallbackSink(move |rec: &aegis_core::AuditRecord, _line: &str| -> Result<(), String> {
                Python::attach(|py| {
                    IN_CALLBACK.with(|c| c.set(true));
                    let r = (|| -> PyResult<()> {
                        let d = audit_dict(py, rec)?;
                        cb.bind(py).call1((d,))?;
                        Ok(())
                    })();
                    IN_CALLBACK.with(|c| c.set(false));
                    r.map_err(|e| e.to_string())
                })
            });
            opts.sinks.push(Box::new(sink));
        } else {
            let path: std::path::PathBuf = py.import("os")?.call_method1("fspath", (a,))?.extract()?;
            let sink = py.detach(|| FileSink::open(&path, fs)).map_err(|e| aegis_error(py, e.to_string()))?;
            opts.sinks.push(Box::new(sink));
        }
    }
    Ok(opts)
}

fn scope(s: &str) -> PyResult<KillScope> {
    KillScope::parse(s)
        .ok_or_else(|| PyValueError::new_err(format!("scope must be agent, tool, session or all, not {s:?}")))
}

fn check_not_in_callback(py: Python<'_>) -> PyResult<()> {
    if IN_CALLBACK.with(|c| c.get()) {
        return Err(aegis_error(py, "cannot evaluate from inside an audit callback (it would deadlock)".into()));
    }
    Ok(())
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
/// same key order, same value types), built from its fields without JSON text.
fn audit_dict<'py>(py: Python<'py>, r: &aegis_core::AuditRecord) -> PyResult<Bound<'py, PyDict>> {
    use pyo3::intern;
    let d = PyDict::new(py);
    // Canonical (RFC 8785) key order, as in the record's JSON line.
    if let Some(a) = &r.action {
        d.set_item(intern!(py, "action"), a)?;
    }
    d.set_item(intern!(py, "agent"), &r.agent)?;
    if let Some(a) = &r.approval_id {
        d.set_item(intern!(py, "approval_id"), a)?;
    }
    if let Some(a) = &r.approved_by {
        d.set_item(intern!(py, "approved_by"), a)?;
    }
    if !r.chain.is_empty() {
        d.set_item(intern!(py, "chain"), &r.chain)?;
    }
    if let Some(e) = &r.environment {
        d.set_item(intern!(py, "environment"), e)?;
    }
    if r.errors > 0 {
        d.set_item(intern!(py, "errors"), r.errors)?;
    }
    d.set_item(intern!(py, "hash"), &r.hash)?;
    if let Some(k) = &r.kid {
        d.set_item(intern!(py, "kid"), k)?;
    }
    if !r.limits.is_empty() {
        let list = PyList::empty(py);
        for l in &r.limits {
            let ld = PyDict::new(py);
            ld.set_item(intern!(py, "calls"), l.calls)?;
            ld.set_item(intern!(py, "id"), &l.id)?;
            if let Some(sum) = l.sum {
                ld.set_item(intern!(py, "sum"), number(py, sum)?)?;
            }
            list.append(ld)?;
        }
        d.set_item(intern!(py, "limits"), list)?;
    }
    d.set_item(intern!(py, "outcome"), r.outcome.map_or("deny", aegis_core::Outcome::as_str))?;
    d.set_item(intern!(py, "params_sha256"), &r.params_sha256)?;
    d.set_item(intern!(py, "policy"), &r.policy)?;
    d.set_item(intern!(py, "prev"), &r.prev)?;
    d.set_item(intern!(py, "reason"), &r.reason)?;
    d.set_item(intern!(py, "rules"), &r.rules)?;
    d.set_item(intern!(py, "seq"), r.seq)?;
    if let Some(x) = &r.session {
        d.set_item(intern!(py, "session"), x)?;
    }
    if let Some(x) = &r.sig {
        d.set_item(intern!(py, "sig"), x)?;
    }
    d.set_item(intern!(py, "time"), &r.time)?;
    d.set_item(intern!(py, "tool"), &r.tool)?;
    d.set_item(intern!(py, "v"), 1)?;
    Ok(d)
}

#[pymethods]
impl NativeEngine {
    #[staticmethod]
    #[pyo3(signature = (path, audit=None, fsync="always", approval_key=None, signing_key=None, signing_key_id=None, collector=None))]
    #[allow(clippy::too_many_arguments)]
    fn from_path(
        py: Python<'_>,
        path: std::path::PathBuf,
        audit: Option<&Bound<'_, PyAny>>,
        fsync: &str,
        approval_key: Option<&Bound<'_, PyAny>>,
        signing_key: Option<&Bound<'_, PyAny>>,
        signing_key_id: Option<String>,
        collector: Option<&str>,
    ) -> PyResult<Self> {
        let cfg = collector_config(collector, audit_path(py, audit)?.as_deref())?;
        let opts = build_options(py, audit, fsync, approval_key, signing_key, signing_key_id)?;
        let e = py.detach(|| aegis_core::Engine::from_path(path, opts)).map_err(|e| policy_error(py, &e))?;
        Ok(NativeEngine { inner: Arc::new(e), collector: cfg.map(|c| Arc::new(Collector::from_config(c))) })
    }

    #[staticmethod]
    #[pyo3(signature = (text, audit=None, fsync="always", approval_key=None, signing_key=None, signing_key_id=None, collector=None))]
    #[allow(clippy::too_many_arguments)]
    fn from_yaml(
        py: Python<'_>,
        text: &str,
        audit: Option<&Bound<'_, PyAny>>,
        fsync: &str,
        approval_key: Option<&Bound<'_, PyAny>>,
        signing_key: Option<&Bound<'_, PyAny>>,
        signing_key_id: Option<String>,
        collector: Option<&str>,
    ) -> PyResult<Self> {
        let cfg = collector_config(collector, audit_path(py, audit)?.as_deref())?;
        let opts = build_options(py, audit, fsync, approval_key, signing_key, signing_key_id)?;
        let text = text.to_owned();
        let e = py.detach(move || aegis_core::Engine::from_yaml(&text, opts)).map_err(|e| policy_error(py, &e))?;
        Ok(NativeEngine { inner: Arc::new(e), collector: cfg.map(|c| Arc::new(Collector::from_config(c))) })
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
        let t = timeout(timeout_seconds)?;
        py.detach(move || c.flush(t)).map_err(|e| collector_error(py, &e))
    }

    /// Stops the collector with a final attempt (without the GIL); returns the final
    /// metrics as JSON, or raises `AegisError` if the attempt left records undelivered.
    #[pyo3(signature = (timeout_seconds=None))]
    fn collector_close(&self, py: Python<'_>, timeout_seconds: Option<f64>) -> PyResult<Option<String>> {
        let Some(c) = self.collector.clone() else { return Ok(None) };
        let t = timeout_seconds.map(timeout).transpose()?;
        let (m, r) = py.detach(move || c.close(t));
        r.map_err(|e| collector_error(py, &e))?;
        Ok(Some(aegis_ship::collector::metrics_json(&m)))
    }

    /// Evaluates a request dict; returns the raw decision tuple.
    fn evaluate<'py>(&self, py: Python<'py>, request: &Bound<'py, PyAny>) -> PyResult<RawDecision<'py>> {
        check_not_in_callback(py)?;
        let req = request_from_py(py, request, &self.inner)?;
        let engine = Arc::clone(&self.inner);
        let d = py.detach(move || engine.evaluate(&req)).map_err(|e| eval_error(py, &e))?;
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

    /// Evaluates request JSON text; returns the decision line (canonical JSON).
    fn evaluate_json(&self, py: Python<'_>, request_json: &str) -> PyResult<String> {
        check_not_in_callback(py)?;
        let text = request_json.to_owned();
        let engine = Arc::clone(&self.inner);
        py.detach(move || engine.evaluate_json(&text)).map_err(|e| eval_error(py, &e))
    }

    #[pyo3(signature = (scope_name, id, reason=""))]
    fn kill(&self, py: Python<'_>, scope_name: &str, id: &str, reason: &str) -> PyResult<()> {
        let s = scope(scope_name)?;
        self.inner.kill(s, id, reason).map_err(|e| aegis_error(py, e.to_string()))
    }

    fn revive(&self, py: Python<'_>, scope_name: &str, id: &str) -> PyResult<bool> {
        let s = scope(scope_name)?;
        self.inner.revive(s, id).map_err(|e| aegis_error(py, e.to_string()))
    }

    fn grant(&self, py: Python<'_>, approval_id: &str, approver: &str, ttl_seconds: u64) -> PyResult<String> {
        self.inner.grant(approval_id, approver, ttl_seconds).map_err(|e| aegis_error(py, e.to_string()))
    }

    fn reload(&self, py: Python<'_>) -> PyResult<()> {
        let engine = Arc::clone(&self.inner);
        py.detach(move || engine.reload()).map_err(|e| policy_error(py, &e))
    }

    fn reload_yaml(&self, py: Python<'_>, text: &str) -> PyResult<()> {
        let engine = Arc::clone(&self.inner);
        let text = text.to_owned();
        py.detach(move || engine.reload_yaml(&text)).map_err(|e| policy_error(py, &e))
    }

    fn policy_hash(&self) -> String {
        self.inner.policy_hash()
    }
}

/// The native module `aegis._aegis`.
#[pymodule]
fn _aegis(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<NativeEngine>()?;
    m.add("CORE_VERSION", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
