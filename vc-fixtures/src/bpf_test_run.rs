//! One loaded datapath per test, configured like a one-CPE Virtual Connect: tunnel A to DC1
//! and tunnel B to DC2, the Cisco /24 split in two /25s.
use aya::{
    Ebpf,
    maps::{MapData, PerCpuArray, PerCpuValues},
    util::nr_cpus,
};
use ipnet::Ipv4Net;
use vc_agent::datapath::{DatapathMaps, PROGRAMS, Program, XDP_PROGRAMS, load, maps::VerdictCount};
use vc_common::{
    Counted, Hook, Tunnel, TunnelStats, ipv4, ipv4_mask, settings_flags, tunnel_flags,
};
use vc_testkit::{
    packet::{self, Ipv4, ether_ipv4},
    testrun::{self, Outcome, SkbCtx},
};

pub const CPE_GRE: [u8; 4] = [198, 51, 100, 1];
pub const DC1_GRE: [u8; 4] = [198, 18, 1, 1];
pub const DC2_GRE: [u8; 4] = [198, 18, 2, 1];
/// IPsec addresses differ from the GRE ones, as the form allows.
pub const DC1_IPSEC: [u8; 4] = [198, 18, 1, 2];
pub const DC2_IPSEC: [u8; 4] = [198, 18, 2, 2];
pub const CPE_TUNNEL_A: [u8; 4] = [100, 64, 0, 1];
pub const DC1_TUNNEL: [u8; 4] = [100, 64, 0, 2];
pub const DC2_TUNNEL: [u8; 4] = [100, 64, 0, 6];
/// Cisco's /24 and a host in each half.
pub const CISCO_NET: [u8; 4] = [203, 0, 113, 0];
pub const DC1_HOST: [u8; 4] = [203, 0, 113, 10];
pub const DC2_HOST: [u8; 4] = [203, 0, 113, 200];
pub const LAN_HOST: [u8; 4] = [10, 1, 0, 10];
pub const CPE_LAN: [u8; 4] = [10, 1, 0, 1];
pub const INTERNET_HOST: [u8; 4] = [192, 0, 2, 77];

pub const TUNNEL_A: u32 = 0;
pub const TUNNEL_B: u32 = 1;
pub const REQID_A: u32 = 11;
pub const REQID_B: u32 = 12;
pub const MTU: u16 = 1400;
pub const MSS: u16 = 1350;

pub const A_TUNNEL_MAC: [u8; 6] = [2, 0, 0, 0, 0x0a, 1];
pub const A_PEER_MAC: [u8; 6] = [2, 0, 0, 0, 0x0a, 2];
pub const B_TUNNEL_MAC: [u8; 6] = [2, 0, 0, 0, 0x0b, 1];
pub const B_PEER_MAC: [u8; 6] = [2, 0, 0, 0, 0x0b, 2];
pub const LAN_MAC: [u8; 6] = [2, 0, 0, 0, 0x1a, 1];
pub const HOST_MAC: [u8; 6] = [2, 0, 0, 0, 0x1a, 2];

/// Interface indexes no namespace has: route lookups from them fail, so the fast paths that
/// consult the kernel's FIB take the tunnel interface, whatever the test host's routes.
/// The fast paths are tested in namespaces of their own (`fast_path.rs`).
const NO_DEVICE: u32 = 0x7fff_0000;

/// Loopback: the only device every test namespace has. Test runs arrive "on" it, so the
/// tunnel under test has its hidden peer there.
const LO: u32 = 1;

/// The outer IP ID the programs take from their counter while a fixture pins it
/// ([`Fixture::count_outer_ids`] lets it count).
pub const OUTER_ID: u16 = 0x4d2e;

pub struct Fixture {
    maps: DatapathMaps,
    ebpf: Ebpf,
    /// The datapath's outer IP ID counters (the agent never touches them).
    ip_ids: PerCpuArray<MapData, u32>,
    /// Reset to before each run, so that expected packets do not depend on the order of runs.
    pinned_ip_id: Option<u32>,
}

#[must_use]
pub fn prefix(addr: [u8; 4], len: u8) -> Ipv4Net {
    Ipv4Net::new(addr.into(), len).expect("prefix")
}

impl Fixture {
    /// A datapath with both tunnels up, routes for both /25s and the /24, in IPsec mode with
    /// the fast path on, and tunnel A's peer on loopback. `None`: skip (not root).
    #[must_use]
    pub fn new(test: &str) -> Option<Self> {
        Self::with_peer_on_lo(test, TUNNEL_A)
    }

