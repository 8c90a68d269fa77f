//! The datapath piece of the agent's status (R25): per tunnel its counters, and for the
//! whole datapath how programs are attached, the LPM routes and every verdict counter, as
//! plain data with its text for people.
use std::fmt;

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};
use vc_common::{Counted, Hook, Tunnel, TunnelStats};

use super::{
    AttachMode,
    maps::VerdictCount,
    reassembled::ReassembledCounters,
    reconcile::{AuditReport, direction_name},
};
use crate::config::TunnelId;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatapathStatus {
    pub attach_mode: AttachMode,
    pub fast_path: bool,
    /// What the kernel has, as last audited (every 2 s and on every link or TC event): each
    /// program's attachment, the backstop routes, the repairs made.
    #[serde(default)]
    pub kernel: AuditReport,
    /// Every non-zero verdict counter.
    pub verdicts: Vec<VerdictLine>,
    /// The LPM map: prefix → tunnels.
    pub routes: Vec<RouteLine>,
    /// Outer GRE fragments the kernel reassembled, delivered or refused by the agent.
    #[serde(default)]
    pub reassembled: ReassembledCounters,
}

/// One program's count of one outcome (all tunnels together). In JSON the hook and reason
/// are their metric names (`wan_rx`, `no_secpath`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerdictLine {
    #[serde(with = "by_name::hook")]
    pub hook: Hook,
    #[serde(with = "by_name::reason")]
    pub reason: Counted,
    /// The outcome is a drop.
    pub drop: bool,
    pub packets: u64,
    pub bytes: u64,
}

impl VerdictLine {
    #[must_use]
    pub fn new(hook: Hook, reason: impl Into<Counted>, packets: u64, bytes: u64) -> Self {
        let reason = reason.into();
        VerdictLine {
            hook,
            reason,
            drop: reason.is_drop(),
            packets,
            bytes,
        }
    }
}

impl From<&VerdictCount> for VerdictLine {
    fn from(v: &VerdictCount) -> Self {
        VerdictLine::new(v.hook, v.reason, v.packets, v.bytes)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteLine {
    pub prefix: Ipv4Net,
    pub tunnels: Vec<TunnelId>,
}

/// One tunnel's entry and counters in the datapath's maps.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TunnelCounters {
    /// The datapath's UP flag for the tunnel.
    pub up: bool,
    pub mtu: u16,
    pub mss: u16,
    pub tx_packets: u64,
    pub tx_bytes: u64,
    pub fast_path_packets: u64,
    pub rx_packets: u64,
    /// Decapsulated packets sent straight to their egress device.
    pub rx_fast_path_packets: u64,
    pub rx_bytes: u64,
    pub mss_clamped: u64,
}

impl TunnelCounters {
    #[must_use]
    pub fn new(entry: &Tunnel, stats: &TunnelStats) -> Self {
        TunnelCounters {
            up: entry.is_up(),
            mtu: entry.mtu,
            mss: entry.mss,
            tx_packets: stats.tx_packets,
            tx_bytes: stats.tx_bytes,
            fast_path_packets: stats.fast_path_packets,
            rx_fast_path_packets: stats.rx_fast_path_packets,
            rx_packets: stats.rx_packets,
            rx_bytes: stats.rx_bytes,
            mss_clamped: stats.mss_clamped,
        }
    }
}

impl fmt::Display for TunnelCounters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "  datapath  {} mtu {} mss {}: tx {} pkts {} B (fast path {}), rx {} pkts {} B (fast path {}), MSS clamped {}",
            if self.up { "up" } else { "down" },
            self.mtu,
            self.mss,
            self.tx_packets,
            self.tx_bytes,
            self.fast_path_packets,
            self.rx_packets,
            self.rx_bytes,
            self.rx_fast_path_packets,
            self.mss_clamped
        )
    }
}

