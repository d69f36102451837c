//! # aegis-core
//!
//! The Aegis policy-decision engine: loads YAML policy bundles, compiles them into an
//! index over agent → tool → action, and decides tool calls as `allow`, `deny` or
//! `require_approval` — never failing open — with a hash-chained audit record for
//! every decision.
//!
//! ```
//! use aegis_core::{Engine, EngineOptions, Request, RequestLimits, Outcome};
//!
//! let engine = Engine::from_yaml(r#"
//! aegis: 1
//! rules:
//!   - id: small-payments
//!     match: {agent: "finance-*", tool: payments}
//!     when: {params.amount: {lte: 5000}}
//!     outcome: allow
//! "#, EngineOptions::default()).expect("valid bundle");
//!
//! let req = Request::from_json(
//!     r#"{"agent":"finance-bot","tool":"payments","params":{"amount":100},"time":"2026-01-05T10:00:00Z"}"#,
//!     &RequestLimits::default(),
//! ).expect("valid request");
//! let decision = engine.evaluate(&req).expect("recorded");
//! assert_eq!(decision.outcome, Outcome::Allow);
//! assert_eq!(decision.rules, vec!["small-payments".to_string()]);
//! ```
#![forbid(unsafe_code)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing))]

// The public modules: what bindings, the CLI and tools build on.
pub mod audit;
pub mod config;
pub mod error;
pub mod json;
pub mod policy;
pub mod request;
pub mod suggest;
pub mod time;
pub mod value;
pub mod yaml;

// The engine's insides: reached through the re-exports below.
mod compile;
mod engine;
mod eval;
mod key;
mod map;

pub use audit::{AuditError, AuditRecord, AuditSink, CallbackSink, FileSink, Fsync, MemorySink};
pub use config::{EngineConfig, Spelling, StateConfig};
pub use engine::{
    issue_grant, parse_ttl, state, Approval, ControlError, ControlFault, Decision, DecisionError, DecisionKey, Engine,
    EngineOptions, EvalError, EvalOptions, ExplainEntry, Grant, GrantRejection, KillScope, REENTRY_MESSAGE,
};
pub use eval::{FailedTest, Tri};

/// Not part of the API: the compiled index and the rule evaluator, for the benchmarks
/// (`benches/`, which time the rule loop on its own) and the fuzz targets. No semver
/// promise; bindings must not use it.
#[doc(hidden)]
pub mod internals {
    pub use crate::compile::{Index, Proven};
    pub use crate::engine::Compiled;
    pub use crate::eval::{eval_rule_proven, Ctx, MarksSeen, Sink};
}
pub use error::{ErrorCode, ErrorInfo, ErrorLocation};
pub use key::{ConfigError, Key, KeyId};
pub use policy::{LoadError, LoadErrors, Outcome};
pub use request::{Request, RequestError, RequestLimits};
pub use value::{Map, Value, ValuePath};
