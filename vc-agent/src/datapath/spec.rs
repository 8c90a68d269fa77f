//! What the datapath is asked to be: devices, tunnels, mode. Built from the configuration
//! ([`DatapathSpec::from_config`]); built directly by tests.
use std::{net::Ipv4Addr, path::PathBuf};

use ipnet::Ipv4Net;
use vc_common::{Tunnel, ipv4, ipv4_mask, tunnel_flags};

use super::attach::AttachMode;
use crate::{
    config::{self, Config, TunnelId},
    ipsec::conn,
};

/// Where vc pins its maps and links unless told otherwise.
pub const DEFAULT_PIN_DIR: &str = "/sys/fs/bpf/vc";
/// Where vc keeps what it must undo at teardown (host settings it changed).
pub const DEFAULT_STATE_DIR: &str = "/run/vc";

/// IPsec done here (XFRM, fail closed) or by another box (GRE in clear on the WAN).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Ipsec,
    ExternalIpsec,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DatapathSpec {
    pub mode: Mode,
    /// The host's device toward the internet. WAN receive and the transmit guard attach
    /// here and on every tunnel's own WAN device ([`DatapathSpec::wan_devices`]).
    pub wan_if: String,
    /// The device toward the enterprise network: the fast path attaches here, if given.
    pub lan_if: Option<String>,
    /// Whether the LAN fast path encapsulates (it can be switched at run time).
    pub fast_path: bool,
    /// GRE-only mode with the fast path on: also attach the XDP fast paths on the LAN and
    /// WAN devices, where they have native XDP (elsewhere the TC programs do it all). Never
    /// in IPsec mode: XDP output skips XFRM.
    pub xdp: bool,
    /// A directory on a BPF filesystem for maps and links.
    pub pin_dir: PathBuf,
    /// A directory for the record of host settings to restore.
    pub state_dir: PathBuf,
    /// How to attach the programs; `None`: as the kernel allows ([`AttachMode::detect`]).
    /// Tests choose clsact on a tcx kernel to exercise what Debian 12 runs.
    pub attach_mode: Option<AttachMode>,
    pub tunnels: Vec<TunnelSpec>,
}

/// One tunnel: its interface pair and the addresses of the activation form.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TunnelSpec {
    /// 0 = tunnel A (DC1), 1 = tunnel B (DC2).
    pub id: u32,
    /// The tunnel interface (`vc-dc1`); its hidden peer gets a `p` appended.
    pub name: String,
    /// The WAN device its IKE and ESP (GRE in GRE-only mode) leave by: the host's WAN
    /// unless the tunnel names its own.
    pub wan_if: String,
    pub local_gre: Ipv4Addr,
    pub remote_gre: Ipv4Addr,
    /// The DC's IPsec address: the peer of the SA that must have decrypted its GRE.
    pub remote_ipsec: Ipv4Addr,
    /// The child SA's reqid (IPsec mode).
    pub reqid: u32,
    /// Our tunnel IP with the tunnel subnet's length (/30 or /31).
    pub local_tunnel: Ipv4Net,
    pub dc_tunnel_ip: Ipv4Addr,
    /// The Cisco prefix (the /24): allowed sources of what the DC sends.
    pub cisco_prefix: Ipv4Net,
    pub mtu: u16,
    pub mss: u16,
}

/// The datapath's number for a tunnel ([`TunnelId::index`]: A = 0, B = 1, a second region's 2
/// and 3), also the BGP speaker's and the route manager's.
#[must_use]
pub fn tunnel_index(id: TunnelId) -> u32 {
    u32::try_from(id.index()).expect("at most TUNNELS tunnels")
}

/// The tunnel interface of a tunnel: `vc-dc1` for A, `vc-dc2` for B; `vc-r2-dc1` and
/// `vc-r2-dc2` in a second region.
#[must_use]
pub fn tunnel_interface(id: TunnelId) -> String {
    match id.region() {
        0 => format!("vc-dc{}", id.dc()),
        r => format!("vc-r{}-dc{}", r + 1, id.dc()),
    }
}

