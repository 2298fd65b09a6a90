//! Request heads: bytes in, a checked [`RequestHead`] out. No I/O.
//!
//! The parser is strict where leniency enables request smuggling (RFC 9112 §6, §11.2): bare CR
//! or LF, obs-fold, control bytes, duplicate or malformed `Content-Length`, `Content-Length`
//! together with `Transfer-Encoding`, and transfer codings other than a final `chunked` are all
//! refused, each with the status [`Reject::status`] gives it.

use bytes::{Bytes, BytesMut};
use pagi::{Headers, HttpVersion, Method, Path};
use std::mem::MaybeUninit;

use crate::error::Reject;

/// Size limits of a request head.
#[derive(Clone, Debug)]
pub struct HeadLimits {
    /// Longest request line (414 beyond).
    pub max_request_line: usize,
    /// Largest header section, request line included (431 beyond).
    pub max_header_size: usize,
    /// Most header fields (431 beyond). At most [`MAX_HEADERS_CAP`].
    pub max_header_count: usize,
    /// Largest single field line, name and value (431 beyond).
    pub max_field_size: usize,
}

impl Default for HeadLimits {
    fn default() -> Self {
        HeadLimits {
            max_request_line: 8192,
            max_header_size: 65536,
            max_header_count: 100,
            max_field_size: 8192,
        }
    }
}

/// The hard upper bound of `max_header_count` (the parser's stack array).
pub const MAX_HEADERS_CAP: usize = 512;

/// How the request body is framed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyFraming {
    /// No body (no `Content-Length`, no `Transfer-Encoding`, or `Content-Length: 0`).
    Empty,
    /// `Content-Length: n`, n > 0.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

/// A parsed, checked request head.
#[derive(Debug)]
pub struct RequestHead {
    /// The method.
    pub method: Method,
    /// 1.0 or 1.1.
    pub version: HttpVersion,
    /// The path as sent (origin form; for absolute form, the path part).
    pub raw_path: Bytes,
    /// The query, without `?`.
    pub query: Bytes,
    /// The percent-decoded path.
    pub path: Path,
    /// Headers: lowercase names, `cookie` merged.
    pub headers: Headers,
    /// Body framing.
    pub framing: BodyFraming,
    /// Whether the client allows the connection to stay open.
    pub keep_alive: bool,
    /// `Expect: 100-continue` on HTTP/1.1.
    pub expect_continue: bool,
    /// `Connection: upgrade` together with an `Upgrade` header.
    pub upgrade: bool,
}

impl RequestHead {
    /// Whether this is a HEAD request.
    pub fn is_head(&self) -> bool {
        self.method == "HEAD"
    }
}

