//! `aegis audit ship FILE --to URL …`: ship audit records to an OpenTelemetry
//! collector (OTLP/HTTP JSON logs), from a persisted cursor, at least once.

use crate::Fail;
use aegis_ship::{Shipper, ShipperConfig};
use std::time::Duration;

/// Usage of `aegis audit ship`.
pub const USAGE: &str = "usage: aegis audit ship FILE --to URL [--follow] [--header K=V]… [--service-name S]
                        [--batch N] [--batch-age-ms MS] [--cursor PATH] [--no-gzip]
                        [--timeout SECS] [--max-backoff-ms MS]";

fn number(name: &str, v: &str) -> Result<u64, Fail> {
    v.parse::<u64>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| Fail::input(format!("usage: {name} takes a positive number, not `{v}`")))
}

/// Runs the command.
pub fn run(rest: &[String]) -> Result<u8, Fail> {
    let mut file = None;
    let mut to = None;
    let mut follow = false;
    let mut gzip = true;
    let mut headers = Vec::new();
    let mut service = None;
    let mut batch = None;
    let mut batch_age = None;
    let mut cursor = None;
    let mut timeout = 60u64;
    let mut max_backoff = None;
    let mut it = rest.iter();
    while let Some(arg) = it.next() {
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n, Some(v.to_owned())),
            _ => (arg.as_str(), None),
        };
        let mut value = || -> Result<String, Fail> {
            match &inline {
                Some(v) => Ok(v.clone()),
                None => it.next().cloned().ok_or_else(|| Fail::input(format!("usage: {name} needs a value\n{USAGE}"))),
            }
        };
        match name {
            "--to" => to = Some(value()?),
            "--header" => {
                let h = value()?;
                let (k, v) = h
                    .split_once('=')
                    .filter(|(k, _)| !k.trim().is_empty())
                    .ok_or_else(|| Fail::input(format!("usage: --header takes K=V, not `{h}`")))?;
                headers.push((k.trim().to_owned(), v.to_owned()));
            }
            "--service-name" => service = Some(value()?),
            "--batch" => batch = Some(number(name, &value()?)?),
            "--batch-age-ms" => batch_age = Some(number(name, &value()?)?),
            "--cursor" => cursor = Some(value()?),
            "--timeout" => timeout = number(name, &value()?)?,
            "--max-backoff-ms" => max_backoff = Some(number(name, &value()?)?),
            "--follow" if inline.is_none() => follow = true,
            "--no-gzip" if inline.is_none() => gzip = false,
            _ if arg.starts_with('-') && arg != "-" => {
                return Err(Fail::input(format!("usage: unknown option `{arg}`\n{USAGE}")))
            }
            _ if file.is_none() => file = Some(arg.clone()),
            _ => return Err(Fail::input(format!("usage: aegis audit ship takes one FILE\n{USAGE}"))),
        }
    }
    let (Some(file), Some(to)) = (file, to) else {
        return Err(Fail::input(format!("usage: aegis audit ship needs FILE and --to URL\n{USAGE}")));
    };
    if !(to.starts_with("http://") || to.starts_with("https://")) {
        return Err(Fail::input(format!("usage: --to takes an http:// or https:// URL, not `{to}`")));
    }
    let mut cfg = ShipperConfig::new(&file, to);
    cfg.headers = headers;
    cfg.gzip = gzip;
    if let Some(s) = service {
        cfg.service_name = s;
    }
    if let Some(n) = batch {
        cfg.batch_max = usize::try_from(n).unwrap_or(usize::MAX);
    }
    if let Some(ms) = batch_age {
        cfg.batch_age = Duration::from_millis(ms);
    }
    if let Some(c) = cursor {
        cfg.cursor_path = Some(c.into());
    }
    if let Some(ms) = max_backoff {
        cfg.backoff.max = Duration::from_millis(ms);
        cfg.backoff.initial = cfg.backoff.initial.min(cfg.backoff.max);
    }
    cfg.log = Some(std::sync::Arc::new(|m: &str| eprintln!("aegis: ship: {m}")));
    let url = cfg.logs_url();
    let timeout = Duration::from_secs(timeout);
    if !follow {
        let mut s = Shipper::new(cfg);
        return match s.ship_until_caught_up(timeout) {
            Ok(m) => {
                println!(
                    "shipped {} records in {} requests to {url}{}",
                    m.shipped,
                    m.batches,
                    m.cursor.map(|c| format!(" (through seq {})", c.seq)).unwrap_or_default()
                );
                if m.rejected_batches > 0 {
                    eprintln!(
                        "aegis: ship: {} batches ({} records) were rejected as malformed and set aside: {}",
                        m.rejected_batches,
                        m.rejected_records,
                        m.rejected_files.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
                    );
                    return Ok(1);
                }
                Ok(0)
            }
            Err(e) => {
                let m = s.metrics();
                eprintln!(
                    "aegis: ship: could not deliver to {url}: {e} ({} shipped, {} pending; run again to resume)",
                    m.shipped, m.pending
                );
                Ok(1)
            }
        };
    }
    let flag = aegis_ship::stop_on_signals().map_err(|e| Fail::input(format!("cannot handle signals: {e}")))?;
    let handle = Shipper::start(cfg);
    while !aegis_ship::stopped(&flag) {
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!("aegis: ship: stopping; a last attempt to deliver what is pending (up to {} s)", timeout.as_secs());
    let (m, r) = handle.close(timeout);
    println!(
        "shipped {} records in {} requests to {url}; {} pending, {} retries, {} batches rejected",
        m.shipped, m.batches, m.pending, m.retries, m.rejected_batches
    );
    if let Err(e) = r {
        eprintln!("aegis: ship: could not deliver everything before stopping: {e} (run again to resume)");
        return Ok(1);
    }
    Ok(u8::from(m.rejected_batches > 0))
}
