//! pagi-server behind a real nginx, configured with `examples/nginx/nginx.conf` itself: keep-alive
//! to the upstream over a Unix socket, the forwarding headers read by the `XForwardedFor`
//! middleware, a WebSocket, an SSE stream that nginx must not buffer, and a large upload that
//! must stream through.
//!
//! Each test starts nginx (`nginx -p DIR -c DIR/nginx.conf -g 'daemon off;'`, one worker, every
//! path inside a temporary directory) on a free 127.0.0.1 port, in front of an in-process
//! server on `DIR/pagi.sock`. The site config is the example file with only the socket path, the
//! `listen` lines and the body limit replaced, so the directives under test are the example's.
//! nginx is looked up in `$NGINX`, `$PATH`, then `/usr/sbin` and friends; without it the tests
//! print SKIP and pass, unless `CI` is set, when they fail (`apt-get install nginx-light`).
//!
//! Upstream connections are counted from the kernel's socket table: every time the app is
//! called, it reads `/proc/net/unix` and records the inodes of the connected sockets bound to the
//! server's path (accepted sockets carry the listener's path). A connection that carries a
//! request is open while the app runs, so every connection nginx used is seen.

mod common;
use common::*;

use futures::{SinkExt, StreamExt};
use pagi::{
    App, BoxError, Headers, ReceiveEvent, Receiver, Scheme, Scope, SendEvent, Sender, ServerAddr,
};
use pagi_middleware::access_log::{AccessLog, Format, Output};
use pagi_middleware::forwarded::{TrustedProxies, XForwardedFor};
use pagi_server::{Config, LifespanMode};
use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite;

/// How long any single wait may take.
const WAIT: Duration = Duration::from_secs(5);

/// The body limit of both nginx (`client_max_body_size`) and the server, in these tests.
const BODY_LIMIT: u64 = 32_000_000;

/// Socket buffer size on both ends of the client connections of the SSE flood test.
const CLIENT_BUF: usize = 128 * 1024;

/// The example site config, the template of the tests' config.
const EXAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/nginx/nginx.conf");

// ---------------------------------------------------------------------------------------------
// nginx
// ---------------------------------------------------------------------------------------------

/// The nginx binary: `$NGINX`, else `nginx` on `$PATH`, else the usual sbin directories (which
/// are often not on a normal user's `PATH`).
fn nginx_binary() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("NGINX") {
        let p = PathBuf::from(p);
        assert!(p.is_file(), "NGINX={} is not a file", p.display());
        return Some(p);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(
            [
                "/usr/sbin",
                "/usr/local/sbin",
                "/sbin",
                "/usr/local/nginx/sbin",
            ]
            .into_iter()
            .map(PathBuf::from),
        )
        .map(|d| d.join("nginx"))
        .find(|p| p.is_file())
}

/// The binary, or `None` after printing SKIP (failing instead under CI).
fn nginx_or_skip(test: &str) -> Option<PathBuf> {
    let bin = nginx_binary();
    if bin.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "{test}: nginx is required when CI is set (apt-get install nginx-light)"
        );
        eprintln!("SKIP {test}: no nginx found (install nginx-light, or set NGINX=/path/to/nginx)");
    }
    bin
}

/// A running nginx; stopped on drop (SIGTERM, its fast shutdown, then SIGKILL after `WAIT`).
struct Nginx {
    child: Child,
    dir: PathBuf,
}

impl Nginx {
    /// The error log so far, plus anything nginx printed on stderr before it read its config.
    fn log(&self) -> String {
        let read = |name: &str| std::fs::read_to_string(self.dir.join(name)).unwrap_or_default();
        format!("{}{}", read("nginx.stderr"), read("error.log"))
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM to the master stops the workers too; SIGKILL would orphan them.
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .stderr(Stdio::null())
            .status();
        let end = Instant::now() + WAIT;
        while Instant::now() < end {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `s` with `from` replaced by `to`; `from` must occur exactly once, so an edit of the example
/// that drops or duplicates a line the tests rely on fails here, not silently.
fn replace_once(s: &str, from: &str, to: &str) -> String {
    assert_eq!(
        s.matches(from).count(),
        1,
        "{EXAMPLE} must contain `{from}` exactly once"
    );
    s.replacen(from, to, 1)
}

/// The example site config for a server on `sock` and nginx on `port`.
fn site_config(sock: &Path, port: u16) -> String {
    let example = std::fs::read_to_string(EXAMPLE).expect("read the example config");
    let s = replace_once(
        &example,
        "server unix:/run/app/pagi.sock;",
        &format!("server unix:{};", sock.display()),
    );
    // A fixed send buffer toward clients (no autotuning up to `tcp_wmem`'s maximum, which
    // varies by system) keeps what a non-reading client can leave in flight small and known.
    let s = replace_once(
        &s,
        "listen 80;",
        &format!("listen 127.0.0.1:{port} sndbuf={CLIENT_BUF};"),
    );
    let s = replace_once(&s, "listen [::]:80;", "");
    replace_once(
        &s,
        "client_max_body_size 10000000;",
        &format!("client_max_body_size {BODY_LIMIT};"),
    )
}

/// The main config: everything nginx writes stays in `dir`; the site comes from the example.
fn main_config(bin: &Path, dir: &Path) -> String {
    let d = dir.display();
    // As root, nginx would switch its workers to `nobody`, who cannot enter the private
    // temporary directory; as anyone else, `user` is ignored (with a warning), so leave it out.
    let user = if std::fs::metadata(dir).unwrap().uid() == 0 {
        "user root;"
    } else {
        ""
    };
    // Modules left out of the build have no `*_temp_path` directive (an unknown directive is a
    // config error); the ones built in would create their default paths outside `dir`.
    let built = Command::new(bin)
        .arg("-V")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stderr).into_owned())
        .unwrap_or_default();
    let temp_paths: String = ["client_body", "proxy", "fastcgi", "uwsgi", "scgi"]
        .iter()
        .filter(|m| !built.contains(&format!("--without-http_{m}_module")))
        .map(|m| format!("    {m}_temp_path {d}/{m}_temp;\n"))
        .collect();
    format!(
        "{user}
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{
    worker_connections 512;
}}
http {{
    access_log off;
{temp_paths}    include {d}/pagi.conf;
}}
"
    )
}

