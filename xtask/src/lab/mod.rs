//! `cargo xtask lab`: the README's main job. Builds vc, boots the test VM, and in it a
//! simulated region (`vc_testkit::region`): the CPE runs `vc-agent run` in IPsec mode
//! against DC1 and DC2 (strongSwan, kernel GRE, BIRD), and DC3 and DC4 with a second region;
//! the lab waits until every tunnel is up, step by step as Cisco troubleshoots them, and
//! shows them.
//!
//! The host half (this module) builds and boots; the guest half ([`inside`]) is this same
//! binary, run in the VM as `xtask lab-inside`.
mod inside;
mod two_cpes;

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use anyhow::{Context, Result, bail};
use vc_testkit::vm::{self, VmRun};

pub use self::inside::{InsideOptions, run as inside};
use crate::{
    ebpf, setup,
    util::{sh, workspace_root},
};

/// The deployment the lab simulates (`[deployment] model`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Model {
    /// One CPE terminates both tunnels.
    #[default]
    OneCpe,
    /// Two CPEs, one tunnel each, and an enterprise router on the LAN that learns from each
    /// CPE's BIRD which /25 it reaches.
    TwoCpes,
}

#[derive(clap::Args)]
pub struct Options {
    /// The deployment model: one CPE for both tunnels, or two CPEs with one tunnel each.
    #[arg(long, value_enum, default_value_t)]
    pub model: Model,
    /// Also take DC2's BGP session down and show DC2's /25 moving to tunnel A, then back (R21);
    /// with two CPEs, DC1's, its /25 moving to CPE 2.
    #[arg(long)]
    pub failover: bool,
    /// The CPE's WAN devices: with 2, tunnel B leaves by its own (`wan1`, "ISP 2", its own
    /// address and link), the host routing DC2's IPsec address out of it.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=2))]
    pub wans: u8,
    /// The Virtual Connect regions on the CPE: with 2, a second region ("AMER") in the same
    /// vc.toml (`[[extra_region]]`), its tunnels to DC3 and DC4 (`vc-r2-dc1`, `vc-r2-dc2`)
    /// beside the first region's, all four brought up and checked.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=2))]
    pub regions: u8,
    /// Then drop into a root shell in the VM with the lab up (exit it to power off).
    #[arg(long)]
    pub shell: bool,
    /// Skip the set-up (apt packages, toolchain parts, the VM kernel).
    #[arg(long)]
    pub no_setup: bool,
}

/// The lab's errors are for a network engineer: no backtraces of anyhow errors in the guest
/// (panics keep theirs).
const NO_ERROR_BACKTRACE: (&str, &str) = ("RUST_LIB_BACKTRACE", "0");
/// Bounds a lab run without a shell: it takes well under a minute when it works.
const TIMEOUT: Duration = Duration::from_mins(5);
/// Bounds a lab run with a shell: a working session.
const SHELL_TIMEOUT: Duration = Duration::from_hours(12);

pub fn run(opts: &Options) -> Result<()> {
    if !opts.no_setup {
        setup::build_and_vm(&setup::Options::default())?;
    }
    let agent = build_agent()?;
    vm::ready().map_err(|why| anyhow::anyhow!("cannot boot the VM: {why}"))?;
    let xtask = std::env::current_exe().context("xtask's own path")?;
    let mut argv = vec![
        xtask.to_string_lossy().into_owned(),
        "lab-inside".into(),
        "--agent".into(),
        agent.to_string_lossy().into_owned(),
    ];
    if opts.failover {
        argv.push("--failover".into());
    }
    if opts.model == Model::TwoCpes {
        if opts.wans > 1 {
            bail!("--wans 2 is a one-CPE lab: each of two CPEs has one tunnel anyway");
        }
        if opts.regions > 1 {
            bail!("--regions 2 is a one-CPE lab: the two-CPE lab runs one region");
        }
        argv.extend(["--model".into(), "two-cpes".into()]);
    }
    if opts.wans > 1 {
        if opts.regions > 1 {
            bail!("--regions 2 is a lab on one WAN: the second ISP's link reaches DC2 only");
        }
        argv.extend(["--wans".into(), opts.wans.to_string()]);
    }
    if opts.regions > 1 {
        argv.extend(["--regions".into(), opts.regions.to_string()]);
    }
    eprintln!("lab: booting the VM (Debian's kernel under QEMU) …");
    let outcome = if opts.shell {
        argv.push("--shell".into());
        // The guest command talks to the serial console, which is this terminal.
        let mut shell = vec![
            "sh".to_string(),
            "-c".into(),
            r#"exec "$@" </dev/ttyS0 >/dev/ttyS0 2>&1"#.into(),
            "lab".into(),
        ];
        shell.extend(argv);
        let argv: Vec<&str> = shell.iter().map(String::as_str).collect();
        VmRun::new("lab", &argv)
            .env(NO_ERROR_BACKTRACE.0, NO_ERROR_BACKTRACE.1)
            .interactive()
            .timeout(SHELL_TIMEOUT)
            .run()?
    } else {
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        VmRun::new("lab", &argv)
            .env(NO_ERROR_BACKTRACE.0, NO_ERROR_BACKTRACE.1)
            .echo()
            .timeout(TIMEOUT)
            .run()?
    };
    eprintln!("{}", outcome.summary());
    let kept = keep_files(&outcome.dir.path().join("region"));
    match &kept {
        Ok(dir) => eprintln!(
            "lab: vc.toml, the agent's log and the WAN capture are in {}",
            dir.display()
        ),
        Err(e) => eprintln!("lab: could not keep the lab's files: {e:#}"),
    }
    if !outcome.passed() {
        let mut outcome = outcome;
        outcome.dir.keep();
        if outcome.rc.is_none() {
            // The guest said nothing of its own: show what the console has.
            eprintln!("{}", outcome.report());
        }
        eprintln!(
            "lab: FAILED (exit status {}); its files are in {}",
            outcome
                .rc
                .map_or_else(|| "none".into(), |rc| rc.to_string()),
            outcome.dir.path().display()
        );
        // The guest has explained itself: an error from here would only add a backtrace.
        std::process::exit(1);
    }
    Ok(())
}

/// Copies the region's files (flat: config, logs, captures) out of the run's directory, which
/// goes with the run, to `target/lab`, replacing the last lab's.
fn keep_files(from: &Path) -> Result<PathBuf> {
    let to = target_dir().join("lab");
    if to.exists() {
        std::fs::remove_dir_all(&to).with_context(|| format!("removing {}", to.display()))?;
    }
    std::fs::create_dir_all(&to)?;
    for entry in std::fs::read_dir(from).with_context(|| format!("{}", from.display()))? {
        let path = entry?.path();
        if path.is_file() {
            std::fs::copy(&path, to.join(path.file_name().unwrap_or_default()))?;
        }
    }
    Ok(to)
}

fn target_dir() -> PathBuf {
    let root = workspace_root();
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), |d| root.join(d))
}

/// Builds `vc-agent` (debug, as the tests do: one build serves both) with the BPF object.
fn build_agent() -> Result<PathBuf> {
    // vc-agent's build.rs embeds this very build (same definition, same target/bpf).
    ebpf::build()?;
    let root = workspace_root();
    sh(Command::new("cargo")
        .current_dir(&root)
        .args(["build", "--quiet", "-p", "vc-agent", "--bin", "vc-agent"]))?;
    let agent = target_dir().join("debug/vc-agent");
    if !agent.is_file() {
        bail!("cargo built no {}", agent.display());
    }
    Ok(agent)
}
