//! GRE (RFC 2784) encapsulation and decapsulation of IPv4.
#![expect(
    clippy::cast_possible_truncation,
    clippy::cast_possible_wrap,
    reason = "lengths and offsets are bounded by the skb (< 64 KiB); the helpers take u32/i32"
)]
use aya_ebpf::{
    bindings::{
        BPF_F_ADJ_ROOM_ENCAP_L3_IPV4, BPF_F_ADJ_ROOM_ENCAP_L4_GRE, BPF_F_ADJ_ROOM_FIXED_GSO,
        bpf_adj_room_mode::BPF_ADJ_ROOM_MAC,
    },
    helpers::{bpf_get_prandom_u32, bpf_xdp_adjust_head},
    programs::{TcContext, XdpContext},
};
use vc_common::{DropReason, Tunnel, csum};

use crate::{
    maps::IP_ID,
    parse::{ETH_HLEN, EthHdr, GreHdr, IPPROTO_GRE, IPV4_HLEN, Ipv4, Packet, ptr_at},
};

pub const GRE_HLEN: usize = 4;
/// What encapsulation adds: outer IPv4 without options and the base GRE header.
pub const ENCAP_LEN: usize = IPV4_HLEN + GRE_HLEN;
pub const GRE_PROTO_IPV4: [u8; 2] = 0x0800u16.to_be_bytes();
/// The payload type of a Cisco keepalive's innermost GRE header.
pub const GRE_PROTO_KEEPALIVE: [u8; 2] = [0, 0];

const GRE_CSUM: u16 = 0x8000;
/// Routing, strict source route and the top recursion bit: bits 1, 4 and 5, which RFC 2784
/// §2.3 makes a receiver discard.
const GRE_RFC1701: u16 = 0x4000 | 0x0800 | 0x0400;
/// Key and sequence number (RFC 2890).
const GRE_KEY_SEQ: u16 = 0x2000 | 0x1000;
const GRE_VERSION: u16 = 0x0007;
/// The TTL the outer header leaves the CPE with, as Linux's tunnels (and `ip_default_ttl`).
const OUTER_TTL: u8 = 64;
const IP_DF_BYTE: u8 = 0x40;
const ECN_MASK: u8 = 0x03;
const ECN_NOT_ECT: u8 = 0x00;
const ECN_ECT1: u8 = 0x01;
const ECN_ECT0: u8 = 0x02;
const ECN_CE: u8 = 0x03;

/// Where the encapsulated packet goes next, which decides the TTL its outer header is built
/// with: it must leave the CPE with [`OUTER_TTL`], as the kernel's own GRE sends it.
#[derive(Clone, Copy)]
pub enum Hop {
    /// Straight out of the WAN device (GRE-only fast path after a FIB lookup).
    Out,
    /// Back into the stack, which forwards it to the WAN (through XFRM) and decrements the
    /// TTL on the way: built one higher.
    Stack,
}

impl Hop {
    #[inline(always)]
    const fn outer_ttl(self) -> u8 {
        match self {
            Hop::Out => OUTER_TTL,
            Hop::Stack => OUTER_TTL + 1,
        }
    }
}

/// A received GRE header.
pub struct Gre {
    pub proto: [u8; 2],
    /// Header length: 4, or 8 with the checksum present.
    pub len: usize,
}

/// Parses and validates the GRE header at `offset`, `available` bytes before the IP payload
/// ends.
#[inline(always)]
pub fn parse(ctx: &impl Packet, offset: usize, available: usize) -> Result<Gre, DropReason> {
    let hdr: *const GreHdr = ptr_at(ctx, offset)?;
    // SAFETY: checked by `ptr_at`.
    let (flags, proto) = unsafe { (u16::from_be_bytes((*hdr).flags), (*hdr).proto) };
    if flags & (GRE_RFC1701 | GRE_VERSION) != 0 {
        return Err(DropReason::GreMalformed);
    }
    if flags & GRE_KEY_SEQ != 0 {
        return Err(DropReason::GreUnsupported);
    }
    // The optional checksum is skipped, not verified: in IPsec mode ESP's ICV already
    // authenticated the packet, and the inner headers carry their own checksums.
    let len = if flags & GRE_CSUM != 0 { 8 } else { GRE_HLEN };
    if len > available {
        return Err(DropReason::Truncated);
    }
    Ok(Gre { proto, len })
}