/// Starts nginx from the configs in `dir` on a free port; returns it and the port.
fn start_nginx(bin: &Path, dir: &Path, sock: &Path) -> (Nginx, u16) {
    std::fs::write(dir.join("nginx.conf"), main_config(bin, dir)).unwrap();
    for _attempt in 0..5 {
        // A port that was free a moment ago; another process may take it first, so retry.
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        std::fs::write(dir.join("pagi.conf"), site_config(sock, port)).unwrap();
        let _ = std::fs::remove_file(dir.join("error.log"));
        let stderr = std::fs::File::create(dir.join("nginx.stderr")).unwrap();
        let child = Command::new(bin)
            .arg("-p")
            .arg(dir)
            .arg("-c")
            .arg(dir.join("nginx.conf"))
            .args(["-g", "daemon off;"])
            .stdin(Stdio::null())
            .stdout(stderr.try_clone().unwrap())
            .stderr(stderr)
            .spawn()
            .expect("start nginx");
        let mut nginx = Nginx {
            child,
            dir: dir.to_owned(),
        };
        let end = Instant::now() + WAIT * 2;
        loop {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return (nginx, port);
            }
            if let Some(status) = nginx.child.try_wait().unwrap() {
                let log = nginx.log();
                if log.contains("Address already in use") {
                    break;
                }
                panic!("nginx exited ({status}) at startup:\n{log}");
            }
            assert!(
                Instant::now() < end,
                "nginx did not listen on port {port} within {:?}:\n{}",
                WAIT * 2,
                nginx.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    panic!("no free port for nginx after 5 attempts");
}

// ---------------------------------------------------------------------------------------------
// The app: records what it sees before and after the proxy-headers middleware
// ---------------------------------------------------------------------------------------------

/// One call of the app.
#[derive(Clone, Debug)]
struct Seen {
    kind: &'static str,
    path: String,
    /// Whether `server` is the Unix socket.
    unix_server: bool,
    /// `client` and `scheme` as the middleware left them.
    client: Option<SocketAddr>,
    scheme: Scheme,
    /// `extensions.other["forwarded"]["peer"]` (set by the middleware).
    forwarded_peer: Option<serde_json::Value>,
    headers: Headers,
}

impl Seen {
    fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|v| String::from_utf8_lossy(v).into_owned())
    }
}

#[derive(Default)]
struct RecState {
    /// The socket path, as `/proc/net/unix` shows it.
    sock: String,
    /// What the server passed to the app, by call (before the middleware).
    raw: Mutex<Vec<(Option<SocketAddr>, bool)>>,
    /// What the inner app saw, by call.
    seen: Mutex<Vec<Seen>>,
    /// Inodes of the server's accepted sockets, sampled at every call.
    conns: Mutex<BTreeSet<u64>>,
    /// Calls during which no accepted socket was found (would make the count meaningless).
    blind_samples: AtomicUsize,
    /// Body bytes the upload route has received so far.
    upload_progress: AtomicU64,
    /// Lets the SSE route send its second event.
    sse_go: tokio::sync::Notify,
    /// Whether the SSE route has sent its second event.
    sse_second_sent: AtomicBool,
    /// Events the SSE flood route has sent so far.
    flood_sent: AtomicU64,
    /// The `websocket.disconnect` the WebSocket route received.
    ws_disconnect: Mutex<Option<(u16, String)>>,
}

#[derive(Clone, Default)]
struct Rec(Arc<RecState>);

