//! vc's eBGP speaker against BIRD 2 (R16–R22): real TCP over veth between namespaces, real
//! TCP-MD5, the real LPM map, real kernel routes. BIRD runs in its own namespace per DC with
//! its own control socket (`vc_testkit::bird`). Timers are short (hold 3–9 s).
use std::{
    collections::BTreeSet,
    time::{Duration, Instant},
};

use vc_agent::bgp::{Direction, NeighborState, Secret, State};
use vc_fixtures::bgp_lab::{
    CISCO_24, DC_25, Vc, addrs, dc_peer, in_vc, init_logs, kernel_routes, lab, lab_raw, logs,
    neighbor, net, route_get, start_vc, wait_until,
};
use vc_testkit::privileged;

const UP: Duration = Duration::from_secs(10);

fn established(vc: &Vc, i: usize) -> Option<NeighborState> {
    let s = vc.speakers[i].state();
    s.is_established().then_some(s)
}

/// The kernel route line vc installs for `prefix` via tunnel `t`.
fn kernel_line(prefix: &str, t: u32) -> String {
    format!("{prefix} via {} dev vc{t}", addrs(t).1)
}

#[test]
fn established_exchanges_exactly_the_policy_routes() {
    if !privileged("established_exchanges_exactly_the_policy_routes") {
        return;
    }
    init_logs();
    // DC1 also exports three prefixes outside its session's policy: another network, a
    // more-specific of the /24, and DC2's /25.
    let peer = dc_peer(0).export("stray", &["10.99.0.0/16", "198.18.10.0/26", DC_25[1]]);
    let (vc_ns, dcs) = lab("bgpok", &[peer]);
    in_vc(&vc_ns, async move |ns| {
        let started = Instant::now();
        let vc = start_vc(vec![neighbor(0)]).await;
        let s = wait_until(UP, "Established", || established(&vc, 0)).await;
        let took = started.elapsed();
        let session = s.session.clone().expect("session info");
        println!(
            "MEASURE start→Established {took:?}, TCP connect→Established {:?}",
            session.connect_to_established
        );
        assert!(took < Duration::from_secs(5), "Established in {took:?}");
        assert_eq!(session.hold_time, 9);
        assert!(session.four_octet_as);

        // vc holds exactly the /25 and the /24, in the LPM map and the kernel.
        let s = wait_until(UP, "5 prefixes received", || {
            let s = vc.speakers[0].state();
            (s.prefixes.received == 5).then_some(s)
        })
        .await;
        assert_eq!(
            (
                s.prefixes.accepted,
                s.prefixes.rejected,
                s.prefixes.advertised
            ),
            (2, 3, 1),
            "{s}"
        );
        assert_eq!(
            s.rejected_total.values().sum::<u64>(),
            3,
            "each stray prefix counted: {s}"
        );
        vc.routes.handle().settled().await;
        assert_eq!(
            vc.map(),
            vec![(net(CISCO_24), 0b01), (net(DC_25[0]), 0b01)],
            "LPM map"
        );
        let expected: BTreeSet<String> =
            [kernel_line(DC_25[0], 0), kernel_line(CISCO_24, 0)].into();
        assert_eq!(kernel_routes(&ns), expected, "kernel main table, proto 201");
        assert_eq!(vc.lookup("198.18.10.5"), Some((net(DC_25[0]), 0b01)));
        // DC2's half resolves to the /24 (the /25 from DC1 was refused).
        assert_eq!(vc.lookup("198.18.10.200"), Some((net(CISCO_24), 0b01)));
        assert_eq!(vc.lookup("10.99.1.1"), None, "stray prefix never installed");

        // BIRD's table holds exactly one route from vc: 0.0.0.0/0 via our tunnel IP.
        let bird = &dcs[0].bird;
        let from_vc = bird.routes("protocol vc").expect("birdc");
        assert_eq!(
            from_vc,
            vec!["0.0.0.0/0".to_string()],
            "BIRD's routes from vc"
        );
        let detail = bird.birdc("show route protocol vc all").expect("birdc");
        assert!(
            detail.contains(&format!("BGP.next_hop: {}", addrs(0).0)),
            "{detail}"
        );
        assert!(detail.contains("BGP.as_path: 65001"), "{detail}");

        drop(dcs);
    });
}

