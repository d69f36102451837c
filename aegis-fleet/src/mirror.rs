//! The member's mirror of the fleet: kill switches, the epoch, the store's clock and
//! how fresh all that is. A background thread keeps it: a subscription to the events
//! channel (a kill or revive anywhere triggers a full read at once) and a full read at
//! least every `state_stale_ms`/4 on the monotonic clock.
//!
//! A full read takes TIME, the epoch and every kill in one pipeline. It writes back
//! kills that could not be written yet (a kill made while the store was away), and —
//! when the epoch is gone or changed (the store lost its data) — every kill the
//! mirror holds, so a kill never silently lapses; the member then denies calls that
//! need shared state (`state:reset`) until it finds an epoch an operator accepted.

use crate::commands;
use crate::keys::Keys;
use crate::pool::{describe, Pool};
use aegis_core::state::{Kill, KillSet, StateFailure, StateFault};
use aegis_core::time::Millis;
use aegis_core::{KillScope, StateConfig};
use redis::RedisResult;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// What a full read fetches: the store's `TIME`, the epoch and the kills hash.
type FullRead = ((i64, i64), Option<String>, Vec<(String, String)>);

/// The suffix of an epoch written by `aegis state reset --accept`.
pub const ACCEPTED: &str = ".accepted";

#[derive(Default)]
struct EpochState {
    /// The epoch this member uses (`None` before the first full read).
    adopted: Option<String>,
    /// The store lost its data and no accepted epoch has been seen since.
    reset: bool,
}

#[derive(Default)]
struct Clock {
    /// The store's `TIME` at the last full read, in Unix ms, and when it was taken.
    sample: Option<(Millis, Instant)>,
}

/// What the engine and the thread share.
pub struct Mirror {
    cfg: StateConfig,
    keys: Keys,
    pool: Arc<Pool>,
    kills: Arc<KillSet>,
    /// Kills in force here that the store does not have yet.
    unwritten: Mutex<Vec<Kill>>,
    epoch: Mutex<EpochState>,
    clock: Mutex<Clock>,
    /// The monotonic time of the last successful full read (ns since `base`; 0: none).
    fresh_ns: AtomicU64,
    base: Instant,
    last_error: Mutex<String>,
    /// The policy hash this member decides with, and whether it is yet to be compared
    /// with the fleet's.
    policy: Mutex<(String, bool)>,
    /// Ask the thread for a full read now.
    due: AtomicBool,
    stop: AtomicBool,
}

/// Puts a kill in a list, replacing one with the same scope and id (as
/// [`KillSet::insert`] does).
fn put(list: &mut Vec<Kill>, kill: Kill) {
    list.retain(|k| !(k.scope == kill.scope && k.id == kill.id));
    list.push(kill);
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A fresh epoch value: 128 bits from the process's hasher seeds, the time and pid.
pub fn new_epoch() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut out = String::with_capacity(32);
    for i in 0..2u64 {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(i);
        h.write_u32(std::process::id());
        h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos()));
        out.push_str(&format!("{:016x}", h.finish()));
    }
    out
}

impl Mirror {
    /// Makes the first full read (when the store answers) and starts the thread.
    pub fn start(cfg: &StateConfig, keys: Keys, pool: Arc<Pool>) -> Arc<Mirror> {
        let m = Arc::new(Mirror {
            cfg: cfg.clone(),
            keys,
            pool,
            kills: Arc::new(KillSet::default()),
            unwritten: Mutex::new(Vec::new()),
            epoch: Mutex::new(EpochState::default()),
            clock: Mutex::new(Clock::default()),
            fresh_ns: AtomicU64::new(0),
            base: Instant::now(),
            last_error: Mutex::new("no full read yet".into()),
            policy: Mutex::new((String::new(), false)),
            due: AtomicBool::new(false),
            stop: AtomicBool::new(false),
        });
        m.full_read_logged();
        let t = m.clone();
        let spawned = std::thread::Builder::new().name("aegis-fleet-mirror".into()).spawn(move || t.run());
        if let Err(e) = spawned {
            // Without the thread the mirror goes stale and every call is denied.
            *lock(&m.last_error) = format!("the mirror thread could not start: {e}");
        }
        m
    }

