//! `XForwardedFor`: the client, scheme and host as a trusted reverse proxy saw them.
//!
//! Behind a reverse proxy, the connection's peer is the proxy, not the client. Proxies pass the
//! client's address, the scheme and the `Host` the client used in forwarding headers. Anyone can
//! send those headers, so this middleware reads them **only when the direct peer is a trusted
//! proxy** ([`TrustedProxies`]), and even then reads the address list from the right, so that
//! entries a client made up itself are never taken as its address.
//!
//! ```
//! use pagi::{BoxError, Headers, HttpScope, Method, Receiver, Scheme, Scope, Sender};
//! use pagi_middleware::forwarded::{TrustedProxies, XForwardedFor};
//! use pagi_middleware::Stack;
//!
//! async fn app(_scope: Scope, _rx: Receiver, _tx: Sender) -> Result<(), BoxError> {
//!     Ok(())
//! }
//!
//! let proxies = XForwardedFor::new(TrustedProxies::parse("127.0.0.1, ::1, 10.0.0.0/8, unix")?);
//! let wrapped = Stack::new().layer(proxies.clone()).app(app);
//! # let _ = wrapped;
//!
//! // What the app behind it sees, for a request that came through two of our proxies:
//! let mut req = HttpScope::new(Method::GET, "/");
//! req.client = Some("10.0.0.2:51000".parse()?);
//! req.headers = Headers::new()
//!     .with("host", "backend:8000")
//!     .with("x-forwarded-for", "6.6.6.6, 203.0.113.7, 10.0.0.1") // 6.6.6.6: made up by the client
//!     .with("x-forwarded-proto", "https")
//!     .with("x-forwarded-host", "www.example.com");
//! let mut scope = Scope::Http(req);
//! assert!(proxies.apply(&mut scope));
//! let req = scope.request().ok_or("not a request")?;
//! assert_eq!(req.client, Some("203.0.113.7:0".parse()?));
//! assert_eq!(req.scheme, Scheme::Https);
//! assert_eq!(req.headers.get("host").map(|v| &v[..]), Some(&b"www.example.com"[..]));
//! assert_eq!(
//!     req.extensions.other["forwarded"],
//!     serde_json::json!({"peer": "10.0.0.2:51000", "server": ["127.0.0.1", 80],
//!                        "scheme": "http", "host": "backend:8000"})
//! );
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # What it does
//!
//! It acts on `http`, `websocket` and `sse` scopes; `lifespan` (and any other type) is passed
//! on untouched. The direct peer is the scope's `client`, or "a Unix-socket peer" when there is
//! no `client` and `server` is a Unix socket path. If the peer is not trusted, the scope is
//! passed on unchanged, headers included.
//!
//! For a trusted peer, it reads **either** RFC 7239 `Forwarded` **or** the `X-Forwarded-*`
//! family, never a mix (see [`ProxyHeaders`]; by default `Forwarded` wins when the request has
//! any `Forwarded` field).
//!
//! **The client.** The hops are read from the right, across all fields of the header in order
//! (several fields count as one comma-joined list). Each hop whose address is trusted is a proxy
//! of ours and is skipped; the first untrusted address is the client. If every hop is trusted,
//! the leftmost one is the client. An entry may be `ip`, `ipv4:port`, `[ipv6]` or
//! `[ipv6]:port` (and a bare `ipv6` in `X-Forwarded-For`); `client` becomes that address with
//! its port, or **port 0 when the entry has none** (a [`SocketAddr`] needs a port, and 0 is
//! never a real peer port). The walk stops, and `client` is left as it was (the proxy's
//! address), when it reaches:
//!
//! - an entry that is not an address (a hostname, a zone id, garbage): the header cannot be
//!   trusted from there on, so nothing more is taken from it;
//! - `unknown`, or an obfuscated identifier such as `_hidden` (RFC 7239 §6): the proxy chose
//!   not to say who the client is;
//! - in `Forwarded`, an element without `for=`.
//!
//! **The scheme.** `X-Forwarded-Proto`: its last value (the last item of the last field), or in
//! `Forwarded` the `proto=` of the element where the walk stopped. `http` and `ws` mean
//! cleartext, `https` and `wss` mean TLS (case-insensitive); the scope's `scheme` becomes `http`
//! or `https`, or `ws` or `wss` on a websocket scope. Other values are ignored.
//!
//! **The host.** `X-Forwarded-Host` (last value), or `host=` of that `Forwarded` element,
//! replaces the request's `host` header (every `host` field is replaced by one, at the place of
//! the first). A value that is not a valid `host[:port]` is ignored.
//!
//! **The port.** `X-Forwarded-Port` is the port the *client* connected to, i.e. the public
//! server's port, not the client's. Its last value (1–65535) replaces the port of `server` when
//! that is a TCP address; a Unix-socket `server` is left as it is. `Forwarded` has no port
//! parameter.
//!
//! The `Forwarded` parser follows RFC 7239: `name=value` pairs separated by `;`, elements by
//! `,`, values as tokens or quoted strings (with `\` escapes; IPv6 nodes are quoted and
//! bracketed, `for="[2001:db8::1]:4711"`). Parameter names are case-insensitive, unknown
//! parameters are ignored. If the walk reaches an element that breaks the grammar (or repeats a
//! parameter), nothing at all is taken from `Forwarded`. In `X-Forwarded-For` an unusable entry
//! only stops the client walk; the proto, host and port headers are single values set by the
//! nearest proxy and still apply.
//!
//! # What the app sees
//!
//! The middleware hands the app a modified copy of the scope (the app receives its scope by
//! value; shared state such as `state` and `connection` is not touched). The forwarding headers
//! themselves stay in `headers`. When the peer was trusted and the headers gave at least one
//! usable value, the scope's original view is kept in `extensions.other["forwarded"]`:
//!
//! ```json
//! {"peer": "10.0.0.2:51000", "server": ["127.0.0.1", 8000], "scheme": "http", "host": "backend:8000"}
//! ```
//!
//! - `peer`: the original `client` as `ip:port` (`[v6]:port` for IPv6), `"unix"` for a Unix
//!   socket peer, or `null` when the scope had no client on a TCP server;
//! - `server`: the original `server`, in the scope's JSON form (`[host, port]` or
//!   `[path, null]`);
//! - `scheme`: the original scheme;
//! - `host`: the original `host` header (bytes as ISO-8859-1 text), or `null` when there was none.
//!
//! If that key is already there (two of these middleware stacked), it is kept, so it always
//! describes the real connection.
//!
//! # Deployment notes
//!
//! - Trust only proxies that **overwrite or append to** the header family you read. A proxy that
//!   appends to `X-Forwarded-For` but passes a client's `Forwarded` field through unchanged lets
//!   that client choose its address under [`ProxyHeaders::Auto`]; pick
//!   [`ProxyHeaders::XForwarded`] (or [`ProxyHeaders::Forwarded`]) to match what your proxies
//!   send.
//! - With `*` every hop is trusted, so the leftmost entry, which the client controls, becomes
//!   the client. Use it only when nothing but your proxies can reach the server.

