//! IPv4 prefixes as UPDATE carries them (RFC 4271 §4.3): a length in bits, then only the
//! octets that length needs.
//!
//! ```text
//! +---------------------------+
//! |   Length (1 octet)        |
//! +---------------------------+
//! |   Prefix (0-4 octets)     |
//! +---------------------------+
//! ```
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use super::Reader;

/// Decodes a run of prefixes. Bits past the length are ignored (the prefix is returned
/// canonical, host bits zero).
pub(crate) fn decode_prefixes(buf: &[u8]) -> Result<Vec<Ipv4Net>, &'static str> {
    let mut r = Reader::new(buf);
    let mut out = Vec::new();
    while !r.is_empty() {
        let len = r.u8().ok_or("prefix length missing")?;
        if len > 32 {
            return Err("prefix length over 32");
        }
        let octets = r
            .take(usize::from(len.div_ceil(8)))
            .ok_or("prefix overruns its field")?;
        let mut addr = [0u8; 4];
        addr[..octets.len()].copy_from_slice(octets);
        let net = Ipv4Net::new(Ipv4Addr::from(addr), len).map_err(|_| "prefix length over 32")?;
        out.push(net.trunc());
    }
    Ok(out)
}

pub(crate) fn encode_prefixes(prefixes: &[Ipv4Net], buf: &mut Vec<u8>) {
    for p in prefixes {
        let len = p.prefix_len();
        buf.push(len);
        buf.extend_from_slice(&p.network().octets()[..usize::from(len.div_ceil(8))]);
    }
}