#[test]
fn bird_reads_our_capabilities_refresh_and_shutdown() {
    if !privileged("bird_reads_our_capabilities_refresh_and_shutdown") {
        return;
    }
    init_logs();
    let (vc_ns, dcs) = lab("bgpcp", &[dc_peer(0)]);
    in_vc(&vc_ns, async move |ns| {
        let vc = start_vc(vec![neighbor(0)]).await;
        wait_until(UP, "routes", || {
            (kernel_routes(&ns).len() == 2).then_some(())
        })
        .await;
        let bird = &dcs[0].bird;
        bird.wait_established("vc", UP).expect("BIRD");
        // BIRD reads our capabilities: IPv4 unicast, route refresh, graceful restart (restart
        // time 120 s, IPv4 unicast with its forwarding state preserved: the F bit), 4-octet
        // AS.
        let protocol = bird.birdc("show protocols all vc").expect("birdc");
        let caps: Vec<&str> = protocol
            .split("Neighbor capabilities")
            .nth(1)
            .and_then(|rest| rest.split("Session:").next())
            .expect("neighbor capabilities")
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        assert_eq!(
            caps,
            [
                "Multiprotocol",
                "AF announced: ipv4",
                "Route refresh",
                "Graceful restart",
                "Restart time: 120",
                "AF supported: ipv4",
                "AF preserved: ipv4",
                "4-octet AS numbers"
            ],
            "{protocol}"
        );

        // BIRD asks for our routes again (ROUTE-REFRESH): the same one route comes.
        let sent = vc.speakers[0].state().messages_sent;
        bird.birdc("reload in vc").expect("birdc reload in");
        wait_until(UP, "UPDATE + End-of-RIB re-sent", || {
            (vc.speakers[0].state().messages_sent >= sent + 2).then_some(())
        })
        .await;
        assert_eq!(
            bird.routes("protocol vc").expect("birdc"),
            vec!["0.0.0.0/0"]
        );

        // Shutting the speaker down tells BIRD why and withdraws what it learned.
        let Vc {
            routes, speakers, ..
        } = vc;
        for s in speakers {
            s.shutdown().await;
        }
        let last = bird.last_error("vc").expect("birdc");
        assert_eq!(last.as_deref(), Some("Received: Administrative shutdown"));
        routes.handle().settled().await;
        assert!(kernel_routes(&ns).is_empty());
        assert!(routes.status().map.is_empty());
    });
}

#[test]
fn passive_open_accepts_birds_connection() {
    if !privileged("passive_open_accepts_birds_connection") {
        return;
    }
    init_logs();
    let (vc_ns, dcs) = lab("bgppv", &[dc_peer(0)]);
    in_vc(&vc_ns, async move |_| {
        let mut cfg = neighbor(0);
        cfg.passive = true;
        let vc = start_vc(vec![cfg]).await;
        wait_until(UP, "Active (listening only)", || {
            (vc.speakers[0].state().state == State::Active).then_some(())
        })
        .await;
        wait_until(UP, "Established on BIRD's connection", || {
            established(&vc, 0)
        })
        .await;
        wait_until(UP, "both prefixes", || {
            (vc.speakers[0].state().prefixes.accepted == 2).then_some(())
        })
        .await;
        assert!(
            logs().contains("conn=Incoming"),
            "the session runs on the accepted connection"
        );
        dcs[0].bird.wait_established("vc", UP).expect("BIRD");
    });
}

