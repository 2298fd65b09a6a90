//! Process-level tests of the `pagi-server` binary: the real executable is started with
//! command-line flags, talked to over TCP and Unix sockets (raw sockets, `curl` and `ureq`),
//! and stopped with real signals.
//!
//! Every child process is owned by a [`Proc`], which kills it on drop, and every wait is
//! bounded.

use std::ffi::OsStr;
use std::fs;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_pagi-server");

/// How long a server may take to start accepting connections.
const READY_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a server given bad options may take to exit.
const STARTUP_ERROR_TIMEOUT: Duration = Duration::from_secs(5);

// ---------------------------------------------------------------------------------------------
// Processes
// ---------------------------------------------------------------------------------------------

/// A running `pagi-server` child; killed (and reaped) on drop. Its stderr goes to a file in a
/// private temp dir, so a chatty server can never block on a full pipe.
struct Proc {
    child: Child,
    args: Vec<String>,
    stderr_path: PathBuf,
    _log_dir: tempfile::TempDir,
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

impl Proc {
    fn spawn<S: AsRef<OsStr>>(args: &[S]) -> Proc {
        let log_dir = tempfile::tempdir().expect("temp dir");
        let stderr_path = log_dir.path().join("stderr.log");
        let stderr = fs::File::create(&stderr_path).expect("stderr file");
        let child = Command::new(BIN)
            .args(args)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("spawn pagi-server");
        let args = args
            .iter()
            .map(|a| a.as_ref().to_string_lossy().into_owned())
            .collect();
        Proc {
            child,
            args,
            stderr_path,
            _log_dir: log_dir,
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything the server wrote to stderr so far.
    fn stderr(&self) -> String {
        fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// Sends a signal (`TERM`, `INT`, ...) with the `kill` command.
    fn signal(&self, sig: &str) {
        let st = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.pid().to_string())
            .status()
            .expect("run kill");
        assert!(st.success(), "kill -{sig} {} failed: {st}", self.pid());
    }

    /// The exit status, if the process exits within `limit`.
    fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(st) = self.child.try_wait().expect("try_wait") {
                return Some(st);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The exit status; panics (with the server's stderr) if it does not exit within `limit`.
    fn expect_exit(&mut self, limit: Duration, what: &str) -> ExitStatus {
        match self.wait_exit(limit) {
            Some(st) => st,
            None => panic!(
                "pagi-server {:?} did not exit within {limit:?} {what}; stderr:\n{}",
                self.args,
                self.stderr()
            ),
        }
    }

    fn is_running(&mut self) -> bool {
        self.child.try_wait().expect("try_wait").is_none()
    }

    /// Polls `connect` until it succeeds; `Err(stderr)` if the process exits or 5 s pass.
    fn wait_ready(&mut self, mut connect: impl FnMut() -> bool) -> Result<(), String> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if connect() {
                return Ok(());
            }
            if let Some(st) = self.child.try_wait().expect("try_wait") {
                return Err(format!(
                    "pagi-server exited during startup ({st}); stderr:\n{}",
                    self.stderr()
                ));
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "pagi-server {:?} did not accept connections within {READY_TIMEOUT:?}; stderr:\n{}",
                    self.args,
                    self.stderr()
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn wait_tcp(&mut self, addr: SocketAddr) -> Result<(), String> {
        self.wait_ready(|| TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok())
    }

    fn wait_unix(&mut self, path: &Path) {
        let path = path.to_owned();
        if let Err(e) = self.wait_ready(|| UnixStream::connect(&path).is_ok()) {
            panic!("{e}");
        }
    }
}

/// A port that was free a moment ago.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts the server with `args(port)` for a fresh port and waits until 127.0.0.1:port accepts.
/// Retries with another port if the port was taken in the meantime (tests run in parallel).
fn start_with(pick_port: impl Fn() -> u16, args: impl Fn(u16) -> Vec<String>) -> (Proc, u16) {
    for attempt in 0..3 {
        let port = pick_port();
        let mut p = Proc::spawn(&args(port));
        match p.wait_tcp(SocketAddr::from(([127, 0, 0, 1], port))) {
            Ok(()) => return (p, port),
            Err(e) if e.contains("in use") && attempt < 2 => continue,
            Err(e) => panic!("{e}"),
        }
    }
    unreachable!()
}

/// Starts the server on 127.0.0.1 (a free port) with extra flags.
fn start_tcp(extra: &[&str]) -> (Proc, SocketAddr) {
    let (p, port) = start_with(free_port, |port| {
        let mut v = vec!["--listen".to_string(), format!("127.0.0.1:{port}")];
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    });
    (p, SocketAddr::from(([127, 0, 0, 1], port)))
}

/// Runs the server with options that must make it fail at startup; returns its exit status
/// and stderr. Panics if it is still running after 5 s.
fn startup_failure<S: AsRef<OsStr>>(args: &[S]) -> (ExitStatus, String) {
    let mut p = Proc::spawn(args);
    let st = p.wait_exit(STARTUP_ERROR_TIMEOUT).unwrap_or_else(|| {
        panic!(
            "pagi-server {:?} kept running instead of failing at startup; stderr:\n{}",
            p.args,
            p.stderr()
        )
    });
    (st, p.stderr())
}

/// Asserts a startup error: a non-zero exit code (not a death by signal) and a message on
/// stderr containing every one of `needles`.
fn assert_startup_error<S: AsRef<OsStr>>(args: &[S], needles: &[&str]) -> String {
    let (st, stderr) = startup_failure(args);
    let shown: Vec<_> = args
        .iter()
        .map(|a| a.as_ref().to_string_lossy().into_owned())
        .collect();
    assert!(
        st.code().is_some_and(|c| c != 0),
        "pagi-server {shown:?} should exit with a non-zero code, got {st}; stderr:\n{stderr}"
    );
    for n in needles {
        assert!(
            stderr.contains(n),
            "pagi-server {shown:?}: stderr should mention {n:?}; it is:\n{stderr}"
        );
    }
    assert!(
        !stderr.contains("panicked"),
        "pagi-server {shown:?} panicked:\n{stderr}"
    );
    stderr
}

// ---------------------------------------------------------------------------------------------
// A raw HTTP/1.1 client
// ---------------------------------------------------------------------------------------------

#[derive(Debug)]
struct Response {
    status: u16,
    head: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    /// The first value of header `name` (case-insensitive).
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn body_str(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Parses one complete response at the start of `buf`: `Some((response, bytes used))`, or
/// `None` if more bytes are needed. `no_body`: the answer to a HEAD request. `eof`: the
/// connection is closed, so a body without framing ends here.
fn parse_response(buf: &[u8], no_body: bool, eof: bool) -> Option<(Response, usize)> {
    let head_end = find(buf, b"\r\n\r\n")? + 4;
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let status: u16 = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let headers: Vec<(String, String)> = lines
        .filter(|l| !l.is_empty())
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let get = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    };
    let rest = &buf[head_end..];
    let (body, used) = if no_body || status < 200 || status == 204 || status == 304 {
        (Vec::new(), 0)
    } else if get("transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked")) {
        let mut body = Vec::new();
        let mut pos = 0;
        loop {
            let line_end = pos + find(&rest[pos..], b"\r\n")?;
            let line = String::from_utf8_lossy(&rest[pos..line_end]).into_owned();
            let size = usize::from_str_radix(line.split(';').next().unwrap().trim(), 16)
                .unwrap_or_else(|_| {
                    panic!(
                        "bad chunk size line {line:?} in {:?}",
                        String::from_utf8_lossy(buf)
                    )
                });
            pos = line_end + 2;
            if size == 0 {
                // trailers, then the empty line
                loop {
                    let end = pos + find(&rest[pos..], b"\r\n")?;
                    let empty = end == pos;
                    pos = end + 2;
                    if empty {
                        break;
                    }
                }
                break;
            }
            if rest.len() < pos + size + 2 {
                return None;
            }
            body.extend_from_slice(&rest[pos..pos + size]);
            assert_eq!(
                &rest[pos + size..pos + size + 2],
                b"\r\n",
                "chunk not followed by CRLF"
            );
            pos += size + 2;
        }
        (body, pos)
    } else if let Some(cl) = get("content-length") {
        let n: usize = cl
            .parse()
            .unwrap_or_else(|_| panic!("bad content-length {cl:?}"));
        if rest.len() < n {
            return None;
        }
        (rest[..n].to_vec(), n)
    } else if eof {
        (rest.to_vec(), rest.len())
    } else {
        return None;
    };
    Some((
        Response {
            status,
            head,
            headers,
            body,
        },
        head_end + used,
    ))
}

/// A raw TCP client connection with its unread bytes.
struct Client {
    s: TcpStream,
    buf: Vec<u8>,
}

impl Client {
    fn connect(addr: SocketAddr) -> Client {
        let s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))
            .unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
        s.set_nodelay(true).unwrap();
        Client { s, buf: Vec::new() }
    }

    fn send(&mut self, bytes: &[u8]) {
        self.s.write_all(bytes).expect("send request");
    }

    /// Reads one complete response (at most 5 s).
    fn response(&mut self, no_body: bool) -> Response {
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut chunk = [0u8; 16 * 1024];
        loop {
            if let Some((r, n)) = parse_response(&self.buf, no_body, false) {
                self.buf.drain(..n);
                return r;
            }
            assert!(
                Instant::now() < deadline,
                "no complete response within 5 s; got {:?}",
                String::from_utf8_lossy(&self.buf)
            );
            match self.s.read(&mut chunk) {
                Ok(0) => match parse_response(&self.buf, no_body, true) {
                    Some((r, n)) => {
                        self.buf.drain(..n);
                        return r;
                    }
                    None => panic!(
                        "connection closed before a complete response; got {:?}",
                        String::from_utf8_lossy(&self.buf)
                    ),
                },
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(e) => panic!(
                    "reading a response: {e}; got {:?}",
                    String::from_utf8_lossy(&self.buf)
                ),
            }
        }
    }

    /// Reads until the server closes the connection (EOF or reset); returns the bytes read
    /// (including unread buffered ones). Panics if it stays open for longer than `limit`.
    fn read_until_close(&mut self, limit: Duration) -> Vec<u8> {
        let deadline = Instant::now() + limit;
        let mut out = std::mem::take(&mut self.buf);
        let mut chunk = [0u8; 16 * 1024];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "the server kept the connection open for more than {limit:?}; got {:?}",
                String::from_utf8_lossy(&out)
            );
            self.s
                .set_read_timeout(Some(left.max(Duration::from_millis(1))))
                .unwrap();
            match self.s.read(&mut chunk) {
                Ok(0) => return out,
                Ok(n) => out.extend_from_slice(&chunk[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(_) => return out, // reset
            }
        }
    }
}

/// One request on a fresh connection; returns the response.
fn fetch(addr: SocketAddr, req: &[u8]) -> Response {
    let mut c = Client::connect(addr);
    c.send(req);
    c.response(req.starts_with(b"HEAD "))
}

fn get(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n").into_bytes()
}

// ---------------------------------------------------------------------------------------------
// External clients
// ---------------------------------------------------------------------------------------------

/// Runs `curl` (silent, errors shown, 10 s cap). Fails the test if curl cannot be run: CI
/// installs it, and these tests must not pass silently without it.
fn curl<S: AsRef<OsStr>>(args: &[S]) -> Output {
    Command::new("curl")
        .args(["--silent", "--show-error", "--max-time", "10"])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| {
            panic!("these tests need the `curl` command-line client, but it could not be run ({e}); install curl")
        })
}

/// Runs `curl` and asserts it succeeded; returns its stdout.
fn curl_ok<S: AsRef<OsStr>>(args: &[S]) -> Vec<u8> {
    let out = curl(args);
    let shown: Vec<_> = args
        .iter()
        .map(|a| a.as_ref().to_string_lossy().into_owned())
        .collect();
    assert!(
        out.status.success(),
        "curl {shown:?} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn ureq_agent() -> ureq::Agent {
    let config = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(10)))
        .http_status_as_error(false)
        .build();
    ureq::Agent::new_with_config(config)
}

/// Deterministic pseudo-random bytes (xorshift); `printable` keeps them in `!`..=`~`.
fn test_bytes(n: usize, printable: bool) -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let b = (x >> 24) as u8;
            if printable {
                b'!' + b % (b'~' - b'!' + 1)
            } else {
                b
            }
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Startup errors
// ---------------------------------------------------------------------------------------------

#[test]
fn port_in_use_is_a_startup_error() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    assert_startup_error(&["--listen", &addr], &[&addr, "in use"]);
    // The other listener is untouched.
    assert!(TcpStream::connect(&addr).is_ok());
}

#[test]
fn malformed_listen_specs_are_startup_errors() {
    assert_startup_error(&["--listen", "[::1]"], &["[::1]", "listen spec"]);
    assert_startup_error(
        &["--listen", "127.0.0.1:99999"],
        &["127.0.0.1:99999", "port out of range"],
    );
    assert_startup_error(&["--listen", ":8000"], &[":8000", "no host"]);
}

#[test]
fn bad_socket_mode_is_a_startup_error() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("mode.sock");
    let sock = sock.to_str().unwrap();
    for mode in ["0999", "rw"] {
        assert_startup_error(
            &["--listen", sock, "--socket-mode", mode],
            &[mode, "socket mode", "octal"],
        );
        assert!(
            !Path::new(sock).exists(),
            "no socket file is left behind for --socket-mode {mode}"
        );
    }
}

