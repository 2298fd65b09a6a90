//! HTTP/2: each stream is an `http` (or `sse`) scope with `http_version` "2".
//!
//! Framing, HPACK and flow-control bookkeeping are the `h2` crate's; this module maps streams
//! onto PAGI:
//!
//! - [`scope`]: request head → scope fields (no I/O): pseudo-headers removed, `:authority` as
//!   `host`, cookies merged.
//! - `stream`: one stream's state shared with the app (`receive`, `send`, `pagi.connection`)
//!   and its driver, which moves request body to the app and response body to `h2` under flow
//!   control: received DATA is released to the peer only as the app takes `http.request`
//!   events, and response bytes go to `h2` only as the peer's window allows, so `send` waits
//!   instead of `h2` buffering without bound.
//! - `conn`: the connection driver. Every stream's app future is polled on the connection's own
//!   task (a `FuturesUnordered` inside it, no task per stream), so aborting the connection task
//!   drops everything; graceful shutdown sends GOAWAY and lets streams finish.
//! - [`upgrade`]: the connection preface, and h2c `Upgrade` (RFC 7540 §3.2) as byte-slice
//!   functions: the checks on the upgrading request and the synthetic HEADERS frame for
//!   stream 1 spliced in after the client's first SETTINGS frame.
//! - `ws`: WebSocket over HTTP/2 (RFC 8441): an extended CONNECT runs the WebSocket engine
//!   over the stream.
//!
//! How HTTP/2 starts: ALPN `h2` on TLS listeners; on cleartext listeners (TCP and Unix) the
//! HTTP/1.1 driver hands the connection over when it starts with the preface (prior
//! knowledge) or asks for `Upgrade: h2c` (see [`crate::config::H2Cleartext`]).

pub(crate) mod conn;
pub mod scope;
pub(crate) mod stream;
pub mod upgrade;
pub(crate) mod ws;
