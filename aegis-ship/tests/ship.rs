//! Unit-level tests of aegis-ship: backoff, Retry-After, cursor persistence, following
//! rotation, OTLP mapping, and the 400/429/503 paths against a tiny local responder
//! (it only produces status codes; the end-to-end receiver is a real collector, see
//! `e2e_rotel.py`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing, missing_docs)]

use aegis_ship::reader::Reader;
use aegis_ship::{cursor, otlp, parse_retry_after, Backoff, Cursor, Shipper, ShipperConfig};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, UNIX_EPOCH};

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("aegis-ship-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn rec(seq: u64) -> String {
    format!(
        r#"{{"agent":"agent-{seq}","hash":"{:064x}","outcome":"allow","seq":{seq},"time":"2026-01-05T09:00:00.123Z","tool":"payments"}}"#,
        seq + 1
    )
}

fn append(path: &Path, seqs: std::ops::Range<u64>) {
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path).unwrap();
    for s in seqs {
        writeln!(f, "{}", rec(s)).unwrap();
    }
}

#[test]
fn backoff_grows_is_capped_and_jittered() {
    let b = Backoff { initial: Duration::from_millis(100), max: Duration::from_secs(30) };
    assert_eq!(b.delay(0, 0.5), Duration::from_millis(75));
    assert_eq!(b.delay(0, 0.0), Duration::from_millis(50));
    assert_eq!(b.delay(3, 0.0), Duration::from_millis(400));
    assert_eq!(b.delay(30, 0.0), Duration::from_secs(15));
    for a in 0..40 {
        for u in [0.0, 0.3, 0.99] {
            let d = b.delay(a, u);
            assert!(d <= Duration::from_secs(30) && d >= Duration::from_millis(50), "{a} {u} {d:?}");
        }
    }
}

#[test]
fn retry_after_seconds_and_http_dates() {
    let now = UNIX_EPOCH + Duration::from_secs(784_111_777); // Sun, 06 Nov 1994 08:49:37 GMT
    assert_eq!(parse_retry_after("120", now), Some(Duration::from_secs(120)));
    assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
    assert_eq!(parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now), Some(Duration::ZERO));
    assert_eq!(parse_retry_after("Sun, 06 Nov 1994 08:50:07 GMT", now), Some(Duration::from_secs(30)));
    assert_eq!(parse_retry_after("Mon, 07 Nov 1994 08:49:37 GMT", now), Some(Duration::from_secs(86_400)));
    assert_eq!(parse_retry_after("Sat, 05 Nov 1994 08:49:37 GMT", now), Some(Duration::ZERO));
    assert_eq!(parse_retry_after("soon", now), None);
    assert_eq!(parse_retry_after("-5", now), None);
    assert_eq!(parse_retry_after("Sun, 06 Foo 1994 08:49:37 GMT", now), None);
}

#[test]
fn cursor_is_persisted_atomically() {
    let d = tmpdir("cursor");
    let p = d.join("a.jsonl.ship-cursor");
    assert_eq!(cursor::load(&p).unwrap(), None);
    let c = Cursor { file: "a.jsonl.000002".into(), offset: 1234, seq: 41, hash: "ab".repeat(32) };
    cursor::save(&p, &c).unwrap();
    assert_eq!(cursor::load(&p).unwrap(), Some(c.clone()));
    assert!(!d.join("a.jsonl.ship-cursor.tmp").exists());
    let c2 = Cursor { offset: 99, seq: 42, ..c };
    cursor::save(&p, &c2).unwrap();
    assert_eq!(cursor::load(&p).unwrap(), Some(c2));
    std::fs::write(&p, "{not json").unwrap();
    assert!(cursor::load(&p).unwrap_err().contains("invalid"));
}

