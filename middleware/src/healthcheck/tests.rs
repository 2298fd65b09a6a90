use super::*;
use crate::testkit::{body, get, run, start_headers, Recorder};
use pagi::{HttpScope, LifespanScope, Method, State};
use std::sync::atomic::{AtomicBool, Ordering};

fn req(method: &'static str, path: &str) -> Scope {
    let mut s = get(path, &[("host", "h")]);
    s.method = Method::from_bytes(bytes::Bytes::from_static(method.as_bytes())).unwrap();
    Scope::Http(s)
}

#[test]
fn get_is_answered_without_the_app() {
    let rec = Recorder::default();
    let app = Healthcheck::new("/healthz").layer(rec.clone());
    let (result, events) = run(&app, req("GET", "/healthz"));
    assert!(result.is_ok());
    let (status, h) = start_headers(&events).unwrap();
    assert_eq!(status, 200);
    assert_eq!(
        h,
        Headers::new()
            .with("content-type", "text/plain; charset=utf-8")
            .with("content-length", "3")
            .with("cache-control", "no-store")
    );
    assert_eq!(body(&events), b"OK\n");
    assert_eq!(events.len(), 2);
    assert!(matches!(events[1], SendEvent::HttpResponseBody(ref b) if !b.more));
    assert!(rec.seen().is_empty());
}

#[test]
fn head_has_no_body() {
    let rec = Recorder::default();
    let app = Healthcheck::new("/healthz").layer(rec.clone());
    let (result, events) = run(&app, req("HEAD", "/healthz"));
    assert!(result.is_ok());
    let (status, h) = start_headers(&events).unwrap();
    assert_eq!(status, 200);
    assert_eq!(h.get("content-length").map(|v| &v[..]), Some(&b"3"[..]));
    assert_eq!(body(&events), b"");
    assert!(rec.seen().is_empty());
}

#[test]
fn failing_check_gives_503() {
    static UP: AtomicBool = AtomicBool::new(false);
    let app = Healthcheck::new("/healthz")
        .check(|| UP.load(Ordering::SeqCst))
        .layer(Recorder::default());
    let (_, events) = run(&app, req("GET", "/healthz"));
    assert_eq!(start_headers(&events).map(|(s, _)| s), Some(503));
    assert_eq!(body(&events), b"Service Unavailable\n");
    let (_, events) = run(&app, req("HEAD", "/healthz"));
    assert_eq!(start_headers(&events).map(|(s, _)| s), Some(503));
    assert_eq!(body(&events), b"");
    UP.store(true, Ordering::SeqCst);
    let (_, events) = run(&app, req("GET", "/healthz"));
    assert_eq!(start_headers(&events).map(|(s, _)| s), Some(200));
}

#[test]
fn everything_else_reaches_the_app() {
    let rec = Recorder::default();
    let app = Healthcheck::new("/healthz").layer(rec.clone());
    let mut with_query = get("/healthz", &[]);
    with_query.query_string = bytes::Bytes::from_static(b"full=1");
    let mut cases = vec![
        req("POST", "/healthz"),
        req("get", "/healthz"),
        req("OPTIONS", "/healthz"),
        req("GET", "/healthz/"),
        req("GET", "/healthz2"),
        req("GET", "/HEALTHZ"),
        req("GET", "/"),
        Scope::Sse(get("/healthz", &[])),
        Scope::Websocket(get("/healthz", &[])),
        Scope::Lifespan(LifespanScope::new(State::shared())),
    ];
    let n = cases.len();
    for scope in cases.drain(..) {
        let kind = scope.kind();
        let (result, events) = run(&app, scope);
        assert!(result.is_ok(), "{kind}");
        assert!(!events.is_empty(), "{kind}");
        assert_ne!(body(&events), b"OK\n");
    }
    assert_eq!(rec.seen().len(), n);

    // The query string does not matter: this one is answered here.
    let (_, events) = run(&app, Scope::Http(with_query));
    assert_eq!(body(&events), b"OK\n");
    assert_eq!(rec.seen().len(), n);
}

#[test]
fn path_includes_the_root_path() {
    let rec = Recorder::default();
    let app = Healthcheck::new("/api/healthz").layer(rec.clone());
    let mut s = HttpScope::new(Method::GET, "/api/healthz");
    s.root_path = std::sync::Arc::from("/api");
    let (_, events) = run(&app, Scope::Http(s));
    assert_eq!(body(&events), b"OK\n");
    assert!(rec.seen().is_empty());
}
