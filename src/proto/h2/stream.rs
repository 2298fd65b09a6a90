//! One HTTP/2 stream: the state it shares with the app (through `receive`, `send` and
//! `pagi.connection`) and the driver that moves its bytes to and from `h2`.
//!
//! It mirrors the HTTP/1.1 exchange (`proto::h1::exchange`) so an app sees the same behaviour:
//! `send` checks events with the same helpers and queues the response; the driver, polled on
//! the connection's task right after the app, hands the queue to `h2` as fast as the peer's
//! flow-control window allows, and `send` waits while more than the write high-water mark is
//! queued. `receive` takes body pieces the driver read from `h2` only while the app waits for
//! one; their bytes are released to the peer's window when the app takes them, so a slow app
//! makes the client wait instead of the server buffering.

use bytes::{Bytes, BytesMut};
use h2::server::SendResponse;
use h2::{Reason, RecvStream, SendStream};
use http::header::{HeaderName, HeaderValue};
use http::HeaderMap;
use pagi::{
    BoxError, ConnectionInfo, DisconnectReason, Error, Headers, ReceiveEvent, ResponseBody,
    SendEvent, Sink, Source,
};
use std::collections::VecDeque;
use std::fs::File;
use std::future::Future;
use std::io::Read;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::Duration;
use tokio::time::{Instant, Sleep};
use tokio_util::sync::WaitForCancellationFutureOwned;

use crate::error::Reject;
use crate::proto::h1::exchange::{body_parts, check_start, check_status, truncate};
use crate::proto::h1::sse::{poll_sse_keepalive, SseState, SseTarget};
use crate::proto::h1::target::HttpTarget;

/// Most response bytes asked of the flow-control window at once.
const MAX_RESERVE: u64 = 1 << 20;
/// How much of a file is read per DATA piece.
const FILE_CHUNK: u64 = 64 * 1024;
/// Body pieces smaller than this are copied into the queue's last buffer instead of being
/// queued one by one: an app that sends many tiny pieces then holds about as much memory as
/// it sent, not a queue entry (and an allocation) per piece.
const COALESCE_BELOW: usize = 1024;
/// The largest buffer small pieces are gathered into.
const COALESCE_MAX: usize = 16 * 1024;
/// What one queue entry costs beyond its bytes; counted towards the write high-water mark so
/// that `send` waits on memory actually held, not on payload alone.
const PIECE_COST: u64 = 64;
/// Events `send` accepts in one poll of the app before it yields to the connection's other
/// streams and connections (an app that sends thousands of pieces without waiting would
/// otherwise hold the connection's task, and every stream on it, until its queue is full).
const SEND_BUDGET: u32 = 64;

/// The shared state; see the module docs.
#[derive(Debug, Default)]
pub(crate) struct Stream {
    st: Mutex<St>,
    /// 0 while the driver is not polling the app; during that poll, 1 + the events `send`
    /// has accepted in it (see [`SEND_BUDGET`]). Outside the lock (set and read by the
    /// connection's thread, `Relaxed`): the driver then takes the lock once per app poll,
    /// not twice.
    app_poll: AtomicU32,
}

impl Stream {
    pub(crate) fn lock(&self) -> MutexGuard<'_, St> {
        self.st.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `f` on the state of a stream no handle shares yet, without taking the lock.
    pub(crate) fn fresh(this: &mut std::sync::Arc<Stream>, f: impl FnOnce(&mut St)) {
        match std::sync::Arc::get_mut(this) {
            Some(s) => f(s.st.get_mut().unwrap_or_else(PoisonError::into_inner)),
            None => f(&mut this.lock()),
        }
    }
}

#[derive(Debug, Default)]
enum Resp {
    #[default]
    Init,
    /// Start accepted, head held (so a single-piece body gets a `content-length` and goes out
    /// with END_STREAM on its DATA frame).
    Pending {
        head: http::Response<()>,
        trailers: bool,
        length: Option<u64>,
        /// `head` has a `content-length` slot for the server's (see [`memo_head`]).
        slot: bool,
    },
    /// Head committed; body in progress. `remaining`: bytes the announced length still allows;
    /// `discard`: a response without a body (HEAD, 204, 304) drops body bytes.
    Body {
        trailers: bool,
        remaining: Option<u64>,
        discard: bool,
    },
    /// Body complete; trailers expected.
    Trailers { discard: bool },
    /// Response complete.
    Done,
}

#[derive(Debug)]
enum Out {
    Bytes(Bytes),
    /// Small pieces gathered into one buffer.
    Gathered(BytesMut),
    File {
        file: File,
        remaining: u64,
    },
}

/// The response pieces still to be handed to `h2`, in order. The first is held inline: most
/// responses are one piece, which then costs no queue allocation.
#[derive(Debug, Default)]
struct OutQueue {
    /// The front piece; `None` only when the queue is empty.
    first: Option<Out>,
    rest: VecDeque<Out>,
}

impl OutQueue {
    fn is_empty(&self) -> bool {
        self.first.is_none()
    }

    fn len(&self) -> usize {
        usize::from(self.first.is_some()) + self.rest.len()
    }

    fn clear(&mut self) {
        self.first = None;
        self.rest.clear();
    }

    fn push_back(&mut self, piece: Out) {
        if self.first.is_none() {
            self.first = Some(piece);
        } else {
            self.rest.push_back(piece);
        }
    }

    fn pop_front(&mut self) -> Option<Out> {
        let front = self.first.take();
        self.first = self.rest.pop_front();
        front
    }

    fn front_mut(&mut self) -> Option<&mut Out> {
        self.first.as_mut()
    }

    fn back_mut(&mut self) -> Option<&mut Out> {
        match self.rest.back_mut() {
            Some(last) => Some(last),
            None => self.first.as_mut(),
        }
    }
}

/// The state of one stream.
#[derive(Debug, Default)]
pub(crate) struct St {
    head_request: bool,
    connect: bool,
    /// The app has returned.
    finished: bool,
    // ----- receive side -----
    inbound: VecDeque<Bytes>,
    body_finished: bool,
    eof_delivered: bool,
    want_body: bool,
    /// Bytes the app took that are still to be released to the peer's window.
    release: usize,
    recv_waker: Option<Waker>,
    // ----- send side -----
    resp: Resp,
    /// `103 Early Hints` for the driver to hand to `h2` (the send waits until it has).
    hints: VecDeque<http::Response<()>>,
    /// A committed head for the driver to send.
    head: Option<http::Response<()>>,
    out: OutQueue,
    out_len: u64,
    /// The response is complete: the stream ends after `out` (with `trailers` if any).
    end: bool,
    end_sent: bool,
    trailers: Option<HeaderMap>,
    /// The app broke the response (a body shorter than its `content-length`): the stream ends
    /// with RST_STREAM instead.
    reset: Option<Reason>,
    flush_requested: bool,
    send_waker: Option<Waker>,
    high_water: u64,
    low_water: u64,
    server_header: Option<Bytes>,
    driver_waker: Option<Waker>,
    /// `send` yielded for the budget: its next poll waits on the high-water mark, as it would
    /// have without yielding.
    budget_yield: bool,
    // ----- connection -----
    disconnected: Option<DisconnectReason>,
    disc_wakers: Vec<Waker>,
    sse: Option<SseState>,
}

