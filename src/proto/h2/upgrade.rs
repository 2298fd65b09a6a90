//! How a cleartext connection becomes HTTP/2, as functions on byte slices (no I/O).
//!
//! **Prior knowledge**: the connection starts with the 24-byte preface ([`detect_preface`]).
//!
//! **`Upgrade: h2c`** (RFC 7540 §3.2; RFC 9113 deprecates it but curl and nghttp still offer
//! it): the `h2` crate has no server-side upgrade, so the server answers `101 Switching
//! Protocols` itself and then gives `h2` a byte stream in which the upgrading request is stream
//! 1: the client's preface and first SETTINGS frame pass through unchanged
//! ([`splice_point`]), then comes a synthetic HEADERS frame for stream 1 ([`headers_frame`]:
//! END_STREAM | END_HEADERS, every field an HPACK literal without indexing, so neither side's
//! dynamic table changes), then the rest of what the client sends. The body of the upgrading
//! request (read before the 101, at most [`MAX_UPGRADE_BODY`]) is handed to the app by the
//! server, not as DATA frames: `h2` would otherwise return window for bytes the client never
//! sent as HTTP/2. The `HTTP2-Settings` values are checked but not applied: the client's own
//! SETTINGS frame, which must follow the preface, takes effect before stream 1 is read.
//!
//! A request that does not qualify ([`check_upgrade`]) is served as HTTP/1.1, as RFC 7540
//! allows a server to ignore `Upgrade`.

use base64::Engine;
use bytes::{BufMut, Bytes, BytesMut};

use crate::proto::h1::parse::{trim, BodyFraming, RequestHead};

/// The HTTP/2 connection preface (RFC 9113 §3.4).
pub const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Largest request body an `Upgrade: h2c` request may carry; a larger one is served over
/// HTTP/1.1 without upgrading.
pub const MAX_UPGRADE_BODY: u64 = 64 * 1024;

/// Largest first SETTINGS frame accepted while splicing (RFC 9113 leaves it to the frame size
/// limit; real clients send a few dozen bytes).
const MAX_SETTINGS_LEN: usize = 16_384;

/// What the start of a connection is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preface {
    /// The whole preface.
    Yes,
    /// Not the preface.
    No,
    /// A prefix of the preface: read more.
    NeedMore,
}

/// Whether `buf` starts with the HTTP/2 preface.
pub fn detect_preface(buf: &[u8]) -> Preface {
    let n = buf.len().min(PREFACE.len());
    if buf[..n] != PREFACE[..n] {
        Preface::No
    } else if n == PREFACE.len() {
        Preface::Yes
    } else {
        Preface::NeedMore
    }
}

/// Whether the request asks to upgrade to h2c (`Connection: upgrade` and `h2c` in
/// `Upgrade`); whether it may is [`check_upgrade`].
pub fn asks_h2c(head: &RequestHead) -> bool {
    head.upgrade && list_has(&head.headers, "upgrade", b"h2c")
}

/// The checks on an upgrading request (RFC 7540 §3.2, §3.2.1): `HTTP2-Settings` named in
/// `Connection`, exactly one `HTTP2-Settings` field holding base64url of whole settings, and
/// a body the server can hold (empty or a `Content-Length` up to [`MAX_UPGRADE_BODY`]; no
/// chunked body, no `Expect`). `Err` says why the request stays HTTP/1.1.
pub fn check_upgrade(head: &RequestHead) -> Result<(), &'static str> {
    if !list_has(&head.headers, "connection", b"http2-settings") {
        return Err("HTTP2-Settings is not a Connection option");
    }
    let mut settings = head.headers.get_all("http2-settings");
    let (Some(value), None) = (settings.next(), settings.next()) else {
        return Err("not exactly one HTTP2-Settings field");
    };
    let value = trim(value);
    let value = value
        .strip_suffix(b"==")
        .or(value.strip_suffix(b"="))
        .unwrap_or(value);
    match base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(value) {
        Ok(raw) if raw.len() % 6 == 0 => {}
        _ => return Err("HTTP2-Settings is not base64url of SETTINGS parameters"),
    }
    if head.expect_continue || head.headers.contains("expect") {
        return Err("Expect on an upgrading request");
    }
    match head.framing {
        BodyFraming::Empty => Ok(()),
        BodyFraming::Length(n) if n <= MAX_UPGRADE_BODY => Ok(()),
        BodyFraming::Length(_) => Err("body too large to upgrade with"),
        BodyFraming::Chunked => Err("chunked body on an upgrading request"),
    }
}

/// Whether the comma-separated list in field `name` has `token` (ASCII case-insensitive).
fn list_has(headers: &pagi::Headers, name: &str, token: &[u8]) -> bool {
    headers.get_all(name).any(|v| {
        v.split(|&b| b == b',')
            .any(|t| trim(t).eq_ignore_ascii_case(token))
    })
}

