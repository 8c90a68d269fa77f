//! The BGP piece of the agent's status (R25): one session's state, counts and last error,
//! as plain data with its text for people.
use std::{fmt, net::Ipv4Addr, time::SystemTime};

use serde::{Deserialize, Serialize};

use super::{NeighborState, NotificationInfo, State};
use crate::duration::{secs, since};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BgpStatus {
    pub state: State,
    pub established: bool,
    pub peer: Ipv4Addr,
    pub local_asn: u32,
    pub remote_asn: u32,
    pub uptime_s: Option<u64>,
    /// Why the session last went down or failed to come up, in a line.
    pub last_error: Option<String>,
    /// The NOTIFICATION of the last error, if it was one.
    pub last_notification: Option<NotificationInfo>,
    pub received: u32,
    pub accepted: u32,
    pub rejected: u32,
    pub advertised: u32,
    pub flaps: u32,
    pub connect_attempts: u64,
    pub connect_timeouts: u32,
    /// The speaker's likely cause while the session does not come up.
    pub diagnosis: Option<String>,
    pub likely_password_mismatch: bool,
    /// Connections to our BGP port from others than the neighbour, closed at once.
    #[serde(default)]
    pub refused_connections: u64,
}

impl From<&NeighborState> for BgpStatus {
    fn from(n: &NeighborState) -> Self {
        let established = n.is_established();
        BgpStatus {
            state: n.state,
            established,
            peer: n.peer_addr,
            local_asn: n.local_asn,
            remote_asn: n.remote_asn,
            uptime_s: established
                .then(|| since(SystemTime::now(), n.established_at))
                .flatten(),
            last_error: n.last_error.as_ref().map(|e| e.text.clone()),
            last_notification: n.last_error.as_ref().and_then(|e| e.notification.clone()),
            received: n.prefixes.received,
            accepted: n.prefixes.accepted,
            rejected: n.prefixes.rejected,
            advertised: n.prefixes.advertised,
            flaps: n.flaps,
            connect_attempts: n.connect_attempts,
            connect_timeouts: n.connect_timeouts,
            diagnosis: n.diagnosis.clone(),
            likely_password_mismatch: n.likely_password_mismatch,
            refused_connections: n.refused_connections,
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
        if self.refused_connections > 0 {
            writeln!(
                f,
                "  BGP port  {} connections from others than the neighbour refused",
                self.refused_connections
            )?;
        }
        Ok(())
    }
}