    /// As [`Fixture::new`], with `peer_tunnel`'s hidden peer on loopback.
    #[must_use]
    pub fn with_peer_on_lo(test: &str, peer_tunnel: u32) -> Option<Self> {
        if !vc_testkit::privileged(test) {
            return None;
        }
        let mut ebpf = load(
            &[
                PROGRAMS.as_slice(),
                &XDP_PROGRAMS,
                &[Program::Noop, Program::XdpNoop],
            ]
            .concat(),
        )
        .unwrap_or_else(|e| panic!("{test}: loading: {e:?}"));
        let ip_ids = ebpf
            .take_map(vc_common::maps::IP_ID)
            .expect("IP_ID in the object")
            .try_into()
            .expect("IP_ID is a per-CPU array of u32");
        let maps = DatapathMaps::take(&mut ebpf, None).expect("maps");
        let mut f = Fixture {
            maps,
            ebpf,
            ip_ids,
            pinned_ip_id: Some(u32::from(OUTER_ID)),
        };
        f.settings(settings_flags::FAST_PATH);
        let peer = |id| {
            if id == peer_tunnel {
                LO
            } else {
                NO_DEVICE + 10 + id
            }
        };
        f.maps
            .set_tunnel(
                TUNNEL_A,
                &tunnel(
                    CPE_GRE,
                    DC1_GRE,
                    DC1_IPSEC,
                    REQID_A,
                    DC1_TUNNEL,
                    peer(TUNNEL_A),
                ),
            )
            .expect("tunnel A");
        let mut b = tunnel(
            CPE_GRE,
            DC2_GRE,
            DC2_IPSEC,
            REQID_B,
            DC2_TUNNEL,
            peer(TUNNEL_B),
        );
        b.tunnel_mac = B_TUNNEL_MAC;
        b.peer_mac = B_PEER_MAC;
        b.tunnel_ifindex = NO_DEVICE + 2;
        f.maps.set_tunnel(TUNNEL_B, &b).expect("tunnel B");
        f.maps
            .set_route(prefix(CISCO_NET, 25), 1 << TUNNEL_A)
            .expect("DC1 /25");
        f.maps
            .set_route(prefix([203, 0, 113, 128], 25), 1 << TUNNEL_B)
            .expect("DC2 /25");
        f.maps
            .set_route(prefix(CISCO_NET, 24), (1 << TUNNEL_A) | (1 << TUNNEL_B))
            .expect("/24");
        f.maps
            .add_protected(prefix(CISCO_NET, 24))
            .expect("protected /24");
        for addr in [CPE_GRE, CPE_TUNNEL_A, CPE_LAN] {
            f.maps.add_local_addr(addr.into()).expect("local address");
        }
        Some(f)
    }

    pub fn settings(&mut self, flags: u32) {
        self.maps.set_settings(flags).expect("settings");
    }

    /// Points tunnel `id` at real devices (for the fast paths' route lookups).
    pub fn set_devices(&mut self, id: u32, tunnel_ifindex: u32, peer_ifindex: u32) {
        let mut t = self.maps.tunnel(id).expect("tunnel");
        t.tunnel_ifindex = tunnel_ifindex;
        t.peer_ifindex = peer_ifindex;
        self.maps.set_tunnel(id, &t).expect("tunnel");
    }

    pub fn set_up(&mut self, id: u32, up: bool) {
        self.maps.set_tunnel_up(id, up).expect("tunnel up/down");
    }

    /// Sets every CPU's outer IP ID counter to `next` and lets it count from there.
    pub fn count_outer_ids(&mut self, next: u32) {
        self.pinned_ip_id = None;
        self.set_ip_ids(next);
    }

    /// Every CPU's outer IP ID counter.
    #[must_use]
    pub fn ip_ids(&self) -> Vec<u32> {
        self.ip_ids
            .get(&0, 0)
            .expect("IP_ID")
            .iter()
            .copied()
            .collect()
    }

    fn set_ip_ids(&mut self, next: u32) {
        let cpus = nr_cpus().expect("CPU count");
        let values = PerCpuValues::try_from(vec![next; cpus]).expect("per-CPU values");
        self.ip_ids.set(0, values, 0).expect("IP_ID");
    }

    pub fn maps(&mut self) -> &mut DatapathMaps {
        &mut self.maps
    }

    pub fn run(&mut self, program: Program, frame: &[u8]) -> Outcome {
        self.run_ctx(program, frame, SkbCtx::default())
    }

    pub fn run_ctx(&mut self, program: Program, frame: &[u8], ctx: SkbCtx) -> Outcome {
        self.try_run_ctx(program, frame, ctx).expect("test run")
    }

    /// Runs an XDP program on `frame` as received on `ingress_ifindex` (0: no device).
    pub fn run_xdp(&mut self, program: Program, frame: &[u8], ingress_ifindex: u32) -> Outcome {
        if let Some(id) = self.pinned_ip_id {
            self.set_ip_ids(id);
        }
        let prog = vc_agent::datapath::xdp(&mut self.ebpf, program).expect("XDP program");
        testrun::run_xdp(prog, frame, ingress_ifindex, 1).expect("test run")
    }