/// The HEADERS frame (stream 1, END_STREAM | END_HEADERS) carrying the upgrading request:
/// `:method`, `:scheme` (`http`), `:authority` (from `Host`), `:path` (with the query), then
/// its fields without `Host`, the connection-specific ones (`Connection`, `Upgrade`,
/// `HTTP2-Settings`, `Keep-Alive`, `Proxy-Connection`, `Transfer-Encoding`, `TE`) and
/// `Content-Length` (its body is delivered apart; the length is put back in the scope).
/// `None` when the frame would be larger than `max_frame` (then the request stays HTTP/1.1).
pub fn headers_frame(head: &RequestHead, max_frame: usize) -> Option<Bytes> {
    let mut block = BytesMut::with_capacity(256);
    literal(&mut block, b":method", head.method.as_str().as_bytes());
    literal(&mut block, b":scheme", b"http");
    if let Some(host) = head.headers.get("host") {
        literal(&mut block, b":authority", host);
    }
    let mut path = BytesMut::with_capacity(head.raw_path.len() + 1 + head.query.len());
    path.put_slice(&head.raw_path);
    if !head.query.is_empty() {
        path.put_u8(b'?');
        path.put_slice(&head.query);
    }
    literal(&mut block, b":path", &path);
    for (n, v) in &head.headers {
        let skip = [
            "host",
            "connection",
            "upgrade",
            "http2-settings",
            "keep-alive",
            "proxy-connection",
            "transfer-encoding",
            "te",
            "content-length",
        ];
        if skip.iter().any(|s| n.eq_ignore_ascii_case(s.as_bytes())) {
            continue;
        }
        literal(&mut block, n, v);
    }
    if block.len() > max_frame {
        return None;
    }
    let mut frame = BytesMut::with_capacity(9 + block.len());
    let len = block.len() as u32;
    frame.put_slice(&len.to_be_bytes()[1..]);
    frame.put_u8(0x1); // HEADERS
    frame.put_u8(0x1 | 0x4); // END_STREAM | END_HEADERS
    frame.put_u32(1); // stream 1
    frame.put_slice(&block);
    Some(frame.freeze())
}

/// One HPACK "literal header field without indexing — new name" (RFC 7541 §6.2.2), with
/// plain (not Huffman) strings.
fn literal(out: &mut BytesMut, name: &[u8], value: &[u8]) {
    out.put_u8(0x00);
    string(out, name);
    string(out, value);
}

fn string(out: &mut BytesMut, s: &[u8]) {
    integer(out, s.len(), 7, 0x00);
    out.put_slice(s);
}

/// An HPACK integer with an `n`-bit prefix (RFC 7541 §5.1); `flags` fill the high bits.
fn integer(out: &mut BytesMut, mut v: usize, n: u32, flags: u8) {
    let max = (1usize << n) - 1;
    if v < max {
        out.put_u8(flags | v as u8);
        return;
    }
    out.put_u8(flags | max as u8);
    v -= max;
    while v >= 128 {
        out.put_u8((v % 128) as u8 | 0x80);
        v /= 128;
    }
    out.put_u8(v as u8);
}

/// Where the synthetic HEADERS frame goes in what the client sent after the 101: after the
/// preface and its first frame, which must be a SETTINGS frame (not an ACK). `Ok(None)`: read
/// more; `Err`: not an HTTP/2 start (the connection is closed).
pub fn splice_point(buf: &[u8]) -> Result<Option<usize>, &'static str> {
    match detect_preface(buf) {
        Preface::No => return Err("no HTTP/2 preface after the 101"),
        Preface::NeedMore => return Ok(None),
        Preface::Yes => {}
    }
    let rest = &buf[PREFACE.len()..];
    if rest.len() < 9 {
        return Ok(None);
    }
    let len = usize::from(rest[0]) << 16 | usize::from(rest[1]) << 8 | usize::from(rest[2]);
    let (kind, flags) = (rest[3], rest[4]);
    let stream = u32::from_be_bytes([rest[5], rest[6], rest[7], rest[8]]) & 0x7fff_ffff;
    if kind != 0x4 || flags & 0x1 != 0 || stream != 0 || len % 6 != 0 {
        return Err("the first frame after the preface is not SETTINGS");
    }
    if len > MAX_SETTINGS_LEN {
        return Err("first SETTINGS frame too large");
    }
    if rest.len() < 9 + len {
        return Ok(None);
    }
    Ok(Some(PREFACE.len() + 9 + len))
}

