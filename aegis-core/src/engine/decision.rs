//! The decision (§4) and its canonical JSON, written from one sorted table of keys.

use crate::audit::AuditRecord;
use crate::eval::{FailedTest, Tri};
use crate::json::{write_string, write_value, ObjectWriter};
use crate::policy::Outcome;
use crate::value::{Map, Value};

/// A condition error listed in a decision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecisionError {
    /// The rule whose test failed (`limit:ID` for a limit).
    pub rule: String,
    /// The path tested, as written (the field, for a selector).
    pub path: String,
    /// What went wrong (the message catalogue of the vectors' README).
    pub message: String,
}

/// The approval request of a `require_approval` decision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Approval {
    /// `apr_` + 32 hex: what a grant must name (see [`Engine::approval_id`](crate::Engine::approval_id)).
    pub id: String,
    /// Who may approve: the determining rules' approvers, in order, without repeats.
    pub approvers: Vec<String>,
}

/// One candidate rule in an explain trace.
#[derive(Clone, Debug, PartialEq)]
pub struct ExplainEntry {
    /// The candidate's id.
    pub rule: String,
    /// The outcome it decides when it applies.
    pub outcome: Outcome,
    /// Whether it applied (an erroring rule applies unless it allows: fail closed).
    pub applied: bool,
    /// `true`, `false` or `error`.
    pub result: Tri,
    /// Tests that did not hold.
    pub failed: Vec<FailedTest>,
    /// The session's live marks the rule saw (rules that test `session.marks`, when
    /// the marks were known).
    pub marks: Option<Vec<String>>,
}

/// A decision (§4).
#[derive(Clone, Debug, PartialEq)]
pub struct Decision {
    /// Whether the call may run, waits for an approver, or must not run.
    pub outcome: Outcome,
    /// The determining rules: rules in bundle order, then limits (`limit:ID`); or
    /// `default`, or `kill:SCOPE:ID`.
    pub rules: Vec<String>,
    /// Why, for people (the message catalogue of the vectors' README).
    pub reason: String,
    /// Present only for `require_approval`.
    pub approval: Option<Approval>,
    /// Condition errors, in bundle order.
    pub errors: Vec<DecisionError>,
    /// The sealed audit record of this decision.
    pub audit: AuditRecord,
    /// The explain trace, when asked for.
    pub explain: Option<Vec<ExplainEntry>>,
}

/// A key of a decision's JSON. [`DecisionKey::ALL`] is the table
/// [`Decision::to_json`] walks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecisionKey {
    /// `approval` (only for `require_approval`).
    Approval,
    /// `audit`: the sealed record.
    Audit,
    /// `errors` (always present, maybe empty).
    Errors,
    /// `explain` (only when asked for).
    Explain,
    /// `outcome`: `allow`, `deny` or `require_approval`.
    Outcome,
    /// `reason`: why, for people.
    Reason,
    /// `rules`: the determining rules.
    Rules,
}

impl DecisionKey {
    /// Every key, in canonical (RFC 8785) order — asserted by a test.
    pub const ALL: [DecisionKey; 7] = [
        DecisionKey::Approval,
        DecisionKey::Audit,
        DecisionKey::Errors,
        DecisionKey::Explain,
        DecisionKey::Outcome,
        DecisionKey::Reason,
        DecisionKey::Rules,
    ];

    /// The key as written.
    pub const fn name(self) -> &'static str {
        match self {
            DecisionKey::Approval => "approval",
            DecisionKey::Audit => "audit",
            DecisionKey::Errors => "errors",
            DecisionKey::Explain => "explain",
            DecisionKey::Outcome => "outcome",
            DecisionKey::Reason => "reason",
            DecisionKey::Rules => "rules",
        }
    }
}

impl Decision {
    /// A deny with nothing decided yet: what evaluation starts from, so that any
    /// path that forgets to decide denies.
    pub(crate) fn undecided() -> Decision {
        Decision {
            outcome: Outcome::Deny,
            rules: Vec::new(),
            reason: String::new(),
            approval: None,
            errors: Vec::new(),
            audit: AuditRecord::default(),
            explain: None,
        }
    }

    /// Whether the call may run.
    pub fn allowed(&self) -> bool {
        self.outcome == Outcome::Allow
    }

