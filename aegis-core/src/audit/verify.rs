//! Verifying an audit log: hashes, chain (`seq`, `prev`) and signatures.

use super::{hmac_hex, sha256_hex, GENESIS};
use crate::value::Value;
use std::io::BufRead;

/// What verifying a log found: it is intact.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifyReport {
    /// How many records were checked.
    pub records: u64,
    /// Hash of the last record (`GENESIS` when empty).
    pub head: String,
}

/// The first bad record.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}{message}", .seq.map(|s| format!("seq {s}: ")).unwrap_or_default())]
pub struct VerifyError {
    /// The seq of the first bad record (as expected at that position), when known.
    pub seq: Option<u64>,
    /// The file and line.
    pub at: String,
    /// What is wrong.
    pub message: String,
}

/// Recomputes a record's hash; returns its `seq` and `hash`.
pub(crate) fn check_record_hash(v: &Value) -> Result<(u64, String), String> {
    let Value::Object(m) = v else { return Err("a record is a JSON object".into()) };
    let seq = match m.get("seq") {
        Some(Value::Number(n)) if *n >= 0.0 && n.fract() == 0.0 => *n as u64,
        _ => return Err("missing or invalid `seq`".into()),
    };
    let Some(Value::String(hash)) = m.get("hash") else { return Err("missing `hash`".into()) };
    let mut body = m.clone();
    body.remove("hash");
    body.remove("sig");
    let computed = sha256_hex(Value::Object(body).to_canonical_json().as_bytes());
    if &computed != hash {
        return Err(format!("hash does not match the record (computed {computed})"));
    }
    Ok((seq, hash.clone()))
}

/// Verifies lines (one record each) continuing from `state` (expected next seq and
/// prev). With a key, every record must carry a valid `sig`.
pub fn verify_lines<R: BufRead>(
    reader: R,
    name: &str,
    state: &mut (u64, String, u64),
    key: Option<&[u8]>,
) -> Result<(), VerifyError> {
    for (i, line) in reader.split(b'\n').enumerate() {
        let at = format!("{name}:{}", i + 1);
        let expected = state.0;
        let fail = |message: String| VerifyError { seq: Some(expected), at: at.clone(), message };
        let line = line.map_err(|e| fail(format!("cannot read: {e}")))?;
        let text = std::str::from_utf8(&line).map_err(|_| fail("not UTF-8".into()))?;
        let v = crate::json::parse(text, 16).map_err(|e| fail(format!("not a JSON record: {}", e.message)))?;
        let canonical = v.to_canonical_json();
        if canonical != text {
            return Err(fail("not in canonical form".into()));
        }
        let (seq, hash) = check_record_hash(&v).map_err(fail)?;
        if seq != expected {
            return Err(fail(format!(
                "found seq {seq} where seq {expected} was expected (a record is missing, duplicated or reordered)"
            )));
        }
        let Value::Object(m) = &v else { return Err(fail("not an object".into())) };
        if m.get("prev").and_then(Value::as_str) != Some(state.1.as_str()) {
            return Err(fail("`prev` does not match the previous record's hash".into()));
        }
        if m.get("v") != Some(&Value::Number(1.0)) {
            return Err(fail("unsupported record version".into()));
        }
        if let Some(k) = key {
            match m.get("sig").and_then(Value::as_str) {
                Some(sig) if constant_eq(sig.as_bytes(), hmac_hex(k, hash.as_bytes()).as_bytes()) => {}
                Some(_) => return Err(fail("signature does not verify with this key".into())),
                None => return Err(fail("record is not signed".into())),
            }
        }
        state.0 = seq + 1;
        state.1 = hash;
        state.2 += 1;
    }
    Ok(())
}

fn constant_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Verifies files in order as one chain (rotated files continue each other).
pub fn verify_files(paths: &[std::path::PathBuf], key: Option<&[u8]>) -> Result<VerifyReport, VerifyError> {
    let mut state = (0u64, GENESIS.to_string(), 0u64);
    for p in paths {
        let name = p.display().to_string();
        let f = std::fs::File::open(p).map_err(|e| VerifyError {
            seq: None,
            at: name.clone(),
            message: format!("cannot open: {e}"),
        })?;
        let io_err = |e: std::io::Error| VerifyError { seq: None, at: name.clone(), message: e.to_string() };
        let len = f.metadata().map_err(io_err)?.len();
        if len > 0 {
            // A file that does not end in a newline has a torn last line.
            use std::io::{Read, Seek, SeekFrom};
            let mut f2 = &f;
            let mut last = [0u8; 1];
            f2.seek(SeekFrom::End(-1)).and_then(|_| f2.read_exact(&mut last)).map_err(io_err)?;
            if last != [b'\n'] {
                return Err(VerifyError {
                    seq: None,
                    at: name,
                    message: "the file ends with a torn line (no final newline)".into(),
                });
            }
            f2.seek(SeekFrom::Start(0)).map_err(io_err)?;
        }
        let reader = std::io::BufReader::new(f);
        // `split` yields no empty trailing item for a final newline.
        verify_lines(reader, &name, &mut state, key)?;
    }
    Ok(VerifyReport { records: state.2, head: state.1 })
}
