//! `--workers`: the real `pagi-server` binary as a master with forked workers, under real load
//! on loopback, driven with real signals. Workers are observed in the process table (`/proc`:
//! the master's children), and a load generator (threads doing keep-alive HTTP/1.1 requests)
//! counts every failed request.
#![cfg(target_os = "linux")]

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_pagi-server");

// ---------------------------------------------------------------------------------------------
// Processes
// ---------------------------------------------------------------------------------------------

/// A master process; killed with its workers on drop.
struct Master {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Drop for Master {
    fn drop(&mut self) {
        let kids = children(self.child.id());
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
        for k in kids {
            kill(k, "KILL");
        }
    }
}

impl Master {
    /// Starts `pagi-server --workers N` on a fresh port (plus `extra`) and waits until `n`
    /// workers run and the port answers.
    fn start(workers: u32, extra: &[&str]) -> Master {
        for _ in 0..3 {
            let dir = tempfile::tempdir().expect("temp dir");
            let port = free_port();
            let stderr = fs::File::create(dir.path().join("stderr.log")).expect("log file");
            let mut args = vec![
                "--workers".to_owned(),
                workers.to_string(),
                "--listen".to_owned(),
                format!("127.0.0.1:{port}"),
            ];
            args.extend(extra.iter().map(|s| s.to_string()));
            let args: Vec<String> = args
                .into_iter()
                .map(|a| a.replace("{dir}", &dir.path().display().to_string()))
                .collect();
            let child = Command::new(BIN)
                .args(&args)
                .env_remove("RUST_LOG")
                .env_remove("WEB_CONCURRENCY")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(stderr)
                .spawn()
                .expect("spawn pagi-server");
            let mut m = Master { child, port, dir };
            if m.wait_ready(workers as usize) {
                return m;
            }
            if !m.log().contains("Address already in use") {
                panic!("the server did not start; log:\n{}", m.log());
            }
        }
        panic!("no free port after 3 tries");
    }

    fn wait_ready(&mut self, workers: usize) -> bool {
        let workers = if workers > 1 { workers } else { 0 };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false;
            }
            if self.workers().len() == workers
                && self.log().matches(" ready").count() >= workers
                && get(self.addr(), "/").is_ok()
            {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("stderr.log")).unwrap_or_default()
    }

    fn workers(&self) -> Vec<u32> {
        children(self.pid())
    }

    fn signal(&self, sig: &str) {
        kill(self.pid(), sig);
    }

    fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(st) = self.child.try_wait().expect("try_wait") {
                return st;
            }
            assert!(
                Instant::now() < deadline,
                "the master did not exit within {limit:?}; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn kill(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .stderr(Stdio::null())
        .status();
}

/// Fields of /proc/PID/stat after the command name: state, ppid, ...
fn stat(pid: u32) -> Option<Vec<String>> {
    let s = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &s[s.rfind(')')? + 2..];
    Some(rest.split_whitespace().map(str::to_owned).collect())
}

/// The live (not zombie) children of `pid`, sorted.
fn children(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for e in fs::read_dir("/proc").unwrap().flatten() {
        let Some(p) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        if let Some(f) = stat(p) {
            if f[1] == pid.to_string() && f[0] != "Z" {
                out.push(p);
            }
        }
    }
    out.sort_unstable();
    out
}

fn alive(pid: u32) -> bool {
    stat(pid).is_some_and(|f| f[0] != "Z")
}

/// Waits up to `limit` for `cond`.
fn eventually(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    cond()
}

// ---------------------------------------------------------------------------------------------
// HTTP
// ---------------------------------------------------------------------------------------------

/// Reads one response: (status, close requested, body).
fn read_response(r: &mut BufReader<TcpStream>) -> std::io::Result<(u16, bool, Vec<u8>)> {
    let bad = |m: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, m.to_owned());
    let mut line = String::new();
    if r.read_line(&mut line)? == 0 {
        return Err(bad("connection closed before a response"));
    }
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("bad status line"))?;
    let (mut len, mut close) = (0usize, false);
    loop {
        line.clear();
        if r.read_line(&mut line)? == 0 {
            return Err(bad("connection closed in the head"));
        }
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        let (k, v) = l.split_once(':').ok_or_else(|| bad("bad header"))?;
        match k.to_ascii_lowercase().as_str() {
            "content-length" => len = v.trim().parse().map_err(|_| bad("bad length"))?,
            "connection" => close = v.trim().eq_ignore_ascii_case("close"),
            _ => {}
        }
    }
    let mut body = vec![0; len];
    r.read_exact(&mut body)?;
    Ok((status, close, body))
}

