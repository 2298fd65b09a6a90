//! Server-sent events: the `sse` scope's events mapped onto the request's response (a
//! streamed `text/event-stream` body), and the event-stream wire format. The mapping is
//! written once against [`SseTarget`], which the HTTP/1.x request state and the HTTP/2 stream
//! state both implement, so SSE behaves the same on both.
//!
//! `sse.start` writes the head at once (on HTTP/1.1 chunked, on 1.0 close-delimited, on HTTP/2
//! DATA frames); each `sse.send`/`sse.comment` becomes one body piece; `sse.close` ends the
//! body. The decline path (`sse.http.response.*`) is a plain HTTP response (on HTTP/1.x the
//! connection then closes). Whichever kind of send comes first wins; mixing them fails.

use super::target::HttpTarget;
use bytes::{BufMut, Bytes, BytesMut};
use pagi::{DisconnectReason, Error, Headers, ReceiveEvent, ResponseBody, SendEvent};
use std::pin::Pin;
use std::task::Context;
use std::time::Duration;
use tokio::time::{Instant, Sleep};

/// What the app has done with the stream so far.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SseKind {
    /// Nothing sent yet.
    #[default]
    None,
    /// `sse.start` sent.
    Stream,
    /// `sse.http.response.start` sent (declined).
    Declined,
}

/// The SSE part of a request's state.
#[derive(Debug, Default)]
pub(crate) struct SseState {
    pub(crate) kind: SseKind,
    /// `sse.close` was sent (or the app declined and finished).
    pub(crate) closed: bool,
    /// `sse.keepalive`: how long the stream may stay quiet, and the comment line to send then.
    pub(crate) keepalive: Option<(Duration, Bytes)>,
    /// When the stream last carried bytes.
    pub(crate) last_write: Option<Instant>,
    /// The server ended the stream because it is shutting down.
    pub(crate) shutdown: bool,
}

impl SseState {
    /// When the next keepalive comment is due, if any.
    pub(crate) fn keepalive_due(&self) -> Option<Instant> {
        if self.kind != SseKind::Stream || self.closed {
            return None;
        }
        let (every, _) = self.keepalive.as_ref()?;
        Some(self.last_write? + *every)
    }
}

/// A request state that can carry an event stream: what the SSE mapping needs of it. The
/// provided methods are the mapping itself.
pub(crate) trait SseTarget: HttpTarget {
    /// The SSE state (`None`: not an `sse` scope).
    fn sse_mut(&mut self) -> Option<&mut SseState>;
    /// The connection is not to be reused after this response (HTTP/1.x; no-op on HTTP/2).
    fn no_keep_alive(&mut self);

    /// `send` for an `sse` scope.
    fn accept_sse(&mut self, event: SendEvent) -> Result<(), Error> {
        let Some(sse) = self.sse_mut() else {
            return Err(Error::unsupported("not an sse scope"));
        };
        if sse.closed {
            if sse.shutdown || matches!(event, SendEvent::SseClose { .. }) {
                return Ok(()); // like a send after a disconnect: a no-op
            }
            return Err(Error::out_of_order("the sse stream is closed"));
        }
        match event {
            SendEvent::SseStart { status, headers } => {
                if sse.kind != SseKind::None {
                    return Err(Error::out_of_order(
                        "sse.start after the response has started",
                    ));
                }
                let headers = stream_headers(headers);
                self.start_response(status, headers, false)?;
                if let Some(sse) = self.sse_mut() {
                    sse.kind = SseKind::Stream;
                    sse.last_write = Some(Instant::now());
                }
                self.encode_pending_head(None);
                Ok(())
            }
            SendEvent::SseSend {
                event,
                data,
                id,
                retry,
            } => {
                let bytes = encode_event(event.as_deref(), &data, id.as_deref(), retry)?;
                self.stream_piece(bytes)
            }
            SendEvent::SseComment { comment } => self.stream_piece(encode_comment(&comment)),
            SendEvent::SseKeepalive { interval, comment } => {
                if sse.kind == SseKind::Declined {
                    return Err(Error::out_of_order("sse.keepalive on a declined stream"));
                }
                sse.keepalive = if interval.is_zero() {
                    None
                } else {
                    let c = encode_comment(comment.as_deref().unwrap_or(""));
                    Some((interval, c))
                };
                Ok(())
            }
            SendEvent::SseClose { reason } => {
                sse.closed = true;
                if !reason.is_empty() {
                    tracing::debug!(%reason, "sse stream closed by the app");
                }
                if sse.kind == SseKind::None || self.response_done() {
                    return Ok(());
                }
                // Ends the stream (or completes a declined response).
                self.response_body(ResponseBody::default())
            }
            SendEvent::SseHttpResponseStart { status, headers } => {
                if sse.kind != SseKind::None {
                    return Err(Error::out_of_order(
                        "sse.http.response.start after the response has started",
                    ));
                }
                self.start_response(status, headers, false)?;
                self.no_keep_alive();
                if let Some(sse) = self.sse_mut() {
                    sse.kind = SseKind::Declined;
                }
                Ok(())
            }
            SendEvent::SseHttpResponseBody(body) => {
                if sse.kind != SseKind::Declined {
                    return Err(Error::out_of_order(
                        "sse.http.response.body needs sse.http.response.start first",
                    ));
                }
                self.response_body(body)
            }
            other => Err(Error::unsupported(format!(
                "{} is not an sse event",
                other.kind()
            ))),
        }
    }

