//! The one definition of everything vc's BPF programs and its agent exchange through maps:
//! the maps' names, keys and values, and what the verdict counters count. Also the one Internet
//! checksum ([`csum`]), which both sides compute.
//!
//! Every map type here is `#[repr(C)]`, padding-free and `bytemuck::Pod`, so the kernel side reads
//! exactly the bytes the agent wrote. IPv4 addresses are `u32` holding the four octets in
//! network order (what a load of `iphdr.saddr` yields): build them with [`ipv4`].
#![no_std]

pub mod csum;
pub mod hook;
#[doc(hidden)]
pub mod labelled;
pub mod maps;
pub mod reason;
pub mod route;
pub mod stats;
pub mod tunnel;

pub use hook::Hook;
pub use reason::{Counted, DropReason, Outcome};
pub use route::{PROTECTED_MAX, ProtectedPrefix, ROUTES_MAX, Route};
pub use stats::{REASON_SLOTS, TunnelStats, VerdictCounter, verdict_slot};
pub use tunnel::{
    LAYOUT_VERSION, LOCAL_ADDRS_MAX, MAX_TUNNELS, NO_TUNNEL, Settings, Tunnel, settings_flags,
    tunnel_flags,
};

/// An IPv4 address as vc's maps hold it: the octets in network order, loaded natively.
#[must_use]
pub const fn ipv4(octets: [u8; 4]) -> u32 {
    u32::from_ne_bytes(octets)
}

/// The octets of an address held as [`ipv4`] builds it.
#[must_use]
pub const fn ipv4_octets(addr: u32) -> [u8; 4] {
    addr.to_ne_bytes()
}

/// The netmask of a prefix length, in the same byte order as [`ipv4`].
#[must_use]
pub const fn ipv4_mask(prefix_len: u32) -> u32 {
    let host_order = if prefix_len == 0 {
        0
    } else if prefix_len >= 32 {
        u32::MAX
    } else {
        u32::MAX << (32 - prefix_len)
    };
    host_order.to_be()
}

#[cfg(feature = "user")]
mod pod {
    // SAFETY: each type is `#[repr(C)]`, has no padding (checked by bytemuck's Pod derive) and
    // every bit pattern is valid.
    unsafe impl aya::Pod for crate::Tunnel {}
    unsafe impl aya::Pod for crate::Settings {}
    unsafe impl aya::Pod for crate::Route {}
    unsafe impl aya::Pod for crate::ProtectedPrefix {}
    unsafe impl aya::Pod for crate::TunnelStats {}
    unsafe impl aya::Pod for crate::VerdictCounter {}
}

#[cfg(test)]
mod tests {
    use super::{ipv4, ipv4_mask, ipv4_octets};

    #[test]
    fn addresses_keep_network_order_in_memory() {
        let a = ipv4([100, 64, 0, 1]);
        assert_eq!(a.to_ne_bytes(), [100, 64, 0, 1]);
        assert_eq!(ipv4_octets(a), [100, 64, 0, 1]);
    }

    #[test]
    fn masks_match_prefix_lengths() {
        assert_eq!(ipv4_mask(0), 0);
        assert_eq!(ipv4_mask(24).to_ne_bytes(), [255, 255, 255, 0]);
        assert_eq!(ipv4_mask(25).to_ne_bytes(), [255, 255, 255, 128]);
        assert_eq!(ipv4_mask(32), u32::MAX);
        assert_eq!(ipv4_mask(40), u32::MAX);
    }
}
