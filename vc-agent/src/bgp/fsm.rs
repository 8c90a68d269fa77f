//! The RFC 4271 §8 session state machine, pure: `handle(event) → actions`. No sockets, no
//! clock: timers are actions ([`Action::StartTimer`]) whose expiry comes back as events, so
//! tests drive it with synthetic time.
//!
//! One neighbour may briefly have two TCP connections, one opened by each side. They are told
//! apart by [`Conn`] (who opened it). The state describes the *primary* connection; a second
//! connection that arrives in OpenSent/OpenConfirm waits as *pending* until an OPEN reveals the
//! peer's BGP Identifier, then collision resolution (RFC 4271 §6.8, RFC 6286 §2.3) keeps the
//! connection opened by the side with the higher identifier and closes the other with Cease 6/7.
//!
//! Deviations from the letter of §8, all common practice:
//! - a failed outgoing connect in Connect goes to Active (retry at the next `ConnectRetry`)
//!   rather than Idle;
//! - errors send the FSM to Idle with an idle-hold timer that doubles with each consecutive
//!   error (RFC 4271 §8.1.1 `DampPeerOscillations`) and resets once a session has stayed
//!   Established for [`FsmConfig::idle_hold_max`];
//! - the hold timer is also restarted by ROUTE-REFRESH (any valid message proves the peer is
//!   alive).
use std::{net::Ipv4Addr, time::Duration};

use super::packet::{
    AFI_IPV4, AS_TRANS, Capability, Cxt, GrFamily, Message, Notification, Open, RouteRefresh,
    SAFI_UNICAST, Update,
    notification::{cease, code, fsm as fsm_err, open as open_err},
};

/// The hold time of a connection whose peer has not sent its OPEN yet (RFC 4271 §8.2.2
/// suggests 4 minutes).
pub const LARGE_HOLD: Duration = Duration::from_mins(4);

/// RFC 4271 §8.2.2 session states.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
pub enum State {
    #[default]
    Idle,
    Connect,
    Active,
    OpenSent,
    OpenConfirm,
    Established,
}

impl State {
    pub const ALL: [State; 6] = [
        State::Idle,
        State::Connect,
        State::Active,
        State::OpenSent,
        State::OpenConfirm,
        State::Established,
    ];

    /// RFC 4271's name, as in JSON and the metrics: `OpenSent`.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            State::Idle => "Idle",
            State::Connect => "Connect",
            State::Active => "Active",
            State::OpenSent => "OpenSent",
            State::OpenConfirm => "OpenConfirm",
            State::Established => "Established",
        }
    }
}

impl std::fmt::Display for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A TCP connection of the neighbour, named by who opened it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
pub enum Conn {
    /// We connected to the peer (active open).
    Outgoing,
    /// The peer connected to us (passive open).
    Incoming,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Timer {
    ConnectRetry,
    /// Idle → Start after an error (back-off).
    IdleHold,
    Hold(Conn),
    Keepalive(Conn),
    /// A session that stays Established this long resets the back-off.
    Stable,
}

/// What the FSM needs of the neighbour's configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FsmConfig {
    pub local_asn: u32,
    pub remote_asn: u32,
    pub router_id: Ipv4Addr,
    /// Hold time we propose (seconds; 0 or ≥ 3).
    pub hold_time: u16,
    pub connect_retry: Duration,
    pub idle_hold: Duration,
    pub idle_hold_max: Duration,
    /// Only wait for the peer to connect.
    pub passive: bool,
    pub graceful_restart: GracefulRestart,
}

/// vc as the restarting speaker of RFC 4724: what its OPENs announce.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GracefulRestart {
    /// Seconds the peer should keep our routes after our session went away without a
    /// NOTIFICATION (12 bits). 0: vc only does the receiving speaker's part, and announces no
    /// family.
    pub restart_time: u16,
    /// This run of the agent is a restart: the R bit, in every OPEN until a session has been
    /// Established (RFC 4724 §4.1: the peer then knows our earlier session is gone).
    pub restarted: bool,
}

