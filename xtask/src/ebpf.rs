//! Building the BPF object: the one definition in `vc-ebpf-build`, which vc-agent's build.rs
//! uses too, so the object built here is the one `cargo build` embeds.
use std::{path::PathBuf, process::Command};

use anyhow::{Context, Result};
pub use vc_ebpf_build::TOOLCHAIN as BPF_TOOLCHAIN;

/// Builds vc-ebpf for the BPF target with BTF and returns the object's path.
pub fn build() -> Result<PathBuf> {
    eprintln!("+ {}", vc_ebpf_build::shown(&vc_ebpf_build::cargo("build")));
    vc_ebpf_build::build().context("cargo xtask build-ebpf")
}

/// `cargo +BPF_TOOLCHAIN` in the workspace root, with nothing of the outer cargo's
/// environment.
pub fn nightly_cargo() -> Command {
    vc_ebpf_build::nightly_cargo()
}

/// `cargo <subcommand>` for vc-ebpf with the flags of `build` (clippy shares its build).
pub fn bpf_cargo(subcommand: &str) -> Command {
    vc_ebpf_build::cargo(subcommand)
}
