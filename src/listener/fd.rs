//! The one place that turns an inherited descriptor number into an owned socket.
//!
//! A listener handed over by systemd (`LISTEN_FDS`), a supervisor (`fd://N`) or an old master
//! during a hot upgrade (`PAGI_INHERIT_FDS`) arrives as a bare number. Taking ownership of a
//! number is `unsafe` in Rust (nothing proves that no one else owns it), so this module checks
//! everything it can before doing so, and each number is taken at most once per process.
#![allow(unsafe_code)]

use socket2::{SockRef, Socket, Type};
use std::collections::BTreeSet;
use std::os::fd::{BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::sync::{Mutex, PoisonError};

use crate::error::Error;

/// Descriptor numbers already taken by [`claim`].
static CLAIMED: Mutex<BTreeSet<RawFd>> = Mutex::new(BTreeSet::new());

/// Takes ownership of inherited descriptor `fd`, which must be a listening stream socket
/// (TCP or Unix). It comes back close-on-exec; its other flags are as inherited.
///
/// Refused: stdio (0-2), a number already claimed, a closed descriptor, anything that is not
/// a socket, not a stream socket, or not listening. On a refusal the descriptor is left open.
pub(crate) fn claim(fd: RawFd) -> Result<Socket, Error> {
    if fd < 3 {
        return Err(Error::new(format!(
            "fd {fd} is standard input, output or error, not a listening socket"
        )));
    }
    let mut claimed = CLAIMED.lock().unwrap_or_else(PoisonError::into_inner);
    if claimed.contains(&fd) {
        return Err(Error::new(format!("fd {fd} is already used by a listener")));
    }
    // SAFETY: F_GETFD only reads the descriptor's flags; any integer is a valid argument and a
    // descriptor that is not open gives EBADF. Nothing is borrowed or owned.
    if unsafe { libc::fcntl(fd, libc::F_GETFD) } == -1 {
        return Err(Error::with(
            format!("fd {fd} was not inherited (it is not open)"),
            std::io::Error::last_os_error(),
        ));
    }
    // SAFETY: the descriptor is open (checked just above) and the borrow ends with `check`,
    // which only queries it with getsockopt/getsockname and never closes it.
    let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
    check(fd, SockRef::from(&borrowed))?;
    claimed.insert(fd);
    // SAFETY: the descriptor is open and is a listening stream socket. The process inherited it
    // (its number came from LISTEN_FDS, PAGI_INHERIT_FDS or an fd:// listen spec, so it was
    // open before this process made any socket of its own, and nothing in this crate makes
    // listening sockets other than through `bind`, which owns what it makes). `CLAIMED`
    // guarantees that this is the only `OwnedFd` ever made from this number here, so it is
    // closed exactly once.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    let sock = Socket::from(owned);
    sock.set_cloexec(true)
        .map_err(|e| Error::with(format!("fd {fd}: cannot set close-on-exec"), e))?;
    Ok(sock)
}

/// That the borrowed descriptor is a listening stream socket.
fn check(fd: RawFd, s: SockRef<'_>) -> Result<(), Error> {
    let ty = s.r#type().map_err(|e| {
        if e.raw_os_error() == Some(libc::ENOTSOCK) {
            Error::new(format!("fd {fd} is not a socket"))
        } else {
            Error::with(format!("fd {fd}: cannot read the socket type"), e)
        }
    })?;
    if ty != Type::STREAM {
        return Err(Error::new(format!(
            "fd {fd} is not a stream socket (a datagram or other kind of socket cannot serve HTTP)"
        )));
    }
    match s.is_listener() {
        Ok(true) => Ok(()),
        Ok(false) => Err(Error::new(format!(
            "fd {fd} is a socket that is not listening (with systemd, use Accept=no)"
        ))),
        Err(e) => Err(Error::with(
            format!("fd {fd}: cannot check SO_ACCEPTCONN"),
            e,
        )),
    }
}
