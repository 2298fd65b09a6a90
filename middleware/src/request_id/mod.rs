//! `RequestId`: an id per request, taken from the client or made up, for correlating logs.
//!
//! ```
//! use pagi::{BoxError, Headers, Receiver, Scope, SendEvent, Sender};
//! use pagi_middleware::request_id::RequestId;
//! use pagi_middleware::Stack;
//!
//! async fn app(scope: Scope, _rx: Receiver, tx: Sender) -> Result<(), BoxError> {
//!     // The id is in the scope, both as a header and as an extension.
//!     let req = scope.request().ok_or("not a request")?;
//!     let id = req.extensions.other["request_id"].as_str().unwrap_or_default();
//!     assert_eq!(req.headers.get("x-request-id").map(|v| &v[..]), Some(id.as_bytes()));
//!     // The response gets an `x-request-id` header without the app doing anything.
//!     tx.send(SendEvent::start(200, Headers::new())).await?;
//!     tx.send(SendEvent::body("ok", false)).await?;
//!     Ok(())
//! }
//!
//! let wrapped = Stack::new().layer(RequestId::new()).app(app);
//! # let _ = wrapped;
//! // Another header name, and ids never taken from the client:
//! let custom = RequestId::new().header("X-Correlation-Id").trust_incoming(false);
//! # let _ = custom;
//! ```
//!
//! # Behaviour
//!
//! For `http`, `websocket` and `sse` scopes (others pass through untouched):
//!
//! - **The id.** If the request has exactly one field of the configured name (`x-request-id`
//!   by default) and its value is a sane token, 1 to 128 characters of `A-Z a-z 0-9 . _ -`, that
//!   value is the id. Otherwise (no field, several, an empty or odd value, or
//!   [`trust_incoming(false)`](RequestId::trust_incoming)) a new one is made.
//! - **New ids** look like UUIDs (`8-4-4-4-12` lowercase hex, version 4 and variant bits set).
//!   They are unique in practice but **not secret**: they come from std's per-process random
//!   SipHash keys applied to a counter and the time, not from a cryptographic generator. Do not
//!   use them as tokens.
//! - **In the scope.** The app's scope (a copy) carries the id in `extensions.other["request_id"]`
//!   (a JSON string) and as the request header: a made-up id replaces every field of that name
//!   with one field, at the place of the first.
//! - **In the response.** The header is added to the first answer the app sends,
//!   `http.response.start`, `sse.start`, `websocket.accept`, or a denial
//!   (`sse.http.response.start`, `websocket.http.response.start`), unless the app already set
//!   a field of that name (any case), which is then left alone.
//!
//! A client can choose its id when incoming ids are trusted, so treat it as a label for logs,
//! never as proof of anything. Behind a proxy that sets the header, keep the default; facing
//! clients directly, consider `trust_incoming(false)`.

use bytes::Bytes;
use pagi::{App, Error, Headers, Receiver, Scope, SendEvent, Sender, Sink};
use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::util::set_header_bytes;
use crate::Layer;

#[cfg(test)]
mod tests;

/// The longest incoming id accepted.
const MAX_LEN: usize = 128;

/// The request-id middleware: a [`Layer`]. See the [module docs](self).
#[derive(Clone)]
pub struct RequestId {
    /// The header name, lowercase.
    name: Bytes,
    trust_incoming: bool,
}

impl RequestId {
    /// Uses the `x-request-id` header and trusts sane incoming ids.
    pub fn new() -> Self {
        RequestId {
            name: Bytes::from_static(b"x-request-id"),
            trust_incoming: true,
        }
    }

    /// Uses the header `name` instead of `x-request-id` (stored lowercased, matched in any
    /// case).
    ///
    /// # Panics
    ///
    /// If `name` is not a valid header name (an RFC 9110 token). This is configuration, checked
    /// once when the middleware is built.
    pub fn header(self, name: &str) -> Self {
        assert!(
            pagi::headers::is_token(name.as_bytes()),
            "RequestId::header: {name:?} is not a valid header name"
        );
        RequestId {
            name: Bytes::from(name.to_ascii_lowercase()),
            ..self
        }
    }

    /// Whether an id sent by the client is kept (`true`, the default) or always replaced.
    pub fn trust_incoming(self, yes: bool) -> Self {
        RequestId {
            trust_incoming: yes,
            ..self
        }
    }

