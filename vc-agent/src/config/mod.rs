//! The activation-form configuration, `vc.toml` (R23).
//!
//! The file mirrors Cisco's Virtual Connect activation form so an admin can copy it field by
//! field: the region, the Cisco /24 and its two /25s, and per tunnel (A to DC1, B to DC2) the
//! transport and IPsec addresses, tunnel IPs, ASNs, BGP password and IKE pre-shared key. What the
//! form does not fix (proposals, lifetimes, DPD, keepalives, MSS/MTU) has Cisco-compatible
//! defaults. `vc.example.toml` at the repository root is the commented reference.
//!
//! Loading is two steps: [`parse`] (TOML with unknown keys rejected) and [`validate`] (every
//! semantic fault, each with the field it concerns). [`load`] does both. Secrets are never read
//! at load time: [`Secret::resolve`] reads them when they are needed.
//!
//! Module map: `secret` (PSK / password sources), `proposal` (strongSwan's proposal grammar),
//! `validate` (the faults `check-config` reports), `export` (the config without secrets).
pub mod cli;
mod export;
mod lan;
mod parse_error;
pub mod permissions;
pub mod proposal;
mod secret;
mod validate;

use std::{fmt, net::Ipv4Addr, path::Path};

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

pub use self::{
    export::export_toml,
    lan::{BadCheck, LanCheck},
    parse_error::ParseError,
    secret::{Secret, SecretError, SecretValue},
    validate::{Fault, FaultKind, Faults, Secrets, validate, validate_with},
};

/// The whole configuration. Field names are those of `vc.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The Dedicated Instance region of this Virtual Connect, as on the form (e.g. `"EMEA"`).
    pub region: String,
    /// Who does IPsec: vc through strongSwan (default), or another box (GRE only here).
    #[serde(default)]
    pub mode: Mode,
    /// One CPE with both tunnels, or two CPEs with one tunnel each (R2).
    pub deployment: Deployment,
    /// The host's interfaces.
    pub interfaces: Interfaces,
    /// Cisco's /24 and which /25 each DC announces (R19).
    pub cisco: CiscoPrefixes,
    /// The two tunnels of the form: `[tunnel.a]` (DC1) and `[tunnel.b]` (DC2).
    #[serde(default)]
    pub tunnel: Tunnels,
    /// Another Virtual Connect (another Dedicated Instance region) this CPE serves: its own
    /// form, on the same interfaces. At most one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra_region: Vec<ExtraRegion>,
    /// vc's BGP speaker beyond the form: graceful restart. Not part of the form.
    #[serde(default)]
    pub bgp: BgpSettings,
    /// How the agent reaches strongSwan's charon. Not part of the form.
    #[serde(default)]
    pub charon: CharonSettings,
    /// The agent's own settings: the datapath's files, the LAN fast path, status and metrics.
    /// Not part of the form.
    #[serde(default)]
    pub agent: AgentSettings,
    /// The LAN side: when 0.0.0.0/0 is advertised. Not part of the form.
    #[serde(default)]
    pub lan: LanSettings,
}

/// `[[extra_region]]`: the form of a second region. Its tunnels get their own interfaces
/// (`vc-r2-dc1`, `vc-r2-dc2`), charon connections and reqids; its /24 backs up only its own
/// two tunnels.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExtraRegion {
    /// The region's name, as on its form (e.g. `"AMER"`).
    pub region: String,
    /// Its Cisco /24 and /25s.
    pub cisco: CiscoPrefixes,
    /// Its two tunnels, as `[tunnel.a]` and `[tunnel.b]`.
    #[serde(default)]
    pub tunnel: Tunnels,
}

/// `[lan]`: the conditional default route.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LanSettings {
    /// Advertise 0.0.0.0/0 to the DCs only while all of these hold on the LAN side
    /// (`"link"`: `interfaces.lan` up; `"route PREFIX"`: the main table has that route);
    /// withdrawn otherwise. Empty (default): always advertised.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub default_requires: Vec<LanCheck>,
}

