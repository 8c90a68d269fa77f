//! End-to-end throughput through vc in GRE-only mode, against plain forwarding over the same
//! hops, measured with iperf3 in the same run (R4: vc must never be the bottleneck).
use std::{net::Ipv4Addr, process::Command, time::Duration};

use anyhow::{Context, Result, bail};
use vc_fixtures::gre_lab::{DC1_HOST, Topology};
use vc_testkit::{NetNs, wait_for};

use crate::{
    stats::{Spread, ratios},
    verdict::{Claim, Verdict},
};

const SECONDS: &str = "4";
/// Rounds of every setup, in an order that rotates from round to round (so no setup always
/// runs right after the same other one); each setup's figure is judged against the baseline
/// of its own round.
const ROUNDS: usize = 5;
/// vc's goal against plain forwarding (TCP and UDP).
const GOAL: f64 = 0.9;
/// UDP datagrams of a size that fits the 1400-byte tunnel MTU without fragmentation.
const UDP_LEN: &str = "1300";

#[derive(Clone, Copy)]
enum Proto {
    Tcp,
    Udp,
}

/// Receiver-side throughput in Gbit/s of one iperf3 run from `client` to `server`.
pub fn iperf3(client: &NetNs, server: &NetNs, dst: Ipv4Addr, udp: bool) -> Result<f64> {
    let bind = dst.to_string();
    let child = server
        .command("iperf3")
        .args(["-s", "-1", "-B", &bind])
        .stdout(std::process::Stdio::null())
        .spawn()
        .context("iperf3 server")?;
    let mut daemon = vc_testkit::Daemon::new(child, "iperf3 server");
    // Slow machines (the emulated VM) take a while to listen.
    wait_for(Duration::from_secs(10), "the iperf3 server", || {
        let listening = server.sh_output("ss -Hltn 'sport = :5201'").ok()?;
        (!listening.stdout.is_empty()).then_some(())
    })?;
    let mut args = vec!["-c", &bind, "-t", SECONDS, "-J"];
    if udp {
        args.extend(["-u", "-b", "0", "-l", UDP_LEN]);
    }
    let out = client
        .command("iperf3")
        .args(&args)
        .output()
        .context("iperf3")?;
    daemon.stop();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).context("iperf3 JSON")?;
    if let Some(error) = report["error"].as_str() {
        bail!("iperf3 {args:?}: {error}");
    }
    report["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .map(|b| b / 1e9)
        .context("no receiver rate in iperf3's report")
}

pub fn run() -> Result<()> {
    if !vc_testkit::privilege::is_root() {
        bail!("the throughput benchmark needs root");
    }
    let plain = Topology::plain();
    let slow = Topology::new(false);
    let fast = Topology::new(true);
    // XDP needs its own veth settings (see `Topology::veths_for_xdp`): it is compared with
    // plain forwarding over veths set up alike, and with the TC fast path on them too. Both
    // get a no-op XDP program on the CPE's veths, so that they pay the copy every XDP
    // program on a veth costs (`Topology::noop_xdp_on_cpe`), as the XDP setup does: the
    // comparison is then of vc's programs, not of the veth's XDP emulation. Frames that
    // copy leaves with a NIC's headroom, so the TC fast path on them also shows what it
    // costs when encapsulating needs no new head (a local sender's UDP has 16 bytes).
    let mut plain_xdp = Topology::plain();
    plain_xdp.veths_for_xdp();
    plain_xdp.noop_xdp_on_cpe();
    let mut fast_xdp_veths = Topology::new(true);
    fast_xdp_veths.veths_for_xdp();
    fast_xdp_veths.noop_xdp_on_cpe();
    let xdp = Topology::with_xdp();
    let setups: [(&str, &Topology); 6] = [
        ("plain forwarding, no vc (baseline)", &plain),
        ("vc GRE-only, tunnel interface (slow path)", &slow),
        ("vc GRE-only, LAN fast path (TC)", &fast),
        (
            "plain forwarding, veths set for XDP + no-op XDP (XDP baseline)",
            &plain_xdp,
        ),
        (
            "vc GRE-only, TC fast path, veths set for XDP + no-op XDP",
            &fast_xdp_veths,
        ),
        ("vc GRE-only, XDP fast paths", &xdp),
    ];
    println!("## Throughput through vc, GRE-only mode (iperf3, namespaces on this host)\n");
    println!(
        "`cargo xtask bench` · LAN host → CPE → WAN router → DC (vc at both tunnel ends; the \
         baseline forwards over the same veth hops without vc) · {SECONDS} s per run, \
         {ROUNDS} interleaved rounds (setups in rotating order) · UDP: {UDP_LEN}-byte \
         datagrams, unlimited rate, receiver's rate · rates are medians; each ratio is to the \
         baseline of the same round, shown as the median and (min–max) over the rounds\n"
    );
    println!(
        "| setup | TCP Gbit/s | × baseline | UDP Gbit/s | × baseline |\n|---|---:|---:|---:|---:|"
    );
    let results = measure(&setups)?;
    // Rows from the fourth on are compared with the XDP baseline.
    let baseline = |i: usize| if i < 3 { 0 } else { 3 };
    let spread = |i: usize, j: usize| -> (Spread, Spread) {
        (
            Spread::of(&ratios(&results[i].0, &results[j].0)),
            Spread::of(&ratios(&results[i].1, &results[j].1)),
        )
    };
    for (i, (name, _)) in setups.iter().enumerate() {
        let (tcp, udp) = spread(i, baseline(i));
        println!(
            "| {name} | {:.2} | {} | {:.2} | {} |",
            Spread::of(&results[i].0).median,
            tcp.cell(),
            Spread::of(&results[i].1).median,
            udp.cell()
        );
    }
    let (fast_tcp, fast_udp) = spread(2, 1);
    let (xdp_tcp, xdp_udp) = spread(5, 4);
    println!(
        "\nFast path vs slow path, same rounds: TCP {}, UDP {}. XDP vs TC fast path on the \
         same veths: TCP {}, UDP {}. The last three rows are ratios to the XDP baseline, whose \
         CPE veths carry a no-op XDP program as the XDP setup's carry vc's: a veth with an XDP \
         program copies every skb the stack hands it into a page with 256 bytes of headroom \
         (a NIC's XDP copies nothing), so that copy is in both. The TC fast path on those \
         veths encapsulates in that headroom; on the default veths a local sender's UDP \
         datagram has 16 bytes, and every encapsulation takes a new head (alloc and copy), \
         which plain forwarding never needs, nor a packet from a NIC (64 bytes or more). \
         Cisco caps a tunnel at 250 Mbit/s (R4).",
        fast_tcp.cell(),
        fast_udp.cell(),
        xdp_tcp.cell(),
        xdp_udp.cell()
    );
    print!("{}", verdict(|i| spread(i, baseline(i))));
    println!("\nHost: {}.", host());
    Ok(())
}