/// Per-stream facts known before the app runs.
#[derive(Debug, Clone)]
pub(crate) struct Setup {
    pub(crate) head_request: bool,
    pub(crate) connect: bool,
    pub(crate) sse: bool,
    /// The request has no body (END_STREAM on its HEADERS).
    pub(crate) body_empty: bool,
    pub(crate) high_water: u64,
    pub(crate) low_water: u64,
    pub(crate) server_header: Option<Bytes>,
}

impl St {
    #[cfg(test)]
    pub(crate) fn new(s: Setup) -> Self {
        let mut st = St::default();
        st.set_up(s);
        st
    }

    /// Sets the per-stream facts on a fresh state.
    pub(crate) fn set_up(&mut self, s: Setup) {
        self.head_request = s.head_request;
        self.connect = s.connect;
        self.body_finished = s.body_empty;
        self.high_water = s.high_water;
        self.low_water = s.low_water;
        self.server_header = s.server_header;
        if s.sse {
            self.sse = Some(SseState::default());
        }
    }

    /// Puts request body the server already holds (the body of an h2c upgrade request) in
    /// front of what the stream delivers; it owes nothing to the peer's window.
    pub(crate) fn preload(&mut self, body: Bytes) {
        if !body.is_empty() {
            self.inbound.push_back(body);
        }
        self.body_finished = true;
    }

    /// Wakes the driver, unless it is polling the app (`in_app`) and looks at the state after.
    fn poke_driver(&mut self, in_app: bool) {
        if !in_app {
            if let Some(w) = &self.driver_waker {
                w.wake_by_ref();
            }
        }
    }

    /// Bytes held for the response, with the cost of each queue entry.
    fn held(&self) -> u64 {
        self.out_len + self.out.len() as u64 * PIECE_COST
    }

    /// Marks the client gone (once); queued output is dropped.
    pub(crate) fn disconnect(&mut self, reason: DisconnectReason) {
        if self.disconnected.is_none() {
            self.disconnected = Some(reason);
        }
        self.out.clear();
        self.out_len = 0;
        self.head = None;
        self.hints.clear();
    }

    fn take_app_wakers(&mut self, out: &mut Vec<Waker>) {
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
        if self.send_waker.is_some()
            && (gone || (self.held() <= threshold && self.hints.is_empty()))
        {
            out.extend(self.send_waker.take());
        }
        if gone && !self.disc_wakers.is_empty() {
            out.append(&mut self.disc_wakers);
        }
    }

    fn push(&mut self, bytes: Bytes, file: Option<(File, u64)>) {
        if !bytes.is_empty() {
            self.out_len += bytes.len() as u64;
            if let Some(bytes) = self.gather(bytes) {
                self.out.push_back(Out::Bytes(bytes));
            }
        }
        if let Some((file, n)) = file {
            if n > 0 {
                self.out_len += n;
                self.out.push_back(Out::File { file, remaining: n });
            }
        }
    }

    /// Copies a small piece into the last queued buffer when it fits (turning a small queued
    /// piece into a buffer first); gives the piece back when it is to be queued as it is.
    fn gather(&mut self, bytes: Bytes) -> Option<Bytes> {
        let n = bytes.len();
        if n >= COALESCE_BELOW {
            return Some(bytes);
        }
        match self.out.back_mut() {
            Some(Out::Gathered(buf)) if buf.len() + n <= COALESCE_MAX => {
                buf.extend_from_slice(&bytes);
                None
            }
            Some(last @ Out::Bytes(_)) => {
                let Out::Bytes(prev) = last else {
                    return Some(bytes);
                };
                if prev.len() >= COALESCE_BELOW {
                    return Some(bytes);
                }
                let mut buf = BytesMut::with_capacity((2 * (prev.len() + n)).max(512));
                buf.extend_from_slice(prev);
                buf.extend_from_slice(&bytes);
                *last = Out::Gathered(buf);
                None
            }
            _ => Some(bytes),
        }
    }

    fn poll_receive(
        &mut self,
        cx: &mut Context<'_>,
        in_app: bool,
    ) -> Poll<Result<ReceiveEvent, Error>> {
        if self.disconnected.is_some() || self.finished || self.response_done() {
            return Poll::Ready(Ok(ReceiveEvent::HttpDisconnect));
        }
        if let Some(body) = self.inbound.pop_front() {
            self.release += body.len();
            let more = !(self.inbound.is_empty() && self.body_finished);
            self.eof_delivered = !more;
            self.poke_driver(in_app);
            return Poll::Ready(Ok(ReceiveEvent::HttpRequest { body, more }));
        }
        if self.body_finished && !self.eof_delivered {
            self.eof_delivered = true;
            return Poll::Ready(Ok(ReceiveEvent::HttpRequest {
                body: Bytes::new(),
                more: false,
            }));
        }
        if !self.body_finished {
            self.want_body = true;
            self.poke_driver(in_app);
        }
        self.recv_waker = Some(cx.waker().clone());
        Poll::Pending
    }
}

impl HttpTarget for St {
    fn response_started(&self) -> bool {
        !matches!(self.resp, Resp::Init)
    }

    fn response_done(&self) -> bool {
        matches!(self.resp, Resp::Done)
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
        check_status(status, self.connect)?;
        let (head, length, slot) =
            memo_head(status, headers, self.server_header.as_ref(), self.connect)?;
        self.resp = Resp::Pending {
            head,
            trailers,
            length,
            slot,
        };
        Ok(())
    }

    /// Commits a held head. `final_len`: the whole body's length when it is already known.
    fn encode_pending_head(&mut self, final_len: Option<u64>) {
        if !matches!(self.resp, Resp::Pending { .. }) {
            return;
        }
        let Resp::Pending {
            mut head,
            trailers,
            length,
            slot,
        } = std::mem::take(&mut self.resp)
        else {
            return;
        };
        let status = head.status().as_u16();
        let discard = self.head_request || status == 204 || status == 304;
        let known = match status {
            204 => None,
            304 => length,
            _ => length.or(final_len),
        };
        if length.is_none() {
            // The app set no `content-length` (its value would be `length`): the server's goes
            // in the head's slot for it, or is appended (no lookup).
            let map = head.headers_mut();
            match (known, slot) {
                (Some(n), true) => {
                    // The slot is one of a few entries: found by walking them, not hashing.
                    let v = content_length(n);
                    match map
                        .iter_mut()
                        .find(|(name, _)| **name == http::header::CONTENT_LENGTH)
                    {
                        Some((_, slot)) => *slot = v,
                        None => {
                            map.insert(http::header::CONTENT_LENGTH, v);
                        }
                    }
                }
                (Some(n), false) => {
                    map.append(http::header::CONTENT_LENGTH, content_length(n));
                }
                (None, true) => drop(map.remove(http::header::CONTENT_LENGTH)),
                (None, false) => {}
            }
        }
        self.head = Some(head);
        self.resp = Resp::Body {
            trailers,
            remaining: if discard { None } else { known },
            discard,
        };
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
        let Resp::Body {
            trailers,
            remaining,
            discard,
        } = &mut self.resp
        else {
            return Ok(());
        };
        let (trailers, discard) = (*trailers, *discard);
        if discard {
            // No body on the wire; the bytes are dropped.
        } else if let Some(rem) = remaining {
            if len > *rem {
                // Send what the length allows and end the stream there: the app lied.
                let allowed = *rem;
                let (bytes, file) = truncate(bytes, file, allowed);
                self.push(bytes, file);
                self.resp = Resp::Done;
                self.end = true;
                return Err(Error::invalid(
                    "response body longer than its content-length",
                ));
            }
            *rem -= len;
            let short = !more && *rem != 0;
            self.push(bytes, file);
            if short {
                tracing::warn!(
                    "response body shorter than its content-length; resetting the stream"
                );
                self.reset = Some(Reason::INTERNAL_ERROR);
                self.resp = Resp::Done;
                return Err(Error::invalid(
                    "response body shorter than its content-length",
                ));
            }
        } else {
            self.push(bytes, file);
        }
        if !more {
            if trailers {
                self.resp = Resp::Trailers { discard };
            } else {
                self.resp = Resp::Done;
                self.end = true;
            }
        }
        Ok(())
    }

