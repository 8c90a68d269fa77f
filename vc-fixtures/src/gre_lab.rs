//! A Virtual Connect in namespaces, GRE-only: vc at both ends.
//!
//! ```text
//!  lan ──eth0/lan0── cpe ──wan0/c0── wan (router) ──d1/wan0── dc1   (vc, 203.0.113.10 on lo)
//!  10.1.0.10         10.1.0.1                     └─d2/wan0── dc2   (vc, 203.0.113.200 on lo)
//!                    198.51.100.1     .254 / 198.18.1.254, 198.18.2.254   198.18.1.1 / 198.18.2.1
//!  cpe: vc-dc1 100.64.0.1/30 ~ dc1: vc-cpe 100.64.0.2/30
//!       vc-dc2 100.64.0.5/30 ~ dc2: vc-cpe 100.64.0.6/30
//! ```
//! The DC ends are vc datapaths configured the other way round (their "Cisco prefix" is the
//! LAN), standing in for Cisco's GRE routers: this host's kernel has no GRE of its own.
use std::{
    net::Ipv4Addr,
    path::{Path, PathBuf},
};

use aya::{Ebpf, programs::XdpMode};
use ipnet::Ipv4Net;
use vc_agent::datapath::{
    Datapath, DatapathMaps, DatapathSpec, Mode, Program, TunnelSpec, load, object,
};
use vc_testkit::{NetNs, bpffs::TempBpfFs, veth};

pub const LAN_HOST: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 10);
pub const CPE_GRE: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);
pub const DC1_GRE: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 1);
pub const DC2_GRE: Ipv4Addr = Ipv4Addr::new(198, 18, 2, 1);
pub const DC1_HOST: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 10);
pub const DC2_HOST: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 200);
pub const CPE_TUNNEL_A: Ipv4Addr = Ipv4Addr::new(100, 64, 0, 1);
pub const DC1_TUNNEL: Ipv4Addr = Ipv4Addr::new(100, 64, 0, 2);
pub const DC2_TUNNEL: Ipv4Addr = Ipv4Addr::new(100, 64, 0, 6);
pub const TUNNEL_MTU: u16 = 1400;
pub const MSS: u16 = 1350;

pub struct Topology {
    /// The no-op XDP programs of [`Topology::noop_xdp_on_cpe`]: detached when dropped.
    noop_xdp: Option<Ebpf>,
    pub lan: NetNs,
    pub cpe: NetNs,
    pub wan: NetNs,
    pub dc1: NetNs,
    pub dc2: NetNs,
    pub cpe_spec: DatapathSpec,
    dc_specs: Vec<(usize, DatapathSpec)>,
    // Dropped last: the pins live here.
    _bpffs: TempBpfFs,
    state: tempdir::Dir,
}

mod tempdir {
    use std::path::{Path, PathBuf};

    pub struct Dir(PathBuf);

    impl Dir {
        pub fn new(tag: &str) -> Self {
            let p = std::env::temp_dir().join(
                format!(
                    "vc-{tag}-{}-{:?}",
                    std::process::id(),
                    std::thread::current().id()
                )
                .replace(['(', ')'], ""),
            );
            std::fs::create_dir_all(&p).expect("temp dir");
            Dir(p)
        }

        pub fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

fn net(s: &str) -> Ipv4Net {
    s.parse().expect("prefix")
}

fn tunnel(
    id: u32,
    name: &str,
    local: Ipv4Addr,
    remote: Ipv4Addr,
    ours: &str,
    theirs: Ipv4Addr,
    allowed: &str,
) -> TunnelSpec {
    TunnelSpec {
        id,
        name: name.into(),
        // Every end of this topology has one WAN device, wan0.
        wan_if: "wan0".into(),
        local_gre: local,
        remote_gre: remote,
        remote_ipsec: remote,
        reqid: id + 1,
        local_tunnel: net(ours),
        dc_tunnel_ip: theirs,
        cisco_prefix: net(allowed),
        mtu: TUNNEL_MTU,
        mss: MSS,
    }
}

impl Topology {
    /// Builds the namespaces and brings up the three datapaths; the CPE with or without its
    /// LAN fast path. Routes: each /25 on its tunnel, the /24 on tunnel A (the lowest that is
    /// up), in the kernel and in the LPM map, as the route manager would write them.
    #[must_use]
    pub fn new(fast_path: bool) -> Self {
        Self::build(fast_path, false)
    }

