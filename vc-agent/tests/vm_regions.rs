//! Two Virtual Connect regions on one CPE, with the whole agent in IPsec mode on the lab's
//! region (`vc_testkit::region` with `Options::regions = 2`): the file's own region (DC1, DC2)
//! and an `[[extra_region]]` "AMER" whose DC1 and DC2 are the lab's DC3 and DC4, built like the
//! first two (strongSwan, kernel `ip_gre`, BIRD 2 announcing its /25 and AMER's /24, a backbone
//! of their own) and reached through the same WAN router. One agent, one charon, one set of BPF
//! programs, four tunnels: `vc-dc1`, `vc-dc2`, `vc-r2-dc1`, `vc-r2-dc2`. One VM boot:
//!
//! - all four tunnels up: the lab's whole checklist on each (IKE and child SAs with reqids
//!   1001, 1002, 1011, 1012 and GRE-only selectors, keepalives, tunnel-IP ping, BGP
//!   Established, the DC's /25 and its own region's /24 accepted, the /25 routed via its
//!   tunnel); the status names the second region's tunnels `r2-a`, `r2-b`, with their region,
//!   `vc-agent status` heads them `R2-A → AMER DC1 (vc-r2-dc1)` (and `--tunnel r2-b` shows
//!   that one alone), the metrics label them `tunnel="r2-a"` (one series per tunnel), the
//!   kernel's SAs carry their reqids;
//! - the LAN host ↔ each of the four DCs' hosts, both ways, counted on the right tunnel: that
//!   tunnel's counters in the status and its DC's `gre1` grow by the pings, the other three's
//!   hardly at all;
//! - meanwhile, on the router's end of the CPE's link, nothing but IKE and ESP, all of it
//!   between the CPE and one of the four DCs, and ESP with each; the same pings seen in clear
//!   on each DC's `gre1` are the negative control;
//! - failover stays inside a region: DC3 shuts its BGP session (region 2's tunnel A loses its
//!   routes) → region 2's DC1 /25 is reached through `vc-r2-dc2` over AMER's /24, with the
//!   time measured, while `ip monitor route` sees no change to region 1's routes and its
//!   sessions stay up; DC3's session back → the /25 returns to `vc-r2-dc1`.
use std::{
    collections::{BTreeMap, BTreeSet},
    net::Ipv4Addr,
    path::Path,
    time::{Duration, Instant},
};

use vc_agent::status::{AgentStatus, TunnelCounters};
use vc_fixtures::region_agent::{
    RouteMonitor, bring_up, metrics, results, status, touches, tunnel,
};
use vc_testkit::{
    capture::{Capture, Direction, Packets},
    region::{
        Region,
        config::Options,
        dc::Dc,
        plan::{ALL_DCS, CPE_PUBLIC, DC1, DC2, DC3, DC4, DCS, DcPlan, LAN_HOST, REGION2},
    },
    traffic, vm,
};

/// Pings each way per DC: enough to stand out from keepalives and BGP on a tunnel.
const PINGS: u64 = 20;
/// What crosses a tunnel that carries no pings while others do: GRE keepalives every 2 s
/// both ways and the odd BGP keepalive.
const NOISE: u64 = 10;

#[test]
fn two_regions_on_one_cpe() {
    if !vm::inside_or_boot("two_regions_on_one_cpe") {
        return;
    }
    let bin = Path::new(env!("CARGO_BIN_EXE_vc-agent"));
    let options = Options {
        regions: 2,
        ..Options::default()
    };
    let mut region = Region::build_with(bin, &options).expect("the lab with two regions");
    bring_up(&mut region, "two regions");

    second_region_named(&region);
    each_dc_on_its_own_tunnel(&region);
    failover_stays_in_its_region(&region);
}

