//! The CPE's `vc.toml`: the activation form of this region, filled in as an admin would, plus
//! what the lab needs apart from it (interface names, fast IKE retransmits, short keepalives,
//! a BPF filesystem the CPE's namespace can see).
use std::fmt::Write as _;

use super::plan::{CISCO_PREFIX, CPE_ASN, CPE_PUBLIC, DC1, DC2, DcPlan, KEEPALIVE_INTERVAL_S};

/// Where the lab mounts a BPF filesystem for the agent's pins: `ip netns exec` mounts a fresh
/// `/sys` for the command, so the default `/sys/fs/bpf` is no BPF filesystem inside the CPE's
/// namespace.
pub const BPF_MOUNT: &str = "/run/vc-lab-bpf";

fn tunnel(c: &mut String, dc: &DcPlan) {
    let _ = write!(
        c,
        r#"
[tunnel.{t}]                                 # tunnel {T}, to DC{n}
cpe_ipsec_address = "{CPE_PUBLIC}"
cpe_gre_address = "{CPE_PUBLIC}"
dc_ipsec_address = "{ipsec}"
dc_gre_address = "{gre}"
cpe_tunnel_ip = "{cpe_tunnel}/30"
dc_tunnel_ip = "{dc_tunnel}/30"
cisco_asn = {asn}
cpe_asn = {CPE_ASN}
ike_psk = "{psk}"
bgp_password = "{password}"
ike_proposals = ["aes256gcm16-prfsha384-ecp384"]
esp_proposals = ["aes256gcm16"]
keepalive_interval_s = {KEEPALIVE_INTERVAL_S}
keepalive_retries = 3
"#,
        t = dc.tunnel,
        T = dc.tunnel.to_ascii_uppercase(),
        n = dc.n,
        ipsec = dc.ipsec,
        gre = dc.gre,
        cpe_tunnel = dc.cpe_tunnel_ip,
        dc_tunnel = dc.tunnel_ip,
        asn = dc.asn,
        psk = dc.psk,
        password = dc.bgp_password,
    );
}

/// The whole file.
#[must_use]
pub fn vc_toml() -> String {
    let mut c = format!(
        r#"# vc.toml of the lab's CPE: the activation form of region LAB (see vc.example.toml).
region = "LAB"
mode = "ipsec"

[deployment]
model = "one-cpe"

[interfaces]
wan = "wan0"
lan = "lan0"

[cisco]
prefix = "{CISCO_PREFIX}"
dc1_prefix = "{}"
dc2_prefix = "{}"
"#,
        DC1.prefix, DC2.prefix
    );
    tunnel(&mut c, &DC1);
    tunnel(&mut c, &DC2);
    let _ = write!(
        c,
        r#"
[charon]
# Emulated CPUs make the first ESP SA install slow: retransmit after 2 s, give up after 3.
retransmit_timeout_s = 2
retransmit_tries = 3

[agent]
# `ip netns exec` mounts a fresh /sys: the lab mounts a BPF filesystem of its own.
pin_dir = "{BPF_MOUNT}/vc"
"#
    );
    c
}
