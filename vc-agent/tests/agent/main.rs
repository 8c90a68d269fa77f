//! `vc-agent run` end to end on this host, external-IPsec mode (this kernel has no ESP; the
//! IPsec-mode agent runs in the VM lab): the real binary on the CPE, BIRD as each DC's BGP
//! speaker, vc datapaths standing in for the DCs' GRE routers. The activation form goes in;
//! out come two tunnels with keepalives, two Established sessions, each /25 on its tunnel,
//! failover and recovery, a stop for a restart, adoption on restart, and `vc-agent status`.
use std::{net::Ipv4Addr, path::Path, time::Duration};

use vc_agent::status::{AgentStatus, TunnelId};
use vc_fixtures::{
    agent_lab::{Agent, DC1_AS, DC2_AS, bird, config},
    gre_lab::{DC1_HOST, DC2_HOST, Topology},
};
use vc_testkit::{Daemon, NetNs, bird::Bird, privileged, wait_for};

mod crash;
mod flood;
mod ipsec_mode;
mod restart;
mod supervision;

const AGENT: Agent = Agent(env!("CARGO_BIN_EXE_vc-agent"));

fn ping(ns: &NetNs, dst: Ipv4Addr) -> bool {
    ns.sh_output(&format!("ping -c1 -W2 {dst}"))
        .expect("ping")
        .status
        .success()
}

fn route_dev(t: &Topology, dst: Ipv4Addr) -> String {
    t.cpe
        .sh(&format!("ip route get {dst}"))
        .expect("ip route get")
}

#[test]
fn the_agent_brings_up_both_tunnels_and_fails_over() {
    if !privileged("the_agent_brings_up_both_tunnels_and_fails_over") {
        return;
    }
    let t = Topology::dcs_only(true);
    // DC1 also answers for DC2's host: after a failover the /24 brings DC2's half to DC1,
    // as Cisco's network would carry it.
    t.dc1
        .sh("ip addr add 203.0.113.200/32 dev lo")
        .expect("address");
    let dir = t.scratch("agent");
    std::fs::create_dir_all(&dir).expect("dir");
    let cfg = dir.join("vc.toml");
    std::fs::write(&cfg, config(&t, "")).expect("config");
    let _bird1 = bird(
        &t.dc1,
        [100, 64, 0, 2],
        DC1_AS,
        "lab-md5-a",
        &["203.0.113.0/25", "203.0.113.0/24"],
    );
    let mut bird2 = bird(
        &t.dc2,
        [100, 64, 0, 6],
        DC2_AS,
        "lab-md5-b",
        &["203.0.113.128/25", "203.0.113.0/24"],
    );
    let log = dir.join("agent.log");
    let mut agent = AGENT.start(&t.cpe, &cfg, &log);

    let up = wait_for(Duration::from_secs(20), "both sessions Established", || {
        let s = AGENT.status(&t.cpe, &cfg)?;
        s.tunnels
            .iter()
            .all(|t| {
                t.bgp.as_ref().is_some_and(|b| b.established)
                    && t.accepted_prefixes.len() == 2
                    && t.keepalive.replies > 0
            })
            .then_some(s)
    })
    .unwrap_or_else(|e| {
        panic!(
            "{e:#}\n{}",
            std::fs::read_to_string(dir.join("agent.log")).unwrap_or_default()
        )
    });
    for tunnel in &up.tunnels {
        assert_eq!(tunnel.accepted_prefixes.len(), 2, "{tunnel}");
        for expected in &tunnel.expected_prefixes {
            assert!(tunnel.accepted_prefixes.contains(expected), "{tunnel}");
        }
        assert!(tunnel.keepalive.alive && tunnel.counters.up, "{tunnel}");
        assert_eq!(
            tunnel.bgp.as_ref().expect("bgp").advertised,
            1,
            "only the default route"
        );
    }
    // R20: each /25 on its own tunnel, in the kernel (and the LPM map, per the status).
    assert!(route_dev(&t, DC1_HOST).contains("dev vc-dc1"));
    assert!(route_dev(&t, DC2_HOST).contains("dev vc-dc2"));
    assert!(
        t.cpe
            .sh("ip route show proto 201")
            .expect("routes")
            .contains("203.0.113.0/24")
    );
    assert!(ping(&t.lan, DC1_HOST) && ping(&t.lan, DC2_HOST));
    let text = t
        .cpe
        .command(AGENT.bin())
        .args(["status", "-c"])
        .arg(&cfg)
        .output()
        .expect("status");
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("tunnel A → DC1 (vc-dc1) up") && text.contains("Established"),
        "{text}"
    );

    one_tunnel_as_json(&t, &cfg);

    bgp_failover(&t, &mut bird2);
    keepalive_failover(&t, &cfg);

    stop_and_adopt(&t, &cfg, &mut agent, &dir);
}

