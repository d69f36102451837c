//! The two security-boundary operators: `within` (paths) and `domain_in` (hosts).

/// Why a path cannot be tested.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathError {
    /// It does not start with `/`.
    Relative,
    /// It holds a NUL byte.
    Nul,
    /// `..` climbs above the root.
    AboveRoot,
}

/// Normalises an absolute POSIX path: `//` → `/`, `.` dropped, `..` resolved, no
/// trailing slash (the root stays `/`). `\` and `%` are ordinary characters.
pub fn normalize_path(p: &str) -> Result<String, PathError> {
    normalized(p).map(std::borrow::Cow::into_owned)
}

/// Whether an absolute path is already in normal form: no empty, `.` or `..`
/// segment (so no `//`, no trailing `/` except the root itself), no NUL.
fn is_normal(p: &str) -> bool {
    let b = p.as_bytes();
    if b.first() != Some(&b'/') || b.contains(&0) {
        return false;
    }
    if b.len() == 1 {
        return true;
    }
    b.get(1..).is_some_and(|rest| rest.split(|&c| c == b'/').all(|seg| !matches!(seg, b"" | b"." | b"..")))
}

/// [`normalize_path`] without allocating when the path is already normal (the
/// common case on the evaluation path).
pub fn normalized(p: &str) -> Result<std::borrow::Cow<'_, str>, PathError> {
    if is_normal(p) {
        return Ok(std::borrow::Cow::Borrowed(p));
    }
    if p.as_bytes().contains(&0) {
        return Err(PathError::Nul);
    }
    if !p.starts_with('/') {
        return Err(PathError::Relative);
    }
    let mut parts: Vec<&str> = Vec::new();
    for seg in p.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    return Err(PathError::AboveRoot);
                }
            }
            s => parts.push(s),
        }
    }
    let mut out = String::with_capacity(p.len());
    if parts.is_empty() {
        out.push('/');
    }
    for s in parts {
        out.push('/');
        out.push_str(s);
    }
    Ok(std::borrow::Cow::Owned(out))
}

/// Whether a normalised path equals a normalised prefix or lies below it on a
/// component boundary.
pub fn path_within(path: &str, prefix: &str) -> bool {
    if prefix == "/" {
        return true;
    }
    match path.strip_prefix(prefix) {
        Some("") => true,
        Some(rest) => rest.starts_with('/'),
        None => false,
    }
}

/// Characters that never appear in one unquoted e-mail local part but separate
/// addresses, start URLs or route mail elsewhere in the tools that receive them
/// (§9a: `%` and `!` are source routes, `eve%evil.net@example.com`).
const LOCAL_FORBIDDEN: [char; 16] = [',', ';', '<', '>', '(', ')', '[', ']', '\\', '/', '?', '#', ':', '"', '%', '!'];

/// A host as `domain_in` compares it: a name (lower-case, no trailing dot), or an IP
/// address in canonical form — IPv4 dotted-decimal, IPv6 in brackets in its RFC 5952
/// form, `[::ffff:a.b.c.d]` as `a.b.c.d` (§9a). An IP matches only an equal IP, a
/// name only a name or a parent domain of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Host {
    /// A DNS name.
    Name(String),
    /// An IP address, canonical.
    Ip(String),
}

impl Host {
    /// Whether this host is in `entry`: an equal IP; or an equal name, or a name
    /// ending with `.` + the entry (`evil-example.com` is not in `example.com`).
    pub fn is_in(&self, entry: &Host) -> bool {
        match (self, entry) {
            (Host::Ip(a), Host::Ip(b)) => a == b,
            (Host::Name(h), Host::Name(d)) => match h.strip_suffix(d.as_str()) {
                Some("") => true,
                Some(rest) => rest.ends_with('.'),
                None => false,
            },
            _ => false,
        }
    }

    /// The canonical text (`example.com`, `127.0.0.1`, `[::1]`).
    pub fn as_str(&self) -> &str {
        match self {
            Host::Name(s) | Host::Ip(s) => s,
        }
    }
}

