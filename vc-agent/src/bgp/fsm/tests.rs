//! The FSM driven with synthetic time: timers are a table of deadlines that [`Sim::advance`]
//! fires in order, so "hold timer expiry after 3 s" is exact and instant.
use std::collections::HashMap;

use super::*;
use crate::bgp::packet::notification::{cease, code, fsm as fsm_err, open as open_err};

const LOCAL_ID: Ipv4Addr = Ipv4Addr::new(100, 64, 0, 1);
const PEER_ID: Ipv4Addr = Ipv4Addr::new(100, 64, 0, 2);

fn cfg() -> FsmConfig {
    FsmConfig {
        local_asn: 65001,
        remote_asn: 65010,
        router_id: LOCAL_ID,
        hold_time: 9,
        connect_retry: Duration::from_secs(5),
        idle_hold: Duration::from_secs(1),
        idle_hold_max: Duration::from_secs(8),
        passive: false,
        graceful_restart: GracefulRestart {
            restart_time: 120,
            restarted: false,
        },
    }
}

fn peer_open(asn: u32, hold: u16, id: Ipv4Addr) -> Open {
    Open {
        my_as: u16::try_from(asn).unwrap_or(AS_TRANS),
        hold_time: hold,
        identifier: id,
        capabilities: vec![
            Capability::Multiprotocol {
                afi: AFI_IPV4,
                safi: SAFI_UNICAST,
            },
            Capability::FourOctetAs(asn),
        ],
    }
}

struct Sim {
    fsm: Fsm,
    now: Duration,
    /// Deadline and start order (ties fire in the order they were started).
    timers: HashMap<Timer, (Duration, u64)>,
    started: u64,
    /// Everything the FSM asked for, with when.
    log: Vec<(Duration, Action)>,
}

impl Sim {
    fn new(cfg: FsmConfig) -> Self {
        Sim {
            fsm: Fsm::new(cfg),
            now: Duration::ZERO,
            timers: HashMap::new(),
            started: 0,
            log: Vec::new(),
        }
    }

    fn feed(&mut self, event: Event) -> Vec<Action> {
        let actions = self.fsm.handle(event);
        for a in &actions {
            match a {
                Action::StartTimer(t, d) => {
                    self.started += 1;
                    self.timers.insert(*t, (self.now + *d, self.started));
                }
                Action::StopTimer(t) => {
                    self.timers.remove(t);
                }
                _ => {}
            }
            self.log.push((self.now, a.clone()));
        }
        actions
    }

    /// Lets `d` pass, firing timers in deadline order; returns what they caused.
    fn advance(&mut self, d: Duration) -> Vec<(Duration, Action)> {
        let end = self.now + d;
        let from = self.log.len();
        loop {
            let next = self
                .timers
                .iter()
                .filter(|(_, (at, _))| *at <= end)
                .min_by_key(|(_, key)| **key)
                .map(|(t, (at, _))| (*t, *at));
            let Some((timer, at)) = next else { break };
            self.timers.remove(&timer);
            self.now = at;
            let event = match timer {
                Timer::ConnectRetry => Event::ConnectRetryExpired,
                Timer::IdleHold => Event::IdleHoldExpired,
                Timer::Hold(c) => Event::HoldExpired(c),
                Timer::Keepalive(c) => Event::KeepaliveExpired(c),
                Timer::Stable => Event::StableExpired,
            };
            self.feed(event);
        }
        self.now = end;
        self.log[from..].to_vec()
    }

    /// Start → connect → OPEN both ways → KEEPALIVE: Established on the outgoing connection.
    fn establish(&mut self, peer_hold: u16) -> Negotiated {
        self.feed(Event::Start);
        self.feed(Event::TcpConnected);
        self.feed(Event::Open(
            Conn::Outgoing,
            peer_open(65010, peer_hold, PEER_ID),
        ));
        let actions = self.feed(Event::Keepalive(Conn::Outgoing));
        assert_eq!(self.fsm.state(), State::Established);
        actions
            .into_iter()
            .find_map(|a| match a {
                Action::Established(n) => Some(n),
                _ => None,
            })
            .expect("Established action")
    }
}

