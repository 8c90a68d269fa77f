//! The single exit, where every verdict is counted by hook and reason, and the per-tunnel
//! counters.
use aya_ebpf::{
    bindings::{
        TC_ACT_SHOT, TC_ACT_UNSPEC,
        xdp_action::{XDP_DROP, XDP_PASS},
    },
    helpers::bpf_ktime_get_coarse_ns,
};
use vc_common::{Counted, DropReason, Hook, Outcome, verdict_slot};

use crate::maps::{VERDICTS, tunnel_stats};

/// "Not my decision: go on". Under tcx this is `TCX_NEXT` (the next program in the chain
/// runs, and after the last one the packet goes on as if no program were attached); under
/// clsact direct-action it is `TC_ACT_UNSPEC`, which `cls_bpf` takes as "try the next filter"
/// and the qdisc, after the last, as "continue". Both are -1: one constant is right for both
/// attach modes, where `TC_ACT_OK` would end a tcx chain early.
pub const TC_NEXT: i32 = TC_ACT_UNSPEC;

/// What a program decided for a packet it did not drop: the TC action and the outcome.
#[derive(Clone, Copy)]
pub struct Verdict {
    pub action: i32,
    pub outcome: Outcome,
}

impl Verdict {
    #[inline(always)]
    pub const fn new(action: i32, outcome: Outcome) -> Self {
        Verdict { action, outcome }
    }
}

/// Counts the outcome or the drop and returns the TC action. A `DropReason` error drops the
/// packet.
#[inline(always)]
pub fn finish(hook: Hook, len: u32, result: Result<Verdict, DropReason>) -> i32 {
    let (action, counted) = match result {
        Ok(v) => (v.action, Counted::Outcome(v.outcome)),
        Err(reason) => (TC_ACT_SHOT, Counted::Drop(reason)),
    };
    count(hook, len, counted);
    action
}

/// The XDP programs' single exit. `None`: the frame goes up to the TC program on the same
/// device (`XDP_PASS`), which decides and counts it, so it is not counted here. A verdict or
/// a drop is counted as [`finish`] counts it, and its action returned as is (`XDP_REDIRECT`
/// from `bpf_redirect`).
#[inline(always)]
pub fn finish_xdp(hook: Hook, len: u32, result: Option<Result<Verdict, DropReason>>) -> u32 {
    match result {
        None => XDP_PASS,
        Some(Ok(v)) => {
            count(hook, len, Counted::Outcome(v.outcome));
            v.action.cast_unsigned()
        }
        Some(Err(reason)) => {
            count(hook, len, Counted::Drop(reason));
            XDP_DROP
        }
    }
}

#[inline(always)]
fn count(hook: Hook, len: u32, counted: Counted) {
    if let Some(counter) = VERDICTS.get_ptr_mut(verdict_slot(hook, counted)) {
        // SAFETY: per-CPU slot, no concurrent writer on this CPU.
        unsafe {
            (*counter).packets += 1;
            (*counter).bytes += u64::from(len);
        }
    }
}

/// Counts one inner packet of `bytes` encapsulated toward the DC of tunnel `id`.
#[inline(always)]
pub fn count_tx(id: u32, bytes: usize, fast_path: bool, keepalive: bool, clamped: bool) {
    if let Some(s) = tunnel_stats(id) {
        s.tx_packets += 1;
        s.tx_bytes += bytes as u64;
        s.fast_path_packets += u64::from(fast_path);
        s.keepalive_tx += u64::from(keepalive);
        s.mss_clamped += u64::from(clamped);
    }
}

/// Counts one inner packet of `bytes` decapsulated from the DC of tunnel `id`. The times are
/// the coarse clock's (a tick's precision): they date the last packet for liveness, and the
/// precise clock costs more than the rest of the counting per packet.
#[inline(always)]
pub fn count_rx(id: u32, bytes: usize, reflected_keepalive: bool, clamped: bool, fast_path: bool) {
    if let Some(s) = tunnel_stats(id) {
        s.rx_packets += 1;
        s.rx_fast_path_packets += u64::from(fast_path);
        s.rx_bytes += bytes as u64;
        s.keepalive_reflected += u64::from(reflected_keepalive);
        s.mss_clamped += u64::from(clamped);
        // SAFETY: no preconditions.
        s.last_rx_ns = unsafe { bpf_ktime_get_coarse_ns() };
    }
}

/// Counts a reply to one of our keepalives on tunnel `id`: the liveness signal.
#[inline(always)]
pub fn count_keepalive_reply(id: u32) {
    if let Some(s) = tunnel_stats(id) {
        s.keepalive_rx += 1;
        // SAFETY: no preconditions.
        let now = unsafe { bpf_ktime_get_coarse_ns() };
        s.last_keepalive_rx_ns = now;
        s.last_rx_ns = now;
    }
}
