//! The CPE's `vc.toml`: the activation form of this region, filled in as an admin would, plus
//! what the lab needs apart from it (interface names, fast IKE retransmits, short keepalives,
//! a BPF filesystem the CPE's namespace can see).
use std::{fmt::Write as _, net::Ipv4Addr};

use super::plan::{
    ALL_DCS, CISCO_PREFIX, CPE_ASN, CPE_NAT_WAN, CPE_PUBLIC, CPE_WAN2, CPE2_PUBLIC, DC1, DC2, DC3,
    DC4, DcPlan, KEEPALIVE_INTERVAL_S, REGION2, REGION2_PREFIX,
};

/// Where the lab mounts a BPF filesystem for the agent's pins: `ip netns exec` mounts a fresh
/// `/sys` for the command, so the default `/sys/fs/bpf` is no BPF filesystem inside the CPE's
/// namespace.
pub const BPF_MOUNT: &str = "/run/vc-lab-bpf";

/// What a scenario changes in the lab's region; the default is the lab's own (`cargo xtask
/// lab`, `vm_agent.rs`): both ends send keepalives every [`KEEPALIVE_INTERVAL_S`], ESP
/// without PFS, no `[lan]` conditions.
#[derive(Clone, Debug)]
pub struct Options {
    /// The CPE's `keepalive_interval_s` per tunnel side (A, B; in every region); 0: vc sends
    /// none.
    pub keepalive_interval_s: [u32; 2],
    /// Which DCs of each region (its DC1, its DC2) send Cisco keepalives.
    pub dc_keepalives: [bool; 2],
    /// ESP proposals of both ends per tunnel side (a DH group: PFS on rekey).
    pub esp_proposals: [&'static str; 2],
    /// A proposal the CPE offers before those, in every tunnel, that no DC accepts (a
    /// costlier one, say): the SAs are what the DCs picked, not what the CPE named first.
    pub cpe_esp_offered_first: Option<&'static str>,
    /// `[lan] default_requires` of the CPE, as TOML strings.
    pub default_requires: Vec<&'static str>,
    /// One CPE for both tunnels, or two CPEs with one tunnel each ([`super::two_cpes`]).
    pub model: Model,
    /// The DCs' BGP hold time; `None`: BIRD's default (240 s). Short, it stands in for a
    /// Cisco head end whose GRE keepalives take the tunnel, and so the session, down when the
    /// path to the CPE is lost.
    pub dc_hold_time_s: Option<u16>,
    /// The CPE behind a NAT: its WAN address is private ([`CPE_NAT_WAN`]) and the WAN router
    /// translates it to [`CPE_PUBLIC`] toward the DCs, so IKE floats to UDP 4500 and ESP goes
    /// in UDP. The DCs and the activation form are unchanged: the public address stays the
    /// CPE's IPsec address, IKE identity and GRE transport IP; vc's config gains
    /// `cpe_local_address`. One-CPE model only.
    pub nat: bool,
    /// Tunnel B on a second WAN device (`wan1`, "ISP 2"): its own public address
    /// [`CPE_WAN2`] on its own link to the router, `wan = "wan1"` in its section, and a host
    /// route to DC2's IPsec address through that link. One-CPE model only.
    pub two_wans: bool,
    /// Virtual Connect regions on the CPE: 1, the lab's own; 2 adds a second ("AMER",
    /// [`REGION2_PREFIX`]) as the file's `[[extra_region]]`, with DC3 and DC4 as its DC1 and
    /// DC2, each built like DC1 and DC2 and reached through the same WAN router. One-CPE model
    /// only, on one WAN without a NAT.
    pub regions: u8,
}

/// The deployment model of the region (`[deployment] model`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Model {
    /// One CPE terminates both tunnels: [`super::Region`].
    #[default]
    OneCpe,
    /// CPE 1 terminates tunnel A, CPE 2 tunnel B, an enterprise router on the LAN learns
    /// which has which /25: [`super::two_cpes::TwoCpeRegion`].
    TwoCpes,
}

impl Model {
    /// The public (IPsec and GRE) address of the CPE that terminates `dc`'s tunnel.
    #[must_use]
    pub fn cpe_public(self, dc: &DcPlan) -> Ipv4Addr {
        match (self, dc.n) {
            (Model::TwoCpes, 2) => CPE2_PUBLIC,
            _ => CPE_PUBLIC,
        }
    }
}

