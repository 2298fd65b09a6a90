//! Pre-forked workers (`--workers N`, N ≥ 2): a master process binds every listener, forks N
//! workers before any runtime or thread exists, and supervises them; each worker runs its own
//! Tokio runtime, server and lifespan on the inherited listeners. The master never serves.
//!
//! Master ↔ worker:
//! - worker → master, one pipe per worker, single bytes: `.` heartbeat, `r` ready (lifespan
//!   startup done, every listener accepting), `m` "replace me" (max requests reached), and
//!   `f` + reason + `\n` before exiting with [`EXIT_STARTUP_FAILED`].
//! - master → worker, signals: TERM stop (idle connections closed at once), USR2 retire (a
//!   stop where idle keep-alive connections stay until their next request, answered with
//!   `Connection: close`, or their keep-alive timeout: other workers go on serving), QUIT stop
//!   now, USR1 reopen log files.
//!
//! Binary upgrade (SIGUSR2 to the master): the master runs its own executable again with the
//! same arguments; the new master inherits the listening sockets (their numbers in
//! `PAGI_INHERIT_FDS`) and the write end of a pipe (`PAGI_UPGRADE_READY_FD`), on which it writes
//! `R` once all its workers are ready. The old master then retires its workers and exits 0,
//! leaving the Unix socket files in place. If the new master exits first or is not ready in
//! time, the old master goes on serving.

mod master;
mod sys;
mod worker;

pub(crate) use master::run;

use std::time::Duration;

/// A worker's exit status when its startup failed (lifespan startup, TLS files, access log):
/// the master does not respawn it, and exits non-zero when no worker is left.
pub(crate) const EXIT_STARTUP_FAILED: i32 = 3;

/// The environment variable with the descriptor of the upgrade-ready pipe (see the module doc).
pub(crate) const UPGRADE_READY_FD: &str = "PAGI_UPGRADE_READY_FD";

/// Worker → master messages.
mod msg {
    pub(super) const BEAT: u8 = b'.';
    pub(super) const READY: u8 = b'r';
    pub(super) const RETIRE: u8 = b'm';
    pub(super) const FAILED: u8 = b'f';
}

/// The supervision settings from the command line.
#[derive(Clone, Debug)]
pub(crate) struct Options {
    /// How many workers.
    pub(crate) workers: u32,
    /// A worker silent this long is killed and replaced (0 = never).
    pub(crate) worker_timeout: Duration,
    /// Requests after which a worker is replaced (0 = never).
    pub(crate) max_requests: u64,
    /// Up to this many more, drawn per worker.
    pub(crate) max_requests_jitter: u64,
    /// Age after which a worker is replaced (0 = never).
    pub(crate) max_lifetime: Duration,
    /// Resident memory (bytes) above which a worker is replaced (0 = no limit).
    pub(crate) max_memory: u64,
    /// The per-worker drain time (`--shutdown-timeout`).
    pub(crate) shutdown_timeout: Duration,
    /// How long lifespan startup may take (`--lifespan-startup-timeout`).
    pub(crate) startup_timeout: Duration,
}

/// A cheap random number (jitter only; not for anything secret).
pub(crate) fn random() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    h.finish()
}
