//! Limit counters (§6.3): one per (limit id, key, window), kept in the engine.

use std::collections::HashMap;

/// A counter's key: limit id, the `per` values (`None` for an absent field), window.
pub type CounterKey = (String, Vec<Option<String>>, i64);

/// Calls and sum in one window.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Counter {
    /// Calls counted in the window (allowed calls only).
    pub calls: u64,
    /// Sum of the `sum` values of the calls counted.
    pub sum: f64,
}

/// Every counter of an engine, bounded.
///
/// Counters of closed windows are dropped when the table fills up; the request time
/// at which that happens becomes a horizon, and a request whose window closed before
/// it is refused (counts as exceeding) rather than given a fresh counter. When the
/// table is full of live counters, a call needing a new counter also counts as
/// exceeding: memory stays bounded and the engine fails closed.
pub struct LimitTable {
    counters: HashMap<CounterKey, (Counter, i64)>,
    cap: usize,
    horizon_ms: i64,
}

/// Why a counter could not be had.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CounterUnavailable {
    /// The window closed before counters were last pruned.
    WindowClosed,
    /// The table holds `cap` live counters.
    Full,
}

impl LimitTable {
    /// A table holding at most `cap` counters.
    pub fn new(cap: usize) -> LimitTable {
        LimitTable { counters: HashMap::new(), cap, horizon_ms: i64::MIN }
    }

    /// The counter for `key` (zero if new), checking that one can be had.
    pub fn get(&mut self, key: &CounterKey, window_end_ms: i64, now_ms: i64) -> Result<Counter, CounterUnavailable> {
        if window_end_ms <= self.horizon_ms {
            return Err(CounterUnavailable::WindowClosed);
        }
        if let Some((c, _)) = self.counters.get(key) {
            return Ok(*c);
        }
        if self.counters.len() >= self.cap {
            self.horizon_ms = self.horizon_ms.max(now_ms);
            let h = self.horizon_ms;
            self.counters.retain(|_, (_, end)| *end > h);
            if window_end_ms <= h {
                return Err(CounterUnavailable::WindowClosed);
            }
            if self.counters.len() >= self.cap {
                return Err(CounterUnavailable::Full);
            }
        }
        Ok(Counter::default())
    }

    /// Stores a counter for its window (after an allowed call).
    pub fn put(&mut self, key: CounterKey, c: Counter, window_end_ms: i64) {
        self.counters.insert(key, (c, window_end_ms));
    }

    /// Drops the counters of limits whose id is not in `keep` (after a reload).
    pub fn retain_ids(&mut self, keep: &[&str]) {
        self.counters.retain(|(id, _, _), _| keep.contains(&id.as_str()));
    }

    /// Number of live counters (for tests of the phases that count).
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.counters.len()
    }
}
