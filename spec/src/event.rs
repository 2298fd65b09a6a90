//! Events: what the app receives and what it sends.
//!
//! Both enums serialize to the PAGI JSON shape, `{"type": "http.response.start", ...}`, and parse
//! back, so events can be logged, linted and written as test fixtures.

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

use crate::connection::DisconnectReason;
use crate::headers::Headers;
use crate::message::Message;
use crate::wire::{flag, latin1, opt_seconds, seconds};
use std::time::Duration;

/// An event the app gets from `receive`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
#[non_exhaustive]
pub enum ReceiveEvent {
    /// A piece of the request body. `more` is `false` on the last piece.
    #[serde(rename = "http.request")]
    HttpRequest {
        /// The bytes (may be empty).
        #[serde(with = "latin1", default)]
        body: Bytes,
        /// Whether more body follows.
        #[serde(with = "flag", default)]
        more: bool,
    },
    /// The response is finished or the client has gone; the app should stop.
    #[serde(rename = "http.disconnect")]
    HttpDisconnect,
    /// A WebSocket client asks to connect: answer `websocket.accept`, `websocket.close` (403) or
    /// a `websocket.http.response.*` denial.
    #[serde(rename = "websocket.connect")]
    WebsocketConnect,
    /// A complete WebSocket message from the client.
    #[serde(rename = "websocket.receive")]
    WebsocketReceive(Message),
    /// The WebSocket is closed; see the code/reason table in the WebSocket chapter.
    #[serde(rename = "websocket.disconnect")]
    WebsocketDisconnect {
        /// The close code (1005 when the peer's Close frame had none, 1006 for an abnormal end).
        code: u16,
        /// The peer's close reason, or a reason token.
        #[serde(default)]
        reason: String,
    },
    /// A piece of the body of the request that opened an SSE stream.
    #[serde(rename = "sse.request")]
    SseRequest {
        /// The bytes (may be empty).
        #[serde(with = "latin1", default)]
        body: Bytes,
        /// Whether more body follows.
        #[serde(with = "flag", default)]
        more: bool,
    },
    /// The SSE stream is over (the client went away, or the server stopped it).
    #[serde(rename = "sse.disconnect")]
    SseDisconnect {
        /// Why.
        reason: DisconnectReason,
    },
    /// The server is starting: set up, then answer `lifespan.startup.complete` (or `.failed`).
    #[serde(rename = "lifespan.startup")]
    LifespanStartup,
    /// The server has stopped serving: tear down, then answer `lifespan.shutdown.complete`.
    #[serde(rename = "lifespan.shutdown")]
    LifespanShutdown,
}

