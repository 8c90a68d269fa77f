//! How vc's BPF object is built, written once: `cargo xtask build-ebpf` and vc-agent's
//! build.rs both call [`build`], so the object `cargo build` embeds is the very file
//! `cargo xtask build-ebpf` leaves in `target/bpf` (same toolchain, flags and target
//! directory; `cargo xtask dist` and vc-agent's `tests/version.rs` prove it by hash).
//!
//! The object is built by the nightly pinned by date in the file `bpf-toolchain` (on LLVM 22
//! like bpf-linker 0.13; never a newer one: see README, "Toolchain"), for
//! `bpfel-unknown-none`, release, with BTF from debug info so that the kernel and bpftool
//! show the maps' types.
use std::{
    ffi::OsString,
    fmt, io,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

/// The toolchain that builds the BPF object (and runs the fuzzer and the formatter).
pub const TOOLCHAIN: &str = include_str!("../../bpf-toolchain").trim_ascii();

/// The BPF target.
pub const TARGET: &str = "bpfel-unknown-none";

/// The package that holds the programs.
pub const PACKAGE: &str = "vc-ebpf";

/// The version of bpf-linker that links the object (built against the nightly's LLVM).
pub const BPF_LINKER_VERSION: &str = "0.13.0";

/// The rustc flags of every BPF build: debug info for BTF, and the linker's `--btf`.
pub const RUSTFLAGS: [&str; 2] = ["-Cdebuginfo=2", "-Clink-arg=--btf"];

/// The workspace root (this crate sits one level below it).
#[must_use]
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("vc-ebpf-build sits inside the workspace")
        .to_path_buf()
}

/// The BPF builds' own target directory: apart from the host's, since the nightly and the
/// stable toolchain must not share one, and in the workspace's `target/` so that every caller
/// finds the same build.
#[must_use]
pub fn target_dir() -> PathBuf {
    workspace_root().join("target/bpf")
}

/// Where [`build`] leaves the object.
#[must_use]
pub fn object_path() -> PathBuf {
    target_dir().join(TARGET).join("release").join(PACKAGE)
}

/// The directories and files whose change changes the object: for build scripts'
/// `rerun-if-changed`.
#[must_use]
pub fn inputs() -> Vec<PathBuf> {
    let root = workspace_root();
    ["vc-ebpf", "vc-common", "bpf-toolchain", "Cargo.lock"]
        .into_iter()
        .map(|p| root.join(p))
        .collect()
}

/// Variables a child cargo keeps from its caller's environment: where the tools are. All
/// others go, so that a build script's environment (`CARGO_ENCODED_RUSTFLAGS`, `RUSTC`,
/// `RUSTUP_TOOLCHAIN`, `TARGET`, ...) cannot make its build differ from xtask's.
const KEPT_ENV: [&str; 8] = [
    "PATH",
    "HOME",
    "CARGO_HOME",
    "RUSTUP_HOME",
    "TMPDIR",
    // the jobserver of an outer cargo: shares its job slots, changes nothing built
    "CARGO_MAKEFLAGS",
    // how messages look
    "TERM",
    "CARGO_TERM_COLOR",
];

/// `cargo +TOOLCHAIN` in the workspace root, in a clean environment.
#[must_use]
pub fn nightly_cargo() -> Command {
    let mut cmd = Command::new("cargo");
    cmd.current_dir(workspace_root())
        .arg(format!("+{TOOLCHAIN}"))
        .env_clear()
        .envs(
            KEPT_ENV
                .iter()
                .filter_map(|k| Some((k, std::env::var_os(k)?))),
        );
    cmd
}

/// `cargo <subcommand>` for vc-ebpf on the BPF target, release, in [`target_dir`], with
/// [`RUSTFLAGS`]: what [`build`] runs, and clippy with the same flags so both share what
/// they compiled.
#[must_use]
pub fn cargo(subcommand: &str) -> Command {
    let mut cmd = nightly_cargo();
    cmd.args([subcommand, "--package", PACKAGE, "--release"])
        .args(["--target", TARGET, "-Z", "build-std=core"])
        .arg("--target-dir")
        .arg(target_dir())
        .env("CARGO_ENCODED_RUSTFLAGS", RUSTFLAGS.join("\x1f"));
    cmd
}

