//! `vc-agent run`: the control plane of a CPE, from the activation form to tunnels that carry
//! traffic, and the state an operator asks for.
//!
//! Start order is the fail-closed order: the backstop routes first (nothing bound for a
//! protected prefix follows the default route, whatever fails next), IPsec (XFRM block
//! policies before anything can send GRE, then charon), then the datapath (the guard attached
//! first, and from then on kept attached by the datapath watch), the route manager, one BGP speaker per tunnel,
//! keepalives and liveness, path-MTU following, and the status socket. On SIGTERM or SIGINT
//! the BGP sessions are closed (Cease) and their routes withdrawn; the datapath and charon
//! stay, so GRE stays blocked in clear and a restarted agent adopts both.
//!
//! Every long-lived task is watched: if one dies (a panic, or a loop that returned), the agent
//! stops the same way and exits with an error naming the task, for the service manager to
//! restart it; the datapath fails closed meanwhile. Stopping takes [`STOP_WITHIN`] at most,
//! whatever charon or the peers do.
mod path_mtu;
pub mod plan;
mod sources;

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use tokio::{signal::unix::SignalKind, time::timeout};
use tracing::{error, info, warn};

pub use self::plan::{Plan, TunnelPlan, plan};
use self::sources::Sources;
use crate::{
    bgp::Speaker,
    config::{Config, TunnelId},
    datapath::{self, Datapath, tunnel_index},
    ipsec::Ipsec,
    keepalive::{KeepaliveTask, KeepaliveTunnel},
    metrics,
    routes::{self, RouteManager, RouteManagerConfig},
    service::{self, Notice},
    socket,
    status::AgentStatus,
    task::{self, Task},
};

/// The BGP sessions' Cease and linger, all at once (each lingers 2 s at most).
const SESSIONS_CLOSE: Duration = Duration::from_millis(2_500);
/// The route manager's withdrawal of the sessions' routes.
const ROUTES_SETTLE: Duration = Duration::from_millis(500);
/// The IPsec controller's stop: a controller waiting for a wedged charon is left behind.
const IPSEC_STOP: Duration = Duration::from_secs(1);
/// The longest a stop takes.
pub const STOP_WITHIN: Duration = SESSIONS_CLOSE
    .saturating_add(ROUTES_SETTLE)
    .saturating_add(IPSEC_STOP);

/// The running agent.
pub struct Agent {
    config: Config,
    plan: Plan,
    started: Instant,
    datapath: Arc<Datapath>,
    ipsec: Option<Ipsec>,
    routes: RouteManager,
    speakers: Vec<(TunnelId, Speaker)>,
    keepalives: Vec<KeepaliveTask>,
    /// The agent's own tasks: path MTU, status socket, metrics.
    tasks: Vec<Task>,
}

