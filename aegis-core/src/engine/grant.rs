//! Approvals (§4, §6.2): approval ids, grant tokens (`v1.P.M`) — issuing, checking
//! and using them once — and grant ttls.

use super::ControlError;
use crate::audit::{hex_into, hmac_bytes, hmac_sha256};
use crate::json::{write_object, write_str_list, write_string, ObjectWriter};
use crate::request::{check_name, ApprovalPart, Request};
use crate::time::Millis;
use crate::value::{Map, Value};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::Mac;
use sha2::{Digest, Sha256};
use std::collections::HashMap;

/// The approval id of a request under a policy with these determining rules (§4):
/// `apr_` + the first 32 hex digits of SHA-256 of the canonical JSON of
/// `{"policy", "request", "rules"}`, where `request` is
/// [`Request::approval_parts`] and `params_json` is the canonical JSON of the
/// request's `params` (which the engine has at hand already). The one approval-id
/// function: [`Engine::approval_id`](super::Engine::approval_id) calls it too.
pub fn approval_id(policy_hash: &str, req: &Request, params_json: &str, rules: &[String]) -> String {
    let mut o = String::with_capacity(256 + params_json.len());
    let mut top = ObjectWriter::new(&mut o);
    top.string("policy", policy_hash);
    let mut request = ObjectWriter::new(top.key("request"));
    for (field, part) in req.approval_parts() {
        let out = request.key(field.name());
        match part {
            ApprovalPart::Name(s) => write_string(out, s),
            ApprovalPart::Names(items) => write_str_list(out, items),
            ApprovalPart::Object(_) if field == crate::request::Field::Params => out.push_str(params_json),
            ApprovalPart::Object(Some(m)) => write_object(out, m),
            ApprovalPart::Object(None) => out.push_str("{}"),
        }
    }
    request.finish();
    top.str_list("rules", rules);
    top.finish();
    let mut id = String::with_capacity(4 + 64);
    id.push_str("apr_");
    hex_into(&mut id, &Sha256::digest(o.as_bytes()));
    id.truncate(4 + 32);
    id
}

/// Whether `s` is an approval id: `apr_` and 32 lower-case hex digits.
pub fn is_approval_id(s: &str) -> bool {
    s.len() == 36
        && s.starts_with("apr_")
        && s.bytes().skip(4).all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Builds a grant token (the CLI's `aegis grant`): `exp = floor(now) + ttl`.
pub fn issue_grant(
    key: &[u8],
    approval_id: &str,
    approver: &str,
    ttl_seconds: u64,
    now_ms: Millis,
) -> Result<String, ControlError> {
    if !is_approval_id(approval_id) {
        return Err(ControlError::new(format!("`{approval_id}` is not an approval id (apr_ and 32 hex digits)")));
    }
    check_name("approver", approver).map_err(|e| ControlError::new(e.message))?;
    if ttl_seconds == 0 || ttl_seconds > 366 * 86_400 {
        return Err(ControlError::new("the ttl must be between 1 second and 366 days"));
    }
    let exp = now_ms.div_euclid(1000) + ttl_seconds as i64;
    Ok(make_token(key, &Grant { by: approver.to_owned(), exp, id: approval_id.to_owned() }))
}

/// Parses a grant ttl: `N` seconds or `N` followed by `s`, `m`, `h` or `d`.
pub fn parse_ttl(s: &str) -> Option<u64> {
    if let Ok(n) = s.parse::<u64>() {
        return Some(n);
    }
    crate::policy::parse_duration(s).map(|ms| (ms / 1000) as u64)
}

/// A grant's payload: the canonical JSON `{"by","exp","id"}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grant {
    /// Who approved (a name: 1–256 bytes, no control characters).
    pub by: String,
    /// Expiry, Unix seconds: the grant is refused from `exp × 1000` ms on.
    pub exp: i64,
    /// The approval id granted.
    pub id: String,
}

/// Builds a token for `grant` with `key`.
pub fn make_token(key: &[u8], grant: &Grant) -> String {
    let mut m = Map::new();
    m.insert("by".into(), Value::String(grant.by.clone()));
    m.insert("exp".into(), Value::Number(grant.exp as f64));
    m.insert("id".into(), Value::String(grant.id.clone()));
    let p = URL_SAFE_NO_PAD.encode(Value::Object(m).to_canonical_json().as_bytes());
    let mac = URL_SAFE_NO_PAD.encode(hmac_bytes(key, p.as_bytes()));
    format!("v1.{p}.{mac}")
}

/// Why a grant was not accepted (messages from the shared catalogue).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GrantRejection {
    /// The engine has no approval key.
    NoKey,
    /// Not `v1.P.M`, bad base64, or a payload other than exactly `{by, exp, id}`.
    Malformed,
    /// The MAC does not verify.
    BadSignature,
    /// `exp × 1000 ≤` the request time.
    Expired,
    /// For another approval id.
    OtherRequest,
    /// Used before on this engine.
    Used,
}

