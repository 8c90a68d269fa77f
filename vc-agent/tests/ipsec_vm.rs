//! GRE over IPsec with real ESP, in the test VM (Debian 12's kernel; this host's has no ESP):
//! vc's controller and charon in a "CPE" namespace against a strongSwan responder in a "DC"
//! namespace, kernel `ip_gre` on both sides, no `ip xfrm state` by hand (every SA comes from
//! IKE). Egress captures on both ends of the WAN are the judge of what crossed it.
//!
//! Each test is one VM boot; related checks share a boot.
use std::time::{Duration, Instant};

use vc_agent::{
    config::{Config, TunnelId},
    ipsec::{CharonState, ChildMode, Failure, Snapshot, conn},
};
use vc_fixtures::ike_lab::{self, BGP_PASSWORD, Lab, Options, PSK};
use vc_testkit::{capture::Kind, traffic::Pinger, vm};

const A: TunnelId = TunnelId::A;

/// A change to the DC's connection.
type Tweak = fn(&mut vc_testkit::charon::Conn);

fn child_up(s: &Snapshot) -> bool {
    s.sas.tunnel(A).child_up()
}

fn spi_in(s: &Snapshot) -> String {
    s.sas
        .tunnel(A)
        .child
        .as_ref()
        .map(|c| c.spi_in.clone())
        .unwrap_or_default()
}

fn charon_pid(s: &Snapshot) -> Option<u32> {
    match s.charon {
        CharonState::Up { pid, .. } => pid,
        _ => None,
    }
}

