//! vc-agent: the control plane of vc. The binary (`main.rs`) is a thin CLI over these modules.
pub mod agent;
pub mod bgp;
pub mod config;
pub mod datapath;
pub mod diagnose;
pub mod duration;
pub mod ipsec;
pub mod keepalive;
pub mod metrics;
pub mod routes;
pub mod socket;
pub mod status;
