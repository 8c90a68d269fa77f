//! WAN receive: GRE from a DC checked and decapsulated into its tunnel's interface.
//! (`BPF_PROG_TEST_RUN` packets carry no secpath, so the accepting side of the SA check is
//! proven in the VM tests; here: external-IPsec mode, and the IPsec-mode drops.)
use vc_agent::datapath::Program;
use vc_common::{Counted, DropReason, Hook, Outcome, settings_flags};
use vc_testkit::{
    packet::{
        self, IPPROTO_ESP, Ipv4, Tcp, ether_ipv4, ipv4_header_ok, mss_of, tcp_checksum_ok,
        udp_in_ipv4,
    },
    testrun::{TC_ACT_OK, TC_ACT_REDIRECT, TC_ACT_SHOT},
};

use crate::fixture::{
    A_TUNNEL_MAC, B_TUNNEL_MAC, CPE_GRE, CPE_TUNNEL_A, DC1_GRE, DC1_HOST, DC1_TUNNEL, DC2_GRE,
    DC2_HOST, Fixture, INTERNET_HOST, LAN_HOST, MSS, MTU, TUNNEL_A, TUNNEL_B, l3, wan_frame,
    wan_gre_frame,
};

fn gre_only(test: &str) -> Option<Fixture> {
    let mut f = Fixture::new(test)?;
    f.settings(settings_flags::EXTERNAL_IPSEC);
    Some(f)
}

fn dc_udp(src: [u8; 4]) -> Vec<u8> {
    udp_in_ipv4(&Ipv4::new(src, LAN_HOST, 0), 5060, 5060, b"INVITE")
}

#[test]
fn gre_from_each_dc_is_decapsulated_into_its_tunnel() {
    let Some(mut f) = gre_only("gre_from_each_dc_is_decapsulated_into_its_tunnel") else {
        return;
    };
    for (dc, src, mac, id) in [
        (DC1_GRE, DC1_HOST, A_TUNNEL_MAC, TUNNEL_A),
        (DC2_GRE, DC2_HOST, B_TUNNEL_MAC, TUNNEL_B),
    ] {
        let inner = dc_udp(src);
        let frame = wan_gre_frame(dc, &inner);
        let out = f.run(Program::WanRx, &frame);
        assert_eq!(out.action, TC_ACT_REDIRECT, "from {dc:?}");
        assert_eq!(&out.data[..6], &mac, "delivered to tunnel {id}'s interface");
        assert_eq!(
            &out.data[6..14],
            &frame[6..14],
            "source MAC and EtherType kept"
        );
        assert_eq!(l3(&out.data), inner.as_slice(), "exactly the inner packet");
        let stats = f.stats(id);
        assert_eq!((stats.rx_packets, stats.rx_bytes), (1, inner.len() as u64));
        assert_ne!(stats.last_rx_ns, 0);
    }
    f.assert_verdicts(Hook::WanRx, Outcome::Forwarded, 2);
}

#[test]
fn gre_with_checksum_is_accepted() {
    let Some(mut f) = gre_only("gre_with_checksum_is_accepted") else {
        return;
    };
    let inner = dc_udp(DC1_HOST);
    let gre = packet::gre(0x8000, 0x0800, &[0xde, 0xad, 0, 0], &inner);
    let frame = wan_frame(&Ipv4::new(DC1_GRE, CPE_GRE, packet::IPPROTO_GRE).packet(&gre));
    let out = f.run(Program::WanRx, &frame);
    assert_eq!(out.action, TC_ACT_REDIRECT);
    assert_eq!(l3(&out.data), inner.as_slice());
}

#[test]
fn plain_gre_is_dropped_in_ipsec_mode() {
    let Some(mut f) = Fixture::new("plain_gre_is_dropped_in_ipsec_mode") else {
        return;
    };
    let frame = wan_gre_frame(DC1_GRE, &dc_udp(DC1_HOST));
    let out = f.run(Program::WanRx, &frame);
    assert_eq!(out.action, TC_ACT_SHOT);
    f.assert_verdicts(Hook::WanRx, DropReason::NoSecpath, 1);
    assert_eq!(f.stats(TUNNEL_A).rx_packets, 0);
}

