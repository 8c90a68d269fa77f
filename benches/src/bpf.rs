//! Per-packet cost of each program, by `BPF_PROG_TEST_RUN`, as a ratio to a no-op classifier.
//!
//! A test run repeated in the kernel reuses one skb, so a program that rewrites the packet
//! would see its own output from the second run on (an encapsulated packet, say). Every
//! sample is therefore one run on a fresh copy of the packet, timed by the kernel around the
//! program alone; a round's figure is the mean over many samples. The no-op baseline is
//! measured the same way, so the kernel's timer overhead is in both and the ratio compares
//! like with like.
//!
//! The machine is shared: a neighbour's burst inflates whatever case runs during it. The
//! cases are therefore measured in many short interleaved rounds, each case's ratio taken to
//! the no-op of its own round, and the median of those ratios is the figure (min and max
//! show the spread). A tuning step is judged by the medians.
//!
//! It runs in a namespace of its own with the devices, routes and neighbours the fast paths
//! look up, so that GRE-only mode's cases take the path they take in production (a FIB hit,
//! straight to the WAN or the LAN). XDP programs are compared with a no-op XDP program.
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use vc_agent::datapath::Program;
use vc_common::settings_flags;
use vc_fixtures::bpf_test_run::{
    CPE_GRE, CPE_TUNNEL_A, DC1_GRE, DC1_HOST, Fixture, INTERNET_HOST, LAN_HOST, TUNNEL_A,
    lan_frame, tunnel_frame, wan_frame, wan_gre_frame,
};
use vc_testkit::{
    NetNs,
    packet::{self, IPPROTO_ESP, Ipv4, Tcp, udp_in_ipv4},
    testrun::SkbCtx,
};

use crate::stats::{self, Spread};

const SAMPLES: u32 = 3_000;
const ROUNDS: usize = 41;

struct Case {
    name: &'static str,
    program: Program,
    frame: Vec<u8>,
    settings: u32,
    /// The no-op this case is a ratio to: the TC one, or (XDP programs) the XDP one.
    baseline: usize,
}

impl Case {
    fn new(name: &'static str, program: Program, frame: Vec<u8>, settings: u32) -> Self {
        Case {
            name,
            program,
            frame,
            settings,
            baseline: if program.is_xdp() { XDP_NOOP } else { TC_NOOP },
        }
    }
}

/// Indexes of the two baselines in [`cases`].
const TC_NOOP: usize = 0;
const XDP_NOOP: usize = 1;
/// Test runs of XDP programs arrive on loopback, as the TC ones do.
const LO: u32 = 1;

/// The packets of one Virtual Connect call: 200-byte RTP in each direction, a SYN, and the
/// traffic each program only looks at.
/// A 200-byte RTP packet (EF), as a call carries it.
fn rtp(src: [u8; 4], dst: [u8; 4]) -> Vec<u8> {
    udp_in_ipv4(&Ipv4::new(src, dst, 0).tos(0xb8), 16384, 16384, &[0; 172])
}

