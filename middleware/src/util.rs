//! Small helpers shared by the middleware: header editing and `Host` parsing.

use bytes::Bytes;
use pagi::Headers;
use std::net::Ipv6Addr;

/// Replaces every field called `name` (ASCII case-insensitive) by one field `name: value`, at the
/// position of the first one it replaces (appended when there was none).
pub(crate) fn set_header(headers: &mut Headers, name: &'static str, value: Bytes) {
    set_header_bytes(headers, Bytes::from_static(name.as_bytes()), value);
}

/// [`set_header`] with a name that is not `'static`.
pub(crate) fn set_header_bytes(headers: &mut Headers, name: Bytes, value: Bytes) {
    let mut fields: Vec<(Bytes, Bytes)> = std::mem::take(headers).into();
    let first = fields
        .iter()
        .position(|(n, _)| n.eq_ignore_ascii_case(&name));
    // Every field before `first` is kept, so `first` is still the right place after this.
    fields.retain(|(n, _)| !n.eq_ignore_ascii_case(&name));
    match first {
        Some(i) => fields.insert(i, (name, value)),
        None => fields.push((name, value)),
    }
    *headers = Headers::from(fields);
}

/// A `Host`-style value (`uri-host [":" port]`) split into its host and port.
///
/// The host is either a bracketed IPv6 literal, returned in canonical form (`[::1]`), or a name
/// or IPv4 address made of ASCII letters, digits, `.`, `-` and `_`, returned lowercased and
/// without one trailing dot. The port is 1 to 5 digits that fit a `u16`; an empty port
/// (`example.com:`) counts as none. Anything else (spaces, control bytes, userinfo, paths,
/// percent-escapes, non-ASCII) is `None`.
pub(crate) fn split_host(value: &[u8]) -> Option<(String, Option<u16>)> {
    let s = std::str::from_utf8(value).ok()?;
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (inside, after) = rest.split_once(']')?;
        let ip: Ipv6Addr = inside.parse().ok()?;
        (format!("[{ip}]"), after)
    } else {
        let end = s.find(':').unwrap_or(s.len());
        let (name, after) = s.split_at(end);
        let name = name.strip_suffix('.').unwrap_or(name);
        let ok = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_');
        if name.is_empty() || !name.bytes().all(ok) {
            return None;
        }
        (name.to_ascii_lowercase(), after)
    };
    let port = match port.strip_prefix(':') {
        None if port.is_empty() => None,
        None => return None,
        Some("") => None,
        Some(p) => Some(parse_port(p)?),
    };
    Some((host, port))
}

/// A decimal port: 1 to 5 ASCII digits that fit a `u16` (no sign, no spaces).
pub(crate) fn parse_port(p: &str) -> Option<u16> {
    if p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    p.parse().ok()
}

/// Bytes as a JSON string, one character per byte (the spec's ISO-8859-1 convention).
pub(crate) fn latin1(b: &[u8]) -> String {
    b.iter().map(|&c| char::from(c)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_header_replaces_in_place() {
        let mut h = Headers::new()
            .with("a", "1")
            .with("Host", "x")
            .with("b", "2")
            .with("host", "y");
        set_header(&mut h, "host", Bytes::from_static(b"z"));
        let v: Vec<(Bytes, Bytes)> = h.into();
        assert_eq!(
            v,
            [("a", "1"), ("host", "z"), ("b", "2")].map(|(n, v)| (Bytes::from(n), Bytes::from(v)))
        );
        let mut h = Headers::new().with("a", "1");
        set_header(&mut h, "host", Bytes::from_static(b"z"));
        assert_eq!(h.get("host").map(|v| &v[..]), Some(&b"z"[..]));
        assert_eq!(h.len(), 2);
    }

    #[test]
    fn split_host_forms() {
        let ok = |v: &str| split_host(v.as_bytes());
        assert_eq!(ok("Example.COM"), Some(("example.com".into(), None)));
        assert_eq!(
            ok("example.com.:8080"),
            Some(("example.com".into(), Some(8080)))
        );
        assert_eq!(ok("example.com:"), Some(("example.com".into(), None)));
        assert_eq!(ok("10.0.0.1:80"), Some(("10.0.0.1".into(), Some(80))));
        assert_eq!(ok("[0:0::1]:443"), Some(("[::1]".into(), Some(443))));
        assert_eq!(ok("[::1]"), Some(("[::1]".into(), None)));
        for bad in [
            "", ":80", "a b", "a/b", "user@a", "a:99999", "a:+1", "a:1:2", "[::1", "[x]", "[::1]x",
            "é.com", "a%20", "a\r", ".",
        ] {
            assert_eq!(ok(bad), None, "{bad:?}");
        }
    }
}
