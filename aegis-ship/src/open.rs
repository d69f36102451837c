//! Opening an engine from a configuration document (SPEC §17): the one path every
//! binding takes, so the options are read, the audit file opened, the callback sinks
//! added, the bundle loaded and the collector started in the same order — and fail with
//! the same [`ErrorInfo`] — in Python, Node, C and Go. With `state` a Redis URL, the
//! fleet state is connected here (`aegis-fleet`), once, before the bundle is loaded.
//!
//! ```
//! use aegis_core::{EngineConfig, Spelling, Value};
//! use aegis_ship::open::{open, Bundle};
//!
//! let config = EngineConfig::from_json(r#"{"request_max_bytes": 4096}"#, Spelling::Snake).unwrap();
//! let opened = open(Bundle::Yaml("aegis: 1\nrules: []\n"), &config, Vec::new()).unwrap();
//! assert_eq!(opened.engine.request_limits().max_bytes, 4096);
//! assert!(opened.collector.is_none());
//! ```

use crate::{Collector, CollectorConfig};
use aegis_core::{AuditSink, Engine, EngineConfig, ErrorCode, ErrorInfo};
use std::path::Path;

/// Where the bundle comes from.
#[derive(Clone, Copy, Debug)]
pub enum Bundle<'a> {
    /// A file or a folder (`from_path`).
    Path(&'a Path),
    /// One file's text, named `<yaml>` in load errors (`from_yaml`).
    Yaml(&'a str),
}

/// An engine and the collector shipping its audit file.
pub struct Opened {
    /// The engine.
    pub engine: Engine,
    /// The shipper, when `collector` was given.
    pub collector: Option<Collector>,
}

impl std::fmt::Debug for Opened {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Opened").field("collector", &self.collector).finish_non_exhaustive()
    }
}

/// Validates the collector settings, opens (and locks) the audit file, adds the
/// binding's `callbacks` after it, loads the bundle, then starts the collector.
///
/// `callbacks` must be non-empty exactly when the document was read with
/// `audit_callback` (the caller gave `audit` as a function): a binding that lost or
/// invented a callback is refused rather than left writing records nowhere.
pub fn open(
    bundle: Bundle<'_>,
    config: &EngineConfig,
    callbacks: Vec<Box<dyn AuditSink>>,
) -> Result<Opened, ErrorInfo> {
    if config.audit_callback == callbacks.is_empty() {
        return Err(ErrorInfo::new(
            ErrorCode::InvalidArgument,
            "the audit callback and the options disagree (a binding error: `audit_callback` must be set exactly when a callback sink is given)",
        ));
    }
    let collector = collector_config(config)?;
    let mut options = config.options().map_err(|e| ErrorInfo::from(&e))?;
    options.sinks.extend(callbacks);
    if let Some(st) = &config.state {
        // `state` is spelt the same in every language.
        let fleet = aegis_fleet::connect(st)
            .map_err(|e| ErrorInfo { field: "state".into(), ..ErrorInfo::new(ErrorCode::ConfigInvalid, e.0) })?;
        options.state = Some(fleet);
    }
    let engine = match bundle {
        Bundle::Path(p) => Engine::from_path(p, options),
        Bundle::Yaml(text) => Engine::from_yaml(text, options),
    }
    .map_err(|e| ErrorInfo::from(&e))?;
    Ok(Opened { engine, collector: collector.map(Collector::from_config) })
}

/// The validated collector settings of a document (`None` without `collector`), with
/// the error [`open`] gives: bindings that validate a document before opening (C's
/// `aegis_engine_options_set_json`) call this so the message is the same.
pub fn collector_config(config: &EngineConfig) -> Result<Option<CollectorConfig>, ErrorInfo> {
    let Some(doc) = &config.collector else { return Ok(None) };
    let field = config.spelling.spell("collector");
    let refuse =
        |message: String| ErrorInfo { field: field.clone(), ..ErrorInfo::new(ErrorCode::ConfigInvalid, message) };
    let Some(file) = &config.audit else { return Err(refuse(crate::collector::NEEDS_AUDIT_FILE.to_owned())) };
    CollectorConfig::from_json_spelled(file, &doc.to_canonical_json(), config.spelling).map(Some).map_err(refuse)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use aegis_core::Spelling;

    fn fail(json: &str, spelling: Spelling) -> ErrorInfo {
        let config = EngineConfig::from_json(json, spelling).unwrap();
        open(Bundle::Yaml("aegis: 1\nrules: []\n"), &config, Vec::new()).unwrap_err()
    }

    #[test]
    fn collector_messages_use_the_callers_spelling() {
        let dir = std::env::temp_dir().join(format!("aegis-open-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let audit = dir.join("a.jsonl");
        let audit = audit.to_str().unwrap();
        let e = fail(
            &format!(r#"{{"audit": "{audit}", "collector": {{"endpoint": "http://127.0.0.1:1", "batchAgeMs": 0}}}}"#),
            Spelling::Camel,
        );
        assert_eq!((e.code, e.field.as_str()), (ErrorCode::ConfigInvalid, "collector"));
        assert!(e.message.contains("`batchAgeMs` must be an integer from 1"), "{}", e.message);
        let e = fail(&format!(r#"{{"audit": "{audit}", "collector": {{"endpont": "x"}}}}"#), Spelling::Snake);
        assert!(e.message.contains("unknown option `endpont` (did you mean `endpoint`?)"), "{}", e.message);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn three_load_errors_are_three_locations() {
        let config = EngineConfig::new();
        let e = open(
            Bundle::Yaml(
                "aegis: 1\nrules:\n  - id: a\n    outcome: alow\n  - id: b\n    outcome: dney\n    colour: red\n",
            ),
            &config,
            Vec::new(),
        )
        .unwrap_err();
        assert_eq!(e.code, ErrorCode::PolicyInvalid);
        let at: Vec<(usize, usize)> = e.errors.iter().map(|l| (l.line, l.column)).collect();
        assert_eq!(at, vec![(4, 14), (6, 14), (7, 5)]);
    }

    #[test]
    fn a_callback_flag_without_a_callback_is_refused() {
        let config =
            EngineConfig::from_value_with(&aegis_core::Value::Object(Default::default()), Spelling::Snake, true)
                .unwrap();
        let e = open(Bundle::Yaml("aegis: 1\nrules: []\n"), &config, Vec::new()).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidArgument);
    }
}
