//! The BGP lab: vc's namespace joined by one veth per tunnel to a namespace per DC, each
//! running BIRD 2. Tunnel t: vc 100.64.t.1/30 on `vc<t>`, the DC 100.64.t.2/30 on `dc<t>`.
//! Cisco's /24 is 198.18.10.0/24, DC1's /25 the lower half, DC2's the upper (R19).
use std::{
    collections::BTreeSet,
    io::Write,
    net::Ipv4Addr,
    sync::{Arc, Mutex, OnceLock},
    time::{Duration, Instant},
};

use ipnet::Ipv4Net;
use vc_agent::{
    bgp::{NeighborConfig, Speaker},
    datapath::{DatapathMaps, load},
    routes::{RouteManager, RouteManagerConfig, SharedMaps, TunnelNextHop},
};
use vc_testkit::{
    NetNs,
    bird::{BgpPeer, Bird},
    veth,
};

pub const VC_ASN: u32 = 65001;
pub const DC_ASN: [u32; 2] = [65010, 65020];
pub const CISCO_24: &str = "198.18.10.0/24";
pub const DC_25: [&str; 2] = ["198.18.10.0/25", "198.18.10.128/25"];

#[must_use]
pub fn net(s: &str) -> Ipv4Net {
    s.parse().expect("prefix")
}

/// (vc's, the DC's) tunnel IP of tunnel `t`.
#[must_use]
pub fn addrs(t: u32) -> (Ipv4Addr, Ipv4Addr) {
    let t = u8::try_from(t).expect("small tunnel id");
    (Ipv4Addr::new(100, 64, t, 1), Ipv4Addr::new(100, 64, t, 2))
}

/// BIRD as DC `t`: its /25 (static `dc25`) and the /24 (static `dc24`) exported, hold 9 s.
#[must_use]
pub fn dc_peer(t: u32) -> BgpPeer {
    let (vc, dc) = addrs(t);
    BgpPeer::new("vc", dc, DC_ASN[t as usize], vc, VC_ASN)
        .export("dc25", &[DC_25[t as usize]])
        .export("dc24", &[CISCO_24])
        .hold_time(9)
}

/// vc's neighbour for tunnel `t`, with test timers.
#[must_use]
pub fn neighbor(t: u32) -> NeighborConfig {
    let (vc, dc) = addrs(t);
    let mut cfg = NeighborConfig::new(
        t,
        vc,
        dc,
        VC_ASN,
        DC_ASN[t as usize],
        vec![net(DC_25[t as usize]), net(CISCO_24)],
    );
    cfg.hold_time = 9;
    cfg.connect_retry = Duration::from_secs(2);
    cfg.idle_hold = Duration::from_secs(1);
    cfg.idle_hold_max = Duration::from_secs(4);
    cfg.interface = Some(format!("vc{t}"));
    cfg
}

pub struct Dc {
    pub ns: NetNs,
    pub bird: Bird,
}

/// Namespaces, veths and one BIRD per peer (`peers[t]` is DC `t`).
#[must_use]
pub fn lab(tag: &str, peers: &[BgpPeer]) -> (NetNs, Vec<Dc>) {
    let vc = NetNs::new(&format!("{tag}v")).expect("vc netns");
    let mut dcs = Vec::new();
    for (t, peer) in (0u32..).zip(peers) {
        let ns = NetNs::new(&format!("{tag}{t}")).expect("dc netns");
        let (vc_if, dc_if) = (format!("vc{t}"), format!("dc{t}"));
        veth(&vc, &vc_if, &ns, &dc_if).expect("veth");
        let (a, b) = addrs(t);
        vc.ip(&["addr", "add", &format!("{a}/30"), "dev", &vc_if])
            .expect("vc addr");
        ns.ip(&["addr", "add", &format!("{b}/30"), "dev", &dc_if])
            .expect("dc addr");
        let bird = Bird::start(&ns, &peer.config()).expect("bird");
        dcs.push(Dc { ns, bird });
    }
    (vc, dcs)
}

/// vc's namespace and DC 0's, joined as tunnel 0, with no BGP speaker on the DC side: the
/// test plays the peer itself over real TCP.
#[must_use]
pub fn lab_raw(tag: &str) -> (NetNs, NetNs) {
    let vc = NetNs::new(&format!("{tag}v")).expect("vc netns");
    let dc = NetNs::new(&format!("{tag}0")).expect("dc netns");
    veth(&vc, "vc0", &dc, "dc0").expect("veth");
    let (a, b) = addrs(0);
    vc.ip(&["addr", "add", &format!("{a}/30"), "dev", "vc0"])
        .expect("vc addr");
    dc.ip(&["addr", "add", &format!("{b}/30"), "dev", "dc0"])
        .expect("dc addr");
    (vc, dc)
}

