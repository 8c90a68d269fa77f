//! R24: Cisco's troubleshooting tree for Virtual Connect, automated. Per tunnel, in Cisco's
//! order: IKEv2 SA → IPsec child SA → GRE keepalives → tunnel-IP ping → BGP session →
//! routes. Each step gets a verdict; the first failing one is pointed at, with its likely
//! causes and the evidence each came from. The steps after it are not checked: Cisco's tree
//! only makes sense top down (a BGP session cannot come up over a tunnel that carries nothing).
//!
//! [`diagnose`] is pure: it reads an [`Observation`] (the agent's status, optionally the
//! status from just before the probe, and the ping probe's results) and says what it means.
//! Fetching the status and pinging are [`observe`]'s job, with [`probe`]'s pings.
mod evidence;
pub mod observe;
pub mod probe;
mod steps;
#[cfg(test)]
mod tests;
mod text;

use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

pub use self::observe::run;
use crate::status::{AgentStatus, Mode, TunnelEnds, TunnelId, TunnelStatus};

/// Cisco's six checks, in their order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    IkeSa,
    ChildSa,
    Keepalives,
    Ping,
    Bgp,
    Routes,
}

impl Step {
    pub const ALL: [Step; 6] = [
        Step::IkeSa,
        Step::ChildSa,
        Step::Keepalives,
        Step::Ping,
        Step::Bgp,
        Step::Routes,
    ];

    /// Cisco's numbering, 1 to 6.
    #[must_use]
    pub fn number(self) -> usize {
        self as usize + 1
    }

    /// The check, as the troubleshooting guide words it.
    #[must_use]
    pub const fn title(self) -> &'static str {
        match self {
            Step::IkeSa => "IKEv2 SA up and stable",
            Step::ChildSa => "IPsec child SA up, tunnel mode, GRE-only selectors",
            Step::Keepalives => "GRE keepalives flowing",
            Step::Ping => "ping tunnel IP to tunnel IP",
            Step::Bgp => "BGP session Established",
            Step::Routes => "routes: this DC's /25 + the /24 received, 0.0.0.0/0 sent",
        }
    }
}

/// What a step came to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Pass,
    /// Passes, with something an engineer should know (flaps, rejected prefixes).
    Warn,
    Fail,
    /// An earlier step failed: Cisco's tree stops there.
    NotChecked,
    /// Not this CPE's job (the IPsec steps in external-ipsec mode; keepalives off on both
    /// sides).
    NotApplicable,
    /// Could not be checked (the ping probe did not run).
    Skipped,
}

impl Verdict {
    /// Whether the walk goes on past this step.
    #[must_use]
    pub const fn passes(self) -> bool {
        !matches!(self, Verdict::Fail)
    }
}

