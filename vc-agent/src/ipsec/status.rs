//! The IPsec piece of the agent's status (R25): charon, and per tunnel the IKE and child SA,
//! the last failure and the SA history, as plain data with their text for people.
use std::{
    fmt,
    time::{Duration, SystemTime},
};

use serde::{Deserialize, Serialize};

use super::{
    CharonState, ChildMode, ChildState, Failure, IkeState, TunnelSa, sa::LastError as SaError,
};
use crate::duration::{ago, format_duration, since, until, within};

/// charon as the agent sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum CharonStatus {
    Starting,
    /// `external-ipsec` mode: no charon.
    NotUsed,
    Running {
        version: String,
        /// vc's own charon; `None`: the system's, attached to.
        pid: Option<u32>,
    },
    Down {
        reason: String,
    },
    /// It runs but does not answer vc's VICI calls in time (stopped, or stuck): its SAs stay
    /// in the kernel, but nothing rekeys them or brings a tunnel back.
    Unresponsive {
        /// Seconds since it stopped answering.
        for_s: u64,
        /// What got no answer.
        reason: String,
    },
}

impl CharonStatus {
    #[must_use]
    pub fn is_running(&self) -> bool {
        matches!(self, CharonStatus::Running { .. })
    }
}

impl CharonStatus {
    /// charon as seen at `now`.
    #[must_use]
    pub fn at(state: &CharonState, now: SystemTime) -> Self {
        match state {
            CharonState::Starting => CharonStatus::Starting,
            CharonState::NotUsed => CharonStatus::NotUsed,
            CharonState::Up { pid, version, .. } => CharonStatus::Running {
                version: version.clone(),
                pid: *pid,
            },
            CharonState::Down { reason, .. } => CharonStatus::Down {
                reason: reason.clone(),
            },
            CharonState::Unresponsive { since: at, reason } => CharonStatus::Unresponsive {
                for_s: since(now, Some(*at)).unwrap_or(0),
                reason: reason.clone(),
            },
        }
    }
}

impl From<&CharonState> for CharonStatus {
    fn from(state: &CharonState) -> Self {
        CharonStatus::at(state, SystemTime::now())
    }
}

impl fmt::Display for CharonStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CharonStatus::Starting => f.write_str("starting"),
            CharonStatus::NotUsed => f.write_str("not used (external-ipsec mode)"),
            CharonStatus::Running {
                version,
                pid: Some(pid),
            } => write!(f, "running, {version}, pid {pid}"),
            CharonStatus::Running { version, pid: None } => {
                write!(f, "running (attached), {version}")
            }
            CharonStatus::Down { reason } => write!(f, "DOWN: {reason}"),
            CharonStatus::Unresponsive { for_s, reason } => write!(
                f,
                "NOT ANSWERING for {}: {reason}",
                format_duration(Duration::from_secs(*for_s))
            ),
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpsecStatus {
    pub ike: Option<IkeStatus>,
    pub child: Option<ChildStatus>,
    /// The last failure since the child SA was last up.
    pub last_error: Option<FailureStatus>,
    pub ike_ups: u32,
    pub child_ups: u32,
    pub ike_rekeys: u32,
    pub child_rekeys: u32,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IkeStatus {
    pub state: IkeState,
    /// Established (possibly rekeying).
    pub up: bool,
    pub proposal: String,
    pub nat: bool,
    /// `address[port]`.
    pub local: String,
    pub remote: String,
    pub spi_i: String,
    pub spi_r: String,
    pub established_s: Option<u64>,
    pub rekey_in_s: Option<u64>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChildStatus {
    pub state: ChildState,
    pub reqid: u32,
    pub mode: ChildMode,
    pub encap: bool,
    pub proposal: String,
    pub spi_in: String,
    pub spi_out: String,
    /// charon's traffic selectors: `198.51.100.1/32[gre]`.
    pub local_ts: Vec<String>,
    pub remote_ts: Vec<String>,
    pub installed_s: Option<u64>,
    pub rekey_in_s: Option<u64>,
    pub packets_in: u64,
    pub packets_out: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
}

/// The last failure: in JSON its IKEv2 `name` (with the failure's details), what it means
/// and charon's line.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailureStatus {
    #[serde(flatten)]
    pub failure: Failure,
    /// What the failure means here, in a sentence (its Display).
    pub meaning: String,
    /// charon's log line.
    pub line: String,
    pub age_s: u64,
}

impl FailureStatus {
    #[must_use]
    pub fn new(failure: Failure, line: impl Into<String>, age_s: u64) -> Self {
        FailureStatus {
            meaning: failure.to_string(),
            failure,
            line: line.into(),
            age_s,
        }
    }

    fn at(e: &SaError, now: SystemTime) -> Self {
        FailureStatus::new(
            e.failure.clone(),
            e.line.clone(),
            since(now, Some(e.at)).unwrap_or(0),
        )
    }
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
            last_error: sa.last_error.as_ref().map(|e| FailureStatus::at(e, now)),
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

#[cfg(test)]
mod tests {
    use super::{CharonStatus, FailureStatus};
    use crate::ipsec::Failure;

    #[test]
    fn charon_and_failures_read_as_before_and_round_trip() {
        let running = CharonStatus::Running {
            version: "5.9.8".into(),
            pid: Some(42),
        };
        assert_eq!(running.to_string(), "running, 5.9.8, pid 42");
        let json = serde_json::to_string(&running).expect("json");
        assert_eq!(json, r#"{"state":"running","version":"5.9.8","pid":42}"#);
        assert_eq!(
            serde_json::from_str::<CharonStatus>(&json).expect("parse"),
            running
        );
        let since = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_000);
        let wedged = CharonStatus::at(
            &crate::ipsec::CharonState::Unresponsive {
                since,
                reason: "list-sas: charon did not answer within 10s".into(),
            },
            since + std::time::Duration::from_secs(75),
        );
        assert!(!wedged.is_running());
        assert_eq!(
            wedged.to_string(),
            "NOT ANSWERING for 1m15s: list-sas: charon did not answer within 10s"
        );
        let json = serde_json::to_string(&wedged).expect("json");
        assert_eq!(
            json,
            r#"{"state":"unresponsive","for_s":75,"reason":"list-sas: charon did not answer within 10s"}"#
        );
        assert_eq!(
            serde_json::from_str::<CharonStatus>(&json).expect("parse"),
            wedged
        );
        let e = FailureStatus::new(Failure::TsUnacceptable, "traffic selectors unacceptable", 4);
        let json = serde_json::to_string(&e).expect("json");
        assert!(json.starts_with(r#"{"name":"TS_UNACCEPTABLE","meaning":"TS_UNACCEPTABLE: "#));
        assert_eq!(
            serde_json::from_str::<FailureStatus>(&json).expect("parse"),
            e
        );
    }
}
