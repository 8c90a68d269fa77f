//! What `vc-agent datapath show` prints: tunnels, routes, counters, read from the maps.
use std::fmt;

use anyhow::Result;
use vc_common::TunnelStats;

use super::{Datapath, Ipv4Prefix, maps::VerdictCount};

pub struct TunnelReport {
    pub id: u32,
    pub name: String,
    pub up: bool,
    pub mtu: u16,
    pub stats: TunnelStats,
}

pub struct DatapathReport {
    pub mode: String,
    pub attach_mode: String,
    pub fast_path: bool,
    pub tunnels: Vec<TunnelReport>,
    pub routes: Vec<(Ipv4Prefix, u32)>,
    pub verdicts: Vec<VerdictCount>,
}

impl Datapath {
    pub fn report(&self) -> Result<DatapathReport> {
        let maps = self.lock();
        let mut tunnels = Vec::new();
        for tunnel in &self.spec().tunnels {
            let entry = maps.tunnel(tunnel.id)?;
            tunnels.push(TunnelReport {
                id: tunnel.id,
                name: tunnel.name.clone(),
                up: entry.is_up(),
                mtu: entry.mtu,
                stats: maps.tunnel_stats(tunnel.id)?,
            });
        }
        Ok(DatapathReport {
            mode: format!("{:?}", self.spec().mode),
            attach_mode: format!("{:?}", self.attach_mode()),
            fast_path: self.spec().fast_path,
            tunnels,
            routes: maps
                .routes()?
                .into_iter()
                .map(|(p, r)| (p, r.tunnels))
                .collect(),
            verdicts: maps.verdicts()?,
        })
    }
}

impl fmt::Display for DatapathReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "datapath: {} mode, programs attached with {}, fast path {}",
            self.mode,
            self.attach_mode,
            if self.fast_path { "on" } else { "off" }
        )?;
        writeln!(f, "\ntunnels:")?;
        for t in &self.tunnels {
            let s = &t.stats;
            writeln!(
                f,
                "  {} (tunnel {}) {} mtu {}: tx {} pkts {} B (fast path {}), rx {} pkts {} B (fast path {}), \
                 keepalives sent {} answered {} reflected {}, MSS clamped {}",
                t.name,
                t.id,
                if t.up { "up" } else { "DOWN" },
                t.mtu,
                s.tx_packets,
                s.tx_bytes,
                s.fast_path_packets,
                s.rx_packets,
                s.rx_bytes,
                s.rx_fast_path_packets,
                s.keepalive_tx,
                s.keepalive_rx,
                s.keepalive_reflected,
                s.mss_clamped
            )?;
        }
        writeln!(f, "\nroutes (prefix → tunnels):")?;
        if self.routes.is_empty() {
            writeln!(f, "  none")?;
        }
        for (prefix, tunnels) in &self.routes {
            let ids: Vec<String> = (0..32)
                .filter(|i| tunnels & (1 << i) != 0)
                .map(|i| i.to_string())
                .collect();
            writeln!(f, "  {prefix} → {}", ids.join(", "))?;
        }
        writeln!(f, "\npackets by program and outcome:")?;
        for v in &self.verdicts {
            let kind = if v.reason.is_drop() { "drop" } else { "ok" };
            writeln!(
                f,
                "  {:<13} {:<4} {:<25} {:>10} pkts {:>12} B",
                v.hook.name(),
                kind,
                v.reason.name(),
                v.packets,
                v.bytes
            )?;
        }
        Ok(())
    }
}