/// `[agent]`: where the agent keeps its state and how it shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentSettings {
    /// Whether the LAN fast path encapsulates traffic to the DCs (it bypasses the FORWARD
    /// chain for that traffic, like an nftables flowtable).
    #[serde(default = "defaults::fast_path")]
    pub fast_path: bool,
    /// GRE-only mode: also run the fast paths in XDP on the LAN and WAN devices, where both
    /// have native XDP. Off by default: the senders must deliver complete checksums, as
    /// NICs do (see `docs/datapath.md`). Ignored in IPsec mode (XDP output skips XFRM).
    #[serde(default)]
    pub xdp: bool,
    /// A directory on a BPF filesystem for the datapath's pinned maps and links.
    #[serde(default = "defaults::pin_dir")]
    pub pin_dir: String,
    /// The agent's run-time state: what to undo at teardown, the status socket.
    #[serde(default = "defaults::state_dir")]
    pub state_dir: String,
    /// Where Prometheus metrics are served (`http://ADDR/metrics`); empty: not served.
    #[serde(default = "defaults::metrics_listen")]
    pub metrics_listen: String,
    /// What the agent logs: a level (`error` … `trace`) or per-module filters
    /// (`info,vc_agent::bgp=debug`). `RUST_LOG`, when set, overrides it.
    #[serde(default = "defaults::log_level")]
    pub log_level: String,
}

impl Default for AgentSettings {
    fn default() -> Self {
        AgentSettings {
            fast_path: defaults::fast_path(),
            xdp: false,
            pin_dir: defaults::pin_dir(),
            state_dir: defaults::state_dir(),
            metrics_listen: defaults::metrics_listen(),
            log_level: defaults::log_level(),
        }
    }
}

/// `[bgp]`: what the form leaves to the CPE's BGP speaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BgpSettings {
    /// Seconds a DC keeps vc's routes after vc's session went away without a NOTIFICATION
    /// (an agent restart or upgrade), and the longest vc keeps the routes it adopted from its
    /// previous run waiting for the DC's End-of-RIB (RFC 4724). 0: no graceful restart as the
    /// restarting speaker (a restart withdraws, as an outage would). At most 4095.
    #[serde(default = "defaults::graceful_restart_time")]
    pub graceful_restart_time_s: u16,
}

impl Default for BgpSettings {
    fn default() -> Self {
        BgpSettings {
            graceful_restart_time_s: defaults::graceful_restart_time(),
        }
    }
}

/// Who protects GRE.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// vc negotiates IKEv2/IPsec through charon and fails closed (XFRM block policies).
    #[default]
    Ipsec,
    /// GRE only: another box on the path does IPsec; vc installs no SA and no block policy.
    ExternalIpsec,
}

impl Mode {
    /// As in the config and the status: `ipsec`, `external-ipsec`.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Mode::Ipsec => "ipsec",
            Mode::ExternalIpsec => "external-ipsec",
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// R2: which tunnels this host terminates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Deployment {
    /// `one-cpe` or `two-cpes`.
    pub model: DeploymentModel,
    /// With `two-cpes`: the tunnel this CPE terminates (in every region). Not allowed with
    /// `one-cpe`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tunnel: Option<Side>,
}

/// The two deployment models of R2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DeploymentModel {
    /// This host terminates both tunnels (two eBGP neighbours).
    OneCpe,
    /// Two hosts, one tunnel each; `deployment.tunnel` names this host's.
    TwoCpes,
}

/// Tunnel A goes to DC1, tunnel B to DC2 (R1): a tunnel's side of its region.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Side {
    #[serde(rename = "a", alias = "A")]
    A,
    #[serde(rename = "b", alias = "B")]
    B,
}

