//! GRE-only mode's XDP fast paths: encapsulation at LAN ingress and decapsulation at WAN
//! ingress, straight to the device the kernel's FIB names (`XDP_REDIRECT`).
//!
//! Only for `mode = "external-ipsec"`: XDP output skips the stack and thus XFRM, so in IPsec
//! mode these programs are never attached (and pass everything if they were). They carry
//! the common case only and decide nothing else: whatever is not plainly forwardable goes up
//! (`XDP_PASS`) to the TC program on the same device, untouched, which decides and counts it
//! as it always did — non-IPv4, IP options, fragments, TTL about to expire, too big for the
//! egress device, SYNs (MSS clamping needs the skb's checksum state), anything for the CPE
//! itself or the tunnel interface, anything the TC program would drop. Forwarded frames are
//! counted under the XDP hooks, and in the tunnel counters as the TC fast path counts them.
//!
//! A frame is redirected only between the LAN and WAN devices the agent named in the
//! settings (both with vc's XDP attached natively): `XDP_REDIRECT` to a device whose driver
//! cannot transmit XDP frames (a bridge, a VLAN, a veth whose peer has no NAPI) drops it.
#![expect(
    clippy::cast_possible_truncation,
    reason = "bpf_redirect returns an XDP action (i64) that the program returns as i32, and \
              IPv4 lengths fit u16"
)]
use aya_ebpf::{helpers::bpf_redirect, programs::XdpContext};
use vc_common::{DropReason, Outcome, settings_flags};

use crate::{
    fib,
    gre::{self, ENCAP_LEN, GRE_PROTO_IPV4},
    maps::{LOCAL_ADDRS, settings, tunnel, tunnel_by_remote},
    parse::{
        ETH_HLEN, ETH_P_IP, EthHdr, IPPROTO_GRE, IPPROTO_TCP, IPV4_HLEN, Ipv4, TCP_SYN, TcpHdr,
        eth_proto, ptr_at,
    },
    route::select_tunnel,
    stats::{Verdict, count_rx, count_tx},
};

/// Both flags: GRE-only mode with the fast path on.
const XDP_MODE: u32 = settings_flags::EXTERNAL_IPSEC | settings_flags::FAST_PATH;

/// LAN ingress: a packet for a DC prefix, encapsulated and sent out of the WAN.
#[inline(always)]
pub fn try_xdp_lan_rx(ctx: &XdpContext) -> Option<Result<Verdict, DropReason>> {
    if settings().flags & XDP_MODE != XDP_MODE || eth_proto(ctx).ok()? != ETH_P_IP {
        return None;
    }
    let ip = Ipv4::parse(ctx, ETH_HLEN).ok()?;
    if ip.protocol == IPPROTO_GRE || !plain(ctx, &ip)? {
        return None;
    }
    let id = select_tunnel(ip.daddr).ok()??;
    let tunnel = tunnel(id)?;
    // SAFETY: only presence is tested.
    if unsafe { LOCAL_ADDRS.get(ip.saddr) }.is_some() || ip.tot_len > usize::from(tunnel.mtu) {
        return None;
    }
    let next = fib::lookup_xdp(
        ctx,
        // SAFETY: the context is the kernel's `xdp_md`.
        unsafe { (*ctx.ctx).ingress_ifindex },
        tunnel.local_gre,
        tunnel.remote_gre,
        IPPROTO_GRE,
        ip.tos,
        (ip.tot_len + ENCAP_LEN) as u16,
    )?;
    if next.ifindex != settings().xdp_wan_ifindex {
        return None;
    }
    // Decided: from here the frame changes, and a failure drops it, as in the TC program.
    Some((|| {
        ip.decrement_ttl(ctx)?;
        gre::encap_xdp(ctx, &ip, tunnel, &eth(&next))?;
        count_tx(id, ip.tot_len, true, false, false);
        // SAFETY: no preconditions.
        let action = unsafe { bpf_redirect(next.ifindex, 0) };
        Ok(Verdict::new(action as i32, Outcome::Forwarded))
    })())
}

/// WAN ingress: GRE from a DC, decapsulated and sent to the LAN.
#[inline(always)]
pub fn try_xdp_wan_rx(ctx: &XdpContext) -> Option<Result<Verdict, DropReason>> {
    if settings().flags & XDP_MODE != XDP_MODE || eth_proto(ctx).ok()? != ETH_P_IP {
        return None;
    }
    let outer = Ipv4::parse(ctx, ETH_HLEN).ok()?;
    if outer.protocol != IPPROTO_GRE || outer.is_fragment() {
        return None;
    }
    let (id, tunnel) = tunnel_by_remote(outer.saddr)?;
    if outer.daddr != tunnel.local_gre {
        return None;
    }
    let gre = gre::parse(ctx, outer.l4_offset(), outer.l4_len()).ok()?;
    if gre.proto != GRE_PROTO_IPV4 {
        return None;
    }
    let inner = Ipv4::parse(ctx, outer.l4_offset() + gre.len).ok()?;
    // Only the DC may speak through its tunnel; keepalives and the rest are the TC program's.
    let from_dc =
        inner.saddr & tunnel.cisco_mask == tunnel.cisco_net || inner.saddr == tunnel.dc_tunnel_ip;
    if inner.tot_len > outer.l4_len() - gre.len
        || inner.protocol == IPPROTO_GRE
        || !from_dc
        || gre::ce_on_not_ect(outer.tos, inner.tos)
        || !plain(ctx, &inner)?
    {
        return None;
    }
    let next = fib::lookup_xdp(
        ctx,
        tunnel.tunnel_ifindex,
        inner.saddr,
        inner.daddr,
        inner.protocol,
        inner.tos,
        inner.tot_len as u16,
    )?;
    if next.ifindex != settings().xdp_lan_ifindex {
        return None;
    }
    Some((|| {
        gre::decap_ecn(ctx, outer.tos, &inner)?;
        inner.decrement_ttl(ctx)?;
        gre::decap_xdp(ctx, &outer, &gre, &eth(&next))?;
        count_rx(id, inner.tot_len, false, false, true);
        // SAFETY: no preconditions.
        let action = unsafe { bpf_redirect(next.ifindex, 0) };
        Ok(Verdict::new(action as i32, Outcome::Forwarded))
    })())
}

/// A packet the fast path may carry as it is: no options, TTL left, not a fragment, and not
/// a SYN. `None`: too short to tell.
#[inline(always)]
fn plain(ctx: &XdpContext, ip: &Ipv4) -> Option<bool> {
    if ip.hlen != IPV4_HLEN || ip.ttl <= 1 || ip.is_fragment() {
        return Some(false);
    }
    if ip.protocol != IPPROTO_TCP {
        return Some(true);
    }
    let tcp: *const TcpHdr = ptr_at(ctx, ip.l4_offset()).ok()?;
    // SAFETY: checked by `ptr_at`.
    Some(unsafe { (*tcp).flags } & TCP_SYN == 0)
}

#[inline(always)]
const fn eth(next: &fib::NextHop) -> EthHdr {
    EthHdr {
        dst: next.dmac,
        src: next.smac,
        proto: ETH_P_IP,
    }
}
