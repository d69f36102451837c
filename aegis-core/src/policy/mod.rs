//! Policy bundles (§2): the model, and loading with every error reported at once.

mod cond;
mod load;

pub use cond::{Cond, During, Op, Path, Root, Segment, Test};
pub(crate) use load::parse_duration;
pub use load::{is_policy_file_name, is_test_file_name, load_files, load_path, load_yaml};

use std::fmt;
use std::sync::Arc;

/// The three outcomes, in ascending precedence.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Outcome {
    /// The call may run.
    Allow,
    /// The call waits for an approver.
    RequireApproval,
    /// The call must not run.
    Deny,
}

impl Outcome {
    /// `allow`, `deny` or `require_approval`.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Allow => "allow",
            Outcome::Deny => "deny",
            Outcome::RequireApproval => "require_approval",
        }
    }

    /// Parses `allow`, `deny` or `require_approval`.
    pub fn parse(s: &str) -> Option<Outcome> {
        match s {
            "allow" => Some(Outcome::Allow),
            "deny" => Some(Outcome::Deny),
            "require_approval" => Some(Outcome::RequireApproval),
            _ => None,
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where something was written: `file:line:column`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceLoc {
    /// The file as given to the loader (`<yaml>` for text).
    pub file: Arc<str>,
    /// Line, from 1.
    pub line: usize,
    /// Column, from 1.
    pub column: usize,
}

impl fmt::Display for SourceLoc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.column)
    }
}

/// One problem in a bundle.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadError {
    /// The node at fault (a key, a value, the start of a rule).
    pub loc: SourceLoc,
    /// What is wrong (lower-case, no final period).
    pub message: String,
    /// A likely fix, when there is one (`did you mean "lte"?`).
    pub help: Option<String>,
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: error: {}", self.loc, self.message)?;
        if let Some(h) = &self.help {
            write!(f, " — {h}")?;
        }
        Ok(())
    }
}

/// Every error of a bundle that failed to load (never empty).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct LoadErrors(pub Vec<LoadError>);

impl LoadErrors {
    /// Whether this is the refusal of a reload called from inside one of the engine's
    /// own audit callbacks (§9a): reported as `audit_failed`, like every other call
    /// into an engine from its callback, not as a bundle that did not load.
    pub fn is_reentry(&self) -> bool {
        matches!(self.0.as_slice(), [e] if e.message == crate::engine::REENTRY_MESSAGE && &*e.loc.file == "<reload>")
    }
}

impl fmt::Display for LoadErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

/// A name pattern: `*` matches any run of characters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Pattern {
    /// No `*`: compared exactly.
    Exact(String),
    /// With `*`: the literal pieces between the stars.
    Glob(Vec<String>),
}

impl Pattern {
    /// Compiles a pattern.
    pub fn new(p: &str) -> Pattern {
        if p.contains('*') {
            Pattern::Glob(p.split('*').map(str::to_owned).collect())
        } else {
            Pattern::Exact(p.to_owned())
        }
    }

    /// Whether `s` matches.
    pub fn matches(&self, s: &str) -> bool {
        match self {
            Pattern::Exact(e) => crate::value::bytes_eq(e.as_bytes(), s.as_bytes()),
            Pattern::Glob(parts) => glob_match(parts, s),
        }
    }
}

fn glob_match(parts: &[String], s: &str) -> bool {
    let (Some(first), Some(last)) = (parts.first(), parts.last()) else {
        return false;
    };
    if parts.len() == 1 {
        return first == s;
    }
    // `s` starts with the first piece and ends with the last, without overlap.
    let Some(mut rest) = s.strip_prefix(first.as_str()).and_then(|r| r.strip_suffix(last.as_str())) else {
        return false;
    };
    for mid in parts.iter().skip(1).take(parts.len().saturating_sub(2)) {
        match rest.find(mid.as_str()) {
            // `find` gives a character boundary; the piece ends on one too.
            Some(i) => rest = rest.split_at(i + mid.len()).1,
            None => return false,
        }
    }
    true
}

pub use crate::request::Field;

/// A rule's or limit's `match`: for each selector field, the patterns (any of which
/// may match); `None` matches anything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Selectors {
    /// One entry per [`Field::SELECTORS`] position.
    pub fields: [Option<Vec<Pattern>>; Field::SELECTORS.len()],
}

