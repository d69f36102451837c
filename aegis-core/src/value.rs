//! The JSON data model shared by requests, policies and audit records.
//!
//! Numbers are IEEE-754 binary64, as in RFC 8785 and in every binding's JSON; a
//! number is always finite. Objects ([`Map`]) keep their keys sorted (by UTF-8
//! bytes), which makes canonical serialisation cheap; small ones are stored compactly.

use std::fmt;

pub use crate::map::Map;

/// Whether two byte strings are equal, comparing short ones (the usual names, keys
/// and enum-like values) in a few word loads instead of a call to `memcmp`.
#[inline]
pub fn bytes_eq(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    // The first and the last word of each (overlapping when shorter than two words);
    // the chunks exist for these lengths, and were one missing the comparison is
    // simply the exact one.
    match n {
        0 => true,
        1..=3 => a.iter().zip(b).all(|(x, y)| x == y),
        4..=7 => match (a.first_chunk::<4>(), b.first_chunk::<4>(), a.last_chunk::<4>(), b.last_chunk::<4>()) {
            (Some(a0), Some(b0), Some(a1), Some(b1)) => {
                u32::from_ne_bytes(*a0) == u32::from_ne_bytes(*b0) && u32::from_ne_bytes(*a1) == u32::from_ne_bytes(*b1)
            }
            _ => a == b,
        },
        8..=16 => match (a.first_chunk::<8>(), b.first_chunk::<8>(), a.last_chunk::<8>(), b.last_chunk::<8>()) {
            (Some(a0), Some(b0), Some(a1), Some(b1)) => {
                u64::from_ne_bytes(*a0) == u64::from_ne_bytes(*b0) && u64::from_ne_bytes(*a1) == u64::from_ne_bytes(*b1)
            }
            _ => a == b,
        },
        _ => a == b,
    }
}

/// 2^53 − 1, the largest magnitude up to which every integer is a binary64 number, so
/// that canonical JSON, every binding's native numbers and comparisons are exact (§9a,
/// I-JSON). Requests and policy literals refuse numbers beyond it.
pub const MAX_EXACT_INT: u64 = (1 << 53) - 1;

/// Whether a number's magnitude is at most [`MAX_EXACT_INT`] (false for NaN).
#[inline]
pub fn is_exact_magnitude(n: f64) -> bool {
    n.abs() <= MAX_EXACT_INT as f64
}

/// The message for a non-finite number given natively (JSON text cannot hold one), the
/// same in every binding: `is NaN; numbers must be finite` (or `Infinity`, `-Infinity`).
pub fn non_finite_message(n: f64) -> String {
    let shown = if n.is_nan() {
        "NaN"
    } else if n > 0.0 {
        "Infinity"
    } else {
        "-Infinity"
    };
    format!("is {shown}; numbers must be finite")
}

/// A JSON value with finite binary64 numbers.
#[derive(Clone, Debug, Default)]
pub enum Value {
    /// `null`
    #[default]
    Null,
    /// `true` / `false`
    Bool(bool),
    /// A finite number (never NaN or infinite).
    Number(f64),
    /// A UTF-8 string.
    String(String),
    /// A list (a JSON array), in order.
    Array(Vec<Value>),
    /// An object, its keys sorted by UTF-8 bytes ([`Map`]).
    Object(Map),
}

/// The type names used in error messages (`null`, `boolean`, `number`, `string`,
/// `list`, `object`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TypeName {
    /// `null`
    Null,
    /// `boolean`
    Boolean,
    /// `number`
    Number,
    /// `string`
    String,
    /// `list`
    List,
    /// `object`
    Object,
}

impl TypeName {
    /// The lower-case name used in messages.
    pub fn as_str(self) -> &'static str {
        match self {
            TypeName::Null => "null",
            TypeName::Boolean => "boolean",
            TypeName::Number => "number",
            TypeName::String => "string",
            TypeName::List => "list",
            TypeName::Object => "object",
        }
    }
}

impl fmt::Display for TypeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Value {
    /// The value's type name.
    pub fn type_name(&self) -> TypeName {
        match self {
            Value::Null => TypeName::Null,
            Value::Bool(_) => TypeName::Boolean,
            Value::Number(_) => TypeName::Number,
            Value::String(_) => TypeName::String,
            Value::Array(_) => TypeName::List,
            Value::Object(_) => TypeName::Object,
        }
    }

