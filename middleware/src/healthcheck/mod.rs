//! `Healthcheck`: a health endpoint answered without calling the app.
//!
//! ```
//! use pagi::{BoxError, Receiver, Scope, Sender};
//! use pagi_middleware::healthcheck::Healthcheck;
//! use pagi_middleware::Stack;
//! use std::sync::atomic::{AtomicBool, Ordering};
//!
//! static READY: AtomicBool = AtomicBool::new(true);
//!
//! async fn app(_scope: Scope, _rx: Receiver, _tx: Sender) -> Result<(), BoxError> {
//!     Ok(())
//! }
//!
//! // `GET /healthz` answers 200 "OK\n" while READY is set, 503 otherwise.
//! let health = Healthcheck::new("/healthz").check(|| READY.load(Ordering::Relaxed));
//! let wrapped = Stack::new().layer(health).app(app);
//! # let _ = wrapped;
//! ```
//!
//! # Behaviour
//!
//! An `http` request whose method is exactly `GET` or `HEAD` and whose `path` is exactly the
//! configured one (the decoded path, which includes any `root_path`; the query string is
//! ignored) is answered here:
//!
//! - `200` with `content-type: text/plain; charset=utf-8`, `content-length: 3`,
//!   `cache-control: no-store` and the body `OK\n`;
//! - with a [`check`](Healthcheck::check) that returns `false`: `503` with the same headers and
//!   the body `Service Unavailable\n`;
//! - for `HEAD`, the same status and headers with an empty body.
//!
//! The request body is not read. Everything else (other paths, other methods on the path,
//! `websocket`, `sse`, `lifespan`) goes to the app unchanged.
//!
//! Put it outside (before) [`TrustedHosts`](crate::trusted_hosts::TrustedHosts) when load
//! balancers probe the server by IP address.

use futures::future::{BoxFuture, Either, FutureExt};
use pagi::{App, BoxError, Headers, Receiver, Scope, SendEvent, Sender};
use std::fmt;
use std::sync::Arc;

use crate::Layer;

#[cfg(test)]
mod tests;

type Check = Arc<dyn Fn() -> bool + Send + Sync>;

/// The health-check middleware: a [`Layer`]. See the [module docs](self).
#[derive(Clone)]
pub struct Healthcheck {
    path: Arc<str>,
    check: Option<Check>,
}

impl Healthcheck {
    /// Answers `GET` and `HEAD` on exactly `path` (e.g. `"/healthz"`) with `200 OK`.
    pub fn new(path: impl Into<String>) -> Self {
        Healthcheck {
            path: Arc::from(path.into()),
            check: None,
        }
    }

    /// Calls `check` for every health request: `false` answers `503` instead of `200`.
    ///
    /// It runs on the request's task, so it must be quick and must not block: read a flag or
    /// a counter that other tasks keep up to date.
    pub fn check<F>(self, check: F) -> Self
    where
        F: Fn() -> bool + Send + Sync + 'static,
    {
        Healthcheck {
            check: Some(Arc::new(check)),
            ..self
        }
    }

    /// The answer for `scope`, if it is a health request: `(healthy, head)`.
    fn matches(&self, scope: &Scope) -> Option<(bool, bool)> {
        let Scope::Http(req) = scope else {
            return None;
        };
        let head = req.method == "HEAD";
        if !(head || req.method == "GET") || req.path.as_bytes() != self.path.as_bytes() {
            return None;
        }
        Some((self.check.as_ref().is_none_or(|c| c()), head))
    }
}

impl fmt::Debug for Healthcheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Healthcheck")
            .field("path", &self.path)
            .field("check", &self.check.is_some())
            .finish()
    }
}

impl<A: App> Layer<A> for Healthcheck {
    type App = HealthcheckApp<A>;

    fn layer(&self, inner: A) -> Self::App {
        HealthcheckApp {
            inner,
            layer: self.clone(),
        }
    }
}

/// An app wrapped in [`Healthcheck`].
#[derive(Clone)]
pub struct HealthcheckApp<A> {
    inner: A,
    layer: Healthcheck,
}

impl<A> fmt::Debug for HealthcheckApp<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HealthcheckApp")
            .field("layer", &self.layer)
            .finish_non_exhaustive()
    }
}

impl<A: App> App for HealthcheckApp<A> {
    type Future = Either<A::Future, BoxFuture<'static, Result<(), BoxError>>>;

    fn call(&self, scope: Scope, receive: Receiver, send: Sender) -> Self::Future {
        match self.layer.matches(&scope) {
            None => Either::Left(self.inner.call(scope, receive, send)),
            Some((healthy, head)) => Either::Right(answer(send, healthy, head).boxed()),
        }
    }
}

async fn answer(send: Sender, healthy: bool, head: bool) -> Result<(), BoxError> {
    let (status, body) = if healthy {
        (200, "OK\n")
    } else {
        (503, "Service Unavailable\n")
    };
    let headers = Headers::new()
        .with("content-type", "text/plain; charset=utf-8")
        .with("content-length", body.len().to_string())
        .with("cache-control", "no-store");
    send.send(SendEvent::start(status, headers)).await?;
    send.send(SendEvent::body(if head { "" } else { body }, false))
        .await?;
    Ok(())
}
