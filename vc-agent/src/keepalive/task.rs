//! Keepalives and liveness, one task per tunnel (R13, R21): sends our keepalives into the
//! tunnel interface, reads what the datapath heard from the DC, has [`super::liveness`] judge
//! it, and tells the route manager whether the tunnel may carry traffic: keepalives heard
//! (unless not judged) and, in IPsec mode, its child SA installed. A dead tunnel's /25 then
//! follows the /24 over the other.
use std::{
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, Instant},
};

use anyhow::Result;
use tokio::sync::watch;
use tracing::{info, warn};
use vc_common::TunnelStats;

use super::{
    KeepaliveSender, Liveness, LivenessConfig, TunnelLiveness, keepalive_frame,
    status::KeepaliveStatus,
};
use crate::{
    config::TunnelId,
    datapath::{SharedMaps, TunnelSpec},
    ipsec::Snapshot,
    routes::RouteHandle,
    task::Task as Supervised,
};

/// How often the SA state is looked at between keepalives: a child SA going down moves the
/// traffic within a second, without waiting for missed keepalives.
const POLL: Duration = Duration::from_secs(1);

/// The last judgement, for the status.
#[derive(Clone, Debug, Default)]
pub struct KeepaliveView {
    pub config: Option<LivenessConfig>,
    pub alive: bool,
    pub missed: u32,
    pub last_reply_at: Option<Instant>,
}

impl KeepaliveView {
    #[must_use]
    pub fn status(&self, stats: &TunnelStats) -> KeepaliveStatus {
        KeepaliveStatus {
            enabled: self.config.is_some(),
            interval_s: self.config.map_or(0, |c| c.interval.as_secs()),
            retries: self.config.map_or(0, |c| c.retries),
            sent: stats.keepalive_tx,
            replies: stats.keepalive_rx,
            reflected: stats.keepalive_reflected,
            alive: self.alive,
            missed: self.missed,
            last_reply_s: self.last_reply_at.map(|t| t.elapsed().as_secs()),
        }
    }
}

/// What a tunnel's keepalive task works with.
#[derive(Clone, Copy, Debug)]
pub struct KeepaliveTunnel<'a> {
    pub id: TunnelId,
    pub spec: &'a TunnelSpec,
    /// The tunnel interface, where our keepalives go in.
    pub tunnel_ifindex: u32,
    /// `None`: send no keepalives and judge no liveness from them (R13).
    pub config: Option<LivenessConfig>,
}

/// A running keepalive task.
pub struct KeepaliveTask {
    id: TunnelId,
    view: Arc<Mutex<KeepaliveView>>,
    task: Supervised,
}

impl KeepaliveTask {
    pub fn spawn(
        tunnel: KeepaliveTunnel<'_>,
        maps: SharedMaps,
        ipsec: Option<watch::Receiver<Snapshot>>,
        routes: RouteHandle,
    ) -> Result<Self> {
        let spec = tunnel.spec;
        let frame = keepalive_frame(
            spec.tunnel_mac(),
            spec.peer_mac(),
            spec.local_gre,
            spec.remote_gre,
        );
        let sender = match tunnel.config {
            Some(_) => Some(KeepaliveSender::new(tunnel.tunnel_ifindex)?),
            None => None,
        };
        let view = Arc::new(Mutex::new(KeepaliveView {
            config: tunnel.config,
            alive: true,
            ..KeepaliveView::default()
        }));
        let name = format!("keepalive-{}", tunnel.id.key());
        let task = Supervised::spawn(
            name,
            run(Task {
                id: tunnel.id,
                index: spec.id,
                config: tunnel.config,
                sender,
                frame,
                maps,
                ipsec,
                routes,
                view: Arc::clone(&view),
            }),
        );
        Ok(KeepaliveTask {
            id: tunnel.id,
            view,
            task,
        })
    }

    #[must_use]
    pub fn id(&self) -> TunnelId {
        self.id
    }

    #[must_use]
    pub fn view(&self) -> Arc<Mutex<KeepaliveView>> {
        Arc::clone(&self.view)
    }

    pub fn abort(&self) {
        self.task.abort();
    }

    /// The task, for the agent to watch.
    #[must_use]
    pub fn task(&self) -> &Supervised {
        &self.task
    }
}

struct Task {
    id: TunnelId,
    index: u32,
    config: Option<LivenessConfig>,
    sender: Option<KeepaliveSender>,
    frame: Vec<u8>,
    maps: SharedMaps,
    ipsec: Option<watch::Receiver<Snapshot>>,
    routes: RouteHandle,
    view: Arc<Mutex<KeepaliveView>>,
}

async fn run(t: Task) {
    let mut judge = t.config.map(Liveness::new);
    let mut tick = tokio::time::interval(POLL);
    let mut next_keepalive = Instant::now();
    // The first keepalive has had no interval to be answered in: nothing to judge yet.
    let mut judged_once = false;
    let mut last_replies = 0;
    let mut alive = true;
    loop {
        tick.tick().await;
        let stats = t
            .maps
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .tunnel_stats(t.index)
            .unwrap_or_default();
        if let (Some(config), Some(judge)) = (t.config, judge.as_mut())
            && Instant::now() >= next_keepalive
        {
            next_keepalive = Instant::now() + config.interval;
            // The interval since the last keepalive is over: judge it, then send the next.
            let heard = stats.keepalive_rx + stats.keepalive_reflected;
            if judged_once {
                if let Some(event) = judge.tick(heard) {
                    info!(tunnel = %t.id, ?event, missed = judge.missed(), "keepalives");
                }
            } else {
                judge.baseline(heard);
                judged_once = true;
            }
            if let Some(sender) = &t.sender
                && let Err(e) = sender.send(&t.frame)
            {
                warn!(tunnel = %t.id, "sending a keepalive: {e:#}");
            }
        }
        let keepalives_ok = judge
            .as_ref()
            .is_none_or(|j| j.state() == TunnelLiveness::Up);
        let sa_ok = t
            .ipsec
            .as_ref()
            .is_none_or(|w| w.borrow().sas.tunnel(t.id).child_up());
        let now_alive = keepalives_ok && sa_ok;
        if now_alive != alive {
            alive = now_alive;
            info!(
                tunnel = %t.id,
                alive,
                keepalives_ok,
                sa_ok,
                "tunnel liveness changed"
            );
            t.routes.set_tunnel_alive(t.index, alive);
        }
        let mut view = t.view.lock().unwrap_or_else(PoisonError::into_inner);
        view.alive = alive;
        view.missed = judge.as_ref().map_or(0, Liveness::missed);
        if stats.keepalive_rx != last_replies {
            last_replies = stats.keepalive_rx;
            view.last_reply_at = Some(Instant::now());
        }
    }
}
