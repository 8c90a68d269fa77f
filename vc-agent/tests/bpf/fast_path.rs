//! The fast paths that ask the kernel's FIB where a packet goes (`bpf_fib_lookup`): GRE-only
//! mode's LAN → WAN shortcut and decapsulated traffic straight to the LAN. They run in a
//! namespace of their own, with the routes and neighbours they look up.
use vc_agent::datapath::Program;
use vc_common::settings_flags;
use vc_testkit::{
    NetNs,
    packet::{Ipv4, ipv4_header_ok, udp_in_ipv4},
    testrun::TC_ACT_REDIRECT,
    veth,
};

use crate::fixture::{
    A_PEER_MAC, A_TUNNEL_MAC, CPE_TUNNEL_A, DC1_GRE, DC1_HOST, Fixture, LAN_HOST, TUNNEL_A, l3,
    lan_frame, wan_gre_frame,
};

const GATEWAY_MAC: [u8; 6] = [2, 0, 0, 0, 0xfe, 0xfe];
const HOST_MAC: [u8; 6] = [2, 0, 0, 0, 0x1a, 0x0a];

pub fn mac(ns: &NetNs, dev: &str) -> [u8; 6] {
    let text = ns
        .sh(&format!("cat /sys/class/net/{dev}/address"))
        .expect("address");
    let bytes: Vec<u8> = text
        .trim()
        .split(':')
        .map(|b| u8::from_str_radix(b, 16).expect("hex"))
        .collect();
    bytes.try_into().expect("six bytes")
}

pub fn ifindex(ns: &NetNs, dev: &str) -> u32 {
    ns.ifindex(dev).expect("ifindex")
}