impl Options {
    /// The public (IPsec and GRE) address of the CPE end of `dc`'s tunnel.
    #[must_use]
    pub fn cpe_public(&self, dc: &DcPlan) -> Ipv4Addr {
        if self.two_wans && self.model == Model::OneCpe && dc.n == 2 {
            CPE_WAN2
        } else {
            self.model.cpe_public(dc)
        }
    }
}

impl Default for Options {
    fn default() -> Self {
        Options {
            keepalive_interval_s: [KEEPALIVE_INTERVAL_S; 2],
            dc_keepalives: [true; 2],
            esp_proposals: ["aes256gcm16"; 2],
            cpe_esp_offered_first: None,
            default_requires: Vec::new(),
            model: Model::OneCpe,
            dc_hold_time_s: None,
            nat: false,
            two_wans: false,
            regions: 1,
        }
    }
}

impl Options {
    /// The DCs of its regions, by [`DcPlan::n`]: DC1 and DC2, then DC3 and DC4 with a second
    /// region.
    #[must_use]
    pub fn dcs(&self) -> &'static [&'static DcPlan] {
        &ALL_DCS[..2 * usize::from(self.regions.clamp(1, 2))]
    }

    /// Why these options are no one-CPE lab, if they are not.
    #[must_use]
    pub fn one_cpe_fault(&self) -> Option<&'static str> {
        if self.model != Model::OneCpe {
            return Some(
                "Region is the one-CPE model; the two-CPE model is two_cpes::TwoCpeRegion",
            );
        }
        if self.nat && self.two_wans {
            return Some("a NAT in front of two WAN devices is not a lab scenario");
        }
        if !(1..=2).contains(&self.regions) {
            return Some("the lab has one or two regions (one agent serves at most two)");
        }
        if self.regions > 1 && (self.nat || self.two_wans) {
            return Some(
                "a second region is a lab on one WAN without a NAT: the router's NAT and the \
                 second ISP know DC1 and DC2 only",
            );
        }
        None
    }
}

fn tunnel(c: &mut String, dc: &DcPlan, o: &Options) {
    let i = dc.side();
    let cpe = o.cpe_public(dc);
    let section = match dc.region {
        1 => "tunnel",
        _ => "extra_region.tunnel",
    };
    let _ = write!(
        c,
        r#"
{header:<43}# tunnel {T}, to DC{n}
cpe_ipsec_address = "{cpe}"
cpe_gre_address = "{cpe}"
dc_ipsec_address = "{ipsec}"
dc_gre_address = "{gre}"
cpe_tunnel_ip = "{cpe_tunnel}/30"
dc_tunnel_ip = "{dc_tunnel}/30"
cisco_asn = {asn}
cpe_asn = {CPE_ASN}
ike_psk = "{psk}"
bgp_password = "{password}"
ike_proposals = ["aes256gcm16-prfsha384-ecp384"]
esp_proposals = [{first}"{esp}"]
keepalive_interval_s = {interval}
dc_keepalive_interval_s = {KEEPALIVE_INTERVAL_S}
keepalive_retries = 3
"#,
        header = format!("[{section}.{}]", dc.tunnel),
        esp = o.esp_proposals[i],
        first = o
            .cpe_esp_offered_first
            .map_or_else(String::new, |p| format!("\"{p}\", ")),
        interval = o.keepalive_interval_s[i],
        T = dc.key().to_ascii_uppercase(),
        n = dc.n,
        ipsec = dc.ipsec,
        gre = dc.gre,
        cpe_tunnel = dc.cpe_tunnel_ip,
        dc_tunnel = dc.tunnel_ip,
        asn = dc.asn,
        psk = dc.psk,
        password = dc.bgp_password,
    );
    if o.cpe_public(dc) == CPE_WAN2 {
        let _ = writeln!(c, "wan = \"wan1\"                               # ISP 2");
    }
    if o.nat {
        // The form's public address stays the IPsec address, the IKE identity and the GRE
        // transport IP (inside ESP, the NAT never sees it); IKE leaves from the WAN's own.
        let _ = writeln!(
            c,
            "cpe_local_address = \"{CPE_NAT_WAN}\"        # behind the router's NAT"
        );
    }
}

/// The whole file, the lab's own.
#[must_use]
pub fn vc_toml() -> String {
    vc_toml_with(&Options::default())
}