    /// Writes the value of `key` into `w`, unless the decision leaves it out.
    fn write_member(&self, key: DecisionKey, w: &mut ObjectWriter<'_>) {
        match key {
            DecisionKey::Approval => {
                if let Some(a) = &self.approval {
                    let mut o = ObjectWriter::new(w.key(key.name()));
                    o.str_list("approvers", &a.approvers);
                    o.string("id", &a.id);
                    o.finish();
                }
            }
            DecisionKey::Audit => self.audit.write_json(w.key(key.name()), true),
            DecisionKey::Errors => {
                let out = w.key(key.name());
                out.push('[');
                for (i, e) in self.errors.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    let mut o = ObjectWriter::new(out);
                    o.string("message", &e.message);
                    o.string("path", &e.path);
                    o.string("rule", &e.rule);
                    o.finish();
                }
                out.push(']');
            }
            DecisionKey::Explain => {
                if let Some(ex) = &self.explain {
                    write_value(w.key(key.name()), &explain_value(ex));
                }
            }
            DecisionKey::Outcome => write_string(w.key(key.name()), self.outcome.as_str()),
            DecisionKey::Reason => w.string(key.name(), &self.reason),
            DecisionKey::Rules => w.str_list(key.name(), &self.rules),
        }
    }

    /// The decision as one line of canonical JSON.
    pub fn to_json(&self) -> String {
        let mut o = String::with_capacity(1024);
        let mut w = ObjectWriter::new(&mut o);
        for key in DecisionKey::ALL {
            self.write_member(key, &mut w);
        }
        w.finish();
        o
    }
}

fn tri_str(t: Tri) -> &'static str {
    match t {
        Tri::True => "true",
        Tri::False => "false",
        Tri::Error => "error",
    }
}

/// The explain trace as data (written by the canonical writer, keys sorted by the
/// map).
fn explain_value(ex: &[ExplainEntry]) -> Value {
    Value::Array(
        ex.iter()
            .map(|e| {
                let mut m = Map::new();
                m.insert("rule".into(), Value::from(e.rule.as_str()));
                m.insert("outcome".into(), Value::from(e.outcome.as_str()));
                m.insert("applied".into(), Value::Bool(e.applied));
                m.insert("result".into(), Value::from(tri_str(e.result)));
                let failed = e
                    .failed
                    .iter()
                    .map(|f| {
                        let mut t = Map::new();
                        t.insert("path".into(), Value::from(f.path.as_str()));
                        t.insert("op".into(), Value::from(f.op.as_str()));
                        t.insert("operand".into(), f.operand.clone());
                        if let Some(v) = &f.value {
                            t.insert("value".into(), v.clone());
                        }
                        t.insert("result".into(), Value::from(tri_str(f.result)));
                        Value::Object(t)
                    })
                    .collect();
                m.insert("failed".into(), Value::Array(failed));
                if let Some(marks) = &e.marks {
                    m.insert("marks".into(), Value::Array(marks.iter().map(|l| Value::from(l.as_str())).collect()));
                }
                Value::Object(m)
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decision_keys_are_sorted() {
        let names: Vec<&str> = DecisionKey::ALL.iter().map(|k| k.name()).collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(names, sorted);
    }

    #[test]
    fn decision_json_is_canonical_with_and_without_optional_keys() {
        let mut d = Decision::undecided();
        d.rules = vec!["r".into()];
        d.reason = "because".into();
        let bare = d.to_json();
        assert!(bare.starts_with(r#"{"audit":{"agent":"","hash":"""#), "{bare}");
        assert!(bare.ends_with(r#""errors":[],"outcome":"deny","reason":"because","rules":["r"]}"#), "{bare}");
        d.approval = Some(Approval { id: "apr_1".into(), approvers: vec!["b".into(), "a".into()] });
        d.errors.push(DecisionError { rule: "r".into(), path: "params.x".into(), message: "m".into() });
        d.errors.push(DecisionError { rule: "s".into(), path: "agent".into(), message: "n".into() });
        d.explain = Some(vec![ExplainEntry {
            rule: "r".into(),
            outcome: Outcome::Deny,
            applied: true,
            result: Tri::Error,
            failed: Vec::new(),
            marks: Some(vec!["pii".into()]),
        }]);
        for line in [bare, d.to_json()] {
            let v = crate::json::parse(&line, 16).unwrap();
            assert_eq!(v.to_canonical_json(), line);
        }
        assert!(d.to_json().starts_with(r#"{"approval":{"approvers":["b","a"],"id":"apr_1"},"audit":"#));
    }
}
