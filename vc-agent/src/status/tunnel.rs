//! One tunnel's status: which tunnel and its addresses, then each room's piece.
use std::{fmt, net::Ipv4Addr};

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

use crate::{
    bgp::status::BgpStatus, config::TunnelId, datapath::status::TunnelCounters,
    ipsec::status::IpsecStatus, keepalive::status::KeepaliveStatus,
};

/// Which tunnel, and the addresses of its two ends: what every per-tunnel report starts with.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TunnelEnds {
    pub id: TunnelId,
    /// The name of its region (from the form), shown when it is not the file's first.
    #[serde(default)]
    pub region: String,
    /// 1 or 2 (DC1 for tunnel A).
    pub dc: u8,
    /// The tunnel interface.
    pub interface: String,
    pub local_gre: Ipv4Addr,
    pub remote_gre: Ipv4Addr,
    /// Ours, with the tunnel subnet's length.
    pub local_tunnel_ip: Ipv4Net,
    pub dc_tunnel_ip: Ipv4Addr,
}

impl TunnelEnds {
    /// The headline of a tunnel's report, with `state` (`up`, `DOWN`) after its interface:
    /// `A → DC1 (vc-dc1) up: GRE 198.51.100.1 → 198.18.1.1, tunnel IP 100.64.0.1/30 → 100.64.0.2`;
    /// a second region's names its region: `R2-A → AMER DC1 (vc-r2-dc1) up: …`.
    #[must_use]
    pub fn headline<'a>(&'a self, state: Option<&'a str>) -> Headline<'a> {
        Headline { ends: self, state }
    }
}

/// [`TunnelEnds::headline`].
pub struct Headline<'a> {
    ends: &'a TunnelEnds,
    state: Option<&'a str>,
}

impl fmt::Display for Headline<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let e = self.ends;
        write!(f, "{} → ", e.id.key().to_uppercase())?;
        if e.id.region() > 0 {
            write!(f, "{} ", e.region)?;
        }
        write!(f, "DC{} ({})", e.dc, e.interface)?;
        if let Some(state) = self.state {
            write!(f, " {state}")?;
        }
        write!(
            f,
            ": GRE {} → {}, tunnel IP {} → {}",
            e.local_gre, e.remote_gre, e.local_tunnel_ip, e.dc_tunnel_ip
        )
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TunnelStatus {
    #[serde(flatten)]
    pub ends: TunnelEnds,
    pub remote_ipsec: Ipv4Addr,
    /// This DC's /25 and the shared /24: what BGP must bring (R19).
    pub expected_prefixes: Vec<Ipv4Net>,
    /// IPsec mode only.
    pub ipsec: Option<IpsecStatus>,
    pub keepalive: KeepaliveStatus,
    pub counters: TunnelCounters,
    pub bgp: Option<BgpStatus>,
    /// Prefixes this tunnel's session accepted (installed when the tunnel is alive).
    pub accepted_prefixes: Vec<Ipv4Net>,
    /// After a restart of the agent: the routes via this tunnel the previous run left, kept
    /// until the session's End-of-RIB (graceful restart).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stale_prefixes: Vec<Ipv4Net>,
}

impl TunnelStatus {
    /// The expected prefixes not accepted from this tunnel.
    #[must_use]
    pub fn missing_prefixes(&self) -> Vec<Ipv4Net> {
        self.expected_prefixes
            .iter()
            .filter(|p| !self.accepted_prefixes.contains(p))
            .copied()
            .collect()
    }
}

/// `203.0.113.0/25, 203.0.113.0/24` (with `sep` between).
#[must_use]
pub fn prefix_list(prefixes: &[Ipv4Net], sep: &str) -> String {
    prefixes
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(sep)
}

impl fmt::Display for TunnelStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let alive = if self.keepalive.alive { "up" } else { "DOWN" };
        writeln!(f, "tunnel {}", self.ends.headline(Some(alive)))?;
        if let Some(ipsec) = &self.ipsec {
            write!(f, "{ipsec}")?;
        }
        write!(f, "{}", self.keepalive)?;
        if let Some(bgp) = &self.bgp {
            write!(f, "{bgp}")?;
        }
        writeln!(
            f,
            "  routes    accepted [{}] (expected {})",
            prefix_list(&self.accepted_prefixes, ", "),
            prefix_list(&self.expected_prefixes, " + ")
        )?;
        if !self.stale_prefixes.is_empty() {
            writeln!(
                f,
                "  routes    kept from before the agent's restart until End-of-RIB [{}]",
                prefix_list(&self.stale_prefixes, ", ")
            )?;
        }
        write!(f, "{}", self.counters)
    }
}
