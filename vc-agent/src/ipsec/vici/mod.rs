//! vc's own VICI codec and client (strongSwan's control protocol).
//!
//! Why not a crate: rsvici (0.1) drops `success` on plain requests and keeps only `errmsg` on
//! streamed ones, and vc needs the raw `log` and event streams to name IKE failures anyway;
//! rustici is LGPL. The protocol is small: `message` (the tree), `packet` (the framing) are
//! pure and fuzzed; `client` is the tokio I/O around them.
pub mod client;
pub mod fuzz;
pub mod message;
pub mod packet;

pub use client::{Client, ViciError};
pub use message::{Element, Message};
pub use packet::Packet;

#[cfg(test)]
mod tests;
