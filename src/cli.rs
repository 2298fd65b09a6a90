//! The `pagi-server` command line, usable around any app: [`main`].

use clap::Parser;
use pagi::App;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use pagi_middleware::access_log::{AccessLog, Format, Output, Reopen};
use pagi_middleware::forwarded::{ProxyHeaders, TrustedProxies, XForwardedFor};
use pagi_middleware::healthcheck::Healthcheck;
use pagi_middleware::lint::Lint;
use pagi_middleware::request_id::RequestId;
use pagi_middleware::trusted_hosts::TrustedHosts;
use pagi_middleware::{Either, Stack};

use crate::access::{Cidr, List, Source};
use crate::config::{Config, H2Cleartext, Http2Config, ProxyProtocol};
use crate::error::Error;
use crate::listener::inherit::{Inherited, Vars};
use crate::listener::{parse_mode, FdRef, ListenAddr, ListenSpec};
use crate::process::{self, Credentials, PidFile};
use crate::server::{parse_lifespan, Server};
use crate::tls::{ClientVerify, MinVersion, TlsConfig};

/// Command-line options (see the README for the full reference).
#[derive(Debug, Parser)]
#[command(name = "pagi-server", version, about = "A fast, strict server for PAGI apps", long_about = None)]
pub struct Cli {
    /// Where to listen: HOST:PORT, [V6ADDR]:PORT, tcp://HOST:PORT, unix:PATH, a path (starts
    /// with / or ., or is not HOST:PORT), or fd://N / fd://NAME (an inherited socket).
    /// Repeatable. Default: every socket systemd passed (LISTEN_FDS), else 127.0.0.1:8000.
    #[arg(long = "listen", short = 'l', value_name = "SPEC")]
    pub listen: Vec<String>,
    /// Set SO_REUSEPORT on TCP listeners: several servers may listen on one port and the
    /// kernel spreads connections among them.
    #[arg(long)]
    pub reuseport: bool,
    /// Write the server's pid to FILE once it listens (with --workers: the master's); removed
    /// when it stops. Refused if FILE names another running process.
    #[arg(long, value_name = "FILE")]
    pub pid_file: Option<std::path::PathBuf>,
    /// After binding, run as this user (name or uid; needs root). Unix socket files are given
    /// to it first. Supplementary groups: the user's. With --workers, every worker drops and the
    /// master keeps its privileges.
    #[arg(long, value_name = "USER")]
    pub user: Option<String>,
    /// After binding, run as this group (name or gid; default: --user's primary group).
    #[arg(long, value_name = "GROUP")]
    pub group: Option<String>,
    /// Process umask, octal (e.g. 027), set before anything is created: it decides the mode of
    /// Unix socket files when --socket-mode is not given.
    #[arg(long, value_name = "MASK", value_parser = crate::process::parse_umask)]
    pub umask: Option<u32>,
    /// Run in the background: the command returns (0) once the server serves (with --workers:
    /// every worker), or fails with the startup error. stdio goes to /dev/null (stderr is kept if it is a file).
    #[arg(long)]
    pub daemonize: bool,
    /// Permissions for Unix sockets, octal (e.g. 0660).
    #[arg(long, value_name = "MODE")]
    pub socket_mode: Option<String>,
    /// Listen backlog.
    #[arg(long, default_value_t = 2048)]
    pub backlog: u32,
    /// Runtime threads (1 = a single-threaded runtime). Default: the CPUs this process may use
    /// (with --workers: per worker).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Worker processes: a master binds the listeners and supervises N forked workers, each
    /// with its own runtime and lifespan. 0 or 1: a single process (no master).
    #[arg(long, short = 'w', default_value_t = 0, env = "WEB_CONCURRENCY")]
    pub workers: u32,
    /// A worker that sends no heartbeat for this long is killed and replaced (0 = never).
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub worker_timeout: Duration,
    /// A worker is replaced (gracefully, its replacement ready first) after this many requests
    /// (0 = never). Needs --workers 2 or more.
    #[arg(long, default_value_t = 0)]
    pub max_requests: u64,
    /// Each worker's limit is --max-requests plus a random 0..=N, so that they do not all
    /// recycle at once.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub max_requests_jitter: u64,
    /// A worker is replaced (gracefully) after running this long, plus up to a tenth more at
    /// random (0 = never). Needs --workers 2 or more.
    #[arg(long, default_value = "0s", value_parser = parse_duration)]
    pub max_worker_lifetime: Duration,
    /// A worker whose resident memory exceeds this many MiB is replaced (gracefully; checked
    /// every second; 0 = no limit). Needs --workers 2 or more.
    #[arg(long, default_value_t = 0, value_name = "MIB")]
    pub max_worker_memory: u64,
    /// Most open connections; more get 503 with Retry-After (0 = unlimited).
    #[arg(long, default_value_t = 1000)]
    pub max_connections: usize,
    /// Largest request body in bytes; more gets 413 (0 = unlimited).
    #[arg(long, default_value_t = 10_000_000)]
    pub max_body_size: u64,
    /// Longest request line in bytes; more gets 414.
    #[arg(long, default_value_t = 8192)]
    pub max_request_line: usize,
    /// Largest request head (request line and headers) in bytes; more gets 431.
    #[arg(long, default_value_t = 65536)]
    pub max_header_size: usize,
    /// Most header fields; more gets 431 (at most 512).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u16).range(1..=512))]
    pub max_header_count: u16,
    /// Longest single header field in bytes; more gets 431.
    #[arg(long, default_value_t = 8192)]
    pub max_field_size: usize,
    /// Idle keep-alive connections are closed after this (e.g. 5s, 500ms).
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub timeout_keep_alive: Duration,
    /// A request head must arrive within this from its first byte (slowloris guard; 408).
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub timeout_header_read: Duration,
    /// A request whose client sends no body byte while the app waits for one, or takes no
    /// response byte while some is queued, this long is ended (408 if nothing was sent; 0 = off).
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub timeout_io: Duration,
    /// On SIGTERM/SIGINT, requests in flight get this long before they are cut.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub shutdown_timeout: Duration,
    /// Lifespan protocol: auto (a declining app is fine), on (required), off.
    #[arg(long, default_value = "auto", value_parser = parse_lifespan)]
    pub lifespan: crate::config::LifespanMode,
    /// Lifespan startup must finish within this.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub lifespan_startup_timeout: Duration,
    /// root_path of every scope (the app's mount point behind a proxy).
    #[arg(long, default_value = "")]
    pub root_path: String,
    /// Do not add a Server header.
    #[arg(long)]
    pub no_server_header: bool,
    /// TLS certificate chain (PEM, leaf first). With --ssl-key, listeners without an explicit
    /// scheme use TLS; `http://`/`unix:` listeners stay cleartext.
    #[arg(long, value_name = "FILE", requires = "ssl_key")]
    pub ssl_cert: Option<std::path::PathBuf>,
    /// TLS private key (PEM: PKCS#8, PKCS#1 or SEC1).
    #[arg(long, value_name = "FILE", requires = "ssl_cert")]
    pub ssl_key: Option<std::path::PathBuf>,
    /// CA certificates (PEM) for client certificates.
    #[arg(long, value_name = "FILE", requires = "ssl_cert")]
    pub ssl_ca: Option<std::path::PathBuf>,
    /// Client certificates: none, optional or required (the last two need --ssl-ca).
    #[arg(long, default_value = "none", value_parser = parse_client_verify)]
    pub ssl_client_verify: ClientVerify,
    /// Oldest TLS version accepted: 1.2 or 1.3.
    #[arg(long, default_value = "1.2", value_parser = parse_min_version)]
    pub ssl_min_version: MinVersion,
    /// A TLS client must finish its handshake within this.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub timeout_tls_handshake: Duration,
    /// Largest WebSocket message (assembled, after decompression) in bytes; more closes with
    /// 1009 (0 = unlimited).
    #[arg(long, default_value_t = 16 * 1024 * 1024)]
    pub ws_max_message_size: usize,
    /// Most frames in one WebSocket message; more closes with 1009 (0 = unlimited).
    #[arg(long, default_value_t = 131_072)]
    pub ws_max_fragments: usize,
    /// Most received WebSocket messages waiting for the app; more closes with 1008.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..))]
    pub ws_max_queue: u32,
    /// Time between server pings on each WebSocket (0 = off).
    #[arg(long, default_value = "20s", value_parser = parse_duration)]
    pub ws_ping_interval: Duration,
    /// A WebSocket whose pong does not come within this is dropped.
    #[arg(long, default_value = "20s", value_parser = parse_duration)]
    pub ws_ping_timeout: Duration,
    /// Do not negotiate permessage-deflate compression.
    #[arg(long)]
    pub no_ws_per_message_deflate: bool,
    /// Take the client address, scheme and host from X-Forwarded-* / Forwarded headers, but
    /// only on connections from --forwarded-allow-ips.
    #[arg(long)]
    pub proxy_headers: bool,
    /// Peers whose proxy headers are trusted: IPs and CIDRs (IPv4 and IPv6), `unix` for
    /// Unix-socket peers, `*` for all.
    #[arg(
        long,
        env = "FORWARDED_ALLOW_IPS",
        default_value = "127.0.0.1,::1,unix",
        value_name = "LIST"
    )]
    pub forwarded_allow_ips: String,
    /// Which proxy headers --proxy-headers reads: x-forwarded (X-Forwarded-*, what nginx and
    /// most proxies set; a client's own `Forwarded` header passed on by them is ignored),
    /// forwarded (RFC 7239 only), or auto (Forwarded when present, else X-Forwarded-*).
    #[arg(long, default_value = "x-forwarded", value_parser = parse_proxy_headers, value_name = "KIND")]
    pub forwarded_headers: ProxyHeaders,
    /// Write an access log line per request, WebSocket and SSE stream: to FILE, or to stderr
    /// without one. Reopened on SIGUSR1 (for logrotate).
    #[arg(long, value_name = "FILE", num_args = 0..=1, conflicts_with = "no_access_log")]
    pub access_log: Option<Option<std::path::PathBuf>>,
    /// Access log format: clf, common, combined, tiny, json, or a format string of
    /// gunicorn-style atoms (%h %t "%r" %s %b %D %{header}i ...).
    #[arg(long, default_value = "combined", value_name = "FORMAT")]
    pub access_log_format: String,
    /// No access log (the default; for scripts that want to say so).
    #[arg(long)]
    pub no_access_log: bool,
    /// Answer GET/HEAD on PATH with 200 "OK" without calling the app (load balancer checks).
    #[arg(long, value_name = "PATH")]
    pub healthcheck: Option<String>,
    /// Only serve requests whose Host is in LIST (names, `*.suffix`, `*`); others get 400.
    #[arg(long, value_name = "LIST")]
    pub trusted_hosts: Option<String>,
    /// Give every request an id: the client's `x-request-id` if sane, else a new one; it is in
    /// the scope and echoed in the response.
    #[arg(long)]
    pub request_id: bool,
    /// Development mode: check every event the app sends and receives against the PAGI spec
    /// and log each violation (at warn) with the rule and the event.
    #[arg(long)]
    pub lint: bool,
    /// PROXY protocol header expected from peers in --proxy-allow-from: off, v1, v2 or auto
    /// (either; told apart by the first bytes).
    #[arg(long, value_name = "MODE", default_value = "off")]
    pub proxy_protocol: ProxyProtocol,
    /// Peers whose PROXY headers are believed (and required): comma-separated IP networks
    /// (10.0.0.0/8, ::1) and `unix` for Unix socket connections; "" for nobody. Repeatable.
    #[arg(long, value_name = "LIST", default_value = "127.0.0.0/8,::1,unix")]
    pub proxy_allow_from: Vec<List<Source>>,
    /// Only TCP peers in these networks may connect (comma-separated, repeatable; deny wins).
    #[arg(long, value_name = "LIST")]
    pub allow_from: Vec<List<Cidr>>,
    /// TCP peers in these networks are refused at accept (comma-separated, repeatable).
    #[arg(long, value_name = "LIST")]
    pub deny_from: Vec<List<Cidr>>,
    /// Turn HTTP/2 off: no `h2` in TLS ALPN, no h2c; every connection speaks HTTP/1.x.
    #[arg(long)]
    pub no_http2: bool,
    /// How HTTP/2 may start on cleartext (TCP and Unix) listeners: off, prior-knowledge (the
    /// connection starts with the HTTP/2 preface), upgrade (`Upgrade: h2c`), or both.
    #[arg(long, value_name = "MODE", default_value = "both")]
    pub http2_cleartext: H2Cleartext,
    /// Most concurrent streams a client may open on one HTTP/2 connection.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
    pub http2_max_concurrent_streams: u32,
    /// Largest HTTP/2 request header list in bytes (as RFC 9113 counts it); more is refused.
    #[arg(long, default_value_t = 65_536, value_parser = clap::value_parser!(u32).range(1024..))]
    pub http2_max_header_list_size: u32,
    /// Request body bytes a client may send on one HTTP/2 stream before the app reads them.
    #[arg(long, default_value_t = 262_144, value_parser = clap::value_parser!(u32).range(1024..=2_147_483_647))]
    pub http2_initial_stream_window_size: u32,
    /// Request body bytes a client may send on all streams of a connection before the apps
    /// read them.
    #[arg(long, default_value_t = 1_048_576, value_parser = clap::value_parser!(u32).range(65_535..=2_147_483_647))]
    pub http2_initial_connection_window_size: u32,
    /// Largest HTTP/2 frame the server accepts (16384 to 16777215).
    #[arg(long, default_value_t = 16_384, value_parser = clap::value_parser!(u32).range(16_384..=16_777_215))]
    pub http2_max_frame_size: u32,
    /// Time between keep-alive PINGs on HTTP/2 connections (0 = none).
    #[arg(long, default_value = "0s", value_parser = parse_duration)]
    pub http2_keep_alive_interval: Duration,
    /// An HTTP/2 connection whose PING is not answered within this is closed.
    #[arg(long, default_value = "20s", value_parser = parse_duration)]
    pub http2_keep_alive_timeout: Duration,
    /// Requests served on one HTTP/2 connection before GOAWAY asks the client for a new one
    /// (0 = unlimited).
    #[arg(long, default_value_t = 100_000)]
    pub http2_max_requests: u64,
    /// Streams a client may open and reset before the app sees them; more closes the
    /// connection (rapid reset).
    #[arg(long, default_value_t = 20)]
    pub http2_max_pending_accept_reset_streams: usize,
    /// Streams the server may reset for the client's errors; more closes the connection.
    #[arg(long, default_value_t = 1024)]
    pub http2_max_local_error_reset_streams: usize,
    /// Response bytes buffered per HTTP/2 stream before the app's send waits.
    #[arg(long, default_value_t = 409_600, value_parser = clap::value_parser!(u64).range(1024..=1_073_741_824))]
    pub http2_max_send_buffer_size: u64,
    /// Log level: error, warn, info, debug, trace (RUST_LOG overrides).
    #[arg(long, default_value = "info")]
    pub log_level: String,
}

