//! The WebSocket connection driver: after a valid upgrade request, runs the app on the
//! connection's task and moves frames between the socket and the [`Session`].
//!
//! Close handling (RFC 6455 §7): a peer's Close is echoed and the server then closes the TCP
//! connection first; our own Close (the app's `websocket.close`, the app returning, shutdown)
//! waits up to the close timeout for the peer's; a protocol error sends its code and closes at
//! once. Closing always half-closes and drains briefly, so the peer reads our Close frame
//! rather than a reset.

use bytes::BytesMut;
use pagi::{App, BoxError, Extensions, HttpScope, PagiVersion, Receiver, Scheme, Scope, Sender};
use std::future::{poll_fn, Future};
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;
use tokio::time::{Instant, Sleep};
use tokio_util::io::poll_read_buf;
use tokio_util::sync::WaitForCancellationFutureOwned;

use super::deflate::{self, Inflater};
use super::frame::OpCode;
use super::handshake;
use super::read::{CloseError, Incoming, Limits, Reader};
use super::session::{Phase, Session, St, Wire};
use crate::io::Io;
use crate::proto::h1::parse::RequestHead;
use crate::server::{Peer, Shared};

/// Bytes read per read call.
const READ_CHUNK: usize = 16 * 1024;
/// Reads per poll before yielding to other tasks.
const READS_PER_POLL: usize = 16;
/// How long a closed connection drains the peer's last bytes.
const DRAIN: Duration = Duration::from_secs(2);

/// Serves one WebSocket connection from its valid upgrade request to the end.
pub(crate) async fn serve<I: Io, A: App>(
    io: &mut I,
    read_buf: &mut BytesMut,
    head: RequestHead,
    req: handshake::Request,
    shared: &Arc<Shared<A>>,
    peer: &Peer,
) {
    let cfg = &shared.config;
    let pmd_offer = pmd_offer(cfg, &head.headers);
    let subprotocols = req.subprotocols.clone();
    let session = Arc::new(Session::new(
        req,
        pmd_offer,
        cfg.server_header.clone(),
        cfg.write_high_water,
        cfg.write_low_water,
        Wire::H1,
    ));
    let scope = HttpScope {
        pagi: PagiVersion,
        http_version: head.version,
        method: head.method,
        scheme: ws_scheme(peer.scheme),
        path: head.path,
        raw_path: head.raw_path,
        query_string: head.query,
        root_path: cfg.root_path.clone(),
        headers: head.headers,
        client: peer.client,
        server: peer.server.clone(),
        subprotocols,
        state: Some(shared.state.clone()),
        extensions: ws_extensions(peer),
        connection: None,
    };
    run(io, read_buf, session, scope, shared, peer).await;
}

/// The permessage-deflate offer (of the request's `Sec-WebSocket-Extensions`) the server would
/// accept, unless the configuration turns the extension off.
pub(crate) fn pmd_offer(
    cfg: &crate::config::Config,
    headers: &pagi::Headers,
) -> Option<(deflate::PmdParams, String)> {
    if !cfg.ws.per_message_deflate {
        return None;
    }
    let offers: Vec<&[u8]> = headers
        .get_all("sec-websocket-extensions")
        .map(|v| &v[..])
        .collect();
    deflate::negotiate(&offers)
}

/// The scope's `scheme` for a WebSocket on a listener whose HTTP scheme is `scheme`.
pub(crate) fn ws_scheme(scheme: Scheme) -> Scheme {
    match scheme {
        Scheme::Https | Scheme::Wss => Scheme::Wss,
        Scheme::Http | Scheme::Ws => Scheme::Ws,
    }
}

/// The `extensions` of a `websocket` scope.
pub(crate) fn ws_extensions(peer: &Peer) -> Extensions {
    Extensions {
        tls: peer.tls.clone(),
        other: [(
            "websocket.http.response".to_owned(),
            serde_json::Value::Object(Default::default()),
        )]
        .into(),
        ..Extensions::default()
    }
}

