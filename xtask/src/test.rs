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

/// Whether the selected tests may include the package's (`vc-agent --test vm_package`): a
/// release build costs minutes, so a selection that leaves it out skips the build.
fn needs_package(cargo_args: &[String]) -> bool {
    let values = |flags: &[&str]| -> Vec<&str> {
        cargo_args
            .windows(2)
            .filter(|w| flags.contains(&w[0].as_str()))
            .map(|w| w[1].as_str())
            .collect()
    };
    let packages = values(&["-p", "--package"]);
    if !packages.is_empty() && !packages.contains(&"vc-agent") {
        return false;
    }
    let tests = values(&["--test"]);
    if !tests.is_empty() {
        return tests.contains(&"vm_package");
    }
    !cargo_args.iter().any(|a| a == "--lib" || a == "--doc")
}

#[cfg(test)]
mod tests {
    use super::needs_package;

    fn needs(args: &str) -> bool {
        let args: Vec<String> = args.split_whitespace().map(String::from).collect();
        needs_package(&args)
    }

    #[test]
    fn the_package_is_built_when_its_test_may_run() {
        assert!(needs(""));
        assert!(needs("-p vc-agent"));
        assert!(needs("-p vc-agent --test vm_package"));
        assert!(needs("some_filter"));
        assert!(!needs("-p vc-agent --test bpf"));
        assert!(!needs("-p vc-testkit --test vm"));
        assert!(!needs("-p vc-agent --lib"));
    }
}