#[test]
fn reader_follows_appends_and_rotation_and_repositions_by_seq() {
    let d = tmpdir("reader");
    let f = d.join("a.jsonl");
    append(&f, 0..5);
    let mut r = Reader::new(&f);
    let mut out = Vec::new();
    assert_eq!(r.read(3, &mut out).unwrap(), 3);
    // A partial line (a write in progress) is not read until its newline is there.
    let line5 = rec(5) + "\n";
    let (part1, part2) = line5.split_at(10);
    std::fs::OpenOptions::new().append(true).open(&f).unwrap().write_all(part1.as_bytes()).unwrap();
    assert_eq!(r.read(100, &mut out).unwrap(), 2);
    assert_eq!(r.read(100, &mut out).unwrap(), 0);
    std::fs::OpenOptions::new().append(true).open(&f).unwrap().write_all(part2.as_bytes()).unwrap();
    // Rotate (the writer renames only after its last write), then a new FILE.
    std::fs::rename(&f, d.join("a.jsonl.000001")).unwrap();
    assert_eq!(r.read(100, &mut out).unwrap(), 1, "drains the rotated file");
    append(&f, 6..9);
    assert_eq!(r.read(100, &mut out).unwrap(), 3, "moves on to the new file");
    let seqs: Vec<u64> = out.iter().map(|l| l.seq.unwrap()).collect();
    assert_eq!(seqs, (0..9).collect::<Vec<_>>());
    assert_eq!(out[5].file, "a.jsonl");
    assert_eq!(out[6].file, "a.jsonl");
    // A cursor taken before the rotation (file "a.jsonl", seq 4) is found again by seq.
    let c = Cursor { file: "a.jsonl".into(), offset: out[4].end, seq: 4, hash: out[4].hash.clone().unwrap() };
    let mut r2 = Reader::new(&f);
    r2.position(Some(&c)).unwrap();
    let mut out2 = Vec::new();
    r2.read(100, &mut out2).unwrap();
    assert_eq!(out2.iter().map(|l| l.seq.unwrap()).collect::<Vec<_>>(), (5..9).collect::<Vec<_>>());
    // A cursor whose hash does not match the log is an error, not a silent restart.
    let bad = Cursor { hash: "f".repeat(64), ..c };
    assert!(Reader::new(&f).position(Some(&bad)).unwrap_err().contains("does not match"));
}

#[test]
fn otlp_mapping() {
    let d = tmpdir("otlp");
    let f = d.join("a.jsonl");
    append(&f, 0..2);
    let mut out = Vec::new();
    Reader::new(&f).read(10, &mut out).unwrap();
    let json = otlp::encode(&out, "svc", 1_700_000_000_000_000_000);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let rl = &v["resourceLogs"][0];
    assert_eq!(rl["resource"]["attributes"][0]["key"], "service.name");
    assert_eq!(rl["resource"]["attributes"][0]["value"]["stringValue"], "svc");
    assert_eq!(rl["scopeLogs"][0]["scope"]["name"], "aegis");
    let lr = &rl["scopeLogs"][0]["logRecords"][1];
    assert_eq!(lr["timeUnixNano"], "1767603600123000000");
    assert_eq!(lr["observedTimeUnixNano"], "1700000000000000000");
    assert_eq!(lr["body"]["stringValue"], rec(1));
    let attrs: Vec<(String, serde_json::Value)> = lr["attributes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["key"].as_str().unwrap().to_owned(), a["value"].clone()))
        .collect();
    let get = |k: &str| attrs.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()).unwrap();
    assert_eq!(get("aegis.outcome")["stringValue"], "allow");
    assert_eq!(get("aegis.agent")["stringValue"], "agent-1");
    assert_eq!(get("aegis.tool")["stringValue"], "payments");
    assert_eq!(get("aegis.hash")["stringValue"], format!("{:064x}", 2));
    assert_eq!(get("aegis.seq")["intValue"], "1");
}

/// A tiny HTTP responder for status codes only: answers each request with the next
/// scripted response (then 200), records requests, and stops by itself.
type Seen = Arc<Mutex<Vec<(String, Vec<u8>)>>>;

struct Responder {
    url: String,
    requests: Seen,
}

fn responder(script: Vec<&'static str>) -> Responder {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    l.set_nonblocking(true).unwrap();
    let requests = Arc::new(Mutex::new(Vec::new()));
    let reqs = requests.clone();
    std::thread::spawn(move || {
        let mut script = script.into_iter();
        let end = Instant::now() + Duration::from_secs(60);
        let mut served = 0;
        while Instant::now() < end && served < 200 {
            let Ok((mut s, _)) = l.accept() else {
                std::thread::sleep(Duration::from_millis(5));
                continue;
            };
            s.set_nonblocking(false).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut buf = Vec::new();
            let mut chunk = [0u8; 8192];
            let (head, body) = loop {
                let n = s.read(&mut chunk).unwrap_or(0);
                if n == 0 {
                    break (String::new(), Vec::new());
                }
                buf.extend_from_slice(&chunk[..n]);
                if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    let head = String::from_utf8_lossy(&buf[..i]).to_string();
                    let len: usize = head
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse().unwrap())
                        })
                        .unwrap_or(0);
                    while buf.len() < i + 4 + len {
                        let n = s.read(&mut chunk).unwrap_or(0);
                        if n == 0 {
                            break;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                    }
                    break (head, buf[i + 4..].to_vec());
                }
            };
            reqs.lock().unwrap().push((head, body));
            let resp = script.next().unwrap_or("200 OK\r\nContent-Type: application/json\r\n\r\n{}");
            let (status_and_headers, body) = resp.split_once("\r\n\r\n").unwrap();
            let _ = write!(
                s,
                "HTTP/1.1 {status_and_headers}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            served += 1;
        }
    });
    Responder { url, requests }
}

