//! The middleware around fake apps, with a fake server: a scripted `Source` and a `Sink` that
//! records what it takes.

use super::*;
use crate::Stack;
use futures::executor::block_on;
use pagi::{
    ConnectionInfo, DisconnectReason, Headers, HttpScope, LifespanScope, Message, Method,
    ResponseBody, Sink, Source, State,
};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

/// The server side of a call: yields `script`, then `after` forever; takes every event, except
/// that `refuse` may fail one, and `hold` makes each event wait one poll before it is taken.
struct Server {
    script: Mutex<VecDeque<ReceiveEvent>>,
    after: ReceiveEvent,
    sent: Mutex<Vec<SendEvent>>,
    refuse: fn(&SendEvent) -> Option<Error>,
    hold: bool,
    held: AtomicBool,
    polls: AtomicUsize,
}

impl Server {
    fn new(script: Vec<ReceiveEvent>, after: ReceiveEvent) -> Arc<Server> {
        Server::with(script, after, |_| None, false)
    }

    fn with(
        script: Vec<ReceiveEvent>,
        after: ReceiveEvent,
        refuse: fn(&SendEvent) -> Option<Error>,
        hold: bool,
    ) -> Arc<Server> {
        Arc::new(Server {
            script: Mutex::new(script.into()),
            after,
            sent: Mutex::new(Vec::new()),
            refuse,
            hold,
            held: AtomicBool::new(false),
            polls: AtomicUsize::new(0),
        })
    }

    fn receiver(self: &Arc<Self>) -> Receiver {
        Receiver::new(self.clone())
    }

    fn sender(self: &Arc<Self>) -> Sender {
        Sender::new(self.clone())
    }

    fn sent(&self) -> Vec<SendEvent> {
        lock(&self.sent).clone()
    }
}

impl Source for Server {
    fn poll_receive(&self, _: &mut Context<'_>) -> Poll<Result<ReceiveEvent, Error>> {
        let next = lock(&self.script).pop_front();
        Poll::Ready(Ok(next.unwrap_or_else(|| self.after.clone())))
    }
}

impl Sink for Server {
    fn poll_send(
        &self,
        cx: &mut Context<'_>,
        event: &mut Option<SendEvent>,
    ) -> Poll<Result<(), Error>> {
        self.polls.fetch_add(1, Ordering::Relaxed);
        if self.hold && !self.held.swap(true, Ordering::Relaxed) {
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        self.held.store(false, Ordering::Relaxed);
        let Some(ev) = event.take() else {
            return Poll::Ready(Ok(()));
        };
        if let Some(e) = (self.refuse)(&ev) {
            return Poll::Ready(Err(e));
        }
        lock(&self.sent).push(ev);
        Poll::Ready(Ok(()))
    }
}

/// `pagi.connection` of a client that has gone.
struct Gone;

impl ConnectionInfo for Gone {
    fn is_connected(&self) -> bool {
        false
    }
    fn disconnect_reason(&self) -> Option<DisconnectReason> {
        Some(DisconnectReason::ClientClosed)
    }
    fn poll_disconnect(&self, _: &mut Context<'_>) -> Poll<DisconnectReason> {
        Poll::Ready(DisconnectReason::ClientClosed)
    }
    fn response_started(&self) -> bool {
        false
    }
    fn response_complete(&self) -> Option<bool> {
        Some(false)
    }
}

/// A lint that collects what it finds.
fn collecting(strict: bool) -> (Lint, Arc<Mutex<Vec<Violation>>>) {
    let found = Arc::new(Mutex::new(Vec::new()));
    let sink = found.clone();
    let lint = Lint::new().on_violation(move |v| lock(&sink).push(v.clone()));
    (if strict { lint.strict() } else { lint }, found)
}

fn rules_of(found: &Mutex<Vec<Violation>>) -> Vec<&'static str> {
    lock(found).iter().map(|v| v.rule).collect()
}

fn http_scope() -> Scope {
    let mut s = HttpScope::new(Method::POST, "/echo");
    s.extensions.fullflush = true;
    Scope::Http(s)
}

fn request(body: &'static str) -> Vec<ReceiveEvent> {
    vec![ReceiveEvent::HttpRequest {
        body: body.into(),
        more: false,
    }]
}

