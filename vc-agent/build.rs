//! Embeds the BPF object, built by [`vc_ebpf_build::build`]: the very build `cargo xtask
//! build-ebpf` runs, into the same `target/bpf`, so what is embedded is byte for byte what
//! that command leaves there. Names the object and the commit for `vc-agent --version`.
//!
//! Without bpf-linker or the pinned nightly, a debug build (check, clippy, unit tests) embeds
//! an empty placeholder and says so; loading it fails with a message saying how to build the
//! real one. A release build fails instead: a package must never carry the placeholder.
//! `AYA_BUILD_SKIP=1` asks for the placeholder explicitly, in any profile.
use std::{env, fs, path::PathBuf, process::Command};

use anyhow::{Context, Result};
use vc_ebpf_build::Embed;

fn main() -> Result<()> {
    println!("cargo:rerun-if-env-changed=AYA_BUILD_SKIP");
    let out = PathBuf::from(env::var("OUT_DIR").context("OUT_DIR")?).join("vc-ebpf");
    let object = object()?;
    fs::write(&out, &object).with_context(|| format!("writing {}", out.display()))?;
    println!(
        "cargo:rustc-env=VC_LONG_VERSION={} (commit {}, BPF object {})",
        env::var("CARGO_PKG_VERSION").context("CARGO_PKG_VERSION")?,
        commit(),
        vc_ebpf_build::describe(&object)
    );
    Ok(())
}

/// The object's bytes, or the empty placeholder.
fn object() -> Result<Vec<u8>> {
    for input in vc_ebpf_build::inputs() {
        println!("cargo:rerun-if-changed={}", input.display());
    }
    let skip = env::var("AYA_BUILD_SKIP").is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true"));
    let release = env::var("PROFILE").is_ok_and(|p| p == "release");
    // Only looked for when it matters: a skipped build needs no tools.
    let missing = if skip {
        None
    } else {
        vc_ebpf_build::missing_tool()
    };
    match vc_ebpf_build::embed(release, skip, missing).map_err(anyhow::Error::msg)? {
        Embed::Object => {}
        Embed::Placeholder(why) => {
            println!(
                "cargo:warning=vc-agent embeds no BPF object ({why}); run `cargo xtask setup`"
            );
            return Ok(Vec::new());
        }
    }
    let path = vc_ebpf_build::build().context("building the BPF object")?;
    fs::read(&path).with_context(|| format!("reading {}", path.display()))
}

/// The short commit hash, `-dirty` when tracked files differ from it; `unknown` outside git.
fn commit() -> String {
    let root = vc_ebpf_build::workspace_root();
    let git = |args: &[&str]| {
        Command::new("git")
            .current_dir(&root)
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    // A new commit, a checkout or a staged change moves HEAD or the index.
    if let Some(dir) = git(&["rev-parse", "--absolute-git-dir"]) {
        for file in ["HEAD", "index"] {
            println!("cargo:rerun-if-changed={dir}/{file}");
        }
        if let Some(common) = git(&["rev-parse", "--git-common-dir"]) {
            println!(
                "cargo:rerun-if-changed={}",
                root.join(common).join("refs").display()
            );
        }
    }
    let Some(hash) = git(&["rev-parse", "--short=7", "HEAD"]) else {
        return "unknown".into();
    };
    let dirty =
        git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
    if dirty { format!("{hash}-dirty") } else { hash }
}
