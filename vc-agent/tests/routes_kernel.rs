//! The route manager against a real LPM map and a real kernel table in a namespace (R21,
//! R22): it reconciles what a crashed run left, writes nothing when nothing changed, repairs
//! routes deleted behind its back, mirrors liveness into the datapath, and leaves other
//! protocols' routes alone.
use std::{
    collections::BTreeSet,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use ipnet::Ipv4Net;
use vc_agent::{
    datapath::{DatapathMaps, load},
    routes::{
        RouteManager, RouteManagerConfig, SharedMaps, TunnelNextHop, VC_RT_PROTO,
        install_rt_protos_entry,
    },
};
use vc_common::{Tunnel, tunnel_flags};
use vc_testkit::{NetNs, privileged, veth};

fn net(s: &str) -> Ipv4Net {
    s.parse().expect("prefix")
}

fn set(v: &[&str]) -> BTreeSet<Ipv4Net> {
    v.iter().map(|s| net(s)).collect()
}

/// Two tunnels' interfaces (vc0, vc1) in `vc`, each with a /30 to a peer namespace.
fn topology(tag: &str) -> (NetNs, Vec<NetNs>) {
    let vc = NetNs::new(tag).expect("netns");
    let mut peers = Vec::new();
    for t in 0..2 {
        let peer = NetNs::new(&format!("{tag}p")).expect("netns");
        veth(&vc, &format!("vc{t}"), &peer, &format!("dc{t}")).expect("veth");
        vc.ip(&[
            "addr",
            "add",
            &format!("100.64.{t}.1/30"),
            "dev",
            &format!("vc{t}"),
        ])
        .expect("addr");
        peers.push(peer);
    }
    (vc, peers)
}

fn config(resync: Duration) -> RouteManagerConfig {
    let mut cfg = RouteManagerConfig::new(
        (0..2)
            .map(|t| TunnelNextHop {
                id: t,
                gateway: format!("100.64.{t}.2").parse().expect("addr"),
                interface: format!("vc{t}"),
            })
            .collect(),
    );
    cfg.resync = resync;
    cfg
}

fn kernel(ns: &str, proto: &str) -> BTreeSet<String> {
    let out = std::process::Command::new("ip")
        .args(["-n", ns, "route", "show", "proto", proto])
        .output()
        .expect("ip");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect()
}

fn map(maps: &SharedMaps) -> Vec<(Ipv4Net, u32)> {
    let mut v: Vec<_> = maps
        .lock()
        .expect("maps")
        .routes()
        .expect("routes")
        .into_iter()
        .map(|(p, r)| (p, r.tunnels))
        .collect();
    v.sort();
    v
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[test]
fn reconciles_after_a_crash_and_is_idempotent() {
    if !privileged("reconciles_after_a_crash_and_is_idempotent") {
        return;
    }
    let (vc, _peers) = topology("rtrc");
    let ns = vc.name().to_string();
    // What a crashed run left: a kernel route of ours and an LPM entry. Plus a route of
    // another protocol that must survive.
    vc.ip(&[
        "route",
        "add",
        "198.18.10.0/25",
        "via",
        "100.64.0.2",
        "proto",
        "201",
    ])
    .expect("stale kernel route");
    vc.ip(&[
        "route",
        "add",
        "10.50.0.0/16",
        "via",
        "100.64.0.2",
        "proto",
        "static",
    ])
    .expect("foreign route");
    let mut ebpf = load(&[]).expect("BPF object");
    let maps: SharedMaps = Arc::new(Mutex::new(
        DatapathMaps::take(&mut ebpf, None).expect("maps"),
    ));
    maps.lock()
        .expect("maps")
        .set_route(net("198.18.10.0/24"), 0b11)
        .expect("stale map entry");

    vc.run_in(move || {
        runtime().block_on(async {
            let m = RouteManager::spawn(config(Duration::from_hours(1)), maps.clone())
                .await
                .expect("manager");
            let st = m.status();
            assert_eq!(st.stale_removed, 2, "{st:?}");
            assert!(kernel(&ns, "201").is_empty(), "stale kernel route removed");
            assert!(map(&maps).is_empty(), "stale map entry removed");
            assert_eq!(
                kernel(&ns, "static"),
                ["10.50.0.0/16 via 100.64.0.2 dev vc0".to_string()].into(),
                "other protocols untouched"
            );

            // Install, then send the same again: no netlink write may happen the second time.
            let h = m.handle();
            h.learned(0, set(&["198.18.10.0/25", "198.18.10.0/24"]));
            h.settled().await;
            let installed = kernel(&ns, "201");
            assert_eq!(installed.len(), 2);
            let log = std::env::temp_dir().join(format!("vc-monitor-{}", std::process::id()));
            let mut monitor = std::process::Command::new("ip")
                .args(["-n", &ns, "monitor", "route"])
                .stdout(std::fs::File::create(&log).expect("monitor log"))
                .spawn()
                .expect("ip monitor");
            tokio::time::sleep(Duration::from_millis(200)).await;
            h.learned(0, set(&["198.18.10.0/25", "198.18.10.0/24"]));
            h.settled().await;
            tokio::time::sleep(Duration::from_millis(200)).await;
            let seen = std::fs::read_to_string(&log).expect("monitor log");
            assert!(
                seen.is_empty(),
                "a repeated input changed the kernel: {seen}"
            );
            // The monitor does see a real change.
            h.learned(0, set(&["198.18.10.0/24"]));
            h.settled().await;
            tokio::time::sleep(Duration::from_millis(200)).await;
            let seen = std::fs::read_to_string(&log).expect("monitor log");
            monitor.kill().expect("kill monitor");
            let _ = monitor.wait();
            let _ = std::fs::remove_file(&log);
            assert!(seen.contains("Deleted 198.18.10.0/25"), "{seen}");
            h.learned(0, set(&["198.18.10.0/25", "198.18.10.0/24"]));
            h.settled().await;
            assert_eq!(kernel(&ns, "201"), installed);
            assert_eq!(m.status().errors, 0, "{:?}", m.status().last_error);

            // Crash: the manager dies, its routes stay. The next one removes them at start,
            // because no session has reported anything yet.
            m.abort();
            let m2 = RouteManager::spawn(config(Duration::from_hours(1)), maps.clone())
                .await
                .expect("manager after crash");
            assert_eq!(m2.status().stale_removed, 2);
            assert!(kernel(&ns, "201").is_empty());
            assert!(map(&maps).is_empty());
        });
    })
    .expect("test body");
}

#[test]
fn liveness_moves_traffic_and_is_mirrored_into_the_datapath() {
    if !privileged("liveness_moves_traffic_and_is_mirrored_into_the_datapath") {
        return;
    }
    let (vc, _peers) = topology("rtlv");
    let ns = vc.name().to_string();
    let mut ebpf = load(&[]).expect("BPF object");
    let maps: SharedMaps = Arc::new(Mutex::new(
        DatapathMaps::take(&mut ebpf, None).expect("maps"),
    ));
    for t in 0..2 {
        let tunnel = Tunnel {
            flags: tunnel_flags::CONFIGURED | tunnel_flags::UP,
            remote_gre: t + 10,
            peer_ifindex: t + 100,
            ..Tunnel::default()
        };
        maps.lock()
            .expect("maps")
            .set_tunnel(t, &tunnel)
            .expect("tunnel");
    }
    vc.run_in(move || {
        runtime().block_on(async {
            let m = RouteManager::spawn(config(Duration::from_millis(300)), maps.clone())
                .await
                .expect("manager");
            let h = m.handle();
            h.learned(0, set(&["198.18.10.0/25", "198.18.10.0/24"]));
            h.learned(1, set(&["198.18.10.128/25", "198.18.10.0/24"]));
            h.settled().await;
            assert_eq!(
                map(&maps),
                vec![
                    (net("198.18.10.0/24"), 0b11),
                    (net("198.18.10.0/25"), 0b01),
                    (net("198.18.10.128/25"), 0b10)
                ]
            );
            // Tunnel B dies: its /25 goes, the /24 is A's alone, B's UP flag drops.
            m.set_tunnel_alive(1, false);
            h.settled().await;
            assert_eq!(
                map(&maps),
                vec![(net("198.18.10.0/24"), 0b01), (net("198.18.10.0/25"), 0b01)]
            );
            assert_eq!(
                kernel(&ns, "201"),
                [
                    "198.18.10.0/24 via 100.64.0.2 dev vc0".to_string(),
                    "198.18.10.0/25 via 100.64.0.2 dev vc0".to_string()
                ]
                .into()
            );
            assert!(!maps.lock().expect("maps").tunnel(1).expect("t1").is_up());
            assert!(maps.lock().expect("maps").tunnel(0).expect("t0").is_up());
            assert_eq!(m.status().dead_tunnels, [1].into());

            // A route deleted behind the manager's back is back after a resync.
            std::process::Command::new("ip")
                .args(["-n", &ns, "route", "del", "198.18.10.0/25"])
                .status()
                .expect("ip route del");
            eventually("resync repairs", || kernel(&ns, "201").len() == 2).await;

            m.set_tunnel_alive(1, true);
            h.settled().await;
            assert!(maps.lock().expect("maps").tunnel(1).expect("t1").is_up());
            assert_eq!(kernel(&ns, "201").len(), 3);

            // Tunnel B re-configured without UP: a resync gives it the current liveness.
            let bare = Tunnel {
                flags: tunnel_flags::CONFIGURED,
                remote_gre: 11,
                peer_ifindex: 101,
                ..Tunnel::default()
            };
            maps.lock()
                .expect("maps")
                .set_tunnel(1, &bare)
                .expect("tunnel");
            h.resync();
            h.settled().await;
            assert!(maps.lock().expect("maps").tunnel(1).expect("t1").is_up());
        });
    })
    .expect("test body");
}

#[test]
fn ip_route_names_the_vc_protocol() {
    if !privileged("ip_route_names_the_vc_protocol") {
        return;
    }
    let (vc, _peers) = topology("rtnm");
    vc.ip(&[
        "route",
        "add",
        "198.18.10.0/24",
        "via",
        "100.64.0.2",
        "proto",
        "201",
    ])
    .expect("route");
    let dir = std::env::temp_dir().join(format!("vc-rtprotos-{}", std::process::id()));
    let file = dir.join("vc.conf");
    assert!(install_rt_protos_entry(&file, VC_RT_PROTO).expect("write"));
    assert!(
        !install_rt_protos_entry(&file, VC_RT_PROTO).expect("rewrite"),
        "idempotent"
    );
    // Show it to iproute2 in a private mount namespace, leaving the host's /etc alone.
    let script = format!(
        "mount -t tmpfs none /etc/iproute2/rt_protos.d && cp {} /etc/iproute2/rt_protos.d/ \
         && ip -n {} route show 198.18.10.0/24",
        file.display(),
        vc.name()
    );
    let out = std::process::Command::new("unshare")
        .args(["--mount", "sh", "-ec", &script])
        .output()
        .expect("unshare");
    let _ = std::fs::remove_dir_all(&dir);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("proto vc"),
        "{text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
