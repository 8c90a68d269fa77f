//! Typed access to the datapath's maps: what the agent writes (settings, tunnels, routes) and
//! reads (counters). Works the same on maps of a fresh load and on maps adopted from pins.
use std::{net::Ipv4Addr, path::Path};

use anyhow::{Context, Result, bail};
use aya::{
    Ebpf,
    maps::{Array, HashMap, LpmTrie, Map, MapData, PerCpuArray, lpm_trie::Key},
};
use ipnet::Ipv4Net;
use vc_common::{
    Counted, Hook, LAYOUT_VERSION, MAX_TUNNELS, ProtectedPrefix, Route, Settings, Tunnel,
    TunnelStats, VerdictCounter, ipv4,
    maps::{
        LOCAL_ADDRS, PROTECTED, ROUTES, SETTINGS, TUNNEL_BY_PEER, TUNNEL_BY_REMOTE, TUNNEL_STATS,
        TUNNELS, VERDICTS,
    },
    verdict_slot,
};

/// An IPv4 prefix, always in canonical form (host bits zero).
pub type Ipv4Prefix = Ipv4Net;

/// One verdict counter, summed over CPUs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VerdictCount {
    pub hook: Hook,
    /// Why the packets left the program as they did: an outcome, or a drop and its reason.
    pub reason: Counted,
    pub packets: u64,
    pub bytes: u64,
}

pub struct DatapathMaps {
    settings: Array<MapData, Settings>,
    tunnels: Array<MapData, Tunnel>,
    tunnel_by_peer: HashMap<MapData, u32, u32>,
    tunnel_by_remote: HashMap<MapData, u32, u32>,
    routes: LpmTrie<MapData, u32, Route>,
    protected: LpmTrie<MapData, u32, ProtectedPrefix>,
    local_addrs: HashMap<MapData, u32, u32>,
    verdicts: PerCpuArray<MapData, VerdictCounter>,
    tunnel_stats: PerCpuArray<MapData, TunnelStats>,
}

impl DatapathMaps {
    /// Takes the maps out of a freshly loaded object (the programs keep using them), pinning
    /// each under `pin_dir` (a directory on a BPF filesystem) by its name when given.
    pub fn take(ebpf: &mut Ebpf, pin_dir: Option<&Path>) -> Result<Self> {
        Self::build(|name| {
            let map = ebpf
                .take_map(name)
                .with_context(|| format!("{name} not in the object"))?;
            if let Some(dir) = pin_dir {
                map.pin(dir.join(name))
                    .with_context(|| format!("pinning {name} in {}", dir.display()))?;
            }
            Ok(map)
        })
    }

    /// Opens maps pinned by [`DatapathMaps::take`] (a restarted agent adopting a running
    /// datapath). Refuses maps written under another layout version; maps never written
    /// (version 0: the start that pinned them was killed before writing) are taken, for the
    /// adopter to write (see [`DatapathMaps::written`]).
    pub fn from_pins(dir: &Path) -> Result<Self> {
        let maps = Self::build(|name| {
            let path = dir.join(name);
            let data = MapData::from_pin(&path)
                .with_context(|| format!("opening pinned map {}", path.display()))?;
            Map::from_map_data(data).with_context(|| format!("pinned map {}", path.display()))
        })?;
        let found = maps.settings()?.layout_version;
        if found != LAYOUT_VERSION && found != 0 {
            bail!(
                "the maps pinned in {} have layout version {found}, this agent writes \
                 {LAYOUT_VERSION}: tear the datapath down before upgrading",
                dir.display()
            );
        }
        Ok(maps)
    }

    fn build(mut open: impl FnMut(&str) -> Result<Map>) -> Result<Self> {
        fn typed<T: TryFrom<Map, Error = aya::maps::MapError>>(map: Map, name: &str) -> Result<T> {
            T::try_from(map).with_context(|| format!("map {name} has an unexpected type"))
        }
        Ok(DatapathMaps {
            settings: typed(open(SETTINGS)?, SETTINGS)?,
            tunnels: typed(open(TUNNELS)?, TUNNELS)?,
            tunnel_by_peer: typed(open(TUNNEL_BY_PEER)?, TUNNEL_BY_PEER)?,
            tunnel_by_remote: typed(open(TUNNEL_BY_REMOTE)?, TUNNEL_BY_REMOTE)?,
            routes: typed(open(ROUTES)?, ROUTES)?,
            protected: typed(open(PROTECTED)?, PROTECTED)?,
            local_addrs: typed(open(LOCAL_ADDRS)?, LOCAL_ADDRS)?,
            verdicts: typed(open(VERDICTS)?, VERDICTS)?,
            tunnel_stats: typed(open(TUNNEL_STATS)?, TUNNEL_STATS)?,
        })
    }

