//! Server settings, with the defaults documented in the README.

use bytes::Bytes;
use std::sync::Arc;
use std::time::Duration;

use crate::access::{Cidr, Source};
use crate::error::Error;
use crate::proto::h1::parse::HeadLimits;
use crate::proxy_protocol::Version;

/// Whether and how the lifespan protocol runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum LifespanMode {
    /// Run it; an app that declines (fails or returns without answering) is logged and ignored.
    #[default]
    Auto,
    /// Run it; a decline is fatal.
    On,
    /// Do not run it.
    Off,
}

/// Whether connections start with a PROXY protocol header (see [`Config::proxy_protocol`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ProxyProtocol {
    /// No header is expected; every peer is served as it is (default).
    #[default]
    Off,
    /// Peers in `proxy_allow_from` must send a v1 (text) header.
    V1,
    /// Peers in `proxy_allow_from` must send a v2 (binary) header.
    V2,
    /// Peers in `proxy_allow_from` must send a header, v1 or v2 (told apart by the first
    /// bytes).
    Auto,
}

impl ProxyProtocol {
    /// Whether a header of this version is accepted.
    pub fn accepts(self, version: Version) -> bool {
        matches!(
            (self, version),
            (ProxyProtocol::Auto, _)
                | (ProxyProtocol::V1, Version::V1)
                | (ProxyProtocol::V2, Version::V2)
        )
    }
}

impl std::str::FromStr for ProxyProtocol {
    type Err = Error;

    /// `off`, `v1`, `v2` or `auto`.
    fn from_str(s: &str) -> Result<Self, Error> {
        match s {
            "off" => Ok(ProxyProtocol::Off),
            "v1" => Ok(ProxyProtocol::V1),
            "v2" => Ok(ProxyProtocol::V2),
            "auto" => Ok(ProxyProtocol::Auto),
            _ => Err(Error::new(format!(
                "{s:?}: the PROXY protocol setting is off, v1, v2 or auto"
            ))),
        }
    }
}

impl std::fmt::Display for ProxyProtocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ProxyProtocol::Off => "off",
            ProxyProtocol::V1 => "v1",
            ProxyProtocol::V2 => "v2",
            ProxyProtocol::Auto => "auto",
        })
    }
}

/// All settings of a server.
#[derive(Clone, Debug)]
pub struct Config {
    /// Request head limits.
    pub head: HeadLimits,
    /// Largest request body in bytes; 0 means unlimited. Default 10,000,000 (PAGI::Server's).
    pub max_body_size: u64,
    /// Most open connections; beyond it new ones get 503 with `Retry-After`. 0 means unlimited.
    /// Default 1000.
    pub max_connections: usize,
    /// How long an idle keep-alive connection is kept. Default 5 s.
    pub timeout_keep_alive: Duration,
    /// How long a client may take to send a request head, from its first byte (and for the
    /// first request of a connection, from the accept). Default 30 s.
    pub timeout_header_read: Duration,
    /// How long a request may stall on its client: no body byte while the app waits for body,
    /// or no response byte taken while some waits to be written. Then the request ends (408
    /// when nothing was sent yet). Zero disables it. Default 60 s.
    pub timeout_io: Duration,
    /// How long in-flight requests may run after a shutdown signal. Default 30 s.
    pub shutdown_timeout: Duration,
    /// Lifespan mode. Default auto.
    pub lifespan: LifespanMode,
    /// How long lifespan startup may take. Default 30 s.
    pub lifespan_startup_timeout: Duration,
    /// The worker number (1-based) when this server is a worker process of a `--workers`
    /// master: the lifespan scope then says `is_worker` and `worker_num`. Default `None`.
    pub worker: Option<u32>,
    /// `root_path` of every scope. Default empty.
    pub root_path: Arc<str>,
    /// `Server` header added when the app sets none; `None` adds none. Default `pagi-server`.
    pub server_header: Option<Bytes>,
    /// Listen backlog. Default 2048.
    pub backlog: u32,
    /// Permissions of Unix sockets (e.g. 0o660). Default: left to the umask.
    pub socket_mode: Option<u32>,
    /// `SO_REUSEPORT` on TCP listeners the server binds (not on inherited ones): other
    /// processes with it set may listen on the same port, and the kernel spreads new
    /// connections among them. Default off.
    pub reuse_port: bool,
    /// `send` waits while more than this many response bytes are queued. Default 64 KiB.
    pub write_high_water: u64,
    /// ... until the queue is down to this. Default 16 KiB.
    pub write_low_water: u64,
    /// TLS certificate and policy; listeners use it as their spec says. Default none.
    pub tls: Option<crate::tls::TlsConfig>,
    /// Unread request body the server reads and discards after a response to keep the
    /// connection; more closes it. Default 64 KiB.
    pub max_discard_body: u64,
    /// WebSocket settings.
    pub ws: WsConfig,
    /// The PROXY protocol (HAProxy's v1/v2 header naming the client a proxy relays). When on,
    /// a connection from a peer in `proxy_allow_from` must start with a header of an accepted
    /// version, before TLS and HTTP, within `timeout_header_read`; the address it names becomes
    /// the scope's `client` (also on Unix sockets). `LOCAL`, `UNKNOWN` and `AF_UNSPEC` keep
    /// the real peer; an `AF_UNIX` client has no address (`client` is `None`). A missing,
    /// malformed or unfinished header closes the connection (logged at info; a connection
    /// that sends nothing before the timeout is closed quietly). Peers outside
    /// `proxy_allow_from` are served as themselves, and one that sends a header anyway is
    /// closed (logged at info), so a client cannot claim another address. Default off.
    pub proxy_protocol: ProxyProtocol,
    /// Peers whose PROXY headers are believed: IP networks and `unix` (every Unix socket
    /// connection). Default `127.0.0.0/8`, `::1` and `unix`: a proxy on the same host. Empty:
    /// nobody's.
    pub proxy_allow_from: Vec<Source>,
    /// When not empty, only TCP peers in these networks may connect. Checked on the socket's
    /// peer at accept, before TLS and the PROXY header; refused connections are closed without
    /// a byte, logged at debug, and do not count as connections. `deny_from` wins over it.
    /// Unix socket peers are always allowed. Default empty (everyone).
    pub allow_from: Vec<Cidr>,
    /// TCP peers in these networks are refused at accept, like peers outside `allow_from`,
    /// even when `allow_from` lists them. Default empty.
    pub deny_from: Vec<Cidr>,
}

