//! The master: binds, forks, supervises. Single-threaded and without a runtime: signals arrive
//! through a signalfd, and one `poll` waits on it, on every worker's pipe and on the upgrade
//! pipe, waking at least every [`TICK`] for timers (backoff, heartbeats, deadlines).

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{kill, SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use pagi::App;
use std::collections::HashMap;
use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, Instant};

use super::sys::{fork, Forked};
use super::{Options, EXIT_STARTUP_FAILED};
use crate::cli::{Cli, Setup};
use crate::error::Error;
use crate::listener::{bind_with, BindOptions, Handover, ListenSpec, StdBound};
use crate::process::{self, Credentials, PidFile};

mod messages;
mod upgrade;

use messages::{parse_messages, read_pipe};
use upgrade::{take_ready_fd, Upgrade};

/// The longest the loop sleeps.
const TICK: Duration = Duration::from_millis(100);
/// A worker that lived this long before crashing resets its slot's backoff.
const BACKOFF_RESET: Duration = Duration::from_secs(10);
/// The longest respawn delay.
const BACKOFF_MAX: Duration = Duration::from_secs(10);
/// Added to the shutdown timeout before a stopping worker is killed.
const KILL_MARGIN: Duration = Duration::from_secs(5);
/// Added to the lifespan startup timeout for a new master (binary upgrade) to be ready.
const UPGRADE_MARGIN: Duration = Duration::from_secs(30);
/// How often a worker's memory use is read (with `--max-worker-memory`).
const MEMORY_CHECK: Duration = Duration::from_secs(1);
/// How long a fast stop (QUIT) waits before killing.
const FAST_STOP: Duration = Duration::from_secs(3);

/// Runs the master until it stops; `Err` when no worker could start.
pub(crate) fn run<A: App>(cli: Cli, app: A, setup: Setup) -> Result<(), Error> {
    let opts = cli.worker_options();
    let mut master = Master::new(cli, app, opts, setup)?;
    master.main_loop()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Forked, not ready yet.
    Starting,
    /// Serving.
    Ready,
    /// Told to retire or stop; its exit is expected.
    Leaving,
}

#[derive(Debug)]
struct Worker {
    pid: Pid,
    slot: u32,
    generation: u64,
    pipe: Option<OwnedFd>,
    /// An incomplete failure message.
    partial: Vec<u8>,
    failure: Option<String>,
    started: Instant,
    last_beat: Instant,
    state: State,
    /// When it was told to leave.
    told: Option<Instant>,
    /// Killed by the master (hung, or late); its exit is a crash to respawn unless leaving.
    killed: bool,
    /// The worker this one replaces once it is ready (rolling restart, recycling).
    replaces: Option<Pid>,
    /// Wants a replacement (max requests, lifetime).
    wants_retire: bool,
    /// Extra lifetime drawn for this worker (so workers do not all recycle at once).
    lifetime_jitter: Duration,
    /// When its memory use was last read.
    memory_checked: Instant,
}

impl Worker {
    fn describe(&self) -> String {
        format!("worker {} (pid {})", self.slot, self.pid)
    }
}

#[derive(Debug, Default)]
struct Slot {
    /// Quick crashes in a row.
    crashes: u32,
    /// Not before this.
    respawn_at: Option<Instant>,
    /// Its worker failed at startup: not respawned (until SIGHUP).
    failed: Option<String>,
}

#[derive(Debug)]
struct Stopping {
    deadline: Instant,
    fast: bool,
    killed: bool,
    /// A TERM or INT asked for this stop (a second one then stops at once). Not so after a
    /// hand-over to a new master: the first TERM there must not cut the draining requests.
    by_signal: bool,
}

