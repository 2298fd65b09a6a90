//! A worker process: its own Tokio runtime, server and lifespan on the listeners the master
//! bound, heartbeats and "ready" to the master through a pipe, and the worker signals.

use nix::sys::signal::{SigSet, Signal};
use pagi::{App, Receiver, Scope, Sender};
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::{msg, Options, EXIT_STARTUP_FAILED};
use crate::cli::Cli;
use crate::error::Error;
use crate::listener::{ListenSpec, StdBound};
use crate::process::Credentials;

/// What the master gives a worker besides the listeners.
#[derive(Debug)]
pub(super) struct Setup {
    /// Its slot number (1-based).
    pub(super) slot: u32,
    /// The write end of its pipe to the master.
    pub(super) pipe: OwnedFd,
    /// `--user`/`--group`: dropped to once the listeners are registered and TLS files read.
    pub(super) creds: Option<Credentials>,
    /// The master's pid.
    pub(super) master: nix::unistd::Pid,
}

/// The write end of the pipe to the master. Writes never block (the pipe is non-blocking);
/// a full pipe (a stuck master) just loses the message.
#[derive(Debug)]
struct ToMaster(OwnedFd);

impl ToMaster {
    fn send(&self, bytes: &[u8]) {
        let _ = nix::unistd::write(&self.0, bytes);
    }

    fn failed(&self, why: &Error) {
        let line = why.to_string().replace('\n', " ");
        let mut m = Vec::with_capacity(line.len() + 2);
        m.push(msg::FAILED);
        m.extend_from_slice(line.as_bytes());
        m.push(b'\n');
        self.send(&m);
    }
}

/// The signals a worker handles; the others of the master's set stay blocked (ignored): INT
/// (a Ctrl-C reaches the whole process group, and the master turns it into TERM), HUP, TTIN and
/// TTOU (meant for the master).
fn handled() -> SigSet {
    let mut s = SigSet::empty();
    for sig in [
        Signal::SIGTERM,
        Signal::SIGQUIT,
        Signal::SIGUSR1,
        Signal::SIGUSR2,
        Signal::SIGCHLD,
    ] {
        s.add(sig);
    }
    s
}

/// Runs worker `slot` to the end; returns the exit status.
pub(super) fn run<A: App>(
    cli: &Cli,
    app: A,
    listeners: Vec<(ListenSpec, Vec<StdBound>)>,
    setup: Setup,
    opts: &Options,
) -> i32 {
    let Setup {
        slot,
        pipe,
        creds,
        master,
    } = setup;
    let pipe = Arc::new(ToMaster(pipe));
    let rt = match crate::cli::runtime(cli.threads) {
        Ok(rt) => rt,
        Err(e) => {
            pipe.failed(&e);
            tracing::error!("worker {slot}: {e}");
            return EXIT_STARTUP_FAILED;
        }
    };
    // The server's own log lines (listening, lifespan, drain) say which worker they come from.
    let span = tracing::info_span!("worker", n = slot);
    let code = rt.block_on(tracing::Instrument::instrument(
        serve(cli, app, listeners, (slot, creds, master), pipe, opts),
        span,
    ));
    // Tasks still running (a stuck lifespan task, say) must not hold the exit up.
    rt.shutdown_timeout(Duration::from_millis(100));
    code
}

