//! The opening handshake (RFC 6455 §4.2): checking an upgrade request and writing the answer.
//! No I/O: request head in, bytes out.

use base64::Engine;
use bytes::{BufMut, BytesMut};
use pagi::{Headers, HttpVersion};
use sha1::{Digest, Sha1};

use crate::error::Reject;
use crate::proto::h1::parse::{trim, BodyFraming, RequestHead};

/// The GUID of RFC 6455 §1.3.
const GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// What a valid upgrade request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Request {
    /// The `Sec-WebSocket-Accept` value to answer with.
    pub(crate) accept: String,
    /// Offered subprotocols, in order.
    pub(crate) subprotocols: Vec<String>,
}

/// Whether the request asks for a WebSocket (an `Upgrade` field listing `websocket`). Such a
/// request is a WebSocket handshake, valid or not; anything else is plain HTTP.
pub(crate) fn is_websocket(headers: &Headers) -> bool {
    headers
        .get_all("upgrade")
        .any(|v| tokens(v).any(|t| t.eq_ignore_ascii_case(b"websocket")))
}

/// Checks a WebSocket upgrade request (one for which [`is_websocket`] holds).
/// A refusal is a 400, or a 426 for a version other than 13.
pub(crate) fn check(head: &RequestHead) -> Result<Request, Reject> {
    if head.method != "GET" {
        return Err(Reject::BadRequest("method is not GET"));
    }
    if head.version != HttpVersion::Http11 {
        return Err(Reject::BadRequest("not HTTP/1.1"));
    }
    if head.framing != BodyFraming::Empty {
        return Err(Reject::BadRequest("upgrade request with a body"));
    }
    let h = &head.headers;
    if !h
        .get_all("connection")
        .any(|v| tokens(v).any(|t| t.eq_ignore_ascii_case(b"upgrade")))
    {
        return Err(Reject::BadRequest("connection does not list upgrade"));
    }
    check_version(h)?;
    let mut keys = h.get_all("sec-websocket-key");
    let key = match (keys.next(), keys.next()) {
        (Some(k), None) => trim(k),
        (None, _) => return Err(Reject::BadRequest("missing sec-websocket-key")),
        _ => return Err(Reject::BadRequest("more than one sec-websocket-key")),
    };
    match base64::engine::general_purpose::STANDARD.decode(key) {
        Ok(raw) if raw.len() == 16 => {}
        _ => {
            return Err(Reject::BadRequest(
                "sec-websocket-key is not 16 bytes in base64",
            ))
        }
    }
    Ok(Request {
        accept: accept_key(key),
        subprotocols: subprotocols(h)?,
    })
}

/// Checks an HTTP/2 extended CONNECT (RFC 8441 §4, §5) whose `:protocol` is `protocol`: the
/// fields of the HTTP/1.1 handshake that still apply (`Sec-WebSocket-Version` and
/// `Sec-WebSocket-Protocol`, with the same answers). `Sec-WebSocket-Key` is not used over
/// HTTP/2 (there is no `Sec-WebSocket-Accept` to compute), so the request's `accept` is empty.
/// `:scheme` and `:path` were required by `h2` already. A `:protocol` other than `websocket`
/// is a 501: the server does not implement that protocol.
pub(crate) fn check_h2(protocol: &str, h: &Headers) -> Result<Request, Reject> {
    if protocol != "websocket" {
        return Err(Reject::NotImplemented);
    }
    check_version(h)?;
    Ok(Request {
        accept: String::new(),
        subprotocols: subprotocols(h)?,
    })
}

/// Exactly one `Sec-WebSocket-Version`, `13`; none is a 400, anything else a version refusal.
fn check_version(h: &Headers) -> Result<(), Reject> {
    let mut versions = h.get_all("sec-websocket-version");
    match (versions.next(), versions.next()) {
        (Some(v), None) if trim(v) == b"13" => Ok(()),
        (None, _) => Err(Reject::BadRequest("missing sec-websocket-version")),
        _ => Err(Reject::WebsocketVersion),
    }
}

