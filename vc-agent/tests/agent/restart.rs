//! Hitless restart and reload of the real agent, with BIRD 2 as each DC, `graceful restart
//! on` (RFC 4724):
//!
//! - SIGTERM then a new `vc-agent run`: both BIRDs keep vc's 0.0.0.0/0 throughout, vc's
//!   kernel routes from the DCs are never deleted (`ip monitor route` as the judge, and a
//!   poll), LAN → DC traffic flows on, and the /24 DC1 stopped sending while vc was down
//!   leaves tunnel A once DC1's End-of-RIB arrives (it stays, via tunnel B, from DC2);
//! - `vc-agent reload` with tunnel B's BGP password changed resets B's session alone (BIRD
//!   says A's session has not changed since); an invalid config and one that changes an
//!   interface are refused, named, and the agent runs on unchanged;
//! - `vc-agent stop`: Cease to both DCs, vc's routes withdrawn.
use std::{
    collections::BTreeSet,
    path::Path,
    process::Stdio,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    thread,
    time::{Duration, Instant},
};

use vc_agent::status::AgentStatus;
use vc_fixtures::{
    agent_lab::{DC1_AS, DC2_AS, bird_gr, config},
    gre_lab::{DC1_HOST, DC2_HOST, Topology},
};
use vc_testkit::{Daemon, NetNs, bird::Bird, privileged, wait_for};

use crate::AGENT;

const DC1_25: &str = "203.0.113.0/25";
const DC2_25: &str = "203.0.113.128/25";
const CISCO_24: &str = "203.0.113.0/24";
/// How long the agent stays away between SIGTERM and its next run.
const AWAY: Duration = Duration::from_secs(3);

/// Both tunnels Established, each with all it should have accepted.
fn all_up(s: &AgentStatus, accepted: [usize; 2]) -> bool {
    s.tunnels.iter().zip(accepted).all(|(t, n)| {
        t.bgp.as_ref().is_some_and(|b| b.established) && t.accepted_prefixes.len() == n
    })
}

/// vc's kernel routes in `ns`: (prefix, device).
fn vc_routes(ns: &NetNs) -> BTreeSet<(String, String)> {
    routes_in(ns.name())
}

/// [`vc_routes`] by the namespace's name (from another thread).
fn routes_in(ns: &str) -> BTreeSet<(String, String)> {
    let out = std::process::Command::new("ip")
        .args(["-n", ns, "route", "show", "proto", "201"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    out.lines()
        .filter_map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            let dev = w.iter().position(|x| *x == "dev").map(|i| w[i + 1])?;
            Some((w[0].to_string(), dev.to_string()))
        })
        .collect()
}

/// A route line of vc's protocol (named `vc` once `rt_protos.d` has it, else 201).
fn is_vc(line: &str) -> bool {
    line.split_whitespace()
        .skip_while(|w| *w != "proto")
        .nth(1)
        .is_some_and(|p| p == "vc" || p == "201")
}

/// BIRD's `Since` column for protocol `cpe`: when its state last changed.
fn bird_since(bird: &Bird) -> String {
    let out = bird.birdc("show protocols cpe").expect("birdc");
    out.lines()
        .find(|l| l.starts_with("cpe"))
        .and_then(|l| l.split_whitespace().nth(4))
        .unwrap_or_default()
        .to_string()
}

/// Polls, until stopped, what must hold throughout a restart: each BIRD has vc's 0.0.0.0/0,
/// and vc's kernel routes cover every DC prefix; records each time either failed.
struct Watch {
    stop: Arc<AtomicBool>,
    misses: Arc<Mutex<Vec<String>>>,
    polls: Arc<Mutex<u64>>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Watch {
    fn start(cpe: &str, birds: [&Bird; 2], required: BTreeSet<String>) -> Watch {
        let stop = Arc::new(AtomicBool::new(false));
        let misses = Arc::new(Mutex::new(Vec::new()));
        let polls = Arc::new(Mutex::new(0));
        let ctl: Vec<std::path::PathBuf> = birds.iter().map(|b| b.dir().join("bird.ctl")).collect();
        let cpe = cpe.to_string();
        let thread = {
            let (stop, misses, polls) = (stop.clone(), misses.clone(), polls.clone());
            thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    for (dc, ctl) in ctl.iter().enumerate() {
                        let out = std::process::Command::new("birdc")
                            .arg("-s")
                            .arg(ctl)
                            .args(["show", "route", "protocol", "cpe"])
                            .output()
                            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                            .unwrap_or_default();
                        if !out.lines().any(|l| l.starts_with("0.0.0.0/0")) {
                            misses
                                .lock()
                                .expect("misses")
                                .push(format!("DC{} lost 0.0.0.0/0: {out}", dc + 1));
                        }
                    }
                    let have = routes_in(&cpe);
                    let prefixes: BTreeSet<String> = have.iter().map(|(p, _)| p.clone()).collect();
                    if !required.is_subset(&prefixes) {
                        misses
                            .lock()
                            .expect("misses")
                            .push(format!("vc's kernel routes {have:?}"));
                    }
                    *polls.lock().expect("polls") += 1;
                    thread::sleep(Duration::from_millis(20));
                }
            })
        };
        Watch {
            stop,
            misses,
            polls,
            thread: Some(thread),
        }
    }

    /// Stops polling: (polls, what went missing).
    fn finish(mut self) -> (u64, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().expect("watch thread");
        }
        let polls = *self.polls.lock().expect("polls");
        (polls, self.misses.lock().expect("misses").clone())
    }
}