#[test]
fn invalid_gre_headers_are_dropped_by_reason() {
    let Some(mut f) = gre_only("invalid_gre_headers_are_dropped_by_reason") else {
        return;
    };
    let inner = dc_udp(DC1_HOST);
    let cases = [
        (
            "routing present",
            0x4000,
            &[0u8; 4][..],
            DropReason::GreMalformed,
        ),
        (
            "strict source route",
            0x0800,
            &[][..],
            DropReason::GreMalformed,
        ),
        ("recursion", 0x0400, &[][..], DropReason::GreMalformed),
        (
            "version 1 (PPTP)",
            0x0001,
            &[][..],
            DropReason::GreMalformed,
        ),
        (
            "key present",
            0x2000,
            &[0, 0, 0, 7][..],
            DropReason::GreUnsupported,
        ),
        (
            "sequence present",
            0x1000,
            &[0, 0, 0, 1][..],
            DropReason::GreUnsupported,
        ),
    ];
    for (what, flags, extra, reason) in cases {
        let gre = packet::gre(flags, 0x0800, extra, &inner);
        let frame = wan_frame(&Ipv4::new(DC1_GRE, CPE_GRE, packet::IPPROTO_GRE).packet(&gre));
        let out = f.run(Program::WanRx, &frame);
        assert_eq!(out.action, TC_ACT_SHOT, "{what}");
        let last = f.verdicts();
        assert!(
            last.iter().any(|v| v.reason == reason),
            "{what}: {reason:?} counted"
        );
    }
    let drops: u64 = f.verdicts().iter().map(|v| v.packets).sum();
    assert_eq!(drops, 6);
}

#[test]
fn only_the_dc_may_speak_through_its_tunnel() {
    let Some(mut f) = gre_only("only_the_dc_may_speak_through_its_tunnel") else {
        return;
    };
    // Allowed: the Cisco /24 (either half: the /24 is the backup path) and the DC's tunnel IP.
    for src in [DC1_HOST, DC2_HOST, DC1_TUNNEL] {
        let out = f.run(Program::WanRx, &wan_gre_frame(DC1_GRE, &dc_udp(src)));
        assert_eq!(out.action, TC_ACT_REDIRECT, "source {src:?}");
    }
    // Not allowed: anything else, e.g. an internet address or our own LAN.
    for src in [INTERNET_HOST, LAN_HOST] {
        let out = f.run(Program::WanRx, &wan_gre_frame(DC1_GRE, &dc_udp(src)));
        assert_eq!(out.action, TC_ACT_SHOT, "source {src:?}");
    }
    let counts: Vec<_> = f.verdicts().iter().map(|v| (v.reason, v.packets)).collect();
    assert_eq!(
        counts,
        vec![
            (Counted::Outcome(Outcome::Forwarded), 3),
            (Counted::Drop(DropReason::InnerSourceNotAllowed), 2)
        ]
    );
}

#[test]
fn the_dcs_keepalives_are_delivered_for_reflection() {
    let Some(mut f) = gre_only("the_dcs_keepalives_are_delivered_for_reflection") else {
        return;
    };
    // Cisco's keepalive as it arrives: outer DC→us, inside it the packet we are to send back,
    // GRE from us to the DC with payload type 0.
    let reflect = Ipv4::new(CPE_GRE, DC1_GRE, packet::IPPROTO_GRE)
        .ttl(255)
        .packet(&packet::gre(0, 0, &[], &[]));
    let out = f.run(Program::WanRx, &wan_gre_frame(DC1_GRE, &reflect));
    assert_eq!(out.action, TC_ACT_REDIRECT);
    assert_eq!(
        l3(&out.data),
        reflect.as_slice(),
        "the kernel forwards this back to the DC"
    );
    let stats = f.stats(TUNNEL_A);
    assert_eq!((stats.keepalive_reflected, stats.rx_packets), (1, 1));
}

#[test]
fn replies_to_our_keepalives_are_counted_and_consumed() {
    let Some(mut f) = gre_only("replies_to_our_keepalives_are_counted_and_consumed") else {
        return;
    };
    let reply = wan_frame(
        &Ipv4::new(DC1_GRE, CPE_GRE, packet::IPPROTO_GRE)
            .ttl(254)
            .packet(&packet::gre(0, 0, &[], &[])),
    );
    let out = f.run(Program::WanRx, &reply);
    assert_eq!(out.action, TC_ACT_SHOT, "consumed");
    f.assert_verdicts(Hook::WanRx, Outcome::KeepaliveReply, 1);
    let stats = f.stats(TUNNEL_A);
    assert_eq!(stats.keepalive_rx, 1);
    assert_ne!(stats.last_keepalive_rx_ns, 0);
    assert_eq!(f.stats(TUNNEL_B).keepalive_rx, 0);
}

