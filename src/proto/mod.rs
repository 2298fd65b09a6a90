//! Protocol engines.

pub mod h1;
pub mod h2;
pub(crate) mod wake;
pub(crate) mod ws;
