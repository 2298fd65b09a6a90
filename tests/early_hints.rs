//! `http.response.early_hint` (103 Early Hints, RFC 8297) on HTTP/1.x and HTTP/2: the exact
//! bytes on the wire (raw sockets), the errors `send` reports, how a 103 mixes with keep-alive,
//! HEAD and `Expect: 100-continue`, the 103 HEADERS frames on HTTP/2, and real clients (`curl`,
//! `nghttp`, Python `httpx` and `h2`) against the demo route.

mod common;
use common::*;

use pagi::{App, BoxError, Headers, HttpScope, ReceiveEvent, Receiver, Scope, SendEvent, Sender};
use pagi_server::{Config, LifespanMode};
use std::future::Future;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

const WAIT: Duration = Duration::from_secs(5);
const LINK: &str = "</style.css>; rel=preload; as=style";
const HINT_BYTES: &str =
    "HTTP/1.1 103 Early Hints\r\nlink: </style.css>; rel=preload; as=style\r\n\r\n";
const GET_CLOSE: &[u8] = b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
const RESP_500: &str = "HTTP/1.1 500 Internal Server Error\r\ncontent-type: text/plain; charset=utf-8\r\n\
                        content-length: 22\r\nconnection: close\r\ndate: X\r\n\r\nInternal Server Error\n";

fn http_app<F, Fut>(f: F) -> impl App
where
    F: Fn(HttpScope, Receiver, Sender) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), BoxError>> + Send + 'static,
{
    move |scope: Scope, rx: Receiver, tx: Sender| {
        let fut = match scope {
            Scope::Http(s) => Ok(f(s, rx, tx)),
            other => Err(other.kind()),
        };
        async move {
            match fut {
                Ok(fut) => fut.await,
                Err(kind) => Err(format!("unsupported scope {kind}").into()),
            }
        }
    }
}

fn cfg(c: &mut Config) {
    c.lifespan = LifespanMode::Off;
    c.server_header = None;
}

fn hint() -> SendEvent {
    SendEvent::early_hint(Headers::new().with("link", LINK))
}

fn ok_response() -> [SendEvent; 2] {
    [
        SendEvent::start(200, Headers::new().with("content-length", "2")),
        SendEvent::body("ok", false),
    ]
}

