//! R14: the tunnel MTU follows the path toward each DC, less what wraps the tunnel's packets:
//! the ESP transform of its installed child SA (until there is one, the costliest of its
//! configured proposals) and NAT-T's UDP header when its IKE SA found a NAT.
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

use super::plan::TunnelPlan;
use crate::{
    config::TunnelId,
    datapath::{
        Datapath,
        mtu::{EspOverhead, Wrapping},
    },
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

/// A tunnel whose MTU the follower keeps: its datapath id, its id in the configuration, and
/// what its configured ESP proposals may cost at most (none in external-IPsec mode).
#[derive(Clone, Copy, Debug)]
struct Followed {
    index: u32,
    id: TunnelId,
    configured: Option<EspOverhead>,
}

/// What wraps `tunnel`'s packets now (see [`wrapping_of`]).
fn wrapping(tunnel: &Followed, ipsec: Option<&watch::Receiver<Snapshot>>) -> Wrapping {
    let Some(w) = ipsec else {
        return wrapping_of(tunnel.configured, None, false);
    };
    let snapshot = w.borrow();
    let sas = snapshot.sas.tunnel(tunnel.id);
    wrapping_of(
        tunnel.configured,
        sas.child.as_ref().map(|c| c.proposal.as_str()),
        sas.ike.as_ref().is_some_and(|i| i.nat),
    )
}

/// What wraps a tunnel's packets: the transform of its installed child SA (`child`, charon's
/// name for it) when this knows it, else the costliest of its proposals (`configured`; none
/// in external-IPsec mode); NAT-T when its IKE SA found a NAT. Each tunnel its own: two
/// regions, or a DC that picked another of the proposals, do not share one figure.
fn wrapping_of(configured: Option<EspOverhead>, child: Option<&str>, nat: bool) -> Wrapping {
    let Some(configured) = configured else {
        return Wrapping {
            esp: None,
            nat_t: false,
        };
    };
    Wrapping {
        esp: Some(child.and_then(EspOverhead::of_sa).unwrap_or(configured)),
        nat_t: nat,
    }
}

/// Every followed tunnel's wrapping, by datapath id.
fn wrappings(
    tunnels: &[Followed],
    ipsec: Option<&watch::Receiver<Snapshot>>,
) -> Vec<(u32, Wrapping)> {
    tunnels
        .iter()
        .map(|t| (t.index, wrapping(t, ipsec)))
        .collect()
}

/// Waits until the IPsec snapshot changes; forever without IPsec or once the controller is
/// gone.
async fn snapshot_changed(ipsec: &mut Option<watch::Receiver<Snapshot>>) {
    let alive = match ipsec {
        Some(w) => w.changed().await.is_ok(),
        None => false,
    };
    if !alive {
        std::future::pending::<()>().await;
    }
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

async fn apply(datapath: &Datapath, wrappings: &[(u32, Wrapping)]) -> bool {
    let wrapping = |index| {
        wrappings
            .iter()
            .find(|(i, _)| *i == index)
            .map_or_else(unknown, |(_, w)| *w)
    };
    match datapath.follow_path_mtu(wrapping).await {
        Ok(changed) => !changed.is_empty(),
        Err(e) => {
            warn!("following the path MTU: {e:#}");
            false
        }
    }
}

/// A tunnel the follower was not given (none: every datapath tunnel is followed): the
/// costliest wrapping, so its MTU errs low.
fn unknown() -> Wrapping {
    Wrapping {
        esp: Some(EspOverhead::costliest(&[])),
        nat_t: true,
    }
}

/// Follows the path MTU of `tunnels` on every "fragmentation needed" toward a DC, on every
/// change of what wraps a tunnel's packets (an SA installed, rekeyed to another proposal, a
/// NAT found), and every [`INTERVAL`], until aborted.
pub fn follow(
    datapath: Arc<Datapath>,
    tunnels: &[TunnelPlan],
    mut ipsec: Option<watch::Receiver<Snapshot>>,
) -> Task {
    let tunnels: Vec<Followed> = tunnels
        .iter()
        .map(|t| Followed {
            index: t.next_hop.id,
            id: t.id,
            configured: t.esp,
        })
        .collect();
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
        let mut applied = Vec::new();
        loop {
            // (a frag-needed report, whether only the IPsec snapshot changed)
            let (report, snapshot_only) = tokio::select! {
                _ = tick.tick() => (None, false),
                () = snapshot_changed(&mut ipsec) => (None, true),
                report = async {
                    match &socket {
                        Some(s) => next_report(s, &dcs, &mut buf).await,
                        None => std::future::pending().await,
                    }
                } => (Some(report), false),
            };
            let now = wrappings(&tunnels, ipsec.as_ref());
            // Most snapshots only move counters: nothing to do unless a wrapping changed.
            if snapshot_only && now == applied {
                continue;
            }
            applied = now;
            let Some(report) = report else {
                apply(&datapath, &applied).await;
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
                if apply(&datapath, &applied).await {
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

    use super::{concerns_us, wrapping_of};
    use crate::datapath::mtu::{EspOverhead, Wrapping};

    #[test]
    fn the_installed_sa_decides_what_wraps_a_tunnel() {
        let proposals = ["aes256gcm16".to_string(), "aes256-sha256".to_string()];
        let costliest = EspOverhead::costliest(&proposals);
        let gcm = EspOverhead::from_proposal("aes256gcm16");
        assert_eq!(costliest, EspOverhead::from_proposal("aes256-sha256"));
        let wrapped = |esp, nat_t| Wrapping { esp, nat_t };
        // Until a child SA is up, the costliest the DC may pick.
        assert_eq!(
            wrapping_of(Some(costliest), None, false),
            wrapped(Some(costliest), false)
        );
        // The DC picked GCM: the tunnel MTU may grow to what GCM leaves.
        assert_eq!(
            wrapping_of(Some(costliest), Some("AES_GCM_16_256"), true),
            wrapped(Some(gcm), true)
        );
        // A cipher this does not know: the configured figure stands.
        assert_eq!(
            wrapping_of(Some(gcm), Some("CAMELLIA_CBC_256/HMAC_SHA2_256_128"), false),
            wrapped(Some(gcm), false)
        );
        // External IPsec: GRE alone, whatever charon would say.
        assert_eq!(
            wrapping_of(None, Some("AES_GCM_16_256"), true),
            wrapped(None, false)
        );
    }

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
