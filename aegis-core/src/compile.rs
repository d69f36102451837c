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
use crate::value::bytes_eq;
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
    /// Every (agent, tool, action) path of the tree that uses an exact name at all
    /// three levels, flattened into one table: the common case costs one probe.
    flat: Flat,
    /// How many rules the bundle it was built over has.
    rule_count: usize,
}

/// The selector fields a candidate list is known to match ([`Field::selector_bit`]).
pub type Proven = u8;

const PROVEN_AGENT_TOOL: Proven = Field::Agent.selector_bit() | Field::Tool.selector_bit();
const PROVEN_AGENT_TOOL_ACTION: Proven = PROVEN_AGENT_TOOL | Field::Action.selector_bit();

/// Separators of the flat key `agent 0xFF tool 0xFF action` / `agent 0xFF tool 0xFE`
/// (no action): bytes that never occur in UTF-8, so the encoding is unambiguous.
const SEP: u8 = 0xFF;
const NO_ACTION: u8 = 0xFE;

/// An open-addressing table from the flat key to a candidate list, built for
/// locality: a slot is one `u64` (32-bit fingerprint, 32-bit entry offset); an entry
/// is `[key offset, key length, list length, list…]` in `arena`, its key bytes are in
/// `keys`. A lookup reads one slot, one entry and one key; the key is always compared
/// in full, so a fingerprint collision only costs another probe.
#[derive(Debug, Default)]
struct Flat {
    slots: Vec<u64>,
    arena: Vec<u32>,
    keys: Vec<u8>,
}

/// Mixes `bytes` into `h` eight bytes at a time (the tail as one zero-padded word),
/// then its length, so that ("ab", "c") and ("a", "bc") differ.
fn mix_str(mut h: u64, bytes: &[u8]) -> u64 {
    const K: u64 = 0x51_7c_c1_b7_27_22_0a_95;
    let mut chunks = bytes.chunks_exact(8);
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        h = (h.rotate_left(5) ^ u64::from_le_bytes(w)).wrapping_mul(K);
    }
    let rest = chunks.remainder();
    let mut w = [0u8; 8];
    if let Some(dst) = w.get_mut(..rest.len()) {
        dst.copy_from_slice(rest);
    }
    h = (h.rotate_left(5) ^ u64::from_le_bytes(w)).wrapping_mul(K);
    (h.rotate_left(5) ^ bytes.len() as u64).wrapping_mul(K)
}

fn flat_hash(agent: &str, tool: &str, action: Option<&str>) -> u64 {
    let mut h = mix_str(0, agent.as_bytes());
    h = mix_str(h, tool.as_bytes());
    h = match action {
        Some(a) => mix_str(h, a.as_bytes()),
        None => (h.rotate_left(5) ^ u64::MAX).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95),
    };
    // The multiply-rotate steps leave weak low bits; finish with a strong mix
    // (splitmix64's finaliser) since the slot is taken from the low bits.
    let mut x = h;
    x ^= x >> 30;
    x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^= x >> 27;
    x = x.wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

fn flat_key(agent: &str, tool: &str, action: Option<&str>) -> Vec<u8> {
    let mut k = Vec::with_capacity(agent.len() + tool.len() + 2 + action.map_or(0, str::len));
    k.extend_from_slice(agent.as_bytes());
    k.push(SEP);
    k.extend_from_slice(tool.as_bytes());
    match action {
        Some(a) => {
            k.push(SEP);
            k.extend_from_slice(a.as_bytes());
        }
        None => k.push(NO_ACTION),
    }
    k
}

/// Whether `key` is the flat key of (agent, tool, action), without building it.
fn key_is(key: &[u8], agent: &str, tool: &str, action: Option<&str>) -> bool {
    let (a, t) = (agent.len(), tool.len());
    let Some((head, rest)) = key.split_at_checked(a) else { return false };
    if !bytes_eq(head, agent.as_bytes()) || rest.first() != Some(&SEP) {
        return false;
    }
    let Some((mid, rest)) = rest.get(1..).and_then(|r| r.split_at_checked(t)) else { return false };
    if !bytes_eq(mid, tool.as_bytes()) {
        return false;
    }
    match action {
        Some(x) => rest.first() == Some(&SEP) && rest.get(1..).is_some_and(|r| bytes_eq(r, x.as_bytes())),
        None => rest == [NO_ACTION],
    }
}