#[test]
fn withdrawal_removes_the_route_from_map_and_kernel_at_once() {
    if !privileged("withdrawal_removes_the_route_from_map_and_kernel_at_once") {
        return;
    }
    init_logs();
    let (vc_ns, dcs) = lab("bgpwd", &[dc_peer(0)]);
    in_vc(&vc_ns, async move |ns| {
        let vc = start_vc(vec![neighbor(0)]).await;
        wait_until(UP, "both prefixes in the kernel", || {
            (kernel_routes(&ns).len() == 2).then_some(())
        })
        .await;
        let mut map_times = Vec::new();
        let mut kernel_times = Vec::new();
        for round in 0..3 {
            // Withdraw the /25 on BIRD's side.
            let t0 = Instant::now();
            dcs[0].bird.birdc("disable dc25").expect("birdc disable");
            let mut in_map = None;
            let mut in_kernel = None;
            wait_until(UP, "/25 gone from map and kernel", || {
                if in_map.is_none() && !vc.map().iter().any(|(p, _)| *p == net(DC_25[0])) {
                    in_map = Some(t0.elapsed());
                }
                if in_kernel.is_none() && kernel_routes(&ns).len() == 1 {
                    in_kernel = Some(t0.elapsed());
                }
                in_map.zip(in_kernel)
            })
            .await;
            let internal = vc.routes.status().last_apply.expect("timing");
            println!(
                "MEASURE round {round}: birdc disable → LPM map {:?}, → kernel {:?}; \
                 UPDATE received → map {:?}, → kernel {:?}",
                in_map.expect("map"),
                in_kernel.expect("kernel"),
                internal.map,
                internal.kernel
            );
            map_times.push(in_map.expect("map"));
            kernel_times.push(in_kernel.expect("kernel"));
            assert_eq!(vc.map(), vec![(net(CISCO_24), 0b01)]);
            assert_eq!(
                kernel_routes(&ns),
                [kernel_line(CISCO_24, 0)].into(),
                "the /24 stays"
            );
            assert_eq!(vc.speakers[0].state().prefixes.accepted, 1);
            // And back.
            dcs[0].bird.birdc("enable dc25").expect("birdc enable");
            wait_until(UP, "/25 back", || {
                (kernel_routes(&ns).len() == 2).then_some(())
            })
            .await;
        }
        for t in map_times.iter().chain(&kernel_times) {
            assert!(*t < Duration::from_secs(1), "removal took {t:?}");
        }
        assert_eq!(vc.speakers[0].state().flaps, 0, "withdrawals are not flaps");
    });
}

#[test]
fn bird_restart_reestablishes_and_session_loss_removes_routes() {
    if !privileged("bird_restart_reestablishes_and_session_loss_removes_routes") {
        return;
    }
    init_logs();
    let (vc_ns, mut dcs) = lab("bgprs", &[dc_peer(0)]);
    in_vc(&vc_ns, async move |ns| {
        let vc = start_vc(vec![neighbor(0)]).await;
        wait_until(UP, "routes", || {
            (kernel_routes(&ns).len() == 2).then_some(())
        })
        .await;
        // BIRD dies (SIGKILL: its kernel closes the connection).
        let t0 = Instant::now();
        dcs[0].bird.kill();
        wait_until(UP, "routes removed", || {
            (kernel_routes(&ns).is_empty() && vc.map().is_empty()).then_some(())
        })
        .await;
        println!("MEASURE BIRD killed → routes removed {:?}", t0.elapsed());
        let s = vc.speakers[0].state();
        assert_ne!(s.state, State::Established);
        assert_eq!(s.flaps, 1);
        assert_eq!(s.prefixes.received, 0);
        let e = s.last_error.expect("last error");
        assert!(
            e.text.contains("closed") || e.text.contains("failed"),
            "{}",
            e.text
        );

        dcs[0].bird.restart().expect("bird restart");
        let t1 = Instant::now();
        wait_until(Duration::from_secs(15), "re-established", || {
            established(&vc, 0)
        })
        .await;
        println!("MEASURE BIRD restart → Established {:?}", t1.elapsed());
        wait_until(UP, "routes back", || {
            (kernel_routes(&ns).len() == 2).then_some(())
        })
        .await;
        dcs[0]
            .bird
            .wait_established("vc", UP)
            .expect("BIRD sees it too");
    });
}

