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
/// addresses or start URLs in the tools that receive them.
const LOCAL_FORBIDDEN: [char; 14] = [',', ';', '<', '>', '(', ')', '[', ']', '\\', '/', '?', '#', ':', '"'];

/// Extracts the host of an e-mail address (after the last `@`), a URL
/// (`scheme://[userinfo@]host[:port]…`) or a bare host, lower-cased and without a
/// trailing dot. `None` when there is no parsable host.
pub fn host_of(value: &str) -> Option<String> {
    let host = if let Some((scheme, rest)) = value.split_once("://") {
        let scheme_ok = scheme.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
            && scheme.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
        if !scheme_ok {
            return None;
        }
        // The authority ends at the first `/`, `?`, `#` or `\` (browsers read `\` as
        // `/` in http URLs, so it must not hide a host behind a userinfo `@`).
        let end = rest.find(['/', '?', '#', '\\']).unwrap_or(rest.len());
        let authority = rest.get(..end)?;
        let hostport = match authority.rfind('@') {
            Some(i) => authority.get(i + 1..)?,
            None => authority,
        };
        strip_port(hostport)?
    } else if let Some(i) = value.rfind('@') {
        // An e-mail address: the host after the last `@`. A local part that could
        // hide another address or a URL (a list `a@x, b@y`, `//evil/@y`, `evil/x@y`,
        // spaces, brackets, quotes…) leaves no single parsable host: an error, so an
        // allow rule cannot be passed by smuggling a second recipient.
        let local = value.get(..i)?;
        if local.is_empty()
            || local.chars().any(|c| c.is_whitespace() || c.is_control() || LOCAL_FORBIDDEN.contains(&c))
        {
            return None;
        }
        value.get(i + 1..)?
    } else {
        value
    };
    let host = host.to_ascii_lowercase();
    let host = host.strip_suffix('.').unwrap_or(&host);
    if valid_host(host) {
        Some(host.to_owned())
    } else {
        None
    }
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

/// A host is ASCII letters, digits, `-`, `_` and dots between non-empty labels, or
/// a bracketed IPv6 literal. Anything else (spaces, `/`, `@`, non-ASCII) is not a
/// parsable host: IDNs must be given in their `xn--` form.
fn valid_host(h: &str) -> bool {
    if h.is_empty() || h.len() > 253 {
        return false;
    }
    if h.starts_with('[') {
        return h.ends_with(']')
            && h.len() > 2
            && h.bytes().all(|b| b.is_ascii_hexdigit() || matches!(b, b'[' | b']' | b':' | b'.'));
    }
    h.split('.').all(|label| {
        !label.is_empty()
            && label.len() <= 63
            && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    })
}

/// Normalises a `domain_in` entry: lower-cased, no trailing dot, a valid host.
pub fn normalize_domain(entry: &str) -> Option<String> {
    let d = entry.to_ascii_lowercase();
    let d = d.strip_suffix('.').unwrap_or(&d);
    if valid_host(d) {
        Some(d.to_owned())
    } else {
        None
    }
}

/// Whether `host` equals `domain` or ends with `.` + `domain`.
pub fn host_in(host: &str, domain: &str) -> bool {
    match host.strip_suffix(domain) {
        Some("") => true,
        Some(rest) => rest.ends_with('.'),
        None => false,
    }
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

    #[test]
    fn hosts() {
        assert_eq!(host_of("bob@Example.COM").as_deref(), Some("example.com"));
        assert_eq!(host_of("a@b@evil.net").as_deref(), Some("evil.net"));
        assert_eq!(host_of("https://user:pw@api.example.com:8443/x?y").as_deref(), Some("api.example.com"));
        assert_eq!(host_of("https://example.com@evil.net/").as_deref(), Some("evil.net"));
        assert_eq!(host_of("http://evil.net\\@example.com/").as_deref(), Some("evil.net"));
        assert_eq!(host_of("example.com.").as_deref(), Some("example.com"));
        assert_eq!(host_of("http://[::1]:80/").as_deref(), Some("[::1]"));
        assert_eq!(host_of("not a host"), None);
        assert_eq!(host_of(""), None);
        assert_eq!(host_of("bob@"), None);
        assert_eq!(host_of("http:///path"), None);
        assert_eq!(host_of("ex\u{0430}mple.com"), None);
        // Smuggled second recipients and URL look-alikes have no single host.
        for v in [
            "eve@evil.net, bob@example.com",
            "eve@evil.net;bob@example.com",
            "//evil.net/@example.com",
            "evil.net/x@example.com",
            "Eve <eve@evil.net>@example.com",
            "a b@example.com",
            "@example.com",
            "\"eve@evil.net\"@example.com",
        ] {
            assert_eq!(host_of(v), None, "{v}");
        }
        assert_eq!(host_of("first.last+tag@Example.com").as_deref(), Some("example.com"));
    }

    #[test]
    fn domain_boundaries() {
        assert!(host_in("example.com", "example.com"));
        assert!(host_in("mail.example.com", "example.com"));
        assert!(!host_in("evil-example.com", "example.com"));
        assert!(!host_in("example.com.evil.net", "example.com"));
    }
}