fn sent(actions: &[Action]) -> Vec<(Conn, Message)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Send(c, m) => Some((*c, m.clone())),
            _ => None,
        })
        .collect()
}

fn sent_notification(actions: &[Action]) -> Option<(u8, u8)> {
    sent(actions).into_iter().find_map(|(_, m)| match m {
        Message::Notification(n) => Some((n.code, n.subcode)),
        _ => None,
    })
}

#[test]
fn active_open_reaches_established() {
    let mut sim = Sim::new(cfg());
    let a = sim.feed(Event::Start);
    assert_eq!(sim.fsm.state(), State::Connect);
    assert!(a.contains(&Action::Connect));
    assert!(a.contains(&Action::StartTimer(
        Timer::ConnectRetry,
        Duration::from_secs(5)
    )));

    let a = sim.feed(Event::TcpConnected);
    assert_eq!(sim.fsm.state(), State::OpenSent);
    assert_eq!(
        a[0],
        Action::Adopt(Conn::Outgoing),
        "the socket is kept first"
    );
    assert!(a.contains(&Action::StopTimer(Timer::ConnectRetry)));
    assert!(a.contains(&Action::StartTimer(Timer::Hold(Conn::Outgoing), LARGE_HOLD)));
    let Some((Conn::Outgoing, Message::Open(open))) = sent(&a).pop() else {
        panic!("OPEN sent: {a:?}");
    };
    assert_eq!(open.my_as, 65001);
    assert_eq!(open.hold_time, 9);
    assert_eq!(open.asn(), 65001);

    let a = sim.feed(Event::Open(Conn::Outgoing, peer_open(65010, 90, PEER_ID)));
    assert_eq!(sim.fsm.state(), State::OpenConfirm);
    assert_eq!(sent(&a), vec![(Conn::Outgoing, Message::Keepalive)]);
    assert!(a.contains(&Action::StartTimer(
        Timer::Hold(Conn::Outgoing),
        Duration::from_secs(9)
    )));
    assert!(a.contains(&Action::StartTimer(
        Timer::Keepalive(Conn::Outgoing),
        Duration::from_secs(3)
    )));

    let a = sim.feed(Event::Keepalive(Conn::Outgoing));
    assert_eq!(sim.fsm.state(), State::Established);
    assert!(a.iter().any(|a| matches!(a, Action::Established(n) if n.hold_time == 9 && n.peer_asn == 65010 && n.cxt.four_octet_as)));
}

#[test]
fn passive_open_waits_for_the_peer() {
    let mut sim = Sim::new(FsmConfig {
        passive: true,
        ..cfg()
    });
    let a = sim.feed(Event::Start);
    assert_eq!(sim.fsm.state(), State::Active);
    assert!(!a.contains(&Action::Connect));
    // ConnectRetry expiry in passive mode never connects.
    let fired = sim.advance(Duration::from_secs(11));
    assert!(fired.iter().all(|(_, a)| *a != Action::Connect));
    assert_eq!(sim.fsm.state(), State::Active);

    let a = sim.feed(Event::TcpAccepted);
    assert_eq!(a[0], Action::Adopt(Conn::Incoming));
    assert_eq!(sim.fsm.state(), State::OpenSent);
    assert_eq!(sim.fsm.primary(), Some(Conn::Incoming));
    sim.feed(Event::Open(Conn::Incoming, peer_open(65010, 9, PEER_ID)));
    sim.feed(Event::Keepalive(Conn::Incoming));
    assert_eq!(sim.fsm.state(), State::Established);
}

#[test]
fn incoming_connection_during_connect_replaces_the_attempt() {
    let mut sim = Sim::new(cfg());
    sim.feed(Event::Start);
    let a = sim.feed(Event::TcpAccepted);
    assert!(a.contains(&Action::AbortConnect));
    assert_eq!(sim.fsm.primary(), Some(Conn::Incoming));
    // The aborted attempt completing late is refused.
    let a = sim.feed(Event::TcpConnected);
    assert_eq!(a, vec![Action::Refuse(None)]);
}

