//! WebSocket (RFC 6455, with RFC 7692 permessage-deflate) over an HTTP/1.1 upgrade.
//!
//! The protocol core works on byte slices and `BytesMut`, without I/O, and is unit-tested on
//! its own:
//! - [`frame`]: opcodes, server frame headers, masking, close payloads, client header parsing.
//! - [`read`]: [`read::Reader`] turns client bytes into [`read::Incoming`] items or a
//!   [`read::CloseError`] (the close code to fail the connection with).
//! - [`deflate`]: extension negotiation and the per-connection compressor/decompressor.
//! - [`utf8`]: incremental UTF-8 validation.
//! - [`handshake`]: checking the upgrade request and writing the 101 answer.
//!
//! Around it, [`session`] is the state shared with the app (`receive`/`send`), and [`conn`]
//! drives one connection.

pub(crate) mod conn;
pub(crate) mod deflate;
pub(crate) mod frame;
pub(crate) mod handshake;
pub(crate) mod read;
pub(crate) mod session;
pub(crate) mod utf8;
