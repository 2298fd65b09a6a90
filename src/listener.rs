//! Listen specs (`--listen`) and binding: TCP (v4/v6) and Unix sockets.

use socket2::{Domain, Protocol, Socket, Type};
use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use tokio::net::{TcpListener, UnixListener};

use crate::error::Error;

/// Where to listen, and whether with TLS.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListenSpec {
    /// The address.
    pub addr: ListenAddr,
    /// `Some(true)`: TLS (`https://`, `unix+tls:`); `Some(false)`: cleartext (`http://`,
    /// `tcp://`, `unix:`); `None`: TLS exactly when the server has a certificate (bare
    /// `host:port` or path, PAGI's form).
    pub tls: Option<bool>,
}

/// A listening address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ListenAddr {
    /// A TCP address (`host:port`, `[v6]:port`). Host names are resolved at bind time, and every
    /// address they resolve to is bound.
    Tcp(String),
    /// A Unix socket path.
    Unix(PathBuf),
}

impl ListenSpec {
    /// A TCP listener whose TLS follows the server's certificate settings.
    pub fn tcp(hostport: impl Into<String>) -> Self {
        ListenSpec {
            addr: ListenAddr::Tcp(hostport.into()),
            tls: None,
        }
    }

    /// A Unix socket listener whose TLS follows the server's certificate settings.
    pub fn unix(path: impl Into<PathBuf>) -> Self {
        ListenSpec {
            addr: ListenAddr::Unix(path.into()),
            tls: None,
        }
    }
}

impl FromStr for ListenSpec {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        if s.is_empty() {
            return Err(Error::new("empty listen spec"));
        }
        for (prefix, tls) in [("unix+tls:", true), ("unix:", false)] {
            if let Some(p) = s.strip_prefix(prefix) {
                if p.is_empty() {
                    return Err(Error::new(format!("{prefix} needs a path")));
                }
                return Ok(ListenSpec {
                    addr: ListenAddr::Unix(p.into()),
                    tls: Some(tls),
                });
            }
        }
        if s.starts_with('/') || s.starts_with('.') {
            return Ok(ListenSpec::unix(s));
        }
        for (prefix, tls) in [("https://", true), ("http://", false), ("tcp://", false)] {
            if let Some(hp) = s.strip_prefix(prefix) {
                let hp = hp.strip_suffix('/').unwrap_or(hp);
                return match split_host_port(hp) {
                    Some(("", _)) => Err(no_host(s)),
                    Some(_) => Ok(ListenSpec {
                        addr: ListenAddr::Tcp(hp.to_owned()),
                        tls: Some(tls),
                    }),
                    None => Err(Error::new(format!(
                        "listen spec {s:?} is not {prefix}host:port"
                    ))),
                };
            }
        }
        match split_host_port(s) {
            Some(("", _)) => Err(no_host(s)),
            Some(_) => Ok(ListenSpec::tcp(s)),
            None if s.starts_with('[') => {
                Err(Error::new(format!("listen spec {s:?} is not host:port")))
            }
            None if s.contains(':')
                && s.rsplit(':')
                    .next()
                    .is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit())) =>
            {
                Err(Error::new(format!("listen spec {s:?}: port out of range")))
            }
            None => Ok(ListenSpec::unix(s)),
        }
    }
}

fn no_host(s: &str) -> Error {
    Error::new(format!(
        "listen spec {s:?} has no host (use 0.0.0.0:PORT or [::]:PORT)"
    ))
}

impl fmt::Display for ListenSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.addr, self.tls) {
            (ListenAddr::Tcp(a), Some(true)) => write!(f, "https://{a}"),
            (ListenAddr::Tcp(a), _) => write!(f, "tcp://{a}"),
            (ListenAddr::Unix(p), Some(true)) => write!(f, "unix+tls:{}", p.display()),
            (ListenAddr::Unix(p), _) => write!(f, "unix:{}", p.display()),
        }
    }
}