struct Master<A> {
    /// The master's own pid.
    pid: Pid,
    cli: Cli,
    /// The app, for the workers (taken in a worker right after the fork).
    app: Option<A>,
    opts: Options,
    listeners: Vec<(ListenSpec, Vec<StdBound>)>,
    signals: Option<SignalFd>,
    workers: Vec<Worker>,
    slots: HashMap<u32, Slot>,
    target: u32,
    generation: u64,
    rolling: bool,
    stopping: Option<Stopping>,
    upgrade: Option<Upgrade>,
    /// Our executable, as found at startup (an upgrade runs what is at that path now).
    exe: Option<std::path::PathBuf>,
    /// We are a new master from an upgrade: tell the old one here once all workers are ready.
    tell_ready: Option<OwnedFd>,
    /// The sockets went to a new master: keep the Unix socket files.
    handed_over: bool,
    /// `--user`/`--group`: each worker drops to them after the fork (the master keeps its
    /// privileges, as nginx's does: it can rewrite a root-owned pid file and hand its sockets
    /// to a new master).
    creds: Option<Credentials>,
    /// `--daemonize`: we are the background process and have not told the foreground yet.
    daemon_pending: bool,
    /// This master's `--pid-file` (removed at the end if it still names us).
    pid_file: Option<PidFile>,
    /// A new master (binary upgrade): the Unix socket files (listener, socket) it takes over
    /// from the old master once ready; until then they stay the old master's.
    upgrade_files: Vec<(usize, usize)>,
}

impl<A> std::fmt::Debug for Master<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Master")
            .field("workers", &self.workers)
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

/// The signals the master handles (blocked, and read from its signalfd).
fn master_signals() -> SigSet {
    let mut s = SigSet::empty();
    for sig in [
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGQUIT,
        Signal::SIGHUP,
        Signal::SIGUSR1,
        Signal::SIGUSR2,
        Signal::SIGTTIN,
        Signal::SIGTTOU,
        Signal::SIGCHLD,
    ] {
        s.add(sig);
    }
    s
}

fn sys_err(what: &str, e: Errno) -> Error {
    Error::with(what.to_owned(), std::io::Error::from(e))
}

impl<A: App> Master<A> {
    fn new(cli: Cli, app: A, opts: Options, setup: Setup) -> Result<Self, Error> {
        // Blocked before anything else, so that none of these is lost or acts by default.
        let mask = master_signals();
        mask.thread_block()
            .map_err(|e| sys_err("cannot block signals", e))?;
        let signals = SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
            .map_err(|e| sys_err("cannot create a signalfd", e))?;
        let tell_ready = take_ready_fd()?;
        let Setup {
            creds,
            mut inherited,
            listeners: specs,
            daemon,
        } = setup;
        let config = cli.config()?;
        let opts_bind = BindOptions {
            backlog: config.backlog,
            socket_mode: config.socket_mode,
            reuse_port: config.reuse_port,
        };
        // A new master (binary upgrade) owns neither the socket files nor the pid file until
        // it has told the old master it is ready: if it fails before that, the old master
        // serves on, and its socket files and pid file must stay as they are.
        let upgrading = tell_ready.is_some();
        let mut listeners = Vec::new();
        let mut upgrade_files = Vec::new();
        for spec in specs {
            let sockets = bind_with(&spec, &opts_bind, &mut inherited)?;
            for (j, s) in sockets.iter().enumerate() {
                if upgrading && s.socket_file().is_some() {
                    s.disarm_unlink();
                    upgrade_files.push((listeners.len(), j));
                }
            }
            listeners.push((spec, sockets));
            for s in &listeners[listeners.len() - 1].1 {
                tracing::info!("master: listening on {}", s.describe());
                if let (Some(c), Some(f)) = (&creds, s.socket_file()) {
                    c.chown(f)?;
                }
            }
        }
        inherited.close_unused();
        // Written before the first fork (by a new master: once it is ready, see
        // `take_over_from_old_master`); the old master then leaves the file alone.
        let pid_file = match upgrading {
            true => None,
            false => cli.pid_file.as_deref().map(PidFile::create).transpose()?,
        };
        tracing::info!(
            "master pid {}: starting {} workers",
            std::process::id(),
            opts.workers
        );
        Ok(Master {
            pid: nix::unistd::getpid(),
            target: opts.workers,
            cli,
            app: Some(app),
            opts,
            listeners,
            signals: Some(signals),
            workers: Vec::new(),
            slots: HashMap::new(),
            generation: 0,
            rolling: false,
            stopping: None,
            upgrade: None,
            exe: std::env::current_exe().ok(),
            tell_ready,
            handed_over: false,
            creds,
            daemon_pending: daemon,
            pid_file,
            upgrade_files,
        })
    }