/// `status --tunnel a --json`: the typed status of tunnel A alone.
fn one_tunnel_as_json(t: &Topology, cfg: &Path) {
    let out = t
        .cpe
        .command(AGENT.bin())
        .args(["status", "--tunnel", "a", "--json", "-c"])
        .arg(cfg)
        .output()
        .expect("status");
    assert_eq!(out.status.code(), Some(0));
    let s: AgentStatus = serde_json::from_slice(&out.stdout).expect("status JSON");
    let ids: Vec<TunnelId> = s.tunnels.iter().map(|t| t.ends.id).collect();
    assert_eq!(ids, [TunnelId::A]);
}

/// R21, BGP: DC2's session dies; its /25 follows the /24 over tunnel A, then returns.
fn bgp_failover(t: &Topology, bird2: &mut Bird) {
    bird2.kill();
    wait_for(Duration::from_secs(10), "DC2's /25 withdrawn", || {
        route_dev(t, DC2_HOST).contains("dev vc-dc1").then_some(())
    })
    .unwrap_or_else(|e| panic!("{e:#}: {}", route_dev(t, DC2_HOST)));
    assert!(ping(&t.lan, DC2_HOST), "DC2's half reached over tunnel A");
    bird2.restart().expect("BIRD back");
    wait_for(
        Duration::from_secs(20),
        "DC2's /25 back on tunnel B",
        || route_dev(t, DC2_HOST).contains("dev vc-dc2").then_some(()),
    )
    .expect("recovery");
}

/// R21, keepalives: tunnel A's path dies with its BGP session still up (hold 90 s);
/// three missed keepalives move DC1's /25 to the /24 over tunnel B, then it returns.
fn keepalive_failover(t: &Topology, cfg: &Path) {
    t.wan.sh("ip link set d1 down").expect("cut DC1");
    let down = wait_for(Duration::from_secs(10), "tunnel A judged down", || {
        let s = AGENT.status(&t.cpe, cfg)?;
        (!s.tunnels[0].keepalive.alive).then_some(s)
    })
    .expect("liveness");
    assert!(
        down.tunnels[0].bgp.as_ref().expect("bgp").established,
        "BGP has not noticed yet"
    );
    assert!(route_dev(t, DC1_HOST).contains("dev vc-dc2"));
    t.wan.sh("ip link set d1 up").expect("heal DC1");
    wait_for(Duration::from_secs(10), "tunnel A back", || {
        route_dev(t, DC1_HOST).contains("dev vc-dc1").then_some(())
    })
    .expect("recovery");
}