    fn trailers(&mut self, headers: Headers) -> Result<(), Error> {
        let Resp::Trailers { discard } = self.resp else {
            return Err(Error::out_of_order(
                "http.response.trailers needs trailers: 1 on the start and a complete body first",
            ));
        };
        if headers.check().is_err() {
            return Err(Error::invalid(
                "trailer field has a bad name or a CR, LF or NUL in its value",
            ));
        }
        let map = header_map(&headers, None)?;
        if !discard && !map.is_empty() {
            self.trailers = Some(map);
        }
        self.resp = Resp::Done;
        self.end = true;
        Ok(())
    }

    /// `http.response.early_hint`: a HEADERS frame with `:status: 103`, handed to `h2` by the
    /// driver before anything else of the response; the send waits until it has been.
    fn early_hint(&mut self, headers: Headers) -> Result<(), Error> {
        if !matches!(self.resp, Resp::Init) {
            return Err(Error::out_of_order(
                "http.response.early_hint after http.response.start",
            ));
        }
        crate::proto::h1::exchange::check_early_hint(&headers)?;
        let mut hint = http::Response::new(());
        *hint.status_mut() = http::StatusCode::EARLY_HINTS;
        *hint.headers_mut() = header_map(&headers, None)?;
        self.hints.push_back(hint);
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
        // One stream ending does not end an HTTP/2 connection.
    }
}

/// Fields that are about one HTTP/1.1 connection and have no meaning in HTTP/2 (RFC 9113
/// §8.2.2): dropped from responses (with `te` unless it is `trailers`), as the HTTP/1.1
/// engine would have used them.
fn connection_specific(name: &[u8], value: &[u8]) -> bool {
    let is = |s: &[u8]| name.eq_ignore_ascii_case(s);
    is(b"connection")
        || is(b"keep-alive")
        || is(b"proxy-connection")
        || is(b"transfer-encoding")
        || is(b"upgrade")
        || (is(b"te") && !value.eq_ignore_ascii_case(b"trailers"))
}

/// An app's header list as an HTTP/2 header map (already checked by `check_headers`).
fn header_map(headers: &Headers, extra: Option<usize>) -> Result<HeaderMap, Error> {
    Ok(header_map_seen(headers, extra)?.0)
}

/// [`header_map`], and whether the list had a `date` and a `server` field.
fn header_map_seen(
    headers: &Headers,
    extra: Option<usize>,
) -> Result<(HeaderMap, bool, bool), Error> {
    let mut map = HeaderMap::with_capacity(headers.len() + extra.unwrap_or(0));
    let (mut date, mut server) = (false, false);
    for (n, v) in headers {
        let name = match common_name(n) {
            Some(name) => name,
            None if connection_specific(n, v) => continue,
            None => HeaderName::from_bytes(n).map_err(|_| {
                Error::invalid(format!(
                    "header {:?} is not a valid field name",
                    String::from_utf8_lossy(n)
                ))
            })?,
        };
        let value = HeaderValue::from_maybe_shared(v.clone()).map_err(|_| {
            Error::invalid(format!(
                "header {:?} has a control character in its value",
                String::from_utf8_lossy(n)
            ))
        })?;
        date |= name == http::header::DATE;
        server |= name == http::header::SERVER;
        map.append(name, value);
    }
    Ok((map, date, server))
}

/// The field names apps send most, as written by most of them (lowercase), without
/// `HeaderName::from_bytes`'s copy-and-lookup; none is connection-specific.
fn common_name(n: &[u8]) -> Option<HeaderName> {
    use http::header;
    Some(match n {
        b"content-type" => header::CONTENT_TYPE,
        b"content-length" => header::CONTENT_LENGTH,
        b"cache-control" => header::CACHE_CONTROL,
        b"location" => header::LOCATION,
        b"set-cookie" => header::SET_COOKIE,
        b"etag" => header::ETAG,
        b"last-modified" => header::LAST_MODIFIED,
        b"vary" => header::VARY,
        b"content-encoding" => header::CONTENT_ENCODING,
        _ => return None,
    })
}

/// The response head for `http.response.start`: the app's fields (connection-specific ones
/// dropped) plus `date` and `server` unless the app set them, as on HTTP/1.1.
pub(crate) fn response_head(
    status: u16,
    headers: &Headers,
    server: Option<&Bytes>,
) -> Result<http::Response<()>, Error> {
    // Room for `date`, `server` and a `content-length` added later: no rehash on the way.
    let (mut map, has_date, has_server) = header_map_seen(headers, Some(3))?;
    if !has_date {
        if let Some(d) = date() {
            map.append(http::header::DATE, d);
        }
    }
    if let Some(v) = server.filter(|_| !has_server).and_then(server_value) {
        map.append(http::header::SERVER, v);
    }
    let status = http::StatusCode::from_u16(status)
        .map_err(|_| Error::invalid(format!("status {status} is not valid")))?;
    let mut head = http::Response::new(());
    *head.status_mut() = status;
    *head.headers_mut() = map;
    Ok(head)
}

/// The last response head a thread made from an app's fields: the next start with the same
/// fields (the same bytes, so checked already), `server` value and date gets a clone of it
/// instead of checking the fields and building a header map again. Apps answer with a few
/// shapes of head (`content-type` and the like; `content-length` is added later, per body).
struct HeadMemo {
    fields: Headers,
    server: Option<Bytes>,
    date: [u8; 29],
    /// The `content-length` the fields announce.
    length: Option<u64>,
    map: HeaderMap,
}

thread_local! {
    static HEAD_MEMO: std::cell::RefCell<Option<HeadMemo>> = const { std::cell::RefCell::new(None) };
}

