//! Test support shared by vc's integration tests: privilege gating, network namespaces, real
//! peers (BIRD, charon), captures and the QEMU VM.
pub mod capture;
pub mod charon;
pub mod netns;
pub mod privilege;
pub mod traffic;
pub mod vm;

pub use netns::{Daemon, NetNs, veth, wait_for};
pub use privilege::privileged;