#[test]
fn hold_time_is_the_smaller_of_both_and_zero_disables_timers() {
    let mut sim = Sim::new(cfg());
    assert_eq!(sim.establish(3).hold_time, 3);
    let mut sim = Sim::new(cfg());
    assert_eq!(sim.establish(240).hold_time, 9);

    let mut sim = Sim::new(cfg());
    let n = sim.establish(0);
    assert_eq!(n.hold_time, 0);
    assert!(
        !sim.timers
            .keys()
            .any(|t| matches!(t, Timer::Hold(_) | Timer::Keepalive(_))),
        "no hold or keepalive timer with hold time 0: {:?}",
        sim.timers
    );
    let fired = sim.advance(Duration::from_hours(1));
    assert!(fired.iter().all(|(_, a)| !matches!(a, Action::Send(..))));
    assert_eq!(sim.fsm.state(), State::Established);
}

#[test]
fn unacceptable_hold_time_bad_identifier_and_missing_family_are_refused() {
    for (open, expected) in [
        (
            peer_open(65010, 2, PEER_ID),
            open_err::UNACCEPTABLE_HOLD_TIME,
        ),
        (
            peer_open(65010, 9, Ipv4Addr::UNSPECIFIED),
            open_err::BAD_BGP_IDENTIFIER,
        ),
        (
            Open {
                capabilities: vec![Capability::Multiprotocol { afi: 2, safi: 1 }],
                ..peer_open(65010, 9, PEER_ID)
            },
            open_err::UNSUPPORTED_CAPABILITY,
        ),
    ] {
        let mut sim = Sim::new(cfg());
        sim.feed(Event::Start);
        sim.feed(Event::TcpConnected);
        let a = sim.feed(Event::Open(Conn::Outgoing, open));
        assert_eq!(sent_notification(&a), Some((code::OPEN, expected)));
        assert!(a.contains(&Action::Close(Conn::Outgoing)));
        assert_eq!(sim.fsm.state(), State::Idle);
    }
}

#[test]
fn wrong_peer_as_sends_bad_peer_as_and_waits_idle_hold() {
    let mut sim = Sim::new(cfg());
    sim.feed(Event::Start);
    sim.feed(Event::TcpConnected);
    let a = sim.feed(Event::Open(Conn::Outgoing, peer_open(65099, 9, PEER_ID)));
    assert_eq!(
        sent_notification(&a),
        Some((code::OPEN, open_err::BAD_PEER_AS))
    );
    assert!(a.iter().any(|a| matches!(a, Action::Failed(Failure::Sent(n)) if n.subcode == open_err::BAD_PEER_AS && n.data == 65099u32.to_be_bytes())));
    assert_eq!(sim.fsm.state(), State::Idle);
    assert!(a.contains(&Action::StartTimer(Timer::IdleHold, Duration::from_secs(1))));
    // No reconnect before the idle hold time, one right at it.
    assert!(sim.advance(Duration::from_millis(999)).is_empty());
    let fired = sim.advance(Duration::from_millis(1));
    assert!(
        fired
            .iter()
            .any(|(t, a)| *a == Action::Connect && *t == Duration::from_secs(1))
    );
}

#[test]
fn as_trans_peer_is_matched_by_its_4_octet_as() {
    let mut sim = Sim::new(FsmConfig {
        remote_asn: 4_200_000_010,
        ..cfg()
    });
    sim.feed(Event::Start);
    sim.feed(Event::TcpConnected);
    let a = sim.feed(Event::Open(
        Conn::Outgoing,
        peer_open(4_200_000_010, 9, PEER_ID),
    ));
    assert_eq!(sent_notification(&a), None, "{a:?}");
    assert_eq!(sim.fsm.state(), State::OpenConfirm);
}