/// Tries to parse one request head from the front of `buf`.
///
/// `Ok(None)`: incomplete, read more. `Ok(Some(head))`: the head's bytes have been split off
/// `buf` (what follows, body or pipelined requests, stays). `Err`: refuse with that status.
pub fn parse_head(buf: &mut BytesMut, limits: &HeadLimits) -> Result<Option<RequestHead>, Reject> {
    // RFC 9112 §2.2: ignore at least one empty line before the request line.
    let mut skip = 0;
    while skip + 1 < buf.len().min(8) && buf[skip] == b'\r' && buf[skip + 1] == b'\n' {
        skip += 2;
    }
    if skip > 0 {
        let _ = buf.split_to(skip);
    }
    if buf.is_empty() {
        return Ok(None);
    }

    // The request line's length is checked before httparse sees the bytes.
    let line_end = memchr(b'\n', &buf[..buf.len().min(limits.max_request_line + 2)]);
    match line_end {
        None if buf.len() > limits.max_request_line + 1 => return Err(Reject::UriTooLong),
        None => return Ok(None),
        Some(i) if i > limits.max_request_line + 1 => return Err(Reject::UriTooLong),
        Some(_) => {}
    }

    let cap = limits.max_header_count.min(MAX_HEADERS_CAP);
    let mut storage = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS_CAP];
    let mut req = httparse::Request::new(&mut []);
    let parsed = req.parse_with_uninit_headers(buf, &mut storage[..cap]);
    let len = match parsed {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => {
            if buf.len() > limits.max_header_size {
                return Err(Reject::HeadersTooLarge);
            }
            // A control byte can only be seen once the head is complete; a partial head is
            // bounded by max_header_size, so waiting is safe.
            return Ok(None);
        }
        Err(httparse::Error::TooManyHeaders) => return Err(Reject::TooManyHeaders),
        Err(httparse::Error::Version) => {
            return Err(if looks_like_version(buf) {
                Reject::VersionNotSupported
            } else {
                Reject::BadRequest("malformed request line")
            })
        }
        Err(e) => return Err(Reject::BadRequest(httparse_reason(e))),
    };
    if len > limits.max_header_size {
        return Err(Reject::HeadersTooLarge);
    }
    check_line_endings(&buf[..len])?;

    let base = buf.as_ptr() as usize;
    let off = |s: &[u8]| s.as_ptr() as usize - base;
    let version = if req.version == Some(0) {
        HttpVersion::Http10
    } else {
        HttpVersion::Http11
    };
    let method_s = req.method.unwrap_or("").as_bytes();
    let method_r = (off(method_s), method_s.len());
    let path_s = req.path.unwrap_or("").as_bytes();
    let target_r = (off(path_s), path_s.len());

    // Field offsets: (name_start, name_len, value_start, value_len).
    let mut fields = [(0u32, 0u32, 0u32, 0u32); MAX_HEADERS_CAP];
    let n = req.headers.len();
    for (i, h) in req.headers.iter().enumerate() {
        if h.name.len() + h.value.len() + 2 > limits.max_field_size {
            return Err(Reject::HeadersTooLarge);
        }
        fields[i] = (
            off(h.name.as_bytes()) as u32,
            h.name.len() as u32,
            off(h.value) as u32,
            h.value.len() as u32,
        );
    }

    // Own the head's bytes: lowercase names in place, then freeze to share without copying.
    let mut head = buf.split_to(len);
    for &(ns, nl, _, _) in &fields[..n] {
        head[ns as usize..(ns + nl) as usize].make_ascii_lowercase();
    }
    let head = head.freeze();
    let slice = |s: u32, l: u32| head.slice(s as usize..(s + l) as usize);

    let method = Method::from_bytes(head.slice(method_r.0..method_r.0 + method_r.1))
        .ok_or(Reject::BadRequest("malformed method"))?;
    let target = head.slice(target_r.0..target_r.0 + target_r.1);

    let mut b = HeadBuilder::new(n);
    for &(ns, nl, vs, vl) in &fields[..n] {
        b.field(slice(ns, nl), slice(vs, vl))?;
    }
    b.finish(method, version, target)
}

struct HeadBuilder {
    headers: Vec<(Bytes, Bytes)>,
    content_length: Option<u64>,
    te_chunked: Option<bool>,
    te_unknown: bool,
    host_count: usize,
    host_index: usize,
    close: bool,
    keep_alive: bool,
    conn_upgrade: bool,
    has_upgrade: bool,
    expect_continue: bool,
    cookie_index: Option<usize>,
}

impl HeadBuilder {
    fn new(n: usize) -> Self {
        HeadBuilder {
            headers: Vec::with_capacity(n),
            content_length: None,
            te_chunked: None,
            te_unknown: false,
            host_count: 0,
            host_index: 0,
            close: false,
            keep_alive: false,
            conn_upgrade: false,
            has_upgrade: false,
            expect_continue: false,
            cookie_index: None,
        }
    }

