//! GRE keepalives (R13) in Cisco's format: we send our own into each tunnel, the datapath
//! reflects the DC's and counts the replies to ours, and the liveness tracker turns those
//! counters into "tunnel up/down".
pub mod liveness;
pub mod packet;
pub mod sender;

pub use liveness::{Liveness, LivenessConfig, LivenessEvent, TunnelLiveness};
pub use packet::keepalive_frame;
pub use sender::KeepaliveSender;