/// `host:port` with a numeric port; `[v6]:port` keeps its brackets off the host.
fn split_host_port(s: &str) -> Option<(&str, u16)> {
    let (host, port) = s.rsplit_once(':')?;
    let port: u16 = port
        .parse()
        .ok()
        .filter(|_| port.bytes().all(|b| b.is_ascii_digit()))?;
    if let Some(inner) = host.strip_prefix('[') {
        let inner = inner.strip_suffix(']')?;
        inner.parse::<std::net::Ipv6Addr>().ok()?;
        return Some((inner, port));
    }
    if host.contains(':') || host.contains('/') {
        return None;
    }
    Some((host, port))
}

/// A bound listener.
#[derive(Debug)]
pub enum Bound {
    /// TCP.
    Tcp(TcpListener, SocketAddr),
    /// Unix socket; the guard removes the file on drop.
    Unix(UnixListener, UnixGuard),
}

impl Bound {
    /// Where this listener is, for logs.
    pub fn describe(&self, tls: bool) -> String {
        match (self, tls) {
            (Bound::Tcp(_, a), false) => format!("http://{a}"),
            (Bound::Tcp(_, a), true) => format!("https://{a}"),
            (Bound::Unix(_, g), false) => format!("unix:{}", g.path.display()),
            (Bound::Unix(_, g), true) => format!("unix+tls:{}", g.path.display()),
        }
    }
}

/// A bound listener that is not yet registered with a Tokio runtime: what a `--workers` master
/// binds (it never runs a runtime) and each worker turns into a [`Bound`] after the fork.
#[derive(Debug)]
pub enum StdBound {
    /// TCP.
    Tcp(std::net::TcpListener, SocketAddr),
    /// Unix socket; the guard removes the file on drop (unless disarmed).
    Unix(std::os::unix::net::UnixListener, UnixGuard),
}

impl StdBound {
    /// Registers the listener with the current Tokio runtime. Must run inside one.
    pub fn into_tokio(self) -> Result<Bound, Error> {
        let fail = |e| Error::with("cannot register a listener with the runtime", e);
        match self {
            StdBound::Tcp(l, a) => Ok(Bound::Tcp(TcpListener::from_std(l).map_err(fail)?, a)),
            StdBound::Unix(l, g) => Ok(Bound::Unix(UnixListener::from_std(l).map_err(fail)?, g)),
        }
    }

    /// The listening socket's file descriptor.
    pub fn as_raw_fd(&self) -> std::os::fd::RawFd {
        use std::os::fd::AsRawFd;
        match self {
            StdBound::Tcp(l, _) => l.as_raw_fd(),
            StdBound::Unix(l, _) => l.as_raw_fd(),
        }
    }

    /// Keeps a Unix socket file in place when this listener is dropped (see
    /// [`UnixGuard::disarm`]); nothing for TCP.
    pub fn disarm(&mut self) {
        if let StdBound::Unix(_, g) = self {
            g.disarm();
        }
    }

    /// Where this listener is, for logs.
    pub fn describe(&self) -> String {
        match self {
            StdBound::Tcp(_, a) => a.to_string(),
            StdBound::Unix(_, g) => format!("unix:{}", g.path.display()),
        }
    }
}

/// Removes a Unix socket file on drop, if it is still the one we created (and the guard is
/// armed).
#[derive(Debug)]
pub struct UnixGuard {
    path: PathBuf,
    ino: u64,
    dev: u64,
    armed: bool,
}

impl UnixGuard {
    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Leaves the file in place on drop: for a `--workers` worker (the master owns the file)
    /// and for a master handing its sockets to a new master (binary upgrade).
    pub fn disarm(&mut self) {
        self.armed = false;
    }

