//! Stable error codes and the one detailed error shape every non-Rust caller gets
//! (SPEC §17): Python exceptions, JS errors, C's `aegis_last_error_json()` and Go's
//! `*aegis.Error` are all made from an [`ErrorInfo`].

use crate::engine::{ControlError, EvalError};
use crate::json::write_string;
use crate::key::ConfigError;
use crate::policy::LoadErrors;
use crate::request::RequestError;

/// Every error's stable code. The strings never change; docs/errors.md maps each to
/// its C status number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// The bundle did not load (`errors` lists every problem with its location).
    PolicyInvalid,
    /// The request breaks §1: nothing was decided or recorded.
    RequestInvalid,
    /// An engine option was refused.
    ConfigInvalid,
    /// A bad argument: a kill scope, a grant argument, a NULL or non-UTF-8 argument
    /// over the C ABI, a closed engine.
    InvalidArgument,
    /// An audit sink failed: no decision without its record.
    AuditFailed,
    /// Shared state could not be reached (§11).
    StateUnavailable,
    /// An approval could not be used (§12).
    ApprovalInvalid,
    /// The collector could not deliver in time.
    CollectorFailed,
    /// Another file-system error.
    Io,
    /// A guarded tool call was denied.
    Denied,
    /// A guarded tool call needs an approval.
    ApprovalRequired,
    /// An approver rejected the call (or the handler refused to approve).
    ApprovalRejected,
}

impl ErrorCode {
    /// Every code, in the order of the spec.
    pub const ALL: [ErrorCode; 12] = [
        ErrorCode::PolicyInvalid,
        ErrorCode::RequestInvalid,
        ErrorCode::ConfigInvalid,
        ErrorCode::InvalidArgument,
        ErrorCode::AuditFailed,
        ErrorCode::StateUnavailable,
        ErrorCode::ApprovalInvalid,
        ErrorCode::CollectorFailed,
        ErrorCode::Io,
        ErrorCode::Denied,
        ErrorCode::ApprovalRequired,
        ErrorCode::ApprovalRejected,
    ];

    /// The code as every binding spells it (`request_invalid`).
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::PolicyInvalid => "policy_invalid",
            ErrorCode::RequestInvalid => "request_invalid",
            ErrorCode::ConfigInvalid => "config_invalid",
            ErrorCode::InvalidArgument => "invalid_argument",
            ErrorCode::AuditFailed => "audit_failed",
            ErrorCode::StateUnavailable => "state_unavailable",
            ErrorCode::ApprovalInvalid => "approval_invalid",
            ErrorCode::CollectorFailed => "collector_failed",
            ErrorCode::Io => "io",
            ErrorCode::Denied => "denied",
            ErrorCode::ApprovalRequired => "approval_required",
            ErrorCode::ApprovalRejected => "approval_rejected",
        }
    }

    /// The code named `s`.
    pub fn parse(s: &str) -> Option<ErrorCode> {
        ErrorCode::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One problem of a bundle, for callers outside Rust.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ErrorLocation {
    /// The file (`<yaml>` for text).
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// What is wrong.
    pub message: String,
    /// A likely fix.
    pub help: Option<String>,
}

/// An error as every binding reports it: a code, a message, the option or request
/// field at fault (empty when none), and for `policy_invalid` every load error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ErrorInfo {
    /// The stable code.
    pub code: ErrorCode,
    /// What went wrong, for people.
    pub message: String,
    /// The request field or option at fault (`""` when the whole input is).
    pub field: String,
    /// The load errors (`policy_invalid` only).
    pub errors: Vec<ErrorLocation>,
}

impl ErrorInfo {
    /// An error with no field and no load errors.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> ErrorInfo {
        ErrorInfo { code, message: message.into(), field: String::new(), errors: Vec::new() }
    }

    /// The canonical JSON object `{"code","errors":[{"column","file","help","line",
    /// "message"}],"field","message"}` (`help` omitted when there is none).
    pub fn to_json(&self) -> String {
        let mut o = String::with_capacity(96 + self.message.len());
        o.push_str("{\"code\":");
        write_string(&mut o, self.code.as_str());
        o.push_str(",\"errors\":[");
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                o.push(',');
            }
            o.push_str("{\"column\":");
            crate::json::push_u64(&mut o, e.column as u64);
            o.push_str(",\"file\":");
            write_string(&mut o, &e.file);
            if let Some(h) = &e.help {
                o.push_str(",\"help\":");
                write_string(&mut o, h);
            }
            o.push_str(",\"line\":");
            crate::json::push_u64(&mut o, e.line as u64);
            o.push_str(",\"message\":");
            write_string(&mut o, &e.message);
            o.push('}');
        }
        o.push_str("],\"field\":");
        write_string(&mut o, &self.field);
        o.push_str(",\"message\":");
        write_string(&mut o, &self.message);
        o.push('}');
        o
    }
}

