//! The server: listeners, the accept loops, connection bookkeeping, lifespan and shutdown.

use bytes::BytesMut;
use pagi::{App, Scheme, ServerAddr, State};
use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::task::AbortHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{Config, LifespanMode, ProxyProtocol};
use crate::error::{Error, Reject};
use crate::io::{Io, Prefixed};
use crate::listener::inherit::Inherited;
use crate::listener::{bind_with, BindOptions, Bound, Handover, ListenAddr, ListenSpec, StdBound};
use crate::proto::h1;
use crate::proxy_protocol::{self as pp, Detect};
use crate::tls::Tls;

/// What every connection of a server shares.
#[derive(Debug)]
pub(crate) struct Shared<A> {
    pub(crate) app: Arc<A>,
    pub(crate) config: Config,
    pub(crate) state: State,
    /// Cancelled when the server starts a graceful shutdown: requests get `Connection: close`.
    pub(crate) graceful: CancellationToken,
    /// Cancelled when idle connections are to close at once (a shutdown; not a worker's
    /// retirement, where they stay until their next request or keep-alive timeout).
    pub(crate) idle_close: CancellationToken,
}

/// Who is on the other end of a connection, and where it arrived.
#[derive(Clone, Debug)]
pub(crate) struct Peer {
    pub(crate) client: Option<SocketAddr>,
    pub(crate) server: ServerAddr,
    pub(crate) scheme: Scheme,
    /// What the TLS handshake negotiated (TLS connections only).
    pub(crate) tls: Option<Arc<pagi::TlsInfo>>,
}

/// Builds a [`Server`].
///
/// ```no_run
/// # async fn demo() -> Result<(), pagi_server::Error> {
/// use pagi::{BoxError, Headers, Receiver, Scope, SendEvent, Sender};
///
/// async fn app(scope: Scope, _rx: Receiver, tx: Sender) -> Result<(), BoxError> {
///     if let Scope::Http(_) = scope {
///         tx.send(SendEvent::start(200, Headers::new())).await?;
///         tx.send(SendEvent::body("hi", false)).await?;
///     }
///     Ok(())
/// }
///
/// let server = pagi_server::Server::builder(app).listen("127.0.0.1:8000")?.bind().await?;
/// server.run().await
/// # }
/// ```
#[derive(Debug)]
pub struct Builder<A> {
    app: A,
    config: Config,
    listen: Vec<(ListenSpec, Option<Vec<StdBound>>)>,
    inherited: Inherited,
}

impl<A: App> Builder<A> {
    /// Adds a listener (`host:port`, `[v6]:port`, `unix:PATH` or a path). Repeatable.
    pub fn listen(mut self, spec: &str) -> Result<Self, Error> {
        self.listen.push((spec.parse()?, None));
        Ok(self)
    }

    /// Adds a parsed listener.
    pub fn listen_spec(mut self, spec: ListenSpec) -> Self {
        self.listen.push((spec, None));
        self
    }

    /// Adds a listener that is already bound (by a `--workers` master, or handed over): the
    /// sockets `spec` was bound to. `spec` still decides TLS.
    pub fn listen_bound(mut self, spec: ListenSpec, sockets: Vec<StdBound>) -> Self {
        self.listen.push((spec, Some(sockets)));
        self
    }

    /// Sockets inherited from systemd or an old master (see [`Inherited::from_env`]): `fd://`
    /// specs take theirs from here, and TCP/Unix specs adopt one with the same address instead
    /// of binding anew. [`Builder::bind`] closes the ones no spec used, with a warning.
    pub fn inherit(mut self, inherited: Inherited) -> Self {
        self.inherited = inherited;
        self
    }

    /// Replaces all settings.
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// Changes settings in place.
    pub fn configure(mut self, f: impl FnOnce(&mut Config)) -> Self {
        f(&mut self.config);
        self
    }

