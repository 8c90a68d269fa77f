//! The datapath in IPsec mode, on Debian 12's kernel (6.1) in the test VM: this host's kernel
//! has no ESP and no GRE. See `lab` for the topology.
use std::{
    net::{Ipv4Addr, SocketAddrV4},
    time::Duration,
};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use vc_agent::{
    datapath::{
        Datapath, FrameSender,
        mtu::{EspOverhead, Wrapping},
    },
    ipsec::policy::{self, BlockPolicy, Blocked, Direction as XfrmDirection},
    keepalive::keepalive_frame,
};
use vc_common::{DropReason, Hook};
use vc_fixtures::{
    vm_lab::{CPE_GRE, Cpe, DC_GRE, DC_HOST, KEY_OTHER, LAN_HOST, Lab, OUTSIDE_POLICY, block_on},
    watched::Watched,
};
use vc_testkit::{
    NetNs,
    capture::{Capture, Direction, Kind},
    traffic::tcp_transfer,
    vm, wait_for,
};

fn results(name: &str) -> std::path::PathBuf {
    std::env::var_os(vm::RESULTS_DIR)
        .map_or_else(std::env::temp_dir, std::path::PathBuf::from)
        .join(name)
}

fn ping(ns: &NetNs, dst: Ipv4Addr) -> bool {
    ns.sh_output(&format!("ping -c1 -W3 {dst}"))
        .expect("ping")
        .status
        .success()
}

/// A GRE socket in `ns` (raw `IPPROTO_GRE`: the kernel adds the IP header, XFRM applies).
fn gre_socket(ns: &NetNs, bind: Ipv4Addr) -> Socket {
    ns.run_in(move || {
        let s =
            Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::from(47))).expect("raw GRE socket");
        s.bind(&SockAddr::from(SocketAddrV4::new(bind, 0)))
            .expect("bind");
        s.set_read_timeout(Some(Duration::from_millis(200)))
            .expect("timeout");
        s
    })
    .expect("thread")
}

/// Cisco's keepalive as the DC sends it: GRE whose payload is the packet we are to return.
fn dc_keepalive() -> Vec<u8> {
    let mut inner = vec![0x45, 0, 0, 24, 0, 0, 0, 0, 255, 47, 0, 0];
    inner.extend_from_slice(&CPE_GRE.octets());
    inner.extend_from_slice(&DC_GRE.octets());
    let check = vc_testkit::packet::checksum(&inner);
    inner[10..12].copy_from_slice(&check.to_be_bytes());
    inner.extend_from_slice(&[0, 0, 0, 0]);
    let mut gre = vec![0, 0, 0x08, 0x00];
    gre.extend_from_slice(&inner);
    gre
}

/// Waits for a GRE packet from `src` with payload type 0 on `socket`.
fn await_gre_type_0(socket: &Socket, src: Ipv4Addr) -> bool {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let mut buf = [std::mem::MaybeUninit::<u8>::uninit(); 2048];
    while std::time::Instant::now() < deadline {
        if let Ok(n) = socket.recv(&mut buf) {
            // SAFETY: recv initialised the first n bytes.
            let p: Vec<u8> = buf[..n]
                .iter()
                .map(|b| unsafe { b.assume_init() })
                .collect();
            let hlen = usize::from(p[0] & 0x0f) * 4;
            if p[12..16] == src.octets() && p.len() >= hlen + 4 && p[hlen + 2..hlen + 4] == [0, 0] {
                return true;
            }
        }
    }
    false
}

/// R13: the DC's keepalive is decapsulated, reflected by the kernel and leaves encrypted;
/// ours goes out through the tunnel, comes back through Linux `ip_gre` and is counted.
fn keepalives_both_ways(lab: &Lab, dc_gre: &Socket) {
    dc_gre
        .send_to(
            &dc_keepalive(),
            &SockAddr::from(SocketAddrV4::new(CPE_GRE, 0)),
        )
        .expect("send the DC's keepalive");
    assert!(
        await_gre_type_0(dc_gre, CPE_GRE),
        "the reflected keepalive reached the DC"
    );
    assert_eq!(
        lab.maps()
            .tunnel_stats(0)
            .expect("stats")
            .keepalive_reflected,
        1
    );

    let ifindex = lab.cpe.ifindex("vc-dc1").expect("ifindex");
    let tunnel = &lab.spec.tunnels[0];
    let frame = keepalive_frame(tunnel.tunnel_mac(), tunnel.peer_mac(), CPE_GRE, DC_GRE);
    lab.cpe
        .run_in(move || FrameSender::new(ifindex)?.send(&frame))
        .expect("thread")
        .expect("send our keepalive");
    wait_for(Duration::from_secs(5), "the keepalive reply", || {
        (lab.maps().tunnel_stats(0).ok()?.keepalive_rx == 1).then_some(())
    })
    .expect("keepalive reply counted");
    assert_eq!(lab.maps().tunnel_stats(0).expect("stats").keepalive_tx, 1);
}

