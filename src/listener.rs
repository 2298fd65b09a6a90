//! Listen specs (`--listen`) and binding: TCP (v4/v6), Unix sockets, and sockets inherited
//! from systemd or an old master ([`inherit`]).

pub(crate) mod fd;
pub mod inherit;

use socket2::{Domain, Protocol, Socket, Type};
use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::net::{TcpListener, UnixListener};

use crate::error::Error;
use inherit::{Entry, Inherited, InheritedAddr};

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
    /// An inherited listening socket (`fd://N`, `fd://NAME`): systemd socket activation, a
    /// supervisor, or an old master. Its kind (TCP or Unix) is read from the socket.
    Fd(FdRef),
}

/// Which inherited socket an `fd://` spec means.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FdRef {
    /// A descriptor number (`fd://3`).
    Num(RawFd),
    /// A systemd `FileDescriptorName=` from `LISTEN_FDNAMES` (`fd://web`).
    Name(String),
}

impl fmt::Display for FdRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FdRef::Num(n) => write!(f, "fd://{n}"),
            FdRef::Name(n) => write!(f, "fd://{n}"),
        }
    }
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
        if let Some(r) = s.strip_prefix("fd://") {
            let r = if !r.is_empty() && r.bytes().all(|b| b.is_ascii_digit()) {
                match r.parse::<RawFd>() {
                    Ok(n) if n >= 3 => FdRef::Num(n),
                    _ => {
                        return Err(Error::new(format!(
                            "listen spec {s:?}: the descriptor must be 3 or more"
                        )))
                    }
                }
            } else if !r.is_empty() && !r.contains(':') && r.len() <= 255 {
                FdRef::Name(r.to_owned())
            } else {
                return Err(Error::new(format!(
                    "listen spec {s:?} is not fd://NUMBER or fd://NAME"
                )));
            };
            return Ok(ListenSpec {
                addr: ListenAddr::Fd(r),
                tls: None,
            });
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
            (ListenAddr::Fd(r), _) => write!(f, "{r}"),
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

/// A bound listener, registered with a Tokio runtime.
#[derive(Debug)]
pub enum Bound {
    /// TCP.
    Tcp(TcpListener, SocketAddr),
    /// Unix socket; the guard removes the file on drop (unless disarmed, or the socket was
    /// inherited under an `fd://` spec: then its file belongs to whoever made it).
    Unix(UnixListener, UnixGuard),
}

/// A bound listener not yet registered with a Tokio runtime: what [`bind_with`] returns, so
/// that a `--workers` master (which never runs a runtime) can bind and adopt sockets before it
/// forks. [`StdBound::into_tokio`] turns it into a [`Bound`] inside a runtime.
#[derive(Debug)]
pub enum StdBound {
    /// TCP.
    Tcp(std::net::TcpListener, SocketAddr),
    /// Unix socket; the guard as for [`Bound::Unix`].
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

    /// Where this listener is, for logs.
    pub fn describe(&self) -> String {
        match self {
            StdBound::Tcp(_, a) => a.to_string(),
            StdBound::Unix(_, g) => format!("unix:{}", g.path.display()),
        }
    }
}

impl AsFd for Bound {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            Bound::Tcp(l, _) => l.as_fd(),
            Bound::Unix(l, _) => l.as_fd(),
        }
    }
}

impl AsFd for StdBound {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            StdBound::Tcp(l, _) => l.as_fd(),
            StdBound::Unix(l, _) => l.as_fd(),
        }
    }
}

/// What handing a listener to another process needs, on [`Bound`] and [`StdBound`] alike.
pub trait Handover: AsFd {
    /// The Unix socket's guard; `None` for TCP.
    fn guard(&self) -> Option<&UnixGuard>;

    /// The listening socket's descriptor number (valid while `self` lives).
    fn raw_fd(&self) -> RawFd {
        self.as_fd().as_raw_fd()
    }

    /// Clears (`true`) or sets (`false`) close-on-exec on the listening socket, so that a
    /// program this process executes inherits it under the same number (a hot upgrade: list
    /// the numbers in `PAGI_INHERIT_FDS` for the new master).
    fn set_inheritable(&self, inheritable: bool) -> Result<(), Error> {
        socket2::SockRef::from(&self.as_fd())
            .set_cloexec(!inheritable)
            .map_err(|e| Error::with("cannot change close-on-exec on a listener", e))
    }

    /// Keeps the Unix socket file when this listener is dropped (a `--workers` worker: the
    /// master owns the file; a master whose sockets a new master adopted). No effect on TCP.
    fn disarm_unlink(&self) {
        if let Some(g) = self.guard() {
            g.disarm();
        }
    }

    /// The Unix socket file this listener removes on drop, if any.
    fn socket_file(&self) -> Option<&Path> {
        self.guard()
            .filter(|g| g.armed.load(Ordering::Relaxed))
            .map(|g| g.path.as_path())
    }
}

