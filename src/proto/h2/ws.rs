//! WebSocket over HTTP/2 (RFC 8441): an extended CONNECT with `:protocol websocket` becomes a
//! `websocket` scope, served by the same WebSocket engine as over HTTP/1.1 (`proto::ws`).
//!
//! The server advertises `SETTINGS_ENABLE_CONNECT_PROTOCOL`. A stream whose HEADERS carry
//! `:protocol` comes here instead of becoming an `http` scope:
//!
//! - the request is checked like an HTTP/1.1 handshake where that still applies
//!   ([`handshake::check_h2`]): `sec-websocket-version` must be `13` (none: 400; another: 400
//!   with `sec-websocket-version: 13`, since HTTP/2 cannot carry the 426's `Upgrade`), the
//!   subprotocols must be tokens, and a `:protocol` other than `websocket` is a 501. A stream
//!   that ends with its HEADERS (no room for WebSocket data) is a 400. There is no
//!   `sec-websocket-key` to check;
//! - the scope is the one HTTP/1.1 gives (method `GET`, `ws`/`wss`, the `websocket.http.response`
//!   extension), with `http_version` "2" and the request's fields (`host` from `:authority`);
//! - [`StreamIo`] makes the stream a byte stream: its DATA is what the WebSocket driver reads
//!   and writes. The answer's head is a HEADERS frame: 200 for `websocket.accept` (with the
//!   chosen subprotocol and permessage-deflate parameters, no `sec-websocket-accept`), 403 for
//!   a close before the accept, or the app's denial response. After the closing handshake the
//!   server ends the stream (END_STREAM); a client's RST_STREAM is an abrupt end (1006).

use bytes::{Buf, Bytes, BytesMut};
use h2::server::SendResponse;
use h2::{Reason, RecvStream, SendStream};
use pagi::{App, HttpScope, HttpVersion, Method, PagiVersion};
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use super::scope::request_parts;
use super::stream::{response_head, send_reject};
use crate::error::Reject;
use crate::proto::ws::conn::{pmd_offer, run, ws_extensions, ws_scheme};
use crate::proto::ws::handshake;
use crate::proto::ws::session::{HeadSlot, Session, Wire};
use crate::server::{Peer, Shared};

/// Most bytes asked of the peer's flow-control window for one write.
const MAX_RESERVE: usize = 256 * 1024;

/// The `:protocol` of an extended CONNECT, if the request is one.
pub(crate) fn protocol<B>(req: &http::Request<B>) -> Option<&h2::ext::Protocol> {
    req.extensions().get::<h2::ext::Protocol>()
}

/// The stream's future for an extended CONNECT: a refusal, or the WebSocket until it ends.
pub(crate) fn start<A: App>(
    req: http::Request<RecvStream>,
    respond: SendResponse<Bytes>,
    shared: &Arc<Shared<A>>,
    peer: &Peer,
) -> Pin<Box<dyn Future<Output = ()> + Send + 'static>> {
    let cfg = &shared.config;
    let (mut head, body) = req.into_parts();
    let proto = head
        .extensions
        .get::<h2::ext::Protocol>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_default();
    // The WebSocket's scope has method GET, as over HTTP/1.1; `:path` is the request target
    // (a plain CONNECT would make the authority the path).
    head.method = http::Method::GET;
    let checked = request_parts(&head).and_then(|p| {
        let req = handshake::check_h2(&proto, &p.headers)?;
        if body.is_end_stream() {
            return Err(Reject::BadRequest("extended CONNECT that ends its stream"));
        }
        Ok((p, req))
    });
    let (parts, req) = match checked {
        Ok(ok) => ok,
        Err(r) => {
            tracing::debug!(client = ?peer.client, protocol = %proto, reject = %r, "h2: refused extended CONNECT");
            send_reject(respond, r, cfg.server_header.as_ref());
            return Box::pin(async {});
        }
    };
    let slot = Arc::new(HeadSlot::default());
    let subprotocols = req.subprotocols.clone();
    let session = Arc::new(Session::new(
        req,
        pmd_offer(cfg, &parts.headers),
        cfg.server_header.clone(),
        cfg.write_high_water,
        cfg.write_low_water,
        Wire::H2(slot.clone()),
    ));
    let scope = HttpScope {
        pagi: PagiVersion,
        http_version: HttpVersion::Http2,
        method: Method::GET,
        scheme: ws_scheme(peer.scheme),
        path: parts.path,
        raw_path: parts.raw_path,
        query_string: parts.query,
        root_path: cfg.root_path.clone(),
        headers: parts.headers,
        client: peer.client,
        server: peer.server.clone(),
        subprotocols,
        state: Some(shared.state.clone()),
        extensions: ws_extensions(peer),
        connection: None,
    };
    let mut io = StreamIo::new(respond, body, slot, cfg.server_header.clone());
    let shared = shared.clone();
    let peer = peer.clone();
    Box::pin(async move {
        let mut read_buf = BytesMut::new();
        run(&mut io, &mut read_buf, session, scope, &shared, &peer).await;
    })
}