    /// As [`Topology::new`] with the fast path, and the CPE's XDP fast paths attached to
    /// its LAN and WAN veths, the veths set up as [`Topology::veths_for_xdp`] says.
    #[must_use]
    pub fn with_xdp() -> Self {
        Self::build(true, true)
    }

    /// What XDP on the CPE's veths needs of their far ends. NAPI where frames are
    /// redirected to (GRO on): a veth takes `XDP_REDIRECT`ed frames only into a NAPI
    /// instance, which it has with GRO or an XDP program on the peer; without, the kernel
    /// drops them. And senders (LAN host, DCs) that checksum in software, as frames from a
    /// NIC are: a veth hands on a local sender's partial checksum (`CHECKSUM_PARTIAL`, the
    /// offload), which an XDP frame cannot carry, so a redirected TCP segment would arrive
    /// with a bad checksum. Also applied to a plain topology, for a like-for-like baseline.
    pub fn veths_for_xdp(&self) {
        self.lan
            .sh("ethtool -K eth0 gro on tx off")
            .expect("the LAN host");
        self.wan
            .sh("ethtool -K c0 gro on")
            .expect("GRO on the WAN router");
        for dc in [&self.dc1, &self.dc2] {
            dc.sh("ethtool -K wan0 tx off").expect("a DC");
        }
    }

    /// A no-op XDP program (`XDP_PASS`) on the CPE's LAN and WAN veths, for a baseline that
    /// pays what any XDP program on a veth costs: a veth with one copies every skb the stack
    /// hands it that lacks XDP's 256 bytes of headroom (a local sender's have 16) into a
    /// page of its own before the program runs; a NIC's native XDP runs on the driver's
    /// pages and copies nothing. Held until the topology is dropped.
    pub fn noop_xdp_on_cpe(&mut self) {
        let ebpf = self
            .cpe
            .run_in(|| -> anyhow::Result<Ebpf> {
                let mut ebpf = load(&[Program::XdpNoop])?;
                let prog = object::xdp(&mut ebpf, Program::XdpNoop)?;
                for dev in ["lan0", "wan0"] {
                    prog.attach(dev, XdpMode::Driver)
                        .map_err(|e| anyhow::anyhow!("no-op XDP on {dev}: {e}"))?;
                }
                Ok(ebpf)
            })
            .expect("the thread in the CPE")
            .expect("no-op XDP on the CPE's veths");
        self.noop_xdp = Some(ebpf);
    }

    fn build(fast_path: bool, xdp: bool) -> Self {
        let mut topo = Self::dcs_only(fast_path);
        topo.cpe_spec.xdp = xdp;
        if xdp {
            topo.veths_for_xdp();
        }
        topo.cpe_up();
        topo
    }

    /// Brings up the CPE's datapath as `cpe_spec` says, with its routes in the kernel and
    /// the LPM map (for topologies made by [`Topology::dcs_only`]).
    pub fn cpe_up(&self) {
        let topo = self;
        datapath_up(&topo.cpe, &topo.cpe_spec);
        topo.cpe
            .sh("ip route add 203.0.113.0/25 via 100.64.0.2 dev vc-dc1 && ip route add 203.0.113.128/25 via 100.64.0.6 dev vc-dc2 && ip route add 203.0.113.0/24 via 100.64.0.2 dev vc-dc1")
            .expect("CPE routes");
        let mut maps = topo.cpe_maps();
        maps.set_route(net("203.0.113.0/25"), 1 << 0)
            .expect("route");
        maps.set_route(net("203.0.113.128/25"), 1 << 1)
            .expect("route");
        maps.set_route(net("203.0.113.0/24"), 0b11).expect("route");
    }

