//! `cargo xtask test`: the README's test command. Sets up, lints, builds, runs every test.
use std::process::Command;

use anyhow::Result;

use crate::{
    dist, ebpf, fuzz, lint, setup,
    util::{is_root, sh, workspace_root},
};

#[derive(clap::Args)]
pub struct Options {
    /// Skip `cargo xtask setup` (everything is known to be installed).
    #[arg(long)]
    pub no_setup: bool,
    /// Seconds per fuzz target after the tests (0: no fuzzing).
    #[arg(long, default_value_t = 18)]
    pub fuzz_seconds: u64,
    /// Extra arguments for `cargo test` (e.g. a test name filter).
    #[arg(last = true)]
    pub cargo_args: Vec<String>,
}

pub fn run(opts: &Options) -> Result<()> {
    if !opts.no_setup {
        setup::run(&setup::Options::default())?;
    }
    lint::run()?;
    // vc-agent's build.rs embeds this very build (same definition, same target/bpf).
    ebpf::build()?;
    let mut cmd = Command::new("cargo");
    cmd.current_dir(workspace_root())
        .args(["test", "--workspace", "--exclude", "vc-ebpf"])
        .args(&opts.cargo_args);
    if needs_package(&opts.cargo_args) {
        // The package test installs it in the VM (vc-agent/tests/vm_package.rs).
        cmd.env("VC_DEB", dist::build()?);
    }
    if is_root() {
        // Privileged tests (BPF, namespaces) fail instead of skipping: CI must run them.
        cmd.env("VC_REQUIRE_PRIV", "1");
    }
    sh(&mut cmd)?;
    if opts.fuzz_seconds > 0 {
        fuzz::run(&fuzz::Options {
            seconds: opts.fuzz_seconds,
            target: Vec::new(),
        })?;
    }
    Ok(())
}

/// Whether the selected tests include the package's: all of them, or a selection that names
/// it. (A release build costs minutes: a run of other tests alone skips it.)
fn needs_package(cargo_args: &[String]) -> bool {
    cargo_args.is_empty() || cargo_args.iter().any(|a| a.contains("vm_package"))
}