    fn field(&mut self, name: Bytes, value: Bytes) -> Result<(), Reject> {
        match &name[..] {
            b"content-length" => {
                if self.content_length.is_some() {
                    return Err(Reject::BadRequest("duplicate content-length"));
                }
                self.content_length = Some(parse_content_length(&value)?);
            }
            b"transfer-encoding" => {
                // Several fields form one list; only a single, final `chunked` is understood.
                // Anything after `chunked` is a 400 (RFC 9112 §6.3); another coding is a 501.
                for coding in value.split(|&b| b == b',') {
                    let coding = trim(coding);
                    if self.te_chunked == Some(true) {
                        return Err(Reject::BadRequest(
                            "chunked is not the last transfer coding",
                        ));
                    }
                    if coding.eq_ignore_ascii_case(b"chunked") {
                        self.te_chunked = Some(true);
                    } else if coding.is_empty() || !is_coding(coding) {
                        return Err(Reject::BadRequest("malformed transfer-encoding"));
                    } else {
                        self.te_unknown = true;
                        self.te_chunked = Some(false);
                    }
                }
            }
            b"host" => {
                self.host_count += 1;
                self.host_index = self.headers.len();
                if !valid_host(&value) {
                    return Err(Reject::BadRequest("malformed host"));
                }
            }
            b"connection" => {
                for opt in value.split(|&b| b == b',') {
                    let opt = trim(opt);
                    if opt.eq_ignore_ascii_case(b"close") {
                        self.close = true;
                    } else if opt.eq_ignore_ascii_case(b"keep-alive") {
                        self.keep_alive = true;
                    } else if opt.eq_ignore_ascii_case(b"upgrade") {
                        self.conn_upgrade = true;
                    }
                }
            }
            b"upgrade" => self.has_upgrade = true,
            b"expect" => {
                if trim(&value).eq_ignore_ascii_case(b"100-continue") {
                    self.expect_continue = true;
                } else {
                    return Err(Reject::ExpectationFailed);
                }
            }
            b"cookie" => {
                // PAGI: several cookie fields become one, joined with "; ".
                if let Some(i) = self.cookie_index {
                    let prev = &self.headers[i].1;
                    let mut merged = Vec::with_capacity(prev.len() + 2 + value.len());
                    merged.extend_from_slice(prev);
                    merged.extend_from_slice(b"; ");
                    merged.extend_from_slice(&value);
                    self.headers[i].1 = Bytes::from(merged);
                    return Ok(());
                }
                self.cookie_index = Some(self.headers.len());
            }
            _ => {}
        }
        self.headers.push((name, value));
        Ok(())
    }

    fn finish(
        mut self,
        method: Method,
        version: HttpVersion,
        target: Bytes,
    ) -> Result<Option<RequestHead>, Reject> {
        let framing = match (self.te_chunked, self.content_length) {
            (Some(_), Some(_)) => {
                return Err(Reject::BadRequest(
                    "both content-length and transfer-encoding",
                ))
            }
            (Some(_), None) if version == HttpVersion::Http10 => {
                return Err(Reject::BadRequest(
                    "transfer-encoding in an HTTP/1.0 request",
                ))
            }
            (Some(_), None) if self.te_unknown => return Err(Reject::NotImplemented),
            (Some(true), None) => BodyFraming::Chunked,
            (Some(false), None) => return Err(Reject::NotImplemented),
            (None, Some(0)) | (None, None) => BodyFraming::Empty,
            (None, Some(n)) => BodyFraming::Length(n),
        };
        if self.host_count > 1 {
            return Err(Reject::BadRequest("more than one host"));
        }
        if version == HttpVersion::Http11 && self.host_count == 0 {
            return Err(Reject::BadRequest("missing host"));
        }

        let (raw_path, query, authority) = split_target(&method, &target)?;
        if let Some(authority) = authority {
            // RFC 9112 §3.2.2: the absolute-form target's authority replaces Host.
            if self.host_count == 1 {
                self.headers[self.host_index].1 = authority;
            } else {
                self.headers.push((Bytes::from_static(b"host"), authority));
            }
        }
        let path = decode_path(&raw_path);
        let keep_alive = match version {
            HttpVersion::Http11 => !self.close,
            _ => self.keep_alive && !self.close,
        };
        Ok(Some(RequestHead {
            method,
            version,
            raw_path,
            query,
            path,
            headers: Headers::from(self.headers),
            framing,
            keep_alive,
            expect_continue: self.expect_continue
                && version == HttpVersion::Http11
                && framing != BodyFraming::Empty,
            upgrade: self.conn_upgrade && self.has_upgrade,
        }))
    }
}

/// A transfer coding with optional parameters (`gzip`, `foo;q=1`): a token, then anything
/// printable. Only its validity matters; any such coding is answered with 501.
fn is_coding(c: &[u8]) -> bool {
    let name_end = c.iter().position(|&b| b == b';').unwrap_or(c.len());
    pagi::headers::is_token(trim(&c[..name_end]))
        && c[name_end..]
            .iter()
            .all(|&b| b == b'\t' || (0x20..0x7f).contains(&b))
}

