//! The tree on crafted statuses: each likely cause of R24 from the evidence that points at
//! it, at the step where Cisco's order finds it.
use ipnet::Ipv4Net;

use super::{Cause, Diagnosis, Observation, Ping, Step, Verdict, diagnose};
use crate::{
    bgp::packet::Notification,
    datapath::wan_route::WanRoute,
    status::{
        AgentStatus, AttachMode, BgpState, BgpStatus, CharonStatus, ChildMode, ChildState,
        ChildStatus, DatapathStatus, Direction, DropReason, Failure, FailureStatus, Hook, IkeState,
        IkeStatus, IpsecStatus, KeepaliveStatus, LivenessSignal, Mode, NotificationInfo,
        TunnelCounters, TunnelEnds, TunnelId, TunnelStatus, VerdictLine,
    },
};

fn net(s: &str) -> Ipv4Net {
    s.parse().expect("prefix")
}

/// Tunnel A of a healthy IPsec-mode CPE, ten minutes up.
fn healthy_tunnel() -> TunnelStatus {
    TunnelStatus {
        ends: TunnelEnds {
            id: TunnelId::A,
            region: "EMEA".into(),
            dc: 1,
            interface: "vc-dc1".into(),
            local_gre: [198, 51, 100, 1].into(),
            remote_gre: [198, 18, 1, 1].into(),
            local_tunnel_ip: net("100.64.0.1/30"),
            dc_tunnel_ip: [100, 64, 0, 2].into(),
        },
        remote_ipsec: [198, 18, 1, 1].into(),
        expected_prefixes: vec![net("203.0.113.0/25"), net("203.0.113.0/24")],
        ipsec: Some(IpsecStatus {
            ike: Some(IkeStatus {
                state: IkeState::Established,
                up: true,
                proposal: "AES_GCM_16_256/PRF_HMAC_SHA2_384/ECP_384".into(),
                remote: "198.18.1.1[500]".into(),
                established_s: Some(590),
                ..IkeStatus::default()
            }),
            child: Some(ChildStatus {
                state: ChildState::Installed,
                reqid: 1001,
                mode: ChildMode::Tunnel,
                proposal: "AES_GCM_16_256".into(),
                spi_in: "c1a2b3c4".into(),
                spi_out: "d1a2b3c4".into(),
                local_ts: vec!["198.51.100.1/32[gre]".into()],
                remote_ts: vec!["198.18.1.1/32[gre]".into()],
                packets_in: 500,
                packets_out: 520,
                ..ChildStatus::default()
            }),
            ike_ups: 1,
            child_ups: 1,
            ..IpsecStatus::default()
        }),
        keepalive: KeepaliveStatus {
            enabled: true,
            interval_s: 10,
            retries: 3,
            sent: 60,
            replies: 60,
            reflected: 60,
            alive: true,
            missed: 0,
            last_reply_s: Some(3),
            liveness: vec![
                LivenessSignal::OurKeepalives,
                LivenessSignal::DcKeepalives,
                LivenessSignal::ChildSa,
            ],
        },
        counters: TunnelCounters {
            up: true,
            mtu: 1400,
            mss: 1350,
            rx_packets: 400,
            tx_packets: 420,
            ..TunnelCounters::default()
        },
        bgp: Some(BgpStatus {
            state: BgpState::Established,
            established: true,
            peer: [100, 64, 0, 2].into(),
            local_asn: 65010,
            remote_asn: 64601,
            uptime_s: Some(580),
            last_error: None,
            last_notification: None,
            received: 2,
            accepted: 2,
            rejected: 0,
            advertised: 1,
            flaps: 0,
            connect_attempts: 1,
            connect_timeouts: 0,
            diagnosis: None,
            likely_password_mismatch: false,
            refused_connections: 0,
        }),
        accepted_prefixes: vec![net("203.0.113.0/25"), net("203.0.113.0/24")],
        stale_prefixes: vec![],
    }
}

