//! Listening sockets handed to this process: by systemd socket activation (`LISTEN_FDS`,
//! `LISTEN_PID`, `LISTEN_FDNAMES`) and by an old master during a hot upgrade
//! (`PAGI_INHERIT_FDS=fd1,fd2,...`).
//!
//! Read them once, early, with [`Inherited::from_env`]. Then [`super::bind_with`] (and so
//! [`crate::Builder::inherit`]) gives each listen spec an inherited socket with the same local
//! address (TCP) or path (Unix) instead of binding a new one; an `fd://N` or `fd://NAME` spec
//! takes its socket by number or systemd name. Whatever no spec asked for is closed with a
//! warning ([`Inherited::close_unused`]).

use socket2::Socket;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::path::{Path, PathBuf};

use super::{fd, FdRef};
use crate::error::Error;

/// The variable naming descriptors an old master handed over (comma-separated numbers).
pub const INHERIT_ENV: &str = "PAGI_INHERIT_FDS";

/// The names of the descriptors in [`INHERIT_ENV`], colon-separated in the same order (empty
/// for none): an old master passes on the systemd names its `fd://NAME` specs used, so the
/// new master, run with the same arguments, finds them.
pub const INHERIT_NAMES_ENV: &str = "PAGI_INHERIT_FDNAMES";

/// Who handed a socket over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// systemd socket activation (`LISTEN_FDS`).
    Systemd,
    /// A previous pagi-server master (`PAGI_INHERIT_FDS`).
    Upgrade,
}

/// Where an inherited socket listens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InheritedAddr {
    /// TCP.
    Tcp(SocketAddr),
    /// A Unix socket bound to a path (made absolute against the current directory).
    Unix(PathBuf),
    /// A Unix socket without a path (abstract or unnamed); shown as given.
    UnixOther(String),
}

/// One inherited listening socket.
#[derive(Debug)]
pub struct Entry {
    /// Its descriptor number.
    pub fd: RawFd,
    /// Its address.
    pub addr: InheritedAddr,
    /// Where it came from.
    pub source: Source,
    /// Its `LISTEN_FDNAMES` name (systemd's `FileDescriptorName=`, by default the unit name).
    pub name: Option<String>,
    pub(crate) socket: Socket,
}

/// The inherited listening sockets not yet given to a listener.
#[derive(Debug, Default)]
pub struct Inherited {
    entries: Vec<Entry>,
}

/// The environment as [`Inherited::from_vars`] reads it.
#[derive(Clone, Debug, Default)]
pub struct Vars {
    /// `LISTEN_FDS`.
    pub listen_fds: Option<String>,
    /// `LISTEN_PID`.
    pub listen_pid: Option<String>,
    /// `LISTEN_FDNAMES`.
    pub listen_fdnames: Option<String>,
    /// `PAGI_INHERIT_FDS`.
    pub inherit_fds: Option<String>,
    /// `PAGI_INHERIT_FDNAMES`.
    pub inherit_fdnames: Option<String>,
}

impl Vars {
    /// Reads the variables and removes them from the environment, so that no child process
    /// (a worker, an upgraded master, anything the app runs) takes them for its own.
    ///
    /// Changing the environment is only sound while the process has one thread (Rust 2024
    /// makes `remove_var` `unsafe` for that reason): call this at the very start of `main`,
    /// before any runtime or thread exists. [`crate::cli::main`] does.
    pub fn take_from_env() -> Vars {
        let take = |k: &str| {
            let v = std::env::var_os(k).map(|v| v.to_string_lossy().into_owned());
            if v.is_some() {
                std::env::remove_var(k);
            }
            v
        };
        Vars {
            listen_fds: take("LISTEN_FDS"),
            listen_pid: take("LISTEN_PID"),
            listen_fdnames: take("LISTEN_FDNAMES"),
            inherit_fds: take(INHERIT_ENV),
            inherit_fdnames: take(INHERIT_NAMES_ENV),
        }
    }
}

impl Inherited {
    /// No inherited sockets.
    pub fn none() -> Self {
        Self::default()
    }

    /// [`Vars::take_from_env`] then [`Inherited::from_vars`]: call before any thread exists.
    pub fn from_env() -> Result<Self, Error> {
        Self::from_vars(&Vars::take_from_env())
    }