impl Cli {
    /// The server settings these options describe.
    pub fn config(&self) -> Result<Config, Error> {
        let mut c = Config {
            backlog: self.backlog,
            reuse_port: self.reuseport,
            socket_mode: self.socket_mode.as_deref().map(parse_mode).transpose()?,
            max_connections: self.max_connections,
            max_body_size: self.max_body_size,
            timeout_keep_alive: self.timeout_keep_alive,
            timeout_header_read: self.timeout_header_read,
            timeout_io: self.timeout_io,
            shutdown_timeout: self.shutdown_timeout,
            lifespan: self.lifespan,
            lifespan_startup_timeout: self.lifespan_startup_timeout,
            root_path: Arc::from(self.root_path.as_str()),
            proxy_protocol: self.proxy_protocol,
            proxy_allow_from: flatten(&self.proxy_allow_from),
            allow_from: flatten(&self.allow_from),
            deny_from: flatten(&self.deny_from),
            ..Config::default()
        };
        c.head.max_request_line = self.max_request_line;
        c.head.max_header_size = self.max_header_size;
        c.head.max_header_count = usize::from(self.max_header_count);
        c.head.max_field_size = self.max_field_size;
        c.ws.max_message_size = self.ws_max_message_size;
        c.ws.max_fragments = self.ws_max_fragments;
        c.ws.max_queue = self.ws_max_queue as usize;
        c.ws.ping_interval = self.ws_ping_interval;
        c.ws.ping_timeout = self.ws_ping_timeout;
        c.ws.per_message_deflate = !self.no_ws_per_message_deflate;
        c.http2 = Http2Config {
            enabled: !self.no_http2,
            cleartext: self.http2_cleartext,
            max_concurrent_streams: self.http2_max_concurrent_streams,
            max_header_list_size: self.http2_max_header_list_size,
            initial_stream_window_size: self.http2_initial_stream_window_size,
            initial_connection_window_size: self.http2_initial_connection_window_size,
            max_frame_size: self.http2_max_frame_size,
            keep_alive_interval: self.http2_keep_alive_interval,
            keep_alive_timeout: self.http2_keep_alive_timeout,
            max_requests: self.http2_max_requests,
            max_pending_accept_reset_streams: self.http2_max_pending_accept_reset_streams,
            max_local_error_reset_streams: self.http2_max_local_error_reset_streams,
            max_send_buffer_size: self.http2_max_send_buffer_size as usize,
        };
        if let (Some(cert), Some(key)) = (&self.ssl_cert, &self.ssl_key) {
            let mut t = TlsConfig::new(cert, key);
            t.ca = self.ssl_ca.clone();
            t.client_verify = self.ssl_client_verify;
            t.min_version = self.ssl_min_version;
            t.handshake_timeout = self.timeout_tls_handshake;
            c.tls = Some(t);
        } else if self.ssl_client_verify != ClientVerify::None {
            return Err(Error::new(
                "--ssl-client-verify needs --ssl-cert, --ssl-key and --ssl-ca",
            ));
        }
        if self.no_server_header {
            c.server_header = None;
        }
        Ok(c)
    }

