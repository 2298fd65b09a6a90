//! Process setup of the `pagi-server` binary: systemd socket activation (through systemd's own
//! `systemd-socket-activate`), `fd://N`, sockets handed over in `PAGI_INHERIT_FDS`,
//! `--reuseport`, `--pid-file`, `--umask`, `--user`/`--group` and `--daemonize`.
//!
//! A socket is put at descriptor 3 or 4 of the server without any `unsafe`: it is passed as the
//! stdin (or stdout) of `sh`, which moves it with `exec 3<&0` and then execs the server (so the
//! server keeps the shell's pid, which `LISTEN_PID=$$` names).
//!
//! Every child is killed on drop and every wait is bounded.

use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::OwnedFd;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_pagi-server");
const LIMIT: Duration = Duration::from_secs(10);

/// A child process with its stderr in a file; killed and reaped on drop.
struct Proc {
    child: Child,
    log: PathBuf,
    _dir: tempfile::TempDir,
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
    /// Spawns `cmd` with stderr to a log file (stdin/stdout as `cmd` says, else null).
    fn spawn(mut cmd: Command) -> Proc {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("stderr.log");
        cmd.stderr(fs::File::create(&log).unwrap())
            .env_remove("RUST_LOG");
        let child = cmd.spawn().expect("spawn");
        Proc {
            child,
            log,
            _dir: dir,
        }
    }

    /// The server with `args`.
    fn server(args: &[&str]) -> Proc {
        let mut c = Command::new(BIN);
        c.args(args).stdin(Stdio::null()).stdout(Stdio::null());
        Proc::spawn(c)
    }