/// `Content-Length`: 1*DIGIT, nothing else (no sign, no spaces inside, no list).
fn parse_content_length(v: &[u8]) -> Result<u64, Reject> {
    if v.is_empty() || v.len() > 19 || !v.iter().all(u8::is_ascii_digit) {
        return Err(Reject::BadRequest("malformed content-length"));
    }
    let mut n: u64 = 0;
    for &d in v {
        n = n * 10 + u64::from(d - b'0');
    }
    Ok(n)
}

/// Splits a request target into (raw path, query, authority of an absolute-form target).
fn split_target(method: &Method, target: &Bytes) -> Result<(Bytes, Bytes, Option<Bytes>), Reject> {
    if target.is_empty() {
        return Err(Reject::BadRequest("empty request target"));
    }
    if target.contains(&b'#') {
        return Err(Reject::BadRequest("fragment in request target"));
    }
    let (path_start, authority) = match target[0] {
        b'/' => (0, None),
        b'*' if target.len() == 1 => {
            if method != "OPTIONS" {
                return Err(Reject::BadRequest("asterisk form outside OPTIONS"));
            }
            return Ok((target.clone(), Bytes::new(), None));
        }
        _ if method == "CONNECT" => {
            // authority-form: host:port; handed to the app as the raw path.
            if !valid_host(target) {
                return Err(Reject::BadRequest("malformed authority"));
            }
            return Ok((target.clone(), Bytes::new(), None));
        }
        _ => {
            let lower = target
                .get(..8)
                .map(<[u8]>::to_ascii_lowercase)
                .unwrap_or_default();
            let skip = if lower.starts_with(b"http://") {
                7
            } else if lower.starts_with(b"https://") {
                8
            } else {
                return Err(Reject::BadRequest("malformed request target"));
            };
            let rest = &target[skip..];
            let end = rest
                .iter()
                .position(|&b| b == b'/' || b == b'?')
                .unwrap_or(rest.len());
            let authority = target.slice(skip..skip + end);
            if authority.is_empty() || !valid_host(&authority) {
                return Err(Reject::BadRequest("malformed authority"));
            }
            (skip + end, Some(authority))
        }
    };
    let t = target.slice(path_start..);
    let (path, query) = match t.iter().position(|&b| b == b'?') {
        Some(q) => (t.slice(..q), t.slice(q + 1..)),
        None => (t, Bytes::new()),
    };
    let path = if path.is_empty() {
        Bytes::from_static(b"/")
    } else {
        path
    };
    Ok((path, query, authority))
}

/// Percent-decodes a path; without `%` it is shared, not copied.
pub(crate) fn decode_path(raw: &Bytes) -> Path {
    if !raw.contains(&b'%') {
        return Path::from_decoded(raw.clone());
    }
    let decoded: Vec<u8> = percent_encoding::percent_decode(raw).collect();
    Path::from_decoded(Bytes::from(decoded))
}

/// A Host value: reg-name, IPv4 or a bracketed IP literal, with an optional port; may be empty.
pub(crate) fn valid_host(v: &[u8]) -> bool {
    v.iter().all(|&b| HOST_CHAR[b as usize])
}

/// The bytes [`valid_host`] allows, as a table: one load per byte.
static HOST_CHAR: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = c.is_ascii_alphanumeric()
            || matches!(
                c,
                b'-' | b'.'
                    | b'_'
                    | b'~'
                    | b'!'
                    | b'$'
                    | b'&'
                    | b'\''
                    | b'('
                    | b')'
                    | b'*'
                    | b'+'
                    | b','
                    | b';'
                    | b'='
                    | b':'
                    | b'%'
                    | b'['
                    | b']'
            );
        b += 1;
    }
    t
};

/// Every LF must follow a CR, and every CR must precede an LF (no bare CR or LF).
fn check_line_endings(head: &[u8]) -> Result<(), Reject> {
    let mut prev = 0u8;
    for (i, &b) in head.iter().enumerate() {
        if b == b'\n' && prev != b'\r' {
            return Err(Reject::BadRequest("bare LF"));
        }
        if b == b'\r' && head.get(i + 1) != Some(&b'\n') {
            return Err(Reject::BadRequest("bare CR"));
        }
        prev = b;
    }
    Ok(())
}

