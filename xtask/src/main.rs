//! Developer and CI tasks: `cargo xtask <task>`. See `cargo xtask --help`.
mod ebpf;
mod fuzz;
mod setup;
mod test;
mod util;

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(about = "vc's developer and CI tasks")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Install what building and testing need (apt packages, rust-src, bpf-linker, the VM
    /// kernel). Idempotent: quick when everything is there.
    Setup(setup::Options),
    /// Build the BPF object (release, BTF) into target/bpf.
    BuildEbpf,
    /// Set up, build, and run every test: unit, BPF, namespace and VM tests.
    Test(test::Options),
    /// A bounded run of every fuzz target (cargo-fuzz, nightly), seeded with fuzz/corpus.
    Fuzz(fuzz::Options),
}

fn main() -> Result<()> {
    match Cli::parse().task {
        Task::Setup(opts) => setup::run(&opts),
        Task::BuildEbpf => ebpf::build().map(|path| println!("{}", path.display())),
        Task::Test(opts) => test::run(&opts),
        Task::Fuzz(opts) => fuzz::run(&opts),
    }
}