/// The offered subprotocols: every `Sec-WebSocket-Protocol` item, each an RFC 9110 token.
fn subprotocols(h: &Headers) -> Result<Vec<String>, Reject> {
    let mut out = Vec::new();
    for v in h.get_all("sec-websocket-protocol") {
        for t in tokens(v) {
            match std::str::from_utf8(t) {
                Ok(s) if pagi::headers::is_token(t) => out.push(s.to_owned()),
                _ => return Err(Reject::BadRequest("malformed sec-websocket-protocol")),
            }
        }
    }
    Ok(out)
}

/// `Sec-WebSocket-Accept` for a key: base64(SHA-1(key + GUID)).
pub(crate) fn accept_key(key: &[u8]) -> String {
    let mut sha = Sha1::new();
    sha.update(key);
    sha.update(GUID);
    base64::engine::general_purpose::STANDARD.encode(sha.finalize())
}

/// Header names the server owns in a 101 answer; the app's values for them are dropped.
pub(crate) const OWNED: [&str; 7] = [
    "upgrade",
    "connection",
    "transfer-encoding",
    "sec-websocket-accept",
    "sec-websocket-protocol",
    "sec-websocket-extensions",
    "content-length",
];

/// Encodes the 101 answer. `headers` are the app's extra fields (already checked).
pub(crate) fn encode_101(
    out: &mut BytesMut,
    accept: &str,
    subprotocol: Option<&str>,
    extensions: Option<&str>,
    headers: &Headers,
    server: Option<&[u8]>,
) {
    out.put_slice(b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\nsec-websocket-accept: ");
    out.put_slice(accept.as_bytes());
    out.put_slice(b"\r\n");
    if let Some(p) = subprotocol {
        put_field(out, b"sec-websocket-protocol", p.as_bytes());
    }
    if let Some(e) = extensions {
        put_field(out, b"sec-websocket-extensions", e.as_bytes());
    }
    let mut has_server = false;
    for (n, v) in headers {
        if OWNED.iter().any(|o| n.eq_ignore_ascii_case(o.as_bytes())) {
            continue;
        }
        has_server |= n.eq_ignore_ascii_case(b"server");
        put_field(out, n, v);
    }
    if let (false, Some(s)) = (has_server, server) {
        put_field(out, b"server", s);
    }
    out.put_slice(b"\r\n");
}

fn put_field(out: &mut BytesMut, name: &[u8], value: &[u8]) {
    out.put_slice(name);
    out.put_slice(b": ");
    out.put_slice(value);
    out.put_slice(b"\r\n");
}

/// The comma-separated, trimmed, non-empty items of a field value.
fn tokens(v: &[u8]) -> impl Iterator<Item = &[u8]> {
    v.split(|&b| b == b',').map(trim).filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::h1::parse::{parse_head, HeadLimits};

    fn head(raw: &str) -> RequestHead {
        let mut b = BytesMut::from(raw.as_bytes());
        parse_head(&mut b, &HeadLimits::default())
            .expect("parses")
            .expect("complete")
    }

    const OK: &str = "GET /chat HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n\
                      Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
                      Sec-WebSocket-Protocol: chat, superchat\r\nSec-WebSocket-Protocol: v2\r\n\r\n";

    #[test]
    fn rfc_example_accept_key() {
        // RFC 6455 §1.3.
        assert_eq!(
            accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn valid_request() {
        let h = head(OK);
        assert!(is_websocket(&h.headers));
        let r = check(&h).unwrap();
        assert_eq!(r.accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
        assert_eq!(r.subprotocols, ["chat", "superchat", "v2"]);
    }

    #[test]
    fn refusals() {
        let cases: &[(&str, &str, Reject)] = &[
            (
                "GET /chat",
                "POST /chat",
                Reject::BadRequest("method is not GET"),
            ),
            (
                "Connection: keep-alive, Upgrade",
                "Connection: keep-alive",
                Reject::BadRequest("connection does not list upgrade"),
            ),
            (
                "Sec-WebSocket-Version: 13",
                "Sec-WebSocket-Version: 8",
                Reject::WebsocketVersion,
            ),
            (
                "Sec-WebSocket-Version: 13\r\n",
                "",
                Reject::BadRequest("missing sec-websocket-version"),
            ),
            (
                "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n",
                "",
                Reject::BadRequest("missing sec-websocket-key"),
            ),
            (
                "dGhlIHNhbXBsZSBub25jZQ==",
                "dGhlIHNhbXBsZQ==",
                Reject::BadRequest("sec-websocket-key is not 16 bytes in base64"),
            ),
            (
                "dGhlIHNhbXBsZSBub25jZQ==",
                "not base64!!",
                Reject::BadRequest("sec-websocket-key is not 16 bytes in base64"),
            ),
            (
                "Host: x\r\n",
                "Host: x\r\nContent-Length: 3\r\n",
                Reject::BadRequest("upgrade request with a body"),
            ),
            (
                "superchat",
                "super chat",
                Reject::BadRequest("malformed sec-websocket-protocol"),
            ),
        ];
        for (from, to, want) in cases {
            let raw = OK.replacen(from, to, 1);
            assert_ne!(raw, OK, "{from}");
            let h = head(&raw);
            assert_eq!(check(&h), Err(*want), "{raw}");
        }
        let h = head(&OK.replacen("HTTP/1.1", "HTTP/1.0", 1));
        assert_eq!(check(&h), Err(Reject::BadRequest("not HTTP/1.1")));
    }

    #[test]
    fn version_refusal_says_13() {
        let r = Reject::WebsocketVersion.response(b"Thu, 01 Jan 1970 00:00:00 GMT");
        let s = String::from_utf8(r).unwrap();
        assert!(s.starts_with("HTTP/1.1 426 Upgrade Required\r\n"));
        assert!(s.contains("\r\nsec-websocket-version: 13\r\n"));
        assert!(s.ends_with("\r\n\r\nUpgrade Required\n"));
    }

    #[test]
    fn answer_bytes() {
        let mut out = BytesMut::new();
        let app = Headers::new()
            .with("x-a", "1")
            .with("Connection", "close")
            .with("Sec-WebSocket-Protocol", "evil");
        encode_101(
            &mut out,
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=",
            Some("chat"),
            Some("permessage-deflate"),
            &app,
            Some(b"pagi-server"),
        );
        assert_eq!(
            &out[..],
            &b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\n\
               sec-websocket-accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\nsec-websocket-protocol: chat\r\n\
               sec-websocket-extensions: permessage-deflate\r\nx-a: 1\r\nserver: pagi-server\r\n\r\n"[..]
        );
    }

    #[test]
    fn h2_extended_connect() {
        let h = Headers::new()
            .with("sec-websocket-version", "13")
            .with("sec-websocket-protocol", "chat, v2");
        let r = check_h2("websocket", &h).unwrap();
        assert_eq!(r.subprotocols, ["chat", "v2"]);
        assert!(r.accept.is_empty());
        assert_eq!(check_h2("webtransport", &h), Err(Reject::NotImplemented));
        assert_eq!(
            check_h2("websocket", &Headers::new()),
            Err(Reject::BadRequest("missing sec-websocket-version"))
        );
        let h = Headers::new().with("sec-websocket-version", "8");
        assert_eq!(check_h2("websocket", &h), Err(Reject::WebsocketVersion));
        let h = Headers::new()
            .with("sec-websocket-version", "13")
            .with("sec-websocket-protocol", "a b");
        assert_eq!(
            check_h2("websocket", &h),
            Err(Reject::BadRequest("malformed sec-websocket-protocol"))
        );
    }

    #[test]
    fn upgrade_token_detection() {
        let h = head("GET / HTTP/1.1\r\nHost: x\r\nUpgrade: h2c, WebSocket\r\n\r\n");
        assert!(is_websocket(&h.headers));
        let h = head("GET / HTTP/1.1\r\nHost: x\r\nUpgrade: h2c\r\n\r\n");
        assert!(!is_websocket(&h.headers));
    }
}
