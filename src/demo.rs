//! The built-in demo app of the `pagi-server` binary.
//!
//! | route | answer |
//! |---|---|
//! | `GET /` | `Hello, world!` as `text/plain` (what the benchmark scripts fetch) |
//! | `/echo` (any method) | the request body streamed back, with the request's content type |
//! | `/scope` | the request's scope as JSON |
//! | `/stream?n=N` | N lines (default 10, at most 10,000) as a chunked stream |
//! | `/sleep?ms=N` | `slept N ms` after waiting N ms (at most 60,000): a slow request |
//! | `/early-hints?ms=N` | a `103 Early Hints` with `link: </style.css>; rel=preload; as=style` (when the scope advertises `http.response.early_hint`), then after N ms (default 0, at most 60,000) a 200 HTML page that uses that stylesheet |
//! | `/style.css` | a small stylesheet (`text/css`) |
//! | anything else | 404 |
//! | WebSocket, any path | every message (text or binary) echoed back; the first offered subprotocol is accepted |
//! | SSE (`Accept: text/event-stream`), any path | a clock: a `tick` event with the Unix time in ms every `ms` ms (default 1000), `n` of them (default: no end), keepalive comments every 15 s |
//!
//! It answers lifespan startup and shutdown.

use futures::future::Either;
use pagi::{BoxError, Headers, HttpScope, ReceiveEvent, Receiver, Scope, SendEvent, Sender};
use std::future::Future;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The page of `/early-hints`.
const EARLY_HINTS_PAGE: &str = "<!doctype html>\n<title>Early hints</title>\n\
<link rel=\"stylesheet\" href=\"/style.css\">\n<p>The 103 before this page named /style.css.</p>\n";

/// The stylesheet of `/style.css`.
const STYLE_CSS: &str = "body { font-family: sans-serif; margin: 2em; }\n";

/// The demo app. The route is chosen before any future is made: `GET /` (the benchmark
/// path) runs in a future that holds nothing but the two sends, every other scope in a boxed
/// one.
pub fn app(
    scope: Scope,
    receive: Receiver,
    send: Sender,
) -> impl Future<Output = Result<(), BoxError>> + Send + 'static {
    if matches!(&scope, Scope::Http(req) if req.path.as_bytes() == b"/") {
        return Either::Left(reply(send, 200, "text/plain", "Hello, world!"));
    }
    Either::Right(Box::pin(route(scope, receive, send)))
}

/// A whole response in one piece: the start with its `content-type`, then the body.
async fn reply(
    send: Sender,
    status: u16,
    content_type: &'static str,
    body: impl Into<bytes::Bytes>,
) -> Result<(), BoxError> {
    send.send(SendEvent::start(
        status,
        Headers::new().with("content-type", content_type),
    ))
    .await?;
    send.send(SendEvent::body(body, false)).await?;
    Ok(())
}

async fn route(scope: Scope, receive: Receiver, send: Sender) -> Result<(), BoxError> {
    match scope {
        Scope::Http(req) => http(req, receive, send).await,
        Scope::Websocket(req) => websocket(req, receive, send).await,
        Scope::Sse(req) => sse(req, receive, send).await,
        Scope::Lifespan(_) => lifespan(receive, send).await,
        other => Err(format!("demo app: unsupported scope type {}", other.kind()).into()),
    }
}

