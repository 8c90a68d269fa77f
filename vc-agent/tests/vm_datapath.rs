//! The datapath in IPsec mode, on Debian 12's kernel (6.1) in the test VM: this host's kernel
//! has no ESP and no GRE. The DC is Linux `ip_gre` + XFRM, keyed by hand (the IKE daemon's
//! part is proven by the IPsec tests); the CPE is vc.
//!
//! ```text
//!  lan ──eth0/lan0── cpe (vc) ──wan0/wan0── dc (ip_gre gre1, 203.0.113.10 on lo)
//!  10.1.0.10         10.1.0.1  198.51.100.1   198.51.100.2
//!                    vc-dc1 100.64.0.1/30 ~~~ gre1 100.64.0.2/30   (GRE in ESP, reqid 1)
//! ```
use std::{
    net::{Ipv4Addr, SocketAddrV4},
    time::Duration,
};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use vc_agent::{
    datapath::{AttachMode, Datapath, DatapathMaps, DatapathSpec, Mode, TunnelSpec},
    keepalive::{KeepaliveSender, keepalive_frame},
};
use vc_common::{DropReason, Hook};
use vc_testkit::{
    NetNs,
    bpffs::TempBpfFs,
    capture::{self, Capture, Direction},
    traffic::tcp_transfer,
    veth, vm, wait_for,
};

const CPE_GRE: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);
const DC_GRE: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 2);
const DC_HOST: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 10);
const LAN_HOST: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 10);
/// An address outside the GRE-only policy: GRE to it leaves in clear (the negative control).
const OUTSIDE_POLICY: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 99);

const KEY_TO_DC: &str = "0x0123456789abcdef0123456789abcdef01020304";
const KEY_TO_CPE: &str = "0xfedcba9876543210fedcba987654321004030201";
const KEY_OTHER: &str = "0x00112233445566778899aabbccddeeff0a0b0c0d";

fn block_on<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(f)
}

/// ESP tunnel-mode SAs with reqid 1 and GRE-only policies, one side.
fn xfrm(
    ns: &NetNs,
    local: Ipv4Addr,
    remote: Ipv4Addr,
    spi_out: &str,
    key_out: &str,
    spi_in: &str,
    key_in: &str,
) {
    let aead = "aead 'rfc4106(gcm(aes))'";
    ns.sh(&format!(
        "ip xfrm state add src {local} dst {remote} proto esp spi {spi_out} reqid 1 mode tunnel {aead} {key_out} 128
         ip xfrm state add src {remote} dst {local} proto esp spi {spi_in} reqid 1 mode tunnel {aead} {key_in} 128
         ip xfrm policy add src {local}/32 dst {remote}/32 proto gre dir out tmpl src {local} dst {remote} proto esp reqid 1 mode tunnel
         ip xfrm policy add src {remote}/32 dst {local}/32 proto gre dir in tmpl src {remote} dst {local} proto esp reqid 1 mode tunnel"
    ))
    .unwrap_or_else(|e| panic!("xfrm in {}: {e:#}", ns.name()));
}

struct Lab {
    lan: NetNs,
    cpe: NetNs,
    dc: NetNs,
    spec: DatapathSpec,
    _bpffs: TempBpfFs,
}

impl Lab {
    fn new() -> Self {
        let lan = NetNs::new("vlan").expect("netns");
        let cpe = NetNs::new("vcpe").expect("netns");
        let dc = NetNs::new("vdc").expect("netns");
        veth(&lan, "eth0", &cpe, "lan0").expect("veth");
        veth(&cpe, "wan0", &dc, "wan0").expect("veth");
        lan.sh("ip addr add 10.1.0.10/24 dev eth0; ip route add default via 10.1.0.1")
            .expect("lan");
        cpe.sh("ip addr add 10.1.0.1/24 dev lan0; ip addr add 198.51.100.1/24 dev wan0")
            .expect("cpe");
        dc.sh(
            "ip addr add 198.51.100.2/24 dev wan0
             ip link add gre1 type gre local 198.51.100.2 remote 198.51.100.1 ttl 64
             ip addr add 100.64.0.2/30 dev gre1; ip link set gre1 mtu 1400 up
             ip addr add 203.0.113.10/32 dev lo
             ip route add 10.1.0.0/24 via 100.64.0.1 dev gre1
             sysctl -qw net.ipv4.ip_forward=1 net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.gre1.rp_filter=0 net.ipv4.conf.gre1.accept_local=1
             ip neigh add 198.51.100.99 lladdr 02:00:00:00:99:99 dev wan0",
        )
        .expect("dc");
        xfrm(
            &cpe, CPE_GRE, DC_GRE, "0x1001", KEY_TO_DC, "0x2002", KEY_TO_CPE,
        );
        xfrm(
            &dc, DC_GRE, CPE_GRE, "0x2002", KEY_TO_CPE, "0x1001", KEY_TO_DC,
        );

        let bpffs = TempBpfFs::new().expect("bpffs");
        let spec = DatapathSpec {
            mode: Mode::Ipsec,
            wan_if: "wan0".into(),
            lan_if: Some("lan0".into()),
            fast_path: true,
            pin_dir: bpffs.path().join("vc"),
            state_dir: bpffs.path().with_extension("state"),
            tunnels: vec![TunnelSpec {
                id: 0,
                name: "vc-dc1".into(),
                local_gre: CPE_GRE,
                remote_gre: DC_GRE,
                remote_ipsec: DC_GRE,
                reqid: 1,
                local_tunnel: "100.64.0.1/30".parse().expect("prefix"),
                dc_tunnel_ip: Ipv4Addr::new(100, 64, 0, 2),
                cisco_prefix: "203.0.113.0/24".parse().expect("prefix"),
                mtu: 1400,
                mss: 1350,
            }],
        };
        let up = spec.clone();
        let mode = cpe
            .run_in(move || {
                block_on(async move { Datapath::up(up).await.map(|d| d.attach_mode()) })
            })
            .expect("thread")
            .unwrap_or_else(|e| panic!("datapath up on 6.1: {e:?}"));
        assert_eq!(mode, AttachMode::Clsact, "6.1 has no tcx");
        cpe.sh("ip route add 203.0.113.0/24 via 100.64.0.2 dev vc-dc1")
            .expect("route");
        let lab = Lab {
            lan,
            cpe,
            dc,
            spec,
            _bpffs: bpffs,
        };
        lab.maps()
            .set_route("203.0.113.0/24".parse().expect("prefix"), 1)
            .expect("LPM route");
        lab
    }

