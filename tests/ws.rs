//! The `websocket` scope over HTTP/1.1: the handshake, frames, close codes, pings, refusals,
//! keepalive, shutdown, backpressure and permessage-deflate. Raw sockets with exact bytes, plus
//! a real client (tokio-tungstenite) against the demo app.

mod common;
use common::*;

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};
use futures::{SinkExt, StreamExt};
use pagi::{
    App, BoxError, Bytes, Headers, Message, ReceiveEvent, Receiver, ResponseBody, Scope, SendEvent,
    Sender,
};
use pagi_server::{Config, H2Cleartext, LifespanMode};
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::{self, protocol::frame::coding::CloseCode};

// ---------------------------------------------------------------------------------------------
// Helpers: settings, the recording app
// ---------------------------------------------------------------------------------------------

/// How long a test waits for anything.
const WAIT: Duration = Duration::from_secs(5);

/// RFC 6455 §1.3's sample key and its accept value.
const SAMPLE_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
const SAMPLE_ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

/// The masking key of every raw client frame.
const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// The sync-flush tail permessage-deflate strips (RFC 7692 §7.2.1).
const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

const CONNECT: &str = r#"{"type":"websocket.connect"}"#;
const ACCEPTED: &str = "websocket.accept ok";
const END_OK: &str = "end ok";

/// Test settings: no lifespan, no `server` header, no server pings.
fn cfg(c: &mut Config) {
    c.lifespan = LifespanMode::Off;
    c.server_header = None;
    c.ws.ping_interval = Duration::ZERO;
}

/// What the recording app does, step by step, on a websocket scope.
#[derive(Clone)]
enum Step {
    /// `receive` one event and log it (as JSON).
    Recv,
    /// `send` the event; log `<type> ok` or `<type> err <kind>`.
    Send(SendEvent),
    /// Receive (logging every event) and echo messages until something that is not a message.
    Echo,
    /// Receive (logging every event) until `websocket.disconnect`.
    Drain,
    /// Send the scope, as JSON, in a text message.
    SendScope,
    /// Wait until the flag is set.
    Wait(Arc<AtomicBool>),
    /// Sleep (without touching the WebSocket).
    Sleep(Duration),
    /// Send `n` binary messages of `size` bytes (byte `i` of message `k` is `(k + i) % 251`),
    /// counting each completed send.
    Flood {
        n: usize,
        size: usize,
        done: Arc<AtomicUsize>,
    },
    /// Return an error.
    Fail,
    /// Panic.
    Panic,
}

/// What the recording app saw and did, in order; `calls` counts app calls of any scope type.
#[derive(Clone, Default)]
struct Log {
    entries: Arc<Mutex<Vec<String>>>,
    calls: Arc<AtomicUsize>,
}

impl Log {
    fn push(&self, s: impl Into<String>) {
        self.entries.lock().unwrap().push(s.into());
    }
    fn get(&self) -> Vec<String> {
        self.entries.lock().unwrap().clone()
    }
    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
    /// Waits (up to WAIT) until the app logged its end (`end ok` / `end err ...`).
    fn wait_end(&self) -> Vec<String> {
        self.wait_until(|v| v.iter().any(|e| e.starts_with("end ")))
    }
    /// Waits (up to WAIT) until the log has `n` entries.
    fn wait_len(&self, n: usize) -> Vec<String> {
        self.wait_until(|v| v.len() >= n)
    }
    fn wait_until(&self, f: impl Fn(&[String]) -> bool) -> Vec<String> {
        let end = Instant::now() + WAIT;
        loop {
            let v = self.get();
            if f(&v) || Instant::now() > end {
                return v;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

fn json(ev: &ReceiveEvent) -> String {
    serde_json::to_string(ev).unwrap()
}

fn disc(code: u16, reason: &str) -> String {
    json(&ReceiveEvent::WebsocketDisconnect {
        code,
        reason: reason.into(),
    })
}

fn recv_text(t: &str) -> String {
    json(&ReceiveEvent::WebsocketReceive(Message::Text(t.into())))
}

fn recv_bin(b: &[u8]) -> String {
    json(&ReceiveEvent::WebsocketReceive(Message::Binary(
        Bytes::copy_from_slice(b),
    )))
}

fn err_kind(e: &pagi::Error) -> &'static str {
    if e.is_invalid() {
        "invalid"
    } else if e.is_out_of_order() {
        "out_of_order"
    } else if e.is_unsupported() {
        "unsupported"
    } else {
        "other"
    }
}

fn accept() -> Step {
    accept_with(None, Headers::new())
}

fn accept_with(subprotocol: Option<&str>, headers: Headers) -> Step {
    Step::Send(SendEvent::WebsocketAccept {
        subprotocol: subprotocol.map(Into::into),
        headers,
    })
}

fn ws_close(code: u16, reason: &str) -> Step {
    Step::Send(SendEvent::WebsocketClose {
        code,
        reason: reason.into(),
    })
}

fn ws_text(t: &str) -> Step {
    Step::Send(SendEvent::WebsocketSend(Message::Text(t.into())))
}

fn deny_body(b: &str, more: bool) -> Step {
    let mut body = ResponseBody::default();
    body.bytes = Bytes::copy_from_slice(b.as_bytes());
    body.more = more;
    Step::Send(SendEvent::WebsocketHttpResponseBody(body))
}

/// The recording app. On an `http` scope it logs `scope http` and answers 200 `plain http`.
fn recorder(steps: Vec<Step>, log: Log) -> impl App {
    move |scope: Scope, rx: Receiver, tx: Sender| {
        let steps = steps.clone();
        let log = log.clone();
        async move {
            log.calls.fetch_add(1, Ordering::SeqCst);
            if let Scope::Http(_) = scope {
                log.push("scope http");
                tx.send(SendEvent::start(200, Headers::new())).await?;
                tx.send(SendEvent::body("plain http", false)).await?;
                return Ok(());
            }
            let scope_json = serde_json::to_string(&scope)?;
            let r: Result<(), BoxError> = async {
                for step in steps {
                    match step {
                        Step::Recv => log.push(json(&rx.receive().await?)),
                        Step::Send(ev) => {
                            let kind = ev.kind();
                            match tx.send(ev).await {
                                Ok(()) => log.push(format!("{kind} ok")),
                                Err(e) => log.push(format!("{kind} err {}", err_kind(&e))),
                            }
                        }
                        Step::Echo => loop {
                            let ev = rx.receive().await?;
                            log.push(json(&ev));
                            match ev {
                                ReceiveEvent::WebsocketReceive(m) => {
                                    tx.send(SendEvent::WebsocketSend(m)).await?
                                }
                                _ => break,
                            }
                        },
                        Step::Drain => loop {
                            let ev = rx.receive().await?;
                            log.push(json(&ev));
                            if let ReceiveEvent::WebsocketDisconnect { .. } = ev {
                                break;
                            }
                        },
                        Step::SendScope => {
                            tx.send(SendEvent::WebsocketSend(Message::Text(scope_json.clone())))
                                .await?
                        }
                        Step::Wait(flag) => {
                            while !flag.load(Ordering::SeqCst) {
                                tokio::time::sleep(Duration::from_millis(5)).await;
                            }
                        }
                        Step::Sleep(d) => tokio::time::sleep(d).await,
                        Step::Flood { n, size, done } => {
                            for k in 0..n {
                                let m: Vec<u8> = (0..size).map(|i| ((k + i) % 251) as u8).collect();
                                tx.send(SendEvent::WebsocketSend(Message::Binary(m.into())))
                                    .await?;
                                done.fetch_add(1, Ordering::SeqCst);
                            }
                        }
                        Step::Fail => return Err("scripted failure".into()),
                        Step::Panic => panic!("scripted panic"),
                    }
                }
                Ok(())
            }
            .await;
            log.push(match &r {
                Ok(()) => "end ok".to_string(),
                Err(e) => format!("end err {e}"),
            });
            r
        }
    }
}

/// A server running the recording app with `steps` and the test settings changed by `more`.
fn serve_steps(steps: Vec<Step>, more: impl FnOnce(&mut Config)) -> (TestServer, Log) {
    let log = Log::default();
    let srv = serve(recorder(steps, log.clone()), |c| {
        cfg(c);
        more(c);
    });
    (srv, log)
}

// ---------------------------------------------------------------------------------------------
// Helpers: the raw client
// ---------------------------------------------------------------------------------------------

/// An upgrade request for `path` with the sample key and `extra` header lines.
fn upgrade_request(path: &str, extra: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {SAMPLE_KEY}\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
    )
}

/// Reads a response head byte by byte (so no frame byte after it is consumed).
fn read_head(s: &mut TcpStream) -> String {
    s.set_read_timeout(Some(WAIT)).unwrap();
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        match s.read(&mut byte) {
            Ok(1) => buf.push(byte[0]),
            other => panic!(
                "no complete head ({other:?}); got {:?}",
                String::from_utf8_lossy(&buf)
            ),
        }
    }
    String::from_utf8(buf).unwrap()
}

/// Connects, sends the upgrade request (path `/`, `extra` headers) and returns the socket and
/// the response head.
fn handshake(srv: &TestServer, path: &str, extra: &str) -> (TcpStream, String) {
    let mut s = srv.connect();
    s.write_all(upgrade_request(path, extra).as_bytes())
        .unwrap();
    let head = read_head(&mut s);
    (s, head)
}

/// The exact 101 head the test settings produce for the sample key, without extras.
fn plain_101() -> String {
    format!(
        "HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\n\
         sec-websocket-accept: {SAMPLE_ACCEPT}\r\n\r\n"
    )
}

/// Handshake on `/` and check for the plain 101.
fn open(srv: &TestServer) -> TcpStream {
    let (s, head) = handshake(srv, "/", "");
    assert_eq!(head, plain_101());
    s
}

fn mask(payload: &[u8], key: [u8; 4]) -> Vec<u8> {
    payload
        .iter()
        .enumerate()
        .map(|(i, b)| b ^ key[i % 4])
        .collect()
}

/// A frame header: `b0` (FIN, RSV, opcode), the length in its minimal form (or the 16-bit form
/// with `ext16`), and the mask key if any.
fn header(b0: u8, len: u64, key: Option<[u8; 4]>, ext16: bool) -> Vec<u8> {
    let m = if key.is_some() { 0x80 } else { 0 };
    let mut out = vec![b0];
    if len < 126 && !ext16 {
        out.push(m | len as u8);
    } else if len <= 0xFFFF {
        out.push(m | 126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(m | 127);
        out.extend_from_slice(&len.to_be_bytes());
    }
    if let Some(k) = key {
        out.extend_from_slice(&k);
    }
    out
}

/// A masked client frame with first byte `b0`.
fn frame(b0: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = header(b0, payload.len() as u64, Some(KEY), false);
    out.extend_from_slice(&mask(payload, KEY));
    out
}

/// A masked client frame whose length uses the 16-bit form even when short.
fn frame_ext16(b0: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = header(b0, payload.len() as u64, Some(KEY), true);
    out.extend_from_slice(&mask(payload, KEY));
    out
}

/// An unmasked (invalid) client frame.
fn unmasked(b0: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = header(b0, payload.len() as u64, None, false);
    out.extend_from_slice(payload);
    out
}

fn close_payload(code: u16, reason: &[u8]) -> Vec<u8> {
    let mut p = code.to_be_bytes().to_vec();
    p.extend_from_slice(reason);
    p
}

fn client_close(code: u16, reason: &str) -> Vec<u8> {
    frame(0x88, &close_payload(code, reason.as_bytes()))
}

fn text(t: &str) -> Vec<u8> {
    frame(0x81, t.as_bytes())
}

/// A server frame: its first byte (FIN, RSV, opcode) and payload.
#[derive(Debug, PartialEq, Eq)]
struct Frame {
    b0: u8,
    payload: Vec<u8>,
}

impl Frame {
    fn new(b0: u8, payload: impl AsRef<[u8]>) -> Self {
        Frame {
            b0,
            payload: payload.as_ref().to_vec(),
        }
    }
    fn close(code: u16, reason: &str) -> Self {
        Frame::new(0x88, close_payload(code, reason.as_bytes()))
    }
    fn text(t: &str) -> Self {
        Frame::new(0x81, t)
    }
    fn opcode(&self) -> u8 {
        self.b0 & 0x0F
    }
}

/// Reads one server frame (checking it is unmasked); `None` on a clean end of stream (or a
/// reset) before its first byte. Panics on a timeout.
fn next_frame(s: &mut TcpStream) -> Option<Frame> {
    s.set_read_timeout(Some(WAIT)).unwrap();
    let mut h = [0u8; 2];
    match s.read(&mut h[..1]) {
        Ok(0) => return None,
        Ok(_) => {}
        Err(e) if e.kind() == ErrorKind::ConnectionReset => return None,
        Err(e) => panic!("no frame within {WAIT:?}: {e}"),
    }
    s.read_exact(&mut h[1..]).expect("frame header");
    assert_eq!(h[1] & 0x80, 0, "server frames are not masked");
    let len = match h[1] & 0x7F {
        126 => {
            let mut b = [0u8; 2];
            s.read_exact(&mut b).unwrap();
            u64::from(u16::from_be_bytes(b))
        }
        127 => {
            let mut b = [0u8; 8];
            s.read_exact(&mut b).unwrap();
            u64::from_be_bytes(b)
        }
        n => u64::from(n),
    };
    let mut payload = vec![0u8; len as usize];
    s.read_exact(&mut payload).expect("frame payload");
    Some(Frame { b0: h[0], payload })
}

fn read_frame(s: &mut TcpStream) -> Frame {
    next_frame(s).expect("a frame, not the end of the stream")
}

/// Asserts the server closes the connection (end of stream or reset) with nothing more sent.
fn expect_eof(s: &mut TcpStream) {
    s.set_read_timeout(Some(WAIT)).unwrap();
    let mut buf = [0u8; 1024];
    match s.read(&mut buf) {
        Ok(0) => {}
        Err(e) if e.kind() == ErrorKind::ConnectionReset => {}
        Ok(n) => panic!("expected the end of stream, got {:?}", &buf[..n]),
        Err(e) => panic!("expected the end of stream: {e}"),
    }
}

/// Reads until the server closes (or WAIT passes; then panics).
fn read_all_until_eof(s: &mut TcpStream) -> Vec<u8> {
    s.set_read_timeout(Some(WAIT)).unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return out,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return out,
            Err(e) => panic!("the server did not close: {e}; got {out:?}"),
        }
    }
}