async fn http(req: HttpScope, receive: Receiver, send: Sender) -> Result<(), BoxError> {
    match req.path.as_bytes() {
        b"/" => reply(send, 200, "text/plain", "Hello, world!").await?,
        b"/echo" => {
            let ctype = req
                .headers
                .get("content-type")
                .cloned()
                .unwrap_or_else(|| "application/octet-stream".into());
            let length = req.headers.get("content-length").cloned();
            let mut h = Headers::new().with("content-type", ctype);
            if let Some(l) = length {
                h.push("content-length", l);
            }
            send.send(SendEvent::start(200, h)).await?;
            // Anything but a body piece means the client is gone.
            while let ReceiveEvent::HttpRequest { body, more } = receive.receive().await? {
                send.send(SendEvent::body(body, more)).await?;
                if !more {
                    break;
                }
            }
        }
        b"/scope" => {
            let json = serde_json::to_vec_pretty(&Scope::Http(req))?;
            send.send(SendEvent::start(
                200,
                Headers::new().with("content-type", "application/json"),
            ))
            .await?;
            send.send(SendEvent::body(json, false)).await?;
        }
        b"/stream" => {
            let n = query_param(&req.query_string, b"n")
                .and_then(|v| v.parse::<u32>().ok())
                .unwrap_or(10)
                .min(10_000);
            send.send(SendEvent::start(
                200,
                Headers::new().with("content-type", "text/plain"),
            ))
            .await?;
            for i in 0..n {
                send.send(SendEvent::body(format!("line {i}\n"), true))
                    .await?;
            }
            send.send(SendEvent::body("", false)).await?;
        }
        b"/sleep" => {
            let ms = query_param(&req.query_string, b"ms")
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(1000)
                .min(60_000);
            tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
            reply(send, 200, "text/plain", format!("slept {ms} ms")).await?;
        }
        b"/early-hints" => {
            if req.extensions.early_hint {
                send.send(SendEvent::early_hint(
                    Headers::new().with("link", "</style.css>; rel=preload; as=style"),
                ))
                .await?;
            }
            let ms = query_param(&req.query_string, b"ms")
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
                .min(60_000);
            if ms > 0 {
                tokio::time::sleep(Duration::from_millis(ms)).await;
            }
            send.send(SendEvent::start(
                200,
                Headers::new()
                    .with("content-type", "text/html; charset=utf-8")
                    .with("link", "</style.css>; rel=preload; as=style"),
            ))
            .await?;
            send.send(SendEvent::body(EARLY_HINTS_PAGE, false)).await?;
        }
        b"/style.css" => {
            reply(send, 200, "text/css", STYLE_CSS).await?;
        }
        _ => {
            reply(send, 404, "text/plain", "Not Found\n").await?;
        }
    }
    Ok(())
}

async fn websocket(req: HttpScope, receive: Receiver, send: Sender) -> Result<(), BoxError> {
    if receive.receive().await? != ReceiveEvent::WebsocketConnect {
        return Ok(());
    }
    send.send(SendEvent::WebsocketAccept {
        subprotocol: req.subprotocols.first().cloned(),
        headers: Headers::new(),
    })
    .await?;
    loop {
        match receive.receive().await? {
            ReceiveEvent::WebsocketReceive(m) => send.send(SendEvent::WebsocketSend(m)).await?,
            _ => return Ok(()),
        }
    }
}

async fn sse(req: HttpScope, receive: Receiver, send: Sender) -> Result<(), BoxError> {
    let every = query_param(&req.query_string, b"ms")
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(1000)
        .clamp(10, 3_600_000);
    let n = query_param(&req.query_string, b"n").and_then(|v| v.parse::<u64>().ok());
    send.send(SendEvent::SseStart {
        status: 200,
        headers: Headers::new(),
    })
    .await?;
    send.send(SendEvent::SseKeepalive {
        interval: Duration::from_secs(15),
        comment: Some("keepalive".into()),
    })
    .await?;
    let mut sent = 0u64;
    let mut tick = tokio::time::interval(Duration::from_millis(every));
    while n.is_none_or(|n| sent < n) {
        tokio::select! {
            _ = tick.tick() => {}
            ev = receive.receive() => match ev? {
                // The request body (none for a GET) is of no interest; anything else is the end.
                ReceiveEvent::SseRequest { .. } => continue,
                _ => return Ok(()),
            },
        }
        let ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        send.send(SendEvent::SseSend {
            event: Some("tick".into()),
            data: ms.to_string(),
            id: Some(sent.to_string()),
            retry: None,
        })
        .await?;
        sent += 1;
    }
    send.send(SendEvent::SseClose {
        reason: String::new(),
    })
    .await?;
    Ok(())
}

async fn lifespan(receive: Receiver, send: Sender) -> Result<(), BoxError> {
    loop {
        match receive.receive().await? {
            ReceiveEvent::LifespanStartup => send.send(SendEvent::LifespanStartupComplete).await?,
            ReceiveEvent::LifespanShutdown => {
                send.send(SendEvent::LifespanShutdownComplete).await?;
                return Ok(());
            }
            _ => {}
        }
    }
}

fn query_param(q: &[u8], name: &[u8]) -> Option<String> {
    q.split(|&b| b == b'&').find_map(|kv| {
        let mut it = kv.splitn(2, |&b| b == b'=');
        (it.next()? == name).then(|| String::from_utf8_lossy(it.next().unwrap_or(b"")).into_owned())
    })
}