/// One request on a new connection.
fn get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, Vec<u8>)> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
    )?;
    let mut r = BufReader::new(s);
    let (status, _, body) = read_response(&mut r)?;
    Ok((status, body))
}

/// Threads doing keep-alive `GET /` as fast as they can; every request that does not get a
/// complete `200 Hello, world!` counts as a failure (no retries).
struct Load {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
    errors: Arc<Mutex<Vec<String>>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Load {
    fn start(addr: SocketAddr, threads: usize) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(AtomicU64::new(0));
        let errors = Arc::new(Mutex::new(Vec::new()));
        let threads = (0..threads)
            .map(|_| {
                let (stop, ok, failed, errors) =
                    (stop.clone(), ok.clone(), failed.clone(), errors.clone());
                std::thread::spawn(move || {
                    let mut conn: Option<BufReader<TcpStream>> = None;
                    while !stop.load(Ordering::Relaxed) {
                        let r = (|| -> std::io::Result<bool> {
                            if conn.is_none() {
                                let s = TcpStream::connect(addr)?;
                                s.set_read_timeout(Some(Duration::from_secs(10)))?;
                                s.set_nodelay(true)?;
                                conn = Some(BufReader::new(s));
                            }
                            let c = conn.as_mut().expect("connected");
                            c.get_mut()
                                .write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")?;
                            let (status, close, body) = read_response(c)?;
                            if status != 200 || body != b"Hello, world!" {
                                return Err(std::io::Error::other(format!(
                                    "status {status}, body {:?}",
                                    String::from_utf8_lossy(&body)
                                )));
                            }
                            Ok(close)
                        })();
                        match r {
                            Ok(close) => {
                                ok.fetch_add(1, Ordering::Relaxed);
                                if close {
                                    conn = None;
                                }
                            }
                            Err(e) => {
                                failed.fetch_add(1, Ordering::Relaxed);
                                let mut errs = errors.lock().unwrap();
                                if errs.len() < 10 {
                                    errs.push(e.to_string());
                                }
                                conn = None;
                                std::thread::sleep(Duration::from_millis(5));
                            }
                        }
                    }
                })
            })
            .collect();
        Load {
            stop,
            ok,
            failed,
            errors,
            threads,
        }
    }

    fn ok(&self) -> u64 {
        self.ok.load(Ordering::Relaxed)
    }