#[test]
fn keepalives_every_third_of_hold_and_hold_timer_expiry_is_exact() {
    let mut sim = Sim::new(cfg());
    sim.establish(9);
    let start = sim.now;
    // Peer stays silent: we send KEEPALIVEs at 3 s and 6 s, and the hold timer fires at 9 s.
    let fired = sim.advance(Duration::from_secs(20));
    let keepalives: Vec<Duration> = fired
        .iter()
        .filter(|(_, a)| *a == Action::Send(Conn::Outgoing, Message::Keepalive))
        .map(|(t, _)| (*t).checked_sub(start).unwrap())
        .collect();
    assert_eq!(
        keepalives,
        vec![Duration::from_secs(3), Duration::from_secs(6)]
    );
    let (at, _) = fired
        .iter()
        .find(|(_, a)| matches!(a, Action::Send(_, Message::Notification(n)) if n.code == code::HOLD_TIMER_EXPIRED))
        .expect("4/0 sent");
    assert_eq!((*at).checked_sub(start).unwrap(), Duration::from_secs(9));
    assert!(fired.iter().any(|(_, a)| *a == Action::Down));
    assert!(fired.iter().any(
        |(_, a)| matches!(a, Action::Failed(Failure::Sent(n)) if n.code == code::HOLD_TIMER_EXPIRED)
    ));
}

#[test]
fn traffic_restarts_the_hold_timer() {
    let mut sim = Sim::new(cfg());
    sim.establish(9);
    for _ in 0..5 {
        sim.advance(Duration::from_secs(8));
        sim.feed(Event::Keepalive(Conn::Outgoing));
    }
    assert_eq!(
        sim.fsm.state(),
        State::Established,
        "40 s, never 9 s of silence"
    );
    sim.advance(Duration::from_secs(8));
    sim.feed(Event::Update(Conn::Outgoing, Update::default()));
    sim.advance(Duration::from_secs(8));
    assert_eq!(sim.fsm.state(), State::Established);
    sim.advance(Duration::from_secs(1));
    assert_eq!(sim.fsm.state(), State::Idle);
}

#[test]
fn connect_retry_retries_and_reports_timeouts() {
    let mut sim = Sim::new(cfg());
    sim.feed(Event::Start);
    let fired = sim.advance(Duration::from_secs(16));
    let timeouts = fired
        .iter()
        .filter(|(_, a)| *a == Action::ConnectTimedOut)
        .count();
    let connects = fired.iter().filter(|(_, a)| *a == Action::Connect).count();
    assert_eq!((timeouts, connects), (3, 3), "at 5, 10 and 15 s");
    assert_eq!(sim.fsm.state(), State::Connect);
}

#[test]
fn refused_connect_goes_active_then_retries() {
    let mut sim = Sim::new(cfg());
    sim.feed(Event::Start);
    sim.advance(Duration::from_secs(1));
    sim.feed(Event::TcpFailed(Conn::Outgoing));
    assert_eq!(sim.fsm.state(), State::Active);
    // Retry when ConnectRetry (started at 0 s) expires at 5 s.
    let fired = sim.advance(Duration::from_secs(4));
    assert!(
        fired
            .iter()
            .any(|(t, a)| *a == Action::Connect && *t == Duration::from_secs(5))
    );
    assert_eq!(sim.fsm.state(), State::Connect);
}

#[test]
fn connection_lost_in_open_sent_returns_to_active() {
    let mut sim = Sim::new(cfg());
    sim.feed(Event::Start);
    sim.feed(Event::TcpConnected);
    let a = sim.feed(Event::TcpFailed(Conn::Outgoing));
    assert_eq!(sim.fsm.state(), State::Active);
    assert!(a.contains(&Action::Close(Conn::Outgoing)));
    assert!(a.contains(&Action::StartTimer(
        Timer::ConnectRetry,
        Duration::from_secs(5)
    )));
}

/// Both sides connect at once; the OPENs arrive in either order.
fn collision(local_id: Ipv4Addr, peer_id: Ipv4Addr, open_first_on: Conn) -> (Sim, Vec<Action>) {
    let mut sim = Sim::new(FsmConfig {
        router_id: local_id,
        ..cfg()
    });
    sim.feed(Event::Start);
    sim.feed(Event::TcpConnected);
    let a = sim.feed(Event::TcpAccepted);
    assert_eq!(
        a[0],
        Action::Adopt(Conn::Incoming),
        "second connection kept pending"
    );
    assert_eq!(sim.fsm.pending(), Some(Conn::Incoming));
    let mut all = sim.feed(Event::Open(open_first_on, peer_open(65010, 9, peer_id)));
    // The survivor, if it still waits for an OPEN, gets one.
    if sim.fsm.state() == State::OpenSent {
        let survivor = sim.fsm.primary().expect("primary");
        all.extend(sim.feed(Event::Open(survivor, peer_open(65010, 9, peer_id))));
    }
    let survivor = sim.fsm.primary().expect("primary");
    all.extend(sim.feed(Event::Keepalive(survivor)));
    (sim, all)
}

