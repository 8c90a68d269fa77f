//! `vc-agent datapath up|down|show`: the datapath without the control plane, for bring-up
//! and for sites that route the Cisco prefixes statically.
use anyhow::Result;

use super::plan;
use crate::{
    config::Config,
    datapath::Datapath,
    routes::{RouteManager, RouteManagerConfig, TunnelNextHop},
};

/// Brings the datapath up (or adopts it) and installs the config's prefixes as the BGP
/// speakers would learn them: each DC's /25 over its tunnel, the /24 over every tunnel.
pub async fn datapath_up(config: &Config) -> Result<()> {
    let spec = plan::datapath(config);
    let datapath = Datapath::up(spec).await?;
    let next_hops = config
        .terminated()
        .map(|(id, t)| TunnelNextHop {
            id: plan::index(id),
            gateway: t.dc_tunnel_ip.addr(),
            interface: plan::interface(id),
        })
        .collect();
    let routes =
        RouteManager::spawn(RouteManagerConfig::new(next_hops), datapath.shared_maps()).await?;
    let handle = routes.handle();
    for (id, _) in config.terminated() {
        handle.learned(
            plan::index(id),
            [config.dc_prefix(id), config.cisco_prefix()]
                .into_iter()
                .collect(),
        );
    }
    handle.settled().await;
    routes.abort();
    print!("{}", datapath.status()?);
    Ok(())
}

pub async fn datapath_down(config: &Config) -> Result<()> {
    let spec = plan::datapath(config);
    // The static routes go with their tunnel interfaces.
    Datapath::down(&spec).await?;
    println!("datapath down");
    Ok(())
}

pub async fn datapath_show(config: &Config) -> Result<()> {
    let datapath = Datapath::open(plan::datapath(config)).await?;
    print!("{}", datapath.status()?);
    Ok(())
}
