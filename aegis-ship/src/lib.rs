//! Ships Aegis audit records (SPEC §5.3 *Collector*) from the durable file sink to an
//! OpenTelemetry collector as OTLP/HTTP JSON log records, losing nothing.
//!
//! The shipper reads the audit log (`FILE.000001`, …, then `FILE`, in chain order)
//! from a persisted cursor, batches records by count and age, POSTs them to
//! `<endpoint>/v1/logs` (gzip, custom headers, http or https) and advances the cursor
//! durably only after a 2xx. Delivery is **at least once**: a crash or kill between a
//! 2xx and the cursor write re-sends that batch; receivers dedupe by `aegis.hash`.
//!
//! * 429 / 503: wait for `Retry-After` (seconds or HTTP-date), else back off.
//! * Connection errors, timeouts, 5xx, other 4xx: exponential backoff with jitter.
//! * 400 (malformed): the batch is set aside into `FILE.ship-rejected.N.jsonl`,
//!   reported in [`Metrics`] and the log, and shipping goes on.
//!
//! HTTP lives here, not in `aegis-core`, so the engine stays free of network code.

pub mod collector;
pub mod cursor;
pub mod open;
pub mod otlp;
pub mod reader;
pub mod retry;

pub use collector::{Collector, CollectorConfig};
pub use cursor::Cursor;
pub use retry::{parse_retry_after, Backoff};

use reader::{Line, Reader};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Where log messages go (warnings, retries, rejected batches).
pub type LogFn = Arc<dyn Fn(&str) + Send + Sync>;

/// How to ship.
#[derive(Clone)]
pub struct ShipperConfig {
    /// The audit log (`FILE`; rotated `FILE.NNNNNN` are found beside it).
    pub file: PathBuf,
    /// Collector base URL (`http://host:4318`); `/v1/logs` is appended unless the URL
    /// already ends with it.
    pub endpoint: String,
    /// Resource attribute `service.name` (default `aegis`).
    pub service_name: String,
    /// Extra request headers (e.g. `Authorization`).
    pub headers: Vec<(String, String)>,
    /// Records per request at most (default 512).
    pub batch_max: usize,
    /// A partial batch is sent once its first record waited this long (default 1 s).
    pub batch_age: Duration,
    /// gzip request bodies (default true).
    pub gzip: bool,
    /// The cursor file (default `FILE.ship-cursor`).
    pub cursor_path: Option<PathBuf>,
    /// How often the files are checked for new records when idle (default 100 ms).
    pub poll_interval: Duration,
    /// Backoff for failed requests (default 250 ms doubling, capped at 30 s).
    pub backoff: Backoff,
    /// Longest `Retry-After` honoured (default 5 min).
    pub max_retry_after: Duration,
    /// One request's time limit (default 10 s).
    pub request_timeout: Duration,
    /// While shipping, the cursor is written durably at most this often (default 1 s);
    /// always when shipping catches up or stops, and at once after a batch is set
    /// aside. Each write is two fsyncs, which on a journaling file system can stall
    /// the engine's own appends to the audit log, so per-batch writes would slow
    /// `evaluate`. A crash re-sends at most this much (receivers dedupe by
    /// `aegis.hash`); nothing is lost.
    pub cursor_interval: Duration,
    /// Log sink (default: stderr, prefixed `aegis-ship: `).
    pub log: Option<LogFn>,
}

impl std::fmt::Debug for ShipperConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShipperConfig")
            .field("file", &self.file)
            .field("endpoint", &self.endpoint)
            .field("service_name", &self.service_name)
            .field("headers", &self.headers.iter().map(|(k, _)| k).collect::<Vec<_>>())
            .field("batch_max", &self.batch_max)
            .field("batch_age", &self.batch_age)
            .field("gzip", &self.gzip)
            .field("cursor_path", &self.cursor_path)
            .finish_non_exhaustive()
    }
}