fn status(mode: Mode, tunnel: TunnelStatus) -> AgentStatus {
    AgentStatus {
        version: "0.1.0".into(),
        region: "LAB".into(),
        mode,
        uptime_s: 600,
        charon: (mode == Mode::Ipsec).then(|| CharonStatus::Running {
            version: "5.9.8".into(),
            pid: Some(42),
        }),
        lan: None,
        tunnels: vec![tunnel],
        datapath: DatapathStatus {
            attach_mode: AttachMode::Tcx,
            fast_path: true,
            kernel: crate::status::AuditReport::default(),
            verdicts: Vec::new(),
            routes: Vec::new(),
            reassembled: crate::status::ReassembledCounters::default(),
        },
    }
}

fn ping(received: u32) -> Ping {
    Ping {
        tunnel: TunnelId::A,
        from: [100, 64, 0, 1].into(),
        to: [100, 64, 0, 2].into(),
        ran: true,
        sent: 3,
        received,
        rtt_min_us: (received > 0).then_some(180),
        error: None,
    }
}

/// A status before and after a probe: `during` edits the tunnel as it was after; counters
/// the test leaves alone did not move.
#[derive(Clone)]
struct Case {
    mode: Mode,
    before: TunnelStatus,
    after: TunnelStatus,
    before_verdicts: Vec<VerdictLine>,
    after_verdicts: Vec<VerdictLine>,
    ping: Option<Ping>,
    charon: Option<CharonStatus>,
    wan_routes: Vec<WanRoute>,
}

impl Case {
    fn ipsec() -> Self {
        Case {
            mode: Mode::Ipsec,
            before: healthy_tunnel(),
            after: healthy_tunnel(),
            before_verdicts: Vec::new(),
            after_verdicts: Vec::new(),
            ping: Some(ping(3)),
            charon: None,
            wan_routes: Vec::new(),
        }
    }

    fn external() -> Self {
        let mut t = healthy_tunnel();
        t.ipsec = None;
        Case {
            mode: Mode::ExternalIpsec,
            before: t.clone(),
            after: t,
            ..Case::ipsec()
        }
    }

    /// The same change to the status before and after (state, not traffic).
    fn both(mut self, f: impl Fn(&mut TunnelStatus)) -> Self {
        f(&mut self.before);
        f(&mut self.after);
        self
    }

    /// Traffic during the probe: a change to the status after only.
    fn during(mut self, f: impl FnOnce(&mut TunnelStatus)) -> Self {
        f(&mut self.after);
        self
    }

    fn ping(mut self, received: Option<u32>) -> Self {
        self.ping = received.map(ping);
        self
    }

    /// `packets` more drops for `reason` at WAN receive during the probe.
    fn drops(mut self, reason: DropReason, before: u64, after: u64) -> Self {
        let line = |packets| VerdictLine::new(Hook::WanRx, reason, packets, packets * 100);
        self.before_verdicts.push(line(before));
        self.after_verdicts.push(line(after));
        self
    }

    fn run(self) -> Diagnosis {
        let mut before = status(self.mode, self.before);
        before.datapath.verdicts = self.before_verdicts;
        let mut after = status(self.mode, self.after);
        after.datapath.verdicts = self.after_verdicts;
        if let Some(c) = self.charon {
            after.charon = Some(c);
        }
        after.datapath.kernel.wan_routes = self.wan_routes;
        diagnose(&Observation {
            status: after,
            before: Some(before),
            pings: self.ping.into_iter().collect(),
        })
    }
}

/// Asserts the first failing step and that `cause` is among its likely causes; returns the
/// diagnosis for more checks.
fn fails_at(case: Case, step: Step, expected: Cause) -> Diagnosis {
    let d = case.run();
    let t = d.tunnel(TunnelId::A).expect("tunnel a");
    assert_eq!(t.first_failure, Some(step), "{d}");
    assert!(!d.ok());
    assert!(
        t.causes().contains(&expected),
        "{expected:?} not in {:?}\n{d}",
        t.causes()
    );
    for later in Step::ALL.iter().filter(|s| **s > step) {
        assert_eq!(
            t.step(*later).verdict,
            Verdict::NotChecked,
            "{later:?}\n{d}"
        );
    }
    for earlier in Step::ALL.iter().filter(|s| **s < step) {
        assert!(t.step(*earlier).verdict.passes(), "{earlier:?}\n{d}");
    }
    // Every cause names its evidence.
    for c in &t.step(step).causes {
        assert!(!c.evidence.is_empty(), "{:?} without evidence", c.cause);
    }
    d
}