    /// A guard for a socket file some other process created and handed over (binary upgrade,
    /// socket activation): it removes the file on drop like its own.
    pub fn adopt(path: &Path) -> Result<UnixGuard, Error> {
        let meta = std::fs::symlink_metadata(path)
            .map_err(|e| Error::with(format!("cannot inspect {}", path.display()), e))?;
        Ok(UnixGuard {
            path: path.to_owned(),
            ino: meta.ino(),
            dev: meta.dev(),
            armed: true,
        })
    }
}

impl Drop for UnixGuard {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        if let Ok(m) = std::fs::symlink_metadata(&self.path) {
            if m.file_type().is_socket() && m.ino() == self.ino && m.dev() == self.dev {
                let _ = std::fs::remove_file(&self.path);
            }
        }
    }
}

/// Binds a spec. Must run inside a Tokio runtime.
pub fn bind(
    spec: &ListenSpec,
    backlog: u32,
    socket_mode: Option<u32>,
) -> Result<Vec<Bound>, Error> {
    bind_std(spec, backlog, socket_mode)?
        .into_iter()
        .map(StdBound::into_tokio)
        .collect()
}

/// Binds a spec without a runtime (see [`StdBound`]).
pub fn bind_std(
    spec: &ListenSpec,
    backlog: u32,
    socket_mode: Option<u32>,
) -> Result<Vec<StdBound>, Error> {
    match &spec.addr {
        ListenAddr::Tcp(hp) => {
            let addrs: Vec<SocketAddr> = hp
                .to_socket_addrs()
                .map_err(|e| Error::with(format!("cannot resolve {hp}"), e))?
                .collect();
            if addrs.is_empty() {
                return Err(Error::new(format!("{hp} resolves to no address")));
            }
            let mut out = Vec::new();
            for a in addrs {
                let l = bind_tcp(a, backlog)?;
                let local = l.local_addr().map_err(|e| Error::with("local_addr", e))?;
                out.push(StdBound::Tcp(l, local));
            }
            Ok(out)
        }
        ListenAddr::Unix(p) => Ok(vec![bind_unix(p, backlog, socket_mode)?]),
    }
}

/// Binds one TCP address (SO_REUSEADDR, v6-only for v6), non-blocking.
pub fn bind_tcp(addr: SocketAddr, backlog: u32) -> Result<std::net::TcpListener, Error> {
    let fail =
        |what: &str, e: std::io::Error| Error::with(format!("cannot listen on {addr} ({what})"), e);
    let sock = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))
        .map_err(|e| fail("socket", e))?;
    sock.set_reuse_address(true)
        .map_err(|e| fail("SO_REUSEADDR", e))?;
    if addr.is_ipv6() {
        // v4 and v6 listeners on one port coexist.
        sock.set_only_v6(true).map_err(|e| fail("IPV6_V6ONLY", e))?;
    }
    sock.set_nonblocking(true)
        .map_err(|e| fail("nonblocking", e))?;
    sock.bind(&addr.into()).map_err(|e| fail("bind", e))?;
    sock.listen(backlog.min(i32::MAX as u32) as i32)
        .map_err(|e| fail("listen", e))?;
    Ok(sock.into())
}

