//! `vc-agent run`: the control plane of a CPE, from the activation form to tunnels that carry
//! traffic, and the state an operator asks for.
//!
//! Start order is the fail-closed order: the backstop routes first (nothing bound for a
//! protected prefix follows the default route, whatever fails next), IPsec (XFRM block
//! policies before anything can send GRE, then charon), then the datapath (the guard attached
//! first, and from then on kept attached by the datapath watch), the route manager, one BGP
//! speaker per tunnel, keepalives and liveness, path-MTU following, and the control socket.
//!
//! Two ways to stop ([`StopMode`]):
//! - a *restart* (SIGTERM, what systemd sends on stop, restart and package upgrade; SIGINT; a
//!   task's death): BGP graceful restart (RFC 4724) as the restarting speaker. The sessions'
//!   TCP connections close without a NOTIFICATION, vc's routes and the datapath stay, charon
//!   stays. A GR-aware DC keeps vc's default route for the restart time; the next run adopts
//!   the datapath and vc's kernel routes (as stale until each DC's End-of-RIB) and announces
//!   the restart in its OPENs. Traffic flows throughout.
//! - a *withdrawal* (`vc-agent stop`, or any stop with graceful restart off): Cease to each
//!   DC, vc's routes removed; the datapath, the backstop and charon stay, so GRE stays
//!   blocked in clear.
//!
//! A reload (SIGHUP, `vc-agent reload`) reads the config file again and applies what changed
//! tunnel by tunnel, or refuses it and keeps running as before ([`reload`]).
//!
//! Every long-lived task is watched: if one dies (a panic, or a loop that returned), the agent
//! stops (a restart) and exits with an error naming the task, for the service manager to
//! restart it. Stopping takes [`STOP_WITHIN`] at most, whatever charon or the peers do.
mod path_mtu;
pub mod plan;
pub mod reload;
mod sources;

use std::{
    path::PathBuf,
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, anyhow, bail};
use tokio::{
    signal::unix::SignalKind,
    sync::{mpsc, oneshot, watch},
    time::timeout,
};
use tracing::{error, info, warn};

pub use self::plan::{Plan, TunnelPlan, plan};
use self::sources::{Running, Sources};
use crate::{
    bgp::{self, NeighborConfig, NeighborState, Speaker},
    config::{self, Config, TunnelId},
    datapath::{self, Datapath, tunnel_index},
    ipsec::Ipsec,
    keepalive::{KeepaliveTask, KeepaliveTunnel, task::BgpEstablished},
    lan::{LanHealth, LanWatch},
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
/// charon's reload of the connections during a reload.
const IPSEC_RELOAD: Duration = Duration::from_secs(10);

/// How the agent stops.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopMode {
    /// To be started again: no NOTIFICATION, routes and datapath kept (graceful restart).
    Restart,
    /// For good: Cease to each DC, vc's routes withdrawn.
    Withdraw,
}

/// What the control socket asks of the run loop.
enum Control {
    Stop,
    Reload(oneshot::Sender<Result<String>>),
}

/// The running agent.
pub struct Agent {
    config: Config,
    plan: Plan,
    /// Where the config came from: a reload reads it again. `None`: no reload.
    path: Option<PathBuf>,
    started: Instant,
    datapath: Arc<Datapath>,
    ipsec: Option<Ipsec>,
    routes: RouteManager,
    speakers: Vec<(TunnelId, Speaker)>,
    /// Each tunnel's BGP snapshots: a session a reload starts anew publishes here too.
    speaker_states: Vec<(TunnelId, watch::Sender<NeighborState>)>,
    keepalives: Vec<KeepaliveTask>,
    lan: LanWatch,
    /// The agent's own tasks: LAN follower, path MTU, control socket, metrics.
    tasks: Vec<Task>,
    /// The config and plan the status shows.
    running: watch::Sender<Arc<Running>>,
    control_tx: mpsc::Sender<Control>,
    control: Option<mpsc::Receiver<Control>>,
}