#[test]
fn nested_gre_and_non_ipv4_payloads_are_dropped() {
    let Some(mut f) = gre_only("nested_gre_and_non_ipv4_payloads_are_dropped") else {
        return;
    };
    let nested = Ipv4::new(DC1_HOST, LAN_HOST, packet::IPPROTO_GRE).packet(&packet::gre(
        0,
        0x0800,
        &[],
        &dc_udp(DC1_HOST),
    ));
    let out = f.run(Program::WanRx, &wan_gre_frame(DC1_GRE, &nested));
    assert_eq!(out.action, TC_ACT_SHOT);
    let ipv6 = packet::gre(0, 0x86dd, &[], &[0x60; 48]);
    let frame = wan_frame(&Ipv4::new(DC1_GRE, CPE_GRE, packet::IPPROTO_GRE).packet(&ipv6));
    assert_eq!(f.run(Program::WanRx, &frame).action, TC_ACT_SHOT);
    let counts: Vec<_> = f.verdicts().iter().map(|v| (v.reason, v.packets)).collect();
    assert_eq!(
        counts,
        vec![
            (Counted::Drop(DropReason::InnerNotIpv4), 1),
            (Counted::Drop(DropReason::NestedGre), 1)
        ]
    );
}

/// Outer fragments of a tunnel's GRE are left untouched for the kernel to reassemble (the
/// agent delivers the datagram); in IPsec mode only those the tunnel's SA decrypted, so a
/// clear fragment is dropped like clear GRE.
#[test]
fn outer_fragments_are_left_to_the_kernel() {
    let Some(mut f) = gre_only("outer_fragments_are_left_to_the_kernel") else {
        return;
    };
    let gre = packet::gre(0, 0x0800, &[], &dc_udp(DC1_HOST));
    for frag_off in [0x2000, 0x0008] {
        let outer = Ipv4::new(DC1_GRE, CPE_GRE, packet::IPPROTO_GRE).frag_off(frag_off);
        let frame = wan_frame(&outer.packet(&gre));
        let out = f.run(Program::WanRx, &frame);
        assert_eq!(
            (out.action, &out.data),
            (TC_ACT_OK, &frame),
            "frag_off {frag_off:#06x}"
        );
    }
    f.assert_verdicts(Hook::WanRx, Outcome::OuterFragmentToStack, 2);
    assert_eq!(f.stats(TUNNEL_A).rx_packets, 0);

    let Some(mut f) = Fixture::new("outer_fragments_are_left_to_the_kernel (IPsec)") else {
        return;
    };
    let outer = Ipv4::new(DC1_GRE, CPE_GRE, packet::IPPROTO_GRE).frag_off(0x2000);
    let out = f.run(Program::WanRx, &wan_frame(&outer.packet(&gre)));
    assert_eq!(out.action, TC_ACT_SHOT);
    f.assert_verdicts(Hook::WanRx, DropReason::NoSecpath, 1);
}

/// An inner packet larger than the tunnel MTU cannot cross into the tunnel interface (a veth
/// drops it): the GRE packet is left whole to the kernel, for the agent to deliver in pieces.
/// At the MTU it is decapsulated as usual.
#[test]
fn inner_packets_over_the_tunnel_mtu_are_left_to_the_kernel() {
    let Some(mut f) = gre_only("inner_packets_over_the_tunnel_mtu_are_left_to_the_kernel") else {
        return;
    };
    let sized = |len: usize| {
        udp_in_ipv4(
            &Ipv4::new(DC1_HOST, LAN_HOST, 0),
            5060,
            5060,
            &vec![0x42; len - 28],
        )
    };
    let big = wan_gre_frame(DC1_GRE, &sized(usize::from(MTU) + 1));
    let out = f.run(Program::WanRx, &big);
    assert_eq!((out.action, &out.data), (TC_ACT_OK, &big));
    f.assert_verdicts(Hook::WanRx, Outcome::OversizeToStack, 1);
    let fits = wan_gre_frame(DC1_GRE, &sized(usize::from(MTU)));
    assert_eq!(f.run(Program::WanRx, &fits).action, TC_ACT_REDIRECT);
}

#[test]
fn everything_else_on_the_wan_is_untouched() {
    let Some(mut f) = Fixture::new("everything_else_on_the_wan_is_untouched") else {
        return;
    };
    let esp = Ipv4::new(DC1_GRE, CPE_GRE, IPPROTO_ESP).packet(&[0x11; 64]);
    let ike = udp_in_ipv4(&Ipv4::new(DC1_GRE, CPE_GRE, 0), 500, 500, &[0; 100]);
    let stranger = Ipv4::new(INTERNET_HOST, CPE_GRE, packet::IPPROTO_GRE).packet(&packet::gre(
        0,
        0x0800,
        &[],
        &dc_udp(DC1_HOST),
    ));
    let to_someone_else = Ipv4::new(DC1_GRE, [198, 51, 100, 99], packet::IPPROTO_GRE)
        .packet(&packet::gre(0, 0x0800, &[], &dc_udp(DC1_HOST)));
    for packet in [esp, ike, stranger, to_someone_else] {
        let frame = wan_frame(&packet);
        let out = f.run(Program::WanRx, &frame);
        assert_eq!((out.action, &out.data), (TC_ACT_OK, &frame));
    }
    f.assert_verdicts(Hook::WanRx, Outcome::Passed, 4);
}

