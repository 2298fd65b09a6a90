//! WebSocket over HTTP/2 (RFC 8441): the extended CONNECT handshake, the `websocket` scope and
//! events, frames both ways on the stream's DATA, the closing handshake and END_STREAM,
//! refusals, denial, RST_STREAM, limits and keepalive; with the `h2` crate's client and masked
//! frames built here, and Python's `h2` package driven raw as an independent peer.

mod common;
use common::*;

use bytes::{Buf, Bytes, BytesMut};
use pagi::{BoxError, Headers, Message, ReceiveEvent, Receiver, ResponseBody, Scope, SendEvent};
use pagi_server::{Config, LifespanMode};
use std::io::Write as _;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;
use tokio::net::TcpStream;

// ===== the test app =====

static LOG: Mutex<Vec<String>> = Mutex::new(Vec::new());

fn log(s: String) {
    LOG.lock().unwrap().push(s);
}

/// Log lines that start with `prefix`, waiting up to 5 s for at least one.
async fn logged(prefix: &str) -> Vec<String> {
    for _ in 0..500 {
        let v: Vec<String> = LOG
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.starts_with(prefix))
            .cloned()
            .collect();
        if !v.is_empty() {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Vec::new()
}

async fn app(scope: Scope, rx: Receiver, tx: pagi::Sender) -> Result<(), BoxError> {
    let s = match scope {
        Scope::Http(s) => {
            tx.send(SendEvent::start(200, Headers::new())).await?;
            tx.send(SendEvent::body(format!("http {}", s.path), false))
                .await?;
            return Ok(());
        }
        Scope::Websocket(s) => s,
        _ => return Ok(()),
    };
    let path = s.path.to_string();
    let names: Vec<String> = s
        .headers
        .iter()
        .map(|(n, _)| String::from_utf8_lossy(n).into_owned())
        .collect();
    log(format!(
        "scope {path} {} {} {} {:?} {}",
        s.http_version.as_str(),
        s.method,
        s.scheme.as_str(),
        s.subprotocols,
        names.join(",")
    ));
    assert_eq!(rx.receive().await?, ReceiveEvent::WebsocketConnect);
    match path.as_str() {
        "/close-first" => {
            tx.send(SendEvent::WebsocketClose {
                code: 1000,
                reason: String::new(),
            })
            .await?;
        }
        "/deny" => {
            tx.send(SendEvent::WebsocketHttpResponseStart {
                status: 401,
                headers: Headers::new()
                    .with("content-type", "text/plain")
                    .with("x-why", "token"),
            })
            .await?;
            let mut b = ResponseBody::default();
            b.bytes = Bytes::from_static(b"no");
            b.more = true;
            tx.send(SendEvent::WebsocketHttpResponseBody(b)).await?;
            let mut b = ResponseBody::default();
            b.bytes = Bytes::from_static(b"pe");
            tx.send(SendEvent::WebsocketHttpResponseBody(b)).await?;
        }
        "/fail" => return Err("app failure before the accept".into()),
        _ => {
            tx.send(SendEvent::WebsocketAccept {
                subprotocol: s.subprotocols.first().cloned(),
                headers: Headers::new().with("x-app", "1"),
            })
            .await?;
            if path == "/bye" {
                tx.send(SendEvent::WebsocketSend(Message::Text("bye".into())))
                    .await?;
                tx.send(SendEvent::WebsocketClose {
                    code: 4000,
                    reason: "done".into(),
                })
                .await?;
            }
            loop {
                match rx.receive().await? {
                    ReceiveEvent::WebsocketReceive(m) => {
                        tx.send(SendEvent::WebsocketSend(m)).await?;
                    }
                    ReceiveEvent::WebsocketDisconnect { code, reason } => {
                        log(format!("disc {path} {code} {reason}"));
                        return Ok(());
                    }
                    other => return Err(format!("unexpected {other:?}").into()),
                }
            }
        }
    }
    Ok(())
}

fn base(c: &mut Config) {
    c.lifespan = LifespanMode::Off;
    // The test's client runs on the thread that drops the server (and so waits for it): keep
    // the wait for its open streams short.
    c.shutdown_timeout = Duration::from_millis(300);
}

// ===== client side =====

type Client = h2::client::SendRequest<Bytes>;

/// An h2 client that has seen the server's SETTINGS (extended CONNECT needs them).
async fn client(srv: &TestServer) -> (Client, tokio::task::JoinHandle<Result<(), h2::Error>>) {
    let tcp = TcpStream::connect(srv.addr()).await.unwrap();
    let (c, conn) = h2::client::handshake(tcp).await.expect("h2 handshake");
    let conn = tokio::spawn(conn);
    let mut c = c.ready().await.unwrap();
    for _ in 0..500 {
        if c.is_extended_connect_protocol_enabled() {
            return (c, conn);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
        c = c.ready().await.unwrap();
    }
    panic!("the server did not advertise SETTINGS_ENABLE_CONNECT_PROTOCOL");
}

/// One WebSocket over an h2 stream, with masked client frames and a server frame parser.
struct Ws {
    status: u16,
    headers: http::HeaderMap,
    send: h2::SendStream<Bytes>,
    recv: h2::RecvStream,
    buf: BytesMut,
    ended: bool,
}

#[derive(Debug, PartialEq)]
struct Frame {
    fin: bool,
    rsv1: bool,
    op: u8,
    payload: Vec<u8>,
}

fn connect_req(path: &str, protocol: &'static str, fields: &[(&str, &str)]) -> http::Request<()> {
    let mut b = http::Request::builder()
        .method("CONNECT")
        .uri(format!("http://example.test{path}"));
    for (n, v) in fields {
        b = b.header(*n, *v);
    }
    let mut req = b.body(()).unwrap();
    req.extensions_mut()
        .insert(h2::ext::Protocol::from_static(protocol));
    req
}

/// Opens an extended CONNECT; returns the answer (and the stream, whatever the status).
async fn open(c: &Client, path: &str, fields: &[(&str, &str)]) -> Ws {
    open_proto(c, path, "websocket", fields).await
}

async fn open_proto(c: &Client, path: &str, protocol: &'static str, fields: &[(&str, &str)]) -> Ws {
    let mut c = c.clone().ready().await.unwrap();
    let (resp, send) = c
        .send_request(connect_req(path, protocol, fields), false)
        .unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(5), resp)
        .await
        .expect("an answer")
        .unwrap();
    let (parts, recv) = resp.into_parts();
    Ws {
        status: parts.status.as_u16(),
        headers: parts.headers,
        send,
        recv,
        buf: BytesMut::new(),
        ended: false,
    }
}

const V13: (&str, &str) = ("sec-websocket-version", "13");

fn masked(fin: bool, rsv1: bool, op: u8, payload: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(payload.len() + 14);
    out.push(u8::from(fin) << 7 | u8::from(rsv1) << 6 | op);
    let n = payload.len();
    if n < 126 {
        out.push(0x80 | n as u8);
    } else if n < 65536 {
        out.push(0x80 | 126);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        out.push(0x80 | 127);
        out.extend_from_slice(&(n as u64).to_be_bytes());
    }
    let key = [0x12, 0x34, 0x56, 0x78];
    out.extend_from_slice(&key);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    Bytes::from(out)
}

fn close_payload(code: u16, reason: &str) -> Vec<u8> {
    let mut p = code.to_be_bytes().to_vec();
    p.extend_from_slice(reason.as_bytes());
    p
}

impl Ws {
    fn frame(&mut self, fin: bool, op: u8, payload: &[u8]) {
        self.send
            .send_data(masked(fin, false, op, payload), false)
            .unwrap();
    }

    fn text(&mut self, s: &str) {
        self.frame(true, 1, s.as_bytes());
    }

    /// The body bytes until END_STREAM (for refusals and denials).
    async fn body(&mut self) -> Vec<u8> {
        let mut out = self.buf.split().to_vec();
        while let Some(d) = self.recv.data().await {
            let d = d.unwrap();
            let _ = self.recv.flow_control().release_capacity(d.len());
            out.extend_from_slice(&d);
        }
        out
    }

    /// The next server frame; `None` once the stream ended (END_STREAM) with nothing left.
    async fn next(&mut self) -> Option<Frame> {
        loop {
            if let Some(f) = parse(&mut self.buf) {
                return Some(f);
            }
            if self.ended {
                assert!(self.buf.is_empty(), "a partial frame before END_STREAM");
                return None;
            }
            match tokio::time::timeout(Duration::from_secs(5), self.recv.data())
                .await
                .expect("server data in time")
            {
                Some(Ok(d)) => {
                    let _ = self.recv.flow_control().release_capacity(d.len());
                    self.buf.extend_from_slice(&d);
                }
                Some(Err(e)) => panic!("stream error: {e}"),
                None => self.ended = true,
            }
        }
    }
}

fn parse(buf: &mut BytesMut) -> Option<Frame> {
    if buf.len() < 2 {
        return None;
    }
    let (b0, b1) = (buf[0], buf[1]);
    assert_eq!(b1 & 0x80, 0, "server frames are not masked");
    let (len, at) = match b1 & 0x7f {
        126 if buf.len() >= 4 => (u16::from_be_bytes([buf[2], buf[3]]) as usize, 4),
        127 if buf.len() >= 10 => (
            u64::from_be_bytes(buf[2..10].try_into().unwrap()) as usize,
            10,
        ),
        126 | 127 => return None,
        n => (n as usize, 2),
    };
    if buf.len() < at + len {
        return None;
    }
    buf.advance(at);
    let payload = buf.split_to(len).to_vec();
    Some(Frame {
        fin: b0 & 0x80 != 0,
        rsv1: b0 & 0x40 != 0,
        op: b0 & 0x0f,
        payload,
    })
}

fn frame(op: u8, payload: &[u8]) -> Frame {
    Frame {
        fin: true,
        rsv1: false,
        op,
        payload: payload.to_vec(),
    }
}

// ===== tests =====

#[tokio::test]
async fn accept_scope_and_echo() {
    let srv = serve(app, base);
    let (c, _conn) = client(&srv).await;
    let mut ws = open(&c, "/echo?x=1", &[V13, ("origin", "http://example.test")]).await;
    assert_eq!(
        ws.status, 200,
        "an accepted extended CONNECT is a 200, not a 101"
    );
    assert!(!ws.headers.contains_key("sec-websocket-accept"));
    assert!(!ws.headers.contains_key("sec-websocket-protocol"));
    assert!(!ws.headers.contains_key("sec-websocket-extensions"));
    assert_eq!(ws.headers["x-app"], "1");
    assert!(ws.headers.contains_key("date"));
    let scope = logged("scope /echo ").await;
    assert_eq!(
        scope,
        ["scope /echo 2 GET ws [] host,sec-websocket-version,origin"]
    );
    ws.text("hello");
    assert_eq!(ws.next().await, Some(frame(1, b"hello")));
    ws.frame(true, 2, &[0, 1, 2, 255]);
    assert_eq!(ws.next().await, Some(frame(2, &[0, 1, 2, 255])));
    // A message over the 125- and 65535-byte length forms, across several DATA frames.
    let big = vec![b'z'; 70_000];
    ws.frame(true, 2, &big);
    assert_eq!(ws.next().await, Some(frame(2, &big)));
}

#[tokio::test]
async fn fragments_ping_and_close_handshake() {
    let srv = serve(app, base);
    let (c, _conn) = client(&srv).await;
    let mut ws = open(&c, "/frag", &[V13]).await;
    assert_eq!(ws.status, 200);
    ws.frame(false, 1, b"hel");
    ws.frame(false, 0, b"lo ");
    ws.frame(true, 0, b"world");
    assert_eq!(ws.next().await, Some(frame(1, b"hello world")));
    ws.frame(true, 9, b"are you there");
    assert_eq!(ws.next().await, Some(frame(10, b"are you there")));
    // Client closes: the server echoes the code, then ends the stream.
    ws.frame(true, 8, &close_payload(1000, "bye"));
    assert_eq!(ws.next().await, Some(frame(8, &close_payload(1000, ""))));
    assert_eq!(ws.next().await, None, "END_STREAM after the Close");
    assert_eq!(logged("disc /frag ").await, ["disc /frag 1000 bye"]);
    ws.send.send_data(Bytes::new(), true).unwrap();
}

#[tokio::test]
async fn server_initiated_close() {
    let srv = serve(app, base);
    let (c, _conn) = client(&srv).await;
    let mut ws = open(&c, "/bye", &[V13]).await;
    assert_eq!(ws.status, 200);
    assert_eq!(ws.next().await, Some(frame(1, b"bye")));
    assert_eq!(
        ws.next().await,
        Some(frame(8, &close_payload(4000, "done")))
    );
    ws.frame(true, 8, &close_payload(4000, ""));
    assert_eq!(ws.next().await, None, "END_STREAM once the client answered");
    assert_eq!(logged("disc /bye ").await, ["disc /bye 4000 "]);
}

#[tokio::test]
async fn subprotocol_and_permessage_deflate() {
    let srv = serve(app, base);
    let (c, _conn) = client(&srv).await;
    let mut ws = open(
        &c,
        "/pmd",
        &[
            V13,
            ("sec-websocket-protocol", "chat, superchat"),
            (
                "sec-websocket-extensions",
                "permessage-deflate; client_max_window_bits",
            ),
        ],
    )
    .await;
    assert_eq!(ws.status, 200);
    assert_eq!(ws.headers["sec-websocket-protocol"], "chat");
    let ext = ws.headers["sec-websocket-extensions"].to_str().unwrap();
    assert!(ext.starts_with("permessage-deflate"), "{ext}");
    assert_eq!(
        logged("scope /pmd ").await[0].split(' ').nth(5).unwrap(),
        "[\"chat\","
    );
    // A compressed client message (raw deflate, sync-flush tail removed) comes back
    // compressed, and inflates to the same text.
    let text = "compress me ".repeat(20);
    let mut z = flate2::Compress::new(flate2::Compression::default(), false);
    let mut out = Vec::with_capacity(1024);
    z.compress_vec(text.as_bytes(), &mut out, flate2::FlushCompress::Sync)
        .unwrap();
    assert!(out.ends_with(&[0, 0, 0xff, 0xff]));
    out.truncate(out.len() - 4);
    ws.send
        .send_data(masked(true, true, 1, &out), false)
        .unwrap();
    let f = ws.next().await.unwrap();
    assert!(f.rsv1 && f.fin && f.op == 1, "{f:?}");
    let mut input = f.payload.clone();
    input.extend_from_slice(&[0, 0, 0xff, 0xff]);
    let mut d = flate2::Decompress::new(false);
    let mut plain = Vec::with_capacity(4096);
    d.decompress_vec(&input, &mut plain, flate2::FlushDecompress::Sync)
        .unwrap();
    assert_eq!(String::from_utf8(plain).unwrap(), text);
}

#[tokio::test]
async fn close_before_accept_is_403_and_denial_is_the_apps_response() {
    let srv = serve(app, base);
    let (c, _conn) = client(&srv).await;
    let mut ws = open(&c, "/close-first", &[V13]).await;
    assert_eq!(ws.status, 403);
    assert_eq!(ws.headers["content-length"], "0");
    assert!(ws.recv.is_end_stream(), "the 403 HEADERS end the stream");
    assert_eq!(ws.body().await, b"");

    let mut ws = open(&c, "/deny", &[V13]).await;
    assert_eq!(ws.status, 401);
    assert_eq!(ws.headers["x-why"], "token");
    assert!(!ws.headers.contains_key("transfer-encoding"));
    assert_eq!(ws.body().await, b"nope");

    let mut ws = open(&c, "/fail", &[V13]).await;
    assert_eq!(ws.status, 500);
    assert_eq!(ws.body().await, b"Internal Server Error\n");
}

#[tokio::test]
async fn refusals() {
    let srv = serve(app, base);
    let (c, _conn) = client(&srv).await;
    let mut ws = open(&c, "/refused-1", &[]).await;
    assert_eq!(ws.status, 400, "no sec-websocket-version");
    assert_eq!(ws.body().await, b"Bad Request\n");
    let mut ws = open(&c, "/refused-2", &[("sec-websocket-version", "8")]).await;
    assert_eq!(ws.status, 400, "HTTP/2 cannot carry a 426's Upgrade");
    assert_eq!(ws.headers["sec-websocket-version"], "13");
    assert_eq!(ws.body().await, b"Bad Request\n");
    let ws = open(&c, "/refused-3", &[V13, ("sec-websocket-protocol", "a b")]).await;
    assert_eq!(ws.status, 400);
    let mut ws = open_proto(&c, "/refused-4", "webtransport", &[V13]).await;
    assert_eq!(ws.status, 501, "an extended CONNECT for another protocol");
    assert_eq!(ws.body().await, b"Not Implemented\n");
    // The app never saw any of them.
    assert!(LOG.lock().unwrap().iter().all(|l| !l.contains(" /refused")));
    // A WebSocket whose HEADERS end the stream has no room for frames.
    let mut c2 = c.clone().ready().await.unwrap();
    let (resp, _) = c2
        .send_request(connect_req("/refused-5", "websocket", &[V13]), true)
        .unwrap();
    assert_eq!(resp.await.unwrap().status(), 400);
}

#[tokio::test]
async fn get_on_the_same_connection_while_open() {
    let srv = serve(app, base);
    let (c, _conn) = client(&srv).await;
    let mut ws = open(&c, "/side", &[V13]).await;
    ws.text("one");
    assert_eq!(ws.next().await, Some(frame(1, b"one")));
    let mut c2 = c.clone().ready().await.unwrap();
    let r = http::Request::get("http://example.test/plain")
        .body(())
        .unwrap();
    let (resp, _) = c2.send_request(r, true).unwrap();
    let resp = resp.await.unwrap();
    assert_eq!(resp.status(), 200);
    let mut body = resp.into_body();
    let mut got = Vec::new();
    while let Some(d) = body.data().await {
        got.extend_from_slice(&d.unwrap());
    }
    assert_eq!(got, b"http /plain");
    ws.text("two");
    assert_eq!(ws.next().await, Some(frame(1, b"two")));
}

#[tokio::test]
async fn rst_stream_is_an_abrupt_disconnect() {
    let srv = serve(app, base);
    let (c, _conn) = client(&srv).await;
    let mut ws = open(&c, "/rst", &[V13]).await;
    ws.text("x");
    assert_eq!(ws.next().await, Some(frame(1, b"x")));
    ws.send.send_reset(h2::Reason::CANCEL);
    assert_eq!(logged("disc /rst ").await, ["disc /rst 1006 client_closed"]);
    // The connection keeps serving.
    let mut ws = open(&c, "/after-rst", &[V13]).await;
    ws.text("still here");
    assert_eq!(ws.next().await, Some(frame(1, b"still here")));
}

#[tokio::test]
async fn max_message_size_closes_with_1009() {
    let srv = serve(app, |c| {
        base(c);
        c.ws.max_message_size = 1000;
    });
    let (c, _conn) = client(&srv).await;
    let mut ws = open(&c, "/big", &[V13]).await;
    ws.frame(true, 2, &[7u8; 1001]);
    let f = ws.next().await.unwrap();
    assert_eq!(f.op, 8);
    assert_eq!(&f.payload[..2], &1009u16.to_be_bytes());
    assert_eq!(ws.next().await, None);
    assert_eq!(
        logged("disc /big ").await,
        ["disc /big 1009 body_too_large"]
    );
}

#[tokio::test]
async fn keepalive_pings_and_unanswered_ping_drops() {
    let srv = serve(app, |c| {
        base(c);
        c.ws.ping_interval = Duration::from_millis(200);
        c.ws.ping_timeout = Duration::from_millis(300);
    });
    let (c, _conn) = client(&srv).await;
    let mut ws = open(&c, "/ka", &[V13]).await;
    let p = ws.next().await.unwrap();
    assert_eq!(p.op, 9, "a server ping");
    ws.frame(true, 10, &p.payload);
    let p2 = ws.next().await.unwrap();
    assert_eq!(p2.op, 9, "pings keep coming while answered");
    // No pong now: the server drops the WebSocket without a Close.
    assert_eq!(
        logged("disc /ka ").await.first().map(String::as_str),
        Some("disc /ka 1006 keepalive_timeout")
    );
}

/// An independent peer: Python's `h2` package, driven frame by frame over a raw socket.
#[test]
fn python_h2_extended_connect() {
    let ok = Command::new("python3")
        .args(["-c", "import h2"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        assert!(
            std::env::var_os("CI").is_none(),
            "python3 with the `h2` package is required when CI is set (pip install h2)"
        );
        eprintln!("SKIP: python3 with the `h2` package is not available");
        return;
    }
    let srv = serve(pagi_server::demo::app, base);
    let script = r#"
import socket, sys, os
import h2.connection, h2.config, h2.events, h2.settings
host, port = sys.argv[1], int(sys.argv[2])
s = socket.create_connection((host, port), timeout=5)
c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
c.initiate_connection()
s.sendall(c.data_to_send())
events = []
def pump():
    data = s.recv(65536)
    if not data:
        raise SystemExit("connection closed")
    for e in c.receive_data(data):
        events.append(e)
    s.sendall(c.data_to_send())
while c.remote_settings.get(h2.settings.SettingCodes.ENABLE_CONNECT_PROTOCOL) != 1:
    pump()
print("settings ENABLE_CONNECT_PROTOCOL=1")
c.send_headers(1, [(":method", "CONNECT"), (":protocol", "websocket"), (":scheme", "http"),
                   (":path", "/chat"), (":authority", "%s:%d" % (host, port)),
                   ("sec-websocket-version", "13"), ("sec-websocket-protocol", "v1.chat")])
s.sendall(c.data_to_send())
def wait(kind):
    while True:
        for i, e in enumerate(events):
            if isinstance(e, kind):
                return events.pop(i)
        pump()
r = wait(h2.events.ResponseReceived)
h = dict(r.headers)
print("status", h[":status"], "protocol", h.get("sec-websocket-protocol"), "accept" in " ".join(h))
key = os.urandom(4)
def frame(op, payload):
    m = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    return bytes([0x80 | op, 0x80 | len(payload)]) + key + m
c.send_data(1, frame(1, b"hi over h2"))
s.sendall(c.data_to_send())
buf = b""
def next_frame():
    global buf
    while len(buf) < 2 or len(buf) < 2 + (buf[1] & 0x7f):
        d = wait(h2.events.DataReceived)
        c.acknowledge_received_data(len(d.data), 1)
        buf += d.data
    n = buf[1] & 0x7f
    f = (buf[0], buf[2:2 + n])
    buf = buf[2 + n:]
    return f
op, payload = next_frame()
print("echo", hex(op), payload.decode())
c.send_data(1, frame(8, (1000).to_bytes(2, "big")))
s.sendall(c.data_to_send())
op, payload = next_frame()
print("close", hex(op), int.from_bytes(payload[:2], "big"))
e = wait(h2.events.StreamEnded)
print("stream ended", e.stream_id)
c.end_stream(1)
s.sendall(c.data_to_send())
"#;
    let out = Command::new("python3")
        .args(["-c", script, "127.0.0.1", &srv.addr().port().to_string()])
        .stdin(Stdio::null())
        .output()
        .expect("python3 runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        stdout,
        "settings ENABLE_CONNECT_PROTOCOL=1\nstatus 200 protocol v1.chat False\n\
         echo 0x81 hi over h2\nclose 0x88 1000\nstream ended 1\n"
    );
    let _ = std::io::stdout().flush();
}