    /// One piece of the event stream.
    fn stream_piece(&mut self, bytes: Bytes) -> Result<(), Error> {
        let Some(sse) = self.sse_mut() else {
            return Err(Error::unsupported("not an sse scope"));
        };
        if sse.kind != SseKind::Stream {
            return Err(Error::out_of_order("sse.send before sse.start"));
        }
        sse.last_write = Some(Instant::now());
        let mut piece = ResponseBody::default();
        piece.bytes = bytes;
        piece.more = true;
        self.response_body(piece)
    }

    /// Ends a stream the app left open: when the app returns (that is the same as `sse.close`)
    /// or the server shuts down (`shutdown`: the app's `receive` then says `server_shutdown`).
    fn sse_end(&mut self, shutdown: bool) {
        let Some(sse) = self.sse_mut() else {
            return;
        };
        if sse.kind != SseKind::Stream || sse.closed {
            return;
        }
        sse.shutdown = shutdown;
        let _ = self.accept_sse(SendEvent::SseClose {
            reason: String::new(),
        });
        if shutdown {
            self.no_keep_alive();
        }
    }

    /// Writes the keepalive comment if it is due at `now`. Returns whether it wrote.
    fn sse_keepalive(&mut self, now: Instant) -> bool {
        let Some(sse) = self.sse_mut() else {
            return false;
        };
        let Some(due) = sse.keepalive_due() else {
            return false;
        };
        if now < due {
            return false;
        }
        let comment = sse.keepalive.as_ref().map(|k| k.1.clone());
        match comment {
            Some(c) => self.stream_piece(c).is_ok(),
            None => false,
        }
    }
}

/// Writes the keepalive comment when the stream has been quiet for its interval, and keeps
/// the timer armed for the next one.
pub(crate) fn poll_sse_keepalive<T: SseTarget>(
    cx: &mut Context<'_>,
    st: &mut T,
    timer: &mut Option<Pin<Box<Sleep>>>,
) {
    use std::future::Future;
    loop {
        let Some(due) = st.sse_mut().and_then(|s| s.keepalive_due()) else {
            return;
        };
        let t = timer.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(due)));
        if t.deadline() != due {
            t.as_mut().reset(due);
        }
        if t.as_mut().poll(cx).is_pending() {
            return;
        }
        if !st.sse_keepalive(Instant::now()) {
            return;
        }
    }
}

/// `receive` of an `sse` scope: the http events under their sse names. `disconnected`: why
/// the client went away, if it did; `sse`: the stream's state.
pub(crate) fn sse_receive_event(
    ev: ReceiveEvent,
    disconnected: Option<&DisconnectReason>,
    sse: Option<&SseState>,
) -> ReceiveEvent {
    match ev {
        ReceiveEvent::HttpRequest { body, more } => ReceiveEvent::SseRequest { body, more },
        _ => ReceiveEvent::SseDisconnect {
            reason: match (disconnected, sse) {
                (Some(r), _) => r.clone(),
                (None, Some(sse)) if sse.shutdown => DisconnectReason::ServerShutdown,
                _ => DisconnectReason::Custom("x-closed".into()),
            },
        },
    }
}

/// The app's headers plus the ones every event stream needs, unless the app set them.
fn stream_headers(mut headers: Headers) -> Headers {
    if !headers.contains("content-type") {
        headers.push("content-type", "text/event-stream");
    }
    if !headers.contains("cache-control") {
        headers.push("cache-control", "no-cache");
    }
    if !headers.contains("x-accel-buffering") {
        // nginx would otherwise buffer the stream when it proxies it.
        headers.push("x-accel-buffering", "no");
    }
    headers
}