    /// A run the kernel may refuse (some malformed frames).
    pub fn try_run(&mut self, program: Program, frame: &[u8]) -> anyhow::Result<Outcome> {
        self.try_run_ctx(program, frame, SkbCtx::default())
    }

    fn try_run_ctx(
        &mut self,
        program: Program,
        frame: &[u8],
        ctx: SkbCtx,
    ) -> anyhow::Result<Outcome> {
        if let Some(id) = self.pinned_ip_id {
            self.set_ip_ids(id);
        }
        let prog = vc_agent::datapath::classifier(&mut self.ebpf, program)?;
        testrun::run(prog, frame, ctx, 1)
    }

    /// All non-zero verdict counters.
    #[must_use]
    pub fn verdicts(&self) -> Vec<VerdictCount> {
        self.maps.verdicts().expect("verdicts")
    }

    /// Asserts that the only counted verdict is `packets` × (`hook`, `reason`): an outcome
    /// or a drop reason.
    #[track_caller]
    pub fn assert_verdicts(&self, hook: Hook, reason: impl Into<Counted>, packets: u64) {
        self.assert_all_verdicts(&[(hook, reason.into(), packets)]);
    }

    /// The non-zero verdict counters are exactly `expected` (in counter order).
    pub fn assert_all_verdicts(&self, expected: &[(Hook, Counted, u64)]) {
        let seen: Vec<_> = self
            .verdicts()
            .into_iter()
            .map(|v| (v.hook, v.reason, v.packets))
            .collect();
        assert_eq!(seen, expected, "verdict counters");
    }

    #[must_use]
    pub fn stats(&self, id: u32) -> TunnelStats {
        self.maps.tunnel_stats(id).expect("tunnel stats")
    }
}

fn tunnel(
    local: [u8; 4],
    remote: [u8; 4],
    ipsec: [u8; 4],
    reqid: u32,
    dc_tunnel: [u8; 4],
    peer_ifindex: u32,
) -> Tunnel {
    Tunnel {
        flags: tunnel_flags::CONFIGURED | tunnel_flags::UP,
        local_gre: ipv4(local),
        remote_gre: ipv4(remote),
        remote_ipsec: ipv4(ipsec),
        reqid,
        dc_tunnel_ip: ipv4(dc_tunnel),
        cisco_net: ipv4(CISCO_NET),
        cisco_mask: ipv4_mask(24),
        tunnel_ifindex: NO_DEVICE + 1,
        peer_ifindex,
        tunnel_mac: A_TUNNEL_MAC,
        peer_mac: A_PEER_MAC,
        mtu: MTU,
        mss: MSS,
    }
}

/// A LAN frame carrying `packet`.
#[must_use]
pub fn lan_frame(packet: &[u8]) -> Vec<u8> {
    ether_ipv4(LAN_MAC, HOST_MAC, packet)
}

/// A frame routed into tunnel A's interface, as its hidden peer receives it.
#[must_use]
pub fn tunnel_frame(packet: &[u8]) -> Vec<u8> {
    ether_ipv4(A_PEER_MAC, A_TUNNEL_MAC, packet)
}

/// What the DC sends: `inner` in GRE from `dc_gre` to our GRE address, in a WAN frame.
#[must_use]
pub fn wan_gre_frame(dc_gre: [u8; 4], inner: &[u8]) -> Vec<u8> {
    let gre = packet::gre(0, 0x0800, &[], inner);
    wan_frame(&Ipv4::new(dc_gre, CPE_GRE, packet::IPPROTO_GRE).packet(&gre))
}

#[must_use]
pub fn wan_frame(packet: &[u8]) -> Vec<u8> {
    ether_ipv4([2, 0, 0, 0, 0xee, 1], [2, 0, 0, 0, 0xee, 2], packet)
}

/// The outer IPv4 + GRE that tunnel A puts in front of `inner` when the stack forwards the
/// result to the WAN: TTL 65, so that it leaves with 64 as the kernel's GRE sends it; the
/// ID from the (pinned) counter; DSCP, ECN and DF from the inner header.
#[must_use]
pub fn expected_encap(remote: [u8; 4], inner: &[u8]) -> Vec<u8> {
    let tos = inner[1];
    let df = u16::from_be_bytes([inner[6], inner[7]]) & 0x4000;
    let outer = Ipv4::new(CPE_GRE, remote, packet::IPPROTO_GRE)
        .tos(tos)
        .id(OUTER_ID)
        .frag_off(df)
        .ttl(65);
    outer.packet(&packet::gre(0, 0x0800, &[], inner))
}

/// The IPv4 packet after the Ethernet header of `frame`.
#[must_use]
pub fn l3(frame: &[u8]) -> &[u8] {
    &frame[14..]
}
