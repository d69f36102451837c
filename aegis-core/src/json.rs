//! Canonical JSON (RFC 8785, JCS) output and strict JSON input.
//!
//! Output: keys sorted by UTF-16 code units, no whitespace, numbers in the ECMAScript
//! `Number.prototype.toString` form, minimal string escapes.
//!
//! Input: [`parse`] reads JSON text into a [`Value`], rejecting duplicate keys, numbers
//! out of binary64 range and nesting deeper than a bound — with a clear message, never
//! a stack overflow.

use crate::value::{Map, Value};
use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use std::fmt::{self, Write as _};

/// Appends `v` as canonical JSON.
pub fn write_value(out: &mut String, v: &Value) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::Number(n) => write_number(out, *n),
        Value::String(s) => write_string(out, s),
        Value::Array(a) => {
            out.push('[');
            for (i, item) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(out, item);
            }
            out.push(']');
        }
        Value::Object(m) => write_object(out, m),
    }
}

/// Appends an object as canonical JSON (keys in UTF-16 code-unit order).
pub fn write_object(out: &mut String, m: &Map) {
    out.push('{');
    // UTF-8 byte order equals UTF-16 order unless a key holds a character beyond the
    // BMP (4-byte UTF-8, lead byte >= 0xF0); only then do we re-sort.
    if m.keys().any(|k| k.bytes().any(|b| b >= 0xF0)) {
        let mut entries: Vec<(&String, &Value)> = m.iter().collect();
        entries.sort_by(|a, b| a.0.encode_utf16().cmp(b.0.encode_utf16()));
        for (i, (k, v)) in entries.into_iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            write_string(out, k);
            out.push(':');
            write_value(out, v);
        }
    } else {
        for (i, (k, v)) in m.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            write_string(out, k);
            out.push(':');
            write_value(out, v);
        }
    }
    out.push('}');
}

/// Whether any byte is a control character, `"` or `\\` (checked eight bytes at a
/// time: the classic "has a zero / has a byte below n" word tricks).
fn needs_escape(bytes: &[u8]) -> bool {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let mut chunks = bytes.chunks_exact(8);
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        let w = u64::from_le_bytes(w);
        let below_space = w.wrapping_sub(LO * 0x20) & !w;
        let q = w ^ (LO * u64::from(b'"'));
        let quote = q.wrapping_sub(LO) & !q;
        let bs = w ^ (LO * u64::from(b'\\'));
        let backslash = bs.wrapping_sub(LO) & !bs;
        if (below_space | quote | backslash) & HI != 0 {
            return true;
        }
    }
    chunks.remainder().iter().any(|&b| b < 0x20 || b == b'"' || b == b'\\')
}

/// Appends a string with RFC 8785's minimal escapes.
pub fn write_string(out: &mut String, s: &str) {
    out.push('"');
    if !needs_escape(s.as_bytes()) {
        out.push_str(s);
        out.push('"');
        return;
    }
    let mut rest = s;
    while let Some(i) = rest.find(|c: char| c < ' ' || c == '"' || c == '\\') {
        // `find` returns a character boundary within `rest`: the split cannot fail.
        let (plain, tail) = rest.split_at(i);
        out.push_str(plain);
        let mut chars = tail.chars();
        match chars.next() {
            Some('"') => out.push_str("\\\""),
            Some('\\') => out.push_str("\\\\"),
            Some('\n') => out.push_str("\\n"),
            Some('\r') => out.push_str("\\r"),
            Some('\t') => out.push_str("\\t"),
            Some('\u{8}') => out.push_str("\\b"),
            Some('\u{c}') => out.push_str("\\f"),
            Some(c) => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            None => {}
        }
        rest = chars.as_str();
    }
    out.push_str(rest);
    out.push('"');
}

/// Appends a list of strings.
pub fn write_str_list(out: &mut String, items: &[String]) {
    out.push('[');
    for (i, s) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_string(out, s);
    }
    out.push(']');
}