fn failure(failure: &Failure, line: &str) -> FailureStatus {
    FailureStatus::new(failure.clone(), line, 4)
}

/// IKE not up, with `error` recorded.
fn ike_down(name: Failure, line: &'static str) -> impl Fn(&mut TunnelStatus) {
    move |t| {
        let i = t.ipsec.as_mut().expect("ipsec");
        i.ike = Some(IkeStatus {
            state: IkeState::Connecting,
            up: false,
            remote: "198.18.1.1[500]".into(),
            ..IkeStatus::default()
        });
        i.child = None;
        i.last_error = Some(failure(&name, line));
    }
}

/// IKE up, no child SA, with `error` recorded.
fn child_down(name: Failure, line: &'static str) -> impl Fn(&mut TunnelStatus) {
    move |t| {
        let i = t.ipsec.as_mut().expect("ipsec");
        i.child = None;
        i.last_error = Some(failure(&name, line));
    }
}

fn bgp(t: &mut TunnelStatus) -> &mut BgpStatus {
    t.bgp.as_mut().expect("bgp")
}

/// BGP not Established, no routes.
fn bgp_down(t: &mut TunnelStatus) {
    let b = bgp(t);
    b.state = BgpState::Active;
    b.established = false;
    b.uptime_s = None;
    b.received = 0;
    b.accepted = 0;
    b.advertised = 0;
    t.accepted_prefixes.clear();
}

/// The session's last error is a NOTIFICATION, as the speaker records it.
fn notified(b: &mut BgpStatus, direction: Direction, code: u8, subcode: u8, data: &[u8]) {
    let n = Notification::with_data(code, subcode, data.to_vec());
    let way = match direction {
        Direction::Sent => "sent",
        Direction::Received => "received",
    };
    b.last_error = Some(format!("{way} NOTIFICATION {n}"));
    b.last_notification = Some(NotificationInfo::new(direction, &n));
}

#[test]
fn a_healthy_cpe_passes_every_step() {
    let d = Case::ipsec().run();
    assert!(d.ok(), "{d}");
    let t = d.tunnel(TunnelId::A).expect("a");
    for s in &t.steps {
        assert_eq!(s.verdict, Verdict::Pass, "{d}");
        assert!(s.causes.is_empty());
    }
    let text = d.to_string();
    assert!(text.contains("[PASS] 1. IKEv2 SA up and stable"), "{text}");
    assert!(
        text.contains("[PASS] 4. ping tunnel IP to tunnel IP"),
        "{text}"
    );
    assert!(
        text.contains("Result: every step passes on every tunnel."),
        "{text}"
    );
}

#[test]
fn a_datapath_missing_its_guard_fails_before_ciscos_tree() {
    let mut after = status(Mode::Ipsec, healthy_tunnel());
    after.datapath.kernel.hooks = vec![crate::status::HookState {
        program: "vc_wan_guard".into(),
        device: "wan0".into(),
        direction: crate::datapath::Direction::Egress,
        presence: crate::status::Presence::Missing,
    }];
    let d = diagnose(&Observation {
        status: after,
        before: None,
        pings: vec![ping(3)],
    });
    assert!(!d.ok(), "{d}");
    assert_eq!(d.datapath_faults, ["vc_wan_guard on wan0 egress: MISSING"]);
    let text = d.to_string();
    assert!(text.contains("[FAIL] the datapath is not whole"), "{text}");
    assert!(text.contains("Result: the datapath is not whole"), "{text}");
    // The tunnels' own steps are judged as usual.
    assert!(
        d.tunnel(TunnelId::A).expect("a").first_failure.is_none(),
        "{d}"
    );
}