#[test]
fn unix_path_that_is_a_regular_file_is_an_error_and_kept() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("important.txt");
    fs::write(&path, b"do not delete me").unwrap();
    let shown = path.to_str().unwrap();
    assert_startup_error(&["--listen", shown], &[shown, "not a socket"]);
    assert_eq!(
        fs::read(&path).expect("the regular file must still exist"),
        b"do not delete me"
    );
}

#[test]
fn unix_path_in_a_missing_directory_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("no-such-dir").join("app.sock");
    let shown = path.to_str().unwrap();
    assert_startup_error(&["--listen", shown], &[shown, "No such file or directory"]);
    assert!(!dir.path().join("no-such-dir").exists());
}

#[test]
fn unknown_flag_is_an_error() {
    assert_startup_error(&["--no-such-flag"], &["--no-such-flag"]);
}

// ---------------------------------------------------------------------------------------------
// Unix sockets
// ---------------------------------------------------------------------------------------------

#[test]
fn stale_unix_socket_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("stale.sock");
    drop(UnixListener::bind(&path).unwrap()); // leaves the socket file behind, like a crash
    assert!(fs::symlink_metadata(&path).unwrap().file_type().is_socket());
    let shown = path.to_str().unwrap();
    let mut p = Proc::spawn(&["--listen", shown]);
    p.wait_unix(&path);
    let body = curl_ok(&["--unix-socket", shown, "http://x/"]);
    assert_eq!(String::from_utf8_lossy(&body), "Hello, world!");
}

