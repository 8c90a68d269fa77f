//! The lab in the guest: build the region, start the agent, watch both tunnels come up step by
//! step, then show them as a network engineer would look at a CPE: `vc-agent status`, the
//! routing table, pings from the LAN; optionally a failover, optionally a shell.
use std::{
    net::Ipv4Addr,
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use anyhow::{Context, Result};
use vc_testkit::{
    capture::{Capture, Kind},
    region::{
        Checklist, Region,
        config::Options,
        plan::{DC1, DC2, DRAWING, LAN_HOST, SECOND_REGION, TWO_WANS},
    },
};

#[derive(clap::Args)]
pub struct InsideOptions {
    /// The vc-agent binary.
    #[arg(long)]
    pub agent: PathBuf,
    #[arg(long)]
    pub failover: bool,
    #[arg(long)]
    pub shell: bool,
    #[arg(long, value_enum, default_value_t)]
    pub model: super::Model,
    #[arg(long, default_value_t = 1)]
    pub wans: u8,
    #[arg(long, default_value_t = 1)]
    pub regions: u8,
}

/// Lines per log in a failure report (all of each is in `target/lab`).
pub(super) const LOG_LINES: usize = 30;
/// How long both tunnels may take, from the agent's start to the last route.
pub(super) const UP_LIMIT: Duration = Duration::from_mins(1);

pub(super) fn heading(text: &str) {
    println!("\n== {text} ==");
}

pub(super) fn indent(text: &str) {
    for line in text.trim_end().lines() {
        println!("  {line}");
    }
}

pub fn run(opts: &InsideOptions) -> Result<()> {
    if opts.model == super::Model::TwoCpes {
        return super::two_cpes::run(opts);
    }
    let t0 = Instant::now();
    let agent = agent_path(&opts.agent)?;
    println!(
        "vc lab: {} on one CPE, in a VM running Linux {}",
        if opts.regions > 1 {
            "two Virtual Connect regions"
        } else {
            "one Virtual Connect region"
        },
        std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .unwrap_or_default()
            .trim()
    );
    print!("{DRAWING}");
    let options = Options {
        two_wans: opts.wans > 1,
        regions: opts.regions,
        ..Options::default()
    };
    if opts.wans > 1 {
        print!("{TWO_WANS}");
    }
    if opts.regions > 1 {
        print!("{SECOND_REGION}");
    }
    let mut region = Region::build_with(agent, &options)?;
    // For a person at the shell: `vc-agent` on the PATH.
    let _ = std::os::unix::fs::symlink(agent, "/usr/local/bin/vc-agent");
    println!(
        "\nregion built in {:.1}s: {} wait with strongSwan (responder, GRE-only selectors), \
         ip_gre and BIRD 2",
        t0.elapsed().as_secs_f64(),
        dc_names(&region)
    );

    heading("vc-agent run -c /etc/vc/vc.toml on the CPE: Cisco's checklist per tunnel (R24)");
    // What the CPE puts on each WAN from its first packet: IPsec must leave nothing else.
    let mut wires = vec![(
        "the CPE's WAN",
        Capture::egress(&region.cpe, "wan0", &region.dir.join("cpe-wan-out.pcap"))?,
    )];
    if opts.wans > 1 {
        wires.push((
            "the CPE's second WAN (wan1)",
            Capture::egress(&region.cpe, "wan1", &region.dir.join("cpe-wan1-out.pcap"))?,
        ));
    }
    region.start_agent()?;
    let verdict = if bring_up(&mut region) {
        show(&region);
        let pings_ok = pings(&region);
        let failover_ok = !opts.failover || failover(&region);
        let mut wire_ok = true;
        for (what, wire) in wires {
            wire_ok &= only_ipsec_on_the_wire(wire, what);
        }
        if pings_ok && failover_ok && wire_ok {
            println!(
                "\nlab OK in {:.1}s: {}, BGP and routes up, the LAN reaches {}{}",
                t0.elapsed().as_secs_f64(),
                region.all_tunnels(),
                if region.dcs.len() == 2 {
                    "both DCs"
                } else {
                    "every DC"
                },
                if opts.failover {
                    ", failover and back"
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
        // Up or not: the shell is where one finds out why. When it exits, the kernel hangs
        // the serial console up (its session leader left): nothing may be printed after.
        shell(&region);
    }
    verdict
}

/// `DC1 and DC2`, or `DC1, DC2, DC3 and DC4`.
fn dc_names(region: &Region) -> String {
    let names: Vec<String> = region
        .dcs
        .iter()
        .map(|dc| format!("DC{}", dc.plan.n))
        .collect();
    match names.split_last() {
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
        None => String::new(),
    }
}

/// Waits for every tunnel, printing each step as it first passes; on failure, where each
/// tunnel stops.
fn bring_up(region: &mut Region) -> bool {
    let progress = |list: &Checklist, t, s| println!("{}", list.line(t, s));
    let (ok, list) = match region.start_dc_peers(UP_LIMIT) {
        Ok(()) => region.wait_up(UP_LIMIT, progress),
        Err(e) => {
            println!("  ✗ {e:#}");
            let since = region.agent_started().unwrap_or_else(Instant::now);
            let mut list = Checklist::new(since, &region.dcs);
            region.check(&mut list);
            (false, list)
        }
    };
    if ok {
        let after = region
            .agent_started()
            .map_or(0.0, |t| t.elapsed().as_secs_f64());
        println!(
            "  {} up {after:.1}s after the agent started",
            region.all_tunnels()
        );
    } else {
        heading("NOT UP: where each tunnel stops");
        print!("{list}");
    }
    ok
}

/// A CPE's WAN egress since before the agent started: IKE and ESP only (R7, R12). `cpe`
/// names it in the heading.
pub(super) fn only_ipsec_on_the_wire(wire: Capture, wan: &str) -> bool {
    heading(&format!(
        "{wan}, captured egress (tcpdump -Q out) since before the agent started"
    ));
    match wire.stop() {
        Ok(seen) => {
            let clear = seen.not_ike_or_esp();
            let ok = clear.is_empty() && seen.count(Kind::Esp) > 0;
            println!(
                "  {} {} IKE and {} ESP packets, {} GRE, {} other",
                if ok { "✓" } else { "✗" },
                seen.count(Kind::Ike),
                seen.count(Kind::Esp),
                seen.count(Kind::Gre),
                seen.count(Kind::Other)
            );
            for p in clear.iter().take(5) {
                println!("      {}", p.line);
            }
            ok
        }
        Err(e) => {
            println!("  ✗ {e:#}");
            false
        }
    }
}

/// What an engineer looks at on a CPE: the agent's view, then the kernel's.
fn show(region: &Region) {
    heading("vc-agent status");
    indent(&region.agent_text(&["status"]));
    if region.agent_can_diagnose() {
        heading("vc-agent diagnose");
        indent(&region.agent_text(&["diagnose"]));
    }
    heading("CPE: ip route show proto vc (what BGP installed, for other daemons to redistribute)");
    indent(
        &region
            .cpe
            .sh("ip route show proto vc")
            .unwrap_or_else(|e| format!("{e:#}")),
    );
    heading("CPE: ip route");
    indent(&region.cpe.sh("ip route").unwrap_or_default());
}

/// Pings from the LAN host to a host in each /25; each must leave on its own tunnel (R20).
fn pings(region: &Region) -> bool {
    heading(&format!("from the LAN host {LAN_HOST}"));
    let mut ok = true;
    for dc in region.dcs.iter().map(|dc| dc.plan) {
        ok &= ping_via(
            region,
            dc.host,
            &format!("DC{}'s /25", dc.n),
            &dc.interface(),
        );
    }
    ok
}

/// One ping round to `dst`, which the CPE must route out of `dev`.
fn ping_via(region: &Region, dst: Ipv4Addr, what: &str, dev: &str) -> bool {
    let route = region.route_get(dst);
    let (replied, summary) = Region::ping(&region.lan, dst, 3);
    let right_way = route.contains(&format!("dev {dev} "));
    println!(
        "  {} ping {dst} ({what}): {}",
        if replied && right_way { "✓" } else { "✗" },
        summary.lines().next().unwrap_or("no output")
    );
    println!("      CPE: {route}");
    if !right_way {
        println!("      expected dev {dev}");
    }
    replied && right_way
}

/// R21: DC2 shuts its BGP session down; its /25 follows the /24 over tunnel A and DC2's
/// host stays reachable (over Cisco's backbone); then the session returns and so does the
/// /25.
fn failover(region: &Region) -> bool {
    heading("failover (R21): DC2 shuts its BGP session with the CPE down");
    let dc2 = region.dc(2);
    let host = DC2.host;
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
    let moved = dc2
        .bgp_down()
        .and_then(|()| region.wait_route(host, &DC1.interface(), Duration::from_secs(15)))
        .map(|_| t.elapsed());
    if !step(
        moved,
        "DC2's /25 withdrawn; traffic to it follows the /24 over tunnel A",
    ) {
        return false;
    }
    println!("    CPE: ip route show proto vc");
    for line in region
        .cpe
        .sh("ip route show proto vc")
        .unwrap_or_default()
        .lines()
    {
        println!("      {}", line.trim_end());
    }
    let mut ok = ping_via(region, host, "DC2's /25, now via DC1", &DC1.interface());
    println!("  DC2 enables the session again");
    let t = Instant::now();
    let back = dc2
        .bgp_up()
        .and_then(|()| region.wait_route(host, &DC2.interface(), Duration::from_secs(40)))
        .map(|_| t.elapsed());
    ok &= step(back, "BGP Established again, DC2's /25 back on tunnel B");
    ok && ping_via(region, host, "DC2's /25", &DC2.interface())
}

/// A root shell on the serial console, in the VM's root namespaces, until it exits.
fn shell(region: &Region) {
    let dc_charon = |n: u8| region.dc(n).charon.pid();
    let bird = |n: u8| {
        region.dc(n).bird().map_or_else(String::new, |b| {
            b.dir().join("bird.ctl").display().to_string()
        })
    };
    let namespaces: Vec<String> = region.dcs.iter().map(|dc| dc.plan.name()).collect();
    let second_region = if region.dcs.len() > 2 {
        format!(
            "\n    ip netns exec lan ping 198.18.9.10    # the second region's DC1 (DC3)
    # DC3's charon and BIRD (DC4's: -t {}, {})
    nsenter -t {} -m -n swanctl --list-sas
    birdc -s {} show protocols all cpe",
            dc_charon(4),
            bird(4),
            dc_charon(3),
            bird(3)
        )
    } else {
        String::new()
    };
    open_shell(&format!(
        "  the lab stays up until you exit. Namespaces: lan cpe wan {}. For instance:
    ip netns exec cpe vc-agent status
    ip netns exec cpe ip route show proto vc
    ip netns exec lan ping 198.18.7.140
    # DC1's charon and BIRD (DC2's: -t {charon2}, {bird2})
    nsenter -t {charon1} -m -n swanctl --list-sas
    birdc -s {bird1} show protocols all cpe
    # DC2's BGP session down, and back
    birdc -s {bird2} disable cpe
    birdc -s {bird2} enable cpe{second_region}
  the agent's log and vc.toml: {dir}",
        namespaces.join(" "),
        charon1 = dc_charon(1),
        charon2 = dc_charon(2),
        bird1 = bird(1),
        bird2 = bird(2),
        dir = region.dir.display()
    ));
}

/// Prints `hints`, then runs a root shell on the serial console until it exits.
pub(super) fn open_shell(hints: &str) {
    heading("shell");
    println!("{hints}");
    let status = Command::new("setsid")
        .args(["--ctty", "--wait", "bash", "--norc", "-i"])
        .env("PS1", "lab# ")
        .env(
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        )
        .status();
    if let Err(e) = status {
        println!("  cannot start a shell: {e}");
    }
}

/// The path of `vc-agent`, checked.
pub(super) fn agent_path(path: &Path) -> Result<&Path> {
    if path.is_file() {
        Ok(path)
    } else {
        Err(anyhow::anyhow!("no vc-agent at {}", path.display())).context("lab-inside --agent")
    }
}