impl From<&RequestError> for ErrorInfo {
    fn from(e: &RequestError) -> ErrorInfo {
        ErrorInfo { field: e.field.clone(), ..ErrorInfo::new(ErrorCode::RequestInvalid, e.to_string()) }
    }
}

impl From<&ConfigError> for ErrorInfo {
    fn from(e: &ConfigError) -> ErrorInfo {
        ErrorInfo { field: e.field.clone(), ..ErrorInfo::new(ErrorCode::ConfigInvalid, e.message.clone()) }
    }
}

impl From<&ControlError> for ErrorInfo {
    fn from(e: &ControlError) -> ErrorInfo {
        let code = match e.1 {
            _ if e.is_reentry() => ErrorCode::AuditFailed,
            crate::engine::ControlFault::StateUnavailable => ErrorCode::StateUnavailable,
            crate::engine::ControlFault::Argument => ErrorCode::InvalidArgument,
        };
        ErrorInfo::new(code, e.to_string())
    }
}

impl From<&crate::audit::AuditError> for ErrorInfo {
    fn from(e: &crate::audit::AuditError) -> ErrorInfo {
        ErrorInfo::new(ErrorCode::AuditFailed, e.to_string())
    }
}

impl From<&EvalError> for ErrorInfo {
    fn from(e: &EvalError) -> ErrorInfo {
        match e {
            EvalError::Request(r) => r.into(),
            EvalError::Audit(a) => a.into(),
            // §17's list of codes has none for a bug; a broken invariant is reported as
            // `audit_failed` because its effect is the same: no decision without a
            // record, the tool must not run (docs/errors.md).
            EvalError::Invariant(_) => ErrorInfo::new(ErrorCode::AuditFailed, e.to_string()),
        }
    }
}

impl From<&LoadErrors> for ErrorInfo {
    fn from(e: &LoadErrors) -> ErrorInfo {
        if e.is_reentry() {
            return ErrorInfo::new(ErrorCode::AuditFailed, crate::engine::REENTRY_MESSAGE);
        }
        let n = e.0.len();
        let message = match e.0.first() {
            Some(first) if n == 1 => first.to_string(),
            Some(first) => format!("{first} (and {} more)", n - 1),
            None => "the bundle did not load".to_owned(),
        };
        ErrorInfo {
            errors: e
                .0
                .iter()
                .map(|l| ErrorLocation {
                    file: l.loc.file.to_string(),
                    line: l.loc.line,
                    column: l.loc.column,
                    message: l.message.clone(),
                    help: l.help.clone(),
                })
                .collect(),
            ..ErrorInfo::new(ErrorCode::PolicyInvalid, message)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip() {
        for c in ErrorCode::ALL {
            assert_eq!(ErrorCode::parse(c.as_str()), Some(c));
        }
    }

    #[test]
    fn load_errors_keep_their_locations() {
        let errs = match crate::Engine::from_yaml(
            "aegis: 1\nrules:\n  - id: a\n    outcome: alow\n    colour: red\n",
            Default::default(),
        ) {
            Err(e) => e,
            Ok(_) => panic!("loaded"),
        };
        let info = ErrorInfo::from(&errs);
        assert_eq!(info.code, ErrorCode::PolicyInvalid);
        assert_eq!(info.errors.len(), 2);
        assert_eq!((info.errors[0].line, info.errors[0].column), (4, 14));
        let json = info.to_json();
        let v = crate::json::parse(&json, 8).unwrap();
        assert_eq!(v.to_canonical_json(), json, "the shape is canonical JSON");
        assert!(json.starts_with(r#"{"code":"policy_invalid","errors":[{"column":14,"file":"<yaml>","help":"did you mean \"allow\"?","line":4,"#), "{json}");
    }
}
