//! Memory per session with three live marks (§10 acceptance: ≤ 200 bytes): counts the
//! heap bytes live after giving 100,000 sessions three marks each, with no audit sink
//! (decisions are dropped), minus what the engine held before.
//!
//! `cargo run --release -p aegis-bench --example marks_memory`
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use aegis_bench::marks::{bundle, fill, SESSIONS};
use aegis_core::{Engine, EngineOptions};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

/// The system allocator, counting the bytes live.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every call is passed straight to the system allocator with the same
// layout; only a counter is updated beside it.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size() as isize, Ordering::Relaxed);
        // SAFETY: the caller's layout contract is forwarded unchanged.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size() as isize, Ordering::Relaxed);
        // SAFETY: `p` was allocated by `alloc` above with this layout.
        unsafe { System.dealloc(p, l) }
    }
}

#[global_allocator]
static A: Counting = Counting;

/// The process's resident set, in bytes (Linux).
fn rss() -> Option<i64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb: i64 = status.lines().find(|l| l.starts_with("VmRSS:"))?.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

fn main() {
    let engine = Engine::from_yaml(&bundle(true), EngineOptions::default()).unwrap();
    let (before, rss_before) = (LIVE.load(Ordering::Relaxed), rss());
    fill(&engine, SESSIONS);
    let (after, rss_after) = (LIVE.load(Ordering::Relaxed), rss());
    assert_eq!(engine.marks("s-7").unwrap(), ["customer", "pii", "untrusted"]);
    let per = (after - before) as f64 / SESSIONS as f64;
    println!("{SESSIONS} sessions with 3 marks: {} bytes requested, {per:.1} bytes per session", after - before);
    if let (Some(a), Some(b)) = (rss_after, rss_before) {
        println!(
            "resident set grew by {} bytes: {:.1} bytes per session (allocator overhead included)",
            a - b,
            (a - b) as f64 / SESSIONS as f64
        );
    }
}