    fn main_loop(&mut self) -> Result<(), Error> {
        loop {
            self.reap();
            let now = Instant::now();
            self.supervise(now);
            if let Some(done) = self.finished() {
                return done;
            }
            self.wait_events();
        }
    }

    /// Waits up to a tick for signals and worker messages, and handles them.
    fn wait_events(&mut self) {
        let (sig_ready, worker_ready, upgrade_ready) = {
            let mut fds = Vec::with_capacity(self.workers.len() + 2);
            let sfd = self.signals.as_ref().map(|s| s.as_fd());
            if let Some(fd) = sfd {
                fds.push(PollFd::new(fd, PollFlags::POLLIN));
            }
            let up = self
                .upgrade
                .as_ref()
                .and_then(|u| u.pipe.as_ref())
                .map(|p| p.as_fd());
            if let Some(fd) = up {
                fds.push(PollFd::new(fd, PollFlags::POLLIN));
            }
            let mut which = Vec::new();
            for (i, w) in self.workers.iter().enumerate() {
                if let Some(p) = &w.pipe {
                    fds.push(PollFd::new(p.as_fd(), PollFlags::POLLIN));
                    which.push(i);
                }
            }
            let tick = PollTimeout::try_from(TICK).unwrap_or(PollTimeout::MAX);
            if poll(&mut fds, tick).is_err() {
                return; // EINTR: go round
            }
            let ready = |fd: &PollFd<'_>| fd.revents().is_some_and(|r| !r.is_empty());
            let mut i = 0;
            let sig = sfd.is_some() && ready(&fds[0]);
            if sfd.is_some() {
                i += 1;
            }
            let upr = up.is_some() && ready(&fds[i]);
            if up.is_some() {
                i += 1;
            }
            let workers: Vec<usize> = which
                .into_iter()
                .zip(&fds[i..])
                .filter(|(_, fd)| ready(fd))
                .map(|(w, _)| w)
                .collect();
            (sig, workers, upr)
        };
        if sig_ready {
            self.read_signals();
        }
        if upgrade_ready {
            self.read_upgrade();
        }
        for i in worker_ready {
            self.read_worker(i);
        }
    }

    fn read_signals(&mut self) {
        loop {
            let Some(sfd) = &self.signals else { return };
            let info = match sfd.read_signal() {
                Ok(Some(info)) => info,
                Ok(None) | Err(_) => return,
            };
            let Ok(sig) = Signal::try_from(info.ssi_signo as i32) else {
                continue;
            };
            self.on_signal(sig);
        }
    }

    fn on_signal(&mut self, sig: Signal) {
        let now = Instant::now();
        match sig {
            Signal::SIGCHLD => {} // reaped at the top of the loop
            Signal::SIGTERM | Signal::SIGINT => match &mut self.stopping {
                Some(s) if !s.fast && !s.by_signal => {
                    s.by_signal = true;
                    tracing::info!("master: {sig}: already stopping gracefully");
                }
                Some(s) if !s.fast => {
                    tracing::warn!("master: second {sig}: stopping now");
                    self.begin_stop(now, true);
                }
                Some(_) => {}
                None => {
                    tracing::info!("master: {sig}: stopping the workers gracefully");
                    self.begin_stop(now, false);
                    if let Some(s) = &mut self.stopping {
                        s.by_signal = true;
                    }
                }
            },
            Signal::SIGQUIT => {
                tracing::info!("master: SIGQUIT: stopping now");
                self.begin_stop(now, true);
            }
            _ if self.stopping.is_some() => {
                tracing::info!("master: {sig} ignored while stopping");
            }
            Signal::SIGHUP => {
                self.generation += 1;
                self.rolling = true;
                for s in self.slots.values_mut() {
                    s.failed = None;
                    s.crashes = 0;
                    s.respawn_at = None;
                }
                tracing::info!(
                    "master: SIGHUP: rolling restart of {} workers, one at a time",
                    self.target
                );
            }
            Signal::SIGTTIN => {
                self.target += 1;
                tracing::info!("master: SIGTTIN: {} workers", self.target);
            }
            Signal::SIGTTOU => {
                if self.target > 1 {
                    self.target -= 1;
                    tracing::info!("master: SIGTTOU: {} workers", self.target);
                } else {
                    tracing::info!("master: SIGTTOU: already at one worker");
                }
            }
            Signal::SIGUSR1 => {
                tracing::info!("master: SIGUSR1: workers reopen their log files");
                self.signal_all(Signal::SIGUSR1);
            }
            Signal::SIGUSR2 => self.start_upgrade(now),
            _ => {}
        }
    }