/// The decimal digits of `n`, written at the end of `buf`.
pub(crate) fn u64_digits(mut n: u64, buf: &mut [u8; 20]) -> &[u8] {
    // u64::MAX has 20 digits: the loop ends on `n == 0` before the buffer does.
    let mut used = 0;
    for slot in buf.iter_mut().rev() {
        *slot = b'0' + (n % 10) as u8;
        n /= 10;
        used += 1;
        if n == 0 {
            break;
        }
    }
    let (_, digits) = buf.split_at(buf.len() - used);
    digits
}

/// Appends the decimal form of `n`.
pub(crate) fn push_u64(out: &mut String, n: u64) {
    let mut buf = [0u8; 20];
    out.extend(u64_digits(n, &mut buf).iter().map(|&d| char::from(d)));
}

/// Writes one JSON object whose keys the caller gives in canonical order (RFC 8785:
/// by UTF-16 code units, which for the ASCII keys of records and decisions is byte
/// order; a key out of order fails debug builds). The one writer of the engine's
/// fixed-shape objects: records, decisions, approval ids.
pub struct ObjectWriter<'o> {
    out: &'o mut String,
    first: bool,
    #[cfg(debug_assertions)]
    last: &'static str,
}

impl<'o> ObjectWriter<'o> {
    /// Opens an object at the end of `out`.
    pub fn new(out: &'o mut String) -> ObjectWriter<'o> {
        out.push('{');
        ObjectWriter {
            out,
            first: true,
            #[cfg(debug_assertions)]
            last: "",
        }
    }

    /// Writes the separator and `"key":`; the caller writes the value into the
    /// returned buffer.
    #[inline]
    pub fn key(&mut self, key: &'static str) -> &mut String {
        debug_assert!(!needs_escape(key.as_bytes()), "object key `{key}` needs escaping");
        if self.first {
            self.first = false;
            self.out.push('"');
        } else {
            #[cfg(debug_assertions)]
            debug_assert!(self.last < key, "object keys out of canonical order: `{}` before `{key}`", self.last);
            self.out.push_str(",\"");
        }
        #[cfg(debug_assertions)]
        {
            self.last = key;
        }
        // A key is a plain identifier: its JSON string is itself in quotes.
        self.out.push_str(key);
        self.out.push_str("\":");
        self.out
    }

    /// Writes a string member.
    pub fn string(&mut self, key: &'static str, value: &str) {
        write_string(self.key(key), value);
    }

    /// Writes a list-of-strings member.
    pub fn str_list(&mut self, key: &'static str, items: &[String]) {
        write_str_list(self.key(key), items);
    }

    /// Bytes in the buffer so far (the object included).
    pub fn len(&self) -> usize {
        self.out.len()
    }

    /// Whether the buffer is empty (never: the object's `{` is in it).
    pub fn is_empty(&self) -> bool {
        self.out.is_empty()
    }

    /// Closes the object.
    pub fn finish(self) {
        self.out.push('}');
    }
}

/// Appends a finite number in ECMAScript form (`5.0` → `5`, `1e21` → `1e+21`).
/// Non-finite numbers never reach here (every constructor rejects them); they are
/// written as `null` defensively.
pub fn write_number(out: &mut String, n: f64) {
    if !n.is_finite() {
        out.push_str("null");
        return;
    }
    if n == 0.0 {
        out.push('0');
        return;
    }
    // Fast path: integers that print exactly.
    if n.fract() == 0.0 && n.abs() < 1e15 {
        // Digits by hand: the formatter costs more than the rest of a small object.
        if n < 0.0 {
            out.push('-');
        }
        push_u64(out, n.abs() as u64);
        return;
    }
    // Shortest round-trip digits and exponent from Rust's formatter: "d.ddde[-]x".
    let mut buf = String::with_capacity(32);
    let _ = write!(buf, "{:e}", n.abs());
    let (mant, exp) = match buf.split_once('e') {
        Some(parts) => parts,
        None => (buf.as_str(), "0"),
    };
    let digits: String = mant.chars().filter(|c| *c != '.').collect();
    let e: i64 = exp.parse().unwrap_or(0);
    let k = digits.len() as i64;
    let nexp = e + 1; // value = 0.d1d2…dk × 10^nexp
    if n < 0.0 {
        out.push('-');
    }
    if k <= nexp && nexp <= 21 {
        out.push_str(&digits);
        for _ in 0..(nexp - k) {
            out.push('0');
        }
    } else if 0 < nexp && nexp <= 21 {
        let (a, b) = digits.split_at(nexp as usize);
        out.push_str(a);
        out.push('.');
        out.push_str(b);
    } else if -6 < nexp && nexp <= 0 {
        out.push_str("0.");
        for _ in 0..(-nexp) {
            out.push('0');
        }
        out.push_str(&digits);
    } else {
        let (a, b) = digits.split_at(1);
        out.push_str(a);
        if !b.is_empty() {
            out.push('.');
            out.push_str(b);
        }
        let x = nexp - 1;
        let _ = write!(out, "e{}{}", if x >= 0 { "+" } else { "-" }, x.abs());
    }
}

/// A number as a canonical JSON string.
pub fn number_to_string(n: f64) -> String {
    let mut s = String::new();
    write_number(&mut s, n);
    s
}

/// An error reading JSON text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct JsonError {
    /// What is wrong, lower-case, without a final period.
    pub message: String,
}

