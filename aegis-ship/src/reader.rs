//! Follows a (rotating) audit log in chain order: `FILE.000001`, `FILE.000002`, …,
//! then `FILE`, reading only complete lines. A file is finished once a newer file of
//! the chain exists; it is drained once more after that is seen (the writer renames
//! a file only after its last write), then reading moves on.

use crate::cursor::Cursor;
use aegis_core::audit::chain_files;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// One complete record line.
#[derive(Clone, Debug)]
pub struct Line {
    /// The exact line, without its newline.
    pub text: String,
    /// File name it was read from.
    pub file: String,
    /// Offset just after its newline.
    pub end: u64,
    /// `seq`, `hash`, `time`, `outcome`, `agent`, `tool` (absent if the line is not a record).
    pub seq: Option<u64>,
    /// The record's hash.
    pub hash: Option<String>,
    /// The record's time.
    pub time: Option<String>,
    /// The record's outcome.
    pub outcome: Option<String>,
    /// The record's agent.
    pub agent: Option<String>,
    /// The record's tool.
    pub tool: Option<String>,
}

/// The record fields the shipper reads (the rest of the line is shipped untouched).
#[derive(serde::Deserialize, Default)]
struct Fields {
    seq: Option<u64>,
    hash: Option<String>,
    time: Option<String>,
    outcome: Option<String>,
    agent: Option<String>,
    tool: Option<String>,
}

impl Line {
    fn parse(text: String, file: String, end: u64) -> Line {
        let f = parse_fields(&text);
        Line {
            seq: f.seq,
            hash: f.hash,
            time: f.time,
            outcome: f.outcome,
            agent: f.agent,
            tool: f.tool,
            text,
            file,
            end,
        }
    }
}

/// The fields of a record line; a line that is not a JSON object, or a field of an
/// unexpected type, gives `None` for that field.
fn parse_fields(text: &str) -> Fields {
    if let Ok(f) = serde_json::from_str::<Fields>(text) {
        return f;
    }
    // A field of the wrong type (or a non-object line): fall back to a full parse.
    let v: Option<serde_json::Value> = serde_json::from_str(text).ok();
    let s = |k: &str| v.as_ref().and_then(|v| v.get(k)).and_then(|x| x.as_str()).map(str::to_owned);
    Fields {
        seq: v.as_ref().and_then(|v| v.get("seq")).and_then(serde_json::Value::as_u64),
        hash: s("hash"),
        time: s("time"),
        outcome: s("outcome"),
        agent: s("agent"),
        tool: s("tool"),
    }
}

type FileId = (u64, u64);

#[cfg(unix)]
fn file_id(m: &std::fs::Metadata) -> FileId {
    use std::os::unix::fs::MetadataExt;
    (m.dev(), m.ino())
}

#[cfg(not(unix))]
fn file_id(_m: &std::fs::Metadata) -> FileId {
    (0, 0)
}

struct Open {
    name: String,
    path: PathBuf,
    file: File,
    id: FileId,
    pos: u64,
}

/// Reads complete lines from the chain of files, remembering where it is.
pub struct Reader {
    base: PathBuf,
    cur: Option<Open>,
    /// A warning for the host (a gap, trailing bytes in a finished file).
    pub warning: Option<String>,
}

fn name_of(p: &Path) -> String {
    p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}

fn open_at(path: &Path, pos: u64) -> std::io::Result<Open> {
    let file = File::open(path)?;
    let id = file_id(&file.metadata()?);
    Ok(Open { name: name_of(path), path: path.to_path_buf(), file, id, pos })
}

/// Every line of a file (complete lines only), with end offsets.
fn scan(path: &Path) -> std::io::Result<Vec<Line>> {
    let bytes = std::fs::read(path)?;
    let mut out = Vec::new();
    let mut start = 0usize;
    let name = name_of(path);
    for (i, b) in bytes.iter().enumerate() {
        if *b == b'\n' {
            let text = String::from_utf8_lossy(bytes.get(start..i).unwrap_or(&[])).into_owned();
            out.push(Line::parse(text, name.clone(), i as u64 + 1));
            start = i + 1;
        }
    }
    Ok(out)
}

/// The `seq` of the first complete line of a file.
fn first_seq(path: &Path) -> Option<u64> {
    let f = File::open(path).ok()?;
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(f), &mut line).ok()?;
    if !line.ends_with('\n') {
        return None;
    }
    Line::parse(line.trim_end_matches('\n').to_owned(), String::new(), 0).seq
}

