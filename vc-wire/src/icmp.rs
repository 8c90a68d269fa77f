//! ICMP "fragmentation needed" (RFC 792 type 3 code 4, with RFC 1191's next-hop MTU) as a raw
//! `IPPROTO_ICMP` socket hands it over: IPv4 header first, then the ICMP message quoting the
//! header and first 8 bytes of the packet that did not fit. vc cares whether the packet was
//! its ESP (IP protocol 50) or ESP in UDP (NAT-T, port 4500) and where it was going.
//!
//! ```text
//!  | IPv4 (router → us) | 3 | 4 | checksum | unused 16 | next-hop MTU 16 | quoted IPv4 | 8 bytes |
//! ```
use std::net::Ipv4Addr;

const ICMP_DEST_UNREACH: u8 = 3;
const ICMP_FRAG_NEEDED: u8 = 4;
const IPPROTO_ICMP: u8 = 1;
const IPPROTO_UDP: u8 = 17;
const IPPROTO_ESP: u8 = 50;
/// IKE and ESP-in-UDP behind a NAT (RFC 3948).
pub const NAT_T_PORT: u16 = 4500;

/// What the quoted packet carried.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Quoted {
    /// ESP (IP protocol 50).
    Esp,
    /// UDP to or from port 4500: ESP in UDP, or IKE after NAT detection.
    NatT,
    /// Anything else, by IP protocol.
    Other(u8),
}

/// One "fragmentation needed".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FragNeeded {
    /// Who sent it (a router on the path).
    pub reporter: Ipv4Addr,
    /// The next-hop MTU it reports (0: a pre-RFC 1191 router that says nothing).
    pub mtu: u16,
    /// The quoted packet's destination and what it carried.
    pub destination: Ipv4Addr,
    pub quoted: Quoted,
}

fn ipv4(b: &[u8]) -> Ipv4Addr {
    Ipv4Addr::new(b[0], b[1], b[2], b[3])
}

/// The "fragmentation needed" in `datagram`, or `None` for any other ICMP message or bytes
/// too short to say.
#[must_use]
pub fn frag_needed(datagram: &[u8]) -> Option<FragNeeded> {
    let ip = datagram.get(..20)?;
    let hlen = usize::from(ip[0] & 0x0f) * 4;
    if ip[0] >> 4 != 4 || hlen < 20 || ip[9] != IPPROTO_ICMP {
        return None;
    }
    let icmp = datagram.get(hlen..)?;
    let header = icmp.get(..8)?;
    if header[0] != ICMP_DEST_UNREACH || header[1] != ICMP_FRAG_NEEDED {
        return None;
    }
    let inner = icmp.get(8..)?;
    let quoted_ip = inner.get(..20)?;
    let quoted_hlen = usize::from(quoted_ip[0] & 0x0f) * 4;
    if quoted_ip[0] >> 4 != 4 || quoted_hlen < 20 {
        return None;
    }
    let quoted = match quoted_ip[9] {
        IPPROTO_ESP => Quoted::Esp,
        IPPROTO_UDP => {
            let udp = inner.get(quoted_hlen..quoted_hlen + 4)?;
            let (sport, dport) = (
                u16::from_be_bytes([udp[0], udp[1]]),
                u16::from_be_bytes([udp[2], udp[3]]),
            );
            if sport == NAT_T_PORT || dport == NAT_T_PORT {
                Quoted::NatT
            } else {
                Quoted::Other(IPPROTO_UDP)
            }
        }
        other => Quoted::Other(other),
    };
    Some(FragNeeded {
        reporter: ipv4(&ip[12..16]),
        mtu: u16::from_be_bytes([header[6], header[7]]),
        destination: ipv4(&quoted_ip[16..20]),
        quoted,
    })
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::{FragNeeded, Quoted, frag_needed};

    fn message(kind: u8, code: u8, mtu: u16, proto: u8, ports: [u16; 2]) -> Vec<u8> {
        let mut d = vec![
            0x45, 0xc0, 0, 84, 0, 0, 0, 0, 64, 1, 0, 0, 198, 51, 100, 1, 203, 0, 113, 10,
        ];
        d.extend_from_slice(&[kind, code, 0, 0, 0, 0]);
        d.extend_from_slice(&mtu.to_be_bytes());
        d.extend_from_slice(&[
            0x45, 0, 5, 0xdc, 0, 1, 0x40, 0, 63, proto, 0, 0, 203, 0, 113, 10, 192, 0, 2, 10,
        ]);
        d.extend_from_slice(&ports[0].to_be_bytes());
        d.extend_from_slice(&ports[1].to_be_bytes());
        d.extend_from_slice(&[0; 4]);
        d
    }

    #[test]
    fn esp_and_nat_t_are_told_apart() {
        let esp = frag_needed(&message(3, 4, 1300, 50, [0x1234, 0x5678])).unwrap();
        assert_eq!(
            esp,
            FragNeeded {
                reporter: Ipv4Addr::new(198, 51, 100, 1),
                mtu: 1300,
                destination: Ipv4Addr::new(192, 0, 2, 10),
                quoted: Quoted::Esp,
            }
        );
        let nat_t = frag_needed(&message(3, 4, 1300, 17, [4500, 4500])).unwrap();
        assert_eq!(nat_t.quoted, Quoted::NatT);
        let dns = frag_needed(&message(3, 4, 1300, 17, [53, 40000])).unwrap();
        assert_eq!(dns.quoted, Quoted::Other(17));
    }

    #[test]
    fn other_messages_and_short_bytes_are_none() {
        assert_eq!(frag_needed(&message(3, 1, 0, 50, [0, 0])), None);
        assert_eq!(frag_needed(&message(11, 0, 0, 50, [0, 0])), None);
        let whole = message(3, 4, 1300, 17, [4500, 4500]);
        for len in 0..whole.len() - 4 {
            if let Some(f) = frag_needed(&whole[..len]) {
                panic!("{len} bytes gave {f:?}");
            }
        }
    }
}