/// The status has the four tunnels under vc's keys, each on its interface with its region's
/// prefixes; the second region's carry its name; the metrics have a series of each tunnel
/// under its key; the kernel has its SAs under 1011 and 1012.
fn second_region_named(region: &Region) {
    let s = status(region);
    let keys: Vec<&str> = s.tunnels.iter().map(|t| t.ends.id.key()).collect();
    assert_eq!(keys, ["a", "b", "r2-a", "r2-b"], "the status's tunnels");
    for dc in ALL_DCS {
        let t = tunnel(&s, dc);
        assert_eq!(t.ends.interface, dc.interface(), "{t}");
        assert_eq!(t.ends.dc, dc.dc(), "{t}");
        assert_eq!(t.remote_ipsec, dc.ipsec, "{t}");
        let expected: BTreeSet<String> = [dc.prefix, dc.cisco_prefix].map(str::to_string).into();
        let given: BTreeSet<String> = t
            .expected_prefixes
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(given, expected, "{t}");
        if dc.region == 2 {
            assert_eq!(t.ends.region, REGION2, "{t}");
        }
    }
    let text = region.agent_text(&["status"]);
    for headline in [
        "tunnel A → DC1 (vc-dc1) up",
        "tunnel B → DC2 (vc-dc2) up",
        "tunnel R2-A → AMER DC1 (vc-r2-dc1) up",
        "tunnel R2-B → AMER DC2 (vc-r2-dc2) up",
    ] {
        assert!(text.contains(headline), "no {headline:?} in:\n{text}");
    }
    // One tunnel of the second region asked for by its key: that one alone.
    let one = region.agent_text(&["status", "--tunnel", "r2-b"]);
    let headlines: Vec<&str> = one
        .lines()
        .filter(|l| l.trim_start().starts_with("tunnel "))
        .collect();
    assert_eq!(headlines.len(), 1, "{one}");
    assert!(
        headlines[0].contains("tunnel R2-B → AMER DC2 (vc-r2-dc2) up"),
        "{one}"
    );
    let m = metrics(region);
    for dc in ALL_DCS {
        let key = dc.key();
        let interface = dc.interface();
        let labels = [("tunnel", key.as_str()), ("interface", interface.as_str())];
        assert_eq!(m.int("vc_tunnel_info", &labels), Some(1), "{labels:?}");
        assert_eq!(
            m.int("vc_tunnel_up", &[("tunnel", key.as_str())]),
            Some(1),
            "tunnel {key}"
        );
    }
    let states = region.cpe.ip(&["xfrm", "state"]).expect("ip xfrm state");
    for dc in ALL_DCS {
        // One SA in, one out.
        let count = states.matches(&format!("reqid {} ", dc.reqid())).count();
        assert_eq!(count, 2, "SAs with reqid {}:\n{states}", dc.reqid());
    }
}

/// What one round of pings moved: per DC (by [`DcPlan::n`]), its tunnel's counters in the
/// status and its `gre1`'s received packets.
struct Moved {
    tx: BTreeMap<u8, u64>,
    rx: BTreeMap<u8, u64>,
    gre_rx: BTreeMap<u8, u64>,
}

impl Moved {
    fn between(
        region: &Region,
        (s0, g0): &(AgentStatus, Vec<u64>),
        (s1, g1): &(AgentStatus, Vec<u64>),
    ) -> Moved {
        let delta = |f: fn(&TunnelCounters) -> u64| {
            ALL_DCS
                .iter()
                .map(|dc| {
                    let (a, b) = (&tunnel(s0, dc).counters, &tunnel(s1, dc).counters);
                    (dc.n, f(b) - f(a))
                })
                .collect()
        };
        Moved {
            tx: delta(|c| c.tx_packets),
            rx: delta(|c| c.rx_packets),
            gre_rx: region
                .dcs
                .iter()
                .zip(g0.iter().zip(g1))
                .map(|(dc, (a, b))| (dc.plan.n, b - a))
                .collect(),
        }
    }

    /// Asserts that `via`'s tunnel carried at least `tx` and `rx` packets, its DC's `gre1`
    /// received `gre` or more, and every other tunnel and DC no more than noise.
    fn assert_on(&self, via: &DcPlan, (tx, rx, gre): (u64, u64, u64), what: &str) {
        for dc in ALL_DCS {
            let got = (self.tx[&dc.n], self.rx[&dc.n], self.gre_rx[&dc.n]);
            if dc.n == via.n {
                assert!(
                    got.0 >= tx && got.1 >= rx && got.2 >= gre,
                    "{what}: tunnel {} carried tx {}, rx {}, DC{}'s gre1 received {}; \
                     wanted {tx}, {rx}, {gre}",
                    dc.key(),
                    got.0,
                    got.1,
                    dc.n,
                    got.2
                );
            } else {
                assert!(
                    got.0 < NOISE && got.1 < NOISE && got.2 < NOISE,
                    "{what}: tunnel {} (not the pings' own) carried tx {}, rx {}, DC{}'s gre1 \
                     received {}",
                    dc.key(),
                    got.0,
                    got.1,
                    dc.n,
                    got.2
                );
            }
        }
    }
}

