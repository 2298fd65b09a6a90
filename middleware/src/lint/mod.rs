//! Lint: checks the events an app exchanges against the PAGI spec, and reports what it breaks.
//!
//! [`Lint`] wraps an app and watches every event it sends and receives. It changes nothing: the
//! scope, the events, their order and the backpressure of `send` are exactly those of the
//! server, and the app's result is passed on (except in [strict](Lint::strict) mode). What it
//! finds goes to a callback as [`Violation`]s, each with a stable rule id and a message naming
//! the event (by its index in the call), the state, and what the spec expects there.
//!
//! Both kinds of mistakes are reported: those a conforming server rejects (the `send` fails,
//! and an app that propagates the error stops there), and those it tolerates (it drops a
//! field, ignores the event, answers 500 for the app, cuts the response off). Which is which is
//! in the catalogue, [`RULES`], and in [`Violation::reaction`]. Sends after the client has gone
//! are checked too: the server takes them as no-ops without checking, but the mistake is the
//! app's all the same.
//!
//! ```
//! use std::sync::{Arc, Mutex};
//! use std::task::{Context, Poll};
//!
//! use pagi::{App, BoxError, Error, Headers, HttpScope, Method, ReceiveEvent, Receiver};
//! use pagi::{Scope, SendEvent, Sender, Sink, Source};
//! use pagi_middleware::lint::{Lint, LintError};
//! use pagi_middleware::Stack;
//!
//! // An app with a bug: it sends a body piece before the start.
//! async fn app(_scope: Scope, _receive: Receiver, send: Sender) -> Result<(), BoxError> {
//!     send.send(SendEvent::body("oops", false)).await?;
//!     send.send(SendEvent::start(200, Headers::new())).await?;
//!     send.send(SendEvent::body("hello", false)).await?;
//!     Ok(())
//! }
//!
//! let seen = Arc::new(Mutex::new(Vec::new()));
//! let log = seen.clone();
//! let lint = Lint::new()
//!     .on_violation(move |v| log.lock().unwrap().push(v.rule))
//!     .strict();
//! let app = Stack::new().layer(lint).app(app);
//!
//! // A stand-in server that takes every event (a real one would fail the early body).
//! struct TakesAll;
//! impl Sink for TakesAll {
//!     fn poll_send(&self, _: &mut Context<'_>, ev: &mut Option<SendEvent>) -> Poll<Result<(), Error>> {
//!         ev.take();
//!         Poll::Ready(Ok(()))
//!     }
//! }
//! impl Source for TakesAll {
//!     fn poll_receive(&self, _: &mut Context<'_>) -> Poll<Result<ReceiveEvent, Error>> {
//!         Poll::Ready(Ok(ReceiveEvent::HttpDisconnect))
//!     }
//! }
//!
//! let scope = Scope::Http(HttpScope::new(Method::GET, "/"));
//! let call = app.call(scope, Receiver::new(Arc::new(TakesAll)), Sender::new(Arc::new(TakesAll)));
//! let err = futures::executor::block_on(call).unwrap_err();
//!
//! // Strict mode turned the call into an error that carries the violations.
//! let found = err.downcast_ref::<LintError>().unwrap().violations();
//! assert_eq!(found.len(), 1);
//! assert_eq!(found[0].rule, "body-before-start");
//! assert!(found[0].message.starts_with("event #0 (sent http.response.body)"));
//! assert_eq!(*seen.lock().unwrap(), ["body-before-start"]);
//! ```
//!
//! # The rules
//!
//! Ids are stable; the same id means the same kind of mistake in every scope type where it
//! appears. "Fails" marks rules whose event a conforming server refuses; the others it
//! tolerates. [`RULES`] has a one-line summary of each.
//!
//! Every scope type:
//! - `wrong-scope` (fails): an event of another scope type (`websocket.send` on `http`,
//!   `http.*` on `sse`, anything but `lifespan.*` on `lifespan`).
//! - `send-after-return` (fails): a send through a `Sender` kept
//!   after the call returned.
//! - `receive-after-disconnect` (`http`, `websocket`, `sse`): the app received the disconnect
//!   event [`DISCONNECT_REPEAT_LIMIT`] times: it keeps receiving after the exchange is over,
//!   most likely in a loop that never ends. Reported once.
//!
//! `http`, and the declining response of `sse` (`sse.http.response.*`):
//! - `status-range`, `header-name`, `header-value`, `content-length-value`,
//!   `content-length-conflict` (fail): a status outside 200..=999; a field name that is not
//!   an RFC 9110 token; a value with CR, LF or NUL; a `content-length` that is not digits, or
//!   repeated ones that disagree. Upper-case names are tokens, and are fine: the server writes
//!   names as given.
//! - `dropped-header`: `transfer-encoding`, or `connection` options other than `close`,
//!   which the server drops.
//! - `duplicate-start`, `body-before-start`, `body-after-complete` (fail): the order of start
//!   and body pieces.
//! - `body-and-file`, `file-not-absolute` (fail).
//! - `content-length-mismatch` (fails): the body overflows or falls short of its
//!   `content-length`; not checked for `HEAD`, 204, 304, trailers on HTTP/1.1 (none of which
//!   the length frames), or after a file (whose size the lint cannot know).
//! - `trailers-not-announced`, `trailers-before-body-end`, `duplicate-trailers` (fail).
//! - `fullflush-before-start` (fails), `extension-not-advertised` (fails: `fullflush` or
//!   `http.response.early_hint` not in `scope.extensions`).
//! - `early-hint-after-start` (fails): a `103 Early Hints` only precedes the final response.
//!   `early-hint-field` (fails): a connection-specific or framing field in
//!   `http.response.early_hint` (`header-name` and `header-value` apply to it too).
//! - At return (`Ok`, client still there): `missing-response` (the server answers 500),
//!   `missing-final-body` (the last piece had `more: 1`, or none was sent),
//!   `missing-trailers`.
//!
//! `websocket`:
//! - `send-before-accept`, `accept-out-of-order`, `close-during-denial`, `duplicate-start`,
//!   `body-before-start` (fail): the order of the answer to `websocket.connect`.
//! - `subprotocol-not-offered`, `header-name`, `header-value`, `status-range`,
//!   `close-code` (a code an endpoint may not send, after the accept) (fail);
//!   `file-not-supported` and `extension-not-advertised` (`websocket.http.response`) (fail).
//! - Tolerated: `dropped-header` (the handshake fields), `close-reason-too-long`,
//!   `denial-after-accept`, `send-after-close` (after the app's own `websocket.close`),
//!   `event-after-close` (after the app refused: 403 or a complete denial).
//! - At return: `missing-answer` (`websocket.connect` never answered: 500),
//!   `missing-final-body` (a denial left unfinished).
//!
//! `sse`, besides the response rules above for a decline:
//! - `event-before-start`, `mixed-response` (`sse.start` and `sse.http.response.*` mixed),
//!   `duplicate-start`, `event-after-close` (fail); `sse-event-field`, `sse-id-field` (an
//!   `event` with CR or LF, an `id` with CR, LF or NUL) (fail).
//! - Tolerated: `content-length-on-stream` (a `content-length` on `sse.start`).
//! - At return: `missing-response` (no start at all), `missing-final-body` (a decline left
//!   unfinished). A started stream may simply return.
//!
//! `lifespan`:
//! - `answer-without-event`, `duplicate-answer` (fail): `lifespan.startup.*` before
//!   `lifespan.startup` was received, a second answer, and the same for shutdown.
//! - At return: `missing-answer` (a received `lifespan.shutdown` left unanswered). Returning
//!   without answering `lifespan.startup` is how an app declines lifespan, and is fine.
//!
//! The checks at return are made only when the call returned `Ok` and the client had not gone
//! (the app received the disconnect event, or `pagi.connection` says so): a failing app is the
//! server's to answer, and nobody is left to answer once the client has gone.
//!
//! # How the lint follows the exchange
//!
//! The rules are pure state machines ([`Checker`], usable on its own, for instance on a
//! recorded exchange). The middleware feeds them each event once its fate is known: when the
//! server took it or refused it. An event the server refuses for a reason the rules do not
//! explain (a file that cannot be opened) leaves the state as it was, as the spec says; an
//! event that breaks a rule the server enforces never changes the state, whether the server
//! at hand refused it or not.