impl fmt::Display for DatapathStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "datapath: programs attached with {}, LAN fast path {}",
            self.attach_mode.name(),
            if self.fast_path { "on" } else { "off" }
        )?;
        let k = &self.kernel;
        writeln!(f, "  in the kernel ({} repairs since start):", k.repairs)?;
        for h in &k.hooks {
            writeln!(
                f,
                "    {:<13} {:<10} {:<8} {}",
                h.program,
                h.device,
                direction_name(h.direction),
                h.presence.name()
            )?;
        }
        let backstop: Vec<String> = k.backstop.iter().map(ToString::to_string).collect();
        writeln!(
            f,
            "    backstop unreachable: {}",
            if backstop.is_empty() {
                "none".to_string()
            } else {
                backstop.join(", ")
            }
        )?;
        for p in &k.backstop_missing {
            writeln!(f, "    backstop unreachable {p}: MISSING")?;
        }
        for route in &k.wan_routes {
            match route.problem() {
                None => writeln!(
                    f,
                    "    {} → DC {} leaves by {}",
                    route.tunnel, route.dc, route.wan
                )?,
                Some(problem) => writeln!(f, "    WARNING {problem}")?,
            }
        }
        if k.hooks.iter().any(|h| h.presence.is_fault()) {
            writeln!(
                f,
                "    FAULT: a program is not attached (the backstop routes hold)"
            )?;
        }
        writeln!(f, "  LPM routes:")?;
        if self.routes.is_empty() {
            writeln!(f, "    none")?;
        }
        for r in &self.routes {
            let tunnels: Vec<&str> = r.tunnels.iter().map(|t| t.key()).collect();
            writeln!(
                f,
                "    {:<18} → tunnel {}",
                r.prefix.to_string(),
                tunnels.join(", ")
            )?;
        }
        let r = &self.reassembled;
        let refused: Vec<String> = r
            .refused
            .iter()
            .map(|(why, n)| format!("{} {n}", why.name()))
            .collect();
        writeln!(
            f,
            "  reassembled outer GRE: delivered {} pkts {} B, refused {}",
            r.delivered_packets,
            r.delivered_bytes,
            if refused.is_empty() {
                "none".to_string()
            } else {
                refused.join(", ")
            }
        )?;
        writeln!(f, "  packets by program and outcome:")?;
        for v in &self.verdicts {
            writeln!(
                f,
                "    {:<13} {:<4} {:<25} {:>10} pkts {:>12} B",
                v.hook.name(),
                if v.drop { "drop" } else { "ok" },
                v.reason.name(),
                v.packets,
                v.bytes
            )?;
        }
        Ok(())
    }
}

/// `vc-common`'s hooks and reasons by their metric names, for serde.
mod by_name {
    use serde::{Deserialize, Deserializer, de::Error};

    /// The item of `all` named `name`.
    fn find<'de, D: Deserializer<'de>, T: Copy>(
        d: D,
        all: &[T],
        name: fn(T) -> &'static str,
    ) -> Result<T, D::Error> {
        let text = String::deserialize(d)?;
        all.iter()
            .copied()
            .find(|t| name(*t) == text)
            .ok_or_else(|| D::Error::custom(format!("unknown name {text:?}")))
    }

    /// A serde `with` module for a `vc-common` type that has `ALL` and `name()`.
    macro_rules! by_name {
        ($module:ident, $type:ident) => {
            pub mod $module {
                use serde::{Deserializer, Serializer};
                use vc_common::$type;

                // By reference: serde's `with` passes one.
                pub fn serialize<S: Serializer>(v: &$type, s: S) -> Result<S::Ok, S::Error> {
                    s.serialize_str(v.name())
                }

                pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<$type, D::Error> {
                    super::find(d, &$type::ALL, $type::name)
                }
            }
        };
    }

    by_name!(hook, Hook);
    by_name!(reason, Counted);
}

#[cfg(test)]
mod tests {
    use vc_common::{DropReason, Hook};

    use super::VerdictLine;

    #[test]
    fn verdicts_travel_by_their_metric_names() {
        let v = VerdictLine::new(Hook::WanRx, DropReason::NoSecpath, 5, 500);
        let json = serde_json::to_string(&v).expect("json");
        assert_eq!(
            json,
            r#"{"hook":"wan_rx","reason":"no_secpath","drop":true,"packets":5,"bytes":500}"#
        );
        assert_eq!(
            serde_json::from_str::<VerdictLine>(&json).expect("parse"),
            v
        );
        assert!(serde_json::from_str::<VerdictLine>(&json.replace("wan_rx", "nope")).is_err());
    }
}