#[test]
fn external_ipsec_mode_leaves_the_ipsec_steps_to_another_box() {
    let d = Case::external().run();
    assert!(d.ok(), "{d}");
    let t = d.tunnel(TunnelId::A).expect("a");
    assert_eq!(t.step(Step::IkeSa).verdict, Verdict::NotApplicable);
    assert_eq!(t.step(Step::ChildSa).verdict, Verdict::NotApplicable);
    for s in [Step::Keepalives, Step::Ping, Step::Bgp, Step::Routes] {
        assert_eq!(t.step(s).verdict, Verdict::Pass, "{s:?}\n{d}");
    }
    assert!(d.to_string().contains("[ n/a] 2. IPsec child SA"), "{d}");
}

#[test]
fn ike_failures_are_step_1_with_their_cause() {
    let cases = [
        (
            Failure::NoProposalChosen { ike: true },
            "received NO_PROPOSAL_CHOSEN notify error",
            Cause::IkeProposalMismatch,
            "ike_proposals",
        ),
        (
            Failure::AuthenticationFailed,
            "received AUTHENTICATION_FAILED notify error",
            Cause::PskOrIdentity,
            "ike_psk",
        ),
        (
            Failure::PeerUnreachable { port: None },
            "giving up after 5 retransmits",
            Cause::PeerUnreachable,
            "UDP 500/4500",
        ),
        (
            Failure::Notify("INTERNAL_ADDRESS_FAILURE".into()),
            "received INTERNAL_ADDRESS_FAILURE notify error",
            Cause::DcNotify,
            "INTERNAL_ADDRESS_FAILURE",
        ),
    ];
    for (name, line, cause, names) in cases {
        let d = fails_at(Case::ipsec().both(ike_down(name, line)), Step::IkeSa, cause);
        let step = d.tunnel(TunnelId::A).expect("a").step(Step::IkeSa);
        assert!(step.causes[0].text.contains(names), "{d}");
        assert!(
            step.causes[0].evidence[0].contains(line),
            "charon's line is the evidence: {d}"
        );
    }
}

#[test]
fn a_tunnel_routed_out_of_another_wan_is_named_first() {
    let route = |leaves_by: &str| WanRoute {
        tunnel: "vc-dc1".into(),
        wan: "wan1".into(),
        dc: [192, 0, 2, 10].into(),
        leaves_by: Some(leaves_by.into()),
    };
    let down = ike_down(
        Failure::PeerUnreachable { port: None },
        "giving up after 5 retransmits",
    );
    let mut case = Case::ipsec().both(&down);
    case.wan_routes = vec![route("wan0")];
    let d = fails_at(case, Step::IkeSa, Cause::WrongWan);
    let step = d.tunnel(TunnelId::A).expect("a").step(Step::IkeSa);
    assert_eq!(step.causes[0].cause, Cause::WrongWan, "{d}");
    assert!(step.causes[0].evidence[0].contains("leaves by wan0"), "{d}");
    assert!(step.causes[0].text.contains("tunnel.a.wan"), "{d}");

    let mut right = Case::ipsec().both(&down);
    right.wan_routes = vec![route("wan1")];
    let d = fails_at(right, Step::IkeSa, Cause::PeerUnreachable);
    assert!(
        !d.tunnel(TunnelId::A)
            .expect("a")
            .causes()
            .contains(&Cause::WrongWan)
    );
}

#[test]
fn charon_down_and_no_answer_yet_are_named() {
    let mut case = Case::ipsec().both(|t| {
        let i = t.ipsec.as_mut().expect("ipsec");
        i.ike = None;
        i.child = None;
    });
    let mut wedged = case.clone();
    case.charon = Some(CharonStatus::Down {
        reason: "charon exited (status 1)".into(),
    });
    fails_at(case, Step::IkeSa, Cause::CharonDown);
    wedged.charon = Some(CharonStatus::Unresponsive {
        for_s: 30,
        reason: "list-sas: charon did not answer within 10s".into(),
    });
    fails_at(wedged, Step::IkeSa, Cause::CharonUnresponsive);
    let d = fails_at(
        Case::ipsec().both(|t| {
            let i = t.ipsec.as_mut().expect("ipsec");
            i.ike = Some(IkeStatus {
                state: IkeState::Connecting,
                ..IkeStatus::default()
            });
            i.child = None;
        }),
        Step::IkeSa,
        Cause::PeerUnreachable,
    );
    assert!(
        d.tunnel(TunnelId::A)
            .expect("a")
            .causes()
            .contains(&Cause::NotYetUp)
    );
}

