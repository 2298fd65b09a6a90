//! The HTTP/1.1 connection driver: reads request heads, runs the app for each request on the
//! connection's own task (no task per request), and moves bytes between the socket and the
//! request's [`Exchange`].

use bytes::BytesMut;
use pagi::{
    App, BoxError, Connection, DisconnectReason, Extensions, HttpScope, PagiVersion, Receiver,
    Scope, Sender,
};
use std::future::{poll_fn, Future};
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::{Instant, Sleep};
use tokio_util::io::poll_read_buf;
use tokio_util::sync::WaitForCancellationFutureOwned;

use super::decode::{Decoded, Decoder};
use super::exchange::{Continue, Exchange, RequestInfo, Resp};
use super::parse::{parse_head, BodyFraming, RequestHead};
use super::sse::{poll_sse_keepalive, SseTarget};
use super::target::HttpTarget;
use crate::error::Reject;
use crate::io::{Io, Prefixed};
use crate::proto::h2;
use crate::proto::h2::upgrade::{self, detect_preface, splice, splice_point, Preface};
use crate::proto::ws::{self, handshake};
use crate::server::{Peer, Shared};

/// Read-buffer size for one read.
const READ_CHUNK: usize = 8 * 1024;
/// Most bytes read ahead (pipelined requests, unread body) while the app runs.
const READ_AHEAD: usize = 64 * 1024;
/// Largest body piece handed to the app.
const BODY_PIECE: usize = 64 * 1024;
/// How long an error response may take to write, and how long the lingering close lasts.
const REJECT_TIMEOUT: Duration = Duration::from_secs(5);
const LINGER: Duration = Duration::from_secs(2);

/// How a request left the connection.
enum Next {
    KeepAlive,
    Close,
    /// Close after a lingering read, so the client sees the response before a reset.
    Linger,
}

/// What a connection's next bytes are.
enum Start {
    Request(RequestHead),
    /// The HTTP/2 preface (h2c by prior knowledge).
    H2,
}

/// Serves one connection until it closes.
pub(crate) async fn serve<I: Io, A: App>(io: I, shared: Arc<Shared<A>>, peer: Peer) {
    let shutdown = Box::pin(shared.idle_close.clone().cancelled_owned());
    let mut conn = Conn {
        io,
        read_buf: BytesMut::new(),
        shared,
        peer,
        exch: Arc::new(Exchange::default()),
        served: 0,
        timer: None,
        shutdown,
    };
    if conn.run().await {
        conn.linger().await;
    }
}

struct Conn<I, A> {
    io: I,
    read_buf: BytesMut,
    shared: Arc<Shared<A>>,
    peer: Peer,
    exch: Arc<Exchange>,
    served: u64,
    /// One timer per connection, re-armed lazily.
    timer: Option<Pin<Box<Sleep>>>,
    shutdown: Pin<Box<WaitForCancellationFutureOwned>>,
}

enum Fill {
    Data,
    Eof,
    Timeout,
    Shutdown,
}

impl<I: Io, A: App> Conn<I, A> {
    /// Returns whether to linger before closing.
    async fn run(&mut self) -> bool {
        loop {
            let head = match self.read_head().await {
                Ok(Some(Start::Request(head))) => head,
                Ok(Some(Start::H2)) => {
                    let io = Prefixed::new(self.read_buf.split().freeze(), &mut self.io);
                    // Boxed: keeps the HTTP/2 driver's state out of every HTTP/1.1 connection.
                    Box::pin(h2::conn::serve(io, &self.shared, &self.peer, None)).await;
                    return false;
                }
                Ok(None) => return false,
                Err(reject) => {
                    tracing::debug!(client = ?self.peer.client, %reject, "refused request");
                    self.write_reject(reject).await;
                    return true;
                }
            };
            self.served += 1;
            match self.serve_request(head).await {
                Next::KeepAlive => {}
                Next::Close => return false,
                Next::Linger => return true,
            }
        }
    }