impl Flat {
    fn build(entries: &[(u64, Vec<u8>, &[u32])]) -> Flat {
        let cap = (entries.len() * 2).next_power_of_two().max(2);
        let mut f = Flat { slots: vec![0; cap], arena: Vec::new(), keys: Vec::new() };
        let mask = cap - 1;
        for (hash, key, list) in entries {
            let (Ok(off), Ok(koff), Ok(klen), Ok(llen)) = (
                u32::try_from(f.arena.len()),
                u32::try_from(f.keys.len()),
                u32::try_from(key.len()),
                u32::try_from(list.len()),
            ) else {
                continue; // beyond 4 Gi: left to the tree (still correct)
            };
            if off == u32::MAX {
                continue;
            }
            f.arena.extend_from_slice(&[koff, klen, llen]);
            f.arena.extend_from_slice(list);
            f.keys.extend_from_slice(key);
            let fp = hash >> 32;
            let mut i = (*hash as usize) & mask;
            // At most half full, so a free slot is always found.
            while let Some(slot) = f.slots.get_mut(i) {
                if *slot == 0 {
                    *slot = (fp << 32) | u64::from(off + 1);
                    break;
                }
                i = (i + 1) & mask;
            }
        }
        f
    }

    fn get(&self, agent: &str, tool: &str, action: Option<&str>) -> Option<&[u32]> {
        if self.slots.is_empty() {
            return None;
        }
        let hash = flat_hash(agent, tool, action);
        let mask = self.slots.len() - 1;
        let fp = hash >> 32;
        let mut i = (hash as usize) & mask;
        loop {
            let slot = *self.slots.get(i)?;
            if slot == 0 {
                return None;
            }
            if slot >> 32 == fp {
                let off = (slot & 0xFFFF_FFFF) as usize - 1;
                let head = self.arena.get(off..off + 3)?;
                let (koff, klen, llen) = (*head.first()? as usize, *head.get(1)? as usize, *head.get(2)? as usize);
                let key = self.keys.get(koff..koff + klen)?;
                if key_is(key, agent, tool, action) {
                    return self.arena.get(off + 3..off + 3 + llen);
                }
            }
            i = (i + 1) & mask;
        }
    }
}

impl Index {
    /// Builds the index over a bundle's rules (the flat table included).
    pub fn build(bundle: &Bundle) -> Index {
        let all: Vec<u32> = (0..bundle.rules.len() as u32).collect();
        let (exact, fallback) = split(bundle, &all, Field::Agent);
        let mut idx = Index {
            exact: FxMap::default(),
            fallback: tool_level(bundle, &fallback),
            flat: Flat::default(),
            rule_count: bundle.rules.len(),
        };
        for (name, rules) in exact {
            idx.exact.insert(name, tool_level(bundle, &rules));
        }
        let mut entries: Vec<(u64, Vec<u8>, &[u32])> = Vec::new();
        for (agent, t) in &idx.exact {
            for (tool, a) in &t.exact {
                let all = std::iter::once((None, &a.all));
                for (action, list) in all.chain(a.exact.iter().map(|(x, l)| (Some(&**x), l))) {
                    let key = flat_key(agent, tool, action);
                    entries.push((flat_hash(agent, tool, action), key, list.as_slice()));
                }
            }
        }
        let flat = Flat::build(&entries);
        idx.flat = flat;
        idx
    }

    /// How many rules the bundle the index was built over has: the candidates it
    /// yields are indices below it, and a bundle with another number of rules is not
    /// the one it indexes (evaluation checks both).
    pub fn rule_count(&self) -> usize {
        self.rule_count
    }

    /// Sets the rule count the index claims (tests of evaluation's invariant checks).
    #[cfg(test)]
    pub(crate) fn forge_rule_count(&mut self, n: usize) {
        self.rule_count = n;
    }

    /// The candidate rules for a request, in bundle order, with the selector fields
    /// every candidate is known to match (the index put it in the list only because
    /// its selector on that field matches the request's exact name), so evaluation
    /// need not test them again.
    pub fn lookup(&self, agent: &str, tool: &str, action: Option<&str>) -> (&[u32], Proven) {
        if let Some(list) = self.flat.get(agent, tool, action) {
            let proven = if action.is_some() { PROVEN_AGENT_TOOL_ACTION } else { PROVEN_AGENT_TOOL };
            return (list, proven);
        }
        (self.candidates(agent, tool, action), 0)
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

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]
mod tests {
    use crate::policy::Field;
    use crate::{Engine, EngineOptions};

    const BUNDLE: &str = r#"
aegis: 1
rules:
  - {id: a-pay, match: {agent: a, tool: payments, action: create}, outcome: allow}
  - {id: a-any, match: {agent: a, tool: payments}, outcome: deny}
  - {id: ab-glob, match: {agent: ["a*", b], tool: "pay*"}, outcome: require_approval, approvers: [x]}
  - {id: all-del, match: {tool: delete_customer}, outcome: deny}
  - {id: star, match: {agent: "*", tool: [files, "db"], action: [read, "q*"]}, outcome: allow}
  - {id: unicode, match: {agent: "é", tool: "ü", action: "ß"}, outcome: allow}
  - {id: sess, match: {agent: a, tool: files, action: read, session: s1}, outcome: deny}
  - {id: env, match: {agent: b, tool: payments, environment: prod}, outcome: deny}
"#;

