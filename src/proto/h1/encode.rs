//! Response heads and chunk framing, written into a buffer. No I/O.

use bytes::{BufMut, BytesMut};
use pagi::Headers;
use std::cell::RefCell;
use std::time::{SystemTime, UNIX_EPOCH};

/// How the response body is framed on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// `Content-Length: n`; the number of bytes still to send.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// HTTP/1.0 without a length: the body ends when the connection closes.
    Close,
    /// No body may be sent (HEAD, 204, 304).
    None,
}

/// What the head needs besides the app's status and headers.
#[derive(Debug)]
pub struct HeadParts<'a> {
    /// Status code.
    pub status: u16,
    /// The app's headers (`transfer-encoding`, `content-length` and `connection` are skipped).
    pub headers: &'a Headers,
    /// The `content-length` to write, if any.
    pub content_length: Option<u64>,
    /// Whether to write `transfer-encoding: chunked`.
    pub chunked: bool,
    /// `Some(false)`: write `connection: close`; `Some(true)`: write `connection: keep-alive`
    /// (HTTP/1.0); `None`: nothing.
    pub connection: Option<bool>,
    /// Whether to add `date` (the app gave none).
    pub add_date: bool,
    /// The `server` value to add (when the app gave none).
    pub server: Option<&'a [u8]>,
}

/// Writes a response head.
pub fn encode_head(out: &mut BytesMut, p: &HeadParts<'_>) {
    let mut size = 64;
    for (n, v) in p.headers {
        size += n.len() + v.len() + 4;
    }
    out.reserve(size);
    out.put_slice(b"HTTP/1.1 ");
    out.put_slice(itoa::Buffer::new().format(p.status).as_bytes());
    out.put_u8(b' ');
    out.put_slice(reason(p.status).as_bytes());
    out.put_slice(b"\r\n");
    for (n, v) in p.headers {
        if n.eq_ignore_ascii_case(b"transfer-encoding")
            || n.eq_ignore_ascii_case(b"content-length")
            || n.eq_ignore_ascii_case(b"connection")
        {
            continue;
        }
        out.put_slice(n);
        out.put_slice(b": ");
        out.put_slice(v);
        out.put_slice(b"\r\n");
    }
    if let Some(len) = p.content_length {
        out.put_slice(b"content-length: ");
        out.put_slice(itoa::Buffer::new().format(len).as_bytes());
        out.put_slice(b"\r\n");
    }
    if p.chunked {
        out.put_slice(b"transfer-encoding: chunked\r\n");
    }
    match p.connection {
        Some(false) => out.put_slice(b"connection: close\r\n"),
        Some(true) => out.put_slice(b"connection: keep-alive\r\n"),
        None => {}
    }
    if let Some(server) = p.server {
        out.put_slice(b"server: ");
        out.put_slice(server);
        out.put_slice(b"\r\n");
    }
    if p.add_date {
        out.put_slice(b"date: ");
        with_date(|d| out.put_slice(d));
        out.put_slice(b"\r\n");
    }
    out.put_slice(b"\r\n");
}

/// Writes an informational (1xx) response: the status line and `headers` as given, nothing
/// added (no `date`, `server` or framing). The caller has checked the fields.
pub fn encode_informational(out: &mut BytesMut, status: u16, headers: &Headers) {
    let mut size = 32;
    for (n, v) in headers {
        size += n.len() + v.len() + 4;
    }
    out.reserve(size);
    out.put_slice(b"HTTP/1.1 ");
    out.put_slice(itoa::Buffer::new().format(status).as_bytes());
    out.put_u8(b' ');
    out.put_slice(reason(status).as_bytes());
    out.put_slice(b"\r\n");
    for (n, v) in headers {
        out.put_slice(n);
        out.put_slice(b": ");
        out.put_slice(v);
        out.put_slice(b"\r\n");
    }
    out.put_slice(b"\r\n");
}

/// Writes the line that starts a chunk of `len` bytes.
pub fn chunk_head(out: &mut BytesMut, len: usize) {
    let mut hex = [0u8; 18];
    let mut i = hex.len() - 2;
    hex[i] = b'\r';
    hex[i + 1] = b'\n';
    let mut n = len;
    loop {
        i -= 1;
        hex[i] = b"0123456789abcdef"[n & 15];
        n >>= 4;
        if n == 0 {
            break;
        }
    }
    out.put_slice(&hex[i..]);
}