/// The checked head of `http.response.start` (the status already checked), with the
/// `content-length` its fields announce; from [`HeadMemo`] when it has the same fields.
///
/// When the fields announce no length, the memo's map holds a `content-length` slot for the
/// one the server adds (filled in place: a clone has no room to append to); the third value
/// says whether the head has that slot.
fn memo_head(
    status: u16,
    fields: Headers,
    server: Option<&Bytes>,
    connect: bool,
) -> Result<(http::Response<()>, Option<u64>, bool), Error> {
    let code = http::StatusCode::from_u16(status)
        .map_err(|_| Error::invalid(format!("status {status} is not valid")))?;
    let head = |map: HeaderMap| {
        let mut head = http::Response::new(());
        *head.status_mut() = code;
        *head.headers_mut() = map;
        head
    };
    let hit = crate::proto::h1::encode::with_date(|now| {
        HEAD_MEMO.with(|cell| {
            let memo = cell.borrow();
            let m = memo.as_ref()?;
            (m.date[..] == *now && m.server.as_ref() == server && m.fields == fields)
                .then(|| (m.map.clone(), m.length))
        })
    });
    if let Some((map, length)) = hit {
        return Ok((head(map), length, length.is_none()));
    }
    let checked = check_start(status, &fields, connect)?;
    // Taken before the head is made: if the second turns in between, the memo is stale at
    // once rather than a second late.
    let mut date = [0u8; 29];
    crate::proto::h1::encode::with_date(|now| {
        if now.len() == date.len() {
            date.copy_from_slice(now);
        }
    });
    let built = response_head(status, &fields, server)?;
    let mut map = built.headers().clone();
    if checked.length.is_none() {
        map.append(http::header::CONTENT_LENGTH, HeaderValue::from_static("0"));
    }
    HEAD_MEMO.with(|cell| {
        *cell.borrow_mut() = Some(HeadMemo {
            fields,
            server: server.cloned(),
            date,
            length: checked.length,
            map,
        });
    });
    Ok((built, checked.length, false))
}

/// The current `Date` value, made once a second per thread (clones share its bytes).
fn date() -> Option<HeaderValue> {
    thread_local! {
        static DATE: std::cell::RefCell<Option<HeaderValue>> = const { std::cell::RefCell::new(None) };
    }
    crate::proto::h1::encode::with_date(|now| {
        DATE.with(|cell| {
            let mut c = cell.borrow_mut();
            if c.as_ref().is_none_or(|v| v.as_bytes() != now) {
                *c = HeaderValue::from_bytes(now).ok();
            }
            c.clone()
        })
    })
}

/// The `server` field's value, checked once per thread and value rather than per response
/// (clones share its bytes, and `h2`'s encoder finds it in its table as before).
fn server_value(s: &Bytes) -> Option<HeaderValue> {
    thread_local! {
        static SERVER: std::cell::RefCell<Option<HeaderValue>> = const { std::cell::RefCell::new(None) };
    }
    SERVER.with(|cell| {
        let mut c = cell.borrow_mut();
        if c.as_ref().is_none_or(|v| v.as_bytes() != s.as_ref()) {
            *c = Some(HeaderValue::from_maybe_shared(s.clone()).ok()?);
        }
        c.clone()
    })
}

/// A `content-length` value. The last one made on this thread is kept: responses of one size
/// (the common case for a given route) then share its bytes instead of formatting and
/// allocating a value each.
fn content_length(n: u64) -> HeaderValue {
    thread_local! {
        static LAST: std::cell::RefCell<Option<(u64, HeaderValue)>> = const { std::cell::RefCell::new(None) };
    }
    LAST.with(|cell| {
        let mut c = cell.borrow_mut();
        match &*c {
            Some((m, v)) if *m == n => v.clone(),
            _ => {
                // Shared bytes from the start, so that clones (ours and `h2`'s) only count.
                let v = HeaderValue::from_maybe_shared(Bytes::copy_from_slice(
                    itoa::Buffer::new().format(n).as_bytes(),
                ))
                .unwrap_or_else(|_| HeaderValue::from(n));
                *c = Some((n, v.clone()));
                v
            }
        }
    })
}

impl Sink for Stream {
    fn poll_send(
        &self,
        cx: &mut Context<'_>,
        event: &mut Option<SendEvent>,
    ) -> Poll<Result<(), Error>> {
        let mut st = self.lock();
        let in_app = self.app_poll.load(Ordering::Relaxed);
        let threshold = if let Some(ev) = event.take() {
            if st.disconnected.is_some() {
                return Poll::Ready(Ok(())); // send after close: a no-op
            }
            if st.finished {
                return Poll::Ready(Err(Error::out_of_order("the request is over")));
            }
            let r = st.accept(ev);
            st.poke_driver(in_app != 0);
            r?;
            if in_app != 0 {
                self.app_poll.store(in_app + 1, Ordering::Relaxed);
                if in_app > SEND_BUDGET {
                    // Yield: the event is taken; the next poll (right after the connection's
                    // other work) returns once the queue is below the mark.
                    st.budget_yield = true;
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                }
            }
            if st.flush_requested {
                0
            } else {
                st.high_water
            }
        } else if st.flush_requested {
            0
        } else if std::mem::take(&mut st.budget_yield) {
            st.high_water
        } else {
            st.low_water
        };
        if st.disconnected.is_some()
            || st.finished
            || (st.held() <= threshold && st.hints.is_empty())
        {
            st.flush_requested = false;
            return Poll::Ready(Ok(()));
        }
        // Backpressure: wait for the driver to hand the queue to h2.
        st.send_waker = Some(cx.waker().clone());
        Poll::Pending
    }
}

impl Source for Stream {
    fn poll_receive(&self, cx: &mut Context<'_>) -> Poll<Result<ReceiveEvent, Error>> {
        let mut st = self.lock();
        let polled = st.poll_receive(cx, self.app_poll.load(Ordering::Relaxed) != 0);
        if st.sse.is_none() {
            return polled;
        }
        polled.map_ok(|ev| {
            crate::proto::h1::sse::sse_receive_event(ev, st.disconnected.as_ref(), st.sse.as_ref())
        })
    }
}

impl ConnectionInfo for Stream {
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
        Some(st.response_done() && st.out.is_empty() && st.head.is_none())
    }
}

// ===== impl Driver =====

/// Moves one stream's bytes between `h2` and its [`Stream`], on the connection's task.
pub(crate) struct Driver {
    pub(crate) stream: std::sync::Arc<Stream>,
    w: Wire,
}

/// The `h2` side of a [`Driver`]: apart from the stream state so that both can be borrowed at
/// once (no `Arc` clone per poll).
struct Wire {
    respond: Option<SendResponse<Bytes>>,
    send: Option<SendStream<Bytes>>,
    recv: Option<RecvStream>,
    max_body: u64,
    body_read: u64,
    /// Why the server refused the request after the app started (413 while nothing was sent).
    reject: Option<Reject>,
    result: Option<Result<(), BoxError>>,
    keepalive_timer: Option<Pin<Box<Sleep>>>,
    /// Graceful shutdown, watched by SSE streams only (they end then).
    shutdown: Option<Pin<Box<WaitForCancellationFutureOwned>>>,
    /// The I/O stall guard (`timeout_io`; zero: off): when the current stall ends the stream.
    io_timeout: Duration,
    stall: Option<Instant>,
    stall_timer: Option<Pin<Box<Sleep>>>,
    /// Response pieces handed to `h2` so far (progress for the stall guard).
    handed: u64,
    /// RST_STREAM already sent by the stall guard.
    reset_sent: bool,
}

pin_project_lite::pin_project! {
    /// One stream's future: its app (held inline: one allocation per stream for both, in the
    /// connection's `FuturesUnordered`) and the driver, or a refusal when there is no app.
    pub(crate) struct StreamTask<F> {
        driver: Driver,
        #[pin]
        app: Option<F>,
        refuse: Reject,
    }
}

