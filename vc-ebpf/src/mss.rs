//! TCP MSS clamping of SYNs (R14): lower the MSS option to the tunnel's, never raise it.
#![expect(
    clippy::cast_possible_truncation,
    reason = "lengths and offsets are bounded by the skb (< 64 KiB); the helpers take u32/i32"
)]
use core::mem::MaybeUninit;

use aya_ebpf::{cty::c_void, helpers::bpf_skb_load_bytes, programs::TcContext};
use vc_common::DropReason;

use crate::{
    parse::{IPPROTO_TCP, Ipv4, TCP_HLEN, TCP_SYN, TcpHdr, ptr_at, pull},
    zero,
};

const TCPOPT_EOL: u8 = 0;
const TCPOPT_NOP: u8 = 1;
const TCPOPT_MSS: u8 = 2;
const TCPOLEN_MSS: usize = 4;
/// Option space of the longest TCP header (data offset 15).
const MAX_OPTION_BYTES: usize = 40;
/// The stack copy of the options: a power of two above 40 + 1, so the size mask and every
/// step's read of a length byte stay inside it.
const OPTION_BUFFER: usize = 64;
/// `bpf_l4_csum_replace` flags: the changed field is 2 bytes and not in the pseudo-header.
const CSUM_FIELD_2: u64 = 2;
const TCP_CHECK_OFFSET: usize = 16;

/// Clamps the MSS option of a TCP SYN (or SYN-ACK) in `ip` to `mss`. Returns whether the
/// packet changed. Anything that is not a TCP segment with its header is left alone.
///
/// The checksum is updated with `bpf_l4_csum_replace`, which also handles locally generated
/// segments whose checksum is still partial (`CHECKSUM_PARTIAL`: the kernel finishes it).
#[inline(always)]
pub fn clamp(ctx: &TcContext, ip: &Ipv4, mss: u16) -> Result<bool, DropReason> {
    if ip.protocol != IPPROTO_TCP || !ip.has_l4_header() {
        return Ok(false);
    }
    let l4 = ip.l4_offset();
    if ip.l4_len() < TCP_HLEN {
        return Err(DropReason::BadTcpHeader);
    }
    let tcp: *const TcpHdr = ptr_at(ctx, l4)?;
    // SAFETY: checked by `ptr_at`.
    let (flags, doff_res) = unsafe { ((*tcp).flags, (*tcp).doff_res) };
    if flags & TCP_SYN == 0 {
        return Ok(false);
    }
    let header_len = usize::from(doff_res >> 4) * 4;
    if header_len < TCP_HLEN || header_len > ip.l4_len() {
        return Err(DropReason::BadTcpHeader);
    }
    let Some((option, current)) = find_mss(ctx, l4 + TCP_HLEN, l4 + header_len)? else {
        return Ok(false);
    };
    if u16::from_be_bytes(current) <= mss {
        return Ok(false);
    }
    let wanted = mss.to_be_bytes();
    // Written in place rather than with `bpf_skb_store_bytes` (the same bytes, and neither
    // touches the skb's checksum state): the option was copied out whole, so it exists and
    // can be made linear.
    pull(ctx, option + TCPOLEN_MSS);
    let value: *mut [u8; 2] = ptr_at(ctx, option + 2).map_err(|_| DropReason::RewriteFailed)?;
    // SAFETY: checked by `ptr_at`.
    unsafe { *value = wanted };
    // One's complement sums are byte-order independent up to a swap (RFC 1071 §2(B)): a
    // value at an odd offset from the segment start is summed byte-swapped.
    let (old, new) = if (option + 2 - l4).is_multiple_of(2) {
        (u16::from_ne_bytes(current), u16::from_ne_bytes(wanted))
    } else {
        (
            u16::from_ne_bytes(current).swap_bytes(),
            u16::from_ne_bytes(wanted).swap_bytes(),
        )
    };
    ctx.l4_csum_replace(
        l4 + TCP_CHECK_OFFSET,
        u64::from(old),
        u64::from(new),
        CSUM_FIELD_2,
    )
    .map_err(|_| DropReason::RewriteFailed)?;
    Ok(true)
}

