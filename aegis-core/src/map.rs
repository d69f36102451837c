//! [`Map`], the JSON object type: keys kept in UTF-8 byte order, stored compactly.
//!
//! A request's `params` usually holds a handful of keys. A `BTreeMap` spends a
//! 600-byte node on them, spread over ten cache lines, which a decision reads cold.
//! Up to [`SMALL`] entries are kept instead in one sorted vector (about 56 bytes an
//! entry, contiguous) and scanned linearly; a larger object moves to a `BTreeMap`, so
//! inserting many keys stays `O(log n)` each and hostile input cannot make it
//! quadratic.

use crate::value::{bytes_eq, Value};
use std::collections::{btree_map, BTreeMap};
use std::fmt;

/// Objects with at most this many entries are stored as one sorted vector.
pub const SMALL: usize = 16;

/// A JSON object: keys in UTF-8 byte order.
#[derive(Clone, Default)]
pub struct Map {
    repr: Repr,
}

#[derive(Clone)]
enum Repr {
    /// Sorted by key, unique keys, at most [`SMALL`] entries.
    Small(Vec<(String, Value)>),
    /// More than [`SMALL`] entries (it never moves back).
    Large(BTreeMap<String, Value>),
}

impl Default for Repr {
    fn default() -> Self {
        Repr::Small(Vec::new())
    }
}

impl Map {
    /// An empty object.
    pub const fn new() -> Map {
        Map { repr: Repr::Small(Vec::new()) }
    }

    /// The number of entries.
    pub fn len(&self) -> usize {
        match &self.repr {
            Repr::Small(v) => v.len(),
            Repr::Large(m) => m.len(),
        }
    }

    /// Whether the object has no entries.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The value at `key`.
    #[inline]
    pub fn get(&self, key: &str) -> Option<&Value> {
        match &self.repr {
            Repr::Small(v) => small_position(v, key).and_then(|i| v.get(i)).map(|(_, x)| x),
            Repr::Large(m) => m.get(key),
        }
    }

    /// The value at `key`, mutably.
    pub fn get_mut(&mut self, key: &str) -> Option<&mut Value> {
        match &mut self.repr {
            Repr::Small(v) => small_position(v, key).and_then(|i| v.get_mut(i)).map(|(_, x)| x),
            Repr::Large(m) => m.get_mut(key),
        }
    }

    /// Whether `key` is present.
    pub fn contains_key(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// Sets `key` to `value`; returns the value it replaces.
    pub fn insert(&mut self, key: String, value: Value) -> Option<Value> {
        match &mut self.repr {
            Repr::Small(v) => match v.binary_search_by(|(k, _)| k.as_str().cmp(key.as_str())) {
                Ok(i) => v.get_mut(i).map(|slot| std::mem::replace(&mut slot.1, value)),
                Err(i) if v.len() < SMALL => {
                    v.insert(i, (key, value));
                    None
                }
                Err(_) => {
                    let mut m: BTreeMap<String, Value> = std::mem::take(v).into_iter().collect();
                    m.insert(key, value);
                    self.repr = Repr::Large(m);
                    None
                }
            },
            Repr::Large(m) => m.insert(key, value),
        }
    }

    /// Removes `key`; returns its value.
    pub fn remove(&mut self, key: &str) -> Option<Value> {
        match &mut self.repr {
            Repr::Small(v) => {
                let i = small_position(v, key)?;
                Some(v.remove(i).1)
            }
            Repr::Large(m) => m.remove(key),
        }
    }

    /// The entries in key order.
    pub fn iter(&self) -> Iter<'_> {
        match &self.repr {
            Repr::Small(v) => Iter(IterRepr::Small(v.iter())),
            Repr::Large(m) => Iter(IterRepr::Large(m.iter())),
        }
    }

    /// The keys in order.
    pub fn keys(&self) -> impl Iterator<Item = &String> + '_ {
        self.iter().map(|(k, _)| k)
    }

    /// The values in key order.
    pub fn values(&self) -> impl Iterator<Item = &Value> + '_ {
        self.iter().map(|(_, v)| v)
    }
}

/// Where `key` is in a small map: a linear scan (at most [`SMALL`] entries, compared
/// with [`bytes_eq`]) beats a binary search's unpredictable branches at this size.
#[inline]
fn small_position(v: &[(String, Value)], key: &str) -> Option<usize> {
    v.iter().position(|(k, _)| bytes_eq(k.as_bytes(), key.as_bytes()))
}

/// Iterator over a [`Map`]'s entries in key order.
pub struct Iter<'a>(IterRepr<'a>);

enum IterRepr<'a> {
    Small(std::slice::Iter<'a, (String, Value)>),
    Large(btree_map::Iter<'a, String, Value>),
}

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a String, &'a Value);

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        match &mut self.0 {
            IterRepr::Small(it) => it.next().map(|(k, v)| (k, v)),
            IterRepr::Large(it) => it.next(),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        match &self.0 {
            IterRepr::Small(it) => it.size_hint(),
            IterRepr::Large(it) => it.size_hint(),
        }
    }
}

