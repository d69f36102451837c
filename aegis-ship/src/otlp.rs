//! OTLP/HTTP JSON encoding of audit records as log records, and gzip.

use crate::reader::Line;
use std::fmt::Write as _;
use std::io::Write as _;

/// A JSON string (RFC 8785's minimal escaping, which is valid JSON), written in place.
fn js(out: &mut String, s: &str) {
    aegis_core::json::write_string(out, s);
}

fn str_attr(out: &mut String, first: &mut bool, key: &str, value: Option<&str>) {
    let Some(v) = value else { return };
    if !*first {
        out.push(',');
    }
    *first = false;
    out.push_str(r#"{"key":"#);
    js(out, key);
    out.push_str(r#","value":{"stringValue":"#);
    js(out, v);
    out.push_str("}}");
}

/// `timeUnixNano` of a record's `time` (RFC 3339, milliseconds).
pub fn time_unix_nano(time: &str) -> Option<String> {
    let ms = aegis_core::time::parse_rfc3339(time).ok()?;
    u64::try_from(ms).ok().map(|ms| (u128::from(ms) * 1_000_000).to_string())
}

/// An `ExportLogsServiceRequest` in OTLP JSON: one resource (`service.name`), one
/// scope (`aegis`), one log record per line. The body is the record's exact line.
pub fn encode(lines: &[Line], service_name: &str, observed_unix_nano: u128) -> String {
    let mut out = String::with_capacity(lines.iter().map(|l| l.text.len() * 2 + 400).sum::<usize>() + 200);
    out.push_str(r#"{"resourceLogs":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"#);
    js(&mut out, service_name);
    out.push_str(r#"}}]},"scopeLogs":[{"scope":{"name":"aegis","version":"#);
    js(&mut out, env!("CARGO_PKG_VERSION"));
    out.push_str(r#"},"logRecords":["#);
    for (i, l) in lines.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push('{');
        if let Some(t) = l.time.as_deref().and_then(time_unix_nano) {
            let _ = write!(out, r#""timeUnixNano":"{t}","#);
        }
        let _ = write!(out, r#""observedTimeUnixNano":"{observed_unix_nano}","#);
        out.push_str(r#""body":{"stringValue":"#);
        js(&mut out, &l.text);
        out.push_str(r#"},"attributes":["#);
        let mut first = true;
        str_attr(&mut out, &mut first, "aegis.outcome", l.outcome.as_deref());
        str_attr(&mut out, &mut first, "aegis.agent", l.agent.as_deref());
        str_attr(&mut out, &mut first, "aegis.tool", l.tool.as_deref());
        str_attr(&mut out, &mut first, "aegis.hash", l.hash.as_deref());
        if let Some(seq) = l.seq {
            if !first {
                out.push(',');
            }
            let _ = write!(out, r#"{{"key":"aegis.seq","value":{{"intValue":"{seq}"}}}}"#);
        }
        out.push_str("]}");
    }
    out.push_str("]}]}]}");
    out
}

/// gzip-compresses a body.
pub fn gzip(body: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut enc = flate2::write::GzEncoder::new(Vec::with_capacity(body.len() / 4 + 64), flate2::Compression::fast());
    enc.write_all(body)?;
    enc.finish()
}
