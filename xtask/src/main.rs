//! Developer and CI tasks: `cargo xtask <task>`. See `cargo xtask --help`.
mod bench;
mod dist;
mod ebpf;
mod fuzz;
mod lab;
mod lint;
mod setup;
mod test;
mod util;
mod vm;

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
    /// Install what building and testing need (apt packages, the pinned nightly, bpf-linker,
    /// the VM kernel). Idempotent: quick when everything is there.
    Setup(setup::Options),
    /// Build the BPF object (release, BTF) into target/bpf.
    BuildEbpf,
    /// Build the Debian package (target/dist/vc-agent_*.deb): the release vc-agent with its
    /// BPF object, the systemd unit, the config template, man page and completions.
    Dist,
    /// Set up, check formatting and clippy (`lint`), build (the package too, for its VM
    /// test), and run every test: unit, BPF, namespace and VM tests.
    Test(test::Options),
    /// Fail on a formatting fault or a clippy warning: host crates, BPF programs (on their
    /// target) and the fuzz workspace. The first step of `test`.
    Lint,
    /// Format every workspace with the pinned nightly's rustfmt (`rustfmt.toml`).
    Fmt,
    /// Run the benchmarks (as root) and write BENCHMARKS.md; `--hw` for the hardware mode.
    Bench(bench::Options),
    /// Provision the test VM (Debian's stock kernel, unpacked, and a busybox initramfs) in
    /// target/vm or `$VC_VM_DIR`. Part of `setup`; quick when present.
    VmSetup(vm::SetupOptions),
    /// Boot the test VM with a root shell on this terminal, or run `-- COMMAND...` in it.
    VmShell(vm::ShellOptions),
    /// A bounded run of every fuzz target (cargo-fuzz, nightly), seeded with fuzz/corpus.
    Fuzz(fuzz::Options),
    /// The main job: a simulated region in the VM (DC1 and DC2 with strongSwan, kernel GRE
    /// and BIRD; DC3 and DC4 of a second region with `--regions 2`), where `vc-agent run`
    /// brings the tunnels up, and what it shows.
    Lab(lab::Options),
    /// The lab's guest half (run in the VM by `lab`).
    #[command(hide = true)]
    LabInside(lab::InsideOptions),
}

fn main() -> Result<()> {
    match Cli::parse().task {
        Task::Setup(opts) => setup::run(&opts),
        Task::BuildEbpf => ebpf::build().map(|path| println!("{}", path.display())),
        Task::Dist => dist::build().map(|deb| println!("{}", deb.display())),
        Task::Test(opts) => test::run(&opts),
        Task::Lint => lint::run(),
        Task::Fmt => lint::format(),
        Task::Bench(opts) => bench::run(&opts),
        Task::VmSetup(opts) => vm::setup(&opts),
        Task::VmShell(opts) => vm::shell(&opts),
        Task::Fuzz(opts) => fuzz::run(&opts),
        Task::Lab(opts) => lab::run(&opts),
        Task::LabInside(opts) => lab::inside(&opts),
    }
}