impl Rec {
    fn seen(&self) -> Vec<Seen> {
        self.0.seen.lock().unwrap().clone()
    }

    fn raw(&self) -> Vec<(Option<SocketAddr>, bool)> {
        self.0.raw.lock().unwrap().clone()
    }

    fn conns(&self) -> BTreeSet<u64> {
        self.0.conns.lock().unwrap().clone()
    }

    /// Called before the middleware: the server's own view, and the connection sample.
    fn before(&self, scope: &Scope) {
        if let Some(req) = scope.request() {
            let unix = matches!(req.server, ServerAddr::Unix(_));
            self.0.raw.lock().unwrap().push((req.client, unix));
        }
        let inodes = accepted_sockets(&self.0.sock);
        if inodes.is_empty() {
            self.0.blind_samples.fetch_add(1, Ordering::SeqCst);
        }
        self.0.conns.lock().unwrap().extend(inodes);
    }
}

/// Inodes of the connected (state 03) sockets bound to `path`: the listener's accepted
/// connections. Empty if `/proc/net/unix` cannot be read.
fn accepted_sockets(path: &str) -> Vec<u64> {
    let Ok(table) = std::fs::read_to_string("/proc/net/unix") else {
        return Vec::new();
    };
    // Num RefCount Protocol Flags Type St Inode Path
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            (f.len() == 8 && f[5] == "03" && f[7] == path)
                .then(|| f[6].parse().ok())
                .flatten()
        })
        .collect()
}

/// The server's app: records the scope as the server made it, then runs the routes behind
/// `XForwardedFor` trusting the Unix-socket peer (what `--proxy-headers --forwarded-allow-ips
/// unix` sets up).
fn app(rec: Rec, access_log: &Path) -> impl App {
    let xff = XForwardedFor::new(TrustedProxies::parse("unix").unwrap());
    // The access log behind it, as `--access-log FILE` (with the `%h %s "%r"` atoms).
    let log = AccessLog::new(
        Format::parse("%h %s \"%r\"").unwrap(),
        Output::File(access_log.to_owned()),
    )
    .unwrap();
    let r = rec.clone();
    let inner = pagi_middleware::Stack::new()
        .layer(xff)
        .layer(log)
        .app(move |scope: Scope, rx: Receiver, tx: Sender| routes(r.clone(), scope, rx, tx));
    move |scope: Scope, rx: Receiver, tx: Sender| {
        rec.before(&scope);
        inner.call(scope, rx, tx)
    }
}

async fn routes(rec: Rec, scope: Scope, rx: Receiver, tx: Sender) -> Result<(), BoxError> {
    let req = scope.request().ok_or("not a request")?.clone();
    let path = String::from_utf8_lossy(&req.raw_path).into_owned();
    rec.0.seen.lock().unwrap().push(Seen {
        kind: scope.kind(),
        path: path.clone(),
        unix_server: matches!(req.server, ServerAddr::Unix(_)),
        client: req.client,
        scheme: req.scheme,
        forwarded_peer: req
            .extensions
            .other
            .get("forwarded")
            .map(|f| f["peer"].clone()),
        headers: req.headers.clone(),
    });
    match (&scope, path.as_str()) {
        (Scope::Http(_), p) if p.starts_with("/hello/") => {
            let n = &p["/hello/".len()..];
            text(&tx, 200, format!("hello {n}")).await
        }
        (Scope::Http(_), "/upload") => upload(&rec, &rx, &tx).await,
        (Scope::Websocket(_), "/ws") => websocket(&rec, &rx, &tx).await,
        (Scope::Sse(_), "/events") => sse(&rec, &tx).await,
        (Scope::Sse(_), "/flood") => flood(&rec, &tx).await,
        _ => text(&tx, 404, "not found".into()).await,
    }
}

async fn text(tx: &Sender, status: u16, body: String) -> Result<(), BoxError> {
    tx.send(SendEvent::start(
        status,
        Headers::new().with("content-type", "text/plain"),
    ))
    .await?;
    tx.send(SendEvent::body(body, false)).await?;
    Ok(())
}

/// Byte `i` of every upload.
fn pattern(i: u64) -> u8 {
    (i % 251) as u8
}

/// Counts the body bytes and checks each against `pattern`; answers `<count> <ok|bad>`.
async fn upload(rec: &Rec, rx: &Receiver, tx: &Sender) -> Result<(), BoxError> {
    let mut n = 0u64;
    let mut ok = true;
    rec.0.upload_progress.store(0, Ordering::SeqCst);
    loop {
        match rx.receive().await? {
            ReceiveEvent::HttpRequest { body, more } => {
                ok &= body
                    .iter()
                    .enumerate()
                    .all(|(k, &b)| b == pattern(n + k as u64));
                n += body.len() as u64;
                rec.0.upload_progress.store(n, Ordering::SeqCst);
                if !more {
                    break;
                }
            }
            other => return Err(format!("upload: {other:?}").into()),
        }
    }
    let verdict = if ok { "ok" } else { "bad" };
    text(tx, 200, format!("{n} {verdict}")).await
}