impl DatapathSpec {
    /// The datapath of a config (it reads no secret): every tunnel this host terminates.
    #[must_use]
    pub fn from_config(config: &Config) -> DatapathSpec {
        DatapathSpec {
            mode: match config.mode {
                config::Mode::Ipsec => Mode::Ipsec,
                config::Mode::ExternalIpsec => Mode::ExternalIpsec,
            },
            wan_if: config.interfaces.wan.clone(),
            lan_if: Some(config.interfaces.lan.clone()),
            fast_path: config.agent.fast_path,
            xdp: config.agent.xdp,
            pin_dir: PathBuf::from(&config.agent.pin_dir),
            state_dir: PathBuf::from(&config.agent.state_dir).join("datapath"),
            attach_mode: None,
            tunnels: config
                .terminated()
                .map(|(id, t)| TunnelSpec {
                    id: tunnel_index(id),
                    name: tunnel_interface(id),
                    wan_if: t.wan(&config.interfaces).to_string(),
                    local_gre: t.cpe_gre_address,
                    remote_gre: t.dc_gre_address,
                    remote_ipsec: t.dc_ipsec_address,
                    reqid: conn::reqid(id),
                    local_tunnel: t.cpe_tunnel_ip,
                    dc_tunnel_ip: t.dc_tunnel_ip.addr(),
                    cisco_prefix: config.cisco_prefix(id),
                    mtu: t.mtu,
                    mss: t.mss,
                })
                .collect(),
        }
    }

    /// Every WAN device, the host's first: the guard and WAN receive attach on each, so
    /// that whichever one the kernel routes by, nothing leaves it in clear.
    #[must_use]
    pub fn wan_devices(&self) -> Vec<&str> {
        let mut devices = vec![self.wan_if.as_str()];
        for t in &self.tunnels {
            if !devices.contains(&t.wan_if.as_str()) {
                devices.push(&t.wan_if);
            }
        }
        devices
    }

    /// The spec of one tunnel.
    #[must_use]
    pub fn tunnel(&self, id: TunnelId) -> Option<&TunnelSpec> {
        let index = tunnel_index(id);
        self.tunnels.iter().find(|t| t.id == index)
    }

    /// The tunnels whose GRE transport IP is none of `host`'s addresses. Whole GRE packets
    /// do not need it (`vc_wan_rx` takes them to the tunnel interface), but outer fragments
    /// from the DC are reassembled only on local delivery: without it the kernel forwards them
    /// back toward the WAN, where the guard drops them as clear GRE. Behind a NAT the GRE
    /// transport IP is usually the public address, which only the NAT holds unless the CPE
    /// holds it too.
    #[must_use]
    pub fn unheld_gre_addresses(&self, host: &[Ipv4Addr]) -> Vec<&TunnelSpec> {
        self.tunnels
            .iter()
            .filter(|t| !host.contains(&t.local_gre))
            .collect()
    }
}

impl TunnelSpec {
    /// The hidden peer of the tunnel interface.
    #[must_use]
    pub fn peer_name(&self) -> String {
        format!("{}p", self.name)
    }

    /// Locally administered MACs that say which tunnel they belong to (02:76:63 = "vc").
    #[must_use]
    pub fn tunnel_mac(&self) -> [u8; 6] {
        [0x02, 0x76, 0x63, 0, self.id.to_le_bytes()[0], 1]
    }

    #[must_use]
    pub fn peer_mac(&self) -> [u8; 6] {
        [0x02, 0x76, 0x63, 0, self.id.to_le_bytes()[0], 2]
    }

    /// The map entry, given the interfaces' ifindexes.
    #[must_use]
    pub fn map_entry(&self, tunnel_ifindex: u32, peer_ifindex: u32, up: bool) -> Tunnel {
        Tunnel {
            flags: tunnel_flags::CONFIGURED | if up { tunnel_flags::UP } else { 0 },
            local_gre: ipv4(self.local_gre.octets()),
            remote_gre: ipv4(self.remote_gre.octets()),
            remote_ipsec: ipv4(self.remote_ipsec.octets()),
            reqid: self.reqid,
            dc_tunnel_ip: ipv4(self.dc_tunnel_ip.octets()),
            cisco_net: ipv4(self.cisco_prefix.network().octets()),
            cisco_mask: ipv4_mask(u32::from(self.cisco_prefix.prefix_len())),
            tunnel_ifindex,
            peer_ifindex,
            tunnel_mac: self.tunnel_mac(),
            peer_mac: self.peer_mac(),
            mtu: self.mtu,
            mss: self.mss,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::DatapathSpec;

    #[test]
    fn gre_addresses_the_host_does_not_hold_are_named() {
        let config = crate::config::parse(crate::config::tests::VALID).expect("config");
        let spec = DatapathSpec::from_config(&config);
        let public = spec.tunnels[0].local_gre;
        let private = Ipv4Addr::new(192, 168, 1, 10);
        assert!(spec.unheld_gre_addresses(&[private, public]).is_empty());
        let unheld: Vec<&str> = spec
            .unheld_gre_addresses(&[private])
            .iter()
            .map(|t| t.name.as_str())
            .collect();
        assert_eq!(unheld, ["vc-dc1", "vc-dc2"]);
    }
}
