//! The one place where protocol errors become status codes.
//!
//! Everything the HTTP/1.1 engine refuses is a [`Reject`]; [`Reject::status`] maps it to the
//! status code and [`Reject::response`] to the bytes written before the connection is closed.
//! A reject is only written while no response has started on the connection; afterwards the
//! connection is just closed.
//!
//! On HTTP/2 the same rejects apply per stream: [`Reject::status`] and [`Reject::body`] make the
//! stream's response while none has started, and [`Reject::h2_reason`] is the RST_STREAM code
//! once one has (faults of the framing itself are the `h2` crate's, which resets the stream
//! or the connection as RFC 9113 says).

use std::fmt;

/// Why a request was refused before it reached the app.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reject {
    /// Malformed request line, header, framing or body (400).
    BadRequest(&'static str),
    /// The request line is longer than the limit (414).
    UriTooLong,
    /// The header section is over the size limit, or one field is (431).
    HeadersTooLarge,
    /// More header fields than the limit (431).
    TooManyHeaders,
    /// The body is over `max_body_size` (413).
    BodyTooLarge,
    /// The header section did not arrive in time (408).
    Timeout,
    /// A transfer coding other than `chunked`, or an HTTP/2 extended CONNECT (RFC 8441) for a
    /// protocol other than `websocket` (501).
    NotImplemented,
    /// An HTTP version other than 1.0 and 1.1 (505).
    VersionNotSupported,
    /// An `Expect` other than `100-continue` (417).
    ExpectationFailed,
    /// Too many connections (503, with `Retry-After`).
    Unavailable,
    /// A WebSocket handshake for a version other than 13 (426, with
    /// `Sec-WebSocket-Version: 13`).
    WebsocketVersion,
    /// The app failed before it started a response (500).
    AppError,
}

impl Reject {
    /// The status code for this reject.
    pub fn status(self) -> u16 {
        match self {
            Reject::BadRequest(_) => 400,
            Reject::UriTooLong => 414,
            Reject::HeadersTooLarge | Reject::TooManyHeaders => 431,
            Reject::BodyTooLarge => 413,
            Reject::Timeout => 408,
            Reject::NotImplemented => 501,
            Reject::VersionNotSupported => 505,
            Reject::ExpectationFailed => 417,
            Reject::Unavailable => 503,
            Reject::WebsocketVersion => 426,
            Reject::AppError => 500,
        }
    }

    /// The short `text/plain` body of the refusal: the reason phrase and a newline.
    pub fn body(self) -> String {
        format!("{}\n", crate::proto::h1::encode::reason(self.status()))
    }

    /// The status of this reject on an HTTP/2 stream. The same as [`Reject::status`], except
    /// that a WebSocket version refusal is a 400 there: a 426 must carry an `Upgrade` field
    /// (RFC 9110 §15.5.22), which HTTP/2 forbids, and RFC 6455 §4.4 answers an unsupported
    /// version with a 400 and `Sec-WebSocket-Version` itself.
    pub fn h2_status(self) -> u16 {
        match self {
            Reject::WebsocketVersion => 400,
            other => other.status(),
        }
    }

    /// The body of this reject on an HTTP/2 stream (the reason phrase of [`Reject::h2_status`]).
    pub fn h2_body(self) -> String {
        format!("{}\n", crate::proto::h1::encode::reason(self.h2_status()))
    }

    /// The header field the refusal carries besides its content type and length, if any.
    pub fn extra_field(self) -> Option<(&'static str, &'static str)> {
        match self {
            Reject::Unavailable => Some(("retry-after", "5")),
            Reject::WebsocketVersion => Some(("sec-websocket-version", "13")),
            _ => None,
        }
    }

    /// The HTTP/2 RST_STREAM code that ends a stream refused after its response started.
    pub fn h2_reason(self) -> h2::Reason {
        match self {
            Reject::BadRequest(_) => h2::Reason::PROTOCOL_ERROR,
            Reject::BodyTooLarge | Reject::Timeout => h2::Reason::CANCEL,
            Reject::Unavailable => h2::Reason::REFUSED_STREAM,
            _ => h2::Reason::INTERNAL_ERROR,
        }
    }

    /// The full response (head and a short text body), always with `Connection: close`.
    pub fn response(self, date: &[u8]) -> Vec<u8> {
        let status = self.status();
        let reason = crate::proto::h1::encode::reason(status);
        let body = reason;
        let mut out = Vec::with_capacity(160);
        out.extend_from_slice(b"HTTP/1.1 ");
        out.extend_from_slice(itoa::Buffer::new().format(status).as_bytes());
        out.push(b' ');
        out.extend_from_slice(reason.as_bytes());
        out.extend_from_slice(b"\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: ");
        out.extend_from_slice(itoa::Buffer::new().format(body.len() + 1).as_bytes());
        out.extend_from_slice(b"\r\nconnection: close\r\n");
        if let Some((name, value)) = self.extra_field() {
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"date: ");
        out.extend_from_slice(date);
        out.extend_from_slice(b"\r\n\r\n");
        out.extend_from_slice(body.as_bytes());
        out.push(b'\n');
        out
    }
}

impl fmt::Display for Reject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reject::BadRequest(why) => write!(f, "400 bad request: {why}"),
            other => write!(
                f,
                "{} {}",
                other.status(),
                crate::proto::h1::encode::reason(other.status()).to_ascii_lowercase()
            ),
        }
    }
}

/// Errors of starting or running the server (bad configuration, binding failures, lifespan).
#[derive(Debug)]
pub struct Error {
    msg: String,
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl Error {
    pub(crate) fn new(msg: impl Into<String>) -> Self {
        Error {
            msg: msg.into(),
            source: None,
        }
    }

    pub(crate) fn with(
        msg: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Error {
            msg: msg.into(),
            source: Some(Box::new(source)),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.source {
            Some(s) => write!(f, "{}: {}", self.msg, s),
            None => f.write_str(&self.msg),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses() {
        assert_eq!(Reject::BadRequest("x").status(), 400);
        assert_eq!(Reject::UriTooLong.status(), 414);
        assert_eq!(Reject::TooManyHeaders.status(), 431);
        assert_eq!(Reject::HeadersTooLarge.status(), 431);
        assert_eq!(Reject::BodyTooLarge.status(), 413);
        assert_eq!(Reject::Timeout.status(), 408);
        assert_eq!(Reject::NotImplemented.status(), 501);
        assert_eq!(Reject::Unavailable.status(), 503);
        assert_eq!(Reject::WebsocketVersion.status(), 426);
        assert_eq!(Reject::BodyTooLarge.body(), "Content Too Large\n");
        assert_eq!(Reject::AppError.h2_reason(), h2::Reason::INTERNAL_ERROR);
        assert_eq!(Reject::BodyTooLarge.h2_reason(), h2::Reason::CANCEL);
        assert_eq!(Reject::WebsocketVersion.h2_status(), 400);
        assert_eq!(Reject::WebsocketVersion.h2_body(), "Bad Request\n");
        assert_eq!(Reject::NotImplemented.h2_status(), 501);
    }

    #[test]
    fn canned_response_bytes() {
        let r = Reject::Unavailable.response(b"Mon, 23 Nov 2026 09:00:00 GMT");
        assert_eq!(
            String::from_utf8(r).unwrap(),
            "HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain; charset=utf-8\r\n\
             content-length: 20\r\nconnection: close\r\nretry-after: 5\r\n\
             date: Mon, 23 Nov 2026 09:00:00 GMT\r\n\r\nService Unavailable\n"
        );
    }
}