/// Writes trailer fields and the end of the chunked body (after `0\r\n`).
pub fn trailers(out: &mut BytesMut, headers: &Headers) {
    for (n, v) in headers {
        out.put_slice(n);
        out.put_slice(b": ");
        out.put_slice(v);
        out.put_slice(b"\r\n");
    }
    out.put_slice(b"\r\n");
}

/// The reason phrase of a status code.
pub fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        103 => "Early Hints",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        203 => "Non-Authoritative Information",
        204 => "No Content",
        205 => "Reset Content",
        206 => "Partial Content",
        207 => "Multi-Status",
        300 => "Multiple Choices",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        411 => "Length Required",
        412 => "Precondition Failed",
        413 => "Content Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        416 => "Range Not Satisfiable",
        417 => "Expectation Failed",
        421 => "Misdirected Request",
        422 => "Unprocessable Content",
        425 => "Too Early",
        426 => "Upgrade Required",
        428 => "Precondition Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        451 => "Unavailable For Legal Reasons",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        507 => "Insufficient Storage",
        511 => "Network Authentication Required",
        _ => "Unknown",
    }
}

thread_local! {
    static DATE: RefCell<(u64, [u8; 29])> = const { RefCell::new((u64::MAX, [0; 29])) };
}

/// Calls `f` with the current IMF-fixdate (`Mon, 23 Nov 2026 09:00:00 GMT`), formatted at most
/// once a second per thread.
pub fn with_date<R>(f: impl FnOnce(&[u8]) -> R) -> R {
    let now = SystemTime::now();
    let secs = now
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    DATE.with(|cell| {
        let mut c = cell.borrow_mut();
        if c.0 != secs {
            let s = httpdate::fmt_http_date(now);
            if s.len() == 29 {
                c.1.copy_from_slice(s.as_bytes());
            }
            c.0 = secs;
        }
        f(&c.1)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_bytes() {
        let h = Headers::new()
            .with("Content-Type", "text/plain")
            .with("Transfer-Encoding", "gzip")
            .with("content-length", "999")
            .with("Connection", "upgrade")
            .with("date", "Thu, 01 Jan 1970 00:00:00 GMT");
        let mut out = BytesMut::new();
        encode_head(
            &mut out,
            &HeadParts {
                status: 201,
                headers: &h,
                content_length: Some(5),
                chunked: false,
                connection: Some(false),
                add_date: false,
                server: Some(b"pagi-server"),
            },
        );
        assert_eq!(
            &out[..],
            &b"HTTP/1.1 201 Created\r\nContent-Type: text/plain\r\ndate: Thu, 01 Jan 1970 00:00:00 GMT\r\n\
               content-length: 5\r\nconnection: close\r\nserver: pagi-server\r\n\r\n"[..]
        );
    }

    #[test]
    fn informational_bytes() {
        let h = Headers::new()
            .with("Link", "</style.css>; rel=preload; as=style")
            .with("link", "</app.js>; rel=preload; as=script");
        let mut out = BytesMut::new();
        encode_informational(&mut out, 103, &h);
        assert_eq!(
            &out[..],
            &b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload; as=style\r\n\
               link: </app.js>; rel=preload; as=script\r\n\r\n"[..]
        );
        out.clear();
        encode_informational(&mut out, 103, &Headers::new());
        assert_eq!(&out[..], b"HTTP/1.1 103 Early Hints\r\n\r\n");
    }

    #[test]
    fn chunk_heads() {
        for (len, want) in [
            (0usize, &b"0\r\n"[..]),
            (10, b"a\r\n"),
            (4096, b"1000\r\n"),
            (usize::MAX, b"ffffffffffffffff\r\n"),
        ] {
            let mut out = BytesMut::new();
            chunk_head(&mut out, len);
            assert_eq!(&out[..], want);
        }
    }

    #[test]
    fn date_is_imf_fixdate() {
        let d = with_date(|d| String::from_utf8(d.to_vec()).unwrap());
        assert_eq!(d.len(), 29);
        assert!(d.ends_with(" GMT"));
        assert!(httpdate::parse_http_date(&d).is_ok());
    }
}
