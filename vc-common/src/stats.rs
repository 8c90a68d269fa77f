//! Counters the programs keep and the agent sums over CPUs.
use bytemuck::{Pod, Zeroable};

use crate::{Counted, Hook};

/// Counter slots per hook in the `VERDICTS` per-CPU array.
pub const REASON_SLOTS: u32 = 64;

/// Index of (hook, outcome or drop reason) in the `VERDICTS` array.
#[must_use]
pub const fn verdict_slot(hook: Hook, counted: Counted) -> u32 {
    hook as u32 * REASON_SLOTS + counted.slot()
}

/// Value of the `VERDICTS` per-CPU array.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct VerdictCounter {
    pub packets: u64,
    pub bytes: u64,
}

/// Value of the `TUNNEL_STATS` per-CPU array, indexed by tunnel id.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct TunnelStats {
    /// Encapsulated toward the DC (slow and fast path), bytes of the inner packet.
    pub tx_packets: u64,
    pub tx_bytes: u64,
    /// Of those, encapsulated by the LAN fast path.
    pub fast_path_packets: u64,
    /// Decapsulated from the DC, bytes of the inner packet.
    pub rx_packets: u64,
    pub rx_bytes: u64,
    /// Our keepalives encapsulated toward the DC.
    pub keepalive_tx: u64,
    /// Replies to our keepalives received from the DC.
    pub keepalive_rx: u64,
    /// The DC's keepalives, decapsulated for the kernel to send back.
    pub keepalive_reflected: u64,
    /// SYNs whose MSS was lowered.
    pub mss_clamped: u64,
    /// `bpf_ktime_get_coarse_ns` (`CLOCK_MONOTONIC_COARSE`: `CLOCK_MONOTONIC` to a tick) of
    /// the last packet and last keepalive reply received on this CPU; the agent takes the
    /// maximum.
    pub last_rx_ns: u64,
    pub last_keepalive_rx_ns: u64,
    /// Decapsulated packets the fast path sent straight to their egress device.
    pub rx_fast_path_packets: u64,
}

impl TunnelStats {
    /// Adds another CPU's counters; timestamps take the later one.
    #[must_use]
    pub fn merged(mut self, other: &TunnelStats) -> TunnelStats {
        self.tx_packets += other.tx_packets;
        self.tx_bytes += other.tx_bytes;
        self.fast_path_packets += other.fast_path_packets;
        self.rx_packets += other.rx_packets;
        self.rx_bytes += other.rx_bytes;
        self.keepalive_tx += other.keepalive_tx;
        self.keepalive_rx += other.keepalive_rx;
        self.keepalive_reflected += other.keepalive_reflected;
        self.mss_clamped += other.mss_clamped;
        self.last_rx_ns = self.last_rx_ns.max(other.last_rx_ns);
        self.last_keepalive_rx_ns = self.last_keepalive_rx_ns.max(other.last_keepalive_rx_ns);
        self.rx_fast_path_packets += other.rx_fast_path_packets;
        self
    }
}