    /// Reads until a complete request head is buffered. `Ok(None)`: close quietly (EOF, idle
    /// timeout, shutdown while idle).
    async fn read_head(&mut self) -> Result<Option<Start>, Reject> {
        let cfg = &self.shared.config;
        let idle = if self.served == 0 {
            cfg.timeout_header_read
        } else {
            cfg.timeout_keep_alive
        };
        let idle_deadline = Instant::now() + idle;
        let mut head_deadline = None;
        loop {
            if !self.read_buf.is_empty() {
                if head_deadline.is_none() {
                    // The first request's head is due from the accept; later ones from their
                    // first byte.
                    head_deadline = Some(if self.served == 0 {
                        idle_deadline
                    } else {
                        Instant::now() + self.shared.config.timeout_header_read
                    });
                }
                let preface = if self.served == 0 && self.h2_prior_knowledge() {
                    detect_preface(&self.read_buf)
                } else {
                    Preface::No
                };
                match preface {
                    Preface::Yes => return Ok(Some(Start::H2)),
                    Preface::NeedMore => {}
                    Preface::No => {
                        let limits = &self.shared.config.head;
                        if let Some(head) = parse_head(&mut self.read_buf, limits)? {
                            return Ok(Some(Start::Request(head)));
                        }
                    }
                }
            }
            let waiting_idle = self.read_buf.is_empty() && head_deadline.is_none();
            let deadline = head_deadline.unwrap_or(idle_deadline);
            match poll_fn(|cx| self.poll_fill(cx, deadline, waiting_idle)).await {
                Fill::Data => {}
                Fill::Eof | Fill::Shutdown => return Ok(None),
                Fill::Timeout if waiting_idle || self.read_buf.is_empty() => return Ok(None),
                Fill::Timeout => return Err(Reject::Timeout),
            }
        }
    }

