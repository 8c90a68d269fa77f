//! vc + XFRM against Linux `ip_gre` + XFRM on the CPE, same SAs, same boot of the test VM
//! (Debian's 6.1 kernel under QEMU). Emulated CPUs make absolute figures meaningless; the
//! result is each setup's ratio to the baseline of the same round, and the spread of those
//! ratios over the rounds (see `compare`).
use std::time::Duration;

use anyhow::{Context, Result, bail};
use vc_fixtures::vm_lab::{Cpe, Lab, WanLink};
use vc_testkit::vm::{self, VmRun, qemu::GuestClock};

use crate::{
    compare::{Built, Comparison, DIRECTIONS, Measure, compare},
    verdict::Verdict,
};

/// Rounds unless `VC_BENCH_ROUNDS` says otherwise.
const ROUNDS: usize = 5;
/// Seconds of guest time per transfer.
const SECONDS: u32 = 3;
/// `-icount shift`: one guest instruction is 2^SHIFT ns of guest time (a 500 MHz guest CPU).
const ICOUNT_SHIFT: u8 = 1;

/// What drives the guest's clock (`VC_BENCH_CLOCK`: `icount`, the default, or `host`).
fn clock() -> Result<(&'static str, GuestClock)> {
    match std::env::var("VC_BENCH_CLOCK").as_deref() {
        Ok("icount") | Err(_) => Ok((
            "icount",
            GuestClock::Instructions {
                shift: ICOUNT_SHIFT,
            },
        )),
        Ok("host") => Ok(("host", GuestClock::Host)),
        Ok(other) => bail!("VC_BENCH_CLOCK={other}: expected icount or host"),
    }
}

/// `VC_BENCH_ROUNDS`, else `default`.
pub fn rounds(default: usize) -> Result<usize> {
    std::env::var("VC_BENCH_ROUNDS").map_or(Ok(default), |r| {
        r.parse().with_context(|| format!("VC_BENCH_ROUNDS={r}"))
    })
}

/// On the host: boots the VM running `vc-bench <inside>` and prints what it measured.
pub fn run_in_vm(inside: &str, clock: GuestClock, clock_name: &str) -> Result<()> {
    vm::ready().map_err(|why| anyhow::anyhow!("cannot boot the test VM: {why}"))?;
    let exe = std::env::current_exe().context("own path")?;
    let exe = exe.to_str().context("path")?;
    let outcome = VmRun::new(&format!("bench-{inside}"), &[exe, inside])
        .clock(clock)
        .env("VC_BENCH_CLOCK", clock_name)
        .timeout(Duration::from_hours(2))
        .run()?;
    if !outcome.passed() {
        bail!("the VM benchmark failed:\n{}", outcome.report());
    }
    for line in outcome.output.lines().skip_while(|l| !l.starts_with("## ")) {
        println!("{line}");
    }
    println!(
        "\nWall time of the VM run on the host: {:.0} s.",
        outcome.wall.as_secs_f64()
    );
    Ok(())
}

pub fn run() -> Result<()> {
    let (name, clock) = clock()?;
    run_in_vm("vm-inside", clock, name)
}

/// Setup `s` of [`SETUP_NAMES`] on `link`.
pub fn setup(s: usize, link: &WanLink) -> Result<Lab> {
    let lab = Lab::on(
        match s {
            0 => Cpe::KernelGre,
            3 => Cpe::VcXfrmInterface,
            _ => Cpe::Vc,
        },
        link,
    );
    if s == 2 {
        // IPsec mode (flags 0) without the fast path.
        lab.maps().set_settings(0)?;
    }
    Ok(lab)
}

/// The CPEs of the comparison, in one boot: the baseline first, the one-pass prototype last.
pub fn labs() -> Result<[Lab; 4]> {
    Ok([
        setup(0, &WanLink::Veth)?,
        setup(1, &WanLink::Veth)?,
        setup(2, &WanLink::Veth)?,
        setup(3, &WanLink::Veth)?,
    ])
}

pub const SETUP_NAMES: [&str; 4] = [
    "Linux ip_gre + XFRM (baseline)",
    "vc + XFRM, LAN fast path",
    "vc + XFRM, tunnel interface (slow path)",
    "prototype: fast path into an XFRM interface (one pass; inbound by ip_gre)",
];

/// The claim to decide: vc ≥ 1.05× `ip_gre` + XFRM with the fast path, ≥ 1.0× without, both
/// directions, by throughput and by CPU cost per GB.
pub fn verdict(c: &Comparison) -> Verdict {
    let mut claims = Vec::new();
    for (s, goal) in [(1, 1.05), (2, 1.0)] {
        for measure in [Measure::THROUGHPUT, Measure::TcpCost, Measure::VoiceCost] {
            for d in 0..DIRECTIONS.len() {
                claims.push(c.claim(measure, d, s, goal));
            }
        }
    }
    Verdict {
        title: "vc ≥ 1.05× Linux ip_gre + XFRM with the fast path, ≥ 1.0× without, both \
                directions, by throughput and by CPU cost per GB"
            .into(),
        claims,
    }
}

/// The design question: does the one-pass prototype (setup 3) beat vc's current fast path
/// (setup 1) in the same rounds? It is adopted only if it does, in both directions.
pub fn design_verdict(c: &Comparison) -> Verdict {
    let mut claims = Vec::new();
    for measure in [Measure::THROUGHPUT, Measure::TcpCost, Measure::VoiceCost] {
        for d in 0..DIRECTIONS.len() {
            claims.push(c.claim_against(measure, d, (3, 1), 1.0));
        }
    }
    Verdict {
        title: "the one-pass prototype ≥ 1.0× vc's current fast path, both directions, by \
                throughput and by CPU cost per GB (ratios between the two in each round)"
            .into(),
        claims,
    }
}

/// In the guest.
pub fn inside() -> Result<()> {
    let rounds = rounds(ROUNDS)?;
    let (clock, _) = clock()?;
    let labs = labs()?;
    let mut setups = Built(SETUP_NAMES.iter().copied().zip(&labs).collect());
    let measures = [Measure::THROUGHPUT, Measure::TcpCost, Measure::VoiceCost];
    let c = compare(&mut setups, &measures, rounds, SECONDS)?;

    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let clock_text = if clock == "icount" {
        format!(
            "QEMU TCG with `-icount shift={ICOUNT_SHIFT},sleep=on` (one vCPU): while the guest \
             works its clock counts its instructions, so CPU-bound figures do not depend on \
             the host's load (chosen over the host's clock, on which the same comparison moved \
             by 30 % from one machine to another and from run to run with the load of other \
             processes)"
        )
    } else {
        "QEMU TCG on the host's clock (2 vCPUs): guest figures move with the host's load"
            .to_string()
    };
    println!("## GRE over IPsec in the VM: vc against Linux ip_gre, same XFRM\n");
    println!(
        "`cargo xtask bench` · Debian {} · {clock_text} · software AES-GCM (same SAs for \
         all) · {rounds} interleaved rounds (setups in rotating order), {SECONDS} s of guest \
         time per transfer · each ratio is to the baseline of the same round; cells show the \
         median ratio and (min–max) over the rounds\n",
        kernel.trim()
    );
    print!("{}", c.tables());
    print!("{}", verdict(&c));
    print!("{}", design_verdict(&c));
    Ok(())
}