/// The offset and the current value of the MSS option between `start` and `end`, walking
/// the option list
/// (RFC 9293 §3.1). Options with impossible lengths are a malformed header.
///
/// Shaped for the verifier, 6.1's as much as 6.18's. The options are copied to the stack
/// once, zero-filled beyond their end (a read past them sees EOL), and walked by a step per
/// byte position, unrolled, so every stack read is at a constant offset (6.1 refuses
/// variable-offset stack reads) and the only state carried from step to step is where the
/// next option starts, which keeps the explored states few. Loops over the packet or over
/// packet offsets exhausted 6.1's budget of a million instructions.
#[inline(always)]
fn find_mss(
    ctx: &TcContext,
    start: usize,
    end: usize,
) -> Result<Option<(usize, [u8; 2])>, DropReason> {
    let len = end - start;
    if len == 0 || len > MAX_OPTION_BYTES {
        return Ok(None);
    }
    let mut slot = MaybeUninit::<Options>::uninit();
    let options = zero::init(&mut slot);
    // The verifier must see a size in 1..=64 at the call; LLVM folds the checks above into
    // one on `len - 1`, which bounds a copy of `len`, not `len`. This is the same value.
    let size = ((len - 1) & (OPTION_BUFFER - 1)) + 1;
    // SAFETY: `options` has room for `size` (1..=64) bytes.
    let err = unsafe {
        bpf_skb_load_bytes(
            ctx.skb.skb as *const c_void,
            start as u32,
            options.0.as_mut_ptr().cast(),
            size as u32,
        )
    };
    if err != 0 {
        return Err(DropReason::Truncated);
    }
    let mut walk = Walk {
        next: 0,
        mss: NOT_FOUND,
        value: [0; 2],
    };
    macro_rules! steps {
        ($($position:literal)*) => { $( walk.step::<$position>(&options.0)?; )* };
    }
    steps!(0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19
           20 21 22 23 24 25 26 27 28 29 30 31 32 33 34 35 36 37 38 39);
    if walk.mss != NOT_FOUND {
        return if walk.mss + TCPOLEN_MSS <= len {
            Ok(Some((start + walk.mss, walk.value)))
        } else {
            Err(DropReason::BadTcpHeader)
        };
    }
    // Where the list ended: at an EOL byte, or where the last option said the next begins.
    // At or before the end of the options that is fine; past it, an option's length overran
    // the header (the zero fill then reads as an EOL beyond the end).
    let ended = if walk.next >= EOL_AT {
        walk.next - EOL_AT
    } else {
        walk.next
    };
    if ended > len {
        return Err(DropReason::BadTcpHeader);
    }
    Ok(None)
}

const NOT_FOUND: usize = 0xff;
/// `next` at or above this: the list ended with an EOL at `next - EOL_AT`.
const EOL_AT: usize = 0x80;

/// The walk's state between byte positions.
struct Walk {
    /// Where the next option starts, or `EOL_AT` + where the list ended.
    next: usize,
    /// Where the MSS option starts, or `NOT_FOUND`.
    mss: usize,
    /// The MSS option's value, once found.
    value: [u8; 2],
}

/// The stack copy of the options, word-aligned so that [`zero::init`] can fill it.
#[repr(C, align(8))]
struct Options([u8; OPTION_BUFFER]);

impl Walk {
    /// Looks at byte `P` if an option starts there.
    #[inline(always)]
    fn step<const P: usize>(&mut self, options: &[u8; OPTION_BUFFER]) -> Result<(), DropReason> {
        if self.next != P {
            return Ok(());
        }
        match options[P] {
            TCPOPT_EOL => self.next = EOL_AT + P,
            TCPOPT_NOP => self.next = P + 1,
            kind => {
                let len = usize::from(options[P + 1]);
                if len < 2 || (kind == TCPOPT_MSS && len != TCPOLEN_MSS) {
                    return Err(DropReason::BadTcpHeader);
                }
                if kind == TCPOPT_MSS {
                    self.mss = P;
                    self.value = [options[P + 2], options[P + 3]];
                    self.next = EOL_AT + P;
                } else {
                    self.next = P + len;
                }
            }
        }
        Ok(())
    }
}