#[test]
fn md5_match_establishes() {
    if !privileged("md5_match_establishes") {
        return;
    }
    init_logs();
    let password = "vc-md5-match-3b9e";
    let (vc_ns, dcs) = lab("bgpmd", &[dc_peer(0).password(password)]);
    in_vc(&vc_ns, async move |_| {
        let mut cfg = neighbor(0);
        cfg.md5_password = Some(Secret::new(password));
        let vc = start_vc(vec![cfg]).await;
        let s = wait_until(UP, "Established with TCP-MD5", || established(&vc, 0)).await;
        assert_eq!(s.diagnosis, None);
        // The connection really is signed: the kernel lists the key on the socket.
        let ss = std::process::Command::new("ss")
            .args([
                "-tniHe",
                "state",
                "established",
                "( sport = :179 or dport = :179 )",
            ])
            .output()
            .expect("ss");
        let ss = String::from_utf8_lossy(&ss.stdout);
        assert!(ss.contains("md5"), "ss shows no md5 on the session: {ss}");
        dcs[0].bird.wait_established("vc", UP).expect("BIRD");
    });
    assert!(!logs().contains(password), "the password was logged");
}

#[test]
fn md5_mismatch_never_establishes_and_blames_the_password() {
    if !privileged("md5_mismatch_never_establishes_and_blames_the_password") {
        return;
    }
    init_logs();
    let ours = "vc-md5-ours-91c2";
    let (vc_ns, dcs) = lab("bgpmm", &[dc_peer(0).password("bird-md5-theirs-5d0f")]);
    in_vc(&vc_ns, async move |_| {
        let mut cfg = neighbor(0);
        cfg.md5_password = Some(Secret::new(ours));
        let vc = start_vc(vec![cfg]).await;
        let deadline = Instant::now() + Duration::from_secs(7);
        let mut watch = vc.speakers[0].subscribe();
        while Instant::now() < deadline {
            assert_ne!(
                watch.borrow().state,
                State::Established,
                "must never establish"
            );
            let _ = tokio::time::timeout(Duration::from_millis(100), watch.changed()).await;
        }
        let s = vc.speakers[0].state();
        println!("{s}");
        assert!(s.connect_timeouts >= 1, "{s}");
        assert!(s.likely_password_mismatch, "{s}");
        let diagnosis = s.diagnosis.expect("diagnosis");
        assert!(diagnosis.contains("password mismatch"), "{diagnosis}");
        assert_ne!(dcs[0].bird.bgp_state("vc").expect("birdc"), "Established");
    });
    let logs = logs();
    assert!(!logs.contains(ours), "our password was logged");
    assert!(
        logs.contains("password mismatch"),
        "the diagnosis is logged"
    );
}

#[test]
fn wrong_remote_as_sends_bad_peer_as_and_names_it() {
    if !privileged("wrong_remote_as_sends_bad_peer_as_and_names_it") {
        return;
    }
    init_logs();
    let (vc_ns, dcs) = lab("bgpas", &[dc_peer(0)]);
    in_vc(&vc_ns, async move |_| {
        let mut cfg = neighbor(0);
        cfg.remote_asn = 65099;
        let vc = start_vc(vec![cfg]).await;
        let e = wait_until(UP, "a last error", || vc.speakers[0].state().last_error).await;
        let n = e.notification.expect("a NOTIFICATION");
        assert_eq!((n.direction, n.code, n.subcode), (Direction::Sent, 2, 2));
        assert_eq!(n.name, "OPEN Message Error / Bad Peer AS");
        assert!(
            e.text
                .starts_with("sent NOTIFICATION 2/2 OPEN Message Error / Bad Peer AS"),
            "{}",
            e.text
        );
        // BIRD received it (and names it its own way).
        wait_until(UP, "BIRD's last error", || {
            dcs[0]
                .bird
                .last_error("vc")
                .ok()
                .flatten()
                .filter(|l| l.contains("Bad peer AS"))
        })
        .await;
        assert_ne!(vc.speakers[0].state().state, State::Established);
    });
}

