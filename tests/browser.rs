//! A real browser against the chat/clock example: headless Chromium loads the page, which opens
//! a WebSocket and an EventSource to the same server, and the DOM it dumps shows what arrived.
//!
//! Needs Debian's `chromium` (or `CHROMIUM=/path`). Without it the test is skipped, except under
//! CI (`CI` set), where it fails.

mod common;
use common::*;

#[path = "../examples/chat/main.rs"]
#[allow(dead_code)]
mod chat;

use pagi_server::LifespanMode;
use std::process::Command;
use std::time::Duration;

fn chromium() -> Option<String> {
    let candidates = [
        std::env::var("CHROMIUM").unwrap_or_default(),
        "chromium".into(),
        "chromium-browser".into(),
        "google-chrome".into(),
    ];
    candidates.into_iter().filter(|c| !c.is_empty()).find(|c| {
        Command::new(c)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

#[test]
fn page_gets_websocket_echo_and_sse_ticks() {
    let Some(browser) = chromium() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "chromium is required under CI (apt-get install chromium)"
        );
        eprintln!("SKIP: no chromium found (set CHROMIUM=/path or install chromium)");
        return;
    };
    let srv = serve(chat::app, |c| {
        c.lifespan = LifespanMode::Off;
        c.ws.ping_interval = Duration::ZERO;
    });
    let profile = tempfile::tempdir().expect("profile dir");
    let url = format!("http://{}/?ticks=2", srv.addr());
    let out = Command::new(&browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            // Virtual time runs until the page is idle (network included) or 20 s pass.
            "--virtual-time-budget=20000",
            "--dump-dom",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(&url)
        .output()
        .expect("run chromium");
    let dom = String::from_utf8_lossy(&out.stdout);
    assert!(
        dom.contains(r#"<span id="status">ok: websocket+sse</span>"#),
        "page status not ok; DOM:\n{dom}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The WebSocket message the page sent came back through the chat room.
    assert!(dom.contains("<li>hello from Mozilla/5.0</li>"), "{dom}");
    // Two clock ticks, ids 0 and 1, each with a timestamp.
    assert!(dom.contains("<li>#0 20"), "{dom}");
    assert!(dom.contains("<li>#1 20"), "{dom}");
}
