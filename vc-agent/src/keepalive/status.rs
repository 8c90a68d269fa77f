//! The keepalive piece of the agent's status (R13, R25): one tunnel's keepalives and the
//! liveness judged from them, as plain data with its text for people.
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::duration::secs;

/// A signal that decides whether a tunnel may carry traffic.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LivenessSignal {
    /// Replies to the keepalives we send.
    OurKeepalives,
    /// The DC's own keepalives, which the datapath reflects to it.
    DcKeepalives,
    /// The child SA (IPsec mode).
    ChildSa,
    /// The BGP session (when no keepalive decides).
    BgpSession,
}

impl LivenessSignal {
    #[must_use]
    pub fn text(self) -> &'static str {
        match self {
            LivenessSignal::OurKeepalives => "our keepalives answered",
            LivenessSignal::DcKeepalives => "the DC's keepalives reflected",
            LivenessSignal::ChildSa => "child SA",
            LivenessSignal::BgpSession => "BGP session",
        }
    }
}

/// The signals as a list for people: `our keepalives answered, child SA`.
#[must_use]
pub fn signals_text(by: &[LivenessSignal]) -> String {
    by.iter().map(|s| s.text()).collect::<Vec<_>>().join(", ")
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeepaliveStatus {
    /// We send keepalives (R13).
    pub enabled: bool,
    /// The keepalive interval liveness is judged by: ours, or (ours off) the DC's.
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
    /// What decides `alive` for this tunnel now.
    #[serde(default)]
    pub liveness: Vec<LivenessSignal>,
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
            )?;
        } else {
            writeln!(
                f,
                "  keepalive ours off; DC's reflected {} (judged every {}s × {}, missed {})",
                self.reflected, self.interval_s, self.retries, self.missed
            )?;
        }
        if self.liveness.is_empty() {
            Ok(())
        } else {
            writeln!(f, "  liveness  from {}", signals_text(&self.liveness))
        }
    }
}