/// An event the app hands to `send`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
#[non_exhaustive]
pub enum SendEvent {
    /// Starts the response.
    #[serde(rename = "http.response.start")]
    HttpResponseStart {
        /// Status code, 200–999 (informational responses are the server's business).
        status: u16,
        /// Response headers; `Transfer-Encoding` is ignored, CR/LF/NUL make `send` fail.
        #[serde(default)]
        headers: Headers,
        /// Whether `http.response.trailers` will follow the body.
        #[serde(with = "flag", default)]
        trailers: bool,
    },
    /// A piece of the response body, or a file.
    #[serde(rename = "http.response.body")]
    HttpResponseBody(ResponseBody),
    /// Trailer fields, after the last body piece; only if the start said `trailers: 1`.
    #[serde(rename = "http.response.trailers")]
    HttpResponseTrailers {
        /// The trailer fields.
        #[serde(default)]
        headers: Headers,
    },
    /// Write out everything queued so far (extension `fullflush`).
    #[serde(rename = "http.fullflush")]
    HttpFullflush,
    /// An informational `103 Early Hints` response (RFC 8297) before the final one (extension
    /// `http.response.early_hint`): zero or more, only before `http.response.start`.
    #[serde(rename = "http.response.early_hint")]
    HttpResponseEarlyHint {
        /// The fields of the 103, typically `link`; required in JSON. Checked like response
        /// headers; connection-specific and framing fields make `send` fail (see
        /// [`headers::refused_in_early_hint`](crate::headers::refused_in_early_hint)).
        headers: Headers,
    },
    /// Accepts a WebSocket (the server answers 101).
    #[serde(rename = "websocket.accept")]
    WebsocketAccept {
        /// The chosen subprotocol: one the client offered.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        subprotocol: Option<String>,
        /// Extra headers for the 101 response.
        #[serde(default)]
        headers: Headers,
    },
    /// Sends a WebSocket message.
    #[serde(rename = "websocket.send")]
    WebsocketSend(Message),
    /// Closes the WebSocket (before accept: the server answers 403).
    #[serde(rename = "websocket.close")]
    WebsocketClose {
        /// The close code, 1000 by default.
        #[serde(default = "normal_closure")]
        code: u16,
        /// The close reason (at most 123 bytes are sent).
        #[serde(default)]
        reason: String,
    },
    /// Starts (or, with `interval` 0, stops) server pings on this WebSocket (PAGI).
    #[serde(rename = "websocket.keepalive")]
    WebsocketKeepalive {
        /// Time between pings (JSON: seconds); zero turns them off.
        #[serde(with = "seconds")]
        interval: Duration,
        /// How long to wait for the pong before closing (1006, `keepalive_timeout`).
        #[serde(default, skip_serializing_if = "Option::is_none", with = "opt_seconds")]
        timeout: Option<Duration>,
    },
    /// Denies a WebSocket with a custom HTTP response: the start (before accept only).
    #[serde(rename = "websocket.http.response.start")]
    WebsocketHttpResponseStart {
        /// Status code, 200–999.
        status: u16,
        /// Response headers.
        #[serde(default)]
        headers: Headers,
    },
    /// Denies a WebSocket with a custom HTTP response: a body piece.
    #[serde(rename = "websocket.http.response.body")]
    WebsocketHttpResponseBody(ResponseBody),
    /// Starts an SSE stream.
    #[serde(rename = "sse.start")]
    SseStart {
        /// Status code, 200 by default.
        #[serde(default = "ok")]
        status: u16,
        /// Response headers; the server adds `content-type`, `cache-control` and `date` when
        /// missing.
        #[serde(default)]
        headers: Headers,
    },
    /// Sends one event on an SSE stream.
    #[serde(rename = "sse.send")]
    SseSend {
        /// The `event:` field.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        event: Option<String>,
        /// The data; each line becomes a `data:` line.
        data: String,
        /// The `id:` field.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<String>,
        /// The `retry:` field, in milliseconds.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retry: Option<u64>,
    },
    /// Sends a comment line on an SSE stream (a `:` is prepended when missing).
    #[serde(rename = "sse.comment")]
    SseComment {
        /// The comment.
        comment: String,
    },
    /// Has the server send a comment whenever the stream has been quiet for `interval` seconds.
    #[serde(rename = "sse.keepalive")]
    SseKeepalive {
        /// JSON: seconds; zero turns it off.
        #[serde(with = "seconds")]
        interval: Duration,
        /// The comment to send (default: an empty comment, `:`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        comment: Option<String>,
    },
    /// Ends the SSE stream (idempotent; later sends fail).
    #[serde(rename = "sse.close")]
    SseClose {
        /// Why (for logs; nothing is sent).
        #[serde(default)]
        reason: String,
    },
    /// Declines an SSE stream with a plain HTTP response: the start.
    #[serde(rename = "sse.http.response.start")]
    SseHttpResponseStart {
        /// Status code, 200–999 (204 stops EventSource from reconnecting).
        status: u16,
        /// Response headers.
        #[serde(default)]
        headers: Headers,
    },
    /// Declines an SSE stream with a plain HTTP response: a body piece.
    #[serde(rename = "sse.http.response.body")]
    SseHttpResponseBody(ResponseBody),
    /// Startup finished.
    #[serde(rename = "lifespan.startup.complete")]
    LifespanStartupComplete,
    /// Startup failed: the server does not start and exits non-zero.
    #[serde(rename = "lifespan.startup.failed")]
    LifespanStartupFailed {
        /// Why.
        #[serde(default)]
        message: String,
    },
    /// Shutdown finished.
    #[serde(rename = "lifespan.shutdown.complete")]
    LifespanShutdownComplete,
    /// Shutdown failed (logged).
    #[serde(rename = "lifespan.shutdown.failed")]
    LifespanShutdownFailed {
        /// Why.
        #[serde(default)]
        message: String,
    },
}

