//! `vc-bench <what>`: the benchmarks behind `cargo xtask bench`. Each prints a Markdown
//! section with its figures and the ratios to a baseline measured in the same run.
mod bpf;
#[path = "../../vc-agent/tests/bpf/fixture.rs"]
#[expect(dead_code, reason = "shared with the BPF tests, which use all of it")]
mod fixture;
mod iperf;
#[path = "../../vc-agent/tests/datapath/topology.rs"]
#[expect(
    dead_code,
    reason = "shared with the datapath tests, which use all of it"
)]
mod topology;

use anyhow::{Result, bail};

fn main() -> Result<()> {
    let what = std::env::args().nth(1).unwrap_or_default();
    match what.as_str() {
        "bpf" => bpf::run(),
        "iperf" => iperf::run(),
        "iperf-diagnose" => iperf::diagnose(),
        _ => bail!("usage: vc-bench bpf|iperf"),
    }
}