/// Replaces every `date:` value with `X` (after checking its shape).
fn norm(raw: &[u8]) -> String {
    let s = String::from_utf8_lossy(raw).into_owned();
    let mut out = String::new();
    let mut rest = s.as_str();
    while let Some(i) = rest.find("\r\ndate: ") {
        let start = i + "\r\ndate: ".len();
        out.push_str(&rest[..start]);
        let end = rest[start..].find("\r\n").map_or(rest.len(), |j| start + j);
        assert!(rest[start..end].ends_with(" GMT"), "bad date");
        out.push('X');
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

/// Reads until EOF/reset or `limit`; returns the bytes and whether the peer closed.
fn read_until_closed(s: &mut TcpStream, limit: Duration) -> (Vec<u8>, bool) {
    s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    let deadline = Instant::now() + limit;
    let mut out = Vec::new();
    let mut buf = [0u8; 16384];
    while Instant::now() < deadline {
        match s.read(&mut buf) {
            Ok(0) => return (out, true),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => return (out, true),
        }
    }
    (out, false)
}

/// Reads byte by byte until the bytes end with `suffix` (panics after `WAIT`).
fn read_until_suffix(s: &mut TcpStream, suffix: &[u8]) -> Vec<u8> {
    s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    let deadline = Instant::now() + WAIT;
    let mut out = Vec::new();
    let mut byte = [0u8; 1];
    while !out.ends_with(suffix) {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {:?}; got {:?}",
            String::from_utf8_lossy(suffix),
            String::from_utf8_lossy(&out)
        );
        match s.read(&mut byte) {
            Ok(0) => panic!("connection closed; got {:?}", String::from_utf8_lossy(&out)),
            Ok(_) => out.push(byte[0]),
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(e) => panic!("read: {e}; got {:?}", String::from_utf8_lossy(&out)),
        }
    }
    out
}

struct Probe {
    results: Vec<Result<(), pagi::Error>>,
    wire: String,
    closed: bool,
}

/// Runs an app that sends `events` in order for the one request `req` (stopping at, and
/// returning, the first error when `propagate`); reports every send's result and the wire.
fn probe(events: Vec<SendEvent>, propagate: bool, req: &[u8]) -> Probe {
    let (out_tx, out_rx) = mpsc::channel();
    let events = Arc::new(events);
    let app = http_app(move |s, _rx, tx| {
        let events = events.clone();
        let out = out_tx.clone();
        async move {
            assert!(s.extensions.early_hint, "every http scope advertises it");
            let mut results = Vec::new();
            let mut failure = None;
            for ev in events.iter().cloned() {
                let r = tx.send(ev).await;
                results.push(r.clone());
                if let (true, Err(e)) = (propagate, r) {
                    failure = Some(e);
                    break;
                }
            }
            out.send(results).unwrap();
            match failure {
                Some(e) => Err(e.into()),
                None => Ok(()),
            }
        }
    });
    let srv = serve(app, cfg);
    let mut s = srv.connect();
    s.write_all(req).unwrap();
    let (wire, closed) = read_until_closed(&mut s, Duration::from_secs(3));
    let results = out_rx.recv_timeout(WAIT).expect("app reported");
    Probe {
        results,
        wire: norm(&wire),
        closed,
    }
}

fn kinds(results: &[Result<(), pagi::Error>]) -> Vec<&'static str> {
    results
        .iter()
        .map(|r| match r {
            Ok(()) => "ok",
            Err(e) if e.is_invalid() => "invalid",
            Err(e) if e.is_out_of_order() => "order",
            Err(e) if e.is_unsupported() => "unsupported",
            Err(_) => "other",
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Bytes on the wire
// ---------------------------------------------------------------------------------------------

#[test]
fn a_hint_then_the_final_response() {
    let mut events = vec![hint()];
    events.extend(ok_response());
    let p = probe(events, false, GET_CLOSE);
    assert_eq!(kinds(&p.results), ["ok", "ok", "ok"], "{:?}", p.results);
    assert_eq!(
        p.wire,
        format!(
            "{HINT_BYTES}HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\ndate: X\r\n\r\nok"
        )
    );
    assert!(p.closed);
}

#[test]
fn several_hints_are_written_in_order_with_their_fields_as_given() {
    let events = vec![
        SendEvent::early_hint(
            Headers::new()
                .with("Link", "</a.css>; rel=preload; as=style")
                .with("link", "</b.js>; rel=preload; as=script"),
        ),
        SendEvent::early_hint(Headers::new()),
        SendEvent::early_hint(Headers::new().with("link", "<https://cdn.example>; rel=preconnect")),
        SendEvent::start(204, Headers::new()),
        SendEvent::body("", false),
    ];
    let p = probe(events, false, GET_CLOSE);
    assert_eq!(kinds(&p.results), ["ok"; 5], "{:?}", p.results);
    assert_eq!(
        p.wire,
        "HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload; as=style\r\nlink: </b.js>; rel=preload; as=script\r\n\r\n\
         HTTP/1.1 103 Early Hints\r\n\r\n\
         HTTP/1.1 103 Early Hints\r\nlink: <https://cdn.example>; rel=preconnect\r\n\r\n\
         HTTP/1.1 204 No Content\r\nconnection: close\r\ndate: X\r\n\r\n"
    );
}

#[test]
fn http10_clients_get_no_103_and_the_send_succeeds() {
    let mut events = vec![hint(), hint()];
    events.extend(ok_response());
    let p = probe(
        events,
        false,
        b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
    );
    assert_eq!(kinds(&p.results), ["ok"; 4], "{:?}", p.results);
    // Only the final response: still kept alive (the client closes it at the end of the probe).
    let (wire, closed) = (p.wire, p.closed);
    assert_eq!(
        wire,
        "HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: keep-alive\r\ndate: X\r\n\r\nok"
    );
    assert!(!closed, "the 1.0 keep-alive connection stays open");
    // The fields are still checked on HTTP/1.0.
    let p = probe(
        vec![SendEvent::early_hint(
            Headers::new().with("connection", "close"),
        )],
        true,
        b"GET / HTTP/1.0\r\n\r\n",
    );
    assert_eq!(kinds(&p.results), ["invalid"]);
    assert_eq!(p.wire, RESP_500);
}

// ---------------------------------------------------------------------------------------------
// Failing sends
// ---------------------------------------------------------------------------------------------

#[test]
fn a_hint_after_the_start_fails_out_of_order_and_writes_nothing() {
    // Held start, written start, complete response: always too late.
    let p = probe(
        vec![
            SendEvent::start(200, Headers::new().with("content-length", "2")),
            hint(),
            SendEvent::body("o", true),
            hint(),
            SendEvent::body("k", false),
            hint(),
        ],
        false,
        GET_CLOSE,
    );
    assert_eq!(
        kinds(&p.results),
        ["ok", "order", "ok", "order", "ok", "order"],
        "{:?}",
        p.results
    );
    assert_eq!(
        p.wire,
        "HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\ndate: X\r\n\r\nok"
    );
}

#[test]
fn an_app_that_propagates_the_late_hint_error_cuts_its_response() {
    let p = probe(
        vec![
            SendEvent::start(200, Headers::new().with("content-length", "2")),
            SendEvent::body("o", true),
            hint(),
            SendEvent::body("k", false),
        ],
        true,
        b"GET / HTTP/1.1\r\nHost: t\r\n\r\n",
    );
    assert_eq!(kinds(&p.results), ["ok", "ok", "order"], "{:?}", p.results);
    // The app failed after the start: the response is cut (1 of 2 bytes) and the connection
    // closed, as for any app error after the start.
    assert_eq!(
        p.wire,
        "HTTP/1.1 200 OK\r\ncontent-length: 2\r\ndate: X\r\n\r\no"
    );
    assert!(p.closed);
}

#[test]
fn refused_fields_fail_invalid_and_write_nothing() {
    let bad: &[(&str, &[u8])] = &[
        ("Connection", b"close"),
        ("keep-alive", b"timeout=5"),
        ("proxy-connection", b"keep-alive"),
        ("Transfer-Encoding", b"chunked"),
        ("upgrade", b"h2c"),
        ("te", b"trailers"),
        ("content-length", b"0"),
        ("link", b"</a.css>\r\nx-injected: 1"),
        ("link", b"</a.css>\0"),
        ("bad name", b"x"),
        (":status", b"103"),
    ];
    for (name, value) in bad {
        let mut events = vec![SendEvent::early_hint(
            Headers::new().with("link", LINK).with(*name, *value),
        )];
        events.extend(ok_response());
        let p = probe(events, false, GET_CLOSE);
        assert_eq!(
            kinds(&p.results),
            ["invalid", "ok", "ok"],
            "{name}: {:?}",
            p.results
        );
        assert_eq!(
            p.wire,
            "HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\ndate: X\r\n\r\nok",
            "{name}"
        );
    }
    // The error names the field.
    let p = probe(
        vec![SendEvent::early_hint(Headers::new().with("Upgrade", "h2c"))],
        false,
        GET_CLOSE,
    );
    let msg = p.results[0].as_ref().unwrap_err().to_string();
    assert!(msg.contains("\"Upgrade\"") && msg.contains("103"), "{msg}");
}

#[test]
fn an_app_that_fails_after_a_hint_gets_the_500_after_the_103() {
    let p = probe(
        vec![hint(), SendEvent::body("x", false)],
        true,
        b"GET / HTTP/1.1\r\nHost: t\r\n\r\n",
    );
    assert_eq!(kinds(&p.results), ["ok", "order"], "{:?}", p.results);
    assert_eq!(p.wire, format!("{HINT_BYTES}{RESP_500}"));
    assert!(p.closed);
}

// ---------------------------------------------------------------------------------------------
// Timing and connection handling
// ---------------------------------------------------------------------------------------------

#[test]
fn the_103_is_on_the_wire_before_the_send_returns() {
    let (sent_tx, sent_rx) = mpsc::channel::<(Result<(), pagi::Error>, bool)>();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let go_rx = Arc::new(Mutex::new(go_rx));
    let app = http_app(move |s, _rx, tx| {
        let sent = sent_tx.clone();
        let go = go_rx.clone();
        async move {
            let r = tx.send(hint()).await;
            let started = s.connection.as_ref().unwrap().response_started();
            sent.send((r, started)).unwrap();
            // Block the (single) server thread: only what the send already wrote can arrive.
            let _ = go.lock().unwrap().recv_timeout(WAIT);
            for ev in ok_response() {
                tx.send(ev).await?;
            }
            Ok(())
        }
    });
    let srv = serve(app, cfg);
    let go_tx = go_tx;
    let mut s = srv.connect();
    s.write_all(GET_CLOSE).unwrap();
    let (r, started) = sent_rx.recv_timeout(WAIT).unwrap();
    assert!(r.is_ok(), "{r:?}");
    assert!(!started, "a 103 does not start the response");
    let got = read_until_suffix(&mut s, b"\r\n\r\n");
    assert_eq!(String::from_utf8_lossy(&got), HINT_BYTES);
    go_tx.send(()).unwrap();
    let (rest, _) = read_until_closed(&mut s, WAIT);
    assert_eq!(
        norm(&rest),
        "HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\ndate: X\r\n\r\nok"
    );
}

/// Hints, then a 200 whose body is the path (HEAD: none), on every request.
fn hinting_app() -> impl App {
    http_app(|s, _rx, tx| async move {
        tx.send(hint()).await?;
        let body = s.path.to_string();
        let len = body.len().to_string();
        tx.send(SendEvent::start(
            200,
            Headers::new().with("content-length", len),
        ))
        .await?;
        let body = if s.method == "HEAD" {
            String::new()
        } else {
            body
        };
        tx.send(SendEvent::body(body, false)).await?;
        Ok(())
    })
}

#[test]
fn keep_alive_and_head_are_unaffected() {
    let srv = serve(hinting_app(), cfg);
    let mut s = srv.connect();
    // Two pipelined requests, then a HEAD: every one gets its 103 then its final response, on
    // one connection.
    s.write_all(b"GET /one HTTP/1.1\r\nHost: t\r\n\r\nGET /two HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let got = read_until_suffix(&mut s, b"/two");
    assert_eq!(
        norm(&got),
        format!(
            "{HINT_BYTES}HTTP/1.1 200 OK\r\ncontent-length: 4\r\ndate: X\r\n\r\n/one\
             {HINT_BYTES}HTTP/1.1 200 OK\r\ncontent-length: 4\r\ndate: X\r\n\r\n/two"
        )
    );
    s.write_all(b"HEAD /three HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .unwrap();
    let (got, closed) = read_until_closed(&mut s, WAIT);
    assert_eq!(
        norm(&got),
        format!(
            "{HINT_BYTES}HTTP/1.1 200 OK\r\ncontent-length: 6\r\nconnection: close\r\ndate: X\r\n\r\n"
        )
    );
    assert!(closed);
}

/// Hints, reads the whole body (when `read`), then answers with its length.
fn expect_app(read: bool) -> impl App {
    http_app(move |_s, rx, tx| async move {
        tx.send(hint()).await?;
        let mut n = 0;
        let mut more = read;
        while more {
            match rx.receive().await? {
                ReceiveEvent::HttpRequest { body, more: m } => {
                    n += body.len();
                    more = m;
                }
                _ => return Ok(()),
            }
        }
        let body = n.to_string();
        let len = body.len().to_string();
        tx.send(SendEvent::start(
            200,
            Headers::new().with("content-length", len),
        ))
        .await?;
        tx.send(SendEvent::body(body, false)).await?;
        Ok(())
    })
}

const EXPECT: &[u8] =
    b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n";

#[test]
fn expect_100_continue_still_gets_its_100_after_the_103() {
    let srv = serve(expect_app(true), cfg);
    let mut s = srv.connect();
    s.write_all(EXPECT).unwrap();
    let got = read_until_suffix(&mut s, b"HTTP/1.1 100 Continue\r\n\r\n");
    assert_eq!(
        String::from_utf8_lossy(&got),
        format!("{HINT_BYTES}HTTP/1.1 100 Continue\r\n\r\n")
    );
    s.write_all(b"hello").unwrap();
    let got = read_until_suffix(&mut s, b"\r\n\r\n5");
    // Kept alive: the body was read, so the connection is in sync.
    assert_eq!(
        norm(&got),
        "HTTP/1.1 200 OK\r\ncontent-length: 1\r\ndate: X\r\n\r\n5"
    );
    s.write_all(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi")
        .unwrap();
    let (got, closed) = read_until_closed(&mut s, WAIT);
    assert_eq!(
        norm(&got),
        format!("{HINT_BYTES}HTTP/1.1 200 OK\r\ncontent-length: 1\r\nconnection: close\r\ndate: X\r\n\r\n2")
    );
    assert!(closed);
}

#[test]
fn expect_100_continue_never_asked_for_still_closes_after_the_response() {
    let srv = serve(expect_app(false), cfg);
    let mut s = srv.connect();
    s.write_all(EXPECT).unwrap();
    let (got, closed) = read_until_closed(&mut s, WAIT);
    // The 103 is no answer to the expectation: no 100, and the final response says close.
    assert_eq!(
        norm(&got),
        format!("{HINT_BYTES}HTTP/1.1 200 OK\r\ncontent-length: 1\r\nconnection: close\r\ndate: X\r\n\r\n0")
    );
    assert!(closed);
}

#[test]
fn sse_scopes_do_not_advertise_it_and_refuse_it() {
    let (tx_out, rx_out) = mpsc::channel();
    let app = move |scope: Scope, _rx: Receiver, tx: Sender| {
        let out = tx_out.clone();
        async move {
            let Scope::Sse(s) = scope else {
                return Err::<(), BoxError>("expected an sse scope".into());
            };
            let r = tx.send(hint()).await;
            out.send((s.extensions.early_hint, r)).unwrap();
            tx.send(SendEvent::SseHttpResponseStart {
                status: 204,
                headers: Headers::new(),
            })
            .await?;
            tx.send(SendEvent::SseHttpResponseBody(Default::default()))
                .await?;
            Ok(())
        }
    };
    let srv = serve(app, cfg);
    let mut s = srv.connect();
    s.write_all(b"GET / HTTP/1.1\r\nHost: t\r\nAccept: text/event-stream\r\n\r\n")
        .unwrap();
    let (advertised, r) = rx_out.recv_timeout(WAIT).unwrap();
    assert!(!advertised);
    assert!(r.as_ref().is_err_and(|e| e.is_unsupported()), "{r:?}");
    let (got, _) = read_until_closed(&mut s, Duration::from_secs(2));
    let got = norm(&got);
    assert!(got.starts_with("HTTP/1.1 204 No Content\r\n"), "{got}");
    assert!(!got.contains("103"), "{got}");
}

// ---------------------------------------------------------------------------------------------
// Real clients against the demo route
// ---------------------------------------------------------------------------------------------

#[test]
fn demo_route_over_a_raw_socket() {
    let srv = serve(pagi_server::demo::app, cfg);
    let resp = srv.raw(b"GET /early-hints HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    let resp = norm(resp.as_bytes());
    let (hint, fin) = resp.split_once("\r\n\r\n").expect("two heads");
    assert_eq!(format!("{hint}\r\n\r\n"), HINT_BYTES);
    assert!(fin.starts_with("HTTP/1.1 200 OK\r\n"), "{fin}");
    assert!(
        fin.contains("\r\nlink: </style.css>; rel=preload; as=style\r\n"),
        "{fin}"
    );
    assert!(fin.ends_with("<link rel=\"stylesheet\" href=\"/style.css\">\n<p>The 103 before this page named /style.css.</p>\n"), "{fin}");
}

#[test]
fn curl_shows_the_103_with_its_link_then_the_200() {
    let srv = serve(pagi_server::demo::app, cfg);
    let out = Command::new("curl")
        .args(["--silent", "--show-error", "--max-time", "10", "-i"])
        .arg(srv.url("/early-hints?ms=50"))
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("this test needs the `curl` client ({e}); install curl"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = norm(&out.stdout);
    assert!(
        text.starts_with(HINT_BYTES),
        "curl -i prints the informational response first: {text}"
    );
    let fin = &text[HINT_BYTES.len()..];
    assert!(fin.starts_with("HTTP/1.1 200 OK\r\n"), "{fin}");
    assert!(fin.contains("\r\ncontent-length: 135\r\n"), "{fin}");
    assert!(fin.ends_with("/style.css.</p>\n"), "{fin}");
    // The HTTP/1.0 client sees no 103.
    let out = Command::new("curl")
        .args([
            "--silent",
            "--show-error",
            "--max-time",
            "10",
            "-i",
            "--http1.0",
        ])
        .arg(srv.url("/early-hints"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(out.stdout.starts_with(b"HTTP/1.1 200 OK\r\n"));
}

#[test]
fn python_httpx_skips_the_103_and_reads_the_200() {
    let ok = Command::new("python3")
        .args(["-c", "import httpx"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        assert!(
            std::env::var_os("CI").is_none(),
            "python3 with the `httpx` package is required when CI is set (pip install httpx)"
        );
        eprintln!("SKIP: python3 with the `httpx` package is not available");
        return;
    }
    let srv = serve(pagi_server::demo::app, cfg);
    // Two requests on one pooled connection: the 103 must not desynchronise it.
    let script = r#"
import sys, httpx
with httpx.Client(timeout=10) as c:
    for _ in range(2):
        r = c.get(sys.argv[1])
        print(r.status_code, r.http_version, r.headers["link"], len(r.content))
"#;
    let out = Command::new("python3")
        .args(["-c", script, &srv.url("/early-hints")])
        .stdin(Stdio::null())
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = "200 HTTP/1.1 </style.css>; rel=preload; as=style 135\n";
    assert_eq!(String::from_utf8_lossy(&out.stdout), line.repeat(2));
}

// ---------------------------------------------------------------------------------------------
// HTTP/2
// ---------------------------------------------------------------------------------------------

/// Sends GET `path` with the `h2` client; returns the informational responses (status and
/// fields, in order), then the final status, its fields and the body.
async fn h2_get(
    srv: &TestServer,
    path: &str,
) -> (Vec<(u16, http::HeaderMap)>, u16, http::HeaderMap, Vec<u8>) {
    let tcp = tokio::net::TcpStream::connect(srv.addr()).await.unwrap();
    let (c, conn) = h2::client::handshake(tcp).await.expect("h2 handshake");
    let conn = tokio::spawn(conn);
    let mut c = c.ready().await.unwrap();
    let req = http::Request::get(format!("http://t{path}"))
        .body(())
        .unwrap();
    let (mut resp, _) = c.send_request(req, true).unwrap();
    let mut infos = Vec::new();
    let fin = tokio::time::timeout(WAIT, async {
        loop {
            match std::future::poll_fn(|cx| resp.poll_informational(cx)).await {
                Some(Ok(r)) => infos.push((r.status().as_u16(), r.headers().clone())),
                Some(Err(e)) => panic!("{e}"),
                None => break,
            }
        }
        resp.await.unwrap()
    })
    .await
    .expect("a response in time");
    let (parts, mut body) = fin.into_parts();
    let mut bytes = Vec::new();
    while let Some(d) = body.data().await {
        bytes.extend_from_slice(&d.unwrap());
    }
    conn.abort();
    (infos, parts.status.as_u16(), parts.headers, bytes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn http2_hints_are_103_headers_before_the_response() {
    let (tx_out, rx_out) = mpsc::channel();
    let tx_out = Arc::new(Mutex::new(tx_out));
    let app = http_app(move |s, _rx, tx| {
        let out = tx_out.clone();
        async move {
            let mut results = vec![s.extensions.early_hint.to_string()];
            let first = Headers::new().with("Link", LINK).with("X-Hint", "one");
            results.push(format!("{:?}", tx.send(SendEvent::early_hint(first)).await));
            let refused = Headers::new().with("transfer-encoding", "chunked");
            let r = tx.send(SendEvent::early_hint(refused)).await;
            results.push(format!("invalid {}", r.is_err_and(|e| e.is_invalid())));
            results.push(format!("{:?}", tx.send(hint()).await));
            for e in ok_response() {
                tx.send(e).await?;
            }
            let r = tx.send(hint()).await;
            results.push(format!(
                "out of order {}",
                r.is_err_and(|e| e.is_out_of_order())
            ));
            out.lock().unwrap().send(results).unwrap();
            Ok(())
        }
    });
    let srv = serve(app, cfg);
    let (infos, status, headers, body) = h2_get(&srv, "/").await;
    assert_eq!(
        rx_out.recv_timeout(WAIT).unwrap(),
        [
            "true",
            "Ok(())",
            "invalid true",
            "Ok(())",
            "out of order true"
        ]
    );
    assert_eq!(infos.len(), 2, "{infos:?}");
    assert_eq!(infos[0].0, 103);
    let fields: Vec<(&str, &str)> = infos[0]
        .1
        .iter()
        .map(|(n, v)| (n.as_str(), v.to_str().unwrap()))
        .collect();
    assert_eq!(
        fields,
        [("link", LINK), ("x-hint", "one")],
        "names lowercased"
    );
    assert_eq!(infos[1].0, 103);
    assert_eq!(infos[1].1["link"], LINK);
    assert_eq!(infos[1].1.len(), 1);
    assert_eq!(status, 200);
    assert_eq!(headers["content-length"], "2");
    assert_eq!(body, b"ok");
}

#[test]
fn nghttp_shows_the_103_headers_without_end_stream_then_200_then_data() {
    let ok = Command::new("nghttp")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        assert!(
            std::env::var_os("CI").is_none(),
            "nghttp is required when CI is set (apt-get install nghttp2-client)"
        );
        eprintln!("SKIP: nghttp is not installed");
        return;
    }
    let srv = serve(pagi_server::demo::app, cfg);
    let out = Command::new("nghttp")
        .args(["-v", &srv.url("/early-hints?ms=20")])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    // nghttp prints a HEADERS frame's fields, then the frame; keep the stream-13 lines.
    let lines: Vec<String> = text
        .lines()
        .filter_map(|l| l.split_once("] ").map(|(_, rest)| rest))
        .filter(|l| l.starts_with("recv") && l.contains("stream_id=13"))
        .filter(|l| !l.contains(" date: ") && !l.contains(" server: "))
        .map(|l| match l.split_once("<length=") {
            // A HEADERS frame's length depends on HPACK's state; its flags are the point.
            Some((head, rest)) if head.contains("HEADERS") => {
                format!("{head}<{}", rest.split_once(", ").map_or(rest, |r| r.1))
            }
            _ => l.to_owned(),
        })
        .collect();
    assert_eq!(
        lines,
        [
            "recv (stream_id=13) :status: 103",
            "recv (stream_id=13) link: </style.css>; rel=preload; as=style",
            "recv HEADERS frame <flags=0x04, stream_id=13>",
            "recv (stream_id=13) :status: 200",
            "recv (stream_id=13) content-type: text/html; charset=utf-8",
            "recv (stream_id=13) link: </style.css>; rel=preload; as=style",
            "recv (stream_id=13) content-length: 135",
            "recv HEADERS frame <flags=0x04, stream_id=13>",
            "recv DATA frame <length=135, flags=0x01, stream_id=13>",
        ],
        "{text}"
    );
}

#[test]
fn python_h2_raw_sees_the_103_frame() {
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
    let srv = serve(pagi_server::demo::app, cfg);
    let script = r#"
import socket, sys
import h2.connection, h2.config, h2.events
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
c.initiate_connection()
c.send_headers(1, [(":method", "GET"), (":scheme", "http"), (":path", "/early-hints"),
                   (":authority", "t")], end_stream=True)
s.sendall(c.data_to_send())
done = False
while not done:
    data = s.recv(65536)
    if not data:
        break
    for e in c.receive_data(data):
        if isinstance(e, h2.events.InformationalResponseReceived):
            print("informational", dict(e.headers)[":status"], dict(e.headers)["link"])
        elif isinstance(e, h2.events.ResponseReceived):
            print("response", dict(e.headers)[":status"], e.stream_ended is not None)
        elif isinstance(e, h2.events.DataReceived):
            c.acknowledge_received_data(e.flow_controlled_length, 1)
            print("data", len(e.data))
        elif isinstance(e, h2.events.StreamEnded):
            print("ended")
            done = True
    s.sendall(c.data_to_send())
"#;
    let out = Command::new("python3")
        .args(["-c", script, &srv.addr().port().to_string()])
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
        "informational 103 </style.css>; rel=preload; as=style\nresponse 200 False\ndata 135\nended\n"
    );
}
