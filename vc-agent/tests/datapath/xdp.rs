//! GRE-only mode's XDP fast paths as the datapath attaches them: on veths (native XDP) the
//! traffic takes XDP both ways; on a LAN device without native XDP (a bridge) the TC programs
//! carry everything and the datapath comes up whole all the same; a detached XDP program is
//! put back by the audit, as a TC one is.
use std::time::{Duration, Instant};

use vc_agent::datapath::{Datapath, DatapathMaps, Direction, Presence};
use vc_common::{Counted, Hook, Outcome};
use vc_fixtures::gre_lab::{DC1_HOST, LAN_HOST, Topology};
use vc_testkit::{NetNs, privileged, traffic::tcp_transfer};

use crate::{assert_no_drops, assert_ping};

fn forwarded(maps: &DatapathMaps, hook: Hook) -> u64 {
    maps.verdicts()
        .expect("verdicts")
        .into_iter()
        .filter(|v| v.hook == hook && v.reason == Counted::Outcome(Outcome::Forwarded))
        .map(|v| v.packets)
        .sum()
}

/// Whether `device` in `ns` has an XDP program attached in driver mode.
fn native_xdp(ns: &NetNs, device: &str) -> bool {
    let out = ns
        .sh(&format!("ip -d link show dev {device}"))
        .expect("ip link");
    out.contains("prog/xdp ") || out.contains(" xdp ")
}

/// As [`native_xdp`], from a thread already in the namespace.
fn native_xdp_here(device: &str) -> bool {
    let out = std::process::Command::new("ip")
        .args(["-d", "link", "show", "dev", device])
        .output()
        .expect("ip link");
    let out = String::from_utf8_lossy(&out.stdout);
    out.contains("prog/xdp ") || out.contains(" xdp ")
}

fn traffic(t: &Topology) {
    assert_ping(&t.lan, DC1_HOST);
    assert_ping(&t.dc1, LAN_HOST);
    let n = tcp_transfer(&t.lan, &t.dc1, DC1_HOST, 5071, 300_000).expect("LAN → DC");
    assert_eq!(n, 300_000);
    let n = tcp_transfer(&t.dc1, &t.lan, LAN_HOST, 5072, 300_000).expect("DC → LAN");
    assert_eq!(n, 300_000);
}

#[test]
fn gre_only_traffic_takes_xdp_where_the_devices_have_it() {
    if !privileged("gre_only_traffic_takes_xdp_where_the_devices_have_it") {
        return;
    }
    let t = Topology::with_xdp();
    assert!(native_xdp(&t.cpe, "lan0") && native_xdp(&t.cpe, "wan0"));
    traffic(&t);
    let maps = t.cpe_maps();
    let (lan, wan) = (
        forwarded(&maps, Hook::XdpLanRx),
        forwarded(&maps, Hook::XdpWanRx),
    );
    assert!(
        lan > 0 && wan > 0,
        "XDP carried traffic both ways: {lan} out, {wan} in"
    );
    assert_no_drops(&maps);
    let settings = maps.settings().expect("settings");
    assert_ne!(settings.xdp_lan_ifindex, 0);
    assert_ne!(settings.xdp_wan_ifindex, 0);
}

#[test]
fn without_native_xdp_the_tc_programs_carry_everything() {
    if !privileged("without_native_xdp_the_tc_programs_carry_everything") {
        return;
    }
    let mut t = Topology::dcs_only(true);
    // The CPE's LAN side becomes a bridge (no native XDP) with the veth as its port.
    t.cpe
        .sh("ip link set lan0 down; ip link set lan0 name lanport
             ip link add lan0 type bridge; ip addr flush dev lanport
             ip link set lanport master lan0; ip addr add 10.1.0.1/24 dev lan0
             ip link set lanport up; ip link set lan0 up")
        .expect("bridge");
    t.veths_for_xdp();
    t.cpe_spec.xdp = true;
    t.cpe_up();
    assert!(!native_xdp(&t.cpe, "lan0"), "a bridge has no native XDP");
    traffic(&t);
    let maps = t.cpe_maps();
    assert_eq!(forwarded(&maps, Hook::XdpLanRx), 0);
    assert_eq!(
        forwarded(&maps, Hook::XdpWanRx),
        0,
        "nothing redirected into the bridge, which cannot take XDP frames"
    );
    assert!(forwarded(&maps, Hook::LanRx) > 0 && forwarded(&maps, Hook::WanRx) > 0);
    assert_no_drops(&maps);
    let settings = maps.settings().expect("settings");
    assert_eq!((settings.xdp_lan_ifindex, settings.xdp_wan_ifindex), (0, 0));
}

#[test]
fn a_detached_xdp_fast_path_is_put_back() {
    if !privileged("a_detached_xdp_fast_path_is_put_back") {
        return;
    }
    let mut t = Topology::dcs_only(true);
    t.veths_for_xdp();
    t.cpe_spec.xdp = true;
    let spec = t.cpe_spec.clone();
    let link = spec.pin_dir.join("links").join("lan0-xdp");
    t.cpe
        .run_in(move || {
            vc_fixtures::block_on(async move {
                let datapath = Datapath::up(spec).await.expect("up");
                assert!(native_xdp_here("lan0"));
                // The pin is the link's last reference: removing it detaches the program,
                // but the kernel frees the link from a workqueue, so the detach lands a
                // moment later (on a slow machine, after the next line ran).
                std::fs::remove_file(&link).expect("unpin");
                let deadline = Instant::now() + Duration::from_secs(5);
                while native_xdp_here("lan0") {
                    assert!(
                        Instant::now() < deadline,
                        "still attached 5 s after the unpin"
                    );
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                let report = datapath.reconcile().await.expect("reconcile");
                assert!(native_xdp_here("lan0"), "put back");
                assert!(report.repairs >= 1 && report.faults().is_empty());
                let lan_xdp = report
                    .hooks
                    .iter()
                    .find(|h| h.device == "lan0" && h.direction == Direction::Xdp)
                    .expect("audited");
                assert_eq!(lan_xdp.presence, Presence::Attached);
            });
        })
        .expect("in the namespace");
}
