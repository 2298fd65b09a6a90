//! The `sse` scope over HTTP/1.x: detection, the event-stream wire format, keepalives, close,
//! decline, disconnect, and the errors `send` reports. Raw sockets, exact bytes.

mod common;
use common::*;

use pagi::{
    App, BoxError, DisconnectReason, Headers, ReceiveEvent, Receiver, ResponseBody, Scope,
    SendEvent, Sender,
};
use pagi_server::{Config, LifespanMode};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(5);

fn cfg(c: &mut Config) {
    c.lifespan = LifespanMode::Off;
    c.server_header = None;
}

/// Runs `events` on every sse scope; reports the scope type, each send's outcome, and what
/// `receive` returned afterwards (if `then_receive`).
#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<String>>>);

impl Log {
    fn push(&self, s: impl Into<String>) {
        self.0.lock().unwrap().push(s.into());
    }
    fn wait_for(&self, n: usize) -> Vec<String> {
        let end = Instant::now() + WAIT;
        loop {
            let v = self.0.lock().unwrap().clone();
            if v.len() >= n || Instant::now() > end {
                return v;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

fn scripted(events: Vec<SendEvent>, log: Log, then_receive: usize) -> impl App {
    move |scope: Scope, rx: Receiver, tx: Sender| {
        let events = events.clone();
        let log = log.clone();
        async move {
            log.push(format!("scope {}", scope.kind()));
            for ev in events {
                let kind = ev.kind();
                match tx.send(ev).await {
                    Ok(()) => log.push(format!("{kind} ok")),
                    Err(e) => log.push(format!("{kind} err {}", err_kind(&e))),
                }
            }
            for _ in 0..then_receive {
                let ev = rx.receive().await?;
                log.push(serde_json::to_string(&ev)?);
            }
            Ok::<(), BoxError>(())
        }
    }
}

fn err_kind(e: &pagi::Error) -> &'static str {
    if e.is_invalid() {
        "Invalid"
    } else if e.is_out_of_order() {
        "OutOfOrder"
    } else if e.is_unsupported() {
        "Unsupported"
    } else {
        "Other"
    }
}

fn get(s: &mut TcpStream, extra: &str) {
    write!(
        s,
        "GET /events HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n{extra}\r\n"
    )
    .unwrap();
}

/// Reads until `suffix` has arrived (or WAIT passes); returns everything read.
fn read_until(s: &mut TcpStream, suffix: &[u8]) -> Vec<u8> {
    s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    let end = Instant::now() + WAIT;
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while !out.ends_with(suffix) && Instant::now() < end {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(_) => {}
        }
    }
    out
}

/// Replaces the `date:` line's value so heads compare exactly.
fn norm(raw: &[u8]) -> String {
    let s = String::from_utf8_lossy(raw).into_owned();
    s.lines()
        .map(|l| {
            if l.to_ascii_lowercase().starts_with("date: ") {
                "date: D\r"
            } else {
                l
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

const STREAM_HEAD: &str =
    "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n\
x-accel-buffering: no\r\ntransfer-encoding: chunked\r\ndate: D\r\n\r\n";

fn send_ev(event: Option<&str>, data: &str, id: Option<&str>, retry: Option<u64>) -> SendEvent {
    SendEvent::SseSend {
        event: event.map(Into::into),
        data: data.into(),
        id: id.map(Into::into),
        retry,
    }
}

#[test]
fn event_stream_bytes_on_the_wire() {
    let log = Log::default();
    let srv = serve(
        scripted(
            vec![
                SendEvent::SseStart {
                    status: 200,
                    headers: Headers::new(),
                },
                send_ev(Some("tick"), "line 1\nline 2", Some("7"), Some(2500)),
                SendEvent::SseComment {
                    comment: "just a note".into(),
                },
                send_ev(None, "", None, None),
                SendEvent::SseClose {
                    reason: "done".into(),
                },
            ],
            log.clone(),
            0,
        ),
        cfg,
    );
    let mut s = srv.connect();
    get(&mut s, "");
    let got = read_until(&mut s, b"0\r\n\r\n");
    let want = format!(
        "{STREAM_HEAD}{:x}\r\nevent: tick\nid: 7\nretry: 2500\ndata: line 1\ndata: line 2\n\n\r\n\
         d\r\n:just a note\n\r\n8\r\ndata: \n\n\r\n0\r\n\r\n",
        "event: tick\nid: 7\nretry: 2500\ndata: line 1\ndata: line 2\n\n".len()
    );
    assert_eq!(norm(&got), norm(want.as_bytes()));
    assert_eq!(
        log.wait_for(6),
        [
            "scope sse",
            "sse.start ok",
            "sse.send ok",
            "sse.comment ok",
            "sse.send ok",
            "sse.close ok"
        ]
    );
    // The stream ended cleanly: the connection is reusable for a plain request.
    write!(s, "GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let (head, _) = read_response(&mut s);
    assert_eq!(
        status(&head),
        500,
        "the scripted app sends nothing on http: {head}"
    );
}

#[test]
fn accept_detection_is_by_media_type() {
    let log = Log::default();
    let srv = serve(scripted(vec![], log.clone(), 0), cfg);
    for (accept, want) in [
        ("text/event-stream", "scope sse"),
        ("TEXT/Event-Stream; charset=utf-8", "scope sse"),
        ("text/html, text/event-stream;q=0.9", "scope sse"),
        ("text/event-streams", "scope http"),
        ("text/html", "scope http"),
    ] {
        log.0.lock().unwrap().clear();
        let _ = srv.raw(format!("POST /x HTTP/1.1\r\nHost: x\r\nAccept: {accept}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").as_bytes());
        assert_eq!(log.wait_for(1), [want], "{accept}");
    }
}

#[test]
fn http_1_0_stream_is_close_delimited() {
    let srv = serve(
        scripted(
            vec![
                SendEvent::SseStart {
                    status: 200,
                    headers: Headers::new()
                        .with("content-type", "text/event-stream; charset=utf-8"),
                },
                send_ev(None, "hi", None, None),
                SendEvent::SseClose {
                    reason: String::new(),
                },
            ],
            Log::default(),
            0,
        ),
        cfg,
    );
    let got = srv.raw(b"GET / HTTP/1.0\r\nAccept: text/event-stream\r\n\r\n");
    assert_eq!(
        norm(got.as_bytes()),
        norm(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream; charset=utf-8\r\ncache-control: no-cache\r\n\
x-accel-buffering: no\r\nconnection: close\r\ndate: D\r\n\r\ndata: hi\n\n")
    );
}

#[test]
fn crlf_in_event_or_id_fails_the_send_and_writes_nothing() {
    let log = Log::default();
    let srv = serve(
        scripted(
            vec![
                SendEvent::SseStart {
                    status: 200,
                    headers: Headers::new(),
                },
                send_ev(Some("a\nb"), "x", None, None),
                send_ev(None, "x", Some("1\r2"), None),
                send_ev(Some("ok"), "fine", None, None),
                SendEvent::SseClose {
                    reason: String::new(),
                },
            ],
            log.clone(),
            0,
        ),
        cfg,
    );
    let mut s = srv.connect();
    get(&mut s, "");
    let got = read_until(&mut s, b"0\r\n\r\n");
    let want = format!("{STREAM_HEAD}16\r\nevent: ok\ndata: fine\n\n\r\n0\r\n\r\n");
    assert_eq!(norm(&got), norm(want.as_bytes()));
    assert_eq!(
        log.wait_for(6)[1..],
        [
            "sse.start ok",
            "sse.send err Invalid",
            "sse.send err Invalid",
            "sse.send ok",
            "sse.close ok"
        ]
    );
}

#[test]
fn order_rules_first_send_wins_and_close_is_idempotent() {
    let log = Log::default();
    let srv = serve(
        scripted(
            vec![
                send_ev(None, "too early", None, None),
                SendEvent::SseStart {
                    status: 200,
                    headers: Headers::new(),
                },
                SendEvent::SseHttpResponseStart {
                    status: 200,
                    headers: Headers::new(),
                },
                SendEvent::start(200, Headers::new()),
                SendEvent::SseStart {
                    status: 200,
                    headers: Headers::new(),
                },
                SendEvent::SseClose {
                    reason: String::new(),
                },
                SendEvent::SseClose {
                    reason: String::new(),
                },
                send_ev(None, "too late", None, None),
            ],
            log.clone(),
            1,
        ),
        cfg,
    );
    let mut s = srv.connect();
    get(&mut s, "");
    let got = read_until(&mut s, b"0\r\n\r\n");
    assert_eq!(
        norm(&got),
        norm(format!("{STREAM_HEAD}0\r\n\r\n").as_bytes())
    );
    assert_eq!(
        log.wait_for(10)[1..],
        [
            "sse.send err OutOfOrder",
            "sse.start ok",
            "sse.http.response.start err OutOfOrder",
            "http.response.start err Unsupported",
            "sse.start err OutOfOrder",
            "sse.close ok",
            "sse.close ok",
            "sse.send err OutOfOrder",
            r#"{"type":"sse.disconnect","reason":"x-closed"}"#,
        ]
    );
}

#[test]
fn decline_sends_a_plain_response_and_closes() {
    let log = Log::default();
    let mut body = ResponseBody::default();
    body.bytes = "no stream for you".into();
    let srv = serve(
        scripted(
            vec![
                SendEvent::SseHttpResponseStart {
                    status: 204,
                    headers: Headers::new().with("x-why", "gone"),
                },
                SendEvent::SseHttpResponseBody(ResponseBody::default()),
                SendEvent::SseStart {
                    status: 200,
                    headers: Headers::new(),
                },
            ],
            log.clone(),
            0,
        ),
        cfg,
    );
    let got = srv.raw(b"GET / HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n");
    assert_eq!(
        norm(got.as_bytes()),
        norm(b"HTTP/1.1 204 No Content\r\nx-why: gone\r\nconnection: close\r\ndate: D\r\n\r\n")
    );
    assert_eq!(
        log.wait_for(4)[1..],
        [
            "sse.http.response.start ok",
            "sse.http.response.body ok",
            "sse.start err OutOfOrder"
        ]
    );
    let srv = serve(
        scripted(
            vec![
                SendEvent::SseHttpResponseStart {
                    status: 403,
                    headers: Headers::new(),
                },
                SendEvent::SseHttpResponseBody(body),
            ],
            Log::default(),
            0,
        ),
        cfg,
    );
    let got = srv.raw(b"GET / HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n");
    assert_eq!(
        norm(got.as_bytes()),
        norm(b"HTTP/1.1 403 Forbidden\r\ncontent-length: 17\r\nconnection: close\r\ndate: D\r\n\r\nno stream for you")
    );
}

#[test]
fn app_that_never_starts_gets_500() {
    let srv = serve(scripted(vec![], Log::default(), 0), cfg);
    let got = srv.raw(b"GET / HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n");
    assert_eq!(status(&got), 500, "{got}");
}

#[test]
fn request_body_arrives_as_sse_request() {
    let log = Log::default();
    let srv = serve(
        scripted(
            vec![SendEvent::SseStart {
                status: 200,
                headers: Headers::new(),
            }],
            log.clone(),
            1,
        ),
        cfg,
    );
    let mut s = srv.connect();
    s.write_all(b"POST / HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\nContent-Length: 5\r\n\r\nhello")
        .unwrap();
    assert_eq!(
        log.wait_for(3)[2],
        r#"{"type":"sse.request","body":"hello","more":0}"#
    );
}

#[test]
fn keepalive_comment_when_quiet_and_last_setting_wins() {
    let srv = serve(
        |_scope: Scope, rx: Receiver, tx: Sender| async move {
            tx.send(SendEvent::SseStart {
                status: 200,
                headers: Headers::new(),
            })
            .await?;
            tx.send(SendEvent::SseKeepalive {
                interval: Duration::from_secs(60),
                comment: None,
            })
            .await?;
            tx.send(SendEvent::SseKeepalive {
                interval: Duration::from_millis(100),
                comment: Some("ka".into()),
            })
            .await?;
            // Wait for the client to go.
            loop {
                if let ReceiveEvent::SseDisconnect { .. } = rx.receive().await? {
                    return Ok::<(), BoxError>(());
                }
            }
        },
        cfg,
    );
    let mut s = srv.connect();
    get(&mut s, "");
    let t0 = Instant::now();
    let got = read_until(&mut s, b":ka\n\r\n4\r\n:ka\n\r\n");
    let took = t0.elapsed();
    assert_eq!(
        norm(&got),
        norm(format!("{STREAM_HEAD}4\r\n:ka\n\r\n4\r\n:ka\n\r\n").as_bytes())
    );
    assert!(
        took >= Duration::from_millis(180) && took < Duration::from_secs(2),
        "{took:?}"
    );
}

#[test]
fn client_disconnect_is_noticed_during_a_long_stream() {
    let (tx_done, rx_done) = mpsc::channel();
    let srv = serve(
        move |_scope: Scope, rx: Receiver, tx: Sender| {
            let done = tx_done.clone();
            async move {
                tx.send(SendEvent::SseStart {
                    status: 200,
                    headers: Headers::new(),
                })
                .await?;
                // A slow stream: one event, then wait for the next event from the server.
                tx.send(send_ev(None, "first", None, None)).await?;
                // The (empty) request body first, then the end of the stream.
                let mut ev2 = rx.receive().await?;
                while matches!(ev2, ReceiveEvent::SseRequest { .. }) {
                    ev2 = rx.receive().await?;
                }
                // Sends after the disconnect are no-ops.
                let after = tx.send(send_ev(None, "late", None, None)).await;
                let _ = done.send((ev2, after.is_ok()));
                Ok::<(), BoxError>(())
            }
        },
        cfg,
    );
    let mut s = srv.connect();
    get(&mut s, "");
    let _ = read_until(&mut s, b"data: first\n\n\r\n");
    let t0 = Instant::now();
    drop(s);
    let (ev, late_ok) = rx_done
        .recv_timeout(WAIT)
        .expect("app noticed the disconnect");
    assert!(t0.elapsed() < Duration::from_secs(1));
    assert_eq!(
        ev,
        ReceiveEvent::SseDisconnect {
            reason: DisconnectReason::ClientClosed
        }
    );
    assert!(late_ok);
}

#[test]
fn demo_clock_streams_ticks() {
    let srv = serve(pagi_server::demo::app, cfg);
    let mut s = srv.connect();
    write!(
        s,
        "GET /clock?ms=20&n=3 HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n"
    )
    .unwrap();
    let got = String::from_utf8(read_until(&mut s, b"0\r\n\r\n")).unwrap();
    assert!(got.starts_with("HTTP/1.1 200 OK\r\n"), "{got}");
    assert!(got.contains("\r\n:keepalive\n") || !got.contains(":keepalive"));
    for id in 0..3 {
        assert!(
            got.contains(&format!("event: tick\nid: {id}\ndata: ")),
            "{got}"
        );
    }
    assert!(got.ends_with("0\r\n\r\n"));
}

#[test]
fn returning_without_close_ends_the_stream_cleanly() {
    let srv = serve(
        scripted(
            vec![
                SendEvent::SseStart {
                    status: 200,
                    headers: Headers::new(),
                },
                send_ev(None, "bye", None, None),
            ],
            Log::default(),
            0,
        ),
        cfg,
    );
    let mut s = srv.connect();
    get(&mut s, "");
    let got = read_until(&mut s, b"0\r\n\r\n");
    let want = format!("{STREAM_HEAD}b\r\ndata: bye\n\n\r\n0\r\n\r\n");
    assert_eq!(norm(&got), norm(want.as_bytes()));
    // ... and the connection is still good for the next request.
    get(&mut s, "");
    let got = read_until(&mut s, b"0\r\n\r\n");
    assert_eq!(norm(&got), norm(want.as_bytes()));
}

#[test]
fn failed_start_can_be_retried() {
    let log = Log::default();
    let srv = serve(
        scripted(
            vec![
                SendEvent::SseStart {
                    status: 99,
                    headers: Headers::new(),
                },
                SendEvent::SseStart {
                    status: 200,
                    headers: Headers::new().with("bad name", "x"),
                },
                SendEvent::SseStart {
                    status: 200,
                    headers: Headers::new(),
                },
                SendEvent::SseClose {
                    reason: String::new(),
                },
            ],
            log.clone(),
            0,
        ),
        cfg,
    );
    let mut s = srv.connect();
    get(&mut s, "");
    let got = read_until(&mut s, b"0\r\n\r\n");
    assert_eq!(
        norm(&got),
        norm(format!("{STREAM_HEAD}0\r\n\r\n").as_bytes())
    );
    assert_eq!(
        log.wait_for(5)[1..],
        [
            "sse.start err Invalid",
            "sse.start err Invalid",
            "sse.start ok",
            "sse.close ok"
        ]
    );
}

#[test]
fn shutdown_ends_open_streams_and_tells_the_app() {
    let (tx_ev, rx_ev) = mpsc::channel();
    let srv = serve(
        move |_scope: Scope, rx: Receiver, tx: Sender| {
            let report = tx_ev.clone();
            async move {
                tx.send(SendEvent::SseStart {
                    status: 200,
                    headers: Headers::new(),
                })
                .await?;
                loop {
                    let ev = rx.receive().await?;
                    if let ReceiveEvent::SseDisconnect { .. } = ev {
                        // Sends after the end are no-ops.
                        let after = tx.send(send_ev(None, "late", None, None)).await;
                        let _ = report.send((ev, after.is_ok()));
                        return Ok::<(), BoxError>(());
                    }
                }
            }
        },
        cfg,
    );
    let mut s = srv.connect();
    get(&mut s, "");
    let head = read_until(&mut s, b"\r\n\r\n");
    assert!(head.starts_with(b"HTTP/1.1 200 OK\r\n"));
    let t0 = Instant::now();
    srv.handle().shutdown();
    let (ev, late_ok) = rx_ev.recv_timeout(WAIT).expect("the app is told");
    assert_eq!(
        ev,
        ReceiveEvent::SseDisconnect {
            reason: DisconnectReason::ServerShutdown
        }
    );
    assert!(late_ok);
    let rest = read_until(&mut s, b"0\r\n\r\n");
    assert_eq!(&rest[..], b"0\r\n\r\n");
    assert!(t0.elapsed() < Duration::from_secs(2));
    srv.stop().expect("clean stop");
}

#[test]
fn connect_is_never_an_event_stream_nor_a_tunnel() {
    let log = Log::default();
    let srv = serve(
        scripted(
            vec![
                SendEvent::start(200, Headers::new()),
                SendEvent::start(405, Headers::new()),
                SendEvent::body("no tunnels", false),
            ],
            log.clone(),
            0,
        ),
        cfg,
    );
    let got = srv.raw(
        b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\nAccept: text/event-stream\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status(&got), 405, "{got}");
    assert!(!got.contains("transfer-encoding"), "{got}");
    assert_eq!(
        log.wait_for(4),
        [
            "scope http",
            "http.response.start err Unsupported",
            "http.response.start ok",
            "http.response.body ok"
        ]
    );
}