    /// The header name, lowercase.
    fn name(&self) -> &str {
        // Built from a `&str` (or a static ASCII name), so this never falls back.
        std::str::from_utf8(&self.name).unwrap_or("x-request-id")
    }

    /// The id for a request with these headers: the client's, or a new one.
    fn id_for(&self, headers: &Headers) -> (Bytes, bool) {
        if self.trust_incoming {
            let mut values = headers.get_all(self.name());
            if let (Some(v), None) = (values.next(), values.next()) {
                if is_sane(v) {
                    return (v.clone(), true);
                }
            }
        }
        (Bytes::from(new_id()), false)
    }
}

impl Default for RequestId {
    fn default() -> Self {
        RequestId::new()
    }
}

impl fmt::Debug for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestId")
            .field("header", &self.name())
            .field("trust_incoming", &self.trust_incoming)
            .finish()
    }
}

/// 1 to [`MAX_LEN`] bytes of `A-Z a-z 0-9 . _ -`.
fn is_sane(v: &[u8]) -> bool {
    (1..=MAX_LEN).contains(&v.len())
        && v.iter()
            .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// A new UUID-shaped id (version 4 layout): std's randomly keyed SipHash over a process-wide
/// counter and the time.
fn new_id() -> String {
    static KEYS: OnceLock<RandomState> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let keys = KEYS.get_or_init(RandomState::new);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let hi = keys.hash_one((n, nanos, 0u8));
    let lo = keys.hash_one((n, nanos, 1u8));
    let mut v = (u128::from(hi) << 64) | u128::from(lo);
    v = (v & !(0xf << 76)) | (0x4 << 76); // version 4
    v = (v & !(0x3 << 62)) | (0x2 << 62); // variant 10
    let hex = format!("{v:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

impl<A: App> Layer<A> for RequestId {
    type App = RequestIdApp<A>;

    fn layer(&self, inner: A) -> Self::App {
        RequestIdApp {
            inner,
            layer: self.clone(),
        }
    }
}

/// An app wrapped in [`RequestId`].
#[derive(Clone)]
pub struct RequestIdApp<A> {
    inner: A,
    layer: RequestId,
}

impl<A> fmt::Debug for RequestIdApp<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestIdApp")
            .field("layer", &self.layer)
            .finish_non_exhaustive()
    }
}

impl<A: App> App for RequestIdApp<A> {
    type Future = A::Future;

    fn call(&self, mut scope: Scope, receive: Receiver, send: Sender) -> Self::Future {
        let (Scope::Http(req) | Scope::Sse(req) | Scope::Websocket(req)) = &mut scope else {
            return self.inner.call(scope, receive, send);
        };
        let (id, from_client) = self.layer.id_for(&req.headers);
        if !from_client {
            set_header_bytes(&mut req.headers, self.layer.name.clone(), id.clone());
        }
        // The id is ASCII by construction (sane or made up here).
        let text = String::from_utf8_lossy(&id).into_owned();
        req.extensions
            .other
            .insert("request_id".to_owned(), serde_json::Value::String(text));
        let send = Sender::new(Arc::new(Stamp {
            inner: send,
            name: self.layer.name.clone(),
            value: id,
        }));
        self.inner.call(scope, receive, send)
    }
}

/// A sink that adds the id header to the answer that starts the response.
struct Stamp {
    inner: Sender,
    name: Bytes,
    value: Bytes,
}

impl Sink for Stamp {
    fn poll_send(
        &self,
        cx: &mut Context<'_>,
        event: &mut Option<SendEvent>,
    ) -> Poll<Result<(), Error>> {
        if let Some(
            SendEvent::HttpResponseStart { headers, .. }
            | SendEvent::SseStart { headers, .. }
            | SendEvent::SseHttpResponseStart { headers, .. }
            | SendEvent::WebsocketAccept { headers, .. }
            | SendEvent::WebsocketHttpResponseStart { headers, .. },
        ) = event.as_mut()
        {
            // Polled again while pending, the event already has the field: added once.
            let present = headers
                .iter()
                .any(|(n, _)| n.eq_ignore_ascii_case(&self.name));
            if !present {
                headers.push(self.name.clone(), self.value.clone());
            }
        }
        self.inner.poll_send(cx, event)
    }
}
