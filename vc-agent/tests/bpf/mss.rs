//! MSS clamping (R14): SYNs through the tunnel carry at most the tunnel's MSS, and only ever
//! get lowered. Checked through tunnel transmit; the other programs share the code and have
//! a case each in their own files.
use vc_agent::datapath::Program;
use vc_common::{DropReason, Hook};
use vc_testkit::{
    packet::{ACK, Ipv4, SYN, Tcp, mss_of, mss_option, tcp_checksum_ok},
    testrun::{TC_ACT_OK, TC_ACT_SHOT},
};

use crate::fixture::{CPE_TUNNEL_A, DC1_HOST, Fixture, MSS, l3, tunnel_frame};

/// Runs `tcp` through tunnel transmit; returns the action and the inner packet out.
fn clamp(f: &mut Fixture, tcp: &Tcp) -> (i32, Vec<u8>) {
    let ip = Ipv4::new(CPE_TUNNEL_A, DC1_HOST, 0);
    let out = f.run(Program::TunnelTx, &tunnel_frame(&tcp.in_ipv4(&ip, b"")));
    let inner = if out.action == TC_ACT_OK {
        l3(&out.data)[24..].to_vec()
    } else {
        Vec::new()
    };
    (out.action, inner)
}

#[test]
fn mss_is_only_ever_lowered() {
    let Some(mut f) = Fixture::new("mss_is_only_ever_lowered") else {
        return;
    };
    for (offered, expected) in [
        (1460, MSS),
        (9000, MSS),
        (MSS + 1, MSS),
        (MSS, MSS),
        (1200, 1200),
        (536, 536),
    ] {
        let (action, inner) = clamp(&mut f, &Tcp::syn(offered));
        assert_eq!(action, TC_ACT_OK);
        assert_eq!(mss_of(&inner), Some(expected), "offered {offered}");
        assert!(tcp_checksum_ok(&inner), "checksum after offering {offered}");
    }
    assert_eq!(f.stats(0).mss_clamped, 3);
}

#[test]
fn syn_ack_is_clamped_and_other_segments_are_not() {
    let Some(mut f) = Fixture::new("syn_ack_is_clamped_and_other_segments_are_not") else {
        return;
    };
    let syn_ack = Tcp::new(179, 40000, SYN | ACK).options(&mss_option(1460));
    let (_, inner) = clamp(&mut f, &syn_ack);
    assert_eq!(mss_of(&inner), Some(MSS));
    assert!(tcp_checksum_ok(&inner));

    // An MSS option outside a SYN means nothing (RFC 9293 §3.7.1): left as it is.
    let ack = Tcp::new(179, 40000, ACK).options(&mss_option(1460));
    let (_, inner) = clamp(&mut f, &ack);
    assert_eq!(mss_of(&inner), Some(1460));
}

#[test]
fn syn_without_mss_is_left_alone() {
    let Some(mut f) = Fixture::new("syn_without_mss_is_left_alone") else {
        return;
    };
    let plain = Tcp::new(1, 2, SYN);
    let (action, inner) = clamp(&mut f, &plain);
    assert_eq!(action, TC_ACT_OK);
    assert_eq!(mss_of(&inner), None);
    // Options but no MSS: window scale, SACK permitted, timestamps.
    let opts = [3, 3, 7, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0];
    let (action, inner) = clamp(&mut f, &Tcp::new(1, 2, SYN).options(&opts));
    assert_eq!(action, TC_ACT_OK);
    assert_eq!(mss_of(&inner), None);
    assert!(tcp_checksum_ok(&inner));
    // EOL ends the list: an MSS after it is not an option.
    let (_, inner) = clamp(
        &mut f,
        &Tcp::new(1, 2, SYN).options(&[0, 0, 0, 0, 2, 4, 5, 0xb4]),
    );
    assert_eq!(
        &inner[40 + 4..40 + 8],
        &[2, 4, 5, 0xb4],
        "bytes after EOL untouched"
    );
    assert_eq!(f.stats(0).mss_clamped, 0);
}

#[test]
fn mss_after_other_options_and_at_odd_offsets() {
    let Some(mut f) = Fixture::new("mss_after_other_options_and_at_odd_offsets") else {
        return;
    };
    let layouts: [&[u8]; 5] = [
        // NOP NOP then MSS (even offset 2)
        &[1, 1, 2, 4, 0x05, 0xb4],
        // window scale (3 bytes) then MSS at odd offset 3
        &[3, 3, 7, 2, 4, 0x05, 0xb4],
        // one NOP: MSS at offset 1, value at odd offset 3
        &[1, 2, 4, 0x05, 0xb4],
        // SACK permitted, timestamps, NOP, then MSS at odd offset 13
        &[4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 2, 4, 0x23, 0x28],
        // everything before: 36 bytes of NOPs, MSS in the last four bytes of option space
        &[1; 36],
    ];
    for (i, layout) in layouts.iter().enumerate() {
        let mut opts = layout.to_vec();
        if i == 4 {
            opts.extend_from_slice(&mss_option(1460));
        }
        let (action, inner) = clamp(&mut f, &Tcp::new(1, 2, SYN).options(&opts));
        assert_eq!(action, TC_ACT_OK, "layout {i}");
        assert_eq!(mss_of(&inner), Some(MSS), "layout {i}");
        assert!(tcp_checksum_ok(&inner), "checksum, layout {i}");
    }
}

#[test]
fn malformed_options_are_dropped_as_bad_tcp() {
    let Some(mut f) = Fixture::new("malformed_options_are_dropped_as_bad_tcp") else {
        return;
    };
    let cases: [(&str, Tcp); 6] = [
        (
            "option length 0",
            Tcp::new(1, 2, SYN).options(&[3, 0, 7, 0]),
        ),
        (
            "option length 1",
            Tcp::new(1, 2, SYN).options(&[8, 1, 0, 0]),
        ),
        (
            "option past the header",
            Tcp::new(1, 2, SYN).options(&[1, 1, 8, 10]),
        ),
        (
            "MSS of length 3",
            Tcp::new(1, 2, SYN).options(&[2, 3, 5, 0]),
        ),
        (
            "kind without length at the end",
            Tcp::new(1, 2, SYN).raw_options(&[1, 1, 1, 3]),
        ),
        ("data offset below 5", {
            let mut t = Tcp::syn(1460);
            t.doff = Some(4);
            t
        }),
    ];
    for (what, tcp) in &cases {
        let (action, _) = clamp(&mut f, tcp);
        assert_eq!(action, TC_ACT_SHOT, "{what}");
    }
    // Data offset beyond the segment.
    let mut long = Tcp::syn(1460);
    long.doff = Some(15);
    let (action, _) = clamp(&mut f, &long);
    assert_eq!(action, TC_ACT_SHOT, "data offset beyond the segment");
    f.assert_verdicts(
        Hook::TunnelTx,
        DropReason::BadTcpHeader,
        cases.len() as u64 + 1,
    );
}
