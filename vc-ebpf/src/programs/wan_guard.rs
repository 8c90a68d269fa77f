//! WAN transmit guard, on TC egress of the WAN device, which runs after XFRM.
//!
//! In IPsec mode nothing vc carries may leave in clear: not GRE (an SA missing, being
//! replaced, or charon gone), not a packet to a protected prefix (BGP down, so the kernel
//! routed DC traffic to the default route), and not a packet from one (decapsulated DC
//! traffic for a destination the LAN does not route: vc advertises 0.0.0.0/0 to the DC, so
//! anything may arrive). Fail closed, whatever the control plane does.
//!
//! What passes is handed on, not accepted: another program after the guard in the tcx chain
//! (or a later clsact filter) still sees it.
use aya_ebpf::{maps::lpm_trie::Key, programs::TcContext};
use vc_common::{DropReason, Outcome, settings_flags};

use crate::{
    maps::{PROTECTED, settings},
    parse::{ETH_HLEN, ETH_P_IP, IPPROTO_GRE, IPV4_HLEN, Ipv4, eth_proto, pull},
    stats::{TC_NEXT, Verdict},
};

#[inline(always)]
pub fn try_wan_guard(ctx: &TcContext) -> Result<Verdict, DropReason> {
    let passed = Verdict::new(TC_NEXT, Outcome::Passed);
    if settings().flags & settings_flags::EXTERNAL_IPSEC != 0 || eth_proto(ctx)? != ETH_P_IP {
        return Ok(passed);
    }
    pull(ctx, ETH_HLEN + IPV4_HLEN);
    // A malformed IPv4 header cannot be shown harmless: drop it (fail closed).
    let ip = Ipv4::parse(ctx, ETH_HLEN)?;
    if ip.protocol == IPPROTO_GRE {
        return Err(DropReason::ClearGre);
    }
    if PROTECTED.get(Key::new(32, ip.daddr)).is_some() {
        return Err(DropReason::ClearToProtected);
    }
    if PROTECTED.get(Key::new(32, ip.saddr)).is_some() {
        return Err(DropReason::ClearFromProtected);
    }
    Ok(passed)
}
