//! TCP MSS clamping of SYNs (R14): lower the MSS option to the tunnel's, never raise it.
use aya_ebpf::{cty::c_void, helpers::bpf_skb_load_bytes, programs::TcContext};
use vc_common::DropReason;

use crate::parse::{IPPROTO_TCP, Ipv4, TCP_HLEN, TcpHdr, ptr_at};

const TCP_SYN: u8 = 0x02;
const TCPOPT_EOL: u8 = 0;
const TCPOPT_NOP: u8 = 1;
const TCPOPT_MSS: u8 = 2;
const TCPOLEN_MSS: usize = 4;
/// Option space of the longest TCP header (data offset 15).
const MAX_OPTION_BYTES: usize = 40;
/// The stack copy of the options: a power of two above 40, so a masked index is in bounds.
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
    let Some(option) = find_mss(ctx, l4 + TCP_HLEN, l4 + header_len)? else {
        return Ok(false);
    };
    let current: [u8; 2] = ctx.load(option + 2).map_err(|_| DropReason::Truncated)?;
    if u16::from_be_bytes(current) <= mss {
        return Ok(false);
    }
    let wanted = mss.to_be_bytes();
    ctx.store(option + 2, &wanted, 0)
        .map_err(|_| DropReason::RewriteFailed)?;
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

/// The offset of the MSS option between `start` and `end`, walking the option list
/// (RFC 9293 §3.1). Options with impossible lengths are a malformed header.
///
/// The walk runs over a stack copy with offsets relative to the option area: a few dozen
/// distinct verifier states per step. Walking packet offsets directly (which vary with the IP
/// header length) gave the verifier a distinct state per path and exhausted its budget.
#[inline(always)]
fn find_mss(ctx: &TcContext, start: usize, end: usize) -> Result<Option<usize>, DropReason> {
    let len = end - start;
    if len == 0 || len > MAX_OPTION_BYTES {
        return Ok(None);
    }
    // Zero beyond the options: a read past them sees EOL.
    let mut options = [0u8; OPTION_BUFFER];
    // The verifier must see a size in 1..=64 at the call; LLVM folds the checks above into
    // one on `len - 1`, which bounds a copy of `len`, not `len`. This is the same value.
    let size = ((len - 1) & (OPTION_BUFFER - 1)) + 1;
    // SAFETY: `options` has room for `size` (1..=64) bytes.
    let err = unsafe {
        bpf_skb_load_bytes(
            ctx.skb.skb as *const c_void,
            start as u32,
            options.as_mut_ptr().cast(),
            size as u32,
        )
    };
    if err != 0 {
        return Err(DropReason::Truncated);
    }
    let mut offset = 0;
    // Every step consumes at least one byte, so this bound covers every option list.
    for _ in 0..MAX_OPTION_BYTES {
        if offset >= len {
            break;
        }
        let kind = options[offset & (OPTION_BUFFER - 1)];
        if kind == TCPOPT_EOL {
            return Ok(None);
        }
        if kind == TCPOPT_NOP {
            offset += 1;
            continue;
        }
        let option_len = usize::from(options[(offset + 1) & (OPTION_BUFFER - 1)]);
        if option_len < 2 || offset + option_len > len {
            return Err(DropReason::BadTcpHeader);
        }
        if kind == TCPOPT_MSS {
            if option_len != TCPOLEN_MSS {
                return Err(DropReason::BadTcpHeader);
            }
            return Ok(Some(start + offset));
        }
        offset += option_len;
    }
    Ok(None)
}
