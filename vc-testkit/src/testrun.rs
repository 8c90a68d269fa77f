//! `BPF_PROG_TEST_RUN` for classifiers: the kernel runs a loaded program on a packet we give
//! it, without attaching it anywhere, and hands back the verdict and the rewritten packet.
use std::time::Duration;

use anyhow::{Context, Result};
use aya::programs::{SchedClassifier, TestRun, TestRunOptions, Xdp};

/// Size of the kernel's `struct __sk_buff` (6.1 and 6.18 alike).
const SKB_CTX_LEN: usize = 192;
const IFINDEX: usize = 40;
const GSO_SEGS: usize = 164;
const GSO_SIZE: usize = 176;

/// The `__sk_buff` fields a test can set. `ifindex` 0 or 1 means loopback; anything else must
/// be a device in the caller's namespace.
#[derive(Clone, Copy, Debug, Default)]
pub struct SkbCtx {
    pub ifindex: u32,
    pub gso_segs: u32,
    pub gso_size: u32,
}

impl SkbCtx {
    fn bytes(self) -> [u8; SKB_CTX_LEN] {
        let mut ctx = [0u8; SKB_CTX_LEN];
        ctx[IFINDEX..IFINDEX + 4].copy_from_slice(&self.ifindex.to_ne_bytes());
        ctx[GSO_SEGS..GSO_SEGS + 4].copy_from_slice(&self.gso_segs.to_ne_bytes());
        ctx[GSO_SIZE..GSO_SIZE + 4].copy_from_slice(&self.gso_size.to_ne_bytes());
        ctx
    }
}

/// What one run returned.
#[derive(Debug)]
pub struct Outcome {
    /// The TC action (`TC_ACT_OK` 0, `TC_ACT_SHOT` 2, `TC_ACT_REDIRECT` 7).
    pub action: i32,
    /// The packet as the program left it.
    pub data: Vec<u8>,
    /// Mean time per run, as the kernel measured it.
    pub duration: Duration,
}

pub const TC_ACT_OK: i32 = 0;
/// `TC_ACT_UNSPEC`, tcx's `TCX_NEXT`: "not my decision", the next program or filter runs.
pub const TC_NEXT: i32 = -1;
pub const TC_ACT_SHOT: i32 = 2;
pub const TC_ACT_REDIRECT: i32 = 7;

/// `XDP_DROP`, `XDP_PASS`, `XDP_REDIRECT`.
pub const XDP_DROP: i32 = 1;
pub const XDP_PASS: i32 = 2;
pub const XDP_REDIRECT: i32 = 4;

/// Size of the kernel's `struct xdp_md`.
const XDP_CTX_LEN: usize = 24;
const XDP_INGRESS_IFINDEX: usize = 12;

/// Runs the XDP `program` on `frame` `repeat` times, as received on `ingress_ifindex` (a
/// device in the caller's namespace; 0 for none). The frame gets the kernel's XDP headroom.
pub fn run_xdp(program: &Xdp, frame: &[u8], ingress_ifindex: u32, repeat: u32) -> Result<Outcome> {
    let mut ctx_in = [0u8; XDP_CTX_LEN];
    ctx_in[4..8].copy_from_slice(&u32::try_from(frame.len())?.to_ne_bytes());
    ctx_in[XDP_INGRESS_IFINDEX..XDP_INGRESS_IFINDEX + 4]
        .copy_from_slice(&ingress_ifindex.to_ne_bytes());
    let mut data_out = vec![0u8; frame.len() + 256];
    let mut opts = TestRunOptions::new();
    opts.data_in = Some(frame);
    opts.data_out = Some(&mut data_out);
    if ingress_ifindex != 0 {
        opts.ctx_in = Some(&ctx_in);
    }
    opts.repeat = repeat;
    let result = program.test_run(opts).context("BPF_PROG_TEST_RUN failed")?;
    data_out.truncate(result.data_size_out as usize);
    Ok(Outcome {
        action: result.return_value.cast_signed(),
        data: data_out,
        duration: result.duration,
    })
}

/// Runs `program` on `frame` (an Ethernet frame, at least 14 bytes) `repeat` times.
pub fn run(program: &SchedClassifier, frame: &[u8], ctx: SkbCtx, repeat: u32) -> Result<Outcome> {
    let ctx_in = ctx.bytes();
    // Room for what encapsulation adds.
    let mut data_out = vec![0u8; frame.len() + 256];
    let mut opts = TestRunOptions::new();
    opts.data_in = Some(frame);
    opts.data_out = Some(&mut data_out);
    opts.ctx_in = Some(&ctx_in);
    opts.repeat = repeat;
    let result = program.test_run(opts).context("BPF_PROG_TEST_RUN failed")?;
    data_out.truncate(result.data_size_out as usize);
    Ok(Outcome {
        action: result.return_value.cast_signed(),
        data: data_out,
        duration: result.duration,
    })
}