    fn stderr(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn signal(&self, sig: &str) {
        kill(sig, self.pid());
    }

    fn wait_exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + LIMIT;
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st;
            }
            assert!(
                Instant::now() < deadline,
                "did not exit within {LIMIT:?}; stderr:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits until `ready()`; panics with the stderr if the process exits first or time runs
    /// out.
    fn wait_until(&mut self, what: &str, mut ready: impl FnMut() -> bool) {
        let deadline = Instant::now() + LIMIT;
        while !ready() {
            if let Some(st) = self.child.try_wait().unwrap() {
                panic!("exited ({st}) before {what}; stderr:\n{}", self.stderr());
            }
            assert!(
                Instant::now() < deadline,
                "no {what} within {LIMIT:?}; stderr:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until the log contains `needle`.
    fn wait_log(&mut self, needle: &str) {
        let log = self.log.clone();
        self.wait_until(&format!("log line {needle:?}"), || {
            fs::read_to_string(&log).is_ok_and(|s| s.contains(needle))
        });
    }

    /// Stops with SIGTERM and expects a clean exit.
    fn term(mut self) -> String {
        self.signal("TERM");
        let st = self.wait_exit();
        assert!(
            st.success(),
            "exit after TERM: {st}; stderr:\n{}",
            self.stderr()
        );
        self.stderr()
    }
}

fn kill(sig: &str, pid: u32) {
    let st = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()
        .unwrap();
    assert!(st.success(), "kill -{sig} {pid}");
}

/// The server run by `sh`, with `fd3` (and `fd4`) moved to descriptors 3 (and 4) and the
/// shell lines `env` run just before `exec` (e.g. `export LISTEN_PID=$$`).
fn server_with_fds(
    fd3: impl Into<OwnedFd>,
    fd4: Option<OwnedFd>,
    env: &str,
    args: &[&str],
) -> Proc {
    let moves = if fd4.is_some() {
        "exec 3<&0 4>&1 0</dev/null 1>/dev/null"
    } else {
        "exec 3<&0 0</dev/null"
    };
    let mut c = Command::new("sh");
    c.arg("-c")
        .arg(format!("{moves}; {env}\nexec \"$0\" \"$@\""))
        .arg(BIN)
        .args(args)
        .stdin(Stdio::from(fd3.into()))
        .stdout(fd4.map_or_else(Stdio::null, Stdio::from));
    Proc::spawn(c)
}

/// `GET /` over `stream`; the whole response.
fn get(mut stream: impl Read + Write) -> String {
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut out = String::new();
    stream.read_to_string(&mut out).unwrap();
    out
}

fn assert_hello(resp: &str) {
    assert!(
        resp.starts_with("HTTP/1.1 200 OK\r\n") && resp.ends_with("\r\n\r\nHello, world!"),
        "{resp:?}"
    );
}

fn tcp(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(LIMIT)).unwrap();
    s
}

fn unix(path: &Path) -> UnixStream {
    let s = UnixStream::connect(path).unwrap();
    s.set_read_timeout(Some(LIMIT)).unwrap();
    s
}

fn local_listener() -> (TcpListener, SocketAddr) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let a = l.local_addr().unwrap();
    (l, a)
}

fn free_port() -> u16 {
    local_listener().1.port()
}

fn have(tool: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Whether to skip a test for want of `tool`: SKIP is printed, except under CI (`CI` set),
/// where a missing tool fails the test.
fn skip_without(tool: &str) -> bool {
    if have(tool) {
        return false;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{tool} is missing (apt-get install systemd)"
    );
    eprintln!("SKIP: {tool} is not installed (apt-get install systemd)");
    true
}

fn is_root() -> bool {
    fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0"))
}

/// A line of /proc/PID/status, e.g. `Uid:`, split into fields after the name.
fn proc_status(pid: u32, field: &str) -> Vec<String> {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find(|l| l.starts_with(field))
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
        .split_whitespace()
        .skip(1)
        .map(String::from)
        .collect()
}

// ---------------------------------------------------------------------------------------------
// systemd socket activation
// ---------------------------------------------------------------------------------------------

/// systemd's own activation tool binds a TCP port and a Unix socket, names them, and execs the
/// server on the first connection: without --listen the server serves both, by name with
/// fd://NAME, and leaves the socket file (systemd's) in place when it stops.
#[test]
fn systemd_socket_activate_serves_every_socket() {
    if skip_without("systemd-socket-activate") {
        return;
    }
    for names_args in [
        &[][..],
        &["--listen", "fd://uds", "--listen", "fd://web"][..],
    ] {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("act.sock");
        let port = free_port();
        let mut c = Command::new("systemd-socket-activate");
        c.arg(format!("--listen=127.0.0.1:{port}"))
            .arg(format!("--listen={}", sock.display()))
            .arg("--fdname=web:uds")
            .arg(BIN)
            .args(names_args)
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        let mut p = Proc::spawn(c);
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        p.wait_log("as 4.");
        // The first connection makes it exec the server; it is queued and then served.
        assert_hello(&get(tcp(addr)));
        assert_hello(&get(unix(&sock)));
        let ino = fs::metadata(&sock).unwrap().ino();
        let log = p.term();
        assert!(
            log.contains(&format!("listening on http://127.0.0.1:{port}")),
            "{log}"
        );
        assert!(
            log.contains(&format!("listening on unix:{}", sock.display())),
            "{log}"
        );
        assert_eq!(
            fs::metadata(&sock).unwrap().ino(),
            ino,
            "systemd's file stays"
        );
    }
}

/// A datagram socket is refused with a clear error (systemd's `ListenDatagram=`).
#[test]
fn systemd_activation_refuses_a_datagram_socket() {
    if skip_without("systemd-socket-activate") {
        return;
    }
    let port = free_port();
    let mut c = Command::new("systemd-socket-activate");
    c.args(["--datagram", &format!("--listen=127.0.0.1:{port}"), BIN])
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    let mut p = Proc::spawn(c);
    p.wait_log("as 3.");
    let u = UdpSocket::bind("127.0.0.1:0").unwrap();
    u.send_to(b"x", ("127.0.0.1", port)).unwrap();
    let st = p.wait_exit();
    assert_eq!(st.code(), Some(1), "{}", p.stderr());
    let log = p.stderr();
    assert!(
        log.contains("socket activation: fd 3 is not a stream socket"),
        "{log}"
    );
}

/// LISTEN_FDS set up by hand (as systemd does), with a TCP and a Unix socket.
#[test]
fn listen_fds_by_hand_and_listen_pid_check() {
    let (l, addr) = local_listener();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.sock");
    let u = UnixListener::bind(&path).unwrap();
    let mut p = server_with_fds(l, Some(u.into()), "export LISTEN_PID=$$ LISTEN_FDS=2", &[]);
    p.wait_log("lifespan startup complete");
    assert_hello(&get(tcp(addr)));
    assert_hello(&get(unix(&path)));
    p.term();

    // LISTEN_PID naming another process: the sockets are not for us and are left alone.
    let (l, addr) = local_listener();
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let mut p = server_with_fds(
        l,
        None,
        "export LISTEN_PID=1 LISTEN_FDS=1",
        &["--listen", &listen],
    );
    p.wait_log("listening on");
    let log = p.stderr();
    assert!(
        log.contains("LISTEN_FDS is set for process 1, not this one"),
        "{log}"
    );
    assert_hello(&get(tcp(SocketAddr::from(([127, 0, 0, 1], port)))));
    // Descriptor 3 is still open in the server, unserved: a connection waits in its backlog.
    let mut c = tcp(addr);
    c.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    c.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    let mut buf = [0u8; 16];
    assert!(c.read(&mut buf).is_err(), "nobody accepts on fd 3");
    p.term();
}

// ---------------------------------------------------------------------------------------------
// fd://N
// ---------------------------------------------------------------------------------------------

/// `--listen fd://3` serves a socket a supervisor passed without any variable.
#[test]
fn fd_spec_serves_a_passed_socket() {
    let (l, addr) = local_listener();
    let mut p = server_with_fds(l, None, "", &["--listen", "fd://3"]);
    p.wait_log("listening on");
    assert_hello(&get(tcp(addr)));
    assert!(p.stderr().contains(&format!("listening on http://{addr}")));
    p.term();
}

/// What fd://N refuses: a closed descriptor, a file, a socket that does not listen, stdio,
/// a bad spec, an unknown name.
#[test]
fn fd_spec_refusals() {
    let run = |fd3: Option<OwnedFd>, spec: &str| -> String {
        let mut p = match fd3 {
            Some(fd) => server_with_fds(fd, None, "", &["--listen", spec]),
            None => Proc::server(&["--listen", spec]),
        };
        let st = p.wait_exit();
        assert_eq!(st.code(), Some(1), "{spec}: {}", p.stderr());
        p.stderr()
    };
    let e = run(None, "fd://7");
    assert!(
        e.contains("fd://7: fd 7 was not inherited (it is not open)"),
        "{e}"
    );
    let file = tempfile::tempfile().unwrap();
    let e = run(Some(file.into()), "fd://3");
    assert!(e.contains("fd 3 is not a socket"), "{e}");
    // A connected (not listening) socket, as systemd's Accept=yes would pass.
    let (l, addr) = local_listener();
    let conn = TcpStream::connect(addr).unwrap();
    let e = run(Some(conn.into()), "fd://3");
    assert!(e.contains("fd 3 is a socket that is not listening"), "{e}");
    drop(l);
    let u = UdpSocket::bind("127.0.0.1:0").unwrap();
    let e = run(Some(u.into()), "fd://3");
    assert!(e.contains("fd 3 is not a stream socket"), "{e}");
    let e = run(None, "fd://1");
    assert!(e.contains("must be 3 or more"), "{e}");
    let e = run(None, "fd://");
    assert!(e.contains("is not fd://NUMBER or fd://NAME"), "{e}");
    let e = run(None, "fd://web");
    assert!(e.contains("no inherited socket is named \"web\""), "{e}");
}

// ---------------------------------------------------------------------------------------------
// PAGI_INHERIT_FDS (hot upgrade)
// ---------------------------------------------------------------------------------------------

/// A new master adopts the listeners an old one hands over when its --listen specs name the
/// same address or path: the same port is served, the Unix socket file is not recreated (same
/// inode), and it is removed when the new master stops (it owns it now).
#[test]
fn inherit_fds_adopts_tcp_and_unix_listeners() {
    let (l, addr) = local_listener();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("up.sock");
    let u = UnixListener::bind(&path).unwrap();
    let ino = fs::metadata(&path).unwrap().ino();
    let tcp_spec = addr.to_string();
    let unix_spec = format!("unix:{}", path.display());
    // While the test still holds the TCP socket, binding the port anew would fail (no
    // SO_REUSEPORT): starting at all shows it was adopted.
    let mut p = server_with_fds(
        l.try_clone().unwrap(),
        Some(u.into()),
        "export PAGI_INHERIT_FDS=3,4",
        &["--listen", &tcp_spec, "--listen", &unix_spec],
    );
    p.wait_log("lifespan startup complete");
    drop(l);
    assert_hello(&get(tcp(addr)));
    assert_hello(&get(unix(&path)));
    assert_eq!(fs::metadata(&path).unwrap().ino(), ino, "socket file kept");
    let log = p.term();
    assert!(log.contains("adopted the inherited socket"), "{log}");
    assert!(!log.contains("stale"), "{log}");
    assert!(!path.exists(), "removed on exit by its new owner");
}

/// Handed-over sockets no spec names are closed, with a warning.
#[test]
fn inherit_fds_closes_unused_sockets() {
    let (l, addr) = local_listener();
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let mut p = server_with_fds(l, None, "export PAGI_INHERIT_FDS=3", &["--listen", &listen]);
    p.wait_log("listening on");
    let log = p.stderr();
    assert!(
        log.contains(&format!(
            "closing an inherited socket (tcp://{addr}) that no --listen spec uses"
        )),
        "{log}"
    );
    assert!(TcpStream::connect(addr).is_err(), "fd 3 was closed");
    assert_hello(&get(tcp(SocketAddr::from(([127, 0, 0, 1], port)))));
    p.term();
}

// ---------------------------------------------------------------------------------------------
// --reuseport
// ---------------------------------------------------------------------------------------------

/// Two servers with --reuseport share one port; without it the second cannot bind.
#[test]
fn reuseport_lets_two_servers_share_a_port() {
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut a = Proc::server(&["--listen", &listen, "--reuseport"]);
    a.wait_log("listening on");
    let mut b = Proc::server(&["--listen", &listen, "--reuseport"]);
    b.wait_log("listening on");
    for _ in 0..4 {
        assert_hello(&get(tcp(addr)));
    }
    let mut c = Proc::server(&["--listen", &listen]);
    let st = c.wait_exit();
    assert_eq!(st.code(), Some(1));
    assert!(c.stderr().contains("in use"), "{}", c.stderr());
    a.term();
    // The other one goes on alone.
    assert_hello(&get(tcp(addr)));
    b.term();
}

// ---------------------------------------------------------------------------------------------
// --pid-file, --umask, --user/--group
// ---------------------------------------------------------------------------------------------

#[test]
fn pid_file_written_and_removed() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("s.pid");
    let listen = format!("127.0.0.1:{}", free_port());
    let pf = pid_file.to_str().unwrap();
    let mut p = Proc::server(&["--listen", &listen, "--pid-file", pf]);
    p.wait_log("listening on");
    assert_eq!(
        fs::read_to_string(&pid_file).unwrap(),
        format!("{}\n", p.pid())
    );
    p.term();
    assert!(!pid_file.exists(), "removed on TERM");

    // Naming a live process (pid 1 always is) is refused; a stale pid is replaced.
    fs::write(&pid_file, "1\n").unwrap();
    let mut p = Proc::server(&["--listen", &listen, "--pid-file", pf]);
    assert_eq!(p.wait_exit().code(), Some(1));
    assert!(
        p.stderr().contains("names process 1, which is running"),
        "{}",
        p.stderr()
    );
    assert_eq!(fs::read_to_string(&pid_file).unwrap(), "1\n");
    fs::write(&pid_file, "999999999\n").unwrap();
    let mut p = Proc::server(&["--listen", &listen, "--pid-file", pf]);
    p.wait_log("listening on");
    assert_eq!(
        fs::read_to_string(&pid_file).unwrap(),
        format!("{}\n", p.pid())
    );
    p.term();
    assert!(!pid_file.exists());
}

/// The socket file's mode follows --umask when --socket-mode is not given.
#[test]
fn umask_sets_the_socket_file_mode() {
    for (mask, mode) in [("077", 0o700), ("0o022", 0o755), ("002", 0o775)] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.sock");
        let spec = format!("unix:{}", path.display());
        let mut p = Proc::server(&["--listen", &spec, "--umask", mask]);
        p.wait_log("listening on");
        let got = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(got, mode, "--umask {mask}");
        p.term();
    }
    let mut p = Proc::server(&["--umask", "0999"]);
    assert_eq!(p.wait_exit().code(), Some(2), "a usage error");
    assert!(p.stderr().contains("octal umask"), "{}", p.stderr());
}

/// As root: --user nobody --group nogroup after binding; the Unix socket file belongs to them.
#[test]
fn user_and_group_drop_privileges() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let id = |flag: &str| -> String {
        let o = Command::new("id").args([flag, "nobody"]).output().unwrap();
        String::from_utf8(o.stdout).unwrap().trim().to_owned()
    };
    let (uid, gid) = (id("-u"), id("-g"));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("u.sock");
    let spec = format!("unix:{}", path.display());
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let mut p = Proc::server(&[
        "--listen", &spec, "--listen", &listen, "--user", "nobody", "--group", &gid,
    ]);
    p.wait_log("lifespan startup complete");
    assert_eq!(proc_status(p.pid(), "Uid:"), [uid.as_str(); 4]);
    assert_eq!(proc_status(p.pid(), "Gid:"), [gid.as_str(); 4]);
    assert_eq!(proc_status(p.pid(), "Groups:"), [gid.as_str()]);
    let m = fs::metadata(&path).unwrap();
    assert_eq!(m.uid().to_string(), uid);
    assert_eq!(m.gid().to_string(), gid);
    assert_hello(&get(unix(&path)));
    assert_hello(&get(tcp(SocketAddr::from(([127, 0, 0, 1], port)))));
    p.term();