fn cases() -> Vec<Case> {
    let (rtp_out, rtp_in) = (rtp(LAN_HOST, DC1_HOST), rtp(DC1_HOST, LAN_HOST));
    let syn = Tcp::syn(1460)
        .options(&[1, 3, 3, 7, 4, 2, 2, 4, 5, 0xb4])
        .in_ipv4(&Ipv4::new(CPE_TUNNEL_A, DC1_HOST, 0), b"");
    let esp = wan_frame(&Ipv4::new(DC1_GRE, CPE_GRE, IPPROTO_ESP).packet(&[0; 200]));
    let web = lan_frame(&udp_in_ipv4(
        &Ipv4::new(LAN_HOST, INTERNET_HOST, 0),
        1,
        443,
        &[0; 172],
    ));
    let gre_out = wan_frame(
        &Ipv4::new(CPE_GRE, DC1_GRE, packet::IPPROTO_GRE).packet(&packet::gre(
            0,
            0x0800,
            &[],
            &rtp_out,
        )),
    );
    let gre_only = settings_flags::EXTERNAL_IPSEC | settings_flags::FAST_PATH;
    let ipsec = settings_flags::FAST_PATH;
    vec![
        Case::new(
            "no-op classifier (baseline)",
            Program::Noop,
            lan_frame(&rtp_out),
            ipsec,
        ),
        Case::new(
            "no-op XDP program (XDP baseline)",
            Program::XdpNoop,
            lan_frame(&rtp_out),
            ipsec,
        ),
        Case::new(
            "tunnel_tx: encapsulate 200 B RTP",
            Program::TunnelTx,
            tunnel_frame(&rtp_out),
            ipsec,
        ),
        Case::new(
            "tunnel_tx: clamp MSS + encapsulate SYN",
            Program::TunnelTx,
            tunnel_frame(&syn),
            ipsec,
        ),
        Case::new(
            "lan_rx: fast path 200 B RTP (LPM, TTL, encap, redirect)",
            Program::LanRx,
            lan_frame(&rtp_out),
            ipsec,
        ),
        Case::new(
            "lan_rx: not DC traffic (LPM miss)",
            Program::LanRx,
            web,
            ipsec,
        ),
        Case::new(
            "wan_rx: decapsulate 200 B RTP (GRE-only mode, FIB, to the LAN)",
            Program::WanRx,
            wan_gre_frame(DC1_GRE, &rtp_in),
            gre_only,
        ),
        Case::new(
            "lan_rx: GRE-only fast path 200 B RTP (+ FIB, straight to the WAN)",
            Program::LanRx,
            lan_frame(&rtp_out),
            gre_only,
        ),
        Case::new(
            "xdp_lan_rx: encapsulate 200 B RTP (LPM, FIB, to the WAN)",
            Program::XdpLanRx,
            lan_frame(&rtp_out),
            gre_only,
        ),
        Case::new(
            "xdp_wan_rx: decapsulate 200 B RTP (FIB, to the LAN)",
            Program::XdpWanRx,
            wan_gre_frame(DC1_GRE, &rtp_in),
            gre_only,
        ),
        Case::new(
            "wan_rx: ESP passed to XFRM",
            Program::WanRx,
            esp.clone(),
            ipsec,
        ),
        Case::new("wan_guard: ESP passes", Program::WanGuard, esp, ipsec),
        Case::new(
            "wan_guard: clear GRE dropped",
            Program::WanGuard,
            gre_out,
            ipsec,
        ),
    ]
}

/// Mean kernel-timed nanoseconds of one run over `SAMPLES` fresh runs. What enters tunnel
/// A's interface arrives on its hidden peer, `peer`.
fn mean_ns(f: &mut Fixture, case: &Case, peer: u32) -> f64 {
    f.settings(case.settings);
    let mut total = 0.0;
    for _ in 0..SAMPLES {
        let out = if case.program.is_xdp() {
            f.run_xdp(case.program, &case.frame, LO)
        } else if case.program == Program::TunnelTx {
            let ctx = SkbCtx {
                ifindex: peer,
                ..SkbCtx::default()
            };
            f.run_ctx(case.program, &case.frame, ctx)
        } else {
            f.run(case.program, &case.frame)
        };
        total += out.duration.as_secs_f64();
    }
    total * 1e9 / f64::from(SAMPLES)
}

