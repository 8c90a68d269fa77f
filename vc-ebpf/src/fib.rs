//! The kernel's forwarding decision for a packet, taken from BPF (`bpf_fib_lookup`), for the
//! paths that may skip a pass through the stack: GRE-only mode's LAN fast path (nothing to
//! encrypt, so the outer packet can go straight to the WAN) and the fast path of decapsulated
//! traffic toward the LAN.
#![expect(
    clippy::cast_possible_truncation,
    clippy::cast_possible_wrap,
    reason = "the helper takes the size of its parameters (64 bytes) as i32"
)]
use core::mem::{MaybeUninit, size_of};

use aya_ebpf::{
    bindings::{BPF_FIB_LKUP_RET_SUCCESS, bpf_fib_lookup},
    cty::c_void,
    helpers::bpf_fib_lookup as fib_lookup,
    programs::{TcContext, XdpContext},
};

use crate::zero;

const AF_INET: u8 = 2;

/// Where a packet leaves and with which MACs.
pub struct NextHop {
    pub ifindex: u32,
    pub smac: [u8; 6],
    pub dmac: [u8; 6],
}

/// The route and neighbour for a packet from `src` to `dst` arriving on `ingress`, or `None`
/// when the stack must handle it: a local destination, a neighbour not resolved yet, a
/// packet too big for the egress device, no route.
#[inline(always)]
pub fn lookup(
    ctx: &TcContext,
    ingress: u32,
    src: u32,
    dst: u32,
    protocol: u8,
    tos: u8,
) -> Option<NextHop> {
    // tot_len 0: the helper then checks the skb against the egress MTU, which lets GSO
    // packets through whole.
    lookup_from(ctx.skb.skb.cast(), ingress, src, dst, protocol, tos, 0)
}

/// As [`lookup`], for an XDP frame whose IP packet leaves `tot_len` bytes long: the helper
/// checks that against the egress MTU (an XDP frame has no GSO).
#[inline(always)]
pub fn lookup_xdp(
    ctx: &XdpContext,
    ingress: u32,
    src: u32,
    dst: u32,
    protocol: u8,
    tos: u8,
    tot_len: u16,
) -> Option<NextHop> {
    lookup_from(ctx.ctx.cast(), ingress, src, dst, protocol, tos, tot_len)
}

#[inline(always)]
fn lookup_from(
    ctx: *mut c_void,
    ingress: u32,
    src: u32,
    dst: u32,
    protocol: u8,
    tos: u8,
    tot_len: u16,
) -> Option<NextHop> {
    let mut slot = MaybeUninit::<bpf_fib_lookup>::uninit();
    // All-zero is a valid `bpf_fib_lookup`; unset inputs (flags, mark, VLAN) must be zero.
    let params = zero::init(&mut slot);
    params.family = AF_INET;
    params.l4_protocol = protocol;
    params.ifindex = ingress;
    params.__bindgen_anon_1.tot_len = tot_len;
    params.__bindgen_anon_2.tos = tos;
    params.__bindgen_anon_3.ipv4_src = src;
    params.__bindgen_anon_4.ipv4_dst = dst;
    // SAFETY: `params` is a valid, writable `bpf_fib_lookup` of the size passed.
    let rc = unsafe { fib_lookup(ctx, &raw mut *params, size_of::<bpf_fib_lookup>() as i32, 0) };
    (rc == i64::from(BPF_FIB_LKUP_RET_SUCCESS)).then_some(NextHop {
        ifindex: params.ifindex,
        smac: params.smac,
        dmac: params.dmac,
    })
}
