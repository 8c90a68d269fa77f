//! The packet programs, run by the kernel on crafted packets (`BPF_PROG_TEST_RUN`): verdicts,
//! output bytes and counters. Needs root; skips without it unless `VC_REQUIRE_PRIV=1`.
use vc_fixtures::bpf_test_run as fixture;

mod fast_path;
mod golden;
mod lan_rx;
mod malformed;
mod maps;
mod mss;
mod tunnel_tx;
mod verifier;
mod wan_guard;
mod wan_rx;
mod xdp;
