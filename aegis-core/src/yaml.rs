//! A spanned YAML 1.2 (core schema) reader built on `saphyr-parser` events.
//!
//! Every node keeps its `line:column` so that each load error can point at the text.
//! Duplicate keys, non-string keys, tags other than the core ones, `.inf`/`.nan` and
//! numbers beyond ±(2^53 − 1) are errors (§9a: a policy literal is exact or refused).
//! Aliases are expanded under a budget of the size they expand to (§9a: max(16 × the
//! file's size, 1 MiB), and a node count), so a "billion laughs" document is a load
//! error, never an out-of-memory abort. Every step is O(n log n) or better in the size
//! of the document: duplicate keys of a large mapping are found through a hash set.

use crate::value::{Map, Value};
use saphyr_parser::{Event, Parser, ScalarStyle, Span};
use std::collections::{HashMap, HashSet};

/// A 1-based line and column.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Loc {
    /// Line, from 1.
    pub line: usize,
    /// Column, from 1 (in characters).
    pub column: usize,
}

/// A YAML node with its location.
#[derive(Clone, Debug)]
pub struct Node {
    /// Where the node starts.
    pub loc: Loc,
    /// What it holds.
    pub kind: Kind,
}

/// The content of a [`Node`].
#[derive(Clone, Debug)]
pub enum Kind {
    /// `null`, `~` or nothing.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// A finite number.
    Number(f64),
    /// Any other scalar, as text (quoted or plain).
    String(String),
    /// A sequence, in document order.
    Seq(Vec<Node>),
    /// A mapping with string keys, in document order; keys keep their locations.
    Map(Vec<(String, Loc, Node)>),
}

impl Node {
    /// The node as plain data (locations dropped).
    pub fn to_value(&self) -> Value {
        match &self.kind {
            Kind::Null => Value::Null,
            Kind::Bool(b) => Value::Bool(*b),
            Kind::Number(n) => Value::Number(*n),
            Kind::String(s) => Value::String(s.clone()),
            Kind::Seq(items) => Value::Array(items.iter().map(Node::to_value).collect()),
            Kind::Map(entries) => {
                let mut m = Map::new();
                for (k, _, v) in entries {
                    m.insert(k.clone(), v.to_value());
                }
                Value::Object(m)
            }
        }
    }

    /// The type name used in messages.
    pub fn type_name(&self) -> &'static str {
        match &self.kind {
            Kind::Null => "null",
            Kind::Bool(_) => "boolean",
            Kind::Number(_) => "number",
            Kind::String(_) => "string",
            Kind::Seq(_) => "list",
            Kind::Map(_) => "mapping",
        }
    }
}

/// Canonical JSON (RFC 8785) of YAML nodes, streamed into SHA-256 through a small
/// buffer: hashing a bundle never builds its JSON text or a second tree.
pub struct CanonicalHasher {
    buf: String,
    sha: sha2::Sha256,
}

impl Default for CanonicalHasher {
    fn default() -> Self {
        CanonicalHasher::new()
    }
}

impl CanonicalHasher {
    /// An empty hasher.
    pub fn new() -> CanonicalHasher {
        CanonicalHasher { buf: String::with_capacity(64 * 1024), sha: sha2::Sha256::default() }
    }

    /// Appends raw canonical text.
    pub fn push(&mut self, s: &str) {
        self.buf.push_str(s);
        self.spill();
    }

    fn spill(&mut self) {
        if self.buf.len() >= 60 * 1024 {
            sha2::Digest::update(&mut self.sha, self.buf.as_bytes());
            self.buf.clear();
        }
    }