    /// Takes ownership of the sockets the variables name.
    ///
    /// systemd: `LISTEN_FDS=N` means descriptors 3..3+N, but only when `LISTEN_PID` is this
    /// process (as sd_listen_fds(3) does; otherwise they were meant for another process and are
    /// left alone, with a warning). `LISTEN_FDNAMES` (colon-separated) names them.
    /// `PAGI_INHERIT_FDS` lists descriptors explicitly. Every one must be a listening TCP or
    /// Unix stream socket; anything else is an error.
    pub fn from_vars(v: &Vars) -> Result<Self, Error> {
        let mut out = Inherited::none();
        // Every variable is parsed before any descriptor is taken.
        let handed: Vec<RawFd> = match v.inherit_fds.as_deref() {
            Some(list) => list
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|item| {
                    item.parse().map_err(|_| {
                        Error::new(format!(
                            "{INHERIT_ENV}: {item:?} is not a descriptor number"
                        ))
                    })
                })
                .collect::<Result<_, _>>()?,
            None => Vec::new(),
        };
        if let Some(n) = v.listen_fds.as_deref() {
            let n: RawFd = n.trim().parse().map_err(|_| {
                Error::new(format!("LISTEN_FDS={n:?} is not a number of descriptors"))
            })?;
            let me = std::process::id().to_string();
            match v.listen_pid.as_deref().map(str::trim) {
                Some(pid) if pid == me => {
                    let names: Vec<&str> = v
                        .listen_fdnames
                        .as_deref()
                        .map(|s| s.split(':').collect())
                        .unwrap_or_default();
                    if !(0..=4096).contains(&n) {
                        return Err(Error::new(format!("LISTEN_FDS={n} is out of range")));
                    }
                    for i in 0..n {
                        let name = names
                            .get(i as usize)
                            .filter(|s| !s.is_empty())
                            .map(|s| s.to_string());
                        out.add(3 + i, Source::Systemd, name)
                            .map_err(|e| Error::new(format!("socket activation: {e}")))?;
                    }
                }
                Some(pid) => tracing::warn!(
                    "LISTEN_FDS is set for process {pid}, not this one ({me}): ignored"
                ),
                None => tracing::warn!("LISTEN_FDS is set without LISTEN_PID: ignored"),
            }
        }
        let handed_names: Vec<&str> = v
            .inherit_fdnames
            .as_deref()
            .map(|s| s.split(':').collect())
            .unwrap_or_default();
        for (i, fd) in handed.into_iter().enumerate() {
            if out.entries.iter().any(|e| e.fd == fd) {
                continue;
            }
            let name = handed_names
                .get(i)
                .filter(|s| !s.is_empty())
                .map(|s| s.to_string());
            out.add(fd, Source::Upgrade, name)
                .map_err(|e| Error::new(format!("{INHERIT_ENV}: {e}")))?;
        }
        Ok(out)
    }

    fn add(&mut self, fd: RawFd, source: Source, name: Option<String>) -> Result<(), Error> {
        let socket = fd::claim(fd)?;
        let addr = describe(fd, &socket)?;
        tracing::debug!(fd, ?addr, ?source, "inherited listening socket");
        self.entries.push(Entry {
            fd,
            addr,
            source,
            name,
            socket,
        });
        Ok(())
    }

    /// Adds descriptor `fd` (an `fd://N` spec for a socket passed without any variable, e.g.
    /// by a supervisor). Call before any runtime or thread exists, like [`Inherited::from_env`];
    /// a number already in the set is left as it is.
    pub fn claim(&mut self, fd: RawFd) -> Result<(), Error> {
        if self.entries.iter().any(|e| e.fd == fd) {
            return Ok(());
        }
        self.add(fd, Source::Upgrade, None)
            .map_err(|e| Error::new(format!("fd://{fd}: {e}")))
    }

    /// `fd://` specs for every socket, in order: what a server given no `--listen` serves.
    pub fn specs(&self) -> Vec<super::ListenSpec> {
        self.entries
            .iter()
            .map(|e| super::ListenSpec {
                addr: super::ListenAddr::Fd(FdRef::Num(e.fd)),
                tls: None,
            })
            .collect()
    }

    /// Whether nothing is left.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The sockets not yet taken, in the order they were read.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// Whether systemd handed over any socket.
    pub fn has_systemd(&self) -> bool {
        self.entries.iter().any(|e| e.source == Source::Systemd)
    }

    /// Takes the socket an `fd://` spec names: by number, or by its `LISTEN_FDNAMES` name. A
    /// number that is not in the set is claimed straight from the process (a supervisor may
    /// pass a socket without any variable).
    pub(crate) fn take_fd(&mut self, r: &FdRef) -> Result<Entry, Error> {
        let pos = match r {
            FdRef::Num(n) => self.entries.iter().position(|e| e.fd == *n),
            FdRef::Name(name) => self
                .entries
                .iter()
                .position(|e| e.name.as_deref() == Some(name.as_str())),
        };
        if let Some(i) = pos {
            return Ok(self.entries.remove(i));
        }
        match r {
            FdRef::Num(n) => {
                let socket = fd::claim(*n)?;
                let addr = describe(*n, &socket)?;
                Ok(Entry {
                    fd: *n,
                    addr,
                    source: Source::Upgrade,
                    name: None,
                    socket,
                })
            }
            FdRef::Name(name) => {
                let known: Vec<String> =
                    self.entries.iter().filter_map(|e| e.name.clone()).collect();
                Err(Error::new(format!(
                    "no inherited socket is named {name:?} (LISTEN_FDNAMES has {known:?})"
                )))
            }
        }
    }

    /// Takes the TCP socket listening on `addr`, if one was inherited.
    pub(crate) fn take_tcp(&mut self, addr: SocketAddr) -> Option<Entry> {
        let i = self.entries.iter().position(|e| match e.addr {
            InheritedAddr::Tcp(a) => a.ip() == addr.ip() && a.port() == addr.port(),
            _ => false,
        })?;
        Some(self.entries.remove(i))
    }

    /// Takes the Unix socket bound to `path`, if one was inherited.
    pub(crate) fn take_unix(&mut self, path: &Path) -> Option<Entry> {
        let want = absolute(path);
        let i = self
            .entries
            .iter()
            .position(|e| matches!(&e.addr, InheritedAddr::Unix(p) if *p == want))?;
        Some(self.entries.remove(i))
    }

    /// Closes every socket no listener took, with a warning for each.
    pub fn close_unused(self) {
        for e in self.entries {
            tracing::warn!(
                fd = e.fd,
                "closing an inherited socket ({}) that no --listen spec uses",
                e.addr
            );
        }
    }
}

