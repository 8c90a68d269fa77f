//! WAN transmit guard: in IPsec mode nothing vc carries leaves the WAN in clear. What passes
//! is handed on (`TC_NEXT`), never accepted: other programs after the guard still run.
use vc_agent::datapath::Program;
use vc_common::{Counted, DropReason, Hook, Outcome, settings_flags};
use vc_testkit::{
    packet::{self, IPPROTO_ESP, Ipv4, udp_in_ipv4},
    testrun::{TC_ACT_OK, TC_ACT_SHOT, TC_NEXT},
};

use crate::fixture::{
    CPE_GRE, DC1_GRE, DC1_HOST, DC1_TUNNEL, Fixture, INTERNET_HOST, LAN_HOST, wan_frame,
};

fn clear_gre() -> Vec<u8> {
    let inner = udp_in_ipv4(&Ipv4::new(LAN_HOST, DC1_HOST, 0), 1, 2, b"secret");
    wan_frame(
        &Ipv4::new(CPE_GRE, DC1_GRE, packet::IPPROTO_GRE).packet(&packet::gre(
            0,
            0x0800,
            &[],
            &inner,
        )),
    )
}

#[test]
fn clear_gre_and_clear_dc_traffic_never_leave_in_ipsec_mode() {
    let Some(mut f) = Fixture::new("clear_gre_and_clear_dc_traffic_never_leave_in_ipsec_mode")
    else {
        return;
    };
    assert_eq!(f.run(Program::WanGuard, &clear_gre()).action, TC_ACT_SHOT);
    // BGP down, so the kernel routed DC traffic to the default route: still never in clear.
    let to_dc = wan_frame(&udp_in_ipv4(&Ipv4::new(LAN_HOST, DC1_HOST, 0), 1, 2, b"x"));
    assert_eq!(f.run(Program::WanGuard, &to_dc).action, TC_ACT_SHOT);
    f.assert_all_verdicts(&[
        (Hook::WanTxGuard, Counted::Drop(DropReason::ClearGre), 1),
        (
            Hook::WanTxGuard,
            Counted::Drop(DropReason::ClearToProtected),
            1,
        ),
    ]);
}

#[test]
fn protected_prefixes_are_configuration() {
    let Some(mut f) = Fixture::new("protected_prefixes_are_configuration") else {
        return;
    };
    let to_tunnel_ip = wan_frame(&udp_in_ipv4(
        &Ipv4::new(CPE_GRE, DC1_TUNNEL, 0),
        179,
        179,
        b"",
    ));
    assert_eq!(
        f.run(Program::WanGuard, &to_tunnel_ip).action,
        TC_NEXT,
        "not protected yet"
    );
    f.maps()
        .add_protected(crate::fixture::prefix([100, 64, 0, 0], 30))
        .expect("protect the tunnel subnet");
    assert_eq!(f.run(Program::WanGuard, &to_tunnel_ip).action, TC_ACT_SHOT);
}

#[test]
fn esp_ike_and_internet_traffic_pass() {
    let Some(mut f) = Fixture::new("esp_ike_and_internet_traffic_pass") else {
        return;
    };
    let esp = wan_frame(&Ipv4::new(CPE_GRE, DC1_GRE, IPPROTO_ESP).packet(&[0x22; 80]));
    let ike = wan_frame(&udp_in_ipv4(
        &Ipv4::new(CPE_GRE, DC1_GRE, 0),
        500,
        500,
        &[0; 60],
    ));
    let nat_t = wan_frame(&udp_in_ipv4(
        &Ipv4::new(CPE_GRE, DC1_GRE, 0),
        4500,
        4500,
        &[0; 60],
    ));
    let web = wan_frame(&udp_in_ipv4(
        &Ipv4::new(LAN_HOST, INTERNET_HOST, 0),
        1,
        443,
        b"q",
    ));
    let arp = packet::ether([0xff; 6], [2; 6], packet::ETH_P_ARP, &[0; 28]);
    for frame in [esp, ike, nat_t, web, arp] {
        let out = f.run(Program::WanGuard, &frame);
        assert_eq!((out.action, &out.data), (TC_NEXT, &frame));
        assert_ne!(out.action, TC_ACT_OK, "TC_ACT_OK would end a tcx chain");
    }
    f.assert_verdicts(Hook::WanTxGuard, Outcome::Passed, 5);
}

#[test]
fn external_ipsec_mode_lets_gre_out() {
    let Some(mut f) = Fixture::new("external_ipsec_mode_lets_gre_out") else {
        return;
    };
    f.settings(settings_flags::EXTERNAL_IPSEC);
    assert_eq!(f.run(Program::WanGuard, &clear_gre()).action, TC_NEXT);
    f.assert_verdicts(Hook::WanTxGuard, Outcome::Passed, 1);
}

#[test]
fn clear_traffic_from_a_protected_prefix_never_leaves() {
    let Some(mut f) = Fixture::new("clear_traffic_from_a_protected_prefix_never_leaves") else {
        return;
    };
    // Decapsulated DC traffic for a destination the LAN does not route (the DC may send to
    // anything: vc advertises 0.0.0.0/0), which the kernel sent to the default route.
    let from_dc = wan_frame(&udp_in_ipv4(
        &Ipv4::new(DC1_HOST, INTERNET_HOST, 0),
        5060,
        5060,
        b"INVITE",
    ));
    let out = f.run(Program::WanGuard, &from_dc);
    assert_eq!(out.action, TC_ACT_SHOT);
    // The negative control: the same packet from a LAN host leaves (and is not counted as a
    // drop); and in external-IPsec mode, where the guard has nothing to protect, it passes.
    let from_lan = wan_frame(&udp_in_ipv4(
        &Ipv4::new(LAN_HOST, INTERNET_HOST, 0),
        5060,
        5060,
        b"INVITE",
    ));
    assert_eq!(f.run(Program::WanGuard, &from_lan).action, TC_NEXT);
    f.settings(settings_flags::EXTERNAL_IPSEC);
    assert_eq!(f.run(Program::WanGuard, &from_dc).action, TC_NEXT);
    f.assert_all_verdicts(&[
        (Hook::WanTxGuard, Counted::Outcome(Outcome::Passed), 2),
        (
            Hook::WanTxGuard,
            Counted::Drop(DropReason::ClearFromProtected),
            1,
        ),
    ]);
}
