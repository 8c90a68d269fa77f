//! The region's addresses, ASNs and secrets: what Cisco's activation form would say, plus the
//! lab's own links. One place, so the lab, the test and the drawing agree.
use std::net::Ipv4Addr;

/// The LAN host behind the CPE.
pub const LAN_HOST: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 10);
/// The CPE's LAN address (the LAN host's default gateway).
pub const CPE_LAN: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 1);
/// The CPE's public IPsec address, also its GRE transport IP for both tunnels.
pub const CPE_PUBLIC: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 10);
/// In the two-CPE model: the second CPE's public IPsec and GRE address (tunnel B's end); the
/// first CPE (tunnel A) keeps [`CPE_PUBLIC`].
pub const CPE2_PUBLIC: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 20);
/// With a second WAN device ([`super::config::Options::two_wans`]): tunnel B's public IPsec
/// and GRE address, from "ISP 2", on the CPE's `wan1`.
pub const CPE_WAN2: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 130);
/// ISP 2's gateway: the WAN router's end of the CPE's second link.
pub const WAN2_GATEWAY: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 129);
/// The CPE's second WAN link.
pub const CPE_WAN2_NET: &str = "198.51.100.128/30";
/// The CPEs' WAN link.
pub const CPE_WAN_NET: &str = "203.0.113.0/24";
/// Behind a NAT ([`super::config::Options::nat`]): the CPE's WAN address, private, which the
/// WAN router translates to [`CPE_PUBLIC`] toward the DCs (vc's `cpe_local_address`).
pub const CPE_NAT_WAN: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 10);
/// Behind a NAT: the router's address on the CPE's private link (the CPE's default gateway).
pub const NAT_GATEWAY: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 1);
/// Behind a NAT: the CPE's private WAN link.
pub const CPE_NAT_WAN_NET: &str = "192.168.1.0/24";
/// The WAN router's address on the CPE's link (the CPE's default gateway).
pub const WAN_GATEWAY: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 1);
/// Cisco's /24 for the region; each DC announces its /25 and this.
pub const CISCO_PREFIX: &str = "198.18.7.0/24";
/// The customer's ASN (private).
pub const CPE_ASN: u32 = 65010;
/// The interval of every GRE keepalive in the lab, both directions: short, so a lab comes up
/// and fails over in seconds (Cisco's default is 10 s).
pub const KEEPALIVE_INTERVAL_S: u32 = 2;

/// One Cisco data centre: its half of the form and its lab links.
#[derive(Debug)]
pub struct DcPlan {
    /// 1 or 2.
    pub n: u8,
    /// `a` or `b`: the tunnel that reaches it.
    pub tunnel: char,
    /// Its IPsec address (IKE and ESP), on a loopback like a head end's.
    pub ipsec: Ipv4Addr,
    /// Its GRE transport IP, on the loopback too: only reachable inside ESP.
    pub gre: Ipv4Addr,
    /// Its end and the CPE's end of the tunnel /30; its end is the CPE's BGP neighbour.
    pub tunnel_ip: Ipv4Addr,
    pub cpe_tunnel_ip: Ipv4Addr,
    /// The /25 it announces, and a host in it.
    pub prefix: &'static str,
    pub host: Ipv4Addr,
    pub asn: u32,
    /// Its WAN link to the router: the router's end and its own.
    pub router_link: Ipv4Addr,
    pub wan_link: Ipv4Addr,
    /// Its end of the backbone between the DCs (Cisco's own network).
    pub backbone: Ipv4Addr,
    pub psk: &'static str,
    pub bgp_password: &'static str,
}

pub const DC1: DcPlan = DcPlan {
    n: 1,
    tunnel: 'a',
    ipsec: Ipv4Addr::new(192, 0, 2, 10),
    gre: Ipv4Addr::new(192, 0, 2, 11),
    tunnel_ip: Ipv4Addr::new(100, 64, 10, 1),
    cpe_tunnel_ip: Ipv4Addr::new(100, 64, 10, 2),
    prefix: "198.18.7.0/25",
    host: Ipv4Addr::new(198, 18, 7, 10),
    asn: 64600,
    router_link: Ipv4Addr::new(198, 51, 100, 1),
    wan_link: Ipv4Addr::new(198, 51, 100, 2),
    backbone: Ipv4Addr::new(172, 31, 255, 1),
    psk: "lab-psk-dc1-7Hq2Wx",
    bgp_password: "lab-bgp-dc1-Zp4Rk9",
};

