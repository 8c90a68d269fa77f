//! A tunnel as the datapath sees it, and the datapath-wide settings.
use bytemuck::{Pod, Zeroable};

/// Tunnels per datapath: A (DC1) and B (DC2) of one region, with room to spare.
pub const MAX_TUNNELS: u32 = 4;

/// "No tunnel" in a tunnel index.
pub const NO_TUNNEL: u32 = u32::MAX;

/// Entries of the CPE's own addresses (spoof check on the LAN fast path).
pub const LOCAL_ADDRS_MAX: u32 = 64;

/// Bumped whenever a map's key, value or meaning changes. A restarted agent adopts pinned
/// maps only when their layout version matches its own (it reads [`Settings::layout_version`]).
pub const LAYOUT_VERSION: u32 = 2;

pub mod tunnel_flags {
    /// The slot holds a configured tunnel.
    pub const CONFIGURED: u32 = 1 << 0;
    /// Liveness (keepalives, SA) says the tunnel carries traffic. Routes whose tunnels are all
    /// down fall back to the covering prefix.
    pub const UP: u32 = 1 << 1;
}

/// Bits of [`Settings::flags`]. All-zero (a fresh map) is the safe default: IPsec mode, where
/// clear GRE is dropped both ways, and no fast path.
pub mod settings_flags {
    /// External-IPsec (GRE-only) mode: another box does IPsec, so GRE is carried in clear and
    /// needs no XFRM state on arrival.
    pub const EXTERNAL_IPSEC: u32 = 1 << 0;
    /// The LAN fast path encapsulates; without it every LAN packet takes the tunnel interface.
    pub const FAST_PATH: u32 = 1 << 1;
}

/// Value of the `TUNNELS` array, indexed by tunnel id (0 = A/DC1, 1 = B/DC2).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct Tunnel {
    /// `tunnel_flags`.
    pub flags: u32,
    /// Our GRE transport address: outer source of what we send.
    pub local_gre: u32,
    /// The DC's GRE transport address: outer destination.
    pub remote_gre: u32,
    /// The DC's IPsec address: the remote end of the SA that must have decrypted its GRE.
    pub remote_ipsec: u32,
    /// The reqid of this tunnel's child SA.
    pub reqid: u32,
    /// The DC's tunnel IP: an allowed inner source besides the Cisco prefix.
    pub dc_tunnel_ip: u32,
    /// The Cisco prefix (network, mask): allowed inner sources of decapsulated traffic.
    pub cisco_net: u32,
    pub cisco_mask: u32,
    /// The tunnel interface (`vc-dcN`): decapsulated packets are delivered into it.
    pub tunnel_ifindex: u32,
    /// Its hidden peer (`vc-dcNp`): fast-path packets enter the stack through it.
    pub peer_ifindex: u32,
    /// Destination MACs for those two redirects.
    pub tunnel_mac: [u8; 6],
    pub peer_mac: [u8; 6],
    /// Largest inner IPv4 packet the tunnel carries (the tunnel interface's MTU).
    pub mtu: u16,
    /// TCP MSS that SYNs through the tunnel are clamped to (never raised).
    pub mss: u16,
}

/// Value of the one-entry `SETTINGS` array.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct Settings {
    /// `settings_flags`.
    pub flags: u32,
    /// [`LAYOUT_VERSION`] of the agent that wrote the maps.
    pub layout_version: u32,
    /// The LAN and WAN devices the XDP fast paths may redirect between: set only while
    /// both have vc's XDP attached natively (a device takes `XDP_REDIRECT`ed frames only if
    /// its driver transmits XDP frames); 0: the XDP programs redirect nothing.
    pub xdp_lan_ifindex: u32,
    pub xdp_wan_ifindex: u32,
}

impl Tunnel {
    #[must_use]
    pub const fn is_configured(&self) -> bool {
        self.flags & tunnel_flags::CONFIGURED != 0
    }

    #[must_use]
    pub const fn is_up(&self) -> bool {
        self.flags & (tunnel_flags::CONFIGURED | tunnel_flags::UP)
            == tunnel_flags::CONFIGURED | tunnel_flags::UP
    }
}
