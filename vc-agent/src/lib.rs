//! vc-agent: the control plane of vc. The binary (`main.rs`) is a thin CLI over these modules.
pub mod bgp;
pub mod config;
pub mod daemon;
pub mod datapath;
pub mod ipsec;
pub mod keepalive;
pub mod routes;
