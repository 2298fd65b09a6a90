//! Middleware for PAGI apps.
//!
//! A middleware is an app that wraps an app: it may change the scope it passes on (a clone, never
//! shared state), watch or rewrite the events going either way, or answer by itself. Each one is
//! written against the `pagi` crate only, so it works with any PAGI server.
//!
//! Middleware are composed with [`Stack`]: the first layer added is the outermost, the one that
//! sees a request first.
//!
//! ```
//! use pagi::{BoxError, Headers, Receiver, Scope, SendEvent, Sender};
//! use pagi_middleware::{Layer, Stack};
//!
//! async fn app(_scope: Scope, _rx: Receiver, tx: Sender) -> Result<(), BoxError> {
//!     tx.send(SendEvent::start(200, Headers::new())).await?;
//!     tx.send(SendEvent::body("hi", false)).await?;
//!     Ok(())
//! }
//!
//! // Outermost first: a layer that does nothing, then the app.
//! let wrapped = Stack::new().layer(pagi_middleware::Identity).app(app);
//! # let _ = wrapped;
//! ```
#![warn(missing_docs)]

pub mod access_log;
pub mod forwarded;
pub mod healthcheck;
pub mod lint;
pub mod observe;
pub mod request_id;
pub mod trusted_hosts;

#[cfg(test)]
mod testkit;
mod util;

use pagi::{App, Receiver, Scope, Sender};

/// Wraps an app in a middleware.
pub trait Layer<A: App> {
    /// The wrapped app.
    type App: App;

    /// Wraps `inner`.
    fn layer(&self, inner: A) -> Self::App;
}

/// The layer that changes nothing.
#[derive(Clone, Copy, Debug, Default)]
pub struct Identity;

impl<A: App> Layer<A> for Identity {
    type App = A;

    fn layer(&self, inner: A) -> A {
        inner
    }
}

/// An optional layer: `None` changes nothing. Handy for layers chosen by configuration.
impl<A: App, L: Layer<A>> Layer<A> for Option<L> {
    type App = Either<L::App, A>;

    fn layer(&self, inner: A) -> Self::App {
        match self {
            Some(l) => Either::Left(l.layer(inner)),
            None => Either::Right(inner),
        }
    }
}

/// Layers composed outermost first; build with [`Stack::new`] and [`Stack::layer`], finish
/// with [`Stack::app`].
#[derive(Clone, Debug, Default)]
pub struct Stack<L = Identity> {
    layers: L,
}

impl Stack<Identity> {
    /// An empty stack.
    pub fn new() -> Self {
        Stack { layers: Identity }
    }
}

impl<L> Stack<L> {
    /// Adds `layer` inside the ones added before.
    pub fn layer<T>(self, layer: T) -> Stack<Pair<T, L>> {
        Stack {
            layers: Pair {
                inner: layer,
                outer: self.layers,
            },
        }
    }

    /// Wraps `app` in every layer.
    pub fn app<A>(self, app: A) -> L::App
    where
        A: App,
        L: Layer<A>,
    {
        self.layers.layer(app)
    }
}

/// Two layers: `inner` wraps the app first, `outer` wraps the result.
#[derive(Clone, Debug, Default)]
pub struct Pair<Inner, Outer> {
    inner: Inner,
    outer: Outer,
}

impl<A, Inner, Outer> Layer<A> for Pair<Inner, Outer>
where
    A: App,
    Inner: Layer<A>,
    Outer: Layer<Inner::App>,
{
    type App = Outer::App;

    fn layer(&self, app: A) -> Self::App {
        self.outer.layer(self.inner.layer(app))
    }
}

/// One of two apps (the result of an optional layer).
#[derive(Clone, Debug)]
pub enum Either<L, R> {
    /// The first.
    Left(L),
    /// The second.
    Right(R),
}

impl<L: App, R: App> App for Either<L, R> {
    type Future = futures::future::Either<L::Future, R::Future>;

    fn call(&self, scope: Scope, receive: Receiver, send: Sender) -> Self::Future {
        match self {
            Either::Left(a) => futures::future::Either::Left(a.call(scope, receive, send)),
            Either::Right(a) => futures::future::Either::Right(a.call(scope, receive, send)),
        }
    }
}
