//! The Internet checksum (RFC 1071), with incremental updates (RFC 1624): the one
//! implementation the BPF programs, the agent and the tests share.
//!
//! Values are big-endian numbers: a word is `u16::from_be_bytes` of its two bytes, and a
//! checksum is written back with `to_be_bytes`. What the BPF programs call is
//! `#[inline(always)]` and loops only a fixed number of times, for the verifier.
#![expect(
    clippy::inline_always,
    reason = "the BPF programs inline everything: no BPF-to-BPF calls for the verifier to track"
)]

/// Folds a 32-bit one's complement sum to 16 bits (two end-around carries suffice for any
/// `u32`).
#[inline(always)]
#[must_use]
pub const fn fold(sum: u32) -> u16 {
    let sum = (sum & 0xffff) + (sum >> 16);
    let sum = (sum & 0xffff) + (sum >> 16);
    #[expect(clippy::cast_possible_truncation, reason = "folded to 16 bits above")]
    let folded = sum as u16;
    folded
}

/// The checksum of `bytes` (an odd last byte is padded with zero). Over data whose checksum
/// field holds a correct checksum, it is 0.
#[must_use]
pub fn checksum(bytes: &[u8]) -> u16 {
    let mut sum = 0u32;
    for chunk in bytes.chunks(2) {
        let word = u16::from_be_bytes([chunk[0], chunk.get(1).copied().unwrap_or(0)]);
        // One's complement addition: the carry out of bit 31 goes back in at bit 0.
        let (total, carry) = sum.overflowing_add(u32::from(word));
        sum = total + u32::from(carry);
    }
    !fold(sum)
}

/// The checksum of a 20-byte IPv4 header (no options) whose checksum field is zero. A fixed
/// loop over a stack copy: what the BPF programs use when they build an outer header.
#[inline(always)]
#[must_use]
pub const fn ipv4_header(header: &[u8; 20]) -> u16 {
    let mut sum = 0u32;
    let mut i = 0;
    while i < 20 {
        sum += u16::from_be_bytes([header[i], header[i + 1]]) as u32;
        i += 2;
    }
    !fold(sum)
}

/// RFC 1624 eq. 3: the checksum after one 16-bit word changed from `old` to `new`.
#[inline(always)]
#[must_use]
pub const fn replace16(check: u16, old: u16, new: u16) -> u16 {
    let sum = (!check) as u32 + (!old) as u32 + new as u32;
    !fold(sum)
}

#[cfg(test)]
mod tests {
    extern crate alloc;

    use alloc::vec;

    use super::{checksum, fold, ipv4_header, replace16};

    /// A header from the wire (RFC 1071's and Wikipedia's worked example), checksum zeroed.
    const HEADER: [u8; 20] = [
        0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 0xc0, 0xa8, 0x00,
        0x01, 0xc0, 0xa8, 0x00, 0xc7,
    ];

    #[test]
    fn rfc1071_section_3_example() {
        // RFC 1071 §3: these bytes sum to ddf2 (after folding); the checksum is its complement.
        let bytes = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(checksum(&bytes), !0xddf2);
        assert_eq!(fold(0x0002_ddf0), 0xddf2);
    }

    #[test]
    fn odd_lengths_pad_with_zero() {
        assert_eq!(
            checksum(&[0x12, 0x34, 0x56]),
            checksum(&[0x12, 0x34, 0x56, 0])
        );
        assert_eq!(checksum(&[]), 0xffff);
    }

    #[test]
    fn long_data_keeps_its_carries() {
        // 70 000 words of ffff: more than a u32 sum holds without end-around carries.
        let bytes = vec![0xff; 140_000];
        assert_eq!(checksum(&bytes), 0);
        // fefe × 70 000 = 1_105c_6d20, which folds to 7d7d.
        let bytes = vec![0xfe; 140_000];
        assert_eq!(checksum(&bytes), !0x7d7d);
    }

    #[test]
    fn ipv4_header_matches_the_slice_form_and_verifies() {
        assert_eq!(ipv4_header(&HEADER), 0xb861);
        assert_eq!(ipv4_header(&HEADER), checksum(&HEADER));
        let mut header = HEADER;
        header[10..12].copy_from_slice(&ipv4_header(&HEADER).to_be_bytes());
        assert_eq!(
            checksum(&header),
            0,
            "a header with its checksum sums to zero"
        );
    }

    #[test]
    fn rfc1624_example() {
        // RFC 1624 §4: HC = dd2f, a field changes from 5555 to 3285; eq. 3 gives 0000.
        assert_eq!(replace16(0xdd2f, 0x5555, 0x3285), 0x0000);
    }

    #[test]
    fn incremental_update_matches_recomputing() {
        let mut header = HEADER;
        let check = ipv4_header(&header);
        // Decrement the TTL (the word TTL|protocol), as a router does.
        let old = u16::from_be_bytes([header[8], header[9]]);
        header[8] -= 1;
        let new = u16::from_be_bytes([header[8], header[9]]);
        assert_eq!(replace16(check, old, new), ipv4_header(&header));
        // Set ECN CE (the word version|tos).
        let check = ipv4_header(&header);
        let old = u16::from_be_bytes([header[0], header[1]]);
        header[1] |= 0x03;
        let new = u16::from_be_bytes([header[0], header[1]]);
        assert_eq!(replace16(check, old, new), ipv4_header(&header));
    }
}
