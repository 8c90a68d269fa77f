//! `vc-bench <what>`: the benchmarks behind `cargo xtask bench`. Each prints a Markdown
//! section with its figures and the ratios to a baseline measured in the same run.
mod bpf;
mod iperf;
mod vm;

use anyhow::{Result, bail};

fn main() -> Result<()> {
    let what = std::env::args().nth(1).unwrap_or_default();
    match what.as_str() {
        "bpf" => bpf::run(),
        "iperf" => iperf::run(),
        "iperf-diagnose" => iperf::diagnose(),
        "vm" => vm::run(),
        "vm-inside" => vm::inside(),
        _ => bail!("usage: vc-bench bpf|iperf|vm"),
    }
}