#[test]
fn live_unix_socket_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("live.sock");
    let other = UnixListener::bind(&path).unwrap();
    let shown = path.to_str().unwrap();
    assert_startup_error(
        &["--listen", shown],
        &[shown, "another server is listening"],
    );
    // The other server's socket is untouched and still works.
    assert!(fs::symlink_metadata(&path).unwrap().file_type().is_socket());
    let _c = UnixStream::connect(&path).expect("the other listener still accepts");
    other.set_nonblocking(true).unwrap();
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        match other.accept() {
            Ok(_) => break,
            Err(e) if e.kind() == ErrorKind::WouldBlock && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10))
            }
            Err(e) => panic!("the other listener should see our connection: {e}"),
        }
    }
}

#[test]
fn socket_mode_sets_the_socket_permissions() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("perm.sock");
    let mut p = Proc::spawn(&["--listen", path.to_str().unwrap(), "--socket-mode", "0660"]);
    p.wait_unix(&path);
    let meta = fs::symlink_metadata(&path).unwrap();
    assert!(meta.file_type().is_socket());
    assert_eq!(
        meta.permissions().mode() & 0o7777,
        0o660,
        "mode {:o}",
        meta.permissions().mode()
    );
}

// ---------------------------------------------------------------------------------------------
// Several listeners
// ---------------------------------------------------------------------------------------------

#[test]
fn tcp_and_unix_listeners_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("both.sock");
    let sock = path.to_str().unwrap().to_string();
    let (mut p, addr) = start_tcp(&["--listen", &sock]);
    p.wait_unix(&path);
    let tcp = curl_ok(&[format!("http://{addr}/")]);
    assert_eq!(String::from_utf8_lossy(&tcp), "Hello, world!");
    let unix = curl_ok(&["--unix-socket", &sock, "http://x/"]);
    assert_eq!(String::from_utf8_lossy(&unix), "Hello, world!");
    // The Unix listener's scope names the socket as the server, with no client address.
    let scope = curl_ok(&["--unix-socket", &sock, "http://x/scope"]);
    let v: serde_json::Value = serde_json::from_slice(&scope).expect("scope JSON");
    assert_eq!(v["server"][0], serde_json::json!(sock));
    assert_eq!(v["client"], serde_json::Value::Null);
}

