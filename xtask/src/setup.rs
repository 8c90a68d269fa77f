//! `cargo xtask setup`: everything build and tests need, installed only when missing.
use std::{path::Path, process::Command};

use anyhow::{Context, Result, bail};

use crate::{
    ebpf::BPF_TOOLCHAIN,
    util::{is_root, output, sh},
};

/// Debian packages, with what needs them.
const APT_PACKAGES: &[&str] = &[
    // bpf-linker must link the LLVM that the nightly's rustc uses (22).
    "llvm-22-dev",
    // namespace tests: devices, captures, independent packet builder, traffic
    "iproute2",
    "iputils-ping",
    "tcpdump",
    // an independent judge of the BGP encodings (tshark, text2pcap)
    "tshark",
    // the NAT namespace of the NAT-traversal test
    "nftables",
    "python3-scapy",
    "iperf3",
    "ethtool",
    "bpftool",
    // real peers: BGP and IKEv2
    "bird2",
    "strongswan-charon",
    "strongswan-swanctl",
    "libstrongswan-standard-plugins",
    // the VM harness (stock Debian kernel under QEMU)
    "qemu-system-x86",
    "busybox-static",
    "kmod",
    "cpio",
];

const BPF_LINKER_VERSION: &str = "0.13.0";
const CARGO_FUZZ_VERSION: &str = "0.13.2";

#[derive(clap::Args, Default)]
pub struct Options {
    /// Skip the apt packages (for a machine where they are managed elsewhere).
    #[arg(long)]
    pub no_apt: bool,
}

pub fn run(opts: &Options) -> Result<()> {
    build_and_vm(opts)?;
    cargo_fuzz()?;
    eprintln!("setup: done");
    Ok(())
}

/// What building vc and booting the VM need (all of `run` but the fuzzing tools): the lab's
/// set-up.
pub fn build_and_vm(opts: &Options) -> Result<()> {
    if !opts.no_apt {
        apt_packages()?;
    }
    rust_src()?;
    bpf_linker()?;
    crate::vm::setup(&crate::vm::SetupOptions::default())
}

fn apt_packages() -> Result<()> {
    let missing: Vec<&str> = APT_PACKAGES
        .iter()
        .copied()
        .filter(|pkg| !installed(pkg))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    eprintln!("setup: installing {}", missing.join(" "));
    if !is_root() {
        bail!(
            "apt packages missing ({}); run as root or install them",
            missing.join(" ")
        );
    }
    sh(Command::new("apt-get").args(["update", "-qq"]))?;
    sh(Command::new("apt-get")
        .args(["install", "-y", "-qq", "--no-install-recommends"])
        .args(&missing)
        .env("DEBIAN_FRONTEND", "noninteractive"))
}

fn installed(pkg: &str) -> bool {
    output(Command::new("dpkg-query").args(["-W", "-f=${Status}", pkg]))
        .is_some_and(|status| status.ends_with(" installed"))
}

fn rust_src() -> Result<()> {
    let components = output(Command::new("rustup").args([
        "component",
        "list",
        "--installed",
        "--toolchain",
        BPF_TOOLCHAIN,
    ]))
    .context("rustup cannot list the nightly's components (is the image's nightly there?)")?;
    if components.lines().any(|c| c.starts_with("rust-src")) {
        return Ok(());
    }
    sh(Command::new("rustup").args(["component", "add", "rust-src", "--toolchain", BPF_TOOLCHAIN]))
}

fn bpf_linker() -> Result<()> {
    let version = output(Command::new("bpf-linker").arg("--version"));
    if version
        .as_deref()
        .is_some_and(|v| v.contains(BPF_LINKER_VERSION))
    {
        return Ok(());
    }
    let llvm = Path::new("/usr/lib/llvm-22");
    if !llvm.exists() {
        bail!("{} is missing: install llvm-22-dev", llvm.display());
    }
    sh(Command::new("cargo")
        .args([
            "install",
            "bpf-linker",
            "--locked",
            "--version",
            BPF_LINKER_VERSION,
        ])
        .args(["--no-default-features", "--features", "llvm-22"])
        .env("LLVM_PREFIX", llvm)
        .env_remove("RUSTUP_TOOLCHAIN"))
}

/// cargo-fuzz for `cargo xtask fuzz` (it installs on stable; running it needs the nightly).
pub fn cargo_fuzz() -> Result<()> {
    let version = output(Command::new("cargo").args(["fuzz", "--version"]));
    if version
        .as_deref()
        .is_some_and(|v| v.contains(CARGO_FUZZ_VERSION))
    {
        return Ok(());
    }
    sh(Command::new("cargo").args([
        "install",
        "cargo-fuzz",
        "--locked",
        "--version",
        CARGO_FUZZ_VERSION,
    ]))
}
