//! Parsing the forwarding headers: node identifiers (shared by `X-Forwarded-For` and the `for=`
//! of `Forwarded`) and RFC 7239 `Forwarded` elements.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

/// One hop's identifier.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Node {
    /// An address; the port is 0 when none (or an obfuscated one) was given.
    Addr(SocketAddr),
    /// `unknown`, or an obfuscated identifier such as `_hidden`: the hop exists but its address
    /// is not disclosed.
    Hidden,
}

/// Parses a node: `ip`, `ipv4:port`, `[ipv6]`, `[ipv6]:port`, a bare IPv6 address, `unknown`
/// or an obfuscated `_name`. A port may itself be obfuscated (`_port`), which gives port 0.
/// `None` for anything else (including IPv6 zone ids and hostnames).
pub(super) fn parse_node(s: &str) -> Option<Node> {
    let s = s.trim();
    let hidden = |name: &str| name.eq_ignore_ascii_case("unknown") || is_obfuscated(name);
    if hidden(s) {
        return Some(Node::Hidden);
    }
    if let Some((name, port)) = s.split_once(':') {
        if hidden(name) {
            return (is_obfuscated(port) || crate::util::parse_port(port).is_some())
                .then_some(Node::Hidden);
        }
    }
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(Node::Addr(SocketAddr::new(ip, 0)));
    }
    let (ip, port): (IpAddr, &str) = if let Some(rest) = s.strip_prefix('[') {
        let (inside, after) = rest.split_once(']')?;
        (IpAddr::V6(inside.parse::<Ipv6Addr>().ok()?), after)
    } else {
        // Only IPv4 may carry a port without brackets: exactly one colon.
        let colon = s.find(':')?;
        let (ip, port) = s.split_at(colon);
        (IpAddr::V4(ip.parse().ok()?), port)
    };
    let port = match port {
        "" => 0,
        p => {
            let p = p.strip_prefix(':')?;
            if is_obfuscated(p) {
                0
            } else {
                crate::util::parse_port(p)?
            }
        }
    };
    Some(Node::Addr(SocketAddr::new(ip, port)))
}

/// RFC 7239 `obfnode` / `obfport`: `_` followed by letters, digits, `.`, `_` or `-`.
fn is_obfuscated(s: &str) -> bool {
    s.strip_prefix('_').is_some_and(|rest| {
        !rest.is_empty()
            && rest
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    })
}

/// The parameters of one `Forwarded` element that this middleware uses, unquoted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct Element {
    /// `for=`: the client of the proxy that added the element.
    pub(super) for_: Option<String>,
    /// `proto=`: the protocol of the request that proxy received.
    pub(super) proto: Option<String>,
    /// `host=`: the `Host` of the request that proxy received.
    pub(super) host: Option<String>,
}

/// Splits `Forwarded` field values into elements, in order. An element that does not follow
/// the RFC 7239 grammar (or repeats a parameter) is `None`; empty list items are skipped.
pub(super) fn forwarded_elements<'a>(
    fields: impl IntoIterator<Item = &'a [u8]>,
) -> Vec<Option<Element>> {
    let mut out = Vec::new();
    for field in fields {
        for raw in split_outside_quotes(field) {
            let raw = raw.trim_ascii();
            if !raw.is_empty() {
                out.push(parse_element(raw));
            }
        }
    }
    out
}

/// Splits at the commas that are not inside a quoted string. An unterminated quote runs to the
/// end of the field (and makes that element malformed).
fn split_outside_quotes(v: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, &b) in v.iter().enumerate() {
        if quoted {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                quoted = false;
            }
        } else if b == b'"' {
            quoted = true;
        } else if b == b',' {
            out.push(&v[start..i]);
            start = i + 1;
        }
    }
    out.push(&v[start..]);
    out
}

/// `forwarded-element = [ forwarded-pair ] *( ";" [ forwarded-pair ] )`,
/// `forwarded-pair = token "=" ( token / quoted-string )`. Whitespace is allowed around `;`.
fn parse_element(e: &[u8]) -> Option<Element> {
    let mut el = Element::default();
    let mut by_seen = false;
    let mut i = 0;
    let skip_ws = |i: &mut usize| {
        while *i < e.len() && matches!(e[*i], b' ' | b'\t') {
            *i += 1;
        }
    };
    loop {
        skip_ws(&mut i);
        if i == e.len() {
            return Some(el);
        }
        if e[i] == b';' {
            i += 1;
            continue;
        }
        let name_start = i;
        while i < e.len() && pagi::headers::is_tchar(e[i]) {
            i += 1;
        }
        let name = &e[name_start..i];
        if name.is_empty() || e.get(i) != Some(&b'=') {
            return None;
        }
        i += 1;
        let value = if e.get(i) == Some(&b'"') {
            i += 1;
            let mut v = Vec::new();
            loop {
                match *e.get(i)? {
                    b'"' => {
                        i += 1;
                        break;
                    }
                    b'\\' => {
                        let c = *e.get(i + 1)?;
                        if !is_qdtext_or_escapable(c) {
                            return None;
                        }
                        v.push(c);
                        i += 2;
                    }
                    c if is_qdtext_or_escapable(c) => {
                        v.push(c);
                        i += 1;
                    }
                    _ => return None,
                }
            }
            String::from_utf8(v).ok()?
        } else {
            let start = i;
            while i < e.len() && pagi::headers::is_tchar(e[i]) {
                i += 1;
            }
            if start == i {
                return None;
            }
            String::from_utf8(e[start..i].to_vec()).ok()?
        };
        skip_ws(&mut i);
        if i < e.len() && e[i] != b';' {
            return None;
        }
        let slot = if name.eq_ignore_ascii_case(b"for") {
            &mut el.for_
        } else if name.eq_ignore_ascii_case(b"proto") {
            &mut el.proto
        } else if name.eq_ignore_ascii_case(b"host") {
            &mut el.host
        } else if name.eq_ignore_ascii_case(b"by") {
            // Checked for duplicates like the others, then dropped.
            if std::mem::replace(&mut by_seen, true) {
                return None;
            }
            continue;
        } else {
            // Extension parameters are allowed and ignored.
            continue;
        };
        if slot.replace(value).is_some() {
            return None; // "each parameter MUST NOT occur more than once per element"
        }
    }
}

/// A byte allowed inside a quoted string, literally or after a backslash: HTAB, SP, VCHAR and
/// obs-text (no other control bytes).
fn is_qdtext_or_escapable(b: u8) -> bool {
    b == b'\t' || b == b' ' || (0x21..=0x7e).contains(&b) || b >= 0x80
}
