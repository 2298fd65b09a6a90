//! The state one HTTP/1.1 request shares between the app (through `receive`, `send` and
//! `pagi.connection`) and the connection driver.
//!
//! `send` validates the event and encodes it straight into the connection's write queue, so a
//! response that the app produces without waiting costs no task switch; the driver writes the
//! queue out when the app yields or finishes. The queue is bounded by the write watermarks:
//! `send` waits while it is above the high-water mark. `receive` takes body pieces the driver
//! decoded; the driver reads the socket only while the app waits for body, so an app that does
//! not read the body never makes the server buffer it.

use bytes::Bytes;
use pagi::{
    ConnectionInfo, DisconnectReason, Error, Headers, HttpVersion, ReceiveEvent, ResponseBody,
    SendEvent, Sink, Source,
};
use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

use super::encode::{self, Framing, HeadParts};
use super::sse::{SseState, SseTarget};
use super::target::HttpTarget;
use super::write::WriteBuf;

/// The shared state; see the module docs.
#[derive(Debug, Default)]
pub(crate) struct Exchange {
    st: Mutex<St>,
}

/// Per-request facts the driver sets before calling the app.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RequestInfo {
    pub(crate) version: HttpVersion,
    pub(crate) head: bool,
    /// A CONNECT request: a 2xx would open a tunnel, which this server does not do.
    pub(crate) connect: bool,
    pub(crate) keep_alive: bool,
    pub(crate) expect_continue: bool,
    pub(crate) body_empty: bool,
    /// An `sse` scope: events are mapped by [`super::sse`].
    pub(crate) sse: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Continue {
    #[default]
    None,
    /// The client expects 100-continue; the app has not asked for the body yet.
    Expected,
    /// The app asked for the body: the driver must send `100 Continue`.
    Wanted,
    /// Sent (or no longer possible).
    Done,
}

#[derive(Debug, Default)]
pub(crate) enum Resp {
    #[default]
    Init,
    /// Start accepted, head not yet encoded (held so a single-piece body gets a Content-Length).
    Pending {
        status: u16,
        headers: Headers,
        trailers: bool,
        length: Option<u64>,
    },
    /// Head written; body in progress.
    Body { framing: Framing, trailers: bool },
    /// Body complete; trailers expected.
    Trailers { chunked: bool },
    /// Response complete.
    Done,
}

#[derive(Debug, Default)]
pub(crate) struct St {
    pub(crate) info: Option<RequestInfo>,
    /// The app has returned; the request is over for its handles.
    pub(crate) finished: bool,
    // ----- receive side -----
    pub(crate) inbound: VecDeque<Bytes>,
    pub(crate) inbound_bytes: usize,
    /// The decoder has seen the end of the body.
    pub(crate) body_finished: bool,
    /// The app got the `more: false` piece.
    pub(crate) eof_delivered: bool,
    /// The app waits for body.
    pub(crate) want_body: bool,
    pub(crate) cont: Continue,
    recv_waker: Option<Waker>,
    // ----- send side -----
    pub(crate) resp: Resp,
    pub(crate) out: WriteBuf,
    pub(crate) keep_alive: bool,
    pub(crate) flush_requested: bool,
    send_waker: Option<Waker>,
    pub(crate) high_water: u64,
    pub(crate) low_water: u64,
    pub(crate) server_header: Option<Bytes>,
    /// Something a send did that the driver must look at (set when the app is not being polled
    /// by the driver itself).
    pub(crate) driver_waker: Option<Waker>,
    pub(crate) in_app_poll: bool,
    // ----- connection -----
    pub(crate) disconnected: Option<DisconnectReason>,
    disc_wakers: Vec<Waker>,
    // ----- sse -----
    pub(crate) sse: Option<SseState>,
}

