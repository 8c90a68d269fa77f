//! The whole agent in IPsec mode, end to end, in the test VM (this host's kernel has no ESP
//! and no GRE): the real `vc-agent run` binary on the CPE of the simulated region that `cargo
//! xtask lab` shows (`vc_testkit::region`), against DC1 and DC2 as Cisco's head ends: strongSwan
//! responders, kernel `ip_gre`, BIRD 2, Cisco-format keepalives.
//!
//! One VM boot, phase by phase: both tunnels up (IKE and child SAs with GRE-only selectors and
//! reqids 1001/1002, keepalives both ways, BGP Established, exactly each DC's /25 and the /24
//! accepted), each /25 on its own tunnel (R20) with traffic to prove it, DC2's BGP down and back
//! (R21), and all that time nothing but IKE and ESP on the CPE's WAN; a restart of the agent
//! (SIGTERM, then a new run) that the traffic does not notice (BGP graceful restart, the SAs
//! and the datapath kept); then a clean SIGTERM (a stop for a restart: vc's routes stay) that
//! leaves GRE blocked, even with charon gone.
use std::{
    collections::BTreeSet,
    net::Ipv4Addr,
    path::Path,
    time::{Duration, Instant},
};

use vc_agent::status::{AgentStatus, ChildMode, ChildState, IkeState, Mode};
use vc_fixtures::region_agent::{bring_up, status, tunnel};
use vc_testkit::{
    NetNs,
    capture::{Capture, Kind, Packets},
    region::{
        Region,
        keepalive::send_gre_once,
        plan::{CISCO_PREFIX, CPE_PUBLIC, DC1, DC2, DCS, DcPlan, LAN_HOST},
    },
    traffic::tcp_transfer,
    vm, wait_for,
};

fn set(items: &[impl ToString]) -> BTreeSet<String> {
    items.iter().map(ToString::to_string).collect()
}

#[test]
fn agent_in_ipsec_mode_end_to_end() {
    if !vm::inside_or_boot("agent_in_ipsec_mode_end_to_end") {
        return;
    }
    let mut region = Region::build(Path::new(env!("CARGO_BIN_EXE_vc-agent"))).expect("the region");
    // From before the agent's first packet to the end of the failover.
    let wire = Capture::egress(&region.cpe, "wan0", &region.dir.join("cpe-wan-out.pcap"))
        .expect("capture");
    bring_up(&mut region, "IPsec mode");

    let s = status(&region);
    sas(&region, &s);
    keepalives(&region);
    bgp_and_routes(&region, &s);
    foreign_prefixes_unused(&region);
    each_half_on_its_tunnel(&region);
    failover(&region);

    let seen = wire.stop().expect("capture");
    eprintln!("{seen}");
    seen.assert_only_ike_and_esp();
    assert!(
        seen.count(Kind::Ike) > 0 && seen.count(Kind::Esp) > 100,
        "{seen}"
    );

    restart_is_hitless(&mut region);
    sigterm_leaves_gre_blocked(&mut region);
    no_secret_in_logs(&region);
}

