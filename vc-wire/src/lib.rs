//! vc's protocol codecs, pure functions over bytes and nothing else: no I/O, no runtime, so
//! they are tested byte for byte and fuzzed quickly (the fuzz build needs nothing heavier than
//! this crate). The agent wraps them in its sessions and clients.
pub mod bgp;
pub mod datagram_fuzz;
pub mod gre;
pub mod icmp;
pub mod vici;