    /// Whether an agent ever wrote the settings (and so the tunnels): false for maps pinned
    /// by a start that died before writing them.
    pub fn written(&self) -> Result<bool> {
        Ok(self.settings()?.layout_version != 0)
    }

    pub fn settings(&self) -> Result<Settings> {
        self.settings.get(&0, 0).context("reading SETTINGS")
    }

    /// Sets the `settings_flags` (and the layout version), leaving the XDP devices as they
    /// are.
    pub fn set_settings(&mut self, flags: u32) -> Result<()> {
        let mut settings = self.settings()?;
        settings.flags = flags;
        settings.layout_version = LAYOUT_VERSION;
        self.settings
            .set(0, settings, 0)
            .context("writing SETTINGS")
    }

    /// The LAN and WAN devices (ifindexes) the XDP fast paths may redirect between; 0, 0:
    /// none (see [`Settings::xdp_lan_ifindex`]).
    pub fn set_xdp_devices(&mut self, lan: u32, wan: u32) -> Result<()> {
        let mut settings = self.settings()?;
        settings.xdp_lan_ifindex = lan;
        settings.xdp_wan_ifindex = wan;
        self.settings
            .set(0, settings, 0)
            .context("writing SETTINGS")
    }

    pub fn tunnel(&self, id: u32) -> Result<Tunnel> {
        check_id(id)?;
        self.tunnels
            .get(&id, 0)
            .with_context(|| format!("reading tunnel {id}"))
    }

    /// Installs tunnel `id` and the indexes the programs find it by. Replaces what was there.
    pub fn set_tunnel(&mut self, id: u32, tunnel: &Tunnel) -> Result<()> {
        check_id(id)?;
        let old = self.tunnel(id)?;
        if old.is_configured() {
            self.unindex(&old)?;
        }
        self.tunnels
            .set(id, tunnel, 0)
            .with_context(|| format!("writing tunnel {id}"))?;
        self.tunnel_by_peer
            .insert(tunnel.peer_ifindex, id, 0)
            .with_context(|| format!("indexing tunnel {id} by peer"))?;
        self.tunnel_by_remote
            .insert(tunnel.remote_gre, id, 0)
            .with_context(|| format!("indexing tunnel {id} by remote"))?;
        Ok(())
    }

    /// Marks tunnel `id` up or down (liveness), leaving the rest of it alone.
    pub fn set_tunnel_up(&mut self, id: u32, up: bool) -> Result<()> {
        let mut tunnel = self.tunnel(id)?;
        if !tunnel.is_configured() {
            bail!("tunnel {id} is not configured");
        }
        if up {
            tunnel.flags |= vc_common::tunnel_flags::UP;
        } else {
            tunnel.flags &= !vc_common::tunnel_flags::UP;
        }
        self.tunnels
            .set(id, tunnel, 0)
            .with_context(|| format!("writing tunnel {id}"))
    }

    pub fn remove_tunnel(&mut self, id: u32) -> Result<()> {
        let old = self.tunnel(id)?;
        if old.is_configured() {
            self.unindex(&old)?;
        }
        self.tunnels
            .set(id, Tunnel::default(), 0)
            .with_context(|| format!("clearing tunnel {id}"))
    }

    fn unindex(&mut self, tunnel: &Tunnel) -> Result<()> {
        ignore_missing(self.tunnel_by_peer.remove(&tunnel.peer_ifindex))?;
        ignore_missing(self.tunnel_by_remote.remove(&tunnel.remote_gre))
    }

    /// Sets which tunnels carry `prefix` (bit i = tunnel i); an empty set removes the entry.
    pub fn set_route(&mut self, prefix: Ipv4Prefix, tunnels: u32) -> Result<()> {
        let key = lpm_key(prefix);
        if tunnels == 0 {
            return ignore_missing(self.routes.remove(&key))
                .with_context(|| format!("removing route {prefix}"));
        }
        let route = Route {
            tunnels,
            prefix_len: u32::from(prefix.prefix_len()),
        };
        self.routes
            .insert(&key, route, 0)
            .with_context(|| format!("writing route {prefix}"))
    }

    /// Every route in the map.
    pub fn routes(&self) -> Result<Vec<(Ipv4Prefix, Route)>> {
        self.routes
            .iter()
            .map(|entry| {
                let (key, route) = entry.context("reading ROUTES")?;
                Ok((prefix_of(key)?, route))
            })
            .collect()
    }