/// What both OPENs agreed on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Negotiated {
    /// Seconds; 0 = no keepalives, no hold timer.
    pub hold_time: u16,
    pub keepalive: Duration,
    pub cxt: Cxt,
    pub peer_id: Ipv4Addr,
    pub peer_asn: u32,
    pub peer_route_refresh: bool,
    pub peer_open: Open,
}

/// Why a session (or an attempt) ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Failure {
    Sent(Notification),
    Received(Notification),
    /// The TCP connection closed or failed (the I/O layer knows the details).
    ConnectionLost(Conn),
    /// Stopped by the operator.
    Stopped,
}

#[derive(Clone, Debug, PartialEq, Eq)]
#[expect(
    clippy::large_enum_variant,
    reason = "events carry the messages they stand for, a few a second"
)]
pub enum Event {
    /// `ManualStart` / `AutomaticStart` (RFC events 1, 3).
    Start,
    /// `ManualStop` (event 2).
    Stop,
    ConnectRetryExpired,
    IdleHoldExpired,
    HoldExpired(Conn),
    KeepaliveExpired(Conn),
    StableExpired,
    /// An outgoing connect completed (event 16); the socket waits for [`Action::Adopt`].
    TcpConnected,
    /// The peer connected to us (event 17); the socket waits for [`Action::Adopt`].
    TcpAccepted,
    /// A connection, or the outgoing connect attempt, failed or closed (event 18).
    TcpFailed(Conn),
    Open(Conn, Open),
    /// A message failed to decode: answer with this NOTIFICATION (None: close silently).
    MessageError(Conn, Option<Notification>),
    Notification(Conn, Notification),
    Keepalive(Conn),
    Update(Conn, Update),
    RouteRefresh(Conn, RouteRefresh),
    /// The Adj-RIB-In grew past the configured limit (RFC 4486 Cease 6/1).
    MaxPrefixExceeded {
        limit: u32,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Start an outgoing TCP connection.
    Connect,
    /// Give up the outgoing connect attempt in progress.
    AbortConnect,
    /// Keep the socket of the last TcpConnected/TcpAccepted as this connection.
    Adopt(Conn),
    /// Close the socket of the last TcpConnected/TcpAccepted, after sending this.
    Refuse(Option<Notification>),
    Send(Conn, Message),
    /// Close the connection once what was sent has gone.
    Close(Conn),
    StartTimer(Timer, Duration),
    StopTimer(Timer),
    /// The outgoing connect got no answer within `ConnectRetry` (diagnosis: MD5, firewall).
    ConnectTimedOut,
    /// Entered Established.
    Established(Negotiated),
    /// Left Established: everything learned is gone.
    Down,
    /// A session or attempt ended for this reason.
    Failed(Failure),
    /// An UPDATE received in Established, for the RIB.
    Routes(Update),
    /// The peer asked for our routes again.
    Refresh,
}

/// The state machine of one neighbour.
#[derive(Clone, Debug)]
pub struct Fsm {
    cfg: FsmConfig,
    state: State,
    /// The connection `state` describes (OpenSent, OpenConfirm, Established).
    primary: Option<Conn>,
    /// A second connection in OpenSent, waiting for its OPEN (collision candidate).
    pending: Option<Conn>,
    negotiated: Option<Negotiated>,
    /// Restart automatically after errors (false after Stop).
    started: bool,
    /// Consecutive failures, for the idle-hold back-off.
    failures: u32,
    /// The R bit of our OPEN: set from the config, cleared once a session is Established.
    restarting: bool,
}

impl Fsm {
    #[must_use]
    pub fn new(cfg: FsmConfig) -> Self {
        Fsm {
            state: State::Idle,
            primary: None,
            pending: None,
            negotiated: None,
            started: false,
            failures: 0,
            restarting: cfg.graceful_restart.restarted,
            cfg,
        }
    }