    /// Reads some bytes into the buffer, or reports why not.
    fn poll_fill(&mut self, cx: &mut Context<'_>, deadline: Instant, idle: bool) -> Poll<Fill> {
        if idle && self.shutdown.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Fill::Shutdown);
        }
        let ready = if self.read_buf.is_empty() {
            // Wait without a buffer: an idle connection holds no read memory.
            match self.io.poll_read_ready(cx) {
                Poll::Ready(r) => r.is_ok(),
                Poll::Pending => {
                    if self.read_buf.capacity() > 0 {
                        self.read_buf = BytesMut::new();
                    }
                    false
                }
            }
        } else {
            true
        };
        if ready {
            if self.read_buf.capacity() - self.read_buf.len() < 1024 {
                self.read_buf.reserve(READ_CHUNK);
            }
            match poll_read_buf(Pin::new(&mut self.io), cx, &mut self.read_buf) {
                Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => return Poll::Ready(Fill::Eof),
                Poll::Ready(Ok(_)) => return Poll::Ready(Fill::Data),
                Poll::Pending => {}
            }
        }
        if self.poll_timer(cx, deadline).is_ready() {
            return Poll::Ready(Fill::Timeout);
        }
        Poll::Pending
    }

    /// Whether a connection that starts with the HTTP/2 preface is HTTP/2 (cleartext only).
    fn h2_prior_knowledge(&self) -> bool {
        let h2 = &self.shared.config.http2;
        h2.enabled && h2.cleartext.prior_knowledge() && self.peer.tls.is_none()
    }

    /// Whether an `Upgrade: h2c` request is honoured (cleartext only, never over TLS).
    fn h2_upgrade(&self) -> bool {
        let h2 = &self.shared.config.http2;
        h2.enabled && h2.cleartext.upgrade() && self.peer.tls.is_none()
    }

    /// Switches to HTTP/2 for an `Upgrade: h2c` request: reads its body (bounded by
    /// `check_upgrade`), answers 101, splices stream 1 into what the client sends next and
    /// serves HTTP/2 over the connection (see `proto::h2::upgrade`).
    async fn upgrade_h2(&mut self, head: RequestHead, frame: bytes::Bytes) -> Next {
        let cfg = &self.shared.config;
        let want = match head.framing {
            BodyFraming::Length(n) => n as usize,
            _ => 0,
        };
        let deadline = Instant::now() + cfg.timeout_header_read;
        while self.read_buf.len() < want {
            self.read_buf.reserve(want - self.read_buf.len());
            match tokio::time::timeout_at(deadline, self.io.read_buf(&mut self.read_buf)).await {
                Ok(Ok(n)) if n > 0 => {}
                _ => return Next::Close,
            }
        }
        let body = self.read_buf.split_to(want).freeze();
        let switching =
            b"HTTP/1.1 101 Switching Protocols\r\nconnection: Upgrade\r\nupgrade: h2c\r\n\r\n";
        let wrote = tokio::time::timeout(REJECT_TIMEOUT, async {
            self.io.write_all(switching).await?;
            self.io.flush().await
        })
        .await;
        if !matches!(wrote, Ok(Ok(()))) {
            return Next::Close;
        }
        let at = loop {
            match splice_point(&self.read_buf) {
                Ok(Some(at)) => break at,
                Ok(None) => {}
                Err(why) => {
                    tracing::debug!(client = ?self.peer.client, "h2c upgrade: {why}");
                    return Next::Close;
                }
            }
            self.read_buf.reserve(READ_CHUNK);
            match tokio::time::timeout_at(deadline, self.io.read_buf(&mut self.read_buf)).await {
                Ok(Ok(n)) if n > 0 => {}
                _ => return Next::Close,
            }
        };
        let spliced = splice(&self.read_buf, at, &frame);
        self.read_buf.clear();
        let upgraded = h2::conn::Upgraded {
            content_length: (want > 0).then(|| bytes::Bytes::from(want.to_string())),
            body,
        };
        let io = Prefixed::new(spliced, &mut self.io);
        Box::pin(h2::conn::serve(
            io,
            &self.shared,
            &self.peer,
            Some(upgraded),
        ))
        .await;
        Next::Close
    }

    fn poll_timer(&mut self, cx: &mut Context<'_>, deadline: Instant) -> Poll<()> {
        poll_deadline(&mut self.timer, cx, deadline)
    }

    async fn serve_request(&mut self, head: RequestHead) -> Next {
        if handshake::is_websocket(&head.headers) {
            return match handshake::check(&head) {
                Ok(req) => {
                    // Boxed: keeps the WebSocket driver's state out of every HTTP connection.
                    Box::pin(ws::conn::serve(
                        &mut self.io,
                        &mut self.read_buf,
                        head,
                        req,
                        &self.shared,
                        &self.peer,
                    ))
                    .await;
                    Next::Close
                }
                Err(reject) => {
                    tracing::debug!(client = ?self.peer.client, %reject, "refused websocket handshake");
                    self.write_reject(reject).await;
                    Next::Linger
                }
            };
        }
        if self.h2_upgrade() && upgrade::asks_h2c(&head) {
            let max_frame = self.shared.config.http2.max_frame_size as usize;
            let checked = upgrade::check_upgrade(&head).and_then(|()| {
                upgrade::headers_frame(&head, max_frame)
                    .ok_or("request head too large for one frame")
            });
            match checked {
                Ok(frame) => return self.upgrade_h2(head, frame).await,
                Err(why) => {
                    tracing::debug!(client = ?self.peer.client, "h2c upgrade ignored, serving HTTP/1.1: {why}");
                }
            }
        }
        let cfg = &self.shared.config;
        let max_body = cfg.max_body_size;
        let mut decoder = match head.framing {
            BodyFraming::Empty => Decoder::length(0),
            BodyFraming::Length(n) => {
                if max_body > 0 && n > max_body {
                    tracing::debug!(client = ?self.peer.client, length = n, "request body over the limit");
                    self.write_reject(Reject::BodyTooLarge).await;
                    return Next::Linger;
                }
                Decoder::length(n)
            }
            BodyFraming::Chunked => Decoder::chunked(cfg.head.max_header_size),
        };
        if Arc::get_mut(&mut self.exch).is_none() {
            // The previous request's app kept a handle: start from a fresh state.
            self.exch = Arc::new(Exchange::default());
        }
        let draining = self.shared.graceful.is_cancelled();
        // CONNECT asks for a tunnel, never an event stream (and a 2xx to it cannot be framed).
        let connect = head.method == "CONNECT";
        let sse = !connect && wants_event_stream(&head.headers);
        self.exch.lock().reset(
            RequestInfo {
                version: head.version,
                head: head.is_head(),
                connect,
                keep_alive: head.keep_alive && !draining,
                expect_continue: head.expect_continue,
                body_empty: decoder.is_done(),
                sse,
            },
            cfg.write_high_water,
            cfg.write_low_water,
            cfg.server_header.clone(),
        );

        let mut body_read = 0;
        if !decoder.is_done() && !self.read_buf.is_empty() {
            // Body bytes that came with the head are handed over without waiting, so an app
            // that reads a small body before answering still answers with a Content-Length.
            // The app has not been called yet, so a bad or oversized body is refused outright.
            let refuse = match decoder.decode(&mut self.read_buf, BODY_PIECE) {
                Ok(Decoded::Data(b)) => {
                    body_read = b.len() as u64;
                    if max_body > 0 && body_read > max_body {
                        Some(Reject::BodyTooLarge)
                    } else {
                        let mut st = self.exch.lock();
                        st.inbound_bytes += b.len();
                        st.inbound.push_back(b);
                        st.body_finished = decoder.is_done();
                        None
                    }
                }
                Ok(Decoded::Done) => {
                    self.exch.lock().body_finished = true;
                    None
                }
                Ok(Decoded::NeedMore) => None,
                Err(reject) => Some(reject),
            };
            if let Some(reject) = refuse {
                tracing::info!(client = ?self.peer.client, %reject, "refused request body");
                self.write_reject(reject).await;
                return Next::Linger;
            }
        }

        let scope = HttpScope {
            pagi: PagiVersion,
            http_version: head.version,
            method: head.method,
            scheme: self.peer.scheme,
            path: head.path,
            raw_path: head.raw_path,
            query_string: head.query,
            root_path: cfg.root_path.clone(),
            headers: head.headers,
            client: self.peer.client,
            server: self.peer.server.clone(),
            subprotocols: Vec::new(),
            state: Some(self.shared.state.clone()),
            extensions: Extensions {
                // SSE streams are written out whenever the app yields; no flush event there.
                fullflush: !sse,
                // 103 Early Hints: every http scope (accepted and dropped for HTTP/1.0).
                early_hint: !sse,
                tls: self.peer.tls.clone(),
                ..Extensions::default()
            },
            connection: Some(Connection::new(self.exch.clone())),
        };
        let scope = if sse {
            Scope::Sse(scope)
        } else {
            Scope::Http(scope)
        };
        let app = self.shared.app.call(
            scope,
            Receiver::new(self.exch.clone()),
            Sender::new(self.exch.clone()),
        );
        // Boxed: an idle connection then holds no app future, only its own small state.
        let mut app = Box::pin(app);
        let mut ctx = RequestCtx {
            result: None,
            decoder: &mut decoder,
            body_read,
            reject: None,
            max_body,
            stall: None,
            keepalive_timer: None,
        };
        poll_fn(|cx| self.poll_request(cx, app.as_mut(), &mut ctx)).await;
        let RequestCtx { result, reject, .. } = ctx;
        self.finish_request(result, reject, &mut decoder).await
    }

    /// Drives the app and the socket until the app has returned and its output is written.
    fn poll_request<F>(
        &mut self,
        cx: &mut Context<'_>,
        mut app: Pin<&mut F>,
        ctx: &mut RequestCtx<'_>,
    ) -> Poll<()>
    where
        F: Future<Output = Result<(), BoxError>>,
    {
        let mut wakers: Vec<Waker> = Vec::new();
        let Conn {
            io,
            read_buf,
            exch,
            shared,
            peer,
            timer,
            shutdown,
            ..
        } = self;
        loop {
            if ctx.result.is_none() {
                exch.lock().in_app_poll = true;
                let polled = std::panic::catch_unwind(AssertUnwindSafe(|| app.as_mut().poll(cx)));
                let mut st = exch.lock();
                st.in_app_poll = false;
                let done = match polled {
                    Ok(Poll::Ready(r)) => Some(r),
                    Ok(Poll::Pending) => None,
                    Err(panic) => Some(Err(panic_message(panic).into())),
                };
                if let Some(r) = done {
                    ctx.result = Some(r);
                    st.finished = true;
                }
            }
            let app_done = ctx.result.is_some();
            let mut st = exch.lock();
            crate::proto::wake::register(&mut st.driver_waker, cx);
            if !st.head_written() && shared.graceful.is_cancelled() {
                st.keep_alive = false;
            }
            if st.cont == Continue::Wanted {
                if !st.head_written() && st.disconnected.is_none() {
                    st.out.push_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
                }
                st.cont = Continue::Done;
            }
            if st.sse.is_some() && st.disconnected.is_none() {
                if app_done {
                    st.sse_end(false);
                } else if shutdown.as_mut().poll(cx).is_ready() {
                    st.sse_end(true);
                }
                poll_sse_keepalive(cx, &mut *st, &mut ctx.keepalive_timer);
            }
            if matches!(st.resp, Resp::Pending { .. }) {
                // The app yielded (or ended) after the start without completing the body: the
                // head goes out now, framed for streaming.
                st.encode_pending_head(None);
            }
            let queued = st.out.len();
            if queued > 0 && st.disconnected.is_none() {
                if let Poll::Ready(Err(e)) = st.out.poll_flush(cx, io) {
                    tracing::debug!(client = ?peer.client, error = %e, "write failed");
                    st.disconnect(DisconnectReason::WriteError);
                }
            }
            let write_stalled = st.disconnected.is_none() && !st.out.is_empty();
            let mut progress = st.out.len() < queued;
            let mut read_stalled = false;
            if st.disconnected.is_none() && !app_done {
                if st.want_body && st.inbound.is_empty() && !st.body_finished {
                    pump_body(cx, io, read_buf, &mut st, ctx, peer);
                    read_stalled =
                        st.disconnected.is_none() && st.inbound.is_empty() && !st.body_finished;
                    progress |= !read_stalled;
                } else {
                    watch_peer(cx, io, read_buf, &mut st);
                }
            }
            // The I/O stall guard: a client that sends no body byte while the app waits for
            // one, or reads nothing while a response waits to be written.
            let limit = shared.config.timeout_io;
            if progress || !(write_stalled || read_stalled) || limit.is_zero() {
                ctx.stall = None;
            }
            if (write_stalled || read_stalled) && !limit.is_zero() {
                let deadline = *ctx.stall.get_or_insert_with(|| Instant::now() + limit);
                if poll_deadline(timer, cx, deadline).is_ready() {
                    tracing::info!(client = ?peer.client, ?limit, "client stalled; ending the request");
                    if write_stalled {
                        st.disconnect(DisconnectReason::WriteTimeout);
                    } else {
                        st.disconnect(DisconnectReason::ClientTimeout);
                        if !st.head_written() {
                            ctx.reject = Some(Reject::Timeout);
                        }
                    }
                }
            }
            st.take_app_wakers(&mut wakers);
            let out_done = st.out.is_empty() || st.disconnected.is_some();
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

    /// After the app returned: the 500 backstop, logging, and whether the connection goes on.
    async fn finish_request(
        &mut self,
        result: Option<Result<(), BoxError>>,
        reject: Option<Reject>,
        decoder: &mut Decoder,
    ) -> Next {
        let (started, done, keep_alive, gone) = {
            let st = self.exch.lock();
            // A client that expects 100-continue and never got it may or may not send the body.
            let unanswered_expect = st.cont == Continue::Expected && !st.body_finished;
            (
                st.response_started(),
                st.response_done(),
                st.keep_alive && !unanswered_expect,
                st.disconnected.clone(),
            )
        };
        if let Some(Err(e)) = &result {
            if started {
                tracing::error!(client = ?self.peer.client, error = %e, "app failed after the response started; cutting the response");
            } else if gone.is_none() || reject.is_some() {
                tracing::error!(client = ?self.peer.client, error = %e, "app failed before starting a response");
            }
        }
        if !started {
            if let Some(r) = reject {
                self.write_reject(r).await;
                return Next::Linger;
            }
            if gone.is_none() {
                if result.as_ref().is_some_and(|r| r.is_ok()) {
                    tracing::error!(client = ?self.peer.client, "app returned without starting a response");
                }
                self.write_reject(Reject::AppError).await;
                return Next::Linger;
            }
            return Next::Close;
        }
        if gone.is_some() {
            return Next::Close;
        }
        if !done {
            tracing::warn!(client = ?self.peer.client, "app returned before completing the response; closing the connection");
            return Next::Close;
        }
        if !keep_alive {
            return Next::Linger;
        }
        if !decoder.is_done() && !self.discard_body(decoder).await {
            return Next::Linger;
        }
        Next::KeepAlive
    }

    /// Reads and drops the rest of a request body the app did not read, within bounds.
    async fn discard_body(&mut self, decoder: &mut Decoder) -> bool {
        let limit = self.shared.config.max_discard_body;
        if decoder.remaining().is_some_and(|r| r > limit) {
            return false;
        }
        let mut dropped = 0u64;
        let deadline = Instant::now() + self.shared.config.timeout_keep_alive;
        loop {
            match decoder.decode(&mut self.read_buf, BODY_PIECE) {
                Ok(Decoded::Data(b)) => {
                    dropped += b.len() as u64;
                    if dropped > limit {
                        return false;
                    }
                }
                Ok(Decoded::Done) => return true,
                Ok(Decoded::NeedMore) => {
                    self.read_buf.reserve(READ_CHUNK);
                    match tokio::time::timeout_at(deadline, self.io.read_buf(&mut self.read_buf))
                        .await
                    {
                        Ok(Ok(n)) if n > 0 => {}
                        _ => return false,
                    }
                }
                Err(_) => return false,
            }
        }
    }

    /// Writes a refusal (only ever before any response byte of the request).
    async fn write_reject(&mut self, reject: Reject) {
        let bytes = crate::proto::h1::encode::with_date(|d| reject.response(d));
        let _ = tokio::time::timeout(REJECT_TIMEOUT, async {
            self.io.write_all(&bytes).await?;
            self.io.flush().await
        })
        .await;
    }

    /// Half-closes, then reads and drops for a moment, so that unread request bytes do not
    /// turn the close into a reset that destroys the response.
    async fn linger(&mut self) {
        let _ = tokio::time::timeout(LINGER, async {
            let _ = self.io.shutdown().await;
            let mut sink = vec![0u8; 4096];
            let mut total = 0usize;
            while total < 1 << 20 {
                match self.io.read(&mut sink).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => total += n,
                }
            }
        })
        .await;
    }
}

