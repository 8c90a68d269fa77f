//! The agent's [`AgentStatus`], assembled from the running parts' published state: the
//! config and plan, the datapath's maps, the SA table, the route manager, each BGP speaker
//! and keepalive task.
use std::{
    sync::{Arc, Mutex},
    time::Instant,
};

use tokio::sync::watch;

use super::{Plan, TunnelPlan};
use crate::{
    bgp::NeighborState,
    config::{Config, TunnelId},
    datapath::{Datapath, tunnel_index},
    ipsec::Snapshot,
    keepalive::KeepaliveView,
    routes::RouteStatus,
    status::{
        AgentStatus, BgpStatus, DatapathStatus, IpsecStatus, RouteLine, TunnelCounters,
        TunnelStatus,
    },
};

/// What the status socket and the metrics read: cheap clones of everything's published state.
#[derive(Clone)]
pub struct Sources {
    pub config: Arc<Config>,
    pub plan: Arc<Plan>,
    pub started: Instant,
    pub datapath: Arc<Datapath>,
    pub ipsec: Option<watch::Receiver<Snapshot>>,
    pub routes: watch::Receiver<RouteStatus>,
    pub speakers: Vec<(TunnelId, watch::Receiver<NeighborState>)>,
    pub keepalives: Vec<(TunnelId, Arc<Mutex<KeepaliveView>>)>,
}

impl Sources {
    fn tunnel_status(
        &self,
        t: &TunnelPlan,
        maps: &crate::datapath::DatapathMaps,
        routes: &RouteStatus,
        sas: Option<&Snapshot>,
    ) -> TunnelStatus {
        let index = tunnel_index(t.id);
        let form = self
            .config
            .tunnel(t.id)
            .expect("planned tunnels are in the config");
        let entry = maps.tunnel(index).unwrap_or_default();
        let stats = maps.tunnel_stats(index).unwrap_or_default();
        let keepalive = self
            .keepalives
            .iter()
            .find(|(id, _)| *id == t.id)
            .map(|(_, v)| {
                v.lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .clone()
            })
            .unwrap_or_default();
        TunnelStatus {
            id: t.id.key().to_string(),
            dc: t.id.dc(),
            interface: t.interface.clone(),
            local_gre: form.cpe_gre_address.to_string(),
            remote_gre: form.dc_gre_address.to_string(),
            remote_ipsec: form.dc_ipsec_address.to_string(),
            local_tunnel_ip: form.cpe_tunnel_ip.to_string(),
            dc_tunnel_ip: form.dc_tunnel_ip.addr().to_string(),
            expected_prefixes: t
                .neighbor
                .accepted_prefixes
                .iter()
                .map(ToString::to_string)
                .collect(),
            ipsec: sas.as_ref().map(|s| IpsecStatus::from(s.sas.tunnel(t.id))),
            keepalive: keepalive.status(&stats),
            counters: TunnelCounters {
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
            },
            bgp: self
                .speakers
                .iter()
                .find(|(id, _)| *id == t.id)
                .map(|(_, s)| BgpStatus::from(&*s.borrow())),
            accepted_prefixes: routes
                .learned
                .get(&index)
                .map(|set| set.iter().map(ToString::to_string).collect())
                .unwrap_or_default(),
        }
    }

    pub fn status(&self) -> AgentStatus {
        let maps = self.datapath.lock();
        let routes = self.routes.borrow().clone();
        let sas = self.ipsec.as_ref().map(|w| w.borrow().clone());
        let tunnels = self
            .plan
            .tunnels
            .iter()
            .map(|t| self.tunnel_status(t, &maps, &routes, sas.as_ref()))
            .collect();
        let tunnel_names = |mask: u32| {
            TunnelId::ALL
                .iter()
                .filter(|id| mask & (1 << tunnel_index(**id)) != 0)
                .map(|id| id.key().to_string())
                .collect()
        };
        AgentStatus {
            version: env!("CARGO_PKG_VERSION").to_string(),
            region: self.config.region.clone(),
            mode: if self.config.ipsec() {
                "ipsec"
            } else {
                "external-ipsec"
            }
            .to_string(),
            uptime_s: self.started.elapsed().as_secs(),
            charon: sas.as_ref().map(|s| charon_text(&s.charon)),
            tunnels,
            datapath: DatapathStatus {
                attach_mode: format!("{:?}", self.datapath.attach_mode()).to_lowercase(),
                fast_path: self.plan.datapath.fast_path,
                verdicts: maps
                    .verdicts()
                    .unwrap_or_default()
                    .iter()
                    .map(Into::into)
                    .collect(),
                routes: routes
                    .map
                    .iter()
                    .map(|(prefix, mask)| RouteLine {
                        prefix: prefix.to_string(),
                        tunnels: tunnel_names(*mask),
                    })
                    .collect(),
            },
        }
    }
}

fn charon_text(state: &crate::ipsec::CharonState) -> String {
    use crate::ipsec::CharonState;
    match state {
        CharonState::Starting => "starting".into(),
        CharonState::NotUsed => "not used (external-ipsec mode)".into(),
        CharonState::Up { pid, version, .. } => match pid {
            Some(pid) => format!("running, {version}, pid {pid}"),
            None => format!("running (attached), {version}"),
        },
        CharonState::Down { reason, .. } => format!("DOWN: {reason}"),
    }
}
