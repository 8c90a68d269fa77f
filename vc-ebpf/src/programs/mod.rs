//! One module per hook.
pub mod lan_rx;
pub mod tunnel_tx;
pub mod wan_guard;
pub mod wan_rx;
pub mod xdp;