mod parse;
mod trust;

#[cfg(test)]
mod tests;

pub use trust::TrustedProxies;

use bytes::Bytes;
use pagi::{App, Headers, HttpScope, Receiver, Scheme, Scope, Sender, ServerAddr};
use parse::{forwarded_elements, parse_node, Node};
use serde_json::{json, Value};
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

use crate::util::{latin1, parse_port, set_header, split_host};
use crate::Layer;

/// Which forwarding headers [`XForwardedFor`] reads from a trusted peer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ProxyHeaders {
    /// RFC 7239 `Forwarded` when the request has a `Forwarded` field; otherwise
    /// `X-Forwarded-For`, `-Proto`, `-Host` and `-Port`. Never both.
    #[default]
    Auto,
    /// Only `Forwarded`; the `X-Forwarded-*` fields are ignored.
    Forwarded,
    /// Only `X-Forwarded-For`, `-Proto`, `-Host` and `-Port`; `Forwarded` is ignored.
    XForwarded,
}

/// The proxy-headers middleware: a [`Layer`] that rewrites `client`, `scheme`, the `host` header
/// and the `server` port from the forwarding headers of trusted proxies. See the
/// [module docs](self) for the rules.
#[derive(Clone)]
pub struct XForwardedFor {
    config: Arc<Config>,
}

struct Config {
    trusted: TrustedProxies,
    headers: ProxyHeaders,
}

