//! The lab's guest half for `--model two-cpes` (`vc_testkit::region::two_cpes`): two CPEs, one
//! tunnel each, BIRD beside each redistributing vc's routes to the enterprise router. Shows
//! each CPE's tunnel coming up, both agents' status, what the router learnt from which CPE,
//! and pings from the LAN host to each /25 with the CPE the router chose; optionally DC1's
//! BGP session down (DC1's /25 moves to CPE 2) and back.
use std::{
    net::Ipv4Addr,
    time::{Duration, Instant},
};

use anyhow::Result;
use vc_testkit::{
    capture::Capture,
    region::{
        Checklist,
        plan::{DC1, DCS, LAN_HOST},
        two_cpes::{DRAWING, TwoCpeRegion},
    },
};

use super::inside::{
    InsideOptions, LOG_LINES, UP_LIMIT, agent_path, heading, indent, only_ipsec_on_the_wire,
    open_shell,
};

pub fn run(opts: &InsideOptions) -> Result<()> {
    let t0 = Instant::now();
    let agent = agent_path(&opts.agent)?;
    println!(
        "vc lab: one Virtual Connect region, two CPEs, in a VM running Linux {}",
        std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .unwrap_or_default()
            .trim()
    );
    print!("{DRAWING}");
    let mut region = TwoCpeRegion::build(agent)?;
    let _ = std::os::unix::fs::symlink(agent, "/usr/local/bin/vc-agent");
    println!(
        "\nregion built in {:.1}s: DC1 and DC2 wait (strongSwan, ip_gre, BIRD 2); BIRD runs \
         beside each CPE (docs/examples/two-cpes-bird.conf) and on the enterprise router",
        t0.elapsed().as_secs_f64()
    );

    heading("vc-agent run on CPE 1 (tunnel A) and CPE 2 (tunnel B): Cisco's checklist (R24)");
    let wires = [1, 2]
        .into_iter()
        .map(|n| {
            Capture::egress(
                &region.cpe(n).ns,
                "wan0",
                &region.dir.join(format!("cpe{n}-wan-out.pcap")),
            )
        })
        .collect::<Result<Vec<_>>>()?;
    region.start_agents()?;
    let verdict = if bring_up(&mut region) {
        show(&region);
        let pings_ok = pings(&region);
        let failover_ok = !opts.failover || failover(&region);
        let mut wire_ok = true;
        for (wire, cpe) in wires.into_iter().zip(["CPE 1's WAN", "CPE 2's WAN"]) {
            wire_ok &= only_ipsec_on_the_wire(wire, cpe);
        }
        if pings_ok && failover_ok && wire_ok {
            println!(
                "\nlab OK in {:.1}s: both CPEs' tunnels, BGP and routes up, the router learnt \
                 each /25 from its CPE, the LAN reaches both DCs{}",
                t0.elapsed().as_secs_f64(),
                if opts.failover {
                    ", failover to CPE 2 and back"
                } else {
                    ""
                }
            );
            Ok(())
        } else {
            heading("logs");
            print!("{}", region.logs(LOG_LINES));
            Err(anyhow::anyhow!(
                "the tunnels are up, but traffic does not follow them or leaves in clear"
            ))
        }
    } else {
        heading("logs");
        print!("{}", region.logs(LOG_LINES));
        Err(anyhow::anyhow!(
            "the region did not come up within {UP_LIMIT:?}"
        ))
    };
    if opts.shell {
        shell(&region);
    }
    verdict
}

/// Waits for both CPEs' tunnels, printing each step as it first passes.
fn bring_up(region: &mut TwoCpeRegion) -> bool {
    let progress = |i: usize, list: &Checklist, s| println!("CPE {} {}", i + 1, list.line(0, s));
    let (ok, lists) = match region.start_dc_peers(UP_LIMIT) {
        Ok(()) => region.wait_up(UP_LIMIT, progress),
        Err(e) => {
            println!("  ✗ {e:#}");
            let mut lists = region.checklists();
            for (i, list) in lists.iter_mut().enumerate() {
                region.check(i, list);
            }
            (false, lists)
        }
    };
    if ok {
        let after = region
            .cpe(1)
            .started()
            .map_or(0.0, |t| t.elapsed().as_secs_f64());
        println!("  both CPEs' tunnels up {after:.1}s after the agents started");
    } else {
        heading("NOT UP: where each CPE's tunnel stops");
        for (i, list) in lists.iter().enumerate() {
            println!("CPE {}:", i + 1);
            print!("{list}");
        }
    }
    ok
}