impl Side {
    /// The data centre this side's tunnel goes to: 1 for A, 2 for B.
    #[must_use]
    pub fn dc(self) -> u8 {
        match self {
            Side::A => 1,
            Side::B => 2,
        }
    }

    /// `"a"` or `"b"`, as in `[tunnel.a]`.
    #[must_use]
    pub fn key(self) -> &'static str {
        match self {
            Side::A => "a",
            Side::B => "b",
        }
    }
}

/// How many Virtual Connect regions one agent serves: the file's own and one
/// `[[extra_region]]`. Two tunnels each fill the datapath's tunnel table.
pub const MAX_REGIONS: usize = vc_common::MAX_TUNNELS as usize / 2;

/// How many tunnels one agent serves at most: the length of per-tunnel arrays.
pub const TUNNELS: usize = 2 * MAX_REGIONS;

/// One tunnel of the host: its region (0: the file's top-level one, 1: its `[[extra_region]]`)
/// and its side (A to that region's DC1, B to its DC2). Written as its key: `a`, `b` for the
/// first region, `r2-a`, `r2-b` for the second, so the first region's names never change when
/// a second is added.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "&'static str")]
pub struct TunnelId {
    region: u8,
    side: Side,
}

/// The keys of [`TunnelId::ALL`], in the same order.
const TUNNEL_KEYS: [&str; TUNNELS] = ["a", "b", "r2-a", "r2-b"];

impl TunnelId {
    /// The first region's tunnel A (DC1).
    pub const A: TunnelId = TunnelId::new(0, Side::A);
    /// The first region's tunnel B (DC2).
    pub const B: TunnelId = TunnelId::new(0, Side::B);

    /// Every tunnel an agent can serve, by index: the first region's A and B, then the
    /// second's. A config has the ones [`Config::tunnel`] finds.
    pub const ALL: [TunnelId; TUNNELS] = [
        TunnelId::A,
        TunnelId::B,
        TunnelId::new(1, Side::A),
        TunnelId::new(1, Side::B),
    ];

    /// Tunnel `side` of region `region` (0-based; below [`MAX_REGIONS`]).
    #[must_use]
    pub const fn new(region: u8, side: Side) -> TunnelId {
        TunnelId { region, side }
    }

    /// Its region: 0 for the file's own, 1 for its `[[extra_region]]`.
    #[must_use]
    pub fn region(self) -> usize {
        usize::from(self.region)
    }

    /// A or B within its region.
    #[must_use]
    pub fn side(self) -> Side {
        self.side
    }

    /// 0 for A, 1 for B, 2 and 3 for the second region's: the index other modules use for
    /// per-tunnel arrays and BPF maps.
    #[must_use]
    pub fn index(self) -> usize {
        2 * self.region() + usize::from(self.side == Side::B)
    }

    /// The inverse of [`TunnelId::index`].
    #[must_use]
    pub fn from_index(index: usize) -> Option<TunnelId> {
        TunnelId::ALL.get(index).copied()
    }

    /// The data centre of its region this tunnel goes to: 1 for A, 2 for B.
    #[must_use]
    pub fn dc(self) -> u8 {
        self.side.dc()
    }

    /// `"a"`, `"b"`, `"r2-a"` or `"r2-b"`: its name in charon's connections, metrics and
    /// logs.
    #[must_use]
    pub fn key(self) -> &'static str {
        TUNNEL_KEYS[self.index()]
    }

    /// Its section in `vc.toml`: `tunnel.a`, or `extra_region[0].tunnel.a`.
    #[must_use]
    pub fn section(self) -> String {
        match self.region {
            0 => format!("tunnel.{}", self.side.key()),
            r => format!("extra_region[{}].tunnel.{}", r - 1, self.side.key()),
        }
    }
}

impl TryFrom<String> for TunnelId {
    type Error = String;

    fn try_from(key: String) -> Result<Self, Self::Error> {
        TunnelId::ALL
            .into_iter()
            .find(|id| id.key().eq_ignore_ascii_case(&key))
            .ok_or_else(|| format!("no tunnel {key:?} (a, b, r2-a or r2-b)"))
    }
}