impl XForwardedFor {
    /// Trusts the forwarding headers of the peers in `trusted`, reading them as
    /// [`ProxyHeaders::Auto`].
    pub fn new(trusted: TrustedProxies) -> Self {
        XForwardedFor {
            config: Arc::new(Config {
                trusted,
                headers: ProxyHeaders::Auto,
            }),
        }
    }

    /// Chooses which header family to read.
    pub fn headers(self, which: ProxyHeaders) -> Self {
        XForwardedFor {
            config: Arc::new(Config {
                trusted: self.config.trusted.clone(),
                headers: which,
            }),
        }
    }

    /// Rewrites `scope` in place as the middleware does before calling the app. Returns whether
    /// it applied forwarding information (and so recorded `extensions.other["forwarded"]`).
    ///
    /// For servers and tests that want the rewrite without wrapping an app.
    pub fn apply(&self, scope: &mut Scope) -> bool {
        match scope {
            Scope::Http(req) | Scope::Sse(req) => rewrite(&self.config, req, false),
            Scope::Websocket(req) => rewrite(&self.config, req, true),
            _ => false,
        }
    }
}

impl fmt::Debug for XForwardedFor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("XForwardedFor")
            .field("trusted", &self.config.trusted)
            .field("headers", &self.config.headers)
            .finish()
    }
}

impl<A: App> Layer<A> for XForwardedFor {
    type App = XForwardedForApp<A>;

    fn layer(&self, inner: A) -> Self::App {
        XForwardedForApp {
            inner,
            layer: self.clone(),
        }
    }
}

/// An app wrapped in [`XForwardedFor`].
#[derive(Clone)]
pub struct XForwardedForApp<A> {
    inner: A,
    layer: XForwardedFor,
}

impl<A> fmt::Debug for XForwardedForApp<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("XForwardedForApp")
            .field("layer", &self.layer)
            .finish_non_exhaustive()
    }
}

impl<A: App> App for XForwardedForApp<A> {
    type Future = A::Future;

    fn call(&self, mut scope: Scope, receive: Receiver, send: Sender) -> Self::Future {
        self.layer.apply(&mut scope);
        self.inner.call(scope, receive, send)
    }
}

/// What the headers said.
#[derive(Default)]
struct Found {
    client: Option<SocketAddr>,
    secure: Option<bool>,
    host: Option<Bytes>,
    port: Option<u16>,
}

impl Found {
    fn is_empty(&self) -> bool {
        self.client.is_none() && self.secure.is_none() && self.host.is_none() && self.port.is_none()
    }
}

/// Where the right-to-left walk over the hops ended.
enum Walk {
    /// At the client's address, found at this index.
    Client(SocketAddr, usize),
    /// At a hop that hides its address (or, in `Forwarded`, has no `for=`).
    Hidden(usize),
    /// At an entry that cannot be parsed.
    Malformed,
    /// There were no hops.
    Empty,
}

fn walk(hops: &[Option<Node>], trusted: &TrustedProxies) -> Walk {
    for (i, hop) in hops.iter().enumerate().rev() {
        match hop {
            None => return Walk::Malformed,
            Some(Node::Hidden) => return Walk::Hidden(i),
            Some(Node::Addr(a)) if !trusted.trusts(Some(a.ip()), false) => {
                return Walk::Client(*a, i)
            }
            Some(Node::Addr(_)) => {}
        }
    }
    // Every hop was a trusted address: the leftmost is the client.
    match hops.first() {
        Some(Some(Node::Addr(a))) => Walk::Client(*a, 0),
        _ => Walk::Empty,
    }
}