/// vc initiates, IKE and child SA come up (tunnel mode, GRE-only selectors, reqid 1001),
/// GRE crosses, and the wire carries only IKE and ESP; a clear GRE tunnel next to it is
/// caught by the same check (negative control). Secrets appear in no log.
#[test]
fn esp_tunnel_carries_gre_and_only_ike_and_esp_cross() {
    if !vm::inside_or_boot("esp_tunnel_carries_gre_and_only_ike_and_esp_cross") {
        return;
    }
    let lab = Lab::new("esp", Options::default());
    let dc = lab.start_dc(|_| {});
    let t0 = Instant::now();
    let vc = lab.start_vc(lab.config(""));
    let snap = vc.wait(Duration::from_mins(1), "child SA up", child_up);
    let up_after = t0.elapsed();

    let t = snap.sas.tunnel(A);
    let (ike, child) = (
        t.ike.as_ref().expect("ike"),
        t.child.as_ref().expect("child"),
    );
    assert!(ike.initiator, "the CPE initiates (R8)");
    assert_eq!(child.mode, ChildMode::Tunnel);
    assert_eq!(child.reqid, conn::reqid(A));
    assert_eq!(child.local_ts, ["198.51.100.1/32[gre]"]);
    assert_eq!(child.remote_ts, ["198.51.100.2/32[gre]"]);
    assert!(!child.encap, "no NAT here: plain ESP");
    assert_eq!(child.proposal, "AES_GCM_16_256");
    // The kernel holds exactly the SAs IKE negotiated: two, tunnel mode, reqid 1001.
    let states = lab.cpe.ip(&["xfrm", "state"]).expect("xfrm state");
    assert_eq!(states.matches("proto esp").count(), 2, "{states}");
    assert_eq!(
        states.matches("reqid 1001 mode tunnel").count(),
        2,
        "{states}"
    );
    assert!(states.contains("rfc4106(gcm(aes))"), "{states}");
    // The inbound SA's anti-replay window is the configured 1024 (voice QoS reordering).
    assert!(states.contains("replay_window 1024"), "{states}");

    lab.kernel_gre();
    let (near, far) = lab.capture("esp");
    let replies = lab.ping(20);
    let (near, far) = (near.stop().expect("capture"), far.stop().expect("capture"));
    eprintln!("{near}\n{far}");
    assert_eq!(replies, 20, "ping over GRE over ESP");
    near.assert_only_ike_and_esp();
    far.assert_only_ike_and_esp();
    assert!(near.count(Kind::Esp) >= 20 && far.count(Kind::Esp) >= 20);

    // Negative control: a GRE tunnel to an address no policy covers goes out in clear, and
    // the same capture check sees it.
    lab.dc
        .ip(&["addr", "add", "198.51.100.9/24", "dev", "wan"])
        .expect("addr");
    lab.cpe
        .sh(
            "ip link add gre9 type gre local 198.51.100.1 remote 198.51.100.9 ttl 64; \
             ip addr add 100.64.99.2/30 dev gre9; ip link set gre9 up",
        )
        .expect("gre9");
    lab.dc
        .sh(
            "ip link add gre9 type gre local 198.51.100.9 remote 198.51.100.1 ttl 64; \
             ip addr add 100.64.99.1/30 dev gre9; ip link set gre9 up",
        )
        .expect("gre9");
    let (near, far) = lab.capture("clear");
    let out = lab
        .cpe
        .sh_output("ping -n -q -c 5 -i 0.1 -W 2 100.64.99.1")
        .expect("ping");
    let (near, far) = (near.stop().expect("capture"), far.stop().expect("capture"));
    eprintln!("negative control: {near}\n{far}");
    assert!(out.status.success(), "the clear GRE tunnel works");
    assert!(
        near.count(Kind::Gre) >= 5 && far.count(Kind::Gre) >= 5,
        "clear GRE not seen:\n{near}\n{far}"
    );
    assert!(
        !near.not_ike_or_esp().is_empty(),
        "the check must flag clear GRE"
    );

    // The ESP keys the kernel holds appear in no log either (charon logs at level 1).
    let keys: Vec<String> = states
        .split_whitespace()
        .filter(|w| w.starts_with("0x") && w.len() > 40)
        .map(|w| w[2..].to_string())
        .collect();
    assert_eq!(keys.len(), 2, "{states}");
    let agent_log = vc.stop(false);
    for key in &keys {
        assert!(
            !lab.vc_charon_log().contains(key.as_str()) && !dc.log().contains(key.as_str()),
            "an ESP key in charon's log"
        );
    }
    for (what, log) in [
        ("agent", agent_log),
        ("vc charon", lab.vc_charon_log()),
        ("dc charon", dc.log()),
    ] {
        assert!(
            !log.contains(PSK) && !log.contains(BGP_PASSWORD),
            "a secret in the {what} log"
        );
    }
    eprintln!("MEASURE time from Ipsec::start to child SA up: {up_after:?}");
}

/// With GRE flowing, (a) the child SA is deleted, (b) the agent and charon are stopped, (c)
/// charon is killed (SIGKILL): the egress captures show zero clear GRE throughout, and traffic
/// resumes after recovery (a: charon's trap; b: the next agent start) or restart (c: the
/// running agent restarts charon).
#[test]
fn gre_never_leaves_in_clear_when_the_sa_or_charon_goes() {
    if !vm::inside_or_boot("gre_never_leaves_in_clear_when_the_sa_or_charon_goes") {
        return;
    }
    let lab = Lab::new("fc", Options::default());
    let _dc = lab.start_dc(|_| {});
    let config = lab.config("");
    let vc = lab.start_vc(config.clone());
    let snap = vc.wait(Duration::from_mins(1), "child SA up", child_up);
    lab.kernel_gre();
    assert_eq!(lab.ping(3), 3);
    let (near, far) = lab.capture("failclosed");
    let pinger = lab.pinger("failclosed");
    pinger
        .wait_replies(10, Duration::from_secs(20))
        .expect("traffic flows");

    let snap = child_sa_deleted(&vc, &pinger, &snap);
    let vc = charon_stopped(&lab, vc, &pinger, &snap, config);
    charon_killed(&lab, &vc, &pinger);

    let stats = pinger.stop().expect("ping stats");
    let (near, far) = (near.stop().expect("capture"), far.stop().expect("capture"));
    eprintln!("{near}\n{far}\nMEASURE ping over the three failures: {stats:?}");
    assert_eq!(
        near.count(Kind::Gre) + far.count(Kind::Gre),
        0,
        "clear GRE on the wire"
    );
    // While charon is stopped the CPE answers the DC's IKE (DPD) with ICMP port unreachable:
    // allowed; anything else must be IKE or ESP.
    for capture in [&near, &far] {
        let bad: Vec<&str> = capture
            .not_ike_or_esp()
            .into_iter()
            .map(|p| p.line.as_str())
            .filter(|l| {
                !(l.contains(": ICMP ")
                    && (l.contains("udp port 500 unreachable")
                        || l.contains("udp port 4500 unreachable")))
            })
            .collect();
        assert!(
            bad.is_empty(),
            "{}: not IKE or ESP:\n{}",
            capture.label,
            bad.join("\n")
        );
        assert!(capture.count(Kind::Esp) > 0);
    }
}

