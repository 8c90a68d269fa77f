//! The route manager: the one owner of vc's routes. It combines what each BGP session
//! accepts with each tunnel's liveness ([`table`]) and writes the result to
//!
//! 1. the datapath's `ROUTES` LPM map (prefix → tunnel mask), and
//! 2. the kernel's main table, one route per prefix via the DC's tunnel IP on the tunnel's
//!    interface, with protocol [`VC_RT_PROTO`] (R22: FRR's or BIRD's `redistribute kernel`
//!    picks them up; `ip route` names them `vc` once [`RT_PROTOS_PATH`] holds
//!    [`rt_protos_entry`]).
//!
//! Both get the same answer: the mask holds the tunnels that advertise the prefix *and* are
//! alive; the kernel route goes via the lowest of them, which is the one the datapath picks.
//! The manager also mirrors liveness into the datapath's per-tunnel UP flag (for configured
//! tunnels), so the datapath's own check agrees: it owns that flag. Liveness starts as alive
//! (a session that reaches Established over a tunnel is itself proof the tunnel carries
//! traffic) until [`RouteManager::set_tunnel_alive`] says otherwise; whoever (re)configures a
//! tunnel in the datapath calls [`RouteHandle::resync`] so the flag is set at once.
//!
//! On start it reconciles with what a previous run left (the pinned map, routes of its
//! protocol in the kernel). With a graceful-restart time ([`RouteManagerConfig::stale_for`]),
//! the routes via a configured tunnel are adopted as *stale*: kept, so traffic flows on while
//! the sessions come back, until that tunnel's session sends End-of-RIB
//! ([`RouteHandle::end_of_rib`]) or the time is over; then whatever the session did not send
//! again goes. Anything else left over goes at once, so a crash never leaves stale routes for
//! long. Every change is applied as a diff against what it knows is installed, so applying
//! the same input twice writes nothing; a periodic resync re-reads both and repairs drift.
pub mod kernel;
pub mod table;

use std::{
    collections::{BTreeMap, BTreeSet},
    net::Ipv4Addr,
    path::Path,
    time::{Duration, Instant},
};

use anyhow::{Context, Result};
use ipnet::Ipv4Net;
use serde::Serialize;
use tokio::sync::{mpsc, oneshot, watch};
use tracing::{info, warn};

use self::{
    kernel::{KernelRoutes, NextHop},
    table::{RouteTable, first_tunnel},
};
use crate::task::Task;

/// vc's route protocol number (`rtm_protocol`). Free in iproute2's and FRR's lists
/// (FRR uses 186–198, BIRD 12, Babel 42, keepalived 18).
pub const VC_RT_PROTO: u8 = 201;

/// Where iproute2 looks for protocol names; `vc-agent/dist/iproute2/rt_protos.d/vc.conf` is
/// the file to ship there.
pub const RT_PROTOS_PATH: &str = "/etc/iproute2/rt_protos.d/vc.conf";

/// The `rt_protos.d` lines that make `ip route` print `proto vc`, and `proto vc-backstop`
/// for the datapath's backstop routes (`datapath::backstop`).
#[must_use]
pub fn rt_protos_entry(protocol: u8) -> String {
    format!(
        "# vc's routes (BGP-learned DC prefixes), see vc-agent/src/routes\n{protocol}\tvc\n\
         # the backstop: unreachable routes for the protected prefixes, see \
         vc-agent/src/datapath/backstop.rs\n{}\tvc-backstop\n",
        crate::datapath::backstop::BACKSTOP_PROTO
    )
}

/// Writes the `rt_protos.d` file unless it already says the same. Returns whether it wrote.
pub fn install_rt_protos_entry(path: &Path, protocol: u8) -> std::io::Result<bool> {
    let entry = rt_protos_entry(protocol);
    if std::fs::read_to_string(path).is_ok_and(|s| s == entry) {
        return Ok(false);
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, entry)?;
    Ok(true)
}

pub use crate::datapath::SharedMaps;
use crate::datapath::TunnelSpec;

/// Where a tunnel's routes point.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TunnelNextHop {
    pub id: u32,
    /// The DC's tunnel IP.
    pub gateway: Ipv4Addr,
    /// The tunnel interface (looked up by name at each install: it may be re-created).
    pub interface: String,
}

