//! What the agent knows about each tunnel's SAs, folded from charon's VICI events
//! (`ike-updown`, `child-updown`, `ike-rekey`, `child-rekey`, `log`) and `list-sas`
//! snapshots. Pure: [`SaTable::apply`] takes an event and the time it arrived.
//!
//! Who may say an SA is gone: charon's down events (`ike-updown`, `child-updown` without
//! `up`), and [`ABSENT_SNAPSHOTS`] snapshots in a row without it. One snapshot never does:
//! `list-sas` with `noblock` (which the controller needs, so that a wedged SA cannot stall it)
//! skips every IKE SA that is busy with an exchange at that moment (a rekey, DPD, a child
//! being created for the other tunnel), and during a rekey the tunnel's child is `REKEYING`
//! or `REKEYED` beside a new one still `INSTALLING`. Every state in which the kernel holds the
//! SA counts as an SA ([`ChildState::holds_sa`]).
use std::time::{Duration, SystemTime};

mod names;

pub use self::names::{ChildMode, ChildState, IkeState};
use crate::{
    config::{TUNNELS, TunnelId},
    ipsec::{
        conn,
        failure::{self, Failure},
        vici::Message,
    },
};

/// One IKE SA, as charon reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IkeSa {
    pub uniqueid: u32,
    pub state: IkeState,
    /// `address[port]` on each side (port 4500 once NAT-T or `IKE_AUTH` floated).
    pub local: String,
    pub remote: String,
    pub initiator: bool,
    /// A NAT between the peers (either side).
    pub nat: bool,
    pub spi_i: String,
    pub spi_r: String,
    /// The negotiated proposal, charon's names: `AES_GCM_16_256/PRF_HMAC_SHA2_384/ECP_384`.
    pub proposal: String,
    pub established_at: Option<SystemTime>,
    pub rekey_at: Option<SystemTime>,
}

/// One child (ESP) SA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildSa {
    pub uniqueid: u32,
    pub reqid: u32,
    pub state: ChildState,
    /// Tunnel (vc only ever asks for tunnel mode).
    pub mode: ChildMode,
    /// UDP-encapsulated ESP (NAT-T).
    pub encap: bool,
    pub spi_in: String,
    pub spi_out: String,
    /// `AES_GCM_16_256` or `AES_CBC_256/HMAC_SHA2_256_128`, plus `/ECP_384` with PFS.
    pub proposal: String,
    pub local_ts: Vec<String>,
    pub remote_ts: Vec<String>,
    pub installed_at: Option<SystemTime>,
    pub rekey_at: Option<SystemTime>,
    pub expires_at: Option<SystemTime>,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub packets_in: u64,
    pub packets_out: u64,
}

/// A failure with the charon line it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastError {
    pub failure: Failure,
    pub at: SystemTime,
    /// charon's own words (never contains a key: charon logs at level 1).
    pub line: String,
}

/// Everything known about one tunnel.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TunnelSa {
    /// The current IKE SA (the newest established one, else the newest attempt).
    pub ike: Option<IkeSa>,
    /// The current child SA: the newest installed one, else the newest the kernel still holds
    /// (one being rekeyed).
    pub child: Option<ChildSa>,
    /// The last failure since the child SA was last up.
    pub last_error: Option<LastError>,
    pub ike_ups: u32,
    pub child_ups: u32,
    pub ike_rekeys: u32,
    pub child_rekeys: u32,
}

impl TunnelSa {
    /// IKE SA established (R24 step 1).
    #[must_use]
    pub fn ike_up(&self) -> bool {
        self.ike.as_ref().is_some_and(|i| i.state.is_up())
    }

    /// Child SA in the kernel (R24 step 2), possibly being rekeyed.
    #[must_use]
    pub fn child_up(&self) -> bool {
        self.child.is_some()
    }
}

/// What an event changed, for logs and subscribers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    IkeUp(TunnelId),
    IkeDown(TunnelId),
    ChildUp(TunnelId),
    ChildDown(TunnelId),
    IkeRekeyed(TunnelId),
    ChildRekeyed(TunnelId),
    Failed(TunnelId, Failure),
}

/// How many `list-sas` snapshots in a row must lack a tunnel's IKE or child SA before the
/// table drops it. Three, because: a `noblock` listing misses an IKE SA while a charon thread
/// has it checked out (processing a message, computing a DH for a rekey: milliseconds, up to a
/// second on a loaded or emulated CPU; not while it waits for an answer, so retransmits do not
/// hide it), and the controller lists every [`crate::ipsec::control::TICK`] (5 s); one such
/// coincidence happens (seen: 1 run in 8), two in a row 5 s apart is already unlikely, three
/// (10 to 15 s) means the SA is gone, not busy. That is still well within the keepalive
/// judgement (`keepalive_retries` × `keepalive_interval_s`, 30 s by default) and the BGP hold
/// time. Snapshots are only the backstop for a down event that was missed (the event
/// connection dropped, say); events act at once.
pub const ABSENT_SNAPSHOTS: u8 = 3;

/// Snapshots in a row that lacked a tunnel's SAs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Absent {
    ike: u8,
    child: u8,
}

