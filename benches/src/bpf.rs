//! Per-packet cost of each program, by `BPF_PROG_TEST_RUN`, as a ratio to a no-op classifier.
//!
//! A test run repeated in the kernel reuses one skb, so a program that rewrites the packet
//! would see its own output from the second run on (an encapsulated packet, say). Every
//! sample is therefore one run on a fresh copy of the packet, timed by the kernel around the
//! program alone; the figure is the mean over many samples. The no-op baseline is measured
//! the same way, so the kernel's timer overhead is in both and the ratio compares like with
//! like.
use std::time::Instant;

use anyhow::Result;
use vc_agent::datapath::Program;
use vc_common::settings_flags;
use vc_fixtures::bpf_test_run::{
    CPE_GRE, CPE_TUNNEL_A, DC1_GRE, DC1_HOST, Fixture, INTERNET_HOST, LAN_HOST, lan_frame,
    tunnel_frame, wan_frame, wan_gre_frame,
};
use vc_testkit::packet::{self, IPPROTO_ESP, Ipv4, Tcp, udp_in_ipv4};

const SAMPLES: u32 = 20_000;
const ROUNDS: u32 = 3;

struct Case {
    name: &'static str,
    program: Program,
    frame: Vec<u8>,
    settings: u32,
}

/// The packets of one Virtual Connect call: 200-byte RTP in each direction, a SYN, and the
/// traffic each program only looks at.
fn cases() -> Vec<Case> {
    let rtp_out = udp_in_ipv4(
        &Ipv4::new(LAN_HOST, DC1_HOST, 0).tos(0xb8),
        16384,
        16384,
        &[0; 172],
    );
    let rtp_in = udp_in_ipv4(
        &Ipv4::new(DC1_HOST, LAN_HOST, 0).tos(0xb8),
        16384,
        16384,
        &[0; 172],
    );
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
        Case {
            name: "no-op classifier (baseline)",
            program: Program::Noop,
            frame: lan_frame(&rtp_out),
            settings: ipsec,
        },
        Case {
            name: "tunnel_tx: encapsulate 200 B RTP",
            program: Program::TunnelTx,
            frame: tunnel_frame(&rtp_out),
            settings: ipsec,
        },
        Case {
            name: "tunnel_tx: clamp MSS + encapsulate SYN",
            program: Program::TunnelTx,
            frame: tunnel_frame(&syn),
            settings: ipsec,
        },
        Case {
            name: "lan_rx: fast path 200 B RTP (LPM, TTL, encap, redirect)",
            program: Program::LanRx,
            frame: lan_frame(&rtp_out),
            settings: ipsec,
        },
        Case {
            name: "lan_rx: not DC traffic (LPM miss)",
            program: Program::LanRx,
            frame: web,
            settings: ipsec,
        },
        Case {
            name: "wan_rx: decapsulate 200 B RTP (GRE-only mode)",
            program: Program::WanRx,
            frame: wan_gre_frame(DC1_GRE, &rtp_in),
            settings: gre_only,
        },
        Case {
            name: "wan_rx: ESP passed to XFRM",
            program: Program::WanRx,
            frame: esp.clone(),
            settings: ipsec,
        },
        Case {
            name: "wan_guard: ESP passes",
            program: Program::WanGuard,
            frame: esp,
            settings: ipsec,
        },
        Case {
            name: "wan_guard: clear GRE dropped",
            program: Program::WanGuard,
            frame: gre_out,
            settings: ipsec,
        },
    ]
}

/// Mean kernel-timed nanoseconds of one run over `SAMPLES` fresh runs.
fn mean_ns(f: &mut Fixture, case: &Case) -> f64 {
    f.settings(case.settings);
    let mut total = 0.0;
    for _ in 0..SAMPLES {
        total += f.run(case.program, &case.frame).duration.as_secs_f64();
    }
    total * 1e9 / f64::from(SAMPLES)
}

pub fn run() -> Result<()> {
    let Some(mut f) = Fixture::new("bpf bench") else {
        anyhow::bail!("the BPF benchmark needs root");
    };
    let cases = cases();
    let started = Instant::now();
    let best = best_ns(&mut f, &cases);
    let baseline = best[0];
    println!("## Per-program cost (`BPF_PROG_TEST_RUN`)\n");
    println!(
        "`cargo xtask bench` · kernel {} · {SAMPLES} single runs per case on fresh packets, best of {ROUNDS} interleaved rounds · {:.1} s\n",
        kernel_release(),
        started.elapsed().as_secs_f64()
    );
    println!("| case | ns/packet | × no-op |\n|---|---:|---:|");
    for (case, ns) in cases.iter().zip(&best) {
        println!("| {} | {ns:.1} | {:.2} |", case.name, ns / baseline);
    }
    println!(
        "\nThe no-op figure is the kernel's fixed cost of timing one run; the ratios say how much \
         each program adds to it. Throughput is judged end to end (see the iperf3 sections)."
    );
    Ok(())
}

/// Interleaved rounds, best (lowest) mean per case: noise on a shared machine only adds.
fn best_ns(f: &mut Fixture, cases: &[Case]) -> Vec<f64> {
    let mut best = vec![f64::INFINITY; cases.len()];
    for _ in 0..ROUNDS {
        for (case, best) in cases.iter().zip(&mut best) {
            *best = best.min(mean_ns(f, case));
        }
    }
    best
}

/// Each case's name and ns/packet, measured as `run` measures them: for other sections (the
/// estimate on paper), which must not parse this section's Markdown.
pub fn figures() -> Result<Vec<(&'static str, f64)>> {
    let Some(mut f) = Fixture::new("bpf figures") else {
        anyhow::bail!("the BPF benchmark needs root");
    };
    let cases = cases();
    let best = best_ns(&mut f, &cases);
    Ok(cases.iter().map(|c| c.name).zip(best).collect())
}

fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map_or_else(|_| "?".into(), |s| s.trim().to_string())
}