/// Why the object cannot be built here.
#[derive(Debug)]
pub enum Missing {
    BpfLinker,
    Toolchain,
}

impl fmt::Display for Missing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Missing::BpfLinker => f.write_str("bpf-linker is not installed"),
            Missing::Toolchain => write!(f, "the toolchain {TOOLCHAIN} is not installed"),
        }
    }
}

/// What this machine lacks to build the object (`cargo xtask setup` installs both).
#[must_use]
pub fn missing_tool() -> Option<Missing> {
    let runs = |cmd: &mut Command| {
        cmd.stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if !runs(Command::new("bpf-linker").arg("--version")) {
        return Some(Missing::BpfLinker);
    }
    if !runs(nightly_cargo().arg("--version")) {
        return Some(Missing::Toolchain);
    }
    None
}

/// What a build embeds.
#[derive(Debug, PartialEq, Eq)]
pub enum Embed {
    /// The real object, built by [`build`].
    Object,
    /// The empty placeholder, and why.
    Placeholder(String),
}

/// What a build of vc-agent embeds: the object when the tools are there; otherwise the
/// placeholder for a debug build (check, clippy, unit tests work anywhere), and an error for a
/// release build (a package must never carry the placeholder) unless `AYA_BUILD_SKIP` asks
/// for it explicitly.
pub fn embed(release: bool, skip: bool, missing: Option<Missing>) -> Result<Embed, String> {
    if skip {
        return Ok(Embed::Placeholder("AYA_BUILD_SKIP is set".into()));
    }
    match missing {
        None => Ok(Embed::Object),
        Some(why) if release => Err(format!(
            "a release build of vc-agent needs its BPF object, and {why}: run `cargo xtask \
             setup` (or set AYA_BUILD_SKIP=1 for a build without the datapath)"
        )),
        Some(why) => Ok(Embed::Placeholder(why.to_string())),
    }
}

/// Builds the object and returns its path. cargo's messages go to `stderr`'s inheritor (a
/// build script's stderr is kept in its output).
pub fn build() -> io::Result<PathBuf> {
    let mut cmd = cargo("build");
    cmd.arg("--bins").stdout(Stdio::inherit());
    let status = cmd.status()?;
    if !status.success() {
        return Err(io::Error::other(format!(
            "building the BPF object failed ({status}): {}",
            shown(&cmd)
        )));
    }
    Ok(object_path())
}

/// A command as a shell line, for messages.
#[must_use]
pub fn shown(cmd: &Command) -> String {
    let mut line: OsString = cmd.get_program().into();
    for arg in cmd.get_args() {
        line.push(" ");
        line.push(arg);
    }
    line.to_string_lossy().into_owned()
}

/// SHA-256 of `bytes`, lowercase hex: how `vc-agent --version` and `cargo xtask dist`
/// name an object.
#[must_use]
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(bytes)
        .iter()
        .fold(String::with_capacity(64), |mut s, b| {
            use fmt::Write as _;
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// How `vc-agent --version` names an object: its SHA-256 prefix and size (`5e6f7a8b, 31
/// KiB`), or `none` for the placeholder.
#[must_use]
pub fn describe(object: &[u8]) -> String {
    if object.is_empty() {
        return "none".into();
    }
    let sha = sha256_hex(object);
    format!("{}, {} KiB", &sha[..8], object.len().div_ceil(1024))
}

#[cfg(test)]
mod tests {
    use super::{Embed, Missing, embed, sha256_hex};

    #[test]
    fn a_release_build_never_embeds_the_placeholder_unasked() {
        assert_eq!(embed(true, false, None), Ok(Embed::Object));
        let refused = embed(true, false, Some(Missing::BpfLinker)).expect_err("release");
        assert!(refused.contains("bpf-linker is not installed"), "{refused}");
        assert!(embed(true, false, Some(Missing::Toolchain)).is_err());
        assert_eq!(
            embed(true, true, Some(Missing::BpfLinker)),
            Ok(Embed::Placeholder("AYA_BUILD_SKIP is set".into()))
        );
        assert_eq!(
            embed(false, false, Some(Missing::BpfLinker)),
            Ok(Embed::Placeholder("bpf-linker is not installed".into()))
        );
    }

    #[test]
    fn sha256_is_lowercase_hex() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