#[test]
fn collision_keeps_the_connection_of_the_higher_identifier() {
    let low = Ipv4Addr::new(100, 64, 0, 1);
    let high = Ipv4Addr::new(100, 64, 0, 2);
    for open_first_on in [Conn::Outgoing, Conn::Incoming] {
        // We have the higher identifier: our (outgoing) connection survives.
        let (sim, a) = collision(high, low, open_first_on);
        assert_eq!(sim.fsm.state(), State::Established, "{open_first_on:?}");
        assert_eq!(sim.fsm.primary(), Some(Conn::Outgoing));
        assert!(a.contains(&Action::Close(Conn::Incoming)));
        assert!(sent(&a).contains(&(
            Conn::Incoming,
            Message::Notification(Notification::new(code::CEASE, cease::CONNECTION_COLLISION))
        )));
        // The peer has the higher identifier: its (incoming) connection survives.
        let (sim, a) = collision(low, high, open_first_on);
        assert_eq!(sim.fsm.state(), State::Established, "{open_first_on:?}");
        assert_eq!(sim.fsm.primary(), Some(Conn::Incoming));
        assert!(a.contains(&Action::Close(Conn::Outgoing)));
        assert_eq!(sim.fsm.pending(), None);
    }
}

#[test]
fn collision_with_equal_identifiers_keeps_the_higher_as() {
    // RFC 6286 §2.3: same identifier (legal for eBGP), our AS 65001 < 65010: theirs wins.
    let (sim, _) = collision(PEER_ID, PEER_ID, Conn::Outgoing);
    assert_eq!(sim.fsm.primary(), Some(Conn::Incoming));
}

#[test]
fn established_session_rejects_new_connections_and_idle_refuses_them() {
    let mut sim = Sim::new(cfg());
    let a = sim.feed(Event::TcpAccepted);
    assert_eq!(a, vec![Action::Refuse(None)], "Idle refuses");
    sim.establish(9);
    let a = sim.feed(Event::TcpAccepted);
    assert_eq!(
        a,
        vec![Action::Refuse(Some(Notification::new(
            code::CEASE,
            cease::CONNECTION_REJECTED
        )))]
    );
    assert_eq!(sim.fsm.state(), State::Established);
}

#[test]
fn unexpected_messages_are_fsm_errors() {
    let mut sim = Sim::new(cfg());
    sim.feed(Event::Start);
    sim.feed(Event::TcpConnected);
    let a = sim.feed(Event::Keepalive(Conn::Outgoing));
    assert_eq!(
        sent_notification(&a),
        Some((code::FSM, fsm_err::UNEXPECTED_IN_OPEN_SENT))
    );

    let mut sim = Sim::new(cfg());
    sim.feed(Event::Start);
    sim.feed(Event::TcpConnected);
    sim.feed(Event::Open(Conn::Outgoing, peer_open(65010, 9, PEER_ID)));
    let a = sim.feed(Event::Update(Conn::Outgoing, Update::default()));
    assert_eq!(
        sent_notification(&a),
        Some((code::FSM, fsm_err::UNEXPECTED_IN_OPEN_CONFIRM))
    );
    assert_eq!(sim.fsm.state(), State::Idle);

    let mut sim = Sim::new(cfg());
    sim.establish(9);
    let a = sim.feed(Event::Open(Conn::Outgoing, peer_open(65010, 9, PEER_ID)));
    assert_eq!(
        sent_notification(&a),
        Some((code::FSM, fsm_err::UNEXPECTED_IN_ESTABLISHED))
    );
    assert!(a.contains(&Action::Down));
}

