//! Scopes: what the server tells the app about one connection, request or process.

use bytes::Bytes;
use serde::de::{self, Deserializer};
use serde::ser::{SerializeTuple, Serializer};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use crate::connection::Connection;
use crate::headers::Headers;
use crate::state::State;
use crate::wire::{latin1, latin1_string};

/// The protocol version this crate implements.
pub const PAGI_VERSION: &str = "0.3";

/// A scope: the first argument of every app call.
///
/// Apps `match` on it and must fail on a type they do not handle (the spec requires it; the
/// server then answers 500 for HTTP, or treats lifespan as declined).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "type")]
#[non_exhaustive]
pub enum Scope {
    /// One HTTP request (`type: "http"`).
    #[serde(rename = "http")]
    Http(HttpScope),
    /// One WebSocket connection (`type: "websocket"`).
    #[serde(rename = "websocket")]
    Websocket(HttpScope),
    /// One server-sent-events stream (`type: "sse"`).
    #[serde(rename = "sse")]
    Sse(HttpScope),
    /// The process's lifespan (`type: "lifespan"`).
    #[serde(rename = "lifespan")]
    Lifespan(LifespanScope),
}

impl Scope {
    /// The `type` string: `http`, `websocket`, `sse` or `lifespan`.
    pub fn kind(&self) -> &'static str {
        match self {
            Scope::Http(_) => "http",
            Scope::Websocket(_) => "websocket",
            Scope::Sse(_) => "sse",
            Scope::Lifespan(_) => "lifespan",
        }
    }

    /// The request part of an `http`, `websocket` or `sse` scope.
    pub fn request(&self) -> Option<&HttpScope> {
        match self {
            Scope::Http(s) | Scope::Websocket(s) | Scope::Sse(s) => Some(s),
            Scope::Lifespan(_) => None,
        }
    }
}

/// `scope.pagi` of connection scopes: `{"version": "0.3", "spec_version": "0.3"}`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PagiVersion;

impl Serialize for PagiVersion {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(2))?;
        m.serialize_entry("version", PAGI_VERSION)?;
        m.serialize_entry("spec_version", PAGI_VERSION)?;
        m.end()
    }
}

impl<'de> Deserialize<'de> for PagiVersion {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        serde::de::IgnoredAny::deserialize(d)?;
        Ok(PagiVersion)
    }
}

/// The scope of an HTTP request, a WebSocket or an SSE stream.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct HttpScope {
    /// Protocol version info.
    #[serde(default)]
    pub pagi: PagiVersion,
    /// `"1.0"`, `"1.1"` or `"2"`.
    pub http_version: HttpVersion,
    /// The request method exactly as sent (methods are case-sensitive; e.g. `GET`).
    pub method: Method,
    /// `http`, `https`, `ws` or `wss`.
    pub scheme: Scheme,
    /// The percent-decoded path (see [`Path`]).
    pub path: Path,
    /// The path as sent, still percent-encoded, without the query.
    #[serde(with = "latin1")]
    pub raw_path: Bytes,
    /// The query string as sent (after `?`), still percent-encoded.
    #[serde(with = "latin1", default)]
    pub query_string: Bytes,
    /// The mount point of the app (`""` by default).
    #[serde(default)]
    pub root_path: Arc<str>,
    /// Request headers: lowercase names, in order, duplicates kept, `cookie` merged.
    #[serde(default)]
    pub headers: Headers,
    /// The peer's address; absent on Unix sockets (unless a trusted PROXY protocol header
    /// names one).
    #[serde(with = "opt_addr", default)]
    pub client: Option<SocketAddr>,
    /// The local address: `[host, port]`, or `[path, null]` for a Unix socket.
    pub server: ServerAddr,
    /// WebSocket subprotocols the client offered (websocket scopes only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subprotocols: Vec<String>,
    /// A shallow copy of the lifespan state (not part of the JSON form).
    #[serde(skip)]
    pub state: Option<State>,
    /// Extensions the server supports for this scope.
    #[serde(default)]
    pub extensions: Extensions,
    /// Per-request connection state (`pagi.connection`; http scopes; not part of the JSON form).
    #[serde(skip)]
    pub connection: Option<Connection>,
}

impl HttpScope {
    /// A scope with the given method and path and everything else at its default, for tests and
    /// for middleware that builds sub-requests.
    pub fn new(method: Method, path: &str) -> Self {
        HttpScope {
            pagi: PagiVersion,
            http_version: HttpVersion::Http11,
            method,
            scheme: Scheme::Http,
            path: Path::from(path.to_owned()),
            raw_path: Bytes::copy_from_slice(path.as_bytes()),
            query_string: Bytes::new(),
            root_path: Arc::from(""),
            headers: Headers::new(),
            client: None,
            server: ServerAddr::Tcp(SocketAddr::from(([127, 0, 0, 1], 80))),
            subprotocols: Vec::new(),
            state: None,
            extensions: Extensions::default(),
            connection: None,
        }
    }
}