impl<F> StreamTask<F> {
    /// `app`: the app's call, or `None` to answer with `refuse` instead.
    pub(crate) fn new(driver: Driver, app: Option<F>, refuse: Reject) -> Self {
        StreamTask {
            driver,
            app,
            refuse,
        }
    }
}

impl<F> StreamTask<F>
where
    F: Future<Output = Result<(), BoxError>>,
{
    /// Runs the app alone (not the driver) if it has not returned yet. The connection runs
    /// the apps of the streams it has just accepted one after another before driving their
    /// output, so that each stage's code stays in the CPU's instruction cache across a batch;
    /// the full poll that follows sees the result.
    pub(crate) fn poll_app(self: Pin<&mut Self>, cx: &mut Context<'_>) {
        let this = self.project();
        if let Some(app) = this.app.as_pin_mut() {
            let Driver { stream, w } = this.driver;
            if w.result.is_none() {
                drop(Driver::run_app(&mut w.result, stream, cx, app));
            }
        }
    }
}

impl<F> std::fmt::Debug for StreamTask<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamTask").finish_non_exhaustive()
    }
}

impl<F> Future for StreamTask<F>
where
    F: Future<Output = Result<(), BoxError>>,
{
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.project();
        match this.app.as_pin_mut() {
            Some(app) => {
                if this.driver.poll(cx, app).is_pending() {
                    return Poll::Pending;
                }
                this.driver.finish();
            }
            None => this.driver.refuse(*this.refuse),
        }
        Poll::Ready(())
    }
}

impl std::fmt::Debug for Driver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Driver").finish_non_exhaustive()
    }
}

impl Driver {
    pub(crate) fn new(
        stream: std::sync::Arc<Stream>,
        respond: SendResponse<Bytes>,
        recv: Option<RecvStream>,
        max_body: u64,
        io_timeout: Duration,
        shutdown: Option<Pin<Box<WaitForCancellationFutureOwned>>>,
    ) -> Self {
        Driver {
            stream,
            w: Wire {
                respond: Some(respond),
                send: None,
                recv,
                max_body,
                body_read: 0,
                reject: None,
                result: None,
                keepalive_timer: None,
                shutdown,
                io_timeout,
                stall: None,
                stall_timer: None,
                handed: 0,
                reset_sent: false,
            },
        }
    }

    /// Answers a request refused before the app was called.
    fn refuse(&mut self, reject: Reject) {
        if let Some(r) = self.w.respond.take() {
            send_reject(r, reject, self.stream.lock().server_header.as_ref());
        }
    }

    fn poll<F>(&mut self, cx: &mut Context<'_>, mut app: Pin<&mut F>) -> Poll<()>
    where
        F: Future<Output = Result<(), BoxError>>,
    {
        let mut wakers: Vec<Waker> = Vec::new();
        let Driver { stream, w } = self;
        loop {
            let mut st = if w.result.is_none() {
                Self::run_app(&mut w.result, stream, cx, app.as_mut())
            } else {
                stream.lock()
            };
            let app_done = w.result.is_some();
            if st.sse.is_some() && st.disconnected.is_none() {
                if app_done {
                    st.sse_end(false);
                } else if w
                    .shutdown
                    .as_mut()
                    .is_some_and(|s| s.as_mut().poll(cx).is_ready())
                {
                    st.sse_end(true);
                }
                poll_sse_keepalive(cx, &mut *st, &mut w.keepalive_timer);
            }
            if matches!(st.resp, Resp::Pending { .. }) {
                // The app yielded (or ended) after the start without completing the body: the
                // head goes out now, for a streamed body.
                st.encode_pending_head(None);
            }
            let handed = w.handed;
            if !app_done || st.response_done() {
                w.pump_out(cx, &mut st);
            }
            if !(app_done && st.end_sent) {
                // (Once both are over, a reset from the client changes nothing.)
                w.watch_reset(cx, &mut st);
            }
            let write_stalled =
                st.disconnected.is_none() && st.reset.is_none() && !st.out.is_empty();
            let mut progress = w.handed != handed;
            let mut read_stalled = false;
            if st.disconnected.is_none() && !app_done {
                let waiting = st.want_body && st.inbound.is_empty() && !st.body_finished;
                w.pump_in(cx, &mut st);
                read_stalled = waiting
                    && st.disconnected.is_none()
                    && st.inbound.is_empty()
                    && !st.body_finished;
                progress |= waiting && !read_stalled;
            }
            if write_stalled || read_stalled || w.stall.is_some() {
                w.guard_stall(cx, &mut st, progress, write_stalled, read_stalled);
            }
            if st.release > 0 {
                let n = std::mem::take(&mut st.release);
                if let Some(r) = w.recv.as_mut() {
                    let _ = r.flow_control().release_capacity(n);
                }
            }
            st.take_app_wakers(&mut wakers);
            let out_done = st.disconnected.is_some()
                || st.reset.is_some()
                || !st.response_done()
                || st.end_sent;
            if !(app_done && out_done) {
                // Only a stream that waits needs to be woken by its app's handles.
                crate::proto::wake::register(&mut st.driver_waker, cx);
            }
            drop(st);
            let again = crate::proto::wake::wake_others(&mut wakers, cx);
            if app_done && out_done {
                return Poll::Ready(());
            }
            if !again || app_done {
                return Poll::Pending;
            }
        }
    }

    /// Polls the app once (a panic is its error) and returns the stream state, locked.
    fn run_app<'s, F>(
        result: &mut Option<Result<(), BoxError>>,
        stream: &'s Stream,
        cx: &mut Context<'_>,
        app: Pin<&mut F>,
    ) -> MutexGuard<'s, St>
    where
        F: Future<Output = Result<(), BoxError>>,
    {
        stream.app_poll.store(1, Ordering::Relaxed);
        let polled = std::panic::catch_unwind(AssertUnwindSafe(|| app.poll(cx)));
        // Before the lock: a send from another thread that takes the lock after this one sees
        // it and wakes the driver.
        stream.app_poll.store(0, Ordering::Relaxed);
        let mut st = stream.lock();
        let done = match polled {
            Ok(Poll::Ready(r)) => Some(r),
            Ok(Poll::Pending) => None,
            Err(panic) => Some(Err(crate::proto::h1::conn::panic_message(panic).into())),
        };
        if let Some(r) = done {
            *result = Some(r);
            st.finished = true;
        }
        st
    }
}