    /// Binds every listener. Fails on the first that cannot be bound (nothing stays bound).
    /// Must be called inside a Tokio runtime.
    pub async fn bind(mut self) -> Result<Server<A>, Error> {
        if self.listen.is_empty() {
            return Err(Error::new("no listener given"));
        }
        let tls = self
            .config
            .tls
            .as_ref()
            .map(|t| Tls::new(t, self.config.http2.enabled))
            .transpose()?
            .map(Arc::new);
        let mut bound = Vec::new();
        for (spec, sockets) in self.listen {
            let use_tls = match (spec.tls, &tls) {
                (Some(true), None) => {
                    return Err(Error::new(format!(
                        "{spec} asks for TLS, but no certificate is set (--ssl-cert and --ssl-key)"
                    )))
                }
                (Some(on), _) => on,
                (None, t) => t.is_some(),
            };
            if use_tls && matches!(spec.addr, ListenAddr::Unix(_)) {
                tracing::info!("{spec}: TLS on a Unix socket");
            }
            let sockets = match sockets {
                Some(s) => s,
                None => {
                    let opts = BindOptions {
                        backlog: self.config.backlog,
                        socket_mode: self.config.socket_mode,
                        reuse_port: self.config.reuse_port,
                    };
                    bind_with(&spec, &opts, &mut self.inherited)?
                }
            };
            for b in sockets {
                bound.push((b.into_tokio()?, if use_tls { tls.clone() } else { None }));
            }
        }
        std::mem::take(&mut self.inherited).close_unused();
        Ok(Server {
            app: Arc::new(self.app),
            config: self.config,
            bound,
            tls,
            ctl: Control::default(),
            on_ready: None,
        })
    }
}

/// A bound server; [`Server::run`] serves until shut down.
pub struct Server<A> {
    app: Arc<A>,
    config: Config,
    bound: Vec<(Bound, Option<Arc<Tls>>)>,
    tls: Option<Arc<Tls>>,
    ctl: Control,
    on_ready: Option<Box<dyn FnOnce() + Send>>,
}

impl<A: std::fmt::Debug> std::fmt::Debug for Server<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("app", &self.app)
            .field("config", &self.config)
            .field("bound", &self.bound)
            .field("tls", &self.tls)
            .finish_non_exhaustive()
    }
}

/// What a [`Handle`] controls a server with.
#[derive(Clone, Debug, Default)]
struct Control {
    /// Stops accepting and starts the drain.
    stop: CancellationToken,
    /// Set before `stop` for a retirement (idle connections are not closed at once).
    retire: Arc<std::sync::atomic::AtomicBool>,
    /// Cuts the connections still open (a fast stop, or the end of the drain).
    abort: CancellationToken,
}

/// Controls a running server from elsewhere.
#[derive(Clone, Debug)]
pub struct Handle {
    ctl: Control,
    tls: Option<Arc<Tls>>,
}

impl Handle {
    /// Starts the graceful shutdown: stop accepting, close idle connections, let requests in
    /// flight finish (within the shutdown timeout), answering them with `Connection: close`.
    pub fn shutdown(&self) {
        self.ctl.stop.cancel();
    }

    /// Starts a retirement: a graceful shutdown for a server whose listeners other processes
    /// go on serving (a `--workers` worker being replaced). It differs in idle keep-alive
    /// connections: they are not closed at once, which would race with a request the client
    /// may be sending at that moment, but stay open until their next request (answered with
    /// `Connection: close`) or their keep-alive timeout.
    pub fn retire(&self) {
        self.ctl.retire.store(true, Ordering::Relaxed);
        self.ctl.stop.cancel();
    }

    /// Stops at once: no new connections, and the open ones are cut without waiting for the
    /// requests in flight. Lifespan shutdown still runs (bounded by the shutdown timeout).
    pub fn shutdown_now(&self) {
        self.ctl.abort.cancel();
        self.ctl.stop.cancel();
    }

    /// Whether the server has a TLS certificate (some listener may use it).
    pub fn has_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Re-reads the TLS certificate and key files: new handshakes use them, established
    /// connections go on with the old ones, and sessions made with the old certificate are no
    /// longer resumed. On an error the old ones stay in use; without TLS it is an error.
    pub fn reload_tls(&self) -> Result<(), Error> {
        match &self.tls {
            Some(t) => t.reload(),
            None => Err(Error::new("no TLS certificate is configured")),
        }
    }
}

/// Where a server listens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LocalAddr {
    /// A TCP address (with the real port when bound to port 0).
    Tcp(SocketAddr),
    /// A Unix socket path.
    Unix(PathBuf),
}

impl<A: App> Server<A> {
    /// Starts building a server around `app`.
    pub fn builder(app: A) -> Builder<A> {
        Builder {
            app,
            config: Config::default(),
            listen: Vec::new(),
            inherited: Inherited::none(),
        }
    }

    /// The bound listeners, in listen order (for handing them to another process: see
    /// [`Handover::raw_fd`], [`Handover::set_inheritable`] and [`Handover::disarm_unlink`]).
    pub fn listeners(&self) -> impl Iterator<Item = &Bound> {
        self.bound.iter().map(|(b, _)| b)
    }

