//! Request time: RFC 3339 in, milliseconds since the Unix epoch inside, UTC with
//! exactly three fraction digits out (`2026-11-22T03:21:06.123Z`).

use std::fmt::Write as _;

/// Milliseconds since 1970-01-01T00:00:00Z.
pub type Millis = i64;

/// Parses an RFC 3339 date-time (`T`/`t` separator, `Z`/`z` or `±HH:MM` offset,
/// optional fraction). Fraction digits beyond milliseconds are truncated. Returns a
/// description of what is wrong on failure.
pub fn parse_rfc3339(s: &str) -> Result<Millis, String> {
    let b = s.as_bytes();
    let bad = || format!("\"{s}\" is not an RFC 3339 date-time (like 2026-01-05T10:00:00Z)");
    if b.len() < 20 {
        return Err(bad());
    }
    let num = |from: usize, len: usize| -> Option<i64> {
        let part = b.get(from..from + len)?;
        if !part.iter().all(u8::is_ascii_digit) {
            return None;
        }
        Some(part.iter().fold(0i64, |acc, d| acc * 10 + i64::from(d - b'0')))
    };
    let sep = |i: usize, c: &[u8]| b.get(i).is_some_and(|x| c.contains(x));
    let (Some(year), Some(month), Some(day)) = (num(0, 4), num(5, 2), num(8, 2)) else {
        return Err(bad());
    };
    if !sep(4, b"-") || !sep(7, b"-") || !sep(10, b"Tt") || !sep(13, b":") || !sep(16, b":") {
        return Err(bad());
    }
    let (Some(hour), Some(min), Some(sec)) = (num(11, 2), num(14, 2), num(17, 2)) else {
        return Err(bad());
    };
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return Err(format!("\"{s}\" is not a valid calendar date"));
    }
    if hour > 23 || min > 59 || sec > 59 {
        return Err(format!("\"{s}\" has an out-of-range time of day (leap seconds are not supported)"));
    }
    let mut i = 19;
    let mut millis = 0i64;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while let Some(&d) = b.get(i).filter(|d| d.is_ascii_digit()) {
            if i - start < 3 {
                millis = millis * 10 + i64::from(d - b'0');
            }
            i += 1;
        }
        let n = i - start;
        if n == 0 {
            return Err(bad());
        }
        for _ in n..3 {
            millis *= 10;
        }
    }
    let offset_min = match b.get(i) {
        Some(b'Z' | b'z') if i + 1 == b.len() => 0,
        Some(c @ (b'+' | b'-')) if i + 6 == b.len() => {
            let (Some(oh), Some(om)) = (num(i + 1, 2), num(i + 4, 2)) else {
                return Err(bad());
            };
            if !sep(i + 3, b":") || oh > 23 || om > 59 {
                return Err(bad());
            }
            let m = oh * 60 + om;
            if *c == b'-' {
                -m
            } else {
                m
            }
        }
        _ => return Err(bad()),
    };
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + hour * 3600 + min * 60 + sec - offset_min * 60;
    Ok(secs * 1000 + millis)
}

/// Formats as UTC with milliseconds: `2026-11-22T03:21:06.123Z`.
pub fn format_utc(ms: Millis) -> String {
    let mut s = String::with_capacity(24);
    write_utc(&mut s, ms);
    s
}

/// Appends the UTC form of `ms` to `out`.
pub fn write_utc(out: &mut String, ms: Millis) {
    let secs = ms.div_euclid(1000);
    let milli = ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    if !(0..=9999).contains(&y) {
        let _ = write!(
            out,
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
            y,
            m,
            d,
            rem / 3600,
            (rem % 3600) / 60,
            rem % 60,
            milli
        );
        return;
    }
    let mut b = *b"0000-00-00T00:00:00.000Z";
    // Each field's digits at fixed, in-range offsets of the template.
    let mut put = |at: usize, width: usize, mut v: i64| {
        for slot in b.iter_mut().skip(at).take(width).rev() {
            *slot = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    put(0, 4, y);
    put(5, 2, m);
    put(8, 2, d);
    put(11, 2, rem / 3600);
    put(14, 2, (rem % 3600) / 60);
    put(17, 2, rem % 60);
    put(20, 3, milli);
    crate::audit::push_ascii(out, &b);
}

/// The current wall-clock time in milliseconds.
pub fn now_millis() -> Millis {
    match std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_millis()).unwrap_or(i64::MAX),
    }
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap(y) => 29,
        _ => 28,
    }
}

/// Days since 1970-01-01 for a proleptic Gregorian date (H. Hinnant's algorithm).
pub fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The proleptic Gregorian date of a day number (days since 1970-01-01).
pub fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_truncates() {
        let t = parse_rfc3339("2026-11-22T03:21:06.123456Z").unwrap_or(0);
        assert_eq!(format_utc(t), "2026-11-22T03:21:06.123Z");
        let t = parse_rfc3339("2026-11-22T05:21:06.9+02:00").unwrap_or(0);
        assert_eq!(format_utc(t), "2026-11-22T03:21:06.900Z");
        let t = parse_rfc3339("1969-12-31T23:59:59.999-00:30").unwrap_or(0);
        assert_eq!(format_utc(t), "1970-01-01T00:29:59.999Z");
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Ok(0));
        assert_eq!(format_utc(-1), "1969-12-31T23:59:59.999Z");
    }

    #[test]
    fn rejects_malformed() {
        for s in [
            "2026-02-30T00:00:00Z",
            "2026-01-05 10:00:00Z",
            "2026-01-05T10:00:00",
            "2026-01-05T24:00:00Z",
            "2026-01-05T10:00:00.Z",
            "2026-01-05T10:00:00+0100",
            "2026-1-05T10:00:00Z",
            "x",
        ] {
            assert!(parse_rfc3339(s).is_err(), "{s}");
        }
    }

    #[test]
    fn civil_round_trip() {
        for d in [-800_000i64, -1, 0, 1, 20_000, 2_932_896] {
            let (y, m, dd) = civil_from_days(d);
            assert_eq!(days_from_civil(y, m, dd), d);
        }
    }
}