    /// Stops the threads; returns (successes, failures, first errors).
    fn finish(mut self) -> (u64, u64, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            t.join().unwrap();
        }
        let errors = self.errors.lock().unwrap().clone();
        (
            self.ok.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
            errors,
        )
    }

    /// Waits until `n` more requests succeeded (panics after 10 s).
    fn wait_more(&self, n: u64) {
        let target = self.ok() + n;
        assert!(
            eventually(Duration::from_secs(10), || self.ok() >= target),
            "the load made no progress"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

#[test]
fn term_lets_a_slow_request_finish_then_exits_0_and_removes_the_socket_file() {
    let mut m = Master::start(2, &["--listen", "{dir}/app.sock"]);
    let sock = m.path("app.sock");
    assert!(sock.exists());
    let workers = m.workers();
    assert_eq!(workers.len(), 2, "log:\n{}", m.log());
    let addr = m.addr();
    let slow = std::thread::spawn(move || get(addr, "/sleep?ms=1500"));
    std::thread::sleep(Duration::from_millis(400));
    m.signal("TERM");
    // New connections are refused soon, while the slow request is still running.
    assert!(
        eventually(Duration::from_secs(1), || TcpStream::connect(addr).is_err()),
        "still accepting after TERM"
    );
    let (status, body) = slow.join().unwrap().expect("the slow request");
    assert_eq!((status, body.as_slice()), (200, &b"slept 1500 ms"[..]));
    let st = m.wait_exit(Duration::from_secs(5));
    assert_eq!(st.code(), Some(0), "log:\n{}", m.log());
    assert!(!sock.exists(), "the Unix socket file is left behind");
    assert!(
        workers.iter().all(|&w| !alive(w)),
        "a worker outlived the master"
    );
}

#[test]
fn kill_9_of_a_worker_fails_only_its_connections_and_it_is_back_within_a_second() {
    let m = Master::start(2, &[]);
    let before = m.workers();
    let load = Load::start(m.addr(), 4);
    load.wait_more(500);
    let victim = before[0];
    kill(victim, "KILL");
    let t0 = Instant::now();
    assert!(
        eventually(Duration::from_secs(1), || {
            let now = m.workers();
            now.len() == 2 && !now.contains(&victim)
        }),
        "no replacement within a second: {:?}; log:\n{}",
        m.workers(),
        m.log()
    );
    let back = t0.elapsed();
    load.wait_more(500);
    let (ok, failed, errors) = load.finish();
    // At most the in-flight request of each client connection on the killed worker.
    assert!(
        failed <= 4,
        "{failed} failed requests ({ok} ok): {errors:?}"
    );
    assert!(ok > 1000);
    assert!(
        m.log().contains("was killed by SIGKILL; respawning"),
        "{}",
        m.log()
    );
    eprintln!("worker back after {back:?}; {failed} failed, {ok} ok");
}

/// Replaces every worker under continuous keep-alive load with `sig`, and checks that no
/// request failed.
fn zero_failures_while(sig: &str) {
    let m = Master::start(2, &[]);
    let before = m.workers();
    let load = Load::start(m.addr(), 4);
    load.wait_more(300);
    m.signal(sig);
    assert!(
        eventually(Duration::from_secs(10), || {
            let now = m.workers();
            now.len() == 2 && now.iter().all(|w| !before.contains(w))
        }),
        "workers not replaced after {sig}: {before:?} -> {:?}; log:\n{}",
        m.workers(),
        m.log()
    );
    load.wait_more(300);
    let (ok, failed, errors) = load.finish();
    assert_eq!(
        failed,
        0,
        "{failed} failed ({ok} ok): {errors:?}\nlog:\n{}",
        m.log()
    );
    assert!(m.log().contains("rolling restart complete"), "{}", m.log());
}

#[test]
fn hup_rolling_restart_under_load_fails_no_request() {
    zero_failures_while("HUP");
}

#[test]
fn usr2_binary_upgrade_under_load_fails_no_request() {
    let mut m = Master::start(2, &["--listen", "{dir}/app.sock"]);
    let sock = m.path("app.sock");
    let old_workers = m.workers();
    let load = Load::start(m.addr(), 4);
    load.wait_more(300);
    m.signal("USR2");
    // The old master hands over and exits 0 once the new one's workers are ready.
    let st = m.wait_exit(Duration::from_secs(15));
    assert_eq!(st.code(), Some(0), "log:\n{}", m.log());
    let log = m.log();
    let new_master: u32 = log
        .split("new master pid ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no new master in the log:\n{log}"));
    let guard = KillOnDrop(new_master);
    assert!(alive(new_master));
    let new_workers = children(new_master);
    assert_eq!(new_workers.len(), 2, "log:\n{log}");
    assert!(old_workers.iter().all(|&w| !alive(w)));
    load.wait_more(500);
    let (ok, failed, errors) = load.finish();
    assert_eq!(
        failed, 0,
        "{failed} failed ({ok} ok): {errors:?}\nlog:\n{log}"
    );
    // The Unix socket went over too, file and all.
    assert!(
        sock.exists(),
        "the old master removed the socket file it handed over"
    );
    let mut s = std::os::unix::net::UnixStream::connect(&sock).expect("unix socket");
    s.write_all(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    assert!(
        out.starts_with("HTTP/1.1 200") && out.ends_with("Hello, world!"),
        "{out}"
    );
    // The new master stops like any master, and removes the socket file.
    kill(new_master, "TERM");
    assert!(eventually(Duration::from_secs(5), || !alive(new_master)));
    assert!(!sock.exists());
    drop(guard);
}

/// A new master whose workers cannot start (the access log path became a directory) exits;
/// the old master serves on with its Unix socket file and its pid file untouched.
#[test]
fn a_failed_usr2_upgrade_leaves_the_socket_file_and_pid_file_to_the_old_master() {
    let mut m = Master::start(
        2,
        &[
            "--listen",
            "{dir}/app.sock",
            "--pid-file",
            "{dir}/m.pid",
            "--access-log",
            "{dir}/a.log",
        ],
    );
    let (sock, pid_file, access) = (m.path("app.sock"), m.path("m.pid"), m.path("a.log"));
    fs::remove_file(&access).unwrap();
    fs::create_dir(&access).unwrap();
    m.signal("USR2");
    assert!(
        eventually(Duration::from_secs(10), || m
            .log()
            .contains("binary upgrade failed")),
        "{}",
        m.log()
    );
    assert!(m.log().contains("no worker could start"), "{}", m.log());
    assert!(m.child.try_wait().unwrap().is_none(), "the old master left");
    assert_eq!(
        fs::read_to_string(&pid_file).unwrap_or_default(),
        format!("{}\n", m.pid()),
        "the failed new master took the pid file; log:\n{}",
        m.log()
    );
    assert!(
        sock.exists(),
        "the failed new master removed the socket file"
    );
    let mut s = std::os::unix::net::UnixStream::connect(&sock).expect("unix socket");
    s.write_all(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    // The old master still owns both and removes them when it stops.
    m.signal("TERM");
    assert_eq!(m.wait_exit(Duration::from_secs(10)).code(), Some(0));
    assert!(!sock.exists() && !pid_file.exists(), "{}", m.log());
}

/// After a USR2 hand-over the old master drains its workers; a TERM to it then (what an
/// operator or script sends to the old pid) is not a "second TERM": the slow request finishes.
#[test]
fn term_to_an_old_master_draining_after_usr2_lets_its_slow_request_finish() {
    let mut m = Master::start(2, &[]);
    let addr = m.addr();
    let slow = std::thread::spawn(move || get(addr, "/sleep?ms=1500"));
    std::thread::sleep(Duration::from_millis(200));
    m.signal("USR2");
    assert!(
        eventually(Duration::from_secs(10), || m
            .log()
            .contains("retiring this master's workers")),
        "{}",
        m.log()
    );
    let log = m.log();
    let new_master: u32 = log
        .split("new master pid ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no new master in the log:\n{log}"));
    let _guard = KillOnDrop(new_master);
    m.signal("TERM");
    let (status, body) = slow.join().unwrap().expect("the slow request");
    assert_eq!((status, body.as_slice()), (200, &b"slept 1500 ms"[..]));
    assert_eq!(m.wait_exit(Duration::from_secs(10)).code(), Some(0));
    assert!(!m.log().contains("stopping now"), "{}", m.log());
    assert_eq!(get(addr, "/").unwrap().0, 200, "the new master serves on");
}

struct KillOnDrop(u32);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if alive(self.0) {
            let kids = children(self.0);
            kill(self.0, "KILL");
            kids.into_iter().for_each(|k| kill(k, "KILL"));
        }
    }
}

