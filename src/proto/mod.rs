//! Protocol engines.

pub mod h1;
pub mod h2;
pub(crate) mod ws;