/// The whole file, with a scenario's changes (the one-CPE model: both tunnels).
#[must_use]
pub fn vc_toml_with(o: &Options) -> String {
    let mut c = head("the lab's CPE", "model = \"one-cpe\"");
    tunnel(&mut c, &DC1, o);
    tunnel(&mut c, &DC2, o);
    if o.regions > 1 {
        second_region(&mut c, o);
    }
    tail(&mut c, o, None);
    let _ = write!(
        c,
        r#"
[agent]
# `ip netns exec` mounts a fresh /sys: the lab mounts a BPF filesystem of its own.
pin_dir = "{BPF_MOUNT}/vc"
"#
    );
    c
}

/// Where the two-CPE model's CPE that terminates `dc`'s tunnel keeps what the agent's defaults
/// would put in one place for both: pins, state (the status socket) and vc's charon. Their
/// metrics need no port of their own: each CPE is its own network namespace.
#[derive(Clone, Debug)]
pub struct CpeDirs {
    pub config: String,
    pub pin_dir: String,
    pub state_dir: String,
    pub charon_run_dir: String,
}

impl CpeDirs {
    /// The directories of CPE `n` (1: tunnel A, 2: tunnel B).
    #[must_use]
    pub fn of(n: u8) -> CpeDirs {
        CpeDirs {
            config: format!("/etc/vc/cpe{n}.toml"),
            pin_dir: format!("{BPF_MOUNT}/vc-cpe{n}"),
            state_dir: format!("/run/vc-cpe{n}"),
            charon_run_dir: format!("/run/vc-cpe{n}/charon"),
        }
    }
}

/// The two-CPE model's file for the CPE that terminates `dc`'s tunnel (CPE `dc.n`): model
/// `two-cpes`, that tunnel only, its own directories, and the default route advertised only
/// while its LAN link is up (the other CPE then carries the LAN's traffic).
#[must_use]
pub fn vc_toml_two_cpes(o: &Options, dc: &DcPlan) -> String {
    let mut c = head(
        &format!("CPE {} (tunnel {})", dc.n, dc.tunnel.to_ascii_uppercase()),
        &format!("model = \"two-cpes\"\ntunnel = \"{}\"", dc.tunnel),
    );
    tunnel(&mut c, dc, o);
    let dirs = CpeDirs::of(dc.n);
    tail(&mut c, o, Some(&dirs.charon_run_dir));
    let _ = write!(
        c,
        r#"
[agent]
# `ip netns exec` mounts a fresh /sys: the lab mounts a BPF filesystem of its own. Two agents
# in one VM: each its own pins and state (the VM's /run is shared by both namespaces).
pin_dir = "{}"
state_dir = "{}"
"#,
        dirs.pin_dir, dirs.state_dir
    );
    c
}

fn head(whose: &str, deployment: &str) -> String {
    format!(
        r#"# vc.toml of {whose}: the activation form of region LAB (see vc.example.toml).
region = "LAB"
mode = "ipsec"

[deployment]
{deployment}

[interfaces]
wan = "wan0"
lan = "lan0"

[cisco]
prefix = "{CISCO_PREFIX}"
dc1_prefix = "{}"
dc2_prefix = "{}"
"#,
        DC1.prefix, DC2.prefix
    )
}

/// The second region's form, as an admin adds it to the same file: its name, its Cisco
/// prefixes, and its two tunnels in the shape of the first region's.
fn second_region(c: &mut String, o: &Options) {
    let _ = write!(
        c,
        r#"
[[extra_region]]                           # a second Virtual Connect region, same CPE
region = "{REGION2}"

[extra_region.cisco]
prefix = "{REGION2_PREFIX}"
dc1_prefix = "{}"
dc2_prefix = "{}"
"#,
        DC3.prefix, DC4.prefix
    );
    tunnel(c, &DC3, o);
    tunnel(c, &DC4, o);
}

/// `[lan]` (when a scenario sets conditions) and `[charon]` (with `run_dir`, if not vc's
/// default).
fn tail(c: &mut String, o: &Options, run_dir: Option<&str>) {
    if !o.default_requires.is_empty() {
        let list: Vec<String> = o
            .default_requires
            .iter()
            .map(|r| format!("{r:?}"))
            .collect();
        let _ = write!(c, "\n[lan]\ndefault_requires = [{}]\n", list.join(", "));
    }
    c.push_str("\n[charon]\n");
    if let Some(dir) = run_dir {
        let _ = writeln!(c, "run_dir = \"{dir}\"");
    }
    c.push_str(
        "# Emulated CPUs make the first ESP SA install slow: retransmit after 2 s, give up \
         after 3.\nretransmit_timeout_s = 2\nretransmit_tries = 3\n",
    );
}
