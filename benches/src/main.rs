//! `vc-bench <what>`: the benchmarks behind `cargo xtask bench`. Each prints a Markdown
//! section with its figures and the ratios to a baseline measured in the same run.
mod bpf;
#[path = "../../vc-agent/tests/bpf/fixture.rs"]
#[expect(dead_code, reason = "shared with the BPF tests, which use all of it")]
mod fixture;
mod iperf;
#[path = "../../vc-agent/tests/vm_datapath/lab.rs"]
#[expect(dead_code, reason = "shared with the VM tests, which use all of it")]
mod lab;
#[path = "../../vc-agent/tests/datapath/topology.rs"]
#[expect(
    dead_code,
    reason = "shared with the datapath tests, which use all of it"
)]
mod topology;
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