    /// Appends a node as canonical JSON (the same bytes as `node.to_value()`'s).
    pub fn node(&mut self, n: &Node) {
        use crate::json::{write_number, write_string};
        match &n.kind {
            Kind::Null => self.buf.push_str("null"),
            Kind::Bool(b) => self.buf.push_str(if *b { "true" } else { "false" }),
            Kind::Number(x) => write_number(&mut self.buf, *x),
            Kind::String(s) => write_string(&mut self.buf, s),
            Kind::Seq(items) => {
                self.buf.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        self.buf.push(',');
                    }
                    self.node(item);
                }
                self.buf.push(']');
            }
            Kind::Map(entries) => {
                let mut order: Vec<&(String, Loc, Node)> = entries.iter().collect();
                order.sort_by(|a, b| a.0.encode_utf16().cmp(b.0.encode_utf16()));
                self.buf.push('{');
                for (i, (k, _, v)) in order.into_iter().enumerate() {
                    if i > 0 {
                        self.buf.push(',');
                    }
                    write_string(&mut self.buf, k);
                    self.buf.push(':');
                    self.node(v);
                }
                self.buf.push('}');
            }
        }
        self.spill();
    }

    /// The SHA-256 of everything pushed.
    pub fn finish(mut self) -> [u8; 32] {
        sha2::Digest::update(&mut self.sha, self.buf.as_bytes());
        sha2::Digest::finalize(self.sha).into()
    }
}

/// A YAML error with its location.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct YamlError {
    /// Where the parser stopped.
    pub loc: Loc,
    /// What is wrong.
    pub message: String,
}

/// Most nodes a document may expand to (aliases included).
pub const MAX_NODES: usize = 1_000_000;
/// The least expansion budget of a document, in bytes (§9a).
pub const MIN_EXPANSION_BYTES: usize = 1 << 20;
/// How many times its own size a document may expand to (§9a).
pub const EXPANSION_FACTOR: usize = 16;

/// What a document of `len` bytes may expand to: max(16 × len, 1 MiB).
pub fn expansion_budget(len: usize) -> usize {
    len.saturating_mul(EXPANSION_FACTOR).max(MIN_EXPANSION_BYTES)
}
/// Deepest nesting a policy document may have.
pub const MAX_DEPTH: usize = 128;

fn loc_of(span: &Span) -> Loc {
    Loc { line: span.start.line(), column: span.start.col() + 1 }
}

/// Mappings with more keys than this check duplicates through a hash set.
const LINEAR_KEYS: usize = 16;

/// A node being built: where it starts, its anchor, and the expanded size (nodes and
/// bytes) of what it holds so far, so an alias of it is charged without a walk.
enum Frame {
    Seq {
        loc: Loc,
        anchor: usize,
        items: Vec<Node>,
        size: Size,
    },
    Map {
        loc: Loc,
        anchor: usize,
        entries: Vec<(String, Loc, Node)>,
        key: Option<(String, Loc)>,
        seen: Option<HashSet<String>>,
        size: Size,
    },
}

/// The expanded size of a node: how many nodes, and about how many bytes of JSON.
#[derive(Clone, Copy, Default)]
struct Size {
    nodes: usize,
    bytes: usize,
}

impl Size {
    fn add(&mut self, o: Size) {
        self.nodes = self.nodes.saturating_add(o.nodes);
        self.bytes = self.bytes.saturating_add(o.bytes);
    }
}

/// What a document may still expand to; exceeding either bound is a load error.
struct Budget {
    nodes: usize,
    bytes: usize,
    max_bytes: usize,
}

impl Budget {
    /// Charges `s`; the error message when the document grows beyond a bound.
    fn charge(&mut self, s: Size) -> Result<(), String> {
        if s.nodes > self.nodes {
            return Err(format!("the document expands beyond {MAX_NODES} nodes (aliases included)"));
        }
        if s.bytes > self.bytes {
            return Err(format!(
                "aliases expand the document beyond {} bytes (max(16 × the file's size, 1 MiB), and 64 MiB for a bundle)",
                self.max_bytes
            ));
        }
        self.nodes -= s.nodes;
        self.bytes -= s.bytes;
        Ok(())
    }
}

/// Parses one YAML document under the expansion budget of its own size (§9a). An
/// empty document is `Ok(None)`. Returns every error found that does not stop the
/// parser (duplicate keys, bad scalars…), or the single syntax error that does.
pub fn parse(text: &str) -> Result<Option<Node>, Vec<YamlError>> {
    parse_within(text, expansion_budget(text.len())).map(|(root, _)| root)
}

