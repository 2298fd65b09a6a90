//! The middleware driven with a fake server: in-memory `Source`/`Sink`, a temp file as output,
//! and a fixed clock.

use super::*;
use futures::executor::block_on;
use futures::FutureExt;
use pagi::{
    ConnectionInfo, DisconnectReason, LifespanScope, Message, Method, ReceiveEvent, Scheme, Sink,
    Source, State,
};
use std::collections::VecDeque;
use std::panic::AssertUnwindSafe;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::UNIX_EPOCH;

// ---- fakes -------------------------------------------------------------------------------

/// Takes every event except those `refuse` picks, which fail (out of order).
struct FakeSink {
    refuse: fn(&SendEvent) -> bool,
}

impl Sink for FakeSink {
    fn poll_send(
        &self,
        _cx: &mut Context<'_>,
        event: &mut Option<SendEvent>,
    ) -> Poll<Result<(), Error>> {
        match event.take() {
            Some(e) if (self.refuse)(&e) => {
                *event = Some(e);
                Poll::Ready(Err(Error::out_of_order("refused by the fake")))
            }
            _ => Poll::Ready(Ok(())),
        }
    }
}

/// Yields `events`, then `last` forever.
struct FakeSource {
    events: Mutex<VecDeque<ReceiveEvent>>,
    last: ReceiveEvent,
}

impl Source for FakeSource {
    fn poll_receive(&self, _cx: &mut Context<'_>) -> Poll<Result<ReceiveEvent, Error>> {
        let next = self.events.lock().unwrap().pop_front();
        Poll::Ready(Ok(next.unwrap_or_else(|| self.last.clone())))
    }
}

/// `pagi.connection` whose client leaves when the test says so.
struct FakeConn(AtomicBool);

