//! `cargo xtask setup`: everything build and tests need, installed only when missing.
use std::{path::Path, process::Command};

use anyhow::{Context, Result, bail};

use crate::{
    ebpf::BPF_TOOLCHAIN,
    util::{is_root, output, sh},
};

/// Debian packages, with what needs them.
const APT_PACKAGES: &[&str] = &[
    // bpf-linker must link the LLVM that the pinned nightly's rustc uses (22).
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

use vc_ebpf_build::BPF_LINKER_VERSION;
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
    bpf_toolchain()?;
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

/// What the pinned nightly must have: the core library's source (`-Z build-std=core` for the
/// BPF target), and rustfmt and clippy for `cargo xtask lint`.
const BPF_TOOLCHAIN_COMPONENTS: [&str; 3] = ["rust-src", "rustfmt", "clippy"];

/// The pinned nightly with its components. Installed by its date when missing: never
/// `rustup update`, which would move other toolchains.
fn bpf_toolchain() -> Result<()> {
    let toolchains = output(Command::new("rustup").args(["toolchain", "list"]))
        .context("rustup cannot list the toolchains")?;
    let installed = toolchains.lines().any(|line| {
        line.split_whitespace()
            .next()
            .is_some_and(|name| is_named(name, BPF_TOOLCHAIN))
    });
    if !installed {
        return sh(Command::new("rustup")
            .args([
                "toolchain",
                "install",
                BPF_TOOLCHAIN,
                "--profile",
                "minimal",
            ])
            .arg("--component")
            .arg(BPF_TOOLCHAIN_COMPONENTS.join(",")));
    }
    let components = output(Command::new("rustup").args([
        "component",
        "list",
        "--installed",
        "--toolchain",
        BPF_TOOLCHAIN,
    ]))
    .with_context(|| format!("rustup cannot list the components of {BPF_TOOLCHAIN}"))?;
    let missing: Vec<&str> = BPF_TOOLCHAIN_COMPONENTS
        .into_iter()
        .filter(|wanted| !components.lines().any(|c| is_named(c, wanted)))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    sh(Command::new("rustup")
        .args(["component", "add", "--toolchain", BPF_TOOLCHAIN])
        .args(&missing))
}

/// Whether rustup's `listed` (a toolchain or component, with or without its host triple)
/// is `name`.
fn is_named(listed: &str, name: &str) -> bool {
    listed.strip_prefix(name).is_some_and(|rest| {
        rest.is_empty() || rest.starts_with(&format!("-{}", std::env::consts::ARCH))
    })
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

#[cfg(test)]
mod tests {
    use super::is_named;

    #[test]
    fn rustup_names_match_with_or_without_the_host() {
        let host = format!(
            "nightly-2026-05-20-{}-unknown-linux-gnu",
            std::env::consts::ARCH
        );
        assert!(is_named(&host, "nightly-2026-05-20"));
        assert!(is_named("rust-src", "rust-src"));
        assert!(!is_named("rust-std-x86_64-unknown-linux-gnu", "rust-src"));
        let undated = format!("nightly-{}-unknown-linux-gnu", std::env::consts::ARCH);
        assert!(!is_named(&undated, "nightly-2026-05-20"));
        assert!(
            !is_named(&host, "nightly"),
            "a dated nightly is not the moving one"
        );
    }
}
