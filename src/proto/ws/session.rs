//! The state one WebSocket shares between the app (through `receive` and `send`) and the
//! connection driver ([`super::conn`]).
//!
//! As for HTTP, `send` validates the event and encodes it straight into the connection's write
//! queue (whole frames only, so the driver may put a pong or a close between two messages), and
//! waits while the queue is above the high-water mark. Received messages wait in a queue bounded
//! by `max_queue` messages and twice the message size limit; overflowing it closes with 1008.

use bytes::{Bytes, BytesMut};
use pagi::{Error, Headers, Message, ReceiveEvent, ResponseBody, SendEvent, Sink, Source};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use super::deflate::{Deflater, PmdParams};
use super::frame::{self, OpCode};
use super::handshake;
use crate::proto::h1::encode::{self, HeadParts};
use crate::proto::h1::exchange::check_headers;
use crate::proto::h1::write::WriteBuf;

/// Messages shorter than this are sent uncompressed even when permessage-deflate is on.
const COMPRESS_MIN: usize = 16;

/// Where the WebSocket is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Waiting for the app to answer `websocket.connect`.
    Connecting,
    /// The app is sending an HTTP response instead (`websocket.http.response.*`).
    Denying { chunked: bool },
    /// 101 queued; messages flow both ways.
    Open,
    /// We sent a Close frame and wait for the peer's.
    Closing,
    /// Over: nothing more is sent; the driver writes out what is queued and closes.
    Closed,
}

/// Where the handshake's answer goes.
#[derive(Debug)]
pub(crate) enum Wire {
    /// HTTP/1.1: the 101 or the refusal is bytes at the front of `out`.
    H1,
    /// HTTP/2 (RFC 8441): the answer's head goes to this slot, for the stream to send as a
    /// HEADERS frame (200 for an accept); `out` carries only what follows it (WebSocket frames
    /// or a denial's body bytes) as DATA.
    H2(Arc<HeadSlot>),
}

/// A response head waiting for an HTTP/2 stream to send it.
#[derive(Debug, Default)]
pub(crate) struct HeadSlot {
    head: Mutex<Option<Head>>,
}

/// The head of the handshake's answer over HTTP/2.
#[derive(Debug)]
pub(crate) struct Head {
    pub(crate) status: u16,
    /// The fields (the server adds `date` and `server` unless present).
    pub(crate) headers: Headers,
    /// Nothing follows: the HEADERS frame ends the stream.
    pub(crate) end: bool,
}

impl HeadSlot {
    fn put(&self, head: Head) {
        *self.head.lock().unwrap_or_else(PoisonError::into_inner) = Some(head);
    }

    /// Takes the head to send, if one is waiting.
    pub(crate) fn take(&self) -> Option<Head> {
        self.head
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }
}

/// The shared state; see the module docs.
#[derive(Debug)]
pub(crate) struct Session {
    st: Mutex<St>,
}

#[derive(Debug)]
pub(crate) struct St {
    pub(crate) phase: Phase,
    connect_delivered: bool,
    // ----- handshake -----
    wire: Wire,
    /// An HTTP/2 answer head was put in the slot; the driver flushes the stream for it.
    pub(crate) head_queued: bool,
    accept_key: String,
    subprotocols: Vec<String>,
    /// The permessage-deflate offer we would accept: parameters and the response value.
    pmd_offer: Option<(PmdParams, String)>,
    /// Negotiated permessage-deflate, once accepted (the driver builds its inflater from it).
    pub(crate) pmd: Option<PmdParams>,
    deflater: Option<Deflater>,
    server_header: Option<Bytes>,
    /// A denial's held head (status, headers) until its first body piece.
    denial_head: Option<(u16, Headers)>,
    /// The denial's status (204, 304) allows no body.
    denial_bodyless: bool,
    // ----- receive side -----
    pub(crate) inbound: VecDeque<Message>,
    pub(crate) inbound_bytes: usize,
    recv_waker: Option<Waker>,
    /// The `websocket.disconnect` the app gets once the queue is empty.
    pub(crate) closed_with: Option<(u16, String)>,
    // ----- send side -----
    pub(crate) out: WriteBuf,
    high_water: u64,
    low_water: u64,
    send_waker: Option<Waker>,
    /// The app sent `websocket.close` (or returned); the code for our Close frame.
    pub(crate) app_close: Option<u16>,
    /// A pong arrived since the driver last looked.
    pub(crate) pong_seen: bool,
    /// `websocket.keepalive` from the app: new (interval, timeout), taken by the driver.
    pub(crate) keepalive: Option<(Duration, Option<Duration>)>,
    // ----- driver -----
    pub(crate) driver_waker: Option<Waker>,
    pub(crate) in_app_poll: bool,
    /// The app has returned.
    pub(crate) finished: bool,
}

