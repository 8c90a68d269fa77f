//! The LAN watcher: looks at the kernel every [`POLL`] (the LAN interface's state, the main
//! table's routes), judges `[lan] default_requires` and publishes the health on a watch
//! channel that the agent hands to the BGP speakers. Polling, not netlink notifications: one
//! small dump a second is cheap, cannot miss an event, and bounds the time to withdraw (one
//! [`POLL`] plus a BGP UPDATE).
use std::{net::Ipv4Addr, time::Duration};

use anyhow::{Context, Result};
use futures::TryStreamExt;
use ipnet::Ipv4Net;
use netlink_packet_route::{
    link::{LinkAttribute, LinkFlags, LinkMessage, State},
    route::RouteMessage,
};
use rtnetlink::{Handle, RouteMessageBuilder};
use tokio::sync::watch;
use tracing::{info, warn};

use super::{LanCheck, LanHealth, check::Observed};
use crate::{routes::VC_RT_PROTO, task::Task};

/// How often the LAN side is looked at.
pub const POLL: Duration = Duration::from_secs(1);

/// A running watcher.
pub struct LanWatch {
    health: watch::Receiver<LanHealth>,
    task: Task,
}

impl LanWatch {
    /// Looks once (so the first health is known before BGP can advertise anything), then
    /// keeps looking. In the calling thread's network namespace.
    pub async fn start(interface: String, checks: Vec<LanCheck>) -> Result<LanWatch> {
        let (connection, handle, _) =
            rtnetlink::new_connection().context("opening a route netlink socket")?;
        tokio::spawn(connection);
        let first = look(&handle, &interface, &checks).await;
        log(&first, None);
        let (tx, health) = watch::channel(first);
        let task = Task::spawn("lan", async move {
            let mut tick = tokio::time::interval(POLL);
            tick.tick().await;
            loop {
                tick.tick().await;
                let now = look(&handle, &interface, &checks).await;
                let before = tx.borrow().clone();
                if now != before {
                    log(&now, Some(&before));
                    tx.send_replace(now);
                }
            }
        });
        Ok(LanWatch { health, task })
    }

    /// The health as it changes.
    #[must_use]
    pub fn subscribe(&self) -> watch::Receiver<LanHealth> {
        self.health.clone()
    }

    /// The task, for the agent to watch.
    #[must_use]
    pub fn task(&self) -> &Task {
        &self.task
    }
}

fn log(now: &LanHealth, before: Option<&LanHealth>) {
    let was = before.map(LanHealth::healthy);
    if Some(now.healthy()) == was {
        return;
    }
    if now.healthy() {
        info!("LAN side healthy: 0.0.0.0/0 may be advertised to the DCs");
    } else {
        warn!(
            failing = %now.failing(),
            "LAN side unhealthy: 0.0.0.0/0 withdrawn from the DCs"
        );
    }
}

/// One look at the kernel, judged. A netlink error counts as "not seen" (unhealthy), logged.
async fn look(handle: &Handle, interface: &str, checks: &[LanCheck]) -> LanHealth {
    let mut seen = Observed::default();
    if checks.contains(&LanCheck::Link) {
        match link(handle, interface).await {
            Ok(l) => seen.link_up = l.map(|l| is_up(&l)),
            Err(e) => warn!("LAN check: {e:#}"),
        }
    }
    if checks.iter().any(|c| matches!(c, LanCheck::Route(_))) {
        match routes(handle).await {
            Ok(r) => seen.routes = r,
            Err(e) => warn!("LAN check: {e:#}"),
        }
    }
    LanHealth::judge(checks, interface, &seen)
}

async fn link(handle: &Handle, name: &str) -> Result<Option<LinkMessage>> {
    let mut links = handle.link().get().match_name(name.to_string()).execute();
    match links.try_next().await {
        Ok(link) => Ok(link),
        Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -libc::ENODEV => Ok(None),
        Err(e) => Err(e).with_context(|| format!("looking up {name}")),
    }
}

/// Operationally up: `UP` with carrier (`LOWER_UP`), and an operational state of up (or
/// unknown, as devices without carrier detection report).
fn is_up(link: &LinkMessage) -> bool {
    let flags = link.header.flags;
    let oper = link.attributes.iter().find_map(|a| match a {
        LinkAttribute::OperState(s) => Some(*s),
        _ => None,
    });
    flags.contains(LinkFlags::Up)
        && flags.contains(LinkFlags::LowerUp)
        && matches!(oper, None | Some(State::Up | State::Unknown))
}

/// The main table's IPv4 prefixes, vc's own routes left out (they lead to the DCs, not the
/// LAN).
async fn routes(handle: &Handle) -> Result<Vec<Ipv4Net>> {
    let request = RouteMessageBuilder::<Ipv4Addr>::new().build();
    let mut dump = handle.route().get(request).execute();
    let mut out = Vec::new();
    while let Some(msg) = dump.try_next().await.context("dumping routes")? {
        if let Some(p) = main_prefix(&msg) {
            out.push(p);
        }
    }
    Ok(out)
}

fn main_prefix(msg: &RouteMessage) -> Option<Ipv4Net> {
    let h = &msg.header;
    if !crate::rtnl::ipv4_main_table(msg) || u8::from(h.protocol) == VC_RT_PROTO {
        return None;
    }
    crate::rtnl::ipv4_destination(msg)
}