/// (a) the child SA is deleted under traffic; charon's trap brings a new one.
fn child_sa_deleted(vc: &ike_lab::Vc, pinger: &Pinger, snap: &Snapshot) -> Snapshot {
    let old_spi = spi_in(snap);
    let t = Instant::now();
    vc.call(async |i| i.terminate(A, false).await)
        .expect("terminate child");
    let snap = vc.wait(Duration::from_mins(1), "a new child SA", |s| {
        child_up(s) && spi_in(s) != old_spi
    });
    let resumed = pinger
        .wait_replies(10, Duration::from_secs(30))
        .expect("traffic resumes after (a)");
    eprintln!(
        "MEASURE (a) child SA deleted: new child after {:?}, traffic back {resumed:?} after that",
        t.elapsed()
    );
    snap
}

/// (b) the agent stops and charon with it (SIGTERM: it deletes its SAs and policies); 3 s
/// later the next agent starts.
fn charon_stopped(
    lab: &Lab,
    vc: ike_lab::Vc,
    pinger: &Pinger,
    snap: &Snapshot,
    config: Config,
) -> ike_lab::Vc {
    let old_pid = charon_pid(snap).expect("pid");
    let t = Instant::now();
    drop(vc.stop(true));
    assert!(
        !std::path::Path::new(&format!("/proc/{old_pid}/exe")).exists(),
        "charon stopped"
    );
    let policies = lab.cpe.ip(&["xfrm", "policy"]).expect("xfrm");
    assert!(
        !policies.contains("tmpl"),
        "charon's policies are gone:\n{policies}"
    );
    assert!(
        policies.contains("action block"),
        "vc's block policies stay:\n{policies}"
    );
    let before = pinger.replies();
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        pinger.replies(),
        before,
        "no replies while charon is stopped"
    );
    let vc = lab.start_vc(config);
    vc.wait(
        Duration::from_mins(1),
        "child SA up after restart",
        child_up,
    );
    let resumed = pinger
        .wait_replies(10, Duration::from_secs(30))
        .expect("traffic resumes after (b)");
    eprintln!(
        "MEASURE (b) charon stopped 3 s, agent restarted: traffic back {:?} after the stop ({resumed:?} after restart)",
        t.elapsed()
    );
    vc
}

/// (c) charon is killed with SIGKILL: it cannot clean up; the running agent notices and restarts it.
fn charon_killed(lab: &Lab, vc: &ike_lab::Vc, pinger: &Pinger) {
    let old_pid = charon_pid(&vc.snapshot()).expect("pid");
    let t = Instant::now();
    lab.cpe.sh(&format!("kill -KILL {old_pid}")).expect("kill");
    let snap = vc.wait(
        Duration::from_mins(1),
        "a new charon with a child SA",
        |s| charon_pid(s).is_some_and(|p| p != old_pid) && child_up(s),
    );
    let resumed = pinger
        .wait_replies(10, Duration::from_secs(30))
        .expect("traffic resumes after (c)");
    eprintln!(
        "MEASURE (c) charon SIGKILLed: new charon {:?} with a child SA after {:?}, traffic back {resumed:?} after that",
        charon_pid(&snap),
        t.elapsed()
    );
}