/// Parses one document that may expand to at most `max_bytes`; also returns how many
/// bytes it expanded to (a bundle's files share a budget of their own).
pub fn parse_within(text: &str, max_bytes: usize) -> Result<(Option<Node>, usize), Vec<YamlError>> {
    let mut errors = Vec::new();
    let mut stack: Vec<Frame> = Vec::new();
    let mut anchors: HashMap<usize, (Node, Size)> = HashMap::new();
    let mut root: Option<Node> = None;
    let mut docs = 0usize;
    let mut budget = Budget { nodes: MAX_NODES, bytes: max_bytes, max_bytes };
    let parser = Parser::new_from_str(text);
    for ev in parser {
        let (ev, span) = match ev {
            Ok(x) => x,
            Err(e) => {
                errors.push(YamlError {
                    loc: Loc { line: e.marker().line(), column: e.marker().col() + 1 },
                    message: format!("invalid YAML: {}", e.info()),
                });
                return Err(errors);
            }
        };
        let loc = loc_of(&span);
        let complete: Option<(Node, usize, Size)> = match ev {
            Event::StreamStart | Event::StreamEnd | Event::Nothing | Event::DocumentEnd => None,
            Event::DocumentStart(_) => {
                docs += 1;
                if docs > 1 {
                    errors.push(YamlError { loc, message: "a policy file holds one YAML document".into() });
                    return Err(errors);
                }
                None
            }
            Event::Alias(id) => match anchors.get(&id) {
                Some((n, size)) => {
                    if let Err(message) = budget.charge(*size) {
                        errors.push(YamlError { loc, message });
                        return Err(errors);
                    }
                    Some((Node { loc, kind: n.kind.clone() }, 0, *size))
                }
                None => {
                    errors.push(YamlError { loc, message: "unknown alias".into() });
                    return Err(errors);
                }
            },
            Event::Scalar(value, style, anchor, tag) => {
                let size = Size { nodes: 1, bytes: value.len() + 2 };
                if let Err(message) = budget.charge(size) {
                    errors.push(YamlError { loc, message });
                    return Err(errors);
                }
                let tag_name = tag.as_ref().map(|t| (t.is_yaml_core_schema(), t.suffix.clone(), t.to_string()));
                let kind = match resolve_scalar(&value, style, tag_name.as_ref()) {
                    Ok(k) => k,
                    Err(message) => {
                        errors.push(YamlError { loc, message });
                        Kind::Null
                    }
                };
                Some((Node { loc, kind }, anchor, size))
            }
            Event::SequenceStart(anchor, tag) => {
                if let Some(t) = tag.as_ref() {
                    if !(t.is_yaml_core_schema() && t.suffix == "seq") {
                        errors.push(YamlError { loc, message: format!("custom tag `{t}` is not allowed") });
                    }
                }
                if stack.len() >= MAX_DEPTH {
                    errors.push(YamlError { loc, message: format!("nesting deeper than {MAX_DEPTH} levels") });
                    return Err(errors);
                }
                let size = Size { nodes: 1, bytes: 2 };
                if let Err(message) = budget.charge(size) {
                    errors.push(YamlError { loc, message });
                    return Err(errors);
                }
                stack.push(Frame::Seq { loc, anchor, items: Vec::new(), size });
                None
            }
            Event::MappingStart(anchor, tag) => {
                if let Some(t) = tag.as_ref() {
                    if !(t.is_yaml_core_schema() && t.suffix == "map") {
                        errors.push(YamlError { loc, message: format!("custom tag `{t}` is not allowed") });
                    }
                }
                if stack.len() >= MAX_DEPTH {
                    errors.push(YamlError { loc, message: format!("nesting deeper than {MAX_DEPTH} levels") });
                    return Err(errors);
                }
                let size = Size { nodes: 1, bytes: 2 };
                if let Err(message) = budget.charge(size) {
                    errors.push(YamlError { loc, message });
                    return Err(errors);
                }
                stack.push(Frame::Map { loc, anchor, entries: Vec::new(), key: None, seen: None, size });
                None
            }
            Event::SequenceEnd => match stack.pop() {
                Some(Frame::Seq { loc, anchor, items, size }) => {
                    Some((Node { loc, kind: Kind::Seq(items) }, anchor, size))
                }
                _ => None,
            },
            Event::MappingEnd => match stack.pop() {
                Some(Frame::Map { loc, anchor, entries, size, .. }) => {
                    Some((Node { loc, kind: Kind::Map(entries) }, anchor, size))
                }
                _ => None,
            },
        };
        let Some((node, anchor, size)) = complete else { continue };
        if anchor != 0 {
            anchors.insert(anchor, (node.clone(), size));
        }
        match stack.last_mut() {
            None => root = Some(node),
            Some(Frame::Seq { items, size: parent, .. }) => {
                parent.add(size);
                items.push(node);
            }
            Some(Frame::Map { entries, key, seen, size: parent, .. }) => match key.take() {
                None => {
                    let k = match node.kind {
                        Kind::String(s) => s,
                        _ => {
                            errors.push(YamlError {
                                loc: node.loc,
                                message: format!("mapping keys must be strings, found a {}", node.type_name()),
                            });
                            format!("\u{0}non-string-key-{}", entries.len())
                        }
                    };
                    parent.add(size);
                    if is_duplicate_key(entries, seen, &k) {
                        errors.push(YamlError { loc: node.loc, message: format!("duplicate key \"{k}\"") });
                    }
                    *key = Some((k, node.loc));
                }
                Some((k, kloc)) => {
                    parent.add(size);
                    entries.push((k, kloc, node));
                }
            },
        }
    }
    if errors.is_empty() {
        Ok((root, max_bytes - budget.bytes))
    } else {
        Err(errors)
    }
}