#[test]
fn ttin_and_ttou_change_the_worker_count() {
    let m = Master::start(2, &[]);
    m.signal("TTIN");
    assert!(eventually(Duration::from_secs(3), || m.workers().len() == 3));
    m.signal("TTOU");
    m.signal("TTOU");
    assert!(
        eventually(Duration::from_secs(5), || m.workers().len() == 1),
        "{:?}\n{}",
        m.workers(),
        m.log()
    );
    // Never below one.
    m.signal("TTOU");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(m.workers().len(), 1);
    assert_eq!(get(m.addr(), "/").unwrap().0, 200);
}

#[test]
fn max_requests_recycles_workers_without_failures() {
    let m = Master::start(2, &["--max-requests", "200", "--max-requests-jitter", "50"]);
    let first = m.workers();
    let load = Load::start(m.addr(), 2);
    load.wait_more(1200);
    let (ok, failed, errors) = load.finish();
    assert_eq!(failed, 0, "{errors:?}\n{}", m.log());
    // Keep-alive connections stay with one worker, so which workers got 250 requests is up
    // to the kernel; 1200 requests make sure one did. (A replacement may still be on its way.)
    assert!(
        eventually(Duration::from_secs(5), || {
            let now = m.workers();
            now.len() == 2 && first.iter().any(|w| !now.contains(w))
        }),
        "{first:?} -> {:?} after {ok} requests\n{}",
        m.workers(),
        m.log()
    );
    assert!(m.log().contains("recycling: starting a replacement"));
}