impl Handover for Bound {
    fn guard(&self) -> Option<&UnixGuard> {
        match self {
            Bound::Tcp(..) => None,
            Bound::Unix(_, g) => Some(g),
        }
    }
}

impl Handover for StdBound {
    fn guard(&self) -> Option<&UnixGuard> {
        match self {
            StdBound::Tcp(..) => None,
            StdBound::Unix(_, g) => Some(g),
        }
    }
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

/// Removes a Unix socket file on drop, if it is still the one we created (and the guard is
/// armed).
#[derive(Debug)]
pub struct UnixGuard {
    path: PathBuf,
    ino: u64,
    dev: u64,
    armed: AtomicBool,
}

impl UnixGuard {
    /// The socket's path (for a socket without one, `@name` or a description).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Keeps the file on drop.
    pub fn disarm(&self) {
        self.armed.store(false, Ordering::Relaxed);
    }

    /// Removes the file on drop again, after [`UnixGuard::disarm`] (a new master from a
    /// binary upgrade takes the file over once it is ready).
    pub(crate) fn rearm(&self) {
        self.armed.store(true, Ordering::Relaxed);
    }

    /// A guard for the socket file at `path` as it is now; `armed`: remove it on drop.
    fn for_file(path: &Path, armed: bool) -> Result<Self, std::io::Error> {
        let meta = std::fs::symlink_metadata(path)?;
        Ok(UnixGuard {
            path: path.to_owned(),
            ino: meta.ino(),
            dev: meta.dev(),
            armed: AtomicBool::new(armed),
        })
    }

    /// A guard that never removes anything (a socket without a file, or not ours).
    fn inert(path: PathBuf) -> Self {
        UnixGuard {
            path,
            ino: 0,
            dev: 0,
            armed: AtomicBool::new(false),
        }
    }
}

impl Drop for UnixGuard {
    fn drop(&mut self) {
        if !self.armed.load(Ordering::Relaxed) {
            return;
        }
        if let Ok(m) = std::fs::symlink_metadata(&self.path) {
            if m.file_type().is_socket() && m.ino() == self.ino && m.dev() == self.dev {
                let _ = std::fs::remove_file(&self.path);
            }
        }
    }
}

/// How [`bind_with`] makes new sockets.
#[derive(Clone, Copy, Debug)]
pub struct BindOptions {
    /// Listen backlog.
    pub backlog: u32,
    /// Permissions of Unix socket files (`None`: what the umask gives).
    pub socket_mode: Option<u32>,
    /// `SO_REUSEPORT` on TCP listeners: several processes may listen on one port, and the
    /// kernel spreads connections among them.
    pub reuse_port: bool,
}

/// Binds a spec. Must run inside a Tokio runtime.
pub fn bind(
    spec: &ListenSpec,
    backlog: u32,
    socket_mode: Option<u32>,
) -> Result<Vec<Bound>, Error> {
    let opts = BindOptions {
        backlog,
        socket_mode,
        reuse_port: false,
    };
    bind_with(spec, &opts, &mut Inherited::none())?
        .into_iter()
        .map(StdBound::into_tokio)
        .collect()
}

/// Binds a spec, or adopts inherited sockets for it: an `fd://` spec takes its socket from
/// `inherited` (or straight from the process, by number); a TCP spec takes an inherited socket
/// with the same local address for each address it resolves to, and a Unix spec one bound to
/// the same path (the file is left as it is: no unlink, no new bind). Everything else is bound
/// anew. Needs no runtime (see [`StdBound`]).
pub fn bind_with(
    spec: &ListenSpec,
    opts: &BindOptions,
    inherited: &mut Inherited,
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
                if let Some(e) = inherited.take_tcp(a) {
                    tracing::info!(fd = e.fd, "{spec}: adopted the inherited socket on {a}");
                    out.push(adopt(e, false)?);
                    continue;
                }
                let l = bind_tcp(a, opts.backlog, opts.reuse_port)?;
                let local = l.local_addr().map_err(|e| Error::with("local_addr", e))?;
                out.push(StdBound::Tcp(l, local));
            }
            Ok(out)
        }
        ListenAddr::Unix(p) => {
            if let Some(e) = inherited.take_unix(p) {
                tracing::info!(fd = e.fd, "{spec}: adopted the inherited socket");
                let b = adopt(e, true)?;
                if let (Some(mode), Some(file)) = (opts.socket_mode, b.socket_file()) {
                    std::fs::set_permissions(file, std::fs::Permissions::from_mode(mode))
                        .map_err(|e| Error::with(format!("cannot chmod {}", p.display()), e))?;
                }
                return Ok(vec![b]);
            }
            Ok(vec![bind_unix(p, opts.backlog, opts.socket_mode)?])
        }
        ListenAddr::Fd(r) => {
            let e = inherited
                .take_fd(r)
                .map_err(|e| Error::new(format!("{spec}: {e}")))?;
            Ok(vec![adopt(e, false)?])
        }
    }
}

