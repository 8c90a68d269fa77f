//! LAN receive fast path, on TC ingress of the LAN device (optional, switchable).
//!
//! For the common case it does what the slow path does (route, TTL, MSS, encapsulate) and
//! enters the stack through the tunnel's hidden peer, skipping one forward and one veth hop.
//! Everything the kernel must handle (ICMP errors, fragmentation) is left to the tunnel
//! interface untouched. Bypasses the FORWARD chain for tunnel traffic, like an nftables
//! flowtable.
use aya_ebpf::{bindings::TC_ACT_OK, helpers::bpf_redirect, programs::TcContext};
use vc_common::{DropReason, Tunnel, settings_flags};

use crate::{
    csum, gre,
    maps::{LOCAL_ADDRS, settings, tunnel},
    mss,
    parse::{
        ETH_HLEN, ETH_P_IP, IPPROTO_TCP, IPPROTO_UDP, IPV4_HLEN, Ipv4, TCP_HLEN, TcpHdr, UDP_HLEN,
        eth_proto, ptr_at, pull, set_eth_dst,
    },
    route::select_tunnel,
    stats::{Verdict, count_tx},
};

#[inline(always)]
pub fn try_lan_rx(ctx: &TcContext) -> Result<Verdict, DropReason> {
    if eth_proto(ctx)? != ETH_P_IP {
        return Ok(pass(DropReason::Passed));
    }
    pull(ctx, ETH_HLEN + IPV4_HLEN);
    let ip = Ipv4::parse(ctx, ETH_HLEN)?;
    let Some(id) = select_tunnel(ip.daddr)? else {
        return Ok(pass(DropReason::Passed));
    };
    let tunnel = tunnel(id).ok_or(DropReason::NoUsableTunnel)?;
    // SAFETY: only presence is tested.
    if unsafe { LOCAL_ADDRS.get(ip.saddr) }.is_some() {
        return Err(DropReason::SpoofedSource);
    }
    if settings().flags & settings_flags::FAST_PATH == 0 {
        return Ok(pass(DropReason::HandoverDisabled));
    }
    pull(ctx, ip.l4_offset() + TCP_HLEN);
    if let Some(reason) = slow_path_reason(ctx, &ip, tunnel) {
        return Ok(pass(reason));
    }

    decrement_ttl(ctx, &ip)?;
    let clamped = mss::clamp(ctx, &ip, tunnel.mss)?;
    gre::encap(ctx, &ip, tunnel)?;
    set_eth_dst(ctx, tunnel.peer_mac)?;
    count_tx(id, ip.tot_len, true, false, clamped);
    // Sent out of the tunnel interface, the packet re-enters the stack on its peer, with our
    // GRE address as its source: only the peer needs accept_local, never a LAN-facing
    // device. Through the veth rather than an ingress redirect: the peer's NAPI can GRO it,
    // where an ingress redirect would queue each packet to the backlog.
    // SAFETY: no preconditions.
    let action = unsafe { bpf_redirect(tunnel.tunnel_ifindex, 0) };
    Ok(Verdict::new(action as i32, DropReason::Forwarded))
}

#[inline(always)]
const fn pass(reason: DropReason) -> Verdict {
    Verdict::new(TC_ACT_OK, reason)
}

/// Why the kernel must see this packet on the tunnel interface, if it must.
#[inline(always)]
fn slow_path_reason(ctx: &TcContext, ip: &Ipv4, tunnel: &Tunnel) -> Option<DropReason> {
    if ip.ttl <= 1 {
        return Some(DropReason::HandoverTtl);
    }
    let mtu = usize::from(tunnel.mtu);
    // SAFETY: the context is the kernel's `__sk_buff`.
    let gso_size = unsafe { (*ctx.skb.skb).gso_size } as usize;
    if gso_size != 0 {
        // Each segment is the headers plus gso_size bytes of payload.
        return match segment_headers(ctx, ip) {
            Some(headers) if headers + gso_size <= mtu => None,
            _ => Some(DropReason::HandoverGso),
        };
    }
    if ip.tot_len > mtu {
        return Some(if ip.dont_fragment() {
            DropReason::HandoverTooBig
        } else {
            DropReason::HandoverFragmentation
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

/// What a router does to a packet it forwards (RFC 1812 §5.3.1), with the checksum updated
/// incrementally.
#[inline(always)]
fn decrement_ttl(ctx: &TcContext, ip: &Ipv4) -> Result<(), DropReason> {
    let hdr = ip.header(ctx)?;
    // SAFETY: checked by `ptr_at` inside `header`.
    unsafe {
        let old = u16::from_be_bytes([(*hdr).ttl, (*hdr).protocol]);
        (*hdr).ttl -= 1;
        let new = u16::from_be_bytes([(*hdr).ttl, (*hdr).protocol]);
        let check = csum::replace16(u16::from_be_bytes((*hdr).check), old, new);
        (*hdr).check = check.to_be_bytes();
    }
    Ok(())
}
