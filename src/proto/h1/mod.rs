//! HTTP/1.1: the protocol core ([`parse`], [`decode`], [`encode`]: bytes in, bytes out, no
//! I/O) and the connection driver that runs apps over it.

pub(crate) mod conn;
pub mod decode;
pub mod encode;
pub(crate) mod exchange;
pub mod parse;
pub(crate) mod sse;
pub(crate) mod target;
pub(crate) mod write;