/// A likely cause of a failing (or warning) step.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Cause {
    /// charon is not running: no IKE at all.
    CharonDown,
    /// charon runs but does not answer the agent: nothing rekeys or re-establishes.
    CharonUnresponsive,
    /// The DC accepts none of the IKE proposals.
    IkeProposalMismatch,
    /// The DC accepts none of the ESP proposals (or PFS group).
    EspProposalMismatch,
    /// Wrong pre-shared key or IKE identity.
    PskOrIdentity,
    /// No answer to IKE: UDP 500/4500 blocked, or the DC's IPsec address is wrong.
    PeerUnreachable,
    /// Still negotiating, or the agent only just started: ask again shortly.
    NotYetUp,
    /// The IKE SA keeps being re-established.
    IkeUnstable,
    /// The traffic selectors are not GRE between the two GRE transport IPs.
    WrongSelectors,
    /// The child SA is not in tunnel mode.
    WrongMode,
    /// The child SA's reqid is not vc's: its GRE is dropped as `wrong_sa`.
    WrongReqid,
    /// This host's kernel refused the SA or its policies.
    KernelRefused,
    /// Another IKE error notify from the DC.
    DcNotify,
    /// The DC carries traffic but neither sends nor answers GRE keepalives.
    KeepaliveDisabledOnDc,
    /// ESP leaves but none comes back: a firewall or the path drops ESP / UDP 4500.
    EspBlocked,
    /// Packets arrive but the datapath drops them (`no_secpath`, `wrong_sa`, ...).
    GreDropped,
    /// Nothing at all comes back from the DC's GRE transport IP.
    PathDown,
    /// The tunnel IPs or their mask differ from the DC's.
    WrongTunnelIp,
    /// The DC's BGP neighbour is not our tunnel IP (or ours is not the DC's).
    WrongNeighbourIp,
    /// NOTIFICATION 2/2 Bad Peer AS.
    WrongAsn,
    /// TCP-MD5 password mismatch.
    BgpPasswordMismatch,
    /// Another NOTIFICATION.
    BgpNotification,
    /// The session keeps leaving Established.
    BgpUnstable,
    /// The DC does not send an expected prefix.
    PrefixMissing,
    /// The DC sends prefixes vc does not accept.
    WrongPrefixesFromCisco,
    /// 0.0.0.0/0 is not advertised.
    DefaultNotAdvertised,
    /// The host's routes send the tunnel's outer packets out of another device than its
    /// WAN, or nowhere.
    WrongWan,
}

impl Cause {
    /// A few words, for the verdict line.
    #[must_use]
    pub const fn label(self) -> &'static str {
        match self {
            Cause::CharonDown => "charon not running",
            Cause::CharonUnresponsive => "charon not answering",
            Cause::IkeProposalMismatch => "IKE proposal mismatch",
            Cause::EspProposalMismatch => "ESP proposal mismatch",
            Cause::PskOrIdentity => "wrong PSK or IKE identity",
            Cause::PeerUnreachable => "UDP 500/4500 blocked or wrong DC IPsec address",
            Cause::NotYetUp => "not up yet",
            Cause::IkeUnstable => "IKE SA unstable",
            Cause::WrongSelectors => "wrong selectors or GRE transport IPs",
            Cause::WrongMode => "not tunnel mode",
            Cause::WrongReqid => "foreign reqid",
            Cause::KernelRefused => "kernel refused the SA",
            Cause::DcNotify => "refused by the DC",
            Cause::KeepaliveDisabledOnDc => "keepalives disabled on the DC",
            Cause::EspBlocked => "firewall dropping ESP from the DC",
            Cause::GreDropped => "firewall or policy dropping GRE from the DC",
            Cause::PathDown => "path to the DC down or GRE blocked",
            Cause::WrongTunnelIp => "wrong tunnel IP or mask",
            Cause::WrongNeighbourIp => "wrong BGP neighbour IP",
            Cause::WrongAsn => "wrong ASN",
            Cause::BgpPasswordMismatch => "BGP password mismatch",
            Cause::BgpNotification => "BGP NOTIFICATION",
            Cause::BgpUnstable => "BGP session unstable",
            Cause::PrefixMissing => "prefix not sent by the DC",
            Cause::WrongPrefixesFromCisco => "wrong prefixes from Cisco",
            Cause::DefaultNotAdvertised => "0.0.0.0/0 not advertised",
            Cause::WrongWan => "DC not routed out of the tunnel's WAN device",
        }
    }
}

/// A likely cause: what it is, what to check, and what in the status points at it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Likely {
    pub cause: Cause,
    /// What it means and what to check, in a sentence or two.
    pub text: String,
    /// The observations it came from.
    pub evidence: Vec<String>,
}

/// One step of one tunnel.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepReport {
    pub step: Step,
    pub number: usize,
    pub title: String,
    pub verdict: Verdict,
    /// What was seen, in one line (also for steps not checked: the state it was in).
    pub detail: String,
    /// Likely causes, most likely first (failing and warning steps only).
    pub causes: Vec<Likely>,
}