/// Encodes one event: optional `event:`, `id:` and `retry:` lines, one `data:` line per line of
/// `data` (split at CRLF, CR or LF), and the blank line that dispatches it.
pub(crate) fn encode_event(
    event: Option<&str>,
    data: &str,
    id: Option<&str>,
    retry: Option<u64>,
) -> Result<Bytes, Error> {
    let has_newline = |s: &str| s.bytes().any(|b| b == b'\r' || b == b'\n');
    if event.is_some_and(has_newline) {
        return Err(Error::invalid("sse.send event contains CR or LF"));
    }
    if id.is_some_and(|s| has_newline(s) || s.contains('\0')) {
        return Err(Error::invalid("sse.send id contains CR, LF or NUL"));
    }
    let mut out = BytesMut::with_capacity(data.len() + 16);
    if let Some(e) = event {
        field(&mut out, b"event: ", e.as_bytes());
    }
    if let Some(i) = id {
        field(&mut out, b"id: ", i.as_bytes());
    }
    if let Some(r) = retry {
        field(
            &mut out,
            b"retry: ",
            itoa::Buffer::new().format(r).as_bytes(),
        );
    }
    for line in lines(data) {
        field(&mut out, b"data: ", line.as_bytes());
    }
    out.put_u8(b'\n');
    Ok(out.freeze())
}

/// Encodes a comment: every line starts with `:` (one is added where missing).
pub(crate) fn encode_comment(comment: &str) -> Bytes {
    let mut out = BytesMut::with_capacity(comment.len() + 2);
    for line in lines(comment) {
        if !line.starts_with(':') {
            out.put_u8(b':');
        }
        out.put_slice(line.as_bytes());
        out.put_u8(b'\n');
    }
    out.freeze()
}

fn field(out: &mut BytesMut, name: &[u8], value: &[u8]) {
    out.put_slice(name);
    out.put_slice(value);
    out.put_u8(b'\n');
}

/// Splits at CRLF, CR or LF; always yields at least one (possibly empty) line.
fn lines(s: &str) -> impl Iterator<Item = &str> {
    let mut rest = Some(s);
    std::iter::from_fn(move || {
        let r = rest?;
        match r.find(['\r', '\n']) {
            Some(i) => {
                let skip = if r[i..].starts_with("\r\n") { 2 } else { 1 };
                rest = Some(&r[i + skip..]);
                Some(&r[..i])
            }
            None => {
                rest = None;
                Some(r)
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_format() {
        let b = encode_event(Some("tick"), "a\nb\r\nc\rd", Some("7"), Some(1500)).unwrap();
        assert_eq!(
            &b[..],
            b"event: tick\nid: 7\nretry: 1500\ndata: a\ndata: b\ndata: c\ndata: d\n\n"
        );
        assert_eq!(
            &encode_event(None, "", None, None).unwrap()[..],
            b"data: \n\n"
        );
        assert_eq!(
            &encode_event(None, "x\n", None, None).unwrap()[..],
            b"data: x\ndata: \n\n"
        );
    }

    #[test]
    fn newline_in_event_or_id_fails() {
        assert!(encode_event(Some("a\nb"), "x", None, None).is_err());
        assert!(encode_event(Some("a\rb"), "x", None, None).is_err());
        assert!(encode_event(None, "x", Some("1\n2"), None).is_err());
        assert!(encode_event(None, "x", Some("1\r"), None).is_err());
        assert!(encode_event(None, "x", Some("1\u{0}2"), None).is_err());
    }

    #[test]
    fn comment_format() {
        assert_eq!(&encode_comment("ping")[..], b":ping\n");
        assert_eq!(&encode_comment(": ping")[..], b": ping\n");
        assert_eq!(&encode_comment("")[..], b":\n");
        assert_eq!(&encode_comment("a\nb")[..], b":a\n:b\n");
    }

    #[test]
    fn default_headers_only_when_missing() {
        let h = stream_headers(Headers::new().with("cache-control", "no-store"));
        let got: Vec<_> = h.iter().map(|(n, v)| (n.clone(), v.clone())).collect();
        assert_eq!(
            got,
            vec![
                (Bytes::from("cache-control"), Bytes::from("no-store")),
                (
                    Bytes::from("content-type"),
                    Bytes::from("text/event-stream")
                ),
                (Bytes::from("x-accel-buffering"), Bytes::from("no")),
            ]
        );
    }
}