#[test]
fn dc_syns_are_clamped_after_decapsulation() {
    let Some(mut f) = gre_only("dc_syns_are_clamped_after_decapsulation") else {
        return;
    };
    let syn = Tcp::syn(1460).in_ipv4(&Ipv4::new(DC1_TUNNEL, CPE_TUNNEL_A, 0), b"");
    let out = f.run(Program::WanRx, &wan_gre_frame(DC1_GRE, &syn));
    assert_eq!(out.action, TC_ACT_REDIRECT);
    assert_eq!(mss_of(l3(&out.data)), Some(MSS));
    assert!(tcp_checksum_ok(l3(&out.data)));
    assert_eq!(f.stats(TUNNEL_A).mss_clamped, 1);
}

/// RFC 6040 §4.2, Figure 4 (normal mode), row by row: the inner ECN field that arrives
/// under each outer one, or `None` where the packet must be dropped.
const RFC_6040_DECAP: [(u8, [Option<u8>; 4]); 4] = {
    const NOT_ECT: u8 = 0b00;
    const ECT1: u8 = 0b01;
    const ECT0: u8 = 0b10;
    const CE: u8 = 0b11;
    //  inner      outer: Not-ECT       ECT(0)         ECT(1)         CE
    [
        (NOT_ECT, [Some(NOT_ECT), Some(NOT_ECT), Some(NOT_ECT), None]),
        (ECT0, [Some(ECT0), Some(ECT0), Some(ECT1), Some(CE)]),
        (ECT1, [Some(ECT1), Some(ECT1), Some(ECT1), Some(CE)]),
        (CE, [Some(CE), Some(CE), Some(CE), Some(CE)]),
    ]
};

#[test]
fn decapsulation_follows_rfc_6040() {
    let Some(mut f) = gre_only("decapsulation_follows_rfc_6040") else {
        return;
    };
    let outers = [0b00, 0b10, 0b01, 0b11];
    let mut dropped = 0;
    for (inner_ecn, row) in RFC_6040_DECAP {
        for (outer_ecn, expected) in outers.into_iter().zip(row) {
            // EF in both headers: the DSCP must come through whatever happens to ECN.
            let inner = udp_in_ipv4(
                &Ipv4::new(DC1_HOST, LAN_HOST, 0).tos(0xb8 | inner_ecn),
                1,
                2,
                b"rtp",
            );
            let gre = packet::gre(0, 0x0800, &[], &inner);
            let outer = Ipv4::new(DC1_GRE, CPE_GRE, packet::IPPROTO_GRE).tos(0xb8 | outer_ecn);
            let out = f.run(Program::WanRx, &wan_frame(&outer.packet(&gre)));
            let case = format!("inner ECN {inner_ecn:02b} under outer {outer_ecn:02b}");
            if let Some(ecn) = expected {
                assert_eq!(out.action, TC_ACT_REDIRECT, "{case}");
                assert_eq!(l3(&out.data)[1], 0xb8 | ecn, "{case}");
                assert!(ipv4_header_ok(l3(&out.data)), "{case}: checksum");
            } else {
                assert_eq!(out.action, TC_ACT_SHOT, "{case}");
                dropped += 1;
            }
        }
    }
    f.assert_all_verdicts(&[
        (Hook::WanRx, Outcome::Forwarded.into(), 16 - dropped),
        (Hook::WanRx, DropReason::CeOnNotEct.into(), dropped),
    ]);
}

#[test]
fn an_inner_length_beyond_the_gre_payload_is_dropped() {
    let Some(mut f) = gre_only("an_inner_length_beyond_the_gre_payload_is_dropped") else {
        return;
    };
    // The outer header claims less than the frame holds; the inner packet claims it all.
    let inner = dc_udp(DC1_HOST);
    let gre = packet::gre(0, 0x0800, &[], &inner);
    let mut outer = Ipv4::new(DC1_GRE, CPE_GRE, packet::IPPROTO_GRE);
    outer.tot_len = Some(u16::try_from(20 + gre.len() - 4).expect("length"));
    let out = f.run(Program::WanRx, &wan_frame(&outer.packet(&gre)));
    assert_eq!(out.action, TC_ACT_SHOT);
    f.assert_verdicts(Hook::WanRx, DropReason::BadIpHeader, 1);
    let _ = ether_ipv4;
}
