//! What the routes should be, from what the sessions accept and which tunnels are alive.
//! Pure: the manager diffs this against the LPM map and the kernel.
//!
//! The design (one rule for both places): a prefix maps to the set of tunnels whose session
//! accepts it *and* whose liveness is up. The datapath takes the lowest-numbered tunnel of the
//! set (it also checks the tunnel's UP flag, which the manager mirrors from the same
//! liveness); the kernel route goes via that same tunnel. A prefix whose set is empty has no
//! entry at all, so both the LPM lookup and the kernel fall back to the covering prefix: a
//! DC's /25 that loses its tunnel resolves to the /24 over the other one (R21).
//!
//! After a restart of the agent (graceful restart, RFC 4724), a tunnel also holds the routes
//! the previous run installed, as *stale*: they count as accepted until that tunnel's session
//! has sent End-of-RIB (or the restart time is over), so traffic never loses its route while
//! the session comes back.
use std::collections::{BTreeMap, BTreeSet};

use ipnet::Ipv4Net;
use vc_common::MAX_TUNNELS;

/// The inputs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RouteTable {
    learned: BTreeMap<u32, BTreeSet<Ipv4Net>>,
    /// Tunnels whose liveness is down (absent = alive).
    dead: BTreeSet<u32>,
    /// Per tunnel, what a previous run installed and no End-of-RIB has confirmed or swept yet.
    stale: BTreeMap<u32, BTreeSet<Ipv4Net>>,
}

impl RouteTable {
    /// Replaces what `tunnel`'s session accepts. Returns whether anything changed.
    pub fn set_learned(&mut self, tunnel: u32, prefixes: BTreeSet<Ipv4Net>) -> bool {
        if tunnel >= MAX_TUNNELS {
            return false;
        }
        if self
            .learned
            .get(&tunnel)
            .map_or(prefixes.is_empty(), |old| *old == prefixes)
        {
            return false;
        }
        if prefixes.is_empty() {
            self.learned.remove(&tunnel);
        } else {
            self.learned.insert(tunnel, prefixes);
        }
        true
    }

    /// Keeps `prefixes` for `tunnel` as stale until [`RouteTable::sweep`].
    pub fn set_stale(&mut self, tunnel: u32, prefixes: BTreeSet<Ipv4Net>) {
        if tunnel < MAX_TUNNELS && !prefixes.is_empty() {
            self.stale.insert(tunnel, prefixes);
        }
    }

    /// Forgets `tunnel`'s stale prefixes (its End-of-RIB came). Returns how many there were.
    pub fn sweep(&mut self, tunnel: u32) -> usize {
        self.stale.remove(&tunnel).map_or(0, |s| s.len())
    }

    /// Forgets every stale prefix (the restart time is over). Returns how many there were.
    pub fn sweep_all(&mut self) -> usize {
        std::mem::take(&mut self.stale)
            .values()
            .map(BTreeSet::len)
            .sum()
    }

    /// Per tunnel, the stale prefixes still kept.
    #[must_use]
    pub fn stale(&self) -> &BTreeMap<u32, BTreeSet<Ipv4Net>> {
        &self.stale
    }

    /// Forgets everything learned and stale: nothing is wanted any more.
    pub fn clear(&mut self) {
        self.learned.clear();
        self.stale.clear();
    }

    /// Returns whether anything changed.
    pub fn set_alive(&mut self, tunnel: u32, alive: bool) -> bool {
        if alive {
            self.dead.remove(&tunnel)
        } else {
            self.dead.insert(tunnel)
        }
    }

    #[must_use]
    pub fn is_alive(&self, tunnel: u32) -> bool {
        !self.dead.contains(&tunnel)
    }

    #[must_use]
    pub fn learned(&self, tunnel: u32) -> BTreeSet<Ipv4Net> {
        self.learned.get(&tunnel).cloned().unwrap_or_default()
    }

    /// Prefix → tunnel mask (bit i = tunnel i), only non-empty masks.
    #[must_use]
    pub fn desired(&self) -> BTreeMap<Ipv4Net, u32> {
        let mut out: BTreeMap<Ipv4Net, u32> = BTreeMap::new();
        for (tunnel, prefixes) in self.learned.iter().chain(&self.stale) {
            if !self.is_alive(*tunnel) {
                continue;
            }
            for prefix in prefixes {
                *out.entry(*prefix).or_default() |= 1 << tunnel;
            }
        }
        out
    }
}

