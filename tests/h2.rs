//! HTTP/2: h2c by prior knowledge (TCP and Unix sockets) and by `Upgrade`, ALPN `h2` on TLS,
//! flow control tied to the app, RST_STREAM, trailers, GOAWAY, limits and SSE. Most tests use
//! the `h2` crate's client; real clients (curl, nghttp, h2load, Python httpx) run when they
//! are installed (CI installs them; locally a missing tool prints SKIP).

mod common;
use common::*;

use bytes::Bytes;
use pagi::{BoxError, Headers, ReceiveEvent, Receiver, Scope, SendEvent, Sender};
use pagi_server::{Config, H2Cleartext, LifespanMode};
use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;
use tokio::net::TcpStream;

// ===== the test app =====

/// What the app saw, for tests that check the app's side.
static LOG: Mutex<Vec<String>> = Mutex::new(Vec::new());
/// `/slow-read` reads nothing until this is set.
static GATE: tokio::sync::Notify = tokio::sync::Notify::const_new();
/// Pieces `/big` has handed to `send`.
static SENT: AtomicU64 = AtomicU64::new(0);

fn log(s: String) {
    LOG.lock().unwrap().push(s);
}

fn logged(prefix: &str) -> Vec<String> {
    LOG.lock()
        .unwrap()
        .iter()
        .filter(|l| l.starts_with(prefix))
        .cloned()
        .collect()
}

async fn read_body(rx: &Receiver) -> Result<Vec<u8>, BoxError> {
    let mut body = Vec::new();
    loop {
        match rx.receive().await? {
            ReceiveEvent::HttpRequest { body: b, more } => {
                body.extend_from_slice(&b);
                if !more {
                    return Ok(body);
                }
            }
            _ => return Err("disconnected".into()),
        }
    }
}

async fn app(scope: Scope, rx: Receiver, tx: Sender) -> Result<(), BoxError> {
    let s = match scope {
        Scope::Http(s) => s,
        Scope::Sse(_) => {
            tx.send(SendEvent::SseStart {
                status: 200,
                headers: Headers::new(),
            })
            .await?;
            for d in ["one", "two\nlines"] {
                tx.send(SendEvent::SseSend {
                    event: Some("tick".into()),
                    data: d.into(),
                    id: None,
                    retry: None,
                })
                .await?;
            }
            tx.send(SendEvent::SseClose {
                reason: String::new(),
            })
            .await?;
            return Ok(());
        }
        Scope::Lifespan(_) => return Ok(()),
        other => return Err(format!("unexpected {}", other.kind()).into()),
    };
    let path = s.path.as_str().unwrap_or("").to_owned();
    match path.as_str() {
        "/scope" => {
            let mut v = serde_json::to_value(&s)?;
            v.as_object_mut().unwrap().remove("pagi");
            let body = serde_json::to_vec(&v)?;
            tx.send(SendEvent::start(
                200,
                Headers::new().with("content-type", "application/json"),
            ))
            .await?;
            tx.send(SendEvent::body(body, false)).await?;
        }
        "/echo" => {
            let body = read_body(&rx).await?;
            let cl = s
                .headers
                .get("content-length")
                .map(|v| String::from_utf8_lossy(v).into_owned());
            log(format!(
                "echo {} {} {:?} {}",
                s.http_version.as_str(),
                s.method,
                cl,
                body.len()
            ));
            tx.send(SendEvent::start(
                200,
                Headers::new().with("x-len", body.len().to_string()),
            ))
            .await?;
            tx.send(SendEvent::body(body, false)).await?;
        }
        "/slow-read" => {
            GATE.notified().await;
            let body = read_body(&rx).await?;
            tx.send(SendEvent::start(200, Headers::new())).await?;
            tx.send(SendEvent::body(body.len().to_string(), false))
                .await?;
        }
        "/big" => {
            tx.send(SendEvent::start(200, Headers::new())).await?;
            let piece = Bytes::from(vec![b'x'; 16 * 1024]);
            for i in 0..64 {
                tx.send(SendEvent::body(piece.clone(), i < 63)).await?;
                SENT.fetch_add(1, Ordering::SeqCst);
            }
        }
        "/stall" => {
            // Sends 128 KiB (more than the window and the queue take: `send` waits), then
            // reports what `receive` gives.
            tx.send(SendEvent::start(200, Headers::new())).await?;
            let piece = Bytes::from(vec![b'y'; 16 * 1024]);
            for i in 0..8 {
                tx.send(SendEvent::body(piece.clone(), i < 7)).await?;
            }
            let ev = rx.receive().await?;
            log(format!("stall: {ev:?}"));
        }
        "/wait-disconnect" => {
            // Never answers; reports the disconnect it sees.
            loop {
                if let ReceiveEvent::HttpDisconnect = rx.receive().await? {
                    log("wait-disconnect: http.disconnect".into());
                    return Ok(());
                }
            }
        }
        "/trailers" => {
            tx.send(SendEvent::HttpResponseStart {
                status: 200,
                headers: Headers::new().with("trailer", "x-checksum"),
                trailers: true,
            })
            .await?;
            tx.send(SendEvent::body("part1,", true)).await?;
            tx.send(SendEvent::HttpFullflush).await?;
            tx.send(SendEvent::body("part2", false)).await?;
            tx.send(SendEvent::trailers(
                Headers::new().with("x-checksum", "abc123"),
            ))
            .await?;
        }
        "/sleep" => {
            tokio::time::sleep(Duration::from_millis(400)).await;
            tx.send(SendEvent::start(200, Headers::new())).await?;
            tx.send(SendEvent::body("slept", false)).await?;
        }
        "/fail" => return Err("app failure".into()),
        "/nobody" => {
            tx.send(SendEvent::start(204, Headers::new())).await?;
            tx.send(SendEvent::body("", false)).await?;
        }
        _ => {
            tx.send(SendEvent::start(
                200,
                Headers::new()
                    .with("content-type", "text/plain")
                    .with("connection", "keep-alive"),
            ))
            .await?;
            tx.send(SendEvent::body(
                format!("hello {}", s.http_version.as_str()),
                false,
            ))
            .await?;
        }
    }
    Ok(())
}