pub const DC2: DcPlan = DcPlan {
    n: 2,
    tunnel: 'b',
    ipsec: Ipv4Addr::new(192, 0, 2, 20),
    gre: Ipv4Addr::new(192, 0, 2, 21),
    tunnel_ip: Ipv4Addr::new(100, 64, 10, 5),
    cpe_tunnel_ip: Ipv4Addr::new(100, 64, 10, 6),
    prefix: "198.18.7.128/25",
    host: Ipv4Addr::new(198, 18, 7, 140),
    asn: 64601,
    router_link: Ipv4Addr::new(198, 51, 100, 5),
    wan_link: Ipv4Addr::new(198, 51, 100, 6),
    backbone: Ipv4Addr::new(172, 31, 255, 2),
    psk: "lab-psk-dc2-Mv8Ty3",
    bgp_password: "lab-bgp-dc2-Lw6Jn1",
};

/// Both DCs, DC1 first.
pub const DCS: [&DcPlan; 2] = [&DC1, &DC2];

impl DcPlan {
    /// The CPE's tunnel interface toward this DC.
    #[must_use]
    pub fn interface(&self) -> String {
        format!("vc-dc{}", self.n)
    }

    /// The reqid of this tunnel's SAs on the CPE (vc fixes them: 1001 for A, 1002 for B).
    #[must_use]
    pub fn reqid(&self) -> u32 {
        1000 + u32::from(self.n)
    }

    /// The other DC.
    #[must_use]
    pub fn other(&self) -> &'static DcPlan {
        if self.n == 1 { &DC2 } else { &DC1 }
    }

    /// The CPE's GRE-only selector and the DC's, as strongSwan prints them.
    #[must_use]
    pub fn selectors(&self) -> (String, String) {
        self.selectors_with(CPE_PUBLIC)
    }

    /// [`DcPlan::selectors`] for a CPE at `cpe` (the two-CPE model's second CPE).
    #[must_use]
    pub fn selectors_with(&self, cpe: Ipv4Addr) -> (String, String) {
        (format!("{cpe}/32[gre]"), format!("{}/32[gre]", self.gre))
    }
}

/// The ASCII drawing the lab prints.
pub const DRAWING: &str = r"
  lan ──eth0──lan0── cpe ──wan0──c0── wan ──d1──wan── dc1   IPsec 192.0.2.10, GRE 192.0.2.11
  10.1.0.10   10.1.0.1    203.0.113.10  router      │    host 198.18.7.10 (198.18.7.0/25), AS 64600
                          vc-agent run              bb   Cisco's backbone 172.31.255.0/30
                                              └─d2──wan── dc2   IPsec 192.0.2.20, GRE 192.0.2.21
                                                         host 198.18.7.140 (198.18.7.128/25), AS 64601
  tunnel A: cpe vc-dc1 100.64.10.2/30 ~~ GRE in ESP ~~ dc1 gre1 100.64.10.1/30
  tunnel B: cpe vc-dc2 100.64.10.6/30 ~~ GRE in ESP ~~ dc2 gre1 100.64.10.5/30
  both DCs announce 198.18.7.0/24 too; the CPE (AS 65010) announces only 0.0.0.0/0
";

/// What `cargo xtask lab --wans 2` changes in [`DRAWING`].
pub const TWO_WANS: &str = r"
  two WANs: tunnel B leaves by the CPE's wan1 (ISP 2: 198.51.100.130/30, the router's c1 at
  198.51.100.129); the CPE routes DC2's IPsec address out of it: ip route add 192.0.2.20/32
  via 198.51.100.129 dev wan1. Tunnel A keeps wan0 and the default route.
";
