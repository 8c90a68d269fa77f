//! Why a packet left a program the way it did: the index of the verdict counters.
//!
//! Append-only. A discriminant is never reused: a retired reason keeps its number, so counters
//! read by an older agent from a newer datapath (or the reverse) never change meaning.

/// Where a program sits (see `datapath.md`). Selects a block of [`crate::REASON_SLOTS`] counters.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hook {
    /// TC ingress of a tunnel's hidden peer (`vc-dcNp`): what the kernel routed into the tunnel.
    TunnelTx = 0,
    /// TC ingress of the LAN device: the optional fast path.
    LanRx = 1,
    /// TC ingress of the WAN device: GRE from the DCs (after XFRM decrypted it).
    WanRx = 2,
    /// TC egress of the WAN device, after XFRM: the fail-closed guard.
    WanTxGuard = 3,
}

impl Hook {
    pub const ALL: [Hook; 4] = [Hook::TunnelTx, Hook::LanRx, Hook::WanRx, Hook::WanTxGuard];

    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Hook::TunnelTx => "tunnel_tx",
            Hook::LanRx => "lan_rx",
            Hook::WanRx => "wan_rx",
            Hook::WanTxGuard => "wan_tx_guard",
        }
    }
}

/// The outcome of one packet in one program. Slot 0 is the forwarded case; slots below
/// [`DropReason::FIRST_DROP`] are not drops.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DropReason {
    /// Our work was done (encapsulated, decapsulated, clamped) and the packet handed on.
    Forwarded = 0,
    /// Not vc's traffic: left untouched for the kernel.
    Passed = 1,
    /// A GRE keepalive reply to one of our own keepalives: counted, then consumed.
    KeepaliveReply = 2,
    /// Fast path: DF set and larger than the tunnel MTU; the tunnel interface sends
    /// ICMP fragmentation-needed.
    HandoverTooBig = 3,
    /// Fast path: TTL would expire; the kernel sends ICMP time-exceeded.
    HandoverTtl = 4,
    /// Fast path: larger than the tunnel MTU without DF; the kernel fragments before encap.
    HandoverFragmentation = 5,
    /// Fast path: a GSO packet whose segments would not fit the tunnel MTU.
    HandoverGso = 6,
    /// Fast path switched off: the kernel routes the packet through the tunnel interface.
    HandoverDisabled = 7,
    /// Fast path: the packet is already GRE for this tunnel (re-entering the peer after a
    /// fast-path redirect).
    AlreadyEncapsulated = 8,

    /// Shorter than the headers it claims.
    Truncated = 16,
    /// Not IPv4 where only IPv4 is carried (IPv6 neighbour discovery on a tunnel, ARP).
    NotIpv4 = 17,
    /// IPv4 header invalid: version, IHL < 5, total length disagreeing with the frame.
    BadIpHeader = 18,
    /// TCP data offset or option lengths invalid in a SYN that had to be clamped.
    BadTcpHeader = 19,
    /// The device or address is not one of a configured tunnel's.
    UnknownTunnel = 20,
    /// No route entry or no tunnel of it is up.
    NoUsableTunnel = 21,
    /// A LAN packet claiming one of the CPE's own addresses as its source.
    SpoofedSource = 22,
    /// IPsec mode: GRE that did not come through XFRM.
    NoSecpath = 23,
    /// IPsec mode: GRE decrypted by an SA that is not this tunnel's (reqid or peer differs).
    WrongSa = 24,
    /// GRE header invalid: routing present, version not 0, reserved bits set.
    GreMalformed = 25,
    /// GRE with key or sequence number, which vc never configures (RFC 2890).
    GreUnsupported = 26,
    /// The GRE payload is not IPv4 (IPv6 router solicitations from a DC's GRE device).
    InnerNotIpv4 = 27,
    /// Decapsulated source outside the Cisco prefix and not the DC's tunnel IP.
    InnerSourceNotAllowed = 28,
    /// GRE inside GRE that is not a keepalive.
    NestedGre = 29,
    /// An outer GRE fragment: not reassembled in the datapath.
    OuterFragment = 30,
    /// Guard: clear GRE leaving the WAN in IPsec mode.
    ClearGre = 31,
    /// Guard: a clear packet to a protected (Cisco or tunnel) prefix leaving the WAN.
    ClearToProtected = 32,
    /// A helper refused to resize or rewrite the packet.
    RewriteFailed = 33,
    /// The tunnel interface was not reachable for the redirect.
    RedirectFailed = 34,
}