mod rules;
mod violation;

#[cfg(test)]
mod tests;

pub use rules::{Checker, DISCONNECT_REPEAT_LIMIT};
pub use violation::{rule, Reaction, Rule, Violation, RULES};

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};

use futures::future::BoxFuture;
use pagi::{App, BoxError, Connection, Error, ReceiveEvent, Receiver, Scope, SendEvent, Sender};

use crate::observe::{watch_receive, watch_send, ReceiveWatch, SendWatch};
use crate::Layer;
use rules::Sent;

type Report = Arc<dyn Fn(&Violation) + Send + Sync>;

/// The lint middleware: checks an app's events against the spec (see the [module
/// docs](self) for the rules).
#[derive(Clone)]
pub struct Lint {
    report: Report,
    strict: bool,
}

impl Lint {
    /// A lint that prints each violation on stderr, and leaves the app's result alone.
    pub fn new() -> Lint {
        Lint {
            report: Arc::new(|v: &Violation| eprintln!("pagi lint: {v}")),
            strict: false,
        }
    }

    /// Reports violations to `f` instead of stderr. `f` is called as each violation is found,
    /// from within the app's `send` or `receive` or at its return; it must not block.
    pub fn on_violation(self, f: impl Fn(&Violation) + Send + Sync + 'static) -> Lint {
        Lint {
            report: Arc::new(f),
            ..self
        }
    }