/// Every setup's receiver rates in Gbit/s, (TCP per round, UDP per round), over [`ROUNDS`]
/// rounds in rotating order.
fn measure(setups: &[(&str, &Topology)]) -> Result<Vec<(Vec<f64>, Vec<f64>)>> {
    let mut results = vec![(Vec::new(), Vec::new()); setups.len()];
    for round in 0..ROUNDS {
        for k in 0..setups.len() {
            let i = (k + round) % setups.len();
            let t = setups[i].1;
            for proto in [Proto::Tcp, Proto::Udp] {
                let rate = iperf3(&t.lan, &t.dc1, DC1_HOST, matches!(proto, Proto::Udp))?;
                match proto {
                    Proto::Tcp => results[i].0.push(rate),
                    Proto::Udp => results[i].1.push(rate),
                }
            }
        }
    }
    Ok(results)
}

/// The claims judged, from each setup's (TCP, UDP) ratios to its baseline (`spread`, by
/// setup index).
fn verdict(spread: impl Fn(usize) -> (Spread, Spread)) -> Verdict {
    // The headroom row answers one question, UDP's: its TCP is that of the veths XDP needs.
    let mut claims = Vec::new();
    for (i, what, protos) in [
        (2, "TC fast path", [true, true]),
        (
            4,
            "TC fast path, frames with a NIC's headroom",
            [false, true],
        ),
        (5, "XDP fast paths", [true, true]),
    ] {
        let (tcp, udp) = spread(i);
        for ((proto, spread), judged) in [("TCP", tcp), ("UDP", udp)].into_iter().zip(protos) {
            if judged {
                claims.push(Claim {
                    what: format!("{what}, {proto}"),
                    goal: GOAL,
                    spread,
                });
            }
        }
    }
    Verdict {
        title: format!(
            "vc's fast path ≥ {GOAL}× plain forwarding, TCP and UDP (XDP where it applies)"
        ),
        claims,
    }
}

fn host() -> String {
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let cpus = Command::new("nproc")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    format!("kernel {}, {cpus} CPUs", kernel.trim())
}

/// Diagnostics: one TCP run per setup, then every drop counter vc and the kernel keep.
pub fn diagnose() -> Result<()> {
    let t = Topology::new(true);
    let rate = iperf3(&t.lan, &t.dc1, DC1_HOST, false)?;
    println!("fast path TCP {rate:.2} Gbit/s");
    for (name, maps) in [("cpe", t.cpe_maps()), ("dc1", t.dc_maps(1))] {
        for v in maps.verdicts()? {
            println!("{name} {:?} {:?} {}", v.hook, v.reason, v.packets);
        }
    }
    for ns in [&t.lan, &t.cpe, &t.wan, &t.dc1] {
        println!("--- {}\n{}", ns.name(), ns.sh("nstat -az | grep -iE 'drop|retrans|Prune|Backlog|Ovfl|LostRetransmit|TCPTimeouts' | awk '$2 != 0'; ip -s -s link | grep -A7 -E 'vc|wan0|lan0|eth0|c0|d1' | grep -iE 'vc|wan|lan|eth|c0|d1|drop' | head -40")?);
    }
    Ok(())
}
