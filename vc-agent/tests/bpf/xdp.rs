//! GRE-only mode's XDP fast paths: what they forward leaves byte for byte as the TC fast path
//! sends it (counted under the XDP hooks); everything else goes up to the TC program
//! untouched and uncounted. In namespaces with the routes and neighbours the FIB lookups need.
use vc_agent::datapath::Program;
use vc_common::{Hook, Outcome, settings_flags};
use vc_testkit::{
    NetNs,
    packet::{Ipv4, Tcp, udp_in_ipv4},
    testrun::{TC_ACT_REDIRECT, XDP_PASS, XDP_REDIRECT},
    veth,
};

use crate::{
    fast_path::ifindex,
    fixture::{
        CPE_TUNNEL_A, DC1_GRE, DC1_HOST, Fixture, LAN_HOST, TUNNEL_A, lan_frame, wan_gre_frame,
    },
};

const GRE_ONLY: u32 = settings_flags::EXTERNAL_IPSEC | settings_flags::FAST_PATH;
/// Test runs arrive on loopback, as the TC runs do.
const LO: u32 = 1;

/// The frame came back unchanged with `XDP_PASS`, for the TC program to judge.
#[track_caller]
fn assert_passed(f: &mut Fixture, program: Program, frame: &[u8], why: &str) {
    let out = f.run_xdp(program, frame, LO);
    assert_eq!(out.action, XDP_PASS, "{why}: passed up");
    assert_eq!(out.data, frame, "{why}: untouched");
}

