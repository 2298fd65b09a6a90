mod common;
use common::*;

use pagi::{BoxError, Headers, HttpScope, ReceiveEvent, Receiver, Scope, SendEvent, Sender};
use pagi_server::{Config, LifespanMode};
use std::io::Write;
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(5);

/// Answers an HTTP request with 200 and `body` (Content-Length framing).
async fn reply(tx: &Sender, body: impl Into<pagi::Bytes>) -> Result<(), BoxError> {
    tx.send(SendEvent::start(200, Headers::new())).await?;
    tx.send(SendEvent::body(body, false)).await?;
    Ok(())
}

fn no_server_header(c: &mut Config) {
    c.server_header = None;
}

/// GET `path` on a new connection; returns (status, body).
fn get(srv: &TestServer, path: &str) -> (u16, Vec<u8>) {
    let mut s = srv.connect();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes())
        .unwrap();
    let (head, body) = read_response(&mut s);
    (status(&head), body)
}

/// Stops a server that is expected to have failed lifespan startup, and returns the error.
/// (`try_serve_on` returns once the listeners are bound; the lifespan runs afterwards, so the
/// error may come from either.)
fn startup_error(r: Result<TestServer, String>) -> String {
    match r {
        Err(e) => e,
        Ok(srv) => srv.stop().expect_err("the server must fail to start"),
    }
}

