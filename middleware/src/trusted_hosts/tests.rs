use super::*;
use crate::testkit::{body, get, run, run_with, start_headers, Recorder};
use pagi::{LifespanScope, State};

fn hosts() -> TrustedHosts {
    TrustedHosts::new(["Example.com", "*.example.org", "192.0.2.1", "::1"])
}

#[test]
fn matching_rules() {
    let h = hosts();
    for ok in [
        "example.com",
        "EXAMPLE.COM",
        "example.com:8443",
        "example.com.",
        "a.example.org",
        "a.b.example.org:80",
        "192.0.2.1",
        "192.0.2.1:8000",
        "[::1]",
        "[0:0::1]:8080",
    ] {
        assert!(h.allows(ok.as_bytes()), "{ok:?}");
    }
    for bad in [
        "",
        "example.org",
        "xexample.org",
        "example.com.evil.net",
        "evil-example.com",
        "www.example.com",
        "192.0.2.10",
        "[::2]",
        "example.com:99999",
        "example.com:80:80",
        "example.com/",
        "a b",
        "a.example.org/x",
        "évil.example.org",
    ] {
        assert!(!h.allows(bad.as_bytes()), "{bad:?}");
    }
    assert!(!h.allows(b"a.example.org\xff"));
}

#[test]
fn star_allows_everything() {
    let h = TrustedHosts::new(["example.com", "*"]);
    assert!(h.allows(b"anything.at.all"));
    assert!(h.allows(b"not a host"));
    assert!(h.admits(&Headers::new()));
}

#[test]
fn invalid_patterns() {
    let h = TrustedHosts::new([
        "a.*.com",
        "*example.com",
        "",
        "x.com:80",
        "*.[::1]",
        "ok.com",
    ]);
    assert!(h.allows(b"ok.com"));
    assert!(!h.allows(b"a.b.com"));
    assert_eq!(format!("{h:?}"), r#"["ok.com"]"#);
    for bad in [
        "a.*.com",
        "*example.com",
        "x.com:80",
        "*.",
        "*.[::1]",
        "a b",
    ] {
        let err = TrustedHosts::try_new(["ok.com", bad]).unwrap_err();
        assert!(err.contains(&format!("{bad:?}")), "{err}");
    }
    let ok = TrustedHosts::try_new(["ok.com", " *.Ok.org ", "[::1]", "*"]).unwrap();
    assert_eq!(format!("{ok:?}"), r#"["ok.com", "[::1]", *.ok.org, *]"#);
}

#[test]
fn missing_or_repeated_host_is_refused() {
    let h = hosts();
    assert!(!h.admits(&Headers::new()));
    assert!(!h.admits(
        &Headers::new()
            .with("host", "example.com")
            .with("host", "example.com")
    ));
    assert!(h.admits(&Headers::new().with("host", "example.com")));
}

fn app(rec: &Recorder) -> TrustedHostsApp<Recorder> {
    hosts().layer(rec.clone())
}

#[test]
fn allowed_http_request_reaches_the_app() {
    let rec = Recorder::default();
    let (result, events) = run(
        &app(&rec),
        Scope::Http(get("/", &[("host", "example.com")])),
    );
    assert!(result.is_ok());
    assert_eq!(start_headers(&events).map(|(s, _)| s), Some(200));
    assert_eq!(body(&events), b"app");
    assert_eq!(rec.seen().len(), 1);
}

#[test]
fn refused_http_request_gets_400_without_the_app() {
    let rec = Recorder::default();
    for headers in [&[("host", "evil.example")][..], &[]] {
        let (result, events) = run(&app(&rec), Scope::Http(get("/", headers)));
        assert!(result.is_ok());
        let (status, h) = start_headers(&events).unwrap();
        assert_eq!(status, 400);
        assert_eq!(
            h.get("content-type").map(|v| &v[..]),
            Some(&b"text/plain; charset=utf-8"[..])
        );
        assert_eq!(h.get("content-length").map(|v| &v[..]), Some(&b"20"[..]));
        assert_eq!(body(&events), BODY.as_bytes());
        assert!(
            matches!(events[..], [SendEvent::HttpResponseStart { .. }, SendEvent::HttpResponseBody(ref b)] if !b.more)
        );
    }
    assert!(rec.seen().is_empty());
}

#[test]
fn refused_sse_request_is_declined_with_400() {
    let rec = Recorder::default();
    let (result, events) = run(
        &app(&rec),
        Scope::Sse(get("/events", &[("host", "evil.example")])),
    );
    assert!(result.is_ok());
    assert!(matches!(
        events[..],
        [
            SendEvent::SseHttpResponseStart { status: 400, .. },
            SendEvent::SseHttpResponseBody(_)
        ]
    ));
    assert_eq!(body(&events), BODY.as_bytes());
    assert!(rec.seen().is_empty());

    let (_, events) = run(
        &app(&rec),
        Scope::Sse(get("/events", &[("host", "a.example.org")])),
    );
    assert!(matches!(
        events[..],
        [SendEvent::SseStart { status: 200, .. }]
    ));
    assert_eq!(rec.seen().len(), 1);
}

#[test]
fn refused_websocket_is_closed_or_denied() {
    let rec = Recorder::default();
    // Without the denial extension: websocket.close (the server answers 403).
    let (result, events) = run(
        &app(&rec),
        Scope::Websocket(get("/ws", &[("host", "evil")])),
    );
    assert!(result.is_ok());
    assert!(matches!(events[..], [SendEvent::WebsocketClose { .. }]));

    // With it: a 400 denial response.
    let mut req = get("/ws", &[("host", "evil")]);
    req.extensions
        .other
        .insert("websocket.http.response".into(), serde_json::json!({}));
    let (result, events) = run(&app(&rec), Scope::Websocket(req));
    assert!(result.is_ok());
    assert!(matches!(
        events[..],
        [
            SendEvent::WebsocketHttpResponseStart { status: 400, .. },
            SendEvent::WebsocketHttpResponseBody(ref b)
        ] if !b.more
    ));
    assert_eq!(body(&events), BODY.as_bytes());

    // A client that left before the handshake was answered gets nothing.
    let gone = ReceiveEvent::WebsocketDisconnect {
        code: 1006,
        reason: "client_closed".into(),
    };
    let (result, events) = run_with(
        &app(&rec),
        Scope::Websocket(get("/ws", &[("host", "evil")])),
        vec![gone],
    );
    assert!(result.is_ok());
    assert!(events.is_empty());
    assert!(rec.seen().is_empty());

    // An allowed one is accepted by the app.
    let (_, events) = run(
        &app(&rec),
        Scope::Websocket(get("/ws", &[("host", "[::1]:9000")])),
    );
    assert!(matches!(events[..], [SendEvent::WebsocketAccept { .. }]));
}

#[test]
fn lifespan_passes_through() {
    let rec = Recorder::default();
    let (result, events) = run(
        &app(&rec),
        Scope::Lifespan(LifespanScope::new(State::shared())),
    );
    assert!(result.is_ok());
    assert_eq!(events, [SendEvent::LifespanStartupComplete]);
    assert_eq!(rec.seen().len(), 1);
}
