//! vc's routes in the kernel's main table (R22), marked with vc's route protocol number so
//! they can be found again after a crash and so `redistribute kernel` in FRR or BIRD picks
//! them up.
use std::{collections::BTreeMap, net::Ipv4Addr};

use anyhow::{Context, Result, anyhow};
use futures::TryStreamExt;
use ipnet::Ipv4Net;
use netlink_packet_route::route::{RouteAddress, RouteAttribute, RouteMessage, RouteProtocol};
use rtnetlink::{Handle, RouteMessageBuilder};

/// A route as vc installs it: via the DC's tunnel IP on the tunnel's interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NextHop {
    pub gateway: Ipv4Addr,
    pub ifindex: u32,
}

/// The main table, through one netlink socket of the calling thread's namespace.
pub struct KernelRoutes {
    handle: Handle,
    protocol: u8,
}

impl KernelRoutes {
    /// Opens a netlink connection (its task runs on the current runtime).
    pub fn new(protocol: u8) -> Result<Self> {
        let (connection, handle, _) =
            rtnetlink::new_connection().context("opening a route netlink socket")?;
        tokio::spawn(connection);
        Ok(KernelRoutes { handle, protocol })
    }

    /// Every IPv4 route of ours in the main table.
    pub async fn dump(&self) -> Result<BTreeMap<Ipv4Net, NextHop>> {
        let request = RouteMessageBuilder::<Ipv4Addr>::new().build();
        let mut routes = self.handle.route().get(request).execute();
        let mut out = BTreeMap::new();
        while let Some(msg) = routes.try_next().await.context("dumping routes")? {
            if let Some((prefix, next_hop)) = self.ours(&msg) {
                out.insert(prefix, next_hop);
            }
        }
        Ok(out)
    }

    fn ours(&self, msg: &RouteMessage) -> Option<(Ipv4Net, NextHop)> {
        let h = &msg.header;
        if !crate::rtnl::ipv4_main_table(msg) || u8::from(h.protocol) != self.protocol {
            return None;
        }
        let mut dst = Ipv4Addr::UNSPECIFIED;
        let mut next_hop = NextHop {
            gateway: Ipv4Addr::UNSPECIFIED,
            ifindex: 0,
        };
        for attr in &msg.attributes {
            match attr {
                RouteAttribute::Destination(RouteAddress::Inet(a)) => dst = *a,
                RouteAttribute::Gateway(RouteAddress::Inet(a)) => next_hop.gateway = *a,
                RouteAttribute::Oif(i) => next_hop.ifindex = *i,
                _ => {}
            }
        }
        let prefix = Ipv4Net::new(dst, h.destination_prefix_length).ok()?;
        Some((prefix, next_hop))
    }

    /// Adds or replaces the route of `prefix`.
    pub async fn replace(&self, prefix: Ipv4Net, next_hop: NextHop) -> Result<()> {
        let msg = RouteMessageBuilder::<Ipv4Addr>::new()
            .destination_prefix(prefix.network(), prefix.prefix_len())
            .gateway(next_hop.gateway)
            .output_interface(next_hop.ifindex)
            .protocol(RouteProtocol::from(self.protocol))
            .build();
        self.handle
            .route()
            .add(msg)
            .replace()
            .execute()
            .await
            .with_context(|| {
                format!(
                    "installing {prefix} via {} (ifindex {})",
                    next_hop.gateway, next_hop.ifindex
                )
            })
    }

    /// Deletes our route of `prefix`; a route that is already gone is not an error.
    pub async fn delete(&self, prefix: Ipv4Net) -> Result<()> {
        let msg = RouteMessageBuilder::<Ipv4Addr>::new()
            .destination_prefix(prefix.network(), prefix.prefix_len())
            .protocol(RouteProtocol::from(self.protocol))
            .build();
        match self.handle.route().del(msg).execute().await {
            Ok(()) => Ok(()),
            Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -libc::ESRCH => Ok(()),
            Err(e) => Err(anyhow!(e)).with_context(|| format!("deleting {prefix}")),
        }
    }

    /// The index of the interface called `name`.
    pub async fn ifindex(&self, name: &str) -> Result<u32> {
        crate::datapath::devices::find_link(&self.handle, name)
            .await?
            .map(|link| link.header.index)
            .with_context(|| format!("no interface {name}"))
    }
}