impl Exchange {
    pub(crate) fn lock(&self) -> MutexGuard<'_, St> {
        self.st.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl St {
    /// Resets for a new request, keeping buffers.
    pub(crate) fn reset(
        &mut self,
        info: RequestInfo,
        high_water: u64,
        low_water: u64,
        server_header: Option<Bytes>,
    ) {
        let mut out = std::mem::take(&mut self.out);
        out.clear();
        out.shrink();
        let inbound = {
            let mut q = std::mem::take(&mut self.inbound);
            q.clear();
            q
        };
        *self = St {
            info: Some(info),
            inbound,
            body_finished: info.body_empty,
            cont: if info.expect_continue {
                Continue::Expected
            } else {
                Continue::None
            },
            out,
            keep_alive: info.keep_alive,
            high_water,
            low_water,
            server_header,
            sse: info.sse.then(SseState::default),
            ..St::default()
        };
    }

    fn info(&self) -> RequestInfo {
        self.info.unwrap_or(RequestInfo {
            version: HttpVersion::Http11,
            head: false,
            connect: false,
            keep_alive: false,
            expect_continue: false,
            body_empty: true,
            sse: false,
        })
    }

    /// Wakes the driver unless it is the one polling the app right now.
    fn poke_driver(&mut self) {
        if !self.in_app_poll {
            if let Some(w) = &self.driver_waker {
                w.wake_by_ref();
            }
        }
    }

    /// Marks the client gone (once) and wakes everyone waiting on the app side.
    pub(crate) fn disconnect(&mut self, reason: DisconnectReason) {
        if self.disconnected.is_none() {
            self.disconnected = Some(reason);
        }
        self.out.clear();
    }

    /// Takes the wakers of app-side waiters that can now make progress.
    pub(crate) fn take_app_wakers(&mut self, out: &mut Vec<Waker>) {
        let gone = self.disconnected.is_some() || self.finished;
        let resp_done = matches!(self.resp, Resp::Done);
        if self.recv_waker.is_some()
            && (gone
                || resp_done
                || !self.inbound.is_empty()
                || (self.body_finished && !self.eof_delivered))
        {
            out.extend(self.recv_waker.take());
        }
        let threshold = if self.flush_requested {
            0
        } else {
            self.low_water
        };
        if self.send_waker.is_some() && (gone || self.out.len() <= threshold) {
            out.extend(self.send_waker.take());
        }
        if gone && !self.disc_wakers.is_empty() {
            out.append(&mut self.disc_wakers);
        }
    }

    /// Whether the response head has been encoded (nothing may precede it any more).
    pub(crate) fn head_written(&self) -> bool {
        matches!(
            self.resp,
            Resp::Body { .. } | Resp::Trailers { .. } | Resp::Done
        )
    }

    fn push(&mut self, bytes: Bytes, file: Option<(std::fs::File, u64)>) {
        if !bytes.is_empty() {
            self.out.push_bytes(bytes);
        }
        if let Some((f, n)) = file {
            self.out.push_file(f, n);
        }
    }
}

/// The status checks of [`check_start`]: a final status (200-999), and no 2xx to CONNECT.
pub(crate) fn check_status(status: u16, connect: bool) -> Result<(), Error> {
    if !(200..=999).contains(&status) {
        return Err(Error::invalid(format!(
            "status {status} is not a final status (200-999)"
        )));
    }
    if connect && (200..300).contains(&status) {
        // RFC 9110 §9.3.6: a 2xx makes the connection a tunnel.
        return Err(Error::unsupported(
            "a 2xx answer to CONNECT would open a tunnel, which pagi-server does not support",
        ));
    }
    Ok(())
}

/// What [`check_start`] found in a valid `http.response.start`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct StartChecked {
    /// The app's `content-length`, if it set one.
    pub(crate) length: Option<u64>,
    /// The app set `Connection: close` (meaningful on HTTP/1.x only).
    pub(crate) close: bool,
}

/// The checks every `http.response.start` gets, on every HTTP version (HTTP/1.x here, HTTP/2 in
/// `proto::h2`), so that an app sees the same failures whichever protocol the client speaks:
/// a final status (200-999), no 2xx to CONNECT, valid header names and values
/// ([`check_headers`]), and `content-length` fields that are numbers and agree.
pub(crate) fn check_start(
    status: u16,
    headers: &Headers,
    connect: bool,
) -> Result<StartChecked, Error> {
    check_status(status, connect)?;
    check_headers(headers)?;
    let mut out = StartChecked {
        length: None,
        close: false,
    };
    for (n, v) in headers {
        if n.eq_ignore_ascii_case(b"content-length") {
            let parsed = std::str::from_utf8(v)
                .ok()
                .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|s| s.parse::<u64>().ok());
            match (parsed, out.length) {
                (None, _) => return Err(Error::invalid("content-length is not a number")),
                (Some(a), Some(b)) if a != b => {
                    return Err(Error::invalid("conflicting content-length headers"))
                }
                (Some(a), _) => out.length = Some(a),
            }
        } else if n.eq_ignore_ascii_case(b"connection")
            && v.split(|&b| b == b',')
                .any(|t| super::parse::trim(t).eq_ignore_ascii_case(b"close"))
        {
            out.close = true;
        }
    }
    Ok(out)
}

