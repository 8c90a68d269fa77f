//! Header layouts and bounds-checked packet access.
//!
//! Fields are byte arrays: the headers sit at unaligned offsets in the packet, so the structs
//! must have alignment 1 for their pointers to be valid.
#![expect(
    clippy::cast_possible_truncation,
    reason = "lengths and offsets are bounded by the skb (< 64 KiB); the helpers take u32/i32"
)]
use core::mem::size_of;

use aya_ebpf::programs::{TcContext, XdpContext};
use vc_common::{DropReason, csum};

pub const ETH_HLEN: usize = 14;
pub const ETH_P_IP: [u8; 2] = 0x0800u16.to_be_bytes();
pub const IPPROTO_TCP: u8 = 6;
pub const IPPROTO_UDP: u8 = 17;
pub const IPPROTO_GRE: u8 = 47;
pub const IPV4_HLEN: usize = 20;
pub const TCP_HLEN: usize = 20;
pub const UDP_HLEN: usize = 8;
pub const TCP_SYN: u8 = 0x02;

const IP_DF: u16 = 0x4000;
const IP_MF: u16 = 0x2000;
const IP_OFFSET: u16 = 0x1fff;

#[repr(C)]
pub struct EthHdr {
    pub dst: [u8; 6],
    pub src: [u8; 6],
    pub proto: [u8; 2],
}

#[repr(C)]
pub struct Ipv4Hdr {
    pub version_ihl: u8,
    pub tos: u8,
    pub tot_len: [u8; 2],
    pub id: [u8; 2],
    pub frag_off: [u8; 2],
    pub ttl: u8,
    pub protocol: u8,
    pub check: [u8; 2],
    pub saddr: [u8; 4],
    pub daddr: [u8; 4],
}

#[repr(C)]
pub struct TcpHdr {
    pub source: [u8; 2],
    pub dest: [u8; 2],
    pub seq: [u8; 4],
    pub ack_seq: [u8; 4],
    pub doff_res: u8,
    pub flags: u8,
    pub window: [u8; 2],
    pub check: [u8; 2],
    pub urg_ptr: [u8; 2],
}

#[repr(C)]
pub struct GreHdr {
    pub flags: [u8; 2],
    pub proto: [u8; 2],
}

/// What the parsers need of a program's context: the linear packet data and its length, the
/// same for a TC program's skb and an XDP program's frame.
pub trait Packet {
    fn data(&self) -> usize;
    fn data_end(&self) -> usize;
    /// The whole packet's length (an skb may hold more than its linear data).
    fn len(&self) -> usize;
}

impl Packet for TcContext {
    #[inline(always)]
    fn data(&self) -> usize {
        TcContext::data(self)
    }

    #[inline(always)]
    fn data_end(&self) -> usize {
        TcContext::data_end(self)
    }

    #[inline(always)]
    fn len(&self) -> usize {
        TcContext::len(self) as usize
    }
}

impl Packet for XdpContext {
    #[inline(always)]
    fn data(&self) -> usize {
        XdpContext::data(self)
    }

    #[inline(always)]
    fn data_end(&self) -> usize {
        XdpContext::data_end(self)
    }

    /// vc's XDP programs take single-buffer frames only: all of it is linear.
    #[inline(always)]
    fn len(&self) -> usize {
        XdpContext::data_end(self) - XdpContext::data(self)
    }
}

/// A pointer to a `T` at `offset`, if all of it lies in the linear packet data.
/// Pointers from here are invalid after any helper that may move the data (`adjust_room`,
/// `store`, `l4_csum_replace`): call again.
#[inline(always)]
pub fn ptr_at<T>(ctx: &impl Packet, offset: usize) -> Result<*mut T, DropReason> {
    let start = ctx.data();
    let end = ctx.data_end();
    if start + offset + size_of::<T>() > end {
        return Err(DropReason::Truncated);
    }
    Ok((start + offset) as *mut T)
}

/// Makes the first `len` bytes (or the whole packet, if shorter) linear, so `ptr_at` sees
/// the headers of skbs whose head is paged. A no-op compare in the common case.
#[inline(always)]
pub fn pull(ctx: &TcContext, len: usize) {
    let len = len.min(TcContext::len(ctx) as usize);
    if ctx.data() + len > ctx.data_end() {
        // Failure leaves the data as it was; `ptr_at` then reports the truncation.
        let _ = ctx.pull_data(len as u32);
    }
}

