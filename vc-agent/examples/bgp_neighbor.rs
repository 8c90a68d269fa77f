//! One eBGP neighbour by hand, for trying vc's speaker against a real router (a Cisco, BIRD,
//! FRR) before the daemon wires it up. Prints the neighbour's state on every change.
//!
//! ```text
//! VC_BGP_PASSWORD=secret cargo run --example bgp_neighbor -- \
//!     --local 100.64.0.1 --peer 100.64.0.2 --local-as 65001 --remote-as 65010 \
//!     --accept 198.18.10.0/25 --accept 198.18.10.0/24 --interface vc-dc1 [--datapath]
//! ```
//!
//! Without `--datapath` the accepted prefixes are only printed; with it they go through the
//! route manager into a fresh BPF LPM map and the kernel's main table (needs root).
use std::{
    net::Ipv4Addr,
    sync::{Arc, Mutex},
};

use anyhow::{Context, Result};
use clap::Parser;
use ipnet::Ipv4Net;
use vc_agent::{
    bgp::{NeighborConfig, Secret, Speaker},
    datapath::{DatapathMaps, load},
    routes::{RouteEvent, RouteHandle, RouteManager, RouteManagerConfig, TunnelNextHop},
};

#[derive(Parser)]
struct Args {
    #[arg(long, default_value_t = 0)]
    tunnel: u32,
    #[arg(long)]
    local: Ipv4Addr,
    #[arg(long)]
    peer: Ipv4Addr,
    #[arg(long)]
    local_as: u32,
    #[arg(long)]
    remote_as: u32,
    /// A prefix this session may install (the DC's /25, the /24); repeat.
    #[arg(long)]
    accept: Vec<Ipv4Net>,
    #[arg(long, default_value_t = 90)]
    hold: u16,
    /// The tunnel interface the kernel routes go out of.
    #[arg(long, default_value = "vc-dc1")]
    interface: String,
    /// Install routes (BPF LPM map + kernel) instead of only printing them.
    #[arg(long)]
    datapath: bool,
    /// Only wait for the peer to connect.
    #[arg(long)]
    passive: bool,
}

#[tokio::main]
async fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "vc_agent=info".into()),
        )
        .init();
    let args = Args::parse();
    let mut cfg = NeighborConfig::new(
        args.tunnel,
        args.local,
        args.peer,
        args.local_as,
        args.remote_as,
        args.accept,
    );
    cfg.hold_time = args.hold;
    cfg.passive = args.passive;
    // From the environment, never the command line (visible in ps).
    cfg.md5_password = std::env::var("VC_BGP_PASSWORD").ok().map(Secret::new);

    let (routes, _manager) = if args.datapath {
        let mut ebpf = load(&[])?;
        let maps = Arc::new(Mutex::new(DatapathMaps::take(&mut ebpf, None)?));
        let hop = TunnelNextHop {
            id: args.tunnel,
            gateway: args.peer,
            interface: args.interface,
        };
        let manager = RouteManager::spawn(RouteManagerConfig::new(vec![hop]), maps).await?;
        (manager.handle(), Some(manager))
    } else {
        let (handle, mut rx) = RouteHandle::channel();
        tokio::spawn(async move {
            while let Some(event) = rx.recv().await {
                if let RouteEvent::Learned {
                    tunnel, prefixes, ..
                } = event
                {
                    println!("tunnel {tunnel} accepts {prefixes:?}");
                }
            }
        });
        (handle, None)
    };

    let speaker = Speaker::spawn(cfg, routes.clone()).context("starting the speaker")?;
    let mut state = speaker.subscribe();
    loop {
        tokio::select! {
            changed = state.changed() => {
                if changed.is_err() {
                    break;
                }
                println!("{}", *state.borrow_and_update());
            }
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    speaker.shutdown().await;
    // Let the route manager remove what the session had installed before exiting.
    routes.settled().await;
    Ok(())
}