/// The tree for one tunnel.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TunnelDiagnosis {
    #[serde(flatten)]
    pub ends: TunnelEnds,
    pub steps: Vec<StepReport>,
    /// The first failing step, if any.
    pub first_failure: Option<Step>,
}

/// The whole answer of `vc-agent diagnose`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Diagnosis {
    pub region: String,
    pub mode: Mode,
    pub uptime_s: u64,
    /// What protects the WAN and is missing in the kernel (a program not attached, a
    /// backstop route gone): checked before Cisco's tree, which assumes a whole datapath.
    #[serde(default)]
    pub datapath_faults: Vec<String>,
    pub tunnels: Vec<TunnelDiagnosis>,
}

impl Diagnosis {
    /// No step of any tunnel fails.
    #[must_use]
    pub fn ok(&self) -> bool {
        self.datapath_faults.is_empty() && self.tunnels.iter().all(|t| t.first_failure.is_none())
    }

    #[must_use]
    pub fn tunnel(&self, id: TunnelId) -> Option<&TunnelDiagnosis> {
        self.tunnels.iter().find(|t| t.ends.id == id)
    }
}

impl TunnelDiagnosis {
    #[must_use]
    pub fn step(&self, step: Step) -> &StepReport {
        &self.steps[step as usize]
    }

    /// The causes listed at the first failing step.
    #[must_use]
    pub fn causes(&self) -> Vec<Cause> {
        self.first_failure
            .map(|s| self.step(s).causes.iter().map(|c| c.cause).collect())
            .unwrap_or_default()
    }
}

/// The result of pinging the DC's tunnel IP from ours (step 4).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ping {
    pub tunnel: TunnelId,
    pub from: Ipv4Addr,
    pub to: Ipv4Addr,
    /// Whether the probe could run at all (root, our address present).
    pub ran: bool,
    pub sent: u32,
    pub received: u32,
    pub rtt_min_us: Option<u64>,
    /// Why it could not run, or what the kernel said (no route...).
    pub error: Option<String>,
}

/// Everything the tree reads.
#[derive(Clone, Debug)]
pub struct Observation {
    /// The status after the probe.
    pub status: AgentStatus,
    /// The status just before the probe: counters that moved in between are live evidence
    /// ("ESP in +3, GRE decapsulated +0"), not history.
    pub before: Option<AgentStatus>,
    pub pings: Vec<Ping>,
}

impl Observation {
    fn ping(&self, tunnel: TunnelId) -> Option<&Ping> {
        self.pings.iter().find(|p| p.tunnel == tunnel && p.ran)
    }

    fn before(&self, tunnel: TunnelId) -> Option<&TunnelStatus> {
        self.before.as_ref().and_then(|b| b.tunnel(tunnel))
    }
}

/// Walks the tree for every tunnel.
#[must_use]
pub fn diagnose(o: &Observation) -> Diagnosis {
    Diagnosis {
        region: o.status.region.clone(),
        mode: o.status.mode,
        uptime_s: o.status.uptime_s,
        datapath_faults: o.status.datapath.kernel.faults(),
        tunnels: o.status.tunnels.iter().map(|t| walk(o, t)).collect(),
    }
}

fn walk(o: &Observation, t: &TunnelStatus) -> TunnelDiagnosis {
    let ctx = evidence::Context::new(o, t);
    let mut first_failure = None;
    let steps = Step::ALL
        .into_iter()
        .map(|step| {
            let judged = steps::judge(step, &ctx);
            let (verdict, causes) = match first_failure {
                Some(_) => (Verdict::NotChecked, Vec::new()),
                None => (judged.verdict, judged.causes),
            };
            if verdict == Verdict::Fail {
                first_failure = Some(step);
            }
            StepReport {
                step,
                number: step.number(),
                title: step.title().to_string(),
                verdict,
                detail: judged.detail,
                causes,
            }
        })
        .collect();
    TunnelDiagnosis {
        ends: t.ends.clone(),
        steps,
        first_failure,
    }
}
