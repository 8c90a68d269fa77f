//! Malformed input: every program gives every broken packet a defined verdict and a counted
//! reason. (`BPF_PROG_TEST_RUN` refuses frames shorter than an Ethernet header, so truncation
//! starts at 14 bytes.)
use vc_agent::datapath::Program;
use vc_common::{Counted, DropReason, Hook, settings_flags};
use vc_testkit::{
    packet::{self, Ipv4, Tcp, udp_in_ipv4},
    testrun::{TC_ACT_OK, TC_ACT_REDIRECT, TC_ACT_SHOT},
};

use crate::fixture::{
    CPE_GRE, CPE_TUNNEL_A, DC1_GRE, DC1_HOST, Fixture, LAN_HOST, lan_frame, tunnel_frame,
    wan_frame, wan_gre_frame,
};

/// Runs every strict prefix of `frame` (from 14 bytes) through `program`; each must be dropped
/// as truncated or as a bad IPv4 header (its total length then exceeds the frame), and every
/// run must be counted. Kernels since 6.x refuse to test-run an IPv4 frame shorter than an
/// IPv4 header (EINVAL); those lengths are skipped, the program's own check for them is proven
/// on inner headers (`truncated_inner_packets_and_gre_headers`).
fn every_truncation_is_a_counted_drop(f: &mut Fixture, program: Program, hook: Hook, frame: &[u8]) {
    let mut runs = 0;
    for len in 14..frame.len() {
        match f.try_run(program, &frame[..len]) {
            Ok(out) => {
                assert_eq!(
                    out.action,
                    TC_ACT_SHOT,
                    "{program:?} cut to {len} of {} bytes",
                    frame.len()
                );
                runs += 1;
            }
            Err(e) => assert!(len < 14 + 20, "{program:?} cut to {len}: {e:#}"),
        }
    }
    assert!(
        runs >= frame.len() - 34,
        "{program:?}: every length from a whole IPv4 header ran"
    );
    let counted: u64 = f
        .verdicts()
        .iter()
        .filter(|v| v.hook == hook)
        .map(|v| {
            assert!(
                matches!(
                    v.reason,
                    Counted::Drop(DropReason::Truncated | DropReason::BadIpHeader)
                ),
                "{program:?}: unexpected reason {:?}",
                v.reason
            );
            v.packets
        })
        .sum();
    assert_eq!(counted, runs as u64, "{program:?}: every run counted");
}

#[test]
fn truncated_packets_at_every_boundary() {
    let Some(mut f) = Fixture::new("truncated_packets_at_every_boundary") else {
        return;
    };
    f.settings(settings_flags::FAST_PATH | settings_flags::EXTERNAL_IPSEC);
    let syn = Tcp::syn(1460)
        .options(&[1, 3, 3, 7, 2, 4, 5, 0xb4])
        .in_ipv4(&Ipv4::new(CPE_TUNNEL_A, DC1_HOST, 0), b"");
    every_truncation_is_a_counted_drop(
        &mut f,
        Program::TunnelTx,
        Hook::TunnelTx,
        &tunnel_frame(&syn),
    );
    let lan_syn = Tcp::syn(1460).in_ipv4(&Ipv4::new(LAN_HOST, DC1_HOST, 0), b"");
    every_truncation_is_a_counted_drop(&mut f, Program::LanRx, Hook::LanRx, &lan_frame(&lan_syn));
    let dc_syn = Tcp::syn(1460).in_ipv4(&Ipv4::new(DC1_HOST, LAN_HOST, 0), b"");
    every_truncation_is_a_counted_drop(
        &mut f,
        Program::WanRx,
        Hook::WanRx,
        &wan_gre_frame(DC1_GRE, &dc_syn),
    );
    f.settings(0);
    every_truncation_is_a_counted_drop(
        &mut f,
        Program::WanGuard,
        Hook::WanTxGuard,
        &wan_gre_frame(CPE_GRE, &dc_syn),
    );
}