impl ConnectionInfo for FakeConn {
    fn is_connected(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
    fn disconnect_reason(&self) -> Option<DisconnectReason> {
        (!self.is_connected()).then_some(DisconnectReason::ClientClosed)
    }
    fn poll_disconnect(&self, _cx: &mut Context<'_>) -> Poll<DisconnectReason> {
        match self.disconnect_reason() {
            Some(r) => Poll::Ready(r),
            None => Poll::Pending,
        }
    }
    fn response_started(&self) -> bool {
        false
    }
    fn response_complete(&self) -> Option<bool> {
        None
    }
}

fn accept_all(_: &SendEvent) -> bool {
    false
}

fn channels(scope: &Scope, refuse: fn(&SendEvent) -> bool) -> (Receiver, Sender) {
    let (events, last) = match scope {
        Scope::Websocket(_) => (
            vec![
                ReceiveEvent::WebsocketConnect,
                ReceiveEvent::WebsocketReceive(Message::Text("hi".into())),
            ],
            ReceiveEvent::WebsocketDisconnect {
                code: 1000,
                reason: String::new(),
            },
        ),
        Scope::Sse(_) => (
            vec![ReceiveEvent::SseRequest {
                body: Bytes::new(),
                more: false,
            }],
            ReceiveEvent::SseDisconnect {
                reason: DisconnectReason::ClientClosed,
            },
        ),
        _ => (
            vec![ReceiveEvent::HttpRequest {
                body: Bytes::new(),
                more: false,
            }],
            ReceiveEvent::HttpDisconnect,
        ),
    };
    let source = FakeSource {
        events: Mutex::new(events.into()),
        last,
    };
    (
        Receiver::new(Arc::new(source)),
        Sender::new(Arc::new(FakeSink { refuse })),
    )
}

/// Runs one call to completion with a fake server.
fn call<A: App>(app: &A, scope: Scope) -> Result<(), BoxError> {
    call_refusing(app, scope, accept_all)
}

fn call_refusing<A: App>(
    app: &A,
    scope: Scope,
    refuse: fn(&SendEvent) -> bool,
) -> Result<(), BoxError> {
    let (rx, tx) = channels(&scope, refuse);
    block_on(app.call(scope, rx, tx))
}

// ---- output --------------------------------------------------------------------------------

fn temp_path(name: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let n = N.fetch_add(1, Ordering::SeqCst);
    let file = format!("pagi-access-log-{}-{name}-{n}.log", std::process::id());
    std::env::temp_dir().join(file)
}

/// 10/Oct/2000:13:55:36.250 UTC; every call lasts 1.234567 s.
fn fixed_clock() -> Clock {
    Clock::Fixed {
        start: UNIX_EPOCH + Duration::from_millis(971_186_136_250),
        elapsed: Duration::from_micros(1_234_567),
    }
}

fn fixed_log(spec: &str, path: &Path) -> AccessLog {
    let options = Options {
        clock: fixed_clock(),
        ..Options::default()
    };
    AccessLog::with_options(
        Format::parse(spec).unwrap(),
        Output::File(path.into()),
        options,
    )
    .unwrap()
}

/// Drops the log and every app built from it (which writes the queue out), then reads and
/// removes the file.
fn finish(log: AccessLog, apps: impl Sized, path: &Path) -> String {
    drop(apps);
    drop(log);
    let text = std::fs::read_to_string(path).unwrap();
    let _ = std::fs::remove_file(path);
    text
}

/// Waits (at most 5 s) until the file at `path` holds `lines` lines.
fn wait_for_lines(path: &Path, lines: usize) -> String {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if text.lines().count() >= lines || Instant::now() > deadline {
            return text;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

// ---- scopes and apps -----------------------------------------------------------------------

fn sample() -> HttpScope {
    let mut s = HttpScope::new(Method::GET, "/search");
    s.query_string = Bytes::from_static(b"q=pagi&page=2");
    s.client = Some("192.0.2.7:51000".parse().unwrap());
    s.headers = Headers::new()
        .with("host", "example.com")
        .with("referer", "https://example.com/")
        .with("user-agent", "Mozilla/5.0 (X11)")
        .with("x-request-id", "r-42");
    s
}

/// Reads the body, answers 200 with two set-cookie fields and `hello world` in two pieces.
async fn hello(_scope: Scope, rx: Receiver, tx: Sender) -> Result<(), BoxError> {
    while let ReceiveEvent::HttpRequest { more: true, .. } = rx.receive().await? {}
    let headers = Headers::new()
        .with("content-type", "text/plain")
        .with("set-cookie", "a=1")
        .with("Set-Cookie", "b=2");
    tx.send(SendEvent::start(200, headers)).await?;
    tx.send(SendEvent::body("hello ", true)).await?;
    tx.send(SendEvent::body("world", false)).await?;
    Ok(())
}

// ---- tests ---------------------------------------------------------------------------------

#[test]
fn each_preset_logs_the_sample_request_exactly() {
    let cases = [
        (
            "clf",
            r#"192.0.2.7 - - [10/Oct/2000:13:55:36 +0000] "GET /search?q=pagi&page=2 HTTP/1.1" 200 11"#,
        ),
        (
            "common",
            r#"192.0.2.7 - - [10/Oct/2000:13:55:36 +0000] "GET /search?q=pagi&page=2 HTTP/1.1" 200 11"#,
        ),
        (
            "combined",
            r#"192.0.2.7 - - [10/Oct/2000:13:55:36 +0000] "GET /search?q=pagi&page=2 HTTP/1.1" 200 11 "https://example.com/" "Mozilla/5.0 (X11)""#,
        ),
        ("tiny", "GET /search?q=pagi&page=2 200 11 1234ms"),
        (
            "json",
            concat!(
                r#"{"time":"2000-10-10T13:55:36.250Z","type":"http","client":"192.0.2.7","#,
                r#""method":"GET","path":"/search","query":"q=pagi&page=2","protocol":"HTTP/1.1","#,
                r#""status":200,"bytes":11,"duration_ms":1234.567,"#,
                r#""referer":"https://example.com/","user_agent":"Mozilla/5.0 (X11)"}"#
            ),
        ),
    ];
    for (preset, expect) in cases {
        let path = temp_path(preset);
        let log = fixed_log(preset, &path);
        let app = log.layer(hello);
        call(&app, Scope::Http(sample())).unwrap();
        assert_eq!(finish(log, app, &path), format!("{expect}\n"), "{preset}");
    }
}

#[test]
fn early_hints_pass_through_and_are_not_the_logged_response() {
    let path = temp_path("early-hint");
    let log = fixed_log("%s %B %{link}o %{content-type}o", &path);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let seen_app = seen.clone();
    let app = log.layer(move |_s: Scope, _rx: Receiver, tx: Sender| {
        let seen = seen_app.clone();
        async move {
            let hint = SendEvent::early_hint(
                Headers::new().with("link", "</style.css>; rel=preload; as=style"),
            );
            let first = tx.send(hint.clone()).await.is_ok();
            let second = tx.send(hint).await.is_ok();
            seen.lock().unwrap().extend([first, second]);
            let headers = Headers::new().with("content-type", "text/html");
            tx.send(SendEvent::start(200, headers)).await?;
            tx.send(SendEvent::body("ok", false)).await?;
            Ok::<(), BoxError>(())
        }
    });
    call(&app, Scope::Http(sample())).unwrap();
    assert_eq!(
        *seen.lock().unwrap(),
        [true, true],
        "the hints reached the server"
    );
    // The final response's status and fields are logged, not the 103's.
    assert_eq!(finish(log, app, &path), "200 2 - text/html\n");
}

#[test]
fn custom_atoms_and_header_atoms() {
    let path = temp_path("custom");
    let spec = "%{X-Request-Id}i|%{content-type}o|%{set-cookie}o|%{x-none}i|%{x-none}o|%S %H %m %U%q %T %D %M %d %L %B %%";
    let log = fixed_log(spec, &path);
    let app = log.layer(hello);
    call(&app, Scope::Http(sample())).unwrap();
    assert_eq!(
        finish(log, app, &path),
        "r-42|text/plain|a=1, b=2|-|-|http HTTP/1.1 GET /search?q=pagi&page=2 1 1234567 1234 1.234 1.234567 11 %\n"
    );
}

#[test]
fn request_values_are_escaped_exactly() {
    let path = temp_path("escape");
    let log = fixed_log(r#"%h "%r" "%a" "%{x-note}i" "%{x-out}o""#, &path);
    let app = log.layer(|_s: Scope, _rx: Receiver, tx: Sender| async move {
        let headers = Headers::new().with("x-out", Bytes::from_static(b"\x1b]0;pwned\x07"));
        tx.send(SendEvent::start(200, headers)).await?;
        tx.send(SendEvent::body("", false)).await?;
        Ok::<(), BoxError>(())
    });
    let mut s = sample();
    s.raw_path = Bytes::from_static(b"/\x1b[2J\"quoted\"\\x");
    s.query_string = Bytes::from_static(b"a=\xff\n");
    s.headers = Headers::new()
        .with(
            "user-agent",
            Bytes::from_static(b"ua\" \"fake\" 200 0\r\n10.0.0.1"),
        )
        .with("x-note", Bytes::from_static(b"tab\there\x00\x7f"));
    call(&app, Scope::Http(s)).unwrap();
    let text = finish(log, app, &path);
    assert_eq!(
        text,
        concat!(
            r#"192.0.2.7 "GET /\x1B[2J\"quoted\"\\x?a=\xFF\x0A HTTP/1.1" "#,
            r#""ua\" \"fake\" 200 0\x0D\x0A10.0.0.1" "tab\x09here\x00\x7F" "\x1B]0;pwned\x07""#,
            "\n"
        )
    );
}

#[test]
fn json_lines_are_valid_json_with_escaped_values() {
    let path = temp_path("json");
    let log = fixed_log("json", &path);
    let app = log.layer(hello);
    let mut s = sample();
    s.raw_path = Bytes::from_static(b"/\"\\\x1b[31m\x00\xc3\xa9");
    s.headers = Headers::new().with("user-agent", Bytes::from_static(b"a\r\nb\x85\xff"));
    call(&app, Scope::Http(s)).unwrap();
    let text = finish(log, app, &path);
    assert_eq!(text.lines().count(), 1);
    assert!(!text.trim_end().chars().any(char::is_control));
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["path"], "/\"\\\u{1b}[31m\u{0}é");
    assert_eq!(v["user_agent"], "a\r\nb\u{fffd}\u{fffd}");
    assert_eq!(v["referer"], serde_json::Value::Null);
    assert_eq!(v["status"], 200);
    assert_eq!(v["bytes"], 11);
    assert_eq!(v["type"], "http");
}

#[test]
fn unix_peers_are_logged_as_unix() {
    let path = temp_path("unix");
    let log = fixed_log("%h %s", &path);
    let app = log.layer(hello);
    let mut s = sample();
    s.client = None;
    s.server = ServerAddr::Unix(Arc::from(Path::new("/run/app.sock")));
    call(&app, Scope::Http(s)).unwrap();
    // A TCP scope without a client (a middleware removed it) shows `-`.
    let mut s = sample();
    s.client = None;
    call(&app, Scope::Http(s)).unwrap();
    // IPv6 without brackets.
    let mut s = sample();
    s.client = Some("[2001:db8::7]:443".parse().unwrap());
    call(&app, Scope::Http(s)).unwrap();
    assert_eq!(
        finish(log, app, &path),
        "unix 200\n- 200\n2001:db8::7 200\n"
    );
}

#[test]
fn nothing_sent_logs_status_dash() {
    let path = temp_path("nothing");
    let log = fixed_log("%s %b %B %{content-type}o", &path);
    let silent =
        log.layer(|_s: Scope, _rx: Receiver, _tx: Sender| async { Ok::<(), BoxError>(()) });
    call(&silent, Scope::Http(sample())).unwrap();
    let failing = log.layer(|_s: Scope, _rx: Receiver, _tx: Sender| async {
        Err::<(), BoxError>("boom".into())
    });
    assert!(call(&failing, Scope::Http(sample())).is_err());
    // Failing after the start: the status that was sent.
    let late = log.layer(|_s: Scope, _rx: Receiver, tx: Sender| async move {
        tx.send(SendEvent::start(200, Headers::new())).await?;
        tx.send(SendEvent::body("abc", true)).await?;
        Err::<(), BoxError>("boom".into())
    });
    assert!(call(&late, Scope::Http(sample())).is_err());
    assert_eq!(
        finish(log, (silent, failing, late), &path),
        "- - 0 -\n- - 0 -\n200 3 3 -\n"
    );
}

#[test]
fn only_accepted_events_count() {
    let path = temp_path("refused");
    let log = fixed_log("%s %B", &path);
    let app = log.layer(|_s: Scope, _rx: Receiver, tx: Sender| async move {
        tx.send(SendEvent::start(201, Headers::new())).await?;
        tx.send(SendEvent::body("12345", true)).await?;
        // Refused by the server: not counted.
        assert!(tx
            .send(SendEvent::body("far too long", true))
            .await
            .is_err());
        // A second start (a server drops it once the client has gone): the first one stays.
        tx.send(SendEvent::start(500, Headers::new())).await?;
        tx.send(SendEvent::body("", false)).await?;
        Ok::<(), BoxError>(())
    });
    let refuse_long =
        |e: &SendEvent| matches!(e, SendEvent::HttpResponseBody(b) if b.bytes.len() > 5);
    call_refusing(&app, Scope::Http(sample()), refuse_long).unwrap();
    // A refused start is no start.
    let bad_start = log.layer(|_s: Scope, _rx: Receiver, tx: Sender| async move {
        assert!(tx.send(SendEvent::start(99, Headers::new())).await.is_err());
        Ok::<(), BoxError>(())
    });
    let refuse_start = |e: &SendEvent| matches!(e, SendEvent::HttpResponseStart { .. });
    call_refusing(&bad_start, Scope::Http(sample()), refuse_start).unwrap();
    assert_eq!(finish(log, (app, bad_start), &path), "201 5\n- 0\n");
}

#[test]
fn sends_after_the_client_left_are_not_counted() {
    let path = temp_path("gone");
    let log = fixed_log("%s %B", &path);
    let conn = Arc::new(FakeConn(AtomicBool::new(true)));
    let leave = conn.clone();
    let app = log.layer(move |_s: Scope, _rx: Receiver, tx: Sender| {
        let leave = leave.clone();
        async move {
            tx.send(SendEvent::start(200, Headers::new())).await?;
            tx.send(SendEvent::body("abc", true)).await?;
            leave.0.store(false, Ordering::SeqCst);
            tx.send(SendEvent::body("defgh", false)).await?;
            Ok::<(), BoxError>(())
        }
    });
    let mut s = sample();
    s.connection = Some(Connection::new(conn));
    call(&app, Scope::Http(s)).unwrap();
    assert_eq!(finish(log, app, &path), "200 3\n");
}

#[test]
fn file_bodies_count_their_range() {
    let data = temp_path("data");
    std::fs::write(&data, [7u8; 100]).unwrap();
    let path = temp_path("files");
    let log = fixed_log("%B", &path);
    let cases: [(Option<&'static str>, u64, Option<u64>); 5] = [
        (Some("abc"), 0, None), // bytes, then the whole file: 3 + 100
        (None, 10, Some(20)),   // a range inside the file: 20
        (None, 90, Some(50)),   // a range past the end is cut: 10
        (None, 200, None),      // an offset past the end sends nothing
        (None, 0, Some(0)),     // an empty range
    ];
    let mut apps = Vec::new();
    for (prefix, offset, length) in cases {
        let file = data.clone();
        let app = log.layer(move |_s: Scope, _rx: Receiver, tx: Sender| {
            let file = file.clone();
            async move {
                tx.send(SendEvent::start(200, Headers::new())).await?;
                if let Some(p) = prefix {
                    tx.send(SendEvent::body(p, true)).await?;
                }
                tx.send(SendEvent::file_range(file, offset, length)).await?;
                Ok::<(), BoxError>(())
            }
        });
        call(&app, Scope::Http(sample())).unwrap();
        apps.push(app);
    }
    let text = finish(log, apps, &path);
    let _ = std::fs::remove_file(&data);
    assert_eq!(text, "103\n20\n10\n0\n0\n");
}

#[test]
fn websocket_lines() {
    let path = temp_path("ws");
    let log = fixed_log(r#"%h "%r" %s %b %{set-cookie}o %S"#, &path);
    let mut s = sample();
    s.path = "/chat".into();
    s.raw_path = Bytes::from_static(b"/chat");
    s.query_string = Bytes::from_static(b"room=7");
    s.scheme = Scheme::Ws;
    let scope = || Scope::Websocket(s.clone());

    // Accepted: 101, payload bytes of every message sent.
    let echo = log.layer(|_s: Scope, rx: Receiver, tx: Sender| async move {
        assert_eq!(rx.receive().await?, ReceiveEvent::WebsocketConnect);
        let accept = SendEvent::WebsocketAccept {
            subprotocol: None,
            headers: Headers::new().with("set-cookie", "sid=1"),
        };
        tx.send(accept).await?;
        loop {
            match rx.receive().await? {
                ReceiveEvent::WebsocketReceive(m) => {
                    tx.send(SendEvent::WebsocketSend(m)).await?;
                    let bin = Message::Binary(Bytes::from_static(b"\x00\x01\x02"));
                    tx.send(SendEvent::WebsocketSend(bin)).await?;
                }
                _ => return Ok::<(), BoxError>(()),
            }
        }
    });
    call(&echo, scope()).unwrap();

    // Closed before the accept: 403.
    let refuse = log.layer(|_s: Scope, _rx: Receiver, tx: Sender| async move {
        let close = SendEvent::WebsocketClose {
            code: 1000,
            reason: String::new(),
        };
        tx.send(close).await?;
        Ok::<(), BoxError>(())
    });
    call(&refuse, scope()).unwrap();

    // A denial response: its status and body bytes.
    let deny = log.layer(|_s: Scope, _rx: Receiver, tx: Sender| async move {
        let start = SendEvent::WebsocketHttpResponseStart {
            status: 401,
            headers: Headers::new().with("www-authenticate", "Bearer"),
        };
        tx.send(start).await?;
        let mut body = ResponseBody::default();
        body.bytes = Bytes::from_static(b"token required");
        tx.send(SendEvent::WebsocketHttpResponseBody(body)).await?;
        Ok::<(), BoxError>(())
    });
    call(&deny, scope()).unwrap();

    // Closing after the accept keeps 101.
    let bye = log.layer(|_s: Scope, _rx: Receiver, tx: Sender| async move {
        let accept = SendEvent::WebsocketAccept {
            subprotocol: None,
            headers: Headers::new(),
        };
        tx.send(accept).await?;
        let close = SendEvent::WebsocketClose {
            code: 4000,
            reason: "bye".into(),
        };
        tx.send(close).await?;
        Ok::<(), BoxError>(())
    });
    call(&bye, scope()).unwrap();

    // Returned without answering: the server's 500 is not ours to log.
    let mute = log.layer(|_s: Scope, _rx: Receiver, _tx: Sender| async { Ok::<(), BoxError>(()) });
    call(&mute, scope()).unwrap();

    assert_eq!(
        finish(log, (echo, refuse, deny, bye, mute), &path),
        concat!(
            "192.0.2.7 \"GET /chat?room=7 HTTP/1.1\" 101 5 sid=1 ws\n",
            "192.0.2.7 \"GET /chat?room=7 HTTP/1.1\" 403 - - ws\n",
            "192.0.2.7 \"GET /chat?room=7 HTTP/1.1\" 401 14 - ws\n",
            "192.0.2.7 \"GET /chat?room=7 HTTP/1.1\" 101 - - ws\n",
            "192.0.2.7 \"GET /chat?room=7 HTTP/1.1\" - - - ws\n",
        )
    );
}

#[test]
fn websocket_json_line() {
    let path = temp_path("wsjson");
    let log = fixed_log("json", &path);
    let app = log.layer(|_s: Scope, _rx: Receiver, tx: Sender| async move {
        let accept = SendEvent::WebsocketAccept {
            subprotocol: None,
            headers: Headers::new(),
        };
        tx.send(accept).await?;
        tx.send(SendEvent::WebsocketSend(Message::Text("héllo".into())))
            .await?;
        Ok::<(), BoxError>(())
    });
    call(&app, Scope::Websocket(sample())).unwrap();
    let v: serde_json::Value = serde_json::from_str(&finish(log, app, &path)).unwrap();
    assert_eq!(v["type"], "websocket");
    assert_eq!(v["status"], 101);
    assert_eq!(v["bytes"], 6);
}

#[test]
fn sse_lines() {
    let path = temp_path("sse");
    let log = fixed_log(r#""%r" %s %b %{x-stream}o %D"#, &path);
    let mut s = sample();
    s.raw_path = Bytes::from_static(b"/events");
    s.query_string = Bytes::new();
    let scope = || Scope::Sse(s.clone());

    // A stream: the data bytes of the events sent; comments and keepalives do not count.
    let feed = log.layer(|_s: Scope, rx: Receiver, tx: Sender| async move {
        let _request = rx.receive().await?;
        let start = SendEvent::SseStart {
            status: 200,
            headers: Headers::new().with("x-stream", "prices"),
        };
        tx.send(start).await?;
        let keepalive = SendEvent::SseKeepalive {
            interval: Duration::from_secs(15),
            comment: None,
        };
        tx.send(keepalive).await?;
        for data in ["abc", "de\nf"] {
            let event = SendEvent::SseSend {
                event: Some("tick".into()),
                data: data.into(),
                id: Some("1".into()),
                retry: None,
            };
            tx.send(event).await?;
        }
        let comment = SendEvent::SseComment {
            comment: "note".into(),
        };
        tx.send(comment).await?;
        tx.send(SendEvent::SseClose {
            reason: "done".into(),
        })
        .await?;
        Ok::<(), BoxError>(())
    });
    call(&feed, scope()).unwrap();

    // Declined with 204.
    let decline = log.layer(|_s: Scope, _rx: Receiver, tx: Sender| async move {
        let start = SendEvent::SseHttpResponseStart {
            status: 204,
            headers: Headers::new(),
        };
        tx.send(start).await?;
        tx.send(SendEvent::SseHttpResponseBody(ResponseBody::default()))
            .await?;
        Ok::<(), BoxError>(())
    });
    call(&decline, scope()).unwrap();

    assert_eq!(
        finish(log, (feed, decline), &path),
        "\"GET /events HTTP/1.1\" 200 7 prices 1234567\n\"GET /events HTTP/1.1\" 204 - - 1234567\n"
    );
}

#[test]
fn lifespan_passes_through_unlogged() {
    let path = temp_path("lifespan");
    let log = fixed_log("%s", &path);
    let app = log.layer(|scope: Scope, _rx: Receiver, _tx: Sender| async move {
        assert_eq!(scope.kind(), "lifespan");
        Ok::<(), BoxError>(())
    });
    let scope = Scope::Lifespan(LifespanScope::new(State::shared()));
    let (rx, tx) = channels(&scope, accept_all);
    block_on(app.call(scope, rx, tx)).unwrap();
    assert_eq!(finish(log, app, &path), "");
}

#[test]
fn a_dropped_or_panicking_call_is_still_logged() {
    let path = temp_path("dropped-call");
    let log = fixed_log("%s %B", &path);
    // Started, then stuck forever: the server drops the future (a forced shutdown).
    let stuck = log.layer(|_s: Scope, _rx: Receiver, tx: Sender| async move {
        tx.send(SendEvent::start(200, Headers::new())).await?;
        tx.send(SendEvent::body("part", true)).await?;
        futures::future::pending::<()>().await;
        Ok::<(), BoxError>(())
    });
    let scope = Scope::Http(sample());
    let (rx, tx) = channels(&scope, accept_all);
    let mut fut = stuck.call(scope, rx, tx);
    assert!((&mut fut).now_or_never().is_none());
    drop(fut);
    // Panics after the start (the server catches the panic).
    let panicky = log.layer(|_s: Scope, _rx: Receiver, tx: Sender| async move {
        tx.send(SendEvent::start(202, Headers::new())).await?;
        if tx.send(SendEvent::body("xy", true)).await.is_ok() {
            panic!("the app panics (expected by the test)");
        }
        Ok::<(), BoxError>(())
    });
    let caught =
        std::panic::catch_unwind(AssertUnwindSafe(|| call(&panicky, Scope::Http(sample()))));
    assert!(caught.is_err());
    assert_eq!(finish(log, (stuck, panicky), &path), "200 4\n202 2\n");
}

#[test]
fn reopen_after_rename_writes_to_a_new_file() {
    let path = temp_path("rotate");
    let rotated = path.with_extension("log.1");
    let log = fixed_log("%U", &path);
    let reopen = log.reopener();
    let app = log.layer(hello);
    let mut s = sample();
    s.raw_path = Bytes::from_static(b"/first");
    call(&app, Scope::Http(s)).unwrap();
    assert_eq!(wait_for_lines(&path, 1), "/first\n");
    std::fs::rename(&path, &rotated).unwrap();
    reopen.reopen();
    let mut s = sample();
    s.raw_path = Bytes::from_static(b"/second");
    call(&app, Scope::Http(s)).unwrap();
    let second = finish(log, app, &path);
    let first = std::fs::read_to_string(&rotated).unwrap();
    let _ = std::fs::remove_file(&rotated);
    assert_eq!(first, "/first\n");
    assert_eq!(second, "/second\n");
    // Once everything is gone, the handle does nothing.
    reopen.reopen();
    assert!(format!("{reopen:?}").contains("live: false"));
}

#[test]
fn lines_are_dropped_and_counted_when_the_writer_is_behind() {
    let path = temp_path("full");
    let (open_gate, gate) = mpsc::channel();
    let options = Options {
        capacity: 2,
        clock: fixed_clock(),
        gate: Some(gate),
    };
    let format = Format::parse("%U").unwrap();
    let log = AccessLog::with_options(format, Output::File(path.clone()), options).unwrap();
    let app = log.layer(hello);
    for i in 0..5 {
        let mut s = sample();
        s.raw_path = Bytes::from(format!("/{i}"));
        call(&app, Scope::Http(s)).unwrap();
    }
    // The thread has not read anything yet: two lines wait, three were dropped.
    assert_eq!(log.dropped(), 3);
    open_gate.send(()).unwrap();
    let clone = log.clone();
    assert_eq!(clone.dropped(), 3);
    assert_eq!(finish(log, (app, clone), &path), "/0\n/1\n");
}

#[test]
fn a_bad_path_fails_at_once_and_names_the_path() {
    let path = temp_path("missing-dir").join("access.log");
    let err =
        AccessLog::new(Format::parse("clf").unwrap(), Output::File(path.clone())).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
    assert!(
        err.to_string().contains(&path.display().to_string()),
        "{err}"
    );
}

#[test]
fn stderr_output_works_and_reopen_is_a_no_op() {
    let log = AccessLog::new(Format::parse("tiny").unwrap(), Output::Stderr).unwrap();
    let app = log.layer(hello);
    call(&app, Scope::Http(sample())).unwrap();
    log.reopener().reopen();
    assert_eq!(log.dropped(), 0);
    assert!(format!("{log:?}").contains("AccessLog"));
    drop((app, log));
}

#[test]
fn the_system_clock_measures_the_call() {
    let path = temp_path("clock");
    let log = AccessLog::new(Format::parse("%D %t").unwrap(), Output::File(path.clone())).unwrap();
    let app = log.layer(|_s: Scope, _rx: Receiver, tx: Sender| async move {
        std::thread::sleep(Duration::from_millis(20));
        tx.send(SendEvent::start(200, Headers::new())).await?;
        Ok::<(), BoxError>(())
    });
    call(&app, Scope::Http(sample())).unwrap();
    let text = finish(log, app, &path);
    let (micros, time) = text.trim_end().split_once(' ').unwrap();
    assert!(micros.parse::<u64>().unwrap() >= 20_000, "{text}");
    assert!(time.starts_with('[') && time.ends_with(" +0000]"), "{text}");
}
