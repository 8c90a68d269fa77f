//! The agent killed (SIGKILL) between pinning the maps and attaching the programs, the worst
//! moment: the window is shown (maps pinned, no guard), the backstop holds meanwhile, and the
//! next start attaches everything. The restarted agent then repairs a guard detached under
//! it, keeps datapath and backstop through SIGTERM, and only `purge` removes the backstop.
use std::{
    os::unix::process::ExitStatusExt,
    path::Path,
    time::{Duration, Instant},
};

use vc_agent::status::{AgentStatus, Presence};
use vc_fixtures::{
    agent_lab::config,
    gre_lab::{Topology, tc_program_on},
};
use vc_testkit::{Daemon, privileged, wait_for};

use crate::AGENT;

fn backstop_in(t: &Topology) -> bool {
    t.cpe
        .sh("ip route show table main")
        .expect("routes")
        .contains("unreachable 203.0.113.0/24")
}

#[test]
fn a_crash_between_pinning_and_attaching_is_repaired_by_the_next_start() {
    if !privileged("a_crash_between_pinning_and_attaching_is_repaired_by_the_next_start") {
        return;
    }
    let t = Topology::dcs_only(true);
    let dir = t.scratch("agent");
    std::fs::create_dir_all(&dir).expect("dir");
    let cfg = dir.join("vc.toml");
    std::fs::write(&cfg, config(&t, "")).expect("config");
    crash_at_the_worst_moment(&t, &cfg, &dir);
    let mut agent = AGENT.start(&t.cpe, &cfg, &dir.join("agent.log"));
    let up = restarted_whole(&t, &cfg, &dir);
    repairs_a_detached_guard(&t, &cfg, up.datapath.kernel.repairs, &dir);
    stop_down_purge(&t, &cfg, &mut agent);
}

fn read_log(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(name)).unwrap_or_default()
}

/// The first start SIGKILLs itself at the crash point: the window it leaves.
fn crash_at_the_worst_moment(t: &Topology, cfg: &Path, dir: &Path) {
    let read = |name: &str| read_log(dir, name);
    let mut crashing = AGENT.start_with(
        &t.cpe,
        cfg,
        &dir.join("crash.log"),
        &[("VC_TEST_CRASH_AT", "datapath-pinned")],
    );
    let status = wait_for(
        Duration::from_secs(30),
        "the agent to die at the crash point",
        || crashing.exit_status(),
    )
    .unwrap_or_else(|e| panic!("{e:#}\n{}", read("crash.log")));
    assert_eq!(
        status.signal(),
        Some(libc::SIGKILL),
        "{}",
        read("crash.log")
    );
    // The window: a datapath to adopt, nothing attached; the backstop already in.
    assert!(t.cpe_spec.pin_dir.join("maps").exists(), "maps pinned");
    assert!(t.cpe_spec.pin_dir.join("progs").exists(), "programs pinned");
    assert!(
        !tc_program_on(&t.cpe, "wan0", "vc_wan_guard"),
        "the crash came before the guard was attached"
    );
    assert!(backstop_in(t), "the backstop holds meanwhile");
}

/// The next start adopts and attaches everything; status shows the kernel's attachments.
fn restarted_whole(t: &Topology, cfg: &Path, dir: &Path) -> AgentStatus {
    let started = Instant::now();
    let up = wait_for(Duration::from_secs(30), "every program attached", || {
        AGENT.status(&t.cpe, cfg).filter(|s| {
            !s.datapath.kernel.hooks.is_empty()
                && s.datapath
                    .kernel
                    .hooks
                    .iter()
                    .all(|h| h.presence == Presence::Attached)
        })
    })
    .unwrap_or_else(|e| panic!("{e:#}\n{}", read_log(dir, "agent.log")));
    eprintln!(
        "MEASURE restart after the crash to every program attached (status): {:?}",
        started.elapsed()
    );
    for (dev, prog) in [
        ("wan0", "vc_wan_guard"),
        ("wan0", "vc_wan_rx"),
        ("lan0", "vc_lan_rx"),
        ("vc-dc1p", "vc_tunnel_tx"),
        ("vc-dc2p", "vc_tunnel_tx"),
    ] {
        assert!(tc_program_on(&t.cpe, dev, prog), "{prog} on {dev}");
    }
    assert!(backstop_in(t));
    assert!(
        up.datapath.kernel.backstop_missing.is_empty() && up.datapath.kernel.backstop.len() == 3,
        "the /24 and both tunnel subnets: {:?}",
        up.datapath.kernel
    );
    let text = t
        .cpe
        .command(AGENT.bin())
        .args(["status", "-c"])
        .arg(cfg)
        .output()
        .expect("status");
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("vc_wan_guard") && text.contains("attached"),
        "status shows the kernel's attachments: {text}"
    );
    up
}

/// The running agent puts back a guard detached under it, and counts the repair.
fn repairs_a_detached_guard(t: &Topology, cfg: &Path, repairs: u64, dir: &Path) {
    let pin = t.cpe_spec.pin_dir.join("links/wan0-egress");
    let detached = Instant::now();
    t.cpe
        .sh(&format!("bpftool link detach pinned {}", pin.display()))
        .expect("detach");
    wait_for(Duration::from_secs(5), "the guard back", || {
        tc_program_on(&t.cpe, "wan0", "vc_wan_guard").then_some(())
    })
    .unwrap_or_else(|e| panic!("{e:#}\n{}", read_log(dir, "agent.log")));
    eprintln!(
        "MEASURE the agent re-attaches a detached tcx guard: {:?}",
        detached.elapsed()
    );
    wait_for(Duration::from_secs(5), "status to count the repair", || {
        AGENT
            .status(&t.cpe, cfg)
            .filter(|s| s.datapath.kernel.repairs > repairs)
    })
    .expect("repair counted");
}

/// SIGTERM and `datapath down` keep the backstop; purge removes it.
fn stop_down_purge(t: &Topology, cfg: &Path, agent: &mut Daemon) {
    agent.signal(libc::SIGTERM);
    wait_for(Duration::from_secs(10), "the agent to stop", || {
        agent.exit_status()
    })
    .expect("stopped");
    assert!(
        tc_program_on(&t.cpe, "wan0", "vc_wan_guard"),
        "the guard stays"
    );
    assert!(backstop_in(t), "the backstop stays");

    // `datapath down` keeps the backstop; purge removes it.
    let down = t
        .cpe
        .command(AGENT.bin())
        .args(["datapath", "down", "-c"])
        .arg(cfg)
        .output()
        .expect("datapath down");
    assert!(
        down.status.success(),
        "{}",
        String::from_utf8_lossy(&down.stderr)
    );
    assert!(!tc_program_on(&t.cpe, "wan0", "vc_wan_guard"));
    assert!(backstop_in(t), "`datapath down` keeps the backstop");
    let purge = t
        .cpe
        .command(AGENT.bin())
        .args(["purge", "-c"])
        .arg(cfg)
        .output()
        .expect("purge");
    assert!(
        purge.status.success(),
        "{}{}",
        String::from_utf8_lossy(&purge.stdout),
        String::from_utf8_lossy(&purge.stderr)
    );
    assert!(!backstop_in(t), "purge removes the backstop");
}