fn base(c: &mut Config) {
    c.lifespan = LifespanMode::Off;
}

// ===== h2 client helpers =====

type Client = h2::client::SendRequest<Bytes>;

async fn client<T>(io: T) -> (Client, tokio::task::JoinHandle<Result<(), h2::Error>>)
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (c, conn) = h2::client::handshake(io).await.expect("h2 handshake");
    (c, tokio::spawn(conn))
}

async fn tcp_client(srv: &TestServer) -> (Client, tokio::task::JoinHandle<Result<(), h2::Error>>) {
    client(TcpStream::connect(srv.addr()).await.unwrap()).await
}

fn req(method: &str, path: &str) -> http::Request<()> {
    http::Request::builder()
        .method(method)
        .uri(format!("http://example.test{path}"))
        .body(())
        .unwrap()
}

/// Sends a request with `body` and returns (status, headers, body, trailers).
async fn fetch(
    c: &mut Client,
    r: http::Request<()>,
    body: &[u8],
) -> (u16, http::HeaderMap, Vec<u8>, Option<http::HeaderMap>) {
    let mut c2 = c.clone().ready().await.unwrap();
    let (resp, mut send) = c2.send_request(r, body.is_empty()).unwrap();
    if !body.is_empty() {
        send.send_data(Bytes::copy_from_slice(body), true).unwrap();
    }
    let resp = resp.await.unwrap();
    let (parts, mut recv) = resp.into_parts();
    let mut out = Vec::new();
    while let Some(d) = recv.data().await {
        let d = d.unwrap();
        let _ = recv.flow_control().release_capacity(d.len());
        out.extend_from_slice(&d);
    }
    let trailers = recv.trailers().await.unwrap();
    (parts.status.as_u16(), parts.headers, out, trailers)
}

// ===== scopes =====

#[tokio::test]
async fn prior_knowledge_scope_fields() {
    let srv = serve(app, base);
    let (mut c, _conn) = tcp_client(&srv).await;
    let r = http::Request::builder()
        .method("GET")
        .uri("http://example.test:8443/scope?a=%20b")
        .header("cookie", "a=1")
        .header("cookie", "b=2")
        .header("x-custom", "yes")
        .body(())
        .unwrap();
    let (status, headers, body, _) = fetch(&mut c, r, b"").await;
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(headers["server"], "pagi-server");
    assert_eq!(headers["content-length"], body.len().to_string().as_str());
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["http_version"], "2");
    assert_eq!(v["method"], "GET");
    assert_eq!(v["scheme"], "http");
    assert_eq!(v["path"], "/scope");
    assert_eq!(v["raw_path"], "/scope");
    assert_eq!(v["query_string"], "a=%20b");
    assert_eq!(
        v["headers"],
        serde_json::json!([
            ["host", "example.test:8443"],
            ["cookie", "a=1; b=2"],
            ["x-custom", "yes"]
        ])
    );
    assert_eq!(v["server"][1], srv.addr().port());
    assert_eq!(v["client"][0], "127.0.0.1");
}

