use super::*;
use crate::testkit::{get, run, start_headers, Recorder};
use pagi::{LifespanScope, ReceiveEvent, State};
use std::collections::HashSet;

fn id_in_scope(rec: &Recorder) -> String {
    let req = rec.only();
    let id = req.extensions.other["request_id"]
        .as_str()
        .expect("request_id is a string")
        .to_owned();
    let mut fields = req.headers.get_all("x-request-id");
    assert_eq!(fields.next().map(|v| &v[..]), Some(id.as_bytes()));
    assert_eq!(fields.next(), None, "exactly one field");
    id
}

fn response_ids(events: &[SendEvent], name: &str) -> Vec<Bytes> {
    let (_, h) = start_headers(events).expect("a start");
    h.get_all(name).cloned().collect()
}

fn looks_generated(id: &str) -> bool {
    let parts: Vec<&str> = id.split('-').collect();
    parts.iter().map(|p| p.len()).eq([8, 4, 4, 4, 12])
        && id
            .bytes()
            .all(|b| b == b'-' || b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        && parts[2].starts_with('4')
        && matches!(parts[3].as_bytes()[0], b'8' | b'9' | b'a' | b'b')
}

#[test]
fn keeps_a_sane_incoming_id() {
    let rec = Recorder::default();
    let app = RequestId::new().layer(rec.clone());
    let scope = get("/", &[("host", "h"), ("x-request-id", "abc-123_X.y")]);
    let (result, events) = run(&app, Scope::Http(scope));
    assert!(result.is_ok());
    assert_eq!(id_in_scope(&rec), "abc-123_X.y");
    assert_eq!(response_ids(&events, "x-request-id"), ["abc-123_X.y"]);
    // The scope's headers are otherwise unchanged.
    assert_eq!(rec.only().headers.len(), 2);
}

#[test]
fn replaces_missing_or_odd_ids() {
    let long = "a".repeat(129);
    let max = "a".repeat(128);
    for (headers, keep) in [
        (vec![], None),
        (vec![("x-request-id", "")], None),
        (vec![("x-request-id", "has space")], None),
        (vec![("x-request-id", "semi;colon")], None),
        (vec![("x-request-id", "ünï")], None),
        (vec![("x-request-id", long.as_str())], None),
        (vec![("x-request-id", max.as_str())], Some(max.as_str())),
        (vec![("x-request-id", "a"), ("x-request-id", "b")], None),
    ] {
        let rec = Recorder::default();
        let app = RequestId::new().layer(rec.clone());
        let mut scope = get("/", &[("accept", "*/*")]);
        for (n, v) in &headers {
            scope.headers.push(n.to_string(), v.to_string());
        }
        let (_, events) = run(&app, Scope::Http(scope));
        let id = id_in_scope(&rec);
        match keep {
            Some(k) => assert_eq!(id, k),
            None => assert!(looks_generated(&id), "{headers:?} -> {id}"),
        }
        assert_eq!(response_ids(&events, "x-request-id"), [id.as_str()]);
        // A replaced field takes the place of the first one.
        if !headers.is_empty() {
            assert_eq!(
                &rec.only().headers.iter().nth(1).unwrap().0[..],
                b"x-request-id"
            );
        }
    }
}

#[test]
fn trust_incoming_false_always_generates() {
    let rec = Recorder::default();
    let app = RequestId::new().trust_incoming(false).layer(rec.clone());
    let (_, events) = run(
        &app,
        Scope::Http(get("/", &[("x-request-id", "client-chosen")])),
    );
    let id = id_in_scope(&rec);
    assert!(looks_generated(&id));
    assert_eq!(response_ids(&events, "x-request-id"), [id.as_str()]);
}

#[test]
fn generated_ids_are_unique() {
    let ids: HashSet<String> = (0..10_000).map(|_| new_id()).collect();
    assert_eq!(ids.len(), 10_000);
    assert!(ids
        .iter()
        .all(|id| looks_generated(id) && is_sane(id.as_bytes())));
}

#[test]
fn app_set_header_is_left_alone() {
    let rec = Recorder::with_headers(Headers::new().with("X-Request-ID", "from-app"));
    let app = RequestId::new().layer(rec.clone());
    let (_, events) = run(
        &app,
        Scope::Http(get("/", &[("x-request-id", "from-client")])),
    );
    let (_, h) = start_headers(&events).unwrap();
    assert_eq!(h.len(), 1);
    assert_eq!(
        h.get("x-request-id").map(|v| &v[..]),
        Some(&b"from-app"[..])
    );
}

#[test]
fn custom_header_name() {
    let rec = Recorder::default();
    let app = RequestId::new()
        .header("X-Correlation-Id")
        .layer(rec.clone());
    let (_, events) = run(
        &app,
        Scope::Http(get("/", &[("x-correlation-id", "corr-1")])),
    );
    let req = rec.only();
    assert_eq!(req.extensions.other["request_id"], "corr-1");
    assert!(!req.headers.contains("x-request-id"));
    assert_eq!(response_ids(&events, "x-correlation-id"), ["corr-1"]);
    let (_, h) = start_headers(&events).unwrap();
    assert_eq!(&h.iter().next().unwrap().0[..], b"x-correlation-id");
    assert!(!h.contains("x-request-id"));
}

#[test]
#[should_panic(expected = "not a valid header name")]
fn invalid_header_name_panics_at_configuration() {
    let _ = RequestId::new().header("bad name");
}

#[test]
fn sse_and_websocket_answers_are_stamped() {
    let rec = Recorder::default();
    let app = RequestId::new().layer(rec.clone());
    let (_, events) = run(&app, Scope::Sse(get("/s", &[("x-request-id", "sse-1")])));
    assert!(matches!(events[..], [SendEvent::SseStart { .. }]));
    assert_eq!(response_ids(&events, "x-request-id"), ["sse-1"]);

    let (_, events) = run(
        &app,
        Scope::Websocket(get("/w", &[("x-request-id", "ws-1")])),
    );
    assert!(matches!(events[..], [SendEvent::WebsocketAccept { .. }]));
    assert_eq!(response_ids(&events, "x-request-id"), ["ws-1"]);
}

/// An app that declines, so that denial starts are checked too, and sends a body event that
/// must come through unchanged.
async fn denier(scope: Scope, rx: Receiver, tx: Sender) -> Result<(), pagi::BoxError> {
    match scope {
        Scope::Websocket(_) => {
            assert_eq!(rx.receive().await?, ReceiveEvent::WebsocketConnect);
            tx.send(SendEvent::WebsocketHttpResponseStart {
                status: 401,
                headers: Headers::new(),
            })
            .await?;
        }
        Scope::Sse(_) => {
            tx.send(SendEvent::SseHttpResponseStart {
                status: 204,
                headers: Headers::new(),
            })
            .await?;
        }
        _ => {
            tx.send(SendEvent::start(200, Headers::new())).await?;
            tx.send(SendEvent::body("x", false)).await?;
        }
    }
    Ok(())
}

#[test]
fn denials_are_stamped_and_other_events_untouched() {
    let app = RequestId::new().layer(denier);
    for scope in [
        Scope::Websocket(get("/", &[("x-request-id", "d-1")])),
        Scope::Sse(get("/", &[("x-request-id", "d-1")])),
    ] {
        let (result, events) = run(&app, scope);
        assert!(result.is_ok());
        assert_eq!(response_ids(&events, "x-request-id"), ["d-1"]);
    }
    let (_, events) = run(&app, Scope::Http(get("/", &[])));
    assert_eq!(events[1], SendEvent::body("x", false));
}

#[test]
fn lifespan_passes_through() {
    let rec = Recorder::default();
    let app = RequestId::new().layer(rec.clone());
    let (result, events) = run(&app, Scope::Lifespan(LifespanScope::new(State::shared())));
    assert!(result.is_ok());
    assert_eq!(events, [SendEvent::LifespanStartupComplete]);
    assert!(matches!(rec.seen()[..], [Scope::Lifespan(_)]));
}

/// A sink that is not ready on every other poll, like a server with a full write queue.
#[derive(Default)]
struct Slow {
    polls: std::sync::Mutex<u32>,
    taken: std::sync::Mutex<Vec<SendEvent>>,
}

impl Sink for Slow {
    fn poll_send(
        &self,
        cx: &mut Context<'_>,
        event: &mut Option<SendEvent>,
    ) -> Poll<Result<(), Error>> {
        let mut polls = self.polls.lock().unwrap();
        *polls += 1;
        if *polls % 2 == 1 {
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        if let Some(e) = event.take() {
            self.taken.lock().unwrap().push(e);
        }
        Poll::Ready(Ok(()))
    }
}

#[test]
fn header_is_added_once_when_the_server_makes_send_wait() {
    let sink = Arc::new(Slow::default());
    let send = Sender::new(Arc::new(Stamp {
        inner: Sender::new(sink.clone()),
        name: Bytes::from_static(b"x-request-id"),
        value: Bytes::from_static(b"id-1"),
    }));
    futures::executor::block_on(send.send(SendEvent::start(200, Headers::new()))).unwrap();
    assert!(*sink.polls.lock().unwrap() >= 2);
    let taken = sink.taken.lock().unwrap();
    let (_, h) = start_headers(&taken).unwrap();
    assert_eq!(h.len(), 1);
}