/// Echoes the request body.
async fn echo(_: Scope, receive: Receiver, send: Sender) -> Result<(), BoxError> {
    let ReceiveEvent::HttpRequest { body, .. } = receive.receive().await? else {
        return Ok(());
    };
    let len = body.len().to_string();
    let headers = Headers::new().with("content-length", len);
    send.send(SendEvent::start(200, headers)).await?;
    send.send(SendEvent::body(body, false)).await?;
    Ok(())
}

/// Sends its body before its start.
async fn backwards(_: Scope, _: Receiver, send: Sender) -> Result<(), BoxError> {
    send.send(SendEvent::body("early", false)).await?;
    send.send(SendEvent::start(200, Headers::new())).await?;
    send.send(SendEvent::body("late", false)).await?;
    Ok(())
}

#[test]
fn a_correct_http_app_passes_unchanged() {
    let (lint, found) = collecting(true);
    let app = Stack::new().layer(lint).app(echo);
    let server = Server::new(request("ping"), ReceiveEvent::HttpDisconnect);
    block_on(app.call(http_scope(), server.receiver(), server.sender())).unwrap();
    assert_eq!(rules_of(&found), Vec::<&str>::new());
    assert_eq!(
        server.sent(),
        [
            SendEvent::start(200, Headers::new().with("content-length", "4")),
            SendEvent::body("ping", false)
        ]
    );
}

#[test]
fn violations_go_to_the_callback_and_the_result_is_kept() {
    let (lint, found) = collecting(false);
    let app = lint.layer(backwards);
    let server = Server::new(vec![], ReceiveEvent::HttpDisconnect);
    block_on(app.call(http_scope(), server.receiver(), server.sender())).unwrap();
    assert_eq!(rules_of(&found), ["body-before-start"]);
    assert!(lock(&found)[0].message.starts_with(
        "event #0 (sent http.response.body): http.response.body before http.response.start"
    ));
    // The events still reached the server, unchanged and in order.
    assert_eq!(server.sent().len(), 3);
}

#[test]
fn strict_mode_fails_the_call() {
    let (lint, found) = collecting(true);
    let app = lint.layer(backwards);
    let server = Server::new(vec![], ReceiveEvent::HttpDisconnect);
    let err = block_on(app.call(http_scope(), server.receiver(), server.sender())).unwrap_err();
    let lint_err = err.downcast_ref::<LintError>().expect("a LintError");
    assert_eq!(lint_err.violations(), &lock(&found)[..]);
    assert_eq!(lint_err.violations()[0].rule, "body-before-start");
    assert!(lint_err.app_error().is_none());
    let text = err.to_string();
    assert!(text.starts_with("the app broke 1 PAGI rule\n  - http [body-before-start]: event #0"));
}

#[test]
fn strict_mode_keeps_the_apps_error_as_the_source() {
    async fn fails(_: Scope, _: Receiver, send: Sender) -> Result<(), BoxError> {
        send.send(SendEvent::HttpFullflush).await?;
        Err("boom".into())
    }
    let (lint, _) = collecting(true);
    let app = lint.layer(fails);
    let server = Server::new(vec![], ReceiveEvent::HttpDisconnect);
    let err = block_on(app.call(http_scope(), server.receiver(), server.sender())).unwrap_err();
    let lint_err = err.downcast_ref::<LintError>().unwrap();
    assert_eq!(lint_err.violations()[0].rule, "fullflush-before-start");
    assert_eq!(
        std::error::Error::source(lint_err).unwrap().to_string(),
        "boom"
    );
    assert!(err.to_string().contains("(and failed: boom)"));
}

#[test]
fn a_clean_failing_call_keeps_its_error() {
    async fn fails(_: Scope, _: Receiver, _: Sender) -> Result<(), BoxError> {
        Err("unsupported scope".into())
    }
    let (lint, found) = collecting(true);
    let app = lint.layer(fails);
    let server = Server::new(vec![], ReceiveEvent::HttpDisconnect);
    let err = block_on(app.call(http_scope(), server.receiver(), server.sender())).unwrap_err();
    assert!(err.downcast_ref::<LintError>().is_none());
    assert_eq!(err.to_string(), "unsupported scope");
    assert!(lock(&found).is_empty());
}