impl ShipperConfig {
    /// Defaults for shipping `file` to `endpoint`.
    pub fn new(file: impl Into<PathBuf>, endpoint: impl Into<String>) -> ShipperConfig {
        ShipperConfig {
            file: file.into(),
            endpoint: endpoint.into(),
            service_name: "aegis".into(),
            headers: Vec::new(),
            batch_max: 512,
            batch_age: Duration::from_secs(1),
            gzip: true,
            cursor_path: None,
            poll_interval: Duration::from_millis(100),
            backoff: Backoff::default(),
            max_retry_after: Duration::from_secs(300),
            request_timeout: Duration::from_secs(10),
            cursor_interval: Duration::from_secs(1),
            log: None,
        }
    }

    /// The cursor file in use.
    pub fn cursor_file(&self) -> PathBuf {
        self.cursor_path.clone().unwrap_or_else(|| PathBuf::from(format!("{}.ship-cursor", self.file.display())))
    }

    /// The URL records are POSTed to.
    pub fn logs_url(&self) -> String {
        let e = self.endpoint.trim_end_matches('/');
        if e.ends_with("/v1/logs") {
            e.to_owned()
        } else {
            format!("{e}/v1/logs")
        }
    }
}

/// What the host can read while shipping runs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Metrics {
    /// Records delivered (2xx) since start.
    pub shipped: u64,
    /// Records in the files beyond the cursor (not yet delivered or set aside).
    pub pending: u64,
    /// Failed attempts that were (or will be) retried.
    pub retries: u64,
    /// Requests answered 2xx.
    pub batches: u64,
    /// Batches rejected as malformed (400) and set aside.
    pub rejected_batches: u64,
    /// Records in those batches.
    pub rejected_records: u64,
    /// Log records a collector reported as rejected in a 2xx `partialSuccess`.
    pub partially_rejected: u64,
    /// Files the rejected batches were written to.
    pub rejected_files: Vec<PathBuf>,
    /// The last error (cleared by nothing: it tells what went wrong last).
    pub last_error: Option<String>,
    /// The cursor: the last delivered or set-aside record (written to the cursor file
    /// at most every `cursor_interval`, and when shipping catches up or stops).
    pub cursor: Option<Cursor>,
}

/// Why shipping stopped short.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShipError(pub String);

impl std::fmt::Display for ShipError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ShipError {}

#[derive(Default)]
struct State {
    metrics: Metrics,
    stop: bool,
    close_deadline: Option<Instant>,
    flushes: usize,
    /// The shipping thread has returned (or never started).
    finished: bool,
    /// The shipping thread could not be started.
    start_failed: bool,
}

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    cv: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The result of one request.
enum Sent {
    Ok { rejected: u64 },
    Malformed(String),
    Retry { after: Option<Duration>, error: String },
}

enum Batch {
    Delivered,
    SetAside,
    GaveUp,
}

/// When to stop retrying or reading.
#[derive(Clone, Copy)]
enum Mode {
    /// Background: until stopped (then until caught up or the close deadline).
    Follow,
    /// Until caught up; give up after `stall` without any progress.
    CatchUp { stall: Duration },
}

/// The single-threaded shipping machinery (used by the background thread and by
/// [`Shipper::ship_until_caught_up`]).
pub struct Shipper {
    cfg: ShipperConfig,
    url: String,
    cursor_file: PathBuf,
    agent: ureq::Agent,
    reader: Reader,
    positioned: bool,
    batch: Vec<Line>,
    batch_since: Option<Instant>,
    cursor: Option<Cursor>,
    /// The cursor last written to the cursor file, and when.
    saved: Option<Cursor>,
    last_save: Instant,
    shared: Arc<Shared>,
    jitter: retry::Jitter,
    last_progress: Instant,
}

fn now_nanos() -> u128 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0)
}

impl Shipper {
    /// A shipper for `cfg` (nothing is read or sent yet).
    pub fn new(cfg: ShipperConfig) -> Shipper {
        Shipper::with_shared(cfg, Arc::new(Shared::default()))
    }