    /// Whether these options ask for a master and worker processes.
    pub fn multi_process(&self) -> bool {
        self.workers > 1
    }

    #[cfg(target_os = "linux")]
    pub(crate) fn worker_options(&self) -> crate::workers::Options {
        crate::workers::Options {
            workers: self.workers,
            worker_timeout: self.worker_timeout,
            max_requests: self.max_requests,
            max_requests_jitter: self.max_requests_jitter,
            max_lifetime: self.max_worker_lifetime,
            max_memory: self.max_worker_memory.saturating_mul(1 << 20),
            shutdown_timeout: self.shutdown_timeout,
            startup_timeout: self.lifespan_startup_timeout,
        }
    }

    /// The listeners (the default when none is given).
    pub fn listeners(&self) -> Result<Vec<ListenSpec>, Error> {
        self.listeners_with(&Inherited::none())
    }

    /// The listeners, given the inherited sockets: without `--listen`, every inherited socket
    /// (systemd's, or an old master's), else 127.0.0.1:8000.
    pub fn listeners_with(&self, inherited: &Inherited) -> Result<Vec<ListenSpec>, Error> {
        if self.listen.is_empty() {
            if !inherited.is_empty() {
                return Ok(inherited.specs());
            }
            return Ok(vec![ListenSpec::tcp("127.0.0.1:8000")]);
        }
        self.listen.iter().map(|s| s.parse()).collect()
    }
}

