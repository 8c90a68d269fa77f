//! vc's own VICI codec and client (strongSwan's control protocol).
//!
//! Why not a crate: rsvici (0.1) drops `success` on plain requests and keeps only `errmsg` on
//! streamed ones, and vc needs the raw `log` and event streams to name IKE failures anyway;
//! rustici is LGPL. The protocol is small: `message` (the tree), `packet` (the framing) are
//! pure and fuzzed and live in `vc-wire`; `client` is the tokio I/O around them.
pub mod client;

pub use client::{Client, ViciError};
pub use vc_wire::vici::{Element, Message, Packet, fuzz, message, packet};

#[cfg(test)]
mod fuzz_seeds;
