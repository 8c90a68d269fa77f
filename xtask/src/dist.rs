//! `cargo xtask dist`: the Debian package (`target/dist/vc-agent_<version>_amd64.deb`), built
//! by cargo-deb from vc-agent's `[package.metadata.deb]`: the release binary with its BPF
//! object (checked by hash against `cargo xtask build-ebpf`'s), the systemd unit, the config
//! template, the man page and shell completions generated from the CLI itself.
use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context, Result, bail};

use crate::{
    ebpf,
    util::{output, sh, workspace_root},
};

/// The cargo-deb release known to install and build here.
const CARGO_DEB_VERSION: &str = "3.8.0";

/// Where the package and the generated assets go.
fn dist_dir() -> PathBuf {
    target_dir().join("dist")
}

fn target_dir() -> PathBuf {
    let root = workspace_root();
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), |d| root.join(d))
}

/// Builds the package and returns its path.
pub fn build() -> Result<PathBuf> {
    cargo_deb()?;
    let object = ebpf::build()?;
    sh(Command::new("cargo")
        .current_dir(workspace_root())
        .args(["build", "--release", "-p", "vc-agent", "--bin", "vc-agent"])
        .env_remove("AYA_BUILD_SKIP"))?;
    let agent = target_dir().join("release/vc-agent");
    check_embedded_object(&agent, &object)?;
    // Beside the binary: cargo-deb finds `target/release/...` assets in the real target dir.
    generate_assets(&agent, &target_dir().join("release/dist"))?;
    let out = dist_dir();
    let built = output(
        Command::new("cargo")
            .current_dir(workspace_root())
            .args(["deb", "-p", "vc-agent", "--no-build"])
            .arg("--output")
            .arg(&out),
    )
    .context("cargo deb failed (run it by hand to see why)")?;
    let deb = PathBuf::from(built.lines().last().unwrap_or_default().trim());
    if !deb.is_file() {
        bail!("cargo deb built no package: {built}");
    }
    Ok(deb)
}

/// The release binary must carry `cargo xtask build-ebpf`'s object, byte for byte: its
/// `--version` names the object by hash and size.
fn check_embedded_object(agent: &Path, object: &Path) -> Result<()> {
    let bytes = fs::read(object).with_context(|| format!("{}", object.display()))?;
    let want = format!("BPF object {})", vc_ebpf_build::describe(&bytes));
    let version = output(Command::new(agent).arg("--version"))
        .with_context(|| format!("{} --version", agent.display()))?;
    if !version.ends_with(&want) {
        bail!(
            "{} is not the object `cargo xtask build-ebpf` built ({want}): {version}",
            agent.display()
        );
    }
    eprintln!("dist: {version}");
    Ok(())
}

/// The man page (gzipped, as Debian ships them) and the completions, from the binary.
fn generate_assets(agent: &Path, dir: &Path) -> Result<()> {
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let generate = |args: &[&str], file: &str| -> Result<()> {
        let out = Command::new(agent)
            .args(args)
            .output()
            .with_context(|| format!("vc-agent {}", args.join(" ")))?;
        if !out.status.success() {
            bail!("vc-agent {} failed", args.join(" "));
        }
        fs::write(dir.join(file), out.stdout).with_context(|| file.to_string())
    };
    generate(&["man"], "vc-agent.8")?;
    generate(&["completions", "bash"], "vc-agent.bash")?;
    generate(&["completions", "zsh"], "_vc-agent")?;
    generate(&["completions", "fish"], "vc-agent.fish")?;
    // -n: no name or time stamp in the archive, so the same page gives the same bytes.
    sh(Command::new("gzip")
        .args(["-9", "-n", "-f"])
        .arg(dir.join("vc-agent.8")))
}

/// cargo-deb, installed when missing or another version.
fn cargo_deb() -> Result<()> {
    let version = output(Command::new("cargo").args(["deb", "--version"]));
    if version
        .as_deref()
        .is_some_and(|v| v.contains(CARGO_DEB_VERSION))
    {
        return Ok(());
    }
    sh(Command::new("cargo").args([
        "install",
        "cargo-deb",
        "--locked",
        "--version",
        CARGO_DEB_VERSION,
    ]))
}
