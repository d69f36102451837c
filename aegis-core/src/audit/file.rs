//! The durable JSONL file sink (§5.3): append, fsync policy, resume, torn lines.

use super::{AuditError, AuditRecord, AuditSink, Durable};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};

/// When records are made durable.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Fsync {
    /// After every record, before `evaluate` returns (the default).
    #[default]
    Always,
    /// Group commit: one sync covers every record written before it; `evaluate`
    /// still returns only once its record is durable.
    Batch,
    /// Never (the OS decides). A crash may lose the last records.
    Never,
}

impl Fsync {
    /// Parses `always`, `batch` or `never`.
    pub fn parse(s: &str) -> Option<Fsync> {
        match s {
            "always" => Some(Fsync::Always),
            "batch" => Some(Fsync::Batch),
            "never" => Some(Fsync::Never),
            _ => None,
        }
    }
}

/// A torn last line found on open and moved aside.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TornLine {
    /// Where the bytes went (`FILE.torn`, `FILE.torn.1`, …).
    pub moved_to: PathBuf,
    /// How many bytes.
    pub bytes: usize,
}

/// Appends records to a JSONL file.
pub struct FileSink {
    path: PathBuf,
    file: Arc<File>,
    fsync: Fsync,
    resume: Option<(u64, String)>,
    torn: Option<TornLine>,
    group: Option<Arc<Group>>,
}