#[test]
fn a_call_without_a_response_is_reported_at_return() {
    async fn silent(_: Scope, _: Receiver, _: Sender) -> Result<(), BoxError> {
        Ok(())
    }
    let (lint, found) = collecting(true);
    let app = lint.layer(silent);
    let server = Server::new(vec![], ReceiveEvent::HttpDisconnect);
    let err = block_on(app.call(http_scope(), server.receiver(), server.sender())).unwrap_err();
    assert_eq!(rules_of(&found), ["missing-response"]);
    assert!(err
        .to_string()
        .contains("when the call returned Ok after 0 events"));

    // Not when pagi.connection says the client has gone.
    let (lint, found) = collecting(true);
    let app = lint.layer(silent);
    let mut scope = HttpScope::new(Method::GET, "/");
    scope.connection = Some(Connection::new(Arc::new(Gone)));
    block_on(app.call(Scope::Http(scope), server.receiver(), server.sender())).unwrap();
    assert!(lock(&found).is_empty());
}

#[test]
fn a_receive_loop_after_the_disconnect_is_reported_once() {
    async fn spins(_: Scope, receive: Receiver, send: Sender) -> Result<(), BoxError> {
        send.send(SendEvent::start(204, Headers::new())).await?;
        send.send(SendEvent::body("", false)).await?;
        // A buggy loop that ignores http.disconnect (bounded here).
        for _ in 0..50 {
            let _ = receive.receive().await?;
        }
        Ok(())
    }
    let (lint, found) = collecting(false);
    let app = lint.layer(spins);
    let server = Server::new(request(""), ReceiveEvent::HttpDisconnect);
    block_on(app.call(http_scope(), server.receiver(), server.sender())).unwrap();
    assert_eq!(rules_of(&found), ["receive-after-disconnect"]);
    assert!(lock(&found)[0]
        .message
        .contains("received http.disconnect 10 times (first at event #3)"));
}

#[test]
fn a_refusal_the_rules_do_not_explain_leaves_the_state() {
    // The server cannot open the file; the app falls back to bytes.
    async fn fallback(_: Scope, _: Receiver, send: Sender) -> Result<(), BoxError> {
        send.send(SendEvent::start(200, Headers::new())).await?;
        if send.send(SendEvent::file("/missing")).await.is_err() {
            send.send(SendEvent::body("fallback", false)).await?;
        }
        Ok(())
    }
    let server = Server::with(
        vec![],
        ReceiveEvent::HttpDisconnect,
        |ev| match ev {
            SendEvent::HttpResponseBody(b) if b.file.is_some() => Some(Error::io("no such file")),
            _ => None,
        },
        false,
    );
    let (lint, found) = collecting(true);
    block_on(
        lint.layer(fallback)
            .call(http_scope(), server.receiver(), server.sender()),
    )
    .unwrap();
    assert!(lock(&found).is_empty());
    assert_eq!(server.sent().len(), 2);
}

#[test]
fn a_rejected_event_is_reported_and_the_app_can_recover() {
    // A conforming server refuses the bad subprotocol; the app retries with a good one.
    async fn retries(scope: Scope, receive: Receiver, send: Sender) -> Result<(), BoxError> {
        let Scope::Websocket(ws) = scope else {
            return Err("websocket only".into());
        };
        receive.receive().await?;
        let bad = SendEvent::WebsocketAccept {
            subprotocol: Some("v9".into()),
            headers: Headers::new(),
        };
        if send.send(bad).await.is_err() {
            let good = SendEvent::WebsocketAccept {
                subprotocol: ws.subprotocols.first().cloned(),
                headers: Headers::new(),
            };
            send.send(good).await?;
        }
        send.send(SendEvent::WebsocketSend(Message::Text("hi".into())))
            .await?;
        Ok(())
    }
    let server = Server::with(
        vec![ReceiveEvent::WebsocketConnect],
        ReceiveEvent::WebsocketDisconnect {
            code: 1000,
            reason: String::new(),
        },
        |ev| match ev {
            SendEvent::WebsocketAccept {
                subprotocol: Some(p),
                ..
            } if p != "v1" => Some(Error::invalid("not offered")),
            _ => None,
        },
        false,
    );
    let mut scope = HttpScope::new(Method::GET, "/ws");
    scope.subprotocols = vec!["v1".into()];
    let (lint, found) = collecting(false);
    block_on(
        lint.layer(retries)
            .call(Scope::Websocket(scope), server.receiver(), server.sender()),
    )
    .unwrap();
    assert_eq!(rules_of(&found), ["subprotocol-not-offered"]);
    assert!(lock(&found)[0]
        .message
        .starts_with("event #1 (sent websocket.accept)"));
}

