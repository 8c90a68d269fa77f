//! What an operator sees of one neighbour (R25): state, uptime, the last error with its
//! NOTIFICATION named, prefix counts, flaps, and the likely cause when it will not come up.
use std::{
    collections::BTreeMap,
    fmt,
    net::Ipv4Addr,
    time::{Duration, SystemTime},
};

use serde::{Deserialize, Serialize};

use super::{fsm::State, packet::Notification, rib::Reject};

/// Which way a NOTIFICATION went.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Direction {
    Sent,
    Received,
}

/// A NOTIFICATION, named, with its data.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotificationInfo {
    pub direction: Direction,
    pub code: u8,
    pub subcode: u8,
    /// "OPEN Message Error / Bad Peer AS".
    pub name: String,
    /// The data field (a Bad Peer AS carries the AS, a Cease 2 or 4 a shutdown message).
    pub data: Vec<u8>,
}

impl NotificationInfo {
    #[must_use]
    pub fn new(direction: Direction, n: &Notification) -> Self {
        NotificationInfo {
            direction,
            code: n.code,
            subcode: n.subcode,
            name: format!(
                "{} / {}",
                super::packet::code_name(n.code),
                super::packet::subcode_name(n.code, n.subcode)
            ),
            data: n.data.clone(),
        }
    }

    /// The NOTIFICATION itself.
    #[must_use]
    pub fn notification(&self) -> Notification {
        Notification::with_data(self.code, self.subcode, self.data.clone())
    }
}

impl fmt::Display for NotificationInfo {
    /// `2/2 OPEN Message Error / Bad Peer AS data fde8`, as [`Notification`] prints it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.notification())
    }
}

/// Why the session last went down or failed to come up.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LastError {
    pub at: SystemTime,
    /// One line: "sent NOTIFICATION 2/2 OPEN Message Error / Bad Peer AS data fde9".
    pub text: String,
    pub notification: Option<NotificationInfo>,
}

/// Prefix counts of the session.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct PrefixCounts {
    /// In the Adj-RIB-In now (accepted or not).
    pub received: u32,
    /// Used now (sent to the route manager).
    pub accepted: u32,
    /// Received now but not used.
    pub rejected: u32,
    /// Sent to the peer now (0.0.0.0/0 while Established).
    pub advertised: u32,
}

/// What the negotiation settled.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SessionInfo {
    pub hold_time: u16,
    pub keepalive: Duration,
    pub peer_id: Ipv4Addr,
    pub four_octet_as: bool,
    pub peer_route_refresh: bool,
    /// TCP connection up → Established.
    pub connect_to_established: Option<Duration>,
}

/// A snapshot of one neighbour, published on every change.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NeighborState {
    pub tunnel: u32,
    pub local_addr: Ipv4Addr,
    pub peer_addr: Ipv4Addr,
    pub local_asn: u32,
    pub remote_asn: u32,
    pub state: State,
    /// When the session last became Established (None: not Established).
    pub established_at: Option<SystemTime>,
    pub session: Option<SessionInfo>,
    pub last_error: Option<LastError>,
    pub prefixes: PrefixCounts,
    /// Announcements not used since start, by reason.
    pub rejected_total: BTreeMap<Reject, u64>,
    /// Attribute errors confined by RFC 7606 since start.
    pub attribute_faults: u64,
    /// Times the session left Established.
    pub flaps: u32,
    /// Outgoing connection attempts since start.
    pub connect_attempts: u64,
    pub connect_timeouts: u32,
    /// Likely cause while the session does not come up (MD5, reachability).
    pub diagnosis: Option<String>,
    /// The diagnosis blames the password.
    pub likely_password_mismatch: bool,
    pub messages_received: u64,
    pub messages_sent: u64,
    /// Connections to our BGP port from others than the neighbour, closed at once.
    pub refused_connections: u64,
}

impl NeighborState {
    #[must_use]
    pub fn new(cfg: &super::NeighborConfig) -> Self {
        NeighborState {
            tunnel: cfg.tunnel,
            local_addr: cfg.local_addr,
            peer_addr: cfg.peer_addr,
            local_asn: cfg.local_asn,
            remote_asn: cfg.remote_asn,
            state: State::Idle,
            established_at: None,
            session: None,
            last_error: None,
            prefixes: PrefixCounts::default(),
            rejected_total: BTreeMap::new(),
            attribute_faults: 0,
            flaps: 0,
            connect_attempts: 0,
            connect_timeouts: 0,
            diagnosis: None,
            likely_password_mismatch: false,
            messages_received: 0,
            messages_sent: 0,
            refused_connections: 0,
        }
    }

    #[must_use]
    pub fn uptime(&self) -> Option<Duration> {
        self.established_at
            .map(|at| SystemTime::now().duration_since(at).unwrap_or_default())
    }

    #[must_use]
    pub fn is_established(&self) -> bool {
        self.state == State::Established
    }
}

impl fmt::Display for NeighborState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "neighbour {} AS {} (tunnel {}, from {} AS {}): {}",
            self.peer_addr,
            self.remote_asn,
            self.tunnel,
            self.local_addr,
            self.local_asn,
            self.state
        )?;
        if let Some(up) = self.uptime() {
            write!(f, " for {}s", up.as_secs())?;
        }
        writeln!(f)?;
        if let Some(s) = &self.session {
            writeln!(
                f,
                "  hold {}s keepalive {}ms, peer id {}, 4-octet AS {}",
                s.hold_time,
                s.keepalive.as_millis(),
                s.peer_id,
                if s.four_octet_as { "yes" } else { "no" }
            )?;
        }
        let p = self.prefixes;
        writeln!(
            f,
            "  prefixes received {} accepted {} rejected {} advertised {}; flaps {}; \
             connects {} (timed out {})",
            p.received,
            p.accepted,
            p.rejected,
            p.advertised,
            self.flaps,
            self.connect_attempts,
            self.connect_timeouts
        )?;
        for (why, n) in &self.rejected_total {
            writeln!(f, "  rejected {n}: {}", why.describe())?;
        }
        if let Some(e) = &self.last_error {
            writeln!(f, "  last error: {}", e.text)?;
        }
        if let Some(d) = &self.diagnosis {
            writeln!(f, "  diagnosis: {d}")?;
        }
        Ok(())
    }
}