/// The pieces of an `http.response.body` event, checked the same way on every HTTP version:
/// bytes, or an opened file (seeked to `offset`) with the byte count to send from it (a file
/// always ends the body), and `more`.
#[allow(clippy::type_complexity)]
pub(crate) fn body_parts(
    b: ResponseBody,
) -> Result<(Bytes, Option<(std::fs::File, u64)>, bool), Error> {
    if let Some(path) = b.file {
        if !b.bytes.is_empty() {
            return Err(Error::invalid(
                "http.response.body takes body or file, not both",
            ));
        }
        if !path.is_absolute() {
            return Err(Error::invalid(
                "http.response.body file must be an absolute path",
            ));
        }
        let f = std::fs::File::open(&path)
            .map_err(|e| Error::io(format!("cannot open {}: {e}", path.display())))?;
        let size = f
            .metadata()
            .map_err(|e| Error::io(format!("cannot stat {}: {e}", path.display())))?
            .len();
        let start = b.offset.min(size);
        let n = b.length.map_or(size - start, |l| l.min(size - start));
        if start > 0 {
            use std::io::Seek;
            let mut f2 = &f;
            f2.seek(std::io::SeekFrom::Start(start))
                .map_err(|e| Error::io(format!("cannot seek {}: {e}", path.display())))?;
        }
        Ok((Bytes::new(), Some((f, n)), false))
    } else {
        Ok((b.bytes, None, b.more))
    }
}

/// The check every response header list gets before it is written: a field whose name is not
/// a token or whose value holds CR, LF or NUL makes `send` fail (invalid), naming the field.
pub(crate) fn check_headers(headers: &Headers) -> Result<(), Error> {
    headers.check().map_err(|i| {
        let name = headers.iter().as_slice().get(i).map(|(n, _)| n.clone());
        Error::invalid(format!(
            "header {:?} has a bad name or a CR, LF or NUL in its value",
            String::from_utf8_lossy(name.as_deref().unwrap_or_default())
        ))
    })
}

/// The check of an `http.response.early_hint`'s fields, for every protocol: those of
/// [`check_headers`], and none of the connection-specific or framing fields of
/// [`pagi::headers::EARLY_HINT_REFUSED`] (invalid, naming the field).
pub(crate) fn check_early_hint(headers: &Headers) -> Result<(), Error> {
    check_headers(headers)?;
    match headers
        .iter()
        .find(|(n, _)| pagi::headers::refused_in_early_hint(n))
    {
        Some((n, _)) => Err(Error::invalid(format!(
            "header {:?} is connection-specific or frames a body, and a 103 Early Hints cannot carry it",
            String::from_utf8_lossy(n)
        ))),
        None => Ok(()),
    }
}

/// Cuts a body piece (bytes, then an optional file range) down to `allowed` bytes (the rest
/// of a declared `content-length`).
pub(crate) fn truncate(
    bytes: Bytes,
    file: Option<(std::fs::File, u64)>,
    allowed: u64,
) -> (Bytes, Option<(std::fs::File, u64)>) {
    let b = bytes.len() as u64;
    if allowed <= b {
        (bytes.slice(..allowed as usize), None)
    } else {
        (bytes, file.map(|(f, n)| (f, n.min(allowed - b))))
    }
}

impl Sink for Exchange {
    fn poll_send(
        &self,
        cx: &mut Context<'_>,
        event: &mut Option<SendEvent>,
    ) -> Poll<Result<(), Error>> {
        let mut st = self.lock();
        let threshold = if let Some(ev) = event.take() {
            if st.disconnected.is_some() {
                return Poll::Ready(Ok(())); // send after close: a no-op
            }
            if st.finished {
                return Poll::Ready(Err(Error::out_of_order("the request is over")));
            }
            st.accept(ev)?;
            st.poke_driver();
            if st.flush_requested {
                0
            } else {
                st.high_water
            }
        } else if st.flush_requested {
            0
        } else {
            st.low_water
        };
        if st.disconnected.is_some() || st.finished || st.out.len() <= threshold {
            st.flush_requested = false;
            return Poll::Ready(Ok(()));
        }
        // Backpressure: wait for the driver to drain the queue.
        st.send_waker = Some(cx.waker().clone());
        Poll::Pending
    }
}

impl Source for Exchange {
    fn poll_receive(&self, cx: &mut Context<'_>) -> Poll<Result<ReceiveEvent, Error>> {
        let mut st = self.lock();
        let polled = st.poll_receive(cx);
        if st.sse.is_none() {
            return polled;
        }
        // An sse scope: the same events under their sse names.
        polled.map_ok(|ev| {
            super::sse::sse_receive_event(ev, st.disconnected.as_ref(), st.sse.as_ref())
        })
    }
}

