//! WAN receive, on TC ingress of the WAN device.
//!
//! GRE from a DC arrives here after XFRM decrypted it (the ESP packet passed through TC
//! first, untouched). It is checked, decapsulated and delivered into the tunnel interface,
//! where the kernel treats it as received on a GRE device: local delivery of BGP and pings,
//! forwarding to the LAN, and reflection of the DC's keepalives.
//!
//! Crossing the veth scrubs the skb's secpath, so after it the kernel enforces nothing: in
//! IPsec mode the SA check here is the only IPsec enforcement point. Outer fragments that
//! pass it are left to the kernel to reassemble (see `Outcome::OuterFragmentToStack`).
#![expect(
    clippy::cast_possible_truncation,
    reason = "bpf_redirect returns a TC action (i64) that the program returns as i32, and the \
              helper takes the size of its state (< 64 bytes) as u32"
)]
use core::mem::{MaybeUninit, size_of};

use aya_ebpf::{
    bindings::{TC_ACT_OK, TC_ACT_SHOT, bpf_xfrm_state},
    helpers::{bpf_redirect, bpf_skb_get_xfrm_state},
    programs::TcContext,
};
use vc_common::{DropReason, Outcome, Tunnel, settings_flags};

use crate::{
    fib,
    gre::{self, GRE_PROTO_IPV4, GRE_PROTO_KEEPALIVE},
    maps::{settings, tunnel_by_remote},
    mss,
    parse::{
        ETH_HLEN, ETH_P_IP, IPPROTO_GRE, IPV4_HLEN, Ipv4, TCP_HLEN, eth_proto, pull, set_eth,
        set_eth_dst,
    },
    stats::{Verdict, count_keepalive_reply, count_rx},
    zero,
};

const AF_INET: u16 = 2;
/// Longest GRE header we accept (with checksum).
const GRE_MAX_HLEN: usize = 8;

#[inline(always)]
pub fn try_wan_rx(ctx: &TcContext) -> Result<Verdict, DropReason> {
    if eth_proto(ctx)? != ETH_P_IP {
        return Ok(pass());
    }
    pull(ctx, ETH_HLEN + IPV4_HLEN);
    let outer = Ipv4::parse(ctx, ETH_HLEN)?;
    if outer.protocol != IPPROTO_GRE {
        return Ok(pass());
    }
    let Some((id, tunnel)) = tunnel_by_remote(outer.saddr) else {
        return Ok(pass());
    };
    if outer.daddr != tunnel.local_gre {
        return Ok(pass());
    }
    if settings().flags & settings_flags::EXTERNAL_IPSEC == 0 {
        check_sa(ctx, tunnel)?;
    }
    if outer.is_fragment() {
        // The kernel reassembles fragments addressed to us on local delivery, and the agent
        // takes the datagram from there (a raw GRE socket, after the XFRM inbound policy
        // check). Only fragments of this tunnel's SA get that far: the check above is the
        // same as for whole packets.
        return Ok(Verdict::new(TC_ACT_OK, Outcome::OuterFragmentToStack));
    }

    pull(ctx, outer.l4_offset() + GRE_MAX_HLEN + IPV4_HLEN);
    let gre = gre::parse(ctx, outer.l4_offset(), outer.l4_len())?;
    if gre.proto == GRE_PROTO_KEEPALIVE {
        count_keepalive_reply(id);
        return Ok(Verdict::new(TC_ACT_SHOT, Outcome::KeepaliveReply));
    }
    if gre.proto != GRE_PROTO_IPV4 {
        return Err(DropReason::InnerNotIpv4);
    }
    let inner = Ipv4::parse(ctx, outer.l4_offset() + gre.len)?;
    if inner.tot_len > outer.l4_len() - gre.len {
        return Err(DropReason::BadIpHeader);
    }
    let keepalive = check_inner_source(&inner, tunnel)?;
    // SAFETY: reading a field of the program's own skb.
    if inner.tot_len > usize::from(tunnel.mtu) && unsafe { (*ctx.skb.skb).gso_size } == 0 {
        // Could not cross into the tunnel interface (a veth drops a frame larger than the
        // receiving end's MTU): left whole to the kernel, delivered by the agent as outer
        // fragments are.
        return Ok(Verdict::new(TC_ACT_OK, Outcome::OversizeToStack));
    }
    gre::decap_ecn(ctx, outer.tos, &inner)?;
    gre::decap(ctx, &outer, &gre)?;

    pull(ctx, ETH_HLEN + IPV4_HLEN);
    let inner = Ipv4::parse(ctx, ETH_HLEN)?;
    pull(ctx, inner.l4_offset() + TCP_HLEN);
    let clamped = !keepalive && mss::clamp(ctx, &inner, tunnel.mss)?;
    if let Some(action) = fast_path(ctx, &inner, tunnel, keepalive)? {
        count_rx(id, inner.tot_len, keepalive, clamped, true);
        return Ok(Verdict::new(action, Outcome::Forwarded));
    }
    set_eth_dst(ctx, tunnel.tunnel_mac)?;
    count_rx(id, inner.tot_len, keepalive, clamped, false);
    // Sent out of the hidden peer, the packet arrives on the tunnel interface as if from a
    // GRE device; the veth's NAPI GROs it as ip_gre's gro_cells would (an ingress redirect
    // would queue each packet to the backlog, and the receiver would ACK every segment).
    // SAFETY: no preconditions.
    let action = unsafe { bpf_redirect(tunnel.peer_ifindex, 0) };
    Ok(Verdict::new(action as i32, Outcome::Forwarded))
}

