//! The datapath live on this host, GRE-only mode, vc at both ends (see `topology`): every
//! packet path with real traffic, judged by ping, TCP, tcpdump and tshark.
mod failclosed;
mod xdp;

use vc_agent::datapath::{DatapathMaps, mtu::Wrapping};
use vc_common::{DropReason, Hook, Outcome};
use vc_fixtures::gre_lab::{
    CPE_TUNNEL_A, DC1_HOST, DC1_TUNNEL, DC2_HOST, LAN_HOST, MSS, TUNNEL_MTU, Topology,
};
use vc_testkit::{
    capture::{self, Capture, Direction, Kind},
    privileged,
    traffic::{tcp_connect, tcp_transfer},
};

fn topology(test: &str, fast_path: bool) -> Option<Topology> {
    privileged(test).then(|| Topology::new(fast_path))
}

/// Pings `dst` from `ns` once, with `size` bytes of payload and DF.
fn ping(ns: &vc_testkit::NetNs, dst: std::net::Ipv4Addr, size: usize) -> std::process::Output {
    ns.sh_output(&format!("ping -c1 -W2 -M do -s {size} {dst}"))
        .expect("ping")
}

#[track_caller]
fn assert_ping(ns: &vc_testkit::NetNs, dst: std::net::Ipv4Addr) {
    let out = ping(ns, dst, 56);
    assert!(
        out.status.success(),
        "ping {dst} from {}: {}",
        ns.name(),
        String::from_utf8_lossy(&out.stdout)
    );
}

/// Clean traffic is never dropped (non-IPv4 frames such as ARP on the WAN are not ours).
fn assert_no_drops(maps: &DatapathMaps) {
    let drops: Vec<_> = maps
        .verdicts()
        .expect("verdicts")
        .into_iter()
        .filter(|v| v.reason.is_drop() && v.reason != DropReason::NotIpv4)
        .collect();
    assert!(drops.is_empty(), "no drops on clean traffic: {drops:?}");
}

#[test]
fn ping_and_tcp_cross_each_tunnel_both_ways() {
    for fast_path in [false, true] {
        let Some(t) = topology("ping_and_tcp_cross_each_tunnel_both_ways", fast_path) else {
            return;
        };
        assert_ping(&t.lan, DC1_HOST);
        assert_ping(&t.lan, DC2_HOST);
        assert_ping(&t.dc1, LAN_HOST);
        assert_ping(&t.dc2, LAN_HOST);
        for (dc, host) in [(&t.dc1, DC1_HOST), (&t.dc2, DC2_HOST)] {
            let n = tcp_transfer(&t.lan, dc, host, 5061, 200_000).expect("LAN → DC");
            assert_eq!(n, 200_000);
            let n = tcp_transfer(dc, &t.lan, LAN_HOST, 5062, 200_000).expect("DC → LAN");
            assert_eq!(n, 200_000);
        }
        let maps = t.cpe_maps();
        let (a, b) = (
            maps.tunnel_stats(0).expect("A"),
            maps.tunnel_stats(1).expect("B"),
        );
        assert!(a.tx_packets > 0 && a.rx_packets > 0 && b.tx_packets > 0 && b.rx_packets > 0);
        if fast_path {
            assert!(
                a.fast_path_packets > 0 && a.rx_fast_path_packets > 0,
                "the fast paths carried traffic both ways: {a:?}"
            );
            // GRE-only mode: once the WAN gateway's neighbour entry exists, encapsulated
            // packets go straight to the WAN and never re-enter the tunnel's peer.
            let reentered: u64 = maps
                .verdicts()
                .expect("verdicts")
                .iter()
                .filter(|v| v.hook == Hook::TunnelTx && v.reason == Outcome::AlreadyEncapsulated)
                .map(|v| v.packets)
                .sum();
            assert!(
                reentered * 10 < a.fast_path_packets + b.fast_path_packets,
                "most fast-path packets skipped the second pass: {reentered} re-entered"
            );
        } else {
            assert_eq!(a.fast_path_packets + b.fast_path_packets, 0);
            assert_eq!(a.rx_fast_path_packets + b.rx_fast_path_packets, 0);
        }
        assert_no_drops(&maps);
    }
}