impl From<&TunnelSpec> for TunnelNextHop {
    /// The DC's end of the tunnel, through its interface.
    fn from(t: &TunnelSpec) -> Self {
        TunnelNextHop {
            id: t.id,
            gateway: t.dc_tunnel_ip,
            interface: t.name.clone(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteManagerConfig {
    pub tunnels: Vec<TunnelNextHop>,
    pub protocol: u8,
    /// How often both places are re-read and repaired.
    pub resync: Duration,
    /// How long routes a previous run left are kept as stale, waiting for their session's
    /// End-of-RIB (the graceful-restart time). Zero: removed at start.
    pub stale_for: Duration,
}

impl RouteManagerConfig {
    #[must_use]
    pub fn new(tunnels: Vec<TunnelNextHop>) -> Self {
        RouteManagerConfig {
            tunnels,
            protocol: VC_RT_PROTO,
            resync: Duration::from_secs(30),
            stale_for: Duration::ZERO,
        }
    }
}

/// Input to the manager.
#[derive(Debug)]
pub enum RouteEvent {
    /// The whole set of prefixes `tunnel`'s session accepts now (empty: session down).
    Learned {
        tunnel: u32,
        prefixes: BTreeSet<Ipv4Net>,
        at: Instant,
    },
    /// Tunnel liveness (keepalives, SA state).
    Alive { tunnel: u32, alive: bool },
    /// `tunnel`'s session received End-of-RIB: its stale routes that it did not send again go.
    EndOfRib { tunnel: u32 },
    /// A deliberate shutdown: every route goes, learned and stale.
    WithdrawAll,
    /// Re-read the map and the kernel and repair both now (e.g. after a tunnel was
    /// (re)configured in the datapath, so its UP flag gets the current liveness).
    Resync,
    /// Answered once everything sent before has been applied.
    Settle(oneshot::Sender<()>),
}

/// Sends to the manager; cheap to clone (one per speaker).
#[derive(Clone, Debug)]
pub struct RouteHandle(mpsc::UnboundedSender<RouteEvent>);

/// The manager's end of the channel.
pub struct RouteReceiver(mpsc::UnboundedReceiver<RouteEvent>);

impl RouteReceiver {
    pub async fn recv(&mut self) -> Option<RouteEvent> {
        self.0.recv().await
    }
}

impl RouteHandle {
    #[must_use]
    pub fn channel() -> (RouteHandle, RouteReceiver) {
        let (tx, rx) = mpsc::unbounded_channel();
        (RouteHandle(tx), RouteReceiver(rx))
    }

    pub fn learned(&self, tunnel: u32, prefixes: BTreeSet<Ipv4Net>) {
        let _ = self.0.send(RouteEvent::Learned {
            tunnel,
            prefixes,
            at: Instant::now(),
        });
    }

    pub fn set_tunnel_alive(&self, tunnel: u32, alive: bool) {
        let _ = self.0.send(RouteEvent::Alive { tunnel, alive });
    }

    pub fn end_of_rib(&self, tunnel: u32) {
        let _ = self.0.send(RouteEvent::EndOfRib { tunnel });
    }

    /// Removes every route of vc (the agent's deliberate stop); [`RouteHandle::settled`]
    /// tells when it is done.
    pub fn withdraw_all(&self) {
        let _ = self.0.send(RouteEvent::WithdrawAll);
    }

    pub fn resync(&self) {
        let _ = self.0.send(RouteEvent::Resync);
    }

    /// Waits until the manager has applied everything sent before.
    pub async fn settled(&self) {
        let (tx, rx) = oneshot::channel();
        if self.0.send(RouteEvent::Settle(tx)).is_ok() {
            let _ = rx.await;
        }
    }
}

/// How long the last change took to reach each place, from the session's report.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ApplyTiming {
    pub map: Duration,
    pub kernel: Duration,
}

/// What is installed, for operators and tests.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct RouteStatus {
    /// The LPM map as written: prefix → tunnel mask.
    pub map: BTreeMap<Ipv4Net, u32>,
    /// The kernel routes: prefix → tunnel.
    pub kernel: BTreeMap<Ipv4Net, u32>,
    pub dead_tunnels: BTreeSet<u32>,
    /// What each tunnel's session accepted (installed while the tunnel is alive).
    pub learned: BTreeMap<u32, BTreeSet<Ipv4Net>>,
    /// Left by a previous run and removed at start.
    pub stale_removed: usize,
    /// Left by a previous run and kept at start (graceful restart).
    pub stale_adopted: usize,
    /// Per tunnel, the adopted routes still waiting for the session's End-of-RIB.
    pub stale: BTreeMap<u32, BTreeSet<Ipv4Net>>,
    pub errors: u64,
    pub last_error: Option<String>,
    pub last_apply: Option<ApplyTiming>,
}

/// The running manager.
pub struct RouteManager {
    handle: RouteHandle,
    status: watch::Receiver<RouteStatus>,
    task: Task,
}

impl RouteManager {
    /// Reconciles with what is installed, then runs on the current runtime (netlink in the
    /// calling thread's namespace).
    pub async fn spawn(cfg: RouteManagerConfig, maps: SharedMaps) -> Result<Self> {
        let (handle, rx) = RouteHandle::channel();
        Self::spawn_with(cfg, maps, handle, rx).await
    }

    /// As [`RouteManager::spawn`], on a channel made beforehand.
    pub async fn spawn_with(
        cfg: RouteManagerConfig,
        maps: SharedMaps,
        handle: RouteHandle,
        rx: RouteReceiver,
    ) -> Result<Self> {
        let (status_tx, status) = watch::channel(RouteStatus::default());
        let stale_for = cfg.stale_for;
        let mut manager = Manager {
            kernel: KernelRoutes::new(cfg.protocol)?,
            cfg,
            maps,
            table: RouteTable::default(),
            in_map: BTreeMap::new(),
            in_kernel: BTreeMap::new(),
            status: RouteStatus::default(),
            status_tx,
            stale_until: None,
        };
        if !stale_for.is_zero() {
            let adopted = manager.adopt().await.context("adopting routes at start")?;
            manager.status.stale_adopted = adopted;
            if adopted > 0 {
                manager.stale_until = Some(tokio::time::Instant::now() + stale_for);
                info!(
                    "kept {adopted} route(s) of the previous run (graceful restart): each \
                     tunnel's go once its session sent End-of-RIB, at most {stale_for:?}"
                );
            }
        }
        let stale = manager
            .reconcile()
            .await
            .context("reconciling routes at start")?;
        manager.status.stale_removed = stale;
        if stale > 0 {
            info!("removed {stale} route(s) left by a previous run");
        }
        manager.publish();
        let task = Task::spawn("routes", manager.run(rx));
        Ok(RouteManager {
            handle,
            status,
            task,
        })
    }

    #[must_use]
    pub fn handle(&self) -> RouteHandle {
        self.handle.clone()
    }

    /// Tunnel liveness input (keepalives and SA state will feed it).
    pub fn set_tunnel_alive(&self, tunnel: u32, alive: bool) {
        self.handle.set_tunnel_alive(tunnel, alive);
    }

    #[must_use]
    pub fn status(&self) -> RouteStatus {
        self.status.borrow().clone()
    }

    #[must_use]
    pub fn subscribe(&self) -> watch::Receiver<RouteStatus> {
        self.status.clone()
    }

    /// Stops the manager, leaving the routes in place (the next start reconciles them).
    pub fn abort(&self) {
        self.task.abort();
    }

    /// The manager's task, for the agent to watch.
    #[must_use]
    pub fn task(&self) -> &Task {
        &self.task
    }
}

struct Manager {
    cfg: RouteManagerConfig,
    maps: SharedMaps,
    kernel: KernelRoutes,
    table: RouteTable,
    /// What the map holds, as far as we know.
    in_map: BTreeMap<Ipv4Net, u32>,
    /// What the kernel holds: prefix → (tunnel, next hop).
    in_kernel: BTreeMap<Ipv4Net, (u32, NextHop)>,
    status: RouteStatus,
    status_tx: watch::Sender<RouteStatus>,
    /// When adopted routes still stale are swept whatever the sessions did.
    stale_until: Option<tokio::time::Instant>,
}

impl Manager {
    async fn run(mut self, mut rx: RouteReceiver) {
        let mut resync = tokio::time::interval(self.cfg.resync);
        resync.tick().await;
        loop {
            let stale_until = self.stale_until;
            tokio::select! {
                event = rx.recv() => match event {
                    Some(RouteEvent::Learned { tunnel, prefixes, at }) => {
                        if self.table.set_learned(tunnel, prefixes) {
                            self.apply(Some(at)).await;
                        }
                    }
                    Some(RouteEvent::Alive { tunnel, alive }) => {
                        if self.table.set_alive(tunnel, alive) {
                            info!(tunnel, alive, "tunnel liveness");
                            self.apply(None).await;
                        }
                    }
                    Some(RouteEvent::EndOfRib { tunnel }) => {
                        let swept = self.table.sweep(tunnel);
                        if swept > 0 {
                            info!(
                                tunnel,
                                "End-of-RIB: the {swept} route(s) kept from the previous run \
                                 are confirmed or removed"
                            );
                            self.apply(None).await;
                        }
                        if self.table.stale().is_empty() {
                            self.stale_until = None;
                        }
                    }
                    Some(RouteEvent::WithdrawAll) => {
                        self.table.clear();
                        self.stale_until = None;
                        self.apply(None).await;
                    }
                    Some(RouteEvent::Resync) => {
                        if let Err(e) = self.reconcile().await {
                            self.error(&format!("{e:#}"));
                        }
                    }
                    Some(RouteEvent::Settle(done)) => {
                        let _ = done.send(());
                    }
                    None => return,
                },
                _ = resync.tick() => {
                    if let Err(e) = self.reconcile().await {
                        self.error(&format!("{e:#}"));
                    }
                }
                () = tokio::time::sleep_until(
                    stale_until.unwrap_or_else(tokio::time::Instant::now)
                ), if stale_until.is_some() => {
                    self.stale_until = None;
                    let swept = self.table.sweep_all();
                    warn!(
                        "the graceful-restart time is over without End-of-RIB: the {swept} \
                         route(s) kept from the previous run are confirmed or removed"
                    );
                    self.apply(None).await;
                }
            }
            self.publish();
        }
    }

    /// Takes what a previous run installed via a configured tunnel as that tunnel's stale
    /// routes: a map entry counts for each tunnel of its mask, a kernel route for the tunnel of
    /// its gateway. Returns how many prefixes were adopted.
    async fn adopt(&mut self) -> Result<usize> {
        self.read_installed().await?;
        let mut stale: BTreeMap<u32, BTreeSet<Ipv4Net>> = BTreeMap::new();
        for t in &self.cfg.tunnels {
            let set = stale.entry(t.id).or_default();
            set.extend(
                self.in_map
                    .iter()
                    .filter(|(_, mask)| *mask & (1 << t.id) != 0)
                    .map(|(p, _)| *p),
            );
            set.extend(
                self.in_kernel
                    .iter()
                    .filter(|(_, (tunnel, _))| *tunnel == t.id)
                    .map(|(p, _)| *p),
            );
        }
        let mut adopted = BTreeSet::new();
        for (tunnel, prefixes) in stale {
            adopted.extend(prefixes.iter().copied());
            self.table.set_stale(tunnel, prefixes);
        }
        Ok(adopted.len())
    }

    /// Re-reads the map and the kernel, then applies the table. Returns how many entries were
    /// there that should not be.
    async fn reconcile(&mut self) -> Result<usize> {
        self.read_installed().await?;
        let desired = self.table.desired();
        let stale = self
            .in_map
            .keys()
            .chain(self.in_kernel.keys())
            .filter(|p| !desired.contains_key(p))
            .collect::<BTreeSet<_>>()
            .len();
        self.apply(None).await;
        Ok(stale)
    }

    /// What the map and the kernel hold now.
    async fn read_installed(&mut self) -> Result<()> {
        self.in_map = self
            .maps
            .lock()
            .map_err(|_| anyhow::anyhow!("datapath maps lock poisoned"))?
            .routes()?
            .into_iter()
            .map(|(p, r)| (p, r.tunnels))
            .collect();
        let hops = self.cfg.tunnels.clone();
        self.in_kernel = self
            .kernel
            .dump()
            .await?
            .into_iter()
            .map(|(p, nh)| {
                // Which tunnel a route points at; an unknown gateway never matches a wanted
                // route, so it gets replaced.
                let tunnel = hops
                    .iter()
                    .find(|t| t.gateway == nh.gateway)
                    .map_or(u32::MAX, |t| t.id);
                (p, (tunnel, nh))
            })
            .collect();
        Ok(())
    }

    async fn apply(&mut self, since: Option<Instant>) {
        let desired = self.table.desired();
        self.apply_map(&desired);
        let map_done = Instant::now();
        self.apply_kernel(&desired).await;
        if let Some(at) = since {
            self.status.last_apply = Some(ApplyTiming {
                map: map_done.duration_since(at),
                kernel: at.elapsed(),
            });
        }
    }

    fn apply_map(&mut self, desired: &BTreeMap<Ipv4Net, u32>) {
        let Ok(mut maps) = self.maps.lock() else {
            self.error("datapath maps lock poisoned");
            return;
        };
        let mut errors = Vec::new();
        let gone = gone(&self.in_map, desired);
        for prefix in gone {
            match maps.set_route(prefix, 0) {
                Ok(()) => {
                    self.in_map.remove(&prefix);
                }
                Err(e) => errors.push(format!("{e:#}")),
            }
        }
        for (prefix, mask) in desired {
            if self.in_map.get(prefix) != Some(mask) {
                match maps.set_route(*prefix, *mask) {
                    Ok(()) => {
                        self.in_map.insert(*prefix, *mask);
                    }
                    Err(e) => errors.push(format!("{e:#}")),
                }
            }
        }
        // The datapath's UP flag follows the same liveness, for tunnels configured there.
        for t in &self.cfg.tunnels {
            let alive = self.table.is_alive(t.id);
            if let Ok(tunnel) = maps.tunnel(t.id)
                && tunnel.is_configured()
                && tunnel.is_up() != alive
                && let Err(e) = maps.set_tunnel_up(t.id, alive)
            {
                errors.push(format!("{e:#}"));
            }
        }
        drop(maps);
        for e in errors {
            self.error(&e);
        }
    }

    async fn apply_kernel(&mut self, desired: &BTreeMap<Ipv4Net, u32>) {
        let gone = gone(&self.in_kernel, desired);
        for prefix in gone {
            match self.kernel.delete(prefix).await {
                Ok(()) => {
                    self.in_kernel.remove(&prefix);
                }
                Err(e) => self.error(&format!("{e:#}")),
            }
        }
        for (prefix, mask) in desired {
            let Some(tunnel) = first_tunnel(*mask) else {
                continue;
            };
            let Some(hop) = self.cfg.tunnels.iter().find(|t| t.id == tunnel).cloned() else {
                self.error(&format!(
                    "{prefix}: tunnel {tunnel} has no next hop configured"
                ));
                continue;
            };
            let ifindex = match self.kernel.ifindex(&hop.interface).await {
                Ok(i) => i,
                Err(e) => {
                    self.error(&format!("{prefix}: {e:#}"));
                    continue;
                }
            };
            let next_hop = NextHop {
                gateway: hop.gateway,
                ifindex,
            };
            if self.in_kernel.get(prefix) == Some(&(tunnel, next_hop)) {
                continue;
            }
            match self.kernel.replace(*prefix, next_hop).await {
                Ok(()) => {
                    self.in_kernel.insert(*prefix, (tunnel, next_hop));
                }
                Err(e) => self.error(&format!("{e:#}")),
            }
        }
    }

    fn error(&mut self, text: &str) {
        warn!("route manager: {text}");
        self.status.errors += 1;
        self.status.last_error = Some(text.to_string());
    }

    fn publish(&mut self) {
        self.status.map.clone_from(&self.in_map);
        self.status.kernel = self.in_kernel.iter().map(|(p, (t, _))| (*p, *t)).collect();
        self.status.dead_tunnels = (0..vc_common::MAX_TUNNELS)
            .filter(|t| !self.table.is_alive(*t))
            .collect();
        self.status.learned = (0..vc_common::MAX_TUNNELS)
            .map(|t| (t, self.table.learned(t)))
            .filter(|(_, learned)| !learned.is_empty())
            .collect();
        self.status.stale.clone_from(self.table.stale());
        let status = &self.status;
        self.status_tx.send_if_modified(|current| {
            if current == status {
                false
            } else {
                current.clone_from(status);
                true
            }
        });
    }
}

/// The prefixes `have` holds that `desired` no longer does.
fn gone<V>(have: &BTreeMap<Ipv4Net, V>, desired: &BTreeMap<Ipv4Net, u32>) -> Vec<Ipv4Net> {
    have.keys()
        .filter(|p| !desired.contains_key(p))
        .copied()
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_shipped_rt_protos_file_matches_the_protocol_number() {
        let shipped = include_str!("../../dist/iproute2/rt_protos.d/vc.conf");
        assert_eq!(shipped, super::rt_protos_entry(super::VC_RT_PROTO));
    }
}