    /// The namespaces with the two DC ends up and routing the LAN back over their tunnel;
    /// the CPE is left to whoever runs it (the agent, in the agent's tests). `cpe_spec` says
    /// where the CPE's datapath would pin and keep its state.
    #[must_use]
    pub fn dcs_only(fast_path: bool) -> Self {
        let bpffs = TempBpfFs::new().expect("bpffs");
        let state = tempdir::Dir::new("state");
        let [lan, cpe, wan, dc1, dc2] = namespaces();
        let (cpe_spec, dc1_spec, dc2_spec) = specs(bpffs.path(), state.path(), fast_path);
        let topo = Topology {
            noop_xdp: None,
            lan,
            cpe,
            wan,
            dc1,
            dc2,
            cpe_spec,
            dc_specs: vec![(1, dc1_spec), (2, dc2_spec)],
            _bpffs: bpffs,
            state,
        };
        for (i, spec) in &topo.dc_specs {
            datapath_up(topo.dc(*i), spec);
            let cpe_side = spec.tunnels[0].dc_tunnel_ip;
            topo.dc(*i)
                .sh(&format!(
                    "ip route add 10.1.0.0/24 via {cpe_side} dev vc-cpe"
                ))
                .expect("DC route to the LAN");
            topo.dc_maps(*i)
                .set_route(net("10.1.0.0/24"), 1)
                .expect("route");
        }
        topo
    }

    /// The same namespaces and addresses without vc: plain IPv4 forwarding over the same
    /// hops, the baseline of the throughput benchmarks.
    #[must_use]
    pub fn plain() -> Self {
        let bpffs = TempBpfFs::new().expect("bpffs");
        let state = tempdir::Dir::new("state");
        let [lan, cpe, wan, dc1, dc2] = namespaces();
        let (cpe_spec, _, _) = specs(bpffs.path(), state.path(), false);
        let setup = [
            (&cpe, "sysctl -qw net.ipv4.ip_forward=1"),
            (&wan, "ip route add 203.0.113.0/25 via 198.18.1.1"),
            (&wan, "ip route add 203.0.113.128/25 via 198.18.2.1"),
            (&wan, "ip route add 10.1.0.0/24 via 198.51.100.1"),
        ];
        for (ns, script) in setup {
            ns.sh(script)
                .unwrap_or_else(|e| panic!("{}: {e:#}", ns.name()));
        }
        Topology {
            noop_xdp: None,
            lan,
            cpe,
            wan,
            dc1,
            dc2,
            cpe_spec,
            dc_specs: Vec::new(),
            _bpffs: bpffs,
            state,
        }
    }

    fn dc(&self, i: usize) -> &NetNs {
        if i == 1 { &self.dc1 } else { &self.dc2 }
    }

    /// Takes the CPE's datapath down, as `vc-agent datapath down` does.
    pub fn cpe_down(&self) -> anyhow::Result<()> {
        let spec = self.cpe_spec.clone();
        self.cpe
            .run_in(move || crate::block_on(Datapath::down(&spec)))
            .expect("thread")
    }

    /// The CPE's maps, opened from their pins.
    #[must_use]
    pub fn cpe_maps(&self) -> DatapathMaps {
        DatapathMaps::from_pins(&self.cpe_spec.pin_dir.join("maps")).expect("CPE maps")
    }

    #[must_use]
    pub fn dc_maps(&self, i: usize) -> DatapathMaps {
        let spec = &self.dc_specs.iter().find(|(n, _)| *n == i).expect("dc").1;
        DatapathMaps::from_pins(&spec.pin_dir.join("maps")).expect("DC maps")
    }