/// Both agents' view, each CPE's vc routes, and the enterprise router's.
fn show(region: &TwoCpeRegion) {
    for n in [1, 2] {
        let cpe = region.cpe(n);
        heading(&format!("CPE {n}: vc-agent status -c {}", cpe.dirs.config));
        indent(&region.agent_text(n, &["status"]));
        heading(&format!(
            "CPE {n}: ip route show proto vc (what its BIRD redistributes)"
        ));
        indent(&cpe.routes(201));
    }
    // BIRD needs a moment after the last kernel route to tell the router.
    let _ = vc_testkit::wait_for(Duration::from_secs(10), "the router's routes", || {
        (region.ent_learnt_from(1).len() == 2 && region.ent_learnt_from(2).len() == 2).then_some(())
    });
    heading("enterprise router: birdc show route (learnt from cpe1 and cpe2)");
    indent(
        &region
            .ent_bird()
            .and_then(|b| b.birdc("show route"))
            .unwrap_or_else(|e| format!("{e:#}")),
    );
    heading("enterprise router: ip route");
    indent(&region.ent.sh("ip route").unwrap_or_default());
}

/// Pings from the LAN host to each /25: the router must send each to its DC's CPE.
fn pings(region: &TwoCpeRegion) -> bool {
    heading(&format!("from the LAN host {LAN_HOST}"));
    let mut ok = true;
    for dc in DCS {
        ok &= ping_via(region, dc.host, &format!("DC{}'s /25", dc.n), dc.n);
    }
    ok
}

/// One ping round to `dst`, which the router must send to CPE `cpe`.
fn ping_via(region: &TwoCpeRegion, dst: Ipv4Addr, what: &str, cpe: u8) -> bool {
    let route = region.ent_route_get(dst);
    let (replied, summary) = vc_testkit::region::Region::ping(&region.lan, dst, 3);
    let right_way = region.ent_routes_via(dst, cpe);
    println!(
        "  {} ping {dst} ({what}): {}",
        if replied && right_way { "✓" } else { "✗" },
        summary.lines().next().unwrap_or("no output")
    );
    println!("      router: {route}");
    if !right_way {
        println!("      expected via CPE {cpe} ({})", region.cpe(cpe).lan);
    }
    replied && right_way
}

/// DC1 shuts its BGP session with CPE 1 down: CPE 1 withdraws, the router sends DC1's /25 to
/// CPE 2 over the /24; then back.
fn failover(region: &TwoCpeRegion) -> bool {
    heading("failover: DC1 shuts its BGP session with CPE 1 down");
    let step = |result: Result<Duration>, what: &str| match result {
        Ok(took) => {
            println!("  ✓ {what} after {:.1}s", took.as_secs_f64());
            true
        }
        Err(e) => {
            println!("  ✗ {what}: {e:#}");
            false
        }
    };
    let t = Instant::now();
    let moved = region
        .dc(1)
        .bgp_down()
        .and_then(|()| region.wait_ent_via(DC1.host, 2, Duration::from_secs(20)))
        .map(|_| t.elapsed());
    if !step(
        moved,
        "CPE 1 withdrew; the router sends DC1's /25 to CPE 2 (over the /24)",
    ) {
        return false;
    }
    println!(
        "    router learnt from cpe1: {:?}, from cpe2: {:?}",
        region.ent_learnt_from(1),
        region.ent_learnt_from(2)
    );
    let mut ok = ping_via(region, DC1.host, "DC1's /25, now via CPE 2", 2);
    println!("  DC1 enables the session again");
    let t = Instant::now();
    let back = region
        .dc(1)
        .bgp_up()
        .and_then(|()| region.wait_ent_via(DC1.host, 1, Duration::from_secs(40)))
        .map(|_| t.elapsed());
    ok &= step(back, "DC1's /25 back through CPE 1");
    ok && ping_via(region, DC1.host, "DC1's /25", 1)
}

fn shell(region: &TwoCpeRegion) {
    let bird = |b: Option<&vc_testkit::bird::Bird>| {
        b.map_or_else(String::new, |b| {
            b.dir().join("bird.ctl").display().to_string()
        })
    };
    open_shell(&format!(
        "  the lab stays up until you exit. Namespaces: lan ent cpe1 cpe2 wan dc1 dc2. For instance:
    ip netns exec cpe1 vc-agent status -c /etc/vc/cpe1.toml
    ip netns exec cpe2 ip route show proto vc
    ip netns exec ent ip route
    birdc -s {ent} show route          # the enterprise router
    birdc -s {cpe1} show route         # CPE 1's BIRD: what it redistributes
    birdc -s {dc1} disable cpe         # DC1's BGP session down (enable: back)
    ip netns exec ent ip link set p1 down   # CPE 1's LAN link cut
  the agents' logs and configs: {dir}",
        ent = bird(region.ent_bird().ok()),
        cpe1 = bird(region.cpe(1).bird()),
        dc1 = bird(region.dc(1).bird()),
        dir = region.dir.display()
    ));
}