async fn serve<A: App>(
    cli: &Cli,
    app: A,
    listeners: Vec<(ListenSpec, Vec<StdBound>)>,
    (slot, creds, master): (u32, Option<Credentials>, nix::unistd::Pid),
    pipe: Arc<ToMaster>,
    opts: &Options,
) -> i32 {
    use tokio::signal::unix::{signal, SignalKind};
    let fail = |e: Error| {
        tracing::error!("worker {slot}: {e}");
        pipe.failed(&e);
        EXIT_STARTUP_FAILED
    };
    // Handlers first, then unblock: a signal sent meanwhile waits in the kernel.
    let signals = (
        signal(SignalKind::terminate()),
        signal(SignalKind::quit()),
        signal(SignalKind::user_defined2()),
        signal(SignalKind::user_defined1()),
    );
    let (Ok(mut term), Ok(mut quit), Ok(mut retire), Ok(mut usr1)) = signals else {
        return fail(Error::new("cannot install the worker's signal handlers"));
    };
    if let Err(e) = handled().thread_unblock() {
        return fail(Error::with(
            "cannot unblock signals",
            std::io::Error::from(e),
        ));
    }
    if !opts.worker_timeout.is_zero() {
        let beat =
            (opts.worker_timeout / 4).clamp(Duration::from_millis(100), Duration::from_secs(1));
        let p = pipe.clone();
        tokio::spawn(async move {
            loop {
                p.send(&[msg::BEAT]);
                tokio::time::sleep(beat).await;
            }
        });
    }
    let counted = Counted {
        app,
        seen: AtomicU64::new(0),
        limit: request_limit(opts),
        pipe: pipe.clone(),
    };
    let (builder, reopen) = match crate::cli::server_builder(cli, counted) {
        Ok(b) => b,
        Err(e) => return fail(e),
    };
    let mut builder = builder.configure(|c| c.worker = Some(slot));
    for (spec, sockets) in listeners {
        builder = builder.listen_bound(spec, sockets);
    }
    let server = match builder.bind().await {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    if let Some(c) = &creds {
        if let Err(e) = drop_privileges(c, master) {
            return fail(e);
        }
    }
    let p = pipe.clone();
    let server = server.on_ready(move || p.send(&[msg::READY]));
    let handle = server.handle();
    let h = handle.clone();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = term.recv() => {
                    tracing::info!("worker {slot}: SIGTERM: stopping");
                    h.shutdown();
                }
                _ = retire.recv() => {
                    tracing::info!("worker {slot}: retiring (another worker takes over)");
                    h.retire();
                }
                _ = quit.recv() => {
                    tracing::info!("worker {slot}: SIGQUIT: stopping now");
                    h.shutdown_now();
                }
                _ = usr1.recv() => {
                    if let Some(r) = &reopen {
                        r.reopen();
                    }
                }
            }
        }
    });
    match server.run().await {
        Ok(()) => 0,
        Err(e) => fail(e),
    }
}

/// `--user`/`--group` in a worker (every worker, respawned ones too, as the master keeps its
/// privileges). Changing credentials clears the parent-death signal, so it is asked for again.
fn drop_privileges(c: &Credentials, master: nix::unistd::Pid) -> Result<(), Error> {
    c.apply()?;
    if let Err(e) = nix::sys::prctl::set_pdeathsig(Signal::SIGTERM) {
        tracing::warn!("cannot ask for a signal on the master's death: {e}");
    }
    if nix::unistd::getppid() != master {
        return Err(Error::new("the master is gone"));
    }
    Ok(())
}

/// This worker's request budget: `--max-requests` plus a random share of the jitter.
fn request_limit(opts: &Options) -> Option<u64> {
    if opts.max_requests == 0 {
        return None;
    }
    let jitter = match opts.max_requests_jitter {
        0 => 0,
        j => super::random() % (j + 1),
    };
    Some(opts.max_requests + jitter)
}

/// Counts the app's requests (every scope but lifespan) and, at the limit, asks the master
/// once for a replacement (the worker serves on until the replacement is ready). Without a
/// limit it only forwards.
struct Counted<A> {
    app: A,
    seen: AtomicU64,
    limit: Option<u64>,
    pipe: Arc<ToMaster>,
}

impl<A: App> App for Counted<A> {
    type Future = A::Future;

    fn call(&self, scope: Scope, receive: Receiver, send: Sender) -> Self::Future {
        if let Some(limit) = self.limit {
            if !matches!(scope, Scope::Lifespan(_))
                && self.seen.fetch_add(1, Ordering::Relaxed) + 1 == limit
            {
                tracing::info!(
                    requests = limit,
                    "max requests reached: asking for a replacement"
                );
                self.pipe.send(&[msg::RETIRE]);
            }
        }
        self.app.call(scope, receive, send)
    }
}
