//! `cargo xtask fuzz`: a bounded run of every fuzz target in `fuzz/` (cargo-fuzz, libFuzzer,
//! the image's nightly), seeded with the kept corpus `fuzz/corpus/<target>`. New inputs go to
//! a scratch directory, so a run never dirties the tree; a crash fails the task and leaves the
//! input in `fuzz/artifacts/<target>/` (add it to the corpus once fixed: the stable test
//! `vc-wire/tests/fuzz_corpus.rs` replays the corpus on every `cargo test`).
use std::{fs, process::Command};

use anyhow::{Context, Result, bail};

use crate::{
    ebpf::BPF_TOOLCHAIN,
    setup,
    util::{output, workspace_root},
};

#[derive(clap::Args)]
pub struct Options {
    /// Seconds per target.
    #[arg(long, default_value_t = 18)]
    pub seconds: u64,
    /// Only these targets (default: all of `cargo fuzz list`).
    #[arg(long)]
    pub target: Vec<String>,
}

pub fn run(opts: &Options) -> Result<()> {
    setup::cargo_fuzz()?;
    let root = workspace_root();
    let targets = if opts.target.is_empty() {
        output(
            Command::new("cargo")
                .current_dir(&root)
                .args(["fuzz", "list"]),
        )
        .context("cargo fuzz list")?
        .lines()
        .map(str::to_string)
        .collect()
    } else {
        opts.target.clone()
    };
    if targets.is_empty() {
        bail!("no fuzz targets in {}", root.join("fuzz").display());
    }
    for target in &targets {
        let scratch = root.join("target/fuzz-scratch").join(target);
        let _ = fs::remove_dir_all(&scratch);
        fs::create_dir_all(&scratch).with_context(|| format!("creating {}", scratch.display()))?;
        let mut cmd = Command::new("cargo");
        // cargo-fuzz's default build: optimized, with debug assertions and overflow checks,
        // so an arithmetic overflow in a decoder is a crash.
        cmd.current_dir(&root)
            .arg(format!("+{BPF_TOOLCHAIN}"))
            .args(["fuzz", "run", target])
            .arg(&scratch)
            .arg(root.join("fuzz/corpus").join(target))
            .arg("--")
            .arg(format!("-max_total_time={}", opts.seconds))
            .arg("-rss_limit_mb=2048")
            .arg("-print_final_stats=1")
            .env_remove("RUSTC")
            .env_remove("RUSTC_WRAPPER")
            .env_remove("RUSTC_WORKSPACE_WRAPPER")
            .env_remove("RUSTUP_TOOLCHAIN");
        // libFuzzer reports every new input; keep that in a log and show the summary (or,
        // on a crash, the end of the log).
        let log = root
            .join("target/fuzz-scratch")
            .join(format!("{target}.log"));
        let file = fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        cmd.stdout(file.try_clone()?).stderr(file);
        eprintln!(
            "fuzz: {target} for {} s (log: {})",
            opts.seconds,
            log.display()
        );
        let status = cmd.status().context("cargo fuzz")?;
        let text = fs::read_to_string(&log).unwrap_or_default();
        if !status.success() {
            let tail: Vec<&str> = text.lines().rev().take(40).collect();
            for line in tail.iter().rev() {
                eprintln!("{line}");
            }
            bail!("fuzz target {target} failed: the crashing input is in fuzz/artifacts/{target}/");
        }
        for line in text.lines().filter(|l| {
            l.starts_with("stat::number_of_executed_units")
                || l.starts_with("stat::new_units_added")
        }) {
            eprintln!("  {line}");
        }
    }
    Ok(())
}