/// Echoes every message; records the close code and reason.
async fn websocket(rec: &Rec, rx: &Receiver, tx: &Sender) -> Result<(), BoxError> {
    match rx.receive().await? {
        ReceiveEvent::WebsocketConnect => {}
        other => return Err(format!("websocket: {other:?}").into()),
    }
    tx.send(SendEvent::WebsocketAccept {
        subprotocol: None,
        headers: Headers::new(),
    })
    .await?;
    loop {
        match rx.receive().await? {
            ReceiveEvent::WebsocketReceive(m) => tx.send(SendEvent::WebsocketSend(m)).await?,
            ReceiveEvent::WebsocketDisconnect { code, reason } => {
                *rec.0.ws_disconnect.lock().unwrap() = Some((code, reason));
                return Ok(());
            }
            other => return Err(format!("websocket: {other:?}").into()),
        }
    }
}

/// Sends `one`, waits until the client has seen it (or `WAIT`), then sends `two` and ends.
async fn sse(rec: &Rec, tx: &Sender) -> Result<(), BoxError> {
    let event = |data: &str| SendEvent::SseSend {
        event: Some("step".into()),
        data: data.into(),
        id: None,
        retry: None,
    };
    tx.send(SendEvent::SseStart {
        status: 200,
        headers: Headers::new(),
    })
    .await?;
    tx.send(event("one")).await?;
    let released = tokio::time::timeout(WAIT, rec.0.sse_go.notified())
        .await
        .is_ok();
    rec.0.sse_second_sent.store(true, Ordering::SeqCst);
    tx.send(event(if released { "two" } else { "two-after-timeout" }))
        .await?;
    tx.send(SendEvent::SseClose {
        reason: String::new(),
    })
    .await?;
    Ok(())
}

/// Events of the SSE flood route, and the size of each one's data.
const FLOOD_EVENTS: u64 = 128;
const FLOOD_SIZE: usize = 64 * 1024;

/// Sends `FLOOD_EVENTS` events (8 MiB, far more than the socket buffers between the app and a
/// client hold) as fast as the connection takes them, then ends.
async fn flood(rec: &Rec, tx: &Sender) -> Result<(), BoxError> {
    let data = "x".repeat(FLOOD_SIZE);
    tx.send(SendEvent::SseStart {
        status: 200,
        headers: Headers::new(),
    })
    .await?;
    for i in 0..FLOOD_EVENTS {
        tx.send(SendEvent::SseSend {
            event: None,
            data: data.clone(),
            id: Some(i.to_string()),
            retry: None,
        })
        .await?;
        rec.0.flood_sent.store(i + 1, Ordering::SeqCst);
    }
    tx.send(SendEvent::SseClose {
        reason: String::new(),
    })
    .await?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The stack: nginx in front of the server
// ---------------------------------------------------------------------------------------------

/// nginx on `port` in front of the app on `sock`. Fields drop in order: nginx, server, files.
struct Stack {
    nginx: Nginx,
    _server: TestServer,
    rec: Rec,
    port: u16,
    dir: tempfile::TempDir,
}

/// Starts the stack, or `None` (after SKIP) without nginx.
fn stack(test: &str) -> Option<Stack> {
    let bin = nginx_or_skip(test)?;
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("pagi.sock");
    let rec = Rec(Arc::new(RecState {
        sock: sock.to_str().unwrap().to_owned(),
        ..RecState::default()
    }));
    let server = serve_on(
        app(rec.clone(), &dir.path().join("access.log")),
        &[&format!("unix:{}", sock.display())],
        |c: &mut Config| {
            c.lifespan = LifespanMode::Off;
            c.ws.ping_interval = Duration::ZERO;
            c.max_body_size = BODY_LIMIT;
            // As in pagi.service: longer than the upstream keepalive_timeout (60s).
            c.timeout_keep_alive = Duration::from_secs(75);
        },
    );
    let (nginx, port) = start_nginx(&bin, dir.path(), &sock);
    Some(Stack {
        nginx,
        _server: server,
        rec,
        port,
        dir,
    })
}

impl Stack {
    fn connect(&self) -> TcpStream {
        // A small receive buffer (set before connecting, so the window is small from the start).
        let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
            .expect("socket");
        sock.set_recv_buffer_size(CLIENT_BUF).unwrap();
        let addr: SocketAddr = ([127, 0, 0, 1], self.port).into();
        sock.connect(&addr.into()).expect("connect to nginx");
        let s = TcpStream::from(sock);
        s.set_read_timeout(Some(WAIT)).unwrap();
        s.set_write_timeout(Some(WAIT)).unwrap();
        s.set_nodelay(true).unwrap();
        s
    }

    /// (g) nginx logged nothing at `warn` or above: no upstream error (a refused or reset
    /// upstream connection, a premature close of a kept-alive one, a bad response), and no
    /// request body spooled to a temporary file.
    fn assert_clean_log(&self) {
        let log = std::fs::read_to_string(self.nginx.dir.join("error.log")).unwrap_or_default();
        assert!(log.trim().is_empty(), "nginx's error log:\n{log}");
    }
}

/// Reads a response head byte by byte (nothing of the body).
fn read_head(s: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = s.read(&mut byte).expect("read the response head");
        assert!(
            n > 0,
            "closed mid-head: {:?}",
            String::from_utf8_lossy(&head)
        );
        head.push(byte[0]);
    }
    String::from_utf8_lossy(&head).into_owned()
}

