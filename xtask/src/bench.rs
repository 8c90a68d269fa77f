//! `cargo xtask bench`: runs the benchmarks and writes their figures to BENCHMARKS.md.
use std::{fmt::Write as _, fs, process::Command};

use anyhow::{Context, Result, bail};

use crate::{ebpf, util::workspace_root};

/// The benchmark sections, in the order they appear in BENCHMARKS.md.
const SECTIONS: &[&str] = &["bpf", "iperf", "vm"];

pub fn run() -> Result<()> {
    // vc-agent's build.rs embeds this very build (same definition, same target/bpf).
    ebpf::build()?;
    let root = workspace_root();
    let mut doc = String::from(
        "# Benchmarks\n\nWritten by `cargo xtask bench` (as root). Figures are ratios to a \
         baseline measured in the same run: these machines are shared and noisy, so compare \
         ratios, not absolute numbers across runs.\n\n",
    );
    for section in SECTIONS {
        let out = Command::new("cargo")
            .current_dir(&root)
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
            .arg(section)
            .output()
            .context("running vc-bench")?;
        if !out.status.success() {
            bail!(
                "vc-bench {section} failed:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let text = String::from_utf8_lossy(&out.stdout);
        print!("{text}");
        writeln!(doc, "{}", text.trim_end())?;
        doc.push('\n');
    }
    let path = root.join("BENCHMARKS.md");
    fs::write(&path, doc).with_context(|| format!("writing {}", path.display()))?;
    eprintln!("wrote {}", path.display());
    Ok(())
}
