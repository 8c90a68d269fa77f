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
    programs::TcContext,
};
use vc_common::{DropReason, Tunnel, csum};

use crate::parse::{ETH_HLEN, GreHdr, IPPROTO_GRE, IPV4_HLEN, Ipv4, ptr_at};

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
const OUTER_TTL: u8 = 64;
const IP_DF_BYTE: u8 = 0x40;
const ECN_MASK: u8 = 0x03;
const ECN_CE: u8 = 0x03;

/// A received GRE header.
pub struct Gre {
    pub proto: [u8; 2],
    /// Header length: 4, or 8 with the checksum present.
    pub len: usize,
}

/// Parses and validates the GRE header at `offset`, `available` bytes before the IP payload
/// ends.
#[inline(always)]
pub fn parse(ctx: &TcContext, offset: usize, available: usize) -> Result<Gre, DropReason> {
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
/// works end to end.
#[inline(always)]
pub fn encap(ctx: &TcContext, ip: &Ipv4, tunnel: &Tunnel) -> Result<(), DropReason> {
    let inner: *const [u8; IPV4_HLEN] = ptr_at(ctx, ip.offset)?;
    // SAFETY: checked by `ptr_at`.
    let (id, frag) = unsafe { ([(*inner)[4], (*inner)[5]], (*inner)[6]) };
    let df = frag & IP_DF_BYTE;
    // GSO super-packets may exceed 64 KiB with their outer header; segmentation rewrites it.
    let tot_len = (ip.tot_len + ENCAP_LEN).min(usize::from(u16::MAX)) as u16;

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
        OUTER_TTL,
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

    let hdr: *mut [u8; IPV4_HLEN] = ptr_at(ctx, ETH_HLEN)?;
    let gre: *mut GreHdr = ptr_at(ctx, ETH_HLEN + IPV4_HLEN)?;
    // SAFETY: checked by `ptr_at`, after the room was made.
    unsafe {
        *hdr = outer;
        (*gre).flags = [0, 0];
        (*gre).proto = GRE_PROTO_IPV4;
    }
    Ok(())
}

/// Removes the outer IPv4 and GRE headers, leaving the inner packet after the Ethernet header.
/// `FIXED_GSO` keeps the GSO size of packets GRO merged on the WAN.
#[inline(always)]
pub fn decap(ctx: &TcContext, outer: &Ipv4, gre: &Gre) -> Result<(), DropReason> {
    let len = (outer.hlen + gre.len) as i32;
    ctx.adjust_room(-len, BPF_ADJ_ROOM_MAC, u64::from(BPF_F_ADJ_ROOM_FIXED_GSO))
        .map_err(|_| DropReason::RewriteFailed)
}

/// RFC 6040 decapsulation: congestion experienced on the outer header is kept by marking an
/// ECN-capable inner packet CE. (A Not-ECT inner packet is left as it is, as Linux does.)
#[inline(always)]
pub fn propagate_ce(ctx: &TcContext, outer_tos: u8, inner: &Ipv4) -> Result<(), DropReason> {
    let inner_ecn = inner.tos & ECN_MASK;
    if outer_tos & ECN_MASK != ECN_CE || inner_ecn == 0 || inner_ecn == ECN_CE {
        return Ok(());
    }
    let hdr = inner.header(ctx)?;
    // SAFETY: checked by `ptr_at` inside `header`.
    unsafe {
        let old = u16::from_be_bytes([(*hdr).version_ihl, (*hdr).tos]);
        let tos = (*hdr).tos | ECN_CE;
        let new = u16::from_be_bytes([(*hdr).version_ihl, tos]);
        (*hdr).tos = tos;
        let check = csum::replace16(u16::from_be_bytes((*hdr).check), old, new);
        (*hdr).check = check.to_be_bytes();
    }
    Ok(())
}