/// The body in a chunked `raw` so far, and whether the last chunk has arrived.
fn dechunk(raw: &[u8]) -> (Vec<u8>, bool) {
    let mut out = Vec::new();
    let mut i = 0;
    loop {
        let Some(eol) = raw[i..].windows(2).position(|w| w == b"\r\n") else {
            return (out, false);
        };
        let line = String::from_utf8_lossy(&raw[i..i + eol]);
        let size = usize::from_str_radix(line.split(';').next().unwrap().trim(), 16)
            .unwrap_or_else(|_| panic!("bad chunk size line {line:?}"));
        if size == 0 {
            return (out, true);
        }
        let start = i + eol + 2;
        if raw.len() < start + size + 2 {
            out.extend_from_slice(&raw[start..raw.len().min(start + size)]);
            return (out, false);
        }
        out.extend_from_slice(&raw[start..start + size]);
        i = start + size + 2;
    }
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

/// (a) 200 sequential GETs through nginx, (b) over few upstream connections, (c) with the
/// client's address from nginx's `X-Forwarded-For` and nothing a client made up.
#[test]
fn keep_alive_upstream_and_forwarding_headers() {
    let Some(st) = stack("keep_alive_upstream_and_forwarding_headers") else {
        return;
    };
    const N: usize = 200;
    let started = Instant::now();
    // The first half on one kept-alive client connection, the second half on a new client
    // connection each, closed by the client: the upstream side keeps its connections either way.
    let mut kept = st.connect();
    for i in 0..N {
        let mut fresh;
        let (s, close) = if i < N / 2 {
            (&mut kept, "")
        } else {
            fresh = st.connect();
            (&mut fresh, "Connection: close\r\n")
        };
        write!(
            s,
            "GET /hello/{i} HTTP/1.1\r\nHost: app.example\r\nUser-Agent: nginx-test\r\n{close}\r\n"
        )
        .unwrap();
        let (head, body) = read_response(s);
        assert_eq!(status(&head), 200, "request {i}: {head}");
        assert_eq!(
            String::from_utf8_lossy(&body),
            format!("hello {i}"),
            "request {i}"
        );
    }
    let took = started.elapsed();

    // One request with every forwarding header a client could make up.
    let mut s = st.connect();
    s.write_all(
        b"GET /hello/spoof HTTP/1.1\r\nHost: app.example\r\n\
          X-Forwarded-For: 6.6.6.6\r\nForwarded: for=7.7.7.7;proto=https;host=evil.example\r\n\
          X-Forwarded-Proto: https\r\nX-Forwarded-Host: evil.example\r\n\
          X-Forwarded-Port: 8443\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    let (head, body) = read_response(&mut s);
    assert_eq!(status(&head), 200, "{head}");
    assert_eq!(body, b"hello spoof");

    // (a) every request reached the app, once.
    let seen = st.rec.seen();
    assert_eq!(seen.len(), N + 1, "app calls");
    for (i, v) in seen[..N].iter().enumerate() {
        assert_eq!((v.kind, v.path.as_str()), ("http", &*format!("/hello/{i}")));
    }

    // (b) keep-alive to the upstream works: the requests shared a few connections. Every call
    // sampled the socket table and found its own connection there, so none went uncounted.
    let conns = st.rec.conns();
    assert_eq!(
        st.rec.0.blind_samples.load(Ordering::SeqCst),
        0,
        "some calls found no accepted socket for {} in /proc/net/unix",
        st.rec.0.sock
    );
    assert!(
        !conns.is_empty() && conns.len() <= 4,
        "{} upstream connections for {} requests (inodes {conns:?})",
        conns.len(),
        N + 1
    );
    eprintln!(
        "{} requests through nginx in {took:?} over {} upstream connection(s)",
        N + 1,
        conns.len()
    );
    // What makes that work: no `Connection` header upstream (the map's '' case), HTTP/1.1.
    for v in &seen {
        assert_eq!(v.header("connection"), None, "{}", v.path);
        assert_eq!(v.header("upgrade"), None, "{}", v.path);
    }

    // (c) the server's view: a Unix-socket peer, no client address.
    for (client, unix) in st.rec.raw() {
        assert_eq!((client, unix), (None, true));
    }
    // After XForwardedFor: nginx's X-Forwarded-For names the client; the host is the
    // client's, and the scheme is nginx's.
    let loopback: SocketAddr = "127.0.0.1:0".parse().unwrap();
    for v in &seen[..N] {
        assert_eq!(v.header("x-forwarded-for").as_deref(), Some("127.0.0.1"));
        assert_eq!(v.header("x-forwarded-proto").as_deref(), Some("http"));
        assert_eq!(v.header("host").as_deref(), Some("app.example"));
        assert!(v.unix_server);
        assert_eq!(v.client, Some(loopback), "{}", v.path);
        assert_eq!(v.scheme, Scheme::Http);
        assert_eq!(v.forwarded_peer, Some(serde_json::json!("unix")));
    }
    // The made-up headers changed nothing: X-Forwarded-For is read from the right (nginx's
    // entry), the others were overwritten by nginx and `Forwarded` was removed.
    let spoof = &seen[N];
    assert_eq!(
        spoof.header("x-forwarded-for").as_deref(),
        Some("6.6.6.6, 127.0.0.1")
    );
    assert_eq!(spoof.header("forwarded"), None);
    assert_eq!(spoof.header("x-forwarded-proto").as_deref(), Some("http"));
    assert_eq!(
        spoof.header("x-forwarded-host").as_deref(),
        Some("app.example")
    );
    assert_eq!(
        spoof.header("x-forwarded-port").as_deref(),
        Some(&*st.port.to_string())
    );
    assert_eq!(spoof.client, Some(loopback));
    assert_eq!(spoof.scheme, Scheme::Http);
    assert_eq!(spoof.header("host").as_deref(), Some("app.example"));

    // The access log names the real client (from nginx's X-Forwarded-For, the Unix peer
    // trusted), also for the request with made-up headers.
    let path = st.dir.path().join("access.log");
    let end = Instant::now() + Duration::from_secs(5);
    let mut log = String::new();
    while log.lines().count() < N + 1 && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(20));
        log = std::fs::read_to_string(&path).unwrap_or_default();
    }
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines.len(), N + 1, "{log}");
    assert_eq!(lines[0], "127.0.0.1 200 \"GET /hello/0 HTTP/1.1\"");
    assert_eq!(lines[N], "127.0.0.1 200 \"GET /hello/spoof HTTP/1.1\"");

    st.assert_clean_log();
}

