//! What the steps read, in one place: the tunnel's status, its ping, and counters with how
//! much they moved during the probe (live evidence beats totals since start, which may be
//! history from before the fault).
use std::{fmt::Write as _, time::Duration};

use super::{Observation, Ping};
use crate::{
    duration::format_duration,
    ipsec::conn,
    status::{AgentStatus, DatapathStatus, DropReason, Hook, Mode, TunnelStatus},
};

/// The datapath's drop reasons that say why GRE from a DC did not reach its tunnel, with
/// what each means for an engineer.
pub const RX_DROPS: [(Hook, DropReason, &str); 6] = [
    (
        Hook::WanRx,
        DropReason::NoSecpath,
        "GRE arrived without IPsec (clear GRE from the DC or a box on the path)",
    ),
    (
        Hook::WanRx,
        DropReason::WrongSa,
        "GRE decrypted by an SA that is not this tunnel's (reqid or peer differs)",
    ),
    (
        Hook::WanRx,
        DropReason::InnerSourceNotAllowed,
        "decapsulated packets from a source that is neither the DC's tunnel IP nor Cisco's prefix",
    ),
    (
        Hook::WanRx,
        DropReason::UnknownTunnel,
        "GRE from an unknown transport IP",
    ),
    (Hook::WanRx, DropReason::GreMalformed, "malformed GRE"),
    (
        Hook::WanRx,
        DropReason::GreUnsupported,
        "GRE with key or sequence number",
    ),
];

/// A counter now, and how much it moved since the status before the probe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Counter {
    pub total: u64,
    pub delta: Option<u64>,
}

impl Counter {
    fn new(now: u64, before: Option<u64>) -> Self {
        Counter {
            total: now,
            // A smaller value means a reset (a new SA): no delta to speak of.
            delta: before.and_then(|b| now.checked_sub(b)),
        }
    }

    /// Whether it is (still) moving: during the probe when known, else ever.
    pub fn moving(self) -> bool {
        self.delta.map_or(self.total > 0, |d| d > 0)
    }

    /// `12 (+3 during the probe)`.
    pub fn text(self) -> String {
        match self.delta {
            Some(d) => format!("{} (+{d} during the probe)", self.total),
            None => self.total.to_string(),
        }
    }
}

/// One tunnel's view of the observation.
pub struct Context<'a> {
    pub status: &'a AgentStatus,
    pub t: &'a TunnelStatus,
    pub before: Option<&'a TunnelStatus>,
    before_dp: Option<&'a DatapathStatus>,
    pub ping: Option<&'a Ping>,
}

impl<'a> Context<'a> {
    pub fn new(o: &'a Observation, t: &'a TunnelStatus) -> Self {
        Context {
            status: &o.status,
            t,
            before: o.before(t.ends.id),
            before_dp: o.before.as_ref().map(|b| &b.datapath),
            ping: o.ping(t.ends.id),
        }
    }

    pub fn ipsec_mode(&self) -> bool {
        self.status.mode == Mode::Ipsec
    }

    /// The audit's word on this tunnel's route to its DC, when it does not leave by the
    /// tunnel's WAN device.
    pub fn wan_route_problem(&self) -> Option<String> {
        self.status
            .datapath
            .kernel
            .wan_routes
            .iter()
            .find(|r| r.tunnel == self.t.ends.interface)
            .and_then(crate::datapath::wan_route::WanRoute::problem)
    }

    /// `a` → `tunnel.a`: the config section an engineer edits.
    pub fn section(&self) -> String {
        self.t.ends.id.section()
    }

    pub fn uptime(&self) -> String {
        format_duration(Duration::from_secs(self.status.uptime_s))
    }

    /// The reqid vc gives this tunnel's SAs (1001 for A, 1002 for B).
    pub fn expected_reqid(&self) -> u32 {
        conn::reqid(self.t.ends.id)
    }

    /// The only selectors Cisco accepts (R7): GRE between the two GRE transport IPs.
    pub fn expected_selectors(&self) -> (String, String) {
        (
            conn::gre_selector(self.t.ends.local_gre),
            conn::gre_selector(self.t.ends.remote_gre),
        )
    }

    /// GRE decapsulated from the DC.
    pub fn rx(&self) -> Counter {
        Counter::new(
            self.t.counters.rx_packets,
            self.before.map(|b| b.counters.rx_packets),
        )
    }

    /// ESP packets in and out of the child SA (the same SA before and after, or no delta).
    pub fn esp(&self) -> Option<(Counter, Counter)> {
        let c = self.t.ipsec.as_ref()?.child.as_ref()?;
        let b = self
            .before
            .and_then(|b| b.ipsec.as_ref()?.child.as_ref())
            .filter(|b| b.spi_in == c.spi_in);
        Some((
            Counter::new(c.packets_in, b.map(|b| b.packets_in)),
            Counter::new(c.packets_out, b.map(|b| b.packets_out)),
        ))
    }

    /// Keepalive replies plus the DC's own keepalives reflected.
    pub fn heard(&self) -> Counter {
        let k = &self.t.keepalive;
        Counter::new(
            k.replies + k.reflected,
            self.before
                .map(|b| b.keepalive.replies + b.keepalive.reflected),
        )
    }

    /// A datapath verdict counter (all tunnels together: the counters are per program).
    pub fn verdict(&self, hook: Hook, reason: DropReason) -> Counter {
        let find = |d: &DatapathStatus| {
            d.verdicts
                .iter()
                .find(|v| v.hook == hook && v.reason == reason)
                .map_or(0, |v| v.packets)
        };
        Counter::new(find(&self.status.datapath), self.before_dp.map(find))
    }

    /// The receive drops that are moving, as evidence lines.
    pub fn rx_drops(&self) -> Vec<String> {
        RX_DROPS
            .iter()
            .filter_map(|&(hook, reason, meaning)| {
                let c = self.verdict(hook, reason);
                c.moving().then(|| {
                    format!(
                        "datapath drops at {} {} ({meaning}): {} packets, all tunnels",
                        hook.name(),
                        reason.name(),
                        c.text()
                    )
                })
            })
            .collect()
    }

    pub fn ping_ok(&self) -> Option<bool> {
        self.ping.map(|p| p.received > 0)
    }

    /// `ping 100.64.0.2 from 100.64.0.1: 3/3 answered`.
    pub fn ping_text(&self) -> Option<String> {
        let p = self.ping?;
        let mut s = format!(
            "ping {} from {}: {}/{} answered",
            p.to, p.from, p.received, p.sent
        );
        if let Some(e) = &p.error {
            let _ = write!(s, " ({e})");
        }
        Some(s)
    }

    /// The keepalive schedule allows a judgement yet: the agent has run long enough for
    /// `retries` intervals plus one.
    pub fn keepalives_had_time(&self) -> bool {
        let k = &self.t.keepalive;
        self.status.uptime_s > k.interval_s * (u64::from(k.retries) + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::Counter;

    #[test]
    fn counters_move_by_delta_when_known() {
        assert!(Counter::new(5, None).moving());
        assert!(!Counter::new(5, Some(5)).moving());
        assert!(Counter::new(6, Some(5)).moving());
        assert_eq!(Counter::new(6, Some(5)).text(), "6 (+1 during the probe)");
        // A reset (new SA) is not a delta.
        assert_eq!(Counter::new(2, Some(9)).delta, None);
        assert!(!Counter::new(0, None).moving());
    }
}
