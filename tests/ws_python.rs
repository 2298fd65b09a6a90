//! Interoperability with the Python `websockets` client (tests/clients/ws_client.py) against the
//! demo app. Without `python3 -c 'import websockets'` the tests print SKIP and pass, unless the
//! `CI` environment variable is set, when they fail.

mod common;
use common::*;

use pagi_server::{Config, LifespanMode};
use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long one client run may take.
const LIMIT: Duration = Duration::from_secs(30);

fn cfg(c: &mut Config) {
    c.lifespan = LifespanMode::Off;
    c.ws.ping_interval = Duration::ZERO;
}

/// Whether the client can run; see the module docs.
fn python_ready(test: &str) -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import websockets"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        assert!(
            std::env::var_os("CI").is_none(),
            "{test}: python3 with the `websockets` package is required when CI is set \
             (pip install websockets)"
        );
        eprintln!("SKIP {test}: python3 with the `websockets` package is not available");
    }
    ok
}

/// Runs the client's `scenario` against `srv` and checks it reports success.
fn run_client(srv: &TestServer, scenario: &str) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clients/ws_client.py");
    let url = format!("ws://{}/echo", srv.addr());
    let mut child = Command::new("python3")
        .arg(script)
        .arg(scenario)
        .arg(&url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 runs");
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{scenario}: the client did not finish within {LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut out = String::new();
    let mut err = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(
        status.success() && out.trim_end() == format!("OK {scenario}"),
        "{scenario}: {status}\nstdout:\n{out}\nstderr:\n{err}"
    );
}

#[test]
fn python_echo_with_compression_subprotocol_and_close_code() {
    if !python_ready("python_echo_with_compression_subprotocol_and_close_code") {
        return;
    }
    let srv = serve(pagi_server::demo::app, cfg);
    run_client(&srv, "echo");
}

#[test]
fn python_pings_followed_by_messages_are_answered() {
    if !python_ready("python_pings_followed_by_messages_are_answered") {
        return;
    }
    let srv = serve(pagi_server::demo::app, cfg);
    run_client(&srv, "ping-busy");
}

#[test]
fn python_lone_pings_are_answered() {
    if !python_ready("python_lone_pings_are_answered") {
        return;
    }
    let srv = serve(pagi_server::demo::app, cfg);
    run_client(&srv, "ping");
}

#[test]
fn python_client_answers_server_pings() {
    if !python_ready("python_client_answers_server_pings") {
        return;
    }
    let srv = serve(pagi_server::demo::app, |c| {
        cfg(c);
        c.ws.ping_interval = Duration::from_millis(100);
        c.ws.ping_timeout = Duration::from_millis(300);
    });
    run_client(&srv, "keepalive");
}