/// Extracts the host of an e-mail address, a URL (`scheme://[userinfo@]host[:port]…`)
/// or a bare host (§3, §9a). An error (why there is no single host) where parsers
/// disagree on what the host is:
/// * a URL whose authority (between `//` and the first `/`, `?` or `#`) holds `\`,
///   more than one `@`, `%`, whitespace or a control character (curl takes the host
///   after the last `@`, WHATWG stops at `\`);
/// * an e-mail address with more than one `@`, or `%`, `!`, `"` (or another character
///   that separates addresses) in its local part.
pub fn host_of(value: &str) -> Result<Host, &'static str> {
    let host = if let Some((scheme, rest)) = value.split_once("://") {
        let scheme_ok = scheme.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
            && scheme.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
        if !scheme_ok {
            return Err("not a URL scheme before `://`");
        }
        // The authority runs to the first `/`, `?` or `#`, or to the end.
        let authority = match rest.find(['/', '?', '#']) {
            Some(end) => rest.split_at(end).0,
            None => rest,
        };
        if authority.chars().any(|c| c == '\\' || c == '%' || c.is_whitespace() || c.is_control()) {
            return Err("the URL's authority holds `\\`, `%`, white space or a control character");
        }
        let hostport = match authority.split_once('@') {
            Some((_, after)) if after.contains('@') => return Err("the URL's authority holds more than one `@`"),
            Some((_, after)) => after,
            None => authority,
        };
        strip_port(hostport).ok_or("the URL's port is not a number")?
    } else if let Some((local, domain)) = value.split_once('@') {
        // An e-mail address. A local part that could hide another address, a route or
        // a URL (a list `a@x, b@y`, `//evil/@y`, `eve%evil.net@y`, spaces, quotes…)
        // leaves no single host: an error, so an allow rule cannot be passed by
        // smuggling a second recipient.
        if domain.contains('@') {
            return Err("the address holds more than one `@`");
        }
        if local.is_empty()
            || local.chars().any(|c| c.is_whitespace() || c.is_control() || LOCAL_FORBIDDEN.contains(&c))
        {
            return Err("the address's local part is empty or holds a character that routes or separates addresses");
        }
        domain
    } else {
        value
    };
    canonical_host(host)
}

/// A host name or IP literal, canonical (see [`Host`]).
fn canonical_host(host: &str) -> Result<Host, &'static str> {
    let lower = host.to_ascii_lowercase();
    if let Some(inner) = lower.strip_prefix('[') {
        let inner = inner.strip_suffix(']').ok_or("an IPv6 literal without its closing `]`")?;
        let ip: std::net::Ipv6Addr = inner.parse().map_err(|_| "not a valid IPv6 address")?;
        return Ok(match ip.to_ipv4_mapped() {
            Some(v4) => Host::Ip(v4.to_string()),
            None => Host::Ip(format!("[{ip}]")),
        });
    }
    let name = lower.strip_suffix('.').unwrap_or(&lower);
    if ends_in_a_number(name) {
        return ipv4(name).map(|ip| Host::Ip(ip.to_string())).ok_or("not a valid IPv4 address");
    }
    if valid_name(name) {
        Ok(Host::Name(name.to_owned()))
    } else {
        Err("not a host name")
    }
}

/// WHATWG URL's "ends in a number": the last label is all digits or a `0x` number, so
/// the host is read as an IPv4 address (`2130706433`, `0x7f000001`, `127.1`).
fn ends_in_a_number(host: &str) -> bool {
    let last = host.rsplit_once('.').map_or(host, |(_, last)| last);
    (!last.is_empty() && last.bytes().all(|b| b.is_ascii_digit())) || ipv4_number(last).is_some()
}

/// WHATWG URL's IPv4 number parser: `0x` hex, a leading `0` octal, else decimal.
fn ipv4_number(part: &str) -> Option<u64> {
    if part.is_empty() {
        return None;
    }
    let (digits, radix) = if let Some(h) = part.strip_prefix("0x") {
        (h, 16)
    } else if part.len() > 1 && part.starts_with('0') {
        (part.get(1..)?, 8)
    } else {
        (part, 10)
    };
    if digits.is_empty() {
        return Some(0);
    }
    if !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    // Leading zeros do not change the value; more digits than that cannot fit 32 bits.
    let digits = digits.trim_start_matches('0');
    if digits.len() > 12 {
        return Some(u64::MAX);
    }
    if digits.is_empty() {
        return Some(0);
    }
    u64::from_str_radix(digits, radix).ok()
}

/// WHATWG URL's IPv4 parser: one to four parts; all but the last at most 255, the last
/// filling the remaining bytes.
fn ipv4(host: &str) -> Option<std::net::Ipv4Addr> {
    let parts: Vec<&str> = host.split('.').collect();
    if parts.is_empty() || parts.len() > 4 {
        return None;
    }
    let nums: Vec<u64> = parts.iter().map(|p| ipv4_number(p)).collect::<Option<_>>()?;
    let (last, init) = nums.split_last()?;
    if init.iter().any(|&n| n > 255) || *last >= 256u64.pow(5 - nums.len() as u32) {
        return None;
    }
    let mut ip = *last;
    for (i, n) in init.iter().enumerate() {
        ip += n << (8 * (3 - i));
    }
    u32::try_from(ip).ok().map(std::net::Ipv4Addr::from)
}