    /// The Unix socket files this server made (or adopted for a `unix:` spec) and removes when
    /// it stops; sockets taken by `fd://` are not listed.
    pub fn socket_files(&self) -> Vec<PathBuf> {
        self.listeners()
            .filter_map(|b| b.socket_file().map(PathBuf::from))
            .collect()
    }

    /// Runs `f` once the server is ready: lifespan startup has finished and every listener
    /// accepts. (The `--daemonize` parent waits for this.)
    pub fn on_ready(mut self, f: impl FnOnce() + Send + 'static) -> Self {
        self.on_ready = Some(Box::new(f));
        self
    }

    /// The bound addresses, in listen order.
    pub fn local_addrs(&self) -> Vec<LocalAddr> {
        self.bound
            .iter()
            .map(|(b, _)| match b {
                Bound::Tcp(_, a) => LocalAddr::Tcp(*a),
                Bound::Unix(_, g) => LocalAddr::Unix(g.path().to_owned()),
            })
            .collect()
    }

    /// A handle that stops [`Server::run`].
    pub fn handle(&self) -> Handle {
        Handle {
            ctl: self.ctl.clone(),
            tls: self.tls.clone(),
        }
    }

    /// Serves until [`Handle::shutdown`].
    pub async fn run(self) -> Result<(), Error> {
        let stop = self.ctl.stop.clone();
        self.run_until(async move { stop.cancelled().await }).await
    }

    /// Serves until `signal` completes, then shuts down gracefully: stop accepting (Unix socket
    /// files are removed), close idle connections, let in-flight requests finish within the
    /// shutdown timeout, cut the rest, then run lifespan shutdown.
    pub async fn run_until(self, signal: impl Future<Output = ()>) -> Result<(), Error> {
        let Server {
            app,
            config,
            bound,
            tls,
            ctl,
            on_ready,
        } = self;
        let stop = ctl.stop.clone();
        let state = State::shared();
        let lifespan = crate::lifespan::startup(
            &*app,
            config.lifespan,
            config.lifespan_startup_timeout,
            config.worker,
            state.clone(),
        )
        .await?;
        let shared = Arc::new(Shared {
            app,
            config,
            state: state.copy(),
            graceful: CancellationToken::new(),
            idle_close: CancellationToken::new(),
        });
        let conns = Arc::new(Conns::default());
        let tracker = TaskTracker::new();
        let mut accepts = Vec::new();
        for (b, tls) in bound {
            tracing::info!("listening on {}", b.describe(tls.is_some()));
            accepts.push(tokio::spawn(accept_loop(
                b,
                tls,
                shared.clone(),
                conns.clone(),
                tracker.clone(),
                stop.clone(),
            )));
        }
        if let Some(f) = on_ready {
            f();
        }
        let watcher = tls.as_ref().and_then(|t| {
            let interval = t.watch_interval?;
            let t = t.clone();
            Some(tokio::spawn(async move {
                loop {
                    tokio::time::sleep(interval).await;
                    t.reload_if_changed();
                }
            }))
        });
        tokio::select! {
            _ = signal => {}
            _ = stop.cancelled() => {}
        }
        let retire = ctl.retire.load(Ordering::Relaxed) && !ctl.abort.is_cancelled();
        tracing::info!(
            "{}: no new connections, finishing requests in flight",
            if retire { "retiring" } else { "shutting down" }
        );
        stop.cancel();
        for a in accepts {
            let _ = a.await;
        }
        shared.graceful.cancel();
        if !retire {
            shared.idle_close.cancel();
        }
        tracker.close();
        let timeout = shared.config.shutdown_timeout;
        let ended = tokio::select! {
            r = tokio::time::timeout(timeout, tracker.wait()) => r.is_ok(),
            _ = ctl.abort.cancelled() => false,
        };
        if !ended {
            let n = conns.abort_all();
            if ctl.abort.is_cancelled() {
                tracing::info!(connections = n, "fast stop: closing the open connections");
            } else {
                tracing::warn!(
                    connections = n,
                    ?timeout,
                    "shutdown timeout: closing the connections still open"
                );
            }
            tracker.wait().await;
        }
        if let Some(w) = watcher {
            w.abort();
        }
        if let Some(l) = lifespan {
            l.shutdown(timeout).await;
        }
        tracing::info!("stopped");
        Ok(())
    }
}

impl<A> Builder<A> {
    /// The settings so far.
    pub fn settings(&self) -> &Config {
        &self.config
    }
}