fn path_mtu_with_esp(lab: &Lab) {
    lab.cpe
        .sh("ip route add 198.51.100.2/32 dev wan0 mtu 1400")
        .expect("route");
    let spec = lab.spec.clone();
    let changed = lab
        .cpe
        .run_in(move || {
            block_on(async move {
                let datapath = Datapath::up(spec).await?;
                let esp = Some(EspOverhead::from_proposal("aes128gcm16"));
                datapath
                    .follow_path_mtu(|_| Wrapping { esp, nat_t: false })
                    .await
            })
        })
        .expect("thread")
        .expect("follow the path MTU");
    assert_eq!(changed, vec![(0, 1322)]);
    let fits = lab
        .lan
        .sh_output(&format!("ping -c1 -W3 -M do -s {} {DC_HOST}", 1322 - 28))
        .expect("ping");
    assert!(fits.status.success(), "1322 fits the ESP path exactly");
    let big = lab
        .lan
        .sh_output(&format!("ping -c1 -W3 -M do -s {} {DC_HOST}", 1323 - 28))
        .expect("ping");
    let text = String::from_utf8_lossy(&big.stdout).to_string();
    assert!(
        text.contains("mtu = 1322") || text.contains("mtu=1322"),
        "frag-needed: {text}"
    );
}

#[test]
fn ipsec_mode_every_path_encrypted_and_checked() {
    if !vm::inside_or_boot("ipsec_mode_every_path_encrypted_and_checked") {
        return;
    }
    let lab = Lab::new(Cpe::Vc);
    let (cpe_file, dc_file) = (results("cpe-wan-out.pcap"), results("dc-wan-out.pcap"));
    let cpe_cap =
        Capture::start(&lab.cpe, "wan0", Direction::Out, "ip", &cpe_file).expect("capture");
    let dc_cap = Capture::start(&lab.dc, "wan0", Direction::Out, "ip", &dc_file).expect("capture");

    // Routed traffic both ways, over the fast path and the tunnel interface.
    assert!(ping(&lab.lan, DC_HOST), "LAN → DC ping");
    assert!(ping(&lab.dc, LAN_HOST), "DC → LAN ping");
    assert_eq!(
        tcp_transfer(&lab.lan, &lab.dc, DC_HOST, 5060, 500_000).expect("TCP"),
        500_000
    );
    assert_eq!(
        tcp_transfer(&lab.dc, &lab.lan, LAN_HOST, 5061, 500_000).expect("TCP"),
        500_000
    );
    // R15: tunnel IP to tunnel IP.
    assert!(
        ping(&lab.cpe, Ipv4Addr::new(100, 64, 0, 2)),
        "tunnel IP ping"
    );

    let dc_gre = gre_socket(&lab.dc, DC_GRE);
    keepalives_both_ways(&lab, &dc_gre);

    // Negative control: GRE outside the policy leaves in clear, and the check must see it.
    dc_gre
        .send_to(
            &[0, 0, 0x08, 0x00],
            &SockAddr::from(SocketAddrV4::new(OUTSIDE_POLICY, 0)),
        )
        .expect("send clear GRE");

    let (cpe, dc) = (
        cpe_cap.stop().expect("capture"),
        dc_cap.stop().expect("capture"),
    );
    assert!(
        cpe.count(Kind::Esp) > 100 && dc.count(Kind::Esp) > 100,
        "captures saw the traffic: {cpe} / {dc}"
    );
    // No IKE here (manual keys): everything but ESP is clear.
    cpe.assert_only_ike_and_esp();
    let dc_clear = dc.not_ike_or_esp();
    assert_eq!(
        dc_clear.len(),
        1,
        "the control packet and nothing else: {dc_clear:?}"
    );
    assert!(
        dc_clear[0].kind == Kind::Gre
            && dc_clear[0]
                .line
                .contains(&format!("> {OUTSIDE_POLICY}: GRE")),
        "{dc_clear:?}"
    );
    assert_eq!(
        lab.count(Hook::WanTxGuard, DropReason::ClearGre),
        0,
        "nothing even tried to leak"
    );

    // R14 with ESP: a 1400-byte path toward the DC leaves 1322 bytes for the inner packet
    // with AES-GCM-16 (1400 - 20 - 8 - 8 - 16 = 1348, minus the ESP trailer and GRE).
    path_mtu_with_esp(&lab);

    // The benchmarks' baseline, kernel GRE on the CPE with the same XFRM, carries traffic.
    let baseline = Lab::new(Cpe::KernelGre);
    assert!(ping(&baseline.lan, DC_HOST), "kernel GRE + XFRM baseline");
}