    fn signal_all(&self, sig: Signal) {
        for w in &self.workers {
            let _ = kill(w.pid, sig);
        }
    }

    /// Stops every worker: TERM (or QUIT when `fast`; USR2 after a hand-over, as the new
    /// master's workers serve on), then KILL at the deadline.
    fn begin_stop(&mut self, now: Instant, fast: bool) {
        let (sig, wait) = if fast {
            (Signal::SIGQUIT, FAST_STOP)
        } else if self.handed_over {
            (Signal::SIGUSR2, self.opts.shutdown_timeout + KILL_MARGIN)
        } else {
            (Signal::SIGTERM, self.opts.shutdown_timeout + KILL_MARGIN)
        };
        for w in &mut self.workers {
            w.state = State::Leaving;
            w.told.get_or_insert(now);
            let _ = kill(w.pid, sig);
        }
        // The master's copies of the listeners close now: once the workers stop accepting,
        // new connections are refused, and Unix socket files go (unless handed over).
        let listeners = std::mem::take(&mut self.listeners);
        if self.handed_over {
            for (_, sockets) in &listeners {
                sockets.iter().for_each(Handover::disarm_unlink);
            }
        }
        drop(listeners);
        if let Some(u) = self.upgrade.take() {
            tracing::info!("master: stopping the new master (pid {}) too", u.pid);
            let _ = kill(u.pid, Signal::SIGTERM);
        }
        self.stopping = Some(Stopping {
            deadline: now + wait,
            fast,
            killed: false,
            by_signal: false,
        });
    }

