//! The BPF object embedded at build time, and loading it through the verifier.
use anyhow::{Context, Result, bail};
use aya::{
    Ebpf, EbpfLoader,
    programs::{SchedClassifier, Xdp},
};
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
    /// GRE-only mode's XDP encapsulation at LAN ingress (ahead of `LanRx`).
    XdpLanRx,
    /// GRE-only mode's XDP decapsulation at WAN ingress (ahead of `WanRx`).
    XdpWanRx,
    /// The XDP baseline: passes at once.
    XdpNoop,
}

/// GRE-only mode's XDP programs.
pub const XDP_PROGRAMS: [Program; 2] = [Program::XdpLanRx, Program::XdpWanRx];

/// The datapath's TC programs (the baseline is not one of them).
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
            Program::XdpLanRx => "vc_xdp_lan_rx",
            Program::XdpWanRx => "vc_xdp_wan_rx",
            Program::XdpNoop => "vc_xdp_noop",
        }
    }

    /// The block of verdict counters it writes. An XDP program counts what it forwards (or
    /// drops); what it passes up, the TC program behind it counts.
    #[must_use]
    pub const fn hook(self) -> Option<Hook> {
        match self {
            Program::TunnelTx => Some(Hook::TunnelTx),
            Program::LanRx => Some(Hook::LanRx),
            Program::WanRx => Some(Hook::WanRx),
            Program::XdpLanRx => Some(Hook::XdpLanRx),
            Program::XdpWanRx => Some(Hook::XdpWanRx),
            Program::WanGuard => Some(Hook::WanTxGuard),
            Program::Noop | Program::XdpNoop => None,
        }
    }

    /// An XDP program (the others are TC classifiers).
    #[must_use]
    pub const fn is_xdp(self) -> bool {
        matches!(
            self,
            Program::XdpLanRx | Program::XdpWanRx | Program::XdpNoop
        )
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
        let loaded = if program.is_xdp() {
            xdp(&mut ebpf, program)?.load()
        } else {
            classifier(&mut ebpf, program)?.load()
        };
        loaded.with_context(|| format!("the verifier rejected {}", program.name()))?;
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

/// An XDP program of a loaded object.
pub fn xdp(ebpf: &mut Ebpf, program: Program) -> Result<&mut Xdp> {
    ebpf.program_mut(program.name())
        .with_context(|| format!("{} is not in the BPF object", program.name()))?
        .try_into()
        .with_context(|| format!("{} is not an XDP program", program.name()))
}