#[test]
fn hold_timer_expires_within_hold_time_when_bird_is_blackholed() {
    if !privileged("hold_timer_expires_within_hold_time_when_bird_is_blackholed") {
        return;
    }
    init_logs();
    let (vc_ns, dcs) = lab("bgpht", &[dc_peer(0).hold_time(3)]);
    in_vc(&vc_ns, async move |ns| {
        let mut cfg = neighbor(0);
        cfg.hold_time = 3;
        // Long idle hold: the session stays down after the expiry while we look.
        cfg.idle_hold = Duration::from_secs(30);
        cfg.idle_hold_max = Duration::from_secs(30);
        let vc = start_vc(vec![cfg]).await;
        let s = wait_until(UP, "Established", || established(&vc, 0)).await;
        assert_eq!(s.session.expect("session").hold_time, 3);
        wait_until(UP, "routes", || {
            (kernel_routes(&ns).len() == 2).then_some(())
        })
        .await;

        // Everything BIRD sends to us now vanishes.
        let t0 = Instant::now();
        dcs[0]
            .ns
            .ip(&["route", "add", "blackhole", &format!("{}/32", addrs(0).0)])
            .expect("blackhole");
        let s = wait_until(Duration::from_secs(6), "hold timer expiry", || {
            let s = vc.speakers[0].state();
            (s.state != State::Established).then_some(s)
        })
        .await;
        let took = t0.elapsed();
        println!("MEASURE blackhole → hold timer expiry {took:?} (hold 3 s)");
        assert!(
            took <= Duration::from_secs(4),
            "hold 3 s + 1 s, took {took:?}"
        );
        let n = s
            .last_error
            .and_then(|e| e.notification)
            .expect("notification");
        assert_eq!((n.direction, n.code, n.subcode), (Direction::Sent, 4, 0));
        assert_eq!(n.name, "Hold Timer Expired / Unspecific");
        wait_until(UP, "routes removed", || {
            kernel_routes(&ns).is_empty().then_some(())
        })
        .await;
        assert!(vc.map().is_empty());
    });
}

#[test]
fn max_prefix_exceeded_sends_cease_1_and_waits_idle_hold() {
    if !privileged("max_prefix_exceeded_sends_cease_1_and_waits_idle_hold") {
        return;
    }
    init_logs();
    let peer = dc_peer(0).export("more", &["10.1.0.0/16", "10.2.0.0/16", "10.3.0.0/16"]);
    let (vc_ns, dcs) = lab("bgpmx", &[peer]);
    in_vc(&vc_ns, async move |ns| {
        let mut cfg = neighbor(0);
        cfg.max_prefixes = 4;
        cfg.idle_hold = Duration::from_secs(2);
        cfg.idle_hold_max = Duration::from_secs(2);
        let vc = start_vc(vec![cfg]).await;
        let e = wait_until(UP, "Cease 6/1", || {
            vc.speakers[0]
                .state()
                .last_error
                .filter(|e| e.notification.as_ref().is_some_and(|n| n.code == 6))
        })
        .await;
        let down_at = Instant::now();
        let n = e.notification.expect("notification");
        assert_eq!((n.direction, n.code, n.subcode), (Direction::Sent, 6, 1));
        assert_eq!(n.name, "Cease / Maximum Number of Prefixes Reached");
        // AFI 1, SAFI 1, limit 4 (RFC 4486).
        assert_eq!(n.data, [0, 1, 1, 0, 0, 0, 4], "{n}");
        assert!(
            vc.map().is_empty(),
            "nothing of an over-limit session is installed"
        );
        assert!(kernel_routes(&ns).is_empty());
        wait_until(UP, "BIRD's last error", || {
            dcs[0]
                .bird
                .last_error("vc")
                .ok()
                .flatten()
                .filter(|l| l.contains("Maximum number of prefixes reached"))
        })
        .await;
        // Idle hold: no new connection attempt for 2 s, then one. (Whether BIRD takes
        // it at once depends on its own error wait.)
        let attempts = vc.speakers[0].state().connect_attempts;
        let reconnect = wait_until(Duration::from_secs(8), "the next attempt", || {
            (vc.speakers[0].state().connect_attempts > attempts).then(|| down_at.elapsed())
        })
        .await;
        println!("MEASURE Cease 6/1 → next connection attempt {reconnect:?} (idle hold 2 s)");
        assert!(
            (Duration::from_millis(1900)..Duration::from_secs(3)).contains(&reconnect),
            "{reconnect:?}"
        );
    });
}

