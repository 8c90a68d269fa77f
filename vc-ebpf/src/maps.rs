//! The maps. Keys and values come from `vc-common`; the agent fills and reads them. Each
//! static is named as in `vc_common::maps` (the name `#[map]` gives the map, by which the
//! agent opens and pins it): the `bpf` tests check that the object holds exactly those maps.
use aya_ebpf::{
    macros::map,
    maps::{Array, HashMap, LpmTrie, PerCpuArray},
};
use vc_common::{
    Hook, LOCAL_ADDRS_MAX, MAX_TUNNELS, PROTECTED_MAX, ProtectedPrefix, REASON_SLOTS, ROUTES_MAX,
    Route, Settings, Tunnel, TunnelStats, VerdictCounter,
};

/// Datapath-wide settings, one entry.
#[map]
pub static SETTINGS: Array<Settings> = Array::with_max_entries(1, 0);

/// Tunnels by id.
#[map]
pub static TUNNELS: Array<Tunnel> = Array::with_max_entries(MAX_TUNNELS, 0);

/// Tunnel id by the ifindex of its hidden peer (`vc-dcNp`). The programs find a tunnel by
/// scanning [`TUNNELS`] ([`tunnel_by_peer`]); the agent keeps this index for tools.
#[map]
pub static TUNNEL_BY_PEER: HashMap<u32, u32> = HashMap::with_max_entries(MAX_TUNNELS, 0);

/// Tunnel id by the DC's GRE transport address; the programs scan [`TUNNELS`]
/// ([`tunnel_by_remote`]), the agent keeps this index for tools.
#[map]
pub static TUNNEL_BY_REMOTE: HashMap<u32, u32> = HashMap::with_max_entries(MAX_TUNNELS, 0);

/// DC prefixes learned over BGP → the tunnels that advertised them.
#[map]
pub static ROUTES: LpmTrie<u32, Route> = LpmTrie::with_max_entries(ROUTES_MAX, 0);

/// Prefixes that never leave the WAN in clear in IPsec mode (configured, not learned, so the
/// guard holds while BGP is down).
#[map]
pub static PROTECTED: LpmTrie<u32, ProtectedPrefix> = LpmTrie::with_max_entries(PROTECTED_MAX, 0);

/// The CPE's own addresses: a LAN packet with one of them as its source is spoofed.
#[map]
pub static LOCAL_ADDRS: HashMap<u32, u32> = HashMap::with_max_entries(LOCAL_ADDRS_MAX, 0);

/// Packets and bytes by (hook, outcome or drop reason): see `vc_common::verdict_slot`.
#[expect(clippy::cast_possible_truncation, reason = "6 hooks")]
#[map]
pub static VERDICTS: PerCpuArray<VerdictCounter> =
    PerCpuArray::with_max_entries(Hook::ALL.len() as u32 * REASON_SLOTS, 0);

/// Per-tunnel traffic and keepalive counters.
#[map]
pub static TUNNEL_STATS: PerCpuArray<TunnelStats> = PerCpuArray::with_max_entries(MAX_TUNNELS, 0);

/// Outer IP IDs: one counter per CPU (see `gre::outer_id`). The datapath's own: the agent
/// neither reads nor writes it.
#[map]
pub static IP_ID: PerCpuArray<u32> = PerCpuArray::with_max_entries(1, 0);

/// The settings, or the all-zero default (IPsec mode, no fast path) if the agent wrote none.
#[inline(always)]
pub fn settings() -> Settings {
    SETTINGS.get(0).copied().unwrap_or_default()
}

#[inline(always)]
pub fn tunnel(id: u32) -> Option<&'static Tunnel> {
    TUNNELS.get(id).filter(|t| t.is_configured())
}

#[inline(always)]
pub fn tunnel_stats(id: u32) -> Option<&'static mut TunnelStats> {
    // SAFETY: a per-CPU slot is only touched by programs on this CPU, one at a time.
    TUNNEL_STATS.get_ptr_mut(id).map(|p| unsafe { &mut *p })
}

/// The configured tunnel whose hidden peer is `ifindex`, and its id. A scan of the few
/// tunnels: array lookups the verifier inlines, where a hash lookup is a call and a hash.
#[inline(always)]
pub fn tunnel_by_peer(ifindex: u32) -> Option<(u32, &'static Tunnel)> {
    find_tunnel(|t| t.peer_ifindex == ifindex)
}

/// The configured tunnel to the DC whose GRE address is `remote`, and its id.
#[inline(always)]
pub fn tunnel_by_remote(remote: u32) -> Option<(u32, &'static Tunnel)> {
    find_tunnel(|t| t.remote_gre == remote)
}

#[inline(always)]
fn find_tunnel(matches: impl Fn(&Tunnel) -> bool) -> Option<(u32, &'static Tunnel)> {
    (0..MAX_TUNNELS).find_map(|id| tunnel(id).filter(|t| matches(t)).map(|t| (id, t)))
}
