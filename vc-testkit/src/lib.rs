//! Test support shared by vc's integration tests: privilege gating, network namespaces, a
//! packet builder, `BPF_PROG_TEST_RUN`, traffic and captures, real peers, the QEMU VM, and
//! the simulated region of `cargo xtask lab`.
pub mod bird;
pub mod bpffs;
pub mod capture;
pub mod charon;
pub mod metrics;
pub mod netns;
pub mod packet;
pub mod privilege;
pub mod region;
pub mod testrun;
pub mod traffic;
pub mod vm;

pub use netns::{Daemon, NetNs, veth, wait_for};
pub use privilege::privileged;
