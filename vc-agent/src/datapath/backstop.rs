//! The backstop: `unreachable` routes for the protected prefixes (the Cisco /24 and each
//! tunnel subnet) in the main table, with a metric no real route uses. Whenever nothing better
//! routes a protected destination (BGP down, tunnel interfaces gone, the datapath down, the
//! agent stopped or not yet started, BPF detached by someone) the kernel refuses it with
//! ICMP unreachable instead of following the default route out of the WAN in clear.
//!
//! Independent of BPF and of the agent: created with the datapath (before anything else),
//! kept through `datapath down` and an agent stop, removed only by `vc-agent purge`. Marked
//! with its own route protocol, not vc's, so that the route manager never takes it for a
//! stale route and that `redistribute kernel` filtered on `proto vc` never advertises it
//! (a CPE advertising a /24 it cannot reach would draw the LAN's traffic away from a second
//! CPE that can).
use std::{collections::BTreeSet, net::Ipv4Addr};

use anyhow::{Context, Result, anyhow};
use futures::TryStreamExt;
use ipnet::Ipv4Net;
use netlink_packet_route::route::{RouteMessage, RouteProtocol, RouteType};
use rtnetlink::{Handle, RouteMessageBuilder};

use super::spec::DatapathSpec;

/// The backstop's route protocol (`rtm_protocol`), `vc-backstop` in iproute2's names.
pub const BACKSTOP_PROTO: u8 = 202;
/// Above any metric a routing daemon or DHCP client uses: the backstop only ever decides when
/// no other route of the same prefix exists.
pub const BACKSTOP_METRIC: u32 = 4_000_000_000;

/// The prefixes the backstop covers: what the guard protects.
#[must_use]
pub fn prefixes(spec: &DatapathSpec) -> BTreeSet<Ipv4Net> {
    spec.tunnels
        .iter()
        .flat_map(|t| [t.cisco_prefix.trunc(), t.local_tunnel.trunc()])
        .collect()
}

/// Adds (or keeps) the backstop of every protected prefix of `spec`.
pub async fn install(handle: &Handle, spec: &DatapathSpec) -> Result<()> {
    for prefix in prefixes(spec) {
        let route = backstop_route(prefix);
        handle
            .route()
            .add(route)
            .replace()
            .execute()
            .await
            .with_context(|| format!("installing the backstop route unreachable {prefix}"))?;
    }
    Ok(())
}

/// The backstop routes in the main table now.
pub async fn installed(handle: &Handle) -> Result<BTreeSet<Ipv4Net>> {
    let request = RouteMessageBuilder::<Ipv4Addr>::new().build();
    let mut routes = handle.route().get(request).execute();
    let mut found = BTreeSet::new();
    while let Some(msg) = routes.try_next().await.context("dumping routes")? {
        let h = &msg.header;
        if !crate::rtnl::ipv4_main_table(&msg)
            || u8::from(h.protocol) != BACKSTOP_PROTO
            || h.kind != RouteType::Unreachable
        {
            continue;
        }
        if let Some(prefix) = crate::rtnl::ipv4_destination(&msg) {
            found.insert(prefix);
        }
    }
    Ok(found)
}

/// Removes every backstop route (`vc-agent purge` only).
pub async fn remove(handle: &Handle) -> Result<()> {
    for prefix in installed(handle).await? {
        let route = backstop_route(prefix);
        match handle.route().del(route).execute().await {
            Ok(()) => {}
            Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -libc::ESRCH => {}
            Err(e) => {
                return Err(anyhow!(e)).with_context(|| format!("removing the backstop {prefix}"));
            }
        }
    }
    Ok(())
}

/// The backstop route of `prefix`, as installed and as removed.
fn backstop_route(prefix: Ipv4Net) -> RouteMessage {
    RouteMessageBuilder::<Ipv4Addr>::new()
        .destination_prefix(prefix.network(), prefix.prefix_len())
        .kind(RouteType::Unreachable)
        .priority(BACKSTOP_METRIC)
        .protocol(RouteProtocol::from(BACKSTOP_PROTO))
        .build()
}