impl HttpTarget for St {
    /// Whether the response has been fully encoded.
    fn response_done(&self) -> bool {
        matches!(self.resp, Resp::Done)
    }

    /// Whether the response started (head accepted).
    fn response_started(&self) -> bool {
        !matches!(self.resp, Resp::Init)
    }

    /// Encodes a held head. `final_len`: the whole body's length when it is already known.
    fn encode_pending_head(&mut self, final_len: Option<u64>) {
        if !matches!(self.resp, Resp::Pending { .. }) {
            return; // already written (or nothing to write): leave the state alone
        }
        let Resp::Pending {
            status,
            headers,
            trailers,
            length,
        } = std::mem::take(&mut self.resp)
        else {
            return;
        };
        let info = self.info();
        let no_body = info.head || status == 204 || status == 304;
        let (framing, content_length, chunked) = if status == 204 {
            (Framing::None, None, false)
        } else if status == 304 {
            // Only the app knows the length the 200 would have had.
            (Framing::None, length, false)
        } else if no_body {
            (Framing::None, length.or(final_len), false)
        } else if trailers && info.version == HttpVersion::Http11 {
            (Framing::Chunked, None, true)
        } else if let Some(n) = length.or(final_len) {
            (Framing::Length(n), Some(n), false)
        } else if info.version == HttpVersion::Http11 {
            (Framing::Chunked, None, true)
        } else {
            self.keep_alive = false;
            (Framing::Close, None, false)
        };
        if self.cont == Continue::Expected && !self.body_finished {
            // Answering before the body was asked for: the client may or may not send it, so
            // the connection will not be reused — say so.
            self.keep_alive = false;
        }
        let connection = if !self.keep_alive {
            Some(false)
        } else if info.version == HttpVersion::Http10 {
            Some(true)
        } else {
            None
        };
        let add_date = !headers.contains("date");
        let server = if headers.contains("server") {
            None
        } else {
            self.server_header.clone()
        };
        let before = self.out.flat_len();
        encode::encode_head(
            self.out.flat(),
            &HeadParts {
                status,
                headers: &headers,
                content_length,
                chunked,
                connection,
                add_date,
                server: server.as_deref(),
            },
        );
        self.out.commit(before);
        self.resp = Resp::Body { framing, trailers };
    }

    fn start_response(
        &mut self,
        status: u16,
        headers: Headers,
        trailers: bool,
    ) -> Result<(), Error> {
        if !matches!(self.resp, Resp::Init) {
            return Err(Error::out_of_order("http.response.start sent twice"));
        }
        let checked = check_start(status, &headers, self.info().connect)?;
        if checked.close {
            self.keep_alive = false;
        }
        let length = checked.length;
        self.resp = Resp::Pending {
            status,
            headers,
            trailers,
            length,
        };
        Ok(())
    }

    fn response_body(&mut self, b: ResponseBody) -> Result<(), Error> {
        let (bytes, file, more) = body_parts(b)?;
        let len = bytes.len() as u64 + file.as_ref().map_or(0, |f| f.1);
        match self.resp {
            Resp::Init => {
                return Err(Error::out_of_order(
                    "http.response.body before http.response.start",
                ))
            }
            Resp::Pending { .. } => self.encode_pending_head(if more { None } else { Some(len) }),
            Resp::Trailers { .. } | Resp::Done => {
                return Err(Error::out_of_order(
                    "http.response.body after the body was complete",
                ))
            }
            Resp::Body { .. } => {}
        }
        let Resp::Body { framing, trailers } = &mut self.resp else {
            return Ok(());
        };
        let trailers = *trailers;
        let mut result = Ok(());
        match framing {
            Framing::None => {}
            Framing::Close => self.push(bytes, file),
            Framing::Length(rem) => {
                if len > *rem {
                    // Send what the length allows, then end the connection: the app lied.
                    let allowed = *rem;
                    *rem = 0;
                    self.keep_alive = false;
                    let (bytes, file) = truncate(bytes, file, allowed);
                    self.push(bytes, file);
                    self.resp = Resp::Done;
                    return Err(Error::invalid(
                        "response body longer than its content-length",
                    ));
                }
                *rem -= len;
                let rem = *rem;
                self.push(bytes, file);
                if !more && rem != 0 {
                    tracing::warn!(
                        missing = rem,
                        "response body shorter than its content-length; closing the connection"
                    );
                    self.keep_alive = false;
                    result = Err(Error::invalid(
                        "response body shorter than its content-length",
                    ));
                }
            }
            Framing::Chunked => {
                if len > 0 {
                    let before = self.out.flat_len();
                    encode::chunk_head(self.out.flat(), len as usize);
                    self.out.commit(before);
                    self.push(bytes, file);
                    self.out.push_slice(b"\r\n");
                }
                if !more {
                    if trailers {
                        self.out.push_slice(b"0\r\n");
                        self.resp = Resp::Trailers { chunked: true };
                    } else {
                        self.out.push_slice(b"0\r\n\r\n");
                    }
                }
            }
        }
        if !more && matches!(self.resp, Resp::Body { .. }) {
            self.resp = if trailers {
                Resp::Trailers { chunked: false }
            } else {
                Resp::Done
            };
        }
        result
    }

