//! Embeds the BPF object: the one `cargo xtask build-ebpf` built (`VC_EBPF_OBJECT`), else one
//! built here through aya-build. Without bpf-linker, or with `AYA_BUILD_SKIP=1`, an empty
//! placeholder is embedded so check, clippy and unit tests work anywhere; loading it then
//! fails with a message saying how to build the real one.
use std::{env, fs, path::PathBuf, process::Command};

use anyhow::{Context, Result};
use aya_build::{Package, Toolchain};

fn main() -> Result<()> {
    println!("cargo:rerun-if-env-changed=VC_EBPF_OBJECT");
    println!("cargo:rerun-if-env-changed=AYA_BUILD_SKIP");
    let out = PathBuf::from(env::var("OUT_DIR").context("OUT_DIR")?).join("vc-ebpf");

    if let Some(object) = env::var_os("VC_EBPF_OBJECT") {
        let object = PathBuf::from(object);
        println!("cargo:rerun-if-changed={}", object.display());
        fs::copy(&object, &out).with_context(|| format!("VC_EBPF_OBJECT={}", object.display()))?;
        return Ok(());
    }
    let skip = env::var("AYA_BUILD_SKIP").is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true"));
    let linker = Command::new("bpf-linker")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if skip || !linker {
        let why = if skip {
            "AYA_BUILD_SKIP is set"
        } else {
            "bpf-linker is not installed"
        };
        println!("cargo:warning=vc-agent embeds no BPF object ({why}); run `cargo xtask setup`");
        fs::write(&out, []).context("writing the placeholder object")?;
        return Ok(());
    }
    let root = env::var("CARGO_MANIFEST_DIR").context("CARGO_MANIFEST_DIR")?;
    let ebpf_dir = format!("{root}/../vc-ebpf");
    aya_build::build_ebpf(
        [Package {
            name: "vc-ebpf",
            root_dir: &ebpf_dir,
            ..Package::default()
        }],
        // The pinned nightly, as `cargo xtask build-ebpf` uses it.
        Toolchain::Custom(include_str!("../bpf-toolchain").trim_ascii()),
    )
}
