//! Tunnel transmit, on TC ingress of a tunnel's hidden peer (`vc-dcNp`).
//!
//! Whatever the kernel routed into the tunnel interface arrives here: forwarded LAN traffic,
//! the CPE's own BGP, pings and ICMP errors, our keepalives. Each is clamped, encapsulated
//! and handed back to the stack, which routes it to the DC's GRE address, where XFRM's
//! GRE-only policy encrypts it.
use aya_ebpf::{bindings::TC_ACT_OK, programs::TcContext};
use vc_common::{DropReason, Outcome, Tunnel};

use crate::{
    gre::{self, GRE_HLEN, GRE_PROTO_KEEPALIVE, Hop},
    maps::tunnel_by_peer,
    mss,
    parse::{
        ETH_HLEN, ETH_P_IP, GreHdr, IPPROTO_GRE, IPV4_HLEN, Ipv4, TCP_HLEN, eth_proto, ptr_at, pull,
    },
    stats::{Verdict, count_tx},
};

#[inline(always)]
pub fn try_tunnel_tx(ctx: &TcContext) -> Result<Verdict, DropReason> {
    // SAFETY: the context is the kernel's `__sk_buff`.
    let ifindex = unsafe { (*ctx.skb.skb).ifindex };
    let (id, tunnel) = tunnel_by_peer(ifindex).ok_or(DropReason::UnknownTunnel)?;
    // Only IPv4 crosses the tunnel: IPv6 neighbour discovery and the like end here.
    if eth_proto(ctx)? != ETH_P_IP {
        return Err(DropReason::NotIpv4);
    }
    pull(ctx, ETH_HLEN + IPV4_HLEN);
    let ip = Ipv4::parse(ctx, ETH_HLEN)?;
    if ip.protocol == IPPROTO_GRE && ip.saddr == tunnel.local_gre && ip.daddr == tunnel.remote_gre {
        return Ok(Verdict::new(TC_ACT_OK, Outcome::AlreadyEncapsulated));
    }
    pull(ctx, ip.l4_offset() + TCP_HLEN);
    let keepalive = is_keepalive(ctx, &ip, tunnel);
    let clamped = mss::clamp(ctx, &ip, tunnel.mss)?;
    gre::encap(ctx, &ip, tunnel, Hop::Stack)?;
    count_tx(id, ip.tot_len, false, keepalive, clamped);
    Ok(Verdict::new(TC_ACT_OK, Outcome::Forwarded))
}

/// One of our own keepalives: the packet the DC will decapsulate and send straight back, GRE
/// from its transport address to ours with payload type 0 (Cisco's format).
#[inline(always)]
fn is_keepalive(ctx: &TcContext, ip: &Ipv4, tunnel: &Tunnel) -> bool {
    if ip.protocol != IPPROTO_GRE
        || ip.saddr != tunnel.remote_gre
        || ip.daddr != tunnel.local_gre
        || ip.l4_len() < GRE_HLEN
    {
        return false;
    }
    ptr_at::<GreHdr>(ctx, ip.l4_offset())
        // SAFETY: checked by `ptr_at`.
        .is_ok_and(|gre| unsafe { (*gre).proto } == GRE_PROTO_KEEPALIVE)
}