impl Wire {
    /// The I/O stall guard, as on HTTP/1.1: a client that takes no response byte while some
    /// is queued (its window stays shut), or sends no body byte while the app waits for one,
    /// for `timeout_io` ends the stream: RST_STREAM(CANCEL) (or `408` when nothing was sent
    /// and the app waited for body), and the app sees `http.disconnect`.
    fn guard_stall(
        &mut self,
        cx: &mut Context<'_>,
        st: &mut St,
        progress: bool,
        write_stalled: bool,
        read_stalled: bool,
    ) {
        let limit = self.io_timeout;
        if progress || !(write_stalled || read_stalled) || limit.is_zero() {
            self.stall = None;
        }
        if !(write_stalled || read_stalled) || limit.is_zero() {
            return;
        }
        let deadline = *self.stall.get_or_insert_with(|| Instant::now() + limit);
        if super::conn::poll_deadline(&mut self.stall_timer, cx, deadline).is_pending() {
            return;
        }
        self.stall = None;
        tracing::info!(?limit, "h2: client stalled; ending the stream");
        if write_stalled {
            st.disconnect(DisconnectReason::WriteTimeout);
        } else {
            st.disconnect(DisconnectReason::ClientTimeout);
        }
        if !write_stalled && self.send.is_none() {
            // Nothing sent yet: a 408 answers when the app returns (RST_STREAM(CANCEL) if it
            // had started a response).
            self.reject = Some(Reject::Timeout);
            return;
        }
        if let Some(s) = self.send.as_mut() {
            s.send_reset(Reason::CANCEL);
        } else if let Some(r) = self.respond.as_mut() {
            r.send_reset(Reason::CANCEL);
        }
        self.reset_sent = true;
    }

    /// Hands the head, the queued body and the end of the stream to `h2`, within the peer's
    /// flow-control window.
    fn pump_out(&mut self, cx: &mut Context<'_>, st: &mut St) {
        if st.disconnected.is_some() || st.reset.is_some() {
            return;
        }
        while let Some(hint) = st.hints.pop_front() {
            if let Some(respond) = self.respond.as_mut() {
                if let Err(e) = respond.send_informational(hint) {
                    // The stream is gone; the reset is noticed on its own.
                    tracing::debug!(error = %e, "h2: cannot send a 103 Early Hints");
                }
            }
        }
        if let Some(head) = st.head.take() {
            let eos = st.end && st.out.is_empty() && st.trailers.is_none();
            let Some(mut respond) = self.respond.take() else {
                return;
            };
            match respond.send_response(head, eos) {
                Ok(s) => {
                    self.send = Some(s);
                    st.end_sent = eos;
                    self.handed += 1;
                }
                Err(e) => {
                    tracing::debug!(error = %e, "h2: cannot send the response head");
                    st.disconnect(DisconnectReason::WriteError);
                    return;
                }
            }
        }
        let Some(send) = self.send.as_mut() else {
            return;
        };
        loop {
            if st.out.is_empty() {
                if st.end && !st.end_sent {
                    let r = match st.trailers.take() {
                        Some(t) => send.send_trailers(t),
                        None => send.send_data(Bytes::new(), true),
                    };
                    if r.is_err() {
                        st.disconnect(DisconnectReason::WriteError);
                    }
                    st.end_sent = true;
                }
                return;
            }
            send.reserve_capacity(st.out_len.min(MAX_RESERVE) as usize);
            let cap = send.capacity();
            if cap == 0 {
                match send.poll_capacity(cx) {
                    Poll::Ready(Some(Ok(_))) => continue,
                    Poll::Ready(Some(Err(_)) | None) => {
                        st.disconnect(DisconnectReason::ClientClosed);
                        return;
                    }
                    Poll::Pending => return,
                }
            }
            let Some(chunk) = take_chunk(&mut st.out, cap) else {
                st.disconnect(DisconnectReason::ServerError);
                return;
            };
            st.out_len -= chunk.len() as u64;
            self.handed += 1;
            let eos = st.out.is_empty() && st.end && st.trailers.is_none();
            if send.send_data(chunk, eos).is_err() {
                st.disconnect(DisconnectReason::WriteError);
                return;
            }
            st.end_sent = eos;
        }
    }

    /// Notices the client resetting the stream (or the connection failing).
    fn watch_reset(&mut self, cx: &mut Context<'_>, st: &mut St) {
        if st.disconnected.is_some() {
            return;
        }
        let polled = if let Some(s) = self.send.as_mut() {
            s.poll_reset(cx)
        } else if let Some(r) = self.respond.as_mut() {
            r.poll_reset(cx)
        } else {
            return;
        };
        match polled {
            Poll::Ready(Ok(reason)) => {
                if !st.end_sent || st.finished {
                    tracing::debug!(%reason, "h2: stream reset by the client");
                }
                st.disconnect(DisconnectReason::ClientClosed);
            }
            Poll::Ready(Err(e)) => {
                tracing::debug!(error = %e, "h2: stream ended by a connection error");
                st.disconnect(if e.is_io() {
                    DisconnectReason::ReadError
                } else {
                    DisconnectReason::ClientClosed
                });
            }
            Poll::Pending => {}
        }
    }

    /// Reads the next body piece for an app that waits for one.
    fn pump_in(&mut self, cx: &mut Context<'_>, st: &mut St) {
        if !(st.want_body && st.inbound.is_empty() && !st.body_finished) {
            return;
        }
        let Some(recv) = self.recv.as_mut() else {
            st.body_finished = true;
            return;
        };
        loop {
            match recv.poll_data(cx) {
                Poll::Ready(Some(Ok(b))) => {
                    self.body_read += b.len() as u64;
                    if self.max_body > 0 && self.body_read > self.max_body {
                        tracing::info!("h2: request body over the limit");
                        let _ = recv.flow_control().release_capacity(b.len());
                        st.disconnect(DisconnectReason::BodyTooLarge);
                        self.reject = Some(Reject::BodyTooLarge);
                        return;
                    }
                    if b.is_empty() {
                        if recv.is_end_stream() {
                            st.body_finished = true;
                            return;
                        }
                        continue;
                    }
                    st.inbound.push_back(b);
                    st.body_finished = recv.is_end_stream();
                    return;
                }
                Poll::Ready(None) => {
                    st.body_finished = true;
                    return;
                }
                Poll::Ready(Some(Err(e))) => {
                    let reason = if e.is_reset() || e.is_go_away() {
                        DisconnectReason::ClientClosed
                    } else if e.is_io() {
                        DisconnectReason::ReadError
                    } else {
                        DisconnectReason::ProtocolError
                    };
                    tracing::debug!(error = %e, "h2: request body failed");
                    st.disconnect(reason);
                    return;
                }
                Poll::Pending => return,
            }
        }
    }
}

