//! Tunnel transmit: what the kernel routed into tunnel A leaves GRE-encapsulated toward DC1.
use vc_agent::datapath::Program;
use vc_common::{DropReason, Hook, Outcome};
use vc_testkit::{
    packet::{self, ETH_P_ARP, ETH_P_IPV6, Ipv4, Tcp, ether, ipv4_header_ok, udp_in_ipv4},
    testrun::{SkbCtx, TC_ACT_OK, TC_ACT_SHOT},
};

use crate::fixture::{
    A_PEER_MAC, A_TUNNEL_MAC, CPE_GRE, CPE_TUNNEL_A, DC1_GRE, DC1_HOST, DC1_TUNNEL, DC2_GRE,
    DC2_HOST, Fixture, OUTER_ID, TUNNEL_A, TUNNEL_B, expected_encap, l3, tunnel_frame,
};

#[test]
fn encapsulates_toward_the_dc_with_valid_outer_header() {
    let Some(mut f) = Fixture::new("encapsulates_toward_the_dc_with_valid_outer_header") else {
        return;
    };
    let inner = udp_in_ipv4(
        &Ipv4::new(CPE_TUNNEL_A, DC1_HOST, 0).id(0x4242),
        5000,
        5060,
        b"hello",
    );
    let frame = tunnel_frame(&inner);
    let out = f.run(Program::TunnelTx, &frame);

    assert_eq!(out.action, TC_ACT_OK);
    assert_eq!(&out.data[..14], &frame[..14], "Ethernet header kept");
    let expected = expected_encap(DC1_GRE, &inner);
    assert_eq!(
        l3(&out.data),
        expected.as_slice(),
        "outer IPv4 + GRE + inner"
    );
    let outer = l3(&out.data);
    assert!(ipv4_header_ok(outer), "outer checksum");
    assert_eq!(
        outer[8], 65,
        "outer TTL: 64 once the stack has forwarded it to the WAN"
    );
    assert_eq!(
        u16::from_be_bytes([outer[4], outer[5]]),
        OUTER_ID,
        "outer ID from the counter, not the inner 0x4242"
    );
    assert_eq!(outer[9], packet::IPPROTO_GRE);
    assert_eq!(&outer[20..24], &[0, 0, 0x08, 0x00], "GRE: no flags, IPv4");
    assert_eq!(outer[6] & 0x40, 0x40, "DF copied from the inner header");

    f.assert_verdicts(Hook::TunnelTx, Outcome::Forwarded, 1);
    let stats = f.stats(TUNNEL_A);
    assert_eq!((stats.tx_packets, stats.tx_bytes), (1, inner.len() as u64));
    assert_eq!(stats.keepalive_tx, 0);
    assert_eq!(f.stats(TUNNEL_B).tx_packets, 0);
}

#[test]
fn dscp_and_ecn_are_copied_to_the_outer_header() {
    let Some(mut f) = Fixture::new("dscp_and_ecn_are_copied_to_the_outer_header") else {
        return;
    };
    // EF (46) voice with ECT(0), then CE, then best effort Not-ECT without DF.
    for (tos, frag) in [(0xb8 | 0b10, 0x4000), (0xb8 | 0b11, 0x4000), (0x00, 0x0000)] {
        let inner = udp_in_ipv4(
            &Ipv4::new(CPE_TUNNEL_A, DC1_HOST, 0).tos(tos).frag_off(frag),
            16384,
            16384,
            &[0; 160],
        );
        let out = f.run(Program::TunnelTx, &tunnel_frame(&inner));
        let outer = l3(&out.data);
        assert_eq!(outer[1], tos, "outer TOS for inner {tos:#04x}");
        assert_eq!(u16::from_be_bytes([outer[6], outer[7]]), frag, "outer DF");
        assert!(ipv4_header_ok(outer));
        assert_eq!(&outer[24..], inner.as_slice(), "inner untouched");
    }
}

#[test]
fn the_second_tunnel_uses_its_own_addresses() {
    let Some(mut f) =
        Fixture::with_peer_on_lo("the_second_tunnel_uses_its_own_addresses", TUNNEL_B)
    else {
        return;
    };
    let inner = udp_in_ipv4(&Ipv4::new([100, 64, 0, 5], DC2_HOST, 0), 1, 2, b"x");
    let out = f.run(Program::TunnelTx, &tunnel_frame(&inner));
    assert_eq!(out.action, TC_ACT_OK);
    assert_eq!(l3(&out.data), expected_encap(DC2_GRE, &inner).as_slice());
    assert_eq!(f.stats(TUNNEL_B).tx_packets, 1);
    assert_eq!(f.stats(TUNNEL_A).tx_packets, 0);
}

#[test]
fn non_ipv4_is_dropped_and_counted() {
    let Some(mut f) = Fixture::new("non_ipv4_is_dropped_and_counted") else {
        return;
    };
    // An IPv6 router solicitation and an ARP request, as a veth emits them.
    let rs = ether(
        [0x33, 0x33, 0, 0, 0, 2],
        A_TUNNEL_MAC,
        ETH_P_IPV6,
        &[0x60; 48],
    );
    let arp = ether([0xff; 6], A_TUNNEL_MAC, ETH_P_ARP, &[0; 28]);
    for frame in [rs, arp] {
        let out = f.run(Program::TunnelTx, &frame);
        assert_eq!(out.action, TC_ACT_SHOT);
    }
    f.assert_verdicts(Hook::TunnelTx, DropReason::NotIpv4, 2);
}