impl ExactSizeIterator for Iter<'_> {}

/// Owning iterator over a [`Map`]'s entries in key order.
pub struct IntoIter(IntoIterRepr);

enum IntoIterRepr {
    Small(std::vec::IntoIter<(String, Value)>),
    Large(btree_map::IntoIter<String, Value>),
}

impl Iterator for IntoIter {
    type Item = (String, Value);

    fn next(&mut self) -> Option<Self::Item> {
        match &mut self.0 {
            IntoIterRepr::Small(it) => it.next(),
            IntoIterRepr::Large(it) => it.next(),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        match &self.0 {
            IntoIterRepr::Small(it) => it.size_hint(),
            IntoIterRepr::Large(it) => it.size_hint(),
        }
    }
}

impl ExactSizeIterator for IntoIter {}

impl IntoIterator for Map {
    type Item = (String, Value);
    type IntoIter = IntoIter;

    fn into_iter(self) -> IntoIter {
        match self.repr {
            Repr::Small(v) => IntoIter(IntoIterRepr::Small(v.into_iter())),
            Repr::Large(m) => IntoIter(IntoIterRepr::Large(m.into_iter())),
        }
    }
}

impl<'a> IntoIterator for &'a Map {
    type Item = (&'a String, &'a Value);
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

impl FromIterator<(String, Value)> for Map {
    fn from_iter<I: IntoIterator<Item = (String, Value)>>(iter: I) -> Map {
        let mut m = Map::new();
        m.extend(iter);
        m
    }
}

impl<const N: usize> From<[(String, Value); N]> for Map {
    fn from(entries: [(String, Value); N]) -> Map {
        entries.into_iter().collect()
    }
}

impl Extend<(String, Value)> for Map {
    fn extend<I: IntoIterator<Item = (String, Value)>>(&mut self, iter: I) {
        for (k, v) in iter {
            self.insert(k, v);
        }
    }
}

impl PartialEq for Map {
    fn eq(&self, other: &Map) -> bool {
        self.len() == other.len() && self.iter().zip(other.iter()).all(|(a, b)| a == b)
    }
}

impl fmt::Debug for Map {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::{Map, SMALL};
    use crate::value::Value;
    use std::collections::BTreeMap;

    /// Every operation agrees with a `BTreeMap` across the small/large boundary.
    #[test]
    fn behaves_like_a_btreemap() {
        let mut m = Map::new();
        let mut b: BTreeMap<String, Value> = BTreeMap::new();
        // A fixed shuffle of 0..60 (multiplication by a unit mod 61).
        let keys: Vec<String> = (1..61u32).map(|i| format!("k{}", (i * 17) % 61)).collect();
        for (n, k) in keys.iter().enumerate() {
            let v = Value::from(n as f64);
            assert_eq!(m.insert(k.clone(), v.clone()), b.insert(k.clone(), v));
            // Replacing keeps one entry.
            assert_eq!(m.insert(k.clone(), Value::from(-1.0)), b.insert(k.clone(), Value::from(-1.0)));
            assert_eq!(m.len(), b.len());
            assert!(m.iter().map(|(k, v)| (k.clone(), v.clone())).eq(b.clone()));
            for probe in &keys {
                assert_eq!(m.get(probe), b.get(probe));
                assert_eq!(m.contains_key(probe), b.contains_key(probe));
            }
            assert_eq!(m.get("absent"), None);
        }
        assert!(m.len() > SMALL);
        for k in keys.iter().step_by(3) {
            assert_eq!(m.remove(k), b.remove(k));
            assert_eq!(m.remove(k), None);
        }
        assert!(m.clone().into_iter().eq(b.clone()));
        assert_eq!(m.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    }

    #[test]
    fn small_maps_stay_sorted_and_compare_by_content() {
        let a: Map = [("b".to_string(), Value::from(1.0)), ("a".to_string(), Value::from(2.0))].into();
        let keys: Vec<&String> = a.keys().collect();
        assert_eq!(keys, ["a", "b"]);
        let mut c = Map::new();
        c.insert("a".into(), Value::from(2.0));
        assert_ne!(a, c);
        c.insert("b".into(), Value::from(1.0));
        assert_eq!(a, c);
        assert_eq!(format!("{a:?}"), r#"{"a": Number(2.0), "b": Number(1.0)}"#);
        let mut d = c.clone();
        if let Some(v) = d.get_mut("a") {
            *v = Value::Null;
        }
        assert_eq!(d.get("a"), Some(&Value::Null));
        assert_eq!(d.remove("a"), Some(Value::Null));
        assert_eq!(d.len(), 1);
        assert!(Map::new().is_empty());
    }

    #[test]
    fn non_ascii_keys_sort_by_utf8_bytes() {
        let mut m = Map::new();
        for k in ["é", "z", "\u{10000}", "a", "\u{ffff}"] {
            m.insert(k.into(), Value::Null);
        }
        let got: Vec<&str> = m.keys().map(String::as_str).collect();
        let mut want = vec!["é", "z", "\u{10000}", "a", "\u{ffff}"];
        want.sort();
        assert_eq!(got, want);
    }
}