    #[must_use]
    pub const fn state(&self) -> State {
        self.state
    }

    #[must_use]
    pub const fn primary(&self) -> Option<Conn> {
        self.primary
    }

    #[must_use]
    pub const fn pending(&self) -> Option<Conn> {
        self.pending
    }

    #[must_use]
    pub const fn negotiated(&self) -> Option<&Negotiated> {
        self.negotiated.as_ref()
    }

    /// The one transition function.
    #[expect(
        clippy::too_many_lines,
        reason = "the FSM's one transition match: split up, the table would be harder to read"
    )]
    pub fn handle(&mut self, event: Event) -> Vec<Action> {
        use Event as E;
        use State as S;
        let mut out = Vec::new();
        match (self.state, event) {
            (S::Idle, E::Start) => {
                self.started = true;
                self.failures = 0;
                self.start(&mut out);
            }
            (S::Idle, E::IdleHoldExpired) if self.started => self.start(&mut out),
            (_, E::Stop) => self.stop(&mut out),
            (_, E::StableExpired) => self.failures = 0,

            (S::Connect, E::ConnectRetryExpired) => {
                out.extend([
                    Action::ConnectTimedOut,
                    Action::AbortConnect,
                    Action::Connect,
                    Action::StartTimer(Timer::ConnectRetry, self.cfg.connect_retry),
                ]);
            }
            (S::Active, E::ConnectRetryExpired) => {
                out.push(Action::StartTimer(
                    Timer::ConnectRetry,
                    self.cfg.connect_retry,
                ));
                if !self.cfg.passive {
                    out.push(Action::Connect);
                    self.state = S::Connect;
                }
            }

            (S::Connect, E::TcpConnected) => {
                out.push(Action::Adopt(Conn::Outgoing));
                out.push(Action::StopTimer(Timer::ConnectRetry));
                self.open_primary(Conn::Outgoing, &mut out);
            }
            // Idle refuses connections (§8.2.2); a connect completing outside Connect is an
            // attempt we no longer want.
            (S::Idle, E::TcpAccepted) | (_, E::TcpConnected) => out.push(Action::Refuse(None)),
            (S::Connect | S::Active, E::TcpAccepted) => {
                out.push(Action::Adopt(Conn::Incoming));
                if self.state == S::Connect {
                    out.push(Action::AbortConnect);
                }
                out.push(Action::StopTimer(Timer::ConnectRetry));
                self.open_primary(Conn::Incoming, &mut out);
            }
            (S::OpenSent | S::OpenConfirm, E::TcpAccepted) => {
                if self.primary == Some(Conn::Incoming) || self.pending.is_some() {
                    out.push(Action::Refuse(None));
                } else {
                    self.pending = Some(Conn::Incoming);
                    out.push(Action::Adopt(Conn::Incoming));
                    self.send_open(Conn::Incoming, &mut out);
                }
            }
            // RFC 4271 §6.8: a collision with an Established session keeps the session.
            (S::Established, E::TcpAccepted) => out.push(Action::Refuse(Some(Notification::new(
                code::CEASE,
                cease::CONNECTION_REJECTED,
            )))),

            (S::Connect, E::TcpFailed(Conn::Outgoing)) => {
                out.push(Action::Failed(Failure::ConnectionLost(Conn::Outgoing)));
                self.state = S::Active;
            }
            (_, E::TcpFailed(conn)) => {
                if self.pending == Some(conn) {
                    self.drop_pending(None, &mut out);
                } else if self.primary == Some(conn) {
                    if self.state == S::OpenSent && self.pending.is_none() {
                        // §8.2.2 OpenSent, event 18: back to Active, listening.
                        self.close_primary(None, &mut out);
                        out.push(Action::Failed(Failure::ConnectionLost(conn)));
                        out.push(Action::StartTimer(
                            Timer::ConnectRetry,
                            self.cfg.connect_retry,
                        ));
                        self.state = S::Active;
                    } else {
                        self.fail(Failure::ConnectionLost(conn), None, &mut out);
                    }
                }
            }

            (_, E::Open(conn, open)) => self.on_open(conn, &open, &mut out),

            (_, E::Keepalive(conn)) => {
                if self.pending == Some(conn) {
                    self.unexpected(conn, &mut out);
                } else if self.primary == Some(conn) {
                    match self.state {
                        S::OpenConfirm => {
                            let negotiated = self.negotiated.clone().expect("OpenConfirm");
                            self.restart_hold(conn, &mut out);
                            out.push(Action::StartTimer(Timer::Stable, self.cfg.idle_hold_max));
                            out.push(Action::Established(negotiated));
                            self.state = S::Established;
                            // The restart is over for this peer: later OPENs are plain ones.
                            self.restarting = false;
                        }
                        S::Established => self.restart_hold(conn, &mut out),
                        _ => self.unexpected(conn, &mut out),
                    }
                }
            }
            (_, E::Update(conn, update)) => {
                if self.primary == Some(conn) && self.state == S::Established {
                    self.restart_hold(conn, &mut out);
                    out.push(Action::Routes(update));
                } else if self.is_ours(conn) {
                    self.unexpected(conn, &mut out);
                }
            }
            (_, E::RouteRefresh(conn, refresh)) => {
                if self.primary == Some(conn) && self.state == S::Established {
                    self.restart_hold(conn, &mut out);
                    // RFC 2918 §4: a family we did not advertise is ignored.
                    if (refresh.afi, refresh.safi) == (AFI_IPV4, SAFI_UNICAST)
                        && refresh.subtype == 0
                    {
                        out.push(Action::Refresh);
                    }
                } else if self.is_ours(conn) {
                    self.unexpected(conn, &mut out);
                }
            }
            (_, E::Notification(conn, notification)) => {
                if self.pending == Some(conn) {
                    self.drop_pending(None, &mut out);
                } else if self.primary == Some(conn) {
                    self.fail(Failure::Received(notification), None, &mut out);
                }
            }
            (_, E::MessageError(conn, notification)) => {
                if self.pending == Some(conn) {
                    self.drop_pending(notification, &mut out);
                } else if self.primary == Some(conn) {
                    let failure = match &notification {
                        Some(n) => Failure::Sent(n.clone()),
                        None => Failure::ConnectionLost(conn),
                    };
                    self.fail(failure, notification, &mut out);
                }
            }
            (_, E::HoldExpired(conn)) => {
                let expired = Notification::new(code::HOLD_TIMER_EXPIRED, 0);
                if self.pending == Some(conn) {
                    self.drop_pending(Some(expired), &mut out);
                } else if self.primary == Some(conn) {
                    self.fail(Failure::Sent(expired.clone()), Some(expired), &mut out);
                }
            }
            (S::OpenConfirm | S::Established, E::KeepaliveExpired(conn))
                if self.primary == Some(conn) =>
            {
                if let Some(n) = &self.negotiated {
                    out.push(Action::Send(conn, Message::Keepalive));
                    out.push(Action::StartTimer(Timer::Keepalive(conn), n.keepalive));
                }
            }
            (S::Established, E::MaxPrefixExceeded { limit }) => {
                // RFC 4486 §4: AFI, SAFI and the upper bound.
                let mut data = AFI_IPV4.to_be_bytes().to_vec();
                data.push(SAFI_UNICAST);
                data.extend_from_slice(&limit.to_be_bytes());
                let n = Notification::with_data(code::CEASE, cease::MAX_PREFIXES, data);
                self.fail(Failure::Sent(n.clone()), Some(n), &mut out);
            }
            // Events that mean nothing in the current state.
            (
                _,
                E::Start
                | E::IdleHoldExpired
                | E::ConnectRetryExpired
                | E::KeepaliveExpired(_)
                | E::MaxPrefixExceeded { .. },
            ) => {}
        }
        out
    }

    fn is_ours(&self, conn: Conn) -> bool {
        self.primary == Some(conn) || self.pending == Some(conn)
    }

    fn start(&mut self, out: &mut Vec<Action>) {
        out.push(Action::StartTimer(
            Timer::ConnectRetry,
            self.cfg.connect_retry,
        ));
        if self.cfg.passive {
            self.state = State::Active;
        } else {
            out.push(Action::Connect);
            self.state = State::Connect;
        }
    }

    fn stop(&mut self, out: &mut Vec<Action>) {
        let shutdown = Notification::new(code::CEASE, cease::ADMINISTRATIVE_SHUTDOWN);
        if self.state == State::Connect {
            out.push(Action::AbortConnect);
        }
        if self.pending.is_some() {
            self.drop_pending(Some(shutdown.clone()), out);
        }
        if self.primary.is_some() {
            // Our OPEN went out on every adopted connection, so a NOTIFICATION may follow.
            self.close_primary(Some(shutdown), out);
        }
        if self.state == State::Established {
            out.push(Action::Down);
        }
        out.extend([
            Action::StopTimer(Timer::ConnectRetry),
            Action::StopTimer(Timer::IdleHold),
            Action::StopTimer(Timer::Stable),
            Action::Failed(Failure::Stopped),
        ]);
        self.started = false;
        self.negotiated = None;
        self.state = State::Idle;
    }

    /// A fresh (adopted) connection becomes the primary one: send OPEN, wait for the peer's.
    fn open_primary(&mut self, conn: Conn, out: &mut Vec<Action>) {
        self.send_open(conn, out);
        self.primary = Some(conn);
        self.state = State::OpenSent;
    }

    fn send_open(&self, conn: Conn, out: &mut Vec<Action>) {
        out.push(Action::Send(conn, Message::Open(self.our_open())));
        out.push(Action::StartTimer(Timer::Hold(conn), LARGE_HOLD));
    }

    /// The OPEN vc sends: IPv4 unicast, route refresh, graceful restart, 4-octet AS.
    #[must_use]
    pub fn our_open(&self) -> Open {
        Open {
            my_as: u16::try_from(self.cfg.local_asn).unwrap_or(AS_TRANS),
            hold_time: self.cfg.hold_time,
            identifier: self.cfg.router_id,
            capabilities: vec![
                Capability::Multiprotocol {
                    afi: AFI_IPV4,
                    safi: SAFI_UNICAST,
                },
                Capability::RouteRefresh,
                self.graceful_restart_capability(),
                Capability::FourOctetAs(self.cfg.local_asn),
            ],
        }
    }

    /// RFC 4724 §3. With a restart time, IPv4 unicast with the Forwarding State bit: the
    /// datapath and vc's kernel routes outlive the agent, so traffic keeps flowing across its
    /// restart and the peer may keep forwarding to us. Without one, no family: the peer must
    /// not hold our default route for us.
    fn graceful_restart_capability(&self) -> Capability {
        let restart_time = self.cfg.graceful_restart.restart_time.min(0x0fff);
        let families = if restart_time == 0 {
            vec![]
        } else {
            vec![GrFamily {
                afi: AFI_IPV4,
                safi: SAFI_UNICAST,
                forwarding_preserved: true,
            }]
        };
        Capability::GracefulRestart {
            restarted: self.restarting && restart_time > 0,
            notification: false,
            restart_time,
            families,
        }
    }

    /// Checks the peer's OPEN against the configuration (RFC 4271 §6.2, RFC 6793, RFC 6286).
    pub fn negotiate(&self, open: &Open) -> Result<Negotiated, Notification> {
        let peer_asn = open.asn();
        if peer_asn != self.cfg.remote_asn {
            // Data: the AS the peer announced, as BIRD does.
            let data = match open.four_octet_as() {
                Some(asn) => asn.to_be_bytes().to_vec(),
                None => open.my_as.to_be_bytes().to_vec(),
            };
            return Err(Notification::with_data(
                code::OPEN,
                open_err::BAD_PEER_AS,
                data,
            ));
        }
        if matches!(open.hold_time, 1 | 2) {
            return Err(Notification::new(
                code::OPEN,
                open_err::UNACCEPTABLE_HOLD_TIME,
            ));
        }
        if open.identifier.is_unspecified() {
            return Err(Notification::new(code::OPEN, open_err::BAD_BGP_IDENTIFIER));
        }
        let families = open.families();
        // No multiprotocol capability at all means IPv4 unicast (RFC 4760 §1).
        if !families.is_empty() && !families.contains(&(AFI_IPV4, SAFI_UNICAST)) {
            let mut data = Vec::new();
            // Data: the capability we needed (RFC 5492 §3).
            data.extend_from_slice(&[1, 4]);
            data.extend_from_slice(&AFI_IPV4.to_be_bytes());
            data.extend_from_slice(&[0, SAFI_UNICAST]);
            return Err(Notification::with_data(
                code::OPEN,
                open_err::UNSUPPORTED_CAPABILITY,
                data,
            ));
        }
        let hold_time = self.cfg.hold_time.min(open.hold_time);
        Ok(Negotiated {
            hold_time,
            keepalive: Duration::from_millis(u64::from(hold_time) * 1000 / 3),
            cxt: Cxt {
                four_octet_as: open.four_octet_as().is_some(),
            },
            peer_id: open.identifier,
            peer_asn,
            peer_route_refresh: open.has(|c| matches!(c, Capability::RouteRefresh)),
            peer_open: open.clone(),
        })
    }

    fn on_open(&mut self, conn: Conn, open: &Open, out: &mut Vec<Action>) {
        if !self.is_ours(conn) {
            return;
        }
        if self.primary == Some(conn) && self.state != State::OpenSent {
            // A second OPEN on a connection that already had one.
            self.unexpected(conn, out);
            return;
        }
        let negotiated = match self.negotiate(open) {
            Ok(n) => n,
            Err(n) => {
                if self.pending == Some(conn) {
                    self.drop_pending(Some(n), out);
                } else if self.primary == Some(conn) {
                    self.fail(Failure::Sent(n.clone()), Some(n), out);
                }
                return;
            }
        };
        if self.pending.is_none() {
            self.confirm(conn, negotiated, out);
        } else if self.state == State::Established {
            // The pending connection's OPEN: the session stands (RFC 4271 §6.8).
            self.drop_pending(Some(collision()), out);
        } else {
            self.resolve_collision(conn, negotiated, out);
        }
    }

    /// OpenSent → OpenConfirm on `conn`, whose peer sent an acceptable OPEN.
    fn confirm(&mut self, conn: Conn, negotiated: Negotiated, out: &mut Vec<Action>) {
        out.push(Action::Send(conn, Message::Keepalive));
        if negotiated.hold_time == 0 {
            out.push(Action::StopTimer(Timer::Hold(conn)));
        } else {
            let hold = Duration::from_secs(u64::from(negotiated.hold_time));
            out.push(Action::StartTimer(Timer::Hold(conn), hold));
            out.push(Action::StartTimer(
                Timer::Keepalive(conn),
                negotiated.keepalive,
            ));
        }
        self.negotiated = Some(negotiated);
        self.primary = Some(conn);
        self.state = State::OpenConfirm;
    }

    /// Two connections, and `conn` just brought the peer's identifier: keep the one opened by
    /// the side with the higher identifier (equal: the higher AS, RFC 6286 §2.3).
    fn resolve_collision(&mut self, conn: Conn, negotiated: Negotiated, out: &mut Vec<Action>) {
        let local = (u32::from(self.cfg.router_id), self.cfg.local_asn);
        let remote = (u32::from(negotiated.peer_id), negotiated.peer_asn);
        let keep = if local > remote {
            Conn::Outgoing
        } else {
            Conn::Incoming
        };
        let lose = other(keep);
        let pending = self
            .pending
            .take()
            .expect("a collision has two connections");
        let primary = self
            .primary
            .take()
            .expect("a collision has two connections");
        debug_assert_eq!(other(pending), primary);
        close(lose, Some(collision()), out);
        if keep == conn {
            // The survivor has just sent its OPEN.
            self.confirm(keep, negotiated, out);
        } else if keep == pending {
            // The survivor has not sent its OPEN yet.
            self.primary = Some(keep);
            self.negotiated = None;
            self.state = State::OpenSent;
        } else {
            // The survivor is the primary, in whatever state it was.
            self.primary = Some(keep);
        }
    }

    fn unexpected(&mut self, conn: Conn, out: &mut Vec<Action>) {
        let subcode = if self.pending == Some(conn) {
            fsm_err::UNEXPECTED_IN_OPEN_SENT
        } else {
            match self.state {
                State::OpenConfirm => fsm_err::UNEXPECTED_IN_OPEN_CONFIRM,
                State::Established => fsm_err::UNEXPECTED_IN_ESTABLISHED,
                _ => fsm_err::UNEXPECTED_IN_OPEN_SENT,
            }
        };
        let n = Notification::new(code::FSM, subcode);
        if self.pending == Some(conn) {
            self.drop_pending(Some(n), out);
        } else {
            self.fail(Failure::Sent(n.clone()), Some(n), out);
        }
    }

    fn restart_hold(&self, conn: Conn, out: &mut Vec<Action>) {
        if let Some(n) = self.negotiated.as_ref().filter(|n| n.hold_time > 0) {
            let hold = Duration::from_secs(u64::from(n.hold_time));
            out.push(Action::StartTimer(Timer::Hold(conn), hold));
        }
    }

    fn drop_pending(&mut self, notification: Option<Notification>, out: &mut Vec<Action>) {
        if let Some(conn) = self.pending.take() {
            close(conn, notification, out);
        }
    }

    fn close_primary(&mut self, notification: Option<Notification>, out: &mut Vec<Action>) {
        if let Some(conn) = self.primary.take() {
            close(conn, notification, out);
        }
    }

    /// The primary connection failed: report, close it, and either carry on with the pending
    /// connection or go Idle and wait out the (backed-off) idle hold time.
    fn fail(
        &mut self,
        failure: Failure,
        notification: Option<Notification>,
        out: &mut Vec<Action>,
    ) {
        self.close_primary(notification, out);
        if self.state == State::Established {
            out.push(Action::Down);
            out.push(Action::StopTimer(Timer::Stable));
        }
        out.push(Action::Failed(failure));
        self.negotiated = None;
        if let Some(pending) = self.pending.take() {
            self.primary = Some(pending);
            self.state = State::OpenSent;
            return;
        }
        self.state = State::Idle;
        self.failures = self.failures.saturating_add(1);
        if self.started {
            out.push(Action::StartTimer(Timer::IdleHold, self.idle_hold()));
        }
    }

    /// min · 2^(failures − 1), at most max.
    fn idle_hold(&self) -> Duration {
        let doublings = self.failures.saturating_sub(1).min(16);
        self.cfg
            .idle_hold
            .saturating_mul(1 << doublings)
            .min(self.cfg.idle_hold_max)
    }
}

const fn other(conn: Conn) -> Conn {
    match conn {
        Conn::Outgoing => Conn::Incoming,
        Conn::Incoming => Conn::Outgoing,
    }
}

fn collision() -> Notification {
    Notification::new(code::CEASE, cease::CONNECTION_COLLISION)
}

/// Sends the NOTIFICATION (if any), closes, and stops the connection's timers.
fn close(conn: Conn, notification: Option<Notification>, out: &mut Vec<Action>) {
    if let Some(n) = notification {
        out.push(Action::Send(conn, Message::Notification(n)));
    }
    out.extend([
        Action::Close(conn),
        Action::StopTimer(Timer::Hold(conn)),
        Action::StopTimer(Timer::Keepalive(conn)),
    ]);
}

#[cfg(test)]
mod tests;