/// R5, R7, R8: both tunnels' IKE SAs up, child SAs in tunnel mode with GRE-only selectors and
/// vc's fixed reqids, as the agent, the kernel and the DCs each see them.
fn sas(region: &Region, s: &AgentStatus) {
    assert_eq!(s.mode, Mode::Ipsec);
    for dc in DCS {
        let t = tunnel(s, dc);
        let ipsec = t.ipsec.as_ref().expect("IPsec status");
        let ike = ipsec.ike.as_ref().expect("IKE SA");
        assert!(ike.up && ike.state == IkeState::Established, "{t}");
        assert!(ike.remote.starts_with(&format!("{}[", dc.ipsec)), "{t}");
        let child = ipsec.child.as_ref().expect("child SA");
        let (cpe_ts, dc_ts) = dc.selectors();
        assert_eq!(child.state, ChildState::Installed, "{t}");
        assert_eq!(child.mode, ChildMode::Tunnel, "{t}");
        assert_eq!(child.reqid, dc.reqid(), "{t}");
        assert_eq!(child.local_ts, std::slice::from_ref(&cpe_ts), "{t}");
        assert_eq!(child.remote_ts, std::slice::from_ref(&dc_ts), "{t}");
        assert_eq!(child.proposal, "AES_GCM_16_256", "{t}");
        let theirs = region.dc(dc.n).sas();
        assert!(
            theirs.child_installed && theirs.child.contains("TUNNEL"),
            "{theirs:?}"
        );
        assert_eq!((theirs.local_ts, theirs.remote_ts), (dc_ts, cpe_ts));
        assert_eq!(theirs.ike_sas, 1, "no duplicate IKE SA at DC{}", dc.n);
    }
    // The kernel holds exactly these SAs: two per tunnel, tunnel mode, reqids 1001 and 1002.
    let states = region.cpe.ip(&["xfrm", "state"]).expect("xfrm state");
    assert_eq!(states.matches("proto esp").count(), 4, "{states}");
    for dc in DCS {
        let reqid = format!("reqid {} mode tunnel", dc.reqid());
        assert_eq!(states.matches(&reqid).count(), 2, "{states}");
    }
    // Every policy that sends to an SA selects GRE between the transport IPs only (R7).
    let policies = region.cpe.ip(&["xfrm", "policy"]).expect("xfrm policy");
    let with_sa: Vec<&str> = policy_blocks(&policies)
        .into_iter()
        .filter(|b| b.contains("tmpl"))
        .collect();
    assert_eq!(with_sa.len(), 6, "out, in, fwd per tunnel:\n{policies}");
    for block in with_sa {
        let selector = block.lines().next().unwrap_or("");
        let gre_only = DCS.iter().any(|dc| {
            selector.trim() == format!("src {CPE_PUBLIC}/32 dst {}/32 proto gre", dc.gre)
                || selector.trim() == format!("src {}/32 dst {CPE_PUBLIC}/32 proto gre", dc.gre)
        });
        assert!(gre_only, "not a GRE-only selector:\n{block}");
    }
}

/// `ip xfrm policy` output, one policy per item.
fn policy_blocks(text: &str) -> Vec<&str> {
    let starts: Vec<usize> = text
        .match_indices("src ")
        .filter(|(i, _)| *i == 0 || text.as_bytes()[i - 1] == b'\n')
        .map(|(i, _)| i)
        .collect();
    starts
        .iter()
        .enumerate()
        .map(|(k, &i)| &text[i..starts.get(k + 1).copied().unwrap_or(text.len())])
        .collect()
}

/// R13: the CPE's keepalives come back through the DCs' `ip_gre`, and the DCs' Cisco
/// keepalives come back through the CPE; the agent counts both.
fn keepalives(region: &Region) {
    let s = wait_for(Duration::from_secs(15), "two keepalives each way", || {
        let s = status(region);
        DCS.iter()
            .all(|dc| {
                let k = &tunnel(&s, dc).keepalive;
                k.replies >= 2 && k.reflected >= 2 && region.dc(dc.n).keepalives().1 >= 2
            })
            .then_some(s)
    })
    .unwrap_or_else(|e| panic!("{e:#}\n{}", region.logs(40)));
    for dc in DCS {
        let k = &tunnel(&s, dc).keepalive;
        assert!(k.enabled && k.alive && k.missed == 0, "{k:?}");
    }
}

