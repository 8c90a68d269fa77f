//! vc + XFRM against Linux `ip_gre` + XFRM on the CPE, same SAs, same boot of the test VM
//! (Debian's 6.1 kernel under QEMU). Software-emulated CPUs make absolute figures
//! meaningless; the ratio is the result.
use std::time::Duration;

use anyhow::{Context, Result, bail};
use vc_fixtures::vm_lab::{Cpe, DC_HOST, LAN_HOST, Lab};
use vc_testkit::vm::{self, VmRun};

use crate::iperf::iperf3;

const ROUNDS: usize = 3;

/// On the host: boots the VM running `vc-bench vm-inside` and prints what it measured.
pub fn run() -> Result<()> {
    vm::ready().map_err(|why| anyhow::anyhow!("cannot boot the test VM: {why}"))?;
    let exe = std::env::current_exe().context("own path")?;
    let exe = exe.to_str().context("path")?;
    let outcome = VmRun::new("bench-vm", &[exe, "vm-inside"])
        .timeout(Duration::from_mins(15))
        .run()?;
    if !outcome.passed() {
        bail!("the VM benchmark failed:\n{}", outcome.report());
    }
    for line in outcome.output.lines().skip_while(|l| !l.starts_with("## ")) {
        println!("{line}");
    }
    Ok(())
}

/// In the guest.
pub fn inside() -> Result<()> {
    let kernel = Lab::new(Cpe::KernelGre);
    let fast = Lab::new(Cpe::Vc);
    let slow = Lab::new(Cpe::Vc);
    // IPsec mode (flags 0) without the fast path.
    slow.maps().set_settings(0)?;
    let setups = [
        ("Linux ip_gre + XFRM (baseline)", &kernel),
        ("vc + XFRM, LAN fast path", &fast),
        ("vc + XFRM, tunnel interface (slow path)", &slow),
    ];
    let mut up = vec![Vec::new(); setups.len()];
    let mut down = vec![Vec::new(); setups.len()];
    for _ in 0..ROUNDS {
        for (i, (_, lab)) in setups.iter().enumerate() {
            up[i].push(iperf3(&lab.lan, &lab.dc, DC_HOST, false)?);
            down[i].push(iperf3(&lab.dc, &lab.lan, LAN_HOST, false)?);
        }
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let up: Vec<f64> = up.into_iter().map(median).collect();
    let down: Vec<f64> = down.into_iter().map(median).collect();
    println!("## GRE over IPsec in the VM: vc against Linux ip_gre, same XFRM\n");
    println!(
        "`cargo xtask bench` · Debian {} under QEMU (TCG, 2 vCPUs, software AES-GCM) · iperf3 \
         TCP, median of {ROUNDS} interleaved rounds · ratios only: the CPUs are emulated\n",
        std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .unwrap_or_default()
            .trim()
    );
    println!(
        "| CPE | LAN → DC Mbit/s | × baseline | DC → LAN Mbit/s | × baseline |\n|---|---:|---:|---:|---:|"
    );
    for (i, (name, _)) in setups.iter().enumerate() {
        println!(
            "| {name} | {:.0} | {:.2} | {:.0} | {:.2} |",
            up[i] * 1000.0,
            up[i] / up[0],
            down[i] * 1000.0,
            down[i] / down[0]
        );
    }
    println!("\nGoal: ≥ 1.0× (vc must not be slower than the kernel's own GRE).");
    Ok(())
}