#[test]
fn each_25_stays_on_its_own_tunnel() {
    let Some(t) = topology("each_25_stays_on_its_own_tunnel", true) else {
        return;
    };
    let (d1_file, d2_file) = (t.scratch("d1.pcap"), t.scratch("d2.pcap"));
    let on_d1 =
        Capture::start(&t.wan, "d1", Direction::Both, "ip proto 47", &d1_file).expect("capture");
    let on_d2 =
        Capture::start(&t.wan, "d2", Direction::Both, "ip proto 47", &d2_file).expect("capture");
    for _ in 0..3 {
        assert_ping(&t.lan, DC1_HOST);
    }
    tcp_transfer(&t.lan, &t.dc1, DC1_HOST, 5063, 100_000).expect("TCP to DC1");
    let (on_a, on_b) = (
        on_d1.stop().expect("capture"),
        on_d2.stop().expect("capture"),
    );
    // The positive control: the same kind of capture does see tunnel A's GRE.
    assert!(
        on_a.count(Kind::Gre) >= 6,
        "GRE captured toward DC1: {on_a}"
    );
    assert!(
        on_b.lines.is_empty(),
        "traffic for DC1's /25 crossed to tunnel B: {:?}",
        on_b.lines
    );
    assert_eq!(t.dc_maps(2).tunnel_stats(0).expect("DC2").rx_packets, 0);
    assert!(t.dc_maps(1).tunnel_stats(0).expect("DC1").rx_packets > 0);
}

#[test]
fn the_24_carries_a_downed_tunnels_traffic_and_gives_it_back() {
    let Some(t) = topology(
        "the_24_carries_a_downed_tunnels_traffic_and_gives_it_back",
        true,
    ) else {
        return;
    };
    assert_ping(&t.lan, DC1_HOST);
    let via_b_before = t.dc_maps(2).tunnel_stats(0).expect("DC2").rx_packets;
    // Tunnel A fails: liveness marks it down and the route manager moves the kernel's /24
    // and removes A's /25 (here by hand).
    t.cpe_maps().set_tunnel_up(0, false).expect("down");
    t.cpe
        .sh("ip route del 203.0.113.0/25 && ip route replace 203.0.113.0/24 via 100.64.0.6 dev vc-dc2")
        .expect("routes");
    for _ in 0..3 {
        assert_ping(&t.lan, DC1_HOST);
    }
    tcp_transfer(&t.lan, &t.dc2, DC1_HOST, 5064, 100_000).expect("TCP to DC1's half via B");
    let via_b = t.dc_maps(2).tunnel_stats(0).expect("DC2").rx_packets;
    assert!(
        via_b > via_b_before + 3,
        "DC1's /25 followed the /24 over tunnel B"
    );

    // A recovers: traffic returns.
    t.cpe_maps().set_tunnel_up(0, true).expect("up");
    t.cpe
        .sh("ip route add 203.0.113.0/25 via 100.64.0.2 dev vc-dc1 && ip route replace 203.0.113.0/24 via 100.64.0.2 dev vc-dc1")
        .expect("routes");
    let a_before = t.dc_maps(1).tunnel_stats(0).expect("DC1").rx_packets;
    assert_ping(&t.lan, DC1_HOST);
    assert!(t.dc_maps(1).tunnel_stats(0).expect("DC1").rx_packets > a_before);
    assert_eq!(t.dc_maps(2).tunnel_stats(0).expect("DC2").rx_packets, via_b);
}

#[test]
fn the_cpes_own_traffic_from_its_tunnel_ip() {
    let Some(t) = topology("the_cpes_own_traffic_from_its_tunnel_ip", false) else {
        return;
    };
    // R15: tunnel IP to tunnel IP.
    assert_ping(&t.cpe, DC1_TUNNEL);
    assert_ping(&t.dc1, CPE_TUNNEL_A);
    // The BGP port, as the speaker will use it.
    let seen = tcp_connect(&t.cpe, &t.dc1, DC1_TUNNEL, 179).expect("TCP to port 179");
    assert_eq!(
        seen.ip(),
        std::net::IpAddr::V4(CPE_TUNNEL_A),
        "sourced from our tunnel IP"
    );
}