#[test]
fn a_hung_worker_is_killed_and_replaced() {
    let m = Master::start(2, &["--worker-timeout", "1s"]);
    let victim = m.workers()[1];
    kill(victim, "STOP");
    assert!(
        eventually(Duration::from_secs(4), || {
            let now = m.workers();
            now.len() == 2 && !now.contains(&victim)
        }),
        "{:?}\n{}",
        m.workers(),
        m.log()
    );
    assert!(m.log().contains("sent no heartbeat"), "{}", m.log());
    assert_eq!(get(m.addr(), "/").unwrap().0, 200);
}

#[test]
fn workers_that_fail_startup_are_not_respawned_and_the_master_exits_1() {
    let out = Command::new(BIN)
        .args([
            "--workers",
            "2",
            "--listen",
            &format!("127.0.0.1:{}", free_port()),
            "--access-log",
            "/nonexistent-dir/access.log",
        ])
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("no worker could start: cannot open access log"),
        "{err}"
    );
    assert_eq!(err.matches(") started").count(), 2, "respawned: {err}");
}

#[test]
fn quit_stops_at_once_without_waiting_for_requests() {
    let mut m = Master::start(2, &[]);
    let addr = m.addr();
    let slow = std::thread::spawn(move || get(addr, "/sleep?ms=20000"));
    std::thread::sleep(Duration::from_millis(300));
    let t0 = Instant::now();
    m.signal("QUIT");
    let st = m.wait_exit(Duration::from_secs(5));
    assert_eq!(st.code(), Some(0));
    assert!(t0.elapsed() < Duration::from_secs(3));
    assert!(
        slow.join().unwrap().is_err(),
        "the slow request was not cut"
    );
}

#[test]
fn single_process_mode_ignores_ttin_and_keeps_serving() {
    let mut m = Master::start(1, &[]);
    assert!(
        m.workers().is_empty(),
        "--workers 1 forks: {:?}",
        m.workers()
    );
    m.signal("TTIN");
    m.signal("USR2");
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(get(m.addr(), "/").unwrap().0, 200);
    m.signal("TERM");
    assert_eq!(m.wait_exit(Duration::from_secs(5)).code(), Some(0));
}

#[test]
fn socket_files_stay_with_the_master_when_workers_go() {
    let m = Master::start(2, &["--listen", "{dir}/app.sock"]);
    let sock = m.path("app.sock");
    kill(m.workers()[0], "KILL");
    m.signal("HUP");
    assert!(eventually(Duration::from_secs(5), || m
        .log()
        .contains("rolling restart complete")));
    assert!(sock.exists(), "a worker removed the master's socket file");
    let _ = Path::new(&sock);
}

#[test]
fn max_worker_lifetime_recycles_workers_without_failures() {
    let m = Master::start(2, &["--max-worker-lifetime", "1s"]);
    let first = m.workers();
    let load = Load::start(m.addr(), 2);
    assert!(
        eventually(Duration::from_secs(6), || {
            let now = m.workers();
            now.len() == 2 && now.iter().all(|w| !first.contains(w))
        }),
        "{first:?} -> {:?}\n{}",
        m.workers(),
        m.log()
    );
    load.wait_more(200);
    let (_, failed, errors) = load.finish();
    assert_eq!(failed, 0, "{errors:?}\n{}", m.log());
    assert!(m.log().contains("reached --max-worker-lifetime"));
}

#[test]
fn usr1_makes_every_worker_reopen_the_access_log() {
    let m = Master::start(2, &["--access-log", "{dir}/access.log"]);
    let log = m.path("access.log");
    for _ in 0..4 {
        assert_eq!(get(m.addr(), "/").unwrap().0, 200);
    }
    // 4 lines and the start-up probe's.
    assert!(eventually(Duration::from_secs(3), || fs::read_to_string(
        &log
    )
    .is_ok_and(|s| s.lines().count() == 5)));
    fs::rename(&log, m.path("access.log.1")).unwrap();
    m.signal("USR1");
    std::thread::sleep(Duration::from_millis(300));
    // Enough requests to reach both workers (each reopened its own file handle).
    for _ in 0..20 {
        assert_eq!(get(m.addr(), "/").unwrap().0, 200);
    }
    assert!(
        eventually(Duration::from_secs(3), || fs::read_to_string(&log)
            .is_ok_and(|s| s.lines().count() == 20)),
        "{:?}\n{}",
        fs::read_to_string(&log),
        m.log()
    );
    let old = fs::read_to_string(m.path("access.log.1")).unwrap();
    assert_eq!(old.lines().count(), 5);
}