/// Every tunnel's SA state, by [`TunnelId::index`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SaTable {
    tunnels: [TunnelSa; TUNNELS],
    /// Where each tunnel's last IKE request went, to say which UDP port went unanswered.
    last_port: [Option<u16>; TUNNELS],
    absent: [Absent; TUNNELS],
}

impl SaTable {
    #[must_use]
    pub fn tunnel(&self, id: TunnelId) -> &TunnelSa {
        &self.tunnels[id.index()]
    }

    /// Folds one VICI event in. Events about connections that are not vc's are ignored.
    pub fn apply(&mut self, event: &str, msg: &Message, now: SystemTime) -> Vec<Change> {
        if event == "log" {
            return self.log(msg, now).into_iter().collect();
        }
        let up = msg.yes("up");
        let mut changes = Vec::new();
        for (name, ike) in msg.sections() {
            let Some(id) = conn::tunnel_of(name) else {
                continue;
            };
            let t = &mut self.tunnels[id.index()];
            match event {
                "ike-updown" if up => {
                    t.ike = Some(IkeSa::parse(ike, now));
                    t.ike_ups += 1;
                    changes.push(Change::IkeUp(id));
                }
                "ike-updown" => {
                    let uid = ike.num::<u32>("uniqueid");
                    if t.ike.as_ref().is_none_or(|i| Some(i.uniqueid) == uid) {
                        t.ike = None;
                        // Deleting the IKE SA deletes its children; charon may not report them.
                        if t.child.take().is_some() {
                            changes.push(Change::ChildDown(id));
                        }
                        changes.push(Change::IkeDown(id));
                    }
                }
                "child-updown" => {
                    let children = ike.sub("child-sas");
                    let child = children.and_then(|c| c.sections().next()).map(|(_, c)| c);
                    if up {
                        if let Some(c) = child {
                            t.ike = Some(IkeSa::parse(ike, now));
                            t.child = Some(ChildSa::parse(c, now));
                            t.child_ups += 1;
                            t.last_error = None;
                            changes.push(Change::ChildUp(id));
                        }
                    } else {
                        let uid = child.and_then(|c| c.num::<u32>("uniqueid"));
                        if t.child.as_ref().is_some_and(|c| Some(c.uniqueid) == uid) {
                            t.child = None;
                            changes.push(Change::ChildDown(id));
                        }
                    }
                }
                "ike-rekey" => {
                    if let Some(new) = ike.sub("new") {
                        t.ike = Some(IkeSa::parse(new, now));
                        t.ike_rekeys += 1;
                        changes.push(Change::IkeRekeyed(id));
                    }
                }
                "child-rekey" => {
                    let pair = ike
                        .sub("child-sas")
                        .and_then(|c| c.sections().next())
                        .map(|(_, c)| c);
                    if let Some(new) = pair.and_then(|p| p.sub("new")) {
                        t.ike = Some(IkeSa::parse(ike, now));
                        t.child = Some(ChildSa::parse(new, now));
                        t.child_rekeys += 1;
                        changes.push(Change::ChildRekeyed(id));
                    }
                }
                _ => {}
            }
        }
        changes
    }

    /// Folds a `list-sas` snapshot in (one message per `list-sa` event): the SAs it lists
    /// replace what the table had; a tunnel's SA it lacks is dropped only when
    /// [`ABSENT_SNAPSHOTS`] snapshots in a row lacked it (the downs this causes are returned).
    /// Counters and errors are kept.
    pub fn snapshot(&mut self, listed: &[Message], now: SystemTime) -> Vec<Change> {
        let mut ike: [Option<IkeSa>; TUNNELS] = std::array::from_fn(|_| None);
        let mut child: [Option<ChildSa>; TUNNELS] = std::array::from_fn(|_| None);
        for msg in listed {
            for (name, sa) in msg.sections() {
                let Some(id) = conn::tunnel_of(name) else {
                    continue;
                };
                let i = id.index();
                let candidate = IkeSa::parse(sa, now);
                if better_ike(&candidate, ike[i].as_ref()) {
                    ike[i] = Some(candidate);
                }
                for (_, c) in sa.sub("child-sas").into_iter().flat_map(Message::sections) {
                    let c = ChildSa::parse(c, now);
                    // Only the tunnel's own reqid: vc fixes it, and a child of another reqid
                    // under vc's name is not the one the datapath's policies point at.
                    let ours = c.reqid == conn::reqid(id) || c.reqid == 0;
                    if ours && c.state.holds_sa() && better_child(&c, child[i].as_ref()) {
                        child[i] = Some(c);
                    }
                }
            }
        }
        let mut changes = Vec::new();
        for id in TunnelId::ALL {
            let i = id.index();
            let t = &mut self.tunnels[i];
            let absent = &mut self.absent[i];
            match ike[i].take() {
                Some(new) => {
                    absent.ike = 0;
                    t.ike = Some(new);
                }
                None => absent.ike = absent.ike.saturating_add(1),
            }
            match child[i].take() {
                Some(new) => {
                    absent.child = 0;
                    t.child = Some(new);
                }
                None => absent.child = absent.child.saturating_add(1),
            }
            if absent.child >= ABSENT_SNAPSHOTS && t.child.take().is_some() {
                changes.push(Change::ChildDown(id));
            }
            if absent.ike >= ABSENT_SNAPSHOTS && t.ike.take().is_some() {
                changes.push(Change::IkeDown(id));
            }
        }
        changes
    }

