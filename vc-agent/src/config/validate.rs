//! Semantic checks of a parsed config: every fault at once, each naming its field, so an admin
//! fixes the file in one pass (`vc-agent check-config`).
use std::{fmt, net::Ipv4Addr, ops::RangeInclusive};

use ipnet::Ipv4Net;

use super::{
    CiscoPrefixes, Config, DeploymentModel, MAX_REGIONS, Secret, SecretError, Side, Tunnel,
    TunnelId,
    proposal::{self, ProposalError, Protocol},
};

/// Private ASNs Cisco assigns (R16): 16-bit private range without the reserved 65535.
pub const PRIVATE_ASNS: RangeInclusive<u32> = 64_512..=65_534;
/// RFC 6598 shared address space, where Cisco allocates tunnel IPs (R3).
pub const SHARED_SPACE: Ipv4Net = match Ipv4Net::new(Ipv4Addr::new(100, 64, 0, 0), 10) {
    Ok(net) => net,
    Err(_) => unreachable!(),
};
/// Tunnel MTU: IPv4 minimum up to GRE over a 1500-byte path.
pub const MTU_RANGE: RangeInclusive<u16> = 576..=1_476;
/// TCP MSS: IPv4 default minimum up to what a tunnel MTU can carry (checked against it too).
pub const MSS_RANGE: RangeInclusive<u16> = 536..=1_436;
/// The Graceful Restart capability's restart time is 12 bits (RFC 4724 §3).
pub const GRACEFUL_RESTART_TIME_MAX: u64 = 4_095;
/// TCP-MD5 keys are at most 80 bytes (`TCP_MD5SIG_MAXKEYLEN`).
pub const BGP_PASSWORD_MAX: usize = 80;

/// One problem, with the config field it is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    /// Dotted TOML path, e.g. `tunnel.a.cisco_asn`.
    pub field: String,
    pub kind: FaultKind,
}

/// Every fault class `check-config` knows. Messages never contain a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FaultKind {
    #[error("must not be empty")]
    Empty,
    #[error("ASN {0} is outside the private range 64512–65534 that Cisco assigns")]
    AsnNotPrivate(u32),
    #[error("equals cisco_asn ({0}): eBGP needs two different ASNs")]
    AsnEqual(u32),
    #[error(
        "{0} is outside the shared address space 100.64.0.0/10 where Cisco allocates tunnel IPs"
    )]
    TunnelIpNotShared(Ipv4Net),
    #[error("mask /{0}: Cisco allocates a /30 or a /31")]
    TunnelMask(u8),
    #[error("{cpe} and {dc} are not in one subnet")]
    TunnelNotOneSubnet { cpe: Ipv4Net, dc: Ipv4Net },
    #[error("{0} is the network address of its /30")]
    TunnelIpNetwork(Ipv4Addr),
    #[error("{0} is the broadcast address of its /30")]
    TunnelIpBroadcast(Ipv4Addr),
    #[error("{0} overlaps {2}'s subnet {1}")]
    TunnelSubnetOverlap(Ipv4Net, Ipv4Net, String),
    #[error("{0} overlaps {1}")]
    RegionPrefixOverlap(Ipv4Net, String),
    #[error("{given} regions: one agent serves at most {max} (the file's and one extra_region)")]
    TooManyRegions { given: usize, max: usize },
    #[error("{0:?} is also the file's region")]
    RegionSame(String),
    #[error("{0} is not a /24")]
    NotSlash24(Ipv4Net),
    #[error("{0} is not a /25")]
    NotSlash25(Ipv4Net),
    #[error("{net} has host bits set (did you mean {trunc}?)")]
    HostBits { net: Ipv4Net, trunc: Ipv4Net },
    #[error("{half} is not inside the Cisco /24 {prefix}")]
    HalfOutside { half: Ipv4Net, prefix: Ipv4Net },
    #[error("{0} is also dc1_prefix: the /25s must be the two halves of the /24")]
    HalvesSame(Ipv4Net),
    #[error("{addr} is also {other}")]
    DuplicateAddress { addr: Ipv4Addr, other: String },
    #[error("{0} is not a unicast host address")]
    NotUnicast(Ipv4Addr),
    #[error("missing: {0}")]
    Missing(&'static str),
    #[error("{0:?} is not an address and port (e.g. 127.0.0.1:9917), nor empty")]
    NotSocketAddress(String),
    #[error("not allowed with {0}")]
    NotAllowed(&'static str),
    #[error("proposal {index} {proposal:?}: {error}")]
    Proposal {
        index: usize,
        proposal: String,
        error: ProposalError,
    },
    #[error("cannot be resolved ({origin}): {error}")]
    Secret { origin: String, error: String },
    #[error("is {0} bytes long; TCP-MD5 allows at most 80")]
    BgpPasswordTooLong(usize),
    #[error("{value} is outside {min}–{max}")]
    OutOfRange { value: u64, min: u64, max: u64 },
    #[error("{mss} does not fit the tunnel mtu {mtu} (at most mtu - 40 = {max})")]
    MssAboveMtu { mss: u16, mtu: u16, max: u16 },
    #[error("{0:?} is not a valid interface name")]
    InterfaceName(String),
    #[error("wan and lan are both {0:?}")]
    InterfaceSame(String),
    #[error("{0:?} is not a log filter (e.g. \"info\" or \"info,vc_agent::bgp=debug\")")]
    LogLevel(String),
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.kind)
    }
}

