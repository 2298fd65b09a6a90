//! Access log: one line per HTTP request, per WebSocket and per SSE stream.
//!
//! ```
//! use pagi::{BoxError, Headers, Receiver, Scope, SendEvent, Sender};
//! use pagi_middleware::access_log::{AccessLog, Format, Output};
//! use pagi_middleware::Stack;
//!
//! async fn app(_scope: Scope, _rx: Receiver, tx: Sender) -> Result<(), BoxError> {
//!     tx.send(SendEvent::start(200, Headers::new())).await?;
//!     tx.send(SendEvent::body("hi", false)).await?;
//!     Ok(())
//! }
//!
//! let log = AccessLog::new(Format::parse("combined")?, Output::Stderr)?;
//! let reopen = log.reopener(); // call `reopen.reopen()` on SIGUSR1, after logrotate
//! let app = Stack::new().layer(log.clone()).app(app);
//! // ... serve `app`; `log.dropped()` tells how many lines the writer could not keep up with.
//! # let _ = (app, reopen);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # What a line says
//!
//! The line is written when the app's call ends: when it returns, fails or panics, or when its
//! future is dropped (a forced shutdown). For a WebSocket or an SSE stream that is when the
//! connection ends. Lifespan calls pass through and are not logged.
//!
//! - **Time** (`%t`, JSON `time`): when the call began, in UTC (Apache's "time the request was
//!   received"; with the duration it tells when the line was written).
//! - **Duration** (`%T`, `%d`, `%L`, `%M`, `%D`, JSON `duration_ms`): from the call to the end of
//!   the call. For a WebSocket or an SSE stream, the lifetime of the connection.
//! - **Status** (`%s`, JSON `status`): what the app answered, from the first start the server
//!   accepted: `http.response.start`; `sse.start` or `sse.http.response.start`; for a WebSocket,
//!   `101` on `websocket.accept`, `403` on `websocket.close` before the accept, or the status of
//!   a `websocket.http.response.start` denial. When the call ends without an accepted start the
//!   status is **`-`** (JSON `null`). The server then answers by itself (the 500 backstop, or
//!   the status of a refusal), or not at all if the client has gone. The middleware cannot tell
//!   which, so it does not guess a 500.
//! - **Bytes** (`%b`, `%B`, JSON `bytes`): the body bytes the server accepted. For http, the
//!   `http.response.body` bytes, with a `file` counted as its range: `length` bytes from
//!   `offset`, cut to what the file holds when the event is accepted (the middleware reads the
//!   file's size then), or the rest of the file without `length`. For a WebSocket, the payload
//!   bytes of every `websocket.send` (not frame overhead, not compressed size), or the body of a
//!   denial. For SSE, the bytes of `data` of every `sse.send` (not the encoded event: no
//!   `event:`/`id:`/`data:` prefixes, comments or keepalives), or the body of a declined
//!   stream. Events sent after the client has gone are no-ops and are not counted (when the
//!   scope has `pagi.connection`). Bytes the server discards after accepting them (the body of
//!   a `HEAD`, 204 or 304 response) are counted.
//! - **Response headers** (`%{name}o`): as the app gave them in the accepted start (or
//!   `websocket.accept`), not the fields the server adds (`date`, `server`, framing, the
//!   `sse.start` defaults).
//! - **Client** (`%h`, JSON `client`): the IP address of the scope's `client`, `unix` for a
//!   peer on a Unix socket, `-` (JSON `null`) when a TCP scope has no client. A proxy-headers
//!   middleware rewrites the scope's client; put the access log inside it (add it to the
//!   [`Stack`](crate::Stack) after that middleware) to log the real client.
//!
//! # Formats
//!
//! | Preset | Format |
//! |---|---|
//! | `clf`, `common` | `%h %l %u %t "%r" %s %b` |
//! | `combined` | `%h %l %u %t "%r" %s %b "%f" "%a"` |
//! | `tiny` | `%m %U%q %s %b %Mms` |
//! | `json` | one JSON object per line (below) |
//!
//! Any other string is a custom format: text with atoms (gunicorn's letters, as PAGI::Server
//! uses them). An unknown atom is an error when the format is parsed, not when it is used.
//!
//! | Atom | Value |
//! |---|---|
//! | `%h` | the client address (see above) |
//! | `%l`, `%u` | `-` (identd and user are not known) |
//! | `%t` | the time, CLF, with brackets: `[10/Oct/2000:13:55:36 +0000]` |
//! | `%r` | the request line: `GET /path?query HTTP/1.1`, built from the method, `raw_path`, `query_string` and version (WebSockets alike) |
//! | `%m` | the method |
//! | `%U` | the path as sent (`raw_path`: still percent-encoded, without the query) |
//! | `%q` | `?` and the query string, or nothing when there is none |
//! | `%H` | the protocol: `HTTP/1.0`, `HTTP/1.1`, `HTTP/2` |
//! | `%S` | the scheme: `http`, `https`, `ws`, `wss` |
//! | `%s` | the status, or `-` |
//! | `%b` | the bytes, or `-` for 0 |
//! | `%B` | the bytes |
//! | `%f` | the `Referer` request header, or `-` |
//! | `%a` | the `User-Agent` request header, or `-` |
//! | `%T` | the duration in whole seconds |
//! | `%d` | the duration in seconds with 3 decimals (`0.042`) |
//! | `%L` | the duration in seconds with 6 decimals (`0.042137`) |
//! | `%M` | the duration in whole milliseconds |
//! | `%D` | the duration in microseconds |
//! | `%{name}i` | the request header `name` (any case), or `-`; repeated fields joined with `, ` |
//! | `%{name}o` | the response header `name`, or `-`; repeated fields joined with `, ` |
//! | `%%` | `%` |
//!
//! `json` writes the fields `time` (RFC 3339, UTC, milliseconds: `2000-10-10T13:55:36.000Z`),
//! `type` (`http`, `websocket`, `sse`), `client` (string or `null`), `method`, `path` (as
//! `%U`), `query` (the query string without `?`), `protocol`, `status` (number or `null`),
//! `bytes`, `duration_ms` (number, 3 decimals), `referer` and `user_agent` (string or `null`),
//! in that order.
//!
//! # Escaping
//!
//! Every value that comes from the request or the response is escaped, so that a client cannot
//! forge lines or send terminal escape sequences to whoever reads the log (the class of
//! uvicorn's CVE-2020-7694). In the text formats, `"` becomes `\"`, `\` becomes `\\`, and every
//! byte outside printable ASCII (`0x00..=0x1f`, `0x7f`, `0x80..=0xff`) becomes `\xHH`, so a line
//! is always one line of printable ASCII and the original bytes can be recovered. In `json`,
//! values are JSON strings escaped by serde_json, and DEL, the C1 controls and U+2028/U+2029
//! are written as `\uXXXX` too. Bytes that are not UTF-8 become U+FFFD there.
//!
//! # Writing
//!
//! Logging never makes a request wait. The line is formatted when the call ends and handed to a
//! queue of 8192 lines, which a background thread writes out through a buffer, flushing whenever
//! the queue is momentarily empty. When the queue is full the line is dropped and counted
//! ([`AccessLog::dropped`]). [`Reopen::reopen`] makes the thread reopen the file before its next
//! line, for logrotate. The thread ends when the [`AccessLog`], its clones and the apps it
//! wrapped are all dropped; the last drop waits (at most 2 s) for the queue to be written out.
//! A file that cannot be written is reported on stderr once, until writing works again.

