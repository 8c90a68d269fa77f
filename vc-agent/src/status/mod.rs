//! The agent's state as the operator sees it (R25): per tunnel, the IKE and child SA, the
//! keepalives, the BGP session and the routes, the datapath's counters. Plain data, built by
//! the running agent and sent to `vc-agent status` as JSON; also the input of the
//! troubleshooting tree (`diagnose`) and of the metrics.
use std::{
    fmt,
    time::{Duration, SystemTime},
};

use serde::{Deserialize, Serialize};

use crate::{
    bgp::NeighborState,
    datapath::maps::VerdictCount,
    duration::{ago, format_duration, secs, since, until, within},
    ipsec::{TunnelSa, sa::LastError as SaError},
};

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentStatus {
    pub version: String,
    pub region: String,
    /// `ipsec` or `external-ipsec`.
    pub mode: String,
    pub uptime_s: u64,
    /// charon's state (IPsec mode): "running (pid N)", "down: ...".
    pub charon: Option<String>,
    pub tunnels: Vec<TunnelStatus>,
    pub datapath: DatapathStatus,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TunnelStatus {
    /// `a` or `b`.
    pub id: String,
    /// 1 or 2.
    pub dc: u8,
    pub interface: String,
    pub local_gre: String,
    pub remote_gre: String,
    pub remote_ipsec: String,
    pub local_tunnel_ip: String,
    pub dc_tunnel_ip: String,
    /// This DC's /25 and the shared /24: what BGP must bring (R19).
    pub expected_prefixes: Vec<String>,
    /// IPsec mode only.
    pub ipsec: Option<IpsecStatus>,
    pub keepalive: KeepaliveStatus,
    pub counters: TunnelCounters,
    pub bgp: Option<BgpStatus>,
    /// Prefixes this tunnel's session accepted (installed when the tunnel is alive).
    pub accepted_prefixes: Vec<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpsecStatus {
    pub ike: Option<IkeStatus>,
    pub child: Option<ChildStatus>,
    /// The last failure since the child SA was last up: its IKEv2 name and charon's line.
    pub last_error: Option<FailureStatus>,
    pub ike_ups: u32,
    pub child_ups: u32,
    pub ike_rekeys: u32,
    pub child_rekeys: u32,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IkeStatus {
    pub state: String,
    pub up: bool,
    pub proposal: String,
    pub nat: bool,
    pub local: String,
    pub remote: String,
    pub spi_i: String,
    pub spi_r: String,
    pub established_s: Option<u64>,
    pub rekey_in_s: Option<u64>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChildStatus {
    pub state: String,
    pub reqid: u32,
    pub mode: String,
    pub encap: bool,
    pub proposal: String,
    pub spi_in: String,
    pub spi_out: String,
    pub local_ts: Vec<String>,
    pub remote_ts: Vec<String>,
    pub installed_s: Option<u64>,
    pub rekey_in_s: Option<u64>,
    pub packets_in: u64,
    pub packets_out: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailureStatus {
    /// `NO_PROPOSAL_CHOSEN`, `AUTHENTICATION_FAILED`, `TS_UNACCEPTABLE`, `PEER_UNREACHABLE`...
    pub name: String,
    /// What that means here, in a sentence.
    pub meaning: String,
    /// charon's log line.
    pub line: String,
    pub age_s: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeepaliveStatus {
    /// We send keepalives (R13); without them liveness is not judged.
    pub enabled: bool,
    pub interval_s: u64,
    pub retries: u32,
    pub sent: u64,
    /// Replies to ours.
    pub replies: u64,
    /// The DC's own keepalives, reflected.
    pub reflected: u64,
    /// The tunnel counts as alive (keepalives heard, or not judged, and in IPsec mode the
    /// child SA up).
    pub alive: bool,
    /// Intervals in a row without a keepalive heard.
    pub missed: u32,
    /// Seconds since the last reply to one of ours.
    pub last_reply_s: Option<u64>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TunnelCounters {
    /// The datapath's UP flag for the tunnel.
    pub up: bool,
    pub mtu: u16,
    pub mss: u16,
    pub tx_packets: u64,
    pub tx_bytes: u64,
    pub fast_path_packets: u64,
    pub rx_packets: u64,
    /// Decapsulated packets sent straight to their egress device.
    pub rx_fast_path_packets: u64,
    pub rx_bytes: u64,
    pub mss_clamped: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BgpStatus {
    pub state: String,
    pub established: bool,
    pub peer: String,
    pub local_asn: u32,
    pub remote_asn: u32,
    pub uptime_s: Option<u64>,
    pub last_error: Option<String>,
    /// The NOTIFICATION of the last error, as `code/subcode name`.
    pub last_notification: Option<String>,
    pub received: u32,
    pub accepted: u32,
    pub rejected: u32,
    pub advertised: u32,
    pub flaps: u32,
    pub connect_attempts: u64,
    pub connect_timeouts: u32,
    pub diagnosis: Option<String>,
    pub likely_password_mismatch: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatapathStatus {
    pub attach_mode: String,
    pub fast_path: bool,
    /// Every non-zero verdict counter.
    pub verdicts: Vec<VerdictLine>,
    /// The LPM map: prefix → tunnels (`a`, `b`).
    pub routes: Vec<RouteLine>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerdictLine {
    pub hook: String,
    pub reason: String,
    pub drop: bool,
    pub packets: u64,
    pub bytes: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteLine {
    pub prefix: String,
    pub tunnels: Vec<String>,
}

fn secs_since(t: Option<SystemTime>) -> Option<u64> {
    since(SystemTime::now(), t)
}

impl IpsecStatus {
    /// A tunnel's SAs as seen at `now`.
    #[must_use]
    pub fn at(sa: &TunnelSa, now: SystemTime) -> Self {
        let secs_since = |t| since(now, t);
        let secs_until = |t| until(now, t);
        IpsecStatus {
            ike: sa.ike.as_ref().map(|ike| IkeStatus {
                state: ike.state.clone(),
                up: sa.ike_up(),
                proposal: ike.proposal.clone(),
                nat: ike.nat,
                local: ike.local.clone(),
                remote: ike.remote.clone(),
                spi_i: ike.spi_i.clone(),
                spi_r: ike.spi_r.clone(),
                established_s: secs_since(ike.established_at),
                rekey_in_s: secs_until(ike.rekey_at),
            }),
            child: sa.child.as_ref().map(|c| ChildStatus {
                state: c.state.clone(),
                reqid: c.reqid,
                mode: c.mode.clone(),
                encap: c.encap,
                proposal: c.proposal.clone(),
                spi_in: c.spi_in.clone(),
                spi_out: c.spi_out.clone(),
                local_ts: c.local_ts.clone(),
                remote_ts: c.remote_ts.clone(),
                installed_s: secs_since(c.installed_at),
                rekey_in_s: secs_until(c.rekey_at),
                packets_in: c.packets_in,
                packets_out: c.packets_out,
                bytes_in: c.bytes_in,
                bytes_out: c.bytes_out,
            }),
            last_error: sa.last_error.as_ref().map(|e| failure_status(e, now)),
            ike_ups: sa.ike_ups,
            child_ups: sa.child_ups,
            ike_rekeys: sa.ike_rekeys,
            child_rekeys: sa.child_rekeys,
        }
    }
}

impl From<&TunnelSa> for IpsecStatus {
    fn from(sa: &TunnelSa) -> Self {
        IpsecStatus::at(sa, SystemTime::now())
    }
}

fn failure_status(e: &SaError, now: SystemTime) -> FailureStatus {
    FailureStatus {
        name: e.failure.name().to_string(),
        meaning: e.failure.to_string(),
        line: e.line.clone(),
        age_s: since(now, Some(e.at)).unwrap_or(0),
    }
}

impl From<&NeighborState> for BgpStatus {
    fn from(n: &NeighborState) -> Self {
        let established = n.state == crate::bgp::State::Established;
        BgpStatus {
            state: format!("{:?}", n.state),
            established,
            peer: n.peer_addr.to_string(),
            local_asn: n.local_asn,
            remote_asn: n.remote_asn,
            uptime_s: established.then(|| secs_since(n.established_at)).flatten(),
            last_error: n.last_error.as_ref().map(|e| e.text.clone()),
            last_notification: n
                .last_error
                .as_ref()
                .and_then(|e| e.notification.as_ref())
                .map(|x| format!("{}/{} {}", x.code, x.subcode, x.name)),
            received: n.prefixes.received,
            accepted: n.prefixes.accepted,
            rejected: n.prefixes.rejected,
            advertised: n.prefixes.advertised,
            flaps: n.flaps,
            connect_attempts: n.connect_attempts,
            connect_timeouts: n.connect_timeouts,
            diagnosis: n.diagnosis.clone(),
            likely_password_mismatch: n.likely_password_mismatch,
        }
    }
}

impl From<&VerdictCount> for VerdictLine {
    fn from(v: &VerdictCount) -> Self {
        VerdictLine {
            hook: v.hook.name().to_string(),
            reason: v.reason.name().to_string(),
            drop: v.reason.is_drop(),
            packets: v.packets,
            bytes: v.bytes,
        }
    }
}

impl fmt::Display for AgentStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "vc {} · region {} · {} mode · up {}",
            self.version,
            self.region,
            self.mode,
            format_duration(Duration::from_secs(self.uptime_s))
        )?;
        if let Some(charon) = &self.charon {
            writeln!(f, "charon: {charon}")?;
        }
        for t in &self.tunnels {
            writeln!(f)?;
            write!(f, "{t}")?;
        }
        writeln!(f)?;
        write!(f, "{}", self.datapath)
    }
}

impl fmt::Display for TunnelStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let alive = if self.keepalive.alive { "up" } else { "DOWN" };
        writeln!(
            f,
            "tunnel {} → DC{} ({}) {alive}: GRE {} → {}, tunnel IP {} → {}",
            self.id.to_uppercase(),
            self.dc,
            self.interface,
            self.local_gre,
            self.remote_gre,
            self.local_tunnel_ip,
            self.dc_tunnel_ip
        )?;
        if let Some(ipsec) = &self.ipsec {
            write!(f, "{ipsec}")?;
        }
        write!(f, "{}", self.keepalive)?;
        if let Some(bgp) = &self.bgp {
            write!(f, "{bgp}")?;
        }
        writeln!(
            f,
            "  routes    accepted [{}] (expected {})",
            self.accepted_prefixes.join(", "),
            self.expected_prefixes.join(" + ")
        )?;
        let c = &self.counters;
        writeln!(
            f,
            "  datapath  {} mtu {} mss {}: tx {} pkts {} B (fast path {}), rx {} pkts {} B (fast path {}), MSS clamped {}",
            if c.up { "up" } else { "down" },
            c.mtu,
            c.mss,
            c.tx_packets,
            c.tx_bytes,
            c.fast_path_packets,
            c.rx_packets,
            c.rx_bytes,
            c.rx_fast_path_packets,
            c.mss_clamped
        )
    }
}

impl fmt::Display for IpsecStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.ike {
            Some(i) if i.up => writeln!(
                f,
                "  IKE SA    up  {} <-> {}{}  {}  established {}, rekey {}",
                i.local,
                i.remote,
                if i.nat { " (NAT)" } else { "" },
                i.proposal,
                ago(i.established_s),
                within(i.rekey_in_s)
            )?,
            Some(i) => writeln!(f, "  IKE SA    {}  to {}", i.state, i.remote)?,
            None => writeln!(f, "  IKE SA    DOWN")?,
        }
        match &self.child {
            Some(c) => writeln!(
                f,
                "  child SA  up  {} reqid {}{}  SPI in {} out {}  {}\n            {} === {}  {} B / {} pkts in, {} B / {} pkts out, rekey {}",
                c.mode,
                c.reqid,
                if c.encap { " UDP-encap" } else { "" },
                c.spi_in,
                c.spi_out,
                c.proposal,
                c.local_ts.join(","),
                c.remote_ts.join(","),
                c.bytes_in,
                c.packets_in,
                c.bytes_out,
                c.packets_out,
                within(c.rekey_in_s)
            )?,
            None => writeln!(f, "  child SA  DOWN")?,
        }
        if let Some(e) = &self.last_error {
            writeln!(
                f,
                "  last error {}: {}\n             charon: {}",
                ago(Some(e.age_s)),
                e.meaning,
                e.line
            )?;
        }
        writeln!(
            f,
            "  history   IKE up {} rekeyed {}, child up {} rekeyed {}",
            self.ike_ups, self.ike_rekeys, self.child_ups, self.child_rekeys
        )
    }
}

impl fmt::Display for KeepaliveStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.enabled {
            writeln!(
                f,
                "  keepalive every {}s × {}: sent {}, answered {}, DC's reflected {}, missed {}, last reply {} ago",
                self.interval_s,
                self.retries,
                self.sent,
                self.replies,
                self.reflected,
                self.missed,
                secs(self.last_reply_s)
            )
        } else {
            writeln!(f, "  keepalive off (DC's reflected {})", self.reflected)
        }
    }
}

impl fmt::Display for BgpStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "  BGP       {} with {} (AS {} ↔ AS {}), up {}, prefixes received {} accepted {} rejected {} advertised {}, flaps {}",
            self.state,
            self.peer,
            self.local_asn,
            self.remote_asn,
            secs(self.uptime_s),
            self.received,
            self.accepted,
            self.rejected,
            self.advertised,
            self.flaps
        )?;
        if let Some(e) = &self.last_error {
            writeln!(f, "  last BGP error: {e}")?;
        }
        if let Some(d) = &self.diagnosis {
            writeln!(f, "  BGP diagnosis: {d}")?;
        }
        Ok(())
    }
}

impl fmt::Display for DatapathStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "datapath: programs attached with {}, LAN fast path {}",
            self.attach_mode,
            if self.fast_path { "on" } else { "off" }
        )?;
        writeln!(f, "  LPM routes:")?;
        if self.routes.is_empty() {
            writeln!(f, "    none")?;
        }
        for r in &self.routes {
            writeln!(f, "    {:<18} → tunnel {}", r.prefix, r.tunnels.join(", "))?;
        }
        writeln!(f, "  packets by program and outcome:")?;
        for v in &self.verdicts {
            writeln!(
                f,
                "    {:<13} {:<4} {:<25} {:>10} pkts {:>12} B",
                v.hook,
                if v.drop { "drop" } else { "ok" },
                v.reason,
                v.packets,
                v.bytes
            )?;
        }
        Ok(())
    }
}
