//! Building the BPF object, and the pinned nightly that builds it.
use std::{path::PathBuf, process::Command};

use anyhow::Result;

use crate::util::{sh, workspace_root};

/// The toolchain the BPF object is built with (and the fuzz targets, and the formatter): a
/// nightly pinned by date, on LLVM 22 like bpf-linker 0.13. Never a newer one: see README,
/// "Toolchain". One definition, the file `bpf-toolchain`, which vc-agent's build.rs reads too.
pub const BPF_TOOLCHAIN: &str = include_str!("../../bpf-toolchain").trim_ascii();
const TARGET: &str = "bpfel-unknown-none";

/// Where `build` leaves the object.
pub fn object_path() -> PathBuf {
    workspace_root()
        .join("target/bpf")
        .join(TARGET)
        .join("release/vc-ebpf")
}

/// Builds vc-ebpf for the BPF target with BTF and returns the object's path.
pub fn build() -> Result<PathBuf> {
    sh(bpf_cargo("build").arg("--bins"))?;
    Ok(object_path())
}

/// `cargo +BPF_TOOLCHAIN` in the workspace root, with nothing of the outer cargo's toolchain.
pub fn nightly_cargo() -> Command {
    let mut cmd = Command::new("cargo");
    cmd.current_dir(workspace_root())
        .arg(format!("+{BPF_TOOLCHAIN}"))
        // The outer cargo's toolchain must not leak into the nightly's.
        .env_remove("RUSTC")
        .env_remove("RUSTC_WRAPPER")
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .env_remove("RUSTUP_TOOLCHAIN")
        .env_remove("CARGO_TARGET_DIR");
    cmd
}

/// `cargo <subcommand>` for vc-ebpf on the BPF target, release, in target/bpf: what `build`
/// runs, and clippy with the same flags so both share what they compiled.
pub fn bpf_cargo(subcommand: &str) -> Command {
    let mut cmd = nightly_cargo();
    cmd.args([subcommand, "--package", "vc-ebpf", "--release"])
        .args(["--target", TARGET, "-Z", "build-std=core"])
        .arg("--target-dir")
        .arg(workspace_root().join("target/bpf"))
        // BTF (from debug info) lets the kernel and bpftool show the maps' types.
        .env(
            "CARGO_ENCODED_RUSTFLAGS",
            "-Cdebuginfo=2\x1f-Clink-arg=--btf",
        );
    cmd
}