/// R16–R19, R22: both sessions Established with the form's ASNs; each accepted exactly its
/// DC's /25 and the /24 and advertised only 0.0.0.0/0; the kernel has them, protocol vc.
fn bgp_and_routes(region: &Region, s: &AgentStatus) {
    for dc in DCS {
        let t = tunnel(s, dc);
        let bgp = t.bgp.as_ref().expect("BGP status");
        assert!(bgp.established, "{t}");
        assert_eq!((bgp.local_asn, bgp.remote_asn), (65010, dc.asn), "{t}");
        assert_eq!(bgp.peer.to_string(), dc.tunnel_ip.to_string(), "{t}");
        assert_eq!((bgp.received, bgp.accepted, bgp.rejected), (2, 2, 0), "{t}");
        assert_eq!(bgp.advertised, 1, "only the default route: {t}");
        let expected: BTreeSet<String> = [dc.prefix.to_string(), CISCO_PREFIX.to_string()].into();
        assert_eq!(set(&t.accepted_prefixes), expected, "{t}");
        assert_eq!(
            region.dc(dc.n).received(),
            ["0.0.0.0/0"],
            "DC{}'s BIRD",
            dc.n
        );
    }
    // The LPM map: each /25 on its tunnel, the /24 on both.
    let lpm: Vec<(String, Vec<String>)> = s
        .datapath
        .routes
        .iter()
        .map(|r| {
            let tunnels = r.tunnels.iter().map(|t| t.key().to_string()).collect();
            (r.prefix.to_string(), tunnels)
        })
        .collect();
    for (prefix, tunnels) in [
        (DC1.prefix, vec!["a"]),
        (DC2.prefix, vec!["b"]),
        (CISCO_PREFIX, vec!["a", "b"]),
    ] {
        assert!(
            lpm.iter().any(|(p, t)| p == prefix && *t == tunnels),
            "{prefix} → {tunnels:?} in {lpm:?}"
        );
    }
    let kernel = region.cpe.sh("ip route show proto 201").expect("routes");
    let lines: BTreeSet<&str> = kernel.lines().map(str::trim).collect();
    let want: BTreeSet<String> = [
        format!("{} via {} dev vc-dc1", DC1.prefix, DC1.tunnel_ip),
        format!("{} via {} dev vc-dc2", DC2.prefix, DC2.tunnel_ip),
        format!("{CISCO_PREFIX} via {} dev vc-dc1", DC1.tunnel_ip),
    ]
    .into();
    assert_eq!(lines, want.iter().map(String::as_str).collect(), "{kernel}");
}

/// R19 from the CPE's side: when DC1 also announces DC2's /25 and a prefix outside Cisco's
/// /24, tunnel A's session keeps them in its Adj-RIB-In, uses neither, and DC2's /25 stays on
/// tunnel B.
fn foreign_prefixes_unused(region: &Region) {
    let dc1 = region.dc(1);
    dc1.announce(&[DC2.prefix, "10.99.0.0/16"])
        .expect("DC1 announces more");
    let s = wait_for(
        Duration::from_secs(15),
        "DC1's four prefixes received",
        || {
            let s = status(region);
            (tunnel(&s, &DC1).bgp.as_ref()?.received == 4).then_some(s)
        },
    )
    .unwrap_or_else(|e| panic!("{e:#}\n{}", region.logs(30)));
    let a = tunnel(&s, &DC1);
    let bgp = a.bgp.as_ref().expect("bgp");
    assert_eq!((bgp.accepted, bgp.rejected), (2, 2), "{a}");
    assert!(bgp.established, "the session stays up: {a}");
    let expected: BTreeSet<String> = [DC1.prefix.to_string(), CISCO_PREFIX.to_string()].into();
    assert_eq!(set(&a.accepted_prefixes), expected, "{a}");
    region.assert_routed_via(DC2.host, "vc-dc2");
    let kernel = region.cpe.sh("ip route show proto 201").expect("routes");
    assert!(
        !kernel.contains("10.99.") && kernel.matches(DC2.prefix).count() == 1,
        "{kernel}"
    );
    dc1.announce(&[]).expect("DC1 back to its two");
    wait_for(Duration::from_secs(15), "DC1 back to two prefixes", || {
        (tunnel(&status(region), &DC1).bgp.as_ref()?.received == 2).then_some(())
    })
    .expect("withdrawn");
}

