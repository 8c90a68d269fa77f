//! The tunnel interfaces: a veth pair per tunnel that plays the GRE device (datapath.md).
//!
//! `vc-dcN` carries the tunnel IP and the routes; whatever the kernel sends into it comes out
//! of its hidden peer `vc-dcNp`, where tunnel transmit encapsulates it. A permanent neighbour
//! entry maps the DC's tunnel IP to the peer's MAC: dynamic ARP would stay INCOMPLETE (nothing
//! answers on the peer), and NOARP makes the peer see frames as for another host.
use std::net::{IpAddr, Ipv4Addr};

use anyhow::{Context, Result, bail};
use futures::TryStreamExt;
use netlink_packet_route::{
    link::{LinkAttribute, LinkMessage, LinkXdp},
    neighbour::NeighbourState,
    route::{RouteAttribute, RouteMessage},
};
use rtnetlink::{Handle, LinkUnspec, LinkVeth, RouteMessageBuilder};

use super::spec::TunnelSpec;

/// What the datapath needs to know of a tunnel's interfaces once they exist.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TunnelDevices {
    pub tunnel_ifindex: u32,
    pub peer_ifindex: u32,
}

/// An rtnetlink connection in the calling thread's network namespace.
pub struct Netlink {
    handle: Handle,
}

impl Netlink {
    /// Connects; the connection runs as a task on the current tokio runtime.
    pub fn connect() -> Result<Self> {
        let (connection, handle, _) =
            rtnetlink::new_connection().context("opening an rtnetlink socket")?;
        tokio::spawn(connection);
        Ok(Netlink { handle })
    }

    #[must_use]
    pub fn handle(&self) -> &Handle {
        &self.handle
    }

    /// The link called `name`, if there is one.
    pub async fn link(&self, name: &str) -> Result<Option<LinkMessage>> {
        find_link(&self.handle, name).await
    }

    pub async fn ifindex(&self, name: &str) -> Result<Option<u32>> {
        Ok(self.link(name).await?.map(|l| l.header.index))
    }

    /// The id of the XDP program attached to `name` in native mode: `None` when there is no
    /// such device, `Some(None)` when it has none.
    pub async fn native_xdp_program(&self, name: &str) -> Result<Option<Option<u32>>> {
        let Some(link) = self.link(name).await? else {
            return Ok(None);
        };
        Ok(Some(link.attributes.iter().find_map(|a| match a {
            LinkAttribute::Xdp(xdp) => xdp.iter().find_map(|x| match x {
                LinkXdp::DrvProgId(id) => Some(*id),
                _ => None,
            }),
            _ => None,
        })))
    }

    /// The link with index `index`, if there is one.
    pub async fn link_by_index(&self, index: u32) -> Result<Option<LinkMessage>> {
        let mut links = self.handle.link().get().match_index(index).execute();
        match links.try_next().await {
            Ok(link) => Ok(link),
            Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -libc::ENODEV => Ok(None),
            Err(e) => Err(e).with_context(|| format!("looking up link {index}")),
        }
    }

    /// The MTU of the link with index `index`.
    pub async fn mtu(&self, index: u32) -> Result<u32> {
        let link = self
            .link_by_index(index)
            .await?
            .with_context(|| format!("no link {index}"))?;
        link.attributes
            .iter()
            .find_map(|a| match a {
                LinkAttribute::Mtu(mtu) => Some(*mtu),
                _ => None,
            })
            .with_context(|| format!("link {index} has no MTU"))
    }

    /// The name of the link with index `index`, if there is one.
    pub async fn name(&self, index: u32) -> Result<Option<String>> {
        // A link gone between the route lookup and this, or an error: no name to give.
        let Ok(Some(link)) = self.link_by_index(index).await else {
            return Ok(None);
        };
        Ok(link.attributes.iter().find_map(|a| match a {
            LinkAttribute::IfName(name) => Some(name.clone()),
            _ => None,
        }))
    }