/// The tunnel a mask's traffic takes: the lowest-numbered one, as the datapath picks.
#[must_use]
pub fn first_tunnel(mask: u32) -> Option<u32> {
    (mask != 0).then(|| mask.trailing_zeros())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> Ipv4Net {
        s.parse().expect("prefix")
    }

    fn set(v: &[&str]) -> BTreeSet<Ipv4Net> {
        v.iter().map(|s| net(s)).collect()
    }

    #[test]
    fn each_25_on_its_tunnel_and_the_24_on_both() {
        let mut t = RouteTable::default();
        assert!(t.set_learned(0, set(&["198.18.10.0/25", "198.18.10.0/24"])));
        assert!(t.set_learned(1, set(&["198.18.10.128/25", "198.18.10.0/24"])));
        assert!(
            !t.set_learned(1, set(&["198.18.10.128/25", "198.18.10.0/24"])),
            "idempotent"
        );
        let d = t.desired();
        assert_eq!(d[&net("198.18.10.0/25")], 0b01);
        assert_eq!(d[&net("198.18.10.128/25")], 0b10);
        assert_eq!(d[&net("198.18.10.0/24")], 0b11);
        assert_eq!(first_tunnel(0b11), Some(0));
        assert_eq!(first_tunnel(0b10), Some(1));
        assert_eq!(first_tunnel(0), None);
    }

    #[test]
    fn a_dead_tunnel_or_lost_session_leaves_only_the_other() {
        let mut t = RouteTable::default();
        t.set_learned(0, set(&["198.18.10.0/25", "198.18.10.0/24"]));
        t.set_learned(1, set(&["198.18.10.128/25", "198.18.10.0/24"]));
        assert!(t.set_alive(1, false));
        assert!(!t.set_alive(1, false));
        let d = t.desired();
        assert!(!d.contains_key(&net("198.18.10.128/25")));
        assert_eq!(d[&net("198.18.10.0/24")], 0b01);
        t.set_alive(1, true);
        assert!(t.set_learned(0, BTreeSet::new()));
        let d = t.desired();
        assert_eq!(d.len(), 2);
        assert_eq!(d[&net("198.18.10.0/24")], 0b10);
    }

    #[test]
    fn stale_prefixes_count_until_their_tunnels_end_of_rib() {
        let mut t = RouteTable::default();
        t.set_stale(
            0,
            set(&["198.18.10.0/25", "198.18.10.0/24", "198.18.99.0/24"]),
        );
        t.set_stale(1, set(&["198.18.10.128/25", "198.18.10.0/24"]));
        let d = t.desired();
        assert_eq!(
            d.len(),
            4,
            "before any session: what the last run installed"
        );
        assert_eq!(d[&net("198.18.10.0/24")], 0b11);
        // Tunnel 0's session is back without 198.18.99.0/24: kept until its End-of-RIB.
        t.set_learned(0, set(&["198.18.10.0/25", "198.18.10.0/24"]));
        assert!(t.desired().contains_key(&net("198.18.99.0/24")));
        assert_eq!(t.sweep(0), 3);
        let d = t.desired();
        assert!(!d.contains_key(&net("198.18.99.0/24")), "swept");
        assert_eq!(d[&net("198.18.10.0/25")], 0b01, "learned again: stays");
        assert_eq!(d[&net("198.18.10.128/25")], 0b10, "tunnel 1 still stale");
        // A dead tunnel's stale routes do not count either.
        t.set_alive(1, false);
        assert!(!t.desired().contains_key(&net("198.18.10.128/25")));
        assert_eq!(t.sweep_all(), 2);
        assert!(t.stale().is_empty());
        t.clear();
        assert!(t.desired().is_empty());
    }

    #[test]
    fn tunnel_ids_outside_the_datapath_are_ignored() {
        let mut t = RouteTable::default();
        assert!(!t.set_learned(MAX_TUNNELS, set(&["198.18.10.0/24"])));
        assert!(t.desired().is_empty());
    }
}
