//! The keepalive a CPE sends, built as the frame the tunnel interface would emit.
//!
//! ```text
//!  Ethernet: tunnel interface → its hidden peer, IPv4
//!  +--------------------------------------------+
//!  | IPv4  src = DC's GRE address               |  the packet the DC will find inside
//!  |       dst = our GRE address, proto 47      |  the GRE we send, and route back
//!  |       TTL 255                              |  to us unchanged
//!  +--------------------------------------------+
//!  | GRE   flags 0, protocol type 0             |  Cisco's keepalive marker
//!  +--------------------------------------------+
//! ```
//! Tunnel transmit wraps it in GRE from our address to the DC's, exactly as any other packet
//! the kernel routes into the tunnel; the DC decapsulates it and forwards the inner packet
//! back, and WAN receive counts it as a reply. A Linux `ip_gre` peer does the same.
use std::net::Ipv4Addr;

use vc_common::csum;

const TTL: u8 = 255;
const IPPROTO_GRE: u8 = 47;

/// The keepalive frame for a tunnel from `local_gre` to `remote_gre`.
#[must_use]
pub fn keepalive_frame(
    tunnel_mac: [u8; 6],
    peer_mac: [u8; 6],
    local_gre: Ipv4Addr,
    remote_gre: Ipv4Addr,
) -> Vec<u8> {
    let mut frame = Vec::with_capacity(14 + 24);
    frame.extend_from_slice(&peer_mac);
    frame.extend_from_slice(&tunnel_mac);
    frame.extend_from_slice(&0x0800u16.to_be_bytes());
    let mut ip = [0u8; 20];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&24u16.to_be_bytes());
    ip[8] = TTL;
    ip[9] = IPPROTO_GRE;
    ip[12..16].copy_from_slice(&remote_gre.octets());
    ip[16..20].copy_from_slice(&local_gre.octets());
    let check = csum::ipv4_header(&ip);
    ip[10..12].copy_from_slice(&check.to_be_bytes());
    frame.extend_from_slice(&ip);
    frame.extend_from_slice(&[0, 0, 0, 0]);
    frame
}

#[cfg(test)]
mod tests {
    use vc_common::csum;

    use super::keepalive_frame;

    #[test]
    fn cisco_keepalive_layout() {
        let f = keepalive_frame(
            [2, 0, 0, 0, 0, 1],
            [2, 0, 0, 0, 0, 2],
            [198, 51, 100, 1].into(),
            [198, 18, 1, 1].into(),
        );
        assert_eq!(f.len(), 14 + 20 + 4);
        assert_eq!(&f[..6], &[2, 0, 0, 0, 0, 2], "to the hidden peer");
        assert_eq!(&f[12..14], &[0x08, 0x00]);
        let ip = &f[14..34];
        assert_eq!(ip[9], 47);
        assert_eq!(&ip[12..16], &[198, 18, 1, 1], "inner source: the DC");
        assert_eq!(&ip[16..20], &[198, 51, 100, 1], "inner destination: us");
        assert_eq!(&f[34..], &[0, 0, 0, 0], "GRE protocol type 0");
        assert_eq!(csum::checksum(ip), 0, "the header checksum verifies");
    }
}