impl std::fmt::Display for Moved {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for dc in ALL_DCS {
            write!(
                f,
                "{}: tx {} rx {} (DC{} gre1 rx {}); ",
                dc.key(),
                self.tx[&dc.n],
                self.rx[&dc.n],
                dc.n,
                self.gre_rx[&dc.n]
            )?;
        }
        Ok(())
    }
}

/// The agent's status and every DC's `gre1` received packets, now.
fn counters(region: &Region) -> (AgentStatus, Vec<u64>) {
    (
        status(region),
        region.dcs.iter().map(Dc::gre_rx_packets).collect(),
    )
}

/// `PINGS` pings from `ns` (from `from`, if given) to `dst`; panics with the logs unless all
/// came back.
fn ping(region: &Region, ns: &vc_testkit::NetNs, from: Option<Ipv4Addr>, dst: Ipv4Addr) {
    traffic::ping_burst(ns, from, dst, PINGS)
        .unwrap_or_else(|e| panic!("{e:#}\n{}", region.logs(30)));
}

/// The LAN host pings each DC's host and each DC's host the LAN host (from its own address,
/// so the reply is routed by its /25): each round is counted on that DC's tunnel only. The
/// router's end of the CPE's link meanwhile carries only IKE and ESP between the CPE and the
/// four DCs, ESP with each; each DC's `gre1` shows its pings in clear (the negative control).
fn each_dc_on_its_own_tunnel(region: &Region) {
    let wire = Capture::start(
        &region.wan,
        "c0",
        Direction::Both,
        "ip",
        &results("regions-router-c0.pcap"),
    )
    .expect("capture on the router's end of the CPE's link");
    // Each DC's `gre1` sees only its own tunnel's pings: one capture each for all rounds.
    let gre1: Vec<Capture> = ALL_DCS
        .iter()
        .map(|dc| {
            Capture::start(
                &region.dc(dc.n).ns,
                "gre1",
                Direction::Both,
                "icmp",
                &results(&format!("regions-dc{}-gre1.pcap", dc.n)),
            )
            .expect("capture on DC's gre1")
        })
        .collect();
    for dc in ALL_DCS {
        region.assert_routed_via(dc.host, &dc.interface());
        let before = counters(region);
        ping(region, &region.lan, None, dc.host);
        ping(region, &region.dc(dc.n).ns, Some(dc.host), LAN_HOST);
        let after = counters(region);
        let moved = Moved::between(region, &before, &after);
        eprintln!(
            "MEASURE LAN ↔ DC{}'s host {} ({PINGS} pings each way) on tunnel {}: {moved}",
            dc.n,
            dc.host,
            dc.key()
        );
        // Out: the LAN's requests and its replies to DC's; in: DC's replies and requests.
        moved.assert_on(dc, (2 * PINGS, 2 * PINGS, 2 * PINGS), "LAN ↔ DC host");
    }
    let seen = wire.stop().expect("capture");
    let esp = only_ipsec_with_the_dcs(&seen);
    let per_dc: Vec<String> = ALL_DCS
        .iter()
        .map(|dc| {
            format!(
                "DC{} {} out {} in",
                dc.n,
                esp[&(CPE_PUBLIC, dc.ipsec)],
                esp[&(dc.ipsec, CPE_PUBLIC)]
            )
        })
        .collect();
    eprintln!(
        "MEASURE the router's end of the CPE's link during the pings: {seen}; ESP {}",
        per_dc.join(", ")
    );
    for (dc, capture) in ALL_DCS.iter().zip(gre1) {
        let inner = capture.stop().expect("capture");
        let echoes = inner
            .lines
            .iter()
            .filter(|p| p.line.contains("ICMP echo"))
            .count();
        assert!(
            echoes >= usize::try_from(4 * PINGS).expect("small"),
            "DC{}'s gre1 saw {echoes} echoes in clear:\n{inner}",
            dc.n
        );
    }
}

/// Asserts that `seen` holds only IKE and ESP, every packet between the CPE and one of the
/// four DCs' IPsec addresses, and ESP both ways with each; the ESP packets per (source,
/// destination).
fn only_ipsec_with_the_dcs(seen: &Packets) -> BTreeMap<(Ipv4Addr, Ipv4Addr), usize> {
    let dcs: Vec<Ipv4Addr> = ALL_DCS.iter().map(|dc| dc.ipsec).collect();
    seen.assert_only_ipsec_between(CPE_PUBLIC, &dcs);
    let esp = seen.esp_by_ends();
    for dc in ALL_DCS {
        for ends in [(CPE_PUBLIC, dc.ipsec), (dc.ipsec, CPE_PUBLIC)] {
            assert!(
                esp.get(&ends).is_some_and(|&n| n > 0),
                "{}: no ESP {} → {}: {esp:?}",
                seen.label,
                ends.0,
                ends.1
            );
        }
    }
    esp
}