/// The bytes `h2` is to read: `buf` with `frame` put in at `at` (from [`splice_point`]).
pub fn splice(buf: &[u8], at: usize, frame: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(buf.len() + frame.len());
    out.put_slice(&buf[..at]);
    out.put_slice(frame);
    out.put_slice(&buf[at..]);
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::h1::parse::{parse_head, HeadLimits};

    fn head(raw: &str) -> RequestHead {
        let mut b = BytesMut::from(raw.as_bytes());
        parse_head(&mut b, &HeadLimits::default()).unwrap().unwrap()
    }

    const UP: &str = "GET /p?q=1 HTTP/1.1\r\nHost: a.example\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\nX-A: b\r\nCookie: c=1\r\n\r\n";

    #[test]
    fn preface() {
        assert_eq!(detect_preface(PREFACE), Preface::Yes);
        assert_eq!(detect_preface(b"PRI * HT"), Preface::NeedMore);
        assert_eq!(detect_preface(b""), Preface::NeedMore);
        assert_eq!(detect_preface(b"GET / HTTP/1.1\r\n"), Preface::No);
        assert_eq!(detect_preface(b"PRI * HTTP/2.0\r\n\r\nXX"), Preface::No);
    }

    #[test]
    fn upgrade_checks() {
        let h = head(UP);
        assert!(asks_h2c(&h));
        assert_eq!(check_upgrade(&h), Ok(()));
        let h = head(&UP.replace("Upgrade, HTTP2-Settings", "Upgrade"));
        assert!(check_upgrade(&h).is_err());
        let h = head(&UP.replace("AAMAAABkAARAAAAAAAIAAAAA", "AAMAAABkAARAAAAAAAIAAAA"));
        assert!(check_upgrade(&h).is_err(), "not whole settings");
        let h = head(&UP.replace("AAMAAABkAARAAAAAAAIAAAAA", "a+b/"));
        assert!(check_upgrade(&h).is_err(), "base64, not base64url");
        let two = UP.replace("X-A: b\r\n", "HTTP2-Settings: \r\n");
        assert!(check_upgrade(&head(&two)).is_err(), "two HTTP2-Settings");
        assert_eq!(
            check_upgrade(&head(&UP.replace("X-A: b", "Content-Length: 65537"))),
            Err("body too large to upgrade with")
        );
        assert_eq!(
            check_upgrade(&head(&UP.replace("X-A: b", "Content-Length: 5"))),
            Ok(())
        );
        assert!(!asks_h2c(&head(
            &UP.replace("Upgrade: h2c", "Upgrade: websocket")
        )));
        // An empty settings value is valid (no parameters).
        assert_eq!(
            check_upgrade(&head(&UP.replace("AAMAAABkAARAAAAAAAIAAAAA", ""))),
            Ok(())
        );
    }

    #[test]
    fn headers_frame_bytes() {
        let h = head(
            "POST /x?y HTTP/1.1\r\nHost: h\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: \r\nContent-Length: 3\r\nA: b\r\n\r\n",
        );
        let f = headers_frame(&h, 16_384).unwrap();
        let mut block = Vec::new();
        for (n, v) in [
            (&b":method"[..], &b"POST"[..]),
            (b":scheme", b"http"),
            (b":authority", b"h"),
            (b":path", b"/x?y"),
            (b"a", b"b"),
        ] {
            block.push(0u8);
            block.push(n.len() as u8);
            block.extend_from_slice(n);
            block.push(v.len() as u8);
            block.extend_from_slice(v);
        }
        let mut want = vec![0, 0, block.len() as u8, 1, 5, 0, 0, 0, 1];
        want.extend_from_slice(&block);
        assert_eq!(&f[..], &want[..]);
        assert!(headers_frame(&h, 20).is_none());
    }

    #[test]
    fn hpack_integers() {
        let mut b = BytesMut::new();
        integer(&mut b, 126, 7, 0);
        integer(&mut b, 127, 7, 0);
        integer(&mut b, 1337, 5, 0);
        assert_eq!(&b[..], &[126, 127, 0, 31, 154, 10]);
    }

    #[test]
    fn splice_after_first_settings() {
        let settings = [0u8, 0, 6, 4, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 100];
        let mut buf = PREFACE.to_vec();
        assert_eq!(splice_point(&buf), Ok(None));
        buf.extend_from_slice(&settings[..10]);
        assert_eq!(splice_point(&buf), Ok(None));
        buf.extend_from_slice(&settings[10..]);
        buf.extend_from_slice(b"NEXT");
        assert_eq!(splice_point(&buf), Ok(Some(24 + 15)));
        let out = splice(&buf, 39, b"HDRS");
        assert_eq!(&out[39..], b"HDRSNEXT");
        assert_eq!(&out[..39], &buf[..39]);
        let mut ack = PREFACE.to_vec();
        ack.extend_from_slice(&[0, 0, 0, 4, 1, 0, 0, 0, 0]);
        assert!(splice_point(&ack).is_err(), "a SETTINGS ACK first");
        let mut ping = PREFACE.to_vec();
        ping.extend_from_slice(&[0, 0, 8, 6, 0, 0, 0, 0, 0]);
        assert!(splice_point(&ping).is_err());
        assert!(splice_point(b"GET / HTTP/1.1\r\n").is_err());
    }
}