/// HTTP version of a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum HttpVersion {
    /// HTTP/1.0
    #[serde(rename = "1.0")]
    Http10,
    /// HTTP/1.1
    #[serde(rename = "1.1")]
    Http11,
    /// HTTP/2
    #[serde(rename = "2")]
    Http2,
}

impl HttpVersion {
    /// `"1.0"`, `"1.1"` or `"2"`.
    pub fn as_str(self) -> &'static str {
        match self {
            HttpVersion::Http10 => "1.0",
            HttpVersion::Http11 => "1.1",
            HttpVersion::Http2 => "2",
        }
    }
}

/// URL scheme of a scope.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scheme {
    /// `http`
    Http,
    /// `https`
    Https,
    /// `ws`
    Ws,
    /// `wss`
    Wss,
}

impl Scheme {
    /// The scheme's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
            Scheme::Ws => "ws",
            Scheme::Wss => "wss",
        }
    }
}

/// A request method: an RFC 9110 token, stored without copying the request bytes.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Method(Bytes);

impl Method {
    /// `GET`
    pub const GET: Method = Method(Bytes::from_static(b"GET"));
    /// `HEAD`
    pub const HEAD: Method = Method(Bytes::from_static(b"HEAD"));
    /// `POST`
    pub const POST: Method = Method(Bytes::from_static(b"POST"));
    /// `PUT`
    pub const PUT: Method = Method(Bytes::from_static(b"PUT"));

    /// A method from bytes; `None` unless they form a token.
    pub fn from_bytes(b: Bytes) -> Option<Method> {
        crate::headers::is_token(&b).then_some(Method(b))
    }

    /// The method as a string.
    pub fn as_str(&self) -> &str {
        // A token is ASCII, so this never falls back.
        std::str::from_utf8(&self.0).unwrap_or("")
    }
}

impl PartialEq<str> for Method {
    fn eq(&self, other: &str) -> bool {
        self.0 == other.as_bytes()
    }
}

impl PartialEq<&str> for Method {
    fn eq(&self, other: &&str) -> bool {
        self.0 == other.as_bytes()
    }
}

impl fmt::Debug for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Method {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Method {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Method::from_bytes(Bytes::from(s)).ok_or_else(|| de::Error::custom("method is not a token"))
    }
}

/// The percent-decoded request path.
///
/// PAGI: the path is percent-decoded and then read as UTF-8; when the decoded bytes are not
/// valid UTF-8, the scope carries the raw decoded bytes instead (the request is never rejected
/// for it). [`as_str`](Path::as_str) is `None` in that case; [`as_bytes`](Path::as_bytes) always
/// works. In JSON a non-UTF-8 path is written as ISO-8859-1 text of its bytes (lossy on the way
/// back; `raw_path` always round-trips).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Path(Bytes);

impl Path {
    /// A path from already-decoded bytes.
    pub fn from_decoded(b: Bytes) -> Self {
        Path(b)
    }

    /// The path as text, if it is valid UTF-8.
    pub fn as_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.0).ok()
    }

    /// The decoded bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Whether the path is valid UTF-8 (and so is text in the spec's terms).
    pub fn is_utf8(&self) -> bool {
        self.as_str().is_some()
    }
}

impl From<String> for Path {
    fn from(s: String) -> Self {
        Path(Bytes::from(s))
    }
}

impl From<&'static str> for Path {
    fn from(s: &'static str) -> Self {
        Path(Bytes::from_static(s.as_bytes()))
    }
}

impl PartialEq<str> for Path {
    fn eq(&self, other: &str) -> bool {
        self.0 == other.as_bytes()
    }
}

impl PartialEq<&str> for Path {
    fn eq(&self, other: &&str) -> bool {
        self.0 == other.as_bytes()
    }
}

impl fmt::Debug for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&String::from_utf8_lossy(&self.0), f)
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&String::from_utf8_lossy(&self.0))
    }
}

impl Serialize for Path {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.as_str() {
            Some(t) => s.serialize_str(t),
            None => s.serialize_str(&latin1_string(&self.0)),
        }
    }
}

impl<'de> Deserialize<'de> for Path {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Path::from(String::deserialize(d)?))
    }
}

/// The local end of a connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServerAddr {
    /// A TCP listener's address: `[host, port]` in JSON.
    Tcp(SocketAddr),
    /// A Unix socket's path: `[path, null]` in JSON.
    Unix(Arc<std::path::Path>),
}