impl GrantRejection {
    /// The message listed in the decision's errors.
    pub fn message(self) -> &'static str {
        match self {
            GrantRejection::NoKey => "no approval key is configured",
            GrantRejection::Malformed => "malformed grant",
            GrantRejection::BadSignature => "grant signature does not verify",
            GrantRejection::Expired => "grant expired",
            GrantRejection::OtherRequest => "grant is for another request",
            GrantRejection::Used => "grant already used",
        }
    }
}

/// A checked token: its payload and MAC (the key under which it is remembered).
pub struct Checked {
    /// The payload, verified.
    pub grant: Grant,
    /// The MAC bytes: a used grant is remembered by them.
    pub mac: [u8; 32],
}

/// Checks form, payload, MAC, expiry and id (not reuse).
pub fn check(key: Option<&[u8]>, token: &str, approval_id: &str, time_ms: i64) -> Result<Checked, GrantRejection> {
    let key = key.ok_or(GrantRejection::NoKey)?;
    let mut parts = token.split('.');
    let (Some("v1"), Some(p), Some(m), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(GrantRejection::Malformed);
    };
    let payload = URL_SAFE_NO_PAD.decode(p).map_err(|_| GrantRejection::Malformed)?;
    let mac_bytes = URL_SAFE_NO_PAD.decode(m).map_err(|_| GrantRejection::Malformed)?;
    let grant = parse_payload(&payload).ok_or(GrantRejection::Malformed)?;
    let mac: [u8; 32] = mac_bytes.as_slice().try_into().map_err(|_| GrantRejection::BadSignature)?;
    let mut h = hmac_sha256(key);
    h.update(p.as_bytes());
    // Constant-time comparison.
    h.verify_slice(&mac).map_err(|_| GrantRejection::BadSignature)?;
    if grant.exp.saturating_mul(1000) <= time_ms {
        return Err(GrantRejection::Expired);
    }
    if grant.id != approval_id {
        return Err(GrantRejection::OtherRequest);
    }
    Ok(Checked { grant, mac })
}

fn parse_payload(bytes: &[u8]) -> Option<Grant> {
    let text = std::str::from_utf8(bytes).ok()?;
    let Value::Object(m) = crate::json::parse(text, 2).ok()? else { return None };
    if m.len() != 3 {
        return None;
    }
    let by = m.get("by")?.as_str()?.to_owned();
    let id = m.get("id")?.as_str()?.to_owned();
    let exp = m.get("exp")?.as_f64()?;
    if exp.fract() != 0.0 || exp.abs() > 9.0e15 {
        return None;
    }
    Some(Grant { by, exp: exp as i64, id })
}

/// Grants used on this engine, remembered until they expire.
///
/// Expired entries are dropped once the table is large; the request time at which
/// that happens becomes a horizon, and any grant expiring at or before it counts as
/// expired from then on — so a request with an older `time` cannot reuse a grant that
/// was forgotten.
#[derive(Default)]
pub struct UsedGrants {
    used: HashMap<[u8; 32], i64>,
    horizon_ms: i64,
}

impl UsedGrants {
    /// Whether a checked grant can still be used: not used before, not behind the
    /// horizon. Changes nothing.
    pub fn check_unused(&self, c: &Checked) -> Result<(), GrantRejection> {
        if c.grant.exp.saturating_mul(1000) <= self.horizon_ms {
            return Err(GrantRejection::Expired);
        }
        if self.used.contains_key(&c.mac) {
            return Err(GrantRejection::Used);
        }
        Ok(())
    }