impl From<TunnelId> for &'static str {
    fn from(id: TunnelId) -> Self {
        id.key()
    }
}

impl fmt::Display for TunnelId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let side = match self.side {
            Side::A => "A (DC1)",
            Side::B => "B (DC2)",
        };
        match self.region {
            0 => f.write_str(side),
            r => write!(f, "{side} of region {}", r + 1),
        }
    }
}

/// The host's network interfaces.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Interfaces {
    /// Towards the internet: IKE, ESP (and GRE in `external-ipsec` mode) leave here.
    pub wan: String,
    /// Towards the enterprise network.
    pub lan: String,
}

/// Cisco's prefixes for the region (R19): a /24 split into one /25 per DC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CiscoPrefixes {
    /// The /24 both DCs announce as backup.
    pub prefix: Ipv4Net,
    /// The /25 DC1 announces (reached over tunnel A).
    pub dc1_prefix: Ipv4Net,
    /// The /25 DC2 announces (reached over tunnel B).
    pub dc2_prefix: Ipv4Net,
}

/// `[tunnel.a]` and `[tunnel.b]`. Either may be absent in a `two-cpes` deployment.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tunnels {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub a: Option<Tunnel>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub b: Option<Tunnel>,
}

/// One tunnel of the form (R3), plus its IPsec and GRE settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tunnel {
    // --- from the activation form ---
    /// The CPE's public IPsec address (what Cisco configures as its peer).
    pub cpe_ipsec_address: Ipv4Addr,
    /// The CPE's GRE transport IP: the GRE source; may equal `cpe_ipsec_address`.
    pub cpe_gre_address: Ipv4Addr,
    /// The DC's IPsec peer address.
    pub dc_ipsec_address: Ipv4Addr,
    /// The DC's GRE transport IP: the GRE destination.
    pub dc_gre_address: Ipv4Addr,
    /// The CPE's tunnel-interface IP with the mask Cisco allocated (/30 or /31 in 100.64.0.0/10).
    pub cpe_tunnel_ip: Ipv4Net,
    /// The DC's tunnel-interface IP (the BGP neighbour), same subnet.
    pub dc_tunnel_ip: Ipv4Net,
    /// Cisco's private ASN for this DC.
    pub cisco_asn: u32,
    /// Our private ASN.
    pub cpe_asn: u32,
    /// The BGP password (TCP-MD5, R17).
    #[serde(skip_serializing)]
    pub bgp_password: Option<Secret>,
    /// The IKE pre-shared key (R10). Required in `ipsec` mode.
    #[serde(skip_serializing)]
    pub ike_psk: Option<Secret>,

    // --- IKE / IPsec (R5–R11) ---
    /// IKE proposals in strongSwan syntax, most preferred first (e.g.
    /// `"aes256gcm16-prfsha384-ecp384"`). Required in `ipsec` mode.
    #[serde(default)]
    pub ike_proposals: Vec<String>,
    /// ESP proposals in strongSwan syntax; a DH group in them means PFS on rekey.
    #[serde(default)]
    pub esp_proposals: Vec<String>,
    /// IKE SA lifetime in seconds. vc rekeys at 90 % of it (minus up to 5 % jitter).
    #[serde(default = "defaults::ike_lifetime")]
    pub ike_lifetime_s: u32,
    /// Child (ESP) SA lifetime in seconds. vc rekeys at 90 % of it (minus up to 5 % jitter).
    #[serde(default = "defaults::esp_lifetime")]
    pub esp_lifetime_s: u32,
    /// IKEv2 dead-peer-detection interval in seconds; 0 turns DPD off.
    #[serde(default = "defaults::dpd_interval")]
    pub dpd_interval_s: u32,
    /// ESP anti-replay window in packets: large, so voice packets that priority queueing
    /// reordered are not dropped as replays.
    #[serde(default = "defaults::replay_window")]
    pub replay_window: u32,
    /// The WAN device this tunnel's IKE and ESP leave by, when not `interfaces.wan` (tunnel A
    /// on one ISP, B on another). The host's routes must send the DC's IPsec address out of it;
    /// vc checks that they do (status, diagnose) and guards every WAN device.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wan: Option<String>,
    /// When a NAT maps the CPE's WAN address to `cpe_ipsec_address`: the WAN address itself,
    /// which IKE is sent from. Default: `cpe_ipsec_address`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpe_local_address: Option<Ipv4Addr>,
    /// Our IKE identity. Default: `cpe_ipsec_address`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpe_ike_id: Option<String>,
    /// The DC's IKE identity. Default: `dc_ipsec_address`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dc_ike_id: Option<String>,

    // --- GRE (R12–R14) ---
    /// GRE keepalive interval in seconds; 0 = send none (still answer the DC's).
    #[serde(default = "defaults::keepalive_interval")]
    pub keepalive_interval_s: u32,
    /// Keepalives missed before the tunnel counts as down.
    #[serde(default = "defaults::keepalive_retries")]
    pub keepalive_retries: u32,
    /// The interval of the DC's own keepalives: with ours off (`keepalive_interval_s = 0`),
    /// liveness is judged from the DC's that vc reflects, `keepalive_retries` of these.
    #[serde(default = "defaults::keepalive_interval")]
    pub dc_keepalive_interval_s: u32,
    /// TCP MSS clamp for SYNs through the tunnel (Cisco asks for 1350).
    #[serde(default = "defaults::mss")]
    pub mss: u16,
    /// Tunnel-interface MTU.
    #[serde(default = "defaults::mtu")]
    pub mtu: u16,
}

