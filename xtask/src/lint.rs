//! `cargo xtask lint`: the rules CI enforces, which `cargo xtask test` runs first. Formatting
//! by the pinned nightly's rustfmt (`rustfmt.toml` groups imports, a nightly option), clippy
//! on the host crates and on the BPF programs for their own target, and both for the fuzz
//! workspace; every warning is an error. `cargo xtask fmt` formats.
use std::process::Command;

use anyhow::Result;

use crate::{
    ebpf,
    util::{sh, workspace_root},
};

/// The fuzz targets' workspace (its own, for cargo-fuzz), besides the main one.
const FUZZ: &str = "fuzz/Cargo.toml";

pub fn run() -> Result<()> {
    rustfmt(true)?;
    sh(ebpf::bpf_cargo("clippy").args(["--bins", "--", "-D", "warnings"]))?;
    // Without the BPF object (vc-agent embeds a placeholder; the code is the same): nothing to
    // build first, and what it checked serves a plain `AYA_BUILD_SKIP=1 cargo clippy` too.
    sh(Command::new("cargo")
        .current_dir(workspace_root())
        .args(["clippy", "--workspace", "--all-targets"])
        .args(["--", "-D", "warnings"])
        .env("AYA_BUILD_SKIP", "1"))?;
    sh(ebpf::nightly_cargo()
        .args(["clippy", "--manifest-path", FUZZ, "--all-targets"])
        .args(["--", "-D", "warnings"]))?;
    eprintln!("lint: clean");
    Ok(())
}

/// Formats every workspace.
pub fn format() -> Result<()> {
    rustfmt(false)
}

fn rustfmt(check: bool) -> Result<()> {
    for manifest in ["Cargo.toml", FUZZ] {
        let mut cmd = ebpf::nightly_cargo();
        cmd.args(["fmt", "--all", "--manifest-path", manifest]);
        if check {
            cmd.arg("--check");
        }
        sh(&mut cmd)?;
    }
    Ok(())
}