#[test]
fn ipv4_and_ipv6_on_the_same_port() {
    let have_v6 = TcpListener::bind("[::1]:0").is_ok();
    if !have_v6 {
        eprintln!("no IPv6 loopback on this machine: testing only the IPv4 listener");
    }
    // A port free on both 127.0.0.1 and [::1].
    let pick = || loop {
        let v4 = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = v4.local_addr().unwrap().port();
        if !have_v6 || TcpListener::bind(("::1", port)).is_ok() {
            return port;
        }
    };
    let (_p, port) = start_with(pick, |port| {
        let mut v = vec!["--listen".to_string(), format!("127.0.0.1:{port}")];
        if have_v6 {
            v.extend(["--listen".to_string(), format!("[::1]:{port}")]);
        }
        v
    });
    let v4 = fetch(SocketAddr::from(([127, 0, 0, 1], port)), &get("/"));
    assert_eq!((v4.status, v4.body_str().as_str()), (200, "Hello, world!"));
    if have_v6 {
        let v6_addr: SocketAddr = format!("[::1]:{port}").parse().unwrap();
        let v6 = fetch(v6_addr, &get("/scope"));
        assert_eq!(v6.status, 200);
        let v: serde_json::Value = serde_json::from_slice(&v6.body).unwrap();
        assert_eq!(
            v["server"],
            serde_json::json!(["::1", port]),
            "{}",
            v6.body_str()
        );
        let out = curl_ok(&[format!("http://[::1]:{port}/")]);
        assert_eq!(String::from_utf8_lossy(&out), "Hello, world!");
    }
}

// ---------------------------------------------------------------------------------------------
// Signals and shutdown
// ---------------------------------------------------------------------------------------------

#[test]
fn graceful_shutdown_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("graceful.sock");
    let sock = path.to_str().unwrap().to_string();
    let (mut p, addr) = start_tcp(&["--listen", &sock]);
    p.wait_unix(&path);

    // An idle keep-alive connection, after one completed request.
    let mut idle = Client::connect(addr);
    idle.send(&get("/"));
    let r = idle.response(false);
    assert_eq!((r.status, r.body_str().as_str()), (200, "Hello, world!"));

    // A slow request in flight.
    let mut slow = Client::connect(addr);
    slow.send(&get("/sleep?ms=1500"));
    let slow_sent = Instant::now();
    std::thread::sleep(Duration::from_millis(300)); // the server has read it and the app sleeps

    p.signal("TERM");
    let t0 = Instant::now();

    // The idle connection is closed promptly, without a response.
    idle.s
        .set_read_timeout(Some(Duration::from_millis(1000)))
        .unwrap();
    let mut b = [0u8; 256];
    let r = idle.s.read(&mut b);
    let idle_closed_after = t0.elapsed();
    assert!(
        matches!(r, Ok(0)),
        "the idle connection should get EOF after SIGTERM, got {r:?}"
    );
    assert!(
        idle_closed_after < Duration::from_millis(500),
        "idle connection closed only after {idle_closed_after:?}"
    );

    // New connections are refused soon after (while the slow request still runs).
    let refused = loop {
        match TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
            Err(e) => break e,
            Ok(_) if t0.elapsed() < Duration::from_millis(800) => {
                std::thread::sleep(Duration::from_millis(20))
            }
            Ok(_) => panic!(
                "new connections are still accepted {:?} after SIGTERM",
                t0.elapsed()
            ),
        }
    };
    assert_eq!(refused.kind(), ErrorKind::ConnectionRefused, "{refused}");
    assert!(
        p.is_running(),
        "the server must wait for the request in flight; stderr:\n{}",
        p.stderr()
    );

    // The slow request still completes.
    let r = slow.response(false);
    assert_eq!(r.status, 200, "{}", r.head);
    assert_eq!(r.body_str(), "slept 1500 ms");
    assert!(slow_sent.elapsed() >= Duration::from_millis(1500));
    assert_eq!(
        r.header("connection"),
        Some("close"),
        "a draining server closes after the response: {}",
        r.head
    );
    let rest = slow.read_until_close(Duration::from_secs(3));
    assert!(
        rest.is_empty(),
        "nothing after the response: {:?}",
        String::from_utf8_lossy(&rest)
    );
    drop(slow);

    let st = p.expect_exit(Duration::from_secs(3), "after its last request finished");
    assert_eq!(
        st.code(),
        Some(0),
        "graceful shutdown exits 0 ({st}); stderr:\n{}",
        p.stderr()
    );
    assert!(
        fs::symlink_metadata(&path).is_err(),
        "the Unix socket file {sock} should be removed on shutdown"
    );
}

#[test]
fn shutdown_timeout_cuts_requests_in_flight() {
    let (mut p, addr) = start_tcp(&["--shutdown-timeout", "300ms"]);
    let mut slow = Client::connect(addr);
    slow.send(&get("/sleep?ms=10000"));
    std::thread::sleep(Duration::from_millis(300));
    p.signal("TERM");
    let t0 = Instant::now();
    let st = p.expect_exit(
        Duration::from_secs(2),
        "after SIGTERM with --shutdown-timeout 300ms",
    );
    let took = t0.elapsed();
    assert_eq!(st.code(), Some(0), "({st}); stderr:\n{}", p.stderr());
    assert!(
        took >= Duration::from_millis(250),
        "it should give the request 300 ms, exited after {took:?}"
    );
    let got = slow.read_until_close(Duration::from_secs(2));
    assert!(
        got.is_empty(),
        "the cut request must get no response, got {:?}",
        String::from_utf8_lossy(&got)
    );
}