    fn with_shared(mut cfg: ShipperConfig, shared: Arc<Shared>) -> Shipper {
        cfg.batch_max = cfg.batch_max.max(1);
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(cfg.request_timeout))
            .user_agent(concat!("aegis-ship/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        Shipper {
            url: cfg.logs_url(),
            cursor_file: cfg.cursor_file(),
            reader: Reader::new(cfg.file.clone()),
            cfg,
            agent,
            positioned: false,
            batch: Vec::new(),
            batch_since: None,
            cursor: None,
            saved: None,
            last_save: Instant::now(),
            shared,
            jitter: retry::Jitter::new(),
            last_progress: Instant::now(),
        }
    }

    /// Starts shipping on a background thread. If the thread cannot be started the
    /// handle reports it (`last_error`, and an error from `flush` and `close`).
    pub fn start(cfg: ShipperConfig) -> ShipperHandle {
        let shared = Arc::new(Shared::default());
        let mut s = Shipper::with_shared(cfg.clone(), shared.clone());
        let done = shared.clone();
        let thread = std::thread::Builder::new()
            .name("aegis-ship".into())
            .spawn(move || {
                let r = s.run(Mode::Follow);
                done.lock().finished = true;
                done.cv.notify_all();
                r
            })
            .map_err(|e| {
                let mut st = shared.lock();
                st.metrics.last_error = Some(format!("cannot start the shipping thread: {e}"));
                st.finished = true;
                st.start_failed = true;
            })
            .ok();
        ShipperHandle { shared, thread: Mutex::new(thread), closed: Mutex::new(None), file: cfg.file }
    }

    /// The metrics so far.
    pub fn metrics(&self) -> Metrics {
        self.shared.lock().metrics.clone()
    }

    /// Ships until every complete record in the files is delivered (or set aside).
    /// Gives up with the last error once `stall` passes without any progress.
    pub fn ship_until_caught_up(&mut self, stall: Duration) -> Result<Metrics, ShipError> {
        self.last_progress = Instant::now();
        match self.run(Mode::CatchUp { stall }) {
            Ok(()) => Ok(self.metrics()),
            Err(e) => Err(e),
        }
    }

    /// One step: read what is there (up to a batch) and send one batch if one is due
    /// (`force`: send a partial batch now). Returns whether a batch was sent or set aside.
    /// The cursor file is written at most every `cursor_interval`: call
    /// [`persist_cursor`](Self::persist_cursor) when done.
    pub fn run_once(&mut self, force: bool) -> Result<bool, ShipError> {
        self.ensure_positioned()?;
        self.fill()?;
        self.update_pending();
        if self.batch_due(force) {
            return match self.send_batch(Some(Instant::now() + self.cfg.request_timeout)) {
                Batch::Delivered | Batch::SetAside => Ok(true),
                Batch::GaveUp => Err(ShipError(self.last_error())),
            };
        }
        Ok(false)
    }

    fn log(&self, msg: &str) {
        match &self.cfg.log {
            Some(f) => f(msg),
            None => eprintln!("aegis-ship: {msg}"),
        }
    }

    fn last_error(&self) -> String {
        self.shared.lock().metrics.last_error.clone().unwrap_or_else(|| "not delivered".into())
    }

    fn set_error(&self, e: &str) {
        self.shared.lock().metrics.last_error = Some(e.to_owned());
    }

    fn ensure_positioned(&mut self) -> Result<(), ShipError> {
        if self.positioned {
            return Ok(());
        }
        let c = cursor::load(&self.cursor_file).map_err(ShipError)?;
        self.reader.position(c.as_ref()).map_err(ShipError)?;
        self.cursor = c.clone();
        self.saved = c.clone();
        self.shared.lock().metrics.cursor = c;
        self.positioned = true;
        Ok(())
    }

    fn fill(&mut self) -> Result<(), ShipError> {
        let room = self.cfg.batch_max.saturating_sub(self.batch.len());
        if room == 0 {
            return Ok(());
        }
        let n = self.reader.read(room, &mut self.batch).map_err(ShipError)?;
        if let Some(w) = self.reader.warning.take() {
            self.log(&format!("warning: {w}"));
            self.set_error(&w);
        }
        if n > 0 && self.batch_since.is_none() {
            self.batch_since = Some(Instant::now());
        }
        Ok(())
    }

