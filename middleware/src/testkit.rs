//! Test doubles for driving a middleware without a server: a [`Source`] that yields scripted
//! events, a [`Sink`] that collects what is sent, and an inner app that records the scope it got.

use futures::future::{BoxFuture, FutureExt};
use pagi::{
    App, BoxError, Error, Headers, HttpScope, Method, ReceiveEvent, Receiver, Scope, SendEvent,
    Sender, Sink, Source,
};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

/// Yields the scripted events in order, then `after` forever.
pub(crate) struct Script {
    events: Mutex<VecDeque<ReceiveEvent>>,
    after: ReceiveEvent,
}

impl Source for Script {
    fn poll_receive(&self, _cx: &mut Context<'_>) -> Poll<Result<ReceiveEvent, Error>> {
        let next = self.events.lock().unwrap().pop_front();
        Poll::Ready(Ok(next.unwrap_or_else(|| self.after.clone())))
    }
}

/// Accepts every event and keeps it.
#[derive(Default)]
pub(crate) struct Collect(Mutex<Vec<SendEvent>>);

impl Collect {
    pub(crate) fn events(&self) -> Vec<SendEvent> {
        self.0.lock().unwrap().clone()
    }
}

impl Sink for Collect {
    fn poll_send(
        &self,
        _cx: &mut Context<'_>,
        event: &mut Option<SendEvent>,
    ) -> Poll<Result<(), Error>> {
        if let Some(e) = event.take() {
            self.0.lock().unwrap().push(e);
        }
        Poll::Ready(Ok(()))
    }
}

/// The disconnect event `receive` yields once the script is used up, per scope type.
fn after(scope: &Scope) -> ReceiveEvent {
    match scope {
        Scope::Websocket(_) => ReceiveEvent::WebsocketDisconnect {
            code: 1006,
            reason: "client_closed".into(),
        },
        Scope::Sse(_) => ReceiveEvent::SseDisconnect {
            reason: pagi::DisconnectReason::ClientClosed,
        },
        Scope::Lifespan(_) => ReceiveEvent::LifespanShutdown,
        _ => ReceiveEvent::HttpDisconnect,
    }
}

/// The first events of a scope type (`websocket.connect`, an empty body).
fn first_events(scope: &Scope) -> Vec<ReceiveEvent> {
    match scope {
        Scope::Websocket(_) => vec![ReceiveEvent::WebsocketConnect],
        Scope::Sse(_) => vec![ReceiveEvent::SseRequest {
            body: Default::default(),
            more: false,
        }],
        Scope::Lifespan(_) => vec![ReceiveEvent::LifespanStartup],
        _ => vec![ReceiveEvent::HttpRequest {
            body: Default::default(),
            more: false,
        }],
    }
}

/// Runs `app` on `scope` with the usual first events; returns its result and what it sent.
pub(crate) fn run<A: App>(app: &A, scope: Scope) -> (Result<(), BoxError>, Vec<SendEvent>) {
    let events = first_events(&scope);
    run_with(app, scope, events)
}

/// Runs `app` on `scope` with `events` scripted for `receive`.
pub(crate) fn run_with<A: App>(
    app: &A,
    scope: Scope,
    events: Vec<ReceiveEvent>,
) -> (Result<(), BoxError>, Vec<SendEvent>) {
    let source = Arc::new(Script {
        events: Mutex::new(events.into()),
        after: after(&scope),
    });
    let sink = Arc::new(Collect::default());
    let result = futures::executor::block_on(app.call(
        scope,
        Receiver::new(source),
        Sender::new(sink.clone()),
    ));
    (result, sink.events())
}

/// An inner app that records every scope it is called with and answers minimally: 200 "app" on
/// http, an accept on websocket, a start on sse, startup complete on lifespan. Its answers carry
/// `extra` as response headers.
#[derive(Clone, Default)]
pub(crate) struct Recorder {
    seen: Arc<Mutex<Vec<Scope>>>,
    extra: Headers,
}

impl Recorder {
    /// A recorder whose responses carry `extra`.
    pub(crate) fn with_headers(extra: Headers) -> Self {
        Recorder {
            seen: Default::default(),
            extra,
        }
    }

    /// The scopes seen so far.
    pub(crate) fn seen(&self) -> Vec<Scope> {
        self.seen.lock().unwrap().clone()
    }

    /// The only request scope seen (panics unless exactly one call was made).
    pub(crate) fn only(&self) -> HttpScope {
        let seen = self.seen();
        assert_eq!(seen.len(), 1, "expected one call, got {seen:?}");
        seen[0].request().expect("a request scope").clone()
    }
}

impl App for Recorder {
    type Future = BoxFuture<'static, Result<(), BoxError>>;

    fn call(&self, scope: Scope, receive: Receiver, send: Sender) -> Self::Future {
        self.seen.lock().unwrap().push(scope.clone());
        let extra = self.extra.clone();
        async move {
            match scope {
                Scope::Http(_) => {
                    send.send(SendEvent::start(200, extra)).await?;
                    send.send(SendEvent::body("app", false)).await?;
                }
                Scope::Websocket(_) => {
                    receive.receive().await?;
                    send.send(SendEvent::WebsocketAccept {
                        subprotocol: None,
                        headers: extra,
                    })
                    .await?;
                }
                Scope::Sse(_) => {
                    send.send(SendEvent::SseStart {
                        status: 200,
                        headers: extra,
                    })
                    .await?;
                }
                Scope::Lifespan(_) => {
                    receive.receive().await?;
                    send.send(SendEvent::LifespanStartupComplete).await?;
                }
                other => return Err(format!("unsupported {}", other.kind()).into()),
            }
            Ok(())
        }
        .boxed()
    }
}

/// An http GET scope for `path` with the given request headers.
pub(crate) fn get(path: &str, headers: &[(&str, &str)]) -> HttpScope {
    let mut s = HttpScope::new(Method::GET, path);
    s.headers = headers
        .iter()
        .map(|&(n, v)| (n.to_owned(), v.to_owned()))
        .collect();
    s
}

/// The headers of the first start-like event (any `*.start` or `websocket.accept`).
pub(crate) fn start_headers(events: &[SendEvent]) -> Option<(u16, Headers)> {
    events.iter().find_map(|e| match e {
        SendEvent::HttpResponseStart {
            status, headers, ..
        }
        | SendEvent::SseStart { status, headers }
        | SendEvent::SseHttpResponseStart { status, headers }
        | SendEvent::WebsocketHttpResponseStart { status, headers } => {
            Some((*status, headers.clone()))
        }
        SendEvent::WebsocketAccept { headers, .. } => Some((101, headers.clone())),
        _ => None,
    })
}

/// The body bytes of every body-like event, concatenated.
pub(crate) fn body(events: &[SendEvent]) -> Vec<u8> {
    let mut out = Vec::new();
    for e in events {
        if let SendEvent::HttpResponseBody(b)
        | SendEvent::SseHttpResponseBody(b)
        | SendEvent::WebsocketHttpResponseBody(b) = e
        {
            out.extend_from_slice(&b.bytes);
        }
    }
    out
}
