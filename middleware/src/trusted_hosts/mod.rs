//! `TrustedHosts`: a `Host` allow-list.
//!
//! Apps that build absolute URLs (password-reset links, redirects, cache keys) from the `Host`
//! header can be tricked by a forged one. This middleware refuses every request whose `Host` is
//! not on the list, before the app sees it.
//!
//! ```
//! use pagi::{BoxError, Receiver, Scope, Sender};
//! use pagi_middleware::trusted_hosts::TrustedHosts;
//! use pagi_middleware::Stack;
//!
//! async fn app(_scope: Scope, _rx: Receiver, _tx: Sender) -> Result<(), BoxError> {
//!     Ok(())
//! }
//!
//! let hosts = TrustedHosts::new(["example.com", "*.example.org"]);
//! assert!(hosts.allows(b"EXAMPLE.com:8443"));
//! assert!(hosts.allows(b"api.eu.example.org"));
//! assert!(!hosts.allows(b"example.org"));
//! assert!(!hosts.allows(b"example.com.evil.net"));
//!
//! let wrapped = Stack::new().layer(hosts).app(app);
//! # let _ = wrapped;
//! ```
//!
//! # Patterns
//!
//! - `example.com`: that host exactly.
//! - `*.example.org`: any host that ends in `.example.org` (`a.example.org`,
//!   `a.b.example.org`), but not `example.org` itself; list both to allow both.
//! - `*`: any host, and requests without a `Host` too.
//! - IP literals work as exact patterns: `192.0.2.1`, and `::1` or `[::1]` for IPv6.
//!
//! Matching is ASCII case-insensitive, ignores the port on both sides (`example.com:8443` matches
//! `example.com`), ignores one trailing dot (`example.com.` is `example.com`) and compares IPv6
//! literals in canonical form. A pattern that is none of these forms (for example `a.*.com`, or
//! one with a space) never matches; [`TrustedHosts::try_new`] rejects it instead.
//!
//! # Refusals
//!
//! A request is refused when it has no `Host` field, more than one, or one that is not a valid
//! `host[:port]`, or whose host matches no pattern. The app is not called. The refusal depends on
//! the scope type:
//!
//! - `http`: `400` with `content-type: text/plain; charset=utf-8` and the body
//!   `Invalid host header\n`.
//! - `sse`: the same `400`, sent as `sse.http.response.start` and `sse.http.response.body`.
//! - `websocket`: after `websocket.connect`, the same `400` as a denial response
//!   (`websocket.http.response.*`) when the scope advertises the `websocket.http.response`
//!   extension; otherwise `websocket.close`, which the server turns into `403 Forbidden` (the
//!   only refusal the base protocol has).
//!
//! `lifespan` and other scope types are passed on untouched.
//!
//! Put this middleware after (inside) [`XForwardedFor`](crate::forwarded::XForwardedFor), so that
//! it checks the host the client asked for, and after a
//! [`Healthcheck`](crate::healthcheck::Healthcheck) that load balancers call by IP address.

use futures::future::{BoxFuture, Either, FutureExt};
use pagi::{
    App, BoxError, Headers, ReceiveEvent, Receiver, ResponseBody, Scope, SendEvent, Sender,
};
use std::fmt;
use std::net::Ipv6Addr;
use std::sync::Arc;

use crate::util::split_host;
use crate::Layer;

#[cfg(test)]
mod tests;

/// The body of a refusal.
const BODY: &str = "Invalid host header\n";

/// The allow-list middleware: a [`Layer`] that refuses requests for other hosts. See the
/// [module docs](self).
#[derive(Clone)]
pub struct TrustedHosts {
    config: Arc<Config>,
}

#[derive(Debug, Default)]
struct Config {
    any: bool,
    /// Normalized exact hosts.
    exact: Vec<String>,
    /// `.suffix` of each `*.suffix` pattern, lowercased.
    suffixes: Vec<String>,
}

impl TrustedHosts {
    /// An allow-list of the given patterns. Patterns that are not valid never match (see
    /// [`try_new`](Self::try_new) to reject them).
    pub fn new<I, S>(hosts: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut config = Config::default();
        for h in hosts {
            // An invalid pattern is dropped: it could not match a valid host anyway.
            let _ = config.add(h.as_ref());
        }
        TrustedHosts {
            config: Arc::new(config),
        }
    }