/// Whether `k` is already a key of the mapping being built (and remembers it): a scan
/// for small mappings, a hash set once a mapping grows past [`LINEAR_KEYS`], so a
/// mapping of n keys is checked in O(n), not O(n²).
fn is_duplicate_key(entries: &[(String, Loc, Node)], seen: &mut Option<HashSet<String>>, k: &str) -> bool {
    if let Some(set) = seen {
        return !set.insert(k.to_owned());
    }
    let dup = entries.iter().any(|(existing, _, _)| existing == k);
    if entries.len() >= LINEAR_KEYS {
        let mut set: HashSet<String> = entries.iter().map(|(e, _, _)| e.clone()).collect();
        set.insert(k.to_owned());
        *seen = Some(set);
    }
    dup
}

/// Resolves a scalar under the YAML 1.2 core schema.
fn resolve_scalar(value: &str, style: ScalarStyle, tag: Option<&(bool, String, String)>) -> Result<Kind, String> {
    if let Some((core, suffix, shown)) = tag {
        if !core {
            return Err(format!("custom tag `{shown}` is not allowed"));
        }
        return match suffix.as_str() {
            "str" => Ok(Kind::String(value.to_owned())),
            "null" | "bool" | "int" | "float" => {
                let k = resolve_plain(value)?;
                let ok = matches!(
                    (suffix.as_str(), &k),
                    ("null", Kind::Null)
                        | ("bool", Kind::Bool(_))
                        | ("int", Kind::Number(_))
                        | ("float", Kind::Number(_))
                );
                if ok {
                    Ok(k)
                } else {
                    Err(format!("`{value}` is not a valid `!!{suffix}`"))
                }
            }
            _ => Err(format!("tag `{shown}` is not allowed on a scalar")),
        };
    }
    if style != ScalarStyle::Plain {
        return Ok(Kind::String(value.to_owned()));
    }
    resolve_plain(value)
}

