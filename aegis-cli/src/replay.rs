//! `aegis replay`: decide recorded requests under a baseline and a new bundle and
//! report every request whose outcome or determining rules change.

use crate::args::Args;
use crate::{engine_options, for_each_request, load_engine, Fail};
use aegis_core::Request;
use std::collections::BTreeMap;

/// Runs the command.
pub fn run(rest: &[String]) -> Result<u8, Fail> {
    let a = Args::parse(rest, &["-p", "--policy", "--baseline"], &["--fail-on-change"])?;
    let new = a.value("-p").or(a.value("--policy")).ok_or_else(|| Fail::input("usage: aegis replay needs -p NEW"))?;
    let old = a.value("--baseline").ok_or_else(|| Fail::input("usage: aegis replay needs --baseline OLD"))?;
    let [input] = a.positional.as_slice() else {
        return Err(Fail::input("usage: aegis replay -p NEW --baseline OLD [--fail-on-change] REQUESTS.jsonl"));
    };
    let new_engine = load_engine(new, engine_options(&a)?)?;
    let old_engine = load_engine(old, engine_options(&a)?)?;
    let limits = *new_engine.request_limits();
    let mut total = 0usize;
    let mut changed = 0usize;
    let mut groups: BTreeMap<(String, String), usize> = BTreeMap::new();
    for_each_request(input, |line, text| {
        let mut req = Request::from_json(text, &limits).map_err(|e| Fail::input(format!("{input}:{line}: {e}")))?;
        // A missing time is resolved once, for both bundles.
        if req.time.is_none() {
            req.time = Some(aegis_core::time::now_millis());
        }
        let o = old_engine.evaluate(&req).map_err(|e| Fail::input(format!("{input}:{line}: {e}")))?;
        let n = new_engine.evaluate(&req).map_err(|e| Fail::input(format!("{input}:{line}: {e}")))?;
        total += 1;
        if o.outcome != n.outcome || o.rules != n.rules {
            changed += 1;
            println!("line {line}: {} [{}] -> {} [{}]", o.outcome, o.rules.join(", "), n.outcome, n.rules.join(", "));
            *groups.entry((o.outcome.to_string(), n.outcome.to_string())).or_default() += 1;
        }
        Ok(())
    })?;
    for ((from, to), n) in &groups {
        println!("  {from} -> {to}: {n}");
    }
    println!("{total} requests, {changed} changed");
    Ok(u8::from(changed > 0 && a.flag("--fail-on-change")))
}