/// With the fast path on, a decapsulated packet for another host (the LAN) goes straight to
/// its egress device, as the kernel would forward it from the tunnel interface, skipping
/// that interface and the FORWARD chain (like an nftables flowtable). Anything else — our
/// own addresses, TTL about to expire, IP options, an unresolved neighbour, too big — takes
/// the tunnel interface. Returns the TC action when it took the fast path.
#[inline(always)]
fn fast_path(
    ctx: &TcContext,
    inner: &Ipv4,
    tunnel: &Tunnel,
    keepalive: bool,
) -> Result<Option<i32>, DropReason> {
    if keepalive
        || inner.ttl <= 1
        || inner.hlen != IPV4_HLEN
        || settings().flags & settings_flags::FAST_PATH == 0
    {
        return Ok(None);
    }
    let Some(next) = fib::lookup(
        ctx,
        tunnel.tunnel_ifindex,
        inner.saddr,
        inner.daddr,
        inner.protocol,
        inner.tos,
    ) else {
        return Ok(None);
    };
    if next.ifindex == tunnel.tunnel_ifindex {
        return Ok(None);
    }
    inner.decrement_ttl(ctx)?;
    set_eth(ctx, next.smac, next.dmac)?;
    // SAFETY: no preconditions.
    Ok(Some(unsafe { bpf_redirect(next.ifindex, 0) } as i32))
}

#[inline(always)]
const fn pass() -> Verdict {
    Verdict::new(TC_ACT_OK, Outcome::Passed)
}

/// IPsec mode: the GRE must have been decrypted by this tunnel's child SA, from this DC.
#[inline(always)]
fn check_sa(ctx: &TcContext, tunnel: &Tunnel) -> Result<(), DropReason> {
    let mut slot = MaybeUninit::<bpf_xfrm_state>::uninit();
    // All-zero is a valid `bpf_xfrm_state`.
    let state = zero::init(&mut slot);
    // SAFETY: `state` is a writable buffer of the size passed.
    let err = unsafe {
        bpf_skb_get_xfrm_state(
            ctx.skb.skb,
            0,
            &raw mut *state,
            size_of::<bpf_xfrm_state>() as u32,
            0,
        )
    };
    if err != 0 {
        return Err(DropReason::NoSecpath);
    }
    // SAFETY: IPv4 states fill `remote_ipv4`; any bits are a valid u32.
    let remote = unsafe { state.__bindgen_anon_1.remote_ipv4 };
    if state.reqid != tunnel.reqid || state.family != AF_INET || remote != tunnel.remote_ipsec {
        return Err(DropReason::WrongSa);
    }
    Ok(())
}

/// Only the DC may speak through its tunnel: sources in the Cisco prefix, its tunnel IP, and
/// its keepalive probes (GRE from our transport address back to its own). Returns whether
/// the packet is such a keepalive.
#[inline(always)]
fn check_inner_source(inner: &Ipv4, tunnel: &Tunnel) -> Result<bool, DropReason> {
    if inner.protocol == IPPROTO_GRE {
        return if inner.saddr == tunnel.local_gre && inner.daddr == tunnel.remote_gre {
            Ok(true)
        } else {
            Err(DropReason::NestedGre)
        };
    }
    if inner.saddr & tunnel.cisco_mask == tunnel.cisco_net || inner.saddr == tunnel.dc_tunnel_ip {
        Ok(false)
    } else {
        Err(DropReason::InnerSourceNotAllowed)
    }
}