/// Reads JSON text into a [`Value`]. `max_depth` bounds nesting (the outermost
/// container is depth 1). Duplicate keys, numbers beyond binary64 and integers beyond
/// the 64-bit range are errors.
pub fn parse(text: &str, max_depth: usize) -> Result<Value, JsonError> {
    parse_with(text, max_depth, true)
}

/// Reads JSON text like [`parse`] but takes every finite number as it is: for callers
/// that refuse numbers beyond ±(2^53 − 1) themselves, naming the path (requests, §9a).
pub(crate) fn parse_numbers_unchecked(text: &str, max_depth: usize) -> Result<Value, JsonError> {
    parse_with(text, max_depth, false)
}

fn parse_with(text: &str, max_depth: usize, check_big: bool) -> Result<Value, JsonError> {
    let mut de = serde_json::Deserializer::from_str(text);
    let big = std::cell::Cell::new(false);
    let v = ValueSeed { depth: 0, max_depth, big: &big, check_big }
        .deserialize(&mut de)
        .map_err(|e| JsonError { message: clean_serde_message(&e) })?;
    de.end().map_err(|e| JsonError { message: clean_serde_message(&e) })?;
    // serde_json hands integer literals beyond u64/i64 to us as floats, like real
    // floats; only when an integral value of that size was seen do we look at the
    // literals themselves.
    if check_big && big.get() && has_big_integer_literal(text) {
        return Err(JsonError { message: BIG_INT.into() });
    }
    Ok(v)
}

/// `s` without its leading `c`s.
fn trim_start(s: &[u8], c: u8) -> &[u8] {
    s.split_at(s.iter().take_while(|&&x| x == c).count()).1
}

/// Whether the JSON text holds an integer literal (no fraction, no exponent) whose
/// magnitude is 2^64 or more.
fn has_big_integer_literal(text: &str) -> bool {
    let b = text.as_bytes();
    let mut i = 0;
    let mut in_str = false;
    while let Some(&c) = b.get(i) {
        if in_str {
            match c {
                b'\\' => i += 2,
                b'"' => {
                    in_str = false;
                    i += 1;
                }
                _ => i += 1,
            }
            continue;
        }
        if c == b'"' {
            in_str = true;
            i += 1;
            continue;
        }
        if c == b'-' || c.is_ascii_digit() {
            let start = i;
            while b.get(i).is_some_and(|x| matches!(x, b'0'..=b'9' | b'.' | b'e' | b'E' | b'+' | b'-')) {
                i += 1;
            }
            // `start <= i <= len`: the splits are in range.
            let tok = b.split_at(i).0.split_at(start).1;
            if !tok.iter().any(|c| matches!(c, b'.' | b'e' | b'E')) {
                let digits = trim_start(trim_start(tok, b'-'), b'0');
                if digits.len() > 20 || (digits.len() == 20 && digits > b"18446744073709551615".as_slice()) {
                    return true;
                }
            }
            continue;
        }
        i += 1;
    }
    false
}