/// Child SAs rekeyed twice and the IKE SA once under 20 pps of GRE, with short lifetimes: no
/// clear GRE, and the loss is measured.
#[test]
fn rekey_under_traffic_loses_nothing_in_clear() {
    if !vm::inside_or_boot("rekey_under_traffic_loses_nothing_in_clear") {
        return;
    }
    let lab = Lab::new("rk", Options::default());
    let _dc = lab.start_dc(|_| {});
    // Child rekeys at 18 s (minus up to 1 s), IKE at 27 s (minus up to 1.5 s).
    let vc = lab.start_vc(lab.config("esp_lifetime_s = 20\nike_lifetime_s = 30\n"));
    // charon's own event stream, kept as a replay fixture (vc-agent/src/ipsec/sa/testdata).
    let recorder = ike_lab::Recorder::start(
        lab.run_dir.join("charon.vici"),
        lab.dir.join("rekey-events.vici"),
    );
    vc.wait(Duration::from_mins(1), "child SA up", child_up);
    lab.kernel_gre();
    assert_eq!(lab.ping(3), 3);
    let (near, far) = lab.capture("rekey");
    let pinger = lab.pinger("rekey");
    let t = Instant::now();
    let snap = vc.wait(
        Duration::from_secs(90),
        "two child rekeys and one IKE rekey",
        |s| {
            let t = s.sas.tunnel(A);
            t.child_rekeys >= 2 && t.ike_rekeys >= 1
        },
    );
    // Let the last rekey's old SA be deleted under traffic too.
    std::thread::sleep(Duration::from_secs(6));
    let stats = pinger.stop().expect("ping stats");
    let (near, far) = (near.stop().expect("capture"), far.stop().expect("capture"));
    eprintln!("recorded {} charon events", recorder.stop());
    let tun = snap.sas.tunnel(A);
    eprintln!(
        "{near}\n{far}\nMEASURE rekey: {} child and {} IKE rekeys in {:?}; ping sent {} received {} lost {} ({:.2} %), longest gap {} (lost seqs {:?})",
        tun.child_rekeys,
        tun.ike_rekeys,
        t.elapsed(),
        stats.sent,
        stats.received,
        stats.sent - stats.received,
        stats.loss_percent(),
        stats.longest_gap,
        stats.lost
    );
    near.assert_only_ike_and_esp();
    far.assert_only_ike_and_esp();
    assert!(tun.child_up() && tun.ike_up());
    assert!(
        stats.loss_percent() < 2.0,
        "rekeying lost traffic: {stats:?}"
    );
}

/// GRE transport IPs different from the IPsec addresses (on loopbacks), and a /31 tunnel
/// subnet: selectors follow the GRE IPs, GRE crosses, only IKE and ESP on the wire.
#[test]
fn gre_transport_ips_apart_from_ipsec_and_a_slash31() {
    if !vm::inside_or_boot("gre_transport_ips_apart_from_ipsec_and_a_slash31") {
        return;
    }
    let lab = Lab::new(
        "var",
        Options {
            gre_differs: true,
            slash31: true,
            ..Options::default()
        },
    );
    let _dc = lab.start_dc(|_| {});
    let vc = lab.start_vc(lab.config(""));
    let snap = vc.wait(Duration::from_mins(1), "child SA up", child_up);
    let child = snap.sas.tunnel(A).child.clone().expect("child");
    assert_eq!(child.local_ts, ["192.0.2.1/32[gre]"]);
    assert_eq!(child.remote_ts, ["192.0.2.2/32[gre]"]);
    let ike = snap.sas.tunnel(A).ike.clone().expect("ike");
    assert!(
        ike.local.starts_with("198.51.100.1[") && ike.remote.starts_with("198.51.100.2["),
        "{ike:?}"
    );
    lab.kernel_gre();
    let (near, far) = lab.capture("variants");
    let replies = lab.ping(10);
    let (near, far) = (near.stop().expect("capture"), far.stop().expect("capture"));
    eprintln!("{near}\n{far}");
    assert_eq!(
        replies,
        10,
        "ping 100.64.10.0/31 -> .1 over GRE 192.0.2.1 -> 192.0.2.2 over ESP\n{}",
        lab.diagnose()
    );
    near.assert_only_ike_and_esp();
    far.assert_only_ike_and_esp();
    // ESP's outer addresses are the IPsec addresses, not the GRE transport IPs.
    assert!(
        near.lines
            .iter()
            .filter(|p| p.kind == Kind::Esp)
            .all(|p| p.line.contains("198.51.100.1 > 198.51.100.2"))
    );
}