impl std::fmt::Display for InheritedAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            InheritedAddr::Tcp(a) => write!(f, "tcp://{a}"),
            InheritedAddr::Unix(p) => write!(f, "unix:{}", p.display()),
            InheritedAddr::UnixOther(s) => write!(f, "unix:{s}"),
        }
    }
}

/// The address of an inherited socket; refuses families other than IPv4, IPv6 and Unix.
fn describe(fd: RawFd, s: &Socket) -> Result<InheritedAddr, Error> {
    let local = s
        .local_addr()
        .map_err(|e| Error::with(format!("fd {fd}: getsockname"), e))?;
    if let Some(a) = local.as_socket() {
        return Ok(InheritedAddr::Tcp(a));
    }
    if local.is_unix() {
        if let Some(p) = local.as_pathname() {
            return Ok(InheritedAddr::Unix(absolute(p)));
        }
        if let Some(name) = local.as_abstract_namespace() {
            return Ok(InheritedAddr::UnixOther(format!(
                "@{}",
                String::from_utf8_lossy(name)
            )));
        }
        return Ok(InheritedAddr::UnixOther(format!(
            "(unnamed, fd {})",
            s.as_raw_fd()
        )));
    }
    Err(Error::new(format!(
        "fd {fd} is a socket of address family {}, not TCP (IPv4/IPv6) or Unix",
        local.family()
    )))
}

/// `p` against the current directory when relative (no symlinks resolved: a socket path is
/// compared as it was bound).
fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(fds: Option<&str>, pid: Option<&str>, inherit: Option<&str>) -> Vars {
        Vars {
            listen_fds: fds.map(String::from),
            listen_pid: pid.map(String::from),
            listen_fdnames: None,
            inherit_fds: inherit.map(String::from),
            inherit_fdnames: None,
        }
    }

    #[test]
    fn variables_that_take_nothing() {
        // Nothing set, zero descriptors, or meant for another process: no descriptor is
        // touched (these tests never claim one: the test harness owns its descriptors).
        assert!(Inherited::from_vars(&Vars::default()).unwrap().is_empty());
        let me = std::process::id().to_string();
        assert!(Inherited::from_vars(&vars(Some("0"), Some(&me), None))
            .unwrap()
            .is_empty());
        assert!(Inherited::from_vars(&vars(Some("2"), Some("1"), None))
            .unwrap()
            .is_empty());
        assert!(Inherited::from_vars(&vars(Some("2"), None, None))
            .unwrap()
            .is_empty());
        assert!(Inherited::from_vars(&vars(None, None, Some(" , ")))
            .unwrap()
            .is_empty());
    }

    #[test]
    fn malformed_variables() {
        let me = std::process::id().to_string();
        let e = Inherited::from_vars(&vars(Some("two"), Some(&me), None)).unwrap_err();
        assert!(e.to_string().contains("LISTEN_FDS=\"two\""), "{e}");
        let e = Inherited::from_vars(&vars(Some("-1"), Some(&me), None)).unwrap_err();
        assert!(e.to_string().contains("out of range"), "{e}");
        // Refused before descriptor 3 is looked at.
        let e = Inherited::from_vars(&vars(None, None, Some("3,x"))).unwrap_err();
        assert!(
            e.to_string().contains("\"x\" is not a descriptor number"),
            "{e}"
        );
        let e = Inherited::from_vars(&vars(None, None, Some("1"))).unwrap_err();
        assert!(e.to_string().contains("standard input"), "{e}");
    }
}
