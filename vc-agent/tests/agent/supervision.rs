//! A task of the agent that dies takes the agent down with it, named, with a non-zero exit
//! status for the service manager: the keepalive task of tunnel A made to panic (the fault
//! injected by `VC_TEST_PANIC_TASK`, which only test builds read).
use std::time::{Duration, Instant};

use vc_agent::task::testing::{PANIC_AFTER, PANIC_MESSAGE, PANIC_TASK};
use vc_fixtures::{agent_lab::config, gre_lab::Topology};
use vc_testkit::{privileged, wait_for};

use crate::AGENT;

#[test]
fn a_task_that_panics_stops_the_agent_which_names_it() {
    if !privileged("a_task_that_panics_stops_the_agent_which_names_it") {
        return;
    }
    let t = Topology::dcs_only(true);
    let dir = t.scratch("panic");
    std::fs::create_dir_all(&dir).expect("dir");
    let cfg = dir.join("vc.toml");
    std::fs::write(&cfg, config(&t, "")).expect("config");
    let log = dir.join("agent.log");
    let started = Instant::now();
    let mut agent = AGENT.start_with(&t.cpe, &cfg, &log, &[(PANIC_TASK, "keepalive-a")]);
    let agent_log = || std::fs::read_to_string(&log).unwrap_or_default();
    wait_for(Duration::from_secs(10), "the agent up", || {
        AGENT.status(&t.cpe, &cfg)
    })
    .unwrap_or_else(|e| panic!("{e:#}\n{}", agent_log()));
    let status = wait_for(Duration::from_secs(15), "the agent to exit", || {
        agent.exit_status()
    })
    .unwrap_or_else(|e| panic!("{e:#}\n{}", agent_log()));
    let lived = started.elapsed();
    eprintln!(
        "MEASURE injected panic after {PANIC_AFTER:?}: the agent exited ({status}) {lived:?} \
         after its start"
    );
    let log = agent_log();
    assert_eq!(status.code(), Some(1), "{log}");
    assert!(
        log.contains(&format!(
            "the agent's task keepalive-a panicked: {PANIC_MESSAGE}: stopping the agent"
        )),
        "the log names the task and the cause: {log}"
    );
    assert!(
        log.contains(&format!(
            "vc-agent: the agent's task keepalive-a panicked: {PANIC_MESSAGE}"
        )),
        "and so does the exit message: {log}"
    );
    assert!(
        !t.cpe_spec.state_dir.join("agent.sock").exists(),
        "it stopped the orderly way (status socket removed)"
    );
    assert!(
        t.cpe_spec.pin_dir.join("maps").exists(),
        "the datapath stays, failing closed"
    );
}
