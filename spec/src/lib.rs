#![doc = include_str!("../overview.md")]
//!
//! ---
//!
//! # The rest of the specification
//!
//! * [HTTP](crate::spec::http): the `http` scope and its events.
//! * [WebSocket](crate::spec::websocket): the `websocket` scope and its events.
//! * [SSE](crate::spec::sse): the `sse` scope (server-sent events) and its events.
//! * [Lifespan](crate::spec::lifespan): startup and shutdown.
//! * [Extensions](crate::spec::extensions): optional features a server advertises.
#![warn(missing_docs)]
#![doc(test(attr(deny(warnings))))]

pub mod app;
pub mod channel;
pub mod connection;
pub mod error;
pub mod event;
pub mod headers;
pub mod message;
pub mod scope;
pub mod state;
pub mod wire;

pub use app::App;
pub use bytes::Bytes;
pub use channel::{Receiver, Sender, Sink, Source};
pub use connection::{Connection, ConnectionInfo, DisconnectReason};
pub use error::{BoxError, Error};
pub use event::{ReceiveEvent, ResponseBody, SendEvent};
pub use headers::Headers;
pub use message::Message;
pub use scope::{
    Extensions, HttpScope, HttpVersion, LifespanPagi, LifespanScope, Method, PagiVersion, Path,
    Scheme, Scope, ServerAddr, TlsInfo, PAGI_VERSION,
};
pub use state::State;

/// The normative specification, chapter by chapter (the Markdown files of `spec/`).
pub mod spec {
    #[doc = include_str!("../http.md")]
    pub mod http {}
    #[doc = include_str!("../websocket.md")]
    pub mod websocket {}
    #[doc = include_str!("../sse.md")]
    pub mod sse {}
    #[doc = include_str!("../lifespan.md")]
    pub mod lifespan {}
    #[doc = include_str!("../extensions.md")]
    pub mod extensions {}
}
