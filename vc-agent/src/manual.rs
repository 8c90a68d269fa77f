//! `vc-agent datapath up|down|show`: the datapath by hand, without the control plane, for
//! bring-up and for sites that route the Cisco prefixes statically (the route manager
//! installs them as BGP would).
use anyhow::Result;
use serde::Serialize;

use crate::{
    config::{Config, TunnelId},
    datapath::{
        AttachMode, Datapath, DatapathSpec,
        status::{RouteLine, TunnelCounters, VerdictLine},
        tunnel_index,
    },
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
            [config.dc_prefix(id), config.cisco_prefix(id)]
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

/// `datapath show`: the report as text, or as [`Shown`] in JSON.
pub async fn show(config: &Config, json: bool) -> Result<()> {
    let datapath = Datapath::open(DatapathSpec::from_config(config)).await?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&shown(config, &datapath)?)?
        );
    } else {
        print!("{}", datapath.report()?);
    }
    Ok(())
}

/// What `datapath show --json` prints: the datapath's maps in the status's own types.
#[derive(Debug, Serialize)]
pub struct Shown {
    pub attach_mode: AttachMode,
    pub fast_path: bool,
    pub tunnels: Vec<ShownTunnel>,
    pub routes: Vec<RouteLine>,
    pub verdicts: Vec<VerdictLine>,
}

#[derive(Debug, Serialize)]
pub struct ShownTunnel {
    pub tunnel: TunnelId,
    pub interface: String,
    #[serde(flatten)]
    pub counters: TunnelCounters,
}

fn shown(config: &Config, datapath: &Datapath) -> Result<Shown> {
    let maps = datapath.lock();
    let mut tunnels = Vec::new();
    for (id, _) in config.terminated() {
        let index = tunnel_index(id);
        let Some(spec) = datapath.spec().tunnels.iter().find(|t| t.id == index) else {
            continue;
        };
        tunnels.push(ShownTunnel {
            tunnel: id,
            interface: spec.name.clone(),
            counters: TunnelCounters::new(&maps.tunnel(index)?, &maps.tunnel_stats(index)?),
        });
    }
    let routes = maps
        .routes()?
        .into_iter()
        .map(|(prefix, route)| RouteLine {
            prefix,
            tunnels: TunnelId::ALL
                .into_iter()
                .filter(|id| route.tunnels & (1 << tunnel_index(*id)) != 0)
                .collect(),
        })
        .collect();
    Ok(Shown {
        attach_mode: datapath.attach_mode(),
        fast_path: datapath.spec().fast_path,
        tunnels,
        routes,
        verdicts: maps.verdicts()?.iter().map(VerdictLine::from).collect(),
    })
}
