//! Protocol engines.

pub mod h1;
pub(crate) mod ws;
