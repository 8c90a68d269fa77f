//! The two-CPE deployment end to end, in the test VM (ESP and kernel GRE): the simulated region
//! of `cargo xtask lab --model two-cpes` (`vc_testkit::region::two_cpes`). CPE 1 runs
//! `vc-agent run` for tunnel A only, CPE 2 for tunnel B only (`[deployment] model =
//! "two-cpes"`, IPsec mode, `[lan] default_requires = ["link"]`), each with BIRD 2 beside it
//! running `docs/examples/two-cpes-bird.conf`, which redistributes vc's kernel routes (proto
//! vc) to the enterprise router, the LAN host's gateway.
//!
//! One VM boot, phase by phase: each CPE brings its one tunnel up; the router learns DC1's /25
//! and the /24 from CPE 1 and DC2's /25 and the /24 from CPE 2, never vc's backstop routes; the
//! LAN host reaches DC1's /25 through CPE 1 and tunnel A, DC2's through CPE 2 and tunnel B;
//! tunnel A killed (DC1 shuts its BGP session) → CPE 1 withdraws, the router sends DC1's /25
//! to CPE 2 over the /24 (and Cisco's backbone), with the outage measured; tunnel A back;
//! CPE 1's LAN link cut → CPE 1 withdraws 0.0.0.0/0 from DC1, and DC1's host reaches the LAN
//! through DC2 and CPE 2.
use std::{
    collections::BTreeSet,
    net::Ipv4Addr,
    path::Path,
    thread::JoinHandle,
    time::{Duration, Instant},
};

use vc_agent::status::AgentStatus;
use vc_testkit::{
    NetNs,
    capture::{Capture, Kind},
    region::{
        plan::{CISCO_PREFIX, DC1, DC2, DCS, DcPlan, LAN_HOST},
        two_cpes::{CPE_BIRD_EXAMPLE, TwoCpeRegion},
    },
    vm, wait_for,
};

fn status(region: &TwoCpeRegion, n: u8) -> AgentStatus {
    let json = region
        .status_json(n)
        .unwrap_or_else(|e| panic!("{e:#}\n{}", region.logs(60)));
    serde_json::from_str(&json).expect("vc-agent status --json")
}

fn set(items: &[impl ToString]) -> BTreeSet<String> {
    items.iter().map(ToString::to_string).collect()
}

fn halves(dc: &DcPlan) -> BTreeSet<String> {
    [dc.prefix.to_string(), CISCO_PREFIX.to_string()].into()
}

#[test]
fn two_cpes_end_to_end() {
    if !vm::inside_or_boot("two_cpes_end_to_end") {
        return;
    }
    let mut region =
        TwoCpeRegion::build(Path::new(env!("CARGO_BIN_EXE_vc-agent"))).expect("the two-CPE region");
    // Each CPE's WAN from before its agent's first packet to the end: whatever fails, nothing
    // but IKE and ESP leaves (R7, R12).
    let wires = [1, 2].map(|n| {
        let path = region.dir.join(format!("cpe{n}-wan-out.pcap"));
        Capture::egress(&region.cpe(n).ns, "wan0", &path).expect("capture")
    });
    region.start_agents().expect("vc-agent run on both CPEs");
    let t = Instant::now();
    region
        .start_dc_peers(Duration::from_mins(1))
        .unwrap_or_else(|e| panic!("{e:#}\n{}", region.logs(60)));
    let (up, lists) = region.wait_up(Duration::from_mins(1), |_, _, _| {});
    assert!(up, "not up:\n{}{}\n{}", lists[0], lists[1], region.logs(60));
    eprintln!(
        "MEASURE both CPEs' tunnels up {:?} after vc-agent run\n{}{}",
        t.elapsed(),
        lists[0],
        lists[1]
    );

    each_cpe_one_tunnel(&region);
    router_learns_each_half(&region);
    each_half_through_its_cpe(&region);
    tunnel_a_shut(&region);
    tunnel_a_path_lost(&region);
    lan_link_cut(&region);

    for (n, wire) in (1..).zip(wires) {
        let seen = wire.stop().expect("capture");
        eprintln!("CPE {n}'s WAN: {seen}");
        seen.assert_only_ike_and_esp();
        assert!(
            seen.count(Kind::Ike) > 0 && seen.count(Kind::Esp) > 100,
            "{seen}"
        );
    }
}

