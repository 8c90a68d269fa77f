//! vc's packet programs. Where each one sits and why: `docs/datapath.md`.
//!
//! Every entry point is thin: it runs its `try_*` function, which returns a verdict (the TC
//! action and the outcome) or the reason to drop, and leaves through [`stats::finish`], the
//! one place that counts.
#![cfg_attr(target_arch = "bpf", no_std, no_main)]
#![cfg_attr(
    target_arch = "bpf",
    expect(
        clippy::inline_always,
        reason = "one program per hook: everything is inlined, no BPF-to-BPF calls for the \
                  verifier to track"
    )
)]

#[cfg(target_arch = "bpf")]
mod fib;
#[cfg(target_arch = "bpf")]
mod gre;
#[cfg(target_arch = "bpf")]
mod maps;
#[cfg(target_arch = "bpf")]
mod mss;
#[cfg(target_arch = "bpf")]
mod parse;
#[cfg(target_arch = "bpf")]
mod programs;
#[cfg(target_arch = "bpf")]
mod route;
#[cfg(target_arch = "bpf")]
mod stats;
#[cfg(target_arch = "bpf")]
mod zero;

#[cfg(target_arch = "bpf")]
#[expect(
    clippy::needless_pass_by_value,
    clippy::cast_possible_truncation,
    reason = "the #[classifier] macro wants the context by value; an XDP frame's length fits \
              u32"
)]
mod entry {
    use aya_ebpf::{
        macros::{classifier, xdp},
        programs::{TcContext, XdpContext},
    };
    use vc_common::Hook;

    use crate::{
        programs,
        stats::{finish, finish_xdp},
    };

    #[classifier]
    pub fn vc_tunnel_tx(ctx: TcContext) -> i32 {
        let len = ctx.len();
        finish(
            Hook::TunnelTx,
            len,
            programs::tunnel_tx::try_tunnel_tx(&ctx),
        )
    }

    #[classifier]
    pub fn vc_lan_rx(ctx: TcContext) -> i32 {
        let len = ctx.len();
        finish(Hook::LanRx, len, programs::lan_rx::try_lan_rx(&ctx))
    }

    #[classifier]
    pub fn vc_wan_rx(ctx: TcContext) -> i32 {
        let len = ctx.len();
        finish(Hook::WanRx, len, programs::wan_rx::try_wan_rx(&ctx))
    }

    #[classifier]
    pub fn vc_wan_guard(ctx: TcContext) -> i32 {
        let len = ctx.len();
        finish(
            Hook::WanTxGuard,
            len,
            programs::wan_guard::try_wan_guard(&ctx),
        )
    }

    /// GRE-only mode's encapsulation at LAN ingress, ahead of `vc_lan_rx`.
    #[xdp]
    pub fn vc_xdp_lan_rx(ctx: XdpContext) -> u32 {
        let len = (ctx.data_end() - ctx.data()) as u32;
        finish_xdp(Hook::XdpLanRx, len, programs::xdp::try_xdp_lan_rx(&ctx))
    }

    /// GRE-only mode's decapsulation at WAN ingress, ahead of `vc_wan_rx`.
    #[xdp]
    pub fn vc_xdp_wan_rx(ctx: XdpContext) -> u32 {
        let len = (ctx.data_end() - ctx.data()) as u32;
        finish_xdp(Hook::XdpWanRx, len, programs::xdp::try_xdp_wan_rx(&ctx))
    }

    /// The XDP baseline of `cargo xtask bench`.
    #[xdp]
    pub fn vc_xdp_noop(_ctx: XdpContext) -> u32 {
        2
    }

    /// The baseline of `cargo xtask bench`: a classifier that does nothing, so per-packet costs
    /// are reported as a ratio to the fixed cost of running any program.
    #[classifier]
    pub fn vc_noop(_ctx: TcContext) -> i32 {
        0
    }
}

#[cfg(target_arch = "bpf")]
#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";

#[cfg(target_arch = "bpf")]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[cfg(not(target_arch = "bpf"))]
fn main() {}