#[test]
fn updates_and_refresh_requests_reach_the_rib_only_when_established() {
    let mut sim = Sim::new(cfg());
    sim.establish(9);
    let a = sim.feed(Event::Update(Conn::Outgoing, Update::default()));
    assert!(a.contains(&Action::Routes(Update::default())));
    let rr = |afi| RouteRefresh {
        afi,
        subtype: 0,
        safi: 1,
    };
    assert!(
        sim.feed(Event::RouteRefresh(Conn::Outgoing, rr(1)))
            .contains(&Action::Refresh)
    );
    assert!(
        !sim.feed(Event::RouteRefresh(Conn::Outgoing, rr(2)))
            .contains(&Action::Refresh)
    );
    // Events of a connection that is not ours are ignored.
    assert!(
        sim.feed(Event::Update(Conn::Incoming, Update::default()))
            .is_empty()
    );
}

#[test]
fn max_prefix_sends_cease_1_with_the_limit_and_waits() {
    let mut sim = Sim::new(cfg());
    sim.establish(9);
    let a = sim.feed(Event::MaxPrefixExceeded { limit: 10 });
    let n = sent(&a)
        .into_iter()
        .find_map(|(_, m)| match m {
            Message::Notification(n) => Some(n),
            _ => None,
        })
        .expect("notification");
    assert_eq!((n.code, n.subcode), (code::CEASE, cease::MAX_PREFIXES));
    assert_eq!(
        n.data,
        vec![0, 1, 1, 0, 0, 0, 10],
        "AFI 1, SAFI 1, limit 10"
    );
    assert!(a.contains(&Action::Down));
    assert_eq!(sim.fsm.state(), State::Idle);
    assert!(a.contains(&Action::StartTimer(Timer::IdleHold, Duration::from_secs(1))));
}

#[test]
fn idle_hold_doubles_per_failure_and_resets_after_a_stable_session() {
    let mut sim = Sim::new(cfg());
    sim.feed(Event::Start);
    let mut holds = Vec::new();
    for _ in 0..6 {
        if sim.fsm.state() == State::Idle {
            sim.advance(Duration::from_mins(1));
        }
        sim.feed(Event::TcpConnected);
        let a = sim.feed(Event::Notification(
            Conn::Outgoing,
            Notification::new(code::CEASE, cease::ADMINISTRATIVE_RESET),
        ));
        holds.extend(a.iter().filter_map(|a| match a {
            Action::StartTimer(Timer::IdleHold, d) => Some(d.as_secs()),
            _ => None,
        }));
    }
    assert_eq!(holds, vec![1, 2, 4, 8, 8, 8]);

    // A session that stays up for idle_hold_max (8 s) forgives.
    sim.advance(Duration::from_mins(1));
    sim.feed(Event::TcpConnected);
    sim.feed(Event::Open(Conn::Outgoing, peer_open(65010, 90, PEER_ID)));
    sim.feed(Event::Keepalive(Conn::Outgoing));
    for _ in 0..3 {
        sim.advance(Duration::from_secs(3));
        sim.feed(Event::Keepalive(Conn::Outgoing));
    }
    let a = sim.feed(Event::TcpFailed(Conn::Outgoing));
    assert!(
        a.contains(&Action::StartTimer(Timer::IdleHold, Duration::from_secs(1))),
        "{a:?}"
    );
}

#[test]
fn stop_sends_administrative_shutdown_and_never_restarts() {
    let mut sim = Sim::new(cfg());
    sim.establish(9);
    let a = sim.feed(Event::Stop);
    assert_eq!(
        sent_notification(&a),
        Some((code::CEASE, cease::ADMINISTRATIVE_SHUTDOWN))
    );
    assert!(a.contains(&Action::Down));
    assert_eq!(sim.fsm.state(), State::Idle);
    let fired = sim.advance(Duration::from_hours(1));
    assert!(
        fired.iter().all(|(_, a)| *a != Action::Connect),
        "{fired:?}"
    );
}

#[test]
fn received_notification_and_decode_errors_end_the_session() {
    let mut sim = Sim::new(cfg());
    sim.establish(9);
    let n = Notification::new(code::CEASE, cease::ADMINISTRATIVE_SHUTDOWN);
    let a = sim.feed(Event::Notification(Conn::Outgoing, n.clone()));
    assert!(a.contains(&Action::Failed(Failure::Received(n))));
    assert_eq!(sent_notification(&a), None, "never answer a NOTIFICATION");

    let mut sim = Sim::new(cfg());
    sim.establish(9);
    let bad = Notification::new(code::UPDATE, 1);
    let a = sim.feed(Event::MessageError(Conn::Outgoing, Some(bad.clone())));
    assert_eq!(sent_notification(&a), Some((code::UPDATE, 1)));
    assert!(a.contains(&Action::Failed(Failure::Sent(bad))));
    assert!(a.contains(&Action::Down));
}