#[test]
fn workers_stop_when_the_master_is_killed() {
    let mut m = Master::start(2, &[]);
    let workers = m.workers();
    let _ = m.child.kill(); // SIGKILL: no chance to stop them
    let _ = m.child.wait();
    assert!(
        eventually(Duration::from_secs(3), || workers
            .iter()
            .all(|&w| !alive(w))),
        "workers outlived a killed master"
    );
}

#[test]
fn max_worker_memory_recycles_a_worker_over_the_limit() {
    // Every worker uses more than 1 MiB, so each is replaced once it has been ready a second.
    let m = Master::start(2, &["--max-worker-memory", "1"]);
    let first = m.workers();
    assert!(
        eventually(Duration::from_secs(5), || {
            let now = m.workers();
            first.iter().all(|w| !now.contains(w))
        }),
        "{first:?} -> {:?}\n{}",
        m.workers(),
        m.log()
    );
    assert!(
        m.log().contains("MiB (over --max-worker-memory)"),
        "{}",
        m.log()
    );
    assert_eq!(get(m.addr(), "/").unwrap().0, 200);
}

#[test]
fn recycling_flags_need_workers() {
    for flag in [
        ["--max-requests", "10"],
        ["--max-worker-lifetime", "1h"],
        ["--max-worker-memory", "100"],
    ] {
        let out = Command::new(BIN)
            .args(flag)
            .args(["--listen", &format!("127.0.0.1:{}", free_port())])
            .env_remove("WEB_CONCURRENCY")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{flag:?}: {err}");
        assert!(err.contains("need --workers 2 or more"), "{err}");
    }
}

// ---------------------------------------------------------------------------------------------
// Process setup with --workers: pid file, --user, --daemonize, socket activation
// ---------------------------------------------------------------------------------------------

/// The pid file names the master (written before the first fork), outlives workers that
/// retire (HUP), names the new master after a USR2 upgrade (the old master, exiting, leaves
/// it), and is removed when the new master stops.
#[test]
fn pid_file_names_the_master_survives_hup_and_usr2_and_goes_on_term() {
    let mut m = Master::start(2, &["--pid-file", "{dir}/m.pid"]);
    let pid_file = m.path("m.pid");
    let read = || fs::read_to_string(&pid_file).unwrap_or_default();
    assert_eq!(read(), format!("{}\n", m.pid()));
    let first = m.workers();
    m.signal("HUP");
    assert!(
        eventually(Duration::from_secs(10), || m
            .log()
            .contains("rolling restart complete")),
        "{}",
        m.log()
    );
    // "complete" is logged once the last old worker is told to retire; it exits soon after.
    assert!(
        eventually(Duration::from_secs(10), || first.iter().all(|&w| !alive(w))),
        "{}",
        m.log()
    );
    assert_eq!(read(), format!("{}\n", m.pid()), "retired workers left it");

    m.signal("USR2");
    let st = m.wait_exit(Duration::from_secs(15));
    assert_eq!(st.code(), Some(0), "log:\n{}", m.log());
    let new_master: u32 = read().trim().parse().expect("the new master's pid");
    let _guard = KillOnDrop(new_master);
    assert_ne!(new_master, m.pid());
    assert!(alive(new_master));
    assert_eq!(children(new_master).len(), 2, "{}", m.log());
    assert!(m.log().contains(&format!("new master pid {new_master}")));
    assert_eq!(get(m.addr(), "/").unwrap().0, 200);
    kill(new_master, "TERM");
    assert!(eventually(Duration::from_secs(10), || !alive(new_master)));
    assert!(
        !pid_file.exists(),
        "the new master removes it when it stops"
    );
}

