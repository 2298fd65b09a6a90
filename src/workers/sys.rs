//! The two operations of the worker model that Rust cannot check: `fork()` and taking
//! ownership of a file descriptor inherited by number. Everything else goes through safe `nix`
//! and `std` APIs.
#![allow(unsafe_code)]

use nix::unistd::Pid;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

use crate::error::Error;

/// Which side of a fork this is.
#[derive(Debug)]
pub(super) enum Forked {
    /// The parent (the master), with the child's pid.
    Parent(Pid),
    /// The child (a new worker).
    Child,
}

/// How many threads this process runs (from `/proc/self/status`); `None` if unknown.
fn thread_count() -> Option<usize> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|n| n.trim().parse().ok())
}

/// Forks the process. Refuses (with an error) when the process has more than one thread.
pub(super) fn fork() -> Result<Forked, Error> {
    if let Some(n) = thread_count().filter(|&n| n != 1) {
        return Err(Error::new(format!(
            "refusing to fork a worker: the master runs {n} threads (it must run one)"
        )));
    }
    // SAFETY: fork() is only unsound when other threads exist, because the child gets a copy
    // of their locks and allocator state without the threads that would release them. The
    // master never starts a thread (no Tokio runtime, no access-log writer: workers build
    // those after the fork), and the check above refuses to fork if one exists anyway. The
    // child goes straight into `worker::run` and ends with `process::exit`, never returning
    // into the master's loop.
    match unsafe { nix::unistd::fork() } {
        Ok(nix::unistd::ForkResult::Parent { child }) => Ok(Forked::Parent(child)),
        Ok(nix::unistd::ForkResult::Child) => Ok(Forked::Child),
        Err(e) => Err(Error::with("cannot fork a worker", std::io::Error::from(e))),
    }
}

/// Takes ownership of descriptor `raw`, which the process that started us left open for us and
/// named (in `PAGI_INHERIT_FDS`). Fails if it is not an open descriptor.
pub(super) fn inherited_fd(raw: RawFd) -> Result<OwnedFd, Error> {
    if raw < 3 {
        return Err(Error::new(format!(
            "inherited descriptor {raw} is stdin, stdout or stderr"
        )));
    }
    // Checked through /proc, so that no owner is made for a number that is not open.
    let open = std::fs::metadata(format!("/proc/self/fd/{raw}")).is_ok();
    if !open {
        return Err(Error::new(format!(
            "inherited descriptor {raw} is not open"
        )));
    }
    // SAFETY: `raw` is open (checked above), and nothing else in this process owns it: it was
    // inherited across exec, is named once in PAGI_INHERIT_FDS (the caller drops duplicates),
    // and this runs at master startup before any other descriptor is adopted or closed.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}
