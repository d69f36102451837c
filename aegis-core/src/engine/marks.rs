//! Session marks (§10): per-session labels with an expiry, kept in the engine and
//! bounded by `max_sessions`.
//!
//! A mark added at request time T with ttl d is live while the request time is
//! < T + d. Sessions whose marks have all expired are pruned as the engine goes: each
//! call that adds marks looks at the next [`SWEEP`] sessions (a cursor over the
//! table, so there is never a pause to scan it), and a call that needs a place in a
//! full table looks at up to [`RECLAIM`] more. Pruning loses information a
//! back-dated request could have needed, so the table keeps a horizon: the latest
//! expiry of a mark it pruned. A request earlier than the horizon cannot know its
//! session's marks, and a test of them is an error (fail closed).

use indexmap::IndexMap;
use std::sync::Arc;

/// Sessions a call looks at for pruning, on every call that touches marks.
pub const SWEEP: usize = 2;
/// Sessions a call that needs a place in a full table looks at, at most.
pub const RECLAIM: usize = 64;
/// How long after their last mark expired the ordinary sweep keeps a session (so a
/// request a little older than the newest one still sees the marks it should); a
/// full table reclaims sooner.
pub const SWEEP_GRACE_MS: i64 = 60_000;

/// A session's mark: a label (shared with the rule that adds it) and when it expires.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Mark {
    label: Arc<str>,
    expires_ms: i64,
}

/// A session's marks, sorted by label, each label once (a boxed slice: a table of
/// 100,000 sessions pays for no spare capacity).
#[derive(Debug, Default)]
struct Marks(Box<[Mark]>);

impl Marks {
    fn last_expiry(&self) -> i64 {
        self.0.iter().map(|m| m.expires_ms).max().unwrap_or(i64::MIN)
    }

    fn live_into(&self, time_ms: i64, out: &mut Vec<Arc<str>>) {
        out.extend(self.0.iter().filter(|m| time_ms < m.expires_ms).map(|m| m.label.clone()));
    }

    /// Adds a mark, or refreshes it to the later of the two expiries.
    fn add(&mut self, label: &Arc<str>, expires_ms: i64) {
        match self.0.binary_search_by(|m| m.label.as_bytes().cmp(label.as_bytes())) {
            Ok(i) => {
                if let Some(m) = self.0.get_mut(i) {
                    m.expires_ms = m.expires_ms.max(expires_ms);
                }
            }
            Err(i) => {
                let mut v = Vec::with_capacity(self.0.len() + 1);
                v.extend_from_slice(self.0.get(..i).unwrap_or_default());
                v.push(Mark { label: label.clone(), expires_ms });
                v.extend_from_slice(self.0.get(i..).unwrap_or_default());
                self.0 = v.into_boxed_slice();
            }
        }
    }
}

/// What the table says about a session's marks at a request time.
#[derive(Debug, PartialEq, Eq)]
pub enum Known {
    /// The session's live marks, sorted (`[]`: none is live).
    Live(Vec<Arc<str>>),
    /// They cannot be known; the message says why.
    Unknown(&'static str),
}

/// A session could not be given a place: the table holds `max_sessions` sessions.
#[derive(Debug, PartialEq, Eq)]
pub struct Full;

/// Every session's marks, bounded.
pub struct MarkTable {
    sessions: IndexMap<Box<str>, Marks>,
    cap: usize,
    cursor: usize,
    horizon_ms: i64,
}

/// The message of a `session.marks` test while the table is full.
pub const FULL_MESSAGE: &str = "session marks unknown: the session table is full";
/// The message of a `session.marks` test of a request older than pruned marks.
pub const PRUNED_MESSAGE: &str = "session marks unknown: the request time is before marks were pruned";

impl MarkTable {
    /// A table holding at most `cap` sessions.
    pub fn new(cap: usize) -> MarkTable {
        MarkTable { sessions: IndexMap::new(), cap, cursor: 0, horizon_ms: i64::MIN }
    }

    /// The most sessions held.
    pub fn capacity(&self) -> usize {
        self.cap
    }

    /// The session's live marks at `time_ms`, as a decision reads them (§10): unknown
    /// when the request is older than marks pruned, or when the table is full (after
    /// reclaiming expired sessions) and does not hold the session.
    pub fn read(&mut self, session: &str, time_ms: i64) -> Known {
        if time_ms < self.horizon_ms {
            return Known::Unknown(PRUNED_MESSAGE);
        }
        let mut live = Vec::new();
        match self.sessions.get(session) {
            Some(m) => m.live_into(time_ms, &mut live),
            None if self.sessions.len() >= self.cap => {
                self.reclaim(time_ms);
                if self.sessions.len() >= self.cap {
                    return Known::Unknown(FULL_MESSAGE);
                }
            }
            None => {}
        }
        Known::Live(live)
    }

    /// Whether the session is held (so it can take more marks whatever the room).
    pub fn holds(&self, session: &str) -> bool {
        self.sessions.contains_key(session)
    }

    /// Makes sure the session has a place, reclaiming expired sessions if the table
    /// is full; fails when there is still none. Changes nothing but pruning.
    pub fn reserve(&mut self, session: &str, time_ms: i64) -> Result<(), Full> {
        if self.holds(session) || self.sessions.len() < self.cap {
            return Ok(());
        }
        self.reclaim(time_ms);
        if self.sessions.len() < self.cap {
            Ok(())
        } else {
            Err(Full)
        }
    }