impl<I, A> Drop for Conn<I, A> {
    fn drop(&mut self) {
        // Tell any app handle that outlives the connection (spawned tasks) that it is gone.
        let mut wakers = Vec::new();
        {
            let mut st = self.exch.lock();
            if !st.finished {
                st.disconnect(DisconnectReason::ServerShutdown);
            }
            st.take_app_wakers(&mut wakers);
        }
        wakers.into_iter().for_each(Waker::wake);
    }
}

/// Decodes (reading as needed) the next body piece for an app that waits for one.
fn pump_body<I: Io>(
    cx: &mut Context<'_>,
    io: &mut I,
    read_buf: &mut BytesMut,
    st: &mut super::exchange::St,
    ctx: &mut RequestCtx<'_>,
    peer: &Peer,
) {
    loop {
        match ctx.decoder.decode(read_buf, BODY_PIECE) {
            Ok(Decoded::Data(b)) => {
                ctx.body_read += b.len() as u64;
                if ctx.max_body > 0 && ctx.body_read > ctx.max_body {
                    tracing::info!(client = ?peer.client, "request body over the limit");
                    st.disconnect(DisconnectReason::BodyTooLarge);
                    ctx.reject = Some(Reject::BodyTooLarge);
                    return;
                }
                st.inbound_bytes += b.len();
                st.inbound.push_back(b);
                if ctx.decoder.is_done() {
                    st.body_finished = true;
                }
                return;
            }
            Ok(Decoded::Done) => {
                st.body_finished = true;
                return;
            }
            Ok(Decoded::NeedMore) => {
                if !read_some(cx, io, read_buf, st, BODY_PIECE / 2) {
                    return;
                }
            }
            Err(reject) => {
                tracing::info!(client = ?peer.client, %reject, "bad request body");
                st.disconnect(DisconnectReason::ProtocolError);
                ctx.reject = Some(reject);
                return;
            }
        }
    }
}

