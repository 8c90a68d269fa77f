//! GRE over IPsec with real ESP, in the test VM (Debian 12's kernel; this host's has no ESP):
//! vc's controller and charon in a "CPE" namespace against a strongSwan responder in a "DC"
//! namespace, kernel ip_gre on both sides, no `ip xfrm state` by hand (every SA comes from
//! IKE). Egress captures on both ends of the WAN are the judge of what crossed it.
//!
//! Each test is one VM boot; related checks share a boot.
mod support;

use std::time::{Duration, Instant};

use support::{BGP_PASSWORD, Lab, Options, PSK};
use vc_agent::{
    config::TunnelId,
    ipsec::{CharonState, Failure, Snapshot, conn},
};
use vc_testkit::{capture::Kind, vm};

const A: TunnelId = TunnelId::A;

fn child_up(s: &Snapshot) -> bool {
    s.sas.tunnel(A).child_up()
}

fn spi_in(s: &Snapshot) -> String {
    s.sas
        .tunnel(A)
        .child
        .as_ref()
        .map(|c| c.spi_in.clone())
        .unwrap_or_default()
}

fn charon_pid(s: &Snapshot) -> Option<u32> {
    match s.charon {
        CharonState::Up { pid, .. } => pid,
        _ => None,
    }
}

/// vc initiates, IKE and child SA come up (tunnel mode, GRE-only selectors, reqid 1001),
/// GRE crosses, and the wire carries only IKE and ESP; a clear GRE tunnel next to it is
/// caught by the same check (negative control). Secrets appear in no log.
#[test]
fn esp_tunnel_carries_gre_and_only_ike_and_esp_cross() {
    if !vm::inside_or_boot("esp_tunnel_carries_gre_and_only_ike_and_esp_cross") {
        return;
    }
    let lab = Lab::new("esp", Options::default());
    let dc = lab.start_dc(|_| {});
    let t0 = Instant::now();
    let vc = lab.start_vc(lab.config(""));
    let snap = vc.wait(Duration::from_secs(60), "child SA up", child_up);
    let up_after = t0.elapsed();

    let t = snap.sas.tunnel(A);
    let (ike, child) = (
        t.ike.as_ref().expect("ike"),
        t.child.as_ref().expect("child"),
    );
    assert!(ike.initiator, "the CPE initiates (R8)");
    assert_eq!(child.mode, "TUNNEL");
    assert_eq!(child.reqid, conn::reqid(A));
    assert_eq!(child.local_ts, ["198.51.100.1/32[gre]"]);
    assert_eq!(child.remote_ts, ["198.51.100.2/32[gre]"]);
    assert!(!child.encap, "no NAT here: plain ESP");
    assert_eq!(child.proposal, "AES_GCM_16_256");
    // The kernel holds exactly the SAs IKE negotiated: two, tunnel mode, reqid 1001.
    let states = lab.cpe.ip(&["xfrm", "state"]).expect("xfrm state");
    assert_eq!(states.matches("proto esp").count(), 2, "{states}");
    assert_eq!(
        states.matches("reqid 1001 mode tunnel").count(),
        2,
        "{states}"
    );
    assert!(states.contains("rfc4106(gcm(aes))"), "{states}");

    lab.kernel_gre();
    let (near, far) = lab.capture("esp");
    let replies = lab.ping(20);
    let (near, far) = (near.stop().expect("capture"), far.stop().expect("capture"));
    eprintln!("{near}\n{far}");
    assert_eq!(replies, 20, "ping over GRE over ESP");
    near.assert_only_ike_and_esp();
    far.assert_only_ike_and_esp();
    assert!(near.count(Kind::Esp) >= 20 && far.count(Kind::Esp) >= 20);

    // Negative control: a GRE tunnel to an address no policy covers goes out in clear, and
    // the same capture check sees it.
    lab.dc
        .ip(&["addr", "add", "198.51.100.9/24", "dev", "wan"])
        .expect("addr");
    lab.cpe
        .sh(
            "ip link add gre9 type gre local 198.51.100.1 remote 198.51.100.9 ttl 64; \
             ip addr add 100.64.99.2/30 dev gre9; ip link set gre9 up",
        )
        .expect("gre9");
    lab.dc
        .sh(
            "ip link add gre9 type gre local 198.51.100.9 remote 198.51.100.1 ttl 64; \
             ip addr add 100.64.99.1/30 dev gre9; ip link set gre9 up",
        )
        .expect("gre9");
    let (near, far) = lab.capture("clear");
    let out = lab
        .cpe
        .sh_output("ping -n -q -c 5 -i 0.1 -W 2 100.64.99.1")
        .expect("ping");
    let (near, far) = (near.stop().expect("capture"), far.stop().expect("capture"));
    eprintln!("negative control: {near}\n{far}");
    assert!(out.status.success(), "the clear GRE tunnel works");
    assert!(
        near.count(Kind::Gre) >= 5 && far.count(Kind::Gre) >= 5,
        "clear GRE not seen:\n{near}\n{far}"
    );
    assert!(
        !near.not_ike_or_esp().is_empty(),
        "the check must flag clear GRE"
    );

    let agent_log = vc.stop(false);
    for (what, log) in [
        ("agent", agent_log),
        ("vc charon", lab.vc_charon_log()),
        ("dc charon", dc.log()),
    ] {
        assert!(
            !log.contains(PSK) && !log.contains(BGP_PASSWORD),
            "a secret in the {what} log"
        );
    }
    eprintln!("MEASURE time from Ipsec::start to child SA up: {up_after:?}");
}