    /// Also fails the call: when a call found violations, its result becomes an `Err` holding
    /// a [`LintError`] with them (the app's own error, if any, is its
    /// [`source`](std::error::Error::source)). Meant for tests. Violations found after the
    /// call returned (`send-after-return`) can only go to the callback.
    pub fn strict(self) -> Lint {
        Lint {
            strict: true,
            ..self
        }
    }
}

impl Default for Lint {
    fn default() -> Self {
        Lint::new()
    }
}

impl fmt::Debug for Lint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lint")
            .field("strict", &self.strict)
            .finish_non_exhaustive()
    }
}

impl<A: App> Layer<A> for Lint {
    type App = LintApp<A>;

    fn layer(&self, inner: A) -> LintApp<A> {
        LintApp {
            inner,
            lint: self.clone(),
        }
    }
}

/// An app wrapped by [`Lint`].
#[derive(Clone, Debug)]
pub struct LintApp<A> {
    inner: A,
    lint: Lint,
}

impl<A: App> App for LintApp<A> {
    type Future = BoxFuture<'static, Result<(), BoxError>>;

    fn call(&self, scope: Scope, receive: Receiver, send: Sender) -> Self::Future {
        let watch = Arc::new(Watch {
            checker: Mutex::new(Checker::new(&scope)),
            found: Mutex::new(Vec::new()),
            lint: self.lint.clone(),
        });
        let connection = scope.request().and_then(|r| r.connection.clone());
        let receive = watch_receive(receive, watch.clone());
        let send = watch_send(send, watch.clone());
        let call = self.inner.call(scope, receive, send);
        Box::pin(async move {
            let result = call.await;
            watch.returned(result, connection)
        })
    }
}

/// The error of a call in [strict](Lint::strict) mode that broke rules.
#[derive(Debug)]
pub struct LintError {
    violations: Vec<Violation>,
    app_error: Option<BoxError>,
}

impl LintError {
    /// What the call broke, in the order found.
    pub fn violations(&self) -> &[Violation] {
        &self.violations
    }

    /// The error the app itself returned, if it failed too.
    pub fn app_error(&self) -> Option<&BoxError> {
        self.app_error.as_ref()
    }
}

impl fmt::Display for LintError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.violations.len();
        write!(
            f,
            "the app broke {n} PAGI rule{}",
            if n == 1 { "" } else { "s" }
        )?;
        if let Some(e) = &self.app_error {
            write!(f, " (and failed: {e})")?;
        }
        for v in &self.violations {
            write!(f, "\n  - {v}")?;
        }
        Ok(())
    }
}

impl std::error::Error for LintError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.app_error
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// The lint's view of one call, shared by its watched `send` and `receive`.
struct Watch {
    checker: Mutex<Checker>,
    /// What the call found, for strict mode.
    found: Mutex<Vec<Violation>>,
    lint: Lint,
}

/// Locks, ignoring poisoning: the data stays consistent (the checker never panics midway, and
/// the callback runs without the lock).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Watch {
    fn report(&self, found: Vec<Violation>) {
        if found.is_empty() {
            return;
        }
        for v in &found {
            (self.lint.report)(v);
        }
        if self.lint.strict {
            lock(&self.found).extend(found);
        }
    }

    fn returned(
        &self,
        result: Result<(), BoxError>,
        connection: Option<Connection>,
    ) -> Result<(), BoxError> {
        let found = {
            let mut checker = lock(&self.checker);
            if connection.is_some_and(|c| !c.is_connected()) {
                checker.client_gone();
            }
            checker.returned(result.is_ok())
        };
        self.report(found);
        if !self.lint.strict {
            return result;
        }
        let violations = std::mem::take(&mut *lock(&self.found));
        if violations.is_empty() {
            return result;
        }
        Err(Box::new(LintError {
            violations,
            app_error: result.err(),
        }))
    }
}

impl SendWatch for Watch {
    type Note = Sent;

    fn note(&self, event: &SendEvent) -> Sent {
        Sent::of(event)
    }

    fn accepted(&self, note: Sent) {
        let found = lock(&self.checker).sent(note, false);
        self.report(found);
    }

    fn refused(&self, note: Sent, _error: &Error) {
        let found = lock(&self.checker).sent(note, true);
        self.report(found);
    }
}

impl ReceiveWatch for Watch {
    fn received(&self, event: &ReceiveEvent) {
        let found = lock(&self.checker).receive(event);
        self.report(found);
    }
}
