//! Corrupted audit files: write arbitrary bytes, open them as a file sink (resume the
//! chain or fail with an error) and verify them. Nothing may panic; a file that
//! verifies must open, and an open that succeeds must keep the bytes before the torn
//! tail untouched.
#![no_main]
use aegis_core::audit::{verify_files, FileSink, Fsync};
use libfuzzer_sys::fuzz_target;
use std::sync::atomic::{AtomicU64, Ordering};

static N: AtomicU64 = AtomicU64::new(0);

fuzz_target!(|data: &[u8]| {
    let dir = std::env::temp_dir().join(format!("aegis-fuzz-audit-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let path = dir.join(format!("a{}.jsonl", N.fetch_add(1, Ordering::Relaxed) % 4));
    for p in aegis_core::audit::chain_files(&path) {
        let _ = std::fs::remove_file(p);
    }
    let _ = std::fs::remove_file(&path);
    if std::fs::write(&path, data).is_err() {
        return;
    }
    let verified = verify_files(&[path.clone()], None).is_ok();
    let opened = FileSink::open(&path, Fsync::Never);
    if verified && data.ends_with(b"\n") {
        assert!(opened.is_ok(), "a file that verifies must open: {:?}", opened.err());
    }
    drop(opened);
    let _ = verify_files(&[path.clone()], Some(b"k"));
    // Clean up the torn-line side files.
    if let Ok(rd) = std::fs::read_dir(&dir) {
        for e in rd.flatten() {
            let _ = std::fs::remove_file(e.path());
        }
    }
});
