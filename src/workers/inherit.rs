//! Listening sockets handed over by an old master on a binary upgrade (SIGUSR2):
//! `PAGI_INHERIT_FDS=fd1,fd2,...` names descriptors left open across the exec. Each is matched
//! to a `--listen` spec by its local address (TCP) or path (Unix socket); specs without one are
//! bound afresh, and inherited sockets that match no spec are closed.
//!
//! [`bind_or_adopt`] is the one entry point, so that the listener code that adopts inherited
//! descriptors in general (socket activation, `fd://N`) can replace it.

use socket2::Socket;
use std::net::{SocketAddr, ToSocketAddrs};

use crate::error::Error;
use crate::listener::{bind_std, bind_tcp, ListenAddr, ListenSpec, StdBound, UnixGuard};

/// The environment variable naming the inherited listening descriptors.
pub(crate) const INHERIT_FDS: &str = "PAGI_INHERIT_FDS";

/// Sockets inherited from an old master, not yet matched to a spec.
#[derive(Debug, Default)]
pub(super) struct Inherited(Vec<Socket>);

impl Inherited {
    /// Reads (and removes from the environment) `PAGI_INHERIT_FDS`.
    pub(super) fn from_env() -> Result<Inherited, Error> {
        let Some(list) = std::env::var_os(INHERIT_FDS) else {
            return Ok(Inherited::default());
        };
        // The master is single-threaded here, so changing the environment races with nothing.
        std::env::remove_var(INHERIT_FDS);
        let list = list.to_string_lossy().into_owned();
        let mut seen = Vec::new();
        let mut out = Vec::new();
        for part in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let raw: i32 = part
                .parse()
                .map_err(|_| Error::new(format!("{INHERIT_FDS}: {part:?} is not a number")))?;
            if seen.contains(&raw) {
                continue;
            }
            seen.push(raw);
            let sock = Socket::from(super::sys::inherited_fd(raw)?);
            sock.set_nonblocking(true)
                .map_err(|e| Error::with(format!("inherited descriptor {raw}"), e))?;
            out.push(sock);
        }
        Ok(Inherited(out))
    }

    fn take_tcp(&mut self, addr: SocketAddr) -> Option<Socket> {
        let i = self.0.iter().position(|s| {
            s.local_addr()
                .ok()
                .and_then(|a| a.as_socket())
                .is_some_and(|a| a == addr)
        })?;
        Some(self.0.swap_remove(i))
    }

    fn take_unix(&mut self, path: &std::path::Path) -> Option<Socket> {
        let i = self.0.iter().position(|s| {
            s.local_addr()
                .ok()
                .is_some_and(|a| a.as_pathname() == Some(path))
        })?;
        Some(self.0.swap_remove(i))
    }

    /// Closes the sockets no spec claimed, with a warning for each.
    pub(super) fn close_rest(self) {
        for s in self.0 {
            let addr = s.local_addr().ok().map(|a| format!("{a:?}"));
            tracing::warn!(
                address = addr.as_deref().unwrap_or("?"),
                "an inherited socket matches no --listen spec; closing it"
            );
        }
    }
}

/// Binds `spec`, taking the inherited sockets that match it instead of binding anew.
pub(super) fn bind_or_adopt(
    spec: &ListenSpec,
    backlog: u32,
    socket_mode: Option<u32>,
    inherited: &mut Inherited,
) -> Result<Vec<StdBound>, Error> {
    if inherited.0.is_empty() {
        return bind_std(spec, backlog, socket_mode);
    }
    match &spec.addr {
        ListenAddr::Tcp(hp) => {
            let addrs: Vec<SocketAddr> = hp
                .to_socket_addrs()
                .map_err(|e| Error::with(format!("cannot resolve {hp}"), e))?
                .collect();
            let mut out = Vec::new();
            for a in addrs {
                match inherited.take_tcp(a) {
                    Some(s) => {
                        tracing::info!("{spec}: using the inherited socket for {a}");
                        out.push(StdBound::Tcp(s.into(), a));
                    }
                    None => {
                        let l = bind_tcp(a, backlog)?;
                        let local = l.local_addr().map_err(|e| Error::with("local_addr", e))?;
                        out.push(StdBound::Tcp(l, local));
                    }
                }
            }
            if out.is_empty() {
                return Err(Error::new(format!("{hp} resolves to no address")));
            }
            Ok(out)
        }
        ListenAddr::Unix(path) => match inherited.take_unix(path) {
            Some(s) => {
                tracing::info!("{spec}: using the inherited socket");
                Ok(vec![StdBound::Unix(s.into(), UnixGuard::adopt(path)?)])
            }
            None => bind_std(spec, backlog, socket_mode),
        },
    }
}
