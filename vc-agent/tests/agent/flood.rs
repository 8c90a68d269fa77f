//! A connection flood on the BGP port: from the LAN (which routes to the tunnel IPs), and
//! from a stranger behind a DC (over the tunnel, from an address that is not the
//! neighbour's). The sessions stay Established, `status` answers, the agent's descriptors
//! stay few, and its log gets a line per ten seconds, not one per connection.
use std::{
    net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpStream},
    path::{Path, PathBuf},
    sync::atomic::{AtomicBool, Ordering},
    time::{Duration, Instant},
};

use vc_agent::status::AgentStatus;
use vc_fixtures::{
    agent_lab::{DC1_AS, DC2_AS, bird, config},
    gre_lab::{DC1_HOST, Topology},
};
use vc_testkit::{Daemon, NetNs, bird::Bird, privileged, wait_for};

use crate::AGENT;

/// The CPE's tunnel IPs: the BGP listeners.
const LISTENERS: [Ipv4Addr; 2] = [Ipv4Addr::new(100, 64, 0, 1), Ipv4Addr::new(100, 64, 0, 5)];
/// Connections from the LAN, spread over both listeners.
const FROM_LAN: usize = 2_000;
/// Connections from the stranger behind DC1.
const FROM_DC: usize = 300;

/// What a flood's connects came to.
#[derive(Debug, Default)]
struct Tally {
    connected: usize,
    refused: usize,
    other: usize,
    /// The first error other than "refused".
    first_other: Option<String>,
    took: Duration,
}

/// `n` connects to `targets` in turn from `ns`, from `source` if given; each connected socket
/// held open until the end (a flood that keeps the agent's side busy if it can).
fn flood(ns: &NetNs, source: Option<Ipv4Addr>, targets: &[Ipv4Addr], n: usize) -> Tally {
    let targets = targets.to_vec();
    ns.run_in(move || {
        let started = Instant::now();
        let mut tally = Tally::default();
        let mut held = Vec::new();
        for i in 0..n {
            let to = SocketAddr::V4(SocketAddrV4::new(targets[i % targets.len()], 179));
            match connect(source, to) {
                Ok(stream) => {
                    tally.connected += 1;
                    held.push(stream);
                }
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => tally.refused += 1,
                Err(e) => {
                    tally.other += 1;
                    tally
                        .first_other
                        .get_or_insert_with(|| format!("#{i}: {e}"));
                }
            }
        }
        tally.took = started.elapsed();
        tally
    })
    .expect("flood thread")
}

fn connect(source: Option<Ipv4Addr>, to: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    if let Some(source) = source {
        socket.bind(&SocketAddr::V4(SocketAddrV4::new(source, 0)).into())?;
    }
    socket.connect_timeout(&to.into(), Duration::from_secs(1))?;
    Ok(socket.into())
}

fn descriptors(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, Iterator::count)
}

fn both_established(s: &AgentStatus) -> bool {
    s.tunnels
        .iter()
        .all(|t| t.bgp.as_ref().is_some_and(|b| b.established))
}

/// Asks for the status every 100 ms while `flood` runs: how many answers, the slowest, and
/// whether both sessions were Established in each.
fn watch_during(cpe: &NetNs, cfg: &Path, flood: impl FnOnce() -> Tally) -> (Tally, Watched) {
    let stop = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let watcher = scope.spawn(|| {
            let mut w = Watched::default();
            while !stop.load(Ordering::Relaxed) {
                let asked = Instant::now();
                match AGENT.status(cpe, cfg) {
                    Some(s) => {
                        w.answers += 1;
                        w.slowest = w.slowest.max(asked.elapsed());
                        w.all_established &= both_established(&s);
                    }
                    None => w.unanswered += 1,
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            w
        });
        let tally = flood();
        stop.store(true, Ordering::Relaxed);
        (tally, watcher.join().expect("watcher"))
    })
}

#[derive(Debug)]
struct Watched {
    answers: usize,
    unanswered: usize,
    slowest: Duration,
    all_established: bool,
}

impl Default for Watched {
    fn default() -> Self {
        Watched {
            answers: 0,
            unanswered: 0,
            slowest: Duration::ZERO,
            all_established: true,
        }
    }
}

/// The agent on the GRE lab's CPE, BIRD on both DCs, both sessions Established.
struct Up {
    t: Topology,
    cfg: PathBuf,
    log: PathBuf,
    agent: Daemon,
    _birds: [Bird; 2],
}