    /// The string, if this is a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// The number, if this is a number.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Number(n) => Some(*n),
            _ => None,
        }
    }

    /// Whether this is a scalar (string, number, boolean or null).
    pub fn is_scalar(&self) -> bool {
        !matches!(self, Value::Array(_) | Value::Object(_))
    }

    /// Nesting depth: a scalar is 0, `{}` and `[]` are 1, `{"a": {}}` is 2.
    pub fn depth(&self) -> usize {
        match self {
            Value::Array(a) => 1 + a.iter().map(Value::depth).max().unwrap_or(0),
            Value::Object(m) => 1 + m.values().map(Value::depth).max().unwrap_or(0),
            _ => 0,
        }
    }

    /// The value in canonical JSON (RFC 8785).
    pub fn to_canonical_json(&self) -> String {
        let mut out = String::new();
        crate::json::write_value(&mut out, self);
        out
    }
}

/// Deep equality; numbers compare by value (`5 == 5.0`).
impl PartialEq for Value {
    fn eq(&self, other: &Value) -> bool {
        match (self, other) {
            (Value::Null, Value::Null) => true,
            (Value::Bool(a), Value::Bool(b)) => a == b,
            (Value::Number(a), Value::Number(b)) => a == b,
            (Value::String(a), Value::String(b)) => bytes_eq(a.as_bytes(), b.as_bytes()),
            (Value::Array(a), Value::Array(b)) => a == b,
            (Value::Object(a), Value::Object(b)) => a == b,
            _ => false,
        }
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::String(s.to_owned())
    }
}

impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::String(s)
    }
}

impl From<f64> for Value {
    fn from(n: f64) -> Self {
        Value::Number(n)
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Value::Bool(b)
    }
}

/// Where a value sits in a request being converted from a host language, kept as
/// borrowed segments and rendered (`params.items.0`, the policy path syntax) only when
/// a conversion fails: the bindings' hot path allocates no path strings. Every binding
/// uses it, so a request error names the same place in every language.
#[derive(Clone, Copy, Debug)]
pub enum ValuePath<'a> {
    /// The request itself.
    Root,
    /// A key below `parent`.
    Key(&'a ValuePath<'a>, &'a str),
    /// A list index below `parent`.
    Index(&'a ValuePath<'a>, usize),
}

impl ValuePath<'_> {
    /// Appends the dotted form (`params.items.0`).
    pub fn render(&self, out: &mut String) {
        match *self {
            ValuePath::Root => {}
            ValuePath::Key(parent, k) => {
                parent.render(out);
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(k);
            }
            ValuePath::Index(parent, i) => {
                parent.render(out);
                out.push('.');
                out.push_str(&i.to_string());
            }
        }
    }

    /// The dotted form as a string.
    pub fn text(&self) -> String {
        let mut s = String::new();
        self.render(&mut s);
        s
    }

    /// The top-level request field (the first segment; empty for the root).
    pub fn field(&self) -> &str {
        match *self {
            ValuePath::Root => "",
            ValuePath::Key(ValuePath::Root, k) => k,
            ValuePath::Key(parent, _) | ValuePath::Index(parent, _) => parent.field(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_eq_agrees_with_slice_eq() {
        let words: Vec<Vec<u8>> = (0..40usize)
            .flat_map(|n| {
                let base: Vec<u8> = (0..n).map(|i| b'a' + (i % 26) as u8).collect();
                let mut variants = vec![base.clone()];
                for j in 0..n {
                    let mut v = base.clone();
                    v[j] ^= 1;
                    variants.push(v);
                }
                variants
            })
            .collect();
        for a in &words {
            for b in &words {
                assert_eq!(bytes_eq(a, b), a == b, "{a:?} {b:?}");
            }
        }
    }

    #[test]
    fn numbers_compare_by_value() {
        assert_eq!(Value::Number(5.0), Value::Number(5.0));
        assert_eq!(Value::Number(-0.0), Value::Number(0.0));
        assert_ne!(Value::Number(5.0), Value::String("5".into()));
    }

    #[test]
    fn value_paths_render_in_policy_syntax() {
        let root = ValuePath::Root;
        let params = ValuePath::Key(&root, "params");
        let items = ValuePath::Key(&params, "items");
        let first = ValuePath::Index(&items, 0);
        let name = ValuePath::Key(&first, "name");
        assert_eq!(name.text(), "params.items.0.name");
        assert_eq!(name.field(), "params");
        assert_eq!(root.text(), "");
        assert_eq!(root.field(), "");
    }

    #[test]
    fn depth_counts_containers() {
        assert_eq!(Value::Null.depth(), 0);
        assert_eq!(Value::Object(Map::new()).depth(), 1);
        let mut m = Map::new();
        m.insert("a".into(), Value::Array(vec![Value::Object(Map::new())]));
        assert_eq!(Value::Object(m).depth(), 3);
    }
}