#[test]
fn child_sa_failures_are_step_2_with_their_cause() {
    fails_at(
        Case::ipsec().both(child_down(
            Failure::NoProposalChosen { ike: false },
            "received NO_PROPOSAL_CHOSEN notify, no CHILD_SA built",
        )),
        Step::ChildSa,
        Cause::EspProposalMismatch,
    );
    let d = fails_at(
        Case::ipsec().both(child_down(
            Failure::TsUnacceptable,
            "received TS_UNACCEPTABLE notify, no CHILD_SA built",
        )),
        Step::ChildSa,
        Cause::WrongSelectors,
    );
    assert!(d.to_string().contains("cpe_gre_address"), "{d}");
    fails_at(
        Case::ipsec().both(child_down(
            Failure::KernelRefused { policies: false },
            "unable to install inbound and outbound IPsec SA (SAD) in kernel",
        )),
        Step::ChildSa,
        Cause::KernelRefused,
    );
}

#[test]
fn an_installed_child_sa_must_be_tunnel_mode_gre_only_with_vcs_reqid() {
    let child = |f: fn(&mut ChildStatus)| {
        move |t: &mut TunnelStatus| {
            f(t.ipsec
                .as_mut()
                .and_then(|i| i.child.as_mut())
                .expect("child"));
        }
    };
    // "IP" instead of "GRE", or a subnet instead of the host.
    for bad in [
        child(|c| c.remote_ts = vec!["198.18.1.1/32".into()]),
        child(|c| c.local_ts = vec!["198.51.100.0/24[gre]".into()]),
        child(|c| c.remote_ts.push("198.18.1.2/32[gre]".into())),
    ] {
        let d = fails_at(
            Case::ipsec().both(bad),
            Step::ChildSa,
            Cause::WrongSelectors,
        );
        assert!(
            d.to_string()
                .contains("expected 198.51.100.1/32[gre] ⇄ 198.18.1.1/32[gre]")
        );
    }
    fails_at(
        Case::ipsec().both(child(|c| c.mode = ChildMode::Transport)),
        Step::ChildSa,
        Cause::WrongMode,
    );
    fails_at(
        Case::ipsec().both(child(|c| c.reqid = 7)),
        Step::ChildSa,
        Cause::WrongReqid,
    );
}

/// No keepalive heard for three intervals.
fn keepalives_unanswered(t: &mut TunnelStatus) {
    t.keepalive.replies = 0;
    t.keepalive.reflected = 0;
    t.keepalive.missed = 3;
    t.keepalive.alive = false;
}

fn esp(t: &mut TunnelStatus, packets_in: u64, packets_out: u64) {
    let c = t
        .ipsec
        .as_mut()
        .and_then(|i| i.child.as_mut())
        .expect("child");
    c.packets_in += packets_in;
    c.packets_out += packets_out;
}

#[test]
fn keepalives_off_on_the_dc_while_traffic_flows() {
    let d = fails_at(
        Case::ipsec().both(keepalives_unanswered).during(|t| {
            esp(t, 3, 3);
            t.counters.rx_packets += 3;
        }),
        Step::Keepalives,
        Cause::KeepaliveDisabledOnDc,
    );
    let text = d.to_string();
    assert!(text.contains("keepalive_interval_s = 0"), "{text}");
    assert!(
        text.contains("ESP packets in: 503 (+3 during the probe)"),
        "{text}"
    );
    // External IPsec: decapsulated GRE and the ping are the evidence.
    fails_at(
        Case::external()
            .both(keepalives_unanswered)
            .during(|t| t.counters.rx_packets += 3),
        Step::Keepalives,
        Cause::KeepaliveDisabledOnDc,
    );
}

#[test]
fn esp_out_without_esp_in_is_a_firewall_on_the_path() {
    let d = fails_at(
        Case::ipsec()
            .both(keepalives_unanswered)
            .during(|t| esp(t, 0, 4))
            .ping(Some(0)),
        Step::Keepalives,
        Cause::EspBlocked,
    );
    assert!(d.to_string().contains("ESP (IP 50) or UDP 4500"), "{d}");
}

