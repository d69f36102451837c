//! Where the fleet's state lives in Redis. Every key starts with the hash tag
//! `{PREFIX}`, so on Redis Cluster all of a fleet's keys are in one slot and the atomic
//! step (one Lua script over several keys) is allowed.
//!
//! | key                                   | type   | holds                                  |
//! |---------------------------------------|--------|----------------------------------------|
//! | `{P}epoch`                            | string | the fleet's epoch (`….accepted` after a reset) |
//! | `{P}kills`                            | hash   | `SCOPE:ID` → reason                    |
//! | `{P}policy`                           | string | the policy hash the fleet announced    |
//! | `{P}limit:ID:WINDOW_MS:WINDOW:PER`    | hash   | `c` calls, `s` sum (`%.17g`)           |
//! | `{P}grant:MAC`                        | string | a used grant (MAC in hex)              |
//! | `{P}marks:SESSION`                    | hash   | label → expiry (Unix ms)               |
//!
//! and the pub/sub channel `{P}events` (a message on every kill and revive).

use aegis_core::state::LimitStep;
use aegis_core::Value;

/// The key names of one fleet.
#[derive(Clone, Debug)]
pub struct Keys {
    tag: String,
}

impl Keys {
    /// The keys under `prefix` (as validated by the configuration: no braces).
    pub fn new(prefix: &str) -> Keys {
        Keys { tag: format!("{{{prefix}}}") }
    }

    fn key(&self, rest: &str) -> String {
        let mut k = String::with_capacity(self.tag.len() + rest.len());
        k.push_str(&self.tag);
        k.push_str(rest);
        k
    }

    /// The epoch.
    pub fn epoch(&self) -> String {
        self.key("epoch")
    }

    /// The kill switches.
    pub fn kills(&self) -> String {
        self.key("kills")
    }

    /// The announced policy hash.
    pub fn policy(&self) -> String {
        self.key("policy")
    }

    /// The channel kills and revives are published on.
    pub fn events(&self) -> String {
        self.key("events")
    }

    /// A limit counter: the limit id, its key values (canonical JSON array, `null` for
    /// an absent field), its window length and the window index.
    pub fn limit(&self, l: &LimitStep<'_>) -> String {
        let per = Value::Array(l.per.iter().map(|v| v.as_deref().map_or(Value::Null, Value::from)).collect());
        self.key(&format!("limit:{}:{}:{}:{}", l.id, l.window_ms, l.window, per.to_canonical_json()))
    }

    /// The pattern of every limit counter (for `aegis state list`).
    pub fn limit_pattern(&self) -> String {
        // `[` `]` `*` `?` `\` in the tag would be glob syntax; escape them.
        let mut p = String::new();
        for c in self.tag.chars() {
            if matches!(c, '[' | ']' | '*' | '?' | '\\') {
                p.push('\\');
            }
            p.push(c);
        }
        p.push_str("limit:*");
        p
    }

    /// The part of a limit key after the tag and `limit:`.
    pub fn limit_suffix<'k>(&self, key: &'k str) -> Option<&'k str> {
        key.strip_prefix(self.tag.as_str())?.strip_prefix("limit:")
    }

    /// A used grant.
    pub fn grant(&self, mac: &[u8; 32]) -> String {
        let mut rest = String::with_capacity(6 + 64);
        rest.push_str("grant:");
        aegis_core::audit::hex_into(&mut rest, mac);
        self.key(&rest)
    }

    /// A session's marks.
    pub fn marks(&self, session: &str) -> String {
        self.key(&format!("marks:{session}"))
    }
}

/// The field of a kill in the kills hash.
pub fn kill_field(scope: aegis_core::KillScope, id: &str) -> String {
    format!("{}:{id}", scope.as_str())
}

/// A kills-hash field back as scope and id.
pub fn parse_kill_field(field: &str) -> Option<(aegis_core::KillScope, &str)> {
    let (scope, id) = field.split_once(':')?;
    Some((aegis_core::KillScope::parse(scope)?, id))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn one_hash_tag_for_every_key() {
        let k = Keys::new("aegis:");
        let per = [Some("a:1".to_string()), None];
        let l = LimitStep {
            id: "budget",
            per: &per,
            window_ms: 86_400_000,
            window: 20_458,
            window_end_ms: 0,
            max_calls: None,
            max_sum: None,
            add: 0.0,
            forced: false,
            assumed_exceeded: false,
        };
        assert_eq!(k.limit(&l), r#"{aegis:}limit:budget:86400000:20458:["a:1",null]"#);
        assert_eq!(k.epoch(), "{aegis:}epoch");
        let mut mac = [0u8; 32];
        mac[0] = 0xab;
        mac[31] = 0x0f;
        assert_eq!(k.grant(&mac), format!("{{aegis:}}grant:ab{}0f", "00".repeat(30)));
        assert_eq!(k.limit_suffix(&k.limit(&l)), Some(r#"budget:86400000:20458:["a:1",null]"#));
        assert_eq!(Keys::new("a*b").limit_pattern(), r"{a\*b}limit:*");
        assert_eq!(parse_kill_field("agent:x:y"), Some((aegis_core::KillScope::Agent, "x:y")));
    }
}