#[test]
fn a_send_after_the_return_goes_to_the_callback() {
    let kept: Arc<Mutex<Option<Sender>>> = Arc::default();
    let slot = kept.clone();
    let app = move |_: Scope, _: Receiver, send: Sender| {
        let slot = slot.clone();
        async move {
            send.send(SendEvent::start(200, Headers::new())).await?;
            send.send(SendEvent::body("", false)).await?;
            *lock(&slot) = Some(send);
            Ok::<(), BoxError>(())
        }
    };
    let (lint, found) = collecting(true);
    let server = Server::new(vec![], ReceiveEvent::HttpDisconnect);
    block_on(
        lint.layer(app)
            .call(http_scope(), server.receiver(), server.sender()),
    )
    .unwrap();
    let send = lock(&kept).take().unwrap();
    block_on(send.send(SendEvent::body("late", false))).unwrap();
    assert_eq!(rules_of(&found), ["send-after-return"]);
    assert!(lock(&found)[0]
        .message
        .starts_with("event #2 (sent http.response.body)"));
}

#[test]
fn backpressure_passes_through() {
    // The server makes every send wait one poll; the app's send must wait too, and the event
    // must be offered exactly as often as without the lint.
    async fn probes(_: Scope, _: Receiver, send: Sender) -> Result<(), BoxError> {
        let mut start = send.send(SendEvent::start(200, Headers::new()));
        assert!(futures::poll!(&mut start).is_pending());
        start.await?;
        send.send(SendEvent::body("x", false)).await?;
        Ok(())
    }
    let (lint, found) = collecting(true);
    let server = Server::with(vec![], ReceiveEvent::HttpDisconnect, |_| None, true);
    block_on(
        lint.layer(probes)
            .call(http_scope(), server.receiver(), server.sender()),
    )
    .unwrap();
    assert!(lock(&found).is_empty());
    assert_eq!(server.polls.load(Ordering::Relaxed), 4);
    assert_eq!(server.sent().len(), 2);
}