fn resolve_plain(v: &str) -> Result<Kind, String> {
    match v {
        "" | "~" | "null" | "Null" | "NULL" => return Ok(Kind::Null),
        "true" | "True" | "TRUE" => return Ok(Kind::Bool(true)),
        "false" | "False" | "FALSE" => return Ok(Kind::Bool(false)),
        _ => {}
    }
    let lower = v.to_ascii_lowercase();
    let unsigned = lower.trim_start_matches(['+', '-']);
    if unsigned == ".inf" || lower == ".nan" {
        return Err(format!("`{v}` is not allowed: numbers must be finite"));
    }
    if let Some(hex) = v.strip_prefix("0x") {
        if !hex.is_empty() && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return exact_integer(v, u128::from_str_radix(hex, 16).ok().and_then(|n| i128::try_from(n).ok()));
        }
    }
    if let Some(oct) = v.strip_prefix("0o") {
        if !oct.is_empty() && oct.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
            return exact_integer(v, u128::from_str_radix(oct, 8).ok().and_then(|n| i128::try_from(n).ok()));
        }
    }
    let digits = v.strip_prefix(['+', '-']).unwrap_or(v);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        return exact_integer(v, v.parse::<i128>().ok());
    }
    if is_core_float(digits) {
        let n: f64 = v.parse().map_err(|_| format!("`{v}` is not a valid number"))?;
        if !crate::value::is_exact_magnitude(n) {
            return Err(beyond_exact(v));
        }
        return Ok(Kind::Number(n));
    }
    Ok(Kind::String(v.to_owned()))
}

/// An integer literal, refused beyond ±(2^53 − 1) (`None`: too long to parse at all).
fn exact_integer(v: &str, n: Option<i128>) -> Result<Kind, String> {
    match n {
        Some(n) if n.unsigned_abs() <= u128::from(crate::value::MAX_EXACT_INT) => Ok(Kind::Number(n as f64)),
        _ => Err(beyond_exact(v)),
    }
}

fn beyond_exact(v: &str) -> String {
    format!("`{v}` is beyond ±9007199254740991 (2^53 − 1), where numbers stop being exact; quote large ids as strings")
}

