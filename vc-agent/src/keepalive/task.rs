//! Keepalives and liveness, one task per tunnel (R13, R21): sends our keepalives into the
//! tunnel interface (unless `keepalive_interval_s = 0`), reads what the datapath heard from
//! the DC, has [`super::liveness`] judge it, and tells the route manager whether the tunnel
//! may carry traffic: every signal that decides ([`super::liveness::signals`]) up. A dead
//! tunnel's /25 then follows the /24 over the other.
use std::{
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, Instant},
};

use anyhow::Result;
use tokio::{sync::watch, time::MissedTickBehavior};
use tracing::{info, warn};
use vc_common::TunnelStats;

use super::{
    Liveness, LivenessConfig, TunnelLiveness, keepalive_frame,
    liveness::{self, SignalStates},
    status::{KeepaliveStatus, LivenessSignal},
};
use crate::{
    config::TunnelId,
    datapath::{FrameSender, SharedMaps, TunnelSpec},
    ipsec::Snapshot,
    routes::RouteHandle,
    task::Task as Supervised,
};

/// How often the SA state and the BGP session are looked at between keepalives (besides at
/// each SA snapshot the controller publishes, which is when a child SA going down moves the
/// traffic, without waiting for missed keepalives).
const POLL: Duration = Duration::from_secs(1);

/// Whether the tunnel's BGP session is Established (the agent's, from its speaker): this room
/// does not know BGP, only the answer.
pub type BgpEstablished = Arc<dyn Fn() -> bool + Send + Sync>;

/// The last judgement, for the status.
#[derive(Clone, Debug, Default)]
pub struct KeepaliveView {
    pub config: Option<LivenessConfig>,
    pub alive: bool,
    pub missed: u32,
    pub last_reply_at: Option<Instant>,
    pub liveness: Vec<LivenessSignal>,
}

