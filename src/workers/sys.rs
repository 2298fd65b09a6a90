//! The one operation of the worker model that Rust cannot check: `fork()`. (Taking ownership
//! of inherited descriptor numbers is in `listener/fd.rs`.) Everything else goes through safe
//! `nix` and `std` APIs.
#![allow(unsafe_code)]

use nix::unistd::Pid;

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
