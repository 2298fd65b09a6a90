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
    /// HTTP/2 settings.
    pub http2: Http2Config,
}

/// How HTTP/2 may start on a cleartext (TCP or Unix socket) connection ("h2c").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum H2Cleartext {
    /// Both ways (default).
    #[default]
    Both,
    /// Never: cleartext connections speak HTTP/1.x only.
    Off,
    /// Only by prior knowledge: the connection starts with the HTTP/2 preface.
    PriorKnowledge,
    /// Only by `Upgrade: h2c` on an HTTP/1.1 request (RFC 7540 §3.2).
    Upgrade,
}

impl H2Cleartext {
    /// Whether a connection that starts with the HTTP/2 preface is served as HTTP/2.
    pub fn prior_knowledge(self) -> bool {
        matches!(self, H2Cleartext::Both | H2Cleartext::PriorKnowledge)
    }

    /// Whether `Upgrade: h2c` is honoured.
    pub fn upgrade(self) -> bool {
        matches!(self, H2Cleartext::Both | H2Cleartext::Upgrade)
    }
}

impl std::str::FromStr for H2Cleartext {
    type Err = Error;

    /// `off`, `prior-knowledge`, `upgrade` or `both`.
    fn from_str(s: &str) -> Result<Self, Error> {
        match s {
            "off" => Ok(H2Cleartext::Off),
            "prior-knowledge" => Ok(H2Cleartext::PriorKnowledge),
            "upgrade" => Ok(H2Cleartext::Upgrade),
            "both" => Ok(H2Cleartext::Both),
            _ => Err(Error::new(format!(
                "{s:?}: h2c is off, prior-knowledge, upgrade or both"
            ))),
        }
    }
}

/// HTTP/2 settings. The limits bound what one connection can make the server hold: at most
/// `max_concurrent_streams` requests at once, each with at most `initial_stream_window_size`
/// unread request body bytes (and all of them together at most
/// `initial_connection_window_size`), and `max_send_buffer_size` queued response bytes per
/// stream.
#[derive(Clone, Debug)]
pub struct Http2Config {
    /// Whether HTTP/2 is served at all (ALPN `h2` on TLS, h2c on cleartext). Default on.
    pub enabled: bool,
    /// How h2c may start on cleartext listeners (TCP and Unix). Never over TLS. Default both.
    pub cleartext: H2Cleartext,
    /// Most streams a client may have open at once (SETTINGS_MAX_CONCURRENT_STREAMS). Default
    /// 100.
    pub max_concurrent_streams: u32,
    /// Largest request header list (SETTINGS_MAX_HEADER_LIST_SIZE; names, values and 32 bytes
    /// per field, as RFC 9113 counts it). Default 65,536, the HTTP/1.1 `max_header_size`
    /// default.
    pub max_header_list_size: u32,
    /// Request body bytes a client may send on one stream before the app reads them. Default
    /// 256 KiB.
    pub initial_stream_window_size: u32,
    /// ... and on all streams of a connection together. Default 1 MiB.
    pub initial_connection_window_size: u32,
    /// Largest frame the server accepts (SETTINGS_MAX_FRAME_SIZE, 16,384 to 16,777,215).
    /// Default 16,384.
    pub max_frame_size: u32,
    /// Time between PINGs to check that the client is alive; zero turns them off. Default off.
    pub keep_alive_interval: std::time::Duration,
    /// A connection whose PING is not answered within this is closed. Default 20 s.
    pub keep_alive_timeout: std::time::Duration,
    /// Requests (streams) served on one connection before the server sends GOAWAY; the
    /// client then opens a new connection. 0 means unlimited. Default 10,000.
    pub max_requests: u64,
    /// Streams the client may open and reset before the app sees them; more is a
    /// connection error (rapid reset, CVE-2023-44487). Default 20.
    pub max_pending_accept_reset_streams: usize,
    /// Streams the server may reset because of the client's errors; more closes the
    /// connection (ENHANCE_YOUR_CALM). Default 1024.
    pub max_local_error_reset_streams: usize,
    /// Response bytes buffered per stream in the HTTP/2 layer. Default 400 KiB.
    pub max_send_buffer_size: usize,
}

impl Default for Http2Config {
    fn default() -> Self {
        Http2Config {
            enabled: true,
            cleartext: H2Cleartext::Both,
            max_concurrent_streams: 100,
            max_header_list_size: 65_536,
            initial_stream_window_size: 256 * 1024,
            initial_connection_window_size: 1024 * 1024,
            max_frame_size: 16_384,
            keep_alive_interval: std::time::Duration::ZERO,
            keep_alive_timeout: std::time::Duration::from_secs(20),
            max_requests: 100_000,
            max_pending_accept_reset_streams: 20,
            max_local_error_reset_streams: 1024,
            max_send_buffer_size: 400 * 1024,
        }
    }
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
            http2: Http2Config::default(),
        }
    }
}