/// (d) A WebSocket through nginx: the upgrade passes, text and binary messages echo, and a
/// close handshake started by the client comes back with its code.
#[test]
fn websocket_through_nginx() {
    let Some(st) = stack("websocket_through_nginx") else {
        return;
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let url = format!("ws://127.0.0.1:{}/ws", st.port);
    let big: Vec<u8> = (0..300_000u64).map(pattern).collect();
    rt.block_on(async {
        let (mut ws, resp) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(&url))
            .await
            .expect("handshake in time")
            .expect("handshake");
        assert_eq!(resp.status(), 101);
        ws.send(tungstenite::Message::text("héllo through nginx"))
            .await
            .unwrap();
        let m = tokio::time::timeout(WAIT, ws.next()).await.unwrap();
        assert_eq!(
            m.unwrap().unwrap(),
            tungstenite::Message::text("héllo through nginx")
        );

        ws.send(tungstenite::Message::binary(big.clone()))
            .await
            .unwrap();
        let m = tokio::time::timeout(WAIT, ws.next()).await.unwrap();
        assert_eq!(m.unwrap().unwrap(), tungstenite::Message::binary(big));

        ws.close(Some(tungstenite::protocol::CloseFrame {
            code: 4000.into(),
            reason: "bye".into(),
        }))
        .await
        .unwrap();
        let m = tokio::time::timeout(WAIT, ws.next()).await.unwrap();
        match m {
            // The server answers with the same code (spec/websocket.md), no reason.
            Some(Ok(tungstenite::Message::Close(Some(f)))) => {
                assert_eq!((u16::from(f.code), f.reason.as_str()), (4000, ""));
            }
            other => panic!("expected the close frame back, got {other:?}"),
        }
        let end = tokio::time::timeout(WAIT, ws.next()).await.unwrap();
        assert!(
            matches!(end, None | Some(Err(tungstenite::Error::ConnectionClosed))),
            "after the close handshake: {end:?}"
        );
    });

    let end = Instant::now() + WAIT;
    while st.rec.0.ws_disconnect.lock().unwrap().is_none() && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(
        *st.rec.0.ws_disconnect.lock().unwrap(),
        Some((4000, "bye".to_string()))
    );
    let seen = st.rec.seen();
    assert_eq!(seen.len(), 1);
    let v = &seen[0];
    assert_eq!(v.kind, "websocket");
    assert_eq!(v.header("x-forwarded-for").as_deref(), Some("127.0.0.1"));
    assert_eq!(v.client, Some("127.0.0.1:0".parse().unwrap()));
    assert_eq!(v.scheme, Scheme::Ws);
    st.assert_clean_log();
}