/// WebSocket settings.
#[derive(Clone, Debug)]
pub struct WsConfig {
    /// Largest message, assembled (and inflated); more closes with 1009. 0 means unlimited.
    /// Default 16 MiB (uvicorn's and hypercorn's).
    pub max_message_size: usize,
    /// Most frames in one message; more closes with 1009. 0 means unlimited. Default 131,072
    /// (Reassembly is linear, so fragments cost no memory of their own; the cap bounds the work
    /// per message.)
    pub max_fragments: usize,
    /// Most received messages waiting for the app to read them; more closes with 1008. Default
    /// 32. Together they hold at most twice `max_message_size` bytes.
    pub max_queue: usize,
    /// Time between server pings; zero turns them off. Default 20 s.
    pub ping_interval: Duration,
    /// How long to wait for a pong before dropping the connection. Default 20 s.
    pub ping_timeout: Duration,
    /// Whether permessage-deflate (RFC 7692) is negotiated when offered. Default on.
    pub per_message_deflate: bool,
    /// How long to wait for the peer's Close after sending ours. Default 5 s.
    pub close_timeout: Duration,
}

impl Default for WsConfig {
    fn default() -> Self {
        WsConfig {
            max_message_size: 16 * 1024 * 1024,
            max_fragments: 131_072,
            max_queue: 32,
            ping_interval: Duration::from_secs(20),
            ping_timeout: Duration::from_secs(20),
            per_message_deflate: true,
            close_timeout: Duration::from_secs(5),
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            head: HeadLimits::default(),
            max_body_size: 10_000_000,
            max_connections: 1000,
            timeout_keep_alive: Duration::from_secs(5),
            timeout_header_read: Duration::from_secs(30),
            timeout_io: Duration::from_secs(60),
            shutdown_timeout: Duration::from_secs(30),
            lifespan: LifespanMode::Auto,
            lifespan_startup_timeout: Duration::from_secs(30),
            worker: None,
            root_path: Arc::from(""),
            server_header: Some(Bytes::from_static(b"pagi-server")),
            backlog: 2048,
            socket_mode: None,
            reuse_port: false,
            write_high_water: 64 * 1024,
            write_low_water: 16 * 1024,
            max_discard_body: 64 * 1024,
            tls: None,
            ws: WsConfig::default(),
            proxy_protocol: ProxyProtocol::Off,
            proxy_allow_from: crate::access::default_proxy_allow_from(),
            allow_from: Vec::new(),
            deny_from: Vec::new(),
        }
    }
}