/// `count` pings from the LAN host; the packets each DC's `ip_gre` received meanwhile.
fn pings_counted(region: &Region, dst: Ipv4Addr, count: u32) -> [u64; 2] {
    let before = [region.dc(1).gre_rx_packets(), region.dc(2).gre_rx_packets()];
    vc_testkit::traffic::ping_burst(&region.lan, None, dst, u64::from(count))
        .unwrap_or_else(|e| panic!("{e:#}\n{}", region.logs(30)));
    [
        region.dc(1).gre_rx_packets() - before[0],
        region.dc(2).gre_rx_packets() - before[1],
    ]
}

/// Asserts that `count` pings to `dst` crossed `via`'s tunnel and not the other's.
fn pings_cross(region: &Region, dst: Ipv4Addr, via: &DcPlan) {
    let count = 20;
    let rx = pings_counted(region, dst, count);
    let (own, other) = (
        rx[usize::from(via.n - 1)],
        rx[usize::from(via.other().n - 1)],
    );
    assert!(own >= u64::from(count), "DC{} saw {own} packets", via.n);
    // Keepalives and BGP cross the other tunnel meanwhile: a few packets, not the pings.
    assert!(other < 10, "DC{} saw {other} packets", via.other().n);
}

/// R20: traffic to DC1's /25 leaves on tunnel A only, to DC2's on tunnel B only, pings and
/// TCP (MSS clamped, fast path) alike.
fn each_half_on_its_tunnel(region: &Region) {
    for dc in DCS {
        region.assert_routed_via(dc.host, &dc.interface());
        pings_cross(region, dc.host, dc);
        let dc_ns: &NetNs = &region.dc(dc.n).ns;
        let port = 5060 + u16::from(dc.n);
        let got = tcp_transfer(&region.lan, dc_ns, dc.host, port, 300_000).expect("TCP");
        assert_eq!(got, 300_000);
        let back = tcp_transfer(dc_ns, &region.lan, LAN_HOST, port + 10, 300_000).expect("TCP");
        assert_eq!(back, 300_000);
    }
    let s = status(region);
    for dc in DCS {
        let c = &tunnel(&s, dc).counters;
        assert!(c.fast_path_packets > 0 && c.mss_clamped > 0, "{c:?}");
    }
}

/// R21: DC2's BGP session goes down: its /25 is withdrawn and its half is reached over
/// tunnel A through the /24 (and Cisco's backbone); DC1's half never moves. Then it returns.
fn failover(region: &Region) {
    let dc2 = region.dc(2);
    let t = Instant::now();
    dc2.bgp_down().expect("birdc disable");
    region
        .wait_route(DC2.host, "vc-dc1", Duration::from_secs(15))
        .unwrap_or_else(|e| panic!("{e:#}\n{}", region.logs(40)));
    eprintln!(
        "MEASURE DC2's BGP down → its /25 via tunnel A: {:?}",
        t.elapsed()
    );
    let s = status(region);
    let b = tunnel(&s, &DC2);
    assert!(!b.bgp.as_ref().expect("bgp").established, "{b}");
    assert!(b.accepted_prefixes.is_empty(), "{b}");
    let kernel = region.cpe.sh("ip route show proto 201").expect("routes");
    assert!(!kernel.contains(DC2.prefix), "{kernel}");
    pings_cross(region, DC2.host, &DC1);
    region.assert_routed_via(DC1.host, "vc-dc1");

    let t = Instant::now();
    dc2.bgp_up().expect("birdc enable");
    region
        .wait_route(DC2.host, "vc-dc2", Duration::from_secs(40))
        .unwrap_or_else(|e| panic!("{e:#}\n{}", region.logs(40)));
    eprintln!(
        "MEASURE DC2's BGP back → its /25 on tunnel B: {:?}",
        t.elapsed()
    );
    pings_cross(region, DC2.host, &DC2);
    let s = status(region);
    assert_eq!(tunnel(&s, &DC2).accepted_prefixes.len(), 2);
}

