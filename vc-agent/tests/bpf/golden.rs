//! Golden packets from an independent builder: scapy computes every length and checksum of the
//! packets the programs must emit, and of the packets our own test builder makes.
use std::{fmt::Write as _, process::Command};

use vc_agent::datapath::Program;
use vc_common::settings_flags;
use vc_testkit::{
    packet::{Ipv4, SYN, Tcp, udp_in_ipv4},
    testrun::TC_ACT_REDIRECT,
};

use crate::fixture::{Fixture, l3, lan_frame, tunnel_frame, wan_frame};

/// Evaluates each scapy expression and returns its bytes.
fn scapy(exprs: &[&str]) -> Vec<Vec<u8>> {
    let mut script = String::from("from scapy.all import IP, TCP, UDP, GRE, raw\n");
    for e in exprs {
        writeln!(script, "print(raw({e}).hex())").expect("string");
    }
    let out = Command::new("/usr/bin/python3")
        .args(["-c", &script])
        .output()
        .expect("/usr/bin/python3 (apt: python3-scapy)");
    assert!(
        out.status.success(),
        "scapy: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("hex")
        .lines()
        .map(|l| {
            (0..l.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&l[i..i + 2], 16).expect("hex"))
                .collect()
        })
        .collect()
}

const INNER_SYN: &str = "IP(src='100.64.0.1', dst='203.0.113.10', tos=0xb8, id=0x1234, flags='DF', ttl=64)\
    /TCP(sport=40000, dport=179, flags='S', seq=1000, window=64240, \
    options=[('NOP', None), ('WScale', 7), ('MSS', {mss})])";
/// The outer header for the stack to forward: the ID from the counter (pinned by the
/// fixture to 0x4d2e), TTL 65 so that it leaves the CPE with 64.
const OUTER: &str = "IP(src='198.51.100.1', dst='198.18.1.1', tos=0xb8, id=0x4d2e, flags='DF', ttl=65, proto=47)/GRE(proto=0x0800)";

#[test]
fn tunnel_transmit_matches_scapy() {
    let Some(mut f) = Fixture::new("tunnel_transmit_matches_scapy") else {
        return;
    };
    let input_syn = INNER_SYN.replace("{mss}", "1460");
    let expected = format!("{OUTER}/{}", INNER_SYN.replace("{mss}", "1350"));
    let golden = scapy(&[&input_syn, &expected]);

    let ours = Tcp::new(40000, 179, SYN)
        .options(&[1, 3, 3, 7, 2, 4, 0x05, 0xb4])
        .in_ipv4(
            &Ipv4::new([100, 64, 0, 1], [203, 0, 113, 10], 0).tos(0xb8),
            b"",
        );
    assert_eq!(
        ours, golden[0],
        "our builder agrees with scapy on the input"
    );

    let out = f.run(Program::TunnelTx, &tunnel_frame(&golden[0]));
    assert_eq!(
        l3(&out.data),
        golden[1].as_slice(),
        "clamped and encapsulated, as scapy builds it"
    );
}

#[test]
fn fast_path_matches_scapy() {
    let Some(mut f) = Fixture::new("fast_path_matches_scapy") else {
        return;
    };
    let inner = |ttl: u8| {
        format!(
            "IP(src='10.1.0.10', dst='203.0.113.10', tos=0x2e, id=7, flags='DF', ttl={ttl})\
             /UDP(sport=5004, dport=5004)/(b'\\x80' * 172)"
        )
    };
    let outer = "IP(src='198.51.100.1', dst='198.18.1.1', tos=0x2e, id=0x4d2e, flags='DF', ttl=65, proto=47)/GRE(proto=0x0800)";
    let golden = scapy(&[&inner(64), &format!("{outer}/{}", inner(63))]);
    let ours = udp_in_ipv4(
        &Ipv4::new([10, 1, 0, 10], [203, 0, 113, 10], 0)
            .tos(0x2e)
            .id(7),
        5004,
        5004,
        &[0x80; 172],
    );
    assert_eq!(
        ours, golden[0],
        "our builder agrees with scapy on the input"
    );
    let out = f.run(Program::LanRx, &lan_frame(&golden[0]));
    assert_eq!(out.action, TC_ACT_REDIRECT);
    assert_eq!(l3(&out.data), golden[1].as_slice());
}

#[test]
fn wan_receive_matches_scapy() {
    let Some(mut f) = Fixture::new("wan_receive_matches_scapy") else {
        return;
    };
    f.settings(settings_flags::EXTERNAL_IPSEC);
    let inner = "IP(src='203.0.113.10', dst='10.1.0.10', tos=0xb8, id=99, flags='DF', ttl=60)\
        /TCP(sport=5061, dport=40000, flags='S', seq=7, window=29200, options=[('MSS', {mss}), ('SAckOK', b''), ('NOP', None), ('WScale', 9)])";
    let arriving = format!(
        "IP(src='198.18.1.1', dst='198.51.100.1', ttl=250, proto=47)/GRE(proto=0x0800)/{}",
        inner.replace("{mss}", "8960")
    );
    let golden = scapy(&[&arriving, &inner.replace("{mss}", "1350")]);
    let out = f.run(Program::WanRx, &wan_frame(&golden[0]));
    assert_eq!(out.action, TC_ACT_REDIRECT);
    assert_eq!(
        l3(&out.data),
        golden[1].as_slice(),
        "decapsulated and clamped, as scapy builds it"
    );
}
