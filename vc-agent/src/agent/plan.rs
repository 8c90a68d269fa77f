//! What the activation form asks of each part of the agent: the datapath's spec, one BGP
//! neighbour and one route next hop per tunnel, the keepalive schedule. Pure, apart from
//! reading the BGP passwords.
use std::{path::PathBuf, time::Duration};

use anyhow::{Context, Result};

use crate::{
    bgp::NeighborConfig,
    config::{Config, TunnelId},
    datapath::{DatapathSpec, mtu::EspOverhead, tunnel_index, tunnel_interface},
    keepalive::LivenessConfig,
    routes::TunnelNextHop,
    socket,
};

/// One tunnel this CPE terminates.
#[derive(Clone, Debug)]
pub struct TunnelPlan {
    pub id: TunnelId,
    /// The tunnel interface.
    pub interface: String,
    pub neighbor: NeighborConfig,
    pub next_hop: TunnelNextHop,
    /// Our keepalives, or (`keepalive_interval_s = 0`, R13) the DC's schedule that liveness
    /// is judged by.
    pub keepalive: LivenessConfig,
    /// The costliest ESP transform its proposals allow (none in external-IPsec mode): what
    /// the tunnel MTU is computed for until its child SA names the one negotiated.
    pub esp: Option<EspOverhead>,
}

#[derive(Clone, Debug)]
pub struct Plan {
    pub datapath: DatapathSpec,
    pub tunnels: Vec<TunnelPlan>,
    pub status_socket: PathBuf,
}

/// The whole plan; reads the BGP passwords.
pub fn plan(config: &Config) -> Result<Plan> {
    let mut tunnels = Vec::new();
    for (id, t) in config.terminated() {
        let mut neighbor = NeighborConfig::new(
            tunnel_index(id),
            t.cpe_tunnel_ip.addr(),
            t.dc_tunnel_ip.addr(),
            t.cpe_asn,
            t.cisco_asn,
            // R19: this DC's /25 and the shared /24, nothing else.
            vec![config.dc_prefix(id), config.cisco_prefix(id)],
        );
        // Only what comes in over the tunnel reaches the listener, not the LAN.
        neighbor.interface = Some(tunnel_interface(id));
        neighbor.graceful_restart.restart_time = config.bgp.graceful_restart_time_s;
        if let Some(password) = &t.bgp_password {
            neighbor.md5_password = Some(
                password
                    .resolve()
                    .with_context(|| format!("{}.bgp_password", id.section()))?,
            );
        }
        tunnels.push(TunnelPlan {
            id,
            interface: tunnel_interface(id),
            next_hop: TunnelNextHop {
                id: tunnel_index(id),
                gateway: t.dc_tunnel_ip.addr(),
                interface: tunnel_interface(id),
            },
            neighbor,
            keepalive: LivenessConfig {
                interval: Duration::from_secs(u64::from(if t.keepalive_interval_s > 0 {
                    t.keepalive_interval_s
                } else {
                    t.dc_keepalive_interval_s.max(1)
                })),
                retries: t.keepalive_retries.max(1),
                send: t.keepalive_interval_s > 0,
            },
            esp: config
                .ipsec()
                .then(|| EspOverhead::costliest(&t.esp_proposals)),
        });
    }
    Ok(Plan {
        datapath: DatapathSpec::from_config(config),
        tunnels,
        status_socket: socket::path(config),
    })
}

#[cfg(test)]
mod tests {
    use super::plan;
    use crate::{
        config::{
            TunnelId, parse,
            tests::{VALID, two_regions},
        },
        datapath::{mtu::EspOverhead, tunnel_interface},
    };

    #[test]
    fn a_second_region_becomes_two_more_tunnels_of_its_own() {
        let config = parse(&two_regions("", "")).expect("config");
        let p = plan(&config).expect("plan");
        let names: Vec<&str> = p.tunnels.iter().map(|t| t.interface.as_str()).collect();
        assert_eq!(names, ["vc-dc1", "vc-dc2", "vc-r2-dc1", "vc-r2-dc2"]);
        let second = &p.tunnels[3];
        assert_eq!(second.next_hop.id, 3, "the datapath's tunnel index");
        // R19 per region: its own /25 and its own /24, never the first region's.
        assert_eq!(
            second.neighbor.accepted_prefixes,
            [
                "198.18.9.128/25".parse().unwrap(),
                "198.18.9.0/24".parse().unwrap()
            ]
        );
        let spec = &p.datapath.tunnels[2];
        assert_eq!((spec.id, spec.reqid), (2, 1011));
        assert_eq!(spec.cisco_prefix.to_string(), "198.18.9.0/24");
        assert_eq!(
            p.datapath.tunnels[0].cisco_prefix.to_string(),
            "198.18.7.0/24"
        );
    }

    #[test]
    fn the_example_form_becomes_two_tunnels() {
        let config = parse(VALID).expect("config");
        let p = plan(&config).expect("plan");
        assert_eq!(p.tunnels.len(), 2);
        let a = &p.tunnels[0];
        assert_eq!(a.id, TunnelId::A);
        assert_eq!(a.interface, "vc-dc1");
        assert_eq!(a.neighbor.interface.as_deref(), Some("vc-dc1"));
        assert_eq!(tunnel_interface(TunnelId::B), "vc-dc2");
        assert_eq!(
            a.neighbor.accepted_prefixes,
            vec![
                config.dc_prefix(TunnelId::A),
                config.cisco_prefix(TunnelId::A)
            ]
        );
        assert_eq!(
            p.datapath.tunnels[1].reqid, 1002,
            "the reqid charon installs for B"
        );
        assert_eq!(p.datapath.tunnels[0].name, "vc-dc1");
        assert_eq!(
            a.esp,
            Some(EspOverhead::from_proposal("aes256gcm16")),
            "IPsec mode: each tunnel's ESP overhead, from its own proposals"
        );
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