impl DropReason {
    pub const FIRST_DROP: u32 = 16;

    pub const ALL: [DropReason; 28] = [
        DropReason::Forwarded,
        DropReason::Passed,
        DropReason::KeepaliveReply,
        DropReason::HandoverTooBig,
        DropReason::HandoverTtl,
        DropReason::HandoverFragmentation,
        DropReason::HandoverGso,
        DropReason::HandoverDisabled,
        DropReason::AlreadyEncapsulated,
        DropReason::Truncated,
        DropReason::NotIpv4,
        DropReason::BadIpHeader,
        DropReason::BadTcpHeader,
        DropReason::UnknownTunnel,
        DropReason::NoUsableTunnel,
        DropReason::SpoofedSource,
        DropReason::NoSecpath,
        DropReason::WrongSa,
        DropReason::GreMalformed,
        DropReason::GreUnsupported,
        DropReason::InnerNotIpv4,
        DropReason::InnerSourceNotAllowed,
        DropReason::NestedGre,
        DropReason::OuterFragment,
        DropReason::ClearGre,
        DropReason::ClearToProtected,
        DropReason::RewriteFailed,
        DropReason::RedirectFailed,
    ];

    #[must_use]
    pub const fn is_drop(self) -> bool {
        self as u32 >= Self::FIRST_DROP
    }

    #[must_use]
    pub fn from_u32(value: u32) -> Option<Self> {
        Self::ALL.iter().copied().find(|r| *r as u32 == value)
    }

    /// The metric label: stable, snake case.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            DropReason::Forwarded => "forwarded",
            DropReason::Passed => "passed",
            DropReason::KeepaliveReply => "keepalive_reply",
            DropReason::HandoverTooBig => "handover_too_big",
            DropReason::HandoverTtl => "handover_ttl",
            DropReason::HandoverFragmentation => "handover_fragmentation",
            DropReason::HandoverGso => "handover_gso",
            DropReason::HandoverDisabled => "handover_disabled",
            DropReason::AlreadyEncapsulated => "already_encapsulated",
            DropReason::Truncated => "truncated",
            DropReason::NotIpv4 => "not_ipv4",
            DropReason::BadIpHeader => "bad_ip_header",
            DropReason::BadTcpHeader => "bad_tcp_header",
            DropReason::UnknownTunnel => "unknown_tunnel",
            DropReason::NoUsableTunnel => "no_usable_tunnel",
            DropReason::SpoofedSource => "spoofed_source",
            DropReason::NoSecpath => "no_secpath",
            DropReason::WrongSa => "wrong_sa",
            DropReason::GreMalformed => "gre_malformed",
            DropReason::GreUnsupported => "gre_unsupported",
            DropReason::InnerNotIpv4 => "inner_not_ipv4",
            DropReason::InnerSourceNotAllowed => "inner_source_not_allowed",
            DropReason::NestedGre => "nested_gre",
            DropReason::OuterFragment => "outer_fragment",
            DropReason::ClearGre => "clear_gre",
            DropReason::ClearToProtected => "clear_to_protected",
            DropReason::RewriteFailed => "rewrite_failed",
            DropReason::RedirectFailed => "redirect_failed",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{DropReason, Hook};
    use crate::REASON_SLOTS;

    #[test]
    fn every_reason_round_trips_and_fits_its_block() {
        for r in DropReason::ALL {
            assert_eq!(DropReason::from_u32(r as u32), Some(r), "{r:?}");
            assert!((r as u32) < REASON_SLOTS, "{r:?} outside the counter block");
        }
        assert_eq!(DropReason::from_u32(9), None, "9 is unassigned");
    }

    #[test]
    fn names_are_unique() {
        for (i, a) in DropReason::ALL.iter().enumerate() {
            for b in &DropReason::ALL[i + 1..] {
                assert_ne!(a.name(), b.name());
                assert_ne!(*a as u32, *b as u32);
            }
        }
        assert_eq!(Hook::ALL.len(), 4);
    }

    #[test]
    fn only_drops_are_drops() {
        assert!(!DropReason::Forwarded.is_drop());
        assert!(!DropReason::HandoverTooBig.is_drop());
        assert!(DropReason::Truncated.is_drop());
        assert!(DropReason::RedirectFailed.is_drop());
    }
}