impl Agent {
    /// Brings everything up (see the module's doc for the order). `path` is where `config`
    /// was read from, for reloads.
    pub async fn start(config: Config, path: Option<PathBuf>) -> Result<Agent> {
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
        // A previous run left the datapath: this run is its restart.
        let restarted = datapath.adopted();
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
        let mut route_config =
            RouteManagerConfig::new(plan.tunnels.iter().map(|t| t.next_hop.clone()).collect());
        route_config.stale_for = Duration::from_secs(u64::from(config.bgp.graceful_restart_time_s));
        let routes = RouteManager::spawn(route_config, datapath.shared_maps())
            .await
            .context("starting the route manager")?;
        let (speakers, speaker_states) = spawn_speakers(&plan, &routes, restarted)?;
        let lan = LanWatch::start(
            config.interfaces.lan.clone(),
            config.lan.default_requires.clone(),
        )
        .await
        .context("starting the LAN watcher")?;
        let lan_follower = follow_lan(
            lan.subscribe(),
            speakers.iter().map(|(_, s)| s.default_switch()).collect(),
        );
        let keepalives =
            spawn_keepalives(&plan, &datapath, ipsec.as_ref(), &speaker_states, &routes)?;
        let (running, _) = watch::channel(Arc::new(Running {
            config: config.clone(),
            plan: plan.clone(),
        }));
        let (control_tx, control) = mpsc::channel(4);
        let mut agent = Agent {
            config,
            plan,
            path,
            started: Instant::now(),
            datapath,
            ipsec,
            routes,
            speakers,
            speaker_states,
            keepalives,
            lan,
            tasks: vec![lan_follower],
            running,
            control_tx,
            control: Some(control),
        };
        agent.tasks.extend(datapath_tasks(&agent.datapath)?);
        agent.tasks.push(path_mtu::follow(
            Arc::clone(&agent.datapath),
            &agent.plan.tunnels,
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
            restarted,
            "agent up"
        );
        Ok(agent)
    }

    /// Runs until SIGTERM or SIGINT (a restart), `vc-agent stop` (a withdrawal), or a task's
    /// death (a restart, and an error naming the task and how it ended); then stops. Applies
    /// reloads (SIGHUP, `vc-agent reload`) meanwhile.
    pub async fn run_until_signal(mut self) -> Result<()> {
        let mut term = tokio::signal::unix::signal(SignalKind::terminate())?;
        let mut hup = tokio::signal::unix::signal(SignalKind::hangup())?;
        let mut control = self.control.take().context("the agent runs once")?;
        let (mode, died) = loop {
            let reload = {
                let watched = self.watched();
                tokio::select! {
                    _ = term.recv() => {
                        info!("SIGTERM: stopping for a restart (graceful restart)");
                        break (StopMode::Restart, None);
                    }
                    _ = tokio::signal::ctrl_c() => {
                        info!("SIGINT: stopping for a restart (graceful restart)");
                        break (StopMode::Restart, None);
                    }
                    _ = hup.recv() => {
                        info!("SIGHUP: reloading the config");
                        None
                    }
                    Some(request) = control.recv() => match request {
                        Control::Stop => {
                            info!("stop requested: Cease to the DCs, withdrawing vc's routes");
                            break (StopMode::Withdraw, None);
                        }
                        Control::Reload(reply) => Some(reply),
                    },
                    died = task::first_to_end(&watched) => break (StopMode::Restart, Some(died)),
                }
            };
            let result = self.reload().await;
            match &result {
                Ok(done) => info!("reload: {}", done.trim_end()),
                Err(e) => warn!("reload refused: {e:#}"),
            }
            if let Some(reply) = reload {
                let _ = reply.send(result);
            }
        };
        if let Some((name, end)) = &died {
            error!(
                task = %name,
                "the agent's task {name} {end}: stopping the agent (the datapath and the \
                 routes stay)"
            );
        }
        // Without graceful restart the DCs drop vc's routes at once anyway: tell them why.
        let mode = if self.config.bgp.graceful_restart_time_s == 0 {
            StopMode::Withdraw
        } else {
            mode
        };
        let stopping = Instant::now();
        self.stop(mode).await;
        info!(took = ?stopping.elapsed(), ?mode, "agent stopped");
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
        watched.push(self.lan.task());
        watched.extend(self.ipsec.as_ref().map(Ipsec::task));
        watched
    }

    /// Stops the tasks and the BGP sessions as `mode` says (see [`StopMode`]); leaves charon
    /// and the datapath running. Takes [`STOP_WITHIN`] at most.
    pub async fn stop(self, mode: StopMode) {
        service::notify(&Notice::Stopping);
        for task in &self.tasks {
            task.abort();
        }
        for k in &self.keepalives {
            k.abort();
        }
        self.lan.task().abort();
        let speakers = self.speakers.into_iter().map(|(_, s)| s);
        let closing = match mode {
            StopMode::Restart => timeout(
                SESSIONS_CLOSE,
                futures::future::join_all(speakers.map(Speaker::detach)),
            )
            .await
            .is_err(),
            StopMode::Withdraw => timeout(
                SESSIONS_CLOSE,
                futures::future::join_all(speakers.map(Speaker::shutdown)),
            )
            .await
            .is_err(),
        };
        if closing {
            warn!("the BGP sessions did not close within {SESSIONS_CLOSE:?}");
        }
        if mode == StopMode::Withdraw {
            // Routes adopted from a previous run have no session to withdraw them.
            self.routes.handle().withdraw_all();
            if timeout(ROUTES_SETTLE, self.routes.handle().settled())
                .await
                .is_err()
            {
                warn!("the routes were not withdrawn within {ROUTES_SETTLE:?}");
            }
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
        match mode {
            StopMode::Restart => info!("the datapath, vc's routes and charon keep running"),
            StopMode::Withdraw => {
                info!("vc's routes withdrawn; the datapath and charon keep running");
            }
        }
    }

    /// Reads the config file again and applies what changed, or refuses (nothing changed):
    /// an invalid file (its faults, as `check-config` names them), or a change only a restart
    /// applies. Returns what was done.
    async fn reload(&mut self) -> Result<String> {
        let path = self
            .path
            .clone()
            .context("this agent was started without a config file")?;
        let new = config::load(&path).map_err(|e| {
            anyhow!(
                "the new config is refused, the running one kept:\n{}",
                config::cli::fault_lines(e).join("\n")
            )
        })?;
        let new_plan = plan::plan(&new).context("the new config is refused")?;
        let changes = reload::changes(&self.config, &self.plan, &new, &new_plan)
            .context("the new config is refused")?;
        if !changes.need_restart.is_empty() {
            bail!(
                "the new config is refused, the running one kept: {} cannot change without a \
                 restart (systemctl restart vc-agent)",
                changes.need_restart.join(", ")
            );
        }
        if changes.is_empty() {
            return Ok("no change\n".into());
        }
        let mut done = Vec::new();
        if !changes.ike.is_empty() {
            let what = if let Some(ipsec) = &self.ipsec {
                timeout(IPSEC_RELOAD, ipsec.reload(new.clone()))
                    .await
                    .map_err(|_| anyhow!("charon did not reload within {IPSEC_RELOAD:?}"))?
                    .context("reloading the IKE connections")?;
                "IKE connection reloaded"
            } else {
                "IKE settings taken (external-ipsec mode: another box does IKE)"
            };
            for id in &changes.ike {
                done.push(format!("tunnel {id}: {what}"));
            }
        }
        // From here on the new config is the running one, whatever a session does.
        self.config = new;
        self.plan = new_plan;
        self.running.send_replace(Arc::new(Running {
            config: self.config.clone(),
            plan: self.plan.clone(),
        }));
        for id in changes.bgp {
            let neighbor = self
                .plan
                .tunnels
                .iter()
                .find(|t| t.id == id)
                .map(|t| t.neighbor.clone())
                .context("a changed tunnel is planned")?;
            self.reset_session(id, neighbor).await?;
            done.push(format!("tunnel {id}: BGP session reset"));
        }
        Ok(format!("{}\n", done.join("\n")))
    }

    /// Replaces tunnel `id`'s BGP session with one of `neighbor` (Cease to the DC first).
    async fn reset_session(&mut self, id: TunnelId, neighbor: NeighborConfig) -> Result<()> {
        let at = self
            .speakers
            .iter()
            .position(|(t, _)| *t == id)
            .context("the tunnel has a session")?;
        let (_, old) = self.speakers.remove(at);
        if timeout(SESSIONS_CLOSE, old.shutdown()).await.is_err() {
            warn!(tunnel = %id, "the old BGP session did not close within {SESSIONS_CLOSE:?}");
        }
        let state = self
            .speaker_states
            .iter()
            .find(|(t, _)| *t == id)
            .map(|(_, s)| s.clone())
            .context("the tunnel has a state channel")?;
        let speaker = Speaker::spawn_publishing(neighbor, self.routes.handle(), state)
            .with_context(|| format!("starting the BGP session of tunnel {id} again"))?;
        self.speakers.insert(at, (id, speaker));
        Ok(())
    }

    /// The current state, as `vc-agent status` shows it.
    #[must_use]
    pub fn status(&self) -> AgentStatus {
        self.sources().status()
    }

    fn sources(&self) -> Sources {
        Sources {
            running: self.running.subscribe(),
            started: self.started,
            datapath: Arc::clone(&self.datapath),
            ipsec: self.ipsec.as_ref().map(Ipsec::watch),
            routes: self.routes.subscribe(),
            speakers: self
                .speaker_states
                .iter()
                .map(|(id, s)| (*id, s.subscribe()))
                .collect(),
            keepalives: self.keepalives.iter().map(|k| (k.id(), k.view())).collect(),
            lan: self.lan.subscribe(),
        }
    }

    fn answer(&self) -> socket::Answer {
        let sources = self.sources();
        let control = self.control_tx.clone();
        Arc::new(move |request: &str| {
            let request = request.to_string();
            let sources = sources.clone();
            let control = control.clone();
            Box::pin(async move {
                match request.as_str() {
                    socket::STATUS => Ok(serde_json::to_string(&sources.status())?),
                    socket::STOP => {
                        control
                            .send(Control::Stop)
                            .await
                            .map_err(|_| anyhow!("the agent is stopping already"))?;
                        Ok("stopping\n".into())
                    }
                    socket::RELOAD => {
                        let (reply, answer) = oneshot::channel();
                        control
                            .send(Control::Reload(reply))
                            .await
                            .map_err(|_| anyhow!("the agent is stopping"))?;
                        answer.await.map_err(|_| anyhow!("the agent is stopping"))?
                    }
                    other => bail!(
                        "unknown request {other:?} (ask: {}, {}, {})",
                        socket::STATUS,
                        socket::STOP,
                        socket::RELOAD
                    ),
                }
            })
        })
    }
}

/// One BGP speaker per tunnel, each publishing on a channel of its own that outlives it (a
/// reload may start a session anew). `restarted`: the OPENs announce a restart.
#[expect(
    clippy::type_complexity,
    reason = "two lists of the same tunnels, kept side by side by the agent"
)]
fn spawn_speakers(
    plan: &Plan,
    routes: &RouteManager,
    restarted: bool,
) -> Result<(
    Vec<(TunnelId, Speaker)>,
    Vec<(TunnelId, watch::Sender<NeighborState>)>,
)> {
    let mut speakers = Vec::new();
    let mut states = Vec::new();
    for t in &plan.tunnels {
        let mut neighbor = t.neighbor.clone();
        neighbor.graceful_restart.restarted = restarted;
        let (state, _) = watch::channel(NeighborState::new(&neighbor));
        let speaker = Speaker::spawn_publishing(neighbor, routes.handle(), state.clone())
            .with_context(|| format!("starting the BGP session of tunnel {}", t.id))?;
        speakers.push((t.id, speaker));
        states.push((t.id, state));
    }
    Ok((speakers, states))
}

