//! GRE over IPv4 (RFC 2784), as a raw `IPPROTO_GRE` socket hands it over: the whole datagram,
//! IPv4 header first, already reassembled by the kernel. vc's tunnels carry IPv4 (and Cisco's
//! keepalives, protocol type 0) with no key and no sequence number (RFC 2890): those are
//! refused, as the datapath refuses them. The optional checksum is skipped, not verified: in
//! IPsec mode ESP already authenticated the packet.
//!
//! ```text
//!  | IPv4 (IHL × 4) | C 0 K S Reserved0 Ver | Protocol Type | [Checksum | Reserved1] | payload |
//! ```
use std::net::Ipv4Addr;

/// The GRE protocol type of IPv4.
pub const PROTO_IPV4: u16 = 0x0800;
/// IP protocol number of GRE.
pub const IPPROTO_GRE: u8 = 47;

const GRE_CSUM: u16 = 0x8000;
const GRE_ROUTING: u16 = 0x4000;
const GRE_KEY: u16 = 0x2000;
const GRE_SEQ: u16 = 0x1000;
/// Strict source route, recursion control, flags (RFC 1701) and the version: all zero in
/// RFC 2784 GRE.
const GRE_RFC1701_AND_VERSION: u16 = 0x0fff;
const IP_MF: u16 = 0x2000;
const IP_OFFSET: u16 = 0x1fff;

/// One GRE datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GreDatagram<'a> {
    /// The outer header's addresses, TOS (DSCP and ECN) and TTL.
    pub source: Ipv4Addr,
    pub destination: Ipv4Addr,
    pub tos: u8,
    pub ttl: u8,
    /// The GRE protocol type ([`PROTO_IPV4`], 0 for a keepalive).
    pub protocol: u16,
    /// What the GRE header carries.
    pub payload: &'a [u8],
}

/// Why a datagram is not GRE vc accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum GreError {
    #[error("shorter than its headers")]
    Truncated,
    #[error("not a valid IPv4 header")]
    BadIpHeader,
    #[error("not GRE")]
    NotGre,
    #[error("a fragment, not a whole datagram")]
    Fragment,
    #[error("GRE routing, RFC 1701 flags or a version other than 0")]
    Malformed,
    #[error("GRE with a key or a sequence number")]
    KeyOrSequence,
}

/// Decodes `datagram` (IPv4 header first). The IPv4 total length must match what was
/// received: a raw socket returns exactly one datagram.
pub fn decode(datagram: &[u8]) -> Result<GreDatagram<'_>, GreError> {
    let ip = datagram.get(..20).ok_or(GreError::Truncated)?;
    let hlen = usize::from(ip[0] & 0x0f) * 4;
    if ip[0] >> 4 != 4 || hlen < 20 {
        return Err(GreError::BadIpHeader);
    }
    let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
    if total != datagram.len() || total < hlen {
        return Err(GreError::BadIpHeader);
    }
    if ip[9] != IPPROTO_GRE {
        return Err(GreError::NotGre);
    }
    if u16::from_be_bytes([ip[6], ip[7]]) & (IP_MF | IP_OFFSET) != 0 {
        return Err(GreError::Fragment);
    }
    let gre = &datagram[hlen..];
    let flags = u16::from_be_bytes(
        gre.get(..2)
            .ok_or(GreError::Truncated)?
            .try_into()
            .map_err(|_| GreError::Truncated)?,
    );
    if flags & (GRE_ROUTING | GRE_RFC1701_AND_VERSION) != 0 {
        return Err(GreError::Malformed);
    }
    if flags & (GRE_KEY | GRE_SEQ) != 0 {
        return Err(GreError::KeyOrSequence);
    }
    let len = if flags & GRE_CSUM == 0 { 4 } else { 8 };
    let payload = gre.get(len..).ok_or(GreError::Truncated)?;
    Ok(GreDatagram {
        source: Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]),
        destination: Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]),
        tos: ip[1],
        ttl: ip[8],
        protocol: u16::from_be_bytes([gre[2], gre[3]]),
        payload,
    })
}

#[cfg(test)]
mod tests {
    use super::{GreError, PROTO_IPV4, decode};

    fn datagram(flags: u16, proto: u16, extra: &[u8], payload: &[u8]) -> Vec<u8> {
        let total = 20 + 4 + extra.len() + payload.len();
        let mut d = vec![
            0x45, 0x02, 0, 0, 0, 1, 0, 0, 64, 47, 0, 0, 192, 0, 2, 11, 203, 0, 113, 10,
        ];
        d[2..4].copy_from_slice(&u16::try_from(total).unwrap().to_be_bytes());
        d.extend_from_slice(&flags.to_be_bytes());
        d.extend_from_slice(&proto.to_be_bytes());
        d.extend_from_slice(extra);
        d.extend_from_slice(payload);
        d
    }

    #[test]
    fn plain_gre_carries_its_payload() {
        let d = datagram(0, PROTO_IPV4, &[], b"inner");
        let g = decode(&d).unwrap();
        assert_eq!(g.source.to_string(), "192.0.2.11");
        assert_eq!(g.destination.to_string(), "203.0.113.10");
        assert_eq!((g.tos, g.ttl, g.protocol), (2, 64, PROTO_IPV4));
        assert_eq!(g.payload, b"inner");
    }

    #[test]
    fn a_checksum_is_skipped() {
        let d = datagram(0x8000, PROTO_IPV4, &[0xab, 0xcd, 0, 0], b"x");
        assert_eq!(decode(&d).unwrap().payload, b"x");
    }

    #[test]
    fn what_vc_never_configures_is_refused() {
        for (flags, err) in [
            (0x2000, GreError::KeyOrSequence),
            (0x1000, GreError::KeyOrSequence),
            (0x4000, GreError::Malformed),
            (0x0001, GreError::Malformed),
            (0x0080, GreError::Malformed),
        ] {
            let d = datagram(flags, PROTO_IPV4, &[0; 8], b"x");
            assert_eq!(decode(&d), Err(err), "flags {flags:#x}");
        }
    }

    #[test]
    fn bad_headers_are_refused() {
        let good = datagram(0, PROTO_IPV4, &[], b"x");
        assert_eq!(decode(&good[..19]), Err(GreError::Truncated));
        assert_eq!(decode(&good[..23]), Err(GreError::BadIpHeader));
        let mut v6 = good.clone();
        v6[0] = 0x65;
        assert_eq!(decode(&v6), Err(GreError::BadIpHeader));
        let mut udp = good.clone();
        udp[9] = 17;
        assert_eq!(decode(&udp), Err(GreError::NotGre));
        let mut more = good.clone();
        more[6] = 0x20;
        assert_eq!(decode(&more), Err(GreError::Fragment));
        let mut late = good.clone();
        late[7] = 1;
        assert_eq!(decode(&late), Err(GreError::Fragment));
        let mut short = datagram(0x8000, PROTO_IPV4, &[], b"");
        short.truncate(24);
        short[2..4].copy_from_slice(&24u16.to_be_bytes());
        assert_eq!(decode(&short), Err(GreError::Truncated));
    }

    #[test]
    fn any_bytes_decode_or_fail_cleanly() {
        for len in 0..64 {
            let mut d = vec![0x45; len];
            if len >= 4 {
                d[2..4].copy_from_slice(&u16::try_from(len).unwrap().to_be_bytes());
            }
            let _ = decode(&d);
        }
    }
}