/// `ip monitor route` in `ns`, into `file`, until dropped.
fn monitor_routes(ns: &NetNs, file: &Path) -> Daemon {
    let out = std::fs::File::create(file).expect("monitor file");
    let child = ns
        .command("ip")
        .args(["monitor", "route"])
        .stdin(Stdio::null())
        .stdout(out)
        .spawn()
        .expect("ip monitor");
    Daemon::new(child, "ip monitor")
}

/// `ping` from the LAN host every 10 ms for `secs`: (sent, received).
fn ping_flood(ns: &NetNs, dst: std::net::Ipv4Addr, secs: u32) -> thread::JoinHandle<(u32, u32)> {
    let mut cmd = ns.command("ping");
    cmd.args(["-q", "-i", "0.01", "-W", "1", "-w", &secs.to_string()])
        .arg(dst.to_string());
    thread::spawn(move || {
        let out = cmd.output().expect("ping");
        let text = String::from_utf8_lossy(&out.stdout);
        // "N packets transmitted, M received, ..."
        let line = text
            .lines()
            .find(|l| l.contains("packets transmitted"))
            .unwrap_or_default()
            .to_string();
        let n = |word: &str| {
            line.split(',')
                .find(|p| p.contains(word))
                .and_then(|p| p.split_whitespace().next())
                .and_then(|n| n.parse().ok())
                .unwrap_or(0)
        };
        (n("transmitted"), n("received"))
    })
}