/// One HTTP/2 stream as a byte stream for the WebSocket driver.
///
/// Reads take the stream's DATA and release those bytes to the peer's window as they are
/// read (the driver stops reading while its buffer or the app's queue is full, so a slow app
/// holds the client back). Writes go out as DATA only as far as the peer's window allows and
/// wait for more window otherwise: nothing is buffered beyond it. The answer's head waits in
/// the session's [`HeadSlot`] and goes out (as HEADERS) before anything else, on the first
/// write, flush or shutdown; shutdown ends the stream (END_STREAM). A client RST_STREAM reads
/// as the end of the stream.
pub(crate) struct StreamIo {
    respond: Option<SendResponse<Bytes>>,
    send: Option<SendStream<Bytes>>,
    recv: RecvStream,
    /// Received bytes not read yet.
    pending: Bytes,
    recv_done: bool,
    slot: Arc<HeadSlot>,
    server_header: Option<Bytes>,
    /// END_STREAM was sent.
    ended: bool,
}

impl std::fmt::Debug for StreamIo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamIo")
            .field("pending", &self.pending.len())
            .field("recv_done", &self.recv_done)
            .field("ended", &self.ended)
            .finish_non_exhaustive()
    }
}

impl StreamIo {
    fn new(
        respond: SendResponse<Bytes>,
        recv: RecvStream,
        slot: Arc<HeadSlot>,
        server_header: Option<Bytes>,
    ) -> Self {
        StreamIo {
            respond: Some(respond),
            send: None,
            recv,
            pending: Bytes::new(),
            recv_done: false,
            slot,
            server_header,
            ended: false,
        }
    }

    /// Sends the answer's head if one waits.
    fn send_head(&mut self) -> io::Result<()> {
        let Some(head) = self.slot.take() else {
            return Ok(());
        };
        let Some(mut respond) = self.respond.take() else {
            return Err(io::Error::other("a second response head"));
        };
        let resp = match response_head(head.status, &head.headers, self.server_header.as_ref()) {
            Ok(r) => r,
            Err(e) => {
                respond.send_reset(Reason::INTERNAL_ERROR);
                return Err(io::Error::other(e.to_string()));
            }
        };
        match respond.send_response(resp, head.end) {
            Ok(s) => {
                self.send = Some(s);
                self.ended = head.end;
                Ok(())
            }
            Err(e) => Err(io::Error::new(io::ErrorKind::BrokenPipe, e)),
        }
    }
}

fn h2_io_error(e: h2::Error) -> io::Error {
    if e.is_io() {
        e.into_io()
            .unwrap_or_else(|| io::Error::other("h2 I/O error"))
    } else {
        io::Error::new(io::ErrorKind::BrokenPipe, e)
    }
}

impl tokio::io::AsyncRead for StreamIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if !this.pending.is_empty() {
                let n = this.pending.len().min(buf.remaining());
                buf.put_slice(&this.pending[..n]);
                this.pending.advance(n);
                if n > 0 {
                    let _ = this.recv.flow_control().release_capacity(n);
                }
                return Poll::Ready(Ok(()));
            }
            if this.recv_done {
                return Poll::Ready(Ok(()));
            }
            match ready!(this.recv.poll_data(cx)) {
                Some(Ok(b)) => this.pending = b,
                None => this.recv_done = true,
                Some(Err(e)) if e.is_reset() => {
                    // RST_STREAM: the client dropped the WebSocket, like a closed connection.
                    tracing::debug!(error = %e, "h2: websocket stream reset by the client");
                    this.recv_done = true;
                }
                Some(Err(e)) => return Poll::Ready(Err(h2_io_error(e))),
            }
        }
    }
}

impl tokio::io::AsyncWrite for StreamIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_vectored(cx, &[io::IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.send_head()?;
        let total: usize = bufs.iter().map(|b| b.len()).sum();
        if total == 0 {
            return Poll::Ready(Ok(0));
        }
        if this.ended {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        }
        let Some(send) = this.send.as_mut() else {
            return Poll::Ready(Err(io::Error::other(
                "stream data before the response head",
            )));
        };
        let cap = loop {
            send.reserve_capacity(total.min(MAX_RESERVE));
            let cap = send.capacity();
            if cap > 0 {
                break cap;
            }
            match ready!(send.poll_capacity(cx)) {
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Poll::Ready(Err(h2_io_error(e))),
                None => return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into())),
            }
        };
        let n = total.min(cap);
        let mut chunk = BytesMut::with_capacity(n);
        for b in bufs {
            let take = b.len().min(n - chunk.len());
            chunk.extend_from_slice(&b[..take]);
            if chunk.len() == n {
                break;
            }
        }
        send.send_data(chunk.freeze(), false).map_err(h2_io_error)?;
        Poll::Ready(Ok(n))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // DATA handed to `h2` goes out as the connection task writes; only the head may wait.
        Poll::Ready(self.get_mut().send_head())
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let head = this.send_head();
        if !this.ended {
            this.ended = true;
            if let Some(s) = this.send.as_mut() {
                // Fails only when the stream is already gone, which ends it too.
                let _ = s.send_data(Bytes::new(), true);
            }
        }
        Poll::Ready(head)
    }
}

impl crate::io::Io for StreamIo {}