/// Runs the app on `scope` and drives the WebSocket over `io` (a TCP or TLS connection after
/// an HTTP/1.1 upgrade, or an HTTP/2 stream after an extended CONNECT) until both are done.
pub(crate) async fn run<I: Io, A: App>(
    io: &mut I,
    read_buf: &mut BytesMut,
    session: Arc<Session>,
    scope: HttpScope,
    shared: &Arc<Shared<A>>,
    peer: &Peer,
) {
    let cfg = &shared.config;
    let app = shared.app.call(
        Scope::Websocket(scope),
        Receiver::new(session.clone()),
        Sender::new(session.clone()),
    );
    let mut app = Box::pin(app);
    let ping_every = cfg.ws.ping_interval;
    let mut d = Driver {
        io,
        read_buf,
        session,
        reader: None,
        limits: Limits {
            max_message: cfg.ws.max_message_size,
            max_fragments: cfg.ws.max_fragments,
        },
        max_queue: cfg.ws.max_queue,
        close_timeout: cfg.ws.close_timeout,
        shutdown_timeout: cfg.shutdown_timeout,
        io_timeout: cfg.timeout_io,
        peer,
        shutdown: Box::pin(shared.graceful.clone().cancelled_owned()),
        shutdown_seen: false,
        timer: Box::pin(tokio::time::sleep(Duration::ZERO)),
        ping_every,
        pong_timeout: cfg.ws.ping_timeout,
        next_ping: None,
        pong_due: None,
        closing_due: None,
        stall_due: None,
        drain_due: None,
        read_eof: false,
        write_failed: false,
        shut: false,
        result: None,
        finish_handled: false,
        ping_seq: 0,
        stash: None,
        stash_polled: false,
        need_turn: false,
    };
    poll_fn(|cx| d.poll(cx, app.as_mut())).await;
}

struct Driver<'a, I> {
    io: &'a mut I,
    read_buf: &'a mut BytesMut,
    session: Arc<Session>,
    reader: Option<Reader>,
    limits: Limits,
    max_queue: usize,
    close_timeout: Duration,
    shutdown_timeout: Duration,
    io_timeout: Duration,
    peer: &'a Peer,
    shutdown: Pin<Box<WaitForCancellationFutureOwned>>,
    shutdown_seen: bool,
    timer: Pin<Box<Sleep>>,
    ping_every: Duration,
    pong_timeout: Duration,
    next_ping: Option<Instant>,
    pong_due: Option<Instant>,
    closing_due: Option<Instant>,
    stall_due: Option<Instant>,
    drain_due: Option<Instant>,
    read_eof: bool,
    write_failed: bool,
    /// The write side is shut down.
    shut: bool,
    result: Option<Result<(), BoxError>>,
    finish_handled: bool,
    ping_seq: u32,
    /// A received message that found the queue full; it waits for the app's next turn.
    stash: Option<pagi::Message>,
    /// The app has been polled since the message was stashed (and still left no room).
    stash_polled: bool,
    /// The reader stopped to give the app a turn first.
    need_turn: bool,
}

