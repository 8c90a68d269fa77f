//! The LAN side's health, for the conditional default route: vc advertises 0.0.0.0/0 to the
//! DCs only while the LAN can carry what comes back (`[lan] default_requires`). A CPE whose
//! LAN link is down, or that lost the route to the enterprise network, would otherwise keep
//! drawing Cisco's traffic toward itself and drop it; with the default withdrawn, Cisco sends
//! it to the other CPE (two-CPE deployments) or the customer's other path.
//!
//! | module | job |
//! |---|---|
//! | `check` | the checks of the config and their judgement (pure) |
//! | `watch` | a task that observes the kernel (link state, routes) and publishes the health |
//! | `status` | the LAN piece of the agent's status |
pub mod check;
pub mod status;
pub mod watch;

pub use check::{LanCheck, LanHealth};
pub use watch::LanWatch;