impl Serialize for ServerAddr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut t = s.serialize_tuple(2)?;
        match self {
            ServerAddr::Tcp(a) => {
                t.serialize_element(&a.ip().to_string())?;
                t.serialize_element(&a.port())?;
            }
            ServerAddr::Unix(p) => {
                t.serialize_element(&p.to_string_lossy())?;
                t.serialize_element(&None::<u16>)?;
            }
        }
        t.end()
    }
}

impl<'de> Deserialize<'de> for ServerAddr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let (host, port) = <(String, Option<u16>)>::deserialize(d)?;
        match port {
            Some(port) => {
                let ip = host.parse().map_err(de::Error::custom)?;
                Ok(ServerAddr::Tcp(SocketAddr::new(ip, port)))
            }
            None => Ok(ServerAddr::Unix(Arc::from(PathBuf::from(host).as_path()))),
        }
    }
}

mod opt_addr {
    use super::*;

    pub fn serialize<S: Serializer>(v: &Option<SocketAddr>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(a) => (a.ip().to_string(), a.port()).serialize(s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SocketAddr>, D::Error> {
        let v = Option::<(String, u16)>::deserialize(d)?;
        v.map(|(h, p)| {
            h.parse()
                .map(|ip| SocketAddr::new(ip, p))
                .map_err(de::Error::custom)
        })
        .transpose()
    }
}

/// `scope.extensions`: the extensions this server supports for the scope.
///
/// Known extensions are typed fields; anything else (for example what middleware adds) lives
/// in [`other`](Extensions::other). In JSON this is one object keyed by extension name.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Extensions {
    /// `http.fullflush` is supported.
    pub fullflush: bool,
    /// `http.response.early_hint` (103 Early Hints) is supported; JSON key
    /// `"http.response.early_hint"`.
    pub early_hint: bool,
    /// The connection is TLS: its details (absent on cleartext connections).
    pub tls: Option<Arc<TlsInfo>>,
    /// Any other extension, by name.
    pub other: BTreeMap<String, serde_json::Value>,
}

/// `scope.extensions.tls`: what the TLS layer of the connection negotiated.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TlsInfo {
    /// The server's certificate (PEM) used on this connection.
    pub server_cert: Option<String>,
    /// The client's certificate chain (PEM, leaf first); empty without a client certificate.
    #[serde(default)]
    pub client_cert_chain: Vec<String>,
    /// The client certificate's subject as an RFC 4514 distinguished name.
    pub client_cert_name: Option<String>,
    /// Why the client certificate did not verify (only when verification is optional).
    pub client_cert_error: Option<String>,
    /// The TLS version, e.g. `0x0304` for TLS 1.3.
    pub tls_version: u16,
    /// The cipher suite, e.g. `0x1301` for TLS_AES_128_GCM_SHA256.
    pub cipher_suite: u16,
}

/// The extension name (and event type) of early hints.
const EARLY_HINT: &str = "http.response.early_hint";

impl Serialize for Extensions {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(None)?;
        if self.fullflush {
            m.serialize_entry("fullflush", &serde_json::Map::new())?;
        }
        if self.early_hint {
            m.serialize_entry(EARLY_HINT, &serde_json::Map::new())?;
        }
        if let Some(tls) = &self.tls {
            m.serialize_entry("tls", &**tls)?;
        }
        for (k, v) in &self.other {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

impl<'de> Deserialize<'de> for Extensions {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut other = BTreeMap::<String, serde_json::Value>::deserialize(d)?;
        let fullflush = other.remove("fullflush").is_some();
        let early_hint = other.remove(EARLY_HINT).is_some();
        let tls = match other.remove("tls") {
            Some(v) => Some(Arc::new(
                serde_json::from_value(v).map_err(de::Error::custom)?,
            )),
            None => None,
        };
        Ok(Extensions {
            fullflush,
            early_hint,
            tls,
            other,
        })
    }
}

/// The scope of the process's lifespan.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[non_exhaustive]
pub struct LifespanScope {
    /// Version and worker info.
    pub pagi: LifespanPagi,
    /// The state to fill during startup; shared with the server and copied into every request
    /// scope afterwards.
    #[serde(skip)]
    pub state: State,
}

impl LifespanScope {
    /// A lifespan scope for a single-process server (not a worker).
    pub fn new(state: State) -> Self {
        LifespanScope {
            pagi: LifespanPagi::default(),
            state,
        }
    }
}

/// `scope.pagi` of the lifespan scope.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct LifespanPagi {
    /// Always `"0.3"`.
    pub version: String,
    /// Always `"0.3"`.
    pub spec_version: String,
    /// Whether this process is a worker of a pre-forking master.
    #[serde(with = "crate::wire::flag")]
    pub is_worker: bool,
    /// The worker's number, 1..N; `None` outside a worker.
    pub worker_num: Option<u32>,
}

