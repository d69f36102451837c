//! Shared state (§11): what an engine asks of a fleet's store, and the kill switches
//! every engine reads on every call.
//!
//! The core knows no network: an engine built with [`EngineOptions::state`](super::EngineOptions)
//! talks to the store through [`SharedState`], which `aegis-fleet` implements on Redis.
//! The engine evaluates rules against a snapshot (the session's marks, read when a
//! candidate rule touches them), then asks for one atomic [`Step`]: the store checks
//! its epoch, checks the limits against the counters the decision assumed, and — only
//! when they agree — uses the grant, counts the call and adds the marks. When they do
//! not agree (another member got in first) nothing is written, and the engine decides
//! again with the counters the store returned.

pub use super::limits::Counter;
use super::KillScope;
use crate::request::Request;
use crate::time::Millis;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

/// A kill switch in force.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Kill {
    /// What it stops.
    pub scope: KillScope,
    /// The agent, tool or session (`*` for `all`).
    pub id: String,
    /// Why (the reason of the calls it denies; empty: a reason is made up).
    pub reason: String,
}

/// The kill switches an engine reads on every call: its own, or a fleet member's
/// mirror of the store's. Reading costs one atomic load while none is in force.
#[derive(Debug, Default)]
pub struct KillSet {
    kills: RwLock<Vec<Kill>>,
    any: AtomicBool,
}

impl KillSet {
    /// The kill that stops this request, in the order of §6.1: `all`, the agent, an
    /// agent of its chain, the tool, the session.
    pub fn find(&self, req: &Request) -> Option<Kill> {
        if !self.any.load(Ordering::Acquire) {
            return None;
        }
        let kills = self.kills.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        let find = |scope: KillScope, id: &str| kills.iter().find(|k| k.scope == scope && k.id == id).cloned();
        let named = |scope: KillScope| scope.field().and_then(|f| f.name_in(req)).and_then(|id| find(scope, id));
        find(KillScope::All, "*")
            .or_else(|| named(KillScope::Agent))
            .or_else(|| req.chain.iter().find_map(|a| find(KillScope::Agent, a)))
            .or_else(|| named(KillScope::Tool))
            .or_else(|| named(KillScope::Session))
    }

    /// Puts a kill in force (killing again replaces the reason).
    pub fn insert(&self, kill: Kill) {
        let mut kills = self.kills.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        kills.retain(|k| !(k.scope == kill.scope && k.id == kill.id));
        kills.push(kill);
        self.any.store(true, Ordering::Release);
    }

    /// Lifts a kill; returns whether one was in force.
    pub fn remove(&self, scope: KillScope, id: &str) -> bool {
        let mut kills = self.kills.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        let before = kills.len();
        kills.retain(|k| !(k.scope == scope && k.id == id));
        self.any.store(!kills.is_empty(), Ordering::Release);
        kills.len() != before
    }

    /// Replaces every kill at once (a fleet member's full read).
    pub fn replace(&self, all: Vec<Kill>) {
        let mut kills = self.kills.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        self.any.store(!all.is_empty(), Ordering::Release);
        *kills = all;
    }

    /// The kills in force, in the order they were put in force.
    pub fn list(&self) -> Vec<Kill> {
        self.kills.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }
}

/// Why the state a call needs could not be used: each is a pseudo-rule that denies
/// alone (§10, §11).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StateFault {
    /// The store could not be reached in time, or the kill mirror is stale.
    Unavailable,
    /// The store lost its data (its epoch is gone or changed) and no operator has
    /// accepted that yet.
    Reset,
    /// The request time is too far from the store's clock.
    Skew,
    /// The memory state's session table is full (`max_sessions`, §10): the call's
    /// marks cannot be stored.
    Full,
}

impl StateFault {
    /// The pseudo-rule.
    pub fn rule(self) -> &'static str {
        match self {
            StateFault::Unavailable => "state:unavailable",
            StateFault::Reset => "state:reset",
            StateFault::Skew => "state:skew",
            StateFault::Full => "state:full",
        }
    }

    /// The fixed reason of a call it denies.
    pub fn reason(self) -> &'static str {
        match self {
            StateFault::Unavailable => "shared state unavailable: the call needs the fleet's state and cannot get it",
            StateFault::Reset => {
                "shared state reset: the fleet's store lost its data; an operator must accept it (aegis state reset --accept)"
            }
            StateFault::Skew => "shared state clock skew: the request time is too far from the fleet store's clock",
            StateFault::Full => "session table full: the call's marks cannot be stored",
        }
    }
}