fn cfg(f: &Path, url: &str) -> ShipperConfig {
    let mut c = ShipperConfig::new(f, url);
    c.backoff = Backoff { initial: Duration::from_millis(20), max: Duration::from_millis(100) };
    c.batch_max = 4;
    c.log = Some(Arc::new(|_m: &str| {}));
    c
}

fn gunzip(b: &[u8]) -> String {
    let mut s = String::new();
    flate2::read::GzDecoder::new(b).read_to_string(&mut s).unwrap();
    s
}

#[test]
fn malformed_batch_is_set_aside_and_shipping_goes_on() {
    let d = tmpdir("reject");
    let f = d.join("a.jsonl");
    append(&f, 0..10);
    let r = responder(vec!["400 Bad Request\r\n\r\nbad payload"]);
    let mut c = cfg(&f, &r.url);
    c.headers.push(("Authorization".into(), "Bearer t0k".into()));
    let mut s = Shipper::new(c);
    let m = s.ship_until_caught_up(Duration::from_secs(10)).unwrap();
    assert_eq!((m.shipped, m.rejected_batches, m.rejected_records, m.pending), (6, 1, 4, 0));
    let side = d.join("a.jsonl.ship-rejected.1.jsonl");
    assert_eq!(m.rejected_files, vec![side.clone()]);
    let want: String = (0..4).map(|s| rec(s) + "\n").collect();
    assert_eq!(std::fs::read_to_string(&side).unwrap(), want);
    assert!(m.last_error.unwrap().contains("HTTP 400"));
    let saved = cursor::load(&d.join("a.jsonl.ship-cursor")).unwrap().unwrap();
    assert_eq!(saved.seq, 9);
    let reqs = r.requests.lock().unwrap();
    assert_eq!(reqs.len(), 3, "one rejected batch, never retried, then two batches");
    let head = reqs[0].0.to_ascii_lowercase();
    assert!(head.starts_with("post /v1/logs "), "{head}");
    assert!(head.contains("content-encoding: gzip") && head.contains("authorization: bearer t0k"), "{head}");
    let body = gunzip(&reqs[1].1);
    assert!(body.contains(&serde_json::Value::String(rec(4)).to_string()), "{body}");
}

#[test]
fn retry_after_and_backoff_then_delivery() {
    let d = tmpdir("retry");
    let f = d.join("a.jsonl");
    append(&f, 0..3);
    let r = responder(vec![
        "429 Too Many Requests\r\nRetry-After: 1\r\n\r\n",
        "503 Service Unavailable\r\n\r\n",
        "500 Internal Server Error\r\n\r\n",
        "403 Forbidden\r\n\r\n",
    ]);
    let t = Instant::now();
    let mut s = Shipper::new(cfg(&f, &r.url));
    let m = s.ship_until_caught_up(Duration::from_secs(10)).unwrap();
    assert!(t.elapsed() >= Duration::from_secs(1), "Retry-After honoured: {:?}", t.elapsed());
    assert_eq!((m.shipped, m.retries, m.batches, m.rejected_batches), (3, 4, 1, 0));
    assert!(m.last_error.unwrap().contains("403"));
    assert_eq!(r.requests.lock().unwrap().len(), 5);
}

#[test]
fn unreachable_collector_gives_up_without_moving_the_cursor() {
    let d = tmpdir("down");
    let f = d.join("a.jsonl");
    append(&f, 0..3);
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut s = Shipper::new(cfg(&f, &format!("http://127.0.0.1:{port}")));
    let e = s.ship_until_caught_up(Duration::from_millis(700)).unwrap_err();
    assert!(!e.0.is_empty());
    let m = s.metrics();
    assert!(m.retries >= 2, "{m:?}");
    assert_eq!((m.shipped, m.pending), (0, 3));
    assert!(!d.join("a.jsonl.ship-cursor").exists());
}