/// As root, --user nobody: the master stays root (it rewrites a root-owned pid file and hands
/// its sockets to a new master), every worker runs as nobody, workers respawned by HUP too,
/// and the Unix socket file belongs to nobody.
#[test]
fn user_applies_to_every_worker_and_the_master_stays_root() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let id = |flag: &str| -> String {
        let o = Command::new("id").args([flag, "nobody"]).output().unwrap();
        String::from_utf8(o.stdout).unwrap().trim().to_owned()
    };
    let (uid, gid) = (id("-u"), id("-g"));
    let m = Master::start(2, &["--user", "nobody", "--listen", "{dir}/u.sock"]);
    let ids = |pid: u32, field: &str| {
        fs::read_to_string(format!("/proc/{pid}/status"))
            .unwrap()
            .lines()
            .find(|l| l.starts_with(field))
            .unwrap()
            .split_whitespace()
            .skip(1)
            .map(String::from)
            .collect::<Vec<_>>()
    };
    assert_eq!(ids(m.pid(), "Uid:"), ["0"; 4]);
    let check_workers = |workers: &[u32]| {
        assert_eq!(workers.len(), 2);
        for &w in workers {
            assert_eq!(ids(w, "Uid:"), [uid.as_str(); 4], "worker {w}");
            assert_eq!(ids(w, "Gid:"), [gid.as_str(); 4], "worker {w}");
        }
    };
    let first = m.workers();
    check_workers(&first);
    let sock = m.path("u.sock");
    let meta = fs::metadata(&sock).unwrap();
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        (meta.uid().to_string(), meta.gid().to_string()),
        (uid.clone(), gid.clone())
    );
    m.signal("HUP");
    assert!(
        eventually(Duration::from_secs(10), || {
            let now = m.workers();
            now.len() == 2
                && now.iter().all(|w| !first.contains(w))
                && m.log().contains("rolling restart complete")
        }),
        "{}",
        m.log()
    );
    check_workers(&m.workers());
    assert_eq!(get(m.addr(), "/").unwrap().0, 200);
}

/// --daemonize with --workers: the command returns 0 only once every worker is ready; the
/// daemon (the master, in its own session) and its workers have stdin/stdout on /dev/null;
/// TERM stops everything and removes the pid file.
#[test]
fn daemonize_returns_once_all_workers_are_ready() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("d.pid");
    let log = dir.path().join("stderr.log");
    let port = free_port();
    let st = Command::new(BIN)
        .args(["--workers", "2", "--daemonize", "--listen"])
        .arg(format!("127.0.0.1:{port}"))
        .arg("--pid-file")
        .arg(&pid_file)
        .env_remove("RUST_LOG")
        .env_remove("WEB_CONCURRENCY")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(fs::File::create(&log).unwrap())
        .status()
        .unwrap();
    let text = fs::read_to_string(&log).unwrap();
    assert!(st.success(), "{st}\n{text}");
    let master: u32 = fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let _guard = KillOnDrop(master);
    // Ready means every worker is: both said so before the command returned.
    assert_eq!(text.matches(") ready").count(), 2, "{text}");
    assert!(text.contains("the daemon is running"), "{text}");
    let workers = children(master);
    assert_eq!(workers.len(), 2);
    assert_eq!(
        stat(master).unwrap()[3],
        master.to_string(),
        "session leader"
    );
    for pid in [master].iter().chain(&workers) {
        for fd in [0, 1] {
            let to = fs::read_link(format!("/proc/{pid}/fd/{fd}")).unwrap();
            assert_eq!(to, Path::new("/dev/null"), "pid {pid} fd {fd}");
        }
    }
    assert_eq!(
        get(SocketAddr::from(([127, 0, 0, 1], port)), "/")
            .unwrap()
            .0,
        200
    );
    kill(master, "TERM");
    assert!(eventually(Duration::from_secs(10), || !alive(master)));
    assert!(workers.iter().all(|&w| !alive(w)));
    assert!(!pid_file.exists());
}