/// After a failed startup: the listener is gone, nobody gets an HTTP response.
fn assert_not_serving(addr: std::net::SocketAddr) {
    if let Ok(mut s) = std::net::TcpStream::connect(addr) {
        let _ = s.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n");
        let got = read_to_close(&mut s);
        assert!(
            !got.contains("HTTP/1.1"),
            "a server that failed startup answered: {got:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------

async fn state_app(scope: Scope, rx: Receiver, tx: Sender) -> Result<(), BoxError> {
    match scope {
        Scope::Lifespan(mut ls) => loop {
            match rx.receive().await? {
                ReceiveEvent::LifespanStartup => {
                    ls.state.insert("k", 42u32);
                    ls.state.insert("name", String::from("pool"));
                    tx.send(SendEvent::LifespanStartupComplete).await?;
                }
                ReceiveEvent::LifespanShutdown => {
                    tx.send(SendEvent::LifespanShutdownComplete).await?;
                    return Ok(());
                }
                other => return Err(format!("unexpected {other:?}").into()),
            }
        },
        Scope::Http(mut h) => {
            let describe = |h: &HttpScope| {
                let st = h.state.as_ref().expect("request scope has state");
                format!(
                    "k={:?} name={:?} x={:?} keys={:?}",
                    st.get::<u32>("k").map(|v| *v),
                    st.get::<String>("name").map(|v| (*v).clone()),
                    st.get::<u32>("x").map(|v| *v),
                    st.keys()
                )
            };
            if h.path == "/set" {
                let st = h.state.as_mut().expect("request scope has state");
                st.insert("k", 7u32);
                st.insert("x", 1u32);
            }
            let body = describe(&h);
            reply(&tx, body).await
        }
        other => Err(format!("unsupported scope {}", other.kind()).into()),
    }
}

#[test]
fn startup_state_is_seen_by_requests() {
    let srv = serve(state_app, no_server_header);
    let (st, body) = get(&srv, "/get");
    assert_eq!(st, 200);
    assert_eq!(
        String::from_utf8_lossy(&body),
        r#"k=Some(42) name=Some("pool") x=None keys=["k", "name"]"#
    );
    srv.stop().expect("clean stop");
}

#[test]
fn a_request_changing_its_state_copy_does_not_affect_others() {
    let srv = serve(state_app, no_server_header);
    // Same connection, then a new one.
    let mut s = srv.connect();
    s.write_all(b"GET /set HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let (_, body) = read_response(&mut s);
    assert_eq!(
        String::from_utf8_lossy(&body),
        r#"k=Some(7) name=Some("pool") x=Some(1) keys=["k", "name", "x"]"#
    );
    s.write_all(b"GET /get HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let (_, body) = read_response(&mut s);
    assert_eq!(
        String::from_utf8_lossy(&body),
        r#"k=Some(42) name=Some("pool") x=None keys=["k", "name"]"#
    );
    let (_, body) = get(&srv, "/get");
    assert_eq!(
        String::from_utf8_lossy(&body),
        r#"k=Some(42) name=Some("pool") x=None keys=["k", "name"]"#
    );
}

#[test]
fn shutdown_is_delivered_on_stop_and_its_completion_awaited() {
    let (ev_tx, ev_rx) = mpsc::channel::<String>();
    let app = move |scope: Scope, rx: Receiver, tx: Sender| {
        let ev = ev_tx.clone();
        async move {
            match scope {
                Scope::Lifespan(_) => loop {
                    match rx.receive().await? {
                        ReceiveEvent::LifespanStartup => {
                            ev.send("startup".into()).unwrap();
                            tx.send(SendEvent::LifespanStartupComplete).await?;
                        }
                        ReceiveEvent::LifespanShutdown => {
                            ev.send("shutdown".into()).unwrap();
                            tokio::time::sleep(Duration::from_millis(300)).await;
                            ev.send("shutdown.complete sent".into()).unwrap();
                            tx.send(SendEvent::LifespanShutdownComplete).await?;
                            return Ok(());
                        }
                        other => return Err(format!("unexpected {other:?}").into()),
                    }
                },
                Scope::Http(h) => {
                    if h.path == "/slow" {
                        ev.send("request start".into()).unwrap();
                        tokio::time::sleep(Duration::from_millis(300)).await;
                        ev.send("request done".into()).unwrap();
                    }
                    reply(&tx, "ok").await
                }
                other => Err(format!("unsupported scope {}", other.kind()).into()),
            }
        }
    };
    let srv = serve(app, |_| {});
    assert_eq!(get(&srv, "/").1, b"ok");
    assert_eq!(ev_rx.recv_timeout(WAIT).unwrap(), "startup");
    assert!(ev_rx.try_recv().is_err(), "no shutdown while serving");

    // A request in flight when the stop comes: it finishes before lifespan.shutdown.
    let addr = srv.addr();
    let client = std::thread::spawn(move || {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(WAIT)).unwrap();
        s.write_all(b"GET /slow HTTP/1.1\r\nHost: t\r\n\r\n")
            .unwrap();
        read_response(&mut s)
    });
    assert_eq!(ev_rx.recv_timeout(WAIT).unwrap(), "request start");
    let t0 = Instant::now();
    srv.stop().expect("clean stop");
    let took = t0.elapsed();
    let (head, body) = client.join().unwrap();
    assert_eq!(status(&head), 200, "{head}");
    assert_eq!(body, b"ok");
    let events: Vec<String> = ev_rx.try_iter().collect();
    assert_eq!(
        events,
        ["request done", "shutdown", "shutdown.complete sent"]
    );
    assert!(
        took >= Duration::from_millis(500),
        "stop waited for the request and the shutdown answer ({took:?})"
    );
    assert!(took < Duration::from_secs(4), "{took:?}");
}

#[test]
fn startup_failed_aborts_with_the_message() {
    let calls = Arc::new(Mutex::new(Vec::<&'static str>::new()));
    let calls_app = calls.clone();
    let app = move |scope: Scope, rx: Receiver, tx: Sender| {
        let calls = calls_app.clone();
        async move {
            calls.lock().unwrap().push(scope.kind());
            if let Scope::Lifespan(_) = scope {
                if let ReceiveEvent::LifespanStartup = rx.receive().await? {
                    tx.send(SendEvent::LifespanStartupFailed {
                        message: "database unreachable (e42)".into(),
                    })
                    .await?;
                }
                std::future::pending::<()>().await;
                Ok(())
            } else {
                reply(&tx, "should not be served").await
            }
        }
    };
    let r = try_serve_on(app, &["127.0.0.1:0"], |_| {});
    let addr = r.as_ref().ok().map(|s| s.addr());
    let err = startup_error(r);
    assert!(err.contains("database unreachable (e42)"), "{err}");
    if let Some(addr) = addr {
        assert_not_serving(addr);
    }
    assert_eq!(*calls.lock().unwrap(), ["lifespan"]);
}

#[test]
fn auto_app_returning_without_answering_startup_runs_without_lifespan() {
    let calls = Arc::new(Mutex::new(Vec::<&'static str>::new()));
    let calls_app = calls.clone();
    let app = move |scope: Scope, _rx: Receiver, tx: Sender| {
        let calls = calls_app.clone();
        async move {
            calls.lock().unwrap().push(scope.kind());
            match scope {
                Scope::Lifespan(_) => Ok(()),
                _ => reply(&tx, "served").await,
            }
        }
    };
    let srv = serve(app, |_| {});
    assert_eq!(get(&srv, "/"), (200, b"served".to_vec()));
    assert_eq!(get(&srv, "/"), (200, b"served".to_vec()));
    srv.stop().expect("clean stop");
    // Lifespan ran once (and got no shutdown call afterwards).
    assert_eq!(*calls.lock().unwrap(), ["lifespan", "http", "http"]);
}

#[test]
fn on_mode_app_returning_without_answering_startup_is_an_error() {
    let app = |scope: Scope, _rx: Receiver, tx: Sender| async move {
        match scope {
            Scope::Lifespan(_) => Ok(()),
            _ => reply(&tx, "served").await,
        }
    };
    let r = try_serve_on(app, &["127.0.0.1:0"], |c| c.lifespan = LifespanMode::On);
    let addr = r.as_ref().ok().map(|s| s.addr());
    let err = startup_error(r);
    assert!(err.contains("lifespan"), "{err}");
    if let Some(addr) = addr {
        assert_not_serving(addr);
    }
}

#[test]
fn on_mode_app_raising_on_lifespan_is_an_error() {
    let app = |scope: Scope, _rx: Receiver, tx: Sender| async move {
        match scope {
            Scope::Lifespan(_) => Err::<(), BoxError>("no lifespan here (e7)".into()),
            _ => reply(&tx, "served").await,
        }
    };
    let err = startup_error(try_serve_on(app, &["127.0.0.1:0"], |c| {
        c.lifespan = LifespanMode::On
    }));
    assert!(err.contains("lifespan"), "{err}");
}

#[test]
fn auto_app_raising_on_lifespan_runs_without_lifespan() {
    let app = |scope: Scope, _rx: Receiver, tx: Sender| async move {
        match scope {
            Scope::Lifespan(_) => Err::<(), BoxError>("unsupported scope lifespan".into()),
            _ => reply(&tx, "served").await,
        }
    };
    let srv = serve(app, |_| {});
    assert_eq!(get(&srv, "/"), (200, b"served".to_vec()));
    srv.stop().expect("clean stop");
}

#[test]
fn auto_app_raising_after_receiving_startup_runs_without_lifespan() {
    let app = |scope: Scope, rx: Receiver, tx: Sender| async move {
        match scope {
            Scope::Lifespan(_) => {
                let ev = rx.receive().await?;
                Err::<(), BoxError>(format!("cannot handle {ev:?}").into())
            }
            _ => reply(&tx, "served").await,
        }
    };
    let srv = serve(app, |_| {});
    assert_eq!(get(&srv, "/"), (200, b"served".to_vec()));
    srv.stop().expect("clean stop");
}

#[test]
fn auto_app_panicking_on_lifespan_runs_without_lifespan() {
    let app = |scope: Scope, _rx: Receiver, tx: Sender| async move {
        match scope {
            Scope::Lifespan(_) => panic!("lifespan panic (expected by the test)"),
            _ => reply(&tx, "served").await,
        }
    };
    let srv = serve(app, |_| {});
    assert_eq!(get(&srv, "/"), (200, b"served".to_vec()));
    srv.stop().expect("clean stop");
}

#[test]
fn startup_timeout_is_an_error() {
    let app = |scope: Scope, rx: Receiver, tx: Sender| async move {
        match scope {
            Scope::Lifespan(_) => {
                let _ = rx.receive().await?;
                std::future::pending::<()>().await;
                Ok(())
            }
            _ => reply(&tx, "served").await,
        }
    };
    let t0 = Instant::now();
    let r = try_serve_on(app, &["127.0.0.1:0"], |c| {
        c.lifespan_startup_timeout = Duration::from_millis(200)
    });
    let addr = r.as_ref().ok().map(|s| s.addr());
    let err = startup_error(r);
    let took = t0.elapsed();
    assert!(err.contains("lifespan"), "{err}");
    assert!(took >= Duration::from_millis(200), "{took:?}");
    assert!(took < Duration::from_secs(3), "{took:?}");
    if let Some(addr) = addr {
        assert_not_serving(addr);
    }
}

#[test]
fn off_mode_never_calls_the_app_with_a_lifespan_scope() {
    let calls = Arc::new(Mutex::new(Vec::<&'static str>::new()));
    let calls_app = calls.clone();
    let app = move |scope: Scope, rx: Receiver, tx: Sender| {
        let calls = calls_app.clone();
        async move {
            calls.lock().unwrap().push(scope.kind());
            match scope {
                Scope::Lifespan(_) => {
                    // Would block startup if it were ever called.
                    let _ = rx.receive().await?;
                    std::future::pending::<()>().await;
                    Ok(())
                }
                Scope::Http(h) => {
                    let state_empty = h.state.as_ref().is_none_or(|s| s.is_empty());
                    reply(&tx, format!("state empty: {state_empty}")).await
                }
                other => Err(format!("unsupported scope {}", other.kind()).into()),
            }
        }
    };
    let srv = serve(app, |c| c.lifespan = LifespanMode::Off);
    assert_eq!(get(&srv, "/"), (200, b"state empty: true".to_vec()));
    srv.stop().expect("clean stop");
    assert_eq!(*calls.lock().unwrap(), ["http"]);
}

#[test]
fn lifespan_scope_json_shape() {
    let (out_tx, out_rx) = mpsc::channel::<serde_json::Value>();
    let app = move |scope: Scope, rx: Receiver, tx: Sender| {
        let out = out_tx.clone();
        async move {
            if let Scope::Lifespan(_) = &scope {
                out.send(serde_json::to_value(&scope)?).unwrap();
                let _ = rx.receive().await?;
                tx.send(SendEvent::LifespanStartupComplete).await?;
                let _ = rx.receive().await?;
                tx.send(SendEvent::LifespanShutdownComplete).await?;
                Ok(())
            } else {
                reply(&tx, "ok").await
            }
        }
    };
    let srv = serve(app, |_| {});
    let v = out_rx.recv_timeout(WAIT).unwrap();
    assert_eq!(v["type"], "lifespan");
    assert_eq!(
        v["pagi"],
        serde_json::json!({"version": "0.3", "spec_version": "0.3", "is_worker": 0, "worker_num": null})
    );
    assert!(
        v["pagi"]["worker_num"].is_null() && v["pagi"].get("worker_num").is_some(),
        "worker_num is present and null"
    );
    // It parses back.
    let back: Scope = serde_json::from_value(v).unwrap();
    let Scope::Lifespan(ls) = back else {
        panic!("not lifespan")
    };
    assert!(!ls.pagi.is_worker);
    assert_eq!(ls.pagi.worker_num, None);
    srv.stop().expect("clean stop");
}

#[test]
fn lifespan_send_validation() {
    let (out_tx, out_rx) = mpsc::channel::<Vec<String>>();
    let app = move |scope: Scope, rx: Receiver, tx: Sender| {
        let out = out_tx.clone();
        async move {
            let Scope::Lifespan(_) = scope else {
                return reply(&tx, "ok").await;
            };
            let mut log = Vec::new();
            let show = |r: Result<(), pagi::Error>| match r {
                Ok(()) => "ok".to_string(),
                Err(e) if e.is_out_of_order() => "order".to_string(),
                Err(e) if e.is_unsupported() => "unsupported".to_string(),
                Err(e) if e.is_invalid() => "invalid".to_string(),
                Err(e) => format!("other {e}"),
            };
            let first = rx.receive().await?;
            log.push(format!("{first:?}"));
            log.push(show(tx.send(SendEvent::LifespanShutdownComplete).await));
            log.push(show(tx.send(SendEvent::start(200, Headers::new())).await));
            log.push(show(tx.send(SendEvent::LifespanStartupComplete).await));
            log.push(show(tx.send(SendEvent::LifespanStartupComplete).await));
            out.send(log).unwrap();
            let ev = rx.receive().await?;
            let mut log = vec![format!("{ev:?}")];
            log.push(show(tx.send(SendEvent::LifespanStartupComplete).await));
            log.push(show(tx.send(SendEvent::LifespanShutdownComplete).await));
            out.send(log).unwrap();
            Ok(())
        }
    };
    let srv = serve(app, |_| {});
    assert_eq!(
        out_rx.recv_timeout(WAIT).unwrap(),
        ["LifespanStartup", "order", "unsupported", "ok", "order"]
    );
    assert_eq!(get(&srv, "/"), (200, b"ok".to_vec()));
    srv.stop().expect("clean stop");
    assert_eq!(
        out_rx.recv_timeout(WAIT).unwrap(),
        ["LifespanShutdown", "order", "ok"]
    );
}

/// The lifespan scope's `pagi` says whether this is a worker and which: `Config::worker` is
/// what a `--workers` master sets in each worker.
#[test]
fn lifespan_scope_names_the_worker() {
    let seen: Arc<Mutex<Vec<serde_json::Value>>> = Arc::default();
    let app = |seen: Arc<Mutex<Vec<serde_json::Value>>>| {
        move |scope: Scope, rx: Receiver, tx: Sender| {
            let seen = seen.clone();
            async move {
                match scope {
                    Scope::Lifespan(ls) => {
                        seen.lock().unwrap().push(serde_json::to_value(&ls.pagi)?);
                        while let Ok(ev) = rx.receive().await {
                            match ev {
                                ReceiveEvent::LifespanStartup => {
                                    tx.send(SendEvent::LifespanStartupComplete).await?
                                }
                                ReceiveEvent::LifespanShutdown => {
                                    tx.send(SendEvent::LifespanShutdownComplete).await?;
                                    break;
                                }
                                _ => {}
                            }
                        }
                        Ok::<(), BoxError>(())
                    }
                    _ => reply(&tx, "ok").await,
                }
            }
        }
    };
    let srv = serve(app(seen.clone()), |c| c.worker = Some(3));
    assert_eq!(get(&srv, "/").0, 200);
    srv.stop().unwrap();
    let srv = serve(app(seen.clone()), |_| {});
    assert_eq!(get(&srv, "/").0, 200);
    srv.stop().unwrap();
    let seen = seen.lock().unwrap();
    assert_eq!(
        *seen,
        [
            serde_json::json!({"version": "0.3", "spec_version": "0.3", "is_worker": 1, "worker_num": 3}),
            serde_json::json!({"version": "0.3", "spec_version": "0.3", "is_worker": 0, "worker_num": null}),
        ]
    );
}
