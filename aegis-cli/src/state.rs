//! `aegis state`: an operator's view of a fleet's store (SPEC §11).
//!
//! `--state URL` names the store (or the environment variable `AEGIS_STATE`, which
//! keeps a password out of the process list); `--prefix P` the fleet (default
//! `aegis:`). Exit 2 when the store cannot be reached or refuses the credentials.

use crate::args::Args;
use crate::Fail;
use aegis_core::{EngineConfig, KillScope, Spelling, StateConfig, Value};
use aegis_fleet::admin::{Admin, AdminError};

const USAGE: &str = "usage: aegis state kill SCOPE ID [--reason R] --state URL [--prefix P]
       aegis state revive SCOPE ID --state URL [--prefix P]
       aegis state list --state URL [--prefix P]
       aegis state marks SESSION --state URL [--prefix P]
       aegis state reset --accept --state URL [--prefix P]";

/// Runs `aegis state …`.
pub fn run(rest: &[String]) -> Result<u8, Fail> {
    let Some((sub, rest)) = rest.split_first() else { return Err(Fail::input(USAGE)) };
    let a = Args::parse(rest, &["--state", "--prefix", "--reason"], &["--accept"])?;
    let admin = || connect(&a);
    match (sub.as_str(), a.positional.as_slice()) {
        ("kill", [scope, id]) => {
            let scope = parse_scope(scope, id)?;
            admin()?.kill(scope, id, a.value("--reason").unwrap_or("")).map_err(fail)?;
            println!("killed {} {id} for the fleet", scope.as_str());
            Ok(0)
        }
        ("revive", [scope, id]) => {
            let scope = parse_scope(scope, id)?;
            let had = admin()?.revive(scope, id).map_err(fail)?;
            println!("{} {id}: {}", scope.as_str(), if had { "revived" } else { "was not killed" });
            Ok(0)
        }
        ("list", []) => {
            let admin = admin()?;
            let kills = admin.kills().map_err(fail)?;
            println!("kills ({}):", kills.len());
            for k in &kills {
                let reason = if k.reason.is_empty() { String::new() } else { format!(" — {}", k.reason) };
                println!("  {} {}{reason}", k.scope.as_str(), k.id);
            }
            let counters = admin.counters().map_err(fail)?;
            println!("limits ({} live counters):", counters.len());
            for c in &counters {
                println!("  {}  calls {}  sum {}", c.key, c.calls, Value::Number(c.sum).to_canonical_json());
            }
            Ok(0)
        }
        ("marks", [session]) => {
            aegis_core::request::check_name("session", session).map_err(|e| Fail::input(e.message))?;
            for (label, exp) in admin()?.marks(session).map_err(fail)? {
                println!("{label}  until {}", aegis_core::time::format_utc(exp));
            }
            Ok(0)
        }
        ("reset", []) if a.flag("--accept") => {
            let epoch = admin()?.reset_accept().map_err(fail)?;
            println!("accepted the store as it is: new epoch {epoch}; members stop denying with state:reset");
            Ok(0)
        }
        ("reset", []) => Err(Fail::input(
            "usage: aegis state reset needs --accept (members then count limits from what the store holds now)",
        )),
        _ => Err(Fail::input(USAGE)),
    }
}

/// SCOPE and ID, checked as the engines' `kill` checks them (the same messages).
fn parse_scope(scope: &str, id: &str) -> Result<KillScope, Fail> {
    let s = KillScope::from_arg(scope).map_err(|e| Fail::input(e.0))?;
    s.check_id(id).map_err(|e| Fail::input(e.0))?;
    Ok(s)
}

/// The store's settings, validated as the engines' configuration validates them.
fn connect(a: &Args) -> Result<Admin, Fail> {
    let url = match a.value("--state") {
        Some(u) => u.to_owned(),
        None => std::env::var("AEGIS_STATE")
            .map_err(|_| Fail::input(format!("usage: give --state URL (or AEGIS_STATE)\n{USAGE}")))?,
    };
    let mut doc = aegis_core::Map::new();
    doc.insert("state".into(), Value::from(url.as_str()));
    if let Some(p) = a.value("--prefix") {
        doc.insert("state_prefix".into(), Value::from(p));
    }
    let config = EngineConfig::from_value(&Value::Object(doc), Spelling::Snake)
        .map_err(|e| Fail::input(e.message.replace("`state`", "--state").replace("`state_prefix`", "--prefix")))?;
    let cfg: StateConfig =
        config.state.ok_or_else(|| Fail::input("--state is a Redis URL here (redis://… or rediss://…)"))?;
    Admin::connect(&cfg).map_err(fail)
}

fn fail(e: AdminError) -> Fail {
    Fail::input(e.to_string())
}