mod format;
mod time;
mod writer;

#[cfg(test)]
mod tests;

pub use format::Format;

use bytes::Bytes;
use futures::future::BoxFuture;
use pagi::{
    App, BoxError, Connection, Error, Headers, HttpScope, Receiver, ResponseBody, Scope, SendEvent,
    Sender, ServerAddr,
};
use std::fmt;
use std::path::PathBuf;
use std::sync::{mpsc, Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant, SystemTime};

use crate::observe::{watch_send, SendWatch};
use crate::Layer;
use format::{Client, Record};
use writer::Writer;

/// Where the access log goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// The process's standard error.
    Stderr,
    /// A file, opened for appending and created if missing.
    File(PathBuf),
}

/// The access log middleware: a [`Layer`] that logs every request, WebSocket and SSE stream of
/// the app it wraps.
///
/// Cloning is cheap, and the clones share the writer. See the [module
/// documentation](self) for what is logged and how.
#[derive(Clone)]
pub struct AccessLog {
    logger: Arc<Logger>,
}

/// What the middleware, its apps and the watchers share.
struct Logger {
    format: Format,
    writer: Writer,
    clock: Clock,
}

/// Settings the public constructor fixes (tests change them).
pub(crate) struct Options {
    /// Lines the queue holds.
    pub capacity: usize,
    pub clock: Clock,
    /// Holds the writer thread back until it yields (see [`Writer::spawn`]).
    pub gate: Option<mpsc::Receiver<()>>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            capacity: writer::DEFAULT_CAPACITY,
            clock: Clock::System,
            gate: None,
        }
    }
}