    let mut p = Proc::server(&["--user", "no-such-user-here"]);
    assert_eq!(p.wait_exit().code(), Some(1));
    assert!(p.stderr().contains("no such user"), "{}", p.stderr());
}

// ---------------------------------------------------------------------------------------------
// --daemonize
// ---------------------------------------------------------------------------------------------

/// The command returns 0 once the daemon serves; the pid file names the daemon (in its own
/// session); TERM stops it and removes the pid file.
#[test]
fn daemonize_detaches_and_serves() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("d.pid");
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let mut p = Proc::server(&[
        "--listen",
        &listen,
        "--daemonize",
        "--pid-file",
        pid_file.to_str().unwrap(),
    ]);
    let st = p.wait_exit();
    assert!(st.success(), "{st}; stderr:\n{}", p.stderr());
    let pid: u32 = fs::read_to_string(&pid_file)
        .expect("pid file written before the parent returns")
        .trim()
        .parse()
        .unwrap();
    assert_ne!(pid, p.pid());
    // It serves at once (the parent waited for it).
    assert_hello(&get(tcp(SocketAddr::from(([127, 0, 0, 1], port)))));
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    assert_eq!(fields[3], pid.to_string(), "session leader (setsid)");
    let fd0 = fs::read_link(format!("/proc/{pid}/fd/0")).unwrap();
    let fd1 = fs::read_link(format!("/proc/{pid}/fd/1")).unwrap();
    assert_eq!(fd0, Path::new("/dev/null"));
    assert_eq!(fd1, Path::new("/dev/null"));
    kill("TERM", pid);
    let deadline = Instant::now() + LIMIT;
    while pid_file.exists() {
        assert!(Instant::now() < deadline, "the daemon did not stop");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(TcpStream::connect(("127.0.0.1", port)).is_err());
}

/// A daemon that cannot start: the command fails with its error.
#[test]
fn daemonize_reports_startup_errors() {
    let (_held, addr) = local_listener();
    let mut p = Proc::server(&["--listen", &addr.to_string(), "--daemonize"]);
    let st = p.wait_exit();
    assert_eq!(st.code(), Some(1));
    let log = p.stderr();
    assert!(log.contains(&format!("cannot listen on {addr}")), "{log}");
}