/// The first region's routes as the kernel has them: vc's routes of its /24 and /25s.
fn region1_routes(region: &Region) -> String {
    region
        .cpe
        .sh(&format!(
            "ip route show proto 201 root {}",
            DC1.cisco_prefix
        ))
        .expect("ip route show")
}

/// DC3 (region 2's DC1) shuts its BGP session: its /25 moves to `vc-r2-dc2` over AMER's /24
/// (DC4 reaches DC3's host over their backbone) and the LAN's pings to it cross tunnel R2-B;
/// region 1's routes see no change at all, its sessions stay up. DC3's session back: its /25
/// returns to `vc-r2-dc1`.
fn failover_stays_in_its_region(region: &Region) {
    let routes_before = region1_routes(region);
    assert!(
        DCS.iter().all(|dc| routes_before.contains(dc.prefix)),
        "{routes_before}"
    );
    let monitor = RouteMonitor::start();
    let dc3 = region.dc(3);
    let t = Instant::now();
    dc3.bgp_down().expect("birdc disable");
    region
        .wait_route(DC3.host, &DC4.interface(), Duration::from_secs(15))
        .unwrap_or_else(|e| panic!("{e:#}\n{}", region.logs(40)));
    let moved = t.elapsed();
    eprintln!(
        "MEASURE DC3's (region 2's DC1) BGP down → its /25 via {} over {}: {moved:?}",
        DC4.interface(),
        DC3.cisco_prefix
    );
    let s = status(region);
    let r2a = tunnel(&s, &DC3);
    assert!(!r2a.bgp.as_ref().expect("bgp").established, "{r2a}");
    assert!(r2a.accepted_prefixes.is_empty(), "{r2a}");
    for dc in [&DC1, &DC2, &DC4] {
        let t = tunnel(&s, dc);
        assert!(t.bgp.as_ref().expect("bgp").established, "{t}");
        assert_eq!(t.accepted_prefixes.len(), 2, "{t}");
    }
    let kernel = region.cpe.sh("ip route show proto 201").expect("routes");
    assert!(!kernel.contains(DC3.prefix), "{kernel}");
    let before = counters(region);
    ping(region, &region.lan, None, DC3.host);
    let after = counters(region);
    let crossed = Moved::between(region, &before, &after);
    eprintln!("MEASURE LAN → DC3's host while DC3's BGP is down: {crossed}");
    // The requests only: DC3's replies reach DC4 over the backbone and leave by its gre1.
    crossed.assert_on(&DC4, (PINGS, PINGS, PINGS), "LAN → DC3's host over R2-B");
    // Region 1 did not move.
    for dc in DCS {
        region.assert_routed_via(dc.host, &dc.interface());
    }

    let t = Instant::now();
    dc3.bgp_up().expect("birdc enable");
    region
        .wait_route(DC3.host, &DC3.interface(), Duration::from_secs(40))
        .unwrap_or_else(|e| panic!("{e:#}\n{}", region.logs(40)));
    let back = t.elapsed();
    eprintln!(
        "MEASURE DC3's BGP back → its /25 on {}: {back:?}",
        DC3.interface()
    );
    let before = counters(region);
    ping(region, &region.lan, None, DC3.host);
    let after = counters(region);
    Moved::between(region, &before, &after).assert_on(
        &DC3,
        (PINGS, PINGS, PINGS),
        "LAN → DC3's host back on R2-A",
    );
    assert_eq!(tunnel(&status(region), &DC3).accepted_prefixes.len(), 2);

    let changes = monitor.finish();
    let region1: Vec<&String> = changes
        .iter()
        .filter(|l| DCS.iter().any(|dc| touches(l, dc)))
        .collect();
    let region2 = changes.iter().filter(|l| touches(l, &DC3)).count();
    eprintln!(
        "MEASURE route changes during region 2's failover and back: {} of region 2's, {} of \
         region 1's",
        region2,
        region1.len()
    );
    // The monitor's own control: it saw region 2's /25 go and come back.
    assert!(
        region2 >= 2,
        "ip monitor route saw no move of DC3's /25: {changes:#?}"
    );
    assert!(
        region1.is_empty(),
        "region 1's routes changed: {region1:#?}"
    );
    assert_eq!(region1_routes(region), routes_before, "region 1's routes");
}
