//! `vc-agent run`: the control plane of a CPE, from the activation form to tunnels that carry
//! traffic, and the state an operator asks for.
//!
//! Start order is the fail-closed order: IPsec first (XFRM block policies before anything can
//! send GRE, then charon), then the datapath, the route manager, one BGP speaker per tunnel,
//! keepalives and liveness, path-MTU following, and the status socket. On SIGTERM or SIGINT
//! the BGP sessions are closed (Cease) and their routes withdrawn; the datapath and charon
//! stay, so GRE stays blocked in clear and a restarted agent adopts both.
pub mod diagnose;
pub mod http;
pub mod liveness;
pub mod manual;
pub mod metrics;
pub mod observe;
pub mod plan;
pub mod probe;
pub mod socket;
pub mod status;

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use anyhow::{Context, Result};
use tokio::{signal::unix::SignalKind, sync::watch};
use tracing::{info, warn};

use self::{
    liveness::{Liveness, LivenessView},
    status::{BgpStatus, DatapathStatus, IpsecStatus, RouteLine, TunnelCounters, TunnelStatus},
};
pub use self::{
    plan::{Plan, TunnelPlan, plan},
    status::AgentStatus,
};
use crate::{
    bgp::{NeighborState, Speaker},
    config::{Config, TunnelId},
    datapath::Datapath,
    ipsec::{Ipsec, Snapshot},
    routes::{self, RouteManager, RouteManagerConfig, RouteStatus},
};

/// How often the tunnel MTU is checked against the path (R14).
const PMTU_INTERVAL: Duration = Duration::from_secs(30);

/// The running agent.
pub struct Agent {
    config: Config,
    plan: Plan,
    started: Instant,
    datapath: Arc<Datapath>,
    ipsec: Option<Ipsec>,
    routes: RouteManager,
    speakers: Vec<(TunnelId, Speaker)>,
    liveness: Vec<Liveness>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// What the status socket reads: cheap clones of everything's published state.
#[derive(Clone)]
struct Sources {
    config: Arc<Config>,
    plan: Arc<Plan>,
    started: Instant,
    datapath: Arc<Datapath>,
    ipsec: Option<watch::Receiver<Snapshot>>,
    routes: watch::Receiver<RouteStatus>,
    speakers: Vec<(TunnelId, watch::Receiver<NeighborState>)>,
    liveness: Vec<(TunnelId, Arc<Mutex<LivenessView>>)>,
}

impl Agent {
    /// Brings everything up (see the module's doc for the order).
    pub async fn start(config: Config) -> Result<Agent> {
        let plan = plan::plan(&config)?;
        // In external-IPsec mode this only removes block policies an IPsec-mode run left.
        let ipsec = Ipsec::start(config.clone())
            .await
            .context("starting IPsec")?;
        let ipsec = if config.ipsec() {
            Some(ipsec)
        } else {
            ipsec.shutdown(false).await;
            None
        };
        let datapath = Arc::new(
            Datapath::up(plan.datapath.clone())
                .await
                .context("bringing the datapath up")?,
        );
        match routes::install_rt_protos_entry(
            std::path::Path::new(routes::RT_PROTOS_PATH),
            routes::VC_RT_PROTO,
        ) {
            Ok(_) => {}
            Err(e) => warn!(
                "cannot name vc's route protocol in {}: {e}",
                routes::RT_PROTOS_PATH
            ),
        }
        let routes = RouteManager::spawn(
            RouteManagerConfig::new(plan.tunnels.iter().map(|t| t.next_hop.clone()).collect()),
            datapath.shared_maps(),
        )
        .await
        .context("starting the route manager")?;
        let mut speakers = Vec::new();
        for t in &plan.tunnels {
            let speaker = Speaker::spawn(t.neighbor.clone(), routes.handle())
                .with_context(|| format!("starting the BGP session of tunnel {}", t.id))?;
            speakers.push((t.id, speaker));
        }
        let mut liveness = Vec::new();
        for t in &plan.tunnels {
            let devices = datapath.devices(plan::index(t.id))?;
            liveness.push(Liveness::spawn(
                t,
                devices,
                &plan.datapath,
                datapath.shared_maps(),
                ipsec.as_ref().map(Ipsec::watch),
                routes.handle(),
            )?);
        }
        let mut agent = Agent {
            config,
            plan,
            started: Instant::now(),
            datapath,
            ipsec,
            routes,
            speakers,
            liveness,
            tasks: Vec::new(),
        };
        agent.tasks.push(agent.follow_path_mtu());
        let socket = socket::serve(&agent.plan.status_socket, agent.answer())?;
        agent.tasks.push(socket);
        let sources = agent.sources();
        if let Some(metrics) = metrics::serve(
            &agent.config.agent.metrics_listen,
            Arc::new(move || sources.status()),
        )
        .await
        {
            agent.tasks.push(metrics);
        }
        info!(
            tunnels = agent.plan.tunnels.len(),
            socket = %agent.plan.status_socket.display(),
            "agent up"
        );
        Ok(agent)
    }