    #[must_use]
    pub fn scratch(&self, name: &str) -> PathBuf {
        self.state.path().join(name)
    }
}

/// The five namespaces, wired and addressed as the diagram shows.
fn namespaces() -> [NetNs; 5] {
    let [lan, cpe, wan, dc1, dc2] =
        ["lan", "cpe", "wan", "dc1", "dc2"].map(|tag| NetNs::new(tag).expect("netns"));
    veth(&lan, "eth0", &cpe, "lan0").expect("veth");
    veth(&cpe, "wan0", &wan, "c0").expect("veth");
    veth(&wan, "d1", &dc1, "wan0").expect("veth");
    veth(&wan, "d2", &dc2, "wan0").expect("veth");
    let setup = [
        (
            &lan,
            "ip addr add 10.1.0.10/24 dev eth0; ip route add default via 10.1.0.1",
        ),
        (
            &cpe,
            "ip addr add 10.1.0.1/24 dev lan0; ip addr add 198.51.100.1/24 dev wan0",
        ),
        (&cpe, "ip route add default via 198.51.100.254"),
        (
            &wan,
            "ip addr add 198.51.100.254/24 dev c0; sysctl -qw net.ipv4.ip_forward=1",
        ),
        (
            &wan,
            "ip addr add 198.18.1.254/24 dev d1; ip addr add 198.18.2.254/24 dev d2",
        ),
        (
            &dc1,
            "ip addr add 198.18.1.1/24 dev wan0; ip route add default via 198.18.1.254",
        ),
        (&dc1, "ip addr add 203.0.113.10/32 dev lo"),
        (
            &dc2,
            "ip addr add 198.18.2.1/24 dev wan0; ip route add default via 198.18.2.254",
        ),
        // DC2 reaches DC1's half over Cisco's own network: it answers for it too.
        (
            &dc2,
            "ip addr add 203.0.113.200/32 dev lo; ip addr add 203.0.113.10/32 dev lo",
        ),
    ];
    for (ns, script) in setup {
        ns.sh(script)
            .unwrap_or_else(|e| panic!("{}: {e:#}", ns.name()));
    }
    [lan, cpe, wan, dc1, dc2]
}

/// Brings a datapath up on a thread in `ns`, as `vc-agent datapath up` would there.
fn datapath_up(ns: &NetNs, spec: &DatapathSpec) {
    let spec = spec.clone();
    ns.run_in(move || crate::block_on(async move { Datapath::up(spec).await.map(drop) }))
        .expect("thread")
        .unwrap_or_else(|e| panic!("datapath up: {e:?}"));
}

/// The three datapaths: the CPE with its two tunnels, each DC with its one back.
fn specs(pins: &Path, state: &Path, fast_path: bool) -> (DatapathSpec, DatapathSpec, DatapathSpec) {
    let spec =
        |name: &str, wan_if: &str, lan_if: Option<&str>, fast: bool, tunnels: Vec<TunnelSpec>| {
            DatapathSpec {
                mode: Mode::ExternalIpsec,
                wan_if: wan_if.into(),
                lan_if: lan_if.map(str::to_string),
                fast_path: fast,
                xdp: false,
                pin_dir: pins.join(name),
                state_dir: state.join(name),
                attach_mode: None,
                tunnels,
            }
        };
    let cpe_spec = spec(
        "cpe",
        "wan0",
        Some("lan0"),
        fast_path,
        vec![
            tunnel(
                0,
                "vc-dc1",
                CPE_GRE,
                DC1_GRE,
                "100.64.0.1/30",
                DC1_TUNNEL,
                "203.0.113.0/24",
            ),
            tunnel(
                1,
                "vc-dc2",
                CPE_GRE,
                DC2_GRE,
                "100.64.0.5/30",
                DC2_TUNNEL,
                "203.0.113.0/24",
            ),
        ],
    );
    let dc1_spec = spec(
        "dc1",
        "wan0",
        None,
        false,
        vec![tunnel(
            0,
            "vc-cpe",
            DC1_GRE,
            CPE_GRE,
            "100.64.0.2/30",
            CPE_TUNNEL_A,
            "10.1.0.0/24",
        )],
    );
    let dc2_spec = spec(
        "dc2",
        "wan0",
        None,
        false,
        vec![tunnel(
            0,
            "vc-cpe",
            DC2_GRE,
            CPE_GRE,
            "100.64.0.6/30",
            Ipv4Addr::new(100, 64, 0, 5),
            "10.1.0.0/24",
        )],
    );

    (cpe_spec, dc1_spec, dc2_spec)
}

/// Whether `program` is attached to `device` in `ns`, in any direction: as a clsact filter
/// (bpftool) or in a tcx chain (the kernel's `BPF_PROG_QUERY`: the bpftool of Debian 12 and
/// of this host predates tcx and does not list it).
#[must_use]
pub fn tc_program_on(ns: &NetNs, device: &str, program: &str) -> bool {
    use aya::programs::{SchedClassifier, tc::TcAttachType};
    let clsact = ns
        .sh_output(&format!("bpftool net show dev {device}"))
        .is_ok_and(|o| o.status.success() && String::from_utf8_lossy(&o.stdout).contains(program));
    let (device, program) = (device.to_string(), program.to_string());
    let tcx = ns
        .run_in(move || {
            [TcAttachType::Ingress, TcAttachType::Egress]
                .into_iter()
                .any(|direction| {
                    SchedClassifier::query_tcx(&device, direction).is_ok_and(|(_, progs)| {
                        progs
                            .iter()
                            .any(|p| p.name_as_str() == Some(program.as_str()))
                    })
                })
        })
        .expect("thread");
    clsact || tcx
}
