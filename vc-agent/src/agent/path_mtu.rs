//! R14: the tunnel MTU follows the path toward each DC; the ESP overhead is that of the
//! configured proposal, NAT-T from the IKE SA.
//!
//! Event-driven: a raw ICMP socket sees every "fragmentation needed" the CPE receives. One
//! that quotes our ESP (IP protocol 50) or ESP in UDP (port 4500) toward a DC's IPsec address
//! wakes the follower at once, which reads the path MTU the kernel learned from it (the route
//! exception: the kernel matched the quoted SPI to an SA, or the UDP flow to charon's socket,
//! before it believed the report; the agent never takes the ICMP's number itself, so a forged
//! report from elsewhere changes nothing) and applies it. The kernel handles the ICMP after
//! the raw socket got its copy, so the follower looks again a few times shortly after. A slow
//! poll is the backstop: for a path MTU that grows back (the exception expires after 10 min),
//! and a host where the raw socket cannot be opened.
use std::{net::Ipv4Addr, sync::Arc, time::Duration};

use anyhow::{Context, Result};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::{
    io::{Interest, unix::AsyncFd},
    sync::watch,
};
use tracing::{info, warn};
use vc_wire::icmp::{self, FragNeeded, Quoted};

use crate::{
    config::TunnelId,
    datapath::{Datapath, mtu::EspOverhead},
    ipsec::Snapshot,
    task::Task,
};

/// How often the tunnel MTU is checked against the path without an event.
const INTERVAL: Duration = Duration::from_secs(30);
/// After an event, when to look again if the kernel's path MTU has not changed yet.
const SETTLE: [Duration; 4] = [
    Duration::from_millis(20),
    Duration::from_millis(80),
    Duration::from_millis(200),
    Duration::from_millis(500),
];

/// Whether any tunnel's IKE SA found a NAT (ESP then goes in UDP).
fn nat_t(ipsec: Option<&watch::Receiver<Snapshot>>) -> bool {
    ipsec.is_some_and(|w| {
        TunnelId::ALL.iter().any(|id| {
            w.borrow()
                .sas
                .tunnel(*id)
                .ike
                .as_ref()
                .is_some_and(|i| i.nat)
        })
    })
}

/// Whether `report` is about vc's own traffic to one of `dcs` (their IPsec addresses).
#[must_use]
pub fn concerns_us(report: &FragNeeded, dcs: &[Ipv4Addr]) -> bool {
    matches!(report.quoted, Quoted::Esp | Quoted::NatT) && dcs.contains(&report.destination)
}

/// The raw ICMP socket: every ICMP message delivered to this namespace.
fn icmp_socket() -> Result<AsyncFd<Socket>> {
    let socket = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::ICMPV4))
        .context("opening a raw ICMP socket")?;
    socket.set_nonblocking(true)?;
    // Receive only: nothing is sent on it, and an echo request to it is not an event.
    // SAFETY: a `Socket` keeps its descriptor open and unchanged until dropped, and the
    // AsyncFd owns it from here on.
    unsafe { AsyncFd::register_with_interest(socket, Interest::READABLE) }
        .map_err(|e| anyhow::anyhow!("registering the raw ICMP socket: {e}"))
}

/// Waits for the next "fragmentation needed" about our ESP toward a DC.
async fn next_report(socket: &AsyncFd<Socket>, dcs: &[Ipv4Addr], buf: &mut [u8]) -> FragNeeded {
    loop {
        let Ok(mut guard) = socket.readable().await else {
            std::future::pending::<()>().await;
            continue;
        };
        // SAFETY: `recv` only writes initialised bytes; viewing the initialised buffer as
        // `MaybeUninit<u8>` is sound.
        let uninit = unsafe {
            std::slice::from_raw_parts_mut(
                buf.as_mut_ptr().cast::<std::mem::MaybeUninit<u8>>(),
                buf.len(),
            )
        };
        if let Ok(Ok(n)) = guard.try_io(|s| s.get_ref().recv(uninit))
            && let Some(report) = icmp::frag_needed(&buf[..n])
            && concerns_us(&report, dcs)
        {
            return report;
        }
    }
}

/// Discards the reports queued on the socket.
fn drain(socket: &AsyncFd<Socket>, buf: &mut [u8]) {
    // SAFETY: as in `next_report`.
    let uninit = unsafe {
        std::slice::from_raw_parts_mut(
            buf.as_mut_ptr().cast::<std::mem::MaybeUninit<u8>>(),
            buf.len(),
        )
    };
    while socket.get_ref().recv(uninit).is_ok() {}
}

async fn apply(datapath: &Datapath, esp: Option<EspOverhead>, nat_t: bool) -> bool {
    match datapath.follow_path_mtu(esp, nat_t).await {
        Ok(changed) => !changed.is_empty(),
        Err(e) => {
            warn!("following the path MTU: {e:#}");
            false
        }
    }
}

/// Follows the path MTU on every "fragmentation needed" toward a DC, and every [`INTERVAL`],
/// until aborted.
pub fn follow(
    datapath: Arc<Datapath>,
    esp: Option<EspOverhead>,
    ipsec: Option<watch::Receiver<Snapshot>>,
) -> Task {
    let dcs: Vec<Ipv4Addr> = datapath
        .spec()
        .tunnels
        .iter()
        .map(|t| t.remote_ipsec)
        .collect();
    let socket = match icmp_socket() {
        Ok(s) => Some(s),
        Err(e) => {
            warn!("path MTU: no ICMP events, polling every {INTERVAL:?} only: {e:#}");
            None
        }
    };
    Task::spawn("path-mtu", async move {
        let mut tick = tokio::time::interval(INTERVAL);
        let mut buf = vec![0u8; 1500];
        loop {
            let report = tokio::select! {
                _ = tick.tick() => None,
                report = async {
                    match &socket {
                        Some(s) => next_report(s, &dcs, &mut buf).await,
                        None => std::future::pending().await,
                    }
                } => Some(report),
            };
            let nat_t = nat_t(ipsec.as_ref());
            let Some(report) = report else {
                apply(&datapath, esp, nat_t).await;
                continue;
            };
            info!(
                reporter = %report.reporter,
                mtu = report.mtu,
                dc = %report.destination,
                quoted = ?report.quoted,
                "fragmentation needed toward a DC"
            );
            for wait in SETTLE {
                tokio::time::sleep(wait).await;
                if apply(&datapath, esp, nat_t).await {
                    break;
                }
            }
            // A burst of packets too big draws a burst of reports: the MTU now reflects them.
            if let Some(s) = &socket {
                drain(s, &mut buf);
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use vc_wire::icmp::{FragNeeded, Quoted};

    use super::concerns_us;

    #[test]
    fn only_our_esp_toward_a_dc_is_an_event() {
        let dc = Ipv4Addr::new(192, 0, 2, 10);
        let report = |destination, quoted| FragNeeded {
            reporter: Ipv4Addr::new(198, 51, 100, 1),
            mtu: 1300,
            destination,
            quoted,
        };
        assert!(concerns_us(&report(dc, Quoted::Esp), &[dc]));
        assert!(concerns_us(&report(dc, Quoted::NatT), &[dc]));
        assert!(!concerns_us(&report(dc, Quoted::Other(6)), &[dc]));
        assert!(!concerns_us(
            &report(Ipv4Addr::new(192, 0, 2, 99), Quoted::Esp),
            &[dc]
        ));
    }
}