#[test]
fn correct_websocket_sse_and_lifespan_apps_pass() {
    async fn app(scope: Scope, receive: Receiver, send: Sender) -> Result<(), BoxError> {
        match scope {
            Scope::Websocket(_) => {
                receive.receive().await?;
                let accept = SendEvent::WebsocketAccept {
                    subprotocol: None,
                    headers: Headers::new(),
                };
                send.send(accept).await?;
                while let ReceiveEvent::WebsocketReceive(m) = receive.receive().await? {
                    send.send(SendEvent::WebsocketSend(m)).await?;
                }
                Ok(())
            }
            Scope::Sse(_) => {
                receive.receive().await?;
                let keepalive = SendEvent::SseKeepalive {
                    interval: Duration::from_secs(15),
                    comment: None,
                };
                send.send(keepalive).await?;
                let start = SendEvent::SseStart {
                    status: 200,
                    headers: Headers::new(),
                };
                send.send(start).await?;
                let tick = SendEvent::SseSend {
                    event: Some("tick".into()),
                    data: "1".into(),
                    id: Some("1".into()),
                    retry: None,
                };
                send.send(tick).await?;
                send.send(SendEvent::SseClose {
                    reason: String::new(),
                })
                .await?;
                Ok(())
            }
            Scope::Lifespan(_) => loop {
                match receive.receive().await? {
                    ReceiveEvent::LifespanStartup => {
                        send.send(SendEvent::LifespanStartupComplete).await?
                    }
                    ReceiveEvent::LifespanShutdown => {
                        send.send(SendEvent::LifespanShutdownComplete).await?;
                        return Ok(());
                    }
                    _ => {}
                }
            },
            other => Err(format!("unsupported scope type {}", other.kind()).into()),
        }
    }
    let (lint, found) = collecting(true);
    let app = Stack::new().layer(lint).app(app);

    let ws = Server::new(
        vec![
            ReceiveEvent::WebsocketConnect,
            ReceiveEvent::WebsocketReceive(Message::Text("hi".into())),
        ],
        ReceiveEvent::WebsocketDisconnect {
            code: 1000,
            reason: "bye".into(),
        },
    );
    let scope = Scope::Websocket(HttpScope::new(Method::GET, "/ws"));
    block_on(app.call(scope, ws.receiver(), ws.sender())).unwrap();
    assert_eq!(ws.sent().len(), 2);

    let sse = Server::new(
        vec![ReceiveEvent::SseRequest {
            body: Default::default(),
            more: false,
        }],
        ReceiveEvent::SseDisconnect {
            reason: DisconnectReason::Custom("x-closed".into()),
        },
    );
    let scope = Scope::Sse(HttpScope::new(Method::GET, "/events"));
    block_on(app.call(scope, sse.receiver(), sse.sender())).unwrap();
    assert_eq!(sse.sent().len(), 4);

    let life = Server::new(
        vec![
            ReceiveEvent::LifespanStartup,
            ReceiveEvent::LifespanShutdown,
        ],
        ReceiveEvent::LifespanShutdown,
    );
    let scope = Scope::Lifespan(LifespanScope::new(State::shared()));
    block_on(app.call(scope, life.receiver(), life.sender())).unwrap();
    assert_eq!(life.sent().len(), 2);

    assert!(lock(&found).is_empty(), "{:#?}", lock(&found));
}

#[test]
fn broken_websocket_sse_and_lifespan_apps_are_caught() {
    async fn app(scope: Scope, receive: Receiver, send: Sender) -> Result<(), BoxError> {
        match scope {
            // Sends before accepting; never answers.
            Scope::Websocket(_) => {
                receive.receive().await?;
                send.send(SendEvent::WebsocketSend(Message::Text("x".into())))
                    .await?;
            }
            // Streams, then declines.
            Scope::Sse(_) => {
                let start = SendEvent::SseStart {
                    status: 200,
                    headers: Headers::new(),
                };
                send.send(start).await?;
                let decline = SendEvent::SseHttpResponseBody(ResponseBody::default());
                send.send(decline).await?;
            }
            // Answers startup before receiving it.
            Scope::Lifespan(_) => send.send(SendEvent::LifespanStartupComplete).await?,
            _ => {}
        }
        Ok(())
    }
    let (lint, found) = collecting(false);
    let app = lint.layer(app);
    let ws = Server::new(
        vec![ReceiveEvent::WebsocketConnect],
        ReceiveEvent::WebsocketDisconnect {
            code: 1006,
            reason: "client_closed".into(),
        },
    );
    let scope = Scope::Websocket(HttpScope::new(Method::GET, "/ws"));
    block_on(app.call(scope, ws.receiver(), ws.sender())).unwrap();
    assert_eq!(rules_of(&found), ["send-before-accept", "missing-answer"]);
    lock(&found).clear();

    let sse = Server::new(vec![], ReceiveEvent::HttpDisconnect);
    let scope = Scope::Sse(HttpScope::new(Method::GET, "/events"));
    block_on(app.call(scope, sse.receiver(), sse.sender())).unwrap();
    assert_eq!(rules_of(&found), ["mixed-response"]);
    lock(&found).clear();

    let life = Server::new(vec![], ReceiveEvent::LifespanStartup);
    let scope = Scope::Lifespan(LifespanScope::new(State::shared()));
    block_on(app.call(scope, life.receiver(), life.sender())).unwrap();
    assert_eq!(rules_of(&found), ["answer-without-event"]);
    assert!(lock(&found).iter().all(|v| v.info().is_some()));
}

#[test]
fn the_default_lint_is_lenient() {
    let lint = Lint::default();
    assert!(!lint.strict);
    assert_eq!(format!("{:?}", lint.strict()), "Lint { strict: true, .. }");
}
