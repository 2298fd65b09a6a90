//! A chat room over WebSocket and a clock over SSE, with the HTML page that uses both.
//!
//! * `GET /`: the page (`examples/chat/index.html`, compiled in).
//! * `/ws`: WebSocket chat: every text message is sent to every connected client.
//! * `/clock`: SSE clock: a `tick` event (Unix time in ms) every second, `?n=N` of them then an
//!   `end` event (default: no end).
//!
//! ```text
//! cargo run --release --example chat -- --listen 127.0.0.1:8000
//! # open http://127.0.0.1:8000/ in two browser windows
//! ```

use pagi::{
    BoxError, Headers, HttpScope, Message, ReceiveEvent, Receiver, Scope, SendEvent, Sender,
};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::broadcast;

const PAGE: &str = include_str!("index.html");

/// The chat room: a bounded broadcast channel (a listener that falls behind skips messages).
fn room() -> &'static broadcast::Sender<String> {
    static ROOM: OnceLock<broadcast::Sender<String>> = OnceLock::new();
    ROOM.get_or_init(|| broadcast::channel(256).0)
}

/// The app: the page, the chat, the clock.
pub async fn app(scope: Scope, receive: Receiver, send: Sender) -> Result<(), BoxError> {
    match scope {
        Scope::Http(req) => page(req, send).await,
        Scope::Websocket(req) if req.path == "/ws" => chat(receive, send).await,
        Scope::Websocket(_) => {
            // Not here: refused before the handshake completes (403).
            send.send(SendEvent::WebsocketClose {
                code: 1000,
                reason: String::new(),
            })
            .await?;
            Ok(())
        }
        Scope::Sse(req) => clock(req, receive, send).await,
        Scope::Lifespan(_) => Ok(()),
        other => Err(format!("unsupported scope {}", other.kind()).into()),
    }
}

async fn page(req: HttpScope, send: Sender) -> Result<(), BoxError> {
    let (status, ctype, body) = if req.path == "/" {
        (200, "text/html; charset=utf-8", PAGE)
    } else {
        (404, "text/plain", "Not Found\n")
    };
    send.send(SendEvent::start(
        status,
        Headers::new().with("content-type", ctype),
    ))
    .await?;
    send.send(SendEvent::body(body, false)).await?;
    Ok(())
}

async fn chat(receive: Receiver, send: Sender) -> Result<(), BoxError> {
    if receive.receive().await? != ReceiveEvent::WebsocketConnect {
        return Ok(());
    }
    send.send(SendEvent::WebsocketAccept {
        subprotocol: None,
        headers: Headers::new(),
    })
    .await?;
    let mut inbox = room().subscribe();
    loop {
        tokio::select! {
            ev = receive.receive() => match ev? {
                ReceiveEvent::WebsocketReceive(Message::Text(t)) => {
                    let _ = room().send(t);
                }
                ReceiveEvent::WebsocketReceive(Message::Binary(_)) => {}
                _ => return Ok(()), // disconnected
            },
            msg = inbox.recv() => match msg {
                Ok(t) => send.send(SendEvent::WebsocketSend(Message::Text(t))).await?,
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    let note = format!("(missed {n} messages)");
                    send.send(SendEvent::WebsocketSend(Message::Text(note))).await?;
                }
                Err(broadcast::error::RecvError::Closed) => return Ok(()),
            },
        }
    }
}

async fn clock(req: HttpScope, receive: Receiver, send: Sender) -> Result<(), BoxError> {
    if req.path != "/clock" {
        send.send(SendEvent::SseHttpResponseStart {
            status: 204,
            headers: Headers::new(),
        })
        .await?;
        send.send(SendEvent::SseHttpResponseBody(Default::default()))
            .await?;
        return Ok(());
    }
    let n = std::str::from_utf8(&req.query_string)
        .ok()
        .and_then(|q| q.strip_prefix("n="))
        .and_then(|v| v.parse::<u64>().ok());
    send.send(SendEvent::SseStart {
        status: 200,
        headers: Headers::new(),
    })
    .await?;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut sent = 0u64;
    while n.is_none_or(|n| sent < n) {
        tokio::select! {
            _ = tick.tick() => {}
            ev = receive.receive() => match ev? {
                ReceiveEvent::SseRequest { .. } => continue,
                _ => return Ok(()), // the browser went away
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
    send.send(SendEvent::SseSend {
        event: Some("end".into()),
        data: String::new(),
        id: None,
        retry: None,
    })
    .await?;
    Ok(())
}

#[allow(dead_code)] // the browser test includes this file as a module
fn main() -> std::process::ExitCode {
    pagi_server::cli::main(app)
}
