//! Routes of the DC prefixes (BGP-learned) and the statically protected prefixes.
use bytemuck::{Pod, Zeroable};

/// Entries of the `ROUTES` LPM trie. The service uses three (two /25s and the /24); the rest
/// is headroom the BGP policy never fills (it rejects anything else).
pub const ROUTES_MAX: u32 = 64;

/// Entries of the `PROTECTED` LPM trie: the Cisco prefix and the tunnel subnets.
pub const PROTECTED_MAX: u32 = 16;

/// Value of the `ROUTES` LPM trie (key: `Key<u32>` = prefix length + network address).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct Route {
    /// Bit `i` set: tunnel `i` advertised this prefix. The datapath takes the lowest-numbered
    /// tunnel that is up, which is also the one the agent's kernel route uses, so fast and
    /// slow path agree.
    pub tunnels: u32,
    /// This entry's own prefix length: the fallback lookup asks for anything shorter.
    pub prefix_len: u32,
}

/// Value of the `PROTECTED` LPM trie: present = never leaves the WAN in clear (IPsec mode).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct ProtectedPrefix {
    pub prefix_len: u32,
}