    /// Adds marks to a session (a mark already there keeps the later expiry). The
    /// caller has [`reserve`](Self::reserve)d the place; without one it fails and
    /// adds nothing.
    pub fn add(&mut self, session: &str, marks: impl IntoIterator<Item = (Arc<str>, i64)>) -> Result<(), Full> {
        if !self.holds(session) && self.sessions.len() >= self.cap {
            return Err(Full);
        }
        let entry = self.sessions.entry(Box::from(session)).or_default();
        for (label, expires_ms) in marks {
            entry.add(&label, expires_ms);
        }
        Ok(())
    }

    /// The session's live marks at `time_ms`, as labels (what a record and
    /// `engine.marks` give).
    pub fn live(&self, session: &str, time_ms: i64) -> Vec<String> {
        let mut live = Vec::new();
        if let Some(m) = self.sessions.get(session) {
            m.live_into(time_ms, &mut live);
        }
        live.iter().map(|l| l.to_string()).collect()
    }

    /// Forgets a session's marks; returns whether it had live ones at `time_ms`.
    pub fn clear(&mut self, session: &str, time_ms: i64) -> bool {
        match self.sessions.swap_remove(session) {
            Some(m) => m.0.iter().any(|x| time_ms < x.expires_ms),
            None => false,
        }
    }

    /// The ordinary sweep, on every call that adds marks: looks at the next
    /// [`SWEEP`] sessions and drops those whose marks all expired more than
    /// [`SWEEP_GRACE_MS`] before `time_ms`.
    pub fn sweep(&mut self, time_ms: i64) {
        self.prune(time_ms.saturating_sub(SWEEP_GRACE_MS), SWEEP);
    }

    /// Sessions held (live or not yet pruned).
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    /// Whether no session is held.
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    /// Reclaims places in a full table: up to [`RECLAIM`] sessions looked at, those
    /// with no mark live at `time_ms` dropped.
    fn reclaim(&mut self, time_ms: i64) {
        self.prune(time_ms, RECLAIM);
    }

    /// Looks at up to `n` sessions from the cursor and drops those whose marks all
    /// expired at or before `cutoff_ms`, moving the horizon past them.
    fn prune(&mut self, cutoff_ms: i64, n: usize) {
        for _ in 0..n.min(self.sessions.len()) {
            if self.cursor >= self.sessions.len() {
                self.cursor = 0;
            }
            let last = self.sessions.get_index(self.cursor).map_or(i64::MAX, |(_, m)| m.last_expiry());
            if last <= cutoff_ms {
                self.sessions.swap_remove_index(self.cursor);
                self.horizon_ms = self.horizon_ms.max(last);
            } else {
                self.cursor += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn l(s: &str) -> Arc<str> {
        Arc::from(s)
    }

    fn live(k: Known) -> Vec<String> {
        match k {
            Known::Live(v) => v.iter().map(|s| s.to_string()).collect(),
            Known::Unknown(m) => panic!("unknown: {m}"),
        }
    }

    #[test]
    fn marks_expire_at_the_millisecond_and_refresh_to_the_later_expiry() {
        let mut t = MarkTable::new(10);
        t.add("s", [(l("pii"), 1000), (l("b"), 500)]).unwrap();
        assert_eq!(live(t.read("s", 499)), ["b", "pii"]);
        assert_eq!(live(t.read("s", 500)), ["pii"]);
        assert_eq!(live(t.read("s", 999)), ["pii"]);
        assert!(live(t.read("s", 1000)).is_empty());
        t.add("s", [(l("pii"), 800)]).unwrap();
        assert_eq!(live(t.read("s", 999)), ["pii"], "a refresh never shortens");
        t.add("s", [(l("pii"), 2000)]).unwrap();
        assert_eq!(t.live("s", 1999), ["pii"]);
        assert!(live(t.read("other", 0)).is_empty());
    }

    #[test]
    fn a_full_table_reclaims_expired_sessions_and_otherwise_fails_closed() {
        let mut t = MarkTable::new(2);
        t.add("a", [(l("x"), 100)]).unwrap();
        t.add("b", [(l("x"), 1000)]).unwrap();
        assert_eq!(t.read("c", 50), Known::Unknown(FULL_MESSAGE));
        assert_eq!(t.reserve("c", 50), Err(Full));
        assert_eq!(t.add("c", [(l("x"), 10)]), Err(Full));
        // A held session still takes marks.
        t.add("a", [(l("y"), 200)]).unwrap();
        // At 200 `a` has no live mark: its place is reclaimed.
        assert_eq!(t.reserve("c", 200), Ok(()));
        t.add("c", [(l("x"), 300)]).unwrap();
        assert!(!t.holds("a"));
        // Requests older than the pruned marks cannot know theirs.
        assert_eq!(t.read("b", 150), Known::Unknown(PRUNED_MESSAGE));
        assert_eq!(live(t.read("b", 200)), ["x"]);
        assert!(t.clear("b", 200));
        assert!(!t.clear("b", 200));
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn the_sweep_looks_at_few_sessions_and_keeps_a_grace() {
        let mut t = MarkTable::new(100);
        for i in 0..10 {
            t.add(&format!("s{i}"), [(l("x"), 1000)]).unwrap();
        }
        t.sweep(1000 + SWEEP_GRACE_MS - 1);
        assert_eq!(t.len(), 10, "within the grace");
        t.sweep(1000 + SWEEP_GRACE_MS);
        assert_eq!(t.len(), 10 - SWEEP);
        for _ in 0..10 {
            t.sweep(1000 + SWEEP_GRACE_MS);
        }
        assert!(t.is_empty());
    }
}