/// A listener around an inherited socket. `own_file`: a Unix socket file is removed on drop
/// (it was adopted for a `unix:` spec, so this server owns it now).
fn adopt(e: Entry, own_file: bool) -> Result<StdBound, Error> {
    let fd = e.fd;
    e.socket
        .set_nonblocking(true)
        .map_err(|err| Error::with(format!("inherited fd {fd} ({}): nonblocking", e.addr), err))?;
    let guard = match &e.addr {
        InheritedAddr::Tcp(a) => return Ok(StdBound::Tcp(e.socket.into(), *a)),
        InheritedAddr::Unix(p) => match own_file.then(|| UnixGuard::for_file(p, true)) {
            Some(Ok(g)) => g,
            Some(Err(err)) => {
                tracing::warn!("inherited fd {fd}: {} is gone: {err}", p.display());
                UnixGuard::inert(p.clone())
            }
            None => UnixGuard::inert(p.clone()),
        },
        InheritedAddr::UnixOther(s) => UnixGuard::inert(PathBuf::from(s)),
    };
    Ok(StdBound::Unix(e.socket.into(), guard))
}

fn bind_tcp(
    addr: SocketAddr,
    backlog: u32,
    reuse_port: bool,
) -> Result<std::net::TcpListener, Error> {
    let fail =
        |what: &str, e: std::io::Error| Error::with(format!("cannot listen on {addr} ({what})"), e);
    let sock = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))
        .map_err(|e| fail("socket", e))?;
    sock.set_reuse_address(true)
        .map_err(|e| fail("SO_REUSEADDR", e))?;
    if reuse_port {
        sock.set_reuse_port(true)
            .map_err(|e| fail("SO_REUSEPORT", e))?;
    }
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

fn bind_unix(path: &Path, backlog: u32, mode: Option<u32>) -> Result<StdBound, Error> {
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
    let guard = UnixGuard::for_file(path, true).map_err(|e| fail("stat", e))?;
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
    parse_octal(s)
        .ok_or_else(|| Error::new(format!("socket mode {s:?} is not an octal mode like 0660")))
}

/// Up to four octal digits, optionally after `0o` (modes, umasks).
pub(crate) fn parse_octal(s: &str) -> Option<u32> {
    let digits = s.strip_prefix("0o").unwrap_or(s);
    if digits.is_empty() || digits.len() > 4 || !digits.bytes().all(|b| (b'0'..=b'7').contains(&b))
    {
        return None;
    }
    u32::from_str_radix(digits, 8).ok()
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
        let fd = |r| ListenSpec {
            addr: ListenAddr::Fd(r),
            tls: None,
        };
        assert_eq!(p("fd://3").unwrap(), fd(FdRef::Num(3)));
        assert_eq!(p("fd://web").unwrap(), fd(FdRef::Name("web".into())));
        assert_eq!(p("fd://12").unwrap().to_string(), "fd://12");
        assert!(p("fd://2").is_err());
        assert!(p("fd://").is_err());
        assert!(p("fd://a:b").is_err());
        assert!(p("fd://99999999999").is_err());
        assert_eq!(
            p("https://127.0.0.1:8443").unwrap().to_string(),
            "https://127.0.0.1:8443"
        );
    }

    /// What a master needs to hand its listeners to a new one: the numbers, close-on-exec
    /// cleared, and Unix socket files kept when the old listeners go.
    #[tokio::test]
    async fn handover_api() {
        use nix::fcntl::{fcntl, FcntlArg, FdFlag};
        let cloexec = |b: &Bound| {
            let flags = fcntl(b, FcntlArg::F_GETFD).unwrap();
            FdFlag::from_bits_truncate(flags).contains(FdFlag::FD_CLOEXEC)
        };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.sock");
        let mut all = bind(&ListenSpec::tcp("127.0.0.1:0"), 16, None).unwrap();
        all.extend(bind(&ListenSpec::unix(&path), 16, None).unwrap());
        for b in &all {
            assert!(b.raw_fd() > 2);
            assert!(cloexec(b), "close-on-exec by default");
            b.set_inheritable(true).unwrap();
            assert!(!cloexec(b));
            b.set_inheritable(false).unwrap();
            assert!(cloexec(b));
        }
        assert_eq!(all[1].socket_file(), Some(path.as_path()));
        all[1].disarm_unlink();
        assert_eq!(all[1].socket_file(), None);
        drop(all);
        assert!(path.exists(), "a disarmed guard keeps the file");
        // An armed one removes it.
        std::fs::remove_file(&path).unwrap();
        drop(bind(&ListenSpec::unix(&path), 16, None).unwrap());
        assert!(!path.exists());
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