/// R2: each CPE terminates its one tunnel, to its DC, and nothing of the other's.
fn each_cpe_one_tunnel(region: &TwoCpeRegion) {
    for dc in DCS {
        let s = status(region, dc.n);
        let keys: Vec<u8> = s.tunnels.iter().map(|t| t.ends.dc).collect();
        assert_eq!(
            keys,
            [dc.n],
            "CPE {} terminates tunnel to DC{} only",
            dc.n,
            dc.n
        );
        let t = &s.tunnels[0];
        let bgp = t.bgp.as_ref().expect("BGP status");
        assert!(bgp.established, "{t}");
        assert_eq!(set(&t.accepted_prefixes), halves(dc), "{t}");
        assert_eq!(region.dc(dc.n).received(), ["0.0.0.0/0"], "DC{}", dc.n);
        let xfrm = region.cpe(dc.n).ns.ip(&["xfrm", "state"]).expect("xfrm");
        assert_eq!(xfrm.matches("proto esp").count(), 2, "CPE {}: {xfrm}", dc.n);
    }
}

/// R22 and the model's point: the router learns from each CPE exactly what that CPE's DC
/// announced (its /25 and the /24), from BIRD's redistribution of proto vc; vc's backstop
/// routes (proto 202, on both CPEs all along) and the CPEs' own routes are not redistributed.
fn router_learns_each_half(region: &TwoCpeRegion) {
    for dc in DCS {
        wait_for(
            Duration::from_secs(20),
            &format!("the router to learn DC{}'s halves from CPE {}", dc.n, dc.n),
            || (set(&region.ent_learnt_from(dc.n)) == halves(dc)).then_some(()),
        )
        .unwrap_or_else(|e| {
            panic!(
                "{e:#}: learnt {:?}\n{}",
                region.ent_learnt_from(dc.n),
                region.logs(40)
            )
        });
        let backstop = region.cpe(dc.n).routes(202);
        assert!(
            backstop.contains(&format!("unreachable {CISCO_PREFIX}")),
            "the negative control needs CPE {}'s backstop: {backstop}",
            dc.n
        );
        assert!(
            region.ent_routes_via(dc.host, dc.n),
            "{}",
            region.ent_route_get(dc.host)
        );
    }
}

/// `count` pings from the LAN host to `dst`; the packets each DC's `ip_gre` received meanwhile.
fn pings_counted(region: &TwoCpeRegion, dst: Ipv4Addr, count: u32) -> [u64; 2] {
    let before = [region.dc(1).gre_rx_packets(), region.dc(2).gre_rx_packets()];
    vc_testkit::traffic::ping_burst(&region.lan, None, dst, u64::from(count))
        .unwrap_or_else(|e| panic!("{e:#}\n{}", region.logs(30)));
    [
        region.dc(1).gre_rx_packets() - before[0],
        region.dc(2).gre_rx_packets() - before[1],
    ]
}

/// Asserts that pings to `dst` crossed `via`'s tunnel (so `via`'s CPE) and not the other.
fn pings_cross(region: &TwoCpeRegion, dst: Ipv4Addr, via: &DcPlan) {
    let count = 20;
    let rx = pings_counted(region, dst, count);
    let (own, other) = (
        rx[usize::from(via.n - 1)],
        rx[usize::from(via.other().n - 1)],
    );
    assert!(own >= u64::from(count), "DC{} saw {own} packets", via.n);
    // Keepalives and BGP cross the other tunnel meanwhile: a few packets, not the pings.
    assert!(other < 10, "DC{} saw {other} packets", via.other().n);
}

/// R20 across two boxes: the LAN host reaches each /25 through the CPE of its tunnel.
fn each_half_through_its_cpe(region: &TwoCpeRegion) {
    for dc in DCS {
        pings_cross(region, dc.host, dc);
    }
}

/// The background pings' interval.
const PING_INTERVAL: Duration = Duration::from_millis(50);