impl<I: Io> Driver<'_, I> {
    fn poll<F>(&mut self, cx: &mut Context<'_>, mut app: Pin<&mut F>) -> Poll<()>
    where
        F: Future<Output = Result<(), BoxError>>,
    {
        let session = self.session.clone();
        let mut wakers: Vec<Waker> = Vec::new();
        loop {
            if self.result.is_none() {
                self.stash_polled = self.stash.is_some();
                session.lock().in_app_poll = true;
                let polled = std::panic::catch_unwind(AssertUnwindSafe(|| app.as_mut().poll(cx)));
                let mut st = session.lock();
                st.in_app_poll = false;
                self.result = match polled {
                    Ok(Poll::Ready(r)) => Some(r),
                    Ok(Poll::Pending) => None,
                    Err(p) => Some(Err(crate::proto::h1::conn::panic_message(p).into())),
                };
            }
            let mut st = session.lock();
            crate::proto::wake::register(&mut st.driver_waker, cx);
            let now = Instant::now();
            if self.result.is_some() && !self.finish_handled {
                self.finish_handled = true;
                self.on_app_done(&mut st, now);
            }
            // Shutdown: an open WebSocket (also one accepted after the signal) gets 1001.
            if !self.shutdown_seen
                && st.phase == Phase::Open
                && self.shutdown.as_mut().poll(cx).is_ready()
            {
                self.shutdown_seen = true;
                {
                    st.send_close(Some(1001), "server shutting down");
                    st.close_with(1001, "server_shutdown");
                    self.closing_due = Some(now + self.shutdown_timeout);
                }
            }
            if let Some((every, timeout)) = st.keepalive.take() {
                self.ping_every = every;
                self.pong_timeout = timeout.unwrap_or(self.pong_timeout);
                self.next_ping = None;
                if every.is_zero() {
                    self.pong_due = None;
                }
            }
            if self.reader.is_none() && matches!(st.phase, Phase::Open | Phase::Closing) {
                self.reader = Some(Reader::new(
                    Limits {
                        max_message: self.limits.max_message,
                        max_fragments: self.limits.max_fragments,
                    },
                    st.pmd.as_ref().map(Inflater::new),
                ));
            }
            if st.phase == Phase::Open && !self.ping_every.is_zero() && self.next_ping.is_none() {
                self.next_ping = Some(now + self.ping_every);
            }

            // Write.
            if std::mem::take(&mut st.head_queued) && !self.write_failed {
                // An HTTP/2 answer head waits in its slot: the stream sends it on a flush.
                if let Poll::Ready(Err(e)) = Pin::new(&mut *self.io).poll_flush(cx) {
                    tracing::debug!(client = ?self.peer.client, error = %e, "websocket answer failed");
                    self.abort(&mut st, "write_error");
                }
            }
            let queued = st.out.len();
            let mut blocked = false;
            if queued > 0 && !self.write_failed {
                match st.out.poll_flush(cx, &mut *self.io) {
                    Poll::Ready(Err(e)) => {
                        tracing::debug!(client = ?self.peer.client, error = %e, "websocket write failed");
                        self.abort(&mut st, "write_error");
                    }
                    Poll::Ready(Ok(())) => {}
                    Poll::Pending => blocked = true,
                }
            }
            let progress = st.out.len() < queued;
            let written = st.out.len();

            // Read.
            self.need_turn = false;
            let reads_left = self.read(cx, &mut st);

            if st.pong_seen {
                st.pong_seen = false;
                self.pong_due = None;
            }
            // Timers.
            self.timers(&mut st, now, progress);
            if st.phase == Phase::Closed && (st.out.is_empty() || self.write_failed) && !self.shut {
                // A failed socket is not shut down politely.
                if self.write_failed || Pin::new(&mut *self.io).poll_shutdown(cx).is_ready() {
                    self.shut = true;
                }
                if self.shut {
                    self.drain_due = Some(now + DRAIN);
                    // Look at the socket again: the peer may have closed already.
                    wakers.push(cx.waker().clone());
                }
            }
            // Frames queued by the reader or the timers (pongs, closes, pings) go out now,
            // unless the socket is full (then its readiness wakes us).
            let fresh_output = st.out.len() > written && !self.write_failed && !blocked;
            let socket_done = self.shut
                && (self.read_eof || self.write_failed || self.drain_due.is_some_and(|d| now >= d));
            let deadline = [
                self.next_ping,
                self.pong_due,
                self.closing_due,
                self.stall_due,
                self.drain_due.filter(|_| !socket_done),
            ]
            .into_iter()
            .flatten()
            .min();
            let mut timer_fired = false;
            if let Some(d) = deadline {
                if self.timer.deadline() != d {
                    self.timer.as_mut().reset(d);
                }
                timer_fired = self.timer.as_mut().poll(cx).is_ready();
            }

            st.take_app_wakers(&mut wakers);
            drop(st);
            let own = crate::proto::wake::wake_others(&mut wakers, cx);
            let again = own || timer_fired || fresh_output || self.need_turn;
            if self.result.is_some() && socket_done {
                return Poll::Ready(());
            }
            if reads_left == 0 {
                // Busy peer: let other tasks run, then continue.
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            if !again {
                return Poll::Pending;
            }
        }
    }

    /// The app returned: answer for it where it left the WebSocket hanging.
    fn on_app_done(&mut self, st: &mut St, now: Instant) {
        st.finished = true;
        let failed = match &self.result {
            Some(Err(e)) => Some(e.to_string()),
            _ => None,
        };
        match st.phase {
            Phase::Connecting => {
                if st.closed_with.is_none() {
                    match &failed {
                        Some(e) => {
                            tracing::error!(client = ?self.peer.client, error = %e, "app failed before answering websocket.connect")
                        }
                        None => {
                            tracing::error!(client = ?self.peer.client, "app returned without answering websocket.connect")
                        }
                    }
                    st.refuse_app_error();
                }
                st.phase = Phase::Closed;
                st.close_with(1006, "server_error");
            }
            Phase::Denying { .. } => {
                if !st.finish_denial() {
                    tracing::warn!(client = ?self.peer.client, "app returned before finishing its websocket denial response");
                }
                st.phase = Phase::Closed;
                st.close_with(1006, "x-refused");
            }
            Phase::Open => {
                let code = match &failed {
                    Some(e) => {
                        tracing::error!(client = ?self.peer.client, error = %e, "websocket app failed; closing with 1011");
                        1011
                    }
                    None => 1000,
                };
                st.send_close(Some(code), "");
                st.close_with(code, "");
                self.closing_due = Some(now + self.close_timeout);
            }
            Phase::Closing | Phase::Closed => {
                if let Some(e) = failed {
                    tracing::error!(client = ?self.peer.client, error = %e, "websocket app failed");
                }
            }
        }
    }

    /// Ends the connection without a closing handshake (the socket failed or timed out).
    fn abort(&mut self, st: &mut St, reason: &str) {
        self.write_failed = true;
        st.out.clear();
        st.phase = Phase::Closed;
        st.close_with(1006, reason);
    }

    /// Reads and decodes what the peer sent. Returns how many reads this poll had left (0: the
    /// peer keeps us busy).
    fn read(&mut self, cx: &mut Context<'_>, st: &mut St) -> usize {
        let mut reads = READS_PER_POLL;
        loop {
            if self.read_eof || self.write_failed {
                return reads;
            }
            if self.shut {
                // Closed: drop whatever still comes until the peer closes too.
                self.read_buf.clear();
            } else if let Some(reader) = self.reader.as_mut() {
                if matches!(st.phase, Phase::Open | Phase::Closing) {
                    loop {
                        if let Some(m) = self.stash.take() {
                            match offer(st, m, self.max_queue, self.limits.max_message) {
                                None => {}
                                Some(m) if !self.stash_polled => {
                                    // Full: give the app a turn to make room first.
                                    self.stash = Some(m);
                                    self.need_turn = true;
                                    return reads;
                                }
                                Some(_) => {
                                    overflow(st, self.peer);
                                    break;
                                }
                            }
                        }
                        match reader.decode(self.read_buf) {
                            Ok(Some(item)) => {
                                if let Some(m) =
                                    handle(st, item, self.max_queue, self.limits.max_message)
                                {
                                    self.stash = Some(m);
                                    self.stash_polled = false;
                                    continue;
                                }
                                if !matches!(st.phase, Phase::Open | Phase::Closing) {
                                    break;
                                }
                            }
                            Ok(None) => break,
                            Err(e) => {
                                fail(st, e, self.peer);
                                break;
                            }
                        }
                    }
                }
            }
            if st.phase == Phase::Closed && !self.shut {
                // Stop reading; the socket closes once our last bytes are out.
                return reads;
            }
            // Backpressure: a peer that sends pings but reads nothing fills our queue; stop
            // reading until it drains.
            if st.out.len() > st.high_water() || self.read_buf.len() >= 64 * 1024 {
                return reads;
            }
            if reads == 0 {
                return 0;
            }
            reads -= 1;
            if self.read_buf.capacity() - self.read_buf.len() < 1024 {
                self.read_buf.reserve(READ_CHUNK);
            }
            match poll_read_buf(Pin::new(&mut *self.io), cx, self.read_buf) {
                Poll::Ready(Ok(n)) if n > 0 => {}
                Poll::Ready(r) => {
                    self.read_eof = true;
                    if st.phase != Phase::Closed {
                        if st.closed_with.is_none() {
                            tracing::debug!(client = ?self.peer.client, "websocket dropped without a close");
                        }
                        st.out.clear();
                        st.phase = Phase::Closed;
                        st.close_with(
                            1006,
                            if r.is_err() {
                                "read_error"
                            } else {
                                "client_closed"
                            },
                        );
                    }
                    return reads;
                }
                Poll::Pending => return reads,
            }
        }
    }

    fn timers(&mut self, st: &mut St, now: Instant, progress: bool) {
        if st.phase == Phase::Open {
            if let Some(t) = self.next_ping {
                if now >= t {
                    self.ping_seq = self.ping_seq.wrapping_add(1);
                    st.push_frame(
                        OpCode::Ping,
                        false,
                        bytes::Bytes::copy_from_slice(&self.ping_seq.to_be_bytes()),
                    );
                    if self.pong_due.is_none() && !self.pong_timeout.is_zero() {
                        self.pong_due = Some(now + self.pong_timeout);
                    }
                    self.next_ping = Some(now + self.ping_every);
                }
            }
        } else {
            self.next_ping = None;
            self.pong_due = None;
        }
        if self.pong_due.is_some_and(|t| now >= t) {
            tracing::info!(client = ?self.peer.client, "websocket ping not answered; dropping the connection");
            self.pong_due = None;
            self.abort(st, "keepalive_timeout");
        }
        if st.phase == Phase::Closing {
            if self.closing_due.is_none() {
                self.closing_due = Some(now + self.close_timeout);
            }
            if self.closing_due.is_some_and(|t| now >= t) {
                tracing::debug!(client = ?self.peer.client, "websocket peer did not answer our close");
                st.phase = Phase::Closed;
                st.close_with(1006, "client_timeout");
            }
        } else {
            self.closing_due = None;
        }
        // The write stall guard: queued output that makes no progress for `timeout_io`.
        if st.out.is_empty() || self.write_failed || self.io_timeout.is_zero() {
            self.stall_due = None;
        } else if progress || self.stall_due.is_none() {
            self.stall_due = Some(now + self.io_timeout);
        } else if self.stall_due.is_some_and(|due| now >= due) {
            tracing::info!(client = ?self.peer.client, "websocket client stopped reading; dropping the connection");
            self.stall_due = None;
            self.abort(st, "write_timeout");
        }
    }
}

/// One decoded item from the peer. Returns a message that found the receive queue full.
fn handle(
    st: &mut St,
    item: Incoming,
    max_queue: usize,
    max_message: usize,
) -> Option<pagi::Message> {
    match item {
        Incoming::Text(t) => offer(st, pagi::Message::Text(t), max_queue, max_message),
        Incoming::Binary(b) => offer(st, pagi::Message::Binary(b), max_queue, max_message),
        Incoming::Ping(p) => {
            if st.phase == Phase::Open {
                st.push_frame(OpCode::Pong, false, p);
            }
            None
        }
        Incoming::Pong(_) => {
            st.pong_seen = true;
            None
        }
        Incoming::Close(c) => {
            let (code, reason) = match c {
                Some((code, reason)) => (code, reason),
                None => (1005, String::new()),
            };
            if st.phase == Phase::Open {
                // Echo the peer's code (an empty Close for none), then close the TCP connection.
                st.send_close((code != 1005).then_some(code), "");
            }
            st.phase = Phase::Closed;
            st.close_with(code, reason);
            None
        }
    }
}

/// Queues a message for the app; gives it back when the queue is full (by count, or by bytes:
/// twice the message size limit).
fn offer(
    st: &mut St,
    m: pagi::Message,
    max_queue: usize,
    max_message: usize,
) -> Option<pagi::Message> {
    if st.phase != Phase::Open {
        return None; // closing: data is dropped
    }
    let byte_cap = if max_message == 0 {
        usize::MAX
    } else {
        max_message.saturating_mul(2)
    };
    let full = st.inbound.len() >= max_queue.max(1)
        || (!st.inbound.is_empty() && st.inbound_bytes + m.len() > byte_cap);
    if full {
        return Some(m);
    }
    st.inbound_bytes += m.len();
    st.inbound.push_back(m);
    None
}

/// The app had its turn and the receive queue is still full: close with 1008.
fn overflow(st: &mut St, peer: &Peer) {
    tracing::info!(client = ?peer.client, queued = st.inbound.len(), "websocket app does not keep up; closing with 1008");
    st.send_close(Some(1008), "queue overflow");
    st.phase = Phase::Closed;
    st.close_with(1008, "queue_overflow");
}

/// The peer broke the protocol: send the error's code and close.
fn fail(st: &mut St, e: CloseError, peer: &Peer) {
    tracing::debug!(client = ?peer.client, code = e.code, reason = e.reason, "websocket protocol error");
    if st.phase == Phase::Open {
        st.send_close(Some(e.code), e.reason);
    }
    st.phase = Phase::Closed;
    let token = if e.code == 1009 {
        "body_too_large"
    } else {
        "protocol_error"
    };
    st.close_with(e.code, token);
}
