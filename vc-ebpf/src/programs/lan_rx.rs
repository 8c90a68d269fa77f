//! LAN receive fast path, on TC ingress of the LAN device (optional, switchable).
//!
//! For the common case it does what the slow path does (route, TTL, MSS, encapsulate) and
//! enters the stack through the tunnel's hidden peer, skipping one forward and one veth hop.
//! Everything the kernel must handle (ICMP errors, fragmentation) is left to the tunnel
//! interface untouched. Bypasses the FORWARD chain for tunnel traffic, like an nftables
//! flowtable.
#![expect(
    clippy::cast_possible_truncation,
    reason = "bpf_redirect returns a TC action (i64) that the program returns as i32"
)]
use aya_ebpf::{bindings::TC_ACT_OK, helpers::bpf_redirect, programs::TcContext};
use vc_common::{DropReason, Outcome, Tunnel, settings_flags};

use crate::{
    fib,
    gre::{self, Hop},
    maps::{LOCAL_ADDRS, settings, tunnel, tunnel_by_remote},
    mss,
    parse::{
        ETH_HLEN, ETH_P_IP, IPPROTO_GRE, IPPROTO_TCP, IPPROTO_UDP, IPV4_HLEN, Ipv4, TCP_HLEN,
        TcpHdr, UDP_HLEN, eth_proto, ptr_at, pull, set_eth, set_eth_dst,
    },
    route::select_tunnel,
    stats::{Verdict, count_tx},
};

#[inline(always)]
pub fn try_lan_rx(ctx: &TcContext) -> Result<Verdict, DropReason> {
    let settings = settings();
    // Switched off, the program judges nothing: the kernel routes (and the guard guards).
    if settings.flags & settings_flags::FAST_PATH == 0 {
        return Ok(pass(Outcome::HandoverDisabled));
    }
    if eth_proto(ctx)? != ETH_P_IP {
        return Ok(pass(Outcome::Passed));
    }
    pull(ctx, ETH_HLEN + IPV4_HLEN);
    let ip = Ipv4::parse(ctx, ETH_HLEN)?;
    // GRE to a DC's GRE address is the tunnel itself: only the CPE originates it. A LAN host
    // sending it could inject into the tunnel (GRE-only mode) or, refused by XFRM's selectors,
    // have it routed out in clear.
    if ip.protocol == IPPROTO_GRE && tunnel_by_remote(ip.daddr).is_some() {
        return Err(DropReason::LanGreToDc);
    }
    let Some(id) = select_tunnel(ip.daddr)? else {
        return Ok(pass(Outcome::Passed));
    };
    let tunnel = tunnel(id).ok_or(DropReason::NoUsableTunnel)?;
    // SAFETY: only presence is tested.
    if unsafe { LOCAL_ADDRS.get(ip.saddr) }.is_some() {
        return Err(DropReason::SpoofedSource);
    }
    pull(ctx, ip.l4_offset() + TCP_HLEN);
    if let Some(outcome) = slow_path_outcome(ctx, &ip, tunnel) {
        return Ok(pass(outcome));
    }

    // GRE-only mode: nothing to encrypt, so the outer packet may go straight to the WAN as
    // the kernel would route it. Looked up before encapsulating: the outer TTL depends on it.
    let out = if settings.flags & settings_flags::EXTERNAL_IPSEC == 0 {
        None
    } else {
        fib::lookup(
            ctx,
            // SAFETY: the context is the kernel's `__sk_buff`.
            unsafe { (*ctx.skb.skb).ifindex },
            tunnel.local_gre,
            tunnel.remote_gre,
            IPPROTO_GRE,
            ip.tos,
        )
    };

    ip.decrement_ttl(ctx)?;
    let clamped = mss::clamp(ctx, &ip, tunnel.mss)?;
    let hop = if out.is_some() { Hop::Out } else { Hop::Stack };
    gre::encap(ctx, &ip, tunnel, hop)?;
    count_tx(id, ip.tot_len, true, false, clamped);
    let action = if let Some(next) = out {
        set_eth(ctx, next.smac, next.dmac)?;
        // SAFETY: no preconditions.
        unsafe { bpf_redirect(next.ifindex, 0) }
    } else {
        set_eth_dst(ctx, tunnel.peer_mac)?;
        // Sent out of the tunnel interface, the packet re-enters the stack on its peer, with
        // our GRE address as its source: only the peer needs accept_local, never a LAN-facing
        // device. Through the veth rather than an ingress redirect: the peer's NAPI can GRO
        // it, where an ingress redirect would queue each packet to the backlog.
        // SAFETY: no preconditions.
        unsafe { bpf_redirect(tunnel.tunnel_ifindex, 0) }
    };
    Ok(Verdict::new(action as i32, Outcome::Forwarded))
}

#[inline(always)]
const fn pass(outcome: Outcome) -> Verdict {
    Verdict::new(TC_ACT_OK, outcome)
}

/// Why the kernel must see this packet on the tunnel interface, if it must.
#[inline(always)]
fn slow_path_outcome(ctx: &TcContext, ip: &Ipv4, tunnel: &Tunnel) -> Option<Outcome> {
    if ip.ttl <= 1 {
        return Some(Outcome::HandoverTtl);
    }
    if ip.hlen != IPV4_HLEN {
        return Some(Outcome::HandoverOptions);
    }
    let mtu = usize::from(tunnel.mtu);
    // SAFETY: the context is the kernel's `__sk_buff`.
    let gso_size = unsafe { (*ctx.skb.skb).gso_size } as usize;
    if gso_size != 0 {
        // Each segment is the headers plus gso_size bytes of payload.
        return match segment_headers(ctx, ip) {
            Some(headers) if headers + gso_size <= mtu => None,
            _ => Some(Outcome::HandoverGso),
        };
    }
    if ip.tot_len > mtu {
        return Some(if ip.dont_fragment() {
            Outcome::HandoverTooBig
        } else {
            Outcome::HandoverFragmentation
        });
    }
    None
}

/// IP and L4 header length of each segment of a GSO packet, for the protocols that have GSO.
#[inline(always)]
fn segment_headers(ctx: &TcContext, ip: &Ipv4) -> Option<usize> {
    match ip.protocol {
        IPPROTO_TCP => {
            let tcp: *const TcpHdr = ptr_at(ctx, ip.l4_offset()).ok()?;
            // SAFETY: checked by `ptr_at`.
            let doff = unsafe { (*tcp).doff_res } >> 4;
            Some(ip.hlen + usize::from(doff) * 4)
        }
        IPPROTO_UDP => Some(ip.hlen + UDP_HLEN),
        _ => None,
    }
}