#[test]
fn a_device_of_no_tunnel_is_dropped() {
    let Some(mut f) = Fixture::new("a_device_of_no_tunnel_is_dropped") else {
        return;
    };
    f.maps().remove_tunnel(TUNNEL_A).expect("remove tunnel A");
    let inner = udp_in_ipv4(&Ipv4::new(CPE_TUNNEL_A, DC1_HOST, 0), 1, 2, b"x");
    let out = f.run_ctx(Program::TunnelTx, &tunnel_frame(&inner), SkbCtx::default());
    assert_eq!(out.action, TC_ACT_SHOT);
    f.assert_verdicts(Hook::TunnelTx, DropReason::UnknownTunnel, 1);
}

#[test]
fn gre_already_built_for_this_tunnel_is_passed_untouched() {
    let Some(mut f) = Fixture::new("gre_already_built_for_this_tunnel_is_passed_untouched") else {
        return;
    };
    // What the fast path redirects into the peer: already GRE for tunnel A.
    let inner = udp_in_ipv4(&Ipv4::new([10, 1, 0, 10], DC1_HOST, 0), 1, 2, b"x");
    let gre = expected_encap(DC1_GRE, &inner);
    let frame = tunnel_frame(&gre);
    let out = f.run(Program::TunnelTx, &frame);
    assert_eq!(out.action, TC_ACT_OK);
    assert_eq!(out.data, frame);
    f.assert_verdicts(Hook::TunnelTx, Outcome::AlreadyEncapsulated, 1);
    assert_eq!(
        f.stats(TUNNEL_A).tx_packets,
        0,
        "counted once, by the fast path"
    );
}

#[test]
fn our_keepalives_are_encapsulated_and_counted() {
    let Some(mut f) = Fixture::new("our_keepalives_are_encapsulated_and_counted") else {
        return;
    };
    // Cisco's format: the packet the DC returns, GRE from its address to ours, type 0.
    let keepalive = Ipv4::new(DC1_GRE, CPE_GRE, packet::IPPROTO_GRE)
        .ttl(255)
        .packet(&packet::gre(0, 0, &[], &[]));
    let out = f.run(Program::TunnelTx, &tunnel_frame(&keepalive));
    assert_eq!(out.action, TC_ACT_OK);
    assert_eq!(
        l3(&out.data),
        expected_encap(DC1_GRE, &keepalive).as_slice()
    );
    let stats = f.stats(TUNNEL_A);
    assert_eq!((stats.keepalive_tx, stats.tx_packets), (1, 1));
}

#[test]
fn bgp_syn_from_the_tunnel_ip_is_clamped_then_encapsulated() {
    let Some(mut f) = Fixture::new("bgp_syn_from_the_tunnel_ip_is_clamped_then_encapsulated")
    else {
        return;
    };
    let ip = Ipv4::new(CPE_TUNNEL_A, DC1_TUNNEL, 0);
    let syn = Tcp::syn(1460).in_ipv4(&ip, b"");
    let out = f.run(Program::TunnelTx, &tunnel_frame(&syn));
    assert_eq!(out.action, TC_ACT_OK);
    let inner = &l3(&out.data)[24..];
    assert_eq!(packet::mss_of(inner), Some(1350));
    assert!(packet::tcp_checksum_ok(inner));
    assert_eq!(f.stats(TUNNEL_A).mss_clamped, 1);
    let _ = A_PEER_MAC;
}

#[test]
fn outer_ids_come_from_a_counter_not_the_inner_packet() {
    let Some(mut f) = Fixture::new("outer_ids_come_from_a_counter_not_the_inner_packet") else {
        return;
    };
    let outer_id = |out: &[u8]| u16::from_be_bytes([l3(out)[4], l3(out)[5]]);
    // Two flows whose inner IDs are equal: the outer IDs must differ.
    let same_inner_id = |port| {
        tunnel_frame(&udp_in_ipv4(
            &Ipv4::new(CPE_TUNNEL_A, DC1_HOST, 0).id(7),
            port,
            2,
            b"x",
        ))
    };
    f.count_outer_ids(0xfffe);
    let first = f.run(Program::TunnelTx, &same_inner_id(1));
    let second = f.run(Program::TunnelTx, &same_inner_id(2));
    assert_eq!(outer_id(&first.data), 0xfffe);
    assert_eq!(outer_id(&second.data), 0xffff);

    // A GSO packet of 3 segments reserves 3 IDs (segmentation numbers them from the first),
    // and the 16-bit ID wraps.
    let gso = SkbCtx {
        gso_segs: 3,
        ..SkbCtx::default()
    };
    let third = f.run_ctx(Program::TunnelTx, &same_inner_id(3), gso);
    let fourth = f.run(Program::TunnelTx, &same_inner_id(4));
    assert_eq!(outer_id(&third.data), 0);
    assert_eq!(outer_id(&fourth.data), 3);
    assert!(ipv4_header_ok(l3(&fourth.data)), "outer checksum");

    // A counter never used starts at a random value, different per CPU (so they do not
    // count in step), never 0.
    f.count_outer_ids(0);
    let fresh = f.run(Program::TunnelTx, &same_inner_id(5));
    let counters = f.ip_ids();
    let used = counters
        .iter()
        .find(|&&c| c != 0)
        .expect("the CPU that ran the program started its counter");
    assert_eq!(u32::from(outer_id(&fresh.data)), (used - 1) & 0xffff);
    assert_eq!(
        counters.iter().filter(|&&c| c != 0).count(),
        1,
        "one CPU ran it"
    );
}