    fn update_pending(&self) {
        let pending = self.pending_now();
        self.shared.lock().metrics.pending = pending;
    }

    /// Complete records in the files after the cursor (reads the file's last line).
    fn pending_now(&self) -> u64 {
        let head = reader::head_seq(&self.cfg.file);
        let next = self.cursor.as_ref().map_or(0, |c| c.seq + 1);
        head.map_or(0, |h| (h + 1).saturating_sub(next))
    }

    fn batch_due(&self, force: bool) -> bool {
        !self.batch.is_empty()
            && (force
                || self.batch.len() >= self.cfg.batch_max
                || self.batch_since.is_some_and(|t| t.elapsed() >= self.cfg.batch_age))
    }

    /// The instant to give up retrying at, if any.
    fn deadline(&self, mode: Mode) -> Option<Instant> {
        match mode {
            Mode::Follow => {
                let st = self.shared.lock();
                if st.stop {
                    st.close_deadline
                } else {
                    None
                }
            }
            Mode::CatchUp { stall } => Some(self.last_progress + stall),
        }
    }

    fn stopping(&self) -> bool {
        self.shared.lock().stop
    }

    /// Sleeps up to `d`, waking early when stopped or flushed.
    fn nap(&self, d: Duration) {
        let st = self.shared.lock();
        if st.stop {
            return;
        }
        let _ = self.shared.cv.wait_timeout(st, d);
    }

    fn run(&mut self, mode: Mode) -> Result<(), ShipError> {
        let r = self.run_loop(mode);
        // Caught up, stopped or given up: whatever was delivered is recorded now.
        let saved = self.persist_cursor();
        r.and(saved)
    }

    /// Writes the cursor durably if it moved since the last write.
    pub fn persist_cursor(&mut self) -> Result<(), ShipError> {
        if self.cursor == self.saved {
            return Ok(());
        }
        let Some(c) = self.cursor.clone() else { return Ok(()) };
        self.last_save = Instant::now();
        match cursor::save(&self.cursor_file, &c) {
            Ok(()) => {
                self.saved = Some(c);
                Ok(())
            }
            Err(e) => {
                self.log(&e);
                self.set_error(&e);
                Err(ShipError(e))
            }
        }
    }

    fn run_loop(&mut self, mode: Mode) -> Result<(), ShipError> {
        loop {
            // Whether a stop was asked for *before* this iteration's read: only a read
            // that started after the stop can prove that everything written before
            // `close` was seen (a read racing with the host's last append may miss it).
            let stop_seen = matches!(mode, Mode::Follow) && self.stopping();
            if let Err(e) = self.ensure_positioned().and_then(|()| self.fill()) {
                self.set_error(&e.0);
                match mode {
                    Mode::CatchUp { .. } => return Err(e),
                    Mode::Follow if self.stopping() => return Err(e),
                    Mode::Follow => {
                        self.log(&e.0);
                        self.nap(self.cfg.poll_interval.max(Duration::from_secs(1)));
                        continue;
                    }
                }
            }
            self.update_pending();
            let urgent = match mode {
                Mode::CatchUp { .. } => true,
                Mode::Follow => {
                    let st = self.shared.lock();
                    st.stop || st.flushes > 0
                }
            };
            if self.batch_due(urgent) {
                match self.send_batch(self.deadline(mode)) {
                    Batch::Delivered | Batch::SetAside => {
                        self.last_progress = Instant::now();
                        continue;
                    }
                    Batch::GaveUp => return Err(ShipError(self.last_error())),
                }
            }
            if self.batch.is_empty() && (matches!(mode, Mode::CatchUp { .. }) || stop_seen) {
                // Caught up (nothing new after a read that came back empty).
                return Ok(());
            }
            if matches!(mode, Mode::Follow) {
                let wait = match self.batch_since {
                    Some(t) => self.cfg.batch_age.saturating_sub(t.elapsed()).min(self.cfg.poll_interval),
                    None => self.cfg.poll_interval,
                };
                self.nap(wait.max(Duration::from_millis(1)));
            }
        }
    }

