//! strongSwan's VICI protocol: `message` (the tree) and `packet` (the framing), pure and
//! fuzzed. The agent's `ipsec::vici::client` is the tokio I/O around them.
pub mod fuzz;
pub mod message;
pub mod packet;

pub use message::{Element, Message};
pub use packet::Packet;

#[cfg(test)]
mod tests;