/// How the agent reaches charon (not part of the form).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CharonSettings {
    /// `supervise`: the agent runs its own charon; `attach`: it uses a running one.
    #[serde(default)]
    pub mode: CharonMode,
    /// `supervise`: directory for the agent's charon (strongswan.conf, pid file, VICI socket,
    /// log). Private to vc, so a system charon can run beside it.
    #[serde(default = "defaults::run_dir")]
    pub run_dir: String,
    /// `attach`: the VICI socket of the running charon.
    #[serde(default = "defaults::socket")]
    pub socket: String,
    /// `supervise`: the charon binary.
    #[serde(default = "defaults::binary")]
    pub binary: String,
    /// `supervise`: seconds before the first IKE retransmission (strongSwan's default 4).
    #[serde(default = "defaults::retransmit_timeout")]
    pub retransmit_timeout_s: u32,
    /// `supervise`: retransmissions before a peer counts as unreachable (strongSwan's 5).
    #[serde(default = "defaults::retransmit_tries")]
    pub retransmit_tries: u32,
}

/// See [`CharonSettings::mode`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CharonMode {
    #[default]
    Supervise,
    Attach,
}

impl Default for CharonSettings {
    fn default() -> Self {
        CharonSettings {
            mode: CharonMode::default(),
            run_dir: defaults::run_dir(),
            socket: defaults::socket(),
            binary: defaults::binary(),
            retransmit_timeout_s: defaults::retransmit_timeout(),
            retransmit_tries: defaults::retransmit_tries(),
        }
    }
}