    /// Consumes a checked grant; fails if it was used, or fell behind the horizon.
    pub fn consume(&mut self, c: &Checked, time_ms: i64) -> Result<(), GrantRejection> {
        self.check_unused(c)?;
        if self.used.len() >= 4096 {
            self.horizon_ms = self.horizon_ms.max(time_ms);
            let h = self.horizon_ms;
            self.used.retain(|_, exp| exp.saturating_mul(1000) > h);
        }
        self.used.insert(c.mac, c.grant.exp);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The streamed approval id hashes exactly the canonical JSON of
    /// `{"policy", "request": Request::approval_value(), "rules"}`.
    #[test]
    fn approval_id_hashes_the_approval_request() {
        let l = crate::request::RequestLimits::default();
        for text in [
            r#"{"agent":"a","tool":"t"}"#,
            r#"{"agent":"a","tool":"t","action":"x","session":"s","environment":"e","chain":["o","p"],"params":{"n":1.5,"s":"\u0001"},"context":{"k":[1]},"time":"2026-01-05T10:00:00Z","approval":"v1.x.y"}"#,
        ] {
            let r = Request::from_json(text, &l).unwrap();
            let mut params = String::new();
            write_object(&mut params, &r.params);
            let rules = vec!["r1".to_string(), "limit:l".to_string()];
            let mut doc = Map::new();
            doc.insert("policy".into(), Value::from("h"));
            doc.insert("request".into(), r.approval_value());
            doc.insert("rules".into(), Value::Array(rules.iter().map(|s| Value::from(s.as_str())).collect()));
            let want = crate::audit::sha256_hex(Value::Object(doc).to_canonical_json().as_bytes());
            let id = approval_id("h", &r, &params, &rules);
            assert_eq!(id, format!("apr_{}", &want[..32]));
            assert!(is_approval_id(&id));
        }
    }

    #[test]
    fn ttls() {
        assert_eq!(parse_ttl("90"), Some(90));
        assert_eq!(parse_ttl("15m"), Some(900));
        assert_eq!(parse_ttl("2d"), Some(172_800));
        assert_eq!(parse_ttl("soon"), None);
        let key = b"k";
        let id = "apr_0123456789abcdef0123456789abcdef";
        let t = issue_grant(key, id, "alice", 60, 1_500).unwrap();
        let c = check(Some(key), &t, id, 1_500).unwrap();
        assert_eq!(c.grant.exp, 61);
        assert!(issue_grant(key, "apr_x", "alice", 60, 0).is_err());
        assert!(issue_grant(key, id, "", 60, 0).is_err());
        assert!(issue_grant(key, id, "alice", 0, 0).is_err());
    }

    #[test]
    fn token_round_trip_and_failures() {
        let g = Grant { by: "alice".into(), exp: 2_000_000_000, id: "apr_x".into() };
        let t = make_token(b"k", &g);
        assert!(t.starts_with("v1."));
        let c = check(Some(b"k"), &t, "apr_x", 1_000).map(|c| c.grant);
        assert_eq!(c, Ok(g.clone()));
        assert_eq!(check(None, &t, "apr_x", 0).err(), Some(GrantRejection::NoKey));
        assert_eq!(check(Some(b"other"), &t, "apr_x", 0).err(), Some(GrantRejection::BadSignature));
        assert_eq!(check(Some(b"k"), &t, "apr_y", 0).err(), Some(GrantRejection::OtherRequest));
        assert_eq!(check(Some(b"k"), &t, "apr_x", 2_000_000_000_000).err(), Some(GrantRejection::Expired));
        assert_eq!(check(Some(b"k"), "garbage", "apr_x", 0).err(), Some(GrantRejection::Malformed));
        assert_eq!(check(Some(b"k"), "v1.!!.xx", "apr_x", 0).err(), Some(GrantRejection::Malformed));
        let mut used = UsedGrants::default();
        assert!(is_approval_id("apr_0123456789abcdef0123456789abcdef"));
        assert!(!is_approval_id("apr_0123456789ABCDEF0123456789abcdef") && !is_approval_id("apr_x"));
        let Ok(c) = check(Some(b"k"), &t, "apr_x", 0) else { panic!() };
        assert_eq!(used.consume(&c, 0), Ok(()));
        assert_eq!(used.consume(&c, 0), Err(GrantRejection::Used));
    }
}
