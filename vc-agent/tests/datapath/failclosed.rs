//! Fail closed whatever the host does: the CPE in IPsec mode with no route to the
//! Cisco /24 through a tunnel (BGP down), so LAN traffic for it would follow the default
//! route out of the WAN in clear. Two layers keep it in: the guard on the WAN's egress and
//! the backstop's unreachable routes. The host then takes the guard away (a tcx link
//! detached, the WAN device re-created, the clsact qdisc deleted) while the datapath watch
//! the agent runs puts it back; a capture on the WAN peer judges whether anything leaked,
//! and the same capture without both layers shows that it would have.
use std::{
    path::PathBuf,
    time::{Duration, Instant},
};

use vc_agent::datapath::{
    AttachMode, Datapath, Mode, Presence,
    backstop::{BACKSTOP_METRIC, BACKSTOP_PROTO},
    reconcile::AUDIT_EVERY,
};
use vc_common::{DropReason, Hook};
use vc_fixtures::{
    gre_lab::{DC1_HOST, Topology, tc_program_on as on_device},
    watched::Watched,
};
use vc_testkit::{
    Daemon,
    capture::{Capture, Direction, Packets},
    privileged, veth, wait_for,
};

/// The gre lab with the CPE in IPsec mode, attached as `mode` says, watched; no route to the
/// /24 through the tunnels.
fn ipsec_cpe(test: &str, mode: AttachMode) -> Option<(Topology, Watched)> {
    if !privileged(test) {
        return None;
    }
    let mut t = Topology::dcs_only(false);
    t.cpe_spec.mode = Mode::Ipsec;
    t.cpe_spec.attach_mode = Some(mode);
    let w = Watched::start(&t.cpe, t.cpe_spec.clone());
    Some((t, w))
}

/// Whether `program` is attached to the CPE's WAN: as a clsact filter (bpftool) or in its tcx
/// chains (the kernel's `BPF_PROG_QUERY`; this bpftool predates tcx).
fn on_wan(t: &Topology, program: &str) -> bool {
    on_device(&t.cpe, "wan0", program)
}

fn guard_and_decap_on_wan(t: &Topology) -> bool {
    on_wan(t, "vc_wan_guard") && on_wan(t, "vc_wan_rx")
}