/// All faults of one config; `Display` puts one per line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Faults(pub Vec<Fault>);

impl fmt::Display for Faults {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.len();
        write!(f, "{n} fault{}", if n == 1 { "" } else { "s" })?;
        for fault in &self.0 {
            write!(f, "\n  {fault}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Faults {}

/// Whether validation reads the secrets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Secrets {
    /// Resolve each secret (to prove it can be) and drop it at once: `run`, `ipsec up`,
    /// `check-config`.
    Resolve,
    /// Only check that the required ones are configured: the read-only commands, which an
    /// admin runs without the service's environment.
    Unread,
}

/// Checks everything the file cannot express by its types. Secrets are resolved (to prove they
/// can be) and dropped at once.
pub fn validate(config: &Config) -> Result<(), Faults> {
    validate_with(config, Secrets::Resolve)
}

/// [`validate`], reading the secrets or not.
pub fn validate_with(config: &Config, secrets: Secrets) -> Result<(), Faults> {
    let mut v = Checker {
        secrets,
        faults: Vec::new(),
    };
    v.top(config);
    let tunnels = v.deployment(config);
    for (id, t) in &tunnels {
        v.tunnel(config, *id, t);
    }
    v.across_tunnels(&tunnels);
    v.regions(config);
    v.charon(config);
    v.agent(config);
    v.bgp(config);
    if v.faults.is_empty() {
        Ok(())
    } else {
        Err(Faults(v.faults))
    }
}

struct Checker {
    secrets: Secrets,
    faults: Vec<Fault>,
}

impl Checker {
    fn fault(&mut self, field: impl Into<String>, kind: FaultKind) {
        self.faults.push(Fault {
            field: field.into(),
            kind,
        });
    }

    /// One duplicate-address fault per field: one typo should give one line, not four.
    fn duplicate(&mut self, field: String, addr: Ipv4Addr, other: String) {
        let known = self
            .faults
            .iter()
            .any(|f| f.field == field && matches!(f.kind, FaultKind::DuplicateAddress { .. }));
        if !known {
            self.fault(field, FaultKind::DuplicateAddress { addr, other });
        }
    }

    fn range(&mut self, field: String, value: u64, range: RangeInclusive<u64>) {
        if !range.contains(&value) {
            let (min, max) = range.into_inner();
            self.fault(field, FaultKind::OutOfRange { value, min, max });
        }
    }

    fn top(&mut self, c: &Config) {
        if c.region.trim().is_empty() {
            self.fault("region", FaultKind::Empty);
        }
        let regions = 1 + c.extra_region.len();
        if regions > MAX_REGIONS {
            self.fault(
                "extra_region",
                FaultKind::TooManyRegions {
                    given: regions,
                    max: MAX_REGIONS,
                },
            );
        }
        for (i, extra) in c.extra_region.iter().enumerate() {
            let field = format!("extra_region[{i}].region");
            if extra.region.trim().is_empty() {
                self.fault(field, FaultKind::Empty);
            } else if extra.region.eq_ignore_ascii_case(&c.region) {
                self.fault(field, FaultKind::RegionSame(extra.region.clone()));
            }
        }
        for (field, name) in [
            ("interfaces.wan", &c.interfaces.wan),
            ("interfaces.lan", &c.interfaces.lan),
        ] {
            if !interface_name_ok(name) {
                self.fault(field, FaultKind::InterfaceName(name.clone()));
            }
        }
        if c.interfaces.wan == c.interfaces.lan {
            self.fault(
                "interfaces.lan",
                FaultKind::InterfaceSame(c.interfaces.lan.clone()),
            );
        }
    }

    /// The tunnels the deployment model needs, each checked to be present.
    fn deployment<'c>(&mut self, c: &'c Config) -> Vec<(TunnelId, &'c Tunnel)> {
        match (c.deployment.model, c.deployment.tunnel) {
            (DeploymentModel::OneCpe, Some(_)) => {
                self.fault(
                    "deployment.tunnel",
                    FaultKind::NotAllowed("model one-cpe (it terminates both tunnels)"),
                );
            }
            (DeploymentModel::TwoCpes, None) => {
                self.fault(
                    "deployment.tunnel",
                    FaultKind::Missing(
                        "model two-cpes needs the tunnel this CPE terminates (\"a\" or \"b\")",
                    ),
                );
            }
            _ => {}
        }
        let serves = |id: &TunnelId| match (c.deployment.model, c.deployment.tunnel) {
            (DeploymentModel::TwoCpes, side) => side == Some(id.side()),
            (DeploymentModel::OneCpe, _) => true,
        };
        let regions = (1 + c.extra_region.len()).min(MAX_REGIONS);
        for id in TunnelId::ALL.into_iter().filter(|id| id.region() < regions) {
            if serves(&id) && c.tunnel(id).is_none() {
                self.fault(
                    id.section(),
                    FaultKind::Missing(match id.side() {
                        Side::A => "tunnel A (DC1): this CPE terminates it",
                        Side::B => "tunnel B (DC2): this CPE terminates it",
                    }),
                );
            }
        }
        // A two-cpes file may carry the other CPE's tunnel too (the whole form): check it as well.
        TunnelId::ALL
            .into_iter()
            .filter_map(|id| c.tunnel(id).map(|t| (id, t)))
            .collect()
    }

    fn tunnel(&mut self, c: &Config, id: TunnelId, t: &Tunnel) {
        let p = |f: &str| format!("{}.{f}", id.section());

        // ASNs (R16)
        for (f, asn) in [("cisco_asn", t.cisco_asn), ("cpe_asn", t.cpe_asn)] {
            if !PRIVATE_ASNS.contains(&asn) {
                self.fault(p(f), FaultKind::AsnNotPrivate(asn));
            }
        }
        if t.cisco_asn == t.cpe_asn {
            self.fault(p("cpe_asn"), FaultKind::AsnEqual(t.cisco_asn));
        }

        // Its own WAN device, if any: a name the kernel takes, and not the LAN.
        if let Some(wan) = &t.wan {
            if !interface_name_ok(wan) {
                self.fault(p("wan"), FaultKind::InterfaceName(wan.clone()));
            }
            if *wan == c.interfaces.lan {
                self.fault(p("wan"), FaultKind::InterfaceSame(wan.clone()));
            }
        }

        // Transport addresses (R3): unicast, and no two the same within the tunnel.
        let addrs = transport(t);
        for (f, a) in addrs
            .iter()
            .chain(t.cpe_local_address.map(|a| ("cpe_local_address", a)).iter())
        {
            if !unicast(*a) {
                self.fault(p(f), FaultKind::NotUnicast(*a));
            }
        }
        // CPE vs DC: none of ours may be one of theirs. (Ours may repeat: GRE IP = IPsec address.)
        for (cf, ca) in &addrs[..2] {
            for (df, da) in &addrs[2..] {
                if ca == da {
                    self.duplicate(p(df), *da, p(cf));
                }
            }
        }

        self.tunnel_ips(&p, t);

        // IPsec (R5–R11): only when vc does IPsec.
        if c.ipsec() {
            self.proposals(&p("ike_proposals"), Protocol::Ike, &t.ike_proposals);
            self.proposals(&p("esp_proposals"), Protocol::Esp, &t.esp_proposals);
            match &t.ike_psk {
                None => self.fault(
                    p("ike_psk"),
                    FaultKind::Missing("the IKE pre-shared key (mode ipsec)"),
                ),
                Some(s) => {
                    self.secret(p("ike_psk"), s);
                }
            }
            self.range(p("ike_lifetime_s"), t.ike_lifetime_s.into(), 10..=604_800);
            self.range(p("esp_lifetime_s"), t.esp_lifetime_s.into(), 10..=86_400);
            self.range(p("dpd_interval_s"), t.dpd_interval_s.into(), 0..=3_600);
            // The kernel's ESN replay bitmap holds at most 4096 bytes; below 32 is below
            // the kernel's classic window and useless with QoS reordering.
            self.range(p("replay_window"), t.replay_window.into(), 32..=32_768);
            for (f, id) in [("cpe_ike_id", &t.cpe_ike_id), ("dc_ike_id", &t.dc_ike_id)] {
                if id.as_ref().is_some_and(|s| s.trim().is_empty()) {
                    self.fault(p(f), FaultKind::Empty);
                }
            }
        }
        if let Some(s) = &t.bgp_password
            && let Some(v) = self.secret(p("bgp_password"), s)
            && v.expose().len() > BGP_PASSWORD_MAX
        {
            self.fault(
                p("bgp_password"),
                FaultKind::BgpPasswordTooLong(v.expose().len()),
            );
        }

        // GRE (R13, R14)
        self.range(
            p("keepalive_interval_s"),
            t.keepalive_interval_s.into(),
            0..=32_767,
        );
        self.range(p("keepalive_retries"), t.keepalive_retries.into(), 1..=255);
        self.range(
            p("dc_keepalive_interval_s"),
            t.dc_keepalive_interval_s.into(),
            1..=32_767,
        );
        let mtu_ok = MTU_RANGE.contains(&t.mtu);
        if !mtu_ok {
            self.range(
                p("mtu"),
                t.mtu.into(),
                (*MTU_RANGE.start()).into()..=(*MTU_RANGE.end()).into(),
            );
        }
        if !MSS_RANGE.contains(&t.mss) {
            self.range(
                p("mss"),
                t.mss.into(),
                (*MSS_RANGE.start()).into()..=(*MSS_RANGE.end()).into(),
            );
        } else if mtu_ok && t.mss > t.mtu - 40 {
            self.fault(
                p("mss"),
                FaultKind::MssAboveMtu {
                    mss: t.mss,
                    mtu: t.mtu,
                    max: t.mtu - 40,
                },
            );
        }
    }

    /// R3: a /30 or /31 in 100.64.0.0/10, both ends in it, neither the network nor the
    /// broadcast address of a /30, and not the same.
    fn tunnel_ips(&mut self, p: &dyn Fn(&str) -> String, t: &Tunnel) {
        let ends = [
            ("cpe_tunnel_ip", t.cpe_tunnel_ip),
            ("dc_tunnel_ip", t.dc_tunnel_ip),
        ];
        let mut ok = true;
        for (f, net) in ends {
            if !SHARED_SPACE.contains(&net) {
                self.fault(p(f), FaultKind::TunnelIpNotShared(net));
                ok = false;
            }
            if !matches!(net.prefix_len(), 30 | 31) {
                self.fault(p(f), FaultKind::TunnelMask(net.prefix_len()));
                ok = false;
            }
        }
        if !ok {
            return;
        }
        if t.cpe_tunnel_ip.trunc() != t.dc_tunnel_ip.trunc() {
            self.fault(
                p("dc_tunnel_ip"),
                FaultKind::TunnelNotOneSubnet {
                    cpe: t.cpe_tunnel_ip,
                    dc: t.dc_tunnel_ip,
                },
            );
            return;
        }
        if t.cpe_tunnel_ip.addr() == t.dc_tunnel_ip.addr() {
            self.fault(
                p("dc_tunnel_ip"),
                FaultKind::DuplicateAddress {
                    addr: t.dc_tunnel_ip.addr(),
                    other: p("cpe_tunnel_ip"),
                },
            );
        }
        if t.cpe_tunnel_ip.prefix_len() == 30 {
            for (f, net) in ends {
                if net.addr() == net.network() {
                    self.fault(p(f), FaultKind::TunnelIpNetwork(net.addr()));
                } else if net.addr() == net.broadcast() {
                    self.fault(p(f), FaultKind::TunnelIpBroadcast(net.addr()));
                }
            }
        }
    }

    fn proposals(&mut self, field: &str, protocol: Protocol, list: &[String]) {
        if list.is_empty() {
            self.fault(field, FaultKind::Missing(match protocol {
                Protocol::Ike => "at least one IKE proposal, e.g. \"aes256gcm16-prfsha384-ecp384\" (mode ipsec)",
                Protocol::Esp => "at least one ESP proposal, e.g. \"aes256gcm16\" (mode ipsec)",
            }));
        }
        for (index, proposal) in list.iter().enumerate() {
            if let Err(error) = proposal::check(protocol, proposal) {
                self.fault(
                    field,
                    FaultKind::Proposal {
                        index,
                        proposal: proposal.clone(),
                        error,
                    },
                );
            }
        }
    }

    fn secret(&mut self, field: String, s: &Secret) -> Option<super::SecretValue> {
        if self.secrets == Secrets::Unread {
            return None;
        }
        match s.resolve() {
            Ok(v) => Some(v),
            Err(error) => {
                let error = match error {
                    SecretError::File { source, .. } => source.to_string(),
                    other => other.to_string(),
                };
                self.fault(
                    field,
                    FaultKind::Secret {
                        origin: s.origin(),
                        error,
                    },
                );
                None
            }
        }
    }

    /// Across every pair of tunnels (one region's two, or two regions'): the DCs share no
    /// address with each other or with the CPE (the CPE may use one public and one GRE address
    /// for all its tunnels), and the tunnel subnets do not overlap.
    fn across_tunnels(&mut self, tunnels: &[(TunnelId, &Tunnel)]) {
        for (i, &(ia, a)) in tunnels.iter().enumerate() {
            for &(ib, b) in &tunnels[i + 1..] {
                self.tunnel_pair((ia, a), (ib, b));
            }
        }
    }

    /// One pair of [`Checker::across_tunnels`]; `b` comes after `a` in index order.
    fn tunnel_pair(&mut self, (ia, a): (TunnelId, &Tunnel), (ib, b): (TunnelId, &Tunnel)) {
        let (sa, sb) = (ia.section(), ib.section());
        for (fa, va) in transport(a) {
            for (fb, vb) in transport(b) {
                if va != vb || (fa.starts_with("cpe_") && fb.starts_with("cpe_")) {
                    continue;
                }
                // Blame a DC address (the CPE may legitimately reuse its own), b's if both are.
                let (field, other) = if fb.starts_with("dc_") {
                    (format!("{sb}.{fb}"), format!("{sa}.{fa}"))
                } else {
                    (format!("{sa}.{fa}"), format!("{sb}.{fb}"))
                };
                self.duplicate(field, vb, other);
            }
        }
        let (na, nb) = (a.tunnel_subnet(), b.tunnel_subnet());
        if na.contains(&nb) || nb.contains(&na) {
            self.fault(
                format!("{sb}.cpe_tunnel_ip"),
                FaultKind::TunnelSubnetOverlap(nb, na, format!("tunnel {ia}")),
            );
        }
    }

    /// R19 for every region, and no two regions' /24s overlap.
    fn regions(&mut self, c: &Config) {
        self.cisco("cisco", &c.cisco);
        for (i, extra) in c.extra_region.iter().enumerate() {
            let field = format!("extra_region[{i}].cisco");
            self.cisco(&field, &extra.cisco);
            let earlier = std::iter::once(("cisco".to_string(), c.cisco.prefix)).chain(
                c.extra_region[..i]
                    .iter()
                    .enumerate()
                    .map(|(j, e)| (format!("extra_region[{j}].cisco"), e.cisco.prefix)),
            );
            let px = extra.cisco.prefix;
            for (name, prefix) in earlier {
                if px.contains(&prefix) || prefix.contains(&px) {
                    self.fault(
                        format!("{field}.prefix"),
                        FaultKind::RegionPrefixOverlap(px, format!("{name}.prefix {prefix}")),
                    );
                }
            }
        }
    }

    /// R19: a /24 and its two /25 halves, one per DC.
    fn cisco(&mut self, section: &str, cisco: &CiscoPrefixes) {
        let px = cisco.prefix;
        let mut ok = true;
        if px.prefix_len() != 24 {
            self.fault(format!("{section}.prefix"), FaultKind::NotSlash24(px));
            ok = false;
        } else if px.addr() != px.network() {
            self.fault(
                format!("{section}.prefix"),
                FaultKind::HostBits {
                    net: px,
                    trunc: px.trunc(),
                },
            );
            ok = false;
        }
        for (f, half) in [
            (format!("{section}.dc1_prefix"), cisco.dc1_prefix),
            (format!("{section}.dc2_prefix"), cisco.dc2_prefix),
        ] {
            if half.prefix_len() != 25 {
                self.fault(f, FaultKind::NotSlash25(half));
                ok = false;
            } else if half.addr() != half.network() {
                self.fault(
                    f,
                    FaultKind::HostBits {
                        net: half,
                        trunc: half.trunc(),
                    },
                );
                ok = false;
            } else if !px.contains(&half) {
                self.fault(f, FaultKind::HalfOutside { half, prefix: px });
                ok = false;
            }
        }
        if ok && cisco.dc1_prefix == cisco.dc2_prefix {
            self.fault(
                format!("{section}.dc2_prefix"),
                FaultKind::HalvesSame(cisco.dc2_prefix),
            );
        }
    }

    fn bgp(&mut self, c: &Config) {
        // The capability's restart time has 12 bits (RFC 4724 §3).
        self.range(
            "bgp.graceful_restart_time_s".into(),
            u64::from(c.bgp.graceful_restart_time_s),
            0..=GRACEFUL_RESTART_TIME_MAX,
        );
    }

    fn agent(&mut self, c: &Config) {
        for (f, v) in [
            ("agent.pin_dir", &c.agent.pin_dir),
            ("agent.state_dir", &c.agent.state_dir),
        ] {
            if !v.starts_with('/') {
                self.fault(f, FaultKind::Missing("an absolute path"));
            }
        }
        if tracing_subscriber::EnvFilter::try_new(&c.agent.log_level).is_err() {
            self.fault(
                "agent.log_level",
                FaultKind::LogLevel(c.agent.log_level.clone()),
            );
        }
        let listen = &c.agent.metrics_listen;
        if !listen.is_empty() && listen.parse::<std::net::SocketAddr>().is_err() {
            self.fault(
                "agent.metrics_listen",
                FaultKind::NotSocketAddress(listen.clone()),
            );
        }
    }

    fn charon(&mut self, c: &Config) {
        if !c.ipsec() {
            return;
        }
        for (f, v) in [
            ("charon.run_dir", &c.charon.run_dir),
            ("charon.socket", &c.charon.socket),
            ("charon.binary", &c.charon.binary),
        ] {
            if !v.starts_with('/') {
                self.fault(f, FaultKind::Missing("an absolute path"));
            }
        }
        self.range(
            "charon.retransmit_timeout_s".into(),
            c.charon.retransmit_timeout_s.into(),
            1..=60,
        );
        self.range(
            "charon.retransmit_tries".into(),
            c.charon.retransmit_tries.into(),
            0..=20,
        );
    }
}

/// The four transport addresses of a tunnel, CPE side first.
fn transport(t: &Tunnel) -> [(&'static str, Ipv4Addr); 4] {
    [
        ("cpe_ipsec_address", t.cpe_ipsec_address),
        ("cpe_gre_address", t.cpe_gre_address),
        ("dc_ipsec_address", t.dc_ipsec_address),
        ("dc_gre_address", t.dc_gre_address),
    ]
}

/// A host address a tunnel endpoint can have.
fn unicast(a: Ipv4Addr) -> bool {
    !(a.is_unspecified() || a.is_broadcast() || a.is_multicast() || a.is_loopback())
}

/// Linux interface names: 1–15 bytes, no '/', ':' or whitespace.
fn interface_name_ok(name: &str) -> bool {
    (1..16).contains(&name.len())
        && name != "."
        && name != ".."
        && !name
            .bytes()
            .any(|b| b == b'/' || b == b':' || b.is_ascii_whitespace() || b == 0)
}