/// systemd socket activation with --workers: the master adopts the passed TCP and Unix
/// sockets (no --listen: all of them), the workers serve both, and systemd's socket file
/// stays when the master stops.
#[test]
fn systemd_socket_activation_with_workers() {
    let have = Command::new("sh")
        .args(["-c", "command -v systemd-socket-activate"])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !have {
        assert!(
            std::env::var_os("CI").is_none(),
            "systemd-socket-activate is missing"
        );
        eprintln!("SKIP: systemd-socket-activate is not installed (apt-get install systemd)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("act.sock");
    let log = dir.path().join("stderr.log");
    let port = free_port();
    let mut child = Command::new("systemd-socket-activate")
        .arg(format!("--listen=127.0.0.1:{port}"))
        .arg(format!("--listen={}", sock.display()))
        .args([BIN, "--workers", "2"])
        .env_remove("RUST_LOG")
        .env_remove("WEB_CONCURRENCY")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let master = child.id();
    let _guard = KillOnDrop(master);
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let text = || fs::read_to_string(&log).unwrap_or_default();
    assert!(
        eventually(Duration::from_secs(5), || text().contains("as 4.")),
        "{}",
        text()
    );
    // The first connection makes systemd-socket-activate exec the server (same pid).
    assert_eq!(get(addr, "/").unwrap().0, 200, "{}", text());
    assert!(
        eventually(Duration::from_secs(10), || children(master).len() == 2
            && text().matches(") ready").count() == 2),
        "{}",
        text()
    );
    assert!(
        text().contains(&format!("master: listening on 127.0.0.1:{port}")),
        "{}",
        text()
    );
    assert!(
        text().contains(&format!("master: listening on unix:{}", sock.display())),
        "{}",
        text()
    );
    let mut s = std::os::unix::net::UnixStream::connect(&sock).unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    let ino = fs::metadata(&sock).unwrap().ino();
    kill(master, "TERM");
    let deadline = Instant::now() + Duration::from_secs(10);
    let st = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        assert!(Instant::now() < deadline, "no exit after TERM\n{}", text());
        std::thread::sleep(Duration::from_millis(10));
    };
    assert!(st.success(), "{st}\n{}", text());
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        fs::metadata(&sock).unwrap().ino(),
        ino,
        "systemd's file stays"
    );
}

/// `fd://NAME` specs (systemd's `FileDescriptorName=`) survive a USR2 upgrade: the new
/// master, run with the same arguments, finds the sockets by the same names.
#[test]
fn usr2_upgrade_with_named_socket_activation_listeners() {
    let have = Command::new("sh")
        .args(["-c", "command -v systemd-socket-activate"])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !have {
        assert!(
            std::env::var_os("CI").is_none(),
            "systemd-socket-activate is missing"
        );
        eprintln!("SKIP: systemd-socket-activate is not installed (apt-get install systemd)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("act.sock");
    let log = dir.path().join("stderr.log");
    let port = free_port();
    let mut child = Command::new("systemd-socket-activate")
        .arg(format!("--listen=127.0.0.1:{port}"))
        .arg(format!("--listen={}", sock.display()))
        .arg("--fdname=web:uds")
        .args([BIN, "--workers", "2", "--listen", "fd://web"])
        .args(["--listen", "fd://uds"])
        .env_remove("RUST_LOG")
        .env_remove("WEB_CONCURRENCY")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let master = child.id();
    let _guard = KillOnDrop(master);
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let text = || fs::read_to_string(&log).unwrap_or_default();
    assert!(
        eventually(Duration::from_secs(5), || text().contains("as 4.")),
        "{}",
        text()
    );
    assert_eq!(get(addr, "/").unwrap().0, 200, "{}", text());
    assert!(
        eventually(Duration::from_secs(10), || text()
            .matches(") ready")
            .count()
            == 2),
        "{}",
        text()
    );
    kill(master, "USR2");
    let deadline = Instant::now() + Duration::from_secs(15);
    let st = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        assert!(Instant::now() < deadline, "no hand-over\n{}", text());
        std::thread::sleep(Duration::from_millis(10));
    };
    assert!(st.success(), "{st}\n{}", text());
    let log = text();
    let new_master: u32 = log
        .split("new master pid ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no new master in the log:\n{log}"));
    let _new = KillOnDrop(new_master);
    assert!(log.contains("is ready; retiring"), "{log}");
    assert_eq!(children(new_master).len(), 2, "{log}");
    assert_eq!(get(addr, "/").unwrap().0, 200, "{log}");
    let mut s = std::os::unix::net::UnixStream::connect(&sock).unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
}

fn is_root() -> bool {
    fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0"))
}