#[test]
fn two_sessions_each_25_on_its_tunnel_and_failover_to_the_24() {
    if !privileged("two_sessions_each_25_on_its_tunnel_and_failover_to_the_24") {
        return;
    }
    init_logs();
    let (vc_ns, mut dcs) = lab("bgp2s", &[dc_peer(0), dc_peer(1)]);
    in_vc(&vc_ns, async move |ns| {
        let vc = start_vc(vec![neighbor(0), neighbor(1)]).await;
        wait_until(UP, "both Established", || {
            (established(&vc, 0).is_some() && established(&vc, 1).is_some()).then_some(())
        })
        .await;
        let both: BTreeSet<String> = [
            kernel_line(DC_25[0], 0),
            kernel_line(DC_25[1], 1),
            kernel_line(CISCO_24, 0),
        ]
        .into();
        wait_until(UP, "three kernel routes", || {
            (kernel_routes(&ns) == both).then_some(())
        })
        .await;
        vc.routes.handle().settled().await;
        let map = vc.map();
        assert_eq!(
            map,
            vec![
                (net(CISCO_24), 0b11),
                (net(DC_25[0]), 0b01),
                (net(DC_25[1]), 0b10)
            ],
            "each /25 on its own tunnel, the /24 on both"
        );
        // R20: each DC's half leaves on its own tunnel only.
        let (dc1, dc2) = (addrs(0).1, addrs(1).1);
        assert_eq!(vc.lookup("198.18.10.10"), Some((net(DC_25[0]), 0b01)));
        assert_eq!(vc.lookup("198.18.10.130"), Some((net(DC_25[1]), 0b10)));
        assert_eq!(route_get(&ns, "198.18.10.10"), format!("via {dc1} dev vc0"));
        assert_eq!(
            route_get(&ns, "198.18.10.130"),
            format!("via {dc2} dev vc1")
        );

        // DC2's session dies: its /25 goes, its half follows the /24 over tunnel A.
        let t0 = Instant::now();
        dcs[1].bird.kill();
        let one: BTreeSet<String> = [kernel_line(DC_25[0], 0), kernel_line(CISCO_24, 0)].into();
        wait_until(UP, "DC2's /25 gone", || {
            (kernel_routes(&ns) == one).then_some(())
        })
        .await;
        println!(
            "MEASURE DC2 session lost → failover in kernel {:?}",
            t0.elapsed()
        );
        let map = vc.map();
        assert_eq!(map, vec![(net(CISCO_24), 0b01), (net(DC_25[0]), 0b01)]);
        assert_eq!(vc.lookup("198.18.10.130"), Some((net(CISCO_24), 0b01)));
        assert_eq!(
            route_get(&ns, "198.18.10.130"),
            format!("via {dc1} dev vc0")
        );
        assert!(established(&vc, 0).is_some(), "DC1 unaffected");

        // Liveness: tunnel A declared dead leaves nothing usable for DC1's half…
        vc.routes.set_tunnel_alive(0, false);
        vc.routes.handle().settled().await;
        assert!(vc.map().is_empty());
        assert!(kernel_routes(&ns).is_empty());
        // …and DC2 comes back while A is dead: everything on B (R21).
        dcs[1].bird.restart().expect("restart DC2");
        wait_until(Duration::from_secs(15), "DC2 back", || established(&vc, 1)).await;
        let on_b: BTreeSet<String> = [kernel_line(DC_25[1], 1), kernel_line(CISCO_24, 1)].into();
        wait_until(UP, "routes on B", || {
            (kernel_routes(&ns) == on_b).then_some(())
        })
        .await;
        assert_eq!(route_get(&ns, "198.18.10.10"), format!("via {dc2} dev vc1"));
        // A alive again: both halves on their own tunnels.
        vc.routes.set_tunnel_alive(0, true);
        wait_until(UP, "back to normal", || {
            (kernel_routes(&ns) == both).then_some(())
        })
        .await;
    });
}

