//! Exponential backoff with jitter, and `Retry-After` parsing.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Exponential backoff: `initial · 2^attempt`, capped at `max`, with "equal jitter"
/// (a uniformly random delay between half and all of it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    /// The first delay.
    pub initial: Duration,
    /// The cap (default 30 s).
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Backoff {
        Backoff { initial: Duration::from_millis(250), max: Duration::from_secs(30) }
    }
}

impl Backoff {
    /// The delay before retry number `attempt` (0-based); `unit` in `[0, 1)` picks
    /// the jitter.
    pub fn delay(&self, attempt: u32, unit: f64) -> Duration {
        let base = self.initial.saturating_mul(1u32 << attempt.min(20)).min(self.max);
        let half = base / 2;
        half + half.mul_f64(unit.clamp(0.0, 1.0))
    }
}

/// A small xorshift generator for jitter (no cryptographic needs).
pub struct Jitter(u64);

impl Jitter {
    /// Seeded from the clock and the process id.
    pub fn new() -> Jitter {
        let t = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(1);
        Jitter((t ^ (u64::from(std::process::id()) << 32)) | 1)
    }

    /// A number in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        (x >> 11) as f64 / (1u64 << 53) as f64
    }
}

impl Default for Jitter {
    fn default() -> Jitter {
        Jitter::new()
    }
}

/// Parses a `Retry-After` value: delay-seconds, or an HTTP-date (IMF-fixdate
/// `Sun, 06 Nov 1994 08:49:37 GMT`, also without the weekday) relative to `now`. A
/// date in the past means no delay. `None` if it is neither.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let v = value.trim();
    if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) {
        return v.parse::<u64>().ok().map(Duration::from_secs);
    }
    let at = parse_http_date(v)?;
    let now = now.duration_since(UNIX_EPOCH).ok()?.as_secs();
    Some(Duration::from_secs(at.saturating_sub(now)))
}

/// Seconds since the epoch of an IMF-fixdate.
pub fn parse_http_date(v: &str) -> Option<u64> {
    let rest = match v.split_once(',') {
        Some((_weekday, rest)) => rest,
        None => v,
    };
    let parts: Vec<&str> = rest.split_whitespace().collect();
    let [day, month, year, time, zone] = parts.as_slice() else { return None };
    if !matches!(*zone, "GMT" | "UTC" | "+0000") {
        return None;
    }
    let day: i64 = day.parse().ok()?;
    let month = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        .iter()
        .position(|m| m.eq_ignore_ascii_case(month))? as i64
        + 1;
    let year: i64 = year.parse().ok()?;
    let hms: Vec<i64> = time.split(':').map(|x| x.parse().ok()).collect::<Option<Vec<i64>>>()?;
    let [h, m, s] = hms.as_slice() else { return None };
    if !(1..=31).contains(&day) || !(0..24).contains(h) || !(0..60).contains(m) || !(0..61).contains(s) {
        return None;
    }
    let days = aegis_core::time::days_from_civil(year, month, day);
    u64::try_from(days * 86_400 + h * 3600 + m * 60 + s).ok()
}