impl Driver {
    /// After the app returned: the 500 backstop, refusals and broken responses.
    fn finish(&mut self) {
        let result = self.w.result.take();
        let (started, done, gone, reset, server) = {
            let st = self.stream.lock();
            (
                st.response_started(),
                st.response_done(),
                st.disconnected.clone(),
                st.reset,
                st.server_header.clone(),
            )
        };
        if let Some(Err(e)) = &result {
            if started {
                tracing::error!(error = %e, "app failed after the response started; resetting the stream");
            } else if gone.is_none() || self.w.reject.is_some() {
                tracing::error!(error = %e, "app failed before starting a response");
            }
        }
        let reject = if !started {
            match (self.w.reject, &gone) {
                (Some(r), _) => Some(r),
                (None, None) => {
                    if result.as_ref().is_some_and(|r| r.is_ok()) {
                        tracing::error!("app returned without starting a response");
                    }
                    Some(Reject::AppError)
                }
                (None, Some(_)) => None,
            }
        } else {
            None
        };
        if let Some(r) = reject {
            if let Some(respond) = self.w.respond.take() {
                send_reject(respond, r, server.as_ref());
            }
            return;
        }
        let reason = if let Some(r) = self.w.reject {
            Some(r.h2_reason())
        } else if let Some(r) = reset {
            Some(r)
        } else if gone.is_some() {
            Some(Reason::CANCEL)
        } else if started && !done {
            tracing::warn!("app returned before completing the response; resetting the stream");
            Some(Reason::INTERNAL_ERROR)
        } else {
            None
        };
        if let Some(reason) = reason.filter(|_| !self.w.reset_sent) {
            if let Some(s) = self.w.send.as_mut() {
                s.send_reset(reason);
            } else if let Some(r) = self.w.respond.as_mut() {
                r.send_reset(reason);
            }
        }
        // Dropping the handles now: if the request body is still coming, h2 sends
        // RST_STREAM(NO_ERROR) after the response (RFC 9113 §8.1).
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // Tell app handles that outlive the stream (spawned tasks) that it is gone.
        let mut wakers = Vec::new();
        {
            let mut st = self.stream.lock();
            if !st.finished {
                st.finished = true;
                st.disconnect(DisconnectReason::ServerShutdown);
            }
            st.take_app_wakers(&mut wakers);
        }
        wakers.into_iter().for_each(Waker::wake);
    }
}

/// The next piece of at most `cap` bytes from the queue. `None` when a file cannot be read.
fn take_chunk(out: &mut OutQueue, cap: usize) -> Option<Bytes> {
    match out.front_mut()? {
        Out::Bytes(b) => {
            if b.len() <= cap {
                match out.pop_front() {
                    Some(Out::Bytes(b)) => Some(b),
                    _ => None,
                }
            } else {
                Some(b.split_to(cap))
            }
        }
        Out::Gathered(b) => {
            if b.len() <= cap {
                match out.pop_front() {
                    Some(Out::Gathered(b)) => Some(b.freeze()),
                    _ => None,
                }
            } else {
                Some(b.split_to(cap).freeze())
            }
        }
        Out::File { file, remaining } => {
            let n = (*remaining).min(FILE_CHUNK).min(cap as u64) as usize;
            let mut buf = vec![0u8; n];
            if let Err(e) = file.read_exact(&mut buf) {
                tracing::error!(error = %e, "h2: reading a response file failed");
                return None;
            }
            *remaining -= n as u64;
            if *remaining == 0 {
                out.pop_front();
            }
            Some(Bytes::from(buf))
        }
    }
}