/// Replaces the value of every `date:` line (after checking its shape) with `X`.
fn norm(raw: &str) -> String {
    let mut out = String::new();
    let mut rest = raw;
    while let Some(i) = rest.find("\r\ndate: ") {
        let start = i + "\r\ndate: ".len();
        out.push_str(&rest[..start]);
        let end = rest[start..].find("\r\n").map_or(rest.len(), |j| start + j);
        let date = &rest[start..end];
        assert!(
            date.len() == 29 && date.ends_with(" GMT"),
            "bad date {date:?}"
        );
        out.push('X');
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

/// Raw deflate of `data` with a sync flush, the tail removed: a permessage-deflate payload.
fn deflate(data: &[u8]) -> Vec<u8> {
    let mut z = Compress::new(Compression::default(), false);
    let mut out = Vec::with_capacity(data.len() / 2 + 1024);
    let mut input = data;
    loop {
        if out.capacity() - out.len() < 1024 {
            out.reserve(out.capacity());
        }
        let before = z.total_in();
        z.compress_vec(input, &mut out, FlushCompress::Sync)
            .unwrap();
        input = &input[(z.total_in() - before) as usize..];
        if input.is_empty() && out.ends_with(&TAIL) && out.capacity() > out.len() {
            break;
        }
    }
    out.truncate(out.len() - 4);
    out
}

/// Inflates one permessage-deflate payload with `z` (which keeps the context across messages).
fn inflate(z: &mut Decompress, payload: &[u8]) -> Vec<u8> {
    let mut input = payload.to_vec();
    input.extend_from_slice(&TAIL);
    let mut out = Vec::with_capacity(64 * 1024);
    let mut rest = &input[..];
    loop {
        if out.capacity() - out.len() < 1024 {
            out.reserve(out.capacity());
        }
        let before = z.total_in();
        z.decompress_vec(rest, &mut out, FlushDecompress::Sync)
            .expect("the server's payload inflates");
        rest = &rest[(z.total_in() - before) as usize..];
        if rest.is_empty() && out.capacity() > out.len() {
            return out;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 1. The handshake
// ---------------------------------------------------------------------------------------------

#[test]
fn handshake_101_exact_bytes_for_rfc_sample_key() {
    let log = Log::default();
    // The default `server` header this time.
    let srv = serve(
        recorder(
            vec![
                Step::Recv,
                // `connection` and `sec-websocket-accept` are the server's: dropped.
                accept_with(
                    None,
                    Headers::new()
                        .with("x-a", "1")
                        .with("Connection", "close")
                        .with("sec-websocket-accept", "forged")
                        .with("set-cookie", "sid=abc; HttpOnly"),
                ),
                Step::Drain,
            ],
            log.clone(),
        ),
        |c| {
            c.lifespan = LifespanMode::Off;
            c.ws.ping_interval = Duration::ZERO;
        },
    );
    let (mut s, head) = handshake(&srv, "/chat", "");
    assert_eq!(
        head,
        "HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\n\
         sec-websocket-accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\nx-a: 1\r\n\
         set-cookie: sid=abc; HttpOnly\r\nserver: pagi-server\r\n\r\n"
    );
    s.write_all(&client_close(1000, "")).unwrap();
    assert_eq!(read_frame(&mut s), Frame::close(1000, ""));
    expect_eof(&mut s);
    assert_eq!(log.wait_end(), [CONNECT, ACCEPTED, &disc(1000, ""), END_OK]);
}

#[test]
fn handshake_app_server_header_replaces_the_servers() {
    let log = Log::default();
    let srv = serve(
        recorder(
            vec![
                Step::Recv,
                accept_with(None, Headers::new().with("Server", "mine")),
            ],
            log.clone(),
        ),
        |c| {
            c.lifespan = LifespanMode::Off;
            c.ws.ping_interval = Duration::ZERO;
        },
    );
    let (mut s, head) = handshake(&srv, "/", "");
    assert_eq!(
        head,
        format!(
            "HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\n\
             sec-websocket-accept: {SAMPLE_ACCEPT}\r\nServer: mine\r\n\r\n"
        )
    );
    // The app returned: Close 1000.
    assert_eq!(read_frame(&mut s), Frame::close(1000, ""));
    s.write_all(&client_close(1000, "")).unwrap();
    expect_eof(&mut s);
}

#[test]
fn subprotocol_is_chosen_from_the_offers() {
    let (srv, log) = serve_steps(
        vec![
            Step::Recv,
            accept_with(Some("v2"), Headers::new()),
            Step::Drain,
        ],
        |_| {},
    );
    let (mut s, head) = handshake(
        &srv,
        "/",
        "Sec-WebSocket-Protocol: chat, superchat\r\nSec-WebSocket-Protocol: v2\r\n",
    );
    assert_eq!(
        head,
        format!(
            "HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\n\
             sec-websocket-accept: {SAMPLE_ACCEPT}\r\nsec-websocket-protocol: v2\r\n\r\n"
        )
    );
    s.write_all(&client_close(1001, "away")).unwrap();
    assert_eq!(read_frame(&mut s), Frame::close(1001, ""));
    expect_eof(&mut s);
    assert_eq!(
        log.wait_end(),
        [CONNECT, ACCEPTED, &disc(1001, "away"), END_OK]
    );
}

#[test]
fn subprotocol_not_offered_is_invalid_and_500_when_the_app_returns() {
    let (srv, log) = serve_steps(
        vec![Step::Recv, accept_with(Some("nope"), Headers::new())],
        |_| {},
    );
    let (mut s, head) = handshake(&srv, "/", "Sec-WebSocket-Protocol: chat\r\n");
    let rest = read_all_until_eof(&mut s);
    assert_eq!(
        norm(&format!("{head}{}", String::from_utf8_lossy(&rest))),
        "HTTP/1.1 500 Internal Server Error\r\ncontent-type: text/plain; charset=utf-8\r\n\
         content-length: 22\r\nconnection: close\r\ndate: X\r\n\r\nInternal Server Error\n"
    );
    assert_eq!(
        log.wait_end(),
        [CONNECT, "websocket.accept err invalid", END_OK]
    );
}

#[test]
fn subprotocol_can_be_retried_after_an_invalid_accept() {
    let (srv, log) = serve_steps(
        vec![
            Step::Recv,
            accept_with(Some("nope"), Headers::new()),
            accept_with(Some("chat"), Headers::new()),
            Step::Drain,
        ],
        |_| {},
    );
    let (mut s, head) = handshake(&srv, "/", "Sec-WebSocket-Protocol: chat\r\n");
    assert!(
        head.ends_with("sec-websocket-protocol: chat\r\n\r\n"),
        "{head}"
    );
    s.write_all(&client_close(1000, "")).unwrap();
    assert_eq!(read_frame(&mut s), Frame::close(1000, ""));
    assert_eq!(
        log.wait_end(),
        [
            CONNECT,
            "websocket.accept err invalid",
            ACCEPTED,
            &disc(1000, ""),
            END_OK
        ]
    );
}

#[test]
fn scope_fields() {
    let (srv, _log) = serve_steps(
        vec![Step::Recv, accept(), Step::SendScope, Step::Drain],
        |_| {},
    );
    let mut s = srv.connect();
    s.write_all(
        format!(
            "GET /chat/room%201?a=1&b=%20 HTTP/1.1\r\nHost: example.com\r\nUpgrade: h2c, WebSocket\r\n\
             Connection: keep-alive, Upgrade\r\nSec-WebSocket-Key: {SAMPLE_KEY}\r\n\
             Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: chat.v2 , chat.v1\r\n\
             Sec-WebSocket-Protocol: v3\r\nOrigin: http://example.com\r\n\r\n"
        )
        .as_bytes(),
    )
    .unwrap();
    assert_eq!(read_head(&mut s), plain_101());
    let f = read_frame(&mut s);
    assert_eq!(f.b0, 0x81);
    let v: serde_json::Value = serde_json::from_slice(&f.payload).unwrap();
    let port = srv.addr().port();
    assert_eq!(v["type"], "websocket");
    assert_eq!(
        v["pagi"],
        serde_json::json!({"version": "0.3", "spec_version": "0.3"})
    );
    assert_eq!(v["http_version"], "1.1");
    assert_eq!(v["method"], "GET");
    assert_eq!(v["scheme"], "ws");
    assert_eq!(v["path"], "/chat/room 1");
    assert_eq!(v["raw_path"], "/chat/room%201");
    assert_eq!(v["query_string"], "a=1&b=%20");
    assert_eq!(v["root_path"], "");
    assert_eq!(
        v["subprotocols"],
        serde_json::json!(["chat.v2", "chat.v1", "v3"])
    );
    assert_eq!(v["server"], serde_json::json!(["127.0.0.1", port]));
    assert_eq!(v["client"][0], "127.0.0.1");
    // The denial events are advertised (spec/extensions.md's rule; spec/websocket.md still says
    // `{}`).
    assert_eq!(
        v["extensions"],
        serde_json::json!({"websocket.http.response": {}})
    );
    assert_eq!(
        v["headers"],
        serde_json::json!([
            ["host", "example.com"],
            ["upgrade", "h2c, WebSocket"],
            ["connection", "keep-alive, Upgrade"],
            ["sec-websocket-key", SAMPLE_KEY],
            ["sec-websocket-version", "13"],
            ["sec-websocket-protocol", "chat.v2 , chat.v1"],
            ["sec-websocket-protocol", "v3"],
            ["origin", "http://example.com"]
        ])
    );
    s.write_all(&client_close(1000, "")).unwrap();
    assert_eq!(read_frame(&mut s), Frame::close(1000, ""));
    expect_eof(&mut s);
}

#[test]
fn scope_without_subprotocols_leaves_the_key_out() {
    let (srv, _log) = serve_steps(
        vec![Step::Recv, accept(), Step::SendScope, Step::Drain],
        |_| {},
    );
    let mut s = open(&srv);
    let f = read_frame(&mut s);
    let v: serde_json::Value = serde_json::from_slice(&f.payload).unwrap();
    assert!(v.get("subprotocols").is_none(), "{v}");
    assert_eq!(v["path"], "/");
    assert_eq!(v["query_string"], "");
}

#[test]
fn frames_sent_right_after_the_request_are_kept() {
    let (srv, log) = serve_steps(vec![Step::Recv, accept(), Step::Echo], |_| {});
    let mut s = srv.connect();
    let mut bytes = upgrade_request("/", "").into_bytes();
    bytes.extend(text("early"));
    s.write_all(&bytes).unwrap();
    assert_eq!(read_head(&mut s), plain_101());
    assert_eq!(read_frame(&mut s), Frame::text("early"));
    s.write_all(&client_close(1000, "")).unwrap();
    assert_eq!(read_frame(&mut s), Frame::close(1000, ""));
    assert_eq!(
        log.wait_end(),
        [
            CONNECT,
            ACCEPTED,
            &recv_text("early"),
            &disc(1000, ""),
            END_OK
        ]
    );
}

#[test]
fn upgrade_after_a_plain_request_on_the_same_connection() {
    let (srv, log) = serve_steps(vec![Step::Recv, accept(), Step::Echo], |_| {});
    let mut s = srv.connect();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let (head, body) = read_response(&mut s);
    assert_eq!(status(&head), 200);
    assert_eq!(body, b"plain http");
    s.write_all(upgrade_request("/", "").as_bytes()).unwrap();
    assert_eq!(read_head(&mut s), plain_101());
    s.write_all(&text("hi")).unwrap();
    assert_eq!(read_frame(&mut s), Frame::text("hi"));
    assert_eq!(log.calls(), 2);
    assert_eq!(log.get()[..3], ["scope http", CONNECT, ACCEPTED]);
}

// ---------------------------------------------------------------------------------------------
// 2. Bad handshakes never reach the app
// ---------------------------------------------------------------------------------------------

const BAD_400: &str = "HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain; charset=utf-8\r\n\
                       content-length: 12\r\nconnection: close\r\ndate: X\r\n\r\nBad Request\n";
const BAD_426: &str =
    "HTTP/1.1 426 Upgrade Required\r\ncontent-type: text/plain; charset=utf-8\r\n\
                       content-length: 17\r\nconnection: close\r\nsec-websocket-version: 13\r\n\
                       date: X\r\n\r\nUpgrade Required\n";

#[test]
fn bad_handshakes_never_reach_the_app() {
    let (srv, log) = serve_steps(vec![Step::Recv, accept(), Step::Drain], |_| {});
    let good = upgrade_request("/", "");
    let key_line = format!("Sec-WebSocket-Key: {SAMPLE_KEY}\r\n");
    let cases: Vec<(&str, String, &str)> = vec![
        ("missing key", good.replace(&key_line, ""), BAD_400),
        (
            "key of 11 bytes",
            good.replace(SAMPLE_KEY, "dGhlIHNhbXBsZQ=="),
            BAD_400,
        ),
        (
            "key of 17 bytes",
            good.replace(SAMPLE_KEY, "dGhlIHNhbXBsZSBub25jZSE="),
            BAD_400,
        ),
        (
            "key not base64",
            good.replace(SAMPLE_KEY, "not base64!!"),
            BAD_400,
        ),
        (
            "two keys",
            good.replace(&key_line, &format!("{key_line}{key_line}")),
            BAD_400,
        ),
        (
            "version 8",
            good.replace("Version: 13", "Version: 8"),
            BAD_426,
        ),
        (
            "version twice",
            good.replace(
                "Sec-WebSocket-Version: 13\r\n",
                "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Version: 13\r\n",
            ),
            BAD_426,
        ),
        (
            "missing version",
            good.replace("Sec-WebSocket-Version: 13\r\n", ""),
            BAD_400,
        ),
        ("POST", good.replacen("GET", "POST", 1), BAD_400),
        (
            "connection without upgrade",
            good.replace("Connection: Upgrade", "Connection: keep-alive"),
            BAD_400,
        ),
        (
            "no connection field",
            good.replace("Connection: Upgrade\r\n", ""),
            BAD_400,
        ),
        (
            "HTTP/1.0",
            good.replacen("HTTP/1.1", "HTTP/1.0", 1),
            BAD_400,
        ),
        (
            "with a body",
            good.replace("Host: x\r\n", "Host: x\r\nContent-Length: 3\r\n") + "abc",
            BAD_400,
        ),
        (
            "subprotocol not a token",
            good.replace(
                "Host: x\r\n",
                "Host: x\r\nSec-WebSocket-Protocol: super chat\r\n",
            ),
            BAD_400,
        ),
    ];
    for (name, req, want) in cases {
        let got = srv.raw(req.as_bytes());
        assert_eq!(norm(&got), want, "{name}");
    }
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(log.calls(), 0, "no bad handshake reaches the app");
    assert!(log.get().is_empty());
}

#[test]
fn upgrade_h2c_stays_http() {
    // `Upgrade: h2c` is not a WebSocket handshake. With h2c upgrades on (the default) it becomes
    // HTTP/2 (tests/h2.rs); with them off it is a plain `http` request.
    let (srv, log) = serve_steps(vec![], |c| c.http2.cleartext = H2Cleartext::PriorKnowledge);
    let got = srv.raw(
        b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: h2c\r\nConnection: Upgrade, HTTP2-Settings\r\n\
          HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status(&got), 200, "{got}");
    assert!(got.ends_with("\r\n\r\nplain http"), "{got}");
    assert_eq!(log.calls(), 1);
    assert_eq!(log.get(), ["scope http"]);
}

// ---------------------------------------------------------------------------------------------
// 3. Events and close codes
// ---------------------------------------------------------------------------------------------

#[test]
fn peer_close_is_echoed_and_reported() {
    let (srv, log) = serve_steps(vec![Step::Recv, accept(), Step::Drain], |_| {});
    let mut s = open(&srv);
    s.write_all(&client_close(1000, "bye")).unwrap();
    // The code is echoed, without the reason; then the server closes TCP first.
    assert_eq!(read_frame(&mut s), Frame::new(0x88, [0x03, 0xe8]));
    expect_eof(&mut s);
    assert_eq!(
        log.wait_end(),
        [
            CONNECT,
            ACCEPTED,
            r#"{"type":"websocket.disconnect","code":1000,"reason":"bye"}"#,
            END_OK
        ]
    );
}

#[test]
fn empty_close_is_echoed_empty_and_reported_as_1005() {
    let (srv, log) = serve_steps(vec![Step::Recv, accept(), Step::Drain], |_| {});
    let mut s = open(&srv);
    s.write_all(&frame(0x88, b"")).unwrap();
    assert_eq!(read_frame(&mut s), Frame::new(0x88, []));
    expect_eof(&mut s);
    assert_eq!(log.wait_end(), [CONNECT, ACCEPTED, &disc(1005, ""), END_OK]);
}

#[test]
fn messages_before_a_close_are_delivered_first() {
    let (srv, log) = serve_steps(vec![Step::Recv, accept(), Step::Drain], |_| {});
    let mut s = open(&srv);
    let mut bytes = text("one");
    bytes.extend(frame(0x82, &[0, 0xff]));
    bytes.extend(client_close(4001, "later"));
    bytes.extend(text("dropped after the close"));
    s.write_all(&bytes).unwrap();
    assert_eq!(read_frame(&mut s), Frame::close(4001, ""));
    expect_eof(&mut s);
    assert_eq!(
        log.wait_end(),
        [
            CONNECT,
            ACCEPTED,
            &recv_text("one"),
            &recv_bin(&[0, 0xff]),
            &disc(4001, "later"),
            END_OK
        ]
    );
}

#[test]
fn tcp_drop_is_1006_client_closed() {
    let (srv, log) = serve_steps(vec![Step::Recv, accept(), Step::Drain], |_| {});
    let s = open(&srv);
    assert_eq!(log.wait_len(2), [CONNECT, ACCEPTED]);
    drop(s);
    assert_eq!(
        log.wait_end(),
        [CONNECT, ACCEPTED, &disc(1006, "client_closed"), END_OK]
    );
}

#[test]
fn disconnect_repeats_on_every_later_receive() {
    let (srv, log) = serve_steps(
        vec![Step::Recv, accept(), Step::Drain, Step::Recv, Step::Recv],
        |_| {},
    );
    let mut s = open(&srv);
    s.write_all(&client_close(1000, "x")).unwrap();
    assert_eq!(read_frame(&mut s), Frame::close(1000, ""));
    let d = disc(1000, "x");
    assert_eq!(log.wait_end(), [CONNECT, ACCEPTED, &d, &d, &d, END_OK]);
}

/// Opens a WebSocket to an app that accepts and drains, sends `bytes`, and checks that the
/// server answers Close `code` with `reason`, closes the connection, and tells the app
/// (`code`, `token`).
fn expect_failure(
    name: &str,
    more: impl FnOnce(&mut Config),
    extra: &str,
    bytes: &[u8],
    code: u16,
    reason: &str,
    token: &str,
) {
    let (srv, log) = serve_steps(vec![Step::Recv, accept(), Step::Drain], more);
    let (mut s, head) = handshake(&srv, "/", extra);
    assert!(head.starts_with("HTTP/1.1 101 "), "{name}: {head}");
    // The peer may be cut off while still writing: ignore write errors.
    let _ = s.write_all(bytes);
    assert_eq!(
        next_frame(&mut s),
        Some(Frame::close(code, reason)),
        "{name}"
    );
    expect_eof(&mut s);
    assert_eq!(
        log.wait_end(),
        [CONNECT, ACCEPTED, &disc(code, token), END_OK],
        "{name}"
    );
}

#[test]
fn protocol_errors_fail_the_connection() {
    let too_long_ping = vec![b'p'; 126];
    let mut msb_len = header(0x82, 0, Some(KEY), false);
    msb_len[1] = 0x80 | 127;
    msb_len.splice(2..2, [0x80, 0, 0, 0, 0, 0, 0, 1]);
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        (
            "unmasked",
            unmasked(0x81, b"hi"),
            1002,
            "unmasked client frame",
        ),
        ("RSV2", frame(0xA1, b"hi"), 1002, "reserved bits set"),
        ("RSV3", frame(0x91, b"hi"), 1002, "reserved bits set"),
        (
            "RSV1 without permessage-deflate",
            frame(0xC1, b"hi"),
            1002,
            "RSV1 set without permessage-deflate",
        ),
        ("opcode 3", frame(0x83, b"hi"), 1002, "reserved opcode"),
        ("opcode 0xB", frame(0x8B, b""), 1002, "reserved opcode"),
        (
            "ping of 126 bytes",
            frame(0x89, &too_long_ping),
            1002,
            "control frame too long",
        ),
        (
            "fragmented ping",
            frame(0x09, b"p"),
            1002,
            "fragmented control frame",
        ),
        (
            "continuation without a start",
            frame(0x80, b"x"),
            1002,
            "continuation frame without a message",
        ),
        (
            "new message inside a fragmented one",
            [frame(0x01, b"a"), frame(0x81, b"b")].concat(),
            1002,
            "new data frame inside a fragmented message",
        ),
        (
            "64-bit length with the top bit set",
            msb_len,
            1002,
            "frame length out of range",
        ),
        (
            "close code 1005",
            frame(0x88, &close_payload(1005, b"")),
            1002,
            "invalid close code",
        ),
        (
            "close code 1006",
            frame(0x88, &close_payload(1006, b"")),
            1002,
            "invalid close code",
        ),
        (
            "close code 1004",
            frame(0x88, &close_payload(1004, b"")),
            1002,
            "invalid close code",
        ),
        (
            "close code 1015",
            frame(0x88, &close_payload(1015, b"")),
            1002,
            "invalid close code",
        ),
        (
            "close code 2999",
            frame(0x88, &close_payload(2999, b"")),
            1002,
            "invalid close code",
        ),
        (
            "close code 999",
            frame(0x88, &close_payload(999, b"")),
            1002,
            "invalid close code",
        ),
        (
            "close code 5000",
            frame(0x88, &close_payload(5000, b"")),
            1002,
            "invalid close code",
        ),
        (
            "close payload of 1 byte",
            frame(0x88, &[0x03]),
            1002,
            "close payload of one byte",
        ),
        (
            "invalid UTF-8 text",
            frame(0x81, b"ok\xff"),
            1007,
            "invalid UTF-8",
        ),
        (
            "invalid UTF-8 across fragments",
            [frame(0x01, b"\xce"), frame(0x80, b"\xff")].concat(),
            1007,
            "invalid UTF-8",
        ),
        (
            "text ending mid-sequence",
            frame(0x81, b"ab\xe2\x82"),
            1007,
            "invalid UTF-8",
        ),
        (
            "fragmented text ending mid-sequence",
            [frame(0x01, b"ab"), frame(0x80, b"\xe2\x82")].concat(),
            1007,
            "invalid UTF-8",
        ),
        (
            "invalid UTF-8 close reason",
            frame(0x88, &close_payload(1000, b"\xc0\x80")),
            1007,
            "invalid UTF-8",
        ),
    ];
    for (name, bytes, code, reason) in cases {
        expect_failure(name, |_| {}, "", &bytes, code, reason, "protocol_error");
    }
}

#[test]
fn non_minimal_lengths_are_accepted() {
    let (srv, log) = serve_steps(vec![Step::Recv, accept(), Step::Echo], |_| {});
    let mut s = open(&srv);
    s.write_all(&frame_ext16(0x81, b"short")).unwrap();
    assert_eq!(read_frame(&mut s), Frame::text("short"));
    let mut f64 = header(0x82, 0, Some(KEY), false);
    f64[1] = 0x80 | 127;
    f64.splice(2..2, 3u64.to_be_bytes());
    f64.extend(mask(b"abc", KEY));
    s.write_all(&f64).unwrap();
    assert_eq!(read_frame(&mut s), Frame::new(0x82, b"abc"));
    s.write_all(&client_close(1000, "")).unwrap();
    assert_eq!(read_frame(&mut s), Frame::close(1000, ""));
    assert_eq!(
        log.wait_end(),
        [
            CONNECT,
            ACCEPTED,
            &recv_text("short"),
            &recv_bin(b"abc"),
            &disc(1000, ""),
            END_OK
        ]
    );
}

#[test]
fn message_over_the_size_limit_is_1009() {
    let small = |c: &mut Config| c.ws.max_message_size = 1000;
    expect_failure(
        "one frame of 1001 bytes",
        small,
        "",
        &frame(0x82, &[7; 1001]),
        1009,
        "message too big",
        "body_too_large",
    );
    expect_failure(
        "three fragments adding up to 1200 bytes",
        small,
        "",
        &[
            frame(0x02, &[1; 400]),
            frame(0x00, &[2; 400]),
            frame(0x80, &[3; 400]),
        ]
        .concat(),
        1009,
        "message too big",
        "body_too_large",
    );
    // Exactly the limit is fine.
    let (srv, log) = serve_steps(vec![Step::Recv, accept(), Step::Echo], small);
    let mut s = open(&srv);
    s.write_all(&frame(0x82, &[9; 1000])).unwrap();
    assert_eq!(read_frame(&mut s), Frame::new(0x82, [9; 1000]));
    s.write_all(&client_close(1000, "")).unwrap();
    assert_eq!(read_frame(&mut s), Frame::close(1000, ""));
    assert_eq!(log.wait_end().len(), 5);
}

#[test]
fn frame_header_announcing_too_much_fails_before_the_payload() {
    let (srv, log) = serve_steps(vec![Step::Recv, accept(), Step::Drain], |c| {
        c.ws.max_message_size = 1000
    });
    let mut s = open(&srv);
    let t = Instant::now();
    // A 1 MiB binary frame: only its header is sent.
    s.write_all(&header(0x82, 1 << 20, Some(KEY), false))
        .unwrap();
    assert_eq!(read_frame(&mut s), Frame::close(1009, "message too big"));
    expect_eof(&mut s);
    assert!(t.elapsed() < Duration::from_secs(2));
    assert_eq!(
        log.wait_end(),
        [CONNECT, ACCEPTED, &disc(1009, "body_too_large"), END_OK]
    );
}

#[test]
fn too_many_fragments_is_1009() {
    let four = |c: &mut Config| c.ws.max_fragments = 4;
    // Four fragments (with a ping between them, which does not count) are one message.
    let (srv, log) = serve_steps(vec![Step::Recv, accept(), Step::Echo], four);
    let mut s = open(&srv);
    s.write_all(
        &[
            frame(0x01, b"a"),
            frame(0x00, b"b"),
            frame(0x89, b""),
            frame(0x00, b"c"),
            frame(0x80, b"d"),
        ]
        .concat(),
    )
    .unwrap();
    assert_eq!(read_frame(&mut s), Frame::new(0x8A, b""));
    assert_eq!(read_frame(&mut s), Frame::text("abcd"));
    s.write_all(&client_close(1000, "")).unwrap();
    assert_eq!(read_frame(&mut s), Frame::close(1000, ""));
    assert_eq!(log.wait_end()[2], recv_text("abcd"));
    // Five are too many.
    expect_failure(
        "five fragments",
        four,
        "",
        &[
            frame(0x01, b"a"),
            frame(0x00, b"b"),
            frame(0x00, b"c"),
            frame(0x00, b"d"),
            frame(0x80, b"e"),
        ]
        .concat(),
        1009,
        "too many fragments",
        "body_too_large",
    );
}

#[test]
fn queue_overflow_is_1008_and_the_queued_messages_come_first() {
    let go = Arc::new(AtomicBool::new(false));
    let (srv, log) = serve_steps(
        vec![Step::Recv, accept(), Step::Wait(go.clone()), Step::Drain],
        |c| c.ws.max_queue = 2,
    );
    let mut s = open(&srv);
    assert_eq!(log.wait_len(2), [CONNECT, ACCEPTED]);
    s.write_all(&[text("m1"), text("m2"), text("m3"), text("m4")].concat())
        .unwrap();
    assert_eq!(read_frame(&mut s), Frame::close(1008, "queue overflow"));
    expect_eof(&mut s);
    drop(s);
    assert_eq!(
        log.get(),
        [CONNECT, ACCEPTED],
        "the app has read nothing yet"
    );
    go.store(true, Ordering::SeqCst);
    assert_eq!(
        log.wait_end(),
        [
            CONNECT,
            ACCEPTED,
            &recv_text("m1"),
            &recv_text("m2"),
            &disc(1008, "queue_overflow"),
            END_OK
        ]
    );
}

#[test]
fn queue_of_exactly_max_queue_messages_is_fine() {
    let go = Arc::new(AtomicBool::new(false));
    let (srv, log) = serve_steps(
        vec![Step::Recv, accept(), Step::Wait(go.clone()), Step::Echo],
        |c| c.ws.max_queue = 2,
    );
    let mut s = open(&srv);
    assert_eq!(log.wait_len(2), [CONNECT, ACCEPTED]);
    s.write_all(&[text("m1"), text("m2")].concat()).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    go.store(true, Ordering::SeqCst);
    assert_eq!(read_frame(&mut s), Frame::text("m1"));
    assert_eq!(read_frame(&mut s), Frame::text("m2"));
    s.write_all(&client_close(1000, "")).unwrap();
    assert_eq!(read_frame(&mut s), Frame::close(1000, ""));
    assert_eq!(
        log.wait_end(),
        [
            CONNECT,
            ACCEPTED,
            &recv_text("m1"),
            &recv_text("m2"),
            &disc(1000, ""),
            END_OK
        ]
    );
}

#[test]
fn invalid_utf8_fails_fast_in_the_middle_of_a_frame() {
    for bad in [&b"\xc0\x80"[..], b"\xff"] {
        let (srv, log) = serve_steps(vec![Step::Recv, accept(), Step::Drain], |_| {});
        let mut s = open(&srv);
        // A text frame announcing 200 bytes; only the first 20 are sent, with a bad sequence.
        let mut payload = b"0123456789".to_vec();
        payload.extend_from_slice(bad);
        payload.resize(200, b'x');
        let mut bytes = header(0x81, 200, Some(KEY), false);
        bytes.extend_from_slice(&mask(&payload, KEY)[..20]);
        s.write_all(&bytes).unwrap();
        let t = Instant::now();
        assert_eq!(
            read_frame(&mut s),
            Frame::close(1007, "invalid UTF-8"),
            "{bad:x?}"
        );
        expect_eof(&mut s);
        assert!(t.elapsed() < Duration::from_secs(2), "{bad:x?}");
        assert_eq!(
            log.wait_end(),
            [CONNECT, ACCEPTED, &disc(1007, "protocol_error"), END_OK]
        );
    }
}

#[test]
fn a_second_receive_before_answering_waits_for_the_client_to_leave() {
    let (srv, log) = serve_steps(vec![Step::Recv, Step::Recv], |_| {});
    let mut s = srv.connect();
    s.write_all(upgrade_request("/", "").as_bytes()).unwrap();
    assert_eq!(log.wait_len(1), [CONNECT]);
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(log.get(), [CONNECT], "the second receive waits");
    drop(s);
    assert_eq!(
        log.wait_end(),
        [CONNECT, &disc(1006, "client_closed"), END_OK]
    );
}

// ---------------------------------------------------------------------------------------------
// 4. Pings
// ---------------------------------------------------------------------------------------------

#[test]
fn lone_pings_are_answered_with_the_same_payload() {
    let (srv, _log) = serve_steps(vec![Step::Recv, accept(), Step::Echo], |_| {});
    let mut s = open(&srv);
    let long = [0xA5u8; 125];
    for payload in [&b"hello"[..], b"", &long] {
        s.write_all(&frame(0x89, payload)).unwrap();
        assert_eq!(read_frame(&mut s), Frame::new(0x8A, payload));
    }
}

#[test]
fn pings_are_answered_with_the_same_payload() {
    // Each ping is followed by a message, whose delivery to the app also wakes the writer (see
    // the ignored test above for a ping on its own).
    let (srv, log) = serve_steps(vec![Step::Recv, accept(), Step::Echo], |_| {});
    let mut s = open(&srv);
    let long = [0xA5u8; 125];
    for payload in [&b"hello"[..], b"", &long] {
        s.write_all(&[frame(0x89, payload), text("m")].concat())
            .unwrap();
        assert_eq!(read_frame(&mut s), Frame::new(0x8A, payload));
        assert_eq!(read_frame(&mut s), Frame::text("m"));
    }
    // An unsolicited pong is ignored.
    s.write_all(&[frame(0x8A, b"unsolicited"), text("after")].concat())
        .unwrap();
    assert_eq!(read_frame(&mut s), Frame::text("after"));
    s.write_all(&client_close(1000, "")).unwrap();
    assert_eq!(read_frame(&mut s), Frame::close(1000, ""));
    expect_eof(&mut s);
    let m = recv_text("m");
    assert_eq!(
        log.wait_end(),
        [
            CONNECT,
            ACCEPTED,
            &m,
            &m,
            &m,
            &recv_text("after"),
            &disc(1000, ""),
            END_OK
        ]
    );
}

#[test]
fn ping_between_fragments_is_answered_before_the_message_ends() {
    let (srv, _log) = serve_steps(vec![Step::Recv, accept(), Step::Echo], |_| {});
    let mut s = open(&srv);
    s.write_all(&frame(0x01, b"Hel")).unwrap();
    s.write_all(&frame(0x89, b"p1")).unwrap();
    // The pong goes out before the message is complete.
    assert_eq!(read_frame(&mut s), Frame::new(0x8A, b"p1"));
    s.write_all(&frame(0x80, b"lo")).unwrap();
    assert_eq!(read_frame(&mut s), Frame::text("Hello"));
}

#[test]
fn ping_between_fragments_is_answered_and_the_message_assembled() {
    let (srv, log) = serve_steps(vec![Step::Recv, accept(), Step::Echo], |_| {});
    let mut s = open(&srv);
    // A multi-byte character split across fragments, too.
    s.write_all(
        &[
            frame(0x01, b"Hel"),
            frame(0x89, b"p1"),
            frame(0x00, b"lo w\xc3"),
            frame(0x89, b"p2"),
            frame(0x80, b"\xb6rld"),
        ]
        .concat(),
    )
    .unwrap();
    assert_eq!(read_frame(&mut s), Frame::new(0x8A, b"p1"));
    assert_eq!(read_frame(&mut s), Frame::new(0x8A, b"p2"));
    assert_eq!(read_frame(&mut s), Frame::text("Hello wörld"));
    s.write_all(&client_close(1000, "")).unwrap();
    assert_eq!(read_frame(&mut s), Frame::close(1000, ""));
    assert_eq!(
        log.wait_end(),
        [
            CONNECT,
            ACCEPTED,
            &recv_text("Hello wörld"),
            &disc(1000, ""),
            END_OK
        ]
    );
}

#[test]
fn close_frames_go_out_while_the_app_is_busy() {
    for (name, bytes, want) in [
        (
            "protocol error",
            unmasked(0x81, b"x"),
            Frame::close(1002, "unmasked client frame"),
        ),
        (
            "client close",
            client_close(1000, ""),
            Frame::close(1000, ""),
        ),
    ] {
        let (srv, _log) = serve_steps(
            vec![
                Step::Recv,
                accept(),
                Step::Sleep(Duration::from_secs(3)),
                Step::Drain,
            ],
            |_| {},
        );
        let mut s = open(&srv);
        std::thread::sleep(Duration::from_millis(50));
        let t = Instant::now();
        s.write_all(&bytes).unwrap();
        assert_eq!(read_frame(&mut s), want, "{name}");
        assert!(
            t.elapsed() < Duration::from_secs(1),
            "{name}: the Close took {:?}",
            t.elapsed()
        );
    }
}

#[test]
fn frames_split_at_every_byte_are_reassembled() {
    let (srv, _log) = serve_steps(vec![Step::Recv, accept(), Step::Echo], |_| {});
    let mut s = open(&srv);
    let bytes = [frame(0x01, "κόσ".as_bytes()), frame(0x80, "με".as_bytes())].concat();
    for b in bytes {
        s.write_all(&[b]).unwrap();
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(read_frame(&mut s), Frame::text("κόσμε"));
}

// ---------------------------------------------------------------------------------------------
// 5. Refusals, the app's close, and the app's end
// ---------------------------------------------------------------------------------------------

#[test]
fn close_before_accept_is_403() {
    let (srv, log) = serve_steps(
        vec![Step::Recv, ws_close(4000, "ignored"), Step::Drain],
        |_| {},
    );
    let (mut s, head) = handshake(&srv, "/", "");
    let rest = read_all_until_eof(&mut s);
    assert!(rest.is_empty(), "{rest:?}");
    assert_eq!(
        norm(&head),
        "HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\nconnection: close\r\ndate: X\r\n\r\n"
    );
    assert_eq!(
        log.wait_end(),
        [
            CONNECT,
            "websocket.close ok",
            &disc(1006, "x-refused"),
            END_OK
        ]
    );
}

#[test]
fn denial_response_with_content_length() {
    let (srv, log) = serve_steps(
        vec![
            Step::Recv,
            Step::Send(SendEvent::WebsocketHttpResponseStart {
                status: 401,
                headers: Headers::new()
                    .with("x-a", "1")
                    .with("content-length", "99")
                    .with("connection", "keep-alive")
                    .with("www-authenticate", "Bearer"),
            }),
            deny_body("nope", false),
            // After the response: a no-op.
            ws_text("ignored"),
            Step::Drain,
        ],
        |_| {},
    );
    let (mut s, head) = handshake(&srv, "/", "");
    let body = read_all_until_eof(&mut s);
    assert_eq!(
        norm(&head),
        "HTTP/1.1 401 Unauthorized\r\nx-a: 1\r\nwww-authenticate: Bearer\r\ncontent-length: 4\r\n\
         connection: close\r\ndate: X\r\n\r\n"
    );
    assert_eq!(body, b"nope");
    assert_eq!(
        log.wait_end(),
        [
            CONNECT,
            "websocket.http.response.start ok",
            "websocket.http.response.body ok",
            "websocket.send ok",
            &disc(1006, "x-refused"),
            END_OK
        ]
    );
}

#[test]
fn denial_response_in_pieces_is_chunked() {
    let (srv, log) = serve_steps(
        vec![
            Step::Recv,
            Step::Send(SendEvent::WebsocketHttpResponseStart {
                status: 401,
                headers: Headers::new().with("x-a", "1"),
            }),
            deny_body("no", true),
            deny_body("", true),
            deny_body("pe", false),
            Step::Drain,
        ],
        |_| {},
    );
    let (mut s, head) = handshake(&srv, "/", "");
    let body = read_all_until_eof(&mut s);
    assert_eq!(
        norm(&head),
        "HTTP/1.1 401 Unauthorized\r\nx-a: 1\r\ntransfer-encoding: chunked\r\n\
         connection: close\r\ndate: X\r\n\r\n"
    );
    assert_eq!(
        String::from_utf8_lossy(&body),
        "2\r\nno\r\n2\r\npe\r\n0\r\n\r\n"
    );
    assert_eq!(
        log.wait_end(),
        [
            CONNECT,
            "websocket.http.response.start ok",
            "websocket.http.response.body ok",
            "websocket.http.response.body ok",
            "websocket.http.response.body ok",
            &disc(1006, "x-refused"),
            END_OK
        ]
    );
}

#[test]
fn denial_keeps_the_apps_server_and_date() {
    let log = Log::default();
    let srv = serve(
        recorder(
            vec![
                Step::Recv,
                Step::Send(SendEvent::WebsocketHttpResponseStart {
                    status: 200,
                    headers: Headers::new()
                        .with("server", "app")
                        .with("date", "yesterday"),
                }),
                deny_body("", false),
            ],
            log.clone(),
        ),
        |c| c.lifespan = LifespanMode::Off,
    );
    let (mut s, head) = handshake(&srv, "/", "");
    assert!(read_all_until_eof(&mut s).is_empty());
    assert_eq!(
        head,
        "HTTP/1.1 200 OK\r\nserver: app\r\ndate: yesterday\r\ncontent-length: 0\r\n\
         connection: close\r\n\r\n"
    );
}

#[test]
fn send_errors_before_the_accept() {
    let (srv, log) = serve_steps(
        vec![
            Step::Recv,
            ws_text("too early"),
            deny_body("x", false),
            Step::Send(SendEvent::start(200, Headers::new())),
            Step::Send(SendEvent::WebsocketHttpResponseStart {
                status: 101,
                headers: Headers::new(),
            }),
            Step::Send(SendEvent::WebsocketHttpResponseStart {
                status: 400,
                headers: Headers::new().with("bad name", "x"),
            }),
            accept_with(None, Headers::new().with("x-a", "a\r\nb")),
            Step::Send(SendEvent::WebsocketHttpResponseStart {
                status: 400,
                headers: Headers::new(),
            }),
            // During a denial.
            Step::Send(SendEvent::WebsocketHttpResponseStart {
                status: 401,
                headers: Headers::new(),
            }),
            accept(),
            ws_close(1000, ""),
            ws_text("no"),
            Step::Send(match SendEvent::file("/etc/hostname") {
                SendEvent::HttpResponseBody(b) => SendEvent::WebsocketHttpResponseBody(b),
                _ => unreachable!(),
            }),
            deny_body("bad", false),
        ],
        |_| {},
    );
    let (mut s, head) = handshake(&srv, "/", "");
    let body = read_all_until_eof(&mut s);
    assert_eq!(
        norm(&head),
        "HTTP/1.1 400 Bad Request\r\ncontent-length: 3\r\nconnection: close\r\ndate: X\r\n\r\n"
    );
    assert_eq!(body, b"bad");
    assert_eq!(
        log.wait_end(),
        [
            CONNECT,
            "websocket.send err out_of_order",
            "websocket.http.response.body err out_of_order",
            "http.response.start err unsupported",
            "websocket.http.response.start err invalid",
            "websocket.http.response.start err invalid",
            "websocket.accept err invalid",
            "websocket.http.response.start ok",
            "websocket.http.response.start err out_of_order",
            "websocket.accept err out_of_order",
            "websocket.close err out_of_order",
            "websocket.send err out_of_order",
            "websocket.http.response.body err unsupported",
            "websocket.http.response.body ok",
            END_OK
        ]
    );
}

#[test]
fn app_returning_without_answering_is_500() {
    for (steps, end) in [
        (vec![Step::Recv], END_OK.to_string()),
        (
            vec![Step::Recv, Step::Fail],
            "end err scripted failure".into(),
        ),
        (vec![], END_OK.into()),
    ] {
        let n = steps.len();
        let (srv, log) = serve_steps(steps, |_| {});
        let (mut s, head) = handshake(&srv, "/", "");
        let rest = read_all_until_eof(&mut s);
        assert_eq!(
            norm(&format!("{head}{}", String::from_utf8_lossy(&rest))),
            "HTTP/1.1 500 Internal Server Error\r\ncontent-type: text/plain; charset=utf-8\r\n\
             content-length: 22\r\nconnection: close\r\ndate: X\r\n\r\nInternal Server Error\n",
            "{end}"
        );
        let mut want: Vec<String> = vec![CONNECT.into(); n.min(1)];
        want.push(end);
        assert_eq!(log.wait_end(), want);
    }
}

#[test]
fn app_returning_during_a_denial_cuts_the_response() {
    // After the first body piece: the head and that piece, then the connection closes.
    let (srv, log) = serve_steps(
        vec![
            Step::Recv,
            Step::Send(SendEvent::WebsocketHttpResponseStart {
                status: 401,
                headers: Headers::new(),
            }),
            deny_body("par", true),
        ],
        |_| {},
    );
    let (mut s, head) = handshake(&srv, "/", "");
    assert_eq!(
        norm(&head),
        "HTTP/1.1 401 Unauthorized\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\
         date: X\r\n\r\n"
    );
    assert_eq!(read_all_until_eof(&mut s), b"3\r\npar\r\n");
    assert_eq!(
        log.wait_end(),
        [
            CONNECT,
            "websocket.http.response.start ok",
            "websocket.http.response.body ok",
            END_OK
        ]
    );
    // Before any body piece: the held head goes out with an empty body (the server's choice;
    // spec/websocket.md says "nothing at all").
    let (srv, log) = serve_steps(
        vec![
            Step::Recv,
            Step::Send(SendEvent::WebsocketHttpResponseStart {
                status: 401,
                headers: Headers::new().with("x-a", "1"),
            }),
        ],
        |_| {},
    );
    let (mut s, head) = handshake(&srv, "/", "");
    assert_eq!(
        norm(&head),
        "HTTP/1.1 401 Unauthorized\r\nx-a: 1\r\ncontent-length: 0\r\nconnection: close\r\n\
         date: X\r\n\r\n"
    );
    assert!(read_all_until_eof(&mut s).is_empty());
    assert_eq!(
        log.wait_end(),
        [CONNECT, "websocket.http.response.start ok", END_OK]
    );
}

#[test]
fn app_panicking_before_answering_is_500() {
    let (srv, _log) = serve_steps(vec![Step::Recv, Step::Panic], |_| {});
    let (mut s, head) = handshake(&srv, "/", "");
    assert!(read_all_until_eof(&mut s).ends_with(b"Internal Server Error\n"));
    assert!(head.starts_with("HTTP/1.1 500 "), "{head}");
}

#[test]
fn app_close_after_accept_sends_its_code_and_reason() {
    let (srv, log) = serve_steps(
        vec![
            Step::Recv,
            accept(),
            ws_close(4000, "done"),
            // While closing: no-ops.
            ws_text("late"),
            ws_close(4001, "again"),
            Step::Send(SendEvent::WebsocketHttpResponseStart {
                status: 500,
                headers: Headers::new(),
            }),
            Step::Drain,
        ],
        |_| {},
    );
    let mut s = open(&srv);
    assert_eq!(read_frame(&mut s), Frame::close(4000, "done"));
    // Data after the app's close is dropped; the client's Close ends it (not echoed).
    s.write_all(&[text("dropped"), client_close(4000, "ack")].concat())
        .unwrap();
    expect_eof(&mut s);
    assert_eq!(
        log.wait_end(),
        [
            CONNECT,
            ACCEPTED,
            "websocket.close ok",
            "websocket.send ok",
            "websocket.close ok",
            "websocket.http.response.start ok",
            &disc(4000, "ack"),
            END_OK
        ]
    );
}

#[test]
fn app_close_reason_is_cut_at_123_bytes_on_a_char_boundary() {
    let reason = "é".repeat(70); // 140 bytes
    let (srv, _log) = serve_steps(
        vec![Step::Recv, accept(), ws_close(1000, &reason), Step::Drain],
        |_| {},
    );
    let mut s = open(&srv);
    let f = read_frame(&mut s);
    assert_eq!(f, Frame::close(1000, &"é".repeat(61)));
    assert_eq!(f.payload.len(), 124);
}

#[test]
fn app_close_unanswered_times_out_with_1006_client_timeout() {
    let (srv, log) = serve_steps(
        vec![Step::Recv, accept(), ws_close(1000, ""), Step::Drain],
        |c| c.ws.close_timeout = Duration::from_millis(300),
    );
    let mut s = open(&srv);
    let t = Instant::now();
    assert_eq!(read_frame(&mut s), Frame::close(1000, ""));
    expect_eof(&mut s);
    let took = t.elapsed();
    assert!(
        took >= Duration::from_millis(250) && took < Duration::from_secs(2),
        "{took:?}"
    );
    assert_eq!(
        log.wait_end(),
        [
            CONNECT,
            ACCEPTED,
            "websocket.close ok",
            &disc(1006, "client_timeout"),
            END_OK
        ]
    );
}

#[test]
fn app_close_with_an_unsendable_code_is_invalid() {
    let mut steps = vec![Step::Recv, accept()];
    for code in [1005, 1006, 1004, 1015, 999, 2000, 2999, 5000] {
        steps.push(ws_close(code, ""));
    }
    let (srv, log) = serve_steps(steps, |_| {});
    let mut s = open(&srv);
    // Nothing was sent for them; the app's return closes with 1000.
    assert_eq!(read_frame(&mut s), Frame::close(1000, ""));
    s.write_all(&client_close(1000, "")).unwrap();
    expect_eof(&mut s);
    let mut want = vec![CONNECT.to_string(), ACCEPTED.into()];
    want.extend(std::iter::repeat_n(
        "websocket.close err invalid".to_string(),
        8,
    ));
    want.push(END_OK.into());
    assert_eq!(log.wait_end(), want);
}

#[test]
fn app_returning_after_accept_closes_1000() {
    let (srv, log) = serve_steps(vec![Step::Recv, accept(), ws_text("hi")], |_| {});
    let mut s = open(&srv);
    assert_eq!(read_frame(&mut s), Frame::text("hi"));
    assert_eq!(read_frame(&mut s), Frame::new(0x88, [0x03, 0xe8]));
    s.write_all(&client_close(1000, "")).unwrap();
    expect_eof(&mut s);
    assert_eq!(
        log.wait_end(),
        [CONNECT, ACCEPTED, "websocket.send ok", END_OK]
    );
}

#[test]
fn app_failing_after_accept_closes_1011() {
    for last in [Step::Fail, Step::Panic] {
        let (srv, _log) = serve_steps(vec![Step::Recv, accept(), last], |_| {});
        let mut s = open(&srv);
        assert_eq!(read_frame(&mut s), Frame::new(0x88, [0x03, 0xf3]));
        s.write_all(&client_close(1011, "")).unwrap();
        expect_eof(&mut s);
    }
}

#[test]
fn send_after_disconnect_is_a_no_op() {
    let (srv, log) = serve_steps(
        vec![
            Step::Recv,
            accept(),
            Step::Drain,
            ws_text("after"),
            ws_close(4000, ""),
            Step::Recv,
        ],
        |_| {},
    );
    let mut s = open(&srv);
    s.write_all(&client_close(1000, "")).unwrap();
    assert_eq!(read_frame(&mut s), Frame::close(1000, ""));
    expect_eof(&mut s);
    assert_eq!(
        log.wait_end(),
        [
            CONNECT,
            ACCEPTED,
            &disc(1000, ""),
            "websocket.send ok",
            "websocket.close ok",
            &disc(1000, ""),
            END_OK
        ]
    );
}

// ---------------------------------------------------------------------------------------------
// 6. Keepalive
// ---------------------------------------------------------------------------------------------

/// Reads frames until the server drops the connection; returns them and the time it took.
fn frames_until_drop(s: &mut TcpStream) -> (Vec<Frame>, Duration) {
    let t = Instant::now();
    let mut frames = Vec::new();
    while let Some(f) = next_frame(s) {
        frames.push(f);
        assert!(t.elapsed() < WAIT, "never dropped: {frames:?}");
    }
    (frames, t.elapsed())
}

fn assert_pings_then_drop(frames: &[Frame], took: Duration) {
    assert!(!frames.is_empty(), "no ping");
    for (i, f) in frames.iter().enumerate() {
        // Pings only (no Close: the connection is dropped), numbered from 1.
        assert_eq!(
            *f,
            Frame::new(0x89, (i as u32 + 1).to_be_bytes()),
            "{frames:?}"
        );
    }
    assert!(
        took >= Duration::from_millis(250) && took < Duration::from_millis(1500),
        "dropped after {took:?}"
    );
}

#[test]
fn server_pings_a_silent_client_then_drops_it() {
    let (srv, log) = serve_steps(vec![Step::Recv, accept(), Step::Drain], |c| {
        c.ws.ping_interval = Duration::from_millis(100);
        c.ws.ping_timeout = Duration::from_millis(200);
    });
    let mut s = open(&srv);
    let (frames, took) = frames_until_drop(&mut s);
    assert_pings_then_drop(&frames, took);
    assert_eq!(
        log.wait_end(),
        [CONNECT, ACCEPTED, &disc(1006, "keepalive_timeout"), END_OK]
    );
}

#[test]
fn any_pong_keeps_a_raw_client_alive() {
    let (srv, _log) = serve_steps(vec![Step::Recv, accept(), Step::Echo], |c| {
        c.ws.ping_interval = Duration::from_millis(100);
        c.ws.ping_timeout = Duration::from_millis(200);
    });
    let mut s = open(&srv);
    let t = Instant::now();
    let mut pings = 0;
    while t.elapsed() < Duration::from_millis(1000) {
        let f = read_frame(&mut s);
        assert_eq!(f.opcode(), 0x9, "{f:?}");
        pings += 1;
        // Any payload counts.
        s.write_all(&frame(0x8A, b"whatever")).unwrap();
    }
    assert!(pings >= 5, "{pings}");
    s.write_all(&text("still here")).unwrap();
    loop {
        let f = read_frame(&mut s);
        if f.opcode() != 0x9 {
            assert_eq!(f, Frame::text("still here"));
            break;
        }
    }
}

#[tokio::test]
async fn tungstenite_answering_pings_stays_connected() {
    let srv = serve(pagi_server::demo::app, |c| {
        cfg(c);
        c.ws.ping_interval = Duration::from_millis(100);
        c.ws.ping_timeout = Duration::from_millis(200);
    });
    let url = format!("ws://{}/", srv.addr());
    tokio::time::timeout(WAIT, async {
        let (mut ws, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
        let start = tokio::time::Instant::now();
        let mut pings = 0;
        // Reading makes tungstenite answer every ping.
        while start.elapsed() < Duration::from_millis(1200) {
            match tokio::time::timeout(Duration::from_millis(50), ws.next()).await {
                Err(_) => {}
                Ok(Some(Ok(tungstenite::Message::Ping(_)))) => pings += 1,
                Ok(other) => panic!("unexpected {other:?}"),
            }
        }
        assert!(pings >= 5, "{pings} pings");
        ws.send(tungstenite::Message::text("alive")).await.unwrap();
        loop {
            match ws.next().await.unwrap().unwrap() {
                tungstenite::Message::Ping(_) => {}
                m => {
                    assert_eq!(m, tungstenite::Message::text("alive"));
                    break;
                }
            }
        }
        ws.close(None).await.unwrap();
    })
    .await
    .expect("in time");
}

#[test]
fn app_keepalive_event_starts_pings() {
    let (srv, log) = serve_steps(
        vec![
            Step::Recv,
            accept(),
            Step::Send(SendEvent::WebsocketKeepalive {
                interval: Duration::from_millis(100),
                timeout: Some(Duration::from_millis(200)),
            }),
            Step::Drain,
        ],
        |_| {},
    );
    let mut s = open(&srv);
    let (frames, took) = frames_until_drop(&mut s);
    assert_pings_then_drop(&frames, took);
    assert_eq!(
        log.wait_end(),
        [
            CONNECT,
            ACCEPTED,
            "websocket.keepalive ok",
            &disc(1006, "keepalive_timeout"),
            END_OK
        ]
    );
}

#[test]
fn app_keepalive_before_accept_applies_after_it() {
    let (srv, log) = serve_steps(
        vec![
            Step::Recv,
            Step::Send(SendEvent::WebsocketKeepalive {
                interval: Duration::from_millis(100),
                timeout: Some(Duration::from_millis(200)),
            }),
            accept(),
            Step::Drain,
        ],
        |_| {},
    );
    let mut s = open(&srv);
    let (frames, took) = frames_until_drop(&mut s);
    assert_pings_then_drop(&frames, took);
    assert_eq!(
        log.wait_end(),
        [
            CONNECT,
            "websocket.keepalive ok",
            ACCEPTED,
            &disc(1006, "keepalive_timeout"),
            END_OK
        ]
    );
}

#[test]
fn ping_timeout_zero_waits_forever() {
    let (srv, log) = serve_steps(vec![Step::Recv, accept(), Step::Echo], |c| {
        c.ws.ping_interval = Duration::from_millis(50);
        c.ws.ping_timeout = Duration::ZERO;
    });
    let mut s = open(&srv);
    let t = Instant::now();
    let mut pings = Vec::new();
    while t.elapsed() < Duration::from_millis(600) {
        pings.push(read_frame(&mut s));
    }
    // Never answered, never dropped; numbered pings.
    for (i, f) in pings.iter().enumerate() {
        assert_eq!(*f, Frame::new(0x89, (i as u32 + 1).to_be_bytes()));
    }
    assert!(pings.len() >= 4, "{}", pings.len());
    s.write_all(&text("alive")).unwrap();
    loop {
        let f = read_frame(&mut s);
        if f.opcode() != 0x9 {
            assert_eq!(f, Frame::text("alive"));
            break;
        }
    }
    assert_eq!(log.get()[2], recv_text("alive"));
}

#[test]
fn app_keepalive_interval_zero_stops_server_pings() {
    let (srv, _log) = serve_steps(
        vec![
            Step::Recv,
            accept(),
            Step::Send(SendEvent::WebsocketKeepalive {
                interval: Duration::ZERO,
                timeout: None,
            }),
            Step::Echo,
        ],
        |c| {
            c.ws.ping_interval = Duration::from_millis(50);
            c.ws.ping_timeout = Duration::from_millis(100);
        },
    );
    let mut s = open(&srv);
    std::thread::sleep(Duration::from_millis(500));
    s.write_all(&text("quiet")).unwrap();
    // The app's keepalive went out right after the accept, so no ping came (or, in a race,
    // at most the first); the connection is alive.
    let mut f = read_frame(&mut s);
    if f == Frame::new(0x89, 1u32.to_be_bytes()) {
        f = read_frame(&mut s);
    }
    assert_eq!(f, Frame::text("quiet"));
}

#[test]
fn server_pings_go_out_on_time() {
    let (srv, _log) = serve_steps(vec![Step::Recv, accept(), Step::Drain], |c| {
        c.ws.ping_interval = Duration::from_millis(300);
        c.ws.ping_timeout = Duration::ZERO; // wait forever
    });
    let mut s = open(&srv);
    let t = Instant::now();
    assert_eq!(read_frame(&mut s), Frame::new(0x89, 1u32.to_be_bytes()));
    let took = t.elapsed();
    assert!(
        took >= Duration::from_millis(250) && took < Duration::from_millis(500),
        "first ping after {took:?}"
    );
}

#[tokio::test]
async fn responsive_client_survives_a_ping_timeout_equal_to_the_interval() {
    let srv = serve(pagi_server::demo::app, |c| {
        cfg(c);
        c.ws.ping_interval = Duration::from_millis(100);
        c.ws.ping_timeout = Duration::from_millis(100);
    });
    let url = format!("ws://{}/", srv.addr());
    tokio::time::timeout(WAIT, async {
        let (mut ws, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
        let start = tokio::time::Instant::now();
        while start.elapsed() < Duration::from_millis(1000) {
            match tokio::time::timeout(Duration::from_millis(20), ws.next()).await {
                Err(_) | Ok(Some(Ok(tungstenite::Message::Ping(_)))) => {}
                Ok(other) => panic!("dropped after {:?}: {other:?}", start.elapsed()),
            }
        }
        ws.send(tungstenite::Message::text("alive")).await.unwrap();
        loop {
            match ws.next().await.unwrap().unwrap() {
                tungstenite::Message::Ping(_) => {}
                m => {
                    assert_eq!(m, tungstenite::Message::text("alive"));
                    break;
                }
            }
        }
    })
    .await
    .expect("in time");
}

// ---------------------------------------------------------------------------------------------
// 7. Graceful shutdown
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn graceful_shutdown_closes_with_1001() {
    let log = Log::default();
    let srv = serve(
        recorder(vec![Step::Recv, accept(), Step::Echo], log.clone()),
        cfg,
    );
    let url = format!("ws://{}/", srv.addr());
    let srv = tokio::time::timeout(WAIT, async move {
        let (mut ws, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
        ws.send(tungstenite::Message::text("before")).await.unwrap();
        assert_eq!(
            ws.next().await.unwrap().unwrap(),
            tungstenite::Message::text("before")
        );
        srv.handle().shutdown();
        match ws.next().await.unwrap().unwrap() {
            tungstenite::Message::Close(Some(f)) => {
                assert_eq!(f.code, CloseCode::Away);
                assert_eq!(f.reason.as_str(), "server shutting down");
            }
            other => panic!("expected Close 1001, got {other:?}"),
        }
        // tungstenite answered the Close; the stream then ends.
        if let Some(Ok(m)) = ws.next().await {
            panic!("after the close: {m:?}");
        }
        srv
    })
    .await
    .expect("in time");
    let t = Instant::now();
    tokio::task::spawn_blocking(move || srv.stop())
        .await
        .unwrap()
        .unwrap();
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    assert_eq!(
        log.wait_end(),
        [
            CONNECT,
            ACCEPTED,
            &recv_text("before"),
            &disc(1001, "server_shutdown"),
            END_OK
        ]
    );
}

/// Opens a WebSocket to an echo app, stops the server in a thread, reads the 1001 Close, checks
/// the server waits, answers the Close and closes the socket; returns how long the server then
/// took to stop.
fn shutdown_then_answer() -> Duration {
    let (srv, log) = serve_steps(
        vec![Step::Recv, accept(), Step::Echo, ws_text("no-op")],
        |c| {
            c.shutdown_timeout = Duration::from_secs(10);
        },
    );
    let mut s = open(&srv);
    assert_eq!(log.wait_len(2), [CONNECT, ACCEPTED]);
    let stop = std::thread::spawn(move || srv.stop());
    assert_eq!(
        read_frame(&mut s),
        Frame::close(1001, "server shutting down")
    );
    assert_eq!(
        log.wait_end(),
        [
            CONNECT,
            ACCEPTED,
            &disc(1001, "server_shutdown"),
            "websocket.send ok",
            END_OK
        ]
    );
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        !stop.is_finished(),
        "the server waits for the client's Close"
    );
    let t = Instant::now();
    s.write_all(&client_close(1001, "")).unwrap();
    expect_eof(&mut s);
    drop(s);
    while !stop.is_finished() {
        assert!(
            t.elapsed() < Duration::from_secs(8),
            "the server did not stop"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    stop.join().unwrap().unwrap();
    t.elapsed()
}

#[test]
fn graceful_shutdown_waits_for_the_clients_close() {
    // Well before the 10 s shutdown timeout (at most the 2 s drain; see the ignored test below).
    let took = shutdown_then_answer();
    assert!(took < Duration::from_secs(3), "{took:?}");
}

#[test]
fn graceful_shutdown_ends_as_soon_as_the_client_has_closed() {
    let took = shutdown_then_answer();
    assert!(took < Duration::from_millis(500), "{took:?}");
}

#[test]
fn connection_is_released_once_the_client_has_closed() {
    for who in ["client", "app"] {
        let steps = if who == "client" {
            vec![Step::Recv, accept(), Step::Drain]
        } else {
            vec![Step::Recv, accept()]
        };
        let (srv, _log) = serve_steps(steps, |c| c.max_connections = 1);
        let mut s = open(&srv);
        if who == "client" {
            s.write_all(&client_close(1000, "")).unwrap();
            assert_eq!(read_frame(&mut s), Frame::close(1000, ""));
        } else {
            assert_eq!(read_frame(&mut s), Frame::close(1000, ""));
            s.write_all(&client_close(1000, "")).unwrap();
        }
        expect_eof(&mut s);
        drop(s);
        std::thread::sleep(Duration::from_millis(200));
        // The only connection slot is free again.
        let (_s2, head) = handshake(&srv, "/", "");
        assert_eq!(head, plain_101(), "{who} closed first");
    }
}

// ---------------------------------------------------------------------------------------------
// 8. Backpressure
// ---------------------------------------------------------------------------------------------

#[test]
fn send_waits_while_the_client_does_not_read() {
    const N: usize = 40;
    const SIZE: usize = 1 << 20;
    let done = Arc::new(AtomicUsize::new(0));
    let (srv, log) = serve_steps(
        vec![
            Step::Recv,
            accept(),
            Step::Flood {
                n: N,
                size: SIZE,
                done: done.clone(),
            },
        ],
        |_| {},
    );
    let mut s = open(&srv);
    // The client reads nothing: the sends stall after the socket buffers fill up.
    let mut last = usize::MAX;
    let t = Instant::now();
    loop {
        std::thread::sleep(Duration::from_millis(200));
        let now = done.load(Ordering::SeqCst);
        if now == last {
            break;
        }
        last = now;
        assert!(t.elapsed() < WAIT, "sends never stalled: {now}");
    }
    eprintln!("sends stalled after {last} messages of 1 MiB");
    assert!(
        last < 20,
        "{last} sends of 1 MiB completed without a reader"
    );
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(done.load(Ordering::SeqCst), last, "still stalled");
    // Now read everything: the sends resume, all messages arrive intact, then Close 1000.
    for k in 0..N {
        let f = read_frame(&mut s);
        assert_eq!((f.b0, f.payload.len()), (0x82, SIZE), "message {k}");
        assert!(
            f.payload
                .iter()
                .enumerate()
                .all(|(i, &b)| b == ((k + i) % 251) as u8),
            "message {k} content"
        );
    }
    assert_eq!(read_frame(&mut s), Frame::close(1000, ""));
    assert_eq!(done.load(Ordering::SeqCst), N);
    s.write_all(&client_close(1000, "")).unwrap();
    expect_eof(&mut s);
    assert_eq!(log.wait_end(), [CONNECT, ACCEPTED, END_OK]);
}

#[test]
fn client_that_stops_reading_is_dropped_after_timeout_io() {
    let done = Arc::new(AtomicUsize::new(0));
    let (srv, log) = serve_steps(
        vec![
            Step::Recv,
            accept(),
            Step::Flood {
                n: 20,
                size: 1 << 20,
                done: done.clone(),
            },
            Step::Drain,
        ],
        |c| c.timeout_io = Duration::from_millis(300),
    );
    let _s = open(&srv);
    // The client never reads: once the socket buffers are full nothing moves for 300 ms.
    assert_eq!(
        log.wait_end(),
        [CONNECT, ACCEPTED, &disc(1006, "write_timeout"), END_OK]
    );
    // The sends after the drop were no-ops.
    assert_eq!(done.load(Ordering::SeqCst), 20);
}

#[test]
fn ping_flood_from_a_client_that_does_not_read_is_throttled() {
    let (srv, log) = serve_steps(vec![Step::Recv, accept(), Step::Drain], |_| {});
    let mut s = open(&srv);
    let ping = frame(0x89, &[0x5A; 125]);
    let batch = ping.repeat(512);
    s.set_nonblocking(true).unwrap();
    let mut written = 0usize;
    let mut blocked_since: Option<Instant> = None;
    let mut off = 0;
    // Write until the server has stopped reading for 300 ms; more than 256 MB means it never
    // stops, and its pong queue grows without bound.
    loop {
        assert!(written < 256 << 20, "the server kept reading");
        match s.write(&batch[off..]) {
            Ok(n) => {
                written += n;
                off = (off + n) % batch.len();
                blocked_since = None;
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                let since = *blocked_since.get_or_insert_with(Instant::now);
                if since.elapsed() > Duration::from_millis(300) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => panic!("{e}"),
        }
    }
    eprintln!("the server stopped reading after {written} bytes of pings");
    // Now the client reads: finish the ping cut in the middle and send a message (its delivery
    // to the app wakes the writer for the last pongs; see lone_pings_are_answered_...).
    s.set_nonblocking(false).unwrap();
    let rest = (ping.len() - written % ping.len()) % ping.len();
    let pings = (written + rest) / ping.len();
    let mut w = s.try_clone().unwrap();
    let tail = [&batch[off..off + rest], &text("end")[..]].concat();
    let writer = std::thread::spawn(move || w.write_all(&tail).unwrap());
    for i in 0..pings {
        s.set_read_timeout(Some(WAIT)).unwrap();
        let mut b = [0u8; 1];
        assert!(s.peek(&mut b).is_ok(), "pong {i} of {pings} never came");
        let f = read_frame(&mut s);
        assert_eq!(f, Frame::new(0x8A, [0x5A; 125]), "pong {i} of {pings}");
    }
    writer.join().unwrap();
    assert_eq!(log.wait_len(3)[2], recv_text("end"));
}

// ---------------------------------------------------------------------------------------------
// 9. A real client against the demo app
// ---------------------------------------------------------------------------------------------

async fn demo_client(
    srv: &TestServer,
) -> tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>> {
    let url = format!("ws://{}/echo", srv.addr());
    let (ws, resp) = tokio_tungstenite::connect_async(&url).await.unwrap();
    assert_eq!(resp.status(), 101);
    ws
}

#[tokio::test]
async fn tungstenite_echo_round_trips() {
    let srv = serve(pagi_server::demo::app, cfg);
    tokio::time::timeout(Duration::from_secs(20), async {
        let mut ws = demo_client(&srv).await;
        let big: Vec<u8> = (0..1 << 20).map(|i| (i * 7 % 256) as u8).collect();
        let limit: Vec<u8> = (0..16 << 20).map(|i| (i % 253) as u8).collect();
        let messages = [
            tungstenite::Message::text("hello"),
            tungstenite::Message::text("héllo wörld ✓ 😀"),
            tungstenite::Message::binary(vec![0u8, 1, 2, 255]),
            tungstenite::Message::text(""),
            tungstenite::Message::binary(Vec::new()),
            tungstenite::Message::binary(big),
            tungstenite::Message::text("x".repeat(1 << 20)),
            // Exactly the default limit (16 MiB).
            tungstenite::Message::binary(limit),
        ];
        for m in messages {
            ws.send(m.clone()).await.unwrap();
            let got = ws.next().await.unwrap().unwrap();
            assert!(got == m, "echo of a {}-byte message differs", m.len());
        }
        ws.close(Some(tungstenite::protocol::CloseFrame {
            code: CloseCode::Normal,
            reason: "done".into(),
        }))
        .await
        .unwrap();
        // The code is echoed, without the reason.
        match ws.next().await {
            Some(Ok(tungstenite::Message::Close(Some(f)))) => {
                assert_eq!((f.code, f.reason.as_str()), (CloseCode::Normal, ""))
            }
            other => panic!("{other:?}"),
        }
    })
    .await
    .expect("in time");
}

#[tokio::test]
async fn tungstenite_message_over_the_default_limit_is_1009() {
    let srv = serve(pagi_server::demo::app, cfg);
    tokio::time::timeout(Duration::from_secs(20), async {
        let mut ws = demo_client(&srv).await;
        let _ = ws
            .send(tungstenite::Message::binary(vec![0u8; (16 << 20) + 1]))
            .await;
        match ws.next().await {
            Some(Ok(tungstenite::Message::Close(Some(f)))) => {
                assert_eq!(f.code, CloseCode::Size);
                assert_eq!(f.reason.as_str(), "message too big");
            }
            other => panic!("{other:?}"),
        }
    })
    .await
    .expect("in time");
}

async fn pipeline(n: usize) {
    let srv = serve(pagi_server::demo::app, cfg);
    tokio::time::timeout(WAIT, async {
        let mut ws = demo_client(&srv).await;
        let msg = |i: usize| {
            if i % 2 == 0 {
                tungstenite::Message::text(format!("message {i}"))
            } else {
                tungstenite::Message::binary(format!("binary {i}").into_bytes())
            }
        };
        for i in 0..n {
            ws.feed(msg(i)).await.unwrap();
        }
        ws.flush().await.unwrap();
        for i in 0..n {
            assert_eq!(ws.next().await.unwrap().unwrap(), msg(i), "message {i}");
        }
        ws.close(None).await.unwrap();
    })
    .await
    .expect("in time");
}

#[tokio::test]
async fn tungstenite_pipelined_messages_under_max_queue_arrive_in_order() {
    pipeline(30).await;
}

#[tokio::test]
async fn tungstenite_pipelined_messages_arrive_in_order() {
    pipeline(100).await;
}

#[tokio::test]
async fn demo_accepts_the_first_offered_subprotocol() {
    use tungstenite::client::IntoClientRequest;
    let srv = serve(pagi_server::demo::app, cfg);
    let mut req = format!("ws://{}/", srv.addr())
        .into_client_request()
        .unwrap();
    req.headers_mut().insert(
        "sec-websocket-protocol",
        "chat.v2, chat.v1".parse().unwrap(),
    );
    let (mut ws, resp) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(req))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(resp.headers()["sec-websocket-protocol"], "chat.v2");
    ws.close(None).await.unwrap();
}

// ---------------------------------------------------------------------------------------------
// 10. permessage-deflate
// ---------------------------------------------------------------------------------------------

#[test]
fn pmd_negotiation_answers() {
    let (srv, _log) = serve_steps(vec![Step::Recv, accept()], |_| {});
    let cases: [(&str, Option<&str>); 10] = [
        (
            "permessage-deflate; client_max_window_bits",
            Some("permessage-deflate"),
        ),
        ("permessage-deflate", Some("permessage-deflate")),
        (
            "permessage-deflate; server_no_context_takeover",
            Some("permessage-deflate; server_no_context_takeover"),
        ),
        (
            "permessage-deflate; client_no_context_takeover; server_max_window_bits=10; client_max_window_bits=12",
            Some("permessage-deflate; client_no_context_takeover; server_max_window_bits=10; client_max_window_bits=12"),
        ),
        (
            "permessage-deflate; server_max_window_bits=\"11\"",
            Some("permessage-deflate; server_max_window_bits=11"),
        ),
        (
            "permessage-deflate; server_max_window_bits=8, permessage-deflate",
            Some("permessage-deflate"),
        ),
        (
            "x-webkit-deflate-frame, permessage-deflate; unknown_param",
            None,
        ),
        ("permessage-deflate; server_max_window_bits=16", None),
        (
            "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
            None,
        ),
        ("foo, bar; baz=1", None),
    ];
    for (offer, want) in cases {
        let (mut s, head) = handshake(&srv, "/", &format!("Sec-WebSocket-Extensions: {offer}\r\n"));
        let want_head = match want {
            Some(v) => format!(
                "HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\n\
                 sec-websocket-accept: {SAMPLE_ACCEPT}\r\nsec-websocket-extensions: {v}\r\n\r\n"
            ),
            None => plain_101(),
        };
        assert_eq!(head, want_head, "{offer}");
        assert_eq!(read_frame(&mut s), Frame::close(1000, ""));
    }
}

#[test]
fn pmd_offers_in_several_fields() {
    let (srv, _log) = serve_steps(vec![Step::Recv, accept()], |_| {});
    let (_s, head) = handshake(
        &srv,
        "/",
        "Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=8\r\n\
         Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover\r\n",
    );
    assert!(
        head.contains(
            "\r\nsec-websocket-extensions: permessage-deflate; server_no_context_takeover\r\n"
        ),
        "{head}"
    );
}

const PMD: &str = "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n";

fn pmd_echo_server() -> (TestServer, Log) {
    serve_steps(vec![Step::Recv, accept(), Step::Echo], |_| {})
}

fn open_pmd(srv: &TestServer, offer: &str) -> TcpStream {
    let (s, head) = handshake(srv, "/", offer);
    assert!(
        head.contains("\r\nsec-websocket-extensions: permessage-deflate"),
        "{head}"
    );
    s
}

#[test]
fn pmd_rfc7692_examples_are_received() {
    let (srv, log) = pmd_echo_server();
    let mut s = open_pmd(&srv, PMD);
    // §7.2.3.1: "Hello" compressed, in one frame ...
    s.write_all(&frame(0xC1, &[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]))
        .unwrap();
    // Echoed uncompressed: shorter than 16 bytes.
    assert_eq!(read_frame(&mut s), Frame::text("Hello"));
    // ... and in two fragments.
    s.write_all(
        &[
            frame(0x41, &[0xf2, 0x48, 0xcd]),
            frame(0x80, &[0xc9, 0xc9, 0x07, 0x00]),
        ]
        .concat(),
    )
    .unwrap();
    assert_eq!(read_frame(&mut s), Frame::text("Hello"));
    // §7.2.3.2: with the sliding window shared across messages (after a "Hello" compressed the
    // same way).
    s.write_all(&frame(0xC1, &[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]))
        .unwrap();
    assert_eq!(read_frame(&mut s), Frame::text("Hello"));
    s.write_all(&frame(0xC1, &[0xf2, 0x00, 0x11, 0x00, 0x00]))
        .unwrap();
    assert_eq!(read_frame(&mut s), Frame::text("Hello"));
    // §7.2.3.3: a stored ("no compression") block.
    s.write_all(&frame(
        0xC1,
        &[
            0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00,
        ],
    ))
    .unwrap();
    assert_eq!(read_frame(&mut s), Frame::text("Hello"));
    // §7.2.3.4: a block with BFINAL set.
    s.write_all(&frame(
        0xC1,
        &[0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00],
    ))
    .unwrap();
    assert_eq!(read_frame(&mut s), Frame::text("Hello"));
    // Uncompressed messages are still fine.
    s.write_all(&text("plain")).unwrap();
    assert_eq!(read_frame(&mut s), Frame::text("plain"));
    s.write_all(&client_close(1000, "")).unwrap();
    assert_eq!(read_frame(&mut s), Frame::close(1000, ""));
    let hello = recv_text("Hello");
    assert_eq!(
        log.wait_end(),
        [
            CONNECT,
            ACCEPTED,
            &hello,
            &hello,
            &hello,
            &hello,
            &hello,
            &hello,
            &recv_text("plain"),
            &disc(1000, ""),
            END_OK
        ]
    );
}

#[test]
fn pmd_server_compresses_with_context_takeover() {
    let (srv, _log) = pmd_echo_server();
    let mut s = open_pmd(&srv, PMD);
    let msg: String = (0..1000).map(|i| (b'a' + (i % 7) as u8) as char).collect();
    let mut z = Decompress::new(false);
    let mut sizes = Vec::new();
    for _ in 0..3 {
        s.write_all(&text(&msg)).unwrap();
        let f = read_frame(&mut s);
        assert_eq!(f.b0, 0xC1, "compressed text, one frame");
        assert!(f.payload.len() < 200, "{}", f.payload.len());
        assert!(!f.payload.ends_with(&TAIL), "the tail is stripped");
        assert_eq!(inflate(&mut z, &f.payload), msg.as_bytes());
        sizes.push(f.payload.len());
    }
    assert!(sizes[1] < sizes[0], "the second refers back: {sizes:?}");
    // Binary too; a short message goes uncompressed.
    s.write_all(&frame(0x82, &[0u8; 500])).unwrap();
    let f = read_frame(&mut s);
    assert_eq!(f.b0, 0xC2);
    assert_eq!(inflate(&mut z, &f.payload), [0u8; 500]);
    s.write_all(&text("fifteen bytes!!")).unwrap();
    assert_eq!(read_frame(&mut s), Frame::text("fifteen bytes!!"));
    s.write_all(&text("sixteen bytes!!!")).unwrap();
    let f = read_frame(&mut s);
    assert_eq!(f.b0, 0xC1);
    assert_eq!(inflate(&mut z, &f.payload), b"sixteen bytes!!!");
}

#[test]
fn pmd_server_no_context_takeover_is_honoured() {
    let (srv, _log) = pmd_echo_server();
    let mut s = open_pmd(
        &srv,
        "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover\r\n",
    );
    let msg = "the same compressible message ".repeat(40);
    for _ in 0..3 {
        s.write_all(&text(&msg)).unwrap();
        let f = read_frame(&mut s);
        assert_eq!(f.b0, 0xC1);
        // Each message inflates on its own.
        assert_eq!(
            inflate(&mut Decompress::new(false), &f.payload),
            msg.as_bytes()
        );
    }
}

#[test]
fn pmd_server_max_window_bits_is_honoured() {
    let (srv, _log) = pmd_echo_server();
    let mut s = open_pmd(
        &srv,
        "Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=9\r\n",
    );
    // Repeats 600 bytes apart: further than a 512-byte window reaches.
    let block: Vec<u8> = (0..600u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 24) as u8)
        .collect();
    let msg = block.repeat(4);
    s.write_all(&frame(0x82, &msg)).unwrap();
    let f = read_frame(&mut s);
    assert_eq!(f.b0, 0xC2);
    let mut z = Decompress::new_with_window_bits(false, 9);
    assert_eq!(inflate(&mut z, &f.payload), msg);
}

#[test]
fn pmd_disabled_by_config() {
    let (srv, _log) = serve_steps(vec![Step::Recv, accept(), Step::Drain], |c| {
        c.ws.per_message_deflate = false
    });
    let (_s, head) = handshake(&srv, "/", PMD);
    assert_eq!(head, plain_101());
    expect_failure(
        "compressed frame with permessage-deflate off",
        |c| c.ws.per_message_deflate = false,
        PMD,
        &frame(0xC1, &[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]),
        1002,
        "RSV1 set without permessage-deflate",
        "protocol_error",
    );
}

#[test]
fn pmd_protocol_errors() {
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        (
            "RSV1 on a continuation",
            [
                frame(0x41, &[0xf2, 0x48, 0xcd]),
                frame(0xC0, &[0xc9, 0xc9, 0x07, 0x00]),
            ]
            .concat(),
            1002,
            "RSV1 set on a continuation frame",
        ),
        (
            "RSV1 on a ping",
            frame(0xC9, b""),
            1002,
            "RSV1 set on a control frame",
        ),
        (
            "data that does not inflate",
            frame(0xC1, &[0xff; 16]),
            1007,
            "invalid compressed data",
        ),
        (
            "compressed invalid UTF-8",
            frame(0xC1, &deflate(b"ok \xff\xfe")),
            1007,
            "invalid UTF-8",
        ),
    ];
    for (name, bytes, code, reason) in cases {
        expect_failure(name, |_| {}, PMD, &bytes, code, reason, "protocol_error");
    }
}

#[test]
fn pmd_zip_bomb_is_1009() {
    let bomb = deflate(&vec![0u8; 10_000_000]);
    assert!(bomb.len() < 20_000, "{}", bomb.len());
    expect_failure(
        "10 MB of zeros in one compressed message",
        |c| c.ws.max_message_size = 1 << 20,
        PMD,
        &frame(0xC2, &bomb),
        1009,
        "message too big",
        "body_too_large",
    );
}

#[test]
fn pmd_inflated_size_exactly_at_the_limit_is_fine() {
    let (srv, log) = serve_steps(vec![Step::Recv, accept(), Step::Drain], |c| {
        c.ws.max_message_size = 1 << 20
    });
    let mut s = open_pmd(&srv, PMD);
    s.write_all(&frame(0xC2, &deflate(&vec![1u8; 1 << 20])))
        .unwrap();
    s.write_all(&client_close(1000, "")).unwrap();
    assert_eq!(read_frame(&mut s), Frame::close(1000, ""));
    let v = log.wait_end();
    assert_eq!(v.len(), 5);
    assert_eq!(v[2], recv_bin(&vec![1u8; 1 << 20]));
}
