//! Building the BPF object.
use std::{path::PathBuf, process::Command};

use anyhow::Result;

use crate::util::{sh, workspace_root};

/// The toolchain the BPF object is built with: the image's nightly (LLVM 22, matching
/// bpf-linker 0.13). Never a newer one: see README, "Toolchain".
pub const BPF_TOOLCHAIN: &str = "nightly";
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
    let root = workspace_root();
    let mut cmd = Command::new("cargo");
    cmd.current_dir(&root)
        .arg(format!("+{BPF_TOOLCHAIN}"))
        .args(["build", "--package", "vc-ebpf", "--bins", "--release"])
        .args(["--target", TARGET, "-Z", "build-std=core"])
        .arg("--target-dir")
        .arg(root.join("target/bpf"))
        // BTF (from debug info) lets the kernel and bpftool show the maps' types.
        .env(
            "CARGO_ENCODED_RUSTFLAGS",
            "-Cdebuginfo=2\x1f-Clink-arg=--btf",
        )
        // The outer cargo's toolchain must not leak into the nightly build.
        .env_remove("RUSTC")
        .env_remove("RUSTC_WRAPPER")
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .env_remove("RUSTUP_TOOLCHAIN")
        .env_remove("CARGO_TARGET_DIR");
    sh(&mut cmd)?;
    Ok(object_path())
}