/// While the app runs, keeps reading (within the read-ahead bound) to notice a client that
/// goes away.
fn watch_peer<I: Io>(
    cx: &mut Context<'_>,
    io: &mut I,
    read_buf: &mut BytesMut,
    st: &mut super::exchange::St,
) {
    while read_buf.len() < READ_AHEAD && read_some(cx, io, read_buf, st, READ_CHUNK) {}
}

/// One read into the buffer (growing it by `grow` when nearly full). `true`: bytes arrived.
/// End of stream and errors mark the client gone.
fn read_some<I: Io>(
    cx: &mut Context<'_>,
    io: &mut I,
    read_buf: &mut BytesMut,
    st: &mut super::exchange::St,
    grow: usize,
) -> bool {
    if read_buf.capacity() - read_buf.len() < 1024 {
        read_buf.reserve(grow.max(READ_CHUNK));
    }
    match poll_read_buf(Pin::new(&mut *io), cx, read_buf) {
        Poll::Ready(Ok(0)) => st.disconnect(DisconnectReason::ClientClosed),
        Poll::Ready(Ok(_)) => return true,
        Poll::Ready(Err(_)) => st.disconnect(DisconnectReason::ReadError),
        Poll::Pending => {}
    }
    false
}

/// Whether the request asks for an event stream (`Accept` lists `text/event-stream`).
pub(crate) fn wants_event_stream(headers: &pagi::Headers) -> bool {
    headers.get_all("accept").any(|v| {
        v.split(|&b| b == b',').any(|item| {
            let media = item.split(|&b| b == b';').next().unwrap_or(&[]);
            super::parse::trim(media).eq_ignore_ascii_case(b"text/event-stream")
        })
    })
}