/// `( \.[0-9]+ | [0-9]+ ( \.[0-9]* )? ) ( [eE] [-+]? [0-9]+ )?` (sign already removed).
fn is_core_float(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    let int_digits = b.iter().take_while(|c| c.is_ascii_digit()).count();
    i += int_digits;
    let mut frac_digits = 0;
    if b.get(i) == Some(&b'.') {
        i += 1;
        frac_digits = b.iter().skip(i).take_while(|c| c.is_ascii_digit()).count();
        i += frac_digits;
    }
    if int_digits == 0 && frac_digits == 0 {
        return false;
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        let exp_digits = b.iter().skip(i).take_while(|c| c.is_ascii_digit()).count();
        if exp_digits == 0 {
            return false;
        }
        i += exp_digits;
    }
    i == b.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn val(text: &str) -> Value {
        match parse(text) {
            Ok(Some(n)) => n.to_value(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn core_schema_scalars() {
        let v =
            val("a: yes\nb: 0777\nc: 0o17\nd: 0x1F\ne: 1.5e3\nf: ~\ng: 'true'\nh: 2026-01-05\ni: .5\nj: -3\nk: True\n");
        assert_eq!(
            v.to_canonical_json(),
            r#"{"a":"yes","b":777,"c":15,"d":31,"e":1500,"f":null,"g":"true","h":"2026-01-05","i":0.5,"j":-3,"k":true}"#
        );
    }

    #[test]
    fn rejects_inf_nan_tags_duplicates() {
        for doc in [
            "a: .inf\n",
            "a: -.Inf\n",
            "a: .NaN\n",
            "a: !foo x\n",
            "a: 1\na: 2\n",
            "? [1]\n: x\n",
            "a: 99999999999999999999\n",
            "a: 9007199254740992\n",
            "a: -9007199254740992\n",
            "a: 0x20000000000000\n",
            "a: 0o400000000000000000\n",
            "a: 1e16\n",
            "a: 1234567890123456789\n",
            "a: !!int 9007199254740993\n",
        ] {
            assert!(parse(doc).is_err(), "{doc}");
        }
    }

    #[test]
    fn locations_are_one_based() {
        let Ok(Some(n)) = parse("aegis: 1\nrules:\n  - id: x\n") else { panic!() };
        let Kind::Map(entries) = n.kind else { panic!() };
        let (k, kloc, v) = &entries[1];
        assert_eq!(k, "rules");
        assert_eq!(*kloc, Loc { line: 2, column: 1 });
        let Kind::Seq(items) = &v.kind else { panic!() };
        let Kind::Map(rule) = &items[0].kind else { panic!() };
        assert_eq!(rule[0].1, Loc { line: 3, column: 5 });
        assert_eq!(rule[0].2.loc, Loc { line: 3, column: 9 });
    }

    #[test]
    fn streamed_hash_equals_hash_of_value() {
        use sha2::Digest;
        let doc = "b: [1, 2.5, {z: 1, a: null}]\na: \"x\\ty\"\n\u{20ac}: true\n\u{1f600}: false\n\u{fb01}: ~\n";
        let Ok(Some(n)) = parse(doc) else { panic!() };
        let mut h = CanonicalHasher::new();
        h.push("[");
        h.node(&n);
        h.push("]");
        let want = sha2::Sha256::digest(Value::Array(vec![n.to_value()]).to_canonical_json().as_bytes());
        assert_eq!(h.finish().as_slice(), want.as_slice());
    }

    #[test]
    fn billion_laughs_is_bounded() {
        let mut doc = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..10 {
            let prev = format!("*a{}", i - 1);
            doc.push_str(&format!("a{i}: &a{i} [{p}, {p}, {p}, {p}, {p}, {p}, {p}, {p}, {p}, {p}]\n", p = prev));
        }
        assert!(parse(&doc).is_err());
    }

    #[test]
    fn exact_numbers_load() {
        assert_eq!(
            val("a: 9007199254740991\nb: -9007199254740991\nc: 0x1FFFFFFFFFFFFF\nd: 9.0e15\n").to_canonical_json(),
            r#"{"a":9007199254740991,"b":-9007199254740991,"c":9007199254740991,"d":9000000000000000}"#
        );
    }

    /// §9a: a 1 MiB file whose aliases expand to gigabytes is a load error (the budget
    /// is max(16 × the file's size, 1 MiB)), found as soon as the budget runs out.
    #[test]
    fn aliases_are_budgeted_by_expanded_bytes() {
        let big = "x".repeat(512 << 10);
        let mut doc = format!("a: &a \"{big}\"\nb: [");
        for _ in 0..100_000 {
            doc.push_str("*a,");
        }
        doc.push_str("]\n");
        let e = parse(&doc).unwrap_err();
        assert!(e[0].message.contains("aliases expand the document beyond"), "{e:?}");
        // Within the budget, aliases are fine.
        assert!(parse("a: &a [1, 2]\nb: [*a, *a]\n").is_ok());
        assert!(parse_within("a: &a [1, 2]\nb: [*a, *a]\n", 10).is_err());
    }

    #[test]
    fn duplicate_keys_in_large_mappings_are_found() {
        let mut doc = String::new();
        for i in 0..1000 {
            doc.push_str(&format!("k{i}: 1\n"));
        }
        assert!(parse(&doc).is_ok());
        doc.push_str("k500: 2\nk17: 3\nk3: 4\n");
        let e = parse(&doc).unwrap_err();
        let dups: Vec<&str> = e.iter().map(|e| e.message.as_str()).collect();
        assert_eq!(dups, ["duplicate key \"k500\"", "duplicate key \"k17\"", "duplicate key \"k3\""]);
        assert_eq!(e[0].loc.line, 1001);
    }

    #[test]
    fn deep_nesting_is_an_error() {
        let doc = "[".repeat(10_000);
        assert!(parse(&doc).is_err());
    }
}
