//! The agent's [`AgentStatus`], assembled from the running parts' published state: the
//! config and plan, the datapath's maps, the SA table, the route manager, each BGP speaker
//! and keepalive task.
use std::{
    sync::{Arc, Mutex, PoisonError},
    time::Instant,
};

use tokio::sync::watch;

use super::{Plan, TunnelPlan};
use crate::{
    bgp::NeighborState,
    config::{Config, TunnelId},
    datapath::{Datapath, DatapathMaps, tunnel_index},
    ipsec::Snapshot,
    keepalive::KeepaliveView,
    lan::{LanHealth, status::LanStatus},
    routes::RouteStatus,
    status::{
        AgentStatus, BgpStatus, CharonStatus, DatapathStatus, IpsecStatus, RouteLine,
        TunnelCounters, TunnelEnds, TunnelStatus, VerdictLine,
    },
};

/// The config the agent runs with and its plan: replaced together by a reload.
#[derive(Debug)]
pub struct Running {
    pub config: Config,
    pub plan: Plan,
}

/// What the status socket and the metrics read: cheap clones of everything's published state.
#[derive(Clone)]
pub struct Sources {
    pub running: watch::Receiver<Arc<Running>>,
    pub started: Instant,
    pub datapath: Arc<Datapath>,
    pub ipsec: Option<watch::Receiver<Snapshot>>,
    pub routes: watch::Receiver<RouteStatus>,
    pub speakers: Vec<(TunnelId, watch::Receiver<NeighborState>)>,
    pub keepalives: Vec<(TunnelId, Arc<Mutex<KeepaliveView>>)>,
    pub lan: watch::Receiver<LanHealth>,
}

impl Sources {
    fn tunnel_status(
        &self,
        config: &Config,
        t: &TunnelPlan,
        maps: &DatapathMaps,
        routes: &RouteStatus,
        sas: Option<&Snapshot>,
    ) -> TunnelStatus {
        let index = tunnel_index(t.id);
        let form = config
            .tunnel(t.id)
            .expect("planned tunnels are in the config");
        let entry = maps.tunnel(index).unwrap_or_default();
        let stats = maps.tunnel_stats(index).unwrap_or_default();
        let keepalive = self
            .keepalives
            .iter()
            .find(|(id, _)| *id == t.id)
            .map(|(_, v)| v.lock().unwrap_or_else(PoisonError::into_inner).clone())
            .unwrap_or_default();
        TunnelStatus {
            ends: TunnelEnds {
                id: t.id,
                region: config.region_of(t.id).to_string(),
                dc: t.id.dc(),
                interface: t.interface.clone(),
                local_gre: form.cpe_gre_address,
                remote_gre: form.dc_gre_address,
                local_tunnel_ip: form.cpe_tunnel_ip,
                dc_tunnel_ip: form.dc_tunnel_ip.addr(),
            },
            remote_ipsec: form.dc_ipsec_address,
            expected_prefixes: t.neighbor.accepted_prefixes.clone(),
            ipsec: sas.map(|s| IpsecStatus::from(s.sas.tunnel(t.id))),
            keepalive: keepalive.status(&stats),
            counters: TunnelCounters::new(&entry, &stats),
            bgp: self
                .speakers
                .iter()
                .find(|(id, _)| *id == t.id)
                .map(|(_, s)| BgpStatus::from(&*s.borrow())),
            accepted_prefixes: routes
                .learned
                .get(&index)
                .map(|set| set.iter().copied().collect())
                .unwrap_or_default(),
            stale_prefixes: routes
                .stale
                .get(&index)
                .map(|set| set.iter().copied().collect())
                .unwrap_or_default(),
        }
    }

    pub fn status(&self) -> AgentStatus {
        let running = Arc::clone(&self.running.borrow());
        let Running { config, plan } = &*running;
        let maps = self.datapath.lock();
        let routes = self.routes.borrow().clone();
        let sas = self.ipsec.as_ref().map(|w| w.borrow().clone());
        let tunnels = plan
            .tunnels
            .iter()
            .map(|t| self.tunnel_status(config, t, &maps, &routes, sas.as_ref()))
            .collect();
        let tunnels_of = |mask: u32| {
            TunnelId::ALL
                .into_iter()
                .filter(|id| mask & (1 << tunnel_index(*id)) != 0)
                .collect()
        };
        AgentStatus {
            version: env!("CARGO_PKG_VERSION").to_string(),
            region: config.regions(),
            mode: config.mode,
            uptime_s: self.started.elapsed().as_secs(),
            charon: sas.as_ref().map(|s| CharonStatus::from(&s.charon)),
            lan: Some(LanStatus::new(&config.interfaces.lan, &self.lan.borrow())),
            tunnels,
            datapath: DatapathStatus {
                attach_mode: self.datapath.attach_mode(),
                fast_path: plan.datapath.fast_path,
                kernel: self.datapath.audit(),
                reassembled: self.datapath.reassembled(),
                verdicts: maps
                    .verdicts()
                    .unwrap_or_default()
                    .iter()
                    .map(VerdictLine::from)
                    .collect(),
                routes: routes
                    .map
                    .iter()
                    .map(|(prefix, mask)| RouteLine {
                        prefix: *prefix,
                        tunnels: tunnels_of(*mask),
                    })
                    .collect(),
            },
        }
    }
}