fn clean_serde_message(e: &serde_json::Error) -> String {
    let s = e.to_string();
    if s.contains("recursion limit exceeded") {
        return format!("nesting too deep at line {} column {}", e.line(), e.column());
    }
    // serde_json reports a `\uD800` escape with no low surrogate after it as the end
    // of an escape; say what it is (text is Unicode scalar values, never halves).
    if s.starts_with("unexpected end of hex escape") || s.starts_with("lone leading surrogate") {
        return format!(
            "a lone surrogate escape (\\uD800–\\uDFFF without its pair) is not text, at line {} column {}",
            e.line(),
            e.column()
        );
    }
    s
}

struct ValueSeed<'b> {
    depth: usize,
    max_depth: usize,
    big: &'b std::cell::Cell<bool>,
    check_big: bool,
}

impl<'de> DeserializeSeed<'de> for ValueSeed<'_> {
    type Value = Value;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(ValueVisitor {
            depth: self.depth,
            max_depth: self.max_depth,
            big: self.big,
            check_big: self.check_big,
        })
    }
}

struct ValueVisitor<'b> {
    depth: usize,
    max_depth: usize,
    big: &'b std::cell::Cell<bool>,
    /// Refuse integers beyond the 64-bit range here (off when the caller checks).
    check_big: bool,
}

impl ValueVisitor<'_> {
    fn child(&self, depth: usize) -> ValueSeed<'_> {
        ValueSeed { depth, max_depth: self.max_depth, big: self.big, check_big: self.check_big }
    }
}

/// Integers beyond this magnitude (2^64) are rejected rather than rounded silently.
const INT_LIMIT: f64 = 18_446_744_073_709_551_616.0;

const BIG_INT: &str = "integer beyond the 64-bit range";