    /// The longest prefix in the map that holds `addr` (the kernel's LPM lookup), if any.
    pub fn route_for(&self, addr: Ipv4Addr) -> Result<Option<(Ipv4Prefix, Route)>> {
        let key = Key::new(32, ipv4(addr.octets()));
        match self.routes.get(&key, 0) {
            Ok(route) => {
                let len = u8::try_from(route.prefix_len).context("prefix length in ROUTES")?;
                let prefix = Ipv4Net::new(addr, len).context("prefix in ROUTES")?.trunc();
                Ok(Some((prefix, route)))
            }
            Err(aya::maps::MapError::KeyNotFound) => Ok(None),
            Err(e) => Err(e).with_context(|| format!("looking up {addr} in ROUTES")),
        }
    }

    /// Adds a prefix that must never leave the WAN in clear (IPsec mode).
    pub fn add_protected(&mut self, prefix: Ipv4Prefix) -> Result<()> {
        let value = ProtectedPrefix {
            prefix_len: u32::from(prefix.prefix_len()),
        };
        self.protected
            .insert(&lpm_key(prefix), value, 0)
            .with_context(|| format!("writing protected prefix {prefix}"))
    }

    pub fn protected(&self) -> Result<Vec<Ipv4Prefix>> {
        self.protected
            .keys()
            .map(|key| prefix_of(key.context("reading PROTECTED")?))
            .collect()
    }

    pub fn remove_protected(&mut self, prefix: Ipv4Prefix) -> Result<()> {
        ignore_missing(self.protected.remove(&lpm_key(prefix)))
            .with_context(|| format!("removing protected prefix {prefix}"))
    }

    /// Adds one of the CPE's own addresses (LAN packets claiming it are spoofed).
    pub fn add_local_addr(&mut self, addr: Ipv4Addr) -> Result<()> {
        self.local_addrs
            .insert(ipv4(addr.octets()), 1, 0)
            .with_context(|| format!("writing local address {addr}"))
    }

    pub fn remove_local_addr(&mut self, addr: Ipv4Addr) -> Result<()> {
        ignore_missing(self.local_addrs.remove(&ipv4(addr.octets())))
            .with_context(|| format!("removing local address {addr}"))
    }

    /// Every verdict counter that is not zero, summed over CPUs.
    pub fn verdicts(&self) -> Result<Vec<VerdictCount>> {
        let mut counts = Vec::new();
        for hook in Hook::ALL {
            for reason in Counted::ALL {
                let per_cpu = self
                    .verdicts
                    .get(&verdict_slot(hook, reason), 0)
                    .context("reading VERDICTS")?;
                let (packets, bytes) = per_cpu
                    .iter()
                    .fold((0, 0), |(p, b), c| (p + c.packets, b + c.bytes));
                if packets != 0 {
                    counts.push(VerdictCount {
                        hook,
                        reason,
                        packets,
                        bytes,
                    });
                }
            }
        }
        Ok(counts)
    }

    /// Tunnel `id`'s counters, summed over CPUs.
    pub fn tunnel_stats(&self, id: u32) -> Result<TunnelStats> {
        check_id(id)?;
        let per_cpu = self
            .tunnel_stats
            .get(&id, 0)
            .with_context(|| format!("reading counters of tunnel {id}"))?;
        Ok(per_cpu
            .iter()
            .fold(TunnelStats::default(), TunnelStats::merged))
    }
}

fn check_id(id: u32) -> Result<()> {
    if id >= MAX_TUNNELS {
        bail!("tunnel id {id} out of range (the datapath has {MAX_TUNNELS})");
    }
    Ok(())
}

fn lpm_key(prefix: Ipv4Prefix) -> Key<u32> {
    Key::new(
        u32::from(prefix.prefix_len()),
        ipv4(prefix.network().octets()),
    )
}

fn prefix_of(key: Key<u32>) -> Result<Ipv4Prefix> {
    let addr = Ipv4Addr::from(vc_common::ipv4_octets(key.data()));
    let len = u8::try_from(key.prefix_len()).context("prefix length")?;
    Ipv4Net::new(addr, len).context("prefix in map")
}

/// Removing what is not there is not an error for an idempotent writer.
fn ignore_missing(result: Result<(), aya::maps::MapError>) -> Result<()> {
    match result {
        Err(aya::maps::MapError::KeyNotFound) | Ok(()) => Ok(()),
        Err(e) => Err(e.into()),
    }
}
