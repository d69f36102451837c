//! `aegis`: check, evaluate and test Aegis policy bundles; verify audit logs; replay
//! requests under a new bundle; issue approval grants.
//!
//! Exit codes: 0 success (whatever the decisions), 1 a check, test or verify failed
//! (or replay `--fail-on-change` saw a change), 2 usage or input error.

mod args;
mod policy_test;
mod replay;
mod ship;
mod state;

use aegis_core::audit::verify_files;
use aegis_core::{Engine, EngineOptions, EvalOptions, FileSink, Fsync, Request};
use args::Args;
use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::process::ExitCode;

const USAGE: &str = "usage:
  aegis check PATH…
  aegis eval -p POLICY [--explain] [--audit FILE] [--fsync always|batch|never] [--rotate-bytes N]
             [--approval-key-file K] [--signing-key-file K] [INPUT]
  aegis test [PATH…] [--coverage] [--junit FILE]
  aegis audit verify FILE… [--signing-key-file K]
  aegis audit ship FILE --to URL [--follow] [--header K=V]… [--service-name S] [--batch N] [--cursor PATH]
  aegis replay -p NEW --baseline OLD [--fail-on-change] REQUESTS.jsonl
  aegis grant --approval-key-file K --id APR --by WHO --ttl TTL
  aegis state kill|revive SCOPE ID [--reason R] | list | marks SESSION | reset --accept
              --state URL [--prefix P]   (fleet state; URL also from AEGIS_STATE)";

/// A failure that ends the command with an exit code.
pub struct Fail {
    /// 1 or 2.
    pub code: u8,
    /// Printed to stderr (may be empty when already printed).
    pub message: String,
}

impl Fail {
    /// A usage or input error (exit 2).
    pub fn input(message: impl Into<String>) -> Fail {
        Fail { code: 2, message: message.into() }
    }
}

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    match run(argv) {
        Ok(code) => ExitCode::from(code),
        Err(f) => {
            if !f.message.is_empty() {
                eprintln!("aegis: {}", f.message);
                if f.code == 2 && f.message.starts_with("usage") {
                    eprintln!("{USAGE}");
                }
            }
            ExitCode::from(f.code)
        }
    }
}

fn run(argv: Vec<String>) -> Result<u8, Fail> {
    let Some((cmd, rest)) = argv.split_first() else {
        return Err(Fail::input(format!("usage: no command given\n{USAGE}")));
    };
    match cmd.as_str() {
        "check" => check(rest),
        "eval" => eval(rest),
        "test" => policy_test::run(rest),
        "audit" => match rest.split_first() {
            Some((sub, rest)) if sub == "verify" => verify(rest),
            Some((sub, rest)) if sub == "ship" => ship::run(rest),
            _ => Err(Fail::input(
                "usage: aegis audit verify FILE… [--signing-key-file K]\n       aegis audit ship FILE --to URL [--follow] …",
            )),
        },
        "replay" => replay::run(rest),
        "grant" => grant(rest),
        "state" => state::run(rest),
        "help" | "--help" | "-h" => {
            println!("{USAGE}");
            Ok(0)
        }
        "--version" | "-V" => {
            println!("aegis {}", env!("CARGO_PKG_VERSION"));
            Ok(0)
        }
        other => Err(Fail::input(format!("usage: unknown command `{other}`"))),
    }
}

/// Reads a key file (raw bytes, must not be empty).
pub fn read_key(path: &str) -> Result<Vec<u8>, Fail> {
    let k = std::fs::read(path).map_err(|e| Fail::input(format!("cannot read key file `{path}`: {e}")))?;
    if k.is_empty() {
        return Err(Fail::input(format!("key file `{path}` is empty")));
    }
    Ok(k)
}

fn check(rest: &[String]) -> Result<u8, Fail> {
    let a = Args::parse(rest, &[], &[])?;
    if a.positional.is_empty() {
        return Err(Fail::input("usage: aegis check PATH…"));
    }
    let mut failed = false;
    for p in &a.positional {
        match aegis_core::policy::load_path(&PathBuf::from(p)) {
            Ok(b) => println!("ok: {p} ({} rules, {} limits, policy {})", b.rules.len(), b.limits.len(), b.hash),
            Err(errs) => {
                failed = true;
                for e in &errs.0 {
                    println!("{e}");
                }
                println!("{p}: {} error{}", errs.0.len(), if errs.0.len() == 1 { "" } else { "s" });
            }
        }
    }
    Ok(u8::from(failed))
}

/// Builds engine options from the common flags.
pub fn engine_options(a: &Args) -> Result<EngineOptions, Fail> {
    let mut o = EngineOptions::default();
    let key = |field: &str, path: &str| {
        aegis_core::Key::new(field, read_key(path)?).map_err(|e| Fail::input(format!("`{path}`: {e}")))
    };
    if let Some(k) = a.value("--signing-key-file") {
        o.signing_key = Some(key("signing_key", k)?);
    }
    if let Some(k) = a.value("--approval-key-file") {
        o.approval_key = Some(key("approval_key", k)?);
    }
    Ok(o)
}