    fn trailers(&mut self, headers: Headers) -> Result<(), Error> {
        let Resp::Trailers { chunked } = self.resp else {
            return Err(Error::out_of_order(
                "http.response.trailers needs trailers: 1 on the start and a complete body first",
            ));
        };
        if headers.check().is_err() {
            return Err(Error::invalid(
                "trailer field has a bad name or a CR, LF or NUL in its value",
            ));
        }
        if chunked {
            let before = self.out.flat_len();
            encode::trailers(self.out.flat(), &headers);
            self.out.commit(before);
        }
        self.resp = Resp::Done;
        Ok(())
    }

    /// `http.response.early_hint`: a `103 Early Hints`, written at once and waited for like
    /// `http.fullflush` (a hint held until the final response would be useless). HTTP/1.0
    /// clients must not get a 1xx (RFC 9110 §15.2): the checked event is dropped there.
    fn early_hint(&mut self, headers: Headers) -> Result<(), Error> {
        if !matches!(self.resp, Resp::Init) {
            return Err(Error::out_of_order(
                "http.response.early_hint after http.response.start",
            ));
        }
        check_early_hint(&headers)?;
        if self.info().version != HttpVersion::Http11 {
            return Ok(());
        }
        let before = self.out.flat_len();
        encode::encode_informational(self.out.flat(), 103, &headers);
        self.out.commit(before);
        self.flush_requested = true;
        Ok(())
    }

    fn request_flush(&mut self) {
        self.flush_requested = true;
    }
}

impl SseTarget for St {
    fn sse_mut(&mut self) -> Option<&mut SseState> {
        self.sse.as_mut()
    }

    fn no_keep_alive(&mut self) {
        self.keep_alive = false;
    }
}

impl St {
    fn poll_receive(&mut self, cx: &mut Context<'_>) -> Poll<Result<ReceiveEvent, Error>> {
        let st = self;
        if st.disconnected.is_some() || st.finished || st.response_done() {
            return Poll::Ready(Ok(ReceiveEvent::HttpDisconnect));
        }
        if let Some(body) = st.inbound.pop_front() {
            st.inbound_bytes -= body.len();
            let more = !(st.inbound.is_empty() && st.body_finished);
            st.eof_delivered = !more;
            st.poke_driver();
            return Poll::Ready(Ok(ReceiveEvent::HttpRequest { body, more }));
        }
        if st.body_finished && !st.eof_delivered {
            st.eof_delivered = true;
            return Poll::Ready(Ok(ReceiveEvent::HttpRequest {
                body: Bytes::new(),
                more: false,
            }));
        }
        if !st.body_finished {
            st.want_body = true;
            if st.cont == Continue::Expected {
                if st.head_written() {
                    // Too late for 100 (Continue): the final response is on its way. The client
                    // may or may not send the body, so the connection cannot be reused.
                    st.cont = Continue::Done;
                    st.keep_alive = false;
                } else {
                    st.cont = Continue::Wanted;
                }
            }
            st.poke_driver();
        }
        st.recv_waker = Some(cx.waker().clone());
        Poll::Pending
    }
}

impl ConnectionInfo for Exchange {
    fn is_connected(&self) -> bool {
        self.lock().disconnected.is_none()
    }

    fn disconnect_reason(&self) -> Option<DisconnectReason> {
        self.lock().disconnected.clone()
    }

    fn poll_disconnect(&self, cx: &mut Context<'_>) -> Poll<DisconnectReason> {
        let st = &mut *self.lock();
        crate::proto::wake::poll_disconnect(&st.disconnected, &mut st.disc_wakers, cx)
    }

    fn response_started(&self) -> bool {
        self.lock().response_started()
    }

    fn response_complete(&self) -> Option<bool> {
        let st = self.lock();
        Some(st.response_done() && st.out.is_empty())
    }
}