#[test]
fn gre_only_fast_path_goes_straight_to_the_wan() {
    if !vc_testkit::privileged("gre_only_fast_path_goes_straight_to_the_wan") {
        return;
    }
    let cpe = NetNs::new("fpc").expect("netns");
    let wan = NetNs::new("fpw").expect("netns");
    veth(&cpe, "wan0", &wan, "w1").expect("veth");
    cpe.sh("sysctl -qw net.ipv4.ip_forward=1
         ip addr add 198.51.100.1/24 dev wan0
         ip route add default via 198.51.100.254
         ip neigh add 198.51.100.254 lladdr 02:00:00:00:fe:fe dev wan0 nud permanent")
        .expect("cpe");
    let wan0 = mac(&cpe, "wan0");
    let wan0_index = ifindex(&cpe, "wan0");
    let cpe_name = cpe.name().to_string();
    cpe.run_in(move || {
        let mut f = Fixture::new("gre_only_fast_path_goes_straight_to_the_wan").expect("root");
        f.settings(settings_flags::EXTERNAL_IPSEC | settings_flags::FAST_PATH);
        let inner = udp_in_ipv4(&Ipv4::new(LAN_HOST, DC1_HOST, 0), 1, 2, &[0; 100]);
        let out = f.run(Program::LanRx, &lan_frame(&inner));
        assert_eq!(out.action, TC_ACT_REDIRECT);
        assert_eq!(&out.data[..6], &GATEWAY_MAC, "to the WAN gateway");
        assert_eq!(&out.data[6..12], &wan0, "from the WAN device {wan0_index}");
        let outer = l3(&out.data);
        assert_eq!(&outer[16..20], &DC1_GRE, "GRE to DC1");
        assert_eq!(outer[8], 64, "the outer packet leaves as built");
        assert!(ipv4_header_ok(outer) && ipv4_header_ok(&outer[24..]));
        assert_eq!(outer[24 + 8], 63, "the inner TTL was decremented once");

        // No neighbour yet: the stack resolves it, through the tunnel's veth.
        let deleted = std::process::Command::new("ip")
            .args(["neigh", "del", "198.51.100.254", "dev", "wan0"])
            .status()
            .expect("ip neigh del");
        assert!(deleted.success());
        let out = f.run(Program::LanRx, &lan_frame(&inner));
        assert_eq!(out.action, TC_ACT_REDIRECT);
        assert_eq!(
            &out.data[..6],
            &A_PEER_MAC,
            "through the tunnel veth in {cpe_name}"
        );
        // IPsec mode never shortcuts: the packet must meet XFRM.
        f.settings(settings_flags::FAST_PATH);
        let out = f.run(Program::LanRx, &lan_frame(&inner));
        assert_eq!(&out.data[..6], &A_PEER_MAC, "IPsec mode takes the stack");
    })
    .expect("in the namespace");
}

#[test]
fn decapsulated_traffic_for_the_lan_skips_the_tunnel_interface() {
    if !vc_testkit::privileged("decapsulated_traffic_for_the_lan_skips_the_tunnel_interface") {
        return;
    }
    let cpe = NetNs::new("fpr").expect("netns");
    let lan = NetNs::new("fpl").expect("netns");
    veth(&cpe, "lan0", &lan, "eth0").expect("veth");
    cpe.sh("sysctl -qw net.ipv4.ip_forward=1
         ip link add vc-dc1 type veth peer name vc-dc1p
         ip addr add 100.64.0.1/30 dev vc-dc1
         ip link set vc-dc1 up; ip link set vc-dc1p up
         ip addr add 10.1.0.1/24 dev lan0
         ip neigh add 10.1.0.10 lladdr 02:00:00:00:1a:0a dev lan0 nud permanent")
        .expect("cpe");
    let lan0 = mac(&cpe, "lan0");
    let (tunnel, peer) = (ifindex(&cpe, "vc-dc1"), ifindex(&cpe, "vc-dc1p"));
    cpe.run_in(move || {
        let mut f = Fixture::new("decapsulated_traffic_for_the_lan_skips_the_tunnel_interface")
            .expect("root");
        f.settings(settings_flags::EXTERNAL_IPSEC | settings_flags::FAST_PATH);
        f.set_devices(TUNNEL_A, tunnel, peer);
        let to_lan = udp_in_ipv4(
            &Ipv4::new(DC1_HOST, LAN_HOST, 0).ttl(60),
            5060,
            5060,
            b"rtp",
        );
        let out = f.run(Program::WanRx, &wan_gre_frame(DC1_GRE, &to_lan));
        assert_eq!(out.action, TC_ACT_REDIRECT);
        assert_eq!(&out.data[..6], &HOST_MAC, "straight to the LAN host");
        assert_eq!(&out.data[6..12], &lan0);
        let inner = l3(&out.data);
        assert_eq!(inner[8], 59, "forwarded: TTL one lower");
        assert!(ipv4_header_ok(inner));
        assert_eq!(f.stats(TUNNEL_A).rx_fast_path_packets, 1);

        // Our own tunnel IP (BGP, pings) is delivered by the tunnel interface.
        let to_us = udp_in_ipv4(&Ipv4::new(DC1_HOST, CPE_TUNNEL_A, 0).ttl(60), 1, 2, b"x");
        let out = f.run(Program::WanRx, &wan_gre_frame(DC1_GRE, &to_us));
        assert_eq!(&out.data[..6], &A_TUNNEL_MAC);
        assert_eq!(l3(&out.data)[8], 60, "not forwarded here: TTL as received");
        // With the fast path off, everything takes the tunnel interface.
        f.settings(settings_flags::EXTERNAL_IPSEC);
        let out = f.run(Program::WanRx, &wan_gre_frame(DC1_GRE, &to_lan));
        assert_eq!(&out.data[..6], &A_TUNNEL_MAC);
        // A TTL that would expire goes to the kernel, which answers time-exceeded.
        f.settings(settings_flags::EXTERNAL_IPSEC | settings_flags::FAST_PATH);
        let dying = udp_in_ipv4(&Ipv4::new(DC1_HOST, LAN_HOST, 0).ttl(1), 1, 2, b"x");
        let out = f.run(Program::WanRx, &wan_gre_frame(DC1_GRE, &dying));
        assert_eq!(&out.data[..6], &A_TUNNEL_MAC);
        assert_eq!(f.stats(TUNNEL_A).rx_fast_path_packets, 1);
    })
    .expect("in the namespace");
}