fn looks_like_version(buf: &[u8]) -> bool {
    let line = match memchr(b'\n', buf) {
        Some(i) => &buf[..i],
        None => buf,
    };
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    // Exactly `method SP target SP version`; anything else is a malformed line, not a version.
    if line.iter().filter(|&&b| b == b' ').count() != 2 {
        return false;
    }
    let v = match line.iter().rposition(|&b| b == b' ') {
        Some(i) => &line[i + 1..],
        None => return false,
    };
    v.len() == 8
        && v.starts_with(b"HTTP/")
        && v[5].is_ascii_digit()
        && v[6] == b'.'
        && v[7].is_ascii_digit()
}

fn httparse_reason(e: httparse::Error) -> &'static str {
    match e {
        httparse::Error::HeaderName => "malformed header name",
        httparse::Error::HeaderValue => "malformed header value",
        httparse::Error::NewLine => "malformed line ending",
        httparse::Error::Token => "malformed method or request target",
        _ => "malformed request line",
    }
}

pub(crate) fn trim(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

pub(crate) fn memchr(needle: u8, hay: &[u8]) -> Option<usize> {
    hay.iter().position(|&b| b == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(raw: &[u8]) -> Result<Option<RequestHead>, Reject> {
        parse_head(&mut BytesMut::from(raw), &HeadLimits::default())
    }

    fn ok(raw: &[u8]) -> RequestHead {
        parse(raw).expect("parses").expect("complete")
    }

    fn status(raw: &[u8]) -> u16 {
        match parse(raw) {
            Err(r) => r.status(),
            Ok(Some(_)) => 200,
            Ok(None) => 0,
        }
    }

    #[test]
    fn simple_get() {
        let h = ok(b"GET /a%20b?x=1 HTTP/1.1\r\nHost: example.com\r\nX-Thing: V\r\n\r\n");
        assert_eq!(h.method, "GET");
        assert_eq!(h.version, HttpVersion::Http11);
        assert_eq!(&h.raw_path[..], b"/a%20b");
        assert_eq!(&h.query[..], b"x=1");
        assert!(h.path == "/a b");
        assert_eq!(
            h.headers.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>(),
            ["host", "x-thing"]
        );
        assert_eq!(h.headers.get("x-thing").unwrap(), "V");
        assert!(h.keep_alive);
        assert_eq!(h.framing, BodyFraming::Empty);
    }

    #[test]
    fn partial_and_pipelined() {
        assert!(parse(b"GET / HTTP/1.1\r\nHost: a\r\n").unwrap().is_none());
        let mut buf = BytesMut::from(
            &b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\n"[..],
        );
        let l = HeadLimits::default();
        assert!(parse_head(&mut buf, &l).unwrap().unwrap().path == "/1");
        assert!(parse_head(&mut buf, &l).unwrap().unwrap().path == "/2");
        assert!(buf.is_empty());
    }

    #[test]
    fn leading_empty_line_is_ignored() {
        assert!(ok(b"\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n").path == "/");
    }

    #[test]
    fn http10_keep_alive_rules() {
        assert!(!ok(b"GET / HTTP/1.0\r\n\r\n").keep_alive);
        assert!(ok(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").keep_alive);
        assert!(!ok(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n").keep_alive);
    }

    #[test]
    fn cookies_are_merged() {
        let h = ok(b"GET / HTTP/1.1\r\nHost: a\r\nCookie: a=1\r\nX: y\r\nCookie: b=2\r\n\r\n");
        assert_eq!(h.headers.len(), 3);
        assert_eq!(h.headers.get("cookie").unwrap(), "a=1; b=2");
    }

    #[test]
    fn framing() {
        assert_eq!(
            ok(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n").framing,
            BodyFraming::Length(5)
        );
        assert_eq!(
            ok(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n").framing,
            BodyFraming::Empty
        );
        assert_eq!(
            ok(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n").framing,
            BodyFraming::Chunked
        );
        assert_eq!(
            ok(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: CHUNKED\r\n\r\n").framing,
            BodyFraming::Chunked
        );
    }

    #[test]
    fn smuggling_table() {
        let cases: &[(&[u8], u16)] = &[
            (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n", 400),
            (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\n", 400),
            (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\n", 400),
            (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -5\r\n\r\n", 400),
            (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x5\r\n\r\n", 400),
            (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5 5\r\n\r\n", 400),
            (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length:\r\n\r\n", 400),
            (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999\r\n\r\n", 400),
            (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
            (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n", 400),
            (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", 400),
            (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n", 400),
            (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", 400),
            (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", 501),
            (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501),
            (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity\r\n\r\n", 501),
            (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: \x0bchunked\r\n\r\n", 400),
            (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: ,chunked\r\n\r\n", 400),
            (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\n\r\n", 400),
            (b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
            (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: a\r\nX: a\nY: b\r\n\r\n", 400),
            (b"GET / HTTP/1.1\nHost: a\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: a\r\nX: a\x00b\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: a\r\nX: a\x1cb\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: a\r\nX: a\x0cb\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: a\r\nX\x00: b\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: a\r\n: b\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", 400),
            (b"GET  / HTTP/1.1\r\nHost: a\r\n\r\n", 400),
            (b"GET /a b HTTP/1.1\r\nHost: a\r\n\r\n", 400),
            (b"GET / HTTP/1.1 \r\nHost: a\r\n\r\n", 400),
            (b"GET /#frag HTTP/1.1\r\nHost: a\r\n\r\n", 400),
            (b"G\x00T / HTTP/1.1\r\nHost: a\r\n\r\n", 400),
            (b"GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505),
            (b"GET / HTTP/1.2\r\nHost: a\r\n\r\n", 505),
            (b"GET / FOO/1.1\r\nHost: a\r\n\r\n", 400),
            (b"GET * HTTP/1.1\r\nHost: a\r\n\r\n", 400),
            (b"GET example.com HTTP/1.1\r\nHost: a\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: a\r\nExpect: something\r\n\r\n", 417),
            (b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", 200),
            (b"GET / HTTP/1.0\r\n\r\n", 200),
            (b"GET http://h.example/p?q HTTP/1.1\r\nHost: a\r\n\r\n", 200),
        ];
        for (raw, want) in cases {
            assert_eq!(
                status(raw),
                *want,
                "{}",
                String::from_utf8_lossy(raw).escape_debug()
            );
        }
    }

    #[test]
    fn absolute_form_replaces_host() {
        let h = ok(b"GET http://h.example:81/p?q=1 HTTP/1.1\r\nHost: other\r\n\r\n");
        assert_eq!(h.headers.get("host").unwrap(), "h.example:81");
        assert_eq!(&h.raw_path[..], b"/p");
        assert_eq!(&h.query[..], b"q=1");
        let h = ok(b"GET http://h.example HTTP/1.1\r\nHost: h.example\r\n\r\n");
        assert_eq!(&h.raw_path[..], b"/");
    }

    #[test]
    fn limits() {
        let l = HeadLimits {
            max_request_line: 32,
            max_header_size: 128,
            max_header_count: 3,
            max_field_size: 40,
        };
        let p = |raw: &[u8]| match parse_head(&mut BytesMut::from(raw), &l) {
            Err(r) => r.status(),
            Ok(Some(_)) => 200,
            Ok(None) => 0,
        };
        assert_eq!(
            p(b"GET /aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa HTTP/1.1\r\nHost: a\r\n\r\n"),
            414
        );
        assert_eq!(
            p(b"GET /aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"),
            414,
            "long line, still incomplete"
        );
        assert_eq!(
            p(b"GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n"),
            431
        );
        assert_eq!(p(b"GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\n\r\n"), 200);
        assert_eq!(
            p(b"GET / HTTP/1.1\r\nHost: a\r\nA: 0123456789012345678901234567890123456789\r\n\r\n"),
            431
        );
        let mut big = b"GET / HTTP/1.1\r\nHost: a\r\n".to_vec();
        big.extend(std::iter::repeat_n(b'x', 200));
        assert_eq!(p(&big), 431, "partial head over the size limit");
    }

    #[test]
    fn non_utf8_path_falls_back_to_bytes() {
        let h = ok(b"GET /%FF%41 HTTP/1.1\r\nHost: a\r\n\r\n");
        assert_eq!(h.path.as_bytes(), b"/\xffA");
        assert_eq!(h.path.as_str(), None);
    }

    #[test]
    fn expect_continue_only_with_a_body() {
        assert!(
            ok(b"POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\nContent-Length: 3\r\n\r\n")
                .expect_continue
        );
        assert!(!ok(b"GET / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n\r\n").expect_continue);
    }
}
