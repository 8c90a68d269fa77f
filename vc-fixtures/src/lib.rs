//! What vc-agent's integration tests and the benchmarks (`vc-bench`) share: one module per
//! lab or fixture. A dev-only crate (vc-agent dev-depends on it, as tokio does on
//! tokio-test), so that tests and benches use it as a library instead of including each
//! other's files.
//!
//! | module | job | used by |
//! |---|---|---|
//! | `bpf_test_run` | one loaded datapath, its programs run on crafted packets (`BPF_PROG_TEST_RUN`) | `bpf` tests, `vc-bench bpf` |
//! | `gre_lab` | a Virtual Connect in namespaces, GRE only, vc datapaths at both ends | `datapath`, `agent`, `diagnose` tests, `vc-bench iperf` |
//! | `agent_lab` | the real `vc-agent` on the GRE lab's CPE, BIRD as each DC's BGP speaker | `agent`, `diagnose` tests |
//! | `ike_lab` | a CPE and a DC namespace with charon, vc's IPsec controller on the CPE | `ipsec_charon`, `ipsec_vm`, `diagnose` tests |
//! | `bgp_lab` | vc's BGP speakers against BIRD DCs in namespaces | `bgp_bird` tests |
//! | `vm_lab` | the IPsec lab inside the VM: LAN host, CPE (vc or kernel GRE), DC | `vm_datapath` tests, `vc-bench vm` |
//! | `region_agent` | the whole agent on the VM's region: its status and log, the CPE's tunnel MTU, where captures go | `vm_agent`, `vm_scenarios`, `vm_paths`, `vm_wan` tests |
//! | `watched` | a datapath up with the agent's watch task (repairs what the host removes) | `datapath`, `vm_datapath` tests |
/// Runs `f` to completion on a current-thread runtime of the calling thread (which a test
/// may have moved into a namespace).
pub fn block_on<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(f)
}

pub mod agent_lab;
pub mod bgp_lab;
pub mod bpf_test_run;
pub mod gre_lab;
pub mod ike_lab;
pub mod region_agent;
pub mod vm_lab;
pub mod watched;
