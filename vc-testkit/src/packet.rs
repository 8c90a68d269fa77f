//! A small packet builder for datapath tests: well-formed packets by default, every field
//! overridable so malformed ones are one call away. Checksums are computed whole, with
//! `vc-common`'s RFC 1071 code, not by the datapath's incremental updates (and the builder is
//! cross-checked against scapy in the tests).

/// The Internet checksum (RFC 1071) of `bytes`.
pub use vc_common::csum::checksum;

/// The TCP/UDP checksum of `segment` (checksum field included as it is) under `src`/`dst`:
/// 0 when the segment's checksum is right.
#[must_use]
pub fn l4_checksum(src: [u8; 4], dst: [u8; 4], proto: u8, segment: &[u8]) -> u16 {
    let mut pseudo = Vec::with_capacity(12 + segment.len());
    pseudo.extend_from_slice(&src);
    pseudo.extend_from_slice(&dst);
    pseudo.push(0);
    pseudo.push(proto);
    pseudo.extend_from_slice(
        &u16::try_from(segment.len())
            .unwrap_or(u16::MAX)
            .to_be_bytes(),
    );
    pseudo.extend_from_slice(segment);
    checksum(&pseudo)
}

pub const IPPROTO_TCP: u8 = 6;
pub const IPPROTO_UDP: u8 = 17;
pub const IPPROTO_GRE: u8 = 47;
pub const IPPROTO_ESP: u8 = 50;
pub const ETH_P_IP: u16 = 0x0800;
pub const ETH_P_IPV6: u16 = 0x86dd;
pub const ETH_P_ARP: u16 = 0x0806;

/// TCP flags.
pub const SYN: u8 = 0x02;
pub const ACK: u8 = 0x10;

/// An IPv4 header to build.
#[derive(Clone, Debug)]
pub struct Ipv4 {
    pub src: [u8; 4],
    pub dst: [u8; 4],
    pub protocol: u8,
    pub tos: u8,
    pub id: u16,
    /// Flags and fragment offset, as on the wire (0x4000 = DF).
    pub frag_off: u16,
    pub ttl: u8,
    /// Options (padded by the caller to a multiple of 4).
    pub options: Vec<u8>,
    pub version: u8,
    /// Overrides for malformed headers.
    pub ihl: Option<u8>,
    pub tot_len: Option<u16>,
}

impl Ipv4 {
    #[must_use]
    pub fn new(src: [u8; 4], dst: [u8; 4], protocol: u8) -> Self {
        Ipv4 {
            src,
            dst,
            protocol,
            tos: 0,
            id: 0x1234,
            frag_off: 0x4000,
            ttl: 64,
            options: Vec::new(),
            version: 4,
            ihl: None,
            tot_len: None,
        }
    }

    #[must_use]
    pub fn tos(mut self, tos: u8) -> Self {
        self.tos = tos;
        self
    }

    #[must_use]
    pub fn ttl(mut self, ttl: u8) -> Self {
        self.ttl = ttl;
        self
    }

    #[must_use]
    pub fn id(mut self, id: u16) -> Self {
        self.id = id;
        self
    }

    #[must_use]
    pub fn frag_off(mut self, frag_off: u16) -> Self {
        self.frag_off = frag_off;
        self
    }

    #[must_use]
    pub fn options(mut self, options: &[u8]) -> Self {
        self.options = options.to_vec();
        self
    }

    /// The packet: this header (checksum computed) followed by `payload`.
    #[must_use]
    pub fn packet(&self, payload: &[u8]) -> Vec<u8> {
        let hlen = 20 + self.options.len();
        let ihl = self
            .ihl
            .unwrap_or(u8::try_from(hlen / 4).expect("options too long"));
        let tot_len = self
            .tot_len
            .unwrap_or(u16::try_from(hlen + payload.len()).expect("packet too long"));
        let mut p = Vec::with_capacity(hlen + payload.len());
        p.push((self.version << 4) | (ihl & 0x0f));
        p.push(self.tos);
        p.extend_from_slice(&tot_len.to_be_bytes());
        p.extend_from_slice(&self.id.to_be_bytes());
        p.extend_from_slice(&self.frag_off.to_be_bytes());
        p.push(self.ttl);
        p.push(self.protocol);
        p.extend_from_slice(&[0, 0]);
        p.extend_from_slice(&self.src);
        p.extend_from_slice(&self.dst);
        p.extend_from_slice(&self.options);
        let check = checksum(&p[..hlen]);
        p[10..12].copy_from_slice(&check.to_be_bytes());
        p.extend_from_slice(payload);
        p
    }
}

/// A TCP segment to build.
#[derive(Clone, Debug)]
pub struct Tcp {
    pub sport: u16,
    pub dport: u16,
    pub seq: u32,
    pub ack: u32,
    pub flags: u8,
    pub window: u16,
    /// Options, padded here to a multiple of 4 with EOL.
    pub options: Vec<u8>,
    /// Data offset override (in 32-bit words) for malformed headers.
    pub doff: Option<u8>,
}

impl Tcp {
    #[must_use]
    pub fn new(sport: u16, dport: u16, flags: u8) -> Self {
        Tcp {
            sport,
            dport,
            seq: 1000,
            ack: 0,
            flags,
            window: 64240,
            options: Vec::new(),
            doff: None,
        }
    }

    /// A SYN carrying only an MSS option.
    #[must_use]
    pub fn syn(mss: u16) -> Self {
        Tcp::new(40000, 179, SYN).options(&mss_option(mss))
    }

