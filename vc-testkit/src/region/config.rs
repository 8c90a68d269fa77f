//! The CPE's `vc.toml`: the activation form of this region, filled in as an admin would, plus
//! what the lab needs apart from it (interface names, fast IKE retransmits, short keepalives,
//! a BPF filesystem the CPE's namespace can see).
use std::fmt::Write as _;

use super::plan::{CISCO_PREFIX, CPE_ASN, CPE_PUBLIC, DC1, DC2, DcPlan, KEEPALIVE_INTERVAL_S};

/// Where the lab mounts a BPF filesystem for the agent's pins: `ip netns exec` mounts a fresh
/// `/sys` for the command, so the default `/sys/fs/bpf` is no BPF filesystem inside the CPE's
/// namespace.
pub const BPF_MOUNT: &str = "/run/vc-lab-bpf";

/// What a scenario changes in the lab's region; the default is the lab's own (`cargo xtask
/// lab`, `vm_agent.rs`): both ends send keepalives every [`KEEPALIVE_INTERVAL_S`], ESP
/// without PFS, no `[lan]` conditions.
#[derive(Clone, Debug)]
pub struct Options {
    /// The CPE's `keepalive_interval_s` per tunnel (A, B); 0: vc sends none.
    pub keepalive_interval_s: [u32; 2],
    /// Which DCs (1, 2) send Cisco keepalives.
    pub dc_keepalives: [bool; 2],
    /// ESP proposals of both ends per tunnel (a DH group: PFS on rekey).
    pub esp_proposals: [&'static str; 2],
    /// `[lan] default_requires` of the CPE, as TOML strings.
    pub default_requires: Vec<&'static str>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            keepalive_interval_s: [KEEPALIVE_INTERVAL_S; 2],
            dc_keepalives: [true; 2],
            esp_proposals: ["aes256gcm16"; 2],
            default_requires: Vec::new(),
        }
    }
}

fn tunnel(c: &mut String, dc: &DcPlan, o: &Options) {
    let i = usize::from(dc.n - 1);
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
esp_proposals = ["{esp}"]
keepalive_interval_s = {interval}
dc_keepalive_interval_s = {KEEPALIVE_INTERVAL_S}
keepalive_retries = 3
"#,
        esp = o.esp_proposals[i],
        interval = o.keepalive_interval_s[i],
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

/// The whole file, the lab's own.
#[must_use]
pub fn vc_toml() -> String {
    vc_toml_with(&Options::default())
}

/// The whole file, with a scenario's changes.
#[must_use]
pub fn vc_toml_with(o: &Options) -> String {
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
    tunnel(&mut c, &DC1, o);
    tunnel(&mut c, &DC2, o);
    if !o.default_requires.is_empty() {
        let list: Vec<String> = o
            .default_requires
            .iter()
            .map(|r| format!("{r:?}"))
            .collect();
        let _ = write!(c, "\n[lan]\ndefault_requires = [{}]\n", list.join(", "));
    }
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
