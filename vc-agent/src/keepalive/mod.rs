//! GRE keepalives (R13) in Cisco's format: we send our own into each tunnel, the datapath
//! reflects the DC's and counts the replies to ours, and the liveness judge turns those
//! counters into "tunnel up/down".
//!
//! | module | job |
//! |---|---|
//! | `packet` | the keepalive frame (pure) |
//! | `liveness` | the judge: counters in, up/down out (pure) |
//! | `task` | one task per tunnel tying them to the datapath, IPsec and the route manager |
//! | `status` | the keepalive piece of the agent's status, with its text |
pub mod liveness;
pub mod packet;
pub mod status;
pub mod task;

pub use liveness::{Liveness, LivenessConfig, LivenessEvent, TunnelLiveness};
pub use packet::keepalive_frame;
pub use task::{KeepaliveTask, KeepaliveTunnel, KeepaliveView};
