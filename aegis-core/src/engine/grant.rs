//! Approval grant tokens (§6.2): `v1.P.M`.

use crate::audit::hmac_bytes;
use crate::value::{Map, Value};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::collections::HashMap;

/// A grant's payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grant {
    /// Who approved.
    pub by: String,
    /// Expiry, Unix seconds.
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
    /// The payload.
    pub grant: Grant,
    /// The MAC bytes.
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
    let mut h = <Hmac<Sha256> as Mac>::new_from_slice(key).map_err(|_| GrantRejection::BadSignature)?;
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
    /// Consumes a checked grant; fails if it was used, or fell behind the horizon.
    pub fn consume(&mut self, c: &Checked, time_ms: i64) -> Result<(), GrantRejection> {
        if c.grant.exp.saturating_mul(1000) <= self.horizon_ms {
            return Err(GrantRejection::Expired);
        }
        if self.used.contains_key(&c.mac) {
            return Err(GrantRejection::Used);
        }
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
        let Ok(c) = check(Some(b"k"), &t, "apr_x", 0) else { panic!() };
        assert_eq!(used.consume(&c, 0), Ok(()));
        assert_eq!(used.consume(&c, 0), Err(GrantRejection::Used));
    }
}
