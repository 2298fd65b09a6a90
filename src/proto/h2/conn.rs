//! The HTTP/2 connection driver: the `h2` handshake with the configured limits, then one loop
//! on the connection's task that accepts streams, polls every stream's app and driver (a
//! `FuturesUnordered`, no task per stream), keeps the connection alive with PINGs, closes it
//! when idle, and sends GOAWAY on graceful shutdown or after `max_requests` streams.

use bytes::Bytes;
use futures::future::Either;
use futures::stream::{FuturesUnordered, StreamExt};
use pagi::{
    App, Connection, Extensions, HttpScope, HttpVersion, PagiVersion, Receiver, Scope, Sender,
};
use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::{Instant, Sleep};

use super::scope::request_parts;
use super::stream::{Driver, Setup, Stream, StreamTask};
use crate::error::Reject;
use crate::server::{Peer, Shared};

/// How long a connection that is going away (GOAWAY sent, no streams left) may take to
/// finish the GOAWAY exchange before it is closed anyway.
const GOAWAY_GRACE: Duration = Duration::from_secs(5);

/// The request an h2c upgrade carried: stream 1 gets this body (already read) and this
/// `content-length` back in its scope.
#[derive(Debug)]
pub(crate) struct Upgraded {
    pub(crate) body: Bytes,
    pub(crate) content_length: Option<Bytes>,
}

/// The `h2` server settings from the configuration.
fn builder(cfg: &crate::config::Http2Config) -> h2::server::Builder {
    let mut b = h2::server::Builder::new();
    b.max_concurrent_streams(cfg.max_concurrent_streams)
        .max_header_list_size(cfg.max_header_list_size)
        .initial_window_size(cfg.initial_stream_window_size)
        .initial_connection_window_size(cfg.initial_connection_window_size)
        .max_frame_size(cfg.max_frame_size)
        .max_pending_accept_reset_streams(cfg.max_pending_accept_reset_streams)
        .max_local_error_reset_streams(Some(cfg.max_local_error_reset_streams))
        .max_send_buffer_size(cfg.max_send_buffer_size)
        .enable_connect_protocol(); // WebSocket over HTTP/2 (RFC 8441; see `super::ws`)
    b
}