/// A BGP peer played by the test over real TCP: it sends exactly the bytes it is given.
struct RawPeer(std::net::TcpStream);

impl RawPeer {
    fn accept(listener: &std::net::TcpListener) -> Self {
        let (s, _) = listener.accept().expect("vc connects");
        s.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        RawPeer(s)
    }

    fn send(&mut self, bytes: &[u8]) {
        use std::io::Write;
        self.0.write_all(bytes).expect("send");
    }

    /// The next message of type `kind`, skipping others (KEEPALIVEs, vc's UPDATEs).
    fn recv(&mut self, kind: u8) -> Vec<u8> {
        use std::io::Read;
        loop {
            let mut m = vec![0u8; 19];
            self.0.read_exact(&mut m).expect("header");
            let len = usize::from(u16::from_be_bytes([m[16], m[17]]));
            m.resize(len, 0);
            self.0.read_exact(&mut m[19..]).expect("body");
            if m[18] == kind {
                return m;
            }
        }
    }

    /// Plays BIRD's side of the OPEN exchange (its real OPEN: AS 65010, hold 240).
    fn establish(&mut self) {
        self.recv(1);
        self.send(&bird_vector("open-as4"));
        self.send(&bird_vector("keepalive"));
        self.recv(4);
    }
}

fn bird_vector(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/../vc-wire/tests/data/bird/{name}.hex",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(path).expect("vector");
    let hex: String = text.lines().filter(|l| !l.starts_with('#')).collect();
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
        .collect()
}

/// A whole message of `kind` around `body` (hex).
fn message(kind: u8, body: &str) -> Vec<u8> {
    let body: Vec<u8> = (0..body.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&body[i..i + 2], 16).expect("hex"))
        .collect();
    let mut m = vec![0xff; 16];
    m.extend_from_slice(&u16::try_from(19 + body.len()).expect("short").to_be_bytes());
    m.push(kind);
    m.extend_from_slice(&body);
    m
}

