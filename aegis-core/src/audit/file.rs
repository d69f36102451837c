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

/// How a [`FileSink`] writes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FileSinkOptions {
    /// When records are made durable.
    pub fsync: Fsync,
    /// Rotate when the file would grow beyond this many bytes: the file is renamed
    /// `FILE.000001` (then `.000002`, …) and a new `FILE` continues the same chain.
    pub rotate_bytes: Option<u64>,
}

/// Appends records to a JSONL file.
pub struct FileSink {
    path: PathBuf,
    file: Arc<File>,
    size: u64,
    fsync: Fsync,
    rotate_bytes: Option<u64>,
    resume: Option<(u64, String)>,
    torn: Option<TornLine>,
    group: Option<Arc<Group>>,
}

impl FileSink {
    /// Opens (or creates) `path`, recovering a torn last line and reading where the
    /// chain resumes. A last complete line that is not a valid record is an error and
    /// leaves the file untouched.
    pub fn open(path: impl AsRef<Path>, fsync: Fsync) -> Result<FileSink, AuditError> {
        FileSink::open_with(path, FileSinkOptions { fsync, rotate_bytes: None })
    }

    /// Opens with options (fsync policy, size-based rotation). When `FILE` holds no
    /// complete record yet, the chain resumes from the newest rotated file.
    pub fn open_with(path: impl AsRef<Path>, options: FileSinkOptions) -> Result<FileSink, AuditError> {
        let fsync = options.fsync;
        let path = path.as_ref().to_path_buf();
        let shown = path.display().to_string();
        let open_err = |message: String| AuditError::Open { path: shown.clone(), message };
        let mut file =
            OpenOptions::new().read(true).append(true).create(true).open(&path).map_err(|e| open_err(e.to_string()))?;
        lock_exclusive(&file).map_err(open_err)?;
        let len = file.metadata().map_err(|e| open_err(e.to_string()))?.len();
        let (last_line, cut_at) = tail(&mut file, len).map_err(|e| open_err(e.to_string()))?;
        let resume = match &last_line {
            Some(line) => Some(check_last(line).map_err(|m| open_err(format!("the last record is invalid: {m}")))?),
            None => match try_rotated_files(&path).map_err(|e| open_err(e.to_string()))?.last() {
                None => None,
                Some((_, prev)) => {
                    let mut f =
                        File::open(prev).map_err(|e| open_err(format!("cannot read `{}`: {e}", prev.display())))?;
                    let plen = f.metadata().map_err(|e| open_err(e.to_string()))?.len();
                    match tail(&mut f, plen).map_err(|e| open_err(e.to_string()))?.0 {
                        Some(line) => Some(check_last(&line).map_err(|m| {
                            open_err(format!("the last record of `{}` is invalid: {m}", prev.display()))
                        })?),
                        None => None,
                    }
                }
            },
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
        let size = file.metadata().map_err(|e| open_err(e.to_string()))?.len();
        let file = Arc::new(file);
        let group = (fsync == Fsync::Batch).then(|| {
            Arc::new(Group {
                file: Mutex::new(file.clone()),
                path: shown.clone(),
                state: Mutex::new(GroupState::default()),
                cv: Condvar::new(),
            })
        });
        Ok(FileSink { path, file, size, fsync, rotate_bytes: options.rotate_bytes, resume, torn, group })
    }

    /// Renames the full file to the next `FILE.NNNNNN` and starts a new `FILE`; the
    /// chain simply continues in it. Everything written before is made durable first.
    fn rotate(&mut self) -> Result<(), AuditError> {
        let shown = self.path.display().to_string();
        let io = |source| AuditError::Io { path: shown.clone(), source };
        if self.fsync != Fsync::Never {
            self.file.sync_all().map_err(io)?;
        }
        // After the newest rotated file (the first rotation makes `.000001`).
        let next = try_rotated_files(&self.path).map_err(io)?.last().map_or(0, |(n, _)| *n) + 1;
        let target = PathBuf::from(format!("{}.{next:06}", self.path.display()));
        if target.exists() {
            return Err(io(std::io::Error::other(format!("rotation target `{}` already exists", target.display()))));
        }
        std::fs::rename(&self.path, &target).map_err(io)?;
        let file = OpenOptions::new().read(true).append(true).create_new(true).open(&self.path).map_err(io)?;
        lock_exclusive(&file).map_err(|m| io(std::io::Error::other(m)))?;
        self.file = Arc::new(file);
        self.size = 0;
        if let Some(g) = &self.group {
            g.rotated(self.file.clone());
        }
        // Make the rename durable too. A directory that cannot be opened (not
        // supported on every platform) is skipped; one that opens but fails to sync
        // fails this write, with the sink already on the new file.
        if self.fsync != Fsync::Never {
            let dir = self.path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
            if let Ok(d) = File::open(dir) {
                d.sync_all().map_err(io)?;
            }
        }
        Ok(())
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

/// Holds the audit file for this sink alone (§9a): two engines appending to one file,
/// in this process or another, would fork its chain. The lock is an OS advisory lock
/// on the open file (`flock` on Unix), released when the sink is dropped.
fn lock_exclusive(file: &File) -> Result<(), String> {
    match file.try_lock() {
        Ok(()) => Ok(()),
        Err(std::fs::TryLockError::WouldBlock) => {
            Err("the file is in use by another engine (one audit file per engine)".into())
        }
        Err(std::fs::TryLockError::Error(e)) => Err(format!("cannot lock the file: {e}")),
    }
}

/// The rotated files of `path` (`FILE.000001`, …), oldest first (none when the
/// folder cannot be read: readers then see the chain's gap; the sink itself uses
/// `try_rotated_files` and fails instead).
pub fn rotated_files(path: &Path) -> Vec<PathBuf> {
    try_rotated_files(path).map(|v| v.into_iter().map(|(_, p)| p).collect()).unwrap_or_default()
}

/// The rotated files of `path` with their numbers, oldest first; fails when the
/// folder cannot be read (a sink that resumed without them would fork the chain).
fn try_rotated_files(path: &Path) -> std::io::Result<Vec<(u64, PathBuf)>> {
    let Some(name) = path.file_name() else {
        return Err(std::io::Error::other(format!("`{}` names no file", path.display())));
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut prefix = name.as_encoded_bytes().to_vec();
    prefix.push(b'.');
    let mut found = Vec::new();
    for entry in std::fs::read_dir(&dir)? {
        let entry = entry?;
        let file_name = entry.file_name();
        let Some(num) = file_name.as_encoded_bytes().strip_prefix(prefix.as_slice()) else { continue };
        // `FILE.NNNNNN`: six digits or more; anything else in the folder is not ours.
        if num.len() < 6 || !num.iter().all(u8::is_ascii_digit) {
            continue;
        }
        match std::str::from_utf8(num).ok().and_then(|n| n.parse::<u64>().ok()) {
            Some(n) => found.push((n, entry.path())),
            None => {
                return Err(std::io::Error::other(format!(
                    "`{}`: rotation number out of range",
                    entry.path().display()
                )))
            }
        }
    }
    found.sort();
    Ok(found)
}

/// Every file of a rotated log in chain order: the rotated files, then `path`.
pub fn chain_files(path: &Path) -> Vec<PathBuf> {
    let mut v = rotated_files(path);
    v.push(path.to_path_buf());
    v
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
        // `rposition` found both newlines inside `buf`: the splits are in range.
        let (before, _) = buf.split_at(last_nl);
        match before.iter().rposition(|&b| b == b'\n') {
            Some(prev_nl) => {
                let (_, line) = before.split_at(prev_nl + 1);
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
    fn write(&mut self, record: &AuditRecord, line: &str) -> Result<(), AuditError> {
        let len = line.len() as u64 + 1;
        if let Some(max) = self.rotate_bytes {
            if self.size > 0 && self.size + len > max {
                self.rotate()?;
            }
        }
        let io = |source| AuditError::Io { path: self.path.display().to_string(), source };
        let mut buf = Vec::with_capacity(line.len() + 1);
        buf.extend_from_slice(line.as_bytes());
        buf.push(b'\n');
        (&*self.file).write_all(&buf).map_err(io)?;
        self.size += len;
        match self.fsync {
            Fsync::Always => self.file.sync_data().map_err(io)?,
            Fsync::Batch => {
                if let Some(g) = &self.group {
                    g.written(record.seq);
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
    file: Mutex<Arc<File>>,
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

    /// After a rotation: the old file was synced whole, so everything written so far
    /// is durable; later syncs go to the new file.
    fn rotated(&self, file: Arc<File>) {
        *self.file.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = file;
        let mut st = self.lock();
        st.synced = st.written.max(st.synced);
        self.cv.notify_all();
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
                let file = self.file.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
                let r = file.sync_data();
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