    /// The route the kernel takes for a packet to `dst` (`ip route get`).
    pub async fn route_to(&self, dst: Ipv4Addr) -> Result<RouteMessage> {
        let request = RouteMessageBuilder::<Ipv4Addr>::new()
            .destination_prefix(dst, 32)
            .build();
        let mut routes = self.handle.route().get(request).execute();
        routes
            .try_next()
            .await
            .with_context(|| format!("no route to {dst}"))?
            .with_context(|| format!("no route to {dst}"))
    }

    /// The device the kernel's routes send a packet for `dst` out of, if any route does.
    pub async fn route_device(&self, dst: Ipv4Addr) -> Result<Option<String>> {
        // ENETUNREACH and the like: no route, which is an answer, not an error.
        let Ok(route) = self.route_to(dst).await else {
            return Ok(None);
        };
        match route_oif(&route) {
            Some(index) => self.name(index).await,
            None => Ok(None),
        }
    }

    /// Creates (or finds, when a previous run made it) the tunnel's interface pair and
    /// configures it: MACs, MTUs, the tunnel IP, the DC's neighbour entry, up.
    /// IPv6 must be off before the links come up (see `sysctl::tunnel_device_settings`), so
    /// the caller sets sysctls between [`Netlink::create_pair`] and this.
    pub async fn configure_pair(&self, tunnel: &TunnelSpec) -> Result<TunnelDevices> {
        let devices = self.pair(tunnel).await?;
        self.set_link(
            LinkUnspec::new_with_index(devices.tunnel_ifindex)
                .address(tunnel.tunnel_mac().to_vec())
                .mtu(u32::from(tunnel.mtu))
                .build(),
            &tunnel.name,
        )
        .await?;
        // The peer receives what the tunnel interface sends (≤ the tunnel MTU) and what the
        // fast path redirects in after encapsulation (24 bytes more).
        self.set_link(
            LinkUnspec::new_with_index(devices.peer_ifindex)
                .address(tunnel.peer_mac().to_vec())
                .mtu(u32::from(tunnel.mtu) + 24)
                .build(),
            &tunnel.peer_name(),
        )
        .await?;
        self.add_address(devices.tunnel_ifindex, tunnel).await?;
        for (index, name) in [
            (devices.peer_ifindex, tunnel.peer_name()),
            (devices.tunnel_ifindex, tunnel.name.clone()),
        ] {
            self.set_link(LinkUnspec::new_with_index(index).up().build(), &name)
                .await?;
        }
        self.handle
            .neighbours()
            .add(devices.tunnel_ifindex, IpAddr::V4(tunnel.dc_tunnel_ip))
            .link_layer_address(&tunnel.peer_mac())
            .state(NeighbourState::Permanent)
            .replace()
            .execute()
            .await
            .with_context(|| format!("neighbour {} on {}", tunnel.dc_tunnel_ip, tunnel.name))?;
        Ok(devices)
    }

    /// Creates the veth pair unless it exists.
    pub async fn create_pair(&self, tunnel: &TunnelSpec) -> Result<()> {
        if self.ifindex(&tunnel.name).await?.is_some() {
            return Ok(());
        }
        self.handle
            .link()
            .add(LinkVeth::new(&tunnel.name, &tunnel.peer_name()).build())
            .execute()
            .await
            .with_context(|| format!("creating {} / {}", tunnel.name, tunnel.peer_name()))
    }

    /// The ifindexes of an existing pair; fails if either end is missing.
    pub async fn pair(&self, tunnel: &TunnelSpec) -> Result<TunnelDevices> {
        let tunnel_ifindex = self
            .ifindex(&tunnel.name)
            .await?
            .with_context(|| format!("{} does not exist", tunnel.name))?;
        let peer_ifindex = self
            .ifindex(&tunnel.peer_name())
            .await?
            .with_context(|| format!("{} does not exist", tunnel.peer_name()))?;
        Ok(TunnelDevices {
            tunnel_ifindex,
            peer_ifindex,
        })
    }