    /// Tells the thread to end (at its next wake-up, within a poll interval).
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Release);
    }

    /// Asks for a full read soon (after a failure or a reset seen by a call).
    pub fn poke(&self) {
        self.due.store(true, Ordering::Release);
    }

    pub fn kills(&self) -> Arc<KillSet> {
        self.kills.clone()
    }

    fn poll(&self) -> Duration {
        Duration::from_millis((self.cfg.stale_ms / 4).clamp(1, 250))
    }

    fn refresh_every(&self) -> Duration {
        Duration::from_millis((self.cfg.stale_ms / 4).max(1))
    }

    fn run(self: Arc<Self>) {
        let mut last = Instant::now();
        while !self.stop.load(Ordering::Acquire) {
            match self.connect_subscriber() {
                Ok(mut con) => {
                    let mut ps = con.as_pubsub();
                    let subscribed =
                        ps.subscribe(self.keys.events()).and_then(|()| ps.set_read_timeout(Some(self.poll())));
                    if subscribed.is_err() {
                        drop(ps);
                        self.wait_and_read(&mut last);
                        continue;
                    }
                    // Events may have been missed while unsubscribed.
                    self.due.store(true, Ordering::Release);
                    while !self.stop.load(Ordering::Acquire) {
                        self.read_if_due(&mut last);
                        match ps.get_message() {
                            Ok(_) => self.due.store(true, Ordering::Release),
                            Err(e) if e.is_timeout() => {}
                            Err(_) => break,
                        }
                    }
                }
                Err(_) => self.wait_and_read(&mut last),
            }
        }
    }

    /// Without a subscription: sleeps a poll interval, reading when due.
    fn wait_and_read(&self, last: &mut Instant) {
        std::thread::sleep(self.poll());
        self.read_if_due(last);
    }

    fn read_if_due(&self, last: &mut Instant) {
        if self.due.swap(false, Ordering::AcqRel) || last.elapsed() >= self.refresh_every() {
            *last = Instant::now();
            self.full_read_logged();
        }
    }

    fn connect_subscriber(&self) -> RedisResult<redis::Connection> {
        let c = self.pool.connect(crate::timeout(&self.cfg))?;
        c.set_read_timeout(Some(crate::timeout(&self.cfg)))?;
        c.set_write_timeout(Some(crate::timeout(&self.cfg)))?;
        Ok(c)
    }

    fn full_read_logged(&self) {
        if let Err(e) = self.full_read() {
            self.pool.clear();
            *lock(&self.last_error) = describe(&e);
        }
    }

    /// One full read (see the module's documentation).
    fn full_read(&self) -> RedisResult<()> {
        let started = Instant::now();
        let (time, epoch, kills): FullRead = self.pool.with(|c| {
            redis::pipe()
                .cmd("TIME")
                .cmd("GET")
                .arg(self.keys.epoch())
                .cmd("HGETALL")
                .arg(self.keys.kills())
                .query(c.exchange(3)?)
        })?;
        let store_ms = commands::store_ms(time);
        // The sample is taken halfway through the round trip.
        let at = started + started.elapsed() / 2;
        // The epoch.
        let adopted = lock(&self.epoch).adopted.clone();
        match (&adopted, &epoch) {
            (None, None) => {
                let now = self.pool.with(|c| commands::set_nx_get(c, &self.keys.epoch(), &new_epoch()))?;
                let mut e = lock(&self.epoch);
                e.adopted = now;
                e.reset = false;
            }
            (None, Some(found)) => {
                let mut e = lock(&self.epoch);
                e.adopted = Some(found.clone());
                e.reset = false;
            }
            (Some(mine), found) if found.as_ref() == Some(mine) => {}
            (Some(_), found) => {
                // The store lost its data: a kill must never lapse with it.
                self.write_back()?;
                let mut e = lock(&self.epoch);
                match found {
                    Some(f) if f.ends_with(ACCEPTED) => {
                        e.adopted = Some(f.clone());
                        e.reset = false;
                    }
                    _ => e.reset = true,
                }
            }
        }
        self.flush_unwritten()?;
        // The kills: the store's, and those not written yet.
        let mut all = commands::parse_kills(kills);
        for k in lock(&self.unwritten).iter() {
            put(&mut all, k.clone());
        }
        self.kills.replace(all);
        lock(&self.clock).sample = Some((store_ms, at));
        let ns = u64::try_from(Instant::now().duration_since(self.base).as_nanos()).unwrap_or(u64::MAX).max(1);
        self.fresh_ns.store(ns, Ordering::Release);
        self.announce();
        Ok(())
    }

    /// Writes every kill of the mirror back to the store (after a loss of data).
    fn write_back(&self) -> RedisResult<()> {
        let held = self.kills.list();
        if held.is_empty() {
            return Ok(());
        }
        self.pool.with(|c| commands::write_kills(c, &self.keys, &held))
    }

    fn flush_unwritten(&self) -> RedisResult<()> {
        let pending = lock(&self.unwritten).clone();
        if pending.is_empty() {
            return Ok(());
        }
        self.pool.with(|c| commands::write_kills(c, &self.keys, &pending))?;
        lock(&self.unwritten).retain(|k| !pending.contains(k));
        Ok(())
    }

    /// A kill: in force here at once, then written (or kept to be written).
    pub fn kill(&self, kill: Kill) -> RedisResult<()> {
        self.kills.insert(kill.clone());
        put(&mut lock(&self.unwritten), kill.clone());
        match self.pool.with(|c| commands::write_kills(c, &self.keys, std::slice::from_ref(&kill))) {
            Ok(()) => {
                lock(&self.unwritten).retain(|k| k != &kill);
                Ok(())
            }
            Err(e) => {
                self.poke();
                Err(e)
            }
        }
    }

    /// A revive: written, then lifted here.
    pub fn revive(&self, scope: KillScope, id: &str) -> RedisResult<bool> {
        let removed = self.pool.with(|c| commands::delete_kill(c, &self.keys, scope, id))?;
        lock(&self.unwritten).retain(|k| !(k.scope == scope && k.id == id));
        let here = self.kills.remove(scope, id);
        Ok(removed || here)
    }

    /// Why the mirror may not be trusted (`None`: it is fresh).
    pub fn stale(&self) -> Option<String> {
        let fresh = self.fresh_ns.load(Ordering::Acquire);
        let why = || lock(&self.last_error).clone();
        if fresh == 0 {
            return Some(format!("no full read of the fleet's state yet ({})", why()));
        }
        let now = u64::try_from(self.base.elapsed().as_nanos()).unwrap_or(u64::MAX);
        let age_ms = now.saturating_sub(fresh) / 1_000_000;
        if age_ms > self.cfg.stale_ms {
            return Some(format!(
                "the kill switches were last confirmed {age_ms} ms ago (state_stale_ms is {}): {}",
                self.cfg.stale_ms,
                why()
            ));
        }
        None
    }

    /// The epoch to check a step against, or `state:reset`.
    pub fn epoch(&self) -> Result<String, StateFailure> {
        let e = lock(&self.epoch);
        if e.reset {
            return Err(StateFailure::reset());
        }
        e.adopted.clone().ok_or_else(|| StateFailure::unavailable("no full read of the fleet's state yet"))
    }

    /// `state:reset`, then `state:skew`.
    pub fn check(&self, time_ms: Millis) -> Result<(), StateFailure> {
        self.epoch()?;
        let Some((store_ms, at)) = lock(&self.clock).sample else {
            return Err(StateFailure::unavailable("the store's clock has not been read yet"));
        };
        let now = store_ms.saturating_add(i64::try_from(at.elapsed().as_millis()).unwrap_or(i64::MAX));
        let skew = time_ms.saturating_sub(now).saturating_abs();
        if skew > self.cfg.max_skew_ms as i64 {
            return Err(StateFailure {
                fault: StateFault::Skew,
                message: format!(
                    "the request time {} is {skew} ms from the store's clock {} (state_max_skew_ms is {})",
                    aegis_core::time::format_utc(time_ms),
                    aegis_core::time::format_utc(now),
                    self.cfg.max_skew_ms
                ),
            });
        }
        Ok(())
    }

    /// Records the member's policy hash and compares it with the fleet's now (or at
    /// the next full read when the store cannot be reached).
    pub fn policy_loaded(&self, hash: &str) {
        *lock(&self.policy) = (hash.to_owned(), true);
        self.announce();
    }

    fn announce(&self) {
        let (hash, pending) = lock(&self.policy).clone();
        if !pending || hash.is_empty() {
            return;
        }
        let fleet = self.pool.with(|c| commands::set_nx_get(c, &self.keys.policy(), &hash));
        if let Ok(fleet) = fleet {
            lock(&self.policy).1 = false;
            if let Some(f) = fleet.filter(|f| *f != hash) {
                eprintln!(
                    "aegis: warning: this engine's policy {hash} differs from the fleet's {f} (prefix {:?}); every member should load the same bundle",
                    self.cfg.prefix
                );
            }
        }
    }
}
