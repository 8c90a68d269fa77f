//! `vc-bench <what>`: the benchmarks behind `cargo xtask bench`. Each prints a Markdown
//! section with its figures and the ratios to a baseline measured in the same run.
mod bpf;
mod compare;
mod cpu;
mod hw;
mod iperf;
mod load;
mod paper;
mod stats;
mod verdict;
mod vm;

use anyhow::{Result, bail};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let what = args.first().cloned().unwrap_or_default();
    match what.as_str() {
        "bpf" => bpf::run(),
        "iperf" => iperf::run(),
        "iperf-diagnose" => iperf::diagnose(),
        "paper" => paper::run(),
        "hw" => hw::run(&args[1..]),
        "hw-inside" => hw::inside(),
        "vm" => vm::run(),
        "vm-inside" => vm::inside(),
        _ => bail!("usage: vc-bench bpf|iperf|paper|vm|hw"),
    }
}
