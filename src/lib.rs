#![warn(missing_docs)]
//! # pagi-server
//!
//! A server for [PAGI](pagi) apps: HTTP/1.1 (its own engine on `httparse`), HTTP/2 (on the
//! `h2` crate: ALPN `h2` on TLS, h2c by prior knowledge or `Upgrade`), lifespan, TCP (v4 and
//! v6) and Unix-socket listeners, the PROXY protocol ([`proxy_protocol`]) and allow/deny lists
//! ([`access`]), graceful shutdown, and the `pagi-server` command line.
//!
//! Run your own app with the same command line as the `pagi-server` binary:
//!
//! ```no_run
//! use pagi::{BoxError, Headers, Receiver, Scope, SendEvent, Sender};
//!
//! async fn app(scope: Scope, _rx: Receiver, tx: Sender) -> Result<(), BoxError> {
//!     match scope {
//!         Scope::Http(_) => {
//!             tx.send(SendEvent::start(200, Headers::new().with("content-type", "text/plain"))).await?;
//!             tx.send(SendEvent::body("Hello from my app", false)).await?;
//!             Ok(())
//!         }
//!         Scope::Lifespan(_) => Ok(()),
//!         other => Err(format!("unsupported scope {}", other.kind()).into()),
//!     }
//! }
//!
//! fn main() -> std::process::ExitCode {
//!     pagi_server::cli::main(app)
//! }
//! ```
//!
//! Or build a [`Server`] yourself (see [`server::Builder`]).
//!
//! # Cancel safety and tasks
//!
//! Each connection runs on one task, and every request of that connection runs on it too: the
//! app's future is polled by the connection's driver, not spawned. Dropping the connection (on a
//! hard shutdown) drops the app's future.

pub mod access;
pub mod cli;
pub mod config;
pub mod demo;
pub mod error;
pub mod io;
pub(crate) mod lifespan;
pub mod listener;
pub mod process;
pub mod proto;
pub mod proxy_protocol;
pub mod server;
pub mod tls;
#[cfg(target_os = "linux")]
pub(crate) mod workers;

pub use config::{Config, H2Cleartext, Http2Config, LifespanMode, ProxyProtocol};
pub use error::Error;
pub use server::{Builder, Handle, LocalAddr, Server};