/// The hash of the line that ends exactly at `offset` (which must follow a newline).
fn hash_before(path: &Path, offset: u64) -> Option<String> {
    if offset == 0 {
        return None;
    }
    let mut f = File::open(path).ok()?;
    if f.metadata().ok()?.len() < offset {
        return None;
    }
    let start = offset.saturating_sub(1 << 20);
    let mut buf = vec![0u8; (offset - start) as usize];
    f.seek(SeekFrom::Start(start)).ok()?;
    f.read_exact(&mut buf).ok()?;
    if buf.last() != Some(&b'\n') {
        return None;
    }
    let body = buf.get(..buf.len() - 1)?;
    let from = match body.iter().rposition(|b| *b == b'\n') {
        Some(i) => i + 1,
        None if start == 0 => 0,
        None => return None,
    };
    Line::parse(String::from_utf8_lossy(body.get(from..)?).into_owned(), String::new(), 0).hash
}

/// The `seq` of the newest record in the log (the last complete line of the newest
/// file holding one), for the `pending` metric and `flush`.
pub fn head_seq(base: &Path) -> Option<u64> {
    for p in chain_files(base).iter().rev() {
        let Ok(mut f) = File::open(p) else { continue };
        let Ok(len) = f.metadata().map(|m| m.len()) else { continue };
        let mut chunk: u64 = 64 * 1024;
        loop {
            let start = len.saturating_sub(chunk);
            let mut buf = vec![0u8; (len - start) as usize];
            if f.seek(SeekFrom::Start(start)).is_err() || f.read_exact(&mut buf).is_err() {
                break;
            }
            let Some(last_nl) = buf.iter().rposition(|b| *b == b'\n') else {
                if start == 0 {
                    break;
                }
                chunk *= 4;
                continue;
            };
            let body = buf.get(..last_nl).unwrap_or(&[]);
            match body.iter().rposition(|b| *b == b'\n') {
                Some(i) => {
                    return Line::parse(
                        String::from_utf8_lossy(body.get(i + 1..).unwrap_or(&[])).into_owned(),
                        String::new(),
                        0,
                    )
                    .seq
                }
                None if start == 0 => {
                    return Line::parse(String::from_utf8_lossy(body).into_owned(), String::new(), 0).seq
                }
                None => chunk *= 4,
            }
        }
    }
    None
}

impl Reader {
    /// A reader of the log at `base` (`FILE`), not yet positioned.
    pub fn new(base: impl Into<PathBuf>) -> Reader {
        Reader { base: base.into(), cur: None, warning: None }
    }

    /// Positions the reader just after `cursor` (or at the start of the chain). The
    /// cursor's file and offset are used when the record ending there has the cursor's
    /// hash; otherwise (the file was rotated since) the record is found by `seq` and
    /// checked by `hash`.
    pub fn position(&mut self, cursor: Option<&Cursor>) -> Result<(), String> {
        self.cur = None;
        let Some(c) = cursor else { return Ok(()) };
        let dir = match self.base.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let hinted = dir.join(&c.file);
        if hash_before(&hinted, c.offset).as_deref() == Some(c.hash.as_str()) {
            self.cur =
                Some(open_at(&hinted, c.offset).map_err(|e| format!("cannot open `{}`: {e}", hinted.display()))?);
            return Ok(());
        }
        let files: Vec<PathBuf> = chain_files(&self.base).into_iter().filter(|p| p.exists()).collect();
        let firsts: Vec<Option<u64>> = files.iter().map(|p| first_seq(p)).collect();
        let holder =
            files.iter().zip(&firsts).rev().find(|(_, f)| f.is_some_and(|f| f <= c.seq)).map(|(p, _)| p.clone());
        let Some(holder) = holder else {
            // Every remaining file starts after the cursor: older files were removed.
            if let Some((p, Some(f))) = files.iter().zip(&firsts).find(|(_, f)| f.is_some()) {
                if *f > c.seq + 1 {
                    self.warning = Some(format!(
                        "records seq {}..{} are no longer in the log and were never shipped",
                        c.seq + 1,
                        f - 1
                    ));
                }
                self.cur = Some(open_at(p, 0).map_err(|e| format!("cannot open `{}`: {e}", p.display()))?);
            }
            return Ok(());
        };
        let lines = scan(&holder).map_err(|e| format!("cannot read `{}`: {e}", holder.display()))?;
        match lines.iter().find(|l| l.seq == Some(c.seq)) {
            Some(l) if l.hash.as_deref() == Some(c.hash.as_str()) => {
                self.cur =
                    Some(open_at(&holder, l.end).map_err(|e| format!("cannot open `{}`: {e}", holder.display()))?);
                Ok(())
            }
            Some(l) => Err(format!(
                "the cursor does not match this log: seq {} has hash {} in `{}`, the cursor says {}",
                c.seq,
                l.hash.as_deref().unwrap_or("?"),
                holder.display(),
                c.hash
            )),
            None => Err(format!(
                "the cursor (seq {}) is beyond the end of this log (`{}`): was the log replaced?",
                c.seq,
                holder.display()
            )),
        }
    }

