//! R14: the tunnel MTU follows the path toward each DC; the ESP overhead is that of the
//! configured proposal, NAT-T from the IKE SA.
use std::{sync::Arc, time::Duration};

use tokio::sync::watch;
use tracing::warn;

use crate::{
    config::TunnelId,
    datapath::{Datapath, mtu::EspOverhead},
    ipsec::Snapshot,
    task::Task,
};

/// How often the tunnel MTU is checked against the path.
const INTERVAL: Duration = Duration::from_secs(30);

/// Checks the path MTU every [`INTERVAL`] until aborted.
pub fn follow(
    datapath: Arc<Datapath>,
    esp: Option<EspOverhead>,
    ipsec: Option<watch::Receiver<Snapshot>>,
) -> Task {
    Task::spawn("path-mtu", async move {
        let mut tick = tokio::time::interval(INTERVAL);
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