/// Defaults for what the form leaves open; each is what Cisco's head end uses or asks for.
pub mod defaults {
    /// Cisco IOS-XE's IKEv2 SA lifetime.
    #[must_use]
    pub fn ike_lifetime() -> u32 {
        86_400
    }
    /// Cisco IOS-XE's IPsec SA lifetime.
    #[must_use]
    pub fn esp_lifetime() -> u32 {
        3_600
    }
    #[must_use]
    pub fn dpd_interval() -> u32 {
        10
    }
    /// 1024 packets absorbs the reordering that priority queueing of voice causes.
    #[must_use]
    pub fn replay_window() -> u32 {
        1_024
    }
    #[must_use]
    pub fn keepalive_interval() -> u32 {
        10
    }
    #[must_use]
    pub fn keepalive_retries() -> u32 {
        3
    }
    #[must_use]
    pub fn mss() -> u16 {
        1_350
    }
    #[must_use]
    pub fn mtu() -> u16 {
        1_400
    }
    /// RFC 4724's example value, and BIRD's and FRR's default: long enough for a package
    /// upgrade, short enough that a CPE that never comes back is routed around.
    #[must_use]
    pub fn graceful_restart_time() -> u16 {
        120
    }
    #[must_use]
    pub fn run_dir() -> String {
        "/run/vc/charon".into()
    }
    #[must_use]
    pub fn fast_path() -> bool {
        true
    }
    #[must_use]
    pub fn pin_dir() -> String {
        "/sys/fs/bpf/vc".into()
    }
    #[must_use]
    pub fn state_dir() -> String {
        "/run/vc".into()
    }
    /// Loopback only: metrics say much about the network; expose them on purpose.
    #[must_use]
    pub fn metrics_listen() -> String {
        "127.0.0.1:9917".into()
    }
    #[must_use]
    pub fn log_level() -> String {
        "info".into()
    }
    #[must_use]
    pub fn socket() -> String {
        "/run/charon.vici".into()
    }
    #[must_use]
    pub fn binary() -> String {
        "/usr/lib/ipsec/charon".into()
    }
    #[must_use]
    pub fn retransmit_timeout() -> u32 {
        4
    }
    #[must_use]
    pub fn retransmit_tries() -> u32 {
        5
    }
}

/// Why a config could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Parse { path: String, source: ParseError },
    #[error("{path}: {faults}")]
    Invalid { path: String, faults: Faults },
}

/// Parses TOML without semantic checks (unknown keys and wrong types are errors here). The
/// error never shows a value of the file (see [`ParseError`]).
pub fn parse(text: &str) -> Result<Config, ParseError> {
    toml::from_str(text).map_err(|e| ParseError::new(&e, text))
}

/// Reads, parses and validates `path`. Secrets are not kept (see [`Secret::resolve`]), but a
/// secret that cannot be resolved is a fault: for the commands that use them.
pub fn load(path: &Path) -> Result<Config, LoadError> {
    load_with(path, Secrets::Resolve)
}

/// Like [`load`], for the read-only commands (`status`, `diagnose`, `export-config`, `ipsec
/// status`, `datapath show`): secrets are not read at all, so an admin's shell without the
/// service's environment or credentials can run them.
pub fn load_without_secrets(path: &Path) -> Result<Config, LoadError> {
    load_with(path, Secrets::Unread)
}

fn load_with(path: &Path, secrets: Secrets) -> Result<Config, LoadError> {
    let shown = path.display().to_string();
    // The text holds the inline secrets: wiped once parsed.
    let text = zeroize::Zeroizing::new(std::fs::read_to_string(path).map_err(|source| {
        LoadError::Read {
            path: shown.clone(),
            source,
        }
    })?);
    let config = parse(&text).map_err(|source| LoadError::Parse {
        path: shown.clone(),
        source,
    })?;
    validate_with(&config, secrets).map_err(|faults| LoadError::Invalid {
        path: shown,
        faults,
    })?;
    Ok(config)
}

impl Config {
    /// The tunnel with this id, if the file has it.
    #[must_use]
    pub fn tunnel(&self, id: TunnelId) -> Option<&Tunnel> {
        let (_, _, tunnels) = self.form(id)?;
        match id.side() {
            Side::A => tunnels.a.as_ref(),
            Side::B => tunnels.b.as_ref(),
        }
    }