    #[must_use]
    pub fn options(mut self, options: &[u8]) -> Self {
        self.options = options.to_vec();
        while !self.options.len().is_multiple_of(4) {
            self.options.push(0);
        }
        self
    }

    /// Options exactly as given, not padded (for malformed headers).
    #[must_use]
    pub fn raw_options(mut self, options: &[u8]) -> Self {
        self.options = options.to_vec();
        self
    }

    /// The segment with a correct checksum for `ip`'s addresses.
    #[must_use]
    pub fn segment(&self, ip: &Ipv4, payload: &[u8]) -> Vec<u8> {
        let hlen = 20 + self.options.len();
        let doff = self
            .doff
            .unwrap_or(u8::try_from(hlen / 4).expect("options too long"));
        let mut s = Vec::with_capacity(hlen + payload.len());
        s.extend_from_slice(&self.sport.to_be_bytes());
        s.extend_from_slice(&self.dport.to_be_bytes());
        s.extend_from_slice(&self.seq.to_be_bytes());
        s.extend_from_slice(&self.ack.to_be_bytes());
        s.push(doff << 4);
        s.push(self.flags);
        s.extend_from_slice(&self.window.to_be_bytes());
        s.extend_from_slice(&[0, 0, 0, 0]);
        s.extend_from_slice(&self.options);
        s.extend_from_slice(payload);
        let check = l4_checksum(ip.src, ip.dst, IPPROTO_TCP, &s);
        s[16..18].copy_from_slice(&check.to_be_bytes());
        s
    }

    /// An IPv4 packet carrying this segment.
    #[must_use]
    pub fn in_ipv4(&self, ip: &Ipv4, payload: &[u8]) -> Vec<u8> {
        let mut ip = ip.clone();
        ip.protocol = IPPROTO_TCP;
        ip.packet(&self.segment(&ip, payload))
    }
}

/// The MSS option.
#[must_use]
pub fn mss_option(mss: u16) -> Vec<u8> {
    let v = mss.to_be_bytes();
    vec![2, 4, v[0], v[1]]
}

/// A UDP datagram in IPv4, with a correct checksum.
#[must_use]
pub fn udp_in_ipv4(ip: &Ipv4, sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut ip = ip.clone();
    ip.protocol = IPPROTO_UDP;
    let len = u16::try_from(8 + payload.len()).expect("datagram too long");
    let mut d = Vec::with_capacity(8 + payload.len());
    d.extend_from_slice(&sport.to_be_bytes());
    d.extend_from_slice(&dport.to_be_bytes());
    d.extend_from_slice(&len.to_be_bytes());
    d.extend_from_slice(&[0, 0]);
    d.extend_from_slice(payload);
    let check = l4_checksum(ip.src, ip.dst, IPPROTO_UDP, &d);
    d[6..8].copy_from_slice(&check.to_be_bytes());
    ip.packet(&d)
}

/// A GRE header (RFC 2784): `flags` as on the wire, `extra` for checksum/key/sequence words.
#[must_use]
pub fn gre(flags: u16, proto: u16, extra: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut g = Vec::with_capacity(4 + extra.len() + payload.len());
    g.extend_from_slice(&flags.to_be_bytes());
    g.extend_from_slice(&proto.to_be_bytes());
    g.extend_from_slice(extra);
    g.extend_from_slice(payload);
    g
}

/// An Ethernet frame.
#[must_use]
pub fn ether(dst: [u8; 6], src: [u8; 6], ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(14 + payload.len());
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// An IPv4 packet in an Ethernet frame.
#[must_use]
pub fn ether_ipv4(dst: [u8; 6], src: [u8; 6], packet: &[u8]) -> Vec<u8> {
    ether(dst, src, ETH_P_IP, packet)
}

/// Whether the IPv4 header at the start of `packet` has a correct checksum.
#[must_use]
pub fn ipv4_header_ok(packet: &[u8]) -> bool {
    let hlen = usize::from(packet[0] & 0x0f) * 4;
    checksum(&packet[..hlen]) == 0
}

/// Whether the TCP segment in the IPv4 `packet` has a correct checksum.
#[must_use]
pub fn tcp_checksum_ok(packet: &[u8]) -> bool {
    let hlen = usize::from(packet[0] & 0x0f) * 4;
    let tot = usize::from(u16::from_be_bytes([packet[2], packet[3]]));
    let src = packet[12..16].try_into().expect("4 bytes");
    let dst = packet[16..20].try_into().expect("4 bytes");
    l4_checksum(src, dst, IPPROTO_TCP, &packet[hlen..tot]) == 0
}

/// The value of the MSS option of the TCP segment in the IPv4 `packet`, if any.
#[must_use]
pub fn mss_of(packet: &[u8]) -> Option<u16> {
    let hlen = usize::from(packet[0] & 0x0f) * 4;
    let tcp = &packet[hlen..];
    let doff = usize::from(tcp[12] >> 4) * 4;
    let mut i = 20;
    while i < doff {
        match tcp[i] {
            0 => return None,
            1 => i += 1,
            2 => return Some(u16::from_be_bytes([tcp[i + 2], tcp[i + 3]])),
            _ => i += usize::from(tcp[i + 1]).max(1),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::{Ipv4, Tcp, ipv4_header_ok, mss_of, tcp_checksum_ok};

    #[test]
    fn built_packets_verify() {
        let ip = Ipv4::new([10, 0, 0, 1], [10, 0, 0, 2], 6);
        let p = Tcp::syn(1460).in_ipv4(&ip, b"");
        assert!(ipv4_header_ok(&p));
        assert!(tcp_checksum_ok(&p));
        assert_eq!(mss_of(&p), Some(1460));
    }
}