/// Pings from the LAN host to `dst` every [`PING_INTERVAL`], a `window`'s worth, in the background, each
/// reply stamped (`-D`). A count, not a deadline (`-w`): with a deadline ping stops at the
/// first ICMP error, and a CPE whose tunnel failed answers the LAN's pings with one (net
/// unreachable) until BIRD has withdrawn its routes from the router.
fn pinging(lan: &NetNs, dst: Ipv4Addr, window: Duration) -> JoinHandle<String> {
    let count = window.as_millis() / PING_INTERVAL.as_millis();
    let mut cmd = lan.command("ping");
    cmd.args(["-n", "-D", "-W", "1", "-i"])
        .arg(PING_INTERVAL.as_secs_f64().to_string())
        .arg("-c")
        .arg(count.to_string())
        .arg(dst.to_string());
    std::thread::spawn(move || {
        let out = cmd.output().expect("ping");
        String::from_utf8_lossy(&out.stdout).into_owned()
    })
}

/// (transmitted, received) from ping's summary.
fn ping_counts(text: &str) -> (u64, u64) {
    let line = text
        .lines()
        .find(|l| l.contains("packets transmitted"))
        .unwrap_or_else(|| panic!("no ping summary: {text}"));
    let numbers: Vec<u64> = line
        .split(',')
        .filter_map(|part| part.split_whitespace().next()?.parse().ok())
        .collect();
    (numbers[0], numbers[1])
}

/// Each reply's (`icmp_seq`, time stamp in seconds), from `ping -D`'s lines
/// `[1764990000.123456] 64 bytes from 198.18.7.10: icmp_seq=7 ttl=62 time=0.9 ms`.
fn ping_replies(text: &str) -> Vec<(u64, f64)> {
    text.lines()
        .filter(|l| l.contains(" bytes from "))
        .filter_map(|l| {
            let stamp = l.strip_prefix('[')?.split(']').next()?.parse().ok()?;
            let seq = l.split("icmp_seq=").nth(1)?.split_whitespace().next()?;
            Some((seq.parse().ok()?, stamp))
        })
        .collect()
}