    #[test]
    fn flat_lookup_agrees_with_the_tree_and_proves_only_what_matches() {
        let e = Engine::from_yaml(BUNDLE, EngineOptions::default()).unwrap();
        let c = e.policy();
        let names = ["a", "b", "ab", "é", "e", "", "a\u{ff}", "payments", "files", "db", "ü", "pay", "create"];
        let actions = [None, Some("create"), Some("read"), Some("query"), Some("ß"), Some(""), Some("x")];
        let mut hits = 0;
        for agent in names {
            for tool in names {
                for action in actions {
                    let tree = c.candidates(agent, tool, action);
                    let (list, proven) = c.lookup(agent, tool, action);
                    assert_eq!(list, tree, "{agent:?} {tool:?} {action:?}");
                    if proven != 0 {
                        hits += 1;
                    }
                    for &i in list {
                        let sel = &c.bundle.rules[i as usize].selectors;
                        for (f, v) in [(Field::Agent, Some(agent)), (Field::Tool, Some(tool)), (Field::Action, action)]
                        {
                            if proven & f.selector_bit() == 0 {
                                continue;
                            }
                            let v = v.expect("a proven field has a value");
                            if let Some(ps) = sel.get(f) {
                                assert!(ps.iter().any(|p| p.matches(v)), "rule {i} does not match {f:?}={v:?}");
                            }
                        }
                    }
                }
            }
        }
        assert!(hits > 10, "the flat table answers the exact paths ({hits})");
        // Exact paths are in the flat table; an unknown action under a known tool is not.
        assert_ne!(c.lookup("a", "payments", Some("create")).1, 0);
        assert_ne!(c.lookup("é", "ü", Some("ß")).1, 0);
        assert_eq!(c.lookup("a", "payments", Some("refund")).1, 0);
        assert_eq!(c.lookup("zzz", "payments", Some("create")).1, 0);
    }

    #[test]
    fn flat_keys_cannot_be_confused_by_name_boundaries() {
        let yaml = "aegis: 1\nrules:\n  - {id: r, match: {agent: ab, tool: c, action: d}, outcome: allow}\n";
        let e = Engine::from_yaml(yaml, EngineOptions::default()).unwrap();
        let c = e.policy();
        assert_eq!(c.lookup("ab", "c", Some("d")).0, &[0]);
        for (a, t, x) in [("a", "bc", Some("d")), ("ab", "cd", None), ("ab", "c", None), ("abc", "", Some("d"))] {
            assert_eq!(c.lookup(a, t, x).1 & Field::Action.selector_bit(), 0, "{a:?} {t:?} {x:?}");
        }
        assert_eq!(c.lookup("ab", "c", None), (&[0u32][..], 0b11));
    }

    #[test]
    fn long_flat_keys_and_word_boundaries() {
        // 256-byte names: the longest flat key.
        let (a, t, x) = ("a".repeat(256), "t".repeat(256), "x".repeat(256));
        let yaml = format!(
            "aegis: 1\nrules:\n  - {{id: r, match: {{agent: {a}, tool: {t}, action: {x}}}, outcome: allow}}\n  - {{id: s, match: {{agent: {a}, tool: {t}}}, outcome: deny}}\n"
        );
        let e = Engine::from_yaml(&yaml, EngineOptions::default()).unwrap();
        let c = e.policy();
        assert_eq!(c.lookup(&a, &t, Some(&x)), (&[0u32, 1][..], 0b111));
        // Without an action every rule of (agent, tool) is a candidate.
        assert_eq!(c.lookup(&a, &t, None), (&[0u32, 1][..], 0b11));
        let mut near = x.clone();
        near.pop();
        near.push('y');
        assert_eq!(c.lookup(&a, &t, Some(&near)).1 & Field::Action.selector_bit(), 0);
        // Every key length around a word boundary finds exactly its own entry.
        for n in 1..=12 {
            let name = "k".repeat(n);
            let yaml = format!("aegis: 1\nrules:\n  - {{id: r, match: {{agent: {name}, tool: {name}, action: {name}}}, outcome: allow}}\n");
            let e = Engine::from_yaml(&yaml, EngineOptions::default()).unwrap();
            let c = e.policy();
            assert_eq!(c.lookup(&name, &name, Some(&name)), (&[0u32][..], 0b111), "{n}");
            let shorter = "k".repeat(n - 1);
            assert_eq!(c.lookup(&name, &name, Some(&shorter)).1 & Field::Action.selector_bit(), 0, "{n}");
        }
    }
}