fn strip_port(hostport: &str) -> Option<&str> {
    if let Some(rest) = hostport.strip_prefix('[') {
        // An IPv6 literal: keep the brackets as the host.
        let close = rest.find(']')?;
        let after = rest.get(close + 1..)?;
        if !(after.is_empty()
            || (after.starts_with(':') && after.len() > 1 && after.bytes().skip(1).all(|b| b.is_ascii_digit())))
        {
            return None;
        }
        return hostport.get(..close + 2);
    }
    match hostport.rsplit_once(':') {
        Some((h, port)) => {
            if port.is_empty() || port.bytes().all(|b| b.is_ascii_digit()) {
                Some(h)
            } else {
                None
            }
        }
        None => Some(hostport),
    }
}

/// A host name is ASCII letters, digits, `-` and `_` in non-empty dot-separated labels
/// of at most 63 bytes, 253 in all. Anything else (spaces, `/`, `@`, non-ASCII) is not
/// a host: IDNs must be given in their `xn--` form.
fn valid_name(h: &str) -> bool {
    !h.is_empty()
        && h.len() <= 253
        && h.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// Normalises a `domain_in` entry into the form hosts are compared in: a name
/// lower-cased without a trailing dot, or a canonical IP address (`0x7f.1` is
/// `127.0.0.1`, `[::FFFF:7f00:1]` is `127.0.0.1`).
pub fn normalize_domain(entry: &str) -> Result<Host, &'static str> {
    canonical_host(entry)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_no_allocation_path_agrees_with_full_normalisation() {
        let segs = ["", ".", "..", "a", "b.", ".c", "...", "a b", "é"];
        let mut paths = vec!["/".to_string(), String::new(), "a".into(), "/\0".into()];
        for x in segs {
            for y in segs {
                for z in ["", "/"] {
                    paths.push(format!("/{x}/{y}{z}"));
                    paths.push(format!("/{x}{z}"));
                    paths.push(format!("{x}/{y}{z}"));
                }
            }
        }
        for p in &paths {
            if !p.starts_with('/') {
                assert_eq!(normalized(p), Err(PathError::Relative), "{p:?}");
                continue;
            }
            let full = {
                // The general algorithm, forced (bypassing the fast path).
                let mut s = p.clone();
                s.push('/');
                s.push('.');
                normalized(&s).map(|c| c.into_owned())
            };
            let quick = normalized(p).map(|c| c.into_owned());
            assert_eq!(quick, full, "{p:?}");
        }
    }

    fn within(p: &str, prefix: &str) -> Result<bool, PathError> {
        let prefix = normalize_path(prefix)?;
        Ok(path_within(&normalize_path(p)?, &prefix))
    }

    #[test]
    fn within_normalises() {
        assert_eq!(within("/hr-docs/a.txt", "/hr-docs"), Ok(true));
        assert_eq!(within("/hr-docs", "/hr-docs/"), Ok(true));
        assert_eq!(within("/hr-docs/../secrets", "/hr-docs"), Ok(false));
        assert_eq!(within("/hr-docsX/a", "/hr-docs"), Ok(false));
        assert_eq!(within("//hr-docs//./a", "/hr-docs"), Ok(true));
        assert_eq!(within("/hr-docs/a/../../hr-docs/b", "/hr-docs"), Ok(true));
        assert_eq!(within("/anything", "/"), Ok(true));
        assert_eq!(within("hr-docs/a", "/hr-docs"), Err(PathError::Relative));
        assert_eq!(within("/../etc", "/hr-docs"), Err(PathError::AboveRoot));
        assert_eq!(within("/hr-docs/a\0", "/hr-docs"), Err(PathError::Nul));
        assert_eq!(within("/hr-docs/...", "/hr-docs"), Ok(true));
    }

    fn host(v: &str) -> Option<String> {
        host_of(v).ok().map(|h| h.as_str().to_owned())
    }

    #[test]
    fn hosts() {
        assert_eq!(host("bob@Example.COM").as_deref(), Some("example.com"));
        assert_eq!(host("https://user:pw@api.example.com:8443/x?y").as_deref(), Some("api.example.com"));
        assert_eq!(host("https://example.com@evil.net/").as_deref(), Some("evil.net"));
        assert_eq!(host("example.com.").as_deref(), Some("example.com"));
        assert_eq!(host("http://[::1]:80/").as_deref(), Some("[::1]"));
        assert_eq!(host("not a host"), None);
        assert_eq!(host(""), None);
        assert_eq!(host("bob@"), None);
        assert_eq!(host("http:///path"), None);
        assert_eq!(host("ex\u{0430}mple.com"), None);
        // Smuggled second recipients, routes and URL look-alikes have no single host.
        for v in [
            "eve@evil.net, bob@example.com",
            "eve@evil.net;bob@example.com",
            "//evil.net/@example.com",
            "evil.net/x@example.com",
            "Eve <eve@evil.net>@example.com",
            "a b@example.com",
            "@example.com",
            "\"eve@evil.net\"@example.com",
            "a@b@evil.net",
            "eve%evil.net@example.com",
            "evil.net!eve@example.com",
            "x@evil.net@example.com",
        ] {
            assert_eq!(host(v), None, "{v}");
        }
        assert_eq!(host("first.last+tag@Example.com").as_deref(), Some("example.com"));
    }

    /// §9a: authorities that parsers read differently are errors.
    #[test]
    fn ambiguous_authorities_are_errors() {
        for v in [
            "https://partner.example.com\\@evil.net/hook",
            "http://evil.net\\@example.com/",
            "https://a@b@example.com/",
            "https://example.com%2f@evil.net/",
            "https://exa mple.com/",
            "https://example.com\t/",
            "https://example.com\u{7}/",
            "http://[::1%25eth0]/",
            "https://example.com\\/",
        ] {
            assert!(host_of(v).is_err(), "{v:?}");
        }
        // `\`, `%` and `@` after the authority are the path's business.
        assert_eq!(host("https://example.com/a\\b%20@c").as_deref(), Some("example.com"));
        assert_eq!(host("https://example.com?q=@evil.net").as_deref(), Some("example.com"));
    }

    /// §9a: every IPv4 spelling WHATWG accepts is compared in dotted-decimal form, IPv6
    /// in RFC 5952 form, `::ffff:a.b.c.d` as `a.b.c.d`.
    #[test]
    fn ip_spellings_are_canonical() {
        for v in [
            "http://2130706433/",
            "http://0x7f000001/",
            "http://0X7F000001/",
            "http://0177.0.0.1/",
            "http://127.1/",
            "http://127.0.1/",
            "http://0x7f.1/",
            "http://127.0.0.1./",
            "http://017700000001/",
            "http://0x7f.0.0.0x1/",
            "http://0000000177.0.0.1/",
            "http://[::ffff:127.0.0.1]/",
            "http://[::FFFF:7f00:1]/",
            "http://[0:0:0:0:0:ffff:7f00:0001]:8080/",
            "127.1",
            "bob@127.1",
        ] {
            assert_eq!(host_of(v), Ok(Host::Ip("127.0.0.1".into())), "{v}");
        }
        for v in [
            "http://169.254.169.254/",
            "http://0xa9fea9fe/",
            "http://2852039166/",
            "http://0251.0376.0251.0376/",
            "http://169.254.43518/",
            "http://[::ffff:a9fe:a9fe]/",
        ] {
            assert_eq!(host_of(v), Ok(Host::Ip("169.254.169.254".into())), "{v}");
        }
        for v in ["http://[::1]/", "http://[0:0:0:0:0:0:0:1]/", "http://[0000::0001]:80/"] {
            assert_eq!(host_of(v), Ok(Host::Ip("[::1]".into())), "{v}");
        }
        assert_eq!(host_of("http://[2001:DB8:0:0:0:0:0:1]/"), Ok(Host::Ip("[2001:db8::1]".into())));
        // Numbers WHATWG refuses have no host; a name that merely holds digits is a name.
        for v in [
            "http://256.0.0.1/",
            "http://1.2.3.4.5/",
            "http://4294967296/",
            "http://0x100000000/",
            "http://1.2.65536/",
            "http://example.123/",
            "http://09.1/",
            "http://[1::2::3]/",
            "http://[127.0.0.1]/",
        ] {
            assert!(host_of(v).is_err(), "{v}");
        }
        assert_eq!(host_of("http://1x.example/"), Ok(Host::Name("1x.example".into())));
        assert_eq!(host_of("http://0x7f.example/"), Ok(Host::Name("0x7f.example".into())));
        assert_eq!(normalize_domain("0x7F.1"), Ok(Host::Ip("127.0.0.1".into())));
        assert_eq!(normalize_domain("[::ffff:169.254.169.254]"), Ok(Host::Ip("169.254.169.254".into())));
        assert_eq!(normalize_domain("LocalHost."), Ok(Host::Name("localhost".into())));
    }

    #[test]
    fn domain_boundaries() {
        let n = |s: &str| Host::Name(s.into());
        assert!(n("example.com").is_in(&n("example.com")));
        assert!(n("mail.example.com").is_in(&n("example.com")));
        assert!(!n("evil-example.com").is_in(&n("example.com")));
        assert!(!n("example.com.evil.net").is_in(&n("example.com")));
        // An IP matches only an equal IP: no suffix matching on addresses.
        let ip = |s: &str| Host::Ip(s.into());
        assert!(ip("10.0.0.1").is_in(&ip("10.0.0.1")));
        assert!(!ip("110.0.0.1").is_in(&ip("0.0.1")));
        assert!(!ip("1.0.0.1").is_in(&n("0.1")));
    }
}
