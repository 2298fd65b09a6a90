//! The one place that turns an inherited descriptor number into an owned descriptor.
//!
//! A listener handed over by systemd (`LISTEN_FDS`), a supervisor (`fd://N`) or an old master
//! during a hot upgrade (`PAGI_INHERIT_FDS`, and the pipe of `PAGI_UPGRADE_READY_FD`) arrives
//! as a bare number. Taking ownership of a number is `unsafe` in Rust (nothing proves that no one else owns it), so this module checks
//! everything it can before doing so, and each number is taken at most once per process.
#![allow(unsafe_code)]

use socket2::{SockRef, Socket, Type};
use std::collections::BTreeSet;
use std::os::fd::{BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::sync::{Mutex, PoisonError};

use crate::error::Error;

/// Descriptor numbers already taken by [`claim`] and [`claim_pipe`].
static CLAIMED: Mutex<BTreeSet<RawFd>> = Mutex::new(BTreeSet::new());

/// Takes ownership of inherited descriptor `fd`, which must be a listening stream socket
/// (TCP or Unix). It comes back close-on-exec; its other flags are as inherited.
///
/// Refused: stdio (0-2), a number already claimed, a closed descriptor, anything that is not
/// a socket, not a stream socket, or not listening. On a refusal the descriptor is left open.
pub(crate) fn claim(fd: RawFd) -> Result<Socket, Error> {
    take(fd, |b| check(fd, SockRef::from(&b))).map(Socket::from)
}

/// Takes ownership of inherited descriptor `fd`, which must be a pipe (the binary upgrade's
/// ready pipe, `PAGI_UPGRADE_READY_FD`). Same refusals and close-on-exec as [`claim`].
pub(crate) fn claim_pipe(fd: RawFd) -> Result<OwnedFd, Error> {
    take(fd, |b| {
        let st = nix::sys::stat::fstat(b).map_err(|e| Error::with(format!("fd {fd}: fstat"), e))?;
        if st.st_mode & libc::S_IFMT == libc::S_IFIFO {
            Ok(())
        } else {
            Err(Error::new(format!("fd {fd} is not a pipe")))
        }
    })
}

/// The checks every claim makes, then `is_ok` on the borrowed descriptor, then ownership.
fn take(
    fd: RawFd,
    is_ok: impl FnOnce(BorrowedFd<'_>) -> Result<(), Error>,
) -> Result<OwnedFd, Error> {
    if fd < 3 {
        return Err(Error::new(format!(
            "fd {fd} is standard input, output or error, not an inherited socket or pipe"
        )));
    }
    let mut claimed = CLAIMED.lock().unwrap_or_else(PoisonError::into_inner);
    if claimed.contains(&fd) {
        return Err(Error::new(format!("fd {fd} is already in use")));
    }
    // SAFETY: F_GETFD only reads the descriptor's flags; any integer is a valid argument and a
    // descriptor that is not open gives EBADF. Nothing is borrowed or owned.
    if unsafe { libc::fcntl(fd, libc::F_GETFD) } == -1 {
        return Err(Error::with(
            format!("fd {fd} was not inherited (it is not open)"),
            std::io::Error::last_os_error(),
        ));
    }
    // SAFETY: the descriptor is open (checked just above) and the borrow ends with `is_ok`,
    // which only queries it (getsockopt, getsockname, fstat) and never closes it.
    is_ok(unsafe { BorrowedFd::borrow_raw(fd) })?;
    claimed.insert(fd);
    // SAFETY: the descriptor is open and of the kind the caller checked. The process inherited
    // it (its number came from LISTEN_FDS, PAGI_INHERIT_FDS, PAGI_UPGRADE_READY_FD or an fd://
    // listen spec, so it was open before this process made any descriptor of its own, and
    // nothing in this crate makes sockets or pipes other than through owning types).
    // `CLAIMED` guarantees that this is the only `OwnedFd` ever made from this number here, so
    // it is closed exactly once.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    nix::fcntl::fcntl(
        &owned,
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
    )
    .map_err(|e| Error::with(format!("fd {fd}: cannot set close-on-exec"), e))?;
    Ok(owned)
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