fn flatten<T: Clone>(lists: &[List<T>]) -> Vec<T> {
    lists.iter().flat_map(|l| l.0.iter().cloned()).collect()
}

fn parse_client_verify(s: &str) -> Result<ClientVerify, String> {
    match s {
        "none" => Ok(ClientVerify::None),
        "optional" => Ok(ClientVerify::Optional),
        "required" => Ok(ClientVerify::Required),
        _ => Err(format!("{s:?}: use none, optional or required")),
    }
}

fn parse_min_version(s: &str) -> Result<MinVersion, String> {
    match s {
        "1.2" => Ok(MinVersion::Tls12),
        "1.3" => Ok(MinVersion::Tls13),
        _ => Err(format!("{s:?}: use 1.2 or 1.3")),
    }
}

fn parse_proxy_headers(s: &str) -> Result<ProxyHeaders, String> {
    match s {
        "x-forwarded" => Ok(ProxyHeaders::XForwarded),
        "forwarded" => Ok(ProxyHeaders::Forwarded),
        "auto" => Ok(ProxyHeaders::Auto),
        _ => Err(format!("{s:?}: use x-forwarded, forwarded or auto")),
    }
}

/// Parses `30`, `30s`, `500ms`, `5m`, `1h`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit() && c != '.') {
        Some(i) => (&s[..i], &s[i..]),
        None => (s, "s"),
    };
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration like 30s or 500ms"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(format!("{s:?}: unknown unit {unit:?} (use ms, s, m or h)")),
    };
    if !secs.is_finite() || secs < 0.0 {
        return Err(format!("{s:?} is not a valid duration"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Runs `app` with the `pagi-server` command line: parses the arguments, sets up logging and
/// the runtime, binds, serves until SIGTERM/SIGINT (a second signal exits at once), and returns
/// the exit code (1 on a startup error, with the reason on stderr).
///
/// Call it at the start of `main`, before starting threads: it reads and removes the
/// socket-handover variables (`LISTEN_FDS`, `LISTEN_PID`, `LISTEN_FDNAMES`,
/// `PAGI_INHERIT_FDS`) from the environment, which is only sound while the process has one
/// thread. `--daemonize` runs the program again with the same arguments.
pub fn main<A: App>(app: A) -> ExitCode {
    let cli = Cli::parse();
    run(cli, app)
}

/// [`main`] with already parsed options (same rules about threads).
pub fn run<A: App>(cli: Cli, app: A) -> ExitCode {
    let daemon = cli.daemonize && process::is_daemon_child();
    if cli.daemonize && !daemon {
        return process::daemonize();
    }
    // Still one thread: the environment may change.
    if daemon {
        std::env::remove_var(process::DAEMON_ENV);
    }
    let vars = Vars::take_from_env();
    init_logging(&cli.log_level);
    match try_run(cli, app, &vars, daemon) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("pagi-server: error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The middleware the options ask for.
fn middleware(cli: &Cli) -> Result<Layers, Error> {
    let xff = if cli.proxy_headers {
        let trusted = TrustedProxies::parse(&cli.forwarded_allow_ips)
            .map_err(|e| Error::new(format!("--forwarded-allow-ips: {e}")))?;
        Some(XForwardedFor::new(trusted).headers(cli.forwarded_headers))
    } else {
        None
    };
    let access = match &cli.access_log {
        Some(file) if !cli.no_access_log => {
            let format = Format::parse(&cli.access_log_format)
                .map_err(|e| Error::new(format!("--access-log-format: {e}")))?;
            let output = match file {
                Some(path) => Output::File(path.clone()),
                None => Output::Stderr,
            };
            Some(AccessLog::new(format, output).map_err(|e| Error::new(e.to_string()))?)
        }
        _ => None,
    };
    let hosts = match &cli.trusted_hosts {
        Some(list) => Some(
            TrustedHosts::try_new(list.split(',').map(str::trim).filter(|h| !h.is_empty()))
                .map_err(|e| Error::new(format!("--trusted-hosts: {e}")))?,
        ),
        None => None,
    };
    Ok(Layers {
        xff,
        access,
        health: cli
            .healthcheck
            .as_ref()
            .map(|p| Healthcheck::new(p.clone())),
        hosts,
        request_id: cli.request_id.then(RequestId::new),
        lint: cli
            .lint
            .then(|| Lint::new().on_violation(|v| tracing::warn!(target: "pagi::lint", "{v}"))),
    })
}

/// The middleware of the command line, each optional.
struct Layers {
    xff: Option<XForwardedFor>,
    access: Option<AccessLog>,
    health: Option<Healthcheck>,
    hosts: Option<TrustedHosts>,
    request_id: Option<RequestId>,
    lint: Option<Lint>,
}

impl Layers {
    fn is_empty(&self) -> bool {
        self.xff.is_none()
            && self.access.is_none()
            && self.health.is_none()
            && self.hosts.is_none()
            && self.request_id.is_none()
            && self.lint.is_none()
    }
}

/// The server for these options around `app` (its middleware stack and settings; no
/// listener yet), and what reopens the access log. Starts the access log's writer thread:
/// with --workers, each worker calls it after the fork.
pub(crate) fn server_builder<A: App>(
    cli: &Cli,
    app: A,
) -> Result<(crate::Builder<impl App>, Option<Reopen>), Error> {
    let m = middleware(cli)?;
    let reopen = m.access.as_ref().map(AccessLog::reopener);
    // Outermost first: the real client before anything logs or checks it; health checks before
    // the host check (load balancers probe by IP).
    // Without any layer the app is called directly, not through six empty ones.
    let app = if m.is_empty() {
        Either::Right(app)
    } else {
        Either::Left(
            Stack::new()
                .layer(m.xff)
                .layer(m.request_id)
                .layer(m.access)
                .layer(m.health)
                .layer(m.hosts)
                .layer(m.lint)
                .app(app),
        )
    };
    Ok((Server::builder(app).config(cli.config()?), reopen))
}

/// The Tokio runtime: `threads` worker threads (1: single-threaded; default: the CPUs).
pub(crate) fn runtime(threads: Option<usize>) -> Result<tokio::runtime::Runtime, Error> {
    let threads =
        threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    if threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()
    }
    .map_err(|e| Error::with("cannot start the runtime", e))
}

/// What [`try_run`] sets up before any runtime or thread exists, for a single server or a
/// `--workers` master.
#[derive(Debug)]
pub(crate) struct Setup {
    /// `--user`/`--group`, resolved.
    pub(crate) creds: Option<Credentials>,
    /// Inherited sockets (systemd, an old master, `fd://N`), not yet adopted.
    pub(crate) inherited: Inherited,
    /// What to listen on.
    pub(crate) listeners: Vec<ListenSpec>,
    /// This is the `--daemonize` background process: report readiness on stdout.
    pub(crate) daemon: bool,
}

fn try_run<A: App>(cli: Cli, app: A, vars: &Vars, daemon: bool) -> Result<(), Error> {
    if !cli.multi_process()
        && (cli.max_requests > 0 || !cli.max_worker_lifetime.is_zero() || cli.max_worker_memory > 0)
    {
        return Err(Error::new(
            "--max-requests, --max-worker-lifetime and --max-worker-memory need --workers 2 or more",
        ));
    }
    if daemon {
        process::daemon_detach()?;
    }
    if let Some(mask) = cli.umask {
        process::set_umask(mask);
    }
    let creds = Credentials::resolve(cli.user.as_deref(), cli.group.as_deref())?;
    // Inherited descriptors are taken before the runtime makes any of its own.
    let mut inherited = Inherited::from_vars(vars)?;
    let listeners = cli.listeners_with(&inherited)?;
    for l in &listeners {
        if let ListenAddr::Fd(FdRef::Num(n)) = l.addr {
            inherited.claim(n)?;
        }
    }
    let setup = Setup {
        creds,
        inherited,
        listeners,
        daemon,
    };
    if cli.multi_process() {
        return run_workers(cli, app, setup);
    }
    let rt = runtime(cli.threads)?;
    rt.block_on(async move {
        use tokio::signal::unix::{signal, SignalKind};
        // Caught from here on (a HUP or USR1 would otherwise end the process), before the
        // listeners exist.
        let hup = signal(SignalKind::hangup()).ok();
        let usr1 = signal(SignalKind::user_defined1()).ok();
        let quit = signal(SignalKind::quit()).ok();
        ignore_worker_signals();
        let (b, reopen) = server_builder(&cli, app)?;
        let mut b = b.inherit(setup.inherited);
        for l in setup.listeners {
            b = b.listen_spec(l);
        }
        let mut server = b.bind().await?;
        if let Some(c) = &setup.creds {
            for f in server.socket_files() {
                c.chown(&f)?;
            }
        }
        // Written as the starting user (a root-owned /run is fine); removed at the end.
        let _pid_file = cli.pid_file.as_deref().map(PidFile::create).transpose()?;
        if let Some(c) = &setup.creds {
            c.apply()?;
        }
        if setup.daemon {
            server = server.on_ready(process::daemon_ready);
        }
        if let Some(hup) = hup {
            reload_on_hangup(hup, server.handle());
        }
        if let Some(usr1) = usr1 {
            reopen_on_usr1(usr1, reopen);
        }
        if let Some(mut quit) = quit {
            let h = server.handle();
            tokio::spawn(async move {
                if quit.recv().await.is_some() {
                    tracing::info!("SIGQUIT received: stopping now");
                    h.shutdown_now();
                }
            });
        }
        server.run_until(shutdown_signal()).await
    })
}

#[cfg(target_os = "linux")]
fn run_workers<A: App>(cli: Cli, app: A, setup: Setup) -> Result<(), Error> {
    crate::workers::run(cli, app, setup)
}

#[cfg(not(target_os = "linux"))]
fn run_workers<A: App>(_cli: Cli, _app: A, _setup: Setup) -> Result<(), Error> {
    Err(Error::new("--workers 2 or more is only supported on Linux"))
}

/// In a single process, the master's signals TTIN, TTOU and USR2 are logged and ignored
/// (by default they would stop or end the process).
fn ignore_worker_signals() {
    use tokio::signal::unix::{signal, SignalKind};
    for (kind, name) in [
        (SignalKind::from_raw(21), "SIGTTIN"),
        (SignalKind::from_raw(22), "SIGTTOU"),
        (SignalKind::user_defined2(), "SIGUSR2"),
    ] {
        if let Ok(mut s) = signal(kind) {
            tokio::spawn(async move {
                while s.recv().await.is_some() {
                    tracing::info!("{name} ignored: it is for a --workers master");
                }
            });
        }
    }
}

/// SIGUSR1 reopens the access log file (after logrotate moved it); without one it is ignored.
fn reopen_on_usr1(mut usr1: tokio::signal::unix::Signal, reopen: Option<Reopen>) {
    tokio::spawn(async move {
        while usr1.recv().await.is_some() {
            match &reopen {
                Some(r) => {
                    r.reopen();
                    tracing::info!("SIGUSR1: access log reopened");
                }
                None => tracing::info!("SIGUSR1: no access log file to reopen"),
            }
        }
    });
}

/// SIGHUP re-reads the TLS certificate and key (new handshakes use them).
fn reload_on_hangup(mut hup: tokio::signal::unix::Signal, handle: crate::Handle) {
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            if !handle.has_tls() {
                tracing::info!("SIGHUP: no TLS certificate configured; nothing to reload");
                continue;
            }
            match handle.reload_tls() {
                Ok(()) => tracing::info!("SIGHUP: TLS certificate reloaded"),
                Err(e) => tracing::error!(
                    "SIGHUP: cannot reload the TLS certificate (keeping the old one): {e}"
                ),
            }
        }
    });
}

/// Resolves on the first SIGTERM or SIGINT; a second one exits the process at once.
async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot install signal handlers");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received"),
        _ = int.recv() => tracing::info!("SIGINT received"),
    }
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        tracing::warn!("second signal: exiting now");
        std::process::exit(1);
    });
}