impl AccessLog {
    /// An access log writing `format` lines to `output`.
    ///
    /// A file is opened now (for appending, created if missing), so that a bad path fails at
    /// startup; the error names the path. Starts the writer thread.
    pub fn new(format: Format, output: Output) -> std::io::Result<AccessLog> {
        AccessLog::with_options(format, output, Options::default())
    }

    pub(crate) fn with_options(
        format: Format,
        output: Output,
        options: Options,
    ) -> std::io::Result<AccessLog> {
        let writer = Writer::spawn(&output, options.capacity, options.gate)?;
        Ok(AccessLog {
            logger: Arc::new(Logger {
                format,
                writer,
                clock: options.clock,
            }),
        })
    }

    /// A handle that makes the writer reopen its file (for logrotate, typically on SIGUSR1).
    ///
    /// The handle does not keep the writer alive: once the access log and its apps are gone,
    /// [`Reopen::reopen`] does nothing.
    pub fn reopener(&self) -> Reopen {
        Reopen {
            logger: Arc::downgrade(&self.logger),
        }
    }

    /// How many lines were dropped so far because the writer was behind (its queue was full).
    pub fn dropped(&self) -> u64 {
        self.logger.writer.dropped()
    }
}

impl fmt::Debug for AccessLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessLog")
            .field("format", &self.logger.format)
            .field("dropped", &self.dropped())
            .finish()
    }
}

/// Reopens the access log file; see [`AccessLog::reopener`].
#[derive(Clone)]
pub struct Reopen {
    logger: Weak<Logger>,
}

impl Reopen {
    /// Asks the writer to reopen its file before it writes the next line: lines already written
    /// stay in the file that was renamed, the next ones go to a new file at the configured path.
    /// Returns at once. If the path cannot be opened, the writer keeps the old file and says so
    /// on stderr. Does nothing for [`Output::Stderr`].
    pub fn reopen(&self) {
        if let Some(logger) = self.logger.upgrade() {
            logger.writer.reopen();
        }
    }
}

impl fmt::Debug for Reopen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reopen")
            .field("live", &(self.logger.strong_count() > 0))
            .finish()
    }
}

impl<A: App> Layer<A> for AccessLog {
    type App = AccessLogApp<A>;

    fn layer(&self, inner: A) -> AccessLogApp<A> {
        AccessLogApp {
            inner,
            logger: self.logger.clone(),
        }
    }
}

/// An app wrapped by [`AccessLog`].
pub struct AccessLogApp<A> {
    inner: A,
    logger: Arc<Logger>,
}

impl<A: Clone> Clone for AccessLogApp<A> {
    fn clone(&self) -> Self {
        AccessLogApp {
            inner: self.inner.clone(),
            logger: self.logger.clone(),
        }
    }
}