/// `http.response.body`: exactly one of `body` (bytes) or `file` (an absolute path, with
/// `offset` and optional `length`).
///
/// A file body is implicitly the last piece: `more` is ignored for it. An `offset` past the end
/// of the file sends zero bytes. If the file cannot be opened, `send` fails.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ResponseBody {
    /// The bytes (with no `file`).
    #[serde(with = "latin1", default, skip_serializing_if = "Bytes::is_empty")]
    #[serde(rename = "body")]
    pub bytes: Bytes,
    /// An absolute path to send instead of `body`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<PathBuf>,
    /// Where in the file to start.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub offset: u64,
    /// How many bytes of the file to send (to the end if absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub length: Option<u64>,
    /// Whether more body follows.
    #[serde(with = "flag", default)]
    pub more: bool,
}

fn normal_closure() -> u16 {
    1000
}

fn ok() -> u16 {
    200
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

impl SendEvent {
    /// `http.response.start` with no trailers.
    pub fn start(status: u16, headers: Headers) -> Self {
        SendEvent::HttpResponseStart {
            status,
            headers,
            trailers: false,
        }
    }

    /// `http.response.body` with bytes.
    pub fn body(bytes: impl Into<Bytes>, more: bool) -> Self {
        SendEvent::HttpResponseBody(ResponseBody {
            bytes: bytes.into(),
            more,
            ..Default::default()
        })
    }

    /// `http.response.body` with a whole file.
    pub fn file(path: impl Into<PathBuf>) -> Self {
        SendEvent::HttpResponseBody(ResponseBody {
            file: Some(path.into()),
            ..Default::default()
        })
    }

    /// `http.response.body` with `length` bytes (or the rest) of a file from `offset`.
    pub fn file_range(path: impl Into<PathBuf>, offset: u64, length: Option<u64>) -> Self {
        SendEvent::HttpResponseBody(ResponseBody {
            file: Some(path.into()),
            offset,
            length,
            ..Default::default()
        })
    }

    /// `http.response.trailers`.
    pub fn trailers(headers: Headers) -> Self {
        SendEvent::HttpResponseTrailers { headers }
    }

    /// `http.response.early_hint` (a `103 Early Hints`).
    pub fn early_hint(headers: Headers) -> Self {
        SendEvent::HttpResponseEarlyHint { headers }
    }

    /// The event's `type` string.
    pub fn kind(&self) -> &'static str {
        match self {
            SendEvent::HttpResponseStart { .. } => "http.response.start",
            SendEvent::HttpResponseBody(_) => "http.response.body",
            SendEvent::HttpResponseTrailers { .. } => "http.response.trailers",
            SendEvent::HttpFullflush => "http.fullflush",
            SendEvent::HttpResponseEarlyHint { .. } => "http.response.early_hint",
            SendEvent::WebsocketAccept { .. } => "websocket.accept",
            SendEvent::WebsocketSend(_) => "websocket.send",
            SendEvent::WebsocketClose { .. } => "websocket.close",
            SendEvent::WebsocketKeepalive { .. } => "websocket.keepalive",
            SendEvent::WebsocketHttpResponseStart { .. } => "websocket.http.response.start",
            SendEvent::WebsocketHttpResponseBody(_) => "websocket.http.response.body",
            SendEvent::SseStart { .. } => "sse.start",
            SendEvent::SseSend { .. } => "sse.send",
            SendEvent::SseComment { .. } => "sse.comment",
            SendEvent::SseKeepalive { .. } => "sse.keepalive",
            SendEvent::SseClose { .. } => "sse.close",
            SendEvent::SseHttpResponseStart { .. } => "sse.http.response.start",
            SendEvent::SseHttpResponseBody(_) => "sse.http.response.body",
            SendEvent::LifespanStartupComplete => "lifespan.startup.complete",
            SendEvent::LifespanStartupFailed { .. } => "lifespan.startup.failed",
            SendEvent::LifespanShutdownComplete => "lifespan.shutdown.complete",
            SendEvent::LifespanShutdownFailed { .. } => "lifespan.shutdown.failed",
        }
    }
}

