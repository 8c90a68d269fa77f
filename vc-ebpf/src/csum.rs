//! Internet checksum arithmetic (RFC 1071, incremental updates per RFC 1624).

/// Folds a 32-bit one's complement sum to 16 bits.
#[inline(always)]
pub fn fold(mut sum: u32) -> u16 {
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    sum as u16
}

/// The checksum of a 20-byte IPv4 header whose checksum field is zero.
#[inline(always)]
pub fn ipv4_header(words: &[u8; 20]) -> [u8; 2] {
    let mut sum = 0u32;
    let mut i = 0;
    while i < 20 {
        sum += u32::from(u16::from_be_bytes([words[i], words[i + 1]]));
        i += 2;
    }
    (!fold(sum)).to_be_bytes()
}

/// RFC 1624 eq. 3: the checksum after one 16-bit word changed from `old` to `new`
/// (all values as big-endian numbers).
#[inline(always)]
pub fn replace16(check: u16, old: u16, new: u16) -> u16 {
    let sum = u32::from(!check) + u32::from(!old) + u32::from(new);
    !fold(sum)
}