#[test]
fn ipsec_mode_refuses_gre_from_another_sa_or_none() {
    if !vm::inside_or_boot("ipsec_mode_refuses_gre_from_another_sa_or_none") {
        return;
    }
    let lab = Lab::new(Cpe::Vc);
    assert!(ping(&lab.lan, DC_HOST), "works with the tunnel's own SA");
    assert_eq!(lab.count(Hook::WanRx, DropReason::WrongSa), 0);

    // The DC now encrypts with an SA of reqid 2, which the CPE can decrypt but which is not
    // tunnel A's: decrypted fine, then refused by the SA check.
    lab.dc
        .sh(&format!(
            "ip xfrm policy del src 198.51.100.2/32 dst 198.51.100.1/32 proto gre dir out
             ip xfrm state add src 198.51.100.2 dst 198.51.100.1 proto esp spi 0x3003 reqid 2 mode tunnel aead 'rfc4106(gcm(aes))' {KEY_OTHER} 128
             ip xfrm policy add src 198.51.100.2/32 dst 198.51.100.1/32 proto gre dir out tmpl src 198.51.100.2 dst 198.51.100.1 proto esp reqid 2 mode tunnel"
        ))
        .expect("DC on reqid 2");
    lab.cpe
        .sh(&format!(
            "ip xfrm state add src 198.51.100.2 dst 198.51.100.1 proto esp spi 0x3003 reqid 2 mode tunnel aead 'rfc4106(gcm(aes))' {KEY_OTHER} 128"
        ))
        .expect("CPE can decrypt reqid 2");
    assert!(
        !ping(&lab.lan, DC_HOST),
        "replies decrypted by another SA must not get through"
    );
    assert!(
        lab.count(Hook::WanRx, DropReason::WrongSa) >= 1,
        "counted as wrong SA"
    );

    // No SA at all: the DC sends its GRE in clear; the CPE drops it.
    lab.dc
        .sh("ip xfrm policy del src 198.51.100.2/32 dst 198.51.100.1/32 proto gre dir out")
        .expect("DC without policy");
    assert!(
        !ping(&lab.lan, DC_HOST),
        "clear GRE must not be accepted in IPsec mode"
    );
    assert!(
        lab.count(Hook::WanRx, DropReason::NoSecpath) >= 1,
        "counted as no secpath"
    );

    // And the CPE never sends GRE in clear, even with its own policy gone: the guard holds.
    lab.cpe
        .sh("ip xfrm policy del src 198.51.100.1/32 dst 198.51.100.2/32 proto gre dir out")
        .expect("CPE without policy");
    let file = results("cpe-no-policy.pcap");
    let cap =
        Capture::start(&lab.cpe, "wan0", Direction::Out, "ip proto 47", &file).expect("capture");
    assert!(!ping(&lab.lan, DC_HOST));
    let seen = cap.stop().expect("capture");
    assert!(seen.lines.is_empty(), "no clear GRE on the wire: {seen}");
    assert!(
        lab.count(Hook::WanTxGuard, DropReason::ClearGre) >= 1,
        "the guard dropped it"
    );

    // Teardown on 6.1 (clsact) leaves nothing behind.
    let spec = lab.spec.clone();
    lab.cpe
        .run_in(move || block_on(Datapath::down(&spec)))
        .expect("thread")
        .expect("down");
    for (dev, dir) in [("wan0", "ingress"), ("wan0", "egress"), ("lan0", "ingress")] {
        let filters = lab
            .cpe
            .sh(&format!("tc filter show dev {dev} {dir}"))
            .expect("tc");
        assert!(!filters.contains("vc_"), "{dev} {dir}: {filters}");
    }
    assert!(!lab.cpe.sh("ip -o link").expect("links").contains("vc-dc1"));
}

/// Whether the CPE's WAN has both of vc's clsact filters (6.1: no tcx).
fn wan_filters_in_place(lab: &Lab) -> bool {
    let show = |dir: &str| {
        lab.cpe
            .sh(&format!("tc filter show dev wan0 {dir}"))
            .unwrap_or_default()
    };
    show("egress").contains("vc_wan_guard") && show("ingress").contains("vc_wan_rx")
}

