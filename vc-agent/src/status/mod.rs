//! The agent's state as the operator sees it (R25): per tunnel, the IKE and child SA, the
//! keepalives, the BGP session and the routes, the datapath's counters. Plain, typed data,
//! built by the running agent (`agent`) and sent to `vc-agent status` as JSON over the
//! status socket; also what the troubleshooting tree (`diagnose`) and the metrics read.
//!
//! Each domain room owns its piece (`ipsec::status`, `bgp::status`, `keepalive::status`,
//! `datapath::status`); this room puts them together and re-exports them, so that readers of
//! the status need no other import.
#[cfg(test)]
mod tests;
mod tunnel;

use std::{fmt, time::Duration};

use serde::{Deserialize, Serialize};
pub use vc_common::{Counted, DropReason, Hook, Outcome};

pub use self::tunnel::{Headline, TunnelEnds, TunnelStatus, prefix_list};
use crate::duration::format_duration;
pub use crate::{
    bgp::{Direction, NotificationInfo, State as BgpState, status::BgpStatus},
    config::{Mode, Side, TunnelId},
    datapath::{
        AttachMode,
        reassembled::{ReassembledCounters, Refusal},
        reconcile::{AuditReport, HookState, Presence, direction_name},
        status::{DatapathStatus, RouteLine, TunnelCounters, VerdictLine},
    },
    ipsec::{
        ChildMode, ChildState, Failure, IkeState,
        status::{CharonStatus, ChildStatus, FailureStatus, IkeStatus, IpsecStatus},
    },
    keepalive::status::{KeepaliveStatus, LivenessSignal, signals_text},
    lan::{check::CheckOutcome, status::LanStatus},
};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentStatus {
    pub version: String,
    pub region: String,
    pub mode: Mode,
    pub uptime_s: u64,
    /// IPsec mode only.
    pub charon: Option<CharonStatus>,
    /// The LAN side and the conditional default route.
    #[serde(default)]
    pub lan: Option<LanStatus>,
    pub tunnels: Vec<TunnelStatus>,
    pub datapath: DatapathStatus,
}

impl AgentStatus {
    #[must_use]
    pub fn tunnel(&self, id: TunnelId) -> Option<&TunnelStatus> {
        self.tunnels.iter().find(|t| t.ends.id == id)
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
        if let Some(lan) = &self.lan {
            write!(f, "{lan}")?;
        }
        for t in &self.tunnels {
            writeln!(f)?;
            write!(f, "{t}")?;
        }
        writeln!(f)?;
        write!(f, "{}", self.datapath)
    }
}
