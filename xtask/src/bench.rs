//! `cargo xtask bench`: runs the benchmarks and writes their figures to BENCHMARKS.md.
use std::{fmt::Write as _, fs, path::Path, process::Command};

use anyhow::{Context, Result, bail};
use clap::Args;

use crate::{ebpf, util::workspace_root};

/// The benchmark sections, in the order they appear in BENCHMARKS.md.
const SECTIONS: &[&str] = &["bpf", "iperf", "paper", "vm"];

#[derive(Args)]
pub struct Options {
    /// Only these sections (bpf, iperf, paper, vm), printed and not written to BENCHMARKS.md.
    #[arg(long, value_delimiter = ',')]
    section: Vec<String>,
    /// Hardware mode: compare vc and Linux `ip_gre` + XFRM on this box's NICs (or a veth pair)
    /// and write target/BENCHMARKS-hw.md instead (see docs/benchmarks.md).
    #[arg(long)]
    hw: bool,
    /// Hardware mode: the CPE's WAN NIC, cabled to --dc-if.
    #[arg(long, requires_all = ["hw", "dc_if"])]
    wan_if: Option<String>,
    /// Hardware mode: the NIC that plays the DC's end of the cable.
    #[arg(long, requires_all = ["hw", "wan_if"])]
    dc_if: Option<String>,
    /// Hardware mode in the test VM, on a veth pair (for a kernel without `ip_gre` or ESP).
    #[arg(long, requires = "hw")]
    in_vm: bool,
}

/// `cargo run --release -p vc-benches --bin vc-bench -- <args>`, its stdout.
fn vc_bench(root: &Path, args: &[&str]) -> Result<String> {
    let out = Command::new("cargo")
        .current_dir(root)
        .args([
            "run",
            "--quiet",
            "--release",
            "-p",
            "vc-benches",
            "--bin",
            "vc-bench",
            "--",
        ])
        .args(args)
        .output()
        .context("running vc-bench")?;
    if !out.status.success() {
        bail!(
            "vc-bench {} failed:\n{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    print!("{text}");
    Ok(text)
}

pub fn run(opts: &Options) -> Result<()> {
    // vc-agent's build.rs embeds this very build (same definition, same target/bpf).
    ebpf::build()?;
    let root = workspace_root();
    if opts.hw {
        let mut args = vec!["hw"];
        if let (Some(wan), Some(dc)) = (&opts.wan_if, &opts.dc_if) {
            args.extend(["--wan-if", wan, "--dc-if", dc]);
        }
        if opts.in_vm {
            args.push("--in-vm");
        }
        let text = vc_bench(&root, &args)?;
        let path = root.join("target/BENCHMARKS-hw.md");
        fs::write(&path, format!("# Benchmarks, hardware mode\n\n{text}"))
            .with_context(|| format!("writing {}", path.display()))?;
        eprintln!("wrote {}", path.display());
        return Ok(());
    }
    if !opts.section.is_empty() {
        for section in &opts.section {
            if !SECTIONS.contains(&section.as_str()) {
                bail!("no benchmark section {section}: expected one of {SECTIONS:?}");
            }
            vc_bench(&root, &[section])?;
        }
        return Ok(());
    }
    let mut doc = String::from(
        "# Benchmarks\n\nWritten by `cargo xtask bench` (as root). Figures are ratios to a \
         baseline measured in the same run: these machines are shared and noisy, so compare \
         ratios, not absolute numbers across runs. How the figures are taken, and the \
         hardware mode: docs/benchmarks.md.\n\n",
    );
    for section in SECTIONS {
        let text = vc_bench(&root, &[section])?;
        writeln!(doc, "{}", text.trim_end())?;
        doc.push('\n');
    }
    let path = root.join("BENCHMARKS.md");
    fs::write(&path, doc).with_context(|| format!("writing {}", path.display()))?;
    eprintln!("wrote {}", path.display());
    Ok(())
}