impl<'de> Visitor<'de> for ValueVisitor<'_> {
    type Value = Value;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_bool<E: de::Error>(self, b: bool) -> Result<Value, E> {
        Ok(Value::Bool(b))
    }
    fn visit_i64<E: de::Error>(self, n: i64) -> Result<Value, E> {
        Ok(Value::Number(n as f64))
    }
    fn visit_u64<E: de::Error>(self, n: u64) -> Result<Value, E> {
        // Literals within 1024 of u64::MAX round up to 2^64 as binary64, whose canonical
        // form is beyond the 64-bit range (found by the canonical_json fuzz target).
        let f = n as f64;
        if self.check_big && f >= INT_LIMIT {
            return Err(E::custom(BIG_INT));
        }
        Ok(Value::Number(f))
    }
    fn visit_f64<E: de::Error>(self, n: f64) -> Result<Value, E> {
        if !n.is_finite() {
            return Err(E::custom("number out of range"));
        }
        // A value with 2^64 <= |n| < 10^21 is an integer whose canonical (ES6) form is
        // an integer literal beyond the 64-bit range, which this parser rejects: reject
        // it however it is written (`1e20`), so canonical JSON always reads back.
        if self.check_big && n.abs() >= INT_LIMIT && n.abs() < 1e21 {
            return Err(E::custom(BIG_INT));
        }
        // Integer literals beyond u64 arrive here too; `parse` checks the literal.
        if n.fract() == 0.0 && n.abs() >= INT_LIMIT {
            self.big.set(true);
        }
        Ok(Value::Number(n))
    }
    fn visit_str<E: de::Error>(self, s: &str) -> Result<Value, E> {
        Ok(Value::String(s.to_owned()))
    }
    fn visit_string<E: de::Error>(self, s: String) -> Result<Value, E> {
        Ok(Value::String(s))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let depth = self.depth + 1;
        if depth > self.max_depth {
            return Err(de::Error::custom(format!("nesting deeper than {} levels", self.max_depth)));
        }
        let mut out = Vec::new();
        while let Some(v) = seq.next_element_seed(self.child(depth))? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let depth = self.depth + 1;
        if depth > self.max_depth {
            return Err(de::Error::custom(format!("nesting deeper than {} levels", self.max_depth)));
        }
        let mut out = Map::new();
        while let Some(k) = map.next_key::<String>()? {
            if out.contains_key(&k) {
                return Err(de::Error::custom(format!("duplicate key \"{k}\"")));
            }
            let v = map.next_value_seed(self.child(depth))?;
            out.insert(k, v);
        }
        Ok(Value::Object(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn word_at_a_time_escape_scan_agrees_with_a_byte_scan() {
        let naive = |b: &[u8]| b.iter().any(|&c| c < 0x20 || c == b'"' || c == b'\\');
        // Every byte value at every position of 1..=17-byte buffers over a benign
        // background (ASCII, and UTF-8 continuation-range bytes).
        for bg in [b'a', 0x80, 0xff, 0x20, b'!', b'#', b'[', b']', 0x7f] {
            for len in 1..=17 {
                for pos in 0..len {
                    for v in 0..=255u8 {
                        let mut buf = vec![bg; len];
                        buf[pos] = v;
                        assert_eq!(needs_escape(&buf), naive(&buf), "bg {bg:#x} len {len} pos {pos} v {v:#x}");
                    }
                }
            }
        }
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let buf: Vec<u8> = x.to_le_bytes().iter().chain(&(x >> 3).to_le_bytes()).map(|b| b | 0x18).collect();
            assert_eq!(needs_escape(&buf), naive(&buf), "{buf:?}");
        }
    }

    fn num(n: f64) -> String {
        number_to_string(n)
    }

    #[test]
    fn es6_number_forms() {
        assert_eq!(num(5.0), "5");
        assert_eq!(num(-0.0), "0");
        assert_eq!(num(0.5), "0.5");
        assert_eq!(num(1e21), "1e+21");
        assert_eq!(num(1e20), "100000000000000000000");
        assert_eq!(num(1e-7), "1e-7");
        assert_eq!(num(0.000001), "0.000001");
        assert_eq!(num(123.456), "123.456");
        assert_eq!(num(-1.5e-9), "-1.5e-9");
        assert_eq!(num(1e15), "1000000000000000");
        assert_eq!(num(4.5e15), "4500000000000000");
        assert_eq!(num(1.7976931348623157e308), "1.7976931348623157e+308");
        assert_eq!(num(5e-324), "5e-324");
        // RFC 8785 appendix examples
        assert_eq!(num(333_333_333.333_333_3), "333333333.3333333");
        assert_eq!(num(1e30), "1e+30");
        assert_eq!(num(4.50), "4.5");
        assert_eq!(num(2e-3), "0.002");
        assert_eq!(num(0.000000000000000000000000001), "1e-27");
        // The integer fast path, at and around its edges.
        assert_eq!(num(-5.0), "-5");
        assert_eq!(num(10.0), "10");
        assert_eq!(num(-1200.0), "-1200");
        assert_eq!(num(999_999_999_999_999.0), "999999999999999");
        assert_eq!(num(-999_999_999_999_999.0), "-999999999999999");
        assert_eq!(num(-1e15), "-1000000000000000");
        for i in -2000i64..2000 {
            assert_eq!(num(i as f64), i.to_string());
        }
    }

    #[test]
    fn string_escapes_are_minimal() {
        let mut s = String::new();
        write_string(&mut s, "a\"b\\c\n\u{1}\u{7f}€\u{2028}");
        assert_eq!(s, "\"a\\\"b\\\\c\\n\\u0001\u{7f}€\u{2028}\"");
    }

    /// The escaper walks characters; the bytes it writes are those of a byte-by-byte
    /// escaper (the form every record and vector was written in).
    #[test]
    fn string_escapes_agree_with_a_byte_escaper() {
        fn by_bytes(s: &str) -> String {
            let mut out = String::from("\"");
            for c in s.chars() {
                match c {
                    '"' => out.push_str("\\\""),
                    '\\' => out.push_str("\\\\"),
                    '\n' => out.push_str("\\n"),
                    '\r' => out.push_str("\\r"),
                    '\t' => out.push_str("\\t"),
                    '\u{8}' => out.push_str("\\b"),
                    '\u{c}' => out.push_str("\\f"),
                    c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
                    c => out.push(c),
                }
            }
            out.push('"');
            out
        }
        for c in (0u32..0x300).chain([0x2028, 0xfeff, 0x1f600]).filter_map(char::from_u32) {
            for s in [c.to_string(), format!("a{c}"), format!("{c}é{c}"), format!("ab\"{c}\\")] {
                let mut got = String::new();
                write_string(&mut got, &s);
                assert_eq!(got, by_bytes(&s), "{s:?}");
            }
        }
    }

    #[test]
    fn digits_and_objects() {
        for n in [0u64, 1, 9, 10, 99, 100, 12345, u64::MAX / 10, u64::MAX - 1, u64::MAX] {
            let mut s = String::new();
            push_u64(&mut s, n);
            assert_eq!(s, n.to_string());
        }
        let mut s = String::new();
        let mut w = ObjectWriter::new(&mut s);
        w.string("a", "x\"");
        w.str_list("b", &["p".into(), "q".into()]);
        push_u64(w.key("c"), 7);
        w.finish();
        assert_eq!(s, r#"{"a":"x\"","b":["p","q"],"c":7}"#);
        assert_eq!(parse(&s, 4).unwrap().to_canonical_json(), s);
    }

    #[test]
    fn keys_sort_by_utf16() {
        let v = parse(r#"{"\u20ac":1,"\ud83d\ude00":2,"a":3}"#, 8).unwrap_or_default();
        // U+1F600 (surrogates D83D..) sorts before U+20AC in UTF-16? No: 0xD83D > 0x20AC.
        assert_eq!(v.to_canonical_json(), "{\"a\":3,\"€\":1,\"😀\":2}");
        let v = parse(r#"{"\ufb01":1,"\ud83d\ude00":2}"#, 8).unwrap_or_default();
        // U+FB01 (0xFB01) sorts after the surrogate 0xD83D.
        assert_eq!(v.to_canonical_json(), "{\"😀\":2,\"ﬁ\":1}");
    }

    #[test]
    fn lone_surrogate_escapes_are_named() {
        for t in [r#"["\ud800"]"#, r#"["\ud800\u0041"]"#, r#"["\udc00"]"#, r#"{"\udbff":1}"#] {
            let e = parse(t, 4).unwrap_err();
            assert!(e.message.starts_with("a lone surrogate escape") || e.message.contains("surrogate"), "{t}: {e}");
        }
        assert_eq!(parse(r#"["\ud83d\ude00"]"#, 4).unwrap(), Value::Array(vec![Value::String("\u{1f600}".into())]));
    }

    #[test]
    fn parse_rejects_duplicates_depth_and_big_ints() {
        assert!(parse(r#"{"a":1,"a":2}"#, 8).is_err());
        assert!(parse(&"[".repeat(10_000), 64).is_err());
        assert!(parse("[[[1]]]", 2).is_err());
        assert!(parse("[[[1]]]", 3).is_ok());
        assert!(parse("1e309", 8).is_err());
        assert!(parse("18446744073709551616", 8).is_err());
        // u64::MAX is within the 64-bit range, but as binary64 it is 2^64, which is not.
        assert!(parse("18446744073709551615", 8).is_err());
        assert!(parse("18446744073709549568", 8).is_ok());
        assert!(parse(r#"{"":{"oa":18446744073709551610}}"#, 8).is_err());
        assert!(parse("-18446744073709551616", 8).is_err());
        assert!(parse(r#"{"a":[1,"18446744073709551616",1e300,1e21,1.8446744073709550e+19,-1e300]}"#, 8).is_ok());
        // Values whose canonical form would be an integer literal beyond 64 bits are
        // rejected however they are written (found by the canonical_json fuzz target).
        for lit in ["1.8446744073709552e+19", "100000000000000000000.0", "333299999933299999933.9999933999339", "-1e20"]
        {
            let e = parse(&format!("[{lit}]"), 8).unwrap_err();
            assert!(e.message.starts_with("integer beyond the 64-bit range"), "{lit}: {}", e.message);
        }
        // A big integer after a string holding an escaped quote is still found…
        let e = parse(r#"{"s":"a\"b","n":1000000000000000000000}"#, 8).unwrap_err();
        assert_eq!(e.message, "integer beyond the 64-bit range");
        // …and digits inside strings never count.
        assert!(parse(r#"{"s":"100000000000000000000","n":1e21}"#, 8).is_ok());
        assert!(parse("1 2", 8).is_err());
    }
}