#[test]
fn background_shipper_flushes_follows_and_closes() {
    let d = tmpdir("bg");
    let f = d.join("a.jsonl");
    append(&f, 0..5);
    let r = responder(vec!["503 Service Unavailable\r\nRetry-After: 0\r\n\r\n"]);
    let mut c = cfg(&f, &r.url);
    c.batch_max = 512;
    c.batch_age = Duration::from_secs(3600); // only flush() sends a partial batch
    let h = Shipper::start(c);
    h.flush(Duration::from_secs(10)).unwrap();
    assert_eq!(h.metrics().shipped, 5);
    append(&f, 5..7);
    std::fs::rename(&f, d.join("a.jsonl.000001")).unwrap();
    append(&f, 7..9);
    h.flush(Duration::from_secs(10)).unwrap();
    let m = h.metrics();
    assert_eq!((m.shipped, m.pending, m.retries), (9, 0, 1));
    append(&f, 9..10);
    let (m, closed) = h.close(Duration::from_secs(5));
    closed.unwrap();
    assert_eq!(m.shipped, 10, "close makes a final attempt");
    assert_eq!(m.cursor.unwrap().seq, 9);
    let all: String = r.requests.lock().unwrap().iter().map(|(_, b)| gunzip(b)).collect();
    for s in 0..10 {
        assert!(all.contains(&format!("\"aegis.seq\",\"value\":{{\"intValue\":\"{s}\"}}")), "seq {s}");
    }
}

/// A `flush` returns once the cursor reaches the file's last record; the metrics read
/// right after must agree with it (`pending` is updated in the same critical section
/// as `cursor`: a C test once saw `shipped` 20 with the old `pending` 20).
#[test]
fn metrics_after_flush_are_consistent() {
    let d = tmpdir("flush-metrics");
    let f = d.join("a.jsonl");
    let r = responder(vec![]);
    let mut c = cfg(&f, &r.url);
    c.batch_age = Duration::from_secs(3600);
    append(&f, 0..1);
    let h = Shipper::start(c);
    for i in 0..40u64 {
        if i > 0 {
            append(&f, i..i + 1);
        }
        h.flush(Duration::from_secs(10)).unwrap();
        let m = h.metrics();
        assert_eq!((m.shipped, m.pending, m.cursor.map(|c| c.seq)), (i + 1, 0, Some(i)), "after flush {i}");
    }
    let (_, closed) = h.close(Duration::from_secs(5));
    closed.unwrap();
}

#[test]
fn collector_from_json_flushes_and_closes_idempotently() {
    let d = tmpdir("collector");
    let f = d.join("a.jsonl");
    append(&f, 0..3);
    let r = responder(vec![]);
    let cfg = format!(
        r#"{{"endpoint":"{}","batch_age_ms":3600000,"service_name":"svc","headers":{{"X-Token":"t"}}}}"#,
        r.url
    );
    let c = aegis_ship::Collector::start(&f, &cfg).unwrap();
    c.flush(Duration::from_secs(10)).unwrap();
    let m: serde_json::Value = serde_json::from_str(&c.metrics_json()).unwrap();
    assert_eq!((m["shipped"].as_u64(), m["pending"].as_u64()), (Some(3), Some(0)));
    assert_eq!(m["cursor"]["seq"].as_u64(), Some(2));
    append(&f, 3..4);
    let (m, res) = c.close(None);
    res.unwrap();
    assert_eq!(m.shipped, 4);
    assert!(c.is_closed());
    let (m2, res2) = c.close(Some(Duration::ZERO));
    assert_eq!((m2.shipped, res2), (4, Ok(())));
    append(&f, 4..5);
    let e = c.flush(Duration::from_secs(2)).unwrap_err();
    assert!(e.0.contains("shipping has stopped"), "{e}");
    let reqs = r.requests.lock().unwrap();
    let head = reqs[0].0.to_ascii_lowercase();
    assert!(head.contains("x-token: t"), "{head}");
    assert!(gunzip(&reqs[0].1).contains(r#""stringValue":"svc""#));
    assert!(aegis_ship::Collector::start(&f, r#"{"endpoint":"ftp://x"}"#).is_err());
}

#[test]
fn cursor_file_is_written_at_most_every_interval_and_at_stop() {
    let d = tmpdir("interval");
    let f = d.join("a.jsonl");
    append(&f, 0..4);
    let r = responder(vec![]);
    let mut c = cfg(&f, &r.url);
    c.batch_max = 2;
    c.cursor_interval = Duration::from_secs(3600);
    let h = Shipper::start(c);
    h.flush(Duration::from_secs(10)).unwrap();
    assert_eq!(h.metrics().cursor.unwrap().seq, 3, "delivered");
    // Two batches delivered, but within the interval the cursor file is not rewritten.
    let on_disk = cursor::load(&d.join("a.jsonl.ship-cursor")).unwrap();
    assert!(on_disk.as_ref().is_none_or(|c| c.seq < 3), "{on_disk:?}");
    let (_, res) = h.close(Duration::from_secs(5));
    res.unwrap();
    assert_eq!(cursor::load(&d.join("a.jsonl.ship-cursor")).unwrap().unwrap().seq, 3, "written at stop");
}