impl Selectors {
    /// The patterns for a field (`None`: no selector on it, or not a selector field).
    pub fn get(&self, f: Field) -> Option<&[Pattern]> {
        self.iter().find(|(g, _)| *g == f).and_then(|(_, p)| p)
    }

    /// Every selector field with its patterns, in evaluation order.
    pub fn iter(&self) -> impl Iterator<Item = (Field, Option<&[Pattern]>)> + '_ {
        Field::SELECTORS.iter().copied().zip(self.fields.iter().map(Option::as_deref))
    }
}

/// A rule of the bundle.
#[derive(Clone, Debug)]
pub struct Rule {
    /// The rule's id, unique in the bundle (named in decisions and records).
    pub id: String,
    /// What the rule is for; the decision's reason when the rule has none.
    pub description: Option<String>,
    /// Its `match`: the requests it is about.
    pub selectors: Selectors,
    /// Condition (`None`: always).
    pub when: Option<Cond>,
    /// Outcome when it applies.
    pub outcome: Outcome,
    /// The decision's reason when the rule determines it.
    pub reason: Option<String>,
    /// Approvers (only with `require_approval`).
    pub approvers: Vec<String>,
    /// Free labels for people and tools (not used in deciding).
    pub tags: Vec<String>,
    /// Marks the rule adds to the request's session when it determines an allow or
    /// deny decision (§10), in the order written, each label once.
    pub marks: Vec<MarkSpec>,
    /// Whether `when` tests `session.marks` (so deciding it needs the session's marks).
    pub reads_marks: bool,
    /// Where the rule starts.
    pub loc: SourceLoc,
}

/// A mark a rule adds (§10): a label and how long it stays live.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MarkSpec {
    /// `[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}`, shared with every session it marks.
    pub label: Arc<str>,
    /// Its `ttl` in milliseconds (`None`: the engine's `marks_ttl`).
    pub ttl_ms: Option<i64>,
}

/// Whether `s` is a mark label: `[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}`.
pub fn is_mark_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && b.first().is_some_and(u8::is_ascii_alphanumeric)
        && b.iter().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b':' | b'-'))
}

/// A limit window length.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Window {
    /// Length in milliseconds.
    pub millis: i64,
    /// As written (`1h`).
    pub text: String,
}

/// A limit (§6.3).
#[derive(Clone, Debug)]
pub struct Limit {
    /// The limit's id, unique among limits (`limit:ID` in decisions).
    pub id: String,
    /// Its `match`: the calls it counts (a missing field matches: fail closed).
    pub selectors: Selectors,
    /// Counter key fields (each [`Field::is_limit_key`]), in the order written.
    pub per: Vec<Field>,
    /// The fixed window counters are kept for (aligned to the epoch).
    pub window: Window,
    /// Most calls per window.
    pub max_calls: Option<u64>,
    /// The params path summed, with its text.
    pub sum: Option<(Path, String)>,
    /// Most sum per window.
    pub max_sum: Option<f64>,
    /// The outcome of a call that would exceed it (deny or require_approval).
    pub outcome: Outcome,
    /// Where the limit starts.
    pub loc: SourceLoc,
}

/// A loaded, validated bundle.
#[derive(Clone, Debug)]
pub struct Bundle {
    /// Rules in bundle order.
    pub rules: Vec<Rule>,
    /// Limits in bundle order.
    pub limits: Vec<Limit>,
    /// Outcome when no rule applies.
    pub default: Outcome,
    /// Hex SHA-256 of the canonical JSON of the files' contents.
    pub hash: String,
    /// The files, in bundle order.
    pub files: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::Pattern;

    #[test]
    fn globs() {
        assert!(Pattern::new("finance-*").matches("finance-bot"));
        assert!(Pattern::new("finance-*").matches("finance-"));
        assert!(!Pattern::new("finance-*").matches("financebot"));
        assert!(Pattern::new("*").matches(""));
        assert!(Pattern::new("a*b").matches("ab"));
        assert!(!Pattern::new("a*b*a").matches("aba") || Pattern::new("a*b*a").matches("aba"));
        assert!(Pattern::new("a*b*a").matches("abba"));
        assert!(!Pattern::new("a*a").matches("a"));
        assert!(Pattern::new("*-agent").matches("x-agent"));
        assert!(!Pattern::new("exact").matches("Exact"));
    }
}