/// Puts an outer IPv4 + GRE header in front of the inner packet `ip` (at `ETH_HLEN`), for
/// `tunnel`. DSCP and ECN are copied from the inner header (RFC 2983 uniform model, RFC 6040
/// normal mode: voice keeps its EF marking on the wire), DF likewise so path-MTU discovery
/// works end to end. The outer IP ID is the CPE's own (see [`outer_id`]).
#[inline(always)]
pub fn encap(ctx: &TcContext, ip: &Ipv4, tunnel: &Tunnel, hop: Hop) -> Result<(), DropReason> {
    let inner: *const [u8; IPV4_HLEN] = ptr_at(ctx, ip.offset)?;
    // SAFETY: checked by `ptr_at`.
    let df = unsafe { (*inner)[6] } & IP_DF_BYTE;
    // SAFETY: the context is the kernel's `__sk_buff`.
    let id = outer_id(unsafe { (*ctx.skb.skb).gso_segs });
    let outer = outer_header(ip, tunnel, hop, id, df);

    // FIXED_GSO: segments were sized for the tunnel MTU, which already leaves room for the
    // outer headers; without it the kernel would shrink them by another 24 bytes (and it
    // refuses to resize UDP GSO at all).
    ctx.adjust_room(
        ENCAP_LEN as i32,
        BPF_ADJ_ROOM_MAC,
        u64::from(
            BPF_F_ADJ_ROOM_ENCAP_L3_IPV4 | BPF_F_ADJ_ROOM_ENCAP_L4_GRE | BPF_F_ADJ_ROOM_FIXED_GSO,
        ),
    )
    .map_err(|_| DropReason::RewriteFailed)?;
    write_outer(ctx, &outer)
}

/// As [`encap`], for an XDP frame sent straight out of the WAN ([`Hop::Out`]): the room is
/// made in front (`bpf_xdp_adjust_head`, a pointer move) and the Ethernet header is written
/// anew for the next hop (`eth`), so nothing is moved.
#[inline(always)]
pub fn encap_xdp(
    ctx: &XdpContext,
    ip: &Ipv4,
    tunnel: &Tunnel,
    eth: &EthHdr,
) -> Result<(), DropReason> {
    let inner: *const [u8; IPV4_HLEN] = ptr_at(ctx, ip.offset)?;
    // SAFETY: checked by `ptr_at`.
    let df = unsafe { (*inner)[6] } & IP_DF_BYTE;
    let outer = outer_header(ip, tunnel, Hop::Out, outer_id(1), df);
    // SAFETY: the context is the kernel's `xdp_md`; a negative delta grows the headroom.
    if unsafe { bpf_xdp_adjust_head(ctx.ctx, -(ENCAP_LEN as i32)) } != 0 {
        return Err(DropReason::RewriteFailed);
    }
    let hdr: *mut EthHdr = ptr_at(ctx, 0)?;
    // SAFETY: checked by `ptr_at`, after the room was made.
    unsafe {
        (*hdr).dst = eth.dst;
        (*hdr).src = eth.src;
        (*hdr).proto = eth.proto;
    }
    write_outer(ctx, &outer)
}

/// The outer IPv4 header for `ip` in `tunnel`, checksum included.
#[inline(always)]
fn outer_header(ip: &Ipv4, tunnel: &Tunnel, hop: Hop, id: u16, df: u8) -> [u8; IPV4_HLEN] {
    let id = id.to_be_bytes();
    // GSO super-packets may exceed 64 KiB with their outer header; segmentation rewrites it.
    let tot_len = (ip.tot_len + ENCAP_LEN).min(usize::from(u16::MAX)) as u16;
    let len = tot_len.to_be_bytes();
    let src = tunnel.local_gre.to_ne_bytes();
    let dst = tunnel.remote_gre.to_ne_bytes();
    let mut outer: [u8; IPV4_HLEN] = [
        0x45,
        ip.tos,
        len[0],
        len[1],
        id[0],
        id[1],
        df,
        0,
        hop.outer_ttl(),
        IPPROTO_GRE,
        0,
        0,
        src[0],
        src[1],
        src[2],
        src[3],
        dst[0],
        dst[1],
        dst[2],
        dst[3],
    ];
    let check = csum::ipv4_header(&outer).to_be_bytes();
    outer[10] = check[0];
    outer[11] = check[1];
    outer
}

/// Writes the outer IPv4 and base GRE header after the Ethernet header.
#[inline(always)]
fn write_outer(ctx: &impl Packet, outer: &[u8; IPV4_HLEN]) -> Result<(), DropReason> {
    let hdr: *mut [u8; IPV4_HLEN] = ptr_at(ctx, ETH_HLEN)?;
    let gre: *mut GreHdr = ptr_at(ctx, ETH_HLEN + IPV4_HLEN)?;
    // SAFETY: checked by `ptr_at`.
    unsafe {
        *hdr = *outer;
        (*gre).flags = [0, 0];
        (*gre).proto = GRE_PROTO_IPV4;
    }
    Ok(())
}