/// NAT traversal: the CPE behind a masquerading NAT; IKE floats to 4500 and ESP is
/// UDP-encapsulated, so past the NAT only UDP 4500 is seen.
#[test]
fn nat_traversal_uses_only_udp_4500_past_the_nat() {
    if !vm::inside_or_boot("nat_traversal_uses_only_udp_4500_past_the_nat") {
        return;
    }
    let lab = Lab::new(
        "nat",
        Options {
            nat: true,
            ..Options::default()
        },
    );
    let _dc = lab.start_dc(|_| {});
    let vc = lab.start_vc(lab.config(""));
    let snap = vc.wait(Duration::from_mins(1), "child SA up", child_up);
    let t = snap.sas.tunnel(A);
    assert!(
        t.ike.as_ref().is_some_and(|i| i.nat),
        "NAT detected: {:?}",
        t.ike
    );
    assert!(
        t.child.as_ref().is_some_and(|c| c.encap),
        "ESP in UDP: {:?}",
        t.child
    );
    lab.kernel_gre();
    let (near, far) = lab.capture("nat");
    let replies = lab.ping(10);
    let (near, far) = (near.stop().expect("capture"), far.stop().expect("capture"));
    eprintln!("{near}\n{far}");
    assert_eq!(replies, 10, "{}", lab.diagnose());
    for c in [&near, &far] {
        c.assert_only_ike_and_esp();
        assert!(
            c.lines.iter().all(|p| p.udp_ports == Some((4500, 4500))),
            "{}: not all UDP 4500:\n{:#?}",
            c.label,
            c.lines
        );
    }
}

/// An ESP proposal mismatch, an IKE proposal mismatch and a wrong PSK, each against a DC
/// that can install ESP, each named.
#[test]
fn proposal_mismatches_and_a_wrong_psk_are_named() {
    if !vm::inside_or_boot("proposal_mismatches_and_a_wrong_psk_are_named") {
        return;
    }
    let cases: [(&str, Tweak, Failure); 3] = [
        (
            "esp",
            |c| c.esp_proposals = "aes128-sha256".into(),
            Failure::NoProposalChosen { ike: false },
        ),
        (
            "ike",
            |c| c.proposals = "aes128-sha256-modp2048".into(),
            Failure::NoProposalChosen { ike: true },
        ),
        (
            "psk",
            |c| c.psk = "not-the-psk".into(),
            Failure::AuthenticationFailed,
        ),
    ];
    for (tag, tweak, want) in cases {
        let lab = Lab::new(tag, Options::default());
        let _dc = lab.start_dc(tweak);
        let vc = lab.start_vc(lab.config(""));
        let snap = vc.wait(Duration::from_mins(1), "a named failure", |s| {
            s.sas.tunnel(A).last_error.is_some()
        });
        let e = snap.sas.tunnel(A).last_error.clone().expect("error");
        eprintln!("{tag}: {} ({:?})", e.failure, e.line);
        assert_eq!(e.failure, want, "{tag}");
        assert!(!snap.sas.tunnel(A).child_up());
        drop(vc);
    }
}