/// Open connections: a count for `max_connections` and abort handles for the hard stop.
#[derive(Debug, Default)]
struct Conns {
    open: AtomicUsize,
    rejecting: AtomicUsize,
    next: AtomicU64,
    aborts: Mutex<HashMap<u64, AbortHandle>>,
    /// The second (since the Unix epoch) of the last "max connections" warning, and how many
    /// were held back since: at most one such line a second, so a flood cannot fill the log.
    busy_logged: AtomicU64,
    busy_quiet: AtomicU64,
}

impl Conns {
    /// Warns that a connection was turned away for `max_connections`, at most once a second.
    fn warn_busy(&self, what: &str) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let last = self.busy_logged.load(Ordering::Relaxed);
        if now != last
            && self
                .busy_logged
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            let held = self.busy_quiet.swap(0, Ordering::Relaxed);
            tracing::warn!(
                more_since_last_warning = held,
                "max connections reached; {what}"
            );
        } else {
            self.busy_quiet.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn abort_all(&self) -> usize {
        let map = self.aborts.lock().unwrap_or_else(PoisonError::into_inner);
        map.values().for_each(AbortHandle::abort);
        map.len()
    }
}

/// Decrements the open count and forgets the abort handle when a connection task ends.
struct ConnGuard {
    conns: Arc<Conns>,
    id: u64,
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        self.conns.open.fetch_sub(1, Ordering::Relaxed);
        self.conns
            .aborts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.id);
    }
}

async fn accept_loop<A: App>(
    bound: Bound,
    tls: Option<Arc<Tls>>,
    shared: Arc<Shared<A>>,
    conns: Arc<Conns>,
    tracker: TaskTracker,
    stop: CancellationToken,
) {
    let scheme = if tls.is_some() {
        Scheme::Https
    } else {
        Scheme::Http
    };
    match bound {
        Bound::Tcp(l, local) => loop {
            let accepted = tokio::select! {
                _ = stop.cancelled() => return,
                r = l.accept() => r,
            };
            match accepted {
                Ok((stream, addr)) => {
                    let cfg = &shared.config;
                    if !crate::access::connection_allowed(
                        addr.ip(),
                        &cfg.allow_from,
                        &cfg.deny_from,
                    ) {
                        // Closed before anything is read or written.
                        tracing::debug!(client = %addr, "connection refused (allow_from/deny_from)");
                        drop(stream);
                        continue;
                    }
                    let _ = stream.set_nodelay(true);
                    let server = stream.local_addr().unwrap_or(local);
                    let peer = Peer {
                        client: Some(addr),
                        server: ServerAddr::Tcp(server),
                        scheme,
                        tls: None,
                    };
                    start_conn(stream, peer, &tls, &shared, &conns, &tracker);
                }
                Err(e) => accept_error(e).await,
            }
        },
        Bound::Unix(l, guard) => {
            let server = ServerAddr::Unix(Arc::from(guard.path()));
            loop {
                let accepted = tokio::select! {
                    _ = stop.cancelled() => break,
                    r = l.accept() => r,
                };
                match accepted {
                    Ok((stream, _)) => {
                        let peer = Peer {
                            client: None,
                            server: server.clone(),
                            scheme,
                            tls: None,
                        };
                        start_conn(stream, peer, &tls, &shared, &conns, &tracker);
                    }
                    Err(e) => accept_error(e).await,
                }
            }
            drop(l);
            drop(guard);
        }
    }
}

async fn accept_error(e: std::io::Error) {
    // Out of file descriptors (or similar): pause instead of spinning on the error, and say so
    // at most once a second (the pause repeats every 100 ms while it lasts).
    if matches!(e.raw_os_error(), Some(code) if code == 24 || code == 23) {
        static LAST: AtomicU64 = AtomicU64::new(0);
        static QUIET: AtomicU64 = AtomicU64::new(0);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let last = LAST.load(Ordering::Relaxed);
        if now != last
            && LAST
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            let held = QUIET.swap(0, Ordering::Relaxed);
            tracing::warn!(
                error = %e,
                more_since_last_warning = held,
                "accept: out of file descriptors; pausing accepts 100 ms at a time"
            );
        } else {
            QUIET.fetch_add(1, Ordering::Relaxed);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    } else {
        tracing::debug!(error = %e, "accept failed");
    }
}