#[test]
fn syns_on_the_wire_carry_at_most_the_tunnel_mss() {
    let Some(t) = topology("syns_on_the_wire_carry_at_most_the_tunnel_mss", true) else {
        return;
    };
    // The DC end must not clamp for this test to judge the CPE: its own tunnel MSS is raised,
    // and its tunnel MTU too, so its SYN-ACKs offer 1436.
    let mut dc = t.dc_maps(1);
    let mut entry = dc.tunnel(0).expect("DC tunnel");
    entry.mss = 9000;
    dc.set_tunnel(0, &entry).expect("DC tunnel");
    t.dc1.sh("ip link set vc-cpe mtu 1476").expect("DC MTU");

    let wan_file = t.scratch("wan.pcap");
    let lan_file = t.scratch("lan.pcap");
    let wan =
        Capture::start(&t.wan, "c0", Direction::Both, "ip proto 47", &wan_file).expect("capture");
    let lan = Capture::start(&t.lan, "eth0", Direction::In, "tcp", &lan_file).expect("capture");
    tcp_transfer(&t.lan, &t.dc1, DC1_HOST, 5065, 10_000).expect("LAN → DC");
    tcp_transfer(&t.dc1, &t.lan, LAN_HOST, 5066, 10_000).expect("DC → LAN");
    let (wan_file, lan_file) = (
        wan.stop().expect("capture").path,
        lan.stop().expect("capture").path,
    );

    let syn = "tcp.flags.syn == 1";
    let wan_syns = capture::tshark_fields(
        &wan_file,
        &format!("{syn} && ip.src == {LAN_HOST}"),
        &["tcp.options.mss_val"],
    )
    .expect("tshark");
    let lan_syns = capture::tshark_fields(
        &lan_file,
        &format!("{syn} && ip.src == {DC1_HOST}"),
        &["tcp.options.mss_val"],
    )
    .expect("tshark");
    for (what, syns) in [("LAN → WAN", &wan_syns), ("DC → LAN", &lan_syns)] {
        assert!(!syns.is_empty(), "{what}: SYNs captured");
        for fields in syns {
            let mss: u16 = fields[0].parse().expect("MSS value");
            assert!(mss <= MSS, "{what}: SYN with MSS {mss} > {MSS}");
        }
    }
    // And the DC really offered more: the CPE did the clamping.
    let offered = capture::tshark_fields(
        &wan_file,
        &format!("{syn} && ip.src == {DC1_HOST}"),
        &["tcp.options.mss_val"],
    )
    .expect("tshark");
    assert!(
        offered.iter().any(|f| f[0] == "1436"),
        "DC's SYN-ACKs offered 1436: {offered:?}"
    );
}

#[test]
fn too_big_df_packets_get_frag_needed_with_the_tunnel_mtu() {
    for fast_path in [false, true] {
        let Some(t) = topology(
            "too_big_df_packets_get_frag_needed_with_the_tunnel_mtu",
            fast_path,
        ) else {
            return;
        };
        // 1372 + 28 = 1400 fits; one more byte does not.
        let fits = ping(&t.lan, DC1_HOST, usize::from(TUNNEL_MTU) - 28);
        assert!(
            fits.status.success(),
            "a packet of exactly the tunnel MTU crosses"
        );
        let big = ping(&t.lan, DC1_HOST, usize::from(TUNNEL_MTU) - 27);
        let text = String::from_utf8_lossy(&big.stdout).to_string();
        assert!(!big.status.success(), "too big with DF must not cross");
        assert!(
            text.contains(&format!("mtu = {TUNNEL_MTU}"))
                || text.contains(&format!("mtu={TUNNEL_MTU}")),
            "ICMP fragmentation needed with the tunnel MTU (fast path {fast_path}): {text}"
        );
        // TCP sets DF: a large transfer completes after discovering the path MTU.
        let n = tcp_transfer(&t.lan, &t.dc1, DC1_HOST, 5067, 2_000_000).expect("bulk TCP with DF");
        assert_eq!(n, 2_000_000);
        if fast_path {
            let handed_over = t
                .cpe_maps()
                .verdicts()
                .expect("verdicts")
                .into_iter()
                .any(|v| v.hook == Hook::LanRx && v.reason == Outcome::HandoverTooBig);
            assert!(
                handed_over,
                "the fast path left the too-big packet to the kernel"
            );
        }
    }
}

#[test]
fn gso_and_gro_super_packets_are_carried_intact() {
    let Some(t) = topology("gso_and_gro_super_packets_are_carried_intact", true) else {
        return;
    };
    // GRO on the CPE's WAN (veth GRO needs it switched on) and TSO everywhere by default.
    t.cpe
        .sh("ethtool -K wan0 gro on && ethtool -K lan0 gro on")
        .expect("ethtool");
    let n = tcp_transfer(&t.dc1, &t.lan, LAN_HOST, 5068, 20_000_000).expect("DC → LAN bulk");
    assert_eq!(n, 20_000_000);
    let n = tcp_transfer(&t.lan, &t.dc1, DC1_HOST, 5069, 20_000_000).expect("LAN → DC bulk");
    assert_eq!(n, 20_000_000);
    let maps = t.cpe_maps();
    let a = maps.tunnel_stats(0).expect("A");
    // Super-packets: more bytes per decapsulated packet than the tunnel MTU allows on the wire.
    assert!(
        a.rx_bytes / a.rx_packets.max(1) > u64::from(TUNNEL_MTU),
        "WAN receive saw GSO/GRO super-packets: {} B in {} packets",
        a.rx_bytes,
        a.rx_packets
    );
    assert_no_drops(&maps);
}

