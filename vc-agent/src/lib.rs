//! vc-agent: the control plane of vc. The binary (`main.rs`) is a thin CLI over these modules.
//!
//! Rooms, and what each may import (`A → B`: A uses B). The graph has no cycle:
//!
//! - domain rooms, each owning its piece of the status (`<room>::status`): `config` (the
//!   activation form, imports nothing); `ipsec` → `config`; `datapath` → `config`, `ipsec`;
//!   `routes` → `datapath`; `bgp` → `config`, `routes`; `keepalive` → `config`, `datapath`,
//!   `ipsec`, `routes`; `lan` (the LAN side's health, for the conditional default) →
//!   `config`, `routes`. Leaves any room may use: `duration` (time as text), `task` (named
//!   long-lived tasks whose end can be awaited), `limit` (accept back-off, log rate limits), `rtnl` (how route messages read).
//! - `status` → the domain rooms' status pieces: the agent's status as one typed model.
//! - `socket` → `status`, `config`: the control socket (status, stop, reload) and its client.
//! - `metrics` → `status`; `diagnose` → `status`, `socket`, `config`, and the domain
//!   vocabulary it judges by (BGP NOTIFICATION codes, vc's reqids and selectors).
//! - `manual` → `config`, `datapath`, `routes`: `vc-agent datapath`, by hand.
//! - `purge` → `config`, `ipsec`, `datapath`, `routes`, `socket`: the full teardown.
//! - `service` (systemd: the journal, readiness notifications) imports no room.
//! - `agent` → everything above: the run loop that starts the rooms and assembles the status.
//!
//! No domain room imports `status`, `socket`, `metrics`, `diagnose`, `manual`, `purge`,
//! `service` or `agent`.
pub mod agent;
pub mod bgp;
pub mod config;
pub mod datapath;
pub mod diagnose;
pub mod duration;
pub mod ipsec;
pub mod keepalive;
pub mod lan;
pub mod limit;
pub mod manual;
pub mod metrics;
pub mod purge;
pub mod routes;
pub mod rtnl;
pub mod service;
pub mod socket;
pub mod status;
pub mod task;
