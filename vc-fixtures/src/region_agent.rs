//! The whole agent on the lab's region (`vc_testkit::region`), as the VM tests read it: its
//! status, its log, the CPE's tunnel interfaces, and where a test keeps its captures.
use std::{
    io::{Read as _, Write as _},
    net::TcpStream,
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use vc_agent::status::{AgentStatus, TunnelStatus};
use vc_testkit::{
    metrics::{self, Exposition},
    region::{
        Region,
        plan::{ALL_DCS, DcPlan},
    },
    vm,
};

/// Starts the agent, then the DCs' BGP and keepalives once their SAs are in, and waits until
/// the lab's whole checklist passes on every tunnel (a minute at most each); panics with the
/// checklist and the logs otherwise. Prints how long it took, as `MEASURE {what}: ...`.
pub fn bring_up(region: &mut Region, what: &str) {
    region.start_agent().expect("vc-agent run");
    let t = Instant::now();
    region
        .start_dc_peers(Duration::from_mins(1))
        .unwrap_or_else(|e| panic!("{e:#}\n{}", region.logs(60)));
    let (up, list) = region.wait_up(Duration::from_mins(1), |_, _, _| {});
    assert!(up, "not up:\n{list}\n{}", region.logs(60));
    eprintln!(
        "MEASURE {what}: {} up {:?} after vc-agent run\n{list}",
        region.all_tunnels(),
        t.elapsed()
    );
}

/// `vc-agent status --json` on the region's CPE; panics with the region's logs if it fails.
#[must_use]
pub fn status(region: &Region) -> AgentStatus {
    let json = region
        .status_json()
        .unwrap_or_else(|e| panic!("{e:#}\n{}", region.logs(60)));
    serde_json::from_str(&json).expect("vc-agent status --json")
}

/// The tunnel to `dc` in `s`, by vc's key of it (`a`, `r2-a`, ...): in a second region the
/// status's `dc` (1 or 2) repeats the first's.
#[must_use]
pub fn tunnel<'a>(s: &'a AgentStatus, dc: &DcPlan) -> &'a TunnelStatus {
    s.tunnels
        .iter()
        .find(|t| t.ends.id.key() == dc.key())
        .unwrap_or_else(|| panic!("no tunnel {} (to DC{}) in the status", dc.key(), dc.n))
}

/// The agent's metrics, scraped in the CPE's namespace from its default listener
/// (`127.0.0.1:9917`) and read strictly ([`vc_testkit::metrics::parse`]: no repeated series);
/// panics if it does not answer with a valid exposition.
#[must_use]
pub fn metrics(region: &Region) -> Exposition {
    let answer = region
        .cpe
        .run_in(|| {
            let mut s = TcpStream::connect("127.0.0.1:9917").expect("the metrics endpoint");
            s.set_read_timeout(Some(Duration::from_secs(10)))
                .expect("timeout");
            s.write_all(b"GET /metrics HTTP/1.1\r\nHost: vc\r\nConnection: close\r\n\r\n")
                .expect("request");
            let mut answer = Vec::new();
            let _ = s.read_to_end(&mut answer);
            String::from_utf8_lossy(&answer).into_owned()
        })
        .expect("a thread in the CPE's namespace");
    let (head, body) = answer.split_once("\r\n\r\n").expect("head and body");
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    metrics::parse(body).unwrap_or_else(|e| panic!("invalid exposition: {e}\n{body}"))
}

/// Where a test writes a capture or a log worth keeping: the VM run's results directory,
/// else the temporary directory.
pub fn results(name: &str) -> PathBuf {
    std::env::var_os(vm::RESULTS_DIR)
        .map_or_else(std::env::temp_dir, PathBuf::from)
        .join(name)
}

/// The agent's log so far.
#[must_use]
pub fn agent_log(region: &Region) -> String {
    std::fs::read_to_string(region.agent_log_path()).unwrap_or_default()
}

/// In the agent's log after byte `from`: its ICMP watch's line for a fragmentation-needed
/// toward a DC, and how long after it (seconds, by the log's own times) it applied tunnel A's
/// new MTU; `None`s for what it did not log.
#[must_use]
pub fn path_mtu_reaction(region: &Region, from: usize) -> (Option<String>, Option<f64>) {
    let log = agent_log(region);
    let event = log[from..]
        .lines()
        .find(|l| l.contains("fragmentation needed toward a DC"))
        .map(str::to_string);
    let applied = log[from..]
        .lines()
        .find(|l| l.contains("tunnel MTU follows the path") && l.contains("tunnel=vc-dc1"));
    let reaction = event
        .as_deref()
        .and_then(log_time)
        .zip(applied.and_then(log_time))
        .map(|(e, a)| a - e);
    (event, reaction)
}

/// The seconds since midnight (UTC) of an agent log line (`2026-12-05T09:03:55.721306Z ...`).
#[must_use]
pub fn log_time(line: &str) -> Option<f64> {
    let time = line.split_whitespace().next()?.split_once('T')?.1;
    let mut parts = time.trim_end_matches('Z').split(':');
    let (h, m, s) = (parts.next()?, parts.next()?, parts.next()?);
    Some(
        f64::from(h.parse::<u32>().ok()? * 3600 + m.parse::<u32>().ok()? * 60)
            + s.parse::<f64>().ok()?,
    )
}

/// The MTU of the CPE's tunnel interface to `dc` (0 if it cannot be read).
#[must_use]
pub fn interface_mtu(region: &Region, dc: &DcPlan) -> u32 {
    region
        .cpe
        .sh(&format!("cat /sys/class/net/{}/mtu", dc.interface()))
        .ok()
        .and_then(|m| m.trim().parse().ok())
        .unwrap_or(0)
}

/// `ip monitor route` in the CPE's namespace: every route change while it runs.
pub struct RouteMonitor(Child);

impl RouteMonitor {
    /// Starts watching; returns once it has had time to subscribe.
    #[must_use]
    pub fn start() -> RouteMonitor {
        let child = Command::new("ip")
            .args(["netns", "exec", "cpe", "ip", "-ts", "monitor", "route"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("ip monitor route");
        // Let it subscribe before anything happens.
        std::thread::sleep(Duration::from_millis(300));
        RouteMonitor(child)
    }

    /// Stops it; the changes it printed that touch a Cisco /25 (of either region) or vc's
    /// routes.
    #[must_use]
    pub fn finish(mut self) -> Vec<String> {
        let _ = self.0.kill();
        let _ = self.0.wait();
        let mut text = String::new();
        if let Some(mut out) = self.0.stdout.take() {
            let _ = out.read_to_string(&mut text);
        }
        text.lines()
            .filter(|l| l.contains("proto 201") || ALL_DCS.iter().any(|dc| touches(l, dc)))
            .map(str::to_string)
            .collect()
    }
}

/// Whether a route line names `dc`'s /25 or its region's /24 (`198.18.7.0/25 dev ...`).
#[must_use]
pub fn touches(line: &str, dc: &DcPlan) -> bool {
    line.split_whitespace()
        .any(|w| w == dc.prefix || w == dc.cisco_prefix)
}