    /// Appends up to `max` complete lines to `out`, in chain order, following
    /// rotation. Returns how many were read (0: nothing new yet).
    pub fn read(&mut self, max: usize, out: &mut Vec<Line>) -> Result<usize, String> {
        let mut n = 0;
        while n < max {
            if self.cur.is_none() {
                let Some(first) = chain_files(&self.base).into_iter().find(|p| p.exists()) else { break };
                self.cur = Some(open_at(&first, 0).map_err(|e| format!("cannot open `{}`: {e}", first.display()))?);
            }
            let got = self.read_lines(max - n, out)?;
            n += got;
            if got > 0 {
                continue;
            }
            // At the end of the current file: is it finished?
            let Some(next) = self.next_file() else { break };
            // Drain once more: the writer wrote its last line before renaming.
            let got = self.read_lines(max - n, out)?;
            n += got;
            if got > 0 {
                continue;
            }
            if let Some(cur) = &self.cur {
                let len = cur.file.metadata().map(|m| m.len()).unwrap_or(cur.pos);
                if len > cur.pos {
                    self.warning = Some(format!(
                        "{} bytes without a final newline at the end of finished file `{}` were not shipped",
                        len - cur.pos,
                        cur.path.display()
                    ));
                }
            }
            self.cur = Some(open_at(&next, 0).map_err(|e| format!("cannot open `{}`: {e}", next.display()))?);
        }
        Ok(n)
    }

    /// The file after the current one, if the current one is finished (a newer file
    /// of the chain exists).
    fn next_file(&self) -> Option<PathBuf> {
        let cur = self.cur.as_ref()?;
        let files = chain_files(&self.base);
        let idx = files
            .iter()
            .position(|p| std::fs::metadata(p).map(|m| file_id(&m) == cur.id && cur.id != (0, 0)).unwrap_or(false))
            .or_else(|| files.iter().position(|p| *p == cur.path))?;
        files.get(idx + 1..)?.iter().find(|p| p.exists()).cloned()
    }

    fn read_lines(&mut self, max: usize, out: &mut Vec<Line>) -> Result<usize, String> {
        let Some(cur) = self.cur.as_mut() else { return Ok(0) };
        let err = |e: std::io::Error| format!("cannot read `{}`: {e}", cur.path.display());
        let len = cur.file.metadata().map_err(err)?.len();
        if len < cur.pos {
            return Err(format!("`{}` shrank below the shipped offset {}", cur.path.display(), cur.pos));
        }
        let mut n = 0;
        let mut chunk: u64 = 1 << 20;
        while n < max && cur.pos < len {
            let want = (len - cur.pos).min(chunk);
            let mut buf = vec![0u8; want as usize];
            cur.file.seek(SeekFrom::Start(cur.pos)).map_err(err)?;
            cur.file.read_exact(&mut buf).map_err(err)?;
            let mut start = 0usize;
            for (i, b) in buf.iter().enumerate() {
                if *b != b'\n' {
                    continue;
                }
                let text = String::from_utf8_lossy(buf.get(start..i).unwrap_or(&[])).into_owned();
                let end = cur.pos + i as u64 + 1;
                out.push(Line::parse(text, cur.name.clone(), end));
                start = i + 1;
                n += 1;
                if n == max {
                    break;
                }
            }
            if start == 0 {
                if want == len - cur.pos {
                    break; // only a partial line so far
                }
                chunk *= 4; // a line longer than the chunk
                continue;
            }
            cur.pos += start as u64;
        }
        Ok(n)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn fields_of_records_odd_types_and_non_records() {
        let l = Line::parse(
            r#"{"agent":"a\"b\u00e9","hash":"ab","seq":7,"tool":"t","x":[1,{"y":2}]}"#.into(),
            "f".into(),
            9,
        );
        assert_eq!(
            (l.seq, l.agent.as_deref(), l.hash.as_deref(), l.tool.as_deref()),
            (Some(7), Some("a\"bé"), Some("ab"), Some("t"))
        );
        // A field of an unexpected type loses only that field.
        let l = Line::parse(r#"{"agent":5,"seq":3,"hash":"h"}"#.into(), "f".into(), 1);
        assert_eq!((l.seq, l.agent, l.hash.as_deref()), (Some(3), None, Some("h")));
        let l = Line::parse(r#"{"seq":-1,"hash":"h"}"#.into(), "f".into(), 1);
        assert_eq!((l.seq, l.hash.as_deref()), (None, Some("h")));
        for junk in ["not json", "[1,2]", "", "{\"seq\":1", "null"] {
            let l = Line::parse(junk.into(), "f".into(), 1);
            assert_eq!((l.seq, l.hash, l.agent), (None, None, None), "{junk}");
            assert_eq!(l.text, junk);
        }
    }
}
