//! Why a packet left a program the way it did: the second half of a verdict counter's index.
//!
//! A packet either had an [`Outcome`] (our work done, or left to the kernel) or was dropped
//! for a [`DropReason`]. Both number their variants in one space, the slots of a hook's block
//! of counters: outcomes from 0, drops from 16.
//!
//! Append-only. A number is never reused: a retired variant keeps its number, so counters
//! read by an older agent from a newer datapath (or the reverse) never change meaning.
use crate::REASON_SLOTS;

crate::labelled_enum! {
    /// What happened to a packet that was not dropped.
    pub enum Outcome {
        /// Our work was done (encapsulated, decapsulated, clamped) and the packet handed on.
        Forwarded = 0 => "forwarded",
        /// Not vc's traffic: left untouched for the kernel.
        Passed = 1 => "passed",
        /// A GRE keepalive reply to one of our own keepalives: counted, then consumed.
        KeepaliveReply = 2 => "keepalive_reply",
        /// Fast path: DF set and larger than the tunnel MTU; the tunnel interface sends
        /// ICMP fragmentation-needed.
        HandoverTooBig = 3 => "handover_too_big",
        /// Fast path: TTL would expire; the kernel sends ICMP time-exceeded.
        HandoverTtl = 4 => "handover_ttl",
        /// Fast path: larger than the tunnel MTU without DF; the kernel fragments before
        /// encap.
        HandoverFragmentation = 5 => "handover_fragmentation",
        /// Fast path: a GSO packet whose segments would not fit the tunnel MTU.
        HandoverGso = 6 => "handover_gso",
        /// Fast path switched off: the kernel routes the packet through the tunnel interface.
        HandoverDisabled = 7 => "handover_disabled",
        /// Fast path: the packet is already GRE for this tunnel (re-entering the peer after a
        /// fast-path redirect).
        AlreadyEncapsulated = 8 => "already_encapsulated",
        /// Fast path: the IPv4 header carries options, which the kernel's forwarding
        /// processes (record route, timestamps, source routes): left to it.
        HandoverOptions = 9 => "handover_options",
        /// WAN receive: an outer GRE fragment for this tunnel (in IPsec mode decrypted by its
        /// SA), left to the kernel, which reassembles it on local delivery; the agent takes
        /// the whole datagram from a raw GRE socket, checks it and delivers its inner packet
        /// into the tunnel interface.
        OuterFragmentToStack = 10 => "outer_fragment_to_stack",
        /// WAN receive: GRE whose inner packet is larger than the tunnel MTU (a DC whose
        /// tunnel MTU is larger than ours, or ESP fragmented after encryption and reassembled
        /// before it) and not GSO: a veth drops a frame larger than the receiving end's MTU,
        /// so it is left whole to the kernel and delivered by the agent, cut to the tunnel
        /// MTU, as outer fragments are.
        OversizeToStack = 11 => "oversize_to_stack",
    }
}