/// Binds a Unix socket (a stale socket file is removed first), non-blocking.
pub fn bind_unix(path: &Path, backlog: u32, mode: Option<u32>) -> Result<StdBound, Error> {
    let show = path.display();
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => {
            // A socket file: live if something accepts on it, stale (from a crash) otherwise.
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(Error::new(format!(
                    "cannot listen on {show}: another server is listening there"
                )));
            }
            std::fs::remove_file(path)
                .map_err(|e| Error::with(format!("cannot remove stale socket {show}"), e))?;
            tracing::info!(path = %show, "removed stale socket file");
        }
        Ok(_) => {
            return Err(Error::new(format!(
                "cannot listen on {show}: the path exists and is not a socket (not removing it)"
            )))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::with(format!("cannot inspect {show}"), e)),
    }
    let fail =
        |what: &str, e: std::io::Error| Error::with(format!("cannot listen on {show} ({what})"), e);
    let sock = Socket::new(Domain::UNIX, Type::STREAM, None).map_err(|e| fail("socket", e))?;
    sock.set_nonblocking(true)
        .map_err(|e| fail("nonblocking", e))?;
    let addr = socket2::SockAddr::unix(path).map_err(|e| fail("address", e))?;
    sock.bind(&addr).map_err(|e| fail("bind", e))?;
    let meta = std::fs::symlink_metadata(path).map_err(|e| fail("stat", e))?;
    let guard = UnixGuard {
        path: path.to_owned(),
        ino: meta.ino(),
        dev: meta.dev(),
        armed: true,
    };
    if let Some(mode) = mode {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
            .map_err(|e| fail("chmod", e))?;
    }
    sock.listen(backlog.min(i32::MAX as u32) as i32)
        .map_err(|e| fail("listen", e))?;
    Ok(StdBound::Unix(sock.into(), guard))
}

/// Parses an octal mode like `0660` or `660`.
pub fn parse_mode(s: &str) -> Result<u32, Error> {
    let digits = s.strip_prefix("0o").unwrap_or(s);
    if digits.is_empty() || digits.len() > 4 || !digits.bytes().all(|b| (b'0'..=b'7').contains(&b))
    {
        return Err(Error::new(format!(
            "socket mode {s:?} is not an octal mode like 0660"
        )));
    }
    u32::from_str_radix(digits, 8).map_err(|e| Error::with("socket mode", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<ListenSpec, String> {
        s.parse::<ListenSpec>().map_err(|e| e.to_string())
    }

    #[test]
    fn specs() {
        let tcp = |a: &str, tls| ListenSpec {
            addr: ListenAddr::Tcp(a.into()),
            tls,
        };
        let unix = |a: &str, tls| ListenSpec {
            addr: ListenAddr::Unix(a.into()),
            tls,
        };
        assert_eq!(p("127.0.0.1:8000").unwrap(), tcp("127.0.0.1:8000", None));
        assert_eq!(
            p("tcp://localhost:80").unwrap(),
            tcp("localhost:80", Some(false))
        );
        assert_eq!(
            p("http://0.0.0.0:80/").unwrap(),
            tcp("0.0.0.0:80", Some(false))
        );
        assert_eq!(p("https://[::]:443").unwrap(), tcp("[::]:443", Some(true)));
        assert_eq!(p("[::1]:8000").unwrap(), tcp("[::1]:8000", None));
        assert_eq!(p("/run/app.sock").unwrap(), unix("/run/app.sock", None));
        assert_eq!(p("./app.sock").unwrap(), unix("./app.sock", None));
        assert_eq!(p("unix:rel.sock").unwrap(), unix("rel.sock", Some(false)));
        assert_eq!(p("unix+tls:/s.sock").unwrap(), unix("/s.sock", Some(true)));
        assert_eq!(p("app.sock").unwrap(), unix("app.sock", None));
        assert!(p("").is_err());
        assert!(p("unix:").is_err());
        assert!(p("unix+tls:").is_err());
        assert!(p(":8000").is_err());
        assert!(p("https://:443").is_err());
        assert!(p("https://nohost").is_err());
        assert!(p("[::1]").is_err());
        assert!(p("[nope]:80").is_err());
        assert!(p("127.0.0.1:99999").is_err());
        assert!(p("tcp://nohost").is_err());
        assert_eq!(
            p("https://127.0.0.1:8443").unwrap().to_string(),
            "https://127.0.0.1:8443"
        );
    }

    #[test]
    fn modes() {
        assert_eq!(parse_mode("0660").unwrap(), 0o660);
        assert_eq!(parse_mode("755").unwrap(), 0o755);
        assert!(parse_mode("0999").is_err());
        assert!(parse_mode("rw").is_err());
        assert!(parse_mode("").is_err());
    }
}