/// Loads an engine, printing load errors (exit 2 on failure).
pub fn load_engine(policy: &str, o: EngineOptions) -> Result<Engine, Fail> {
    Engine::from_path(policy, o).map_err(|errs| {
        for e in &errs.0 {
            eprintln!("{e}");
        }
        Fail::input(format!(
            "policy `{policy}` did not load ({} error{})",
            errs.0.len(),
            if errs.0.len() == 1 { "" } else { "s" }
        ))
    })
}

/// Reads requests: `.json` is one request; anything else (or `-`) is JSONL. Calls
/// `f(line_number, text)` for each non-blank request.
pub fn for_each_request(input: &str, mut f: impl FnMut(usize, &str) -> Result<(), Fail>) -> Result<(), Fail> {
    if input != "-" && input.ends_with(".json") {
        let text = std::fs::read_to_string(input).map_err(|e| Fail::input(format!("cannot read `{input}`: {e}")))?;
        return f(1, text.trim());
    }
    let reader: Box<dyn BufRead> = if input == "-" {
        Box::new(std::io::BufReader::new(std::io::stdin()))
    } else {
        let file = std::fs::File::open(input).map_err(|e| Fail::input(format!("cannot read `{input}`: {e}")))?;
        Box::new(std::io::BufReader::new(file))
    };
    for (i, line) in reader.lines().enumerate() {
        let line = line.map_err(|e| Fail::input(format!("{input}:{}: cannot read: {e}", i + 1)))?;
        if line.trim().is_empty() {
            continue;
        }
        f(i + 1, &line)?;
    }
    Ok(())
}

fn eval(rest: &[String]) -> Result<u8, Fail> {
    let a = Args::parse(
        rest,
        &["-p", "--policy", "--audit", "--fsync", "--rotate-bytes", "--approval-key-file", "--signing-key-file"],
        &["--explain"],
    )?;
    let policy =
        a.value("-p").or(a.value("--policy")).ok_or_else(|| Fail::input("usage: aegis eval needs -p POLICY"))?;
    if a.positional.len() > 1 {
        return Err(Fail::input("usage: aegis eval takes one INPUT"));
    }
    let input = a.positional.first().map_or("-", String::as_str);
    let mut o = engine_options(&a)?;
    if let Some(path) = a.value("--audit") {
        let fsync = match a.value("--fsync") {
            None => Fsync::Always,
            Some(s) => Fsync::parse(s)
                .ok_or_else(|| Fail::input(format!("usage: --fsync is always, batch or never, not `{s}`")))?,
        };
        let rotate_bytes = match a.value("--rotate-bytes") {
            None => None,
            Some(n) => Some(
                n.parse::<u64>()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| Fail::input(format!("usage: --rotate-bytes takes a positive number, not `{n}`")))?,
            ),
        };
        let sink = FileSink::open_with(path, aegis_core::audit::FileSinkOptions { fsync, rotate_bytes })
            .map_err(|e| Fail::input(e.to_string()))?;
        if let Some(t) = sink.torn() {
            eprintln!(
                "aegis: warning: {path} ended with a torn line ({} bytes, a crash mid-write); moved to {} and the chain resumes from the last complete record",
                t.bytes,
                t.moved_to.display()
            );
        }
        o.sinks.push(Box::new(sink));
    }
    let engine = load_engine(policy, o)?;
    let opts = EvalOptions { explain: a.flag("--explain") };
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let limits = *engine.request_limits();
    for_each_request(input, |line, text| {
        let req = Request::from_json(text, &limits).map_err(|e| Fail::input(format!("{input}:{line}: {e}")))?;
        let d = engine.evaluate_with(&req, opts).map_err(|e| Fail::input(format!("{input}:{line}: {e}")))?;
        writeln!(out, "{}", d.to_json())
            .and_then(|_| out.flush())
            .map_err(|e| Fail::input(format!("cannot write output: {e}")))
    })?;
    Ok(0)
}

fn verify(rest: &[String]) -> Result<u8, Fail> {
    let a = Args::parse(rest, &["--signing-key-file"], &[])?;
    if a.positional.is_empty() {
        return Err(Fail::input("usage: aegis audit verify FILE… [--signing-key-file K]"));
    }
    let key = a.value("--signing-key-file").map(read_key).transpose()?;
    let files: Vec<PathBuf> = a.positional.iter().map(PathBuf::from).collect();
    match verify_files(&files, key.as_deref()) {
        Ok(r) => {
            println!("ok: {} records, head {}", r.records, r.head);
            Ok(0)
        }
        Err(e) => {
            println!("{}: {e}", e.at);
            Ok(1)
        }
    }
}

fn grant(rest: &[String]) -> Result<u8, Fail> {
    let a = Args::parse(rest, &["--approval-key-file", "--id", "--by", "--ttl"], &[])?;
    let need = |k: &str| a.value(k).ok_or_else(|| Fail::input(format!("usage: aegis grant needs {k}")));
    let key = read_key(need("--approval-key-file")?)?;
    let ttl_text = need("--ttl")?;
    let ttl = aegis_core::parse_ttl(ttl_text).ok_or_else(|| {
        Fail::input(format!("usage: --ttl is N seconds or N followed by s, m, h or d, not `{ttl_text}`"))
    })?;
    let token = aegis_core::issue_grant(&key, need("--id")?, need("--by")?, ttl, aegis_core::time::now_millis())
        .map_err(|e| Fail::input(e.0))?;
    println!("{token}");
    Ok(0)
}