/// The CPE's devices in a namespace of the bench's own: the WAN with its gateway, the LAN
/// with the host, tunnel A's pair. Returns the namespace and the (LAN, WAN, tunnel, peer)
/// ifindexes.
fn devices() -> Result<(NetNs, [u32; 4])> {
    let ns = NetNs::new("bench")?;
    ns.sh("sysctl -qw net.ipv4.ip_forward=1
         ip link add wan0 type veth peer name wan0p; ip link add lan0 type veth peer name lan0p
         ip link add vc-dc1 type veth peer name vc-dc1p
         for d in wan0 wan0p lan0 lan0p vc-dc1 vc-dc1p; do ip link set $d up; done
         ip addr add 198.51.100.1/24 dev wan0; ip route add default via 198.51.100.254
         ip neigh add 198.51.100.254 lladdr 02:00:00:00:fe:fe dev wan0 nud permanent
         ip addr add 10.1.0.1/24 dev lan0
         ip neigh add 10.1.0.10 lladdr 02:00:00:00:1a:0a dev lan0 nud permanent
         ip addr add 100.64.0.1/30 dev vc-dc1")?;
    let mut ifindex = [0; 4];
    for (i, dev) in ["lan0", "wan0", "vc-dc1", "vc-dc1p"].iter().enumerate() {
        ifindex[i] = ns.ifindex(dev)?;
    }
    Ok((ns, ifindex))
}

/// Every case's kernel-timed ns/packet in each of [`ROUNDS`] interleaved rounds
/// (`ns[case][round]`), measured in the bench's namespace, and how long that took.
struct Samples {
    cases: Vec<Case>,
    ns: Vec<Vec<f64>>,
    elapsed: Duration,
}

fn sample() -> Result<Samples> {
    if !vc_testkit::privilege::is_root() {
        anyhow::bail!("the BPF benchmark needs root");
    }
    let (ns, [lan, wan, tunnel, peer]) = devices()?;
    ns.run_in(move || sample_in(lan, wan, tunnel, peer))?
}

fn sample_in(lan: u32, wan: u32, tunnel: u32, peer: u32) -> Result<Samples> {
    let mut f = Fixture::new("bpf bench").context("root")?;
    f.set_devices(TUNNEL_A, tunnel, peer);
    f.maps().set_xdp_devices(lan, wan)?;
    let cases = cases();
    let started = Instant::now();
    // The no-ops are measured in every round with the others.
    let mut ns = vec![Vec::with_capacity(ROUNDS); cases.len()];
    for _ in 0..ROUNDS {
        for (case, ns) in cases.iter().zip(&mut ns) {
            ns.push(mean_ns(&mut f, case, peer));
        }
    }
    Ok(Samples {
        cases,
        ns,
        elapsed: started.elapsed(),
    })
}

pub fn run() -> Result<()> {
    let Samples { cases, ns, elapsed } = sample()?;
    let baselines = [&ns[TC_NOOP], &ns[XDP_NOOP]];
    println!("## Per-program cost (`BPF_PROG_TEST_RUN`)\n");
    println!(
        "`cargo xtask bench` · kernel {} · {ROUNDS} interleaved rounds of {SAMPLES} single runs \
         per case on fresh packets; ratios to the no-op of the same round · {:.1} s\n",
        kernel_release(),
        elapsed.as_secs_f64()
    );
    println!(
        "| case | ns/packet (median) | × no-op min | × no-op median | × no-op max |\n\
         |---|---:|---:|---:|---:|"
    );
    for (case, ns) in cases.iter().zip(&ns) {
        let ratio = Spread::of(&stats::ratios(ns, baselines[case.baseline]));
        println!(
            "| {} | {:.1} | {:.2} | {:.2} | {:.2} |",
            case.name,
            Spread::of(ns).median,
            ratio.min,
            ratio.median,
            ratio.max
        );
    }
    println!(
        "\nThe no-op figures are the kernel's fixed cost of timing one run; the ratios say how \
         much each program adds to it (XDP programs: to the XDP no-op). Throughput is judged end \
         to end (see the iperf3 sections)."
    );
    Ok(())
}

/// Each case's name and median ns/packet, measured as `run` measures them: for other sections
/// (the estimate on paper), which must not parse this section's Markdown.
pub fn figures() -> Result<Vec<(&'static str, f64)>> {
    let Samples { cases, ns, .. } = sample()?;
    Ok(cases
        .iter()
        .map(|c| c.name)
        .zip(ns.iter().map(|ns| Spread::of(ns).median))
        .collect())
}

fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map_or_else(|_| "?".into(), |s| s.trim().to_string())
}
