//! Every log line of the speaker, in one place, each at its level. The session task adds the
//! neighbour (tunnel, peer) as span fields. Passwords never reach here: [`super::Secret`]
//! prints `<redacted>`.
use std::{collections::BTreeSet, fmt::Write as _, io, net::SocketAddr, time::Duration};

use ipnet::Ipv4Net;
use tracing::{debug, info, trace, warn};

use super::{
    fsm::{Conn, State},
    packet::{AttrFault, DecodeError, Message, Notification},
    rib::Reject,
};

pub(crate) enum Debug<'a> {
    Transition {
        from: State,
        to: State,
    },
    Rx(Conn, &'a Message),
    Tx(Conn, &'a Message),
    Malformed {
        error: &'a DecodeError,
        answer: Option<&'a Notification>,
    },
    AttrFault(&'a AttrFault),
    Rejected(Ipv4Net, Reject),
    Accepted(&'a BTreeSet<Ipv4Net>),
    Established {
        hold_time: u16,
        connect_to_established: Option<Duration>,
    },
    Down,
    Failed(&'a str),
    Stopped,
    ConnectFailed(&'a io::Error),
    ConnectTimedOut(u32),
    Diagnosis(&'a str),
    StrayConnection {
        from: SocketAddr,
        /// Refused since the last line, without one.
        suppressed: u64,
    },
    AcceptFailed(&'a io::Error),
    Relistened {
        old: Option<u32>,
        new: u32,
    },
    RelistenFailed(&'a io::Error),
    MaxPrefix {
        limit: u32,
        received: usize,
    },
    Md5CountersUnreadable(&'a io::Error),
    /// Closing for a restart of the agent: no NOTIFICATION, routes kept.
    Detached,
}

impl Debug<'_> {
    pub(crate) fn log(&self) {
        match self {
            Debug::Transition { from, to } => info!("state {from} -> {to}"),
            Debug::Rx(conn, Message::Keepalive) => trace!(?conn, "received KEEPALIVE"),
            Debug::Tx(conn, Message::Keepalive) => trace!(?conn, "sent KEEPALIVE"),
            Debug::Rx(conn, m) => info!(?conn, "received {}", summary(m)),
            Debug::Tx(conn, m) => info!(?conn, "sent {}", summary(m)),
            Debug::Malformed { error, answer } => {
                if let Some(n) = answer {
                    warn!("malformed message from the peer: {error}; sending NOTIFICATION {n}");
                } else {
                    warn!("malformed message from the peer: {error}; closing");
                }
            }
            Debug::AttrFault(fault) => warn!("malformed attribute from the peer: {fault}"),
            Debug::Rejected(prefix, why) => info!("ignored {prefix}: {}", why.describe()),
            Debug::Accepted(set) => info!("accepted prefixes now {}", list(set.iter())),
            Debug::Established {
                hold_time,
                connect_to_established,
            } => info!(hold_time, ?connect_to_established, "session Established"),
            Debug::Down => warn!("session down: withdrawing every route learned from it"),
            Debug::Failed(text) => warn!("{text}"),
            Debug::Stopped => info!("stopped by the operator"),
            Debug::ConnectFailed(e) => debug!("connect failed: {e}"),
            Debug::ConnectTimedOut(n) => info!("connect attempt {n} timed out"),
            Debug::Diagnosis(text) => warn!("not established: {text}"),
            Debug::StrayConnection { from, suppressed } => {
                warn!(
                    suppressed,
                    "refused a connection from {from}: not this neighbour (a line per {}s at \
                     most; the status counts them all)",
                    crate::limit::LOG_EVERY.as_secs()
                );
            }
            Debug::AcceptFailed(e) => warn!("accept failed: {e}"),
            Debug::Relistened { old, new } => info!(
                ?old,
                new, "the tunnel interface was created anew: listening on it again"
            ),
            Debug::RelistenFailed(e) => {
                warn!("cannot listen on the tunnel interface created anew: {e}");
            }
            Debug::MaxPrefix { limit, received } => warn!(
                "{received} prefixes received, over the limit of {limit}: sending Cease 6/1 \
                 (Maximum Number of Prefixes Reached)"
            ),
            Debug::Md5CountersUnreadable(e) => debug!("cannot read TCP-MD5 counters: {e}"),
            Debug::Detached => info!(
                "closing for the agent's restart: no NOTIFICATION, routes kept (graceful \
                 restart)"
            ),
        }
    }
}

/// One-line description of a message, for logs.
pub(crate) fn summary(m: &Message) -> String {
    match m {
        Message::Open(o) => {
            let mut caps = String::new();
            for c in &o.capabilities {
                let _ = write!(caps, " {c:?}");
            }
            format!(
                "OPEN AS {} hold {} id {} capabilities:{caps}",
                o.asn(),
                o.hold_time,
                o.identifier
            )
        }
        Message::Update(u) if u.is_end_of_rib() => "UPDATE End-of-RIB".into(),
        Message::Update(u) => {
            let mut s = "UPDATE".to_string();
            let announced = u.announced();
            let withdrawn = u.withdrawn_all();
            if !announced.is_empty() {
                let _ = write!(s, " announce {}", list(announced.iter()));
            }
            if !withdrawn.is_empty() {
                let _ = write!(s, " withdraw {}", list(withdrawn.iter()));
            }
            if let Some(a) = &u.attrs {
                if let Some(path) = &a.as_path {
                    let asns: Vec<String> = path
                        .segments
                        .iter()
                        .flat_map(|seg| seg.asns.iter().map(u32::to_string))
                        .collect();
                    let _ = write!(s, " path [{}]", asns.join(" "));
                }
                if let Some(nh) = a.next_hop {
                    let _ = write!(s, " next hop {nh}");
                }
            }
            s
        }
        Message::Notification(n) => format!("NOTIFICATION {n}"),
        Message::Keepalive => "KEEPALIVE".into(),
        Message::RouteRefresh(r) => format!("ROUTE-REFRESH afi {} safi {}", r.afi, r.safi),
    }
}

fn list<'a>(prefixes: impl Iterator<Item = &'a Ipv4Net>) -> String {
    let v: Vec<String> = prefixes.map(ToString::to_string).collect();
    format!("[{}]", v.join(" "))
}