crate::labelled_enum! {
    /// Why a packet was dropped.
    pub enum DropReason {
        /// Shorter than the headers it claims.
        Truncated = 16 => "truncated",
        /// Not IPv4 where only IPv4 is carried (IPv6 neighbour discovery on a tunnel, ARP).
        NotIpv4 = 17 => "not_ipv4",
        /// IPv4 header invalid: version, IHL < 5, total length disagreeing with the frame.
        BadIpHeader = 18 => "bad_ip_header",
        /// TCP data offset or option lengths invalid in a SYN that had to be clamped.
        BadTcpHeader = 19 => "bad_tcp_header",
        /// The device or address is not one of a configured tunnel's.
        UnknownTunnel = 20 => "unknown_tunnel",
        /// No route entry or no tunnel of it is up.
        NoUsableTunnel = 21 => "no_usable_tunnel",
        /// A LAN packet claiming one of the CPE's own addresses as its source.
        SpoofedSource = 22 => "spoofed_source",
        /// IPsec mode: GRE that did not come through XFRM.
        NoSecpath = 23 => "no_secpath",
        /// IPsec mode: GRE decrypted by an SA that is not this tunnel's (reqid or peer
        /// differs).
        WrongSa = 24 => "wrong_sa",
        /// GRE header invalid: routing present, version not 0, reserved bits set.
        GreMalformed = 25 => "gre_malformed",
        /// GRE with key or sequence number, which vc never configures (RFC 2890).
        GreUnsupported = 26 => "gre_unsupported",
        /// The GRE payload is not IPv4 (IPv6 router solicitations from a DC's GRE device).
        InnerNotIpv4 = 27 => "inner_not_ipv4",
        /// Decapsulated source outside the Cisco prefix and not the DC's tunnel IP.
        InnerSourceNotAllowed = 28 => "inner_source_not_allowed",
        /// GRE inside GRE that is not a keepalive.
        NestedGre = 29 => "nested_gre",
        /// Retired, no longer counted: outer GRE fragments are left to the kernel's
        /// reassembly (`outer_fragment_to_stack`). Kept so that the number is never reused.
        OuterFragment = 30 => "outer_fragment",
        /// Guard: clear GRE leaving the WAN in IPsec mode.
        ClearGre = 31 => "clear_gre",
        /// Guard: a clear packet to a protected (Cisco or tunnel) prefix leaving the WAN.
        ClearToProtected = 32 => "clear_to_protected",
        /// A helper refused to resize or rewrite the packet.
        RewriteFailed = 33 => "rewrite_failed",
        /// Retired, never counted: `bpf_redirect` with no flags returns `TC_ACT_REDIRECT`
        /// whatever the ifindex (a vanished device drops the packet in the kernel, after the
        /// program). Kept so that the number is never reused.
        RedirectFailed = 34 => "redirect_failed",
        /// RFC 6040: congestion experienced on the outer header of a packet whose inner
        /// header is not ECN-capable; the signal cannot be passed on, so the packet is dropped
        /// (as Linux's tunnels do).
        CeOnNotEct = 35 => "ce_on_not_ect",
        /// Guard: a clear packet from a protected (Cisco or tunnel) prefix leaving the WAN:
        /// decapsulated DC traffic the kernel routed to the default route (no LAN route for
        /// its destination: vc advertises 0.0.0.0/0 to the DC).
        ClearFromProtected = 36 => "clear_from_protected",
        /// LAN receive: a LAN host sending GRE to a DC's GRE address, which only the CPE's
        /// own tunnels may do.
        LanGreToDc = 37 => "lan_gre_to_dc",
    }
}

/// What one verdict counter counts: an outcome or a drop. The agent reads counters by it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Counted {
    Outcome(Outcome),
    Drop(DropReason),
}

impl Counted {
    /// Every outcome, then every drop reason.
    pub const ALL: [Counted; Outcome::ALL.len() + DropReason::ALL.len()] = {
        let mut all =
            [Counted::Outcome(Outcome::Forwarded); Outcome::ALL.len() + DropReason::ALL.len()];
        let mut i = 0;
        while i < Outcome::ALL.len() {
            all[i] = Counted::Outcome(Outcome::ALL[i]);
            i += 1;
        }
        let mut j = 0;
        while j < DropReason::ALL.len() {
            all[i + j] = Counted::Drop(DropReason::ALL[j]);
            j += 1;
        }
        all
    };

    /// The counter's index in its hook's block (see [`crate::verdict_slot`]).
    #[must_use]
    pub const fn slot(self) -> u32 {
        match self {
            Counted::Outcome(outcome) => outcome as u32,
            Counted::Drop(reason) => reason as u32,
        }
    }

