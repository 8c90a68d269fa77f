//! Whether each tunnel's outer packets leave by the tunnel's WAN device. vc does not route
//! the underlay: with tunnel A on one ISP and B on another, the host's routes (an operator's
//! `ip route add <DC2's IPsec address> via <ISP 2's gateway> dev wan1`) decide which device
//! IKE and ESP leave by. Misrouted, nothing leaks (the guard is on every WAN device, and XFRM
//! encrypts whatever the device), but the tunnel depends on the wrong ISP or on none: the
//! audit records it so that status and diagnose can say so.
use std::net::Ipv4Addr;

use anyhow::Result;
use serde::{Deserialize, Serialize};

use super::{
    Netlink,
    spec::{DatapathSpec, Mode},
};

/// Where the host's routes send one tunnel's outer packets.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WanRoute {
    /// The tunnel interface (`vc-dc2`).
    pub tunnel: String,
    /// Its WAN device, as configured.
    pub wan: String,
    /// Where its outer packets go: the DC's IPsec address, or in GRE-only mode its GRE
    /// transport IP.
    pub dc: Ipv4Addr,
    /// The device the host's routes send them out of; `None`: no route at all.
    pub leaves_by: Option<String>,
}

impl WanRoute {
    /// Whether the route leaves by the tunnel's own WAN device.
    #[must_use]
    pub fn ok(&self) -> bool {
        self.leaves_by.as_deref() == Some(self.wan.as_str())
    }

    /// What is wrong, in words; `None` when nothing is.
    #[must_use]
    pub fn problem(&self) -> Option<String> {
        if self.ok() {
            return None;
        }
        Some(match &self.leaves_by {
            Some(other) => format!(
                "{}: the route to the DC at {} leaves by {other}, not the tunnel's WAN {}",
                self.tunnel, self.dc, self.wan
            ),
            None => format!(
                "{}: no route to the DC at {} (the tunnel's WAN is {})",
                self.tunnel, self.dc, self.wan
            ),
        })
    }
}

/// Looks up the route of every tunnel of `spec`.
pub async fn observe(netlink: &Netlink, spec: &DatapathSpec) -> Result<Vec<WanRoute>> {
    let mut routes = Vec::new();
    for t in &spec.tunnels {
        let dc = match spec.mode {
            Mode::Ipsec => t.remote_ipsec,
            Mode::ExternalIpsec => t.remote_gre,
        };
        routes.push(WanRoute {
            tunnel: t.name.clone(),
            wan: t.wan_if.clone(),
            dc,
            leaves_by: netlink.route_device(dc).await?,
        });
    }
    Ok(routes)
}

#[cfg(test)]
mod tests {
    use super::WanRoute;

    fn route(leaves_by: Option<&str>) -> WanRoute {
        WanRoute {
            tunnel: "vc-dc2".into(),
            wan: "wan1".into(),
            dc: [192, 0, 2, 20].into(),
            leaves_by: leaves_by.map(str::to_string),
        }
    }

    #[test]
    fn only_the_tunnels_own_wan_is_right() {
        assert_eq!(route(Some("wan1")).problem(), None);
        assert_eq!(
            route(Some("wan0")).problem().as_deref(),
            Some(
                "vc-dc2: the route to the DC at 192.0.2.20 leaves by wan0, not the tunnel's WAN wan1"
            )
        );
        assert_eq!(
            route(None).problem().as_deref(),
            Some("vc-dc2: no route to the DC at 192.0.2.20 (the tunnel's WAN is wan1)")
        );
    }
}
