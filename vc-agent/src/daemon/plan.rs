//! What the activation form asks of each part of the agent: the datapath's spec, one BGP
//! neighbour and one route next hop per tunnel, the keepalive schedule. Pure, apart from
//! reading the BGP passwords.
use std::{path::PathBuf, time::Duration};

use anyhow::{Context, Result};

use crate::{
    bgp::NeighborConfig,
    config::{Config, Mode as ConfigMode, TunnelId},
    datapath::{DatapathSpec, Mode, TunnelSpec, mtu::EspOverhead},
    ipsec::conn,
    keepalive::LivenessConfig,
    routes::TunnelNextHop,
};

/// One tunnel this CPE terminates.
#[derive(Clone, Debug)]
pub struct TunnelPlan {
    pub id: TunnelId,
    /// The tunnel interface.
    pub interface: String,
    pub neighbor: NeighborConfig,
    pub next_hop: TunnelNextHop,
    /// `None`: send no keepalives and judge no liveness from them (R13: the DC's may be off).
    pub keepalive: Option<LivenessConfig>,
}

#[derive(Clone, Debug)]
pub struct Plan {
    pub datapath: DatapathSpec,
    pub tunnels: Vec<TunnelPlan>,
    /// The ESP transform the tunnel MTU is computed for until an SA says otherwise.
    pub esp: Option<EspOverhead>,
    pub status_socket: PathBuf,
}

/// The tunnel interface of a tunnel: `vc-dc1` for A, `vc-dc2` for B.
#[must_use]
pub fn interface(id: TunnelId) -> String {
    format!("vc-dc{}", id.dc())
}

/// Where the agent answers `vc-agent status`.
#[must_use]
pub fn status_socket(config: &Config) -> PathBuf {
    PathBuf::from(&config.agent.state_dir).join("agent.sock")
}

/// The datapath of this config, without reading any secret (for `datapath up|down|show`).
#[must_use]
pub fn datapath(config: &Config) -> DatapathSpec {
    DatapathSpec {
        mode: match config.mode {
            ConfigMode::Ipsec => Mode::Ipsec,
            ConfigMode::ExternalIpsec => Mode::ExternalIpsec,
        },
        wan_if: config.interfaces.wan.clone(),
        lan_if: Some(config.interfaces.lan.clone()),
        fast_path: config.agent.fast_path,
        pin_dir: PathBuf::from(&config.agent.pin_dir),
        state_dir: PathBuf::from(&config.agent.state_dir).join("datapath"),
        tunnels: config
            .terminated()
            .map(|(id, t)| TunnelSpec {
                id: index(id),
                name: interface(id),
                local_gre: t.cpe_gre_address,
                remote_gre: t.dc_gre_address,
                remote_ipsec: t.dc_ipsec_address,
                reqid: conn::reqid(id),
                local_tunnel: t.cpe_tunnel_ip,
                dc_tunnel_ip: t.dc_tunnel_ip.addr(),
                cisco_prefix: config.cisco_prefix(),
                mtu: t.mtu,
                mss: t.mss,
            })
            .collect(),
    }
}

/// The whole plan; reads the BGP passwords.
pub fn plan(config: &Config) -> Result<Plan> {
    let mut tunnels = Vec::new();
    for (id, t) in config.terminated() {
        let mut neighbor = NeighborConfig::new(
            index(id),
            t.cpe_tunnel_ip.addr(),
            t.dc_tunnel_ip.addr(),
            t.cpe_asn,
            t.cisco_asn,
            // R19: this DC's /25 and the shared /24, nothing else.
            vec![config.dc_prefix(id), config.cisco_prefix()],
        );
        if let Some(password) = &t.bgp_password {
            neighbor.md5_password = Some(
                password
                    .resolve()
                    .with_context(|| format!("tunnel.{}.bgp_password", id.key()))?,
            );
        }
        tunnels.push(TunnelPlan {
            id,
            interface: interface(id),
            next_hop: TunnelNextHop {
                id: index(id),
                gateway: t.dc_tunnel_ip.addr(),
                interface: interface(id),
            },
            neighbor,
            keepalive: (t.keepalive_interval_s > 0).then(|| LivenessConfig {
                interval: Duration::from_secs(u64::from(t.keepalive_interval_s)),
                retries: t.keepalive_retries.max(1),
            }),
        });
    }
    let esp = config.ipsec().then(|| {
        let first = config
            .terminated()
            .find_map(|(_, t)| t.esp_proposals.first().cloned())
            .unwrap_or_default();
        EspOverhead::from_proposal(&first)
    });
    Ok(Plan {
        datapath: datapath(config),
        tunnels,
        esp,
        status_socket: status_socket(config),
    })
}

/// The datapath's and the BGP speaker's number for a tunnel (A = 0, B = 1).
#[must_use]
pub fn index(id: TunnelId) -> u32 {
    u32::try_from(id.index()).expect("two tunnels")
}

#[cfg(test)]
mod tests {
    use super::{interface, plan};
    use crate::config::{TunnelId, parse, tests::VALID};

    #[test]
    fn the_example_form_becomes_two_tunnels() {
        let config = parse(VALID).expect("config");
        let p = plan(&config).expect("plan");
        assert_eq!(p.tunnels.len(), 2);
        let a = &p.tunnels[0];
        assert_eq!(a.id, TunnelId::A);
        assert_eq!(a.interface, "vc-dc1");
        assert_eq!(interface(TunnelId::B), "vc-dc2");
        assert_eq!(
            a.neighbor.accepted_prefixes,
            vec![config.dc_prefix(TunnelId::A), config.cisco_prefix()]
        );
        assert_eq!(
            p.datapath.tunnels[1].reqid, 1002,
            "the reqid charon installs for B"
        );
        assert_eq!(p.datapath.tunnels[0].name, "vc-dc1");
        assert!(p.esp.is_some(), "ipsec mode computes ESP overhead");
        assert!(
            a.neighbor.md5_password.is_some(),
            "the form's BGP password is used"
        );
        assert!(
            !format!("{p:?}").contains("bgp-a-0123456789"),
            "no secret in Debug"
        );
    }
}
