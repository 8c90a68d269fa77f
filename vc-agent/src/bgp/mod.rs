//! eBGP per tunnel (R16–R22): a small, strict eBGP speaker, one session per tunnel.
//!
//! - [`packet`]: the messages, pure functions over bytes (RFC 4271, 4760, 5492, 6793, 7606).
//! - [`fsm`]: the RFC 4271 state machine, pure (state + event → state + actions).
//! - [`rib`]: the Adj-RIB-In and the import policy the service fixes (R19), pure.
//! - [`diag`]: why a session does not come up (TCP-MD5 counters, connect timeouts).
//! - [`state`]: the operator's view of a neighbour (R25); [`status`]: its piece of the agent's
//!   status.
//! - `speaker` and `network`: the tokio side (sockets, timers, one task per neighbour).
//!
//! The daemon starts one [`Speaker`] per tunnel with a [`NeighborConfig`] and a
//! [`crate::routes::RouteHandle`]; the speaker sends the set of prefixes it accepts to the route
//! manager and publishes [`NeighborState`] snapshots. It advertises exactly 0.0.0.0/0 with
//! our tunnel IP as next hop (R18).
pub mod config;
mod debug;
pub mod diag;
pub mod fsm;
pub mod md5;
mod network;
mod speaker;
pub mod state;
pub mod status;

pub use config::{ConfigError, NeighborConfig, Secret};
pub use fsm::State;
pub use speaker::{DefaultSwitch, SpawnError, Speaker};
pub use state::{Direction, LastError, NeighborState, NotificationInfo, PrefixCounts};
pub use vc_wire::bgp::{packet, rib};
