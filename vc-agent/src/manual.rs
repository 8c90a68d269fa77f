//! `vc-agent datapath up|down|show`: the datapath by hand, without the control plane, for
//! bring-up and for sites that route the Cisco prefixes statically (the route manager
//! installs them as BGP would).
use anyhow::Result;

use crate::{
    config::Config,
    datapath::{Datapath, DatapathSpec, tunnel_index},
    routes::{RouteManager, RouteManagerConfig, TunnelNextHop},
};

/// Brings the datapath up (or adopts it) and installs the config's prefixes as the BGP
/// speakers would learn them: each DC's /25 over its tunnel, the /24 over every tunnel.
pub async fn up(config: &Config) -> Result<()> {
    let spec = DatapathSpec::from_config(config);
    let next_hops = spec.tunnels.iter().map(TunnelNextHop::from).collect();
    let datapath = Datapath::up(spec).await?;
    let routes =
        RouteManager::spawn(RouteManagerConfig::new(next_hops), datapath.shared_maps()).await?;
    let handle = routes.handle();
    for (id, _) in config.terminated() {
        handle.learned(
            tunnel_index(id),
            [config.dc_prefix(id), config.cisco_prefix()]
                .into_iter()
                .collect(),
        );
    }
    handle.settled().await;
    routes.abort();
    print!("{}", datapath.report()?);
    Ok(())
}

pub async fn down(config: &Config) -> Result<()> {
    // The static routes go with their tunnel interfaces.
    Datapath::down(&DatapathSpec::from_config(config)).await?;
    println!("datapath down");
    Ok(())
}

pub async fn show(config: &Config) -> Result<()> {
    let datapath = Datapath::open(DatapathSpec::from_config(config)).await?;
    print!("{}", datapath.report()?);
    Ok(())
}