/// Starts serving an accepted connection: the PROXY protocol header comes first (when it is
/// on), then the TLS handshake on TLS listeners, then HTTP, all on the connection's own task.
fn start_conn<S: Io, A: App>(
    io: S,
    peer: Peer,
    tls: &Option<Arc<Tls>>,
    shared: &Arc<Shared<A>>,
    conns: &Arc<Conns>,
    tracker: &TaskTracker,
) {
    let max = shared.config.max_connections;
    if max > 0 && conns.open.load(Ordering::Relaxed) >= max {
        match tls {
            None => reject_busy(io, conns, tracker),
            // A cleartext 503 means nothing to a TLS client: just close.
            Some(_) => conns.warn_busy("closing a new TLS connection"),
        }
        return;
    }
    let shared = shared.clone();
    // Four task types, so that a cleartext connection's future does not carry TLS state.
    let proxy = shared.config.proxy_protocol != ProxyProtocol::Off;
    match (proxy, tls.clone()) {
        (false, None) => spawn_conn(conns, tracker, h1::conn::serve(io, shared, peer)),
        (false, Some(tls)) => spawn_conn(conns, tracker, serve_tls(io, peer, tls, shared)),
        (true, None) => spawn_conn(conns, tracker, async move {
            if let Some((io, peer)) = proxy_header(io, peer, &shared).await {
                h1::conn::serve(io, shared, peer).await;
            }
        }),
        (true, Some(tls)) => spawn_conn(conns, tracker, async move {
            if let Some((io, peer)) = proxy_header(io, peer, &shared).await {
                serve_tls(io, peer, tls, shared).await;
            }
        }),
    }
}

/// The TLS handshake (bounded by its timeout), then HTTP over it.
async fn serve_tls<S: Io, A: App>(io: S, mut peer: Peer, tls: Arc<Tls>, shared: Arc<Shared<A>>) {
    match tls.accept(io).await {
        Ok((stream, info)) => {
            peer.tls = Some(info);
            if stream.get_ref().1.alpn_protocol() == Some(b"h2") {
                // Boxed: keeps the HTTP/2 driver's state out of HTTP/1.1 connections.
                Box::pin(crate::proto::h2::conn::serve(stream, &shared, &peer, None)).await;
            } else {
                h1::conn::serve(stream, shared, peer).await;
            }
        }
        Err(e) => tracing::debug!(client = ?peer.client, error = %e, "TLS handshake failed"),
    }
}

/// Why a connection is closed before its PROXY header is through.
enum ProxyFail {
    /// Closed (or reset) by the peer before sending a byte.
    Gone,
    /// Refused, for the reason given (logged at info).
    Refused(String),
}

/// Reads the PROXY protocol header a connection starts with (within `timeout_header_read`;
/// graceful shutdown ends the wait) and applies it to `peer`. Peers in `proxy_allow_from`
/// must send one; others must not. Returns the connection with the bytes read past the header
/// put back in front, or `None` when it is to be closed.
async fn proxy_header<S: Io, A>(
    mut io: S,
    mut peer: Peer,
    shared: &Shared<A>,
) -> Option<(Prefixed<S>, Peer)> {
    let cfg = &shared.config;
    let ip = match peer.server {
        ServerAddr::Unix(_) => None,
        ServerAddr::Tcp(_) => Some(peer.client?.ip()),
    };
    let trusted = cfg.proxy_allow_from.iter().any(|s| s.matches(ip));
    let mut buf = BytesMut::new();
    let read = read_proxy_header(&mut io, &mut buf, cfg.proxy_protocol, trusted);
    let result = tokio::select! {
        r = tokio::time::timeout(cfg.timeout_header_read, read) => r,
        _ = shared.idle_close.cancelled() => return None,
    };
    match result {
        Ok(Ok(header)) => {
            if let Some(client) = header.as_ref().and_then(pp::Header::client) {
                tracing::trace!(via = ?peer.client, ?client, "PROXY header");
                peer.client = client;
            }
            Some((Prefixed::new(buf.freeze(), io), peer))
        }
        Ok(Err(ProxyFail::Gone)) => None,
        Ok(Err(ProxyFail::Refused(why))) => {
            tracing::info!(client = ?peer.client, "closing the connection: {why}");
            None
        }
        // A connection that sent nothing at all is closed quietly, as idle HTTP ones are.
        Err(_) if buf.is_empty() || !trusted => None,
        Err(_) => {
            tracing::info!(
                client = ?peer.client,
                timeout = ?cfg.timeout_header_read,
                "closing the connection: its PROXY header did not complete in time"
            );
            None
        }
    }
}

