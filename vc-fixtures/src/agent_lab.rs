//! The real `vc-agent` on the CPE of the GRE lab ([`crate::gre_lab`]), in external-IPsec
//! mode, with BIRD as each DC's BGP speaker: the form, starting the agent, asking it.
use std::{net::Ipv4Addr, path::Path, process::Stdio};

use vc_agent::status::AgentStatus;
use vc_testkit::{
    Daemon, NetNs,
    bird::{BgpPeer, Bird},
};

use crate::gre_lab::Topology;

pub const CPE_AS: u32 = 65010;
pub const DC1_AS: u32 = 64601;
pub const DC2_AS: u32 = 64602;

/// The activation form for the topology: both tunnels, BGP passwords `lab-md5-a`/`-b`,
/// keepalives every second, metrics on `metrics_listen` (empty: off).
#[must_use]
pub fn config(t: &Topology, metrics_listen: &str) -> String {
    let pins = t.cpe_spec.pin_dir.display();
    let state = t.cpe_spec.state_dir.display();
    let tunnel = |key: &str, dc: u8, cpe_ip: &str, dc_ip: &str, asn: u32| {
        format!(
            r#"[tunnel.{key}]
cpe_ipsec_address = "198.51.100.1"
cpe_gre_address = "198.51.100.1"
dc_ipsec_address = "198.18.{dc}.1"
dc_gre_address = "198.18.{dc}.1"
cpe_tunnel_ip = "{cpe_ip}/30"
dc_tunnel_ip = "{dc_ip}/30"
cisco_asn = {asn}
cpe_asn = {CPE_AS}
bgp_password = "lab-md5-{key}"
keepalive_interval_s = 1
keepalive_retries = 3
"#
        )
    };
    format!(
        r#"region = "LAB"
mode = "external-ipsec"
[deployment]
model = "one-cpe"
[interfaces]
wan = "wan0"
lan = "lan0"
[cisco]
prefix = "203.0.113.0/24"
dc1_prefix = "203.0.113.0/25"
dc2_prefix = "203.0.113.128/25"
{}{}[agent]
pin_dir = "{pins}"
state_dir = "{state}"
metrics_listen = "{metrics_listen}"
"#,
        tunnel("a", 1, "100.64.0.1", "100.64.0.2", DC1_AS),
        tunnel("b", 2, "100.64.0.5", "100.64.0.6", DC2_AS),
    )
}

/// The `vc-agent` binary under test: a test names it with `env!("CARGO_BIN_EXE_vc-agent")`,
/// which only its own crate knows.
#[derive(Clone, Copy, Debug)]
pub struct Agent(pub &'static str);

impl Agent {
    #[must_use]
    pub fn bin(self) -> &'static str {
        self.0
    }

    /// `vc-agent run` in `ns`, logging to `log`; killed when the guard drops.
    #[must_use]
    pub fn start(self, ns: &NetNs, cfg: &Path, log: &Path) -> Daemon {
        self.start_with(ns, cfg, log, &[])
    }

    /// [`Agent::start`] with these environment variables set too.
    #[must_use]
    pub fn start_with(self, ns: &NetNs, cfg: &Path, log: &Path, env: &[(&str, &str)]) -> Daemon {
        let log = std::fs::File::create(log).expect("agent log");
        let child = ns
            .command(self.bin())
            .args(["run", "-c"])
            .arg(cfg)
            .env("RUST_LOG", "info")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("vc-agent run");
        Daemon::new(child, "vc-agent")
    }

    /// `vc-agent status --json`, if the agent answers.
    #[must_use]
    pub fn status(self, ns: &NetNs, cfg: &Path) -> Option<AgentStatus> {
        self.status_with(ns, cfg, &[])
    }

    /// [`Agent::status`] with these environment variables set (secrets the config names).
    #[must_use]
    pub fn status_with(self, ns: &NetNs, cfg: &Path, env: &[(&str, &str)]) -> Option<AgentStatus> {
        let out = ns
            .command(self.bin())
            .args(["status", "--json", "-c"])
            .arg(cfg)
            .envs(env.iter().copied())
            .output()
            .ok()?;
        serde_json::from_slice(&out.stdout).ok()
    }
}

/// A DC's BIRD at `local` (the DC's tunnel IP), peering with the CPE end of its /30.
#[must_use]
pub fn bird(ns: &NetNs, local: [u8; 4], local_as: u32, password: &str, exports: &[&str]) -> Bird {
    let peer = BgpPeer::new("cpe", local.into(), local_as, cpe_end(local), CPE_AS)
        .password(password)
        .export("dc", exports);
    Bird::start(ns, &peer.config()).expect("BIRD")
}

/// [`bird`] with graceful restart on (RFC 4724: BIRD keeps a restarting CPE's routes), and
/// each of `exports` in a static protocol of its own, `s0`, `s1`, ... (`birdc disable s1`
/// withdraws the second alone).
#[must_use]
pub fn bird_gr(
    ns: &NetNs,
    local: [u8; 4],
    local_as: u32,
    password: &str,
    exports: &[&str],
) -> Bird {
    let mut peer = BgpPeer::new("cpe", local.into(), local_as, cpe_end(local), CPE_AS)
        .password(password)
        .hold_time(9);
    for (i, prefix) in exports.iter().enumerate() {
        peer = peer.export(&format!("s{i}"), &[prefix]);
    }
    peer.extra.push("graceful restart on;".into());
    Bird::start(ns, &peer.config()).expect("BIRD")
}

/// The CPE end of a DC's /30.
fn cpe_end(dc: [u8; 4]) -> Ipv4Addr {
    Ipv4Addr::new(dc[0], dc[1], dc[2], dc[3] - 1)
}