#[test]
fn esp_in_but_nothing_decapsulated_points_at_the_drop_counters() {
    let d = fails_at(
        Case::ipsec()
            .both(keepalives_unanswered)
            .during(|t| esp(t, 4, 4))
            .drops(DropReason::NoSecpath, 10, 14)
            .drops(DropReason::WrongSa, 2, 2)
            .ping(Some(0)),
        Step::Keepalives,
        Cause::GreDropped,
    );
    let t = d.tunnel(TunnelId::A).expect("a");
    let evidence = t.step(Step::Keepalives).causes[0].evidence.join("\n");
    assert!(
        evidence.contains("wan_rx no_secpath (GRE arrived without IPsec"),
        "{evidence}"
    );
    assert!(!evidence.contains("wrong_sa"), "not moving: {evidence}");
}

#[test]
fn nothing_back_at_all_is_the_path_or_the_dcs_gre() {
    // Counters from before the fault do not count: nothing moved during the probe.
    let d = fails_at(
        Case::external().both(keepalives_unanswered).ping(Some(0)),
        Step::Keepalives,
        Cause::PathDown,
    );
    assert!(d.to_string().contains("198.18.1.1"), "{d}");
    assert!(
        d.to_string()
            .contains("ping 100.64.0.2 from 100.64.0.1: 0/3")
    );
}

#[test]
fn right_after_start_keepalives_are_not_yet_judged() {
    let young = {
        let mut s = status(Mode::ExternalIpsec, healthy_tunnel());
        s.uptime_s = 2;
        s.tunnels[0].ipsec = None;
        s.tunnels[0].keepalive.replies = 0;
        s.tunnels[0].keepalive.reflected = 0;
        s.tunnels[0].keepalive.sent = 1;
        diagnose(&Observation {
            status: s,
            before: None,
            pings: Vec::new(),
        })
    };
    let t = young.tunnel(TunnelId::A).expect("a");
    assert_eq!(t.first_failure, Some(Step::Keepalives), "{young}");
    assert_eq!(t.causes()[0], Cause::NotYetUp, "{young}");
    assert_eq!(
        t.step(Step::Ping).verdict,
        Verdict::NotChecked,
        "after a failure"
    );
}

#[test]
fn keepalives_off_here_are_judged_by_the_dcs_or_not_at_all() {
    let off = |t: &mut TunnelStatus| {
        t.keepalive.enabled = false;
        t.keepalive.sent = 0;
        t.keepalive.replies = 0;
        t.keepalive.liveness = vec![LivenessSignal::DcKeepalives, LivenessSignal::ChildSa];
    };
    let d = Case::ipsec().both(off).run();
    assert!(d.ok(), "{d}");
    assert_eq!(
        d.tunnel(TunnelId::A)
            .expect("a")
            .step(Step::Keepalives)
            .verdict,
        Verdict::Pass
    );
    let d = Case::ipsec()
        .both(off)
        .both(|t| {
            t.keepalive.reflected = 0;
            t.keepalive.liveness = vec![LivenessSignal::ChildSa, LivenessSignal::BgpSession];
        })
        .run();
    assert!(d.ok(), "{d}");
    let step = d.tunnel(TunnelId::A).expect("a").step(Step::Keepalives);
    assert_eq!(step.verdict, Verdict::NotApplicable);
    assert!(
        step.detail.contains("liveness from child SA, BGP session"),
        "{d}"
    );
    // Ours off, the DC's decide, and they stopped: the step fails.
    let d = Case::ipsec()
        .both(off)
        .both(|t| t.keepalive.missed = 3)
        .run();
    let step = d.tunnel(TunnelId::A).expect("a").step(Step::Keepalives);
    assert_eq!(step.verdict, Verdict::Fail, "{d}");
    assert!(
        step.detail
            .contains("liveness from the DC's keepalives reflected"),
        "{d}"
    );
}