    fn maps(&self) -> DatapathMaps {
        DatapathMaps::from_pins(&self.spec.pin_dir.join("maps")).expect("maps")
    }

    fn count(&self, hook: Hook, reason: DropReason) -> u64 {
        self.maps()
            .verdicts()
            .expect("verdicts")
            .iter()
            .filter(|v| v.hook == hook && v.reason == reason)
            .map(|v| v.packets)
            .sum()
    }
}

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

    let ifindex: u32 = lab
        .cpe
        .sh("cat /sys/class/net/vc-dc1/ifindex")
        .expect("ifindex")
        .trim()
        .parse()
        .expect("ifindex");
    let tunnel = &lab.spec.tunnels[0];
    let frame = keepalive_frame(tunnel.tunnel_mac(), tunnel.peer_mac(), CPE_GRE, DC_GRE);
    lab.cpe
        .run_in(move || KeepaliveSender::new(ifindex)?.send(&frame))
        .expect("thread")
        .expect("send our keepalive");
    wait_for(Duration::from_secs(5), "the keepalive reply", || {
        (lab.maps().tunnel_stats(0).ok()?.keepalive_rx == 1).then_some(())
    })
    .expect("keepalive reply counted");
    assert_eq!(lab.maps().tunnel_stats(0).expect("stats").keepalive_tx, 1);
}

#[test]
fn ipsec_mode_every_path_encrypted_and_checked() {
    if !vm::inside_or_boot("ipsec_mode_every_path_encrypted_and_checked") {
        return;
    }
    let lab = Lab::new();
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

    let (cpe_file, dc_file) = (
        cpe_cap.stop().expect("capture"),
        dc_cap.stop().expect("capture"),
    );
    let cpe_lines = capture::tcpdump_lines(&cpe_file, "").expect("read");
    let dc_lines = capture::tcpdump_lines(&dc_file, "").expect("read");
    let clear = |lines: &[String]| {
        lines
            .iter()
            .filter(|l| !l.contains(": ESP("))
            .cloned()
            .collect::<Vec<_>>()
    };
    assert!(
        cpe_lines.len() > 100 && dc_lines.len() > 100,
        "captures saw the traffic: {} / {}",
        cpe_lines.len(),
        dc_lines.len()
    );
    assert_eq!(
        clear(&cpe_lines),
        Vec::<String>::new(),
        "the CPE put only ESP on the wire"
    );
    let dc_clear = clear(&dc_lines);
    assert_eq!(
        dc_clear.len(),
        1,
        "the control packet and nothing else: {dc_clear:?}"
    );
    assert!(
        dc_clear[0].contains(&format!("> {OUTSIDE_POLICY}: GRE")),
        "{dc_clear:?}"
    );
    assert_eq!(
        lab.count(Hook::WanTxGuard, DropReason::ClearGre),
        0,
        "nothing even tried to leak"
    );
}

#[test]
fn ipsec_mode_refuses_gre_from_another_sa_or_none() {
    if !vm::inside_or_boot("ipsec_mode_refuses_gre_from_another_sa_or_none") {
        return;
    }
    let lab = Lab::new();
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
    let file = cap.stop().expect("capture");
    assert_eq!(
        capture::tcpdump_lines(&file, "").expect("read"),
        Vec::<String>::new(),
        "no clear GRE on the wire"
    );
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