/// SIGTERM and a new run while the LAN pings both DCs' hosts every 50 ms: vc's kernel routes,
/// the SAs and the datapath stay, each DC's BIRD (graceful restart aware, its default) keeps
/// vc's 0.0.0.0/0 while the agent is away, the new run announces its restart, adopts vc's
/// routes and the SAs, and no ping is lost.
fn restart_is_hitless(region: &mut Region) {
    let routes_before = region.cpe.sh("ip route show proto 201").expect("routes");
    let pings: Vec<_> = DCS
        .iter()
        .map(|dc| {
            let mut cmd = region.lan.command("ping");
            cmd.args(["-n", "-q", "-i", "0.05", "-W", "1", "-w", "8"])
                .arg(dc.host.to_string());
            std::thread::spawn(move || cmd.output().expect("ping"))
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let sigterm = Instant::now();
    let exit = region
        .stop_agent(Duration::from_secs(15))
        .unwrap_or_else(|e| panic!("{e:#}\n{}", region.logs(30)));
    let stopped_in = sigterm.elapsed();
    assert!(exit.success(), "vc-agent exited with {exit}");
    // Away a while: both DCs have seen the TCP connection close, no NOTIFICATION.
    std::thread::sleep(Duration::from_secs(2));
    for dc in DCS {
        let received = region.dc(dc.n).received();
        assert_eq!(
            received,
            ["0.0.0.0/0"],
            "DC{} keeps vc's default route while vc is away",
            dc.n
        );
    }
    assert_eq!(
        region.cpe.sh("ip route show proto 201").expect("routes"),
        routes_before,
        "vc's routes stay while it is away"
    );
    region.start_agent().expect("vc-agent run again");
    let restarted = Instant::now();
    wait_for(
        Duration::from_secs(30),
        "both sessions Established again",
        || {
            let s: AgentStatus = serde_json::from_str(&region.status_json().ok()?).ok()?;
            s.tunnels
                .iter()
                .all(|t| {
                    t.bgp.as_ref().is_some_and(|b| b.established) && t.accepted_prefixes.len() == 2
                })
                .then_some(())
        },
    )
    .unwrap_or_else(|e| panic!("{e:#}\n{}", region.logs(40)));
    let to_established = restarted.elapsed();
    let mut lost = Vec::new();
    for (dc, ping) in DCS.iter().zip(pings) {
        let out = ping.join().expect("ping thread");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let summary = text
            .lines()
            .find(|l| l.contains("packets transmitted"))
            .unwrap_or_default()
            .to_string();
        lost.push(format!("DC{}: {summary}", dc.n));
        assert!(
            summary.contains(" 0% packet loss"),
            "LAN → DC{}'s host during the restart: {text}",
            dc.n
        );
    }
    let log = std::fs::read_to_string(region.agent_log_path()).unwrap_or_default();
    assert!(log.contains("restarted=true"), "the new run is a restart");
    assert!(
        log.contains("kept 3 route(s) of the previous run (graceful restart)"),
        "{log}"
    );
    assert!(
        log.contains("GracefulRestart { restarted: true"),
        "the new run's OPENs announce the restart"
    );
    eprintln!(
        "MEASURE IPsec-mode restart: SIGTERM → exited {stopped_in:?}, away 2 s, new run → both \
         sessions Established with their routes {to_established:?}; pings {}",
        lost.join("; ")
    );
}

/// A clean SIGTERM (a stop for a restart: graceful restart): the agent exits 0, its routes
/// stay for the next run, GRE stays blocked (XFRM block policies and the BPF guard stay); with
/// vc's charon stopped too, GRE cannot leave at all and nothing for Cisco's prefixes leaves in
/// clear, though vc's routes still send it into the tunnels.
fn sigterm_leaves_gre_blocked(region: &mut Region) {
    let wire = Capture::egress(&region.cpe, "wan0", &region.dir.join("cpe-wan-after.pcap"))
        .expect("capture");
    let exit = region
        .stop_agent(Duration::from_secs(15))
        .unwrap_or_else(|e| panic!("{e:#}\n{}", region.logs(30)));
    assert!(exit.success(), "vc-agent exited with {exit}");
    let log = std::fs::read_to_string(region.agent_log_path()).unwrap_or_default();
    assert!(log.contains("agent stopped"), "{log}");
    let kept = region.cpe.sh("ip route show proto 201").expect("routes");
    assert_eq!(kept.lines().count(), 3, "vc's routes stay: {kept}");

    let policies = region.cpe.ip(&["xfrm", "policy"]).expect("xfrm policy");
    for dc in DCS {
        for (src, dst, dir) in [(CPE_PUBLIC, dc.gre, "out"), (dc.gre, CPE_PUBLIC, "in")] {
            let selector = format!("src {src}/32 dst {dst}/32 proto gre");
            assert!(
                policy_blocks(&policies)
                    .iter()
                    .any(|b| b.starts_with(&selector)
                        && b.contains(&format!("dir {dir} action block"))),
                "no block policy {selector} {dir}:\n{policies}"
            );
        }
    }
    let guard = region.cpe.sh("tc filter show dev wan0 egress").expect("tc");
    assert!(guard.contains("vc_wan_guard"), "{guard}");

    // charon outlives the agent by design; stopped too, it takes its SAs and policies along.
    let pid = region.cpe_charon_pid().expect("vc's charon pid");
    region.cpe.sh(&format!("kill -TERM {pid}")).expect("kill");
    wait_for(Duration::from_secs(10), "charon to stop", || {
        (!Path::new(&format!("/proc/{pid}")).exists()).then_some(())
    })
    .expect("charon stops");
    let policies = region.cpe.ip(&["xfrm", "policy"]).expect("xfrm policy");
    assert!(!policies.contains("tmpl"), "{policies}");
    for dc in DCS {
        let sent = send_gre_once(&region.cpe, CPE_PUBLIC, dc.gre);
        assert!(sent.is_err(), "GRE to DC{} was not refused", dc.n);
        let (replied, _) = Region::ping(&region.lan, dc.host, 1);
        assert!(!replied, "DC{}'s host still answers", dc.n);
    }
    // The DCs' IKE retries meet no charon now: let one be answered (ICMP) to see it allowed.
    std::thread::sleep(Duration::from_secs(1));
    let seen = wire.stop().expect("capture");
    eprintln!("after SIGTERM: {seen}");
    after_stop_only_ike(&seen);
}

/// The CPE's WAN after the stop: IKE, ESP, and the CPE's ICMP port unreachable for the DCs'
/// IKE retries once charon is gone; no GRE, nothing to Cisco's prefixes.
fn after_stop_only_ike(seen: &Packets) {
    assert_eq!(seen.count(Kind::Gre), 0, "{seen}");
    let bad: Vec<&str> = seen
        .not_ike_or_esp()
        .into_iter()
        .map(|p| p.line.as_str())
        .filter(|l| {
            !(l.contains(": ICMP ")
                && (l.contains("udp port 500 unreachable")
                    || l.contains("udp port 4500 unreachable")))
        })
        .collect();
    assert!(bad.is_empty(), "not IKE or ESP:\n{}", bad.join("\n"));
    assert!(
        !seen.lines.iter().any(|p| p.line.contains("> 198.18.7.")),
        "a packet to Cisco's prefix left in clear"
    );
}

/// R10: neither the PSKs nor the BGP passwords in the agent's or charon's logs.
fn no_secret_in_logs(region: &Region) {
    let logs = region.logs(100_000);
    for dc in DCS {
        assert!(!logs.contains(dc.psk), "DC{}'s PSK in a log", dc.n);
        assert!(
            !logs.contains(dc.bgp_password),
            "DC{}'s BGP password in a log",
            dc.n
        );
    }
}