#[tokio::test]
async fn post_echo_and_concurrent_streams() {
    LOG.lock().unwrap().clear();
    let srv = serve(app, base);
    let (c, _conn) = tcp_client(&srv).await;
    let mut tasks = Vec::new();
    for i in 0..20usize {
        let mut c = c.clone();
        tasks.push(tokio::spawn(async move {
            let body = vec![b'a' + (i % 26) as u8; 1000 * i + 1];
            let r = http::Request::builder()
                .method("POST")
                .uri("http://example.test/echo")
                .header("content-length", body.len())
                .body(())
                .unwrap();
            let (status, headers, got, _) = fetch(&mut c, r, &body).await;
            assert_eq!(status, 200);
            assert_eq!(headers["x-len"], body.len().to_string().as_str());
            assert_eq!(got, body);
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let echoes = logged("echo ");
    assert_eq!(echoes.len(), 20);
    assert!(echoes.contains(&"echo 2 POST Some(\"1\") 1".to_string()));
}

#[tokio::test]
async fn connection_specific_response_fields_are_dropped() {
    let srv = serve(app, base);
    let (mut c, _conn) = tcp_client(&srv).await;
    let (status, headers, body, _) = fetch(&mut c, req("GET", "/"), b"").await;
    assert_eq!(status, 200);
    assert_eq!(body, b"hello 2");
    assert!(headers.get("connection").is_none());
    assert_eq!(headers["content-length"], "7");
}

#[tokio::test]
async fn app_failure_is_a_500_and_204_has_no_body() {
    let srv = serve(app, base);
    let (mut c, _conn) = tcp_client(&srv).await;
    let (status, headers, body, _) = fetch(&mut c, req("GET", "/fail"), b"").await;
    assert_eq!(status, 500);
    assert_eq!(headers["content-type"], "text/plain; charset=utf-8");
    assert_eq!(body, b"Internal Server Error\n");
    let (status, headers, body, _) = fetch(&mut c, req("GET", "/nobody"), b"").await;
    assert_eq!(status, 204);
    assert!(body.is_empty());
    assert!(headers.get("content-length").is_none());
    let (status, headers, body, _) = fetch(&mut c, req("HEAD", "/"), b"").await;
    assert_eq!((status, body.len()), (200, 0));
    assert_eq!(headers["content-length"], "7");
}

#[tokio::test]
async fn unix_socket_prior_knowledge() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("h2.sock");
    let spec = format!("unix:{}", path.display());
    let srv = serve_on(app, &[spec.as_str()], base);
    let io = tokio::net::UnixStream::connect(srv.unix_path())
        .await
        .unwrap();
    let (mut c, _conn) = client(io).await;
    let (status, _, body, _) = fetch(&mut c, req("GET", "/scope"), b"").await;
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["http_version"], "2");
    assert_eq!(v["client"], serde_json::Value::Null);
    assert_eq!(
        v["server"],
        serde_json::json!([path.display().to_string(), null])
    );
}

#[tokio::test]
async fn body_over_max_body_size_is_413() {
    let srv = serve(app, |c| {
        base(c);
        c.max_body_size = 100;
    });
    let (mut c, _conn) = tcp_client(&srv).await;
    let r = http::Request::builder()
        .method("POST")
        .uri("http://example.test/echo")
        .header("content-length", "101")
        .body(())
        .unwrap();
    let (status, _, body, _) = fetch(&mut c, r, &[b'x'; 101]).await;
    assert_eq!(status, 413);
    assert_eq!(body, b"Content Too Large\n");
    // Without a content-length, the limit is found while reading; nothing was sent yet.
    let (status, _, _, _) = fetch(&mut c, req("POST", "/echo"), &[b'x'; 500]).await;
    assert_eq!(status, 413);
    let (status, _, body, _) = fetch(&mut c, req("POST", "/echo"), &[b'y'; 100]).await;
    assert_eq!((status, body.len()), (200, 100));
}

// ===== flow control and backpressure =====

#[tokio::test]
async fn request_body_waits_for_the_app() {
    let srv = serve(app, |c| {
        base(c);
        c.http2.initial_stream_window_size = 65_535;
    });
    let (c, _conn) = tcp_client(&srv).await;
    let mut c = c.ready().await.unwrap();
    let (resp, mut send) = c.send_request(req("POST", "/slow-read"), false).unwrap();
    let total = 300_000usize;
    let mut sent = 0usize;
    // Send what the window allows; the app reads nothing, so no more window comes back.
    let stalled = tokio::time::timeout(Duration::from_millis(700), async {
        while sent < total {
            send.reserve_capacity(total - sent);
            let cap = std::future::poll_fn(|cx| send.poll_capacity(cx))
                .await
                .unwrap()
                .unwrap();
            if cap == 0 {
                continue;
            }
            send.send_data(Bytes::from(vec![b'z'; cap]), false).unwrap();
            sent += cap;
        }
    })
    .await;
    assert!(stalled.is_err(), "the client could send everything");
    assert_eq!(sent, 65_535, "exactly one stream window");
    GATE.notify_one();
    while sent < total {
        send.reserve_capacity(total - sent);
        let cap = std::future::poll_fn(|cx| send.poll_capacity(cx))
            .await
            .unwrap()
            .unwrap();
        let n = cap.min(total - sent);
        if n == 0 {
            continue;
        }
        send.send_data(Bytes::from(vec![b'z'; n]), sent + n == total)
            .unwrap();
        sent += n;
    }
    let resp = resp.await.unwrap();
    let mut body = resp.into_body();
    let got = body.data().await.unwrap().unwrap();
    assert_eq!(&got[..], total.to_string().as_bytes());
}

#[tokio::test]
async fn response_body_waits_for_the_window() {
    SENT.store(0, Ordering::SeqCst);
    let srv = serve(app, base);
    let io = TcpStream::connect(srv.addr()).await.unwrap();
    let (c, conn) = h2::client::Builder::new()
        .initial_window_size(16 * 1024)
        .handshake::<_, Bytes>(io)
        .await
        .unwrap();
    tokio::spawn(conn);
    let mut c = c.ready().await.unwrap();
    let (resp, _) = c.send_request(req("GET", "/big"), true).unwrap();
    let resp = resp.await.unwrap();
    let mut body = resp.into_body();
    tokio::time::sleep(Duration::from_millis(400)).await;
    // 16 KiB of window, plus 64 KiB above which send waits, plus the piece in flight.
    let early = SENT.load(Ordering::SeqCst);
    assert!(
        early <= 6,
        "send did not wait: {early} pieces of 16 KiB sent"
    );
    let mut total = 0;
    while let Some(d) = body.data().await {
        let d = d.unwrap();
        total += d.len();
        body.flow_control().release_capacity(d.len()).unwrap();
    }
    assert_eq!(total, 64 * 16 * 1024);
    assert_eq!(SENT.load(Ordering::SeqCst), 64);
}

#[tokio::test]
async fn stalled_window_is_reset_after_timeout_io() {
    let srv = serve(app, |c| {
        base(c);
        c.timeout_io = Duration::from_millis(500);
    });
    let io = TcpStream::connect(srv.addr()).await.unwrap();
    let (c, conn) = h2::client::Builder::new()
        .initial_window_size(0)
        .handshake::<_, Bytes>(io)
        .await
        .unwrap();
    tokio::spawn(conn);
    let mut c = c.ready().await.unwrap();
    let started = std::time::Instant::now();
    let (resp, _) = c.send_request(req("GET", "/stall"), true).unwrap();
    let resp = resp.await.unwrap();
    assert_eq!(resp.status(), 200);
    let mut body = resp.into_body();
    // The window never opens: no byte comes, then RST_STREAM(CANCEL) after `timeout_io`.
    let got = tokio::time::timeout(Duration::from_secs(5), body.data())
        .await
        .expect("the stream was not reset within 5 s");
    let err = got.expect("a reset, not the end of the body").unwrap_err();
    assert_eq!(err.reason(), Some(h2::Reason::CANCEL), "{err:?}");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(450) && waited < Duration::from_secs(3),
        "reset after {waited:?}"
    );
    for _ in 0..100 {
        if !logged("stall:").is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let seen = logged("stall:");
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen, ["stall: HttpDisconnect"]);
    // Only that stream ended: the connection still serves (a bodiless answer, as this
    // client's windows are shut).
    let (status, _, body, _) = fetch(&mut c, req("GET", "/nobody"), b"").await;
    assert_eq!((status, body.len()), (204, 0));
}

// ===== reset, trailers, GOAWAY =====

#[tokio::test]
async fn rst_stream_disconnects_only_that_stream() {
    LOG.lock().unwrap().clear();
    let srv = serve(app, base);
    let (c, _conn) = tcp_client(&srv).await;
    let mut c1 = c.clone().ready().await.unwrap();
    let (resp_a, mut send_a) = c1
        .send_request(req("POST", "/wait-disconnect"), false)
        .unwrap();
    send_a.send_data(Bytes::from_static(b"x"), false).unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    send_a.send_reset(h2::Reason::CANCEL);
    let mut c2 = c.clone();
    let (status, _, body, _) = fetch(&mut c2, req("GET", "/"), b"").await;
    assert_eq!((status, body.as_slice()), (200, &b"hello 2"[..]));
    for _ in 0..50 {
        if !logged("wait-disconnect").is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        logged("wait-disconnect"),
        ["wait-disconnect: http.disconnect"]
    );
    assert!(resp_a.await.is_err());
    // The connection is still usable.
    let (status, _, _, _) = fetch(&mut c2, req("GET", "/"), b"").await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn trailers_reach_the_client() {
    let srv = serve(app, base);
    let (mut c, _conn) = tcp_client(&srv).await;
    let (status, headers, body, trailers) = fetch(&mut c, req("GET", "/trailers"), b"").await;
    assert_eq!(status, 200);
    assert_eq!(headers["trailer"], "x-checksum");
    assert_eq!(body, b"part1,part2");
    assert_eq!(trailers.unwrap()["x-checksum"], "abc123");
}

#[tokio::test]
async fn graceful_shutdown_sends_goaway_and_finishes_streams() {
    let srv = serve(app, base);
    let (c, conn) = tcp_client(&srv).await;
    let mut c1 = c.clone().ready().await.unwrap();
    let (resp, _) = c1.send_request(req("GET", "/sleep"), true).unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let handle = srv.handle().clone();
    handle.shutdown();
    let resp = resp.await.unwrap();
    assert_eq!(resp.status(), 200);
    let mut body = resp.into_body();
    assert_eq!(&body.data().await.unwrap().unwrap()[..], b"slept");
    // The connection ends cleanly (GOAWAY, then close) once the stream is done.
    let ended = tokio::time::timeout(Duration::from_secs(3), conn).await;
    assert!(matches!(ended, Ok(Ok(Ok(())))), "{ended:?}");
    drop(c);
    tokio::task::spawn_blocking(move || srv.stop())
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn max_requests_per_connection_then_goaway() {
    let srv = serve(app, |c| {
        base(c);
        c.http2.max_requests = 2;
    });
    let (mut c, conn) = tcp_client(&srv).await;
    for _ in 0..2 {
        let (status, _, _, _) = fetch(&mut c, req("GET", "/"), b"").await;
        assert_eq!(status, 200);
    }
    let ended = tokio::time::timeout(Duration::from_secs(3), conn).await;
    assert!(matches!(ended, Ok(Ok(Ok(())))), "{ended:?}");
    let third = async { c.ready().await?.send_request(req("GET", "/"), true) };
    assert!(third.await.is_err());
}

// ===== SSE =====

#[tokio::test]
async fn sse_over_h2() {
    let srv = serve(app, base);
    let (mut c, _conn) = tcp_client(&srv).await;
    let r = http::Request::builder()
        .uri("http://example.test/events")
        .header("accept", "text/event-stream")
        .body(())
        .unwrap();
    let (status, headers, body, _) = fetch(&mut c, r, b"").await;
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "text/event-stream");
    assert_eq!(headers["cache-control"], "no-cache");
    assert!(headers.get("transfer-encoding").is_none());
    assert_eq!(
        String::from_utf8(body).unwrap(),
        "event: tick\ndata: one\n\nevent: tick\ndata: two\ndata: lines\n\n"
    );
}

// ===== h2c upgrade and cleartext modes (raw sockets) =====

const SETTINGS: &[u8] = &[0, 0, 0, 4, 0, 0, 0, 0, 0];

/// Reads HTTP/2 frames until stream 1 ends; returns (frame types seen on stream 1, DATA).
fn read_stream1(s: &mut std::net::TcpStream) -> (Vec<u8>, Vec<u8>) {
    let mut kinds = Vec::new();
    let mut data = Vec::new();
    loop {
        let mut h = [0u8; 9];
        s.read_exact(&mut h).expect("frame header");
        let len = (usize::from(h[0]) << 16) | (usize::from(h[1]) << 8) | usize::from(h[2]);
        let stream = u32::from_be_bytes([h[5], h[6], h[7], h[8]]);
        let mut payload = vec![0u8; len];
        s.read_exact(&mut payload).unwrap();
        if stream == 1 {
            kinds.push(h[3]);
            if h[3] == 0 {
                data.extend_from_slice(&payload);
            }
            if h[4] & 1 == 1 || h[3] == 3 {
                return (kinds, data);
            }
        }
    }
}

fn read_head(s: &mut std::net::TcpStream) -> String {
    let mut buf = Vec::new();
    let mut b = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        if s.read(&mut b).unwrap_or(0) == 0 {
            break;
        }
        buf.push(b[0]);
    }
    String::from_utf8_lossy(&buf).into_owned()
}

const UPGRADE: &str = "POST /echo HTTP/1.1\r\nHost: up.example\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\nContent-Length: 5\r\n\r\nhello";

#[test]
fn h2c_upgrade_with_a_body() {
    LOG.lock().unwrap().clear();
    let srv = serve(app, base);
    let mut s = srv.connect();
    s.write_all(UPGRADE.as_bytes()).unwrap();
    let head = read_head(&mut s);
    assert_eq!(
        head,
        "HTTP/1.1 101 Switching Protocols\r\nconnection: Upgrade\r\nupgrade: h2c\r\n\r\n"
    );
    s.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").unwrap();
    s.write_all(SETTINGS).unwrap();
    let (kinds, data) = read_stream1(&mut s);
    assert_eq!(kinds, [1, 0], "HEADERS then DATA on stream 1");
    assert_eq!(data, b"hello");
    assert_eq!(logged("echo "), ["echo 2 POST Some(\"5\") 5"]);
}

#[test]
fn h2c_upgrade_falls_back_to_http11() {
    let srv = serve(app, base);
    // Missing HTTP2-Settings in Connection: served as HTTP/1.1.
    let r = UPGRADE.replace("Upgrade, HTTP2-Settings", "Upgrade");
    let resp = srv.raw(r.replace("Host:", "Connection: close\r\nHost:").as_bytes());
    assert!(resp.starts_with("HTTP/1.1 200 OK\r\n"), "{resp}");
    assert!(resp.ends_with("hello"), "{resp}");
    // A body larger than the upgrade limit: HTTP/1.1 too.
    let big = "x".repeat(70_000);
    let r = UPGRADE
        .replace(
            "Content-Length: 5",
            &format!("Content-Length: {}", big.len()),
        )
        .replace("hello", &big);
    let mut s = srv.connect();
    s.write_all(r.as_bytes()).unwrap();
    let (head, body) = read_response(&mut s);
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert_eq!(body.len(), 70_000);
}

fn preface_answer(srv: &TestServer) -> Vec<u8> {
    let mut s = srv.connect();
    s.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").unwrap();
    s.write_all(SETTINGS).unwrap();
    let mut buf = [0u8; 9];
    let n = s.read(&mut buf).unwrap_or(0);
    buf[..n].to_vec()
}

#[test]
fn cleartext_modes() {
    for (mode, prior, upgrade) in [
        (H2Cleartext::Both, true, true),
        (H2Cleartext::PriorKnowledge, true, false),
        (H2Cleartext::Upgrade, false, true),
        (H2Cleartext::Off, false, false),
    ] {
        let srv = serve(app, |c| {
            base(c);
            c.http2.cleartext = mode;
        });
        let first = preface_answer(&srv);
        if prior {
            // The server's SETTINGS frame.
            assert_eq!(first[3], 4, "{mode:?}: {first:?}");
        } else {
            assert_eq!(&first[..], b"HTTP/1.1 ", "{mode:?}");
            let all = srv.raw(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
            assert!(all.starts_with("HTTP/1.1 505 "), "{mode:?}: {all}");
        }
        let mut s = srv.connect();
        s.write_all(UPGRADE.as_bytes()).unwrap();
        let head = read_head(&mut s);
        let want = if upgrade {
            "HTTP/1.1 101 "
        } else {
            "HTTP/1.1 200 "
        };
        assert!(head.starts_with(want), "{mode:?}: {head}");
    }
}

#[test]
fn http2_off_is_http11_only() {
    let srv = serve(app, |c| {
        base(c);
        c.http2.enabled = false;
    });
    let all = srv.raw(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
    assert!(all.starts_with("HTTP/1.1 505 "), "{all}");
    let mut s = srv.connect();
    s.write_all(UPGRADE.as_bytes()).unwrap();
    assert!(read_head(&mut s).starts_with("HTTP/1.1 200 "));
}

// ===== real clients =====

/// Whether `tool` runs; otherwise SKIP (or fail when CI is set).
fn have(tool: &str, args: &[&str], test: &str) -> bool {
    let ok = Command::new(tool)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        assert!(
            std::env::var_os("CI").is_none(),
            "{test}: {tool} is required when CI is set"
        );
        eprintln!("SKIP {test}: {tool} is not available");
    }
    ok
}

fn run(cmd: &mut Command) -> (bool, String, String) {
    let out = cmd.output().expect("runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn curl_prior_knowledge_and_upgrade() {
    if !have("curl", &["--version"], "curl_prior_knowledge_and_upgrade") {
        return;
    }
    let srv = serve(app, base);
    let (ok, out, err) = run(Command::new("curl").args([
        "-sS",
        "--http2-prior-knowledge",
        "-w",
        " %{http_version}",
        &srv.url("/"),
    ]));
    assert!(ok, "{err}");
    assert_eq!(out, "hello 2 2");
    let (ok, out, err) = run(Command::new("curl").args([
        "-sS",
        "--http2",
        "-d",
        "ping-body",
        "-w",
        " %{http_version}",
        &srv.url("/echo"),
    ]));
    assert!(ok, "{err}");
    assert_eq!(out, "ping-body 2");
}

#[test]
fn curl_http2_over_tls() {
    if !have("curl", &["--version"], "curl_http2_over_tls") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let (cp, kp) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
    std::fs::write(&cp, cert.cert.pem()).unwrap();
    std::fs::write(&kp, cert.signing_key.serialize_pem()).unwrap();
    let srv = serve_on(app, &["https://127.0.0.1:0"], |c| {
        base(c);
        c.tls = Some(pagi_server::tls::TlsConfig::new(&cp, &kp));
    });
    let url = format!("https://localhost:{}/scope", srv.addr().port());
    let resolve = format!("localhost:{}:127.0.0.1", srv.addr().port());
    let (ok, out, err) = run(Command::new("curl").args([
        "-sS",
        "-k",
        "--http2",
        "--resolve",
        &resolve,
        "-w",
        "\n%{http_version}",
        &url,
    ]));
    assert!(ok, "{err}");
    let (json, version) = out.rsplit_once('\n').unwrap();
    assert_eq!(version, "2");
    let v: serde_json::Value = serde_json::from_str(json).unwrap();
    assert_eq!(v["scheme"], "https");
    assert_eq!(v["http_version"], "2");
    assert!(v["extensions"]["tls"].is_object());
    // HTTP/1.1 is still offered by ALPN.
    let (ok, out, _) = run(Command::new("curl").args([
        "-sS",
        "-k",
        "--http1.1",
        "--resolve",
        &resolve,
        "-o",
        "/dev/null",
        "-w",
        "%{http_version}",
        &url,
    ]));
    assert!(ok);
    assert_eq!(out, "1.1");
    // With HTTP/2 off, ALPN does not offer h2: curl falls back to HTTP/1.1.
    drop(srv);
    let srv = serve_on(app, &["https://127.0.0.1:0"], |c| {
        base(c);
        c.tls = Some(pagi_server::tls::TlsConfig::new(&cp, &kp));
        c.http2.enabled = false;
    });
    let resolve = format!("localhost:{}:127.0.0.1", srv.addr().port());
    let url = format!("https://localhost:{}/", srv.addr().port());
    let (ok, out, err) = run(Command::new("curl").args([
        "-sS",
        "-k",
        "--http2",
        "--resolve",
        &resolve,
        "-w",
        " %{http_version}",
        &url,
    ]));
    assert!(ok, "{err}");
    assert_eq!(out, "hello 1.1 1.1");
}

#[test]
fn nghttp_prior_knowledge_and_upgrade() {
    if !have(
        "nghttp",
        &["--version"],
        "nghttp_prior_knowledge_and_upgrade",
    ) {
        return;
    }
    let srv = serve(app, base);
    let (ok, out, err) = run(Command::new("nghttp").args([&srv.url("/trailers")]));
    assert!(ok, "{err}");
    assert_eq!(out, "part1,part2");
    let (ok, out, err) = run(Command::new("nghttp").args(["-v", &srv.url("/trailers")]));
    assert!(ok, "{err}");
    assert!(out.contains(") x-checksum: abc123\n"), "{out}");
    let (ok, out, err) = run(Command::new("nghttp").args(["-uv", &srv.url("/")]));
    assert!(ok, "{err}");
    assert!(out.contains("HTTP Upgrade success"), "{out}");
    let (ok, out, err) = run(Command::new("nghttp").args(["-u", &srv.url("/")]));
    assert!(ok, "{err}");
    assert_eq!(out, "hello 2");
}

#[test]
fn h2load_smoke() {
    if !have("h2load", &["--version"], "h2load_smoke") {
        return;
    }
    let srv = serve(app, base);
    let (ok, out, err) =
        run(Command::new("h2load").args(["-n", "2000", "-c", "4", "-m", "10", &srv.url("/")]));
    assert!(ok, "{err}");
    assert!(out.contains("2000 succeeded, 0 failed, 0 errored"), "{out}");
    assert!(out.contains("status codes: 2000 2xx"), "{out}");
}

#[test]
fn python_httpx_http2() {
    if !have("python3", &["-c", "import httpx, h2"], "python_httpx_http2") {
        return;
    }
    let srv = serve(app, base);
    let script = r#"
import sys, httpx
url = sys.argv[1]
with httpx.Client(http1=False, http2=True) as c:
    r = c.post(url + "/echo", content=b"from-httpx")
    print(r.http_version, r.status_code, r.text)
    r = c.get(url + "/trailers")
    print(r.http_version, r.status_code, r.text)
"#;
    let (ok, out, err) =
        run(Command::new("python3").args(["-c", script, &format!("http://{}", srv.addr())]));
    assert!(ok, "{err}");
    assert_eq!(out, "HTTP/2 200 from-httpx\nHTTP/2 200 part1,part2\n");
}

// ===== PROXY protocol, timeouts, PING =====

#[tokio::test]
async fn prior_knowledge_after_a_proxy_header() {
    let srv = serve(app, |c| {
        base(c);
        c.proxy_protocol = pagi_server::ProxyProtocol::V1;
    });
    let mut io = TcpStream::connect(srv.addr()).await.unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut io, b"PROXY TCP4 192.0.2.7 198.51.100.1 4242 80\r\n")
        .await
        .unwrap();
    let (mut c, _conn) = client(io).await;
    let (status, _, body, _) = fetch(&mut c, req("GET", "/scope"), b"").await;
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["http_version"], "2");
    assert_eq!(v["client"], serde_json::json!(["192.0.2.7", 4242]));
}

/// Reads frames until one of type `kind` arrives (true) or the connection ends (false).
fn wait_frame(s: &mut std::net::TcpStream, kind: u8) -> bool {
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    loop {
        let mut h = [0u8; 9];
        if s.read_exact(&mut h).is_err() {
            return false;
        }
        let len = (usize::from(h[0]) << 16) | (usize::from(h[1]) << 8) | usize::from(h[2]);
        let mut payload = vec![0u8; len];
        if s.read_exact(&mut payload).is_err() {
            return false;
        }
        if h[3] == kind {
            return true;
        }
    }
}

#[test]
fn idle_connection_gets_goaway() {
    let srv = serve(app, |c| {
        base(c);
        c.timeout_header_read = Duration::from_millis(300);
    });
    let mut s = srv.connect();
    s.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").unwrap();
    s.write_all(SETTINGS).unwrap();
    let start = std::time::Instant::now();
    assert!(wait_frame(&mut s, 7), "GOAWAY");
    assert!(start.elapsed() >= Duration::from_millis(250));
}

#[test]
fn unanswered_keepalive_ping_closes() {
    let srv = serve(app, |c| {
        base(c);
        c.http2.keep_alive_interval = Duration::from_millis(200);
        c.http2.keep_alive_timeout = Duration::from_millis(300);
    });
    let mut s = srv.connect();
    s.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").unwrap();
    s.write_all(SETTINGS).unwrap();
    // No PONG is ever sent back.
    assert!(wait_frame(&mut s, 6), "a keep-alive PING");
    let start = std::time::Instant::now();
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest);
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "closed after the PONG timeout"
    );
}
