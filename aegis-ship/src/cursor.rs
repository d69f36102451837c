//! The shipping cursor: where the last delivered record ends. Persisted durably
//! (temp file + fsync + rename + directory fsync) only after the collector answered 2xx
//! (or after a rejected batch was set aside durably).

use std::io::Write;
use std::path::{Path, PathBuf};

/// The position just after the last shipped record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cursor {
    /// File name (no directory) the record was read from: `FILE` or `FILE.NNNNNN`.
    /// A hint: after a rotation the record may live in a renamed file; the cursor is
    /// then found again by `seq` and `hash`.
    pub file: String,
    /// Byte offset just after the record's newline.
    pub offset: u64,
    /// The record's `seq`.
    pub seq: u64,
    /// The record's `hash`.
    pub hash: String,
}

impl Cursor {
    /// The cursor as one line of JSON.
    pub fn to_json(&self) -> String {
        serde_json::json!({
            "v": 1,
            "file": self.file,
            "offset": self.offset,
            "seq": self.seq,
            "hash": self.hash,
        })
        .to_string()
    }

    /// Parses [`Cursor::to_json`] output.
    pub fn from_json(text: &str) -> Result<Cursor, String> {
        let v: serde_json::Value = serde_json::from_str(text.trim()).map_err(|e| format!("not JSON: {e}"))?;
        let s = |k: &str| v.get(k).and_then(|x| x.as_str()).map(str::to_owned).ok_or(format!("missing `{k}`"));
        let n = |k: &str| v.get(k).and_then(serde_json::Value::as_u64).ok_or(format!("missing `{k}`"));
        Ok(Cursor { file: s("file")?, offset: n("offset")?, seq: n("seq")?, hash: s("hash")? })
    }
}

/// Reads a cursor file: `Ok(None)` when it does not exist (nothing shipped yet).
pub fn load(path: &Path) -> Result<Option<Cursor>, String> {
    match std::fs::read_to_string(path) {
        Ok(text) => Cursor::from_json(&text).map(Some).map_err(|e| {
            format!("cursor file `{}` is invalid ({e}); move it aside to re-ship from the start", path.display())
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("cannot read cursor file `{}`: {e}", path.display())),
    }
}

/// Writes the cursor durably: `PATH.tmp`, fsync, rename over `PATH`, fsync the folder.
pub fn save(path: &Path, cursor: &Cursor) -> Result<(), String> {
    let tmp = PathBuf::from(format!("{}.tmp", path.display()));
    let err = |e: std::io::Error| format!("cannot save cursor `{}`: {e}", path.display());
    {
        let mut f = std::fs::File::create(&tmp).map_err(err)?;
        f.write_all(cursor.to_json().as_bytes()).map_err(err)?;
        f.write_all(b"\n").map_err(err)?;
        f.sync_all().map_err(err)?;
    }
    std::fs::rename(&tmp, path).map_err(err)?;
    sync_dir(path);
    Ok(())
}

/// Best effort: fsync the folder holding `path` so a rename survives a crash.
pub(crate) fn sync_dir(path: &Path) {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
}