fn init_logging(level: &str) {
    use tracing_subscriber::EnvFilter;
    // rustls warns about every alert a client provokes (a refused renegotiation, say): that is
    // the client's business, so it is kept out of the log unless asked for with RUST_LOG.
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(format!("{level},rustls=error,h2=info")));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .with_target(false)
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn middleware_flags_choose_the_layers() {
        let none = middleware(&Cli::try_parse_from(["pagi-server"]).unwrap()).unwrap();
        assert!(none.xff.is_none() && none.access.is_none() && none.lint.is_none());
        assert!(none.health.is_none() && none.hosts.is_none() && none.request_id.is_none());
        assert!(none.is_empty());
        let all = middleware(
            &Cli::try_parse_from([
                "pagi-server",
                "--proxy-headers",
                "--access-log",
                "--lint",
                "--healthcheck",
                "/hz",
                "--trusted-hosts",
                "a.example",
                "--request-id",
            ])
            .unwrap(),
        )
        .unwrap();
        assert!(all.xff.is_some() && all.access.is_some() && all.lint.is_some());
        assert!(all.health.is_some() && all.hosts.is_some() && all.request_id.is_some());
        assert!(!all.is_empty());
        assert!(
            Cli::try_parse_from(["pagi-server", "--access-log", "--no-access-log"]).is_err(),
            "contradictory flags"
        );
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert!(parse_duration("x").is_err());
        assert!(parse_duration("5d").is_err());
    }

    #[test]
    fn defaults_match_the_config_defaults() {
        let cli = Cli::parse_from(["pagi-server"]);
        let c = cli.config().unwrap();
        let d = Config::default();
        assert_eq!(c.max_body_size, d.max_body_size);
        assert_eq!(c.max_connections, d.max_connections);
        assert_eq!(c.timeout_keep_alive, d.timeout_keep_alive);
        assert_eq!(c.timeout_header_read, d.timeout_header_read);
        assert_eq!(c.head.max_header_count, d.head.max_header_count);
        assert_eq!(
            cli.listeners().unwrap(),
            vec![ListenSpec::tcp("127.0.0.1:8000")]
        );
        assert_eq!(c.proxy_protocol, ProxyProtocol::Off);
        assert_eq!(c.proxy_protocol, d.proxy_protocol);
        assert_eq!(c.proxy_allow_from, d.proxy_allow_from);
        assert_eq!(c.allow_from, d.allow_from);
        assert_eq!(c.deny_from, d.deny_from);
    }

    fn parse(args: &[&str]) -> Result<Config, String> {
        let mut all = vec!["pagi-server"];
        all.extend_from_slice(args);
        let cli = Cli::try_parse_from(all).map_err(|e| e.to_string())?;
        cli.config().map_err(|e| e.to_string())
    }

    fn strings<T: ToString>(items: &[T]) -> Vec<String> {
        items.iter().map(T::to_string).collect()
    }

    #[test]
    fn proxy_protocol_flags() {
        for (arg, mode) in [
            ("off", ProxyProtocol::Off),
            ("v1", ProxyProtocol::V1),
            ("v2", ProxyProtocol::V2),
            ("auto", ProxyProtocol::Auto),
        ] {
            let c = parse(&["--proxy-protocol", arg]).unwrap();
            assert_eq!(c.proxy_protocol, mode);
        }
        let e = parse(&["--proxy-protocol", "v3"]).unwrap_err();
        assert!(e.contains("off, v1, v2 or auto"), "{e}");
        assert!(parse(&["--proxy-protocol"]).is_err());

        let c = parse(&["--proxy-protocol", "auto"]).unwrap();
        assert_eq!(
            strings(&c.proxy_allow_from),
            ["127.0.0.0/8", "::1/128", "unix"]
        );
        // A list replaces the default; lists add up when repeated.
        let c = parse(&[
            "--proxy-allow-from",
            "10.0.0.0/8, fd00::/8",
            "--proxy-allow-from=unix",
        ])
        .unwrap();
        assert_eq!(
            strings(&c.proxy_allow_from),
            ["10.0.0.0/8", "fd00::/8", "unix"]
        );
        let c = parse(&["--proxy-allow-from", ""]).unwrap();
        assert!(c.proxy_allow_from.is_empty());
        let e = parse(&["--proxy-allow-from", "10.0.0.0/40"]).unwrap_err();
        assert!(e.contains("10.0.0.0/40"), "{e}");
        assert!(parse(&["--proxy-allow-from", "proxy.example"]).is_err());
    }

    #[test]
    fn http2_flags() {
        let c = parse(&[]).unwrap();
        let d = Http2Config::default();
        assert!(c.http2.enabled);
        assert_eq!(c.http2.cleartext, H2Cleartext::Both);
        assert_eq!(c.http2.max_concurrent_streams, d.max_concurrent_streams);
        assert_eq!(c.http2.max_header_list_size, d.max_header_list_size);
        assert_eq!(
            c.http2.initial_stream_window_size,
            d.initial_stream_window_size
        );
        assert_eq!(
            c.http2.initial_connection_window_size,
            d.initial_connection_window_size
        );
        assert_eq!(c.http2.max_frame_size, d.max_frame_size);
        assert_eq!(c.http2.keep_alive_interval, d.keep_alive_interval);
        assert_eq!(c.http2.keep_alive_timeout, d.keep_alive_timeout);
        assert_eq!(c.http2.max_requests, d.max_requests);
        assert_eq!(
            c.http2.max_pending_accept_reset_streams,
            d.max_pending_accept_reset_streams
        );
        assert_eq!(
            c.http2.max_local_error_reset_streams,
            d.max_local_error_reset_streams
        );
        assert_eq!(c.http2.max_send_buffer_size, d.max_send_buffer_size);
        for (arg, mode) in [
            ("off", H2Cleartext::Off),
            ("prior-knowledge", H2Cleartext::PriorKnowledge),
            ("upgrade", H2Cleartext::Upgrade),
            ("both", H2Cleartext::Both),
        ] {
            assert_eq!(
                parse(&["--http2-cleartext", arg]).unwrap().http2.cleartext,
                mode
            );
        }
        let e = parse(&["--http2-cleartext", "yes"]).unwrap_err();
        assert!(e.contains("off, prior-knowledge, upgrade or both"), "{e}");
        assert!(!parse(&["--no-http2"]).unwrap().http2.enabled);
        let c = parse(&[
            "--http2-max-concurrent-streams",
            "7",
            "--http2-max-frame-size",
            "32768",
            "--http2-keep-alive-interval",
            "10s",
            "--http2-max-requests",
            "0",
        ])
        .unwrap();
        assert_eq!(c.http2.max_concurrent_streams, 7);
        assert_eq!(c.http2.max_frame_size, 32768);
        assert_eq!(c.http2.keep_alive_interval, Duration::from_secs(10));
        assert_eq!(c.http2.max_requests, 0);
        // Values h2 would panic on are refused by the parser.
        assert!(parse(&["--http2-max-frame-size", "1000"]).is_err());
        assert!(parse(&["--http2-initial-stream-window-size", "2147483648"]).is_err());
        assert!(parse(&["--http2-max-concurrent-streams", "0"]).is_err());
    }

    #[test]
    fn allow_and_deny_flags() {
        let c = parse(&[
            "--allow-from",
            "10.0.0.0/8,192.168.1.7",
            "--allow-from",
            "2001:db8::/32",
            "--deny-from",
            "10.9.0.0/16",
        ])
        .unwrap();
        assert_eq!(
            strings(&c.allow_from),
            ["10.0.0.0/8", "192.168.1.7/32", "2001:db8::/32"]
        );
        assert_eq!(strings(&c.deny_from), ["10.9.0.0/16"]);
        let c = parse(&[]).unwrap();
        assert!(c.allow_from.is_empty() && c.deny_from.is_empty());
        let e = parse(&["--deny-from", "unix"]).unwrap_err();
        assert!(e.contains("always allowed"), "{e}");
        assert!(parse(&["--allow-from", "10.0.0.0/8,,10.1.0.0/16"]).is_err());
        assert!(parse(&["--deny-from", "300.0.0.1"]).is_err());
    }
}