impl FileSink {
    /// Opens (or creates) `path`, recovering a torn last line and reading where the
    /// chain resumes. A last complete line that is not a valid record is an error and
    /// leaves the file untouched.
    pub fn open(path: impl AsRef<Path>, fsync: Fsync) -> Result<FileSink, AuditError> {
        let path = path.as_ref().to_path_buf();
        let shown = path.display().to_string();
        let open_err = |message: String| AuditError::Open { path: shown.clone(), message };
        let mut file =
            OpenOptions::new().read(true).append(true).create(true).open(&path).map_err(|e| open_err(e.to_string()))?;
        let len = file.metadata().map_err(|e| open_err(e.to_string()))?.len();
        let (last_line, cut_at) = tail(&mut file, len).map_err(|e| open_err(e.to_string()))?;
        let resume = match &last_line {
            None => None,
            Some(line) => Some(check_last(line).map_err(|m| open_err(format!("the last record is invalid: {m}")))?),
        };
        let mut torn = None;
        if cut_at < len {
            // Move the torn bytes aside, then cut the file back to the last newline.
            let mut bytes = vec![0u8; (len - cut_at) as usize];
            file.seek(SeekFrom::Start(cut_at)).map_err(|e| open_err(e.to_string()))?;
            file.read_exact(&mut bytes).map_err(|e| open_err(e.to_string()))?;
            let moved_to = free_torn_name(&path);
            let mut side = OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&moved_to)
                .map_err(|e| open_err(format!("cannot save the torn line: {e}")))?;
            side.write_all(&bytes)
                .and_then(|_| side.sync_all())
                .map_err(|e| open_err(format!("cannot save the torn line: {e}")))?;
            file.set_len(cut_at)
                .and_then(|_| file.sync_all())
                .map_err(|e| open_err(format!("cannot cut the torn line: {e}")))?;
            torn = Some(TornLine { moved_to, bytes: bytes.len() });
        }
        let file = Arc::new(file);
        let group = (fsync == Fsync::Batch).then(|| {
            Arc::new(Group {
                file: file.clone(),
                path: shown.clone(),
                state: Mutex::new(GroupState::default()),
                cv: Condvar::new(),
            })
        });
        Ok(FileSink { path, file, fsync, resume, torn, group })
    }

    /// The torn line recovered on open, if any.
    pub fn torn(&self) -> Option<&TornLine> {
        self.torn.as_ref()
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn free_torn_name(path: &Path) -> PathBuf {
    let base = format!("{}.torn", path.display());
    let mut candidate = PathBuf::from(&base);
    let mut n = 1;
    while candidate.exists() {
        candidate = PathBuf::from(format!("{base}.{n}"));
        n += 1;
    }
    candidate
}

/// Reads the last complete line and the offset just after the last newline.
fn tail(file: &mut File, len: u64) -> std::io::Result<(Option<String>, u64)> {
    let mut chunk: u64 = 64 * 1024;
    loop {
        let start = len.saturating_sub(chunk);
        let mut buf = vec![0u8; (len - start) as usize];
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(&mut buf)?;
        let Some(last_nl) = buf.iter().rposition(|&b| b == b'\n') else {
            if start == 0 {
                return Ok((None, 0));
            }
            chunk *= 4;
            continue;
        };
        let cut_at = start + last_nl as u64 + 1;
        let before = buf.get(..last_nl).unwrap_or(&[]);
        match before.iter().rposition(|&b| b == b'\n') {
            Some(prev_nl) => {
                let line = before.get(prev_nl + 1..).unwrap_or(&[]);
                return Ok((Some(String::from_utf8_lossy(line).into_owned()), cut_at));
            }
            None if start == 0 => return Ok((Some(String::from_utf8_lossy(before).into_owned()), cut_at)),
            None => chunk *= 4,
        }
    }
}

fn check_last(line: &str) -> Result<(u64, String), String> {
    let v = crate::json::parse(line, 16).map_err(|e| format!("not JSON: {}", e.message))?;
    let (seq, hash) = super::verify::check_record_hash(&v)?;
    Ok((seq, hash))
}

impl AuditSink for FileSink {
    fn write(&mut self, _record: &AuditRecord, line: &str) -> Result<(), AuditError> {
        let io = |source| AuditError::Io { path: self.path.display().to_string(), source };
        let mut buf = Vec::with_capacity(line.len() + 1);
        buf.extend_from_slice(line.as_bytes());
        buf.push(b'\n');
        (&*self.file).write_all(&buf).map_err(io)?;
        match self.fsync {
            Fsync::Always => self.file.sync_data().map_err(io)?,
            Fsync::Batch => {
                if let Some(g) = &self.group {
                    g.written(_record.seq);
                }
            }
            Fsync::Never => {}
        }
        Ok(())
    }

    fn resume(&self) -> Option<(u64, String)> {
        self.resume.clone()
    }

    fn durable(&self) -> Option<Arc<dyn Durable>> {
        self.group.clone().map(|g| g as Arc<dyn Durable>)
    }
}

#[derive(Default)]
struct GroupState {
    written: Option<u64>,
    synced: Option<u64>,
    syncing: bool,
    failed: Option<String>,
}

/// Group commit: whoever finds no sync running syncs for everyone written so far.
struct Group {
    file: Arc<File>,
    path: String,
    state: Mutex<GroupState>,
    cv: Condvar,
}

impl Group {
    fn lock(&self) -> std::sync::MutexGuard<'_, GroupState> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn written(&self, seq: u64) {
        let mut st = self.lock();
        st.written = Some(st.written.map_or(seq, |w| w.max(seq)));
    }
}

impl Durable for Group {
    fn sync_through(&self, seq: u64) -> Result<(), AuditError> {
        let mut st = self.lock();
        loop {
            if let Some(m) = &st.failed {
                return Err(AuditError::Io { path: self.path.clone(), source: std::io::Error::other(m.clone()) });
            }
            if st.synced.is_some_and(|s| s >= seq) {
                return Ok(());
            }
            if !st.syncing {
                st.syncing = true;
                let target = st.written;
                drop(st);
                let r = self.file.sync_data();
                st = self.lock();
                st.syncing = false;
                match r {
                    Ok(()) => st.synced = target.max(st.synced),
                    Err(e) => st.failed = Some(e.to_string()),
                }
                self.cv.notify_all();
                continue;
            }
            st = self.cv.wait(st).unwrap_or_else(std::sync::PoisonError::into_inner);
        }
    }
}