/// Serves one HTTP/2 connection until it closes. `io` starts with the client's preface (for
/// an upgrade, with stream 1's HEADERS spliced in; see [`super::upgrade`]).
pub(crate) async fn serve<T, A>(
    io: T,
    shared: &Arc<Shared<A>>,
    peer: &Peer,
    mut upgraded: Option<Upgraded>,
) where
    T: AsyncRead + AsyncWrite + Unpin + Send,
    A: App,
{
    let cfg = &shared.config;
    let handshake = builder(&cfg.http2).handshake::<T, Bytes>(io);
    let conn = tokio::select! {
        r = tokio::time::timeout(cfg.timeout_header_read, handshake) => r,
        _ = shared.graceful.cancelled() => return,
    };
    let mut conn = match conn {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => {
            tracing::debug!(client = ?peer.client, error = %e, "h2 handshake failed");
            return;
        }
        Err(_) => {
            tracing::debug!(client = ?peer.client, "h2 preface did not arrive in time");
            return;
        }
    };
    let mut streams = FuturesUnordered::new();
    // Streams accepted in this pass, not yet started (at most the concurrent-stream limit).
    let mut fresh: Vec<(
        http::Request<h2::RecvStream>,
        h2::server::SendResponse<Bytes>,
    )> = Vec::new();
    // The futures of the streams started in this pass, before their first poll.
    let mut born = Vec::new();
    let mut served: u64 = 0;
    let mut going_away = false;
    let mut accepting = true;
    let mut idle_since = Instant::now();
    let mut timer: Option<Pin<Box<Sleep>>> = None;
    let mut ping = Ping::new(&mut conn, &cfg.http2);
    let mut shutdown = std::pin::pin!(shared.graceful.cancelled());
    // Polled once to register this task's waker; after that only a cancellation (which wakes
    // the task) makes it worth polling again.
    let mut shutdown_watched = false;
    let max_requests = cfg.http2.max_requests;

    poll_fn(|cx| loop {
        if !going_away && (!shutdown_watched || shared.graceful.is_cancelled()) {
            shutdown_watched = true;
            if shutdown.as_mut().poll(cx).is_ready() {
                conn.graceful_shutdown();
                going_away = true;
            }
        }
        let mut accepted = false;
        while accepting {
            match conn.poll_accept(cx) {
                Poll::Ready(Some(Ok(stream))) => {
                    served += 1;
                    accepted = true;
                    fresh.push(stream);
                    if max_requests > 0 && served >= max_requests && !going_away {
                        tracing::debug!(client = ?peer.client, served, "h2: max requests per connection; GOAWAY");
                        conn.graceful_shutdown();
                        going_away = true;
                    }
                }
                Poll::Ready(Some(Err(e))) => {
                    if e.is_io() || e.is_go_away() {
                        tracing::debug!(client = ?peer.client, error = %e, "h2 connection ended");
                    } else {
                        tracing::info!(client = ?peer.client, error = %e, "h2 connection error");
                    }
                    accepting = false;
                }
                Poll::Ready(None) => accepting = false,
                Poll::Pending => break,
            }
        }
        // Started after the accept loop, not in it: the frame decoding of a batch runs first,
        // then the scopes are made, then the apps run, each stage on code still in cache.
        for (req, respond) in fresh.drain(..) {
            // (`stream_id` takes h2's lock: asked only after an upgrade.)
            let pre = if upgraded.is_some() && respond.stream_id().as_u32() == 1 {
                upgraded.take()
            } else {
                None
            };
            born.push(Box::pin(match super::ws::protocol(&req) {
                Some(_) => Either::Left(super::ws::start(req, respond, shared, peer)),
                None => Either::Right(start_stream(req, respond, shared, peer, pre)),
            }));
        }
        // Each new stream is polled once here, with the connection's waker: most (a handler
        // that answers at once) are then done and never enter the set. The others go in and
        // are polled again right away, which moves their wakers to their own.
        for task in born.iter_mut() {
            if let Either::Right(t) = task.as_mut().as_pin_mut() {
                t.poll_app(cx);
            }
        }
        for mut task in born.drain(..) {
            if task.as_mut().poll(cx).is_pending() {
                streams.push(task);
            }
        }
        let busy = !streams.is_empty() || accepted;
        while let Poll::Ready(Some(())) = streams.poll_next_unpin(cx) {}
        if !accepting && streams.is_empty() {
            return Poll::Ready(());
        }
        if busy && streams.is_empty() {
            // Idle from now on.
            idle_since = Instant::now();
        }
        if accepting {
            if let Some(p) = ping.as_mut() {
                if p.poll(cx).is_ready() {
                    tracing::info!(client = ?peer.client, "h2: keep-alive PING not answered; closing");
                    return Poll::Ready(());
                }
            }
            if streams.is_empty() {
                // Idle: before the first request the header-read timeout applies, then the
                // keep-alive timeout; once going away, a short grace for the GOAWAY exchange.
                let limit = if going_away {
                    GOAWAY_GRACE
                } else if served == 0 {
                    cfg.timeout_header_read
                } else {
                    cfg.timeout_keep_alive
                };
                let deadline = idle_since + limit;
                if poll_deadline(&mut timer, cx, deadline).is_ready() {
                    if going_away {
                        return Poll::Ready(());
                    }
                    tracing::trace!(client = ?peer.client, "h2: idle; GOAWAY");
                    conn.graceful_shutdown();
                    going_away = true;
                    idle_since = Instant::now();
                    continue;
                }
            }
        }
        if accepted && accepting {
            // The new streams' first output goes out on the next poll, after the other
            // connections that are ready have had their turn: the responses of a busy moment
            // reach the clients in a burst, and a client woken by the first finds the others
            // waiting (a wakeup per write costs the kernel far more than the extra poll).
            cx.waker().wake_by_ref();
        }
        return Poll::Pending;
    })
    .await;
}

/// Ready once `deadline` has passed. The timer is moved only when the deadline gets earlier
/// or when it fires early, so a busy connection does not touch the timer wheel per request.
pub(crate) fn poll_deadline(
    timer: &mut Option<Pin<Box<Sleep>>>,
    cx: &mut Context<'_>,
    deadline: Instant,
) -> Poll<()> {
    let t = timer.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
    if t.deadline() > deadline {
        t.as_mut().reset(deadline);
    }
    loop {
        if t.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        if Instant::now() >= deadline {
            return Poll::Ready(());
        }
        t.as_mut().reset(deadline);
    }
}