    fn post(&self, body: &[u8], timeout: Duration) -> Sent {
        let mut req = self
            .agent
            .post(&self.url)
            .header("Content-Type", "application/json")
            .config()
            .timeout_global(Some(timeout))
            .build();
        if self.cfg.gzip {
            req = req.header("Content-Encoding", "gzip");
        }
        for (k, v) in &self.cfg.headers {
            req = req.header(k.as_str(), v.as_str());
        }
        let mut resp = match req.send(body) {
            Ok(r) => r,
            Err(e) => return Sent::Retry { after: None, error: format!("POST {}: {e}", self.url) },
        };
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, SystemTime::now()))
            .map(|d| d.min(self.cfg.max_retry_after));
        let text = resp.body_mut().with_config().limit(64 * 1024).read_to_string().unwrap_or_default();
        let snippet: String = text.chars().take(300).collect();
        match status {
            200..=299 => {
                let rejected = serde_json::from_str::<serde_json::Value>(&text)
                    .ok()
                    .and_then(|v| v.pointer("/partialSuccess/rejectedLogRecords").cloned())
                    .and_then(|v| v.as_u64().or_else(|| v.as_str().and_then(|s| s.parse().ok())))
                    .unwrap_or(0);
                Sent::Ok { rejected }
            }
            400 => Sent::Malformed(format!("HTTP 400 from {}: {snippet}", self.url)),
            429 | 503 => {
                Sent::Retry { after: retry_after, error: format!("HTTP {status} from {}: {snippet}", self.url) }
            }
            _ => Sent::Retry { after: None, error: format!("HTTP {status} from {}: {snippet}", self.url) },
        }
    }

    /// Sends the current batch until delivered, set aside, or `deadline`.
    fn send_batch(&mut self, mut deadline: Option<Instant>) -> Batch {
        let json = otlp::encode(&self.batch, &self.cfg.service_name, now_nanos());
        let body = if self.cfg.gzip {
            match otlp::gzip(json.as_bytes()) {
                Ok(b) => b,
                Err(e) => {
                    self.set_error(&format!("gzip failed: {e}"));
                    return Batch::GaveUp;
                }
            }
        } else {
            json.into_bytes()
        };
        let mut attempt: u32 = 0;
        loop {
            let timeout = match deadline {
                Some(d) => d.saturating_duration_since(Instant::now()).min(self.cfg.request_timeout),
                None => self.cfg.request_timeout,
            };
            if timeout.is_zero() {
                return Batch::GaveUp;
            }
            let delay = match self.post(&body, timeout) {
                Sent::Ok { rejected } => {
                    if rejected > 0 {
                        let m = format!("the collector accepted the batch but rejected {rejected} log records");
                        self.log(&m);
                        let mut st = self.shared.lock();
                        st.metrics.partially_rejected += rejected;
                        st.metrics.last_error = Some(m);
                    }
                    self.advance(true, None);
                    return Batch::Delivered;
                }
                Sent::Malformed(e) => match self.set_aside() {
                    Ok(path) => {
                        let m = format!(
                            "batch of {} records (seq {}..{}) rejected as malformed ({e}); set aside in {}",
                            self.batch.len(),
                            self.batch.first().and_then(|l| l.seq).map_or("?".into(), |s| s.to_string()),
                            self.batch.last().and_then(|l| l.seq).map_or("?".into(), |s| s.to_string()),
                            path.display()
                        );
                        self.log(&m);
                        self.set_error(&m);
                        self.advance(false, Some(path));
                        return Batch::SetAside;
                    }
                    Err(se) => {
                        let m = format!("{e}; and the batch could not be set aside: {se}");
                        self.shared.lock().metrics.retries += 1;
                        self.set_error(&m);
                        self.log(&m);
                        self.cfg.backoff.delay(attempt, self.jitter.unit())
                    }
                },
                Sent::Retry { after, error } => {
                    {
                        let mut st = self.shared.lock();
                        st.metrics.retries += 1;
                        st.metrics.last_error = Some(error.clone());
                    }
                    let d = after.unwrap_or_else(|| self.cfg.backoff.delay(attempt, self.jitter.unit()));
                    if attempt == 0 || attempt.is_multiple_of(10) {
                        self.log(&format!("{error}; retrying in {} ms", d.as_millis()));
                    }
                    d
                }
            };
            attempt = attempt.saturating_add(1);
            // Sleep (never past the deadline), waking early for a close, which then
            // bounds the remaining attempts by its own deadline.
            let until = Instant::now() + delay;
            loop {
                let now = Instant::now();
                let stop_at = deadline.map_or(until, |d| d.min(until));
                if now >= stop_at {
                    break;
                }
                let st = self.shared.lock();
                let _ = self.shared.cv.wait_timeout(st, (stop_at - now).min(Duration::from_millis(50)));
                if deadline.is_none() {
                    let st = self.shared.lock();
                    if st.stop {
                        deadline = st.close_deadline;
                        break;
                    }
                }
            }
        }
    }

    /// Writes the batch to `FILE.ship-rejected.N.jsonl` (durably).
    fn set_aside(&self) -> std::io::Result<PathBuf> {
        use std::io::Write;
        let mut n = 1;
        let (path, mut f) = loop {
            let p = PathBuf::from(format!("{}.ship-rejected.{n}.jsonl", self.cfg.file.display()));
            match std::fs::OpenOptions::new().write(true).create_new(true).open(&p) {
                Ok(f) => break (p, f),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && n < 1_000_000 => n += 1,
                Err(e) => return Err(e),
            }
        };
        let mut buf = String::new();
        for l in &self.batch {
            buf.push_str(&l.text);
            buf.push('\n');
        }
        f.write_all(buf.as_bytes())?;
        f.sync_all()?;
        cursor::sync_dir(&path);
        Ok(path)
    }

    /// Moves the cursor past the batch and persists it.
    fn advance(&mut self, delivered: bool, set_aside: Option<PathBuf>) {
        let n = self.batch.len() as u64;
        let last_valid = self.batch.iter().rev().find(|l| l.seq.is_some() && l.hash.is_some());
        let (seq, hash) = match (last_valid, &self.cursor) {
            (Some(l), _) => (l.seq.unwrap_or(0), l.hash.clone().unwrap_or_default()),
            (None, Some(c)) => (c.seq, c.hash.clone()),
            (None, None) => (0, String::new()),
        };
        let c = self.batch.last().map(|l| Cursor { file: l.file.clone(), offset: l.end, seq, hash });
        self.batch.clear();
        self.batch_since = None;
        if c.is_some() {
            self.cursor = c;
        }
        if set_aside.is_some() || self.last_save.elapsed() >= self.cfg.cursor_interval {
            // Errors are logged and kept in `last_error`; the next write retries.
            let _ = self.persist_cursor();
        }
        // `pending` changes in the same critical section as `cursor`: a `flush` that
        // returns once the cursor reaches its target must not see the old `pending`.
        let pending = self.pending_now();
        let mut st = self.shared.lock();
        st.metrics.pending = pending;
        if delivered {
            st.metrics.shipped += n;
            st.metrics.batches += 1;
        } else {
            st.metrics.rejected_batches += 1;
            st.metrics.rejected_records += n;
        }
        if let Some(p) = set_aside {
            st.metrics.rejected_files.push(p);
        }
        st.metrics.cursor = self.cursor.clone();
        drop(st);
        self.shared.cv.notify_all();
    }
}