    /// What the counter at `slot` of a hook's block counts, if the slot is assigned.
    #[must_use]
    pub const fn from_slot(slot: u32) -> Option<Counted> {
        if let Some(outcome) = Outcome::from_u32(slot) {
            Some(Counted::Outcome(outcome))
        } else if let Some(reason) = DropReason::from_u32(slot) {
            Some(Counted::Drop(reason))
        } else {
            None
        }
    }

    /// The metric label: stable, `snake_case`.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Counted::Outcome(outcome) => outcome.name(),
            Counted::Drop(reason) => reason.name(),
        }
    }

    #[must_use]
    pub const fn is_drop(self) -> bool {
        matches!(self, Counted::Drop(_))
    }
}

impl From<Outcome> for Counted {
    fn from(outcome: Outcome) -> Self {
        Counted::Outcome(outcome)
    }
}

impl From<DropReason> for Counted {
    fn from(reason: DropReason) -> Self {
        Counted::Drop(reason)
    }
}

impl PartialEq<Outcome> for Counted {
    fn eq(&self, other: &Outcome) -> bool {
        *self == Counted::Outcome(*other)
    }
}

impl PartialEq<DropReason> for Counted {
    fn eq(&self, other: &DropReason) -> bool {
        *self == Counted::Drop(*other)
    }
}

// Outcomes and drops share a hook's block: no slot may hold both, and every one must fit.
const _: () = {
    let mut i = 0;
    while i < Counted::ALL.len() {
        assert!(
            Counted::ALL[i].slot() < REASON_SLOTS,
            "a slot outside the block"
        );
        let mut j = i + 1;
        while j < Counted::ALL.len() {
            assert!(
                Counted::ALL[i].slot() != Counted::ALL[j].slot(),
                "a slot counted twice"
            );
            j += 1;
        }
        i += 1;
    }
};

#[cfg(test)]
mod tests {
    use super::{Counted, DropReason, Outcome};
    use crate::REASON_SLOTS;

    #[test]
    fn every_counted_round_trips_and_fits_its_block() {
        for c in Counted::ALL {
            assert_eq!(Counted::from_slot(c.slot()), Some(c), "{c:?}");
            assert!(c.slot() < REASON_SLOTS, "{c:?} outside the counter block");
        }
        assert_eq!(
            Counted::ALL.len(),
            Outcome::ALL.len() + DropReason::ALL.len()
        );
        assert_eq!(Counted::from_slot(15), None, "15 is unassigned");
        assert_eq!(Counted::from_slot(REASON_SLOTS), None);
    }

    #[test]
    fn names_and_slots_are_unique() {
        for (i, a) in Counted::ALL.iter().enumerate() {
            for b in &Counted::ALL[i + 1..] {
                assert_ne!(a.name(), b.name());
                assert_ne!(a.slot(), b.slot());
            }
        }
    }

    #[test]
    fn only_drops_are_drops() {
        assert!(Outcome::ALL.iter().all(|&o| !Counted::from(o).is_drop()));
        assert!(DropReason::ALL.iter().all(|&r| Counted::from(r).is_drop()));
        assert_eq!(
            Counted::from_slot(0),
            Some(Counted::Outcome(Outcome::Forwarded))
        );
        assert_eq!(
            Counted::from_slot(34),
            Some(Counted::Drop(DropReason::RedirectFailed))
        );
    }

    #[test]
    fn the_numbers_are_the_counters_ever_shipped() {
        // Append-only: these slots are in datapaths already deployed.
        assert_eq!(Outcome::AlreadyEncapsulated as u32, 8);
        assert_eq!(Outcome::OuterFragmentToStack as u32, 10);
        assert_eq!(Outcome::OversizeToStack as u32, 11);
        assert_eq!(DropReason::Truncated as u32, 16);
        assert_eq!(DropReason::RedirectFailed as u32, 34);
        assert_eq!(DropReason::ClearFromProtected as u32, 36);
        assert_eq!(DropReason::LanGreToDc as u32, 37);
        assert_eq!(Counted::Drop(DropReason::WrongSa).name(), "wrong_sa");
    }
}