/// First signal starts the graceful wait (a 10 s request is in flight, the shutdown timeout is
/// 30 s); the second one exits at once with a non-zero code.
fn second_signal_exits_at_once(first: &str, second: &str) {
    let (mut p, addr) = start_tcp(&[]);
    let mut slow = Client::connect(addr);
    slow.send(&get("/sleep?ms=10000"));
    std::thread::sleep(Duration::from_millis(300));
    p.signal(first);
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        p.is_running(),
        "after one SIG{first} the server waits for the request; stderr:\n{}",
        p.stderr()
    );
    p.signal(second);
    let st = p.expect_exit(
        Duration::from_secs(1),
        &format!("after SIG{first} then SIG{second}"),
    );
    assert!(
        st.code().is_some_and(|c| c != 0),
        "a second signal exits with a non-zero code, got {st}; stderr:\n{}",
        p.stderr()
    );
    let got = slow.read_until_close(Duration::from_secs(2));
    assert!(
        got.is_empty(),
        "no response for the cut request: {:?}",
        String::from_utf8_lossy(&got)
    );
}

#[test]
fn second_sigterm_exits_at_once() {
    second_signal_exits_at_once("TERM", "TERM");
}

#[test]
fn sigint_after_sigterm_exits_at_once() {
    second_signal_exits_at_once("TERM", "INT");
}

#[test]
fn second_sigint_exits_at_once() {
    second_signal_exits_at_once("INT", "INT");
}

// ---------------------------------------------------------------------------------------------
// Limits
// ---------------------------------------------------------------------------------------------

#[test]
fn max_body_size() {
    let (_p, addr) = start_tcp(&["--max-body-size", "10"]);
    let r = fetch(
        addr,
        b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\n0123456789",
    );
    assert_eq!(
        (r.status, r.body_str().as_str()),
        (200, "0123456789"),
        "{}",
        r.head
    );
    let r = fetch(
        addr,
        b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 11\r\n\r\n0123456789A",
    );
    assert_eq!(r.status, 413, "{}", r.head);
    assert_eq!(r.header("connection"), Some("close"));
    // curl sees the same.
    let code = curl_ok(&[
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "--data-binary",
        "0123456789A",
        &format!("http://{addr}/echo"),
    ]);
    assert_eq!(String::from_utf8_lossy(&code), "413");
}

