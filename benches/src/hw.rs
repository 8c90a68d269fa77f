//! Hardware mode: the VM section's comparison on a real CPE. Two NICs of the box are cabled
//! to each other (or to a second box's pair, bridged); one becomes the CPE's WAN device, the
//! other the DC's, each in its own namespace, with the LAN host on a veth. Every setup is
//! built afresh for its turn in each round (the NICs can belong to one lab at a time), and
//! the report has the VM section's shape plus what only real cores show: several flows, and
//! how throughput scales from one CPU to all.
//!
//! `vc-bench hw --wan-if A --dc-if B` on the box; without the interfaces, on a veth pair
//! made for the purpose. The kernel needs `ip_gre` and ESP (a stock distribution kernel);
//! `--in-vm` runs it in the test VM (host clock, 2 vCPUs) where this host's kernel has
//! neither.
use std::process::Command;

use anyhow::{Context, Result, bail};
use vc_fixtures::vm_lab::{Lab, WanLink};
use vc_testkit::vm::qemu::GuestClock;

use crate::{
    compare::{Measure, Setups, compare},
    vm::{SETUP_NAMES, design_verdict, rounds, run_in_vm, setup, verdict},
};

const ROUNDS: usize = 5;
const SECONDS: u32 = 5;
/// The veth pair that stands in for two cabled NICs.
const VETH: [&str; 2] = ["vcbhw-cpe", "vcbhw-dc"];

/// One TCP stream; four; four with iperf3 on CPU 0 (one core's worth); then the costs.
const MEASURES: [Measure; 5] = [
    Measure::THROUGHPUT,
    Measure::Throughput {
        streams: 4,
        cpu: None,
    },
    Measure::Throughput {
        streams: 4,
        cpu: Some(0),
    },
    Measure::TcpCost,
    Measure::VoiceCost,
];

#[derive(Debug, Default, PartialEq, Eq)]
struct Options {
    wan_if: Option<String>,
    dc_if: Option<String>,
    in_vm: bool,
}

fn options(args: &[String]) -> Result<Options> {
    let mut o = Options::default();
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--wan-if" => o.wan_if = Some(args.next().context("--wan-if NAME")?.clone()),
            "--dc-if" => o.dc_if = Some(args.next().context("--dc-if NAME")?.clone()),
            "--in-vm" => o.in_vm = true,
            other => bail!("vc-bench hw: unknown argument {other}"),
        }
    }
    if o.wan_if.is_some() != o.dc_if.is_some() {
        bail!("vc-bench hw: --wan-if and --dc-if go together (the two ends of one cable)");
    }
    if o.in_vm && o.wan_if.is_some() {
        bail!("vc-bench hw: --in-vm runs on a veth pair, not on NICs");
    }
    Ok(o)
}

/// The setups, each built when its turn comes and dropped before the next (which frees the
/// NICs for it).
struct Rebuilt {
    link: WanLink,
    current: Option<(usize, Lab)>,
}

impl Setups for Rebuilt {
    fn names(&self) -> Vec<String> {
        SETUP_NAMES.iter().map(ToString::to_string).collect()
    }

    fn lab(&mut self, s: usize) -> Result<&Lab> {
        if self.current.as_ref().is_none_or(|(c, _)| *c != s) {
            self.current = None;
            self.current = Some((s, setup(s, &self.link)?));
        }
        Ok(&self.current.as_ref().expect("just built").1)
    }
}

/// Whether this kernel has what the baseline and the SAs need, or what it lacks.
fn kernel_ready() -> Result<(), String> {
    let missing: Vec<&str> = ["ip_gre", "esp4"]
        .into_iter()
        .filter(|m| {
            let loaded = std::fs::read_to_string("/proc/modules")
                .is_ok_and(|l| l.lines().any(|l| l.starts_with(&format!("{m} "))));
            let builtin = std::path::Path::new(&format!("/sys/module/{m}")).exists();
            let loadable = Command::new("modprobe")
                .arg(m)
                .status()
                .is_ok_and(|s| s.success());
            !(loaded || builtin || loadable)
        })
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!("this kernel lacks {}", missing.join(" and ")))
    }
}