impl Default for LifespanPagi {
    fn default() -> Self {
        LifespanPagi {
            version: PAGI_VERSION.into(),
            spec_version: PAGI_VERSION.into(),
            is_worker: false,
            worker_num: None,
        }
    }
}

impl LifespanPagi {
    /// Info for worker `n` (1-based) of a pre-forking master.
    pub fn worker(n: u32) -> Self {
        LifespanPagi {
            is_worker: true,
            worker_num: Some(n),
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Scope {
        let mut s = HttpScope::new(Method::GET, "/caf\u{e9}");
        s.raw_path = Bytes::from_static(b"/caf%C3%A9");
        s.query_string = Bytes::from_static(b"a=1&b=%20");
        s.headers = Headers::new()
            .with("host", "example.com")
            .with("cookie", "a=1; b=2");
        s.client = Some("[::1]:5000".parse().unwrap());
        s.server = ServerAddr::Tcp("127.0.0.1:8000".parse().unwrap());
        s.extensions.fullflush = true;
        s.extensions.early_hint = true;
        Scope::Http(s)
    }

    #[test]
    fn http_scope_json_shape() {
        let v = serde_json::to_value(sample()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "type": "http",
                "pagi": {"version": "0.3", "spec_version": "0.3"},
                "http_version": "1.1",
                "method": "GET",
                "scheme": "http",
                "path": "/caf\u{e9}",
                "raw_path": "/caf%C3%A9",
                "query_string": "a=1&b=%20",
                "root_path": "",
                "headers": [["host", "example.com"], ["cookie", "a=1; b=2"]],
                "client": ["::1", 5000],
                "server": ["127.0.0.1", 8000],
                "extensions": {"fullflush": {}, "http.response.early_hint": {}}
            })
        );
        let back: Scope = serde_json::from_value(v.clone()).unwrap();
        assert_eq!(serde_json::to_value(back).unwrap(), v);
    }

    #[test]
    fn tls_extension_json_shape() {
        let mut s = HttpScope::new(Method::GET, "/");
        s.scheme = Scheme::Https;
        s.extensions.tls = Some(Arc::new(TlsInfo {
            server_cert: Some("-----BEGIN CERTIFICATE-----\n...".into()),
            client_cert_chain: vec![],
            client_cert_name: None,
            client_cert_error: None,
            tls_version: 0x0304,
            cipher_suite: 0x1301,
        }));
        let v = serde_json::to_value(Scope::Http(s)).unwrap();
        assert_eq!(v["scheme"], "https");
        assert_eq!(
            v["extensions"]["tls"],
            serde_json::json!({"server_cert": "-----BEGIN CERTIFICATE-----\n...", "client_cert_chain": [],
                "client_cert_name": null, "client_cert_error": null, "tls_version": 772, "cipher_suite": 4865})
        );
        let back: Scope = serde_json::from_value(v.clone()).unwrap();
        assert_eq!(serde_json::to_value(back).unwrap(), v);
    }

    #[test]
    fn unix_server_and_no_client() {
        let mut s = HttpScope::new(Method::POST, "/");
        s.server = ServerAddr::Unix(Arc::from(std::path::Path::new("/run/app.sock")));
        let v = serde_json::to_value(Scope::Http(s)).unwrap();
        assert_eq!(v["server"], serde_json::json!(["/run/app.sock", null]));
        assert_eq!(v["client"], serde_json::Value::Null);
        let back: Scope = serde_json::from_value(v).unwrap();
        assert!(matches!(back, Scope::Http(h) if h.client.is_none()
            && h.server == ServerAddr::Unix(Arc::from(std::path::Path::new("/run/app.sock")))));
    }

    #[test]
    fn lifespan_scope_json_shape() {
        let mut l = LifespanScope::new(State::shared());
        l.pagi = LifespanPagi::worker(3);
        let v = serde_json::to_value(Scope::Lifespan(l)).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"type": "lifespan", "pagi": {"version": "0.3", "spec_version": "0.3", "is_worker": 1, "worker_num": 3}})
        );
        let back: Scope = serde_json::from_value(v).unwrap();
        assert_eq!(back.kind(), "lifespan");
    }

    #[test]
    fn non_utf8_path_keeps_bytes() {
        let p = Path::from_decoded(Bytes::from_static(b"/\xff"));
        assert_eq!(p.as_str(), None);
        assert_eq!(p.as_bytes(), b"/\xff");
        let p = Path::from("/a");
        assert!(p == "/a");
    }

    #[test]
    fn method_must_be_a_token() {
        assert!(Method::from_bytes(Bytes::from_static(b"PATCH")).is_some());
        assert!(Method::from_bytes(Bytes::from_static(b"GE T")).is_none());
        assert!(Method::from_bytes(Bytes::new()).is_none());
        assert!(Method::GET == "GET");
    }
}