/// Runs a control command of the agent: (exit code, stdout, stderr).
fn control(t: &Topology, cfg: &Path, command: &str) -> (i32, String, String) {
    let out = t
        .cpe
        .command(AGENT.bin())
        .args([command, "-c"])
        .arg(cfg)
        .output()
        .expect("vc-agent");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The restart lab: the GRE lab's CPE with the agent's config, and BIRD with graceful restart
/// as both DCs (DC1's /24 in static `s1`, which the test disables).
struct Lab {
    t: Topology,
    dir: std::path::PathBuf,
    cfg: std::path::PathBuf,
    text: String,
    bird1: Bird,
    bird2: Bird,
}

impl Lab {
    fn new(tag: &str, extra: &str) -> Lab {
        let t = Topology::dcs_only(true);
        let dir = t.scratch(tag);
        std::fs::create_dir_all(&dir).expect("dir");
        let cfg = dir.join("vc.toml");
        let text = format!("{}{extra}", config(&t, ""));
        std::fs::write(&cfg, &text).expect("config");
        let bird1 = bird_gr(
            &t.dc1,
            [100, 64, 0, 2],
            DC1_AS,
            "lab-md5-a",
            &[DC1_25, CISCO_24],
        );
        let bird2 = bird_gr(
            &t.dc2,
            [100, 64, 0, 6],
            DC2_AS,
            "lab-md5-b",
            &[DC2_25, CISCO_24],
        );
        Lab {
            t,
            dir,
            cfg,
            text,
            bird1,
            bird2,
        }
    }

    /// The agent's logs in the scratch directory, one after the other.
    fn logs(&self, names: &[&str]) -> String {
        names
            .iter()
            .map(|n| std::fs::read_to_string(self.dir.join(n)).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n---\n")
    }

    /// Starts the agent (logging to `agent.log`) and waits for both sessions with their
    /// routes, BIRD's view included.
    fn up(&self) -> Daemon {
        let agent = AGENT.start(&self.t.cpe, &self.cfg, &self.dir.join("agent.log"));
        wait_for(
            Duration::from_secs(20),
            "both sessions with their routes",
            || {
                AGENT
                    .status(&self.t.cpe, &self.cfg)
                    .filter(|s| all_up(s, [2, 2]))
            },
        )
        .unwrap_or_else(|e| panic!("{e:#}\n{}", self.logs(&["agent.log"])));
        for bird in [&self.bird1, &self.bird2] {
            bird.wait_established("cpe", Duration::from_secs(10))
                .expect("BIRD");
        }
        agent
    }
}

fn dev(d: &str) -> String {
    d.to_string()
}

#[test]
fn restart_is_hitless_reload_resets_only_what_changed_and_stop_withdraws() {
    if !privileged("restart_is_hitless_reload_resets_only_what_changed_and_stop_withdraws") {
        return;
    }
    let lab = Lab::new("restart", "");
    let agent = lab.up();
    for bird in [&lab.bird1, &lab.bird2] {
        let caps = bird.birdc("show protocols all cpe").expect("birdc");
        assert!(
            caps.contains("Graceful restart"),
            "vc announces graceful restart: {caps}"
        );
    }
    let expected: BTreeSet<(String, String)> = [
        (dev(DC1_25), dev("vc-dc1")),
        (dev(DC2_25), dev("vc-dc2")),
        (dev(CISCO_24), dev("vc-dc1")),
    ]
    .into();
    assert_eq!(vc_routes(&lab.t.cpe), expected);
    let _agent2 = restart(&lab, agent, &expected);
    reload(&lab);
    stop(&lab);
}

/// SIGTERM, the agent away for [`AWAY`] while DC1 stops sending the /24, then a new run;
/// returns it.
fn restart(lab: &Lab, mut agent: Daemon, expected: &BTreeSet<(String, String)>) -> Daemon {
    let monitor_file = lab.dir.join("ip-monitor.txt");
    let monitor = monitor_routes(&lab.t.cpe, &monitor_file);
    let required: BTreeSet<String> = expected.iter().map(|(p, _)| p.clone()).collect();
    let watch = Watch::start(lab.t.cpe.name(), [&lab.bird1, &lab.bird2], required);
    let pings = [
        ping_flood(&lab.t.lan, DC1_HOST, 10),
        ping_flood(&lab.t.lan, DC2_HOST, 10),
    ];
    thread::sleep(Duration::from_millis(500));
    let sigterm = Instant::now();
    agent.signal(libc::SIGTERM);
    wait_for(Duration::from_secs(10), "the agent to exit", || {
        agent.exit_status()
    })
    .expect("stopped");
    let stopped_in = sigterm.elapsed();
    assert_eq!(agent.exit_status().and_then(|s| s.code()), Some(0));
    let log = lab.logs(&["agent.log"]);
    assert!(log.contains("graceful restart"), "{log}");
    for bird in [&lab.bird1, &lab.bird2] {
        let last = bird.last_error("cpe").expect("birdc");
        assert!(
            !last.as_deref().unwrap_or_default().contains("Received"),
            "no NOTIFICATION from vc: {last:?}"
        );
    }
    // While vc is down, DC1 stops sending the /24: vc holds it as stale on tunnel A until
    // DC1's End-of-RIB.
    lab.bird1.birdc("disable s1").expect("birdc disable");
    // A slow upgrade: the agent stays away a while (BIRD has seen the TCP connection close).
    thread::sleep(AWAY);
    let restarted = Instant::now();
    let agent2 = AGENT.start(&lab.t.cpe, &lab.cfg, &lab.dir.join("agent2.log"));
    wait_for(Duration::from_secs(20), "Established again", || {
        AGENT
            .status(&lab.t.cpe, &lab.cfg)
            .filter(|s| all_up(s, [1, 2]))
    })
    .unwrap_or_else(|e| panic!("{e:#}\n{}", lab.logs(&["agent.log", "agent2.log"])));
    let to_established = restarted.elapsed();
    let [(sent1, received1), (sent2, received2)] = pings.map(|p| p.join().expect("ping"));
    let (polls, misses) = watch.finish();
    drop(monitor);
    let log2 = lab.logs(&["agent2.log"]);
    assert!(log2.contains("adopting the running datapath"), "{log2}");
    assert!(
        log2.contains("kept 3 route(s) of the previous run"),
        "{log2}"
    );

    // (c) The /24 DC1 no longer sends left tunnel A with DC1's End-of-RIB: it goes via B now.
    let swept: BTreeSet<(String, String)> = [
        (dev(DC1_25), dev("vc-dc1")),
        (dev(DC2_25), dev("vc-dc2")),
        (dev(CISCO_24), dev("vc-dc2")),
    ]
    .into();
    wait_for(
        Duration::from_secs(5),
        "the stale /24 swept from tunnel A",
        || (vc_routes(&lab.t.cpe) == swept).then_some(()),
    )
    .unwrap_or_else(|e| panic!("{e:#}: {:?}\n{log2}", vc_routes(&lab.t.cpe)));
    assert!(log2.contains("End-of-RIB"), "{log2}");
    let s = AGENT.status(&lab.t.cpe, &lab.cfg).expect("status");
    let tunnels_of_24: Vec<&str> = s
        .datapath
        .routes
        .iter()
        .filter(|r| r.prefix.to_string() == CISCO_24)
        .flat_map(|r| r.tunnels.iter().map(|t| t.key()))
        .collect();
    assert_eq!(tunnels_of_24, ["b"], "the LPM map agrees: {s}");
    // (b) vc's routes to the DCs were never deleted: the kernel's own account.
    let monitor_text = std::fs::read_to_string(&monitor_file).unwrap_or_default();
    let deleted: Vec<&str> = monitor_text
        .lines()
        .filter(|l| l.starts_with("Deleted") && is_vc(l))
        .collect();
    assert!(deleted.is_empty(), "{deleted:?}\n{monitor_text}");
    assert!(
        monitor_text
            .lines()
            .any(|l| l.starts_with(&format!("{CISCO_24} via 100.64.0.6 dev vc-dc2")) && is_vc(l)),
        "the monitor saw the /24 move (it works): {monitor_text}"
    );
    // (a) + (b) by polling: neither BIRD lost vc's default route, vc lost no DC route.
    assert!(
        misses.is_empty(),
        "{} of {polls} polls: {misses:#?}",
        misses.len()
    );
    assert!(polls > 20, "the watch polled throughout ({polls})");
    let lost = (sent1 - received1) + (sent2 - received2);
    eprintln!(
        "MEASURE restart: SIGTERM → exited {stopped_in:?}; away {AWAY:?}; new run → both Established \
         {to_established:?}; {polls} polls, routes lost 0 (BIRD and kernel); LAN → DC1 pings \
         {received1}/{sent1}, → DC2 {received2}/{sent2} ({lost} lost)"
    );
    assert!(
        sent1 > 100 && sent2 > 100,
        "pings ran throughout the restart"
    );
    assert_eq!(lost, 0, "traffic flows on through the restart");

    agent2
}

/// `vc-agent reload`: tunnel B's BGP password changed (on both ends) resets only B; an
/// invalid config, and one that changes an interface, are refused and change nothing.
fn reload(lab: &Lab) {
    let Lab {
        t,
        cfg,
        text,
        bird1,
        bird2,
        dir,
        ..
    } = lab;
    let since_a = bird_since(bird1);
    let status = AGENT.status(&t.cpe, cfg).expect("status");
    let a_before = status.tunnels[0].bgp.clone().expect("bgp a");

    // Refused: an invalid file (a bad ASN, a bad address), named as check-config names them.
    let invalid = text
        .replacen(&format!("cisco_asn = {DC1_AS}"), "cisco_asn = 1", 1)
        .replacen(
            "dc_tunnel_ip = \"100.64.0.6/30\"",
            "dc_tunnel_ip = \"100.64.9.6/30\"",
            1,
        );
    std::fs::write(cfg, &invalid).expect("config");
    let (code, out, err) = control(t, cfg, "reload");
    assert_eq!(code, 1, "refused: {out}{err}");
    assert!(err.contains("refused, the running one kept"), "{err}");
    assert!(err.contains("tunnel.a.cisco_asn"), "{err}");
    assert!(err.contains("tunnel.b"), "{err}");
    // Refused: a valid file whose change needs a restart.
    std::fs::write(cfg, text.replace("lan = \"lan0\"", "lan = \"lan9\"")).expect("config");
    let (code, _, err) = control(t, cfg, "reload");
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("interfaces.lan cannot change without a restart"),
        "{err}"
    );
    let still = AGENT.status(&t.cpe, cfg).expect("the agent runs on");
    assert!(all_up(&still, [1, 2]), "{still}");

    // Applied: B's password, on BIRD's side and then vc's.
    let b2 = text.replace("lab-md5-b\"", "lab-md5-b2\"");
    std::fs::write(cfg, &b2).expect("config");
    let bird2_config = std::fs::read_to_string(bird2.dir().join("bird.conf"))
        .expect("bird.conf")
        .lines()
        .filter(|l| !l.starts_with("log "))
        .collect::<Vec<_>>()
        .join("\n")
        .replace("lab-md5-b\"", "lab-md5-b2\"");
    bird2
        .reconfigure(&bird2_config)
        .expect("BIRD 2 reconfigured");
    let (code, out, err) = control(t, cfg, "reload");
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(out.trim(), "tunnel B (DC2): BGP session reset", "{out}");
    let after = wait_for(Duration::from_secs(20), "B Established again", || {
        AGENT.status(&t.cpe, cfg).filter(|s| {
            all_up(s, [1, 2]) && s.tunnels[1].bgp.as_ref().is_some_and(|b| b.flaps == 0)
        })
    })
    .unwrap_or_else(|e| {
        panic!(
            "{e:#}\n{}",
            std::fs::read_to_string(dir.join("agent2.log")).unwrap_or_default()
        )
    });
    let a_after = after.tunnels[0].bgp.clone().expect("bgp a");
    assert_eq!(a_after.flaps, a_before.flaps, "A never went down");
    assert_eq!(a_after.connect_attempts, a_before.connect_attempts);
    assert!(
        a_after.uptime_s >= a_before.uptime_s,
        "{a_before:?} {a_after:?}"
    );
    assert_eq!(
        bird_since(bird1),
        since_a,
        "BIRD: A's session has not changed"
    );
    assert_ne!(bird_since(bird2), "", "BIRD 2 has a session");
    let (code, out, _) = control(t, cfg, "reload");
    assert_eq!((code, out.trim()), (0, "no change"));
}

/// `vc-agent stop`: Cease to both DCs, vc's routes gone, the agent gone.
fn stop(lab: &Lab) {
    let Lab {
        t,
        cfg,
        bird1,
        bird2,
        ..
    } = lab;
    let (code, out, err) = control(t, cfg, "stop");
    assert_eq!(code, 0, "{out}{err}");
    for bird in [bird1, bird2] {
        let last = bird.last_error("cpe").expect("birdc");
        assert_eq!(last.as_deref(), Some("Received: Administrative shutdown"));
        assert!(
            bird.routes("protocol cpe").expect("birdc").is_empty(),
            "BIRD dropped vc's default route"
        );
    }
    assert!(vc_routes(&t.cpe).is_empty(), "{:?}", vc_routes(&t.cpe));
    assert!(AGENT.status(&t.cpe, cfg).is_none(), "the agent has exited");
    assert!(
        t.cpe_spec.pin_dir.join("maps").exists(),
        "the datapath stays"
    );
    let (code, _, _) = control(t, cfg, "stop");
    assert_eq!(code, 2, "no agent to stop");
    let (code, _, _) = control(t, cfg, "reload");
    assert_eq!(code, 2, "no agent to reload");
}

/// The negative control: with graceful restart off (`graceful_restart_time_s = 0`), SIGTERM
/// withdraws, as it did before graceful restart: Cease to both DCs, which drop vc's default
/// route, and vc's kernel routes go. (So the restart test's watch does see such losses.)
#[test]
fn without_graceful_restart_sigterm_withdraws() {
    if !privileged("without_graceful_restart_sigterm_withdraws") {
        return;
    }
    let lab = Lab::new("no-gr", "[bgp]\ngraceful_restart_time_s = 0\n");
    let mut agent = lab.up();
    let Lab {
        t, bird1, bird2, ..
    } = &lab;
    assert_eq!(vc_routes(&t.cpe).len(), 3);
    agent.signal(libc::SIGTERM);
    wait_for(Duration::from_secs(10), "the agent to exit", || {
        agent.exit_status()
    })
    .expect("stopped");
    for bird in [bird1, bird2] {
        let last = bird.last_error("cpe").expect("birdc");
        assert_eq!(last.as_deref(), Some("Received: Administrative shutdown"));
        assert!(bird.routes("protocol cpe").expect("birdc").is_empty());
    }
    assert!(vc_routes(&t.cpe).is_empty(), "{:?}", vc_routes(&t.cpe));
}