/// One keepalive task per tunnel, each told its tunnel's SA and BGP session.
fn spawn_keepalives(
    plan: &Plan,
    datapath: &Datapath,
    ipsec: Option<&Ipsec>,
    speaker_states: &[(TunnelId, watch::Sender<NeighborState>)],
    routes: &RouteManager,
) -> Result<Vec<KeepaliveTask>> {
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
        // The tunnel's channel, not its speaker: a reload may start the session anew.
        let session = speaker_states
            .iter()
            .find(|(id, _)| *id == t.id)
            .map(|(_, s)| s.subscribe());
        let bgp: BgpEstablished = Arc::new(move || {
            session
                .as_ref()
                .is_some_and(|s| s.borrow().state == bgp::State::Established)
        });
        keepalives.push(KeepaliveTask::spawn(
            tunnel,
            datapath.shared_maps(),
            ipsec.map(Ipsec::watch),
            bgp,
            routes.handle(),
        )?);
    }
    Ok(keepalives)
}

/// Advertises 0.0.0.0/0 to every DC while the LAN side is healthy, withdraws it otherwise
/// (`[lan] default_requires`). The first health is applied before any session can come up.
fn follow_lan(
    mut health: tokio::sync::watch::Receiver<LanHealth>,
    switches: Vec<bgp::DefaultSwitch>,
) -> Task {
    Task::spawn("lan-default", async move {
        loop {
            let healthy = health.borrow_and_update().healthy();
            for s in &switches {
                s.set(healthy);
            }
            if health.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    })
}

/// `vc-agent run`: tells systemd it is ready once everything is up (`Type=notify`), and
/// keeps its status line current.
/// The datapath's own tasks: the watch that keeps its programs attached, and the delivery of
/// reassembled outer GRE fragments.
fn datapath_tasks(datapath: &Arc<Datapath>) -> Result<[Task; 2]> {
    Ok([
        datapath::reconcile::watch(Arc::clone(datapath)),
        datapath::reassembled::deliver(Arc::clone(datapath))
            .context("starting the delivery of reassembled GRE")?,
    ])
}

pub async fn run(config: Config, path: PathBuf) -> Result<()> {
    let mut agent = Agent::start(config, Some(path)).await?;
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
