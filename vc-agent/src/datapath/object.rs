//! The BPF object embedded at build time, and loading it through the verifier.
use anyhow::{Context, Result, bail};
use aya::{Ebpf, EbpfLoader, programs::SchedClassifier};
use vc_common::Hook;

static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/vc-ebpf"));

/// The programs of the object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Program {
    TunnelTx,
    LanRx,
    WanRx,
    WanGuard,
    /// The benchmarks' baseline: returns at once.
    Noop,
}

/// The datapath's programs (the baseline is not one of them).
pub const PROGRAMS: [Program; 4] = [
    Program::TunnelTx,
    Program::LanRx,
    Program::WanRx,
    Program::WanGuard,
];

impl Program {
    /// The function name in the object.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Program::TunnelTx => "vc_tunnel_tx",
            Program::LanRx => "vc_lan_rx",
            Program::WanRx => "vc_wan_rx",
            Program::WanGuard => "vc_wan_guard",
            Program::Noop => "vc_noop",
        }
    }

    /// The block of verdict counters it writes.
    #[must_use]
    pub const fn hook(self) -> Option<Hook> {
        match self {
            Program::TunnelTx => Some(Hook::TunnelTx),
            Program::LanRx => Some(Hook::LanRx),
            Program::WanRx => Some(Hook::WanRx),
            Program::WanGuard => Some(Hook::WanTxGuard),
            Program::Noop => None,
        }
    }
}

/// The embedded object's bytes, or why there are none.
pub fn object() -> Result<&'static [u8]> {
    if OBJECT.is_empty() {
        bail!(
            "this vc-agent was built without its BPF object (bpf-linker missing or \
             AYA_BUILD_SKIP set): run `cargo xtask setup` and rebuild"
        );
    }
    Ok(OBJECT)
}

/// Loads the object: creates its maps and loads `programs` (and nothing else) through the
/// verifier. Nothing is attached.
pub fn load(programs: &[Program]) -> Result<Ebpf> {
    let mut ebpf = EbpfLoader::new()
        .load(object()?)
        .context("loading the BPF object")?;
    for &program in programs {
        classifier(&mut ebpf, program)?
            .load()
            .with_context(|| format!("the verifier rejected {}", program.name()))?;
    }
    Ok(ebpf)
}

/// A program of a loaded object.
pub fn classifier(ebpf: &mut Ebpf, program: Program) -> Result<&mut SchedClassifier> {
    ebpf.program_mut(program.name())
        .with_context(|| format!("{} is not in the BPF object", program.name()))?
        .try_into()
        .with_context(|| format!("{} is not a classifier", program.name()))
}