    /// The tunnels this host terminates, in index order: all of them with `one-cpe`, the named
    /// side of each region with `two-cpes` (R2).
    pub fn terminated(&self) -> impl Iterator<Item = (TunnelId, &Tunnel)> {
        let only = match self.deployment.model {
            DeploymentModel::OneCpe => None,
            DeploymentModel::TwoCpes => self.deployment.tunnel,
        };
        TunnelId::ALL
            .into_iter()
            .filter(move |id| only.is_none_or(|o| o == id.side()))
            .filter_map(|id| self.tunnel(id).map(|t| (id, t)))
    }

    /// The regions' names, the file's own first, as the status and metrics show them:
    /// `EMEA`, or `EMEA + AMER`.
    #[must_use]
    pub fn regions(&self) -> String {
        std::iter::once(self.region.as_str())
            .chain(self.extra_region.iter().map(|r| r.region.as_str()))
            .collect::<Vec<_>>()
            .join(" + ")
    }

    /// Whether vc does IPsec itself.
    #[must_use]
    pub fn ipsec(&self) -> bool {
        self.mode == Mode::Ipsec
    }

    /// The form of a tunnel's region: its name, Cisco prefixes and tunnels; `None` for a
    /// region the file does not have.
    fn form(&self, id: TunnelId) -> Option<(&str, &CiscoPrefixes, &Tunnels)> {
        match id.region() {
            0 => Some((&self.region, &self.cisco, &self.tunnel)),
            r => self
                .extra_region
                .get(r - 1)
                .map(|e| (e.region.as_str(), &e.cisco, &e.tunnel)),
        }
    }

    /// The name of a tunnel's region, as on its form.
    #[must_use]
    pub fn region_of(&self, id: TunnelId) -> &str {
        self.form(id).map_or("", |(name, _, _)| name)
    }

    /// The Cisco prefixes of a tunnel's region (the file's own for a region it does not have).
    #[must_use]
    pub fn cisco(&self, id: TunnelId) -> &CiscoPrefixes {
        self.form(id).map_or(&self.cisco, |(_, cisco, _)| cisco)
    }

    /// Cisco's /24 of a tunnel's region (both its DCs announce it as backup).
    #[must_use]
    pub fn cisco_prefix(&self, id: TunnelId) -> Ipv4Net {
        self.cisco(id).prefix
    }

    /// The /25 that belongs to this tunnel's DC (R19, R20).
    #[must_use]
    pub fn dc_prefix(&self, id: TunnelId) -> Ipv4Net {
        let cisco = self.cisco(id);
        match id.side() {
            Side::A => cisco.dc1_prefix,
            Side::B => cisco.dc2_prefix,
        }
    }
}

impl Tunnel {
    /// The WAN device of this tunnel: its own `wan`, else the host's `interfaces.wan`.
    #[must_use]
    pub fn wan<'a>(&'a self, interfaces: &'a Interfaces) -> &'a str {
        self.wan.as_deref().unwrap_or(&interfaces.wan)
    }

    /// The address IKE is sent from: `cpe_local_address` behind a NAT, else the public one.
    #[must_use]
    pub fn local_address(&self) -> Ipv4Addr {
        self.cpe_local_address.unwrap_or(self.cpe_ipsec_address)
    }

    /// Our IKE identity (default: the public IPsec address, as Cisco expects).
    #[must_use]
    pub fn local_ike_id(&self) -> String {
        self.cpe_ike_id
            .clone()
            .unwrap_or_else(|| self.cpe_ipsec_address.to_string())
    }

    /// The DC's IKE identity (default: its IPsec address).
    #[must_use]
    pub fn remote_ike_id(&self) -> String {
        self.dc_ike_id
            .clone()
            .unwrap_or_else(|| self.dc_ipsec_address.to_string())
    }

    /// The tunnel subnet (/30 or /31) both tunnel IPs are in.
    #[must_use]
    pub fn tunnel_subnet(&self) -> Ipv4Net {
        self.cpe_tunnel_ip.trunc()
    }
}

#[cfg(test)]
pub(crate) mod tests;