    /// Like [`new`](Self::new), but fails on the first pattern that is not an exact host, a
    /// `*.suffix` wildcard or `*`.
    ///
    /// # Errors
    ///
    /// A message naming the bad pattern.
    pub fn try_new<I, S>(hosts: I) -> Result<Self, String>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut config = Config::default();
        for h in hosts {
            let h = h.as_ref();
            config
                .add(h)
                .map_err(|why| format!("invalid host pattern {h:?}: {why}"))?;
        }
        Ok(TrustedHosts {
            config: Arc::new(config),
        })
    }

    /// Whether a `Host` header value is allowed (for a request without one, only `*` allows).
    pub fn allows(&self, host: &[u8]) -> bool {
        let c = &self.config;
        if c.any {
            return true;
        }
        let Some((name, _port)) = split_host(host) else {
            return false;
        };
        c.exact.contains(&name) || c.suffixes.iter().any(|s| name.ends_with(s.as_str()))
    }

    /// Whether the request may go on to the app.
    fn admits(&self, headers: &Headers) -> bool {
        if self.config.any {
            return true;
        }
        let mut hosts = headers.get_all("host");
        match (hosts.next(), hosts.next()) {
            (Some(host), None) => self.allows(host),
            _ => false,
        }
    }
}

impl Config {
    fn add(&mut self, pattern: &str) -> Result<(), &'static str> {
        let p = pattern.trim();
        if p == "*" {
            self.any = true;
            return Ok(());
        }
        if let Some(suffix) = p.strip_prefix("*.") {
            // The suffix must itself be a valid host name (IP literals make no sense here).
            match split_host(suffix.as_bytes()) {
                Some((name, None)) if !name.starts_with('[') => {
                    self.suffixes.push(format!(".{name}"));
                    Ok(())
                }
                _ => Err("the part after `*.` is not a host name"),
            }
        } else {
            // `::1` is accepted without brackets, and stored like the `[::1]` of a Host header.
            let name = match p.parse::<Ipv6Addr>() {
                Ok(ip) => format!("[{ip}]"),
                Err(_) => match split_host(p.as_bytes()) {
                    Some((name, None)) => name,
                    Some((_, Some(_))) => return Err("patterns take no port"),
                    None => return Err("not a host name, `*.suffix` or `*`"),
                },
            };
            self.exact.push(name);
            Ok(())
        }
    }
}

impl fmt::Debug for TrustedHosts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.config;
        let mut l = f.debug_list();
        l.entries(&c.exact);
        for s in &c.suffixes {
            l.entry(&format_args!("*{s}"));
        }
        if c.any {
            l.entry(&format_args!("*"));
        }
        l.finish()
    }
}

impl<A: App> Layer<A> for TrustedHosts {
    type App = TrustedHostsApp<A>;

    fn layer(&self, inner: A) -> Self::App {
        TrustedHostsApp {
            inner,
            layer: self.clone(),
        }
    }
}

/// An app wrapped in [`TrustedHosts`].
#[derive(Clone)]
pub struct TrustedHostsApp<A> {
    inner: A,
    layer: TrustedHosts,
}

impl<A> fmt::Debug for TrustedHostsApp<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TrustedHostsApp")
            .field("layer", &self.layer)
            .finish_non_exhaustive()
    }
}

impl<A: App> App for TrustedHostsApp<A> {
    type Future = Either<A::Future, BoxFuture<'static, Result<(), BoxError>>>;

    fn call(&self, scope: Scope, receive: Receiver, send: Sender) -> Self::Future {
        let refusal = match &scope {
            Scope::Http(req) | Scope::Sse(req) | Scope::Websocket(req)
                if !self.layer.admits(&req.headers) =>
            {
                match &scope {
                    Scope::Http(_) => Refusal::Http,
                    Scope::Sse(_) => Refusal::Sse,
                    _ => Refusal::Websocket {
                        denial: req.extensions.other.contains_key("websocket.http.response"),
                    },
                }
            }
            _ => return Either::Left(self.inner.call(scope, receive, send)),
        };
        Either::Right(refuse(refusal, receive, send).boxed())
    }
}

enum Refusal {
    Http,
    Sse,
    Websocket { denial: bool },
}

async fn refuse(how: Refusal, receive: Receiver, send: Sender) -> Result<(), BoxError> {
    let headers = Headers::new()
        .with("content-type", "text/plain; charset=utf-8")
        .with("content-length", BODY.len().to_string());
    let mut body = ResponseBody::default();
    body.bytes = BODY.into();
    match how {
        Refusal::Http => {
            send.send(SendEvent::start(400, headers)).await?;
            send.send(SendEvent::HttpResponseBody(body)).await?;
        }
        Refusal::Sse => {
            send.send(SendEvent::SseHttpResponseStart {
                status: 400,
                headers,
            })
            .await?;
            send.send(SendEvent::SseHttpResponseBody(body)).await?;
        }
        Refusal::Websocket { denial } => {
            // Answer the handshake, as the protocol asks; a client that is already gone needs
            // no answer.
            if receive.receive().await? != ReceiveEvent::WebsocketConnect {
                return Ok(());
            }
            if denial {
                send.send(SendEvent::WebsocketHttpResponseStart {
                    status: 400,
                    headers,
                })
                .await?;
                send.send(SendEvent::WebsocketHttpResponseBody(body))
                    .await?;
            } else {
                send.send(SendEvent::WebsocketClose {
                    code: 1008,
                    reason: "invalid host".into(),
                })
                .await?;
            }
        }
    }
    Ok(())
}
