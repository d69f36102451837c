//! Crash safety of the audit file: `aegis eval --audit` (fsync always) is killed with
//! SIGKILL at random moments, 50 times. After each kill, every decision the child had
//! printed (acknowledged: printed only after its record was durable) is in the file
//! with the same hash; reopening recovers (torn line set aside, chain resumed); and
//! the whole log verifies at the end.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing, missing_docs)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

struct Lcg(u64);
impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n
    }
}

fn seq_and_hash(line: &str) -> (u64, String) {
    let v: serde_json::Value = serde_json::from_str(line).unwrap();
    (v["audit"]["seq"].as_u64().unwrap(), v["audit"]["hash"].as_str().unwrap().to_string())
}

#[test]
fn sigkill_loses_no_acknowledged_record() {
    let d = std::env::temp_dir().join(format!("aegis-crash-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join("p.yaml"), "aegis: 1\ndefault: allow\n").unwrap();
    let audit = d.join("audit.jsonl");
    let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64;
    println!("seed {seed}");
    let mut rng = Lcg(seed);
    let mut acked: HashMap<u64, String> = HashMap::new();
    let mut torn_warnings = 0;
    for round in 0..50 {
        let mut child = Command::new(env!("CARGO_BIN_EXE_aegis"))
            .args(["eval", "-p", "p.yaml", "--audit", "audit.jsonl", "-"])
            .current_dir(&d)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let writer = std::thread::spawn(move || {
            for i in 0..200_000u64 {
                let line = format!("{{\"agent\":\"a\",\"tool\":\"t\",\"params\":{{\"round\":{round},\"i\":{i}}}}}\n");
                if stdin.write_all(line.as_bytes()).is_err() {
                    break;
                }
            }
        });
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let wait_for = rng.below(30);
        let mut line = String::new();
        for _ in 0..wait_for {
            line.clear();
            if out.read_line(&mut line).unwrap() == 0 {
                break;
            }
            let (s, h) = seq_and_hash(&line);
            acked.insert(s, h);
        }
        std::thread::sleep(Duration::from_micros(rng.below(3000)));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        // Whatever it printed before dying was acknowledged too.
        for l in out.lines() {
            let l = l.unwrap();
            if l.trim().is_empty() {
                continue;
            }
            // A line cut by the kill is not an acknowledgement.
            if serde_json::from_str::<serde_json::Value>(&l).is_ok() {
                let (s, h) = seq_and_hash(&l);
                acked.insert(s, h);
            }
        }
        writer.join().unwrap();
        let mut err = String::new();
        std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
        if err.contains("torn line") {
            torn_warnings += 1;
        }
        // Every acknowledged record is in the file, with the same hash.
        let text = std::fs::read_to_string(&audit).unwrap_or_default();
        let on_disk: HashMap<u64, String> = text
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .map(|v| (v["seq"].as_u64().unwrap(), v["hash"].as_str().unwrap().to_string()))
            .collect();
        for (s, h) in &acked {
            assert_eq!(on_disk.get(s), Some(h), "round {round}: acknowledged seq {s} is missing or different");
        }
    }
    // One last open recovers any torn tail and resumes the chain; then it all verifies.
    let o = Command::new(env!("CARGO_BIN_EXE_aegis"))
        .args(["eval", "-p", "p.yaml", "--audit", "audit.jsonl", "-"])
        .current_dir(&d)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            c.stdin.take().unwrap().write_all(b"{\"agent\":\"a\",\"tool\":\"t\"}\n")?;
            c.wait_with_output()
        })
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v = Command::new(env!("CARGO_BIN_EXE_aegis"))
        .args(["audit", "verify", "audit.jsonl"])
        .current_dir(&d)
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&v.stdout).to_string();
    assert!(v.status.success(), "{report}");
    let records: u64 = report.split_whitespace().nth(1).unwrap().parse().unwrap();
    assert!(records as usize > acked.len().saturating_sub(1), "{report}");
    println!(
        "50 kills: {} acknowledged records kept, {records} in the log, {torn_warnings} torn tails recovered",
        acked.len()
    );
    std::fs::remove_dir_all(&d).unwrap();
}