/// A [`StateFault`] with what caused it (the message of the decision's error).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct StateFailure {
    /// Which pseudo-rule denies.
    pub fault: StateFault,
    /// The cause, for people.
    pub message: String,
}

impl StateFailure {
    /// The store could not be reached.
    pub fn unavailable(message: impl Into<String>) -> StateFailure {
        StateFailure { fault: StateFault::Unavailable, message: message.into() }
    }

    /// The store lost its data (its epoch is gone or changed).
    pub fn reset() -> StateFailure {
        StateFailure {
            fault: StateFault::Reset,
            message: "the fleet's store lost its data (its epoch is gone or changed); until an operator runs `aegis state reset --accept`, calls that need shared state are denied".into(),
        }
    }
}

/// One matched limit in a [`Step`].
#[derive(Clone, Debug)]
pub struct LimitStep<'a> {
    /// The limit's id.
    pub id: &'a str,
    /// The values of its `per` fields (`None`: the request lacks the field), in order.
    pub per: &'a [Option<String>],
    /// Its window's length.
    pub window_ms: i64,
    /// The window index, ⌊t_ms / window_ms⌋.
    pub window: i64,
    /// When the window ends (the counter expires some time after).
    pub window_end_ms: Millis,
    /// `max_calls`, if set.
    pub max_calls: Option<u64>,
    /// `max_sum`, if set.
    pub max_sum: Option<f64>,
    /// What this call adds to the sum.
    pub add: f64,
    /// Exceeded whatever the counter (an invalid `sum` value).
    pub forced: bool,
    /// Whether the decision assumed the limit exceeded (from the counter it assumed).
    pub assumed_exceeded: bool,
}

/// The one atomic step of a call that needs shared state.
#[derive(Clone, Debug)]
pub struct Step<'a> {
    /// The request time.
    pub time_ms: Millis,
    /// The grant to use (its MAC) and when it expires, when a grant allows the call.
    pub grant: Option<([u8; 32], Millis)>,
    /// Every matched limit, in bundle order.
    pub limits: Vec<LimitStep<'a>>,
    /// Whether the final outcome is `allow` (only then are the limits counted).
    pub count: bool,
    /// The session, when the call reads or adds marks.
    pub session: Option<&'a str>,
    /// The marks to add: label and expiry.
    pub marks: Vec<(&'a str, Millis)>,
}

/// What the store did with a [`Step`].
#[derive(Clone, Debug, PartialEq)]
pub enum StepOutcome {
    /// Written: the counters as they were before the call (in the step's order) and
    /// the session's marks after it (label and expiry, when the step had a session).
    Done {
        /// The counters before the call.
        before: Vec<Counter>,
        /// The session's marks after the call.
        marks: Vec<(String, Millis)>,
    },
    /// Nothing written: a limit was not as the decision assumed, or the grant was
    /// used already. Decide again with these counters.
    Changed {
        /// The counters now.
        before: Vec<Counter>,
        /// Whether the step's grant has been used already.
        grant_used: bool,
    },
}

/// A fleet's store, as an engine uses it. Every method is bounded by the store's
/// timeout and fails closed.
pub trait SharedState: Send + Sync {
    /// The kill mirror the engine reads on every call (the same set every time).
    fn kills(&self) -> Arc<KillSet>;
    /// `None` while the mirror is fresh; else why it is not (every call is then
    /// denied by `state:unavailable`).
    fn stale(&self) -> Option<String>;
    /// Checks a request time against the store's clock (`state:skew`), and that the
    /// store's data may be used (`state:reset`).
    fn check(&self, time_ms: Millis) -> Result<(), StateFailure>;
    /// The session's marks (label and expiry), for the rules to read.
    fn read_marks(&self, session: &str) -> Result<Vec<(String, Millis)>, StateFailure>;
    /// The call's atomic step.
    fn step(&self, step: &Step<'_>) -> Result<StepOutcome, StateFailure>;
    /// Puts a kill in force for the fleet: at once in this member's mirror, and in the
    /// store (when it cannot be written, the kill stays in force here, is written when
    /// the store is back, and this fails).
    fn kill(&self, kill: Kill) -> Result<(), StateFailure>;
    /// Lifts a kill for the fleet, once written; returns whether one was in force.
    fn revive(&self, scope: KillScope, id: &str) -> Result<bool, StateFailure>;
    /// Forgets a session's marks; returns whether it had live ones at `now_ms`.
    fn clear_marks(&self, session: &str, now_ms: Millis) -> Result<bool, StateFailure>;
    /// The bundle this member decides with (announced; a differing fleet hash is
    /// warned about).
    fn policy_loaded(&self, hash: &str);
}