impl Agent {
    /// Brings everything up (see the module's doc for the order).
    pub async fn start(config: Config) -> Result<Agent> {
        let plan = plan::plan(&config)?;
        datapath::backstop::install(datapath::Netlink::connect()?.handle(), &plan.datapath)
            .await
            .context("installing the backstop routes")?;
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
        let mut keepalives = Vec::new();
        for t in &plan.tunnels {
            let tunnel = KeepaliveTunnel {
                id: t.id,
                spec: plan
                    .datapath
                    .tunnel(t.id)
                    .expect("planned tunnels are in the datapath"),
                tunnel_ifindex: datapath.devices(tunnel_index(t.id))?.tunnel_ifindex,
                config: t.keepalive,
            };
            keepalives.push(KeepaliveTask::spawn(
                tunnel,
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
            keepalives,
            tasks: Vec::new(),
        };
        agent
            .tasks
            .push(datapath::reconcile::watch(Arc::clone(&agent.datapath)));
        agent.tasks.push(path_mtu::follow(
            Arc::clone(&agent.datapath),
            agent.plan.esp,
            agent.ipsec.as_ref().map(Ipsec::watch),
        ));
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

    /// Runs until SIGTERM or SIGINT, or until a task dies, then stops (see the module's doc).
    /// A task's death is an error naming the task and how it ended.
    pub async fn run_until_signal(self) -> Result<()> {
        let mut term = tokio::signal::unix::signal(SignalKind::terminate())?;
        let watched = self.watched();
        let died = tokio::select! {
            _ = term.recv() => {
                info!("SIGTERM");
                None
            }
            _ = tokio::signal::ctrl_c() => {
                info!("SIGINT");
                None
            }
            died = task::first_to_end(&watched) => Some(died),
        };
        drop(watched);
        if let Some((name, end)) = &died {
            error!(
                task = %name,
                "the agent's task {name} {end}: stopping the agent (the datapath stays, \
                 failing closed)"
            );
        }
        let stopping = Instant::now();
        self.stop().await;
        info!(took = ?stopping.elapsed(), "agent stopped");
        match died {
            Some((name, end)) => bail!("the agent's task {name} {end}"),
            None => Ok(()),
        }
    }

    /// Every long-lived task of the agent.
    fn watched(&self) -> Vec<&Task> {
        let mut watched: Vec<&Task> = self.tasks.iter().collect();
        watched.extend(self.speakers.iter().map(|(_, s)| s.task()));
        watched.extend(self.keepalives.iter().map(KeepaliveTask::task));
        watched.push(self.routes.task());
        watched.extend(self.ipsec.as_ref().map(Ipsec::task));
        watched
    }

    /// Closes the BGP sessions (their routes go), stops the tasks, leaves charon and the
    /// datapath running. Takes [`STOP_WITHIN`] at most.
    pub async fn stop(self) {
        service::notify(&Notice::Stopping);
        for task in &self.tasks {
            task.abort();
        }
        for k in &self.keepalives {
            k.abort();
        }
        let closing =
            futures::future::join_all(self.speakers.into_iter().map(|(_, s)| s.shutdown()));
        if timeout(SESSIONS_CLOSE, closing).await.is_err() {
            warn!("the BGP sessions did not close within {SESSIONS_CLOSE:?}");
        }
        if timeout(ROUTES_SETTLE, self.routes.handle().settled())
            .await
            .is_err()
        {
            warn!("the routes were not withdrawn within {ROUTES_SETTLE:?}");
        }
        self.routes.abort();
        if let Some(ipsec) = self.ipsec
            && timeout(IPSEC_STOP, ipsec.shutdown(false)).await.is_err()
        {
            warn!(
                "the IPsec controller did not stop within {IPSEC_STOP:?} (charon not \
                 answering?): left behind"
            );
        }
        let _ = std::fs::remove_file(&self.plan.status_socket);
        info!("the datapath and charon keep running");
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
            keepalives: self.keepalives.iter().map(|k| (k.id(), k.view())).collect(),
        }
    }

    fn answer(&self) -> socket::Answer {
        let sources = self.sources();
        Arc::new(move |request: &str| match request {
            socket::STATUS => Ok(serde_json::to_string(&sources.status())?),
            other => anyhow::bail!("unknown request {other:?} (ask: {})", socket::STATUS),
        })
    }
}

/// `vc-agent run`: tells systemd it is ready once everything is up (`Type=notify`), and
/// keeps its status line current.
pub async fn run(config: Config) -> Result<()> {
    let mut agent = Agent::start(config).await?;
    service::notify(&Notice::Ready(status_line(&agent.status())));
    agent.tasks.push(status_lines(agent.sources()));
    agent.run_until_signal().await
}

/// How often the service manager's status line is brought up to date.
const STATUS_LINE_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// Sends `STATUS=` whenever the line changes (what `systemctl status vc-agent` shows).
fn status_lines(sources: Sources) -> Task {
    Task::spawn("status-line", async move {
        let mut last = String::new();
        loop {
            tokio::time::sleep(STATUS_LINE_EVERY).await;
            let line = status_line(&sources.status());
            if line != last {
                service::notify(&Notice::Status(line.clone()));
                last = line;
            }
        }
    })
}

/// One line for the service manager: per tunnel whether it carries traffic, its BGP state
/// and how many of its expected prefixes it has.
fn status_line(s: &AgentStatus) -> String {
    let tunnels: Vec<String> = s
        .tunnels
        .iter()
        .map(|t| {
            let bgp = t.bgp.as_ref().map_or("-", |b| b.state.name());
            format!(
                "tunnel {} {}, BGP {bgp}, {}/{} prefixes",
                t.ends.id,
                if t.keepalive.alive { "up" } else { "DOWN" },
                t.accepted_prefixes.len(),
                t.expected_prefixes.len()
            )
        })
        .collect();
    format!(
        "up: region {}, {} mode; {}",
        s.region,
        s.mode,
        tunnels.join("; ")
    )
}
