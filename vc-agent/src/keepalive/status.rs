//! The keepalive piece of the agent's status (R13, R25): one tunnel's keepalives and the
//! liveness judged from them, as plain data with its text for people.
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::duration::secs;

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