#[test]
fn gre_up_but_no_ping_answer_is_the_tunnel_ip_or_mask() {
    let d = fails_at(
        Case::ipsec()
            .both(|t| {
                bgp_down(t);
                bgp(t).connect_timeouts = 2;
                bgp(t).connect_attempts = 3;
            })
            .ping(Some(0)),
        Step::Ping,
        Cause::WrongTunnelIp,
    );
    let text = d.to_string();
    assert!(
        text.contains("BGP connects to 100.64.0.2 timed out 2 time(s)"),
        "{text}"
    );
    assert!(text.contains("cpe_tunnel_ip (100.64.0.1/30)"), "{text}");
}

#[test]
fn no_probe_is_skipped_not_failed() {
    let d = Case::ipsec().ping(None).run();
    assert!(d.ok(), "{d}");
    assert_eq!(
        d.tunnel(TunnelId::A).expect("a").step(Step::Ping).verdict,
        Verdict::Skipped
    );
}

#[test]
fn bgp_failures_are_step_5_with_their_cause() {
    // Wrong ASN: the DC's OPEN has another AS than the form's (we sent 2/2)...
    let d = fails_at(
        Case::ipsec().both(|t| {
            bgp_down(t);
            notified(bgp(t), Direction::Sent, 2, 2, &[0xfd, 0xe8]);
        }),
        Step::Bgp,
        Cause::WrongAsn,
    );
    assert!(
        d.to_string()
            .contains("the DC's OPEN carries AS 65000, not tunnel.a.cisco_asn (64601)"),
        "{d}"
    );
    // ...or the DC refuses ours (it sent 2/2).
    let d = fails_at(
        Case::ipsec().both(|t| {
            bgp_down(t);
            notified(bgp(t), Direction::Received, 2, 2, &[]);
        }),
        Step::Bgp,
        Cause::WrongAsn,
    );
    assert!(d.to_string().contains("cpe_asn"), "{d}");
    // The host's MD5 counters rose (the other tunnel's password is wrong), but this session
    // exchanged a NOTIFICATION, so its own password is right: the ASN only.
    let d = fails_at(
        Case::ipsec().both(|t| {
            bgp_down(t);
            let b = bgp(t);
            notified(b, Direction::Sent, 2, 2, &[0xfd, 0xe8]);
            b.likely_password_mismatch = true;
            b.diagnosis = Some("likely TCP-MD5 password mismatch: 17 segment(s)".into());
        }),
        Step::Bgp,
        Cause::WrongAsn,
    );
    assert_eq!(
        d.tunnel(TunnelId::A).expect("a").causes(),
        [Cause::WrongAsn],
        "{d}"
    );
    assert!(d.to_string().contains("another session's"), "{d}");
    // TCP-MD5: the speaker's own diagnosis says so.
    let d = fails_at(
        Case::ipsec().both(|t| {
            bgp_down(t);
            let b = bgp(t);
            b.connect_timeouts = 1;
            b.likely_password_mismatch = true;
            b.diagnosis = Some(
                "likely TCP-MD5 password mismatch: 3 segment(s) with a bad signature dropped by \
                 this host's kernel (TCPMD5Failure)"
                    .into(),
            );
        }),
        Step::Bgp,
        Cause::BgpPasswordMismatch,
    );
    assert!(d.to_string().contains("TCPMD5Failure"), "{d}");
    assert_eq!(d.tunnel(TunnelId::A).expect("a").causes().len(), 1, "{d}");
    // Ping works, TCP 179 does not: the neighbour address.
    fails_at(
        Case::ipsec().both(|t| {
            bgp_down(t);
            bgp(t).connect_timeouts = 3;
        }),
        Step::Bgp,
        Cause::WrongNeighbourIp,
    );
    // The DC closes with a Cease.
    fails_at(
        Case::ipsec().both(|t| {
            bgp_down(t);
            notified(bgp(t), Direction::Received, 6, 3, &[]);
        }),
        Step::Bgp,
        Cause::WrongNeighbourIp,
    );
    // Anything else is named as such.
    fails_at(
        Case::ipsec().both(|t| {
            bgp_down(t);
            notified(bgp(t), Direction::Received, 4, 0, &[]);
        }),
        Step::Bgp,
        Cause::BgpNotification,
    );
}