    /// Forgets every SA at once: charon is gone, and its SAs went with it (charon deletes
    /// them as it stops; a charon that crashed left nothing that rekeys them).
    pub fn clear(&mut self) {
        for t in &mut self.tunnels {
            t.ike = None;
            t.child = None;
        }
        self.absent = [Absent::default(); TUNNELS];
    }

    fn log(&mut self, msg: &Message, now: SystemTime) -> Option<Change> {
        let id = conn::tunnel_of(msg.str("ikesa-name")?)?;
        let line = msg.str("msg")?;
        if let Some(port) = failure::sent_to_port(line) {
            self.last_port[id.index()] = Some(port);
            return None;
        }
        let t = &mut self.tunnels[id.index()];
        let mut failure = failure::classify(line, t.ike_up())?;
        if let Failure::PeerUnreachable { port } = &mut failure {
            *port = self.last_port[id.index()];
        }
        // One failure often logs twice ("giving up after 5 retransmits", then "peer not
        // responding"): report it once.
        if t.last_error.as_ref().is_some_and(|e| e.failure == failure) {
            return None;
        }
        t.last_error = Some(LastError {
            failure: failure.clone(),
            at: now,
            line: line.to_string(),
        });
        Some(Change::Failed(id, failure))
    }
}

/// Prefer an established IKE SA, then the newest.
fn better_ike(new: &IkeSa, old: Option<&IkeSa>) -> bool {
    let Some(old) = old else { return true };
    let rank = |i: &IkeSa| (i.state == IkeState::Established, i.uniqueid);
    rank(new) > rank(old)
}

/// Prefer an installed child SA (the one traffic uses after a rekey), then the newest.
fn better_child(new: &ChildSa, old: Option<&ChildSa>) -> bool {
    let Some(old) = old else { return true };
    let rank = |c: &ChildSa| (c.state == ChildState::Installed, c.uniqueid);
    rank(new) > rank(old)
}

fn ago(now: SystemTime, m: &Message, key: &str) -> Option<SystemTime> {
    now.checked_sub(Duration::from_secs(m.num(key)?))
}

fn ahead(now: SystemTime, m: &Message, key: &str) -> Option<SystemTime> {
    now.checked_add(Duration::from_secs(m.num(key)?))
}

/// `ALG_KEYSIZE/INTEG/PRF/DH` from charon's split fields.
fn proposal(m: &Message) -> String {
    let mut parts = Vec::new();
    if let Some(encr) = m.str("encr-alg") {
        parts.push(match m.str("encr-keysize") {
            Some(k) => format!("{encr}_{k}"),
            None => encr.to_string(),
        });
    }
    for key in ["integ-alg", "prf-alg", "dh-group"] {
        if let Some(v) = m.str(key) {
            parts.push(v.to_string());
        }
    }
    parts.join("/")
}

impl IkeSa {
    fn parse(m: &Message, now: SystemTime) -> IkeSa {
        let s = |k: &str| m.str(k).unwrap_or_default().to_string();
        IkeSa {
            uniqueid: m.num("uniqueid").unwrap_or_default(),
            state: IkeState::from(m.str("state").unwrap_or_default()),
            local: format!("{}[{}]", s("local-host"), s("local-port")),
            remote: format!("{}[{}]", s("remote-host"), s("remote-port")),
            initiator: m.yes("initiator"),
            nat: m.yes("nat-any"),
            spi_i: s("initiator-spi"),
            spi_r: s("responder-spi"),
            proposal: proposal(m),
            established_at: ago(now, m, "established"),
            rekey_at: ahead(now, m, "rekey-time"),
        }
    }
}

impl ChildSa {
    fn parse(m: &Message, now: SystemTime) -> ChildSa {
        let s = |k: &str| m.str(k).unwrap_or_default().to_string();
        let n = |k: &str| m.num::<u64>(k).unwrap_or_default();
        ChildSa {
            uniqueid: m.num("uniqueid").unwrap_or_default(),
            reqid: m.num("reqid").unwrap_or_default(),
            state: ChildState::from(m.str("state").unwrap_or_default()),
            mode: ChildMode::from(m.str("mode").unwrap_or_default()),
            encap: m.yes("encap"),
            spi_in: s("spi-in"),
            spi_out: s("spi-out"),
            proposal: proposal(m),
            local_ts: m.strs("local-ts").into_iter().map(String::from).collect(),
            remote_ts: m.strs("remote-ts").into_iter().map(String::from).collect(),
            installed_at: ago(now, m, "install-time"),
            rekey_at: ahead(now, m, "rekey-time"),
            expires_at: ahead(now, m, "life-time"),
            bytes_in: n("bytes-in"),
            bytes_out: n("bytes-out"),
            packets_in: n("packets-in"),
            packets_out: n("packets-out"),
        }
    }
}

#[cfg(test)]
mod tests;