impl<A> fmt::Debug for AccessLogApp<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessLogApp")
            .field("format", &self.logger.format)
            .finish_non_exhaustive()
    }
}

impl<A: App> App for AccessLogApp<A> {
    type Future = BoxFuture<'static, Result<(), BoxError>>;

    fn call(&self, scope: Scope, receive: Receiver, send: Sender) -> Self::Future {
        let Some(req) = scope.request() else {
            return Box::pin(self.inner.call(scope, receive, send));
        };
        let logger = &self.logger;
        let stamp = logger.clock.now();
        let record = request_record(scope.kind(), req, &logger.format, stamp.wall);
        let watch = Arc::new(Watch {
            logger: logger.clone(),
            connection: req.connection.clone(),
            outcome: Mutex::new(Outcome::default()),
        });
        let finish = Finish {
            watch: watch.clone(),
            record,
            stamp,
        };
        let fut = self.inner.call(scope, receive, watch_send(send, watch));
        Box::pin(async move {
            // Dropped when the call ends, and also if this future is dropped before that.
            let _finish = finish;
            fut.await
        })
    }
}

/// The request half of a line, taken when the call begins.
fn request_record(
    kind: &'static str,
    req: &HttpScope,
    format: &Format,
    start: SystemTime,
) -> Record {
    let client = match (req.client, &req.server) {
        (Some(addr), _) => Client::Ip(addr.ip()),
        (None, ServerAddr::Unix(_)) => Client::Unix,
        (None, ServerAddr::Tcp(_)) => Client::Unknown,
    };
    Record {
        kind,
        client,
        method: req.method.clone(),
        scheme: req.scheme.as_str(),
        raw_path: req.raw_path.clone(),
        query: req.query_string.clone(),
        version: req.http_version,
        request_headers: header_values(&req.headers, format.request_headers()),
        response_headers: Vec::new(),
        status: None,
        bytes: 0,
        start,
        duration: Duration::ZERO,
    }
}

/// The value of each of `names` in `headers`: repeated fields joined with `, `.
fn header_values(headers: &Headers, names: &[String]) -> Vec<Option<Bytes>> {
    names
        .iter()
        .map(|name| {
            let mut values = headers.get_all(name);
            let first = values.next()?;
            let Some(second) = values.next() else {
                return Some(first.clone());
            };
            let mut joined = first.to_vec();
            for v in std::iter::once(second).chain(values) {
                joined.extend_from_slice(b", ");
                joined.extend_from_slice(v);
            }
            Some(Bytes::from(joined))
        })
        .collect()
}

/// Writes the line when dropped: at the end of the call, or when the call's future is dropped.
struct Finish {
    watch: Arc<Watch>,
    record: Record,
    stamp: Stamp,
}

impl Drop for Finish {
    fn drop(&mut self) {
        let logger = &self.watch.logger;
        let outcome = std::mem::take(&mut *self.watch.lock());
        let r = &mut self.record;
        r.status = outcome.status;
        r.bytes = outcome.bytes;
        r.response_headers = outcome.response_headers;
        r.duration = logger.clock.elapsed(&self.stamp);
        logger.writer.submit(logger.format.render(r));
    }
}

/// Learns of the events the server accepted.
struct Watch {
    logger: Arc<Logger>,
    connection: Option<Connection>,
    outcome: Mutex<Outcome>,
}

/// The response half of a line.
#[derive(Default)]
struct Outcome {
    status: Option<u16>,
    bytes: u64,
    response_headers: Vec<Option<Bytes>>,
}

/// What an event offered to the server means for the line.
enum Note {
    /// A start (or a WebSocket accept): its status and the logged response headers.
    Start(u16, Vec<Option<Bytes>>),
    /// `websocket.close`: a 403 if nothing was answered yet.
    Close,
    /// Body or message bytes.
    Bytes(u64),
    /// A file body, measured once it is accepted.
    File {
        path: PathBuf,
        offset: u64,
        length: Option<u64>,
    },
    /// Nothing to log.
    Other,
}