#[test]
fn max_connections() {
    let (_p, addr) = start_tcp(&["--max-connections", "1"]);
    // The first connection (retried while the readiness probe's connection is still counted).
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut first = loop {
        let mut c = Client::connect(addr);
        c.send(&get("/"));
        let r = c.response(false);
        if r.status == 200 {
            assert_eq!(r.body_str(), "Hello, world!");
            break c;
        }
        assert_eq!(r.status, 503, "{}", r.head);
        assert!(
            Instant::now() < deadline,
            "the first connection keeps getting 503"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    // While it stays open, a second one gets 503 with Retry-After.
    let mut second = Client::connect(addr);
    let got = second.read_until_close(Duration::from_secs(3));
    let (r, _) = parse_response(&got, false, true)
        .unwrap_or_else(|| panic!("no response: {:?}", String::from_utf8_lossy(&got)));
    assert_eq!(r.status, 503, "{}", r.head);
    let retry = r
        .header("retry-after")
        .unwrap_or_else(|| panic!("no retry-after: {}", r.head));
    assert!(
        retry.parse::<u32>().is_ok_and(|s| s > 0),
        "retry-after {retry:?}"
    );
    // The first one still works.
    first.send(&get("/"));
    assert_eq!(first.response(false).status, 200);
    // Once it is closed, a new connection is served again.
    drop(first);
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let r = fetch(addr, &get("/"));
        if r.status == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still {} after the first connection closed",
            r.status
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// CPU time (user + system) a process has used so far, from /proc/PID/stat, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    // The fields after the command name (which is in parentheses); utime and stime are the
    // 14th and 15th fields of the whole line.
    let rest = &stat[stat.rfind(')').expect(")") + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

#[test]
fn out_of_file_descriptors_pauses_accepting_instead_of_spinning() {
    if Command::new("prlimit").arg("--version").output().is_err() {
        assert!(
            std::env::var_os("CI").is_none(),
            "prlimit (util-linux) is missing"
        );
        eprintln!("SKIP: prlimit is missing");
        return;
    }
    let port = free_port();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("stderr.log");
    // 40 descriptors: the server's own (runtime, listener, stdio) leave room for a few dozen
    // connections.
    let child = Command::new("prlimit")
        .args(["--nofile=40:40", BIN, "--listen", &addr.to_string()])
        .args([
            "--max-connections",
            "0",
            "--threads",
            "1",
            "--log-level",
            "warn",
        ])
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut p = Proc {
        child,
        args: vec![],
        stderr_path: log.clone(),
        _log_dir: dir,
    };
    p.wait_tcp(addr).unwrap();
    let pid = p.pid();
    // Open many more connections than the server can hold (idle: they are closed as soon as
    // the client goes); the rest wait in the listen queue while accept fails with EMFILE.
    let held: Vec<TcpStream> = (0..80).map(|_| TcpStream::connect(addr).unwrap()).collect();
    // Give it time to run out, then measure: a server spinning on EMFILE burns a whole core.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !fs::read_to_string(&log)
        .unwrap_or_default()
        .contains("out of file descriptors")
    {
        assert!(
            Instant::now() < deadline,
            "no EMFILE warning: {}",
            p.stderr()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let before = cpu_ticks(pid);
    std::thread::sleep(Duration::from_secs(2));
    let used = cpu_ticks(pid) - before;
    // Clock ticks are 1/100 s: 2 s of spinning would be ~200.
    assert!(
        used < 40,
        "{used} ticks of CPU in 2 s while out of descriptors"
    );
    // The warning is rate-limited: at most one a second (plus one at the edges).
    let warnings = p.stderr().matches("out of file descriptors").count();
    assert!(
        (1..=5).contains(&warnings),
        "{warnings} warnings: {}",
        p.stderr()
    );
    // Once the connections are gone, the server serves again.
    drop(held);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(mut c) = TcpStream::connect(addr) {
            let _ = c.set_read_timeout(Some(Duration::from_secs(2)));
            if c.write_all(&get("/")).is_ok() {
                let mut buf = Vec::new();
                let _ = c.read_to_end(&mut buf);
                if buf.starts_with(b"HTTP/1.1 200 ") {
                    break;
                }
            }
        }
        assert!(
            Instant::now() < deadline,
            "not serving after EMFILE: {}",
            p.stderr()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(p.is_running());
}

// ---------------------------------------------------------------------------------------------
// Real clients
// ---------------------------------------------------------------------------------------------

#[test]
fn curl_status_codes() {
    let (_p, addr) = start_tcp(&[]);
    let code = |path: &str| {
        let out = curl_ok(&[
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            &format!("http://{addr}{path}"),
        ]);
        String::from_utf8_lossy(&out).into_owned()
    };
    assert_eq!(code("/"), "200");
    assert_eq!(code("/no-such-route"), "404");
    let body = curl_ok(&[format!("http://{addr}/stream?n=3")]);
    assert_eq!(String::from_utf8_lossy(&body), "line 0\nline 1\nline 2\n");
}

#[test]
fn curl_http10() {
    let (_p, addr) = start_tcp(&[]);
    let out = curl_ok(&["--http1.0", "-i", &format!("http://{addr}/")]);
    let text = String::from_utf8_lossy(&out);
    let (r, _) = parse_response(&out, false, true).unwrap_or_else(|| panic!("{text}"));
    assert_eq!(r.status, 200, "{text}");
    assert_eq!(r.body_str(), "Hello, world!");
    // An HTTP/1.0 client without keep-alive gets no chunked framing.
    assert_ne!(r.header("transfer-encoding"), Some("chunked"), "{text}");
    // A streamed answer to HTTP/1.0 arrives whole too.
    let out = curl_ok(&["--http1.0", &format!("http://{addr}/stream?n=2")]);
    assert_eq!(String::from_utf8_lossy(&out), "line 0\nline 1\n");
}

#[test]
fn curl_uploads_1mb_byte_exact() {
    let (_p, addr) = start_tcp(&[]);
    let dir = tempfile::tempdir().unwrap();
    let url = format!("http://{addr}/echo");
    // `-d @file` strips CR and LF, so its file has neither; `--data-binary` sends any bytes.
    for (flag, printable) in [("-d", true), ("--data-binary", false)] {
        let data = test_bytes(1 << 20, printable);
        let input = dir.path().join(format!("in{flag}"));
        let output = dir.path().join(format!("out{flag}"));
        fs::write(&input, &data).unwrap();
        let code = curl_ok(&[
            OsStr::new(flag),
            format!("@{}", input.display()).as_ref(),
            OsStr::new("-o"),
            output.as_os_str(),
            OsStr::new("-w"),
            OsStr::new("%{http_code}"),
            OsStr::new(&url),
        ]);
        assert_eq!(String::from_utf8_lossy(&code), "200", "curl {flag}");
        let echoed = fs::read(&output).unwrap();
        assert_eq!(echoed.len(), data.len(), "curl {flag}: echoed length");
        assert!(
            echoed == data,
            "curl {flag}: the echoed body differs from the upload"
        );
    }
}

#[test]
fn curl_chunked_upload() {
    let (_p, addr) = start_tcp(&[]);
    let out = curl_ok(&[
        "-H",
        "Transfer-Encoding: chunked",
        "-H",
        "Content-Type: text/plain",
        "-d",
        "hello chunked world",
        &format!("http://{addr}/echo"),
    ]);
    assert_eq!(String::from_utf8_lossy(&out), "hello chunked world");
}

#[test]
fn curl_head() {
    let (_p, addr) = start_tcp(&[]);
    let out = curl_ok(&["-I", &format!("http://{addr}/")]);
    let text = String::from_utf8_lossy(&out).into_owned();
    let (r, _) = parse_response(&out, true, true).unwrap_or_else(|| panic!("{text}"));
    assert_eq!(r.status, 200, "{text}");
    assert_eq!(r.header("content-type"), Some("text/plain"), "{text}");
    if let Some(cl) = r.header("content-length") {
        assert_eq!(cl, "13", "HEAD gets GET's content-length: {text}");
    }
    // No body follows a HEAD answer: the next pipelined answer starts right after its head.
    let mut c = Client::connect(addr);
    c.send(b"HEAD / HTTP/1.1\r\nHost: t\r\n\r\nGET / HTTP/1.1\r\nHost: t\r\n\r\n");
    let head = c.response(true);
    assert_eq!(head.status, 200, "{}", head.head);
    let next = c.response(false);
    assert_eq!(
        (next.status, next.body_str().as_str()),
        (200, "Hello, world!"),
        "{}",
        next.head
    );
}

#[test]
fn ureq_get_and_post() {
    let (_p, addr) = start_tcp(&[]);
    let agent = ureq_agent();
    let mut r = agent
        .get(&format!("http://{addr}/"))
        .call()
        .expect("ureq GET /");
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.body_mut().read_to_string().unwrap(), "Hello, world!");
    let mut r = agent
        .post(&format!("http://{addr}/echo"))
        .header("content-type", "text/plain")
        .send("ping from ureq")
        .expect("ureq POST /echo");
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(
        r.headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("text/plain")
    );
    assert_eq!(r.body_mut().read_to_string().unwrap(), "ping from ureq");
    // Again, on the pooled connection.
    let mut r = agent
        .get(&format!("http://{addr}/"))
        .call()
        .expect("ureq GET / again");
    assert_eq!(r.body_mut().read_to_string().unwrap(), "Hello, world!");
}

// ---------------------------------------------------------------------------------------------
// Other flags
// ---------------------------------------------------------------------------------------------

#[test]
fn root_path_shows_in_scope() {
    let (_p, addr) = start_tcp(&["--root-path", "/api"]);
    let r = fetch(addr, &get("/scope"));
    assert_eq!(r.status, 200);
    let v: serde_json::Value = serde_json::from_slice(&r.body).expect("scope JSON");
    assert_eq!(v["root_path"], "/api", "{}", r.body_str());
    assert_eq!(v["path"], "/scope", "{}", r.body_str());

    let (_p2, addr2) = start_tcp(&[]);
    let r = fetch(addr2, &get("/scope"));
    let v: serde_json::Value = serde_json::from_slice(&r.body).expect("scope JSON");
    assert_eq!(v["root_path"], "", "{}", r.body_str());
}

#[test]
fn no_server_header() {
    let (_p, addr) = start_tcp(&["--no-server-header"]);
    let r = fetch(addr, &get("/"));
    assert_eq!(r.status, 200);
    assert_eq!(r.header("server"), None, "{}", r.head);

    let (_p2, addr2) = start_tcp(&[]);
    let r = fetch(addr2, &get("/"));
    assert_eq!(r.header("server"), Some("pagi-server"), "{}", r.head);
}

#[test]
fn debug_log_level_logs_refused_requests() {
    let (p, addr) = start_tcp(&["--log-level", "debug"]);
    let r = fetch(addr, b"GET / HTTP/1.1\r\n\r\n"); // no Host
    assert_eq!(r.status, 400, "{}", r.head);
    // The line is written before the 400 is; allow a moment anyway.
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let err = p.stderr();
        if err
            .lines()
            .any(|l| l.contains("DEBUG") && l.contains("refused"))
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no debug line about the refused request on stderr:\n{err}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }

    // At the default level (info) it is not logged.
    let (p2, addr2) = start_tcp(&[]);
    let r = fetch(addr2, b"GET / HTTP/1.1\r\n\r\n");
    assert_eq!(r.status, 400, "{}", r.head);
    let err = p2.stderr();
    assert!(
        !err.contains("refused"),
        "info level should not log refused requests:\n{err}"
    );
    assert!(
        err.contains("listening on"),
        "info level logs the listeners:\n{err}"
    );
}

// ---------------------------------------------------------------------------------------------
// Middleware options: proxy headers and the access log
// ---------------------------------------------------------------------------------------------

/// Waits until `path` holds at least `lines` lines (the access log is written in the
/// background).
fn wait_lines(path: &Path, lines: usize) -> String {
    let end = Instant::now() + Duration::from_secs(5);
    loop {
        let s = fs::read_to_string(path).unwrap_or_default();
        if s.lines().count() >= lines || Instant::now() > end {
            return s;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn access_log_with_proxy_headers_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    let log_s = log.to_string_lossy().into_owned();
    let (p, addr) = start_tcp(&[
        "--proxy-headers",
        "--forwarded-allow-ips",
        "127.0.0.1",
        "--access-log",
        &log_s,
        "--access-log-format",
        "%h %s %b \"%r\" %{x-forwarded-proto}i",
    ]);
    let mut c = Client::connect(addr);
    c.send(b"GET /?a=1 HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 203.0.113.7, 10.0.0.1\r\nX-Forwarded-Proto: https\r\n\r\n");
    assert_eq!(c.response(false).status, 200);
    // 10.0.0.1 is not trusted, so it is the client (the walk goes from the right).
    let got = wait_lines(&log, 1);
    assert_eq!(got, "10.0.0.1 200 13 \"GET /?a=1 HTTP/1.1\" https\n");

    // logrotate: move the file away, SIGUSR1, and the next line goes to a new file.
    let rotated = dir.path().join("access.log.1");
    fs::rename(&log, &rotated).unwrap();
    p.signal("USR1");
    let end = Instant::now() + Duration::from_secs(5);
    while !p.stderr().contains("access log reopened") && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(20));
    }
    c.send(b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(c.response(false).status, 404);
    assert_eq!(
        wait_lines(&log, 1),
        "127.0.0.1 404 10 \"GET /nope HTTP/1.1\" -\n"
    );
    assert_eq!(
        fs::read_to_string(&rotated).unwrap().lines().count(),
        1,
        "the old file keeps only the first line"
    );
}

#[test]
fn proxy_headers_from_an_untrusted_peer_are_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    let log_s = log.to_string_lossy().into_owned();
    let (_p, addr) = start_tcp(&[
        "--proxy-headers",
        "--forwarded-allow-ips",
        "10.0.0.0/8, ::1",
        "--access-log",
        &log_s,
        "--access-log-format",
        "%h %s",
    ]);
    let mut c = Client::connect(addr);
    c.send(b"GET / HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 203.0.113.7\r\n\r\n");
    assert_eq!(c.response(false).status, 200);
    assert_eq!(wait_lines(&log, 1), "127.0.0.1 200\n");
}

#[test]
fn middleware_option_errors() {
    assert_startup_error(
        &[
            "--listen",
            "127.0.0.1:0",
            "--proxy-headers",
            "--forwarded-allow-ips",
            "10.0.0.300",
        ],
        &["--forwarded-allow-ips", "10.0.0.300"],
    );
    assert_startup_error(
        &[
            "--listen",
            "127.0.0.1:0",
            "--access-log",
            "--access-log-format",
            "%Q",
        ],
        &["--access-log-format"],
    );
    assert_startup_error(
        &[
            "--listen",
            "127.0.0.1:0",
            "--access-log",
            "/nonexistent-dir/x.log",
        ],
        &["/nonexistent-dir/x.log"],
    );
}

#[test]
fn healthcheck_trusted_hosts_and_request_id_options() {
    let (_p, addr) = start_tcp(&[
        "--healthcheck",
        "/healthz",
        "--trusted-hosts",
        "example.com, *.example.org",
        "--request-id",
    ]);
    let mut c = Client::connect(addr);
    // The health check answers before the host check.
    c.send(b"GET /healthz HTTP/1.1\r\nHost: 10.1.2.3\r\n\r\n");
    let r = c.response(false);
    assert_eq!((r.status, r.body_str().as_str()), (200, "OK\n"));
    c.send(b"GET / HTTP/1.1\r\nHost: api.example.org:8080\r\nX-Request-Id: abc-123\r\n\r\n");
    let r = c.response(false);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-request-id"), Some("abc-123"));
    c.send(b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n");
    let r = c.response(false);
    let id = r.header("x-request-id").unwrap_or_default().to_owned();
    assert_eq!(id.len(), 36, "a generated, UUID-shaped id: {id:?}");
    c.send(b"GET / HTTP/1.1\r\nHost: evil.test\r\n\r\n");
    assert_eq!(c.response(false).status, 400);
}

// ---------------------------------------------------------------------------------------------
// PROXY protocol and allow/deny flags
// ---------------------------------------------------------------------------------------------

/// Waits (at most 2 s) until the server's stderr has a line with every one of `needles`.
fn wait_for_log(p: &Proc, needles: &[&str]) {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let err = p.stderr();
        if err.lines().any(|l| needles.iter().all(|n| l.contains(n))) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no log line with {needles:?} on stderr:\n{err}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn proxy_protocol_flags() {
    let (p, addr) = start_tcp(&[
        "--proxy-protocol",
        "auto",
        "--proxy-allow-from",
        "10.0.0.0/8, 127.0.0.1",
    ]);
    // A v2 header (PROXY, TCP over IPv4) naming 198.51.100.9:4444, then the request.
    let mut req = b"\r\n\r\n\0\r\nQUIT\n\x21\x11\x00\x0c".to_vec();
    req.extend_from_slice(&[198, 51, 100, 9, 127, 0, 0, 1]);
    req.extend_from_slice(&4444u16.to_be_bytes());
    req.extend_from_slice(&addr.port().to_be_bytes());
    req.extend_from_slice(&get("/scope"));
    let r = fetch(addr, &req);
    assert_eq!(r.status, 200, "{}", r.head);
    let v: serde_json::Value = serde_json::from_slice(&r.body).expect("scope JSON");
    assert_eq!(v["client"], serde_json::json!(["198.51.100.9", 4444]));

    // curl's v1 header names curl's own address.
    let out = curl_ok(&["--haproxy-protocol", &format!("http://{addr}/scope")]);
    let v: serde_json::Value = serde_json::from_slice(&out).expect("scope JSON");
    assert_eq!(v["client"][0], "127.0.0.1");

    // No header from a trusted peer: closed without an answer, logged at info.
    let mut c = Client::connect(addr);
    c.send(&get("/"));
    assert!(c.read_until_close(Duration::from_secs(5)).is_empty());
    wait_for_log(&p, &["INFO", "no PROXY header"]);
}

#[test]
fn allow_and_deny_flags() {
    let (p, addr) = start_tcp(&["--deny-from", "127.0.0.0/8", "--log-level", "debug"]);
    let mut c = Client::connect(addr);
    let _ = c.s.write_all(&get("/"));
    assert!(c.read_until_close(Duration::from_secs(5)).is_empty());
    wait_for_log(&p, &["DEBUG", "connection refused"]);

    let (_p, addr) = start_tcp(&[
        "--allow-from",
        "10.0.0.0/8,127.0.0.1",
        "--allow-from",
        "::1",
        "--deny-from",
        "192.0.2.0/24",
    ]);
    assert_eq!(fetch(addr, &get("/")).status, 200);
}

#[test]
fn bad_proxy_and_access_flags_are_startup_errors() {
    assert_startup_error(&["--proxy-protocol", "v3"], &["off, v1, v2 or auto"]);
    assert_startup_error(&["--deny-from", "unix"], &["always allowed"]);
    assert_startup_error(&["--allow-from", "10.0.0.0/33"], &["10.0.0.0/33"]);
    assert_startup_error(&["--proxy-allow-from", "proxy.example"], &["proxy.example"]);
}

#[test]
fn forwarded_headers_kind_chooses_which_header_counts() {
    for (kind, want) in [
        ("x-forwarded", "5.6.7.8 200\n"),
        ("forwarded", "1.2.3.4 200\n"),
        ("auto", "1.2.3.4 200\n"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("access.log");
        let log_s = log.to_string_lossy().into_owned();
        let (_p, addr) = start_tcp(&[
            "--proxy-headers",
            "--forwarded-headers",
            kind,
            "--access-log",
            &log_s,
            "--access-log-format",
            "%h %s",
        ]);
        let mut c = Client::connect(addr);
        c.send(b"GET / HTTP/1.1\r\nHost: x\r\nForwarded: for=1.2.3.4\r\nX-Forwarded-For: 5.6.7.8\r\n\r\n");
        assert_eq!(c.response(false).status, 200);
        assert_eq!(wait_lines(&log, 1), want, "{kind}");
    }
}

#[test]
fn sigusr1_without_an_access_log_is_harmless() {
    let (mut p, addr) = start_tcp(&[]);
    p.signal("USR1");
    let end = Instant::now() + Duration::from_secs(5);
    while !p.stderr().contains("SIGUSR1: no access log file to reopen") && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(p.is_running(), "{}", p.stderr());
    let mut c = Client::connect(addr);
    c.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(c.response(false).status, 200);
}