/// Debian 12's kernel, clsact: `tc qdisc del dev wan0 clsact` takes the guard and WAN receive
/// and sends no link event. The agent's watch puts both back (the TC event, or the audit at
/// the latest); meanwhile and after, only ESP leaves the WAN, and the DC's traffic is
/// decapsulated again. Then, with the tunnel's route gone (BGP down), the backstop keeps the
/// /24 off the default route.
#[test]
fn a_deleted_clsact_qdisc_is_put_back_and_only_esp_leaves() {
    if !vm::inside_or_boot("a_deleted_clsact_qdisc_is_put_back_and_only_esp_leaves") {
        return;
    }
    let lab = Lab::new(Cpe::Vc);
    // The agent's XFRM block policies (this lab keys its SAs by hand, with no agent): among
    // them the one that keeps the kernel's ICMP about decrypted GRE in while WAN receive is
    // gone.
    let blocks = [
        (CPE_GRE, DC_GRE, XfrmDirection::Out, Blocked::Gre),
        (DC_GRE, CPE_GRE, XfrmDirection::In, Blocked::Gre),
        (
            CPE_GRE,
            DC_GRE,
            XfrmDirection::Out,
            Blocked::IcmpUnreachable,
        ),
    ]
    .map(|(src, dst, dir, what)| BlockPolicy {
        src,
        dst,
        dir,
        what,
    });
    lab.cpe
        .run_in(move || block_on(policy::sync(&blocks)))
        .expect("thread")
        .expect("block policies");
    let _watched = Watched::start(&lab.cpe, lab.spec.clone());
    assert!(wan_filters_in_place(&lab), "attached at start");
    assert!(ping(&lab.lan, DC_HOST), "LAN → DC before");

    let file = results("cpe-wan-qdisc-del.pcap");
    let capture = Capture::start(&lab.cpe, "wan0", Direction::Out, "ip", &file).expect("capture");
    let mut pings = lab
        .lan
        .spawn(
            "ping",
            &["-n", "-i", "0.02", "-w", "30", &DC_HOST.to_string()],
        )
        .expect("ping");
    std::thread::sleep(Duration::from_millis(300));
    let started = std::time::Instant::now();
    lab.cpe
        .sh("tc qdisc del dev wan0 clsact")
        .expect("qdisc del");
    let took = wait_for(Duration::from_secs(10), "the WAN filters back", || {
        wan_filters_in_place(&lab).then(|| started.elapsed())
    })
    .expect("repaired");
    eprintln!("MEASURE repair after tc qdisc del dev wan0 clsact (6.1, clsact): {took:?}");
    std::thread::sleep(Duration::from_millis(500));
    pings.stop();
    let seen = capture.stop().expect("capture");
    assert!(seen.count(Kind::Esp) > 10, "the pings left as ESP: {seen}");
    seen.assert_only_ike_and_esp();
    assert!(
        took < reconcile_bound(),
        "repaired within the audit period: {took:?}"
    );
    assert!(
        ping(&lab.lan, DC_HOST),
        "WAN receive is back: the DC's replies are decapsulated"
    );

    // BGP down: the tunnel's route goes, the /24 would follow the default route; the backstop
    // answers unreachable and nothing leaves in clear.
    let file = results("cpe-wan-bgp-down.pcap");
    let capture = Capture::start(&lab.cpe, "wan0", Direction::Out, "ip", &file).expect("capture");
    // As the route manager withdraws it: from the kernel and from the fast path's map.
    lab.cpe
        .sh("ip route del 203.0.113.0/24 via 100.64.0.2 dev vc-dc1 && ip route add default via 198.51.100.2")
        .expect("routes");
    lab.maps()
        .set_route("203.0.113.0/24".parse().expect("prefix"), 0)
        .expect("LPM route withdrawn");
    let route = lab
        .cpe
        .sh("ip route get 203.0.113.10")
        .unwrap_or_else(|e| format!("{e:#}"));
    // `ip route get` refuses with EHOSTUNREACH: the unreachable route matched.
    assert!(
        route.contains("No route to host") || route.contains("unreachable"),
        "the backstop decides: {route}"
    );
    assert!(!ping(&lab.lan, DC_HOST), "no route through the tunnel");
    let seen = capture.stop().expect("capture");
    let clear = seen.not_ike_or_esp();
    assert!(clear.is_empty(), "nothing in clear: {clear:?}");
}

/// The audit period and a second of slack for the VM's scheduling.
fn reconcile_bound() -> Duration {
    vc_agent::datapath::reconcile::AUDIT_EVERY + Duration::from_secs(1)
}