/// (e) An SSE stream arrives through nginx event by event: the client gets the first event
/// while the app is still waiting (for the client) to send the second. (A buffering nginx would
/// pass this too, to a client that reads promptly; the next test shows what
/// `X-Accel-Buffering: no` changes.)
#[test]
fn sse_through_nginx_is_not_buffered() {
    let Some(st) = stack("sse_through_nginx_is_not_buffered") else {
        return;
    };
    let mut s = st.connect();
    s.write_all(b"GET /events HTTP/1.1\r\nHost: app.example\r\nAccept: text/event-stream\r\n\r\n")
        .unwrap();
    let head = read_head(&mut s);
    let lower = head.to_ascii_lowercase();
    assert_eq!(status(&head), 200, "{head}");
    assert_eq!(
        header_value(&lower, "content-type"),
        Some("text/event-stream"),
        "{head}"
    );
    assert_eq!(
        header_value(&lower, "transfer-encoding"),
        Some("chunked"),
        "{head}"
    );
    // nginx acts on X-Accel-Buffering and does not pass it on.
    assert_eq!(header_value(&lower, "x-accel-buffering"), None, "{head}");

    s.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let end = Instant::now() + WAIT * 3;
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    let mut released = false;
    let body = loop {
        let (body, done) = dechunk(&raw);
        let text = String::from_utf8_lossy(&body).into_owned();
        if !released && text.contains("data: one\n") {
            assert!(
                !st.rec.0.sse_second_sent.load(Ordering::SeqCst),
                "the first event arrived only after the second was sent: nginx buffered"
            );
            released = true;
            st.rec.0.sse_go.notify_one();
        }
        if done {
            break text;
        }
        assert!(
            Instant::now() < end,
            "the stream did not end in time; so far {text:?}"
        );
        match s.read(&mut buf) {
            Ok(0) => panic!("connection closed before the last chunk: {text:?}"),
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(e) => panic!("read: {e}"),
        }
    };
    assert!(released, "the first event never arrived: {body:?}");
    assert_eq!(body, "event: step\ndata: one\n\nevent: step\ndata: two\n\n");
    let seen = st.rec.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].kind, "sse");
    assert_eq!(seen[0].client, Some("127.0.0.1:0".parse().unwrap()));
    st.assert_clean_log();
}

/// (e, continued) What `X-Accel-Buffering: no` changes. A client that reads promptly gets
/// events at once even from a buffering nginx; the difference is a client that does not read:
/// buffering nginx would keep reading the stream from the app into memory and then into a
/// temporary file (up to 1 GB by default, with a warning in its log). Unbuffered, the client's
/// pace reaches the app: its `send` waits.
#[test]
fn sse_slow_reader_holds_back_the_app() {
    let Some(st) = stack("sse_slow_reader_holds_back_the_app") else {
        return;
    };
    let mut s = st.connect();
    s.write_all(
        b"GET /flood HTTP/1.1\r\nHost: app.example\r\nAccept: text/event-stream\r\n\
          Connection: close\r\n\r\n",
    )
    .unwrap();
    let head = read_head(&mut s);
    assert_eq!(status(&head), 200, "{head}");

    // Not reading: wait until the app stops making progress (or is done).
    let sent = || st.rec.0.flood_sent.load(Ordering::SeqCst);
    let end = Instant::now() + WAIT * 2;
    let (mut last, mut since) = (sent(), Instant::now());
    while sent() < FLOOD_EVENTS && since.elapsed() < Duration::from_millis(500) {
        assert!(Instant::now() < end, "the app kept sending slowly");
        std::thread::sleep(Duration::from_millis(20));
        if sent() != last {
            (last, since) = (sent(), Instant::now());
        }
    }
    let held = sent();
    assert!(
        held < FLOOD_EVENTS,
        "the app sent all {FLOOD_EVENTS} events ({} MiB) to a client that read nothing: \
         nginx buffered the stream",
        (FLOOD_EVENTS * FLOOD_SIZE as u64) >> 20
    );

    // Now read it all: nothing was lost.
    s.set_read_timeout(Some(WAIT)).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read the stream to its end");
    let (body, done) = dechunk(&raw);
    assert!(done, "the stream has no last chunk");
    let events = body
        .split(|&b| b == b'\n')
        .filter(|l| l.starts_with(b"id: "))
        .count();
    assert_eq!(events as u64, FLOOD_EVENTS);
    eprintln!("the app was held at {held} of {FLOOD_EVENTS} events while the client did not read");
    // No "an upstream response is buffered to a temporary file" either.
    st.assert_clean_log();
}