#[test]
fn xdp_encapsulation_matches_the_tc_fast_path() {
    if !vc_testkit::privileged("xdp_encapsulation_matches_the_tc_fast_path") {
        return;
    }
    let cpe = NetNs::new("xdc").expect("netns");
    let wan = NetNs::new("xdw").expect("netns");
    veth(&cpe, "wan0", &wan, "w1").expect("veth");
    cpe.sh("sysctl -qw net.ipv4.ip_forward=1
         ip addr add 198.51.100.1/24 dev wan0
         ip route add default via 198.51.100.254
         ip neigh add 198.51.100.254 lladdr 02:00:00:00:fe:fe dev wan0 nud permanent")
        .expect("cpe");
    let wan0 = ifindex(&cpe, "wan0");
    cpe.run_in(move || {
        let mut f = Fixture::new("xdp_encapsulation_matches_the_tc_fast_path").expect("root");
        f.settings(GRE_ONLY);
        let rtp = lan_frame(&udp_in_ipv4(
            &Ipv4::new(LAN_HOST, DC1_HOST, 0).tos(0xb9),
            16384,
            16384,
            &[7; 172],
        ));
        assert_passed(
            &mut f,
            Program::XdpLanRx,
            &rtp,
            "no device XDP may redirect into",
        );
        f.maps().set_xdp_devices(0, wan0).expect("XDP devices");
        let xdp = f.run_xdp(Program::XdpLanRx, &rtp, LO);
        assert_eq!(xdp.action, XDP_REDIRECT);
        f.assert_verdicts(Hook::XdpLanRx, Outcome::Forwarded, 1);
        assert_eq!(f.stats(TUNNEL_A).fast_path_packets, 1);
        let tc = f.run(Program::LanRx, &rtp);
        assert_eq!(
            tc.action, TC_ACT_REDIRECT,
            "the TC fast path to wan0 ({wan0})"
        );
        assert_eq!(xdp.data, tc.data, "the same bytes leave the WAN");

        let syn = lan_frame(
            &Tcp::syn(1460)
                .options(&[2, 4, 5, 0xb4])
                .in_ipv4(&Ipv4::new(LAN_HOST, DC1_HOST, 0), b""),
        );
        assert_passed(&mut f, Program::XdpLanRx, &syn, "a SYN (MSS clamp)");
        let dying = lan_frame(&udp_in_ipv4(
            &Ipv4::new(LAN_HOST, DC1_HOST, 0).ttl(1),
            1,
            2,
            b"x",
        ));
        assert_passed(&mut f, Program::XdpLanRx, &dying, "TTL 1");
        let big = lan_frame(&udp_in_ipv4(
            &Ipv4::new(LAN_HOST, DC1_HOST, 0),
            1,
            2,
            &[0; 1400],
        ));
        assert_passed(&mut f, Program::XdpLanRx, &big, "over the tunnel MTU");
        let spoofed = lan_frame(&udp_in_ipv4(
            &Ipv4::new(CPE_TUNNEL_A, DC1_HOST, 0),
            1,
            2,
            b"x",
        ));
        assert_passed(
            &mut f,
            Program::XdpLanRx,
            &spoofed,
            "our own source (TC drops it)",
        );
        assert_passed(&mut f, Program::XdpLanRx, &rtp[..30], "truncated");
        f.settings(settings_flags::FAST_PATH);
        assert_passed(
            &mut f,
            Program::XdpLanRx,
            &rtp,
            "IPsec mode: XDP output skips XFRM",
        );
        f.settings(GRE_ONLY);
        std::process::Command::new("ip")
            .args(["neigh", "del", "198.51.100.254", "dev", "wan0"])
            .status()
            .expect("ip neigh del");
        assert_passed(&mut f, Program::XdpLanRx, &rtp, "no neighbour yet");
        // Only the forwarded frame and the TC run were counted, each under its own hook.
        f.assert_all_verdicts(&[
            (Hook::LanRx, Outcome::Forwarded.into(), 1),
            (Hook::XdpLanRx, Outcome::Forwarded.into(), 1),
        ]);
    })
    .expect("in the namespace");
}

#[test]
fn xdp_decapsulation_matches_the_tc_fast_path() {
    if !vc_testkit::privileged("xdp_decapsulation_matches_the_tc_fast_path") {
        return;
    }
    let cpe = NetNs::new("xdr").expect("netns");
    let lan = NetNs::new("xdl").expect("netns");
    veth(&cpe, "lan0", &lan, "eth0").expect("veth");
    cpe.sh("sysctl -qw net.ipv4.ip_forward=1
         ip link add vc-dc1 type veth peer name vc-dc1p
         ip addr add 100.64.0.1/30 dev vc-dc1
         ip link set vc-dc1 up; ip link set vc-dc1p up
         ip addr add 10.1.0.1/24 dev lan0
         ip neigh add 10.1.0.10 lladdr 02:00:00:00:1a:0a dev lan0 nud permanent")
        .expect("cpe");
    let (tunnel, peer) = (ifindex(&cpe, "vc-dc1"), ifindex(&cpe, "vc-dc1p"));
    let lan0 = ifindex(&cpe, "lan0");
    cpe.run_in(move || {
        let mut f = Fixture::new("xdp_decapsulation_matches_the_tc_fast_path").expect("root");
        f.settings(GRE_ONLY);
        f.set_devices(TUNNEL_A, tunnel, peer);
        // ECT(0) inside, CE outside: RFC 6040 marks the inner packet CE.
        let to_lan = udp_in_ipv4(
            &Ipv4::new(DC1_HOST, LAN_HOST, 0).ttl(60).tos(0xba),
            5060,
            5060,
            &[9; 172],
        );
        let mut frame = wan_gre_frame(DC1_GRE, &to_lan);
        frame[15] |= 0x03;
        frame[24..26].copy_from_slice(&[0, 0]);
        let sum = vc_common::csum::ipv4_header(frame[14..34].try_into().expect("20 bytes"));
        frame[24..26].copy_from_slice(&sum.to_be_bytes());
        assert_passed(
            &mut f,
            Program::XdpWanRx,
            &frame,
            "no device XDP may redirect into",
        );
        f.maps().set_xdp_devices(lan0, 0).expect("XDP devices");
        let xdp = f.run_xdp(Program::XdpWanRx, &frame, LO);
        assert_eq!(xdp.action, XDP_REDIRECT);
        f.assert_verdicts(Hook::XdpWanRx, Outcome::Forwarded, 1);
        assert_eq!(f.stats(TUNNEL_A).rx_fast_path_packets, 1);
        let tc = f.run(Program::WanRx, &frame);
        assert_eq!(tc.action, TC_ACT_REDIRECT);
        assert_eq!(xdp.data, tc.data, "the same bytes reach the LAN");
        assert_eq!(xdp.data[14 + 1] & 3, 3, "CE carried inside");

        let to_us = udp_in_ipv4(&Ipv4::new(DC1_HOST, CPE_TUNNEL_A, 0).ttl(60), 1, 2, b"x");
        let to_us = wan_gre_frame(DC1_GRE, &to_us);
        assert_passed(&mut f, Program::XdpWanRx, &to_us, "our own tunnel IP");
        let dying = udp_in_ipv4(&Ipv4::new(DC1_HOST, LAN_HOST, 0).ttl(1), 1, 2, b"x");
        let dying = wan_gre_frame(DC1_GRE, &dying);
        assert_passed(&mut f, Program::XdpWanRx, &dying, "TTL 1");
        let stranger = udp_in_ipv4(&Ipv4::new([192, 0, 2, 1], LAN_HOST, 0), 1, 2, b"x");
        let stranger = wan_gre_frame(DC1_GRE, &stranger);
        assert_passed(
            &mut f,
            Program::XdpWanRx,
            &stranger,
            "a source the DC may not use",
        );
        let syn = Tcp::syn(1460)
            .options(&[2, 4, 5, 0xb4])
            .in_ipv4(&Ipv4::new(DC1_HOST, LAN_HOST, 0), b"");
        assert_passed(
            &mut f,
            Program::XdpWanRx,
            &wan_gre_frame(DC1_GRE, &syn),
            "a SYN",
        );
        f.settings(settings_flags::FAST_PATH);
        assert_passed(
            &mut f,
            Program::XdpWanRx,
            &frame,
            "IPsec mode: no secpath at XDP",
        );
        f.assert_all_verdicts(&[
            (Hook::WanRx, Outcome::Forwarded.into(), 1),
            (Hook::XdpWanRx, Outcome::Forwarded.into(), 1),
        ]);
    })
    .expect("in the namespace");
}