    /// Deletes a link (a veth takes its peer with it); absent is fine.
    pub async fn delete(&self, name: &str) -> Result<()> {
        let Some(index) = self.ifindex(name).await? else {
            return Ok(());
        };
        self.handle
            .link()
            .del(index)
            .execute()
            .await
            .with_context(|| format!("deleting {name}"))
    }

    pub async fn set_mtu(&self, index: u32, mtu: u32) -> Result<()> {
        self.set_link(
            LinkUnspec::new_with_index(index).mtu(mtu).build(),
            "tunnel interface",
        )
        .await
    }

    async fn set_link(&self, message: LinkMessage, what: &str) -> Result<()> {
        self.handle
            .link()
            .set(message)
            .execute()
            .await
            .with_context(|| format!("configuring {what}"))
    }

    async fn add_address(&self, index: u32, tunnel: &TunnelSpec) -> Result<()> {
        let addr: Ipv4Addr = tunnel.local_tunnel.addr();
        let result = self
            .handle
            .address()
            .add(index, IpAddr::V4(addr), tunnel.local_tunnel.prefix_len())
            .execute()
            .await;
        match result {
            Ok(()) => Ok(()),
            Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -libc::EEXIST => Ok(()),
            Err(e) => {
                Err(e).with_context(|| format!("adding {} to {}", tunnel.local_tunnel, tunnel.name))
            }
        }
    }
}

/// The link called `name` in the handle's namespace, if there is one.
/// The outgoing device of a route, if it names one.
#[must_use]
pub fn route_oif(route: &RouteMessage) -> Option<u32> {
    route.attributes.iter().find_map(|a| match a {
        RouteAttribute::Oif(i) => Some(*i),
        _ => None,
    })
}

pub async fn find_link(handle: &Handle, name: &str) -> Result<Option<LinkMessage>> {
    let mut links = handle.link().get().match_name(name.to_string()).execute();
    match links.try_next().await {
        Ok(link) => Ok(link),
        Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -libc::ENODEV => Ok(None),
        Err(e) => Err(e).with_context(|| format!("looking up {name}")),
    }
}

/// Refuses names the kernel would truncate or reject.
pub fn check_name(name: &str) -> Result<()> {
    // IFNAMSIZ is 16 with the NUL; the peer adds one character.
    if name.is_empty() || name.len() > 14 || name.contains(['/', ' ']) {
        bail!("tunnel interface name {name:?} must be 1 to 14 characters without '/' or spaces");
    }
    Ok(())
}

/// Switches GRO on for a veth end. A veth receives through NAPI, and can merge segments, only
/// while GRO is requested on it (Linux 5.13); the tunnel interfaces want it so that traffic
/// arriving through the tunnel is merged as a GRE device's `gro_cells` would merge it.
pub fn enable_gro(name: &str) -> Result<()> {
    /// `struct ethtool_value` from linux/ethtool.h.
    #[repr(C)]
    struct EthtoolValue {
        cmd: u32,
        data: u32,
    }
    const ETHTOOL_SGRO: u32 = 0x2c;
    const SIOCETHTOOL: libc::c_ulong = 0x8946;

    let mut value = EthtoolValue {
        cmd: ETHTOOL_SGRO,
        data: 1,
    };
    // SAFETY: all-zero is a valid ifreq.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in ifr
        .ifr_name
        .iter_mut()
        .zip(name.bytes().take(libc::IFNAMSIZ - 1))
    {
        *dst = src.cast_signed();
    }
    ifr.ifr_ifru.ifru_data = (&raw mut value).cast();
    // SAFETY: plain socket(2); the descriptor is closed below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error()).context("socket for ethtool");
    }
    // SAFETY: `ifr` points at `value`, both live across the call.
    let rc = unsafe { libc::ioctl(fd, SIOCETHTOOL, &raw mut ifr) };
    let err = std::io::Error::last_os_error();
    // SAFETY: `fd` is ours.
    unsafe { libc::close(fd) };
    if rc != 0 {
        return Err(err).with_context(|| format!("enabling GRO on {name}"));
    }
    Ok(())
}