pub fn run(args: &[String]) -> Result<()> {
    let o = options(args)?;
    if o.in_vm {
        return run_in_vm("hw-inside", GuestClock::Host, "host");
    }
    measure(&o)
}

/// In the guest of `--in-vm`.
pub fn inside() -> Result<()> {
    measure(&Options::default())
}

fn measure(o: &Options) -> Result<()> {
    if !vc_testkit::privilege::is_root() {
        bail!("vc-bench hw needs root");
    }
    kernel_ready().map_err(|why| {
        anyhow::anyhow!("vc-bench hw: {why}; run it on the CPE's kernel, or here with --in-vm")
    })?;
    let (link, _veth) = match (&o.wan_if, &o.dc_if) {
        (Some(cpe), Some(dc)) => (
            WanLink::Cabled {
                cpe: cpe.clone(),
                dc: dc.clone(),
            },
            None,
        ),
        _ => (
            WanLink::Cabled {
                cpe: VETH[0].into(),
                dc: VETH[1].into(),
            },
            Some(VethPair::new()?),
        ),
    };
    let rounds = rounds(ROUNDS)?;
    let mut setups = Rebuilt {
        link: link.clone(),
        current: None,
    };
    let c = compare(&mut setups, &MEASURES, rounds, SECONDS)?;
    drop(setups);

    let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    println!("## Hardware mode: vc against Linux ip_gre + XFRM on this box\n");
    println!(
        "`vc-bench hw` · kernel {} · {cpus} CPUs · WAN link: {} · {rounds} interleaved rounds \
         (setups in rotating order, each built afresh for its turn), {SECONDS} s per transfer \
         · each ratio is to the baseline of the same round; cells show the median ratio and \
         (min–max) over the rounds\n",
        std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .unwrap_or_default()
            .trim(),
        match &o.wan_if {
            Some(a) => format!("{a} cabled to {}", o.dc_if.as_deref().unwrap_or("?")),
            None => "a veth pair standing in for two cabled NICs".into(),
        }
    );
    print!("{}", c.tables());
    let four = MEASURES[1];
    let pinned = MEASURES[2];
    println!("### Scaling: 4 TCP streams on all CPUs ÷ on CPU 0\n");
    println!("| CPE | LAN → DC | DC → LAN |\n|---|---:|---:|");
    for (s, name) in c.names.iter().enumerate() {
        let scale = |d| c.median_rate(four, d, s) / c.median_rate(pinned, d, s);
        println!("| {name} | {:.2}× | {:.2}× |", scale(0), scale(1));
    }
    println!(
        "\nThe LAN host and the DC are namespaces on the same box: their share of the CPUs is \
         in every figure, the same for every setup.\n"
    );
    print!("{}", verdict(&c));
    print!("{}", design_verdict(&c));
    Ok(())
}

/// A veth pair in the root namespace, deleted on drop if the lab has not taken it apart.
struct VethPair;

impl VethPair {
    fn new() -> Result<Self> {
        let ok = Command::new("ip")
            .args([
                "link", "add", VETH[0], "type", "veth", "peer", "name", VETH[1],
            ])
            .status()
            .context("ip link add")?
            .success();
        if !ok {
            bail!("cannot create the veth pair {VETH:?}");
        }
        Ok(VethPair)
    }
}

impl Drop for VethPair {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["link", "del", VETH[0]])
            .stderr(std::process::Stdio::null())
            .status();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn interfaces_come_in_pairs() {
        assert_eq!(
            options(&args("--wan-if eno1 --dc-if eno2")).unwrap(),
            Options {
                wan_if: Some("eno1".into()),
                dc_if: Some("eno2".into()),
                in_vm: false
            }
        );
        assert!(options(&args("--wan-if eno1")).is_err());
        assert!(options(&args("--in-vm --wan-if a --dc-if b")).is_err());
        assert!(options(&args("--bogus")).is_err());
        assert!(options(&args("--in-vm")).unwrap().in_vm);
    }
}