/// The Graceful Restart capability of the OPEN vc sent in `actions`.
fn sent_gr(actions: &[Action]) -> (bool, u16, Vec<GrFamily>) {
    sent(actions)
        .into_iter()
        .find_map(|(_, m)| match m {
            Message::Open(open) => open.capabilities.into_iter().find_map(|c| match c {
                Capability::GracefulRestart {
                    restarted,
                    notification,
                    restart_time,
                    families,
                } => {
                    assert!(!notification, "vc does not do RFC 8538");
                    Some((restarted, restart_time, families))
                }
                _ => None,
            }),
            _ => None,
        })
        .expect("an OPEN with graceful restart")
}

const IPV4_FORWARDING: GrFamily = GrFamily {
    afi: AFI_IPV4,
    safi: SAFI_UNICAST,
    forwarding_preserved: true,
};

#[test]
fn a_fresh_start_announces_graceful_restart_with_forwarding_preserved() {
    let mut sim = Sim::new(cfg());
    sim.feed(Event::Start);
    let a = sim.feed(Event::TcpConnected);
    assert_eq!(sent_gr(&a), (false, 120, vec![IPV4_FORWARDING]));
}

#[test]
fn a_restart_sets_the_r_bit_until_a_session_is_established() {
    let mut sim = Sim::new(FsmConfig {
        graceful_restart: GracefulRestart {
            restart_time: 300,
            restarted: true,
        },
        ..cfg()
    });
    sim.feed(Event::Start);
    let a = sim.feed(Event::TcpConnected);
    assert_eq!(sent_gr(&a), (true, 300, vec![IPV4_FORWARDING]));
    // An attempt that fails before Established keeps the restart announced.
    sim.feed(Event::TcpFailed(Conn::Outgoing));
    sim.advance(Duration::from_secs(10));
    let a = sim.feed(Event::TcpConnected);
    assert!(sent_gr(&a).0, "still restarting: {a:?}");
    sim.feed(Event::Open(Conn::Outgoing, peer_open(65010, 9, PEER_ID)));
    sim.feed(Event::Keepalive(Conn::Outgoing));
    assert_eq!(sim.fsm.state(), State::Established);
    // Once Established, a later session is no restart of ours.
    sim.feed(Event::HoldExpired(Conn::Outgoing));
    sim.advance(Duration::from_secs(10));
    let a = sim.feed(Event::TcpConnected);
    assert_eq!(sent_gr(&a), (false, 300, vec![IPV4_FORWARDING]));
}

#[test]
fn restart_time_zero_announces_only_the_receiving_speaker() {
    let mut sim = Sim::new(FsmConfig {
        graceful_restart: GracefulRestart {
            restart_time: 0,
            restarted: true,
        },
        ..cfg()
    });
    sim.feed(Event::Start);
    let a = sim.feed(Event::TcpConnected);
    assert_eq!(sent_gr(&a), (false, 0, vec![]), "no family, no R bit");
}

#[test]
fn the_capability_round_trips_through_the_codec() {
    let fsm = Fsm::new(FsmConfig {
        graceful_restart: GracefulRestart {
            restart_time: 4095,
            restarted: true,
        },
        ..cfg()
    });
    let open = fsm.our_open();
    let bytes = Message::Open(open.clone()).encode(Cxt::default());
    let back = Message::decode(&bytes, Cxt::default()).expect("decodes");
    assert_eq!(back, Message::Open(open));
    // R bit and the 12-bit time as RFC 4724 §3 lays them out: 0x8fff, then AFI 1, SAFI 1,
    // flags 0x80 (forwarding state preserved).
    let gr = [64, 6, 0x8f, 0xff, 0, 1, 1, 0x80];
    assert!(bytes.windows(gr.len()).any(|w| w == gr), "{bytes:02x?}");
}