impl Up {
    fn new() -> Up {
        let t = Topology::dcs_only(true);
        let dir = t.scratch("flood");
        std::fs::create_dir_all(&dir).expect("dir");
        let cfg = dir.join("vc.toml");
        std::fs::write(&cfg, config(&t, "")).expect("config");
        let birds = [
            bird(
                &t.dc1,
                [100, 64, 0, 2],
                DC1_AS,
                "lab-md5-a",
                &["203.0.113.0/25", "203.0.113.0/24"],
            ),
            bird(
                &t.dc2,
                [100, 64, 0, 6],
                DC2_AS,
                "lab-md5-b",
                &["203.0.113.128/25", "203.0.113.0/24"],
            ),
        ];
        let log = dir.join("agent.log");
        let agent = AGENT.start(&t.cpe, &cfg, &log);
        let up = Up {
            t,
            cfg,
            log,
            agent,
            _birds: birds,
        };
        wait_for(Duration::from_secs(20), "both sessions Established", || {
            up.status()
                .filter(|s| both_established(s) && s.tunnels.iter().all(|t| t.keepalive.alive))
        })
        .unwrap_or_else(|e| panic!("{e:#}\n{}", up.log()));
        up
    }

    fn status(&self) -> Option<AgentStatus> {
        AGENT.status(&self.t.cpe, &self.cfg)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

#[test]
fn a_connection_flood_on_the_bgp_port_leaves_the_sessions_and_the_agent_alone() {
    if !privileged("a_connection_flood_on_the_bgp_port_leaves_the_sessions_and_the_agent_alone") {
        return;
    }
    let up = Up::new();
    let (t, cfg, agent) = (&up.t, &up.cfg, &up.agent);
    let agent_log = || up.log();
    let fds_before = descriptors(agent.pid());

    // From the LAN: the listeners are bound to the tunnel interfaces, so the kernel refuses
    // every one of these (RST) and the agent never sees them.
    let (lan, watched) = watch_during(&t.cpe, cfg, || flood(&t.lan, None, &LISTENERS, FROM_LAN));
    eprintln!("MEASURE flood from the LAN: {lan:?}; status while it ran: {watched:?}");
    assert!(lan.took < Duration::from_secs(10), "{lan:?}");
    assert_eq!(
        (lan.connected, lan.refused),
        (0, FROM_LAN),
        "the LAN reaches no BGP listener: {lan:?}"
    );
    assert!(
        watched.all_established && watched.unanswered == 0 && watched.answers > 0,
        "{watched:?}"
    );
    let fds_after_lan = descriptors(agent.pid());

    // From behind DC1, over the tunnel, from an address of the DC's /25 that is not the
    // neighbour: accepted by the listener, closed at once by the session, counted.
    let (dc, watched) = watch_during(&t.cpe, cfg, || {
        flood(&t.dc1, Some(DC1_HOST), &LISTENERS[..1], FROM_DC)
    });
    eprintln!("MEASURE flood from behind DC1: {dc:?}; status while it ran: {watched:?}");
    assert!(
        dc.connected > 0,
        "the stranger's connects reach the listener: {dc:?}"
    );
    assert!(
        watched.all_established && watched.unanswered == 0,
        "{watched:?}"
    );
    let after = wait_for(Duration::from_secs(5), "every refusal counted", || {
        up.status().filter(|s| {
            s.tunnels[0]
                .bgp
                .as_ref()
                .is_some_and(|b| b.refused_connections >= dc.connected as u64)
        })
    })
    .unwrap_or_else(|e| panic!("{e:#}\n{}", agent_log()));
    let fds_after = descriptors(agent.pid());
    eprintln!(
        "MEASURE agent descriptors: {fds_before} before, {fds_after_lan} after the LAN flood, \
         {fds_after} after the DC-side flood"
    );
    for (tunnel, flaps) in after
        .tunnels
        .iter()
        .map(|t| (t.ends.id, t.bgp.as_ref().map(|b| b.flaps)))
    {
        assert_eq!(
            flaps,
            Some(0),
            "tunnel {tunnel}'s session never left Established"
        );
    }
    assert!(both_established(&after));
    assert!(
        fds_after <= fds_before + 8 && fds_after_lan <= fds_before + 8,
        "descriptors: {fds_before} → {fds_after_lan} → {fds_after}"
    );
    let refusal_lines = agent_log().matches("refused a connection from").count();
    assert!(
        (1..=3).contains(&refusal_lines),
        "a line per 10 s, not one per connection: {refusal_lines}\n{}",
        agent_log()
    );
    assert!(agent_log().contains(&format!("refused a connection from {DC1_HOST}:")));
}