/// Ready once `deadline` has passed. The timer is only moved when the deadline gets earlier, so
/// keep-alive requests do not touch the timer wheel each time.
fn poll_deadline(
    timer: &mut Option<Pin<Box<Sleep>>>,
    cx: &mut Context<'_>,
    deadline: Instant,
) -> Poll<()> {
    let timer = timer.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
    if timer.deadline() > deadline {
        timer.as_mut().reset(deadline);
    }
    loop {
        if timer.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        if Instant::now() >= deadline {
            return Poll::Ready(());
        }
        timer.as_mut().reset(deadline);
    }
}

struct RequestCtx<'a> {
    result: Option<Result<(), BoxError>>,
    decoder: &'a mut Decoder,
    body_read: u64,
    reject: Option<Reject>,
    max_body: u64,
    /// When the current I/O stall (if any) times out.
    stall: Option<Instant>,
    /// The SSE keepalive timer, once the app asked for keepalives.
    keepalive_timer: Option<Pin<Box<Sleep>>>,
}

pub(crate) fn panic_message(p: Box<dyn std::any::Any + Send>) -> String {
    let msg = p
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic".into());
    format!("app panicked: {msg}")
}

#[cfg(test)]
mod size_tests {
    /// An idle keep-alive connection costs its task's future plus a few small allocations; this
    /// keeps the future small (the README promises under 4 KiB per idle connection).
    #[test]
    fn connection_future_stays_small() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let a = l.local_addr().unwrap();
            let s = tokio::net::TcpStream::connect(a).await.unwrap();
            let shared = std::sync::Arc::new(crate::server::Shared {
                app: std::sync::Arc::new(crate::demo::app),
                config: crate::config::Config::default(),
                state: pagi::State::shared(),
                graceful: tokio_util::sync::CancellationToken::new(),
                idle_close: tokio_util::sync::CancellationToken::new(),
            });
            let peer = crate::server::Peer {
                client: None,
                server: pagi::ServerAddr::Tcp(a),
                scheme: pagi::Scheme::Http,
                tls: None,
            };
            let f = super::serve(s, shared, peer);
            let size = std::mem::size_of_val(&f);
            assert!(size < 2048, "connection future is {size} bytes");
        });
    }
}