    /// Runs until SIGTERM or SIGINT, then stops (see the module's doc).
    pub async fn run_until_signal(self) -> Result<()> {
        let mut term = tokio::signal::unix::signal(SignalKind::terminate())?;
        tokio::select! {
            _ = term.recv() => info!("SIGTERM"),
            _ = tokio::signal::ctrl_c() => info!("SIGINT"),
        }
        self.stop().await;
        Ok(())
    }

    /// Closes the BGP sessions (their routes go), stops the tasks, leaves charon and the
    /// datapath running.
    pub async fn stop(self) {
        for task in &self.tasks {
            task.abort();
        }
        for l in &self.liveness {
            l.abort();
        }
        for (_, speaker) in self.speakers {
            speaker.shutdown().await;
        }
        self.routes.handle().settled().await;
        self.routes.abort();
        if let Some(ipsec) = self.ipsec {
            ipsec.shutdown(false).await;
        }
        let _ = std::fs::remove_file(&self.plan.status_socket);
        info!("agent stopped; the datapath and charon keep running");
    }

    /// The current state, as `vc-agent status` shows it.
    #[must_use]
    pub fn status(&self) -> AgentStatus {
        self.sources().status()
    }

    fn sources(&self) -> Sources {
        Sources {
            config: Arc::new(self.config.clone()),
            plan: Arc::new(self.plan.clone()),
            started: self.started,
            datapath: Arc::clone(&self.datapath),
            ipsec: self.ipsec.as_ref().map(Ipsec::watch),
            routes: self.routes.subscribe(),
            speakers: self
                .speakers
                .iter()
                .map(|(id, s)| (*id, s.subscribe()))
                .collect(),
            liveness: self.liveness.iter().map(|l| (l.id(), l.view())).collect(),
        }
    }

    fn answer(&self) -> socket::Answer {
        let sources = self.sources();
        Arc::new(move |request: &str| match request {
            "status" => Ok(serde_json::to_string(&sources.status())?),
            other => anyhow::bail!("unknown request {other:?} (ask: status)"),
        })
    }

    /// R14: the tunnel MTU follows the path toward each DC; the ESP overhead is that of the
    /// configured proposal, NAT-T from the IKE SA.
    fn follow_path_mtu(&self) -> tokio::task::JoinHandle<()> {
        let datapath = Arc::clone(&self.datapath);
        let esp = self.plan.esp;
        let ipsec = self.ipsec.as_ref().map(Ipsec::watch);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(PMTU_INTERVAL);
            loop {
                tick.tick().await;
                let nat_t = ipsec.as_ref().is_some_and(|w| {
                    TunnelId::ALL.iter().any(|id| {
                        w.borrow()
                            .sas
                            .tunnel(*id)
                            .ike
                            .as_ref()
                            .is_some_and(|i| i.nat)
                    })
                });
                if let Err(e) = datapath.follow_path_mtu(esp, nat_t).await {
                    warn!("following the path MTU: {e:#}");
                }
            }
        })
    }
}

impl Sources {
    fn tunnel_status(
        &self,
        t: &TunnelPlan,
        maps: &crate::datapath::DatapathMaps,
        routes: &RouteStatus,
        sas: Option<&Snapshot>,
    ) -> TunnelStatus {
        let index = plan::index(t.id);
        let form = self
            .config
            .tunnel(t.id)
            .expect("planned tunnels are in the config");
        let entry = maps.tunnel(index).unwrap_or_default();
        let stats = maps.tunnel_stats(index).unwrap_or_default();
        let liveness = self
            .liveness
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
            keepalive: liveness.status(&stats),
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

    fn status(&self) -> AgentStatus {
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
                .filter(|id| mask & (1 << plan::index(**id)) != 0)
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

/// `vc-agent run`.
pub async fn run(config: Config) -> Result<()> {
    Agent::start(config).await?.run_until_signal().await
}

/// `vc-agent status`: asks the running agent.
pub async fn query(config: &Config) -> Result<AgentStatus> {
    let text = socket::ask(&plan::status_socket(config), "status").await?;
    serde_json::from_str(&text).context("the agent's answer")
}

/// `vc-agent diagnose` (R24): Cisco's troubleshooting tree over the running agent.
pub async fn diagnose(config: &Config) -> Result<diagnose::Diagnosis> {
    observe::diagnose(config).await
}