/// The DC side of the malformed-message test: a raw BGP speaker that sends each fault in
/// turn, reporting each step (and the NOTIFICATION it got back) to the test.
fn malformed_peer(
    to_test: &std::sync::mpsc::Sender<(&'static str, Vec<u8>)>,
    from_test: &std::sync::mpsc::Receiver<()>,
) {
    let listener = std::net::TcpListener::bind((addrs(0).1, 179)).expect("listen as the DC");
    // Session 1: routes, then an ORIGIN of 3 (treat-as-withdraw), then an attribute
    // that overruns the list (session reset, 3/1).
    let mut p = RawPeer::accept(&listener);
    p.establish();
    p.send(&bird_vector("update-as4"));
    to_test.send(("routes sent", vec![])).expect("test");
    from_test.recv().expect("go");
    p.send(&message(
        2,
        "00000014400101034002060201 0000fdf24003046440000219c6120a00"
            .replace(' ', "")
            .as_str(),
    ));
    to_test.send(("bad ORIGIN sent", vec![])).expect("test");
    from_test.recv().expect("go");
    p.send(&message(2, "0000000440010500"));
    to_test.send(("overrun", p.recv(3))).expect("test");
    // Session 2: a header with a broken marker (1/1).
    let mut p = RawPeer::accept(&listener);
    p.establish();
    let mut bad = bird_vector("keepalive");
    bad[0] = 0;
    p.send(&bad);
    to_test.send(("marker", p.recv(3))).expect("test");
    // Session 3: an OPEN of version 3 (2/1, data: version 4).
    let mut p = RawPeer::accept(&listener);
    p.recv(1);
    let mut open = bird_vector("open-as4");
    open[19] = 3;
    p.send(&open);
    to_test.send(("version", p.recv(3))).expect("test");
}

#[test]
fn malformed_messages_get_the_rfc_answer_over_a_real_session() {
    if !privileged("malformed_messages_get_the_rfc_answer_over_a_real_session") {
        return;
    }
    init_logs();
    let (vc_ns, dc_ns) = lab_raw("bgpmf");
    let (to_test, from_peer) = std::sync::mpsc::channel::<(&'static str, Vec<u8>)>();
    let (to_peer, from_test) = std::sync::mpsc::channel::<()>();
    let peer = dc_ns
        .spawn_in(move || malformed_peer(&to_test, &from_test))
        .expect("peer thread");
    in_vc(&vc_ns, async move |ns| {
        let vc = start_vc(vec![neighbor(0)]).await;
        let next = || {
            from_peer
                .recv_timeout(Duration::from_secs(15))
                .expect("peer step")
        };
        assert_eq!(next().0, "routes sent");
        wait_until(UP, "both routes", || {
            (kernel_routes(&ns).len() == 2).then_some(())
        })
        .await;
        to_peer.send(()).expect("peer");

        assert_eq!(next().0, "bad ORIGIN sent");
        // Treat-as-withdraw: the /25 goes, the /24 and the session stay.
        wait_until(UP, "/25 withdrawn", || {
            (kernel_routes(&ns) == [kernel_line(CISCO_24, 0)].into()).then_some(())
        })
        .await;
        let s = vc.speakers[0].state();
        assert_eq!(s.state, State::Established);
        assert_eq!(s.attribute_faults, 1);
        assert!(
            logs().contains("malformed attribute from the peer: ORIGIN (type 1): undefined ORIGIN value (routes treated as withdrawn, RFC 7606)"),
            "the log names the fault"
        );
        to_peer.send(()).expect("peer");

        let (what, n) = next();
        assert_eq!(
            (what, &n[19..21]),
            ("overrun", &[3u8, 1][..]),
            "3/1 on the wire"
        );
        let e = wait_until(UP, "last error", || vc.speakers[0].state().last_error).await;
        assert!(
            e.text.starts_with(
                "sent NOTIFICATION 3/1 UPDATE Message Error / Malformed Attribute List"
            ),
            "{}",
            e.text
        );
        assert!(logs().contains(
            "malformed message from the peer: malformed attribute list: attribute overruns the attribute list; sending NOTIFICATION 3/1"
        ));
        wait_until(UP, "routes gone", || {
            kernel_routes(&ns).is_empty().then_some(())
        })
        .await;

        let (what, n) = next();
        assert_eq!(
            (what, &n[19..21]),
            ("marker", &[1u8, 1][..]),
            "1/1 on the wire"
        );
        let (what, n) = next();
        assert_eq!(
            (what, &n[19..]),
            ("version", &[2u8, 1, 0, 4][..]),
            "2/1, data 4"
        );
        let s = vc.speakers[0].state();
        let n = s
            .last_error
            .and_then(|e| e.notification)
            .expect("notification");
        assert_eq!(n.name, "OPEN Message Error / Unsupported Version Number");
    });
    peer.join().expect("peer");
}