/// A running background shipper. Thread-safe: every method takes `&self`.
pub struct ShipperHandle {
    shared: Arc<Shared>,
    thread: Mutex<Option<std::thread::JoinHandle<Result<(), ShipError>>>>,
    /// The outcome of the first `close`, returned again by later calls.
    closed: Mutex<Option<Result<(), ShipError>>>,
    file: PathBuf,
}

impl ShipperHandle {
    /// The metrics so far.
    pub fn metrics(&self) -> Metrics {
        self.shared.lock().metrics.clone()
    }

    /// Whether [`close`](Self::close) was called (or the thread could not start).
    pub fn is_closed(&self) -> bool {
        self.shared.lock().stop
    }

    /// Waits until every record in the files when called has been delivered (or set
    /// aside), up to `timeout`; partial batches are sent at once meanwhile.
    pub fn flush(&self, timeout: Duration) -> Result<(), ShipError> {
        let Some(target) = reader::head_seq(&self.file) else { return Ok(()) };
        let deadline = Instant::now() + timeout;
        let mut st = self.shared.lock();
        st.flushes += 1;
        self.shared.cv.notify_all();
        let result = loop {
            if st.metrics.cursor.as_ref().is_some_and(|c| c.seq >= target) {
                break Ok(());
            }
            let now = Instant::now();
            if now >= deadline || st.finished {
                let why = if st.finished { "shipping has stopped" } else { "still sending" };
                break Err(ShipError(format!(
                    "flush timed out before seq {target} was delivered: {}",
                    st.metrics.last_error.as_deref().unwrap_or(why)
                )));
            }
            st = self
                .shared
                .cv
                .wait_timeout(st, (deadline - now).min(Duration::from_millis(100)))
                .map(|(g, _)| g)
                .unwrap_or_else(|p| p.into_inner().0);
        };
        st.flushes -= 1;
        result
    }

