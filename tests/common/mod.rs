//! Test support: a real server on a loopback port (or a Unix socket) in a background thread,
//! and raw-socket helpers.
#![allow(dead_code)]

use pagi::App;
use pagi_server::{Config, Handle, LocalAddr, Server};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A running server; stopped (gracefully) on drop.
pub struct TestServer {
    pub addrs: Vec<LocalAddr>,
    handle: Handle,
    thread: Option<JoinHandle<Result<(), String>>>,
}

impl TestServer {
    /// The first TCP address.
    pub fn addr(&self) -> SocketAddr {
        self.addrs
            .iter()
            .find_map(|a| match a {
                LocalAddr::Tcp(a) => Some(*a),
                _ => None,
            })
            .expect("a tcp listener")
    }

    /// The first Unix socket path.
    pub fn unix_path(&self) -> PathBuf {
        self.addrs
            .iter()
            .find_map(|a| match a {
                LocalAddr::Unix(p) => Some(p.clone()),
                _ => None,
            })
            .expect("a unix listener")
    }

    /// The server's control handle (shutdown, TLS reload).
    pub fn handle(&self) -> &Handle {
        &self.handle
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr(), path)
    }

    /// A connected client socket with a 5 s read timeout.
    pub fn connect(&self) -> TcpStream {
        let s = TcpStream::connect(self.addr()).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.set_nodelay(true).unwrap();
        s
    }

    /// Sends `req` on a new connection and returns everything read until the server closes
    /// (or 5 s pass).
    pub fn raw(&self, req: &[u8]) -> String {
        let mut s = self.connect();
        s.write_all(req).unwrap();
        read_to_close(&mut s)
    }

    /// Stops the server gracefully and waits for it; returns its result.
    pub fn stop(mut self) -> Result<(), String> {
        self.handle.shutdown();
        self.thread.take().unwrap().join().expect("server thread")
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.handle.shutdown();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Starts `app` on 127.0.0.1:0 with test-friendly settings changed by `cfg`.
pub fn serve<A: App>(app: A, cfg: impl FnOnce(&mut Config)) -> TestServer {
    serve_on(app, &["127.0.0.1:0"], cfg)
}

/// Starts `app` on the given listen specs.
pub fn serve_on<A: App>(app: A, listen: &[&str], cfg: impl FnOnce(&mut Config)) -> TestServer {
    try_serve_on(app, listen, cfg).expect("server starts")
}

/// Like [`serve_on`], but returns the bind or startup error instead of panicking.
pub fn try_serve_on<A: App>(
    app: A,
    listen: &[&str],
    cfg: impl FnOnce(&mut Config),
) -> Result<TestServer, String> {
    let mut config = Config {
        shutdown_timeout: Duration::from_secs(5),
        ..Config::default()
    };
    cfg(&mut config);
    let listen: Vec<String> = listen.iter().map(|s| s.to_string()).collect();
    let (tx, rx) = mpsc::channel();
    let thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let mut b = Server::builder(app).config(config);
            for l in &listen {
                b = match b.listen(l) {
                    Ok(b) => b,
                    Err(e) => {
                        let _ = tx.send(Err(e.to_string()));
                        return Err(e.to_string());
                    }
                };
            }
            let server = match b.bind().await {
                Ok(s) => s,
                Err(e) => {
                    let _ = tx.send(Err(e.to_string()));
                    return Err(e.to_string());
                }
            };
            let _ = tx.send(Ok((server.local_addrs(), server.handle())));
            server.run().await.map_err(|e| e.to_string())
        })
    });
    match rx.recv() {
        Ok(Ok((addrs, handle))) => {
            // run() does lifespan startup before accepting; connections made meanwhile wait in
            // the backlog, so the server is usable right away.
            Ok(TestServer {
                addrs,
                handle,
                thread: Some(thread),
            })
        }
        Ok(Err(e)) => {
            let _ = thread.join();
            Err(e)
        }
        Err(_) => Err(thread
            .join()
            .map(|r| r.err().unwrap_or_default())
            .unwrap_or_else(|_| "server thread panicked".into())),
    }
}

/// Reads until EOF, a reset, or 5 s.
pub fn read_to_close(s: &mut TcpStream) -> String {
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    while Instant::now() < deadline {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => break,
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Reads one complete response (head plus a Content-Length or chunked body) from a kept-alive
/// connection; returns (head, body).
pub fn read_response(s: &mut TcpStream) -> (String, Vec<u8>) {
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        let n = s.read(&mut byte).expect("read head");
        assert!(
            n > 0,
            "connection closed mid-head: {:?}",
            String::from_utf8_lossy(&buf)
        );
        buf.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&buf).into_owned();
    let lower = head.to_ascii_lowercase();
    let mut body = Vec::new();
    if let Some(cl) = header_value(&lower, "content-length") {
        let n: usize = cl.parse().unwrap();
        body.resize(n, 0);
        s.read_exact(&mut body).unwrap();
    } else if header_value(&lower, "transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        loop {
            let line = read_line(s);
            let size = usize::from_str_radix(line.split(';').next().unwrap().trim(), 16).unwrap();
            if size == 0 {
                // trailers until the empty line
                while !read_line(s).is_empty() {}
                break;
            }
            let mut chunk = vec![0u8; size + 2];
            s.read_exact(&mut chunk).unwrap();
            body.extend_from_slice(&chunk[..size]);
        }
    }
    (head, body)
}

fn read_line(s: &mut TcpStream) -> String {
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    loop {
        s.read_exact(&mut byte).unwrap();
        if byte[0] == b'\n' {
            break;
        }
        line.push(byte[0]);
    }
    String::from_utf8_lossy(line.strip_suffix(b"\r").unwrap_or(&line)).into_owned()
}

/// The value of `name` (lowercase) in a lowercased head.
pub fn header_value<'a>(lower_head: &'a str, name: &str) -> Option<&'a str> {
    lower_head.lines().find_map(|l| {
        l.strip_prefix(name)
            .and_then(|r| r.strip_prefix(':'))
            .map(str::trim)
    })
}

/// The status code of a response's first line (0 if there is none).
pub fn status(resp: &str) -> u16 {
    resp.split(' ')
        .nth(1)
        .and_then(|s| s.get(..3))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// The number of responses (status lines) in a raw byte dump.
pub fn count_responses(resp: &str) -> usize {
    resp.matches("HTTP/1.1 ").count()
}