impl Watch {
    fn lock(&self) -> std::sync::MutexGuard<'_, Outcome> {
        self.outcome.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn start(&self, status: u16, headers: &Headers) -> Note {
        let names = self.logger.format.response_headers();
        Note::Start(status, header_values(headers, names))
    }
}

fn body_note(b: &ResponseBody) -> Note {
    match &b.file {
        Some(path) => Note::File {
            path: path.clone(),
            offset: b.offset,
            length: b.length,
        },
        None => Note::Bytes(b.bytes.len() as u64),
    }
}

/// The bytes a file body sends: `length` (or the rest) from `offset`, cut to the file's size.
/// If the file cannot be measured, `length` (or 0) is the best guess.
fn file_bytes(path: &std::path::Path, offset: u64, length: Option<u64>) -> u64 {
    match std::fs::metadata(path) {
        Ok(meta) => {
            let left = meta.len().saturating_sub(offset);
            length.map_or(left, |l| l.min(left))
        }
        Err(_) => length.unwrap_or(0),
    }
}

impl SendWatch for Watch {
    type Note = Note;

    fn note(&self, event: &SendEvent) -> Note {
        // Once the client is gone, sends are no-ops: their bytes go nowhere.
        let connected = self
            .connection
            .as_ref()
            .is_none_or(Connection::is_connected);
        match event {
            SendEvent::HttpResponseStart {
                status, headers, ..
            }
            | SendEvent::SseStart { status, headers }
            | SendEvent::SseHttpResponseStart { status, headers }
            | SendEvent::WebsocketHttpResponseStart { status, headers } => {
                self.start(*status, headers)
            }
            SendEvent::WebsocketAccept { headers, .. } => self.start(101, headers),
            SendEvent::WebsocketClose { .. } => Note::Close,
            _ if !connected => Note::Other,
            SendEvent::HttpResponseBody(b)
            | SendEvent::SseHttpResponseBody(b)
            | SendEvent::WebsocketHttpResponseBody(b) => body_note(b),
            SendEvent::WebsocketSend(m) => Note::Bytes(m.len() as u64),
            SendEvent::SseSend { data, .. } => Note::Bytes(data.len() as u64),
            _ => Note::Other,
        }
    }

    fn accepted(&self, note: Note) {
        let add = match note {
            Note::Start(status, headers) => {
                let mut o = self.lock();
                // The first start wins (a later one is refused, or dropped once the client left).
                if o.status.is_none() {
                    o.status = Some(status);
                    o.response_headers = headers;
                }
                return;
            }
            Note::Close => {
                let mut o = self.lock();
                // Before any answer, a close refuses the handshake with 403.
                o.status.get_or_insert(403);
                return;
            }
            Note::Bytes(n) => n,
            Note::File {
                path,
                offset,
                length,
            } => file_bytes(&path, offset, length),
            Note::Other => return,
        };
        let mut o = self.lock();
        o.bytes = o.bytes.saturating_add(add);
    }

    fn refused(&self, _note: Note, _error: &Error) {}
}

/// Where times come from: the system, or fixed values in tests.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Clock {
    System,
    /// Every call starts at `start` and lasts `elapsed`.
    #[cfg(test)]
    Fixed {
        start: SystemTime,
        elapsed: Duration,
    },
}

/// When a call began.
#[derive(Clone, Copy, Debug)]
struct Stamp {
    wall: SystemTime,
    mono: Instant,
}

impl Clock {
    fn now(&self) -> Stamp {
        let mono = Instant::now();
        match *self {
            Clock::System => Stamp {
                wall: SystemTime::now(),
                mono,
            },
            #[cfg(test)]
            Clock::Fixed { start, .. } => Stamp { wall: start, mono },
        }
    }

    fn elapsed(&self, stamp: &Stamp) -> Duration {
        match *self {
            Clock::System => stamp.mono.elapsed(),
            #[cfg(test)]
            Clock::Fixed { elapsed, .. } => elapsed,
        }
    }
}