/// (f) Large uploads stream through nginx (`proxy_request_buffering off`): 20 MB with a
/// Content-Length reaches the app while the client is still sending, and a chunked upload is
/// passed on chunked. The app checks every byte.
#[test]
fn large_upload_streams_through_nginx() {
    let Some(st) = stack("large_upload_streams_through_nginx") else {
        return;
    };
    const TOTAL: u64 = 20_000_000;
    const FIRST: u64 = 1_000_000;
    let body: Vec<u8> = (0..TOTAL).map(pattern).collect();

    let mut s = st.connect();
    write!(
        s,
        "POST /upload HTTP/1.1\r\nHost: app.example\r\nContent-Type: application/octet-stream\r\n\
         Content-Length: {TOTAL}\r\n\r\n"
    )
    .unwrap();
    s.write_all(&body[..FIRST as usize]).unwrap();
    // Nothing more is sent until the app has bytes: had nginx buffered the body, this would
    // time out.
    let end = Instant::now() + WAIT;
    let early = loop {
        let got = st.rec.0.upload_progress.load(Ordering::SeqCst);
        if got > 0 || Instant::now() > end {
            break got;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    assert!(
        early > 0 && early <= FIRST,
        "the app got {early} bytes before the client sent more than {FIRST}: nginx is \
         buffering the request body"
    );
    for piece in body[FIRST as usize..].chunks(256 * 1024) {
        s.write_all(piece).unwrap();
    }
    let (head, answer) = read_response(&mut s);
    assert_eq!(status(&head), 200, "{head}");
    assert_eq!(String::from_utf8_lossy(&answer), format!("{TOTAL} ok"));
    eprintln!("the app had {early} of {TOTAL} bytes before the client sent the rest");

    // Chunked from the client: passed on chunked (HTTP/1.1 upstream, no buffering).
    const CHUNKED: u64 = 5_000_000;
    write!(
        s,
        "POST /upload HTTP/1.1\r\nHost: app.example\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    .unwrap();
    for piece in body[..CHUNKED as usize].chunks(100_000) {
        write!(s, "{:x}\r\n", piece.len()).unwrap();
        s.write_all(piece).unwrap();
        s.write_all(b"\r\n").unwrap();
    }
    s.write_all(b"0\r\n\r\n").unwrap();
    let (head, answer) = read_response(&mut s);
    assert_eq!(status(&head), 200, "{head}");
    assert_eq!(String::from_utf8_lossy(&answer), format!("{CHUNKED} ok"));

    let seen = st.rec.seen();
    assert_eq!(seen.len(), 2);
    assert_eq!(
        seen[0].header("content-length").as_deref(),
        Some(&*TOTAL.to_string())
    );
    assert_eq!(
        seen[1].header("transfer-encoding").as_deref(),
        Some("chunked")
    );
    assert_eq!(seen[1].header("content-length"), None);

    // Over the limit: nginx refuses it from the Content-Length; the app is not called.
    write!(
        s,
        "POST /upload HTTP/1.1\r\nHost: app.example\r\nContent-Length: {}\r\n\r\n",
        BODY_LIMIT + 1
    )
    .unwrap();
    let (head, _) = read_response(&mut s);
    assert_eq!(status(&head), 413, "{head}");
    assert_eq!(st.rec.seen().len(), 2);

    let log = st.nginx.log();
    // nginx logs the refused body at `error` level ("client intended to send too large
    // body"); that one line is expected, anything else is not.
    let unexpected: Vec<&str> = log
        .lines()
        .filter(|l| !l.contains("client intended to send too large body"))
        .collect();
    assert!(unexpected.is_empty(), "nginx's error log:\n{log}");
}

/// The example config keeps the directives these tests depend on.
#[test]
fn example_config_has_the_essential_directives() {
    let conf = std::fs::read_to_string(EXAMPLE).unwrap();
    let directives: Vec<String> = conf
        .lines()
        .map(|l| l.split('#').next().unwrap().trim())
        .filter(|l| !l.is_empty())
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    for d in [
        "map $http_upgrade $connection_upgrade {",
        "default upgrade;",
        "'' '';",
        "server unix:/run/app/pagi.sock;",
        "keepalive 32;",
        "proxy_pass http://pagi;",
        "proxy_http_version 1.1;",
        "proxy_set_header Connection $connection_upgrade;",
        "proxy_set_header Upgrade $http_upgrade;",
        "proxy_set_header Host $host;",
        "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
        "proxy_set_header X-Forwarded-Proto $scheme;",
        "proxy_set_header Forwarded \"\";",
        "proxy_read_timeout 1h;",
        "proxy_request_buffering off;",
        "client_max_body_size 10000000;",
    ] {
        assert!(directives.iter().any(|l| l == d), "{EXAMPLE} lacks `{d}`");
    }
    assert!(
        !directives.iter().any(|l| l.starts_with("proxy_buffering")),
        "SSE relies on X-Accel-Buffering, not on proxy_buffering"
    );
    // The server's default body limit is what the example states.
    assert_eq!(Config::default().max_body_size, 10_000_000);
}