/// Builds a stream's scope and state and returns its future (app and driver together).
// Inlined into the accept loop: the stream's future is then built where it is pushed, not
// copied out and in again (measured: ~150 instructions per request).
#[inline(always)]
fn start_stream<A: App>(
    req: http::Request<h2::RecvStream>,
    respond: h2::server::SendResponse<Bytes>,
    shared: &Arc<Shared<A>>,
    peer: &Peer,
    upgraded: Option<Upgraded>,
) -> StreamTask<A::Future> {
    let (head, body) = req.into_parts();
    let cfg = &shared.config;
    let parts = request_parts(&head);
    let sse = parts
        .as_ref()
        .is_ok_and(|p| !p.is_connect() && crate::proto::h1::conn::wants_event_stream(&p.headers));
    let body_empty = body.is_end_stream();
    // Made in place and then set up: the state is some hundred bytes, not to be copied around.
    let mut stream = Arc::new(Stream::default());
    let mut content_length = parts.as_ref().ok().and_then(|p| p.content_length);
    Stream::fresh(&mut stream, |st| {
        st.set_up(Setup {
            head_request: parts.as_ref().is_ok_and(|p| p.is_head()),
            connect: parts.as_ref().is_ok_and(|p| p.is_connect()),
            sse,
            body_empty,
            high_water: cfg.write_high_water,
            low_water: cfg.write_low_water,
            server_header: cfg.server_header.clone(),
        });
        if let Some(u) = &upgraded {
            st.preload(u.body.clone());
            content_length = Some(u.body.len() as u64);
        }
    });
    let shutdown = sse.then(|| Box::pin(shared.graceful.clone().cancelled_owned()));
    let recv = (!body_empty).then_some(body);
    let driver = Driver::new(
        stream.clone(),
        respond,
        recv,
        cfg.max_body_size,
        cfg.timeout_io,
        shutdown,
    );
    let refuse = match &parts {
        Err(r) => Some(*r),
        Ok(_) if cfg.max_body_size > 0 && content_length.is_some_and(|n| n > cfg.max_body_size) => {
            Some(Reject::BodyTooLarge)
        }
        Ok(_) => None,
    };
    let call = match (parts, refuse) {
        (Ok(mut p), None) => {
            if let Some(cl) = upgraded.and_then(|u| u.content_length) {
                p.headers.push("content-length", cl);
            }
            let scope = HttpScope {
                pagi: PagiVersion,
                http_version: HttpVersion::Http2,
                method: p.method,
                scheme: peer.scheme,
                path: p.path,
                raw_path: p.raw_path,
                query_string: p.query,
                root_path: cfg.root_path.clone(),
                headers: p.headers,
                client: peer.client,
                server: peer.server.clone(),
                subprotocols: Vec::new(),
                state: Some(shared.state.clone()),
                extensions: Extensions {
                    fullflush: !sse,
                    early_hint: !sse,
                    tls: peer.tls.clone(),
                    ..Extensions::default()
                },
                connection: Some(Connection::new(stream.clone())),
            };
            let scope = if sse {
                Scope::Sse(scope)
            } else {
                Scope::Http(scope)
            };
            let rx = Receiver::new(stream.clone());
            Some(shared.app.call(scope, rx, Sender::new(stream)))
        }
        (_, r) => {
            if let Some(r) = r {
                tracing::debug!(client = ?peer.client, reject = %r, "h2: refused request");
            }
            drop(stream);
            None
        }
    };
    StreamTask::new(driver, call, refuse.unwrap_or(Reject::AppError))
}

/// The keep-alive PING: one in flight at a time, every interval; ready when a PONG is late.
struct Ping {
    pp: h2::PingPong,
    interval: Duration,
    timeout: Duration,
    sleep: Pin<Box<Sleep>>,
    in_flight: bool,
}

impl Ping {
    fn new<T, B>(
        conn: &mut h2::server::Connection<T, B>,
        cfg: &crate::config::Http2Config,
    ) -> Option<Ping>
    where
        T: AsyncRead + AsyncWrite + Unpin,
        B: bytes::Buf,
    {
        if cfg.keep_alive_interval.is_zero() {
            return None;
        }
        Some(Ping {
            pp: conn.ping_pong()?,
            interval: cfg.keep_alive_interval,
            timeout: cfg.keep_alive_timeout,
            sleep: Box::pin(tokio::time::sleep(cfg.keep_alive_interval)),
            in_flight: false,
        })
    }

    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            if self.in_flight {
                match self.pp.poll_pong(cx) {
                    Poll::Ready(Ok(_)) => {
                        self.in_flight = false;
                        let next = Instant::now() + self.interval;
                        self.sleep.as_mut().reset(next);
                        continue;
                    }
                    Poll::Ready(Err(_)) => return Poll::Pending, // the connection is ending anyway
                    Poll::Pending => {}
                }
                return match self.sleep.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(()),
                    Poll::Pending => Poll::Pending,
                };
            }
            if self.sleep.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            if self.pp.send_ping(h2::Ping::opaque()).is_err() {
                return Poll::Pending;
            }
            self.in_flight = true;
            let deadline = Instant::now() + self.timeout;
            self.sleep.as_mut().reset(deadline);
        }
    }
}