/// Sends a refusal as the stream's whole response.
pub(crate) fn send_reject(
    mut respond: SendResponse<Bytes>,
    reject: Reject,
    server: Option<&Bytes>,
) {
    let body = reject.h2_body();
    let mut headers = Headers::new()
        .with("content-type", "text/plain; charset=utf-8")
        .with("content-length", body.len().to_string());
    if let Some((n, v)) = reject.extra_field() {
        headers.push(n, v);
    }
    let Ok(head) = response_head(reject.h2_status(), &headers, server) else {
        respond.send_reset(Reason::INTERNAL_ERROR);
        return;
    };
    if let Ok(mut s) = respond.send_response(head, false) {
        let _ = s.send_data(Bytes::from(body), true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st() -> St {
        St::new(Setup {
            head_request: false,
            connect: false,
            sse: false,
            body_empty: true,
            high_water: 64 * 1024,
            low_water: 16 * 1024,
            server_header: Some(Bytes::from_static(b"pagi-server")),
        })
    }

    #[test]
    fn a_repeated_start_reuses_the_head_and_gets_its_own_length() {
        // (Each test runs on a thread of its own: the memo starts empty here.)
        let mut hits = Vec::new();
        for (body, more) in [
            ("hello", false),
            ("hi", false),
            ("streamed", true),
            ("x", false),
        ] {
            let mut s = st();
            s.start_response(
                200,
                Headers::new().with("content-type", "text/plain"),
                false,
            )
            .unwrap();
            hits.push(matches!(s.resp, Resp::Pending { slot: true, .. }));
            let mut b = ResponseBody::default();
            b.bytes = Bytes::from_static(body.as_bytes());
            b.more = more;
            s.response_body(b).unwrap();
            let head = s.head.take().unwrap();
            let h = head.headers();
            assert_eq!(h["content-type"], "text/plain");
            assert_eq!(h["server"], "pagi-server");
            assert!(h.contains_key("date"));
            let lengths: Vec<_> = h.get_all("content-length").iter().collect();
            if more {
                assert!(
                    lengths.is_empty(),
                    "a streamed body has no length: {lengths:?}"
                );
                assert_eq!(h.len(), 3);
            } else {
                assert_eq!(lengths, [body.len().to_string().as_str()]);
                assert_eq!(h.len(), 4);
            }
        }
        // The first start builds the head, the others clone it (one may miss if the date's
        // second turns in between).
        assert!(
            !hits[0] && hits[1..].iter().filter(|h| **h).count() >= 2,
            "{hits:?}"
        );
    }

    #[test]
    fn the_head_memo_is_keyed_on_fields_and_server() {
        let server = Bytes::from_static(b"pagi-server");
        let with_len = Headers::new().with("content-length", "5");
        let (_, len, slot) = memo_head(200, with_len.clone(), Some(&server), false).unwrap();
        assert_eq!((len, slot), (Some(5), false));
        let (head, len, slot) = memo_head(201, with_len.clone(), Some(&server), false).unwrap();
        assert_eq!(
            (len, slot),
            (Some(5), false),
            "a hit, with the app's own length"
        );
        assert_eq!(head.status(), 201);
        assert_eq!(head.headers().get_all("content-length").iter().count(), 1);
        let (head, _, slot) = memo_head(200, with_len.clone(), None, false).unwrap();
        assert!(
            !slot && !head.headers().contains_key("server"),
            "another server value"
        );
        let other = Headers::new().with("content-length", "6");
        let (_, len, _) = memo_head(200, other, None, false).unwrap();
        assert_eq!(len, Some(6), "other fields");
        let bad = Headers::new().with("x-bad", "a\x01b");
        assert!(memo_head(200, bad.clone(), None, false).is_err());
        assert!(
            memo_head(200, bad, None, false).is_err(),
            "a failed check is not kept"
        );
    }

    #[test]
    fn send_yields_once_its_budget_of_one_app_poll_is_spent() {
        let stream = Stream::default();
        *stream.lock() = st();
        let mut cx = Context::from_waker(Waker::noop());
        let mut send = |ev: SendEvent| {
            let mut ev = Some(ev);
            let polled = stream.poll_send(&mut cx, &mut ev);
            assert!(ev.is_none(), "the event is taken either way");
            polled.is_ready()
        };
        // As the driver does around its poll of the app.
        stream.app_poll.store(1, Ordering::Relaxed);
        assert!(send(SendEvent::start(200, Headers::new())));
        for _ in 1..SEND_BUDGET {
            assert!(send(SendEvent::body("x", true)));
        }
        assert!(
            !send(SendEvent::body("x", true)),
            "one past the budget yields"
        );
        let mut none = None;
        assert!(
            stream.poll_send(&mut cx, &mut none).is_ready(),
            "then returns at once while under the high-water mark"
        );
        // Outside an app poll (a task of the app's own) there is no budget.
        stream.app_poll.store(0, Ordering::Relaxed);
        for _ in 0..2 * SEND_BUDGET {
            let mut ev = Some(SendEvent::body("x", true));
            assert!(stream.poll_send(&mut cx, &mut ev).is_ready());
        }
        assert_eq!(stream.lock().out_len, 3 * u64::from(SEND_BUDGET));
    }

    #[test]
    fn single_piece_gets_a_length_and_ends_with_its_data() {
        let mut s = st();
        s.start_response(
            200,
            Headers::new().with("Content-Type", "text/plain"),
            false,
        )
        .unwrap();
        assert!(s.head.is_none(), "held until the body or a yield");
        let mut b = ResponseBody::default();
        b.bytes = Bytes::from_static(b"hello");
        s.response_body(b).unwrap();
        let head = s.head.take().unwrap();
        assert_eq!(head.status(), 200);
        assert_eq!(head.headers()["content-length"], "5");
        assert_eq!(head.headers()["content-type"], "text/plain");
        assert_eq!(head.headers()["server"], "pagi-server");
        assert!(head.headers().contains_key("date"));
        assert!(s.end && s.out_len == 5 && s.response_done());
    }

    #[test]
    fn connection_specific_fields_are_dropped() {
        let h = Headers::new()
            .with("Connection", "close")
            .with("transfer-encoding", "chunked")
            .with("te", "gzip")
            .with("x-a", "1")
            .with("te", "trailers");
        crate::proto::h1::exchange::check_headers(&h).unwrap();
        let head = response_head(200, &h, None).unwrap();
        let names: Vec<_> = head.headers().keys().map(|k| k.as_str()).collect();
        assert!(names.contains(&"x-a") && names.contains(&"te"));
        assert!(!names.contains(&"connection") && !names.contains(&"transfer-encoding"));
        assert_eq!(head.headers().get_all("te").iter().count(), 1);
    }

    #[test]
    fn body_longer_than_length_is_cut_and_fails() {
        let mut s = st();
        s.start_response(200, Headers::new().with("content-length", "3"), false)
            .unwrap();
        let mut b = ResponseBody::default();
        b.bytes = Bytes::from_static(b"hello");
        b.more = true;
        assert!(s.response_body(b).is_err());
        assert_eq!(s.out_len, 3);
        assert!(s.end && s.reset.is_none());
    }

    #[test]
    fn body_shorter_than_length_resets() {
        let mut s = st();
        s.start_response(200, Headers::new().with("content-length", "10"), false)
            .unwrap();
        let mut b = ResponseBody::default();
        b.bytes = Bytes::from_static(b"hi");
        assert!(s.response_body(b).is_err());
        assert_eq!(s.reset, Some(Reason::INTERNAL_ERROR));
    }

    #[test]
    fn head_and_204_drop_the_body() {
        let mut s = st();
        s.head_request = true;
        s.start_response(200, Headers::new(), false).unwrap();
        let mut b = ResponseBody::default();
        b.bytes = Bytes::from_static(b"hello");
        s.response_body(b).unwrap();
        assert_eq!(s.out_len, 0);
        assert_eq!(s.head.as_ref().unwrap().headers()["content-length"], "5");
        let mut s = st();
        s.start_response(204, Headers::new(), false).unwrap();
        s.response_body(ResponseBody::default()).unwrap();
        assert!(!s
            .head
            .as_ref()
            .unwrap()
            .headers()
            .contains_key("content-length"));
    }

    #[test]
    fn same_start_checks_as_http1() {
        let mut s = st();
        assert!(s.start_response(101, Headers::new(), false).is_err());
        assert!(s
            .start_response(200, Headers::new().with("x", "a\r\nb"), false)
            .is_err());
        assert!(s
            .start_response(200, Headers::new().with("content-length", "x"), false)
            .is_err());
        s.connect = true;
        assert!(s.start_response(200, Headers::new(), false).is_err());
        assert!(s.start_response(405, Headers::new(), false).is_ok());
    }

    #[test]
    fn trailers_after_the_body() {
        let mut s = st();
        s.start_response(200, Headers::new(), true).unwrap();
        let mut b = ResponseBody::default();
        b.bytes = Bytes::from_static(b"x");
        s.response_body(b).unwrap();
        assert!(!s.end);
        s.trailers(Headers::new().with("x-checksum", "abc"))
            .unwrap();
        assert!(s.end);
        assert_eq!(s.trailers.as_ref().unwrap()["x-checksum"], "abc");
    }

    #[test]
    fn small_pieces_are_gathered() {
        let mut s = st();
        s.start_response(200, Headers::new(), false).unwrap();
        let mut want = Vec::new();
        for i in 0..10_000 {
            let line = format!("line {i}\n");
            want.extend_from_slice(line.as_bytes());
            let mut b = ResponseBody::default();
            b.bytes = Bytes::from(line);
            b.more = true;
            s.response_body(b).unwrap();
        }
        // A big piece is queued as it is, and the next small one starts a new buffer.
        let big = Bytes::from(vec![b'z'; 4096]);
        want.extend_from_slice(&big);
        want.extend_from_slice(b"end");
        for (bytes, more) in [(big, true), (Bytes::from_static(b"end"), false)] {
            let mut b = ResponseBody::default();
            b.bytes = bytes;
            b.more = more;
            s.response_body(b).unwrap();
        }
        assert_eq!(s.out_len, want.len() as u64);
        let entries = s.out.len();
        assert!(
            entries <= want.len() / COALESCE_MAX + 3,
            "{entries} queue entries"
        );
        assert_eq!(s.held(), s.out_len + entries as u64 * PIECE_COST);
        let mut got = Vec::new();
        while let Some(c) = take_chunk(&mut s.out, 5000) {
            assert!(c.len() <= 5000);
            got.extend_from_slice(&c);
        }
        assert_eq!(got, want);
    }

    #[test]
    fn chunks_respect_capacity() {
        let mut q = OutQueue::default();
        q.push_back(Out::Bytes(Bytes::from_static(b"abcdef")));
        assert_eq!(take_chunk(&mut q, 4).unwrap(), "abcd");
        assert_eq!(take_chunk(&mut q, 4).unwrap(), "ef");
        assert!(take_chunk(&mut q, 4).is_none());
    }

    #[test]
    fn out_queue_keeps_order_across_its_inline_slot() {
        let piece = |s: &'static [u8]| Out::Bytes(Bytes::from_static(s));
        let mut q = OutQueue::default();
        assert!(q.is_empty() && q.back_mut().is_none());
        q.push_back(piece(b"a"));
        q.push_back(piece(b"b"));
        assert!(matches!(q.back_mut(), Some(Out::Bytes(b)) if b == "b"));
        assert_eq!(take_chunk(&mut q, 10).unwrap(), "a");
        q.push_back(piece(b"c"));
        assert_eq!(q.len(), 2);
        assert_eq!(take_chunk(&mut q, 10).unwrap(), "b");
        assert!(matches!(q.front_mut(), Some(Out::Bytes(b)) if b == "c"));
        assert_eq!(take_chunk(&mut q, 10).unwrap(), "c");
        assert_eq!(q.len(), 0);
        assert!(q.is_empty());
        q.push_back(piece(b"d"));
        q.clear();
        assert!(q.is_empty());
    }
}
