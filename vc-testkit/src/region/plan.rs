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
/// The second region's name on its form ([`super::config::Options::regions`]).
pub const REGION2: &str = "AMER";
/// Cisco's /24 for the second region; DC3 and DC4 (its DC1 and DC2) announce it.
pub const REGION2_PREFIX: &str = "198.18.9.0/24";
/// The customer's ASN (private).
pub const CPE_ASN: u32 = 65010;
/// The interval of every GRE keepalive in the lab, both directions: short, so a lab comes up
/// and fails over in seconds (Cisco's default is 10 s).
pub const KEEPALIVE_INTERVAL_S: u32 = 2;

/// One Cisco data centre: its half of the form and its lab links.
#[derive(Debug)]
pub struct DcPlan {
    /// The lab's number for it: 1 and 2 in the first region, 3 and 4 (the second region's
    /// DC1 and DC2) in the second. It names its namespace (`dc3`) and its link to the router
    /// (`d3`).
    pub n: u8,
    /// `a` or `b`: the side of its region's tunnel that reaches it (A: its region's DC1).
    pub tunnel: char,
    /// 1: the file's own region; 2: its `[[extra_region]]`.
    pub region: u8,
    /// Its region's /24, which both of the region's DCs announce besides their /25.
    pub cisco_prefix: &'static str,
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
    region: 1,
    cisco_prefix: CISCO_PREFIX,
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
    region: 1,
    cisco_prefix: CISCO_PREFIX,
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

/// The second region's DC1 (tunnel R2-A): the same shape as [`DC1`], its own addresses in
/// the same TEST-NET, shared-address and benchmark ranges.
pub const DC3: DcPlan = DcPlan {
    n: 3,
    tunnel: 'a',
    region: 2,
    cisco_prefix: REGION2_PREFIX,
    ipsec: Ipv4Addr::new(192, 0, 2, 30),
    gre: Ipv4Addr::new(192, 0, 2, 31),
    tunnel_ip: Ipv4Addr::new(100, 64, 30, 1),
    cpe_tunnel_ip: Ipv4Addr::new(100, 64, 30, 2),
    prefix: "198.18.9.0/25",
    host: Ipv4Addr::new(198, 18, 9, 10),
    asn: 64610,
    router_link: Ipv4Addr::new(198, 51, 100, 9),
    wan_link: Ipv4Addr::new(198, 51, 100, 10),
    backbone: Ipv4Addr::new(172, 31, 255, 5),
    psk: "lab-psk-dc3-Rb5Nu8",
    bgp_password: "lab-bgp-dc3-Kd2Vx7",
};

/// The second region's DC2 (tunnel R2-B).
pub const DC4: DcPlan = DcPlan {
    n: 4,
    tunnel: 'b',
    region: 2,
    cisco_prefix: REGION2_PREFIX,
    ipsec: Ipv4Addr::new(192, 0, 2, 40),
    gre: Ipv4Addr::new(192, 0, 2, 41),
    tunnel_ip: Ipv4Addr::new(100, 64, 40, 1),
    cpe_tunnel_ip: Ipv4Addr::new(100, 64, 40, 2),
    prefix: "198.18.9.128/25",
    host: Ipv4Addr::new(198, 18, 9, 140),
    asn: 64611,
    router_link: Ipv4Addr::new(198, 51, 100, 13),
    wan_link: Ipv4Addr::new(198, 51, 100, 14),
    backbone: Ipv4Addr::new(172, 31, 255, 6),
    psk: "lab-psk-dc4-Hs9Qc4",
    bgp_password: "lab-bgp-dc4-Yt3Mw6",
};

/// Every DC of a lab with two regions, by [`DcPlan::n`].
pub const ALL_DCS: [&DcPlan; 4] = [&DC1, &DC2, &DC3, &DC4];

impl DcPlan {
    /// Which DC of its region it is: 1 (tunnel A) or 2 (tunnel B), as vc's status and the
    /// form number it.
    #[must_use]
    pub fn dc(&self) -> u8 {
        if self.tunnel == 'a' { 1 } else { 2 }
    }

    /// 0 for tunnel A, 1 for tunnel B: the index of a per-side setting.
    #[must_use]
    pub fn side(&self) -> usize {
        usize::from(self.dc() - 1)
    }

    /// vc's key of its tunnel (status, metrics, CLI): `a`, `b`; `r2-a`, `r2-b` in the second
    /// region.
    #[must_use]
    pub fn key(&self) -> String {
        match self.region {
            1 => self.tunnel.to_string(),
            r => format!("r{r}-{}", self.tunnel),
        }
    }

    /// The CPE's tunnel interface toward this DC: `vc-dc1`, `vc-dc2`; `vc-r2-dc1`,
    /// `vc-r2-dc2` in the second region.
    #[must_use]
    pub fn interface(&self) -> String {
        match self.region {
            1 => format!("vc-dc{}", self.dc()),
            r => format!("vc-r{r}-dc{}", self.dc()),
        }
    }

    /// The reqid of this tunnel's SAs on the CPE (vc fixes them: 1001 for A, 1002 for B; 1011
    /// and 1012 in the second region).
    #[must_use]
    pub fn reqid(&self) -> u32 {
        1000 + 10 * u32::from(self.region - 1) + u32::from(self.dc())
    }

    /// The other DC of its region: the one its /24 backs it up with.
    #[must_use]
    pub fn other(&self) -> &'static DcPlan {
        match self.n {
            1 => &DC2,
            2 => &DC1,
            3 => &DC4,
            _ => &DC3,
        }
    }

    /// Its namespace in the lab (`dc3`), also its charon's name.
    #[must_use]
    pub fn name(&self) -> String {
        format!("dc{}", self.n)
    }

    /// The WAN router's end of its link (`d3`).
    #[must_use]
    pub fn router_device(&self) -> String {
        format!("d{}", self.n)
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

/// What `cargo xtask lab --regions 2` adds to [`DRAWING`].
pub const SECOND_REGION: &str = r"
  second region AMER ([[extra_region]] in the same vc.toml, the same agent and charon):
                                          wan ──d3──wan── dc3   IPsec 192.0.2.30, GRE 192.0.2.31
                                        router      │    host 198.18.9.10 (198.18.9.0/25), AS 64610
                                                    bb   its own backbone 172.31.255.4/30
                                              └─d4──wan── dc4   IPsec 192.0.2.40, GRE 192.0.2.41
                                                         host 198.18.9.140 (198.18.9.128/25), AS 64611
  tunnel R2-A: cpe vc-r2-dc1 100.64.30.2/30 ~~ GRE in ESP ~~ dc3 gre1 100.64.30.1/30
  tunnel R2-B: cpe vc-r2-dc2 100.64.40.2/30 ~~ GRE in ESP ~~ dc4 gre1 100.64.40.1/30
  dc3 and dc4 announce 198.18.9.0/24 too: it backs up only these two tunnels
";

/// What `cargo xtask lab --wans 2` changes in [`DRAWING`].
pub const TWO_WANS: &str = r"
  two WANs: tunnel B leaves by the CPE's wan1 (ISP 2: 198.51.100.130/30, the router's c1 at
  198.51.100.129); the CPE routes DC2's IPsec address out of it: ip route add 192.0.2.20/32
  via 198.51.100.129 dev wan1. Tunnel A keeps wan0 and the default route.
";
