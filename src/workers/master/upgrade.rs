//! Binary upgrade (SIGUSR2): the old master's side (run the new one with the listening
//! sockets and wait for its "ready") and the new master's side (`PAGI_UPGRADE_READY_FD`).

use nix::fcntl::{fcntl, FcntlArg, FdFlag, OFlag};
use nix::unistd::Pid;
use pagi::App;
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Instant;

use super::{sys_err, Master};
use crate::error::Error;
use crate::listener::inherit::{INHERIT_ENV, INHERIT_NAMES_ENV};
use crate::listener::{fd, FdRef, Handover, ListenAddr, StdBound};
use crate::workers::UPGRADE_READY_FD;

/// A new master on its way (we are the old one).
#[derive(Debug)]
pub(super) struct Upgrade {
    pub(super) pid: Pid,
    pub(super) pipe: Option<OwnedFd>,
    pub(super) since: Instant,
}

impl<A: App> Master<A> {
    pub(super) fn start_upgrade(&mut self, now: Instant) {
        if let Some(u) = &self.upgrade {
            tracing::warn!(
                "master: SIGUSR2 ignored: an upgrade (new master pid {}) is under way",
                u.pid
            );
            return;
        }
        match self.spawn_new_master() {
            Ok(u) => {
                tracing::info!(
                    "master: SIGUSR2: binary upgrade: new master pid {} started; waiting for its workers",
                    u.pid
                );
                self.upgrade = Some(Upgrade { since: now, ..u });
            }
            Err(e) => tracing::error!("master: SIGUSR2: binary upgrade failed: {e}"),
        }
    }

    fn spawn_new_master(&self) -> Result<Upgrade, Error> {
        let exe = self
            .exe
            .clone()
            .ok_or_else(|| Error::new("the path of this executable is unknown"))?;
        let (read, write) = nix::unistd::pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK)
            .map_err(|e| sys_err("pipe", e))?;
        let socks: Vec<&StdBound> = self.listeners.iter().flat_map(|(_, s)| s).collect();
        let list: Vec<String> = socks.iter().map(|s| s.raw_fd().to_string()).collect();
        // The systemd names `fd://NAME` specs used (LISTEN_FDNAMES is not passed on).
        let names: Vec<&str> = self
            .listeners
            .iter()
            .flat_map(|(spec, s)| {
                let name = match &spec.addr {
                    ListenAddr::Fd(FdRef::Name(n)) => n.as_str(),
                    _ => "",
                };
                s.iter().map(move |_| name)
            })
            .collect();
        // Inheritable only while the new master is spawned (the master runs no other thread).
        // The write end of the pipe stays ours (close-on-exec) until then too.
        for s in &socks {
            s.set_inheritable(true)?;
        }
        fcntl(&write, FcntlArg::F_SETFD(FdFlag::empty())).map_err(|e| sys_err("fcntl", e))?;
        let mut cmd = std::process::Command::new(&exe);
        cmd.args(std::env::args_os().skip(1))
            .env(INHERIT_ENV, list.join(","))
            .env(INHERIT_NAMES_ENV, names.join(":"))
            .env(UPGRADE_READY_FD, write.as_raw_fd().to_string());
        if self.cli.daemonize {
            // Already in the background: the new master must not daemonize again (its
            // foreground half would exit at once and look like a failed upgrade).
            cmd.env(crate::process::DAEMON_ENV, "1");
        }
        let child = cmd.spawn();
        for s in &socks {
            let _ = s.set_inheritable(false);
        }
        drop(write);
        let child = child.map_err(|e| Error::with(format!("cannot run {}", exe.display()), e))?;
        Ok(Upgrade {
            pid: Pid::from_raw(child.id() as i32),
            pipe: Some(read),
            since: Instant::now(),
        })
    }

    pub(super) fn read_upgrade(&mut self) {
        let Some(u) = &mut self.upgrade else { return };
        let Some(p) = &u.pipe else { return };
        let mut buf = [0u8; 16];
        match nix::unistd::read(p, &mut buf) {
            Ok(n) if n > 0 && buf[..n].contains(&b'R') => {
                let pid = u.pid;
                self.upgrade = None;
                tracing::info!(
                    "binary upgrade: new master pid {pid} is ready; retiring this master's workers"
                );
                self.handed_over = true;
                self.begin_stop(Instant::now(), false);
            }
            Ok(0) => {
                // The new master closed the pipe without "ready": it is exiting (reaped soon).
                u.pipe = None;
            }
            _ => {}
        }
    }
}

/// `PAGI_UPGRADE_READY_FD`, when an old master started us; removed from the environment.
pub(super) fn take_ready_fd() -> Result<Option<OwnedFd>, Error> {
    let Some(v) = std::env::var_os(UPGRADE_READY_FD) else {
        return Ok(None);
    };
    // Single-threaded here: changing the environment races with nothing.
    std::env::remove_var(UPGRADE_READY_FD);
    let raw: i32 = v
        .to_string_lossy()
        .parse()
        .map_err(|_| Error::new(format!("{UPGRADE_READY_FD} is not a descriptor number")))?;
    fd::claim_pipe(raw)
        .map(Some)
        .map_err(|e| Error::new(format!("{UPGRADE_READY_FD}: {e}")))
}