impl ReceiveEvent {
    /// The event's `type` string.
    pub fn kind(&self) -> &'static str {
        match self {
            ReceiveEvent::HttpRequest { .. } => "http.request",
            ReceiveEvent::HttpDisconnect => "http.disconnect",
            ReceiveEvent::WebsocketConnect => "websocket.connect",
            ReceiveEvent::WebsocketReceive(_) => "websocket.receive",
            ReceiveEvent::WebsocketDisconnect { .. } => "websocket.disconnect",
            ReceiveEvent::SseRequest { .. } => "sse.request",
            ReceiveEvent::SseDisconnect { .. } => "sse.disconnect",
            ReceiveEvent::LifespanStartup => "lifespan.startup",
            ReceiveEvent::LifespanShutdown => "lifespan.shutdown",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn round_trip<T: Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug>(
        v: &T,
        expect: serde_json::Value,
    ) {
        let j = serde_json::to_value(v).unwrap();
        assert_eq!(j, expect);
        let back: T = serde_json::from_value(j).unwrap();
        assert_eq!(&back, v);
    }

    #[test]
    fn send_events_json_shape() {
        round_trip(
            &SendEvent::start(200, Headers::new().with("content-type", "text/plain")),
            json!({"type": "http.response.start", "status": 200, "headers": [["content-type", "text/plain"]], "trailers": 0}),
        );
        round_trip(
            &SendEvent::body("hi", true),
            json!({"type": "http.response.body", "body": "hi", "more": 1}),
        );
        round_trip(
            &SendEvent::file_range("/etc/hosts", 5, Some(10)),
            json!({"type": "http.response.body", "file": "/etc/hosts", "offset": 5, "length": 10, "more": 0}),
        );
        round_trip(
            &SendEvent::trailers(Headers::new().with("x-sum", "1")),
            json!({"type": "http.response.trailers", "headers": [["x-sum", "1"]]}),
        );
        round_trip(&SendEvent::HttpFullflush, json!({"type": "http.fullflush"}));
        round_trip(
            &SendEvent::early_hint(
                Headers::new()
                    .with("link", "</style.css>; rel=preload; as=style")
                    .with("Link", "</app.js>; rel=preload; as=script"),
            ),
            json!({"type": "http.response.early_hint", "headers": [
                ["link", "</style.css>; rel=preload; as=style"],
                ["Link", "</app.js>; rel=preload; as=script"]
            ]}),
        );
        round_trip(
            &SendEvent::early_hint(Headers::new()),
            json!({"type": "http.response.early_hint", "headers": []}),
        );
        assert_eq!(
            SendEvent::early_hint(Headers::new()).kind(),
            "http.response.early_hint"
        );
        // `headers` is required: ASGI's shape (`links`) must not turn into an empty 103.
        assert!(serde_json::from_value::<SendEvent>(
            json!({"type": "http.response.early_hint", "links": ["</a.css>; rel=preload"]})
        )
        .is_err());
        round_trip(
            &SendEvent::LifespanStartupFailed {
                message: "db down".into(),
            },
            json!({"type": "lifespan.startup.failed", "message": "db down"}),
        );
        round_trip(
            &SendEvent::LifespanShutdownComplete,
            json!({"type": "lifespan.shutdown.complete"}),
        );
    }

    #[test]
    fn receive_events_json_shape() {
        round_trip(
            &ReceiveEvent::HttpRequest {
                body: Bytes::from_static(b"\x00\xff"),
                more: false,
            },
            json!({"type": "http.request", "body": "\u{0}\u{ff}", "more": 0}),
        );
        round_trip(
            &ReceiveEvent::HttpDisconnect,
            json!({"type": "http.disconnect"}),
        );
        round_trip(
            &ReceiveEvent::LifespanStartup,
            json!({"type": "lifespan.startup"}),
        );
    }

    #[test]
    fn websocket_events_json_shape() {
        round_trip(
            &ReceiveEvent::WebsocketReceive(Message::Text("hé".into())),
            json!({"type": "websocket.receive", "text": "hé"}),
        );
        round_trip(
            &ReceiveEvent::WebsocketReceive(Message::Binary(Bytes::from_static(b"\x00\xff"))),
            json!({"type": "websocket.receive", "bytes": "\u{0}\u{ff}"}),
        );
        round_trip(
            &ReceiveEvent::WebsocketDisconnect {
                code: 1005,
                reason: String::new(),
            },
            json!({"type": "websocket.disconnect", "code": 1005, "reason": ""}),
        );
        round_trip(
            &SendEvent::WebsocketAccept {
                subprotocol: Some("chat".into()),
                headers: Headers::new(),
            },
            json!({"type": "websocket.accept", "subprotocol": "chat", "headers": []}),
        );
        round_trip(
            &SendEvent::WebsocketSend(Message::Text("x".into())),
            json!({"type": "websocket.send", "text": "x"}),
        );
        let close: SendEvent = serde_json::from_value(json!({"type": "websocket.close"})).unwrap();
        assert_eq!(
            close,
            SendEvent::WebsocketClose {
                code: 1000,
                reason: String::new()
            }
        );
        assert!(serde_json::from_value::<SendEvent>(
            json!({"type": "websocket.send", "text": "a", "bytes": "b"})
        )
        .is_err());
        assert!(serde_json::from_value::<SendEvent>(json!({"type": "websocket.send"})).is_err());
        round_trip(
            &SendEvent::WebsocketKeepalive {
                interval: Duration::from_secs(20),
                timeout: Some(Duration::from_millis(5500)),
            },
            json!({"type": "websocket.keepalive", "interval": 20.0, "timeout": 5.5}),
        );
    }

    #[test]
    fn sse_events_json_shape() {
        let start: SendEvent = serde_json::from_value(json!({"type": "sse.start"})).unwrap();
        assert_eq!(
            start,
            SendEvent::SseStart {
                status: 200,
                headers: Headers::new()
            }
        );
        round_trip(
            &SendEvent::SseSend {
                event: Some("tick".into()),
                data: "1\n2".into(),
                id: None,
                retry: Some(3000),
            },
            json!({"type": "sse.send", "event": "tick", "data": "1\n2", "retry": 3000}),
        );
        assert!(serde_json::from_value::<SendEvent>(json!({"type": "sse.send"})).is_err());
        round_trip(
            &ReceiveEvent::SseDisconnect {
                reason: DisconnectReason::ClientClosed,
            },
            json!({"type": "sse.disconnect", "reason": "client_closed"}),
        );
        round_trip(
            &SendEvent::SseHttpResponseBody(ResponseBody {
                bytes: Bytes::from_static(b"no"),
                ..Default::default()
            }),
            json!({"type": "sse.http.response.body", "body": "no", "more": 0}),
        );
    }

    #[test]
    fn parsing_accepts_defaults_and_extra_keys() {
        let e: SendEvent = serde_json::from_value(
            json!({"type": "http.response.start", "status": 204, "x-extra": true}),
        )
        .unwrap();
        assert_eq!(e, SendEvent::start(204, Headers::new()));
        let e: SendEvent = serde_json::from_value(json!({"type": "http.response.body"})).unwrap();
        assert_eq!(e, SendEvent::body(Bytes::new(), false));
        assert!(serde_json::from_value::<SendEvent>(json!({"type": "http.nope"})).is_err());
        assert!(
            serde_json::from_value::<SendEvent>(json!({"type": "http.response.start"})).is_err(),
            "status is required"
        );
        assert!(serde_json::from_value::<SendEvent>(
            json!({"type": "http.response.body", "more": 2})
        )
        .is_err());
    }
}