#[test]
fn teardown_leaves_nothing_behind() {
    let Some(t) = topology("teardown_leaves_nothing_behind", true) else {
        return;
    };
    // A fresh namespace forwards nothing; vc turned forwarding on.
    assert_eq!(
        t.cpe
            .sh("sysctl -n net.ipv4.ip_forward")
            .expect("sysctl")
            .trim(),
        "1"
    );
    t.cpe_down().expect("datapath down");
    let links = t.cpe.sh("ip -o link show").expect("links");
    assert!(
        !links.contains("vc-dc"),
        "tunnel interfaces removed: {links}"
    );
    for dev in ["wan0", "lan0"] {
        let filters = t
            .cpe
            .sh(&format!(
                "tc filter show dev {dev} ingress; tc filter show dev {dev} egress"
            ))
            .expect("tc");
        assert!(
            !filters.contains("vc_"),
            "no filters left on {dev}: {filters}"
        );
    }
    let tcx = t.cpe.sh("bpftool net show").expect("bpftool net");
    assert!(!tcx.contains("vc_"), "no tc programs left: {tcx}");
    // This bpftool predates tcx: the kernel's own answer, per device and program.
    for (dev, prog) in [
        ("wan0", "vc_wan_rx"),
        ("wan0", "vc_wan_guard"),
        ("lan0", "vc_lan_rx"),
    ] {
        assert!(
            !vc_fixtures::gre_lab::tc_program_on(&t.cpe, dev, prog),
            "{prog} left on {dev}"
        );
    }
    // What `down` keeps on purpose: the backstop, which only purge removes.
    let routes = t.cpe.sh("ip route show table main").expect("routes");
    assert!(
        routes.contains("unreachable 203.0.113.0/24")
            && routes.contains("unreachable 100.64.0.0/30"),
        "the backstop outlives `datapath down`: {routes}"
    );
    assert!(!t.cpe_spec.pin_dir.exists(), "pins removed");
    assert_eq!(
        t.cpe
            .sh("sysctl -n net.ipv4.ip_forward")
            .expect("sysctl")
            .trim(),
        "0",
        "forwarding restored"
    );
    // A second teardown finds nothing to do and succeeds.
    t.cpe_down().expect("idempotent");
}

#[test]
fn the_benchmark_baseline_forwards_without_vc() {
    if !privileged("the_benchmark_baseline_forwards_without_vc") {
        return;
    }
    let t = Topology::plain();
    assert_ping(&t.lan, DC1_HOST);
    assert!(
        !t.cpe.sh("ip -o link").expect("links").contains("vc-"),
        "no vc in the baseline"
    );
    assert_eq!(
        tcp_transfer(&t.lan, &t.dc1, DC1_HOST, 5070, 100_000).expect("TCP"),
        100_000
    );
}

#[test]
fn the_tunnel_mtu_follows_the_path() {
    let Some(t) = topology("the_tunnel_mtu_follows_the_path", true) else {
        return;
    };
    // The path toward DC1 shrinks to 1400 (as an ICMP-learned exception would make it).
    t.cpe
        .sh("ip route add 198.18.1.1/32 via 198.51.100.254 mtu 1400")
        .expect("route");
    let spec = t.cpe_spec.clone();
    let changed = t
        .cpe
        .run_in(move || {
            vc_fixtures::block_on(async move {
                let datapath = vc_agent::datapath::Datapath::up(spec).await?;
                datapath
                    .follow_path_mtu(|_| Wrapping {
                        esp: None,
                        nat_t: false,
                    })
                    .await
            })
        })
        .expect("thread")
        .expect("follow the path MTU");
    // GRE only: 1400 - 24 = 1376 for tunnel A; tunnel B's path is unchanged (1500 → capped
    // by its configured 1400: no change).
    assert_eq!(changed, vec![(0, 1376)]);
    assert!(
        t.cpe
            .sh("ip link show vc-dc1")
            .expect("link")
            .contains("mtu 1376")
    );
    assert_eq!(t.cpe_maps().tunnel(0).expect("tunnel").mtu, 1376);
    // What fits the new tunnel MTU crosses; one byte more gets frag-needed with it.
    assert!(
        ping(&t.lan, DC1_HOST, 1376 - 28).status.success(),
        "1376 fits"
    );
    let big = ping(&t.lan, DC1_HOST, 1377 - 28);
    let text = String::from_utf8_lossy(&big.stdout).to_string();
    assert!(
        text.contains("mtu = 1376") || text.contains("mtu=1376"),
        "frag-needed with 1376: {text}"
    );
}
