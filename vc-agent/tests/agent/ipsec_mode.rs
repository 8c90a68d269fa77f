//! The agent in IPsec mode on this host (IKE works here, ESP does not): its own charon gets
//! none of the agent's environment (the PSK comes from `VC_PSK_A`), a config readable by
//! others is warned about, and a charon that stops answering (SIGSTOP) is reported
//! unresponsive while SIGTERM still ends the agent within 5 s.
use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use vc_agent::status::{AgentStatus, CharonStatus};
use vc_fixtures::ike_lab::{Lab, Options, PSK, Stopped};
use vc_testkit::{bpffs::TempBpfFs, charon::Charon, privileged, wait_for};

use crate::AGENT;

/// SIGTERM to the end of the agent, at most (the agent's own bound is 4 s).
const STOPS_WITHIN: Duration = Duration::from_secs(5);
/// The agent's environment: the PSK the config names.
const ENV: [(&str, &str); 1] = [("VC_PSK_A", PSK)];

/// The ike lab's config for the whole agent: the PSK from the environment, a LAN device, pins
/// and state in the test's own places.
fn agent_config(lab: &Lab, bpffs: &TempBpfFs) -> PathBuf {
    let text = lab.config_text("").replace(
        &format!("ike_psk = \"{PSK}\""),
        "ike_psk = { env = \"VC_PSK_A\" }",
    );
    assert!(!text.contains(PSK), "the PSK only in the environment");
    let text = format!(
        "{text}\n[agent]\npin_dir = \"{}\"\nstate_dir = \"{}\"\nmetrics_listen = \"\"\n",
        bpffs.path().join("cpe").display(),
        lab.dir.join("state").display()
    );
    let path = lab.dir.join("agent.toml");
    std::fs::write(&path, text).expect("config");
    path
}

/// The environment of process `pid`, one `NAME=value` per entry.
fn environ(pid: u32) -> Vec<String> {
    std::fs::read(format!("/proc/{pid}/environ"))
        .expect("environ")
        .split(|b| *b == 0)
        .filter(|e| !e.is_empty())
        .map(|e| String::from_utf8_lossy(e).into_owned())
        .collect()
}

fn charon_pid(s: &AgentStatus) -> Option<u32> {
    match s.charon {
        Some(CharonStatus::Running { pid, .. }) => pid,
        _ => None,
    }
}

#[test]
fn charon_gets_no_secret_and_a_wedged_charon_neither_hides_nor_holds_the_agent() {
    if !privileged("charon_gets_no_secret_and_a_wedged_charon_neither_hides_nor_holds_the_agent") {
        return;
    }
    vc_testkit::charon::require().expect("strongSwan");
    let lab = Lab::new("agt", Options::default());
    lab.cpe
        .sh("ip link add lan type veth peer name lanp && ip link set lan up && ip link set lanp up")
        .expect("LAN device");
    let bpffs = TempBpfFs::new().expect("bpffs");
    let dc = Charon::start(&lab.dc, "dc").expect("dc charon");
    dc.load(&[lab.dc_conn()]).expect("dc conn");
    let cfg = agent_config(&lab, &bpffs);
    let log = lab.dir.join("agent.log");
    let mut agent = AGENT.start_with(&lab.cpe, &cfg, &log, &ENV);
    let agent_log = || std::fs::read_to_string(&log).unwrap_or_default();
    let up = wait_for(Duration::from_secs(30), "charon and the IKE SA up", || {
        AGENT.status_with(&lab.cpe, &cfg, &ENV).filter(|s| {
            charon_pid(s).is_some()
                && s.tunnels[0]
                    .ipsec
                    .as_ref()
                    .and_then(|i| i.ike.as_ref())
                    .is_some_and(|i| i.up)
        })
    })
    .unwrap_or_else(|e| panic!("{e:#}\n{}", agent_log()));
    let pid = charon_pid(&up).expect("charon's pid");

    let env = environ(pid);
    assert!(
        env.iter()
            .all(|e| !e.starts_with("VC_") && !e.contains(PSK)),
        "charon's environment: {env:?}"
    );
    assert!(
        env.iter().any(|e| e.starts_with("STRONGSWAN_CONF=")),
        "{env:?}"
    );
    assert!(
        agent_log().contains("holds tunnel.a.bgp_password and is readable by group or others"),
        "the config (0644, an inline BGP password) is warned about: {}",
        agent_log()
    );

    let _stopped = wedged_charon(&lab, &cfg, pid, &log);
    // By now the controller is waiting for charon again (it tries every 0.5 s and more): the
    // stop must not wait for that.
    std::thread::sleep(Duration::from_secs(1));
    let stopping = Instant::now();
    agent.signal(libc::SIGTERM);
    let status = wait_for(Duration::from_secs(15), "the agent to exit", || {
        agent.exit_status()
    })
    .unwrap_or_else(|e| panic!("{e:#}\n{}", agent_log()));
    let took = stopping.elapsed();
    eprintln!("MEASURE SIGTERM to exit with charon SIGSTOPped: {took:?} ({status})");
    assert!(status.success(), "{status}: {}", agent_log());
    assert!(took < STOPS_WITHIN, "{took:?}: {}", agent_log());
    assert!(!agent_log().contains(PSK), "the PSK in the agent's log");
}

/// Stops charon (resumed when the test ends) and waits for the agent to say so.
fn wedged_charon(lab: &Lab, cfg: &Path, pid: u32, log: &Path) -> Stopped {
    let since = Instant::now();
    let stopped = Stopped::new(pid);
    let wedged = wait_for(
        Duration::from_secs(40),
        "charon reported unresponsive",
        || {
            let asked = Instant::now();
            AGENT
                .status_with(&lab.cpe, cfg, &ENV)
                .filter(|s| matches!(s.charon, Some(CharonStatus::Unresponsive { .. })))
                .map(|s| (s, asked.elapsed()))
        },
    )
    .unwrap_or_else(|e| {
        panic!(
            "{e:#}\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        )
    });
    let (status, answered_in) = wedged;
    eprintln!(
        "MEASURE charon SIGSTOPped: reported unresponsive after {:?} (status answered in \
         {answered_in:?}): {}",
        since.elapsed(),
        status.charon.as_ref().expect("charon")
    );
    assert!(
        status.tunnels[0]
            .ipsec
            .as_ref()
            .and_then(|i| i.ike.as_ref())
            .is_some_and(|i| i.up),
        "the last SA table is kept: its SAs are still in the kernel"
    );
    stopped
}