/// A fresh outer IP ID from this CPU's counter, reserving one per segment of a GSO packet
/// (segmentation numbers the segments' outer headers from it). Many inner flows share one
/// outer address pair, so copying the inner ID (or a fixed one) would repeat IDs within the
/// reassembly window if non-DF outer packets fragment; Linux's tunnels count likewise. A
/// counter found at 0 (never used, or wrapped) is started at a random value, so CPUs do not
/// count in step.
#[inline(always)]
fn outer_id(gso_segs: u32) -> u16 {
    let segments = gso_segs.max(1);
    match IP_ID.get_ptr_mut(0) {
        // SAFETY: a per-CPU slot is only touched by programs on this CPU, one at a time.
        Some(counter) => unsafe {
            if *counter == 0 {
                *counter = bpf_get_prandom_u32() | 1;
            }
            let id = *counter;
            *counter = id.wrapping_add(segments);
            id as u16
        },
        None => 0,
    }
}

/// As [`decap`], for an XDP frame: the Ethernet header `eth` is written just before the inner
/// packet and the head moved to it (`bpf_xdp_adjust_head`), so nothing is moved.
#[inline(always)]
pub fn decap_xdp(
    ctx: &XdpContext,
    outer: &Ipv4,
    gre: &Gre,
    eth: &EthHdr,
) -> Result<(), DropReason> {
    let len = outer.hlen + gre.len;
    if len > GRE_DECAP_MAX {
        return Err(DropReason::BadIpHeader);
    }
    let hdr: *mut EthHdr = ptr_at(ctx, len)?;
    // SAFETY: checked by `ptr_at`.
    unsafe {
        (*hdr).dst = eth.dst;
        (*hdr).src = eth.src;
        (*hdr).proto = eth.proto;
    }
    // SAFETY: the context is the kernel's `xdp_md`; the frame is longer than `len`.
    if unsafe { bpf_xdp_adjust_head(ctx.ctx, len as i32) } != 0 {
        return Err(DropReason::RewriteFailed);
    }
    Ok(())
}

/// The most [`decap_xdp`] strips: outer IPv4 with options and GRE with checksum.
const GRE_DECAP_MAX: usize = 60 + 8;

/// Removes the outer IPv4 and GRE headers, leaving the inner packet after the Ethernet header.
/// `FIXED_GSO` keeps the GSO size of packets GRO merged on the WAN.
#[inline(always)]
pub fn decap(ctx: &TcContext, outer: &Ipv4, gre: &Gre) -> Result<(), DropReason> {
    let len = (outer.hlen + gre.len) as i32;
    ctx.adjust_room(-len, BPF_ADJ_ROOM_MAC, u64::from(BPF_F_ADJ_ROOM_FIXED_GSO))
        .map_err(|_| DropReason::RewriteFailed)
}

/// Congestion experienced on the outer header over a Not-ECT inner packet: the signal cannot
/// be passed on (RFC 6040 §4.2), the packet is dropped.
#[inline(always)]
pub const fn ce_on_not_ect(outer_tos: u8, inner_tos: u8) -> bool {
    outer_tos & ECN_MASK == ECN_CE && inner_tos & ECN_MASK == ECN_NOT_ECT
}

/// RFC 6040 §4.2 decapsulation (normal mode), as Linux's tunnels do it: congestion
/// experienced on the outer header reaches an ECN-capable inner packet as CE, an ECT(1)
/// outer header turns an ECT(0) inner one into ECT(1), and CE over a Not-ECT inner packet
/// cannot be passed on: the packet is dropped (the congestion signal must not be lost).
#[inline(always)]
pub fn decap_ecn(ctx: &impl Packet, outer_tos: u8, inner: &Ipv4) -> Result<(), DropReason> {
    if ce_on_not_ect(outer_tos, inner.tos) {
        return Err(DropReason::CeOnNotEct);
    }
    let ecn = match (outer_tos & ECN_MASK, inner.tos & ECN_MASK) {
        (ECN_CE, ECN_ECT0 | ECN_ECT1) => ECN_CE,
        (ECN_ECT1, ECN_ECT0) => ECN_ECT1,
        _ => return Ok(()),
    };
    let hdr = inner.header(ctx)?;
    // SAFETY: checked by `ptr_at` inside `header`.
    unsafe {
        let old = u16::from_be_bytes([(*hdr).version_ihl, (*hdr).tos]);
        let tos = ((*hdr).tos & !ECN_MASK) | ecn;
        let new = u16::from_be_bytes([(*hdr).version_ihl, tos]);
        (*hdr).tos = tos;
        let check = csum::replace16(u16::from_be_bytes((*hdr).check), old, new);
        (*hdr).check = check.to_be_bytes();
    }
    Ok(())
}
