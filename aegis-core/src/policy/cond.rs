//! Compiled conditions (§3).

use crate::request::Field;
use crate::value::Value;
use regex::Regex;

/// One step of a path below its root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Segment {
    /// The key as written.
    pub key: String,
    /// The index, when the segment is all digits.
    pub index: Option<usize>,
}

/// What a path starts from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Root {
    /// A request field that [`Field::is_path_root`].
    Field(Field),
    /// `session.marks`: the session's live marks (§10), a sorted list of labels; the
    /// segments below it are at most one index.
    Marks,
}

/// A dot-separated path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Path {
    /// Its root.
    pub root: Root,
    /// Its steps below the root.
    pub segments: Vec<Segment>,
    /// The path as written (named in errors and explain traces).
    pub text: String,
}

/// A `during` window.
#[derive(Clone, Debug)]
pub struct During {
    /// Allowed weekdays, Monday = bit 0; `None`: every day.
    pub days: Option<u8>,
    /// Minutes of the day `[start, end)`, wrapping when `start > end`; `None`: all day.
    pub hours: Option<(u16, u16)>,
    /// The zone the days and hours are read in.
    pub zone: jiff::tz::TimeZone,
}

/// An operator with its compiled operand.
#[derive(Clone, Debug)]
pub enum Op {
    /// `eq`
    Eq(Value),
    /// `ne`
    Ne(Value),
    /// `lt`
    Lt(f64),
    /// `lte`
    Lte(f64),
    /// `gt`
    Gt(f64),
    /// `gte`
    Gte(f64),
    /// `in`
    In(Vec<Value>),
    /// `not_in`
    NotIn(Vec<Value>),
    /// `starts_with`
    StartsWith(String),
    /// `ends_with`
    EndsWith(String),
    /// `contains`
    Contains(Value),
    /// `contains_any`: the strings and their lower-case forms.
    ContainsAny(Vec<(String, String)>),
    /// `contains_none`
    ContainsNone(Vec<(String, String)>),
    /// `contains_all`
    ContainsAll(Vec<Value>),
    /// `matches`
    Matches(Box<Regex>),
    /// `within`: normalised prefixes.
    Within(Vec<String>),
    /// `domain_in`: normalised domains.
    DomainIn(Vec<crate::eval::boundary::Host>),
    /// `count`
    Count(Vec<Op>),
    /// `exists`
    Exists(bool),
    /// `during`
    During(Box<During>),
}

impl Cond {
    /// Whether some test of the condition reads `session.marks` (any operator,
    /// `exists` included).
    pub fn reads_marks(&self) -> bool {
        match self {
            Cond::All(parts) | Cond::Any(parts) => parts.iter().any(Cond::reads_marks),
            Cond::Not(inner) => inner.reads_marks(),
            Cond::Test(t) => t.path.root == Root::Marks,
        }
    }
}

impl Op {
    /// Every operator name.
    pub const NAMES: [&'static str; 20] = [
        "eq",
        "ne",
        "lt",
        "lte",
        "gt",
        "gte",
        "in",
        "not_in",
        "starts_with",
        "ends_with",
        "contains",
        "contains_any",
        "contains_none",
        "contains_all",
        "matches",
        "within",
        "domain_in",
        "count",
        "exists",
        "during",
    ];

    /// The operator's name.
    pub fn name(&self) -> &'static str {
        match self {
            Op::Eq(_) => "eq",
            Op::Ne(_) => "ne",
            Op::Lt(_) => "lt",
            Op::Lte(_) => "lte",
            Op::Gt(_) => "gt",
            Op::Gte(_) => "gte",
            Op::In(_) => "in",
            Op::NotIn(_) => "not_in",
            Op::StartsWith(_) => "starts_with",
            Op::EndsWith(_) => "ends_with",
            Op::Contains(_) => "contains",
            Op::ContainsAny(_) => "contains_any",
            Op::ContainsNone(_) => "contains_none",
            Op::ContainsAll(_) => "contains_all",
            Op::Matches(_) => "matches",
            Op::Within(_) => "within",
            Op::DomainIn(_) => "domain_in",
            Op::Count(_) => "count",
            Op::Exists(_) => "exists",
            Op::During(_) => "during",
        }
    }
}

/// One test: a path, an operator and the operand as written (for explain).
#[derive(Clone, Debug)]
pub struct Test {
    /// The path tested.
    pub path: Path,
    /// The operator, with its operand compiled.
    pub op: Op,
    /// The operand as written, for explain traces.
    pub operand: Value,
}

/// A condition tree.
#[derive(Clone, Debug)]
pub enum Cond {
    /// Every part holds.
    All(Vec<Cond>),
    /// Some part holds.
    Any(Vec<Cond>),
    /// The part does not hold.
    Not(Box<Cond>),
    /// A single test.
    Test(Box<Test>),
}
