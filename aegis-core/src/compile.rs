//! The compiled index: a decision tree over agent → tool → action.
//!
//! At each level, rules naming exact values are bucketed by that value; rules with a
//! glob or no selector at that level are merged into every exact bucket they could
//! match and into a fallback bucket used for values no rule names exactly. A request
//! therefore visits only rules that can apply, and the cost of a lookup does not grow
//! with the number of agents or with rules written for others. Candidates keep bundle
//! order, and every candidate's selectors are still checked in full, so the index only
//! prunes.

use crate::policy::{Bundle, Field, Pattern};
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// A small, fast, non-cryptographic string hasher (FxHash) for the index. The keys
/// are policy names, not attacker-chosen table contents, and lookups of unknown
/// names fall back to a fixed bucket.
#[derive(Default, Clone, Copy)]
pub struct FxHasher(u64);

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        const K: u64 = 0x51_7c_c1_b7_27_22_0a_95;
        let mut h = self.0;
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            h = (h.rotate_left(5) ^ u64::from_le_bytes(w)).wrapping_mul(K);
        }
        for &b in chunks.remainder() {
            h = (h.rotate_left(5) ^ u64::from(b)).wrapping_mul(K);
        }
        self.0 = h;
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

/// Exact names with their candidate rules.
type Buckets = Vec<(Box<str>, Vec<u32>)>;

type FxMap<V> = HashMap<Box<str>, V, BuildHasherDefault<FxHasher>>;

/// Rule indices at the action level.
#[derive(Debug, Default)]
struct ActionLevel {
    exact: FxMap<Vec<u32>>,
    fallback: Vec<u32>,
    /// Every rule of the tool bucket: the candidates when the request has no action.
    all: Vec<u32>,
}

#[derive(Debug, Default)]
struct ToolLevel {
    exact: FxMap<ActionLevel>,
    fallback: ActionLevel,
}

/// The index over a bundle's rules.
#[derive(Debug, Default)]
pub struct Index {
    exact: FxMap<ToolLevel>,
    fallback: ToolLevel,
}

impl Index {
    /// Builds the index.
    pub fn build(bundle: &Bundle) -> Index {
        let all: Vec<u32> = (0..bundle.rules.len() as u32).collect();
        let (exact, fallback) = split(bundle, &all, Field::Agent);
        let mut idx = Index { exact: FxMap::default(), fallback: tool_level(bundle, &fallback) };
        for (name, rules) in exact {
            idx.exact.insert(name, tool_level(bundle, &rules));
        }
        idx
    }

    /// The candidate rules for a request, in bundle order.
    pub fn candidates(&self, agent: &str, tool: &str, action: Option<&str>) -> &[u32] {
        let t = self.exact.get(agent).unwrap_or(&self.fallback);
        let a = t.exact.get(tool).unwrap_or(&t.fallback);
        match action {
            None => &a.all,
            Some(x) => a.exact.get(x).unwrap_or(&a.fallback),
        }
    }
}

fn tool_level(bundle: &Bundle, rules: &[u32]) -> ToolLevel {
    let (exact, fallback) = split(bundle, rules, Field::Tool);
    let mut t = ToolLevel { exact: FxMap::default(), fallback: action_level(bundle, &fallback) };
    for (name, rs) in exact {
        t.exact.insert(name, action_level(bundle, &rs));
    }
    t
}

fn action_level(bundle: &Bundle, rules: &[u32]) -> ActionLevel {
    let (exact, fallback) = split(bundle, rules, Field::Action);
    ActionLevel { exact: exact.into_iter().collect(), fallback, all: rules.to_vec() }
}

/// Splits `rules` on one field: for every exact name some rule uses, the rules that
/// can match that name; and the rules that can match a name no rule uses exactly.
/// Linear in the rules plus (names × generic rules), where generic rules are those
/// with a glob or no selector on this field.
fn split(bundle: &Bundle, rules: &[u32], field: Field) -> (Buckets, Vec<u32>) {
    let pats = |i: u32| bundle.rules.get(i as usize).and_then(|r| r.selectors.get(field));
    let mut by_name: HashMap<&str, Vec<u32>, BuildHasherDefault<FxHasher>> = HashMap::default();
    let mut generic: Vec<u32> = Vec::new();
    for &i in rules {
        match pats(i) {
            None => generic.push(i),
            Some(ps) => {
                let mut has_glob = false;
                for p in ps {
                    match p {
                        Pattern::Exact(s) => {
                            let list = by_name.entry(s.as_str()).or_default();
                            if list.last() != Some(&i) {
                                list.push(i);
                            }
                        }
                        Pattern::Glob(_) => has_glob = true,
                    }
                }
                if has_glob {
                    generic.push(i);
                }
            }
        }
    }
    let mut exact = Vec::with_capacity(by_name.len());
    for (name, list) in by_name {
        let extra = generic.iter().copied().filter(|&i| pats(i).is_none_or(|ps| ps.iter().any(|p| p.matches(name))));
        let mut merged: Vec<u32> = list.iter().copied().chain(extra).collect();
        merged.sort_unstable();
        merged.dedup();
        exact.push((Box::from(name), merged));
    }
    (exact, generic)
}