impl Session {
    pub(crate) fn new(
        req: handshake::Request,
        pmd_offer: Option<(PmdParams, String)>,
        server_header: Option<Bytes>,
        high_water: u64,
        low_water: u64,
        wire: Wire,
    ) -> Self {
        Session {
            st: Mutex::new(St {
                phase: Phase::Connecting,
                connect_delivered: false,
                wire,
                head_queued: false,
                accept_key: req.accept,
                subprotocols: req.subprotocols,
                pmd_offer,
                pmd: None,
                deflater: None,
                server_header,
                denial_head: None,
                denial_bodyless: false,
                inbound: VecDeque::new(),
                inbound_bytes: 0,
                recv_waker: None,
                closed_with: None,
                out: WriteBuf::default(),
                high_water,
                low_water,
                send_waker: None,
                app_close: None,
                pong_seen: false,
                keepalive: None,
                driver_waker: None,
                in_app_poll: false,
                finished: false,
            }),
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, St> {
        self.st.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl St {
    /// Wakes the driver unless it is the one polling the app right now.
    fn poke_driver(&mut self) {
        if !self.in_app_poll {
            if let Some(w) = &self.driver_waker {
                w.wake_by_ref();
            }
        }
    }

    /// Ends the WebSocket for the app: `receive` returns `websocket.disconnect {code, reason}`
    /// once the queue is drained, and `send` becomes a no-op. The first call wins.
    pub(crate) fn close_with(&mut self, code: u16, reason: impl Into<String>) {
        if self.closed_with.is_none() {
            self.closed_with = Some((code, reason.into()));
        }
    }

    /// The write queue size above which `send` waits.
    pub(crate) fn high_water(&self) -> u64 {
        self.high_water
    }

    /// Takes the wakers of app-side waiters that can now make progress.
    pub(crate) fn take_app_wakers(&mut self, out: &mut Vec<Waker>) {
        if self.recv_waker.is_some() && (!self.inbound.is_empty() || self.closed_with.is_some()) {
            out.extend(self.recv_waker.take());
        }
        if self.send_waker.is_some()
            && (self.closed_with.is_some() || self.out.len() <= self.low_water)
        {
            out.extend(self.send_waker.take());
        }
    }

    /// Queues a frame (header into the flat buffer, a large payload as its own segment).
    pub(crate) fn push_frame(&mut self, opcode: OpCode, rsv1: bool, payload: Bytes) {
        let before = self.out.flat_len();
        frame::encode_header(self.out.flat(), true, rsv1, opcode, payload.len());
        self.out.commit(before);
        if !payload.is_empty() {
            self.out.push_bytes(payload);
        }
    }

    /// Queues a Close frame and moves to `Closing` (when open) or `Closed`.
    pub(crate) fn send_close(&mut self, code: Option<u16>, reason: &str) {
        let payload = match code {
            Some(c) => frame::close_payload(c, reason).freeze(),
            None => Bytes::new(),
        };
        self.push_frame(OpCode::Close, false, payload);
        self.phase = if self.phase == Phase::Open {
            Phase::Closing
        } else {
            Phase::Closed
        };
    }

    /// Hands an HTTP/2 answer head to the stream; `false` on HTTP/1.1 (the caller encodes it).
    fn put_head(&mut self, status: u16, headers: Headers, end: bool) -> bool {
        match &self.wire {
            Wire::H1 => false,
            Wire::H2(slot) => {
                slot.put(Head {
                    status,
                    headers,
                    end,
                });
                self.head_queued = true;
                true
            }
        }
    }

    /// Queues the answer for an app that ended before answering `websocket.connect`: 500.
    pub(crate) fn refuse_app_error(&mut self) {
        let reject = crate::error::Reject::AppError;
        let body = reject.body();
        let headers = Headers::new()
            .with("content-type", "text/plain; charset=utf-8")
            .with("content-length", body.len().to_string());
        if self.put_head(reject.status(), headers, false) {
            self.out.push_bytes(Bytes::from(body));
        } else {
            let bytes = encode::with_date(|d| reject.response(d));
            self.out.push_slice(&bytes);
        }
    }

    /// Queues the answer for an app that closed before accepting: 403.
    pub(crate) fn refuse_403(&mut self) {
        if self.put_head(403, Headers::new().with("content-length", "0"), true) {
            self.phase = Phase::Closed;
            self.close_with(1006, "x-refused");
            return;
        }
        let before = self.out.flat_len();
        encode::encode_head(
            self.out.flat(),
            &HeadParts {
                status: 403,
                headers: &Headers::new(),
                content_length: Some(0),
                chunked: false,
                connection: Some(false),
                add_date: true,
                server: self.server_header.as_deref(),
            },
        );
        self.out.commit(before);
        self.phase = Phase::Closed;
        self.close_with(1006, "x-refused");
    }

    fn accept(&mut self, subprotocol: Option<String>, headers: Headers) -> Result<(), Error> {
        if let Some(p) = &subprotocol {
            if !self.subprotocols.iter().any(|o| o == p) {
                return Err(Error::invalid(format!(
                    "websocket.accept subprotocol {p:?} was not offered by the client"
                )));
            }
        }
        check_headers(&headers)?;
        let pmd = self.pmd_offer.take();
        if let Wire::H2(_) = self.wire {
            // RFC 8441 §5: a 2xx answers the extended CONNECT; no `Sec-WebSocket-Accept`.
            let mut h = Headers::new();
            if let Some(p) = &subprotocol {
                h.push("sec-websocket-protocol", p.clone());
            }
            if let Some((_, v)) = &pmd {
                h.push("sec-websocket-extensions", v.clone());
            }
            for (n, v) in &headers {
                if !handshake::OWNED
                    .iter()
                    .any(|o| n.eq_ignore_ascii_case(o.as_bytes()))
                {
                    h.push(n.clone(), v.clone());
                }
            }
            self.put_head(200, h, false);
        } else {
            let before = self.out.flat_len();
            handshake::encode_101(
                self.out.flat(),
                &self.accept_key,
                subprotocol.as_deref(),
                pmd.as_ref().map(|(_, v)| v.as_str()),
                &headers,
                self.server_header.as_deref(),
            );
            self.out.commit(before);
        }
        if let Some((p, _)) = pmd {
            // The compressor (a few hundred KiB of zlib state) is made on the first message
            // worth compressing, so idle and receive-only connections do not pay for it.
            self.pmd = Some(p);
        }
        self.phase = Phase::Open;
        Ok(())
    }

    fn deny_start(&mut self, status: u16, headers: Headers) -> Result<(), Error> {
        if !(200..=999).contains(&status) {
            return Err(Error::invalid(format!(
                "status {status} is not a final status (200-999)"
            )));
        }
        check_headers(&headers)?;
        self.denial_head = Some((status, headers));
        self.phase = Phase::Denying { chunked: false };
        Ok(())
    }

    fn deny_body(&mut self, b: ResponseBody) -> Result<(), Error> {
        if b.file.is_some() {
            return Err(Error::unsupported(
                "websocket.http.response.body takes bytes, not a file",
            ));
        }
        let Phase::Denying { chunked } = self.phase else {
            return Err(Error::out_of_order(
                "websocket.http.response.body before websocket.http.response.start",
            ));
        };
        let mut chunked = chunked;
        let mut bytes = b.bytes;
        if let Some((status, headers)) = self.denial_head.take() {
            let bodyless = status == 204 || status == 304;
            chunked = b.more && !bodyless;
            if bodyless {
                self.denial_bodyless = true;
            }
            if let Wire::H2(_) = self.wire {
                // HTTP/2 frames the body itself: DATA frames, END_STREAM at the end.
                chunked = false;
                let mut h = headers;
                if !b.more && !bodyless && !h.contains("content-length") {
                    h.push("content-length", bytes.len().to_string());
                }
                let end = !b.more && (bodyless || bytes.is_empty());
                self.put_head(status, h, end);
                self.phase = Phase::Denying { chunked };
                return self.deny_rest(bytes, b.more);
            }
            let before = self.out.flat_len();
            encode::encode_head(
                self.out.flat(),
                &HeadParts {
                    status,
                    headers: &headers,
                    content_length: (!b.more && !bodyless).then_some(bytes.len() as u64),
                    chunked,
                    connection: Some(false),
                    add_date: !headers.contains("date"),
                    server: if headers.contains("server") {
                        None
                    } else {
                        self.server_header.as_deref()
                    },
                },
            );
            self.out.commit(before);
        }
        if !chunked {
            return self.deny_rest(bytes, b.more);
        }
        if self.denial_bodyless {
            bytes = Bytes::new();
        }
        if !bytes.is_empty() {
            let before = self.out.flat_len();
            encode::chunk_head(self.out.flat(), bytes.len());
            self.out.commit(before);
            self.out.push_bytes(bytes);
            self.out.push_slice(b"\r\n");
        }
        if !b.more {
            self.out.push_slice(b"0\r\n\r\n");
        }
        self.denial_piece_done(chunked, b.more);
        Ok(())
    }

    /// A denial body piece without chunked framing (a known length, or HTTP/2).
    fn deny_rest(&mut self, bytes: Bytes, more: bool) -> Result<(), Error> {
        if !self.denial_bodyless && !bytes.is_empty() {
            self.out.push_bytes(bytes);
        }
        self.denial_piece_done(false, more);
        Ok(())
    }

    fn denial_piece_done(&mut self, chunked: bool, more: bool) {
        if more {
            self.phase = Phase::Denying { chunked };
        } else {
            self.phase = Phase::Closed;
            self.close_with(1006, "x-refused");
        }
    }

    /// The app returned mid-denial: a held head goes out with an empty body; a streamed body is
    /// cut (the connection closes). Returns whether the response was complete.
    pub(crate) fn finish_denial(&mut self) -> bool {
        if self.denial_head.is_some() {
            let _ = self.deny_body(ResponseBody::default());
            return true;
        }
        false
    }

    fn send_message(&mut self, m: Message) {
        let (opcode, payload) = match m {
            Message::Text(s) => (OpCode::Text, Bytes::from(s)),
            Message::Binary(b) => (OpCode::Binary, b),
        };
        if payload.len() >= COMPRESS_MIN {
            if let Some(p) = self.pmd.as_ref() {
                let d = self.deflater.get_or_insert_with(|| Deflater::new(p));
                let mut z = BytesMut::with_capacity(payload.len() / 2 + 16);
                d.compress(&payload, &mut z);
                self.push_frame(opcode, true, z.freeze());
                return;
            }
        }
        self.push_frame(opcode, false, payload);
    }

    fn accept_event(&mut self, event: SendEvent) -> Result<(), Error> {
        match (self.phase, event) {
            (_, SendEvent::WebsocketKeepalive { interval, timeout }) => {
                self.keepalive = Some((interval, timeout));
                Ok(())
            }
            (
                Phase::Connecting,
                SendEvent::WebsocketAccept {
                    subprotocol,
                    headers,
                },
            ) => self.accept(subprotocol, headers),
            (Phase::Connecting, SendEvent::WebsocketClose { .. }) => {
                self.refuse_403();
                Ok(())
            }
            (Phase::Connecting, SendEvent::WebsocketHttpResponseStart { status, headers }) => {
                self.deny_start(status, headers)
            }
            (Phase::Denying { .. }, SendEvent::WebsocketHttpResponseBody(b)) => self.deny_body(b),
            (Phase::Open, SendEvent::WebsocketSend(m)) => {
                self.send_message(m);
                Ok(())
            }
            (Phase::Open, SendEvent::WebsocketClose { code, reason }) => {
                if !sendable_close_code(code) {
                    return Err(Error::invalid(format!(
                        "websocket.close code {code} may not be sent (1000, 1001-1003, 1007-1014 or 3000-4999)"
                    )));
                }
                self.app_close = Some(code);
                self.send_close(Some(code), &reason);
                Ok(())
            }
            (
                Phase::Open | Phase::Closing,
                SendEvent::WebsocketHttpResponseStart { .. }
                | SendEvent::WebsocketHttpResponseBody(_),
            ) => {
                tracing::debug!("websocket.http.response.* after accept ignored");
                Ok(())
            }
            (Phase::Closing | Phase::Closed, SendEvent::WebsocketSend(_))
            | (Phase::Closing | Phase::Closed, SendEvent::WebsocketClose { .. }) => Ok(()),
            (phase, ev) => match ev {
                SendEvent::WebsocketAccept { .. }
                | SendEvent::WebsocketSend(_)
                | SendEvent::WebsocketClose { .. }
                | SendEvent::WebsocketHttpResponseStart { .. }
                | SendEvent::WebsocketHttpResponseBody(_) => Err(Error::out_of_order(format!(
                    "{} is not allowed {}",
                    ev.kind(),
                    match phase {
                        Phase::Connecting => "before the websocket is accepted",
                        Phase::Denying { .. } => "while denying the websocket",
                        _ => "after the websocket was accepted",
                    }
                ))),
                other => Err(Error::unsupported(format!(
                    "{} is not a websocket event",
                    other.kind()
                ))),
            },
        }
    }
}

/// Codes an app may put in a Close frame (RFC 6455 §7.4).
fn sendable_close_code(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

impl Sink for Session {
    fn poll_send(
        &self,
        cx: &mut Context<'_>,
        event: &mut Option<SendEvent>,
    ) -> Poll<Result<(), Error>> {
        let mut st = self.lock();
        if let Some(ev) = event.take() {
            if st.finished {
                return Poll::Ready(Err(Error::out_of_order("the websocket call is over")));
            }
            if st.closed_with.is_some() {
                return Poll::Ready(Ok(())); // send after the close: a no-op
            }
            st.accept_event(ev)?;
            st.poke_driver();
        }
        if st.closed_with.is_some() || st.out.len() <= st.high_water {
            return Poll::Ready(Ok(()));
        }
        // Backpressure: wait for the driver to drain the queue.
        st.send_waker = Some(cx.waker().clone());
        Poll::Pending
    }
}

impl Source for Session {
    fn poll_receive(&self, cx: &mut Context<'_>) -> Poll<Result<ReceiveEvent, Error>> {
        let mut st = self.lock();
        if !st.connect_delivered {
            st.connect_delivered = true;
            return Poll::Ready(Ok(ReceiveEvent::WebsocketConnect));
        }
        if let Some(m) = st.inbound.pop_front() {
            st.inbound_bytes -= m.len();
            st.poke_driver();
            return Poll::Ready(Ok(ReceiveEvent::WebsocketReceive(m)));
        }
        if let Some((code, reason)) = &st.closed_with {
            return Poll::Ready(Ok(ReceiveEvent::WebsocketDisconnect {
                code: *code,
                reason: reason.clone(),
            }));
        }
        st.recv_waker = Some(cx.waker().clone());
        Poll::Pending
    }
}