    /// Stops: a final attempt ships what is in the files, bounded by `timeout`; then
    /// the thread ends. Returns the final metrics, and an error if the final attempt
    /// could not deliver everything (nothing is lost: the next start resumes).
    /// Idempotent: later calls return the first call's outcome without waiting.
    pub fn close(&self, timeout: Duration) -> (Metrics, Result<(), ShipError>) {
        let mut closed = self.closed.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(r) = closed.as_ref() {
            return (self.metrics(), r.clone());
        }
        let r = self.stop(timeout);
        *closed = Some(r.clone());
        (self.metrics(), r)
    }

    fn stop(&self, timeout: Duration) -> Result<(), ShipError> {
        {
            let mut st = self.shared.lock();
            st.stop = true;
            st.close_deadline = Some(Instant::now() + timeout);
        }
        self.shared.cv.notify_all();
        let thread = self.thread.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
        match thread.map(std::thread::JoinHandle::join) {
            Some(Ok(r)) => r,
            Some(Err(_)) => Err(ShipError("the shipping thread panicked".into())),
            None => match self.shared.lock().metrics.last_error.clone() {
                Some(e) if self.shared.lock().start_failed => Err(ShipError(e)),
                _ => Ok(()),
            },
        }
    }
}

impl Drop for ShipperHandle {
    /// Stops without a final flush (bounded by one in-flight request).
    fn drop(&mut self) {
        let running = self.thread.get_mut().map(|t| t.is_some()).unwrap_or(true);
        if running {
            let _ = self.stop(Duration::ZERO);
        }
    }
}

/// A flag set by SIGINT or SIGTERM (Unix), for a graceful stop.
pub fn stop_on_signals() -> std::io::Result<Arc<AtomicBool>> {
    let flag = Arc::new(AtomicBool::new(false));
    #[cfg(unix)]
    {
        signal_hook::flag::register(signal_hook::consts::SIGINT, flag.clone())?;
        signal_hook::flag::register(signal_hook::consts::SIGTERM, flag.clone())?;
    }
    Ok(flag)
}

/// Whether a stop flag from [`stop_on_signals`] is set.
pub fn stopped(flag: &AtomicBool) -> bool {
    flag.load(Ordering::Relaxed)
}

/// `FILE.ship-rejected.N.jsonl` files beside `file`.
pub fn rejected_files(file: &Path) -> Vec<PathBuf> {
    let mut v: Vec<(u64, PathBuf)> = (1..)
        .map(|n| (n, PathBuf::from(format!("{}.ship-rejected.{n}.jsonl", file.display()))))
        .take_while(|(_, p)| p.exists())
        .collect();
    v.sort();
    v.into_iter().map(|(_, p)| p).collect()
}