fn rewrite(config: &Config, req: &mut HttpScope, websocket: bool) -> bool {
    let unix = req.client.is_none() && matches!(req.server, ServerAddr::Unix(_));
    if !config.trusted.trusts(req.client.map(|a| a.ip()), unix) {
        return false;
    }
    let use_forwarded = match config.headers {
        ProxyHeaders::Auto => req.headers.contains("forwarded"),
        ProxyHeaders::Forwarded => true,
        ProxyHeaders::XForwarded => false,
    };
    let found = if use_forwarded {
        from_forwarded(&config.trusted, &req.headers)
    } else {
        from_x_forwarded(&config.trusted, &req.headers)
    };
    if found.is_empty() {
        return false;
    }

    let original = json!({
        "peer": match (req.client, unix) {
            (Some(a), _) => Value::String(a.to_string()),
            (None, true) => Value::String("unix".into()),
            (None, false) => Value::Null,
        },
        "server": serde_json::to_value(&req.server).unwrap_or(Value::Null),
        "scheme": req.scheme.as_str(),
        "host": req.headers.get("host").map_or(Value::Null, |h| Value::String(latin1(h))),
    });
    req.extensions
        .other
        .entry("forwarded".to_owned())
        .or_insert(original);

    if let Some(client) = found.client {
        req.client = Some(client);
    }
    if let Some(secure) = found.secure {
        req.scheme = match (websocket, secure) {
            (false, false) => Scheme::Http,
            (false, true) => Scheme::Https,
            (true, false) => Scheme::Ws,
            (true, true) => Scheme::Wss,
        };
    }
    if let Some(host) = found.host {
        set_header(&mut req.headers, "host", host);
    }
    if let (Some(port), ServerAddr::Tcp(addr)) = (found.port, &mut req.server) {
        addr.set_port(port);
    }
    true
}

/// `X-Forwarded-For` (walked), `X-Forwarded-Proto`, `-Host` and `-Port` (last values).
fn from_x_forwarded(trusted: &TrustedProxies, headers: &Headers) -> Found {
    let hops: Vec<Option<Node>> = headers
        .get_all("x-forwarded-for")
        .flat_map(|field| field.split(|&b| b == b','))
        .map(<[u8]>::trim_ascii)
        .filter(|entry| !entry.is_empty())
        .map(|entry| std::str::from_utf8(entry).ok().and_then(parse_node))
        .collect();
    Found {
        client: match walk(&hops, trusted) {
            Walk::Client(a, _) => Some(a),
            Walk::Hidden(_) | Walk::Malformed | Walk::Empty => None,
        },
        secure: last_value(headers, "x-forwarded-proto").and_then(|v| proto_is_secure(&v)),
        host: last_value(headers, "x-forwarded-host").filter(|v| split_host(v).is_some()),
        port: last_value(headers, "x-forwarded-port")
            .and_then(|v| std::str::from_utf8(&v).ok().and_then(parse_port))
            .filter(|&p| p != 0),
    }
}

/// `Forwarded`: the walk over the `for=` of each element; `proto=` and `host=` of the element
/// where it stopped.
fn from_forwarded(trusted: &TrustedProxies, headers: &Headers) -> Found {
    let elements = forwarded_elements(headers.get_all("forwarded").map(|v| &v[..]));
    let hops: Vec<Option<Node>> = elements
        .iter()
        .map(|el| {
            let el = el.as_ref()?;
            match &el.for_ {
                Some(node) => parse_node(node),
                None => Some(Node::Hidden),
            }
        })
        .collect();
    let (client, at) = match walk(&hops, trusted) {
        Walk::Client(a, i) => (Some(a), i),
        Walk::Hidden(i) => (None, i),
        Walk::Malformed | Walk::Empty => return Found::default(),
    };
    let Some(Some(el)) = elements.get(at) else {
        return Found::default();
    };
    Found {
        client,
        secure: el
            .proto
            .as_deref()
            .and_then(|p| proto_is_secure(p.as_bytes())),
        host: el
            .host
            .as_ref()
            .filter(|h| split_host(h.as_bytes()).is_some())
            .map(|h| Bytes::copy_from_slice(h.as_bytes())),
        port: None,
    }
}

/// The last comma-separated item of the last field called `name`, trimmed; `None` if empty.
fn last_value(headers: &Headers, name: &str) -> Option<Bytes> {
    let field = headers.get_all(name).last()?;
    let start = field
        .iter()
        .rposition(|&b| b == b',')
        .map_or(0, |comma| comma + 1);
    let item = field.slice(start..);
    let trimmed = item.trim_ascii();
    if trimmed.is_empty() {
        return None;
    }
    Some(item.slice_ref(trimmed))
}

/// `Some(true)` for https/wss, `Some(false)` for http/ws, `None` for anything else.
fn proto_is_secure(v: &[u8]) -> Option<bool> {
    if v.eq_ignore_ascii_case(b"https") || v.eq_ignore_ascii_case(b"wss") {
        Some(true)
    } else if v.eq_ignore_ascii_case(b"http") || v.eq_ignore_ascii_case(b"ws") {
        Some(false)
    } else {
        None
    }
}