impl KeepaliveView {
    #[must_use]
    pub fn status(&self, stats: &TunnelStats) -> KeepaliveStatus {
        KeepaliveStatus {
            enabled: self.config.is_some_and(|c| c.send),
            interval_s: self.config.map_or(0, |c| c.interval.as_secs()),
            retries: self.config.map_or(0, |c| c.retries),
            sent: stats.keepalive_tx,
            replies: stats.keepalive_rx,
            reflected: stats.keepalive_reflected,
            alive: self.alive,
            missed: self.missed,
            last_reply_s: self.last_reply_at.map(|t| t.elapsed().as_secs()),
            liveness: self.liveness.clone(),
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
    /// The keepalive schedule: ours, or (ours off) the DC's that liveness is judged by.
    pub config: LivenessConfig,
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
        bgp: BgpEstablished,
        routes: RouteHandle,
    ) -> Result<Self> {
        let spec = tunnel.spec;
        let frame = keepalive_frame(
            spec.tunnel_mac(),
            spec.peer_mac(),
            spec.local_gre,
            spec.remote_gre,
        );
        let sender = if tunnel.config.send {
            Some(FrameSender::new(tunnel.tunnel_ifindex)?)
        } else {
            None
        };
        let view = Arc::new(Mutex::new(KeepaliveView {
            config: Some(tunnel.config),
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
                bgp,
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
    config: LivenessConfig,
    sender: Option<FrameSender>,
    frame: Vec<u8>,
    maps: SharedMaps,
    ipsec: Option<watch::Receiver<Snapshot>>,
    bgp: BgpEstablished,
    routes: RouteHandle,
    view: Arc<Mutex<KeepaliveView>>,
}

async fn run(mut t: Task) {
    let mut judge = Liveness::new(t.config, Instant::now());
    // Keepalives on a fixed schedule of their own, not on the poll's ticks. `Delay` after a
    // stall: a burst of late ticks would send a burst of keepalives.
    let mut keepalives = tokio::time::interval(t.config.interval.max(Duration::from_millis(1)));
    keepalives.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut poll = tokio::time::interval(POLL);
    poll.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let (mut last_replies, mut last_reflected) = (0, 0);
    let mut alive = true;
    let mut last_by = Vec::new();
    // Until the controller goes (the agent stopping): then only the polls look at the SAs.
    let mut sa_events = t.ipsec.is_some();
    loop {
        // The moment silence would make the tunnel dead: judged then, not at the next poll.
        let deadline = judge.deadline();
        let send = tokio::select! {
            biased;
            _ = keepalives.tick() => true,
            // An SA going down takes the tunnel down as charon reports it, not at the next poll.
            changed = sa_changed(t.ipsec.as_mut()), if sa_events => {
                sa_events = changed;
                false
            }
            () = sleep_until(deadline) => false,
            _ = poll.tick() => false,
        };
        let now = Instant::now();
        let stats = t
            .maps
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .tunnel_stats(t.index)
            .unwrap_or_default();
        let child_sa = t
            .ipsec
            .as_ref()
            .is_some_and(|w| w.borrow().sas.tunnel(t.id).child_up());
        let heard = stats.keepalive_rx + stats.keepalive_reflected;
        // A reply is dated by the datapath; a reflected keepalive of the DC's is not, and
        // counts from the moment it is read (at most a poll late).
        let heard_at = if stats.keepalive_reflected == last_reflected {
            instant_of(stats.last_keepalive_rx_ns)
        } else {
            None
        };
        last_reflected = stats.keepalive_reflected;
        // Silence says nothing while the child SA is missing (IPsec mode: nothing could be
        // heard, and the SA's own signal holds the tunnel down meanwhile), nor, with ours off,
        // before the DC sent any keepalive (it may have them off too).
        let excused =
            (t.ipsec.is_some() && !child_sa) || (!t.config.send && stats.keepalive_reflected == 0);
        let event = if excused {
            judge.excuse(heard, heard_at, now)
        } else {
            judge.observe(heard, heard_at, now)
        };
        if let Some(event) = event {
            info!(tunnel = %t.id, ?event, missed = judge.missed(now), "keepalives");
        }
        if send
            && let Some(sender) = &t.sender
            && let Err(e) = sender.send(&t.frame)
        {
            warn!(tunnel = %t.id, "sending a keepalive: {e:#}");
        }
        let by = liveness::signals(
            t.config.send,
            stats.keepalive_reflected > 0,
            t.ipsec.is_some(),
        );
        let signal_states = SignalStates {
            keepalives: judge.state() == TunnelLiveness::Up,
            child_sa,
            bgp: (t.bgp)(),
        };
        let now_alive = liveness::alive(&by, signal_states);
        if by != last_by {
            info!(
                tunnel = %t.id,
                signals = %super::status::signals_text(&by),
                "liveness decided by"
            );
            last_by.clone_from(&by);
        }
        if now_alive != alive {
            alive = now_alive;
            info!(
                tunnel = %t.id,
                alive,
                keepalives_ok = signal_states.keepalives,
                sa_ok = signal_states.child_sa,
                bgp_ok = signal_states.bgp,
                "tunnel liveness changed"
            );
            t.routes.set_tunnel_alive(t.index, alive);
        }
        let mut view = t.view.lock().unwrap_or_else(PoisonError::into_inner);
        view.alive = alive;
        view.missed = judge.missed(now);
        view.liveness = by;
        if stats.keepalive_rx != last_replies {
            last_replies = stats.keepalive_rx;
            view.last_reply_at = Some(heard_at.unwrap_or(now));
        }
    }
}

/// Sleeps until `deadline`; forever without one.
async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

/// The `Instant` of a `CLOCK_MONOTONIC` reading in nanoseconds (the datapath's
/// `bpf_ktime_get_coarse_ns`: the same clock, to a tick), from its age by that clock now;
/// `None` for 0 (nothing yet) or a clock that cannot be read.
fn instant_of(ns: u64) -> Option<Instant> {
    if ns == 0 {
        return None;
    }
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `clock_gettime` writes only the timespec it is given, which outlives the call.
    if unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &raw mut ts) } != 0 {
        return None;
    }
    let now = Instant::now();
    let clock = u64::try_from(ts.tv_sec).ok()? * 1_000_000_000 + u64::try_from(ts.tv_nsec).ok()?;
    now.checked_sub(Duration::from_nanos(clock.saturating_sub(ns)))
}

/// Waits for the controller's next SA snapshot; false once the controller is gone.
async fn sa_changed(ipsec: Option<&mut watch::Receiver<Snapshot>>) -> bool {
    match ipsec {
        Some(rx) => rx.changed().await.is_ok(),
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::instant_of;

    /// `CLOCK_MONOTONIC` now, in nanoseconds, as the datapath reads it.
    fn monotonic_ns() -> u64 {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: as in `instant_of`.
        assert_eq!(
            unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &raw mut ts) },
            0
        );
        u64::try_from(ts.tv_sec).expect("secs") * 1_000_000_000
            + u64::try_from(ts.tv_nsec).expect("nanos")
    }

    #[test]
    fn a_datapath_timestamp_becomes_the_instant_it_was_taken() {
        let two_s_ago = monotonic_ns() - 2_000_000_000;
        let at = instant_of(two_s_ago).expect("an instant");
        let age = Instant::now().duration_since(at);
        assert!(
            age >= Duration::from_secs(2) && age < Duration::from_millis(2_100),
            "{age:?}"
        );
        assert_eq!(instant_of(0), None, "nothing heard yet");
    }
}