/// vc's side: a real LPM map, the route manager and one speaker per neighbour.
pub struct Vc {
    pub maps: SharedMaps,
    pub routes: RouteManager,
    pub speakers: Vec<Speaker>,
}

pub async fn start_vc(neighbors: Vec<NeighborConfig>) -> Vc {
    let mut ebpf = load(&[]).expect("BPF object");
    let maps = Arc::new(Mutex::new(
        DatapathMaps::take(&mut ebpf, None).expect("maps"),
    ));
    let tunnels = neighbors
        .iter()
        .map(|n| TunnelNextHop {
            id: n.tunnel,
            gateway: n.peer_addr,
            interface: format!("vc{}", n.tunnel),
        })
        .collect();
    let routes = RouteManager::spawn(RouteManagerConfig::new(tunnels), maps.clone())
        .await
        .expect("route manager");
    let speakers = neighbors
        .into_iter()
        .map(|n| Speaker::spawn(n, routes.handle()).expect("speaker"))
        .collect();
    Vc {
        maps,
        routes,
        speakers,
    }
}

impl Vc {
    /// The LPM map, sorted: prefix → tunnel mask.
    #[must_use]
    pub fn map(&self) -> Vec<(Ipv4Net, u32)> {
        let maps = self.maps.lock().expect("maps");
        let mut v: Vec<(Ipv4Net, u32)> = maps
            .routes()
            .expect("routes")
            .into_iter()
            .map(|(p, r)| (p, r.tunnels))
            .collect();
        v.sort();
        v
    }

    /// The kernel's LPM answer for `addr`: (prefix, tunnel mask).
    #[must_use]
    pub fn lookup(&self, addr: &str) -> Option<(Ipv4Net, u32)> {
        let maps = self.maps.lock().expect("maps");
        maps.route_for(addr.parse().expect("addr"))
            .expect("lookup")
            .map(|(p, r)| (p, r.tunnels))
    }
}

/// A multi-threaded runtime (blocking test code on the main thread never stalls the
/// speakers). Build it inside the namespace thread: its workers inherit the namespace.
/// Runs a test's body inside vc's namespace (where the speakers and their routes live) on a
/// runtime of its own; the body gets the namespace's name for `ip route` checks.
pub fn in_vc(vc: &NetNs, body: impl AsyncFnOnce(String) + Send + 'static) {
    let ns = vc.name().to_string();
    vc.run_in(move || runtime().block_on(body(ns)))
        .expect("test body");
}

#[must_use]
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// Polls `check` every 5 ms for up to `timeout`; panics naming `what`.
pub async fn wait_until<T>(
    timeout: Duration,
    what: &str,
    mut check: impl FnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}\nlogs:\n{}",
            logs_tail(60)
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// vc's kernel routes in namespace `ns`: "prefix via gw dev if" lines, sorted.
#[must_use]
pub fn kernel_routes(ns: &str) -> BTreeSet<String> {
    let out = std::process::Command::new("ip")
        .args(["-n", ns, "route", "show", "proto", "201"])
        .output()
        .expect("ip route");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect()
}

/// `ip route get <addr>` in `ns`: "via <gw> dev <if>".
#[must_use]
pub fn route_get(ns: &str, addr: &str) -> String {
    let out = std::process::Command::new("ip")
        .args(["-n", ns, "route", "get", addr])
        .output()
        .expect("ip route get");
    let text = String::from_utf8_lossy(&out.stdout);
    let words: Vec<&str> = text.split_whitespace().collect();
    let via = words
        .iter()
        .position(|w| *w == "via")
        .map_or("-", |i| words[i + 1]);
    let dev = words
        .iter()
        .position(|w| *w == "dev")
        .map_or("-", |i| words[i + 1]);
    format!("via {via} dev {dev}")
}

static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();

#[derive(Clone)]
struct Sink(Arc<Mutex<Vec<u8>>>);

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("logs").extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Captures every log line of this test binary (all tests, all threads) in memory.
pub fn init_logs() {
    LOGS.get_or_init(|| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let sink = Sink(buf.clone());
        tracing_subscriber::fmt()
            .with_env_filter("vc_agent=debug")
            .with_ansi(false)
            .with_writer(move || sink.clone())
            .init();
        buf
    });
}

/// Everything logged so far.
pub fn logs() -> String {
    LOGS.get()
        .map(|b| String::from_utf8_lossy(&b.lock().expect("logs")).into_owned())
        .unwrap_or_default()
}

#[must_use]
pub fn logs_tail(lines: usize) -> String {
    let all = logs();
    let v: Vec<&str> = all.lines().collect();
    v[v.len().saturating_sub(lines)..].join("\n")
}