/// A stop for a restart (SIGTERM: graceful restart, sessions closed without a NOTIFICATION,
/// vc's routes and the datapath left running), then a restart that adopts both. (`restart`
/// has the DCs' side of it, and `vc-agent stop`, which withdraws.)
fn stop_and_adopt(t: &Topology, cfg: &Path, agent: &mut Daemon, dir: &Path) {
    agent.signal(libc::SIGTERM);
    wait_for(Duration::from_secs(10), "the agent to exit", || {
        (!agent.is_running()).then_some(())
    })
    .expect("stop");
    let kept = t.cpe.sh("ip route show proto 201").expect("routes");
    assert_eq!(kept.lines().count(), 3, "vc's routes stay: {kept}");
    assert!(
        t.cpe_spec.pin_dir.join("maps").exists(),
        "the datapath stays pinned"
    );

    // Restarted, it adopts the running datapath and comes back.
    let _agent = AGENT.start(&t.cpe, cfg, &dir.join("agent2.log"));
    wait_for(Duration::from_secs(20), "Established again", || {
        let s = AGENT.status(&t.cpe, cfg)?;
        s.tunnels
            .iter()
            .all(|t| t.bgp.as_ref().is_some_and(|b| b.established))
            .then_some(())
    })
    .expect("restart");
    let log2 = std::fs::read_to_string(dir.join("agent2.log")).unwrap_or_default();
    assert!(log2.contains("adopting the running datapath"), "{log2}");
    if std::env::var_os("VC_SHOW_LOGS").is_some() {
        eprintln!(
            "{}\n---\n{log2}",
            std::fs::read_to_string(dir.join("agent.log")).unwrap_or_default()
        );
    }
}

#[test]
fn datapath_up_show_down_by_hand() {
    if !privileged("datapath_up_show_down_by_hand") {
        return;
    }
    let t = Topology::dcs_only(false);
    let dir = t.scratch("by-hand");
    std::fs::create_dir_all(&dir).expect("dir");
    let cfg = dir.join("vc.toml");
    std::fs::write(&cfg, config(&t, "")).expect("config");
    let vc = |args: &[&str]| {
        let out = t
            .cpe
            .command(AGENT.bin())
            .args(args)
            .arg("-c")
            .arg(&cfg)
            .output()
            .expect("vc-agent");
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let shown = vc(&["datapath", "up"]);
    // The config's prefixes as static routes: each /25 on its tunnel, the /24 on both.
    assert!(
        shown.contains("203.0.113.0/25") && shown.contains("→ 0"),
        "{shown}"
    );
    assert!(route_dev(&t, DC1_HOST).contains("dev vc-dc1"));
    assert!(route_dev(&t, DC2_HOST).contains("dev vc-dc2"));
    assert!(
        ping(&t.lan, DC1_HOST) && ping(&t.lan, DC2_HOST),
        "traffic without BGP"
    );
    let shown = vc(&["datapath", "show"]);
    assert!(shown.contains("vc-dc1 (tunnel 0) up"), "{shown}");
    assert!(shown.contains("tunnel_tx"), "counters shown: {shown}");
    shown_as_json(&vc(&["datapath", "show", "--json"]));
    vc(&["datapath", "down"]);
    assert_torn_down(&t);

    // `purge` takes down what `up` made, and the state directory with it.
    vc(&["datapath", "up"]);
    let purged = vc(&["purge"]);
    assert!(!purged.contains("FAILED"), "{purged}");
    assert!(purged.contains("remove the datapath: done"), "{purged}");
    assert_torn_down(&t);
    assert!(!t.cpe_spec.state_dir.exists(), "state directory removed");
}

fn assert_torn_down(t: &Topology) {
    assert!(!t.cpe.sh("ip -o link").expect("links").contains("vc-dc"));
    assert_eq!(
        t.cpe.sh("ip route show proto 201").expect("routes").trim(),
        ""
    );
    assert!(!t.cpe_spec.pin_dir.exists(), "pins removed");
}

/// `datapath show --json`: both tunnels up with their interface, the static routes.
fn shown_as_json(text: &str) {
    let v: serde_json::Value = serde_json::from_str(text).expect("datapath show --json");
    let tunnels = v["tunnels"].as_array().expect("tunnels");
    let names: Vec<&str> = tunnels
        .iter()
        .filter_map(|t| t["interface"].as_str())
        .collect();
    assert_eq!(names, ["vc-dc1", "vc-dc2"], "{v}");
    assert!(tunnels.iter().all(|t| t["up"] == true), "{v}");
    let routes = v["routes"].as_array().expect("routes");
    assert!(
        routes
            .iter()
            .any(|r| r["prefix"] == "203.0.113.0/24"
                && r["tunnels"] == serde_json::json!(["a", "b"])),
        "{v}"
    );
}