/// What the background pings saw, for the MEASURE output: the pings lost and the outage (the
/// longest silence between two replies, less the interval: by the clock, not by the share
/// lost, since under emulation ping sends less often than asked). Asserts that replies came
/// back and kept coming to the end, and that the outage took less than half the `window`.
fn outage(text: &str, window: Duration) -> String {
    let (sent, received) = ping_counts(text);
    let replies = ping_replies(text);
    // What a failure shows: ping's errors and summary, not every reply.
    let unanswered = || {
        text.lines()
            .filter(|l| !l.contains(" bytes from "))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let last_seq = replies.last().map_or(0, |r| r.0);
    assert!(
        received > 0 && last_seq + 20 >= sent,
        "the pings were not answered again by the end (last reply: icmp_seq={last_seq}):\n{}",
        unanswered()
    );
    let longest = replies
        .windows(2)
        .map(|pair| pair[1].1 - pair[0].1)
        .fold(0.0, f64::max);
    let outage = Duration::from_secs_f64(longest).saturating_sub(PING_INTERVAL);
    assert!(
        outage < window / 2,
        "an outage of {outage:.2?}:\n{}",
        unanswered()
    );
    format!(
        "lost {} of {sent} pings, no reply for {outage:.2?}",
        sent - received
    )
}

/// R21 across two boxes: DC1 shuts its BGP session with CPE 1 (tunnel A out of service):
/// CPE 1's vc withdraws its routes, its BIRD withdraws them from the router (but never
/// advertises the backstop that remains), the router sends DC1's /25 to CPE 2 over the /24,
/// and DC1's host stays reachable through tunnel B and Cisco's backbone. The outage is
/// measured by the pings lost. Then tunnel A comes back, and so does the /25 to CPE 1.
fn tunnel_a_shut(region: &TwoCpeRegion) {
    let window = Duration::from_secs(25);
    let pings = pinging(&region.lan, DC1.host, window);
    std::thread::sleep(Duration::from_secs(2));
    let t = Instant::now();
    region.dc(1).bgp_down().expect("birdc disable");
    region
        .wait_ent_via(DC1.host, 2, Duration::from_secs(20))
        .unwrap_or_else(|e| panic!("{e:#}\n{}", region.logs(40)));
    let moved = t.elapsed();
    assert!(
        region.ent_learnt_from(1).is_empty(),
        "CPE 1 redistributes nothing without its tunnel, not even its backstop: {:?}",
        region.ent_learnt_from(1)
    );
    assert!(
        region.cpe(1).routes(201).is_empty(),
        "{}",
        region.cpe(1).routes(201)
    );
    assert!(
        region.cpe(1).routes(202).contains(CISCO_PREFIX),
        "the backstop stays"
    );
    let lost = outage(&pings.join().expect("ping thread"), window);
    eprintln!(
        "MEASURE two CPEs: DC1's BGP down → the router sends DC1's /25 to CPE 2: {moved:?}; \
         LAN → DC1's host {lost}"
    );
    pings_cross(region, DC1.host, &DC2);
    assert!(region.ent_routes_via(DC2.host, 2));
    without_the_filter_the_backstop_leaks(region);

    let t = Instant::now();
    region.dc(1).bgp_up().expect("birdc enable");
    region
        .wait_ent_via(DC1.host, 1, Duration::from_secs(40))
        .unwrap_or_else(|e| panic!("{e:#}\n{}", region.logs(40)));
    eprintln!(
        "MEASURE two CPEs: DC1's BGP back → DC1's /25 to CPE 1 again: {:?}",
        t.elapsed()
    );
    assert_eq!(set(&region.ent_learnt_from(1)), halves(&DC1));
    pings_cross(region, DC1.host, &DC1);
}

/// The negative control of the example's filter, while tunnel A is out of service: CPE 1's
/// BIRD learning every kernel route instead of proto vc's only advertises vc's backstop (the
/// /24, unreachable) to the router, which sends the LAN's traffic for DC1's half to a CPE
/// that drops it. Then the example's filter again, and the router forgets CPE 1.
fn without_the_filter_the_backstop_leaks(region: &TwoCpeRegion) {
    let bird = region.cpe(1).bird().expect("CPE 1's BIRD");
    let unfiltered = CPE_BIRD_EXAMPLE.replace("import where krt_source = 201;", "import all;");
    assert_ne!(unfiltered, CPE_BIRD_EXAMPLE, "the example's filter line");
    bird.reconfigure(&unfiltered).expect("birdc configure");
    wait_for(
        Duration::from_secs(20),
        "the backstop /24 leaked to the router",
        || {
            region
                .ent_learnt_from(1)
                .iter()
                .any(|p| p == CISCO_PREFIX)
                .then_some(())
        },
    )
    .unwrap_or_else(|e| panic!("{e:#}: {:?}", region.ent_learnt_from(1)));
    eprintln!(
        "without the filter, the router learns from CPE 1: {:?}; it sends DC1's host: {}",
        region.ent_learnt_from(1),
        region.ent_route_get(DC1.host)
    );
    // Two equal /24s: BIRD's tie-break (the lower router id) picks CPE 1's, the black hole.
    assert!(
        region.ent_routes_via(DC1.host, 1),
        "{}",
        region.ent_route_get(DC1.host)
    );
    bird.reconfigure(CPE_BIRD_EXAMPLE).expect("birdc configure");
    wait_for(Duration::from_secs(20), "the leak withdrawn", || {
        region.ent_learnt_from(1).is_empty().then_some(())
    })
    .unwrap_or_else(|e| panic!("{e:#}: {:?}", region.ent_learnt_from(1)));
}

/// Tunnel A lost on the way: the internet path between CPE 1 and DC1 fails (IKE, ESP,
/// everything, both ways). CPE 1 finds out from its keepalives, vc removes its routes, BIRD
/// withdraws them from the router, which sends DC1's /25 to CPE 2; DC1 drops its session when
/// the hold time runs out (a Cisco head end: when its keepalives fail) and sends the LAN's
/// traffic over the backbone to DC2 and CPE 2. Then the path returns, and with it tunnel A.
fn tunnel_a_path_lost(region: &TwoCpeRegion) {
    let window = Duration::from_secs(40);
    let pings = pinging(&region.lan, DC1.host, window);
    std::thread::sleep(Duration::from_secs(2));
    let t = Instant::now();
    region.set_wan_path(1, false).expect("cut the path");
    region
        .wait_ent_via(DC1.host, 2, Duration::from_secs(30))
        .unwrap_or_else(|e| panic!("{e:#}\n{}", region.logs(40)));
    let lan_side = t.elapsed();
    let s = status(region, 1);
    assert!(!s.tunnels[0].keepalive.alive, "{}", s.tunnels[0]);
    assert!(
        region.cpe(1).routes(201).is_empty(),
        "{}",
        region.cpe(1).routes(201)
    );
    assert!(
        region.ent_learnt_from(1).is_empty(),
        "{:?}",
        region.ent_learnt_from(1)
    );
    wait_for(
        Duration::from_secs(30),
        "DC1 to drop CPE 1's 0.0.0.0/0",
        || region.dc(1).received().is_empty().then_some(()),
    )
    .unwrap_or_else(|e| panic!("{e:#}\n{}", region.logs(40)));
    let dc_side = t.elapsed();
    let lost = outage(&pings.join().expect("ping thread"), window);
    eprintln!(
        "MEASURE two CPEs: path CPE 1 ↔ DC1 cut → CPE 1's keepalives fail and the router sends \
         DC1's /25 to CPE 2: {lan_side:?}; DC1 drops CPE 1's 0.0.0.0/0 (hold time): \
         {dc_side:?}; LAN → DC1's host {lost}"
    );
    pings_cross(region, DC1.host, &DC2);

    let t = Instant::now();
    region.set_wan_path(1, true).expect("restore the path");
    region
        .wait_ent_via(DC1.host, 1, Duration::from_secs(90))
        .unwrap_or_else(|e| panic!("{e:#}\n{}", region.logs(60)));
    let routes_back = t.elapsed();
    wait_for(
        Duration::from_mins(1),
        "DC1 to have CPE 1's 0.0.0.0/0",
        || (region.dc(1).received() == ["0.0.0.0/0"]).then_some(()),
    )
    .unwrap_or_else(|e| panic!("{e:#}\n{}", region.logs(60)));
    eprintln!(
        "MEASURE two CPEs: path restored → DC1's /25 to CPE 1 again: {routes_back:?}; DC1 has \
         its 0.0.0.0/0 again: {:?}",
        t.elapsed()
    );
    pings_cross(region, DC1.host, &DC1);
}

/// `[lan] default_requires = ["link"]`: CPE 1's LAN link cut withdraws 0.0.0.0/0 from DC1
/// (and only from DC1: CPE 2 keeps announcing it to DC2), so DC1 sends the LAN's traffic over
/// Cisco's backbone to DC2 and CPE 2: DC1's host still reaches the LAN host.
fn lan_link_cut(region: &TwoCpeRegion) {
    assert_eq!(region.dc(1).received(), ["0.0.0.0/0"]);
    let t = Instant::now();
    region.set_lan_link(1, false).expect("cut CPE 1's LAN link");
    wait_for(
        Duration::from_secs(20),
        "DC1 to lose CPE 1's 0.0.0.0/0",
        || region.dc(1).received().is_empty().then_some(()),
    )
    .unwrap_or_else(|e| panic!("{e:#}\n{}", region.logs(40)));
    eprintln!(
        "MEASURE two CPEs: CPE 1's LAN link cut → DC1 no longer has 0.0.0.0/0 from it: {:?}",
        t.elapsed()
    );
    assert_eq!(
        region.dc(2).received(),
        ["0.0.0.0/0"],
        "CPE 2 keeps its default"
    );
    let s = status(region, 1);
    let bgp = s.tunnels[0].bgp.as_ref().expect("bgp");
    assert!(bgp.established, "the session stays, only the route goes");
    assert_eq!(bgp.advertised, 0, "{}", s.tunnels[0]);
    // The router forgets CPE 1 after its hold time; then the LAN's replies go to CPE 2 too.
    region
        .wait_ent_via(DC1.host, 2, Duration::from_secs(30))
        .unwrap_or_else(|e| panic!("{e:#}\n{}", region.logs(40)));
    let out = region
        .dc(1)
        .ns
        .sh_output(&format!(
            "ping -n -q -c 5 -i 0.2 -W 2 -I {} {LAN_HOST}",
            DC1.host
        ))
        .expect("ping");
    assert!(
        out.status.success(),
        "DC1's host → the LAN host through DC2 and CPE 2: {}",
        String::from_utf8_lossy(&out.stdout)
    );
}