#[test]
fn truncated_inner_packets_and_gre_headers() {
    let Some(mut f) = Fixture::new("truncated_inner_packets_and_gre_headers") else {
        return;
    };
    f.settings(settings_flags::EXTERNAL_IPSEC);
    // The outer packet is consistent with what is there; the GRE header or the inner packet is
    // cut short.
    let inner = Tcp::syn(1460).in_ipv4(&Ipv4::new(DC1_HOST, LAN_HOST, 0), b"");
    let gre = packet::gre(0, 0x0800, &[], &inner);
    for len in 0..gre.len() {
        let frame =
            wan_frame(&Ipv4::new(DC1_GRE, CPE_GRE, packet::IPPROTO_GRE).packet(&gre[..len]));
        let out = f.run(Program::WanRx, &frame);
        assert_eq!(out.action, TC_ACT_SHOT, "GRE payload cut to {len} bytes");
    }
    let reasons: Vec<_> = f.verdicts().iter().map(|v| (v.reason, v.packets)).collect();
    // 0..4: no GRE header; 4..24: inner header incomplete; 24..: inner longer than the payload.
    assert_eq!(
        reasons,
        vec![
            (Counted::Drop(DropReason::Truncated), 24),
            (
                Counted::Drop(DropReason::BadIpHeader),
                gre.len() as u64 - 24
            )
        ]
    );
}

#[test]
fn broken_ipv4_headers_are_bad_ip_headers() {
    let Some(mut f) = Fixture::new("broken_ipv4_headers_are_bad_ip_headers") else {
        return;
    };
    let good = udp_in_ipv4(&Ipv4::new(CPE_TUNNEL_A, DC1_HOST, 0), 1, 2, &[0; 40]);
    let mut cases = Vec::new();
    for ihl in 0..5 {
        let mut ip = Ipv4::new(CPE_TUNNEL_A, DC1_HOST, packet::IPPROTO_UDP);
        ip.ihl = Some(ihl);
        cases.push((format!("IHL {ihl}"), ip.packet(&good[20..])));
    }
    let mut v6 = Ipv4::new(CPE_TUNNEL_A, DC1_HOST, packet::IPPROTO_UDP);
    v6.version = 6;
    cases.push(("version 6 in an IPv4 frame".into(), v6.packet(&good[20..])));
    let mut short = Ipv4::new(CPE_TUNNEL_A, DC1_HOST, packet::IPPROTO_UDP);
    short.tot_len = Some(19);
    cases.push((
        "total length below the header".into(),
        short.packet(&good[20..]),
    ));
    let mut long = Ipv4::new(CPE_TUNNEL_A, DC1_HOST, packet::IPPROTO_UDP);
    long.tot_len = Some(u16::try_from(good.len() + 1).expect("len"));
    cases.push((
        "total length beyond the frame".into(),
        long.packet(&good[20..]),
    ));
    let mut options_beyond = Ipv4::new(CPE_TUNNEL_A, DC1_HOST, packet::IPPROTO_UDP);
    options_beyond.ihl = Some(15);
    options_beyond.tot_len = Some(40);
    cases.push((
        "options beyond the total length".into(),
        options_beyond.packet(&good[20..]),
    ));

    for program in [
        Program::TunnelTx,
        Program::LanRx,
        Program::WanRx,
        Program::WanGuard,
    ] {
        for (what, packet) in &cases {
            let out = f.run(program, &tunnel_frame(packet));
            assert_eq!(out.action, TC_ACT_SHOT, "{program:?}: {what}");
        }
    }
    for v in f.verdicts() {
        assert_eq!(
            (v.reason, v.packets),
            (Counted::Drop(DropReason::BadIpHeader), cases.len() as u64),
            "{:?}",
            v.hook
        );
    }
    assert_eq!(f.verdicts().len(), 4, "all four programs counted");
}

#[test]
fn ethernet_padding_after_the_packet_is_not_part_of_it() {
    let Some(mut f) = Fixture::new("ethernet_padding_after_the_packet_is_not_part_of_it") else {
        return;
    };
    // A 28-byte ping reply padded to the 60-byte Ethernet minimum.
    let small = udp_in_ipv4(&Ipv4::new(LAN_HOST, DC1_HOST, 0), 1, 2, &[]);
    let mut frame = lan_frame(&small);
    frame.resize(60, 0);
    let out = f.run(Program::LanRx, &frame);
    assert_eq!(out.action, TC_ACT_REDIRECT);
    let outer_len = u16::from_be_bytes([out.data[16], out.data[17]]);
    assert_eq!(
        usize::from(outer_len),
        24 + small.len(),
        "outer length from the inner header"
    );
    let _ = TC_ACT_OK;
}