#[test]
fn route_faults_are_step_6() {
    // The DC sends only the /24: its /25 is missing.
    let d = fails_at(
        Case::ipsec().both(|t| {
            t.accepted_prefixes = vec![net("203.0.113.0/24")];
            bgp(t).received = 1;
            bgp(t).accepted = 1;
        }),
        Step::Routes,
        Cause::PrefixMissing,
    );
    assert!(
        d.to_string().contains("does not send 203.0.113.0/25"),
        "{d}"
    );
    // It sends DC2's /25 instead (rejected on this tunnel).
    let d = fails_at(
        Case::ipsec().both(|t| {
            t.accepted_prefixes = vec![net("203.0.113.0/24")];
            bgp(t).received = 2;
            bgp(t).accepted = 1;
            bgp(t).rejected = 1;
        }),
        Step::Routes,
        Cause::WrongPrefixesFromCisco,
    );
    assert_eq!(
        d.tunnel(TunnelId::A).expect("a").causes(),
        [Cause::PrefixMissing, Cause::WrongPrefixesFromCisco]
    );
    fails_at(
        Case::ipsec().both(|t| bgp(t).advertised = 0),
        Step::Routes,
        Cause::DefaultNotAdvertised,
    );
    // Everything there, plus something extra: a warning, not a failure.
    let d = Case::ipsec()
        .both(|t| {
            bgp(t).received = 3;
            bgp(t).rejected = 1;
        })
        .run();
    assert!(d.ok(), "{d}");
    assert_eq!(
        d.tunnel(TunnelId::A).expect("a").step(Step::Routes).verdict,
        Verdict::Warn
    );
}

#[test]
fn flaps_warn_without_failing() {
    let d = Case::ipsec()
        .both(|t| {
            t.ipsec.as_mut().expect("ipsec").ike_ups = 4;
            bgp(t).flaps = 2;
            bgp(t).last_error = Some("received NOTIFICATION 4/0 Hold Timer Expired".into());
        })
        .run();
    assert!(d.ok(), "{d}");
    let t = d.tunnel(TunnelId::A).expect("a");
    assert_eq!(t.step(Step::IkeSa).verdict, Verdict::Warn);
    assert_eq!(t.step(Step::IkeSa).causes[0].cause, Cause::IkeUnstable);
    assert_eq!(t.step(Step::Bgp).verdict, Verdict::Warn);
    assert_eq!(t.step(Step::Bgp).causes[0].cause, Cause::BgpUnstable);
    assert!(d.to_string().contains("[WARN] 5. BGP session Established"));
}

#[test]
fn the_checklist_points_at_the_first_failure_and_json_round_trips() {
    let d = Case::ipsec()
        .both(|t| {
            bgp_down(t);
            bgp(t).likely_password_mismatch = true;
            bgp(t).diagnosis = Some("likely TCP-MD5 password mismatch".into());
        })
        .run();
    let text = d.to_string();
    for line in [
        "Tunnel A → DC1 (vc-dc1): GRE 198.51.100.1 → 198.18.1.1, tunnel IP 100.64.0.1/30 → 100.64.0.2",
        "[PASS] 4. ping tunnel IP to tunnel IP",
        "[FAIL] 5. BGP session Established",
        "likely cause (BGP password mismatch): BGP password (TCP-MD5) mismatch",
        "evidence: agent: likely TCP-MD5 password mismatch",
        "[ -- ] 6. routes",
        "=> first failing step: 5. BGP session Established",
        "Result: tunnel A fails at step 5 (BGP session Established), likely BGP password mismatch.",
    ] {
        assert!(text.contains(line), "{line:?} missing:\n{text}");
    }
    let json = serde_json::to_string(&d).expect("json");
    assert!(json.contains("\"first_failure\":\"bgp\""), "{json}");
    assert!(
        json.contains("\"cause\":\"bgp_password_mismatch\""),
        "{json}"
    );
    let back: Diagnosis = serde_json::from_str(&json).expect("parse");
    assert_eq!(back, d);
}