/// Reads into `buf` until the start of the connection is known: a complete header from a
/// trusted peer (`Some(header)`), or the first bytes of an untrusted one that are not a header
/// (`None`). `buf` is left with the bytes read past the header.
async fn read_proxy_header<S: Io>(
    io: &mut S,
    buf: &mut BytesMut,
    mode: ProxyProtocol,
    trusted: bool,
) -> Result<Option<pp::Header>, ProxyFail> {
    loop {
        match (trusted, pp::detect(buf)) {
            (_, Detect::NeedMore) => {}
            (false, Detect::NotProxy) => return Ok(None),
            (false, _) => {
                return Err(ProxyFail::Refused(
                    "a PROXY header from a peer not in proxy_allow_from".into(),
                ))
            }
            (true, Detect::NotProxy) => {
                return Err(ProxyFail::Refused(
                    "no PROXY header from a peer in proxy_allow_from".into(),
                ))
            }
            (true, found) => {
                let version = if found == Detect::V1 {
                    pp::Version::V1
                } else {
                    pp::Version::V2
                };
                if !mode.accepts(version) {
                    return Err(ProxyFail::Refused(format!(
                        "a PROXY {version} header, but the server takes {mode} only"
                    )));
                }
                match pp::parse(buf) {
                    Ok(Some((header, n))) => {
                        bytes::Buf::advance(buf, n);
                        return Ok(Some(header));
                    }
                    Ok(None) => {}
                    Err(e) => return Err(ProxyFail::Refused(format!("bad PROXY header: {e}"))),
                }
            }
        }
        if buf.is_empty() {
            // Wait without a buffer, as idle HTTP connections do.
            // (Moving `&mut S` in keeps the future `Send` without `S: Sync`.)
            let io: &mut S = &mut *io;
            std::future::poll_fn(move |cx| io.poll_read_ready(cx))
                .await
                .map_err(|_| ProxyFail::Gone)?;
        }
        if buf.capacity() - buf.len() < 256 {
            buf.reserve(512);
        }
        match io.read_buf(buf).await {
            // Untrusted peers that leave after a few bytes are just clients going away.
            Ok(0) | Err(_) if buf.is_empty() || !trusted => return Err(ProxyFail::Gone),
            Ok(0) | Err(_) => {
                return Err(ProxyFail::Refused(
                    "the connection closed in the middle of its PROXY header".into(),
                ))
            }
            Ok(_) => {}
        }
    }
}

fn spawn_conn(
    conns: &Arc<Conns>,
    tracker: &TaskTracker,
    conn: impl Future<Output = ()> + Send + 'static,
) {
    conns.open.fetch_add(1, Ordering::Relaxed);
    let id = conns.next.fetch_add(1, Ordering::Relaxed);
    let guard = ConnGuard {
        conns: conns.clone(),
        id,
    };
    // Holding the map's lock while spawning orders the insert before the task's own removal.
    let mut map = conns.aborts.lock().unwrap_or_else(PoisonError::into_inner);
    let handle = tracker.spawn(async move {
        let _guard = guard;
        conn.await;
    });
    map.insert(id, handle.abort_handle());
}

/// Over `max_connections`: answer 503 with `Retry-After` and close. At most 256 of these run at
/// once; past that, connections are closed without an answer.
fn reject_busy<I: Io>(mut io: I, conns: &Arc<Conns>, tracker: &TaskTracker) {
    if conns.rejecting.fetch_add(1, Ordering::Relaxed) >= 256 {
        conns.rejecting.fetch_sub(1, Ordering::Relaxed);
        return;
    }
    conns.warn_busy("answering 503");
    let conns = conns.clone();
    tracker.spawn(async move {
        let bytes = h1::encode::with_date(|d| Reject::Unavailable.response(d));
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            io.write_all(&bytes).await?;
            io.shutdown().await?;
            let mut sink = [0u8; 1024];
            while tokio::io::AsyncReadExt::read(&mut io, &mut sink).await? > 0 {}
            Ok::<_, std::io::Error>(())
        })
        .await;
        conns.rejecting.fetch_sub(1, Ordering::Relaxed);
    });
}

/// Lifespan mode from its CLI name.
pub fn parse_lifespan(s: &str) -> Result<LifespanMode, Error> {
    match s {
        "auto" => Ok(LifespanMode::Auto),
        "on" => Ok(LifespanMode::On),
        "off" => Ok(LifespanMode::Off),
        _ => Err(Error::new(format!(
            "lifespan must be auto, on or off, not {s:?}"
        ))),
    }
}