/// Runs `disturb` in the CPE's namespace, then waits (polling every 10 ms) for both WAN
/// programs to be back; returns how long that took from the start of the disturbance (an
/// upper bound: the disturbance's own commands are counted). That the disturbance did take
/// the programs away is the audit's repair count to show.
fn repaired_within(t: &Topology, what: &str, disturb: impl FnOnce()) -> Duration {
    let started = Instant::now();
    disturb();
    loop {
        if guard_and_decap_on_wan(t) {
            let took = started.elapsed();
            eprintln!("MEASURE repair after {what}: {took:?}");
            return took;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{what}: not repaired within 10 s"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// What leaves the CPE's WAN for the /24, seen by the WAN router on any of its devices (the
/// CPE's link may be re-created meanwhile), while the LAN pings a DC host every 10 ms.
struct LeakWatch {
    capture: Capture,
    ping: Daemon,
}

impl LeakWatch {
    fn start(t: &Topology, name: &str) -> LeakWatch {
        let path: PathBuf = t.scratch(name);
        let capture = Capture::start(
            &t.wan,
            "any",
            Direction::In,
            "dst net 203.0.113.0/24",
            &path,
        )
        .expect("capture");
        let ping = t
            .lan
            .spawn(
                "ping",
                &["-n", "-i", "0.01", "-w", "30", &DC1_HOST.to_string()],
            )
            .expect("ping");
        LeakWatch { capture, ping }
    }

    fn stop(self) -> Packets {
        let LeakWatch { capture, mut ping } = self;
        ping.stop();
        capture.stop().expect("capture")
    }
}

/// The LAN pings the DC host for `secs` and the WAN router's capture says what arrived.
fn leaked_during(t: &Topology, name: &str, secs: u64) -> Packets {
    let watch = LeakWatch::start(t, name);
    std::thread::sleep(Duration::from_secs(secs));
    watch.stop()
}

fn backstop_route(t: &Topology, verb: &str) {
    t.cpe
        .sh(&format!(
            "ip route {verb} unreachable 203.0.113.0/24 metric {BACKSTOP_METRIC} proto \
             {BACKSTOP_PROTO}"
        ))
        .expect("backstop route");
}

fn detach_guard_link(t: &Topology) {
    let pin = t.cpe_spec.pin_dir.join("links/wan0-egress");
    t.cpe
        .sh(&format!("bpftool link detach pinned {}", pin.display()))
        .expect("bpftool link detach");
}

/// The WAN device deleted (its veth peer goes with it) and made again, addressed and routed
/// as before: a new ifindex without programs.
fn recreate_wan(t: &Topology) {
    t.cpe.sh("ip link del wan0").expect("delete the WAN");
    veth(&t.cpe, "wan0", &t.wan, "c0").expect("veth");
    t.cpe
        .sh("ip addr add 198.51.100.1/24 dev wan0 && ip route replace default via 198.51.100.254")
        .expect("CPE WAN");
    t.wan
        .sh("ip addr add 198.51.100.254/24 dev c0")
        .expect("router side");
}

#[track_caller]
fn assert_nothing_leaked(p: &Packets, what: &str) {
    assert!(
        p.lines.is_empty(),
        "{what}: {} packets for the /24 left the WAN in clear: {:?}",
        p.lines.len(),
        p.lines.iter().take(3).collect::<Vec<_>>()
    );
}

fn clear_to_protected(t: &Topology) -> u64 {
    t.cpe_maps()
        .verdicts()
        .expect("verdicts")
        .iter()
        .filter(|v| v.hook == Hook::WanTxGuard && v.reason == DropReason::ClearToProtected)
        .map(|v| v.packets)
        .sum()
}

#[test]
fn each_layer_alone_keeps_the_24_off_the_wan_and_without_both_it_leaks() {
    let Some((t, mut w)) = ipsec_cpe(
        "each_layer_alone_keeps_the_24_off_the_wan_and_without_both_it_leaks",
        AttachMode::Tcx,
    ) else {
        return;
    };
    assert!(guard_and_decap_on_wan(&t), "attached at start");
    let routes = t.cpe.sh("ip route show table main").expect("routes");
    assert!(
        routes.contains("unreachable 203.0.113.0/24 proto vc-backstop metric 4000000000")
            || routes.contains("unreachable 203.0.113.0/24 proto 202 metric 4000000000"),
        "the backstop is in: {routes}"
    );
    // Nothing repairs from here on: each layer is judged alone.
    w.stop();

    // Both layers.
    assert_nothing_leaked(&leaked_during(&t, "both.pcap", 1), "guard and backstop");

    // The guard alone.
    backstop_route(&t, "del");
    let before = clear_to_protected(&t);
    assert_nothing_leaked(&leaked_during(&t, "guard.pcap", 1), "the guard alone");
    assert!(
        clear_to_protected(&t) > before + 20,
        "the guard dropped the pings"
    );

    // The backstop alone.
    backstop_route(&t, "add");
    detach_guard_link(&t);
    assert!(!on_wan(&t, "vc_wan_guard"), "the guard is gone");
    assert_nothing_leaked(&leaked_during(&t, "backstop.pcap", 1), "the backstop alone");

    // Neither: the negative control, the same capture sees the leak.
    backstop_route(&t, "del");
    let leak = leaked_during(&t, "neither.pcap", 1);
    assert!(
        leak.lines.len() > 20,
        "without guard and backstop the pings leave in clear (the capture would see a leak): \
         {} packets",
        leak.lines.len()
    );
    assert!(
        leak.lines
            .iter()
            .all(|p| p.line.contains(&format!("> {DC1_HOST}"))),
        "{:?}",
        leak.lines.first()
    );
}

/// Disturbs the WAN while the LAN pings the /24; the watch must repair within the audit
/// period (plus scheduling slack), and nothing may leave meanwhile.
fn disturbed_and_repaired(
    test: &str,
    mode: AttachMode,
    what: &str,
    disturb: fn(&Topology),
) -> Option<Duration> {
    let (t, w) = ipsec_cpe(test, mode)?;
    let repairs_before = w.datapath.audit().repairs;
    let watch = LeakWatch::start(&t, "leak.pcap");
    let took = repaired_within(&t, what, || disturb(&t));
    // The pings keep going a while after the repair: the repaired guard holds too.
    std::thread::sleep(Duration::from_millis(500));
    let seen = watch.stop();
    assert_nothing_leaked(&seen, what);
    assert!(
        took < AUDIT_EVERY + Duration::from_secs(1),
        "{what}: repaired after {took:?}"
    );
    let audit = wait_for(
        Duration::from_secs(5),
        "the audit to see the repair",
        || {
            let a = w.datapath.audit();
            (a.repairs > repairs_before && a.hooks.iter().all(|h| h.presence == Presence::Attached))
                .then_some(a)
        },
    )
    .expect("audit");
    assert!(audit.faults().is_empty(), "{:?}", audit.faults());
    Some(took)
}

#[test]
fn a_detached_tcx_guard_is_back_within_the_audit_period_and_nothing_leaks() {
    disturbed_and_repaired(
        "a_detached_tcx_guard_is_back_within_the_audit_period_and_nothing_leaks",
        AttachMode::Tcx,
        "tcx link detach (guard)",
        detach_guard_link,
    );
}

#[test]
fn a_recreated_wan_device_gets_its_programs_back_tcx() {
    disturbed_and_repaired(
        "a_recreated_wan_device_gets_its_programs_back_tcx",
        AttachMode::Tcx,
        "WAN device re-created (tcx)",
        recreate_wan,
    );
}

#[test]
fn a_recreated_wan_device_gets_its_programs_back_clsact() {
    disturbed_and_repaired(
        "a_recreated_wan_device_gets_its_programs_back_clsact",
        AttachMode::Clsact,
        "WAN device re-created (clsact)",
        recreate_wan,
    );
}

#[test]
fn a_deleted_clsact_qdisc_is_put_back_and_nothing_leaks() {
    disturbed_and_repaired(
        "a_deleted_clsact_qdisc_is_put_back_and_nothing_leaks",
        AttachMode::Clsact,
        "tc qdisc del dev wan0 clsact",
        |t| {
            t.cpe.sh("tc qdisc del dev wan0 clsact").expect("qdisc del");
        },
    );
}

#[test]
fn the_fast_path_switched_off_attaches_no_lan_program() {
    if !privileged("the_fast_path_switched_off_attaches_no_lan_program") {
        return;
    }
    let mut t = Topology::dcs_only(false);
    let on_lan = |t: &Topology| on_device(&t.cpe, "lan0", "vc_lan_rx");
    let up = |t: &Topology| {
        let spec = t.cpe_spec.clone();
        t.cpe
            .run_in(move || {
                vc_fixtures::block_on(async move { Datapath::up(spec).await.map(|d| d.audit()) })
            })
            .expect("thread")
            .expect("datapath up")
    };
    let audit = up(&t);
    assert!(!on_lan(&t), "fast path off: nothing on the LAN");
    assert!(
        audit.hooks.iter().all(|h| h.program != "vc_lan_rx"),
        "{audit:?}"
    );
    // A restart with the fast path on attaches it; switched off again, it goes.
    t.cpe_spec.fast_path = true;
    let audit = up(&t);
    assert!(on_lan(&t), "fast path on");
    assert!(
        audit
            .hooks
            .iter()
            .any(|h| h.program == "vc_lan_rx" && h.presence == Presence::Attached)
    );
    t.cpe_spec.fast_path = false;
    up(&t);
    assert!(!on_lan(&t), "fast path off after a restart: detached");
    // And the teardown finds nothing left on the LAN either way.
    t.cpe_down().expect("down");
    assert!(!on_lan(&t));
}

#[test]
fn a_wan_that_is_not_ethernet_is_refused_and_the_backstop_stays() {
    if !privileged("a_wan_that_is_not_ethernet_is_refused_and_the_backstop_stays") {
        return;
    }
    let mut t = Topology::dcs_only(false);
    t.cpe
        .sh("ip tuntap add dev tun0 mode tun && ip addr add 192.0.2.1/24 dev tun0")
        .expect("a raw-IP device");
    t.cpe_spec.wan_if = "tun0".into();
    t.cpe_spec.mode = Mode::Ipsec;
    let spec = t.cpe_spec.clone();
    let err = t
        .cpe
        .run_in(move || vc_fixtures::block_on(async move { Datapath::up(spec).await.map(drop) }))
        .expect("thread")
        .expect_err("a raw-IP WAN must be refused");
    let text = format!("{err:#}");
    assert!(
        text.contains("WAN device tun0 is not Ethernet"),
        "a clear error: {text}"
    );
    assert!(
        !t.cpe_spec.pin_dir.join("maps").exists(),
        "nothing was built"
    );
    let routes = t.cpe.sh("ip route show table main").expect("routes");
    assert!(
        routes.contains("unreachable 203.0.113.0/24"),
        "a failed start leaves the backstop: {routes}"
    );
}