/// The IPv4 header at `offset`, checked against itself and the frame.
#[derive(Clone, Copy)]
pub struct Ipv4 {
    /// Offset of the header.
    pub offset: usize,
    /// Header length with options.
    pub hlen: usize,
    /// Total length from the header.
    pub tot_len: usize,
    pub protocol: u8,
    pub ttl: u8,
    pub tos: u8,
    pub saddr: u32,
    pub daddr: u32,
    frag_off: u16,
}

impl Ipv4 {
    /// Parses and validates: version 4, IHL ≥ 5, header inside total length, total length
    /// inside the frame.
    #[inline(always)]
    pub fn parse(ctx: &impl Packet, offset: usize) -> Result<Ipv4, DropReason> {
        let hdr: *const Ipv4Hdr = ptr_at(ctx, offset)?;
        // SAFETY: `ptr_at` checked that the header lies in the packet.
        let hdr = unsafe { &*hdr };
        if hdr.version_ihl >> 4 != 4 {
            return Err(DropReason::BadIpHeader);
        }
        let hlen = usize::from(hdr.version_ihl & 0x0f) * 4;
        let tot_len = usize::from(u16::from_be_bytes(hdr.tot_len));
        let available = ctx.len().saturating_sub(offset);
        if hlen < IPV4_HLEN || tot_len < hlen || tot_len > available {
            return Err(DropReason::BadIpHeader);
        }
        Ok(Ipv4 {
            offset,
            hlen,
            tot_len,
            protocol: hdr.protocol,
            ttl: hdr.ttl,
            tos: hdr.tos,
            saddr: u32::from_ne_bytes(hdr.saddr),
            daddr: u32::from_ne_bytes(hdr.daddr),
            frag_off: u16::from_be_bytes(hdr.frag_off),
        })
    }

    #[inline(always)]
    pub const fn l4_offset(&self) -> usize {
        self.offset + self.hlen
    }

    #[inline(always)]
    pub const fn l4_len(&self) -> usize {
        self.tot_len - self.hlen
    }

    #[inline(always)]
    pub const fn dont_fragment(&self) -> bool {
        self.frag_off & IP_DF != 0
    }

    /// Any fragment, first or not.
    #[inline(always)]
    pub const fn is_fragment(&self) -> bool {
        self.frag_off & (IP_MF | IP_OFFSET) != 0
    }

    /// Carries the L4 header (not a non-first fragment).
    #[inline(always)]
    pub const fn has_l4_header(&self) -> bool {
        self.frag_off & IP_OFFSET == 0
    }

    #[inline(always)]
    pub fn header(&self, ctx: &impl Packet) -> Result<*mut Ipv4Hdr, DropReason> {
        ptr_at(ctx, self.offset)
    }

    /// What a router does to a packet it forwards (RFC 1812 §5.3.1), with the checksum
    /// updated incrementally.
    #[inline(always)]
    pub fn decrement_ttl(&self, ctx: &impl Packet) -> Result<(), DropReason> {
        let hdr = self.header(ctx)?;
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
}

/// The `EtherType` of the frame, or `Truncated`.
#[inline(always)]
pub fn eth_proto(ctx: &impl Packet) -> Result<[u8; 2], DropReason> {
    let eth: *const EthHdr = ptr_at(ctx, 0)?;
    // SAFETY: checked by `ptr_at`.
    Ok(unsafe { (*eth).proto })
}

/// Rewrites the destination MAC so the receiving device takes the frame as its own.
#[inline(always)]
pub fn set_eth_dst(ctx: &impl Packet, mac: [u8; 6]) -> Result<(), DropReason> {
    let eth: *mut EthHdr = ptr_at(ctx, 0)?;
    // SAFETY: checked by `ptr_at`.
    unsafe { (*eth).dst = mac };
    Ok(())
}

/// Rewrites both MACs, for a frame sent out of another device.
#[inline(always)]
pub fn set_eth(ctx: &impl Packet, src: [u8; 6], dst: [u8; 6]) -> Result<(), DropReason> {
    let eth: *mut EthHdr = ptr_at(ctx, 0)?;
    // SAFETY: checked by `ptr_at`.
    unsafe {
        (*eth).src = src;
        (*eth).dst = dst;
    }
    Ok(())
}
