//! The names of the datapath's maps: the symbol of each map in the BPF object, and its pin
//! name. `vc-ebpf` names its map statics exactly so (`#[map]` takes a static's name and
//! accepts only a string literal, not a constant); the `bpf` tests check that the object
//! holds exactly [`ALL`].

/// Declares each name as a constant whose value is its own identifier, and [`ALL`].
macro_rules! map_names {
    ($($(#[$doc:meta])* $name:ident),+ $(,)?) => {
        $(
            $(#[$doc])*
            pub const $name: &str = stringify!($name);
        )+
        /// Every map of the object.
        pub const ALL: [&str; [$($name),+].len()] = [$($name),+];
    };
}

map_names! {
    /// Datapath-wide settings, one entry.
    SETTINGS,
    /// Tunnels by id.
    TUNNELS,
    /// Tunnel id by the ifindex of its hidden peer.
    TUNNEL_BY_PEER,
    /// Tunnel id by the DC's GRE transport address.
    TUNNEL_BY_REMOTE,
    /// DC prefixes → the tunnels that advertised them.
    ROUTES,
    /// Prefixes that never leave the WAN in clear in IPsec mode.
    PROTECTED,
    /// The CPE's own addresses.
    LOCAL_ADDRS,
    /// Packets and bytes by (hook, outcome or drop reason).
    VERDICTS,
    /// Per-tunnel traffic and keepalive counters.
    TUNNEL_STATS,
    /// Outer IP ID counters, one per CPU (the datapath's own).
    IP_ID,
}

#[cfg(test)]
mod tests {
    use super::{ALL, TUNNEL_BY_PEER};

    #[test]
    fn names_are_their_identifiers_and_unique() {
        assert_eq!(TUNNEL_BY_PEER, "TUNNEL_BY_PEER");
        assert_eq!(ALL.len(), 10);
        for (i, a) in ALL.iter().enumerate() {
            assert!(!ALL[i + 1..].contains(a), "{a} twice");
        }
    }
}