    /// Reaps every exited child.
    fn reap(&mut self) {
        loop {
            let st = match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) | Err(_) => return,
                Ok(st) => st,
            };
            let (pid, code, how) = match st {
                WaitStatus::Exited(pid, code) => {
                    (pid, Some(code), format!("exited with status {code}"))
                }
                WaitStatus::Signaled(pid, sig, _) => (pid, None, format!("was killed by {sig}")),
                _ => continue,
            };
            if self.upgrade.as_ref().is_some_and(|u| u.pid == pid) {
                tracing::error!(
                    "binary upgrade failed: the new master (pid {pid}) {how} before its workers were ready; this master goes on serving"
                );
                self.upgrade = None;
                continue;
            }
            if let Some(i) = self.workers.iter().position(|w| w.pid == pid) {
                let mut w = self.workers.swap_remove(i);
                self.drain_pipe(&mut w);
                self.on_exit(w, code, &how);
            }
        }
    }

    fn on_exit(&mut self, w: Worker, code: Option<i32>, how: &str) {
        let now = Instant::now();
        if w.state == State::Leaving && !w.killed {
            tracing::info!("{} {how} (it was leaving)", w.describe());
            return;
        }
        if w.state == State::Leaving {
            tracing::warn!("{} {how} (killed: it did not stop in time)", w.describe());
            return;
        }
        if self.stopping.is_some() {
            tracing::info!("{} {how}", w.describe());
            return;
        }
        if code == Some(EXIT_STARTUP_FAILED) {
            let why = w
                .failure
                .clone()
                .unwrap_or_else(|| "see its log above".to_owned());
            if let Some(old) = w.replaces {
                tracing::error!(
                    "{} failed to start ({why}); pid {old} goes on serving; rolling restart stopped",
                    w.describe()
                );
                self.abort_roll();
            } else {
                tracing::error!(
                    "{} failed to start ({why}); not respawning it",
                    w.describe()
                );
                self.slots.entry(w.slot).or_default().failed = Some(why);
            }
            return;
        }
        let slot = self.slots.entry(w.slot).or_default();
        if now.duration_since(w.started) >= BACKOFF_RESET {
            slot.crashes = 1;
        } else {
            slot.crashes += 1;
        }
        let delay = match slot.crashes {
            0 | 1 => Duration::ZERO,
            n => (Duration::from_millis(100) * 2u32.saturating_pow(n - 2)).min(BACKOFF_MAX),
        };
        slot.respawn_at = Some(now + delay);
        let why = if w.killed { " (killed: hung)" } else { "" };
        if delay.is_zero() {
            tracing::warn!("{} {how}{why}; respawning", w.describe());
        } else {
            tracing::warn!("{} {how}{why}; respawning in {delay:?}", w.describe());
        }
    }

    /// Stops a rolling restart or recycling that cannot go on: the current workers count as
    /// new, and none asks for a replacement.
    fn abort_roll(&mut self) {
        for w in &mut self.workers {
            w.generation = self.generation;
            w.wants_retire = false;
            w.replaces = None;
        }
        self.rolling = false;
    }

    fn read_worker(&mut self, i: usize) {
        let Some(w) = self.workers.get_mut(i) else {
            return;
        };
        let msgs = read_pipe(w);
        self.on_messages(i, &msgs);
    }

    /// Reads what an exited worker left in its pipe (its failure reason).
    fn drain_pipe(&mut self, w: &mut Worker) {
        let msgs = read_pipe(w);
        parse_messages(w, &msgs);
    }

    fn on_messages(&mut self, i: usize, bytes: &[u8]) {
        let w = &mut self.workers[i];
        let was_ready = w.state == State::Ready;
        parse_messages(w, bytes);
        if w.wants_retire && w.state == State::Ready && w.replaces.is_none() {
            tracing::debug!("{} asks for a replacement", w.describe());
        }
        if !was_ready && w.state == State::Ready {
            let replaces = w.replaces.take();
            tracing::info!("{} ready", w.describe());
            if let Some(old) = replaces {
                self.retire(old, "replaced");
            }
        }
    }

    /// Tells a worker to retire (its connections drain while others serve).
    fn retire(&mut self, pid: Pid, why: &str) {
        if let Some(w) = self.workers.iter_mut().find(|w| w.pid == pid) {
            if w.state != State::Leaving {
                tracing::info!("{} retiring ({why})", w.describe());
                w.state = State::Leaving;
                w.told = Some(Instant::now());
                let _ = kill(w.pid, Signal::SIGUSR2);
            }
        }
    }

    /// Timers and the worker count: hung and late workers, recycling, spawning, retiring.
    fn supervise(&mut self, now: Instant) {
        if let Some(s) = &mut self.stopping {
            if now >= s.deadline && !s.killed {
                s.killed = true;
                for w in &mut self.workers {
                    tracing::warn!("{} did not stop in time; killing it", w.describe());
                    w.killed = true;
                    let _ = kill(w.pid, Signal::SIGKILL);
                }
            }
            return;
        }
        let upgrade_limit = self.opts.startup_timeout + UPGRADE_MARGIN;
        if let Some(u) = self
            .upgrade
            .take_if(|u| now.duration_since(u.since) > upgrade_limit)
        {
            tracing::error!(
                "binary upgrade failed: the new master (pid {}) was not ready within {upgrade_limit:?}; stopping it, this master goes on serving",
                u.pid
            );
            let _ = kill(u.pid, Signal::SIGTERM);
        }
        let timeout = self.opts.worker_timeout;
        let drain = self.opts.shutdown_timeout + KILL_MARGIN;
        let lifetime = self.opts.max_lifetime;
        let memory = self.opts.max_memory;
        for w in &mut self.workers {
            if w.killed {
                continue;
            }
            match w.state {
                State::Leaving => {
                    if w.told.is_some_and(|t| now.duration_since(t) > drain) {
                        tracing::warn!(
                            "{} did not finish draining in time; killing it",
                            w.describe()
                        );
                        w.killed = true;
                        let _ = kill(w.pid, Signal::SIGKILL);
                    }
                }
                State::Starting | State::Ready => {
                    if !timeout.is_zero() && now.duration_since(w.last_beat) > timeout {
                        tracing::error!(
                            "{} sent no heartbeat for {timeout:?}: hung; killing it",
                            w.describe()
                        );
                        w.killed = true;
                        let _ = kill(w.pid, Signal::SIGKILL);
                    } else if w.state == State::Ready
                        && !lifetime.is_zero()
                        && !w.wants_retire
                        && now.duration_since(w.started) > lifetime + w.lifetime_jitter
                    {
                        tracing::info!("{} reached --max-worker-lifetime", w.describe());
                        w.wants_retire = true;
                    } else if w.state == State::Ready
                        && memory > 0
                        && !w.wants_retire
                        && now.duration_since(w.memory_checked) >= MEMORY_CHECK
                    {
                        w.memory_checked = now;
                        if let Some(rss) = rss_bytes(w.pid).filter(|&b| b > memory) {
                            tracing::info!(
                                "{} uses {} MiB (over --max-worker-memory)",
                                w.describe(),
                                rss >> 20
                            );
                            w.wants_retire = true;
                        }
                    }
                }
            }
        }
        // Fewer workers wanted (TTOU): retire the highest slots.
        let extra: Vec<Pid> = self
            .workers
            .iter()
            .filter(|w| w.slot > self.target && w.state != State::Leaving)
            .map(|w| w.pid)
            .collect();
        for pid in extra {
            self.retire(pid, "fewer workers");
        }
        // Every slot without a worker gets one.
        for slot in 1..=self.target {
            let s = self.slots.entry(slot).or_default();
            if s.failed.is_some() || s.respawn_at.is_some_and(|t| t > now) {
                continue;
            }
            let covered = self
                .workers
                .iter()
                .any(|w| w.slot == slot && w.state != State::Leaving && !w.killed);
            if !covered {
                self.spawn(slot, None);
            }
        }
        self.roll(now);
        self.maybe_tell_ready();
    }

    /// Rolling restart and recycling: one replacement at a time, started before the worker it
    /// replaces retires.
    fn roll(&mut self, now: Instant) {
        if self.workers.iter().any(|w| w.replaces.is_some()) {
            return; // one in flight
        }
        let next = self.workers.iter().find(|w| {
            w.state == State::Ready
                && !w.killed
                && w.slot <= self.target
                && (w.generation < self.generation || w.wants_retire)
                && !self
                    .slots
                    .get(&w.slot)
                    .is_some_and(|s| s.respawn_at.is_some_and(|t| t > now) || s.failed.is_some())
        });
        match next {
            Some(w) => {
                let (slot, pid) = (w.slot, w.pid);
                let why = if w.wants_retire {
                    "recycling"
                } else {
                    "rolling restart"
                };
                tracing::info!("{why}: starting a replacement for {}", w.describe());
                self.spawn(slot, Some(pid));
            }
            None => {
                if self.rolling
                    && !self
                        .workers
                        .iter()
                        .any(|w| w.generation < self.generation && w.state != State::Leaving)
                {
                    self.rolling = false;
                    tracing::info!("rolling restart complete");
                }
            }
        }
    }

    /// Once every slot has a ready worker: a new master (binary upgrade) tells the old one,
    /// and a `--daemonize` master tells the foreground process (which then exits 0).
    fn maybe_tell_ready(&mut self) {
        if self.tell_ready.is_none() && !self.daemon_pending {
            return;
        }
        let all = (1..=self.target).all(|slot| {
            self.workers
                .iter()
                .any(|w| w.slot == slot && w.state == State::Ready)
        });
        if all {
            if self.tell_ready.is_some() && !self.take_over_from_old_master() {
                return;
            }
            if let Some(fd) = self.tell_ready.take() {
                let _ = nix::unistd::write(&fd, b"R");
                tracing::info!("all workers ready; told the old master to retire its workers");
            }
            if std::mem::take(&mut self.daemon_pending) {
                tracing::info!("all workers ready; the daemon is running");
                process::daemon_ready();
            }
        }
    }

    /// A new master, ready: takes the pid file and the Unix socket files over from the old
    /// master. `false` (and stopping) when the pid file cannot be written: the old master
    /// then serves on.
    fn take_over_from_old_master(&mut self) -> bool {
        if let Some(path) = self.cli.pid_file.clone() {
            match PidFile::create(&path) {
                Ok(f) => self.pid_file = Some(f),
                Err(e) => {
                    tracing::error!("binary upgrade: {e}; stopping, the old master serves on");
                    self.begin_stop(Instant::now(), false);
                    return false;
                }
            }
        }
        for (i, j) in std::mem::take(&mut self.upgrade_files) {
            if let Some(g) = self.listeners.get(i).and_then(|l| l.1.get(j)?.guard()) {
                g.rearm();
            }
        }
        true
    }

    fn spawn(&mut self, slot: u32, replaces: Option<Pid>) {
        let now = Instant::now();
        let pipe = nix::unistd::pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK);
        let (read, write) = match pipe {
            Ok(p) => p,
            Err(e) => {
                tracing::error!("cannot create a pipe for worker {slot}: {e}; retrying in 1s");
                self.slots.entry(slot).or_default().respawn_at = Some(now + Duration::from_secs(1));
                return;
            }
        };
        match fork() {
            Ok(Forked::Child) => {
                drop(read);
                let code = self.become_worker(slot, write);
                std::process::exit(code);
            }
            Ok(Forked::Parent(pid)) => {
                drop(write);
                let jitter = match self.opts.max_lifetime.as_secs() / 10 {
                    0 => Duration::ZERO,
                    j => Duration::from_secs(super::random() % (j + 1)),
                };
                let w = Worker {
                    pid,
                    slot,
                    generation: self.generation,
                    pipe: Some(read),
                    partial: Vec::new(),
                    failure: None,
                    started: now,
                    last_beat: now,
                    state: State::Starting,
                    told: None,
                    killed: false,
                    replaces,
                    wants_retire: false,
                    lifetime_jitter: jitter,
                    memory_checked: now,
                };
                tracing::info!("{} started", w.describe());
                self.workers.push(w);
            }
            Err(e) => {
                tracing::error!("{e}; retrying in 1s");
                self.slots.entry(slot).or_default().respawn_at = Some(now + Duration::from_secs(1));
            }
        }
    }

    /// In the child right after the fork: drops what belongs to the master and runs the
    /// worker. Returns the exit status.
    fn become_worker(&mut self, slot: u32, pipe: OwnedFd) -> i32 {
        // A worker whose master dies (even by SIGKILL) stops gracefully instead of serving on
        // unsupervised.
        if let Err(e) = nix::sys::prctl::set_pdeathsig(Signal::SIGTERM) {
            tracing::warn!("worker {slot}: cannot ask for a signal on the master's death: {e}");
        }
        if nix::unistd::getppid() != self.pid {
            return 0; // the master died before that
        }
        self.signals = None;
        self.workers.clear(); // closes the other workers' pipes
        self.upgrade = None;
        self.tell_ready = None;
        self.pid_file = None; // the master's (dropping it here removes nothing)
        let listeners = std::mem::take(&mut self.listeners);
        for (_, sockets) in &listeners {
            // The master owns the socket files.
            sockets.iter().for_each(Handover::disarm_unlink);
        }
        if self.daemon_pending {
            // The foreground process waits for the master's word only.
            process::detach_stdio();
        }
        let Some(app) = self.app.take() else {
            return 1;
        };
        let setup = super::worker::Setup {
            slot,
            pipe,
            creds: self.creds.take(),
            master: self.pid,
        };
        super::worker::run(&self.cli, app, listeners, setup, &self.opts)
    }

    /// `Some` when the master is done: every worker gone after a stop, or none able to start.
    fn finished(&self) -> Option<Result<(), Error>> {
        if self.stopping.is_some() {
            if self.workers.is_empty() {
                tracing::info!("master: stopped");
                return Some(Ok(()));
            }
            return None;
        }
        if !self.workers.is_empty() {
            return None;
        }
        let failed: Vec<&String> = (1..=self.target)
            .filter_map(|s| self.slots.get(&s).and_then(|s| s.failed.as_ref()))
            .collect();
        if failed.len() == self.target as usize {
            let why = failed.first().map_or("", |s| s.as_str());
            return Some(Err(Error::new(format!("no worker could start: {why}"))));
        }
        None
    }
}

/// The resident memory of process `pid` (`VmRSS` in `/proc/PID/status`).
fn rss_bytes(pid: Pid) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .strip_suffix("kB")?
        .trim()
        .parse()
        .ok()?;
    Some(kb * 1024)
}
